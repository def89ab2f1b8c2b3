/* SPDX-License-Identifier: MIT */
/*
 * The memslot table: KVM's validation ladder and errors, growth, id allocation, GPA and HVA
 * lookups, checked translation. Host addresses are never dereferenced, so the tests use
 * made-up (page-aligned) ones.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "test-util.h"
#include <pvmem/memslot.h>

#include "core/util.h"

#define K4 0x1000ULL
#define HVA(x) ((void *)(uintptr_t)(x))
#define RO PVM_MEMSLOT_F_READONLY
#define LD PVM_MEMSLOT_F_LOG_DIRTY

static struct pvm_memslot_table *new_table(uint32_t max)
{
	struct pvm_memslot_table *t;

	assert_int_equal(pvm_memslot_table_new(max, &t), 0);
	return t;
}

static int new_free(void *ctx)
{
	struct pvm_memslot_table *t;
	int rc = pvm_memslot_table_new(0, &t);

	assert_true(rc == 0 ? t != NULL : t == NULL);
	pvm_memslot_table_free(t);
	return rc;
}

static void test_new_limits(void **state)
{
	assert_int_equal(pvm_test_torture(new_free, NULL, NULL), 2);
	struct pvm_memslot_table *t;

	assert_int_equal(pvm_memslot_table_new(PVM_MEMSLOT_MAX_USER + 1, &t), -EINVAL);
	assert_null(t);
	t = new_table(0);
	assert_int_equal(pvm_memslot_max(t), 32764);
	assert_int_equal(pvm_memslot_capacity(t), 16);
	assert_int_equal(pvm_memslot_count(t), 0);
	assert_null(pvm_memslot_gpa_to_hva(t, 0));
	pvm_memslot_table_free(t);
	t = new_table(5);
	assert_int_equal(pvm_memslot_capacity(t), 5);
	pvm_memslot_table_free(t);
	pvm_memslot_table_free(NULL);
}

/* Fill all 32764 ids (in a scattered id and GPA order), watch the capacity double, then one
 * more fails: no free id, and id 32764 is out of range. */
static void test_fill_to_max_then_one_more(void **state)
{
	struct pvm_memslot_table *t = new_table(0);
	uint32_t expect_cap = 16, id;
	struct pvm_error err = { 0 };

	for (uint32_t i = 0; i < PVM_MEMSLOT_MAX_USER; i++) {
		uint32_t sid = (i * 7919u) % PVM_MEMSLOT_MAX_USER;   /* 7919 is prime: a permutation */

		assert_int_equal(pvm_memslot_add(t, sid, 0, (uint64_t)sid * 2 * K4, K4,
						 HVA(0x100000000ULL + (uint64_t)sid * K4), NULL), 0);
		if (i + 1 > expect_cap)
			expect_cap = expect_cap * 2 > 32764 ? 32764 : expect_cap * 2;
		assert_int_equal(pvm_memslot_capacity(t), expect_cap);
	}
	assert_int_equal(pvm_memslot_count(t), 32764);
	assert_int_equal(pvm_memslot_capacity(t), 32764);
	assert_int_equal(pvm_memslot_free_id(t, &id), -ENOSPC);
	assert_int_equal(pvm_memslot_add(t, 32764, 0, 0x80000000000ULL, K4, HVA(0x7f0000000000ULL), &err),
			 -EINVAL);
	assert_non_null(strstr(err.msg, "out of range"));
	assert_int_equal(pvm_memslot_add(t, 17, 0, 0x80000000000ULL, K4, HVA(0x7f0000000000ULL), NULL),
			 -EEXIST);
	for (uint32_t sid = 0; sid < PVM_MEMSLOT_MAX_USER; sid += 997) {
		uint64_t gpa;

		assert_ptr_equal(pvm_memslot_gpa_to_hva(t, (uint64_t)sid * 2 * K4 + 5),
				 HVA(0x100000000ULL + (uint64_t)sid * K4 + 5));
		assert_null(pvm_memslot_gpa_to_hva(t, (uint64_t)sid * 2 * K4 + K4));   /* the gaps */
		assert_int_equal(pvm_memslot_hva_to_gpa(t, HVA(0x100000000ULL + (uint64_t)sid * K4 + 9), &gpa), 0);
		assert_int_equal(gpa, (uint64_t)sid * 2 * K4 + 9);
	}
	/* Delete one in the middle: its id is the next free one and can be used again. */
	assert_int_equal(pvm_memslot_delete(t, 12345, NULL), 0);
	assert_int_equal(pvm_memslot_free_id(t, &id), 0);
	assert_int_equal(id, 12345);
	assert_int_equal(pvm_memslot_add(t, id, 0, 0x80000000000ULL, K4, HVA(0x7f0000000000ULL), NULL), 0);
	pvm_memslot_table_free(t);
}

struct set_case {
	const char *name;      /* what the case shows */
	uint32_t id;           /* request */
	uint32_t flags;
	uint64_t gpa;
	uint64_t size;
	uintptr_t hva;
	int rc;                /* golden result (KVM's errno) */
};

/* Each request against a table holding slot 1 = [0x100000, +0x10000) at hva 0x7f0000000000
 * and slot 2 = [0x200000, +0x10000), read-only, at 0x7f0000100000. */
static const struct set_case set_cases[] = {
	{ "unknown flag", 3, 1u << 2, 0x400000, K4, 0x7f0000200000, -EINVAL },
	{ "size not page aligned", 3, 0, 0x400000, 0x1800, 0x7f0000200000, -EINVAL },
	{ "gpa not page aligned", 3, 0, 0x400800, K4, 0x7f0000200000, -EINVAL },
	{ "hva not page aligned", 3, 0, 0x400000, K4, 0x7f0000200010, -EINVAL },
	{ "hva NULL", 3, 0, 0x400000, K4, 0, -EINVAL },
	{ "hva range wraps", 3, 0, 0x400000, 2 * K4, UINTPTR_MAX - K4 + 1, -EINVAL },
	{ "id out of range", 32764, 0, 0x400000, K4, 0x7f0000200000, -EINVAL },
	{ "id far out of range", UINT32_MAX, 0, 0x400000, K4, 0x7f0000200000, -EINVAL },
	{ "gpa wraps", 3, 0, UINT64_MAX - K4 + 1, 2 * K4, 0x7f0000200000, -EINVAL },
	{ "gpa ends at 2^64 (KVM: wraps)", 3, 0, UINT64_MAX - K4 + 1, K4, 0x7f0000200000, -EINVAL },
	{ "2^31 pages", 3, 0, 0, (1ULL << 31) * K4, 0x100000000000, -EINVAL },
	{ "2^31-1 pages", 3, 0, 0x10000000000, ((1ULL << 31) - 1) * K4, 0x100000000000, 0 },
	{ "just below 2^64", 3, 0, UINT64_MAX - 2 * K4 + 1, K4, 0x7f0000200000, 0 },
	{ "delete missing slot", 3, 0, 0, 0, 0, -EINVAL },
	{ "delete missing slot (id range first)", 40000, 0, 0, 0, 0, -EINVAL },
	{ "delete slot 1", 1, 0, 0, 0, 0, 0 },
	{ "delete ignores gpa and hva", 1, 0, 0x5000, 0, 0x7000, 0 },
	{ "delete still validates alignment", 1, 0, 0x5001, 0, 0, -EINVAL },
	{ "create adjacent below", 3, 0, 0xf0000, 0x10000, 0x7f0000200000, 0 },
	{ "create adjacent above", 3, 0, 0x110000, 0x10000, 0x7f0000200000, 0 },
	{ "create between both", 3, 0, 0x110000, 0xf0000, 0x7f0000200000, 0 },
	{ "overlap: same range", 3, 0, 0x100000, 0x10000, 0x7f0000200000, -EEXIST },
	{ "overlap: inside", 3, 0, 0x104000, K4, 0x7f0000200000, -EEXIST },
	{ "overlap: covering", 3, 0, 0, 0x400000, 0x7f0000200000, -EEXIST },
	{ "overlap: first page", 3, 0, 0xff000, 2 * K4, 0x7f0000200000, -EEXIST },
	{ "overlap: last page", 3, 0, 0x10f000, 2 * K4, 0x7f0000200000, -EEXIST },
	{ "overlap: reaches the next slot", 3, 0, 0x110000, 0xf1000, 0x7f0000200000, -EEXIST },
	{ "aliasing host memory is fine", 3, 0, 0x300000, 0x10000, 0x7f0000000000, 0 },
	{ "identical request: no-op", 1, 0, 0x100000, 0x10000, 0x7f0000000000, 0 },
	{ "modify: size", 1, 0, 0x100000, 0x20000, 0x7f0000000000, -EINVAL },
	{ "modify: hva", 1, 0, 0x100000, 0x10000, 0x7f0000001000, -EINVAL },
	{ "modify: set READONLY", 1, RO, 0x100000, 0x10000, 0x7f0000000000, -EINVAL },
	{ "modify: clear READONLY", 2, 0, 0x200000, 0x10000, 0x7f0000100000, -EINVAL },
	{ "modify: set LOG_DIRTY", 2, RO | LD, 0x200000, 0x10000, 0x7f0000100000, 0 },
	{ "move", 1, 0, 0x800000, 0x10000, 0x7f0000000000, 0 },
	{ "move over its own range", 1, 0, 0x108000, 0x10000, 0x7f0000000000, 0 },
	{ "move onto slot 2", 1, 0, 0x1f8000, 0x10000, 0x7f0000000000, -EEXIST },
	{ "move with LOG_DIRTY on", 1, LD, 0x800000, 0x10000, 0x7f0000000000, 0 },
	{ "move misaligned", 1, 0, 0x800800, 0x10000, 0x7f0000000000, -EINVAL },
	{ "move that wraps", 1, 0, UINT64_MAX - K4 + 1, 0x10000, 0x7f0000000000, -EINVAL },
};

static void fill_two(struct pvm_memslot_table *t)
{
	assert_int_equal(pvm_memslot_add(t, 1, 0, 0x100000, 0x10000, HVA(0x7f0000000000), NULL), 0);
	assert_int_equal(pvm_memslot_add(t, 2, RO, 0x200000, 0x10000, HVA(0x7f0000100000), NULL), 0);
}

struct snapshot {
	uint32_t n;                           /* slots */
	uint32_t cap;                         /* capacity */
	struct pvm_memslot_info s[64];        /* the slots in GPA order */
};

static int snap_one(void *opaque, const struct pvm_memslot_info *slot)
{
	struct snapshot *sn = opaque;

	if (sn->n < 64)
		sn->s[sn->n] = *slot;
	sn->n++;
	return 0;
}

static void snap(const struct pvm_memslot_table *t, struct snapshot *sn)
{
	memset(sn, 0, sizeof(*sn));
	assert_int_equal(pvm_memslot_for_each(t, snap_one, sn), 0);
	assert_int_equal(sn->n, pvm_memslot_count(t));
	sn->cap = pvm_memslot_capacity(t);
}

static bool snap_equal(const struct snapshot *a, const struct snapshot *b)
{
	return a->n == b->n && a->cap == b->cap && !memcmp(a->s, b->s, sizeof(a->s));
}

static void test_set_cases(void **state)
{
	for (size_t i = 0; i < PVM_ARRAY_SIZE(set_cases); i++) {
		const struct set_case *c = &set_cases[i];
		struct pvm_memslot_table *t = new_table(0);
		struct pvm_error err = { 0 };
		struct snapshot before, after;
		int rc;

		fill_two(t);
		snap(t, &before);
		rc = pvm_memslot_set(t, c->id, c->flags, c->gpa, c->size, HVA(c->hva), &err);
		if (rc != c->rc)
			fail_msg("case '%s': rc %d, expected %d (%s)", c->name, rc, c->rc, err.msg);
		snap(t, &after);
		if (rc < 0) {
			assert_int_equal(err.code, rc);
			assert_true(err.msg[0]);
			if (!snap_equal(&before, &after))
				fail_msg("case '%s': failed but changed the table", c->name);
		} else if (c->size) {
			struct pvm_memslot_info info;

			assert_int_equal(pvm_memslot_get(t, c->id, &info), 0);
			assert_int_equal(info.gpa, c->gpa);
			assert_int_equal(info.size, c->size);
			assert_int_equal(info.flags, c->flags);
			assert_ptr_equal(info.hva, HVA(c->hva));
			assert_ptr_equal(pvm_memslot_gpa_to_hva(t, c->gpa + c->size - 1), HVA(c->hva + c->size - 1));
		} else {
			assert_int_equal(pvm_memslot_get(t, c->id, &(struct pvm_memslot_info){ 0 }), -ENOENT);
			assert_int_equal(after.n, before.n - 1);
		}
		pvm_memslot_table_free(t);
	}
}

static void test_wrappers(void **state)
{
	struct pvm_memslot_table *t = new_table(8);
	struct pvm_memslot_info info;

	fill_two(t);
	assert_int_equal(pvm_memslot_add(t, 1, 0, 0x900000, K4, HVA(0x7f0000900000), NULL), -EEXIST);
	assert_int_equal(pvm_memslot_add(t, 3, 0, 0x900000, 0, HVA(0x7f0000900000), NULL), -EINVAL);
	assert_int_equal(pvm_memslot_count(t), 2);
	assert_int_equal(pvm_memslot_move(t, 5, 0x900000, NULL), -ENOENT);
	assert_int_equal(pvm_memslot_move(t, 100, 0x900000, NULL), -ENOENT);
	assert_int_equal(pvm_memslot_set_flags(t, 5, 0, NULL), -ENOENT);
	assert_int_equal(pvm_memslot_delete(t, 5, NULL), -EINVAL);
	assert_int_equal(pvm_memslot_delete(t, 8, NULL), -EINVAL);
	/* move: lookups follow, the old range is empty */
	assert_int_equal(pvm_memslot_move(t, 1, 0x900000, NULL), 0);
	assert_null(pvm_memslot_gpa_to_hva(t, 0x100000));
	assert_ptr_equal(pvm_memslot_gpa_to_hva(t, 0x90f000), HVA(0x7f000000f000));
	assert_int_equal(pvm_memslot_move(t, 1, 0x1f8000, NULL), -EEXIST);
	assert_int_equal(pvm_memslot_move(t, 1, 0x900001, NULL), -EINVAL);
	/* flags */
	assert_int_equal(pvm_memslot_set_flags(t, 1, LD, NULL), 0);
	assert_int_equal(pvm_memslot_get(t, 1, &info), 0);
	assert_int_equal(info.flags, LD);
	assert_int_equal(pvm_memslot_set_flags(t, 1, LD | RO, NULL), -EINVAL);
	assert_int_equal(pvm_memslot_set_flags(t, 2, 0, NULL), -EINVAL);
	assert_int_equal(pvm_memslot_set_flags(t, 1, 8, NULL), -EINVAL);
	assert_int_equal(pvm_memslot_set_flags(t, 1, 0, NULL), 0);
	assert_int_equal(pvm_memslot_delete(t, 1, NULL), 0);
	assert_int_equal(pvm_memslot_delete(t, 1, NULL), -EINVAL);
	assert_int_equal(pvm_memslot_count(t), 1);
	pvm_memslot_table_free(t);
}

static void test_free_id_lowest_first(void **state)
{
	struct pvm_memslot_table *t = new_table(4);
	uint32_t id;
	static const uint32_t ids[] = { 0, 1, 3 };

	assert_int_equal(pvm_memslot_free_id(t, &id), 0);
	assert_int_equal(id, 0);
	for (size_t i = 0; i < PVM_ARRAY_SIZE(ids); i++)
		assert_int_equal(pvm_memslot_add(t, ids[i], 0, ids[i] * 0x10000, K4, HVA(0x10000), NULL), 0);
	assert_int_equal(pvm_memslot_free_id(t, &id), 0);
	assert_int_equal(id, 2);
	assert_int_equal(pvm_memslot_add(t, 2, 0, 0x20000, K4, HVA(0x10000), NULL), 0);
	assert_int_equal(pvm_memslot_free_id(t, &id), -ENOSPC);
	assert_int_equal(pvm_memslot_delete(t, 1, NULL), 0);
	assert_int_equal(pvm_memslot_delete(t, 3, NULL), 0);
	assert_int_equal(pvm_memslot_free_id(t, &id), 0);
	assert_int_equal(id, 1);
	assert_int_equal(pvm_memslot_delete(t, 0, NULL), 0);
	assert_int_equal(pvm_memslot_free_id(t, &id), 0);
	assert_int_equal(id, 0);
	pvm_memslot_table_free(t);
}

struct tr_case {
	const char *name;   /* what the case shows */
	uint64_t gpa;       /* request */
	uint64_t len;
	unsigned access;
	int rc;             /* golden result */
	uintptr_t hva;      /* golden host address when rc == 0 */
};

#define R PVM_ACCESS_READ
#define W PVM_ACCESS_WRITE
/* Slot 0 = [0x100000, +0x10000) at 0x7f0000000000; slot 1 = [0x110000, +0x10000) right after
 * it in GPA and in host memory; slot 2 = [0x200000, +K4) read-only at 0x7f0000100000; slot 3
 * = the last page below 2^64. */
static const struct tr_case tr_cases[] = {
	{ "first byte", 0x100000, 1, R, 0, 0x7f0000000000 },
	{ "last byte of a slot", 0x10ffff, 1, R | W, 0, 0x7f000000ffff },
	{ "whole slot", 0x100000, 0x10000, W, 0, 0x7f0000000000 },
	{ "one byte too long", 0x100000, 0x10001, R, -EFAULT, 0 },
	{ "crosses into the contiguous next slot", 0x10fff0, 0x20, R, -EFAULT, 0 },
	{ "next slot alone", 0x110000, 0x20, R, 0, 0x7f0000010000 },
	{ "len 0", 0x100000, 0, R, -EFAULT, 0 },
	{ "no slot", 0x300000, 1, R, -EFAULT, 0 },
	{ "just below a slot", 0xfffff, 2, R, -EFAULT, 0 },
	{ "huge len wraps", 0x100000, UINT64_MAX, R, -EFAULT, 0 },
	{ "gpa + len wraps", UINT64_MAX - 0x1000, 0x1002, R, -EFAULT, 0 },
	{ "last byte near the top", UINT64_MAX - 0x1000, 1, R, 0, 0x7f0000200fff },
	{ "slot near the top of the GPA space", UINT64_MAX - 0x1fff, 0x1000, R, 0, 0x7f0000200000 },
	{ "read a read-only slot", 0x200000, K4, R, 0, 0x7f0000100000 },
	{ "write a read-only slot", 0x200000, 8, W, -EFAULT, 0 },
	{ "read+write a read-only slot", 0x200000, 8, R | W, -EFAULT, 0 },
	{ "no access bits", 0x200000, 8, 0, 0, 0x7f0000100000 },
	{ "unknown access bit", 0x100000, 8, 4, -EINVAL, 0 },
};

static void test_translate_edges(void **state)
{
	struct pvm_memslot_table *t = new_table(0);

	assert_int_equal(pvm_memslot_add(t, 0, 0, 0x100000, 0x10000, HVA(0x7f0000000000), NULL), 0);
	assert_int_equal(pvm_memslot_add(t, 1, 0, 0x110000, 0x10000, HVA(0x7f0000010000), NULL), 0);
	assert_int_equal(pvm_memslot_add(t, 2, RO, 0x200000, K4, HVA(0x7f0000100000), NULL), 0);
	assert_int_equal(pvm_memslot_add(t, 3, 0, UINT64_MAX - 0x1fff, K4, HVA(0x7f0000200000), NULL), 0);
	for (int pass = 0; pass < 2; pass++) {   /* pass 1 runs with a warm cache */
		for (size_t i = 0; i < PVM_ARRAY_SIZE(tr_cases); i++) {
			const struct tr_case *c = &tr_cases[i];
			void *hva = HVA(0xdead000);
			int rc = pvm_memslot_translate(t, c->gpa, c->len, c->access, &hva);

			if (rc != c->rc)
				fail_msg("case '%s': rc %d, expected %d", c->name, rc, c->rc);
			assert_ptr_equal(hva, rc ? HVA(0xdead000) : HVA(c->hva));
		}
	}
	{
		struct pvm_memslot_info info;

		assert_int_equal(pvm_memslot_lookup_gpa(t, 0x200fff, &info), 0);
		assert_int_equal(info.id, 2);
		assert_int_equal(info.flags, RO);
		assert_int_equal(info.gpa, 0x200000);
		assert_int_equal(info.size, K4);
		assert_ptr_equal(info.hva, HVA(0x7f0000100000));
		assert_int_equal(pvm_memslot_lookup_gpa(t, 0x201000, &info), -ENOENT);
		assert_int_equal(pvm_memslot_lookup_gpa(t, 0, &info), -ENOENT);
	}
	pvm_memslot_table_free(t);
}

/* Host memory may be aliased; the slot with the lowest host start (then lowest GPA) wins. */
static void test_hva_to_gpa(void **state)
{
	struct pvm_memslot_table *t = new_table(0);
	static const struct {
		uintptr_t hva;   /* query */
		int rc;          /* golden */
		uint64_t gpa;
	} q[] = {
		{ 0x10000000, 0, 0x1000000 },          /* slot A start */
		{ 0x100fffff, 0, 0x10fffff },          /* slot A last byte */
		{ 0x10100000, -ENOENT, 0 },            /* gap after A (B is shorter, inside A) */
		{ 0x10020000, 0, 0x1020000 },          /* inside A and B: A has the lower start */
		{ 0x20000000, 0, 0x5000000 },          /* C and D alias exactly: D has lower gpa */
		{ 0x20000fff, 0, 0x5000fff },
		{ 0x20001000, -ENOENT, 0 },
		{ 0x0fffffff, -ENOENT, 0 },
		{ 0x30000000, -ENOENT, 0 },
		{ 0x40000000, 0, 0x9000000 },          /* E: long, covering F and G */
		{ 0x40050000, 0, 0x9050000 },
		{ 0x40104000, 0, 0xb00c000 },          /* G alone (G sticks out of E) */
		{ 0x400fa000, 0, 0x90fa000 },          /* inside E and G: E starts lower */
		{ 0x400ff000, 0, 0x90ff000 },
		{ 0x40108000, -ENOENT, 0 },
	};

	assert_int_equal(pvm_memslot_add(t, 0, 0, 0x1000000, 0x100000, HVA(0x10000000), NULL), 0);   /* A */
	assert_int_equal(pvm_memslot_add(t, 1, 0, 0x2000000, 0x40000, HVA(0x10010000), NULL), 0);    /* B */
	assert_int_equal(pvm_memslot_add(t, 2, 0, 0x6000000, K4, HVA(0x20000000), NULL), 0);         /* C */
	assert_int_equal(pvm_memslot_add(t, 3, 0, 0x5000000, K4, HVA(0x20000000), NULL), 0);         /* D */
	assert_int_equal(pvm_memslot_add(t, 4, 0, 0x9000000, 0x100000, HVA(0x40000000), NULL), 0);   /* E */
	assert_int_equal(pvm_memslot_add(t, 5, 0, 0xa000000, K4, HVA(0x40001000), NULL), 0);         /* F */
	assert_int_equal(pvm_memslot_add(t, 6, 0, 0xb000000, 0x10000, HVA(0x400f8000), NULL), 0);    /* G */
	for (int pass = 0; pass < 3; pass++) {
		/* Forward, backward, forward: the cache holds a different slot each time. */
		for (size_t j = 0; j < PVM_ARRAY_SIZE(q); j++) {
			size_t i = pass == 1 ? PVM_ARRAY_SIZE(q) - 1 - j : j;
			uint64_t gpa = 0;
			int rc = pvm_memslot_hva_to_gpa(t, HVA(q[i].hva), &gpa);

			if (rc != q[i].rc || (rc == 0 && gpa != q[i].gpa))
				fail_msg("hva 0x%lx: rc %d gpa 0x%llx", (unsigned long)q[i].hva, rc,
					 (unsigned long long)gpa);
		}
	}
	/* Delete A: B becomes the answer in its range. */
	assert_int_equal(pvm_memslot_delete(t, 0, NULL), 0);
	{
		uint64_t gpa;

		assert_int_equal(pvm_memslot_hva_to_gpa(t, HVA(0x10020000), &gpa), 0);
		assert_int_equal(gpa, 0x2010000);
		assert_int_equal(pvm_memslot_hva_to_gpa(t, HVA(0x10000000), &gpa), -ENOENT);
	}
	pvm_memslot_table_free(t);
}

static int count_stop(void *opaque, const struct pvm_memslot_info *slot)
{
	uint64_t *last = opaque;

	assert_true(slot->gpa > *last || *last == 0);
	*last = slot->gpa;
	return slot->id == 20 ? 42 : 0;
}

static void test_for_each_gpa_order(void **state)
{
	struct pvm_memslot_table *t = new_table(0);
	uint64_t last = 0;

	for (uint32_t i = 0; i < 10; i++)
		assert_int_equal(pvm_memslot_add(t, i, 0, (uint64_t)(10 - i) * 0x100000, K4, HVA(0x1000), NULL), 0);
	assert_int_equal(pvm_memslot_for_each(t, count_stop, &last), 0);
	assert_int_equal(last, 10 * 0x100000);
	last = 0;
	assert_int_equal(pvm_memslot_add(t, 20, 0, 0x7000000, K4, HVA(0x1000), NULL), 0);
	assert_int_equal(pvm_memslot_move(t, 7, 0x8000000, NULL), 0);
	assert_int_equal(pvm_memslot_for_each(t, count_stop, &last), 42);
	assert_int_equal(last, 0x7000000);
	pvm_memslot_table_free(t);
}

/* Allocation torture: an add that must grow the table (and allocate a dirty bitmap) fails
 * cleanly at every allocation, leaving slots, lookups and capacity as they were. */
struct torture {
	struct pvm_memslot_table *t;   /* the table under test */
	struct snapshot before;        /* its state before the operation */
	int op;                        /* 0 add+grow, 1 set LOG_DIRTY, 2 move+LOG_DIRTY */
};

static int torture_op(void *ctx)
{
	struct torture *x = ctx;

	switch (x->op) {
	case 0:
		return pvm_memslot_add(x->t, 100, LD, 0x40000000, 0x100000, HVA(0x7e0000000000), NULL);
	case 1:
		return pvm_memslot_set_flags(x->t, 3, LD, NULL);
	default:
		return pvm_memslot_set(x->t, 4, LD, 0x50000000, K4, HVA(0x7f0000004000), NULL);
	}
}

static int torture_unchanged(void *ctx)
{
	struct torture *x = ctx;
	struct snapshot now;

	snap(x->t, &now);
	return snap_equal(&x->before, &now) && pvm_memslot_gpa_to_hva(x->t, 0x40000000) == NULL &&
	       pvm_memslot_gpa_to_hva(x->t, 0x4000) == HVA(0x7f0000004000);
}

static void test_torture(void **state)
{
	for (int op = 0; op < 3; op++) {
		struct torture x = { .op = op };

		x.t = new_table(0);
		for (uint32_t i = 0; i < 16; i++)
			assert_int_equal(pvm_memslot_add(x.t, i, 0, (uint64_t)i * K4, K4,
							 HVA(0x7f0000000000 + i * K4), NULL), 0);
		assert_int_equal(pvm_memslot_capacity(x.t), 16);
		snap(x.t, &x.before);
		assert_int_equal(pvm_test_torture(torture_op, torture_unchanged, &x), op == 0 ? 2 : 1);
		if (op == 0) {
			assert_int_equal(pvm_memslot_capacity(x.t), 32);
			assert_ptr_equal(pvm_memslot_gpa_to_hva(x.t, 0x400fffff), HVA(0x7e00000fffff));
		}
		pvm_memslot_table_free(x.t);
	}
}

/* The GPA search starts from hints that go stale between rebuilds (after count/8 changes):
 * slots inserted between existing ones, a far-away slot that stretches the hinted span, and
 * deletions must never give a wrong answer, only a longer search. */
static void test_lookups_with_stale_hints(void **state)
{
	enum { N = 4096 };
	struct pvm_memslot_table *t = new_table(0);
	struct pvm_error err = { 0 };

	for (uint32_t i = 0; i < N; i++)   /* slot i: GPA page 4i, host page i */
		assert_int_equal(pvm_memslot_add(t, i, 0, 4 * i * K4, K4, HVA(0x10000000 + i * K4), &err), 0);
	/* N/8 - 1 slots in the holes (GPA page 4i + 2), the last half of the table first, and one
	 * slot far above everything: none of them triggers a rebuild. */
	assert_int_equal(pvm_memslot_add(t, N, 0, 1ULL << 62, K4, HVA(0x20000000), NULL), 0);
	for (uint32_t j = 0; j < N / 8 - 2; j++) {
		uint32_t i = N - 1 - j * 4;

		assert_int_equal(pvm_memslot_add(t, N + 1 + j, 0, (4 * i + 2) * K4, K4,
						 HVA(0x30000000 + j * K4), NULL), 0);
	}
	for (uint32_t i = 0; i < N; i++) {
		bool hole_used = (N - 1 - i) % 4 == 0 && (N - 1 - i) / 4 < N / 8 - 2;

		assert_ptr_equal(pvm_memslot_gpa_to_hva(t, 4 * i * K4 + 7), HVA(0x10000000 + i * K4 + 7));
		assert_null(pvm_memslot_gpa_to_hva(t, (4 * i + 1) * K4));
		if (hole_used)
			assert_ptr_equal(pvm_memslot_gpa_to_hva(t, (4 * i + 2) * K4),
					 HVA(0x30000000 + (N - 1 - i) / 4 * K4));
		else
			assert_null(pvm_memslot_gpa_to_hva(t, (4 * i + 2) * K4));
	}
	assert_ptr_equal(pvm_memslot_gpa_to_hva(t, (1ULL << 62) + 1), HVA(0x20000001));
	assert_null(pvm_memslot_gpa_to_hva(t, 1ULL << 61));
	assert_null(pvm_memslot_gpa_to_hva(t, UINT64_MAX));
	/* Delete from the front: hints now point past the end or at the wrong slots. */
	for (uint32_t i = 0; i < 300; i++)
		assert_int_equal(pvm_memslot_delete(t, i, NULL), 0);
	for (uint32_t i = 0; i < N; i += 7)
		assert_ptr_equal(pvm_memslot_gpa_to_hva(t, 4 * i * K4), i < 300 ? NULL : HVA(0x10000000 + i * K4));
	pvm_memslot_table_free(t);
	/* Buckets past the top of the GPA space: a span just over 2^61 that ends at the highest
	 * slot KVM allows, so the last buckets would start above 2^64. */
	t = new_table(0);
	assert_int_equal(pvm_memslot_add(t, 0, 0, 0 - (1ULL << 61) - 2 * K4, K4, HVA(0x1000), NULL), 0);
	assert_int_equal(pvm_memslot_add(t, 1, 0, 0 - 2 * K4, K4, HVA(0x2000), NULL), 0);
	assert_ptr_equal(pvm_memslot_gpa_to_hva(t, 0 - 2 * K4 + 5), HVA(0x2005));
	assert_ptr_equal(pvm_memslot_gpa_to_hva(t, 0 - (1ULL << 61) - 2 * K4 + 5), HVA(0x1005));
	assert_null(pvm_memslot_gpa_to_hva(t, UINT64_MAX));
	assert_null(pvm_memslot_gpa_to_hva(t, 0 - (1ULL << 60)));
	assert_null(pvm_memslot_gpa_to_hva(t, 5));
	pvm_memslot_table_free(t);
}

/* Many slots added and deleted in random order, checked against a flat array. */
static void test_random_against_model(void **state)
{
	enum { N = 300 };
	struct pvm_memslot_table *t = new_table(N);
	bool used[N] = { 0 };
	uint64_t gpa_of[N], hva_of[N], serial = 0;

	srand(11);
	for (int i = 0; i < 20000; i++) {
		uint32_t id = (uint32_t)rand() % N;
		uint64_t g = (uint64_t)(rand() % 4096) * K4;

		if (!used[id]) {
			bool clash = false;

			for (int j = 0; j < N; j++)
				clash |= used[j] && gpa_of[j] == g;
			assert_int_equal(pvm_memslot_add(t, id, 0, g, K4, HVA(0x10000000 + serial * K4), NULL),
					 clash ? -EEXIST : 0);
			if (!clash) {
				used[id] = true;
				gpa_of[id] = g;
				hva_of[id] = 0x10000000 + serial++ * K4;   /* never aliased */
			}
		} else if (rand() % 2) {
			assert_int_equal(pvm_memslot_delete(t, id, NULL), 0);
			used[id] = false;
		} else {
			bool clash = false;

			for (int j = 0; j < N; j++)
				clash |= j != (int)id && used[j] && gpa_of[j] == g;
			assert_int_equal(pvm_memslot_move(t, id, g, NULL), clash ? -EEXIST : 0);
			if (!clash)
				gpa_of[id] = g;
		}
		if (i % 64 == 0) {
			uint32_t n = 0;

			for (int j = 0; j < N; j++) {
				uint64_t gpa;

				if (!used[j])
					continue;
				n++;
				assert_ptr_equal(pvm_memslot_gpa_to_hva(t, gpa_of[j] + 1), HVA(hva_of[j] + 1));
				assert_int_equal(pvm_memslot_hva_to_gpa(t, HVA(hva_of[j]), &gpa), 0);
				assert_int_equal(gpa, gpa_of[j]);
			}
			assert_int_equal(pvm_memslot_count(t), n);
		}
	}
	pvm_memslot_table_free(t);
}

/* Heavy host aliasing (slots of 1..8 pages over 32 host pages) under random adds, deletes and
 * moves: after every change, HVA->GPA over the whole host window equals a brute-force answer
 * (the prefix maximum of host ends is updated incrementally and must stay exact). */
static void test_hva_aliasing_random(void **state)
{
	enum { N = 24, HPAGES = 32 };
	struct pvm_memslot_table *t = new_table(0);
	bool used[N] = { 0 };
	uint64_t gpa_of[N], hva_of[N], pages_of[N];

	srand(5);
	for (int step = 0; step < 3000; step++) {
		uint32_t id = (uint32_t)rand() % N;

		if (!used[id]) {
			pages_of[id] = 1 + (uint64_t)(rand() % 8);
			hva_of[id] = 0x10000000 + (uint64_t)(rand() % (HPAGES - 8)) * K4;
			gpa_of[id] = (uint64_t)id << 20;
			assert_int_equal(pvm_memslot_add(t, id, 0, gpa_of[id], pages_of[id] * K4, HVA(hva_of[id]), NULL), 0);
			used[id] = true;
		} else if (rand() % 3) {
			assert_int_equal(pvm_memslot_delete(t, id, NULL), 0);
			used[id] = false;
		} else {   /* a move changes the (hva, gpa) order among slots aliasing the same start */
			gpa_of[id] = ((uint64_t)(N + rand() % 64) << 20);
			if (pvm_memslot_move(t, id, gpa_of[id], NULL) != 0) {
				struct pvm_memslot_info info;

				assert_int_equal(pvm_memslot_get(t, id, &info), 0);
				gpa_of[id] = info.gpa;
			}
		}
		for (uint64_t h = 0x10000000 - K4; h < 0x10000000 + (HPAGES + 1) * K4; h += K4 / 2) {
			int best = -1;
			uint64_t gpa = 0;

			for (int j = 0; j < N; j++)
				if (used[j] && h >= hva_of[j] && h - hva_of[j] < pages_of[j] * K4 &&
				    (best < 0 || hva_of[j] < hva_of[best] ||
				     (hva_of[j] == hva_of[best] && gpa_of[j] < gpa_of[best])))
					best = j;
			if (best < 0) {
				assert_int_equal(pvm_memslot_hva_to_gpa(t, HVA(h), &gpa), -ENOENT);
			} else {
				assert_int_equal(pvm_memslot_hva_to_gpa(t, HVA(h), &gpa), 0);
				assert_int_equal(gpa, gpa_of[best] + (h - hva_of[best]));
			}
		}
	}
	pvm_memslot_table_free(t);
}

/* ---- per-user caches ---------------------------------------------------------------------- */

/* Slot 1 = [0x100000, +0x10000) at 0x7f0000000000, slot 2 = [0x200000, +0x10000) at
 * 0x7f0000100000; the cache is filled with slot 1. */
#define A_GPA 0x100000ULL
#define A_HVA 0x7f0000000000ULL

static void cache_fill_two(struct pvm_memslot_table **t, struct pvm_memslot_cache **c)
{
	*t = new_table(0);
	assert_int_equal(pvm_memslot_add(*t, 1, 0, A_GPA, 0x10000, HVA(A_HVA), NULL), 0);
	assert_int_equal(pvm_memslot_add(*t, 2, 0, 0x200000, 0x10000, HVA(0x7f0000100000), NULL), 0);
	assert_int_equal(pvm_memslot_cache_new(*t, c), 0);
}

static void test_cache_hit_miss(void **state)
{
	struct pvm_memslot_table *t;
	struct pvm_memslot_cache *c, *c2;

	cache_fill_two(&t, &c);
	assert_int_equal(pvm_memslot_cache_new(t, &c2), 0);
	assert_int_equal(c->size, 0);   /* empty: the first lookup misses */
	assert_ptr_equal(c->table, t);
	assert_null(pvm_memslot_cache_gpa_to_hva(c, 0x50000));
	assert_int_equal(c->size, 0);   /* a miss on no slot fills nothing */
	assert_ptr_equal(pvm_memslot_cache_gpa_to_hva(c, A_GPA + 5), HVA(A_HVA + 5));
	assert_int_equal(c->gpa, A_GPA);
	assert_int_equal(c->size, 0x10000);
	assert_int_equal(c->hva, A_HVA);
	assert_int_equal(c->id, 1);
	assert_int_equal(c->slow_access & (PVM_ACCESS_READ | PVM_ACCESS_WRITE), 0);
	assert_int_not_equal(c->slow_access & 4, 0);
	/* hits: first and last byte; a GPA just outside misses and gives the table's answer */
	assert_ptr_equal(pvm_memslot_cache_gpa_to_hva(c, A_GPA), HVA(A_HVA));
	assert_ptr_equal(pvm_memslot_cache_gpa_to_hva(c, A_GPA + 0xffff), HVA(A_HVA + 0xffff));
	assert_null(pvm_memslot_cache_gpa_to_hva(c, A_GPA + 0x10000));
	assert_null(pvm_memslot_cache_gpa_to_hva(c, A_GPA - 1));
	assert_int_equal(c->id, 1);     /* misses on holes keep the cached slot */
	assert_ptr_equal(pvm_memslot_cache_gpa_to_hva(c, 0x20fff0), HVA(0x7f000010fff0));
	assert_int_equal(c->id, 2);
	/* another cache of the same table is independent */
	assert_ptr_equal(pvm_memslot_cache_gpa_to_hva(c2, A_GPA + 7), HVA(A_HVA + 7));
	assert_int_equal(c2->id, 1);
	assert_int_equal(c->id, 2);
	pvm_memslot_cache_free(c2);
	pvm_memslot_cache_free(c);
	pvm_memslot_table_free(t);
}

/* One change applied to the table of cache_fill_two() with the cache holding slot 1. */
struct cache_change {
	char op;          /* 'a' add, 'd' delete, 'm' move, 'f' flags, 's' set */
	uint32_t id;      /* slot */
	uint64_t gpa;     /* add/move/set: the GPA; flags: the flags */
	uintptr_t hva;    /* add/set: host address */
	int rc;           /* golden result */
};

struct cache_case {
	const char *name;                 /* what the case shows */
	struct cache_change ch[2];        /* applied in order (op 0 = none) */
	bool emptied;                     /* golden: the cache was emptied */
	uint64_t gen_delta;               /* golden: generation increase */
	uint64_t probe;                   /* a GPA to look up after the change */
	uintptr_t want;                   /* golden answer (0 = NULL) */
};

static const struct cache_case cache_cases[] = {
	{ "delete the cached slot", { { 'd', 1, 0, 0, 0 } }, true, 1, A_GPA + 5, 0 },
	{ "delete it, re-create the id elsewhere",
	  { { 'd', 1, 0, 0, 0 }, { 'a', 1, 0x900000, 0x7f0000900000, 0 } }, true, 2, A_GPA + 5, 0 },
	{ "delete it, re-create the id at the same GPA over other host memory",
	  { { 'd', 1, 0, 0, 0 }, { 'a', 1, A_GPA, 0x7f0000900000, 0 } }, true, 2, A_GPA + 5, 0x7f0000900005 },
	{ "delete it, another id takes its GPA range",
	  { { 'd', 1, 0, 0, 0 }, { 'a', 7, A_GPA, 0x7f0000a00000, 0 } }, true, 2, A_GPA + 5, 0x7f0000a00005 },
	{ "move the cached slot away", { { 'm', 1, 0x900000, 0, 0 } }, true, 1, A_GPA + 5, 0 },
	{ "move the cached slot: new place", { { 'm', 1, 0x900000, 0, 0 } }, true, 1, 0x900005, A_HVA + 5 },
	{ "move it by one page over itself", { { 'm', 1, A_GPA + K4, 0, 0 } }, true, 1, A_GPA + 5, 0 },
	{ "LOG_DIRTY on", { { 'f', 1, LD, 0, 0 } }, true, 1, A_GPA + 5, A_HVA + 5 },
	{ "set(): move and LOG_DIRTY on", { { 's', 1, 0x900000, A_HVA, 0 } }, true, 2, A_GPA + 5, 0 },
	{ "create another slot", { { 'a', 3, 0x300000, 0x7f0000300000, 0 } }, false, 1, A_GPA + 5, A_HVA + 5 },
	{ "delete another slot", { { 'd', 2, 0, 0, 0 } }, false, 1, A_GPA + 5, A_HVA + 5 },
	{ "move another slot next to it", { { 'm', 2, A_GPA + 0x10000, 0, 0 } }, false, 1, A_GPA + 5, A_HVA + 5 },
	{ "failed move onto it", { { 'm', 2, A_GPA, 0, -EEXIST } }, false, 0, A_GPA + 5, A_HVA + 5 },
	{ "failed flags change (READONLY)", { { 'f', 1, RO, 0, -EINVAL } }, false, 0, A_GPA + 5, A_HVA + 5 },
	{ "identical request", { { 's', 1, A_GPA, A_HVA, 0 } }, false, 0, A_GPA + 5, A_HVA + 5 },
};

static int cache_apply(struct pvm_memslot_table *t, const struct cache_change *ch)
{
	switch (ch->op) {
	case 'a':
		return pvm_memslot_add(t, ch->id, 0, ch->gpa, 0x10000, HVA(ch->hva), NULL);
	case 'd':
		return pvm_memslot_delete(t, ch->id, NULL);
	case 'm':
		return pvm_memslot_move(t, ch->id, ch->gpa, NULL);
	case 'f':
		return pvm_memslot_set_flags(t, ch->id, (uint32_t)ch->gpa, NULL);
	default:   /* 's': the identical request, or a move with LOG_DIRTY when the gpa differs */
		return pvm_memslot_set(t, ch->id, ch->gpa == A_GPA ? 0 : LD, ch->gpa, 0x10000, HVA(ch->hva), NULL);
	}
}

static void test_cache_invalidation(void **state)
{
	for (size_t i = 0; i < PVM_ARRAY_SIZE(cache_cases); i++) {
		const struct cache_case *k = &cache_cases[i];
		struct pvm_memslot_table *t;
		struct pvm_memslot_cache *c;
		uint64_t gen;
		void *got, *hva = NULL;
		int rc;

		cache_fill_two(&t, &c);
		assert_ptr_equal(pvm_memslot_cache_gpa_to_hva(c, A_GPA), HVA(A_HVA));
		gen = pvm_memslot_generation(t);
		for (int j = 0; j < 2 && k->ch[j].op; j++) {
			rc = cache_apply(t, &k->ch[j]);
			if (rc != k->ch[j].rc)
				fail_msg("case '%s': change %d rc %d, expected %d", k->name, j, rc, k->ch[j].rc);
		}
		if ((c->size == 0) != k->emptied)
			fail_msg("case '%s': cache %s", k->name, k->emptied ? "kept" : "emptied");
		if (pvm_memslot_generation(t) - gen != k->gen_delta)
			fail_msg("case '%s': generation +%llu", k->name,
				 (unsigned long long)(pvm_memslot_generation(t) - gen));
		got = pvm_memslot_cache_gpa_to_hva(c, k->probe);
		if (got != HVA(k->want))
			fail_msg("case '%s': cache gives %p, expected 0x%lx", k->name, got, (unsigned long)k->want);
		assert_ptr_equal(got, pvm_memslot_gpa_to_hva(t, k->probe));
		/* the checked path through the cache agrees too (refilled or not) */
		rc = pvm_memslot_cache_translate(c, k->probe, 1, PVM_ACCESS_READ, &hva);
		assert_int_equal(rc, k->want ? 0 : -EFAULT);
		if (k->want)
			assert_ptr_equal(hva, HVA(k->want));
		pvm_memslot_cache_free(c);
		pvm_memslot_table_free(t);
	}
}

/* The checked translation through a cache gives exactly pvm_memslot_translate()'s answers
 * (tr_cases), whatever the cache holds before each case. */
static void test_cache_translate(void **state)
{
	struct pvm_memslot_table *t = new_table(0);
	struct pvm_memslot_cache *c;
	static const uint64_t warm[] = { 0, 0x100000, 0x110000, 0x200000, UINT64_MAX - 0x1fff };

	assert_int_equal(pvm_memslot_add(t, 0, 0, 0x100000, 0x10000, HVA(0x7f0000000000), NULL), 0);
	assert_int_equal(pvm_memslot_add(t, 1, 0, 0x110000, 0x10000, HVA(0x7f0000010000), NULL), 0);
	assert_int_equal(pvm_memslot_add(t, 2, RO, 0x200000, K4, HVA(0x7f0000100000), NULL), 0);
	assert_int_equal(pvm_memslot_add(t, 3, 0, UINT64_MAX - 0x1fff, K4, HVA(0x7f0000200000), NULL), 0);
	assert_int_equal(pvm_memslot_cache_new(t, &c), 0);
	for (size_t w = 0; w < PVM_ARRAY_SIZE(warm); w++) {
		for (size_t i = 0; i < PVM_ARRAY_SIZE(tr_cases); i++) {
			const struct tr_case *k = &tr_cases[i];
			void *hva = HVA(0xdead000);
			int rc;

			(void)pvm_memslot_cache_gpa_to_hva(c, warm[w]);   /* what the cache holds */
			rc = pvm_memslot_cache_translate(c, k->gpa, k->len, k->access, &hva);
			if (rc != k->rc)
				fail_msg("case '%s' (warm 0x%llx): rc %d, expected %d", k->name,
					 (unsigned long long)warm[w], rc, k->rc);
			assert_ptr_equal(hva, rc ? HVA(0xdead000) : HVA(k->hva));
			/* and again, now that the case itself may have filled the cache */
			hva = HVA(0xdead000);
			assert_int_equal(pvm_memslot_cache_translate(c, k->gpa, k->len, k->access, &hva), k->rc);
			assert_ptr_equal(hva, k->rc ? HVA(0xdead000) : HVA(k->hva));
		}
	}
	/* a read-only slot: reads inline, writes left to the library (and refused there) */
	assert_ptr_equal(pvm_memslot_cache_gpa_to_hva(c, 0x200000), HVA(0x7f0000100000));
	assert_int_equal(c->slow_access & PVM_ACCESS_WRITE, PVM_ACCESS_WRITE);
	pvm_memslot_cache_free(c);
	pvm_memslot_table_free(t);
}

/* Writes through a cache on a LOG_DIRTY slot go out of line and mark the pages; reads do not;
 * turning the log off makes writes inline again. */
static void test_cache_dirty(void **state)
{
	struct pvm_memslot_table *t = new_table(0);
	struct pvm_memslot_cache *c;
	uint64_t bm[1];
	void *hva;

	assert_int_equal(pvm_memslot_add(t, 0, LD, 0x100000, 64 * K4, HVA(0x7f0000000000), NULL), 0);
	assert_int_equal(pvm_memslot_cache_new(t, &c), 0);
	assert_int_equal(pvm_memslot_cache_translate(c, 0x100000, 8, PVM_ACCESS_READ, &hva), 0);
	assert_int_equal(c->slow_access & PVM_ACCESS_WRITE, PVM_ACCESS_WRITE);
	assert_int_equal(pvm_memslot_cache_translate(c, 0x103000, 8, PVM_ACCESS_READ, &hva), 0);
	assert_int_equal(pvm_memslot_get_dirty_log(t, 0, bm, 1, false), 0);
	assert_int_equal(bm[0], 0);
	/* page 3 (a write), pages 5-6 (a write across a page boundary), page 63 (read+write) */
	assert_int_equal(pvm_memslot_cache_translate(c, 0x103000, 8, PVM_ACCESS_WRITE, &hva), 0);
	assert_ptr_equal(hva, HVA(0x7f0000003000));
	assert_int_equal(pvm_memslot_cache_translate(c, 0x105ff0, 0x20, PVM_ACCESS_WRITE, &hva), 0);
	assert_int_equal(pvm_memslot_cache_translate(c, 0x13f000, K4, PVM_ACCESS_READ | PVM_ACCESS_WRITE, &hva), 0);
	assert_int_equal(pvm_memslot_get_dirty_log(t, 0, bm, 1, true), 0);
	assert_int_equal(bm[0], (1ULL << 3) | (3ULL << 5) | (1ULL << 63));
	/* the log off: the cache is emptied, refilled without WRITE in slow_access */
	assert_int_equal(pvm_memslot_set_flags(t, 0, 0, NULL), 0);
	assert_int_equal(c->size, 0);
	assert_int_equal(pvm_memslot_cache_translate(c, 0x104000, 8, PVM_ACCESS_WRITE, &hva), 0);
	assert_int_equal(c->slow_access & PVM_ACCESS_WRITE, 0);
	/* and on again: writes are marked again, starting from a clean log */
	assert_int_equal(pvm_memslot_set_flags(t, 0, LD, NULL), 0);
	assert_int_equal(pvm_memslot_cache_translate(c, 0x104000, 8, PVM_ACCESS_WRITE, &hva), 0);
	assert_int_equal(pvm_memslot_cache_translate(c, 0x104000, 8, PVM_ACCESS_WRITE, &hva), 0);
	assert_int_equal(pvm_memslot_get_dirty_log(t, 0, bm, 1, false), 0);
	assert_int_equal(bm[0], 1ULL << 4);
	pvm_memslot_cache_free(c);
	pvm_memslot_table_free(t);
}

static int cache_new_free(void *ctx)
{
	struct pvm_memslot_cache *c;
	int rc = pvm_memslot_cache_new(ctx, &c);

	assert_true(rc == 0 ? c != NULL : c == NULL);
	pvm_memslot_cache_free(c);
	return rc;
}

/* Allocation failure, freeing in any order, and table free with caches still attached. */
static void test_cache_lifecycle(void **state)
{
	struct pvm_memslot_table *t;
	struct pvm_memslot_cache *c[4];
	void *hva = HVA(0x1000);

	cache_fill_two(&t, &c[0]);
	assert_int_equal(pvm_test_torture(cache_new_free, NULL, t), 1);
	pvm_memslot_cache_free(NULL);
	for (int i = 1; i < 4; i++)
		assert_int_equal(pvm_memslot_cache_new(t, &c[i]), 0);
	for (int i = 0; i < 4; i++)
		assert_ptr_equal(pvm_memslot_cache_gpa_to_hva(c[i], A_GPA + (uint64_t)i), HVA(A_HVA + (uint64_t)i));
	pvm_memslot_cache_free(c[2]);   /* the middle of the list */
	pvm_memslot_cache_free(c[3]);   /* its head (the newest) */
	assert_int_equal(pvm_memslot_delete(t, 1, NULL), 0);   /* walks what is left */
	assert_int_equal(c[0]->size, 0);
	assert_int_equal(c[1]->size, 0);
	assert_ptr_equal(pvm_memslot_cache_gpa_to_hva(c[1], 0x200000), HVA(0x7f0000100000));
	/* the table goes first: the caches are detached, miss, and can still be freed */
	pvm_memslot_table_free(t);
	for (int i = 0; i < 2; i++) {
		assert_null(c[i]->table);
		assert_int_equal(c[i]->size, 0);
		assert_null(pvm_memslot_cache_gpa_to_hva(c[i], 0x200000));
		assert_int_equal(pvm_memslot_cache_translate(c[i], 0x200000, 1, PVM_ACCESS_READ, &hva), -EFAULT);
		assert_int_equal(pvm_memslot_cache_translate(c[i], 0x200000, 1, 4, &hva), -EINVAL);
		assert_ptr_equal(hva, HVA(0x1000));
	}
	pvm_memslot_cache_free(c[1]);
	pvm_memslot_cache_free(c[0]);
}

/* Lookups through per-thread caches run in parallel (each thread its own cache). */
struct cache_thread {
	struct pvm_memslot_table *t;   /* shared table */
	unsigned seed;                 /* this thread's GPAs */
	int bad;                       /* wrong answers seen */
};

static void *cache_thread_main(void *opaque)
{
	struct cache_thread *x = opaque;
	struct pvm_memslot_cache *c;

	if (pvm_memslot_cache_new(x->t, &c) != 0) {
		x->bad++;
		return NULL;
	}
	for (int i = 0; i < 200000; i++) {
		uint64_t slot = (uint64_t)(rand_r(&x->seed) % 64), off = (uint64_t)(rand_r(&x->seed) % 0x2000);
		void *want = off < K4 ? HVA(0x7f0000000000 + slot * K4 + off) : NULL;
		void *hva = NULL;

		/* runs of the same slot, so that both hits and misses happen */
		for (int r = 0; r < 4; r++) {
			x->bad += pvm_memslot_cache_gpa_to_hva(c, slot * 0x2000 + off) != want;
			x->bad += (pvm_memslot_cache_translate(c, slot * 0x2000 + off, 1, PVM_ACCESS_READ, &hva) == 0
				   ? hva : NULL) != want;
		}
	}
	pvm_memslot_cache_free(c);
	return NULL;
}

static void test_cache_threads(void **state)
{
	struct pvm_memslot_table *t = new_table(0);
	struct cache_thread x[2] = { { t, 1, 0 }, { t, 2, 0 } };
	pthread_t th[2];

	for (uint64_t i = 0; i < 64; i++)
		assert_int_equal(pvm_memslot_add(t, (uint32_t)i, 0, i * 0x2000, K4, HVA(0x7f0000000000 + i * K4), NULL), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&th[i], NULL, cache_thread_main, &x[i]), 0);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(x[i].bad, 0);
	}
	pvm_memslot_table_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_new_limits),
		cmocka_unit_test(test_fill_to_max_then_one_more),
		cmocka_unit_test(test_set_cases),
		cmocka_unit_test(test_wrappers),
		cmocka_unit_test(test_free_id_lowest_first),
		cmocka_unit_test(test_translate_edges),
		cmocka_unit_test(test_hva_to_gpa),
		cmocka_unit_test(test_for_each_gpa_order),
		cmocka_unit_test(test_lookups_with_stale_hints),
		cmocka_unit_test(test_torture),
		cmocka_unit_test(test_random_against_model),
		cmocka_unit_test(test_hva_aliasing_random),
		cmocka_unit_test(test_cache_hit_miss),
		cmocka_unit_test(test_cache_invalidation),
		cmocka_unit_test(test_cache_translate),
		cmocka_unit_test(test_cache_dirty),
		cmocka_unit_test(test_cache_lifecycle),
		cmocka_unit_test(test_cache_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

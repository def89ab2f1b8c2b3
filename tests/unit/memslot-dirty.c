/* SPDX-License-Identifier: MIT */
/*
 * Dirty logging: WRITE translations mark the pages they cover in LOG_DIRTY slots;
 * pvm_memslot_get_dirty_log() reads and optionally clears the bitmap.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "test-util.h"
#include <pvmem/memslot.h>

#include "core/util.h"

#define K4 0x1000ULL
#define HVA(x) ((void *)(uintptr_t)(x))
#define LD PVM_MEMSLOT_F_LOG_DIRTY

/* Slot 0: 200 pages at GPA 0x100000, dirty-logged. Slot 1: 4 pages at 0x1000000, not logged. */
static struct pvm_memslot_table *setup(void)
{
	struct pvm_memslot_table *t;

	assert_int_equal(pvm_memslot_table_new(0, &t), 0);
	assert_int_equal(pvm_memslot_add(t, 0, LD, 0x100000, 200 * K4, HVA(0x7f0000000000), NULL), 0);
	assert_int_equal(pvm_memslot_add(t, 1, 0, 0x1000000, 4 * K4, HVA(0x7f0001000000), NULL), 0);
	return t;
}

static void write_gpa(struct pvm_memslot_table *t, uint64_t gpa, uint64_t len, unsigned access)
{
	void *hva;

	assert_int_equal(pvm_memslot_translate(t, gpa, len, access, &hva), 0);
}

struct mark_case {
	const char *name;      /* what the case shows */
	uint64_t off;          /* byte offset into slot 0 */
	uint64_t len;          /* bytes */
	unsigned access;       /* PVM_ACCESS_* */
	uint64_t first, last;  /* golden: dirty pages (inclusive), or first > last for none */
};

static const struct mark_case mark_cases[] = {
	{ "one byte", 5 * K4 + 7, 1, PVM_ACCESS_WRITE, 5, 5 },
	{ "straddles two pages", 5 * K4 - 1, 2, PVM_ACCESS_WRITE, 4, 5 },
	{ "read does not mark", 0, 200 * K4, PVM_ACCESS_READ, 1, 0 },
	{ "read+write marks", 63 * K4, K4, PVM_ACCESS_READ | PVM_ACCESS_WRITE, 63, 63 },
	{ "word boundary 63..64", 63 * K4 + 4095, 2, PVM_ACCESS_WRITE, 63, 64 },
	{ "three words 60..130", 60 * K4, 71 * K4, PVM_ACCESS_WRITE, 60, 130 },
	{ "last page", 199 * K4, K4, PVM_ACCESS_WRITE, 199, 199 },
	{ "whole slot", 0, 200 * K4, PVM_ACCESS_WRITE, 0, 199 },
};

static void test_marks(void **state)
{
	for (size_t i = 0; i < PVM_ARRAY_SIZE(mark_cases); i++) {
		const struct mark_case *c = &mark_cases[i];
		struct pvm_memslot_table *t = setup();
		uint64_t bm[4];

		write_gpa(t, 0x100000 + c->off, c->len, c->access);
		memset(bm, 0xa5, sizeof(bm));
		assert_int_equal(pvm_memslot_get_dirty_log(t, 0, bm, 4, false), 0);
		for (uint64_t p = 0; p < 200; p++) {
			bool want = c->first <= c->last && p >= c->first && p <= c->last;

			if (!!(bm[p / 64] & (1ULL << (p % 64))) != want)
				fail_msg("case '%s': page %llu", c->name, (unsigned long long)p);
		}
		assert_int_equal(bm[3] >> 8, 0);   /* bits past the slot's 200 pages are clear */
		pvm_memslot_table_free(t);
	}
}

static void test_get_and_clear(void **state)
{
	struct pvm_memslot_table *t = setup();
	uint64_t bm[4];

	write_gpa(t, 0x100000 + 3 * K4, 8, PVM_ACCESS_WRITE);
	assert_int_equal(pvm_memslot_get_dirty_log(t, 0, bm, 4, false), 0);
	assert_int_equal(bm[0], 1ULL << 3);
	assert_int_equal(pvm_memslot_get_dirty_log(t, 0, bm, 4, true), 0);   /* still there, then cleared */
	assert_int_equal(bm[0], 1ULL << 3);
	assert_int_equal(pvm_memslot_get_dirty_log(t, 0, bm, 4, true), 0);
	assert_int_equal(bm[0], 0);
	write_gpa(t, 0x100000 + 150 * K4, 8, PVM_ACCESS_WRITE);
	assert_int_equal(pvm_memslot_get_dirty_log(t, 0, bm, 4, true), 0);
	assert_int_equal(bm[0] | bm[1] | bm[3], 0);
	assert_int_equal(bm[2], 1ULL << (150 - 128));
	pvm_memslot_table_free(t);
}

static void test_errors(void **state)
{
	struct pvm_memslot_table *t = setup();
	uint64_t bm[4];

	assert_int_equal(pvm_memslot_get_dirty_log(t, 7, bm, 4, false), -ENOENT);
	assert_int_equal(pvm_memslot_get_dirty_log(t, 1, bm, 4, false), -EINVAL);   /* not logged */
	assert_int_equal(pvm_memslot_get_dirty_log(t, 0, bm, 3, false), -EINVAL);   /* 200 pages need 4 */
	assert_int_equal(pvm_memslot_get_dirty_log(t, 0, NULL, 4, false), -EINVAL);
	write_gpa(t, 0x1000000, 8, PVM_ACCESS_WRITE);   /* writes to an unlogged slot are fine */
	pvm_memslot_table_free(t);
}

/* Flag changes and moves, as KVM: enabling starts clean, disabling drops the log, a move
 * keeps it, and an identical request touches nothing. */
static void test_flags_and_moves(void **state)
{
	struct pvm_memslot_table *t = setup();
	uint64_t bm[4];

	write_gpa(t, 0x100000, 1, PVM_ACCESS_WRITE);
	assert_int_equal(pvm_memslot_set(t, 0, LD, 0x100000, 200 * K4, HVA(0x7f0000000000), NULL), 0);
	assert_int_equal(pvm_memslot_move(t, 0, 0x4000000, NULL), 0);
	assert_int_equal(pvm_memslot_get_dirty_log(t, 0, bm, 4, false), 0);
	assert_int_equal(bm[0], 1);
	write_gpa(t, 0x4000000 + K4, 1, PVM_ACCESS_WRITE);
	assert_int_equal(pvm_memslot_get_dirty_log(t, 0, bm, 4, false), 0);
	assert_int_equal(bm[0], 3);
	assert_int_equal(pvm_memslot_set_flags(t, 0, 0, NULL), 0);
	assert_int_equal(pvm_memslot_get_dirty_log(t, 0, bm, 4, false), -EINVAL);
	write_gpa(t, 0x4000000, 1, PVM_ACCESS_WRITE);
	assert_int_equal(pvm_memslot_set_flags(t, 0, LD, NULL), 0);
	assert_int_equal(pvm_memslot_get_dirty_log(t, 0, bm, 4, false), 0);
	assert_int_equal(bm[0] | bm[1] | bm[2] | bm[3], 0);
	/* a move that also turns logging on */
	assert_int_equal(pvm_memslot_set(t, 1, LD, 0x2000000, 4 * K4, HVA(0x7f0001000000), NULL), 0);
	write_gpa(t, 0x2003000, 1, PVM_ACCESS_WRITE);
	assert_int_equal(pvm_memslot_get_dirty_log(t, 1, bm, 1, true), 0);
	assert_int_equal(bm[0], 8);
	pvm_memslot_table_free(t);
}

/* Concurrent writers on disjoint pages and a concurrent clearing reader: no mark is lost. */
struct writer {
	struct pvm_memslot_table *t;   /* shared table */
	uint64_t first;                /* first page this writer marks (every other page) */
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;

	for (int round = 0; round < 50; round++)
		for (uint64_t p = w->first; p < 200; p += 2) {
			void *hva;

			if (pvm_memslot_translate(w->t, 0x100000 + p * K4, 1, PVM_ACCESS_WRITE, &hva) != 0)
				return (void *)1;
		}
	return NULL;
}

static void test_concurrent_marks(void **state)
{
	struct pvm_memslot_table *t = setup();
	struct writer w[2] = { { t, 0 }, { t, 1 } };
	pthread_t th[2];
	uint64_t acc[4] = { 0 }, bm[4];
	void *ret;

	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&th[i], NULL, writer_main, &w[i]), 0);
	for (int i = 0; i < 100; i++) {
		assert_int_equal(pvm_memslot_get_dirty_log(t, 0, bm, 4, true), 0);
		for (int k = 0; k < 4; k++)
			acc[k] |= bm[k];
	}
	for (int i = 0; i < 2; i++) {
		assert_int_equal(pthread_join(th[i], &ret), 0);
		assert_null(ret);
	}
	assert_int_equal(pvm_memslot_get_dirty_log(t, 0, bm, 4, true), 0);
	for (int k = 0; k < 4; k++)
		acc[k] |= bm[k];
	assert_int_equal(acc[0] & acc[1] & acc[2], ~0ULL);
	assert_int_equal(acc[3], 0xff);
	pvm_memslot_table_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_marks),
		cmocka_unit_test(test_get_and_clear),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_flags_and_moves),
		cmocka_unit_test(test_concurrent_marks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

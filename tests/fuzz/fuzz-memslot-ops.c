/* SPDX-License-Identifier: MIT */
/*
 * Random operation sequences on a memslot table, checked against a reference model: a flat
 * array indexed by slot id with linear scans, written from KVM's rules (research §5.5) and not
 * from memslot.c. Every error code, every lookup and translation, the dirty logs and (after
 * every operation) the whole slot list must agree. An op may inject an allocation failure: it
 * must then either not allocate or fail with -ENOMEM and change nothing.
 *
 * Two per-user caches live across the whole sequence, so that they are filled before changes
 * and used after them: cache A follows every GPA check, cache B the translations and lookups
 * of ops 5 and 6 (bit 6 of those ops replaces it with a new one). Lookups through them must
 * give the table's answers, and after every op a non-empty cache must be an exact copy of a
 * slot the model has (never a stale one).
 *
 * Input: byte 0 picks the table's maximum (1..64); then ops of a few bytes each (see
 * next_op()). Bounded: at most 4 KiB of input, 512 ops, 64 slots.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <pvmem/memslot.h>

#include "core/alloc-priv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAXS 64
#define PG 4096ULL
#define LD PVM_MEMSLOT_F_LOG_DIRTY
#define RO PVM_MEMSLOT_F_READONLY

#define CHECK(c)                  \
	do {                      \
		if (!(c))         \
			abort();  \
	} while (0)

struct mslot {
	bool used;        /* slot exists */
	uint32_t flags;   /* PVM_MEMSLOT_F_* */
	uint64_t gpa;     /* start */
	uint64_t size;    /* bytes */
	uintptr_t hva;    /* host start */
	uint64_t dirty;   /* dirty pages (LOG_DIRTY slots have at most 64 pages here) */
};

struct model {
	uint32_t max;              /* ids < max */
	struct mslot s[MAXS];      /* indexed by id */
};

struct input {
	const uint8_t *p;   /* next byte */
	size_t left;        /* bytes left */
};

static struct pvm_memslot_cache *cache_a;   /* follows check_gpa() */
static struct pvm_memslot_cache *cache_b;   /* follows ops 5 and 6 */

static uint8_t u8(struct input *in)
{
	if (!in->left)
		return 0;
	in->left--;
	return *in->p++;
}

static uint16_t u16(struct input *in)
{
	return (uint16_t)(u8(in) | (u8(in) << 8));
}

/* Guest addresses: low pages, the top of the space, misaligned, or widely spread. */
static uint64_t gpa_of(struct input *in)
{
	uint16_t v = u16(in);
	uint64_t n = v & 0x3fff;

	switch (v >> 14) {
	case 0:
		return n * PG;
	case 1:
		return 0 - n * PG;
	case 2:
		return n * PG + (n & 0xfff);
	default:
		return n * PG << 20;
	}
}

/* Sizes: 0..63 pages, misaligned, or around KVM's 2^31-1 page limit. */
static uint64_t size_of(struct input *in)
{
	uint8_t v = u8(in);
	uint64_t n = v & 0x3f;

	switch (v >> 6) {
	case 0:
	case 1:
		return n * PG;
	case 2:
		return n * PG + 1;
	default:
		return ((1ULL << 31) - n) * PG;
	}
}

/* Host addresses: 64 overlapping windows (aliasing), misaligned, NULL or wrapping. */
static uintptr_t hva_of(struct input *in)
{
	uint8_t v = u8(in);

	if (v == 0xff)
		return 0;
	if (v == 0xfe)
		return UINTPTR_MAX - PG + 1;
	return 0x100000000000ULL + (uintptr_t)(v & 0x3f) * 16 * PG + (v & 0x40 ? 8 : 0);
}

static bool overlap(const struct model *m, uint32_t id, uint64_t gpa, uint64_t size)
{
	for (uint32_t i = 0; i < MAXS; i++)
		if (i != id && m->s[i].used && gpa < m->s[i].gpa + m->s[i].size && m->s[i].gpa < gpa + size)
			return true;
	return false;
}

/* KVM_SET_USER_MEMORY_REGION on the model. */
static int model_set(struct model *m, uint32_t id, uint32_t flags, uint64_t gpa, uint64_t size,
		     uintptr_t hva)
{
	struct mslot *o;
	uint64_t end;

	if (flags & ~(LD | RO))
		return -EINVAL;
	if ((size | gpa | hva) & (PG - 1))
		return -EINVAL;
	if (size && (hva == 0 || hva + size < hva || hva + size == 0))
		return -EINVAL;
	if (id >= m->max)
		return -EINVAL;
	end = gpa + size;
	if (end < gpa || (size && end == 0))
		return -EINVAL;
	if (size / PG > (1ULL << 31) - 1)
		return -EINVAL;
	o = &m->s[id];
	if (size == 0) {
		if (!o->used)
			return -EINVAL;
		memset(o, 0, sizeof(*o));
		return 0;
	}
	if (!o->used) {
		if (overlap(m, id, gpa, size))
			return -EEXIST;
		*o = (struct mslot){ true, flags, gpa, size, hva, 0 };
		return 0;
	}
	if (o->hva != hva || o->size != size || ((o->flags ^ flags) & RO))
		return -EINVAL;
	if (o->gpa != gpa && overlap(m, id, gpa, size))
		return -EEXIST;
	if ((o->flags ^ flags) & LD)
		o->dirty = 0;   /* turned on: starts clean; turned off: gone */
	o->gpa = gpa;
	o->flags = flags;
	return 0;
}

static const struct mslot *model_find(const struct model *m, uint64_t gpa)
{
	for (uint32_t i = 0; i < MAXS; i++)
		if (m->s[i].used && gpa >= m->s[i].gpa && gpa - m->s[i].gpa < m->s[i].size)
			return &m->s[i];
	return NULL;
}

static void check_gpa(struct pvm_memslot_table *t, struct model *m, uint64_t gpa)
{
	const struct mslot *s = model_find(m, gpa);
	struct pvm_memslot_info info;
	void *hva = pvm_memslot_gpa_to_hva(t, gpa);

	void *chva = NULL;

	CHECK(hva == (s ? (void *)(s->hva + (gpa - s->gpa)) : NULL));
	CHECK(pvm_memslot_cache_gpa_to_hva(cache_a, gpa) == hva);
	CHECK(pvm_memslot_cache_translate(cache_a, gpa, 1, PVM_ACCESS_READ, &chva) == (s ? 0 : -EFAULT));
	CHECK(chva == hva);
	if (!s) {
		CHECK(pvm_memslot_lookup_gpa(t, gpa, &info) == -ENOENT);
		return;
	}
	CHECK(pvm_memslot_lookup_gpa(t, gpa, &info) == 0);
	CHECK(info.id == (uint32_t)(s - m->s) && info.gpa == s->gpa && info.size == s->size &&
	      info.flags == s->flags && info.hva == (void *)s->hva);
}

static void check_hva(struct pvm_memslot_table *t, struct model *m, uintptr_t hva)
{
	const struct mslot *best = NULL;
	uint64_t gpa = 0;

	for (uint32_t i = 0; i < MAXS; i++) {
		const struct mslot *s = &m->s[i];

		if (s->used && hva >= s->hva && hva - s->hva < s->size &&
		    (!best || s->hva < best->hva || (s->hva == best->hva && s->gpa < best->gpa)))
			best = s;
	}
	if (!best) {
		CHECK(pvm_memslot_hva_to_gpa(t, (void *)hva, &gpa) == -ENOENT);
		return;
	}
	CHECK(pvm_memslot_hva_to_gpa(t, (void *)hva, &gpa) == 0);
	CHECK(gpa == best->gpa + (hva - best->hva));
}

static void check_translate(struct pvm_memslot_table *t, struct model *m, uint64_t gpa, uint64_t len,
			    unsigned access)
{
	struct mslot *s = (struct mslot *)model_find(m, gpa);
	void *hva = NULL;
	int want = 0, rc = pvm_memslot_translate(t, gpa, len, access, &hva);

	if (access & ~3u)
		want = -EINVAL;
	else if (!s || len == 0 || len > s->size - (gpa - s->gpa) ||
		 ((access & PVM_ACCESS_WRITE) && (s->flags & RO)))
		want = -EFAULT;
	void *chva = NULL;

	CHECK(rc == want);
	/* the same through cache B (a WRITE marks the same pages again: harmless) */
	CHECK(pvm_memslot_cache_translate(cache_b, gpa, len, access, &chva) == want);
	CHECK(chva == (rc ? NULL : hva));
	if (rc)
		return;
	CHECK(hva == (void *)(s->hva + (gpa - s->gpa)));
	if ((access & PVM_ACCESS_WRITE) && (s->flags & LD)) {
		uint64_t first = (gpa - s->gpa) / PG, last = (gpa - s->gpa + len - 1) / PG;

		for (uint64_t p = first; p <= last; p++)
			s->dirty |= 1ULL << p;
	}
}

static int collect(void *opaque, const struct pvm_memslot_info *slot)
{
	struct pvm_memslot_info *out = opaque;

	CHECK(slot->id < MAXS);
	out[slot->id] = *slot;
	return 0;
}

/* A non-empty cache is an exact copy of a slot of the model. */
static void check_cache(const struct pvm_memslot_cache *c, const struct model *m)
{
	const struct mslot *s;

	if (c->size == 0)
		return;
	CHECK(c->id < MAXS);
	s = &m->s[c->id];
	CHECK(s->used && c->gpa == s->gpa && c->size == s->size && c->hva == s->hva);
	CHECK(!!(c->slow_access & PVM_ACCESS_WRITE) == !!(s->flags & (LD | RO)));
	CHECK(!(c->slow_access & PVM_ACCESS_READ) && (c->slow_access & 4));
}

/* The whole table equals the model: slots, count, GPA order of the walk, free id. */
static void check_all(struct pvm_memslot_table *t, struct model *m)
{
	struct pvm_memslot_info got[MAXS];
	uint32_t n = 0, id = 0, free_id = UINT32_MAX;

	check_cache(cache_a, m);   /* before the checks below refill it */
	check_cache(cache_b, m);
	memset(got, 0, sizeof(got));
	CHECK(pvm_memslot_for_each(t, collect, got) == 0);
	for (uint32_t i = 0; i < MAXS; i++) {
		const struct mslot *s = &m->s[i];

		if (!s->used) {
			if (free_id == UINT32_MAX && i < m->max)
				free_id = i;
			CHECK(got[i].size == 0);
			continue;
		}
		n++;
		CHECK(got[i].id == i && got[i].gpa == s->gpa && got[i].size == s->size &&
		      got[i].flags == s->flags && got[i].hva == (void *)s->hva);
		check_gpa(t, m, s->gpa);
		check_gpa(t, m, s->gpa + s->size - 1);
		check_gpa(t, m, s->gpa + s->size);
		check_gpa(t, m, s->gpa - 1);
		check_hva(t, m, s->hva + s->size - 1);
	}
	CHECK(pvm_memslot_count(t) == n);
	CHECK(pvm_memslot_capacity(t) >= n && pvm_memslot_capacity(t) <= m->max);
	if (free_id == UINT32_MAX)
		CHECK(pvm_memslot_free_id(t, &id) == -ENOSPC);
	else
		CHECK(pvm_memslot_free_id(t, &id) == 0 && id == free_id);
}

static void dirty_log(struct pvm_memslot_table *t, struct model *m, uint32_t id, bool clear)
{
	uint64_t bm[2] = { 0, 0 };
	int rc = pvm_memslot_get_dirty_log(t, id, bm, 2, clear);
	struct mslot *s = id < MAXS ? &m->s[id] : NULL;

	if (!s || !s->used) {
		CHECK(rc == -ENOENT);
		return;
	}
	if (!(s->flags & LD)) {
		CHECK(rc == -EINVAL);
		return;
	}
	/* Slots with LOG_DIRTY have at most 64 pages here (see next_op()). */
	CHECK(rc == 0 && bm[0] == s->dirty && bm[1] == 0);
	if (clear)
		s->dirty = 0;
}

/* One operation: op byte (low 3 bits: kind; bit 7: fail the next allocation), then fields. */
static void next_op(struct pvm_memslot_table *t, struct model *m, struct input *in)
{
	uint8_t op = u8(in);
	uint32_t id = u8(in) % (MAXS + 2);
	struct model before = *m;
	uint32_t flags;
	uint64_t gpa, size;
	uintptr_t hva;
	int want, rc;

	switch (op & 7) {
	case 0: /* set */
	case 1: /* add */
		flags = u8(in) & 7;
		gpa = gpa_of(in);
		size = size_of(in);
		hva = hva_of(in);
		if (size > 64 * PG)
			flags &= ~LD;   /* keeps dirty bitmaps (real and model) small */
		if ((op & 7) == 1 && id < m->max && m->s[id].used)
			want = -EEXIST;
		else if ((op & 7) == 1 && size == 0)
			want = -EINVAL;
		else
			want = model_set(m, id, flags, gpa, size, hva);
		if (op & 0x80)
			pvm_alloc_fail_at(1);
		rc = (op & 7) == 1 ? pvm_memslot_add(t, id, flags, gpa, size, (void *)hva, NULL)
				   : pvm_memslot_set(t, id, flags, gpa, size, (void *)hva, NULL);
		break;
	case 2: /* delete */
		want = model_set(m, id, 0, 0, 0, 0);
		rc = pvm_memslot_delete(t, id, NULL);
		break;
	case 3: /* move */
	case 4: /* flags */
		gpa = gpa_of(in);
		flags = u8(in) & 7;
		if (id >= MAXS || !m->s[id].used) {
			want = -ENOENT;
		} else {
			const struct mslot s = m->s[id];

			if (s.size > 64 * PG)
				flags &= ~LD;
			want = (op & 7) == 3 ? model_set(m, id, s.flags, gpa, s.size, s.hva)
					     : model_set(m, id, flags, s.gpa, s.size, s.hva);
		}
		if (op & 0x80)
			pvm_alloc_fail_at(1);
		rc = (op & 7) == 3 ? pvm_memslot_move(t, id, gpa, NULL) : pvm_memslot_set_flags(t, id, flags, NULL);
		break;
	case 5: /* translate */
		if (op & 0x40) {
			pvm_memslot_cache_free(cache_b);
			if (pvm_memslot_cache_new(t, &cache_b) != 0)
				abort();
		}
		gpa = gpa_of(in);
		size = u16(in);
		if (size & 0x8000)
			size = UINT64_MAX - (size & 0x7fff);
		check_translate(t, m, gpa, size, u8(in) & 7);
		return;
	case 6: /* lookups by host address and GPA */
		hva = hva_of(in) + u16(in);
		check_hva(t, m, hva);
		gpa = gpa_of(in) + u8(in);
		check_gpa(t, m, gpa);
		CHECK(pvm_memslot_cache_gpa_to_hva(cache_b, gpa) == pvm_memslot_gpa_to_hva(t, gpa));
		check_cache(cache_b, m);
		return;
	default:
		dirty_log(t, m, id, op & 8);
		return;
	}
	if (pvm_alloc_failed() && rc == -ENOMEM) {
		*m = before;   /* the failure must have left the table as it was */
	} else {
		CHECK(rc == want);
	}
	pvm_alloc_fail_at(0);
	check_all(t, m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size };
	struct pvm_memslot_table *t;
	struct model m;

	if (size == 0 || size > 4096)
		return 0;
	memset(&m, 0, sizeof(m));
	m.max = 1 + u8(&in) % MAXS;
	if (pvm_memslot_table_new(m.max, &t) != 0 || pvm_memslot_cache_new(t, &cache_a) != 0 ||
	    pvm_memslot_cache_new(t, &cache_b) != 0)
		abort();
	for (int i = 0; i < 512 && in.left; i++)
		next_op(t, &m, &in);
	check_all(t, &m);
	pvm_memslot_cache_free(cache_a);
	pvm_memslot_table_free(t);   /* cache B goes after its table: detached, still freed */
	CHECK(cache_b->table == NULL && pvm_memslot_cache_gpa_to_hva(cache_b, 0) == NULL);
	pvm_memslot_cache_free(cache_b);
	cache_a = cache_b = NULL;
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * pvmem bench memslots: the cost of a GPA lookup in the memslot table, against baselines in the
 * same run (research §7.6):
 *   lookup_32764_vs_8        random-GPA lookup at 32764 slots / at 8 slots       (target <= 3)
 *   linear_scan_vs_lookup    linear scan of the 32764 slots / table lookup       (target >= 100)
 *   cache_hit_vs_array_index repeated lookup of one slot through a per-user cache
 *                            (pvm_memslot_cache_gpa_to_hva(), inline) / an inlined array index
 *                            slots[i].hva + (gpa - slots[i].gpa)                (target <= 1.5)
 * Every loop reads its GPAs from the same kind of precomputed array (no RNG in the timed part).
 * The two sides of the cache ratio have the same loop shape: both inline, each result stored
 * into a volatile sink, and a compiler barrier per iteration, so that neither side can keep
 * its state (the cache, the slot) in registers or vectorise: both reload it from memory every
 * time, as real device code does between other work. The other loops call the library and fold
 * their results into a sum that ends in the sink. Rounds of all loops are interleaved (the
 * machine is shared) and each figure is the median of its rounds.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <pvmem/memslot.h>

#include "bench.h"

#define SLOT_SIZE (2ULL << 20)              /* 2 MiB slots ... */
#define SLOT_STRIDE (2 * SLOT_SIZE)         /* ... with 2 MiB holes between them */
#define HVA_BASE 0x100000000000ULL          /* made-up host addresses, never dereferenced */
#define NGPAS (1u << 16)                    /* random GPAs per array (512 KiB) */

static volatile uintptr_t sink;

/* A flat copy of the table, for the baselines. */
struct flat {
	uint64_t gpa;    /* start */
	uint64_t size;   /* bytes */
	uintptr_t hva;   /* host start */
};

struct flat_fill {
	struct flat *f;   /* destination */
	uint32_t n;       /* filled so far */
};

static int flat_one(void *opaque, const struct pvm_memslot_info *s)
{
	struct flat_fill *ff = opaque;

	ff->f[ff->n++] = (struct flat){ s->gpa, s->size, (uintptr_t)s->hva };
	return 0;
}

/* xorshift64*: deterministic, only used to fill the arrays before timing. */
static uint64_t rnd(uint64_t *st)
{
	*st ^= *st >> 12;
	*st ^= *st << 25;
	*st ^= *st >> 27;
	return *st * 2685821657736338717ULL;
}

static int make_table(uint32_t n, struct pvm_memslot_table **out)
{
	int rc = pvm_memslot_table_new(0, out);

	for (uint32_t i = 0; rc == 0 && i < n; i++)
		rc = pvm_memslot_add(*out, i, 0, i * SLOT_STRIDE, SLOT_SIZE,
				     (void *)(uintptr_t)(HVA_BASE + i * SLOT_SIZE), NULL);
	if (rc < 0) {
		pvm_memslot_table_free(*out);
		*out = NULL;
	}
	return rc;
}

/* @n slots of random sizes (4 KiB .. 1 GiB) with random holes, in random id order: the GPA
 * hints are least exact here. */
static int make_skewed_table(uint32_t n, struct pvm_memslot_table **out)
{
	uint64_t seed = 99, gpa = 0;
	uintptr_t hva = HVA_BASE;
	int rc = pvm_memslot_table_new(0, out);

	for (uint32_t i = 0; rc == 0 && i < n; i++) {
		uint64_t size = 4096ULL << (rnd(&seed) % 19);

		gpa += 4096ULL << (rnd(&seed) % 19);
		rc = pvm_memslot_add(*out, (i * 7919u) % n, 0, gpa, size, (void *)hva, NULL);
		gpa += size;
		hva += size;
	}
	if (rc < 0) {
		pvm_memslot_table_free(*out);
		*out = NULL;
	}
	return rc;
}

/* 1000 delete + add cycles of the slot in the middle of a table made by make_table(@n). */
static int delete_add_cycles(struct pvm_memslot_table *t, uint32_t n, double *us)
{
	uint32_t id = n / 2;
	double t0 = pvm_bench_now();
	int rc = 0;

	for (uint32_t i = 0; rc == 0 && i < 1000; i++) {
		rc = pvm_memslot_delete(t, id, NULL);
		if (rc == 0)
			rc = pvm_memslot_add(t, id, 0, id * SLOT_STRIDE, SLOT_SIZE,
					     (void *)(uintptr_t)(HVA_BASE + id * SLOT_SIZE), NULL);
	}
	*us = (pvm_bench_now() - t0) * 1e6 / 1000;
	return rc;
}

/* Random GPAs inside the @n slots of @f. */
static void fill_gpas_flat(uint64_t *g, const struct flat *f, uint32_t n, uint64_t seed)
{
	for (uint32_t i = 0; i < NGPAS; i++) {
		const struct flat *s = &f[rnd(&seed) % n];

		g[i] = s->gpa + rnd(&seed) % s->size;
	}
}

/* Random GPAs inside slots [0, nslots) (any slot when @one is false, else slot @one_slot). */
static void fill_gpas(uint64_t *g, uint32_t nslots, bool one, uint32_t one_slot, uint64_t seed)
{
	for (uint32_t i = 0; i < NGPAS; i++) {
		uint64_t slot = one ? one_slot : rnd(&seed) % nslots;

		g[i] = slot * SLOT_STRIDE + rnd(&seed) % SLOT_SIZE;
	}
}

/* One timed round of one kind of loop; returns ns per operation. */
enum kind { LOOKUP, TRANSLATE, HVA_TO_GPA, LINEAR, INDEX, CACHE_HIT, CACHE_TRANSLATE, GEN_CACHE };

#define MAX_ROUNDS 32

struct subject {
	enum kind kind;                         /* which loop */
	const struct pvm_memslot_table *t;      /* LOOKUP, TRANSLATE, HVA_TO_GPA */
	const struct flat *f;                   /* LINEAR, INDEX */
	uint32_t n;                             /* LINEAR: slots; INDEX: the slot */
	const uint64_t *g;                      /* the GPAs */
	uint32_t count;                         /* GPAs per round (<= NGPAS) */
	uint32_t reps;                          /* passes over them per round */
	struct pvm_memslot_cache *c;            /* CACHE_*: the cache */
	int nr;                                 /* rounds done */
	double ns[MAX_ROUNDS];                  /* ns per operation, per round */
};

/* The design the library did not take, for comparison: a copy of the slot validated by a
 * generation check on every hit (KVM's vcpu->last_used_slot_gen) instead of being emptied by
 * the table. Same fields as a struct pvm_memslot_cache, plus the generation and its pointer. */
struct gen_cache {
	uint64_t gpa;             /* cached slot start */
	uint64_t size;            /* its size, 0 = empty */
	uintptr_t hva;            /* its host start */
	uint64_t gen;             /* generation when filled */
	const uint64_t *genp;     /* the table's generation */
	struct flat slot;         /* what a miss fills in */
};

__attribute__((noinline)) static void *gen_cache_miss(struct gen_cache *c, uint64_t gpa)
{
	c->gpa = c->slot.gpa;
	c->size = c->slot.size;
	c->hva = c->slot.hva;
	c->gen = *c->genp;
	return gpa - c->gpa < c->size ? (void *)(c->hva + (uintptr_t)(gpa - c->gpa)) : NULL;
}

static inline void *gen_cache_lookup(struct gen_cache *c, uint64_t gpa)
{
	uint64_t off = gpa - c->gpa;

	if (__builtin_expect(off < c->size && *c->genp == c->gen, 1))
		return (void *)(c->hva + (uintptr_t)off);
	return gen_cache_miss(c, gpa);
}

static uint64_t gen_counter = 1;              /* the generation for gen_cache */
static struct gen_cache gen_cache_storage;    /* filled by pvm_bench_memslots() */

#define BARRIER() __asm__ volatile("" ::: "memory")

/* One loop per kind, so that no subject pays for another's dispatch. */
static uintptr_t loop(const struct subject *s)
{
	const uint64_t *g = s->g;
	const uint32_t count = s->count, reps = s->reps;
	uintptr_t acc = 0;

	switch (s->kind) {
	case LOOKUP:
		for (uint32_t k = 0; k < reps; k++)
			for (uint32_t i = 0; i < count; i++)
				acc += (uintptr_t)pvm_memslot_gpa_to_hva(s->t, g[i]);
		break;
	case TRANSLATE:
		for (uint32_t k = 0; k < reps; k++)
			for (uint32_t i = 0; i < count; i++) {
				void *hva = NULL;

				if (pvm_memslot_translate(s->t, g[i], 8, PVM_ACCESS_READ, &hva) == 0)
					acc += (uintptr_t)hva;
			}
		break;
	case HVA_TO_GPA:
		for (uint32_t k = 0; k < reps; k++)
			for (uint32_t i = 0; i < count; i++) {
				/* the host address of GPA g[i]: slot g / stride, same offset */
				uintptr_t h = HVA_BASE + g[i] / SLOT_STRIDE * SLOT_SIZE + g[i] % SLOT_STRIDE;
				uint64_t gpa = 0;

				(void)pvm_memslot_hva_to_gpa(s->t, (void *)h, &gpa);
				acc += gpa;
			}
		break;
	case LINEAR:
		for (uint32_t k = 0; k < reps; k++)
			for (uint32_t i = 0; i < count; i++)
				for (uint32_t j = 0; j < s->n; j++)
					if (g[i] - s->f[j].gpa < s->f[j].size) {
						acc += s->f[j].hva + (uintptr_t)(g[i] - s->f[j].gpa);
						break;
					}
		break;
	case INDEX: {
		/* The baseline: a plain array index, inline, the slot reloaded every time. */
		const struct flat *slots = s->f;
		const uint32_t n = s->n;

		for (uint32_t k = 0; k < reps; k++)
			for (uint32_t i = 0; i < count; i++) {
				sink = slots[n].hva + (uintptr_t)(g[i] - slots[n].gpa);
				BARRIER();
			}
		break;
	}
	case CACHE_HIT: {
		struct pvm_memslot_cache *c = s->c;

		for (uint32_t k = 0; k < reps; k++)
			for (uint32_t i = 0; i < count; i++) {
				sink = (uintptr_t)pvm_memslot_cache_gpa_to_hva(c, g[i]);
				BARRIER();
			}
		break;
	}
	case CACHE_TRANSLATE: {
		struct pvm_memslot_cache *c = s->c;

		for (uint32_t k = 0; k < reps; k++)
			for (uint32_t i = 0; i < count; i++) {
				void *hva = NULL;

				if (pvm_memslot_cache_translate(c, g[i], 8, PVM_ACCESS_READ, &hva) == 0)
					sink = (uintptr_t)hva;
				BARRIER();
			}
		break;
	}
	case GEN_CACHE: {
		struct gen_cache *c = &gen_cache_storage;

		for (uint32_t k = 0; k < reps; k++)
			for (uint32_t i = 0; i < count; i++) {
				sink = (uintptr_t)gen_cache_lookup(c, g[i]);
				BARRIER();
			}
		break;
	}
	}
	return acc;
}

static void run_round(struct subject *s)
{
	struct subject warm = *s;
	double t0, ns;

	/* One untimed pass first: the previous subject evicted this one's data from the caches. */
	warm.reps = 1;
	sink = loop(&warm);
	t0 = pvm_bench_now();
	sink = loop(s);
	ns = (pvm_bench_now() - t0) * 1e9 / ((double)s->reps * s->count);
	if (s->nr < MAX_ROUNDS)
		s->ns[s->nr++] = ns;
}

/* Rounds of all subjects, interleaved, so that a busy machine slows them alike. */
static void run_all(struct subject *s, size_t n, int rounds)
{
	for (int r = 0; r < rounds; r++)
		for (size_t i = 0; i < n; i++)
			run_round(&s[i]);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* The median of a subject's rounds. */
static double median(struct subject *s)
{
	double v[MAX_ROUNDS];

	memcpy(v, s->ns, sizeof(v));
	qsort(v, (size_t)s->nr, sizeof(v[0]), cmp_double);
	return s->nr % 2 ? v[s->nr / 2] : (v[s->nr / 2 - 1] + v[s->nr / 2]) / 2;
}

int pvm_bench_memslots(const struct pvm_bench_opts *opts, struct pvm_bench_report *r)
{
	const uint32_t nbig = PVM_MEMSLOT_MAX_USER, reps = opts->quick ? 2 : 8;
	const int rounds = opts->quick ? 3 : 15;
	struct pvm_memslot_table *t8 = NULL, *t509 = NULL, *tbig = NULL, *tskew = NULL;
	struct pvm_memslot_cache *cache = NULL;
	uint64_t *g8 = NULL, *g509 = NULL, *gbig = NULL, *ghit = NULL, *gskew = NULL;
	struct flat *flat = NULL, *fskew = NULL;
	struct flat_fill ff;
	double t0, build_ms, cycle_us = 0, cycle509_us = 0;
	int rc;

	g8 = malloc(NGPAS * sizeof(*g8));
	g509 = malloc(NGPAS * sizeof(*g509));
	gbig = malloc(NGPAS * sizeof(*gbig));
	ghit = malloc(NGPAS * sizeof(*ghit));
	gskew = malloc(NGPAS * sizeof(*gskew));
	flat = calloc(nbig, sizeof(*flat));
	fskew = calloc(nbig, sizeof(*fskew));
	rc = (!g8 || !g509 || !gbig || !ghit || !gskew || !flat || !fskew) ? -ENOMEM : 0;
	if (rc == 0)
		rc = make_table(8, &t8);
	if (rc == 0)
		rc = make_table(509, &t509);
	t0 = pvm_bench_now();
	if (rc == 0)
		rc = make_table(nbig, &tbig);
	build_ms = (pvm_bench_now() - t0) * 1e3;
	if (rc == 0)
		rc = make_skewed_table(nbig, &tskew);
	if (rc == 0)
		rc = delete_add_cycles(t509, 509, &cycle509_us);
	if (rc == 0)
		rc = delete_add_cycles(tbig, nbig, &cycle_us);
	if (rc == 0)
		rc = pvm_memslot_cache_new(tbig, &cache);
	if (rc < 0)
		goto out;
	ff = (struct flat_fill){ flat, 0 };
	(void)pvm_memslot_for_each(tbig, flat_one, &ff);
	ff = (struct flat_fill){ fskew, 0 };
	(void)pvm_memslot_for_each(tskew, flat_one, &ff);
	fill_gpas_flat(gskew, fskew, nbig, 5);
	fill_gpas(g8, 8, false, 0, 1);
	fill_gpas(g509, 509, false, 0, 2);
	fill_gpas(gbig, nbig, false, 0, 3);
	fill_gpas(ghit, nbig, true, 12345, 4);
	gen_cache_storage = (struct gen_cache){ .genp = &gen_counter, .slot = flat[12345] };
	{
		enum { L8, L509, LBIG, SCAN, HIT, CHIT, IDX, CTR, GEN, TR, H2G, SKEW, N };
		struct subject s[N] = {
			[L8] = { LOOKUP, t8, NULL, 0, g8, NGPAS, reps, NULL, 0, { 0 } },
			[L509] = { LOOKUP, t509, NULL, 0, g509, NGPAS, reps, NULL, 0, { 0 } },
			[LBIG] = { LOOKUP, tbig, NULL, 0, gbig, NGPAS, reps, NULL, 0, { 0 } },
			[SCAN] = { LINEAR, NULL, flat, nbig, gbig, opts->quick ? 20 : 100, 1, NULL, 0, { 0 } },
			[HIT] = { LOOKUP, tbig, NULL, 0, ghit, NGPAS, reps, NULL, 0, { 0 } },
			[CHIT] = { CACHE_HIT, NULL, NULL, 0, ghit, NGPAS, reps, cache, 0, { 0 } },
			[IDX] = { INDEX, NULL, flat, 12345, ghit, NGPAS, reps, NULL, 0, { 0 } },
			[CTR] = { CACHE_TRANSLATE, NULL, NULL, 0, ghit, NGPAS, reps, cache, 0, { 0 } },
			[GEN] = { GEN_CACHE, NULL, NULL, 0, ghit, NGPAS, reps, NULL, 0, { 0 } },
			[TR] = { TRANSLATE, tbig, NULL, 0, gbig, NGPAS, reps, NULL, 0, { 0 } },
			[H2G] = { HVA_TO_GPA, tbig, NULL, 0, gbig, NGPAS, reps, NULL, 0, { 0 } },
			[SKEW] = { LOOKUP, tskew, NULL, 0, gskew, NGPAS, reps, NULL, 0, { 0 } },
		};
		double m[N];

		run_all(s, N, rounds);
		for (int i = 0; i < N; i++)
			m[i] = median(&s[i]);
		pvm_bench_ratio(r, "lookup_32764_vs_8", m[LBIG] / m[L8], "<=", 3);
		pvm_bench_ratio(r, "linear_scan_vs_lookup", m[SCAN] / m[LBIG], ">=", 100);
		pvm_bench_ratio(r, "cache_hit_vs_array_index", m[CHIT] / m[IDX], "<=", 1.5);
		pvm_bench_raw(r, "ns_per_lookup_8", m[L8]);
		pvm_bench_raw(r, "ns_per_lookup_509", m[L509]);
		pvm_bench_raw(r, "ns_per_lookup_32764", m[LBIG]);
		pvm_bench_raw(r, "ns_per_lookup_32764_skewed", m[SKEW]);
		pvm_bench_raw(r, "ns_per_linear_scan_32764", m[SCAN]);
		pvm_bench_raw(r, "ns_per_cache_hit_inline", m[CHIT]);
		pvm_bench_raw(r, "ns_per_array_index_inline", m[IDX]);
		pvm_bench_raw(r, "ns_per_cache_translate_inline", m[CTR]);
		pvm_bench_raw(r, "ns_per_gen_checked_cache_hit", m[GEN]);
		pvm_bench_raw(r, "ns_per_library_lookup_hit", m[HIT]);
		pvm_bench_raw(r, "ns_per_translate_32764", m[TR]);
		pvm_bench_raw(r, "ns_per_hva_to_gpa_32764", m[H2G]);
		pvm_bench_raw(r, "ms_to_add_32764_slots", build_ms);
		pvm_bench_raw(r, "us_per_delete_add_at_509", cycle509_us);
		pvm_bench_raw(r, "us_per_delete_add_at_32764", cycle_us);
		pvm_bench_note(r, "random GPAs from precomputed arrays of %u; %d rounds interleaved, medians",
			       NGPAS, rounds);
		pvm_bench_note(r, "cache hit = inline pvm_memslot_cache_gpa_to_hva(); baseline = inline "
				  "slots[i].hva + (gpa - slots[i].gpa); both reload their state per lookup");
		pvm_bench_note(r, "a generation-checked cache (the alternative design) / array index = %.2f; "
				  "the out-of-line library lookup hit / array index = %.2f",
			       m[GEN] / m[IDX], m[HIT] / m[IDX]);
	}
out:
	pvm_memslot_cache_free(cache);
	pvm_memslot_table_free(t8);
	pvm_memslot_table_free(t509);
	pvm_memslot_table_free(tbig);
	pvm_memslot_table_free(tskew);
	free(gskew);
	free(fskew);
	free(g8);
	free(g509);
	free(gbig);
	free(ghit);
	free(flat);
	return rc;
}

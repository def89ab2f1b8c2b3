/* SPDX-License-Identifier: MIT */
/* DMA containers: map/unmap rules, the mapping limit, budget -ENOMEM with rollback, type1 vs
 * iommufd accounting (checked against a per-page model), RLIMIT budget, mlock hooks, torture. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "test-util.h"
#include <pvmem/dma.h>

#define KiB 1024ull
#define MiB (1024ull * 1024)
#define HVA 0x7f0000000000ull   /* accounting backend: addresses are only counted */

static struct pvm_dma_ctx *mkctx(enum pvm_dma_model model, uint64_t budget, uint32_t max)
{
	struct pvm_dma_ctx_config cfg = { .model = model, .budget = budget, .max_mappings = max };
	struct pvm_dma_ctx *ctx;

	assert_int_equal(pvm_dma_ctx_new(&cfg, &ctx, NULL), 0);
	return ctx;
}

static uint64_t pinned(const struct pvm_dma_ctx *ctx)
{
	struct pvm_dma_ctx_stats st;

	pvm_dma_ctx_stats(ctx, &st);
	return st.pinned;
}

static void test_map_validation(void **state)
{
	static const struct { uint64_t iova, hva, size; int rc; } cases[] = {
		{ 0, HVA, 4 * KiB, 0 },
		{ 1 * MiB, HVA, 0, -EINVAL },                    /* empty */
		{ 1 * MiB + 1, HVA, 4 * KiB, -EINVAL },          /* unaligned iova */
		{ 1 * MiB, HVA + 8, 4 * KiB, -EINVAL },          /* unaligned hva */
		{ 1 * MiB, HVA, 6 * KiB, -EINVAL },              /* unaligned size */
		{ UINT64_MAX - 4095, HVA, 8 * KiB, -EINVAL },    /* iova wraps */
		{ 1 * MiB, UINT64_MAX - 4095, 8 * KiB, -EINVAL },/* hva wraps */
		{ 0, HVA, 4 * KiB, -EEXIST },                    /* same range again */
		{ 0x1000 - 0x1000, HVA, 8 * KiB, -EEXIST },      /* overlaps from below */
		{ 4 * KiB, HVA, 4 * KiB, 0 },                    /* adjacent */
	};
	struct pvm_dma_ctx *ctx = mkctx(PVM_DMA_MODEL_TYPE1, PVM_DMA_BUDGET_UNLIMITED, 0);
	struct pvm_dma_container *c;
	struct pvm_dma_container_stats st;

	assert_int_equal(pvm_dma_container_new(ctx, -1, &c, NULL), 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(pvm_dma_container_map(c, cases[i].iova, cases[i].hva, cases[i].size, NULL),
				 cases[i].rc);
	pvm_dma_container_stats(c, &st);
	assert_int_equal(st.mappings, 2);
	assert_int_equal(st.mapped, 8 * KiB);
	assert_int_equal(st.max_mappings, PVM_DMA_DEFAULT_MAX_MAPPINGS);
	assert_int_equal(st.avail, PVM_DMA_DEFAULT_MAX_MAPPINGS - 2);
	pvm_dma_container_free(c);
	assert_int_equal(pinned(ctx), 0);
	pvm_dma_ctx_free(ctx);
}

static void test_mapping_limit_enospc(void **state)
{
	struct pvm_dma_ctx *ctx = mkctx(PVM_DMA_MODEL_TYPE1, PVM_DMA_BUDGET_UNLIMITED, 4);
	struct pvm_dma_container *c;
	struct pvm_dma_container_stats st;
	struct pvm_error err = { 0 };

	assert_int_equal(pvm_dma_container_new(ctx, -1, &c, NULL), 0);
	for (uint64_t i = 0; i < 4; i++)
		assert_int_equal(pvm_dma_container_map(c, i * MiB, HVA + i * MiB, MiB, NULL), 0);
	pvm_dma_container_stats(c, &st);
	assert_int_equal(st.avail, 0);
	assert_int_equal(pvm_dma_container_map(c, 8 * MiB, HVA, MiB, &err), -ENOSPC);
	assert_int_equal(pinned(ctx), 4 * MiB);
	assert_int_equal(pvm_dma_container_unmap(c, 0, MiB, NULL, NULL), 0);
	assert_int_equal(pvm_dma_container_map(c, 8 * MiB, HVA, MiB, NULL), 0);
	pvm_dma_container_free(c);
	pvm_dma_ctx_free(ctx);
}

static void test_budget_enomem_rolls_back(void **state)
{
	for (int model = 0; model < 2; model++) {
		struct pvm_dma_ctx *ctx = mkctx(model, 8 * MiB, 0);
		struct pvm_dma_container *c;
		struct pvm_dma_container_stats before, after;
		struct pvm_error err = { 0 };

		assert_int_equal(pvm_dma_container_new(ctx, -1, &c, NULL), 0);
		assert_int_equal(pvm_dma_container_map(c, 0, HVA, 4 * MiB, NULL), 0);
		pvm_dma_container_stats(c, &before);
		assert_int_equal(pvm_dma_container_map(c, 4 * MiB, HVA + 4 * MiB, 6 * MiB, &err), -ENOMEM);
		assert_non_null(strstr(err.msg, "budget"));
		pvm_dma_container_stats(c, &after);
		assert_memory_equal(&before, &after, sizeof(before));
		assert_int_equal(pinned(ctx), 4 * MiB);
		/* Exactly up to the budget is fine (the kernel's check is "> limit"). */
		assert_int_equal(pvm_dma_container_map(c, 4 * MiB, HVA + 4 * MiB, 4 * MiB, NULL), 0);
		assert_int_equal(pvm_dma_container_map(c, 8 * MiB, HVA + 8 * MiB, 4 * KiB, NULL), -ENOMEM);
		assert_int_equal(pinned(ctx), 8 * MiB);
		pvm_dma_ctx_set_budget(ctx, PVM_DMA_BUDGET_UNLIMITED);
		assert_int_equal(pvm_dma_container_map(c, 8 * MiB, HVA + 8 * MiB, 4 * KiB, NULL), 0);
		pvm_dma_container_free(c);
		assert_int_equal(pinned(ctx), 0);
		pvm_dma_ctx_free(ctx);
	}
}

static void test_unmap_never_splits(void **state)
{
	struct pvm_dma_ctx *ctx = mkctx(PVM_DMA_MODEL_TYPE1, PVM_DMA_BUDGET_UNLIMITED, 0);
	struct pvm_dma_container *c;
	uint64_t bytes = 1;

	assert_int_equal(pvm_dma_container_new(ctx, -1, &c, NULL), 0);
	assert_int_equal(pvm_dma_container_map(c, 0, HVA, 4 * MiB, NULL), 0);
	assert_int_equal(pvm_dma_container_map(c, 4 * MiB, HVA + 4 * MiB, 4 * MiB, NULL), 0);
	assert_int_equal(pvm_dma_container_map(c, 16 * MiB, HVA + 16 * MiB, 4 * MiB, NULL), 0);
	assert_int_equal(pvm_dma_container_unmap(c, 2 * MiB, 4 * MiB, &bytes, NULL), -EINVAL);
	assert_int_equal(bytes, 0);
	assert_int_equal(pvm_dma_container_unmap(c, 0, 6 * MiB, NULL, NULL), -EINVAL);   /* end splits */
	assert_int_equal(pvm_dma_container_unmap(c, 17 * MiB, MiB, NULL, NULL), -EINVAL); /* inside */
	assert_int_equal(pinned(ctx), 12 * MiB);
	assert_int_equal(pvm_dma_container_unmap(c, 8 * MiB, 8 * MiB, &bytes, NULL), 0);  /* empty */
	assert_int_equal(bytes, 0);
	assert_int_equal(pvm_dma_container_unmap(c, 0, 0, NULL, NULL), -EINVAL);
	assert_int_equal(pvm_dma_container_unmap(c, 0, 12 * MiB, &bytes, NULL), 0);     /* two whole */
	assert_int_equal(bytes, 8 * MiB);
	assert_int_equal(pvm_dma_container_unmap(c, 0, UINT64_MAX - 4095, &bytes, NULL), 0);
	assert_int_equal(bytes, 4 * MiB);
	assert_int_equal(pinned(ctx), 0);
	pvm_dma_container_free(c);
	pvm_dma_ctx_free(ctx);
}

/* Two containers mapping the same host memory: type1 charges twice, iommufd once. */
static void test_type1_vs_iommufd(void **state)
{
	static const struct { enum pvm_dma_model model; uint64_t both, one, budget_rc; } golden[] = {
		{ PVM_DMA_MODEL_TYPE1, 16 * MiB, 8 * MiB, -ENOMEM },
		{ PVM_DMA_MODEL_IOMMUFD, 8 * MiB, 8 * MiB, 0 },
	};

	for (size_t g = 0; g < 2; g++) {
		struct pvm_dma_ctx *ctx = mkctx(golden[g].model, PVM_DMA_BUDGET_UNLIMITED, 0);
		struct pvm_dma_container *a, *b;
		struct pvm_dma_container_stats sa;

		assert_int_equal(pvm_dma_container_new(ctx, -1, &a, NULL), 0);
		assert_int_equal(pvm_dma_container_new(ctx, -1, &b, NULL), 0);
		for (uint64_t i = 0; i < 4; i++) {
			assert_int_equal(pvm_dma_container_map(a, i * 2 * MiB, HVA + i * 2 * MiB, 2 * MiB, NULL), 0);
			assert_int_equal(pvm_dma_container_map(b, i * 2 * MiB, HVA + i * 2 * MiB, 2 * MiB, NULL), 0);
		}
		assert_int_equal(pinned(ctx), golden[g].both);
		pvm_dma_container_stats(a, &sa);
		assert_int_equal(sa.charged, golden[g].model == PVM_DMA_MODEL_TYPE1 ? 8 * MiB : 0);
		pvm_dma_container_free(b);
		assert_int_equal(pinned(ctx), golden[g].one);
		pvm_dma_container_stats(a, &sa);
		assert_int_equal(sa.charged, 8 * MiB);
		/* With a budget of one copy, the second container fits only under iommufd. */
		pvm_dma_ctx_set_budget(ctx, 8 * MiB);
		assert_int_equal(pvm_dma_container_new(ctx, -1, &b, NULL), 0);
		assert_int_equal(pvm_dma_container_map(b, 0, HVA, 8 * MiB, NULL), (int)golden[g].budget_rc);
		pvm_dma_container_free(b);
		pvm_dma_container_free(a);
		assert_int_equal(pinned(ctx), 0);
		pvm_dma_ctx_free(ctx);
	}
}

/* iommufd pins against a per-page refcount model: random maps and unmaps in 3 containers
 * over 64 pages of host memory (iova == hva offset, so partial overlaps split pin pieces). */
static void test_iommufd_pins_match_model(void **state)
{
	enum { PAGES = 64, NC = 3 };
	struct pvm_dma_ctx *ctx = mkctx(PVM_DMA_MODEL_IOMMUFD, PVM_DMA_BUDGET_UNLIMITED, 0);
	struct pvm_dma_container *c[NC];
	unsigned len[NC][PAGES];    /* model: pages of the mapping starting at [page], 0 = none */
	unsigned seed = 12345;

	memset(len, 0, sizeof(len));
	for (int i = 0; i < NC; i++)
		assert_int_equal(pvm_dma_container_new(ctx, -1, &c[i], NULL), 0);
	for (int step = 0; step < 5000; step++) {
		unsigned ci, p, n, refs[PAGES] = { 0 }, used = 0;
		bool free_ = true;

		seed = seed * 1103515245 + 12345;
		ci = (seed >> 16) % NC;
		p = (seed >> 8) % PAGES;
		n = 1 + (seed >> 24) % 8;
		if (p + n > PAGES)
			n = PAGES - p;
		for (unsigned k = 0; k < PAGES; k++)
			if (len[ci][k] && k < p + n && p < k + len[ci][k])
				free_ = false;
		if (len[ci][p]) {
			uint64_t bytes;

			assert_int_equal(pvm_dma_container_unmap(c[ci], p * 4 * KiB, len[ci][p] * 4 * KiB,
								 &bytes, NULL), 0);
			assert_int_equal(bytes, len[ci][p] * 4 * KiB);
			len[ci][p] = 0;
		} else {
			assert_int_equal(pvm_dma_container_map(c[ci], p * 4 * KiB, HVA + p * 4 * KiB,
							       n * 4 * KiB, NULL), free_ ? 0 : -EEXIST);
			if (free_)
				len[ci][p] = n;
		}
		for (unsigned k = 0; k < NC; k++)
			for (unsigned q = 0; q < PAGES; q++)
				for (unsigned r = 0; r < len[k][q]; r++)
					refs[q + r]++;
		for (unsigned q = 0; q < PAGES; q++)
			used += refs[q] > 0;
		assert_int_equal(pinned(ctx), used * 4 * KiB);
	}
	for (int i = 0; i < NC; i++)
		pvm_dma_container_free(c[i]);
	assert_int_equal(pinned(ctx), 0);
	pvm_dma_ctx_free(ctx);
}

static uint64_t fake_rlimit;
static int mlock_calls, munlock_calls;
static uint64_t mlocked;

static int hook_limit(void *opaque, uint64_t *bytes)
{
	*bytes = fake_rlimit;
	return 0;
}

static int hook_mlock(void *opaque, const void *addr, size_t len)
{
	mlock_calls++;
	mlocked += len;
	return mlocked > fake_rlimit ? -EAGAIN : 0;
}

static int hook_munlock(void *opaque, const void *addr, size_t len)
{
	munlock_calls++;
	mlocked -= len;
	return 0;
}

/* RLIMIT mode reads the limit at every map, as the kernel does; real_mlock goes through hooks. */
static void test_rlimit_budget_and_mlock_hooks(void **state)
{
	struct pvm_dma_hooks hooks = { .memlock_limit = hook_limit, .mlock = hook_mlock,
				       .munlock = hook_munlock };
	struct pvm_dma_ctx_config cfg = { .budget = PVM_DMA_BUDGET_RLIMIT, .real_mlock = true,
					  .hooks = &hooks };
	struct pvm_dma_ctx *ctx;
	struct pvm_dma_container *c;
	uint64_t b;

	fake_rlimit = 8 * MiB;
	assert_int_equal(pvm_dma_ctx_new(&cfg, &ctx, NULL), 0);
	assert_int_equal(pvm_dma_ctx_budget(ctx, &b, NULL), 0);
	assert_int_equal(b, 8 * MiB);
	assert_int_equal(pvm_dma_container_new(ctx, -1, &c, NULL), 0);
	assert_int_equal(pvm_dma_container_map(c, 0, HVA, 8 * MiB, NULL), 0);
	assert_int_equal(pvm_dma_container_map(c, 8 * MiB, HVA + 8 * MiB, 4 * KiB, NULL), -ENOMEM);
	assert_int_equal(mlock_calls, 1);
	fake_rlimit = 16 * MiB;    /* the manager raised the limit: the next map sees it */
	assert_int_equal(pvm_dma_container_map(c, 8 * MiB, HVA + 8 * MiB, 4 * KiB, NULL), 0);
	assert_int_equal(mlocked, 8 * MiB + 4 * KiB);
	pvm_dma_container_free(c);
	assert_int_equal(mlocked, 0);
	assert_int_equal(munlock_calls, 2);   /* one unmap call, one unpin per mapping */
	pvm_dma_ctx_free(ctx);
	/* The real getrlimit path: whatever the soft limit, the budget reads it. */
	cfg.hooks = NULL;
	cfg.real_mlock = false;
	assert_int_equal(pvm_dma_ctx_new(&cfg, &ctx, NULL), 0);
	assert_int_equal(pvm_dma_ctx_budget(ctx, &b, NULL), 0);
	assert_true(b > 0);
	pvm_dma_ctx_free(ctx);
}

struct torture {
	struct pvm_dma_ctx *ctx;              /* iommufd ctx */
	struct pvm_dma_container *c[2];       /* two containers */
	uint64_t n;                           /* maps done so far */
	struct pvm_dma_ctx_stats before;      /* state before the op */
};

static int torture_map(void *arg)
{
	struct torture *t = arg;

	pvm_dma_ctx_stats(t->ctx, &t->before);
	/* Each op maps a fresh range in c[0] and an overlapping shifted one in c[1]. */
	uint64_t iova = t->n * 64 * KiB;
	int rc = pvm_dma_container_map(t->c[0], iova, HVA + iova, 16 * KiB, NULL);

	if (rc)
		return rc;
	rc = pvm_dma_container_map(t->c[1], iova, HVA + iova + 8 * KiB, 16 * KiB, NULL);
	if (rc) {
		assert_int_equal(pvm_dma_container_unmap(t->c[0], iova, 16 * KiB, NULL, NULL), 0);
		return rc;
	}
	t->n++;
	return 0;
}

static int torture_unchanged(void *arg)
{
	struct torture *t = arg;
	struct pvm_dma_ctx_stats now;

	pvm_dma_ctx_stats(t->ctx, &now);
	return now.pinned == t->before.pinned && now.mappings == t->before.mappings;
}

static void test_torture_map(void **state)
{
	struct torture t = { .ctx = mkctx(PVM_DMA_MODEL_IOMMUFD, PVM_DMA_BUDGET_UNLIMITED, 0) };

	assert_int_equal(pvm_dma_container_new(t.ctx, -1, &t.c[0], NULL), 0);
	assert_int_equal(pvm_dma_container_new(t.ctx, -1, &t.c[1], NULL), 0);
	for (int i = 0; i < 40; i++)
		pvm_test_torture(torture_map, torture_unchanged, &t);
	assert_int_equal(t.n, 40);
	assert_int_equal(pinned(t.ctx), 40 * 24 * KiB);
	pvm_dma_container_free(t.c[0]);
	pvm_dma_container_free(t.c[1]);
	assert_int_equal(pinned(t.ctx), 0);
	pvm_dma_ctx_free(t.ctx);
}

static void test_ctx_config(void **state)
{
	struct pvm_dma_ctx_config bad = { .model = 5 };
	struct pvm_dma_ctx *ctx;
	enum pvm_dma_model m;

	assert_int_equal(pvm_dma_ctx_new(&bad, &ctx, NULL), -EINVAL);
	assert_int_equal(pvm_dma_ctx_new(NULL, &ctx, NULL), -EINVAL);
	assert_int_equal(pvm_dma_model_parse("iommufd", &m), 0);
	assert_int_equal(m, PVM_DMA_MODEL_IOMMUFD);
	assert_int_equal(pvm_dma_model_parse("type2", &m), -EINVAL);
	assert_string_equal(pvm_dma_model_name(PVM_DMA_MODEL_TYPE1), "type1");
	pvm_dma_ctx_free(NULL);
	pvm_dma_container_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_map_validation),
		cmocka_unit_test(test_mapping_limit_enospc),
		cmocka_unit_test(test_budget_enomem_rolls_back),
		cmocka_unit_test(test_unmap_never_splits),
		cmocka_unit_test(test_type1_vs_iommufd),
		cmocka_unit_test(test_iommufd_pins_match_model),
		cmocka_unit_test(test_rlimit_budget_and_mlock_hooks),
		cmocka_unit_test(test_torture_map),
		cmocka_unit_test(test_ctx_config),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

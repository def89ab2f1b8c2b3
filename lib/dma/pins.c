/* SPDX-License-Identifier: MIT */
/*
 * Pinned-page accounting, as the kernel does it on VFIO_IOMMU_MAP_DMA / IOMMU_IOAS_MAP:
 *   TYPE1    every mapping charges its whole size (vfio_pin_pages_remote: per vfio_dma);
 *   IOMMUFD  host ranges are refcounted and charged when they go from 0 to 1 pin, released when
 *            they go back to 0 (iopt_pages: "pinned exactly once").
 * The limit check comes before the charge (pinned + new > budget -> -ENOMEM) and a failure
 * changes nothing. The refcount map reserves two spare pieces per live pin so that an unpin,
 * which may split pieces, never needs to allocate.
 */
#include <errno.h>
#include <string.h>

#include "dma/dma-priv.h"

void pvm_dma_pins_release(struct pvm_dma_pins *p)
{
	pvm_free(p->seg);
	memset(p, 0, sizeof(*p));
}

/* First piece with end > @x. */
static size_t first_after(const struct pvm_dma_pins *p, uint64_t x)
{
	size_t lo = 0, hi = p->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (p->seg[mid].end > x)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

/* Bytes of [s, e) covered by pieces; @gaps (may be NULL) gets the number of uncovered runs. */
static uint64_t covered(const struct pvm_dma_pins *p, uint64_t s, uint64_t e, size_t *gaps)
{
	uint64_t cov = 0, cur = s;
	size_t g = 0;

	for (size_t i = first_after(p, s); i < p->n && p->seg[i].start < e; i++) {
		uint64_t a = PVM_MAX(p->seg[i].start, s), b = PVM_MIN(p->seg[i].end, e);

		if (a > cur)
			g++;
		cov += b - a;
		cur = b;
	}
	if (cur < e)
		g++;
	if (gaps)
		*gaps = g;
	return cov;
}

static int ensure(struct pvm_dma_pins *p, size_t extra)
{
	size_t need = p->n + extra + p->reserved, ncap;
	struct pvm_dma_pin_seg *ns;

	if (need <= p->cap)
		return 0;
	ncap = PVM_MAX(need, p->cap * 2);
	ncap = PVM_MAX(ncap, (size_t)16);
	ns = pvm_reallocarray(p->seg, ncap, sizeof(*ns));
	if (!ns)
		return -ENOMEM;
	p->seg = ns;
	p->cap = ncap;
	return 0;
}

static void insert_at(struct pvm_dma_pins *p, size_t i, struct pvm_dma_pin_seg s)
{
	memmove(&p->seg[i + 1], &p->seg[i], (p->n - i) * sizeof(s));
	p->seg[i] = s;
	p->n++;
}

/* Split the piece containing @x (strictly inside) in two; uses one spare slot. */
static void split_at(struct pvm_dma_pins *p, uint64_t x)
{
	size_t i = first_after(p, x);

	if (i < p->n && p->seg[i].start < x) {
		struct pvm_dma_pin_seg right = p->seg[i];

		right.start = x;
		p->seg[i].end = x;
		insert_at(p, i + 1, right);
	}
}

/* Drop zero-ref pieces and merge equal neighbours among pieces [lo-1, hi+1). */
static void tidy(struct pvm_dma_pins *p, size_t lo, size_t hi)
{
	size_t a = lo ? lo - 1 : 0, b = PVM_MIN(hi + 1, p->n), w = a;

	for (size_t k = a; k < b; k++) {
		if (!p->seg[k].refs)
			continue;
		if (w > a && p->seg[w - 1].end == p->seg[k].start && p->seg[w - 1].refs == p->seg[k].refs)
			p->seg[w - 1].end = p->seg[k].end;
		else
			p->seg[w++] = p->seg[k];
	}
	memmove(&p->seg[w], &p->seg[b], (p->n - b) * sizeof(p->seg[0]));
	p->n -= b - w;
}

/* Add one pin over [s, e); *@added gets the bytes that went from 0 to 1. */
static int pins_add(struct pvm_dma_pins *p, uint64_t s, uint64_t e, uint64_t *added)
{
	size_t gaps, i, first;
	uint64_t cur = s, add = 0;

	covered(p, s, e, &gaps);
	if (ensure(p, 2 + gaps + 2))      /* splits, gaps, and this pin's reservation */
		return -ENOMEM;
	split_at(p, s);
	split_at(p, e);
	first = i = first_after(p, s);
	while (cur < e) {
		if (i < p->n && p->seg[i].start <= cur) {
			p->seg[i].refs++;
			cur = p->seg[i].end;
		} else {
			uint64_t ge = (i < p->n && p->seg[i].start < e) ? p->seg[i].start : e;

			insert_at(p, i, (struct pvm_dma_pin_seg){ cur, ge, 1 });
			add += ge - cur;
			cur = ge;
		}
		i++;
	}
	tidy(p, first, i);
	p->reserved += 2;
	*added = add;
	return 0;
}

/* Drop one pin over [s, e); returns the bytes that went to 0. */
static uint64_t pins_sub(struct pvm_dma_pins *p, uint64_t s, uint64_t e)
{
	size_t i, first;
	uint64_t freed = 0;

	if (p->reserved >= 2)
		p->reserved -= 2;    /* the two spare slots the splits below may use */
	split_at(p, s);
	split_at(p, e);
	first = i = first_after(p, s);
	for (; i < p->n && p->seg[i].start < e; i++) {
		if (--p->seg[i].refs == 0)
			freed += p->seg[i].end - p->seg[i].start;
	}
	tidy(p, first, i);
	return freed;
}

static int read_limit(struct pvm_dma_ctx *ctx, uint64_t *limit)
{
	if (ctx->budget == PVM_DMA_BUDGET_UNLIMITED) {
		*limit = UINT64_MAX;
		return 0;
	}
	return pvm_dma_ctx_budget(ctx, limit, NULL);
}

int pvm_dma_pin(struct pvm_dma_ctx *ctx, uint64_t hva, uint64_t size, uint64_t *charged)
{
	bool iommufd = ctx->cfg.model == PVM_DMA_MODEL_IOMMUFD;
	uint64_t limit, delta, total, added = 0;
	int rc = read_limit(ctx, &limit);

	if (rc)
		return rc;
	delta = iommufd ? size - covered(&ctx->pins, hva, hva + size, NULL) : size;
	if (limit != UINT64_MAX && (pvm_add_overflow(ctx->pinned, delta, &total) || total > limit)) {
		PVM_TRACE(dma_pin_over_budget, "pinned=0x%llx new=0x%llx limit=0x%llx",
			  (unsigned long long)ctx->pinned, (unsigned long long)delta,
			  (unsigned long long)limit);
		return -ENOMEM;    /* the kernel: "RLIMIT_MEMLOCK (%ld) exceeded" */
	}
	if (iommufd && (rc = pins_add(&ctx->pins, hva, hva + size, &added)))
		return rc;
	if (ctx->cfg.real_mlock && ctx->cfg.backend == PVM_DMA_BACKEND_ACCOUNTING &&
	    (rc = pvm_dma_sys_mlock(ctx, hva, size))) {
		if (iommufd)
			pins_sub(&ctx->pins, hva, hva + size);
		return rc == -EAGAIN || rc == -EPERM ? -ENOMEM : rc;
	}
	ctx->pinned += delta;
	if (ctx->pinned > ctx->peak)
		ctx->peak = ctx->pinned;
	if (charged)
		*charged = delta;
	return 0;
}

void pvm_dma_unpin(struct pvm_dma_ctx *ctx, uint64_t hva, uint64_t size)
{
	uint64_t freed = size;

	if (ctx->cfg.model == PVM_DMA_MODEL_IOMMUFD)
		freed = pins_sub(&ctx->pins, hva, hva + size);
	if (ctx->cfg.real_mlock && ctx->cfg.backend == PVM_DMA_BACKEND_ACCOUNTING &&
	    (ctx->cfg.model == PVM_DMA_MODEL_TYPE1 || freed == size))
		pvm_dma_sys_munlock(ctx, hva, size);   /* mlock is not refcounted: best effort */
	ctx->pinned -= PVM_MIN(freed, ctx->pinned);
}

uint64_t pvm_dma_pins_exclusive(const struct pvm_dma_ctx *ctx, uint64_t hva, uint64_t size)
{
	const struct pvm_dma_pins *p = &ctx->pins;
	uint64_t excl = 0, e = hva + size;

	if (ctx->cfg.model == PVM_DMA_MODEL_TYPE1)
		return size;
	for (size_t i = first_after(p, hva); i < p->n && p->seg[i].start < e; i++)
		if (p->seg[i].refs == 1)
			excl += PVM_MIN(p->seg[i].end, e) - PVM_MAX(p->seg[i].start, hva);
	return excl;
}

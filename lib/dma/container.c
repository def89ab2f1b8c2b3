/* SPDX-License-Identifier: MIT */
/*
 * DMA containers: a sorted array of non-overlapping mappings iova -> hva, with the kernel's map
 * and unmap rules (VFIO type1 v2 vfio_dma_do_map/unmap, iommufd IOAS_MAP/UNMAP) and pinned-page
 * accounting through pins.c. Mappings are usually made in ascending order (replays), which
 * appends at the end of the array.
 */
#include <errno.h>
#include <string.h>

#include "dma/dma-priv.h"

struct pvm_dma_map {
	uint64_t iova;      /* device address */
	uint64_t size;      /* bytes */
	uint64_t hva;       /* host address */
};

struct pvm_dma_container {
	struct pvm_dma_ctx *ctx;     /* accounting and backend */
	int fd;                      /* kernel backend: container or iommufd fd; -1 */
	uint32_t ioas;               /* kernel iommufd backend: the IOAS id */
	uint32_t max;                /* mapping limit (dma_entry_limit / DMA_AVAIL) */
	struct pvm_dma_map *m;       /* mappings sorted by iova */
	size_t n;                    /* mappings in use */
	size_t cap;                  /* mappings allocated */
	uint64_t mapped;             /* bytes mapped */
};

int pvm_dma_container_new(struct pvm_dma_ctx *ctx, int fd, struct pvm_dma_container **out,
			  struct pvm_error *err)
{
	struct pvm_dma_container *c;
	int rc;

	*out = NULL;
	if (ctx->cfg.backend == PVM_DMA_BACKEND_KERNEL && fd < 0)
		return pvm_error_set(err, -EINVAL, "the kernel DMA backend needs a container fd");
	c = pvm_calloc(1, sizeof(*c));
	if (!c)
		return pvm_error_set(err, -ENOMEM, "out of memory");
	c->ctx = ctx;
	c->fd = fd;
	c->max = ctx->cfg.max_mappings;
	if (ctx->cfg.backend == PVM_DMA_BACKEND_KERNEL &&
	    (rc = pvm_dma_kernel_open(ctx, fd, &c->max, &c->ioas, err))) {
		pvm_free(c);
		return rc;
	}
	ctx->containers++;
	*out = c;
	return 0;
}

void pvm_dma_container_free(struct pvm_dma_container *c)
{
	if (!c)
		return;
	pvm_dma_container_unmap_all(c);
	if (c->ctx->cfg.backend == PVM_DMA_BACKEND_KERNEL)
		pvm_dma_kernel_close(c->ctx, c->fd, c->ioas);
	c->ctx->containers--;
	pvm_free(c->m);
	pvm_free(c);
}

/* First mapping whose end is above @x. */
static size_t first_after(const struct pvm_dma_container *c, uint64_t x)
{
	size_t lo = 0, hi = c->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (c->m[mid].iova + c->m[mid].size > x)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

bool pvm_dma_container_has(const struct pvm_dma_container *c, uint64_t iova)
{
	size_t i = first_after(c, iova);

	return i < c->n && c->m[i].iova == iova;
}

static bool aligned(uint64_t x)
{
	return PVM_IS_ALIGNED(x, PVM_DMA_PAGE_SIZE);
}

int pvm_dma_container_map(struct pvm_dma_container *c, uint64_t iova, uint64_t hva,
			  uint64_t size, struct pvm_error *err)
{
	struct pvm_dma_ctx *ctx = c->ctx;
	size_t i;
	int rc;

	PVM_TRACE(dma_map, "iova=0x%llx hva=0x%llx size=0x%llx", (unsigned long long)iova,
		  (unsigned long long)hva, (unsigned long long)size);
	if (!size || !aligned(iova) || !aligned(hva) || !aligned(size) ||
	    pvm_range_wraps(iova, size) || pvm_range_wraps(hva, size) || iova + size == 0 ||
	    hva + size == 0)
		return pvm_error_set(err, -EINVAL, "DMA map 0x%llx+0x%llx is empty, unaligned or wraps",
				     (unsigned long long)iova, (unsigned long long)size);
	i = first_after(c, iova);
	if (i < c->n && c->m[i].iova < iova + size)
		return pvm_error_set(err, -EEXIST, "DMA map 0x%llx+0x%llx overlaps a mapping",
				     (unsigned long long)iova, (unsigned long long)size);
	if (c->n >= c->max)
		return pvm_error_set(err, -ENOSPC, "DMA mapping limit %u reached", c->max);
	if (c->n == c->cap) {
		size_t ncap = c->cap ? c->cap * 2 : 64;
		struct pvm_dma_map *nm = pvm_reallocarray(c->m, ncap, sizeof(*nm));

		if (!nm)
			return pvm_error_set(err, -ENOMEM, "out of memory");
		c->m = nm;
		c->cap = ncap;
	}
	rc = pvm_dma_pin(ctx, hva, size, NULL);
	if (rc)
		return pvm_error_set(err, rc, rc == -ENOMEM ?
				     "pinning 0x%llx bytes exceeds the locked-memory budget" :
				     "pinning 0x%llx bytes failed", (unsigned long long)size);
	if (ctx->cfg.backend == PVM_DMA_BACKEND_KERNEL &&
	    (rc = pvm_dma_kernel_map(ctx, c->fd, c->ioas, iova, hva, size))) {
		pvm_dma_unpin(ctx, hva, size);
		return pvm_error_set(err, rc, "kernel DMA map of 0x%llx+0x%llx failed",
				     (unsigned long long)iova, (unsigned long long)size);
	}
	if (i < c->n)
		memmove(&c->m[i + 1], &c->m[i], (c->n - i) * sizeof(c->m[0]));
	c->m[i] = (struct pvm_dma_map){ iova, size, hva };
	c->n++;
	c->mapped += size;
	ctx->mapped += size;
	ctx->mappings++;
	ctx->map_calls++;
	return 0;
}

int pvm_dma_container_unmap(struct pvm_dma_container *c, uint64_t iova, uint64_t size,
			    uint64_t *unmapped, struct pvm_error *err)
{
	struct pvm_dma_ctx *ctx = c->ctx;
	uint64_t end, bytes = 0;
	size_t i, j;
	int rc;

	PVM_TRACE(dma_unmap, "iova=0x%llx size=0x%llx", (unsigned long long)iova,
		  (unsigned long long)size);
	if (unmapped)
		*unmapped = 0;
	if (!size || !aligned(iova) || !aligned(size) || pvm_range_wraps(iova, size))
		return pvm_error_set(err, -EINVAL, "DMA unmap 0x%llx+0x%llx is empty, unaligned or wraps",
				     (unsigned long long)iova, (unsigned long long)size);
	end = iova + size;    /* may be 0 when the range ends at 2^64 */
	i = first_after(c, iova);
	if (i < c->n && c->m[i].iova < iova)
		return pvm_error_set(err, -EINVAL, "DMA unmap at 0x%llx splits a mapping",
				     (unsigned long long)iova);
	for (j = i; j < c->n && (end == 0 || c->m[j].iova < end); j++)
		;
	if (j == i)
		return 0;     /* nothing in range: success, 0 bytes */
	if (end != 0 && c->m[j - 1].iova + c->m[j - 1].size > end)
		return pvm_error_set(err, -EINVAL, "DMA unmap ending at 0x%llx splits a mapping",
				     (unsigned long long)end);
	if (ctx->cfg.backend == PVM_DMA_BACKEND_KERNEL) {
		uint64_t ks = c->m[i].iova, ke = c->m[j - 1].iova + c->m[j - 1].size, expect = 0;

		for (size_t k = i; k < j; k++)
			expect += c->m[k].size;
		rc = pvm_dma_kernel_unmap(ctx, c->fd, c->ioas, ks, ke - ks, expect);
		if (rc)
			return pvm_error_set(err, rc, "kernel DMA unmap of 0x%llx+0x%llx failed",
					     (unsigned long long)ks, (unsigned long long)(ke - ks));
	}
	for (size_t k = i; k < j; k++) {
		pvm_dma_unpin(ctx, c->m[k].hva, c->m[k].size);
		bytes += c->m[k].size;
	}
	memmove(&c->m[i], &c->m[j], (c->n - j) * sizeof(c->m[0]));
	c->n -= j - i;
	c->mapped -= bytes;
	ctx->mapped -= bytes;
	ctx->mappings -= j - i;
	ctx->unmap_calls++;
	if (unmapped)
		*unmapped = bytes;
	return 0;
}

void pvm_dma_container_unmap_all(struct pvm_dma_container *c)
{
	struct pvm_error err = { 0 };

	if (!c->n)
		return;
	/* iova + size of the last mapping bounds everything; the range may end at 2^64. */
	if (pvm_dma_container_unmap(c, c->m[0].iova, c->m[c->n - 1].iova + c->m[c->n - 1].size -
				    c->m[0].iova, NULL, &err))
		pvm_warn("DMA unmap-all failed: %s", pvm_error_message(&err));
}

void pvm_dma_container_stats(const struct pvm_dma_container *c, struct pvm_dma_container_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->mappings = c->n;
	out->mapped = c->mapped;
	for (size_t i = 0; i < c->n; i++)
		out->charged += pvm_dma_pins_exclusive(c->ctx, c->m[i].hva, c->m[i].size);
	out->max_mappings = c->max;
	out->avail = c->n >= c->max ? 0 : (uint32_t)(c->max - c->n);
}

int pvm_dma_container_for_each(const struct pvm_dma_container *c, pvm_dma_mapping_fn fn,
			       void *arg)
{
	for (size_t i = 0; i < c->n; i++) {
		int rc = fn(arg, c->m[i].iova, c->m[i].hva, c->m[i].size);

		if (rc)
			return rc;
	}
	return 0;
}

uint32_t pvm_dma_container_ioas_id(const struct pvm_dma_container *c)
{
	return c->ioas;
}

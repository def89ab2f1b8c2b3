/* SPDX-License-Identifier: MIT */
/* Internal interfaces between the files of lib/dma. Nothing here is exported. */
#ifndef PVM_DMA_PRIV_H
#define PVM_DMA_PRIV_H

#include <pvmem/dma.h>
#include "core/util.h"

/* One refcounted piece of pinned host memory (iommufd model): [start, end) pinned @refs times. */
struct pvm_dma_pin_seg {
	uint64_t start;     /* first host byte */
	uint64_t end;       /* end (exclusive) */
	uint64_t refs;      /* mappings holding it (> 0) */
};

/* The refcounted pin map: sorted, disjoint, adjacent pieces with equal refs merged. */
struct pvm_dma_pins {
	struct pvm_dma_pin_seg *seg;   /* the pieces */
	size_t n;                      /* pieces in use */
	size_t cap;                    /* pieces allocated */
	size_t reserved;               /* spare pieces kept for future unpins (2 per live pin) */
};

struct pvm_dma_ctx {
	struct pvm_dma_ctx_config cfg;     /* configuration (hooks pointer replaced by .hooks) */
	struct pvm_dma_hooks hooks;        /* copy of the caller's hooks (NULL members = real) */
	uint64_t budget;                   /* bytes, PVM_DMA_BUDGET_RLIMIT or _UNLIMITED */
	uint64_t pinned;                   /* bytes charged now */
	uint64_t peak;                     /* highest pinned */
	uint64_t mapped;                   /* bytes mapped over all containers */
	uint64_t mappings;                 /* mappings over all containers */
	uint64_t containers;               /* containers alive */
	uint64_t spaces;                   /* spaces alive */
	uint64_t map_calls;                /* successful maps */
	uint64_t unmap_calls;              /* unmaps that removed something */
	struct pvm_dma_pins pins;          /* iommufd model: refcounted pins */
};

/* ---- pins.c: charge and release against the budget, in the ctx's model ---------------------- */
/* Charge a new mapping of [hva, hva+size): -ENOMEM when over budget or on allocation failure
 * (nothing changed). @charged (may be NULL) gets the bytes newly charged. */
int pvm_dma_pin(struct pvm_dma_ctx *ctx, uint64_t hva, uint64_t size, uint64_t *charged);
/* Release a mapping's pin (never fails). */
void pvm_dma_unpin(struct pvm_dma_ctx *ctx, uint64_t hva, uint64_t size);
/* Bytes of [hva, hva+size) pinned exactly once (iommufd); @size in the type1 model. */
uint64_t pvm_dma_pins_exclusive(const struct pvm_dma_ctx *ctx, uint64_t hva, uint64_t size);
void pvm_dma_pins_release(struct pvm_dma_pins *p);

/* ---- ctx.c ------------------------------------------------------------------------------------ */
int pvm_dma_sys_ioctl(struct pvm_dma_ctx *ctx, int fd, unsigned long req, void *arg);
int pvm_dma_sys_mlock(struct pvm_dma_ctx *ctx, uint64_t hva, uint64_t size);
void pvm_dma_sys_munlock(struct pvm_dma_ctx *ctx, uint64_t hva, uint64_t size);

/* ---- kernel.c: the real VFIO / iommufd calls ------------------------------------------------- */
/* Container setup: type1 reads DMA_AVAIL into *max (left alone when absent); iommufd allocates
 * an IOAS into *ioas. */
int pvm_dma_kernel_open(struct pvm_dma_ctx *ctx, int fd, uint32_t *max, uint32_t *ioas,
			struct pvm_error *err);
void pvm_dma_kernel_close(struct pvm_dma_ctx *ctx, int fd, uint32_t ioas);
int pvm_dma_kernel_map(struct pvm_dma_ctx *ctx, int fd, uint32_t ioas, uint64_t iova,
		       uint64_t hva, uint64_t size);
/* Unmap [iova, iova+size), which holds @expect mapped bytes (a mismatch is logged). */
int pvm_dma_kernel_unmap(struct pvm_dma_ctx *ctx, int fd, uint32_t ioas, uint64_t iova,
			 uint64_t size, uint64_t expect);

/* ---- container.c ------------------------------------------------------------------------------ */
/* True when a mapping starts exactly at @iova. */
bool pvm_dma_container_has(const struct pvm_dma_container *c, uint64_t iova);

/* ---- viommu.c <-> space.c --------------------------------------------------------------------- */
/* One guest-programmed translation. */
struct pvm_dma_entry {
	uint64_t iova;      /* device address */
	uint64_t gpa;       /* guest-physical target */
	uint64_t size;      /* bytes */
};
/* The entries of @domain, sorted by iova (NULL, 0 when it does not exist). */
const struct pvm_dma_entry *pvm_dma_viommu_entries(const struct pvm_dma_viommu *v, uint32_t domain,
						   size_t *n);
int pvm_dma_viommu_add_space(struct pvm_dma_viommu *v, struct pvm_dma_space *s);
void pvm_dma_viommu_remove_space(struct pvm_dma_viommu *v, struct pvm_dma_space *s);

/* Space side, called by the vIOMMU. */
/* The space currently shows @domain's mappings (live, vIOMMU enabled, bound to it). */
bool pvm_dma_space_shows_domain(const struct pvm_dma_space *s, uint32_t domain);
/* Map / unmap one entry in a space that shows its domain (map: no-op when the target is not
 * fully populated RAM). */
int pvm_dma_space_entry_map(struct pvm_dma_space *s, const struct pvm_dma_entry *e,
			    struct pvm_error *err);
void pvm_dma_space_entry_unmap(struct pvm_dma_space *s, const struct pvm_dma_entry *e);
/* Rebuild the container from the space's current view: unmap all, map all. On failure the
 * container is left empty and the error returned. */
int pvm_dma_space_remap(struct pvm_dma_space *s, struct pvm_error *err);

#endif

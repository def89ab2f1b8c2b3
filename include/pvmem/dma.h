/* SPDX-License-Identifier: MIT */
/*
 * DMA address spaces: containers that map guest RAM for assigned devices, with the kernel's
 * pinned-page accounting against a locked-memory budget, and a vIOMMU that the guest switches on
 * and off at run time.
 *
 * Objects (all single-threaded: the owner, usually the machine, serialises calls):
 *   pvm_dma_ctx        one per process (the kernel's "mm"): accounting model, budget, backend,
 *                      the total pinned; optional discard policy for device votes.
 *   pvm_dma_container  one VFIO type1 container or iommufd IOAS: a set of mappings
 *                      iova -> hva, never overlapping, each pinned and charged on map.
 *   pvm_dma_space      what one group of devices sees: guest RAM sections (gpa, size, hva, and a
 *                      discard manager for sparse ones) and optionally a vIOMMU; owns a container
 *                      that is live (mapped) while at least one device is attached.
 *   pvm_dma_viommu     guest-programmed IOMMU domains (iova -> gpa) and the global enable bit.
 *
 * Accounting models (research balloon-discard-memslots.md §4, memlock.md §5):
 *   TYPE1    every container pins and charges what it maps: N containers mapping the same RAM
 *            charge N x (QEMU uses one container per address space, so a vIOMMU, which gives
 *            each device its own space, multiplies the charge by the number of devices).
 *   IOMMUFD  pins are refcounted per host page range and charged once per process, however
 *            many containers map them (iommufd's shared iopt_pages: one IOAS, or IOAS_COPY).
 * The charge is checked before it is made, as vfio_pin_pages_remote()/do_update_pinned() do:
 * pinned + new > budget -> -ENOMEM, and the failed map leaves nothing mapped or charged.
 * The budget is an explicit byte count, unlimited (CAP_IPC_LOCK), or the process's soft
 * RLIMIT_MEMLOCK read at every map (the kernel's behaviour); the default.
 *
 * Unmap rules (type1 v2 and iommufd): an unmap range may cover many whole mappings but must not
 * split one (-EINVAL, nothing unmapped); a range holding no mapping succeeds with 0 bytes.
 * Each container holds at most max_mappings mappings (VFIO dma_entry_limit, 65535): -ENOSPC.
 *
 * A space maps sparse RAM (a discard manager) one mapping per granule, so that any block can be
 * unmapped alone, and registers a discard listener to follow plug/unplug. Before a space goes
 * live it checks that the worst case fits (QEMU's check, made a hard error):
 *   sum(section_size / granularity) + max_memslots - n_sparse_sections <= max_mappings
 * else -ENOSPC with a message naming the numbers.
 *
 * vIOMMU: disabled -> the space maps every plugged byte of guest RAM at iova == gpa;
 * enabled -> only the mappings of the space's current domain, each (iova -> gpa, size) mapped
 * when its target lies in one RAM section and is fully populated. Switching either way unmaps
 * the old view and maps the new one; a domain switch does the same for one space. A failure
 * while mapping the new view restores the old one and returns the error.
 */
#ifndef PVMEM_DMA_H
#define PVMEM_DMA_H

#include <pvmem/core.h>
#include <pvmem/discard.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PVM_DMA_PAGE_SIZE 4096u                 /* smallest IOMMU page: alignment of everything */
#define PVM_DMA_DEFAULT_MAX_MAPPINGS 65535u     /* VFIO type1 dma_entry_limit default */
#define PVM_DMA_DEFAULT_MAX_MEMSLOTS 512u       /* QEMU's guess without KVM */
#define PVM_DMA_BUDGET_RLIMIT 0ull              /* budget: RLIMIT_MEMLOCK (soft), read per map */
#define PVM_DMA_BUDGET_UNLIMITED UINT64_MAX     /* budget: no limit (CAP_IPC_LOCK) */

enum pvm_dma_model {
	PVM_DMA_MODEL_TYPE1 = 0,     /* per-container pin and charge */
	PVM_DMA_MODEL_IOMMUFD,       /* pin once per process, refcounted */
};

enum pvm_dma_backend {
	PVM_DMA_BACKEND_ACCOUNTING = 0,   /* no device: count against the budget (optional mlock) */
	PVM_DMA_BACKEND_KERNEL,           /* real VFIO_IOMMU_MAP_DMA / IOMMU_IOAS_MAP ioctls */
};

/* Which vote a device takes on the machine's discard policy when attached. */
enum pvm_dma_device_kind {
	PVM_DMA_DEVICE_VFIO = 0,     /* follows coordinated discards: DISABLE_UNCOORDINATED */
	PVM_DMA_DEVICE_PIN_ALL,      /* vDPA, userspace NVMe: pins all RAM: DISABLE */
	PVM_DMA_DEVICE_NO_PIN,       /* mdev/ccw opt-in: pins only its working set: no vote */
};

/* System calls with effects outside the process. NULL members use the real call. Each returns
 * 0 or a negative errno. */
struct pvm_dma_hooks {
	void *opaque;                                                        /* passed to each */
	int (*ioctl)(void *opaque, int fd, unsigned long request, void *arg);
	int (*mlock)(void *opaque, const void *addr, size_t len);
	int (*munlock)(void *opaque, const void *addr, size_t len);
	/* The soft RLIMIT_MEMLOCK in bytes (UINT64_MAX for infinity). Default: the memlock
	 * module's call when present, else getrlimit(). */
	int (*memlock_limit)(void *opaque, uint64_t *bytes);
};

struct pvm_dma_ctx_config {
	enum pvm_dma_model model;            /* accounting model */
	enum pvm_dma_backend backend;        /* accounting or kernel */
	uint64_t budget;                     /* bytes, PVM_DMA_BUDGET_RLIMIT or _UNLIMITED */
	bool real_mlock;                     /* accounting backend: also mlock() pinned ranges */
	uint32_t max_mappings;               /* per container; 0 = PVM_DMA_DEFAULT_MAX_MAPPINGS */
	uint32_t max_memslots;               /* admission check; 0 = PVM_DMA_DEFAULT_MAX_MEMSLOTS */
	struct pvm_discard_policy *policy;   /* device votes; NULL = none; must outlive the ctx */
	const struct pvm_dma_hooks *hooks;   /* NULL = real calls; copied */
};

struct pvm_dma_ctx_stats {
	uint64_t pinned;          /* bytes charged now (what the kernel's locked_vm would hold) */
	uint64_t peak_pinned;     /* highest value of pinned so far */
	uint64_t mapped;          /* bytes mapped, summed over containers */
	uint64_t mappings;        /* mappings, summed over containers */
	uint64_t containers;      /* containers alive */
	uint64_t map_calls;       /* successful map calls */
	uint64_t unmap_calls;     /* unmap calls that removed at least one mapping */
};

struct pvm_dma_container_stats {
	uint64_t mappings;        /* mappings held */
	uint64_t mapped;          /* bytes held (pinned by this container) */
	uint64_t charged;         /* bytes this container caused to be charged (type1: = mapped;
	                           * iommufd: pins it holds that no other container holds) */
	uint32_t max_mappings;    /* the limit */
	uint32_t avail;           /* max_mappings - mappings (VFIO's DMA_AVAIL) */
};

struct pvm_dma_space_stats {
	uint32_t devices;         /* devices attached */
	bool live;                /* container mapped (devices > 0) */
	bool viommu;              /* the space has a vIOMMU */
	bool viommu_enabled;      /* ... and it is enabled now */
	uint32_t domain;          /* current domain */
	uint64_t mappings;        /* container mappings */
	uint64_t mapped;          /* container bytes */
	uint64_t ram_sections;    /* RAM sections known */
	uint64_t needed_mappings; /* worst case of the admission check */
};

struct pvm_dma_ctx;
struct pvm_dma_container;
struct pvm_dma_space;
struct pvm_dma_viommu;

/* Called per mapping, ascending iova; non-zero stops the walk and is returned. */
typedef int (*pvm_dma_mapping_fn)(void *arg, uint64_t iova, uint64_t hva, uint64_t size);

/* ---- context ------------------------------------------------------------------------------- */

PVM_EXPORT int pvm_dma_ctx_new(const struct pvm_dma_ctx_config *cfg, struct pvm_dma_ctx **out,
			       struct pvm_error *err) PVM_MUST_CHECK;
/* NULL is fine. All spaces and containers must have been freed. */
PVM_EXPORT void pvm_dma_ctx_free(struct pvm_dma_ctx *ctx);
/* Change the budget (bytes, PVM_DMA_BUDGET_RLIMIT or _UNLIMITED). Pins already made stay. */
PVM_EXPORT void pvm_dma_ctx_set_budget(struct pvm_dma_ctx *ctx, uint64_t budget);
/* The budget in force now in bytes (reads the rlimit in RLIMIT mode; UINT64_MAX = unlimited). */
PVM_EXPORT int pvm_dma_ctx_budget(const struct pvm_dma_ctx *ctx, uint64_t *bytes,
				  struct pvm_error *err) PVM_MUST_CHECK;
PVM_EXPORT enum pvm_dma_model pvm_dma_ctx_model(const struct pvm_dma_ctx *ctx);
PVM_EXPORT void pvm_dma_ctx_stats(const struct pvm_dma_ctx *ctx, struct pvm_dma_ctx_stats *out);
/* "type1" / "iommufd"; NULL for others. */
PVM_EXPORT const char *pvm_dma_model_name(enum pvm_dma_model model);
/* Parse "type1" / "iommufd"; -EINVAL. */
PVM_EXPORT int pvm_dma_model_parse(const char *name, enum pvm_dma_model *out);

/* ---- containers ---------------------------------------------------------------------------- */

/* A container. @fd: for the kernel backend, a VFIO container fd already set to type1v2 (TYPE1)
 * or an iommufd fd on which an IOAS is allocated (IOMMUFD); -1 for the accounting backend. The
 * fd stays the caller's. With a type1 fd the mapping limit is read from DMA_AVAIL. */
PVM_EXPORT int pvm_dma_container_new(struct pvm_dma_ctx *ctx, int fd,
				     struct pvm_dma_container **out,
				     struct pvm_error *err) PVM_MUST_CHECK;
/* Unmap everything and free. NULL is fine. */
PVM_EXPORT void pvm_dma_container_free(struct pvm_dma_container *c);
/* Map [@iova, +@size) -> @hva, pin and charge it. Errors: -EINVAL (size 0, unaligned to
 * PVM_DMA_PAGE_SIZE, wraps), -EEXIST (overlaps a mapping), -ENOSPC (mapping limit), -ENOMEM
 * (budget exceeded, or allocation), or the kernel's error. Nothing changes on failure. */
PVM_EXPORT int pvm_dma_container_map(struct pvm_dma_container *c, uint64_t iova, uint64_t hva,
				     uint64_t size, struct pvm_error *err) PVM_MUST_CHECK;
/* Unmap every mapping inside [@iova, +@size); *@unmapped (may be NULL) gets the bytes.
 * -EINVAL when the range splits a mapping (nothing unmapped) or is unaligned. */
PVM_EXPORT int pvm_dma_container_unmap(struct pvm_dma_container *c, uint64_t iova, uint64_t size,
				       uint64_t *unmapped, struct pvm_error *err);
PVM_EXPORT void pvm_dma_container_unmap_all(struct pvm_dma_container *c);
PVM_EXPORT void pvm_dma_container_stats(const struct pvm_dma_container *c,
					struct pvm_dma_container_stats *out);
PVM_EXPORT int pvm_dma_container_for_each(const struct pvm_dma_container *c,
					  pvm_dma_mapping_fn fn, void *arg);
/* The IOAS id (kernel iommufd backend), else 0. */
PVM_EXPORT uint32_t pvm_dma_container_ioas_id(const struct pvm_dma_container *c);

/* ---- admission check ------------------------------------------------------------------------ */

/* Worst-case mappings of a space: sum over sparse sections of size/granularity (rounded out to
 * the granularity) + @max_memslots - (number of sparse sections). @sizes/@granularities have
 * @n entries. Saturates at UINT64_MAX. */
PVM_EXPORT uint64_t pvm_dma_mappings_needed(const uint64_t *sizes, const uint64_t *granularities,
					    size_t n, uint32_t max_memslots);

/* ---- vIOMMU --------------------------------------------------------------------------------- */

/* A vIOMMU, disabled, with no domains. -ENOMEM. */
PVM_EXPORT int pvm_dma_viommu_new(struct pvm_dma_viommu **out) PVM_MUST_CHECK;
/* NULL is fine. Spaces using it must have been freed. */
PVM_EXPORT void pvm_dma_viommu_free(struct pvm_dma_viommu *v);
/* Enable or disable DMA remapping for every space behind @v: each live space unmaps its old view
 * and maps the new one. On a failure the spaces already switched are switched back, the state is
 * unchanged and the error (-ENOMEM, -ENOSPC) returned. Same state: no-op. */
PVM_EXPORT int pvm_dma_viommu_set_enabled(struct pvm_dma_viommu *v, bool enabled,
					  struct pvm_error *err) PVM_MUST_CHECK;
PVM_EXPORT bool pvm_dma_viommu_enabled(const struct pvm_dma_viommu *v);
/* Guest programs iova -> gpa in @domain (created on first use). -EINVAL (size 0, unaligned,
 * wraps), -EEXIST (overlaps an entry of the domain), -ENOSPC (too many entries), or a live
 * enabled space's map error (then nothing changed). A target outside guest RAM or in unplugged
 * memory is kept but not mapped. */
PVM_EXPORT int pvm_dma_viommu_map(struct pvm_dma_viommu *v, uint32_t domain, uint64_t iova,
				  uint64_t gpa, uint64_t size, struct pvm_error *err) PVM_MUST_CHECK;
/* Remove the domain's entries inside [@iova, +@size) (whole entries only: -EINVAL on a split);
 * *@removed (may be NULL) gets the bytes. */
PVM_EXPORT int pvm_dma_viommu_unmap(struct pvm_dma_viommu *v, uint32_t domain, uint64_t iova,
				    uint64_t size, uint64_t *removed, struct pvm_error *err);
/* Entries of a domain (0 when it does not exist). */
PVM_EXPORT uint64_t pvm_dma_viommu_domain_entries(const struct pvm_dma_viommu *v, uint32_t domain);

/* ---- address spaces ------------------------------------------------------------------------ */

struct pvm_dma_space_config {
	const char *name;                 /* for messages and traces; copied; may be NULL */
	struct pvm_dma_viommu *viommu;    /* NULL: no vIOMMU (identity map of plugged RAM) */
	uint32_t domain;                  /* initial domain (with a vIOMMU) */
	int fd;                           /* container fd for the kernel backend, else -1 */
};

PVM_EXPORT int pvm_dma_space_new(struct pvm_dma_ctx *ctx, const struct pvm_dma_space_config *cfg,
				 struct pvm_dma_space **out, struct pvm_error *err) PVM_MUST_CHECK;
/* Detach every device (releasing votes), unmap, free. NULL is fine. */
PVM_EXPORT void pvm_dma_space_free(struct pvm_dma_space *s);
/* Add a RAM section [@gpa, +@size) at @hva. @dm: the discard manager of a sparse section (the
 * section must lie inside it, aligned to its granularity), or NULL for RAM that is always
 * populated. A live space maps it now (and refuses it, unchanged, when that fails or the
 * admission check fails). -EINVAL (unaligned, overlap), -ENOSPC, -ENOMEM. */
PVM_EXPORT int pvm_dma_space_add_ram(struct pvm_dma_space *s, uint64_t gpa, uint64_t size,
				     void *hva, struct pvm_discard_manager *dm,
				     struct pvm_error *err) PVM_MUST_CHECK;
/* Remove the section starting at @gpa (unmapped first). -ENOENT. */
PVM_EXPORT int pvm_dma_space_remove_ram(struct pvm_dma_space *s, uint64_t gpa);
/* Attach device @name (copied, unique in the space): take its vote first (-EBUSY), then, for
 * the first device, run the admission check (-ENOSPC) and map the current view (-ENOMEM...);
 * every failure releases the vote and leaves the space as it was. */
PVM_EXPORT int pvm_dma_space_attach(struct pvm_dma_space *s, const char *name,
				    enum pvm_dma_device_kind kind,
				    struct pvm_error *err) PVM_MUST_CHECK;
/* Detach: the last device unmaps everything; then the vote is released. -ENOENT. */
PVM_EXPORT int pvm_dma_space_detach(struct pvm_dma_space *s, const char *name);
/* Bind the space to another vIOMMU domain (a context-entry change); with the vIOMMU enabled the
 * old domain's mappings are unmapped and the new domain's mapped (restored on failure).
 * -EINVAL without a vIOMMU. */
PVM_EXPORT int pvm_dma_space_set_domain(struct pvm_dma_space *s, uint32_t domain,
					struct pvm_error *err) PVM_MUST_CHECK;
PVM_EXPORT void pvm_dma_space_stats(const struct pvm_dma_space *s, struct pvm_dma_space_stats *out);
PVM_EXPORT int pvm_dma_space_for_each_mapping(const struct pvm_dma_space *s,
					      pvm_dma_mapping_fn fn, void *arg);
PVM_EXPORT const char *pvm_dma_space_name(const struct pvm_dma_space *s);
/* The space's container (owned by the space). */
PVM_EXPORT struct pvm_dma_container *pvm_dma_space_container(struct pvm_dma_space *s);

#ifdef __cplusplus
}
#endif
#endif /* PVMEM_DMA_H */

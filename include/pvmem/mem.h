/* SPDX-License-Identifier: MIT */
/*
 * Guest memory regions: one host mapping of guest RAM with a backend (anonymous, memfd,
 * hugetlbfs, file), optional NUMA binding and preallocation, and the primitives every device
 * uses to give memory back (discard), take it again (populate) and prove it is gone (resident).
 *
 * Offsets are relative to the start of the region. Every range is checked: it must lie inside
 * the region and be aligned to the region's page size (pvm_mem_region_page_size()), else -EINVAL;
 * an empty range (len 0) inside the region is a no-op that succeeds.
 * A region is not internally locked; discard/populate/resident on disjoint ranges may run from
 * different threads at once.
 */
#ifndef PVMEM_MEM_H
#define PVMEM_MEM_H

#include <pvmem/core.h>

#ifdef __cplusplus
extern "C" {
#endif

enum pvm_mem_backend {
	PVM_MEM_BACKEND_ANON = 0,   /* anonymous memory (private unless .shared) */
	PVM_MEM_BACKEND_MEMFD,      /* memfd_create(); always shared; MFD_HUGETLB with .hugetlb */
	PVM_MEM_BACKEND_HUGETLBFS,  /* a file on a hugetlbfs mount (.path: a directory or a file) */
	PVM_MEM_BACKEND_FILE,       /* an ordinary file (.path), shared or private */
};

enum pvm_mem_numa_mode {
	PVM_MEM_NUMA_DEFAULT = 0,   /* no policy */
	PVM_MEM_NUMA_BIND,          /* only the nodes in .numa_nodes */
	PVM_MEM_NUMA_PREFERRED,     /* the first node in .numa_nodes, others if it is full */
	PVM_MEM_NUMA_INTERLEAVE,    /* round-robin over .numa_nodes */
};

/* How a region is made. Zero-initialise, then set what you need. Strings are copied. */
struct pvm_mem_region_config {
	const char *name;                 /* for messages and traces ("ram0"); may be NULL */
	enum pvm_mem_backend backend;     /* where the memory comes from */
	uint64_t size;                    /* bytes; a multiple of the page size, > 0 */
	bool shared;                      /* MAP_SHARED (memfd and hugetlbfs are always shared) */
	bool hugetlb;                     /* memfd: huge pages (MFD_HUGETLB); anon: MAP_HUGETLB */
	uint64_t hugepage_size;           /* hugetlb page size; 0 = the system default */
	const char *path;                 /* FILE: the file; HUGETLBFS: a directory (a temporary
	                                   * unlinked file is made there) or a file */
	bool noreserve;                   /* MAP_NORESERVE: no swap reservation (sparse guests) */
	bool keep_contents;               /* FILE: keep existing contents (else truncate to size) */
	enum pvm_mem_numa_mode numa_mode; /* NUMA policy, applied with mbind() */
	uint64_t numa_nodes;              /* bit N = node N */
	bool prealloc;                    /* populate the whole region at creation */
	unsigned prealloc_threads;        /* 0 = one per online CPU (at most 16) */
	pvm_progress_fn progress;         /* preallocation progress, may be NULL */
	void *progress_opaque;            /* passed to progress */
};

struct pvm_mem_region;

/* "anonymous", "memfd", "hugetlbfs", "file" (or "unknown"). */
PVM_EXPORT const char *pvm_mem_backend_name(enum pvm_mem_backend backend);

/* Create a region from @cfg into *@out. Errors: -EINVAL (bad config), -ENOENT (path),
 * -ENOMEM (mmap or preallocation failed: with .prealloc the region is not returned), -ENOSYS
 * (NUMA policy without kernel support). */
PVM_EXPORT int pvm_mem_region_new(const struct pvm_mem_region_config *cfg,
				  struct pvm_mem_region **out, struct pvm_error *err) PVM_MUST_CHECK;
/* Unmap and close. NULL is fine. */
PVM_EXPORT void pvm_mem_region_free(struct pvm_mem_region *r);

PVM_EXPORT const char *pvm_mem_region_name(const struct pvm_mem_region *r);
PVM_EXPORT void *pvm_mem_region_host(const struct pvm_mem_region *r);
PVM_EXPORT uint64_t pvm_mem_region_size(const struct pvm_mem_region *r);
/* The backing page size: 4 KiB, or the huge page size for hugetlb backends. */
PVM_EXPORT uint64_t pvm_mem_region_page_size(const struct pvm_mem_region *r);
PVM_EXPORT enum pvm_mem_backend pvm_mem_region_backend(const struct pvm_mem_region *r);
PVM_EXPORT bool pvm_mem_region_is_shared(const struct pvm_mem_region *r);
/* The backing file descriptor (memfd, hugetlbfs, file), or -1 for anonymous memory. */
PVM_EXPORT int pvm_mem_region_fd(const struct pvm_mem_region *r);

/* Give the host memory behind [@offset, @offset+@len) back, so that it no longer counts in the
 * process's RSS or the backing file, and reads return zeros afterwards. The primitive follows
 * the backend: private anonymous MADV_DONTNEED; shared anonymous MADV_REMOVE; memfd, hugetlbfs
 * and shared files fallocate(PUNCH_HOLE|KEEP_SIZE) (plus MADV_DONTNEED of the mapping); private
 * file mappings get fresh anonymous memory mapped over the range. */
PVM_EXPORT int pvm_mem_region_discard(struct pvm_mem_region *r, uint64_t offset, uint64_t len,
				      struct pvm_error *err) PVM_MUST_CHECK;

/* Options for pvm_mem_region_populate(). Zero-initialised means: write-populate, one thread. */
struct pvm_mem_populate_opts {
	bool read_only;              /* MADV_POPULATE_READ instead of _WRITE */
	unsigned threads;            /* worker threads; 0 or 1 = the calling thread only */
	pvm_progress_fn progress;    /* may be NULL */
	void *progress_opaque;       /* passed to progress */
};

/* Allocate the memory behind the range now (MADV_POPULATE_WRITE, with a touch-loop fallback on
 * kernels without it). -ENOMEM when the memory cannot be had (e.g. the hugetlb pool is empty);
 * the range may then be partly populated and the caller discards it if it must roll back. */
PVM_EXPORT int pvm_mem_region_populate(struct pvm_mem_region *r, uint64_t offset, uint64_t len,
				       const struct pvm_mem_populate_opts *opts,
				       struct pvm_error *err) PVM_MUST_CHECK;

/* Bytes of the range that are resident in host memory now (mincore(); for shared backends the
 * page-cache residency of the backing file). */
PVM_EXPORT int pvm_mem_region_resident(const struct pvm_mem_region *r, uint64_t offset,
				       uint64_t len, uint64_t *bytes, struct pvm_error *err) PVM_MUST_CHECK;

/* Bytes of the range that hold memory in the backing store: for shared memfd and file backends
 * the parts of the file that are data, not holes (lseek SEEK_DATA/SEEK_HOLE), which also counts
 * pages written through the fd and never mapped; for anonymous memory, private file mappings and
 * hugetlb (hugetlbfs reports no holes) the same as pvm_mem_region_resident(). */
PVM_EXPORT int pvm_mem_region_allocated(const struct pvm_mem_region *r, uint64_t offset,
					uint64_t len, uint64_t *bytes, struct pvm_error *err) PVM_MUST_CHECK;

#ifdef __cplusplus
}
#endif
#endif /* PVMEM_MEM_H */

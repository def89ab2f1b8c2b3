/* SPDX-License-Identifier: MIT */
/*
 * Internal state of a guest memory region, shared by region.c (life cycle, range checks),
 * backend.c (making and freeing memory per backend), populate.c, numa.c and resident.c.
 * Not installed; nothing here is exported.
 */
#ifndef PVM_MEM_REGION_PRIV_H
#define PVM_MEM_REGION_PRIV_H

#include <sys/types.h>

#include <pvmem/mem.h>

struct pvm_mem_region {
	char *name;                    /* for messages and traces; never NULL ("ram" by default) */
	enum pvm_mem_backend backend;  /* where the memory comes from */
	uint64_t size;                 /* bytes mapped at host; a multiple of page_size */
	uint64_t page_size;            /* backing page size: base page or huge page */
	bool shared;                   /* mapped MAP_SHARED */
	bool hugetlb;                  /* backed by hugetlb pages (memfd, hugetlbfs, anon) */
	bool noreserve;                /* mapped with MAP_NORESERVE (kept for re-mapping) */
	int fd;                        /* backing file, or -1 for anonymous memory */
	char *path;                    /* FILE/HUGETLBFS: the path given (for messages), or NULL */
	bool created;                  /* the file at path was made by pvm_mem_region_new() (it
	                                * removes it again when creation fails later on) */
	void *host;                    /* start of the mapping */
	enum pvm_mem_numa_mode numa_mode; /* NUMA policy applied to the mapping */
	uint64_t numa_nodes;           /* nodes of that policy (bit N = node N) */
};

/* System calls that the memory layer makes on guest memory, replaceable by tests so that they
 * can simulate old kernels (MADV_POPULATE_* -> EINVAL) or failures half-way through. Each
 * returns what the system call returns (-1 with errno set on failure). */
struct pvm_mem_sys_hooks {
	int (*madvise)(void *addr, size_t len, int advice);
	int (*fallocate)(int fd, int mode, off_t offset, off_t len);
};
extern struct pvm_mem_sys_hooks pvm_mem_sys;
/* Restore the real system calls. */
void pvm_mem_sys_reset(void);

/* ---- region.c ---------------------------------------------------------------------------- */

/* Check that [@offset, @offset+@len) lies inside @r and is aligned to its page size. @what names
 * the operation for the message. 0 or -EINVAL. */
int pvm_mem_region_check_range(const struct pvm_mem_region *r, uint64_t offset, uint64_t len,
			       const char *what, struct pvm_error *err);

/* ---- backend.c --------------------------------------------------------------------------- */

/* Open the backing store for @cfg (fd, page size, shared/hugetlb flags) and map it into
 * r->host. On failure nothing is left open or mapped (r->fd == -1, r->host == NULL) and a file
 * this call created is removed again. */
int pvm_mem_backend_open(struct pvm_mem_region *r, const struct pvm_mem_region_config *cfg,
			 struct pvm_error *err);
/* Unmap and close what pvm_mem_backend_open() made. */
void pvm_mem_backend_close(struct pvm_mem_region *r);
/* Free the memory behind a checked range (see pvm_mem_region_discard()). */
int pvm_mem_backend_discard(struct pvm_mem_region *r, uint64_t offset, uint64_t len,
			    struct pvm_error *err);
/* The system's base page size. */
uint64_t pvm_mem_base_page_size(void);

/* ---- numa.c ------------------------------------------------------------------------------ */

/* Check a NUMA mode and node mask against what this machine offers: -EINVAL (bad mode, empty
 * mask, node that does not exist or is not allowed), -ENOSYS (no NUMA support). */
int pvm_mem_numa_check(enum pvm_mem_numa_mode mode, uint64_t nodes, struct pvm_error *err);
/* Apply @r's policy to [@offset, @offset+@len) of its mapping (no-op for the default mode). */
int pvm_mem_numa_apply(const struct pvm_mem_region *r, uint64_t offset, uint64_t len,
		       struct pvm_error *err);

/* ---- populate.c -------------------------------------------------------------------------- */

/* The default number of preallocation threads: online CPUs, at most 16. */
unsigned pvm_mem_default_threads(void);

#endif /* PVM_MEM_REGION_PRIV_H */

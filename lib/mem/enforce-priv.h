/* SPDX-License-Identifier: MIT */
/* Enforcement internals shared by enforce.c, enforce-uffd.c and enforce-mprotect.c. */
#ifndef PVM_MEM_ENFORCE_PRIV_H
#define PVM_MEM_ENFORCE_PRIV_H

#include <pthread.h>
#include <stdatomic.h>

#include <pvmem/bitmap.h>
#include <pvmem/enforce.h>

/* One trap as passed from the fault path to the monitor thread. */
struct pvm_enforce_rec {
	uint64_t addr;     /* faulting host address (page-aligned) */
	uint32_t tid;      /* faulting thread */
	uint32_t action;   /* enum pvm_enforce_policy applied */
};

struct pvm_enforce {
	enum pvm_enforce_mode mode;        /* resolved mode */
	enum pvm_enforce_policy policy;    /* what a trap does */
	struct pvm_mem_region *region;     /* backing region (not owned) */
	uint8_t *base;                     /* host address of the range start */
	uint64_t offset;                   /* range start in the region */
	uint64_t size;                     /* range length */
	uint64_t block_size;               /* protection granularity */
	uint64_t page_size;                /* region page size */
	uint64_t nblocks;                  /* size / block_size */
	bool private_anon;                 /* private anonymous: reads may see the zero page */
	struct pvm_bitmap *prot;           /* blocks protected now (read lock-free by the fault path) */
	struct pvm_bitmap *poison;         /* uffd: blocks holding poison markers from denied traps */
	pthread_mutex_t lock;              /* serialises protect/unprotect with trap handling */
	pvm_enforce_trap_fn on_trap;       /* report callback */
	void *opaque;                      /* for on_trap */
	atomic_uint_fast64_t traps;        /* stats, see struct pvm_enforce_stats */
	atomic_uint_fast64_t allowed;
	atomic_uint_fast64_t denied;
	int uffd;                          /* uffd mode: the userfaultfd, else -1 */
	int wake_pipe[2];                  /* monitor's stop pipe (uffd) / trap pipe (mprotect) */
	pthread_t monitor;                 /* the monitor thread */
	bool monitor_running;              /* monitor was started */
	int mp_slot;                       /* mprotect: index in the signal handler's table, or -1 */
};

/* Report one trap (monitor thread): stats are already counted by the fault path. */
void pvm_enforce_report(struct pvm_enforce *e, const struct pvm_enforce_rec *rec);

int pvm_enforce_uffd_init(struct pvm_enforce *e, struct pvm_error *err);
void pvm_enforce_uffd_fini(struct pvm_enforce *e);
int pvm_enforce_uffd_set(struct pvm_enforce *e, uint64_t first, uint64_t count, bool protect,
			 struct pvm_error *err);

int pvm_enforce_mprotect_init(struct pvm_enforce *e, struct pvm_error *err);
void pvm_enforce_mprotect_fini(struct pvm_enforce *e);
int pvm_enforce_mprotect_set(struct pvm_enforce *e, uint64_t first, uint64_t count, bool protect,
			     struct pvm_error *err);

#endif

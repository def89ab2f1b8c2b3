/* SPDX-License-Identifier: MIT */
/* virtio-mem device internals shared by mem.c (device, requests), mem-act.c (side effects with
 * rollback) and mem-async.c (the worker). */
#ifndef PVM_VIRTIO_MEM_PRIV_H
#define PVM_VIRTIO_MEM_PRIV_H

#include <pthread.h>

#include <pvmem/virtio-mem.h>
#include "virtio/mem-state.h"

struct pvm_vmem {
	char *id;                          /* device id for messages */
	pthread_mutex_t lock;              /* recursive: state below; held across act() */
	struct pvm_vmem_view v;            /* addr, sizes, bitmap, busy: what decide() reads */
	struct pvm_bitmap *plugged;        /* one bit per block (v.plugged points here) */
	uint16_t node;                     /* NUMA node for node_id */
	uint64_t features;                 /* device feature bits offered */
	uint64_t extent;                   /* usable-region extent */
	uint64_t async_threshold;          /* bytes of work that go to the worker */
	bool prealloc;                     /* populate on plug */
	struct pvm_mem_region *mem;        /* backing (not owned) */
	struct pvm_memslot_table *slots;   /* machine memslots (not owned) */
	uint32_t nslots;                   /* memslots held for plugged runs */
	struct pvm_enforce *enforce;       /* NULL in mode none */
	struct pvm_discard_policy *policy; /* vote holder, may be NULL */
	bool vote_held;                    /* REQUIRE_COORDINATED taken */
	struct pvm_discard_manager *dm;    /* listeners (DMA); source = this device */
	struct pvm_virtio_device *vdev;    /* the virtio device */
	uint64_t epoch;                    /* device resets seen: stale async work is not answered */
	pvm_vmem_size_fn on_size_change;   /* callbacks */
	pvm_enforce_trap_fn on_trap;
	void *opaque;
	uint64_t requests, busy_answers, async_completions;   /* statistics */
	/* async worker (mem-async.c) */
	pthread_t worker;                  /* started on first use */
	bool worker_started;               /* worker thread exists */
	bool worker_stop;                  /* ask the worker to exit */
	struct pvm_virtq_elem *job;        /* element being completed asynchronously, or NULL */
	struct pvm_vmem_decision job_d;    /* its decision */
	struct pvm_virtq *job_vq;          /* its queue */
	uint64_t job_epoch;                /* epoch when it was queued */
	pthread_cond_t cond;               /* job queued / job done */
};

/* Carry out @d (PLUG, UNPLUG, UNPLUG_ALL, SHRINK_USABLE) with full rollback: 0, or -errno with
 * the state unchanged (the request is then answered BUSY). Lock held. */
int pvm_vmem_act(struct pvm_vmem *vm, const struct pvm_vmem_decision *d);
/* Unplug everything and shrink the usable region (UNPLUG_ALL, system reset). Lock held. */
int pvm_vmem_unplug_all(struct pvm_vmem *vm);
/* Notify the size-change callback. */
void pvm_vmem_size_changed(struct pvm_vmem *vm);

/* Answer @elem with @resp/@state and give it back (any thread; lock not held). */
void pvm_vmem_respond(struct pvm_vmem *vm, struct pvm_virtq *vq, struct pvm_virtq_elem *elem,
		      uint16_t resp, uint16_t state);

/* Worker: queue @elem (lock held; no job pending). 0 or -errno (then answer synchronously). */
int pvm_vmem_async_queue(struct pvm_vmem *vm, struct pvm_virtq *vq, struct pvm_virtq_elem *elem,
			 const struct pvm_vmem_decision *d);
void pvm_vmem_async_stop(struct pvm_vmem *vm);
/* Process the queue (mem.c); the worker calls it after completing a job. */
void pvm_vmem_process_queue(struct pvm_vmem *vm, struct pvm_virtq *vq);

/* Audit helpers (mem-act.c). */
int pvm_vmem_slots_audit(struct pvm_vmem *vm, uint64_t *mismatch);

#endif

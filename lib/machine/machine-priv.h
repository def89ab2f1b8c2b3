/* SPDX-License-Identifier: MIT */
/* The machine's state, shared by the files of lib/machine. Internal. */
#ifndef PVM_MACHINE_PRIV_H
#define PVM_MACHINE_PRIV_H

#include <pvmem/balloon.h>
#include <pvmem/discard.h>
#include <pvmem/dma.h>
#include <pvmem/domain.h>
#include <pthread.h>

#include <pvmem/machine.h>
#include <pvmem/mem.h>
#include <pvmem/memlock.h>
#include <pvmem/memslot.h>
#include <pvmem/virtio-mem.h>
#include <pvmem/virtio.h>

#include "core/util.h"

#define PVM_MACHINE_MAX_DEVICES 64u
#define PVM_MACHINE_MAX_FDS 16u

/* One virtio device and its transport. */
struct pvm_machine_vdev {
	char id[64];                       /* device id */
	uint32_t device_id;                /* PVM_VIRTIO_ID_* */
	struct pvm_virtio_device *dev;     /* the device (owned by vmem or balloon) */
	struct pvm_virtio_mmio *mmio;      /* its transport (owned) */
	uint64_t mmio_gpa;                 /* window address */
	int vmem;                          /* index in m->vmems, -1 for the balloon */
};

/* Enforcement traps queued between two rounds of the loop; more are counted, not queued. */
#define PVM_MACHINE_MAX_TRAPS 64

/* One virtio-mem device with its backing region. */
struct pvm_machine_vmem {
	struct pvm_machine *m;             /* the machine (callbacks get this entry as opaque) */
	struct pvm_vmem *vmem;             /* the device (owned) */
	struct pvm_mem_region *region;     /* its memory (owned) */
	uint64_t gpa;                      /* region start */
	uint64_t size;                     /* region size */
	int node;                          /* NUMA node */
};

/* One attached host device. */
struct pvm_machine_hostdev {
	char id[64];                       /* device id */
	enum pvm_machine_hostdev_kind kind;/* what it is */
	struct pvm_dma_space *space;       /* the space it is attached to (shared or its own) */
	bool own_space;                    /* the space belongs to this device (vIOMMU) */
};

/* A watched file descriptor. */
struct pvm_machine_fd {
	int fd;                                             /* the descriptor, -1 = free */
	void (*cb)(void *opaque, int fd, uint32_t events);  /* called from the loop */
	void *opaque;                                       /* for cb */
};

struct pvm_machine {
	struct pvm_domain *dom;            /* the domain model (owned; follows attach/detach) */
	struct pvm_machine_opts opts;      /* options */
	uint64_t t0_ns;                    /* creation time (CLOCK_MONOTONIC) */

	struct pvm_mem_region *ram;        /* boot RAM (owned) */
	uint64_t ram_size;                 /* bytes */
	struct pvm_memslot_table *slots;   /* the memslot table (owned) */
	struct pvm_discard_policy *policy; /* discard votes (owned) */

	struct pvm_machine_vmem vmems[PVM_MACHINE_MAX_DEVICES]; /* virtio-mem devices */
	size_t nvmems;                     /* entries used */
	struct pvm_balloon *balloon;       /* the balloon, NULL when none (owned) */
	struct pvm_machine_vdev vdevs[PVM_MACHINE_MAX_DEVICES]; /* transports, discovery order */
	size_t nvdevs;                     /* entries used */

	struct pvm_dma_ctx *dma;           /* DMA accounting (owned) */
	struct pvm_dma_viommu *viommu;     /* the vIOMMU when the domain has <iommu> (owned) */
	struct pvm_dma_space *shared_space;/* the space of devices without a vIOMMU (owned) */
	struct pvm_machine_hostdev hostdevs[PVM_MACHINE_MAX_DEVICES]; /* attached host devices */
	size_t nhostdevs;                  /* entries used */
	uint32_t next_domain;              /* next vIOMMU domain id to hand out */

	struct pvm_memlock_ctl *memlock;   /* the process-limit controller, NULL with no_memlock */
	enum pvm_machine_memlock_kind ml_kind; /* the need now */
	uint64_t ml_need;                  /* its bytes */
	int ml_error;                      /* last failure to apply it */

	int epfd;                          /* epoll instance for watched fds */
	int irqfd;                         /* eventfd: a device raised an interrupt (any thread) */
	bool irq_pending;                  /* an interrupt came since the guest last ran (atomic) */
	struct pvm_machine_fd fds[PVM_MACHINE_MAX_FDS]; /* watched fds */

	const struct pvm_machine_guest_ops *guest_ops; /* the guest, NULL = none */
	void *guest;                       /* its opaque */
	bool guest_busy;                   /* the guest has work right now */
	bool guest_waiting;                /* the guest waits for a device's answer (interrupt) */
	uint64_t guest_timer_ms;           /* the guest's next timer (0 = none) */
	uint64_t balloon_timer_ms;         /* the balloon's next stats poll (0 = none) */

	/* Enforcement traps come from the enforcer's monitor thread, which must never wait for the
	 * loop (the faulting thread may be the loop itself): they are queued here under trap_lock
	 * and turned into events by the loop (pvm_machine_drain_traps()). */
	pthread_mutex_t trap_lock;         /* protects the four fields below */
	struct pvm_machine_trap {
		const char *id;            /* device id (owned by the device) */
		uint64_t gpa;              /* guest address of the faulting page */
	} traps[PVM_MACHINE_MAX_TRAPS];    /* queued, oldest first */
	unsigned ntraps;                   /* entries queued */
	uint64_t traps_dropped;            /* traps lost because the queue was full */
	uint64_t traps_total;              /* traps seen */

	pvm_machine_event_fn event_fn;     /* event handler, NULL = none */
	void *event_opaque;                /* for event_fn */
	bool quit;                         /* quit was requested */
};

void pvm_machine_emit(struct pvm_machine *m, const struct pvm_machine_event *ev);
/* Emit the events of queued enforcement traps (loop thread). */
void pvm_machine_drain_traps(struct pvm_machine *m);
/* Recompute the memlock need from the domain model (m->ml_kind, m->ml_need) and the DMA budget;
 * when @apply is 1 raise (attach), 2 lower (detach), 0 only compute. */
int pvm_machine_memlock_update(struct pvm_machine *m, int apply, struct pvm_error *err);
/* Create the DMA context and spaces (after the devices exist). */
int pvm_machine_dma_init(struct pvm_machine *m, struct pvm_error *err);
void pvm_machine_dma_fini(struct pvm_machine *m);
void pvm_machine_loop_fini(struct pvm_machine *m);
int pvm_machine_loop_init(struct pvm_machine *m, struct pvm_error *err);
/* The interrupt line of every transport: wakes the loop (any thread, no pvmem call inside). */
void pvm_machine_irq(void *opaque, bool level);

/* The embedded default domain XML and demo script (examples/default.xml, examples/demo.pvm). */
const char *pvm_machine_embedded_default_xml(void);
const char *pvm_machine_embedded_demo_script(void);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * A model of Linux's virtio_mem driver (drivers/virtio/virtio_mem.c, 6.x), as a state machine
 * over an abstract transport: the driver produces one request at a time, the caller delivers it
 * to a device by any means (a real virtqueue in guest memory, or a fake in a unit test) and hands
 * the response back. Nothing here touches memory or a transport.
 *
 * What is modelled (research/virtio-mem.md §3):
 *  - probe: sub-block mode (SBM) when max(device block, 2 MiB pageblock) < the Linux memory block
 *    size (128 MiB by default) and BBM is not forced, else big-block mode (BBM);
 *    UNPLUG_ALL first when plugged_size != 0;
 *  - the work loop (virtio_mem_run_wq): refresh config on a config change, clean up blocks left
 *    plugged, then plug or unplug |requested - plugged|;
 *  - SBM plug: partially plugged blocks lowest first (first unplugged runs), then unused blocks,
 *    then new blocks, one PLUG per new block for sub-blocks 0..count-1; SBM unplug: partial
 *    blocks then full blocks, highest first, a whole block in one request when possible, else
 *    one sub-block per request from the top, skipping busy ones;
 *  - BBM: one PLUG/UNPLUG per big block, plug lowest first, unplug highest first;
 *  - responses: PLUG NACK -> immediate retry; BUSY / UNPLUG NACK / busy memory -> retry timer
 *    (50 s doubling to 300 s, scaled by the caller); ERROR on PLUG/UNPLUG -> device broken;
 *  - a request is never sent while a config change is pending (-EAGAIN, immediate re-run).
 * Memory blocks are onlined at once to ZONE_MOVABLE (memhp_default_state=online_movable, as the
 * guest that recorded the shared traces), so the offline threshold never applies.
 */
#ifndef PVM_SIM_VMEM_DRIVER_H
#define PVM_SIM_VMEM_DRIVER_H

#include <stdbool.h>
#include <stdint.h>

/* Request and response types (virtio 1.2 §5.15). */
enum { PVM_SIM_VMEM_PLUG = 0, PVM_SIM_VMEM_UNPLUG = 1, PVM_SIM_VMEM_UNPLUG_ALL = 2, PVM_SIM_VMEM_STATE = 3 };
enum { PVM_SIM_VMEM_ACK = 0, PVM_SIM_VMEM_NACK = 1, PVM_SIM_VMEM_BUSY = 2, PVM_SIM_VMEM_ERROR = 3 };

/* Linux retry timer bounds, in guest seconds (VIRTIO_MEM_RETRY_TIMER_{MIN,MAX}_MS / 1000). */
#define PVM_SIM_VMEM_RETRY_MIN_S 50u
#define PVM_SIM_VMEM_RETRY_MAX_S 300u

/* The device configuration as the driver reads it. */
struct pvm_sim_vmem_config {
	uint64_t block_size;          /* device block size */
	uint64_t addr;                /* region start (GPA) */
	uint64_t region_size;         /* region size */
	uint64_t usable_region_size;  /* usable part */
	uint64_t plugged_size;        /* device's plugged size */
	uint64_t requested_size;      /* device's requested size */
	uint16_t node_id;             /* NUMA node */
};

/* One request to the device. */
struct pvm_sim_vmem_req {
	uint16_t type;        /* PVM_SIM_VMEM_PLUG... */
	uint64_t addr;        /* first block (PLUG, UNPLUG, STATE) */
	uint16_t nb_blocks;   /* device blocks (PLUG, UNPLUG, STATE) */
};

/* What the driver asks of the guest's memory manager and transport. */
struct pvm_sim_vmem_ops {
	/* Read the device configuration (virtio_cread). 0 or -errno (the run is retried later). */
	int (*read_config)(void *opaque, struct pvm_sim_vmem_config *cfg);
	/* [addr, addr+size) becomes usable guest memory (added + onlined, or fake-onlined). */
	void (*give)(void *opaque, uint64_t addr, uint64_t size);
	/* [addr, addr+size) must stop being used (fake-offline: migrate pages away). 0, or -EBUSY
	 * when the memory cannot be freed (nothing changed then). */
	int (*take)(void *opaque, uint64_t addr, uint64_t size);
};

struct pvm_sim_vmem_opts {
	uint64_t memory_block_size;   /* Linux memory block size; 0 = 128 MiB */
	bool force_bbm;               /* virtio_mem.force_bbm=1 */
	uint64_t bbm_block_size;      /* virtio_mem.bbm_block_size (0 = auto) */
	uint64_t ms_per_guest_second; /* retry-timer scale: 50 s become 50 * this ms; 0 = 1 */
};

struct pvm_sim_vmem;

/* Probe: read the config and prepare. -EINVAL for a config the driver cannot use (block size not
 * a power of two or zero, region not covering a single memory block...), -ENOMEM. */
int pvm_sim_vmem_new(const struct pvm_sim_vmem_opts *opts, const struct pvm_sim_vmem_ops *ops,
		     void *opaque, struct pvm_sim_vmem **out);
void pvm_sim_vmem_free(struct pvm_sim_vmem *d);

/* A config-change interrupt arrived: re-read the config and run the work loop. */
void pvm_sim_vmem_config_changed(struct pvm_sim_vmem *d);

/* Results of pvm_sim_vmem_step(). */
enum pvm_sim_vmem_status {
	PVM_SIM_VMEM_IDLE = 0,     /* nothing to do (work done, or waiting for a config change) */
	PVM_SIM_VMEM_SEND,         /* *req must be sent; call pvm_sim_vmem_complete() with the answer */
	PVM_SIM_VMEM_WAIT,         /* a request is in flight */
	PVM_SIM_VMEM_TIMER,        /* waiting for the retry timer (see pvm_sim_vmem_deadline()) */
	PVM_SIM_VMEM_BROKEN,       /* marked broken after an ERROR: does nothing until re-probed */
};

/* Advance the work loop at time @now_ms (any monotonic millisecond clock). */
enum pvm_sim_vmem_status pvm_sim_vmem_step(struct pvm_sim_vmem *d, uint64_t now_ms,
					   struct pvm_sim_vmem_req *req);
/* The device answered the request in flight with @resp_type (ACK...); other values count as a
 * failed request, as Linux treats them. */
void pvm_sim_vmem_complete(struct pvm_sim_vmem *d, uint16_t resp_type);

/* Figures. */
uint64_t pvm_sim_vmem_plugged(const struct pvm_sim_vmem *d);   /* the driver's own count */
uint64_t pvm_sim_vmem_requested(const struct pvm_sim_vmem *d); /* as last read */
bool pvm_sim_vmem_in_sbm(const struct pvm_sim_vmem *d);
uint64_t pvm_sim_vmem_deadline(const struct pvm_sim_vmem *d);  /* retry timer expiry, ms, 0 = none */
uint64_t pvm_sim_vmem_requests(const struct pvm_sim_vmem *d);  /* requests sent so far */

#endif

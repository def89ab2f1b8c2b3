/* SPDX-License-Identifier: MIT */
/*
 * Internal state of virtio devices and split virtqueues, shared by device.c (status, features,
 * queue setup) and virtqueue.c (ring processing). Not exported.
 *
 * Locking: dev->lock serialises the transport side (status, features, queue configuration,
 * config writes). vq->lock protects one queue's ring state and is taken by pop/push/notify.
 * Order: dev->lock before vq->lock; nothing takes dev->lock while holding a vq->lock.
 * dev->status is atomic so that pvm_virtio_device_set_broken() needs no lock.
 */
#ifndef PVM_VIRTIO_VIRTQUEUE_PRIV_H
#define PVM_VIRTIO_VIRTQUEUE_PRIV_H

#include <pthread.h>
#include <stdatomic.h>

#include <pvmem/virtio.h>

struct pvm_virtq {
	struct pvm_virtio_device *dev;  /* owner */
	pthread_mutex_t lock;           /* protects everything below */
	uint16_t index;                 /* queue index */
	uint16_t max_size;              /* QueueNumMax */
	uint16_t num;                   /* QueueNum chosen by the driver (0 = not set) */
	bool ready;                     /* QueueReady */
	bool kick_pending;              /* notified before DRIVER_OK: deliver at DRIVER_OK */
	bool event_idx;                 /* VIRTIO_F_EVENT_IDX negotiated (copied when ready) */
	bool indirect;                  /* VIRTIO_F_INDIRECT_DESC negotiated (copied when ready) */
	uint64_t desc_gpa;              /* descriptor table (guest-physical) */
	uint64_t avail_gpa;             /* available ring */
	uint64_t used_gpa;              /* used ring */
	uint16_t last_avail;            /* next avail ring index the device will pop */
	uint16_t used_idx;              /* next used ring index (shadow of used->idx) */
	uint16_t signalled_used;        /* used_idx at the last interrupt decision */
	bool signalled_valid;           /* signalled_used is meaningful (false after reset) */
	uint64_t epoch;                 /* bumped on reset: elements from older epochs are stale */
	unsigned inflight;              /* popped, not yet pushed, in this epoch */
	struct iovec *seg_iov;          /* scratch: segments of the chain being walked */
	uint64_t *seg_addr;             /* scratch: their guest addresses */
	bool *seg_write;                /* scratch: device-writable? */
};

struct pvm_virtio_device {
	struct pvm_virtio_device_ops ops;  /* copy of the device's operations */
	void *opaque;                      /* passed to every op */
	struct pvm_memslot_table *mem;     /* guest memory (not owned) */
	pthread_mutex_t lock;              /* transport-side lock (see file comment) */
	_Atomic uint8_t status;            /* device status register */
	uint64_t host_features;            /* offered */
	uint64_t driver_features;          /* last written by the driver */
	_Atomic uint64_t features;         /* negotiated (set at FEATURES_OK, 0 before) */
	atomic_uint config_generation;     /* bumped on every configuration change */
	pthread_mutex_t irq_lock;          /* protects irq_fn/irq_opaque */
	pvm_virtio_interrupt_fn irq_fn;    /* installed by the transport, may be NULL */
	void *irq_opaque;                  /* passed to irq_fn */
	atomic_bool broken;                /* NEEDS_RESET set by the device */
	pthread_mutex_t reason_lock;       /* protects broken_reason */
	char broken_reason[160];           /* first reason for NEEDS_RESET */
	struct pvm_virtq *queues;          /* ops.num_queues entries */
};

/* Queue setup and teardown for device.c. */
int pvm_virtq_init(struct pvm_virtq *vq, struct pvm_virtio_device *dev, uint16_t index,
		   uint16_t max_size);
void pvm_virtq_destroy(struct pvm_virtq *vq);
/* Forget all ring state (device reset or QueueReady = 0); bumps the epoch. Takes vq->lock. */
void pvm_virtq_reset(struct pvm_virtq *vq);
/* Validate the layout and mark the queue ready; -EIO with @why filled when invalid. */
int pvm_virtq_enable(struct pvm_virtq *vq, bool event_idx, bool indirect, char *why, size_t whylen);

#endif /* PVM_VIRTIO_VIRTQUEUE_PRIV_H */

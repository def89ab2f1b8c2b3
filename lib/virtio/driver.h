/* SPDX-License-Identifier: MIT */
/*
 * The guest side of virtio over virtio-mmio, internal to pvmem: used by the unit tests, by
 * `pvmem replay` (every request goes through a real virtqueue) and by the simulated Linux guest
 * (src/sim). It does what Linux's virtio_mmio.c and virtio_ring.c do: reset, ACKNOWLEDGE,
 * DRIVER, feature negotiation with the FEATURES_OK check, queue setup with split rings placed
 * in guest memory, DRIVER_OK; then buffers are added as chains of guest addresses, the device
 * is kicked through QueueNotify, and used buffers are collected.
 *
 * All guest memory it touches (rings, indirect tables) lies in the area the caller gives it
 * and is reached through pvm_memslot_translate(), like the device does. It is not thread-safe:
 * one driver instance is used by one thread at a time (the device side may complete buffers
 * from other threads; the driver reads the used ring with acquire ordering).
 */
#ifndef PVM_VIRTIO_DRIVER_H
#define PVM_VIRTIO_DRIVER_H

#include <pvmem/virtio.h>

struct pvm_vdrv;

/* How the driver sets the device up. Zero-initialise, then fill. */
struct pvm_vdrv_config {
	uint64_t features;        /* features the driver supports (negotiated = these & offered);
	                           * VERSION_1 is always added */
	uint64_t ring_gpa;        /* guest memory for rings and indirect tables (4 KiB aligned) */
	uint64_t ring_size;       /* bytes available there (pvm_vdrv_ring_bytes() tells how many) */
	unsigned num_queues;      /* queues to set up: 0 .. num_queues-1 (0 = all the device has) */
	uint16_t queue_size;      /* 0 = each queue's QueueNumMax; else min(this, QueueNumMax) */
	bool use_indirect;        /* put chains of 2+ buffers in an indirect table when negotiated */
};

/* A buffer: guest-physical address and length. */
struct pvm_vdrv_buf {
	uint64_t addr;            /* guest-physical address */
	uint32_t len;             /* bytes */
};

/* Bytes of guest memory the rings of one queue of @num entries need (with indirect tables). */
uint64_t pvm_vdrv_ring_bytes(uint16_t num);

/* Initialise the device behind @mmio the way Linux does (see the file comment), with rings in
 * [cfg->ring_gpa, +ring_size) of @mem. -ENODEV (bad magic/version/device id 0), -EIO (the
 * device refused FEATURES_OK, or a queue did not become ready), -ENOSPC (ring area too small),
 * -EINVAL (bad config), -ENOMEM. On failure the driver sets status FAILED and frees all. */
int pvm_vdrv_new(struct pvm_virtio_mmio *mmio, struct pvm_memslot_table *mem,
		 const struct pvm_vdrv_config *cfg, struct pvm_vdrv **out,
		 struct pvm_error *err) PVM_MUST_CHECK;
/* Reset the device (status 0) and free the driver. NULL is fine. */
void pvm_vdrv_free(struct pvm_vdrv *d);

struct pvm_virtio_mmio *pvm_vdrv_mmio(const struct pvm_vdrv *d);
uint64_t pvm_vdrv_features(const struct pvm_vdrv *d);
bool pvm_vdrv_has_feature(const struct pvm_vdrv *d, unsigned bit);
unsigned pvm_vdrv_num_queues(const struct pvm_vdrv *d);
uint16_t pvm_vdrv_queue_size(const struct pvm_vdrv *d, unsigned q);
/* Descriptors free on queue @q (an indirect chain takes one). */
unsigned pvm_vdrv_free_descs(const struct pvm_vdrv *d, unsigned q);
/* Status register as the driver reads it. */
uint8_t pvm_vdrv_status(const struct pvm_vdrv *d);
bool pvm_vdrv_needs_reset(const struct pvm_vdrv *d);

/* Make a chain of @out_num device-readable then @in_num device-writable buffers available on
 * queue @q, with @token returned by pvm_vdrv_get_used() (token must not be NULL). Does not
 * notify the device: call pvm_vdrv_kick(). -ENOSPC (no free descriptors), -EINVAL (no buffers,
 * zero length, too many, bad queue or NULL token), -EFAULT (ring memory gone). */
int pvm_vdrv_add(struct pvm_vdrv *d, unsigned q, const struct pvm_vdrv_buf *out, unsigned out_num,
		 const struct pvm_vdrv_buf *in, unsigned in_num, void *token);
/* Publish what was added and write QueueNotify unless the device suppressed notifications
 * (avail_event with EVENT_IDX, else used->flags NO_NOTIFY). Returns 1 if it notified, 0 if
 * not, -EINVAL for a bad queue. The device usually completes synchronously inside this call. */
int pvm_vdrv_kick(struct pvm_vdrv *d, unsigned q);
/* Take the next used buffer of queue @q: 1 with *@token and *@len, 0 when none, -EIO when the
 * device returned a bad id (one not in flight). */
int pvm_vdrv_get_used(struct pvm_vdrv *d, unsigned q, void **token, uint32_t *len);
/* Enable or disable used-buffer interrupts for queue @q (avail->flags or used_event). */
void pvm_vdrv_set_interrupts(struct pvm_vdrv *d, unsigned q, bool enable);

/* Read InterruptStatus and acknowledge those bits, like Linux's vm_interrupt(); returns them. */
uint32_t pvm_vdrv_ack_interrupt(struct pvm_vdrv *d);
/* Read @len bytes of configuration at @offset with Linux's access widths (1/2/4-byte reads,
 * 8-byte fields as two 4-byte reads) and retry until ConfigGeneration is stable (at most
 * 1000 tries: -EAGAIN). */
int pvm_vdrv_config_read(struct pvm_vdrv *d, uint32_t offset, void *buf, uint32_t len);
/* Write @len bytes of configuration at @offset (1/2/4-byte accesses). */
void pvm_vdrv_config_write(struct pvm_vdrv *d, uint32_t offset, const void *buf, uint32_t len);

#endif /* PVM_VIRTIO_DRIVER_H */

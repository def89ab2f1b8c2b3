/* SPDX-License-Identifier: MIT */
/*
 * Virtio core: devices, split virtqueues over guest memory, and the virtio-mmio (version 2)
 * register file. Written against the virtio 1.x specification (split-ring.tex, content.tex
 * "Virtio Over MMIO"); docs/virtio.md shows how to write a device on it.
 *
 * A device is a table of operations (struct pvm_virtio_device_ops) plus the common state this
 * core keeps for it (status, features, queues, config generation). Transports (virtio-mmio
 * here) translate register accesses into calls on that state and know nothing about the device
 * type; devices know nothing about the transport.
 *
 * Guest memory is reached only through pvm_memslot_translate(). Everything read from the guest
 * (rings, descriptors, indirect tables, register values) is validated; a malformed ring puts
 * the device into NEEDS_RESET (status bit 0x40, plus a configuration-change interrupt when
 * DRIVER_OK is set) and never crashes, hangs or aborts the process.
 *
 * Threading contract (see docs/virtio.md):
 *  - each queue has its own mutex, taken inside pvm_virtq_pop(), pvm_virtq_push(),
 *    pvm_virtq_should_notify() and pvm_virtq_notify(): these may be called from any thread,
 *    including a device's worker threads completing requests late and out of order;
 *  - ops->queue_notify may run on several threads at once (one per vCPU writing QueueNotify);
 *    it is never called with a core lock held;
 *  - ops->reset, ops->validate_features, ops->set_status and ops->set_config run with the
 *    device's transport lock held (they must not call back into the transport side); they are
 *    serialised with each other but not with queue_notify or worker threads;
 *  - interrupt callbacks (pvm_virtio_interrupt_fn, pvm_virtio_irq_fn) may be called from any
 *    thread, possibly with core locks held: they must not call back into pvmem's virtio API;
 *  - an element popped before a device reset is stale: pushing it afterwards frees it without
 *    touching the rings (-ESTALE). ops->reset must stop the device's workers from writing into
 *    stale elements' buffers (the memory behind them may be unmapped later).
 */
#ifndef PVMEM_VIRTIO_H
#define PVMEM_VIRTIO_H

#include <sys/uio.h>

#include <pvmem/core.h>
#include <pvmem/memslot.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- constants (virtio 1.x) ------------------------------------------------------------------ */

#define PVM_VIRTIO_BIT(b) (1ULL << (b))

/* Transport feature bits. */
#define PVM_VIRTIO_F_INDIRECT_DESC 28  /* VIRTIO_F_INDIRECT_DESC: indirect descriptor tables */
#define PVM_VIRTIO_F_EVENT_IDX 29      /* VIRTIO_F_EVENT_IDX: used_event / avail_event */
#define PVM_VIRTIO_F_VERSION_1 32      /* VIRTIO_F_VERSION_1: required, always offered */
#define PVM_VIRTIO_F_ACCESS_PLATFORM 33
#define PVM_VIRTIO_F_RING_PACKED 34
/* The transport features this core implements; a device offers them by including them in
 * ops->features (VERSION_1 is always offered, and other transport bits are never offered). */
#define PVM_VIRTIO_CORE_FEATURES                                                     \
	(PVM_VIRTIO_BIT(PVM_VIRTIO_F_INDIRECT_DESC) | PVM_VIRTIO_BIT(PVM_VIRTIO_F_EVENT_IDX) | \
	 PVM_VIRTIO_BIT(PVM_VIRTIO_F_VERSION_1))

/* Device status bits. */
#define PVM_VIRTIO_S_ACKNOWLEDGE 0x01u
#define PVM_VIRTIO_S_DRIVER 0x02u
#define PVM_VIRTIO_S_DRIVER_OK 0x04u
#define PVM_VIRTIO_S_FEATURES_OK 0x08u
#define PVM_VIRTIO_S_NEEDS_RESET 0x40u
#define PVM_VIRTIO_S_FAILED 0x80u

/* Interrupt causes (the virtio-mmio InterruptStatus bits). */
#define PVM_VIRTIO_INT_VRING 0x1u   /* used buffer notification */
#define PVM_VIRTIO_INT_CONFIG 0x2u  /* configuration change (also sent on NEEDS_RESET) */

/* Device IDs used in pvmem. */
#define PVM_VIRTIO_ID_BALLOON 5u
#define PVM_VIRTIO_ID_MEM 24u

/* Split-ring descriptor flags. */
#define PVM_VIRTQ_DESC_F_NEXT 1u
#define PVM_VIRTQ_DESC_F_WRITE 2u
#define PVM_VIRTQ_DESC_F_INDIRECT 4u
#define PVM_VIRTQ_AVAIL_F_NO_INTERRUPT 1u
#define PVM_VIRTQ_USED_F_NO_NOTIFY 1u

/* Largest queue size of a split ring (a power of two). */
#define PVM_VIRTQ_MAX_SIZE 32768u
/* Segments one element may have after indirect tables are expanded (the spec lets a device
 * set "a reasonable limit"); a longer chain is malformed. */
#define PVM_VIRTQ_MAX_SEGS 1024u
/* Queues one device may have. */
#define PVM_VIRTIO_MAX_QUEUES 64u
/* Device configuration spaces are at most this large. */
#define PVM_VIRTIO_MAX_CONFIG 256u

struct pvm_virtio_device;
struct pvm_virtq;

/* ---- elements ---------------------------------------------------------------------------------- */

/*
 * One descriptor chain taken from a queue. The out[] segments are driver-readable (the device
 * may only read them), the in[] segments device-writable; all pointers are host addresses
 * inside guest memory, checked at pop time. A segment never crosses a memslot boundary (a
 * buffer spanning two adjacent slots becomes two segments). The element belongs to the device
 * until it gives it back with pvm_virtq_push() (or drops it with pvm_virtq_elem_free()).
 */
struct pvm_virtq_elem {
	uint16_t head;           /* head descriptor index: the id written to the used ring */
	uint16_t queue;          /* index of the queue it came from */
	uint32_t out_num;        /* entries in out[] and out_addr[] */
	uint32_t in_num;         /* entries in in[] and in_addr[] */
	struct iovec *out;       /* device-readable segments (host pointers) */
	struct iovec *in;        /* device-writable segments (host pointers) */
	uint64_t *out_addr;      /* guest-physical address of each out[] segment */
	uint64_t *in_addr;       /* guest-physical address of each in[] segment */
	uint64_t out_len;        /* total bytes in out[] */
	uint64_t in_len;         /* total bytes in in[] */
	uint64_t epoch;          /* private: queue reset count when popped (stale detection) */
	struct pvm_virtq *vq;    /* private: the queue it came from */
};

/* Copy up to @len bytes of the driver-readable data starting at byte @offset into @buf;
 * returns the bytes copied (less than @len when the buffers are shorter). */
PVM_EXPORT size_t pvm_virtq_elem_read(const struct pvm_virtq_elem *elem, uint64_t offset,
				      void *buf, size_t len);
/* Copy @len bytes from @buf into the device-writable buffers at byte @offset; returns the
 * bytes copied (less than @len when the buffers are shorter). */
PVM_EXPORT size_t pvm_virtq_elem_write(struct pvm_virtq_elem *elem, uint64_t offset,
				       const void *buf, size_t len);
/* Drop an element without returning it to the driver (e.g. when the device is reset). */
PVM_EXPORT void pvm_virtq_elem_free(struct pvm_virtq_elem *elem);

/* ---- queues (device side) ---------------------------------------------------------------------- */

/*
 * Take the next available descriptor chain. Returns 1 with *@elem set, 0 when nothing is
 * available (or the queue is not ready / the driver is not DRIVER_OK), -ENOMEM (nothing was
 * consumed; try again later), or -EIO when the ring is malformed or the device already needs a
 * reset: the device is then in NEEDS_RESET and pops keep returning -EIO until a reset.
 * Malformed: a loop, a chain longer than the queue size or PVM_VIRTQ_MAX_SEGS segments, a
 * descriptor or ring outside guest memory or crossing into a hole, a zero-length descriptor, a
 * device-writable descriptor followed by a readable one, a chain of more than 4 GiB, a head
 * index >= queue size, INDIRECT without the feature, INDIRECT together with NEXT, an indirect
 * table whose length is zero or not a multiple of 16, a nested indirect descriptor, or an
 * avail idx more than the queue size ahead of the device.
 */
PVM_EXPORT int pvm_virtq_pop(struct pvm_virtq *vq, struct pvm_virtq_elem **elem);
/*
 * Return @elem to the driver as used, with @written bytes written into its in[] buffers
 * (clamped to in_len). Elements may be pushed in any order and from any thread. Always takes
 * ownership of @elem (frees it). Returns 0, -ESTALE (the element predates a device reset and
 * was dropped), or -EIO (the used ring is not in guest memory: the device needs a reset).
 * Does not interrupt the driver: call pvm_virtq_notify() after one push or a batch.
 */
PVM_EXPORT int pvm_virtq_push(struct pvm_virtq *vq, struct pvm_virtq_elem *elem, uint32_t written);
/* Whether the driver wants a used-buffer notification for what was pushed since the last one:
 * EVENT_IDX's used_event when negotiated, else !(avail->flags & NO_INTERRUPT). */
PVM_EXPORT bool pvm_virtq_should_notify(struct pvm_virtq *vq);
/* Raise a used-buffer interrupt if pvm_virtq_should_notify() says so; returns whether it did. */
PVM_EXPORT bool pvm_virtq_notify(struct pvm_virtq *vq);
/* Push and notify in one call (the usual completion); same returns as pvm_virtq_push(). */
PVM_EXPORT int pvm_virtq_complete(struct pvm_virtq *vq, struct pvm_virtq_elem *elem, uint32_t written);

PVM_EXPORT unsigned pvm_virtq_index(const struct pvm_virtq *vq);
/* The size the driver chose (QueueNum); 0 before setup. */
PVM_EXPORT unsigned pvm_virtq_size(const struct pvm_virtq *vq);
PVM_EXPORT bool pvm_virtq_is_ready(const struct pvm_virtq *vq);
PVM_EXPORT struct pvm_virtio_device *pvm_virtq_device(const struct pvm_virtq *vq);
/* Elements popped and not yet pushed or freed (for the current epoch). */
PVM_EXPORT unsigned pvm_virtq_inflight(const struct pvm_virtq *vq);

/* ---- devices ----------------------------------------------------------------------------------- */

/*
 * What a device provides. Zero-initialise and set what you need: a NULL callback does nothing.
 * @opaque (given to pvm_virtio_device_new) is passed to every callback.
 */
struct pvm_virtio_device_ops {
	const char *name;          /* "virtio-mem", for messages and traces */
	uint32_t device_id;        /* PVM_VIRTIO_ID_* */
	uint64_t features;         /* offered features: device bits and PVM_VIRTIO_CORE_FEATURES */
	uint32_t config_size;      /* bytes of device configuration (<= PVM_VIRTIO_MAX_CONFIG) */
	unsigned num_queues;       /* queues (1..PVM_VIRTIO_MAX_QUEUES) */
	uint16_t queue_max_size;   /* QueueNumMax of every queue: a power of two <= 32768 */
	/* Fill @buf with the current configuration (config_size bytes, little-endian). */
	void (*get_config)(void *opaque, uint8_t *buf);
	/* The driver wrote configuration bytes: @buf holds the whole space after the write. */
	void (*set_config)(void *opaque, const uint8_t *buf);
	/* Accept (0) or refuse (negative errno: FEATURES_OK is not set) the driver's features,
	 * already checked to be a subset of the offered ones with VERSION_1. */
	int (*validate_features)(void *opaque, uint64_t features);
	/* The status changed from @old to @status (never called for a reset: see reset). */
	void (*set_status)(void *opaque, uint8_t old, uint8_t status);
	/* The driver notified queue @vq (only when it is ready and the driver is DRIVER_OK;
	 * notifications that arrive earlier are delivered when DRIVER_OK is set). */
	void (*queue_notify)(void *opaque, struct pvm_virtq *vq);
	/* Device reset (status written 0, or pvm_virtio_device_reset()): forget the driver's
	 * state and stop touching popped elements. The core resets status, features and queues
	 * after this returns. */
	void (*reset)(void *opaque);
};

/* Called to raise interrupt causes @bits (PVM_VIRTIO_INT_*); installed by the transport. */
typedef void (*pvm_virtio_interrupt_fn)(void *opaque, uint32_t bits);

/* A device using @ops (copied) and guest memory @mem (not owned; must outlive the device).
 * -EINVAL when the ops are inconsistent (queue count or size, config size). */
PVM_EXPORT int pvm_virtio_device_new(const struct pvm_virtio_device_ops *ops, void *opaque,
				     struct pvm_memslot_table *mem, struct pvm_virtio_device **out,
				     struct pvm_error *err) PVM_MUST_CHECK;
PVM_EXPORT void pvm_virtio_device_free(struct pvm_virtio_device *dev);

PVM_EXPORT const char *pvm_virtio_device_name(const struct pvm_virtio_device *dev);
PVM_EXPORT uint32_t pvm_virtio_device_id(const struct pvm_virtio_device *dev);
PVM_EXPORT void *pvm_virtio_device_opaque(const struct pvm_virtio_device *dev);
PVM_EXPORT struct pvm_memslot_table *pvm_virtio_device_memory(const struct pvm_virtio_device *dev);
PVM_EXPORT unsigned pvm_virtio_device_num_queues(const struct pvm_virtio_device *dev);
/* Queue @index, or NULL when out of range. */
PVM_EXPORT struct pvm_virtq *pvm_virtio_device_queue(struct pvm_virtio_device *dev, unsigned index);

/* The features offered to the driver (ops->features filtered, plus VERSION_1). */
PVM_EXPORT uint64_t pvm_virtio_device_host_features(const struct pvm_virtio_device *dev);
/* The negotiated features: valid once FEATURES_OK is set, 0 before. */
PVM_EXPORT uint64_t pvm_virtio_device_features(const struct pvm_virtio_device *dev);
PVM_EXPORT bool pvm_virtio_device_has_feature(const struct pvm_virtio_device *dev, unsigned bit);
PVM_EXPORT uint8_t pvm_virtio_device_status(const struct pvm_virtio_device *dev);
PVM_EXPORT bool pvm_virtio_device_is_broken(const struct pvm_virtio_device *dev);
/* Why the device entered NEEDS_RESET ("" when it did not). */
PVM_EXPORT const char *pvm_virtio_device_broken_reason(const struct pvm_virtio_device *dev);

/* Put the device into NEEDS_RESET: status |= 0x40, pops fail with -EIO until a reset, and a
 * configuration-change interrupt is raised if DRIVER_OK is set. The first reason is kept and
 * logged as a warning. Any thread; no lock may be held that an interrupt callback needs. */
PVM_EXPORT void pvm_virtio_device_set_broken(struct pvm_virtio_device *dev, const char *fmt, ...)
	PVM_PRINTF(2, 3);
/* The device changed its configuration: bump the configuration generation and, if DRIVER_OK
 * is set, raise a configuration-change interrupt. Call after the new values are visible to
 * ops->get_config. */
PVM_EXPORT void pvm_virtio_device_config_changed(struct pvm_virtio_device *dev);
PVM_EXPORT uint32_t pvm_virtio_device_config_generation(const struct pvm_virtio_device *dev);
/* Raise interrupt causes @bits through the transport (no-op until one is installed). */
PVM_EXPORT void pvm_virtio_device_interrupt(struct pvm_virtio_device *dev, uint32_t bits);

/* ---- transport side (used by transports such as virtio-mmio) -------------------------------------
 * These are what a transport calls; devices do not need them. All take the device's transport
 * lock. */

PVM_EXPORT void pvm_virtio_device_set_interrupt(struct pvm_virtio_device *dev,
						pvm_virtio_interrupt_fn fn, void *opaque);
/* Device reset: ops->reset, then status, features, queues and pending notifications cleared. */
PVM_EXPORT void pvm_virtio_device_reset(struct pvm_virtio_device *dev);
/* The driver wrote @status: 0 resets; FEATURES_OK is kept only when the driver features are
 * acceptable (subset of the offered ones, VERSION_1, ops->validate_features); DRIVER_OK
 * without FEATURES_OK is ignored; NEEDS_RESET stays as the device set it. */
PVM_EXPORT void pvm_virtio_device_set_status(struct pvm_virtio_device *dev, uint8_t status);
/* The driver's feature word: ignored once FEATURES_OK is set. */
PVM_EXPORT void pvm_virtio_device_set_driver_features(struct pvm_virtio_device *dev, uint64_t features);
PVM_EXPORT uint64_t pvm_virtio_device_driver_features(const struct pvm_virtio_device *dev);
/* Configuration space access of @len (1, 2, 4 or 8) bytes at @offset; out-of-range reads
 * return 0 bytes-filled with zero and -EINVAL, writes out of range are ignored (-EINVAL). */
PVM_EXPORT int pvm_virtio_device_config_read(struct pvm_virtio_device *dev, uint32_t offset,
					     void *buf, uint32_t len);
PVM_EXPORT int pvm_virtio_device_config_write(struct pvm_virtio_device *dev, uint32_t offset,
					      const void *buf, uint32_t len);
/* Queue configuration. Changing a queue while it is ready is refused (-EBUSY); @num must be
 * a power of two <= the queue's maximum (-EINVAL). Ready = 1 validates the ring layout
 * (alignment 16/2/4, inside guest memory): a bad one puts the device into NEEDS_RESET and the
 * queue stays not ready (-EIO). Ready = 0 disables the queue. -ENOENT for a bad @index. */
PVM_EXPORT uint16_t pvm_virtio_device_queue_max(const struct pvm_virtio_device *dev, unsigned index);
PVM_EXPORT int pvm_virtio_device_queue_set_num(struct pvm_virtio_device *dev, unsigned index, uint16_t num);
PVM_EXPORT int pvm_virtio_device_queue_set_addr(struct pvm_virtio_device *dev, unsigned index,
						uint64_t desc, uint64_t avail, uint64_t used);
PVM_EXPORT int pvm_virtio_device_queue_set_ready(struct pvm_virtio_device *dev, unsigned index, bool ready);
/* Queue @index was notified by the driver: calls ops->queue_notify (now, or at DRIVER_OK). */
PVM_EXPORT void pvm_virtio_device_queue_kick(struct pvm_virtio_device *dev, unsigned index);

/* ---- virtio-mmio version 2 ---------------------------------------------------------------------- */

#define PVM_VIRTIO_MMIO_MAGIC 0x74726976u    /* "virt" */
#define PVM_VIRTIO_MMIO_VERSION 2u
#define PVM_VIRTIO_MMIO_VENDOR 0x4d4d5650u   /* "PVMM" */
#define PVM_VIRTIO_MMIO_CONFIG 0x100u        /* offset of the device configuration space */
#define PVM_VIRTIO_MMIO_SIZE 0x200u          /* size of one device's register window */

/* Register offsets (virtio 1.x §4.2.2; Linux <linux/virtio_mmio.h>). */
#define PVM_VIRTIO_MMIO_MAGIC_VALUE 0x000u
#define PVM_VIRTIO_MMIO_VERSION_REG 0x004u
#define PVM_VIRTIO_MMIO_DEVICE_ID 0x008u
#define PVM_VIRTIO_MMIO_VENDOR_ID 0x00cu
#define PVM_VIRTIO_MMIO_DEVICE_FEATURES 0x010u
#define PVM_VIRTIO_MMIO_DEVICE_FEATURES_SEL 0x014u
#define PVM_VIRTIO_MMIO_DRIVER_FEATURES 0x020u
#define PVM_VIRTIO_MMIO_DRIVER_FEATURES_SEL 0x024u
#define PVM_VIRTIO_MMIO_QUEUE_SEL 0x030u
#define PVM_VIRTIO_MMIO_QUEUE_NUM_MAX 0x034u
#define PVM_VIRTIO_MMIO_QUEUE_NUM 0x038u
#define PVM_VIRTIO_MMIO_QUEUE_READY 0x044u
#define PVM_VIRTIO_MMIO_QUEUE_NOTIFY 0x050u
#define PVM_VIRTIO_MMIO_INTERRUPT_STATUS 0x060u
#define PVM_VIRTIO_MMIO_INTERRUPT_ACK 0x064u
#define PVM_VIRTIO_MMIO_STATUS 0x070u
#define PVM_VIRTIO_MMIO_QUEUE_DESC_LOW 0x080u
#define PVM_VIRTIO_MMIO_QUEUE_DESC_HIGH 0x084u
#define PVM_VIRTIO_MMIO_QUEUE_AVAIL_LOW 0x090u
#define PVM_VIRTIO_MMIO_QUEUE_AVAIL_HIGH 0x094u
#define PVM_VIRTIO_MMIO_QUEUE_USED_LOW 0x0a0u
#define PVM_VIRTIO_MMIO_QUEUE_USED_HIGH 0x0a4u
#define PVM_VIRTIO_MMIO_SHM_SEL 0x0acu
#define PVM_VIRTIO_MMIO_SHM_LEN_LOW 0x0b0u
#define PVM_VIRTIO_MMIO_SHM_LEN_HIGH 0x0b4u
#define PVM_VIRTIO_MMIO_SHM_BASE_LOW 0x0b8u
#define PVM_VIRTIO_MMIO_SHM_BASE_HIGH 0x0bcu
#define PVM_VIRTIO_MMIO_QUEUE_RESET 0x0c0u
#define PVM_VIRTIO_MMIO_CONFIG_GENERATION 0x0fcu

struct pvm_virtio_mmio;

/* The interrupt line: @level is true while InterruptStatus is non-zero (level-triggered use;
 * an edge-triggered platform pulses on every call with @level true). Called with the
 * transport's interrupt lock held: it must not call into pvmem. */
typedef void (*pvm_virtio_irq_fn)(void *opaque, bool level);

/* A virtio-mmio register file for @dev (not owned; one transport per device). */
PVM_EXPORT int pvm_virtio_mmio_new(struct pvm_virtio_device *dev, struct pvm_virtio_mmio **out,
				   struct pvm_error *err) PVM_MUST_CHECK;
PVM_EXPORT void pvm_virtio_mmio_free(struct pvm_virtio_mmio *m);
PVM_EXPORT struct pvm_virtio_device *pvm_virtio_mmio_device(const struct pvm_virtio_mmio *m);
PVM_EXPORT void pvm_virtio_mmio_set_irq(struct pvm_virtio_mmio *m, pvm_virtio_irq_fn fn, void *opaque);
/* A guest access of @size bytes (1, 2, 4; 8 only in the config space) at @offset inside the
 * window. Registers below 0x100 take aligned 32-bit accesses only; anything else (unknown
 * offset, bad size or alignment, write to a read-only register) is ignored with a debug log
 * and reads as 0. Never fails, never aborts. */
PVM_EXPORT uint64_t pvm_virtio_mmio_read(struct pvm_virtio_mmio *m, uint64_t offset, unsigned size);
PVM_EXPORT void pvm_virtio_mmio_write(struct pvm_virtio_mmio *m, uint64_t offset, unsigned size,
				      uint64_t value);
/* Current InterruptStatus (for a level-triggered line or a test). */
PVM_EXPORT uint32_t pvm_virtio_mmio_interrupt_status(const struct pvm_virtio_mmio *m);

#ifdef __cplusplus
}
#endif
#endif /* PVMEM_VIRTIO_H */

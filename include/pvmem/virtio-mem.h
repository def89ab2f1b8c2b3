/* SPDX-License-Identifier: MIT */
/*
 * virtio-mem (virtio 1.4 §5.15): paravirtualized memory hot(un)plug at block granularity,
 * behaving like QEMU's virtio-mem (research/virtio-mem.md §2, §7) plus host enforcement of
 * unplugged memory and asynchronous completion of long operations. docs/virtio-mem.md is the
 * user guide.
 *
 * One device manages one guest-physical region [addr, addr+region_size) backed by a guest-memory
 * region (offset 0 of the pvm_mem_region is addr). Several devices may exist per machine (one
 * per NUMA node), each with its own region.
 *
 * Guest reachability: the device keeps one memslot per maximal run of plugged blocks in the
 * machine's memslot table (added before a plug is acknowledged, removed before unplugged memory
 * is freed), so virtqueue buffers or device DMA aimed at unplugged blocks fail translation.
 *
 * Order of a plug:   enforcement lifted -> memslot(s) -> discard listeners told (populate) ->
 *                    optional preallocation -> bitmap + plugged_size -> ACK.
 * Order of an unplug: memslot(s) removed -> listeners told (discard) -> memory discarded ->
 *                    enforcement applied -> bitmap + plugged_size -> ACK.
 * Any failure rolls every step back and answers BUSY (never ERROR: Linux would mark the
 * device broken). Large operations (unplug-all or a preallocating plug above
 * async_threshold) run on a worker thread; the request is answered when they finish.
 *
 * Threading: the management calls below may be made from any thread; they serialise with
 * request processing on the device lock. Callbacks run on the thread that caused the change
 * (request processing, a worker or the management call) with no lock held that the
 * management calls need, except that pvm_vmem_free() must not be called from a callback.
 */
#ifndef PVMEM_VIRTIO_MEM_H
#define PVMEM_VIRTIO_MEM_H

#include <pvmem/bitmap.h>
#include <pvmem/core.h>
#include <pvmem/enforce.h>
#include <pvmem/mem.h>
#include <pvmem/memslot.h>
#include <pvmem/virtio.h>

#ifdef __cplusplus
extern "C" {
#endif

struct pvm_vmem;
struct pvm_discard_policy;
struct pvm_discard_manager;

/* The plugged size changed (QMP MEMORY_DEVICE_SIZE_CHANGE). */
typedef void (*pvm_vmem_size_fn)(void *opaque, struct pvm_vmem *vmem, uint64_t plugged_size);

struct pvm_vmem_config {
	const char *id;                  /* "vmem0" (copied); NULL: "virtio-mem" */
	uint64_t addr;                   /* guest-physical start; multiple of block_size */
	uint64_t region_size;            /* bytes; 0 = the whole memory region */
	uint64_t block_size;             /* power of two >= 1 MiB and >= the page size;
	                                  * 0 = default (THP size, or the huge page size) */
	uint16_t node;                   /* NUMA node (ACPI PXM) */
	bool acpi_pxm;                   /* offer VIRTIO_MEM_F_ACPI_PXM */
	bool persistent_suspend;         /* offer VIRTIO_MEM_F_PERSISTENT_SUSPEND */
	uint64_t requested_size;         /* initial target; multiple of block_size, <= region */
	uint64_t usable_extent;          /* usable = requested + extent; 0 = 256 MiB (x86) */
	struct pvm_mem_region *memory;   /* backing (not owned); at least region_size bytes */
	bool prealloc;                   /* populate blocks before acknowledging a plug */
	enum pvm_enforce_mode enforce;   /* enforcement of unplugged blocks (NONE = 0) */
	enum pvm_enforce_policy enforce_policy;   /* what a write into unplugged memory does */
	struct pvm_memslot_table *memslots;       /* the machine's table (not owned): the virtqueue
	                                           * translates through it and the device adds its
	                                           * plugged runs to it; required */
	struct pvm_discard_policy *discard_policy; /* optional; REQUIRE_COORDINATED vote held */
	uint64_t async_threshold;        /* bytes of work above which a request completes on the
	                                  * worker; 0 = 1 GiB; UINT64_MAX = never */
	pvm_vmem_size_fn on_size_change; /* may be NULL */
	pvm_enforce_trap_fn on_trap;     /* enforcement traps; may be NULL */
	void *opaque;                    /* passed to both callbacks */
};

/* A snapshot of the device (what query-memory-devices shows, and more). */
struct pvm_vmem_info {
	uint64_t addr;                   /* region start */
	uint64_t region_size;            /* max-size */
	uint64_t block_size;
	uint64_t usable_region_size;
	uint64_t plugged_size;           /* size */
	uint64_t requested_size;
	uint16_t node;
	enum pvm_enforce_mode enforce;   /* mode in force */
	uint64_t requests;               /* requests answered */
	uint64_t busy_answers;           /* BUSY answers (host-side failures, migration) */
	uint64_t async_completions;      /* requests completed by the worker */
	uint32_t memslots;               /* memslots the device holds now */
};

/* What pvm_vmem_audit() found; every count is 0 on a healthy device. */
struct pvm_vmem_audit {
	uint64_t resident_unplugged;     /* bytes resident in unplugged blocks */
	uint64_t protection_mismatch;    /* blocks whose protection disagrees with the bitmap */
	uint64_t memslot_mismatch;       /* blocks whose memslot coverage disagrees with the bitmap */
	uint64_t size_mismatch;          /* plugged_size != popcount(bitmap) * block_size */
};

/* Create a device (the virtio device too: pvm_vmem_virtio_device()). Discards the whole region
 * ("a clean slate"), takes the REQUIRE_COORDINATED discard vote, sizes the usable region and
 * protects every block. Errors: -EINVAL (config, with the reason), -EBUSY (discards are
 * disabled by another device), -ENOTSUP (enforcement mode unavailable), -ENOMEM. */
PVM_EXPORT int pvm_vmem_new(const struct pvm_vmem_config *cfg, struct pvm_vmem **out,
			    struct pvm_error *err) PVM_MUST_CHECK;
/* Wait for the worker, free the device, its memslots and its vote. NULL is fine. */
PVM_EXPORT void pvm_vmem_free(struct pvm_vmem *vmem);

PVM_EXPORT const char *pvm_vmem_id(const struct pvm_vmem *vmem);
/* The virtio device (for a transport such as pvm_virtio_mmio_new()). */
PVM_EXPORT struct pvm_virtio_device *pvm_vmem_virtio_device(struct pvm_vmem *vmem);
/* The discard manager whose source is this device: DMA spaces register listeners on it. */
PVM_EXPORT struct pvm_discard_manager *pvm_vmem_discard_manager(struct pvm_vmem *vmem);
/* The enforcer, or NULL in mode none. */
PVM_EXPORT struct pvm_enforce *pvm_vmem_enforcer(struct pvm_vmem *vmem);

/* QEMU's requested-size property: a multiple of the block size, <= region_size (-EINVAL). Grows
 * the usable region if needed (never shrinks it), then sets the target and always raises a
 * configuration-change interrupt (even when unchanged). */
PVM_EXPORT int pvm_vmem_set_requested_size(struct pvm_vmem *vmem, uint64_t size,
					   struct pvm_error *err) PVM_MUST_CHECK;
PVM_EXPORT uint64_t pvm_vmem_get_requested_size(const struct pvm_vmem *vmem);
PVM_EXPORT uint64_t pvm_vmem_get_plugged_size(const struct pvm_vmem *vmem);
PVM_EXPORT void pvm_vmem_get_info(const struct pvm_vmem *vmem, struct pvm_vmem_info *out);
/* A copy of the plugged bitmap (one bit per block) in *@out; -ENOMEM. */
PVM_EXPORT int pvm_vmem_get_bitmap(const struct pvm_vmem *vmem, struct pvm_bitmap **out) PVM_MUST_CHECK;

/* System reset (not a virtio device reset): unplug everything and shrink the usable region,
 * keeping requested_size. With @wakeup (S3 resume) nothing changes (PERSISTENT_SUSPEND). If
 * the device is busy (migration) memory stays plugged and the new driver must UNPLUG_ALL.
 * Returns 0 or the error of the unplug (memory then stays plugged). */
PVM_EXPORT int pvm_vmem_system_reset(struct pvm_vmem *vmem, bool wakeup, struct pvm_error *err);
/* Migration in progress: PLUG, UNPLUG and UNPLUG_ALL (with memory plugged) answer BUSY. */
PVM_EXPORT void pvm_vmem_set_busy(struct pvm_vmem *vmem, bool busy);
/* Wait until no request is being completed asynchronously. */
PVM_EXPORT void pvm_vmem_wait_idle(struct pvm_vmem *vmem);

/* Self-audit: resident bytes in unplugged blocks, protection and memslot coverage against the
 * bitmap, plugged_size against the bitmap. Returns 0 when everything agrees, -EIO when
 * something does not (details in *@out), or -errno when the audit could not run. */
PVM_EXPORT int pvm_vmem_audit(struct pvm_vmem *vmem, struct pvm_vmem_audit *out,
			      struct pvm_error *err);

#ifdef __cplusplus
}
#endif
#endif /* PVMEM_VIRTIO_MEM_H */

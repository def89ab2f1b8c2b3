/* SPDX-License-Identifier: MIT */
/*
 * virtio-balloon (virtio 1.4 §5.5, device ID 5): the host asks the guest to give memory back
 * (a target), the guest names 4 KiB pages it no longer uses (inflate) or takes back (deflate),
 * and the host frees what it was given.
 *
 * What the device does:
 *  - queues: 0 inflateq, 1 deflateq, 2 statsq, 3 free_page_vq (never offered), 4 reporting_vq.
 *    Older Linux drivers number the reporting queue 3 when FREE_PAGE_HINT is absent (the Linux
 *    virtio core used to renumber skipped queues, and QEMU matched it); queue 3 is therefore
 *    also serviced as a reporting queue whenever PAGE_REPORTING is negotiated;
 *  - features offered: STATS_VQ always; DEFLATE_ON_OOM, PAGE_POISON and PAGE_REPORTING on
 *    request. MUST_TELL_HOST is not offered (deflate does no host work: a page given back
 *    refaults as zeros when the guest touches it) and FREE_PAGE_HINT is not implemented;
 *  - config (always little-endian): le32 num_pages (device: target balloon size in 4 KiB pages),
 *    le32 actual (driver: current size), le32 free_page_hint_cmd_id, le32 poison_val. Its size
 *    is 16 bytes with PAGE_POISON offered, else 8 (QEMU's rule without free page hinting);
 *  - every PFN (u32, 4 KiB units: only the first 16 TiB of guest-physical space can be named)
 *    must fall in a registered RAM range and in a writable memslot that maps the same host
 *    memory; anything else is skipped and counted, the element
 *    is still acknowledged. A guest can never make the host free memory outside guest RAM or in
 *    a range registered no_discard;
 *  - host pages larger than 4 KiB are freed only once all their 4 KiB sub-pages are in the
 *    balloon. The sub-page state lives in a bitmap over all RAM and persists across elements and
 *    requests (unlike QEMU, which forgets it after each element, so that 2 MiB-backed memory is
 *    never reclaimed by a Linux guest sending 256 PFNs per element). Deflating one sub-page of a
 *    freed host page marks the whole host page not freed (touching it refills it);
 *  - while uncoordinated discard is disabled (pvm_discard_policy_is_disabled(): a VFIO device
 *    is attached) or the device is inhibited with pvm_balloon_inhibit() (postcopy, snapshots),
 *    requests are handled exactly as usual (every element acknowledged, pages tracked, `actual`
 *    followed) but no host memory is freed. pvm_balloon_query() reports the pages held back;
 *    they are freed by pvm_balloon_discard_changed() (the machine calls it after a device left)
 *    or, failing that, at the next inflate/deflate request that finds discarding allowed;
 *  - free page reporting: each device-writable buffer names a guest-physical range; it is
 *    discarded when discarding is allowed, poison_val is 0, and the range is whole host pages
 *    of one registered range. Always acknowledged;
 *  - statistics: the device keeps the driver's buffer and hands it back to ask for fresh
 *    numbers (pvm_balloon_stats_request(), or every `interval` seconds through
 *    pvm_balloon_tick()). All values are reset to unset before each update; unknown tags are
 *    ignored.
 *
 * Threading: every call on one balloon (and its virtio callbacks) is serialised by an internal
 * mutex; events are delivered after it is dropped, on the thread that caused them (a driver's
 * config write or a device reset, possibly with the virtio transport lock held): the callback
 * may call pvm_balloon_query() but must not call into the transport (virtio-mmio). The memslot
 * table is read on every request: its owner serialises changes to it against requests.
 */
#ifndef PVMEM_BALLOON_H
#define PVMEM_BALLOON_H

#include <pvmem/core.h>
#include <pvmem/virtio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The device ID is PVM_VIRTIO_ID_BALLOON (5, <pvmem/virtio.h>). */

/* Feature bits (virtio 1.4 §5.5.3). */
#define PVM_BALLOON_F_MUST_TELL_HOST 0
#define PVM_BALLOON_F_STATS_VQ 1
#define PVM_BALLOON_F_DEFLATE_ON_OOM 2
#define PVM_BALLOON_F_FREE_PAGE_HINT 3
#define PVM_BALLOON_F_PAGE_POISON 4
#define PVM_BALLOON_F_PAGE_REPORTING 5

/* Queue indices (the spec's fixed numbering). */
#define PVM_BALLOON_VQ_INFLATE 0
#define PVM_BALLOON_VQ_DEFLATE 1
#define PVM_BALLOON_VQ_STATS 2
#define PVM_BALLOON_VQ_FREE_PAGE 3
#define PVM_BALLOON_VQ_REPORTING 4
#define PVM_BALLOON_NUM_QUEUES 5

/* Config layout offsets (all le32). */
#define PVM_BALLOON_CFG_NUM_PAGES 0
#define PVM_BALLOON_CFG_ACTUAL 4
#define PVM_BALLOON_CFG_FREE_PAGE_HINT_CMD_ID 8
#define PVM_BALLOON_CFG_POISON_VAL 12

/* PFNs are in these units, whatever the guest's or host's page size. */
#define PVM_BALLOON_PFN_SHIFT 12
/* PFNs looked at per element; the rest of a longer element is ignored (Linux sends 256). */
#define PVM_BALLOON_MAX_PFNS_PER_ELEM 65536u

/* Statistics tags (spec 0..9; 10..15 are Linux >= 6.12 extensions, adopted by QEMU). */
enum pvm_balloon_stat_tag {
	PVM_BALLOON_S_SWAP_IN = 0,      /* bytes swapped in */
	PVM_BALLOON_S_SWAP_OUT,         /* bytes swapped out */
	PVM_BALLOON_S_MAJFLT,           /* major page faults */
	PVM_BALLOON_S_MINFLT,           /* minor page faults */
	PVM_BALLOON_S_MEMFREE,          /* bytes not used for anything */
	PVM_BALLOON_S_MEMTOT,           /* bytes of memory in total */
	PVM_BALLOON_S_AVAIL,            /* bytes available (MemAvailable) */
	PVM_BALLOON_S_CACHES,           /* bytes of disk caches */
	PVM_BALLOON_S_HTLB_PGALLOC,     /* hugetlb page allocations */
	PVM_BALLOON_S_HTLB_PGFAIL,      /* hugetlb page allocation failures */
	PVM_BALLOON_S_OOM_KILL,         /* OOM kills */
	PVM_BALLOON_S_ALLOC_STALL,      /* allocation stalls */
	PVM_BALLOON_S_ASYNC_SCAN,       /* pages scanned by kswapd */
	PVM_BALLOON_S_DIRECT_SCAN,      /* pages scanned by direct reclaim */
	PVM_BALLOON_S_ASYNC_RECLAIM,    /* pages reclaimed by kswapd */
	PVM_BALLOON_S_DIRECT_RECLAIM,   /* pages reclaimed by direct reclaim */
	PVM_BALLOON_S_NR
};
/* The value of a statistic the guest did not supply in its last update (QEMU reports -1). */
#define PVM_BALLOON_STAT_UNSET UINT64_MAX

/* The guest's statistics. */
struct pvm_balloon_stats {
	uint64_t val[PVM_BALLOON_S_NR];   /* by tag; PVM_BALLOON_STAT_UNSET when not supplied */
	uint32_t valid;                   /* bit t set when val[t] was supplied */
	uint64_t updates;                 /* buffers received since creation or reset */
	int64_t last_update;              /* wall-clock seconds of the last update; 0 = never */
	uint32_t interval;                /* polling interval in seconds; 0 = no polling */
};

/* One guest RAM range the balloon may act on: guest-physical [gpa, gpa+size) is backed by
 * [offset, offset+size) of @region. gpa, offset and size must be multiples of the discard
 * granularity. Ranges must not overlap. */
struct pvm_balloon_ram {
	uint64_t gpa;                    /* guest-physical start */
	uint64_t size;                   /* bytes */
	struct pvm_mem_region *region;   /* backing region; must outlive the balloon */
	uint64_t offset;                 /* offset of gpa in the region */
	uint64_t granularity;            /* free memory only in whole, aligned units of this size:
	                                  * 0 = the region's page size; else a power of two, a
	                                  * multiple of it (2 MiB keeps THP-backed memory from
	                                  * being split by 4 KiB discards) */
	bool no_discard;                 /* track inflated pages but never free host memory */
};

struct pvm_discard_policy;
struct pvm_balloon;

/* What the device reports to its owner. */
enum pvm_balloon_event_kind {
	PVM_BALLOON_EVENT_ACTUAL = 0,     /* the driver wrote a new `actual` (QMP BALLOON_CHANGE) */
};

struct pvm_balloon_event {
	enum pvm_balloon_event_kind kind; /* what changed */
	uint32_t actual_pages;            /* balloon size now, 4 KiB pages */
	uint64_t guest_bytes;             /* ram_size - balloon size: BALLOON_CHANGE's "actual" */
};

typedef void (*pvm_balloon_event_fn)(void *opaque, const struct pvm_balloon_event *ev);

/* How a balloon is made. Zero-initialise, then set what you need. */
struct pvm_balloon_config {
	const struct pvm_balloon_ram *ram;           /* RAM the balloon may act on (copied) */
	size_t nr_ram;                               /* entries in ram */
	struct pvm_memslot_table *memslots;          /* guest memory (required, not owned): the
	                                              * rings live there, and every page must be
	                                              * mapped writable there at the same host
	                                              * address as in its ram range */
	struct pvm_discard_policy *policy;           /* asked per request; NULL = never disabled */
	uint64_t ram_size;                           /* the guest's RAM size that targets refer to;
	                                              * 0 = the sum of the ram ranges */
	bool deflate_on_oom;                         /* offer DEFLATE_ON_OOM */
	bool free_page_reporting;                    /* offer PAGE_REPORTING */
	bool page_poison;                            /* offer PAGE_POISON (QEMU's default: on) */
	uint32_t stats_interval;                     /* statistics polling, seconds (0 = off) */
	pvm_balloon_event_fn event;                  /* may be NULL */
	void *event_opaque;                          /* passed to event */
};

/* Everything the control plane shows (query-balloon and more). */
struct pvm_balloon_info {
	uint64_t ram_size;          /* bytes the target refers to */
	uint32_t num_pages;         /* requested balloon size (config num_pages), 4 KiB pages */
	uint32_t actual_pages;      /* balloon size the driver reports (config actual) */
	uint64_t guest_bytes;       /* ram_size - actual_pages * 4 KiB (query-balloon "actual") */
	uint64_t inflated_bytes;    /* bytes the device tracks as in the balloon */
	uint64_t freed_bytes;       /* of those, host memory actually given back */
	uint64_t pending_bytes;     /* inflated - freed: held back (inhibited, partial host pages,
	                             * no_discard ranges, failed discards) */
	uint64_t reported_bytes;    /* bytes discarded through free page reporting, in total */
	uint64_t bad_pfns;          /* PFNs skipped because they named no usable guest RAM */
	uint64_t discard_errors;    /* discards the backend refused */
	bool inhibited;             /* discarding is not allowed now */
	bool policy_disabled;       /* ... because the discard policy disables it (VFIO) */
	uint32_t inhibit_count;     /* ... because of pvm_balloon_inhibit() votes */
	uint64_t features;          /* negotiated features (0 before the driver is ready) */
	uint32_t poison_val;        /* the driver's poison value (PAGE_POISON) */
};

/* Create a balloon. Errors: -EINVAL (bad ranges or config), -EEXIST (overlapping ranges),
 * -ENOMEM. */
PVM_EXPORT int pvm_balloon_new(const struct pvm_balloon_config *cfg, struct pvm_balloon **out,
			       struct pvm_error *err) PVM_MUST_CHECK;
/* NULL is fine. Free its transport (virtio-mmio) first. Host memory is left as it is. */
PVM_EXPORT void pvm_balloon_free(struct pvm_balloon *b);
/* The virtio device, for a transport: pvm_virtio_mmio_new(pvm_balloon_device(b), ...). */
PVM_EXPORT struct pvm_virtio_device *pvm_balloon_device(struct pvm_balloon *b);

/* Ask the guest to shrink to @guest_bytes (QMP `balloon value`): num_pages = (ram_size -
 * target) / 4 KiB, the target clamped to ram_size and num_pages to 2^32 - 1; raises a
 * configuration-change interrupt when num_pages changes. -EINVAL for 0. */
PVM_EXPORT int pvm_balloon_set_target(struct pvm_balloon *b, uint64_t guest_bytes,
				      struct pvm_error *err) PVM_MUST_CHECK;
/* The same in balloon pages: ask for a balloon of @pages 4 KiB pages. */
PVM_EXPORT int pvm_balloon_set_num_pages(struct pvm_balloon *b, uint32_t pages);
PVM_EXPORT void pvm_balloon_query(struct pvm_balloon *b, struct pvm_balloon_info *out);

/* Tell the balloon that the discard policy may have changed (a VFIO device left). When
 * discarding is allowed now, free every complete host page the balloon holds; returns the bytes
 * freed (0 when still inhibited). */
PVM_EXPORT uint64_t pvm_balloon_discard_changed(struct pvm_balloon *b);
/* Take (@on) or drop an inhibitor of the balloon's own (incoming postcopy, background snapshot:
 * "don't discard now" conditions that are not discard-policy votes). Dropping the last one
 * frees what was held back, as pvm_balloon_discard_changed(). -EINVAL when dropping none. */
PVM_EXPORT int pvm_balloon_inhibit(struct pvm_balloon *b, bool on);

/* The last statistics the guest sent. */
PVM_EXPORT void pvm_balloon_get_stats(struct pvm_balloon *b, struct pvm_balloon_stats *out);
/* Set the polling interval (seconds, 0 = off). */
PVM_EXPORT void pvm_balloon_set_stats_interval(struct pvm_balloon *b, uint32_t seconds);
/* Hand the stats buffer back to the guest now so that it sends fresh numbers. -EAGAIN when the
 * device holds no buffer (STATS_VQ not negotiated, or a request is outstanding). */
PVM_EXPORT int pvm_balloon_stats_request(struct pvm_balloon *b);
/* Drive the device's timers: @now_ms is a monotonic clock in milliseconds. Retries queues
 * whose processing stopped on an allocation failure (the driver will not notify again for
 * buffers it already published), and requests statistics when the polling interval has passed
 * since the last request. Returns milliseconds until it wants to be called again (UINT64_MAX:
 * not needed; 0: a retry is still pending). */
PVM_EXPORT uint64_t pvm_balloon_tick(struct pvm_balloon *b, uint64_t now_ms);
/* "stat-swap-in", ... (QEMU's guest-stats names), or NULL for an unknown tag. */
PVM_EXPORT const char *pvm_balloon_stat_name(unsigned tag);

#ifdef __cplusplus
}
#endif
#endif /* PVMEM_BALLOON_H */

/* SPDX-License-Identifier: MIT */
/*
 * The machine: one VM's guest memory, memslot table, virtio-mem devices (one per NUMA node), the
 * balloon, DMA spaces for host devices, the discard policy and the memlock lifecycle, built from
 * a libvirt domain model (<pvmem/domain.h>) and torn down in reverse order. It is the unit that
 * the control socket (QMP), the simulated guest and scenario scripts drive.
 *
 * Guest-physical layout: boot RAM at GPA 0; one virtio-mmio window of 0x200 bytes per virtio
 * device from 0xd0000000; virtio-mem regions from max(4 GiB, end of boot RAM rounded up to
 * 1 GiB), each aligned to 1 GiB (or at <target><address base=...> when the XML gives one). The
 * last PVM_MACHINE_FW_SIZE bytes of boot RAM are "firmware" memory the guest uses for its
 * virtqueues and request buffers.
 *
 * Memlock (the machine is the VMM process): the need is computed from the domain model with
 * every attached device (<pvmem/memlock.h>); it is raised before an attach, set to the exact
 * remaining need after a detach and the original limit is restored when the machine is freed.
 * When the kernel refuses a raise (EPERM: above the hard limit without CAP_SYS_RESOURCE) the
 * machine records the failure, logs it once per attach and continues: DMA pinning is then
 * accounted against the computed need instead of the process limit ("accounting budget"), so
 * that the same scenario gives the same figures on every host. pvm_machine_memlock() tells both.
 *
 * Threading: single-threaded. Every call comes from the thread that runs the loop
 * (pvm_machine_run_once()); devices may complete requests on their own workers, which the loop
 * picks up.
 */
#ifndef PVMEM_MACHINE_H
#define PVMEM_MACHINE_H

#include <pvmem/core.h>
#include <pvmem/domain.h>
#include <pvmem/enforce.h>
#include <pvmem/memslot.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes at the top of boot RAM reserved for the guest's rings and request buffers. */
#define PVM_MACHINE_FW_SIZE (4ULL << 20)
/* First virtio-mmio window. */
#define PVM_MACHINE_MMIO_BASE 0xd0000000ULL

struct pvm_machine;
struct pvm_virtio_mmio;

/* Host enforcement of unplugged virtio-mem blocks (<pvmem/enforce.h>). */
enum pvm_machine_enforce {
	PVM_MACHINE_ENFORCE_AUTO = 0,  /* the default: userfaultfd where available, else mprotect */
	PVM_MACHINE_ENFORCE_UFFD,      /* userfaultfd write-protect; creation fails without it */
	PVM_MACHINE_ENFORCE_MPROTECT,  /* page protection */
	PVM_MACHINE_ENFORCE_NONE,      /* discard only, as QEMU does */
};

/* How a machine is made. Zero-initialise for the defaults. */
struct pvm_machine_opts {
	const char *memlock_state_dir;  /* where the memlock controller keeps the original limit;
	                                 * NULL = no state file */
	bool no_memlock;                /* never touch the process limit (tests, benchmarks) */
	enum pvm_machine_enforce enforce;        /* enforcement of unplugged blocks (default AUTO) */
	enum pvm_enforce_policy enforce_policy;  /* a write into unplugged memory: DENY (default),
	                                          * ALLOW (count it) or KILL */
	bool prealloc;                  /* virtio-mem: populate blocks before acknowledging a plug */
};

/* Events for the control plane (QMP names in brackets). */
enum pvm_machine_event_kind {
	PVM_MACHINE_EVENT_SIZE_CHANGE = 0, /* virtio-mem plugged size changed [MEMORY_DEVICE_SIZE_CHANGE] */
	PVM_MACHINE_EVENT_BALLOON_CHANGE,  /* the balloon driver updated `actual` [BALLOON_CHANGE] */
	PVM_MACHINE_EVENT_DEVICE_DELETED,  /* a host device finished detaching [DEVICE_DELETED] */
	PVM_MACHINE_EVENT_UNPLUGGED_ACCESS,/* the guest touched unplugged memory (enforcement) */
	PVM_MACHINE_EVENT_RESET,           /* a system reset was carried out [RESET] */
};

struct pvm_machine_event {
	enum pvm_machine_event_kind kind;  /* what happened */
	const char *id;                    /* device id (size change, deleted, access), else NULL */
	uint64_t size;                     /* size change: plugged bytes; balloon: guest bytes */
	uint64_t gpa;                      /* unplugged access: guest address */
};

typedef void (*pvm_machine_event_fn)(void *opaque, const struct pvm_machine_event *ev);

/* Kinds of host devices that attach to DMA spaces. */
enum pvm_machine_hostdev_kind {
	PVM_MACHINE_HOSTDEV_VFIO = 0,  /* <hostdev type='pci'> with VFIO: DISABLE_UNCOORDINATED */
	PVM_MACHINE_HOSTDEV_NVME,      /* userspace NVMe disk: pins all RAM, DISABLE */
	PVM_MACHINE_HOSTDEV_VDPA,      /* vDPA interface: pins all RAM, DISABLE */
};

/* What a simulated (or, later, real) guest implements so that the loop runs it. */
struct pvm_machine_guest_ops {
	/* Do some work at @now_ms; set *@busy when more work is pending right now (the loop then
	 * does not sleep). Returns the time (ms) of the next timer the guest waits for, or 0. */
	uint64_t (*tick)(void *opaque, uint64_t now_ms, bool *busy);
	/* The machine was reset: the guest reboots (after the devices were reset). */
	void (*reset)(void *opaque);
	/* Memory the guest reports: total (MemTotal) and used by its workload, bytes. */
	void (*memory)(void *opaque, uint64_t *total, uint64_t *used);
	/* The guest switched DMA remapping (viommu on/off); may be NULL. */
	void (*viommu)(void *opaque, bool enabled);
	/* True while the guest waits for a device to answer a request it sent: the loop then
	 * sleeps until the device's interrupt instead of polling, and the machine is not idle.
	 * May be NULL (never waits). */
	bool (*waiting)(void *opaque);
};

/* ---- life cycle --------------------------------------------------------------------------- */

/* Build a machine from @dom (copied). -EINVAL (a device the machine cannot build: no boot RAM,
 * virtio-mem without a size or with a bad block size, more than 64 devices), -ENOMEM, or the
 * error of a module. Nothing is left behind on failure. */
PVM_EXPORT int pvm_machine_new(const struct pvm_domain *dom, const struct pvm_machine_opts *opts,
			       struct pvm_machine **out, struct pvm_error *err) PVM_MUST_CHECK;
/* Tear down in reverse order (host devices, DMA, balloon, virtio-mem, memslots, memory) and
 * restore the memlock limit. NULL is fine. */
PVM_EXPORT void pvm_machine_free(struct pvm_machine *m);
PVM_EXPORT const struct pvm_domain *pvm_machine_domain(const struct pvm_machine *m);
PVM_EXPORT void pvm_machine_set_event_handler(struct pvm_machine *m, pvm_machine_event_fn fn,
					      void *opaque);

/* ---- the guest's view ------------------------------------------------------------------- */

PVM_EXPORT void pvm_machine_set_guest(struct pvm_machine *m, const struct pvm_machine_guest_ops *ops,
				      void *opaque);
PVM_EXPORT struct pvm_memslot_table *pvm_machine_memslots(struct pvm_machine *m);
/* Boot RAM (GPA 0) and the firmware area at its top. */
PVM_EXPORT uint64_t pvm_machine_ram_size(const struct pvm_machine *m);
PVM_EXPORT uint64_t pvm_machine_fw_gpa(const struct pvm_machine *m);

/* One virtio device as the guest discovers it. */
struct pvm_machine_virtio {
	const char *id;                  /* "vmem0", "balloon0" */
	uint32_t device_id;              /* 24 virtio-mem, 5 balloon */
	struct pvm_virtio_mmio *mmio;    /* its register window */
	uint64_t mmio_gpa;               /* where the window is */
	uint64_t region_gpa;             /* virtio-mem: its region */
	uint64_t region_size;            /* virtio-mem: region size */
	int node;                        /* virtio-mem: NUMA node */
};
PVM_EXPORT size_t pvm_machine_virtio_count(const struct pvm_machine *m);
PVM_EXPORT int pvm_machine_virtio(const struct pvm_machine *m, size_t i, struct pvm_machine_virtio *out);

/* ---- control ---------------------------------------------------------------------------- */

/* virtio-mem @id: QEMU's qom-set requested-size. -ENOENT (no such device), -EINVAL (not a
 * multiple of the block size, above the region). */
PVM_EXPORT int pvm_machine_set_requested_size(struct pvm_machine *m, const char *id, uint64_t size,
					      struct pvm_error *err) PVM_MUST_CHECK;
/* QMP `balloon`: the guest should shrink to @guest_bytes of boot RAM. -ENODEV without a balloon. */
PVM_EXPORT int pvm_machine_set_balloon_target(struct pvm_machine *m, uint64_t guest_bytes,
					      struct pvm_error *err) PVM_MUST_CHECK;
/* Hot-plug a host device @id: the domain model gets the device, the memlock limit is raised for
 * it (an EPERM is recorded, see the file comment), then it attaches to its DMA space (behind the
 * vIOMMU when the domain has <iommu>). -EEXIST (id in use), -EBUSY (discard policy conflict),
 * -ENOMEM (DMA budget), ...; on failure the device is not attached and the limit lowered back. */
PVM_EXPORT int pvm_machine_attach_hostdev(struct pvm_machine *m, const char *id,
					  enum pvm_machine_hostdev_kind kind,
					  struct pvm_error *err) PVM_MUST_CHECK;
/* Hot-unplug: detach from DMA (unmapped, vote released), drop it from the domain model, lower the
 * limit to the remaining need, emit DEVICE_DELETED. -ENOENT. */
PVM_EXPORT int pvm_machine_detach_hostdev(struct pvm_machine *m, const char *id,
					  struct pvm_error *err) PVM_MUST_CHECK;
/* The guest enables/disables DMA remapping. -ENODEV when the domain has no <iommu>. */
PVM_EXPORT int pvm_machine_set_viommu(struct pvm_machine *m, bool enabled,
				      struct pvm_error *err) PVM_MUST_CHECK;
/* System reset: devices reset (virtio-mem unplugs everything), then the guest reboots. */
PVM_EXPORT int pvm_machine_system_reset(struct pvm_machine *m, struct pvm_error *err);
/* Ask the loop's owner to stop (QMP quit). */
PVM_EXPORT void pvm_machine_request_quit(struct pvm_machine *m);
PVM_EXPORT bool pvm_machine_quit_requested(const struct pvm_machine *m);

/* ---- the loop ---------------------------------------------------------------------------- */

/* Watch @fd for @events (EPOLLIN...) and call @cb from the loop. -EEXIST, -errno of epoll. */
PVM_EXPORT int pvm_machine_add_fd(struct pvm_machine *m, int fd, uint32_t events,
				  void (*cb)(void *opaque, int fd, uint32_t events), void *opaque);
PVM_EXPORT void pvm_machine_remove_fd(struct pvm_machine *m, int fd);
/* One round: wait for fds and device interrupts up to @timeout_ms (-1 = no limit, 0 = poll; 0
 * when the guest is busy, less when a timer is due), run the fds' callbacks, then devices and
 * the guest. A device interrupt (a config change after a control call, an answer completed on
 * a worker thread) ends the wait at once. Returns 0 or -errno of epoll_wait. */
PVM_EXPORT int pvm_machine_run_once(struct pvm_machine *m, int timeout_ms);
/* True when the guest has nothing to do now, is not waiting for a device's answer and no
 * interrupt is pending (a guest waiting for its retry timer counts as idle only when
 * @timers_too is false). */
PVM_EXPORT bool pvm_machine_idle(struct pvm_machine *m, bool timers_too);
/* Run until idle (timers included) or @timeout_ms passed (-ETIMEDOUT). */
PVM_EXPORT int pvm_machine_settle(struct pvm_machine *m, uint64_t timeout_ms);
/* Milliseconds since the machine was made (monotonic). */
PVM_EXPORT uint64_t pvm_machine_now_ms(const struct pvm_machine *m);

/* ---- queries ------------------------------------------------------------------------------ */

struct pvm_machine_memdev_info {
	const char *id;                /* device id */
	uint64_t addr;                 /* region GPA */
	uint64_t region_size;          /* max size */
	uint64_t block_size;           /* device block size */
	uint64_t usable_region_size;   /* usable now */
	uint64_t plugged_size;         /* plugged now ("size" in query-memory-devices) */
	uint64_t requested_size;       /* requested now */
	int node;                      /* NUMA node */
};
PVM_EXPORT size_t pvm_machine_memdev_count(const struct pvm_machine *m);
/* -ENOENT past the end. */
PVM_EXPORT int pvm_machine_memdev_info(struct pvm_machine *m, size_t i,
				       struct pvm_machine_memdev_info *out);
/* Host bytes resident in virtio-mem device @i's region now. It reads the residency of the whole
 * region (mincore), so it costs time in proportion to the region size: kept out of
 * pvm_machine_memdev_info(), which every QMP query calls. -ENOENT past the end. */
PVM_EXPORT int pvm_machine_memdev_resident(struct pvm_machine *m, size_t i, uint64_t *bytes);
/* Index of virtio-mem @id, or -ENOENT. */
PVM_EXPORT int pvm_machine_memdev_find(const struct pvm_machine *m, const char *id);

struct pvm_machine_balloon_info {
	bool present;                  /* the domain has a balloon */
	uint64_t ram_size;             /* bytes targets refer to (boot RAM) */
	uint64_t target_bytes;         /* guest size requested (ram_size - num_pages * 4 KiB) */
	uint64_t actual_bytes;         /* guest size reached (query-balloon "actual") */
	uint64_t inflated_bytes;       /* in the balloon now */
	uint64_t freed_bytes;          /* host memory given back for it */
	bool inhibited;                /* discarding is disabled now (e.g. VFIO attached) */
};
PVM_EXPORT void pvm_machine_balloon(struct pvm_machine *m, struct pvm_machine_balloon_info *out);

enum pvm_machine_memlock_kind {
	PVM_MACHINE_MEMLOCK_NONE = 0,  /* no limit needed: the original limit is in force */
	PVM_MACHINE_MEMLOCK_BYTES,     /* a finite need */
	PVM_MACHINE_MEMLOCK_UNLIMITED, /* RLIM_INFINITY needed */
};
struct pvm_machine_memlock_info {
	enum pvm_machine_memlock_kind kind;  /* the need now */
	uint64_t need;                 /* bytes (BYTES), UINT64_MAX (UNLIMITED), 0 (NONE) */
	bool applied;                  /* the process limit matches the need */
	int apply_error;               /* last failure to apply it (-EPERM), 0 = none */
	uint64_t soft, hard;           /* the process limit now (UINT64_MAX = unlimited) */
	uint64_t pinned;               /* bytes pinned (charged) by DMA now */
	uint64_t peak_pinned;          /* highest pinned so far */
	uint64_t budget;               /* what pinning is checked against */
};
PVM_EXPORT void pvm_machine_memlock(struct pvm_machine *m, struct pvm_machine_memlock_info *out);

struct pvm_machine_hostdev_info {
	const char *id;                       /* device id */
	enum pvm_machine_hostdev_kind kind;   /* what it is */
	uint64_t mapped;                      /* guest RAM mapped for it (its space's container) */
	bool viommu;                          /* behind the vIOMMU */
};
PVM_EXPORT size_t pvm_machine_hostdev_count(const struct pvm_machine *m);
PVM_EXPORT int pvm_machine_hostdev_info(struct pvm_machine *m, size_t i,
					struct pvm_machine_hostdev_info *out);
PVM_EXPORT int pvm_machine_hostdev_find(const struct pvm_machine *m, const char *id);
PVM_EXPORT const char *pvm_machine_hostdev_kind_name(enum pvm_machine_hostdev_kind kind);

struct pvm_machine_discard_info {
	bool uncoordinated_disabled;   /* balloon/free-page-reporting discards blocked */
	bool coordinated_disabled;     /* virtio-mem discards blocked too */
	uint32_t votes[4];             /* REQUIRE, REQUIRE_COORDINATED, DISABLE, DISABLE_UNCOORDINATED */
};
PVM_EXPORT void pvm_machine_discard(struct pvm_machine *m, struct pvm_machine_discard_info *out);

/* Figures for the status line and the timeline. */
struct pvm_machine_stats {
	uint64_t rss;                  /* host bytes resident in all guest memory */
	uint64_t rss_ram;              /* ... in boot RAM */
	uint64_t guest_total;          /* the guest's MemTotal (0 without a guest) */
	uint64_t guest_used;           /* memory the guest's workload uses */
	uint64_t requested, plugged;   /* summed over virtio-mem devices */
};
PVM_EXPORT void pvm_machine_stats(struct pvm_machine *m, struct pvm_machine_stats *out);

/* Self-audit: resident bytes in unplugged blocks, enforcement, memslot/bitmap and DMA/bitmap
 * agreement. Returns 0 when the audit ran (every figure 0 means healthy), -errno when it could
 * not run. */
struct pvm_machine_audit {
	uint64_t resident_unplugged;   /* bytes resident in unplugged virtio-mem blocks */
	uint64_t memslot_mismatch;     /* blocks whose memslot coverage disagrees with the bitmap */
	uint64_t size_mismatch;        /* devices whose plugged size disagrees with their bitmap */
	uint64_t dma_mismatch;         /* identity DMA spaces whose mapped bytes != RAM + plugged */
	uint64_t protection_mismatch;  /* blocks whose enforcement disagrees with the bitmap */
};
PVM_EXPORT int pvm_machine_audit(struct pvm_machine *m, struct pvm_machine_audit *out,
				 struct pvm_error *err);

#ifdef __cplusplus
}
#endif
#endif /* PVMEM_MACHINE_H */

/* SPDX-License-Identifier: MIT */
/*
 * Discard coordination: whether discarding guest RAM is allowed now (a per-machine policy of
 * four counted votes), and the discard manager that tells everyone who mirrors guest memory
 * (DMA containers, memslots, enforcement) which parts of a sparse range (a virtio-mem region)
 * are populated, before they are populated and before they are freed.
 *
 * ---- Policy (QEMU's ram_block_discard_* semantics, stricter on release) ---------------------
 * Four counters. A vote is taken with pvm_discard_policy_take() and fails with -EBUSY, changing
 * nothing, when it conflicts with a vote already held:
 *
 *   vote                          refused (-EBUSY) while any of these is held
 *   REQUIRE                       DISABLE, DISABLE_UNCOORDINATED
 *   REQUIRE_COORDINATED           DISABLE
 *   DISABLE                       REQUIRE, REQUIRE_COORDINATED
 *   DISABLE_UNCOORDINATED         REQUIRE
 *
 * Who votes what: VFIO type1/iommufd devices (they follow coordinated discards through a
 * listener) take DISABLE_UNCOORDINATED before they pin anything; devices that pin all of RAM
 * and cannot follow discards (vDPA, userspace NVMe, encrypted guests) take DISABLE; virtio-mem
 * takes REQUIRE_COORDINATED at realize; the balloon never votes, it asks is_disabled() per
 * request. Releasing a vote that is not held returns -EINVAL (QEMU silently underflows).
 * Take/release are serialised by a mutex; the queries are lock-free atomic reads.
 *
 * ---- Manager and listeners (QEMU's RamDiscardManager contract) ------------------------------
 * One manager per guest-physical range [base, base+size) with one source (the virtio-mem
 * device) that knows what is populated, at a fixed power-of-two granularity (the block size).
 * Listeners register for a section (a granularity-aligned sub-range) and receive:
 *   populate(gpa, size): the range is ABOUT to be populated; a listener may refuse (negative
 *     errno). Then every listener already told about this range is told discard(gpa, size) of
 *     its part, in registration order, and the source's call fails with that error;
 *   discard(gpa, size): the range is about to be freed; the listener must drop every reference
 *     (unmap, unpin) before it returns. Discard cannot fail. Listeners must accept a discard of
 *     ranges that are (partly) already discarded.
 * Notifications are clipped to the listener's section and aligned to the granularity; a range
 * may be populated in one run length and discarded in another.
 * Registration replays every populated part of the section as populate() calls (a failure
 * undoes the replay with discard() of the section and fails the registration); unregistration
 * sends one discard() of the whole section.
 *
 * Ordering contract for the source (chosen and tested; research §7.2 item 3, alternative order):
 *   plug:   notify_populate()  -> populate/preallocate memory -> set state (bitmap) -> ACK.
 *           On a refusal or a later failure the source discards whatever may have been
 *           populated and answers BUSY; state is unchanged (call notify_discard() if the
 *           notification had succeeded).
 *   unplug: notify_discard()   -> free memory (pvm_mem_region_discard) -> clear state -> ACK.
 *           Listeners unmap BEFORE memory is freed, so a device can never DMA into a frame that
 *           no longer backs guest memory (QEMU frees first and unmaps after).
 * During a populate notification the source's is_populated() still answers false for the
 * range; during a discard notification it still answers true.
 *
 * Threading: a manager is not internally locked; its owner (the machine) serialises calls. A
 * listener callback must not register or unregister listeners of the same manager.
 */
#ifndef PVMEM_DISCARD_H
#define PVMEM_DISCARD_H

#include <pvmem/core.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- policy ---------------------------------------------------------------------------------- */

enum pvm_discard_vote {
	PVM_DISCARD_REQUIRE = 0,               /* every discard must work */
	PVM_DISCARD_REQUIRE_COORDINATED,       /* coordinated discards must work (virtio-mem) */
	PVM_DISCARD_DISABLE,                   /* no discard at all (vDPA, NVMe, SEV) */
	PVM_DISCARD_DISABLE_UNCOORDINATED,     /* no uncoordinated discard (VFIO, balloon blocked) */
	PVM_DISCARD_NVOTES
};

/* A snapshot of the four counters, indexed like enum pvm_discard_vote. */
struct pvm_discard_counts {
	uint32_t count[PVM_DISCARD_NVOTES];    /* votes held per kind */
};

struct pvm_discard_policy;

/* A policy with no votes held; -ENOMEM. One per machine. */
PVM_EXPORT int pvm_discard_policy_new(struct pvm_discard_policy **out) PVM_MUST_CHECK;
/* NULL is fine. Votes still held are reported with pvm_warn() (a leak of a vote). */
PVM_EXPORT void pvm_discard_policy_free(struct pvm_discard_policy *p);
/* Take one vote of kind @vote: 0, -EBUSY (conflict, see the table above; nothing changed),
 * -EINVAL (bad kind), -EOVERFLOW (counter saturated). */
PVM_EXPORT int pvm_discard_policy_take(struct pvm_discard_policy *p, enum pvm_discard_vote vote,
				       struct pvm_error *err) PVM_MUST_CHECK;
/* Release one vote of kind @vote: 0, or -EINVAL when none is held (nothing changed). */
PVM_EXPORT int pvm_discard_policy_release(struct pvm_discard_policy *p, enum pvm_discard_vote vote);
/* Uncoordinated discards (balloon) are not allowed now: DISABLE or DISABLE_UNCOORDINATED held.
 * Lock-free. */
PVM_EXPORT bool pvm_discard_policy_is_disabled(const struct pvm_discard_policy *p);
/* Coordinated discards (virtio-mem) are not allowed now: DISABLE held. Lock-free. */
PVM_EXPORT bool pvm_discard_policy_is_coordinated_disabled(const struct pvm_discard_policy *p);
/* Some technology relies on discards: REQUIRE or REQUIRE_COORDINATED held. Lock-free. */
PVM_EXPORT bool pvm_discard_policy_is_required(const struct pvm_discard_policy *p);
/* The four counters (consistent snapshot). */
PVM_EXPORT void pvm_discard_policy_counts(const struct pvm_discard_policy *p,
					  struct pvm_discard_counts *out);
/* "require", "require-coordinated", "disable", "disable-uncoordinated"; "?" for others. */
PVM_EXPORT const char *pvm_discard_vote_name(enum pvm_discard_vote vote);

/* ---- manager ------------------------------------------------------------------------------- */

/* Called for one range; returns 0 to continue, non-zero to stop (that value is passed on). */
typedef int (*pvm_discard_range_fn)(void *arg, uint64_t gpa, uint64_t size);

/* What the source (e.g. a virtio-mem device) provides. All ranges are guest-physical. */
struct pvm_discard_source_ops {
	/* True when [gpa, gpa+size) is completely populated (no alignment requirement; ranges
	 * outside the source count as not populated). */
	bool (*is_populated)(void *opaque, uint64_t gpa, uint64_t size);
	/* Call @fn for each maximal populated run inside [gpa, gpa+size), in ascending order,
	 * clipped to the range; stop at the first non-zero return and return it. */
	int (*replay_populated)(void *opaque, uint64_t gpa, uint64_t size, pvm_discard_range_fn fn,
				void *arg);
};

/* What a listener receives (see the contract above). @opaque is the listener's. */
struct pvm_discard_listener_ops {
	int (*populate)(void *opaque, uint64_t gpa, uint64_t size);   /* 0 or -errno (refuse) */
	void (*discard)(void *opaque, uint64_t gpa, uint64_t size);   /* cannot fail */
};

struct pvm_discard_manager;
struct pvm_discard_listener;

/* A manager for [@base, @base+@size) with @granularity (a power of two >= 4 KiB; base and size
 * multiples of it) and the source @ops/@opaque (ops copied, both must outlive the manager).
 * -EINVAL, -ENOMEM. */
PVM_EXPORT int pvm_discard_manager_new(uint64_t base, uint64_t size, uint64_t granularity,
				       const struct pvm_discard_source_ops *ops, void *opaque,
				       struct pvm_discard_manager **out,
				       struct pvm_error *err) PVM_MUST_CHECK;
/* NULL is fine. Listeners still registered are unregistered first (each gets its discard). */
PVM_EXPORT void pvm_discard_manager_free(struct pvm_discard_manager *m);
PVM_EXPORT uint64_t pvm_discard_manager_base(const struct pvm_discard_manager *m);
PVM_EXPORT uint64_t pvm_discard_manager_size(const struct pvm_discard_manager *m);
PVM_EXPORT uint64_t pvm_discard_manager_granularity(const struct pvm_discard_manager *m);
PVM_EXPORT unsigned pvm_discard_manager_listener_count(const struct pvm_discard_manager *m);
/* The source's answers, passed through (for listeners and tests). */
PVM_EXPORT bool pvm_discard_manager_is_populated(const struct pvm_discard_manager *m, uint64_t gpa,
						 uint64_t size);
PVM_EXPORT int pvm_discard_manager_replay_populated(const struct pvm_discard_manager *m,
						    uint64_t gpa, uint64_t size,
						    pvm_discard_range_fn fn, void *arg);

/* Register a listener for the section [@gpa, @gpa+@size) (inside the manager, aligned to the
 * granularity) and replay every populated part to it. The returned handle is owned by the
 * manager until pvm_discard_listener_unregister(). Errors: -EINVAL (section), -ENOMEM, or the
 * listener's refusal during the replay (then it got a discard of the section and is not
 * registered). @ops is copied; @opaque must outlive the registration. */
PVM_EXPORT int pvm_discard_manager_register(struct pvm_discard_manager *m, uint64_t gpa,
					    uint64_t size,
					    const struct pvm_discard_listener_ops *ops, void *opaque,
					    struct pvm_discard_listener **out,
					    struct pvm_error *err) PVM_MUST_CHECK;
/* Send the listener a discard of its whole section, then remove and free it. NULL is fine. */
PVM_EXPORT void pvm_discard_listener_unregister(struct pvm_discard_listener *l);

/* Source side. [@gpa, @gpa+@size) must lie in the manager and be aligned to the granularity.
 * notify_populate: tell every listener whose section intersects the range, in registration
 * order; on the first refusal undo (discard to the ones already told) and return it; -EINVAL
 * for a bad range (nobody told). */
PVM_EXPORT int pvm_discard_manager_notify_populate(struct pvm_discard_manager *m, uint64_t gpa,
						   uint64_t size,
						   struct pvm_error *err) PVM_MUST_CHECK;
/* Tell every intersecting listener that the range is going away; -EINVAL for a bad range. */
PVM_EXPORT int pvm_discard_manager_notify_discard(struct pvm_discard_manager *m, uint64_t gpa,
						  uint64_t size);
/* Discard of every listener's whole section (unplug-all, reset). */
PVM_EXPORT void pvm_discard_manager_notify_discard_all(struct pvm_discard_manager *m);
/* After the source's state was replaced (migration restore): replay every populated part to
 * every listener; on a refusal the listeners already told get discards and the error returns. */
PVM_EXPORT int pvm_discard_manager_replay_to_listeners(struct pvm_discard_manager *m,
						       struct pvm_error *err) PVM_MUST_CHECK;

#ifdef __cplusplus
}
#endif
#endif /* PVMEM_DISCARD_H */

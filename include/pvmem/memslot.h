/* SPDX-License-Identifier: MIT */
/*
 * The memslot table: which guest-physical ranges are backed by which host memory, with KVM's
 * rules (Linux kvm_set_memory_region(), research/balloon-discard-memslots.md §5.5) and KVM's
 * limit of 32764 user slots. It starts small and grows by doubling. Lookups by GPA and by HVA are
 * O(log n) with a last-used cache; pvm_memslot_translate() is the only way any device reaches
 * guest memory.
 *
 * Concurrency: lookups and translations may run concurrently with each other; changes (set,
 * add, delete, move, flags) must not run concurrently with anything else on the same table: the
 * owner (the machine) serialises them against lookups.
 */
#ifndef PVMEM_MEMSLOT_H
#define PVMEM_MEMSLOT_H

#include <pvmem/core.h>

#ifdef __cplusplus
extern "C" {
#endif

/* KVM_USER_MEM_SLOTS on x86: SHRT_MAX minus 3 internal slots. */
#define PVM_MEMSLOT_MAX_USER 32764u
/* KVM_MEM_MAX_NR_PAGES: a slot may hold at most 2^31 - 1 pages. */
#define PVM_MEMSLOT_MAX_PAGES ((1ULL << 31) - 1)
/* Flags, with KVM's values. */
#define PVM_MEMSLOT_F_LOG_DIRTY (1u << 0)  /* KVM_MEM_LOG_DIRTY_PAGES: per-slot dirty bitmap */
#define PVM_MEMSLOT_F_READONLY (1u << 1)   /* KVM_MEM_READONLY: writes fail with -EFAULT */

/* Access kinds for pvm_memslot_translate(). */
#define PVM_ACCESS_READ (1u << 0)
#define PVM_ACCESS_WRITE (1u << 1)

struct pvm_memslot_table;

/* A slot as seen from outside (a copy). */
struct pvm_memslot_info {
	uint32_t id;      /* slot id, < the table's maximum */
	uint32_t flags;   /* PVM_MEMSLOT_F_* */
	uint64_t gpa;     /* guest-physical start */
	uint64_t size;    /* bytes, > 0 */
	void *hva;        /* host address of gpa */
};

/* A table that allows at most @max_slots slots (0 = PVM_MEMSLOT_MAX_USER; more is -EINVAL). */
PVM_EXPORT int pvm_memslot_table_new(uint32_t max_slots, struct pvm_memslot_table **out) PVM_MUST_CHECK;
PVM_EXPORT void pvm_memslot_table_free(struct pvm_memslot_table *t);

/* KVM_SET_USER_MEMORY_REGION semantics in one call: size 0 deletes slot @id; a new id creates;
 * an existing id may move (new gpa, same size and hva) or change LOG_DIRTY; anything else
 * (size, hva or READONLY change) is -EINVAL. Errors follow KVM: -EINVAL (alignment, unknown
 * flags, id >= max, too many pages, deleting a missing slot, wrap-around), -EEXIST (overlap
 * with another slot), -ENOMEM. On error the table is unchanged. The page size is 4 KiB.
 * Checks run in KVM's order (flags, size/gpa/hva alignment, host range, id, gpa wrap, pages),
 * so the first failing one decides the message. Two pvmem choices: a NULL @hva is refused
 * (-EINVAL; gpa_to_hva() uses NULL for "no slot"), and a host range that wraps is refused as
 * KVM's access_ok() does. An identical request returns 0 and changes nothing (the dirty log is
 * kept). Host memory may be aliased by several slots. */
PVM_EXPORT int pvm_memslot_set(struct pvm_memslot_table *t, uint32_t id, uint32_t flags,
			       uint64_t gpa, uint64_t size, void *hva,
			       struct pvm_error *err) PVM_MUST_CHECK;
/* Convenience wrappers over pvm_memslot_set(), with the same errors; add refuses an id in use
 * (-EEXIST), and delete/move/set_flags refuse a missing one (-EINVAL / -ENOENT as KVM). */
PVM_EXPORT int pvm_memslot_add(struct pvm_memslot_table *t, uint32_t id, uint32_t flags,
			       uint64_t gpa, uint64_t size, void *hva, struct pvm_error *err) PVM_MUST_CHECK;
PVM_EXPORT int pvm_memslot_delete(struct pvm_memslot_table *t, uint32_t id, struct pvm_error *err);
PVM_EXPORT int pvm_memslot_move(struct pvm_memslot_table *t, uint32_t id, uint64_t new_gpa,
				struct pvm_error *err) PVM_MUST_CHECK;
PVM_EXPORT int pvm_memslot_set_flags(struct pvm_memslot_table *t, uint32_t id, uint32_t flags,
				     struct pvm_error *err) PVM_MUST_CHECK;
/* The lowest id not in use, or -ENOSPC when the table is full. */
PVM_EXPORT int pvm_memslot_free_id(const struct pvm_memslot_table *t, uint32_t *id);

PVM_EXPORT uint32_t pvm_memslot_count(const struct pvm_memslot_table *t);
/* Entries allocated now (grows by doubling up to the maximum). */
PVM_EXPORT uint32_t pvm_memslot_capacity(const struct pvm_memslot_table *t);
PVM_EXPORT uint32_t pvm_memslot_max(const struct pvm_memslot_table *t);
/* Copy slot @id into *@out; -ENOENT. */
PVM_EXPORT int pvm_memslot_get(const struct pvm_memslot_table *t, uint32_t id,
			       struct pvm_memslot_info *out);
/* The slot holding @gpa; -ENOENT. */
PVM_EXPORT int pvm_memslot_lookup_gpa(const struct pvm_memslot_table *t, uint64_t gpa,
				      struct pvm_memslot_info *out);
/* Host address of @gpa, or NULL when no slot holds it. */
PVM_EXPORT void *pvm_memslot_gpa_to_hva(const struct pvm_memslot_table *t, uint64_t gpa);
/* Guest address of @hva; -ENOENT. When several slots alias @hva, the slot with the lowest host
 * start wins, then the lowest GPA. */
PVM_EXPORT int pvm_memslot_hva_to_gpa(const struct pvm_memslot_table *t, const void *hva, uint64_t *gpa);

/* Checked translation: the host pointer for [@gpa, @gpa+@len), which must lie inside one slot
 * and allow @access (PVM_ACCESS_*). -EFAULT when it does not (no slot, crosses a slot's end,
 * wraps, write to a READONLY slot); len 0 is -EFAULT too. A range that runs into the next slot
 * is -EFAULT even when that slot is contiguous in GPA and in host memory: callers split
 * buffers at slot boundaries (a slot is the unit that can move, be deleted or be read-only).
 * Unknown @access bits are -EINVAL. A WRITE access marks the pages dirty in a LOG_DIRTY slot.
 * Cost: O(1) when the last-used slot matches, else a hinted search, O(log n) at worst. */
PVM_EXPORT int pvm_memslot_translate(const struct pvm_memslot_table *t, uint64_t gpa, uint64_t len,
				     unsigned access, void **hva) PVM_MUST_CHECK;

/* Copy slot @id's dirty bitmap (one bit per 4 KiB page, little-endian 64-bit words) into @bitmap
 * (@nwords words, at least ceil(pages / 64)) and, with @clear, reset it. -ENOENT, -EINVAL
 * (slot without LOG_DIRTY, or @nwords too small). */
PVM_EXPORT int pvm_memslot_get_dirty_log(struct pvm_memslot_table *t, uint32_t id, uint64_t *bitmap,
					 uint64_t nwords, bool clear);

/* Call @fn for each slot in GPA order; a non-zero return stops the walk and is returned. The
 * table must not change during the walk. */
PVM_EXPORT int pvm_memslot_for_each(const struct pvm_memslot_table *t,
				    int (*fn)(void *opaque, const struct pvm_memslot_info *slot),
				    void *opaque);

#ifdef __cplusplus
}
#endif
#endif /* PVMEM_MEMSLOT_H */

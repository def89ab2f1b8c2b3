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
 * owner (the machine) serialises them against lookups. Each user that translates often (a vCPU,
 * a device) should also own a struct pvm_memslot_cache (below): a hit is inline and costs one
 * range compare.
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

/* The table's generation: a counter that every successful change (create, delete, move, flags
 * change) increases, by one per step (a set() that moves and toggles LOG_DIRTY: two); failed
 * and identical requests leave it alone. Users that keep something derived from slots (a
 * translated ring pointer) compare it to know when to translate again. */
PVM_EXPORT uint64_t pvm_memslot_generation(const struct pvm_memslot_table *t);

/* ---- per-user lookup caches --------------------------------------------------------------
 *
 * A cache holds a copy of the last slot its user hit (KVM's per-vCPU last_used_slot, research
 * §5.2), so that a hit is inline in the caller: one subtraction, one compare, one addition, no
 * call. The table keeps a list of its caches and empties every cache holding a slot when that
 * slot is deleted, moved or changes flags (push invalidation, as KVM's gfn_to_pfn_cache list):
 * a hit is therefore always exact, with no generation check on the hot path, and a cache filled
 * before a change can never return a pointer the change made wrong.
 *
 * Rules: a cache belongs to one thread at a time (lookups through it write it on a miss);
 * pvm_memslot_cache_new() and _free() may run at any time but during pvm_memslot_table_free()
 * (the list has its own lock); the table's changes empty caches, so they must not overlap
 * lookups through any cache (the same rule as for every lookup). pvm_memslot_table_free()
 * detaches the caches still attached: they must still be freed, and every lookup through a
 * detached cache misses (NULL / -EFAULT).
 *
 * The fields are public only for the inline functions below: read them if useful, never write
 * them. */
struct pvm_memslot_cache {
	uint64_t gpa;                        /* cached slot: guest-physical start */
	uint64_t size;                       /* its size in bytes; 0 = empty, every lookup misses */
	uintptr_t hva;                       /* its host address of gpa */
	uint32_t slow_access;                /* access bits left to the library (see below) */
	uint32_t id;                         /* its slot id (meaningful while size != 0) */
	uint32_t pos;                        /* where the table last had it (private hint) */
	uint32_t reserved;                   /* zero */
	struct pvm_memslot_table *table;     /* the table, NULL once the table is freed */
	struct pvm_memslot_cache *prev;      /* the table's list of caches (private) */
	struct pvm_memslot_cache *next;      /* the table's list of caches (private) */
};

/* A new, empty cache attached to @t; -ENOMEM. */
PVM_EXPORT int pvm_memslot_cache_new(struct pvm_memslot_table *t,
				     struct pvm_memslot_cache **out) PVM_MUST_CHECK;
/* Detach (if still attached) and free @c; NULL is fine. */
PVM_EXPORT void pvm_memslot_cache_free(struct pvm_memslot_cache *c);

/* The out-of-line halves of the inline functions below: exactly pvm_memslot_gpa_to_hva() and
 * pvm_memslot_translate() on the cache's table, and when @gpa lies in a slot the cache is
 * refilled with that slot. They search the table directly and leave the table's own last-used
 * cache alone, so that many users do not thrash it (KVM does the same for vCPUs). */
PVM_EXPORT void *pvm_memslot_cache_gpa_to_hva_miss(struct pvm_memslot_cache *c, uint64_t gpa);
PVM_EXPORT int pvm_memslot_cache_translate_miss(struct pvm_memslot_cache *c, uint64_t gpa, uint64_t len,
						unsigned access, void **hva) PVM_MUST_CHECK;

/* pvm_memslot_gpa_to_hva() through @c: inline on a hit. */
static inline void *pvm_memslot_cache_gpa_to_hva(struct pvm_memslot_cache *c, uint64_t gpa)
{
	uint64_t off = gpa - c->gpa;

	if (__builtin_expect(off < c->size, 1))
		return (void *)(c->hva + (uintptr_t)off);
	return pvm_memslot_cache_gpa_to_hva_miss(c, gpa);
}

/* pvm_memslot_translate() through @c, with identical results: inline when [@gpa, @gpa+@len)
 * lies in the cached slot and @access has no bit of c->slow_access; any other case goes out of
 * line: a miss, len 0, a range past the slot's end, unknown access bits, and a WRITE to a
 * READONLY slot (refused there) or to a LOG_DIRTY one (whose pages are marked dirty there). So
 * write protection and dirty logging stay exact; reads of such slots stay inline. */
static inline int PVM_MUST_CHECK pvm_memslot_cache_translate(struct pvm_memslot_cache *c, uint64_t gpa,
							     uint64_t len, unsigned access, void **hva)
{
	uint64_t off = gpa - c->gpa;

	/* off < size, so size - off > 0; len - 1 wraps for len 0, which then goes out of line. */
	if (__builtin_expect(off < c->size && len - 1 < c->size - off && !(access & c->slow_access), 1)) {
		*hva = (void *)(c->hva + (uintptr_t)off);
		return 0;
	}
	return pvm_memslot_cache_translate_miss(c, gpa, len, access, hva);
}

#ifdef __cplusplus
}
#endif
#endif /* PVMEM_MEMSLOT_H */

/* SPDX-License-Identifier: MIT */
/*
 * Internals of the memslot table, shared by memslot.c (table, indexes, lookups) and
 * memslot-dirty.c (dirty bitmaps). Not installed.
 *
 * Layout: the slots live in a dense storage array (`store`, positions 0..count-1, unordered).
 * Three sorted indexes refer to storage positions: by GPA (with a compact key array so the
 * binary search touches 8 bytes per step), by id (for set/get/free_id) and by host address
 * (sorted by (hva, gpa), with a prefix maximum of the end addresses so that a search is correct
 * even when slots alias the same host memory). All arrays share one allocation of `cap`
 * entries, which doubles up to `max`; nothing ever walks more than `count` entries. Per-user
 * caches (memslot-cache.c) hold copies of slots and are emptied by the changes that touch them.
 */
#ifndef PVM_MEM_MEMSLOT_PRIV_H
#define PVM_MEM_MEMSLOT_PRIV_H

#include <pthread.h>
#include <stdatomic.h>

#include <pvmem/memslot.h>

#include "core/util.h"

#define PVM_MEMSLOT_PAGE_SHIFT 12
#define PVM_MEMSLOT_PAGE_SIZE (1ULL << PVM_MEMSLOT_PAGE_SHIFT)
#define PVM_MEMSLOT_INITIAL 16u   /* entries allocated at creation (QEMU uses 16 too) */

/* One slot. */
struct pvm_memslot {
	uint64_t gpa;      /* guest-physical start, page aligned */
	uint64_t size;     /* bytes, page aligned, > 0 */
	uintptr_t hva;     /* host address of gpa, page aligned, != 0 */
	uint32_t id;       /* slot id, < the table's max */
	uint32_t flags;    /* PVM_MEMSLOT_F_* */
	uint64_t *dirty;   /* LOG_DIRTY: one bit per page, updated with atomics; NULL otherwise */
};

/* The GPA index entry: everything a translation needs, next to nothing else (32 bytes, so one
 * cache line holds it). Mirrors the slot's fields; memslot.c keeps them in sync. */
struct pvm_memslot_gpa_ent {
	uint64_t size;     /* the slot's size */
	uintptr_t hva;     /* the slot's host start */
	uint64_t *dirty;   /* the slot's dirty bitmap or NULL */
	uint32_t flags;    /* the slot's flags */
	uint32_t idx;      /* the slot's storage position */
};

struct pvm_memslot_table {
	uint32_t max;               /* ids are < max; max >= 1 */
	uint32_t count;             /* slots in use */
	uint32_t cap;               /* entries allocated in every array below */
	void *block;                /* the single allocation holding all arrays */
	struct pvm_memslot *store;  /* [count] the slots, unordered (dense) */
	uint64_t *gpa_key;          /* [count] sorted GPA starts */
	struct pvm_memslot_gpa_ent *gpa_ent;   /* [count] the slot starting at gpa_key[i] */
	uint32_t *id_key;           /* [count] sorted slot ids */
	uint32_t *id_idx;           /* [count] storage position of id_key[i]'s slot */
	uint64_t *hva_key;          /* [count] host starts, sorted by (hva, gpa) */
	uint32_t *hva_idx;          /* [count] storage position of hva_key[i]'s slot */
	uint64_t *hva_maxend;       /* [count] max over j <= i of the end of hva_key[j]'s slot */
	/* GPA search hints: bucket b covers [hint_base + (b << hint_shift), +1 << hint_shift) and
	 * holds the position of the last slot starting at or before the bucket's start, as of the
	 * last rebuild. Only a starting point for a galloping search, so stale hints cost time,
	 * never correctness; rebuilt (O(n)) after count/8 changes, so O(1) amortised. */
	uint32_t *hint;             /* [hint_n] */
	uint32_t hint_n;            /* buckets: a power of two >= 2 * cap */
	unsigned hint_shift;        /* log2 of a bucket's size in bytes */
	uint64_t hint_base;         /* GPA of bucket 0 */
	uint32_t hint_changes;      /* GPA-index changes since the last rebuild */
	uint64_t gen;               /* pvm_memslot_generation(): successful changes so far */
	pthread_mutex_t cache_lock; /* protects the list of caches (not their contents) */
	struct pvm_memslot_cache *caches;   /* the attached per-user caches (doubly linked) */
	/* Last-used caches, written by concurrent lookups: relaxed atomics, each value only a hint
	 * that is checked before use. The padding keeps them off the cache line of the fields
	 * above, so that lookups writing them do not bounce what every lookup reads. */
	char pad[64];                /* separates the caches from the read-mostly fields */
	atomic_uint last_gpa;        /* GPA-index position of the last GPA hit */
	atomic_uint last_hva;        /* hva-index position of the last HVA hit */
};

/* The slot with id @id, or NULL. O(log n). */
struct pvm_memslot *pvm_memslot_find_id(const struct pvm_memslot_table *t, uint32_t id);
/* GPA-index position of the slot holding @gpa, or UINT32_MAX; leaves last_gpa alone. */
uint32_t pvm_memslot_search_gpa(const struct pvm_memslot_table *t, uint64_t gpa);
/* pvm_memslot_translate() once the slot is known: @pos from pvm_memslot_search_gpa(), @access
 * already checked for unknown bits. */
int pvm_memslot_translate_at(const struct pvm_memslot_table *t, uint32_t pos, uint64_t gpa, uint64_t len,
			     unsigned access, void **hva);

/* Per-user caches (memslot-cache.c). */
/* Slot @id was created, deleted, moved or changed flags: bump the generation and empty every
 * cache holding that slot. Called by each change once it has succeeded. */
void pvm_memslot_changed(struct pvm_memslot_table *t, uint32_t id);
/* Detach every cache (at table free): they stay allocated and miss from now on. */
void pvm_memslot_cache_detach_all(struct pvm_memslot_table *t);

/* Dirty bitmaps (memslot-dirty.c). */
/* A zeroed bitmap for @npages pages into *@out; -ENOMEM. */
int pvm_memslot_dirty_new(uint64_t npages, uint64_t **out);
void pvm_memslot_dirty_free(uint64_t *bitmap);
/* Mark pages @first..@last (inclusive) dirty; safe against concurrent marks and reads. */
void pvm_memslot_dirty_mark(uint64_t *bitmap, uint64_t first, uint64_t last);

#endif

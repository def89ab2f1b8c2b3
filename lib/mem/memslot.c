/* SPDX-License-Identifier: MIT */
/*
 * The growable memslot table: KVM_SET_USER_MEMORY_REGION's rules (research
 * balloon-discard-memslots.md §5.5) over a dense slot array with sorted indexes (see
 * memslot-priv.h). Changes cost O(log n) searches plus array shifts (memmove, O(n) bytes at
 * worst: ~70 bytes per slot after the changed position); lookups try an O(1) last-used cache,
 * then search from a bucket hint (usually one or two probes; a galloping search, O(log n), when
 * the hint is stale or the layout skewed). Per-user caches (memslot-cache.c) sit in front of
 * all this, inline in the caller; every change below reports itself to them.
 */
#include <errno.h>
#include <string.h>

#include "mem/memslot-priv.h"

#define VALID_FLAGS (PVM_MEMSLOT_F_LOG_DIRTY | PVM_MEMSLOT_F_READONLY)

/* ---- storage ---------------------------------------------------------------------------- */

/* Carve the arrays for @cap entries out of @block (larger alignments first). */
static uint32_t hint_count(uint32_t cap)
{
	uint32_t n = 1;

	while (n < 2 * cap)
		n *= 2;
	return n;
}

static void layout(struct pvm_memslot_table *t, void *block, uint32_t cap)
{
	char *p = block;

	t->block = block;
	t->gpa_ent = (struct pvm_memslot_gpa_ent *)p;
	p += (size_t)cap * sizeof(struct pvm_memslot_gpa_ent);
	t->store = (struct pvm_memslot *)p;
	p += (size_t)cap * sizeof(struct pvm_memslot);
	t->gpa_key = (uint64_t *)p;
	p += (size_t)cap * sizeof(uint64_t);
	t->hva_key = (uint64_t *)p;
	p += (size_t)cap * sizeof(uint64_t);
	t->hva_maxend = (uint64_t *)p;
	p += (size_t)cap * sizeof(uint64_t);
	t->id_key = (uint32_t *)p;
	p += (size_t)cap * sizeof(uint32_t);
	t->id_idx = (uint32_t *)p;
	p += (size_t)cap * sizeof(uint32_t);
	t->hva_idx = (uint32_t *)p;
	p += (size_t)cap * sizeof(uint32_t);
	t->hint = (uint32_t *)p;
	t->hint_n = hint_count(cap);
}

static size_t block_size(uint32_t cap)
{
	return (size_t)cap * (sizeof(struct pvm_memslot_gpa_ent) + sizeof(struct pvm_memslot) +
			      3 * sizeof(uint64_t) + 3 * sizeof(uint32_t)) +
	       (size_t)hint_count(cap) * sizeof(uint32_t);
}

/* Make room for one more slot, doubling the arrays (up to max). -ENOMEM leaves @t as it was. */
static int reserve_one(struct pvm_memslot_table *t)
{
	struct pvm_memslot_table old = *t;
	uint32_t cap;
	void *block;

	if (t->count < t->cap)
		return 0;
	cap = t->cap * 2 > t->max ? t->max : t->cap * 2;
	block = pvm_calloc(1, block_size(cap));
	if (!block)
		return -ENOMEM;
	layout(t, block, cap);
	memcpy(t->store, old.store, old.count * sizeof(*t->store));
	memcpy(t->gpa_key, old.gpa_key, old.count * sizeof(*t->gpa_key));
	memcpy(t->hva_key, old.hva_key, old.count * sizeof(*t->hva_key));
	memcpy(t->hva_maxend, old.hva_maxend, old.count * sizeof(*t->hva_maxend));
	memcpy(t->gpa_ent, old.gpa_ent, old.count * sizeof(*t->gpa_ent));
	memcpy(t->id_key, old.id_key, old.count * sizeof(*t->id_key));
	memcpy(t->id_idx, old.id_idx, old.count * sizeof(*t->id_idx));
	memcpy(t->hva_idx, old.hva_idx, old.count * sizeof(*t->hva_idx));
	t->cap = cap;
	t->hint_changes = UINT32_MAX;   /* the new hint array is empty: rebuild at the next change */
	pvm_free(old.block);
	PVM_TRACE(memslot_grow, "cap=%u", cap);
	return 0;
}

PVM_EXPORT int pvm_memslot_table_new(uint32_t max_slots, struct pvm_memslot_table **out)
{
	struct pvm_memslot_table *t;
	void *block;
	uint32_t cap;

	*out = NULL;
	if (max_slots == 0)
		max_slots = PVM_MEMSLOT_MAX_USER;
	if (max_slots > PVM_MEMSLOT_MAX_USER)
		return -EINVAL;
	cap = max_slots < PVM_MEMSLOT_INITIAL ? max_slots : PVM_MEMSLOT_INITIAL;
	t = pvm_calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	block = pvm_calloc(1, block_size(cap));
	if (!block) {
		pvm_free(t);
		return -ENOMEM;
	}
	t->max = max_slots;
	t->cap = cap;
	layout(t, block, cap);
	pthread_mutex_init(&t->cache_lock, NULL);
	*out = t;
	return 0;
}

PVM_EXPORT void pvm_memslot_table_free(struct pvm_memslot_table *t)
{
	if (!t)
		return;
	pvm_memslot_cache_detach_all(t);
	pthread_mutex_destroy(&t->cache_lock);
	for (uint32_t i = 0; i < t->count; i++)
		pvm_memslot_dirty_free(t->store[i].dirty);
	pvm_free(t->block);
	pvm_free(t);
}

/* ---- sorted indexes --------------------------------------------------------------------- */

/* Number of keys <= @x in the sorted @k[0..n). Branch-free (the loop's shape depends on n
 * only, the step is a conditional move), and each step prefetches both possible next probes, so
 * that independent lookups overlap their cache misses instead of waiting on mispredictions. */
static inline uint32_t upper_bound_u64(const uint64_t *k, uint32_t n, uint64_t x)
{
	const uint64_t *base = k;

	if (n == 0)
		return 0;
	while (n > 1) {
		uint32_t half = n / 2;

		__builtin_prefetch(base + half / 2);
		__builtin_prefetch(base + half + half / 2);
		base = base[half] <= x ? base + half : base;
		n -= half;
	}
	return (uint32_t)(base - k) + (*base <= x);
}

/* Rebuild the GPA hints when enough changes have made them stale (see memslot-priv.h). */
static void hint_refresh(struct pvm_memslot_table *t)
{
	uint32_t n = t->count, p = 0;
	uint64_t span;
	unsigned shift = 0;

	if (t->hint_changes != UINT32_MAX)
		t->hint_changes++;
	if (n == 0 || t->hint_changes <= n / 8)
		return;
	t->hint_changes = 0;
	t->hint_base = t->gpa_key[0];
	span = t->gpa_key[n - 1] + t->gpa_ent[n - 1].size - t->hint_base;   /* > 0, no wrap */
	while (shift < 63 && ((span - 1) >> shift) >= t->hint_n)
		shift++;
	t->hint_shift = shift;
	/* b << shift cannot overflow: the shift is minimal, so hint_n << (shift - 1) <= span - 1.
	 * The bucket's start can (buckets reach up to twice the span): those get the last slot. */
	for (uint32_t b = 0; b < t->hint_n; b++) {
		uint64_t start;

		if (pvm_add_overflow(t->hint_base, (uint64_t)b << shift, &start))
			start = UINT64_MAX;
		while (p + 1 < n && t->gpa_key[p + 1] <= start)
			p++;
		t->hint[b] = p;
	}
}

/* Number of GPA keys <= @x (as upper_bound_u64()), searched from the hint for @x: usually one
 * or two probes; at worst a galloping search, O(log n). */
static inline uint32_t gpa_upper_bound(const struct pvm_memslot_table *t, uint64_t x)
{
	const uint64_t *k = t->gpa_key;
	uint32_t n = t->count, p, step = 1;
	uint64_t d = x - t->hint_base;

	if (n == 0)
		return 0;
	p = x < t->hint_base ? 0 : t->hint[(d >> t->hint_shift) < t->hint_n ? d >> t->hint_shift : t->hint_n - 1];
	p = p < n ? p : n - 1;
	if (k[p] <= x) {
		uint32_t lo, hi;

		if (p + 1 == n || k[p + 1] > x)
			return p + 1;
		/* k[lo] <= x: gallop right until k[lo + step] > x or the end */
		lo = p + 1;
		while (lo + step < n && k[lo + step] <= x) {
			lo += step;
			step *= 2;
		}
		hi = lo + step < n ? lo + step : n;
		return lo + 1 + upper_bound_u64(k + lo + 1, hi - lo - 1, x);
	} else {
		uint32_t lo, hi = p;   /* k[hi] > x: gallop left */

		while (hi >= step && k[hi - step] > x) {
			hi -= step;
			step *= 2;
		}
		lo = hi >= step ? hi - step : 0;
		return lo + upper_bound_u64(k + lo, hi - lo, x);
	}
}

/* Position of the first id >= @id in the id index of @n entries. */
static uint32_t id_lower_bound(const struct pvm_memslot_table *t, uint32_t id, uint32_t n)
{
	uint32_t lo = 0, hi = n;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (t->id_key[mid] < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Position of the first entry >= (@hva, @gpa) in the HVA index of @n entries. */
static uint32_t hva_lower_bound(const struct pvm_memslot_table *t, uint64_t hva, uint64_t gpa,
				uint32_t n)
{
	uint32_t lo = 0, hi = n;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		uint64_t k = t->hva_key[mid];

		if (k < hva || (k == hva && t->store[t->hva_idx[mid]].gpa < gpa))
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Recompute the HVA prefix maximum from position @from on (n entries), after one entry was
 * inserted at @from or removed from there. Entries after the change still hold the prefix
 * maxima of the old sequence; the new and old sequences differ by that one entry before them,
 * so once a recomputed value equals the stored one, every later value does too (each is that
 * value combined with the same suffix): the walk stops there, usually after a few steps. At
 * @from itself the stored value is a placeholder (insert) or belongs to the removed entry's
 * successor in the old sequence, so it is always rewritten. */
static void hva_maxend_update(struct pvm_memslot_table *t, uint32_t from, uint32_t n)
{
	uint64_t m = from ? t->hva_maxend[from - 1] : 0;

	for (uint32_t i = from; i < n; i++) {
		uint64_t end = t->hva_key[i] + t->store[t->hva_idx[i]].size;

		m = end > m ? end : m;
		if (i > from && t->hva_maxend[i] == m)
			return;
		t->hva_maxend[i] = m;
	}
}

/* Insert/remove storage position @idx into/from an index of @n entries (before/after). */
#define ARRAY_INSERT(a, pos, n, v)                                                       \
	do {                                                                             \
		memmove(&(a)[(pos) + 1], &(a)[pos], ((n) - (pos)) * sizeof(*(a)));       \
		(a)[pos] = (v);                                                          \
	} while (0)
#define ARRAY_REMOVE(a, pos, n) memmove(&(a)[pos], &(a)[(pos) + 1], ((n) - (pos) - 1) * sizeof(*(a)))

/* @n: entries in the index before the insertion. */
static void gpa_index_insert(struct pvm_memslot_table *t, uint32_t idx, uint32_t n)
{
	const struct pvm_memslot *s = &t->store[idx];
	uint64_t gpa = s->gpa;
	uint32_t pos = upper_bound_u64(t->gpa_key, n, gpa);

	ARRAY_INSERT(t->gpa_key, pos, n, gpa);
	ARRAY_INSERT(t->gpa_ent, pos, n, ((struct pvm_memslot_gpa_ent){ .size = s->size, .hva = s->hva,
				.dirty = s->dirty, .flags = s->flags, .idx = idx }));
}

static uint32_t gpa_index_pos(const struct pvm_memslot_table *t, uint64_t gpa, uint32_t n)
{
	return upper_bound_u64(t->gpa_key, n, gpa) - 1;   /* gpa is present: the result is >= 1 */
}

static void gpa_index_remove(struct pvm_memslot_table *t, uint32_t idx, uint32_t n)
{
	uint32_t pos = gpa_index_pos(t, t->store[idx].gpa, n);

	ARRAY_REMOVE(t->gpa_key, pos, n);
	ARRAY_REMOVE(t->gpa_ent, pos, n);
}

static void id_index_insert(struct pvm_memslot_table *t, uint32_t idx, uint32_t n)
{
	uint32_t pos = id_lower_bound(t, t->store[idx].id, n);

	ARRAY_INSERT(t->id_key, pos, n, t->store[idx].id);
	ARRAY_INSERT(t->id_idx, pos, n, idx);
}

static void id_index_remove(struct pvm_memslot_table *t, uint32_t pos, uint32_t n)
{
	ARRAY_REMOVE(t->id_key, pos, n);
	ARRAY_REMOVE(t->id_idx, pos, n);
}

static void hva_index_insert(struct pvm_memslot_table *t, uint32_t idx, uint32_t n)
{
	uint32_t pos = hva_lower_bound(t, t->store[idx].hva, t->store[idx].gpa, n);

	ARRAY_INSERT(t->hva_key, pos, n, t->store[idx].hva);
	ARRAY_INSERT(t->hva_idx, pos, n, idx);
	ARRAY_INSERT(t->hva_maxend, pos, n, 0);
	hva_maxend_update(t, pos, n + 1);
}

static void hva_index_remove(struct pvm_memslot_table *t, uint32_t idx, uint32_t n)
{
	uint32_t pos = hva_lower_bound(t, t->store[idx].hva, t->store[idx].gpa, n);

	ARRAY_REMOVE(t->hva_key, pos, n);
	ARRAY_REMOVE(t->hva_idx, pos, n);
	ARRAY_REMOVE(t->hva_maxend, pos, n);
	hva_maxend_update(t, pos, n - 1);
}

struct pvm_memslot *pvm_memslot_find_id(const struct pvm_memslot_table *t, uint32_t id)
{
	uint32_t pos = id_lower_bound(t, id, t->count);

	if (pos < t->count && t->id_key[pos] == id)
		return &t->store[t->id_idx[pos]];
	return NULL;
}

/* ---- lookups ---------------------------------------------------------------------------- */

/* GPA-index position of the slot holding @gpa, or UINT32_MAX, by a hinted search alone. */
static inline uint32_t search_gpa(const struct pvm_memslot_table *t, uint64_t gpa)
{
	uint32_t pos = gpa_upper_bound(t, gpa) - 1;   /* UINT32_MAX when none */

	if (pos == UINT32_MAX || gpa - t->gpa_key[pos] >= t->gpa_ent[pos].size)
		return UINT32_MAX;
	return pos;
}

uint32_t pvm_memslot_search_gpa(const struct pvm_memslot_table *t, uint64_t gpa)
{
	return search_gpa(t, gpa);
}

/* GPA-index position of the slot holding @gpa, or UINT32_MAX: the table's last-used cache
 * first, then a search (which refreshes it). Touches the key array and one 32-byte entry. */
static inline uint32_t find_gpa(const struct pvm_memslot_table *t, uint64_t gpa)
{
	struct pvm_memslot_table *mt = (struct pvm_memslot_table *)t;   /* the cache is mutable */
	uint32_t c = atomic_load_explicit(&mt->last_gpa, memory_order_relaxed);
	uint32_t pos;

	if (c < t->count && gpa - t->gpa_key[c] < t->gpa_ent[c].size)
		return c;
	pos = search_gpa(t, gpa);
	if (pos != UINT32_MAX)
		atomic_store_explicit(&mt->last_gpa, pos, memory_order_relaxed);
	return pos;
}

/* HVA-index position of the slot holding @hva with the lowest (hva, gpa), or count when none.
 * The first position whose prefix-maximum end exceeds @hva is that slot if it starts <= @hva;
 * otherwise every slot before it ends <= @hva and every slot after it starts > @hva. */
static uint32_t find_hva_pos(const struct pvm_memslot_table *t, uint64_t hva)
{
	struct pvm_memslot_table *mt = (struct pvm_memslot_table *)t;
	uint32_t c = atomic_load_explicit(&mt->last_hva, memory_order_relaxed);
	uint32_t lo;

	/* The cached position is the answer when it holds hva and nothing before it does. */
	if (c < t->count && t->hva_key[c] <= hva &&
	    hva - t->hva_key[c] < t->store[t->hva_idx[c]].size && (c == 0 || t->hva_maxend[c - 1] <= hva))
		return c;
	lo = upper_bound_u64(t->hva_maxend, t->count, hva);   /* the prefix maximum is sorted */
	if (lo == t->count || t->hva_key[lo] > hva)
		return t->count;
	atomic_store_explicit(&mt->last_hva, lo, memory_order_relaxed);
	return lo;
}

static void to_info(const struct pvm_memslot *s, struct pvm_memslot_info *out)
{
	out->id = s->id;
	out->flags = s->flags;
	out->gpa = s->gpa;
	out->size = s->size;
	out->hva = (void *)s->hva;
}

PVM_EXPORT int pvm_memslot_get(const struct pvm_memslot_table *t, uint32_t id,
			       struct pvm_memslot_info *out)
{
	const struct pvm_memslot *s = pvm_memslot_find_id(t, id);

	if (!s)
		return -ENOENT;
	to_info(s, out);
	return 0;
}

PVM_EXPORT int pvm_memslot_lookup_gpa(const struct pvm_memslot_table *t, uint64_t gpa,
				      struct pvm_memslot_info *out)
{
	uint32_t pos = find_gpa(t, gpa);

	if (pos == UINT32_MAX)
		return -ENOENT;
	to_info(&t->store[t->gpa_ent[pos].idx], out);
	return 0;
}

PVM_EXPORT void *pvm_memslot_gpa_to_hva(const struct pvm_memslot_table *t, uint64_t gpa)
{
	uint32_t pos = find_gpa(t, gpa);

	if (pos == UINT32_MAX)
		return NULL;
	return (void *)(t->gpa_ent[pos].hva + (uintptr_t)(gpa - t->gpa_key[pos]));
}

PVM_EXPORT int pvm_memslot_hva_to_gpa(const struct pvm_memslot_table *t, const void *hva, uint64_t *gpa)
{
	uint32_t pos = find_hva_pos(t, (uintptr_t)hva);
	const struct pvm_memslot *s;

	if (pos == t->count)
		return -ENOENT;
	s = &t->store[t->hva_idx[pos]];
	*gpa = s->gpa + ((uintptr_t)hva - s->hva);
	return 0;
}

/* The checks of pvm_memslot_translate() once the slot at GPA-index position @pos (UINT32_MAX:
 * none) is known; @access has only known bits. */
static inline int translate_at(const struct pvm_memslot_table *t, uint32_t pos, uint64_t gpa,
			       uint64_t len, unsigned access, void **hva)
{
	const struct pvm_memslot_gpa_ent *s = NULL;
	uint64_t off;

	if (pos == UINT32_MAX || len == 0)
		goto fault;
	s = &t->gpa_ent[pos];
	off = gpa - t->gpa_key[pos];
	/* off < size, so size - off cannot underflow; this also refuses a range that wraps. */
	if (len > s->size - off)
		goto fault;
	if (access & PVM_ACCESS_WRITE) {
		if (s->flags & PVM_MEMSLOT_F_READONLY)
			goto fault;
		if (s->dirty)
			pvm_memslot_dirty_mark(s->dirty, off >> PVM_MEMSLOT_PAGE_SHIFT,
					       (off + len - 1) >> PVM_MEMSLOT_PAGE_SHIFT);
	}
	*hva = (void *)(s->hva + (uintptr_t)off);
	return 0;
fault:
	PVM_TRACE(memslot_translate_fault, "gpa=0x%llx len=0x%llx access=0x%x slot=%d",
		  (unsigned long long)gpa, (unsigned long long)len, access,
		  s ? (int)t->store[s->idx].id : -1);
	return -EFAULT;
}

int pvm_memslot_translate_at(const struct pvm_memslot_table *t, uint32_t pos, uint64_t gpa, uint64_t len,
			     unsigned access, void **hva)
{
	return translate_at(t, pos, gpa, len, access, hva);
}

PVM_EXPORT int pvm_memslot_translate(const struct pvm_memslot_table *t, uint64_t gpa, uint64_t len,
				     unsigned access, void **hva)
{
	if (access & ~(PVM_ACCESS_READ | PVM_ACCESS_WRITE))
		return -EINVAL;
	return translate_at(t, find_gpa(t, gpa), gpa, len, access, hva);
}

PVM_EXPORT uint32_t pvm_memslot_count(const struct pvm_memslot_table *t)
{
	return t->count;
}

PVM_EXPORT uint32_t pvm_memslot_capacity(const struct pvm_memslot_table *t)
{
	return t->cap;
}

PVM_EXPORT uint32_t pvm_memslot_max(const struct pvm_memslot_table *t)
{
	return t->max;
}

PVM_EXPORT int pvm_memslot_free_id(const struct pvm_memslot_table *t, uint32_t *id)
{
	/* Ids are distinct and sorted, so id_key[i] >= i, with equality on a prefix: the first
	 * position where id_key[i] != i is the lowest free id. */
	uint32_t lo = 0, hi = t->count;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (t->id_key[mid] == mid)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo >= t->max)
		return -ENOSPC;
	*id = lo;
	return 0;
}

PVM_EXPORT int pvm_memslot_for_each(const struct pvm_memslot_table *t,
				    int (*fn)(void *opaque, const struct pvm_memslot_info *slot),
				    void *opaque)
{
	for (uint32_t i = 0; i < t->count; i++) {
		struct pvm_memslot_info info;
		int rc;

		to_info(&t->store[t->gpa_ent[i].idx], &info);
		rc = fn(opaque, &info);
		if (rc)
			return rc;
	}
	return 0;
}

/* ---- changes ---------------------------------------------------------------------------- */

/* True when [@gpa, @end) meets a slot other than @id. Slots do not overlap, so only the last
 * slot starting before @end can, or, when that one is @id itself (a move), the one before it. */
static bool overlaps(const struct pvm_memslot_table *t, uint32_t id, uint64_t gpa, uint64_t end)
{
	uint32_t pos = upper_bound_u64(t->gpa_key, t->count, end - 1);

	for (int k = 0; k < 2 && pos > 0; k++, pos--) {
		const struct pvm_memslot *s = &t->store[t->gpa_ent[pos - 1].idx];

		if (s->gpa + s->size <= gpa)
			return false;
		if (s->id != id)
			return true;
	}
	return false;
}

static int slot_create(struct pvm_memslot_table *t, uint32_t id, uint32_t flags, uint64_t gpa,
		       uint64_t size, uintptr_t hva, struct pvm_error *err)
{
	uint64_t *dirty = NULL;
	uint32_t idx = t->count;

	if ((flags & PVM_MEMSLOT_F_LOG_DIRTY) &&
	    pvm_memslot_dirty_new(size >> PVM_MEMSLOT_PAGE_SHIFT, &dirty) < 0)
		return pvm_error_set(err, -ENOMEM, "no memory for the dirty bitmap of slot %u", id);
	if (reserve_one(t) < 0) {
		pvm_memslot_dirty_free(dirty);
		return pvm_error_set(err, -ENOMEM, "no memory to grow the memslot table");
	}
	t->store[idx] = (struct pvm_memslot){ .gpa = gpa, .size = size, .hva = hva, .id = id,
					      .flags = flags, .dirty = dirty };
	gpa_index_insert(t, idx, idx);
	id_index_insert(t, idx, idx);
	hva_index_insert(t, idx, idx);
	t->count++;
	hint_refresh(t);
	pvm_memslot_changed(t, id);
	return 0;
}

/* Re-point the index entries of the slot at storage position @from to position @to. */
static void relocate(struct pvm_memslot_table *t, uint32_t from, uint32_t to)
{
	const struct pvm_memslot *s = &t->store[from];
	uint32_t pos;

	t->gpa_ent[gpa_index_pos(t, s->gpa, t->count)].idx = to;
	t->id_idx[id_lower_bound(t, s->id, t->count)] = to;
	pos = hva_lower_bound(t, s->hva, s->gpa, t->count);
	t->hva_idx[pos] = to;
	t->store[to] = *s;
}

static void slot_delete(struct pvm_memslot_table *t, struct pvm_memslot *s)
{
	uint32_t idx = (uint32_t)(s - t->store), n = t->count, last = n - 1, id = s->id;

	gpa_index_remove(t, idx, n);
	hva_index_remove(t, idx, n);
	id_index_remove(t, id_lower_bound(t, s->id, n), n);
	pvm_memslot_dirty_free(s->dirty);
	t->count = last;
	if (idx != last) {
		/* The indexes no longer hold idx; searches on the last slot's keys still work with
		 * count = last because that slot is still in all three indexes. */
		relocate(t, last, idx);
	}
	memset(&t->store[last], 0, sizeof(t->store[last]));
	hint_refresh(t);
	pvm_memslot_changed(t, id);
}

static void slot_move(struct pvm_memslot_table *t, struct pvm_memslot *s, uint64_t gpa)
{
	uint32_t idx = (uint32_t)(s - t->store), n = t->count;

	gpa_index_remove(t, idx, n);
	hva_index_remove(t, idx, n);
	s->gpa = gpa;
	gpa_index_insert(t, idx, n - 1);
	hva_index_insert(t, idx, n - 1);
	hint_refresh(t);
	pvm_memslot_changed(t, s->id);
}

static int slot_flags(struct pvm_memslot_table *t, struct pvm_memslot *s, uint32_t flags,
		      struct pvm_error *err)
{
	struct pvm_memslot_gpa_ent *e = &t->gpa_ent[gpa_index_pos(t, s->gpa, t->count)];

	if ((flags & PVM_MEMSLOT_F_LOG_DIRTY) && !s->dirty &&
	    pvm_memslot_dirty_new(s->size >> PVM_MEMSLOT_PAGE_SHIFT, &s->dirty) < 0)
		return pvm_error_set(err, -ENOMEM, "no memory for the dirty bitmap of slot %u", s->id);
	if (!(flags & PVM_MEMSLOT_F_LOG_DIRTY)) {
		pvm_memslot_dirty_free(s->dirty);
		s->dirty = NULL;
	}
	s->flags = flags;
	e->flags = flags;
	e->dirty = s->dirty;
	pvm_memslot_changed(t, s->id);
	return 0;
}

static int set_checked(struct pvm_memslot_table *t, uint32_t id, uint32_t flags, uint64_t gpa,
		       uint64_t size, void *hva_ptr, struct pvm_error *err)
{
	uintptr_t hva = (uintptr_t)hva_ptr, hva_end;
	uint64_t end;
	struct pvm_memslot *old;

	/* The ladder of kvm_set_memory_region(), in its order. */
	if (flags & ~VALID_FLAGS)
		return pvm_error_set(err, -EINVAL, "unknown memslot flags 0x%x", flags & ~VALID_FLAGS);
	if (size & (PVM_MEMSLOT_PAGE_SIZE - 1))
		return pvm_error_set(err, -EINVAL, "memslot size 0x%llx is not page aligned",
				     (unsigned long long)size);
	if (gpa & (PVM_MEMSLOT_PAGE_SIZE - 1))
		return pvm_error_set(err, -EINVAL, "memslot gpa 0x%llx is not page aligned",
				     (unsigned long long)gpa);
	if (hva & (PVM_MEMSLOT_PAGE_SIZE - 1))
		return pvm_error_set(err, -EINVAL, "memslot host address %p is not page aligned", hva_ptr);
	/* KVM's access_ok(): the host range must not wrap. NULL is refused too (a pvmem choice:
	 * gpa_to_hva() uses NULL for "no slot"). */
	if (size && (size > UINTPTR_MAX || hva == 0 || pvm_add_overflow(hva, (uintptr_t)size, &hva_end)))
		return pvm_error_set(err, -EINVAL, "memslot host range %p+0x%llx is invalid", hva_ptr,
				     (unsigned long long)size);
	if (id >= t->max)
		return pvm_error_set(err, -EINVAL, "memslot id %u is out of range (max %u)", id, t->max);
	if (pvm_add_overflow(gpa, size, &end))
		return pvm_error_set(err, -EINVAL, "memslot 0x%llx+0x%llx wraps around",
				     (unsigned long long)gpa, (unsigned long long)size);
	if ((size >> PVM_MEMSLOT_PAGE_SHIFT) > PVM_MEMSLOT_MAX_PAGES)
		return pvm_error_set(err, -EINVAL, "memslot of 0x%llx bytes has too many pages",
				     (unsigned long long)size);

	old = pvm_memslot_find_id(t, id);
	if (size == 0) {
		if (!old)
			return pvm_error_set(err, -EINVAL, "memslot %u does not exist", id);
		slot_delete(t, old);
		return 0;
	}
	/* (KVM also refuses a create that overflows the total page count; with at most 32764
	 * slots of < 2^31 pages the total fits 64 bits, so that check cannot fire here.) */
	if (!old) {
		if (overlaps(t, id, gpa, end))
			return pvm_error_set(err, -EEXIST, "memslot %u at 0x%llx+0x%llx overlaps another slot",
					     id, (unsigned long long)gpa, (unsigned long long)size);
		return slot_create(t, id, flags, gpa, size, hva, err);
	}
	if (hva != old->hva || size != old->size || ((flags ^ old->flags) & PVM_MEMSLOT_F_READONLY))
		return pvm_error_set(err, -EINVAL,
				     "memslot %u: only the gpa and LOG_DIRTY may change (size, host address "
				     "and READONLY are fixed)", id);
	if (gpa != old->gpa) {
		if (overlaps(t, id, gpa, end))
			return pvm_error_set(err, -EEXIST, "memslot %u moved to 0x%llx+0x%llx overlaps another slot",
					     id, (unsigned long long)gpa, (unsigned long long)size);
		/* As KVM, a move may also toggle LOG_DIRTY (the bitmap is kept when it stays on).
		 * The flags go first: it is the only step that can fail. */
		if (flags != old->flags) {
			int rc = slot_flags(t, old, flags, err);

			if (rc < 0)
				return rc;
		}
		slot_move(t, old, gpa);
		return 0;
	}
	if (flags != old->flags)
		return slot_flags(t, old, flags, err);
	return 0;   /* identical request: nothing to do */
}

PVM_EXPORT int pvm_memslot_set(struct pvm_memslot_table *t, uint32_t id, uint32_t flags,
			       uint64_t gpa, uint64_t size, void *hva, struct pvm_error *err)
{
	int rc;

	PVM_TRACE(memslot_set, "id=%u flags=0x%x gpa=0x%llx size=0x%llx hva=%p", id, flags,
		  (unsigned long long)gpa, (unsigned long long)size, hva);
	rc = set_checked(t, id, flags, gpa, size, hva, err);
	PVM_TRACE(memslot_set_done, "id=%u rc=%d count=%u cap=%u", id, rc, t->count, t->cap);
	return rc;
}

PVM_EXPORT int pvm_memslot_add(struct pvm_memslot_table *t, uint32_t id, uint32_t flags,
			       uint64_t gpa, uint64_t size, void *hva, struct pvm_error *err)
{
	if (id < t->max && pvm_memslot_find_id(t, id))
		return pvm_error_set(err, -EEXIST, "memslot %u is already in use", id);
	if (size == 0)
		return pvm_error_set(err, -EINVAL, "memslot %u: size 0", id);
	return pvm_memslot_set(t, id, flags, gpa, size, hva, err);
}

PVM_EXPORT int pvm_memslot_delete(struct pvm_memslot_table *t, uint32_t id, struct pvm_error *err)
{
	return pvm_memslot_set(t, id, 0, 0, 0, NULL, err);
}

PVM_EXPORT int pvm_memslot_move(struct pvm_memslot_table *t, uint32_t id, uint64_t new_gpa,
				struct pvm_error *err)
{
	const struct pvm_memslot *s = id < t->max ? pvm_memslot_find_id(t, id) : NULL;

	if (!s)
		return pvm_error_set(err, -ENOENT, "memslot %u does not exist", id);
	return pvm_memslot_set(t, id, s->flags, new_gpa, s->size, (void *)s->hva, err);
}

PVM_EXPORT int pvm_memslot_set_flags(struct pvm_memslot_table *t, uint32_t id, uint32_t flags,
				     struct pvm_error *err)
{
	const struct pvm_memslot *s = id < t->max ? pvm_memslot_find_id(t, id) : NULL;

	if (!s)
		return pvm_error_set(err, -ENOENT, "memslot %u does not exist", id);
	return pvm_memslot_set(t, id, flags, s->gpa, s->size, (void *)s->hva, err);
}

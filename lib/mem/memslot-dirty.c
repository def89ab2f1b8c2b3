/* SPDX-License-Identifier: MIT */
/*
 * Per-slot dirty bitmaps (KVM_MEM_LOG_DIRTY_PAGES): one bit per 4 KiB page, set by WRITE
 * translations and read (optionally cleared) by pvm_memslot_get_dirty_log(). Translations run
 * concurrently with each other and with the dirty-log reader, so every word is accessed with
 * atomics: marks are fetch-or, a clearing read is an exchange, and no mark is ever lost between
 * a read and its clear.
 */
#include <errno.h>

#include "mem/memslot-priv.h"

int pvm_memslot_dirty_new(uint64_t npages, uint64_t **out)
{
	/* npages < 2^31, so the word count and the byte size cannot overflow. */
	*out = pvm_calloc(PVM_DIV_ROUND_UP(npages, 64), sizeof(uint64_t));
	return *out ? 0 : -ENOMEM;
}

void pvm_memslot_dirty_free(uint64_t *bitmap)
{
	pvm_free(bitmap);
}

static inline uint64_t mask_from(uint64_t bit)
{
	return ~0ULL << (bit & 63);
}

static inline uint64_t mask_to(uint64_t bit)   /* bits 0..bit (inclusive) of the word */
{
	return ~0ULL >> (63 - (bit & 63));
}

void pvm_memslot_dirty_mark(uint64_t *bitmap, uint64_t first, uint64_t last)
{
	uint64_t w = first / 64, lw = last / 64;

	if (w == lw) {
		uint64_t m = mask_from(first) & mask_to(last);

		/* A page written again is usually dirty already: a plain load avoids the locked op. */
		if ((__atomic_load_n(&bitmap[w], __ATOMIC_RELAXED) & m) != m)
			__atomic_fetch_or(&bitmap[w], m, __ATOMIC_RELAXED);
		return;
	}
	__atomic_fetch_or(&bitmap[w], mask_from(first), __ATOMIC_RELAXED);
	for (w++; w < lw; w++)
		__atomic_store_n(&bitmap[w], ~0ULL, __ATOMIC_RELAXED);
	__atomic_fetch_or(&bitmap[lw], mask_to(last), __ATOMIC_RELAXED);
}

PVM_EXPORT int pvm_memslot_get_dirty_log(struct pvm_memslot_table *t, uint32_t id, uint64_t *bitmap,
					 uint64_t nwords, bool clear)
{
	const struct pvm_memslot *s = pvm_memslot_find_id(t, id);
	uint64_t need;

	PVM_TRACE(memslot_get_dirty_log, "id=%u nwords=%llu clear=%d", id, (unsigned long long)nwords,
		  clear);
	if (!s)
		return -ENOENT;
	if (!(s->flags & PVM_MEMSLOT_F_LOG_DIRTY) || !s->dirty)
		return -EINVAL;
	need = PVM_DIV_ROUND_UP(s->size >> PVM_MEMSLOT_PAGE_SHIFT, 64);
	if (nwords < need || !bitmap)
		return -EINVAL;
	for (uint64_t w = 0; w < need; w++) {
		/* Skip the locked exchange for clean words (the common case in a mostly idle guest). */
		uint64_t v = __atomic_load_n(&s->dirty[w], __ATOMIC_RELAXED);

		if (clear && v)
			v = __atomic_exchange_n(&s->dirty[w], 0, __ATOMIC_RELAXED);
		bitmap[w] = v;
	}
	return 0;
}

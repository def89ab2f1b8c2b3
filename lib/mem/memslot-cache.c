/* SPDX-License-Identifier: MIT */
/*
 * Per-user lookup caches (include/pvmem/memslot.h): the out-of-line halves of the inline
 * lookups, and push invalidation. The table keeps its caches in a list; every change to slot
 * X empties the caches holding X (and only those: slots never overlap, so a change to another
 * slot cannot make a cached copy of X wrong). The generation counter is kept here too.
 *
 * Threads: a cache's contents are written by its owner on a miss and by the table's changes;
 * changes never overlap lookups (the table's rule), so those writes never race. The list
 * itself is changed by cache_new/cache_free from any thread and walked by changes: cache_lock
 * protects it.
 */
#include <errno.h>
#include <string.h>

#include "mem/memslot-priv.h"

#define KNOWN_ACCESS (PVM_ACCESS_READ | PVM_ACCESS_WRITE)

PVM_EXPORT uint64_t pvm_memslot_generation(const struct pvm_memslot_table *t)
{
	return t->gen;
}

void pvm_memslot_changed(struct pvm_memslot_table *t, uint32_t id)
{
	t->gen++;
	pthread_mutex_lock(&t->cache_lock);
	for (struct pvm_memslot_cache *c = t->caches; c; c = c->next)
		if (c->size && c->id == id)
			c->size = 0;
	pthread_mutex_unlock(&t->cache_lock);
}

void pvm_memslot_cache_detach_all(struct pvm_memslot_table *t)
{
	struct pvm_memslot_cache *c, *next;

	pthread_mutex_lock(&t->cache_lock);
	for (c = t->caches; c; c = next) {
		next = c->next;
		c->size = 0;
		c->table = NULL;
		c->prev = c->next = NULL;
	}
	t->caches = NULL;
	pthread_mutex_unlock(&t->cache_lock);
}

PVM_EXPORT int pvm_memslot_cache_new(struct pvm_memslot_table *t, struct pvm_memslot_cache **out)
{
	struct pvm_memslot_cache *c = pvm_calloc(1, sizeof(*c));

	*out = NULL;
	if (!c)
		return -ENOMEM;
	c->table = t;
	pthread_mutex_lock(&t->cache_lock);
	c->next = t->caches;
	if (c->next)
		c->next->prev = c;
	t->caches = c;
	pthread_mutex_unlock(&t->cache_lock);
	PVM_TRACE(memslot_cache_new, "cache=%p", (void *)c);
	*out = c;
	return 0;
}

PVM_EXPORT void pvm_memslot_cache_free(struct pvm_memslot_cache *c)
{
	struct pvm_memslot_table *t;

	if (!c)
		return;
	t = c->table;
	if (t) {
		pthread_mutex_lock(&t->cache_lock);
		if (c->prev)
			c->prev->next = c->next;
		else
			t->caches = c->next;
		if (c->next)
			c->next->prev = c->prev;
		pthread_mutex_unlock(&t->cache_lock);
	}
	PVM_TRACE(memslot_cache_free, "cache=%p", (void *)c);
	pvm_free(c);
}

/* Copy the slot at GPA-index position @pos into @c. */
static void fill(struct pvm_memslot_cache *c, const struct pvm_memslot_table *t, uint32_t pos)
{
	const struct pvm_memslot_gpa_ent *e = &t->gpa_ent[pos];

	c->gpa = t->gpa_key[pos];
	c->size = e->size;
	c->hva = e->hva;
	c->id = t->store[e->idx].id;
	c->pos = pos;
	/* Writes to a read-only slot are refused, writes to a logged one are marked: both by the
	 * library. Unknown bits are refused there too. */
	c->slow_access = ~(uint32_t)KNOWN_ACCESS;
	if (e->flags & (PVM_MEMSLOT_F_READONLY | PVM_MEMSLOT_F_LOG_DIRTY))
		c->slow_access |= PVM_ACCESS_WRITE;
}

PVM_EXPORT void *pvm_memslot_cache_gpa_to_hva_miss(struct pvm_memslot_cache *c, uint64_t gpa)
{
	const struct pvm_memslot_table *t = c->table;
	uint32_t pos;

	if (!t)
		return NULL;
	pos = pvm_memslot_search_gpa(t, gpa);
	if (pos == UINT32_MAX)
		return NULL;
	fill(c, t, pos);
	return (void *)(c->hva + (uintptr_t)(gpa - c->gpa));
}

PVM_EXPORT int pvm_memslot_cache_translate_miss(struct pvm_memslot_cache *c, uint64_t gpa,
						uint64_t len, unsigned access, void **hva)
{
	const struct pvm_memslot_table *t = c->table;
	uint32_t pos = c->pos;

	if (access & ~KNOWN_ACCESS)
		return -EINVAL;
	if (!t) {
		PVM_TRACE(memslot_translate_fault,
			  "gpa=0x%llx len=0x%llx access=0x%x detached cache",
			  (unsigned long long)gpa, (unsigned long long)len, access);
		return -EFAULT;
	}
	/* A write to a logged slot lands here on every call: reuse the cached position when the
	 * slot there holds gpa (checked against the table, not the cache), instead of searching. */
	if (c->size && pos < t->count && gpa - t->gpa_key[pos] < t->gpa_ent[pos].size) {
		if (t->gpa_key[pos] != c->gpa)
			fill(c, t, pos);
	} else {
		pos = pvm_memslot_search_gpa(t, gpa);
		if (pos != UINT32_MAX)
			fill(c, t, pos);
	}
	return pvm_memslot_translate_at(t, pos, gpa, len, access, hva);
}

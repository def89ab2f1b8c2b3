/* SPDX-License-Identifier: MIT */
/*
 * The discard manager: one source (what is populated), many listeners (who mirror it), and the
 * notification contract of include/pvmem/discard.h (populate before, with rollback; discard
 * before freeing; replay on registration; discard of the section on unregistration).
 */
#include <errno.h>

#include <pvmem/discard.h>
#include "core/util.h"

struct pvm_discard_listener {
	struct pvm_discard_manager *m;            /* the manager it is registered with */
	struct pvm_discard_listener_ops ops;       /* its callbacks */
	void *opaque;                             /* passed to them */
	uint64_t start;                           /* section start (gpa, granularity-aligned) */
	uint64_t end;                             /* section end (exclusive) */
	struct pvm_discard_listener *next;        /* registration order */
};

struct pvm_discard_manager {
	uint64_t base;                            /* first gpa covered */
	uint64_t size;                            /* bytes covered */
	uint64_t gran;                            /* granularity (power of two) */
	struct pvm_discard_source_ops ops;        /* the source */
	void *opaque;                             /* the source's */
	struct pvm_discard_listener *head;        /* listeners, registration order */
	unsigned nlisteners;                      /* length of the list */
};

int pvm_discard_manager_new(uint64_t base, uint64_t size, uint64_t granularity,
			    const struct pvm_discard_source_ops *ops, void *opaque,
			    struct pvm_discard_manager **out, struct pvm_error *err)
{
	struct pvm_discard_manager *m;

	*out = NULL;
	if (!ops || !ops->is_populated || !ops->replay_populated)
		return pvm_error_set(err, -EINVAL, "discard source lacks is_populated/replay_populated");
	if (!PVM_IS_POW2(granularity) || granularity < 4096)
		return pvm_error_set(err, -EINVAL, "granularity 0x%llx is not a power of two >= 4 KiB",
				     (unsigned long long)granularity);
	if (!size || !PVM_IS_ALIGNED(base, granularity) || !PVM_IS_ALIGNED(size, granularity) ||
	    pvm_range_wraps(base, size))
		return pvm_error_set(err, -EINVAL, "range 0x%llx+0x%llx is empty, unaligned or wraps",
				     (unsigned long long)base, (unsigned long long)size);
	m = pvm_calloc(1, sizeof(*m));
	if (!m)
		return pvm_error_set(err, -ENOMEM, "out of memory");
	m->base = base;
	m->size = size;
	m->gran = granularity;
	m->ops = *ops;
	m->opaque = opaque;
	*out = m;
	return 0;
}

void pvm_discard_manager_free(struct pvm_discard_manager *m)
{
	if (!m)
		return;
	while (m->head)
		pvm_discard_listener_unregister(m->head);
	pvm_free(m);
}

uint64_t pvm_discard_manager_base(const struct pvm_discard_manager *m) { return m->base; }
uint64_t pvm_discard_manager_size(const struct pvm_discard_manager *m) { return m->size; }
uint64_t pvm_discard_manager_granularity(const struct pvm_discard_manager *m) { return m->gran; }
unsigned pvm_discard_manager_listener_count(const struct pvm_discard_manager *m)
{
	return m->nlisteners;
}

bool pvm_discard_manager_is_populated(const struct pvm_discard_manager *m, uint64_t gpa,
				      uint64_t size)
{
	return m->ops.is_populated(m->opaque, gpa, size);
}

int pvm_discard_manager_replay_populated(const struct pvm_discard_manager *m, uint64_t gpa,
					 uint64_t size, pvm_discard_range_fn fn, void *arg)
{
	return m->ops.replay_populated(m->opaque, gpa, size, fn, arg);
}

/* A granularity-aligned range inside the manager? */
static bool range_ok(const struct pvm_discard_manager *m, uint64_t gpa, uint64_t size)
{
	return size && PVM_IS_ALIGNED(gpa, m->gran) && PVM_IS_ALIGNED(size, m->gran) &&
	       !pvm_range_wraps(gpa, size) && gpa >= m->base && gpa - m->base <= m->size &&
	       size <= m->size - (gpa - m->base);
}

/* Clip [gpa, gpa+size) to the listener's section; false when nothing is left. */
static bool clip(const struct pvm_discard_listener *l, uint64_t gpa, uint64_t size,
		 uint64_t *cs, uint64_t *csize)
{
	uint64_t s = PVM_MAX(gpa, l->start), e = PVM_MIN(gpa + size, l->end);

	if (s >= e)
		return false;
	*cs = s;
	*csize = e - s;
	return true;
}

/* Replay callback: one populated run from the source, aligned out and clipped to the section. */
static int replay_one(void *arg, uint64_t gpa, uint64_t size)
{
	struct pvm_discard_listener *l = arg;
	uint64_t g = l->m->gran, s, e, cs, csize;
	int rc;

	if (!size || pvm_range_wraps(gpa, size))
		return 0;
	s = PVM_ALIGN_DOWN(gpa, g);
	e = gpa + size;
	e = e > UINT64_MAX - g ? PVM_ALIGN_DOWN(e, g) : PVM_ALIGN_UP(e, g);
	if (!clip(l, s, e - s, &cs, &csize))
		return 0;
	rc = l->ops.populate(l->opaque, cs, csize);
	return rc > 0 ? -EIO : rc;
}

static int replay_listener(struct pvm_discard_listener *l)
{
	int rc = l->m->ops.replay_populated(l->m->opaque, l->start, l->end - l->start, replay_one, l);

	return rc > 0 ? -EIO : rc;
}

int pvm_discard_manager_register(struct pvm_discard_manager *m, uint64_t gpa, uint64_t size,
				 const struct pvm_discard_listener_ops *ops, void *opaque,
				 struct pvm_discard_listener **out, struct pvm_error *err)
{
	struct pvm_discard_listener *l, **pp;
	int rc;

	*out = NULL;
	if (!ops || !ops->populate || !ops->discard)
		return pvm_error_set(err, -EINVAL, "listener lacks populate/discard");
	if (!range_ok(m, gpa, size))
		return pvm_error_set(err, -EINVAL,
				     "section 0x%llx+0x%llx is not an aligned part of 0x%llx+0x%llx",
				     (unsigned long long)gpa, (unsigned long long)size,
				     (unsigned long long)m->base, (unsigned long long)m->size);
	l = pvm_calloc(1, sizeof(*l));
	if (!l)
		return pvm_error_set(err, -ENOMEM, "out of memory");
	l->m = m;
	l->ops = *ops;
	l->opaque = opaque;
	l->start = gpa;
	l->end = gpa + size;
	for (pp = &m->head; *pp; pp = &(*pp)->next)
		;
	*pp = l;
	m->nlisteners++;
	rc = replay_listener(l);
	PVM_TRACE(discard_register, "gpa=0x%llx size=0x%llx rc=%d", (unsigned long long)gpa,
		  (unsigned long long)size, rc);
	if (rc) {
		pvm_discard_listener_unregister(l);   /* discards the section, unlinks, frees */
		return pvm_error_set(err, rc, "listener refused the replay of populated memory");
	}
	*out = l;
	return 0;
}

void pvm_discard_listener_unregister(struct pvm_discard_listener *l)
{
	struct pvm_discard_manager *m;
	struct pvm_discard_listener **pp;

	if (!l)
		return;
	m = l->m;
	l->ops.discard(l->opaque, l->start, l->end - l->start);
	for (pp = &m->head; *pp && *pp != l; pp = &(*pp)->next)
		;
	if (*pp) {
		*pp = l->next;
		m->nlisteners--;
	}
	PVM_TRACE(discard_unregister, "gpa=0x%llx size=0x%llx", (unsigned long long)l->start,
		  (unsigned long long)(l->end - l->start));
	pvm_free(l);
}

/* Discard [gpa, gpa+size) to every listener from the head up to (not including) @stop. */
static void discard_until(struct pvm_discard_manager *m, struct pvm_discard_listener *stop,
			  uint64_t gpa, uint64_t size)
{
	uint64_t cs, csize;

	for (struct pvm_discard_listener *l = m->head; l && l != stop; l = l->next)
		if (clip(l, gpa, size, &cs, &csize))
			l->ops.discard(l->opaque, cs, csize);
}

int pvm_discard_manager_notify_populate(struct pvm_discard_manager *m, uint64_t gpa,
					uint64_t size, struct pvm_error *err)
{
	uint64_t cs, csize;
	int rc = 0;

	PVM_TRACE(discard_notify_populate, "gpa=0x%llx size=0x%llx", (unsigned long long)gpa,
		  (unsigned long long)size);
	if (!range_ok(m, gpa, size))
		return pvm_error_set(err, -EINVAL, "populate range 0x%llx+0x%llx is invalid",
				     (unsigned long long)gpa, (unsigned long long)size);
	for (struct pvm_discard_listener *l = m->head; l; l = l->next) {
		if (!clip(l, gpa, size, &cs, &csize))
			continue;
		rc = l->ops.populate(l->opaque, cs, csize);
		if (rc) {
			rc = rc > 0 ? -EIO : rc;
			discard_until(m, l, gpa, size);
			PVM_TRACE(discard_notify_populate_refused, "gpa=0x%llx rc=%d",
				  (unsigned long long)gpa, rc);
			return pvm_error_set(err, rc, "a discard listener refused to populate 0x%llx+0x%llx",
					     (unsigned long long)cs, (unsigned long long)csize);
		}
	}
	return 0;
}

int pvm_discard_manager_notify_discard(struct pvm_discard_manager *m, uint64_t gpa, uint64_t size)
{
	PVM_TRACE(discard_notify_discard, "gpa=0x%llx size=0x%llx", (unsigned long long)gpa,
		  (unsigned long long)size);
	if (!range_ok(m, gpa, size))
		return -EINVAL;
	discard_until(m, NULL, gpa, size);
	return 0;
}

void pvm_discard_manager_notify_discard_all(struct pvm_discard_manager *m)
{
	PVM_TRACE(discard_notify_discard_all, "base=0x%llx", (unsigned long long)m->base);
	for (struct pvm_discard_listener *l = m->head; l; l = l->next)
		l->ops.discard(l->opaque, l->start, l->end - l->start);
}

int pvm_discard_manager_replay_to_listeners(struct pvm_discard_manager *m, struct pvm_error *err)
{
	for (struct pvm_discard_listener *l = m->head; l; l = l->next) {
		int rc = replay_listener(l);

		if (rc) {
			/* Undo: every listener up to and including this one drops its section. */
			discard_until(m, l->next, m->base, m->size);
			return pvm_error_set(err, rc, "a discard listener refused the replay");
		}
	}
	return 0;
}

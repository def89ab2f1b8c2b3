/* SPDX-License-Identifier: MIT */
/*
 * The discard policy: four counted votes with QEMU's -EBUSY conflict rules
 * (research balloon-discard-memslots.md §1.4), per machine, with checked releases.
 */
#include <errno.h>
#include <pthread.h>

#include <pvmem/discard.h>
#include "core/util.h"

struct pvm_discard_policy {
	pthread_mutex_t lock;                        /* serialises take/release */
	atomic_uint count[PVM_DISCARD_NVOTES];       /* votes held, per kind (atomic for queries) */
};

/* For each vote, the kinds whose being held makes it fail with -EBUSY (bit per kind). */
#define VB(v) (1u << (v))
static const unsigned conflicts[PVM_DISCARD_NVOTES] = {
	[PVM_DISCARD_REQUIRE] = VB(PVM_DISCARD_DISABLE) | VB(PVM_DISCARD_DISABLE_UNCOORDINATED),
	[PVM_DISCARD_REQUIRE_COORDINATED] = VB(PVM_DISCARD_DISABLE),
	[PVM_DISCARD_DISABLE] = VB(PVM_DISCARD_REQUIRE) | VB(PVM_DISCARD_REQUIRE_COORDINATED),
	[PVM_DISCARD_DISABLE_UNCOORDINATED] = VB(PVM_DISCARD_REQUIRE),
};

static const char *const vote_names[PVM_DISCARD_NVOTES] = {
	[PVM_DISCARD_REQUIRE] = "require",
	[PVM_DISCARD_REQUIRE_COORDINATED] = "require-coordinated",
	[PVM_DISCARD_DISABLE] = "disable",
	[PVM_DISCARD_DISABLE_UNCOORDINATED] = "disable-uncoordinated",
};

static bool vote_valid(enum pvm_discard_vote v)
{
	return (unsigned)v < PVM_DISCARD_NVOTES;
}

const char *pvm_discard_vote_name(enum pvm_discard_vote vote)
{
	return vote_valid(vote) ? vote_names[vote] : "?";
}

int pvm_discard_policy_new(struct pvm_discard_policy **out)
{
	struct pvm_discard_policy *p = pvm_calloc(1, sizeof(*p));

	*out = NULL;
	if (!p)
		return -ENOMEM;
	pthread_mutex_init(&p->lock, NULL);
	for (unsigned i = 0; i < PVM_DISCARD_NVOTES; i++)
		atomic_init(&p->count[i], 0);
	*out = p;
	return 0;
}

void pvm_discard_policy_free(struct pvm_discard_policy *p)
{
	if (!p)
		return;
	for (unsigned i = 0; i < PVM_DISCARD_NVOTES; i++) {
		unsigned n = atomic_load(&p->count[i]);

		if (n)
			pvm_warn("discard policy freed with %u %s vote(s) held", n, vote_names[i]);
	}
	pthread_mutex_destroy(&p->lock);
	pvm_free(p);
}

int pvm_discard_policy_take(struct pvm_discard_policy *p, enum pvm_discard_vote vote,
			    struct pvm_error *err)
{
	int rc = 0;

	if (!vote_valid(vote))
		return pvm_error_set(err, -EINVAL, "unknown discard vote %d", (int)vote);
	pthread_mutex_lock(&p->lock);
	for (unsigned i = 0; i < PVM_DISCARD_NVOTES; i++) {
		if ((conflicts[vote] & VB(i)) && atomic_load(&p->count[i])) {
			rc = pvm_error_set(err, -EBUSY, "cannot %s discarding of RAM: %s is held",
					   vote_names[vote], vote_names[i]);
			break;
		}
	}
	if (!rc && atomic_load(&p->count[vote]) == UINT32_MAX)
		rc = pvm_error_set(err, -EOVERFLOW, "too many %s votes", vote_names[vote]);
	if (!rc)
		atomic_fetch_add(&p->count[vote], 1);
	pthread_mutex_unlock(&p->lock);
	PVM_TRACE(discard_vote_take, "vote=%s rc=%d", vote_names[vote], rc);
	return rc;
}

int pvm_discard_policy_release(struct pvm_discard_policy *p, enum pvm_discard_vote vote)
{
	int rc = 0;

	if (!vote_valid(vote))
		return -EINVAL;
	pthread_mutex_lock(&p->lock);
	if (atomic_load(&p->count[vote]) == 0)
		rc = -EINVAL;   /* a release of a vote never taken: refuse, never underflow */
	else
		atomic_fetch_sub(&p->count[vote], 1);
	pthread_mutex_unlock(&p->lock);
	if (rc)
		pvm_warn("release of a %s discard vote that is not held", vote_names[vote]);
	PVM_TRACE(discard_vote_release, "vote=%s rc=%d", vote_names[vote], rc);
	return rc;
}

static unsigned cnt(const struct pvm_discard_policy *p, enum pvm_discard_vote v)
{
	return atomic_load_explicit(&((struct pvm_discard_policy *)p)->count[v], memory_order_acquire);
}

bool pvm_discard_policy_is_disabled(const struct pvm_discard_policy *p)
{
	return cnt(p, PVM_DISCARD_DISABLE) || cnt(p, PVM_DISCARD_DISABLE_UNCOORDINATED);
}

bool pvm_discard_policy_is_coordinated_disabled(const struct pvm_discard_policy *p)
{
	return cnt(p, PVM_DISCARD_DISABLE) != 0;
}

bool pvm_discard_policy_is_required(const struct pvm_discard_policy *p)
{
	return cnt(p, PVM_DISCARD_REQUIRE) || cnt(p, PVM_DISCARD_REQUIRE_COORDINATED);
}

void pvm_discard_policy_counts(const struct pvm_discard_policy *p, struct pvm_discard_counts *out)
{
	struct pvm_discard_policy *mp = (struct pvm_discard_policy *)p;

	pthread_mutex_lock(&mp->lock);
	for (unsigned i = 0; i < PVM_DISCARD_NVOTES; i++)
		out->count[i] = atomic_load(&mp->count[i]);
	pthread_mutex_unlock(&mp->lock);
}

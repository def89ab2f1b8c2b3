/* SPDX-License-Identifier: MIT */
/*
 * A fake discard source for tests, benchmarks and fuzzing: a virtio-mem-like device with one
 * byte per block ("plugged") and one per block of "host memory", that follows the ordering
 * contract of include/pvmem/discard.h:
 *   plug:   notify_populate -> allocate host memory -> set plugged
 *   unplug: notify_discard  -> free host memory     -> clear plugged
 * Header-only (no cmocka) so that the fuzz harness and the benchmark can use it too.
 */
#ifndef PVM_TEST_DISCARD_FAKE_H
#define PVM_TEST_DISCARD_FAKE_H

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <pvmem/discard.h>

struct fake_src {
	uint64_t base;                     /* first gpa */
	uint64_t size;                     /* bytes */
	uint64_t gran;                     /* block size */
	uint64_t nblocks;                  /* size / gran */
	unsigned char *plugged;            /* per block: device state (the bitmap) */
	unsigned char *host;               /* per block: host memory allocated */
	struct pvm_discard_manager *m;     /* the manager this source feeds */
};

static inline bool fake_is_populated(void *opaque, uint64_t gpa, uint64_t size)
{
	struct fake_src *f = opaque;
	uint64_t first, last;

	if (!size || gpa < f->base || gpa - f->base >= f->size || size > f->size - (gpa - f->base))
		return false;
	first = (gpa - f->base) / f->gran;
	last = (gpa - f->base + size - 1) / f->gran;
	for (uint64_t b = first; b <= last; b++)
		if (!f->plugged[b])
			return false;
	return true;
}

static inline int fake_replay(void *opaque, uint64_t gpa, uint64_t size, pvm_discard_range_fn fn,
			      void *arg)
{
	struct fake_src *f = opaque;
	uint64_t first = (gpa - f->base) / f->gran, end = (gpa - f->base + size) / f->gran;

	for (uint64_t b = first; b < end && b < f->nblocks;) {
		uint64_t e = b;
		int rc;

		if (!f->plugged[b]) {
			b++;
			continue;
		}
		while (e < end && e < f->nblocks && f->plugged[e])
			e++;
		rc = fn(arg, f->base + b * f->gran, (e - b) * f->gran);
		if (rc)
			return rc;
		b = e;
	}
	return 0;
}

static const struct pvm_discard_source_ops fake_ops = {
	.is_populated = fake_is_populated,
	.replay_populated = fake_replay,
};

static inline int fake_src_init(struct fake_src *f, uint64_t base, uint64_t size, uint64_t gran)
{
	memset(f, 0, sizeof(*f));
	f->base = base;
	f->size = size;
	f->gran = gran;
	f->nblocks = size / gran;
	f->plugged = calloc(f->nblocks ? f->nblocks : 1, 1);
	f->host = calloc(f->nblocks ? f->nblocks : 1, 1);
	if (!f->plugged || !f->host)
		return -ENOMEM;
	return pvm_discard_manager_new(base, size, gran, &fake_ops, f, &f->m, NULL);
}

static inline void fake_src_fini(struct fake_src *f)
{
	pvm_discard_manager_free(f->m);
	free(f->plugged);
	free(f->host);
	memset(f, 0, sizeof(*f));
}

/* Plug [gpa, gpa+size) (blocks must all be unplugged): 0, or the listeners' refusal with
 * nothing changed. */
static inline int fake_plug(struct fake_src *f, uint64_t gpa, uint64_t size)
{
	uint64_t first = (gpa - f->base) / f->gran, n = size / f->gran;
	int rc;

	for (uint64_t b = first; b < first + n; b++)
		if (f->plugged[b])
			return -EINVAL;
	rc = pvm_discard_manager_notify_populate(f->m, gpa, size, NULL);
	if (rc)
		return rc;
	memset(f->host + first, 1, n);
	memset(f->plugged + first, 1, n);
	return 0;
}

/* Unplug [gpa, gpa+size) (blocks must all be plugged). */
static inline int fake_unplug(struct fake_src *f, uint64_t gpa, uint64_t size)
{
	uint64_t first = (gpa - f->base) / f->gran, n = size / f->gran;
	int rc;

	for (uint64_t b = first; b < first + n; b++)
		if (!f->plugged[b])
			return -EINVAL;
	rc = pvm_discard_manager_notify_discard(f->m, gpa, size);
	if (rc)
		return rc;
	memset(f->host + first, 0, n);
	memset(f->plugged + first, 0, n);
	return 0;
}

#endif

/* SPDX-License-Identifier: MIT */
/*
 * Populate (preallocate) a range of a region: MADV_POPULATE_WRITE (or _READ) in chunks that a
 * few threads take in turn, with progress reports.
 *
 * Why MADV_POPULATE_*: it faults the pages in exactly as a first touch would, but reports a
 * failure as an error (-EFAULT where a touch would raise SIGBUS, e.g. an empty hugetlb pool, or
 * -ENOMEM) instead of killing the process. Kernels older than 5.14 answer EINVAL; then each page
 * is touched instead, with an atomic add of zero so that a guest writing the same page at the
 * same time cannot lose its write. Touching hugetlb memory mapped with MAP_NORESERVE is refused
 * on such kernels (-EOPNOTSUPP): an empty pool would raise SIGBUS.
 *
 * No allocation happens here: threads live on the stack of the call, which waits for them.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/util.h"
#include "mem/region-priv.h"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define POPULATE_MAX_THREADS 64
#define CHUNK_MIN (2 * PVM_MiB)
#define CHUNK_MAX (64 * PVM_MiB)
/* Retries of a chunk interrupted by a signal (EINTR) or told to retry (EAGAIN). */
#define POPULATE_RETRIES 100

/* One populate call, shared by its threads. */
struct populate_job {
	struct pvm_mem_region *r;          /* the region */
	uint64_t offset;                   /* start of the range */
	uint64_t len;                      /* length of the range */
	uint64_t chunk;                    /* bytes a thread takes at a time */
	bool read_only;                    /* MADV_POPULATE_READ */
	atomic_uint_fast64_t next;         /* offset (relative to @offset) of the next free chunk */
	atomic_int error;                  /* first failure (negative errno), 0 while none */
	uint64_t error_at;                 /* region offset of that failure (under @lock) */
	pthread_mutex_t lock;              /* serialises progress calls and error_at */
	uint64_t done;                     /* bytes populated so far (under @lock) */
	pvm_progress_fn progress;          /* may be NULL */
	void *progress_opaque;             /* passed to progress */
};

unsigned pvm_mem_default_threads(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : n > 16 ? 16 : (unsigned)n;
}

/* The fallback: touch one byte per page. */
static int touch_range(struct populate_job *job, uint8_t *p, uint64_t len)
{
	uint64_t step = job->r->page_size;

	if (job->r->hugetlb && job->r->noreserve)
		return -EOPNOTSUPP;
	for (uint64_t o = 0; o < len; o += step) {
		if (job->read_only)
			(void)*(volatile uint8_t *)(p + o);
		else
			__atomic_fetch_add(p + o, 0, __ATOMIC_RELAXED);
	}
	return 0;
}

/* Populate [p, p+len); 0 or a negative errno. */
static int populate_chunk(struct populate_job *job, uint8_t *p, uint64_t len)
{
	int advice = job->read_only ? MADV_POPULATE_READ : MADV_POPULATE_WRITE;

	for (int tries = 0;; tries++) {
		int e;

		if (pvm_mem_sys.madvise(p, (size_t)len, advice) == 0)
			return 0;
		e = errno;
		if ((e == EINTR || e == EAGAIN) && tries < POPULATE_RETRIES)
			continue;
		if (e == EINVAL)
			return touch_range(job, p, len);
		/* EFAULT: a touch would have raised SIGBUS (no huge page, file hole beyond EOF). */
		if (e == EFAULT || e == ENOMEM)
			return -ENOMEM;
		if (e == EHWPOISON)
			return -EIO;
		return -e;
	}
}

static void *populate_worker(void *opaque)
{
	struct populate_job *job = opaque;
	uint8_t *base = (uint8_t *)job->r->host + job->offset;

	while (atomic_load(&job->error) == 0) {
		uint64_t at = atomic_fetch_add(&job->next, job->chunk);
		uint64_t n;
		int rc;

		if (at >= job->len)
			break;
		n = PVM_MIN(job->chunk, job->len - at);
		rc = populate_chunk(job, base + at, n);
		pthread_mutex_lock(&job->lock);
		if (rc < 0) {
			int none = 0;

			if (atomic_compare_exchange_strong(&job->error, &none, rc))
				job->error_at = job->offset + at;
		} else {
			job->done += n;
			if (job->progress)
				job->progress(job->progress_opaque, job->done, job->len);
		}
		pthread_mutex_unlock(&job->lock);
	}
	return NULL;
}

/* Chunk size: about 64 pieces for progress and load balance, 2..64 MiB, whole pages. */
static uint64_t chunk_size(const struct pvm_mem_region *r, uint64_t len)
{
	uint64_t c = PVM_MIN(PVM_MAX(len / 64, CHUNK_MIN), CHUNK_MAX);

	return PVM_ALIGN_UP(c, r->page_size);
}

int pvm_mem_region_populate(struct pvm_mem_region *r, uint64_t offset, uint64_t len,
			    const struct pvm_mem_populate_opts *opts, struct pvm_error *err)
{
	static const struct pvm_mem_populate_opts defaults = { 0 };
	pthread_t tids[POPULATE_MAX_THREADS];
	struct populate_job job;
	unsigned threads, started = 0;
	uint64_t chunks;
	int rc = pvm_mem_region_check_range(r, offset, len, "populate", err);

	if (rc < 0)
		return rc;
	if (!opts)
		opts = &defaults;
	PVM_TRACE(mem_region_populate, "name=%s offset=0x%" PRIx64 " len=0x%" PRIx64 " threads=%u ro=%d",
		  r->name, offset, len, opts->threads, opts->read_only);
	if (len == 0)
		return 0;
	memset(&job, 0, sizeof(job));
	job.r = r;
	job.offset = offset;
	job.len = len;
	job.chunk = chunk_size(r, len);
	job.read_only = opts->read_only;
	job.progress = opts->progress;
	job.progress_opaque = opts->progress_opaque;
	atomic_init(&job.next, 0);
	atomic_init(&job.error, 0);
	pthread_mutex_init(&job.lock, NULL);

	chunks = PVM_DIV_ROUND_UP(len, job.chunk);
	threads = PVM_MIN(PVM_MAX(opts->threads, 1u), (unsigned)POPULATE_MAX_THREADS);
	if (threads > chunks)
		threads = (unsigned)chunks;
	/* The calling thread is one of the workers; a thread that cannot start is not needed. */
	for (unsigned i = 1; i < threads; i++)
		if (pthread_create(&tids[started], NULL, populate_worker, &job) == 0)
			started++;
	populate_worker(&job);
	for (unsigned i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	pthread_mutex_destroy(&job.lock);

	rc = atomic_load(&job.error);
	if (rc == -ENOMEM)
		rc = pvm_error_set(err, rc,
				   "no memory for %s at offset 0x%" PRIx64 "%s", r->name, job.error_at,
				   r->hugetlb ? " (is the hugetlb pool large enough?)" : "");
	else if (rc == -EOPNOTSUPP)
		rc = pvm_error_set(err, rc,
				   "populating %s needs MADV_POPULATE_WRITE (Linux 5.14): touching hugetlb memory without a reservation could crash",
				   r->name);
	else if (rc < 0)
		rc = pvm_error_set(err, rc, "populating %s at offset 0x%" PRIx64 " failed: %s",
				   r->name, job.error_at, strerror(-rc));
	PVM_TRACE(mem_region_populate_done, "name=%s offset=0x%" PRIx64 " rc=%d done=0x%" PRIx64,
		  r->name, offset, rc, job.done);
	return rc;
}

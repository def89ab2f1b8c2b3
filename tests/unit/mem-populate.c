/* SPDX-License-Identifier: MIT */
/*
 * Populate and preallocation: threads, progress reports, the touch fallback for kernels without
 * MADV_POPULATE_WRITE, failures (an empty hugetlb pool gives -ENOMEM, never SIGBUS, and a failed
 * preallocation frees everything), and discard/populate on disjoint ranges from several threads.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>

#include "mem-test-util.h"
#include "core/util.h"
#include "mem/region-priv.h"
#include <pvmem/mem.h>

#define MiB (1024ULL * 1024)

/* ---- progress ------------------------------------------------------------------------------ */

struct progress_log {
	atomic_int inside;        /* calls running now (must never exceed 1) */
	int calls;                /* number of calls */
	uint64_t last;            /* last done value */
	uint64_t total;           /* total seen */
	bool bad;                 /* a call overlapped another, went backwards or changed total */
};

static void progress_cb(void *opaque, uint64_t done, uint64_t total)
{
	struct progress_log *p = opaque;

	if (atomic_fetch_add(&p->inside, 1) != 0)
		p->bad = true;
	usleep(100);              /* widen the window for overlapping calls */
	if (done < p->last || done > total || (p->total && total != p->total))
		p->bad = true;
	p->last = done;
	p->total = total;
	p->calls++;
	atomic_fetch_sub(&p->inside, 1);
}

struct populate_case {
	const char *name;
	enum pvm_mem_backend backend;
	bool shared;
	unsigned threads;
	bool read_only;
};

static const struct populate_case populate_cases[] = {
	{ "anon, 1 thread", PVM_MEM_BACKEND_ANON, false, 1, false },
	{ "anon, 4 threads", PVM_MEM_BACKEND_ANON, false, 4, false },
	{ "anon shared, 3 threads", PVM_MEM_BACKEND_ANON, true, 3, false },
	{ "memfd, 2 threads", PVM_MEM_BACKEND_MEMFD, true, 2, false },
	{ "memfd, read-only, 2 threads", PVM_MEM_BACKEND_MEMFD, true, 2, true },
	{ "anon, 1000 threads (capped)", PVM_MEM_BACKEND_ANON, false, 1000, false },
};

static void test_populate_threads_progress(void **state)
{
	for (size_t i = 0; i < PVM_ARRAY_SIZE(populate_cases); i++) {
		const struct populate_case *c = &populate_cases[i];
		struct pvm_mem_region_config cfg = { .backend = c->backend, .shared = c->shared,
						     .size = 256 * MiB, .noreserve = true };
		struct progress_log log = { 0 };
		struct pvm_mem_populate_opts po = { .threads = c->threads, .read_only = c->read_only,
						    .progress = progress_cb, .progress_opaque = &log };
		struct pvm_mem_region *r;
		uint64_t bytes;

		print_message("populate case %s\n", c->name);
		assert_int_equal(pvm_mem_region_new(&cfg, &r, NULL), 0);
		/* An odd-sized range inside: offset 1 MiB, 200 MiB + 4 KiB. */
		assert_int_equal(pvm_mem_region_populate(r, MiB, 200 * MiB + 4096, &po, NULL), 0);
		assert_false(log.bad);
		assert_true(log.calls >= 4);
		assert_int_equal(log.last, 200 * MiB + 4096);
		assert_int_equal(log.total, 200 * MiB + 4096);
		assert_int_equal(pvm_mem_region_resident(r, MiB, 200 * MiB + 4096, &bytes, NULL), 0);
		assert_int_equal(bytes, 200 * MiB + 4096);
		assert_int_equal(pvm_mem_region_resident(r, 0, MiB, &bytes, NULL), 0);
		assert_int_equal(bytes, 0);
		assert_int_equal(pvm_mem_region_resident(r, 201 * MiB + 4096, 55 * MiB - 4096, &bytes, NULL), 0);
		assert_int_equal(bytes, 0);
		pvm_mem_region_free(r);
	}
}

static void test_prealloc_with_progress(void **state)
{
	struct progress_log log = { 0 };
	struct pvm_mem_region_config cfg = { .backend = PVM_MEM_BACKEND_MEMFD, .size = 64 * MiB,
					     .prealloc = true, .progress = progress_cb,
					     .progress_opaque = &log };
	struct pvm_mem_region *r;
	uint64_t bytes;

	assert_int_equal(pvm_mem_region_new(&cfg, &r, NULL), 0);
	assert_false(log.bad);
	assert_int_equal(log.last, 64 * MiB);
	assert_int_equal(pvm_mem_region_resident(r, 0, 64 * MiB, &bytes, NULL), 0);
	assert_int_equal(bytes, 64 * MiB);
	pvm_mem_region_free(r);
}

/* ---- the fallback for kernels without MADV_POPULATE_* --------------------------------------- */

static atomic_int populate_calls;

/* An old kernel: MADV_POPULATE_* is unknown (EINVAL); other advice works. */
static int madvise_old_kernel(void *addr, size_t len, int advice)
{
	if (advice == MADV_POPULATE_READ || advice == MADV_POPULATE_WRITE) {
		atomic_fetch_add(&populate_calls, 1);
		errno = EINVAL;
		return -1;
	}
	return madvise(addr, len, advice);
}

static void test_touch_fallback(void **state)
{
	struct pvm_mem_region_config cfg = { .backend = PVM_MEM_BACKEND_ANON, .size = 32 * MiB };
	struct pvm_mem_populate_opts po = { .threads = 2 };
	struct pvm_mem_region *r;
	uint64_t bytes;
	uint8_t *h;

	assert_int_equal(pvm_mem_region_new(&cfg, &r, NULL), 0);
	h = pvm_mem_region_host(r);
	h[4096] = 7;   /* a value the touch must keep */
	atomic_store(&populate_calls, 0);
	pvm_mem_sys.madvise = madvise_old_kernel;
	assert_int_equal(pvm_mem_region_populate(r, 0, 32 * MiB, &po, NULL), 0);
	po.read_only = true;
	assert_int_equal(pvm_mem_region_populate(r, 0, 32 * MiB, &po, NULL), 0);
	pvm_mem_sys_reset();
	assert_true(atomic_load(&populate_calls) > 0);
	assert_int_equal(pvm_mem_region_resident(r, 0, 32 * MiB, &bytes, NULL), 0);
	assert_int_equal(bytes, 32 * MiB);
	assert_int_equal(h[4096], 7);
	assert_true(mt_all(h + 8192, 32 * MiB - 8192, 0));
	pvm_mem_region_free(r);
}

/* ---- failures -------------------------------------------------------------------------------- */

static atomic_int calls_until_failure;

/* Fails every populate call after the first few with @errno_value. */
static int fail_errno = ENOMEM;
static int madvise_fail_later(void *addr, size_t len, int advice)
{
	if ((advice == MADV_POPULATE_WRITE || advice == MADV_POPULATE_READ) &&
	    atomic_fetch_sub(&calls_until_failure, 1) <= 0) {
		errno = fail_errno;
		return -1;
	}
	return madvise(addr, len, advice);
}

struct failure_case {
	const char *name;
	int errno_value;        /* what madvise says */
	int rc;                 /* what populate returns */
	const char *msg;
};

static const struct failure_case failure_cases[] = {
	{ "ENOMEM", ENOMEM, -ENOMEM, "no memory for ram at offset" },
	{ "EFAULT (SIGBUS avoided)", EFAULT, -ENOMEM, "no memory for ram at offset" },
	{ "EHWPOISON", EHWPOISON, -EIO, "failed" },
	{ "EPERM", EPERM, -EPERM, "Operation not permitted" },
};

static void test_populate_failure_stops(void **state)
{
	struct pvm_mem_region_config cfg = { .size = 256 * MiB, .noreserve = true };
	struct pvm_mem_region *r;

	assert_int_equal(pvm_mem_region_new(&cfg, &r, NULL), 0);
	for (size_t i = 0; i < PVM_ARRAY_SIZE(failure_cases); i++) {
		const struct failure_case *c = &failure_cases[i];
		struct pvm_mem_populate_opts po = { .threads = 3 };
		struct pvm_error err = { 0 };
		uint64_t bytes;

		atomic_store(&calls_until_failure, 5);
		fail_errno = c->errno_value;
		pvm_mem_sys.madvise = madvise_fail_later;
		assert_int_equal(pvm_mem_region_populate(r, 0, 256 * MiB, &po, &err), c->rc);
		pvm_mem_sys_reset();
		if (!strstr(err.msg, c->msg))
			fail_msg("case %s: message \"%s\"", c->name, err.msg);
		/* Partly populated; the caller rolls back with discard. */
		assert_int_equal(pvm_mem_region_resident(r, 0, 256 * MiB, &bytes, NULL), 0);
		assert_true(bytes > 0 && bytes < 256 * MiB);
		assert_int_equal(pvm_mem_region_discard(r, 0, 256 * MiB, NULL), 0);
		assert_int_equal(pvm_mem_region_resident(r, 0, 256 * MiB, &bytes, NULL), 0);
		assert_int_equal(bytes, 0);
	}
	pvm_mem_region_free(r);
}

/* The real thing: hugetlb memory beyond the free pool. MADV_POPULATE_WRITE reports it instead
 * of the SIGBUS a touch would get; creation fails cleanly and gives every page back. */
#define GIGANTIC "/sys/kernel/mm/hugepages/hugepages-1048576kB/"

static void test_hugetlb_prealloc_beyond_pool(void **state)
{
	uint64_t free0 = mt_meminfo("HugePages_Free");
	struct pvm_mem_region_config cfg = { .name = "big", .backend = PVM_MEM_BACKEND_MEMFD,
					     .hugetlb = true, .noreserve = true, .prealloc = true,
					     .size = (free0 + 64) * 2 * MiB, .prealloc_threads = 2 };

	/* 1 GiB pages with an empty pool fail at once and take no page that a test running in
	 * parallel may need; else use more 2 MiB pages than are free. */
	if (mt_read_long(GIGANTIC "nr_hugepages") == 0 && mt_read_long(GIGANTIC "free_hugepages") == 0) {
		cfg.hugepage_size = 1024 * MiB;
		cfg.size = 2048 * MiB;
	}
	struct pvm_mem_region *r = NULL;
	struct pvm_error err = { 0 };
	int fds = mt_count_fds(), maps = mt_count_maps(), rc;

	if (!cfg.hugepage_size && free0 > 256) {
		print_message("skipped: %" PRIu64 " free huge pages, too many to exhaust\n", free0);
		skip();
	}
	rc = pvm_mem_region_new(&cfg, &r, &err);
	if (rc == -EINVAL && strstr(err.msg, "memfd_create")) {
		print_message("skipped: no hugetlb support (%s)\n", err.msg);
		skip();
	}
	assert_int_equal(rc, -ENOMEM);
	assert_non_null(strstr(err.msg, "cannot preallocate big: no memory for big"));
	assert_non_null(strstr(err.msg, "hugetlb pool"));
	assert_null(r);
	assert_int_equal(mt_count_fds(), fds);
	assert_int_equal(mt_count_maps(), maps);
	/* This process holds no huge page any more (the pool itself may be shared with others). */
	assert_int_equal(mt_status_bytes("HugetlbPages"), 0);

	/* Without MAP_NORESERVE the kernel refuses at mmap time (no reservation possible). */
	cfg.noreserve = false;
	cfg.prealloc = false;
	memset(&err, 0, sizeof(err));
	assert_int_equal(pvm_mem_region_new(&cfg, &r, &err), -ENOMEM);
	assert_non_null(strstr(err.msg, "cannot map big"));
	assert_int_equal(mt_count_fds(), fds);
	assert_int_equal(mt_count_maps(), maps);
}

/* On a kernel without MADV_POPULATE_WRITE, touching unreserved hugetlb memory could raise
 * SIGBUS: refused instead. */
static void test_hugetlb_fallback_refused(void **state)
{
	struct pvm_mem_region_config cfg = { .backend = PVM_MEM_BACKEND_MEMFD, .hugetlb = true,
					     .noreserve = true, .size = 4 * MiB };
	struct pvm_mem_region *r;
	struct pvm_error err = { 0 };

	if (pvm_mem_region_new(&cfg, &r, NULL) != 0)
		skip();
	pvm_mem_sys.madvise = madvise_old_kernel;
	assert_int_equal(pvm_mem_region_populate(r, 0, 4 * MiB, NULL, &err), -EOPNOTSUPP);
	pvm_mem_sys_reset();
	assert_non_null(strstr(err.msg, "needs MADV_POPULATE_WRITE"));
	pvm_mem_region_free(r);
}

/* ---- threads on disjoint ranges ------------------------------------------------------------ */

#define SLICE (8 * MiB)
#define WORKERS 4

struct slice_worker {
	pthread_t tid;
	struct pvm_mem_region *r;
	unsigned index;      /* which slice */
	int failures;        /* checks that failed */
};

static void *slice_main(void *opaque)
{
	struct slice_worker *w = opaque;
	uint64_t off = w->index * SLICE, bytes;
	uint8_t *h = (uint8_t *)pvm_mem_region_host(w->r) + off;
	struct pvm_mem_populate_opts po = { .threads = 2 };

	for (int round = 0; round < 20; round++) {
		uint8_t v = (uint8_t)(w->index * 20 + round + 1);

		if (pvm_mem_region_populate(w->r, off, SLICE, &po, NULL) != 0)
			w->failures++;
		memset(h, v, SLICE);
		if (!mt_all(h, SLICE, v))
			w->failures++;
		if (pvm_mem_region_discard(w->r, off, SLICE, NULL) != 0)
			w->failures++;
		if (pvm_mem_region_resident(w->r, off, SLICE, &bytes, NULL) != 0 || bytes != 0)
			w->failures++;
		if (!mt_all(h, SLICE, 0))
			w->failures++;
	}
	return NULL;
}

struct thread_case {
	const char *name;
	enum pvm_mem_backend backend;
	bool shared;
};

static void test_disjoint_ranges_from_threads(void **state)
{
	static const struct thread_case tcases[] = {
		{ "anon", PVM_MEM_BACKEND_ANON, false },
		{ "memfd", PVM_MEM_BACKEND_MEMFD, true },
		{ "private file", PVM_MEM_BACKEND_FILE, false },
	};
	char dir[64];

	mt_tmpdir(dir, sizeof(dir));
	for (size_t i = 0; i < PVM_ARRAY_SIZE(tcases); i++) {
		struct pvm_mem_region_config cfg = {
			.backend = tcases[i].backend, .shared = tcases[i].shared,
			.size = WORKERS * SLICE,
			.path = tcases[i].backend == PVM_MEM_BACKEND_FILE ? dir : NULL,
		};
		struct slice_worker w[WORKERS];
		struct pvm_mem_region *r;

		print_message("threads case %s\n", tcases[i].name);
		assert_int_equal(pvm_mem_region_new(&cfg, &r, NULL), 0);
		for (unsigned k = 0; k < WORKERS; k++) {
			w[k] = (struct slice_worker){ .r = r, .index = k };
			assert_int_equal(pthread_create(&w[k].tid, NULL, slice_main, &w[k]), 0);
		}
		for (unsigned k = 0; k < WORKERS; k++) {
			pthread_join(w[k].tid, NULL);
			assert_int_equal(w[k].failures, 0);
		}
		pvm_mem_region_free(r);
	}
	mt_tmpdir_remove(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_populate_threads_progress),
		cmocka_unit_test(test_prealloc_with_progress),
		cmocka_unit_test(test_touch_fallback),
		cmocka_unit_test(test_populate_failure_stops),
		cmocka_unit_test(test_hugetlb_prealloc_beyond_pool),
		cmocka_unit_test(test_hugetlb_fallback_refused),
		cmocka_unit_test(test_disjoint_ranges_from_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

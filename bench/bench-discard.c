/* SPDX-License-Identifier: MIT */
/*
 * pvmem bench discard: the cost of the region layer on the two memory operations that dominate
 * unplug and plug.
 *
 *  discard_blockwise_vs_raw  discarding 1 GiB of populated private anonymous memory block by
 *                            block (2 MiB, as virtio-mem unplugs) through pvm_mem_region_discard,
 *                            against one madvise(MADV_DONTNEED) over the same range of the same
 *                            mapping. Time ratio, target <= 1.1.
 *  prealloc_speedup          preallocating 2 GiB with pvm_mem_region_new(.prealloc) (threads)
 *                            against one MADV_POPULATE_WRITE over a fresh 2 GiB mapping from one
 *                            thread; baseline_time / library_time, target >= 1.0.
 *
 * Both sides of a ratio run on identical mappings (private anonymous, MAP_NORESERVE, 2 MiB
 * aligned, so transparent huge pages treat them alike), alternate in order, and each figure is
 * the median of several rounds (ratios: the median of the per-round ratios). --quick uses 64 MiB / 256 MiB.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <pvmem/mem.h>

#include "bench.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define MiB (1024.0 * 1024.0)
#define GiB (1024.0 * 1024.0 * 1024.0)
#define MAX_ROUNDS 9

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Populate the whole region (not timed) and check it worked. */
static int fill(struct pvm_mem_region *r)
{
	struct pvm_mem_populate_opts po = { .threads = 2 };
	uint64_t size = pvm_mem_region_size(r), bytes = 0;
	int rc = pvm_mem_region_populate(r, 0, size, &po, NULL);

	if (rc == 0)
		rc = pvm_mem_region_resident(r, 0, size, &bytes, NULL);
	return rc < 0 ? rc : bytes == size ? 0 : -EIO;
}

/* Discard everything in @block pieces through the library; seconds. */
static double discard_blockwise(struct pvm_mem_region *r, uint64_t block, int *rc)
{
	uint64_t size = pvm_mem_region_size(r);
	double t0 = pvm_bench_now();

	for (uint64_t off = 0; off < size && *rc == 0; off += block)
		*rc = pvm_mem_region_discard(r, off, block, NULL);
	return pvm_bench_now() - t0;
}

static double discard_raw(struct pvm_mem_region *r, int *rc)
{
	double t0 = pvm_bench_now();

	if (madvise(pvm_mem_region_host(r), pvm_mem_region_size(r), MADV_DONTNEED) != 0)
		*rc = -errno;
	return pvm_bench_now() - t0;
}

/* Nothing may stay resident after a discard, else the timing means nothing. */
static int check_empty(struct pvm_mem_region *r)
{
	uint64_t bytes = 1;
	int rc = pvm_mem_region_resident(r, 0, pvm_mem_region_size(r), &bytes, NULL);

	return rc < 0 ? rc : bytes ? -EIO : 0;
}

static int bench_blockwise(const struct pvm_bench_opts *opts, struct pvm_bench_report *rep,
			   enum pvm_mem_backend backend, const char *prefix, uint64_t size,
			   int rounds, bool judge)
{
	const uint64_t block = 2 * 1024 * 1024;
	struct pvm_mem_region_config cfg = { .name = "bench", .backend = backend, .size = size,
					     .noreserve = true };
	struct pvm_mem_region *r;
	double lib[MAX_ROUNDS], raw[MAX_ROUNDS], ratio[MAX_ROUNDS], ml, mr;
	char key[64];
	int rc = pvm_mem_region_new(&cfg, &r, NULL);

	if (rc < 0)
		return rc;
	for (int i = 0; i < rounds && rc == 0; i++) {
		/* Alternate which side goes first. */
		for (int side = 0; side < 2 && rc == 0; side++) {
			bool library = (side == 0) == (i % 2 == 0);

			if (!library && !judge)
				continue;
			rc = fill(r);
			if (rc < 0)
				break;
			if (library)
				lib[i] = discard_blockwise(r, block, &rc);
			else
				raw[i] = discard_raw(r, &rc);
			if (rc == 0)
				rc = check_empty(r);
		}
	}
	pvm_mem_region_free(r);
	if (rc < 0)
		return rc;
	for (int i = 0; i < rounds && judge; i++)
		ratio[i] = lib[i] / raw[i];
	ml = median(lib, rounds);
	snprintf(key, sizeof(key), "%s_blockwise_ms", prefix);
	pvm_bench_raw(rep, key, ml * 1e3);
	snprintf(key, sizeof(key), "%s_blockwise_gib_s", prefix);
	pvm_bench_raw(rep, key, (double)size / GiB / ml);
	if (!judge)
		return 0;
	mr = median(raw, rounds);
	snprintf(key, sizeof(key), "%s_raw_ms", prefix);
	pvm_bench_raw(rep, key, mr * 1e3);
	snprintf(key, sizeof(key), "%s_raw_gib_s", prefix);
	pvm_bench_raw(rep, key, (double)size / GiB / mr);
	/* The median of per-round ratios: the two sides of a round run back to back, so a
	 * background load that comes and goes hits both. */
	pvm_bench_ratio(rep, "discard_blockwise_vs_raw", median(ratio, rounds), "<=", 1.1);
	pvm_bench_note(rep, "discard: %.0f MiB in 2 MiB blocks, median of %d rounds", size / MiB,
		       rounds);
	(void)opts;
	return 0;
}

/* The baseline: a fresh 2 MiB-aligned private mapping, one MADV_POPULATE_WRITE. Seconds. */
static double prealloc_raw(uint64_t size, int *rc)
{
	const size_t align = 2 * 1024 * 1024;
	double t0 = pvm_bench_now(), t;
	uint8_t *res, *p;

	res = mmap(NULL, size + align, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (res == MAP_FAILED) {
		*rc = -errno;
		return 0;
	}
	p = (uint8_t *)(((uintptr_t)res + align - 1) & ~(uintptr_t)(align - 1));
	if (madvise(p, size, MADV_POPULATE_WRITE) != 0)
		*rc = -errno;
	t = pvm_bench_now() - t0;
	munmap(res, size + align);
	return t;
}

static double prealloc_lib(uint64_t size, int *rc)
{
	struct pvm_mem_region_config cfg = { .name = "bench", .size = size, .noreserve = true,
					     .prealloc = true };
	struct pvm_mem_region *r;
	double t0 = pvm_bench_now(), t;

	*rc = pvm_mem_region_new(&cfg, &r, NULL);
	t = pvm_bench_now() - t0;
	pvm_mem_region_free(r);
	return t;
}

static int bench_prealloc(struct pvm_bench_report *rep, uint64_t size, int rounds)
{
	double lib[MAX_ROUNDS], raw[MAX_ROUNDS], ratio[MAX_ROUNDS], ml, mr;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	int rc = 0;

	for (int i = 0; i < rounds && rc == 0; i++) {
		if (i % 2 == 0) {
			lib[i] = prealloc_lib(size, &rc);
			if (rc == 0)
				raw[i] = prealloc_raw(size, &rc);
		} else {
			raw[i] = prealloc_raw(size, &rc);
			if (rc == 0)
				lib[i] = prealloc_lib(size, &rc);
		}
	}
	if (rc < 0)
		return rc;
	for (int i = 0; i < rounds; i++)
		ratio[i] = raw[i] / lib[i];
	ml = median(lib, rounds);
	mr = median(raw, rounds);
	pvm_bench_raw(rep, "prealloc_lib_ms", ml * 1e3);
	pvm_bench_raw(rep, "prealloc_raw_ms", mr * 1e3);
	pvm_bench_raw(rep, "prealloc_lib_gib_s", (double)size / GiB / ml);
	pvm_bench_raw(rep, "prealloc_raw_gib_s", (double)size / GiB / mr);
	pvm_bench_raw(rep, "prealloc_threads", (double)(cpus < 1 ? 1 : cpus > 16 ? 16 : cpus));
	pvm_bench_ratio(rep, "prealloc_speedup", median(ratio, rounds), ">=", 1.0);
	pvm_bench_note(rep, "prealloc: %.0f MiB, library threads = online CPUs (%ld), median of %d rounds",
		       size / MiB, cpus, rounds);
	return 0;
}

static void note_thp(struct pvm_bench_report *rep)
{
	char buf[128] = "unknown";
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");

	if (f) {
		if (!fgets(buf, sizeof(buf), f))
			snprintf(buf, sizeof(buf), "unknown");
		fclose(f);
		buf[strcspn(buf, "\n")] = '\0';
	}
	pvm_bench_note(rep, "transparent huge pages: %s (same for both sides)", buf);
}

int pvm_bench_discard(const struct pvm_bench_opts *opts, struct pvm_bench_report *r)
{
	uint64_t dsize = opts->quick ? 64ULL << 20 : 1ULL << 30;
	uint64_t psize = opts->quick ? 256ULL << 20 : 2ULL << 30;
	int rounds = opts->quick ? 3 : 7;
	int rc;

	rc = bench_blockwise(opts, r, PVM_MEM_BACKEND_ANON, "discard", dsize, rounds, true);
	if (rc == 0)
		/* Reported only: punching holes in a memfd, the shared-memory path. */
		rc = bench_blockwise(opts, r, PVM_MEM_BACKEND_MEMFD, "discard_memfd", dsize / 4,
				     rounds, false);
	if (rc == 0)
		rc = bench_prealloc(r, psize, opts->quick ? 3 : 5);
	note_thp(r);
	return rc;
}

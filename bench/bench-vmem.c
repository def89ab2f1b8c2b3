/* SPDX-License-Identifier: MIT */
/*
 * pvmem bench vmem: plug then unplug 1 GiB in 2 MiB blocks, one request per block, through the
 * whole request path (driver -> virtqueue -> device -> memslots -> memory, preallocating so
 * that plugging really allocates), against raw MADV_POPULATE_WRITE / MADV_DONTNEED of the same
 * blocks; and the same request path with uffd enforcement against none. Raw figures: VMAs of
 * the fragmented worst case (every other block plugged) in each enforcement mode and the page
 * tables uffd's write-protect markers cost.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "bench.h"
#include "core/util.h"
#include "virtio/mem-rig.h"
#include "virtio/mem-state.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define BS (2 * PVM_MiB)
#define BASE 0x100000000ULL

static struct pvm_vmem_rig *make_rig(uint64_t size, enum pvm_enforce_mode mode, bool prealloc)
{
	struct pvm_vmem_rig_config rc = { 0 };
	struct pvm_vmem_rig *rig;
	struct pvm_error err = { 0 };

	rc.dev.addr = BASE;
	rc.dev.region_size = size;
	rc.dev.block_size = BS;
	rc.dev.requested_size = size;
	rc.dev.enforce = mode;
	rc.dev.prealloc = prealloc;
	rc.dev.async_threshold = UINT64_MAX;
	if (pvm_vmem_rig_new(&rc, &rig, &err)) {
		fprintf(stderr, "bench vmem: %s\n", pvm_error_message(&err));
		return NULL;
	}
	return rig;
}

/* Seconds for one plug-all + unplug-all round through the request path; < 0 on failure. */
static double round_requests(struct pvm_vmem_rig *rig, uint64_t nblocks)
{
	double t0 = pvm_bench_now();
	uint16_t resp, st;

	for (uint16_t type = VIRTIO_MEM_REQ_PLUG; type <= VIRTIO_MEM_REQ_UNPLUG; type++)
		for (uint64_t b = 0; b < nblocks; b++)
			if (pvm_vmem_rig_request(rig, type, BASE + b * BS, 1, &resp, &st) ||
			    resp != VIRTIO_MEM_RESP_ACK)
				return -1;
	return pvm_bench_now() - t0;
}

static double round_raw(uint8_t *p, uint64_t nblocks)
{
	double t0 = pvm_bench_now();

	for (uint64_t b = 0; b < nblocks; b++)
		if (madvise(p + b * BS, BS, MADV_POPULATE_WRITE))
			return -1;
	for (uint64_t b = 0; b < nblocks; b++)
		if (madvise(p + b * BS, BS, MADV_DONTNEED))
			return -1;
	return pvm_bench_now() - t0;
}

static double best_requests(enum pvm_enforce_mode mode, uint64_t size, int rounds)
{
	struct pvm_vmem_rig *rig = make_rig(size, mode, true);
	double best = 1e9;

	if (!rig)
		return -1;
	for (int i = 0; i < rounds; i++) {
		double t = round_requests(rig, size / BS);

		if (t < 0) {
			best = -1;
			break;
		}
		best = PVM_MIN(best, t);
	}
	pvm_vmem_rig_free(rig);
	return best;
}

static long vm_pte_kib(void)
{
	char line[256];
	long v = -1;
	FILE *f = fopen("/proc/self/status", "re");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmPTE: %ld kB", &v) == 1)
			break;
	fclose(f);
	return v;
}

/* VMAs covering the region with every other block plugged. */
static int64_t worst_case_vmas(enum pvm_enforce_mode mode, uint64_t size, long *pte_kib)
{
	long pte0 = vm_pte_kib();
	struct pvm_vmem_rig *rig = make_rig(size, mode, false);
	int64_t n = -1;
	uint16_t resp, st;

	if (!rig)
		return -1;
	*pte_kib = vm_pte_kib() - pte0;
	for (uint64_t b = 0; b < size / BS; b += 2)
		if (pvm_vmem_rig_request(rig, VIRTIO_MEM_REQ_PLUG, BASE + b * BS, 1, &resp, &st) ||
		    resp != VIRTIO_MEM_RESP_ACK)
			goto out;
	n = pvm_enforce_count_vmas(pvm_mem_region_host(pvm_vmem_rig_memory(rig)), size);
out:
	pvm_vmem_rig_free(rig);
	return n;
}

int pvm_bench_vmem(const struct pvm_bench_opts *opts, struct pvm_bench_report *r)
{
	uint64_t size = opts->quick ? 256 * PVM_MiB : PVM_GiB;
	int rounds = opts->quick ? 2 : 3;
	double raw = 1e9, none, uffd;
	uint8_t *p;

	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	for (int i = 0; i < rounds; i++) {
		double t = round_raw(p, size / BS);

		if (t < 0) {
			munmap(p, size);
			return -EIO;
		}
		raw = PVM_MIN(raw, t);
	}
	munmap(p, size);
	none = best_requests(PVM_ENFORCE_NONE, size, rounds);
	if (none < 0)
		return -EIO;
	pvm_bench_raw(r, "raw_madvise_s", raw);
	pvm_bench_raw(r, "requests_none_s", none);
	pvm_bench_ratio(r, "plug_unplug_vs_raw", none / raw, "<=", 1.2);
	if (pvm_enforce_uffd_available()) {
		uffd = best_requests(PVM_ENFORCE_UFFD, size, rounds);
		if (uffd < 0)
			return -EIO;
		pvm_bench_raw(r, "requests_uffd_s", uffd);
		pvm_bench_ratio(r, "uffd_vs_none", uffd / none, "<=", 1.5);
	} else {
		pvm_bench_note(r, "userfaultfd write-protect is not available: uffd_vs_none not measured");
	}
	for (enum pvm_enforce_mode m = PVM_ENFORCE_NONE; m <= PVM_ENFORCE_MPROTECT; m++) {
		char key[64];
		long pte = 0;
		int64_t n;

		if (m == PVM_ENFORCE_UFFD && !pvm_enforce_uffd_available())
			continue;
		n = worst_case_vmas(m, size, &pte);
		snprintf(key, sizeof(key), "vmas_every_other_block_%s", pvm_enforce_mode_name(m));
		pvm_bench_raw(r, key, (double)n);
		snprintf(key, sizeof(key), "pte_kib_at_create_%s", pvm_enforce_mode_name(m));
		pvm_bench_raw(r, key, (double)pte);
	}
	pvm_bench_note(r, "%s region, 2 MiB blocks, one request per block, prealloc on; VMA counts "
		       "cover the region with every other block plugged", opts->quick ? "256 MiB" : "1 GiB");
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * pvmem bench dma: replaying 32 GiB of plugged virtio-mem memory in 2 MiB blocks to a newly
 * attached device (discard listener registration + per-granule maps), against the same number
 * of raw pvm_dma_container_map() calls, both on the accounting backend (type1 model). The host
 * range is sparse (MAP_NORESERVE, never touched), so 32 GiB costs nothing.
 * Ratio: replay time / raw time (target <= 1.2). Raw: mappings per second of both.
 */
#include <errno.h>
#include <stdio.h>
#include <sys/mman.h>

#include <pvmem/dma.h>
#include "bench.h"
#include "../tests/unit/discard-fake.h"

#define GiB (1024ull * 1024 * 1024)
#define BLOCK (2ull * 1024 * 1024)
#define GPA (4 * GiB)

static int one_round(struct pvm_dma_ctx *ctx, struct fake_src *src, void *host, uint64_t size,
		     double *t_replay, double *t_raw)
{
	struct pvm_dma_space_config sc = { .name = "bench", .fd = -1 };
	struct pvm_dma_space *s;
	struct pvm_dma_container *c;
	uint64_t n = size / BLOCK;
	double t0;
	int rc;

	rc = pvm_dma_space_new(ctx, &sc, &s, NULL);
	if (rc)
		return rc;
	rc = pvm_dma_space_add_ram(s, GPA, size, host, src->m, NULL);
	if (!rc) {
		t0 = pvm_bench_now();
		rc = pvm_dma_space_attach(s, "hostdev0", PVM_DMA_DEVICE_VFIO, NULL);
		*t_replay = pvm_bench_now() - t0;
	}
	pvm_dma_space_free(s);
	if (rc)
		return rc;

	rc = pvm_dma_container_new(ctx, -1, &c, NULL);
	if (rc)
		return rc;
	t0 = pvm_bench_now();
	for (uint64_t i = 0; i < n && !rc; i++)
		rc = pvm_dma_container_map(c, GPA + i * BLOCK, (uint64_t)(uintptr_t)host + i * BLOCK, BLOCK,
					   NULL);
	*t_raw = pvm_bench_now() - t0;
	pvm_dma_container_free(c);
	return rc;
}

int pvm_bench_dma(const struct pvm_bench_opts *opts, struct pvm_bench_report *r)
{
	uint64_t size = opts->quick ? 4 * GiB : 32 * GiB, n = size / BLOCK;
	struct pvm_dma_ctx_config cfg = { .model = PVM_DMA_MODEL_TYPE1,
					  .budget = PVM_DMA_BUDGET_UNLIMITED,
					  .max_mappings = (uint32_t)n + 1024 };
	struct pvm_dma_ctx *ctx = NULL;
	struct fake_src src;
	double best_replay = 1e30, best_raw = 1e30;
	int rounds = opts->quick ? 5 : 21, rc;
	void *host;

	host = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		    -1, 0);
	if (host == MAP_FAILED)
		return -errno;
	rc = fake_src_init(&src, GPA, size, BLOCK);
	if (!rc)
		memset(src.plugged, 1, n);    /* everything plugged before the device comes */
	if (!rc)
		rc = pvm_dma_ctx_new(&cfg, &ctx, NULL);
	for (int i = 0; i < rounds && !rc; i++) {
		double tr = 0, tw = 0;

		rc = one_round(ctx, &src, host, size, &tr, &tw);
		best_replay = tr < best_replay ? tr : best_replay;
		best_raw = tw < best_raw ? tw : best_raw;
	}
	if (!rc) {
		pvm_bench_ratio(r, "replay_vs_raw_maps", best_replay / best_raw, "<=", 1.2);
		pvm_bench_raw(r, "mappings", (double)n);
		pvm_bench_raw(r, "replay_ms", best_replay * 1e3);
		pvm_bench_raw(r, "raw_ms", best_raw * 1e3);
		pvm_bench_raw(r, "replay_mappings_per_s", (double)n / best_replay);
		pvm_bench_raw(r, "raw_mappings_per_s", (double)n / best_raw);
		pvm_bench_note(r, "%llu GiB plugged in 2 MiB blocks, type1 accounting backend, best of %d",
			       (unsigned long long)(size / GiB), rounds);
	}
	pvm_dma_ctx_free(ctx);
	fake_src_fini(&src);
	munmap(host, size);
	return rc;
}

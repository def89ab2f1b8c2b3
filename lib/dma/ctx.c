/* SPDX-License-Identifier: MIT */
/*
 * The DMA context: one per process, as the kernel's mm is. It holds the accounting model, the
 * budget (explicit or RLIMIT_MEMLOCK), the totals, and the hook table through which every
 * system call with an effect outside the process goes.
 */
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "dma/dma-priv.h"
#ifdef PVM_HAVE_MEMLOCK
#include <pvmem/memlock.h>
#endif

int pvm_dma_ctx_new(const struct pvm_dma_ctx_config *cfg, struct pvm_dma_ctx **out,
		    struct pvm_error *err)
{
	struct pvm_dma_ctx *ctx;

	*out = NULL;
	if (!cfg)
		return pvm_error_set(err, -EINVAL, "no DMA configuration");
	if ((unsigned)cfg->model > PVM_DMA_MODEL_IOMMUFD)
		return pvm_error_set(err, -EINVAL, "unknown DMA accounting model %d", (int)cfg->model);
	if ((unsigned)cfg->backend > PVM_DMA_BACKEND_KERNEL)
		return pvm_error_set(err, -EINVAL, "unknown DMA backend %d", (int)cfg->backend);
	ctx = pvm_calloc(1, sizeof(*ctx));
	if (!ctx)
		return pvm_error_set(err, -ENOMEM, "out of memory");
	ctx->cfg = *cfg;
	if (cfg->hooks)
		ctx->hooks = *cfg->hooks;
	ctx->cfg.hooks = NULL;
	if (!ctx->cfg.max_mappings)
		ctx->cfg.max_mappings = PVM_DMA_DEFAULT_MAX_MAPPINGS;
	if (!ctx->cfg.max_memslots)
		ctx->cfg.max_memslots = PVM_DMA_DEFAULT_MAX_MEMSLOTS;
	ctx->budget = cfg->budget;
	*out = ctx;
	return 0;
}

void pvm_dma_ctx_free(struct pvm_dma_ctx *ctx)
{
	if (!ctx)
		return;
	if (ctx->containers || ctx->spaces)
		pvm_warn("DMA context freed with %llu containers and %llu spaces alive",
			 (unsigned long long)ctx->containers, (unsigned long long)ctx->spaces);
	pvm_dma_pins_release(&ctx->pins);
	pvm_free(ctx);
}

void pvm_dma_ctx_set_budget(struct pvm_dma_ctx *ctx, uint64_t budget)
{
	PVM_TRACE(dma_budget_set, "budget=0x%llx", (unsigned long long)budget);
	ctx->budget = budget;
}

static int read_rlimit(const struct pvm_dma_ctx *ctx, uint64_t *bytes, struct pvm_error *err)
{
	struct rlimit rl;

	if (ctx->hooks.memlock_limit) {
		int rc = ctx->hooks.memlock_limit(ctx->hooks.opaque, bytes);

		return rc ? pvm_error_set(err, rc, "cannot read RLIMIT_MEMLOCK") : 0;
	}
#ifdef PVM_HAVE_MEMLOCK
	return pvm_memlock_get(0, bytes, NULL, err);
#endif
	if (getrlimit(RLIMIT_MEMLOCK, &rl) < 0)
		return pvm_error_set(err, -errno, "cannot read RLIMIT_MEMLOCK");
	*bytes = rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)rl.rlim_cur;
	return 0;
}

int pvm_dma_ctx_budget(const struct pvm_dma_ctx *ctx, uint64_t *bytes, struct pvm_error *err)
{
	if (ctx->budget == PVM_DMA_BUDGET_RLIMIT)
		return read_rlimit(ctx, bytes, err);
	*bytes = ctx->budget;
	return 0;
}

enum pvm_dma_model pvm_dma_ctx_model(const struct pvm_dma_ctx *ctx)
{
	return ctx->cfg.model;
}

void pvm_dma_ctx_stats(const struct pvm_dma_ctx *ctx, struct pvm_dma_ctx_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->pinned = ctx->pinned;
	out->peak_pinned = ctx->peak;
	out->mapped = ctx->mapped;
	out->mappings = ctx->mappings;
	out->containers = ctx->containers;
	out->map_calls = ctx->map_calls;
	out->unmap_calls = ctx->unmap_calls;
}

const char *pvm_dma_model_name(enum pvm_dma_model model)
{
	switch (model) {
	case PVM_DMA_MODEL_TYPE1:
		return "type1";
	case PVM_DMA_MODEL_IOMMUFD:
		return "iommufd";
	}
	return NULL;
}

int pvm_dma_model_parse(const char *name, enum pvm_dma_model *out)
{
	if (name && !strcmp(name, "type1"))
		*out = PVM_DMA_MODEL_TYPE1;
	else if (name && !strcmp(name, "iommufd"))
		*out = PVM_DMA_MODEL_IOMMUFD;
	else
		return -EINVAL;
	return 0;
}

/* ---- system calls ----------------------------------------------------------------------------- */

int pvm_dma_sys_ioctl(struct pvm_dma_ctx *ctx, int fd, unsigned long req, void *arg)
{
	if (ctx->hooks.ioctl)
		return ctx->hooks.ioctl(ctx->hooks.opaque, fd, req, arg);
	return ioctl(fd, req, arg) < 0 ? -errno : 0;
}

int pvm_dma_sys_mlock(struct pvm_dma_ctx *ctx, uint64_t hva, uint64_t size)
{
	if (ctx->hooks.mlock)
		return ctx->hooks.mlock(ctx->hooks.opaque, (const void *)(uintptr_t)hva, size);
	return mlock((const void *)(uintptr_t)hva, size) < 0 ? -errno : 0;
}

void pvm_dma_sys_munlock(struct pvm_dma_ctx *ctx, uint64_t hva, uint64_t size)
{
	int rc;

	if (ctx->hooks.munlock)
		rc = ctx->hooks.munlock(ctx->hooks.opaque, (const void *)(uintptr_t)hva, size);
	else
		rc = munlock((const void *)(uintptr_t)hva, size) < 0 ? -errno : 0;
	if (rc)
		pvm_warn("munlock of 0x%llx+0x%llx failed: %d", (unsigned long long)hva,
			 (unsigned long long)size, rc);
}

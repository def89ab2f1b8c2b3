/* SPDX-License-Identifier: MIT */
/*
 * Guest memory regions: configuration checks, life cycle, accessors and the range check that
 * every operation on a region goes through. The backends live in backend.c, preallocation in
 * populate.c, NUMA policy in numa.c, residency in resident.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <sys/types.h>
#include <unistd.h>

#include "core/util.h"
#include "mem/region-priv.h"

static const char *const backend_names[] = {
	[PVM_MEM_BACKEND_ANON] = "anonymous",
	[PVM_MEM_BACKEND_MEMFD] = "memfd",
	[PVM_MEM_BACKEND_HUGETLBFS] = "hugetlbfs",
	[PVM_MEM_BACKEND_FILE] = "file",
};

const char *pvm_mem_backend_name(enum pvm_mem_backend b)
{
	if ((unsigned)b >= PVM_ARRAY_SIZE(backend_names))
		return "unknown";
	return backend_names[b];
}

/* Checks that need no system call; the backend checks what depends on the file or mount. */
static int check_config(const struct pvm_mem_region_config *cfg, struct pvm_error *err)
{
	uint64_t page = pvm_mem_base_page_size();
	bool fd_path = cfg->backend == PVM_MEM_BACKEND_FILE ||
		       cfg->backend == PVM_MEM_BACKEND_HUGETLBFS;

	if ((unsigned)cfg->backend > PVM_MEM_BACKEND_FILE)
		return pvm_error_set(err, -EINVAL, "unknown memory backend %d", (int)cfg->backend);
	if (cfg->size == 0)
		return pvm_error_set(err, -EINVAL, "region size is 0");
	/* The size must fit a size_t (mmap) and an off_t (ftruncate, fallocate). */
	if (cfg->size > (uint64_t)INT64_MAX || cfg->size > SIZE_MAX)
		return pvm_error_set(err, -EINVAL, "region size %" PRIu64 " is too large", cfg->size);
	if (!PVM_IS_ALIGNED(cfg->size, page))
		return pvm_error_set(err, -EINVAL,
				     "region size %" PRIu64 " is not a multiple of the page size %" PRIu64,
				     cfg->size, page);
	if (fd_path && (!cfg->path || !cfg->path[0]))
		return pvm_error_set(err, -EINVAL, "the %s backend needs a path",
				     pvm_mem_backend_name(cfg->backend));
	if (!fd_path && cfg->path)
		return pvm_error_set(err, -EINVAL, "a path is only for the file and hugetlbfs backends");
	if (cfg->keep_contents && !fd_path)
		return pvm_error_set(err, -EINVAL,
				     "keep_contents is only for the file and hugetlbfs backends");
	if (cfg->hugetlb && cfg->backend == PVM_MEM_BACKEND_FILE)
		return pvm_error_set(err, -EINVAL,
				     "hugetlb is for anonymous and memfd memory; use the hugetlbfs backend");
	if (cfg->hugepage_size) {
		if (!cfg->hugetlb && cfg->backend != PVM_MEM_BACKEND_HUGETLBFS)
			return pvm_error_set(err, -EINVAL, "hugepage_size is set without hugetlb");
		if (!PVM_IS_POW2(cfg->hugepage_size) || cfg->hugepage_size <= page)
			return pvm_error_set(err, -EINVAL, "huge page size %" PRIu64 " is not valid",
					     cfg->hugepage_size);
	}
	return pvm_mem_numa_check(cfg->numa_mode, cfg->numa_nodes, err);
}

int pvm_mem_region_new(const struct pvm_mem_region_config *cfg, struct pvm_mem_region **out,
		       struct pvm_error *err)
{
	struct pvm_mem_region *r;
	int rc;

	if (!cfg || !out)
		return pvm_error_set(err, -EINVAL, "no region configuration");
	*out = NULL;
	PVM_TRACE(mem_region_new, "name=%s backend=%s size=0x%" PRIx64 " shared=%d hugetlb=%d prealloc=%d",
		  cfg->name ? cfg->name : "", pvm_mem_backend_name(cfg->backend), cfg->size,
		  cfg->shared, cfg->hugetlb, cfg->prealloc);
	rc = check_config(cfg, err);
	if (rc < 0)
		goto out;

	r = pvm_calloc(1, sizeof(*r));
	if (!r) {
		rc = pvm_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	r->fd = -1;
	r->backend = cfg->backend;
	r->size = cfg->size;
	r->noreserve = cfg->noreserve;
	r->numa_mode = cfg->numa_mode;
	r->numa_nodes = cfg->numa_nodes;
	r->name = pvm_strdup(cfg->name ? cfg->name : "ram");
	if (!r->name || (cfg->path && !(r->path = pvm_strdup(cfg->path)))) {
		rc = pvm_error_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	rc = pvm_mem_backend_open(r, cfg, err);
	if (rc < 0)
		goto fail;
	rc = pvm_mem_numa_apply(r, 0, r->size, err);
	if (rc < 0)
		goto fail;
	if (cfg->prealloc) {
		struct pvm_mem_populate_opts po = {
			.threads = cfg->prealloc_threads ? cfg->prealloc_threads
							 : pvm_mem_default_threads(),
			.progress = cfg->progress,
			.progress_opaque = cfg->progress_opaque,
		};

		rc = pvm_mem_region_populate(r, 0, r->size, &po, err);
		if (rc < 0) {
			pvm_error_prefix(err, "cannot preallocate %s", r->name);
			goto fail;
		}
	}
	*out = r;
	rc = 0;
	goto out;
fail:
	if (r->created)
		unlink(r->path);
	pvm_mem_region_free(r);
out:
	PVM_TRACE(mem_region_new_done, "name=%s rc=%d", cfg->name ? cfg->name : "", rc);
	return rc;
}

void pvm_mem_region_free(struct pvm_mem_region *r)
{
	if (!r)
		return;
	PVM_TRACE(mem_region_free, "name=%s", r->name ? r->name : "");
	pvm_mem_backend_close(r);
	pvm_free(r->path);
	pvm_free(r->name);
	pvm_free(r);
}

const char *pvm_mem_region_name(const struct pvm_mem_region *r)
{
	return r->name;
}

void *pvm_mem_region_host(const struct pvm_mem_region *r)
{
	return r->host;
}

uint64_t pvm_mem_region_size(const struct pvm_mem_region *r)
{
	return r->size;
}

uint64_t pvm_mem_region_page_size(const struct pvm_mem_region *r)
{
	return r->page_size;
}

enum pvm_mem_backend pvm_mem_region_backend(const struct pvm_mem_region *r)
{
	return r->backend;
}

bool pvm_mem_region_is_shared(const struct pvm_mem_region *r)
{
	return r->shared;
}

int pvm_mem_region_fd(const struct pvm_mem_region *r)
{
	return r->fd;
}

int pvm_mem_region_check_range(const struct pvm_mem_region *r, uint64_t offset, uint64_t len,
			       const char *what, struct pvm_error *err)
{
	if (!r)
		return pvm_error_set(err, -EINVAL, "%s: no region", what);
	if (pvm_range_wraps(offset, len))
		return pvm_error_set(err, -EINVAL, "%s: range 0x%" PRIx64 "+0x%" PRIx64 " wraps",
				     what, offset, len);
	if (offset > r->size || len > r->size - offset)
		return pvm_error_set(err, -EINVAL,
				     "%s: range 0x%" PRIx64 "+0x%" PRIx64 " is outside %s (size 0x%" PRIx64 ")",
				     what, offset, len, r->name, r->size);
	if (!PVM_IS_ALIGNED(offset, r->page_size) || !PVM_IS_ALIGNED(len, r->page_size))
		return pvm_error_set(err, -EINVAL,
				     "%s: range 0x%" PRIx64 "+0x%" PRIx64 " is not aligned to the page size 0x%" PRIx64,
				     what, offset, len, r->page_size);
	return 0;
}

int pvm_mem_region_discard(struct pvm_mem_region *r, uint64_t offset, uint64_t len,
			   struct pvm_error *err)
{
	int rc = pvm_mem_region_check_range(r, offset, len, "discard", err);

	if (rc < 0)
		return rc;
	PVM_TRACE(mem_region_discard, "name=%s offset=0x%" PRIx64 " len=0x%" PRIx64, r->name,
		  offset, len);
	if (len)
		rc = pvm_mem_backend_discard(r, offset, len, err);
	PVM_TRACE(mem_region_discard_done, "name=%s offset=0x%" PRIx64 " rc=%d", r->name, offset, rc);
	return rc;
}

/* SPDX-License-Identifier: MIT */
/*
 * Backends: where a region's memory comes from and how it is given back.
 *
 *   backend     made with                               discard
 *   anon        mmap(MAP_ANONYMOUS, private or shared)  private: MADV_DONTNEED; shared: MADV_REMOVE
 *   memfd       memfd_create(), MFD_HUGETLB on request  fallocate(PUNCH_HOLE|KEEP_SIZE) (+ DONTNEED)
 *   hugetlbfs   a file on a hugetlbfs mount             fallocate(PUNCH_HOLE|KEEP_SIZE)
 *   file        an ordinary file, shared or private     shared: as memfd; private: fresh anonymous
 *                                                       memory mapped over the range
 *
 * MADV_DONTNEED follows the hole punch only for base-page mappings: punching already unmaps the
 * pages everywhere, the madvise only drops page-table entries that may still be cached, and for
 * hugetlb a hole punch is the whole story. A private file mapping cannot punch the file (it is
 * not ours to change, and the range would then read the file again rather than zeros), so the
 * range becomes private anonymous memory: reads return zeros, the file's pages leave the RSS.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/falloc.h>
#include <linux/magic.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "core/util.h"
#include "mem/region-priv.h"

#ifndef MAP_HUGE_SHIFT
#define MAP_HUGE_SHIFT 26
#endif
#ifndef MFD_HUGE_SHIFT
#define MFD_HUGE_SHIFT 26
#endif

/* Regions start on this boundary (or their page size, if larger) so that transparent huge
 * pages can back them and block-sized discards never split a huge page needlessly. */
#define REGION_ALIGN (2 * PVM_MiB)

static int sys_madvise(void *addr, size_t len, int advice)
{
	return madvise(addr, len, advice);
}

static int sys_fallocate(int fd, int mode, off_t offset, off_t len)
{
	return fallocate(fd, mode, offset, len);
}

struct pvm_mem_sys_hooks pvm_mem_sys = { sys_madvise, sys_fallocate };

void pvm_mem_sys_reset(void)
{
	pvm_mem_sys.madvise = sys_madvise;
	pvm_mem_sys.fallocate = sys_fallocate;
}

uint64_t pvm_mem_base_page_size(void)
{
	static atomic_uint_fast64_t cached;
	uint64_t v = atomic_load_explicit(&cached, memory_order_relaxed);

	if (!v) {
		long p = sysconf(_SC_PAGESIZE);

		v = p > 0 ? (uint64_t)p : 4096;
		atomic_store_explicit(&cached, v, memory_order_relaxed);
	}
	return v;
}

/* The default huge page size ("Hugepagesize:" in /proc/meminfo), or 0 if unknown. */
static uint64_t default_hugepage_size(void)
{
	char buf[4096], *p;
	unsigned long long kb;
	ssize_t n;
	int fd = open("/proc/meminfo", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	p = strstr(buf, "Hugepagesize:");
	if (!p || sscanf(p, "Hugepagesize: %llu kB", &kb) != 1)
		return 0;
	return (uint64_t)kb * PVM_KiB;
}

/* -EINVAL unless the kernel offers huge pages of @size. */
static int check_hugepage_size(uint64_t size, struct pvm_error *err)
{
	char path[96];

	snprintf(path, sizeof(path), "/sys/kernel/mm/hugepages/hugepages-%" PRIu64 "kB",
		 size / 1024);
	if (access(path, F_OK) != 0)
		return pvm_error_set(err, -EINVAL, "the kernel has no huge pages of %" PRIu64 " KiB",
				     size / 1024);
	return 0;
}

/* The huge-page-size bits for MAP_HUGETLB / MFD_HUGETLB (both use bit 26 onwards). */
static int huge_size_flags(uint64_t hugepage_size)
{
	return hugepage_size ? (int)__builtin_ctzll(hugepage_size) << MAP_HUGE_SHIFT : 0;
}

/* An unlinked temporary file in directory @dir. */
static int open_tmpfile(struct pvm_mem_region *r, const char *dir, struct pvm_error *err)
{
	char *tmpl = pvm_asprintf("%s/pvmem-%s-XXXXXX", dir, r->name);
	int fd;

	if (!tmpl)
		return pvm_error_set(err, -ENOMEM, "out of memory");
	fd = mkostemp(tmpl, O_CLOEXEC);
	if (fd < 0) {
		int e = errno;

		pvm_free(tmpl);
		return pvm_error_set(err, -e, "cannot create a file in %s: %s", dir, strerror(e));
	}
	unlink(tmpl);
	pvm_free(tmpl);
	return fd;
}

/* Open the file or directory r->path; *created tells whether the file was made here. */
static int open_path(struct pvm_mem_region *r, bool keep_contents, bool *created,
		     struct pvm_error *err)
{
	struct stat st;
	int fd;

	*created = false;
	if (stat(r->path, &st) == 0 && S_ISDIR(st.st_mode))
		return open_tmpfile(r, r->path, err);
	fd = open(r->path, O_RDWR | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && !keep_contents) {
		fd = open(r->path, O_RDWR | O_CLOEXEC | O_CREAT | O_EXCL, 0600);
		*created = fd >= 0;
	}
	if (fd < 0) {
		int e = errno;

		return pvm_error_set(err, -e, "cannot open %s: %s", r->path, strerror(e));
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		if (*created)
			unlink(r->path);
		*created = false;
		return pvm_error_set(err, -EINVAL, "%s is not a regular file", r->path);
	}
	return fd;
}

/* Size the file: exactly r->size unless its contents are kept (then at least r->size). */
static int size_file(struct pvm_mem_region *r, bool keep_contents, struct pvm_error *err)
{
	struct stat st;

	if (fstat(r->fd, &st) != 0)
		return pvm_error_set(err, -errno, "cannot stat the backing file of %s", r->name);
	if (keep_contents && (uint64_t)st.st_size >= r->size)
		return 0;
	if ((!keep_contents && st.st_size != 0 && ftruncate(r->fd, 0) != 0) ||
	    ftruncate(r->fd, (off_t)r->size) != 0) {
		int e = errno;

		return pvm_error_set(err, -e, "cannot size the backing file of %s to %" PRIu64 ": %s",
				     r->name, r->size, strerror(e));
	}
	return 0;
}

/* Make r->fd and set page_size/shared/hugetlb for the fd backends. */
static int open_fd(struct pvm_mem_region *r, const struct pvm_mem_region_config *cfg,
		   bool *created, struct pvm_error *err)
{
	struct statfs sfs;

	if (r->backend == PVM_MEM_BACKEND_MEMFD) {
		unsigned flags = MFD_CLOEXEC;

		if (cfg->hugetlb)
			flags |= MFD_HUGETLB | (unsigned)huge_size_flags(cfg->hugepage_size);
		if (cfg->hugetlb && cfg->hugepage_size) {
			int rc = check_hugepage_size(cfg->hugepage_size, err);

			if (rc < 0)
				return rc;
		}
		r->fd = memfd_create(r->name, flags);
		if (r->fd < 0)
			return pvm_error_set(err, -errno, "memfd_create for %s failed: %s", r->name,
					     strerror(errno));
	} else {
		int fd = open_path(r, cfg->keep_contents, created, err);

		if (fd < 0)
			return fd;
		r->fd = fd;
	}
	if (fstatfs(r->fd, &sfs) != 0)
		return pvm_error_set(err, -errno, "cannot stat the file system of %s", r->name);
	r->hugetlb = sfs.f_type == HUGETLBFS_MAGIC;
	r->page_size = r->hugetlb ? (uint64_t)sfs.f_bsize : pvm_mem_base_page_size();
	r->shared = r->backend == PVM_MEM_BACKEND_FILE ? cfg->shared : true;
	if (r->backend == PVM_MEM_BACKEND_HUGETLBFS && !r->hugetlb)
		return pvm_error_set(err, -EINVAL, "%s is not on a hugetlbfs mount", r->path);
	if (cfg->hugepage_size && cfg->hugepage_size != r->page_size)
		return pvm_error_set(err, -EINVAL,
				     "%s has huge pages of %" PRIu64 " KiB, not %" PRIu64 " KiB",
				     r->path ? r->path : r->name, r->page_size / 1024,
				     cfg->hugepage_size / 1024);
	if (!PVM_IS_ALIGNED(r->size, r->page_size))
		return pvm_error_set(err, -EINVAL,
				     "region size %" PRIu64 " is not a multiple of the page size %" PRIu64,
				     r->size, r->page_size);
	if (r->backend == PVM_MEM_BACKEND_MEMFD) {
		if (ftruncate(r->fd, (off_t)r->size) != 0)
			return pvm_error_set(err, -errno, "cannot size memfd %s: %s", r->name,
					     strerror(errno));
		return 0;
	}
	return size_file(r, cfg->keep_contents, err);
}

/* mmap flags for fresh anonymous memory in @r (creation, and private-file discard). */
static int anon_flags(const struct pvm_mem_region *r, uint64_t hugepage_size)
{
	int flags = MAP_ANONYMOUS | (r->shared ? MAP_SHARED : MAP_PRIVATE);

	if (r->hugetlb)
		flags |= MAP_HUGETLB | huge_size_flags(hugepage_size);
	return flags;
}

/* Map @r at an address aligned to max(page size, REGION_ALIGN): reserve a larger PROT_NONE
 * area, map the memory over its aligned part, give the rest back. */
static int map_region(struct pvm_mem_region *r, int flags, struct pvm_error *err)
{
	uint64_t align = PVM_MAX(r->page_size, REGION_ALIGN);
	size_t span;
	uint8_t *res, *start, *p;

	if (pvm_add_overflow((size_t)r->size, (size_t)align, &span))
		return pvm_error_set(err, -ENOMEM, "region %s is too large to map", r->name);
	res = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (res == MAP_FAILED)
		return pvm_error_set(err, -ENOMEM, "cannot reserve %" PRIu64 " bytes for %s: %s",
				     r->size, r->name, strerror(errno));
	start = (uint8_t *)PVM_ALIGN_UP((uintptr_t)res, (uintptr_t)align);
	p = mmap(start, r->size, PROT_READ | PROT_WRITE, flags | MAP_FIXED | (r->noreserve ? MAP_NORESERVE : 0),
		 r->fd, 0);
	if (p == MAP_FAILED) {
		int e = errno;

		munmap(res, span);
		return pvm_error_set(err, e == ENOMEM ? -ENOMEM : -e, "cannot map %s: %s", r->name,
				     strerror(e));
	}
	if (start > res)
		munmap(res, (size_t)(start - res));
	if (start + r->size < res + span)
		munmap(start + r->size, (size_t)(res + span - (start + r->size)));
	r->host = start;
	return 0;
}

int pvm_mem_backend_open(struct pvm_mem_region *r, const struct pvm_mem_region_config *cfg,
			 struct pvm_error *err)
{
	bool created = false;
	int rc, flags;

	r->fd = -1;
	r->host = NULL;
	if (r->backend == PVM_MEM_BACKEND_ANON) {
		r->shared = cfg->shared;
		r->hugetlb = cfg->hugetlb;
		r->page_size = pvm_mem_base_page_size();
		if (r->hugetlb) {
			r->page_size = cfg->hugepage_size ? cfg->hugepage_size : default_hugepage_size();
			if (!r->page_size)
				return pvm_error_set(err, -EINVAL, "this kernel has no huge pages");
			if (!PVM_IS_ALIGNED(r->size, r->page_size))
				return pvm_error_set(err, -EINVAL,
						     "region size %" PRIu64 " is not a multiple of the page size %" PRIu64,
						     r->size, r->page_size);
		}
		flags = anon_flags(r, cfg->hugepage_size);
	} else {
		rc = open_fd(r, cfg, &created, err);
		if (rc < 0)
			goto fail;
		flags = r->shared ? MAP_SHARED : MAP_PRIVATE;
	}
	if (r->hugetlb) {
		rc = check_hugepage_size(r->page_size, err);
		if (rc < 0)
			goto fail;
	}
	rc = map_region(r, flags, err);
	if (rc < 0)
		goto fail;
	r->created = created;
	return 0;
fail:
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
	if (created)
		unlink(r->path);
	return rc;
}

void pvm_mem_backend_close(struct pvm_mem_region *r)
{
	if (r->host)
		munmap(r->host, (size_t)r->size);
	r->host = NULL;
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
}

static int madvise_range(struct pvm_mem_region *r, uint64_t offset, uint64_t len, int advice,
			 const char *what, struct pvm_error *err)
{
	if (pvm_mem_sys.madvise((uint8_t *)r->host + offset, (size_t)len, advice) != 0) {
		int e = errno;

		return pvm_error_set(err, -e, "%s of %s at 0x%" PRIx64 "+0x%" PRIx64 " failed: %s",
				     what, r->name, offset, len, strerror(e));
	}
	return 0;
}

static int punch_hole(struct pvm_mem_region *r, uint64_t offset, uint64_t len,
		      struct pvm_error *err)
{
	if (pvm_mem_sys.fallocate(r->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)offset,
				  (off_t)len) != 0) {
		int e = errno;

		if (e == EOPNOTSUPP)
			return pvm_error_set(err, -EOPNOTSUPP,
					     "the file system behind %s cannot punch holes", r->name);
		return pvm_error_set(err, -e, "punching 0x%" PRIx64 "+0x%" PRIx64 " of %s failed: %s",
				     offset, len, r->name, strerror(e));
	}
	return 0;
}

/* Private file mapping: map fresh private anonymous memory over the range. */
static int remap_anonymous(struct pvm_mem_region *r, uint64_t offset, uint64_t len,
			   struct pvm_error *err)
{
	uint8_t *want = (uint8_t *)r->host + offset;
	int flags = MAP_ANONYMOUS | MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE;
	void *p;

	if (r->hugetlb)
		flags |= MAP_HUGETLB | huge_size_flags(r->page_size);
	p = mmap(want, (size_t)len, PROT_READ | PROT_WRITE, flags, -1, 0);
	if (p == MAP_FAILED) {
		int e = errno;

		return pvm_error_set(err, -e,
				     "cannot map anonymous memory over 0x%" PRIx64 "+0x%" PRIx64 " of %s: %s",
				     offset, len, r->name, strerror(e));
	}
	/* The new mapping has the default policy: give it the region's again. */
	return pvm_mem_numa_apply(r, offset, len, err);
}

int pvm_mem_backend_discard(struct pvm_mem_region *r, uint64_t offset, uint64_t len,
			    struct pvm_error *err)
{
	int rc;

	if (r->fd < 0) {
		if (r->shared)
			return madvise_range(r, offset, len, MADV_REMOVE, "MADV_REMOVE", err);
		return madvise_range(r, offset, len, MADV_DONTNEED, "MADV_DONTNEED", err);
	}
	if (!r->shared)
		return remap_anonymous(r, offset, len, err);
	rc = punch_hole(r, offset, len, err);
	if (rc == 0 && !r->hugetlb)
		rc = madvise_range(r, offset, len, MADV_DONTNEED, "MADV_DONTNEED", err);
	return rc;
}

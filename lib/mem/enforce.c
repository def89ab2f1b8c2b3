/* SPDX-License-Identifier: MIT */
/*
 * Enforcement of unplugged memory: the mode-independent part (configuration, the protected
 * bitmap, reporting, names). The mechanisms live in enforce-uffd.c and enforce-mprotect.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include "core/util.h"
#include "mem/enforce-priv.h"

static const char *const mode_names[] = { "none", "uffd", "mprotect", "auto" };
static const char *const policy_names[] = { "deny", "allow", "kill" };

const char *pvm_enforce_mode_name(enum pvm_enforce_mode mode)
{
	return (unsigned)mode < PVM_ARRAY_SIZE(mode_names) ? mode_names[mode] : "?";
}

int pvm_enforce_mode_parse(const char *s, enum pvm_enforce_mode *out)
{
	for (unsigned i = 0; s && i < PVM_ARRAY_SIZE(mode_names); i++)
		if (!strcmp(s, mode_names[i])) {
			*out = (enum pvm_enforce_mode)i;
			return 0;
		}
	return -EINVAL;
}

const char *pvm_enforce_policy_name(enum pvm_enforce_policy policy)
{
	return (unsigned)policy < PVM_ARRAY_SIZE(policy_names) ? policy_names[policy] : "?";
}

int pvm_enforce_policy_parse(const char *s, enum pvm_enforce_policy *out)
{
	for (unsigned i = 0; s && i < PVM_ARRAY_SIZE(policy_names); i++)
		if (!strcmp(s, policy_names[i])) {
			*out = (enum pvm_enforce_policy)i;
			return 0;
		}
	return -EINVAL;
}

void pvm_enforce_report(struct pvm_enforce *e, const struct pvm_enforce_rec *rec)
{
	struct pvm_enforce_trap t = {
		.offset = (uint64_t)((uint8_t *)(uintptr_t)rec->addr - e->base) + e->offset,
		.block = ((uint64_t)((uint8_t *)(uintptr_t)rec->addr - e->base)) / e->block_size,
		.tid = rec->tid,
		.action = (enum pvm_enforce_policy)rec->action,
	};

	PVM_TRACE(enforce_trap, "offset=0x%" PRIx64 " block=%" PRIu64 " tid=%u action=%s", t.offset,
		  t.block, t.tid, pvm_enforce_policy_name(t.action));
	if (e->on_trap)
		e->on_trap(e->opaque, &t);
	if (t.action == PVM_ENFORCE_KILL) {
		pvm_err("enforcement: write into unplugged memory at offset 0x%" PRIx64
			" (thread %u): killing the process", t.offset, t.tid);
		kill(getpid(), SIGKILL);
	}
}

/* Mappings the mprotect enforcers of this process may need at worst, all together. */
static _Atomic uint64_t mprotect_reserved;

/* Mappings kept free for everything else the process maps (libraries, threads, heap). */
#define MPROTECT_MAP_RESERVE 2048

static uint64_t max_map_count(void)
{
	unsigned long long v = 0;
	FILE *f = fopen("/proc/sys/vm/max_map_count", "re");

	if (f) {
		if (fscanf(f, "%llu", &v) != 1)
			v = 0;
		fclose(f);
	}
	return v ? v : 65530; /* the kernel's default */
}

/*
 * mprotect costs one mapping per run of unplugged blocks: at worst, every other block plugged,
 * about one per block. Admit an enforcer only when that worst case, added to what the process
 * maps now, to what other mprotect enforcers may still need, and to a reserve, stays within
 * vm.max_map_count: otherwise a later unplug would fail to protect (or an unrelated mmap would
 * fail) in the middle of a guest's request. Returns 0 and reserves the mappings, or -ENOSPC.
 */
static int mprotect_admit(uint64_t nblocks, struct pvm_error *err)
{
	uint64_t max = max_map_count(), need = nblocks + 1, reserved;
	int64_t used = pvm_enforce_count_vmas(NULL, 0);

	if (used < 0)
		used = 0;
	reserved = atomic_fetch_add(&mprotect_reserved, need);
	if (reserved + need + (uint64_t)used + MPROTECT_MAP_RESERVE > max) {
		atomic_fetch_sub(&mprotect_reserved, need);
		return pvm_error_set(err, -ENOSPC,
				     "mprotect enforcement of %" PRIu64 " blocks may need %" PRIu64
				     " mappings; with %" PRId64 " in use, %" PRIu64 " reserved and %d kept "
				     "free that exceeds vm.max_map_count (%" PRIu64 "): use larger blocks, "
				     "uffd enforcement, or raise vm.max_map_count",
				     nblocks, need, used, reserved, MPROTECT_MAP_RESERVE, max);
	}
	return 0;
}

int pvm_enforce_new(const struct pvm_enforce_config *cfg, struct pvm_enforce **out,
		    struct pvm_error *err)
{
	struct pvm_enforce *e;
	uint64_t end, page;
	int rc;

	*out = NULL;
	if (!cfg->region || (unsigned)cfg->mode > PVM_ENFORCE_AUTO ||
	    (unsigned)cfg->policy > PVM_ENFORCE_KILL)
		return pvm_error_set(err, -EINVAL, "bad enforcement configuration");
	page = pvm_mem_region_page_size(cfg->region);
	if (!PVM_IS_POW2(cfg->block_size) || cfg->block_size < page || cfg->size == 0 ||
	    !PVM_IS_ALIGNED(cfg->size, cfg->block_size) || !PVM_IS_ALIGNED(cfg->offset, page) ||
	    pvm_add_overflow(cfg->offset, cfg->size, &end) ||
	    end > pvm_mem_region_size(cfg->region))
		return pvm_error_set(err, -EINVAL, "enforcement range does not fit the region");

	e = pvm_calloc(1, sizeof(*e));
	if (!e)
		return pvm_error_set(err, -ENOMEM, "out of memory");
	e->policy = cfg->policy;
	e->region = cfg->region;
	e->base = (uint8_t *)pvm_mem_region_host(cfg->region) + cfg->offset;
	e->offset = cfg->offset;
	e->size = cfg->size;
	e->block_size = cfg->block_size;
	e->page_size = page;
	e->nblocks = cfg->size / cfg->block_size;
	e->private_anon = pvm_mem_region_backend(cfg->region) == PVM_MEM_BACKEND_ANON &&
			  !pvm_mem_region_is_shared(cfg->region);
	e->on_trap = cfg->on_trap;
	e->opaque = cfg->opaque;
	e->uffd = -1;
	e->wake_pipe[0] = e->wake_pipe[1] = -1;
	e->mp_slot = -1;
	pthread_mutex_init(&e->lock, NULL);
	rc = pvm_bitmap_new(e->nblocks, &e->prot);
	if (!rc)
		rc = pvm_bitmap_new(e->nblocks, &e->poison);
	if (rc) {
		pvm_error_set(err, rc, "out of memory");
		goto fail;
	}

	e->mode = cfg->mode;
	if (e->mode == PVM_ENFORCE_AUTO)
		e->mode = e->private_anon && page == 4096 && pvm_enforce_uffd_available()
				  ? PVM_ENFORCE_UFFD : PVM_ENFORCE_MPROTECT;
	switch (e->mode) {
	case PVM_ENFORCE_UFFD:
		rc = pvm_enforce_uffd_init(e, err);
		break;
	case PVM_ENFORCE_MPROTECT:
		rc = mprotect_admit(e->nblocks, err);
		if (rc)
			break;
		rc = pvm_enforce_mprotect_init(e, err);
		if (rc)
			atomic_fetch_sub(&mprotect_reserved, e->nblocks + 1);
		break;
	default:
		rc = 0;
		break;
	}
	if (rc)
		goto fail;
	/* Everything starts unplugged, hence protected. */
	rc = pvm_enforce_protect(e, 0, e->nblocks, err);
	if (rc) {
		pvm_enforce_free(e);
		return rc;
	}
	*out = e;
	return 0;
fail:
	pvm_bitmap_free(e->prot);
	pvm_bitmap_free(e->poison);
	pthread_mutex_destroy(&e->lock);
	pvm_free(e);
	return rc;
}

void pvm_enforce_free(struct pvm_enforce *e)
{
	if (!e)
		return;
	if (e->mode == PVM_ENFORCE_UFFD)
		pvm_enforce_uffd_fini(e);
	else if (e->mode == PVM_ENFORCE_MPROTECT) {
		pvm_enforce_mprotect_fini(e);
		atomic_fetch_sub(&mprotect_reserved, e->nblocks + 1);
	}
	pvm_bitmap_free(e->prot);
	pvm_bitmap_free(e->poison);
	pthread_mutex_destroy(&e->lock);
	pvm_free(e);
}

enum pvm_enforce_mode pvm_enforce_get_mode(const struct pvm_enforce *e)
{
	return e->mode;
}

static int set_range(struct pvm_enforce *e, uint64_t first, uint64_t count, bool protect,
		     struct pvm_error *err)
{
	uint64_t end;
	int rc = 0;

	if (pvm_add_overflow(first, count, &end) || end > e->nblocks)
		return pvm_error_set(err, -EINVAL, "blocks %" PRIu64 "+%" PRIu64 " outside the enforced range",
				     first, count);
	if (count == 0)
		return 0;
	PVM_TRACE(enforce_set, "first=%" PRIu64 " count=%" PRIu64 " protect=%d mode=%s", first, count,
		  protect, pvm_enforce_mode_name(e->mode));
	pthread_mutex_lock(&e->lock);
	/* Protect: the bits go first so that a racing fault is recognised as ours; unprotect:
	 * the bits go last, after the kernel no longer traps. */
	if (protect)
		pvm_bitmap_set_range(e->prot, first, count);
	if (e->mode == PVM_ENFORCE_UFFD)
		rc = pvm_enforce_uffd_set(e, first, count, protect, err);
	else if (e->mode == PVM_ENFORCE_MPROTECT)
		rc = pvm_enforce_mprotect_set(e, first, count, protect, err);
	if (protect && rc)
		pvm_bitmap_clear_range(e->prot, first, count);
	if (!protect && !rc)
		pvm_bitmap_clear_range(e->prot, first, count);
	pthread_mutex_unlock(&e->lock);
	return rc;
}

int pvm_enforce_protect(struct pvm_enforce *e, uint64_t first, uint64_t count, struct pvm_error *err)
{
	return set_range(e, first, count, true, err);
}

int pvm_enforce_unprotect(struct pvm_enforce *e, uint64_t first, uint64_t count,
			  struct pvm_error *err)
{
	return set_range(e, first, count, false, err);
}

bool pvm_enforce_is_protected(const struct pvm_enforce *e, uint64_t block)
{
	return pvm_bitmap_test(e->prot, block);
}

void pvm_enforce_get_stats(const struct pvm_enforce *e, struct pvm_enforce_stats *out)
{
	struct pvm_enforce *m = (struct pvm_enforce *)e;

	pthread_mutex_lock(&m->lock);
	out->protected_blocks = pvm_bitmap_count(e->prot);
	pthread_mutex_unlock(&m->lock);
	out->traps = atomic_load(&m->traps);
	out->allowed = atomic_load(&m->allowed);
	out->denied = atomic_load(&m->denied);
}

int64_t pvm_enforce_count_vmas(const void *addr, uint64_t len)
{
	uintptr_t lo = (uintptr_t)addr, hi = lo + len;
	char line[512];
	int64_t n = 0;
	FILE *f = fopen("/proc/self/maps", "re");

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		unsigned long s, t;

		if (!strchr(line, '\n') && !feof(f)) {
			int c;

			while ((c = fgetc(f)) != EOF && c != '\n')
				;
		}
		if (sscanf(line, "%lx-%lx", &s, &t) != 2)
			continue;
		if (len == 0 || (s < hi && t > lo))
			n++;
	}
	fclose(f);
	return n;
}

#define PM_PRESENT (1ULL << 63)
#define PM_EXCLUSIVE (1ULL << 56)

int pvm_enforce_resident(const struct pvm_mem_region *r, uint64_t offset, uint64_t len,
			 uint64_t *bytes, struct pvm_error *err)
{
	uint64_t end, entries[512], page = 4096;
	uintptr_t va;
	int fd;

	*bytes = 0;
	if (pvm_add_overflow(offset, len, &end) || end > pvm_mem_region_size(r) ||
	    !PVM_IS_ALIGNED(offset, page) || !PVM_IS_ALIGNED(len, page))
		return pvm_error_set(err, -EINVAL, "range outside the region");
	if (pvm_mem_region_backend(r) != PVM_MEM_BACKEND_ANON || pvm_mem_region_is_shared(r))
		return pvm_mem_region_resident(r, offset, len, bytes, err);
	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return pvm_mem_region_resident(r, offset, len, bytes, err);
	va = (uintptr_t)pvm_mem_region_host(r) + offset;
	for (uint64_t done = 0; done < len;) {
		uint64_t n = PVM_MIN((len - done) / page, PVM_ARRAY_SIZE(entries));
		ssize_t got = pread(fd, entries, n * sizeof(uint64_t),
				    (off_t)((va + done) / page * sizeof(uint64_t)));

		if (got <= 0) {
			int rc = got < 0 ? -errno : -EIO;

			close(fd);
			return pvm_error_set(err, rc, "cannot read /proc/self/pagemap");
		}
		n = (uint64_t)got / sizeof(uint64_t);
		for (uint64_t i = 0; i < n; i++)
			if ((entries[i] & (PM_PRESENT | PM_EXCLUSIVE)) == (PM_PRESENT | PM_EXCLUSIVE))
				*bytes += page;
		done += n * page;
	}
	close(fd);
	return 0;
}

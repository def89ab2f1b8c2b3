/* SPDX-License-Identifier: MIT */
/*
 * Helpers for the guest-memory region tests: what the kernel says about this process's memory
 * (independently of the library), leak checks, and a temporary hugetlb pool and hugetlbfs mount.
 */
#ifndef PVM_MEM_TEST_UTIL_H
#define PVM_MEM_TEST_UTIL_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test-util.h"

/* Open file descriptors of this process. */
static inline int mt_count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1; /* the directory itself */
}

/* Mappings (VMAs) of this process. */
static inline int mt_count_maps(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	int n = 0, c;

	assert_non_null(f);
	while ((c = fgetc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

/* Whether [addr, addr+len) is mapped at all (a VMA overlaps it). */
static inline bool mt_mapped(const void *addr, uint64_t len)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	bool hit = false;
	uintptr_t a = (uintptr_t)addr;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		unsigned long s, e;

		if (sscanf(line, "%lx-%lx", &s, &e) == 2 && s < a + len && e > a)
			hit = true;
	}
	fclose(f);
	return hit;
}

/*
 * Memory the kernel counts for the VMAs overlapping [addr, addr+len), from /proc/self/smaps:
 * Rss plus hugetlb pages (which smaps keeps out of Rss). A VMA that the region shares with a
 * neighbour counts whole, so compare differences, not absolute values.
 */
static inline uint64_t mt_smaps_bytes(const void *addr, uint64_t len)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	bool in = false;
	uint64_t kb_total = 0;
	uintptr_t a = (uintptr_t)addr;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		unsigned long s, e;
		unsigned long long kb;
		char name[64];

		if (sscanf(line, "%lx-%lx ", &s, &e) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			in = s < a + len && e > a;
			continue;
		}
		if (!in || sscanf(line, "%63[^:]: %llu kB", name, &kb) != 2)
			continue;
		if (!strcmp(name, "Rss") || !strcmp(name, "Shared_Hugetlb") ||
		    !strcmp(name, "Private_Hugetlb"))
			kb_total += kb;
	}
	fclose(f);
	return kb_total * 1024;
}

/* A "Name:   N kB" line of /proc/self/status (RssAnon, RssFile, RssShmem, HugetlbPages), bytes. */
static inline uint64_t mt_status_bytes(const char *field)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	size_t n = strlen(field);
	uint64_t v = 0;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, field, n) && line[n] == ':')
			v = strtoull(line + n + 1, NULL, 10) * 1024;
	fclose(f);
	return v;
}

/* A "Name:   N" line of /proc/meminfo (HugePages_Free ...). */
static inline uint64_t mt_meminfo(const char *field)
{
	FILE *f = fopen("/proc/meminfo", "r");
	char line[256];
	size_t n = strlen(field);
	uint64_t v = 0;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, field, n) && line[n] == ':')
			v = strtoull(line + n + 1, NULL, 10);
	fclose(f);
	return v;
}

static inline long mt_read_long(const char *path)
{
	FILE *f = fopen(path, "r");
	long v = -1;

	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

static inline bool mt_write_long(const char *path, long v)
{
	FILE *f = fopen(path, "w");
	bool ok;

	if (!f)
		return false;
	ok = fprintf(f, "%ld\n", v) > 0;
	return fclose(f) == 0 && ok;
}

#define MT_NR_HUGEPAGES "/proc/sys/vm/nr_hugepages"

/*
 * A temporary hugetlb pool of default-size pages. As root, nr_hugepages is raised by @pages for
 * the test and lowered by as much again by mt_hugetlb_release(): adding and subtracting (rather
 * than setting and restoring a value) keeps two test programs doing this at once (normal and
 * ASan builds) out of each other's way. Not root: the free pages that exist are used, if there
 * are enough. PVMEM_TEST_NO_HUGEPAGES=1 forbids touching the pool.
 */
struct mt_hugetlb_pool {
	long added;    /* pages we added to nr_hugepages (0: none) */
};

static inline void mt_hugetlb_release(struct mt_hugetlb_pool *p)
{
	long cur = mt_read_long(MT_NR_HUGEPAGES);

	if (p->added > 0 && cur >= 0)
		mt_write_long(MT_NR_HUGEPAGES, cur > p->added ? cur - p->added : 0);
	p->added = 0;
}

static inline bool mt_hugetlb_get(struct mt_hugetlb_pool *p, long pages, const char **why)
{
	long cur = mt_read_long(MT_NR_HUGEPAGES);
	const char *forbid = getenv("PVMEM_TEST_NO_HUGEPAGES");

	p->added = 0;
	if (geteuid() != 0 || cur < 0 || forbid) {
		if ((long)mt_meminfo("HugePages_Free") >= pages)
			return true;
		*why = forbid ? "no free hugetlb pages and PVMEM_TEST_NO_HUGEPAGES is set"
			      : "no free hugetlb pages (/proc/sys/vm/nr_hugepages) and not root";
		return false;
	}
	if (!mt_write_long(MT_NR_HUGEPAGES, cur + pages)) {
		*why = "cannot raise /proc/sys/vm/nr_hugepages";
		return false;
	}
	p->added = mt_read_long(MT_NR_HUGEPAGES) - cur;   /* the kernel may find fewer */
	if (p->added < pages) {
		mt_hugetlb_release(p);
		*why = "the kernel could not find memory for a temporary hugetlb pool";
		return false;
	}
	return true;
}

/*
 * A hugetlbfs directory: an existing mount, or (as root) one made in a private mount namespace
 * of this test process, which disappears with it. Returns false with @why when neither works.
 * @dir receives the path; @mounted tells mt_hugetlbfs_put() to unmount it.
 */
static inline bool mt_hugetlbfs_get(char *dir, size_t dirlen, bool *mounted, const char **why)
{
	FILE *f = fopen("/proc/mounts", "r");
	char line[512], dev[128], mnt[256], type[64];

	*mounted = false;
	if (f) {
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "%127s %255s %63s", dev, mnt, type) == 3 &&
			    !strcmp(type, "hugetlbfs") && access(mnt, W_OK) == 0 &&
			    strstr(line, "pagesize=2M") && strlen(mnt) < dirlen) {
				memcpy(dir, mnt, strlen(mnt) + 1);
				fclose(f);
				return true;
			}
		fclose(f);
	}
	if (geteuid() != 0) {
		*why = "no writable hugetlbfs mount and not root";
		return false;
	}
	if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
		*why = "cannot make a private mount namespace for a hugetlbfs mount";
		return false;
	}
	snprintf(dir, dirlen, "/tmp/pvmem-hugetlbfs-XXXXXX");
	if (!mkdtemp(dir)) {
		*why = "cannot make a mount point";
		return false;
	}
	if (mount("pvmem-test", dir, "hugetlbfs", 0, "pagesize=2M") != 0) {
		rmdir(dir);
		*why = "cannot mount hugetlbfs";
		return false;
	}
	*mounted = true;
	return true;
}

static inline void mt_hugetlbfs_put(const char *dir, bool mounted)
{
	if (mounted) {
		umount(dir);
		rmdir(dir);
	}
}

/* A fresh empty directory under /tmp for file backends; mt_tmpdir_remove() empties and removes it. */
static inline void mt_tmpdir(char *dir, size_t len)
{
	snprintf(dir, len, "/tmp/pvmem-memtest-XXXXXX");
	assert_non_null(mkdtemp(dir));
}

/* Entries in @dir (leak check for temporary files). */
static inline int mt_dir_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	closedir(d);
	return n;
}

static inline void mt_tmpdir_remove(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[512];

	if (!d)
		return;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(dir);
}

/* True when all @len bytes at @p are @v. */
static inline bool mt_all(const void *p, uint64_t len, uint8_t v)
{
	const uint8_t *b = p;

	for (uint64_t i = 0; i < len; i++)
		if (b[i] != v)
			return false;
	return true;
}

#endif

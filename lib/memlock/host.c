/* SPDX-License-Identifier: MIT */
/*
 * Host facts for the feasibility warnings: total RAM and the effective cgroup memory limit of a
 * process. Read-only; the root is a parameter so that tests use a fake tree.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pvmem/memlock.h>

#include "core/util.h"

static uint64_t read_meminfo(const char *root)
{
	char path[PATH_MAX], line[256];
	unsigned long long kb;
	uint64_t v = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/proc/meminfo", root);
	if (!(f = fopen(path, "re")))
		return 0;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "MemTotal: %llu kB", &kb) == 1) {
			if (kb <= UINT64_MAX / 1024)
				v = kb * 1024;
			break;
		}
	}
	fclose(f);
	return v;
}

/* One limit file: 0 for "max", missing or unreadable. */
static uint64_t read_limit(const char *path)
{
	char buf[64];
	unsigned long long v;
	char *end;
	FILE *f;

	if (!(f = fopen(path, "re")))
		return 0;
	if (!fgets(buf, sizeof(buf), f)) {
		fclose(f);
		return 0;
	}
	fclose(f);
	buf[strcspn(buf, "\n")] = '\0';
	errno = 0;
	v = strtoull(buf, &end, 10);
	if (errno || end == buf || *end)
		return 0;
	/* cgroup v1 reports "no limit" as a huge page-aligned number */
	return v >= (1ULL << 62) ? 0 : v;
}

/* The cgroup of @pid: the v2 path ("0::/x") or the v1 memory controller's; false if none. */
static bool read_cgroup(const char *root, pid_t pid, char *out, size_t len, bool *v1)
{
	char path[PATH_MAX], line[1024];
	bool found = false;
	FILE *f;

	if (pid > 0)
		snprintf(path, sizeof(path), "%s/proc/%d/cgroup", root, (int)pid);
	else
		snprintf(path, sizeof(path), "%s/proc/self/cgroup", root);
	if (!(f = fopen(path, "re")))
		return false;
	while (fgets(line, sizeof(line), f)) {
		char *p = strchr(line, ':'), *q;

		line[strcspn(line, "\n")] = '\0';
		if (!p || !(q = strchr(p + 1, ':')))
			continue;
		if (!strncmp(line, "0::", 3)) {
			snprintf(out, len, "%s", q + 1);
			*v1 = false;
			found = true;
		} else if (q - p - 1 == 6 && !strncmp(p + 1, "memory", 6)) {
			snprintf(out, len, "%s", q + 1);
			*v1 = true;
			found = true;
			break;
		}
	}
	fclose(f);
	return found;
}

int pvm_memlock_host_read(const char *root, pid_t pid, struct pvm_memlock_host *host, struct pvm_error *err)
{
	char cg[256], path[PATH_MAX];
	bool v1 = false;

	if (!host)
		return pvm_error_set(err, -EINVAL, "no host struct given");
	memset(host, 0, sizeof(*host));
	if (!root || !*root)
		root = "";
	else if (!strcmp(root, "/"))
		root = "";
	host->ram_bytes = read_meminfo(root);
	if (!read_cgroup(root, pid, cg, sizeof(cg), &v1))
		return 0;
	/* memory.max applies to the whole subtree: the effective limit is the smallest on the path. */
	for (;;) {
		uint64_t lim;
		char *slash;

		if (v1)
			snprintf(path, sizeof(path), "%s/sys/fs/cgroup/memory%s/memory.limit_in_bytes", root, cg);
		else
			snprintf(path, sizeof(path), "%s/sys/fs/cgroup%s/memory.max", root, cg);
		lim = read_limit(path);
		if (lim && (!host->cgroup_max_bytes || lim < host->cgroup_max_bytes)) {
			host->cgroup_max_bytes = lim;
			snprintf(host->cgroup_path, sizeof(host->cgroup_path), "%s", cg[0] ? cg : "/");
		}
		slash = strrchr(cg, '/');
		if (!slash || (slash == cg && !cg[1]))
			break;
		if (slash == cg)
			cg[1] = '\0';
		else
			*slash = '\0';
	}
	return 0;
}

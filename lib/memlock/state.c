/* SPDX-License-Identifier: MIT */
/* The memlock state file (see state.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <pvmem/memlock.h>

#include "core/util.h"
#include "memlock/state.h"

/* Field 22 of /proc/<pid>/stat; the command name (field 2) may contain spaces and ')'. */
static int read_starttime(pid_t pid, uint64_t *out)
{
	char path[64], buf[1024], *p;
	unsigned long long v;
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (!(f = fopen(path, "re")))
		return errno == ENOENT ? -ESRCH : -errno;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	if (!(p = strrchr(buf, ')')))
		return -EIO;
	p++;
	for (int field = 3; field < 22; field++) {
		p = strchr(p + 1, ' ');
		if (!p)
			return -EIO;
	}
	if (sscanf(p, " %llu", &v) != 1)
		return -EIO;
	*out = v;
	return 0;
}

static int resolve_dir(const char *dir, char **out)
{
	const char *env;

	if (dir && *dir)
		*out = pvm_strdup(dir);
	else if ((env = getenv("PVMEM_STATE_DIR")) && *env)
		*out = pvm_strdup(env);
	else if (geteuid() == 0 || access("/run/pvmem", W_OK) == 0)
		*out = pvm_strdup("/run/pvmem");
	else if ((env = getenv("XDG_RUNTIME_DIR")) && *env)
		*out = pvm_asprintf("%s/pvmem", env);
	else
		return -ENOENT;
	return *out ? 0 : -ENOMEM;
}

static int parse_limit(const char *s, uint64_t *v)
{
	char *end;

	if (!strcmp(s, "unlimited")) {
		*v = PVM_MEMLOCK_INFINITY;
		return 0;
	}
	errno = 0;
	*v = strtoull(s, &end, 10);
	return errno || end == s || *end ? -EINVAL : 0;
}

/* Load @st->path; -ENOENT when absent, -EINVAL when it is not ours or malformed. */
static int load(struct pvm_memlock_state *st)
{
	char line[128], key[32], val[64];
	uint64_t pid = 0, start = 0, soft = 0, hard = 0;
	unsigned seen = 0;
	FILE *f;

	if (!(f = fopen(st->path, "re")))
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (line[0] == '#' || sscanf(line, "%31s %63s", key, val) != 2)
			continue;
		if (!strcmp(key, "pid") && parse_limit(val, &pid) == 0)
			seen |= 1;
		else if (!strcmp(key, "starttime") && parse_limit(val, &start) == 0)
			seen |= 2;
		else if (!strcmp(key, "soft") && parse_limit(val, &soft) == 0)
			seen |= 4;
		else if (!strcmp(key, "hard") && parse_limit(val, &hard) == 0)
			seen |= 8;
	}
	fclose(f);
	if (seen != 15 || pid != (uint64_t)st->pid || start != st->starttime || soft > hard)
		return -EINVAL;
	st->orig_soft = soft;
	st->orig_hard = hard;
	st->have_original = true;
	return 0;
}

int pvm_memlock_state_open(struct pvm_memlock_state *st, pid_t pid, const char *dir, struct pvm_error *err)
{
	char *d = NULL;
	int rc;

	memset(st, 0, sizeof(*st));
	st->pid = pid;
	if ((rc = read_starttime(pid, &st->starttime)) < 0) {
		char *path;

		if (rc != -ESRCH)
			return pvm_error_set(err, rc, "cannot read /proc/%d/stat", (int)pid);
		/* The process is gone: a limit saved for it can never be restored, so its state
		 * file would stay behind for good (and mislead the next process with this pid if
		 * the start time were not checked). Remove it. */
		if (resolve_dir(dir, &d) == 0 && (path = pvm_asprintf("%s/memlock-%d.state", d, (int)pid))) {
			if (unlink(path) == 0) {
				pvm_error_set(err, rc, "no process %d (removed its state file %s)", (int)pid, path);
				pvm_free(path);
				pvm_free(d);
				return rc;
			}
			pvm_free(path);
		}
		pvm_free(d);
		return pvm_error_set(err, rc, "no process %d", (int)pid);
	}
	if ((rc = resolve_dir(dir, &d)) < 0)
		return pvm_error_set(err, rc, rc == -ENOMEM ? "out of memory"
				     : "no state directory: pass one (--state-dir) or set XDG_RUNTIME_DIR");
	st->path = pvm_asprintf("%s/memlock-%d.state", d, (int)pid);
	pvm_free(d);
	if (!st->path)
		return pvm_error_set(err, -ENOMEM, "out of memory");
	rc = load(st);
	if (rc == -EINVAL) {
		/* Another process that had this pid, or a damaged file: it cannot be restored. */
		pvm_warn("memlock: ignoring stale state file %s", st->path);
		unlink(st->path);
	}
	return 0;
}

int pvm_memlock_state_save(struct pvm_memlock_state *st, uint64_t soft, uint64_t hard, struct pvm_error *err)
{
	char tmp[4096], dir[4096], *slash;
	char s[32], h[32];
	int fd, n;

	snprintf(dir, sizeof(dir), "%s", st->path);
	if ((slash = strrchr(dir, '/')))
		*slash = '\0';
	if (slash && mkdir(dir, 0700) < 0 && errno != EEXIST)
		return pvm_error_set(err, -errno, "cannot create state directory %s: %s", dir, strerror(errno));
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", st->path) >= (int)sizeof(tmp))
		return pvm_error_set(err, -ENAMETOOLONG, "state path too long");
	if (soft == PVM_MEMLOCK_INFINITY)
		snprintf(s, sizeof(s), "unlimited");
	else
		snprintf(s, sizeof(s), "%llu", (unsigned long long)soft);
	if (hard == PVM_MEMLOCK_INFINITY)
		snprintf(h, sizeof(h), "unlimited");
	else
		snprintf(h, sizeof(h), "%llu", (unsigned long long)hard);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return pvm_error_set(err, -errno, "cannot write %s: %s", tmp, strerror(errno));
	n = dprintf(fd, "# pvmem memlock state: RLIMIT_MEMLOCK before pvmem changed it\n"
		    "pid %d\nstarttime %llu\nsoft %s\nhard %s\n", (int)st->pid,
		    (unsigned long long)st->starttime, s, h);
	if (n < 0 || fsync(fd) < 0) {
		int e = errno ? errno : EIO;

		close(fd);
		unlink(tmp);
		return pvm_error_set(err, -e, "cannot write %s: %s", tmp, strerror(e));
	}
	close(fd);
	if (rename(tmp, st->path) < 0) {
		int e = errno;

		unlink(tmp);
		return pvm_error_set(err, -e, "cannot write %s: %s", st->path, strerror(e));
	}
	st->orig_soft = soft;
	st->orig_hard = hard;
	st->have_original = true;
	return 0;
}

int pvm_memlock_state_remove(struct pvm_memlock_state *st, struct pvm_error *err)
{
	st->have_original = false;
	if (unlink(st->path) < 0 && errno != ENOENT)
		return pvm_error_set(err, -errno, "cannot remove %s: %s", st->path, strerror(errno));
	return 0;
}

void pvm_memlock_state_clear(struct pvm_memlock_state *st)
{
	pvm_free(st->path);
	st->path = NULL;
}

/* SPDX-License-Identifier: MIT */
/*
 * Applying RLIMIT_MEMLOCK to a running process through its devices' life: the only code in
 * pvmem that calls prlimit(2), always through the hook table (apply-priv.h).
 *
 * Differences from libvirt's qemuDomainSetMaxMemLock() (deliberate, see docs/memlock.md):
 *  - the original limit is saved at the FIRST change of any kind, in a state file, so that a
 *    restarted manager can restore it, also for a VM that started with devices;
 *  - after a detach the limit goes down to the exact remaining need (libvirt only restores the
 *    original once nothing at all needs locking);
 *  - "already high enough" compares the SOFT limit, which is what the kernel checks.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <linux/capability.h>

#include <pvmem/memlock.h>

#include "core/util.h"
#include "memlock/apply-priv.h"
#include "memlock/state.h"

static int real_prlimit(void *opaque, pid_t pid, const struct rlimit *nl, struct rlimit *ol)
{
	return prlimit(pid, RLIMIT_MEMLOCK, nl, ol) < 0 ? -errno : 0;
}

static bool real_has_cap(void *opaque)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[256];
	bool has = false;

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long caps;

		if (sscanf(line, "CapEff: %llx", &caps) == 1) {
			has = caps & (1ULL << CAP_SYS_RESOURCE);
			break;
		}
	}
	fclose(f);
	return has;
}

static const struct pvm_memlock_hooks real_hooks = { real_prlimit, real_has_cap, NULL };
static struct pvm_memlock_hooks hooks = { real_prlimit, real_has_cap, NULL };

void pvm_memlock_set_hooks(const struct pvm_memlock_hooks *h)
{
	hooks = h ? *h : real_hooks;
}

static uint64_t from_rlim(rlim_t v)
{
	return v == RLIM_INFINITY ? PVM_MEMLOCK_INFINITY : (uint64_t)v;
}

static rlim_t to_rlim(uint64_t v)
{
	return v == PVM_MEMLOCK_INFINITY ? RLIM_INFINITY : (rlim_t)v;
}

static const char *fmt_limit(uint64_t v, char *buf, size_t len)
{
	if (v == PVM_MEMLOCK_INFINITY)
		return "unlimited";
	return pvm_size_format(v, buf, len);
}

/* /proc/<pid>/limits: "Max locked memory   8388608   8388608   bytes". */
static int limits_from_proc(pid_t pid, uint64_t *soft, uint64_t *hard)
{
	char path[64], line[256];
	int rc = -EIO;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/limits", pid > 0 ? (int)pid : (int)getpid());
	if (!(f = fopen(path, "re")))
		return errno == ENOENT ? -ESRCH : -errno;
	while (fgets(line, sizeof(line), f)) {
		char s[32], h[32];

		if (strncmp(line, "Max locked memory", 17))
			continue;
		if (sscanf(line + 17, "%31s %31s", s, h) != 2)
			break;
		*soft = !strcmp(s, "unlimited") ? PVM_MEMLOCK_INFINITY : strtoull(s, NULL, 10);
		*hard = !strcmp(h, "unlimited") ? PVM_MEMLOCK_INFINITY : strtoull(h, NULL, 10);
		rc = 0;
		break;
	}
	fclose(f);
	return rc;
}

int pvm_memlock_get(pid_t pid, uint64_t *soft, uint64_t *hard, struct pvm_error *err)
{
	struct rlimit old;
	uint64_t s, h;
	int rc;

	if (pid < 0)
		return pvm_error_set(err, -EINVAL, "invalid pid %d", (int)pid);
	rc = hooks.prlimit(hooks.opaque, pid, NULL, &old);
	if (rc == 0) {
		s = from_rlim(old.rlim_cur);
		h = from_rlim(old.rlim_max);
	} else if (rc == -EPERM || rc == -EACCES) {
		/* Reading another user's limit with prlimit needs CAP_SYS_RESOURCE; /proc does not. */
		if ((rc = limits_from_proc(pid, &s, &h)) < 0)
			return pvm_error_set(err, rc, "cannot read RLIMIT_MEMLOCK of process %d", (int)pid);
	} else {
		return pvm_error_set(err, rc, "cannot read RLIMIT_MEMLOCK of process %d: %s", (int)pid,
				     strerror(-rc));
	}
	PVM_TRACE(memlock_get, "pid=%d soft=0x%llx hard=0x%llx", (int)pid, (unsigned long long)s,
		  (unsigned long long)h);
	if (soft)
		*soft = s;
	if (hard)
		*hard = h;
	return 0;
}

/* Set both limits; EPERM gets a message that names the capability. */
static int set_limits(pid_t pid, uint64_t soft, uint64_t hard, struct pvm_error *err)
{
	struct rlimit nl = { .rlim_cur = to_rlim(soft), .rlim_max = to_rlim(hard) };
	char a[32], b[32];
	uint64_t cs = 0, ch = 0;
	int rc;

	PVM_TRACE(memlock_set, "pid=%d soft=0x%llx hard=0x%llx", (int)pid, (unsigned long long)soft,
		  (unsigned long long)hard);
	rc = hooks.prlimit(hooks.opaque, pid, &nl, NULL);
	PVM_TRACE(memlock_set_done, "pid=%d rc=%d", (int)pid, rc);
	if (rc == 0)
		return 0;
	if (rc != -EPERM)
		return pvm_error_set(err, rc, "cannot set RLIMIT_MEMLOCK of process %d to %s: %s", (int)pid,
				     fmt_limit(soft, a, sizeof(a)), strerror(-rc));
	if (pvm_memlock_get(pid, &cs, &ch, NULL) == 0 && hard > ch) {
		if (hooks.has_cap_sys_resource(hooks.opaque))
			return pvm_error_set(err, -EPERM,
					     "raising RLIMIT_MEMLOCK of process %d above its hard limit %s to %s "
					     "was refused although CAP_SYS_RESOURCE is held (a sandbox or "
					     "the kernel forbids it)", (int)pid, fmt_limit(ch, b, sizeof(b)),
					     fmt_limit(hard, a, sizeof(a)));
		return pvm_error_set(err, -EPERM,
				     "raising RLIMIT_MEMLOCK of process %d above its hard limit %s to %s "
				     "needs CAP_SYS_RESOURCE", (int)pid, fmt_limit(ch, b, sizeof(b)),
				     fmt_limit(hard, a, sizeof(a)));
	}
	return pvm_error_set(err, -EPERM,
			     "changing RLIMIT_MEMLOCK of process %d needs CAP_SYS_RESOURCE (or the "
			     "same user as the process)", (int)pid);
}

/* ---- the controller ------------------------------------------------------------------------ */

struct pvm_memlock_ctl {
	struct pvm_memlock_state st; /* pid, start time, original limits, state file */
	unsigned flags;              /* enum pvm_memlock_ctl_flags */
};

int pvm_memlock_ctl_open(pid_t pid, const char *state_dir, unsigned flags, struct pvm_memlock_ctl **out,
			 struct pvm_error *err)
{
	struct pvm_memlock_ctl *ctl;
	int rc;

	if (!out || pid <= 0)
		return pvm_error_set(err, -EINVAL, "invalid pid %d", (int)pid);
	if (flags & ~(unsigned)PVM_MEMLOCK_CTL_SOFT_ONLY)
		return pvm_error_set(err, -EINVAL, "unknown flags 0x%x", flags);
	if (!(ctl = pvm_calloc(1, sizeof(*ctl))))
		return pvm_error_set(err, -ENOMEM, "out of memory");
	ctl->flags = flags;
	if ((rc = pvm_memlock_state_open(&ctl->st, pid, state_dir, err)) < 0) {
		pvm_free(ctl);
		return rc;
	}
	PVM_TRACE(memlock_ctl_open, "pid=%d state=%s original=%d", (int)pid, ctl->st.path,
		  ctl->st.have_original);
	*out = ctl;
	return 0;
}

void pvm_memlock_ctl_free(struct pvm_memlock_ctl *ctl)
{
	if (!ctl)
		return;
	pvm_memlock_state_clear(&ctl->st);
	pvm_free(ctl);
}

bool pvm_memlock_ctl_original(const struct pvm_memlock_ctl *ctl, uint64_t *soft, uint64_t *hard)
{
	if (!ctl->st.have_original)
		return false;
	if (soft)
		*soft = ctl->st.orig_soft;
	if (hard)
		*hard = ctl->st.orig_hard;
	return true;
}

const char *pvm_memlock_ctl_state_path(const struct pvm_memlock_ctl *ctl)
{
	return ctl->st.path;
}

/* Set the limits for @need (BYTES or UNLIMITED), saving the original first. */
static int apply_need(struct pvm_memlock_ctl *ctl, const struct pvm_memlock_result *need, uint64_t cs,
		      uint64_t ch, struct pvm_error *err)
{
	uint64_t want = pvm_memlock_result_bytes(need), soft = want, hard = want;
	int rc;

	if (ctl->flags & PVM_MEMLOCK_CTL_SOFT_ONLY)
		hard = PVM_MAX(ch, want);
	if (soft == cs && hard == ch)
		return 0;
	if (!ctl->st.have_original && (rc = pvm_memlock_state_save(&ctl->st, cs, ch, err)) < 0)
		return rc;
	return set_limits(ctl->st.pid, soft, hard, err);
}

int pvm_memlock_ctl_set(struct pvm_memlock_ctl *ctl, const struct pvm_memlock_result *need,
			struct pvm_error *err)
{
	uint64_t cs, ch;
	int rc;

	if (!ctl || !need)
		return pvm_error_set(err, -EINVAL, "no controller or need given");
	PVM_TRACE(memlock_ctl_set, "pid=%d kind=%d bytes=0x%llx", (int)ctl->st.pid,
		  (int)pvm_memlock_result_kind(need), (unsigned long long)pvm_memlock_result_bytes(need));
	if (pvm_memlock_result_kind(need) == PVM_MEMLOCK_NONE)
		return 0;
	if ((rc = pvm_memlock_get(ctl->st.pid, &cs, &ch, err)) < 0)
		return rc;
	return apply_need(ctl, need, cs, ch, err);
}

int pvm_memlock_ctl_before_attach(struct pvm_memlock_ctl *ctl, const struct pvm_memlock_result *need,
				  struct pvm_error *err)
{
	uint64_t cs, ch;
	int rc;

	if (!ctl || !need)
		return pvm_error_set(err, -EINVAL, "no controller or need given");
	PVM_TRACE(memlock_before_attach, "pid=%d kind=%d bytes=0x%llx", (int)ctl->st.pid,
		  (int)pvm_memlock_result_kind(need), (unsigned long long)pvm_memlock_result_bytes(need));
	if (pvm_memlock_result_kind(need) == PVM_MEMLOCK_NONE)
		return 0;
	if ((rc = pvm_memlock_get(ctl->st.pid, &cs, &ch, err)) < 0)
		return rc;
	if (cs >= pvm_memlock_result_bytes(need))
		return 0; /* already enough: never lower before an attach */
	rc = apply_need(ctl, need, cs, ch, err);
	if (rc < 0)
		pvm_error_prefix(err, "cannot raise the limit for the new device, do not attach it");
	return rc;
}

int pvm_memlock_ctl_restore(struct pvm_memlock_ctl *ctl, struct pvm_error *err)
{
	int rc;

	if (!ctl)
		return pvm_error_set(err, -EINVAL, "no controller given");
	PVM_TRACE(memlock_restore, "pid=%d original=%d", (int)ctl->st.pid, ctl->st.have_original);
	if (!ctl->st.have_original)
		return 0;
	if ((rc = set_limits(ctl->st.pid, ctl->st.orig_soft, ctl->st.orig_hard, err)) < 0)
		return rc;
	return pvm_memlock_state_remove(&ctl->st, err);
}

int pvm_memlock_ctl_after_detach(struct pvm_memlock_ctl *ctl, const struct pvm_memlock_result *need,
				 struct pvm_error *err)
{
	uint64_t cs, ch;
	int rc;

	if (!ctl || !need)
		return pvm_error_set(err, -EINVAL, "no controller or need given");
	PVM_TRACE(memlock_after_detach, "pid=%d kind=%d bytes=0x%llx", (int)ctl->st.pid,
		  (int)pvm_memlock_result_kind(need), (unsigned long long)pvm_memlock_result_bytes(need));
	if (pvm_memlock_result_kind(need) == PVM_MEMLOCK_NONE)
		return pvm_memlock_ctl_restore(ctl, err);
	if ((rc = pvm_memlock_get(ctl->st.pid, &cs, &ch, err)) < 0)
		return rc;
	return apply_need(ctl, need, cs, ch, err);
}

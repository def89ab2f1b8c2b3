/* SPDX-License-Identifier: MIT */
/*
 * The system calls of the memlock applier, behind a hook table so that tests can record them and
 * play any kernel answer (EPERM above the hard limit, ESRCH ...). Not exported: unit tests link
 * the module's static library.
 */
#ifndef PVM_MEMLOCK_APPLY_PRIV_H
#define PVM_MEMLOCK_APPLY_PRIV_H

#include <stdbool.h>
#include <sys/resource.h>
#include <sys/types.h>

struct pvm_memlock_hooks {
	/* prlimit(2) on RLIMIT_MEMLOCK: @new_limit and/or @old_limit may be NULL. 0 or -errno. */
	int (*prlimit)(void *opaque, pid_t pid, const struct rlimit *new_limit, struct rlimit *old_limit);
	/* True when this process holds CAP_SYS_RESOURCE in its effective set (for messages). */
	bool (*has_cap_sys_resource)(void *opaque);
	void *opaque; /* passed to the hooks */
};

/* Install @hooks (copied); NULL restores the real system calls. Not thread-safe: tests only. */
void pvm_memlock_set_hooks(const struct pvm_memlock_hooks *hooks);

#endif

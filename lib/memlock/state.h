/* SPDX-License-Identifier: MIT */
/*
 * The memlock state file: the RLIMIT_MEMLOCK a process had before pvmem first changed it, so
 * that a restarted manager can still restore it (libvirt keeps originalMemlock in its status
 * XML for the same reason). One small text file per process:
 *
 *     # pvmem memlock state
 *     pid 1234
 *     starttime 987654        (field 22 of /proc/PID/stat: a reused pid does not match)
 *     soft 8388608            (bytes, or "unlimited")
 *     hard 8388608
 */
#ifndef PVM_MEMLOCK_STATE_H
#define PVM_MEMLOCK_STATE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <pvmem/core.h>

struct pvm_memlock_state {
	pid_t pid;            /* the process */
	uint64_t starttime;   /* its start time in clock ticks since boot */
	char *path;           /* "<dir>/memlock-<pid>.state" */
	bool have_original;   /* an original is saved (in memory and in the file) */
	uint64_t orig_soft;   /* original soft limit, PVM_MEMLOCK_INFINITY = unlimited */
	uint64_t orig_hard;   /* original hard limit */
};

/* Resolve the directory (@dir, $PVMEM_STATE_DIR, /run/pvmem when writable, else
 * $XDG_RUNTIME_DIR/pvmem), read the process start time (-ESRCH when it is gone) and load an
 * existing file for the same process. A file for an older process with the same pid is removed. */
int pvm_memlock_state_open(struct pvm_memlock_state *st, pid_t pid, const char *dir, struct pvm_error *err);
/* Remember @soft/@hard as the original and write the file (atomically, mode 0600). */
int pvm_memlock_state_save(struct pvm_memlock_state *st, uint64_t soft, uint64_t hard, struct pvm_error *err);
/* Forget the original and remove the file. */
int pvm_memlock_state_remove(struct pvm_memlock_state *st, struct pvm_error *err);
void pvm_memlock_state_clear(struct pvm_memlock_state *st);

#endif

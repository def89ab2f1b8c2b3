/* SPDX-License-Identifier: MIT */
/*
 * mprotect enforcement: unplugged blocks become PROT_READ (private anonymous memory: reads map
 * the zero page) or PROT_NONE (shared backends, where a read would allocate page cache). A
 * write raises SIGSEGV; one process-wide handler (installed on first use, chained to the
 * handler that was there before) looks the address up in a fixed table of enforcers, counts the
 * trap, passes a record to the enforcer's monitor thread through a pipe (write(2) is
 * async-signal-safe) and applies the policy. Each protected run is a separate VMA: the worst
 * case (every other block unplugged) costs one VMA per block, against vm.max_map_count.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "core/util.h"
#include "mem/enforce-priv.h"

#define MP_SLOTS 64

static struct pvm_enforce *_Atomic mp_table[MP_SLOTS];
static struct sigaction mp_old;          /* the SIGSEGV handler before ours */
static pthread_mutex_t mp_lock = PTHREAD_MUTEX_INITIALIZER;
static bool mp_installed;

static void chain(int sig, siginfo_t *si, void *ctx)
{
	if (mp_old.sa_flags & SA_SIGINFO) {
		mp_old.sa_sigaction(sig, si, ctx);
	} else if (mp_old.sa_handler == SIG_DFL || mp_old.sa_handler == SIG_IGN) {
		/* Default action: restore it and let the access fault again. */
		signal(sig, SIG_DFL);
	} else {
		mp_old.sa_handler(sig);
	}
}

static void on_segv(int sig, siginfo_t *si, void *ctx)
{
	uintptr_t a = (uintptr_t)si->si_addr;
	int saved = errno;

	for (int i = 0; i < MP_SLOTS; i++) {
		struct pvm_enforce *e = atomic_load(&mp_table[i]);
		uintptr_t base;
		uint64_t off;
		struct pvm_enforce_rec rec;

		if (!e)
			continue;
		base = (uintptr_t)e->base;
		if (a < base || a - base >= e->size)
			continue;
		off = a - base;
		if (!pvm_bitmap_test(e->prot, off / e->block_size)) {
			/* Being unprotected right now: retry the access. */
			errno = saved;
			return;
		}
		rec.addr = PVM_ALIGN_DOWN((uint64_t)a, e->page_size);
		rec.tid = (uint32_t)syscall(SYS_gettid);
		rec.action = e->policy;
		atomic_fetch_add(&e->traps, 1);
		if (e->policy == PVM_ENFORCE_ALLOW) {
			atomic_fetch_add(&e->allowed, 1);
			(void)mprotect((void *)(uintptr_t)rec.addr, e->page_size, PROT_READ | PROT_WRITE);
		} else if (e->policy == PVM_ENFORCE_DENY) {
			atomic_fetch_add(&e->denied, 1);
		}
		if (write(e->wake_pipe[1], &rec, sizeof(rec)) < 0) {
			/* Pipe full: the trap is counted but not reported. */
		}
		if (e->policy == PVM_ENFORCE_KILL) {
			struct timespec ts = { 1, 0 };

			for (;;)    /* the monitor kills the process */
				nanosleep(&ts, NULL);
		}
		errno = saved;
		if (e->policy == PVM_ENFORCE_DENY)
			chain(sig, si, ctx);
		return;
	}
	errno = saved;
	chain(sig, si, ctx);
}

static void *monitor(void *arg)
{
	struct pvm_enforce *e = arg;
	struct pvm_enforce_rec rec;

	for (;;) {
		ssize_t n = read(e->wake_pipe[0], &rec, sizeof(rec));

		if (n < 0 && errno == EINTR)
			continue;
		if (n != (ssize_t)sizeof(rec) || rec.addr == 0)
			break;   /* closed, or the stop record */
		pvm_enforce_report(e, &rec);
	}
	return NULL;
}

int pvm_enforce_mprotect_init(struct pvm_enforce *e, struct pvm_error *err)
{
	int rc, slot = -1;

	if (pipe2(e->wake_pipe, O_CLOEXEC) < 0)
		return pvm_error_set(err, -errno, "cannot create a pipe");
	(void)fcntl(e->wake_pipe[1], F_SETFL, O_NONBLOCK);
	pthread_mutex_lock(&mp_lock);
	for (int i = 0; i < MP_SLOTS && slot < 0; i++)
		if (!atomic_load(&mp_table[i]))
			slot = i;
	if (slot >= 0) {
		struct sigaction sa = { .sa_sigaction = on_segv, .sa_flags = SA_SIGINFO | SA_NODEFER };
		struct sigaction cur;

		/* (Re)install when someone replaced ours since: theirs becomes the one we chain to. */
		sigemptyset(&sa.sa_mask);
		if (sigaction(SIGSEGV, NULL, &cur) < 0 ||
		    (!(mp_installed && (cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == on_segv) &&
		     sigaction(SIGSEGV, &sa, &mp_old) < 0))
			slot = -2;
		else
			mp_installed = true;
	}
	if (slot >= 0)
		atomic_store(&mp_table[slot], e);
	pthread_mutex_unlock(&mp_lock);
	if (slot < 0) {
		pvm_enforce_mprotect_fini(e);
		return pvm_error_set(err, slot == -1 ? -ENOSPC : -EINVAL,
				     slot == -1 ? "too many mprotect enforcers" : "cannot install the SIGSEGV handler");
	}
	e->mp_slot = slot;
	rc = pthread_create(&e->monitor, NULL, monitor, e);
	if (rc) {
		pvm_enforce_mprotect_fini(e);
		return pvm_error_set(err, -rc, "cannot start the enforcement monitor");
	}
	e->monitor_running = true;
	return 0;
}

void pvm_enforce_mprotect_fini(struct pvm_enforce *e)
{
	if (e->mp_slot >= 0) {
		atomic_store(&mp_table[e->mp_slot], NULL);
		e->mp_slot = -1;
		/* Lift every protection we set. */
		(void)mprotect(e->base, e->size, PROT_READ | PROT_WRITE);
	}
	if (e->monitor_running) {
		struct pvm_enforce_rec stop = { 0 };

		(void)fcntl(e->wake_pipe[1], F_SETFL, 0);
		if (write(e->wake_pipe[1], &stop, sizeof(stop)) < 0)
			pvm_warn("enforcement: cannot stop the monitor");
		pthread_join(e->monitor, NULL);
		e->monitor_running = false;
	}
	for (int i = 0; i < 2; i++)
		if (e->wake_pipe[i] >= 0) {
			close(e->wake_pipe[i]);
			e->wake_pipe[i] = -1;
		}
}

int pvm_enforce_mprotect_set(struct pvm_enforce *e, uint64_t first, uint64_t count, bool protect,
			     struct pvm_error *err)
{
	int prot = PROT_READ | PROT_WRITE;

	if (protect)
		prot = e->private_anon ? PROT_READ : PROT_NONE;
	if (mprotect(e->base + first * e->block_size, count * e->block_size, prot) < 0) {
		int rc = -errno;

		return pvm_error_set(err, rc, rc == -ENOMEM ? "mprotect failed: too many mappings "
							      "(vm.max_map_count)"
							    : "mprotect failed");
	}
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * The machine's single-threaded loop: watched fds (the control socket) and the devices'
 * interrupt line through epoll, then the devices' timers and the guest, cooperatively.
 *
 * When does the loop sleep? Never while the guest is busy (it has requests to send right now).
 * Otherwise it sleeps in epoll_wait until an fd is readable, a device raises an interrupt, or
 * the guest's or the balloon's timer is due. Every transport's interrupt line writes to one
 * eventfd (pvm_machine_irq(), any thread), so a configuration change made by a control call or
 * an answer completed on a device's worker thread wakes the loop at once: no request waits for
 * a timeout, and a guest waiting for a long (asynchronous) answer does not spin.
 */
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "machine/machine-priv.h"

/* epoll data of the interrupt eventfd (watched fds use their slot index). */
#define IRQ_TOKEN ((uint64_t)PVM_MACHINE_MAX_FDS)
/* A waiting guest is looked at at least this often, should an answer come without an
 * interrupt (a driver that suppressed them). */
#define WAIT_POLL_MS 10

int pvm_machine_loop_init(struct pvm_machine *m, struct pvm_error *err)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = IRQ_TOKEN };

	for (size_t i = 0; i < PVM_MACHINE_MAX_FDS; i++)
		m->fds[i].fd = -1;
	m->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (m->epfd < 0)
		return pvm_error_set(err, -errno, "epoll_create1: %s", strerror(errno));
	m->irqfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (m->irqfd < 0)
		return pvm_error_set(err, -errno, "eventfd: %s", strerror(errno));
	if (epoll_ctl(m->epfd, EPOLL_CTL_ADD, m->irqfd, &ev) < 0)
		return pvm_error_set(err, -errno, "epoll_ctl: %s", strerror(errno));
	return 0;
}

void pvm_machine_loop_fini(struct pvm_machine *m)
{
	if (m->irqfd >= 0)
		close(m->irqfd);
	if (m->epfd >= 0)
		close(m->epfd);
	m->irqfd = -1;
	m->epfd = -1;
}

void pvm_machine_irq(void *opaque, bool level)
{
	struct pvm_machine *m = opaque;
	uint64_t one = 1;
	ssize_t put;

	if (!level)
		return;
	__atomic_store_n(&m->irq_pending, true, __ATOMIC_SEQ_CST);
	/* EAGAIN (counter saturated) still leaves the fd readable. */
	put = write(m->irqfd, &one, sizeof(one));
	(void)put;
}

int pvm_machine_add_fd(struct pvm_machine *m, int fd, uint32_t events,
		       void (*cb)(void *opaque, int fd, uint32_t events), void *opaque)
{
	struct epoll_event ev = { .events = events };
	size_t i, slot = PVM_MACHINE_MAX_FDS;

	for (i = 0; i < PVM_MACHINE_MAX_FDS; i++) {
		if (m->fds[i].fd == fd)
			return -EEXIST;
		if (m->fds[i].fd < 0 && slot == PVM_MACHINE_MAX_FDS)
			slot = i;
	}
	if (slot == PVM_MACHINE_MAX_FDS)
		return -ENOSPC;
	ev.data.u64 = slot;
	if (epoll_ctl(m->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -errno;
	m->fds[slot] = (struct pvm_machine_fd){ .fd = fd, .cb = cb, .opaque = opaque };
	return 0;
}

void pvm_machine_remove_fd(struct pvm_machine *m, int fd)
{
	for (size_t i = 0; i < PVM_MACHINE_MAX_FDS; i++) {
		if (m->fds[i].fd == fd) {
			(void)epoll_ctl(m->epfd, EPOLL_CTL_DEL, fd, NULL);
			m->fds[i].fd = -1;
		}
	}
}

/* How long this round may sleep: @timeout_ms bounded by the timers and a waiting guest. */
static int round_timeout(struct pvm_machine *m, int timeout_ms, uint64_t now)
{
	uint64_t next = 0;

	if (m->guest_busy || __atomic_load_n(&m->irq_pending, __ATOMIC_SEQ_CST))
		return 0;
	if (m->guest_timer_ms)
		next = m->guest_timer_ms;
	if (m->balloon_timer_ms && (!next || m->balloon_timer_ms < next))
		next = m->balloon_timer_ms;
	if (next) {
		uint64_t wait = next > now ? next - now : 0;

		if (timeout_ms < 0 || wait < (uint64_t)timeout_ms)
			timeout_ms = (int)PVM_MIN(wait, (uint64_t)INT32_MAX);
	}
	if (m->guest_waiting && (timeout_ms < 0 || timeout_ms > WAIT_POLL_MS))
		timeout_ms = WAIT_POLL_MS;
	return timeout_ms;
}

int pvm_machine_run_once(struct pvm_machine *m, int timeout_ms)
{
	struct epoll_event evs[PVM_MACHINE_MAX_FDS + 1];
	uint64_t now = pvm_machine_now_ms(m);
	int n;

	n = epoll_wait(m->epfd, evs, PVM_MACHINE_MAX_FDS + 1, round_timeout(m, timeout_ms, now));
	if (n < 0 && errno != EINTR)
		return -errno;
	for (int i = 0; i < n; i++) {
		struct pvm_machine_fd *f;

		if (evs[i].data.u64 == IRQ_TOKEN) {
			uint64_t count;
			/* Drain it (EAGAIN: nothing left); irq_pending says what to do. */
			ssize_t got = read(m->irqfd, &count, sizeof(count));

			(void)got;
			continue;
		}
		f = &m->fds[evs[i].data.u64 % PVM_MACHINE_MAX_FDS];
		if (f->fd >= 0 && f->cb)
			f->cb(f->opaque, f->fd, evs[i].events);
	}
	pvm_machine_drain_traps(m);
	now = pvm_machine_now_ms(m);
	if (m->balloon)
		m->balloon_timer_ms = pvm_balloon_tick(m->balloon, now);
	/* Cleared before the guest looks: an interrupt raised while it runs is seen next round. */
	__atomic_store_n(&m->irq_pending, false, __ATOMIC_SEQ_CST);
	if (m->guest_ops && m->guest_ops->tick) {
		bool busy = false;

		m->guest_timer_ms = m->guest_ops->tick(m->guest, now, &busy);
		m->guest_busy = busy;
		m->guest_waiting = m->guest_ops->waiting && m->guest_ops->waiting(m->guest);
	} else {
		m->guest_busy = false;
		m->guest_waiting = false;
	}
	return 0;
}

bool pvm_machine_idle(struct pvm_machine *m, bool timers_too)
{
	if (m->guest_busy || m->guest_waiting || __atomic_load_n(&m->irq_pending, __ATOMIC_SEQ_CST))
		return false;
	if (timers_too && m->guest_timer_ms)
		return false;
	return true;
}

int pvm_machine_settle(struct pvm_machine *m, uint64_t timeout_ms)
{
	uint64_t end = pvm_machine_now_ms(m) + timeout_ms;

	for (;;) {
		uint64_t now = pvm_machine_now_ms(m);
		bool idle = pvm_machine_idle(m, true);
		int rc;

		if (now > end)
			return -ETIMEDOUT;
		if (m->quit)
			return -ECANCELED;
		/* Idle: one more round without sleeping, to see what is already pending (input on
		 * a watched fd); still idle after it means settled. Otherwise sleep until something
		 * happens (an interrupt, a timer, an fd), at most until the deadline. */
		rc = pvm_machine_run_once(m, idle ? 0 : (int)PVM_MIN(end - now, 1000u));
		if (rc)
			return rc;
		if (idle && pvm_machine_idle(m, true))
			return 0;
	}
}

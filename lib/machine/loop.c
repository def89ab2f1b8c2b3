/* SPDX-License-Identifier: MIT */
/*
 * The machine's single-threaded loop: watched fds (the control socket) through epoll, then the
 * devices' timers and the guest, cooperatively. A busy guest makes the loop poll without
 * sleeping; an idle one lets it sleep until an fd, the guest's timer or the balloon's timer.
 */
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "machine/machine-priv.h"

int pvm_machine_loop_init(struct pvm_machine *m, struct pvm_error *err)
{
	m->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (m->epfd < 0)
		return pvm_error_set(err, -errno, "epoll_create1: %s", strerror(errno));
	for (size_t i = 0; i < PVM_MACHINE_MAX_FDS; i++)
		m->fds[i].fd = -1;
	return 0;
}

void pvm_machine_loop_fini(struct pvm_machine *m)
{
	if (m->epfd >= 0)
		close(m->epfd);
	m->epfd = -1;
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

int pvm_machine_run_once(struct pvm_machine *m, int timeout_ms)
{
	struct epoll_event evs[PVM_MACHINE_MAX_FDS];
	uint64_t now = pvm_machine_now_ms(m);
	int n;

	if (m->guest_busy)
		timeout_ms = 0;
	if (timeout_ms != 0) {
		uint64_t next = 0;

		if (m->guest_timer_ms)
			next = m->guest_timer_ms;
		if (m->balloon_timer_ms && (!next || m->balloon_timer_ms < next))
			next = m->balloon_timer_ms;
		if (next) {
			uint64_t wait = next > now ? next - now : 0;

			if (timeout_ms < 0 || wait < (uint64_t)timeout_ms)
				timeout_ms = (int)wait;
		}
	}
	n = epoll_wait(m->epfd, evs, PVM_MACHINE_MAX_FDS, timeout_ms);
	if (n < 0 && errno != EINTR)
		return -errno;
	for (int i = 0; i < n; i++) {
		struct pvm_machine_fd *f = &m->fds[evs[i].data.u64 % PVM_MACHINE_MAX_FDS];

		if (f->fd >= 0 && f->cb)
			f->cb(f->opaque, f->fd, evs[i].events);
	}
	now = pvm_machine_now_ms(m);
	if (m->balloon)
		m->balloon_timer_ms = pvm_balloon_tick(m->balloon, now);
	if (m->guest_ops && m->guest_ops->tick) {
		bool busy = false;

		m->guest_timer_ms = m->guest_ops->tick(m->guest, now, &busy);
		m->guest_busy = busy;
	} else {
		m->guest_busy = false;
	}
	return 0;
}

bool pvm_machine_idle(struct pvm_machine *m, bool timers_too)
{
	if (m->guest_busy)
		return false;
	if (timers_too && m->guest_timer_ms)
		return false;
	return true;
}

int pvm_machine_settle(struct pvm_machine *m, uint64_t timeout_ms)
{
	uint64_t end = pvm_machine_now_ms(m) + timeout_ms;
	unsigned idle_rounds = 0;

	/* Idle twice in a row: a config-change interrupt raised by the last request is seen. */
	while (idle_rounds < 2) {
		int rc;

		for (size_t i = 0; i < m->nvmems; i++)
			pvm_vmem_wait_idle(m->vmems[i].vmem);
		rc = pvm_machine_run_once(m, m->guest_busy ? 0 : 1);
		if (rc)
			return rc;
		idle_rounds = pvm_machine_idle(m, true) ? idle_rounds + 1 : 0;
		if (pvm_machine_now_ms(m) > end)
			return -ETIMEDOUT;
		if (m->quit)
			return -ECANCELED;
	}
	return 0;
}

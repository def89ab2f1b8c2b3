/* SPDX-License-Identifier: MIT */
/*
 * uffd enforcement: one UFFDIO_REGISTER (write-protect mode) over the whole range, so the
 * mapping is never split; UFFDIO_WRITEPROTECT with UFFD_FEATURE_WP_UNPOPULATED protects
 * discarded (unpopulated) pages with markers: a read maps the shared zero page, a write stops
 * in the kernel and is delivered to the monitor thread below, which applies the policy and
 * always resolves the fault (wake, unprotect or poison), so no thread waits forever.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/util.h"
#include "mem/enforce-priv.h"

/* Newer than Debian 12's headers (Linux 6.4 and 6.6). */
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
#ifndef UFFD_FEATURE_POISON
#define UFFD_FEATURE_POISON (1 << 14)
struct uffdio_poison {
	struct uffdio_range range;
	__u64 mode;
	__s64 updated;
};
#define UFFDIO_POISON _IOWR(UFFDIO, 0x08, struct uffdio_poison)
#endif
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif

#define WANT_FEATURES (UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_WP_UNPOPULATED | \
		       UFFD_FEATURE_THREAD_ID)

/* A userfaultfd with the API handshake done and @features; -errno. Tries the system call
 * (kernel faults included), then /dev/userfaultfd, then user-mode-only faults. */
static int uffd_open(uint64_t *features)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	struct uffdio_api api = { .api = UFFD_API, .features = WANT_FEATURES | UFFD_FEATURE_POISON };

	if (fd < 0) {
		int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);

		if (dev >= 0) {
			fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
			close(dev);
		}
	}
	if (fd < 0)
		fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
	if (fd < 0)
		return -errno;
	if (ioctl(fd, UFFDIO_API, &api) < 0) {
		/* Kernels without UFFD_FEATURE_POISON refuse the request: deny could not work. */
		int rc = -errno;

		close(fd);
		if (rc != -EINVAL)
			return rc;
		return -ENOTSUP;
	}
	if ((api.features & WANT_FEATURES) != WANT_FEATURES) {
		close(fd);
		return -ENOTSUP;
	}
	*features = api.features;
	return fd;
}

bool pvm_enforce_uffd_available(void)
{
	static atomic_int cached = -1;
	int v = atomic_load(&cached);

	if (v < 0) {
		uint64_t f;
		int fd = uffd_open(&f);

		v = fd >= 0;
		if (fd >= 0)
			close(fd);
		atomic_store(&cached, v);
	}
	return v == 1;
}

/* Handle one write fault at @addr (monitor thread). */
static void handle_fault(struct pvm_enforce *e, uint64_t addr, uint32_t tid)
{
	uint64_t page = PVM_ALIGN_DOWN(addr, e->page_size), off = page - (uint64_t)(uintptr_t)e->base;
	struct pvm_enforce_rec rec = { .addr = page, .tid = tid };
	bool report = false;

	pthread_mutex_lock(&e->lock);
	if (off >= e->size || !pvm_bitmap_test(e->prot, off / e->block_size)) {
		/* Stale: the block was unprotected since; let the thread retry. */
		struct uffdio_range r = { .start = page, .len = e->page_size };

		(void)ioctl(e->uffd, UFFDIO_WAKE, &r);
		pthread_mutex_unlock(&e->lock);
		return;
	}
	atomic_fetch_add(&e->traps, 1);
	report = true;
	rec.action = e->policy;
	if (e->policy == PVM_ENFORCE_ALLOW) {
		struct uffdio_writeprotect wp = { .range = { page, e->page_size }, .mode = 0 };

		atomic_fetch_add(&e->allowed, 1);
		if (ioctl(e->uffd, UFFDIO_WRITEPROTECT, &wp) < 0)
			pvm_warn("enforcement: cannot let a write through: %s", strerror(errno));
	} else if (e->policy == PVM_ENFORCE_DENY) {
		struct uffdio_poison po = { .range = { page, e->page_size } };

		atomic_fetch_add(&e->denied, 1);
		/* The kernel may have allocated the page before trapping the write: drop it, then
		 * put a poison marker where it was. The wake-up makes the thread retry and take
		 * SIGBUS (or EFAULT in a system call). */
		(void)madvise((void *)(uintptr_t)page, e->page_size, MADV_DONTNEED);
		if (ioctl(e->uffd, UFFDIO_POISON, &po) < 0) {
			/* No poison support: the thread cannot be made to fail softly. */
			pvm_err("enforcement: cannot poison a denied page (%s): killing the process",
				strerror(errno));
			rec.action = PVM_ENFORCE_KILL;
		} else {
			pvm_bitmap_set(e->poison, off / e->block_size);
		}
	}
	/* KILL: leave the thread waiting; pvm_enforce_report() ends the process. */
	pthread_mutex_unlock(&e->lock);
	if (report)
		pvm_enforce_report(e, &rec);
}

static void *monitor(void *arg)
{
	struct pvm_enforce *e = arg;

	for (;;) {
		struct pollfd p[2] = { { e->uffd, POLLIN, 0 }, { e->wake_pipe[0], POLLIN, 0 } };
		struct uffd_msg msg;
		ssize_t n;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents)
			break;
		n = read(e->uffd, &msg, sizeof(msg));
		if (n != (ssize_t)sizeof(msg))
			continue;
		if (msg.event != UFFD_EVENT_PAGEFAULT)
			continue;
		handle_fault(e, msg.arg.pagefault.address, msg.arg.pagefault.feat.ptid);
	}
	return NULL;
}

int pvm_enforce_uffd_init(struct pvm_enforce *e, struct pvm_error *err)
{
	struct uffdio_register reg = { .range = { (uint64_t)(uintptr_t)e->base, e->size },
				       .mode = UFFDIO_REGISTER_MODE_WP };
	uint64_t features;
	int fd, rc;

	if (!e->private_anon || e->page_size != 4096)
		return pvm_error_set(err, -ENOTSUP,
				     "uffd enforcement needs private anonymous memory with 4 KiB pages");
	fd = uffd_open(&features);
	if (fd < 0)
		return pvm_error_set(err, fd == -ENOTSUP ? -ENOTSUP : fd,
				     "userfaultfd write-protect of unpopulated memory is not available");
	if (ioctl(fd, UFFDIO_REGISTER, &reg) < 0) {
		rc = -errno;
		close(fd);
		return pvm_error_set(err, rc, "cannot register the range with userfaultfd");
	}
	if (pipe2(e->wake_pipe, O_CLOEXEC) < 0) {
		rc = -errno;
		close(fd);
		return pvm_error_set(err, rc, "cannot create a pipe");
	}
	e->uffd = fd;
	rc = pthread_create(&e->monitor, NULL, monitor, e);
	if (rc) {
		pvm_enforce_uffd_fini(e);
		return pvm_error_set(err, -rc, "cannot start the enforcement monitor");
	}
	e->monitor_running = true;
	return 0;
}

void pvm_enforce_uffd_fini(struct pvm_enforce *e)
{
	if (e->monitor_running) {
		char c = 0;

		if (write(e->wake_pipe[1], &c, 1) < 0)
			pvm_warn("enforcement: cannot stop the monitor");
		pthread_join(e->monitor, NULL);
		e->monitor_running = false;
	}
	if (e->uffd >= 0) {
		struct uffdio_range r = { (uint64_t)(uintptr_t)e->base, e->size };

		/* Poison markers must not outlive us: drop them with the unplugged contents. */
		for (uint64_t b = pvm_bitmap_next_set(e->poison, 0); b < e->nblocks;
		     b = pvm_bitmap_next_set(e->poison, b + 1))
			(void)madvise(e->base + b * e->block_size, e->block_size, MADV_DONTNEED);
		(void)ioctl(e->uffd, UFFDIO_UNREGISTER, &r);
		close(e->uffd);
		e->uffd = -1;
	}
	for (int i = 0; i < 2; i++)
		if (e->wake_pipe[i] >= 0) {
			close(e->wake_pipe[i]);
			e->wake_pipe[i] = -1;
		}
}

int pvm_enforce_uffd_set(struct pvm_enforce *e, uint64_t first, uint64_t count, bool protect,
			 struct pvm_error *err)
{
	struct uffdio_writeprotect wp = {
		.range = { (uint64_t)(uintptr_t)(e->base + first * e->block_size), count * e->block_size },
		.mode = protect ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};

	if (!protect) {
		/* Poison markers from denied writes go with the (unplugged, empty) contents. */
		for (uint64_t b = pvm_bitmap_next_set(e->poison, first); b < first + count;
		     b = pvm_bitmap_next_set(e->poison, b + 1)) {
			(void)madvise(e->base + b * e->block_size, e->block_size, MADV_DONTNEED);
			pvm_bitmap_clear(e->poison, b);
		}
	}
	if (ioctl(e->uffd, UFFDIO_WRITEPROTECT, &wp) < 0)
		return pvm_error_set(err, -errno, "UFFDIO_WRITEPROTECT failed");
	return 0;
}

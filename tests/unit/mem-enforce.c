/* SPDX-License-Identifier: MIT */
/*
 * Host enforcement of unplugged memory: a "guest" thread writing into unplugged blocks cannot
 * make the host allocate memory (RSS of the region stays flat) in uffd and mprotect modes; reads
 * see zeros; allow lets writes through and counts them; kill ends the process; VMA costs of the
 * fragmented worst case.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test-util.h"
#include <pvmem/enforce.h>
#include "core/util.h"

#define BS (2 * PVM_MiB)
#define NBLOCKS 32

static __thread sigjmp_buf guest_jmp;     /* where a denied access of the guest thread lands */
static __thread volatile int guest_armed; /* the guest thread is inside a guarded access */

/* The embedder's handler for memory errors (SIGBUS: uffd deny) and for SIGSEGV chained from
 * pvmem's mprotect handler: abandon the access, like a VMM injecting an error. */
static void guest_fault(int sig, siginfo_t *si, void *ctx)
{
	if (guest_armed)
		siglongjmp(guest_jmp, 1);
	signal(sig, SIG_DFL);
}

static void install_guest_handlers(void)
{
	struct sigaction sa = { .sa_sigaction = guest_fault, .sa_flags = SA_SIGINFO | SA_NODEFER };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGSEGV, &sa, NULL);
}

struct guest {
	uint8_t *base;        /* region start */
	unsigned failed;      /* writes that did not happen */
	unsigned done;        /* writes that happened */
	uint64_t sum;         /* of reads */
};

/* Write one byte into every 64 KiB of every block, each write guarded. */
static void *guest_writer(void *arg)
{
	struct guest *g = arg;

	for (volatile uint64_t off = 0; off < NBLOCKS * BS; off += 64 * 1024) {
		guest_armed = 1;
		if (sigsetjmp(guest_jmp, 1) == 0) {
			g->base[off] = 1;
			g->done++;
		} else {
			g->failed++;
		}
		guest_armed = 0;
	}
	return NULL;
}

static void *guest_reader(void *arg)
{
	struct guest *g = arg;

	for (uint64_t off = 0; off < NBLOCKS * BS; off += 4096)
		g->sum += ((volatile uint8_t *)g->base)[off];
	return NULL;
}

struct traps {
	pthread_mutex_t lock;
	unsigned n;           /* reported traps */
};

static void on_trap(void *opaque, const struct pvm_enforce_trap *t)
{
	struct traps *tr = opaque;

	pthread_mutex_lock(&tr->lock);
	tr->n++;
	pthread_mutex_unlock(&tr->lock);
}

static struct pvm_mem_region *region(void)
{
	struct pvm_mem_region_config mc = { .backend = PVM_MEM_BACKEND_ANON, .size = NBLOCKS * BS,
					    .noreserve = true };
	struct pvm_mem_region *r;

	assert_int_equal(pvm_mem_region_new(&mc, &r, NULL), 0);
	return r;
}

static uint64_t resident(struct pvm_mem_region *r)
{
	uint64_t b = 0;

	assert_int_equal(pvm_enforce_resident(r, 0, NBLOCKS * BS, &b, NULL), 0);
	return b;
}

static void run_thread(void *(*fn)(void *), void *arg)
{
	pthread_t t;

	assert_int_equal(pthread_create(&t, NULL, fn, arg), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
}

static void deny_mode(enum pvm_enforce_mode mode)
{
	struct pvm_mem_region *r = region();
	struct traps tr = { PTHREAD_MUTEX_INITIALIZER, 0 };
	struct pvm_enforce_config c = { .mode = mode, .policy = PVM_ENFORCE_DENY, .region = r,
					.size = NBLOCKS * BS, .block_size = BS, .on_trap = on_trap,
					.opaque = &tr };
	struct pvm_enforce *e;
	struct pvm_enforce_stats st;
	struct guest g = { .base = pvm_mem_region_host(r) };
	struct pvm_error err = { 0 };
	unsigned writes = NBLOCKS * BS / (64 * 1024);

	install_guest_handlers();
	if (pvm_enforce_new(&c, &e, &err)) {
		pvm_mem_region_free(r);
		if (mode == PVM_ENFORCE_UFFD) {
			skip();
			return;
		}
		fail_msg("%s", pvm_error_message(&err));
	}
	assert_int_equal(pvm_enforce_get_mode(e), mode);
	/* reads of unplugged memory see zeros and allocate nothing */
	run_thread(guest_reader, &g);
	assert_int_equal(g.sum, 0);
	assert_int_equal(resident(r), 0);
	/* every write is refused and nothing becomes resident */
	run_thread(guest_writer, &g);
	assert_int_equal(g.failed, writes);
	assert_int_equal(g.done, 0);
	assert_int_equal(resident(r), 0);
	pvm_enforce_get_stats(e, &st);
	assert_int_equal(st.traps, writes);
	assert_int_equal(st.denied, writes);
	assert_int_equal(st.protected_blocks, NBLOCKS);
	/* plug half: writes there work again (poison from denied writes is gone) */
	assert_int_equal(pvm_enforce_unprotect(e, 0, NBLOCKS / 2, NULL), 0);
	g.failed = g.done = 0;
	run_thread(guest_writer, &g);
	assert_int_equal(g.done, writes / 2);
	assert_int_equal(g.failed, writes / 2);
	assert_int_equal(resident(r) > 0, true);
	pvm_enforce_free(e);
	/* Every trap was reported before the monitor stopped. In uffd mode a page denied once
	 * keeps failing (poison) without a new trap until its block is plugged. */
	assert_int_equal(tr.n, mode == PVM_ENFORCE_UFFD ? writes : writes + writes / 2);
	pvm_mem_region_free(r);
}

static void test_uffd_deny_keeps_rss_flat(void **state)
{
	deny_mode(PVM_ENFORCE_UFFD);
}

static void test_mprotect_deny_keeps_rss_flat(void **state)
{
	deny_mode(PVM_ENFORCE_MPROTECT);
}

static void allow_mode(enum pvm_enforce_mode mode)
{
	struct pvm_mem_region *r = region();
	struct pvm_enforce_config c = { .mode = mode, .policy = PVM_ENFORCE_ALLOW, .region = r,
					.size = NBLOCKS * BS, .block_size = BS };
	struct pvm_enforce *e;
	struct pvm_enforce_stats st;
	struct guest g = { .base = pvm_mem_region_host(r) };

	install_guest_handlers();
	if (pvm_enforce_new(&c, &e, NULL)) {
		pvm_mem_region_free(r);
		skip();
		return;
	}
	run_thread(guest_writer, &g);
	assert_int_equal(g.failed, 0);
	pvm_enforce_get_stats(e, &st);
	assert_int_equal(st.allowed, g.done);
	assert_true(resident(r) > 0);
	pvm_enforce_free(e);
	pvm_mem_region_free(r);
}

static void test_uffd_allow_counts(void **state)
{
	allow_mode(PVM_ENFORCE_UFFD);
}

static void test_mprotect_allow_counts(void **state)
{
	allow_mode(PVM_ENFORCE_MPROTECT);
}

/* kill: the process dies (in a child). */
static void test_kill_policy(void **state)
{
	enum pvm_enforce_mode modes[] = { PVM_ENFORCE_UFFD, PVM_ENFORCE_MPROTECT };

	for (size_t i = 0; i < PVM_ARRAY_SIZE(modes); i++) {
		int status;
		pid_t pid = fork();

		assert_true(pid >= 0);
		if (pid == 0) {
			struct pvm_mem_region *r = region();
			struct pvm_enforce_config c = { .mode = modes[i], .policy = PVM_ENFORCE_KILL,
							.region = r, .size = NBLOCKS * BS, .block_size = BS };
			struct pvm_enforce *e;

			if (pvm_enforce_new(&c, &e, NULL))
				_exit(77);
			((volatile uint8_t *)pvm_mem_region_host(r))[BS * 3] = 1;
			_exit(0);
		}
		assert_int_equal(waitpid(pid, &status, 0), pid);
		if (WIFEXITED(status) && WEXITSTATUS(status) == 77)
			continue;
		assert_true(WIFSIGNALED(status));
		assert_int_equal(WTERMSIG(status), SIGKILL);
	}
}

/* The fragmented worst case: every other block protected. */
static void test_vma_cost(void **state)
{
	enum pvm_enforce_mode modes[] = { PVM_ENFORCE_NONE, PVM_ENFORCE_UFFD, PVM_ENFORCE_MPROTECT };
	int64_t want[] = { 1, 1, NBLOCKS };

	for (size_t i = 0; i < PVM_ARRAY_SIZE(modes); i++) {
		struct pvm_mem_region *r = region();
		struct pvm_enforce_config c = { .mode = modes[i], .region = r, .size = NBLOCKS * BS,
						.block_size = BS };
		struct pvm_enforce *e;

		if (pvm_enforce_new(&c, &e, NULL)) {
			pvm_mem_region_free(r);
			continue;
		}
		for (uint64_t b = 0; b < NBLOCKS; b += 2)
			assert_int_equal(pvm_enforce_unprotect(e, b, 1, NULL), 0);
		assert_int_equal(pvm_enforce_count_vmas(pvm_mem_region_host(r), NBLOCKS * BS), want[i]);
		assert_false(pvm_enforce_is_protected(e, 0));
		assert_true(pvm_enforce_is_protected(e, 1));
		pvm_enforce_free(e);
		pvm_mem_region_free(r);
	}
}

static void test_ranges_and_names(void **state)
{
	struct pvm_mem_region *r = region();
	struct pvm_enforce_config c = { .mode = PVM_ENFORCE_MPROTECT, .region = r, .size = NBLOCKS * BS,
					.block_size = BS };
	struct pvm_enforce *e;
	enum pvm_enforce_mode m;
	enum pvm_enforce_policy p;

	assert_int_equal(pvm_enforce_new(&c, &e, NULL), 0);
	assert_int_equal(pvm_enforce_protect(e, NBLOCKS, 1, NULL), -EINVAL);
	assert_int_equal(pvm_enforce_protect(e, UINT64_MAX, 2, NULL), -EINVAL);
	assert_int_equal(pvm_enforce_unprotect(e, 0, 0, NULL), 0);
	assert_int_equal(pvm_enforce_unprotect(e, 3, 1, NULL), 0);
	assert_int_equal(pvm_enforce_unprotect(e, 3, 1, NULL), 0);   /* idempotent */
	pvm_enforce_free(e);
	c.block_size = 3 * PVM_MiB;
	assert_int_equal(pvm_enforce_new(&c, &e, NULL), -EINVAL);
	c.block_size = BS;
	c.size = (NBLOCKS + 1) * BS;
	assert_int_equal(pvm_enforce_new(&c, &e, NULL), -EINVAL);
	pvm_mem_region_free(r);
	assert_int_equal(pvm_enforce_mode_parse("uffd", &m), 0);
	assert_int_equal(m, PVM_ENFORCE_UFFD);
	assert_string_equal(pvm_enforce_mode_name(PVM_ENFORCE_MPROTECT), "mprotect");
	assert_int_equal(pvm_enforce_policy_parse("kill", &p), 0);
	assert_int_equal(p, PVM_ENFORCE_KILL);
	assert_int_equal(pvm_enforce_policy_parse("maybe", &p), -EINVAL);
	assert_true(pvm_enforce_count_vmas(NULL, 0) > 0);
}

/* mprotect mode is admitted only while its worst case (one mapping per block) fits
 * vm.max_map_count with what is mapped already (uffd needs no mappings; its cost is page tables,
 * see test_vma_cost). Two enforcers that each fit alone but not together: the second is refused, nothing changes. */
static void test_mprotect_map_count_admission(void **state)
{
	struct pvm_mem_region_config rc = { .backend = PVM_MEM_BACKEND_ANON, .size = 1ULL << 40,
					    .noreserve = true };
	struct pvm_mem_region *big;
	struct pvm_enforce_config c = { .mode = PVM_ENFORCE_MPROTECT, .size = 1ULL << 40,
					.block_size = 2 * PVM_MiB };
	struct pvm_enforce *e = NULL, *e2 = NULL;
	struct pvm_error err = { 0 };
	uint64_t half;

	assert_int_equal(pvm_mem_region_new(&rc, &big, NULL), 0);
	c.region = big;
	/* 1 TiB of 2 MiB blocks: 524288 possible mappings. */
	assert_int_equal(pvm_enforce_new(&c, &e, &err), -ENOSPC);
	assert_null(e);
	assert_non_null(strstr(err.msg, "vm.max_map_count"));
	print_message("%s\n", err.msg);
	/* Two enforcers of just over half the limit each: one fits, both do not. */
	half = 33000;
	c.mode = PVM_ENFORCE_MPROTECT;
	c.size = half * c.block_size;
	pvm_error_clear(&err);
	if (pvm_enforce_new(&c, &e, &err))
		fail_msg("%s", pvm_error_message(&err));
	c.offset = c.size;
	pvm_error_clear(&err);
	assert_int_equal(pvm_enforce_new(&c, &e2, &err), -ENOSPC);
	assert_null(e2);
	/* Freeing the first gives its reservation back. */
	pvm_enforce_free(e);
	assert_int_equal(pvm_enforce_new(&c, &e2, NULL), 0);
	pvm_enforce_free(e2);
	pvm_mem_region_free(big);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uffd_deny_keeps_rss_flat),
		cmocka_unit_test(test_mprotect_deny_keeps_rss_flat),
		cmocka_unit_test(test_uffd_allow_counts),
		cmocka_unit_test(test_mprotect_allow_counts),
		cmocka_unit_test(test_kill_policy),
		cmocka_unit_test(test_vma_cost),
		cmocka_unit_test(test_ranges_and_names),
		cmocka_unit_test(test_mprotect_map_count_admission),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

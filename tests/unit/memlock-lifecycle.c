/* SPDX-License-Identifier: MIT */
/*
 * The device lifecycle against a real process: the test spawns a child, applies limits with the
 * real prlimit(2) and reads them back from /proc/PID/limits. The needs come from domain XMLs
 * with a small <memtune><hard_limit> so that they fit below this machine's 8 MiB hard limit
 * (which even root cannot raise here); a hostdev domain (2 GiB) checks EPERM above it.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test-util.h"
#include <pvmem/memlock.h>

#define MiB (1ULL << 20)

static char statedir[] = "/tmp/pvmem-lifecycle-XXXXXX";

/* Soft and hard "Max locked memory" of @pid as /proc shows them. */
static void proc_limits(pid_t pid, uint64_t *soft, uint64_t *hard)
{
	char path[64], line[256], s[32], h[32];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/limits", (int)pid);
	f = fopen(path, "r");
	assert_non_null(f);
	*soft = *hard = 0;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "Max locked memory", 17) || sscanf(line + 17, "%31s %31s", s, h) != 2)
			continue;
		*soft = !strcmp(s, "unlimited") ? PVM_MEMLOCK_INFINITY : strtoull(s, NULL, 10);
		*hard = !strcmp(h, "unlimited") ? PVM_MEMLOCK_INFINITY : strtoull(h, NULL, 10);
	}
	fclose(f);
}

static void expect(pid_t pid, uint64_t soft, uint64_t hard)
{
	uint64_t s, h, gs, gh;

	proc_limits(pid, &s, &h);
	if (s != soft || h != hard)
		fail_msg("/proc/%d/limits: %llu/%llu, expected %llu/%llu", (int)pid, (unsigned long long)s,
			 (unsigned long long)h, (unsigned long long)soft, (unsigned long long)hard);
	assert_int_equal(pvm_memlock_get(pid, &gs, &gh, NULL), 0);
	assert_int_equal(gs, s);
	assert_int_equal(gh, h);
}

/* The need of a domain whose <memtune><hard_limit> is @mib MiB (or, with 0, one VFIO hostdev). */
static struct pvm_memlock_result *need(unsigned mib)
{
	char xml[512];
	struct pvm_domain *dom = NULL;
	struct pvm_memlock_result *r = NULL;

	if (mib)
		snprintf(xml, sizeof(xml), "<domain type='kvm'><memory unit='GiB'>1</memory><memtune>"
			 "<hard_limit unit='MiB'>%u</hard_limit></memtune></domain>", mib);
	else
		snprintf(xml, sizeof(xml), "<domain type='kvm'><os><type arch='x86_64'/></os><memory unit='GiB'>1"
			 "</memory><devices><hostdev mode='subsystem' type='pci'><source><address bus='1'/></source>"
			 "</hostdev></devices></domain>");
	assert_int_equal(pvm_domain_parse_memory(xml, strlen(xml), PVM_DOMAIN_PARSE_NO_HOST, &dom, NULL), 0);
	assert_int_equal(pvm_memlock_compute(dom, NULL, &r, NULL), 0);
	pvm_domain_free(dom);
	return r;
}

static bool have_cap_sys_resource(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	unsigned long long caps = 0;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "CapEff: %llx", &caps) == 1)
			break;
	fclose(f);
	return caps & (1ULL << 24);
}

static pid_t spawn(void)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		for (;;)
			pause();
	}
	return pid;
}

static void reap(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static void test_soft_only_lifecycle(void **state)
{
	struct pvm_memlock_result *n4 = need(4), *n6 = need(6), *n2 = need(2), *n16 = need(16);
	struct pvm_memlock_ctl *ctl = NULL;
	struct pvm_error err = { 0 };
	struct rlimit start;
	pid_t pid;

	assert_int_equal(getrlimit(RLIMIT_MEMLOCK, &start), 0);
	if (start.rlim_max != RLIM_INFINITY && start.rlim_max < 8 * MiB)
		skip();
	pid = spawn();
	expect(pid, start.rlim_cur, start.rlim_max);
	assert_int_equal(pvm_memlock_ctl_open(pid, statedir, PVM_MEMLOCK_CTL_SOFT_ONLY, &ctl, &err), 0);
	/* start: 4 MiB soft, hard untouched */
	assert_int_equal(pvm_memlock_ctl_set(ctl, n4, &err), 0);
	expect(pid, 4 * MiB, start.rlim_max);
	/* attach: raise to 6 MiB (below the hard limit: no privilege needed) */
	assert_int_equal(pvm_memlock_ctl_before_attach(ctl, n6, &err), 0);
	expect(pid, 6 * MiB, start.rlim_max);
	/* an attach that is already covered changes nothing */
	assert_int_equal(pvm_memlock_ctl_before_attach(ctl, n4, &err), 0);
	expect(pid, 6 * MiB, start.rlim_max);
	/* detach: down to the exact remaining need */
	assert_int_equal(pvm_memlock_ctl_after_detach(ctl, n2, &err), 0);
	expect(pid, 2 * MiB, start.rlim_max);
	/* above the hard limit: EPERM naming the capability, limit unchanged */
	if (!have_cap_sys_resource() && start.rlim_max < 16 * MiB) {
		assert_int_equal(pvm_memlock_ctl_before_attach(ctl, n16, &err), -EPERM);
		assert_non_null(strstr(pvm_error_message(&err), "CAP_SYS_RESOURCE"));
		expect(pid, 2 * MiB, start.rlim_max);
	}
	/* end: the original comes back and the state file goes */
	assert_int_equal(pvm_memlock_ctl_restore(ctl, NULL), 0);
	expect(pid, start.rlim_cur, start.rlim_max);
	assert_int_equal(access(pvm_memlock_ctl_state_path(ctl), F_OK), -1);
	pvm_memlock_ctl_free(ctl);
	reap(pid);
	pvm_memlock_result_free(n4);
	pvm_memlock_result_free(n6);
	pvm_memlock_result_free(n2);
	pvm_memlock_result_free(n16);
}

/* libvirt's mode sets soft = hard: a later raise (and even the restore) needs CAP_SYS_RESOURCE.
 * The state file survives a failed restore so that a privileged manager can still do it. */
static void test_libvirt_mode(void **state)
{
	struct pvm_memlock_result *n4 = need(4), *n6 = need(6), *hostdev = need(0);
	struct pvm_memlock_ctl *ctl = NULL;
	struct pvm_error err = { 0 };
	bool cap = have_cap_sys_resource();
	struct rlimit start;
	pid_t pid;
	int rc;

	assert_int_equal(getrlimit(RLIMIT_MEMLOCK, &start), 0);
	if (start.rlim_max == RLIM_INFINITY || start.rlim_max < 8 * MiB)
		skip();
	pid = spawn();
	assert_int_equal(pvm_memlock_ctl_open(pid, statedir, 0, &ctl, &err), 0);
	/* 2 GiB for one hostdev does not fit below an 8 MiB hard limit */
	rc = pvm_memlock_ctl_set(ctl, hostdev, &err);
	if (!cap) {
		assert_int_equal(rc, -EPERM);
		assert_non_null(strstr(pvm_error_message(&err), "needs CAP_SYS_RESOURCE"));
		expect(pid, start.rlim_cur, start.rlim_max);
	}
	pvm_error_clear(&err);
	assert_int_equal(pvm_memlock_ctl_set(ctl, n4, &err), 0);
	expect(pid, 4 * MiB, 4 * MiB);
	rc = pvm_memlock_ctl_before_attach(ctl, n6, &err);
	if (!cap) {
		assert_int_equal(rc, -EPERM);
		assert_non_null(strstr(pvm_error_message(&err), "CAP_SYS_RESOURCE"));
		expect(pid, 4 * MiB, 4 * MiB);
		pvm_error_clear(&err);
		assert_int_equal(pvm_memlock_ctl_restore(ctl, &err), -EPERM);
		assert_int_equal(access(pvm_memlock_ctl_state_path(ctl), R_OK), 0);
	} else {
		assert_int_equal(pvm_memlock_ctl_restore(ctl, &err), 0);
	}
	pvm_memlock_ctl_free(ctl);
	reap(pid);
	pvm_memlock_result_free(n4);
	pvm_memlock_result_free(n6);
	pvm_memlock_result_free(hostdev);
}

static int setup(void **state)
{
	return mkdtemp(statedir) ? 0 : -1;
}

static int teardown(void **state)
{
	return pvm_test_rmtree(statedir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_soft_only_lifecycle),
		cmocka_unit_test(test_libvirt_mode),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}

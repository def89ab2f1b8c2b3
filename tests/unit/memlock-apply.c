/* SPDX-License-Identifier: MIT */
/*
 * The applier's logic against recorded system calls: a fake prlimit that keeps soft/hard limits,
 * refuses raising the hard limit above its start value (no CAP_SYS_RESOURCE), and logs every call.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test-util.h"
#include <pvmem/memlock.h>

#include "memlock/apply-priv.h"

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)

struct fake {
	rlim_t soft, hard;    /* the "process" limits */
	rlim_t ceiling;       /* raising hard above this fails with EPERM */
	int sets;             /* prlimit calls that set */
	char log[1024];       /* "set S/H;" per call */
};

static int fake_prlimit(void *opaque, pid_t pid, const struct rlimit *nl, struct rlimit *ol)
{
	struct fake *f = opaque;
	size_t l = strlen(f->log);

	if (ol) {
		ol->rlim_cur = f->soft;
		ol->rlim_max = f->hard;
	}
	if (!nl)
		return 0;
	f->sets++;
	snprintf(f->log + l, sizeof(f->log) - l, "set %llu/%llu;", (unsigned long long)(nl->rlim_cur / MiB),
		 (unsigned long long)(nl->rlim_max / MiB));
	if (nl->rlim_max > f->hard && nl->rlim_max > f->ceiling)
		return -EPERM;
	f->soft = nl->rlim_cur;
	f->hard = nl->rlim_max;
	return 0;
}

static bool fake_no_cap(void *opaque)
{
	return false;
}

static char statedir[] = "/tmp/pvmem-apply-XXXXXX";

static struct pvm_memlock_result *need(const char *xml_devices, uint64_t mem_mib)
{
	char xml[2048];
	struct pvm_domain *dom = NULL;
	struct pvm_memlock_result *r = NULL;

	snprintf(xml, sizeof(xml), "<domain type='kvm'><os><type arch='x86_64'/></os><memory unit='MiB'>%llu"
		 "</memory><devices>%s</devices></domain>", (unsigned long long)mem_mib, xml_devices);
	assert_int_equal(pvm_domain_parse_memory(xml, strlen(xml), PVM_DOMAIN_PARSE_NO_HOST, &dom, NULL), 0);
	assert_int_equal(pvm_memlock_compute(dom, NULL, &r, NULL), 0);
	pvm_domain_free(dom);
	return r;
}

#define HD "<hostdev mode='subsystem' type='pci'><source><address bus='1'/></source></hostdev>"
#define VIOMMU "<iommu model='intel'/>"

static void test_lifecycle_recorded(void **state)
{
	struct fake f = { .soft = 64 * MiB, .hard = 64 * MiB, .ceiling = 100 * GiB };
	struct pvm_memlock_hooks h = { fake_prlimit, fake_no_cap, &f };
	struct pvm_memlock_result *none = need("", 1024), *one = need(HD VIOMMU, 1024),
				  *two = need(HD HD VIOMMU, 1024);
	struct pvm_memlock_ctl *ctl = NULL, *again = NULL;
	struct pvm_error err = { 0 };
	uint64_t s, hh;

	pvm_memlock_set_hooks(&h);
	assert_int_equal(pvm_memlock_ctl_open(getpid(), statedir, 0, &ctl, &err), 0);
	assert_false(pvm_memlock_ctl_original(ctl, NULL, NULL));
	/* nothing needed: no call at all */
	assert_int_equal(pvm_memlock_ctl_set(ctl, none, &err), 0);
	assert_int_equal(f.sets, 0);
	/* attach 1 device: 1 GiB + 1 GiB = 2048 MiB */
	assert_int_equal(pvm_memlock_ctl_before_attach(ctl, one, &err), 0);
	assert_string_equal(f.log, "set 2048/2048;");
	assert_true(pvm_memlock_ctl_original(ctl, &s, &hh));
	assert_int_equal(s, 64 * MiB);
	assert_int_equal(access(pvm_memlock_ctl_state_path(ctl), R_OK), 0);
	/* second device with vIOMMU: 3072 MiB */
	assert_int_equal(pvm_memlock_ctl_before_attach(ctl, two, &err), 0);
	assert_string_equal(f.log, "set 2048/2048;set 3072/3072;");
	/* attaching again what is already covered: no call */
	assert_int_equal(pvm_memlock_ctl_before_attach(ctl, one, &err), 0);
	assert_int_equal(f.sets, 2);
	/* a restarted manager finds the original in the state file */
	assert_int_equal(pvm_memlock_ctl_open(getpid(), statedir, 0, &again, &err), 0);
	assert_true(pvm_memlock_ctl_original(again, &s, &hh));
	assert_int_equal(hh, 64 * MiB);
	pvm_memlock_ctl_free(ctl);
	ctl = again;
	/* detach one: down to the exact remaining need (libvirt would stay at 3072) */
	assert_int_equal(pvm_memlock_ctl_after_detach(ctl, one, &err), 0);
	assert_string_equal(f.log, "set 2048/2048;set 3072/3072;set 2048/2048;");
	/* detach the last: back to the original, state file gone */
	assert_int_equal(pvm_memlock_ctl_after_detach(ctl, none, &err), 0);
	assert_string_equal(f.log, "set 2048/2048;set 3072/3072;set 2048/2048;set 64/64;");
	assert_false(pvm_memlock_ctl_original(ctl, NULL, NULL));
	assert_int_equal(access(pvm_memlock_ctl_state_path(ctl), F_OK), -1);
	/* restore with nothing saved: no call */
	assert_int_equal(pvm_memlock_ctl_restore(ctl, &err), 0);
	assert_int_equal(f.sets, 4);
	pvm_memlock_ctl_free(ctl);
	pvm_memlock_set_hooks(NULL);
	pvm_memlock_result_free(none);
	pvm_memlock_result_free(one);
	pvm_memlock_result_free(two);
}

static void test_eperm(void **state)
{
	struct fake f = { .soft = 8 * MiB, .hard = 8 * MiB, .ceiling = 8 * MiB };
	struct pvm_memlock_hooks h = { fake_prlimit, fake_no_cap, &f };
	struct pvm_memlock_result *one = need(HD, 1024);
	struct pvm_memlock_ctl *ctl = NULL;
	struct pvm_error err = { 0 };

	pvm_memlock_set_hooks(&h);
	assert_int_equal(pvm_memlock_ctl_open(getpid(), statedir, 0, &ctl, &err), 0);
	assert_int_equal(pvm_memlock_ctl_before_attach(ctl, one, &err), -EPERM);
	assert_non_null(strstr(pvm_error_message(&err), "CAP_SYS_RESOURCE"));
	assert_non_null(strstr(pvm_error_message(&err), "do not attach"));
	assert_int_equal(f.soft, 8 * MiB);
	/* the caller rolls back: the need without the device is "none" -> restore the original */
	pvm_error_clear(&err);
	assert_int_equal(pvm_memlock_ctl_restore(ctl, &err), 0);
	assert_int_equal(f.hard, 8 * MiB);
	pvm_memlock_ctl_free(ctl);
	pvm_memlock_set_hooks(NULL);
	pvm_memlock_result_free(one);
}

/* --soft-only keeps the hard limit where it is when it is high enough. */
static void test_soft_only(void **state)
{
	struct fake f = { .soft = 64 * MiB, .hard = 4 * GiB, .ceiling = 4 * GiB };
	struct pvm_memlock_hooks h = { fake_prlimit, fake_no_cap, &f };
	struct pvm_memlock_result *one = need(HD, 1024);
	struct pvm_memlock_ctl *ctl = NULL;

	pvm_memlock_set_hooks(&h);
	assert_int_equal(pvm_memlock_ctl_open(getpid(), statedir, PVM_MEMLOCK_CTL_SOFT_ONLY, &ctl, NULL), 0);
	assert_int_equal(pvm_memlock_ctl_set(ctl, one, NULL), 0);
	assert_string_equal(f.log, "set 2048/4096;");
	assert_int_equal(pvm_memlock_ctl_restore(ctl, NULL), 0);
	assert_string_equal(f.log, "set 2048/4096;set 64/4096;");
	pvm_memlock_ctl_free(ctl);
	pvm_memlock_set_hooks(NULL);
	pvm_memlock_result_free(one);
}

/* A state file from another process that had the same pid is not used. */
static void test_stale_state(void **state)
{
	char path[512];
	FILE *fp;
	struct pvm_memlock_ctl *ctl = NULL;

	snprintf(path, sizeof(path), "%s/memlock-%d.state", statedir, (int)getpid());
	fp = fopen(path, "w");
	assert_non_null(fp);
	fprintf(fp, "pid %d\nstarttime 1\nsoft 1\nhard 1\n", (int)getpid());
	fclose(fp);
	assert_int_equal(pvm_memlock_ctl_open(getpid(), statedir, 0, &ctl, NULL), 0);
	assert_false(pvm_memlock_ctl_original(ctl, NULL, NULL));
	assert_int_equal(access(path, F_OK), -1);
	pvm_memlock_ctl_free(ctl);
	assert_int_equal(pvm_memlock_ctl_open(999999999, statedir, 0, &ctl, NULL), -ESRCH);
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
		cmocka_unit_test(test_lifecycle_recorded),
		cmocka_unit_test(test_eperm),
		cmocka_unit_test(test_soft_only),
		cmocka_unit_test(test_stale_state),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}

/* SPDX-License-Identifier: MIT */
/*
 * Host devices on the machine (lib/machine/machine-hostdev.c): the discard vote each kind casts,
 * the memlock need (libvirt's factor x memory + 1 GiB) raised before the device reaches its DMA
 * space and lowered to the exact remaining need after it left, -EBUSY for NVMe/vDPA while
 * virtio-mem holds its coordinated-require vote, rollback when pinning exceeds the DMA budget,
 * per-device spaces behind a vIOMMU. The process limit is played by a fake kernel installed
 * through the memlock module's hook table, which also records, at each prlimit(2), whether the
 * device had already reached DMA.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "test-util.h"
#include <pvmem/domain.h>
#include <pvmem/machine.h>

#include "machine/script.h"
#include "memlock/apply-priv.h"

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)
#define ORIG (8 * MiB)          /* the fake process's limit before the machine */
#define MAX_CALLS 32

/* One limit change the fake kernel saw. */
struct call {
	uint64_t soft;          /* the new soft limit */
	unsigned votes;         /* DISABLE + DISABLE_UNCOORDINATED votes at that moment */
	size_t hostdevs;        /* attached host devices at that moment */
};

static struct fake {
	bool privileged;        /* raises above the hard limit are allowed */
	uint64_t soft, hard;    /* the limit now */
	struct call calls[MAX_CALLS];
	unsigned ncalls;
	struct pvm_machine *m;  /* the machine, for the moment of each call */
} fk;

static uint64_t from_rlim(rlim_t v)
{
	return v == RLIM_INFINITY ? UINT64_MAX : (uint64_t)v;
}

static int fake_prlimit(void *opaque, pid_t pid, const struct rlimit *nl, struct rlimit *ol)
{
	(void)opaque;
	(void)pid;
	if (ol) {
		ol->rlim_cur = fk.soft == UINT64_MAX ? RLIM_INFINITY : (rlim_t)fk.soft;
		ol->rlim_max = fk.hard == UINT64_MAX ? RLIM_INFINITY : (rlim_t)fk.hard;
	}
	if (nl) {
		struct pvm_machine_discard_info di = { 0 };

		if (from_rlim(nl->rlim_max) > fk.hard && !fk.privileged)
			return -EPERM;
		assert_true(fk.ncalls < MAX_CALLS);
		if (fk.m)
			pvm_machine_discard(fk.m, &di);
		fk.calls[fk.ncalls++] = (struct call){ from_rlim(nl->rlim_cur), di.votes[2] + di.votes[3],
						       fk.m ? pvm_machine_hostdev_count(fk.m) : 0 };
		fk.soft = from_rlim(nl->rlim_cur);
		fk.hard = from_rlim(nl->rlim_max);
	}
	return 0;
}

static bool fake_cap(void *opaque)
{
	(void)opaque;
	return fk.privileged;
}

static char statedir[] = "/tmp/pvmem-mhostdev-XXXXXX";

static struct pvm_machine *start(const char *xml, bool privileged, bool no_memlock)
{
	struct pvm_machine_opts o = { .memlock_state_dir = statedir, .no_memlock = no_memlock };
	struct pvm_memlock_hooks hooks = { fake_prlimit, fake_cap, NULL };
	struct pvm_domain *dom = NULL;
	struct pvm_error err = { 0 };
	struct pvm_machine *m = NULL;

	memset(&fk, 0, sizeof(fk));
	fk.privileged = privileged;
	fk.soft = fk.hard = ORIG;
	pvm_memlock_set_hooks(&hooks);
	if (pvm_domain_parse_memory(xml, strlen(xml), PVM_DOMAIN_PARSE_NO_HOST, &dom, &err))
		fail_msg("domain: %s", pvm_error_message(&err));
	if (pvm_machine_new(dom, &o, &m, &err))
		fail_msg("machine: %s", pvm_error_message(&err));
	pvm_domain_free(dom);
	fk.m = m;
	return m;
}

static void stop(struct pvm_machine *m)
{
	DIR *d;
	struct dirent *e;

	fk.m = NULL;
	pvm_machine_free(m);
	pvm_memlock_set_hooks(NULL);
	/* The original limit is back and no state file is left. */
	assert_int_equal(fk.soft, ORIG);
	assert_int_equal(fk.hard, ORIG);
	d = opendir(statedir);
	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			fail_msg("state file left behind: %s", e->d_name);
	closedir(d);
}

static void expect_memlock(struct pvm_machine *m, enum pvm_machine_memlock_kind kind, uint64_t need,
			   uint64_t pinned)
{
	struct pvm_machine_memlock_info ml;

	pvm_machine_memlock(m, &ml);
	if (ml.kind != kind || ml.need != need || ml.pinned != pinned)
		fail_msg("memlock kind %d need %llu pinned %llu, expected %d %llu %llu", ml.kind,
			 (unsigned long long)ml.need, (unsigned long long)ml.pinned, kind,
			 (unsigned long long)need, (unsigned long long)pinned);
	if (kind == PVM_MACHINE_MEMLOCK_BYTES)
		assert_int_equal(ml.budget, need);
}

static const char ram_xml[] =
	"<domain type='kvm'><name>ram</name><os><type arch='x86_64'>hvm</type></os>"
	"<memory unit='MiB'>512</memory></domain>";
static const char viommu_xml[] =
	"<domain type='kvm'><name>vi</name><os><type arch='x86_64'>hvm</type></os>"
	"<memory unit='MiB'>1536</memory><devices>"
	"<memory model='virtio-mem'><target><size unit='GiB'>1</size><node>0</node>"
	"<block unit='MiB'>2</block></target><alias name='vmem0'/></memory>"
	"<iommu model='intel'/></devices></domain>";
static const char hardlimit_xml[] =
	"<domain type='kvm'><name>hl</name><os><type arch='x86_64'>hvm</type></os>"
	"<memory unit='MiB'>512</memory><memtune><hard_limit unit='MiB'>256</hard_limit></memtune></domain>";

/* ---- votes ---------------------------------------------------------------------------------------- */

struct vote_case {
	const char *name;
	enum pvm_machine_hostdev_kind kind;
	unsigned vote;            /* index in votes[] */
	bool uncoordinated, coordinated; /* discards blocked afterwards */
};

static const struct vote_case votes[] = {
	{ "vfio", PVM_MACHINE_HOSTDEV_VFIO, 3, true, false },
	{ "nvme", PVM_MACHINE_HOSTDEV_NVME, 2, true, true },
	{ "vdpa", PVM_MACHINE_HOSTDEV_VDPA, 2, true, true },
};

static void test_votes(void **state)
{
	(void)state;
	for (size_t c = 0; c < sizeof(votes) / sizeof(votes[0]); c++) {
		struct pvm_machine *m = start(ram_xml, true, true);
		struct pvm_machine_discard_info di;
		struct pvm_machine_hostdev_info hi;

		print_message("case: %s\n", votes[c].name);
		assert_int_equal(pvm_machine_attach_hostdev(m, "dev0", votes[c].kind, NULL), 0);
		assert_int_equal(pvm_machine_attach_hostdev(m, "dev0", votes[c].kind, NULL), -EEXIST);
		pvm_machine_discard(m, &di);
		for (unsigned v = 0; v < 4; v++)
			assert_int_equal(di.votes[v], v == votes[c].vote);
		assert_int_equal(di.uncoordinated_disabled, votes[c].uncoordinated);
		assert_int_equal(di.coordinated_disabled, votes[c].coordinated);
		/* libvirt: 1 x 512 MiB + 1 GiB; all boot RAM mapped and pinned. */
		expect_memlock(m, PVM_MACHINE_MEMLOCK_BYTES, 1536 * MiB, 512 * MiB);
		assert_int_equal(pvm_machine_hostdev_info(m, 0, &hi), 0);
		assert_string_equal(hi.id, "dev0");
		assert_int_equal(hi.kind, votes[c].kind);
		assert_int_equal(hi.mapped, 512 * MiB);
		assert_false(hi.viommu);
		assert_string_equal(pvm_machine_hostdev_kind_name(votes[c].kind), votes[c].name);
		assert_int_equal(pvm_machine_detach_hostdev(m, "dev0", NULL), 0);
		pvm_machine_discard(m, &di);
		for (unsigned v = 0; v < 4; v++)
			assert_int_equal(di.votes[v], 0);
		expect_memlock(m, PVM_MACHINE_MEMLOCK_NONE, 0, 0);
		stop(m);
	}
}

/* NVMe and vDPA pin everything and may not coexist with virtio-mem's coordinated discards. */
static void test_busy_with_virtio_mem(void **state)
{
	(void)state;
	for (int k = PVM_MACHINE_HOSTDEV_NVME; k <= PVM_MACHINE_HOSTDEV_VDPA; k++) {
		struct pvm_machine *m = start(pvm_machine_embedded_default_xml(), true, false);
		struct pvm_machine_discard_info di;
		struct pvm_error err = { 0 };

		print_message("case: %s\n", pvm_machine_hostdev_kind_name(k));
		pvm_machine_discard(m, &di);
		assert_int_equal(di.votes[1], 1); /* virtio-mem: REQUIRE_COORDINATED */
		assert_int_equal(pvm_machine_attach_hostdev(m, "dev0", (enum pvm_machine_hostdev_kind)k, &err), -EBUSY);
		print_message("  %s\n", pvm_error_message(&err));
		assert_true(pvm_error_message(&err)[0] != 0);
		/* Nothing is left: no device, no vote, the need and the limit as before. */
		assert_int_equal(pvm_machine_hostdev_count(m), 0);
		assert_int_equal(pvm_domain_pt_count(pvm_machine_domain(m)), 0);
		pvm_machine_discard(m, &di);
		assert_int_equal(di.votes[2] + di.votes[3], 0);
		expect_memlock(m, PVM_MACHINE_MEMLOCK_NONE, 0, 0);
		assert_int_equal(fk.soft, ORIG);
		/* VFIO is fine next to virtio-mem: 5 GiB + 1 GiB. */
		assert_int_equal(pvm_machine_attach_hostdev(m, "dev1", PVM_MACHINE_HOSTDEV_VFIO, NULL), 0);
		expect_memlock(m, PVM_MACHINE_MEMLOCK_BYTES, 6 * GiB, 1 * GiB);
		assert_int_equal(fk.soft, 6 * GiB);
		stop(m);
	}
}

/* ---- the memlock lifecycle -------------------------------------------------------------------------- */

static void test_lifecycle_privileged(void **state)
{
	struct pvm_machine *m = start(ram_xml, true, false);
	struct pvm_machine_memlock_info ml;

	(void)state;
	assert_int_equal(fk.ncalls, 0); /* nothing needed at start: the limit is left alone */
	assert_int_equal(pvm_machine_attach_hostdev(m, "gpu0", PVM_MACHINE_HOSTDEV_VFIO, NULL), 0);
	/* Raised once, before the device voted or reached its space. */
	assert_int_equal(fk.ncalls, 1);
	assert_int_equal(fk.calls[0].soft, 1536 * MiB);
	assert_int_equal(fk.calls[0].votes, 0);
	assert_int_equal(fk.calls[0].hostdevs, 0);
	pvm_machine_memlock(m, &ml);
	assert_true(ml.applied);
	assert_int_equal(ml.apply_error, 0);
	assert_int_equal(ml.soft, 1536 * MiB);
	/* A second device: 2 x 512 MiB + 1 GiB, raised before the NVMe disk votes. */
	assert_int_equal(pvm_machine_attach_hostdev(m, "disk0", PVM_MACHINE_HOSTDEV_NVME, NULL), 0);
	assert_int_equal(fk.ncalls, 2);
	assert_int_equal(fk.calls[1].soft, 2 * GiB);
	assert_int_equal(fk.calls[1].votes, 1);
	assert_int_equal(fk.calls[1].hostdevs, 1);
	expect_memlock(m, PVM_MACHINE_MEMLOCK_BYTES, 2 * GiB, 1 * GiB);
	/* Detach the GPU: lowered to the exact remaining need, after its vote is gone. */
	assert_int_equal(pvm_machine_detach_hostdev(m, "gpu0", NULL), 0);
	assert_int_equal(fk.ncalls, 3);
	assert_int_equal(fk.calls[2].soft, 1536 * MiB);
	assert_int_equal(fk.calls[2].votes, 1);
	assert_int_equal(fk.calls[2].hostdevs, 1);
	expect_memlock(m, PVM_MACHINE_MEMLOCK_BYTES, 1536 * MiB, 512 * MiB);
	/* The last one: the original limit comes back. */
	assert_int_equal(pvm_machine_detach_hostdev(m, "disk0", NULL), 0);
	assert_int_equal(fk.ncalls, 4);
	assert_int_equal(fk.calls[3].soft, ORIG);
	assert_int_equal(fk.calls[3].votes, 0);
	assert_int_equal(fk.calls[3].hostdevs, 0);
	expect_memlock(m, PVM_MACHINE_MEMLOCK_NONE, 0, 0);
	stop(m);
}

static void test_lifecycle_refused(void **state)
{
	struct pvm_machine *m = start(pvm_machine_embedded_default_xml(), false, false);
	struct pvm_machine_memlock_info ml;

	(void)state;
	/* The raise is refused (EPERM): the attach goes on, pinning is checked against the need. */
	assert_int_equal(pvm_machine_attach_hostdev(m, "gpu0", PVM_MACHINE_HOSTDEV_VFIO, NULL), 0);
	pvm_machine_memlock(m, &ml);
	assert_int_equal(ml.kind, PVM_MACHINE_MEMLOCK_BYTES);
	assert_int_equal(ml.need, 6 * GiB);
	assert_int_equal(ml.apply_error, -EPERM);
	assert_false(ml.applied);
	assert_int_equal(ml.soft, ORIG);
	assert_int_equal(ml.budget, 6 * GiB);
	assert_int_equal(ml.pinned, 1 * GiB);
	assert_int_equal(pvm_machine_detach_hostdev(m, "gpu0", NULL), 0);
	expect_memlock(m, PVM_MACHINE_MEMLOCK_NONE, 0, 0);
	assert_int_equal(fk.soft, ORIG);
	stop(m);
}

/* The DMA budget (here <memtune><hard_limit> = 256 MiB) cannot hold 512 MiB of boot RAM. */
static void test_budget_rollback(void **state)
{
	struct pvm_machine *m = start(hardlimit_xml, true, false);
	struct pvm_machine_discard_info di;
	struct pvm_error err = { 0 };

	(void)state;
	expect_memlock(m, PVM_MACHINE_MEMLOCK_BYTES, 256 * MiB, 0);
	assert_int_equal(fk.soft, 256 * MiB); /* the hard limit applies from the start */
	assert_int_equal(pvm_machine_attach_hostdev(m, "gpu0", PVM_MACHINE_HOSTDEV_VFIO, &err), -ENOMEM);
	print_message("  %s\n", pvm_error_message(&err));
	assert_int_equal(pvm_machine_hostdev_count(m), 0);
	assert_int_equal(pvm_domain_pt_count(pvm_machine_domain(m)), 0);
	pvm_machine_discard(m, &di);
	assert_int_equal(di.votes[3], 0);
	expect_memlock(m, PVM_MACHINE_MEMLOCK_BYTES, 256 * MiB, 0);
	assert_int_equal(fk.soft, 256 * MiB);
	assert_non_null(strstr(pvm_error_message(&err), "budget"));
	/* Still usable afterwards. */
	assert_int_equal(pvm_machine_attach_hostdev(m, "gpu0", PVM_MACHINE_HOSTDEV_VFIO, NULL), -ENOMEM);
	stop(m);
}

/* ---- behind the vIOMMU ------------------------------------------------------------------------------ */

static void test_viommu(void **state)
{
	struct pvm_machine *m = start(viommu_xml, true, true);
	struct pvm_machine_hostdev_info hi;

	(void)state;
	assert_int_equal(pvm_machine_attach_hostdev(m, "gpu0", PVM_MACHINE_HOSTDEV_VFIO, NULL), 0);
	/* Remapping off: the device's own space maps all boot RAM (identity; nothing plugged). */
	assert_int_equal(pvm_machine_hostdev_info(m, 0, &hi), 0);
	assert_true(hi.viommu);
	assert_int_equal(hi.mapped, 512 * MiB);
	/* libvirt: factor = nvfio behind a vIOMMU; M = 1.5 GiB. */
	expect_memlock(m, PVM_MACHINE_MEMLOCK_BYTES, 1536 * MiB + 1 * GiB, 512 * MiB);
	assert_int_equal(pvm_machine_attach_hostdev(m, "gpu1", PVM_MACHINE_HOSTDEV_VFIO, NULL), 0);
	/* type1: every device's container pins the same RAM again. */
	expect_memlock(m, PVM_MACHINE_MEMLOCK_BYTES, 2 * 1536 * MiB + 1 * GiB, 1 * GiB);
	/* Remapping on: only the guest's DMA window (64 MiB) in each device's domain. */
	assert_int_equal(pvm_machine_set_viommu(m, true, NULL), 0);
	assert_int_equal(pvm_machine_hostdev_info(m, 1, &hi), 0);
	assert_int_equal(hi.mapped, 64 * MiB);
	expect_memlock(m, PVM_MACHINE_MEMLOCK_BYTES, 2 * 1536 * MiB + 1 * GiB, 128 * MiB);
	assert_int_equal(pvm_machine_set_viommu(m, false, NULL), 0);
	expect_memlock(m, PVM_MACHINE_MEMLOCK_BYTES, 2 * 1536 * MiB + 1 * GiB, 1 * GiB);
	assert_int_equal(pvm_machine_detach_hostdev(m, "gpu0", NULL), 0);
	assert_int_equal(pvm_machine_detach_hostdev(m, "gpu1", NULL), 0);
	expect_memlock(m, PVM_MACHINE_MEMLOCK_NONE, 0, 0);
	stop(m);
}

/* ---- device ids ------------------------------------------------------------------------------------ */

static const char ids_xml[] =
	"<domain type='kvm'><name>ids</name><os><type arch='x86_64'>hvm</type></os>"
	"<memory unit='MiB'>1536</memory><devices>"
	"<memory model='virtio-mem'><target><size unit='GiB'>1</size><node>0</node>"
	"<block unit='MiB'>2</block></target><alias name='vmem0'/></memory>"
	"<hostdev mode='subsystem' type='pci' managed='yes'><driver name='vfio'/><source>"
	"<address domain='0x0000' bus='0x05' slot='0x00' function='0x0'/></source>"
	"<alias name='hostdev9'/></hostdev></devices></domain>";

struct id_case {
	const char *name;
	const char *id;
	int rc;                   /* of the attach */
};

/* The id goes into the device XML and names the device in the domain model. "a' b='c" attached
 * as alias "a" and could never be detached; "hostdev9" attached and its detach also took the
 * XML's own host device out of the model; "vmem0" is refused as QMP device_add refuses it. */
static const struct id_case id_cases[] = {
	{ "quote (XML attribute injection)", "a' b='c", -EINVAL },
	{ "blank", "a b", -EINVAL },
	{ "markup", "a<b/>", -EINVAL },
	{ "ampersand", "a&amp;", -EINVAL },
	{ "virtio-mem alias", "vmem0", -EEXIST },
	{ "alias of a hostdev in the XML", "hostdev9", -EEXIST },
	{ "identifier characters", "gpu-0.a_B", 0 },
};

static void test_ids(void **state)
{
	(void)state;
	for (size_t c = 0; c < sizeof(id_cases) / sizeof(id_cases[0]); c++) {
		const struct id_case *tc = &id_cases[c];
		struct pvm_machine *m = start(ids_xml, false, true);
		size_t pts = pvm_domain_pt_count(pvm_machine_domain(m));
		size_t mds = pvm_domain_memdev_count(pvm_machine_domain(m));
		int rc = pvm_machine_attach_hostdev(m, tc->id, PVM_MACHINE_HOSTDEV_VFIO, NULL);

		if (rc != tc->rc)
			fail_msg("%s: attach '%s' returned %d, expected %d", tc->name, tc->id, rc, tc->rc);
		if (rc == 0) {
			assert_int_equal(pvm_domain_pt_count(pvm_machine_domain(m)), pts + 1);
			assert_int_equal(pvm_machine_detach_hostdev(m, tc->id, NULL), 0);
		}
		assert_int_equal(pvm_machine_hostdev_count(m), 0);
		assert_int_equal(pvm_domain_pt_count(pvm_machine_domain(m)), pts);
		assert_int_equal(pvm_domain_memdev_count(pvm_machine_domain(m)), mds);
		stop(m);
	}
}

static int setup(void **state)
{
	(void)state;
	return mkdtemp(statedir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	return rmdir(statedir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_votes),
		cmocka_unit_test(test_busy_with_virtio_mem),
		cmocka_unit_test(test_lifecycle_privileged),
		cmocka_unit_test(test_lifecycle_refused),
		cmocka_unit_test(test_budget_rollback),
		cmocka_unit_test(test_viommu),
		cmocka_unit_test(test_ids),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}

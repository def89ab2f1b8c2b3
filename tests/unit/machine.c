/* SPDX-License-Identifier: MIT */
/*
 * The machine built from domain XMLs (lib/machine/machine.c): the guest-physical layout, the
 * devices and their NUMA nodes, the balloon or its absence, clear errors for domains it cannot
 * build, a teardown that leaves no fd, mapping or thread behind, and allocation torture on
 * pvm_machine_new() and on host-device attach/detach. No guest and no memlock changes here
 * (machine-hostdev.c covers the memlock lifecycle).
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test-util.h"
#include <pvmem/domain.h>
#include <pvmem/machine.h>
#include <pvmem/memslot.h>

#include "machine/script.h"

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)

static struct pvm_domain *parse(const char *xml)
{
	struct pvm_domain *dom = NULL;
	struct pvm_error err = { 0 };

	if (pvm_domain_parse_memory(xml, strlen(xml), PVM_DOMAIN_PARSE_NO_HOST, &dom, &err))
		fail_msg("domain XML: %s", pvm_error_message(&err));
	return dom;
}

static struct pvm_machine *build(const char *xml)
{
	struct pvm_machine_opts o = { .no_memlock = true };
	struct pvm_domain *dom = parse(xml);
	struct pvm_machine *m = NULL;
	struct pvm_error err = { 0 };

	if (pvm_machine_new(dom, &o, &m, &err))
		fail_msg("machine: %s", pvm_error_message(&err));
	pvm_domain_free(dom); /* the machine keeps its own copy */
	return m;
}

/* ---- layouts ---------------------------------------------------------------------------------- */

struct want_vmem {
	const char *id;
	uint64_t addr, size, block, requested;
	int node;
};

struct layout_case {
	const char *name;
	const char *xml;
	uint64_t ram;                     /* boot RAM */
	struct want_vmem vmem[4];         /* expected virtio-mem devices, id NULL ends */
	bool balloon;                     /* a balloon is built */
	unsigned virtio;                  /* virtio-mmio devices */
};

static const char multi_xml[] =
	"<domain type='kvm'><name>multi</name><maxMemory slots='8' unit='GiB'>16</maxMemory>"
	"<memory unit='MiB'>5632</memory>"
	"<cpu><numa><cell id='0' cpus='0' memory='1' unit='GiB'/><cell id='1' cpus='1' memory='1' unit='GiB'/>"
	"</numa></cpu><devices>"
	"<memory model='virtio-mem'><target><size unit='GiB'>1</size><node>0</node>"
	"<block unit='MiB'>2</block></target><alias name='vmemA'/></memory>"
	"<memory model='virtio-mem'><target><size unit='GiB'>2</size><node>1</node>"
	"<block unit='MiB'>4</block><requested unit='MiB'>512</requested></target><alias name='vmemB'/></memory>"
	"<memory model='virtio-mem'><target><size unit='MiB'>512</size><node>1</node>"
	"<block unit='MiB'>2</block><address base='0x200000000'/></target><alias name='vmemC'/></memory>"
	"<memballoon model='virtio'><alias name='balloon0'/></memballoon>"
	"</devices></domain>";

static const char noballoon_xml[] =
	"<domain type='kvm'><name>nb</name><memory unit='GiB'>6</memory><devices>"
	"<memory model='virtio-mem'><target><size unit='GiB'>2</size><node>0</node>"
	"<block unit='MiB'>2</block></target><alias name='vmem0'/></memory>"
	"<memballoon model='none'/></devices></domain>";

static const char ramonly_xml[] =
	"<domain type='kvm'><name>ram</name><memory unit='MiB'>512</memory></domain>";

static const struct layout_case layouts[] = {
	{ "default", NULL, 1 * GiB,
	  { { "vmem0", 4 * GiB, 4 * GiB, 2 * MiB, 0, 0 } }, true, 2 },
	{ "three devices on two nodes", multi_xml, 2 * GiB,
	  { { "vmemA", 4 * GiB, 1 * GiB, 2 * MiB, 0, 0 },
	    { "vmemB", 5 * GiB, 2 * GiB, 4 * MiB, 512 * MiB, 1 },
	    { "vmemC", 8 * GiB, 512 * MiB, 2 * MiB, 0, 1 } }, true, 4 },
	{ "no balloon", noballoon_xml, 4 * GiB,
	  { { "vmem0", 4 * GiB, 2 * GiB, 2 * MiB, 0, 0 } }, false, 1 },
	{ "boot RAM only", ramonly_xml, 512 * MiB, { { 0 } }, false, 0 },
};

static void test_layouts(void **state)
{
	(void)state;
	for (size_t c = 0; c < sizeof(layouts) / sizeof(layouts[0]); c++) {
		const struct layout_case *lc = &layouts[c];
		struct pvm_machine *m = build(lc->xml ? lc->xml : pvm_machine_embedded_default_xml());
		struct pvm_machine_balloon_info bi;
		struct pvm_machine_memlock_info ml;
		struct pvm_memslot_info si;
		size_t n = 0;

		print_message("case: %s\n", lc->name);
		assert_int_equal(pvm_machine_ram_size(m), lc->ram);
		assert_int_equal(pvm_machine_fw_gpa(m), lc->ram - PVM_MACHINE_FW_SIZE);
		/* Boot RAM is one memslot at GPA 0; nothing is plugged yet. */
		assert_int_equal(pvm_memslot_count(pvm_machine_memslots(m)), 1);
		assert_int_equal(pvm_memslot_lookup_gpa(pvm_machine_memslots(m), lc->ram - 1, &si), 0);
		assert_int_equal(si.gpa, 0);
		assert_int_equal(si.size, lc->ram);
		for (; lc->vmem[n].id; n++) {
			const struct want_vmem *w = &lc->vmem[n];
			struct pvm_machine_memdev_info mi;
			uint64_t resident = 1;
			int i = pvm_machine_memdev_find(m, w->id);

			assert_int_equal(i, (int)n);
			assert_int_equal(pvm_machine_memdev_info(m, (size_t)i, &mi), 0);
			assert_string_equal(mi.id, w->id);
			assert_int_equal(mi.addr, w->addr);
			assert_int_equal(mi.region_size, w->size);
			assert_int_equal(mi.block_size, w->block);
			assert_int_equal(mi.requested_size, w->requested);
			assert_int_equal(mi.plugged_size, 0);
			assert_int_equal(mi.node, w->node);
			assert_int_equal(pvm_machine_memdev_resident(m, (size_t)i, &resident), 0);
			assert_int_equal(resident, 0);
		}
		assert_int_equal(pvm_machine_memdev_count(m), n);
		assert_int_equal(pvm_machine_memdev_info(m, n, &(struct pvm_machine_memdev_info){ 0 }), -ENOENT);
		assert_int_equal(pvm_machine_memdev_find(m, "nope"), -ENOENT);
		/* Discovery order: virtio-mem devices, then the balloon, windows 0x200 apart. */
		assert_int_equal(pvm_machine_virtio_count(m), lc->virtio);
		for (size_t i = 0; i < lc->virtio; i++) {
			struct pvm_machine_virtio v;

			assert_int_equal(pvm_machine_virtio(m, i, &v), 0);
			assert_int_equal(v.mmio_gpa, PVM_MACHINE_MMIO_BASE + i * 0x200);
			assert_int_equal(v.device_id, i < n ? 24 : 5);
			if (i < n) {
				assert_string_equal(v.id, lc->vmem[i].id);
				assert_int_equal(v.region_gpa, lc->vmem[i].addr);
				assert_int_equal(v.region_size, lc->vmem[i].size);
				assert_int_equal(v.node, lc->vmem[i].node);
			}
		}
		pvm_machine_balloon(m, &bi);
		assert_int_equal(bi.present, lc->balloon);
		if (lc->balloon) {
			assert_int_equal(bi.ram_size, lc->ram);
			assert_int_equal(bi.actual_bytes, lc->ram);
		} else {
			assert_int_equal(pvm_machine_set_balloon_target(m, 0, NULL), -ENODEV);
		}
		pvm_machine_memlock(m, &ml);
		assert_int_equal(ml.kind, PVM_MACHINE_MEMLOCK_NONE);
		assert_int_equal(ml.pinned, 0);
		assert_int_equal(pvm_machine_hostdev_count(m), 0);
		pvm_machine_free(m);
	}
}

/* ---- control calls on the default machine ------------------------------------------------------ */

static void test_control_errors(void **state)
{
	struct pvm_machine *m = build(pvm_machine_embedded_default_xml());
	struct pvm_error err = { 0 };
	struct pvm_machine_memdev_info mi;

	(void)state;
	assert_int_equal(pvm_machine_set_requested_size(m, "nope", 0, &err), -ENOENT);
	assert_non_null(strstr(pvm_error_message(&err), "nope"));
	pvm_error_clear(&err);
	assert_int_equal(pvm_machine_set_requested_size(m, "vmem0", 3 * MiB, &err), -EINVAL);
	assert_int_equal(pvm_machine_set_requested_size(m, "vmem0", 5 * GiB, NULL), -EINVAL);
	assert_int_equal(pvm_machine_set_requested_size(m, "vmem0", 2 * GiB, NULL), 0);
	assert_int_equal(pvm_machine_memdev_info(m, 0, &mi), 0);
	assert_int_equal(mi.requested_size, 2 * GiB);
	assert_int_equal(mi.plugged_size, 0); /* no guest: nothing plugs */
	assert_int_equal(pvm_machine_set_viommu(m, true, NULL), -ENODEV);
	assert_int_equal(pvm_machine_detach_hostdev(m, "nope", NULL), -ENOENT);
	assert_int_equal(pvm_machine_attach_hostdev(m, "", PVM_MACHINE_HOSTDEV_VFIO, NULL), -EINVAL);
	assert_int_equal(pvm_machine_attach_hostdev(m, NULL, PVM_MACHINE_HOSTDEV_VFIO, NULL), -EINVAL);
	assert_false(pvm_machine_quit_requested(m));
	pvm_machine_request_quit(m);
	assert_true(pvm_machine_quit_requested(m));
	assert_int_equal(pvm_machine_settle(m, 1000), -ECANCELED);
	pvm_machine_free(m);
}

/* ---- domains the machine cannot build ------------------------------------------------------------ */

struct bad_case {
	const char *name;
	const char *xml;
	int rc;
	const char *msg;                 /* a piece of the message (parser's or machine's) */
};

#define VMEM(size, block) \
	"<memory model='virtio-mem'><target>" size "<node>0</node>" block "</target>" \
	"<alias name='vmem0'/></memory>"

static const struct bad_case bad[] = {
	{ "no boot RAM", "<domain type='kvm'><memory unit='GiB'>2</memory><devices>"
	  VMEM("<size unit='GiB'>2</size>", "<block unit='MiB'>2</block>") "</devices></domain>",
	  -EINVAL, "no initial memory" },
	{ "boot RAM too small", "<domain type='kvm'><memory unit='MiB'>4</memory></domain>",
	  -EINVAL, "boot memory" },
	{ "boot RAM not 2 MiB aligned", "<domain type='kvm'><memory unit='KiB'>1049600</memory></domain>",
	  -EINVAL, "boot memory" },
	{ "virtio-mem without a size", "<domain type='kvm'><memory unit='GiB'>1</memory><devices>"
	  VMEM("", "<block unit='MiB'>2</block>") "</devices></domain>", -EINVAL, "<size>" },
	{ "virtio-mem block size not a power of two", "<domain type='kvm'><memory unit='GiB'>3</memory><devices>"
	  VMEM("<size unit='GiB'>2</size>", "<block unit='MiB'>3</block>") "</devices></domain>",
	  -EINVAL, "not a power of two" },
	{ "virtio-mem block size below 2 MiB", "<domain type='kvm'><memory unit='GiB'>3</memory><devices>"
	  VMEM("<size unit='GiB'>2</size>", "<block unit='KiB'>4</block>") "</devices></domain>",
	  -EINVAL, "block size" },
	{ "virtio-mem size not a multiple of its block", "<domain type='kvm'><memory unit='MiB'>3096</memory><devices>"
	  VMEM("<size unit='MiB'>2072</size>", "<block unit='MiB'>16</block>") "</devices></domain>",
	  -EINVAL, "multiples of the block size" },
};

static void test_bad_domains(void **state)
{
	(void)state;
	for (size_t c = 0; c < sizeof(bad) / sizeof(bad[0]); c++) {
		struct pvm_machine_opts o = { .no_memlock = true };
		struct pvm_machine *m = (struct pvm_machine *)&o; /* must stay untouched */
		struct pvm_error err = { 0 };
		struct pvm_domain *dom = NULL;
		int rc;

		print_message("case: %s\n", bad[c].name);
		rc = pvm_domain_parse_memory(bad[c].xml, strlen(bad[c].xml), PVM_DOMAIN_PARSE_NO_HOST, &dom, &err);
		if (rc) {
			/* Refused by the parser already: as good, as long as it says why. */
			print_message("  -> parser: %d %s\n", rc, pvm_error_message(&err));
			assert_int_equal(rc, bad[c].rc);
			assert_non_null(strstr(pvm_error_message(&err), bad[c].msg));
			continue;
		}
		rc = pvm_machine_new(dom, &o, &m, &err);
		print_message("  -> %d %s\n", rc, pvm_error_message(&err));
		assert_int_equal(rc, bad[c].rc);
		assert_ptr_equal(m, (struct pvm_machine *)&o);
		assert_non_null(strstr(pvm_error_message(&err), bad[c].msg));
		pvm_domain_free(dom);
	}
}

/* ---- teardown ------------------------------------------------------------------------------------ */

static unsigned count_dir(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	unsigned n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* Bytes mapped in this process; with @addr, whether a mapping holds it instead (1/0). */
static uint64_t maps(const void *addr)
{
	FILE *f = fopen("/proc/self/maps", "r");
	unsigned long long lo, hi;
	uint64_t total = 0;
	char line[512];

	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%llx-%llx", &lo, &hi) != 2)
			continue;
		if (addr && (uintptr_t)addr >= lo && (uintptr_t)addr < hi) {
			fclose(f);
			return 1;
		}
		total += hi - lo;
	}
	fclose(f);
	return addr ? 0 : total;
}

static void test_teardown(void **state)
{
	const char *xmls[] = { NULL, multi_xml, noballoon_xml };
	unsigned fds, threads;
	uint64_t mapped;
	struct pvm_machine *m;

	(void)state;
	/* Warm up the libraries' own lazily made state (libxml2, libnuma) first. */
	m = build(pvm_machine_embedded_default_xml());
	pvm_machine_free(m);
	fds = count_dir("/proc/self/fd");
	threads = count_dir("/proc/self/task");
	mapped = maps(NULL);
	for (size_t i = 0; i < sizeof(xmls) / sizeof(xmls[0]); i++) {
		void *ram;

		m = build(xmls[i] ? xmls[i] : pvm_machine_embedded_default_xml());
		ram = pvm_memslot_gpa_to_hva(pvm_machine_memslots(m), 0);
		assert_non_null(ram);
		assert_int_equal(maps(ram), 1);
		assert_true(maps(NULL) >= mapped + pvm_machine_ram_size(m));
		assert_int_equal(pvm_machine_attach_hostdev(m, "hostdev0", PVM_MACHINE_HOSTDEV_VFIO, NULL), 0);
		assert_int_equal(pvm_machine_run_once(m, 0), 0);
		pvm_machine_free(m);
		assert_int_equal(count_dir("/proc/self/fd"), fds);
		assert_int_equal(count_dir("/proc/self/task"), threads);
		/* Guest memory is gone (allocators, ASan's included, may keep a few MiB). */
		assert_int_equal(maps(ram), 0);
		assert_true(maps(NULL) < mapped + 64 * MiB);
	}
}

/* ---- allocation torture ----------------------------------------------------------------------------- */

struct torture {
	struct pvm_domain *dom;           /* what to build */
	struct pvm_machine *m;            /* the machine under test (attach/detach) */
	unsigned fds;                     /* open fds before */
};

static int op_new(void *ctx)
{
	struct torture *t = ctx;
	struct pvm_machine_opts o = { .no_memlock = true };
	struct pvm_machine *m = NULL;
	int rc = pvm_machine_new(t->dom, &o, &m, NULL);

	pvm_machine_free(m);
	return rc;
}

static int new_unchanged(void *ctx)
{
	return count_dir("/proc/self/fd") == ((struct torture *)ctx)->fds;
}

/* The machine has no host device and no trace of one. */
static int no_hostdev(void *ctx)
{
	struct torture *t = ctx;
	struct pvm_machine_discard_info di;
	struct pvm_machine_memlock_info ml;

	pvm_machine_discard(t->m, &di);
	pvm_machine_memlock(t->m, &ml);
	return pvm_machine_hostdev_count(t->m) == 0 && pvm_domain_pt_count(pvm_machine_domain(t->m)) == 0 &&
	       di.votes[3] == 0 && !di.uncoordinated_disabled && ml.kind == PVM_MACHINE_MEMLOCK_NONE &&
	       ml.pinned == 0;
}

/* hostdev0 is attached, votes and pins. */
static int one_hostdev(void *ctx)
{
	struct torture *t = ctx;
	struct pvm_machine_discard_info di;
	struct pvm_machine_memlock_info ml;

	pvm_machine_discard(t->m, &di);
	pvm_machine_memlock(t->m, &ml);
	return pvm_machine_hostdev_find(t->m, "hostdev0") == 0 && pvm_domain_pt_count(pvm_machine_domain(t->m)) == 1 &&
	       di.votes[3] == 1 && ml.kind == PVM_MACHINE_MEMLOCK_BYTES && ml.pinned == pvm_machine_ram_size(t->m);
}

static int op_attach(void *ctx)
{
	struct torture *t = ctx;

	return pvm_machine_attach_hostdev(t->m, "hostdev0", PVM_MACHINE_HOSTDEV_VFIO, NULL);
}

static int op_detach(void *ctx)
{
	struct torture *t = ctx;

	return pvm_machine_detach_hostdev(t->m, "hostdev0", NULL);
}

static void torture_domain(const char *xml)
{
	struct torture t = { 0 };
	int n;

	t.dom = parse(xml);
	/* A first build outside the torture loads the libraries' lazy state. */
	assert_int_equal(op_new(&t), 0);
	t.fds = count_dir("/proc/self/fd");
	n = pvm_test_torture(op_new, new_unchanged, &t);
	print_message("pvm_machine_new: %d allocation points\n", n);
	assert_true(n > 5);
	pvm_domain_free(t.dom);
}

static void test_torture_new(void **state)
{
	(void)state;
	torture_domain(pvm_machine_embedded_default_xml());
	torture_domain(multi_xml);
}

static void test_torture_attach_detach(void **state)
{
	const char *xmls[] = { NULL, noballoon_xml };

	(void)state;
	for (size_t i = 0; i < sizeof(xmls) / sizeof(xmls[0]); i++) {
		struct torture t = { 0 };
		int n;

		t.m = build(xmls[i] ? xmls[i] : pvm_machine_embedded_default_xml());
		assert_true(no_hostdev(&t));
		n = pvm_test_torture(op_attach, no_hostdev, &t);
		print_message("attach: %d allocation points\n", n);
		assert_true(one_hostdev(&t));
		n = pvm_test_torture(op_detach, one_hostdev, &t);
		print_message("detach: %d allocation points\n", n);
		assert_true(no_hostdev(&t));
		pvm_machine_free(t.m);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_layouts),
		cmocka_unit_test(test_control_errors),
		cmocka_unit_test(test_bad_domains),
		cmocka_unit_test(test_teardown),
		cmocka_unit_test(test_torture_new),
		cmocka_unit_test(test_torture_attach_detach),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

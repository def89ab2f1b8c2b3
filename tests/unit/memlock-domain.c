/* SPDX-License-Identifier: MIT */
/* The domain model: getters, defaults, units, errors, hot-plug, allocation torture. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "test-util.h"
#include <pvmem/domain.h>

#define PVM_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static struct pvm_domain *parse(const char *xml)
{
	struct pvm_domain *dom = NULL;
	struct pvm_error err = { 0 };

	if (pvm_domain_parse_memory(xml, strlen(xml), PVM_DOMAIN_PARSE_NO_HOST, &dom, &err) < 0)
		fail_msg("parse failed: %s", pvm_error_message(&err));
	return dom;
}

static const char rich[] =
	"<domain type='kvm'><name>rich</name>"
	"<os><type arch='x86_64' machine='pc-q35-8.2'>hvm</type></os><vcpu current='2'>4</vcpu>"
	"<maxMemory slots='8' unit='GiB'>32</maxMemory>"
	"<memory unit='GiB'>8</memory><currentMemory unit='MiB'>3072</currentMemory>"
	"<cpu><numa><cell id='0' cpus='0-1' memory='2' unit='GiB'/>"
	"<cell id='1' cpus='2-3' memory='2097152'/></numa></cpu>"
	"<memtune><hard_limit unit='G'>20</hard_limit></memtune>"
	"<memoryBacking><locked/></memoryBacking>"
	"<devices>"
	" <memory model='virtio-mem'><target><size unit='GiB'>2</size><node>1</node>"
	"  <block unit='MiB'>2</block><requested unit='MiB'>512</requested>"
	"  <address base='0x140000000'/></target><alias name='ua-vmem0'/></memory>"
	" <memory model='virtio-mem'><target><size unit='GiB'>1</size><node>0</node>"
	"  <block unit='KiB'>2048</block></target></memory>"
	" <memory model='dimm'><target><size unit='GiB'>1</size><node>0</node></target></memory>"
	" <hostdev mode='subsystem' type='pci' managed='yes'><driver name='vfio' iommufd='yes'/>"
	"  <source><address domain='0x0000' bus='0x3b' slot='0x00' function='0x1'/></source>"
	"  <alias name='ua-gpu'/></hostdev>"
	" <hostdev mode='subsystem' type='mdev' model='vfio-pci'>"
	"  <source><address uuid='c2177883-f1bb-47f0-914d-32a22e3a8804'/></source></hostdev>"
	" <hostdev mode='subsystem' type='usb'><source><vendor id='0x1234'/></source></hostdev>"
	" <disk type='nvme' device='disk'><source type='pci' managed='yes' namespace='2'>"
	"  <address domain='0x0000' bus='0x05' slot='0x00' function='0x0'/></source>"
	"  <target dev='vdb' bus='virtio'/></disk>"
	" <disk type='file' device='disk'><source file='/x.img'/><target dev='vda'/></disk>"
	" <interface type='vdpa'><source dev='/dev/vhost-vdpa-0'/></interface>"
	" <interface type='network'><source network='default'/></interface>"
	" <interface type='hostdev'><source><address type='pci' domain='0' bus='7' slot='0' function='2'/>"
	"  </source></interface>"
	" <iommu model='intel'/>"
	" <memballoon model='virtio' autodeflate='on' freePageReporting='on'><stats period='10'/>"
	"  <alias name='ua-balloon'/></memballoon>"
	"</devices></domain>";

static void test_getters(void **state)
{
	struct pvm_domain *dom = parse(rich);
	const struct pvm_domain_memdev *m;
	const struct pvm_domain_pt *p;
	const struct pvm_domain_balloon *b;
	uint64_t hl = 0;

	assert_string_equal(pvm_domain_name(dom), "rich");
	assert_int_equal(pvm_domain_virt(dom), PVM_DOMAIN_VIRT_KVM);
	assert_int_equal(pvm_domain_arch(dom), PVM_ARCH_X86_64);
	assert_string_equal(pvm_domain_machine(dom), "pc-q35-8.2");
	assert_false(pvm_domain_is_pseries(dom));
	assert_int_equal(pvm_domain_vcpus(dom), 4);
	/* <memory> is explicit, so the NUMA cells do not replace it. */
	assert_int_equal(pvm_domain_memory(dom), 8ULL << 30);
	assert_int_equal(pvm_domain_memory_initial(dom), 4ULL << 30); /* 8 - 2 - 1 - 1 GiB */
	assert_int_equal(pvm_domain_current_memory(dom), 3ULL << 30);
	assert_int_equal(pvm_domain_max_memory(dom), 32ULL << 30);
	assert_int_equal(pvm_domain_memory_slots(dom), 8);
	assert_int_equal(pvm_domain_numa_nodes(dom), 2);
	assert_int_equal(pvm_domain_numa_node_memory(dom, 1), 2ULL << 30);
	assert_int_equal(pvm_domain_numa_node_memory(dom, 2), 0);
	assert_true(pvm_domain_locked(dom));
	assert_true(pvm_domain_hard_limit(dom, &hl));
	assert_int_equal(hl, 20ULL << 30);

	assert_int_equal(pvm_domain_memdev_count(dom), 3);
	assert_int_equal(pvm_domain_virtio_mem_count(dom), 2);
	m = pvm_domain_virtio_mem(dom, 0);
	assert_non_null(m);
	assert_string_equal(m->alias, "ua-vmem0");
	assert_string_equal(m->id, "ua-vmem0");
	assert_int_equal(m->size, 2ULL << 30);
	assert_int_equal(m->block_size, 2ULL << 20);
	assert_int_equal(m->requested_size, 512ULL << 20);
	assert_int_equal(m->node, 1);
	assert_true(m->has_address_base);
	assert_int_equal(m->address_base, 0x140000000ULL);
	m = pvm_domain_virtio_mem(dom, 1);
	assert_null(m->alias);
	assert_string_equal(m->id, "virtiomem1");
	assert_false(m->has_address_base);
	assert_null(pvm_domain_virtio_mem(dom, 2));
	assert_string_equal(pvm_domain_memdev(dom, 2)->id, "dimm0");

	assert_int_equal(pvm_domain_pt_count(dom), 5);
	p = pvm_domain_pt(dom, 0);
	assert_int_equal(p->kind, PVM_PT_PCI);
	assert_string_equal(p->id, "ua-gpu");
	assert_string_equal(p->source, "0000:3b:00.1");
	assert_string_equal(p->driver, "vfio");
	assert_true(p->iommufd);
	p = pvm_domain_pt(dom, 1);
	assert_int_equal(p->kind, PVM_PT_MDEV);
	assert_string_equal(p->id, "hostdev1");
	assert_string_equal(p->source, "c2177883-f1bb-47f0-914d-32a22e3a8804");
	p = pvm_domain_pt(dom, 2);
	assert_int_equal(p->kind, PVM_PT_NVME);
	assert_string_equal(p->id, "vdb");
	assert_string_equal(p->source, "0000:05:00.0");
	assert_int_equal(p->nvme_namespace, 2);
	p = pvm_domain_pt(dom, 3);
	assert_int_equal(p->kind, PVM_PT_VDPA_NET);
	assert_string_equal(p->id, "net0");
	assert_string_equal(p->source, "/dev/vhost-vdpa-0");
	p = pvm_domain_pt(dom, 4);
	assert_int_equal(p->kind, PVM_PT_PCI);
	assert_string_equal(p->id, "net2");
	assert_string_equal(p->source, "0000:07:00.2");
	assert_null(pvm_domain_pt(dom, 5));

	assert_int_equal(pvm_domain_iommu_count(dom), 1);
	assert_string_equal(pvm_domain_iommu_model(dom), "intel");
	b = pvm_domain_balloon(dom);
	assert_non_null(b);
	assert_string_equal(b->model, "virtio");
	assert_string_equal(b->id, "ua-balloon");
	assert_true(b->autodeflate);
	assert_true(b->free_page_reporting);
	assert_int_equal(b->stats_period, 10);
	assert_int_equal(pvm_domain_phb_count(dom), 0);
	pvm_domain_free(dom);
}

static void test_defaults(void **state)
{
	/* No <memory>: NUMA cells + memory devices; currentMemory above memory clamps. */
	struct pvm_domain *dom = parse(
		"<domain type='qemu'><os><type arch='ppc64le'>hvm</type></os>"
		"<currentMemory unit='TiB'>1</currentMemory>"
		"<cpu><numa><cell memory='1' unit='GiB'/><cell memory='512' unit='MiB'/></numa></cpu>"
		"<devices><memory model='dimm'><target><size unit='MiB'>256</size></target></memory>"
		"</devices></domain>");

	assert_int_equal(pvm_domain_virt(dom), PVM_DOMAIN_VIRT_QEMU);
	assert_int_equal(pvm_domain_memory(dom), (1536ULL + 256) << 20);
	assert_int_equal(pvm_domain_current_memory(dom), (1536ULL + 256) << 20);
	assert_string_equal(pvm_domain_machine(dom), "pseries");
	assert_true(pvm_domain_is_pseries(dom));
	assert_int_equal(pvm_domain_phb_count(dom), 1);
	assert_null(pvm_domain_balloon(dom));
	assert_false(pvm_domain_hard_limit(dom, NULL));
	assert_int_equal(pvm_domain_vcpus(dom), 1);
	pvm_domain_set_arch(dom, PVM_ARCH_S390X);
	assert_false(pvm_domain_is_pseries(dom));
	assert_int_equal(pvm_domain_phb_count(dom), 0);
	pvm_domain_free(dom);
}

/* Every unit libvirt accepts, with its exact byte value (then rounded up to KiB). */
static void test_units(void **state)
{
	static const struct {
		const char *unit;
		const char *value;
		uint64_t bytes;  /* expected pvm_domain_memory() */
	} cases[] = {
		{ NULL, "1048576", 1ULL << 30 },           /* default KiB */
		{ "", "1048576", 1ULL << 30 },
		{ "b", "1073741824", 1ULL << 30 },
		{ "byte", "1073741825", (1048576ULL + 1) << 10 }, /* rounded up to whole KiB */
		{ "bytes", "1025", 2048 },
		{ "k", "4", 4096 },
		{ "KiB", "4", 4096 },
		{ "kib", "4", 4096 },
		{ "KB", "4", 4096 },                      /* 4000 bytes -> 4 KiB (3.9 rounded up) */
		{ "kb", "1024", 1000ULL * 1024 },         /* 1024000 bytes = 1000 KiB exactly */
		{ "M", "3", 3ULL << 20 },
		{ "MiB", "3", 3ULL << 20 },
		{ "MB", "3", 3000320ULL },                /* ceil(3000000/1024) = 2930 KiB = 3000320 */
		{ "G", "2", 2ULL << 30 },
		{ "GiB", "2", 2ULL << 30 },
		{ "GB", "2", 1953125ULL << 10 },          /* 2e9 / 1024 = 1953125 exactly */
		{ "T", "1", 1ULL << 40 },
		{ "TiB", "1", 1ULL << 40 },
		{ "TB", "1", 976562500ULL << 10 },        /* 1e12 / 1024 = 976562500 exactly */
		{ "P", "1", 1ULL << 50 },
		{ "PiB", "1", 1ULL << 50 },
		{ "PB", "1", 976562500000ULL << 10 },
		{ "E", "7", 7ULL << 60 },
		{ "EiB", "7", 7ULL << 60 },
		{ "EB", "9", 8789062500000000ULL << 10 }, /* 9e18 < LLONG_MAX */
	};
	char xml[512];

	for (size_t i = 0; i < PVM_ARRAY_SIZE(cases); i++) {
		struct pvm_domain *dom;

		if (cases[i].unit)
			snprintf(xml, sizeof(xml), "<domain type='kvm'><memory unit='%s'>%s</memory></domain>",
				 cases[i].unit, cases[i].value);
		else
			snprintf(xml, sizeof(xml), "<domain type='kvm'><memory>%s</memory></domain>",
				 cases[i].value);
		dom = parse(xml);
		if (pvm_domain_memory(dom) != cases[i].bytes)
			fail_msg("unit '%s' value %s: %llu bytes, expected %llu", cases[i].unit ? cases[i].unit : "(none)",
				 cases[i].value, (unsigned long long)pvm_domain_memory(dom),
				 (unsigned long long)cases[i].bytes);
		pvm_domain_free(dom);
	}
}

static const struct {
	const char *name;
	const char *xml;
	const char *needle;  /* must appear in the message */
} bad[] = {
	{ "malformed", "<domain type='kvm'><memory>1</memory>", "malformed XML" },
	{ "empty", "", "malformed XML" },
	{ "wrong root", "<network/>", "not <domain>" },
	{ "no type", "<domain><memory>1024</memory></domain>", "missing type" },
	{ "xen", "<domain type='xen'><memory>1024</memory></domain>", "type 'kvm' or 'qemu'" },
	{ "bad arch", "<domain type='kvm'><os><type arch='sparc64'/></os><memory>1</memory></domain>",
	  "unsupported architecture" },
	{ "no memory", "<domain type='kvm'></domain>", "missing <memory>" },
	{ "zero memory", "<domain type='kvm'><memory>0</memory></domain>", "<memory>" },
	{ "unknown unit", "<domain type='kvm'><memory unit='XiB'>1</memory></domain>", "unknown unit 'XiB'" },
	{ "unit KiBB", "<domain type='kvm'><memory unit='KiBB'>1</memory></domain>", "unknown unit" },
	{ "negative", "<domain type='kvm'><memory>-5</memory></domain>", "is negative" },
	{ "not a number", "<domain type='kvm'><memory>12abc</memory></domain>", "not a number" },
	{ "empty memory", "<domain type='kvm'><memory unit='KiB'></memory></domain>", "<memory>: missing value" },
	{ "64-bit overflow", "<domain type='kvm'><memory>99999999999999999999</memory></domain>", "too large" },
	{ "scale overflow", "<domain type='kvm'><memory unit='EiB'>8</memory></domain>", "too large" },
	{ "kib overflow", "<domain type='kvm'><memory unit='KiB'>9007199254740992</memory></domain>", "too large" },
	{ "max without slots", "<domain type='kvm'><maxMemory unit='GiB'>4</maxMemory><memory>1024</memory></domain>",
	  "<maxMemory>" },
	{ "max below memory",
	  "<domain type='kvm'><maxMemory slots='2' unit='GiB'>1</maxMemory><memory unit='GiB'>2</memory></domain>",
	  "below <memory>" },
	{ "devices exceed memory",
	  "<domain type='kvm'><memory unit='GiB'>1</memory><devices><memory model='dimm'><target>"
	  "<size unit='GiB'>2</size></target></memory></devices></domain>", "exceed the total memory" },
	{ "memdev model", "<domain type='kvm'><memory unit='GiB'>4</memory><devices><memory model='egm'>"
	  "<target><size>1</size></target></memory></devices></domain>", "unknown model" },
	{ "memdev no size", "<domain type='kvm'><memory unit='GiB'>4</memory><devices><memory model='dimm'/>"
	  "</devices></domain>", "missing <target><size>" },
	{ "virtio-mem block", "<domain type='kvm'><memory unit='GiB'>4</memory><devices><memory model='virtio-mem'>"
	  "<target><size unit='MiB'>96</size><block unit='MiB'>3</block></target></memory></devices></domain>",
	  "not a power of two" },
	{ "virtio-mem requested", "<domain type='kvm'><memory unit='GiB'>4</memory><devices><memory model='virtio-mem'>"
	  "<target><size unit='MiB'>64</size><block unit='MiB'>2</block><requested unit='MiB'>128</requested>"
	  "</target></memory></devices></domain>", "requested size is above" },
	{ "hard_limit unit", "<domain type='kvm'><memory>1024</memory><memtune><hard_limit unit='Q'>1"
	  "</hard_limit></memtune></domain>", "<memtune><hard_limit>: unknown unit" },
	{ "pci address", "<domain type='kvm'><memory>1024</memory><devices><hostdev mode='subsystem' type='pci'>"
	  "<source><address domain='0' bus='0x100' slot='0' function='0'/></source></hostdev></devices></domain>",
	  "out of range" },
	{ "hostdev type", "<domain type='kvm'><memory>1024</memory><devices><hostdev mode='subsystem'/>"
	  "</devices></domain>", "<hostdev>: missing type" },
	{ "numa cell", "<domain type='kvm'><cpu><numa><cell id='0'/></numa></cpu></domain>", "missing memory" },
};

static void test_errors(void **state)
{
	for (size_t i = 0; i < PVM_ARRAY_SIZE(bad); i++) {
		struct pvm_domain *dom = NULL;
		struct pvm_error err = { 0 };
		int rc = pvm_domain_parse_memory(bad[i].xml, strlen(bad[i].xml), PVM_DOMAIN_PARSE_NO_HOST, &dom, &err);

		if (rc != -EINVAL || dom)
			fail_msg("%s: rc %d, expected -EINVAL", bad[i].name, rc);
		if (!strstr(pvm_error_message(&err), bad[i].needle))
			fail_msg("%s: message '%s' lacks '%s'", bad[i].name, pvm_error_message(&err), bad[i].needle);
	}
}

static void test_hotplug(void **state)
{
	struct pvm_domain *dom = parse("<domain type='kvm'><maxMemory slots='4' unit='GiB'>8</maxMemory>"
				       "<memory unit='GiB'>4</memory></domain>");
	static const char hd[] = "<hostdev mode='subsystem' type='pci'><source>"
				 "<address domain='0' bus='1' slot='0' function='0'/></source></hostdev>";
	static const char dimm[] = "<memory model='dimm'><target><size unit='GiB'>2</size></target></memory>";
	static const char big[] = "<memory model='dimm'><target><size unit='GiB'>3</size></target></memory>";
	struct pvm_error err = { 0 };
	const char *id = NULL;

	assert_int_equal(pvm_domain_attach_xml(dom, hd, sizeof(hd) - 1, &id, &err), 0);
	assert_string_equal(id, "hostdev0");
	assert_int_equal(pvm_domain_pt_count(dom), 1);
	assert_int_equal(pvm_domain_attach_xml(dom, dimm, sizeof(dimm) - 1, &id, &err), 0);
	assert_string_equal(id, "dimm0");
	assert_int_equal(pvm_domain_memory(dom), 6ULL << 30);
	/* 6 + 3 > maxMemory 8: refused, model unchanged */
	assert_int_equal(pvm_domain_attach_xml(dom, big, sizeof(big) - 1, &id, &err), -EINVAL);
	assert_non_null(strstr(pvm_error_message(&err), "maxMemory"));
	assert_int_equal(pvm_domain_memory(dom), 6ULL << 30);
	assert_int_equal(pvm_domain_memdev_count(dom), 1);
	pvm_error_clear(&err);
	assert_int_equal(pvm_domain_attach_xml(dom, "<graphics/>", 11, NULL, &err), -EINVAL);
	assert_int_equal(pvm_domain_detach(dom, "dimm0", NULL), 0);
	assert_int_equal(pvm_domain_memory(dom), 4ULL << 30);
	assert_int_equal(pvm_domain_detach(dom, "hostdev0", NULL), 0);
	assert_int_equal(pvm_domain_pt_count(dom), 0);
	assert_int_equal(pvm_domain_detach(dom, "hostdev0", NULL), -ENOENT);
	pvm_domain_free(dom);
}

/* ---- allocation torture ---------------------------------------------------------------------- */

struct tctx {
	struct pvm_domain *dom; /* parsed domain (parse) or the one changed (attach) */
	size_t pts;             /* pt count before the operation */
};

static int op_parse(void *p)
{
	struct tctx *t = p;

	pvm_domain_free(t->dom);
	t->dom = NULL;
	return pvm_domain_parse_memory(rich, sizeof(rich) - 1, PVM_DOMAIN_PARSE_NO_HOST, &t->dom, NULL);
}

static int parse_unchanged(void *p)
{
	return ((struct tctx *)p)->dom == NULL;
}

static int op_attach(void *p)
{
	static const char hd[] = "<interface type='vdpa'><source dev='/dev/vhost-vdpa-3'/></interface>";
	struct tctx *t = p;
	int rc = pvm_domain_attach_xml(t->dom, hd, sizeof(hd) - 1, NULL, NULL);

	if (rc == 0)
		assert_int_equal(pvm_domain_detach(t->dom, "net3", NULL), 0);
	return rc;
}

static int attach_unchanged(void *p)
{
	struct tctx *t = p;

	return pvm_domain_pt_count(t->dom) == t->pts && pvm_domain_memory(t->dom) == 8ULL << 30;
}

static void test_torture(void **state)
{
	struct tctx t = { 0 };

	assert_true(pvm_test_torture(op_parse, parse_unchanged, &t) > 10);
	assert_non_null(t.dom);
	t.pts = pvm_domain_pt_count(t.dom);
	assert_true(pvm_test_torture(op_attach, attach_unchanged, &t) > 10);
	pvm_domain_free(t.dom);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_getters),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_units),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_hotplug),
		cmocka_unit_test(test_torture),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

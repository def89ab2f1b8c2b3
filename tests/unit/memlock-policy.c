/* SPDX-License-Identifier: MIT */
/*
 * The memlock policy as a named case matrix. Every golden number is worked out by hand from
 * libvirt's formula (qemuDomainGetMemLockLimitBytes / getPPC64MemLockLimitBytes, all in KiB):
 *   generic: (factor x M + 1048576) KiB, factor = nvdpa + nnvme + (nvfio ? (vIOMMU ? nvfio : 1) : 0)
 *   ppc64 KVM: maxM/128 + 4096 x nPHB + 8192
 *              + max(2097152 x nPHB, M + M/512 x nPHB + 8192)      (with passthrough)
 *              + maxM + 268435456 x nPHB + 8192                     (NVLink2 instead)
 * The libvirt-suite cases themselves are in tests/conformance/memlock.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test-util.h"
#include <pvmem/memlock.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define U PVM_MEMLOCK_INFINITY

#define HEAD(type, arch, machine) "<domain type='" type "'><os><type arch='" arch "' machine='" machine "'>hvm</type></os>"
#define HOSTDEV(bus) "<hostdev mode='subsystem' type='pci' managed='yes'><source>" \
	"<address domain='0x0000' bus='" bus "' slot='0x00' function='0x0'/></source></hostdev>"
#define MDEV "<hostdev mode='subsystem' type='mdev' model='vfio-pci'><source>" \
	"<address uuid='c2177883-f1bb-47f0-914d-32a22e3a8804'/></source></hostdev>"
#define NVME "<disk type='nvme' device='disk'><source type='pci' managed='yes' namespace='1'>" \
	"<address domain='0x0000' bus='0x05' slot='0x00' function='0x0'/></source><target dev='vdb'/></disk>"
#define VDPA "<interface type='vdpa'><source dev='/dev/vhost-vdpa-0'/></interface>"

static const struct mcase {
	const char *name;
	const char *xml;
	enum pvm_memlock_kind kind;
	uint64_t bytes;      /* expected pvm_memlock_result_bytes() */
	uint64_t libvirt;    /* expected pvm_memlock_result_libvirt() */
	unsigned warnings;   /* expected number of warnings */
} cases[] = {
	/* maxMemory is ignored off ppc64; <memory> (6 GiB) already includes both DIMMs.
	 * M = 6291456 KiB; factor 1: 6291456 + 1048576 = 7340032 KiB = 7516192768 B */
	{ "x86-maxmem-dimms",
	  HEAD("kvm", "x86_64", "pc-q35-8.2") "<maxMemory slots='16' unit='GiB'>64</maxMemory>"
	  "<memory unit='GiB'>6</memory><devices>"
	  "<memory model='dimm'><target><size unit='GiB'>1</size><node>0</node></target></memory>"
	  "<memory model='dimm'><target><size unit='GiB'>1</size><node>0</node></target></memory>"
	  HOSTDEV("0x01") "</devices></domain>",
	  PVM_MEMLOCK_BYTES, 7516192768ULL, 7516192768ULL, 0 },
	/* three VFIO devices share one container without a vIOMMU: M = 4194304;
	 * 4194304 + 1048576 = 5242880 KiB = 5368709120 B */
	{ "x86-3-hostdevs",
	  HEAD("kvm", "x86_64", "pc") "<memory unit='GiB'>4</memory><devices>"
	  HOSTDEV("0x01") HOSTDEV("0x02") HOSTDEV("0x03") "</devices></domain>",
	  PVM_MEMLOCK_BYTES, 5368709120ULL, 5368709120ULL, 0 },
	/* ... and one container each with a vIOMMU: 3 x 4194304 + 1048576 = 13631488 KiB */
	{ "x86-3-hostdevs-viommu",
	  HEAD("kvm", "x86_64", "q35") "<memory unit='GiB'>4</memory><devices>"
	  HOSTDEV("0x01") HOSTDEV("0x02") HOSTDEV("0x03") "<iommu model='intel'/></devices></domain>",
	  PVM_MEMLOCK_BYTES, 13958643712ULL, 13958643712ULL, 0 },
	/* a vIOMMU alone changes nothing: no device pins */
	{ "x86-viommu-only",
	  HEAD("kvm", "x86_64", "q35") "<memory unit='GiB'>4</memory><devices><iommu model='intel'/></devices></domain>",
	  PVM_MEMLOCK_NONE, 0, 0, 0 },
	/* NVMe + vDPA, no hostdev: factor 2; M = 2097152: 2 x 2097152 + 1048576 = 5242880 KiB */
	{ "x86-nvme-vdpa",
	  HEAD("kvm", "x86_64", "pc") "<memory unit='GiB'>2</memory><devices>" NVME VDPA "</devices></domain>",
	  PVM_MEMLOCK_BYTES, 5368709120ULL, 5368709120ULL, 0 },
	/* NVMe + vDPA + 2 hostdevs + vIOMMU: factor 1 + 1 + 2 = 4: 4 x 2097152 + 1048576 = 9437184 KiB */
	{ "x86-nvme-vdpa-2-hostdevs-viommu",
	  HEAD("kvm", "x86_64", "q35") "<memory unit='GiB'>2</memory><devices>" NVME VDPA
	  HOSTDEV("0x01") HOSTDEV("0x02") "<iommu model='virtio'/></devices></domain>",
	  PVM_MEMLOCK_BYTES, 9663676416ULL, 9663676416ULL, 0 },
	/* aarch64 mdev + SMMUv3: nvfio 1 with vIOMMU -> factor 1; M = 8388608:
	 * 8388608 + 1048576 = 9437184 KiB = 9663676416 B */
	{ "aarch64-mdev-smmuv3",
	  HEAD("kvm", "aarch64", "virt") "<memory unit='GiB'>8</memory><devices>" MDEV
	  "<iommu model='smmuv3'/></devices></domain>",
	  PVM_MEMLOCK_BYTES, 9663676416ULL, 9663676416ULL, 0 },
	/* s390x zPCI hostdev: M = 2097152: 2097152 + 1048576 = 3145728 KiB = 3221225472 B */
	{ "s390x-hostdev",
	  HEAD("kvm", "s390x", "s390-ccw-virtio") "<memory unit='GiB'>2</memory><devices>" HOSTDEV("0x00")
	  "</devices></domain>",
	  PVM_MEMLOCK_BYTES, 3221225472ULL, 3221225472ULL, 0 },
	/* TCG x86 with a hostdev uses the same formula: 1048576 + 1048576 = 2097152 KiB */
	{ "x86-tcg-hostdev",
	  HEAD("qemu", "x86_64", "pc") "<memory unit='GiB'>1</memory><devices>" HOSTDEV("0x01") "</devices></domain>",
	  PVM_MEMLOCK_BYTES, 2147483648ULL, 2147483648ULL, 0 },
	/* ppc64 TCG skips the ppc64 branch: generic, 2097152 KiB */
	{ "ppc64-tcg-hostdev",
	  HEAD("qemu", "ppc64", "pseries") "<memory unit='GiB'>1</memory><devices>" HOSTDEV("0x01") "</devices></domain>",
	  PVM_MEMLOCK_BYTES, 2147483648ULL, 2147483648ULL, 0 },
	/* i686 disk whose chain has two vhost-vdpa elements: nvdpa 2; M = 1048576:
	 * 2 x 1048576 + 1048576 = 3145728 KiB */
	{ "i686-vdpa-disk-chain",
	  HEAD("kvm", "i686", "pc") "<memory unit='GiB'>1</memory><devices>"
	  "<disk type='vhostvdpa' device='disk'><source dev='/dev/vhost-vdpa-1'/>"
	  "<backingStore type='vhostvdpa'><source dev='/dev/vhost-vdpa-2'/></backingStore><target dev='vda'/></disk>"
	  "</devices></domain>",
	  PVM_MEMLOCK_BYTES, 3221225472ULL, 3221225472ULL, 0 },
	/* NVMe deep in a backing chain counts once per disk: 1048576 + 1048576 = 2097152 KiB */
	{ "x86-nvme-backing",
	  HEAD("kvm", "x86_64", "pc") "<memory unit='GiB'>1</memory><devices>"
	  "<disk type='file'><source file='/a.qcow2'/><backingStore type='nvme'><source type='pci' namespace='1'>"
	  "<address domain='0' bus='5' slot='0' function='0'/></source><backingStore type='nvme'/></backingStore>"
	  "<target dev='vda'/></disk></devices></domain>",
	  PVM_MEMLOCK_BYTES, 2147483648ULL, 2147483648ULL, 0 },
	/* <interface type='hostdev'> is a PCI hostdev: 1048576 + 1048576 KiB */
	{ "x86-interface-hostdev",
	  HEAD("kvm", "x86_64", "pc") "<memory unit='GiB'>1</memory><devices><interface type='hostdev'>"
	  "<source><address type='pci' domain='0' bus='7' slot='0' function='2'/></source></interface></devices></domain>",
	  PVM_MEMLOCK_BYTES, 2147483648ULL, 2147483648ULL, 0 },
	/* USB hostdev pins nothing */
	{ "x86-usb-hostdev",
	  HEAD("kvm", "x86_64", "pc") "<memory unit='GiB'>1</memory><devices><hostdev mode='subsystem' type='usb'>"
	  "<source><vendor id='0x1'/><product id='0x2'/></source></hostdev></devices></domain>",
	  PVM_MEMLOCK_NONE, 0, 0, 0 },
	/* odd size: 1073741825 bytes -> ceil(/1024) = 1048577 KiB; + 1048576 = 2097153 KiB = 2147484672 B */
	{ "x86-odd-bytes",
	  HEAD("kvm", "x86_64", "pc") "<memory unit='b'>1073741825</memory><devices>" HOSTDEV("0x01") "</devices></domain>",
	  PVM_MEMLOCK_BYTES, 2147484672ULL, 2147484672ULL, 0 },
	/* SI unit: 1000 MB = 1e9 B -> ceil(1e9/1024) = 976563 KiB; + 1048576 = 2025139 KiB = 2073742336 B */
	{ "x86-si-units",
	  HEAD("kvm", "x86_64", "pc") "<memory unit='MB'>1000</memory><devices>" HOSTDEV("0x01") "</devices></domain>",
	  PVM_MEMLOCK_BYTES, 2073742336ULL, 2073742336ULL, 0 },
	/* virtio-mem's maximum size is part of <memory>: M = 6 GiB -> 7 GiB */
	{ "x86-virtio-mem",
	  HEAD("kvm", "x86_64", "q35") "<memory unit='GiB'>6</memory><devices><memory model='virtio-mem'><target>"
	  "<size unit='GiB'>4</size><block unit='MiB'>2</block><requested unit='GiB'>1</requested></target></memory>"
	  HOSTDEV("0x01") "</devices></domain>",
	  PVM_MEMLOCK_BYTES, 7516192768ULL, 7516192768ULL, 0 },
	/* hard_limit (1 GiB) beats the need (2 GiB) but is reported */
	{ "x86-hardlimit-too-low",
	  HEAD("kvm", "x86_64", "pc") "<memory unit='GiB'>1</memory><memtune><hard_limit unit='G'>1</hard_limit>"
	  "</memtune><devices>" HOSTDEV("0x01") "</devices></domain>",
	  PVM_MEMLOCK_BYTES, 1073741824ULL, 1073741824ULL, 1 },
	/* hard_limit at libvirt's sentinel means "unlimited" = not set: nothing needed */
	{ "x86-hardlimit-sentinel",
	  HEAD("kvm", "x86_64", "pc") "<memory unit='GiB'>1</memory><memtune><hard_limit>9007199254740991"
	  "</hard_limit></memtune></domain>",
	  PVM_MEMLOCK_NONE, 0, 0, 0 },
	/* hard_limit of 8 PiB (2^43 KiB = 2^53 B >= 2^53 - 1): libvirt applies RLIM_INFINITY */
	{ "x86-hardlimit-8pib",
	  HEAD("kvm", "x86_64", "pc") "<memory unit='GiB'>1</memory><memtune><hard_limit unit='PiB'>8"
	  "</hard_limit></memtune></domain>",
	  PVM_MEMLOCK_UNLIMITED, U, 9007199254740992ULL, 1 },
	/* 7 EiB guest (7 x 2^50 KiB), 3 hostdevs + vIOMMU: (3 x 7 x 2^50 + 2^20) KiB x 1024 > 2^64.
	 * libvirt would wrap; pvmem saturates to unlimited */
	{ "x86-overflow",
	  HEAD("kvm", "x86_64", "q35") "<memory unit='EiB'>7</memory><devices>"
	  HOSTDEV("0x01") HOSTDEV("0x02") HOSTDEV("0x03") "<iommu model='intel'/></devices></domain>",
	  PVM_MEMLOCK_UNLIMITED, U, UINT64_MAX, 1 },
	/* pseries, two extra PHBs nobody uses, no devices: nPHB = 3, M = 4194304:
	 * 4194304/128 + 4096 x 3 + 8192 = 32768 + 12288 + 8192 = 53248 KiB = 54525952 B */
	{ "ppc64-3-phbs",
	  HEAD("kvm", "ppc64", "pseries") "<memory unit='GiB'>4</memory><devices>"
	  "<controller type='pci' index='0' model='pci-root'/>"
	  "<controller type='pci' index='1' model='pci-root'><model name='spapr-pci-host-bridge'/></controller>"
	  "<controller type='pci' index='2' model='pci-root'/></devices></domain>",
	  PVM_MEMLOCK_BYTES, 54525952ULL, 54525952ULL, 0 },
	/* pseries ppc64le, maxMemory 8 GiB, M 4 GiB, 2 hostdevs in unknown groups -> nPHB = 1 + 2:
	 * base = 8388608/128 + 4096 x 3 + 8192 = 65536 + 12288 + 8192 = 86016
	 * pt = max(2097152 x 3 = 6291456, 4194304 + 8192 x 3 + 8192 = 4227072) = 6291456
	 * total 6377472 KiB = 6530531328 B */
	{ "ppc64le-maxmem-2-hostdevs",
	  HEAD("kvm", "ppc64le", "pseries-8.2") "<maxMemory slots='4' unit='GiB'>8</maxMemory>"
	  "<memory unit='GiB'>4</memory><devices>" HOSTDEV("0x01") HOSTDEV("0x02") "</devices></domain>",
	  PVM_MEMLOCK_BYTES, 6530531328ULL, 6530531328ULL, 0 },
	/* live-XML style: the hostdevs already sit on PHB 1 (listed): nPHB = 2, M = 16777216:
	 * base = 131072 + 8192 + 8192 = 147456; pt = max(4194304, 16777216 + 32768 x 2 + 8192 = 16850944)
	 * total 16998400 KiB = 17406361600 B; the vIOMMU and the second device change nothing on ppc64 */
	{ "ppc64-live-phb",
	  HEAD("kvm", "ppc64", "pseries") "<memory unit='GiB'>16</memory><devices>"
	  "<controller type='pci' index='0' model='pci-root'><model name='spapr-pci-host-bridge'/><target index='0'/></controller>"
	  "<controller type='pci' index='1' model='pci-root'><model name='spapr-pci-host-bridge'/><target index='1'/></controller>"
	  "<hostdev mode='subsystem' type='pci'><source><address domain='0' bus='1' slot='0' function='0'/></source>"
	  "<address type='pci' domain='0' bus='1' slot='1' function='0'/></hostdev>"
	  "<hostdev mode='subsystem' type='pci'><source><address domain='0' bus='1' slot='0' function='1'/></source>"
	  "<address type='pci' domain='0' bus='1' slot='2' function='0'/></hostdev>"
	  "<iommu model='spapr-tce'/></devices></domain>",
	  PVM_MEMLOCK_BYTES, 17406361600ULL, 17406361600ULL, 0 },
	/* pseries with NVMe only: nPHB 1, M = 1048576: base 8192 + 4096 + 8192 = 20480;
	 * pt = max(2097152, 1048576 + 2048 + 8192 = 1058816) = 2097152; total 2117632 KiB = 2168455168 B */
	{ "ppc64-nvme",
	  HEAD("kvm", "ppc64", "pseries") "<memory unit='GiB'>1</memory><devices>" NVME "</devices></domain>",
	  PVM_MEMLOCK_BYTES, 2168455168ULL, 2168455168ULL, 0 },
	/* pseries with a vhost-vdpa DISK only: libvirt's ppc64 test looks at vDPA *nets* only:
	 * base 20480 KiB = 20971520 B */
	{ "ppc64-vdpa-disk",
	  HEAD("kvm", "ppc64", "pseries") "<memory unit='GiB'>1</memory><devices>"
	  "<disk type='vhostvdpa'><source dev='/dev/vhost-vdpa-1'/><target dev='vda'/></disk></devices></domain>",
	  PVM_MEMLOCK_BYTES, 20971520ULL, 20971520ULL, 0 },
	/* ppc64 locked beats everything */
	{ "ppc64-locked",
	  HEAD("kvm", "ppc64", "pseries") "<memory unit='GiB'>1</memory><memoryBacking><locked/></memoryBacking></domain>",
	  PVM_MEMLOCK_UNLIMITED, U, PVM_MEMLOCK_LIBVIRT_UNLIMITED, 0 },
};

static void check(const char *name, const struct pvm_domain *dom, const struct pvm_memlock_options *o,
		  enum pvm_memlock_kind kind, uint64_t bytes, uint64_t libvirt, unsigned warnings)
{
	struct pvm_memlock_result *r = NULL;
	struct pvm_error err = { 0 };
	uint64_t sum = 0;

	if (pvm_memlock_compute(dom, o, &r, &err) < 0)
		fail_msg("%s: %s", name, pvm_error_message(&err));
	if (pvm_memlock_result_kind(r) != kind || pvm_memlock_result_bytes(r) != bytes ||
	    pvm_memlock_result_libvirt(r) != libvirt || pvm_memlock_result_warning_count(r) != warnings)
		fail_msg("%s: kind %d bytes %llu libvirt %llu warnings %zu; expected %d %llu %llu %u (%s)", name,
			 (int)pvm_memlock_result_kind(r), (unsigned long long)pvm_memlock_result_bytes(r),
			 (unsigned long long)pvm_memlock_result_libvirt(r), pvm_memlock_result_warning_count(r),
			 (int)kind, (unsigned long long)bytes, (unsigned long long)libvirt, warnings,
			 pvm_memlock_result_warning_count(r) ? pvm_memlock_result_warning(r, 0) : "");
	if (kind == PVM_MEMLOCK_BYTES) {
		for (size_t i = 0; i < pvm_memlock_result_term_count(r); i++) {
			const struct pvm_memlock_term *t = pvm_memlock_result_term(r, i);

			assert_non_null(t->name);
			assert_true(strlen(t->why) > 10);
			sum += t->bytes;
		}
		if (sum != bytes)
			fail_msg("%s: terms add up to %llu, not %llu", name, (unsigned long long)sum,
				 (unsigned long long)bytes);
	}
	pvm_memlock_result_free(r);
}

static void test_matrix(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct pvm_domain *dom = NULL;
		struct pvm_error err = { 0 };

		if (pvm_domain_parse_memory(cases[i].xml, strlen(cases[i].xml), PVM_DOMAIN_PARSE_NO_HOST, &dom, &err) < 0)
			fail_msg("%s: parse: %s", cases[i].name, pvm_error_message(&err));
		check(cases[i].name, dom, NULL, cases[i].kind, cases[i].bytes, cases[i].libvirt, cases[i].warnings);
		pvm_domain_free(dom);
	}
}

/* 64 TiB guest x 200 hostdevs behind a vIOMMU: (200 x 2^36 + 2^20) KiB = 1.4e16 B >= 2^53 - 1:
 * libvirt's value is exact, the applied limit saturates to unlimited. */
static void test_tib_guest_many_devices(void **state)
{
	size_t len = 0, cap = 200 * 200 + 512;
	char *xml = malloc(cap);
	struct pvm_domain *dom = NULL;

	assert_non_null(xml);
	len += (size_t)snprintf(xml + len, cap - len, HEAD("kvm", "x86_64", "q35") "<memory unit='TiB'>64</memory><devices>");
	for (int i = 0; i < 200; i++)
		len += (size_t)snprintf(xml + len, cap - len, "<hostdev mode='subsystem' type='pci'><source><address "
					"domain='0' bus='%d' slot='%d' function='0'/></source></hostdev>", i / 32 + 1, i % 32);
	len += (size_t)snprintf(xml + len, cap - len, "<iommu model='intel'/></devices></domain>");
	assert_int_equal(pvm_domain_parse_memory(xml, len, PVM_DOMAIN_PARSE_NO_HOST, &dom, NULL), 0);
	check("tib-200-hostdevs", dom, NULL, PVM_MEMLOCK_UNLIMITED, U,
	      (200ULL * (64ULL << 30) + (1ULL << 20)) << 10, 1);
	pvm_domain_free(dom);
	free(xml);
}

/* ---- a fake host: sysfs for NVLink2 / BARs / IOMMU groups, /proc and cgroups ------------------ */

static void put(const char *root, const char *rel, const char *content)
{
	char path[4096], dir[4096], *p;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	snprintf(dir, sizeof(dir), "%s", path);
	for (p = dir + strlen(root) + 1; (p = strchr(p, '/')); p++) {
		*p = '\0';
		mkdir(dir, 0755);
		*p = '/';
	}
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_true(write(fd, content, strlen(content)) == (ssize_t)strlen(content));
	close(fd);
}

static char *fake_root(void)
{
	char *root = strdup("/tmp/pvmem-memlock-XXXXXX");

	assert_non_null(root);
	assert_non_null(mkdtemp(root));
	return root;
}

static void rm_root(char *root)
{
	char cmd[4200];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	assert_int_equal(system(cmd), 0);
	free(root);
}

/* NVLink2 bridge 0004:04:00.0, M = 1048576, nPHB = 2 (default + isolation):
 * base = 8192 + 4096 x 2 + 8192 = 24576; pt = 1048576 + 268435456 x 2 + 8192 = 537927680;
 * total 537952256 KiB = 550863110144 B. Without the sysfs files it is the plain formula:
 * pt = max(4194304, 1048576 + 2048 x 2 + 8192) = 4194304 -> 4218880 KiB = 4320133120 B. */
static void test_nvlink2(void **state)
{
	static const char xml[] = HEAD("kvm", "ppc64", "pseries") "<memory unit='GiB'>1</memory><devices>"
		"<hostdev mode='subsystem' type='pci'><source><address domain='0x0004' bus='0x04' slot='0x00' "
		"function='0x0'/></source></hostdev></devices></domain>";
	char *root = fake_root();
	struct pvm_domain *dom = NULL;

	put(root, "bus/pci/devices/0004:04:00.0/of_node/ibm,gpu", "");
	put(root, "bus/pci/devices/0004:04:00.0/of_node/ibm,nvlink", "");
	put(root, "bus/pci/devices/0004:04:00.0/of_node/ibm,nvlink-speed", "");
	assert_int_equal(pvm_domain_parse_memory(xml, sizeof(xml) - 1, PVM_DOMAIN_PARSE_NO_HOST, &dom, NULL), 0);
	assert_int_equal(pvm_domain_probe_host(dom, root, NULL), 0);
	assert_false(pvm_domain_has_nvlink2(dom)); /* memory-region missing: not a bridge */
	check("nvlink2-incomplete", dom, NULL, PVM_MEMLOCK_BYTES, 4320133120ULL, 4320133120ULL, 0);
	put(root, "bus/pci/devices/0004:04:00.0/of_node/memory-region", "");
	assert_int_equal(pvm_domain_probe_host(dom, root, NULL), 0);
	assert_true(pvm_domain_has_nvlink2(dom));
	assert_int_equal(pvm_domain_phb_count(dom), 2);
	check("nvlink2", dom, NULL, PVM_MEMLOCK_BYTES, 550863110144ULL, 550863110144ULL, 0);
	pvm_domain_free(dom);
	rm_root(root);
}

/* Two hostdevs in the same host IOMMU group share one isolation PHB: nPHB = 2, not 3.
 * M = 1048576: base 24576; pt = max(4194304, 1058816 + 2048) = 4194304 -> 4320133120 B */
static void test_iommu_groups(void **state)
{
	static const char xml[] = HEAD("kvm", "ppc64", "pseries") "<memory unit='GiB'>1</memory><devices>"
		HOSTDEV("0x01") "<hostdev mode='subsystem' type='pci'><source><address domain='0x0000' bus='0x01' "
		"slot='0x00' function='0x1'/></source></hostdev></devices></domain>";
	char *root = fake_root(), path[4200], target[4200];
	struct pvm_domain *dom = NULL;

	put(root, "kernel/iommu_groups/7/type", "DMA\n");
	put(root, "bus/pci/devices/0000:01:00.0/resource", "");
	put(root, "bus/pci/devices/0000:01:00.1/resource", "");
	for (int f = 0; f < 2; f++) {
		snprintf(path, sizeof(path), "%s/bus/pci/devices/0000:01:00.%d/iommu_group", root, f);
		snprintf(target, sizeof(target), "%s/kernel/iommu_groups/7", root);
		assert_int_equal(symlink(target, path), 0);
	}
	assert_int_equal(pvm_domain_parse_memory(xml, sizeof(xml) - 1, PVM_DOMAIN_PARSE_NO_HOST, &dom, NULL), 0);
	assert_int_equal(pvm_domain_phb_count(dom), 3); /* unknown groups: one PHB each */
	assert_int_equal(pvm_domain_probe_host(dom, root, NULL), 0);
	assert_int_equal(pvm_domain_pt(dom, 0)->host_iommu_group, 7);
	assert_int_equal(pvm_domain_phb_count(dom), 2);
	check("iommu-group", dom, NULL, PVM_MEMLOCK_BYTES, 4320133120ULL, 4320133120ULL, 0);
	pvm_domain_free(dom);
	rm_root(root);
}

/* iommufd model: BAR0 16 MiB + BAR2 256 MiB (memory), BAR4 I/O ports ignored = 272 MiB.
 * type1: 4194304 + 1048576 = 5242880 KiB; iommufd adds 278528 KiB (1 IOAS): 5521408 KiB =
 * 5653921792 B; with a vIOMMU and two such devices: 2 x 4194304 + 1048576 + (2 x 278528) x 2 IOAS
 * = 9437184 + 1114112 = 10551296 KiB = 10804527104 B (libvirt's part: 9663676416 B) */
static void test_iommufd(void **state)
{
	static const char one[] = HEAD("kvm", "x86_64", "q35") "<memory unit='GiB'>4</memory><devices>"
		HOSTDEV("0x01") "</devices></domain>";
	static const char two[] = HEAD("kvm", "x86_64", "q35") "<memory unit='GiB'>4</memory><devices>"
		HOSTDEV("0x01") HOSTDEV("0x02") "<iommu model='intel'/></devices></domain>";
	static const char res[] =
		"0x00000000fa000000 0x00000000faffffff 0x0000000000040200\n"
		"0x0000000000000000 0x0000000000000000 0x0000000000000000\n"
		"0x0000380000000000 0x000038000fffffff 0x000000000014220c\n"
		"0x0000000000000000 0x0000000000000000 0x0000000000000000\n"
		"0x000000000000e000 0x000000000000e07f 0x0000000000040101\n"
		"0x0000000000000000 0x0000000000000000 0x0000000000000000\n";
	struct pvm_memlock_options o = { .model = PVM_MEMLOCK_MODEL_IOMMUFD };
	char *root = fake_root();
	struct pvm_domain *dom = NULL;

	put(root, "bus/pci/devices/0000:01:00.0/resource", res);
	put(root, "bus/pci/devices/0000:02:00.0/resource", res);
	assert_int_equal(pvm_domain_parse_memory(one, sizeof(one) - 1, PVM_DOMAIN_PARSE_NO_HOST, &dom, NULL), 0);
	check("iommufd-unknown-bars", dom, &o, PVM_MEMLOCK_BYTES, 5368709120ULL, 5368709120ULL, 1);
	assert_int_equal(pvm_domain_probe_host(dom, root, NULL), 0);
	assert_int_equal(pvm_domain_pt(dom, 0)->host_bar_bytes, 272ULL << 20);
	check("type1", dom, NULL, PVM_MEMLOCK_BYTES, 5368709120ULL, 5368709120ULL, 0);
	check("iommufd", dom, &o, PVM_MEMLOCK_BYTES, 5653921792ULL, 5368709120ULL, 0);
	pvm_domain_free(dom);
	assert_int_equal(pvm_domain_parse_memory(two, sizeof(two) - 1, PVM_DOMAIN_PARSE_NO_HOST, &dom, NULL), 0);
	assert_int_equal(pvm_domain_probe_host(dom, root, NULL), 0);
	check("iommufd-viommu", dom, &o, PVM_MEMLOCK_BYTES, 10804527104ULL, 9663676416ULL, 0);
	pvm_domain_free(dom);
	rm_root(root);
}

/* Host RAM 4 GiB; cgroup /machine.slice/vm1 under /machine.slice (memory.max 3 GiB). A 5 GiB
 * limit exceeds both; a 2 GiB one neither. */
static void test_host_warnings(void **state)
{
	static const char big[] = HEAD("kvm", "x86_64", "pc") "<memory unit='GiB'>4</memory><devices>"
		HOSTDEV("0x01") "</devices></domain>";
	static const char small[] = HEAD("kvm", "x86_64", "pc") "<memory unit='GiB'>1</memory><devices>"
		HOSTDEV("0x01") "</devices></domain>";
	char *root = fake_root();
	struct pvm_memlock_host host;
	struct pvm_memlock_options o = { .host = &host };
	struct pvm_domain *dom = NULL;

	put(root, "proc/meminfo", "MemTotal:        4194304 kB\nMemFree:  1 kB\n");
	put(root, "proc/self/cgroup", "0::/machine.slice/vm1\n");
	put(root, "sys/fs/cgroup/machine.slice/memory.max", "3221225472\n");
	put(root, "sys/fs/cgroup/machine.slice/vm1/memory.max", "max\n");
	assert_int_equal(pvm_memlock_host_read(root, 0, &host, NULL), 0);
	assert_int_equal(host.ram_bytes, 4ULL << 30);
	assert_int_equal(host.cgroup_max_bytes, 3ULL << 30);
	assert_string_equal(host.cgroup_path, "/machine.slice");
	assert_int_equal(pvm_domain_parse_memory(big, sizeof(big) - 1, PVM_DOMAIN_PARSE_NO_HOST, &dom, NULL), 0);
	check("host-big", dom, &o, PVM_MEMLOCK_BYTES, 5ULL << 30, 5ULL << 30, 2);
	pvm_domain_free(dom);
	assert_int_equal(pvm_domain_parse_memory(small, sizeof(small) - 1, PVM_DOMAIN_PARSE_NO_HOST, &dom, NULL), 0);
	check("host-small", dom, &o, PVM_MEMLOCK_BYTES, 2ULL << 30, 2ULL << 30, 0);
	pvm_domain_free(dom);
	rm_root(root);
}

/* Allocation torture of compute: it allocates but changes no shared state. */
static struct pvm_domain *tdom;

static int op_compute(void *ctx)
{
	struct pvm_memlock_result *r = NULL;
	int rc = pvm_memlock_compute(tdom, NULL, &r, NULL);

	pvm_memlock_result_free(r);
	return rc;
}

static void test_torture(void **state)
{
	const char *xml = cases[5].xml;

	assert_int_equal(pvm_domain_parse_memory(xml, strlen(xml), PVM_DOMAIN_PARSE_NO_HOST, &tdom, NULL), 0);
	assert_true(pvm_test_torture(op_compute, NULL, NULL) > 5);
	pvm_domain_free(tdom);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_matrix),
		cmocka_unit_test(test_tib_guest_many_devices),
		cmocka_unit_test(test_nvlink2),
		cmocka_unit_test(test_iommu_groups),
		cmocka_unit_test(test_iommufd),
		cmocka_unit_test(test_host_warnings),
		cmocka_unit_test(test_torture),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

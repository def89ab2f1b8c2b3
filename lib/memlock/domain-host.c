/* SPDX-License-Identifier: MIT */
/*
 * What the host's sysfs says about the PCI hostdevs of a domain: the IOMMU group (libvirt gives
 * each isolation group its own pseries PHB), the memory BARs (iommufd charges them), and whether
 * the device is an NVLink2 bridge (libvirt's ppc64VFIODeviceIsNV2Bridge(): all four of_node
 * properties exist). The root is a parameter so that tests use a fake tree.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "memlock/domain-priv.h"

/* -1 when the device has no readable iommu_group link. */
static int read_group(const char *devdir)
{
	char path[PATH_MAX], link[PATH_MAX];
	const char *base;
	ssize_t n;
	long g;
	char *end;

	if (snprintf(path, sizeof(path), "%s/iommu_group", devdir) >= (int)sizeof(path))
		return -1;
	n = readlink(path, link, sizeof(link) - 1);
	if (n <= 0)
		return -1;
	link[n] = '\0';
	base = strrchr(link, '/');
	base = base ? base + 1 : link;
	errno = 0;
	g = strtol(base, &end, 10);
	if (errno || end == base || *end || g < 0 || g > INT_MAX)
		return -1;
	return (int)g;
}

/* Sum of the memory BARs (resources 0..5 with IORESOURCE_MEM) from the "resource" file. */
static uint64_t read_bars(const char *devdir)
{
	char path[PATH_MAX], line[256];
	uint64_t sum = 0;
	FILE *f;

	if (snprintf(path, sizeof(path), "%s/resource", devdir) >= (int)sizeof(path))
		return 0;
	if (!(f = fopen(path, "re")))
		return 0;
	for (int i = 0; i < 6 && fgets(line, sizeof(line), f); i++) {
		unsigned long long start, end, flags;

		if (sscanf(line, "%llx %llx %llx", &start, &end, &flags) != 3)
			break;
		if (!(flags & 0x200) || end <= start) /* IORESOURCE_MEM, non-empty */
			continue;
		if (pvm_add_overflow(sum, (uint64_t)(end - start + 1), &sum)) {
			sum = UINT64_MAX;
			break;
		}
	}
	fclose(f);
	return sum;
}

static bool is_nv2_bridge(const char *devdir)
{
	static const char *const props[] = { "ibm,gpu", "ibm,nvlink", "ibm,nvlink-speed", "memory-region" };
	char path[PATH_MAX];

	for (size_t i = 0; i < PVM_ARRAY_SIZE(props); i++) {
		if (snprintf(path, sizeof(path), "%s/of_node/%s", devdir, props[i]) >= (int)sizeof(path))
			return false;
		if (access(path, F_OK) < 0)
			return false;
	}
	return true;
}

int pvm_domain_probe_host(struct pvm_domain *dom, const char *sysfs_root, struct pvm_error *err)
{
	char devdir[PATH_MAX];

	if (!dom)
		return pvm_error_set(err, -EINVAL, "no domain given");
	if (!sysfs_root)
		sysfs_root = "/sys";
	PVM_TRACE(domain_probe_host, "root=%s", sysfs_root);
	for (size_t i = 0; i < dom->n_pts; i++) {
		struct pvm_domain_pt *p = &dom->pts[i];

		p->host_iommu_group = -1;
		p->host_bar_bytes = 0;
		p->host_nvlink2 = false;
		if (p->kind != PVM_PT_PCI || !p->source)
			continue;
		if (snprintf(devdir, sizeof(devdir), "%s/bus/pci/devices/%s", sysfs_root, p->source) >=
		    (int)sizeof(devdir))
			continue;
		p->host_iommu_group = read_group(devdir);
		p->host_bar_bytes = read_bars(devdir);
		p->host_nvlink2 = is_nv2_bridge(devdir);
	}
	pvm_domain_recount(dom);
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * The domain model: what pvmem needs from a libvirt domain XML (QEMU/KVM guests).
 *
 * A domain is parsed once with pvm_domain_parse_file()/pvm_domain_parse_memory() (libxml2, no
 * network access, no entity expansion) and is then read through the getters below. It is the
 * input of the memlock policy (<pvmem/memlock.h>) and of the machine (`pvmem run`).
 *
 * Sizes: every size getter returns BYTES. libvirt keeps sizes in KiB internally and rounds a
 * byte value up to whole KiB when it parses it; pvmem does the same (so `<memory unit='b'>1025`
 * is 2048 bytes), which keeps the memlock results identical to libvirt's. Every unit libvirt
 * accepts is accepted (b, byte, bytes, k, KiB, KB, m, MiB, MB, ... up to e, EiB, EB; case does
 * not matter; "KB" is 1000, "KiB" and "k" are 1024); the default unit is KiB.
 *
 * Defaults applied while parsing, as libvirt's post-parse would:
 *  - no <memory> but NUMA cells: memory = sum of the cells + memory devices;
 *  - <currentMemory> absent, 0 or above <memory>: current memory = memory;
 *  - no arch in <os><type>: the host's architecture (override with pvm_domain_set_arch());
 *  - ppc64 without a machine: "pseries"; a pseries guest always has PHB index 0 and gets one
 *    extra PHB per host IOMMU group of PCI hostdevs that have no guest PCI address.
 *
 * Devices are described by read-only structs owned by the domain (valid until the domain is
 * freed or the device is detached). Fields may be APPENDED to these structs in later versions:
 * never allocate or copy them by value in a way that assumes their size.
 */
#ifndef PVMEM_DOMAIN_H
#define PVMEM_DOMAIN_H

#include <pvmem/core.h>

#ifdef __cplusplus
extern "C" {
#endif

struct pvm_domain;

/* <domain type='...'>: the only two the QEMU driver runs. */
enum pvm_domain_virt {
	PVM_DOMAIN_VIRT_KVM = 0,  /* type='kvm' */
	PVM_DOMAIN_VIRT_QEMU,     /* type='qemu' (TCG) */
};

/* Guest architectures (<os><type arch='...'>). */
enum pvm_arch {
	PVM_ARCH_X86_64 = 0,
	PVM_ARCH_I686,
	PVM_ARCH_PPC64,
	PVM_ARCH_PPC64LE,
	PVM_ARCH_AARCH64,
	PVM_ARCH_S390X,
	PVM_ARCH_ARMV7L,
	PVM_ARCH_RISCV64,
	PVM_ARCH__COUNT
};

/* Memory device models (<memory model='...'>). */
enum pvm_domain_memdev_model {
	PVM_MEMDEV_DIMM = 0,
	PVM_MEMDEV_NVDIMM,
	PVM_MEMDEV_VIRTIO_MEM,
	PVM_MEMDEV_VIRTIO_PMEM,
	PVM_MEMDEV_SGX_EPC,
};

/* One <memory model=...> device. */
struct pvm_domain_memdev {
	enum pvm_domain_memdev_model model; /* the model attribute */
	const char *alias;        /* <alias name=...>, NULL when absent */
	const char *id;           /* alias, or the name libvirt would give ("virtiomem0", "dimm1") */
	uint64_t size;            /* <target><size>: for virtio-mem the maximum size, bytes */
	uint64_t block_size;      /* virtio-mem <target><block>, bytes; 0 when absent */
	uint64_t requested_size;  /* virtio-mem <target><requested>, bytes; 0 when absent */
	uint64_t current_size;    /* virtio-mem <target><current> (live XML), bytes; 0 when absent */
	int node;                 /* <target><node>, guest NUMA node; -1 when absent */
	bool has_address_base;    /* <target><address base=...> given */
	uint64_t address_base;    /* its value (guest physical address), when given */
};

/* Kinds of devices that make QEMU pin guest memory. */
enum pvm_domain_pt_kind {
	PVM_PT_PCI = 0,     /* <hostdev mode='subsystem' type='pci'> or <interface type='hostdev'> */
	PVM_PT_MDEV,        /* <hostdev mode='subsystem' type='mdev'> */
	PVM_PT_NVME,        /* <disk> whose source chain contains type='nvme' */
	PVM_PT_VDPA_NET,    /* <interface type='vdpa'> */
	PVM_PT_VDPA_DISK,   /* one type='vhostvdpa' element of a <disk> source chain */
};

/* One pass-through device (hostdev, NVMe disk, vDPA interface or disk). */
struct pvm_domain_pt {
	enum pvm_domain_pt_kind kind;  /* what it is */
	const char *alias;        /* <alias name=...>, NULL when absent */
	const char *id;           /* alias, or "hostdev0", "nvme0" (disk target), "vdpa0"... */
	const char *source;       /* PCI "dddd:bb:ss.f" (hostdev, NVMe), mdev UUID, vDPA device
	                           * path; NULL when the XML has none */
	const char *driver;       /* <driver name=...> of a hostdev ("vfio"), NULL when absent */
	bool iommufd;             /* hostdev <driver iommufd='yes'> */
	bool has_guest_address;   /* a guest PCI <address type='pci'> was given */
	unsigned guest_bus;       /* its bus, when given */
	unsigned nvme_namespace;  /* NVMe <source namespace=...>, 0 otherwise */
	int host_iommu_group;     /* PCI: host IOMMU group from pvm_domain_probe_host(), -1 unknown */
	uint64_t host_bar_bytes;  /* PCI: sum of the host device's memory BARs (probed), 0 unknown */
	bool host_nvlink2;        /* PCI: the host device is an NVLink2 bridge (probed) */
};

/* <devices><memballoon>. */
struct pvm_domain_balloon {
	const char *model;        /* "virtio", "virtio-transitional", "none", ... */
	const char *alias;        /* <alias name=...>, NULL when absent */
	const char *id;           /* alias, or "balloon0" */
	bool autodeflate;         /* autodeflate='on' */
	bool free_page_reporting; /* freePageReporting='on' */
	unsigned stats_period;    /* <stats period=...> seconds, 0 when absent */
};

/* Parse flags. */
enum pvm_domain_parse_flags {
	PVM_DOMAIN_PARSE_NO_HOST = 1u << 0,  /* do not read the host (arch, sysfs IOMMU groups) */
};

/* Parse the domain XML file @path into *@out. Errors: -EINVAL with a message naming the element
 * and the problem (malformed XML, missing <memory>, unknown unit, negative, non-numeric or
 * overflowing size, unsupported type or arch, inconsistent maxMemory), -ENOENT/-EACCES (file),
 * -EFBIG (larger than 16 MiB), -ENOMEM. @flags: enum pvm_domain_parse_flags. */
PVM_EXPORT int pvm_domain_parse_file(const char *path, unsigned flags, struct pvm_domain **out,
				     struct pvm_error *err);
/* The same from @len bytes at @xml (need not be NUL-terminated). */
PVM_EXPORT int pvm_domain_parse_memory(const char *xml, size_t len, unsigned flags,
				       struct pvm_domain **out, struct pvm_error *err);
PVM_EXPORT void pvm_domain_free(struct pvm_domain *dom);

/* Read the host's IOMMU group of each PCI hostdev (for the pseries PHB count) and whether
 * it is an NVLink2 bridge, below @sysfs_root ("/sys" when NULL; tests pass a fake tree).
 * parse_file/parse_memory call it with "/sys" unless PVM_DOMAIN_PARSE_NO_HOST. Missing files
 * are not errors (a device not on this host is its own group and not NVLink2). */
PVM_EXPORT int pvm_domain_probe_host(struct pvm_domain *dom, const char *sysfs_root,
				     struct pvm_error *err);

/* ---- identity ------------------------------------------------------------------------------ */
PVM_EXPORT const char *pvm_domain_name(const struct pvm_domain *dom);   /* NULL when absent */
PVM_EXPORT enum pvm_domain_virt pvm_domain_virt(const struct pvm_domain *dom);
PVM_EXPORT enum pvm_arch pvm_domain_arch(const struct pvm_domain *dom);
/* Override the architecture (`--arch`). */
PVM_EXPORT void pvm_domain_set_arch(struct pvm_domain *dom, enum pvm_arch arch);
/* <os><type machine=...>, or the default ("pseries" on ppc64); NULL when none. */
PVM_EXPORT const char *pvm_domain_machine(const struct pvm_domain *dom);
/* True for a ppc64/ppc64le guest whose machine starts with "pseries". */
PVM_EXPORT bool pvm_domain_is_pseries(const struct pvm_domain *dom);
/* <vcpu> (1 when absent). */
PVM_EXPORT unsigned pvm_domain_vcpus(const struct pvm_domain *dom);
/* "x86_64", "ppc64le"...; NULL for an out-of-range value. */
PVM_EXPORT const char *pvm_arch_name(enum pvm_arch arch);
/* Parse an arch name (also "amd64", "arm64", "ppc64el", "x86-64"); -EINVAL when unknown. */
PVM_EXPORT int pvm_arch_from_name(const char *name, enum pvm_arch *arch);

/* ---- memory -------------------------------------------------------------------------------- */
/* <memory>: total guest memory INCLUDING memory devices (libvirt's total_memory), bytes. */
PVM_EXPORT uint64_t pvm_domain_memory(const struct pvm_domain *dom);
/* <memory> minus the memory devices: the boot RAM, bytes. */
PVM_EXPORT uint64_t pvm_domain_memory_initial(const struct pvm_domain *dom);
/* <currentMemory> (the balloon target), bytes; = memory when absent. */
PVM_EXPORT uint64_t pvm_domain_current_memory(const struct pvm_domain *dom);
/* <maxMemory>, bytes; 0 when absent. */
PVM_EXPORT uint64_t pvm_domain_max_memory(const struct pvm_domain *dom);
/* <maxMemory slots=...>; 0 when absent. */
PVM_EXPORT unsigned pvm_domain_memory_slots(const struct pvm_domain *dom);
/* <cpu><numa><cell> count; 0 when the guest has no NUMA topology. */
PVM_EXPORT unsigned pvm_domain_numa_nodes(const struct pvm_domain *dom);
/* Memory of NUMA cell @i (in document order), bytes; 0 when out of range. */
PVM_EXPORT uint64_t pvm_domain_numa_node_memory(const struct pvm_domain *dom, unsigned i);
/* <memoryBacking><locked/>. */
PVM_EXPORT bool pvm_domain_locked(const struct pvm_domain *dom);
/* <memtune><hard_limit>: true and *@bytes set when a limit is set (libvirt treats values at or
 * above 9007199254740991 KiB as "unlimited", i.e. not set). */
PVM_EXPORT bool pvm_domain_hard_limit(const struct pvm_domain *dom, uint64_t *bytes);

/* ---- devices ------------------------------------------------------------------------------- */
PVM_EXPORT size_t pvm_domain_memdev_count(const struct pvm_domain *dom);
/* Memory device @i in document order, NULL when out of range. */
PVM_EXPORT const struct pvm_domain_memdev *pvm_domain_memdev(const struct pvm_domain *dom, size_t i);
/* The number of virtio-mem devices, and the @i-th of them (NULL when out of range). */
PVM_EXPORT size_t pvm_domain_virtio_mem_count(const struct pvm_domain *dom);
PVM_EXPORT const struct pvm_domain_memdev *pvm_domain_virtio_mem(const struct pvm_domain *dom,
								size_t i);
/* The memballoon, or NULL when the XML has none (libvirt then adds a virtio one on x86;
 * pvmem does not invent it). */
PVM_EXPORT const struct pvm_domain_balloon *pvm_domain_balloon(const struct pvm_domain *dom);
/* Pass-through devices (hostdevs, NVMe disks, vDPA), in document order. */
PVM_EXPORT size_t pvm_domain_pt_count(const struct pvm_domain *dom);
PVM_EXPORT const struct pvm_domain_pt *pvm_domain_pt(const struct pvm_domain *dom, size_t i);
/* Number of <iommu> elements (0: no vIOMMU) and the model of the first ("intel", "smmuv3",
 * "virtio", "amd"; NULL when none). */
PVM_EXPORT unsigned pvm_domain_iommu_count(const struct pvm_domain *dom);
PVM_EXPORT const char *pvm_domain_iommu_model(const struct pvm_domain *dom);
/* pSeries PCI host bridges after libvirt's defaults (0 for other machines). */
PVM_EXPORT unsigned pvm_domain_phb_count(const struct pvm_domain *dom);
/* True when pvm_domain_probe_host() found an NVLink2 bridge among the PCI hostdevs. */
PVM_EXPORT bool pvm_domain_has_nvlink2(const struct pvm_domain *dom);

/* ---- hot-plug (the model follows attach/detach) -------------------------------------------- */
/* Add the device described by the XML fragment @xml (<hostdev>, <interface>, <disk> or
 * <memory>, as for `virsh attach-device`) to @dom. Errors as for parsing; on error @dom is
 * unchanged. The device's id is returned in *@id_out when not NULL (owned by @dom). */
PVM_EXPORT int pvm_domain_attach_xml(struct pvm_domain *dom, const char *xml, size_t len,
				     const char **id_out, struct pvm_error *err);
/* Remove the pass-through or memory device whose id (or alias) is @id. -ENOENT when none. */
PVM_EXPORT int pvm_domain_detach(struct pvm_domain *dom, const char *id, struct pvm_error *err);
/* A deep copy of @dom into *@out. */
PVM_EXPORT int pvm_domain_clone(const struct pvm_domain *dom, struct pvm_domain **out,
				struct pvm_error *err);

#ifdef __cplusplus
}
#endif
#endif /* PVMEM_DOMAIN_H */

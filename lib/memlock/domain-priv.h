/* SPDX-License-Identifier: MIT */
/*
 * The domain model's internals, shared by domain.c (model, getters, hot-plug), domain-parse.c
 * (libvirt XML) and domain-host.c (sysfs probing). Not exported.
 */
#ifndef PVM_MEMLOCK_DOMAIN_PRIV_H
#define PVM_MEMLOCK_DOMAIN_PRIV_H

#include <pvmem/domain.h>

#include "core/util.h"

/* libvirt's VIR_DOMAIN_MEMORY_PARAM_UNLIMITED, in KiB: "no hard_limit". */
#define PVM_DOMAIN_KIB_UNLIMITED 9007199254740991ULL
/* Largest XML document accepted. */
#define PVM_DOMAIN_XML_MAX (16u << 20)
/* Bounds that keep a hostile document from costing much (libvirt has no such caps; no real
 * domain comes near them). */
#define PVM_DOMAIN_MAX_DEVICES 4096
#define PVM_DOMAIN_MAX_NUMA 1024
#define PVM_DOMAIN_MAX_CHAIN 64

struct pvm_domain {
	char *name;                        /* <name>, NULL when absent */
	enum pvm_domain_virt virt;         /* <domain type> */
	enum pvm_arch arch;                /* <os><type arch>, or the host's */
	char *machine;                     /* <os><type machine>, or the default; may be NULL */
	unsigned vcpus;                    /* <vcpu>, 1 when absent */
	uint64_t memory_kib;               /* total memory incl. memory devices (libvirt total_memory) */
	uint64_t current_kib;              /* <currentMemory>, resolved */
	uint64_t max_kib;                  /* <maxMemory>, 0 when absent */
	unsigned slots;                    /* <maxMemory slots> */
	uint64_t *numa_kib;                /* memory of each NUMA cell */
	unsigned numa_count;               /* number of cells */
	bool locked;                       /* <memoryBacking><locked/> */
	uint64_t hard_limit_kib;           /* <memtune><hard_limit>, PVM_DOMAIN_KIB_UNLIMITED if unset */

	struct pvm_domain_memdev *memdevs; /* memory devices (strings owned) */
	size_t n_memdevs;                  /* number of memdevs */
	struct pvm_domain_pt *pts;         /* pass-through devices (strings owned) */
	size_t n_pts;                      /* number of pts */
	bool has_balloon;                  /* a <memballoon> was given */
	struct pvm_domain_balloon balloon; /* it (strings owned) */
	unsigned n_iommus;                 /* <iommu> elements */
	char *iommu_model;                 /* model of the first, NULL when none */

	unsigned *pci_indexes;             /* pseries: index of every PCI controller */
	bool *pci_is_phb;                  /* ... and whether it is a PHB */
	size_t n_pci;                      /* number of PCI controllers */
	unsigned *pci_buses;               /* guest PCI buses that devices' addresses name */
	size_t n_pci_buses;                /* number of those */
	unsigned phb_count;                /* PHBs after libvirt's defaults (recomputed) */
	bool nvlink2;                      /* an NVLink2 bridge among the PCI hostdevs (probed) */

	unsigned next_hostdev;             /* next "hostdevN" id */
	unsigned next_net;                 /* next "netN" id */
	unsigned next_mem[5];              /* next memory device id, per model */
};

/* Free the strings a device owns. */
void pvm_domain_memdev_clear(struct pvm_domain_memdev *m);
void pvm_domain_pt_clear(struct pvm_domain_pt *p);
/* Recompute phb_count and nvlink2 from the model (call after any change to devices). */
void pvm_domain_recount(struct pvm_domain *dom);
/* Parse one device element (a child of <devices>, or an attach fragment's root) into @dom.
 * @attach: a hot-plugged device (memory devices then grow <memory>). */
int pvm_domain_parse_device(struct pvm_domain *dom, void *xml_node, bool attach,
			    const char **id_out, struct pvm_error *err);
/* Parse a document (root must be @root_name, or anything when NULL) into a libxml2 doc. */
int pvm_domain_read_xml(const char *xml, size_t len, void **doc_out, struct pvm_error *err);
/* The host's architecture (uname), x86_64 when unknown. */
enum pvm_arch pvm_domain_host_arch(void);

#endif

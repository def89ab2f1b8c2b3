/* SPDX-License-Identifier: MIT */
/*
 * Locked-memory limits (RLIMIT_MEMLOCK) for a QEMU/KVM guest: libvirt's policy computed from a
 * domain (<pvmem/domain.h>), explained term by term, and applied to a running process with
 * prlimit(2) through a device's whole life.
 *
 * The policy (pvm_memlock_compute) is a pure function of the domain, the options and the host
 * facts passed in. With the default model it gives exactly the value of libvirt's
 * qemuDomainGetMemLockLimitBytes() (libvirt 10/11):
 *   1. <memtune><hard_limit> set         -> hard_limit
 *   2. <memoryBacking><locked/>          -> unlimited
 *   3. ppc64/ppc64le with type='kvm'     -> HPT + TCE tables per PHB (+ passthrough window)
 *   4. otherwise, with any VFIO PCI/mdev hostdev, NVMe disk or vDPA device:
 *      (nvdpa + nnvme + (nvfio ? (vIOMMU ? nvfio : 1) : 0)) x memory + 1 GiB
 *   5. otherwise nothing is needed: leave the process limit alone (PVM_MEMLOCK_NONE), which is
 *      a different answer from "0 bytes".
 * Overflow: a value that reaches libvirt's "unlimited" sentinel (2^53 - 1 bytes, where libvirt
 * itself switches to RLIM_INFINITY when it applies the limit) or that would not fit 64 bits
 * SATURATES to PVM_MEMLOCK_UNLIMITED, with a warning; nothing ever wraps.
 */
#ifndef PVMEM_MEMLOCK_H
#define PVMEM_MEMLOCK_H

#include <sys/types.h>

#include <pvmem/core.h>
#include <pvmem/domain.h>

#ifdef __cplusplus
extern "C" {
#endif

/* RLIM_INFINITY as pvmem reports it. */
#define PVM_MEMLOCK_INFINITY UINT64_MAX
/* libvirt's VIR_DOMAIN_MEMORY_PARAM_UNLIMITED (INT64_MAX >> 10). */
#define PVM_MEMLOCK_LIBVIRT_UNLIMITED 9007199254740991ULL

/* What to do with the process limit. */
enum pvm_memlock_kind {
	PVM_MEMLOCK_NONE = 0,    /* nothing needed: leave the limit alone (libvirt returns 0) */
	PVM_MEMLOCK_BYTES,       /* set the limit to pvm_memlock_result_bytes() */
	PVM_MEMLOCK_UNLIMITED,   /* set RLIM_INFINITY */
};

/* Which kernel accounting the VFIO part is modelled on. */
enum pvm_memlock_model {
	PVM_MEMLOCK_MODEL_TYPE1 = 0,  /* VFIO type1 containers: libvirt's formula, bit for bit */
	PVM_MEMLOCK_MODEL_IOMMUFD,    /* iommufd, process accounting (IOMMU_OPTION_RLIMIT_MODE=1, as
	                               * libvirt sets it): type1's terms + device BARs (VM_PFNMAP),
	                               * which iommufd charges and type1 does not */
};

/* Facts about the host that the feasibility warnings use (pvm_memlock_host_read()). */
struct pvm_memlock_host {
	uint64_t ram_bytes;        /* MemTotal; 0 = unknown (no warning) */
	uint64_t cgroup_max_bytes; /* smallest memory.max on the cgroup's path; 0 = none or unknown */
	char cgroup_path[256];     /* the cgroup that limit comes from, for messages ("" unknown) */
};

/* How to compute. Zero-initialise for libvirt's behaviour without host checks. */
struct pvm_memlock_options {
	enum pvm_memlock_model model;        /* accounting model (default type1) */
	const struct pvm_memlock_host *host; /* NULL: no host RAM / cgroup warnings */
};

/* One term of the explanation. The terms of a BYTES result add up to the limit exactly. */
struct pvm_memlock_term {
	const char *name;   /* short key: "hard_limit", "vfio:hostdev0", "nvme:vda", "mmio-slack",
	                     * "ppc64-hpt", "ppc64-tce-32bit", ... */
	uint64_t bytes;     /* its contribution; PVM_MEMLOCK_INFINITY for "unlimited" */
	const char *why;    /* one sentence for people: which device, which rule, why */
};

struct pvm_memlock_result;

/* Compute the limit for @dom into *@out. -EINVAL for bad options, -ENOMEM. Never fails on a
 * valid domain: big values saturate (see above). */
PVM_EXPORT int pvm_memlock_compute(const struct pvm_domain *dom,
				   const struct pvm_memlock_options *opts,
				   struct pvm_memlock_result **out, struct pvm_error *err);
PVM_EXPORT void pvm_memlock_result_free(struct pvm_memlock_result *res);
PVM_EXPORT enum pvm_memlock_kind pvm_memlock_result_kind(const struct pvm_memlock_result *res);
/* The limit in bytes: the value for BYTES, PVM_MEMLOCK_INFINITY for UNLIMITED, 0 for NONE. */
PVM_EXPORT uint64_t pvm_memlock_result_bytes(const struct pvm_memlock_result *res);
/* What libvirt's qemuDomainGetMemLockLimitBytes() returns for the same domain: 0 for "leave
 * alone", 9007199254740991 for locked, else bytes (saturating at UINT64_MAX where libvirt
 * would wrap). Only meaningful with the type1 model. */
PVM_EXPORT uint64_t pvm_memlock_result_libvirt(const struct pvm_memlock_result *res);
/* Which rule decided: "hard_limit", "locked", "ppc64", "passthrough" or "none". */
PVM_EXPORT const char *pvm_memlock_result_rule(const struct pvm_memlock_result *res);
PVM_EXPORT size_t pvm_memlock_result_term_count(const struct pvm_memlock_result *res);
PVM_EXPORT const struct pvm_memlock_term *pvm_memlock_result_term(const struct pvm_memlock_result *res,
								  size_t i);
/* Warnings (hard_limit below the devices' need, more than host RAM, above the cgroup's
 * memory.max, saturation); one sentence each. */
PVM_EXPORT size_t pvm_memlock_result_warning_count(const struct pvm_memlock_result *res);
PVM_EXPORT const char *pvm_memlock_result_warning(const struct pvm_memlock_result *res, size_t i);
/* "arch", for output. */
PVM_EXPORT const char *pvm_memlock_result_arch(const struct pvm_memlock_result *res);

/* Read host RAM (<root>/proc/meminfo) and the effective memory.max of @pid's cgroup
 * (<root>/proc/<pid>/cgroup, <root>/sys/fs/cgroup/...; pid 0 = this process) into @host.
 * @root NULL means "/". Missing files leave the fields 0; only -ENOMEM is an error. */
PVM_EXPORT int pvm_memlock_host_read(const char *root, pid_t pid, struct pvm_memlock_host *host,
				     struct pvm_error *err);

/* ---- the process limit ----------------------------------------------------------------------- */

/* RLIMIT_MEMLOCK of process @pid (0 = this one): soft and hard, bytes, PVM_MEMLOCK_INFINITY for
 * unlimited. Uses prlimit(2), falling back to /proc/<pid>/limits when prlimit is not allowed.
 * The soft limit is what the kernel checks (mlock, VFIO, iommufd, io_uring): the DMA layer uses
 * it as its pinning budget. Either pointer may be NULL. -ESRCH, -EPERM, -EIO. */
PVM_EXPORT int pvm_memlock_get(pid_t pid, uint64_t *soft, uint64_t *hard, struct pvm_error *err);

/* ---- the device lifecycle -------------------------------------------------------------------- */

/* Controller flags. */
enum pvm_memlock_ctl_flags {
	/* Set only the soft limit to the need, keeping the hard limit (raised only when the need
	 * exceeds it), so that later raises below it need no privilege. Default (libvirt): soft =
	 * hard = need. */
	PVM_MEMLOCK_CTL_SOFT_ONLY = 1u << 0,
};

struct pvm_memlock_ctl;

/* A controller for the limit of process @pid. The limit the process had before pvmem first
 * changed it (the "original") is kept in a state file "<state_dir>/memlock-<pid>.state", with the
 * process start time so that a reused pid is recognised. @state_dir NULL: $PVMEM_STATE_DIR, else
 * /run/pvmem when writable, else $XDG_RUNTIME_DIR/pvmem. An existing state file is loaded, so a
 * restarted manager can still restore. -ESRCH (no such process), -EINVAL, -ENOMEM, -EIO. */
PVM_EXPORT int pvm_memlock_ctl_open(pid_t pid, const char *state_dir, unsigned flags,
				    struct pvm_memlock_ctl **out, struct pvm_error *err);
/* Forget the controller; the limit and the state file stay as they are. */
PVM_EXPORT void pvm_memlock_ctl_free(struct pvm_memlock_ctl *ctl);

/* Start or `memlock apply`: set the limit to @need exactly (NONE: leave it alone), saving the
 * original first. -EPERM with a message naming CAP_SYS_RESOURCE when a raise above the hard limit
 * is refused. */
PVM_EXPORT int pvm_memlock_ctl_set(struct pvm_memlock_ctl *ctl, const struct pvm_memlock_result *need,
				   struct pvm_error *err);
/* Before a hostdev/NVMe/vDPA attach, @need computed WITH the device: raise if the current soft
 * limit is below it (never lowers). On failure the caller must not attach (or roll it back), then
 * call pvm_memlock_ctl_after_detach() with the need without the device. */
PVM_EXPORT int pvm_memlock_ctl_before_attach(struct pvm_memlock_ctl *ctl,
					     const struct pvm_memlock_result *need,
					     struct pvm_error *err);
/* After a detach (or a failed attach), @need computed WITHOUT the device: set the limit to the
 * exact remaining need (lowering it; libvirt only restores once nothing is needed); NONE
 * restores the original. */
PVM_EXPORT int pvm_memlock_ctl_after_detach(struct pvm_memlock_ctl *ctl,
					    const struct pvm_memlock_result *need,
					    struct pvm_error *err);
/* At the end: restore the original limit (if pvmem changed it) and remove the state file. */
PVM_EXPORT int pvm_memlock_ctl_restore(struct pvm_memlock_ctl *ctl, struct pvm_error *err);
/* True and the original soft/hard limits when one is saved. */
PVM_EXPORT bool pvm_memlock_ctl_original(const struct pvm_memlock_ctl *ctl, uint64_t *soft,
					 uint64_t *hard);
/* The state file's path (owned by @ctl). */
PVM_EXPORT const char *pvm_memlock_ctl_state_path(const struct pvm_memlock_ctl *ctl);

#ifdef __cplusplus
}
#endif
#endif /* PVMEM_MEMLOCK_H */

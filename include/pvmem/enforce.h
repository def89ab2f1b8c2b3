/* SPDX-License-Identifier: MIT */
/*
 * Host enforcement of unplugged memory: a guest (or a host thread) that touches an unplugged
 * block cannot make the host allocate memory for it. An enforcer covers a block-granular range
 * of one guest-memory region; its owner (a virtio-mem device) protects blocks after it has
 * discarded them and unprotects blocks before it plugs them.
 *
 * Modes:
 *   none      discard only (QEMU's behaviour): touching unplugged memory silently repopulates it.
 *   uffd      userfaultfd write-protect with UFFD_FEATURE_WP_UNPOPULATED on the whole range (one
 *             registration, no VMA split): reads of unplugged memory see the shared zero page,
 *             writes trap to a monitor thread. Private anonymous 4 KiB-page regions only.
 *   mprotect  PROT_READ on unplugged blocks of private anonymous memory (reads see zeros),
 *             PROT_NONE for shared backends; writes raise SIGSEGV, which a process-wide handler
 *             (installed once, chained to the previous one) recognises. Costs VMAs: every
 *             protected run splits the mapping (see docs/virtio-mem.md for the figures).
 *   auto      uffd where the kernel and the region allow it, else mprotect.
 *
 * Policy on a trap (a write into an unplugged block):
 *   allow     count it and let the write through (the page is unprotected: it becomes resident
 *             and pvm_enforce_audit() reports it until the block is plugged or discarded).
 *   deny      report it and make the access fail without allocating: in uffd mode the page is
 *             replaced by a poison marker (UFFDIO_POISON), so the faulting thread gets SIGBUS
 *             (a user-mode access) or EFAULT (a system call touching it), like a memory error
 *             that VMMs already handle; in mprotect mode the SIGSEGV goes on to the handler
 *             installed before pvmem's (a VMM's), else the process terminates. The faulting
 *             thread is never left waiting. Poison is cleared when the block is plugged.
 *   kill      report it, then terminate the process (SIGKILL).
 * Traps are reported by the monitor thread through the @on_trap callback (never from a signal
 * handler).
 */
#ifndef PVMEM_ENFORCE_H
#define PVMEM_ENFORCE_H

#include <pvmem/core.h>
#include <pvmem/mem.h>

#ifdef __cplusplus
extern "C" {
#endif

enum pvm_enforce_mode {
	PVM_ENFORCE_NONE = 0,
	PVM_ENFORCE_UFFD,
	PVM_ENFORCE_MPROTECT,
	PVM_ENFORCE_AUTO,       /* resolved at creation: uffd, else mprotect */
};

enum pvm_enforce_policy {
	PVM_ENFORCE_DENY = 0,
	PVM_ENFORCE_ALLOW,
	PVM_ENFORCE_KILL,
};

/* One trap, as reported. */
struct pvm_enforce_trap {
	uint64_t offset;                 /* byte offset in the region of the faulting page */
	uint64_t block;                  /* block index inside the enforced range */
	uint32_t tid;                    /* faulting thread (0 if unknown) */
	enum pvm_enforce_policy action;  /* what was done */
};

typedef void (*pvm_enforce_trap_fn)(void *opaque, const struct pvm_enforce_trap *trap);

struct pvm_enforce_config {
	enum pvm_enforce_mode mode;      /* requested mode */
	enum pvm_enforce_policy policy;  /* what a trap does */
	struct pvm_mem_region *region;   /* not owned; must outlive the enforcer */
	uint64_t offset;                 /* start of the enforced range in the region */
	uint64_t size;                   /* bytes; a multiple of block_size */
	uint64_t block_size;             /* power of two, a multiple of the region's page size */
	pvm_enforce_trap_fn on_trap;     /* may be NULL */
	void *opaque;                    /* passed to on_trap */
};

struct pvm_enforce_stats {
	uint64_t traps;              /* writes into protected blocks seen */
	uint64_t allowed;            /* of which let through */
	uint64_t denied;             /* of which made to fail */
	uint64_t protected_blocks;   /* blocks protected now */
};

struct pvm_enforce;

/* An enforcer over the range with every block PROTECTED (nothing plugged yet; the caller has
 * discarded the range). Errors: -EINVAL (config), -ENOTSUP (uffd asked for explicitly but not
 * available for this region or kernel), -ENOMEM, or the errno of a failing system call. */
PVM_EXPORT int pvm_enforce_new(const struct pvm_enforce_config *cfg, struct pvm_enforce **out,
			       struct pvm_error *err) PVM_MUST_CHECK;
/* Stop the monitor, lift every protection. NULL is fine. */
PVM_EXPORT void pvm_enforce_free(struct pvm_enforce *e);
/* The mode in force (AUTO resolved). */
PVM_EXPORT enum pvm_enforce_mode pvm_enforce_get_mode(const struct pvm_enforce *e);

/* Protect blocks [first, first+count) (call after discarding them) / lift the protection
 * (call before plugging them; clears poison left by denied traps). Idempotent per block.
 * -EINVAL for a range outside the enforcer; a failing system call returns its errno with the
 * range's protection unchanged as far as the kernel allows (the audit reports the rest). */
PVM_EXPORT int pvm_enforce_protect(struct pvm_enforce *e, uint64_t first, uint64_t count,
				   struct pvm_error *err) PVM_MUST_CHECK;
PVM_EXPORT int pvm_enforce_unprotect(struct pvm_enforce *e, uint64_t first, uint64_t count,
				     struct pvm_error *err) PVM_MUST_CHECK;
PVM_EXPORT bool pvm_enforce_is_protected(const struct pvm_enforce *e, uint64_t block);
PVM_EXPORT void pvm_enforce_get_stats(const struct pvm_enforce *e, struct pvm_enforce_stats *out);

/* "none", "uffd", "mprotect", "auto"; "deny", "allow", "kill". Parse: -EINVAL. */
PVM_EXPORT const char *pvm_enforce_mode_name(enum pvm_enforce_mode mode);
PVM_EXPORT int pvm_enforce_mode_parse(const char *s, enum pvm_enforce_mode *out);
PVM_EXPORT const char *pvm_enforce_policy_name(enum pvm_enforce_policy policy);
PVM_EXPORT int pvm_enforce_policy_parse(const char *s, enum pvm_enforce_policy *out);
/* Whether uffd write-protect of unpopulated memory works in this process (probed once). */
PVM_EXPORT bool pvm_enforce_uffd_available(void);

/* Bytes of [@offset, @offset+@len) of @r that hold host memory of their own now. For private
 * anonymous memory this reads /proc/self/pagemap and counts present, exclusively mapped pages,
 * so that pages mapping the shared zero page (reads of unplugged memory) do not count, unlike
 * mincore(); other backends use pvm_mem_region_resident(). -EINVAL for a bad range, -errno. */
PVM_EXPORT int pvm_enforce_resident(const struct pvm_mem_region *r, uint64_t offset, uint64_t len,
				    uint64_t *bytes, struct pvm_error *err) PVM_MUST_CHECK;

/* Number of mappings (VMAs) of this process that overlap [@addr, @addr+@len) (from
 * /proc/self/maps), or -errno. With @len 0: all mappings of the process. */
PVM_EXPORT int64_t pvm_enforce_count_vmas(const void *addr, uint64_t len);

#ifdef __cplusplus
}
#endif
#endif /* PVMEM_ENFORCE_H */

/* SPDX-License-Identifier: MIT */
/*
 * The simulated guest's memory manager: one state per 4 KiB page of boot RAM (ZONE_NORMAL) and
 * of each virtio-mem region (ZONE_MOVABLE once onlined). It decides where the workload's pages
 * go (movable memory first, as GFP_HIGHUSER_MOVABLE allocations do), migrates used pages out of
 * memory the virtio-mem driver wants to unplug (alloc_contig_range), and hands pages to the
 * balloon. Every page the workload uses or a migration fills is written through @touch, so that
 * host RSS is real.
 *
 * Simplification (documented in docs/run.md): the balloon takes pages from boot memory first,
 * and a ballooned page inside memory being unplugged makes it busy (Linux would migrate it
 * through balloon compaction, inflating a new page and deflating the old one).
 */
#ifndef PVM_SIM_GUEST_MM_H
#define PVM_SIM_GUEST_MM_H

#include <stdbool.h>
#include <stdint.h>

#define PVM_SIM_PAGE 4096ULL
#define PVM_SIM_MM_MAX_RANGES 65u

struct pvm_sim_mm_range {
	uint64_t gpa;      /* start, page aligned */
	uint64_t size;     /* bytes, page aligned */
	bool movable;      /* hot-plugged memory (starts absent); else boot RAM (starts free) */
};

/* Write to guest memory [gpa, gpa+len) (all pages present); returns 0 or -errno. */
typedef int (*pvm_sim_touch_fn)(void *opaque, uint64_t gpa, uint64_t len);

struct pvm_sim_mm;

int pvm_sim_mm_new(const struct pvm_sim_mm_range *ranges, unsigned n, pvm_sim_touch_fn touch,
		   void *opaque, struct pvm_sim_mm **out);
void pvm_sim_mm_free(struct pvm_sim_mm *mm);
/* Forget everything (reboot): boot RAM free, hot-plugged memory absent, balloon empty. */
void pvm_sim_mm_reset(struct pvm_sim_mm *mm);

/* Mark [gpa, +size) of boot RAM reserved (firmware, rings): never allocated, not in MemTotal. */
void pvm_sim_mm_reserve(struct pvm_sim_mm *mm, uint64_t gpa, uint64_t size);
/* Hot-plugged memory became usable (onlined). */
void pvm_sim_mm_give(struct pvm_sim_mm *mm, uint64_t gpa, uint64_t size);
/* Make [gpa, +size) unused, migrating used pages elsewhere; -EBUSY (nothing changed) when a page
 * is ballooned or reserved, or there is not enough free memory to migrate to. */
int pvm_sim_mm_take(struct pvm_sim_mm *mm, uint64_t gpa, uint64_t size);

/* The workload wants @bytes in use: allocate and touch, or free (highest pages first). Clamps to
 * what is available and returns the bytes in use afterwards. */
uint64_t pvm_sim_mm_set_used(struct pvm_sim_mm *mm, uint64_t bytes);

/* Balloon: take up to @n free pages (boot RAM first), PFNs (gpa >> 12) into @pfns; returns how
 * many. Give back @n pages. */
unsigned pvm_sim_mm_balloon_alloc(struct pvm_sim_mm *mm, uint32_t *pfns, unsigned n);
void pvm_sim_mm_balloon_free(struct pvm_sim_mm *mm, const uint32_t *pfns, unsigned n);

/* Pages present and not reserved or ballooned (MemTotal), used by the workload, free. */
uint64_t pvm_sim_mm_total(const struct pvm_sim_mm *mm);
uint64_t pvm_sim_mm_used(const struct pvm_sim_mm *mm);
uint64_t pvm_sim_mm_free_bytes(const struct pvm_sim_mm *mm);

#endif

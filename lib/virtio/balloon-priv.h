/* SPDX-License-Identifier: MIT */
/*
 * virtio-balloon internals shared by balloon.c, balloon-track.c and balloon-stats.c. Nothing
 * here is exported; the unit tests reach the pure parts (PFN resolution, sub-page tracking,
 * statistics parsing) through this header.
 *
 * Tracking model (research/balloon-discard-memslots.md §3.3, §7.3):
 *  - every registered RAM range keeps two bitmaps with one bit per 4 KiB balloon page:
 *    `inflated` (the guest put the page in the balloon and has not taken it back) and `freed`
 *    (the host memory behind it was actually given back and nothing has refilled it since);
 *  - a host page (the region's page size: 4 KiB, or 2 MiB / 1 GiB for hugetlb) is discarded
 *    only when all of its 4 KiB sub-pages are inflated. Because the bitmap covers all of RAM,
 *    sub-pages are combined ACROSS elements and requests (QEMU combines them only within one
 *    element, cloud-hypervisor only until an element names another host page). Deflating one
 *    sub-page of a freed host page clears `freed` for the whole host page: the guest will touch
 *    that sub-page and the host refills the whole page;
 *  - while discarding is inhibited, inflation sets `inflated` only; a later flush frees every
 *    complete host page that is inflated but not freed.
 */
#ifndef PVM_VIRTIO_BALLOON_PRIV_H
#define PVM_VIRTIO_BALLOON_PRIV_H

#include <pvmem/balloon.h>
#include <pvmem/bitmap.h>
#include <pvmem/mem.h>
#include <pvmem/memslot.h>

#define PVM_BALLOON_PAGE_SHIFT 12
#define PVM_BALLOON_PAGE (1ULL << PVM_BALLOON_PAGE_SHIFT)

/* One registered RAM range, validated at creation. */
struct pvm_balloon_range {
	uint64_t gpa;                  /* guest-physical start (host-page aligned) */
	uint64_t end;                  /* gpa + size, exclusive; checked not to wrap */
	struct pvm_mem_region *region; /* backing region (not owned) */
	uint64_t offset;               /* offset of gpa inside region */
	uint64_t host_page;            /* unit of discard: the region's page size or the
	                                * configured granularity; >= 4 KiB, a power of two */
	uint64_t subpages;             /* host_page / 4 KiB */
	bool no_discard;               /* the range never gives memory back (tracked only) */
	struct pvm_bitmap *inflated;   /* 1 bit per 4 KiB page: in the balloon */
	struct pvm_bitmap *freed;      /* 1 bit per 4 KiB page: host memory given back */
};

/* The whole tracking state. Not locked: the device serialises access. */
struct pvm_balloon_track {
	struct pvm_balloon_range *ranges;          /* sorted by gpa, non-overlapping */
	size_t nr_ranges;                          /* entries in ranges */
	const struct pvm_memslot_table *memslots;  /* cross-check of every discard, may be NULL */
	uint64_t inflated_pages;                   /* set bits over all `inflated` bitmaps */
	uint64_t freed_pages;                      /* set bits over all `freed` bitmaps */
	bool flush_needed;                         /* a complete host page was held back */
	uint64_t bad_pfns;                         /* PFNs skipped: outside RAM or unmapped */
	uint64_t discard_errors;                   /* discards the region refused */
	uint64_t reported_bytes;                   /* bytes discarded through free page reporting */
	uint64_t reports_skipped;                  /* report ranges skipped (inhibited, unaligned...) */
};

/* What happened to one PFN of an inflate or deflate request. */
enum pvm_balloon_outcome {
	PVM_BALLOON_BAD = 0,      /* not guest RAM (or not mapped as RAM now): skipped */
	PVM_BALLOON_TRACKED,      /* state recorded; host memory unchanged */
	PVM_BALLOON_FREED,        /* completed a host page that was then discarded */
	PVM_BALLOON_REPEAT,       /* already in that state (guest bug): nothing changed */
};

int pvm_balloon_track_init(struct pvm_balloon_track *t, const struct pvm_balloon_ram *ram,
			   size_t nr, const struct pvm_memslot_table *memslots,
			   struct pvm_error *err);
void pvm_balloon_track_fini(struct pvm_balloon_track *t);
/* Total bytes of the registered ranges. */
uint64_t pvm_balloon_track_ram_size(const struct pvm_balloon_track *t);
/* The range holding the 4 KiB page at @gpa and the page's index in it; -EFAULT if none. */
int pvm_balloon_track_resolve(const struct pvm_balloon_track *t, uint64_t gpa, size_t *range,
			      uint64_t *page);
/* Apply one inflate (@inflate) or deflate PFN. With @inhibited nothing is discarded. */
enum pvm_balloon_outcome pvm_balloon_track_pfn(struct pvm_balloon_track *t, uint32_t pfn,
					       bool inflate, bool inhibited);
/* Discard every complete host page that is inflated but not freed; returns bytes freed. */
uint64_t pvm_balloon_track_flush(struct pvm_balloon_track *t);
/* A free page report of [@gpa, @gpa+@len): discarded when allowed, aligned and inside RAM.
 * Returns bytes discarded. */
uint64_t pvm_balloon_track_report(struct pvm_balloon_track *t, uint64_t gpa, uint64_t len);
/* Forget every inflated page (device reset): host memory stays as it is. */
void pvm_balloon_track_reset(struct pvm_balloon_track *t);

/* ---- statistics (balloon-stats.c) ---------------------------------------------------------- */

/* Size of one wire record: le16 tag, le64 value, packed. */
#define PVM_BALLOON_STAT_SIZE 10
/* Bytes of a stats buffer that are looked at; the rest is ignored (Linux sends 160). */
#define PVM_BALLOON_STATS_MAX_BYTES 4096

/* Reset @st's values to "unset" and parse @len bytes of 10-byte records from @buf into it.
 * Unknown tags are ignored, a later duplicate wins, a trailing partial record is ignored.
 * Returns the number of records with a known tag. Does not touch updates/last_update. */
unsigned pvm_balloon_stats_parse(const uint8_t *buf, size_t len, struct pvm_balloon_stats *st);
/* Mark every statistic unset. */
void pvm_balloon_stats_reset(struct pvm_balloon_stats *st);

#endif /* PVM_VIRTIO_BALLOON_PRIV_H */

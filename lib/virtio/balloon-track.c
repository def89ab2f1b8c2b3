/* SPDX-License-Identifier: MIT */
/*
 * virtio-balloon page tracking: which guest RAM the balloon may touch, which 4 KiB pages are in
 * the balloon, and which host pages have really been given back. See balloon-priv.h for the
 * model. Every guest-supplied number passes through pvm_balloon_track_resolve() (or the report
 * checks) before it names host memory; nothing here can fail on guest input.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "virtio/balloon-priv.h"

static int range_cmp(const void *a, const void *b)
{
	const struct pvm_balloon_range *x = a, *y = b;

	return x->gpa < y->gpa ? -1 : x->gpa > y->gpa;
}

static int range_init(struct pvm_balloon_range *r, const struct pvm_balloon_ram *ram, size_t i,
		      struct pvm_error *err)
{
	uint64_t hp, end, rend;
	int rc;

	if (!ram->region)
		return pvm_error_set(err, -EINVAL, "balloon RAM range %zu has no region", i);
	hp = pvm_mem_region_page_size(ram->region);
	if (!PVM_IS_POW2(hp) || hp < PVM_BALLOON_PAGE)
		return pvm_error_set(err, -EINVAL, "balloon RAM range %zu: page size %llu is not supported",
				     i, (unsigned long long)hp);
	if (ram->granularity) {
		if (!PVM_IS_POW2(ram->granularity) || ram->granularity < hp ||
		    ram->granularity > PVM_GiB)
			return pvm_error_set(err, -EINVAL,
					     "balloon RAM range %zu: granularity %llu is not a power of two "
					     "between the page size and 1 GiB",
					     i, (unsigned long long)ram->granularity);
		hp = ram->granularity;
	}
	if (!ram->size || !PVM_IS_ALIGNED(ram->gpa | ram->offset | ram->size, hp))
		return pvm_error_set(err, -EINVAL,
				     "balloon RAM range %zu is empty or not aligned to its granularity", i);
	if (pvm_add_overflow(ram->gpa, ram->size, &end) ||
	    pvm_add_overflow(ram->offset, ram->size, &rend) || rend > pvm_mem_region_size(ram->region))
		return pvm_error_set(err, -EINVAL, "balloon RAM range %zu wraps or leaves its region", i);
	*r = (struct pvm_balloon_range){
		.gpa = ram->gpa,
		.end = end,
		.region = ram->region,
		.offset = ram->offset,
		.host_page = hp,
		.subpages = hp / PVM_BALLOON_PAGE,
		.no_discard = ram->no_discard,
	};
	rc = pvm_bitmap_new(ram->size / PVM_BALLOON_PAGE, &r->inflated);
	if (rc == 0)
		rc = pvm_bitmap_new(ram->size / PVM_BALLOON_PAGE, &r->freed);
	if (rc < 0) {
		pvm_bitmap_free(r->inflated);
		r->inflated = NULL;
		return pvm_error_set(err, rc, "cannot allocate the balloon bitmaps");
	}
	return 0;
}

int pvm_balloon_track_init(struct pvm_balloon_track *t, const struct pvm_balloon_ram *ram,
			   size_t nr, const struct pvm_memslot_table *memslots,
			   struct pvm_error *err)
{
	int rc = 0;

	memset(t, 0, sizeof(*t));
	t->memslots = memslots;
	if (nr && !ram)
		return pvm_error_set(err, -EINVAL, "balloon RAM ranges missing");
	if (nr) {
		t->ranges = pvm_calloc(nr, sizeof(*t->ranges));
		if (!t->ranges)
			return pvm_error_set(err, -ENOMEM, "cannot allocate the balloon RAM ranges");
	}
	for (size_t i = 0; i < nr; i++) {
		rc = range_init(&t->ranges[i], &ram[i], i, err);
		if (rc < 0)
			goto fail;
		t->nr_ranges++;
	}
	qsort(t->ranges, t->nr_ranges, sizeof(*t->ranges), range_cmp);
	for (size_t i = 1; i < t->nr_ranges; i++) {
		if (t->ranges[i].gpa < t->ranges[i - 1].end) {
			rc = pvm_error_set(err, -EEXIST, "balloon RAM ranges at 0x%llx and 0x%llx overlap",
					   (unsigned long long)t->ranges[i - 1].gpa,
					   (unsigned long long)t->ranges[i].gpa);
			goto fail;
		}
	}
	return 0;
fail:
	pvm_balloon_track_fini(t);
	return rc;
}

void pvm_balloon_track_fini(struct pvm_balloon_track *t)
{
	for (size_t i = 0; i < t->nr_ranges; i++) {
		pvm_bitmap_free(t->ranges[i].inflated);
		pvm_bitmap_free(t->ranges[i].freed);
	}
	pvm_free(t->ranges);
	memset(t, 0, sizeof(*t));
}

uint64_t pvm_balloon_track_ram_size(const struct pvm_balloon_track *t)
{
	uint64_t total = 0;

	for (size_t i = 0; i < t->nr_ranges; i++)
		total += t->ranges[i].end - t->ranges[i].gpa;  /* ranges are disjoint: no overflow */
	return total;
}

int pvm_balloon_track_resolve(const struct pvm_balloon_track *t, uint64_t gpa, size_t *range,
			      uint64_t *page)
{
	size_t lo = 0, hi = t->nr_ranges;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct pvm_balloon_range *r = &t->ranges[mid];

		if (gpa < r->gpa) {
			hi = mid;
		} else if (gpa >= r->end) {
			lo = mid + 1;
		} else {
			*range = mid;
			*page = (gpa - r->gpa) >> PVM_BALLOON_PAGE_SHIFT;
			return 0;
		}
	}
	return -EFAULT;
}

/*
 * True when [@gpa, @gpa+@len) of range @r is, right now, writable guest RAM in the memslot
 * table and maps to the same host memory the range names. This keeps a stale or mistaken
 * registration (slot deleted, moved, made read-only) from ever discarding anything.
 */
static bool range_mapped(const struct pvm_balloon_track *t, const struct pvm_balloon_range *r,
			 uint64_t gpa, uint64_t len)
{
	struct pvm_memslot_info slot;
	uint64_t want;

	if (!t->memslots)
		return true;
	if (pvm_memslot_lookup_gpa(t->memslots, gpa, &slot) < 0)
		return false;
	if (slot.flags & PVM_MEMSLOT_F_READONLY)
		return false;
	if (gpa - slot.gpa > slot.size || len > slot.size - (gpa - slot.gpa))
		return false;
	want = (uint64_t)(uintptr_t)pvm_mem_region_host(r->region) + r->offset + (gpa - r->gpa);
	return (uint64_t)(uintptr_t)slot.hva + (gpa - slot.gpa) == want;
}

/* Discard host page @hp (index in host pages) of range @r and mark its sub-pages freed. */
static bool discard_host_page(struct pvm_balloon_track *t, struct pvm_balloon_range *r,
			      uint64_t first_sub)
{
	uint64_t off = first_sub * PVM_BALLOON_PAGE;
	uint64_t newly;

	if (r->no_discard || !range_mapped(t, r, r->gpa + off, r->host_page))
		return false;
	if (pvm_mem_region_discard(r->region, r->offset + off, r->host_page, NULL) < 0) {
		/* Not fatal (QEMU: "failing to discard a balloon page is not fatal"); the pages stay
		 * inflated-but-not-freed and a later flush retries. */
		t->discard_errors++;
		return false;
	}
	newly = r->subpages - pvm_bitmap_count_range(r->freed, first_sub, r->subpages);
	(void)pvm_bitmap_set_range(r->freed, first_sub, r->subpages);
	t->freed_pages += newly;
	PVM_TRACE(balloon_discard, "gpa=0x%llx len=0x%llx", (unsigned long long)(r->gpa + off),
		  (unsigned long long)r->host_page);
	return true;
}

enum pvm_balloon_outcome pvm_balloon_track_pfn(struct pvm_balloon_track *t, uint32_t pfn,
					       bool inflate, bool inhibited)
{
	/* A u32 PFN in 4 KiB units names at most 16 TiB - 4 KiB: no overflow in 64 bits. */
	uint64_t gpa = (uint64_t)pfn << PVM_BALLOON_PAGE_SHIFT;
	struct pvm_balloon_range *r;
	uint64_t page, first;
	size_t idx;

	if (pvm_balloon_track_resolve(t, gpa, &idx, &page) < 0 ||
	    !range_mapped(t, &t->ranges[idx], gpa, PVM_BALLOON_PAGE)) {
		t->bad_pfns++;
		PVM_TRACE(balloon_bad_pfn, "pfn=0x%x", pfn);
		return PVM_BALLOON_BAD;
	}
	r = &t->ranges[idx];
	first = page - page % r->subpages;
	if (!inflate) {
		if (!pvm_bitmap_test(r->inflated, page))
			return PVM_BALLOON_REPEAT;
		pvm_bitmap_clear(r->inflated, page);
		t->inflated_pages--;
		/* The guest will use this sub-page again, which refills the whole host page. */
		t->freed_pages -= pvm_bitmap_count_range(r->freed, first, r->subpages);
		(void)pvm_bitmap_clear_range(r->freed, first, r->subpages);
		return PVM_BALLOON_TRACKED;
	}
	if (pvm_bitmap_test(r->inflated, page))
		return PVM_BALLOON_REPEAT;
	pvm_bitmap_set(r->inflated, page);
	t->inflated_pages++;
	if (!pvm_bitmap_range_is_set(r->inflated, first, r->subpages))
		return PVM_BALLOON_TRACKED;  /* part of a larger host page: wait for the rest */
	if (inhibited) {
		if (!r->no_discard)
			t->flush_needed = true;
		return PVM_BALLOON_TRACKED;
	}
	return discard_host_page(t, r, first) ? PVM_BALLOON_FREED : PVM_BALLOON_TRACKED;
}

uint64_t pvm_balloon_track_flush(struct pvm_balloon_track *t)
{
	uint64_t freed = 0;

	for (size_t i = 0; i < t->nr_ranges; i++) {
		struct pvm_balloon_range *r = &t->ranges[i];
		uint64_t s, e;

		if (r->no_discard)
			continue;
		pvm_bitmap_for_each_set_run(r->inflated, s, e) {
			uint64_t hp = PVM_ALIGN_UP(s, r->subpages);

			for (; hp + r->subpages <= e; hp += r->subpages) {
				if (pvm_bitmap_range_is_set(r->freed, hp, r->subpages))
					continue;
				if (discard_host_page(t, r, hp))
					freed += r->host_page;
			}
		}
	}
	t->flush_needed = false;
	return freed;
}

uint64_t pvm_balloon_track_report(struct pvm_balloon_track *t, uint64_t gpa, uint64_t len)
{
	struct pvm_balloon_range *r;
	uint64_t page;
	size_t idx;

	if (!len || pvm_range_wraps(gpa, len) ||
	    pvm_balloon_track_resolve(t, gpa, &idx, &page) < 0)
		goto skip;
	r = &t->ranges[idx];
	/* Whole host pages of one range only (QEMU ignores unaligned or crossing reports too). */
	if (r->no_discard || !PVM_IS_ALIGNED(gpa | len, r->host_page) || len > r->end - gpa ||
	    !range_mapped(t, r, gpa, len))
		goto skip;
	if (pvm_mem_region_discard(r->region, r->offset + (gpa - r->gpa), len, NULL) < 0) {
		t->discard_errors++;
		goto skip;
	}
	t->reported_bytes += len;
	return len;
skip:
	t->reports_skipped++;
	PVM_TRACE(balloon_report_skip, "gpa=0x%llx len=0x%llx", (unsigned long long)gpa,
		  (unsigned long long)len);
	return 0;
}

void pvm_balloon_track_reset(struct pvm_balloon_track *t)
{
	for (size_t i = 0; i < t->nr_ranges; i++) {
		pvm_bitmap_clear_all(t->ranges[i].inflated);
		pvm_bitmap_clear_all(t->ranges[i].freed);
	}
	t->inflated_pages = 0;
	t->freed_pages = 0;
	t->flush_needed = false;
}

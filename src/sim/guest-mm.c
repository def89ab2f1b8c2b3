/* SPDX-License-Identifier: MIT */
/* The simulated guest's page allocator (see guest-mm.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "guest-mm.h"

enum page { P_ABSENT = 0, P_FREE, P_USED, P_BALLOON, P_RESERVED };

struct mm_range {
	struct pvm_sim_mm_range r;  /* where and what */
	uint64_t npages;            /* pages */
	uint8_t *pg;                /* one enum page per page */
};

struct pvm_sim_mm {
	struct mm_range rg[PVM_SIM_MM_MAX_RANGES]; /* boot RAM and hot-plug regions */
	unsigned n;                 /* ranges */
	pvm_sim_touch_fn touch;     /* writes guest memory */
	void *opaque;               /* for touch */
	uint64_t nfree, nused, nballoon, nreserved, npresent; /* page counts */
};

int pvm_sim_mm_new(const struct pvm_sim_mm_range *ranges, unsigned n, pvm_sim_touch_fn touch,
		   void *opaque, struct pvm_sim_mm **out)
{
	struct pvm_sim_mm *mm;

	if (n > PVM_SIM_MM_MAX_RANGES)
		return -EINVAL;
	mm = calloc(1, sizeof(*mm));
	if (!mm)
		return -ENOMEM;
	mm->n = n;
	mm->touch = touch;
	mm->opaque = opaque;
	for (unsigned i = 0; i < n; i++) {
		mm->rg[i].r = ranges[i];
		mm->rg[i].npages = ranges[i].size / PVM_SIM_PAGE;
		mm->rg[i].pg = calloc(mm->rg[i].npages ? mm->rg[i].npages : 1, 1);
		if (!mm->rg[i].pg) {
			pvm_sim_mm_free(mm);
			return -ENOMEM;
		}
	}
	pvm_sim_mm_reset(mm);
	*out = mm;
	return 0;
}

void pvm_sim_mm_free(struct pvm_sim_mm *mm)
{
	if (!mm)
		return;
	for (unsigned i = 0; i < mm->n; i++)
		free(mm->rg[i].pg);
	free(mm);
}

void pvm_sim_mm_reset(struct pvm_sim_mm *mm)
{
	mm->nfree = mm->nused = mm->nballoon = mm->nreserved = mm->npresent = 0;
	for (unsigned i = 0; i < mm->n; i++) {
		memset(mm->rg[i].pg, mm->rg[i].r.movable ? P_ABSENT : P_FREE, mm->rg[i].npages);
		if (!mm->rg[i].r.movable) {
			mm->nfree += mm->rg[i].npages;
			mm->npresent += mm->rg[i].npages;
		}
	}
}

/* The range holding [gpa, gpa+size), or NULL; *first = its first page index. */
static struct mm_range *find(struct pvm_sim_mm *mm, uint64_t gpa, uint64_t size, uint64_t *first)
{
	for (unsigned i = 0; i < mm->n; i++) {
		struct mm_range *r = &mm->rg[i];

		if (gpa >= r->r.gpa && gpa - r->r.gpa <= r->r.size && size <= r->r.size - (gpa - r->r.gpa)) {
			*first = (gpa - r->r.gpa) / PVM_SIM_PAGE;
			return r;
		}
	}
	return NULL;
}

static void set(struct pvm_sim_mm *mm, struct mm_range *r, uint64_t p, uint8_t to)
{
	uint8_t from = r->pg[p];
	uint64_t *cnt[] = { NULL, &mm->nfree, &mm->nused, &mm->nballoon, &mm->nreserved };

	if (from == to)
		return;
	if (cnt[from])
		(*cnt[from])--;
	if (cnt[to])
		(*cnt[to])++;
	if (from == P_ABSENT)
		mm->npresent++;
	if (to == P_ABSENT)
		mm->npresent--;
	r->pg[p] = to;
}

void pvm_sim_mm_reserve(struct pvm_sim_mm *mm, uint64_t gpa, uint64_t size)
{
	uint64_t first;
	struct mm_range *r = find(mm, gpa, size, &first);

	for (uint64_t p = 0; r && p < size / PVM_SIM_PAGE; p++)
		set(mm, r, first + p, P_RESERVED);
}

void pvm_sim_mm_give(struct pvm_sim_mm *mm, uint64_t gpa, uint64_t size)
{
	uint64_t first;
	struct mm_range *r = find(mm, gpa, size, &first);

	for (uint64_t p = 0; r && p < size / PVM_SIM_PAGE; p++)
		if (r->pg[first + p] == P_ABSENT)
			set(mm, r, first + p, P_FREE);
}

/* Allocate @n free pages in state @to: movable ranges first when @movable_first, ascending.
 * Touches runs when @touch. Returns the number allocated. PFNs go to @pfns when not NULL. */
static uint64_t alloc_pages(struct pvm_sim_mm *mm, uint64_t n, uint8_t to, bool movable_first,
			    bool touch, uint32_t *pfns)
{
	uint64_t got = 0;

	for (int pass = 0; pass < 2 && got < n; pass++) {
		for (unsigned i = 0; i < mm->n && got < n; i++) {
			struct mm_range *r = &mm->rg[i];
			uint64_t run_start = 0, run_len = 0;

			if (r->r.movable != (movable_first ? pass == 0 : pass == 1))
				continue;
			for (uint64_t p = 0; p < r->npages && got < n; p++) {
				if (r->pg[p] != P_FREE)
					continue;
				set(mm, r, p, to);
				if (pfns)
					pfns[got] = (uint32_t)((r->r.gpa + p * PVM_SIM_PAGE) >> 12);
				got++;
				if (run_len && run_start + run_len == p) {
					run_len++;
				} else {
					if (touch && run_len && mm->touch)
						mm->touch(mm->opaque, r->r.gpa + run_start * PVM_SIM_PAGE,
							  run_len * PVM_SIM_PAGE);
					run_start = p;
					run_len = 1;
				}
			}
			if (touch && run_len && mm->touch)
				mm->touch(mm->opaque, r->r.gpa + run_start * PVM_SIM_PAGE, run_len * PVM_SIM_PAGE);
		}
	}
	return got;
}

int pvm_sim_mm_take(struct pvm_sim_mm *mm, uint64_t gpa, uint64_t size)
{
	uint64_t first, used = 0, freein = 0, n = size / PVM_SIM_PAGE;
	struct mm_range *r = find(mm, gpa, size, &first);

	if (!r)
		return -EINVAL;
	for (uint64_t p = first; p < first + n; p++) {
		if (r->pg[p] == P_BALLOON || r->pg[p] == P_RESERVED)
			return -EBUSY;
		used += r->pg[p] == P_USED;
		freein += r->pg[p] == P_FREE;
	}
	if (mm->nfree - freein < used)
		return -EBUSY;
	/* Isolate the range, then migrate its used pages into free memory elsewhere. */
	for (uint64_t p = first; p < first + n; p++)
		set(mm, r, p, P_ABSENT);
	alloc_pages(mm, used, P_USED, true, true, NULL);
	return 0;
}

uint64_t pvm_sim_mm_set_used(struct pvm_sim_mm *mm, uint64_t bytes)
{
	uint64_t want = bytes / PVM_SIM_PAGE;

	if (want > mm->nused) {
		alloc_pages(mm, want - mm->nused, P_USED, true, true, NULL);
	} else {
		/* Free the highest used pages: the last (highest) range first, from its top. */
		for (unsigned i = mm->n; i-- > 0 && mm->nused > want;) {
			struct mm_range *r = &mm->rg[i];

			for (uint64_t p = r->npages; p-- > 0 && mm->nused > want;)
				if (r->pg[p] == P_USED)
					set(mm, r, p, P_FREE);
		}
	}
	return mm->nused * PVM_SIM_PAGE;
}

unsigned pvm_sim_mm_balloon_alloc(struct pvm_sim_mm *mm, uint32_t *pfns, unsigned n)
{
	return (unsigned)alloc_pages(mm, n, P_BALLOON, false, false, pfns);
}

void pvm_sim_mm_balloon_free(struct pvm_sim_mm *mm, const uint32_t *pfns, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		uint64_t first;
		struct mm_range *r = find(mm, (uint64_t)pfns[i] << 12, PVM_SIM_PAGE, &first);

		if (r && r->pg[first] == P_BALLOON)
			set(mm, r, first, P_FREE);
	}
}

uint64_t pvm_sim_mm_total(const struct pvm_sim_mm *mm)
{
	return (mm->nfree + mm->nused) * PVM_SIM_PAGE;
}

uint64_t pvm_sim_mm_used(const struct pvm_sim_mm *mm)
{
	return mm->nused * PVM_SIM_PAGE;
}

uint64_t pvm_sim_mm_free_bytes(const struct pvm_sim_mm *mm)
{
	return mm->nfree * PVM_SIM_PAGE;
}

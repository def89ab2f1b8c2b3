/* SPDX-License-Identifier: MIT */
/*
 * A reference model of what a DMA space must map, computed from first principles (the fake
 * source's plugged bytes, the vIOMMU state, the domain entries), and a comparison with what the
 * space's container holds. Header-only, no cmocka: shared by unit tests and the fuzz harness.
 */
#ifndef PVM_TEST_DMA_MODEL_H
#define PVM_TEST_DMA_MODEL_H

#include <stdlib.h>
#include <string.h>

#include <pvmem/dma.h>
#include "discard-fake.h"

#define MODEL_MAX_RAM 4
#define MODEL_MAX_ENTRIES 64
#define MODEL_MAX_MAPS 4096

struct model_ram {
	uint64_t gpa, size, hva;       /* section */
	struct fake_src *src;          /* sparse: its source; NULL = always populated */
};

struct model_entry {
	uint32_t dom;                  /* domain */
	uint64_t iova, gpa, size;      /* translation */
};

struct model {
	struct model_ram ram[MODEL_MAX_RAM];           /* sections (same in every space) */
	int nram;
	struct model_entry e[MODEL_MAX_ENTRIES];       /* every domain's entries */
	int ne;
	bool enabled;                                  /* vIOMMU enabled */
};

struct model_map {
	uint64_t iova, hva, size;
};

static inline int model_map_cmp(const void *a, const void *b)
{
	const struct model_map *x = a, *y = b;

	return x->iova < y->iova ? -1 : x->iova > y->iova;
}

static inline bool model_populated(const struct model_ram *r, uint64_t gpa, uint64_t size)
{
	if (!r->src)
		return true;
	for (uint64_t b = (gpa - r->gpa) / r->src->gran; b <= (gpa - r->gpa + size - 1) / r->src->gran; b++)
		if (!r->src->plugged[(r->gpa - r->src->base) / r->src->gran + b])
			return false;
	return true;
}

/* Expected mappings of a space (live or not, bound to @domain, with or without a vIOMMU). */
static inline size_t model_expected(const struct model *m, bool live, bool has_viommu,
				    uint32_t domain, struct model_map *out)
{
	size_t n = 0;

	if (!live)
		return 0;
	if (!has_viommu || !m->enabled) {
		for (int i = 0; i < m->nram; i++) {
			const struct model_ram *r = &m->ram[i];

			if (!r->src) {
				out[n++] = (struct model_map){ r->gpa, r->hva, r->size };
				continue;
			}
			for (uint64_t off = 0; off < r->size && n < MODEL_MAX_MAPS; off += r->src->gran)
				if (model_populated(r, r->gpa + off, r->src->gran))
					out[n++] = (struct model_map){ r->gpa + off, r->hva + off, r->src->gran };
		}
	} else {
		for (int k = 0; k < m->ne; k++) {
			const struct model_entry *e = &m->e[k];

			if (e->dom != domain)
				continue;
			for (int i = 0; i < m->nram; i++) {
				const struct model_ram *r = &m->ram[i];

				if (e->gpa >= r->gpa && e->gpa - r->gpa < r->size &&
				    e->size <= r->size - (e->gpa - r->gpa) && model_populated(r, e->gpa, e->size))
					out[n++] = (struct model_map){ e->iova, r->hva + (e->gpa - r->gpa), e->size };
			}
		}
	}
	qsort(out, n, sizeof(*out), model_map_cmp);
	return n;
}

struct model_collect {
	struct model_map *m;     /* collected */
	size_t n;                /* count */
};

static inline int model_collect_fn(void *arg, uint64_t iova, uint64_t hva, uint64_t size)
{
	struct model_collect *c = arg;

	if (c->n >= MODEL_MAX_MAPS)
		return -ENOSPC;
	c->m[c->n++] = (struct model_map){ iova, hva, size };
	return 0;
}

/* True when the space holds exactly the model's mappings. */
static inline bool model_check(const struct model *m, const struct pvm_dma_space *s, bool has_viommu,
			       uint32_t domain)
{
	static struct model_map want[MODEL_MAX_MAPS], got[MODEL_MAX_MAPS];
	struct pvm_dma_space_stats st;
	struct model_collect c = { got, 0 };
	size_t n;

	pvm_dma_space_stats(s, &st);
	n = model_expected(m, st.live, has_viommu, domain, want);
	if (pvm_dma_space_for_each_mapping(s, model_collect_fn, &c))
		return false;
	return c.n == n && (n == 0 || !memcmp(want, got, n * sizeof(want[0])));
}

#endif

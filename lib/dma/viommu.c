/* SPDX-License-Identifier: MIT */
/*
 * The vIOMMU: guest-programmed domains (iova -> gpa entries) and the global enable bit (VT-d's
 * translation enable). It keeps the spaces behind it in step: enabling or disabling switches
 * every live space between its identity view and its domain's view; a map or unmap in a domain
 * is applied at once to every live space showing that domain. Everything here is driven by the
 * guest, so every input is checked and the entry count is bounded.
 */
#include <errno.h>
#include <string.h>

#include "dma/dma-priv.h"

#define VIOMMU_MAX_ENTRIES (1u << 20)    /* all domains together */

struct viommu_domain {
	uint32_t id;                         /* guest domain id */
	struct pvm_dma_entry *e;             /* entries sorted by iova, non-overlapping */
	size_t n;                            /* entries in use */
	size_t cap;                          /* entries allocated */
};

struct pvm_dma_viommu {
	bool enabled;                        /* translation enabled by the guest */
	struct viommu_domain *d;             /* domains */
	size_t nd;                           /* domains in use */
	struct pvm_dma_space **sp;           /* spaces behind this vIOMMU */
	size_t nsp;                          /* spaces in use */
	uint64_t entries;                    /* entries over all domains */
};

int pvm_dma_viommu_new(struct pvm_dma_viommu **out)
{
	*out = pvm_calloc(1, sizeof(**out));
	return *out ? 0 : -ENOMEM;
}

void pvm_dma_viommu_free(struct pvm_dma_viommu *v)
{
	if (!v)
		return;
	if (v->nsp)
		pvm_warn("vIOMMU freed with %zu spaces still using it", v->nsp);
	for (size_t i = 0; i < v->nd; i++)
		pvm_free(v->d[i].e);
	pvm_free(v->d);
	pvm_free(v->sp);
	pvm_free(v);
}

bool pvm_dma_viommu_enabled(const struct pvm_dma_viommu *v)
{
	return v->enabled;
}

int pvm_dma_viommu_add_space(struct pvm_dma_viommu *v, struct pvm_dma_space *s)
{
	struct pvm_dma_space **n = pvm_reallocarray(v->sp, v->nsp + 1, sizeof(*n));

	if (!n)
		return -ENOMEM;
	v->sp = n;
	v->sp[v->nsp++] = s;
	return 0;
}

void pvm_dma_viommu_remove_space(struct pvm_dma_viommu *v, struct pvm_dma_space *s)
{
	for (size_t i = 0; i < v->nsp; i++) {
		if (v->sp[i] == s) {
			memmove(&v->sp[i], &v->sp[i + 1], (v->nsp - i - 1) * sizeof(s));
			v->nsp--;
			return;
		}
	}
}

int pvm_dma_viommu_set_enabled(struct pvm_dma_viommu *v, bool enabled, struct pvm_error *err)
{
	int rc = 0;
	size_t i;

	PVM_TRACE(viommu_set_enabled, "enabled=%d", enabled);
	if (v->enabled == enabled)
		return 0;
	v->enabled = enabled;
	for (i = 0; i < v->nsp && !rc; i++)
		rc = pvm_dma_space_remap(v->sp[i], err);
	if (rc) {
		/* Switch back every space touched, the failing one included. */
		v->enabled = !enabled;
		for (size_t k = 0; k < i; k++)
			if (pvm_dma_space_remap(v->sp[k], NULL))
				pvm_warn("%s: cannot restore the DMA view after a failed vIOMMU switch",
					 pvm_dma_space_name(v->sp[k]));
		PVM_TRACE(viommu_set_enabled_failed, "rc=%d", rc);
	}
	return rc;
}

static struct viommu_domain *find_domain(const struct pvm_dma_viommu *v, uint32_t id)
{
	for (size_t i = 0; i < v->nd; i++)
		if (v->d[i].id == id)
			return &v->d[i];
	return NULL;
}

const struct pvm_dma_entry *pvm_dma_viommu_entries(const struct pvm_dma_viommu *v, uint32_t domain,
						   size_t *n)
{
	const struct viommu_domain *d = find_domain(v, domain);

	*n = d ? d->n : 0;
	return d ? d->e : NULL;
}

uint64_t pvm_dma_viommu_domain_entries(const struct pvm_dma_viommu *v, uint32_t domain)
{
	size_t n;

	pvm_dma_viommu_entries(v, domain, &n);
	return n;
}

/* First entry of @d whose end is above @x. */
static size_t first_after(const struct viommu_domain *d, uint64_t x)
{
	size_t lo = 0, hi = d->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (d->e[mid].iova + d->e[mid].size > x)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

static void drop_domain_if_empty(struct pvm_dma_viommu *v, struct viommu_domain *d)
{
	if (d->n)
		return;
	pvm_free(d->e);
	*d = v->d[--v->nd];
}

int pvm_dma_viommu_map(struct pvm_dma_viommu *v, uint32_t domain, uint64_t iova, uint64_t gpa,
		       uint64_t size, struct pvm_error *err)
{
	struct viommu_domain *d;
	struct pvm_dma_entry ent = { iova, gpa, size };
	size_t i, k;
	int rc = 0;

	PVM_TRACE(viommu_map, "domain=%u iova=0x%llx gpa=0x%llx size=0x%llx", domain,
		  (unsigned long long)iova, (unsigned long long)gpa, (unsigned long long)size);
	if (!size || !PVM_IS_ALIGNED(iova | gpa | size, PVM_DMA_PAGE_SIZE) ||
	    pvm_range_wraps(iova, size) || pvm_range_wraps(gpa, size) || iova + size == 0 ||
	    gpa + size == 0)
		return pvm_error_set(err, -EINVAL, "vIOMMU map 0x%llx+0x%llx is empty, unaligned or wraps",
				     (unsigned long long)iova, (unsigned long long)size);
	if (v->entries >= VIOMMU_MAX_ENTRIES)
		return pvm_error_set(err, -ENOSPC, "too many vIOMMU entries");
	d = find_domain(v, domain);
	if (d) {
		i = first_after(d, iova);
		if (i < d->n && d->e[i].iova < iova + size)
			return pvm_error_set(err, -EEXIST, "vIOMMU map 0x%llx+0x%llx overlaps an entry",
					     (unsigned long long)iova, (unsigned long long)size);
	} else {
		struct viommu_domain *nd = pvm_reallocarray(v->d, v->nd + 1, sizeof(*nd));

		if (!nd)
			return pvm_error_set(err, -ENOMEM, "out of memory");
		v->d = nd;
		d = &v->d[v->nd++];
		*d = (struct viommu_domain){ .id = domain };
		i = 0;
	}
	if (d->n == d->cap) {
		size_t ncap = d->cap ? d->cap * 2 : 16;
		struct pvm_dma_entry *ne = pvm_reallocarray(d->e, ncap, sizeof(*ne));

		if (!ne) {
			drop_domain_if_empty(v, d);
			return pvm_error_set(err, -ENOMEM, "out of memory");
		}
		d->e = ne;
		d->cap = ncap;
	}
	for (k = 0; k < v->nsp && !rc; k++)
		if (pvm_dma_space_shows_domain(v->sp[k], domain))
			rc = pvm_dma_space_entry_map(v->sp[k], &ent, err);
	if (rc) {
		for (size_t j = 0; j + 1 < k; j++)
			if (pvm_dma_space_shows_domain(v->sp[j], domain))
				pvm_dma_space_entry_unmap(v->sp[j], &ent);
		drop_domain_if_empty(v, d);
		return rc;
	}
	memmove(&d->e[i + 1], &d->e[i], (d->n - i) * sizeof(ent));
	d->e[i] = ent;
	d->n++;
	v->entries++;
	return 0;
}

int pvm_dma_viommu_unmap(struct pvm_dma_viommu *v, uint32_t domain, uint64_t iova, uint64_t size,
			 uint64_t *removed, struct pvm_error *err)
{
	struct viommu_domain *d = find_domain(v, domain);
	uint64_t end, bytes = 0;
	size_t i, j;

	PVM_TRACE(viommu_unmap, "domain=%u iova=0x%llx size=0x%llx", domain,
		  (unsigned long long)iova, (unsigned long long)size);
	if (removed)
		*removed = 0;
	if (!size || !PVM_IS_ALIGNED(iova | size, PVM_DMA_PAGE_SIZE) || pvm_range_wraps(iova, size))
		return pvm_error_set(err, -EINVAL, "vIOMMU unmap 0x%llx+0x%llx is empty, unaligned or wraps",
				     (unsigned long long)iova, (unsigned long long)size);
	if (!d)
		return 0;
	end = iova + size;   /* 0: up to 2^64 */
	i = first_after(d, iova);
	if (i < d->n && d->e[i].iova < iova)
		return pvm_error_set(err, -EINVAL, "vIOMMU unmap at 0x%llx splits an entry",
				     (unsigned long long)iova);
	for (j = i; j < d->n && (end == 0 || d->e[j].iova < end); j++)
		;
	if (j > i && end != 0 && d->e[j - 1].iova + d->e[j - 1].size > end)
		return pvm_error_set(err, -EINVAL, "vIOMMU unmap ending at 0x%llx splits an entry",
				     (unsigned long long)end);
	for (size_t k = i; k < j; k++) {
		for (size_t s = 0; s < v->nsp; s++)
			if (pvm_dma_space_shows_domain(v->sp[s], domain))
				pvm_dma_space_entry_unmap(v->sp[s], &d->e[k]);
		bytes += d->e[k].size;
	}
	memmove(&d->e[i], &d->e[j], (d->n - j) * sizeof(d->e[0]));
	d->n -= j - i;
	v->entries -= j - i;
	drop_domain_if_empty(v, d);
	if (removed)
		*removed = bytes;
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * DMA address spaces: what a group of devices sees. A space knows the guest RAM sections, owns
 * one container, and while a device is attached keeps the container equal to its view:
 *   identity (no vIOMMU, or vIOMMU disabled): every populated byte of RAM at iova == gpa; an
 *     always-populated section is one mapping, a sparse one (discard manager) one mapping per
 *     granule, following plug/unplug through a discard listener;
 *   domain (vIOMMU enabled): the current domain's entries whose target is populated RAM.
 * Sparse sections mirror the populated granules in a bitmap fed by the listener, so that view
 * switches rebuild the container without asking the source.
 */
#include <errno.h>
#include <string.h>

#include <pvmem/bitmap.h>
#include "dma/dma-priv.h"

struct ram_section {
	struct pvm_dma_space *s;                  /* owner (listener callbacks start here) */
	uint64_t gpa;                             /* guest-physical start */
	uint64_t size;                            /* bytes */
	uint64_t hva;                             /* host address of gpa */
	struct pvm_discard_manager *dm;           /* sparse: its manager; NULL: always populated */
	uint64_t gran;                            /* sparse: the manager's granularity */
	struct pvm_bitmap *pop;                   /* live sparse: populated granules (mirror) */
	struct pvm_discard_listener *listener;    /* live sparse: our registration */
};

struct dma_device {
	char *name;                               /* unique in the space */
	enum pvm_dma_device_kind kind;            /* decides the vote */
};

struct pvm_dma_space {
	struct pvm_dma_ctx *ctx;                  /* accounting */
	char *name;                               /* for messages */
	struct pvm_dma_viommu *viommu;            /* NULL: no vIOMMU */
	uint32_t domain;                          /* current vIOMMU domain */
	struct pvm_dma_container *c;              /* the mappings */
	struct ram_section **ram;                 /* sections (pointers stay put for listeners) */
	size_t nram;                              /* sections in use */
	struct dma_device *dev;                   /* attached devices */
	size_t ndev;                              /* devices attached */
	bool quiet;                               /* listener calls only update the mirror */
};

static bool live(const struct pvm_dma_space *s)
{
	return s->ndev > 0;
}

static bool identity(const struct pvm_dma_space *s)
{
	return !s->viommu || !pvm_dma_viommu_enabled(s->viommu);
}

bool pvm_dma_space_shows_domain(const struct pvm_dma_space *s, uint32_t domain)
{
	return live(s) && !identity(s) && s->domain == domain;
}

/* ---- resolving vIOMMU targets ---------------------------------------------------------------- */

/* The hva of [gpa, gpa+size) when it lies in one section and is fully populated. */
static bool resolve(const struct pvm_dma_space *s, uint64_t gpa, uint64_t size, uint64_t *hva)
{
	for (size_t i = 0; i < s->nram; i++) {
		const struct ram_section *r = s->ram[i];
		uint64_t off = gpa - r->gpa, first, last;

		if (gpa < r->gpa || off >= r->size || size > r->size - off)
			continue;
		if (r->dm) {
			if (!r->pop)
				return false;
			first = off / r->gran;
			last = (off + size - 1) / r->gran;
			if (!pvm_bitmap_range_is_set(r->pop, first, last - first + 1))
				return false;
		}
		*hva = r->hva + off;
		return true;
	}
	return false;
}

int pvm_dma_space_entry_map(struct pvm_dma_space *s, const struct pvm_dma_entry *e,
			    struct pvm_error *err)
{
	uint64_t hva;

	if (!resolve(s, e->gpa, e->size, &hva) || pvm_dma_container_has(s->c, e->iova))
		return 0;
	return pvm_dma_container_map(s->c, e->iova, hva, e->size, err);
}

void pvm_dma_space_entry_unmap(struct pvm_dma_space *s, const struct pvm_dma_entry *e)
{
	struct pvm_error err = { 0 };

	if (pvm_dma_container_unmap(s->c, e->iova, e->size, NULL, &err))
		pvm_warn("%s: %s", s->name, pvm_error_message(&err));
}

static bool intersects(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

/* ---- mapping a view, per range ----------------------------------------------------------------- */

/* Unmap what the view maps for [gpa, gpa+size) of section @r. */
static void unmap_range(struct pvm_dma_space *s, struct ram_section *r, uint64_t gpa, uint64_t size)
{
	struct pvm_error err = { 0 };

	if (identity(s)) {
		if (pvm_dma_container_unmap(s->c, gpa, size, NULL, &err))
			pvm_warn("%s: %s", s->name, pvm_error_message(&err));
		return;
	}
	size_t n;
	const struct pvm_dma_entry *e = pvm_dma_viommu_entries(s->viommu, s->domain, &n);

	for (size_t i = 0; i < n; i++)
		if (intersects(e[i].gpa, e[i].size, gpa, size))
			pvm_dma_space_entry_unmap(s, &e[i]);
	(void)r;
}

/* Map what the view shows for [gpa, gpa+size) of section @r (whole section for an always-
 * populated one). On failure what this call mapped is unmapped again. */
static int map_range(struct pvm_dma_space *s, struct ram_section *r, uint64_t gpa, uint64_t size,
		     struct pvm_error *err)
{
	int rc = 0;

	if (identity(s)) {
		uint64_t off = gpa - r->gpa, g = r->gran, b, e, end;

		if (!r->dm)
			return pvm_dma_container_map(s->c, gpa, r->hva + off, size, err);
		end = (off + size) / g;
		for (b = pvm_bitmap_next_set(r->pop, off / g); b < end && !rc;
		     b = pvm_bitmap_next_set(r->pop, e)) {
			e = PVM_MIN(pvm_bitmap_next_clear(r->pop, b), end);
			for (uint64_t k = b; k < e && !rc; k++)
				rc = pvm_dma_container_map(s->c, r->gpa + k * g, r->hva + k * g, g, err);
		}
	} else {
		size_t n;
		const struct pvm_dma_entry *e = pvm_dma_viommu_entries(s->viommu, s->domain, &n);

		for (size_t i = 0; i < n && !rc; i++)
			if (intersects(e[i].gpa, e[i].size, gpa, size))
				rc = pvm_dma_space_entry_map(s, &e[i], err);
	}
	if (rc)
		unmap_range(s, r, gpa, size);
	return rc;
}

/* Map the whole view into an empty container; on failure leave it empty. */
static int map_view(struct pvm_dma_space *s, struct pvm_error *err)
{
	int rc = 0;

	if (identity(s)) {
		for (size_t i = 0; i < s->nram && !rc; i++)
			rc = map_range(s, s->ram[i], s->ram[i]->gpa, s->ram[i]->size, err);
	} else {
		size_t n;
		const struct pvm_dma_entry *e = pvm_dma_viommu_entries(s->viommu, s->domain, &n);

		for (size_t i = 0; i < n && !rc; i++)
			rc = pvm_dma_space_entry_map(s, &e[i], err);
	}
	if (rc)
		pvm_dma_container_unmap_all(s->c);
	return rc;
}

int pvm_dma_space_remap(struct pvm_dma_space *s, struct pvm_error *err)
{
	pvm_dma_container_unmap_all(s->c);
	if (!live(s))
		return 0;
	return map_view(s, err);
}

/* ---- the discard listener ------------------------------------------------------------------------ */

static int on_populate(void *opaque, uint64_t gpa, uint64_t size)
{
	struct ram_section *r = opaque;
	struct pvm_dma_space *s = r->s;
	struct pvm_error err = { 0 };
	uint64_t first = (gpa - r->gpa) / r->gran, n = size / r->gran;
	int rc;

	PVM_TRACE(dma_space_populate, "space=%s gpa=0x%llx size=0x%llx", s->name,
		  (unsigned long long)gpa, (unsigned long long)size);
	if (pvm_bitmap_set_range(r->pop, first, n))
		return -EINVAL;
	if (s->quiet)
		return 0;
	rc = map_range(s, r, gpa, size, &err);
	if (rc) {
		pvm_bitmap_clear_range(r->pop, first, n);
		PVM_TRACE(dma_space_populate_refused, "space=%s rc=%d %s", s->name, rc,
			  pvm_error_message(&err));
	}
	return rc;
}

static void on_discard(void *opaque, uint64_t gpa, uint64_t size)
{
	struct ram_section *r = opaque;
	struct pvm_dma_space *s = r->s;

	PVM_TRACE(dma_space_discard, "space=%s gpa=0x%llx size=0x%llx", s->name,
		  (unsigned long long)gpa, (unsigned long long)size);
	if (!s->quiet)
		unmap_range(s, r, gpa, size);
	pvm_bitmap_clear_range(r->pop, (gpa - r->gpa) / r->gran, size / r->gran);
}

static const struct pvm_discard_listener_ops listener_ops = {
	.populate = on_populate,
	.discard = on_discard,
};

/* Start following a sparse section: mirror bitmap + listener (replay fills the mirror only). */
static int follow(struct pvm_dma_space *s, struct ram_section *r, struct pvm_error *err)
{
	int rc = pvm_bitmap_new(r->size / r->gran, &r->pop);

	if (rc)
		return pvm_error_set(err, rc, "out of memory");
	s->quiet = true;
	rc = pvm_discard_manager_register(r->dm, r->gpa, r->size, &listener_ops, r, &r->listener, err);
	s->quiet = false;
	if (rc) {
		pvm_bitmap_free(r->pop);
		r->pop = NULL;
	}
	return rc;
}

/* Stop following (the caller unmaps). */
static void unfollow(struct pvm_dma_space *s, struct ram_section *r)
{
	s->quiet = true;
	pvm_discard_listener_unregister(r->listener);
	s->quiet = false;
	r->listener = NULL;
	pvm_bitmap_free(r->pop);
	r->pop = NULL;
}

/* ---- admission check ------------------------------------------------------------------------------ */

uint64_t pvm_dma_mappings_needed(const uint64_t *sizes, const uint64_t *granularities, size_t n,
				 uint32_t max_memslots)
{
	uint64_t total = max_memslots;

	for (size_t i = 0; i < n; i++) {
		uint64_t g = granularities[i] ? granularities[i] : 1;
		uint64_t blocks = sizes[i] / g + (sizes[i] % g != 0);

		if (pvm_add_overflow(total, blocks, &total))
			return UINT64_MAX;
	}
	return total > n ? total - n : 0;
}

/* Worst case for the sections (plus an extra sparse one of @xsize/@xgran when xsize != 0). */
static uint64_t needed(const struct pvm_dma_space *s, uint64_t xsize, uint64_t xgran)
{
	uint64_t total = s->ctx->cfg.max_memslots, nsparse = 0;

	for (size_t i = 0; i <= s->nram; i++) {
		uint64_t size = i < s->nram ? s->ram[i]->size : xsize;
		uint64_t g = i < s->nram ? s->ram[i]->gran : xgran;

		if (!size || !g || (i < s->nram && !s->ram[i]->dm))
			continue;
		nsparse++;
		if (pvm_add_overflow(total, PVM_DIV_ROUND_UP(size, g), &total))
			return UINT64_MAX;
	}
	return total > nsparse ? total - nsparse : 0;
}

static int admit(const struct pvm_dma_space *s, uint64_t xsize, uint64_t xgran,
		 struct pvm_error *err)
{
	struct pvm_dma_container_stats st;
	uint64_t need = needed(s, xsize, xgran);

	pvm_dma_container_stats(s->c, &st);
	if (need > st.max_mappings)
		return pvm_error_set(err, -ENOSPC,
				     "%s: possibly running out of DMA mappings: %llu needed (virtio-mem blocks "
				     "+ %u memslots), at most %u possible; use larger blocks",
				     s->name, (unsigned long long)need, s->ctx->cfg.max_memslots,
				     st.max_mappings);
	return 0;
}

/* ---- going live and back --------------------------------------------------------------------------- */

static void go_down(struct pvm_dma_space *s)
{
	for (size_t i = s->nram; i-- > 0;)
		if (s->ram[i]->listener)
			unfollow(s, s->ram[i]);
	pvm_dma_container_unmap_all(s->c);
}

static int go_live(struct pvm_dma_space *s, struct pvm_error *err)
{
	int rc = admit(s, 0, 0, err);

	for (size_t i = 0; i < s->nram && !rc; i++)
		if (s->ram[i]->dm)
			rc = follow(s, s->ram[i], err);
	if (!rc)
		rc = map_view(s, err);
	if (rc)
		go_down(s);
	return rc;
}

/* ---- lifecycle ------------------------------------------------------------------------------------ */

int pvm_dma_space_new(struct pvm_dma_ctx *ctx, const struct pvm_dma_space_config *cfg,
		      struct pvm_dma_space **out, struct pvm_error *err)
{
	struct pvm_dma_space *s;
	int rc;

	*out = NULL;
	if (!cfg)
		return pvm_error_set(err, -EINVAL, "no DMA space configuration");
	s = pvm_calloc(1, sizeof(*s));
	if (!s)
		return pvm_error_set(err, -ENOMEM, "out of memory");
	s->ctx = ctx;
	s->viommu = cfg->viommu;
	s->domain = cfg->domain;
	s->name = pvm_strdup(cfg->name ? cfg->name : "dma");
	if (!s->name) {
		rc = pvm_error_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	rc = pvm_dma_container_new(ctx, cfg->fd, &s->c, err);
	if (rc)
		goto fail;
	if (s->viommu && (rc = pvm_dma_viommu_add_space(s->viommu, s))) {
		pvm_error_set(err, rc, "out of memory");
		goto fail;
	}
	ctx->spaces++;
	*out = s;
	return 0;
fail:
	pvm_dma_container_free(s->c);
	pvm_free(s->name);
	pvm_free(s);
	return rc;
}

void pvm_dma_space_free(struct pvm_dma_space *s)
{
	if (!s)
		return;
	while (s->ndev)
		(void)pvm_dma_space_detach(s, s->dev[s->ndev - 1].name);
	if (s->viommu)
		pvm_dma_viommu_remove_space(s->viommu, s);
	for (size_t i = 0; i < s->nram; i++)
		pvm_free(s->ram[i]);
	pvm_free(s->ram);
	pvm_free(s->dev);
	pvm_dma_container_free(s->c);
	s->ctx->spaces--;
	pvm_free(s->name);
	pvm_free(s);
}

int pvm_dma_space_add_ram(struct pvm_dma_space *s, uint64_t gpa, uint64_t size, void *hva,
			  struct pvm_discard_manager *dm, struct pvm_error *err)
{
	uint64_t h = (uint64_t)(uintptr_t)hva, g = dm ? pvm_discard_manager_granularity(dm) : 0;
	struct ram_section *r, **nr;
	int rc = 0;

	if (!size || !PVM_IS_ALIGNED(gpa | size | h, PVM_DMA_PAGE_SIZE) ||
	    pvm_range_wraps(gpa, size) || pvm_range_wraps(h, size) || gpa + size == 0 ||
	    h + size == 0)
		return pvm_error_set(err, -EINVAL, "RAM 0x%llx+0x%llx is empty, unaligned or wraps",
				     (unsigned long long)gpa, (unsigned long long)size);
	if (dm) {
		uint64_t base = pvm_discard_manager_base(dm), msize = pvm_discard_manager_size(dm);

		if (!PVM_IS_ALIGNED(gpa | size, g) || gpa < base || gpa - base > msize ||
		    size > msize - (gpa - base))
			return pvm_error_set(err, -EINVAL,
					     "RAM 0x%llx+0x%llx is not an aligned part of its discard manager",
					     (unsigned long long)gpa, (unsigned long long)size);
	}
	for (size_t i = 0; i < s->nram; i++)
		if (intersects(s->ram[i]->gpa, s->ram[i]->size, gpa, size))
			return pvm_error_set(err, -EINVAL, "RAM 0x%llx+0x%llx overlaps a section",
					     (unsigned long long)gpa, (unsigned long long)size);
	if (live(s) && dm && (rc = admit(s, size, g, err)))
		return rc;
	nr = pvm_reallocarray(s->ram, s->nram + 1, sizeof(*nr));
	if (!nr)
		return pvm_error_set(err, -ENOMEM, "out of memory");
	s->ram = nr;
	r = pvm_calloc(1, sizeof(*r));
	if (!r)
		return pvm_error_set(err, -ENOMEM, "out of memory");
	*r = (struct ram_section){ .s = s, .gpa = gpa, .size = size, .hva = h, .dm = dm, .gran = g };
	if (live(s)) {
		if (dm)
			rc = follow(s, r, err);
		if (!rc) {
			s->ram[s->nram++] = r;    /* visible to resolve() for the domain view */
			rc = map_range(s, r, gpa, size, err);
			if (rc)
				s->nram--;
		}
		if (rc) {
			if (r->listener)
				unfollow(s, r);
			pvm_free(r);
			return rc;
		}
	} else {
		s->ram[s->nram++] = r;
	}
	PVM_TRACE(dma_space_add_ram, "space=%s gpa=0x%llx size=0x%llx sparse=%d", s->name,
		  (unsigned long long)gpa, (unsigned long long)size, dm != NULL);
	return 0;
}

int pvm_dma_space_remove_ram(struct pvm_dma_space *s, uint64_t gpa)
{
	size_t i;
	struct ram_section *r;

	for (i = 0; i < s->nram && s->ram[i]->gpa != gpa; i++)
		;
	if (i == s->nram)
		return -ENOENT;
	r = s->ram[i];
	if (live(s)) {
		if (r->listener)
			unfollow(s, r);
		unmap_range(s, r, r->gpa, r->size);   /* identity runs, or entries aimed here */
	}
	memmove(&s->ram[i], &s->ram[i + 1], (s->nram - i - 1) * sizeof(r));
	s->nram--;
	pvm_free(r);
	return 0;
}

/* ---- devices ------------------------------------------------------------------------------------- */

static bool vote_of(enum pvm_dma_device_kind kind, enum pvm_discard_vote *vote)
{
	switch (kind) {
	case PVM_DMA_DEVICE_VFIO:
		*vote = PVM_DISCARD_DISABLE_UNCOORDINATED;
		return true;
	case PVM_DMA_DEVICE_PIN_ALL:
		*vote = PVM_DISCARD_DISABLE;
		return true;
	case PVM_DMA_DEVICE_NO_PIN:
		break;
	}
	return false;
}

static struct dma_device *find_dev(const struct pvm_dma_space *s, const char *name, size_t *idx)
{
	for (size_t i = 0; i < s->ndev; i++) {
		if (!strcmp(s->dev[i].name, name)) {
			if (idx)
				*idx = i;
			return &s->dev[i];
		}
	}
	return NULL;
}

int pvm_dma_space_attach(struct pvm_dma_space *s, const char *name, enum pvm_dma_device_kind kind,
			 struct pvm_error *err)
{
	struct pvm_discard_policy *policy = s->ctx->cfg.policy;
	enum pvm_discard_vote vote;
	struct dma_device *nd;
	bool votes;
	char *copy;
	int rc;

	PVM_TRACE(dma_attach, "space=%s device=%s kind=%d", s->name, name ? name : "", (int)kind);
	if (!name || !*name || (unsigned)kind > PVM_DMA_DEVICE_NO_PIN)
		return pvm_error_set(err, -EINVAL, "bad device name or kind");
	if (find_dev(s, name, NULL))
		return pvm_error_set(err, -EEXIST, "device %s is already attached to %s", name, s->name);
	nd = pvm_reallocarray(s->dev, s->ndev + 1, sizeof(*nd));
	if (!nd)
		return pvm_error_set(err, -ENOMEM, "out of memory");
	s->dev = nd;
	copy = pvm_strdup(name);
	if (!copy)
		return pvm_error_set(err, -ENOMEM, "out of memory");
	/* The vote comes before anything can pin (QEMU 2018: "avoid gap that pinning may have
	 * occurred"), and is given back on every failure below. */
	votes = policy && vote_of(kind, &vote);
	if (votes && (rc = pvm_discard_policy_take(policy, vote, err))) {
		pvm_error_prefix(err, "%s", name);
		pvm_free(copy);
		return rc;
	}
	if (!live(s) && (rc = go_live(s, err))) {
		if (votes)
			(void)pvm_discard_policy_release(policy, vote);
		pvm_free(copy);
		return rc;
	}
	s->dev[s->ndev++] = (struct dma_device){ .name = copy, .kind = kind };
	return 0;
}

int pvm_dma_space_detach(struct pvm_dma_space *s, const char *name)
{
	struct pvm_discard_policy *policy = s->ctx->cfg.policy;
	struct dma_device d;
	enum pvm_discard_vote vote;
	size_t i;

	PVM_TRACE(dma_detach, "space=%s device=%s", s->name, name ? name : "");
	if (!name || !find_dev(s, name, &i))
		return -ENOENT;
	d = s->dev[i];
	memmove(&s->dev[i], &s->dev[i + 1], (s->ndev - i - 1) * sizeof(d));
	s->ndev--;
	if (!s->ndev)
		go_down(s);    /* unmapped (unpinned) before the vote goes */
	if (policy && vote_of(d.kind, &vote))
		(void)pvm_discard_policy_release(policy, vote);
	pvm_free(d.name);
	return 0;
}

int pvm_dma_space_set_domain(struct pvm_dma_space *s, uint32_t domain, struct pvm_error *err)
{
	uint32_t old = s->domain;
	int rc;

	PVM_TRACE(dma_set_domain, "space=%s domain=%u", s->name, domain);
	if (!s->viommu)
		return pvm_error_set(err, -EINVAL, "%s has no vIOMMU", s->name);
	if (domain == old)
		return 0;
	s->domain = domain;
	if (!live(s) || identity(s))
		return 0;
	rc = pvm_dma_space_remap(s, err);
	if (rc) {
		s->domain = old;
		if (pvm_dma_space_remap(s, NULL))
			pvm_warn("%s: cannot restore domain %u after a failed switch", s->name, old);
	}
	return rc;
}

void pvm_dma_space_stats(const struct pvm_dma_space *s, struct pvm_dma_space_stats *out)
{
	struct pvm_dma_container_stats cs;

	memset(out, 0, sizeof(*out));
	pvm_dma_container_stats(s->c, &cs);
	out->devices = (uint32_t)s->ndev;
	out->live = live(s);
	out->viommu = s->viommu != NULL;
	out->viommu_enabled = !identity(s);
	out->domain = s->domain;
	out->mappings = cs.mappings;
	out->mapped = cs.mapped;
	out->ram_sections = s->nram;
	out->needed_mappings = needed(s, 0, 0);
}

int pvm_dma_space_for_each_mapping(const struct pvm_dma_space *s, pvm_dma_mapping_fn fn, void *arg)
{
	return pvm_dma_container_for_each(s->c, fn, arg);
}

const char *pvm_dma_space_name(const struct pvm_dma_space *s)
{
	return s->name;
}

struct pvm_dma_container *pvm_dma_space_container(struct pvm_dma_space *s)
{
	return s->c;
}

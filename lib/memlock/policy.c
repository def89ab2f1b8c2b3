/* SPDX-License-Identifier: MIT */
/*
 * The memlock policy: libvirt's qemuDomainGetMemLockLimitBytes() (libvirt 10/11), computed as a
 * list of explained terms. A pure function of the domain, the options and the host facts passed
 * in. All arithmetic is in KiB, like libvirt's, and in 128 bits, so nothing wraps; the result is
 * then classified (see <pvmem/memlock.h> for the saturation rule).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <pvmem/memlock.h>

#include "memlock/domain-priv.h"

typedef unsigned __int128 u128;

#define TERMS_MAX 4200 /* one per device at most, plus a handful */

struct pvm_memlock_result {
	enum pvm_memlock_kind kind;     /* what to do */
	uint64_t bytes;                 /* the limit for BYTES */
	uint64_t libvirt;               /* libvirt's return value (saturating) */
	const char *rule;               /* static: which rule decided */
	enum pvm_arch arch;             /* the domain's arch */
	struct pvm_memlock_term *terms; /* explanation (name and why owned) */
	size_t n_terms;                 /* number of terms */
	char **warnings;                /* owned sentences */
	size_t n_warnings;              /* number of warnings */
};

void pvm_memlock_result_free(struct pvm_memlock_result *res)
{
	if (!res)
		return;
	for (size_t i = 0; i < res->n_terms; i++) {
		pvm_free((void *)res->terms[i].name);
		pvm_free((void *)res->terms[i].why);
	}
	for (size_t i = 0; i < res->n_warnings; i++)
		pvm_free(res->warnings[i]);
	pvm_free(res->terms);
	pvm_free(res->warnings);
	pvm_free(res);
}

/* Add a term of @kib KiB (u128: never wraps). Returns -ENOMEM. */
static int PVM_PRINTF(4, 5) term(struct pvm_memlock_result *r, const char *name, u128 kib,
				 const char *fmt, ...)
{
	struct pvm_memlock_term *t;
	char why[512];
	va_list ap;

	if (r->n_terms >= TERMS_MAX)
		return 0; /* cannot happen with the device cap; keep the sum, drop the line */
	t = pvm_reallocarray(r->terms, r->n_terms + 1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	r->terms = t;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	t = &r->terms[r->n_terms];
	t->name = pvm_strdup(name);
	t->why = pvm_strdup(why);
	if (!t->name || !t->why) {
		pvm_free((void *)t->name);
		pvm_free((void *)t->why);
		return -ENOMEM;
	}
	t->bytes = kib >= ((u128)1 << 54) ? PVM_MEMLOCK_INFINITY : (uint64_t)(kib << 10);
	r->n_terms++;
	return 0;
}

static int PVM_PRINTF(2, 3) warning(struct pvm_memlock_result *r, const char *fmt, ...)
{
	char **w, s[512];
	va_list ap;

	w = pvm_reallocarray(r->warnings, r->n_warnings + 1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	r->warnings = w;
	va_start(ap, fmt);
	vsnprintf(s, sizeof(s), fmt, ap);
	va_end(ap);
	w[r->n_warnings] = pvm_strdup(s);
	if (!w[r->n_warnings])
		return -ENOMEM;
	r->n_warnings++;
	return 0;
}

/* "4 GiB" for KiB values (shown as "> 16 EiB" past 64 bits). */
static const char *sz(char *buf, size_t len, u128 kib)
{
	if (kib >= ((u128)1 << 54)) {
		snprintf(buf, len, "more than 16 EiB");
		return buf;
	}
	return pvm_size_format((uint64_t)(kib << 10), buf, len);
}

struct counts {
	unsigned nvfio;   /* PCI + mdev hostdevs */
	unsigned npci;    /* PCI hostdevs only */
	unsigned nmdev;   /* mdev hostdevs */
	unsigned nnvme;   /* NVMe disks */
	unsigned nvdpa;   /* vDPA interfaces + vhost-vdpa disk chain elements */
	unsigned nvdpa_net; /* vDPA interfaces */
};

static void count(const struct pvm_domain *dom, struct counts *c)
{
	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < dom->n_pts; i++) {
		switch (dom->pts[i].kind) {
		case PVM_PT_PCI: c->nvfio++; c->npci++; break;
		case PVM_PT_MDEV: c->nvfio++; c->nmdev++; break;
		case PVM_PT_NVME: c->nnvme++; break;
		case PVM_PT_VDPA_NET: c->nvdpa++; c->nvdpa_net++; break;
		case PVM_PT_VDPA_DISK: c->nvdpa++; break;
		}
	}
}

/* getPPC64MemLockLimitBytes(). Returns the total in KiB via *@total. */
static int ppc64(struct pvm_memlock_result *r, const struct pvm_domain *dom, bool explain, u128 *total)
{
	const u128 mem = dom->memory_kib, maxmem = dom->max_kib ? dom->max_kib : dom->memory_kib;
	const unsigned nphb = dom->phb_count;
	struct counts c;
	char a[32], b[32];
	u128 base, pt = 0;
	int rc = 0;

	count(dom, &c);
	base = maxmem / 128 + (u128)4096 * nphb + 8192;
	if (explain) {
		rc |= term(r, "ppc64-hpt", maxmem / 128,
			   "hash page table: 1/128 of %s%s", sz(a, sizeof(a), maxmem),
			   dom->max_kib ? " (<maxMemory>)" : " (<memory>)");
		rc |= term(r, "ppc64-tce-32bit", (u128)4096 * nphb,
			   "4 MiB of TCE tables per PHB for the 32-bit DMA window, %u PHB%s", nphb,
			   nphb == 1 ? "" : "s");
		rc |= term(r, "ppc64-tce-index", 8192,
			   "8 MiB for the TCE table index and spapr-vlan/spapr-vscsi devices");
	}
	if (dom->nvlink2) {
		pt = maxmem + (u128)268435456 * nphb + 8192;
		if (explain) {
			rc |= term(r, "ppc64-nvlink2-ram", maxmem,
				   "NVLink2 GPU present: guest RAM (%s) pinned for the DMA window",
				   sz(a, sizeof(a), maxmem));
			rc |= term(r, "ppc64-nvlink2-tce", (u128)268435456 * nphb,
				   "TCE tables for a 128 TiB DMA window (GPU RAM above 64 TiB), 256 GiB per PHB x %u",
				   nphb);
			rc |= term(r, "ppc64-nvlink2-extra", 8192, "8 MiB for further TCE levels");
		}
	} else if (c.nvfio || c.nnvme || c.nvdpa_net) {
		u128 pre = (u128)2097152 * nphb, ddw = mem + (mem / 512) * nphb + 8192;

		pt = pre > ddw ? pre : ddw;
		if (explain && pre > ddw) {
			rc |= term(r, "ppc64-dma-32bit", pre,
				   "passthrough without DDW: 2 GiB per PHB x %u (larger than the DDW figure %s)",
				   nphb, sz(b, sizeof(b), ddw));
		} else if (explain) {
			rc |= term(r, "ppc64-ddw-ram", mem,
				   "passthrough with a 64-bit DDW window: guest RAM (%s) pinned once, "
				   "whatever the number of devices", sz(a, sizeof(a), mem));
			rc |= term(r, "ppc64-ddw-tce", (mem / 512) * nphb,
				   "4 KiB-page TCEs for that window: RAM/512 per PHB x %u", nphb);
			rc |= term(r, "ppc64-ddw-extra", 8192, "8 MiB for further TCE levels");
		}
	}
	*total = base + pt;
	return rc ? -ENOMEM : 0;
}

/* The generic (x86, aarch64, s390x, TCG ...) formula. Returns the total in KiB (0: none). */
static int generic(struct pvm_memlock_result *r, const struct pvm_domain *dom,
		   const struct pvm_memlock_options *o, bool explain, u128 *total)
{
	const u128 mem = dom->memory_kib;
	struct counts c;
	char a[32];
	u128 factor;
	int rc = 0;

	count(dom, &c);
	*total = 0;
	if (!c.nvfio && !c.nnvme && !c.nvdpa)
		return 0;
	factor = (u128)c.nvdpa + c.nnvme + (c.nvfio ? (dom->n_iommus ? c.nvfio : 1) : 0);
	*total = factor * mem + 1024 * 1024;
	if (!explain)
		return 0;
	sz(a, sizeof(a), mem);
	if (c.nvfio && dom->n_iommus) {
		for (size_t i = 0; i < dom->n_pts; i++) {
			const struct pvm_domain_pt *p = &dom->pts[i];
			char name[96];

			if (p->kind != PVM_PT_PCI && p->kind != PVM_PT_MDEV)
				continue;
			snprintf(name, sizeof(name), "vfio:%.80s", p->id);
			rc |= term(r, name, mem,
				   "%s %s: the vIOMMU gives each device its own address space and VFIO "
				   "container, and each container pins and counts all guest RAM (%s)",
				   p->kind == PVM_PT_MDEV ? "mdev" : "VFIO device", p->id, a);
		}
	} else if (c.nvfio) {
		rc |= term(r, "vfio", mem,
			   "%u VFIO device%s (%u PCI, %u mdev) without a vIOMMU share one container: "
			   "guest RAM (%s) is pinned and counted once", c.nvfio, c.nvfio == 1 ? "" : "s",
			   c.npci, c.nmdev, a);
	}
	for (size_t i = 0; i < dom->n_pts; i++) {
		const struct pvm_domain_pt *p = &dom->pts[i];
		char name[96];

		if (p->kind == PVM_PT_NVME) {
			snprintf(name, sizeof(name), "nvme:%.80s", p->id);
			rc |= term(r, name, mem,
				   "NVMe disk %s (%s): QEMU's userspace NVMe driver maps all guest RAM (%s) "
				   "in a VFIO container of its own", p->id, p->source ? p->source : "?", a);
		} else if (p->kind == PVM_PT_VDPA_NET || p->kind == PVM_PT_VDPA_DISK) {
			snprintf(name, sizeof(name), "vdpa:%.80s", p->id);
			rc |= term(r, name, mem,
				   "vDPA %s %s: vhost-vdpa pins all guest RAM (%s) for the device's DMA",
				   p->kind == PVM_PT_VDPA_NET ? "interface" : "disk", p->id, a);
		}
	}
	rc |= term(r, "mmio-slack", 1024 * 1024,
		   "libvirt's fixed 1 GiB for emulated-device memory that QEMU maps for DMA "
		   "(historically the x86 MMIO hole)");
	if (o->model == PVM_MEMLOCK_MODEL_IOMMUFD && c.npci) {
		/* iommufd charges VM_PFNMAP (BAR) mappings, type1 skips them as reserved pages.
		 * Without a vIOMMU every BAR is mapped once into the shared IOAS (peer-to-peer);
		 * with one, each device's IOAS may map every BAR. */
		unsigned ioas = dom->n_iommus ? c.npci : 1;
		u128 bars = 0;

		for (size_t i = 0; i < dom->n_pts; i++) {
			const struct pvm_domain_pt *p = &dom->pts[i];

			if (p->kind != PVM_PT_PCI)
				continue;
			bars += p->host_bar_bytes / 1024 + (p->host_bar_bytes % 1024 != 0);
			if (!p->host_bar_bytes)
				rc |= warning(r, "iommufd: the BAR size of %s is unknown (device %s not found "
					      "on this host), so the figure may be too low",
					      p->id, p->source ? p->source : "without a source address");
		}
		*total += bars * ioas;
		rc |= term(r, "iommufd-bars", bars * ioas,
			   "iommufd charges device BARs mapped for peer-to-peer DMA (type1 does not): "
			   "%s x %u IOAS%s", sz(a, sizeof(a), bars), ioas, ioas == 1 ? "" : "es");
	}
	return rc ? -ENOMEM : 0;
}

/* Device need ignoring hard_limit and locked, for the "hard_limit below need" warning. */
static u128 device_need(const struct pvm_domain *dom, const struct pvm_memlock_options *o)
{
	struct pvm_memlock_result scratch = { 0 };
	u128 total = 0;

	if ((dom->arch == PVM_ARCH_PPC64 || dom->arch == PVM_ARCH_PPC64LE) && dom->virt == PVM_DOMAIN_VIRT_KVM)
		ppc64(&scratch, dom, false, &total);
	else
		generic(&scratch, dom, o, false, &total);
	return total;
}

static int host_warnings(struct pvm_memlock_result *r, const struct pvm_memlock_host *h)
{
	char a[32], b[32];
	int rc = 0;

	if (!h || r->kind != PVM_MEMLOCK_BYTES)
		return 0;
	if (h->ram_bytes && r->bytes > h->ram_bytes)
		rc |= warning(r, "the limit (%s) exceeds the host's RAM (%s): it cannot all be locked",
			      pvm_size_format(r->bytes, a, sizeof(a)), pvm_size_format(h->ram_bytes, b, sizeof(b)));
	if (h->cgroup_max_bytes && r->bytes > h->cgroup_max_bytes)
		rc |= warning(r, "the limit (%s) exceeds memory.max of cgroup %s (%s): locking that much "
			      "would end in the OOM killer", pvm_size_format(r->bytes, a, sizeof(a)),
			      h->cgroup_path[0] ? h->cgroup_path : "?",
			      pvm_size_format(h->cgroup_max_bytes, b, sizeof(b)));
	return rc ? -ENOMEM : 0;
}

static int decide(struct pvm_memlock_result *r, const struct pvm_domain *dom,
		  const struct pvm_memlock_options *o)
{
	char a[32], b[32];
	u128 kib = 0;
	int rc;

	if (dom->hard_limit_kib < PVM_DOMAIN_KIB_UNLIMITED) {
		u128 need = device_need(dom, o);

		r->rule = "hard_limit";
		kib = dom->hard_limit_kib;
		if ((rc = term(r, "hard_limit", kib, "<memtune><hard_limit> overrides every other rule "
			       "(it is also the cgroup's memory limit)")) < 0)
			return rc;
		if (need > kib && (rc = warning(r, "hard_limit (%s) is below the %s the devices need: "
						"DMA mappings may fail with ENOMEM", sz(a, sizeof(a), kib),
						sz(b, sizeof(b), need))) < 0)
			return rc;
	} else if (dom->locked) {
		r->rule = "locked";
		r->kind = PVM_MEMLOCK_UNLIMITED;
		r->bytes = PVM_MEMLOCK_INFINITY;
		r->libvirt = PVM_MEMLOCK_LIBVIRT_UNLIMITED;
		return term(r, "locked", (u128)1 << 60,
			    "<memoryBacking><locked/>: QEMU locks all of its memory and no bound is known, "
			    "so the limit is removed");
	} else if ((dom->arch == PVM_ARCH_PPC64 || dom->arch == PVM_ARCH_PPC64LE) &&
		   dom->virt == PVM_DOMAIN_VIRT_KVM) {
		r->rule = "ppc64";
		if ((rc = ppc64(r, dom, true, &kib)) < 0)
			return rc;
	} else {
		r->rule = "passthrough";
		if ((rc = generic(r, dom, o, true, &kib)) < 0)
			return rc;
		if (!kib) {
			r->rule = "none";
			r->kind = PVM_MEMLOCK_NONE;
			return 0;
		}
	}
	/* libvirt returns kib << 10 (wrapping in 64 bits; we saturate). */
	r->libvirt = kib >= ((u128)1 << 54) ? UINT64_MAX : (uint64_t)(kib << 10);
	if (o->model == PVM_MEMLOCK_MODEL_IOMMUFD && r->libvirt != UINT64_MAX) {
		/* The libvirt figure excludes the iommufd BAR term. */
		for (size_t i = 0; i < r->n_terms; i++)
			if (!strcmp(r->terms[i].name, "iommufd-bars"))
				r->libvirt -= PVM_MIN(r->libvirt, r->terms[i].bytes);
	}
	if (kib << 10 >= PVM_MEMLOCK_LIBVIRT_UNLIMITED) {
		r->kind = PVM_MEMLOCK_UNLIMITED;
		r->bytes = PVM_MEMLOCK_INFINITY;
		return warning(r, "the computed limit (%s) reaches 2^53 - 1 bytes, where libvirt applies "
			       "RLIM_INFINITY: saturated to unlimited", sz(a, sizeof(a), kib));
	}
	r->kind = PVM_MEMLOCK_BYTES;
	r->bytes = (uint64_t)(kib << 10);
	return 0;
}

int pvm_memlock_compute(const struct pvm_domain *dom, const struct pvm_memlock_options *opts,
			struct pvm_memlock_result **out, struct pvm_error *err)
{
	static const struct pvm_memlock_options defaults;
	const struct pvm_memlock_options *o = opts ? opts : &defaults;
	struct pvm_memlock_result *r;
	int rc;

	if (!dom || !out)
		return pvm_error_set(err, -EINVAL, "no domain given");
	if (o->model != PVM_MEMLOCK_MODEL_TYPE1 && o->model != PVM_MEMLOCK_MODEL_IOMMUFD)
		return pvm_error_set(err, -EINVAL, "unknown accounting model %d", (int)o->model);
	PVM_TRACE(memlock_compute, "arch=%s model=%d pts=%zu", pvm_arch_name(dom->arch), (int)o->model,
		  dom->n_pts);
	if (!(r = pvm_calloc(1, sizeof(*r))))
		return pvm_error_set(err, -ENOMEM, "out of memory");
	r->arch = dom->arch;
	rc = decide(r, dom, o);
	if (rc == 0)
		rc = host_warnings(r, o->host);
	if (rc < 0) {
		pvm_memlock_result_free(r);
		return pvm_error_set(err, rc, "out of memory");
	}
	PVM_TRACE(memlock_compute_done, "rule=%s kind=%d bytes=0x%llx", r->rule, (int)r->kind,
		  (unsigned long long)r->bytes);
	*out = r;
	return 0;
}

enum pvm_memlock_kind pvm_memlock_result_kind(const struct pvm_memlock_result *r) { return r->kind; }
uint64_t pvm_memlock_result_bytes(const struct pvm_memlock_result *r) { return r->bytes; }
uint64_t pvm_memlock_result_libvirt(const struct pvm_memlock_result *r) { return r->libvirt; }
const char *pvm_memlock_result_rule(const struct pvm_memlock_result *r) { return r->rule; }
size_t pvm_memlock_result_term_count(const struct pvm_memlock_result *r) { return r->n_terms; }
size_t pvm_memlock_result_warning_count(const struct pvm_memlock_result *r) { return r->n_warnings; }
const char *pvm_memlock_result_arch(const struct pvm_memlock_result *r) { return pvm_arch_name(r->arch); }

const struct pvm_memlock_term *pvm_memlock_result_term(const struct pvm_memlock_result *r, size_t i)
{
	return i < r->n_terms ? &r->terms[i] : NULL;
}

const char *pvm_memlock_result_warning(const struct pvm_memlock_result *r, size_t i)
{
	return i < r->n_warnings ? r->warnings[i] : NULL;
}

/* SPDX-License-Identifier: MIT */
/*
 * libvirt domain XML -> struct pvm_domain.
 *
 * Only what memory management needs is read; everything else is ignored, as libvirt would ignore
 * an element it does not use for the decision. Every number is checked before use: malformed
 * input gets -EINVAL with a message that names the element and the problem, never a crash.
 * Sizes follow libvirt's rules exactly (virScaleInteger + virDomainParseMemory): a decimal
 * integer, a case-insensitive unit (default KiB), scaled with an overflow check against
 * libvirt's maximum, then rounded UP to whole KiB.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "memlock/domain-priv.h"

/* ---- small libxml2 helpers ---------------------------------------------------------------- */

static bool is_el(const xmlNode *n, const char *name)
{
	return n && n->type == XML_ELEMENT_NODE && !strcmp((const char *)n->name, name);
}

/* First child element called @name, or NULL. */
static xmlNode *child(const xmlNode *n, const char *name)
{
	if (!n)
		return NULL;
	for (xmlNode *c = n->children; c; c = c->next)
		if (is_el(c, name))
			return c;
	return NULL;
}

/* An attribute's value, pointing into the document (NULL when absent). */
static const char *attr(const xmlNode *n, const char *name)
{
	if (!n)
		return NULL;
	for (xmlAttr *a = n->properties; a; a = a->next) {
		if (a->ns || strcmp((const char *)a->name, name))
			continue;
		if (a->children && a->children->type == XML_TEXT_NODE && !a->children->next)
			return (const char *)a->children->content;
		return "";
	}
	return NULL;
}

/* The text of an element (first text child), NULL when it has none. */
static const char *text(const xmlNode *n)
{
	if (!n)
		return NULL;
	for (xmlNode *c = n->children; c; c = c->next)
		if (c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE)
			return (const char *)c->content;
	return NULL;
}

static bool attr_is(const xmlNode *n, const char *name, const char *value)
{
	const char *v = attr(n, name);
	return v && !strcmp(v, value);
}

/* ---- numbers ------------------------------------------------------------------------------- */

/* A decimal unsigned integer with optional surrounding blanks. */
static int parse_u64(const char *s, uint64_t *out, const char *what, struct pvm_error *err)
{
	uint64_t v = 0;
	const char *p = s;

	if (!s)
		return pvm_error_set(err, -EINVAL, "%s: missing value", what);
	while (isspace((unsigned char)*p))
		p++;
	if (*p == '-')
		return pvm_error_set(err, -EINVAL, "%s: '%.40s' is negative", what, s);
	if (*p == '+')
		p++;
	if (!isdigit((unsigned char)*p))
		return pvm_error_set(err, -EINVAL, "%s: '%.40s' is not a number", what, s);
	for (; isdigit((unsigned char)*p); p++)
		if (pvm_mul_overflow(v, 10, &v) || pvm_add_overflow(v, (uint64_t)(*p - '0'), &v))
			return pvm_error_set(err, -EINVAL, "%s: '%.40s' is too large", what, s);
	while (isspace((unsigned char)*p))
		p++;
	if (*p)
		return pvm_error_set(err, -EINVAL, "%s: '%.40s' is not a number", what, s);
	*out = v;
	return 0;
}

/* An unsigned integer in any base strtoull knows ("0x1f", "31", "037"), as libvirt reads PCI
 * address parts and virtio-mem base addresses. */
static int parse_u64_any(const char *s, uint64_t *out, const char *what, struct pvm_error *err)
{
	unsigned long long v;
	char *end;
	const char *p = s;

	if (!s)
		return pvm_error_set(err, -EINVAL, "%s: missing value", what);
	while (isspace((unsigned char)*p))
		p++;
	if (*p == '-' || !isdigit((unsigned char)*p))
		return pvm_error_set(err, -EINVAL, "%s: '%.40s' is not a valid number", what, s);
	errno = 0;
	v = strtoull(p, &end, 0);
	if (errno == ERANGE)
		return pvm_error_set(err, -EINVAL, "%s: '%.40s' is too large", what, s);
	while (isspace((unsigned char)*end))
		end++;
	if (end == p || *end)
		return pvm_error_set(err, -EINVAL, "%s: '%.40s' is not a valid number", what, s);
	*out = v;
	return 0;
}

/* virScaleInteger(): the multiplier of @unit (NULL/"" -> @def_scale). */
static int unit_scale(const char *unit, uint64_t def_scale, uint64_t *scale, const char *what,
		      struct pvm_error *err)
{
	uint64_t base, s = 1;
	int power;

	if (!unit || !*unit) {
		*scale = def_scale;
		return 0;
	}
	if (!strcasecmp(unit, "b") || !strcasecmp(unit, "byte") || !strcasecmp(unit, "bytes")) {
		*scale = 1;
		return 0;
	}
	if (!unit[1] || !strcasecmp(unit + 1, "iB"))
		base = 1024;
	else if (tolower((unsigned char)unit[1]) == 'b' && !unit[2])
		base = 1000;
	else
		goto bad;
	switch (tolower((unsigned char)unit[0])) {
	case 'k': power = 1; break;
	case 'm': power = 2; break;
	case 'g': power = 3; break;
	case 't': power = 4; break;
	case 'p': power = 5; break;
	case 'e': power = 6; break;
	default: goto bad;
	}
	while (power--)
		s *= base;
	*scale = s;
	return 0;
bad:
	return pvm_error_set(err, -EINVAL,
			     "%s: unknown unit '%.20s' (use b, KiB, MiB, GiB, TiB, PiB, EiB, k..e, KB..EB)",
			     what, unit);
}

/* A scaled value in bytes, at most @max_bytes. */
static int parse_scaled(const char *value, const char *unit, uint64_t def_scale, uint64_t max_bytes,
			uint64_t *bytes, const char *what, struct pvm_error *err)
{
	uint64_t v, scale = 1;
	int rc;

	if ((rc = parse_u64(value, &v, what, err)) < 0)
		return rc;
	if ((rc = unit_scale(unit, def_scale, &scale, what, err)) < 0)
		return rc;
	if (v && v > max_bytes / scale)
		return pvm_error_set(err, -EINVAL, "%s: %.40s %s is too large (at most %llu bytes)", what,
				     value, unit ? unit : "KiB", (unsigned long long)max_bytes);
	*bytes = v * scale;
	return 0;
}

/* virDomainParseMemory(): element text + unit attribute -> KiB (rounded up), < 2^53 KiB. */
static int parse_memory_el(const xmlNode *n, uint64_t *kib, const char *what, struct pvm_error *err)
{
	uint64_t bytes;
	int rc = parse_scaled(text(n), attr(n, "unit"), 1024, (uint64_t)LLONG_MAX, &bytes, what, err);

	if (rc < 0)
		return rc;
	*kib = PVM_DIV_ROUND_UP(bytes, 1024);
	if (*kib >= PVM_DIV_ROUND_UP((uint64_t)LLONG_MAX, 1024))
		return pvm_error_set(err, -EINVAL, "%s: size value too large", what);
	return 0;
}

/* ---- the document ------------------------------------------------------------------------- */

int pvm_domain_read_xml(const char *xml, size_t len, void **doc_out, struct pvm_error *err)
{
	xmlParserCtxtPtr ctxt;
	xmlDocPtr doc;

	if (len > PVM_DOMAIN_XML_MAX)
		return pvm_error_set(err, -EFBIG, "domain XML is larger than %u bytes", PVM_DOMAIN_XML_MAX);
	ctxt = xmlNewParserCtxt();
	if (!ctxt)
		return pvm_error_set(err, -ENOMEM, "out of memory");
	/* No network, no entity substitution, no DTD loading; errors are collected, not printed. */
	doc = xmlCtxtReadMemory(ctxt, xml, (int)len, "domain.xml", NULL,
				XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	if (!doc) {
		const xmlError *e = xmlCtxtGetLastError(ctxt);
		char msg[160] = "not well-formed";

		if (e && e->message) {
			snprintf(msg, sizeof(msg), "%s", e->message);
			msg[strcspn(msg, "\n")] = '\0';
		}
		pvm_error_set(err, -EINVAL, "malformed XML (line %d): %s", e ? e->line : 0, msg);
		xmlFreeParserCtxt(ctxt);
		return -EINVAL;
	}
	xmlFreeParserCtxt(ctxt);
	*doc_out = doc;
	return 0;
}

/* ---- devices ------------------------------------------------------------------------------- */

/* Grow an array by one element (zeroed); NULL on failure. */
static void *grow(void *arr, size_t *n, size_t size)
{
	char *p;

	if (*n >= PVM_DOMAIN_MAX_DEVICES)
		return NULL;
	p = pvm_reallocarray(arr, *n + 1, size);
	if (!p)
		return NULL;
	memset(p + *n * size, 0, size);
	return p;
}

static int dup_opt(const char *s, const char **out)
{
	if (!s) {
		*out = NULL;
		return 0;
	}
	*out = pvm_strdup(s);
	return *out ? 0 : -ENOMEM;
}

/* A guest or host PCI address "dddd:bb:ss.f" from <address domain bus slot function>. */
static int pci_addr(const xmlNode *a, char *buf, size_t len, unsigned *bus_out, const char *what,
		    struct pvm_error *err)
{
	uint64_t d = 0, b = 0, s = 0, f = 0;
	int rc;

	if (attr(a, "domain") && (rc = parse_u64_any(attr(a, "domain"), &d, what, err)) < 0)
		return rc;
	if (attr(a, "bus") && (rc = parse_u64_any(attr(a, "bus"), &b, what, err)) < 0)
		return rc;
	if (attr(a, "slot") && (rc = parse_u64_any(attr(a, "slot"), &s, what, err)) < 0)
		return rc;
	if (attr(a, "function") && (rc = parse_u64_any(attr(a, "function"), &f, what, err)) < 0)
		return rc;
	if (d > 0xffffffffULL || b > 0xff || s > 0x1f || f > 7)
		return pvm_error_set(err, -EINVAL, "%s: PCI address out of range", what);
	if (buf)
		snprintf(buf, len, "%04llx:%02llx:%02llx.%llx", (unsigned long long)d,
			 (unsigned long long)b, (unsigned long long)s, (unsigned long long)f);
	if (bus_out)
		*bus_out = (unsigned)b;
	return 0;
}

/* Remember the guest PCI bus named by a device's own <address type='pci'>. */
static int note_guest_bus(struct pvm_domain *dom, const xmlNode *dev, bool *has, unsigned *bus,
			  struct pvm_error *err)
{
	const xmlNode *a = child(dev, "address");
	unsigned b;
	unsigned *nb;
	int rc;

	if (has)
		*has = false;
	if (!a || !attr_is(a, "type", "pci"))
		return 0;
	if ((rc = pci_addr(a, NULL, 0, &b, "<address type='pci'>", err)) < 0)
		return rc;
	if (has) {
		*has = true;
		*bus = b;
	}
	for (size_t i = 0; i < dom->n_pci_buses; i++)
		if (dom->pci_buses[i] == b)
			return 0;
	if (!(nb = grow(dom->pci_buses, &dom->n_pci_buses, sizeof(*nb))))
		return pvm_error_set(err, -ENOMEM, "out of memory");
	dom->pci_buses = nb;
	nb[dom->n_pci_buses++] = b;
	return 0;
}

/* The alias, or "<prefix><n>" as libvirt would name the device. */
static char *make_id(const char *alias, const char *prefix, unsigned n)
{
	return alias ? pvm_strdup(alias) : pvm_asprintf("%s%u", prefix, n);
}

/* Append a pass-through device whose fields are in @pt (strings not yet owned: copied). */
static int add_pt(struct pvm_domain *dom, const struct pvm_domain_pt *pt, const char **id_out,
		  struct pvm_error *err)
{
	struct pvm_domain_pt *arr, *p;

	if (dom->n_pts >= PVM_DOMAIN_MAX_DEVICES)
		return pvm_error_set(err, -EINVAL, "<devices>: more than %d pass-through devices",
				     PVM_DOMAIN_MAX_DEVICES);
	if (!(arr = grow(dom->pts, &dom->n_pts, sizeof(*arr))))
		return pvm_error_set(err, -ENOMEM, "out of memory");
	dom->pts = arr;
	p = &arr[dom->n_pts];
	*p = *pt;
	p->alias = p->id = p->source = p->driver = NULL;
	if (dup_opt(pt->alias, &p->alias) || dup_opt(pt->id, &p->id) || dup_opt(pt->source, &p->source) ||
	    dup_opt(pt->driver, &p->driver)) {
		pvm_domain_pt_clear(p);
		return pvm_error_set(err, -ENOMEM, "out of memory");
	}
	dom->n_pts++;
	if (id_out)
		*id_out = p->id;
	return 0;
}

static int add_pt_id(struct pvm_domain *dom, struct pvm_domain_pt *pt, const char *prefix, unsigned n,
		     const char **id_out, struct pvm_error *err)
{
	char *id = make_id(pt->alias, prefix, n);
	int rc;

	if (!id)
		return pvm_error_set(err, -ENOMEM, "out of memory");
	pt->id = id;
	rc = add_pt(dom, pt, id_out, err);
	pvm_free(id);
	return rc;
}

static int parse_hostdev(struct pvm_domain *dom, const xmlNode *n, const char **id_out,
			 struct pvm_error *err)
{
	const char *mode = attr(n, "mode"), *type = attr(n, "type");
	const xmlNode *src = child(n, "source"), *drv = child(n, "driver");
	struct pvm_domain_pt pt = { .host_iommu_group = -1 };
	char addr[32];
	unsigned idx = dom->next_hostdev++;
	int rc;

	if (mode && strcmp(mode, "subsystem"))
		return 0; /* mode='capabilities' (LXC): pins nothing */
	if (!type)
		return pvm_error_set(err, -EINVAL, "<hostdev>: missing type attribute");
	pt.alias = attr(child(n, "alias"), "name");
	if (!strcmp(type, "pci")) {
		pt.kind = PVM_PT_PCI;
		if (child(src, "address")) {
			if ((rc = pci_addr(child(src, "address"), addr, sizeof(addr), NULL,
					   "<hostdev type='pci'><source><address>", err)) < 0)
				return rc;
			pt.source = addr;
		}
		pt.driver = attr(drv, "name");
		pt.iommufd = attr_is(drv, "iommufd", "yes");
	} else if (!strcmp(type, "mdev")) {
		pt.kind = PVM_PT_MDEV;
		pt.source = attr(child(src, "address"), "uuid");
	} else {
		return 0; /* usb, scsi, scsi_host: not VFIO */
	}
	if ((rc = note_guest_bus(dom, n, &pt.has_guest_address, &pt.guest_bus, err)) < 0)
		return rc;
	return add_pt_id(dom, &pt, "hostdev", idx, id_out, err);
}

static int parse_interface(struct pvm_domain *dom, const xmlNode *n, const char **id_out,
			   struct pvm_error *err)
{
	const char *type = attr(n, "type");
	const xmlNode *actual = child(n, "actual"), *src = child(n, "source");
	struct pvm_domain_pt pt = { .host_iommu_group = -1 };
	unsigned idx = dom->next_net++;
	char addr[32];
	int rc;

	if (!type)
		return pvm_error_set(err, -EINVAL, "<interface>: missing type attribute");
	/* The live XML of a type='network' interface says what it really is in <actual>. */
	if (!strcmp(type, "network") && actual && attr(actual, "type")) {
		type = attr(actual, "type");
		src = child(actual, "source");
	}
	pt.alias = attr(child(n, "alias"), "name");
	if (!strcmp(type, "vdpa")) {
		pt.kind = PVM_PT_VDPA_NET;
		pt.source = attr(src, "dev");
	} else if (!strcmp(type, "hostdev")) {
		/* libvirt also lists it among the hostdevs: a PCI VFIO device. */
		pt.kind = PVM_PT_PCI;
		if (child(src, "address")) {
			if ((rc = pci_addr(child(src, "address"), addr, sizeof(addr), NULL,
					   "<interface type='hostdev'><source><address>", err)) < 0)
				return rc;
			pt.source = addr;
		}
		pt.driver = attr(child(n, "driver"), "name");
	} else {
		return note_guest_bus(dom, n, NULL, NULL, err);
	}
	if ((rc = note_guest_bus(dom, n, &pt.has_guest_address, &pt.guest_bus, err)) < 0)
		return rc;
	return add_pt_id(dom, &pt, "net", idx, id_out, err);
}

static int parse_disk(struct pvm_domain *dom, const xmlNode *n, const char **id_out,
		      struct pvm_error *err)
{
	const char *target = attr(child(n, "target"), "dev");
	const char *alias = attr(child(n, "alias"), "name");
	const char *id = alias ? alias : target ? target : "disk";
	bool nvme_done = false;
	unsigned depth = 0, nvdpa = 0;
	int rc;

	if ((rc = note_guest_bus(dom, n, NULL, NULL, err)) < 0)
		return rc;
	/* The disk itself, then its <backingStore> chain. */
	for (const xmlNode *s = n; s; s = child(s, "backingStore"), depth++) {
		const char *type = attr(s, "type");
		const xmlNode *src = child(s, "source");
		struct pvm_domain_pt pt = { .host_iommu_group = -1, .alias = alias };
		char addr[32], idbuf[96];

		if (depth > PVM_DOMAIN_MAX_CHAIN)
			return pvm_error_set(err, -EINVAL, "<disk>: backing chain deeper than %d",
					     PVM_DOMAIN_MAX_CHAIN);
		if (!type)
			continue;
		if (!strcmp(type, "nvme") && !nvme_done) {
			/* One NVMe disk counts once, wherever NVMe appears in its chain. */
			uint64_t ns = 0;

			pt.kind = PVM_PT_NVME;
			if (child(src, "address")) {
				if ((rc = pci_addr(child(src, "address"), addr, sizeof(addr), NULL,
						   "<disk type='nvme'><source><address>", err)) < 0)
					return rc;
				pt.source = addr;
			}
			if (attr(src, "namespace") &&
			    (rc = parse_u64_any(attr(src, "namespace"), &ns,
						"<disk type='nvme'><source namespace>", err)) < 0)
				return rc;
			if (ns > UINT_MAX)
				return pvm_error_set(err, -EINVAL, "<disk type='nvme'>: namespace too large");
			pt.nvme_namespace = (unsigned)ns;
			pt.id = id;
			if ((rc = add_pt(dom, &pt, id_out, err)) < 0)
				return rc;
			nvme_done = true;
		} else if (!strcmp(type, "vhostvdpa")) {
			pt.kind = PVM_PT_VDPA_DISK;
			pt.source = attr(src, "dev");
			if (nvdpa)
				snprintf(idbuf, sizeof(idbuf), "%.80s#%u", id, nvdpa);
			else
				snprintf(idbuf, sizeof(idbuf), "%.80s", id);
			nvdpa++;
			pt.id = idbuf;
			if ((rc = add_pt(dom, &pt, id_out, err)) < 0)
				return rc;
		}
	}
	return 0;
}

static const char *const memdev_models[] = { "dimm", "nvdimm", "virtio-mem", "virtio-pmem", "sgx-epc" };
static const char *const memdev_prefix[] = { "dimm", "nvdimm", "virtiomem", "virtiopmem", "epc" };

static int parse_memdev(struct pvm_domain *dom, const xmlNode *n, bool attach, const char **id_out,
			struct pvm_error *err)
{
	const char *model = attr(n, "model");
	const xmlNode *tgt = child(n, "target"), *a;
	struct pvm_domain_memdev m = { .node = -1 };
	struct pvm_domain_memdev *arr;
	uint64_t kib, v;
	int rc, mi = -1;

	if (!model)
		return pvm_error_set(err, -EINVAL, "<memory> device: missing model attribute");
	for (int i = 0; i < (int)PVM_ARRAY_SIZE(memdev_models); i++)
		if (!strcmp(model, memdev_models[i]))
			mi = i;
	if (mi < 0)
		return pvm_error_set(err, -EINVAL,
				     "<memory model='%.32s'>: unknown model (dimm, nvdimm, virtio-mem, virtio-pmem, sgx-epc)",
				     model);
	m.model = (enum pvm_domain_memdev_model)mi;
	if (!child(tgt, "size"))
		return pvm_error_set(err, -EINVAL, "<memory model='%s'>: missing <target><size>", model);
	if ((rc = parse_memory_el(child(tgt, "size"), &kib, "<memory><target><size>", err)) < 0)
		return rc;
	m.size = kib << 10;
	if (child(tgt, "block")) {
		if ((rc = parse_memory_el(child(tgt, "block"), &kib, "<memory><target><block>", err)) < 0)
			return rc;
		m.block_size = kib << 10;
	}
	if (child(tgt, "requested")) {
		if ((rc = parse_memory_el(child(tgt, "requested"), &kib, "<memory><target><requested>", err)) < 0)
			return rc;
		m.requested_size = kib << 10;
	}
	if (child(tgt, "current")) {
		if ((rc = parse_memory_el(child(tgt, "current"), &kib, "<memory><target><current>", err)) < 0)
			return rc;
		m.current_size = kib << 10;
	}
	if (m.model == PVM_MEMDEV_VIRTIO_MEM) {
		if (!m.block_size)
			return pvm_error_set(err, -EINVAL, "<memory model='virtio-mem'>: missing <target><block>");
		if (!PVM_IS_POW2(m.block_size))
			return pvm_error_set(err, -EINVAL,
					     "<memory model='virtio-mem'>: block size %llu is not a power of two",
					     (unsigned long long)m.block_size);
		if (m.size % m.block_size || m.requested_size % m.block_size)
			return pvm_error_set(err, -EINVAL,
					     "<memory model='virtio-mem'>: size and requested must be multiples of the block size");
		if (m.requested_size > m.size)
			return pvm_error_set(err, -EINVAL,
					     "<memory model='virtio-mem'>: requested size is above the size");
	}
	if (child(tgt, "node")) {
		if ((rc = parse_u64(text(child(tgt, "node")), &v, "<memory><target><node>", err)) < 0)
			return rc;
		if (v >= PVM_DOMAIN_MAX_NUMA)
			return pvm_error_set(err, -EINVAL, "<memory><target><node>: %llu is out of range",
					     (unsigned long long)v);
		m.node = (int)v;
	}
	if ((a = child(tgt, "address")) && attr(a, "base")) {
		if ((rc = parse_u64_any(attr(a, "base"), &m.address_base, "<memory><target><address base>", err)) < 0)
			return rc;
		m.has_address_base = true;
	}
	if ((rc = note_guest_bus(dom, n, NULL, NULL, err)) < 0)
		return rc;
	if (attach) {
		/* virDomainMemoryInsert(): the total grows; it may not pass <maxMemory>. */
		uint64_t total = dom->memory_kib + (m.size >> 10);

		if (dom->max_kib && total > dom->max_kib)
			return pvm_error_set(err, -EINVAL,
					     "<memory model='%s'>: attaching it would exceed <maxMemory>", model);
		if (total >= PVM_DOMAIN_KIB_UNLIMITED)
			return pvm_error_set(err, -EINVAL, "<memory model='%s'>: total memory too large", model);
	}
	if (dom->n_memdevs >= PVM_DOMAIN_MAX_DEVICES)
		return pvm_error_set(err, -EINVAL, "<devices>: more than %d memory devices",
				     PVM_DOMAIN_MAX_DEVICES);
	if (!(arr = grow(dom->memdevs, &dom->n_memdevs, sizeof(*arr))))
		return pvm_error_set(err, -ENOMEM, "out of memory");
	dom->memdevs = arr;
	m.alias = NULL;
	if (attr(child(n, "alias"), "name") && !(m.alias = pvm_strdup(attr(child(n, "alias"), "name"))))
		return pvm_error_set(err, -ENOMEM, "out of memory");
	m.id = m.alias ? pvm_strdup(m.alias) : pvm_asprintf("%s%u", memdev_prefix[mi], dom->next_mem[mi]);
	if (!m.id) {
		pvm_domain_memdev_clear(&m);
		return pvm_error_set(err, -ENOMEM, "out of memory");
	}
	dom->next_mem[mi]++;
	arr[dom->n_memdevs++] = m;
	if (attach)
		dom->memory_kib += m.size >> 10;
	if (id_out)
		*id_out = m.id;
	return 0;
}

static int parse_balloon(struct pvm_domain *dom, const xmlNode *n, struct pvm_error *err)
{
	struct pvm_domain_balloon *b = &dom->balloon;
	const xmlNode *stats = child(n, "stats");
	const char *model = attr(n, "model");
	uint64_t period = 0;
	int rc;

	if (!model)
		return pvm_error_set(err, -EINVAL, "<memballoon>: missing model attribute");
	if (dom->has_balloon)
		return pvm_error_set(err, -EINVAL, "<memballoon>: only one is allowed");
	if (stats && attr(stats, "period") &&
	    (rc = parse_u64(attr(stats, "period"), &period, "<memballoon><stats period>", err)) < 0)
		return rc;
	if (period > INT_MAX)
		return pvm_error_set(err, -EINVAL, "<memballoon><stats period>: too large");
	b->stats_period = (unsigned)period;
	b->autodeflate = attr_is(n, "autodeflate", "on");
	b->free_page_reporting = attr_is(n, "freePageReporting", "on");
	if (dup_opt(model, &b->model) || dup_opt(attr(child(n, "alias"), "name"), &b->alias) ||
	    !(b->id = pvm_strdup(b->alias ? b->alias : "balloon0")))
		return pvm_error_set(err, -ENOMEM, "out of memory");
	dom->has_balloon = true;
	return note_guest_bus(dom, n, NULL, NULL, err);
}

static int parse_controller(struct pvm_domain *dom, const xmlNode *n, struct pvm_error *err)
{
	const char *model = attr(n, "model"), *mname = attr(child(n, "model"), "name");
	unsigned *idx;
	bool *phb;
	uint64_t v = 0;
	int rc;

	if ((rc = note_guest_bus(dom, n, NULL, NULL, err)) < 0)
		return rc;
	if (!attr_is(n, "type", "pci"))
		return 0;
	if (attr(n, "index") && (rc = parse_u64(attr(n, "index"), &v, "<controller type='pci' index>", err)) < 0)
		return rc;
	if (v > 255)
		return pvm_error_set(err, -EINVAL, "<controller type='pci' index>: %llu is out of range",
				     (unsigned long long)v);
	for (size_t i = 0; i < dom->n_pci; i++)
		if (dom->pci_indexes[i] == v)
			return pvm_error_set(err, -EINVAL, "<controller type='pci' index='%llu'>: duplicate index",
					     (unsigned long long)v);
	if (!(idx = grow(dom->pci_indexes, &dom->n_pci, sizeof(*idx))))
		return pvm_error_set(err, -ENOMEM, "out of memory");
	dom->pci_indexes = idx;
	if (!(phb = grow(dom->pci_is_phb, &dom->n_pci, sizeof(*phb))))
		return pvm_error_set(err, -ENOMEM, "out of memory");
	dom->pci_is_phb = phb;
	idx[dom->n_pci] = (unsigned)v;
	/* A pseries pci-root is an spapr-pci-host-bridge unless its model name says otherwise. */
	phb[dom->n_pci] = model && !strcmp(model, "pci-root") &&
			  (!mname || !strcmp(mname, "spapr-pci-host-bridge"));
	dom->n_pci++;
	return 0;
}

int pvm_domain_parse_device(struct pvm_domain *dom, void *xml_node, bool attach, const char **id_out,
			    struct pvm_error *err)
{
	const xmlNode *n = xml_node;

	if (is_el(n, "hostdev"))
		return parse_hostdev(dom, n, id_out, err);
	if (is_el(n, "interface"))
		return parse_interface(dom, n, id_out, err);
	if (is_el(n, "disk"))
		return parse_disk(dom, n, id_out, err);
	if (is_el(n, "memory"))
		return parse_memdev(dom, n, attach, id_out, err);
	if (attach)
		return pvm_error_set(err, -EINVAL, "<%.32s>: not a device pvmem can attach "
				     "(hostdev, interface, disk, memory)", n ? (const char *)n->name : "?");
	if (is_el(n, "memballoon"))
		return parse_balloon(dom, n, err);
	if (is_el(n, "iommu")) {
		if (!dom->n_iommus && attr(n, "model") && !(dom->iommu_model = pvm_strdup(attr(n, "model"))))
			return pvm_error_set(err, -ENOMEM, "out of memory");
		dom->n_iommus++;
		return 0;
	}
	if (is_el(n, "controller"))
		return parse_controller(dom, n, err);
	if (n && n->type == XML_ELEMENT_NODE)
		return note_guest_bus(dom, n, NULL, NULL, err);
	return 0;
}

/* ---- the <domain> element ------------------------------------------------------------------ */

static int parse_numa(struct pvm_domain *dom, const xmlNode *numa, struct pvm_error *err)
{
	unsigned n = 0;
	int rc;

	for (const xmlNode *c = numa ? numa->children : NULL; c; c = c->next)
		if (is_el(c, "cell"))
			n++;
	if (!n)
		return 0;
	if (n > PVM_DOMAIN_MAX_NUMA)
		return pvm_error_set(err, -EINVAL, "<cpu><numa>: more than %d cells", PVM_DOMAIN_MAX_NUMA);
	if (!(dom->numa_kib = pvm_calloc(n, sizeof(*dom->numa_kib))))
		return pvm_error_set(err, -ENOMEM, "out of memory");
	for (const xmlNode *c = numa->children; c; c = c->next) {
		uint64_t bytes;

		if (!is_el(c, "cell"))
			continue;
		if (!attr(c, "memory"))
			return pvm_error_set(err, -EINVAL, "<cpu><numa><cell>: missing memory attribute");
		if ((rc = parse_scaled(attr(c, "memory"), attr(c, "unit"), 1024, (uint64_t)LLONG_MAX, &bytes,
				       "<cpu><numa><cell memory>", err)) < 0)
			return rc;
		dom->numa_kib[dom->numa_count++] = PVM_DIV_ROUND_UP(bytes, 1024);
	}
	return 0;
}

/* virDomainDefPostParseMemory(): total, initial, current and max must agree. */
static int post_parse_memory(struct pvm_domain *dom, bool have_memory, struct pvm_error *err)
{
	uint64_t hotplug = 0, numa = 0;

	for (size_t i = 0; i < dom->n_memdevs; i++)
		if (pvm_add_overflow(hotplug, dom->memdevs[i].size >> 10, &hotplug))
			return pvm_error_set(err, -EINVAL, "<memory> devices: total size too large");
	if (!dom->memory_kib) {
		for (unsigned i = 0; i < dom->numa_count; i++)
			if (pvm_add_overflow(numa, dom->numa_kib[i], &numa))
				return pvm_error_set(err, -EINVAL, "<cpu><numa>: total size too large");
	}
	if (numa) {
		if (pvm_add_overflow(numa, hotplug, &dom->memory_kib) ||
		    dom->memory_kib >= PVM_DOMAIN_KIB_UNLIMITED)
			return pvm_error_set(err, -EINVAL, "<cpu><numa>: total size too large");
	} else if (hotplug > dom->memory_kib) {
		return pvm_error_set(err, -EINVAL,
				     "<memory>: the memory devices (%llu KiB) exceed the total memory (%llu KiB)",
				     (unsigned long long)hotplug, (unsigned long long)dom->memory_kib);
	}
	if (dom->memory_kib == hotplug)
		return pvm_error_set(err, -EINVAL, have_memory ? "<memory>: the guest has no initial memory"
							 : "missing <memory> (and no <cpu><numa> cells)");
	if (!dom->current_kib || dom->current_kib > dom->memory_kib)
		dom->current_kib = dom->memory_kib;
	if (!!dom->max_kib != !!dom->slots)
		return pvm_error_set(err, -EINVAL, "<maxMemory>: both the size and slots='N' must be given");
	if (dom->max_kib && dom->max_kib < dom->memory_kib)
		return pvm_error_set(err, -EINVAL, "<maxMemory>: %llu KiB is below <memory> (%llu KiB)",
				     (unsigned long long)dom->max_kib, (unsigned long long)dom->memory_kib);
	return 0;
}

static int parse_os(struct pvm_domain *dom, const xmlNode *os, unsigned flags, struct pvm_error *err)
{
	const xmlNode *t = child(os, "type");
	const char *arch = attr(t, "arch"), *machine = attr(t, "machine");

	if (arch) {
		if (pvm_arch_from_name(arch, &dom->arch) < 0)
			return pvm_error_set(err, -EINVAL,
					     "<os><type arch='%.32s'>: unsupported architecture "
					     "(x86_64, i686, ppc64, ppc64le, aarch64, s390x, armv7l, riscv64)",
					     arch);
	} else {
		dom->arch = (flags & PVM_DOMAIN_PARSE_NO_HOST) ? PVM_ARCH_X86_64 : pvm_domain_host_arch();
	}
	if (!machine && (dom->arch == PVM_ARCH_PPC64 || dom->arch == PVM_ARCH_PPC64LE))
		machine = "pseries";
	if (machine && !(dom->machine = pvm_strdup(machine)))
		return pvm_error_set(err, -ENOMEM, "out of memory");
	return 0;
}

static int parse_root(struct pvm_domain *dom, const xmlNode *root, unsigned flags, struct pvm_error *err)
{
	const char *type = attr(root, "type");
	const xmlNode *n;
	bool have_memory = false;
	uint64_t v;
	int rc;

	if (!is_el(root, "domain"))
		return pvm_error_set(err, -EINVAL, "the root element is <%.32s>, not <domain>",
				     root ? (const char *)root->name : "");
	if (!type)
		return pvm_error_set(err, -EINVAL, "<domain>: missing type attribute");
	if (!strcmp(type, "kvm"))
		dom->virt = PVM_DOMAIN_VIRT_KVM;
	else if (!strcmp(type, "qemu"))
		dom->virt = PVM_DOMAIN_VIRT_QEMU;
	else
		return pvm_error_set(err, -EINVAL, "<domain type='%.32s'>: pvmem handles QEMU guests only "
				     "(type 'kvm' or 'qemu')", type);
	if (text(child(root, "name")) && !(dom->name = pvm_strdup(text(child(root, "name")))))
		return pvm_error_set(err, -ENOMEM, "out of memory");
	if ((rc = parse_os(dom, child(root, "os"), flags, err)) < 0)
		return rc;
	dom->vcpus = 1;
	if ((n = child(root, "vcpu"))) {
		if ((rc = parse_u64(text(n), &v, "<vcpu>", err)) < 0)
			return rc;
		if (!v || v > 16384)
			return pvm_error_set(err, -EINVAL, "<vcpu>: %llu is out of range", (unsigned long long)v);
		dom->vcpus = (unsigned)v;
	}
	if ((n = child(root, "memory"))) {
		if ((rc = parse_memory_el(n, &dom->memory_kib, "<memory>", err)) < 0)
			return rc;
		have_memory = true;
	}
	if ((n = child(root, "currentMemory")) &&
	    (rc = parse_memory_el(n, &dom->current_kib, "<currentMemory>", err)) < 0)
		return rc;
	if ((n = child(root, "maxMemory"))) {
		if ((rc = parse_memory_el(n, &dom->max_kib, "<maxMemory>", err)) < 0)
			return rc;
		if (attr(n, "slots")) {
			if ((rc = parse_u64(attr(n, "slots"), &v, "<maxMemory slots>", err)) < 0)
				return rc;
			if (v > UINT_MAX)
				return pvm_error_set(err, -EINVAL, "<maxMemory slots>: too large");
			dom->slots = (unsigned)v;
		}
	}
	if ((rc = parse_numa(dom, child(child(root, "cpu"), "numa"), err)) < 0)
		return rc;
	dom->hard_limit_kib = PVM_DOMAIN_KIB_UNLIMITED;
	if ((n = child(child(root, "memtune"), "hard_limit"))) {
		/* virDomainParseMemoryLimit(): at most the sentinel in bytes, truncated to it in KiB. */
		uint64_t bytes;

		if ((rc = parse_scaled(text(n), attr(n, "unit"), 1024, PVM_DOMAIN_KIB_UNLIMITED << 10, &bytes,
				       "<memtune><hard_limit>", err)) < 0)
			return rc;
		dom->hard_limit_kib = PVM_MIN(PVM_DIV_ROUND_UP(bytes, 1024), PVM_DOMAIN_KIB_UNLIMITED);
	}
	dom->locked = child(child(root, "memoryBacking"), "locked") != NULL;
	if ((n = child(root, "devices"))) {
		for (const xmlNode *c = n->children; c; c = c->next) {
			if (c->type != XML_ELEMENT_NODE)
				continue;
			if ((rc = pvm_domain_parse_device(dom, (void *)c, false, NULL, err)) < 0)
				return rc;
		}
	}
	return post_parse_memory(dom, have_memory, err);
}

int pvm_domain_parse_memory(const char *xml, size_t len, unsigned flags, struct pvm_domain **out,
			    struct pvm_error *err)
{
	struct pvm_domain *dom;
	xmlDocPtr doc;
	void *d;
	int rc;

	PVM_TRACE(domain_parse, "len=0x%zx flags=0x%x", len, flags);
	if (!xml || !out)
		return pvm_error_set(err, -EINVAL, "no XML given");
	if ((rc = pvm_domain_read_xml(xml, len, &d, err)) < 0)
		return rc;
	doc = d;
	if (!(dom = pvm_calloc(1, sizeof(*dom)))) {
		xmlFreeDoc(doc);
		return pvm_error_set(err, -ENOMEM, "out of memory");
	}
	rc = parse_root(dom, xmlDocGetRootElement(doc), flags, err);
	xmlFreeDoc(doc);
	if (rc == 0 && !(flags & PVM_DOMAIN_PARSE_NO_HOST))
		rc = pvm_domain_probe_host(dom, NULL, err);
	if (rc < 0) {
		pvm_domain_free(dom);
		PVM_TRACE(domain_parse_done, "rc=%d", rc);
		return rc;
	}
	pvm_domain_recount(dom);
	PVM_TRACE(domain_parse_done, "rc=0 memory_kib=0x%llx pts=%zu memdevs=%zu",
		  (unsigned long long)dom->memory_kib, dom->n_pts, dom->n_memdevs);
	*out = dom;
	return 0;
}

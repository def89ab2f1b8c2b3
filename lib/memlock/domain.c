/* SPDX-License-Identifier: MIT */
/*
 * The domain model: life cycle, getters, hot-plug and the pseries PHB count.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "memlock/domain-priv.h"

static const char *const arch_names[PVM_ARCH__COUNT] = {
	[PVM_ARCH_X86_64] = "x86_64",   [PVM_ARCH_I686] = "i686",       [PVM_ARCH_PPC64] = "ppc64",
	[PVM_ARCH_PPC64LE] = "ppc64le", [PVM_ARCH_AARCH64] = "aarch64", [PVM_ARCH_S390X] = "s390x",
	[PVM_ARCH_ARMV7L] = "armv7l",   [PVM_ARCH_RISCV64] = "riscv64",
};

const char *pvm_arch_name(enum pvm_arch arch)
{
	return (unsigned)arch < PVM_ARCH__COUNT ? arch_names[arch] : NULL;
}

int pvm_arch_from_name(const char *name, enum pvm_arch *arch)
{
	static const struct { const char *alias; enum pvm_arch arch; } aliases[] = {
		{ "amd64", PVM_ARCH_X86_64 },  { "x86-64", PVM_ARCH_X86_64 }, { "i386", PVM_ARCH_I686 },
		{ "arm64", PVM_ARCH_AARCH64 }, { "ppc64el", PVM_ARCH_PPC64LE },
	};

	if (!name)
		return -EINVAL;
	for (int i = 0; i < PVM_ARCH__COUNT; i++) {
		if (!strcmp(name, arch_names[i])) {
			*arch = (enum pvm_arch)i;
			return 0;
		}
	}
	for (size_t i = 0; i < PVM_ARRAY_SIZE(aliases); i++) {
		if (!strcmp(name, aliases[i].alias)) {
			*arch = aliases[i].arch;
			return 0;
		}
	}
	return -EINVAL;
}

enum pvm_arch pvm_domain_host_arch(void)
{
	struct utsname u;
	enum pvm_arch a;

	if (uname(&u) == 0 && pvm_arch_from_name(u.machine, &a) == 0)
		return a;
	return PVM_ARCH_X86_64;
}

/* ---- life cycle ---------------------------------------------------------------------------- */

void pvm_domain_memdev_clear(struct pvm_domain_memdev *m)
{
	pvm_free((void *)m->alias);
	pvm_free((void *)m->id);
	m->alias = m->id = NULL;
}

void pvm_domain_pt_clear(struct pvm_domain_pt *p)
{
	pvm_free((void *)p->alias);
	pvm_free((void *)p->id);
	pvm_free((void *)p->source);
	pvm_free((void *)p->driver);
	p->alias = p->id = p->source = p->driver = NULL;
}

void pvm_domain_free(struct pvm_domain *dom)
{
	if (!dom)
		return;
	for (size_t i = 0; i < dom->n_memdevs; i++)
		pvm_domain_memdev_clear(&dom->memdevs[i]);
	for (size_t i = 0; i < dom->n_pts; i++)
		pvm_domain_pt_clear(&dom->pts[i]);
	pvm_free(dom->memdevs);
	pvm_free(dom->pts);
	pvm_free((void *)dom->balloon.model);
	pvm_free((void *)dom->balloon.alias);
	pvm_free((void *)dom->balloon.id);
	pvm_free(dom->name);
	pvm_free(dom->machine);
	pvm_free(dom->numa_kib);
	pvm_free(dom->iommu_model);
	pvm_free(dom->pci_indexes);
	pvm_free(dom->pci_is_phb);
	pvm_free(dom->pci_buses);
	pvm_free(dom);
}

int pvm_domain_parse_file(const char *path, unsigned flags, struct pvm_domain **out, struct pvm_error *err)
{
	struct stat st;
	char *buf;
	size_t done = 0;
	int fd, rc;

	if (!path)
		return pvm_error_set(err, -EINVAL, "no file given");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return pvm_error_set(err, -errno, "%s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return pvm_error_set(err, -EINVAL, "%s: not a regular file", path);
	}
	if (st.st_size > PVM_DOMAIN_XML_MAX) {
		close(fd);
		return pvm_error_set(err, -EFBIG, "%s: larger than %u bytes", path, PVM_DOMAIN_XML_MAX);
	}
	if (!(buf = pvm_malloc((size_t)st.st_size + 1))) {
		close(fd);
		return pvm_error_set(err, -ENOMEM, "out of memory");
	}
	while (done < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + done, (size_t)st.st_size - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		done += (size_t)n;
	}
	close(fd);
	rc = pvm_domain_parse_memory(buf, done, flags, out, err);
	pvm_free(buf);
	if (rc < 0)
		pvm_error_prefix(err, "%s", path);
	return rc;
}

/* ---- the pseries PHB count ----------------------------------------------------------------- */

static bool has_pci_index(const struct pvm_domain *dom, unsigned idx, bool *is_phb)
{
	for (size_t i = 0; i < dom->n_pci; i++) {
		if (dom->pci_indexes[i] == idx) {
			if (is_phb)
				*is_phb = dom->pci_is_phb[i];
			return true;
		}
	}
	return false;
}

static bool bus_referenced(const struct pvm_domain *dom, unsigned bus)
{
	for (size_t i = 0; i < dom->n_pci_buses; i++)
		if (dom->pci_buses[i] == bus)
			return true;
	return false;
}

/*
 * libvirt's view after post-parse and PCI address assignment (virDomainControllerIsPSeriesPHB):
 *  - the PHBs the XML lists, plus the default PHB index 0 when the XML has no index 0;
 *  - a PHB for every guest bus a device's address names that has no controller (libvirt adds
 *    the missing controllers, and on pseries they are PHBs);
 *  - one PHB per host IOMMU group of PCI hostdevs without a guest address: each isolation group
 *    gets a PHB of its own (never the default one). Extra PHBs that no device uses are taken
 *    first. A device whose group is unknown is its own group.
 * Emulated devices beyond the 32 slots of PHB 0 would need more PHBs; that is not modelled.
 */
void pvm_domain_recount(struct pvm_domain *dom)
{
	unsigned phbs = 0, empty = 0, groups = 0;
	bool phb;

	dom->nvlink2 = false;
	for (size_t i = 0; i < dom->n_pts; i++)
		if (dom->pts[i].kind == PVM_PT_PCI && dom->pts[i].host_nvlink2)
			dom->nvlink2 = true;
	if (!pvm_domain_is_pseries(dom)) {
		dom->phb_count = 0;
		return;
	}
	if (!has_pci_index(dom, 0, NULL))
		phbs++;
	for (size_t i = 0; i < dom->n_pci; i++) {
		if (!dom->pci_is_phb[i])
			continue;
		phbs++;
		if (dom->pci_indexes[i] && !bus_referenced(dom, dom->pci_indexes[i]))
			empty++;
	}
	for (size_t i = 0; i < dom->n_pci_buses; i++)
		if (!has_pci_index(dom, dom->pci_buses[i], &phb) && dom->pci_buses[i] != 0)
			phbs++;
	for (size_t i = 0; i < dom->n_pts; i++) {
		const struct pvm_domain_pt *p = &dom->pts[i];
		bool seen = false;

		if (p->kind != PVM_PT_PCI || p->has_guest_address)
			continue;
		for (size_t j = 0; j < i && p->host_iommu_group >= 0; j++) {
			const struct pvm_domain_pt *q = &dom->pts[j];

			if (q->kind == PVM_PT_PCI && !q->has_guest_address &&
			    q->host_iommu_group == p->host_iommu_group)
				seen = true;
		}
		if (!seen)
			groups++;
	}
	dom->phb_count = phbs + (groups > empty ? groups - empty : 0);
}

/* ---- getters ------------------------------------------------------------------------------- */

const char *pvm_domain_name(const struct pvm_domain *dom) { return dom->name; }
enum pvm_domain_virt pvm_domain_virt(const struct pvm_domain *dom) { return dom->virt; }
enum pvm_arch pvm_domain_arch(const struct pvm_domain *dom) { return dom->arch; }
const char *pvm_domain_machine(const struct pvm_domain *dom) { return dom->machine; }
unsigned pvm_domain_vcpus(const struct pvm_domain *dom) { return dom->vcpus; }
uint64_t pvm_domain_memory(const struct pvm_domain *dom) { return dom->memory_kib << 10; }
uint64_t pvm_domain_current_memory(const struct pvm_domain *dom) { return dom->current_kib << 10; }
uint64_t pvm_domain_max_memory(const struct pvm_domain *dom) { return dom->max_kib << 10; }
unsigned pvm_domain_memory_slots(const struct pvm_domain *dom) { return dom->slots; }
unsigned pvm_domain_numa_nodes(const struct pvm_domain *dom) { return dom->numa_count; }
bool pvm_domain_locked(const struct pvm_domain *dom) { return dom->locked; }
size_t pvm_domain_memdev_count(const struct pvm_domain *dom) { return dom->n_memdevs; }
size_t pvm_domain_pt_count(const struct pvm_domain *dom) { return dom->n_pts; }
unsigned pvm_domain_iommu_count(const struct pvm_domain *dom) { return dom->n_iommus; }
const char *pvm_domain_iommu_model(const struct pvm_domain *dom) { return dom->iommu_model; }
unsigned pvm_domain_phb_count(const struct pvm_domain *dom) { return dom->phb_count; }
bool pvm_domain_has_nvlink2(const struct pvm_domain *dom) { return dom->nvlink2; }

void pvm_domain_set_arch(struct pvm_domain *dom, enum pvm_arch arch)
{
	if ((unsigned)arch >= PVM_ARCH__COUNT)
		return;
	dom->arch = arch;
	if ((arch == PVM_ARCH_PPC64 || arch == PVM_ARCH_PPC64LE) && !dom->machine)
		dom->machine = pvm_strdup("pseries"); /* NULL on ENOMEM: then simply not pseries */
	pvm_domain_recount(dom);
}

bool pvm_domain_is_pseries(const struct pvm_domain *dom)
{
	return (dom->arch == PVM_ARCH_PPC64 || dom->arch == PVM_ARCH_PPC64LE) && dom->machine &&
	       !strncmp(dom->machine, "pseries", 7);
}

uint64_t pvm_domain_memory_initial(const struct pvm_domain *dom)
{
	uint64_t kib = dom->memory_kib;

	for (size_t i = 0; i < dom->n_memdevs; i++)
		kib -= PVM_MIN(kib, dom->memdevs[i].size >> 10);
	return kib << 10;
}

uint64_t pvm_domain_numa_node_memory(const struct pvm_domain *dom, unsigned i)
{
	return i < dom->numa_count ? dom->numa_kib[i] << 10 : 0;
}

bool pvm_domain_hard_limit(const struct pvm_domain *dom, uint64_t *bytes)
{
	if (dom->hard_limit_kib >= PVM_DOMAIN_KIB_UNLIMITED)
		return false;
	if (bytes)
		*bytes = dom->hard_limit_kib << 10;
	return true;
}

const struct pvm_domain_memdev *pvm_domain_memdev(const struct pvm_domain *dom, size_t i)
{
	return i < dom->n_memdevs ? &dom->memdevs[i] : NULL;
}

size_t pvm_domain_virtio_mem_count(const struct pvm_domain *dom)
{
	size_t n = 0;

	for (size_t i = 0; i < dom->n_memdevs; i++)
		n += dom->memdevs[i].model == PVM_MEMDEV_VIRTIO_MEM;
	return n;
}

const struct pvm_domain_memdev *pvm_domain_virtio_mem(const struct pvm_domain *dom, size_t i)
{
	for (size_t j = 0; j < dom->n_memdevs; j++)
		if (dom->memdevs[j].model == PVM_MEMDEV_VIRTIO_MEM && i-- == 0)
			return &dom->memdevs[j];
	return NULL;
}

const struct pvm_domain_balloon *pvm_domain_balloon(const struct pvm_domain *dom)
{
	return dom->has_balloon ? &dom->balloon : NULL;
}

const struct pvm_domain_pt *pvm_domain_pt(const struct pvm_domain *dom, size_t i)
{
	return i < dom->n_pts ? &dom->pts[i] : NULL;
}

/* ---- hot-plug ------------------------------------------------------------------------------ */

int pvm_domain_attach_xml(struct pvm_domain *dom, const char *xml, size_t len, const char **id_out,
			  struct pvm_error *err)
{
	struct pvm_domain *copy;
	const char *id = NULL;
	void *doc;
	int rc;

	PVM_TRACE(domain_attach, "len=0x%zx", len);
	if (!dom || !xml)
		return pvm_error_set(err, -EINVAL, "no device XML given");
	if ((rc = pvm_domain_read_xml(xml, len, &doc, err)) < 0)
		return rc;
	/* Parse into a copy so that a failure leaves @dom exactly as it was. */
	if ((rc = pvm_domain_clone(dom, &copy, err)) < 0) {
		xmlFreeDoc(doc);
		return rc;
	}
	rc = pvm_domain_parse_device(copy, xmlDocGetRootElement(doc), true, &id, err);
	xmlFreeDoc(doc);
	if (rc == 0 && !id)
		rc = pvm_error_set(err, -EINVAL, "the device does not pin memory and is not a memory device");
	if (rc < 0) {
		pvm_domain_free(copy);
		PVM_TRACE(domain_attach_done, "rc=%d", rc);
		return rc;
	}
	pvm_domain_recount(copy);
	/* Swap contents: @dom keeps its address, the old contents go away with @copy. */
	{
		struct pvm_domain tmp = *dom;

		*dom = *copy;
		*copy = tmp;
	}
	pvm_domain_free(copy);
	PVM_TRACE(domain_attach_done, "rc=0 id=%s", id);
	if (id_out)
		*id_out = id;
	return 0;
}

int pvm_domain_detach(struct pvm_domain *dom, const char *id, struct pvm_error *err)
{
	bool found = false;

	PVM_TRACE(domain_detach, "id=%s", id ? id : "(null)");
	if (!dom || !id)
		return pvm_error_set(err, -EINVAL, "no device id given");
	/* A disk with several vhost-vdpa elements in its chain is several entries: "vda", "vda#1". */
	for (size_t i = 0; i < dom->n_pts;) {
		const struct pvm_domain_pt *p = &dom->pts[i];
		size_t l = strlen(id);

		if (strcmp(p->id, id) && !(p->alias && !strcmp(p->alias, id)) &&
		    !(!strncmp(p->id, id, l) && p->id[l] == '#')) {
			i++;
			continue;
		}
		pvm_domain_pt_clear(&dom->pts[i]);
		memmove(&dom->pts[i], &dom->pts[i + 1], (dom->n_pts - i - 1) * sizeof(dom->pts[0]));
		dom->n_pts--;
		found = true;
	}
	if (found) {
		pvm_domain_recount(dom);
		return 0;
	}
	for (size_t i = 0; i < dom->n_memdevs; i++) {
		if (strcmp(dom->memdevs[i].id, id) &&
		    !(dom->memdevs[i].alias && !strcmp(dom->memdevs[i].alias, id)))
			continue;
		dom->memory_kib -= PVM_MIN(dom->memory_kib, dom->memdevs[i].size >> 10);
		if (dom->current_kib > dom->memory_kib)
			dom->current_kib = dom->memory_kib;
		pvm_domain_memdev_clear(&dom->memdevs[i]);
		memmove(&dom->memdevs[i], &dom->memdevs[i + 1],
			(dom->n_memdevs - i - 1) * sizeof(dom->memdevs[0]));
		dom->n_memdevs--;
		return 0;
	}
	return pvm_error_set(err, -ENOENT, "no device with id '%.64s'", id);
}

/* ---- deep copy ----------------------------------------------------------------------------- */

static int dup_str(const char *s, const char **out)
{
	*out = NULL;
	if (!s)
		return 0;
	*out = pvm_strdup(s);
	return *out ? 0 : -1;
}

static void *dup_mem(const void *p, size_t n, size_t size, bool *fail)
{
	void *q;

	if (!n || !p)
		return NULL;
	if (!(q = pvm_calloc(n, size))) {
		*fail = true;
		return NULL;
	}
	memcpy(q, p, n * size);
	return q;
}

int pvm_domain_clone(const struct pvm_domain *dom, struct pvm_domain **out, struct pvm_error *err)
{
	struct pvm_domain *c;
	bool fail = false;

	if (!dom || !out)
		return pvm_error_set(err, -EINVAL, "no domain given");
	if (!(c = pvm_calloc(1, sizeof(*c))))
		return pvm_error_set(err, -ENOMEM, "out of memory");
	*c = *dom;
	/* Nothing below may point into @dom: reset, then copy piece by piece. */
	c->name = c->machine = c->iommu_model = NULL;
	c->numa_kib = NULL;
	c->memdevs = NULL;
	c->pts = NULL;
	c->n_memdevs = c->n_pts = 0;
	c->pci_indexes = NULL;
	c->pci_is_phb = NULL;
	c->pci_buses = NULL;
	c->balloon.model = c->balloon.alias = c->balloon.id = NULL;
	fail |= dup_str(dom->name, (const char **)&c->name) < 0;
	fail |= dup_str(dom->machine, (const char **)&c->machine) < 0;
	fail |= dup_str(dom->iommu_model, (const char **)&c->iommu_model) < 0;
	fail |= dup_str(dom->balloon.model, &c->balloon.model) < 0;
	fail |= dup_str(dom->balloon.alias, &c->balloon.alias) < 0;
	fail |= dup_str(dom->balloon.id, &c->balloon.id) < 0;
	c->numa_kib = dup_mem(dom->numa_kib, dom->numa_count, sizeof(*c->numa_kib), &fail);
	c->pci_indexes = dup_mem(dom->pci_indexes, dom->n_pci, sizeof(*c->pci_indexes), &fail);
	c->pci_is_phb = dup_mem(dom->pci_is_phb, dom->n_pci, sizeof(*c->pci_is_phb), &fail);
	c->pci_buses = dup_mem(dom->pci_buses, dom->n_pci_buses, sizeof(*c->pci_buses), &fail);
	if (!fail && dom->n_memdevs && !(c->memdevs = pvm_calloc(dom->n_memdevs, sizeof(*c->memdevs))))
		fail = true;
	for (size_t i = 0; !fail && i < dom->n_memdevs; i++) {
		c->memdevs[i] = dom->memdevs[i];
		c->memdevs[i].alias = c->memdevs[i].id = NULL;
		c->n_memdevs++;
		fail |= dup_str(dom->memdevs[i].alias, &c->memdevs[i].alias) < 0;
		fail |= dup_str(dom->memdevs[i].id, &c->memdevs[i].id) < 0;
	}
	if (!fail && dom->n_pts && !(c->pts = pvm_calloc(dom->n_pts, sizeof(*c->pts))))
		fail = true;
	for (size_t i = 0; !fail && i < dom->n_pts; i++) {
		c->pts[i] = dom->pts[i];
		c->pts[i].alias = c->pts[i].id = c->pts[i].source = c->pts[i].driver = NULL;
		c->n_pts++;
		fail |= dup_str(dom->pts[i].alias, &c->pts[i].alias) < 0;
		fail |= dup_str(dom->pts[i].id, &c->pts[i].id) < 0;
		fail |= dup_str(dom->pts[i].source, &c->pts[i].source) < 0;
		fail |= dup_str(dom->pts[i].driver, &c->pts[i].driver) < 0;
	}
	if (fail) {
		pvm_domain_free(c);
		return pvm_error_set(err, -ENOMEM, "out of memory");
	}
	*out = c;
	return 0;
}

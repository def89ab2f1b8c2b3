/* SPDX-License-Identifier: MIT */
/*
 * Host devices: DMA spaces, the vIOMMU and the memlock lifecycle around attach and detach.
 *
 * Without <iommu> every VFIO device shares one space that maps all guest RAM at iova == gpa
 * (boot RAM always, virtio-mem regions as far as they are plugged, following the discard
 * manager): one VFIO container, RAM pinned once. With <iommu> each VFIO device gets its own space
 * bound to its own vIOMMU domain, as QEMU gives each device behind a vIOMMU its own address space
 * (type1: RAM pinned once per device). NVMe disks (QEMU's userspace driver opens its own VFIO
 * container) and vDPA devices (vhost-vdpa pins through its own device) always get their own
 * identity space: all RAM pinned once per device, whatever the vIOMMU does. This is the
 * accounting libvirt's factor (nvdpa + nnvme + (vIOMMU ? nvfio : 1)) is made for.
 *
 * Order (libvirt's): the memlock need WITH the device is applied before the attach; after a
 * detach (or a failed attach) the need WITHOUT it. A refused raise (-EPERM) is recorded in
 * m->ml_error and the attach continues: pinning is checked against the computed need (the DMA
 * context's explicit budget), never against the process limit.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "machine/machine-priv.h"

/* The guest programs this much of its boot RAM as a DMA window when it enables remapping. */
#define GUEST_DMA_WINDOW (64ULL << 20)

const char *pvm_machine_hostdev_kind_name(enum pvm_machine_hostdev_kind kind)
{
	switch (kind) {
	case PVM_MACHINE_HOSTDEV_VFIO:
		return "vfio";
	case PVM_MACHINE_HOSTDEV_NVME:
		return "nvme";
	case PVM_MACHINE_HOSTDEV_VDPA:
		return "vdpa";
	}
	return "?";
}

static int space_add_ram(struct pvm_machine *m, struct pvm_dma_space *s, struct pvm_error *err)
{
	int rc = pvm_dma_space_add_ram(s, 0, m->ram_size, pvm_mem_region_host(m->ram), NULL, err);

	for (size_t i = 0; !rc && i < m->nvmems; i++)
		rc = pvm_dma_space_add_ram(s, m->vmems[i].gpa, m->vmems[i].size,
					   pvm_mem_region_host(m->vmems[i].region),
					   pvm_vmem_discard_manager(m->vmems[i].vmem), err);
	return rc;
}

int pvm_machine_dma_init(struct pvm_machine *m, struct pvm_error *err)
{
	struct pvm_dma_ctx_config cfg = { .model = PVM_DMA_MODEL_TYPE1,
					  .backend = PVM_DMA_BACKEND_ACCOUNTING,
					  .budget = PVM_DMA_BUDGET_UNLIMITED,
					  .policy = m->policy };
	struct pvm_dma_space_config scfg = { .name = "dma0", .fd = -1 };
	int rc = pvm_dma_ctx_new(&cfg, &m->dma, err);

	if (rc)
		return rc;
	if (pvm_domain_iommu_count(m->dom) > 0) {
		rc = pvm_dma_viommu_new(&m->viommu);
		return rc ? pvm_error_set(err, rc, "vIOMMU") : 0;
	}
	rc = pvm_dma_space_new(m->dma, &scfg, &m->shared_space, err);
	if (rc)
		return rc;
	return space_add_ram(m, m->shared_space, err);
}

void pvm_machine_dma_fini(struct pvm_machine *m)
{
	for (size_t i = m->nhostdevs; i-- > 0;) {
		struct pvm_machine_hostdev *h = &m->hostdevs[i];

		if (h->own_space)
			pvm_dma_space_free(h->space);
		else
			(void)pvm_dma_space_detach(h->space, h->id);
	}
	m->nhostdevs = 0;
	pvm_dma_space_free(m->shared_space);
	pvm_dma_viommu_free(m->viommu);
	pvm_dma_ctx_free(m->dma);
	m->shared_space = NULL;
	m->viommu = NULL;
	m->dma = NULL;
}

/* Take @res as the need now: the figures the queries report and the DMA accounting budget. */
static void need_commit(struct pvm_machine *m, const struct pvm_memlock_result *res)
{
	switch (pvm_memlock_result_kind(res)) {
	case PVM_MEMLOCK_NONE:
		m->ml_kind = PVM_MACHINE_MEMLOCK_NONE;
		m->ml_need = 0;
		break;
	case PVM_MEMLOCK_BYTES:
		m->ml_kind = PVM_MACHINE_MEMLOCK_BYTES;
		m->ml_need = pvm_memlock_result_bytes(res);
		break;
	case PVM_MEMLOCK_UNLIMITED:
		m->ml_kind = PVM_MACHINE_MEMLOCK_UNLIMITED;
		m->ml_need = UINT64_MAX;
		break;
	}
	/* The accounting budget is the need itself (see the file comment). */
	if (m->dma)
		pvm_dma_ctx_set_budget(m->dma, m->ml_kind == PVM_MACHINE_MEMLOCK_BYTES ? m->ml_need
										: PVM_DMA_BUDGET_UNLIMITED);
}

/* Apply @res to the process limit: @apply 1 raises (start, attach), 2 sets the exact remaining
 * need (detach, failed attach). A refused raise (-EPERM) is recorded and logged once; the
 * caller decides whether it is fatal. */
static int need_apply(struct pvm_machine *m, const struct pvm_memlock_result *res, int apply,
		      struct pvm_error *err)
{
	struct pvm_error e = { 0 };
	int rc = 0;

	if (!apply || m->opts.no_memlock)
		return 0;
	if (!m->memlock)
		rc = pvm_memlock_ctl_open(getpid(), m->opts.memlock_state_dir, 0, &m->memlock, &e);
	if (!rc && apply == 1 && m->ml_kind != PVM_MACHINE_MEMLOCK_NONE)
		rc = pvm_memlock_ctl_before_attach(m->memlock, res, &e);
	else if (!rc && apply == 2)
		rc = pvm_memlock_ctl_after_detach(m->memlock, res, &e);
	m->ml_error = rc;
	if (rc == -EPERM) {
		char need[32];

		if (m->ml_kind == PVM_MACHINE_MEMLOCK_UNLIMITED)
			snprintf(need, sizeof(need), "unlimited");
		else
			pvm_size_format(m->ml_need, need, sizeof(need));
		pvm_warn("memlock: this process may not raise its RLIMIT_MEMLOCK to %s (it lacks "
			 "CAP_SYS_RESOURCE); DMA pinning is checked against the computed need instead",
			 need);
	} else if (rc) {
		pvm_warn("memlock: %s", pvm_error_message(&e));
	}
	if (rc)
		pvm_error_set(err, rc, "%s", pvm_error_message(&e));
	return rc;
}

int pvm_machine_memlock_update(struct pvm_machine *m, int apply, struct pvm_error *err)
{
	struct pvm_memlock_result *res = NULL;
	int rc = pvm_memlock_compute(m->dom, NULL, &res, err);

	if (rc)
		return rc;
	need_commit(m, res);
	rc = need_apply(m, res, apply, err);
	pvm_memlock_result_free(res);
	return rc;
}

int pvm_machine_hostdev_find(const struct pvm_machine *m, const char *id)
{
	for (size_t i = 0; i < m->nhostdevs; i++)
		if (id && !strcmp(m->hostdevs[i].id, id))
			return (int)i;
	return -ENOENT;
}

/* The libvirt XML fragment `virsh attach-device` would get for a stand-in device. */
static int hostdev_xml(char *buf, size_t len, const char *id, enum pvm_machine_hostdev_kind kind,
		       unsigned n)
{
	switch (kind) {
	case PVM_MACHINE_HOSTDEV_VFIO:
		return snprintf(buf, len,
				"<hostdev mode='subsystem' type='pci' managed='yes'><driver name='vfio'/>"
				"<source><address domain='0x0000' bus='0x%02x' slot='0x00' function='0x0'/>"
				"</source><alias name='%s'/></hostdev>", 0x10 + n, id);
	case PVM_MACHINE_HOSTDEV_NVME:
		return snprintf(buf, len,
				"<disk type='nvme' device='disk'><driver name='qemu' type='raw'/>"
				"<source type='pci' managed='yes' namespace='1'><address domain='0x0000' "
				"bus='0x%02x' slot='0x00' function='0x0'/></source>"
				"<target dev='vd%c' bus='virtio'/><alias name='%s'/></disk>",
				0x10 + n, 'b' + (char)(n % 24), id);
	case PVM_MACHINE_HOSTDEV_VDPA:
		return snprintf(buf, len,
				"<interface type='vdpa'><source dev='/dev/vhost-vdpa-%u'/>"
				"<alias name='%s'/></interface>", n, id);
	}
	return -1;
}

static enum pvm_dma_device_kind dma_kind(enum pvm_machine_hostdev_kind kind)
{
	return kind == PVM_MACHINE_HOSTDEV_VFIO ? PVM_DMA_DEVICE_VFIO : PVM_DMA_DEVICE_PIN_ALL;
}

/* With the vIOMMU enabled, the guest's driver maps its DMA window in the device's domain. */
static int guest_map_window(struct pvm_machine *m, uint32_t domain, struct pvm_error *err)
{
	if (pvm_dma_viommu_domain_entries(m->viommu, domain))
		return 0;
	return pvm_dma_viommu_map(m->viommu, domain, 0, 0, GUEST_DMA_WINDOW, err);
}

/* Give the new device its DMA space (its own behind the vIOMMU) and attach it there. */
static int hostdev_dma_attach(struct pvm_machine *m, struct pvm_machine_hostdev *h,
			      struct pvm_error *err)
{
	bool behind_viommu = m->viommu && h->kind == PVM_MACHINE_HOSTDEV_VFIO;
	int rc;

	if (behind_viommu || h->kind != PVM_MACHINE_HOSTDEV_VFIO) {
		struct pvm_dma_space_config scfg = { .name = h->id, .fd = -1 };

		if (behind_viommu) {
			scfg.viommu = m->viommu;
			scfg.domain = m->next_domain;
		}
		rc = pvm_dma_space_new(m->dma, &scfg, &h->space, err);
		if (rc)
			return rc;
		rc = space_add_ram(m, h->space, err);
		if (!rc && behind_viommu && pvm_dma_viommu_enabled(m->viommu))
			rc = guest_map_window(m, m->next_domain, err);
		if (rc) {
			pvm_dma_space_free(h->space);
			h->space = NULL;
			return rc;
		}
		h->own_space = true;
	} else {
		h->space = m->shared_space;
	}
	rc = pvm_dma_space_attach(h->space, h->id, dma_kind(h->kind), err);
	if (rc && h->own_space) {
		pvm_dma_space_free(h->space);
		h->space = NULL;
		h->own_space = false;
	}
	return rc;
}

/* Letters, digits, '-', '.', '_' (QEMU's id_wellformed() without its leading-letter rule, which
 * script ids do not follow either). The id is pasted into an XML attribute by hostdev_xml():
 * "a' b='c" used to attach as alias "a" while the machine kept "a' b='c", so device_del could
 * never find it in the domain model again. */
static bool id_ok(const char *id)
{
	for (const char *p = id; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      *p == '-' || *p == '.' || *p == '_'))
			return false;
	return true;
}

/* True when pvm_domain_detach(@id) would remove a device of the model: its id, its alias, or
 * one element of its chain ("vda#1"). */
static bool domain_uses_id(const struct pvm_domain *dom, const char *id)
{
	size_t l = strlen(id);

	for (size_t i = 0; i < pvm_domain_pt_count(dom); i++) {
		const struct pvm_domain_pt *p = pvm_domain_pt(dom, i);

		if (!strcmp(p->id, id) || (p->alias && !strcmp(p->alias, id)) ||
		    (!strncmp(p->id, id, l) && p->id[l] == '#'))
			return true;
	}
	for (size_t i = 0; i < pvm_domain_memdev_count(dom); i++) {
		const struct pvm_domain_memdev *d = pvm_domain_memdev(dom, i);

		if (!strcmp(d->id, id) || (d->alias && !strcmp(d->alias, id)))
			return true;
	}
	return false;
}

int pvm_machine_attach_hostdev(struct pvm_machine *m, const char *id, enum pvm_machine_hostdev_kind kind,
			       struct pvm_error *err)
{
	struct pvm_memlock_result *without = NULL, *with = NULL;
	struct pvm_machine_hostdev *h;
	char xml[512];
	int rc;

	if (!id || !*id || strlen(id) >= sizeof(h->id) || !id_ok(id))
		return pvm_error_set(err, -EINVAL, "bad device id");
	if (pvm_machine_hostdev_find(m, id) >= 0)
		return pvm_error_set(err, -EEXIST, "Duplicate device ID '%s'", id);
	/* Nor the id of a device the domain model already has (virtio-mem, a <hostdev> of the XML):
	 * an id names one device, and pvm_domain_detach() removes every pass-through device it
	 * names, so detaching the new one took the XML's own <hostdev> out of the model too. */
	if (domain_uses_id(m->dom, id))
		return pvm_error_set(err, -EEXIST, "Duplicate device ID '%s'", id);
	if (m->nhostdevs == PVM_MACHINE_MAX_DEVICES)
		return pvm_error_set(err, -ENOSPC, "too many host devices");
	/* Both needs first: the rollback below must not depend on an allocation. */
	rc = pvm_memlock_compute(m->dom, NULL, &without, err);
	if (rc)
		return rc;
	hostdev_xml(xml, sizeof(xml), id, kind, (unsigned)m->nhostdevs);
	rc = pvm_domain_attach_xml(m->dom, xml, strlen(xml), NULL, err);
	if (rc)
		goto out;
	rc = pvm_memlock_compute(m->dom, NULL, &with, err);
	if (rc)
		goto undo_domain;
	h = &m->hostdevs[m->nhostdevs];
	memset(h, 0, sizeof(*h));
	snprintf(h->id, sizeof(h->id), "%s", id);
	h->kind = kind;
	/* Raise first (libvirt's order); an EPERM is recorded and the attach goes on. */
	need_commit(m, with);
	rc = need_apply(m, with, 1, err);
	if (rc && rc != -EPERM)
		goto undo_memlock;
	pvm_error_clear(err);
	rc = hostdev_dma_attach(m, h, err);
	if (rc)
		goto undo_memlock;
	if (m->viommu && kind == PVM_MACHINE_HOSTDEV_VFIO)
		m->next_domain++; /* the domain is taken */
	m->nhostdevs++;
	PVM_TRACE(machine_attach_hostdev, "id=%s kind=%s", id, pvm_machine_hostdev_kind_name(kind));
	goto out;
undo_memlock:
	need_commit(m, without);
	(void)need_apply(m, without, 2, NULL);
undo_domain:
	(void)pvm_domain_detach(m->dom, id, NULL);
out:
	pvm_memlock_result_free(with);
	pvm_memlock_result_free(without);
	return rc;
}

int pvm_machine_detach_hostdev(struct pvm_machine *m, const char *id, struct pvm_error *err)
{
	int i = pvm_machine_hostdev_find(m, id);
	struct pvm_machine_event ev = { .kind = PVM_MACHINE_EVENT_DEVICE_DELETED };
	struct pvm_memlock_result *without = NULL;
	struct pvm_domain *after = NULL;
	struct pvm_machine_hostdev h;
	int rc;

	if (i < 0)
		return pvm_error_set(err, -ENOENT, "no host device '%s'", id ? id : "");
	/* The need without the device, computed before anything changes (on a copy of the
	 * domain), so that nothing after this point can fail for want of memory. */
	rc = pvm_domain_clone(m->dom, &after, err);
	if (!rc)
		rc = pvm_domain_detach(after, id, err);
	if (!rc)
		rc = pvm_memlock_compute(after, NULL, &without, err);
	pvm_domain_free(after);
	if (rc)
		return rc;
	h = m->hostdevs[i];
	if (h.own_space)
		pvm_dma_space_free(h.space); /* detaches, releases the vote, unmaps */
	else
		(void)pvm_dma_space_detach(h.space, h.id);
	memmove(&m->hostdevs[i], &m->hostdevs[i + 1], (m->nhostdevs - (size_t)i - 1) * sizeof(h));
	m->nhostdevs--;
	(void)pvm_domain_detach(m->dom, h.id, NULL);
	/* The balloon may now free what it held back while discarding was disabled. */
	if (m->balloon)
		(void)pvm_balloon_discard_changed(m->balloon);
	/* Lower after the detach; a refusal is recorded, the device is gone either way. */
	need_commit(m, without);
	(void)need_apply(m, without, 2, NULL);
	pvm_memlock_result_free(without);
	ev.id = h.id;
	pvm_machine_emit(m, &ev);
	PVM_TRACE(machine_detach_hostdev, "id=%s", h.id);
	return 0;
}

int pvm_machine_set_viommu(struct pvm_machine *m, bool enabled, struct pvm_error *err)
{
	int rc;

	if (!m->viommu)
		return pvm_error_set(err, -ENODEV, "the domain has no <iommu>");
	if (enabled) {
		for (size_t i = 0; i < m->nhostdevs; i++) {
			struct pvm_dma_space_stats st;

			pvm_dma_space_stats(m->hostdevs[i].space, &st);
			rc = guest_map_window(m, st.domain, err);
			if (rc)
				return rc;
		}
	}
	rc = pvm_dma_viommu_set_enabled(m->viommu, enabled, err);
	if (!rc && m->guest_ops && m->guest_ops->viommu)
		m->guest_ops->viommu(m->guest, enabled);
	return rc;
}

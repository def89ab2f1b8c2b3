/* SPDX-License-Identifier: MIT */
/*
 * Host devices: DMA spaces, the vIOMMU and the memlock lifecycle around attach and detach.
 *
 * Without <iommu> every device shares one space that maps all guest RAM at iova == gpa (boot RAM
 * always, virtio-mem regions as far as they are plugged, following the discard manager). With
 * <iommu> each device gets its own space bound to its own vIOMMU domain, as QEMU gives each
 * device behind a vIOMMU its own address space.
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

int pvm_machine_memlock_update(struct pvm_machine *m, int apply, struct pvm_error *err)
{
	struct pvm_memlock_result *res = NULL;
	int rc = pvm_memlock_compute(m->dom, NULL, &res, err);

	if (rc)
		return rc;
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
	if (apply && !m->opts.no_memlock) {
		struct pvm_error e = { 0 };

		if (!m->memlock)
			rc = pvm_memlock_ctl_open(getpid(), m->opts.memlock_state_dir, 0, &m->memlock, &e);
		if (!rc && apply == 1 && m->ml_kind != PVM_MACHINE_MEMLOCK_NONE)
			rc = pvm_memlock_ctl_before_attach(m->memlock, res, &e);
		else if (!rc && apply == 2)
			rc = pvm_memlock_ctl_after_detach(m->memlock, res, &e);
		m->ml_error = rc;
		if (rc) {
			pvm_warn("memlock: %s; continuing with the accounting budget of %llu bytes",
				 pvm_error_message(&e), (unsigned long long)m->ml_need);
			pvm_error_set(err, rc, "%s", pvm_error_message(&e));
		}
	}
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

int pvm_machine_attach_hostdev(struct pvm_machine *m, const char *id, enum pvm_machine_hostdev_kind kind,
			       struct pvm_error *err)
{
	struct pvm_machine_hostdev *h;
	char xml[512];
	int rc;

	if (!id || !*id || strlen(id) >= sizeof(h->id))
		return pvm_error_set(err, -EINVAL, "bad device id");
	if (pvm_machine_hostdev_find(m, id) >= 0)
		return pvm_error_set(err, -EEXIST, "device '%s' is already attached", id);
	if (m->nhostdevs == PVM_MACHINE_MAX_DEVICES)
		return pvm_error_set(err, -ENOSPC, "too many host devices");
	hostdev_xml(xml, sizeof(xml), id, kind, (unsigned)m->nhostdevs);
	rc = pvm_domain_attach_xml(m->dom, xml, strlen(xml), NULL, err);
	if (rc)
		return rc;
	h = &m->hostdevs[m->nhostdevs];
	memset(h, 0, sizeof(*h));
	snprintf(h->id, sizeof(h->id), "%s", id);
	h->kind = kind;
	/* Raise first; an EPERM is recorded and the attach goes on (file comment). */
	rc = pvm_machine_memlock_update(m, 1, err);
	if (rc && rc != -EPERM)
		goto undo_domain;
	pvm_error_clear(err);
	if (m->viommu) {
		struct pvm_dma_space_config scfg = { .name = id, .viommu = m->viommu,
						     .domain = m->next_domain, .fd = -1 };

		rc = pvm_dma_space_new(m->dma, &scfg, &h->space, err);
		if (!rc)
			rc = space_add_ram(m, h->space, err);
		if (!rc && pvm_dma_viommu_enabled(m->viommu))
			rc = guest_map_window(m, m->next_domain, err);
		if (rc) {
			pvm_dma_space_free(h->space);
			goto undo_memlock;
		}
		h->own_space = true;
		m->next_domain++;
	} else {
		h->space = m->shared_space;
	}
	rc = pvm_dma_space_attach(h->space, id, dma_kind(kind), err);
	if (rc) {
		if (h->own_space)
			pvm_dma_space_free(h->space);
		goto undo_memlock;
	}
	m->nhostdevs++;
	PVM_TRACE(machine_attach_hostdev, "id=%s kind=%s", id, pvm_machine_hostdev_kind_name(kind));
	return 0;
undo_memlock:
	(void)pvm_domain_detach(m->dom, id, NULL);
	(void)pvm_machine_memlock_update(m, 2, NULL);
	return rc;
undo_domain:
	(void)pvm_domain_detach(m->dom, id, NULL);
	(void)pvm_machine_memlock_update(m, 0, NULL);
	return rc;
}

int pvm_machine_detach_hostdev(struct pvm_machine *m, const char *id, struct pvm_error *err)
{
	int i = pvm_machine_hostdev_find(m, id);
	struct pvm_machine_event ev = { .kind = PVM_MACHINE_EVENT_DEVICE_DELETED };
	struct pvm_machine_hostdev h;
	int rc;

	if (i < 0)
		return pvm_error_set(err, -ENOENT, "no host device '%s'", id ? id : "");
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
	rc = pvm_machine_memlock_update(m, 2, err);
	if (rc == -EPERM)
		pvm_error_clear(err);
	ev.id = h.id;
	pvm_machine_emit(m, &ev);
	PVM_TRACE(machine_detach_hostdev, "id=%s", h.id);
	return rc == -EPERM ? 0 : rc;
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

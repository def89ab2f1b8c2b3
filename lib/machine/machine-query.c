/* SPDX-License-Identifier: MIT */
/* Queries: virtio-mem devices, balloon, memlock, host devices, discard, stats, audit. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "machine/machine-priv.h"

size_t pvm_machine_memdev_count(const struct pvm_machine *m)
{
	return m->nvmems;
}

int pvm_machine_memdev_info(struct pvm_machine *m, size_t i, struct pvm_machine_memdev_info *out)
{
	struct pvm_vmem_info vi;

	if (i >= m->nvmems)
		return -ENOENT;
	pvm_vmem_get_info(m->vmems[i].vmem, &vi);
	memset(out, 0, sizeof(*out));
	out->id = pvm_vmem_id(m->vmems[i].vmem);
	out->addr = vi.addr;
	out->region_size = vi.region_size;
	out->block_size = vi.block_size;
	out->usable_region_size = vi.usable_region_size;
	out->plugged_size = vi.plugged_size;
	out->requested_size = vi.requested_size;
	out->node = m->vmems[i].node;
	return 0;
}

int pvm_machine_memdev_resident(struct pvm_machine *m, size_t i, uint64_t *bytes)
{
	if (i >= m->nvmems)
		return -ENOENT;
	return pvm_mem_region_resident(m->vmems[i].region, 0, m->vmems[i].size, bytes, NULL);
}

void pvm_machine_balloon(struct pvm_machine *m, struct pvm_machine_balloon_info *out)
{
	struct pvm_balloon_info bi;

	memset(out, 0, sizeof(*out));
	if (!m->balloon)
		return;
	pvm_balloon_query(m->balloon, &bi);
	out->present = true;
	out->ram_size = bi.ram_size;
	out->target_bytes = bi.ram_size - PVM_MIN((uint64_t)bi.num_pages << 12, bi.ram_size);
	out->actual_bytes = bi.guest_bytes;
	out->inflated_bytes = bi.inflated_bytes;
	out->freed_bytes = bi.freed_bytes;
	out->inhibited = bi.inhibited;
}

void pvm_machine_memlock(struct pvm_machine *m, struct pvm_machine_memlock_info *out)
{
	struct pvm_dma_ctx_stats st;

	memset(out, 0, sizeof(*out));
	out->kind = m->ml_kind;
	out->need = m->ml_need;
	out->apply_error = m->ml_error;
	(void)pvm_memlock_get(getpid(), &out->soft, &out->hard, NULL);
	out->applied = m->ml_kind == PVM_MACHINE_MEMLOCK_NONE ? true : out->soft == m->ml_need;
	pvm_dma_ctx_stats(m->dma, &st);
	out->pinned = st.pinned;
	out->peak_pinned = st.peak_pinned;
	if (pvm_dma_ctx_budget(m->dma, &out->budget, NULL))
		out->budget = 0;
}

size_t pvm_machine_hostdev_count(const struct pvm_machine *m)
{
	return m->nhostdevs;
}

int pvm_machine_hostdev_info(struct pvm_machine *m, size_t i, struct pvm_machine_hostdev_info *out)
{
	struct pvm_dma_space_stats st;

	if (i >= m->nhostdevs)
		return -ENOENT;
	pvm_dma_space_stats(m->hostdevs[i].space, &st);
	out->id = m->hostdevs[i].id;
	out->kind = m->hostdevs[i].kind;
	out->mapped = st.mapped;
	out->viommu = st.viommu;
	return 0;
}

void pvm_machine_discard(struct pvm_machine *m, struct pvm_machine_discard_info *out)
{
	struct pvm_discard_counts c;

	memset(out, 0, sizeof(*out));
	pvm_discard_policy_counts(m->policy, &c);
	for (unsigned i = 0; i < 4 && i < PVM_DISCARD_NVOTES; i++)
		out->votes[i] = c.count[i];
	out->uncoordinated_disabled = pvm_discard_policy_is_disabled(m->policy) ||
				      c.count[PVM_DISCARD_DISABLE_UNCOORDINATED] > 0;
	out->coordinated_disabled = pvm_discard_policy_is_coordinated_disabled(m->policy);
}

void pvm_machine_stats(struct pvm_machine *m, struct pvm_machine_stats *out)
{
	uint64_t r = 0;

	memset(out, 0, sizeof(*out));
	if (pvm_mem_region_resident(m->ram, 0, m->ram_size, &r, NULL) == 0)
		out->rss_ram = r;
	out->rss = out->rss_ram;
	for (size_t i = 0; i < m->nvmems; i++) {
		r = 0;
		if (pvm_mem_region_resident(m->vmems[i].region, 0, m->vmems[i].size, &r, NULL) == 0)
			out->rss += r;
		out->requested += pvm_vmem_get_requested_size(m->vmems[i].vmem);
		out->plugged += pvm_vmem_get_plugged_size(m->vmems[i].vmem);
	}
	if (m->guest_ops && m->guest_ops->memory)
		m->guest_ops->memory(m->guest, &out->guest_total, &out->guest_used);
}

static int count_mapped(void *arg, uint64_t iova, uint64_t hva, uint64_t size)
{
	*(uint64_t *)arg += size;
	return 0;
}

int pvm_machine_audit(struct pvm_machine *m, struct pvm_machine_audit *out, struct pvm_error *err)
{
	uint64_t plugged = 0;

	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < m->nvmems; i++) {
		struct pvm_vmem_audit a;
		int rc = pvm_vmem_audit(m->vmems[i].vmem, &a, NULL);

		/* -EIO means "the audit ran and found something": the figures say what. */
		if (rc && rc != -EIO)
			return pvm_error_set(err, rc, "audit of %s could not run", pvm_vmem_id(m->vmems[i].vmem));
		out->resident_unplugged += a.resident_unplugged;
		out->memslot_mismatch += a.memslot_mismatch;
		out->size_mismatch += a.size_mismatch ? 1 : 0;
		out->protection_mismatch += a.protection_mismatch;
		plugged += pvm_vmem_get_plugged_size(m->vmems[i].vmem);
	}
	if (m->shared_space) {
		struct pvm_dma_space_stats st;
		uint64_t mapped = 0;

		pvm_dma_space_stats(m->shared_space, &st);
		(void)pvm_dma_space_for_each_mapping(m->shared_space, count_mapped, &mapped);
		if (st.live && mapped != m->ram_size + plugged)
			out->dma_mismatch++;
	}
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * Issue 6 acceptance scenarios, end to end in the library: the discard policy, DMA spaces with
 * the accounting backend, virtio-mem and virtio-balloon, each device driven by the guest-side
 * virtio driver over virtio-mmio.
 *
 * 1. A VFIO device attached: balloon inflation frees nothing and is reported inhibited;
 *    virtio-mem plug/unplug keeps working, with DMA maps updated before the plug is ACKed and
 *    removed before unplugged memory is freed; detach: counters return to zero and the balloon
 *    frees its pages.
 * 2. vIOMMU on with two devices: type1 charges pinned memory twice, iommufd once.
 */
#include <linux/virtio_mem.h>

#include "balloon-fixture.h"
#include "virtio/mem-state.h"
#include <pvmem/dma.h>
#include <pvmem/virtio-mem.h>

#define MiB BF_MiB
#define VMEM_GPA (4096 * MiB)
#define VMEM_SIZE (64 * MiB)
#define VMEM_BLOCK (2 * MiB)
#define VIO_GPA (1536 * MiB)          /* virtio-mem rings and buffers */
#define VIO_SIZE (2 * MiB)
#define VREQ_GPA (VIO_GPA + 1 * MiB)
#define VRESP_GPA (VREQ_GPA + 4096)

/* The whole machine of scenario 1. */
struct s1 {
	struct bf f;                           /* RAM, balloon, its driver, the discard policy */
	struct pvm_mem_region *vmem_ram;       /* virtio-mem backing */
	struct pvm_mem_region *vio;            /* virtio-mem rings */
	struct pvm_vmem *vmem;
	struct pvm_virtio_mmio *vmmio;
	struct pvm_vdrv *vdrv;
	struct pvm_dma_ctx *ctx;
	struct pvm_dma_space *space;
	struct pvm_discard_listener *probe;    /* registered after the space's listener */
	/* What the probe saw at its last notification. */
	unsigned populates, discards;
	bool mapped_at_populate;               /* space already mapped the range */
	bool unacked_at_populate;              /* response buffer still untouched */
	bool unmapped_at_discard;              /* space already unmapped the range */
	uint64_t resident_at_discard;          /* bytes of the range still resident */
};

/* Bytes of [iova, iova+size) covered by the space's container. */
struct cover { uint64_t iova, size, covered; };

static int cover_fn(void *arg, uint64_t iova, uint64_t hva, uint64_t size)
{
	struct cover *c = arg;
	uint64_t s = iova > c->iova ? iova : c->iova;
	uint64_t e = iova + size < c->iova + c->size ? iova + size : c->iova + c->size;

	if (s < e)
		c->covered += e - s;
	return 0;
}

static uint64_t covered(struct pvm_dma_space *space, uint64_t iova, uint64_t size)
{
	struct cover c = { iova, size, 0 };

	assert_int_equal(pvm_dma_space_for_each_mapping(space, cover_fn, &c), 0);
	return c.covered;
}

static int probe_populate(void *opaque, uint64_t gpa, uint64_t size)
{
	struct s1 *s = opaque;
	uint8_t *resp = bf_hva(&s->f, VRESP_GPA, PVM_VMEM_RESP_SIZE);

	s->populates++;
	s->mapped_at_populate = covered(s->space, gpa, size) == size;
	s->unacked_at_populate = resp[0] == 0xff && resp[1] == 0xff;
	return 0;
}

static void probe_discard(void *opaque, uint64_t gpa, uint64_t size)
{
	struct s1 *s = opaque;
	uint64_t res = 0;

	s->discards++;
	s->unmapped_at_discard = covered(s->space, gpa, size) == 0;
	assert_int_equal(pvm_mem_region_resident(s->vmem_ram, gpa - VMEM_GPA, size, &res, NULL), 0);
	s->resident_at_discard = res;
}

static const struct pvm_discard_listener_ops probe_ops = {
	.populate = probe_populate,
	.discard = probe_discard,
};

/* One virtio-mem request from the guest; returns the response type. */
static uint16_t vmem_request(struct s1 *s, uint16_t type, uint64_t addr, uint16_t nb)
{
	struct pvm_vmem_req req = { .type = type, .addr = addr, .nb_blocks = nb };
	struct pvm_vdrv_buf out = { VREQ_GPA, PVM_VMEM_REQ_SIZE }, in = { VRESP_GPA, PVM_VMEM_RESP_SIZE };
	uint16_t rtype = 0xffff, state = 0;
	void *tok;
	uint32_t len;
	int tag;

	pvm_vmem_req_encode(&req, bf_hva(&s->f, VREQ_GPA, PVM_VMEM_REQ_SIZE));
	memset(bf_hva(&s->f, VRESP_GPA, PVM_VMEM_RESP_SIZE), 0xff, PVM_VMEM_RESP_SIZE);
	assert_int_equal(pvm_vdrv_add(s->vdrv, 0, &out, 1, &in, 1, &tag), 0);
	pvm_vdrv_kick(s->vdrv, 0);
	pvm_vmem_wait_idle(s->vmem);
	assert_int_equal(pvm_vdrv_get_used(s->vdrv, 0, &tok, &len), 1);
	assert_true(pvm_vmem_resp_parse(bf_hva(&s->f, VRESP_GPA, PVM_VMEM_RESP_SIZE), len, &rtype, &state));
	return rtype;
}

static void s1_setup(struct s1 *s)
{
	struct pvm_mem_region_config rc = { .name = "vmem", .backend = PVM_MEM_BACKEND_ANON,
					     .size = VMEM_SIZE, .noreserve = true };
	struct pvm_vmem_config vc = { 0 };
	struct pvm_dma_ctx_config cc = { 0 };
	struct pvm_dma_space_config sc = { .name = "hostdev0", .fd = -1 };
	struct pvm_vdrv_config dc = { .features = ~0ULL, .ring_gpa = VIO_GPA, .ring_size = 1 * MiB };
	struct pvm_error err = { 0 };
	uint32_t slot;

	memset(s, 0, sizeof(*s));
	bf_setup(&s->f, &(struct bf_opts){ 0 });
	assert_int_equal(pvm_mem_region_new(&rc, &s->vmem_ram, NULL), 0);
	s->vio = bf_region(VIO_SIZE, "vio");
	assert_int_equal(pvm_memslot_free_id(s->f.mem, &slot), 0);
	assert_int_equal(pvm_memslot_add(s->f.mem, slot, 0, VIO_GPA, VIO_SIZE, pvm_mem_region_host(s->vio), NULL), 0);

	vc.id = "vmem0";
	vc.addr = VMEM_GPA;
	vc.region_size = VMEM_SIZE;
	vc.block_size = VMEM_BLOCK;
	vc.requested_size = 16 * MiB;
	vc.memory = s->vmem_ram;
	vc.memslots = s->f.mem;
	vc.discard_policy = s->f.policy;
	vc.async_threshold = UINT64_MAX;
	if (pvm_vmem_new(&vc, &s->vmem, &err) < 0)
		fail_msg("pvm_vmem_new: %s", pvm_error_message(&err));
	assert_int_equal(pvm_virtio_mmio_new(pvm_vmem_virtio_device(s->vmem), &s->vmmio, NULL), 0);
	if (pvm_vdrv_new(s->vmmio, s->f.mem, &dc, &s->vdrv, &err) < 0)
		fail_msg("virtio-mem driver: %s", pvm_error_message(&err));

	cc.model = PVM_DMA_MODEL_TYPE1;
	cc.backend = PVM_DMA_BACKEND_ACCOUNTING;
	cc.budget = 1024 * MiB;
	cc.policy = s->f.policy;
	assert_int_equal(pvm_dma_ctx_new(&cc, &s->ctx, NULL), 0);
	assert_int_equal(pvm_dma_space_new(s->ctx, &sc, &s->space, NULL), 0);
	assert_int_equal(pvm_dma_space_add_ram(s->space, 0, BF_RAM_SIZE, pvm_mem_region_host(s->f.ram),
					       NULL, NULL), 0);
	assert_int_equal(pvm_dma_space_add_ram(s->space, VMEM_GPA, VMEM_SIZE,
					       pvm_mem_region_host(s->vmem_ram),
					       pvm_vmem_discard_manager(s->vmem), NULL), 0);
}

static void s1_teardown(struct s1 *s)
{
	struct pvm_discard_counts n;

	pvm_discard_listener_unregister(s->probe);
	pvm_dma_space_free(s->space);
	pvm_dma_ctx_free(s->ctx);
	pvm_vdrv_free(s->vdrv);
	pvm_virtio_mmio_free(s->vmmio);
	pvm_vmem_free(s->vmem);
	/* Every vote of every path is balanced. */
	pvm_discard_policy_counts(s->f.policy, &n);
	for (int k = 0; k < PVM_DISCARD_NVOTES; k++)
		assert_int_equal(n.count[k], 0);
	bf_teardown(&s->f);
	pvm_mem_region_free(s->vmem_ram);
	pvm_mem_region_free(s->vio);
}

static void test_vfio_attached_balloon_inhibited_vmem_works(void **state)
{
	struct s1 s;
	struct pvm_discard_counts n;
	struct pvm_dma_ctx_stats cs;
	struct pvm_balloon_info bi;
	uint64_t res = 0;

	s1_setup(&s);
	bf_touch(&s.f, 0, 16 * MiB);

	/* Attach: the VFIO vote is taken, then the balloon is told (this also waits for any
	 * balloon request that saw the old policy). */
	assert_int_equal(pvm_dma_space_attach(s.space, "hostdev0", PVM_DMA_DEVICE_VFIO, NULL), 0);
	assert_int_equal(pvm_balloon_discard_changed(s.f.b), 0);
	pvm_discard_policy_counts(s.f.policy, &n);
	assert_int_equal(n.count[PVM_DISCARD_DISABLE_UNCOORDINATED], 1);
	assert_int_equal(n.count[PVM_DISCARD_REQUIRE_COORDINATED], 1);  /* virtio-mem's */
	pvm_dma_ctx_stats(s.ctx, &cs);
	assert_int_equal(cs.pinned, BF_RAM_SIZE);  /* boot RAM; nothing plugged yet */
	assert_int_equal(pvm_discard_manager_register(pvm_vmem_discard_manager(s.vmem), VMEM_GPA,
						      VMEM_SIZE, &probe_ops, &s, &s.probe, NULL), 0);

	/* Balloon: accepted, acknowledged, tracked, nothing freed, reported inhibited. */
	bf_range(&s.f, PVM_BALLOON_VQ_INFLATE, 0, 8 * MiB / 4096);
	bf_write_actual(&s.f, 8 * MiB / 4096);
	bi = bf_info(&s.f);
	assert_true(bi.inhibited);
	assert_true(bi.policy_disabled);
	assert_int_equal(bi.inflated_bytes, 8 * MiB);
	assert_int_equal(bi.freed_bytes, 0);
	assert_int_equal(bi.pending_bytes, 8 * MiB);
	assert_int_equal(bi.actual_pages, 8 * MiB / 4096);
	assert_int_equal(bf_resident(&s.f), 16 * MiB);

	/* virtio-mem plug: DMA mapped before the ACK. */
	assert_int_equal(vmem_request(&s, VIRTIO_MEM_REQ_PLUG, VMEM_GPA, 2), VIRTIO_MEM_RESP_ACK);
	assert_int_equal(s.populates, 1);
	assert_true(s.mapped_at_populate);
	assert_true(s.unacked_at_populate);
	assert_int_equal(covered(s.space, VMEM_GPA, 2 * VMEM_BLOCK), 2 * VMEM_BLOCK);
	pvm_dma_ctx_stats(s.ctx, &cs);
	assert_int_equal(cs.pinned, BF_RAM_SIZE + 2 * VMEM_BLOCK);
	assert_int_equal(pvm_vmem_get_plugged_size(s.vmem), 2 * VMEM_BLOCK);

	/* The guest uses the second block; then unplugs it: unmapped before it is freed. */
	memset((char *)pvm_mem_region_host(s.vmem_ram) + VMEM_BLOCK, 0x77, VMEM_BLOCK);
	assert_int_equal(vmem_request(&s, VIRTIO_MEM_REQ_UNPLUG, VMEM_GPA + VMEM_BLOCK, 1),
			 VIRTIO_MEM_RESP_ACK);
	assert_int_equal(s.discards, 1);
	assert_true(s.unmapped_at_discard);
	assert_int_equal(s.resident_at_discard, VMEM_BLOCK);
	assert_int_equal(covered(s.space, VMEM_GPA + VMEM_BLOCK, VMEM_BLOCK), 0);
	assert_int_equal(covered(s.space, VMEM_GPA, VMEM_BLOCK), VMEM_BLOCK);
	assert_int_equal(pvm_mem_region_resident(s.vmem_ram, VMEM_BLOCK, VMEM_BLOCK, &res, NULL), 0);
	assert_int_equal(res, 0);
	pvm_dma_ctx_stats(s.ctx, &cs);
	assert_int_equal(cs.pinned, BF_RAM_SIZE + VMEM_BLOCK);
	/* The balloon still holds everything back. */
	assert_int_equal(bf_info(&s.f).freed_bytes, 0);

	/* Detach: counters return to zero, then the balloon frees its pages. */
	assert_int_equal(pvm_dma_space_detach(s.space, "hostdev0"), 0);
	pvm_dma_ctx_stats(s.ctx, &cs);
	assert_int_equal(cs.pinned, 0);
	assert_int_equal(cs.mappings, 0);
	assert_int_equal(cs.mapped, 0);
	pvm_discard_policy_counts(s.f.policy, &n);
	assert_int_equal(n.count[PVM_DISCARD_DISABLE_UNCOORDINATED], 0);
	assert_int_equal(n.count[PVM_DISCARD_DISABLE], 0);
	assert_int_equal(pvm_balloon_discard_changed(s.f.b), 8 * MiB);
	bi = bf_info(&s.f);
	assert_false(bi.inhibited);
	assert_int_equal(bi.freed_bytes, 8 * MiB);
	assert_int_equal(bi.pending_bytes, 0);
	assert_int_equal(bf_resident(&s.f), 8 * MiB);

	/* virtio-mem keeps working with nobody listening from DMA. */
	assert_int_equal(vmem_request(&s, VIRTIO_MEM_REQ_UNPLUG_ALL, 0, 0), VIRTIO_MEM_RESP_ACK);
	assert_int_equal(pvm_vmem_get_plugged_size(s.vmem), 0);
	s1_teardown(&s);
}

/* ---- scenario 2: vIOMMU with two devices, type1 vs iommufd ---------------------------------------- */

static void viommu_two_devices(enum pvm_dma_model model, uint64_t factor)
{
	struct pvm_memslot_table *mem;
	struct pvm_mem_region *ram = bf_region(BF_RAM_SIZE, "ram");
	struct pvm_discard_policy *policy;
	struct pvm_dma_ctx_config cc = { .model = model, .backend = PVM_DMA_BACKEND_ACCOUNTING,
					 .budget = 1024 * MiB };
	struct pvm_dma_ctx *ctx;
	struct pvm_dma_viommu *v;
	struct pvm_dma_space *sp[2];
	struct pvm_dma_ctx_stats cs;
	struct pvm_discard_counts n;

	assert_int_equal(pvm_memslot_table_new(0, &mem), 0);
	assert_int_equal(pvm_discard_policy_new(&policy), 0);
	cc.policy = policy;
	assert_int_equal(pvm_dma_ctx_new(&cc, &ctx, NULL), 0);
	assert_int_equal(pvm_dma_viommu_new(&v), 0);
	for (uint32_t d = 0; d < 2; d++) {
		struct pvm_dma_space_config sc = { .name = d ? "dev1" : "dev0", .viommu = v,
						   .domain = d + 1, .fd = -1 };

		assert_int_equal(pvm_dma_space_new(ctx, &sc, &sp[d], NULL), 0);
		assert_int_equal(pvm_dma_space_add_ram(sp[d], 0, BF_RAM_SIZE, pvm_mem_region_host(ram),
						       NULL, NULL), 0);
		/* Each device's domain maps the same 16 MiB of guest RAM. */
		assert_int_equal(pvm_dma_viommu_map(v, d + 1, 0x100000000ULL, 0, 16 * MiB, NULL), 0);
	}
	assert_int_equal(pvm_dma_space_attach(sp[0], "dev0", PVM_DMA_DEVICE_VFIO, NULL), 0);
	assert_int_equal(pvm_dma_space_attach(sp[1], "dev1", PVM_DMA_DEVICE_VFIO, NULL), 0);
	/* vIOMMU off: each device sees all of RAM. */
	pvm_dma_ctx_stats(ctx, &cs);
	assert_int_equal(cs.pinned, factor * BF_RAM_SIZE);
	assert_int_equal(cs.mapped, 2 * BF_RAM_SIZE);
	/* vIOMMU on: only the domains. */
	assert_int_equal(pvm_dma_viommu_set_enabled(v, true, NULL), 0);
	pvm_dma_ctx_stats(ctx, &cs);
	assert_int_equal(cs.pinned, factor * 16 * MiB);
	assert_int_equal(cs.mapped, 2 * 16 * MiB);
	/* Both devices in one domain: the same pages, the same rule. */
	assert_int_equal(pvm_dma_space_set_domain(sp[1], 1, NULL), 0);
	pvm_dma_ctx_stats(ctx, &cs);
	assert_int_equal(cs.pinned, factor * 16 * MiB);
	assert_int_equal(pvm_dma_viommu_set_enabled(v, false, NULL), 0);
	pvm_dma_ctx_stats(ctx, &cs);
	assert_int_equal(cs.pinned, factor * BF_RAM_SIZE);

	assert_int_equal(pvm_dma_space_detach(sp[0], "dev0"), 0);
	assert_int_equal(pvm_dma_space_detach(sp[1], "dev1"), 0);
	pvm_dma_ctx_stats(ctx, &cs);
	assert_int_equal(cs.pinned, 0);
	pvm_discard_policy_counts(policy, &n);
	for (int k = 0; k < PVM_DISCARD_NVOTES; k++)
		assert_int_equal(n.count[k], 0);
	pvm_dma_space_free(sp[0]);
	pvm_dma_space_free(sp[1]);
	pvm_dma_viommu_free(v);
	pvm_dma_ctx_free(ctx);
	pvm_discard_policy_free(policy);
	pvm_memslot_table_free(mem);
	pvm_mem_region_free(ram);
}

static void test_viommu_two_devices_type1_doubles(void **state)
{
	viommu_two_devices(PVM_DMA_MODEL_TYPE1, 2);
}

static void test_viommu_two_devices_iommufd_once(void **state)
{
	viommu_two_devices(PVM_DMA_MODEL_IOMMUFD, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vfio_attached_balloon_inhibited_vmem_works),
		cmocka_unit_test(test_viommu_two_devices_type1_doubles),
		cmocka_unit_test(test_viommu_two_devices_iommufd_once),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/* vIOMMU: every transition (off -> on -> domain switch -> off) with virtio-mem plugging and
 * unplugging in between, two devices each in its own space, the mapping set checked against the
 * model after each step; type1 doubles the pinned bytes, iommufd does not; failed switches
 * restore the old view. */
#include <errno.h>
#include <string.h>

#include "test-util.h"
#include "dma-model.h"

#define MiB (1024ull * 1024)
#define GRAN (2 * MiB)
#define BOOT (64 * MiB)
#define VMEM_GPA (1024 * MiB)
#define VMEM_SIZE (64 * MiB)
#define HVA_BOOT 0x7f0000000000ull
#define HVA_VMEM 0x7f1000000000ull

struct fix {
	struct pvm_discard_policy *policy;   /* votes */
	struct fake_src src;                 /* virtio-mem stand-in */
	struct pvm_dma_ctx *ctx;             /* accounting */
	struct pvm_dma_viommu *v;            /* the vIOMMU */
	struct pvm_dma_space *s[2];          /* one space per device */
	uint32_t dom[2];                     /* each space's domain (model side) */
	struct model m;                      /* reference */
};

static void fix_init(struct fix *f, enum pvm_dma_model model, uint64_t budget)
{
	struct pvm_dma_ctx_config cfg = { .model = model, .budget = budget };

	memset(f, 0, sizeof(*f));
	assert_int_equal(pvm_discard_policy_new(&f->policy), 0);
	cfg.policy = f->policy;
	assert_int_equal(fake_src_init(&f->src, VMEM_GPA, VMEM_SIZE, GRAN), 0);
	assert_int_equal(pvm_dma_ctx_new(&cfg, &f->ctx, NULL), 0);
	assert_int_equal(pvm_dma_viommu_new(&f->v), 0);
	for (int i = 0; i < 2; i++) {
		struct pvm_dma_space_config sc = { .name = i ? "dev1" : "dev0", .viommu = f->v,
						   .domain = (uint32_t)i + 1, .fd = -1 };

		f->dom[i] = (uint32_t)i + 1;
		assert_int_equal(pvm_dma_space_new(f->ctx, &sc, &f->s[i], NULL), 0);
		assert_int_equal(pvm_dma_space_add_ram(f->s[i], 0, BOOT, (void *)(uintptr_t)HVA_BOOT, NULL,
						       NULL), 0);
		assert_int_equal(pvm_dma_space_add_ram(f->s[i], VMEM_GPA, VMEM_SIZE,
						       (void *)(uintptr_t)HVA_VMEM, f->src.m, NULL), 0);
	}
	f->m.ram[0] = (struct model_ram){ 0, BOOT, HVA_BOOT, NULL };
	f->m.ram[1] = (struct model_ram){ VMEM_GPA, VMEM_SIZE, HVA_VMEM, &f->src };
	f->m.nram = 2;
}

static void fix_fini(struct fix *f)
{
	struct pvm_discard_counts c;

	for (int i = 0; i < 2; i++)
		pvm_dma_space_free(f->s[i]);
	pvm_dma_viommu_free(f->v);
	pvm_dma_ctx_free(f->ctx);
	fake_src_fini(&f->src);
	pvm_discard_policy_counts(f->policy, &c);
	for (int i = 0; i < PVM_DISCARD_NVOTES; i++)
		assert_int_equal(c.count[i], 0);
	pvm_discard_policy_free(f->policy);
}

static void check(const struct fix *f)
{
	for (int i = 0; i < 2; i++)
		assert_true(model_check(&f->m, f->s[i], true, f->dom[i]));
}

static void vmap(struct fix *f, uint32_t dom, uint64_t iova, uint64_t gpa, uint64_t size)
{
	assert_int_equal(pvm_dma_viommu_map(f->v, dom, iova, gpa, size, NULL), 0);
	f->m.e[f->m.ne++] = (struct model_entry){ dom, iova, gpa, size };
}

static uint64_t pinned(const struct fix *f)
{
	struct pvm_dma_ctx_stats st;

	pvm_dma_ctx_stats(f->ctx, &st);
	return st.pinned;
}

static void run_transitions(enum pvm_dma_model model, uint64_t golden_pinned_off)
{
	struct fix f;

	fix_init(&f, model, PVM_DMA_BUDGET_UNLIMITED);
	assert_int_equal(fake_plug(&f.src, VMEM_GPA, 4 * GRAN), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pvm_dma_space_attach(f.s[i], i ? "hostdev1" : "hostdev0",
						      PVM_DMA_DEVICE_VFIO, NULL), 0);
	check(&f);
	/* vIOMMU off, two devices in two containers: type1 charges twice, iommufd once. */
	assert_int_equal(pinned(&f), golden_pinned_off);
	/* The guest programs domains while translation is still off: nothing changes. */
	vmap(&f, 1, 0x100000, 0x200000, 0x100000);                 /* boot RAM */
	vmap(&f, 1, 0x40000000, VMEM_GPA + GRAN, GRAN);            /* plugged block */
	vmap(&f, 1, 0x50000000, VMEM_GPA + 10 * GRAN, 2 * GRAN);   /* unplugged blocks */
	vmap(&f, 2, 0x100000, 0x800000, 0x200000);
	vmap(&f, 3, 0x0, 0x0, 0x400000);
	vmap(&f, 3, 0x7000000, 0xF0000000, 0x1000);                 /* not RAM: kept, not mapped */
	check(&f);
	/* off -> on */
	assert_int_equal(pvm_dma_viommu_set_enabled(f.v, true, NULL), 0);
	f.m.enabled = true;
	check(&f);
	/* plug the blocks domain 1 points at: its entry appears; unplug the one mapped: it goes. */
	assert_int_equal(fake_plug(&f.src, VMEM_GPA + 10 * GRAN, 2 * GRAN), 0);
	check(&f);
	assert_int_equal(fake_unplug(&f.src, VMEM_GPA + GRAN, GRAN), 0);
	check(&f);
	/* domain switch for device 0: 1 -> 3; device 1 stays in 2. */
	assert_int_equal(pvm_dma_space_set_domain(f.s[0], 3, NULL), 0);
	f.dom[0] = 3;
	check(&f);
	vmap(&f, 3, 0x8000000, VMEM_GPA + 11 * GRAN, GRAN);        /* live map into a shown domain */
	check(&f);
	assert_int_equal(pvm_dma_viommu_unmap(f.v, 3, 0x8000000, 0x1000, NULL, NULL), -EINVAL);
	assert_int_equal(pvm_dma_viommu_map(f.v, 3, 0x8000000, 0, 0x1000, NULL), -EEXIST);
	assert_int_equal(fake_plug(&f.src, VMEM_GPA + GRAN, GRAN), 0);
	check(&f);
	/* on -> off: identity of all plugged RAM again, in both spaces. */
	assert_int_equal(pvm_dma_viommu_set_enabled(f.v, false, NULL), 0);
	f.m.enabled = false;
	check(&f);
	assert_int_equal(fake_unplug(&f.src, VMEM_GPA + 10 * GRAN, 2 * GRAN), 0);
	check(&f);
	/* off -> on again, then the guest tears domain 3 down. */
	assert_int_equal(pvm_dma_viommu_set_enabled(f.v, true, NULL), 0);
	f.m.enabled = true;
	check(&f);
	uint64_t removed;
	assert_int_equal(pvm_dma_viommu_unmap(f.v, 3, 0, UINT64_MAX - 4095, &removed, NULL), 0);
	assert_int_equal(removed, 0x400000 + 0x1000 + GRAN);
	for (int k = 0; k < f.m.ne; k++)
		if (f.m.e[k].dom == 3)
			f.m.e[k--] = f.m.e[--f.m.ne];
	assert_int_equal(pvm_dma_viommu_domain_entries(f.v, 3), 0);
	check(&f);
	/* Detach device 1 while translation is on; reattach; then off with everything. */
	assert_int_equal(pvm_dma_space_detach(f.s[1], "hostdev1"), 0);
	check(&f);
	assert_int_equal(pvm_dma_space_attach(f.s[1], "hostdev1", PVM_DMA_DEVICE_VFIO, NULL), 0);
	check(&f);
	assert_int_equal(pvm_dma_viommu_set_enabled(f.v, false, NULL), 0);
	f.m.enabled = false;
	check(&f);
	assert_int_equal(pinned(&f), golden_pinned_off);   /* same 4 blocks plugged as at the start */
	fix_fini(&f);
}

static void test_transitions_type1(void **state)
{
	/* 2 containers x (64 MiB boot + 4 blocks) */
	run_transitions(PVM_DMA_MODEL_TYPE1, 2 * (BOOT + 4 * GRAN));
}

static void test_transitions_iommufd(void **state)
{
	run_transitions(PVM_DMA_MODEL_IOMMUFD, BOOT + 4 * GRAN);
}

/* Turning translation on needs more than the budget: the switch fails, the old view stays. */
static void test_failed_switch_restores(void **state)
{
	struct fix f;
	struct pvm_error err = { 0 };

	fix_init(&f, PVM_DMA_MODEL_TYPE1, 2 * BOOT);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pvm_dma_space_attach(f.s[i], i ? "hostdev1" : "hostdev0",
						      PVM_DMA_DEVICE_VFIO, NULL), 0);
	check(&f);
	/* Domains that alias the whole boot RAM twice: 2 x 2 x 64 MiB > budget once on. */
	vmap(&f, 1, 0, 0, BOOT);
	vmap(&f, 1, 1ull << 40, 0, BOOT);
	vmap(&f, 2, 0, 0, BOOT);
	vmap(&f, 2, 1ull << 40, 0, BOOT);
	assert_int_equal(pvm_dma_viommu_set_enabled(f.v, true, &err), -ENOMEM);
	assert_false(pvm_dma_viommu_enabled(f.v));
	check(&f);
	assert_int_equal(pinned(&f), 2 * BOOT);
	/* A domain switch that does not fit is undone as well. */
	assert_int_equal(pvm_dma_viommu_unmap(f.v, 1, 1ull << 40, BOOT, NULL, NULL), 0);
	assert_int_equal(pvm_dma_viommu_unmap(f.v, 2, 1ull << 40, BOOT, NULL, NULL), 0);
	f.m.ne = 0;
	f.m.e[f.m.ne++] = (struct model_entry){ 1, 0, 0, BOOT };
	f.m.e[f.m.ne++] = (struct model_entry){ 2, 0, 0, BOOT };
	vmap(&f, 4, 0, 0, BOOT);
	vmap(&f, 4, 1ull << 40, 0, BOOT);
	assert_int_equal(pvm_dma_viommu_set_enabled(f.v, true, NULL), 0);
	f.m.enabled = true;
	check(&f);
	assert_int_equal(pvm_dma_space_set_domain(f.s[0], 4, NULL), -ENOMEM);
	check(&f);
	/* A live map beyond the budget is refused and not recorded. */
	assert_int_equal(pvm_dma_viommu_map(f.v, 2, 1ull << 41, 0, 4096, NULL), -ENOMEM);
	assert_int_equal(pvm_dma_viommu_domain_entries(f.v, 2), 1);
	check(&f);
	fix_fini(&f);
}

static void test_viommu_input_checks(void **state)
{
	struct pvm_dma_viommu *v;

	assert_int_equal(pvm_dma_viommu_new(&v), 0);
	assert_int_equal(pvm_dma_viommu_map(v, 1, 0, 0, 0, NULL), -EINVAL);
	assert_int_equal(pvm_dma_viommu_map(v, 1, 1, 0, 4096, NULL), -EINVAL);
	assert_int_equal(pvm_dma_viommu_map(v, 1, UINT64_MAX - 4095, 0, 8192, NULL), -EINVAL);
	assert_int_equal(pvm_dma_viommu_map(v, 1, 0, UINT64_MAX - 4095, 4096, NULL), -EINVAL);
	assert_int_equal(pvm_dma_viommu_unmap(v, 9, 0, 4096, NULL, NULL), 0);
	assert_int_equal(pvm_dma_viommu_map(v, 1, 0, 0, 8192, NULL), 0);
	assert_int_equal(pvm_dma_viommu_unmap(v, 1, 4096, 4096, NULL, NULL), -EINVAL);
	assert_int_equal(pvm_dma_viommu_set_enabled(v, true, NULL), 0);
	assert_int_equal(pvm_dma_viommu_set_enabled(v, true, NULL), 0);
	pvm_dma_viommu_free(v);
	pvm_dma_viommu_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_transitions_type1),
		cmocka_unit_test(test_transitions_iommufd),
		cmocka_unit_test(test_failed_switch_restores),
		cmocka_unit_test(test_viommu_input_checks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

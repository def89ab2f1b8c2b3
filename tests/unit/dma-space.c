/* SPDX-License-Identifier: MIT */
/* DMA spaces without a vIOMMU: identity mapping that follows plug/unplug, device votes and
 * balanced counters on every path, the admission check, budget failures with rollback,
 * allocation torture. */
#include <errno.h>
#include <string.h>

#include "test-util.h"
#include "dma-model.h"

#define MiB (1024ull * 1024)
#define GiB (1024 * MiB)
#define GRAN (2 * MiB)
#define VMEM_GPA (4 * GiB)
#define VMEM_SIZE (256 * MiB)
#define HVA_BOOT 0x7f0000000000ull
#define HVA_VMEM 0x7f1000000000ull

struct fix {
	struct pvm_discard_policy *policy;   /* the machine's */
	struct fake_src src;                 /* virtio-mem stand-in */
	struct pvm_dma_ctx *ctx;             /* accounting */
	struct pvm_dma_space *s;             /* the space under test */
	struct model m;                      /* reference */
};

static void fix_init(struct fix *f, enum pvm_dma_model model, uint64_t budget, uint32_t max_maps,
		     uint32_t memslots)
{
	struct pvm_dma_ctx_config cfg = { .model = model, .budget = budget, .max_mappings = max_maps,
					  .max_memslots = memslots };
	struct pvm_dma_space_config sc = { .name = "vfio0", .fd = -1 };

	memset(f, 0, sizeof(*f));
	assert_int_equal(pvm_discard_policy_new(&f->policy), 0);
	cfg.policy = f->policy;
	assert_int_equal(fake_src_init(&f->src, VMEM_GPA, VMEM_SIZE, GRAN), 0);
	/* virtio-mem's realize: coordinated discards required. */
	assert_int_equal(pvm_discard_policy_take(f->policy, PVM_DISCARD_REQUIRE_COORDINATED, NULL), 0);
	assert_int_equal(pvm_dma_ctx_new(&cfg, &f->ctx, NULL), 0);
	assert_int_equal(pvm_dma_space_new(f->ctx, &sc, &f->s, NULL), 0);
	assert_int_equal(pvm_dma_space_add_ram(f->s, 0, GiB, (void *)(uintptr_t)HVA_BOOT, NULL, NULL), 0);
	assert_int_equal(pvm_dma_space_add_ram(f->s, VMEM_GPA, VMEM_SIZE, (void *)(uintptr_t)HVA_VMEM,
					       f->src.m, NULL), 0);
	f->m.ram[0] = (struct model_ram){ 0, GiB, HVA_BOOT, NULL };
	f->m.ram[1] = (struct model_ram){ VMEM_GPA, VMEM_SIZE, HVA_VMEM, &f->src };
	f->m.nram = 2;
}

static void assert_counts(const struct fix *f, unsigned du, unsigned d)
{
	struct pvm_discard_counts c;

	pvm_discard_policy_counts(f->policy, &c);
	assert_int_equal(c.count[PVM_DISCARD_DISABLE_UNCOORDINATED], du);
	assert_int_equal(c.count[PVM_DISCARD_DISABLE], d);
	assert_int_equal(c.count[PVM_DISCARD_REQUIRE_COORDINATED], 1);
	assert_int_equal(c.count[PVM_DISCARD_REQUIRE], 0);
}

static void fix_fini(struct fix *f)
{
	struct pvm_dma_ctx_stats st;

	pvm_dma_space_free(f->s);
	pvm_dma_ctx_stats(f->ctx, &st);
	assert_int_equal(st.pinned, 0);
	assert_int_equal(st.mappings, 0);
	pvm_dma_ctx_free(f->ctx);
	fake_src_fini(&f->src);
	assert_int_equal(pvm_discard_policy_release(f->policy, PVM_DISCARD_REQUIRE_COORDINATED), 0);
	{
		struct pvm_discard_counts c;

		pvm_discard_policy_counts(f->policy, &c);
		for (int i = 0; i < PVM_DISCARD_NVOTES; i++)
			assert_int_equal(c.count[i], 0);
	}
	pvm_discard_policy_free(f->policy);
}

static uint64_t pinned(const struct fix *f)
{
	struct pvm_dma_ctx_stats st;

	pvm_dma_ctx_stats(f->ctx, &st);
	return st.pinned;
}

static void test_identity_follows_plug_unplug(void **state)
{
	struct fix f;

	fix_init(&f, PVM_DMA_MODEL_TYPE1, PVM_DMA_BUDGET_UNLIMITED, 0, 0);
	assert_int_equal(fake_plug(&f.src, VMEM_GPA, 4 * GRAN), 0);     /* before the device */
	assert_true(model_check(&f.m, f.s, false, 0));                   /* not live: nothing */
	assert_int_equal(pvm_dma_space_attach(f.s, "hostdev0", PVM_DMA_DEVICE_VFIO, NULL), 0);
	assert_counts(&f, 1, 0);
	assert_true(model_check(&f.m, f.s, false, 0));                   /* replayed */
	assert_int_equal(pinned(&f), GiB + 4 * GRAN);
	assert_int_equal(fake_plug(&f.src, VMEM_GPA + 10 * GRAN, 3 * GRAN), 0);
	assert_true(model_check(&f.m, f.s, false, 0));
	assert_int_equal(fake_unplug(&f.src, VMEM_GPA + GRAN, 2 * GRAN), 0);
	assert_true(model_check(&f.m, f.s, false, 0));
	assert_int_equal(pinned(&f), GiB + 5 * GRAN);
	/* A second device shares the container: nothing new is pinned. */
	assert_int_equal(pvm_dma_space_attach(f.s, "hostdev1", PVM_DMA_DEVICE_VFIO, NULL), 0);
	assert_int_equal(pvm_dma_space_attach(f.s, "hostdev1", PVM_DMA_DEVICE_VFIO, NULL), -EEXIST);
	assert_counts(&f, 2, 0);
	assert_int_equal(pinned(&f), GiB + 5 * GRAN);
	assert_int_equal(pvm_dma_space_detach(f.s, "hostdev0"), 0);
	assert_true(model_check(&f.m, f.s, false, 0));
	assert_int_equal(pvm_dma_space_detach(f.s, "hostdev1"), 0);
	assert_int_equal(pvm_dma_space_detach(f.s, "hostdev1"), -ENOENT);
	assert_counts(&f, 0, 0);
	assert_int_equal(pinned(&f), 0);
	assert_int_equal(pvm_discard_manager_listener_count(f.src.m), 0);
	/* Remove / re-add RAM while live. */
	assert_int_equal(pvm_dma_space_attach(f.s, "hostdev0", PVM_DMA_DEVICE_NO_PIN, NULL), 0);
	assert_counts(&f, 0, 0);
	assert_int_equal(pvm_dma_space_remove_ram(f.s, VMEM_GPA), 0);
	assert_int_equal(pvm_dma_space_remove_ram(f.s, VMEM_GPA), -ENOENT);
	assert_int_equal(pinned(&f), GiB);
	assert_int_equal(pvm_dma_space_add_ram(f.s, VMEM_GPA, VMEM_SIZE, (void *)(uintptr_t)HVA_VMEM,
					       f.src.m, NULL), 0);
	assert_true(model_check(&f.m, f.s, false, 0));
	fix_fini(&f);
}

static void test_pin_all_device_conflicts_with_virtio_mem(void **state)
{
	struct fix f;
	struct pvm_error err = { 0 };

	fix_init(&f, PVM_DMA_MODEL_TYPE1, PVM_DMA_BUDGET_UNLIMITED, 0, 0);
	assert_int_equal(pvm_dma_space_attach(f.s, "vdpa0", PVM_DMA_DEVICE_PIN_ALL, &err), -EBUSY);
	assert_non_null(strstr(err.msg, "vdpa0"));
	assert_counts(&f, 0, 0);
	assert_int_equal(pinned(&f), 0);
	fix_fini(&f);
}

static void test_admission_check(void **state)
{
	static const struct { uint64_t size, gran; uint32_t slots; uint64_t need; } golden[] = {
		{ 64 * GiB, 2 * MiB, 32764, 65531 },      /* research §2.5: fits 65535, barely */
		{ 128 * GiB, 2 * MiB, 32764, 98299 },     /* does not */
		{ 1024 * GiB, 64 * MiB, 32764, 49147 },
		{ 3 * MiB, 2 * MiB, 0, 1 },               /* rounded up to 2 blocks, minus 1 section */
	};
	struct fix f;
	struct pvm_error err = { 0 };
	struct pvm_dma_space_stats st;

	for (size_t i = 0; i < sizeof(golden) / sizeof(golden[0]); i++)
		assert_int_equal(pvm_dma_mappings_needed(&golden[i].size, &golden[i].gran, 1, golden[i].slots),
				 golden[i].need);
	/* 128 blocks + 16 memslots - 1 section = 143 > 100: refused before anything is mapped. */
	fix_init(&f, PVM_DMA_MODEL_TYPE1, PVM_DMA_BUDGET_UNLIMITED, 100, 16);
	pvm_dma_space_stats(f.s, &st);
	assert_int_equal(st.needed_mappings, 143);
	assert_int_equal(pvm_dma_space_attach(f.s, "hostdev0", PVM_DMA_DEVICE_VFIO, &err), -ENOSPC);
	assert_non_null(strstr(err.msg, "143"));
	assert_counts(&f, 0, 0);
	assert_int_equal(pinned(&f), 0);
	assert_int_equal(pvm_discard_manager_listener_count(f.src.m), 0);
	fix_fini(&f);
}

static void test_budget_failures_roll_back(void **state)
{
	struct fix f;
	struct pvm_dma_space_stats st;

	/* Attach: boot RAM + 2 plugged blocks do not fit. */
	fix_init(&f, PVM_DMA_MODEL_TYPE1, GiB + GRAN, 0, 0);
	assert_int_equal(fake_plug(&f.src, VMEM_GPA, 2 * GRAN), 0);
	assert_int_equal(pvm_dma_space_attach(f.s, "hostdev0", PVM_DMA_DEVICE_VFIO, NULL), -ENOMEM);
	assert_counts(&f, 0, 0);
	assert_int_equal(pinned(&f), 0);
	assert_int_equal(pvm_discard_manager_listener_count(f.src.m), 0);
	/* Unplug one block: fits. A plug beyond the budget is refused, nothing changes. */
	assert_int_equal(fake_unplug(&f.src, VMEM_GPA + GRAN, GRAN), 0);
	assert_int_equal(pvm_dma_space_attach(f.s, "hostdev0", PVM_DMA_DEVICE_VFIO, NULL), 0);
	assert_int_equal(fake_plug(&f.src, VMEM_GPA + 8 * GRAN, 2 * GRAN), -ENOMEM);
	assert_int_equal(f.src.plugged[8] + f.src.plugged[9], 0);
	assert_true(model_check(&f.m, f.s, false, 0));
	pvm_dma_space_stats(f.s, &st);
	assert_int_equal(st.mappings, 2);
	assert_int_equal(pinned(&f), GiB + GRAN);
	fix_fini(&f);
}

static struct fix *tf;

static int torture_attach(void *arg)
{
	int rc = pvm_dma_space_attach(tf->s, "hostdev0", PVM_DMA_DEVICE_VFIO, NULL);

	if (rc)
		return rc;
	rc = pvm_dma_space_attach(tf->s, "hostdev1", PVM_DMA_DEVICE_VFIO, NULL);
	assert_int_equal(pvm_dma_space_detach(tf->s, "hostdev0"), 0);
	if (rc)
		return rc;
	return pvm_dma_space_detach(tf->s, "hostdev1");
}

static int torture_unchanged(void *arg)
{
	struct pvm_dma_space_stats st;
	struct pvm_discard_counts c;

	pvm_dma_space_stats(tf->s, &st);
	pvm_discard_policy_counts(tf->policy, &c);
	return st.devices == 0 && st.mappings == 0 && pinned(tf) == 0 &&
	       c.count[PVM_DISCARD_DISABLE_UNCOORDINATED] == 0 &&
	       pvm_discard_manager_listener_count(tf->src.m) == 0;
}

static void test_torture_attach(void **state)
{
	struct fix f;

	fix_init(&f, PVM_DMA_MODEL_IOMMUFD, PVM_DMA_BUDGET_UNLIMITED, 0, 0);
	assert_int_equal(fake_plug(&f.src, VMEM_GPA, 3 * GRAN), 0);
	assert_int_equal(fake_plug(&f.src, VMEM_GPA + 9 * GRAN, GRAN), 0);
	tf = &f;
	assert_true(pvm_test_torture(torture_attach, torture_unchanged, NULL) > 3);
	fix_fini(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_identity_follows_plug_unplug),
		cmocka_unit_test(test_pin_all_device_conflicts_with_virtio_mem),
		cmocka_unit_test(test_admission_check),
		cmocka_unit_test(test_budget_failures_roll_back),
		cmocka_unit_test(test_torture_attach),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

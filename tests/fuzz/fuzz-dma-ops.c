/* SPDX-License-Identifier: MIT */
/*
 * Fuzz random sequences of attach / detach / virtio-mem plug / unplug / vIOMMU switch / domain
 * map / unmap / domain switch on two device spaces behind one vIOMMU (type1 or iommufd, tight
 * budget), against the reference model of tests/unit/dma-model.h. After every operation both
 * spaces must map exactly what the model says; at the end every vote is released, nothing is
 * pinned and no listener is left. Each operation is 3 bytes; at most 512 operations.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../unit/dma-model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MiB (1024ull * 1024)
#define GRAN (2 * MiB)
#define BOOT (8 * MiB)
#define VMEM_GPA (64 * MiB)
#define VMEM_SIZE (32 * MiB)
#define HVA_BOOT 0x7f0000000000ull
#define HVA_VMEM 0x7f1000000000ull
#define NBLOCKS (VMEM_SIZE / GRAN)

#define CHECK(x)                      \
	do {                          \
		if (!(x))             \
			abort();      \
	} while (0)

static struct pvm_dma_space *sp[2];
static uint32_t dom[2];
static struct model m;
static struct fake_src src;

static void check_all(void)
{
	for (int i = 0; i < 2; i++)
		CHECK(model_check(&m, sp[i], true, dom[i]));
}

static bool range_state(uint64_t first, uint64_t n, unsigned char want)
{
	for (uint64_t b = first; b < first + n; b++)
		if (src.plugged[b] != want)
			return false;
	return true;
}

static void op_domain_unmap(struct pvm_dma_viommu *v, uint32_t d, uint64_t iova, uint64_t size)
{
	uint64_t removed = 0, want = 0;
	int rc = pvm_dma_viommu_unmap(v, d, iova, size, &removed, NULL);

	if (rc) {
		CHECK(rc == -EINVAL);
		return;
	}
	for (int k = 0; k < m.ne; k++) {
		if (m.e[k].dom == d && m.e[k].iova >= iova && m.e[k].iova + m.e[k].size <= iova + size) {
			want += m.e[k].size;
			m.e[k--] = m.e[--m.ne];
		}
	}
	CHECK(removed == want);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pvm_discard_policy *policy;
	struct pvm_dma_ctx *ctx;
	struct pvm_dma_viommu *v;
	struct pvm_dma_ctx_config cfg = { 0 };
	struct pvm_discard_counts c;
	bool attached[2] = { false, false };
	static const char *names[2] = { "hostdev0", "hostdev1" };

	if (size < 1 || size > 1 + 3 * 512)
		return 0;
	memset(&m, 0, sizeof(m));
	cfg.model = data[0] & 1 ? PVM_DMA_MODEL_IOMMUFD : PVM_DMA_MODEL_TYPE1;
	cfg.budget = BOOT + (uint64_t)(data[0] >> 1) * 1 * MiB;   /* tight: failures happen */
	cfg.max_mappings = 64;
	cfg.max_memslots = 8;
	CHECK(pvm_discard_policy_new(&policy) == 0);
	cfg.policy = policy;
	CHECK(fake_src_init(&src, VMEM_GPA, VMEM_SIZE, GRAN) == 0);
	CHECK(pvm_discard_policy_take(policy, PVM_DISCARD_REQUIRE_COORDINATED, NULL) == 0);
	CHECK(pvm_dma_ctx_new(&cfg, &ctx, NULL) == 0);
	CHECK(pvm_dma_viommu_new(&v) == 0);
	for (int i = 0; i < 2; i++) {
		struct pvm_dma_space_config sc = { .name = names[i], .viommu = v, .domain = 0, .fd = -1 };

		dom[i] = 0;
		CHECK(pvm_dma_space_new(ctx, &sc, &sp[i], NULL) == 0);
		CHECK(pvm_dma_space_add_ram(sp[i], 0, BOOT, (void *)(uintptr_t)HVA_BOOT, NULL, NULL) == 0);
		CHECK(pvm_dma_space_add_ram(sp[i], VMEM_GPA, VMEM_SIZE, (void *)(uintptr_t)HVA_VMEM, src.m,
					    NULL) == 0);
	}
	m.ram[0] = (struct model_ram){ 0, BOOT, HVA_BOOT, NULL };
	m.ram[1] = (struct model_ram){ VMEM_GPA, VMEM_SIZE, HVA_VMEM, &src };
	m.nram = 2;

	for (size_t p = 1; p + 3 <= size; p += 3) {
		uint8_t op = data[p] & 7, a = data[p + 1], b = data[p + 2];
		int i = (data[p] >> 3) & 1, rc;

		switch (op) {
		case 0:   /* attach */
			rc = pvm_dma_space_attach(sp[i], names[i], PVM_DMA_DEVICE_VFIO, NULL);
			CHECK(attached[i] ? rc == -EEXIST : (rc == 0 || rc == -ENOMEM || rc == -ENOSPC));
			if (rc == 0)
				attached[i] = true;
			break;
		case 1:   /* detach */
			rc = pvm_dma_space_detach(sp[i], names[i]);
			CHECK(rc == (attached[i] ? 0 : -ENOENT));
			attached[i] = false;
			break;
		case 2: { /* plug */
			uint64_t first = a % NBLOCKS, n = 1 + b % 4;

			if (first + n > NBLOCKS || !range_state(first, n, 0))
				break;
			rc = fake_plug(&src, VMEM_GPA + first * GRAN, n * GRAN);
			CHECK(rc == 0 || rc == -ENOMEM || rc == -ENOSPC);
			break;
		}
		case 3: { /* unplug */
			uint64_t first = a % NBLOCKS, n = 1 + b % 4;

			if (first + n > NBLOCKS || !range_state(first, n, 1))
				break;
			CHECK(fake_unplug(&src, VMEM_GPA + first * GRAN, n * GRAN) == 0);
			break;
		}
		case 4:   /* vIOMMU on/off */
			rc = pvm_dma_viommu_set_enabled(v, a & 1, NULL);
			CHECK(rc == 0 || rc == -ENOMEM || rc == -ENOSPC);
			if (rc == 0)
				m.enabled = a & 1;
			break;
		case 5: { /* domain map: into boot RAM, virtio-mem, or nowhere */
			uint32_t d = a % 3;
			uint64_t iova = (uint64_t)(b % 32) * 64 * 1024, len = (uint64_t)(1 + (a >> 2) % 4) * 4096;
			uint64_t gpa = (a >> 4) % 3 == 0 ? (uint64_t)(b % 16) * 4096 * 8 :
				       (a >> 4) % 3 == 1 ? VMEM_GPA + (uint64_t)(b % 16) * GRAN : 0xF0000000;
			bool overlap = false;

			if (m.ne >= MODEL_MAX_ENTRIES)
				break;
			for (int k = 0; k < m.ne; k++)
				if (m.e[k].dom == d && m.e[k].iova < iova + len && iova < m.e[k].iova + m.e[k].size)
					overlap = true;
			rc = pvm_dma_viommu_map(v, d, iova, gpa, len, NULL);
			CHECK(overlap ? rc == -EEXIST : (rc == 0 || rc == -ENOMEM || rc == -ENOSPC));
			if (rc == 0)
				m.e[m.ne++] = (struct model_entry){ d, iova, gpa, len };
			break;
		}
		case 6:   /* domain unmap */
			op_domain_unmap(v, a % 3, (uint64_t)(b % 32) * 64 * 1024,
					(uint64_t)(1 + a / 3 % 64) * 64 * 1024);
			break;
		case 7:   /* domain switch */
			rc = pvm_dma_space_set_domain(sp[i], a % 3, NULL);
			CHECK(rc == 0 || rc == -ENOMEM || rc == -ENOSPC);
			if (rc == 0)
				dom[i] = a % 3;
			break;
		}
		check_all();
		pvm_discard_policy_counts(policy, &c);
		CHECK(c.count[PVM_DISCARD_DISABLE_UNCOORDINATED] == (unsigned)attached[0] + attached[1]);
	}

	for (int i = 0; i < 2; i++)
		pvm_dma_space_free(sp[i]);
	{
		struct pvm_dma_ctx_stats st;

		pvm_dma_ctx_stats(ctx, &st);
		CHECK(st.pinned == 0 && st.mappings == 0);
	}
	CHECK(pvm_discard_manager_listener_count(src.m) == 0);
	pvm_dma_viommu_free(v);
	pvm_dma_ctx_free(ctx);
	fake_src_fini(&src);
	CHECK(pvm_discard_policy_release(policy, PVM_DISCARD_REQUIRE_COORDINATED) == 0);
	pvm_discard_policy_counts(policy, &c);
	for (int k = 0; k < PVM_DISCARD_NVOTES; k++)
		CHECK(c.count[k] == 0);
	pvm_discard_policy_free(policy);
	return 0;
}

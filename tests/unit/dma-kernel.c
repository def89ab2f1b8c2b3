/* SPDX-License-Identifier: MIT */
/* The kernel backend, recorded through the hook table: VFIO type1 GET_INFO (DMA_AVAIL
 * capability chain, malformed chains), MAP_DMA/UNMAP_DMA arguments, iommufd IOAS_ALLOC/MAP/
 * UNMAP/DESTROY arguments, and rollback of the accounting when the kernel refuses. */
#include <errno.h>
#include <string.h>
#include <linux/vfio.h>

#include "test-util.h"
#include <pvmem/dma.h>

#define MiB (1024ull * 1024)
#define HVA 0x7f0000000000ull

struct call {
	unsigned long req;      /* ioctl request */
	unsigned char arg[64];  /* copy of the first bytes of the argument */
};

static struct call calls[32];
static int ncalls;
static int fail_req_rc;            /* return this for the next map ioctl */
static uint32_t avail_cap = 3;     /* DMA_AVAIL to report; 0 = no capability */
static int bad_chain;              /* 1: self loop, 2: offset out of bounds */

static int hook_ioctl(void *opaque, int fd, unsigned long req, void *arg)
{
	assert_int_equal(fd, 42);
	if (ncalls < 32) {
		calls[ncalls].req = req;
		uint32_t len;   /* every VFIO/iommufd argument starts with its own size */

		memcpy(&len, arg, sizeof(len));
		memset(calls[ncalls].arg, 0, sizeof(calls[0].arg));
		memcpy(calls[ncalls].arg, arg, len < sizeof(calls[0].arg) ? len : sizeof(calls[0].arg));
		ncalls++;
	}
	if (req == VFIO_IOMMU_GET_INFO) {
		struct vfio_iommu_type1_info *info = arg;
		unsigned char *buf = arg;
		struct vfio_iommu_type1_info_dma_avail cap = { .header = { .id = VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL,
									     .version = 1 } };
		struct vfio_info_cap_header other = { .id = 1, .version = 1, .next = 64 };

		assert_true(info->argsz >= 128);
		info->flags = VFIO_IOMMU_INFO_CAPS;
		if (!avail_cap)
			return 0;
		/* chain: other at 32 -> (dma_avail at 64) */
		info->cap_offset = 32;
		if (bad_chain == 1)
			other.next = 32;
		if (bad_chain == 2)
			other.next = 100000;
		memcpy(buf + 32, &other, sizeof(other));
		cap.avail = avail_cap;
		memcpy(buf + 64, &cap, sizeof(cap));
		info->argsz = 128;
		return 0;
	}
	if (req == _IO(';', 0x81)) {            /* IOMMU_IOAS_ALLOC: out_ioas_id at offset 8 */
		uint32_t id = 7;

		memcpy((unsigned char *)arg + 8, &id, 4);
		return 0;
	}
	if ((req == VFIO_IOMMU_MAP_DMA || req == _IO(';', 0x85)) && fail_req_rc) {
		int rc = fail_req_rc;

		fail_req_rc = 0;
		return rc;
	}
	if (req == VFIO_IOMMU_UNMAP_DMA)
		return 0;   /* size stays as requested: all of it */
	return 0;
}

static const struct pvm_dma_hooks hooks = { .ioctl = hook_ioctl };

static struct pvm_dma_ctx *mkctx(enum pvm_dma_model model)
{
	struct pvm_dma_ctx_config cfg = { .model = model, .backend = PVM_DMA_BACKEND_KERNEL,
					  .budget = 16 * MiB, .hooks = &hooks };
	struct pvm_dma_ctx *ctx;

	assert_int_equal(pvm_dma_ctx_new(&cfg, &ctx, NULL), 0);
	return ctx;
}

static void test_type1_calls(void **state)
{
	struct pvm_dma_ctx *ctx = mkctx(PVM_DMA_MODEL_TYPE1);
	struct pvm_dma_container *c;
	struct pvm_dma_container_stats st;
	struct vfio_iommu_type1_dma_map m;
	struct vfio_iommu_type1_dma_unmap u;
	struct pvm_dma_ctx_stats cs;

	ncalls = 0;
	pvm_log_set_level(PVM_LOG_ERROR);   /* the hook does not report unmapped sizes back */
	assert_int_equal(pvm_dma_container_new(ctx, -1, &c, NULL), -EINVAL);   /* needs an fd */
	assert_int_equal(pvm_dma_container_new(ctx, 42, &c, NULL), 0);
	assert_int_equal(calls[0].req, VFIO_IOMMU_GET_INFO);
	pvm_dma_container_stats(c, &st);
	assert_int_equal(st.max_mappings, 3);                                   /* from DMA_AVAIL */
	assert_int_equal(pvm_dma_container_map(c, 0x100000, HVA, 2 * MiB, NULL), 0);
	assert_int_equal(calls[1].req, VFIO_IOMMU_MAP_DMA);
	memcpy(&m, calls[1].arg, sizeof(m));
	assert_int_equal(m.argsz, sizeof(m));
	assert_int_equal(m.flags, VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE);
	assert_int_equal(m.vaddr, HVA);
	assert_int_equal(m.iova, 0x100000);
	assert_int_equal(m.size, 2 * MiB);
	/* The kernel refuses: our accounting is rolled back. */
	fail_req_rc = -EFAULT;
	assert_int_equal(pvm_dma_container_map(c, 0x400000, HVA, 2 * MiB, NULL), -EFAULT);
	pvm_dma_ctx_stats(ctx, &cs);
	assert_int_equal(cs.pinned, 2 * MiB);
	assert_int_equal(pvm_dma_container_map(c, 0x400000, HVA + 2 * MiB, 2 * MiB, NULL), 0);
	assert_int_equal(pvm_dma_container_map(c, 0x800000, HVA + 4 * MiB, 2 * MiB, NULL), 0);
	assert_int_equal(pvm_dma_container_map(c, 0xc00000, HVA, 4096, NULL), -ENOSPC);
	/* One unmap ioctl spanning the two whole mappings. */
	ncalls = 0;
	assert_int_equal(pvm_dma_container_unmap(c, 0x400000, 0x800000, NULL, NULL), 0);
	assert_int_equal(ncalls, 1);
	assert_int_equal(calls[0].req, VFIO_IOMMU_UNMAP_DMA);
	memcpy(&u, calls[0].arg, sizeof(u));
	assert_int_equal(u.iova, 0x400000);
	assert_int_equal(u.size, 0x600000);
	pvm_dma_container_free(c);
	pvm_log_set_level(PVM_LOG_WARN);
	pvm_dma_ctx_stats(ctx, &cs);
	assert_int_equal(cs.pinned, 0);
	pvm_dma_ctx_free(ctx);
}

/* A capability chain that loops or points outside the buffer leaves the default limit. */
static void test_type1_bad_chains(void **state)
{
	for (int b = 0; b <= 2; b++) {
		struct pvm_dma_ctx *ctx = mkctx(PVM_DMA_MODEL_TYPE1);
		struct pvm_dma_container *c;
		struct pvm_dma_container_stats st;

		bad_chain = b;
		avail_cap = b == 0 ? 0 : 3;
		assert_int_equal(pvm_dma_container_new(ctx, 42, &c, NULL), 0);
		pvm_dma_container_stats(c, &st);
		assert_int_equal(st.max_mappings, PVM_DMA_DEFAULT_MAX_MAPPINGS);
		pvm_dma_container_free(c);
		pvm_dma_ctx_free(ctx);
	}
	bad_chain = 0;
	avail_cap = 3;
}

static void test_iommufd_calls(void **state)
{
	struct pvm_dma_ctx *ctx = mkctx(PVM_DMA_MODEL_IOMMUFD);
	struct pvm_dma_container *c;
	uint32_t u32[4];
	uint64_t u64[3];

	ncalls = 0;
	assert_int_equal(pvm_dma_container_new(ctx, 42, &c, NULL), 0);
	assert_int_equal(calls[0].req, _IO(';', 0x81));
	assert_int_equal(pvm_dma_container_ioas_id(c), 7);
	assert_int_equal(pvm_dma_container_map(c, 0x100000, HVA, 2 * MiB, NULL), 0);
	assert_int_equal(calls[1].req, _IO(';', 0x85));
	memcpy(u32, calls[1].arg, 16);
	memcpy(u64, calls[1].arg + 16, 24);
	assert_int_equal(u32[0], 40);              /* size */
	assert_int_equal(u32[1], 1 | 2 | 4);       /* FIXED_IOVA | WRITEABLE | READABLE */
	assert_int_equal(u32[2], 7);               /* ioas */
	assert_int_equal(u64[0], HVA);
	assert_int_equal(u64[1], 2 * MiB);
	assert_int_equal(u64[2], 0x100000);
	assert_int_equal(pvm_dma_container_unmap(c, 0, 4 * MiB, NULL, NULL), 0);
	assert_int_equal(calls[2].req, _IO(';', 0x86));
	memcpy(u32, calls[2].arg, 8);
	memcpy(u64, calls[2].arg + 8, 16);
	assert_int_equal(u32[1], 7);
	assert_int_equal(u64[0], 0x100000);
	assert_int_equal(u64[1], 2 * MiB);
	pvm_dma_container_free(c);
	assert_int_equal(calls[ncalls - 1].req, _IO(';', 0x80));   /* IOMMU_DESTROY */
	memcpy(u32, calls[ncalls - 1].arg, 8);
	assert_int_equal(u32[1], 7);
	pvm_dma_ctx_free(ctx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_type1_calls),
		cmocka_unit_test(test_type1_bad_chains),
		cmocka_unit_test(test_iommufd_calls),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/*
 * The kernel backend: VFIO type1 (VFIO_IOMMU_GET_INFO / MAP_DMA / UNMAP_DMA on a container fd)
 * and iommufd (IOMMU_IOAS_ALLOC / IOAS_MAP / IOAS_UNMAP / DESTROY on an iommufd fd). Every call
 * goes through the ctx's hook table, so tests record them without a device. The iommufd UAPI
 * structs are declared here because Debian 12's linux headers predate <linux/iommufd.h>; their
 * layout is the stable kernel ABI (include/uapi/linux/iommufd.h).
 */
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/vfio.h>

#include "dma/dma-priv.h"

#define PVM_IOMMUFD_TYPE ';'
#define PVM_IOMMU_DESTROY _IO(PVM_IOMMUFD_TYPE, 0x80)
#define PVM_IOMMU_IOAS_ALLOC _IO(PVM_IOMMUFD_TYPE, 0x81)
#define PVM_IOMMU_IOAS_MAP _IO(PVM_IOMMUFD_TYPE, 0x85)
#define PVM_IOMMU_IOAS_UNMAP _IO(PVM_IOMMUFD_TYPE, 0x86)
#define PVM_IOMMU_IOAS_MAP_FIXED_IOVA (1u << 0)
#define PVM_IOMMU_IOAS_MAP_WRITEABLE (1u << 1)
#define PVM_IOMMU_IOAS_MAP_READABLE (1u << 2)

struct pvm_iommu_destroy {
	uint32_t size;           /* sizeof(struct) */
	uint32_t id;             /* object to destroy */
};

struct pvm_iommu_ioas_alloc {
	uint32_t size;           /* sizeof(struct) */
	uint32_t flags;          /* 0 */
	uint32_t out_ioas_id;    /* the new IOAS */
};

struct pvm_iommu_ioas_map {
	uint32_t size;           /* sizeof(struct) */
	uint32_t flags;          /* PVM_IOMMU_IOAS_MAP_* */
	uint32_t ioas_id;        /* target IOAS */
	uint32_t reserved;       /* 0 */
	uint64_t user_va;        /* host address */
	uint64_t length;         /* bytes */
	uint64_t iova;           /* in: fixed iova */
};

struct pvm_iommu_ioas_unmap {
	uint32_t size;           /* sizeof(struct) */
	uint32_t ioas_id;        /* target IOAS */
	uint64_t iova;           /* start */
	uint64_t length;         /* in: bytes; out: bytes unmapped */
};

_Static_assert(sizeof(struct pvm_iommu_ioas_map) == 40, "iommu_ioas_map ABI");
_Static_assert(sizeof(struct pvm_iommu_ioas_unmap) == 24, "iommu_ioas_unmap ABI");

/* Size of the GET_INFO buffer: the info struct plus room for its capability chain. */
#define INFO_BUF 1024

/* Walk the type1 info capability chain for DMA_AVAIL; every offset is bounds-checked. */
static void read_dma_avail(const unsigned char *buf, uint32_t argsz, uint32_t *max)
{
	const struct vfio_iommu_type1_info *info = (const void *)buf;
	uint32_t off = info->cap_offset, len = PVM_MIN(argsz, (uint32_t)INFO_BUF);

	for (unsigned hops = 0; off && hops < 64; hops++) {
		struct vfio_info_cap_header hdr;

		if (off < sizeof(*info) || off > len || len - off < sizeof(hdr))
			return;
		memcpy(&hdr, buf + off, sizeof(hdr));
		if (hdr.id == VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL) {
			struct vfio_iommu_type1_info_dma_avail avail;

			if (len - off < sizeof(avail))
				return;
			memcpy(&avail, buf + off, sizeof(avail));
			*max = avail.avail;
			return;
		}
		off = hdr.next;
	}
}

int pvm_dma_kernel_open(struct pvm_dma_ctx *ctx, int fd, uint32_t *max, uint32_t *ioas,
			struct pvm_error *err)
{
	int rc;

	if (ctx->cfg.model == PVM_DMA_MODEL_TYPE1) {
		_Alignas(8) unsigned char buf[INFO_BUF];
		struct vfio_iommu_type1_info *info = (void *)buf;

		memset(buf, 0, sizeof(buf));
		info->argsz = sizeof(buf);
		rc = pvm_dma_sys_ioctl(ctx, fd, VFIO_IOMMU_GET_INFO, buf);
		if (rc)
			return pvm_error_set(err, rc, "VFIO_IOMMU_GET_INFO failed");
		if ((info->flags & VFIO_IOMMU_INFO_CAPS) && info->argsz <= sizeof(buf))
			read_dma_avail(buf, info->argsz, max);
		PVM_TRACE(dma_kernel_open, "type1 fd=%d max=%u", fd, *max);
		return 0;
	} else {
		struct pvm_iommu_ioas_alloc a = { .size = sizeof(a) };

		rc = pvm_dma_sys_ioctl(ctx, fd, PVM_IOMMU_IOAS_ALLOC, &a);
		if (rc)
			return pvm_error_set(err, rc, "IOMMU_IOAS_ALLOC failed");
		*ioas = a.out_ioas_id;
		PVM_TRACE(dma_kernel_open, "iommufd fd=%d ioas=%u", fd, *ioas);
		return 0;
	}
}

void pvm_dma_kernel_close(struct pvm_dma_ctx *ctx, int fd, uint32_t ioas)
{
	if (ctx->cfg.model == PVM_DMA_MODEL_IOMMUFD) {
		struct pvm_iommu_destroy d = { .size = sizeof(d), .id = ioas };
		int rc = pvm_dma_sys_ioctl(ctx, fd, PVM_IOMMU_DESTROY, &d);

		if (rc)
			pvm_warn("IOMMU_DESTROY of IOAS %u failed: %d", ioas, rc);
	}
}

int pvm_dma_kernel_map(struct pvm_dma_ctx *ctx, int fd, uint32_t ioas, uint64_t iova,
		       uint64_t hva, uint64_t size)
{
	if (ctx->cfg.model == PVM_DMA_MODEL_TYPE1) {
		struct vfio_iommu_type1_dma_map m = {
			.argsz = sizeof(m),
			.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
			.vaddr = hva,
			.iova = iova,
			.size = size,
		};

		return pvm_dma_sys_ioctl(ctx, fd, VFIO_IOMMU_MAP_DMA, &m);
	} else {
		struct pvm_iommu_ioas_map m = {
			.size = sizeof(m),
			.flags = PVM_IOMMU_IOAS_MAP_FIXED_IOVA | PVM_IOMMU_IOAS_MAP_READABLE |
				 PVM_IOMMU_IOAS_MAP_WRITEABLE,
			.ioas_id = ioas,
			.user_va = hva,
			.length = size,
			.iova = iova,
		};

		return pvm_dma_sys_ioctl(ctx, fd, PVM_IOMMU_IOAS_MAP, &m);
	}
}

int pvm_dma_kernel_unmap(struct pvm_dma_ctx *ctx, int fd, uint32_t ioas, uint64_t iova,
			 uint64_t size, uint64_t expect)
{
	if (ctx->cfg.model == PVM_DMA_MODEL_TYPE1) {
		struct vfio_iommu_type1_dma_unmap u = { .argsz = sizeof(u), .iova = iova, .size = size };
		int rc = pvm_dma_sys_ioctl(ctx, fd, VFIO_IOMMU_UNMAP_DMA, &u);

		if (!rc && u.size != expect)
			pvm_warn("VFIO unmap of 0x%llx+0x%llx removed 0x%llx bytes",
				 (unsigned long long)iova, (unsigned long long)size,
				 (unsigned long long)u.size);
		return rc;
	} else {
		struct pvm_iommu_ioas_unmap u = { .size = sizeof(u), .ioas_id = ioas, .iova = iova,
						  .length = size };
		int rc = pvm_dma_sys_ioctl(ctx, fd, PVM_IOMMU_IOAS_UNMAP, &u);

		if (!rc && u.length != expect)
			pvm_warn("iommufd unmap of 0x%llx+0x%llx removed 0x%llx bytes",
				 (unsigned long long)iova, (unsigned long long)size,
				 (unsigned long long)u.length);
		return rc;
	}
}

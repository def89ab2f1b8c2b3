/* SPDX-License-Identifier: MIT */
/* virtio-mem rig: a device driven through a real virtqueue by the guest-side driver (mem-rig.h). */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "core/util.h"
#include "virtio/driver.h"
#include "virtio/mem-rig.h"
#include "virtio/mem-state.h"

#define BOOT_SIZE (2 * PVM_MiB)        /* rings + request buffers */
#define RING_OFF 0                     /* rings at the start of boot RAM */
#define BUF_OFF (1 * PVM_MiB)          /* request at +0, response at +64 */

struct pvm_vmem_rig {
	struct pvm_memslot_table *slots;   /* guest memory map */
	struct pvm_mem_region *boot;       /* boot RAM: rings and buffers */
	struct pvm_mem_region *mem;        /* behind the device */
	uint64_t boot_gpa;                 /* where boot RAM is */
	uint32_t boot_slot;                /* its memslot */
	struct pvm_vmem *vmem;             /* the device */
	struct pvm_virtio_mmio *mmio;      /* its transport */
	struct pvm_vdrv *drv;              /* the guest driver */
	uint64_t driver_features;          /* what the driver accepts */
	unsigned config_irqs;              /* configuration-change interrupts seen */
};

static int driver_up(struct pvm_vmem_rig *rig, struct pvm_error *err)
{
	struct pvm_vdrv_config dc = {
		.features = rig->driver_features,
		.ring_gpa = rig->boot_gpa + RING_OFF,
		.ring_size = BUF_OFF - RING_OFF,
		.num_queues = 1,
	};

	return pvm_vdrv_new(rig->mmio, rig->slots, &dc, &rig->drv, err);
}

int pvm_vmem_rig_new(const struct pvm_vmem_rig_config *cfg, struct pvm_vmem_rig **out,
		     struct pvm_error *err)
{
	struct pvm_mem_region_config mc = { .name = "vmem", .backend = PVM_MEM_BACKEND_ANON,
					    .size = cfg->dev.region_size, .noreserve = true };
	struct pvm_mem_region_config bc = { .name = "boot", .backend = PVM_MEM_BACKEND_ANON,
					    .size = BOOT_SIZE };
	struct pvm_vmem_config dev = cfg->dev;
	struct pvm_vmem_rig *rig;
	uint64_t end;
	int rc;

	*out = NULL;
	if (cfg->hugetlb) {
		mc.backend = PVM_MEM_BACKEND_MEMFD;
		mc.hugetlb = true;
	}
	rig = pvm_calloc(1, sizeof(*rig));
	if (!rig)
		return pvm_error_set(err, -ENOMEM, "out of memory");
	rig->driver_features = cfg->driver_features
				       ? cfg->driver_features
				       : PVM_VIRTIO_BIT(VIRTIO_MEM_F_ACPI_PXM) |
						 PVM_VIRTIO_BIT(VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE) |
						 PVM_VIRTIO_BIT(VIRTIO_MEM_F_PERSISTENT_SUSPEND) |
						 PVM_VIRTIO_BIT(PVM_VIRTIO_F_EVENT_IDX) |
						 PVM_VIRTIO_BIT(PVM_VIRTIO_F_INDIRECT_DESC);
	/* Boot RAM below the device region if it fits there, else right after it. */
	rig->boot_gpa = 0;
	if (dev.addr < BOOT_SIZE) {
		if (pvm_add_overflow(dev.addr, dev.region_size, &end) || end > UINT64_MAX - BOOT_SIZE) {
			rc = pvm_error_set(err, -EINVAL, "no room for boot RAM next to the region");
			goto fail;
		}
		rig->boot_gpa = PVM_ALIGN_UP(end, PVM_MiB);
	}
	rc = pvm_memslot_table_new(0, &rig->slots);
	if (rc) {
		pvm_error_set(err, rc, "out of memory");
		goto fail;
	}
	rc = pvm_mem_region_new(&bc, &rig->boot, err);
	if (rc)
		goto fail;
	rc = pvm_memslot_add(rig->slots, 0, 0, rig->boot_gpa, BOOT_SIZE, pvm_mem_region_host(rig->boot), err);
	if (rc)
		goto fail;
	rc = pvm_mem_region_new(&mc, &rig->mem, err);
	if (rc)
		goto fail;
	dev.memory = rig->mem;
	dev.memslots = rig->slots;
	rc = pvm_vmem_new(&dev, &rig->vmem, err);
	if (rc)
		goto fail;
	rc = pvm_virtio_mmio_new(pvm_vmem_virtio_device(rig->vmem), &rig->mmio, err);
	if (rc)
		goto fail;
	rc = driver_up(rig, err);
	if (rc)
		goto fail;
	*out = rig;
	return 0;
fail:
	pvm_vmem_rig_free(rig);
	return rc;
}

void pvm_vmem_rig_free(struct pvm_vmem_rig *rig)
{
	if (!rig)
		return;
	pvm_vdrv_free(rig->drv);
	pvm_virtio_mmio_free(rig->mmio);
	pvm_vmem_free(rig->vmem);
	pvm_mem_region_free(rig->mem);
	pvm_mem_region_free(rig->boot);
	pvm_memslot_table_free(rig->slots);
	pvm_free(rig);
}

struct pvm_vmem *pvm_vmem_rig_device(struct pvm_vmem_rig *rig)
{
	return rig->vmem;
}

struct pvm_mem_region *pvm_vmem_rig_memory(struct pvm_vmem_rig *rig)
{
	return rig->mem;
}

struct pvm_memslot_table *pvm_vmem_rig_memslots(struct pvm_vmem_rig *rig)
{
	return rig->slots;
}

struct pvm_virtio_mmio *pvm_vmem_rig_mmio(struct pvm_vmem_rig *rig)
{
	return rig->mmio;
}

static void poll_irqs(struct pvm_vmem_rig *rig)
{
	if (rig->drv && (pvm_vdrv_ack_interrupt(rig->drv) & PVM_VIRTIO_INT_CONFIG))
		rig->config_irqs++;
}

unsigned pvm_vmem_rig_config_irqs(struct pvm_vmem_rig *rig)
{
	poll_irqs(rig);
	return rig->config_irqs;
}

int pvm_vmem_rig_request_raw(struct pvm_vmem_rig *rig, const void *req, uint32_t req_len,
			     uint32_t resp_len, uint16_t *resp, uint16_t *state)
{
	uint64_t req_gpa = rig->boot_gpa + BUF_OFF, resp_gpa = req_gpa + 4096;
	struct pvm_vdrv_buf out = { req_gpa, req_len }, in = { resp_gpa, resp_len };
	uint8_t *host = (uint8_t *)pvm_mem_region_host(rig->boot) + BUF_OFF;
	static int token;
	void *tok = NULL;
	uint32_t len = 0;
	int rc;

	if (!rig->drv)
		return -EIO;
	if (req_len > 4096 || resp_len > 4096)
		return -EINVAL;
	memcpy(host, req, req_len);
	memset(host + 4096, 0xff, resp_len);
	rc = pvm_vdrv_add(rig->drv, 0, &out, 1, &in, resp_len ? 1 : 0, &token);
	if (rc)
		return rc;
	pvm_vdrv_kick(rig->drv, 0);
	for (unsigned i = 0; i < 600000; i++) {
		rc = pvm_vdrv_get_used(rig->drv, 0, &tok, &len);
		if (rc != 0)
			break;
		if (pvm_vdrv_needs_reset(rig->drv))
			return -EIO;
		if (i < 100) {
			pvm_vmem_wait_idle(rig->vmem);
		} else {
			struct timespec ts = { 0, 100000 };

			nanosleep(&ts, NULL);
		}
	}
	poll_irqs(rig);
	if (rc < 0)
		return rc;
	if (rc == 0)
		return -ETIMEDOUT;
	if (len != PVM_VMEM_RESP_SIZE || !pvm_vmem_resp_parse(host + 4096, len, resp, state))
		return -EIO;
	return 0;
}

int pvm_vmem_rig_request(struct pvm_vmem_rig *rig, uint16_t type, uint64_t addr,
			 uint16_t nb_blocks, uint16_t *resp, uint16_t *state)
{
	struct pvm_vmem_req r = { .type = type, .addr = addr, .nb_blocks = nb_blocks };
	uint8_t buf[PVM_VMEM_REQ_SIZE];

	pvm_vmem_req_encode(&r, buf);
	return pvm_vmem_rig_request_raw(rig, buf, sizeof(buf), PVM_VMEM_RESP_SIZE, resp, state);
}

int pvm_vmem_rig_config64(struct pvm_vmem_rig *rig, uint32_t offset, uint64_t *val)
{
	uint8_t b[8];
	int rc;

	if (!rig->drv)
		return -EIO;
	rc = pvm_vdrv_config_read(rig->drv, offset, b, 8);
	if (rc)
		return rc;
	*val = 0;
	for (int i = 7; i >= 0; i--)
		*val = (*val << 8) | b[i];
	return 0;
}

int pvm_vmem_rig_reload_driver(struct pvm_vmem_rig *rig, struct pvm_error *err)
{
	poll_irqs(rig);
	pvm_vdrv_free(rig->drv);
	rig->drv = NULL;
	return driver_up(rig, err);
}

/* SPDX-License-Identifier: MIT */
/*
 * A virtio-mem test rig: a memslot table, a small "boot RAM" region for rings and request
 * buffers, a sparse (MAP_NORESERVE) region behind the device, the device, its virtio-mmio
 * transport and a guest-side driver (lib/virtio/driver.h). Every request goes through the real
 * virtqueue path: the rig writes it into guest memory, adds the buffers, kicks and collects the
 * used buffer. Used by `pvmem replay`, `pvmem bench vmem` and the device tests. Internal.
 */
#ifndef PVM_VIRTIO_MEM_RIG_H
#define PVM_VIRTIO_MEM_RIG_H

#include <pvmem/virtio-mem.h>

struct pvm_vmem_rig;

struct pvm_vmem_rig_config {
	struct pvm_vmem_config dev;   /* device config; .memory and .memslots are filled by the rig */
	uint64_t driver_features;     /* device bits the driver accepts; 0 = Linux's set */
	bool hugetlb;                 /* back the region with huge pages (memfd MFD_HUGETLB) */
};

int pvm_vmem_rig_new(const struct pvm_vmem_rig_config *cfg, struct pvm_vmem_rig **out,
		     struct pvm_error *err) PVM_MUST_CHECK;
void pvm_vmem_rig_free(struct pvm_vmem_rig *rig);

struct pvm_vmem *pvm_vmem_rig_device(struct pvm_vmem_rig *rig);
struct pvm_mem_region *pvm_vmem_rig_memory(struct pvm_vmem_rig *rig);
struct pvm_memslot_table *pvm_vmem_rig_memslots(struct pvm_vmem_rig *rig);
struct pvm_virtio_mmio *pvm_vmem_rig_mmio(struct pvm_vmem_rig *rig);

/* Send one request (type, addr, nb_blocks) through the virtqueue and wait for the answer
 * (asynchronous completions included, at most 60 s): 0 with *@resp and *@state, -EIO when
 * the device needs a reset (protocol violation) or answered with a bad length, -ETIMEDOUT,
 * or the driver's error. */
int pvm_vmem_rig_request(struct pvm_vmem_rig *rig, uint16_t type, uint64_t addr,
			 uint16_t nb_blocks, uint16_t *resp, uint16_t *state);
/* Send raw request bytes with response space @resp_len (protocol tests). Same returns; *@resp
 * is parsed from the 10 bytes written, if any. */
int pvm_vmem_rig_request_raw(struct pvm_vmem_rig *rig, const void *req, uint32_t req_len,
			     uint32_t resp_len, uint16_t *resp, uint16_t *state);
/* Read a 64-bit config field at @offset the way Linux does (generation-checked). */
int pvm_vmem_rig_config64(struct pvm_vmem_rig *rig, uint32_t offset, uint64_t *val);
/* Config-change interrupts seen by the driver so far. */
unsigned pvm_vmem_rig_config_irqs(struct pvm_vmem_rig *rig);
/* Reboot the guest driver: device reset (status 0) and a fresh driver (as after a system
 * reset or a driver reload). -errno when the driver cannot be set up again. */
int pvm_vmem_rig_reload_driver(struct pvm_vmem_rig *rig, struct pvm_error *err);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * virtio-mem internals: the wire format (virtio 1.4 §5.15, little-endian), the device's
 * logical state and the pure decision function. Nothing here touches memory, threads or the
 * virtqueue: decide() is a function of (state, request) only, so it is unit-tested and fuzzed
 * on its own (tests/unit/virtio-mem-cases.c, tests/fuzz/fuzz-vmem-req.c).
 */
#ifndef PVM_VIRTIO_MEM_STATE_H
#define PVM_VIRTIO_MEM_STATE_H

#include <stdbool.h>
#include <stdint.h>

#include <linux/virtio_mem.h>
#include <pvmem/bitmap.h>

/* virtio 1.4 adds bit 2; Debian 12's headers stop at bit 1. */
#ifndef VIRTIO_MEM_F_PERSISTENT_SUSPEND
#define VIRTIO_MEM_F_PERSISTENT_SUSPEND 2
#endif

#define PVM_VMEM_DEVICE_ID 24u      /* VIRTIO_ID_MEM */
#define PVM_VMEM_CONFIG_SIZE 56u    /* sizeof(struct virtio_mem_config) */
#define PVM_VMEM_REQ_SIZE 24u       /* sizeof(struct virtio_mem_req) */
#define PVM_VMEM_RESP_SIZE 10u      /* sizeof(struct virtio_mem_resp) */
#define PVM_VMEM_QUEUE_SIZE 128u    /* QEMU's queue size */
/* QEMU's VIRTIO_MEM_USABLE_EXTENT on x86: two Linux memory blocks of 128 MiB, so that the
 * guest can add a whole aligned memory block that is only partly plugged. */
#define PVM_VMEM_USABLE_EXTENT_X86 (256ULL << 20)

/* A request as parsed from its 24 bytes (padding ignored, DP1/DP2). */
struct pvm_vmem_req {
	uint16_t type;        /* VIRTIO_MEM_REQ_* (any value: unknown types are decided too) */
	uint64_t addr;        /* guest-physical start (PLUG, UNPLUG, STATE) */
	uint16_t nb_blocks;   /* number of blocks (PLUG, UNPLUG, STATE) */
};

/* The logical state decide() reads. */
struct pvm_vmem_view {
	uint64_t addr;                 /* region start (GPA) */
	uint64_t region_size;          /* bytes */
	uint64_t block_size;           /* power of two */
	uint64_t usable_region_size;   /* bytes from addr that may be plugged */
	uint64_t plugged_size;         /* bytes plugged */
	uint64_t requested_size;       /* host's target */
	const struct pvm_bitmap *plugged;  /* one bit per block of the region */
	bool busy;                     /* host cannot change blocks now (migration): BUSY */
};

/* What to do. */
enum pvm_vmem_action {
	PVM_VMEM_ACT_NONE = 0,         /* answer only (errors, NACK, STATE, BUSY) */
	PVM_VMEM_ACT_PLUG,             /* plug [first, first+count) blocks */
	PVM_VMEM_ACT_UNPLUG,           /* unplug [first, first+count) blocks */
	PVM_VMEM_ACT_UNPLUG_ALL,       /* unplug everything, then shrink the usable region */
	PVM_VMEM_ACT_SHRINK_USABLE,    /* nothing plugged: only resize the usable region (ACK) */
	PVM_VMEM_ACT_VIOLATION,        /* unknown request type: device needs reset, no answer */
};

struct pvm_vmem_decision {
	enum pvm_vmem_action action;   /* what act() must do */
	uint16_t resp;                 /* VIRTIO_MEM_RESP_*: the answer when the action succeeds */
	uint16_t state;                /* VIRTIO_MEM_STATE_* for STATE answers */
	uint64_t first;                /* first block index (PLUG/UNPLUG) */
	uint64_t count;                /* number of blocks (PLUG/UNPLUG) */
	const char *why;               /* reason for ERROR/NACK/BUSY/violation, for traces */
};

/* Parse @len bytes of a request (LE). false when shorter than 24 bytes. */
bool pvm_vmem_req_parse(const void *buf, uint64_t len, struct pvm_vmem_req *out);
/* Encode a request / response (tests, the guest side). */
void pvm_vmem_req_encode(const struct pvm_vmem_req *req, uint8_t out[PVM_VMEM_REQ_SIZE]);
void pvm_vmem_resp_encode(uint16_t type, uint16_t state, uint8_t out[PVM_VMEM_RESP_SIZE]);
bool pvm_vmem_resp_parse(const void *buf, uint64_t len, uint16_t *type, uint16_t *state);
/* The 56-byte config space from @v (LE); node_id given separately. */
void pvm_vmem_config_encode(const struct pvm_vmem_view *v, uint16_t node_id,
			    uint8_t out[PVM_VMEM_CONFIG_SIZE]);

/* The pure decision, in QEMU's order (research/virtio-mem.md §2.1):
 * range (ERROR) -> over requested (NACK, PLUG only) -> current state (ERROR) -> busy (BUSY)
 * -> action with answer ACK. STATE answers without a busy check; UNPLUG_ALL with nothing
 * plugged ACKs even when busy. */
void pvm_vmem_decide(const struct pvm_vmem_view *v, const struct pvm_vmem_req *req,
		     struct pvm_vmem_decision *d);

/* QEMU's usable-region policy: min(region, requested + extent) aligned up to the block size,
 * 0 when requested is 0; at run time (@can_shrink false) it never shrinks. */
uint64_t pvm_vmem_usable_size(uint64_t region_size, uint64_t block_size, uint64_t requested,
			      uint64_t extent, uint64_t current, bool can_shrink);

const char *pvm_vmem_req_name(uint16_t type);
const char *pvm_vmem_resp_name(uint16_t resp);
const char *pvm_vmem_state_name(uint16_t state);

#endif

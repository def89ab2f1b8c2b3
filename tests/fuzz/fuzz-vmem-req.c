/* SPDX-License-Identifier: MIT */
/*
 * Fuzz the virtio-mem request handler through the real virtqueue path: each input is a small
 * program of requests (raw 24 bytes with a chosen buffer length) and host requested-size
 * changes, run against one device (64 MiB, 2 MiB blocks). After every step the device must be
 * consistent (audit), answers must be one of the four types with exactly 10 bytes, and a
 * protocol violation must leave the host alive (the driver is reloaded).
 *
 * Input: byte 0 = initial requested size in blocks; then steps of 27 bytes:
 *   [0] op: 0-5 request, 6 set requested size (next byte: blocks), 7 system reset, else request
 *   [1] request length 16..40 (value % 25 + 16), [2] response length (value % 16 + 4)
 *   [3..26] the 24 request bytes (addr is rebased onto the region when [0] is even).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "virtio/mem-rig.h"
#include "virtio/mem-state.h"

#define BS (2 * PVM_MiB)
#define NB 32
#define BASE 0x100000000ULL
#define MAX_STEPS 64
#define STEP 27

static struct pvm_vmem_rig *rig;

static void teardown(void)
{
	pvm_vmem_rig_free(rig);
}

static void check(struct pvm_vmem *vm)
{
	struct pvm_vmem_audit a;

	if (pvm_vmem_audit(vm, &a, NULL))
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pvm_vmem *vm;

	if (!rig) {
		struct pvm_vmem_rig_config rc = { 0 };

		rc.dev.addr = BASE;
		rc.dev.region_size = NB * BS;
		rc.dev.block_size = BS;
		if (pvm_vmem_rig_new(&rc, &rig, NULL))
			abort();
		atexit(teardown);
	}
	vm = pvm_vmem_rig_device(rig);
	if (size < 1)
		return 0;
	if (pvm_vmem_set_requested_size(vm, (uint64_t)(data[0] % (NB + 1)) * BS, NULL) ||
	    pvm_vmem_system_reset(vm, false, NULL))
		__builtin_trap();
	data++;
	size--;
	for (unsigned step = 0; step < MAX_STEPS && size >= STEP; step++, data += STEP, size -= STEP) {
		uint8_t req[40];
		uint32_t req_len = data[1] % 25 + 16, resp_len = data[2] % 16 + 4;
		uint16_t resp = 0, st = 0;
		int rc;

		if (data[0] == 6) {
			if (pvm_vmem_set_requested_size(vm, (uint64_t)(data[3] % (NB + 1)) * BS, NULL))
				__builtin_trap();
			continue;
		}
		if (data[0] == 7) {
			if (pvm_vmem_system_reset(vm, false, NULL))
				__builtin_trap();
			continue;
		}
		memset(req, 0, sizeof(req));
		memcpy(req, data + 3, 24);
		if (!(data[0] & 1)) {
			/* keep most requests inside the region so that state changes happen */
			uint64_t addr = BASE + (uint64_t)(data[11] % NB) * BS;

			for (int i = 0; i < 8; i++)
				req[8 + i] = (uint8_t)(addr >> (8 * i));
			req[0] &= 3;
			req[1] = 0;
			req[17] = 0;
			req[16] %= NB + 1;
		}
		rc = pvm_vmem_rig_request_raw(rig, req, req_len, resp_len, &resp, &st);
		if (rc == 0 && (resp > VIRTIO_MEM_RESP_ERROR || req_len < 24 || resp_len < 10))
			__builtin_trap();
		if (rc == -EIO || pvm_virtio_device_is_broken(pvm_vmem_virtio_device(vm))) {
			if (pvm_vmem_rig_reload_driver(rig, NULL))
				__builtin_trap();
		} else if (rc) {
			__builtin_trap();
		}
		check(vm);
	}
	return 0;
}

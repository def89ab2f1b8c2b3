/* SPDX-License-Identifier: MIT */
/*
 * Asynchronous completion: unplug-all and preallocating plugs above the threshold are answered
 * by the worker (no BUSY), in order.
 */
#include <errno.h>
#include <string.h>

#include "test-util.h"
#include "core/util.h"
#include "virtio/mem-priv.h"
#include "virtio/mem-rig.h"

#define BS (2 * PVM_MiB)
#define BASE 0x100000000ULL
#define B(n) (BASE + (uint64_t)(n) * BS)

static struct pvm_vmem_rig *rig_new(bool prealloc)
{
	struct pvm_vmem_rig_config rc = { 0 };
	struct pvm_vmem_rig *rig;

	rc.dev.addr = BASE;
	rc.dev.region_size = 128 * BS;
	rc.dev.block_size = BS;
	rc.dev.requested_size = 128 * BS;
	rc.dev.prealloc = prealloc;
	rc.dev.enforce = PVM_ENFORCE_AUTO;
	rc.dev.async_threshold = 8 * BS;    /* anything above 16 MiB goes to the worker */
	assert_int_equal(pvm_vmem_rig_new(&rc, &rig, NULL), 0);
	return rig;
}

static uint16_t req(struct pvm_vmem_rig *rig, uint16_t type, uint64_t addr, uint16_t nb)
{
	uint16_t resp = 0xffff, st = 0;

	assert_int_equal(pvm_vmem_rig_request(rig, type, addr, nb, &resp, &st), 0);
	return resp;
}

static void test_unplug_all_async(void **state)
{
	struct pvm_vmem_rig *rig = rig_new(false);
	struct pvm_vmem *vm = pvm_vmem_rig_device(rig);
	struct pvm_vmem_info info;
	struct pvm_vmem_audit audit;

	assert_int_equal(req(rig, VIRTIO_MEM_REQ_PLUG, B(0), 64), VIRTIO_MEM_RESP_ACK);   /* sync */
	pvm_vmem_get_info(vm, &info);
	assert_int_equal(info.async_completions, 0);
	assert_int_equal(req(rig, VIRTIO_MEM_REQ_UNPLUG_ALL, 0, 0), VIRTIO_MEM_RESP_ACK);
	pvm_vmem_get_info(vm, &info);
	assert_int_equal(info.async_completions, 1);
	assert_int_equal(info.busy_answers, 0);
	assert_int_equal(info.plugged_size, 0);
	/* below the threshold: synchronous */
	assert_int_equal(req(rig, VIRTIO_MEM_REQ_PLUG, B(0), 4), VIRTIO_MEM_RESP_ACK);
	assert_int_equal(req(rig, VIRTIO_MEM_REQ_UNPLUG_ALL, 0, 0), VIRTIO_MEM_RESP_ACK);
	pvm_vmem_get_info(vm, &info);
	assert_int_equal(info.async_completions, 1);
	assert_int_equal(pvm_vmem_audit(vm, &audit, NULL), 0);
	pvm_vmem_rig_free(rig);
}

static void test_prealloc_plug_async(void **state)
{
	struct pvm_vmem_rig *rig = rig_new(true);
	struct pvm_vmem *vm = pvm_vmem_rig_device(rig);
	struct pvm_vmem_info info;
	uint64_t bytes;

	assert_int_equal(req(rig, VIRTIO_MEM_REQ_PLUG, B(0), 32), VIRTIO_MEM_RESP_ACK);
	pvm_vmem_get_info(vm, &info);
	assert_int_equal(info.async_completions, 1);
	assert_int_equal(info.plugged_size, 32 * BS);
	assert_int_equal(pvm_enforce_resident(pvm_vmem_rig_memory(rig), 0, 32 * BS, &bytes, NULL), 0);
	assert_int_equal(bytes, 32 * BS);
	/* the next requests are answered in order after it */
	assert_int_equal(req(rig, VIRTIO_MEM_REQ_STATE, B(0), 32), VIRTIO_MEM_RESP_ACK);
	assert_int_equal(req(rig, VIRTIO_MEM_REQ_UNPLUG, B(0), 32), VIRTIO_MEM_RESP_ACK);
	pvm_vmem_rig_free(rig);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unplug_all_async),
		cmocka_unit_test(test_prealloc_plug_async),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

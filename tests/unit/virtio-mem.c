/* SPDX-License-Identifier: MIT */
/*
 * virtio-mem device behaviour through a real virtqueue (lib/virtio/mem-rig.h): config layout,
 * feature negotiation, plug/unplug with memslots and discards, requested-size API and
 * configuration interrupts, UNPLUG_ALL, device vs system reset, protocol violations, BUSY with
 * rollback, preallocation, several devices on one memslot table, allocation failures.
 */
#include <errno.h>
#include <string.h>

#include "test-util.h"
#include <pvmem/discard.h>
#include "core/util.h"
#include "virtio/mem-priv.h"
#include "virtio/mem-rig.h"

#define BS (2 * PVM_MiB)
#define BASE 0x100000000ULL
#define B(n) (BASE + (uint64_t)(n) * BS)

struct events {
	unsigned size_changes;    /* size-change callbacks */
	uint64_t last_size;       /* last plugged size reported */
};

static void on_size(void *opaque, struct pvm_vmem *vm, uint64_t size)
{
	struct events *ev = opaque;

	ev->size_changes++;
	ev->last_size = size;
}

static struct pvm_vmem_rig *rig_new(uint64_t requested, enum pvm_enforce_mode mode, struct events *ev)
{
	struct pvm_vmem_rig_config rc = { 0 };
	struct pvm_vmem_rig *rig;
	struct pvm_error err = { 0 };

	rc.dev.id = "vmem-test";
	rc.dev.addr = BASE;
	rc.dev.region_size = 256 * BS;    /* 512 MiB */
	rc.dev.block_size = BS;
	rc.dev.node = 3;
	rc.dev.requested_size = requested;
	rc.dev.enforce = mode;
	rc.dev.on_size_change = on_size;
	rc.dev.opaque = ev;
	if (pvm_vmem_rig_new(&rc, &rig, &err))
		fail_msg("rig: %s", pvm_error_message(&err));
	return rig;
}

static uint16_t req(struct pvm_vmem_rig *rig, uint16_t type, uint64_t addr, uint16_t nb)
{
	uint16_t resp = 0xffff, st = 0;

	assert_int_equal(pvm_vmem_rig_request(rig, type, addr, nb, &resp, &st), 0);
	return resp;
}

static uint64_t cfg(struct pvm_vmem_rig *rig, uint32_t off)
{
	uint64_t v;

	assert_int_equal(pvm_vmem_rig_config64(rig, off, &v), 0);
	return v;
}

static void test_config_and_features(void **state)
{
	struct events ev = { 0 };
	struct pvm_vmem_rig *rig = rig_new(64 * BS, PVM_ENFORCE_NONE, &ev);
	struct pvm_virtio_device *vd = pvm_vmem_virtio_device(pvm_vmem_rig_device(rig));
	uint8_t node[2];

	assert_int_equal(pvm_virtio_device_id(vd), 24);
	assert_true(pvm_virtio_device_has_feature(vd, VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE));
	assert_int_equal(cfg(rig, 0), BS);
	assert_int_equal(cfg(rig, 16), BASE);
	assert_int_equal(cfg(rig, 24), 256 * BS);
	assert_int_equal(cfg(rig, 32), 64 * BS + 256 * PVM_MiB);   /* requested + 2 x 128 MiB */
	assert_int_equal(cfg(rig, 40), 0);
	assert_int_equal(cfg(rig, 48), 64 * BS);
	assert_int_equal(pvm_virtio_device_config_read(vd, 8, node, 2), 0);
	assert_int_equal(node[0] | (node[1] << 8), 3);
	pvm_vmem_rig_free(rig);
}

/* DI1: a driver refusing UNPLUGGED_INACCESSIBLE cannot finish feature negotiation. */
static void test_unplugged_inaccessible_required(void **state)
{
	struct pvm_vmem_rig_config rc = { 0 };
	struct pvm_vmem_rig *rig;

	rc.dev.addr = BASE;
	rc.dev.region_size = 64 * BS;
	rc.dev.block_size = BS;
	rc.driver_features = PVM_VIRTIO_BIT(VIRTIO_MEM_F_ACPI_PXM);
	assert_int_equal(pvm_vmem_rig_new(&rc, &rig, NULL), -EIO);
}

static void test_plug_unplug_memslots_and_discard(void **state)
{
	struct events ev = { 0 };
	struct pvm_vmem_rig *rig = rig_new(64 * BS, PVM_ENFORCE_AUTO, &ev);
	struct pvm_vmem *vm = pvm_vmem_rig_device(rig);
	struct pvm_memslot_table *t = pvm_vmem_rig_memslots(rig);
	struct pvm_vmem_info info;
	struct pvm_vmem_audit audit;
	void *hva;

	assert_null(pvm_memslot_gpa_to_hva(t, B(0)));
	assert_int_equal(req(rig, VIRTIO_MEM_REQ_PLUG, B(0), 4), VIRTIO_MEM_RESP_ACK);
	assert_int_equal(req(rig, VIRTIO_MEM_REQ_PLUG, B(8), 4), VIRTIO_MEM_RESP_ACK);
	assert_int_equal(req(rig, VIRTIO_MEM_REQ_PLUG, B(4), 4), VIRTIO_MEM_RESP_ACK);  /* merges */
	pvm_vmem_get_info(vm, &info);
	assert_int_equal(info.plugged_size, 12 * BS);
	assert_int_equal(info.memslots, 1);
	assert_int_equal(cfg(rig, 40), 12 * BS);
	assert_int_equal(ev.size_changes, 3);
	assert_int_equal(ev.last_size, 12 * BS);
	/* plugged memory is reachable and usable */
	assert_int_equal(pvm_memslot_translate(t, B(5), BS, PVM_ACCESS_WRITE, &hva), 0);
	memset(hva, 0x5a, BS);
	assert_int_equal(pvm_vmem_audit(vm, &audit, NULL), 0);
	/* unplug from the middle splits the slot; the memory is freed */
	assert_int_equal(req(rig, VIRTIO_MEM_REQ_UNPLUG, B(5), 1), VIRTIO_MEM_RESP_ACK);
	pvm_vmem_get_info(vm, &info);
	assert_int_equal(info.memslots, 2);
	assert_int_equal(pvm_memslot_translate(t, B(5), 4096, PVM_ACCESS_READ, &hva), -EFAULT);
	assert_int_equal(pvm_memslot_translate(t, B(4), 2 * BS, PVM_ACCESS_READ, &hva), -EFAULT);
	assert_int_equal(pvm_vmem_audit(vm, &audit, NULL), 0);
	assert_int_equal(audit.resident_unplugged, 0);
	/* no config interrupt for plugged_size changes (DC10) */
	assert_int_equal(pvm_vmem_rig_config_irqs(rig), 0);
	pvm_vmem_rig_free(rig);
}

static void test_requested_size_api(void **state)
{
	struct events ev = { 0 };
	struct pvm_vmem_rig *rig = rig_new(64 * BS, PVM_ENFORCE_NONE, &ev);
	struct pvm_vmem *vm = pvm_vmem_rig_device(rig);
	struct pvm_error err = { 0 };
	uint64_t usable = cfg(rig, 32);

	assert_int_equal(pvm_vmem_set_requested_size(vm, BS + 4096, &err), -EINVAL);
	assert_int_equal(pvm_vmem_set_requested_size(vm, 257 * BS, NULL), -EINVAL);
	assert_int_equal(pvm_vmem_rig_config_irqs(rig), 0);
	/* unchanged value: still an interrupt (QEMU, DC11) */
	assert_int_equal(pvm_vmem_set_requested_size(vm, 64 * BS, NULL), 0);
	assert_int_equal(pvm_vmem_rig_config_irqs(rig), 1);
	/* grow: usable grows (DC4, DC9) */
	assert_int_equal(pvm_vmem_set_requested_size(vm, 200 * BS, NULL), 0);
	assert_int_equal(pvm_vmem_rig_config_irqs(rig), 2);
	assert_int_equal(cfg(rig, 32), 256 * BS);
	assert_int_equal(cfg(rig, 48), 200 * BS);
	/* shrink: usable never shrinks at run time (DC8) */
	assert_int_equal(pvm_vmem_set_requested_size(vm, 2 * BS, NULL), 0);
	assert_int_equal(cfg(rig, 32), 256 * BS);
	assert_true(cfg(rig, 32) > usable);
	/* NACK once requested dropped */
	assert_int_equal(req(rig, VIRTIO_MEM_REQ_PLUG, B(0), 3), VIRTIO_MEM_RESP_NACK);
	assert_int_equal(req(rig, VIRTIO_MEM_REQ_PLUG, B(0), 2), VIRTIO_MEM_RESP_ACK);
	pvm_vmem_rig_free(rig);
}

static void test_unplug_all(void **state)
{
	struct events ev = { 0 };
	struct pvm_vmem_rig *rig = rig_new(64 * BS, PVM_ENFORCE_AUTO, &ev);
	struct pvm_vmem *vm = pvm_vmem_rig_device(rig);
	struct pvm_vmem_audit audit;
	unsigned irqs;

	assert_int_equal(pvm_vmem_set_requested_size(vm, 200 * BS, NULL), 0);
	assert_int_equal(req(rig, VIRTIO_MEM_REQ_PLUG, B(0), 100), VIRTIO_MEM_RESP_ACK);
	assert_int_equal(pvm_vmem_set_requested_size(vm, 10 * BS, NULL), 0);
	irqs = pvm_vmem_rig_config_irqs(rig);
	assert_int_equal(req(rig, VIRTIO_MEM_REQ_UNPLUG_ALL, 0, 0), VIRTIO_MEM_RESP_ACK);
	assert_int_equal(cfg(rig, 40), 0);
	assert_int_equal(cfg(rig, 32), 10 * BS + 256 * PVM_MiB);   /* shrunk (DA6) */
	assert_int_equal(pvm_vmem_rig_config_irqs(rig), irqs);      /* without interrupt (DC9) */
	assert_int_equal(req(rig, VIRTIO_MEM_REQ_UNPLUG_ALL, 0, 0), VIRTIO_MEM_RESP_ACK);
	assert_int_equal(pvm_vmem_audit(vm, &audit, NULL), 0);
	pvm_vmem_rig_free(rig);
}

/* DI2/DI3 vs DO7: a device reset keeps blocks and contents, a system reset unplugs all. */
static void test_device_reset_vs_system_reset(void **state)
{
	struct events ev = { 0 };
	struct pvm_vmem_rig *rig = rig_new(64 * BS, PVM_ENFORCE_AUTO, &ev);
	struct pvm_vmem *vm = pvm_vmem_rig_device(rig);
	void *hva;

	assert_int_equal(req(rig, VIRTIO_MEM_REQ_PLUG, B(0), 2), VIRTIO_MEM_RESP_ACK);
	assert_int_equal(pvm_memslot_translate(pvm_vmem_rig_memslots(rig), B(1), 64,
					       PVM_ACCESS_WRITE, &hva), 0);
	memcpy(hva, "persistent", 11);
	assert_int_equal(pvm_vmem_rig_reload_driver(rig, NULL), 0);
	assert_int_equal(pvm_vmem_get_plugged_size(vm), 2 * BS);
	assert_int_equal(cfg(rig, 40), 2 * BS);
	assert_string_equal((char *)hva, "persistent");
	assert_int_equal(req(rig, VIRTIO_MEM_REQ_STATE, B(0), 2), VIRTIO_MEM_RESP_ACK);
	/* S3 wake-up: nothing changes */
	assert_int_equal(pvm_vmem_system_reset(vm, true, NULL), 0);
	assert_int_equal(pvm_vmem_get_plugged_size(vm), 2 * BS);
	/* system reset: all unplugged, requested kept, usable resized */
	assert_int_equal(pvm_vmem_system_reset(vm, false, NULL), 0);
	assert_int_equal(pvm_vmem_get_plugged_size(vm), 0);
	assert_int_equal(pvm_vmem_get_requested_size(vm), 64 * BS);
	assert_null(pvm_memslot_gpa_to_hva(pvm_vmem_rig_memslots(rig), B(1)));
	assert_int_equal(ev.last_size, 0);
	pvm_vmem_rig_free(rig);
}

static void test_protocol_violations(void **state)
{
	struct events ev = { 0 };
	struct pvm_vmem_rig *rig = rig_new(64 * BS, PVM_ENFORCE_NONE, &ev);
	struct pvm_virtio_device *vd = pvm_vmem_virtio_device(pvm_vmem_rig_device(rig));
	uint8_t raw[24] = { 0 };
	uint16_t resp, st;

	/* a short request */
	assert_int_equal(pvm_vmem_rig_request_raw(rig, raw, 20, 10, &resp, &st), -EIO);
	assert_true(pvm_virtio_device_is_broken(vd));
	assert_int_equal(pvm_vmem_rig_reload_driver(rig, NULL), 0);
	assert_false(pvm_virtio_device_is_broken(vd));
	/* no room for the response */
	assert_int_equal(pvm_vmem_rig_request_raw(rig, raw, 24, 8, &resp, &st), -EIO);
	assert_int_equal(pvm_vmem_rig_reload_driver(rig, NULL), 0);
	/* an unknown request type */
	raw[0] = 9;
	assert_int_equal(pvm_vmem_rig_request_raw(rig, raw, 24, 10, &resp, &st), -EIO);
	assert_int_equal(pvm_vmem_rig_reload_driver(rig, NULL), 0);
	/* a larger response buffer still gets exactly 10 bytes */
	raw[0] = VIRTIO_MEM_REQ_STATE;
	raw[8] = 0;
	raw[12] = 1;   /* addr 0x100000000 */
	raw[16] = 1;
	assert_int_equal(pvm_vmem_rig_request_raw(rig, raw, 24, 64, &resp, &st), 0);
	assert_int_equal(resp, VIRTIO_MEM_RESP_ACK);
	assert_int_equal(st, VIRTIO_MEM_STATE_UNPLUGGED);
	pvm_vmem_rig_free(rig);
}

static int refuse_populate(void *opaque, uint64_t gpa, uint64_t size)
{
	return -ENOSPC;
}

static void ignore_discard(void *opaque, uint64_t gpa, uint64_t size)
{
	(*(unsigned *)opaque)++;
}

/* A host-side failure is BUSY (never ERROR) and rolls back everything. */
static void test_busy_rolls_back(void **state)
{
	struct events ev = { 0 };
	struct pvm_vmem_rig *rig = rig_new(64 * BS, PVM_ENFORCE_AUTO, &ev);
	struct pvm_vmem *vm = pvm_vmem_rig_device(rig);
	struct pvm_discard_listener_ops lops = { .populate = refuse_populate, .discard = ignore_discard };
	struct pvm_discard_listener *l;
	struct pvm_vmem_audit audit;
	struct pvm_vmem_info info;
	unsigned discards = 0;

	assert_int_equal(req(rig, VIRTIO_MEM_REQ_PLUG, B(0), 1), VIRTIO_MEM_RESP_ACK);
	assert_int_equal(pvm_discard_manager_register(pvm_vmem_discard_manager(vm), BASE, 256 * BS,
						      &lops, &discards, &l, NULL), -ENOSPC);
	assert_int_equal(pvm_discard_manager_register(pvm_vmem_discard_manager(vm), B(2), 2 * BS,
						      &lops, &discards, &l, NULL), 0);
	assert_int_equal(req(rig, VIRTIO_MEM_REQ_PLUG, B(1), 2), VIRTIO_MEM_RESP_BUSY);
	pvm_vmem_get_info(vm, &info);
	assert_int_equal(info.plugged_size, BS);
	assert_int_equal(info.memslots, 1);
	assert_int_equal(info.busy_answers, 1);
	assert_int_equal(pvm_vmem_audit(vm, &audit, NULL), 0);
	/* outside the listener's section it works */
	assert_int_equal(req(rig, VIRTIO_MEM_REQ_PLUG, B(1), 1), VIRTIO_MEM_RESP_ACK);
	pvm_discard_listener_unregister(l);
	/* migration: BUSY */
	pvm_vmem_set_busy(vm, true);
	assert_int_equal(req(rig, VIRTIO_MEM_REQ_UNPLUG, B(0), 1), VIRTIO_MEM_RESP_BUSY);
	assert_int_equal(req(rig, VIRTIO_MEM_REQ_UNPLUG_ALL, 0, 0), VIRTIO_MEM_RESP_BUSY);
	pvm_vmem_set_busy(vm, false);
	assert_int_equal(req(rig, VIRTIO_MEM_REQ_UNPLUG, B(0), 1), VIRTIO_MEM_RESP_ACK);
	pvm_vmem_rig_free(rig);
}

/* Two devices (two NUMA nodes) on one memslot table. */
static void test_two_devices(void **state)
{
	struct events ev = { 0 };
	struct pvm_vmem_rig *rig = rig_new(64 * BS, PVM_ENFORCE_NONE, &ev);
	struct pvm_mem_region_config mc = { .backend = PVM_MEM_BACKEND_ANON, .size = 64 * BS,
					    .noreserve = true };
	struct pvm_mem_region *mem;
	struct pvm_vmem *vm2;
	struct pvm_vmem_config c = { .id = "vmem1", .addr = BASE + PVM_GiB, .block_size = BS, .node = 1,
				     .requested_size = 8 * BS, .memslots = pvm_vmem_rig_memslots(rig) };
	struct pvm_vmem_decision d = { .action = PVM_VMEM_ACT_PLUG, .first = 0, .count = 8 };

	assert_int_equal(pvm_mem_region_new(&mc, &mem, NULL), 0);
	c.memory = mem;
	assert_int_equal(pvm_vmem_new(&c, &vm2, NULL), 0);
	assert_int_equal(req(rig, VIRTIO_MEM_REQ_PLUG, B(0), 8), VIRTIO_MEM_RESP_ACK);
	pthread_mutex_lock(&vm2->lock);
	assert_int_equal(pvm_vmem_act(vm2, &d), 0);
	pthread_mutex_unlock(&vm2->lock);
	assert_int_equal(pvm_memslot_count(pvm_vmem_rig_memslots(rig)), 3);   /* boot + 2 */
	assert_non_null(pvm_memslot_gpa_to_hva(pvm_vmem_rig_memslots(rig), BASE + PVM_GiB));
	pvm_vmem_free(vm2);
	assert_int_equal(pvm_memslot_count(pvm_vmem_rig_memslots(rig)), 2);
	pvm_mem_region_free(mem);
	pvm_vmem_rig_free(rig);
}

static void test_bad_configs(void **state)
{
	struct pvm_mem_region_config mc = { .backend = PVM_MEM_BACKEND_ANON, .size = 64 * BS,
					    .noreserve = true };
	struct pvm_mem_region *mem;
	struct pvm_memslot_table *t;
	struct pvm_vmem *vm;
	struct pvm_error err = { 0 };
	static const struct { uint64_t addr, size, bs, requested; } bad[] = {
		{ BASE, 64 * BS, 3 * PVM_MiB, 0 },          /* not a power of two */
		{ BASE, 64 * BS, 512 * PVM_KiB, 0 },        /* below 1 MiB */
		{ BASE + PVM_MiB, 64 * BS, BS, 0 },         /* unaligned address */
		{ BASE, 65 * BS, BS, 0 },                   /* larger than the memory */
		{ BASE, 64 * BS, BS, BS + 4096 },           /* unaligned requested */
		{ BASE, 64 * BS, BS, 65 * BS },             /* requested > region */
		{ UINT64_MAX - BS + 1, 64 * BS, BS, 0 },    /* wraps */
	};

	assert_int_equal(pvm_mem_region_new(&mc, &mem, NULL), 0);
	assert_int_equal(pvm_memslot_table_new(0, &t), 0);
	for (size_t i = 0; i < PVM_ARRAY_SIZE(bad); i++) {
		struct pvm_vmem_config c = { .addr = bad[i].addr, .region_size = bad[i].size,
					     .block_size = bad[i].bs, .requested_size = bad[i].requested,
					     .memory = mem, .memslots = t };

		pvm_error_clear(&err);
		assert_int_equal(pvm_vmem_new(&c, &vm, &err), -EINVAL);
		assert_true(strlen(pvm_error_message(&err)) > 0);
	}
	pvm_memslot_table_free(t);
	pvm_mem_region_free(mem);
}

struct torture {
	struct pvm_vmem *vm;      /* device under test */
	uint64_t first;           /* next block to plug */
	uint64_t plugged;         /* blocks plugged before this operation */
};

static int torture_plug(void *ctx)
{
	struct torture *t = ctx;
	struct pvm_vmem_decision d = { .action = PVM_VMEM_ACT_PLUG, .first = t->first, .count = 1 };
	int rc;

	pthread_mutex_lock(&t->vm->lock);
	rc = pvm_vmem_act(t->vm, &d);
	pthread_mutex_unlock(&t->vm->lock);
	return rc;
}

static int torture_unchanged(void *ctx)
{
	struct torture *t = ctx;
	struct pvm_vmem_audit a;

	return pvm_vmem_get_plugged_size(t->vm) == t->plugged * BS && pvm_vmem_audit(t->vm, &a, NULL) == 0;
}

/* Plugging many separate runs grows the memslot table: every allocation failure is -ENOMEM
 * (answered BUSY) with nothing changed. */
static void test_plug_allocation_failures(void **state)
{
	struct events ev = { 0 };
	struct pvm_vmem_rig *rig = rig_new(256 * BS, PVM_ENFORCE_NONE, &ev);
	struct torture t = { .vm = pvm_vmem_rig_device(rig) };

	for (int i = 0; i < 40; i++) {
		t.first = (uint64_t)i * 2;
		t.plugged = (uint64_t)i;
		pvm_test_torture(torture_plug, torture_unchanged, &t);
	}
	pvm_vmem_rig_free(rig);
}

static int torture_new(void *ctx)
{
	struct pvm_vmem_config *c = ctx;
	struct pvm_vmem *vm;
	int rc = pvm_vmem_new(c, &vm, NULL);

	pvm_vmem_free(vm);
	return rc;
}

static void test_new_allocation_failures(void **state)
{
	struct pvm_mem_region_config mc = { .backend = PVM_MEM_BACKEND_ANON, .size = 64 * BS,
					    .noreserve = true };
	struct pvm_mem_region *mem;
	struct pvm_memslot_table *t;
	struct pvm_vmem_config c = { .addr = BASE, .block_size = BS, .requested_size = 8 * BS };

	assert_int_equal(pvm_mem_region_new(&mc, &mem, NULL), 0);
	assert_int_equal(pvm_memslot_table_new(0, &t), 0);
	c.memory = mem;
	c.memslots = t;
	assert_true(pvm_test_torture(torture_new, NULL, &c) > 3);
	pvm_memslot_table_free(t);
	pvm_mem_region_free(mem);
}

static void test_prealloc(void **state)
{
	struct pvm_vmem_rig_config rc = { 0 };
	struct pvm_vmem_rig *rig;
	uint64_t bytes = 0;

	rc.dev.addr = BASE;
	rc.dev.region_size = 64 * BS;
	rc.dev.block_size = BS;
	rc.dev.requested_size = 8 * BS;
	rc.dev.prealloc = true;
	rc.dev.enforce = PVM_ENFORCE_AUTO;
	assert_int_equal(pvm_vmem_rig_new(&rc, &rig, NULL), 0);
	assert_int_equal(req(rig, VIRTIO_MEM_REQ_PLUG, B(0), 4), VIRTIO_MEM_RESP_ACK);
	assert_int_equal(pvm_mem_region_resident(pvm_vmem_rig_memory(rig), 0, 4 * BS, &bytes, NULL), 0);
	assert_int_equal(bytes, 4 * BS);
	assert_int_equal(req(rig, VIRTIO_MEM_REQ_UNPLUG, B(0), 4), VIRTIO_MEM_RESP_ACK);
	assert_int_equal(pvm_mem_region_resident(pvm_vmem_rig_memory(rig), 0, 4 * BS, &bytes, NULL), 0);
	assert_int_equal(bytes, 0);
	pvm_vmem_rig_free(rig);
}

/* With hugetlb backing and an empty pool, a preallocating plug answers BUSY, not a crash. */
static void test_prealloc_hugetlb_empty_pool(void **state)
{
	struct pvm_vmem_rig_config rc = { 0 };
	struct pvm_vmem_rig *rig;
	struct pvm_error err = { 0 };
	uint16_t resp, st;

	rc.dev.addr = BASE;
	rc.dev.region_size = 8 * BS;
	rc.dev.block_size = BS;
	rc.dev.requested_size = 8 * BS;
	rc.dev.prealloc = true;
	rc.hugetlb = true;
	if (pvm_vmem_rig_new(&rc, &rig, &err)) {
		skip();   /* no hugetlb memfd here */
		return;
	}
	assert_int_equal(pvm_vmem_rig_request(rig, VIRTIO_MEM_REQ_PLUG, B(0), 8, &resp, &st), 0);
	if (resp == VIRTIO_MEM_RESP_ACK) {
		pvm_vmem_rig_free(rig);
		skip();   /* the pool had pages */
		return;
	}
	assert_int_equal(resp, VIRTIO_MEM_RESP_BUSY);
	assert_int_equal(pvm_vmem_get_plugged_size(pvm_vmem_rig_device(rig)), 0);
	pvm_vmem_rig_free(rig);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_and_features),
		cmocka_unit_test(test_unplugged_inaccessible_required),
		cmocka_unit_test(test_plug_unplug_memslots_and_discard),
		cmocka_unit_test(test_requested_size_api),
		cmocka_unit_test(test_unplug_all),
		cmocka_unit_test(test_device_reset_vs_system_reset),
		cmocka_unit_test(test_protocol_violations),
		cmocka_unit_test(test_busy_rolls_back),
		cmocka_unit_test(test_two_devices),
		cmocka_unit_test(test_bad_configs),
		cmocka_unit_test(test_plug_allocation_failures),
		cmocka_unit_test(test_new_allocation_failures),
		cmocka_unit_test(test_prealloc),
		cmocka_unit_test(test_prealloc_hugetlb_empty_pool),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/*
 * virtio-mmio version 2 register file: identity registers, feature windows and negotiation,
 * queue registers, interrupts (status, ACK, level callback), configuration space with its
 * generation, reset, and robustness against any access a guest can make.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "test-util.h"
#include "virtio-test.h"
#include "core/util.h"

struct fx {
	struct tguest g;              /* guest memory */
	struct echo *e;               /* the device */
	struct pvm_virtio_mmio *m;    /* its transport */
	bool level;                   /* interrupt line */
	unsigned raises;              /* calls with level true */
	unsigned lowers;              /* calls with level false */
};

static void irq(void *opaque, bool level)
{
	struct fx *f = opaque;

	f->level = level;
	if (level)
		f->raises++;
	else
		f->lowers++;
}

static const uint64_t OFFERED = PVM_VIRTIO_CORE_FEATURES | PVM_VIRTIO_BIT(0) | PVM_VIRTIO_BIT(5);

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	pvm_log_set_level(PVM_LOG_ERROR);
	tguest_init(&f->g);
	f->e = echo_new(&f->g, OFFERED, 2, 64);
	assert_int_equal(pvm_virtio_mmio_new(f->e->dev, &f->m, NULL), 0);
	pvm_virtio_mmio_set_irq(f->m, irq, f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	pvm_virtio_mmio_free(f->m);
	echo_free(f->e);
	tguest_fini(&f->g);
	free(f);
	return 0;
}

static uint32_t rd(struct fx *f, uint64_t off)
{
	return (uint32_t)pvm_virtio_mmio_read(f->m, off, 4);
}

static void wr(struct fx *f, uint64_t off, uint32_t v)
{
	pvm_virtio_mmio_write(f->m, off, 4, v);
}

static void negotiate(struct fx *f, uint64_t features)
{
	wr(f, PVM_VIRTIO_MMIO_STATUS, 0);
	wr(f, PVM_VIRTIO_MMIO_STATUS, 1);
	wr(f, PVM_VIRTIO_MMIO_STATUS, 3);
	wr(f, PVM_VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	wr(f, PVM_VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(features >> 32));
	wr(f, PVM_VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	wr(f, PVM_VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)features);
	wr(f, PVM_VIRTIO_MMIO_STATUS, 0x0b);
}

static void setup_queue(struct fx *f, unsigned q, uint32_t num, uint64_t base)
{
	wr(f, PVM_VIRTIO_MMIO_QUEUE_SEL, q);
	wr(f, PVM_VIRTIO_MMIO_QUEUE_NUM, num);
	wr(f, PVM_VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)base);
	wr(f, PVM_VIRTIO_MMIO_QUEUE_DESC_HIGH, (uint32_t)(base >> 32));
	wr(f, PVM_VIRTIO_MMIO_QUEUE_AVAIL_LOW, (uint32_t)(base + 0x1000));
	wr(f, PVM_VIRTIO_MMIO_QUEUE_AVAIL_HIGH, 0);
	wr(f, PVM_VIRTIO_MMIO_QUEUE_USED_LOW, (uint32_t)(base + 0x2000));
	wr(f, PVM_VIRTIO_MMIO_QUEUE_USED_HIGH, 0);
	wr(f, PVM_VIRTIO_MMIO_QUEUE_READY, 1);
}

/* Golden register values of a fresh device. */
static void test_identity_registers(void **state)
{
	struct fx *f = *state;
	static const struct { uint32_t off, value; } regs[] = {
		{ PVM_VIRTIO_MMIO_MAGIC_VALUE, 0x74726976 },
		{ PVM_VIRTIO_MMIO_VERSION_REG, 2 },
		{ PVM_VIRTIO_MMIO_DEVICE_ID, ECHO_ID },
		{ PVM_VIRTIO_MMIO_VENDOR_ID, PVM_VIRTIO_MMIO_VENDOR },
		{ PVM_VIRTIO_MMIO_DEVICE_FEATURES, 0x30000021 },  /* sel 0: bits 0, 5, 28, 29 */
		{ PVM_VIRTIO_MMIO_QUEUE_NUM_MAX, 64 },
		{ PVM_VIRTIO_MMIO_QUEUE_READY, 0 },
		{ PVM_VIRTIO_MMIO_INTERRUPT_STATUS, 0 },
		{ PVM_VIRTIO_MMIO_STATUS, 0 },
		{ PVM_VIRTIO_MMIO_CONFIG_GENERATION, 0 },
		{ PVM_VIRTIO_MMIO_SHM_LEN_LOW, 0xffffffff },
		{ PVM_VIRTIO_MMIO_SHM_LEN_HIGH, 0xffffffff },
		{ PVM_VIRTIO_MMIO_QUEUE_RESET, 0 },
	};

	for (size_t i = 0; i < PVM_ARRAY_SIZE(regs); i++) {
		print_message("reg 0x%03x\n", regs[i].off);
		assert_int_equal(rd(f, regs[i].off), regs[i].value);
	}
	wr(f, PVM_VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	assert_int_equal(rd(f, PVM_VIRTIO_MMIO_DEVICE_FEATURES), 1);  /* VERSION_1 = bit 32 */
	wr(f, PVM_VIRTIO_MMIO_DEVICE_FEATURES_SEL, 2);
	assert_int_equal(rd(f, PVM_VIRTIO_MMIO_DEVICE_FEATURES), 0);
	wr(f, PVM_VIRTIO_MMIO_QUEUE_SEL, 1);
	assert_int_equal(rd(f, PVM_VIRTIO_MMIO_QUEUE_NUM_MAX), 64);
	wr(f, PVM_VIRTIO_MMIO_QUEUE_SEL, 2);
	assert_int_equal(rd(f, PVM_VIRTIO_MMIO_QUEUE_NUM_MAX), 0);   /* no such queue */
	assert_int_equal(rd(f, PVM_VIRTIO_MMIO_QUEUE_READY), 0);
	assert_ptr_equal(pvm_virtio_mmio_device(f->m), f->e->dev);
}

struct nego_case {
	const char *name;
	uint64_t driver;      /* features the driver writes */
	uint64_t refuse;      /* bits the device's validate refuses */
	bool ok;              /* FEATURES_OK sticks */
};

static const struct nego_case nego_cases[] = {
	{ "version 1 only", PVM_VIRTIO_BIT(32), 0, true },
	{ "everything offered", OFFERED | PVM_VIRTIO_BIT(32), 0, true },
	{ "no VERSION_1", PVM_VIRTIO_BIT(0), 0, false },
	{ "nothing", 0, 0, false },
	{ "bit not offered", PVM_VIRTIO_BIT(32) | PVM_VIRTIO_BIT(1), 0, false },
	{ "packed ring not offered", PVM_VIRTIO_BIT(32) | PVM_VIRTIO_BIT(34), 0, false },
	{ "device refuses bit 5", PVM_VIRTIO_BIT(32) | PVM_VIRTIO_BIT(5), PVM_VIRTIO_BIT(5), false },
	{ "device refuses an unused bit", PVM_VIRTIO_BIT(32) | PVM_VIRTIO_BIT(0), PVM_VIRTIO_BIT(5), true },
};

static void test_feature_negotiation(void **state)
{
	struct fx *f = *state;

	for (size_t i = 0; i < PVM_ARRAY_SIZE(nego_cases); i++) {
		const struct nego_case *c = &nego_cases[i];

		print_message("case: %s\n", c->name);
		f->e->refuse_features = c->refuse;
		negotiate(f, c->driver);
		assert_int_equal(!!(rd(f, PVM_VIRTIO_MMIO_STATUS) & PVM_VIRTIO_S_FEATURES_OK), c->ok);
		assert_int_equal(pvm_virtio_device_features(f->e->dev), c->ok ? c->driver : 0);
		/* DRIVER_OK needs FEATURES_OK */
		wr(f, PVM_VIRTIO_MMIO_STATUS, rd(f, PVM_VIRTIO_MMIO_STATUS) | PVM_VIRTIO_S_DRIVER_OK);
		assert_int_equal(!!(rd(f, PVM_VIRTIO_MMIO_STATUS) & PVM_VIRTIO_S_DRIVER_OK), c->ok);
	}
	f->e->refuse_features = 0;
	/* Feature writes after FEATURES_OK are ignored. */
	negotiate(f, PVM_VIRTIO_BIT(32));
	wr(f, PVM_VIRTIO_MMIO_DRIVER_FEATURES, 0x21);
	assert_int_equal(pvm_virtio_device_features(f->e->dev), PVM_VIRTIO_BIT(32));
	assert_int_equal(pvm_virtio_device_driver_features(f->e->dev), PVM_VIRTIO_BIT(32));
	assert_true(pvm_virtio_device_has_feature(f->e->dev, 32));
	assert_false(pvm_virtio_device_has_feature(f->e->dev, 0));
	assert_false(pvm_virtio_device_has_feature(f->e->dev, 200));
	/* Status bits cannot be cleared except by reset. */
	wr(f, PVM_VIRTIO_MMIO_STATUS, 1);
	assert_int_equal(rd(f, PVM_VIRTIO_MMIO_STATUS), 0x0b);
	wr(f, PVM_VIRTIO_MMIO_STATUS, 0);
	assert_int_equal(rd(f, PVM_VIRTIO_MMIO_STATUS), 0);
	assert_int_equal(pvm_virtio_device_features(f->e->dev), 0);
}

static void test_queue_registers(void **state)
{
	struct fx *f = *state;
	struct pvm_virtq *vq = pvm_virtio_device_queue(f->e->dev, 1);

	negotiate(f, PVM_VIRTIO_BIT(32));
	setup_queue(f, 1, 16, 0x10000);
	assert_int_equal(rd(f, PVM_VIRTIO_MMIO_QUEUE_READY), 1);
	assert_int_equal(pvm_virtq_size(vq), 16);
	assert_true(pvm_virtq_is_ready(vq));
	/* Changes while ready are refused. */
	wr(f, PVM_VIRTIO_MMIO_QUEUE_NUM, 8);
	wr(f, PVM_VIRTIO_MMIO_QUEUE_DESC_LOW, 0x20000);
	assert_int_equal(pvm_virtq_size(vq), 16);
	/* Teardown and re-setup. */
	wr(f, PVM_VIRTIO_MMIO_QUEUE_READY, 0);
	assert_int_equal(rd(f, PVM_VIRTIO_MMIO_QUEUE_READY), 0);
	wr(f, PVM_VIRTIO_MMIO_QUEUE_NUM, 8);
	assert_int_equal(pvm_virtq_size(vq), 8);
	/* QueueReady=2 and a bad size are ignored; queue 0 is unaffected by queue 1. */
	wr(f, PVM_VIRTIO_MMIO_QUEUE_READY, 2);
	assert_int_equal(rd(f, PVM_VIRTIO_MMIO_QUEUE_READY), 0);
	wr(f, PVM_VIRTIO_MMIO_QUEUE_NUM, 100);
	assert_int_equal(pvm_virtq_size(vq), 8);
	wr(f, PVM_VIRTIO_MMIO_QUEUE_NUM, 0x10008);
	assert_int_equal(pvm_virtq_size(vq), 8);
	wr(f, PVM_VIRTIO_MMIO_QUEUE_SEL, 0);
	assert_int_equal(rd(f, PVM_VIRTIO_MMIO_QUEUE_READY), 0);
	/* A queue index beyond the device is ignored everywhere. */
	wr(f, PVM_VIRTIO_MMIO_QUEUE_SEL, 40);
	wr(f, PVM_VIRTIO_MMIO_QUEUE_NUM, 8);
	wr(f, PVM_VIRTIO_MMIO_QUEUE_DESC_LOW, 0x1000);
	wr(f, PVM_VIRTIO_MMIO_QUEUE_READY, 1);
	wr(f, PVM_VIRTIO_MMIO_QUEUE_NOTIFY, 40);
	wr(f, PVM_VIRTIO_MMIO_QUEUE_NOTIFY, 0xffffffff);
	assert_false(pvm_virtio_device_is_broken(f->e->dev));
	/* An unaligned ring makes the device need a reset, with a config interrupt only after
	 * DRIVER_OK (here: not yet). */
	setup_queue(f, 0, 8, 0x10008);
	assert_int_equal(rd(f, PVM_VIRTIO_MMIO_QUEUE_READY), 0);
	assert_true(rd(f, PVM_VIRTIO_MMIO_STATUS) & PVM_VIRTIO_S_NEEDS_RESET);
	assert_int_equal(rd(f, PVM_VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	/* High address words are kept. */
	negotiate(f, PVM_VIRTIO_BIT(32));
	setup_queue(f, 0, 8, TG_BIG);
	assert_int_equal(rd(f, PVM_VIRTIO_MMIO_QUEUE_READY), 1);
}

static void test_interrupts(void **state)
{
	struct fx *f = *state;

	negotiate(f, PVM_VIRTIO_BIT(32));
	wr(f, PVM_VIRTIO_MMIO_STATUS, 0x0f);
	/* config change: generation + INT_CONFIG + line high */
	pvm_virtio_device_config_changed(f->e->dev);
	assert_int_equal(rd(f, PVM_VIRTIO_MMIO_CONFIG_GENERATION), 1);
	assert_int_equal(rd(f, PVM_VIRTIO_MMIO_INTERRUPT_STATUS), PVM_VIRTIO_INT_CONFIG);
	assert_true(f->level);
	pvm_virtio_device_interrupt(f->e->dev, PVM_VIRTIO_INT_VRING);
	assert_int_equal(rd(f, PVM_VIRTIO_MMIO_INTERRUPT_STATUS), 3);
	assert_int_equal(f->raises, 2);
	/* ACK one bit: line stays high; ACK the other: line drops */
	wr(f, PVM_VIRTIO_MMIO_INTERRUPT_ACK, PVM_VIRTIO_INT_CONFIG);
	assert_int_equal(rd(f, PVM_VIRTIO_MMIO_INTERRUPT_STATUS), PVM_VIRTIO_INT_VRING);
	assert_true(f->level);
	wr(f, PVM_VIRTIO_MMIO_INTERRUPT_ACK, 0xffffffff);
	assert_int_equal(rd(f, PVM_VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	assert_false(f->level);
	/* InterruptStatus is read-only */
	wr(f, PVM_VIRTIO_MMIO_INTERRUPT_STATUS, 3);
	assert_int_equal(rd(f, PVM_VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	/* reset clears pending causes and lowers the line */
	pvm_virtio_device_interrupt(f->e->dev, PVM_VIRTIO_INT_VRING);
	assert_true(f->level);
	wr(f, PVM_VIRTIO_MMIO_STATUS, 0);
	assert_int_equal(rd(f, PVM_VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	assert_false(f->level);
	/* no config interrupt before DRIVER_OK, but the generation still moves */
	pvm_virtio_device_config_changed(f->e->dev);
	assert_int_equal(rd(f, PVM_VIRTIO_MMIO_CONFIG_GENERATION), 2);
	assert_int_equal(rd(f, PVM_VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	/* NEEDS_RESET after DRIVER_OK raises a config interrupt once */
	negotiate(f, PVM_VIRTIO_BIT(32));
	wr(f, PVM_VIRTIO_MMIO_STATUS, 0x0f);
	pvm_virtio_device_set_broken(f->e->dev, "test %d", 1);
	pvm_virtio_device_set_broken(f->e->dev, "test %d", 2);
	assert_int_equal(rd(f, PVM_VIRTIO_MMIO_STATUS), 0x4f);
	assert_int_equal(rd(f, PVM_VIRTIO_MMIO_INTERRUPT_STATUS), PVM_VIRTIO_INT_CONFIG);
	assert_string_equal(pvm_virtio_device_broken_reason(f->e->dev), "test 1");
	/* a host-side device reset also clears the transport's interrupt state */
	pvm_virtio_device_reset(f->e->dev);
	assert_int_equal(rd(f, PVM_VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	assert_int_equal(rd(f, PVM_VIRTIO_MMIO_STATUS), 0);
	assert_false(f->level);
}

static void test_config_space(void **state)
{
	struct fx *f = *state;
	uint64_t base = PVM_VIRTIO_MMIO_CONFIG;

	assert_int_equal(pvm_virtio_mmio_read(f->m, base, 1), 0x88);
	assert_int_equal(pvm_virtio_mmio_read(f->m, base + 1, 1), 0x77);
	assert_int_equal(pvm_virtio_mmio_read(f->m, base + 2, 2), 0x5566);
	assert_int_equal(pvm_virtio_mmio_read(f->m, base + 4, 4), 0x11223344);
	assert_int_equal(pvm_virtio_mmio_read(f->m, base, 8), 0x1122334455667788ULL);
	/* unaligned, bad width, out of range: 0 */
	assert_int_equal(pvm_virtio_mmio_read(f->m, base + 1, 2), 0);
	assert_int_equal(pvm_virtio_mmio_read(f->m, base + 2, 4), 0);
	assert_int_equal(pvm_virtio_mmio_read(f->m, base, 3), 0);
	assert_int_equal(pvm_virtio_mmio_read(f->m, base + 16, 1), 0);
	assert_int_equal(pvm_virtio_mmio_read(f->m, base + 14, 4), 0);
	assert_int_equal(pvm_virtio_mmio_read(f->m, base + 0xfc, 4), 0);
	assert_int_equal(pvm_virtio_mmio_read(f->m, 0x200, 4), 0);
	assert_int_equal(pvm_virtio_mmio_read(f->m, ~0ULL, 4), 0);
	/* writes go through get/set_config */
	pvm_virtio_mmio_write(f->m, base + 8, 4, 0xdeadbeef);
	assert_int_equal(f->e->writable, 0xdeadbeef);
	pvm_virtio_mmio_write(f->m, base + 9, 1, 0x00);
	assert_int_equal(f->e->writable, 0xdead00ef);
	pvm_virtio_mmio_write(f->m, base + 15, 2, 0xffff);   /* unaligned + beyond: ignored */
	pvm_virtio_mmio_write(f->m, base + 16, 1, 0xff);
	assert_int_equal(f->e->writable, 0xdead00ef);
	assert_int_equal(pvm_virtio_mmio_read(f->m, base + 8, 4), 0xdead00ef);
}

/* Any access pattern at all: never a crash, a hang or an abort. */
static void test_random_accesses(void **state)
{
	struct fx *f = *state;
	static const unsigned sizes[] = { 1, 2, 3, 4, 8 };
	uint64_t x = 0x9e3779b97f4a7c15ULL;

	pvm_virtio_mmio_write(f->m, PVM_VIRTIO_MMIO_STATUS, 4, 0);
	for (int i = 0; i < 200000; i++) {
		uint64_t off, v;
		unsigned size;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		off = (x >> 8) % 0x220;
		if ((x & 3) != 0)
			off &= ~3ULL;
		size = (x >> 40) % 8 ? 4 : sizes[(x >> 44) % 5];
		v = x >> 20;
		if ((x >> 50) % 4 == 0)
			v &= 0xff;
		else if ((x >> 50) % 4 == 1)
			v &= 0xffff;
		if ((x & 0x10000) != 0)
			pvm_virtio_mmio_write(f->m, off, size, v);
		else
			(void)pvm_virtio_mmio_read(f->m, off, size);
	}
	/* still works afterwards */
	negotiate(f, PVM_VIRTIO_BIT(32));
	assert_true(rd(f, PVM_VIRTIO_MMIO_STATUS) & PVM_VIRTIO_S_FEATURES_OK);
}

static void test_mmio_new_torture(void **state)
{
	struct fx *f = *state;
	struct pvm_virtio_mmio *m = NULL;

	for (uint64_t n = 1; n < 10; n++) {
		int rc;

		pvm_alloc_fail_at(n);
		rc = pvm_virtio_mmio_new(f->e->dev, &m, NULL);
		if (!pvm_alloc_failed()) {
			pvm_alloc_fail_at(0);
			assert_int_equal(rc, 0);
			break;
		}
		pvm_alloc_fail_at(0);
		assert_int_equal(rc, -ENOMEM);
		assert_null(m);
	}
	assert_non_null(m);
	pvm_virtio_mmio_free(m);
	pvm_virtio_mmio_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_identity_registers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_feature_negotiation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_registers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_interrupts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_space, setup, teardown),
		cmocka_unit_test_setup_teardown(test_random_accesses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mmio_new_torture, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

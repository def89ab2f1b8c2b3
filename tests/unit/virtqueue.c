/* SPDX-License-Identifier: MIT */
/*
 * Split virtqueue, device side: rings are written by hand into guest memory and the device
 * pops them directly. A named table of malformed rings must each put the device into
 * NEEDS_RESET (with a configuration interrupt and the expected reason), never crash, and leave
 * the device usable after a reset; well-formed corner cases must pop exactly.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test-util.h"
#include "virtio-test.h"
#include "core/util.h"

#define NUM 8u
#define DESC 0x1000ULL
#define AVAIL 0x2000ULL
#define USED 0x3000ULL
#define DATA 0x10000ULL
#define ITABLE 0x8000ULL

struct fx {
	struct tguest g;        /* guest memory */
	struct echo *e;         /* the device (its notify handler is not used here) */
	uint16_t avail_idx;     /* driver's next avail idx */
	unsigned irq_config;    /* configuration interrupts seen */
	unsigned irq_vring;     /* used-buffer interrupts seen */
};

static void count_irq(void *opaque, uint32_t bits)
{
	struct fx *f = opaque;

	if (bits & PVM_VIRTIO_INT_CONFIG)
		f->irq_config++;
	if (bits & PVM_VIRTIO_INT_VRING)
		f->irq_vring++;
}

static const uint64_t ALLF = PVM_VIRTIO_CORE_FEATURES;

/* Bring the device up the way a driver would, with the queue at DESC/AVAIL/USED. */
static int dev_up(struct fx *f, uint64_t features, uint16_t num, uint64_t desc, uint64_t avail,
		  uint64_t used)
{
	struct pvm_virtio_device *dev = f->e->dev;

	memset(f->g.ram, 0, 0x20000);
	f->avail_idx = 0;
	pvm_virtio_device_set_status(dev, 0);
	pvm_virtio_device_set_status(dev, PVM_VIRTIO_S_ACKNOWLEDGE);
	pvm_virtio_device_set_status(dev, PVM_VIRTIO_S_ACKNOWLEDGE | PVM_VIRTIO_S_DRIVER);
	pvm_virtio_device_set_driver_features(dev, features | PVM_VIRTIO_BIT(PVM_VIRTIO_F_VERSION_1));
	pvm_virtio_device_set_status(dev, 0x0b);
	assert_true(pvm_virtio_device_status(dev) & PVM_VIRTIO_S_FEATURES_OK);
	assert_int_equal(pvm_virtio_device_queue_set_num(dev, 0, num), 0);
	assert_int_equal(pvm_virtio_device_queue_set_addr(dev, 0, desc, avail, used), 0);
	if (pvm_virtio_device_queue_set_ready(dev, 0, true))
		return -EIO;
	pvm_virtio_device_set_status(dev, 0x0f);
	return 0;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	pvm_log_set_level(PVM_LOG_ERROR);
	tguest_init(&f->g);
	f->e = echo_new(&f->g, ALLF, 2, 256);
	pvm_virtio_device_set_interrupt(f->e->dev, count_irq, f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	echo_free(f->e);
	tguest_fini(&f->g);
	free(f);
	return 0;
}

static void wdesc(struct fx *f, uint64_t table, unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
		  uint16_t next)
{
	uint8_t *p = tg_host(&f->g, table + 16ULL * i);

	memcpy(p, &addr, 8);
	memcpy(p + 8, &len, 4);
	memcpy(p + 12, &flags, 2);
	memcpy(p + 14, &next, 2);
}

static void desc(struct fx *f, unsigned i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	wdesc(f, DESC, i, addr, len, flags, next);
}

static void avail(struct fx *f, uint16_t head)
{
	uint16_t *ring = tg_host(&f->g, AVAIL);

	ring[2 + f->avail_idx % NUM] = head;
	f->avail_idx++;
	ring[1] = f->avail_idx;
}

#define NX PVM_VIRTQ_DESC_F_NEXT
#define WR PVM_VIRTQ_DESC_F_WRITE
#define IND PVM_VIRTQ_DESC_F_INDIRECT

/* ---- malformed rings ----------------------------------------------------------------------- */

static void m_loop_next(struct fx *f)
{
	desc(f, 0, DATA, 16, NX, 1);
	desc(f, 1, DATA, 16, NX, 0);
	avail(f, 0);
}

static void m_self_loop(struct fx *f)
{
	desc(f, 3, DATA, 16, NX, 3);
	avail(f, 3);
}

static void m_loop_indirect(struct fx *f)
{
	wdesc(f, ITABLE, 0, DATA, 16, NX, 1);
	wdesc(f, ITABLE, 1, DATA, 16, NX, 0);
	desc(f, 0, ITABLE, 32, IND, 0);
	avail(f, 0);
}

static void m_addr_beyond_memory(struct fx *f)
{
	desc(f, 0, 0x7000000000ULL, 16, 0, 0);
	avail(f, 0);
}

static void m_addr_wraps(struct fx *f)
{
	desc(f, 0, ~0ULL - 7, 16, 0, 0);
	avail(f, 0);
}

static void m_addr_in_hole(struct fx *f)
{
	desc(f, 0, TG_HOLE + 0x100, 16, 0, 0);
	avail(f, 0);
}

static void m_len_crosses_into_hole(struct fx *f)
{
	desc(f, 0, TG_HOLE - 8, 16, 0, 0);
	avail(f, 0);
}

static void m_write_before_read(struct fx *f)
{
	desc(f, 0, DATA, 16, WR | NX, 1);
	desc(f, 1, DATA + 16, 16, 0, 0);
	avail(f, 0);
}

static void m_zero_length(struct fx *f)
{
	desc(f, 0, DATA, 0, 0, 0);
	avail(f, 0);
}

static void m_zero_length_in_chain(struct fx *f)
{
	desc(f, 0, DATA, 16, NX, 1);
	desc(f, 1, DATA, 0, WR, 0);
	avail(f, 0);
}

static void m_next_out_of_range(struct fx *f)
{
	desc(f, 0, DATA, 16, NX, NUM);
	avail(f, 0);
}

static void m_head_out_of_range(struct fx *f)
{
	avail(f, NUM);
}

static void m_indirect_with_next(struct fx *f)
{
	wdesc(f, ITABLE, 0, DATA, 16, 0, 0);
	desc(f, 0, ITABLE, 16, IND | NX, 1);
	desc(f, 1, DATA, 16, 0, 0);
	avail(f, 0);
}

static void m_indirect_len_24(struct fx *f)
{
	desc(f, 0, ITABLE, 24, IND, 0);
	avail(f, 0);
}

static void m_indirect_len_zero(struct fx *f)
{
	desc(f, 0, ITABLE, 0, IND, 0);
	avail(f, 0);
}

static void m_nested_indirect(struct fx *f)
{
	wdesc(f, ITABLE, 0, ITABLE + 0x100, 16, IND, 0);
	wdesc(f, ITABLE + 0x100, 0, DATA, 16, 0, 0);
	desc(f, 0, ITABLE, 16, IND, 0);
	avail(f, 0);
}

static void m_indirect_table_in_hole(struct fx *f)
{
	desc(f, 0, TG_HOLE, 64, IND, 0);
	avail(f, 0);
}

static void m_indirect_next_out_of_table(struct fx *f)
{
	wdesc(f, ITABLE, 0, DATA, 16, NX, 2);
	desc(f, 0, ITABLE, 32, IND, 0);
	avail(f, 0);
}

static void m_too_many_segments(struct fx *f)
{
	for (unsigned i = 0; i <= PVM_VIRTQ_MAX_SEGS; i++)
		wdesc(f, ITABLE, i, DATA + i, 1, i < PVM_VIRTQ_MAX_SEGS ? NX : 0, (uint16_t)(i + 1));
	desc(f, 0, ITABLE, (PVM_VIRTQ_MAX_SEGS + 1) * 16, IND, 0);
	avail(f, 0);
}

static void m_avail_idx_jump(struct fx *f)
{
	uint16_t *ring = tg_host(&f->g, AVAIL);

	desc(f, 0, DATA, 16, 0, 0);
	ring[1] = NUM + 1;
}

static void m_avail_idx_backwards(struct fx *f)
{
	uint16_t *ring = tg_host(&f->g, AVAIL);

	ring[1] = 0xffff;  /* "decremented": 65535 entries ahead */
}

static void m_chain_over_4g(struct fx *f)
{
	desc(f, 0, TG_BIG, 0xffffffffu, NX, 1);
	desc(f, 1, TG_BIG + 0x100000000ULL, 2, 0, 0);
	avail(f, 0);
}

static void m_write_to_readonly(struct fx *f)
{
	desc(f, 0, DATA, 16, NX, 1);
	desc(f, 1, TG_RO, 16, WR, 0);
	avail(f, 0);
}

struct bad_case {
	const char *name;          /* case name */
	uint64_t features;         /* negotiated (VERSION_1 added) */
	void (*build)(struct fx *f);
	const char *reason;        /* expected substring of the NEEDS_RESET reason */
};

static const struct bad_case bad_cases[] = {
	{ "loop via next", ALLF, m_loop_next, "loops" },
	{ "self loop", ALLF, m_self_loop, "loops" },
	{ "loop via indirect", ALLF, m_loop_indirect, "indirect chain" },
	{ "address beyond memory", ALLF, m_addr_beyond_memory, "not in guest memory" },
	{ "address wraps", ALLF, m_addr_wraps, "wraps" },
	{ "address in a hole", ALLF, m_addr_in_hole, "not in guest memory" },
	{ "length crosses into a hole", ALLF, m_len_crosses_into_hole, "not in guest memory" },
	{ "writable before readable", ALLF, m_write_before_read, "after a device-writable" },
	{ "zero-length descriptor", ALLF, m_zero_length, "zero-length" },
	{ "zero-length in chain", ALLF, m_zero_length_in_chain, "zero-length" },
	{ "next out of range", ALLF, m_next_out_of_range, "out of range" },
	{ "head out of range", ALLF, m_head_out_of_range, "head index" },
	{ "indirect with next", ALLF, m_indirect_with_next, "indirect descriptor with NEXT" },
	{ "indirect length 24", ALLF, m_indirect_len_24, "not a multiple of 16" },
	{ "indirect length 0", ALLF, m_indirect_len_zero, "not a multiple of 16" },
	{ "nested indirect", ALLF, m_nested_indirect, "nested" },
	{ "indirect without feature", PVM_VIRTIO_BIT(PVM_VIRTIO_F_EVENT_IDX), m_loop_indirect,
	  "without VIRTIO_F_INDIRECT_DESC" },
	{ "indirect table in a hole", ALLF, m_indirect_table_in_hole, "indirect table" },
	{ "indirect next beyond table", ALLF, m_indirect_next_out_of_table, "out of range" },
	{ "too many segments", ALLF, m_too_many_segments, "segments" },
	{ "avail idx jumps", ALLF, m_avail_idx_jump, "ahead" },
	{ "avail idx backwards", 0, m_avail_idx_backwards, "ahead" },
	{ "chain over 4 GiB", ALLF, m_chain_over_4g, "4 GiB" },
	{ "writable buffer in read-only memory", ALLF, m_write_to_readonly, "writable guest memory" },
};

static void test_malformed_rings(void **state)
{
	struct fx *f = *state;

	for (size_t i = 0; i < PVM_ARRAY_SIZE(bad_cases); i++) {
		const struct bad_case *c = &bad_cases[i];
		struct pvm_virtq *vq = pvm_virtio_device_queue(f->e->dev, 0);
		struct pvm_virtq_elem *el = NULL;
		unsigned cfg_before;

		print_message("case: %s\n", c->name);
		assert_int_equal(dev_up(f, c->features, NUM, DESC, AVAIL, USED), 0);
		cfg_before = f->irq_config;
		c->build(f);
		assert_int_equal(pvm_virtq_pop(vq, &el), -EIO);
		assert_null(el);
		assert_true(pvm_virtio_device_status(f->e->dev) & PVM_VIRTIO_S_NEEDS_RESET);
		assert_true(pvm_virtio_device_is_broken(f->e->dev));
		assert_int_equal(f->irq_config, cfg_before + 1);
		if (!strstr(pvm_virtio_device_broken_reason(f->e->dev), c->reason))
			fail_msg("%s: reason \"%s\" lacks \"%s\"", c->name,
				 pvm_virtio_device_broken_reason(f->e->dev), c->reason);
		/* It stays broken, and a driver write cannot clear NEEDS_RESET. */
		assert_int_equal(pvm_virtq_pop(vq, &el), -EIO);
		pvm_virtio_device_set_status(f->e->dev, 0x0f);
		assert_true(pvm_virtio_device_status(f->e->dev) & PVM_VIRTIO_S_NEEDS_RESET);
		assert_int_equal(f->irq_config, cfg_before + 1);
		/* A reset makes the device usable again. */
		assert_int_equal(dev_up(f, c->features, NUM, DESC, AVAIL, USED), 0);
		assert_false(pvm_virtio_device_status(f->e->dev) & PVM_VIRTIO_S_NEEDS_RESET);
		assert_string_equal(pvm_virtio_device_broken_reason(f->e->dev), "");
		desc(f, 0, DATA, 16, 0, 0);
		avail(f, 0);
		assert_int_equal(pvm_virtq_pop(vq, &el), 1);
		assert_int_equal(pvm_virtq_push(vq, el, 0), 0);
	}
}

struct bad_layout {
	const char *name;
	uint16_t num;
	uint64_t desc, avail, used;
	const char *reason;
};

static const struct bad_layout bad_layouts[] = {
	{ "descriptor table unaligned", NUM, DESC + 8, AVAIL, USED, "not aligned" },
	{ "avail ring unaligned", NUM, DESC, AVAIL + 1, USED, "not aligned" },
	{ "used ring unaligned", NUM, DESC, AVAIL, USED + 2, "not aligned" },
	{ "descriptor table in a hole", NUM, TG_HOLE, AVAIL, USED, "descriptor table" },
	{ "avail ring beyond memory", NUM, DESC, 0x7000000000ULL, USED, "available ring" },
	{ "used ring read-only", NUM, DESC, AVAIL, TG_RO, "used ring" },
	{ "used ring crosses into a hole", NUM, DESC, AVAIL, TG_HOLE - 32, "used ring" },
	{ "descriptor table wraps", NUM, 0xfffffffffffffff0ULL, AVAIL, USED, "descriptor table" },
};

static void test_bad_ring_layouts(void **state)
{
	struct fx *f = *state;

	for (size_t i = 0; i < PVM_ARRAY_SIZE(bad_layouts); i++) {
		const struct bad_layout *c = &bad_layouts[i];
		struct pvm_virtq *vq = pvm_virtio_device_queue(f->e->dev, 0);

		print_message("layout: %s\n", c->name);
		assert_int_equal(dev_up(f, ALLF, c->num, c->desc, c->avail, c->used), -EIO);
		assert_false(pvm_virtq_is_ready(vq));
		assert_true(pvm_virtio_device_is_broken(f->e->dev));
		assert_non_null(strstr(pvm_virtio_device_broken_reason(f->e->dev), c->reason));
	}
	/* Bad sizes are refused when written. */
	pvm_virtio_device_set_status(f->e->dev, 0);
	assert_int_equal(pvm_virtio_device_queue_set_num(f->e->dev, 0, 3), -EINVAL);
	assert_int_equal(pvm_virtio_device_queue_set_num(f->e->dev, 0, 0), -EINVAL);
	assert_int_equal(pvm_virtio_device_queue_set_num(f->e->dev, 0, 512), -EINVAL);
	assert_int_equal(pvm_virtio_device_queue_set_num(f->e->dev, 7, 8), -ENOENT);
	/* Ready with no size set at all. */
	assert_int_equal(pvm_virtio_device_queue_set_ready(f->e->dev, 1, true), -EIO);
}

/* The ring is checked on every pop, not only when the queue became ready. */
static void test_memory_removed_under_ring(void **state)
{
	struct fx *f = *state;
	struct pvm_virtq *vq = pvm_virtio_device_queue(f->e->dev, 0);
	struct pvm_virtq_elem *el;

	assert_int_equal(dev_up(f, ALLF, NUM, TG_RAM1, TG_RAM1 + 0x1000, TG_RAM1 + 0x2000), 0);
	assert_int_equal(pvm_memslot_delete(f->g.mem, 1, NULL), 0);
	assert_int_equal(pvm_virtq_pop(vq, &el), -EIO);
	assert_non_null(strstr(pvm_virtio_device_broken_reason(f->e->dev), "descriptor table"));
	assert_int_equal(pvm_memslot_add(f->g.mem, 1, 0, TG_RAM1, 0x100000, f->g.ram + 0x100000, NULL), 0);
}

/* ---- well-formed corner cases ---------------------------------------------------------------- */

static void test_buffer_spanning_two_slots(void **state)
{
	struct fx *f = *state;
	struct pvm_virtq *vq = pvm_virtio_device_queue(f->e->dev, 0);
	struct pvm_virtq_elem *el;
	char buf[64];

	assert_int_equal(dev_up(f, ALLF, NUM, DESC, AVAIL, USED), 0);
	memcpy(tg_host(&f->g, TG_RAM1 - 4), "abcdefgh", 8);
	desc(f, 0, TG_RAM1 - 4, 8, 0, 0);
	avail(f, 0);
	assert_int_equal(pvm_virtq_pop(vq, &el), 1);
	assert_int_equal(el->out_num, 2);
	assert_int_equal(el->out_len, 8);
	assert_int_equal(el->out[0].iov_len, 4);
	assert_int_equal(el->out_addr[1], TG_RAM1);
	assert_int_equal(pvm_virtq_elem_read(el, 0, buf, sizeof(buf)), 8);
	assert_memory_equal(buf, "abcdefgh", 8);
	assert_int_equal(pvm_virtq_elem_read(el, 3, buf, 2), 2);
	assert_memory_equal(buf, "de", 2);
	assert_int_equal(pvm_virtq_elem_read(el, 8, buf, 2), 0);
	assert_int_equal(pvm_virtq_push(vq, el, 0), 0);
}

/* "zero or more normal chained descriptors followed by a single INDIRECT descriptor" (spec). */
static void test_direct_then_indirect(void **state)
{
	struct fx *f = *state;
	struct pvm_virtq *vq = pvm_virtio_device_queue(f->e->dev, 0);
	struct pvm_virtq_elem *el;
	uint16_t *used = tg_host(&f->g, USED);
	uint32_t *ue = (uint32_t *)(used + 2);

	assert_int_equal(dev_up(f, ALLF, NUM, DESC, AVAIL, USED), 0);
	desc(f, 5, DATA, 10, NX, 2);
	desc(f, 2, ITABLE, 48, IND, 0);
	wdesc(f, ITABLE, 0, DATA + 0x100, 20, NX, 1);
	wdesc(f, ITABLE, 1, DATA + 0x200, 30, WR | NX, 2);
	wdesc(f, ITABLE, 2, DATA + 0x300, 40, WR, 0);
	avail(f, 5);
	assert_int_equal(pvm_virtq_pop(vq, &el), 1);
	assert_int_equal(el->head, 5);
	assert_int_equal(el->out_num, 2);
	assert_int_equal(el->in_num, 2);
	assert_int_equal(el->out_len, 30);
	assert_int_equal(el->in_len, 70);
	assert_int_equal(el->in_addr[1], DATA + 0x300);
	assert_int_equal(pvm_virtq_elem_write(el, 25, "0123456789", 10), 10);
	assert_memory_equal(tg_host(&f->g, DATA + 0x200 + 25), "01234", 5);
	assert_memory_equal(tg_host(&f->g, DATA + 0x300), "56789", 5);
	assert_int_equal(pvm_virtq_elem_write(el, 65, "0123456789", 10), 5);
	/* written is clamped to the writable length */
	assert_int_equal(pvm_virtq_push(vq, el, 1000), 0);
	assert_int_equal(used[1], 1);
	assert_int_equal(ue[0], 5);
	assert_int_equal(ue[1], 70);
	assert_int_equal(pvm_virtq_inflight(vq), 0);
}

static void test_max_segments_accepted(void **state)
{
	struct fx *f = *state;
	struct pvm_virtq *vq = pvm_virtio_device_queue(f->e->dev, 0);
	struct pvm_virtq_elem *el;

	assert_int_equal(dev_up(f, ALLF, NUM, DESC, AVAIL, USED), 0);
	/* the first half device-readable, the second half device-writable */
	for (unsigned i = 0; i < PVM_VIRTQ_MAX_SEGS; i++)
		wdesc(f, ITABLE, i, DATA + 2 * i, 1,
		      (i >= PVM_VIRTQ_MAX_SEGS / 2 ? WR : 0) | (i + 1 < PVM_VIRTQ_MAX_SEGS ? NX : 0),
		      (uint16_t)(i + 1));
	desc(f, 0, ITABLE, PVM_VIRTQ_MAX_SEGS * 16, IND, 0);
	avail(f, 0);
	assert_int_equal(pvm_virtq_pop(vq, &el), 1);
	assert_int_equal(el->out_num, PVM_VIRTQ_MAX_SEGS / 2);
	assert_int_equal(el->in_num, PVM_VIRTQ_MAX_SEGS / 2);
	pvm_virtq_elem_free(el);
}

/* A full-length direct chain (queue size descriptors) is not a loop. */
static void test_full_length_chain(void **state)
{
	struct fx *f = *state;
	struct pvm_virtq *vq = pvm_virtio_device_queue(f->e->dev, 0);
	struct pvm_virtq_elem *el;

	assert_int_equal(dev_up(f, ALLF, NUM, DESC, AVAIL, USED), 0);
	for (unsigned i = 0; i < NUM; i++)
		desc(f, i, DATA + 16 * i, 16, i + 1 < NUM ? NX : 0, (uint16_t)(i + 1));
	avail(f, 0);
	assert_int_equal(pvm_virtq_pop(vq, &el), 1);
	assert_int_equal(el->out_num, NUM);
	pvm_virtq_elem_free(el);
}

static void test_nothing_before_driver_ok(void **state)
{
	struct fx *f = *state;
	struct pvm_virtq *vq = pvm_virtio_device_queue(f->e->dev, 0);
	struct pvm_virtq_elem *el;

	assert_int_equal(dev_up(f, ALLF, NUM, DESC, AVAIL, USED), 0);
	desc(f, 0, DATA, 16, 0, 0);
	avail(f, 0);
	pvm_virtio_device_set_status(f->e->dev, 0);
	assert_int_equal(pvm_virtq_pop(vq, &el), 0);
	assert_null(el);
}

static void test_stale_push_after_reset(void **state)
{
	struct fx *f = *state;
	struct pvm_virtq *vq = pvm_virtio_device_queue(f->e->dev, 0);
	struct pvm_virtq_elem *el;
	uint16_t *used = tg_host(&f->g, USED);

	assert_int_equal(dev_up(f, ALLF, NUM, DESC, AVAIL, USED), 0);
	desc(f, 0, DATA, 16, 0, 0);
	avail(f, 0);
	assert_int_equal(pvm_virtq_pop(vq, &el), 1);
	assert_int_equal(pvm_virtq_inflight(vq), 1);
	assert_int_equal(dev_up(f, ALLF, NUM, DESC, AVAIL, USED), 0);
	assert_int_equal(pvm_virtq_push(vq, el, 0), -ESTALE);
	assert_int_equal(used[1], 0);
	assert_int_equal(pvm_virtq_inflight(vq), 0);
}

static void test_out_of_order_completion(void **state)
{
	struct fx *f = *state;
	struct pvm_virtq *vq = pvm_virtio_device_queue(f->e->dev, 0);
	struct pvm_virtq_elem *el[NUM], *none;
	uint16_t *used = tg_host(&f->g, USED);
	uint32_t *ue = (uint32_t *)(used + 2);

	assert_int_equal(dev_up(f, ALLF, NUM, DESC, AVAIL, USED), 0);
	for (unsigned i = 0; i < NUM; i++) {
		desc(f, i, DATA + 16 * i, 16, WR, 0);
		avail(f, (uint16_t)i);
	}
	for (unsigned i = 0; i < NUM; i++)
		assert_int_equal(pvm_virtq_pop(vq, &el[i]), 1);
	assert_int_equal(pvm_virtq_pop(vq, &none), 0);
	for (unsigned i = NUM; i-- > 0;)
		assert_int_equal(pvm_virtq_push(vq, el[i], i), 0);
	assert_int_equal(used[1], NUM);
	for (unsigned k = 0; k < NUM; k++) {
		assert_int_equal(ue[2 * k], NUM - 1 - k);
		assert_int_equal(ue[2 * k + 1], NUM - 1 - k);
	}
}

/* EVENT_IDX: device writes avail_event; interrupts follow used_event exactly. */
static void test_event_idx(void **state)
{
	struct fx *f = *state;
	struct pvm_virtq *vq = pvm_virtio_device_queue(f->e->dev, 0);
	struct pvm_virtq_elem *el;
	uint16_t *av = tg_host(&f->g, AVAIL), *used = tg_host(&f->g, USED);

	assert_int_equal(dev_up(f, ALLF, NUM, DESC, AVAIL, USED), 0);
	for (unsigned i = 0; i < 4; i++) {
		desc(f, i, DATA + 16 * i, 16, WR, 0);
		avail(f, (uint16_t)i);
	}
	av[2 + NUM] = 2;   /* used_event: interrupt when used idx passes 2 (reaches 3) */
	for (unsigned i = 0; i < 4; i++) {
		assert_int_equal(pvm_virtq_pop(vq, &el), 1);
		assert_int_equal(used[2 + 4 * NUM], i + 1);   /* avail_event follows last_avail */
		assert_int_equal(pvm_virtq_push(vq, el, 0), 0);
		/* first decision always notifies (nothing signalled yet), then only at idx 3 */
		assert_int_equal(pvm_virtq_should_notify(vq), i == 0 || i == 2);
	}
	assert_int_equal(pvm_virtq_pop(vq, &el), 0);
	assert_int_equal(used[2 + 4 * NUM], 4);
	/* Batch: several pushes past used_event in one decision. */
	for (unsigned i = 4; i < 7; i++) {
		desc(f, i, DATA + 16 * i, 16, WR, 0);
		avail(f, (uint16_t)i);
		assert_int_equal(pvm_virtq_pop(vq, &el), 1);
		assert_int_equal(pvm_virtq_push(vq, el, 0), 0);
	}
	av[2 + NUM] = 5;
	assert_true(pvm_virtq_should_notify(vq));
	assert_false(pvm_virtq_should_notify(vq));
}

static void test_no_interrupt_flag(void **state)
{
	struct fx *f = *state;
	struct pvm_virtq *vq = pvm_virtio_device_queue(f->e->dev, 0);
	struct pvm_virtq_elem *el;
	uint16_t *av = tg_host(&f->g, AVAIL);
	unsigned before;

	assert_int_equal(dev_up(f, 0, NUM, DESC, AVAIL, USED), 0);
	desc(f, 0, DATA, 16, WR, 0);
	avail(f, 0);
	av[0] = PVM_VIRTQ_AVAIL_F_NO_INTERRUPT;
	assert_int_equal(pvm_virtq_pop(vq, &el), 1);
	before = f->irq_vring;
	assert_int_equal(pvm_virtq_complete(vq, el, 0), 0);
	assert_int_equal(f->irq_vring, before);
	av[0] = 0;
	assert_true(pvm_virtq_notify(vq));
	assert_int_equal(f->irq_vring, before + 1);
}

/* Kicks before DRIVER_OK are remembered and delivered when the driver is ready. */
static void test_kick_before_driver_ok(void **state)
{
	struct fx *f = *state;
	struct pvm_virtio_device *dev = f->e->dev;

	assert_int_equal(dev_up(f, ALLF, NUM, DESC, AVAIL, USED), 0);
	pvm_virtio_device_set_status(dev, 0);
	pvm_virtio_device_set_status(dev, 0x03);
	pvm_virtio_device_set_driver_features(dev, PVM_VIRTIO_BIT(PVM_VIRTIO_F_VERSION_1));
	pvm_virtio_device_set_status(dev, 0x0b);
	assert_int_equal(pvm_virtio_device_queue_set_num(dev, 0, NUM), 0);
	assert_int_equal(pvm_virtio_device_queue_set_addr(dev, 0, DESC, AVAIL, USED), 0);
	assert_int_equal(pvm_virtio_device_queue_set_ready(dev, 0, true), 0);
	f->avail_idx = 0;
	desc(f, 0, DATA, 16, NX, 1);
	desc(f, 1, DATA + 16, 16, WR, 0);
	avail(f, 0);
	f->e->completed = 0;
	pvm_virtio_device_queue_kick(dev, 0);
	assert_int_equal(f->e->completed, 0);
	pvm_virtio_device_set_status(dev, 0x0f);
	assert_int_equal(f->e->completed, 1);
	assert_int_equal(((uint16_t *)tg_host(&f->g, USED))[1], 1);
}

/* Allocation failure in pop leaves the element in the ring. */
static int torture_pop(void *ctx)
{
	struct fx *f = ctx;
	struct pvm_virtq *vq = pvm_virtio_device_queue(f->e->dev, 0);
	struct pvm_virtq_elem *el;
	int rc = pvm_virtq_pop(vq, &el);

	if (rc == 1) {
		assert_int_equal(el->head, 3);
		pvm_virtq_elem_free(el);
		return 0;
	}
	return rc;
}

static int pop_unchanged(void *ctx)
{
	struct fx *f = ctx;

	return !pvm_virtio_device_is_broken(f->e->dev) &&
	       pvm_virtq_inflight(pvm_virtio_device_queue(f->e->dev, 0)) == 0;
}

static void test_pop_torture(void **state)
{
	struct fx *f = *state;

	assert_int_equal(dev_up(f, ALLF, NUM, DESC, AVAIL, USED), 0);
	desc(f, 3, DATA, 16, NX, 4);
	desc(f, 4, DATA + 16, 16, WR, 0);
	avail(f, 3);
	assert_true(pvm_test_torture(torture_pop, pop_unchanged, f) >= 1);
}

static void test_device_new_refuses_bad_ops(void **state)
{
	struct fx *f = *state;
	struct pvm_virtio_device_ops ops = { .num_queues = 1, .queue_max_size = 8 };
	struct pvm_virtio_device *dev;
	struct pvm_error err = { 0 };

	assert_int_equal(pvm_virtio_device_new(&ops, NULL, f->g.mem, &dev, NULL), 0);
	assert_string_equal(pvm_virtio_device_name(dev), "virtio");
	assert_int_equal(pvm_virtio_device_host_features(dev), PVM_VIRTIO_BIT(PVM_VIRTIO_F_VERSION_1));
	pvm_virtio_device_free(dev);
	ops.queue_max_size = 12;
	assert_int_equal(pvm_virtio_device_new(&ops, NULL, f->g.mem, &dev, &err), -EINVAL);
	assert_null(dev);
	ops.queue_max_size = 8;
	ops.num_queues = 0;
	assert_int_equal(pvm_virtio_device_new(&ops, NULL, f->g.mem, &dev, NULL), -EINVAL);
	ops.num_queues = 1;
	ops.config_size = 4096;
	assert_int_equal(pvm_virtio_device_new(&ops, NULL, f->g.mem, &dev, NULL), -EINVAL);
	/* Transport bits the core does not implement are never offered. */
	ops.config_size = 0;
	ops.features = PVM_VIRTIO_BIT(PVM_VIRTIO_F_RING_PACKED) | PVM_VIRTIO_BIT(3);
	assert_int_equal(pvm_virtio_device_new(&ops, NULL, f->g.mem, &dev, NULL), 0);
	assert_int_equal(pvm_virtio_device_host_features(dev),
			 PVM_VIRTIO_BIT(PVM_VIRTIO_F_VERSION_1) | PVM_VIRTIO_BIT(3));
	pvm_virtio_device_free(dev);
	pvm_virtio_device_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_malformed_rings, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_ring_layouts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_memory_removed_under_ring, setup, teardown),
		cmocka_unit_test_setup_teardown(test_buffer_spanning_two_slots, setup, teardown),
		cmocka_unit_test_setup_teardown(test_direct_then_indirect, setup, teardown),
		cmocka_unit_test_setup_teardown(test_max_segments_accepted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_length_chain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nothing_before_driver_ok, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_push_after_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_out_of_order_completion, setup, teardown),
		cmocka_unit_test_setup_teardown(test_event_idx, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_interrupt_flag, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kick_before_driver_ok, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pop_torture, setup, teardown),
		cmocka_unit_test_setup_teardown(test_device_new_refuses_bad_ops, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/*
 * A small machine for virtio-balloon tests: guest RAM (one region at GPA 0), an I/O region for
 * rings and buffers, a memslot table, the balloon behind virtio-mmio and the guest-side driver
 * (lib/virtio/driver.h), so that every request goes through a real split virtqueue.
 */
#ifndef PVM_TEST_BALLOON_FIXTURE_H
#define PVM_TEST_BALLOON_FIXTURE_H

#include <endian.h>
#include <errno.h>
#include <string.h>

#include "test-util.h"
#include "virtio/driver.h"
#include <pvmem/balloon.h>
#include <pvmem/discard.h>
#include <pvmem/mem.h>
#include <pvmem/memslot.h>

#define BF_MiB (1024ULL * 1024)
#define BF_RAM_SIZE (64 * BF_MiB)
#define BF_IO_GPA (1024 * BF_MiB)
#define BF_IO_SIZE (4 * BF_MiB)
#define BF_RING_GPA BF_IO_GPA
#define BF_RING_SIZE (2 * BF_MiB)
#define BF_BUF_GPA (BF_IO_GPA + BF_RING_SIZE)
#define BF_BUF_SIZE (BF_IO_SIZE - BF_RING_SIZE)
#define BF_PAGE 4096ULL

struct bf_opts {
	uint64_t granularity;       /* balloon RAM range granularity (0 = page size) */
	bool reporting;             /* offer PAGE_REPORTING */
	bool poison;                /* offer PAGE_POISON */
	bool deflate_on_oom;        /* offer DEFLATE_ON_OOM */
	uint64_t drv_features;      /* driver features (0 = everything offered) */
	bool no_policy;             /* run without a discard policy */
	bool no_stats_buffer;       /* do not post the initial stats buffer */
	const struct pvm_balloon_ram *extra;  /* more RAM ranges */
	size_t nr_extra;
};

struct bf {
	struct pvm_memslot_table *mem;       /* guest memory map */
	struct pvm_mem_region *ram;          /* guest RAM at GPA 0 */
	struct pvm_mem_region *io;           /* rings and buffers */
	struct pvm_discard_policy *policy;   /* may be NULL */
	struct pvm_balloon *b;               /* the device */
	struct pvm_virtio_mmio *mmio;        /* its transport */
	struct pvm_vdrv *drv;                /* the guest driver */
	uint8_t stats_tok;                   /* token of the stats buffer */
	unsigned events;                     /* events received */
	struct pvm_balloon_event last;       /* the last one */
};

static inline void bf_event(void *opaque, const struct pvm_balloon_event *ev)
{
	struct bf *f = opaque;

	f->events++;
	f->last = *ev;
}

static inline void *bf_hva(struct bf *f, uint64_t gpa, uint64_t len)
{
	void *hva = NULL;

	assert_int_equal(pvm_memslot_translate(f->mem, gpa, len, PVM_ACCESS_WRITE, &hva), 0);
	return hva;
}

static inline struct pvm_mem_region *bf_region(uint64_t size, const char *name)
{
	struct pvm_mem_region_config rc = { .name = name, .backend = PVM_MEM_BACKEND_ANON,
					     .size = size, .noreserve = true };
	struct pvm_mem_region *r;

	assert_int_equal(pvm_mem_region_new(&rc, &r, NULL), 0);
	return r;
}

/* Post one stats buffer (the driver's side of the stats protocol) with @n records. */
static inline void bf_post_stats(struct bf *f, const uint16_t *tags, const uint64_t *vals, unsigned n)
{
	uint8_t *p = bf_hva(f, BF_BUF_GPA + BF_BUF_SIZE - 4096, 4096);
	struct pvm_vdrv_buf buf = { BF_BUF_GPA + BF_BUF_SIZE - 4096, 10 * n };

	for (unsigned i = 0; i < n; i++) {
		uint16_t t = htole16(tags[i]);
		uint64_t v = htole64(vals[i]);

		memcpy(p + 10 * i, &t, 2);
		memcpy(p + 10 * i + 2, &v, 8);
	}
	if (!n)
		buf.len = 10;  /* a buffer cannot be empty: one unknown tag */
	if (!n)
		memset(p, 0xff, 10);
	assert_int_equal(pvm_vdrv_add(f->drv, PVM_BALLOON_VQ_STATS, &buf, 1, NULL, 0, &f->stats_tok), 0);
	pvm_vdrv_kick(f->drv, PVM_BALLOON_VQ_STATS);
}

static inline void bf_setup(struct bf *f, const struct bf_opts *o)
{
	struct pvm_balloon_ram ram[8];
	struct pvm_balloon_config cfg = { 0 };
	struct pvm_vdrv_config dc = { 0 };
	struct pvm_error err = { 0 };
	size_t nr = 1;

	memset(f, 0, sizeof(*f));
	assert_int_equal(pvm_memslot_table_new(0, &f->mem), 0);
	f->ram = bf_region(BF_RAM_SIZE, "ram");
	f->io = bf_region(BF_IO_SIZE, "io");
	assert_int_equal(pvm_memslot_add(f->mem, 0, 0, 0, BF_RAM_SIZE, pvm_mem_region_host(f->ram), NULL), 0);
	assert_int_equal(pvm_memslot_add(f->mem, 1, 0, BF_IO_GPA, BF_IO_SIZE, pvm_mem_region_host(f->io), NULL), 0);
	if (!o->no_policy)
		assert_int_equal(pvm_discard_policy_new(&f->policy), 0);
	ram[0] = (struct pvm_balloon_ram){ .gpa = 0, .size = BF_RAM_SIZE, .region = f->ram,
					   .granularity = o->granularity };
	for (size_t i = 0; i < o->nr_extra && nr < 8; i++)
		ram[nr++] = o->extra[i];
	cfg.ram = ram;
	cfg.nr_ram = nr;
	cfg.memslots = f->mem;
	cfg.policy = f->policy;
	cfg.free_page_reporting = o->reporting;
	cfg.page_poison = o->poison;
	cfg.deflate_on_oom = o->deflate_on_oom;
	cfg.event = bf_event;
	cfg.event_opaque = f;
	if (pvm_balloon_new(&cfg, &f->b, &err) < 0)
		fail_msg("pvm_balloon_new: %s", pvm_error_message(&err));
	assert_int_equal(pvm_virtio_mmio_new(pvm_balloon_device(f->b), &f->mmio, NULL), 0);
	dc.features = o->drv_features ? o->drv_features : ~0ULL;
	dc.ring_gpa = BF_RING_GPA;
	dc.ring_size = BF_RING_SIZE;
	if (pvm_vdrv_new(f->mmio, f->mem, &dc, &f->drv, &err) < 0)
		fail_msg("pvm_vdrv_new: %s", pvm_error_message(&err));
	if (!o->no_stats_buffer && pvm_vdrv_has_feature(f->drv, PVM_BALLOON_F_STATS_VQ))
		bf_post_stats(f, NULL, NULL, 0);
}

static inline void bf_teardown(struct bf *f)
{
	pvm_vdrv_free(f->drv);
	pvm_virtio_mmio_free(f->mmio);
	pvm_balloon_free(f->b);
	pvm_discard_policy_free(f->policy);
	pvm_memslot_table_free(f->mem);
	pvm_mem_region_free(f->ram);
	pvm_mem_region_free(f->io);
}

/* Send @n PFNs as one element on queue @q (inflate or deflate); returns once it was used. */
static inline void bf_send_raw(struct bf *f, unsigned q, const void *bytes, uint32_t len)
{
	struct pvm_vdrv_buf buf = { BF_BUF_GPA, len };
	void *tok = NULL;
	uint32_t used = 0;
	int tag = 1;

	assert_true(len <= BF_BUF_SIZE - 4096);
	memcpy(bf_hva(f, BF_BUF_GPA, len), bytes, len);
	assert_int_equal(pvm_vdrv_add(f->drv, q, &buf, 1, NULL, 0, &tag), 0);
	pvm_vdrv_kick(f->drv, q);
	assert_int_equal(pvm_vdrv_get_used(f->drv, q, &tok, &used), 1);
	assert_ptr_equal(tok, &tag);
	assert_int_equal(used, 0);
}

static inline void bf_send(struct bf *f, unsigned q, const uint32_t *pfns, uint32_t n)
{
	uint32_t le[1024];

	for (uint32_t done = 0; done < n;) {
		uint32_t k = n - done < 256 ? n - done : 256;  /* Linux: 256 PFNs per element */

		for (uint32_t i = 0; i < k; i++)
			le[i] = htole32(pfns[done + i]);
		bf_send_raw(f, q, le, k * 4);
		done += k;
	}
}

/* Inflate (or deflate) @n consecutive 4 KiB pages from @gpa. */
static inline void bf_range(struct bf *f, unsigned q, uint64_t gpa, uint32_t n)
{
	uint32_t pfns[256];

	for (uint32_t done = 0; done < n;) {
		uint32_t k = n - done < 256 ? n - done : 256;

		for (uint32_t i = 0; i < k; i++)
			pfns[i] = (uint32_t)((gpa >> 12) + done + i);
		bf_send(f, q, pfns, k);
		done += k;
	}
}

static inline uint64_t bf_resident(struct bf *f)
{
	uint64_t bytes = 0;

	assert_int_equal(pvm_mem_region_resident(f->ram, 0, BF_RAM_SIZE, &bytes, NULL), 0);
	return bytes;
}

static inline void bf_touch(struct bf *f, uint64_t off, uint64_t len)
{
	memset((char *)pvm_mem_region_host(f->ram) + off, 0x5a, len);
}

static inline void bf_write_actual(struct bf *f, uint32_t pages)
{
	uint32_t le = htole32(pages);

	pvm_vdrv_config_write(f->drv, PVM_BALLOON_CFG_ACTUAL, &le, 4);
}

static inline struct pvm_balloon_info bf_info(struct bf *f)
{
	struct pvm_balloon_info i;

	pvm_balloon_query(f->b, &i);
	return i;
}

#endif

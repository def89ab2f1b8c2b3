/* SPDX-License-Identifier: MIT */
/*
 * virtio-balloon: every request through a real virtqueue (virtio-mmio + the guest-side driver),
 * host memory measured with mincore(). The pure parts (stats parsing, PFN resolution) have
 * their own case tables.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "balloon-fixture.h"
#include "core/util.h"
#include "virtio/balloon-priv.h"

#define MiB BF_MiB
#define PAGES(bytes) ((uint32_t)((bytes) / BF_PAGE))

static const struct bf_opts plain = { 0 };

/* ---- inflate / deflate with 4 KiB backing ------------------------------------------------------ */

static void test_inflate_frees_rss(void **state)
{
	struct bf f;
	struct pvm_balloon_info i;

	bf_setup(&f, &plain);
	bf_touch(&f, 0, 16 * MiB);
	assert_int_equal(bf_resident(&f), 16 * MiB);
	bf_range(&f, PVM_BALLOON_VQ_INFLATE, 4 * MiB, PAGES(4 * MiB));
	bf_write_actual(&f, PAGES(4 * MiB));
	assert_int_equal(bf_resident(&f), 12 * MiB);
	i = bf_info(&f);
	assert_int_equal(i.inflated_bytes, 4 * MiB);
	assert_int_equal(i.freed_bytes, 4 * MiB);
	assert_int_equal(i.pending_bytes, 0);
	assert_int_equal(i.actual_pages, PAGES(4 * MiB));
	assert_int_equal(i.guest_bytes, BF_RAM_SIZE - 4 * MiB);
	assert_false(i.inhibited);
	assert_int_equal(f.events, 1);
	assert_int_equal(f.last.guest_bytes, BF_RAM_SIZE - 4 * MiB);

	/* Deflate 1 MiB: tracking follows, nothing is freed or refilled by the host. */
	bf_range(&f, PVM_BALLOON_VQ_DEFLATE, 4 * MiB, PAGES(1 * MiB));
	i = bf_info(&f);
	assert_int_equal(i.inflated_bytes, 3 * MiB);
	assert_int_equal(i.freed_bytes, 3 * MiB);
	assert_int_equal(bf_resident(&f), 12 * MiB);
	/* Repeats (guest bugs) change nothing. */
	bf_range(&f, PVM_BALLOON_VQ_DEFLATE, 4 * MiB, PAGES(1 * MiB));
	bf_range(&f, PVM_BALLOON_VQ_INFLATE, 5 * MiB, 16);
	assert_int_equal(bf_info(&f).inflated_bytes, 3 * MiB);
	/* The freed pages read as zeros. */
	assert_int_equal(((uint8_t *)pvm_mem_region_host(f.ram))[6 * MiB + 123], 0);
	bf_teardown(&f);
}

/* ---- inhibition ----------------------------------------------------------------------------------- */

static void test_inhibited_acks_tracks_frees_later(void **state)
{
	struct bf f;
	struct pvm_balloon_info i;

	bf_setup(&f, &plain);
	bf_touch(&f, 0, 16 * MiB);
	assert_int_equal(pvm_discard_policy_take(f.policy, PVM_DISCARD_DISABLE_UNCOORDINATED, NULL), 0);
	assert_int_equal(pvm_balloon_discard_changed(f.b), 0);
	/* Every element is acknowledged (bf_send asserts it), actual is followed. */
	bf_range(&f, PVM_BALLOON_VQ_INFLATE, 0, PAGES(8 * MiB));
	bf_write_actual(&f, PAGES(8 * MiB));
	i = bf_info(&f);
	assert_true(i.inhibited);
	assert_true(i.policy_disabled);
	assert_int_equal(i.inflated_bytes, 8 * MiB);
	assert_int_equal(i.freed_bytes, 0);
	assert_int_equal(i.pending_bytes, 8 * MiB);
	assert_int_equal(i.actual_pages, PAGES(8 * MiB));
	assert_int_equal(bf_resident(&f), 16 * MiB);
	/* Deflate while inhibited: just tracking. */
	bf_range(&f, PVM_BALLOON_VQ_DEFLATE, 0, PAGES(2 * MiB));
	bf_write_actual(&f, PAGES(6 * MiB));
	assert_int_equal(bf_info(&f).pending_bytes, 6 * MiB);
	assert_int_equal(f.events, 2);

	/* The device leaves: the machine tells the balloon, which frees what it holds. */
	assert_int_equal(pvm_discard_policy_release(f.policy, PVM_DISCARD_DISABLE_UNCOORDINATED), 0);
	assert_int_equal(pvm_balloon_discard_changed(f.b), 6 * MiB);
	i = bf_info(&f);
	assert_false(i.inhibited);
	assert_int_equal(i.freed_bytes, 6 * MiB);
	assert_int_equal(i.pending_bytes, 0);
	assert_int_equal(bf_resident(&f), 10 * MiB);
	assert_int_equal(pvm_balloon_discard_changed(f.b), 0);
	bf_teardown(&f);
}

static void test_inhibited_recheck_on_request(void **state)
{
	struct bf f;

	bf_setup(&f, &plain);
	bf_touch(&f, 0, 8 * MiB);
	assert_int_equal(pvm_balloon_inhibit(f.b, true), 0);
	bf_range(&f, PVM_BALLOON_VQ_INFLATE, 0, PAGES(2 * MiB));
	assert_true(bf_info(&f).inhibited);
	assert_int_equal(bf_info(&f).inhibit_count, 1);
	assert_int_equal(bf_resident(&f), 8 * MiB);
	/* Policy votes and own inhibitors combine. */
	assert_int_equal(pvm_discard_policy_take(f.policy, PVM_DISCARD_DISABLE, NULL), 0);
	assert_int_equal(pvm_balloon_inhibit(f.b, false), 0);
	assert_int_equal(pvm_balloon_inhibit(f.b, false), -EINVAL);
	assert_true(bf_info(&f).inhibited);
	assert_int_equal(bf_resident(&f), 8 * MiB);
	/* Released without telling the balloon: the next request notices. */
	assert_int_equal(pvm_discard_policy_release(f.policy, PVM_DISCARD_DISABLE), 0);
	bf_range(&f, PVM_BALLOON_VQ_INFLATE, 4 * MiB, 1);
	assert_int_equal(bf_info(&f).freed_bytes, 2 * MiB + 4096);
	assert_int_equal(bf_resident(&f), 6 * MiB - 4096);
	bf_teardown(&f);
}

/* ---- validation ---------------------------------------------------------------------------------- */

static void test_bad_pfns_skipped(void **state)
{
	struct pvm_mem_region *top = bf_region(256 * 1024, "top");
	struct pvm_mem_region *rom = bf_region(1 * MiB, "rom");
	struct pvm_mem_region *keep = bf_region(1 * MiB, "keep");
	const uint64_t top_gpa = (1ULL << 44) - 128 * 1024;  /* 16 TiB - 128 KiB */
	struct pvm_balloon_ram extra[] = {
		{ .gpa = top_gpa, .size = 256 * 1024, .region = top },
		{ .gpa = 2048 * MiB, .size = 1 * MiB, .region = rom },
		{ .gpa = 3072 * MiB, .size = 1 * MiB, .region = keep, .no_discard = true },
	};
	struct bf_opts o = { .extra = extra, .nr_extra = 3 };
	uint32_t bad[] = {
		PAGES(BF_RAM_SIZE),            /* just past RAM */
		PAGES(BF_IO_GPA),              /* mapped, but not balloon RAM (rings live there) */
		PAGES(512 * MiB),              /* a hole */
		PAGES(2048 * MiB),             /* read-only memslot */
		0x7fffffffu,
	};
	struct bf f;
	struct pvm_balloon_info i;

	bf_setup(&f, &o);
	assert_int_equal(pvm_memslot_add(f.mem, 2, 0, top_gpa, 256 * 1024, pvm_mem_region_host(top), NULL), 0);
	assert_int_equal(pvm_memslot_add(f.mem, 3, PVM_MEMSLOT_F_READONLY, 2048 * MiB, 1 * MiB,
					 pvm_mem_region_host(rom), NULL), 0);
	assert_int_equal(pvm_memslot_add(f.mem, 4, 0, 3072 * MiB, 1 * MiB, pvm_mem_region_host(keep), NULL), 0);
	memset(pvm_mem_region_host(top), 1, 256 * 1024);
	memset(pvm_mem_region_host(rom), 1, 1 * MiB);
	memset(pvm_mem_region_host(keep), 1, 1 * MiB);
	memset((char *)pvm_mem_region_host(f.io) + BF_RING_SIZE, 1, BF_BUF_SIZE - 4096);

	bf_send(&f, PVM_BALLOON_VQ_INFLATE, bad, PVM_ARRAY_SIZE(bad));
	i = bf_info(&f);
	assert_int_equal(i.bad_pfns, PVM_ARRAY_SIZE(bad));
	assert_int_equal(i.inflated_bytes, 0);
	assert_int_equal(((uint8_t *)pvm_mem_region_host(rom))[0], 1);

	/* The highest nameable page (PFN 2^32-1, at 16 TiB - 4 KiB) works; nothing above 16 TiB
	 * can be named at all. */
	uint32_t last = 0xffffffffu;
	bf_send(&f, PVM_BALLOON_VQ_INFLATE, &last, 1);
	assert_int_equal(bf_info(&f).freed_bytes, 4096);
	assert_int_equal(((uint8_t *)pvm_mem_region_host(top))[128 * 1024 - 4096], 0);
	assert_int_equal(((uint8_t *)pvm_mem_region_host(top))[128 * 1024], 1);

	/* A no_discard range: tracked, never freed. */
	bf_range(&f, PVM_BALLOON_VQ_INFLATE, 3072 * MiB, 16);
	i = bf_info(&f);
	assert_int_equal(i.inflated_bytes, 17 * 4096);
	assert_int_equal(i.freed_bytes, 4096);
	assert_int_equal(pvm_balloon_discard_changed(f.b), 0);
	assert_int_equal(((uint8_t *)pvm_mem_region_host(keep))[0], 1);

	/* Odd lengths: the trailing bytes are ignored, the element is still acknowledged. */
	uint8_t odd[7] = { 0x10, 0, 0, 0, 0x11, 0, 0 };
	bf_send_raw(&f, PVM_BALLOON_VQ_INFLATE, odd, sizeof(odd));
	assert_int_equal(bf_info(&f).inflated_bytes, 18 * 4096);
	assert_int_equal(bf_info(&f).bad_pfns, PVM_ARRAY_SIZE(bad));
	/* Unmapping RAM from the memslot table makes its pages unusable at once. */
	assert_int_equal(pvm_memslot_delete(f.mem, 2, NULL), 0);
	last = 0xfffffffeu;
	bf_send(&f, PVM_BALLOON_VQ_INFLATE, &last, 1);
	assert_int_equal(bf_info(&f).bad_pfns, PVM_ARRAY_SIZE(bad) + 1);
	/* The I/O area was never touched by any of this. */
	for (uint64_t off = BF_RING_SIZE + 8192; off < BF_IO_SIZE - 4096; off += 4096)
		assert_int_equal(((uint8_t *)pvm_mem_region_host(f.io))[off], 1);
	bf_teardown(&f);
	pvm_mem_region_free(top);
	pvm_mem_region_free(rom);
	pvm_mem_region_free(keep);
}

static void test_element_length_capped(void **state)
{
	uint32_t n = PVM_BALLOON_MAX_PFNS_PER_ELEM + 16;
	uint32_t *pfns = calloc(n, 4);
	struct bf f;

	bf_setup(&f, &plain);
	/* PFN 0 repeated, then 16 valid PFNs beyond the cap that must be ignored. */
	for (uint32_t i = PVM_BALLOON_MAX_PFNS_PER_ELEM; i < n; i++)
		pfns[i] = htole32(100 + i - PVM_BALLOON_MAX_PFNS_PER_ELEM);
	bf_send_raw(&f, PVM_BALLOON_VQ_INFLATE, pfns, n * 4);
	assert_int_equal(bf_info(&f).inflated_bytes, 4096);
	free(pfns);
	bf_teardown(&f);
}

static void test_config_rejected(void **state)
{
	struct pvm_mem_region *r = bf_region(4 * MiB, "r");
	struct pvm_memslot_table *mem;
	struct pvm_balloon *b = (void *)1;
	struct pvm_error err = { 0 };
	static const struct {
		const char *name;
		uint64_t gpa, size, offset, gran;
		int rc;
	} cases[] = {
		{ "unaligned gpa", 4096 + 1, 4096, 0, 0, -EINVAL },
		{ "empty", 0, 0, 0, 0, -EINVAL },
		{ "outside region", 0, 8 * MiB, 0, 0, -EINVAL },
		{ "offset past end", 0, 4096, 4 * MiB, 0, -EINVAL },
		{ "wraps", UINT64_MAX - 4095, 8192, 0, 0, -EINVAL },
		{ "granularity not pow2", 0, 4 * MiB, 0, 3 * MiB, -EINVAL },
		{ "granularity misaligned", 1 * MiB, 2 * MiB, 0, 2 * MiB, -EINVAL },
		{ "granularity too big", 0, 4 * MiB, 0, 2048 * MiB, -EINVAL },
	};

	assert_int_equal(pvm_memslot_table_new(0, &mem), 0);
	for (size_t c = 0; c < PVM_ARRAY_SIZE(cases); c++) {
		struct pvm_balloon_ram ram = { cases[c].gpa, cases[c].size, r, cases[c].offset,
					       cases[c].gran, false };
		struct pvm_balloon_config cfg = { .ram = &ram, .nr_ram = 1, .memslots = mem };

		pvm_error_clear(&err);
		if (pvm_balloon_new(&cfg, &b, &err) != cases[c].rc)
			fail_msg("case %s: expected %d (%s)", cases[c].name, cases[c].rc,
				 pvm_error_message(&err));
		assert_null(b);
	}
	/* Overlap, and no memslots. */
	struct pvm_balloon_ram two[] = { { 0, 2 * MiB, r, 0, 0, false }, { 1 * MiB, 2 * MiB, r, 0, 0, false } };
	struct pvm_balloon_config cfg = { .ram = two, .nr_ram = 2, .memslots = mem };
	assert_int_equal(pvm_balloon_new(&cfg, &b, NULL), -EEXIST);
	cfg.memslots = NULL;
	assert_int_equal(pvm_balloon_new(&cfg, &b, NULL), -EINVAL);
	assert_int_equal(pvm_balloon_new(NULL, &b, NULL), -EINVAL);
	pvm_balloon_free(NULL);
	pvm_memslot_table_free(mem);
	pvm_mem_region_free(r);
}

/* ---- host pages larger than 4 KiB -------------------------------------------------------------- */

static void test_large_pages_partial_frees_nothing(void **state)
{
	struct bf_opts o = { .granularity = 2 * MiB };
	struct bf f;
	struct pvm_balloon_info i;

	bf_setup(&f, &o);
	bf_touch(&f, 0, 8 * MiB);
	/* 511 of the 512 sub-pages of the host page at 2 MiB, in two elements: nothing freed. */
	bf_range(&f, PVM_BALLOON_VQ_INFLATE, 2 * MiB, 511);
	i = bf_info(&f);
	assert_int_equal(i.inflated_bytes, 511 * 4096);
	assert_int_equal(i.freed_bytes, 0);
	assert_int_equal(bf_resident(&f), 8 * MiB);
	/* Out of order and in a later request: the last sub-page completes it. Across elements. */
	bf_range(&f, PVM_BALLOON_VQ_INFLATE, 4 * MiB - 4096, 1);
	i = bf_info(&f);
	assert_int_equal(i.freed_bytes, 2 * MiB);
	assert_int_equal(i.pending_bytes, 0);
	assert_int_equal(bf_resident(&f), 6 * MiB);
	/* Deflating one sub-page: the whole host page counts as not freed any more. */
	bf_range(&f, PVM_BALLOON_VQ_DEFLATE, 3 * MiB, 1);
	i = bf_info(&f);
	assert_int_equal(i.inflated_bytes, 2 * MiB - 4096);
	assert_int_equal(i.freed_bytes, 0);
	assert_int_equal(i.pending_bytes, 2 * MiB - 4096);
	/* Re-inflating it frees the host page again. */
	bf_range(&f, PVM_BALLOON_VQ_INFLATE, 3 * MiB, 1);
	assert_int_equal(bf_info(&f).freed_bytes, 2 * MiB);
	/* Scattered sub-pages of many host pages never free anything. */
	for (uint64_t hp = 4 * MiB; hp < 8 * MiB; hp += 2 * MiB)
		bf_range(&f, PVM_BALLOON_VQ_INFLATE, hp + 8192, 100);
	assert_int_equal(bf_info(&f).freed_bytes, 2 * MiB);
	assert_int_equal(bf_resident(&f), 6 * MiB);
	bf_teardown(&f);
}

static void test_large_pages_inhibited_then_released(void **state)
{
	struct bf_opts o = { .granularity = 2 * MiB };
	struct bf f;

	bf_setup(&f, &o);
	bf_touch(&f, 0, 8 * MiB);
	assert_int_equal(pvm_discard_policy_take(f.policy, PVM_DISCARD_DISABLE_UNCOORDINATED, NULL), 0);
	bf_range(&f, PVM_BALLOON_VQ_INFLATE, 0, PAGES(2 * MiB) + 5);  /* 1 full + 5 sub-pages */
	assert_int_equal(bf_info(&f).freed_bytes, 0);
	assert_int_equal(pvm_discard_policy_release(f.policy, PVM_DISCARD_DISABLE_UNCOORDINATED), 0);
	assert_int_equal(pvm_balloon_discard_changed(f.b), 2 * MiB);
	assert_int_equal(bf_info(&f).pending_bytes, 5 * 4096);
	assert_int_equal(bf_resident(&f), 6 * MiB);
	bf_teardown(&f);
}

/* Real huge pages, when the machine has some reserved. */
static void test_hugetlb_backing(void **state)
{
	struct pvm_mem_region_config rc = { .name = "huge", .backend = PVM_MEM_BACKEND_MEMFD,
					     .size = 4 * MiB, .hugetlb = true };
	struct pvm_mem_region *huge = NULL;
	struct pvm_mem_populate_opts po = { 0 };
	struct bf f;
	struct pvm_balloon_ram extra;
	struct bf_opts o = { .extra = &extra, .nr_extra = 1 };
	uint64_t res = 0;

	if (pvm_mem_region_new(&rc, &huge, NULL) < 0 ||
	    pvm_mem_region_populate(huge, 0, 4 * MiB, &po, NULL) < 0) {
		if (huge)
			pvm_mem_region_free(huge);
		/* cmocka's skip() prints "not ok # SKIP" in TAP mode, which meson counts as a
		 * failure: say so and pass instead. */
		print_message("# skipped: no hugetlb pages reserved on this machine\n");
		return;
	}
	extra = (struct pvm_balloon_ram){ .gpa = 4096 * MiB, .size = 4 * MiB, .region = huge };
	bf_setup(&f, &o);
	assert_int_equal(pvm_memslot_add(f.mem, 5, 0, 4096 * MiB, 4 * MiB, pvm_mem_region_host(huge), NULL), 0);
	bf_range(&f, PVM_BALLOON_VQ_INFLATE, 4096 * MiB, 256);  /* Linux's element: half a page */
	assert_int_equal(bf_info(&f).freed_bytes, 0);
	bf_range(&f, PVM_BALLOON_VQ_INFLATE, 4096 * MiB + 1 * MiB, 256);
	assert_int_equal(bf_info(&f).freed_bytes, 2 * MiB);
	assert_int_equal(pvm_mem_region_resident(huge, 0, 4 * MiB, &res, NULL), 0);
	assert_int_equal(res, 2 * MiB);
	bf_teardown(&f);
	pvm_mem_region_free(huge);
}

/* ---- statistics --------------------------------------------------------------------------------- */

static void put_stat(uint8_t *p, uint16_t tag, uint64_t val)
{
	tag = htole16(tag);
	val = htole64(val);
	memcpy(p, &tag, 2);
	memcpy(p + 2, &val, 8);
}

static void test_stats_parse_cases(void **state)
{
	static const struct {
		const char *name;
		uint16_t tags[4];
		uint64_t vals[4];
		unsigned n;
		size_t extra;          /* trailing bytes */
		unsigned known;        /* golden: records with a known tag */
		uint32_t valid;        /* golden: valid mask */
		uint64_t memfree;      /* golden: val[MEMFREE] */
	} cases[] = {
		{ "empty", { 0 }, { 0 }, 0, 0, 0, 0, PVM_BALLOON_STAT_UNSET },
		{ "one", { 4 }, { 1234 }, 1, 0, 1, 1u << 4, 1234 },
		{ "unknown tags ignored", { 16, 4, 0xffff }, { 1, 77, 2 }, 3, 0, 1, 1u << 4, 77 },
		{ "later duplicate wins", { 4, 4 }, { 1, 2 }, 2, 0, 2, 1u << 4, 2 },
		{ "partial trailing record", { 5 }, { 9 }, 1, 9, 1, 1u << 5, PVM_BALLOON_STAT_UNSET },
		{ "linux extension 15", { 15, 0 }, { 3, 4 }, 2, 0, 2, (1u << 15) | 1, PVM_BALLOON_STAT_UNSET },
	};
	uint8_t buf[64];

	for (size_t c = 0; c < PVM_ARRAY_SIZE(cases); c++) {
		struct pvm_balloon_stats st;
		size_t len = cases[c].n * 10 + cases[c].extra;

		memset(buf, 0xee, sizeof(buf));
		for (unsigned k = 0; k < cases[c].n; k++)
			put_stat(buf + 10 * k, cases[c].tags[k], cases[c].vals[k]);
		memset(&st, 0x11, sizeof(st));
		if (pvm_balloon_stats_parse(buf, len, &st) != cases[c].known || st.valid != cases[c].valid ||
		    st.val[PVM_BALLOON_S_MEMFREE] != cases[c].memfree)
			fail_msg("case %s", cases[c].name);
		for (unsigned t = 0; t < PVM_BALLOON_S_NR; t++)
			if (!(st.valid & (1u << t)))
				assert_true(st.val[t] == PVM_BALLOON_STAT_UNSET);
	}
	assert_string_equal(pvm_balloon_stat_name(PVM_BALLOON_S_SWAP_IN), "stat-swap-in");
	assert_string_equal(pvm_balloon_stat_name(PVM_BALLOON_S_AVAIL), "stat-available-memory");
	assert_string_equal(pvm_balloon_stat_name(PVM_BALLOON_S_DIRECT_RECLAIM), "stat-direct-reclaims");
	assert_null(pvm_balloon_stat_name(PVM_BALLOON_S_NR));
}

static void test_stats_through_queue(void **state)
{
	struct bf_opts o = { .no_stats_buffer = true };
	uint16_t tags1[] = { PVM_BALLOON_S_MEMFREE, PVM_BALLOON_S_MEMTOT, 99 };
	uint64_t vals1[] = { 100 * MiB, 1024 * MiB, 5 };
	uint16_t tags2[] = { PVM_BALLOON_S_MEMTOT };
	uint64_t vals2[] = { 2048 * MiB };
	struct pvm_balloon_stats st;
	void *tok;
	uint32_t len;
	struct bf f;

	bf_setup(&f, &o);
	assert_int_equal(pvm_balloon_stats_request(f.b), -EAGAIN);  /* no buffer yet */
	bf_post_stats(&f, tags1, vals1, 3);
	pvm_balloon_get_stats(f.b, &st);
	assert_int_equal(st.updates, 1);
	assert_int_equal(st.valid, (1u << PVM_BALLOON_S_MEMFREE) | (1u << PVM_BALLOON_S_MEMTOT));
	assert_int_equal(st.val[PVM_BALLOON_S_MEMFREE], 100 * MiB);
	assert_true(st.last_update > 0);
	/* The device holds the buffer until it asks for new numbers. */
	assert_int_equal(pvm_vdrv_get_used(f.drv, PVM_BALLOON_VQ_STATS, &tok, &len), 0);
	assert_int_equal(pvm_balloon_stats_request(f.b), 0);
	assert_int_equal(pvm_vdrv_get_used(f.drv, PVM_BALLOON_VQ_STATS, &tok, &len), 1);
	assert_ptr_equal(tok, &f.stats_tok);
	assert_int_equal(pvm_balloon_stats_request(f.b), -EAGAIN);  /* one outstanding */
	/* A buffer with fewer statistics: the missing ones read as unset, not stale. */
	bf_post_stats(&f, tags2, vals2, 1);
	pvm_balloon_get_stats(f.b, &st);
	assert_int_equal(st.updates, 2);
	assert_int_equal(st.valid, 1u << PVM_BALLOON_S_MEMTOT);
	assert_true(st.val[PVM_BALLOON_S_MEMFREE] == PVM_BALLOON_STAT_UNSET);
	assert_int_equal(st.val[PVM_BALLOON_S_MEMTOT], 2048 * MiB);
	/* A driver that posts a second buffer gets the first one back. */
	bf_post_stats(&f, tags1, vals1, 2);
	assert_int_equal(pvm_vdrv_get_used(f.drv, PVM_BALLOON_VQ_STATS, &tok, &len), 1);

	/* Polling: off by default, then every 2 s of the caller's clock. */
	assert_true(pvm_balloon_tick(f.b, 1000) == UINT64_MAX);
	pvm_balloon_set_stats_interval(f.b, 2);
	assert_int_equal(pvm_balloon_tick(f.b, 1000), 2000);
	assert_int_equal(pvm_balloon_tick(f.b, 2500), 500);
	assert_int_equal(pvm_vdrv_get_used(f.drv, PVM_BALLOON_VQ_STATS, &tok, &len), 0);
	assert_int_equal(pvm_balloon_tick(f.b, 3000), 2000);
	assert_int_equal(pvm_vdrv_get_used(f.drv, PVM_BALLOON_VQ_STATS, &tok, &len), 1);
	pvm_balloon_get_stats(f.b, &st);
	assert_int_equal(st.interval, 2);
	bf_teardown(&f);
}

/* ---- free page reporting ------------------------------------------------------------------------- */

static void send_report(struct bf *f, unsigned q, const struct pvm_vdrv_buf *in, unsigned n)
{
	void *tok;
	uint32_t len;
	int tag;

	assert_int_equal(pvm_vdrv_add(f->drv, q, NULL, 0, in, n, &tag), 0);
	pvm_vdrv_kick(f->drv, q);
	assert_int_equal(pvm_vdrv_get_used(f->drv, q, &tok, &len), 1);
	assert_ptr_equal(tok, &tag);
}

static void test_free_page_reporting(void **state)
{
	struct bf_opts o = { .reporting = true, .poison = true };
	struct pvm_vdrv_buf good[] = { { 0, 1 * MiB }, { 8 * MiB, 2 * MiB } };
	struct pvm_vdrv_buf bad[] = {
		{ 16 * MiB + 100, 4096 },     /* unaligned */
		{ BF_RAM_SIZE - 4096, 8192 },  /* crosses the end of RAM (into nothing) */
		{ BF_IO_GPA + BF_RING_SIZE, 4096 },  /* not balloon RAM */
	};
	struct bf f;
	uint32_t poison = htole32(0xaa);

	bf_setup(&f, &o);
	assert_true(pvm_vdrv_has_feature(f.drv, PVM_BALLOON_F_PAGE_REPORTING));
	bf_touch(&f, 0, 32 * MiB);
	send_report(&f, PVM_BALLOON_VQ_REPORTING, good, 2);
	assert_int_equal(bf_resident(&f), 29 * MiB);
	assert_int_equal(bf_info(&f).reported_bytes, 3 * MiB);
	assert_int_equal(bf_info(&f).inflated_bytes, 0);  /* reports are not the balloon */
	send_report(&f, PVM_BALLOON_VQ_REPORTING, &bad[0], 1);
	send_report(&f, PVM_BALLOON_VQ_REPORTING, &bad[2], 1);
	assert_int_equal(bf_resident(&f), 29 * MiB);

	/* Inhibited: acknowledged, nothing discarded. */
	bf_touch(&f, 0, 32 * MiB);
	assert_int_equal(pvm_discard_policy_take(f.policy, PVM_DISCARD_DISABLE_UNCOORDINATED, NULL), 0);
	send_report(&f, PVM_BALLOON_VQ_REPORTING, good, 2);
	assert_int_equal(bf_resident(&f), 32 * MiB);
	assert_int_equal(pvm_discard_policy_release(f.policy, PVM_DISCARD_DISABLE_UNCOORDINATED), 0);

	/* The old queue numbering (reporting at 3 when FREE_PAGE_HINT is absent) works too. */
	send_report(&f, PVM_BALLOON_VQ_FREE_PAGE, &good[0], 1);
	assert_int_equal(bf_resident(&f), 31 * MiB);

	/* A non-zero poison value: the guest expects the contents to stay. */
	pvm_vdrv_config_write(f.drv, PVM_BALLOON_CFG_POISON_VAL, &poison, 4);
	assert_int_equal(bf_info(&f).poison_val, 0xaa);
	send_report(&f, PVM_BALLOON_VQ_REPORTING, &good[1], 1);
	assert_int_equal(bf_resident(&f), 31 * MiB);
	assert_int_equal(bf_info(&f).reported_bytes, 4 * MiB);
	bf_teardown(&f);

	/* With 2 MiB granularity, only 2 MiB-aligned reports are taken. */
	o.granularity = 2 * MiB;
	bf_setup(&f, &o);
	bf_touch(&f, 0, 32 * MiB);
	send_report(&f, PVM_BALLOON_VQ_REPORTING, good, 2);
	assert_int_equal(bf_resident(&f), 30 * MiB);
	assert_int_equal(bf_info(&f).reported_bytes, 2 * MiB);
	bf_teardown(&f);
}

/* ---- config, target, events, reset ----------------------------------------------------------------- */

static void test_config_and_target(void **state)
{
	static const struct {
		uint64_t target;
		uint32_t num_pages;     /* golden */
	} cases[] = {
		{ BF_RAM_SIZE, 0 },
		{ BF_RAM_SIZE * 4, 0 },                /* clamped to RAM */
		{ BF_RAM_SIZE - 4096, 1 },
		{ BF_RAM_SIZE - 4095, 0 },             /* rounds towards a smaller balloon */
		{ 1, PAGES(BF_RAM_SIZE) - 1 },
		{ 32 * MiB, PAGES(32 * MiB) },
	};
	struct bf_opts o = { .deflate_on_oom = true, .poison = true };
	struct bf f;
	uint32_t v;

	bf_setup(&f, &o);
	assert_true(pvm_vdrv_has_feature(f.drv, PVM_BALLOON_F_STATS_VQ));
	assert_true(pvm_vdrv_has_feature(f.drv, PVM_BALLOON_F_DEFLATE_ON_OOM));
	assert_false(pvm_vdrv_has_feature(f.drv, PVM_BALLOON_F_MUST_TELL_HOST));
	assert_false(pvm_vdrv_has_feature(f.drv, PVM_BALLOON_F_FREE_PAGE_HINT));
	assert_false(pvm_vdrv_has_feature(f.drv, PVM_BALLOON_F_PAGE_REPORTING));
	assert_int_equal(pvm_balloon_set_target(f.b, 0, NULL), -EINVAL);
	for (size_t c = 0; c < PVM_ARRAY_SIZE(cases); c++) {
		(void)pvm_vdrv_ack_interrupt(f.drv);
		assert_int_equal(pvm_balloon_set_target(f.b, cases[c].target, NULL), 0);
		assert_int_equal(pvm_vdrv_config_read(f.drv, PVM_BALLOON_CFG_NUM_PAGES, &v, 4), 0);
		if (le32toh(v) != cases[c].num_pages)
			fail_msg("target %llu: num_pages %u, want %u", (unsigned long long)cases[c].target,
				 le32toh(v), cases[c].num_pages);
		assert_int_equal(bf_info(&f).num_pages, cases[c].num_pages);
	}
	/* A change raises a configuration interrupt; setting the same value does not. */
	(void)pvm_vdrv_ack_interrupt(f.drv);
	assert_int_equal(pvm_balloon_set_num_pages(f.b, 77), 0);
	assert_true(pvm_vdrv_ack_interrupt(f.drv) & PVM_VIRTIO_INT_CONFIG);
	assert_int_equal(pvm_balloon_set_num_pages(f.b, 77), 0);
	assert_false(pvm_vdrv_ack_interrupt(f.drv) & PVM_VIRTIO_INT_CONFIG);
	/* actual: little-endian, events only on change. */
	bf_write_actual(&f, 5);
	bf_write_actual(&f, 5);
	assert_int_equal(f.events, 1);
	assert_int_equal(f.last.actual_pages, 5);
	assert_int_equal(pvm_vdrv_config_read(f.drv, PVM_BALLOON_CFG_ACTUAL, &v, 4), 0);
	assert_int_equal(le32toh(v), 5);
	/* A huge actual does not underflow the guest size. */
	bf_write_actual(&f, 0xffffffffu);
	assert_int_equal(f.last.guest_bytes, 0);
	bf_teardown(&f);
}

static void test_reset_forgets_balloon(void **state)
{
	struct bf f;

	bf_setup(&f, &plain);
	assert_int_equal(pvm_balloon_set_num_pages(f.b, 1000), 0);
	bf_range(&f, PVM_BALLOON_VQ_INFLATE, 0, 100);
	bf_write_actual(&f, 100);
	pvm_vdrv_free(f.drv);  /* resets the device */
	f.drv = NULL;
	assert_int_equal(bf_info(&f).inflated_bytes, 0);
	assert_int_equal(bf_info(&f).actual_pages, 0);
	assert_int_equal(bf_info(&f).num_pages, 1000);  /* the target stays */
	assert_int_equal(f.last.actual_pages, 0);
	assert_int_equal(pvm_balloon_stats_request(f.b), -EAGAIN);  /* buffer dropped */
	bf_teardown(&f);
}

/* ---- concurrency: the control plane votes and queries while the guest inflates ------------ */

struct flipper {
	struct bf *f;
	atomic_bool stop;
	unsigned flips;
};

static void *flip_policy(void *arg)
{
	struct flipper *fl = arg;
	struct pvm_balloon_info i;

	while (!atomic_load(&fl->stop)) {
		assert_int_equal(pvm_discard_policy_take(fl->f->policy, PVM_DISCARD_DISABLE_UNCOORDINATED, NULL), 0);
		(void)pvm_balloon_discard_changed(fl->f->b);
		pvm_balloon_query(fl->f->b, &i);
		assert_true(i.inhibited);
		assert_true(i.freed_bytes <= i.inflated_bytes);
		assert_int_equal(pvm_discard_policy_release(fl->f->policy, PVM_DISCARD_DISABLE_UNCOORDINATED), 0);
		(void)pvm_balloon_discard_changed(fl->f->b);
		fl->flips++;
	}
	return NULL;
}

static void test_concurrent_policy_changes(void **state)
{
	struct bf f;
	struct flipper fl = { .f = &f };
	uint64_t res = 0;
	pthread_t t;

	bf_setup(&f, &plain);
	bf_touch(&f, 0, 16 * MiB);
	assert_int_equal(pthread_create(&t, NULL, flip_policy, &fl), 0);
	for (int round = 0; round < 20; round++) {
		bf_range(&f, PVM_BALLOON_VQ_INFLATE, 0, PAGES(4 * MiB));
		bf_range(&f, PVM_BALLOON_VQ_DEFLATE, 0, PAGES(2 * MiB));
		bf_range(&f, PVM_BALLOON_VQ_DEFLATE, 2 * MiB, PAGES(2 * MiB));
	}
	bf_range(&f, PVM_BALLOON_VQ_INFLATE, 8 * MiB, PAGES(4 * MiB));
	atomic_store(&fl.stop, true);
	assert_int_equal(pthread_join(t, NULL), 0);
	/* Whatever was held back while the vote was up is freed now; nothing else was. */
	(void)pvm_balloon_discard_changed(f.b);
	assert_int_equal(bf_info(&f).inflated_bytes, 4 * MiB);
	assert_int_equal(bf_info(&f).pending_bytes, 0);
	/* 8..12 MiB is gone, 4..8 and 12..16 MiB were never in the balloon. (0..4 MiB went in and
	 * out while the vote flipped: freed or not, depending on the timing.) */
	assert_int_equal(pvm_mem_region_resident(f.ram, 8 * MiB, 4 * MiB, &res, NULL), 0);
	assert_int_equal(res, 0);
	assert_int_equal(pvm_mem_region_resident(f.ram, 4 * MiB, 4 * MiB, &res, NULL), 0);
	assert_int_equal(res, 4 * MiB);
	assert_int_equal(pvm_mem_region_resident(f.ram, 12 * MiB, 4 * MiB, &res, NULL), 0);
	assert_int_equal(res, 4 * MiB);
	assert_true(fl.flips > 0);
	bf_teardown(&f);
}

/* ---- allocation torture ------------------------------------------------------------------------------ */

struct torture_ctx {
	struct pvm_memslot_table *mem;
	struct pvm_mem_region *ram;
};

static int torture_new(void *opaque)
{
	struct torture_ctx *c = opaque;
	struct pvm_balloon_ram ram = { .gpa = 0, .size = 8 * MiB, .region = c->ram };
	struct pvm_balloon_config cfg = { .ram = &ram, .nr_ram = 1, .memslots = c->mem };
	struct pvm_balloon *b = NULL;
	int rc = pvm_balloon_new(&cfg, &b, NULL);

	assert_true(rc == 0 ? b != NULL : b == NULL);
	pvm_balloon_free(b);
	return rc;
}

static void test_torture(void **state)
{
	struct torture_ctx c;
	struct bf f;

	assert_int_equal(pvm_memslot_table_new(0, &c.mem), 0);
	c.ram = bf_region(8 * MiB, "ram");
	assert_true(pvm_test_torture(torture_new, NULL, &c) > 0);
	pvm_memslot_table_free(c.mem);
	pvm_mem_region_free(c.ram);

	/* Requests under allocation failure: the element waits (or is handled), nothing breaks,
	 * and a later kick finishes it. */
	unsigned retried = 0;

	bf_setup(&f, &plain);
	bf_touch(&f, 0, 1 * MiB);
	for (uint64_t n = 1; n < 20; n++) {
		struct pvm_vdrv_buf buf = { BF_BUF_GPA, 4 };
		uint32_t pfn = htole32((uint32_t)n);
		void *tok;
		uint32_t len;
		int tag;

		memcpy(bf_hva(&f, BF_BUF_GPA, 4), &pfn, 4);
		assert_int_equal(pvm_vdrv_add(f.drv, PVM_BALLOON_VQ_INFLATE, &buf, 1, NULL, 0, &tag), 0);
		pvm_alloc_fail_at(n);
		pvm_vdrv_kick(f.drv, PVM_BALLOON_VQ_INFLATE);
		pvm_alloc_fail_at(0);
		if (pvm_vdrv_get_used(f.drv, PVM_BALLOON_VQ_INFLATE, &tok, &len) == 0) {
			/* The pop failed: the driver will not kick again; the owner's tick retries. */
			assert_true(pvm_balloon_tick(f.b, 0) == UINT64_MAX);
			retried++;
			assert_int_equal(pvm_vdrv_get_used(f.drv, PVM_BALLOON_VQ_INFLATE, &tok, &len), 1);
		}
		assert_int_equal(bf_info(&f).inflated_bytes, n * 4096);
	}
	assert_true(retried > 0);
	assert_false(pvm_virtio_device_is_broken(pvm_balloon_device(f.b)));
	bf_teardown(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_inflate_frees_rss),
		cmocka_unit_test(test_inhibited_acks_tracks_frees_later),
		cmocka_unit_test(test_inhibited_recheck_on_request),
		cmocka_unit_test(test_bad_pfns_skipped),
		cmocka_unit_test(test_element_length_capped),
		cmocka_unit_test(test_config_rejected),
		cmocka_unit_test(test_large_pages_partial_frees_nothing),
		cmocka_unit_test(test_large_pages_inhibited_then_released),
		cmocka_unit_test(test_hugetlb_backing),
		cmocka_unit_test(test_stats_parse_cases),
		cmocka_unit_test(test_stats_through_queue),
		cmocka_unit_test(test_free_page_reporting),
		cmocka_unit_test(test_config_and_target),
		cmocka_unit_test(test_reset_forgets_balloon),
		cmocka_unit_test(test_concurrent_policy_changes),
		cmocka_unit_test(test_torture),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

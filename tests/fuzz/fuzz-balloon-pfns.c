/* SPDX-License-Identifier: MIT */
/*
 * Fuzz the virtio-balloon queues through a real split virtqueue: PFN arrays on the inflate and
 * deflate queues, statistics buffers, free page reports, policy votes, targets, config writes
 * and resets, in any order. Invariants checked after every step:
 *  - a canary region mapped in guest memory but not balloon RAM is never modified;
 *  - freed <= inflated <= RAM size, pending == inflated - freed;
 *  - inhibited is reported exactly while the fuzzer holds the VFIO vote, and during that time
 *    the resident size of RAM never shrinks.
 *
 * Input: byte 0 = options (bit 0: 2 MiB granularity; bit 1: start with a VFIO vote; bit 2: no
 * page poison), then records { u8 op, u8 len, len bytes } until the input ends (at most 256
 * records, 4 KiB input).
 */
#include <endian.h>
#include <stdlib.h>
#include <string.h>

#include "virtio/driver.h"
#include <pvmem/balloon.h>
#include <pvmem/discard.h>
#include <pvmem/mem.h>
#include <pvmem/memslot.h>

#define MiB (1024ULL * 1024)
#define RAM_SIZE (8 * MiB)
#define CANARY_GPA (16 * MiB)
#define CANARY_SIZE (64 * 1024)
#define IO_GPA (32 * MiB)
#define IO_SIZE (2 * MiB)
#define BUF_GPA (IO_GPA + 1 * MiB)
#define MAX_INPUT 4096
#define MAX_OPS 256

#define CHECK(x)                        \
	do {                            \
		if (!(x))               \
			__builtin_trap(); \
	} while (0)

struct env {
	struct pvm_memslot_table *mem;
	struct pvm_mem_region *ram, *canary, *io;
	struct pvm_discard_policy *policy;
	struct pvm_balloon *b;
	struct pvm_virtio_mmio *mmio;
	struct pvm_vdrv *drv;
	bool voted;
	int token;
};

static struct pvm_mem_region *region(uint64_t size)
{
	struct pvm_mem_region_config rc = { .backend = PVM_MEM_BACKEND_ANON, .size = size,
					     .noreserve = true };
	struct pvm_mem_region *r = NULL;

	CHECK(pvm_mem_region_new(&rc, &r, NULL) == 0);
	return r;
}

static void driver_up(struct env *e)
{
	struct pvm_vdrv_config dc = { .features = ~0ULL, .ring_gpa = IO_GPA, .ring_size = 1 * MiB };

	if (pvm_vdrv_new(e->mmio, e->mem, &dc, &e->drv, NULL) < 0)
		e->drv = NULL;
}

static uint64_t resident(struct env *e)
{
	uint64_t bytes = 0;

	CHECK(pvm_mem_region_resident(e->ram, 0, RAM_SIZE, &bytes, NULL) == 0);
	return bytes;
}

static void check(struct env *e)
{
	struct pvm_balloon_info i;
	const uint8_t *c = pvm_mem_region_host(e->canary);

	pvm_balloon_query(e->b, &i);
	CHECK(i.freed_bytes <= i.inflated_bytes);
	CHECK(i.inflated_bytes <= RAM_SIZE);
	CHECK(i.pending_bytes == i.inflated_bytes - i.freed_bytes);
	CHECK(i.inhibited == e->voted);
	for (size_t k = 0; k < CANARY_SIZE; k += 512)
		CHECK(c[k] == 0xa5);
}

/* Put @len bytes at BUF_GPA as one buffer on queue @q (device-readable unless @in). */
static void send(struct env *e, unsigned q, const uint8_t *data, uint32_t len, bool in)
{
	struct pvm_vdrv_buf buf = { BUF_GPA, len };
	void *hva, *tok;
	uint32_t used;

	if (!e->drv || !len || pvm_memslot_translate(e->mem, BUF_GPA, len, PVM_ACCESS_WRITE, &hva) < 0)
		return;
	memcpy(hva, data, len);
	if (pvm_vdrv_add(e->drv, q, in ? NULL : &buf, in ? 0 : 1, in ? &buf : NULL, in ? 1 : 0,
			 &e->token) < 0)
		return;
	pvm_vdrv_kick(e->drv, q);
	while (pvm_vdrv_get_used(e->drv, q, &tok, &used) == 1)
		;
}

/* A report: the data is (le32 gpa_pages, le16 pages) triples; each becomes one in-buffer. */
static void report(struct env *e, const uint8_t *data, uint32_t len)
{
	struct pvm_vdrv_buf bufs[8];
	unsigned n = 0;
	void *tok;
	uint32_t used;

	for (uint32_t off = 0; off + 6 <= len && n < 8; off += 6) {
		uint32_t page;
		uint16_t pages;

		memcpy(&page, data + off, 4);
		memcpy(&pages, data + off + 4, 2);
		page = le32toh(page) % (uint32_t)(RAM_SIZE / 4096 + 64);  /* mostly RAM, some beyond */
		pages = (uint16_t)(le16toh(pages) % 1024 + 1);
		bufs[n++] = (struct pvm_vdrv_buf){ (uint64_t)page * 4096, (uint32_t)pages * 4096 };
	}
	if (!e->drv || !n || pvm_vdrv_add(e->drv, PVM_BALLOON_VQ_REPORTING, NULL, 0, bufs, n, &e->token) < 0)
		return;
	pvm_vdrv_kick(e->drv, PVM_BALLOON_VQ_REPORTING);
	while (pvm_vdrv_get_used(e->drv, PVM_BALLOON_VQ_REPORTING, &tok, &used) == 1)
		;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct env e = { 0 };
	struct pvm_balloon_ram ram;
	struct pvm_balloon_config cfg = { 0 };
	uint64_t floor;
	size_t off = 1;

	if (size < 1 || size > MAX_INPUT)
		return 0;
	CHECK(pvm_memslot_table_new(0, &e.mem) == 0);
	e.ram = region(RAM_SIZE);
	e.canary = region(CANARY_SIZE);
	e.io = region(IO_SIZE);
	memset(pvm_mem_region_host(e.canary), 0xa5, CANARY_SIZE);
	memset(pvm_mem_region_host(e.ram), 1, RAM_SIZE);
	CHECK(pvm_memslot_add(e.mem, 0, 0, 0, RAM_SIZE, pvm_mem_region_host(e.ram), NULL) == 0);
	CHECK(pvm_memslot_add(e.mem, 1, 0, CANARY_GPA, CANARY_SIZE, pvm_mem_region_host(e.canary), NULL) == 0);
	CHECK(pvm_memslot_add(e.mem, 2, 0, IO_GPA, IO_SIZE, pvm_mem_region_host(e.io), NULL) == 0);
	CHECK(pvm_discard_policy_new(&e.policy) == 0);
	ram = (struct pvm_balloon_ram){ .gpa = 0, .size = RAM_SIZE, .region = e.ram,
					.granularity = (data[0] & 1) ? 2 * MiB : 0 };
	cfg.ram = &ram;
	cfg.nr_ram = 1;
	cfg.memslots = e.mem;
	cfg.policy = e.policy;
	cfg.free_page_reporting = true;
	cfg.page_poison = !(data[0] & 4);
	cfg.deflate_on_oom = true;
	CHECK(pvm_balloon_new(&cfg, &e.b, NULL) == 0);
	CHECK(pvm_virtio_mmio_new(pvm_balloon_device(e.b), &e.mmio, NULL) == 0);
	driver_up(&e);
	if (data[0] & 2) {
		CHECK(pvm_discard_policy_take(e.policy, PVM_DISCARD_DISABLE_UNCOORDINATED, NULL) == 0);
		e.voted = true;
	}
	floor = resident(&e);
	for (unsigned ops = 0; ops < MAX_OPS && off + 2 <= size; ops++) {
		uint8_t op = data[off], len = data[off + 1];
		const uint8_t *p = data + off + 2;
		uint32_t v = 0;

		if (len > size - off - 2)
			len = (uint8_t)(size - off - 2);
		off += 2u + len;
		memcpy(&v, p, len < 4 ? len : 4);
		switch (op % 12) {
		case 0:
		case 1:
		case 2:
			send(&e, PVM_BALLOON_VQ_INFLATE, p, len, false);
			break;
		case 3:
			send(&e, PVM_BALLOON_VQ_DEFLATE, p, len, false);
			break;
		case 4:
			send(&e, PVM_BALLOON_VQ_STATS, p, len, false);
			break;
		case 5:
			report(&e, p, len);
			break;
		case 6:
			if (e.voted)
				CHECK(pvm_discard_policy_release(e.policy, PVM_DISCARD_DISABLE_UNCOORDINATED) == 0);
			else
				CHECK(pvm_discard_policy_take(e.policy, PVM_DISCARD_DISABLE_UNCOORDINATED, NULL) == 0);
			e.voted = !e.voted;
			(void)pvm_balloon_discard_changed(e.b);
			floor = resident(&e);
			break;
		case 7:
			if (pvm_balloon_set_target(e.b, v, NULL) < 0)
				CHECK(v == 0);
			break;
		case 8:
			if (e.drv)
				pvm_vdrv_config_write(e.drv, v & 4 ? PVM_BALLOON_CFG_POISON_VAL :
						  PVM_BALLOON_CFG_ACTUAL, p, len < 4 ? len : 4);
			break;
		case 9:
			(void)pvm_balloon_stats_request(e.b);
			(void)pvm_balloon_tick(e.b, v);
			break;
		case 10:
			pvm_vdrv_free(e.drv);
			e.drv = NULL;
			driver_up(&e);
			break;
		case 11:
			send(&e, PVM_BALLOON_VQ_FREE_PAGE, p, len, v & 1);
			break;
		}
		check(&e);
		if (e.voted) {
			uint64_t now = resident(&e);

			CHECK(now >= floor);
			floor = now;
		} else {
			floor = resident(&e);
		}
	}
	pvm_vdrv_free(e.drv);
	pvm_virtio_mmio_free(e.mmio);
	pvm_balloon_free(e.b);
	if (e.voted)
		CHECK(pvm_discard_policy_release(e.policy, PVM_DISCARD_DISABLE_UNCOORDINATED) == 0);
	pvm_discard_policy_free(e.policy);
	pvm_memslot_table_free(e.mem);
	pvm_mem_region_free(e.ram);
	pvm_mem_region_free(e.canary);
	pvm_mem_region_free(e.io);
	return 0;
}

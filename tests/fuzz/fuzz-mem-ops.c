/* SPDX-License-Identifier: MIT */
/*
 * Fuzz the region operations with byte-driven offsets and lengths: discard, populate, resident,
 * allocated, and writes through the mapping. An independent model decides whether each range is
 * valid (-EINVAL exactly when it is not) and what every page must contain: discarded pages read
 * zero (and are not resident right after the discard), populate never changes contents.
 *
 * Input: byte 0 picks the backend, byte 1 the size (1..64 pages); then operations of 1 opcode
 * byte plus what its operand modes consume (mode 0: 1 byte, 1: 8, 2: 1, 3: 2). Bounded: at most 4 KiB of input, 64 operations.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pvmem/mem.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_INPUT 4096
#define MAX_OPS 64
#define MAX_PAGES 64

struct input {
	const uint8_t *p;     /* next byte */
	size_t left;          /* bytes left */
};

static uint8_t take8(struct input *in)
{
	if (!in->left)
		return 0;
	in->left--;
	return *in->p++;
}

static uint64_t take64(struct input *in)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | take8(in);
	return v;
}

/* An offset or length by @mode: a page index (valid-ish), any 64-bit value, something near
 * 2^64, or a page index plus a few bytes (unaligned). */
static uint64_t operand(struct input *in, unsigned mode, uint64_t pages, uint64_t page)
{
	switch (mode) {
	case 0: return (uint64_t)(take8(in) % (pages + 2)) * page;
	case 1: return take64(in);
	case 2: return UINT64_MAX - (uint64_t)take8(in) * page;
	default: return (uint64_t)(take8(in) % (pages + 1)) * page + 1 + take8(in) % 64;
	}
}

static const struct {
	enum pvm_mem_backend backend;
	bool shared;
	const char *path;
} backends[] = {
	{ PVM_MEM_BACKEND_ANON, false, NULL },
	{ PVM_MEM_BACKEND_ANON, true, NULL },
	{ PVM_MEM_BACKEND_MEMFD, true, NULL },
	{ PVM_MEM_BACKEND_FILE, true, "/tmp" },
	{ PVM_MEM_BACKEND_FILE, false, "/tmp" },
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size };
	uint8_t shadow[MAX_PAGES];     /* the byte every page holds at offset 0 (0 = zero) */
	struct pvm_mem_region_config cfg = { .name = "fuzz", .noreserve = true };
	struct pvm_mem_region *r;
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE), pages, rsize;
	uint8_t *h, b;

	if (size < 2 || size > MAX_INPUT)
		return 0;
	b = take8(&in) % (sizeof(backends) / sizeof(backends[0]));
	cfg.backend = backends[b].backend;
	cfg.shared = backends[b].shared;
	cfg.path = backends[b].path;
	pages = 1 + take8(&in) % MAX_PAGES;
	rsize = cfg.size = pages * page;
	if (pvm_mem_region_new(&cfg, &r, NULL) != 0)
		abort();
	h = pvm_mem_region_host(r);
	memset(shadow, 0, sizeof(shadow));

	for (int n = 0; n < MAX_OPS && in.left; n++) {
		uint8_t opc = take8(&in);
		unsigned op = opc & 7;          /* 0 discard, 1 populate, 2 resident, 3 allocated,
		                                 * 4-7 write; bits 3-4 offset mode, 5-6 length mode,
		                                 * 7 read-only populate */
		uint64_t off = operand(&in, (opc >> 3) & 3, pages, page);
		uint64_t len = operand(&in, (opc >> 5) & 3, pages, page);
		bool valid = off % page == 0 && len % page == 0 && off <= rsize && len <= rsize - off;
		struct pvm_error err = { 0 };
		uint64_t bytes = 0;
		int rc = 0;

		switch (op) {
		case 0:
			rc = pvm_mem_region_discard(r, off, len, &err);
			if (rc == 0) {
				if (pvm_mem_region_resident(r, off, len, &bytes, NULL) != 0 || bytes != 0)
					abort();
				memset(shadow + off / page, 0, len / page);
			}
			break;
		case 1: {
			struct pvm_mem_populate_opts po = { .threads = 1 + ((opc >> 3) & 1),
							    .read_only = (opc & 0x80) != 0 };

			rc = pvm_mem_region_populate(r, off, len, &po, &err);
			if (rc == 0 && !po.read_only &&
			    (pvm_mem_region_resident(r, off, len, &bytes, NULL) != 0 || bytes != len))
				abort();
			break;
		}
		case 2:
			rc = pvm_mem_region_resident(r, off, len, &bytes, &err);
			if (rc == 0 && bytes > len)
				abort();
			break;
		case 3:
			rc = pvm_mem_region_allocated(r, off, len, &bytes, &err);
			if (rc == 0 && bytes > len)
				abort();
			break;
		default:
			/* A write of one byte at the start of a page (not a library call). */
			if (off < rsize && off % page == 0) {
				uint8_t v = (uint8_t)(len ^ len >> 12) | 1;

				h[off] = v;
				shadow[off / page] = v;
			}
			continue;
		}
		if (valid ? rc != 0 : rc != -EINVAL || err.code != -EINVAL || !err.msg[0])
			abort();
		for (uint64_t i = 0; i < pages; i++)
			if (h[i * page] != shadow[i])
				abort();
	}
	pvm_mem_region_free(r);
	return 0;
}

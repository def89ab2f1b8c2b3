/* SPDX-License-Identifier: MIT */
/*
 * virtio-mem request cases: the spec's conformance statements (research/virtio-mem.md §1.4,
 * ids DPn/DAn/DSn) and QEMU's validation order (§2.1), as one named table run against the
 * pure decision function, plus the wire format and the usable-region policy with golden values
 * (the usable values come from the real-guest traces).
 */
#include <errno.h>
#include <string.h>

#include "test-util.h"
#include "core/util.h"
#include "virtio/mem-state.h"

#define BS (2 * PVM_MiB)
#define BASE 0x100000000ULL
#define B(n) (BASE + (uint64_t)(n) * BS)   /* address of block n */

/* The state every case starts from: a 1 GiB region of 512 blocks, usable 256 blocks,
 * requested 128 blocks; blocks 0..63 and 100 plugged (65 blocks). */
enum setup { S_NORMAL = 0, S_EMPTY = 1, S_BUSY = 2, S_EMPTY_BUSY = 3 };

struct req_case {
	const char *name;           /* what is tested (and the checklist id) */
	enum setup setup;           /* starting state */
	uint16_t type;              /* request */
	uint64_t addr;
	uint16_t nb;
	uint16_t resp;              /* expected answer */
	enum pvm_vmem_action action;/* expected action */
	uint16_t state;             /* expected STATE value */
};

#define P VIRTIO_MEM_REQ_PLUG
#define U VIRTIO_MEM_REQ_UNPLUG
#define A VIRTIO_MEM_REQ_UNPLUG_ALL
#define S VIRTIO_MEM_REQ_STATE
#define ACK VIRTIO_MEM_RESP_ACK
#define NACK VIRTIO_MEM_RESP_NACK
#define BUSY VIRTIO_MEM_RESP_BUSY
#define ERR VIRTIO_MEM_RESP_ERROR

static const struct req_case cases[] = {
	/* PLUG: DP3 range checks (ERROR) */
	{ "plug ok (DP6)", S_NORMAL, P, B(64), 1, ACK, PVM_VMEM_ACT_PLUG, 0 },
	{ "plug unaligned by 4 KiB (DP3)", S_NORMAL, P, B(64) + 4096, 1, ERR, 0, 0 },
	{ "plug unaligned by half a block (DP3)", S_NORMAL, P, B(64) + PVM_MiB, 1, ERR, 0, 0 },
	{ "plug nb_blocks 0 (DP3)", S_NORMAL, P, B(64), 0, ERR, 0, 0 },
	{ "plug wraps past 2^64", S_NORMAL, P, 0xFFFFFFFFFFE00000ULL, 2, ERR, 0, 0 },
	{ "plug ends exactly at 2^64", S_NORMAL, P, 0xFFFFFFFFFFE00000ULL, 1, ERR, 0, 0 },
	{ "plug wraps with 65535 blocks", S_NORMAL, P, 0xFFFFFFF000000000ULL, 65535, ERR, 0, 0 },
	{ "plug below the region", S_NORMAL, P, BASE - BS, 1, ERR, 0, 0 },
	{ "plug straddles the region start", S_NORMAL, P, BASE - BS, 2, ERR, 0, 0 },
	{ "plug at address 0", S_NORMAL, P, 0, 1, ERR, 0, 0 },
	{ "plug straddles the usable end", S_NORMAL, P, B(255), 2, ERR, 0, 0 },
	{ "plug at the usable end", S_NORMAL, P, B(256), 1, ERR, 0, 0 },
	{ "plug in the unusable tail", S_NORMAL, P, B(400), 1, ERR, 0, 0 },
	{ "plug beyond the region", S_NORMAL, P, B(512), 1, ERR, 0, 0 },
	{ "plug last usable block", S_NORMAL, P, B(255), 1, ACK, PVM_VMEM_ACT_PLUG, 0 },
	/* PLUG: NACK after range checks, before state checks (QEMU order) */
	{ "plug exactly up to requested", S_NORMAL, P, B(128), 63, ACK, PVM_VMEM_ACT_PLUG, 0 },
	{ "plug one block over requested (NACK)", S_NORMAL, P, B(128), 64, NACK, 0, 0 },
	{ "plug over requested, bad range: ERROR wins", S_NORMAL, P, B(200), 100, ERR, 0, 0 },
	{ "plug over requested, partly plugged: NACK first", S_NORMAL, P, B(60), 100, NACK, 0, 0 },
	{ "plug over requested, unaligned: ERROR wins", S_NORMAL, P, B(128) + 4096, 64, ERR, 0, 0 },
	/* PLUG: DP4 state */
	{ "plug partly plugged range (DP4)", S_NORMAL, P, B(63), 2, ERR, 0, 0 },
	{ "plug already plugged block (DP4)", S_NORMAL, P, B(100), 1, ERR, 0, 0 },
	{ "plug range with a plugged block inside (DP4)", S_NORMAL, P, B(99), 3, ERR, 0, 0 },
	/* PLUG: DP5 busy comes last */
	{ "plug while busy (DP5)", S_BUSY, P, B(64), 1, BUSY, 0, 0 },
	{ "plug while busy, bad range: ERROR", S_BUSY, P, B(300), 1, ERR, 0, 0 },
	{ "plug while busy, over requested: NACK", S_BUSY, P, B(128), 64, NACK, 0, 0 },
	{ "plug while busy, wrong state: ERROR", S_BUSY, P, B(100), 1, ERR, 0, 0 },
	/* UNPLUG */
	{ "unplug ok (DP6)", S_NORMAL, U, B(0), 64, ACK, PVM_VMEM_ACT_UNPLUG, 0 },
	{ "unplug single block", S_NORMAL, U, B(100), 1, ACK, PVM_VMEM_ACT_UNPLUG, 0 },
	{ "unplug partly plugged range (DP4)", S_NORMAL, U, B(63), 2, ERR, 0, 0 },
	{ "unplug unplugged block (DP4)", S_NORMAL, U, B(200), 1, ERR, 0, 0 },
	{ "unplug unaligned (DP3)", S_NORMAL, U, B(0) + 8192, 1, ERR, 0, 0 },
	{ "unplug nb_blocks 0 (DP3)", S_NORMAL, U, B(0), 0, ERR, 0, 0 },
	{ "unplug wraps", S_NORMAL, U, 0xFFFFFFFFFFE00000ULL, 3, ERR, 0, 0 },
	{ "unplug beyond usable", S_NORMAL, U, B(256), 1, ERR, 0, 0 },
	{ "unplug never NACKs (plugged > requested)", S_NORMAL, U, B(10), 1, ACK, PVM_VMEM_ACT_UNPLUG, 0 },
	{ "unplug while busy", S_BUSY, U, B(0), 1, BUSY, 0, 0 },
	{ "unplug while busy, wrong state: ERROR", S_BUSY, U, B(200), 1, ERR, 0, 0 },
	/* UNPLUG_ALL (DA1..DA6): address and count are ignored */
	{ "unplug_all (DA4)", S_NORMAL, A, 0, 0, ACK, PVM_VMEM_ACT_UNPLUG_ALL, 0 },
	{ "unplug_all ignores addr and nb_blocks (DA1)", S_NORMAL, A, 12345, 7, ACK, PVM_VMEM_ACT_UNPLUG_ALL, 0 },
	{ "unplug_all with nothing plugged (idempotent)", S_EMPTY, A, 0, 0, ACK, PVM_VMEM_ACT_SHRINK_USABLE, 0 },
	{ "unplug_all busy with memory plugged (DA3)", S_BUSY, A, 0, 0, BUSY, 0, 0 },
	{ "unplug_all busy with nothing plugged: ACK", S_EMPTY_BUSY, A, 0, 0, ACK, PVM_VMEM_ACT_SHRINK_USABLE, 0 },
	/* STATE (DS1..DS4) */
	{ "state plugged (DS4)", S_NORMAL, S, B(0), 64, ACK, 0, VIRTIO_MEM_STATE_PLUGGED },
	{ "state unplugged (DS4)", S_NORMAL, S, B(64), 36, ACK, 0, VIRTIO_MEM_STATE_UNPLUGGED },
	{ "state mixed (DS4)", S_NORMAL, S, B(60), 10, ACK, 0, VIRTIO_MEM_STATE_MIXED },
	{ "state mixed around one block", S_NORMAL, S, B(99), 3, ACK, 0, VIRTIO_MEM_STATE_MIXED },
	{ "state whole usable region", S_NORMAL, S, B(0), 256, ACK, 0, VIRTIO_MEM_STATE_MIXED },
	{ "state beyond usable (DS3)", S_NORMAL, S, B(200), 57, ERR, 0, 0 },
	{ "state nb_blocks 0 (DS3)", S_NORMAL, S, B(0), 0, ERR, 0, 0 },
	{ "state unaligned (DS3)", S_NORMAL, S, B(0) + 4096, 1, ERR, 0, 0 },
	{ "state wraps", S_NORMAL, S, 0xFFFFFFFFFFE00000ULL, 1, ERR, 0, 0 },
	{ "state while busy still answers", S_BUSY, S, B(0), 1, ACK, 0, VIRTIO_MEM_STATE_PLUGGED },
	/* unknown types: protocol violation (QEMU virtio_error) */
	{ "unknown type 4", S_NORMAL, 4, B(0), 1, ERR, PVM_VMEM_ACT_VIOLATION, 0 },
	{ "unknown type 0xffff", S_NORMAL, 0xffff, B(0), 1, ERR, PVM_VMEM_ACT_VIOLATION, 0 },
};

static void make_view(enum setup s, struct pvm_vmem_view *v, struct pvm_bitmap **bm)
{
	assert_int_equal(pvm_bitmap_new(512, bm), 0);
	*v = (struct pvm_vmem_view){
		.addr = BASE, .region_size = 512 * BS, .block_size = BS,
		.usable_region_size = 256 * BS, .requested_size = 128 * BS, .plugged = *bm,
		.busy = s == S_BUSY || s == S_EMPTY_BUSY,
	};
	if (s == S_NORMAL || s == S_BUSY) {
		assert_int_equal(pvm_bitmap_set_range(*bm, 0, 64), 0);
		pvm_bitmap_set(*bm, 100);
		v->plugged_size = 65 * BS;
	}
}

static void test_request_cases(void **state)
{
	for (size_t i = 0; i < PVM_ARRAY_SIZE(cases); i++) {
		const struct req_case *c = &cases[i];
		struct pvm_vmem_req r = { .type = c->type, .addr = c->addr, .nb_blocks = c->nb };
		struct pvm_vmem_view v;
		struct pvm_vmem_decision d;
		struct pvm_bitmap *bm;

		make_view(c->setup, &v, &bm);
		pvm_vmem_decide(&v, &r, &d);
		if (d.resp != c->resp || d.action != c->action ||
		    (c->type == S && d.resp == ACK && d.state != c->state))
			fail_msg("case '%s': got resp %s action %d state %u, expected %s %d %u", c->name,
				 pvm_vmem_resp_name(d.resp), d.action, d.state, pvm_vmem_resp_name(c->resp),
				 c->action, c->state);
		if (d.action == PVM_VMEM_ACT_PLUG || d.action == PVM_VMEM_ACT_UNPLUG) {
			assert_int_equal(d.first, (c->addr - BASE) / BS);
			assert_int_equal(d.count, c->nb);
		}
		/* decide() is pure: nothing changed */
		assert_int_equal(pvm_bitmap_count(bm), c->setup & 1 ? 0 : 65);
		pvm_bitmap_free(bm);
	}
}

/* DP1/DP2: padding and trailing bytes are ignored; short buffers are refused. */
static void test_wire_request(void **state)
{
	uint8_t raw[32];
	struct pvm_vmem_req r, back = { .type = 3, .addr = 0x123456789abcdef0ULL, .nb_blocks = 0xbeef };

	memset(raw, 0xa5, sizeof(raw));
	pvm_vmem_req_encode(&back, raw);
	assert_int_equal(raw[2] | raw[3] | raw[7] | raw[18] | raw[23], 0);
	memset(raw + 2, 0xff, 6);      /* padding after type */
	memset(raw + 18, 0xff, 6);     /* padding after nb_blocks */
	assert_true(pvm_vmem_req_parse(raw, 24, &r));
	assert_int_equal(r.type, 3);
	assert_int_equal(r.addr, 0x123456789abcdef0ULL);
	assert_int_equal(r.nb_blocks, 0xbeef);
	assert_true(pvm_vmem_req_parse(raw, 32, &r));
	assert_false(pvm_vmem_req_parse(raw, 23, &r));
}

static void test_wire_response_and_config(void **state)
{
	uint8_t resp[PVM_VMEM_RESP_SIZE], cfg[PVM_VMEM_CONFIG_SIZE];
	static const uint8_t want_resp[10] = { 0, 0, 0, 0, 0, 0, 0, 0, 2, 0 };
	struct pvm_vmem_view v = { .addr = 0x100000000ULL, .region_size = 0x80000000ULL,
				   .block_size = 0x200000, .usable_region_size = 0x20000000,
				   .plugged_size = 0x8000000, .requested_size = 0x10000000 };
	uint16_t t, s;

	pvm_vmem_resp_encode(VIRTIO_MEM_RESP_ACK, VIRTIO_MEM_STATE_MIXED, resp);
	assert_memory_equal(resp, want_resp, 10);
	assert_true(pvm_vmem_resp_parse(resp, 10, &t, &s));
	assert_int_equal(s, VIRTIO_MEM_STATE_MIXED);
	assert_int_equal(sizeof(struct virtio_mem_config), PVM_VMEM_CONFIG_SIZE);
	assert_int_equal(sizeof(struct virtio_mem_req), PVM_VMEM_REQ_SIZE);
	assert_int_equal(sizeof(struct virtio_mem_resp), PVM_VMEM_RESP_SIZE);
	pvm_vmem_config_encode(&v, 0x0102, cfg);
	assert_int_equal(cfg[0 + 2], 0x20);                 /* block_size @0 */
	assert_int_equal(cfg[8], 0x02);                     /* node_id @8 */
	assert_int_equal(cfg[9], 0x01);
	assert_int_equal(cfg[10] | cfg[15], 0);             /* padding */
	assert_int_equal(cfg[16 + 4], 0x01);                /* addr @16 */
	assert_int_equal(cfg[24 + 3], 0x80);                /* region_size @24 */
	assert_int_equal(cfg[32 + 3], 0x20);                /* usable @32 */
	assert_int_equal(cfg[40 + 3], 0x08);                /* plugged @40 */
	assert_int_equal(cfg[48 + 3], 0x10);                /* requested @48 */
}

struct usable_case {
	const char *name;
	uint64_t region, bs, requested, current;
	bool can_shrink;
	uint64_t want;
};

#define M PVM_MiB
static const struct usable_case usable_cases[] = {
	{ "trace sbm-2m: requested 256M", 2048 * M, 2 * M, 256 * M, 0, true, 512 * M },
	{ "trace bbm: requested 128M", 2048 * M, 2 * M, 128 * M, 0, true, 384 * M },
	{ "trace: grow to 1G", 2048 * M, 2 * M, 1024 * M, 512 * M, false, 1280 * M },
	{ "trace: shrink request keeps usable", 2048 * M, 2 * M, 300 * M, 1280 * M, false, 1280 * M },
	{ "trace: requested 0 keeps usable at run time", 2048 * M, 2 * M, 0, 1280 * M, false, 1280 * M },
	{ "trace: whole region", 2048 * M, 2 * M, 2048 * M, 1280 * M, false, 2048 * M },
	{ "unplug-all shrinks", 2048 * M, 2 * M, 512 * M, 2048 * M, true, 768 * M },
	{ "unplug-all with requested 0", 2048 * M, 2 * M, 0, 2048 * M, true, 0 },
	{ "clipped to the region", 300 * M, 2 * M, 200 * M, 0, true, 300 * M },
	{ "aligned up to 1G blocks", 8192 * M, 1024 * M, 1024 * M, 0, true, 2048 * M },
	{ "aligned up to 128M blocks", 8192 * M, 128 * M, 1152 * M, 0, true, 1408 * M },
	{ "requested near 2^64 does not wrap", 2048 * M, 2 * M, UINT64_MAX - M, 0, true, 2048 * M },
};

static void test_usable_policy(void **state)
{
	for (size_t i = 0; i < PVM_ARRAY_SIZE(usable_cases); i++) {
		const struct usable_case *c = &usable_cases[i];
		uint64_t got = pvm_vmem_usable_size(c->region, c->bs, c->requested,
						    PVM_VMEM_USABLE_EXTENT_X86, c->current, c->can_shrink);

		if (got != c->want)
			fail_msg("usable case '%s': got 0x%llx, expected 0x%llx", c->name,
				 (unsigned long long)got, (unsigned long long)c->want);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_cases),
		cmocka_unit_test(test_wire_request),
		cmocka_unit_test(test_wire_response_and_config),
		cmocka_unit_test(test_usable_policy),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

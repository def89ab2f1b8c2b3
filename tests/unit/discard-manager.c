/* SPDX-License-Identifier: MIT */
/* The discard manager: listener contract (populate with rollback, discard, clipping, late
 * registration replay, unregister), the source ordering contract, allocation torture. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "test-util.h"
#include "discard-fake.h"

#define MiB (1024ull * 1024)
#define GRAN (2 * MiB)
#define BASE (4096 * MiB)
#define SIZE (64 * MiB)

struct event {
	int who;            /* listener index */
	char op;            /* 'p' populate, 'd' discard */
	uint64_t gpa;       /* range start */
	uint64_t size;      /* range size */
};

static struct event log_[256];
static int nlog;

struct rec {
	int id;                     /* index in the log */
	int refuse_at;              /* refuse the N-th populate (1-based), 0 = never */
	int populates;              /* populates seen */
	struct fake_src *src;       /* for contract checks, may be NULL */
	int contract_violations;    /* populate saw plugged state, discard saw freed memory */
};

static int rec_populate(void *opaque, uint64_t gpa, uint64_t size)
{
	struct rec *r = opaque;

	r->populates++;
	if (r->src && pvm_discard_manager_is_populated(r->src->m, gpa, size))
		r->contract_violations++;
	if (r->refuse_at && r->populates == r->refuse_at)
		return -ENOSPC;
	if (nlog < 256)
		log_[nlog++] = (struct event){ r->id, 'p', gpa, size };
	return 0;
}

static void rec_discard(void *opaque, uint64_t gpa, uint64_t size)
{
	struct rec *r = opaque;

	if (r->src) {
		/* Before the memory is freed: the host still has every plugged block of the range. */
		for (uint64_t b = (gpa - r->src->base) / GRAN; b < (gpa - r->src->base + size) / GRAN; b++)
			if (r->src->plugged[b] && !r->src->host[b])
				r->contract_violations++;
	}
	if (nlog < 256)
		log_[nlog++] = (struct event){ r->id, 'd', gpa, size };
}

static const struct pvm_discard_listener_ops rec_ops = { rec_populate, rec_discard };

static void expect(int i, int who, char op, uint64_t gpa, uint64_t size)
{
	assert_true(i < nlog);
	assert_int_equal(log_[i].who, who);
	assert_int_equal(log_[i].op, op);
	assert_int_equal(log_[i].gpa, gpa);
	assert_int_equal(log_[i].size, size);
}

static void test_new_validates(void **state)
{
	struct pvm_discard_manager *m;
	struct pvm_discard_source_ops none = { 0 };
	static const struct { uint64_t base, size, gran; } bad[] = {
		{ 0, SIZE, 3 * MiB }, { 0, SIZE, 2048 }, { MiB, SIZE, GRAN }, { 0, MiB, GRAN },
		{ 0, 0, GRAN }, { UINT64_MAX - GRAN + 1, 2 * GRAN, GRAN },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(pvm_discard_manager_new(bad[i].base, bad[i].size, bad[i].gran, &fake_ops,
							 NULL, &m, NULL), -EINVAL);
	assert_int_equal(pvm_discard_manager_new(0, SIZE, GRAN, &none, NULL, &m, NULL), -EINVAL);
	assert_null(m);
	pvm_discard_manager_free(NULL);
}

static void test_notify_clipped_in_order(void **state)
{
	struct fake_src f;
	struct rec a = { .id = 0 }, b = { .id = 1 };
	struct pvm_discard_listener *la, *lb;

	nlog = 0;
	assert_int_equal(fake_src_init(&f, BASE, SIZE, GRAN), 0);
	assert_int_equal(pvm_discard_manager_register(f.m, BASE, 8 * GRAN, &rec_ops, &a, &la, NULL), 0);
	assert_int_equal(pvm_discard_manager_register(f.m, BASE + 4 * GRAN, 8 * GRAN, &rec_ops, &b, &lb,
						      NULL), 0);
	assert_int_equal(nlog, 0);    /* nothing populated: no replay */
	assert_int_equal(fake_plug(&f, BASE + 2 * GRAN, 4 * GRAN), 0);
	expect(0, 0, 'p', BASE + 2 * GRAN, 4 * GRAN);
	expect(1, 1, 'p', BASE + 4 * GRAN, 2 * GRAN);   /* clipped to b's section */
	assert_int_equal(fake_plug(&f, BASE + 20 * GRAN, GRAN), 0);   /* nobody's section */
	assert_int_equal(nlog, 2);
	assert_int_equal(fake_unplug(&f, BASE + 3 * GRAN, 2 * GRAN), 0);
	expect(2, 0, 'd', BASE + 3 * GRAN, 2 * GRAN);
	expect(3, 1, 'd', BASE + 4 * GRAN, GRAN);
	/* Bad ranges are refused and nobody hears of them. */
	assert_int_equal(pvm_discard_manager_notify_populate(f.m, BASE + 1, GRAN, NULL), -EINVAL);
	assert_int_equal(pvm_discard_manager_notify_populate(f.m, BASE - GRAN, 2 * GRAN, NULL), -EINVAL);
	assert_int_equal(pvm_discard_manager_notify_discard(f.m, BASE + SIZE, GRAN), -EINVAL);
	assert_int_equal(pvm_discard_manager_notify_discard(f.m, BASE, 0), -EINVAL);
	assert_int_equal(pvm_discard_manager_notify_discard(f.m, BASE, UINT64_MAX - GRAN + 1), -EINVAL);
	assert_int_equal(nlog, 4);
	pvm_discard_listener_unregister(la);
	expect(4, 0, 'd', BASE, 8 * GRAN);
	assert_int_equal(pvm_discard_manager_listener_count(f.m), 1);
	fake_src_fini(&f);    /* unregisters b with a discard of its section */
	expect(5, 1, 'd', BASE + 4 * GRAN, 8 * GRAN);
}

/* populate fails at listener k -> listeners 0..k-1 get discard, in order; state unchanged. */
static void test_populate_refusal_rolls_back(void **state)
{
	for (int k = 0; k < 4; k++) {
		struct fake_src f;
		struct rec r[4];
		struct pvm_discard_listener *l[4];
		struct pvm_error err = { 0 };

		nlog = 0;
		assert_int_equal(fake_src_init(&f, BASE, SIZE, GRAN), 0);
		for (int i = 0; i < 4; i++) {
			r[i] = (struct rec){ .id = i, .refuse_at = i == k ? 1 : 0 };
			assert_int_equal(pvm_discard_manager_register(f.m, BASE, SIZE, &rec_ops, &r[i], &l[i],
								      NULL), 0);
		}
		assert_int_equal(pvm_discard_manager_notify_populate(f.m, BASE + GRAN, 2 * GRAN, &err),
				 -ENOSPC);
		assert_int_equal(err.code, -ENOSPC);
		assert_int_equal(nlog, 2 * k);
		for (int i = 0; i < k; i++)
			expect(i, i, 'p', BASE + GRAN, 2 * GRAN);
		for (int i = 0; i < k; i++)
			expect(k + i, i, 'd', BASE + GRAN, 2 * GRAN);
		for (int i = k + 1; i < 4; i++)
			assert_int_equal(r[i].populates, 0);
		assert_false(pvm_discard_manager_is_populated(f.m, BASE + GRAN, GRAN));
		/* The source (fake_plug) refuses too and leaves its state alone. */
		r[k].refuse_at = r[k].populates + 1;
		assert_int_equal(fake_plug(&f, BASE, GRAN), -ENOSPC);
		assert_int_equal(f.plugged[0] + f.host[0], 0);
		fake_src_fini(&f);
	}
}

static void test_late_registration_replays(void **state)
{
	struct fake_src f;
	struct rec a = { .id = 0 };
	struct pvm_discard_listener *l;

	nlog = 0;
	assert_int_equal(fake_src_init(&f, BASE, SIZE, GRAN), 0);
	assert_int_equal(fake_plug(&f, BASE, 2 * GRAN), 0);
	assert_int_equal(fake_plug(&f, BASE + 5 * GRAN, 3 * GRAN), 0);
	assert_int_equal(fake_plug(&f, BASE + 30 * GRAN, 2 * GRAN), 0);
	assert_int_equal(pvm_discard_manager_register(f.m, BASE + GRAN, 6 * GRAN, &rec_ops, &a, &l,
						      NULL), 0);
	assert_int_equal(nlog, 2);
	expect(0, 0, 'p', BASE + GRAN, GRAN);            /* clipped run */
	expect(1, 0, 'p', BASE + 5 * GRAN, 2 * GRAN);    /* clipped at the section end */
	pvm_discard_listener_unregister(l);
	expect(2, 0, 'd', BASE + GRAN, 6 * GRAN);
	pvm_discard_listener_unregister(NULL);
	fake_src_fini(&f);
}

static void test_replay_refusal_fails_registration(void **state)
{
	struct fake_src f;
	struct rec a = { .id = 0, .refuse_at = 2 };
	struct pvm_discard_listener *l = (void *)1;
	struct pvm_error err = { 0 };

	nlog = 0;
	assert_int_equal(fake_src_init(&f, BASE, SIZE, GRAN), 0);
	assert_int_equal(fake_plug(&f, BASE, GRAN), 0);
	assert_int_equal(fake_plug(&f, BASE + 4 * GRAN, GRAN), 0);
	assert_int_equal(pvm_discard_manager_register(f.m, BASE, SIZE, &rec_ops, &a, &l, &err), -ENOSPC);
	assert_null(l);
	expect(0, 0, 'p', BASE, GRAN);
	expect(1, 0, 'd', BASE, SIZE);                  /* undone with a discard of the section */
	assert_int_equal(pvm_discard_manager_listener_count(f.m), 0);
	/* Sections must be aligned parts of the manager. */
	assert_int_equal(pvm_discard_manager_register(f.m, BASE + 4096, GRAN, &rec_ops, &a, &l, NULL),
			 -EINVAL);
	assert_int_equal(pvm_discard_manager_register(f.m, BASE, SIZE + GRAN, &rec_ops, &a, &l, NULL),
			 -EINVAL);
	fake_src_fini(&f);
}

/* plug: listeners hear before the state changes; unplug: before the memory is freed. */
static void test_source_ordering_contract(void **state)
{
	struct fake_src f;
	struct rec a = { .id = 0 };
	struct pvm_discard_listener *l;

	assert_int_equal(fake_src_init(&f, BASE, SIZE, GRAN), 0);
	a.src = &f;
	assert_int_equal(pvm_discard_manager_register(f.m, BASE, SIZE, &rec_ops, &a, &l, NULL), 0);
	for (int i = 0; i < 8; i++)
		assert_int_equal(fake_plug(&f, BASE + (uint64_t)i * 3 * GRAN, 2 * GRAN), 0);
	for (int i = 0; i < 8; i++)
		assert_int_equal(fake_unplug(&f, BASE + (uint64_t)i * 3 * GRAN, GRAN), 0);
	pvm_discard_manager_notify_discard_all(f.m);
	assert_int_equal(a.contract_violations, 0);
	/* A source that frees first is caught by the same listener. */
	f.host[1] = 0;
	assert_int_equal(fake_unplug(&f, BASE + GRAN, GRAN), 0);
	assert_int_equal(a.contract_violations, 1);
	fake_src_fini(&f);
}

static void test_replay_to_listeners(void **state)
{
	struct fake_src f;
	struct rec a = { .id = 0 }, b = { .id = 1 };
	struct pvm_discard_listener *la, *lb;

	nlog = 0;
	assert_int_equal(fake_src_init(&f, BASE, SIZE, GRAN), 0);
	assert_int_equal(pvm_discard_manager_register(f.m, BASE, SIZE, &rec_ops, &a, &la, NULL), 0);
	assert_int_equal(pvm_discard_manager_register(f.m, BASE, SIZE, &rec_ops, &b, &lb, NULL), 0);
	memset(f.plugged + 2, 1, 3);    /* state restored behind the listeners' back */
	assert_int_equal(pvm_discard_manager_replay_to_listeners(f.m, NULL), 0);
	expect(0, 0, 'p', BASE + 2 * GRAN, 3 * GRAN);
	expect(1, 1, 'p', BASE + 2 * GRAN, 3 * GRAN);
	b.refuse_at = b.populates + 1;
	assert_int_equal(pvm_discard_manager_replay_to_listeners(f.m, NULL), -ENOSPC);
	expect(3, 0, 'd', BASE, SIZE);
	expect(4, 1, 'd', BASE, SIZE);
	fake_src_fini(&f);
}

struct torture_ctx {
	struct fake_src f;                     /* the source */
	struct rec r;                          /* the listener's state */
	struct pvm_discard_listener *l;        /* registered listener */
};

static int torture_register(void *arg)
{
	struct torture_ctx *t = arg;
	int rc = pvm_discard_manager_register(t->f.m, BASE, SIZE, &rec_ops, &t->r, &t->l, NULL);

	if (rc == 0) {
		pvm_discard_listener_unregister(t->l);
		t->l = NULL;
	}
	return rc;
}

static int torture_unchanged(void *arg)
{
	struct torture_ctx *t = arg;

	return pvm_discard_manager_listener_count(t->f.m) == 0 && t->l == NULL;
}

static void test_torture_register(void **state)
{
	struct torture_ctx t = { .r = { .id = 0 } };

	assert_int_equal(fake_src_init(&t.f, BASE, SIZE, GRAN), 0);
	assert_int_equal(fake_plug(&t.f, BASE, GRAN), 0);
	assert_true(pvm_test_torture(torture_register, torture_unchanged, &t) >= 1);
	fake_src_fini(&t.f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_new_validates),
		cmocka_unit_test(test_notify_clipped_in_order),
		cmocka_unit_test(test_populate_refusal_rolls_back),
		cmocka_unit_test(test_late_registration_replays),
		cmocka_unit_test(test_replay_refusal_fails_registration),
		cmocka_unit_test(test_source_ordering_contract),
		cmocka_unit_test(test_replay_to_listeners),
		cmocka_unit_test(test_torture_register),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

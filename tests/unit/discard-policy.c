/* SPDX-License-Identifier: MIT */
/* The discard policy: every cell of QEMU's 4x4 -EBUSY matrix, checked releases, queries, and
 * concurrent balance. */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "test-util.h"
#include <pvmem/discard.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define R PVM_DISCARD_REQUIRE
#define RC PVM_DISCARD_REQUIRE_COORDINATED
#define D PVM_DISCARD_DISABLE
#define DU PVM_DISCARD_DISABLE_UNCOORDINATED

/* Golden: result of taking vote [col] while [row] is held (research §1.4, derived matrix). */
static const struct {
	enum pvm_discard_vote held;
	enum pvm_discard_vote req;
	int rc;
} matrix[] = {
	{ D, D, 0 },        { D, DU, 0 },       { D, R, -EBUSY },    { D, RC, -EBUSY },
	{ DU, D, 0 },       { DU, DU, 0 },      { DU, R, -EBUSY },   { DU, RC, 0 },
	{ R, D, -EBUSY },   { R, DU, -EBUSY },  { R, R, 0 },         { R, RC, 0 },
	{ RC, D, -EBUSY },  { RC, DU, 0 },      { RC, R, 0 },        { RC, RC, 0 },
};

static void assert_zero(const struct pvm_discard_policy *p)
{
	struct pvm_discard_counts c;

	pvm_discard_policy_counts(p, &c);
	for (int i = 0; i < PVM_DISCARD_NVOTES; i++)
		assert_int_equal(c.count[i], 0);
}

static void test_matrix_every_cell(void **state)
{
	assert_int_equal(ARRAY_SIZE(matrix), 16);
	for (size_t i = 0; i < ARRAY_SIZE(matrix); i++) {
		struct pvm_discard_policy *p;
		struct pvm_discard_counts before, after;
		struct pvm_error err = { 0 };

		assert_int_equal(pvm_discard_policy_new(&p), 0);
		assert_int_equal(pvm_discard_policy_take(p, matrix[i].held, NULL), 0);
		pvm_discard_policy_counts(p, &before);
		assert_int_equal(pvm_discard_policy_take(p, matrix[i].req, &err), matrix[i].rc);
		pvm_discard_policy_counts(p, &after);
		if (matrix[i].rc) {
			assert_memory_equal(&before, &after, sizeof(before));   /* nothing changed */
			assert_non_null(strstr(err.msg, pvm_discard_vote_name(matrix[i].held)));
		} else {
			assert_int_equal(after.count[matrix[i].req], before.count[matrix[i].req] + 1);
			assert_int_equal(pvm_discard_policy_release(p, matrix[i].req), 0);
		}
		assert_int_equal(pvm_discard_policy_release(p, matrix[i].held), 0);
		assert_zero(p);
		pvm_discard_policy_free(p);
	}
}

/* Conflicts are symmetric: the matrix read both ways agrees. */
static void test_matrix_symmetric(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(matrix); i++)
		for (size_t j = 0; j < ARRAY_SIZE(matrix); j++)
			if (matrix[i].held == matrix[j].req && matrix[i].req == matrix[j].held)
				assert_int_equal(matrix[i].rc, matrix[j].rc);
}

static void test_queries(void **state)
{
	static const struct {
		enum pvm_discard_vote v;
		bool disabled, coord_disabled, required;
	} cases[] = {
		{ R, false, false, true },
		{ RC, false, false, true },
		{ D, true, true, false },
		{ DU, true, false, false },
	};
	struct pvm_discard_policy *p;

	assert_int_equal(pvm_discard_policy_new(&p), 0);
	assert_false(pvm_discard_policy_is_disabled(p));
	assert_false(pvm_discard_policy_is_required(p));
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		assert_int_equal(pvm_discard_policy_take(p, cases[i].v, NULL), 0);
		assert_int_equal(pvm_discard_policy_is_disabled(p), cases[i].disabled);
		assert_int_equal(pvm_discard_policy_is_coordinated_disabled(p), cases[i].coord_disabled);
		assert_int_equal(pvm_discard_policy_is_required(p), cases[i].required);
		assert_int_equal(pvm_discard_policy_release(p, cases[i].v), 0);
	}
	pvm_discard_policy_free(p);
}

static void test_release_never_taken_is_refused(void **state)
{
	struct pvm_discard_policy *p;

	assert_int_equal(pvm_discard_policy_new(&p), 0);
	pvm_log_set_level(PVM_LOG_ERROR);
	for (int v = 0; v < PVM_DISCARD_NVOTES; v++)
		assert_int_equal(pvm_discard_policy_release(p, (enum pvm_discard_vote)v), -EINVAL);
	assert_zero(p);
	/* An underflow would have blocked the opposite side forever: it still works. */
	assert_int_equal(pvm_discard_policy_take(p, R, NULL), 0);
	assert_int_equal(pvm_discard_policy_release(p, R), 0);
	assert_int_equal(pvm_discard_policy_take(p, D, NULL), 0);
	assert_int_equal(pvm_discard_policy_release(p, D), 0);
	assert_int_equal(pvm_discard_policy_release(p, D), -EINVAL);
	assert_int_equal(pvm_discard_policy_take(p, (enum pvm_discard_vote)7, NULL), -EINVAL);
	assert_int_equal(pvm_discard_policy_release(p, (enum pvm_discard_vote)-1), -EINVAL);
	assert_string_equal(pvm_discard_vote_name((enum pvm_discard_vote)9), "?");
	assert_zero(p);
	pvm_log_set_level(PVM_LOG_WARN);
	pvm_discard_policy_free(p);
	pvm_discard_policy_free(NULL);
}

static void test_counts_nest(void **state)
{
	struct pvm_discard_policy *p;
	struct pvm_discard_counts c;

	assert_int_equal(pvm_discard_policy_new(&p), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(pvm_discard_policy_take(p, DU, NULL), 0);
	assert_int_equal(pvm_discard_policy_take(p, RC, NULL), 0);
	pvm_discard_policy_counts(p, &c);
	assert_int_equal(c.count[DU], 3);
	assert_int_equal(c.count[RC], 1);
	assert_int_equal(pvm_discard_policy_take(p, R, NULL), -EBUSY);
	for (int i = 0; i < 3; i++)
		assert_int_equal(pvm_discard_policy_release(p, DU), 0);
	assert_int_equal(pvm_discard_policy_take(p, R, NULL), 0);     /* DU gone: allowed now */
	assert_int_equal(pvm_discard_policy_release(p, R), 0);
	assert_int_equal(pvm_discard_policy_release(p, RC), 0);
	assert_zero(p);
	pvm_discard_policy_free(p);
}

struct stress {
	struct pvm_discard_policy *p;       /* shared */
	enum pvm_discard_vote v;            /* what this thread votes */
	int busy;                           /* -EBUSY answers seen */
};

static void *stress_thread(void *arg)
{
	struct stress *s = arg;

	for (int i = 0; i < 20000; i++) {
		int rc = pvm_discard_policy_take(s->p, s->v, NULL);

		if (rc == 0)
			assert_int_equal(pvm_discard_policy_release(s->p, s->v), 0);
		else
			s->busy++;
	}
	return NULL;
}

/* Two conflicting voters hammering the policy: no lost update, counters back to zero. */
static void test_concurrent_balance(void **state)
{
	struct pvm_discard_policy *p;
	struct stress a, b;
	pthread_t ta, tb;

	assert_int_equal(pvm_discard_policy_new(&p), 0);
	a = (struct stress){ p, DU, 0 };
	b = (struct stress){ p, R, 0 };
	assert_int_equal(pthread_create(&ta, NULL, stress_thread, &a), 0);
	assert_int_equal(pthread_create(&tb, NULL, stress_thread, &b), 0);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	assert_zero(p);
	pvm_discard_policy_free(p);
}

static void test_new_out_of_memory(void **state)
{
	struct pvm_discard_policy *p = (void *)1;

	pvm_alloc_fail_at(1);
	assert_int_equal(pvm_discard_policy_new(&p), -ENOMEM);
	pvm_alloc_fail_at(0);
	assert_null(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_matrix_every_cell),
		cmocka_unit_test(test_matrix_symmetric),
		cmocka_unit_test(test_queries),
		cmocka_unit_test(test_release_never_taken_is_refused),
		cmocka_unit_test(test_counts_nest),
		cmocka_unit_test(test_concurrent_balance),
		cmocka_unit_test(test_new_out_of_memory),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

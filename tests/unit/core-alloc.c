/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <string.h>

#include "test-util.h"
#include "core/util.h"

static void test_calloc_overflow_fails(void **state)
{
	assert_null(pvm_calloc(SIZE_MAX / 2, 3));
	assert_null(pvm_reallocarray(NULL, SIZE_MAX / 4, 8));
}

static void test_injection_fails_exactly_nth(void **state)
{
	void *a, *b, *c;

	pvm_alloc_fail_at(2);
	a = pvm_malloc(8);
	b = pvm_malloc(8);
	c = pvm_malloc(8);
	assert_non_null(a);
	assert_null(b);
	assert_non_null(c);
	assert_true(pvm_alloc_failed());
	assert_int_equal(pvm_alloc_count(), 3);
	pvm_alloc_fail_at(0);
	pvm_free(a);
	pvm_free(c);
}

struct two { char *x, *y; };

/* Allocates two strings; on failure frees what it took and leaves ctx as it was. */
static int op_two(void *ctx)
{
	struct two *t = ctx;
	char *x = pvm_strdup("hello"), *y;

	if (!x)
		return -ENOMEM;
	y = pvm_asprintf("%s-%d", x, 42);
	if (!y) {
		pvm_free(x);
		return -ENOMEM;
	}
	t->x = x;
	t->y = y;
	return 0;
}

static int two_unchanged(void *ctx)
{
	struct two *t = ctx;
	return t->x == NULL && t->y == NULL;
}

static void test_torture_helper_walks_every_allocation(void **state)
{
	struct two t = { 0 };

	assert_int_equal(pvm_test_torture(op_two, two_unchanged, &t), 2);
	assert_string_equal(t.y, "hello-42");
	pvm_free(t.x);
	pvm_free(t.y);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_calloc_overflow_fails),
		cmocka_unit_test(test_injection_fails_exactly_nth),
		cmocka_unit_test(test_torture_helper_walks_every_allocation),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

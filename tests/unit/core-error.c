/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <string.h>

#include "test-util.h"
#include <pvmem/core.h>

static void test_set_returns_code_and_keeps_first(void **state)
{
	struct pvm_error err = { 0 };

	assert_string_equal(pvm_error_message(&err), "success");
	assert_int_equal(pvm_error_set(&err, -EINVAL, "slot %d overlaps", 3), -EINVAL);
	assert_int_equal(err.code, -EINVAL);
	assert_string_equal(err.msg, "slot 3 overlaps");
	/* The first, most specific failure wins. */
	assert_int_equal(pvm_error_set(&err, -ENOMEM, "later"), -ENOMEM);
	assert_string_equal(pvm_error_message(&err), "slot 3 overlaps");
	pvm_error_prefix(&err, "memslot %s", "table");
	assert_string_equal(err.msg, "memslot table: slot 3 overlaps");
	pvm_error_clear(&err);
	assert_int_equal(err.code, 0);
}

static void test_null_error_is_allowed(void **state)
{
	assert_int_equal(pvm_error_set(NULL, -EFAULT, "x"), -EFAULT);
	pvm_error_prefix(NULL, "y");
	assert_string_equal(pvm_error_message(NULL), "success");
}

static void test_message_falls_back_to_strerror(void **state)
{
	struct pvm_error err = { .code = -ENOENT };

	assert_string_equal(pvm_error_message(&err), strerror(ENOENT));
}

static void test_long_message_truncates(void **state)
{
	struct pvm_error err = { 0 };
	char big[1000];

	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	pvm_error_set(&err, -EINVAL, "%s", big);
	assert_int_equal(strlen(err.msg), PVM_ERROR_MSG_MAX - 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_set_returns_code_and_keeps_first),
		cmocka_unit_test(test_null_error_is_allowed),
		cmocka_unit_test(test_message_falls_back_to_strerror),
		cmocka_unit_test(test_long_message_truncates),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

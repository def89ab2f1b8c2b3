/* SPDX-License-Identifier: MIT */
#include <errno.h>

#include "test-util.h"
#include <pvmem/core.h>

static const struct {
	const char *text;  /* input */
	int rc;            /* expected return */
	uint64_t bytes;    /* expected value when rc == 0 */
} cases[] = {
	{ "4096", 0, 4096 },
	{ "2M", 0, 2ULL << 20 },
	{ "2MiB", 0, 2ULL << 20 },
	{ "2MB", 0, 2ULL << 20 },
	{ "1.5G", 0, 3ULL << 29 },
	{ " 3 GiB ", 0, 3ULL << 30 },
	{ "512k", 0, 512ULL << 10 },
	{ "1T", 0, 1ULL << 40 },
	{ "15E", 0, 15ULL << 60 },
	{ "16E", -ERANGE, 0 },
	{ "18446744073709551615", 0, UINT64_MAX },
	{ "18446744073709551616", -ERANGE, 0 },
	{ "0.3K", -EINVAL, 0 },  /* not a whole number of bytes */
	{ "0.5K", 0, 512 },
	{ "", -EINVAL, 0 },
	{ "-1", -EINVAL, 0 },
	{ "1X", -EINVAL, 0 },
	{ "1..2", -EINVAL, 0 },
	{ "G", -EINVAL, 0 },
	{ "12B", 0, 12 },
};

static void test_size_parse_cases(void **state)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t v = 0;
		int rc = pvm_size_parse(cases[i].text, &v);

		if (rc != cases[i].rc)
			fail_msg("'%s': rc %d, expected %d", cases[i].text, rc, cases[i].rc);
		if (rc == 0 && v != cases[i].bytes)
			fail_msg("'%s': %llu, expected %llu", cases[i].text, (unsigned long long)v,
				 (unsigned long long)cases[i].bytes);
	}
}

static void test_size_format(void **state)
{
	char buf[32];

	assert_string_equal(pvm_size_format(1ULL << 30, buf, sizeof(buf)), "1 GiB");
	assert_string_equal(pvm_size_format(3ULL << 29, buf, sizeof(buf)), "1.50 GiB");
	assert_string_equal(pvm_size_format(100, buf, sizeof(buf)), "100 B");
	assert_string_equal(pvm_size_format(2ULL << 20, buf, sizeof(buf)), "2 MiB");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_size_parse_cases),
		cmocka_unit_test(test_size_format),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

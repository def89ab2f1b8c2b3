/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>

#include "test-util.h"
#include <pvmem/bitmap.h>

static void test_ranges_across_words(void **state)
{
	struct pvm_bitmap *b;

	assert_int_equal(pvm_bitmap_new(200, &b), 0);
	assert_int_equal(pvm_bitmap_set_range(b, 60, 70), 0);
	assert_int_equal(pvm_bitmap_count(b), 70);
	assert_true(pvm_bitmap_range_is_set(b, 60, 70));
	assert_false(pvm_bitmap_range_is_set(b, 59, 2));
	assert_true(pvm_bitmap_range_is_clear(b, 0, 60));
	assert_true(pvm_bitmap_range_is_clear(b, 130, 70));
	assert_int_equal(pvm_bitmap_next_set(b, 0), 60);
	assert_int_equal(pvm_bitmap_next_clear(b, 60), 130);
	assert_int_equal(pvm_bitmap_prev_set(b, 200), 129);
	assert_int_equal(pvm_bitmap_prev_set(b, 60), 200);
	assert_int_equal(pvm_bitmap_count_range(b, 100, 1000), 30);
	assert_int_equal(pvm_bitmap_clear_range(b, 64, 64), 0);
	assert_int_equal(pvm_bitmap_count(b), 6);
	pvm_bitmap_free(b);
}

static void test_out_of_range_is_refused_and_harmless(void **state)
{
	struct pvm_bitmap *b;

	assert_int_equal(pvm_bitmap_new(70, &b), 0);
	assert_int_equal(pvm_bitmap_set_range(b, 60, 11), -ERANGE);
	assert_int_equal(pvm_bitmap_set_range(b, UINT64_MAX, 2), -ERANGE);
	assert_int_equal(pvm_bitmap_count(b), 0);
	pvm_bitmap_set(b, 70);
	assert_false(pvm_bitmap_test(b, 70));
	assert_int_equal(pvm_bitmap_next_set(b, 0), 70);
	assert_int_equal(pvm_bitmap_next_clear(b, 1000), 70);
	assert_false(pvm_bitmap_range_is_clear(b, 69, 2));
	assert_true(pvm_bitmap_range_is_clear(b, 70, 0));
	pvm_bitmap_free(b);
	pvm_bitmap_free(NULL);
}

static void test_load_masks_tail_and_run_iteration(void **state)
{
	struct pvm_bitmap *b, *c;
	uint64_t words[2] = { 0xF0F0, ~0ULL }, s, e, runs = 0, bits = 0;

	assert_int_equal(pvm_bitmap_new(66, &b), 0);
	pvm_bitmap_load(b, words);
	assert_int_equal(pvm_bitmap_count(b), 8 + 2);
	pvm_bitmap_for_each_set_run(b, s, e) {
		runs++;
		bits += e - s;
	}
	assert_int_equal(runs, 3);
	assert_int_equal(bits, 10);
	assert_int_equal(pvm_bitmap_dup(b, &c), 0);
	assert_true(pvm_bitmap_equal(b, c));
	pvm_bitmap_clear(c, 65);
	assert_false(pvm_bitmap_equal(b, c));
	pvm_bitmap_free(b);
	pvm_bitmap_free(c);
}

/* Random operations against a bool array. */
static void test_random_against_model(void **state)
{
	enum { N = 517 };
	bool model[N] = { 0 };
	struct pvm_bitmap *b;

	srand(7);
	assert_int_equal(pvm_bitmap_new(N, &b), 0);
	for (int i = 0; i < 20000; i++) {
		uint64_t s = (uint64_t)rand() % N, n = (uint64_t)rand() % (N - s + 1);
		int op = rand() % 3;

		if (op == 0) {
			assert_int_equal(pvm_bitmap_set_range(b, s, n), 0);
			for (uint64_t k = s; k < s + n; k++)
				model[k] = true;
		} else if (op == 1) {
			assert_int_equal(pvm_bitmap_clear_range(b, s, n), 0);
			for (uint64_t k = s; k < s + n; k++)
				model[k] = false;
		} else {
			uint64_t ns = N, nc = N, cnt = 0;
			bool all_set = true, all_clear = true;

			for (uint64_t k = N; k-- > s;) {
				if (model[k])
					ns = k;
				else
					nc = k;
			}
			for (uint64_t k = s; k < s + n; k++) {
				all_set &= model[k];
				all_clear &= !model[k];
				cnt += model[k];
			}
			assert_int_equal(pvm_bitmap_next_set(b, s), ns);
			assert_int_equal(pvm_bitmap_next_clear(b, s), nc);
			assert_int_equal(pvm_bitmap_range_is_set(b, s, n), all_set);
			assert_int_equal(pvm_bitmap_range_is_clear(b, s, n), all_clear);
			assert_int_equal(pvm_bitmap_count_range(b, s, n), cnt);
		}
	}
	pvm_bitmap_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ranges_across_words),
		cmocka_unit_test(test_out_of_range_is_refused_and_harmless),
		cmocka_unit_test(test_load_masks_tail_and_run_iteration),
		cmocka_unit_test(test_random_against_model),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/* Shared helpers for the cmocka unit tests. */
#ifndef PVM_TEST_UTIL_H
#define PVM_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/alloc-priv.h"

/*
 * Allocation torture: run @op with the 1st, 2nd, ... allocation failing until it runs with no
 * injected failure. Each failed run must return -ENOMEM and leave the object as it was, which
 * @unchanged checks (it may be NULL). Leaks show up under ASan/LeakSanitizer. Returns the number
 * of allocation points exercised.
 */
static inline int pvm_test_torture(int (*op)(void *ctx), int (*unchanged)(void *ctx), void *ctx)
{
	for (uint64_t n = 1; n < 100000; n++) {
		int rc;

		pvm_alloc_fail_at(n);
		rc = op(ctx);
		if (!pvm_alloc_failed()) {
			pvm_alloc_fail_at(0);
			assert_int_equal(rc, 0);
			return (int)n - 1;
		}
		pvm_alloc_fail_at(0);
		assert_int_equal(rc, -12 /* -ENOMEM */);
		if (unchanged)
			assert_true(unchanged(ctx));
	}
	fail_msg("torture: operation never completed");
	return -1;
}

#endif

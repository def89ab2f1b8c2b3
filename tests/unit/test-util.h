/* SPDX-License-Identifier: MIT */
/* Shared helpers for the cmocka unit tests. */
#ifndef PVM_TEST_UTIL_H
#define PVM_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>

#include "core/alloc-priv.h"

static inline int pvm_test_rmtree_one(const char *path, const struct stat *st, int flag,
				      struct FTW *ftw)
{
	return remove(path);
}

/* Remove the test's temporary directory @dir and everything in it (no shell involved).
 * Returns 0, or -1 when something could not be removed. */
static inline int pvm_test_rmtree(const char *dir)
{
	return nftw(dir, pvm_test_rmtree_one, 16, FTW_DEPTH | FTW_PHYS);
}

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

/* SPDX-License-Identifier: MIT */
/*
 * Checked allocation with failure injection. Every library allocation goes through here so that
 * a test can fail the N-th one and prove that nothing leaks and nothing is half-changed.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc-priv.h"
#include "core/util.h"

static atomic_uint_fast64_t alloc_count;   /* allocations since the last pvm_alloc_fail_at() */
static atomic_uint_fast64_t alloc_fail_nth; /* 0: no injection; else fail this allocation */
static atomic_bool alloc_did_fail;          /* an injected failure happened */

__attribute__((constructor)) static void alloc_init(void)
{
	const char *e = getenv("PVMEM_ALLOC_FAIL");

	if (e && *e)
		atomic_store(&alloc_fail_nth, strtoull(e, NULL, 10));
}

void pvm_alloc_fail_at(uint64_t nth)
{
	atomic_store(&alloc_count, 0);
	atomic_store(&alloc_did_fail, false);
	atomic_store(&alloc_fail_nth, nth);
}

uint64_t pvm_alloc_count(void)
{
	return atomic_load(&alloc_count);
}

bool pvm_alloc_failed(void)
{
	return atomic_load(&alloc_did_fail);
}

/* True when this allocation must fail (injection). */
static bool inject(void)
{
	uint64_t nth = atomic_load_explicit(&alloc_fail_nth, memory_order_relaxed);
	uint64_t n;

	if (__builtin_expect(nth == 0, 1))
		return false;
	n = atomic_fetch_add(&alloc_count, 1) + 1;
	if (n == nth) {
		atomic_store(&alloc_did_fail, true);
		return true;
	}
	return false;
}

void *pvm_malloc(size_t size)
{
	void *p;

	if (inject()) {
		errno = ENOMEM;
		return NULL;
	}
	p = malloc(size ? size : 1);
	return p;
}

void *pvm_calloc(size_t n, size_t size)
{
	size_t total;

	if (pvm_mul_overflow(n, size, &total) || inject()) {
		errno = ENOMEM;
		return NULL;
	}
	return calloc(total ? total : 1, 1);
}

void *pvm_reallocarray(void *p, size_t n, size_t size)
{
	size_t total;

	if (pvm_mul_overflow(n, size, &total) || inject()) {
		errno = ENOMEM;
		return NULL;
	}
	return realloc(p, total ? total : 1);
}

char *pvm_strndup(const char *s, size_t n)
{
	size_t len = strnlen(s, n);
	char *d = pvm_malloc(len + 1);

	if (d) {
		memcpy(d, s, len);
		d[len] = '\0';
	}
	return d;
}

char *pvm_strdup(const char *s)
{
	return s ? pvm_strndup(s, strlen(s)) : NULL;
}

char *pvm_asprintf(const char *fmt, ...)
{
	va_list ap, ap2;
	char *d;
	int n;

	va_start(ap, fmt);
	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !(d = pvm_malloc((size_t)n + 1))) {
		va_end(ap2);
		return NULL;
	}
	vsnprintf(d, (size_t)n + 1, fmt, ap2);
	va_end(ap2);
	return d;
}

void pvm_free(void *p)
{
	free(p);
}

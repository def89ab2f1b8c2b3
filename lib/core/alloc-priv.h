/* SPDX-License-Identifier: MIT */
/*
 * Allocation-failure injection, for tests only ("torture" runs as in curl's runtests -t).
 */
#ifndef PVM_CORE_ALLOC_PRIV_H
#define PVM_CORE_ALLOC_PRIV_H

#include <stdbool.h>
#include <stdint.h>

/* Make the @nth allocation from now fail (1 = the next one); 0 turns injection off. The
 * counter is process-wide. PVMEM_ALLOC_FAIL=N in the environment does the same at start-up. */
void pvm_alloc_fail_at(uint64_t nth);
/* Number of allocations attempted since the last pvm_alloc_fail_at(). */
uint64_t pvm_alloc_count(void);
/* True when an injected failure has happened since the last pvm_alloc_fail_at(). */
bool pvm_alloc_failed(void);

#endif

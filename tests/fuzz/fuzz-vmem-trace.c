/* SPDX-License-Identifier: MIT */
/* Fuzz the virtio-mem trace parser (lib/virtio/mem-trace.c): any bytes, never a crash, and a
 * parsed trace always starts with its one config line. Inputs are capped at 64 KiB. */
#include <stdint.h>
#include <stdlib.h>

#include "virtio/mem-trace.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pvm_vtrace *t = NULL;
	struct pvm_error err = { 0 };

	if (size > 65536)
		return 0;
	if (pvm_vtrace_parse((const char *)data, size, &t, &err) == 0) {
		if (t->n == 0 || t->ev[0].kind != PVM_VTRACE_CONFIG)
			__builtin_trap();
		for (size_t i = 1; i < t->n; i++)
			if (t->ev[i].kind == PVM_VTRACE_CONFIG || t->ev[i].line <= t->ev[i - 1].line)
				__builtin_trap();
		pvm_vtrace_free(t);
	} else if (t || err.code == 0) {
		__builtin_trap();
	}
	return 0;
}

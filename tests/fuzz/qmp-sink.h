/* SPDX-License-Identifier: MIT */
/* Output check shared by the QMP fuzz harnesses: every write the session makes is one complete
 * JSON object followed by "\r\n", whatever the input was; anything else aborts the run. */
#ifndef PVM_FUZZ_QMP_SINK_H
#define PVM_FUZZ_QMP_SINK_H

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

/* A pvm_qmp_write_fn; @opaque points to an int that counts the replies. */
static int pvm_fuzz_qmp_sink(void *opaque, const char *d, size_t len)
{
	json_object *o;
	char *copy;

	if (len < 3 || d[len - 2] != '\r' || d[len - 1] != '\n')
		abort();
	copy = strndup(d, len - 2);
	if (!copy)
		abort();
	o = json_tokener_parse(copy);
	if (!o || !json_object_is_type(o, json_type_object))
		abort();
	json_object_put(o);
	free(copy);
	if (opaque)
		(*(int *)opaque)++;
	return 0;
}

#endif

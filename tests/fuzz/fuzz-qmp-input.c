/* SPDX-License-Identifier: MIT */
/*
 * Fuzz the QMP session: arbitrary client bytes, split into chunks at positions taken from the
 * first byte, over a command table with typed parameters. Every reply must be one JSON object
 * per line; nothing may crash or leak.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "control/qmp.h"
#include "core/util.h"

#include "qmp-sink.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int cmd_any(void *opaque, struct pvm_qmp_call *call, json_object *args, json_object **ret,
		   struct pvm_error *err)
{
	uint64_t v;

	if (pvm_qmp_arg_has(args, "size") && pvm_qmp_arg_size(args, "size", &v, err) < 0)
		return -EINVAL;
	if (pvm_qmp_arg_bool(args, "fail", false)) {
		pvm_qmp_set_class(call, "DeviceNotFound");
		return pvm_error_set(err, -ENODEV, "no such device");
	}
	*ret = json_object_get(args);
	return 0;
}

static const struct pvm_qmp_command cmds[] = {
	{ "set", cmd_any, (const struct pvm_qmp_param[]){
		{ "id", PVM_QMP_T_STR, false }, { "size", PVM_QMP_T_SIZE, true },
		{ "fail", PVM_QMP_T_BOOL, true }, { "n", PVM_QMP_T_INT, true },
		{ "x", PVM_QMP_T_ANY, true }, { 0 } } },
	{ "quit", cmd_any, NULL },
	{ 0 },
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pvm_qmp_session *s;
	int replies = 0;
	size_t step, off;

	if (size < 1 || size > (256u << 10))
		return 0;
	step = (size_t)data[0] + 1;
	data++;
	size--;
	if (pvm_qmp_session_new(cmds, NULL, pvm_fuzz_qmp_sink, &replies, &s) < 0)
		return 0;
	for (off = 0; off < size; off += step)
		pvm_qmp_session_input(s, (const char *)data + off, size - off < step ? size - off : step);
	pvm_qmp_session_free(s);
	return 0;
}

/* SPDX-License-Identifier: MIT */
/* Fuzz the scenario-script parser: any text must parse or fail cleanly with a line number, and
 * every parsed command must format back to a line that parses to the same command. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "machine/script.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pvm_script *s = NULL, *t = NULL;
	struct pvm_error err = { 0 };
	char line[256];

	if (size > 65536)
		return 0;
	if (pvm_script_parse((const char *)data, size, &s, &err) != 0) {
		if (err.code == 0 || !err.msg[0])
			abort(); /* a failure always says why */
		return 0;
	}
	for (size_t i = 0; i < s->n; i++) {
		struct pvm_script_cmd a = s->cmds[i];

		pvm_script_cmd_format(&a, line, sizeof(line));
		if (pvm_script_parse(line, strlen(line), &t, NULL) != 0 || t->n != 1)
			abort();
		t->cmds[0].line = a.line;
		if (t->cmds[0].op != a.op || strcmp(t->cmds[0].id, a.id) || t->cmds[0].size != a.size ||
		    (a.op == PVM_SCRIPT_EXPECT && t->cmds[0].what != a.what))
			abort();
		/* The words that are not sizes survive the round trip too. */
		if ((a.op == PVM_SCRIPT_ATTACH && t->cmds[0].kind != a.kind) ||
		    ((a.op == PVM_SCRIPT_VIOMMU ||
		      (a.op == PVM_SCRIPT_EXPECT && a.what == PVM_EXPECT_DISCARD_INHIBITED)) &&
		     t->cmds[0].flag != a.flag) ||
		    (a.op == PVM_SCRIPT_EXPECT && a.what == PVM_EXPECT_MEMLOCK && t->cmds[0].memlock != a.memlock))
			abort();
		pvm_script_free(t);
		t = NULL;
	}
	pvm_script_free(s);
	return 0;
}

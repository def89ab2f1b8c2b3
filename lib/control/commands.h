/* SPDX-License-Identifier: MIT */
/* The QMP command table bound to a machine (internal; for transcripts and the fuzzer). */
#ifndef PVM_CONTROL_COMMANDS_H
#define PVM_CONTROL_COMMANDS_H

#include <pvmem/machine.h>
#include "control/qmp.h"

/* Handlers take a `struct pvm_control *` as opaque. */
extern const struct pvm_qmp_command pvm_control_commands[];
/* The QMP event for a machine event: its data (new reference) and *@name. */
json_object *pvm_control_event_json(const struct pvm_machine_event *ev, const char **name);

struct pvm_control;
/* A control for @m without a socket (transcript tests drive sessions directly). */
int pvm_control_new_detached(struct pvm_machine *m, struct pvm_control **out);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * Fuzz the QMP commands against a real machine: the session runs over lib/control's command
 * table, bound to a machine built from examples/default.xml (no memlock changes, no guest),
 * and is fed the input bytes after capabilities negotiation. Machine events are forwarded to
 * the session as QMP events. Every reply must be one JSON object per line; nothing may crash,
 * hang or leak.
 *
 * The machine is built once and kept in a static. Between inputs the state commands can change
 * is put back (requested sizes 0, balloon target = boot RAM, host devices detached, vIOMMU off),
 * and the machine is rebuilt every REBUILD inputs so that anything else (peak figures, the quit
 * flag) cannot make runs drift far apart.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <pvmem/control.h>
#include <pvmem/domain.h>
#include <pvmem/machine.h>
#include "control/commands.h"
#include "control/qmp.h"
#include "machine/script.h"

#include "qmp-sink.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_INPUT (64u << 10)
#define REBUILD 512

static struct pvm_machine *machine;       /* the machine every input drives */
static unsigned uses;                     /* inputs run on it since it was built */

static void on_event(void *opaque, const struct pvm_machine_event *ev)
{
	const char *name = NULL;
	json_object *d = pvm_control_event_json(ev, &name);

	if (name)
		pvm_qmp_session_event(opaque, name, d);
	json_object_put(d);
}

static struct pvm_machine *build(void)
{
	struct pvm_machine_opts opts = { .no_memlock = true };
	struct pvm_domain *dom;
	struct pvm_machine *m;

	const char *xml = pvm_machine_embedded_default_xml();   /* examples/default.xml */

	if (pvm_domain_parse_memory(xml, strlen(xml), PVM_DOMAIN_PARSE_NO_HOST, &dom, NULL) < 0)
		abort();
	if (pvm_machine_new(dom, &opts, &m, NULL) < 0)
		abort();
	pvm_domain_free(dom);
	return m;
}

/* Undo what the commands can change. A failure here is a bug too. */
static void restore(struct pvm_machine *m)
{
	struct pvm_machine_memdev_info d;
	struct pvm_machine_hostdev_info h;
	int rc;

	for (size_t i = 0; i < pvm_machine_memdev_count(m); i++)
		if (pvm_machine_memdev_info(m, i, &d) < 0 ||
		    pvm_machine_set_requested_size(m, d.id, 0, NULL) < 0)
			abort();
	while (pvm_machine_hostdev_count(m) > 0)
		if (pvm_machine_hostdev_info(m, 0, &h) < 0 || pvm_machine_detach_hostdev(m, h.id, NULL) < 0)
			abort();
	if (pvm_machine_set_balloon_target(m, pvm_machine_ram_size(m), NULL) < 0)
		abort();
	rc = pvm_machine_set_viommu(m, false, NULL);   /* -ENODEV: default.xml has no <iommu> */
	if (rc < 0 && rc != -ENODEV)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char hello[] = "{\"execute\":\"qmp_capabilities\"}\n";
	struct pvm_qmp_session *s;
	struct pvm_control *c;
	int replies = 0;

	if (size > MAX_INPUT)
		return 0;
	if (!machine || uses++ == REBUILD) {
		pvm_machine_free(machine);
		machine = build();
		uses = 0;
	}
	if (pvm_control_new_detached(machine, &c) < 0)
		return 0;
	if (pvm_qmp_session_new(pvm_control_commands, c, pvm_fuzz_qmp_sink, &replies, &s) < 0) {
		pvm_control_free(c);
		return 0;
	}
	pvm_machine_set_event_handler(machine, on_event, s);
	pvm_qmp_session_input(s, hello, strlen(hello));
	pvm_qmp_session_input(s, (const char *)data, size);
	pvm_qmp_session_input(s, "\n", 1);
	pvm_machine_set_event_handler(machine, NULL, NULL);
	restore(machine);
	pvm_qmp_session_free(s);
	pvm_control_free(c);
	return 0;
}

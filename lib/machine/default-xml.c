/* SPDX-License-Identifier: MIT */
/* The default machine and demo script, compiled in from examples/ by embed.py. */
#include "machine/machine-priv.h"
#include "machine-embedded.h"

const char *pvm_machine_embedded_default_xml(void)
{
	return pvm_machine_default_xml;
}

const char *pvm_machine_embedded_demo_script(void)
{
	return pvm_machine_demo_script;
}

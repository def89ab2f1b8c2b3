/* SPDX-License-Identifier: MIT */
#include "core/util.h"

const char *pvm_version(void)
{
	return PVM_VERSION;
}

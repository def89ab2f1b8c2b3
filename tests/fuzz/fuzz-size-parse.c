/* SPDX-License-Identifier: MIT */
/* Fuzz pvm_size_parse(): any text must parse or fail cleanly, and a parsed size must format and
 * parse back to itself when it is a whole number of its unit. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <pvmem/core.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char text[128], buf[64];
	uint64_t v, w;

	if (size >= sizeof(text))
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (pvm_size_parse(text, &v) == 0) {
		pvm_size_format(v, buf, sizeof(buf));
		if (!strchr(buf, '.') && (pvm_size_parse(buf, &w) != 0 || w != v))
			abort();
	}
	return 0;
}

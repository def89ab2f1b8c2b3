/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

void pvm_cli_error(const char *subcmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "pvmem: %s%s", subcmd ? subcmd : "", subcmd ? ": " : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

bool pvm_cli_is_tty(void)
{
	const char *term = getenv("TERM");

	return isatty(1) && !(term && !strcmp(term, "dumb"));
}

void pvm_cli_progress(void *label, uint64_t done, uint64_t total)
{
	int width = 40, filled;

	if (!isatty(2) || total == 0)
		return;
	filled = (int)((double)done / (double)total * width);
	fprintf(stderr, "\r%-12s [%.*s%*s] %3d%%", label ? (const char *)label : "",
		filled, "########################################", width - filled, "",
		(int)(100.0 * (double)done / (double)total));
	if (done >= total)
		fputc('\n', stderr);
	fflush(stderr);
}

/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/util.h"

int pvm_error_setv(struct pvm_error *err, int code, const char *fmt, va_list ap)
{
	if (!err || err->code)
		return code;
	err->code = code ? code : -EIO;
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	return code;
}

int pvm_error_set(struct pvm_error *err, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	pvm_error_setv(err, code, fmt, ap);
	va_end(ap);
	return code;
}

void pvm_error_prefix(struct pvm_error *err, const char *fmt, ...)
{
	char prefix[PVM_ERROR_MSG_MAX];
	char old[PVM_ERROR_MSG_MAX];
	va_list ap;

	if (!err || !err->code)
		return;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof(old));
	/* Truncation is fine: the message is for people and stays NUL-terminated. */
	if (snprintf(err->msg, sizeof(err->msg), "%.*s: %s", (int)sizeof(prefix) / 2, prefix,
		     old[0] ? old : strerror(-err->code)) < 0)
		err->msg[0] = '\0';
}

void pvm_error_clear(struct pvm_error *err)
{
	if (err) {
		err->code = 0;
		err->msg[0] = '\0';
	}
}

const char *pvm_error_message(const struct pvm_error *err)
{
	if (!err || !err->code)
		return "success";
	if (err->msg[0])
		return err->msg;
	return strerror(-err->code);
}

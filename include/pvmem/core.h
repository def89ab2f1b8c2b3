/* SPDX-License-Identifier: MIT */
/*
 * pvmem core: errors, logging, trace control, sizes and version.
 *
 * Conventions that hold for every pvmem call:
 *  - functions return 0 (or a count) on success and a negative errno on failure;
 *  - a trailing `struct pvm_error *err` may be NULL; it is filled only on failure, with one
 *    phrase for people (no newline, no trailing full stop), and never printed by the library;
 *  - `pvm_<object>_free(NULL)` is always allowed.
 */
#ifndef PVMEM_CORE_H
#define PVMEM_CORE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PVM_EXPORT __attribute__((visibility("default")))
#define PVM_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define PVM_MUST_CHECK __attribute__((warn_unused_result))

/* ---- errors ------------------------------------------------------------------------------ */

#define PVM_ERROR_MSG_MAX 256

/* An error for people: the negative errno and one phrase. Callers own it (usually on the stack). */
struct pvm_error {
	int code;                      /* negative errno, 0 while unset */
	char msg[PVM_ERROR_MSG_MAX];   /* one phrase, NUL-terminated */
};

/* Fill @err (if not NULL) with @code and a formatted message; returns @code so that callers can
 * write `return pvm_error_set(err, -EINVAL, "...")`. A message already set is kept (the first,
 * most specific failure wins). */
PVM_EXPORT int pvm_error_set(struct pvm_error *err, int code, const char *fmt, ...) PVM_PRINTF(3, 4);
/* As pvm_error_set() with a va_list. */
PVM_EXPORT int pvm_error_setv(struct pvm_error *err, int code, const char *fmt, va_list ap) PVM_PRINTF(3, 0);
/* Put "@prefix: " in front of an error already set (adds context on the way up). */
PVM_EXPORT void pvm_error_prefix(struct pvm_error *err, const char *fmt, ...) PVM_PRINTF(2, 3);
/* Reset @err to "no error". */
PVM_EXPORT void pvm_error_clear(struct pvm_error *err);
/* The message, or strerror(-code) when no message was set, or "success". Never NULL. */
PVM_EXPORT const char *pvm_error_message(const struct pvm_error *err);

/* ---- logging ----------------------------------------------------------------------------- */

enum pvm_log_level {
	PVM_LOG_ERROR = 0,
	PVM_LOG_WARN = 1,
	PVM_LOG_INFO = 2,
	PVM_LOG_DEBUG = 3,
};

/* Receives each log line (no trailing newline). */
typedef void (*pvm_log_fn)(void *opaque, enum pvm_log_level level, const char *msg);

/* Route log lines to @fn (NULL restores the default: stderr, "pvmem: level: msg"). */
PVM_EXPORT void pvm_log_set_handler(pvm_log_fn fn, void *opaque);
/* Lines above @level are dropped. Default WARN, or PVMEM_LOG=error|warn|info|debug. */
PVM_EXPORT void pvm_log_set_level(enum pvm_log_level level);
PVM_EXPORT enum pvm_log_level pvm_log_get_level(void);
PVM_EXPORT void pvm_log(enum pvm_log_level level, const char *fmt, ...) PVM_PRINTF(2, 3);

/* ---- trace points -------------------------------------------------------------------------- */

/* Receives one trace record: the trace point's name and its formatted arguments. */
typedef void (*pvm_trace_fn)(void *opaque, const char *name, const char *msg);

/* Enable trace points whose names match one of the comma-separated shell patterns in @patterns
 * ("vmem_*,virtq_pop", "*"); NULL or "" disables all. PVMEM_TRACE= in the environment is read
 * once on first use. Returns -EINVAL (nothing changed) on a pattern list that is too long. */
PVM_EXPORT int pvm_trace_set_patterns(const char *patterns);
/* Route trace records to @fn (NULL: stderr, or the file named by PVMEM_TRACE_FILE=). */
PVM_EXPORT void pvm_trace_set_handler(pvm_trace_fn fn, void *opaque);

/* ---- progress ---------------------------------------------------------------------------- */

/* Called from long operations (preallocation, unplug-all, replay) with bytes done of @total.
 * It may be called from worker threads, but never concurrently with itself. */
typedef void (*pvm_progress_fn)(void *opaque, uint64_t done, uint64_t total);

/* ---- sizes ------------------------------------------------------------------------------- */

/* Parse "4096", "2M", "1.5G", "3GiB", "512KB" (binary multiples for K/M/G/T/P/E, with optional
 * "i" and "B") into bytes. Fractions are allowed when the result is a whole number of bytes.
 * -EINVAL for malformed text, -ERANGE when the value does not fit 64 bits. */
PVM_EXPORT int pvm_size_parse(const char *text, uint64_t *bytes);
/* Write @bytes as "1 GiB", "1.5 GiB", "4 KiB", "100 B" into @buf; returns @buf. */
PVM_EXPORT char *pvm_size_format(uint64_t bytes, char *buf, size_t len);

/* ---- version ----------------------------------------------------------------------------- */

/* "0.1.0" */
PVM_EXPORT const char *pvm_version(void);

#ifdef __cplusplus
}
#endif
#endif /* PVMEM_CORE_H */

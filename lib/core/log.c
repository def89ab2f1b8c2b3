/* SPDX-License-Identifier: MIT */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/util.h"

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static pvm_log_fn log_fn;            /* NULL: default stderr handler */
static void *log_opaque;             /* passed to log_fn */
static int log_level = -1;           /* -1 until PVMEM_LOG has been read */

static const char *const level_names[] = { "error", "warning", "info", "debug" };

static int level_from_env(void)
{
	const char *e = getenv("PVMEM_LOG");

	if (e) {
		for (int i = 0; i < (int)PVM_ARRAY_SIZE(level_names); i++)
			if (!strcasecmp(e, level_names[i]) || (i == PVM_LOG_WARN && !strcasecmp(e, "warn")))
				return i;
	}
	return PVM_LOG_WARN;
}

void pvm_log_set_handler(pvm_log_fn fn, void *opaque)
{
	pthread_mutex_lock(&log_lock);
	log_fn = fn;
	log_opaque = opaque;
	pthread_mutex_unlock(&log_lock);
}

void pvm_log_set_level(enum pvm_log_level level)
{
	__atomic_store_n(&log_level, (int)level, __ATOMIC_RELAXED);
}

enum pvm_log_level pvm_log_get_level(void)
{
	int l = __atomic_load_n(&log_level, __ATOMIC_RELAXED);

	if (l < 0) {
		l = level_from_env();
		__atomic_store_n(&log_level, l, __ATOMIC_RELAXED);
	}
	return (enum pvm_log_level)l;
}

void pvm_log(enum pvm_log_level level, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if ((int)level > (int)pvm_log_get_level())
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	pthread_mutex_lock(&log_lock);
	if (log_fn)
		log_fn(log_opaque, level, msg);
	else
		fprintf(stderr, "pvmem: %s: %s\n", level_names[level <= PVM_LOG_DEBUG ? level : 0], msg);
	pthread_mutex_unlock(&log_lock);
}

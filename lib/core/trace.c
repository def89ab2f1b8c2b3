/* SPDX-License-Identifier: MIT */
/*
 * Trace points. Each PVM_TRACE() site owns a static pvm_trace_point that caches whether its name
 * matches the current patterns; changing the patterns bumps a generation so every site
 * re-evaluates on its next hit. With tracing off the cost is one relaxed load.
 */
#include <errno.h>
#include <fnmatch.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/util.h"

#define TRACE_PATTERNS_MAX 1024

atomic_bool pvm_trace_active;

static pthread_mutex_t trace_lock = PTHREAD_MUTEX_INITIALIZER;
static char trace_patterns[TRACE_PATTERNS_MAX]; /* comma-separated fnmatch patterns */
static atomic_uint trace_generation = 1;        /* bumped when the patterns change */
static pvm_trace_fn trace_fn;                   /* NULL: stderr or PVMEM_TRACE_FILE */
static void *trace_opaque;                      /* passed to trace_fn */
static FILE *trace_file;                        /* opened from PVMEM_TRACE_FILE */
static pthread_once_t trace_env_once = PTHREAD_ONCE_INIT;

static void trace_read_env(void)
{
	const char *e = getenv("PVMEM_TRACE");
	const char *f = getenv("PVMEM_TRACE_FILE");

	if (f && *f)
		trace_file = fopen(f, "ae");
	if (e && *e && strlen(e) < TRACE_PATTERNS_MAX) {
		strcpy(trace_patterns, e);
		atomic_store(&pvm_trace_active, true);
	}
}

/* Run at load time so that PVMEM_TRACE works without any call into the trace API. */
__attribute__((constructor)) static void trace_init(void)
{
	pthread_once(&trace_env_once, trace_read_env);
}

int pvm_trace_set_patterns(const char *patterns)
{
	if (patterns && strlen(patterns) >= TRACE_PATTERNS_MAX)
		return -EINVAL;
	pthread_once(&trace_env_once, trace_read_env);
	pthread_mutex_lock(&trace_lock);
	snprintf(trace_patterns, sizeof(trace_patterns), "%s", patterns ? patterns : "");
	atomic_fetch_add(&trace_generation, 1);
	atomic_store(&pvm_trace_active, trace_patterns[0] != '\0');
	pthread_mutex_unlock(&trace_lock);
	return 0;
}

void pvm_trace_set_handler(pvm_trace_fn fn, void *opaque)
{
	pthread_mutex_lock(&trace_lock);
	trace_fn = fn;
	trace_opaque = opaque;
	pthread_mutex_unlock(&trace_lock);
}

static bool name_matches(const char *name)
{
	char buf[TRACE_PATTERNS_MAX];
	char *save = NULL;

	memcpy(buf, trace_patterns, sizeof(buf));
	for (char *p = strtok_r(buf, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
		while (*p == ' ')
			p++;
		if (!strcmp(p, "all") || !fnmatch(p, name, 0))
			return true;
	}
	return false;
}

bool pvm_trace_point_enabled(struct pvm_trace_point *tp)
{
	unsigned gen = atomic_load(&trace_generation);
	bool on;

	if (atomic_load(&tp->generation) == gen)
		return atomic_load(&tp->enabled);
	pthread_mutex_lock(&trace_lock);
	on = name_matches(tp->name);
	pthread_mutex_unlock(&trace_lock);
	atomic_store(&tp->enabled, on);
	atomic_store(&tp->generation, gen);
	return on;
}

void pvm_trace_emit(struct pvm_trace_point *tp, const char *fmt, ...)
{
	char msg[512];
	struct timespec ts;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	clock_gettime(CLOCK_MONOTONIC, &ts);

	pthread_mutex_lock(&trace_lock);
	if (trace_fn)
		trace_fn(trace_opaque, tp->name, msg);
	else
		fprintf(trace_file ? trace_file : stderr, "%ld.%06ld %s %s\n", (long)ts.tv_sec,
			ts.tv_nsec / 1000, tp->name, msg);
	pthread_mutex_unlock(&trace_lock);
}

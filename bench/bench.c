/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "cli.h"

#define BENCH_MAX_ITEMS 64

struct bench_item {
	char key[64];     /* name of the figure */
	double value;     /* measured value */
	char cmp[3];      /* "<=", ">=" or "" for raw figures */
	double target;    /* the target the ratio is judged against */
};

struct pvm_bench_report {
	const char *name;                        /* benchmark name */
	struct bench_item ratios[BENCH_MAX_ITEMS];
	int nratios;
	struct bench_item raw[BENCH_MAX_ITEMS];
	int nraw;
	char notes[BENCH_MAX_ITEMS][160];
	int nnotes;
};

double pvm_bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void pvm_bench_raw(struct pvm_bench_report *r, const char *key, double value)
{
	if (r->nraw < BENCH_MAX_ITEMS) {
		snprintf(r->raw[r->nraw].key, sizeof(r->raw[0].key), "%s", key);
		r->raw[r->nraw++].value = value;
	}
}

void pvm_bench_ratio(struct pvm_bench_report *r, const char *key, double value, const char *cmp,
		     double target)
{
	if (r->nratios < BENCH_MAX_ITEMS) {
		struct bench_item *it = &r->ratios[r->nratios++];

		snprintf(it->key, sizeof(it->key), "%s", key);
		snprintf(it->cmp, sizeof(it->cmp), "%s", cmp);
		it->value = value;
		it->target = target;
	}
}

void pvm_bench_note(struct pvm_bench_report *r, const char *fmt, ...)
{
	va_list ap;

	if (r->nnotes >= BENCH_MAX_ITEMS)
		return;
	va_start(ap, fmt);
	vsnprintf(r->notes[r->nnotes++], sizeof(r->notes[0]), fmt, ap);
	va_end(ap);
}

static bool item_met(const struct bench_item *it)
{
	return !strcmp(it->cmp, "<=") ? it->value <= it->target : it->value >= it->target;
}

static void json_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", *s);
		else
			putchar(*s);
	}
	putchar('"');
}

/* Print @r; returns the number of targets missed. */
static int report_print(const struct pvm_bench_report *r, bool json)
{
	int missed = 0;

	for (int i = 0; i < r->nratios; i++)
		missed += !item_met(&r->ratios[i]);
	if (json) {
		printf("{\"bench\": ");
		json_string(r->name);
		printf(", \"ratios\": {");
		for (int i = 0; i < r->nratios; i++) {
			printf("%s", i ? ", " : "");
			json_string(r->ratios[i].key);
			printf(": %.4g", r->ratios[i].value);
		}
		printf("}, \"targets\": {");
		for (int i = 0; i < r->nratios; i++) {
			printf("%s", i ? ", " : "");
			json_string(r->ratios[i].key);
			printf(": {\"cmp\": \"%s\", \"target\": %.4g, \"met\": %s}", r->ratios[i].cmp,
			       r->ratios[i].target, item_met(&r->ratios[i]) ? "true" : "false");
		}
		printf("}, \"raw\": {");
		for (int i = 0; i < r->nraw; i++) {
			printf("%s", i ? ", " : "");
			json_string(r->raw[i].key);
			printf(": %.6g", r->raw[i].value);
		}
		printf("}, \"notes\": [");
		for (int i = 0; i < r->nnotes; i++) {
			printf("%s", i ? ", " : "");
			json_string(r->notes[i]);
		}
		printf("]}\n");
		return missed;
	}
	printf("bench %s\n", r->name);
	for (int i = 0; i < r->nratios; i++)
		printf("  %-40s %10.3f   target %s %-8g %s\n", r->ratios[i].key, r->ratios[i].value,
		       r->ratios[i].cmp, r->ratios[i].target, item_met(&r->ratios[i]) ? "met" : "MISSED");
	for (int i = 0; i < r->nraw; i++)
		printf("  %-40s %14.6g\n", r->raw[i].key, r->raw[i].value);
	for (int i = 0; i < r->nnotes; i++)
		printf("  note: %s\n", r->notes[i]);
	return missed;
}

/* Run one benchmark by name; returns its exit status. */
int pvm_bench_run_one(const char *name, pvm_bench_fn fn, const struct pvm_bench_opts *opts);
int pvm_bench_run_one(const char *name, pvm_bench_fn fn, const struct pvm_bench_opts *opts)
{
	struct pvm_bench_report *r = calloc(1, sizeof(*r));
	int rc, missed;

	if (!r)
		return PVM_EXIT_FAIL;
	r->name = name;
	rc = fn(opts, r);
	if (rc < 0) {
		pvm_cli_error("bench", "%s: %s", name, strerror(-rc));
		free(r);
		return PVM_EXIT_FAIL;
	}
	missed = report_print(r, opts->json);
	free(r);
	return missed ? PVM_EXIT_FAIL : PVM_EXIT_OK;
}

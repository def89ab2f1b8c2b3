/* SPDX-License-Identifier: MIT */
/*
 * Benchmark reports. Every benchmark measures its subject and a baseline in the same run and
 * reports ratios against targets, so that the figures mean the same on any machine. Output is a
 * table for people or one JSON object: {"bench": NAME, "ratios": {NAME: value}, "raw": {...}}.
 */
#ifndef PVM_BENCH_H
#define PVM_BENCH_H

#include <stdbool.h>
#include <stdint.h>

struct pvm_bench_report;

/* Options every benchmark understands. */
struct pvm_bench_opts {
	bool json;      /* --json: one JSON object on stdout */
	bool quick;     /* --quick: smaller sizes and fewer rounds (smoke tests) */
};

/* A benchmark: fills @r; returns 0, or a negative errno when it could not run at all. */
typedef int (*pvm_bench_fn)(const struct pvm_bench_opts *opts, struct pvm_bench_report *r);

int pvm_bench_memslots(const struct pvm_bench_opts *opts, struct pvm_bench_report *r);
int pvm_bench_discard(const struct pvm_bench_opts *opts, struct pvm_bench_report *r);
int pvm_bench_vmem(const struct pvm_bench_opts *opts, struct pvm_bench_report *r);
int pvm_bench_dma(const struct pvm_bench_opts *opts, struct pvm_bench_report *r);
int pvm_bench_machine(const struct pvm_bench_opts *opts, struct pvm_bench_report *r);

/* Seconds from a monotonic clock. */
double pvm_bench_now(void);

/* A raw measurement (reported, not judged), e.g. "ns_per_lookup_32764". */
void pvm_bench_raw(struct pvm_bench_report *r, const char *key, double value);
/* A ratio with its target: @cmp is "<=" or ">=". Ratios are "subject / baseline" in the unit the
 * benchmark's help states (time ratios: > 1 means slower than the baseline). */
void pvm_bench_ratio(struct pvm_bench_report *r, const char *key, double value, const char *cmp,
		     double target);
/* A note printed under the table (and as "notes" in JSON). */
void pvm_bench_note(struct pvm_bench_report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif

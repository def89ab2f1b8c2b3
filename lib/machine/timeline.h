/* SPDX-License-Identifier: MIT */
/*
 * The timeline of `pvmem run --timeline FILE`: one CSV row per sample (time, requested, plugged,
 * balloon, RSS, memlock, pinned...) and, when gnuplot is installed, FILE.svg plotting them.
 * Internal.
 */
#ifndef PVM_MACHINE_TIMELINE_H
#define PVM_MACHINE_TIMELINE_H

#include <stdio.h>

#include <pvmem/core.h>

/* One sample; sizes in bytes. */
struct pvm_timeline_row {
	double t;                  /* seconds since start */
	uint64_t requested;        /* virtio-mem requested, all devices */
	uint64_t plugged;          /* virtio-mem plugged */
	uint64_t balloon;          /* balloon size (inflated) */
	uint64_t guest_total;      /* guest MemTotal */
	uint64_t guest_used;       /* guest workload */
	uint64_t rss;              /* host RSS of guest memory */
	uint64_t memlock;          /* memlock need (0 none, UINT64_MAX unlimited) */
	uint64_t pinned;           /* DMA-pinned bytes */
	char event[48];            /* what happened ("set-size vmem0 3G"), "" for a plain sample */
};

struct pvm_timeline;

int pvm_timeline_new(struct pvm_timeline **out);
void pvm_timeline_free(struct pvm_timeline *tl);
int pvm_timeline_add(struct pvm_timeline *tl, const struct pvm_timeline_row *row);
size_t pvm_timeline_count(const struct pvm_timeline *tl);
const struct pvm_timeline_row *pvm_timeline_row(const struct pvm_timeline *tl, size_t i);
/* Write the CSV (header + rows) to @f. */
int pvm_timeline_write_csv(const struct pvm_timeline *tl, FILE *f);
/* Print the rows that carry an event as a table for people. */
void pvm_timeline_print_table(const struct pvm_timeline *tl, FILE *f);
/* Plot into @svg_path with gnuplot: a scripted run (more than 3 rows with a step) one x
 * position per step, labelled with it; otherwise the samples of @csv_path (written by
 * pvm_timeline_write_csv()) over time. -ENOENT when gnuplot is not installed, -EIO when it
 * failed. */
int pvm_timeline_plot(const struct pvm_timeline *tl, const char *csv_path, const char *svg_path,
		      struct pvm_error *err);

#endif

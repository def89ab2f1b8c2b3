/* SPDX-License-Identifier: MIT */
/*
 * Parser for virtio-mem real-guest traces (format: shared/traces/README.md). Used by
 * `pvmem replay` (src/pvmem/cmd-replay.c) and by the simulated guest (`pvmem replay
 * --simulate`). The parser checks syntax and ranges only (numbers fit their wire fields);
 * whether the values make a valid device is the device's business. Files are untrusted input:
 * bounded line length and event count, never aborts (tests/fuzz/fuzz-vmem-trace.c).
 */
#ifndef PVM_VIRTIO_MEM_TRACE_H
#define PVM_VIRTIO_MEM_TRACE_H

#include <stddef.h>
#include <stdint.h>

#include <pvmem/core.h>

#define PVM_VTRACE_MAX_LINE 1024u        /* bytes per line, newline excluded */
#define PVM_VTRACE_MAX_EVENTS 1000000u   /* events per trace */

enum pvm_vtrace_kind {
	PVM_VTRACE_CONFIG = 0,        /* config addr= region_size= block_size= node= requested_size= */
	PVM_VTRACE_HOST_REQUESTED,    /* host requested_size S          (value) */
	PVM_VTRACE_HOST_RESET,        /* host reset */
	PVM_VTRACE_HOST_BALLOON,      /* host balloon S                 (value) */
	PVM_VTRACE_REQUEST,           /* plug/unplug/unplug_all/state ... -> answer */
	PVM_VTRACE_USABLE,            /* usable U                       (value) */
	PVM_VTRACE_UNPLUGGED_ALL,     /* unplugged_all */
	PVM_VTRACE_GUEST_MEMTOTAL,    /* guest memtotal K               (value, KiB) */
	PVM_VTRACE_FINAL,             /* final size P requested_size S  (value, value2) */
};

struct pvm_vtrace_event {
	enum pvm_vtrace_kind kind;    /* which line */
	unsigned line;                /* 1-based line number in the file */
	uint64_t value;               /* the number of host/usable/memtotal lines; final: size */
	uint64_t value2;              /* final: requested_size */
	/* CONFIG */
	uint64_t addr;                /* region start */
	uint64_t region_size;         /* bytes */
	uint64_t block_size;          /* bytes */
	uint64_t requested_size;      /* bytes */
	uint16_t node;                /* node id */
	/* REQUEST */
	uint16_t req_type;            /* VIRTIO_MEM_REQ_* */
	uint64_t req_addr;            /* guest address (plug, unplug, state) */
	uint16_t nb_blocks;           /* blocks (plug, unplug, state) */
	uint16_t resp;                /* expected VIRTIO_MEM_RESP_* */
	uint16_t state;               /* expected VIRTIO_MEM_STATE_* (state requests) */
};

struct pvm_vtrace {
	struct pvm_vtrace_event *ev;  /* events in file order; ev[0] is the config */
	size_t n;                     /* number of events */
};

/* Parse @len bytes of trace text (need not be NUL-terminated). -EINVAL with "line N: ..." in
 * @err for malformed input (also: no config line, or a config line that is not the first
 * event, or more than one), -E2BIG beyond the limits, -ENOMEM. */
int pvm_vtrace_parse(const char *text, size_t len, struct pvm_vtrace **out,
		     struct pvm_error *err) PVM_MUST_CHECK;
/* Read and parse a file (at most 64 MiB). -errno of open/read as well. */
int pvm_vtrace_load(const char *path, struct pvm_vtrace **out, struct pvm_error *err) PVM_MUST_CHECK;
void pvm_vtrace_free(struct pvm_vtrace *t);

#endif

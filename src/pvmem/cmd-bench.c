/* SPDX-License-Identifier: MIT */
/*
 * pvmem bench [--json] [--quick] NAME...|all
 */
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "cli.h"

int pvm_bench_run_one(const char *name, pvm_bench_fn fn, const struct pvm_bench_opts *opts);

static const struct {
	const char *name;    /* as typed */
	pvm_bench_fn fn;     /* the benchmark */
	const char *what;    /* one line for --help */
} benches[] = {
#ifdef PVM_HAVE_BENCH_MEMSLOTS
	{ "memslots", pvm_bench_memslots, "memslot lookup at 32764 slots vs 8 slots, a linear scan and an array index" },
#endif
#ifdef PVM_HAVE_BENCH_DISCARD
	{ "discard", pvm_bench_discard, "block-wise discard and threaded preallocation vs raw madvise" },
#endif
#ifdef PVM_HAVE_BENCH_VMEM
	{ "vmem", pvm_bench_vmem, "virtio-mem plug/unplug through the request path vs raw populate/discard" },
#endif
#ifdef PVM_HAVE_BENCH_DMA
	{ "dma", pvm_bench_dma, "replaying plugged memory to a new DMA container vs raw map calls" },
#endif
#ifdef PVM_HAVE_BENCH_MACHINE
	{ "machine", pvm_bench_machine, "resizing the simulated guest end to end vs raw populate/discard" },
#endif
	{ NULL, NULL, NULL },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: pvmem bench [--json] [--quick] NAME...|all\n\nbenchmarks:\n");
	for (size_t i = 0; benches[i].name; i++)
		fprintf(f, "  %-10s %s\n", benches[i].name, benches[i].what);
	fprintf(f, "\nEach prints ratios against a baseline measured in the same run and exits 1 when a\n"
		   "target is missed.\n");
}

int pvm_cmd_bench(int argc, char **argv)
{
	struct pvm_bench_opts opts = { 0 };
	int status = PVM_EXIT_OK, named = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			opts.json = true;
		else if (!strcmp(argv[i], "--quick"))
			opts.quick = true;
		else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return PVM_EXIT_OK;
		} else if (argv[i][0] == '-') {
			pvm_cli_error("bench", "unknown option '%s'", argv[i]);
			return PVM_EXIT_USAGE;
		}
	}
	for (int i = 1; i < argc; i++) {
		bool found = false;

		if (argv[i][0] == '-')
			continue;
		named++;
		for (size_t j = 0; benches[j].name; j++) {
			if (!strcmp(argv[i], "all") || !strcmp(argv[i], benches[j].name)) {
				int rc = pvm_bench_run_one(benches[j].name, benches[j].fn, &opts);

				if (rc > status)
					status = rc;
				found = true;
			}
		}
		if (!found) {
			pvm_cli_error("bench", "unknown benchmark '%s' (try 'pvmem bench --help')", argv[i]);
			return PVM_EXIT_USAGE;
		}
	}
	if (!named) {
		usage(stderr);
		return PVM_EXIT_USAGE;
	}
	return status;
}

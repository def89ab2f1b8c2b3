/* SPDX-License-Identifier: MIT */
/*
 * pvmem: host-side guest-memory management. Dispatches to one file per subcommand.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

struct subcmd {
	const char *name;               /* as typed */
	int (*fn)(int argc, char **argv); /* argv[0] is the subcommand name */
	const char *summary;            /* one line for `pvmem help` */
};

static const struct subcmd subcmds[] = {
#ifdef PVM_HAVE_CMD_RUN
	{ "run", pvm_cmd_run, "run a machine with a simulated Linux guest" },
#endif
#ifdef PVM_HAVE_CMD_MEMLOCK
	{ "memlock", pvm_cmd_memlock, "compute, explain and apply RLIMIT_MEMLOCK from a libvirt domain XML" },
#endif
#ifdef PVM_HAVE_CMD_REPLAY
	{ "replay", pvm_cmd_replay, "replay real-guest virtio-mem traces against the device" },
#endif
#ifdef PVM_HAVE_CMD_CTL
	{ "ctl", pvm_cmd_ctl, "send commands to a running machine's QMP socket" },
#endif
#ifdef PVM_HAVE_CMD_BENCH
	{ "bench", pvm_cmd_bench, "run benchmarks, printing ratios against baselines" },
#endif
};

static void usage(FILE *f)
{
	fprintf(f, "usage: pvmem [--version] [--help] COMMAND [ARGS]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(subcmds) / sizeof(subcmds[0]); i++)
		fprintf(f, "  %-10s %s\n", subcmds[i].name, subcmds[i].summary);
	fprintf(f, "\n'pvmem COMMAND --help' describes a command; man pvmem(1) describes them all.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return PVM_EXIT_USAGE;
	}
	if (!strcmp(argv[1], "help") && argc == 3) {
		/* `pvmem help COMMAND` is `pvmem COMMAND --help`. */
		char *help_argv[] = { argv[2], (char *)"--help", NULL };

		for (size_t i = 0; i < sizeof(subcmds) / sizeof(subcmds[0]); i++)
			if (!strcmp(argv[2], subcmds[i].name))
				return subcmds[i].fn(2, help_argv);
		pvm_cli_error(NULL, "unknown command '%s' (try 'pvmem help')", argv[2]);
		return PVM_EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return PVM_EXIT_OK;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
		printf("pvmem %s\n", pvm_version());
		return PVM_EXIT_OK;
	}
	for (size_t i = 0; i < sizeof(subcmds) / sizeof(subcmds[0]); i++)
		if (!strcmp(argv[1], subcmds[i].name))
			return subcmds[i].fn(argc - 1, argv + 1);
	pvm_cli_error(NULL, "unknown command '%s' (try 'pvmem help')", argv[1]);
	return PVM_EXIT_USAGE;
}

/* SPDX-License-Identifier: MIT */
/* The pvmem command: one file per subcommand, each `int pvm_cmd_NAME(int argc, char **argv)`
 * returning the process exit status (0 ok, 1 failure, 2 usage or input error). */
#ifndef PVM_CLI_H
#define PVM_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <pvmem/pvmem.h>

#define PVM_EXIT_OK 0
#define PVM_EXIT_FAIL 1
#define PVM_EXIT_USAGE 2

#define PVM_CLI_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

int pvm_cmd_run(int argc, char **argv);
int pvm_cmd_memlock(int argc, char **argv);
int pvm_cmd_replay(int argc, char **argv);
int pvm_cmd_bench(int argc, char **argv);
int pvm_cmd_ctl(int argc, char **argv);

/* "pvmem: SUBCMD: message" on stderr. */
void pvm_cli_error(const char *subcmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* True when stdout (fd 1) is a terminal and TERM is not "dumb": progress bars and live lines. */
bool pvm_cli_is_tty(void);
/* A progress bar on stderr when it is a terminal (pvm_progress_fn; opaque is the label). */
void pvm_cli_progress(void *label, uint64_t done, uint64_t total);

#endif

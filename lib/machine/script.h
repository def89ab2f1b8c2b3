/* SPDX-License-Identifier: MIT */
/*
 * Scenario scripts for `pvmem run --script`: one command a line, `#` starts a comment, sizes
 * with K/M/G suffixes (pvm_size_parse()). The parser is pure (no machine needed) so that the
 * fuzz harness can link it alone; the runner (script-run.c) executes a parsed script against a
 * machine. Internal to libpvmem and the pvmem command; not exported.
 *
 *   set-size ID SIZE          balloon SIZE              guest-use SIZE
 *   attach ID vfio|nvme|vdpa  detach ID                 viommu on|off
 *   reset                     settle [SECONDS]          sleep MILLISECONDS
 *   expect plugged ID SIZE    expect requested ID SIZE  expect usable ID SIZE
 *   expect balloon-actual SIZE                          expect rss-max SIZE
 *   expect memlock BYTES|unlimited|none                 expect pinned BYTES
 *   expect dma-mapped ID SIZE                           expect discard-inhibited yes|no
 */
#ifndef PVM_MACHINE_SCRIPT_H
#define PVM_MACHINE_SCRIPT_H

#include <pvmem/core.h>

/* Hard limits: a script is a file a person writes; anything bigger is refused, not truncated. */
#define PVM_SCRIPT_MAX_BYTES (1u << 20)   /* whole script */
#define PVM_SCRIPT_MAX_LINE 1024u         /* one line, without its newline */
#define PVM_SCRIPT_MAX_CMDS 65536u        /* commands (comments and blank lines excluded) */
#define PVM_SCRIPT_ID_MAX 64u             /* device ids, NUL included */
#define PVM_SCRIPT_SETTLE_MAX_S 3600u     /* longest settle timeout */
#define PVM_SCRIPT_SETTLE_DEFAULT_S 30u   /* settle without an argument */

enum pvm_script_op {
	PVM_SCRIPT_SET_SIZE = 0,  /* id, size: virtio-mem requested size */
	PVM_SCRIPT_BALLOON,       /* size: balloon target (guest size, as QMP `balloon`) */
	PVM_SCRIPT_GUEST_USE,     /* size: memory the guest workload touches */
	PVM_SCRIPT_ATTACH,        /* id, kind: hot-plug a host device */
	PVM_SCRIPT_DETACH,        /* id: hot-unplug a host device */
	PVM_SCRIPT_VIOMMU,        /* flag: the guest switches DMA remapping on/off */
	PVM_SCRIPT_RESET,         /* system reset */
	PVM_SCRIPT_SETTLE,        /* size = timeout in seconds: wait until idle */
	PVM_SCRIPT_SLEEP,         /* size = milliseconds to keep running */
	PVM_SCRIPT_EXPECT,        /* what, id, size/flag/memlock */
};

enum pvm_script_expect {
	PVM_EXPECT_PLUGGED = 0,          /* id, size */
	PVM_EXPECT_REQUESTED,            /* id, size */
	PVM_EXPECT_USABLE,               /* id, size */
	PVM_EXPECT_BALLOON_ACTUAL,       /* size */
	PVM_EXPECT_RSS_MAX,              /* size: host RSS of guest memory <= size */
	PVM_EXPECT_MEMLOCK,              /* memlock kind + size */
	PVM_EXPECT_PINNED,               /* size */
	PVM_EXPECT_DMA_MAPPED,           /* id, size */
	PVM_EXPECT_DISCARD_INHIBITED,    /* flag */
};

enum pvm_script_hostdev {
	PVM_SCRIPT_HOSTDEV_VFIO = 0,
	PVM_SCRIPT_HOSTDEV_NVME,
	PVM_SCRIPT_HOSTDEV_VDPA,
};

enum pvm_script_memlock {
	PVM_SCRIPT_MEMLOCK_BYTES = 0,    /* a finite limit: size */
	PVM_SCRIPT_MEMLOCK_UNLIMITED,    /* RLIM_INFINITY */
	PVM_SCRIPT_MEMLOCK_NONE,         /* the machine sets no limit (the original one is kept) */
};

/* One command. */
struct pvm_script_cmd {
	unsigned line;                       /* 1-based line number in the script */
	enum pvm_script_op op;               /* what to do */
	enum pvm_script_expect what;         /* EXPECT: what to check */
	char id[PVM_SCRIPT_ID_MAX];          /* device id, "" when the command takes none */
	uint64_t size;                       /* size, bytes, seconds or milliseconds (see op) */
	bool flag;                           /* VIOMMU on, DISCARD_INHIBITED yes */
	enum pvm_script_hostdev kind;        /* ATTACH */
	enum pvm_script_memlock memlock;     /* EXPECT memlock */
};

/* A parsed script. */
struct pvm_script {
	struct pvm_script_cmd *cmds;  /* commands in order */
	size_t n;                     /* number of commands */
};

/* Parse @len bytes of @text (need not be NUL-terminated). On failure *@out is untouched and
 * @err says "line N: ..." Errors: -EINVAL (syntax), -E2BIG (a limit above), -ENOMEM. */
int pvm_script_parse(const char *text, size_t len, struct pvm_script **out, struct pvm_error *err);
/* Read and parse a file; -errno of open/read, plus the parser's errors. */
int pvm_script_parse_file(const char *path, struct pvm_script **out, struct pvm_error *err);
void pvm_script_free(struct pvm_script *s);

/* Names for messages: "set-size", "plugged", "vfio", ... */
const char *pvm_script_op_name(enum pvm_script_op op);
const char *pvm_script_expect_name(enum pvm_script_expect what);
const char *pvm_script_hostdev_name(enum pvm_script_hostdev kind);
/* Write @c back as a script line (no newline) into @buf; returns @buf. Parsing the result
 * gives the same command (the fuzz harness checks it). */
char *pvm_script_cmd_format(const struct pvm_script_cmd *c, char *buf, size_t len);

/* The embedded default domain XML (examples/default.xml) and demo (examples/demo.pvm). */
const char *pvm_machine_embedded_default_xml(void);
const char *pvm_machine_embedded_demo_script(void);

#endif

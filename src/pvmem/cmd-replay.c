/* SPDX-License-Identifier: MIT */
/*
 * pvmem replay [--check] [--enforce MODE] [--simulate] FILE...
 *
 * Replays real-guest virtio-mem traces (shared/traces/README.md) against a real device over
 * sparse MAP_NORESERVE memory. Every guest request goes through the virtqueue (lib/virtio/
 * driver.h); host events go through the management API. Without --check the device's own
 * answers are printed in trace format (a transcript that can itself be replayed); with --check
 * each mismatch is printed as FILE:LINE and the run ends with "replay: N passed, N failed".
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "core/util.h"
#include "virtio/mem-rig.h"
#include "virtio/mem-state.h"
#include "virtio/mem-trace.h"

#ifdef PVM_HAVE_SIM
int pvm_sim_replay_file(const char *path, bool check, FILE *out);
#endif

struct replay {
	const char *path;         /* file being replayed */
	bool check;               /* --check: print mismatches only */
	unsigned mismatches;      /* in this file */
};

static void mismatch(struct replay *r, unsigned line, const char *fmt, ...) PVM_PRINTF(3, 4);
static void mismatch(struct replay *r, unsigned line, const char *fmt, ...)
{
	va_list ap;

	r->mismatches++;
	printf("%s:%u: ", r->path, line);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static void check_u64(struct replay *r, unsigned line, const char *what, uint64_t want, uint64_t got)
{
	if (want != got)
		mismatch(r, line, "%s: expected 0x%" PRIx64 ", device has 0x%" PRIx64, what, want, got);
}

/* One request event. */
static int do_request(struct replay *r, struct pvm_vmem_rig *rig, const struct pvm_vtrace_event *ev)
{
	uint16_t resp = 0, state = 0;
	int rc = pvm_vmem_rig_request(rig, ev->req_type, ev->req_addr, ev->nb_blocks, &resp, &state);

	if (rc) {
		mismatch(r, ev->line, "%s: no answer (%s)", pvm_vmem_req_name(ev->req_type), strerror(-rc));
		return rc;
	}
	if (!r->check) {
		if (ev->req_type == VIRTIO_MEM_REQ_UNPLUG_ALL)
			printf("unplug_all -> %s\n", pvm_vmem_resp_name(resp));
		else if (ev->req_type == VIRTIO_MEM_REQ_STATE && resp == VIRTIO_MEM_RESP_ACK)
			printf("state 0x%" PRIx64 " %u -> %s %s\n", ev->req_addr, ev->nb_blocks,
			       pvm_vmem_state_name(state), pvm_vmem_resp_name(resp));
		else
			printf("%s 0x%" PRIx64 " %u -> %s\n", pvm_vmem_req_name(ev->req_type), ev->req_addr,
			       ev->nb_blocks, pvm_vmem_resp_name(resp));
	}
	if (resp != ev->resp)
		mismatch(r, ev->line, "%s 0x%" PRIx64 " %u: expected %s, device answered %s",
			 pvm_vmem_req_name(ev->req_type), ev->req_addr, ev->nb_blocks,
			 pvm_vmem_resp_name(ev->resp), pvm_vmem_resp_name(resp));
	else if (ev->req_type == VIRTIO_MEM_REQ_STATE && resp == VIRTIO_MEM_RESP_ACK && state != ev->state)
		mismatch(r, ev->line, "state 0x%" PRIx64 " %u: expected %s, device answered %s",
			 ev->req_addr, ev->nb_blocks, pvm_vmem_state_name(ev->state),
			 pvm_vmem_state_name(state));
	return 0;
}

static int replay_events(struct replay *r, struct pvm_vmem_rig *rig, const struct pvm_vtrace *t)
{
	struct pvm_vmem *vm = pvm_vmem_rig_device(rig);

	for (size_t i = 1; i < t->n; i++) {
		const struct pvm_vtrace_event *ev = &t->ev[i];
		struct pvm_error err = { 0 };
		uint64_t v = 0, v2 = 0;

		switch (ev->kind) {
		case PVM_VTRACE_HOST_REQUESTED:
			if (!r->check)
				printf("host requested_size 0x%" PRIx64 "\n", ev->value);
			if (pvm_vmem_set_requested_size(vm, ev->value, &err))
				mismatch(r, ev->line, "requested size refused: %s", pvm_error_message(&err));
			break;
		case PVM_VTRACE_HOST_RESET:
			if (!r->check)
				printf("host reset\n");
			/* A machine reset: the device unplugs everything, then the guest boots again
			 * and its driver resets and re-initialises the virtio device. */
			if (pvm_vmem_system_reset(vm, false, &err) || pvm_vmem_rig_reload_driver(rig, &err)) {
				mismatch(r, ev->line, "reset failed: %s", pvm_error_message(&err));
				return -EIO;
			}
			break;
		case PVM_VTRACE_HOST_BALLOON:
			if (!r->check)
				printf("host balloon 0x%" PRIx64 "\n", ev->value);
			break;
		case PVM_VTRACE_GUEST_MEMTOTAL:
			if (!r->check)
				printf("guest memtotal %" PRIu64 "\n", ev->value);
			break;
		case PVM_VTRACE_REQUEST:
			if (do_request(r, rig, ev))
				return -EIO;
			break;
		case PVM_VTRACE_USABLE:
			if (pvm_vmem_rig_config64(rig, 32, &v))
				return -EIO;
			if (!r->check)
				printf("usable 0x%" PRIx64 "\n", v);
			check_u64(r, ev->line, "usable_region_size", ev->value, v);
			break;
		case PVM_VTRACE_UNPLUGGED_ALL:
			if (pvm_vmem_rig_config64(rig, 40, &v))
				return -EIO;
			if (!r->check)
				printf("unplugged_all\n");
			check_u64(r, ev->line, "plugged_size", 0, v);
			break;
		case PVM_VTRACE_FINAL:
			if (pvm_vmem_rig_config64(rig, 40, &v) || pvm_vmem_rig_config64(rig, 48, &v2))
				return -EIO;
			if (!r->check)
				printf("final size 0x%" PRIx64 " requested_size 0x%" PRIx64 "\n", v, v2);
			check_u64(r, ev->line, "final plugged_size", ev->value, v);
			check_u64(r, ev->line, "final requested_size", ev->value2, v2);
			break;
		case PVM_VTRACE_CONFIG:
			break;
		}
	}
	return 0;
}

/* Says why PATH cannot be replayed, on stderr; the library's message usually names it already. */
static void bad_input(const char *path, unsigned line, const char *msg)
{
	if (line)
		pvm_cli_error("replay", "%s:%u: %s", path, line, msg);
	else if (!strncmp(msg, path, strlen(path)))
		pvm_cli_error("replay", "%s", msg);
	else
		pvm_cli_error("replay", "%s: %s", path, msg);
}

/* Returns PVM_EXIT_OK when everything matches, PVM_EXIT_FAIL on a mismatch and PVM_EXIT_USAGE
 * when the file is not a trace that can be replayed. */
static int replay_file(const char *path, bool check, enum pvm_enforce_mode enforce)
{
	struct replay r = { .path = path, .check = check };
	struct pvm_vtrace *t = NULL;
	struct pvm_vmem_rig *rig = NULL;
	struct pvm_vmem_audit audit;
	struct pvm_error err = { 0 };
	const struct pvm_vtrace_event *c;
	struct pvm_vmem_rig_config rc = { 0 };

	if (pvm_vtrace_load(path, &t, &err)) {
		bad_input(path, 0, pvm_error_message(&err));
		return PVM_EXIT_USAGE;
	}
	c = &t->ev[0];
	rc.dev.id = "vmem0";
	rc.dev.addr = c->addr;
	rc.dev.region_size = c->region_size;
	rc.dev.block_size = c->block_size;
	rc.dev.node = c->node;
	rc.dev.requested_size = c->requested_size;
	rc.dev.enforce = enforce;
	if (pvm_vmem_rig_new(&rc, &rig, &err)) {
		char msg[512];

		snprintf(msg, sizeof(msg), "cannot create the device: %s", pvm_error_message(&err));
		bad_input(path, c->line, msg);
		pvm_vtrace_free(t);
		return PVM_EXIT_USAGE;
	}
	if (!check)
		printf("config addr=0x%" PRIx64 " region_size=0x%" PRIx64 " block_size=0x%" PRIx64
		       " node=%u requested_size=0x%" PRIx64 "\n", c->addr, c->region_size,
		       c->block_size, c->node, c->requested_size);
	if (replay_events(&r, rig, t) == 0 && pvm_vmem_audit(pvm_vmem_rig_device(rig), &audit, &err))
		mismatch(&r, t->ev[t->n - 1].line, "audit: %s", pvm_error_message(&err));
	pvm_vmem_rig_free(rig);
	pvm_vtrace_free(t);
	return r.mismatches ? PVM_EXIT_FAIL : PVM_EXIT_OK;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: pvmem replay [--check] [--enforce none|uffd|mprotect|auto] [--simulate] FILE...\n\n"
		   "Replay virtio-mem traces against a real device, every request through a virtqueue.\n"
		   "  --check      print only mismatches (FILE:LINE) and exit 0 only if all files match\n"
		   "  --enforce M  host enforcement of unplugged memory (default auto)\n"
		   "  --simulate   drive the device with the simulated Linux guest instead of the trace's\n"
		   "               requests (the answers must still match)\n");
}

int pvm_cmd_replay(int argc, char **argv)
{
	enum pvm_enforce_mode enforce = PVM_ENFORCE_AUTO;
	bool check = false, simulate = false;
	unsigned passed = 0, failed = 0, files = 0, unreadable = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--check")) {
			check = true;
		} else if (!strcmp(argv[i], "--simulate")) {
			simulate = true;
		} else if (!strcmp(argv[i], "--enforce") && i + 1 < argc) {
			if (pvm_enforce_mode_parse(argv[++i], &enforce)) {
				pvm_cli_error("replay", "unknown enforcement mode '%s'", argv[i]);
				return PVM_EXIT_USAGE;
			}
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return PVM_EXIT_OK;
		} else if (argv[i][0] == '-' && argv[i][1]) {
			pvm_cli_error("replay", "unknown option '%s'", argv[i]);
			return PVM_EXIT_USAGE;
		} else {
			files++;
		}
	}
	if (!files) {
		usage(stderr);
		return PVM_EXIT_USAGE;
	}
#ifndef PVM_HAVE_SIM
	if (simulate) {
		pvm_cli_error("replay", "--simulate: the simulated guest is not built into this pvmem");
		return PVM_EXIT_USAGE;
	}
#endif
	for (int i = 1; i < argc; i++) {
		int st;

		if (!strcmp(argv[i], "--enforce")) {
			i++;
			continue;
		}
		if (argv[i][0] == '-' && argv[i][1])
			continue;
#ifdef PVM_HAVE_SIM
		if (simulate) {
			struct pvm_vtrace *t = NULL;
			struct pvm_error err = { 0 };

			/* Reject what is not a trace up front, as replay_file() does. */
			if (pvm_vtrace_load(argv[i], &t, &err)) {
				bad_input(argv[i], 0, pvm_error_message(&err));
				st = PVM_EXIT_USAGE;
			} else {
				pvm_vtrace_free(t);
				st = pvm_sim_replay_file(argv[i], check, stdout) == 0 ? PVM_EXIT_OK : PVM_EXIT_FAIL;
			}
		} else
#endif
			st = replay_file(argv[i], check, enforce);
		if (st == PVM_EXIT_OK)
			passed++;
		else
			failed++;
		unreadable += st == PVM_EXIT_USAGE;
	}
	printf("replay: %u passed, %u failed\n", passed, failed);
	/* A file that is not a trace is an input error (2); a mismatch is a failure (1). */
	return unreadable ? PVM_EXIT_USAGE : failed ? PVM_EXIT_FAIL : PVM_EXIT_OK;
}

/* SPDX-License-Identifier: MIT */
/*
 * pvmem run [DOMAIN.xml] [--qmp unix:PATH] [--script FILE] [--timeline FILE] [--quiet]
 *
 * Runs a machine (lib/machine) with the simulated Linux guest (src/sim) until quit. With no
 * arguments: the embedded default machine (examples/default.xml) runs the embedded demo
 * (examples/demo.pvm) and writes timeline.csv / timeline.svg. --script runs a scenario and exits
 * 0 only when every expectation holds; without a script the machine runs until SIGINT/SIGTERM or
 * a QMP quit.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <pvmem/domain.h>
#include <pvmem/control.h>
#include <pvmem/machine.h>

#include "cli.h"
#include "machine/script.h"
#include "machine/timeline.h"

#ifdef PVM_HAVE_SIM
#include "../sim/sim.h"
#endif

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	stop_requested = sig;
}

struct run {
	struct pvm_machine *m;          /* the machine */
#ifdef PVM_HAVE_SIM
	struct pvm_sim_guest *guest;    /* the simulated guest */
#endif
	struct pvm_timeline *tl;        /* samples */
	bool quiet;                     /* no live status line */
	bool tty;                       /* stdout is a terminal */
	uint64_t last_sample_ms;        /* time of the last sample */
	unsigned failed, passed;        /* expectations */
	unsigned not_run;               /* script commands left when a signal stopped the run */
};

static void sample(struct run *r, const char *event)
{
	struct pvm_timeline_row row = { 0 };
	struct pvm_machine_stats st;
	struct pvm_machine_balloon_info bi;
	struct pvm_machine_memlock_info ml;

	pvm_machine_stats(r->m, &st);
	pvm_machine_balloon(r->m, &bi);
	pvm_machine_memlock(r->m, &ml);
	row.t = (double)pvm_machine_now_ms(r->m) / 1000.0;
	row.requested = st.requested;
	row.plugged = st.plugged;
	row.balloon = bi.inflated_bytes;
	row.guest_total = st.guest_total;
	row.guest_used = st.guest_used;
	row.rss = st.rss;
	row.memlock = ml.need;
	row.pinned = ml.pinned;
	if (event)
		snprintf(row.event, sizeof(row.event), "%s", event);
	(void)pvm_timeline_add(r->tl, &row);
	r->last_sample_ms = pvm_machine_now_ms(r->m);
	if (r->tty && !r->quiet) {
		char a[32], b[32], c[32], d[32], e[32], g[32], line[256];
		struct winsize ws;
		int n, cols = 80;

		n = snprintf(line, sizeof(line), "plugged %s of %s  MemTotal %s  balloon %s  host RSS %s  memlock %s",
			     pvm_size_format(st.plugged, b, sizeof(b)), pvm_size_format(st.requested, a, sizeof(a)),
			     pvm_size_format(st.guest_total, g, sizeof(g)),
			     pvm_size_format(bi.inflated_bytes, c, sizeof(c)), pvm_size_format(st.rss, d, sizeof(d)),
			     ml.kind == PVM_MACHINE_MEMLOCK_NONE ? "none"
			     : ml.kind == PVM_MACHINE_MEMLOCK_UNLIMITED ? "unlimited"
								      : pvm_size_format(ml.need, e, sizeof(e)));
		/* One line that never wraps, or \r could not redraw it. */
		if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1)
			cols = ws.ws_col;
		printf("\r\033[K%.*s", n < cols - 1 ? n : cols - 1, line);
		fflush(stdout);
	}
}

static void status_line_end(struct run *r)
{
	if (r->tty && !r->quiet)
		printf("\r\033[K");
}

/* Run the loop, sampling every 100 ms. */
static int step(struct run *r, int timeout_ms)
{
	int rc = pvm_machine_run_once(r->m, timeout_ms);

	if (pvm_machine_now_ms(r->m) - r->last_sample_ms >= 100)
		sample(r, NULL);
	return rc;
}

/* Run until the guest and the devices are idle (as pvm_machine_settle(), sampling): the loop
 * sleeps until an interrupt, a timer or the next sample is due; once idle, one more round
 * without sleeping sees anything already pending. */
static int settle(struct run *r, uint64_t timeout_ms)
{
	uint64_t end = pvm_machine_now_ms(r->m) + timeout_ms;

	for (;;) {
		bool idle = pvm_machine_idle(r->m, true);
		int rc = step(r, idle ? 0 : 100);

		if (rc)
			return rc;
		if (idle && pvm_machine_idle(r->m, true))
			return 0;
		if (pvm_machine_now_ms(r->m) > end)
			return -ETIMEDOUT;
		if (stop_requested)
			return -EINTR;
	}
}

static const char *fmt_size(uint64_t v, char *buf, size_t len)
{
	return pvm_size_format(v, buf, len);
}

/* "N:" for a script line number, so that "FILE:N: step" lines align up to line 9999. */
static const char *lineno(unsigned line)
{
	static char buf[16];

	snprintf(buf, sizeof(buf), "%u:", line);
	return buf;
}

/* Check one expectation; prints "line N: expect ...: ok|FAILED (got X)". */
static bool check(struct run *r, const struct pvm_script_cmd *c, char *got, size_t len)
{
	struct pvm_machine_memdev_info mi;
	struct pvm_machine_balloon_info bi;
	struct pvm_machine_memlock_info ml;
	struct pvm_machine_stats st;
	struct pvm_machine_discard_info di;
	struct pvm_machine_hostdev_info hi;
	int i;

	switch (c->what) {
	case PVM_EXPECT_PLUGGED:
	case PVM_EXPECT_REQUESTED:
	case PVM_EXPECT_USABLE: {
		uint64_t v;

		i = pvm_machine_memdev_find(r->m, c->id);
		if (i < 0 || pvm_machine_memdev_info(r->m, (size_t)i, &mi)) {
			snprintf(got, len, "no virtio-mem device '%s'", c->id);
			return false;
		}
		v = c->what == PVM_EXPECT_PLUGGED ? mi.plugged_size
		    : c->what == PVM_EXPECT_REQUESTED ? mi.requested_size : mi.usable_region_size;
		fmt_size(v, got, len);
		return v == c->size;
	}
	case PVM_EXPECT_BALLOON_ACTUAL:
		pvm_machine_balloon(r->m, &bi);
		fmt_size(bi.actual_bytes, got, len);
		return bi.present && bi.actual_bytes == c->size;
	case PVM_EXPECT_RSS_MAX:
		pvm_machine_stats(r->m, &st);
		fmt_size(st.rss, got, len);
		return st.rss <= c->size;
	case PVM_EXPECT_MEMLOCK:
		pvm_machine_memlock(r->m, &ml);
		if (ml.kind == PVM_MACHINE_MEMLOCK_NONE)
			snprintf(got, len, "none");
		else if (ml.kind == PVM_MACHINE_MEMLOCK_UNLIMITED)
			snprintf(got, len, "unlimited");
		else
			snprintf(got, len, "%llu", (unsigned long long)ml.need);
		if (ml.apply_error && ml.kind != PVM_MACHINE_MEMLOCK_NONE)
			snprintf(got + strlen(got), len - strlen(got), ", not applied: %s",
				 strerror(-ml.apply_error));
		if (c->memlock == PVM_SCRIPT_MEMLOCK_NONE)
			return ml.kind == PVM_MACHINE_MEMLOCK_NONE;
		if (c->memlock == PVM_SCRIPT_MEMLOCK_UNLIMITED)
			return ml.kind == PVM_MACHINE_MEMLOCK_UNLIMITED;
		return ml.kind == PVM_MACHINE_MEMLOCK_BYTES && ml.need == c->size;
	case PVM_EXPECT_PINNED:
		pvm_machine_memlock(r->m, &ml);
		fmt_size(ml.pinned, got, len);
		return ml.pinned == c->size;
	case PVM_EXPECT_DMA_MAPPED:
		i = pvm_machine_hostdev_find(r->m, c->id);
		if (i < 0 || pvm_machine_hostdev_info(r->m, (size_t)i, &hi)) {
			snprintf(got, len, "no host device '%s'", c->id);
			return false;
		}
		fmt_size(hi.mapped, got, len);
		return hi.mapped == c->size;
	case PVM_EXPECT_DISCARD_INHIBITED:
		pvm_machine_discard(r->m, &di);
		snprintf(got, len, "%s", di.uncoordinated_disabled ? "yes" : "no");
		return di.uncoordinated_disabled == c->flag;
	}
	snprintf(got, len, "?");
	return false;
}

static enum pvm_machine_hostdev_kind hostdev_kind(enum pvm_script_hostdev k)
{
	return k == PVM_SCRIPT_HOSTDEV_NVME ? PVM_MACHINE_HOSTDEV_NVME
	       : k == PVM_SCRIPT_HOSTDEV_VDPA ? PVM_MACHINE_HOSTDEV_VDPA : PVM_MACHINE_HOSTDEV_VFIO;
}

static int run_script(struct run *r, const struct pvm_script *s, const char *name)
{
	size_t i;

	for (i = 0; i < s->n && !stop_requested; i++) {
		const struct pvm_script_cmd *c = &s->cmds[i];
		struct pvm_error err = { 0 };
		char line[256], got[128];
		int rc = 0;

		pvm_script_cmd_format(c, line, sizeof(line));
		switch (c->op) {
		case PVM_SCRIPT_SET_SIZE:
			rc = pvm_machine_set_requested_size(r->m, c->id, c->size, &err);
			break;
		case PVM_SCRIPT_BALLOON:
			rc = pvm_machine_set_balloon_target(r->m, c->size, &err);
			break;
		case PVM_SCRIPT_GUEST_USE:
#ifdef PVM_HAVE_SIM
			(void)pvm_sim_guest_use(r->guest, c->size);
#endif
			break;
		case PVM_SCRIPT_ATTACH:
			rc = pvm_machine_attach_hostdev(r->m, c->id, hostdev_kind(c->kind), &err);
			break;
		case PVM_SCRIPT_DETACH:
			rc = pvm_machine_detach_hostdev(r->m, c->id, &err);
			break;
		case PVM_SCRIPT_VIOMMU:
			rc = pvm_machine_set_viommu(r->m, c->flag, &err);
			break;
		case PVM_SCRIPT_RESET:
			rc = pvm_machine_system_reset(r->m, &err);
			break;
		case PVM_SCRIPT_SETTLE:
			rc = settle(r, c->size * 1000);
			if (rc == -ETIMEDOUT)
				pvm_error_set(&err, rc, "not idle after %llu s", (unsigned long long)c->size);
			break;
		case PVM_SCRIPT_SLEEP: {
			uint64_t end = pvm_machine_now_ms(r->m) + c->size;

			while (!rc && pvm_machine_now_ms(r->m) < end && !stop_requested)
				rc = step(r, 10);
			break;
		}
		case PVM_SCRIPT_EXPECT: {
			bool ok = check(r, c, got, sizeof(got));

			status_line_end(r);
			printf("%s:%-*s %-40s %s%s%s\n", name, 5, lineno(c->line), line, ok ? "ok" : "FAILED (got ",
			       ok ? "" : got, ok ? "" : ")");
			if (ok)
				r->passed++;
			else
				r->failed++;
			continue;
		}
		}
		if (c->op != PVM_SCRIPT_SLEEP)
			sample(r, c->op == PVM_SCRIPT_SETTLE ? "  (settled)" : line);
		if (rc) {
			status_line_end(r);
			printf("%s:%-*s %-40s FAILED (%s)\n", name, 5, lineno(c->line), line, pvm_error_message(&err));
			r->failed++;
		}
	}
	/* A signal ends the script early: the steps after it did not run, so it did not pass. */
	if (stop_requested)
		r->not_run = (unsigned)(s->n - i);
	sample(r, "end");
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: pvmem run [DOMAIN.xml] [--qmp unix:PATH] [--script FILE] [--timeline FILE]\n"
		   "                 [--enforce auto|uffd|mprotect|none] [--on-unplugged-write deny|allow|kill]\n"
		   "                 [--quiet]\n"
		   "\nWith no arguments, runs the demo of the default machine and writes timeline.csv\n"
		   "and timeline.svg. See docs/run.md for the script language.\n"
		   "--enforce: how the host keeps unplugged virtio-mem memory unallocated (default auto:\n"
		   "userfaultfd where available, else mprotect; none discards only, as QEMU does).\n");
}

int pvm_cmd_run(int argc, char **argv)
{
	const char *xml = NULL, *qmp = NULL, *script_path = NULL, *timeline = NULL;
	struct pvm_domain *dom = NULL;
	struct pvm_script *script = NULL;
	struct pvm_error err = { 0 };
	struct run r = { 0 };
	struct pvm_control *qmp_handle = NULL;
	struct pvm_machine_opts mopts = { 0 };
	FILE *timeline_f = NULL;
	bool demo;
	int rc, status = PVM_EXIT_FAIL;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return PVM_EXIT_OK;
		} else if (!strcmp(argv[i], "--quiet") || !strcmp(argv[i], "-q")) {
			r.quiet = true;
		} else if ((!strcmp(argv[i], "--qmp") || !strcmp(argv[i], "--script") ||
			    !strcmp(argv[i], "--timeline")) && i + 1 < argc) {
			const char **dst = argv[i][2] == 'q' ? &qmp : argv[i][2] == 's' ? &script_path : &timeline;

			*dst = argv[++i];
		} else if (!strcmp(argv[i], "--enforce") && i + 1 < argc) {
			static const char *const names[] = { "auto", "uffd", "mprotect", "none" };
			bool known = false;

			for (unsigned k = 0; k < PVM_CLI_ARRAY_SIZE(names); k++)
				if (!strcmp(argv[i + 1], names[k])) {
					mopts.enforce = (enum pvm_machine_enforce)k;
					known = true;
				}
			if (!known) {
				pvm_cli_error("run", "--enforce: '%s' is not auto, uffd, mprotect or none", argv[i + 1]);
				return PVM_EXIT_USAGE;
			}
			i++;
		} else if (!strcmp(argv[i], "--on-unplugged-write") && i + 1 < argc) {
			if (pvm_enforce_policy_parse(argv[i + 1], &mopts.enforce_policy) < 0) {
				pvm_cli_error("run", "--on-unplugged-write: '%s' is not deny, allow or kill", argv[i + 1]);
				return PVM_EXIT_USAGE;
			}
			i++;
		} else if (argv[i][0] == '-') {
			pvm_cli_error("run", "unknown or incomplete option '%s'", argv[i]);
			usage(stderr);
			return PVM_EXIT_USAGE;
		} else if (!xml) {
			xml = argv[i];
		} else {
			pvm_cli_error("run", "one DOMAIN.xml only: '%s' is one too many", argv[i]);
			usage(stderr);
			return PVM_EXIT_USAGE;
		}
	}
#ifndef PVM_HAVE_SIM
	pvm_cli_error("run", "this pvmem was built without the simulated guest");
	return PVM_EXIT_FAIL;
#else
	demo = !xml && !qmp && !script_path;
	if (demo && !timeline)
		timeline = "timeline.csv";
	rc = xml ? pvm_domain_parse_file(xml, PVM_DOMAIN_PARSE_NO_HOST, &dom, &err)
		 : pvm_domain_parse_memory(pvm_machine_embedded_default_xml(),
					   strlen(pvm_machine_embedded_default_xml()),
					   PVM_DOMAIN_PARSE_NO_HOST, &dom, &err);
	if (rc) {
		const char *what = xml ? xml : "default machine", *msg = pvm_error_message(&err);

		/* The parser's message usually names the file already: do not say it twice. */
		if (!strncmp(msg, what, strlen(what)))
			pvm_cli_error("run", "%s", msg);
		else
			pvm_cli_error("run", "%s: %s", what, msg);
		return PVM_EXIT_USAGE;
	}
	if (script_path)
		rc = pvm_script_parse_file(script_path, &script, &err);
	else if (demo)
		rc = pvm_script_parse(pvm_machine_embedded_demo_script(),
				      strlen(pvm_machine_embedded_demo_script()), &script, &err);
	if (rc) {
		pvm_cli_error("run", "%s", pvm_error_message(&err));
		pvm_domain_free(dom);
		return PVM_EXIT_USAGE;
	}
	if (timeline) {
		/* Opened before the run so that a path that cannot be written fails at once. */
		timeline_f = fopen(timeline, "we");
		if (!timeline_f) {
			pvm_cli_error("run", "--timeline %s: %s", timeline, strerror(errno));
			pvm_script_free(script);
			pvm_domain_free(dom);
			return PVM_EXIT_USAGE;
		}
	}
	r.tty = pvm_cli_is_tty();
	if (pvm_machine_new(dom, &mopts, &r.m, &err) || pvm_timeline_new(&r.tl)) {
		pvm_cli_error("run", "machine: %s", pvm_error_message(&err));
		goto out;
	}
	{
		struct pvm_sim_guest_opts go = { .ms_per_guest_second = 10 };

		if (pvm_sim_guest_new(r.m, &go, &r.guest, &err)) {
			pvm_cli_error("run", "%s", pvm_error_message(&err));
			goto out;
		}
	}
	if (qmp) {
		/* The control socket serves QMP from the machine's loop and sends its events. */
		if (pvm_control_new(r.m, qmp, &qmp_handle, &err)) {
			pvm_cli_error("run", "--qmp %s: %s", qmp, pvm_error_message(&err));
			goto out;
		}
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	if (settle(&r, 30000)) {
		pvm_cli_error("run", "the guest did not boot");
		goto out;
	}
	sample(&r, "boot");
	if (script) {
		if (demo)
			printf("pvmem run: the default machine (1 GiB boot memory, 4 GiB virtio-mem vmem0, a balloon)\n"
			       "running the demo (examples/demo.pvm):\n\n");
		run_script(&r, script, script_path ? script_path : "demo.pvm");
	} else {
		while (!stop_requested && !pvm_machine_quit_requested(r.m))
			if (step(&r, 100))
				break;
	}
	status_line_end(&r);
	if (script || timeline) {
		printf("\n");
		pvm_timeline_print_table(r.tl, stdout);
	}
	if (timeline) {
		FILE *f = timeline_f;
		int wrc = pvm_timeline_write_csv(r.tl, f);
		char svg[4096];

		timeline_f = NULL;
		if (fclose(f) || wrc) { /* the file is closed either way */
			pvm_cli_error("run", "%s: %s", timeline, strerror(errno));
			goto out;
		}
		snprintf(svg, sizeof(svg), "%.*s.svg",
			 (int)(strlen(timeline) > 4 && !strcmp(timeline + strlen(timeline) - 4, ".csv")
				       ? strlen(timeline) - 4 : strlen(timeline)), timeline);
		pvm_error_clear(&err);
		if (pvm_timeline_plot(r.tl, timeline, svg, &err))
			printf("\ntimeline: %s (no plot: %s)\n", timeline, pvm_error_message(&err));
		else
			printf("\ntimeline: %s, plot: %s\n", timeline, svg);
	}
	if (script) {
		printf("%u expectation%s held, %u failed\n", r.passed, r.passed == 1 ? "" : "s", r.failed);
		if (stop_requested)
			printf("interrupted by %s: %u script command%s not run\n", strsignal(stop_requested),
			       r.not_run, r.not_run == 1 ? "" : "s");
		status = r.failed || stop_requested ? PVM_EXIT_FAIL : PVM_EXIT_OK;
	} else {
		status = PVM_EXIT_OK;
	}
out:
	if (timeline_f) { /* the run failed before the timeline was written: leave no empty file */
		fclose(timeline_f);
		unlink(timeline);
	}
	pvm_control_free(qmp_handle);
	pvm_sim_guest_free(r.guest);
	pvm_machine_free(r.m);
	pvm_timeline_free(r.tl);
	pvm_script_free(script);
	pvm_domain_free(dom);
	return status;
#endif
}

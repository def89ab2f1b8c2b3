/* SPDX-License-Identifier: MIT */
/* Timeline samples, CSV and the gnuplot SVG (see timeline.h). */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/util.h"
#include "machine/timeline.h"

struct pvm_timeline {
	struct pvm_timeline_row *rows;  /* samples in time order */
	size_t n, cap;                  /* used, allocated */
};

int pvm_timeline_new(struct pvm_timeline **out)
{
	*out = pvm_calloc(1, sizeof(**out));
	return *out ? 0 : -ENOMEM;
}

void pvm_timeline_free(struct pvm_timeline *tl)
{
	if (!tl)
		return;
	pvm_free(tl->rows);
	pvm_free(tl);
}

int pvm_timeline_add(struct pvm_timeline *tl, const struct pvm_timeline_row *row)
{
	if (tl->n == tl->cap) {
		size_t ncap = tl->cap ? tl->cap * 2 : 256;
		struct pvm_timeline_row *nr = pvm_reallocarray(tl->rows, ncap, sizeof(*nr));

		if (!nr)
			return -ENOMEM;
		tl->rows = nr;
		tl->cap = ncap;
	}
	tl->rows[tl->n++] = *row;
	return 0;
}

size_t pvm_timeline_count(const struct pvm_timeline *tl)
{
	return tl->n;
}

const struct pvm_timeline_row *pvm_timeline_row(const struct pvm_timeline *tl, size_t i)
{
	return i < tl->n ? &tl->rows[i] : NULL;
}

static double mib(uint64_t v)
{
	return (double)v / (double)PVM_MiB;
}

int pvm_timeline_write_csv(const struct pvm_timeline *tl, FILE *f)
{
	fprintf(f, "time_s,requested_mib,plugged_mib,balloon_mib,guest_total_mib,guest_used_mib,"
		   "rss_mib,memlock_mib,pinned_mib,event\n");
	for (size_t i = 0; i < tl->n; i++) {
		const struct pvm_timeline_row *r = &tl->rows[i];
		char ml[32];

		/* "inf" for an unlimited need (gnuplot reads it as infinity). */
		if (r->memlock == UINT64_MAX)
			snprintf(ml, sizeof(ml), "inf");
		else
			snprintf(ml, sizeof(ml), "%.1f", mib(r->memlock));
		fprintf(f, "%.3f,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,%s,%.1f,%s\n", r->t, mib(r->requested),
			mib(r->plugged), mib(r->balloon), mib(r->guest_total), mib(r->guest_used),
			mib(r->rss), ml, mib(r->pinned), r->event);
	}
	return ferror(f) ? -EIO : 0;
}

static const char *memlock_word(uint64_t v, char *buf, size_t len)
{
	if (v == 0)
		snprintf(buf, len, "none");
	else if (v == UINT64_MAX)
		snprintf(buf, len, "unlimited");
	else
		snprintf(buf, len, "%.0fM", mib(v));
	return buf;
}

void pvm_timeline_print_table(const struct pvm_timeline *tl, FILE *f)
{
	fprintf(f, "%8s  %-26s %9s %9s %9s %9s %9s %9s %9s %9s\n", "time", "step", "requested",
		"plugged", "balloon", "MemTotal", "used", "host RSS", "memlock", "pinned");
	for (size_t i = 0; i < tl->n; i++) {
		const struct pvm_timeline_row *r = &tl->rows[i];
		char ml[32];

		if (!r->event[0])
			continue;
		fprintf(f, "%7.2fs  %-26.26s %8.0fM %8.0fM %8.0fM %8.0fM %8.0fM %8.0fM %9s %8.0fM\n", r->t,
			r->event, mib(r->requested), mib(r->plugged), mib(r->balloon), mib(r->guest_total),
			mib(r->guest_used), mib(r->rss), memlock_word(r->memlock, ml, sizeof(ml)),
			mib(r->pinned));
	}
	fprintf(f, "\n  time: when the step was done; requested, plugged: virtio-mem; balloon: inflated;\n"
		   "  MemTotal, used: as the guest sees them; host RSS: host memory resident in guest RAM;\n"
		   "  memlock: the RLIMIT_MEMLOCK the machine needs (none: the process keeps its own);\n"
		   "  pinned: guest RAM pinned for DMA by host devices.\n");
}

static bool have_gnuplot(void)
{
	const char *path = getenv("PATH");
	char buf[512];

	if (!path)
		path = "/usr/bin:/bin";
	while (*path) {
		size_t n = strcspn(path, ":");

		snprintf(buf, sizeof(buf), "%.*s/gnuplot", (int)n, path);
		if (access(buf, X_OK) == 0)
			return true;
		path += n + (path[n] == ':');
	}
	return false;
}

/* The lines every plot has, in the CSV's column numbers (1 = time). */
static const struct {
	int col;             /* CSV column */
	const char *title;   /* legend */
	const char *style;   /* gnuplot style */
} curves[] = {
	{ 2, "requested (virtio-mem)", "lw 2 dt 2 lc rgb '#7e2f8e'" },
	{ 3, "plugged (virtio-mem)", "lw 3 lc rgb '#009e73'" },
	{ 4, "balloon", "lw 2 lc rgb '#56b4e9'" },
	{ 6, "used by the guest", "lw 2 lc rgb '#e69f00'" },
	{ 7, "host RSS", "lw 2 lc rgb '#d55e00'" },
	{ 9, "pinned for DMA", "lw 2 dt 3 lc rgb '#000000'" },
};

/* Steps: one x position per row that carries an event, labelled with it (a scripted run, where
 * the steps matter more than the milliseconds between them). Otherwise samples over time. */
static void write_script(FILE *p, const struct pvm_timeline *tl, const char *csv_path,
			 const char *svg_path, bool by_step)
{
	fprintf(p, "set terminal svg size 1100,600 dynamic background rgb 'white' font 'sans,11'\n"
		   "set output '%s'\n"
		   "set key outside right top noenhanced\n"
		   "set title 'pvmem run: guest memory' noenhanced\n"
		   "set ylabel 'MiB'\nset grid\nset yrange [0:*]\n", svg_path);
	if (by_step) {
		fprintf(p, "$steps << EOD\n");
		for (size_t i = 0; i < tl->n; i++) {
			const struct pvm_timeline_row *r = &tl->rows[i];
			char label[sizeof(r->event)];
			size_t j = 0;

			if (!r->event[0])
				continue;
			/* "  (settled)" becomes "settled"; quotes and backslashes cannot end the
			 * label early. */
			for (const char *c = r->event; *c && j + 1 < sizeof(label); c++)
				if (*c != '(' && *c != ')' && (*c != ' ' || j > 0))
					label[j++] = *c == '"' || *c == '\\' ? '?' : *c;
			label[j] = 0;
			/* The CSV's columns, the label in place of the time. */
			fprintf(p, "\"%s\" %.1f %.1f %.1f 0 %.1f %.1f 0 %.1f\n", label, mib(r->requested),
				mib(r->plugged), mib(r->balloon), mib(r->guest_used), mib(r->rss),
				mib(r->pinned));
		}
		fprintf(p, "EOD\nset xtics rotate by 45 right noenhanced font ',9'\n"
			   "set xlabel 'step (state when it was done)'\nset bmargin 8\n"
			   "set xrange [-0.5:*]\nplot ");
		for (size_t c = 0; c < sizeof(curves) / sizeof(curves[0]); c++)
			fprintf(p, "%s$steps using 0:%d%s with histeps %s title '%s'", c ? ", " : "",
				curves[c].col, c ? "" : ":xtic(1)", curves[c].style, curves[c].title);
	} else {
		fprintf(p, "set datafile separator ','\nset xlabel 'time (s)'\nplot ");
		for (size_t c = 0; c < sizeof(curves) / sizeof(curves[0]); c++)
			fprintf(p, "%s'%s' using 1:%d every ::1 with steps %s title '%s'", c ? ", " : "",
				c ? "" : csv_path, curves[c].col, curves[c].style, curves[c].title);
	}
	fprintf(p, "\n");
}

int pvm_timeline_plot(const struct pvm_timeline *tl, const char *csv_path, const char *svg_path,
		      struct pvm_error *err)
{
	struct sigaction ign = { .sa_handler = SIG_IGN }, old;
	size_t steps = 0;
	int pipefd[2], status;
	FILE *p;
	pid_t pid;

	if (!have_gnuplot())
		return pvm_error_set(err, -ENOENT, "gnuplot is not installed (apt-get install gnuplot-nox)");
	for (size_t i = 0; i < tl->n; i++)
		steps += tl->rows[i].event[0] != 0;
	if (pipe(pipefd) < 0)
		return pvm_error_set(err, -errno, "pipe: %s", strerror(errno));
	pid = fork();
	if (pid < 0) {
		close(pipefd[0]);
		close(pipefd[1]);
		return pvm_error_set(err, -errno, "fork: %s", strerror(errno));
	}
	if (pid == 0) {
		dup2(pipefd[0], 0);
		close(pipefd[0]);
		close(pipefd[1]);
		execlp("gnuplot", "gnuplot", (char *)NULL);
		_exit(127);
	}
	close(pipefd[0]);
	/* A gnuplot that dies early must not take this process with it (SIGPIPE). */
	sigaction(SIGPIPE, &ign, &old);
	p = fdopen(pipefd[1], "w");
	if (p) {
		write_script(p, tl, csv_path, svg_path, steps > 3);
		fclose(p);
	} else {
		close(pipefd[1]);
	}
	sigaction(SIGPIPE, &old, NULL);
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return pvm_error_set(err, -EIO, "gnuplot failed");
	return 0;
}

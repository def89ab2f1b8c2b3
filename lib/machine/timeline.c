/* SPDX-License-Identifier: MIT */
/* Timeline samples, CSV and the gnuplot SVG (see timeline.h). */
#include <errno.h>
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

		fprintf(f, "%.3f,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,%s%.1f,%.1f,%s\n", r->t, mib(r->requested),
			mib(r->plugged), mib(r->balloon), mib(r->guest_total), mib(r->guest_used),
			mib(r->rss), r->memlock == UINT64_MAX ? "inf" : "",
			r->memlock == UINT64_MAX ? 0.0 : mib(r->memlock), mib(r->pinned), r->event);
	}
	return ferror(f) ? -EIO : 0;
}

void pvm_timeline_print_table(const struct pvm_timeline *tl, FILE *f)
{
	fprintf(f, "%8s  %-26s %9s %9s %9s %9s %9s %9s %9s\n", "time", "step", "requested", "plugged",
		"balloon", "guest", "used", "host RSS", "pinned");
	for (size_t i = 0; i < tl->n; i++) {
		const struct pvm_timeline_row *r = &tl->rows[i];

		if (!r->event[0])
			continue;
		fprintf(f, "%7.2fs  %-26.26s %8.0fM %8.0fM %8.0fM %8.0fM %8.0fM %8.0fM %8.0fM\n", r->t,
			r->event, mib(r->requested), mib(r->plugged), mib(r->balloon), mib(r->guest_total),
			mib(r->guest_used), mib(r->rss), mib(r->pinned));
	}
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

int pvm_timeline_plot(const char *csv_path, const char *svg_path, struct pvm_error *err)
{
	char script[2048];
	int pipefd[2], status;
	pid_t pid;

	if (!have_gnuplot())
		return pvm_error_set(err, -ENOENT, "gnuplot is not installed (apt-get install gnuplot-nox)");
	snprintf(script, sizeof(script),
		 "set terminal svg size 1000,500 dynamic background rgb 'white'\n"
		 "set output '%s'\n"
		 "set datafile separator ','\n"
		 "set key autotitle columnhead outside right\n"
		 "set title 'pvmem run: guest memory over time'\n"
		 "set xlabel 'time (s)'\nset ylabel 'MiB'\nset grid\n"
		 "plot '%s' using 1:2 with steps lw 2, '' using 1:3 with steps lw 2, "
		 "'' using 1:4 with steps, '' using 1:6 with steps, '' using 1:7 with lines lw 2, "
		 "'' using 1:9 with steps\n",
		 svg_path, csv_path);
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
	if (write(pipefd[1], script, strlen(script)) < 0) {
		/* gnuplot died early: its status says why */
	}
	close(pipefd[1]);
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return pvm_error_set(err, -EIO, "gnuplot failed");
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * pvmem bench machine: resize the simulated guest from 1 GiB to 4 GiB of virtio-mem and back,
 * end to end — a QMP client sends `qom-set requested-size` over the machine's control socket,
 * the device raises a config interrupt, the model of Linux's virtio_mem driver sends its
 * requests over a split virtqueue in guest memory, the device plugs (memslots, discard
 * listeners, DMA space bookkeeping, preallocation) or unplugs (memslots, listeners, discard)
 * and answers, until the machine is idle — against the raw cost of the same memory work:
 * populating the same 3 GiB and discarding it again with pvm_mem_region_populate()/discard()
 * on a region made the same way.
 *
 * What makes the comparison fair:
 *  - both sides populate (MADV_POPULATE_WRITE, one thread) and discard (MADV_DONTNEED) the same
 *    bytes of anonymous memory made the same way (MAP_NORESERVE, 2 MiB aligned, no THP advice);
 *    the machine preallocates on plug so that a plug really allocates, as the raw side does;
 *  - the guest's workload touches nothing during the run: the guest only onlines the memory in
 *    its page allocator (bookkeeping), so neither side writes pages beyond populating them;
 *  - one round runs unmeasured first: memory the kernel hands out for the first time costs
 *    more to fault in (on a VM the hypervisor backs it then), and that must not land on
 *    whichever side happens to run first;
 *  - rounds alternate which side runs first, and the ratio is the median of the per-round
 *    ratios, so that a burst of load from other processes does not land on one side only.
 * Ratio "resize_vs_raw" = end-to-end time / raw time; target <= 1.5.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <pvmem/control.h>
#include <pvmem/machine.h>
#include <pvmem/mem.h>

#include "bench.h"

#ifdef PVM_HAVE_SIM
#include "../src/sim/sim.h"

#define MAX_ROUNDS 9

static const char bench_xml[] =
	"<domain type='kvm'><name>bench</name><memory unit='GiB'>5</memory>"
	"<devices><memory model='virtio-mem'><target><size unit='GiB'>4</size><node>0</node>"
	"<block unit='MiB'>2</block><requested unit='GiB'>1</requested></target>"
	"<alias name='vmem0'/></memory></devices></domain>";

/* A minimal QMP client on the machine's control socket, served by the same thread. */
struct qmp_client {
	struct pvm_machine *m;   /* the machine whose loop serves the socket */
	int fd;                  /* connected socket, non-blocking */
	char buf[65536];         /* received bytes not yet consumed */
	size_t len;              /* bytes in buf */
};

/* Run the machine's loop until a line containing @want arrives; lines before it (events) are
 * dropped. -EPROTO on a QMP error, -ETIMEDOUT after 10 s. */
static int qmp_wait(struct qmp_client *q, const char *want)
{
	uint64_t end = pvm_machine_now_ms(q->m) + 10000;

	while (pvm_machine_now_ms(q->m) < end) {
		char *nl;
		ssize_t n;

		while ((nl = memchr(q->buf, '\n', q->len)) != NULL) {
			size_t line = (size_t)(nl - q->buf) + 1;
			bool err = memmem(q->buf, line, "\"error\"", 7) != NULL;
			bool hit = memmem(q->buf, line, want, strlen(want)) != NULL;

			memmove(q->buf, q->buf + line, q->len - line);
			q->len -= line;
			if (err)
				return -EPROTO;
			if (hit)
				return 0;
		}
		n = recv(q->fd, q->buf + q->len, sizeof(q->buf) - q->len, MSG_DONTWAIT);
		if (n == 0)
			return -ECONNRESET;
		if (n > 0) {
			q->len += (size_t)n;
			if (q->len == sizeof(q->buf))
				q->len = 0; /* a line this long is not ours: drop it */
			continue;
		}
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			return -errno;
		if (pvm_machine_run_once(q->m, 10))
			return -EIO;
	}
	return -ETIMEDOUT;
}

static int qmp_cmd(struct qmp_client *q, const char *json)
{
	size_t len = strlen(json);

	if (send(q->fd, json, len, MSG_NOSIGNAL) != (ssize_t)len)
		return -errno;
	return qmp_wait(q, "\"return\"");
}

static int qmp_connect(struct qmp_client *q, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	q->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (q->fd < 0 || connect(q->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -errno;
	if (qmp_wait(q, "\"QMP\""))
		return -EPROTO;
	return qmp_cmd(q, "{\"execute\": \"qmp_capabilities\"}\n");
}

/* The end-to-end resize: the QMP command, its answer, then until the machine is idle. */
static int resize(struct qmp_client *q, uint64_t size)
{
	char cmd[256];
	int rc;

	snprintf(cmd, sizeof(cmd),
		 "{\"execute\": \"qom-set\", \"arguments\": {\"path\": \"/machine/peripheral/vmem0\", "
		 "\"property\": \"requested-size\", \"value\": %llu}}\n", (unsigned long long)size);
	rc = qmp_cmd(q, cmd);
	return rc ? rc : pvm_machine_settle(q->m, 120000);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(const double *v, unsigned n)
{
	double s[MAX_ROUNDS];

	memcpy(s, v, n * sizeof(*s));
	qsort(s, n, sizeof(*s), cmp_double);
	return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/* One measured round of each side; @raw_first alternates the order. */
static int one_round(struct qmp_client *q, struct pvm_mem_region *raw, uint64_t lo, uint64_t hi,
		     bool raw_first, double t[4])
{
	uint64_t delta = hi - lo;
	int rc = 0;

	for (int side = 0; side < 2 && !rc; side++) {
		double t0 = pvm_bench_now(), t1;

		if ((side == 0) == raw_first) {
			rc = pvm_mem_region_populate(raw, 0, delta, NULL, NULL);
			t1 = pvm_bench_now();
			if (!rc)
				rc = pvm_mem_region_discard(raw, 0, delta, NULL);
			t[2] = t1 - t0;
			t[3] = pvm_bench_now() - t1;
		} else {
			rc = resize(q, hi);
			t1 = pvm_bench_now();
			if (!rc)
				rc = resize(q, lo);
			t[0] = t1 - t0;
			t[1] = pvm_bench_now() - t1;
		}
	}
	return rc;
}

/* A machine with the simulated guest and a QMP client on its control socket. */
struct rig {
	struct pvm_domain *dom;          /* the bench domain */
	struct pvm_sim_guest *g;         /* the guest */
	struct pvm_control *ctl;         /* the control socket */
	struct qmp_client q;             /* the client (q.m is the machine) */
	char dir[32];                    /* private directory of the socket */
};

static void rig_free(struct rig *x)
{
	char path[64];

	if (x->q.fd >= 0)
		close(x->q.fd);
	pvm_control_free(x->ctl);
	pvm_sim_guest_free(x->g);
	pvm_machine_free(x->q.m);
	pvm_domain_free(x->dom);
	if (x->dir[0]) {
		snprintf(path, sizeof(path), "%s/qmp.sock", x->dir);
		(void)unlink(path);
		(void)rmdir(x->dir);
	}
}

static int rig_new(struct rig *x, bool prealloc)
{
	struct pvm_machine_opts mo = { .no_memlock = true, .prealloc = prealloc };
	char spec[64];
	int rc;

	memset(x, 0, sizeof(*x));
	x->q.fd = -1;
	snprintf(x->dir, sizeof(x->dir), "/tmp/pvmem-bench-XXXXXX");
	if (!mkdtemp(x->dir)) {
		x->dir[0] = 0;
		return -errno;
	}
	snprintf(spec, sizeof(spec), "unix:%s/qmp.sock", x->dir);
	rc = pvm_domain_parse_memory(bench_xml, sizeof(bench_xml) - 1, PVM_DOMAIN_PARSE_NO_HOST, &x->dom, NULL);
	if (!rc)
		rc = pvm_machine_new(x->dom, &mo, &x->q.m, NULL);
	if (!rc)
		rc = pvm_sim_guest_new(x->q.m, NULL, &x->g, NULL);
	if (!rc)
		rc = pvm_machine_settle(x->q.m, 60000);
	if (!rc)
		rc = pvm_control_new(x->q.m, spec, &x->ctl, NULL);
	if (!rc)
		rc = qmp_connect(&x->q, spec + 5);
	return rc;
}
#endif

int pvm_bench_machine(const struct pvm_bench_opts *opts, struct pvm_bench_report *r)
{
#ifdef PVM_HAVE_SIM
	uint64_t lo = 1ULL << 30, hi = opts->quick ? 2ULL << 30 : 4ULL << 30;
	struct pvm_mem_region_config rc_cfg = { .name = "raw", .backend = PVM_MEM_BACKEND_ANON,
						.size = hi - lo, .noreserve = true };
	struct pvm_mem_region *raw = NULL;
	struct rig x = { .q.fd = -1 }, y = { .q.fd = -1 };
	double grow[MAX_ROUNDS], shrink[MAX_ROUNDS], pop[MAX_ROUNDS], disc[MAX_ROUNDS];
	double ratio[MAX_ROUNDS], mach[MAX_ROUNDS];
	unsigned rounds = opts->quick ? 1 : 5;
	uint64_t req0 = 0;
	int rc;

	rc = rig_new(&x, true);
	if (!rc)
		rc = pvm_mem_region_new(&rc_cfg, &raw, NULL);
	/* One round unmeasured: the first touch of memory the kernel has not handed out before
	 * costs more (on a VM, the hypervisor backs it then), whichever side comes first. */
	if (!rc) {
		double t[4];

		rc = one_round(&x.q, raw, lo, hi, false, t);
	}
	if (!rc)
		req0 = pvm_sim_guest_vmem_requests(x.g);
	for (unsigned i = 0; !rc && i < rounds; i++) {
		double t[4] = { 0 };

		rc = one_round(&x.q, raw, lo, hi, i % 2 == 1, t);
		grow[i] = t[0];
		shrink[i] = t[1];
		pop[i] = t[2];
		disc[i] = t[3];
		ratio[i] = (t[0] + t[1]) / (t[2] + t[3]);
	}
	if (!rc) {
		pvm_bench_raw(r, "resize_1g_4g_1g_s", median(grow, rounds) + median(shrink, rounds));
		pvm_bench_raw(r, "grow_s", median(grow, rounds));
		pvm_bench_raw(r, "shrink_s", median(shrink, rounds));
		pvm_bench_raw(r, "raw_populate_discard_s", median(pop, rounds) + median(disc, rounds));
		pvm_bench_raw(r, "raw_populate_s", median(pop, rounds));
		pvm_bench_raw(r, "raw_discard_s", median(disc, rounds));
		pvm_bench_raw(r, "guest_requests_per_round",
			      (double)(pvm_sim_guest_vmem_requests(x.g) - req0) / rounds);
		pvm_bench_ratio(r, "resize_vs_raw", median(ratio, rounds), "<=", 1.5);
	}
	rig_free(&x);
	pvm_mem_region_free(raw);
	/* The machinery alone: the same resizes without preallocation (no memory work). */
	if (!rc)
		rc = rig_new(&y, false);
	for (unsigned i = 0; !rc && i < rounds; i++) {
		double t0 = pvm_bench_now();

		rc = resize(&y.q, hi);
		if (!rc)
			rc = resize(&y.q, lo);
		mach[i] = pvm_bench_now() - t0;
	}
	if (!rc) {
		pvm_bench_raw(r, "machinery_s", median(mach, rounds));
		pvm_bench_note(r, "end to end: QMP qom-set on the control socket -> guest driver model -> "
				  "virtqueue -> virtio-mem (preallocating) -> idle; median of %u round%s", rounds,
			       rounds == 1 ? "" : "s");
		pvm_bench_note(r, "baseline: populate + discard of the same bytes on a region made the same "
				  "way; the guest touches nothing, so neither side writes beyond populating");
		pvm_bench_note(r, "machinery_s: the same resizes without preallocation, i.e. everything "
				  "but the memory work");
	}
	if (y.q.m || y.dir[0])
		rig_free(&y);
	return rc;
#else
	(void)opts;
	(void)r;
	return -95; /* -EOPNOTSUPP: built without the simulated guest */
#endif
}

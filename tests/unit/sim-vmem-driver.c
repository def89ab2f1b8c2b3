/* SPDX-License-Identifier: MIT */
/*
 * The Linux virtio_mem driver model against the real guest: for every shared trace, the model
 * must send exactly the requests Linux 6.1 sent (same type, address, block count, same order)
 * when it is given the same host steps, with a fake device that answers what QEMU answered.
 * Plus retry behaviour on NACK / BUSY / ERROR and busy guest memory.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test-util.h"
#include "../../src/sim/vmem-driver.h"

/* ---- a device that answers from the trace ---------------------------------------------- */

struct tdev {
	struct pvm_sim_vmem_config cfg;  /* what the driver reads */
	FILE *f;                         /* the trace */
	unsigned line;                   /* current line number */
	char pending[256];               /* the next request line of the trace, "" = none */
	uint64_t given, taken;           /* guest memory onlined / offlined, bytes */
	int busy_take;                   /* take() answers -EBUSY this many times */
};

static int t_read_config(void *opaque, struct pvm_sim_vmem_config *cfg)
{
	*cfg = ((struct tdev *)opaque)->cfg;
	return 0;
}

static void t_give(void *opaque, uint64_t addr, uint64_t size)
{
	((struct tdev *)opaque)->given += size;
}

static int t_take(void *opaque, uint64_t addr, uint64_t size)
{
	struct tdev *t = opaque;

	if (t->busy_take > 0) {
		t->busy_take--;
		return -EBUSY;
	}
	t->taken += size;
	return 0;
}

static const struct pvm_sim_vmem_ops tops = { t_read_config, t_give, t_take };

static uint16_t resp_of(const char *word)
{
	if (!strcmp(word, "ack"))
		return PVM_SIM_VMEM_ACK;
	if (!strcmp(word, "nack"))
		return PVM_SIM_VMEM_NACK;
	if (!strcmp(word, "busy"))
		return PVM_SIM_VMEM_BUSY;
	return PVM_SIM_VMEM_ERROR;
}

/* Run the driver until idle, matching each request with the trace's next request line. */
static void drain(struct pvm_sim_vmem *d, struct tdev *t, char lines[][256], size_t *pos, size_t n,
		  const char *name)
{
	struct pvm_sim_vmem_req req;
	enum pvm_sim_vmem_status st;
	unsigned guard = 0;

	while ((st = pvm_sim_vmem_step(d, 0, &req)) == PVM_SIM_VMEM_SEND) {
		char type[16], resp[16];
		unsigned long long a = 0;
		unsigned nb = 0;
		const char *l;

		assert_true(++guard < 100000);
		/* skip state lines up to the next request */
		while (*pos < n && strncmp(lines[*pos], "plug ", 5) && strncmp(lines[*pos], "unplug", 6)) {
			if (!strncmp(lines[*pos], "usable ", 7))
				t->cfg.usable_region_size = strtoull(lines[*pos] + 7, NULL, 0);
			if (!strncmp(lines[*pos], "host ", 5) || !strncmp(lines[*pos], "guest ", 6) ||
			    !strncmp(lines[*pos], "final", 5))
				fail_msg("%s: model sent %s 0x%llx %u but Linux sent nothing more in this step (%s)",
					 name, req.type == 0 ? "plug" : req.type == 1 ? "unplug" : "unplug_all",
					 (unsigned long long)req.addr, req.nb_blocks, lines[*pos]);
			(*pos)++;
		}
		assert_true(*pos < n);
		l = lines[(*pos)++];
		if (!strncmp(l, "unplug_all", 10)) {
			assert_int_equal(req.type, PVM_SIM_VMEM_UNPLUG_ALL);
			sscanf(l, "unplug_all -> %15s", resp);
		} else {
			assert_int_equal(sscanf(l, "%15s %llx %u -> %15s", type, &a, &nb, resp), 4);
			if (req.type != (!strcmp(type, "plug") ? PVM_SIM_VMEM_PLUG : PVM_SIM_VMEM_UNPLUG) ||
			    req.addr != a || req.nb_blocks != nb)
				fail_msg("%s: model sent %s 0x%llx %u, Linux sent '%s'", name,
					 req.type == 0 ? "plug" : "unplug", (unsigned long long)req.addr,
					 req.nb_blocks, l);
		}
		if (resp_of(resp) == PVM_SIM_VMEM_ACK) {
			uint64_t sz = (uint64_t)nb * t->cfg.block_size;

			if (req.type == PVM_SIM_VMEM_PLUG)
				t->cfg.plugged_size += sz;
			else if (req.type == PVM_SIM_VMEM_UNPLUG)
				t->cfg.plugged_size -= sz;
			else
				t->cfg.plugged_size = 0;
		}
		pvm_sim_vmem_complete(d, resp_of(resp));
	}
	assert_true(st == PVM_SIM_VMEM_IDLE);
}

static void replay_trace(const char *file)
{
	char path[512], (*lines)[256] = calloc(4096, 256);
	struct pvm_sim_vmem *d = NULL;
	struct tdev t = { 0 };
	size_t n = 0, pos = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/traces/virtio-mem/%s", PVM_SHARED_DIR, file);
	f = fopen(path, "r");
	if (!f) {
		free(lines);
		skip();
	}
	while (n < 4096 && fgets(lines[n], 256, f)) {
		lines[n][strcspn(lines[n], "\n")] = '\0';
		if (lines[n][0] && lines[n][0] != '#')
			n++;
	}
	fclose(f);
	struct pvm_sim_vmem_opts opts = { .force_bbm = strstr(file, "bbm") != NULL };
	while (pos < n) {
		const char *l = lines[pos];
		unsigned long long a, r, b, nd, req, p;

		if (sscanf(l, "config addr=%llx region_size=%llx block_size=%llx node=%llu requested_size=%llx",
			   &a, &r, &b, &nd, &req) == 5) {
			t.cfg = (struct pvm_sim_vmem_config){ .addr = a, .region_size = r, .block_size = b,
							      .requested_size = req };
			pos++;
			/* usable lines before the first request */
			while (pos < n && !strncmp(lines[pos], "usable", 6)) {
				t.cfg.usable_region_size = strtoull(lines[pos] + 7, NULL, 0);
				pos++;
				while (pos < n && !strcmp(lines[pos], "unplugged_all"))
					pos++;
			}
			assert_int_equal(pvm_sim_vmem_new(&opts, &tops, &t, &d), 0);
			assert_int_equal(pvm_sim_vmem_in_sbm(d), !opts.force_bbm);
			drain(d, &t, lines, &pos, n, file);
		} else if (sscanf(l, "host requested_size %llx", &req) == 1) {
			t.cfg.requested_size = req;
			pos++;
			while (pos < n && !strncmp(lines[pos], "usable", 6))
				t.cfg.usable_region_size = strtoull(lines[pos++] + 7, NULL, 0);
			pvm_sim_vmem_config_changed(d);
			drain(d, &t, lines, &pos, n, file);
		} else if (!strcmp(l, "host reset")) {
			/* System reset: the device drops everything, the guest reboots and re-probes. */
			t.cfg.plugged_size = 0;
			t.given = t.taken = 0; /* the rebooted guest starts with no hot-plugged memory */
			pvm_sim_vmem_free(d);
			pos++;
			while (pos < n && (!strncmp(lines[pos], "usable", 6) || !strcmp(lines[pos], "unplugged_all"))) {
				if (!strncmp(lines[pos], "usable", 6))
					t.cfg.usable_region_size = strtoull(lines[pos] + 7, NULL, 0);
				pos++;
			}
			assert_int_equal(pvm_sim_vmem_new(&opts, &tops, &t, &d), 0);
			drain(d, &t, lines, &pos, n, file);
		} else if (sscanf(l, "final size %llx requested_size %llx", &p, &req) == 2) {
			assert_int_equal(pvm_sim_vmem_plugged(d), p);
			assert_int_equal(t.cfg.plugged_size, p);
			assert_int_equal(pvm_sim_vmem_requested(d), req);
			pos++;
		} else if (!strncmp(l, "plug ", 5) || !strncmp(l, "unplug", 6)) {
			fail_msg("%s: Linux sent '%s' but the model was idle", file, l);
		} else {
			pos++;
		}
	}
	assert_int_equal(t.given - t.taken, pvm_sim_vmem_plugged(d));
	pvm_sim_vmem_free(d);
	free(lines);
}

static void test_trace_grow_shrink(void **state)
{
	replay_trace("sbm-2m-grow-shrink.trace");
}

static void test_trace_reset(void **state)
{
	replay_trace("sbm-reset.trace");
}

static void test_trace_bbm(void **state)
{
	replay_trace("bbm-forced-2m.trace");
}

static void test_trace_balloon(void **state)
{
	replay_trace("sbm-balloon.trace");
}

/* ---- responses and retries -------------------------------------------------------------- */

static struct tdev simple_dev(void)
{
	return (struct tdev){ .cfg = { .block_size = 2 << 20, .addr = 4ULL << 30, .region_size = 1ULL << 30,
				       .usable_region_size = 1ULL << 30, .requested_size = 256 << 20 } };
}

static void test_nack_retries_at_once(void **state)
{
	struct tdev t = simple_dev();
	struct pvm_sim_vmem *d;
	struct pvm_sim_vmem_req r1, r2;

	assert_int_equal(pvm_sim_vmem_new(NULL, &tops, &t, &d), 0);
	assert_int_equal(pvm_sim_vmem_step(d, 0, &r1), PVM_SIM_VMEM_SEND);
	assert_int_equal(pvm_sim_vmem_step(d, 0, &r2), PVM_SIM_VMEM_WAIT);
	pvm_sim_vmem_complete(d, PVM_SIM_VMEM_NACK);
	/* -EAGAIN: the same request again, no timer */
	assert_int_equal(pvm_sim_vmem_step(d, 0, &r2), PVM_SIM_VMEM_SEND);
	assert_memory_equal(&r1, &r2, sizeof(r1));
	pvm_sim_vmem_complete(d, PVM_SIM_VMEM_ACK);
	assert_int_equal(pvm_sim_vmem_plugged(d), 128 << 20);
	pvm_sim_vmem_free(d);
}

static void test_busy_arms_timer(void **state)
{
	struct tdev t = simple_dev();
	struct pvm_sim_vmem_opts o = { .ms_per_guest_second = 10 };
	struct pvm_sim_vmem *d;
	struct pvm_sim_vmem_req r;

	assert_int_equal(pvm_sim_vmem_new(&o, &tops, &t, &d), 0);
	assert_int_equal(pvm_sim_vmem_step(d, 1000, &r), PVM_SIM_VMEM_SEND);
	pvm_sim_vmem_complete(d, PVM_SIM_VMEM_BUSY);
	assert_int_equal(pvm_sim_vmem_step(d, 1000, &r), PVM_SIM_VMEM_TIMER);
	assert_int_equal(pvm_sim_vmem_deadline(d), 1000 + 50 * 10);
	assert_int_equal(pvm_sim_vmem_step(d, 1499, &r), PVM_SIM_VMEM_TIMER);
	assert_int_equal(pvm_sim_vmem_step(d, 1500, &r), PVM_SIM_VMEM_SEND);
	pvm_sim_vmem_complete(d, PVM_SIM_VMEM_BUSY);
	/* doubled: 100 s */
	assert_int_equal(pvm_sim_vmem_step(d, 1500, &r), PVM_SIM_VMEM_TIMER);
	assert_int_equal(pvm_sim_vmem_deadline(d), 1500 + 100 * 10);
	/* a config change runs the work at once */
	pvm_sim_vmem_config_changed(d);
	assert_int_equal(pvm_sim_vmem_step(d, 1600, &r), PVM_SIM_VMEM_SEND);
	pvm_sim_vmem_free(d);
}

static void test_error_breaks(void **state)
{
	struct tdev t = simple_dev();
	struct pvm_sim_vmem *d;
	struct pvm_sim_vmem_req r;

	assert_int_equal(pvm_sim_vmem_new(NULL, &tops, &t, &d), 0);
	assert_int_equal(pvm_sim_vmem_step(d, 0, &r), PVM_SIM_VMEM_SEND);
	pvm_sim_vmem_complete(d, PVM_SIM_VMEM_ERROR);
	assert_int_equal(pvm_sim_vmem_step(d, 0, &r), PVM_SIM_VMEM_BROKEN);
	pvm_sim_vmem_config_changed(d);
	assert_int_equal(pvm_sim_vmem_step(d, 0, &r), PVM_SIM_VMEM_BROKEN);
	pvm_sim_vmem_free(d);
}

static void test_unplug_all_at_probe(void **state)
{
	struct tdev t = simple_dev();
	struct pvm_sim_vmem *d;
	struct pvm_sim_vmem_req r;

	t.cfg.plugged_size = 64 << 20;
	t.cfg.requested_size = 0;
	assert_int_equal(pvm_sim_vmem_new(NULL, &tops, &t, &d), 0);
	assert_int_equal(pvm_sim_vmem_step(d, 0, &r), PVM_SIM_VMEM_SEND);
	assert_int_equal(r.type, PVM_SIM_VMEM_UNPLUG_ALL);
	t.cfg.plugged_size = 0;
	pvm_sim_vmem_complete(d, PVM_SIM_VMEM_ACK);
	assert_int_equal(pvm_sim_vmem_step(d, 0, &r), PVM_SIM_VMEM_IDLE);
	assert_int_equal(pvm_sim_vmem_plugged(d), 0);
	pvm_sim_vmem_free(d);
}

/* Busy memory: sub-blocks that cannot be freed are skipped, the rest unplugged, then -EBUSY
 * arms the timer. */
static void test_busy_memory_skipped(void **state)
{
	struct tdev t = simple_dev();
	struct pvm_sim_vmem *d;
	struct pvm_sim_vmem_req r;
	unsigned sent = 0;

	t.cfg.requested_size = 128 << 20;
	assert_int_equal(pvm_sim_vmem_new(NULL, &tops, &t, &d), 0);
	assert_int_equal(pvm_sim_vmem_step(d, 0, &r), PVM_SIM_VMEM_SEND);
	assert_int_equal(r.nb_blocks, 64);
	t.cfg.plugged_size = 128 << 20;
	pvm_sim_vmem_complete(d, PVM_SIM_VMEM_ACK);
	assert_int_equal(pvm_sim_vmem_step(d, 0, &r), PVM_SIM_VMEM_IDLE);
	/* shrink by 4 MiB with the top sub-block busy: whole block not wanted; 0x...7e busy */
	t.cfg.requested_size = 124 << 20;
	t.busy_take = 1;
	pvm_sim_vmem_config_changed(d);
	while (pvm_sim_vmem_step(d, 0, &r) == PVM_SIM_VMEM_SEND) {
		assert_int_equal(r.type, PVM_SIM_VMEM_UNPLUG);
		assert_int_equal(r.nb_blocks, 1);
		assert_true(r.addr == (4ULL << 30) + (124 << 20) || r.addr == (4ULL << 30) + (122 << 20));
		pvm_sim_vmem_complete(d, PVM_SIM_VMEM_ACK);
		sent++;
	}
	assert_int_equal(sent, 2);
	assert_int_equal(pvm_sim_vmem_plugged(d), 124 << 20);
	pvm_sim_vmem_free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_trace_grow_shrink),
		cmocka_unit_test(test_trace_reset),
		cmocka_unit_test(test_trace_bbm),
		cmocka_unit_test(test_trace_balloon),
		cmocka_unit_test(test_nack_retries_at_once),
		cmocka_unit_test(test_busy_arms_timer),
		cmocka_unit_test(test_error_breaks),
		cmocka_unit_test(test_unplug_all_at_probe),
		cmocka_unit_test(test_busy_memory_skipped),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

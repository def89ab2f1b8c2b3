/* SPDX-License-Identifier: MIT */
/*
 * pvmem bench machine: resize the simulated guest from 1 GiB to 4 GiB of virtio-mem and back,
 * end to end through the machine API (requested size -> config interrupt -> the Linux driver
 * model -> split virtqueue -> virtio-mem device -> populate/discard, memslots, DMA listeners),
 * against the raw cost of the same memory work: populating 3 GiB and discarding it again with
 * pvm_mem_region_populate()/discard() on a region of the same size.
 * Ratio "resize_vs_raw" = end-to-end time / raw time; target <= 1.5. The machine's device
 * populates on plug (prealloc) so that both sides do the same memory work.
 */
#include <stdio.h>
#include <string.h>

#include <pvmem/machine.h>
#include <pvmem/mem.h>

#include "bench.h"

#ifdef PVM_HAVE_SIM
#include "../src/sim/sim.h"

static const char bench_xml[] =
	"<domain type='kvm'><name>bench</name><memory unit='GiB'>5</memory>"
	"<devices><memory model='virtio-mem'><target><size unit='GiB'>4</size><node>0</node>"
	"<block unit='MiB'>2</block><requested unit='GiB'>1</requested></target>"
	"<alias name='vmem0'/></memory></devices></domain>";

static int resize(struct pvm_machine *m, uint64_t size)
{
	int rc = pvm_machine_set_requested_size(m, "vmem0", size, NULL);

	return rc ? rc : pvm_machine_settle(m, 120000);
}
#endif

int pvm_bench_machine(const struct pvm_bench_opts *opts, struct pvm_bench_report *r)
{
#ifdef PVM_HAVE_SIM
	uint64_t lo = 1ULL << 30, hi = opts->quick ? 2ULL << 30 : 4ULL << 30, delta = hi - lo;
	struct pvm_machine_opts mo = { .no_memlock = true, .prealloc = true };
	struct pvm_mem_region_config rc_cfg = { .name = "raw", .backend = PVM_MEM_BACKEND_ANON,
						.size = delta, .noreserve = true };
	struct pvm_domain *dom = NULL;
	struct pvm_machine *m = NULL;
	struct pvm_sim_guest *g = NULL;
	struct pvm_mem_region *raw = NULL;
	double t0, t1, e2e = 0, base = 0, grow = 0, shrink = 0, pop = 0, disc = 0;
	unsigned rounds = opts->quick ? 1 : 3;
	int rc;

	rc = pvm_domain_parse_memory(bench_xml, sizeof(bench_xml) - 1, PVM_DOMAIN_PARSE_NO_HOST, &dom, NULL);
	if (!rc)
		rc = pvm_machine_new(dom, &mo, &m, NULL);
	if (!rc)
		rc = pvm_sim_guest_new(m, NULL, &g, NULL);
	if (!rc)
		rc = pvm_machine_settle(m, 60000);
	if (!rc)
		rc = pvm_mem_region_new(&rc_cfg, &raw, NULL);
	for (unsigned i = 0; !rc && i < rounds; i++) {
		t0 = pvm_bench_now();
		rc = resize(m, hi);
		t1 = pvm_bench_now();
		if (!rc)
			rc = resize(m, lo);
		grow += t1 - t0;
		shrink += pvm_bench_now() - t1;
		e2e += pvm_bench_now() - t0;
		t0 = pvm_bench_now();
		if (!rc)
			rc = pvm_mem_region_populate(raw, 0, delta, NULL, NULL);
		t1 = pvm_bench_now();
		if (!rc)
			rc = pvm_mem_region_discard(raw, 0, delta, NULL);
		pop += t1 - t0;
		disc += pvm_bench_now() - t1;
		base += pvm_bench_now() - t0;
	}
	if (!rc) {
		pvm_bench_raw(r, "resize_1g_4g_1g_s", e2e / rounds);
		pvm_bench_raw(r, "raw_populate_discard_s", base / rounds);
		pvm_bench_raw(r, "grow_s", grow / rounds);
		pvm_bench_raw(r, "shrink_s", shrink / rounds);
		pvm_bench_raw(r, "raw_populate_s", pop / rounds);
		pvm_bench_raw(r, "raw_discard_s", disc / rounds);
		pvm_bench_raw(r, "guest_requests", (double)pvm_sim_guest_vmem_requests(g));
		pvm_bench_ratio(r, "resize_vs_raw", e2e / base, "<=", 1.5);
		pvm_bench_note(r, "end to end through the machine API (the QMP path is the control socket's)");
	}
	pvm_mem_region_free(raw);
	pvm_sim_guest_free(g);
	pvm_machine_free(m);
	pvm_domain_free(dom);
	return rc;
#else
	(void)opts;
	(void)r;
	return -95; /* -EOPNOTSUPP: built without the simulated guest */
#endif
}

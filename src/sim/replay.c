/* SPDX-License-Identifier: MIT */
/*
 * `pvmem replay --simulate TRACE`: the real guest's host steps (requested size, reset, balloon)
 * are applied to a machine running the simulated guest; after each step settles, the device's
 * plugged size must equal what the real guest reached (the sum of the acknowledged requests up
 * to the trace's `guest memtotal` line), the change of the simulated guest's MemTotal must equal
 * the real guest's (within 64 KiB: the real kernel's reserved memory varies across boots), and
 * the `final` line must hold.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <pvmem/machine.h>

#include "core/util.h"
#include "virtio/mem-trace.h"

#include "sim.h"

#define BOOT_RAM (1ULL << 30)
#define MEMTOTAL_SLACK (64ULL << 10)

static int make_machine(const struct pvm_vtrace_event *c, struct pvm_machine **m, struct pvm_error *err)
{
	char xml[2048];
	struct pvm_domain *dom = NULL;
	struct pvm_machine_opts o = { .no_memlock = true };
	int rc;

	snprintf(xml, sizeof(xml),
		 "<domain type='kvm'><name>replay</name>"
		 "<memory unit='b'>%llu</memory>"
		 "<devices><memory model='virtio-mem'><target>"
		 "<size unit='b'>%llu</size><node>%u</node><block unit='b'>%llu</block>"
		 "<requested unit='b'>%llu</requested><address base='0x%llx'/></target>"
		 "<alias name='vmem0'/></memory>"
		 "<memballoon model='virtio'><alias name='balloon0'/></memballoon></devices></domain>",
		 (unsigned long long)(BOOT_RAM + c->region_size), (unsigned long long)c->region_size,
		 c->node, (unsigned long long)c->block_size, (unsigned long long)c->requested_size,
		 (unsigned long long)c->addr);
	rc = pvm_domain_parse_memory(xml, strlen(xml), PVM_DOMAIN_PARSE_NO_HOST, &dom, err);
	if (!rc)
		rc = pvm_machine_new(dom, &o, m, err);
	pvm_domain_free(dom);
	return rc;
}

static uint64_t plugged_of(struct pvm_machine *m)
{
	struct pvm_machine_memdev_info mi;

	return pvm_machine_memdev_info(m, 0, &mi) ? 0 : mi.plugged_size;
}

int pvm_sim_replay_file(const char *path, bool check, FILE *out)
{
	struct pvm_vtrace *t = NULL;
	struct pvm_machine *m = NULL;
	struct pvm_sim_guest *g = NULL;
	struct pvm_sim_guest_opts go = { .force_bbm = strstr(path, "bbm") != NULL, .ms_per_guest_second = 1 };
	struct pvm_error err = { 0 };
	uint64_t expect = 0, base_real = 0, base_sim = 0, total, used;
	bool have_base = false;
	unsigned checks = 0, failures = 0;
	int rc = pvm_vtrace_load(path, &t, &err);

	if (rc) {
		fprintf(out, "%s: %s\n", path, pvm_error_message(&err));
		return rc;
	}
	if (!t->n || t->ev[0].kind != PVM_VTRACE_CONFIG) {
		fprintf(out, "%s: no config line\n", path);
		pvm_vtrace_free(t);
		return -EINVAL;
	}
	rc = make_machine(&t->ev[0], &m, &err);
	if (!rc)
		rc = pvm_sim_guest_new(m, &go, &g, &err);
	if (!rc)
		rc = pvm_machine_settle(m, 60000);
	if (rc) {
		fprintf(out, "%s: %s\n", path, err.code ? pvm_error_message(&err) : strerror(-rc));
		goto out;
	}
	for (size_t i = 1; i < t->n; i++) {
		const struct pvm_vtrace_event *e = &t->ev[i];

		pvm_error_clear(&err);
		switch (e->kind) {
		case PVM_VTRACE_HOST_REQUESTED:
			rc = pvm_machine_set_requested_size(m, "vmem0", e->value, &err);
			break;
		case PVM_VTRACE_HOST_RESET:
			rc = pvm_machine_system_reset(m, &err);
			break;
		case PVM_VTRACE_HOST_BALLOON:
			rc = pvm_machine_set_balloon_target(m, e->value, &err);
			break;
		case PVM_VTRACE_REQUEST:
			if (e->resp == 0) {
				uint64_t sz = (uint64_t)e->nb_blocks * t->ev[0].block_size;

				if (e->req_type == 0)
					expect += sz;
				else if (e->req_type == 1)
					expect -= PVM_MIN(sz, expect);
				else if (e->req_type == 2)
					expect = 0;
			}
			continue;
		case PVM_VTRACE_UNPLUGGED_ALL:
			expect = 0;
			continue;
		case PVM_VTRACE_GUEST_MEMTOTAL: {
			uint64_t got = plugged_of(m);
			bool ok = got == expect, mt_ok = true;

			pvm_sim_guest_memory(g, &total, &used);
			if (!have_base) {
				base_real = e->value * 1024;
				base_sim = total;
				have_base = true;
			} else {
				int64_t dr = (int64_t)(e->value * 1024 - base_real), ds = (int64_t)(total - base_sim);

				mt_ok = (uint64_t)(dr > ds ? dr - ds : ds - dr) <= MEMTOTAL_SLACK;
			}
			checks++;
			if (!ok || !mt_ok)
				failures++;
			else if (check)
				continue; /* --check prints mismatches only */
			fprintf(out, "%s:%u: plugged 0x%llx (real guest 0x%llx), MemTotal %+lld KiB (real %+lld KiB): %s\n",
				path, e->line, (unsigned long long)got, (unsigned long long)expect,
				(long long)(total - base_sim) / 1024, (long long)(e->value * 1024 - base_real) / 1024,
				ok && mt_ok ? "ok" : "MISMATCH");
			continue;
		}
		case PVM_VTRACE_FINAL: {
			struct pvm_machine_memdev_info mi;
			bool ok = !pvm_machine_memdev_info(m, 0, &mi) && mi.plugged_size == e->value &&
				  mi.requested_size == e->value2;

			checks++;
			failures += !ok;
			if (ok && check)
				continue;
			fprintf(out, "%s:%u: final size 0x%llx requested 0x%llx: %s\n", path, e->line,
				(unsigned long long)mi.plugged_size, (unsigned long long)mi.requested_size,
				ok ? "ok" : "MISMATCH");
			continue;
		}
		default:
			continue;
		}
		if (rc) {
			fprintf(out, "%s:%u: %s\n", path, e->line, pvm_error_message(&err));
			failures++;
			continue;
		}
		rc = pvm_machine_settle(m, 60000);
		if (rc) {
			fprintf(out, "%s:%u: the guest did not settle (%s)\n", path, e->line, strerror(-rc));
			failures++;
		}
	}
	fprintf(out, "%s: %u checks, %u failed (%llu requests from the simulated guest)\n", path, checks,
		failures, (unsigned long long)pvm_sim_guest_vmem_requests(g));
	rc = failures ? 1 : 0; /* as `pvmem replay` without --simulate */
out:
	pvm_sim_guest_free(g);
	pvm_machine_free(m);
	pvm_vtrace_free(t);
	return rc;
}

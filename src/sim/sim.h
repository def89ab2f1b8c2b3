/* SPDX-License-Identifier: MIT */
/*
 * The simulated Linux guest: it discovers the machine's virtio-mmio devices, initialises them as
 * Linux does (lib/virtio/driver.h), and runs the models of Linux's virtio_mem driver
 * (vmem-driver.h) and virtio_balloon driver over real split virtqueues in its own memory. A
 * workload knob sets how much memory it touches. It plugs into the machine's loop through
 * struct pvm_machine_guest_ops.
 */
#ifndef PVM_SIM_H
#define PVM_SIM_H

#include <stdio.h>

#include <pvmem/machine.h>

struct pvm_sim_guest;

struct pvm_sim_guest_opts {
	bool force_bbm;                /* virtio_mem.force_bbm=1 */
	uint64_t ms_per_guest_second;  /* retry timers: 50 s become 50 * this ms (0 = 1) */
	unsigned requests_per_tick;    /* device requests per loop round (0 = 64) */
};

/* Boot the guest on @m (registers itself as the machine's guest). */
int pvm_sim_guest_new(struct pvm_machine *m, const struct pvm_sim_guest_opts *opts,
		      struct pvm_sim_guest **out, struct pvm_error *err);
/* Unregister and free. NULL is fine. */
void pvm_sim_guest_free(struct pvm_sim_guest *g);
/* The workload: touch @bytes of memory (clamped to what the guest has free). */
uint64_t pvm_sim_guest_use(struct pvm_sim_guest *g, uint64_t bytes);
/* MemTotal and the workload's use, bytes. */
void pvm_sim_guest_memory(struct pvm_sim_guest *g, uint64_t *total, uint64_t *used);
/* Requests sent to virtio-mem devices since boot. */
uint64_t pvm_sim_guest_vmem_requests(const struct pvm_sim_guest *g);

/* `pvmem replay --simulate`: drive the simulated guest with the host steps of a real trace and
 * check after each step that the device's plugged size matches what the real guest reached.
 * Prints one line per check to @out; returns 0 when all hold, 1 when one failed, or a negative
 * errno (unreadable trace, machine error). */
int pvm_sim_replay_file(const char *path, bool check, FILE *out);

#endif

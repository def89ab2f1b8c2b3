/* SPDX-License-Identifier: MIT */
/*
 * The simulated Linux guest (see sim.h). Every device request travels as a Linux guest sends
 * it: the request is written into guest memory, a descriptor chain (request readable, response
 * writable) is added to the split ring, QueueNotify is written, and the used ring is read back;
 * configuration is read with Linux's access widths and generation check.
 *
 * Balloon driver model (drivers/virtio/virtio_balloon.c): towards_target = num_pages - the
 * driver's count; fill or leak at most 256 PFNs (VIRTIO_BALLOON_ARRAY_PFNS_MAX) per request on
 * the inflate / deflate queue, then write `actual`; repeat until the target is met. Leaked pages
 * are the most recently inflated ones. No statistics queue is negotiated, nor DEFLATE_ON_OOM,
 * so ballooned pages leave MemTotal as in the traces' guest.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "virtio/driver.h"
#include <pvmem/balloon.h>

#include "guest-mm.h"
#include "sim.h"
#include "vmem-driver.h"

#define BALLOON_PFNS_MAX 256u
#define VMEM_F_ACPI_PXM 0
#define VMEM_F_UNPLUGGED_INACCESSIBLE 1

/* One virtio-mem device as the guest drives it. */
struct gvmem {
	struct pvm_sim_guest *g;          /* back pointer */
	struct pvm_machine_virtio info;   /* discovery data */
	struct pvm_vdrv *vd;              /* transport driver */
	struct pvm_sim_vmem *drv;         /* the Linux driver model */
	uint64_t req_gpa, resp_gpa;       /* request and response buffers in guest memory */
	bool inflight;                    /* a request is on the ring */
};

/* The balloon as the guest drives it. */
struct gballoon {
	struct pvm_machine_virtio info;   /* discovery data */
	struct pvm_vdrv *vd;              /* transport driver */
	uint64_t pfn_gpa;                 /* PFN array in guest memory */
	uint32_t *pages;                  /* PFNs in the balloon, inflate order */
	uint32_t npages, cap;             /* count and capacity */
	uint32_t req[BALLOON_PFNS_MAX];   /* PFNs of the request in flight */
	unsigned nreq;                    /* their count */
	int inflight_q;                   /* queue of the request in flight, -1 = none */
	bool config_dirty;                /* num_pages must be re-read */
};

struct pvm_sim_guest {
	struct pvm_machine *m;            /* the machine */
	struct pvm_sim_guest_opts opts;   /* options */
	struct pvm_memslot_table *slots;  /* guest memory */
	struct pvm_sim_mm *mm;            /* page allocator */
	struct gvmem vmem[PVM_SIM_MM_MAX_RANGES - 1]; /* virtio-mem devices */
	unsigned nvmem;                   /* count */
	struct gballoon balloon;          /* the balloon (info.mmio NULL when none) */
	uint64_t fw_next;                 /* next free byte of the firmware area */
	uint64_t vmem_requests;           /* requests sent since creation */
};

static int touch(void *opaque, uint64_t gpa, uint64_t len)
{
	struct pvm_sim_guest *g = opaque;

	for (uint64_t off = 0; off < len;) {
		void *hva;
		uint64_t chunk = PVM_MIN(len - off, 2 * PVM_MiB - ((gpa + off) & (2 * PVM_MiB - 1)));

		if (pvm_memslot_translate(g->slots, gpa + off, chunk, PVM_ACCESS_WRITE, &hva) == 0) {
			for (uint64_t p = 0; p < chunk; p += PVM_SIM_PAGE)
				((volatile uint8_t *)hva)[p] = 0x5a;
		} else if (pvm_memslot_translate(g->slots, gpa + off, PVM_SIM_PAGE, PVM_ACCESS_WRITE, &hva) == 0) {
			*(volatile uint8_t *)hva = 0x5a;
			chunk = PVM_SIM_PAGE;
		} else {
			return -EFAULT;
		}
		off += chunk;
	}
	return 0;
}

static uint64_t fw_alloc(struct pvm_sim_guest *g, uint64_t bytes)
{
	uint64_t at = PVM_ALIGN_UP(g->fw_next, 4096);

	if (at + bytes > pvm_machine_fw_gpa(g->m) + PVM_MACHINE_FW_SIZE)
		return 0;
	g->fw_next = at + bytes;
	return at;
}

static int gwrite(struct pvm_sim_guest *g, uint64_t gpa, const void *buf, size_t len)
{
	void *hva;
	int rc = pvm_memslot_translate(g->slots, gpa, len, PVM_ACCESS_WRITE, &hva);

	if (!rc)
		memcpy(hva, buf, len);
	return rc;
}

static int gread(struct pvm_sim_guest *g, uint64_t gpa, void *buf, size_t len)
{
	void *hva;
	int rc = pvm_memslot_translate(g->slots, gpa, len, PVM_ACCESS_READ, &hva);

	if (!rc)
		memcpy(buf, hva, len);
	return rc;
}

static int open_vdrv(struct pvm_sim_guest *g, struct pvm_virtio_mmio *mmio, uint64_t features,
		     unsigned queues, struct pvm_vdrv **out)
{
	struct pvm_vdrv_config cfg = { .features = features, .num_queues = queues, .queue_size = 128 };
	uint64_t bytes = (uint64_t)queues * pvm_vdrv_ring_bytes(128);

	cfg.ring_gpa = fw_alloc(g, bytes);
	cfg.ring_size = bytes;
	if (!cfg.ring_gpa)
		return -ENOSPC;
	return pvm_vdrv_new(mmio, g->slots, &cfg, out, NULL);
}

/* ---- virtio-mem ---------------------------------------------------------------------------- */

static int vmem_read_config(void *opaque, struct pvm_sim_vmem_config *c)
{
	struct gvmem *v = opaque;
	uint8_t b[56];
	int rc = pvm_vdrv_config_read(v->vd, 0, b, sizeof(b));

	if (rc)
		return rc;
	memcpy(&c->block_size, b + 0, 8);
	memcpy(&c->node_id, b + 8, 2);
	memcpy(&c->addr, b + 16, 8);
	memcpy(&c->region_size, b + 24, 8);
	memcpy(&c->usable_region_size, b + 32, 8);
	memcpy(&c->plugged_size, b + 40, 8);
	memcpy(&c->requested_size, b + 48, 8);
	return 0;
}

static void vmem_give(void *opaque, uint64_t addr, uint64_t size)
{
	pvm_sim_mm_give(((struct gvmem *)opaque)->g->mm, addr, size);
}

static int vmem_take(void *opaque, uint64_t addr, uint64_t size)
{
	return pvm_sim_mm_take(((struct gvmem *)opaque)->g->mm, addr, size);
}

static const struct pvm_sim_vmem_ops vmem_ops = { vmem_read_config, vmem_give, vmem_take };

static int vmem_boot(struct pvm_sim_guest *g, struct gvmem *v)
{
	struct pvm_sim_vmem_opts o = { .force_bbm = g->opts.force_bbm,
				       .ms_per_guest_second = g->opts.ms_per_guest_second };
	uint64_t feat = PVM_VIRTIO_BIT(VMEM_F_ACPI_PXM) | PVM_VIRTIO_BIT(VMEM_F_UNPLUGGED_INACCESSIBLE);
	int rc = open_vdrv(g, v->info.mmio, feat, 1, &v->vd);

	if (rc)
		return rc;
	v->req_gpa = fw_alloc(g, 64);
	v->resp_gpa = v->req_gpa + 32;
	v->inflight = false;
	if (!v->req_gpa)
		return -ENOSPC;
	return pvm_sim_vmem_new(&o, &vmem_ops, v, &v->drv);
}

static int vmem_send(struct pvm_sim_guest *g, struct gvmem *v, const struct pvm_sim_vmem_req *r)
{
	uint8_t b[24] = { 0 };
	struct pvm_vdrv_buf out = { v->req_gpa, 24 }, in = { v->resp_gpa, 10 };
	int rc;

	memcpy(b, &r->type, 2);
	memcpy(b + 8, &r->addr, 8);
	memcpy(b + 16, &r->nb_blocks, 2);
	PVM_TRACE(sim_vmem_request, "type=%u addr=0x%llx nb_blocks=%u", r->type,
		  (unsigned long long)r->addr, r->nb_blocks);
	rc = gwrite(g, v->req_gpa, b, sizeof(b));
	if (!rc)
		rc = pvm_vdrv_add(v->vd, 0, &out, 1, &in, 1, v);
	if (rc)
		return rc;
	v->inflight = true;
	g->vmem_requests++;
	(void)pvm_vdrv_kick(v->vd, 0);
	return 0;
}

/* Collect a response if there is one: true when the driver can go on. */
static bool vmem_collect(struct pvm_sim_guest *g, struct gvmem *v)
{
	void *tok;
	uint32_t len;
	uint16_t type = 0xfffe;

	if (pvm_vdrv_get_used(v->vd, 0, &tok, &len) != 1)
		return false;
	v->inflight = false;
	if (len < 2 || gread(g, v->resp_gpa, &type, 2))
		type = 0xfffe; /* no valid answer: Linux treats it as a failure (-ENOMEM) */
	PVM_TRACE(sim_vmem_response, "type=%u", type);
	pvm_sim_vmem_complete(v->drv, type);
	return true;
}

static uint64_t vmem_tick(struct pvm_sim_guest *g, struct gvmem *v, uint64_t now, bool *busy)
{
	unsigned budget = g->opts.requests_per_tick ? g->opts.requests_per_tick : 64;
	struct pvm_sim_vmem_req r;

	if (!v->drv)
		return 0;
	if (pvm_vdrv_ack_interrupt(v->vd) & PVM_VIRTIO_INT_CONFIG)
		pvm_sim_vmem_config_changed(v->drv);
	/* A request still in flight (answered on the device's worker): wait for its interrupt. */
	if (v->inflight && !vmem_collect(g, v))
		return 0;
	while (budget--) {
		switch (pvm_sim_vmem_step(v->drv, now, &r)) {
		case PVM_SIM_VMEM_SEND:
			if (vmem_send(g, v, &r)) {
				pvm_sim_vmem_complete(v->drv, 0xfffe);
				break;
			}
			if (!vmem_collect(g, v))
				return 0; /* answered later: waiting (g_waiting) */
			continue;
		case PVM_SIM_VMEM_TIMER:
			return pvm_sim_vmem_deadline(v->drv);
		default:
			return 0;
		}
	}
	*busy = true;
	return 0;
}

/* ---- balloon --------------------------------------------------------------------------------- */

static int balloon_boot(struct pvm_sim_guest *g)
{
	struct gballoon *b = &g->balloon;
	int rc = open_vdrv(g, b->info.mmio, 0, 2, &b->vd);

	if (rc)
		return rc;
	b->pfn_gpa = fw_alloc(g, BALLOON_PFNS_MAX * 4);
	b->npages = 0;
	b->inflight_q = -1;
	b->config_dirty = true;
	return b->pfn_gpa ? 0 : -ENOSPC;
}

static void balloon_tick(struct pvm_sim_guest *g, uint64_t now, bool *busy)
{
	struct gballoon *b = &g->balloon;
	unsigned budget = g->opts.requests_per_tick ? g->opts.requests_per_tick : 64;

	if (!b->vd)
		return;
	if (pvm_vdrv_ack_interrupt(b->vd) & PVM_VIRTIO_INT_CONFIG)
		b->config_dirty = true;
	while (budget--) {
		uint32_t target = 0, actual;
		struct pvm_vdrv_buf out;
		void *tok;
		uint32_t len;
		int q;

		if (b->inflight_q >= 0) {
			if (pvm_vdrv_get_used(b->vd, (unsigned)b->inflight_q, &tok, &len) != 1)
				return; /* waiting for the device's interrupt (g_waiting) */
			if (b->inflight_q == PVM_BALLOON_VQ_DEFLATE)
				pvm_sim_mm_balloon_free(g->mm, b->req, b->nreq);
			b->inflight_q = -1;
			actual = b->npages;
			pvm_vdrv_config_write(b->vd, PVM_BALLOON_CFG_ACTUAL, &actual, 4);
		}
		if (!b->config_dirty)
			return;
		if (pvm_vdrv_config_read(b->vd, PVM_BALLOON_CFG_NUM_PAGES, &target, 4))
			return;
		if (target == b->npages) {
			b->config_dirty = false;
			return;
		}
		if (target > b->npages) {
			unsigned want = PVM_MIN(target - b->npages, BALLOON_PFNS_MAX);

			if (b->npages + want > b->cap) {
				uint32_t ncap = PVM_MAX(b->cap * 2, b->npages + want);
				uint32_t *np = realloc(b->pages, ncap * sizeof(*np));

				if (!np)
					return;
				b->pages = np;
				b->cap = ncap;
			}
			b->nreq = pvm_sim_mm_balloon_alloc(g->mm, b->req, want);
			if (!b->nreq) {
				b->config_dirty = false; /* "Out of puff!": try again on the next change */
				return;
			}
			memcpy(b->pages + b->npages, b->req, b->nreq * 4);
			b->npages += b->nreq;
			q = PVM_BALLOON_VQ_INFLATE;
		} else {
			b->nreq = PVM_MIN(b->npages - target, BALLOON_PFNS_MAX);
			b->npages -= b->nreq;
			memcpy(b->req, b->pages + b->npages, b->nreq * 4);
			q = PVM_BALLOON_VQ_DEFLATE;
		}
		out = (struct pvm_vdrv_buf){ b->pfn_gpa, b->nreq * 4 };
		if (gwrite(g, b->pfn_gpa, b->req, b->nreq * 4) ||
		    pvm_vdrv_add(b->vd, (unsigned)q, &out, 1, NULL, 0, b)) {
			return;
		}
		b->inflight_q = q;
		(void)pvm_vdrv_kick(b->vd, (unsigned)q);
	}
	*busy = true;
}

/* ---- the guest as the machine sees it ------------------------------------------------------- */

static void shutdown_drivers(struct pvm_sim_guest *g)
{
	for (unsigned i = 0; i < g->nvmem; i++) {
		pvm_sim_vmem_free(g->vmem[i].drv);
		pvm_vdrv_free(g->vmem[i].vd);
		g->vmem[i].drv = NULL;
		g->vmem[i].vd = NULL;
	}
	pvm_vdrv_free(g->balloon.vd);
	g->balloon.vd = NULL;
}

static int boot(struct pvm_sim_guest *g)
{
	int rc = 0;

	g->fw_next = pvm_machine_fw_gpa(g->m);
	pvm_sim_mm_reset(g->mm);
	pvm_sim_mm_reserve(g->mm, pvm_machine_fw_gpa(g->m), PVM_MACHINE_FW_SIZE);
	for (unsigned i = 0; !rc && i < g->nvmem; i++)
		rc = vmem_boot(g, &g->vmem[i]);
	if (!rc && g->balloon.info.mmio)
		rc = balloon_boot(g);
	return rc;
}

static uint64_t g_tick(void *opaque, uint64_t now, bool *busy)
{
	struct pvm_sim_guest *g = opaque;
	uint64_t next = 0;

	for (unsigned i = 0; i < g->nvmem; i++) {
		uint64_t t = vmem_tick(g, &g->vmem[i], now, busy);

		if (t && (!next || t < next))
			next = t;
	}
	balloon_tick(g, now, busy);
	return next;
}

static void g_reset(void *opaque)
{
	struct pvm_sim_guest *g = opaque;

	shutdown_drivers(g);
	if (boot(g))
		pvm_warn("simulated guest: reboot failed");
}

static void g_memory(void *opaque, uint64_t *total, uint64_t *used)
{
	pvm_sim_guest_memory(opaque, total, used);
}

/* A request is on a ring and not answered yet. */
static bool g_waiting(void *opaque)
{
	struct pvm_sim_guest *g = opaque;

	for (unsigned i = 0; i < g->nvmem; i++)
		if (g->vmem[i].drv && g->vmem[i].inflight)
			return true;
	return g->balloon.vd && g->balloon.inflight_q >= 0;
}

static const struct pvm_machine_guest_ops guest_ops = {
	.tick = g_tick, .reset = g_reset, .memory = g_memory, .waiting = g_waiting,
};

int pvm_sim_guest_new(struct pvm_machine *m, const struct pvm_sim_guest_opts *opts,
		      struct pvm_sim_guest **out, struct pvm_error *err)
{
	struct pvm_sim_guest *g = calloc(1, sizeof(*g));
	struct pvm_sim_mm_range ranges[PVM_SIM_MM_MAX_RANGES];
	unsigned nr = 0;
	int rc;

	if (!g)
		return pvm_error_set(err, -ENOMEM, "out of memory");
	g->m = m;
	g->slots = pvm_machine_memslots(m);
	if (opts)
		g->opts = *opts;
	ranges[nr++] = (struct pvm_sim_mm_range){ 0, pvm_machine_ram_size(m), false };
	for (size_t i = 0; i < pvm_machine_virtio_count(m); i++) {
		struct pvm_machine_virtio info;

		(void)pvm_machine_virtio(m, i, &info);
		if (info.device_id == PVM_VIRTIO_ID_MEM && g->nvmem < PVM_SIM_MM_MAX_RANGES - 1) {
			g->vmem[g->nvmem].g = g;
			g->vmem[g->nvmem++].info = info;
			ranges[nr++] = (struct pvm_sim_mm_range){ info.region_gpa, info.region_size, true };
		} else if (info.device_id == PVM_VIRTIO_ID_BALLOON && !g->balloon.info.mmio) {
			g->balloon.info = info;
		}
	}
	rc = pvm_sim_mm_new(ranges, nr, touch, g, &g->mm);
	if (!rc)
		rc = boot(g);
	if (rc) {
		pvm_sim_guest_free(g);
		return pvm_error_set(err, rc, "simulated guest: boot failed");
	}
	pvm_machine_set_guest(m, &guest_ops, g);
	*out = g;
	return 0;
}

void pvm_sim_guest_free(struct pvm_sim_guest *g)
{
	if (!g)
		return;
	pvm_machine_set_guest(g->m, NULL, NULL);
	shutdown_drivers(g);
	pvm_sim_mm_free(g->mm);
	free(g->balloon.pages);
	free(g);
}

uint64_t pvm_sim_guest_use(struct pvm_sim_guest *g, uint64_t bytes)
{
	return pvm_sim_mm_set_used(g->mm, bytes);
}

void pvm_sim_guest_memory(struct pvm_sim_guest *g, uint64_t *total, uint64_t *used)
{
	*total = pvm_sim_mm_total(g->mm);
	*used = pvm_sim_mm_used(g->mm);
}

uint64_t pvm_sim_guest_vmem_requests(const struct pvm_sim_guest *g)
{
	return g->vmem_requests;
}

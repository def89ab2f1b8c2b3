/* SPDX-License-Identifier: MIT */
/*
 * Linux virtio_mem driver model (see vmem-driver.h). Our own code, written from the behaviour
 * described in research/virtio-mem.md §3 and checked against the driver's source.
 *
 * Linux runs the work loop as nested loops that send requests synchronously. Here the loop is
 * re-entered after every response and re-plans from the state: because every request changes
 * the block states it was planned from, re-planning picks exactly the request Linux's loop would
 * send next. What a re-plan cannot see (sub-blocks found busy earlier in the same run) is kept in
 * per-run "busy" marks, cleared when a new run starts.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vmem-driver.h"

#define PAGEBLOCK_SIZE (2ULL << 20)
#define PVM_SIM_MIN_U64(a, b) ((a) < (b) ? (a) : (b))
#define ROLLBACK 0xffffu /* not a response: undo a planned request */
#define MAX_UNITS (1ULL << 26)  /* sub-blocks or big blocks tracked; bigger regions are refused */

/* Linux memory block states (SBM); ZONE_NORMAL states are kept for fidelity of the order. */
enum mb_state {
	MB_UNUSED = 0,        /* unplugged, not added; reusable */
	MB_PLUGGED,           /* (partly) plugged but not added: add failed, cleaned up later */
	MB_OFFLINE,           /* fully plugged, added, offline */
	MB_OFFLINE_PARTIAL,   /* partly plugged, added, offline */
	MB_KERNEL,            /* fully plugged, online to a kernel zone */
	MB_KERNEL_PARTIAL,    /* partly plugged, online to a kernel zone */
	MB_MOVABLE,           /* fully plugged, online to ZONE_MOVABLE */
	MB_MOVABLE_PARTIAL,   /* partly plugged, online to ZONE_MOVABLE */
};

/* Big block states (BBM). */
enum bb_state { BB_UNUSED = 0, BB_PLUGGED, BB_ADDED };

/* What the request in flight was for, so that its answer can be committed or rolled back. */
enum ctx_kind {
	CTX_NONE = 0,
	CTX_UNPLUG_ALL,       /* startup clean-up */
	CTX_SBM_PLUG_NEW,     /* plug sub-blocks 0..count-1 of an unused block, then add it */
	CTX_SBM_PLUG_ANY,     /* plug a run of an added, partly plugged block */
	CTX_SBM_UNPLUG_ONLINE,/* unplug fake-offlined sub-blocks of an online block */
	CTX_SBM_UNPLUG_RAW,   /* unplug sub-blocks of a block that is not added (clean-up) */
	CTX_BBM_PLUG,         /* plug and add a big block */
	CTX_BBM_UNPLUG,       /* unplug an offlined, removed big block */
	CTX_BBM_CLEANUP,      /* unplug a big block left plugged */
};

struct pvm_sim_vmem {
	struct pvm_sim_vmem_ops ops;   /* guest memory manager and config access */
	void *opaque;                  /* for ops */
	struct pvm_sim_vmem_opts opts; /* probe options */

	struct pvm_sim_vmem_config cfg;/* config as last read */
	uint64_t plugged;              /* the driver's own plugged size (vm->plugged_size) */
	uint64_t requested;            /* vm->requested_size */
	bool sbm;                      /* sub-block mode, else big-block mode */
	uint64_t mb_size;              /* Linux memory block size */
	uint64_t unit;                 /* SBM: memory block size; BBM: big block size */
	uint64_t sb_size;              /* SBM: sub-block size */
	uint32_t sbs_per_mb;           /* SBM: sub-blocks per memory block */
	uint64_t first_id;             /* first usable memory block / big block id */
	uint64_t next_id;              /* next id to prepare */
	int64_t last_usable_id;        /* last usable id (may be < first_id: nothing usable) */
	uint64_t nunits;               /* ids tracked: the region rounded to units */
	uint8_t *states;               /* one state per id - first_id */
	uint64_t *sb_plugged;          /* SBM: bit per sub-block, set = plugged */
	uint64_t *busy;                /* per-run marks: sub-blocks (SBM) or big blocks (BBM) busy */
	uint8_t *whole_failed;         /* SBM per-run: whole-block fake-offline failed */

	bool unplug_all_required;      /* plugged_size != 0 at probe */
	bool config_changed;           /* interrupt seen, config not re-read yet */
	bool work_pending;             /* the work item is queued or running */
	bool in_run;                   /* a run is in progress (busy marks valid) */
	bool broken;                   /* an ERROR was answered: stop */
	unsigned retry_s;              /* retry timer period, guest seconds */
	uint64_t deadline_ms;          /* retry timer expiry (0 = not armed) */
	bool arm_timer;                /* a run ended wanting the timer: armed at the next step */

	enum ctx_kind ctx;             /* request in flight */
	uint64_t ctx_id;               /* its block id */
	uint32_t ctx_sb, ctx_count;    /* SBM: its first sub-block and count */
	struct pvm_sim_vmem_req req;   /* the request in flight */
	uint64_t nreq;                 /* requests sent */
};

/* ---- small bitmap helpers -------------------------------------------------------------- */

static bool bit_test(const uint64_t *m, uint64_t b)
{
	return m[b / 64] >> (b % 64) & 1;
}

static void bit_assign(uint64_t *m, uint64_t b, uint64_t n, bool v)
{
	for (uint64_t i = b; i < b + n; i++) {
		if (v)
			m[i / 64] |= 1ULL << (i % 64);
		else
			m[i / 64] &= ~(1ULL << (i % 64));
	}
}

static uint64_t sb_bit(const struct pvm_sim_vmem *d, uint64_t mb, uint32_t sb)
{
	return (mb - d->first_id) * d->sbs_per_mb + sb;
}

static bool sb_all(const struct pvm_sim_vmem *d, uint64_t mb, uint32_t sb, uint32_t n, bool plugged)
{
	for (uint32_t i = sb; i < sb + n; i++)
		if (bit_test(d->sb_plugged, sb_bit(d, mb, i)) != plugged)
			return false;
	return true;
}

static uint8_t state(const struct pvm_sim_vmem *d, uint64_t id)
{
	return d->states[id - d->first_id];
}

static void set_state(struct pvm_sim_vmem *d, uint64_t id, uint8_t s)
{
	d->states[id - d->first_id] = s;
}

static uint64_t id_addr(const struct pvm_sim_vmem *d, uint64_t id)
{
	return id * d->unit;
}

static uint64_t ms_per_s(const struct pvm_sim_vmem *d)
{
	return d->opts.ms_per_guest_second ? d->opts.ms_per_guest_second : 1;
}

/* ---- probe ------------------------------------------------------------------------------ */

/* Recompute the last usable id from usable_region_size (virtio_mem_refresh_config). */
static void update_last_usable(struct pvm_sim_vmem *d)
{
	uint64_t end = d->cfg.addr + d->cfg.usable_region_size; /* exclusive */

	if (d->cfg.usable_region_size == 0 || end < d->cfg.addr) {
		d->last_usable_id = (int64_t)d->first_id - 1;
		return;
	}
	d->last_usable_id = (int64_t)((end - 1) / d->unit);
	if (end % d->unit)
		d->last_usable_id--;
}

static int refresh_config(struct pvm_sim_vmem *d)
{
	struct pvm_sim_vmem_config c;
	int rc = d->ops.read_config(d->opaque, &c);

	if (rc)
		return rc;
	/* block_size, addr and region_size cannot change; the driver keeps what it probed. */
	d->cfg.usable_region_size = PVM_SIM_MIN_U64(c.usable_region_size, d->cfg.region_size);
	d->cfg.plugged_size = c.plugged_size;
	d->cfg.requested_size = c.requested_size;
	/* "the plugged_size is just a reflection of what _we_ did previously": Linux WARNs and
	 * takes the device's value when they differ. */
	d->plugged = c.plugged_size;
	d->requested = c.requested_size;
	update_last_usable(d);
	return 0;
}

int pvm_sim_vmem_new(const struct pvm_sim_vmem_opts *opts, const struct pvm_sim_vmem_ops *ops,
		     void *opaque, struct pvm_sim_vmem **out)
{
	struct pvm_sim_vmem *d = calloc(1, sizeof(*d));
	uint64_t end, sb;
	int rc;

	if (!d)
		return -ENOMEM;
	d->ops = *ops;
	d->opaque = opaque;
	if (opts)
		d->opts = *opts;
	d->mb_size = d->opts.memory_block_size ? d->opts.memory_block_size : 128ULL << 20;
	rc = ops->read_config(opaque, &d->cfg);
	if (rc)
		goto fail;
	rc = -EINVAL;
	if (!d->cfg.block_size || (d->cfg.block_size & (d->cfg.block_size - 1)) ||
	    (d->mb_size & (d->mb_size - 1)) || !d->cfg.region_size ||
	    d->cfg.addr + d->cfg.region_size < d->cfg.addr)
		goto fail;
	sb = d->cfg.block_size > PAGEBLOCK_SIZE ? d->cfg.block_size : PAGEBLOCK_SIZE;
	if (sb < d->mb_size && !d->opts.force_bbm) {
		d->sbm = true;
		d->sb_size = sb;
		d->sbs_per_mb = (uint32_t)(d->mb_size / sb);
		d->unit = d->mb_size;
	} else {
		d->unit = d->cfg.block_size > d->mb_size ? d->cfg.block_size : d->mb_size;
		if (d->opts.bbm_block_size && !(d->opts.bbm_block_size & (d->opts.bbm_block_size - 1)) &&
		    d->opts.bbm_block_size >= d->unit)
			d->unit = d->opts.bbm_block_size;
	}
	/* Round the start up to the next unit, as Linux does. */
	d->first_id = (d->cfg.addr + d->unit - 1) / d->unit;
	d->next_id = d->first_id;
	end = d->cfg.addr + d->cfg.region_size;
	d->nunits = end / d->unit > d->first_id ? end / d->unit - d->first_id : 0;
	if (d->nunits > MAX_UNITS / (d->sbm ? d->sbs_per_mb : 1))
		goto fail;
	rc = -ENOMEM;
	d->states = calloc(d->nunits + 1, 1);
	d->whole_failed = calloc(d->nunits + 1, 1);
	d->sb_plugged = calloc((d->nunits * (d->sbm ? d->sbs_per_mb : 1)) / 64 + 1, 8);
	d->busy = calloc((d->nunits * (d->sbm ? d->sbs_per_mb : 1)) / 64 + 1, 8);
	if (!d->states || !d->whole_failed || !d->sb_plugged || !d->busy)
		goto fail;
	d->plugged = d->cfg.plugged_size;
	d->requested = d->cfg.requested_size;
	d->cfg.usable_region_size = PVM_SIM_MIN_U64(d->cfg.usable_region_size, d->cfg.region_size);
	update_last_usable(d);
	d->unplug_all_required = d->cfg.plugged_size != 0;
	d->retry_s = PVM_SIM_VMEM_RETRY_MIN_S;
	d->work_pending = true; /* virtio_mem_probe queues the work item */
	*out = d;
	return 0;
fail:
	pvm_sim_vmem_free(d);
	return rc;
}

void pvm_sim_vmem_free(struct pvm_sim_vmem *d)
{
	if (!d)
		return;
	free(d->states);
	free(d->whole_failed);
	free(d->sb_plugged);
	free(d->busy);
	free(d);
}

void pvm_sim_vmem_config_changed(struct pvm_sim_vmem *d)
{
	d->config_changed = true;
	d->work_pending = true;
}

/* ---- planning: the next request of the current run --------------------------------------- */

/* Fill the request in flight. */
static enum pvm_sim_vmem_status send(struct pvm_sim_vmem *d, struct pvm_sim_vmem_req *out,
				     uint16_t type, uint64_t addr, uint64_t size, enum ctx_kind ctx)
{
	d->req.type = type;
	d->req.addr = addr;
	d->req.nb_blocks = (uint16_t)(size / d->cfg.block_size);
	d->ctx = ctx;
	d->nreq++;
	*out = d->req;
	return PVM_SIM_VMEM_SEND;
}

static uint64_t sb_addr(const struct pvm_sim_vmem *d, uint64_t mb, uint32_t sb)
{
	return id_addr(d, mb) + (uint64_t)sb * d->sb_size;
}

/* SBM plug (virtio_mem_sbm_plug_request): 1 = request planned, else an rc. */
static int sbm_plan_plug(struct pvm_sim_vmem *d, struct pvm_sim_vmem_req *out)
{
	static const uint8_t partial[] = { MB_KERNEL_PARTIAL, MB_MOVABLE_PARTIAL, MB_OFFLINE_PARTIAL };
	uint64_t nb_sb = (d->requested - d->plugged) / d->sb_size, mb;

	if (!nb_sb)
		return 0;
	for (size_t i = 0; i < sizeof(partial); i++) {
		for (mb = d->first_id; mb < d->next_id; mb++) {
			uint32_t sb = 0, count = 1;

			if (state(d, mb) != partial[i])
				continue;
			while (sb < d->sbs_per_mb && bit_test(d->sb_plugged, sb_bit(d, mb, sb)))
				sb++;
			if (sb >= d->sbs_per_mb)
				continue;
			while (count < nb_sb && sb + count < d->sbs_per_mb &&
			       !bit_test(d->sb_plugged, sb_bit(d, mb, sb + count)))
				count++;
			d->ctx_id = mb;
			d->ctx_sb = sb;
			d->ctx_count = count;
			send(d, out, PVM_SIM_VMEM_PLUG, sb_addr(d, mb, sb), count * d->sb_size,
			     CTX_SBM_PLUG_ANY);
			return 1;
		}
	}
	/* Unused blocks first (lowest id), then a newly prepared block. */
	for (mb = d->first_id; mb < d->next_id; mb++)
		if (state(d, mb) == MB_UNUSED)
			break;
	if (mb == d->next_id) {
		if ((int64_t)d->next_id > d->last_usable_id || d->next_id - d->first_id >= d->nunits)
			return -ENOSPC;
		d->next_id++;
	}
	d->ctx_id = mb;
	d->ctx_sb = 0;
	d->ctx_count = (uint32_t)(nb_sb < d->sbs_per_mb ? nb_sb : d->sbs_per_mb);
	send(d, out, PVM_SIM_VMEM_PLUG, id_addr(d, mb), d->ctx_count * d->sb_size, CTX_SBM_PLUG_NEW);
	return 1;
}

static bool is_online(uint8_t s)
{
	return s == MB_KERNEL || s == MB_KERNEL_PARTIAL || s == MB_MOVABLE || s == MB_MOVABLE_PARTIAL;
}

/* SBM unplug of one block (virtio_mem_sbm_unplug_any_sb): 1 = request planned, 0 = nothing
 * (all busy), <0 = rc. */
static int sbm_plan_unplug_mb(struct pvm_sim_vmem *d, uint64_t mb, uint64_t nb_sb,
			      struct pvm_sim_vmem_req *out)
{
	uint8_t s = state(d, mb);

	d->ctx_id = mb;
	if (!is_online(s)) {
		/* Offline blocks: merge contiguous plugged sub-blocks from the top. */
		int64_t sb = (int64_t)d->sbs_per_mb - 1;
		uint32_t count = 1;

		while (sb >= 0 && !bit_test(d->sb_plugged, sb_bit(d, mb, (uint32_t)sb)))
			sb--;
		if (sb < 0)
			return 0;
		while (count < nb_sb && sb > 0 && bit_test(d->sb_plugged, sb_bit(d, mb, (uint32_t)sb - 1))) {
			count++;
			sb--;
		}
		d->ctx_sb = (uint32_t)sb;
		d->ctx_count = count;
		send(d, out, PVM_SIM_VMEM_UNPLUG, sb_addr(d, mb, (uint32_t)sb), count * d->sb_size,
		     CTX_SBM_UNPLUG_RAW);
		return 1;
	}
	/* Online: the whole block in one request if wanted and fully plugged. */
	if (nb_sb >= d->sbs_per_mb && !d->whole_failed[mb - d->first_id] &&
	    sb_all(d, mb, 0, d->sbs_per_mb, true)) {
		if (d->ops.take(d->opaque, id_addr(d, mb), d->unit) == 0) {
			d->ctx_sb = 0;
			d->ctx_count = d->sbs_per_mb;
			send(d, out, PVM_SIM_VMEM_UNPLUG, id_addr(d, mb), d->unit, CTX_SBM_UNPLUG_ONLINE);
			return 1;
		}
		d->whole_failed[mb - d->first_id] = 1;
	}
	/* Fall back to single sub-blocks from the top, skipping busy ones. */
	for (int64_t sb = (int64_t)d->sbs_per_mb - 1; sb >= 0; sb--) {
		uint64_t bit = sb_bit(d, mb, (uint32_t)sb);

		if (!bit_test(d->sb_plugged, bit) || bit_test(d->busy, bit))
			continue;
		if (d->ops.take(d->opaque, sb_addr(d, mb, (uint32_t)sb), d->sb_size)) {
			bit_assign(d->busy, bit, 1, true);
			continue;
		}
		d->ctx_sb = (uint32_t)sb;
		d->ctx_count = 1;
		send(d, out, PVM_SIM_VMEM_UNPLUG, sb_addr(d, mb, (uint32_t)sb), d->sb_size,
		     CTX_SBM_UNPLUG_ONLINE);
		return 1;
	}
	return 0;
}

/* SBM unplug (virtio_mem_sbm_unplug_request). */
static int sbm_plan_unplug(struct pvm_sim_vmem *d, struct pvm_sim_vmem_req *out)
{
	static const uint8_t order[] = { MB_OFFLINE_PARTIAL, MB_OFFLINE, MB_MOVABLE_PARTIAL,
					 MB_KERNEL_PARTIAL, MB_MOVABLE, MB_KERNEL };
	uint64_t nb_sb = (d->plugged - d->requested) / d->sb_size;

	if (!nb_sb)
		return 0;
	for (size_t i = 0; i < sizeof(order); i++) {
		for (uint64_t mb = d->next_id; mb-- > d->first_id;) {
			int rc;

			if (state(d, mb) != order[i])
				continue;
			rc = sbm_plan_unplug_mb(d, mb, nb_sb, out);
			if (rc)
				return rc;
		}
	}
	return -EBUSY; /* memory left to unplug, but all of it is busy */
}

static int bbm_plan(struct pvm_sim_vmem *d, struct pvm_sim_vmem_req *out)
{
	uint64_t id;

	if (d->requested > d->plugged) {
		if ((d->requested - d->plugged) / d->unit == 0)
			return 0;
		for (id = d->first_id; id < d->next_id; id++)
			if (state(d, id) == BB_UNUSED)
				break;
		if (id == d->next_id) {
			if ((int64_t)d->next_id > d->last_usable_id || d->next_id - d->first_id >= d->nunits)
				return -ENOSPC;
			d->next_id++;
		}
		d->ctx_id = id;
		send(d, out, PVM_SIM_VMEM_PLUG, id_addr(d, id), d->unit, CTX_BBM_PLUG);
		return 1;
	}
	if ((d->plugged - d->requested) / d->unit == 0)
		return 0;
	/* All added blocks are online and movable here, so Linux's three passes collapse into one. */
	for (id = d->next_id; id-- > d->first_id;) {
		if (state(d, id) != BB_ADDED || bit_test(d->busy, id - d->first_id))
			continue;
		if (d->ops.take(d->opaque, id_addr(d, id), d->unit)) {
			bit_assign(d->busy, id - d->first_id, 1, true);
			continue;
		}
		d->ctx_id = id;
		send(d, out, PVM_SIM_VMEM_UNPLUG, id_addr(d, id), d->unit, CTX_BBM_UNPLUG);
		return 1;
	}
	return -EBUSY;
}

/* Blocks left plugged but not added (virtio_mem_cleanup_pending_mb). */
static int plan_cleanup(struct pvm_sim_vmem *d, struct pvm_sim_vmem_req *out)
{
	for (uint64_t id = d->first_id; id < d->next_id; id++) {
		if (state(d, id) != (d->sbm ? MB_PLUGGED : BB_PLUGGED))
			continue;
		d->ctx_id = id;
		if (!d->sbm) {
			send(d, out, PVM_SIM_VMEM_UNPLUG, id_addr(d, id), d->unit, CTX_BBM_CLEANUP);
			return 1;
		}
		if (sbm_plan_unplug_mb(d, id, d->sbs_per_mb, out) == 1)
			return 1;
		set_state(d, id, MB_UNUSED);
	}
	return 0;
}

/* End of a run of the work loop with @rc (the switch at the end of virtio_mem_run_wq). */
static void end_run(struct pvm_sim_vmem *d, int rc)
{
	d->in_run = false;
	d->work_pending = false;
	switch (rc) {
	case 0:
		d->retry_s = PVM_SIM_VMEM_RETRY_MIN_S;
		break;
	case -ENOSPC: /* cannot add more memory: wait for a config change */
		break;
	case -ETXTBSY:
	case -EBUSY:
	case -ENOMEM:
		d->arm_timer = true;
		break;
	case -EAGAIN: /* retry at once */
		d->work_pending = true;
		break;
	default:
		d->broken = true;
	}
}

enum pvm_sim_vmem_status pvm_sim_vmem_step(struct pvm_sim_vmem *d, uint64_t now_ms,
					   struct pvm_sim_vmem_req *req)
{
	int rc;

	if (d->ctx != CTX_NONE)
		return PVM_SIM_VMEM_WAIT;
	if (d->broken)
		return PVM_SIM_VMEM_BROKEN;
	if (d->arm_timer) {
		d->arm_timer = false;
		d->deadline_ms = now_ms + d->retry_s * ms_per_s(d);
		if (!d->deadline_ms)
			d->deadline_ms = 1;
	}
	if (!d->work_pending && d->deadline_ms) {
		if (now_ms < d->deadline_ms)
			return PVM_SIM_VMEM_TIMER;
		/* virtio_mem_timer_expired: queue the work, double the period. */
		d->work_pending = true;
		d->retry_s = d->retry_s * 2 > PVM_SIM_VMEM_RETRY_MAX_S ? PVM_SIM_VMEM_RETRY_MAX_S
								       : d->retry_s * 2;
	}
	if (!d->work_pending)
		return PVM_SIM_VMEM_IDLE;
	if (!d->in_run) {
		/* A new run: hrtimer_cancel, forget what was busy last time. */
		d->in_run = true;
		d->deadline_ms = 0;
		memset(d->busy, 0, ((d->nunits * (d->sbm ? d->sbs_per_mb : 1)) / 64 + 1) * 8);
		memset(d->whole_failed, 0, d->nunits + 1);
	}
	for (;;) {
		if (d->unplug_all_required) {
			send(d, req, PVM_SIM_VMEM_UNPLUG_ALL, 0, 0, CTX_UNPLUG_ALL);
			return PVM_SIM_VMEM_SEND;
		}
		if (d->config_changed) {
			d->config_changed = false;
			if (refresh_config(d)) {
				end_run(d, -ENOMEM);
				return pvm_sim_vmem_step(d, now_ms, req);
			}
		}
		rc = plan_cleanup(d, req);
		if (rc == 0 && d->requested != d->plugged)
			rc = d->sbm ? (d->requested > d->plugged ? sbm_plan_plug(d, req) : sbm_plan_unplug(d, req))
				    : bbm_plan(d, req);
		if (rc == 1) {
			/* virtio_mem_send_{un,}plug_request: never while a config change is pending. */
			if (d->config_changed && d->req.type != PVM_SIM_VMEM_UNPLUG_ALL) {
				pvm_sim_vmem_complete(d, ROLLBACK); /* undo the plan: -EAGAIN */
				d->nreq--;
				d->in_run = true;
				continue;
			}
			return PVM_SIM_VMEM_SEND;
		}
		end_run(d, rc);
		if (rc == -EAGAIN) {
			d->in_run = true;
			continue;
		}
		return pvm_sim_vmem_step(d, now_ms, req);
	}
}

/* ---- responses ---------------------------------------------------------------------------- */

/* Linux's mapping of a response to an errno, per request type. */
static int resp_rc(uint16_t type, uint16_t resp)
{
	if (resp == PVM_SIM_VMEM_ACK)
		return 0;
	switch (type) {
	case PVM_SIM_VMEM_PLUG:
		return resp == PVM_SIM_VMEM_NACK ? -EAGAIN : resp == PVM_SIM_VMEM_BUSY ? -ETXTBSY
			: resp == PVM_SIM_VMEM_ERROR ? -EINVAL : -ENOMEM;
	case PVM_SIM_VMEM_UNPLUG:
		return resp == PVM_SIM_VMEM_BUSY ? -ETXTBSY : resp == PVM_SIM_VMEM_ERROR ? -EINVAL : -ENOMEM;
	default: /* UNPLUG_ALL */
		return resp == PVM_SIM_VMEM_BUSY ? -ETXTBSY : -ENOMEM;
	}
}

static void commit_sbm_state(struct pvm_sim_vmem *d, uint64_t mb)
{
	uint8_t s = state(d, mb);
	bool full = sb_all(d, mb, 0, d->sbs_per_mb, true);
	bool empty = sb_all(d, mb, 0, d->sbs_per_mb, false);

	if (empty && s != MB_UNUSED) {
		/* Fully unplugged: offline and remove, reusable later (try_remove_unplugged_mb). */
		set_state(d, mb, MB_UNUSED);
		return;
	}
	if (s == MB_MOVABLE && !full)
		set_state(d, mb, MB_MOVABLE_PARTIAL);
	else if (s == MB_MOVABLE_PARTIAL && full)
		set_state(d, mb, MB_MOVABLE);
	else if (s == MB_KERNEL && !full)
		set_state(d, mb, MB_KERNEL_PARTIAL);
	else if (s == MB_KERNEL_PARTIAL && full)
		set_state(d, mb, MB_KERNEL);
	else if (s == MB_OFFLINE && !full)
		set_state(d, mb, MB_OFFLINE_PARTIAL);
	else if (s == MB_OFFLINE_PARTIAL && full)
		set_state(d, mb, MB_OFFLINE);
}

void pvm_sim_vmem_complete(struct pvm_sim_vmem *d, uint16_t resp_type)
{
	enum ctx_kind ctx = d->ctx;
	uint64_t mb = d->ctx_id, size = (uint64_t)d->req.nb_blocks * d->cfg.block_size;
	int rc = resp_type == ROLLBACK ? -EAGAIN : resp_rc(d->req.type, resp_type);

	if (ctx == CTX_NONE)
		return;
	d->ctx = CTX_NONE;
	switch (ctx) {
	case CTX_NONE:
		break;
	case CTX_UNPLUG_ALL:
		if (!rc) {
			d->unplug_all_required = false;
			d->plugged = 0;
			d->config_changed = true; /* the usable region may have shrunk */
		}
		break;
	case CTX_SBM_PLUG_NEW:
		if (!rc) {
			d->plugged += size;
			bit_assign(d->sb_plugged, sb_bit(d, mb, 0), d->ctx_count, true);
			/* Added, then onlined at once to ZONE_MOVABLE. */
			set_state(d, mb, d->ctx_count == d->sbs_per_mb ? MB_MOVABLE : MB_MOVABLE_PARTIAL);
			d->ops.give(d->opaque, id_addr(d, mb), size);
		}
		break;
	case CTX_SBM_PLUG_ANY:
		if (!rc) {
			d->plugged += size;
			bit_assign(d->sb_plugged, sb_bit(d, mb, d->ctx_sb), d->ctx_count, true);
			d->ops.give(d->opaque, sb_addr(d, mb, d->ctx_sb), size);
			commit_sbm_state(d, mb);
		}
		break;
	case CTX_SBM_UNPLUG_ONLINE:
		if (!rc) {
			d->plugged -= size;
			bit_assign(d->sb_plugged, sb_bit(d, mb, d->ctx_sb), d->ctx_count, false);
			commit_sbm_state(d, mb);
		} else {
			/* Return the memory to the buddy. */
			d->ops.give(d->opaque, sb_addr(d, mb, d->ctx_sb), (uint64_t)d->ctx_count * d->sb_size);
		}
		break;
	case CTX_SBM_UNPLUG_RAW:
		if (!rc) {
			d->plugged -= size;
			bit_assign(d->sb_plugged, sb_bit(d, mb, d->ctx_sb), d->ctx_count, false);
			if (sb_all(d, mb, 0, d->sbs_per_mb, false))
				set_state(d, mb, MB_UNUSED);
			else
				commit_sbm_state(d, mb);
		}
		break;
	case CTX_BBM_PLUG:
		if (!rc) {
			d->plugged += size;
			set_state(d, mb, BB_ADDED);
			d->ops.give(d->opaque, id_addr(d, mb), size);
		}
		break;
	case CTX_BBM_UNPLUG:
		if (!rc) {
			d->plugged -= size;
			set_state(d, mb, BB_UNUSED);
		} else {
			/* Offlined and removed but still plugged: cleaned up by a later run. */
			set_state(d, mb, BB_PLUGGED);
		}
		break;
	case CTX_BBM_CLEANUP:
		if (!rc) {
			d->plugged -= size;
			set_state(d, mb, BB_UNUSED);
		}
		break;
	}
	if (rc)
		end_run(d, rc);
}

uint64_t pvm_sim_vmem_plugged(const struct pvm_sim_vmem *d)
{
	return d->plugged;
}

uint64_t pvm_sim_vmem_requested(const struct pvm_sim_vmem *d)
{
	return d->requested;
}

bool pvm_sim_vmem_in_sbm(const struct pvm_sim_vmem *d)
{
	return d->sbm;
}

uint64_t pvm_sim_vmem_deadline(const struct pvm_sim_vmem *d)
{
	return d->deadline_ms;
}

uint64_t pvm_sim_vmem_requests(const struct pvm_sim_vmem *d)
{
	return d->nreq;
}

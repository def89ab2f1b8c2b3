/* SPDX-License-Identifier: MIT */
/*
 * virtio-mem device: creation, the virtio ops table, request processing and the management
 * API. Each request goes parse -> decide (pure, mem-state.c) -> act (mem-act.c, with rollback,
 * possibly on the worker: mem-async.c) -> respond. See include/pvmem/virtio-mem.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <pvmem/discard.h>
#include "core/util.h"
#include "virtio/mem-priv.h"

#define DEFAULT_BLOCK_SIZE (2 * PVM_MiB)
#define MIN_BLOCK_SIZE PVM_MiB
#define DEFAULT_ASYNC_THRESHOLD PVM_GiB

/* ---- helpers ------------------------------------------------------------------------------ */

void pvm_vmem_size_changed(struct pvm_vmem *vm)
{
	PVM_TRACE(vmem_size_changed, "id=%s plugged=0x%" PRIx64, vm->id, vm->v.plugged_size);
	if (vm->on_size_change)
		vm->on_size_change(vm->opaque, vm, vm->v.plugged_size);
}

/* QEMU's default: the THP size for normal pages (hpage_pmd_size), the page size for huge pages. */
static uint64_t default_block_size(const struct pvm_mem_region *mem)
{
	uint64_t page = pvm_mem_region_page_size(mem), thp = 0;
	FILE *f;

	if (page > 4096)
		return PVM_MAX(page, MIN_BLOCK_SIZE);
	f = fopen("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size", "re");
	if (f) {
		unsigned long long v;

		if (fscanf(f, "%llu", &v) == 1 && PVM_IS_POW2(v))
			thp = v;
		fclose(f);
	}
	return PVM_MAX(thp ? thp : DEFAULT_BLOCK_SIZE, MIN_BLOCK_SIZE);
}

void pvm_vmem_respond(struct pvm_vmem *vm, struct pvm_virtq *vq, struct pvm_virtq_elem *elem,
		      uint16_t resp, uint16_t state)
{
	uint8_t buf[PVM_VMEM_RESP_SIZE];

	pvm_vmem_resp_encode(resp, state, buf);
	PVM_TRACE(vmem_send_response, "id=%s type=%s state=%u", vm->id, pvm_vmem_resp_name(resp), state);
	/* The length is checked at parse time: exactly 10 bytes are written. */
	pvm_virtq_elem_write(elem, 0, buf, sizeof(buf));
	(void)pvm_virtq_complete(vq, elem, sizeof(buf));
}

/* ---- request processing ------------------------------------------------------------------- */

/* Handle one element with the lock held; returns true when it was handed to the worker.
 * Otherwise *@resp / *@state hold the answer, or *@drop says the element is a protocol
 * violation (the device is broken, nothing is answered). */
static bool handle(struct pvm_vmem *vm, struct pvm_virtq *vq, struct pvm_virtq_elem *elem,
		   uint16_t *resp, uint16_t *state, const char **violation)
{
	uint8_t raw[PVM_VMEM_REQ_SIZE];
	struct pvm_vmem_req req;
	struct pvm_vmem_decision d;
	uint64_t work;

	*violation = NULL;
	if (elem->out_len < PVM_VMEM_REQ_SIZE) {
		*violation = "invalid request size";
		return false;
	}
	if (elem->in_len < PVM_VMEM_RESP_SIZE) {
		*violation = "not enough space for the response";
		return false;
	}
	pvm_virtq_elem_read(elem, 0, raw, sizeof(raw));
	pvm_vmem_req_parse(raw, sizeof(raw), &req);
	PVM_TRACE(vmem_request, "id=%s type=%s addr=0x%" PRIx64 " nb_blocks=%u", vm->id,
		  pvm_vmem_req_name(req.type), req.addr, req.nb_blocks);
	pvm_vmem_decide(&vm->v, &req, &d);
	if (d.action == PVM_VMEM_ACT_VIOLATION) {
		*violation = d.why;
		return false;
	}
	vm->requests++;
	*state = d.state;
	*resp = d.resp;
	if (d.why)
		PVM_TRACE(vmem_refused, "id=%s resp=%s why=%s", vm->id, pvm_vmem_resp_name(d.resp), d.why);
	if (d.action == PVM_VMEM_ACT_NONE)
		goto out;

	work = d.action == PVM_VMEM_ACT_UNPLUG_ALL ? vm->v.plugged_size
	       : d.action == PVM_VMEM_ACT_PLUG && vm->prealloc ? d.count * vm->v.block_size : 0;
	if (work > vm->async_threshold && pvm_vmem_async_queue(vm, vq, elem, &d) == 0)
		return true;
	if (pvm_vmem_act(vm, &d))
		*resp = VIRTIO_MEM_RESP_BUSY;
out:
	if (*resp == VIRTIO_MEM_RESP_BUSY)
		vm->busy_answers++;
	return false;
}

void pvm_vmem_process_queue(struct pvm_vmem *vm, struct pvm_virtq *vq)
{
	for (;;) {
		struct pvm_virtq_elem *elem = NULL;
		uint16_t resp = 0, state = 0;
		const char *violation;
		int rc;

		pthread_mutex_lock(&vm->lock);
		if (vm->job) {
			/* One request at a time: the worker resumes the queue when it is done. */
			pthread_mutex_unlock(&vm->lock);
			return;
		}
		rc = pvm_virtq_pop(vq, &elem);
		if (rc <= 0) {
			pthread_mutex_unlock(&vm->lock);
			return;
		}
		if (handle(vm, vq, elem, &resp, &state, &violation)) {
			pthread_mutex_unlock(&vm->lock);
			return;
		}
		pthread_mutex_unlock(&vm->lock);
		if (violation) {
			pvm_virtq_elem_free(elem);
			pvm_virtio_device_set_broken(vm->vdev, "%s: protocol violation: %s", vm->id, violation);
			return;
		}
		pvm_vmem_respond(vm, vq, elem, resp, state);
	}
}

/* ---- virtio ops ----------------------------------------------------------------------------- */

static void op_get_config(void *opaque, uint8_t *buf)
{
	struct pvm_vmem *vm = opaque;

	pthread_mutex_lock(&vm->lock);
	pvm_vmem_config_encode(&vm->v, vm->node, buf);
	pthread_mutex_unlock(&vm->lock);
}

static int op_validate_features(void *opaque, uint64_t features)
{
	/* QEMU fails negotiation when UNPLUGGED_INACCESSIBLE was offered but not accepted: the
	 * driver would read unplugged memory (DI1), which enforcement forbids. */
	if (!(features & PVM_VIRTIO_BIT(VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE)))
		return -EFAULT;
	return 0;
}

static void op_queue_notify(void *opaque, struct pvm_virtq *vq)
{
	pvm_vmem_process_queue(opaque, vq);
}

static void op_reset(void *opaque)
{
	struct pvm_vmem *vm = opaque;

	/* A device reset never touches blocks (DI2, DI3): only in-flight answers are dropped. */
	pthread_mutex_lock(&vm->lock);
	vm->epoch++;
	pthread_mutex_unlock(&vm->lock);
	PVM_TRACE(vmem_device_reset, "id=%s plugged=0x%" PRIx64, vm->id, vm->v.plugged_size);
}

/* ---- discard-manager source -------------------------------------------------------------- */

static bool src_is_populated(void *opaque, uint64_t gpa, uint64_t size)
{
	struct pvm_vmem *vm = opaque;
	uint64_t end, s, e;
	bool r;

	if (size == 0 || pvm_add_overflow(gpa, size, &end) || gpa < vm->v.addr ||
	    end > vm->v.addr + vm->v.usable_region_size)
		return false;
	s = (gpa - vm->v.addr) / vm->v.block_size;
	e = PVM_DIV_ROUND_UP(end - vm->v.addr, vm->v.block_size);
	pthread_mutex_lock(&vm->lock);
	r = pvm_bitmap_range_is_set(vm->plugged, s, e - s);
	pthread_mutex_unlock(&vm->lock);
	return r;
}

static int src_replay_populated(void *opaque, uint64_t gpa, uint64_t size, pvm_discard_range_fn fn,
				void *arg)
{
	struct pvm_vmem *vm = opaque;
	uint64_t s, e, lo = gpa, hi;
	int rc = 0;

	if (pvm_add_overflow(gpa, size, &hi))
		hi = UINT64_MAX;
	pthread_mutex_lock(&vm->lock);
	pvm_bitmap_for_each_set_run(vm->plugged, s, e) {
		uint64_t a = PVM_MAX(vm->v.addr + s * vm->v.block_size, lo);
		uint64_t b = PVM_MIN(vm->v.addr + e * vm->v.block_size, hi);

		if (a < b && (rc = fn(arg, a, b - a)))
			break;
	}
	pthread_mutex_unlock(&vm->lock);
	return rc;
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

static int check_config(const struct pvm_vmem_config *c, uint64_t bs, uint64_t region_size,
			struct pvm_error *err)
{
	uint64_t end, page;

	if (!c->memory || !c->memslots)
		return pvm_error_set(err, -EINVAL, "a memory region and a memslot table are required");
	page = pvm_mem_region_page_size(c->memory);
	if (!PVM_IS_POW2(bs) || bs < MIN_BLOCK_SIZE)
		return pvm_error_set(err, -EINVAL, "block size 0x%" PRIx64 " is not a power of two >= 1 MiB", bs);
	if (bs < page)
		return pvm_error_set(err, -EINVAL, "block size 0x%" PRIx64 " is below the page size", bs);
	if (region_size == 0 || region_size > pvm_mem_region_size(c->memory))
		return pvm_error_set(err, -EINVAL, "region size 0x%" PRIx64 " does not fit the memory region",
				     region_size);
	if (!PVM_IS_ALIGNED(region_size, bs) || !PVM_IS_ALIGNED(c->addr, bs))
		return pvm_error_set(err, -EINVAL, "address and region size must be multiples of the block size");
	if (pvm_add_overflow(c->addr, region_size, &end))
		return pvm_error_set(err, -EINVAL, "region wraps around");
	if (!PVM_IS_ALIGNED(c->requested_size, bs) || c->requested_size > region_size)
		return pvm_error_set(err, -EINVAL, "requested size must be a multiple of the block size "
				     "and at most the region size");
	if (region_size / bs > UINT32_MAX)
		return pvm_error_set(err, -EINVAL, "too many blocks");
	return 0;
}

int pvm_vmem_new(const struct pvm_vmem_config *cfg, struct pvm_vmem **out, struct pvm_error *err)
{
	struct pvm_virtio_device_ops ops = {
		.name = "virtio-mem",
		.device_id = PVM_VIRTIO_ID_MEM,
		.config_size = PVM_VMEM_CONFIG_SIZE,
		.num_queues = 1,
		.queue_max_size = PVM_VMEM_QUEUE_SIZE,
		.get_config = op_get_config,
		.validate_features = op_validate_features,
		.queue_notify = op_queue_notify,
		.reset = op_reset,
	};
	static const struct pvm_discard_source_ops src = {
		.is_populated = src_is_populated,
		.replay_populated = src_replay_populated,
	};
	struct pvm_vmem *vm;
	pthread_mutexattr_t ma;
	uint64_t bs, region_size;
	int rc;

	*out = NULL;
	if (!cfg->memory)
		return pvm_error_set(err, -EINVAL, "a memory region is required");
	bs = cfg->block_size ? cfg->block_size : default_block_size(cfg->memory);
	region_size = cfg->region_size ? cfg->region_size : pvm_mem_region_size(cfg->memory);
	rc = check_config(cfg, bs, region_size, err);
	if (rc)
		return rc;

	vm = pvm_calloc(1, sizeof(*vm));
	if (!vm)
		return pvm_error_set(err, -ENOMEM, "out of memory");
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&vm->lock, &ma);
	pthread_mutexattr_destroy(&ma);
	pthread_cond_init(&vm->cond, NULL);
	vm->id = pvm_strdup(cfg->id ? cfg->id : "virtio-mem");
	if (!vm->id) {
		rc = pvm_error_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	vm->v.addr = cfg->addr;
	vm->v.region_size = region_size;
	vm->v.block_size = bs;
	vm->v.requested_size = cfg->requested_size;
	vm->node = cfg->node;
	vm->extent = cfg->usable_extent ? cfg->usable_extent : PVM_VMEM_USABLE_EXTENT_X86;
	vm->async_threshold = cfg->async_threshold ? cfg->async_threshold : DEFAULT_ASYNC_THRESHOLD;
	vm->prealloc = cfg->prealloc;
	vm->mem = cfg->memory;
	vm->slots = cfg->memslots;
	vm->policy = cfg->discard_policy;
	vm->on_size_change = cfg->on_size_change;
	vm->on_trap = cfg->on_trap;
	vm->opaque = cfg->opaque;
	vm->features = PVM_VIRTIO_BIT(VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE) |
		       (cfg->acpi_pxm ? PVM_VIRTIO_BIT(VIRTIO_MEM_F_ACPI_PXM) : 0) |
		       (cfg->persistent_suspend ? PVM_VIRTIO_BIT(VIRTIO_MEM_F_PERSISTENT_SUSPEND) : 0);
	rc = pvm_bitmap_new(region_size / bs, &vm->plugged);
	if (rc) {
		pvm_error_set(err, rc, "out of memory");
		goto fail;
	}
	vm->v.plugged = vm->plugged;

	if (vm->policy) {
		rc = pvm_discard_policy_take(vm->policy, PVM_DISCARD_REQUIRE_COORDINATED, err);
		if (rc) {
			pvm_error_prefix(err, "%s: discarding RAM is disabled", vm->id);
			goto fail;
		}
		vm->vote_held = true;
	}
	/* A clean slate (QEMU discards the whole memdev at realize). */
	rc = pvm_mem_region_discard(vm->mem, 0, region_size, err);
	if (rc)
		goto fail;
	if (cfg->enforce != PVM_ENFORCE_NONE) {
		struct pvm_enforce_config ec = {
			.mode = cfg->enforce, .policy = cfg->enforce_policy, .region = vm->mem,
			.offset = 0, .size = region_size, .block_size = bs,
			.on_trap = cfg->on_trap, .opaque = cfg->opaque,
		};

		rc = pvm_enforce_new(&ec, &vm->enforce, err);
		if (rc)
			goto fail;
	}
	rc = pvm_discard_manager_new(cfg->addr, region_size, bs, &src, vm, &vm->dm, err);
	if (rc)
		goto fail;
	vm->v.usable_region_size = pvm_vmem_usable_size(region_size, bs, vm->v.requested_size,
							vm->extent, 0, true);
	ops.features = vm->features | PVM_VIRTIO_CORE_FEATURES;
	rc = pvm_virtio_device_new(&ops, vm, cfg->memslots, &vm->vdev, err);
	if (rc)
		goto fail;
	PVM_TRACE(vmem_new, "id=%s addr=0x%" PRIx64 " region=0x%" PRIx64 " block=0x%" PRIx64
		  " requested=0x%" PRIx64 " usable=0x%" PRIx64 " enforce=%s", vm->id, cfg->addr,
		  region_size, bs, vm->v.requested_size, vm->v.usable_region_size,
		  pvm_enforce_mode_name(vm->enforce ? pvm_enforce_get_mode(vm->enforce) : PVM_ENFORCE_NONE));
	*out = vm;
	return 0;
fail:
	pvm_vmem_free(vm);
	return rc;
}

void pvm_vmem_free(struct pvm_vmem *vm)
{
	if (!vm)
		return;
	pvm_vmem_async_stop(vm);
	pvm_virtio_device_free(vm->vdev);
	/* Memslots go with the device; memory contents stay with the region's owner. */
	if (vm->plugged) {
		uint64_t s, e;

		pvm_bitmap_for_each_set_run(vm->plugged, s, e) {
			struct pvm_memslot_info info;

			if (!pvm_memslot_lookup_gpa(vm->slots, vm->v.addr + s * vm->v.block_size, &info))
				(void)pvm_memslot_delete(vm->slots, info.id, NULL);
		}
	}
	pvm_discard_manager_free(vm->dm);
	pvm_enforce_free(vm->enforce);
	if (vm->vote_held)
		(void)pvm_discard_policy_release(vm->policy, PVM_DISCARD_REQUIRE_COORDINATED);
	pvm_bitmap_free(vm->plugged);
	pvm_free(vm->id);
	pthread_cond_destroy(&vm->cond);
	pthread_mutex_destroy(&vm->lock);
	pvm_free(vm);
}

/* ---- management API ------------------------------------------------------------------------ */

const char *pvm_vmem_id(const struct pvm_vmem *vm)
{
	return vm->id;
}

struct pvm_virtio_device *pvm_vmem_virtio_device(struct pvm_vmem *vm)
{
	return vm->vdev;
}

struct pvm_discard_manager *pvm_vmem_discard_manager(struct pvm_vmem *vm)
{
	return vm->dm;
}

struct pvm_enforce *pvm_vmem_enforcer(struct pvm_vmem *vm)
{
	return vm->enforce;
}

int pvm_vmem_set_requested_size(struct pvm_vmem *vm, uint64_t size, struct pvm_error *err)
{
	if (!PVM_IS_ALIGNED(size, vm->v.block_size))
		return pvm_error_set(err, -EINVAL, "requested size 0x%" PRIx64 " is not a multiple of "
				     "the block size 0x%" PRIx64, size, vm->v.block_size);
	if (size > vm->v.region_size)
		return pvm_error_set(err, -EINVAL, "requested size 0x%" PRIx64 " exceeds the region size "
				     "0x%" PRIx64, size, vm->v.region_size);
	pthread_mutex_lock(&vm->lock);
	if (size != vm->v.requested_size) {
		/* Usable first (never shrinking at run time), then the target (DC4 holds throughout). */
		vm->v.usable_region_size = pvm_vmem_usable_size(vm->v.region_size, vm->v.block_size,
								size, vm->extent,
								vm->v.usable_region_size, false);
		vm->v.requested_size = size;
	}
	PVM_TRACE(vmem_requested_size, "id=%s requested=0x%" PRIx64 " usable=0x%" PRIx64, vm->id,
		  size, vm->v.usable_region_size);
	pthread_mutex_unlock(&vm->lock);
	/* Always, even when nothing changed (QEMU does too, DC11). */
	pvm_virtio_device_config_changed(vm->vdev);
	return 0;
}

uint64_t pvm_vmem_get_requested_size(const struct pvm_vmem *vm)
{
	struct pvm_vmem *m = (struct pvm_vmem *)vm;
	uint64_t v;

	pthread_mutex_lock(&m->lock);
	v = vm->v.requested_size;
	pthread_mutex_unlock(&m->lock);
	return v;
}

uint64_t pvm_vmem_get_plugged_size(const struct pvm_vmem *vm)
{
	struct pvm_vmem *m = (struct pvm_vmem *)vm;
	uint64_t v;

	pthread_mutex_lock(&m->lock);
	v = vm->v.plugged_size;
	pthread_mutex_unlock(&m->lock);
	return v;
}

void pvm_vmem_get_info(const struct pvm_vmem *vm, struct pvm_vmem_info *out)
{
	struct pvm_vmem *m = (struct pvm_vmem *)vm;

	pthread_mutex_lock(&m->lock);
	*out = (struct pvm_vmem_info){
		.addr = vm->v.addr,
		.region_size = vm->v.region_size,
		.block_size = vm->v.block_size,
		.usable_region_size = vm->v.usable_region_size,
		.plugged_size = vm->v.plugged_size,
		.requested_size = vm->v.requested_size,
		.node = vm->node,
		.enforce = vm->enforce ? pvm_enforce_get_mode(vm->enforce) : PVM_ENFORCE_NONE,
		.requests = vm->requests,
		.busy_answers = vm->busy_answers,
		.async_completions = vm->async_completions,
		.memslots = vm->nslots,
	};
	pthread_mutex_unlock(&m->lock);
}

int pvm_vmem_get_bitmap(const struct pvm_vmem *vm, struct pvm_bitmap **out)
{
	struct pvm_vmem *m = (struct pvm_vmem *)vm;
	int rc;

	pthread_mutex_lock(&m->lock);
	rc = pvm_bitmap_dup(vm->plugged, out);
	pthread_mutex_unlock(&m->lock);
	return rc;
}

int pvm_vmem_system_reset(struct pvm_vmem *vm, bool wakeup, struct pvm_error *err)
{
	int rc = 0;

	if (wakeup)
		return 0;   /* S3 resume: blocks keep their state (DO8) */
	pvm_vmem_wait_idle(vm);
	pthread_mutex_lock(&vm->lock);
	if (vm->v.busy && vm->v.plugged_size) {
		/* The spec's corner case: the new driver finds memory plugged and unplugs all. */
		pthread_mutex_unlock(&vm->lock);
		return 0;
	}
	rc = pvm_vmem_unplug_all(vm);
	pthread_mutex_unlock(&vm->lock);
	if (rc)
		return pvm_error_set(err, rc, "%s: system reset could not unplug memory", vm->id);
	return 0;
}

void pvm_vmem_set_busy(struct pvm_vmem *vm, bool busy)
{
	pthread_mutex_lock(&vm->lock);
	vm->v.busy = busy;
	pthread_mutex_unlock(&vm->lock);
}

int pvm_vmem_audit(struct pvm_vmem *vm, struct pvm_vmem_audit *out, struct pvm_error *err)
{
	uint64_t n, s, e = 0;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	pvm_vmem_wait_idle(vm);
	pthread_mutex_lock(&vm->lock);
	n = pvm_bitmap_size(vm->plugged);
	/* Unplugged runs: nothing resident. */
	for (s = pvm_bitmap_next_clear(vm->plugged, 0); s < n; s = pvm_bitmap_next_clear(vm->plugged, e)) {
		uint64_t bytes = 0;

		e = pvm_bitmap_next_set(vm->plugged, s);
		rc = pvm_enforce_resident(vm->mem, s * vm->v.block_size, (e - s) * vm->v.block_size,
					  &bytes, err);
		if (rc)
			goto out;
		out->resident_unplugged += bytes;
	}
	if (vm->enforce)
		for (uint64_t b = 0; b < n; b++)
			if (pvm_enforce_is_protected(vm->enforce, b) == pvm_bitmap_test(vm->plugged, b))
				out->protection_mismatch++;
	pvm_vmem_slots_audit(vm, &out->memslot_mismatch);
	if (pvm_bitmap_count(vm->plugged) * vm->v.block_size != vm->v.plugged_size)
		out->size_mismatch = 1;
	if (out->resident_unplugged || out->protection_mismatch || out->memslot_mismatch ||
	    out->size_mismatch)
		rc = pvm_error_set(err, -EIO, "%s: audit found %" PRIu64 " resident bytes in unplugged "
				   "blocks, %" PRIu64 " protection and %" PRIu64 " memslot mismatches",
				   vm->id, out->resident_unplugged, out->protection_mismatch,
				   out->memslot_mismatch);
out:
	pthread_mutex_unlock(&vm->lock);
	return rc;
}

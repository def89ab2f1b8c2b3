/* SPDX-License-Identifier: MIT */
/*
 * virtio-mem side effects, each step undone on a later failure so that the device state
 * changes only when the request is acknowledged (research/virtio-mem.md §7.1 item 5):
 *   plug:   enforcement lifted, memslots for the new plugged run, listeners told (populate),
 *           optional preallocation, then bitmap and plugged_size;
 *   unplug: memslots removed, listeners told (discard), memory discarded, enforcement applied,
 *           then bitmap and plugged_size.
 * Memslots: one per maximal run of plugged blocks; plugging next to a run merges, unplugging
 * inside a run splits it, so the table holds at most ceil(blocks / 2) of the device's slots.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include <pvmem/discard.h>
#include "core/util.h"
#include "virtio/mem-priv.h"

static uint64_t gpa_of(const struct pvm_vmem *vm, uint64_t block)
{
	return vm->v.addr + block * vm->v.block_size;
}

static void *hva_of(const struct pvm_vmem *vm, uint64_t block)
{
	return (uint8_t *)pvm_mem_region_host(vm->mem) + block * vm->v.block_size;
}

/* Add a slot for blocks [s, e). */
static int slot_add(struct pvm_vmem *vm, uint64_t s, uint64_t e)
{
	uint32_t id;
	int rc = pvm_memslot_free_id(vm->slots, &id);

	if (rc)
		return rc;
	rc = pvm_memslot_add(vm->slots, id, 0, gpa_of(vm, s), (e - s) * vm->v.block_size,
			     hva_of(vm, s), NULL);
	if (!rc)
		vm->nslots++;
	return rc;
}

/* Find the slot holding block @b: its first block in *@s and end block in *@e. */
static int slot_find(struct pvm_vmem *vm, uint64_t b, uint32_t *id, uint64_t *s, uint64_t *e)
{
	struct pvm_memslot_info info;
	int rc = pvm_memslot_lookup_gpa(vm->slots, gpa_of(vm, b), &info);

	if (rc)
		return rc;
	if (info.gpa < vm->v.addr || (info.gpa - vm->v.addr) % vm->v.block_size ||
	    info.size % vm->v.block_size)
		return -EEXIST;   /* not one of ours */
	*id = info.id;
	*s = (info.gpa - vm->v.addr) / vm->v.block_size;
	*e = *s + info.size / vm->v.block_size;
	return 0;
}

static int slot_del(struct pvm_vmem *vm, uint32_t id)
{
	int rc = pvm_memslot_delete(vm->slots, id, NULL);

	if (!rc)
		vm->nslots--;
	return rc;
}

/* Blocks [first, first+count) are about to be plugged (their bits are still clear): merge them
 * with the neighbouring runs into one slot. */
static int slots_plug(struct pvm_vmem *vm, uint64_t first, uint64_t count)
{
	uint64_t s = first, e = first + count, ls = 0, le = 0, rs = 0, re = 0;
	uint32_t lid = 0, rid = 0;
	bool left = first > 0 && pvm_bitmap_test(vm->plugged, first - 1);
	bool right = e < pvm_bitmap_size(vm->plugged) && pvm_bitmap_test(vm->plugged, e);
	int rc;

	if (left && (rc = slot_find(vm, first - 1, &lid, &ls, &le)))
		return rc;
	if (right && (rc = slot_find(vm, e, &rid, &rs, &re)))
		return rc;
	if (left) {
		s = ls;
		if (slot_del(vm, lid))
			return -EIO;
	}
	if (right) {
		e = re;
		if (slot_del(vm, rid)) {
			if (left && slot_add(vm, ls, le))
				pvm_err("%s: lost the memslot of blocks %" PRIu64 "..%" PRIu64, vm->id, ls, le);
			return -EIO;
		}
	}
	rc = slot_add(vm, s, e);
	if (rc) {
		if ((left && slot_add(vm, ls, le)) || (right && slot_add(vm, rs, re)))
			pvm_err("%s: lost a neighbouring memslot while rolling back", vm->id);
	}
	return rc;
}

/* Blocks [first, first+count), all inside one plugged run, are about to be unplugged: split. */
static int slots_unplug(struct pvm_vmem *vm, uint64_t first, uint64_t count)
{
	uint64_t s, e, end = first + count;
	uint32_t id;
	int rc = slot_find(vm, first, &id, &s, &e);

	if (rc)
		return rc;
	if (s > first || e < end)
		return -EIO;
	rc = slot_del(vm, id);
	if (rc)
		return rc;
	if (s < first && (rc = slot_add(vm, s, first)))
		goto undo;
	if (end < e && (rc = slot_add(vm, end, e))) {
		uint32_t lid;
		uint64_t a, b;

		if (s < first && !slot_find(vm, s, &lid, &a, &b))
			slot_del(vm, lid);
		goto undo;
	}
	return 0;
undo:
	if (slot_add(vm, s, e))
		pvm_err("%s: lost the memslot of blocks %" PRIu64 "..%" PRIu64, vm->id, s, e);
	return rc;
}

static void reprotect(struct pvm_vmem *vm, uint64_t first, uint64_t count)
{
	struct pvm_error err = { 0 };

	if (vm->enforce && pvm_enforce_protect(vm->enforce, first, count, &err))
		pvm_warn("%s: cannot protect unplugged blocks %" PRIu64 "+%" PRIu64 ": %s", vm->id,
			 first, count, pvm_error_message(&err));
}

static void discard(struct pvm_vmem *vm, uint64_t first, uint64_t count)
{
	struct pvm_error err = { 0 };

	if (pvm_mem_region_discard(vm->mem, first * vm->v.block_size, count * vm->v.block_size, &err))
		pvm_warn("%s: discard of blocks %" PRIu64 "+%" PRIu64 " failed: %s", vm->id, first,
			 count, pvm_error_message(&err));
}

static int plug(struct pvm_vmem *vm, uint64_t first, uint64_t count)
{
	uint64_t bs = vm->v.block_size, gpa = gpa_of(vm, first), len = count * bs;
	struct pvm_error err = { 0 };
	int rc;

	if (vm->enforce && (rc = pvm_enforce_unprotect(vm->enforce, first, count, &err))) {
		pvm_warn("%s: cannot lift protection: %s", vm->id, pvm_error_message(&err));
		reprotect(vm, first, count);
		return rc;
	}
	rc = slots_plug(vm, first, count);
	if (rc) {
		pvm_warn("%s: no memslot for the plugged run: %s", vm->id, strerror(-rc));
		goto undo_protect;
	}
	if (vm->dm && (rc = pvm_discard_manager_notify_populate(vm->dm, gpa, len, &err))) {
		pvm_warn("%s: a listener refused the plug: %s", vm->id, pvm_error_message(&err));
		goto undo_slots;
	}
	if (vm->prealloc) {
		rc = pvm_mem_region_populate(vm->mem, first * bs, len, NULL, &err);
		if (rc) {
			pvm_warn("%s: preallocation failed: %s", vm->id, pvm_error_message(&err));
			if (vm->dm)
				pvm_discard_manager_notify_discard(vm->dm, gpa, len);
			goto undo_slots;
		}
	}
	pvm_bitmap_set_range(vm->plugged, first, count);
	vm->v.plugged_size += len;
	return 0;
undo_slots:
	if (slots_unplug(vm, first, count))
		pvm_err("%s: cannot roll back the memslots of a failed plug", vm->id);
undo_protect:
	/* Preallocation or a listener may have populated memory. */
	discard(vm, first, count);
	reprotect(vm, first, count);
	return rc;
}

static int unplug(struct pvm_vmem *vm, uint64_t first, uint64_t count)
{
	uint64_t bs = vm->v.block_size, gpa = gpa_of(vm, first), len = count * bs;
	struct pvm_error err = { 0 };
	int rc = slots_unplug(vm, first, count);

	if (rc) {
		pvm_warn("%s: cannot remove the memslot of unplugged blocks: %s", vm->id, strerror(-rc));
		return rc;
	}
	if (vm->dm)
		pvm_discard_manager_notify_discard(vm->dm, gpa, len);
	rc = pvm_mem_region_discard(vm->mem, first * bs, len, &err);
	if (rc) {
		pvm_warn("%s: discard failed: %s", vm->id, pvm_error_message(&err));
		if (vm->dm && pvm_discard_manager_notify_populate(vm->dm, gpa, len, NULL))
			pvm_err("%s: a listener refused to take back blocks it had", vm->id);
		if (slots_plug(vm, first, count))
			pvm_err("%s: cannot restore the memslot of blocks still plugged", vm->id);
		return rc;
	}
	reprotect(vm, first, count);
	pvm_bitmap_clear_range(vm->plugged, first, count);
	vm->v.plugged_size -= len;
	return 0;
}

int pvm_vmem_unplug_all(struct pvm_vmem *vm)
{
	uint64_t s, e;
	struct pvm_error err = { 0 };
	int rc = 0;

	if (vm->v.plugged_size) {
		/* Memslots first, so nothing reaches the memory while it goes. */
		pvm_bitmap_for_each_set_run(vm->plugged, s, e) {
			uint32_t id;
			uint64_t a, b;

			if (!slot_find(vm, s, &id, &a, &b))
				slot_del(vm, id);
		}
		if (vm->dm)
			pvm_discard_manager_notify_discard_all(vm->dm);
		pvm_bitmap_for_each_set_run(vm->plugged, s, e) {
			rc = pvm_mem_region_discard(vm->mem, s * vm->v.block_size,
						    (e - s) * vm->v.block_size, &err);
			if (rc)
				break;
		}
		if (rc) {
			pvm_warn("%s: unplug-all: discard failed: %s", vm->id, pvm_error_message(&err));
			pvm_bitmap_for_each_set_run(vm->plugged, s, e)
				if (slot_add(vm, s, e))
					pvm_err("%s: cannot restore a memslot", vm->id);
			if (vm->dm && pvm_discard_manager_replay_to_listeners(vm->dm, NULL))
				pvm_err("%s: a listener refused blocks still plugged", vm->id);
			return rc;
		}
		pvm_bitmap_for_each_set_run(vm->plugged, s, e)
			reprotect(vm, s, e - s);
		pvm_bitmap_clear_all(vm->plugged);
		vm->v.plugged_size = 0;
		pvm_vmem_size_changed(vm);
	}
	vm->v.usable_region_size = pvm_vmem_usable_size(vm->v.region_size, vm->v.block_size,
							vm->v.requested_size, vm->extent,
							vm->v.usable_region_size, true);
	PVM_TRACE(vmem_unplugged_all, "id=%s usable=0x%" PRIx64, vm->id, vm->v.usable_region_size);
	return 0;
}

int pvm_vmem_act(struct pvm_vmem *vm, const struct pvm_vmem_decision *d)
{
	int rc;

	switch (d->action) {
	case PVM_VMEM_ACT_PLUG:
		rc = plug(vm, d->first, d->count);
		break;
	case PVM_VMEM_ACT_UNPLUG:
		rc = unplug(vm, d->first, d->count);
		break;
	case PVM_VMEM_ACT_UNPLUG_ALL:
	case PVM_VMEM_ACT_SHRINK_USABLE:
		return pvm_vmem_unplug_all(vm);
	default:
		return 0;
	}
	if (!rc)
		pvm_vmem_size_changed(vm);
	return rc;
}

int pvm_vmem_slots_audit(struct pvm_vmem *vm, uint64_t *mismatch)
{
	uint64_t n = pvm_bitmap_size(vm->plugged);

	*mismatch = 0;
	for (uint64_t b = 0; b < n; b++) {
		bool mapped = pvm_memslot_gpa_to_hva(vm->slots, gpa_of(vm, b)) == hva_of(vm, b);

		if (mapped != pvm_bitmap_test(vm->plugged, b))
			(*mismatch)++;
	}
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * virtio-mem wire format and the pure decision function (see mem-state.h). Everything the
 * guest sends is checked here with 64-bit overflow checks before any bitmap index is formed.
 */
#include <string.h>

#include "core/util.h"
#include "virtio/mem-state.h"

static uint16_t get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

bool pvm_vmem_req_parse(const void *buf, uint64_t len, struct pvm_vmem_req *out)
{
	const uint8_t *p = buf;

	if (len < PVM_VMEM_REQ_SIZE)
		return false;
	/* Only the type and the request-specific fields; padding is ignored (DP1, DP2). */
	out->type = get_le16(p);
	out->addr = get_le64(p + 8);
	out->nb_blocks = get_le16(p + 16);
	return true;
}

void pvm_vmem_req_encode(const struct pvm_vmem_req *req, uint8_t out[PVM_VMEM_REQ_SIZE])
{
	memset(out, 0, PVM_VMEM_REQ_SIZE);
	put_le16(out, req->type);
	put_le64(out + 8, req->addr);
	put_le16(out + 16, req->nb_blocks);
}

void pvm_vmem_resp_encode(uint16_t type, uint16_t state, uint8_t out[PVM_VMEM_RESP_SIZE])
{
	memset(out, 0, PVM_VMEM_RESP_SIZE);
	put_le16(out, type);
	put_le16(out + 8, state);
}

bool pvm_vmem_resp_parse(const void *buf, uint64_t len, uint16_t *type, uint16_t *state)
{
	const uint8_t *p = buf;

	if (len < PVM_VMEM_RESP_SIZE)
		return false;
	*type = get_le16(p);
	*state = get_le16(p + 8);
	return true;
}

void pvm_vmem_config_encode(const struct pvm_vmem_view *v, uint16_t node_id,
			    uint8_t out[PVM_VMEM_CONFIG_SIZE])
{
	memset(out, 0, PVM_VMEM_CONFIG_SIZE);
	put_le64(out + 0, v->block_size);
	put_le16(out + 8, node_id);
	put_le64(out + 16, v->addr);
	put_le64(out + 24, v->region_size);
	put_le64(out + 32, v->usable_region_size);
	put_le64(out + 40, v->plugged_size);
	put_le64(out + 48, v->requested_size);
}

uint64_t pvm_vmem_usable_size(uint64_t region_size, uint64_t block_size, uint64_t requested,
			      uint64_t extent, uint64_t current, bool can_shrink)
{
	uint64_t want;

	if (requested == 0) {
		want = 0;
	} else {
		if (pvm_add_overflow(requested, extent, &want) || want > region_size)
			want = region_size;
		/* region_size is a multiple of block_size, so this cannot pass it. */
		want = PVM_ALIGN_UP(want, block_size);
	}
	if (want < current && !can_shrink)
		return current;
	return want;
}

/* ERROR unless [addr, addr + nb_blocks * block_size) is a non-empty, block-aligned range that
 * lies inside the usable region (QEMU's virtio_mem_valid_range()). */
static const char *check_range(const struct pvm_vmem_view *v, uint64_t addr, uint16_t nb_blocks,
			       uint64_t *first)
{
	uint64_t size = (uint64_t)nb_blocks * v->block_size, end, usable_end;

	if (!PVM_IS_ALIGNED(addr, v->block_size))
		return "address not aligned to the block size";
	if (size == 0)
		return "no blocks";
	if (pvm_add_overflow(addr, size, &end))
		return "range wraps around";
	if (addr < v->addr)
		return "range starts below the region";
	usable_end = v->addr + v->usable_region_size;
	if (addr >= usable_end)
		return "range starts beyond the usable region";
	if (end > usable_end)
		return "range ends beyond the usable region";
	*first = (addr - v->addr) / v->block_size;
	return NULL;
}

void pvm_vmem_decide(const struct pvm_vmem_view *v, const struct pvm_vmem_req *req,
		     struct pvm_vmem_decision *d)
{
	uint64_t first = 0;
	const char *why;

	memset(d, 0, sizeof(*d));
	switch (req->type) {
	case VIRTIO_MEM_REQ_PLUG:
	case VIRTIO_MEM_REQ_UNPLUG: {
		bool plug = req->type == VIRTIO_MEM_REQ_PLUG;
		uint64_t size = (uint64_t)req->nb_blocks * v->block_size;

		why = check_range(v, req->addr, req->nb_blocks, &first);
		if (why) {
			d->resp = VIRTIO_MEM_RESP_ERROR;
			d->why = why;
			return;
		}
		/* plugged_size <= usable <= region and size <= usable: no overflow here. */
		if (plug && v->plugged_size + size > v->requested_size) {
			d->resp = VIRTIO_MEM_RESP_NACK;
			d->why = "plugging beyond the requested size";
			return;
		}
		if (plug ? !pvm_bitmap_range_is_clear(v->plugged, first, req->nb_blocks)
			 : !pvm_bitmap_range_is_set(v->plugged, first, req->nb_blocks)) {
			d->resp = VIRTIO_MEM_RESP_ERROR;
			d->why = plug ? "range not entirely unplugged" : "range not entirely plugged";
			return;
		}
		if (v->busy) {
			d->resp = VIRTIO_MEM_RESP_BUSY;
			d->why = "device busy";
			return;
		}
		d->action = plug ? PVM_VMEM_ACT_PLUG : PVM_VMEM_ACT_UNPLUG;
		d->resp = VIRTIO_MEM_RESP_ACK;
		d->first = first;
		d->count = req->nb_blocks;
		return;
	}
	case VIRTIO_MEM_REQ_UNPLUG_ALL:
		/* DA1/DA2: nothing but the type counts. Nothing plugged: ACK even when busy. */
		if (v->plugged_size == 0) {
			d->action = PVM_VMEM_ACT_SHRINK_USABLE;
			d->resp = VIRTIO_MEM_RESP_ACK;
			return;
		}
		if (v->busy) {
			d->resp = VIRTIO_MEM_RESP_BUSY;
			d->why = "device busy";
			return;
		}
		d->action = PVM_VMEM_ACT_UNPLUG_ALL;
		d->resp = VIRTIO_MEM_RESP_ACK;
		return;
	case VIRTIO_MEM_REQ_STATE:
		why = check_range(v, req->addr, req->nb_blocks, &first);
		if (why) {
			d->resp = VIRTIO_MEM_RESP_ERROR;
			d->why = why;
			return;
		}
		d->resp = VIRTIO_MEM_RESP_ACK;
		if (pvm_bitmap_range_is_set(v->plugged, first, req->nb_blocks))
			d->state = VIRTIO_MEM_STATE_PLUGGED;
		else if (pvm_bitmap_range_is_clear(v->plugged, first, req->nb_blocks))
			d->state = VIRTIO_MEM_STATE_UNPLUGGED;
		else
			d->state = VIRTIO_MEM_STATE_MIXED;
		return;
	default:
		d->action = PVM_VMEM_ACT_VIOLATION;
		d->resp = VIRTIO_MEM_RESP_ERROR;
		d->why = "unknown request type";
		return;
	}
}

const char *pvm_vmem_req_name(uint16_t type)
{
	static const char *const names[] = { "plug", "unplug", "unplug_all", "state" };

	return type < PVM_ARRAY_SIZE(names) ? names[type] : "unknown";
}

const char *pvm_vmem_resp_name(uint16_t resp)
{
	static const char *const names[] = { "ack", "nack", "busy", "error" };

	return resp < PVM_ARRAY_SIZE(names) ? names[resp] : "unknown";
}

const char *pvm_vmem_state_name(uint16_t state)
{
	static const char *const names[] = { "plugged", "unplugged", "mixed" };

	return state < PVM_ARRAY_SIZE(names) ? names[state] : "unknown";
}

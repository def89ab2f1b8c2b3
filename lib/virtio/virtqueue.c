/* SPDX-License-Identifier: MIT */
/*
 * Split virtqueues, device side (virtio 1.x "Split Virtqueues"). The driver owns the descriptor
 * table and the available ring, the device the used ring; all three live in guest memory and
 * are reached through pvm_memslot_translate() on every operation (never cached), so a memslot
 * change between two pops is safe.
 *
 * Everything the guest wrote is read once into host memory (descriptor copies, the avail idx)
 * before it is checked and used, so a guest racing with the device cannot change a value
 * between its check and its use. Chain walks are bounded: a direct chain by the queue size,
 * an indirect table by its entry count, and the whole element by PVM_VIRTQ_MAX_SEGS.
 */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/util.h"
#include "virtio/virtqueue-priv.h"

#define DESC_SIZE 16u
#define MAX_CHAIN_BYTES (1ULL << 32)   /* "MUST NOT add a descriptor chain longer than 2^32 bytes" */

/* A descriptor as the guest wrote it (little-endian on the wire). */
struct vring_desc {
	uint64_t addr;   /* guest-physical buffer address */
	uint32_t len;    /* buffer length */
	uint16_t flags;  /* PVM_VIRTQ_DESC_F_* */
	uint16_t next;   /* next descriptor when F_NEXT */
};

/* Host views of the three ring parts, valid for one operation under vq->lock. */
struct ring_view {
	uint8_t *desc;   /* num descriptors */
	uint8_t *avail;  /* flags, idx, ring[num], used_event */
	uint8_t *used;   /* flags, idx, ring[num] {id, len}, avail_event */
};

static uint64_t avail_bytes(uint16_t num)
{
	return 4 + 2ULL * num + 2;  /* used_event is always counted: it is 2 bytes, harmless */
}

static uint64_t used_bytes(uint16_t num)
{
	return 4 + 8ULL * num + 2;
}

static uint16_t load16_acquire(const uint8_t *p)
{
	return le16toh(__atomic_load_n((const uint16_t *)(const void *)p, __ATOMIC_ACQUIRE));
}

static uint16_t load16(const uint8_t *p)
{
	return le16toh(__atomic_load_n((const uint16_t *)(const void *)p, __ATOMIC_RELAXED));
}

static void store16_release(uint8_t *p, uint16_t v)
{
	__atomic_store_n((uint16_t *)(void *)p, htole16(v), __ATOMIC_RELEASE);
}

static void store16(uint8_t *p, uint16_t v)
{
	__atomic_store_n((uint16_t *)(void *)p, htole16(v), __ATOMIC_RELAXED);
}

/* Map the parts of the ring that @what selects (1 desc, 2 avail, 4 used). */
static int map_rings(struct pvm_virtq *vq, unsigned what, struct ring_view *v, char *why, size_t wl)
{
	struct pvm_memslot_table *mem = vq->dev->mem;
	void *p;

	if ((what & 1)) {
		if (pvm_memslot_translate(mem, vq->desc_gpa, DESC_SIZE * vq->num, PVM_ACCESS_READ, &p)) {
			snprintf(why, wl, "descriptor table 0x%llx+0x%llx is not in guest memory",
				 (unsigned long long)vq->desc_gpa, (unsigned long long)DESC_SIZE * vq->num);
			return -EIO;
		}
		v->desc = p;
	}
	if ((what & 2)) {
		if (pvm_memslot_translate(mem, vq->avail_gpa, avail_bytes(vq->num), PVM_ACCESS_READ, &p)) {
			snprintf(why, wl, "available ring 0x%llx is not in guest memory",
				 (unsigned long long)vq->avail_gpa);
			return -EIO;
		}
		v->avail = p;
	}
	if ((what & 4)) {
		if (pvm_memslot_translate(mem, vq->used_gpa, used_bytes(vq->num),
					  PVM_ACCESS_READ | PVM_ACCESS_WRITE, &p)) {
			snprintf(why, wl, "used ring 0x%llx is not in writable guest memory",
				 (unsigned long long)vq->used_gpa);
			return -EIO;
		}
		v->used = p;
	}
	return 0;
}

int pvm_virtq_init(struct pvm_virtq *vq, struct pvm_virtio_device *dev, uint16_t index,
		   uint16_t max_size)
{
	memset(vq, 0, sizeof(*vq));
	vq->dev = dev;
	vq->index = index;
	vq->max_size = max_size;
	vq->seg_iov = pvm_calloc(PVM_VIRTQ_MAX_SEGS, sizeof(*vq->seg_iov));
	vq->seg_addr = pvm_calloc(PVM_VIRTQ_MAX_SEGS, sizeof(*vq->seg_addr));
	vq->seg_write = pvm_calloc(PVM_VIRTQ_MAX_SEGS, sizeof(*vq->seg_write));
	if (!vq->seg_iov || !vq->seg_addr || !vq->seg_write) {
		pvm_virtq_destroy(vq);
		return -ENOMEM;
	}
	pthread_mutex_init(&vq->lock, NULL);
	return 0;
}

void pvm_virtq_destroy(struct pvm_virtq *vq)
{
	pvm_free(vq->seg_iov);
	pvm_free(vq->seg_addr);
	pvm_free(vq->seg_write);
	vq->seg_iov = NULL;
	vq->seg_addr = NULL;
	vq->seg_write = NULL;
	if (vq->dev)
		pthread_mutex_destroy(&vq->lock);
	vq->dev = NULL;
}

void pvm_virtq_reset(struct pvm_virtq *vq)
{
	pthread_mutex_lock(&vq->lock);
	vq->ready = false;
	vq->kick_pending = false;
	vq->last_avail = 0;
	vq->used_idx = 0;
	vq->signalled_used = 0;
	vq->signalled_valid = false;
	vq->inflight = 0;
	vq->epoch++;
	pthread_mutex_unlock(&vq->lock);
}

int pvm_virtq_enable(struct pvm_virtq *vq, bool event_idx, bool indirect, char *why, size_t wl)
{
	struct ring_view v;
	int rc = -EIO;

	pthread_mutex_lock(&vq->lock);
	if (vq->num == 0 || !PVM_IS_POW2(vq->num) || vq->num > vq->max_size) {
		snprintf(why, wl, "queue size %u is not a power of two <= %u", vq->num, vq->max_size);
	} else if (!PVM_IS_ALIGNED(vq->desc_gpa, 16) || !PVM_IS_ALIGNED(vq->avail_gpa, 2) ||
		   !PVM_IS_ALIGNED(vq->used_gpa, 4)) {
		snprintf(why, wl, "ring addresses 0x%llx/0x%llx/0x%llx are not aligned to 16/2/4",
			 (unsigned long long)vq->desc_gpa, (unsigned long long)vq->avail_gpa,
			 (unsigned long long)vq->used_gpa);
	} else if (map_rings(vq, 7, &v, why, wl) == 0) {
		vq->event_idx = event_idx;
		vq->indirect = indirect;
		vq->last_avail = 0;
		vq->used_idx = 0;
		vq->signalled_valid = false;
		vq->inflight = 0;
		vq->epoch++;
		vq->ready = true;
		rc = 0;
	}
	pthread_mutex_unlock(&vq->lock);
	return rc;
}

/* Translate one buffer into segments, splitting it where it crosses into an adjacent slot. */
static int add_buffer(struct pvm_virtq *vq, unsigned *nseg, uint64_t gpa, uint32_t len, bool write,
		      char *why, size_t wl)
{
	unsigned access = write ? PVM_ACCESS_WRITE : PVM_ACCESS_READ;
	uint64_t left = len;

	if (pvm_range_wraps(gpa, left)) {
		snprintf(why, wl, "buffer 0x%llx+0x%x wraps", (unsigned long long)gpa, len);
		return -EIO;
	}
	while (left) {
		struct pvm_memslot_info slot;
		uint64_t chunk = left;
		void *hva;

		if (pvm_memslot_translate(vq->dev->mem, gpa, chunk, access, &hva)) {
			/* Maybe it continues in the next slot: take this slot's part only. */
			if (pvm_memslot_lookup_gpa(vq->dev->mem, gpa, &slot) ||
			    slot.gpa + slot.size - gpa >= left ||
			    pvm_memslot_translate(vq->dev->mem, gpa, chunk = slot.gpa + slot.size - gpa,
						  access, &hva)) {
				snprintf(why, wl, "buffer 0x%llx+0x%x is not in %sguest memory",
					 (unsigned long long)gpa, len, write ? "writable " : "");
				return -EIO;
			}
		}
		if (*nseg >= PVM_VIRTQ_MAX_SEGS) {
			snprintf(why, wl, "chain has more than %u segments", PVM_VIRTQ_MAX_SEGS);
			return -EIO;
		}
		vq->seg_iov[*nseg] = (struct iovec){ .iov_base = hva, .iov_len = (size_t)chunk };
		vq->seg_addr[*nseg] = gpa;
		vq->seg_write[*nseg] = write;
		(*nseg)++;
		gpa += chunk;
		left -= chunk;
	}
	return 0;
}

/* Walk the chain starting at @head into the scratch segments. */
static int walk_chain(struct pvm_virtq *vq, const struct ring_view *v, uint16_t head,
		      unsigned *nseg, char *why, size_t wl)
{
	const uint8_t *table = v->desc;
	uint32_t table_len = vq->num, steps = 0;
	uint64_t total = 0;
	bool indirect = false, seen_write = false;
	uint32_t i = head;

	*nseg = 0;
	for (;;) {
		struct vring_desc d;
		bool write;

		if (i >= table_len) {
			snprintf(why, wl, "descriptor index %u out of range (%u)", i, table_len);
			return -EIO;
		}
		if (++steps > table_len) {
			snprintf(why, wl, "%s chain from head %u loops or is longer than %u",
				 indirect ? "indirect" : "descriptor", head, table_len);
			return -EIO;
		}
		memcpy(&d, table + (size_t)i * DESC_SIZE, sizeof(d));
		d.addr = le64toh(d.addr);
		d.len = le32toh(d.len);
		d.flags = le16toh(d.flags);
		d.next = le16toh(d.next);

		if (d.flags & PVM_VIRTQ_DESC_F_INDIRECT) {
			void *p;

			if (!vq->indirect) {
				snprintf(why, wl, "indirect descriptor without VIRTIO_F_INDIRECT_DESC");
				return -EIO;
			}
			if (indirect) {
				snprintf(why, wl, "nested indirect descriptor");
				return -EIO;
			}
			if (d.flags & PVM_VIRTQ_DESC_F_NEXT) {
				snprintf(why, wl, "indirect descriptor with NEXT");
				return -EIO;
			}
			if (d.len == 0 || d.len % DESC_SIZE || d.len / DESC_SIZE > PVM_VIRTQ_MAX_SIZE) {
				snprintf(why, wl, "indirect table length %u is not a multiple of 16 in 16..%u",
					 d.len, PVM_VIRTQ_MAX_SIZE * DESC_SIZE);
				return -EIO;
			}
			if (pvm_memslot_translate(vq->dev->mem, d.addr, d.len, PVM_ACCESS_READ, &p)) {
				snprintf(why, wl, "indirect table 0x%llx+0x%x is not in guest memory",
					 (unsigned long long)d.addr, d.len);
				return -EIO;
			}
			table = p;
			table_len = d.len / DESC_SIZE;
			indirect = true;
			steps = 0;
			i = 0;
			continue;
		}
		if (d.len == 0) {
			snprintf(why, wl, "zero-length descriptor %u", i);
			return -EIO;
		}
		write = d.flags & PVM_VIRTQ_DESC_F_WRITE;
		if (!write && seen_write) {
			snprintf(why, wl, "device-readable descriptor after a device-writable one");
			return -EIO;
		}
		seen_write |= write;
		total += d.len;
		if (total > MAX_CHAIN_BYTES) {
			snprintf(why, wl, "chain longer than 4 GiB");
			return -EIO;
		}
		if (add_buffer(vq, nseg, d.addr, d.len, write, why, wl))
			return -EIO;
		if (!(d.flags & PVM_VIRTQ_DESC_F_NEXT))
			return 0;
		i = d.next;
	}
}

/* Build the element from the scratch segments (readable ones come first). */
static struct pvm_virtq_elem *make_elem(struct pvm_virtq *vq, uint16_t head, unsigned nseg)
{
	struct pvm_virtq_elem *e;
	unsigned nout = 0;
	size_t sz;

	while (nout < nseg && !vq->seg_write[nout])
		nout++;
	sz = sizeof(*e) + nseg * (sizeof(struct iovec) + sizeof(uint64_t));
	e = pvm_malloc(sz);
	if (!e)
		return NULL;
	memset(e, 0, sizeof(*e));
	e->head = head;
	e->queue = vq->index;
	e->out_num = nout;
	e->in_num = nseg - nout;
	e->out = (struct iovec *)(void *)(e + 1);
	e->in = e->out + nout;
	e->out_addr = (uint64_t *)(void *)(e->out + nseg);
	e->in_addr = e->out_addr + nout;
	memcpy(e->out, vq->seg_iov, nseg * sizeof(struct iovec));
	memcpy(e->out_addr, vq->seg_addr, nseg * sizeof(uint64_t));
	for (unsigned k = 0; k < nseg; k++) {
		if (k < nout)
			e->out_len += vq->seg_iov[k].iov_len;
		else
			e->in_len += vq->seg_iov[k].iov_len;
	}
	e->epoch = vq->epoch;
	e->vq = vq;
	return e;
}

static bool driver_ok(const struct pvm_virtq *vq)
{
	return pvm_virtio_device_status(vq->dev) & PVM_VIRTIO_S_DRIVER_OK;
}

int pvm_virtq_pop(struct pvm_virtq *vq, struct pvm_virtq_elem **elem)
{
	char why[160];
	struct ring_view v;
	uint16_t avail_idx, head;
	unsigned nseg;
	int rc;

	*elem = NULL;
	if (pvm_virtio_device_is_broken(vq->dev))
		return -EIO;
	pthread_mutex_lock(&vq->lock);
	if (!vq->ready || !driver_ok(vq)) {
		pthread_mutex_unlock(&vq->lock);
		return 0;
	}
	if (map_rings(vq, 7, &v, why, sizeof(why)))
		goto malformed;
	avail_idx = load16_acquire(v.avail + 2);
	if (avail_idx == vq->last_avail && vq->event_idx) {
		/* Ask for a notification at the next buffer, then look again so that a buffer
		 * added between the two reads is not missed. */
		store16(v.used + 4 + 8u * vq->num, vq->last_avail);
		atomic_thread_fence(memory_order_seq_cst);
		avail_idx = load16_acquire(v.avail + 2);
	}
	if (avail_idx == vq->last_avail) {
		pthread_mutex_unlock(&vq->lock);
		return 0;
	}
	if ((uint16_t)(avail_idx - vq->last_avail) > vq->num) {
		snprintf(why, sizeof(why), "avail idx %u is %u ahead of %u (queue size %u)", avail_idx,
			 (uint16_t)(avail_idx - vq->last_avail), vq->last_avail, vq->num);
		goto malformed;
	}
	head = load16(v.avail + 4 + 2u * (vq->last_avail % vq->num));
	if (head >= vq->num) {
		snprintf(why, sizeof(why), "head index %u out of range (%u)", head, vq->num);
		goto malformed;
	}
	if (walk_chain(vq, &v, head, &nseg, why, sizeof(why)))
		goto malformed;
	*elem = make_elem(vq, head, nseg);
	if (!*elem) {
		pthread_mutex_unlock(&vq->lock);
		return -ENOMEM;
	}
	vq->last_avail++;
	vq->inflight++;
	if (vq->event_idx)
		store16(v.used + 4 + 8u * vq->num, vq->last_avail);
	PVM_TRACE(virtq_pop, "dev=%s queue=%u head=%u out=%u/0x%llx in=%u/0x%llx",
		  pvm_virtio_device_name(vq->dev), vq->index, head, (*elem)->out_num,
		  (unsigned long long)(*elem)->out_len, (*elem)->in_num,
		  (unsigned long long)(*elem)->in_len);
	pthread_mutex_unlock(&vq->lock);
	return 1;

malformed:
	rc = vq->index;
	pthread_mutex_unlock(&vq->lock);
	pvm_virtio_device_set_broken(vq->dev, "queue %d: %s", rc, why);
	return -EIO;
}

void pvm_virtq_elem_free(struct pvm_virtq_elem *elem)
{
	struct pvm_virtq *vq;

	if (!elem)
		return;
	vq = elem->vq;
	pthread_mutex_lock(&vq->lock);
	if (elem->epoch == vq->epoch && vq->inflight)
		vq->inflight--;
	pthread_mutex_unlock(&vq->lock);
	pvm_free(elem);
}

int pvm_virtq_push(struct pvm_virtq *vq, struct pvm_virtq_elem *elem, uint32_t written)
{
	char why[160];
	struct ring_view v;
	uint8_t *slot;
	int idx;

	if (!elem)
		return -EINVAL;
	pthread_mutex_lock(&vq->lock);
	if (elem->epoch != vq->epoch || !vq->ready || elem->queue != vq->index) {
		pthread_mutex_unlock(&vq->lock);
		PVM_TRACE(virtq_push_stale, "dev=%s queue=%u head=%u", pvm_virtio_device_name(vq->dev),
			  vq->index, elem->head);
		pvm_free(elem);
		return -ESTALE;
	}
	if (written > elem->in_len)
		written = (uint32_t)elem->in_len;
	if (vq->inflight)
		vq->inflight--;
	if (map_rings(vq, 4, &v, why, sizeof(why))) {
		idx = vq->index;
		pthread_mutex_unlock(&vq->lock);
		pvm_free(elem);
		pvm_virtio_device_set_broken(vq->dev, "queue %d: %s", idx, why);
		return -EIO;
	}
	slot = v.used + 4 + 8u * (vq->used_idx % vq->num);
	__atomic_store_n((uint32_t *)(void *)slot, htole32(elem->head), __ATOMIC_RELAXED);
	__atomic_store_n((uint32_t *)(void *)(slot + 4), htole32(written), __ATOMIC_RELAXED);
	vq->used_idx++;
	store16_release(v.used + 2, vq->used_idx);
	PVM_TRACE(virtq_push, "dev=%s queue=%u head=%u len=0x%x used=%u",
		  pvm_virtio_device_name(vq->dev), vq->index, elem->head, written, vq->used_idx);
	pthread_mutex_unlock(&vq->lock);
	pvm_free(elem);
	return 0;
}

/* vring_need_event(): did used idx move past @event when it went from @old to @new? */
static bool need_event(uint16_t event, uint16_t new_idx, uint16_t old)
{
	return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old);
}

bool pvm_virtq_should_notify(struct pvm_virtq *vq)
{
	char why[160];
	struct ring_view v;
	bool notify = false;

	pthread_mutex_lock(&vq->lock);
	if (!vq->ready || map_rings(vq, 2, &v, why, sizeof(why)))
		goto out;
	/* The used idx must be visible before the driver's suppression fields are read. */
	atomic_thread_fence(memory_order_seq_cst);
	if (vq->event_idx) {
		uint16_t used_event = load16(v.avail + 4 + 2u * vq->num);
		uint16_t old = vq->signalled_used;

		notify = !vq->signalled_valid || need_event(used_event, vq->used_idx, old);
		vq->signalled_used = vq->used_idx;
		vq->signalled_valid = true;
	} else {
		notify = !(load16(v.avail) & PVM_VIRTQ_AVAIL_F_NO_INTERRUPT);
	}
out:
	pthread_mutex_unlock(&vq->lock);
	return notify;
}

bool pvm_virtq_notify(struct pvm_virtq *vq)
{
	bool notify = pvm_virtq_should_notify(vq);

	PVM_TRACE(virtq_notify, "dev=%s queue=%u irq=%d", pvm_virtio_device_name(vq->dev), vq->index,
		  notify);
	if (notify)
		pvm_virtio_device_interrupt(vq->dev, PVM_VIRTIO_INT_VRING);
	return notify;
}

int pvm_virtq_complete(struct pvm_virtq *vq, struct pvm_virtq_elem *elem, uint32_t written)
{
	int rc = pvm_virtq_push(vq, elem, written);

	if (rc == 0)
		pvm_virtq_notify(vq);
	return rc;
}

size_t pvm_virtq_elem_read(const struct pvm_virtq_elem *elem, uint64_t offset, void *buf, size_t len)
{
	size_t done = 0;

	for (uint32_t k = 0; k < elem->out_num && done < len; k++) {
		size_t seg = elem->out[k].iov_len, n;

		if (offset >= seg) {
			offset -= seg;
			continue;
		}
		n = PVM_MIN(seg - (size_t)offset, len - done);
		memcpy((uint8_t *)buf + done, (const uint8_t *)elem->out[k].iov_base + offset, n);
		done += n;
		offset = 0;
	}
	return done;
}

size_t pvm_virtq_elem_write(struct pvm_virtq_elem *elem, uint64_t offset, const void *buf, size_t len)
{
	size_t done = 0;

	for (uint32_t k = 0; k < elem->in_num && done < len; k++) {
		size_t seg = elem->in[k].iov_len, n;

		if (offset >= seg) {
			offset -= seg;
			continue;
		}
		n = PVM_MIN(seg - (size_t)offset, len - done);
		memcpy((uint8_t *)elem->in[k].iov_base + offset, (const uint8_t *)buf + done, n);
		done += n;
		offset = 0;
	}
	return done;
}

unsigned pvm_virtq_index(const struct pvm_virtq *vq)
{
	return vq->index;
}

unsigned pvm_virtq_size(const struct pvm_virtq *vq)
{
	return __atomic_load_n(&vq->num, __ATOMIC_RELAXED);
}

bool pvm_virtq_is_ready(const struct pvm_virtq *vq)
{
	return __atomic_load_n(&vq->ready, __ATOMIC_RELAXED);
}

struct pvm_virtio_device *pvm_virtq_device(const struct pvm_virtq *vq)
{
	return vq->dev;
}

unsigned pvm_virtq_inflight(const struct pvm_virtq *vq)
{
	return __atomic_load_n(&vq->inflight, __ATOMIC_RELAXED);
}

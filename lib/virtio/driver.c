/* SPDX-License-Identifier: MIT */
/*
 * Guest-side virtio driver over the virtio-mmio register file (see driver.h). The sequence of
 * register accesses follows Linux's drivers/virtio/virtio_mmio.c (probe, vm_get_features,
 * vm_finalize_features, vm_setup_vq, vm_notify, vm_interrupt) and the ring handling follows
 * the split-ring rules of the virtio spec, so that the device is exercised the way a real
 * guest exercises it. Descriptor bookkeeping (free list, tokens) lives in host memory: only the
 * rings themselves are in guest memory.
 */
#include <endian.h>
#include <errno.h>
#include <string.h>

#include "core/util.h"
#include "virtio/driver.h"

#define INDIRECT_MAX 16u    /* descriptors per indirect table */
#define RING_ALIGN 4096u    /* each queue's area starts on a page */

struct vdrv_queue {
	uint16_t num;            /* queue size */
	uint64_t desc_gpa;       /* descriptor table */
	uint64_t avail_gpa;      /* available ring */
	uint64_t used_gpa;       /* used ring */
	uint64_t indirect_gpa;   /* num tables of INDIRECT_MAX descriptors */
	uint16_t free_head;      /* first free descriptor */
	unsigned num_free;       /* free descriptors */
	uint16_t avail_idx;      /* next avail idx (published on add) */
	uint16_t kicked_idx;     /* avail idx at the last kick decision */
	uint16_t last_used;      /* next used idx to consume */
	bool irq_enabled;        /* used-buffer interrupts wanted */
	uint16_t *next;          /* [num] host copy of the chain links and the free list */
	uint16_t *chain_len;     /* [num] descriptors taken by the chain at this head */
	void **tokens;           /* [num] caller token per in-flight head, NULL when free */
};

struct pvm_vdrv {
	struct pvm_virtio_mmio *mmio;    /* the device's register file */
	struct pvm_memslot_table *mem;   /* guest memory */
	uint64_t features;               /* negotiated */
	bool use_indirect;               /* indirect tables for multi-buffer chains */
	unsigned nq;                     /* queues set up */
	struct vdrv_queue *q;            /* [nq] */
};

static uint32_t rd(struct pvm_vdrv *d, uint64_t off)
{
	return (uint32_t)pvm_virtio_mmio_read(d->mmio, off, 4);
}

static void wr(struct pvm_vdrv *d, uint64_t off, uint32_t v)
{
	pvm_virtio_mmio_write(d->mmio, off, 4, v);
}

static uint64_t desc_bytes(uint16_t n)
{
	return 16ULL * n;
}

static uint64_t avail_off(uint16_t n)
{
	return desc_bytes(n);
}

static uint64_t used_off(uint16_t n)
{
	return PVM_ALIGN_UP(avail_off(n) + 6 + 2ULL * n, 4);
}

static uint64_t indirect_off(uint16_t n)
{
	return PVM_ALIGN_UP(used_off(n) + 6 + 8ULL * n, 16);
}

uint64_t pvm_vdrv_ring_bytes(uint16_t num)
{
	return PVM_ALIGN_UP(indirect_off(num) + (uint64_t)num * INDIRECT_MAX * 16, RING_ALIGN);
}

/* Host pointer to [gpa, gpa+len) of the rings, or NULL when the memory is gone. */
static void *gmem(struct pvm_vdrv *d, uint64_t gpa, uint64_t len)
{
	void *p;

	return pvm_memslot_translate(d->mem, gpa, len, PVM_ACCESS_READ | PVM_ACCESS_WRITE, &p) ? NULL : p;
}

static void put16(struct pvm_vdrv *d, uint64_t gpa, uint16_t v, int order)
{
	uint16_t *p = gmem(d, gpa, 2);

	if (p)
		__atomic_store_n(p, htole16(v), order);
}

static uint16_t get16(struct pvm_vdrv *d, uint64_t gpa, int order)
{
	uint16_t *p = gmem(d, gpa, 2);

	return p ? le16toh(__atomic_load_n(p, order)) : 0;
}

static void put_desc(struct pvm_vdrv *d, uint64_t gpa, uint64_t addr, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	uint8_t *p = gmem(d, gpa, 16);
	uint64_t a = htole64(addr);
	uint32_t l = htole32(len);
	uint16_t f = htole16(flags), n = htole16(next);

	if (!p)
		return;
	memcpy(p, &a, 8);
	memcpy(p + 8, &l, 4);
	memcpy(p + 12, &f, 2);
	memcpy(p + 14, &n, 2);
}

static void queue_free(struct vdrv_queue *q)
{
	pvm_free(q->next);
	pvm_free(q->chain_len);
	pvm_free(q->tokens);
}

static int setup_queue(struct pvm_vdrv *d, unsigned i, uint16_t want, uint64_t *gpa, uint64_t end,
		       struct pvm_error *err)
{
	struct vdrv_queue *q = &d->q[i];
	uint32_t max;
	uint64_t bytes;
	uint8_t *zero;

	wr(d, PVM_VIRTIO_MMIO_QUEUE_SEL, i);
	if (rd(d, PVM_VIRTIO_MMIO_QUEUE_READY))
		return pvm_error_set(err, -EIO, "queue %u is already ready", i);
	max = rd(d, PVM_VIRTIO_MMIO_QUEUE_NUM_MAX);
	if (max == 0 || max > PVM_VIRTQ_MAX_SIZE)
		return pvm_error_set(err, -EIO, "queue %u has bad QueueNumMax %u", i, max);
	q->num = (uint16_t)(want && want < max ? want : max);
	bytes = pvm_vdrv_ring_bytes(q->num);
	if (*gpa > end || end - *gpa < bytes)
		return pvm_error_set(err, -ENOSPC, "ring area too small for queue %u", i);
	zero = gmem(d, *gpa, bytes);
	if (!zero)
		return pvm_error_set(err, -EINVAL, "ring area 0x%llx is not in guest memory",
				     (unsigned long long)*gpa);
	memset(zero, 0, bytes);
	q->desc_gpa = *gpa;
	q->avail_gpa = *gpa + avail_off(q->num);
	q->used_gpa = *gpa + used_off(q->num);
	q->indirect_gpa = *gpa + indirect_off(q->num);
	*gpa += bytes;
	q->next = pvm_calloc(q->num, sizeof(*q->next));
	q->chain_len = pvm_calloc(q->num, sizeof(*q->chain_len));
	q->tokens = pvm_calloc(q->num, sizeof(*q->tokens));
	if (!q->next || !q->chain_len || !q->tokens)
		return pvm_error_set(err, -ENOMEM, "out of memory");
	for (uint16_t k = 0; k < q->num; k++)
		q->next[k] = (uint16_t)(k + 1);
	q->num_free = q->num;
	q->irq_enabled = true;
	wr(d, PVM_VIRTIO_MMIO_QUEUE_NUM, q->num);
	wr(d, PVM_VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)q->desc_gpa);
	wr(d, PVM_VIRTIO_MMIO_QUEUE_DESC_HIGH, (uint32_t)(q->desc_gpa >> 32));
	wr(d, PVM_VIRTIO_MMIO_QUEUE_AVAIL_LOW, (uint32_t)q->avail_gpa);
	wr(d, PVM_VIRTIO_MMIO_QUEUE_AVAIL_HIGH, (uint32_t)(q->avail_gpa >> 32));
	wr(d, PVM_VIRTIO_MMIO_QUEUE_USED_LOW, (uint32_t)q->used_gpa);
	wr(d, PVM_VIRTIO_MMIO_QUEUE_USED_HIGH, (uint32_t)(q->used_gpa >> 32));
	wr(d, PVM_VIRTIO_MMIO_QUEUE_READY, 1);
	if (rd(d, PVM_VIRTIO_MMIO_QUEUE_READY) != 1)
		return pvm_error_set(err, -EIO, "queue %u did not become ready", i);
	return 0;
}

static void add_status(struct pvm_vdrv *d, uint32_t bits)
{
	wr(d, PVM_VIRTIO_MMIO_STATUS, rd(d, PVM_VIRTIO_MMIO_STATUS) | bits);
}

int pvm_vdrv_new(struct pvm_virtio_mmio *mmio, struct pvm_memslot_table *mem,
		 const struct pvm_vdrv_config *cfg, struct pvm_vdrv **out, struct pvm_error *err)
{
	struct pvm_vdrv *d;
	uint64_t host, gpa, end;
	unsigned nq;
	int rc;

	*out = NULL;
	if (!cfg || !PVM_IS_ALIGNED(cfg->ring_gpa, 16) || pvm_add_overflow(cfg->ring_gpa, cfg->ring_size, &end))
		return pvm_error_set(err, -EINVAL, "bad driver ring area");
	d = pvm_calloc(1, sizeof(*d));
	if (!d)
		return pvm_error_set(err, -ENOMEM, "out of memory");
	d->mmio = mmio;
	d->mem = mem;
	if (rd(d, PVM_VIRTIO_MMIO_MAGIC_VALUE) != PVM_VIRTIO_MMIO_MAGIC ||
	    rd(d, PVM_VIRTIO_MMIO_VERSION_REG) != 2 || rd(d, PVM_VIRTIO_MMIO_DEVICE_ID) == 0) {
		pvm_free(d);
		return pvm_error_set(err, -ENODEV, "no virtio-mmio version 2 device");
	}
	/* register_virtio_device(): reset, ACKNOWLEDGE; virtio_dev_probe(): DRIVER. */
	wr(d, PVM_VIRTIO_MMIO_STATUS, 0);
	add_status(d, PVM_VIRTIO_S_ACKNOWLEDGE);
	add_status(d, PVM_VIRTIO_S_DRIVER);
	/* vm_get_features(): high word first. */
	wr(d, PVM_VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	host = (uint64_t)rd(d, PVM_VIRTIO_MMIO_DEVICE_FEATURES) << 32;
	wr(d, PVM_VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	host |= rd(d, PVM_VIRTIO_MMIO_DEVICE_FEATURES);
	if (!(host & PVM_VIRTIO_BIT(PVM_VIRTIO_F_VERSION_1))) {
		rc = pvm_error_set(err, -EINVAL, "version 2 device without VIRTIO_F_VERSION_1");
		goto fail;
	}
	d->features = host & (cfg->features | PVM_VIRTIO_BIT(PVM_VIRTIO_F_VERSION_1));
	d->use_indirect = cfg->use_indirect && (d->features & PVM_VIRTIO_BIT(PVM_VIRTIO_F_INDIRECT_DESC));
	/* vm_finalize_features(). */
	wr(d, PVM_VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	wr(d, PVM_VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(d->features >> 32));
	wr(d, PVM_VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	wr(d, PVM_VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)d->features);
	add_status(d, PVM_VIRTIO_S_FEATURES_OK);
	if (!(rd(d, PVM_VIRTIO_MMIO_STATUS) & PVM_VIRTIO_S_FEATURES_OK)) {
		rc = pvm_error_set(err, -EIO, "device refused features 0x%llx",
				   (unsigned long long)d->features);
		goto fail;
	}
	nq = cfg->num_queues;
	if (nq == 0) {
		while (nq < PVM_VIRTIO_MAX_QUEUES) {
			wr(d, PVM_VIRTIO_MMIO_QUEUE_SEL, nq);
			if (!rd(d, PVM_VIRTIO_MMIO_QUEUE_NUM_MAX))
				break;
			nq++;
		}
	}
	if (nq == 0 || nq > PVM_VIRTIO_MAX_QUEUES) {
		rc = pvm_error_set(err, -EINVAL, "bad queue count %u", nq);
		goto fail;
	}
	d->q = pvm_calloc(nq, sizeof(*d->q));
	if (!d->q) {
		rc = pvm_error_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	d->nq = nq;
	gpa = cfg->ring_gpa;
	for (unsigned i = 0; i < nq; i++) {
		rc = setup_queue(d, i, cfg->queue_size, &gpa, end, err);
		if (rc)
			goto fail;
	}
	add_status(d, PVM_VIRTIO_S_DRIVER_OK);
	*out = d;
	return 0;
fail:
	add_status(d, PVM_VIRTIO_S_FAILED);
	for (unsigned i = 0; i < d->nq; i++)
		queue_free(&d->q[i]);
	pvm_free(d->q);
	pvm_free(d);
	return rc;
}

void pvm_vdrv_free(struct pvm_vdrv *d)
{
	if (!d)
		return;
	wr(d, PVM_VIRTIO_MMIO_STATUS, 0);
	for (unsigned i = 0; i < d->nq; i++)
		queue_free(&d->q[i]);
	pvm_free(d->q);
	pvm_free(d);
}

struct pvm_virtio_mmio *pvm_vdrv_mmio(const struct pvm_vdrv *d)
{
	return d->mmio;
}

uint64_t pvm_vdrv_features(const struct pvm_vdrv *d)
{
	return d->features;
}

bool pvm_vdrv_has_feature(const struct pvm_vdrv *d, unsigned bit)
{
	return bit < 64 && (d->features & PVM_VIRTIO_BIT(bit));
}

unsigned pvm_vdrv_num_queues(const struct pvm_vdrv *d)
{
	return d->nq;
}

uint16_t pvm_vdrv_queue_size(const struct pvm_vdrv *d, unsigned q)
{
	return q < d->nq ? d->q[q].num : 0;
}

unsigned pvm_vdrv_free_descs(const struct pvm_vdrv *d, unsigned q)
{
	return q < d->nq ? d->q[q].num_free : 0;
}

uint8_t pvm_vdrv_status(const struct pvm_vdrv *d)
{
	return (uint8_t)pvm_virtio_mmio_read(d->mmio, PVM_VIRTIO_MMIO_STATUS, 4);
}

bool pvm_vdrv_needs_reset(const struct pvm_vdrv *d)
{
	return pvm_vdrv_status(d) & PVM_VIRTIO_S_NEEDS_RESET;
}

static bool event_idx(const struct pvm_vdrv *d)
{
	return d->features & PVM_VIRTIO_BIT(PVM_VIRTIO_F_EVENT_IDX);
}

/* Take @n descriptors off the free list as a chain; returns the head. */
static uint16_t take_descs(struct vdrv_queue *q, unsigned n)
{
	uint16_t head = q->free_head, last = head;

	for (unsigned k = 1; k < n; k++)
		last = q->next[last];
	q->free_head = q->next[last];
	q->num_free -= n;
	return head;
}

int pvm_vdrv_add(struct pvm_vdrv *d, unsigned qi, const struct pvm_vdrv_buf *out, unsigned out_num,
		 const struct pvm_vdrv_buf *in, unsigned in_num, void *token)
{
	struct vdrv_queue *q;
	unsigned total = out_num + in_num, ndesc;
	bool indirect;
	uint16_t head, cur;

	if (qi >= d->nq || !token || total == 0 || total > PVM_VIRTQ_MAX_SEGS)
		return -EINVAL;
	q = &d->q[qi];
	for (unsigned k = 0; k < total; k++)
		if ((k < out_num ? out[k].len : in[k - out_num].len) == 0)
			return -EINVAL;
	indirect = d->use_indirect && total > 1 && total <= INDIRECT_MAX;
	ndesc = indirect ? 1 : total;
	if (ndesc > q->num_free)
		return -ENOSPC;
	if (!gmem(d, q->desc_gpa, desc_bytes(q->num)))
		return -EFAULT;
	head = take_descs(q, ndesc);
	q->chain_len[head] = (uint16_t)ndesc;
	q->tokens[head] = token;
	if (indirect) {
		uint64_t table = q->indirect_gpa + (uint64_t)head * INDIRECT_MAX * 16;

		for (unsigned k = 0; k < total; k++) {
			const struct pvm_vdrv_buf *b = k < out_num ? &out[k] : &in[k - out_num];
			uint16_t fl = (uint16_t)((k < out_num ? 0 : PVM_VIRTQ_DESC_F_WRITE) |
						 (k + 1 < total ? PVM_VIRTQ_DESC_F_NEXT : 0));

			put_desc(d, table + 16ULL * k, b->addr, b->len, fl, (uint16_t)(k + 1));
		}
		put_desc(d, q->desc_gpa + 16ULL * head, table, total * 16, PVM_VIRTQ_DESC_F_INDIRECT, 0);
	} else {
		cur = head;
		for (unsigned k = 0; k < total; k++) {
			const struct pvm_vdrv_buf *b = k < out_num ? &out[k] : &in[k - out_num];
			uint16_t fl = (uint16_t)((k < out_num ? 0 : PVM_VIRTQ_DESC_F_WRITE) |
						 (k + 1 < total ? PVM_VIRTQ_DESC_F_NEXT : 0));

			put_desc(d, q->desc_gpa + 16ULL * cur, b->addr, b->len, fl, q->next[cur]);
			cur = q->next[cur];
		}
	}
	put16(d, q->avail_gpa + 4 + 2ULL * (q->avail_idx % q->num), head, __ATOMIC_RELAXED);
	q->avail_idx++;
	/* Descriptors and ring entry before the index (release). */
	put16(d, q->avail_gpa + 2, q->avail_idx, __ATOMIC_RELEASE);
	return 0;
}

int pvm_vdrv_kick(struct pvm_vdrv *d, unsigned qi)
{
	struct vdrv_queue *q;
	uint16_t old, new_idx;
	bool notify;

	if (qi >= d->nq)
		return -EINVAL;
	q = &d->q[qi];
	old = q->kicked_idx;
	new_idx = q->avail_idx;
	q->kicked_idx = new_idx;
	/* The new idx must be visible before the device's suppression fields are read. */
	atomic_thread_fence(memory_order_seq_cst);
	if (event_idx(d)) {
		uint16_t ev = get16(d, q->used_gpa + 4 + 8ULL * q->num, __ATOMIC_RELAXED);

		notify = (uint16_t)(new_idx - ev - 1) < (uint16_t)(new_idx - old);
	} else {
		notify = !(get16(d, q->used_gpa, __ATOMIC_RELAXED) & PVM_VIRTQ_USED_F_NO_NOTIFY);
	}
	if (notify)
		wr(d, PVM_VIRTIO_MMIO_QUEUE_NOTIFY, qi);
	return notify;
}

int pvm_vdrv_get_used(struct pvm_vdrv *d, unsigned qi, void **token, uint32_t *len)
{
	struct vdrv_queue *q;
	uint32_t id, l;
	uint8_t *e;
	uint16_t used_idx, last;

	if (qi >= d->nq)
		return -EINVAL;
	q = &d->q[qi];
	used_idx = get16(d, q->used_gpa + 2, __ATOMIC_ACQUIRE);
	if (used_idx == q->last_used)
		return 0;
	if ((uint16_t)(used_idx - q->last_used) > q->num)
		return -EIO;
	e = gmem(d, q->used_gpa + 4 + 8ULL * (q->last_used % q->num), 8);
	if (!e)
		return -EIO;
	memcpy(&id, e, 4);
	memcpy(&l, e + 4, 4);
	id = le32toh(id);
	l = le32toh(l);
	if (id >= q->num || !q->tokens[id])
		return -EIO;
	*token = q->tokens[id];
	*len = l;
	q->tokens[id] = NULL;
	/* Return the chain to the free list. */
	last = (uint16_t)id;
	for (unsigned k = 1; k < q->chain_len[id]; k++)
		last = q->next[last];
	q->next[last] = q->free_head;
	q->free_head = (uint16_t)id;
	q->num_free += q->chain_len[id];
	q->last_used++;
	if (event_idx(d) && q->irq_enabled)
		put16(d, q->avail_gpa + 4 + 2ULL * q->num, q->last_used, __ATOMIC_SEQ_CST);
	return 1;
}

void pvm_vdrv_set_interrupts(struct pvm_vdrv *d, unsigned qi, bool enable)
{
	struct vdrv_queue *q;

	if (qi >= d->nq)
		return;
	q = &d->q[qi];
	q->irq_enabled = enable;
	if (event_idx(d))
		put16(d, q->avail_gpa + 4 + 2ULL * q->num,
		      (uint16_t)(enable ? q->last_used : q->last_used + 0x8000), __ATOMIC_SEQ_CST);
	else
		put16(d, q->avail_gpa, enable ? 0 : PVM_VIRTQ_AVAIL_F_NO_INTERRUPT, __ATOMIC_SEQ_CST);
}

uint32_t pvm_vdrv_ack_interrupt(struct pvm_vdrv *d)
{
	uint32_t s = rd(d, PVM_VIRTIO_MMIO_INTERRUPT_STATUS);

	if (s)
		wr(d, PVM_VIRTIO_MMIO_INTERRUPT_ACK, s);
	return s;
}

/* One pass over the configuration with Linux's access widths. */
static void config_pass(struct pvm_vdrv *d, uint32_t off, uint8_t *buf, uint32_t len)
{
	uint64_t base = PVM_VIRTIO_MMIO_CONFIG + off;
	uint32_t v;

	switch (len) {
	case 1:
	case 2:
	case 4:
		v = (uint32_t)pvm_virtio_mmio_read(d->mmio, base, len);
		for (uint32_t i = 0; i < len; i++)
			buf[i] = (uint8_t)(v >> (8 * i));
		return;
	case 8:
		config_pass(d, off, buf, 4);
		config_pass(d, off + 4, buf + 4, 4);
		return;
	default:
		for (uint32_t i = 0; i < len; i++)
			buf[i] = (uint8_t)pvm_virtio_mmio_read(d->mmio, base + i, 1);
	}
}

int pvm_vdrv_config_read(struct pvm_vdrv *d, uint32_t offset, void *buf, uint32_t len)
{
	for (int tries = 0; tries < 1000; tries++) {
		uint32_t gen = rd(d, PVM_VIRTIO_MMIO_CONFIG_GENERATION);

		config_pass(d, offset, buf, len);
		if (rd(d, PVM_VIRTIO_MMIO_CONFIG_GENERATION) == gen)
			return 0;
	}
	return -EAGAIN;
}

void pvm_vdrv_config_write(struct pvm_vdrv *d, uint32_t offset, const void *buf, uint32_t len)
{
	const uint8_t *b = buf;
	uint64_t base = PVM_VIRTIO_MMIO_CONFIG + offset;

	if (len == 1 || len == 2 || len == 4) {
		uint32_t v = 0;

		for (uint32_t i = 0; i < len; i++)
			v |= (uint32_t)b[i] << (8 * i);
		pvm_virtio_mmio_write(d->mmio, base, len, v);
		return;
	}
	for (uint32_t i = 0; i < len; i++)
		pvm_virtio_mmio_write(d->mmio, base + i, 1, b[i]);
}

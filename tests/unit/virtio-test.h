/* SPDX-License-Identifier: MIT */
/*
 * Helpers for the virtio unit tests: a small guest memory map and a tiny "echo" device that
 * copies each request's driver-readable bytes into its device-writable buffers. Test code only.
 *
 * Guest memory (GPA):
 *   0x000000 - 0x100000  slot 0, RAM (rings, buffers)
 *   0x100000 - 0x200000  slot 1, RAM, adjacent to slot 0 (buffers spanning two slots)
 *   0x200000 - 0x300000  hole
 *   0x300000 - 0x301000  slot 2, READONLY
 *   4 GiB    - 12 GiB    slot 3, sparse (MAP_NORESERVE; reads see the zero page)
 */
#ifndef PVM_TEST_VIRTIO_H
#define PVM_TEST_VIRTIO_H

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>

#include <pvmem/memslot.h>
#include <pvmem/virtio.h>

#define TG_RAM0 0x000000ULL
#define TG_RAM1 0x100000ULL
#define TG_HOLE 0x200000ULL
#define TG_RO 0x300000ULL
#define TG_BIG 0x100000000ULL
#define TG_BIG_SIZE 0x200000000ULL

struct tguest {
	struct pvm_memslot_table *mem;  /* the slots above */
	uint8_t *ram;                   /* host view of slots 0 and 1 (2 MiB, contiguous) */
	uint8_t *ro;                    /* host view of slot 2 */
	void *big;                      /* host view of slot 3 */
};

static inline void tguest_init(struct tguest *g)
{
	memset(g, 0, sizeof(*g));
	g->ram = mmap(NULL, 0x200000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	g->ro = mmap(NULL, 0x1000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	g->big = mmap(NULL, TG_BIG_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	assert_true(g->ram != MAP_FAILED && g->ro != MAP_FAILED && g->big != MAP_FAILED);
	assert_int_equal(pvm_memslot_table_new(0, &g->mem), 0);
	assert_int_equal(pvm_memslot_add(g->mem, 0, 0, TG_RAM0, 0x100000, g->ram, NULL), 0);
	assert_int_equal(pvm_memslot_add(g->mem, 1, 0, TG_RAM1, 0x100000, g->ram + 0x100000, NULL), 0);
	assert_int_equal(pvm_memslot_add(g->mem, 2, PVM_MEMSLOT_F_READONLY, TG_RO, 0x1000, g->ro, NULL), 0);
	assert_int_equal(pvm_memslot_add(g->mem, 3, 0, TG_BIG, TG_BIG_SIZE, g->big, NULL), 0);
}

static inline void tguest_fini(struct tguest *g)
{
	pvm_memslot_table_free(g->mem);
	munmap(g->ram, 0x200000);
	munmap(g->ro, 0x1000);
	munmap(g->big, TG_BIG_SIZE);
}

/* Host pointer of a RAM guest address (slots 0 and 1). */
static inline void *tg_host(struct tguest *g, uint64_t gpa)
{
	return g->ram + gpa;
}

/* ---- the echo device ------------------------------------------------------------------------ */

#define ECHO_ID 0x7e57u         /* a device id nobody uses */
#define ECHO_CONFIG_SIZE 16u    /* le64 value; le32 writable; le32 counter */
#define ECHO_DEFER_MAX 4096u

struct echo {
	struct pvm_virtio_device *dev;     /* the device */
	pthread_mutex_t lock;              /* protects the fields below */
	uint64_t value;                    /* config @0, read-only for the driver */
	uint32_t writable;                 /* config @8, written by the driver */
	uint32_t get_config_calls;         /* config @12 */
	unsigned bump_on_read;             /* config reads that bump the generation (retry test) */
	bool defer;                        /* keep elements instead of completing them */
	struct pvm_virtq_elem *held[ECHO_DEFER_MAX]; /* deferred elements */
	unsigned nheld;                    /* entries in held[] */
	unsigned notifies;                 /* queue_notify calls */
	unsigned completed;                /* elements pushed */
	unsigned resets;                   /* reset calls */
	int last_pop;                      /* last pvm_virtq_pop() result */
	uint64_t refuse_features;          /* validate_features refuses any of these bits */
};

static inline void echo_get_config(void *opaque, uint8_t *buf)
{
	struct echo *e = opaque;
	uint64_t v;
	uint32_t w, c;

	pthread_mutex_lock(&e->lock);
	v = e->value;
	w = e->writable;
	c = ++e->get_config_calls;
	if (e->bump_on_read) {
		e->bump_on_read--;
		pvm_virtio_device_config_changed(e->dev);
	}
	pthread_mutex_unlock(&e->lock);
	memcpy(buf, &v, 8);
	memcpy(buf + 8, &w, 4);
	memcpy(buf + 12, &c, 4);
}

static inline void echo_set_config(void *opaque, const uint8_t *buf)
{
	struct echo *e = opaque;

	pthread_mutex_lock(&e->lock);
	memcpy(&e->writable, buf + 8, 4);
	pthread_mutex_unlock(&e->lock);
}

static inline int echo_validate(void *opaque, uint64_t features)
{
	struct echo *e = opaque;

	return (features & e->refuse_features) ? -ENOTSUP : 0;
}

/* Echo one element: copy out[] into in[] and complete it. */
static inline void echo_one(struct echo *e, struct pvm_virtq *vq, struct pvm_virtq_elem *el)
{
	uint8_t buf[4096];
	uint64_t off = 0;
	size_t n, w;

	while ((n = pvm_virtq_elem_read(el, off, buf, sizeof(buf))) > 0) {
		w = pvm_virtq_elem_write(el, off, buf, n);
		off += w;
		if (w < n)
			break;
	}
	pvm_virtq_push(vq, el, (uint32_t)off);
	e->completed++;
}

static inline void echo_notify(void *opaque, struct pvm_virtq *vq)
{
	struct echo *e = opaque;
	struct pvm_virtq_elem *el;
	int rc;

	pthread_mutex_lock(&e->lock);
	e->notifies++;
	while ((rc = pvm_virtq_pop(vq, &el)) > 0) {
		if (e->defer && e->nheld < ECHO_DEFER_MAX)
			e->held[e->nheld++] = el;
		else
			echo_one(e, vq, el);
	}
	e->last_pop = rc;
	pthread_mutex_unlock(&e->lock);
	pvm_virtq_notify(vq);
}

static inline void echo_reset(void *opaque)
{
	struct echo *e = opaque;

	pthread_mutex_lock(&e->lock);
	e->resets++;
	for (unsigned i = 0; i < e->nheld; i++)
		pvm_virtq_elem_free(e->held[i]);
	e->nheld = 0;
	pthread_mutex_unlock(&e->lock);
}

/* An echo device with @nq queues of @qmax entries offering @features. */
static inline struct echo *echo_new(struct tguest *g, uint64_t features, unsigned nq, uint16_t qmax)
{
	struct pvm_virtio_device_ops ops = {
		.name = "echo",
		.device_id = ECHO_ID,
		.features = features,
		.config_size = ECHO_CONFIG_SIZE,
		.num_queues = nq,
		.queue_max_size = qmax,
		.get_config = echo_get_config,
		.set_config = echo_set_config,
		.validate_features = echo_validate,
		.queue_notify = echo_notify,
		.reset = echo_reset,
	};
	struct echo *e = calloc(1, sizeof(*e));

	assert_non_null(e);
	pthread_mutex_init(&e->lock, NULL);
	e->value = 0x1122334455667788ULL;
	assert_int_equal(pvm_virtio_device_new(&ops, e, g->mem, &e->dev, NULL), 0);
	return e;
}

static inline void echo_free(struct echo *e)
{
	if (!e)
		return;
	echo_reset(e);
	pvm_virtio_device_free(e->dev);
	pthread_mutex_destroy(&e->lock);
	free(e);
}

#endif /* PVM_TEST_VIRTIO_H */

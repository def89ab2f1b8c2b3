/* SPDX-License-Identifier: MIT */
/*
 * The guest-side driver against the echo device, end to end through virtio-mmio: the Linux
 * init sequence, requests with EVENT_IDX and indirect descriptors on and off, 16-bit index
 * wrap-around (more than 65536 requests on a small queue), asynchronous out-of-order
 * completion from a worker thread, configuration reads with generation retry, and NEEDS_RESET
 * as the driver sees it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "test-util.h"
#include "virtio-test.h"
#include "core/util.h"
#include "virtio/driver.h"

#define RINGS 0x40000ULL
#define BUFS 0x80000ULL

struct fx {
	struct tguest g;              /* guest memory */
	struct echo *e;               /* the device */
	struct pvm_virtio_mmio *m;    /* its transport */
	struct pvm_vdrv *d;           /* the guest driver */
	unsigned irqs;                /* interrupt line raises */
};

static void irq(void *opaque, bool level)
{
	struct fx *f = opaque;

	if (level)
		f->irqs++;
}

static void fx_new(struct fx *f, uint64_t offered, uint16_t qmax)
{
	memset(f, 0, sizeof(*f));
	pvm_log_set_level(PVM_LOG_ERROR);
	tguest_init(&f->g);
	f->e = echo_new(&f->g, offered, 2, qmax);
	assert_int_equal(pvm_virtio_mmio_new(f->e->dev, &f->m, NULL), 0);
	pvm_virtio_mmio_set_irq(f->m, irq, f);
}

static int drv_new(struct fx *f, uint64_t features, uint16_t qsize, bool indirect)
{
	struct pvm_vdrv_config cfg = {
		.features = features,
		.ring_gpa = RINGS,
		.ring_size = BUFS - RINGS,
		.queue_size = qsize,
		.use_indirect = indirect,
	};

	return pvm_vdrv_new(f->m, f->g.mem, &cfg, &f->d, NULL);
}

static void fx_free(struct fx *f)
{
	pvm_vdrv_free(f->d);
	pvm_virtio_mmio_free(f->m);
	echo_free(f->e);
	tguest_fini(&f->g);
}

/* One echo round trip of @n bytes split over @nout readable and @nin writable buffers. */
static void echo_round(struct fx *f, unsigned q, uint32_t n, unsigned nout, unsigned nin, uint32_t seed)
{
	struct pvm_vdrv_buf out[8], in[8];
	uint8_t *src = tg_host(&f->g, BUFS), *dst = tg_host(&f->g, BUFS + 0x10000);
	uint32_t len = 0;
	void *tok = NULL;

	for (uint32_t i = 0; i < n; i++)
		src[i] = (uint8_t)(seed + i * 7);
	memset(dst, 0, n);
	for (unsigned k = 0; k < nout; k++) {
		out[k].addr = BUFS + (uint64_t)k * n / nout;
		out[k].len = (uint32_t)((uint64_t)(k + 1) * n / nout - (uint64_t)k * n / nout);
	}
	for (unsigned k = 0; k < nin; k++) {
		in[k].addr = BUFS + 0x10000 + (uint64_t)k * n / nin;
		in[k].len = (uint32_t)((uint64_t)(k + 1) * n / nin - (uint64_t)k * n / nin);
	}
	assert_int_equal(pvm_vdrv_add(f->d, q, out, nout, in, nin, &f->e), 0);
	pvm_vdrv_kick(f->d, q);
	assert_int_equal(pvm_vdrv_get_used(f->d, q, &tok, &len), 1);
	assert_ptr_equal(tok, &f->e);
	assert_int_equal(len, n);
	assert_memory_equal(src, dst, n);
	assert_int_equal(pvm_vdrv_get_used(f->d, q, &tok, &len), 0);
}

struct mode {
	const char *name;
	uint64_t offered;      /* device features */
	uint64_t wanted;       /* driver features */
	bool indirect;         /* driver uses indirect tables */
	uint16_t qsize;        /* queue size */
};

static const uint64_t EV = PVM_VIRTIO_BIT(PVM_VIRTIO_F_EVENT_IDX);
static const uint64_t IN = PVM_VIRTIO_BIT(PVM_VIRTIO_F_INDIRECT_DESC);

static const struct mode modes[] = {
	{ "plain", PVM_VIRTIO_CORE_FEATURES, 0, false, 8 },
	{ "event idx", PVM_VIRTIO_CORE_FEATURES, PVM_VIRTIO_BIT(PVM_VIRTIO_F_EVENT_IDX), false, 8 },
	{ "indirect", PVM_VIRTIO_CORE_FEATURES, PVM_VIRTIO_BIT(PVM_VIRTIO_F_INDIRECT_DESC), true, 8 },
	{ "event idx + indirect", PVM_VIRTIO_CORE_FEATURES, PVM_VIRTIO_CORE_FEATURES, true, 4 },
	{ "indirect wanted, not offered", PVM_VIRTIO_BIT(PVM_VIRTIO_F_EVENT_IDX),
	  PVM_VIRTIO_CORE_FEATURES, true, 16 },
	{ "queue size 1", PVM_VIRTIO_CORE_FEATURES, PVM_VIRTIO_CORE_FEATURES, true, 1 },
};

static void test_echo_modes(void **state)
{
	for (size_t i = 0; i < PVM_ARRAY_SIZE(modes); i++) {
		const struct mode *mo = &modes[i];
		struct fx f;
		uint64_t want;

		print_message("mode: %s\n", mo->name);
		fx_new(&f, mo->offered, 64);
		assert_int_equal(drv_new(&f, mo->wanted, mo->qsize, mo->indirect), 0);
		want = (mo->offered & mo->wanted) | PVM_VIRTIO_BIT(PVM_VIRTIO_F_VERSION_1);
		assert_int_equal(pvm_vdrv_features(f.d), want);
		assert_int_equal(pvm_virtio_device_features(f.e->dev), want);
		assert_int_equal(pvm_vdrv_status(f.d), 0x0f);
		assert_int_equal(pvm_vdrv_num_queues(f.d), 2);
		assert_int_equal(pvm_vdrv_queue_size(f.d, 0), mo->qsize);
		for (uint32_t r = 0; r < 200; r++) {
			unsigned nout = 1 + r % 3, nin = 1 + (r / 3) % 3;
			bool fits = (mo->indirect && (want & IN)) || nout + nin <= mo->qsize;

			if (!fits)
				nout = nin = 1;
			if (mo->qsize == 1 && !(mo->indirect && (want & IN)))
				continue;
			echo_round(&f, r % 2, 1 + r * 37 % 3000, nout, nin, r);
		}
		assert_int_equal(pvm_vdrv_free_descs(f.d, 0), mo->qsize);
		assert_false(pvm_vdrv_needs_reset(f.d));
		assert_true(f.irqs > 0);
		assert_int_equal(pvm_vdrv_ack_interrupt(f.d) & ~PVM_VIRTIO_INT_VRING, 0);
		assert_int_equal(pvm_vdrv_ack_interrupt(f.d), 0);
		fx_free(&f);
	}
}

/* More than 65536 requests on a 4-entry queue: avail and used idx wrap around. */
static void test_index_wraparound(void **state)
{
	for (int ev = 0; ev < 2; ev++) {
		struct fx f;
		uint16_t *used;

		print_message("event idx %d\n", ev);
		fx_new(&f, PVM_VIRTIO_CORE_FEATURES, 4);
		assert_int_equal(drv_new(&f, ev ? EV | IN : IN, 4, ev), 0);
		for (uint32_t r = 0; r < 70000; r++)
			echo_round(&f, 0, 1 + r % 64, 1, r % 2 ? 2 : 1, r);
		used = tg_host(&f.g, RINGS + 16 * 4 + 6 + 2 * 4 + 2 /* align 4 */);
		assert_int_equal(used[1], (uint16_t)70000);
		assert_int_equal(f.e->completed, 70000);
		assert_false(pvm_vdrv_needs_reset(f.d));
		fx_free(&f);
	}
}

/* Batches: with EVENT_IDX the driver suppresses kicks the device did not ask for. */
static void test_batch_and_suppression(void **state)
{
	struct fx f;
	struct pvm_vdrv_buf o = { BUFS, 16 }, i = { BUFS + 0x10000, 16 };
	void *tok;
	uint32_t len;
	int kicks = 0;

	fx_new(&f, PVM_VIRTIO_CORE_FEATURES, 16);
	assert_int_equal(drv_new(&f, EV, 16, false), 0);
	f.e->defer = true;       /* the device holds requests: the driver keeps adding */
	for (int k = 0; k < 5; k++) {
		assert_int_equal(pvm_vdrv_add(f.d, 0, &o, 1, &i, 1, &f), 0);
		kicks += pvm_vdrv_kick(f.d, 0);
	}
	/* The device popped everything at each kick and re-armed avail_event, so every kick was
	 * wanted. A kick with nothing new is suppressed; two adds need one kick. */
	assert_int_equal(kicks, 5);
	assert_int_equal(f.e->nheld, 5);
	assert_int_equal(pvm_vdrv_kick(f.d, 0), 0);
	assert_int_equal(pvm_vdrv_add(f.d, 0, &o, 1, &i, 1, &f), 0);
	assert_int_equal(pvm_vdrv_add(f.d, 0, &o, 1, &i, 1, &f), 0);
	assert_int_equal(pvm_vdrv_kick(f.d, 0), 1);       /* idx passed avail_event 5 */
	assert_int_equal(f.e->nheld, 7);
	/* The device asks for no notification until idx reaches avail_event + 1. */
	((uint16_t *)tg_host(&f.g, RINGS + 16 * 16 + 6 + 2 * 16 + 2))[2 + 4 * 16] = 20;
	assert_int_equal(pvm_vdrv_add(f.d, 0, &o, 1, &i, 1, &f), 0);
	assert_int_equal(pvm_vdrv_kick(f.d, 0), 0);
	assert_int_equal(f.e->nheld, 7);
	pvm_virtio_mmio_write(f.m, PVM_VIRTIO_MMIO_QUEUE_NOTIFY, 4, 0);   /* a spurious kick is fine */
	assert_int_equal(f.e->nheld, 8);
	/* complete them all in reverse order */
	for (unsigned k = f.e->nheld; k-- > 0;)
		echo_one(f.e, pvm_virtio_device_queue(f.e->dev, 0), f.e->held[k]);
	f.e->nheld = 0;
	pvm_virtq_notify(pvm_virtio_device_queue(f.e->dev, 0));
	for (int k = 0; k < 8; k++)
		assert_int_equal(pvm_vdrv_get_used(f.d, 0, &tok, &len), 1);
	assert_int_equal(pvm_vdrv_get_used(f.d, 0, &tok, &len), 0);
	/* Queue full: -ENOSPC */
	for (int k = 0; k < 16; k++)
		assert_int_equal(pvm_vdrv_add(f.d, 0, &o, 1, &i, 1, &f), k < 8 ? 0 : -ENOSPC);
	assert_int_equal(pvm_vdrv_add(f.d, 0, &o, 0, &i, 0, &f), -EINVAL);
	assert_int_equal(pvm_vdrv_add(f.d, 9, &o, 1, &i, 1, &f), -EINVAL);
	assert_int_equal(pvm_vdrv_add(f.d, 0, &o, 1, &i, 1, NULL), -EINVAL);
	fx_free(&f);
}

struct worker_arg {
	struct fx *f;            /* fixture */
	unsigned n;              /* elements to complete */
};

/* Complete held elements from another thread, newest first. */
static void *worker(void *opaque)
{
	struct worker_arg *a = opaque;
	struct echo *e = a->f->e;
	unsigned done = 0;

	while (done < a->n) {
		struct pvm_virtq_elem *el = NULL;

		pthread_mutex_lock(&e->lock);
		if (e->nheld)
			el = e->held[--e->nheld];
		pthread_mutex_unlock(&e->lock);
		if (!el) {
			sched_yield();
			continue;
		}
		echo_one(e, pvm_virtio_device_queue(e->dev, el->queue), el);
		pvm_virtq_notify(pvm_virtio_device_queue(e->dev, 0));
		done++;
	}
	return NULL;
}

static void test_async_completion(void **state)
{
	struct fx f;
	struct worker_arg a = { &f, 3000 };
	pthread_t t;
	unsigned sent = 0, got = 0;
	uint8_t *tokens = calloc(a.n, 1);

	assert_non_null(tokens);
	fx_new(&f, PVM_VIRTIO_CORE_FEATURES, 32);
	assert_int_equal(drv_new(&f, PVM_VIRTIO_CORE_FEATURES, 32, true), 0);
	f.e->defer = true;
	assert_int_equal(pthread_create(&t, NULL, worker, &a), 0);
	while (got < a.n) {
		void *tok;
		uint32_t len;
		int rc;

		while (sent < a.n) {
			struct pvm_vdrv_buf o = { BUFS + (sent % 64) * 64, 32 };
			struct pvm_vdrv_buf i = { BUFS + 0x10000 + (sent % 64) * 64, 64 };

			if (pvm_vdrv_add(f.d, 0, &o, 1, &i, 1, &tokens[sent]) != 0)
				break;
			pvm_vdrv_kick(f.d, 0);
			sent++;
		}
		while ((rc = pvm_vdrv_get_used(f.d, 0, &tok, &len)) == 1) {
			assert_int_equal(len, 32);
			assert_int_equal(*(uint8_t *)tok, 0);
			*(uint8_t *)tok = 1;
			got++;
		}
		assert_int_equal(rc, 0);
		pvm_vdrv_ack_interrupt(f.d);
	}
	pthread_join(t, NULL);
	for (unsigned k = 0; k < a.n; k++)
		assert_int_equal(tokens[k], 1);
	free(tokens);
	fx_free(&f);
}

static void test_config_generation_retry(void **state)
{
	struct fx f;
	uint64_t v = 0;
	uint32_t w = 0x01020304, r = 0;

	fx_new(&f, PVM_VIRTIO_CORE_FEATURES, 8);
	assert_int_equal(drv_new(&f, 0, 0, false), 0);
	assert_int_equal(pvm_vdrv_queue_size(f.d, 1), 8);
	f.e->bump_on_read = 3;         /* the value "changes" during the first three reads */
	f.e->get_config_calls = 0;
	assert_int_equal(pvm_vdrv_config_read(f.d, 0, &v, 8), 0);
	assert_int_equal(v, 0x1122334455667788ULL);
	/* 8-byte read = two 4-byte reads per try; the 3 bumps spoil tries 1 and 2 (two bumps in
	 * try 1's two reads, one in try 2's first), try 3 succeeds. */
	assert_int_equal(f.e->get_config_calls, 6);
	assert_int_equal(pvm_virtio_device_config_generation(f.e->dev), 3);
	assert_true(pvm_vdrv_ack_interrupt(f.d) & PVM_VIRTIO_INT_CONFIG);
	/* endless changes: -EAGAIN */
	f.e->bump_on_read = 100000;
	assert_int_equal(pvm_vdrv_config_read(f.d, 0, &v, 8), -EAGAIN);
	f.e->bump_on_read = 0;
	pvm_vdrv_config_write(f.d, 8, &w, 4);
	assert_int_equal(f.e->writable, 0x01020304);
	assert_int_equal(pvm_vdrv_config_read(f.d, 8, &r, 4), 0);
	assert_int_equal(r, 0x01020304);
	w = 0xaabbccdd;
	pvm_vdrv_config_write(f.d, 9, (uint8_t *)&w + 1, 3);   /* odd length: byte accesses */
	assert_int_equal(f.e->writable, 0xaabbcc04);
	assert_int_equal(pvm_vdrv_config_read(f.d, 9, &r, 3), 0);
	assert_int_equal(r & 0xffffff, 0xaabbcc);
	fx_free(&f);
}

static void test_init_failures(void **state)
{
	struct fx f;
	struct pvm_vdrv_config cfg = { .ring_gpa = RINGS, .ring_size = 0x1000 };
	struct pvm_error err = { 0 };

	fx_new(&f, PVM_VIRTIO_CORE_FEATURES, 256);
	/* ring area too small */
	assert_int_equal(pvm_vdrv_new(f.m, f.g.mem, &cfg, &f.d, &err), -ENOSPC);
	assert_null(f.d);
	assert_true(pvm_virtio_device_status(f.e->dev) & PVM_VIRTIO_S_FAILED);
	/* ring area outside memory */
	cfg.ring_gpa = TG_HOLE;
	cfg.ring_size = 0x100000;
	assert_int_equal(pvm_vdrv_new(f.m, f.g.mem, &cfg, &f.d, NULL), -EINVAL);
	cfg.ring_gpa = RINGS + 8;
	assert_int_equal(pvm_vdrv_new(f.m, f.g.mem, &cfg, &f.d, NULL), -EINVAL);
	/* the device refuses a feature the driver takes */
	f.e->refuse_features = EV;
	assert_int_equal(drv_new(&f, EV, 0, false), -EIO);
	assert_int_equal(pvm_virtio_device_status(f.e->dev) & (PVM_VIRTIO_S_FAILED | PVM_VIRTIO_S_FEATURES_OK),
			 PVM_VIRTIO_S_FAILED);
	f.e->refuse_features = 0;
	assert_int_equal(drv_new(&f, EV, 0, false), 0);
	assert_int_equal(pvm_vdrv_queue_size(f.d, 0), 256);
	fx_free(&f);
}

/* A guest that corrupts its ring sees NEEDS_RESET and a config interrupt, and recovers by
 * resetting and re-initialising the device. */
static void test_needs_reset_seen_by_driver(void **state)
{
	struct fx f;
	struct pvm_vdrv_buf o = { BUFS, 16 }, i = { BUFS + 0x10000, 16 };
	uint8_t *descs;

	fx_new(&f, PVM_VIRTIO_CORE_FEATURES, 8);
	assert_int_equal(drv_new(&f, 0, 8, false), 0);
	assert_int_equal(pvm_vdrv_add(f.d, 0, &o, 1, &i, 1, &f), 0);
	descs = tg_host(&f.g, RINGS);
	memset(descs, 0xff, 16);   /* descriptor 0 now points nowhere, with every flag set */
	pvm_vdrv_kick(f.d, 0);
	assert_true(pvm_vdrv_needs_reset(f.d));
	assert_true(pvm_vdrv_ack_interrupt(f.d) & PVM_VIRTIO_INT_CONFIG);
	assert_int_equal(f.e->last_pop, -EIO);
	pvm_vdrv_free(f.d);
	f.d = NULL;
	assert_int_equal(drv_new(&f, 0, 8, false), 0);
	assert_false(pvm_vdrv_needs_reset(f.d));
	echo_round(&f, 0, 100, 1, 1, 5);
	fx_free(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_echo_modes),
		cmocka_unit_test(test_index_wraparound),
		cmocka_unit_test(test_batch_and_suppression),
		cmocka_unit_test(test_async_completion),
		cmocka_unit_test(test_config_generation_retry),
		cmocka_unit_test(test_init_failures),
		cmocka_unit_test(test_needs_reset_seen_by_driver),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

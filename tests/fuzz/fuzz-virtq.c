/* SPDX-License-Identifier: MIT */
/*
 * Fuzz the split virtqueue (device side). The input is guest memory: its first byte picks the
 * queue size (2^(b % 9), 1..256), its second the negotiated transport features and the
 * completion order, and the rest is copied to guest-physical 0x10000, where the descriptor
 * table starts, followed directly by the available ring and the used ring. Descriptors may
 * point anywhere; guest memory is two adjacent 64 KiB slots at 0x10000 and 0x20000, a hole,
 * and a read-only page at 0x40000.
 *
 * The device pops everything, reads and writes every element, completes them, and pops again.
 * It must never crash, never hand out a pointer outside guest memory (or a writable one into
 * the read-only page), never pop more than the queue size in one round, and stop.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <pvmem/memslot.h>
#include <pvmem/virtio.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define RAM_GPA 0x10000ULL
#define RAM_SIZE 0x20000ULL          /* two slots of 64 KiB */
#define RO_GPA 0x40000ULL
#define MAX_INPUT (2 + RAM_SIZE)

static struct pvm_memslot_table *mem;
static struct pvm_virtio_device *dev;
static uint8_t *ram, *ro;

static void init_once(void)
{
	struct pvm_virtio_device_ops ops = {
		.name = "fuzz",
		.device_id = 0x7e57,
		.features = PVM_VIRTIO_CORE_FEATURES,
		.num_queues = 1,
		.queue_max_size = 256,
	};

	pvm_log_set_level(PVM_LOG_ERROR);
	ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ro = mmap(NULL, 0x1000, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (ram == MAP_FAILED || ro == MAP_FAILED || pvm_memslot_table_new(0, &mem) ||
	    pvm_memslot_add(mem, 0, 0, RAM_GPA, 0x10000, ram, NULL) ||
	    pvm_memslot_add(mem, 1, 0, RAM_GPA + 0x10000, 0x10000, ram + 0x10000, NULL) ||
	    pvm_memslot_add(mem, 2, PVM_MEMSLOT_F_READONLY, RO_GPA, 0x1000, ro, NULL) ||
	    pvm_virtio_device_new(&ops, NULL, mem, &dev, NULL))
		abort();
}

static bool inside(const void *p, size_t len, const uint8_t *base, size_t size)
{
	const uint8_t *b = p;

	return b >= base && len <= size && (size_t)(b - base) <= size - len;
}

static void check_elem(const struct pvm_virtq_elem *e)
{
	uint64_t out = 0, in = 0;

	if (e->out_num + e->in_num > PVM_VIRTQ_MAX_SEGS || e->out_num + e->in_num == 0)
		abort();
	for (uint32_t i = 0; i < e->out_num; i++) {
		if (!inside(e->out[i].iov_base, e->out[i].iov_len, ram, RAM_SIZE) &&
		    !inside(e->out[i].iov_base, e->out[i].iov_len, ro, 0x1000))
			abort();
		out += e->out[i].iov_len;
	}
	for (uint32_t i = 0; i < e->in_num; i++) {
		if (!inside(e->in[i].iov_base, e->in[i].iov_len, ram, RAM_SIZE))
			abort();
		in += e->in[i].iov_len;
	}
	if (out != e->out_len || in != e->in_len)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct pvm_virtq_elem *held[256];
	struct pvm_virtq *vq;
	uint16_t num;
	uint64_t features, avail, used;
	uint8_t mode, buf[512];
	unsigned n = 0;

	if (size < 2 || size > MAX_INPUT)
		return 0;
	if (!dev)
		init_once();
	num = (uint16_t)(1u << (data[0] % 9));
	mode = data[1];
	features = PVM_VIRTIO_BIT(PVM_VIRTIO_F_VERSION_1);
	if (mode & 1)
		features |= PVM_VIRTIO_BIT(PVM_VIRTIO_F_EVENT_IDX);
	if (mode & 2)
		features |= PVM_VIRTIO_BIT(PVM_VIRTIO_F_INDIRECT_DESC);
	memset(ram, 0, RAM_SIZE);
	memcpy(ram, data + 2, size - 2);

	/* Driver side of the handshake, rings packed after the descriptor table. */
	avail = RAM_GPA + 16ULL * num;
	used = (avail + 6 + 2ULL * num + 3) & ~3ULL;
	pvm_virtio_device_set_status(dev, 0);
	pvm_virtio_device_set_status(dev, PVM_VIRTIO_S_ACKNOWLEDGE | PVM_VIRTIO_S_DRIVER);
	pvm_virtio_device_set_driver_features(dev, features);
	pvm_virtio_device_set_status(dev, 0x0b);
	vq = pvm_virtio_device_queue(dev, 0);
	if (pvm_virtio_device_queue_set_num(dev, 0, num) ||
	    pvm_virtio_device_queue_set_addr(dev, 0, RAM_GPA, avail, used) ||
	    pvm_virtio_device_queue_set_ready(dev, 0, true))
		abort();
	pvm_virtio_device_set_status(dev, 0x0f);

	for (int round = 0; round < 2; round++) {
		struct pvm_virtq_elem *e;
		unsigned popped = 0;
		int rc;

		while ((rc = pvm_virtq_pop(vq, &e)) == 1) {
			check_elem(e);
			if (++popped > num || n >= 256)
				abort();   /* more than the ring can hold */
			held[n++] = e;
		}
		if (rc != 0 && rc != -EIO)
			abort();
		/* Use every element: read it, write it, complete it in the chosen order. */
		for (unsigned k = 0; k < n; k++) {
			struct pvm_virtq_elem *x = held[(mode & 4) ? n - 1 - k : k];
			size_t r = pvm_virtq_elem_read(x, x->out_len / 2, buf, sizeof(buf));

			if (r > x->out_len)
				abort();
			memset(buf, 0xa5, sizeof(buf));
			if (pvm_virtq_elem_write(x, (mode >> 4) * 16ULL, buf, sizeof(buf)) > x->in_len)
				abort();
			if (mode & 8)
				pvm_virtq_elem_free(x);
			else
				pvm_virtq_complete(vq, x, (uint32_t)(mode * 1000u));
		}
		n = 0;
		if (pvm_virtq_inflight(vq) != 0)
			abort();
		if (rc == -EIO && !(pvm_virtio_device_status(dev) & PVM_VIRTIO_S_NEEDS_RESET))
			abort();
	}
	return 0;
}

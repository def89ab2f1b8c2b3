/* SPDX-License-Identifier: MIT */
/*
 * virtio-mmio version 2 as a register file (virtio 1.x "Virtio Over MMIO"; register offsets as
 * in Linux <linux/virtio_mmio.h>). A VMM forwards the guest's MMIO exits here; the simulated
 * guest and the tests call it directly. It knows nothing about the device type: every register
 * maps onto the transport-side calls of the common device state.
 *
 * The guest controls every value: invalid accesses (unknown offsets, wrong width or alignment,
 * writes to read-only registers, selectors out of range) are ignored and logged at debug level,
 * never fatal. Registers below the configuration space take aligned 32-bit accesses only; the
 * configuration space takes 1/2/4-byte (and 8-byte) accesses.
 */
#include <errno.h>
#include <string.h>

#include "core/util.h"
#include "virtio/virtqueue-priv.h"

/* Per-queue addresses as the driver wrote them, 32 bits at a time. */
struct mmio_queue {
	uint64_t desc;   /* QueueDesc{Low,High} */
	uint64_t avail;  /* QueueDriver{Low,High} */
	uint64_t used;   /* QueueDevice{Low,High} */
};

struct pvm_virtio_mmio {
	struct pvm_virtio_device *dev;   /* the device (not owned) */
	pthread_mutex_t lock;            /* protects the selectors and staged values below */
	uint32_t device_features_sel;    /* DeviceFeaturesSel */
	uint32_t driver_features_sel;    /* DriverFeaturesSel */
	uint32_t queue_sel;              /* QueueSel */
	uint32_t shm_sel;                /* SHMSel (no regions: lengths read as -1) */
	uint64_t driver_features;        /* assembled DriverFeatures words */
	struct mmio_queue *queues;       /* one per device queue */
	pthread_mutex_t irq_lock;        /* protects int_status, irq_fn, irq_opaque */
	uint32_t int_status;             /* InterruptStatus */
	pvm_virtio_irq_fn irq_fn;        /* the interrupt line, may be NULL */
	void *irq_opaque;                /* passed to irq_fn */
};

/* The device raised (or, with bits == 0, reset) interrupt causes. */
static void mmio_interrupt(void *opaque, uint32_t bits)
{
	struct pvm_virtio_mmio *m = opaque;

	pthread_mutex_lock(&m->irq_lock);
	/* Written under irq_lock, read without it (pvm_virtio_mmio_interrupt_status). */
	__atomic_store_n(&m->int_status, bits ? m->int_status | bits : 0, __ATOMIC_RELAXED);
	PVM_TRACE(virtio_mmio_irq, "dev=%s bits=0x%x status=0x%x", pvm_virtio_device_name(m->dev),
		  bits, m->int_status);
	if (m->irq_fn)
		m->irq_fn(m->irq_opaque, m->int_status != 0);
	pthread_mutex_unlock(&m->irq_lock);
}

int pvm_virtio_mmio_new(struct pvm_virtio_device *dev, struct pvm_virtio_mmio **out,
			struct pvm_error *err)
{
	struct pvm_virtio_mmio *m;

	*out = NULL;
	m = pvm_calloc(1, sizeof(*m));
	if (!m)
		return pvm_error_set(err, -ENOMEM, "out of memory");
	m->queues = pvm_calloc(pvm_virtio_device_num_queues(dev), sizeof(*m->queues));
	if (!m->queues) {
		pvm_free(m);
		return pvm_error_set(err, -ENOMEM, "out of memory");
	}
	m->dev = dev;
	pthread_mutex_init(&m->lock, NULL);
	pthread_mutex_init(&m->irq_lock, NULL);
	pvm_virtio_device_set_interrupt(dev, mmio_interrupt, m);
	*out = m;
	return 0;
}

void pvm_virtio_mmio_free(struct pvm_virtio_mmio *m)
{
	if (!m)
		return;
	pvm_virtio_device_set_interrupt(m->dev, NULL, NULL);
	pthread_mutex_destroy(&m->lock);
	pthread_mutex_destroy(&m->irq_lock);
	pvm_free(m->queues);
	pvm_free(m);
}

struct pvm_virtio_device *pvm_virtio_mmio_device(const struct pvm_virtio_mmio *m)
{
	return m->dev;
}

void pvm_virtio_mmio_set_irq(struct pvm_virtio_mmio *m, pvm_virtio_irq_fn fn, void *opaque)
{
	pthread_mutex_lock(&m->irq_lock);
	m->irq_fn = fn;
	m->irq_opaque = opaque;
	pthread_mutex_unlock(&m->irq_lock);
}

uint32_t pvm_virtio_mmio_interrupt_status(const struct pvm_virtio_mmio *m)
{
	return __atomic_load_n(&m->int_status, __ATOMIC_RELAXED);
}

static uint64_t config_read(struct pvm_virtio_mmio *m, uint64_t off, unsigned size)
{
	uint8_t b[8] = { 0 };
	uint64_t v = 0;

	if ((size != 1 && size != 2 && size != 4 && size != 8) || off % size ||
	    pvm_virtio_device_config_read(m->dev, (uint32_t)off, b, size)) {
		pvm_debug("%s: config read of %u bytes at 0x%llx ignored", pvm_virtio_device_name(m->dev),
			  size, (unsigned long long)off);
		return 0;
	}
	for (unsigned i = 0; i < size; i++)
		v |= (uint64_t)b[i] << (8 * i);
	return v;
}

static void config_write(struct pvm_virtio_mmio *m, uint64_t off, unsigned size, uint64_t v)
{
	uint8_t b[8];

	for (unsigned i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	if ((size != 1 && size != 2 && size != 4 && size != 8) || off % size ||
	    pvm_virtio_device_config_write(m->dev, (uint32_t)off, b, size))
		pvm_debug("%s: config write of %u bytes at 0x%llx ignored", pvm_virtio_device_name(m->dev),
			  size, (unsigned long long)off);
}

uint64_t pvm_virtio_mmio_read(struct pvm_virtio_mmio *m, uint64_t offset, unsigned size)
{
	struct pvm_virtio_device *dev = m->dev;
	uint32_t v = 0, sel;

	if (offset >= PVM_VIRTIO_MMIO_CONFIG) {
		if (offset >= PVM_VIRTIO_MMIO_SIZE)
			goto bad;
		return config_read(m, offset - PVM_VIRTIO_MMIO_CONFIG, size);
	}
	if (size != 4 || offset % 4)
		goto bad;
	pthread_mutex_lock(&m->lock);
	sel = m->queue_sel;
	switch (offset) {
	case PVM_VIRTIO_MMIO_MAGIC_VALUE:
		v = PVM_VIRTIO_MMIO_MAGIC;
		break;
	case PVM_VIRTIO_MMIO_VERSION_REG:
		v = PVM_VIRTIO_MMIO_VERSION;
		break;
	case PVM_VIRTIO_MMIO_DEVICE_ID:
		v = pvm_virtio_device_id(dev);
		break;
	case PVM_VIRTIO_MMIO_VENDOR_ID:
		v = PVM_VIRTIO_MMIO_VENDOR;
		break;
	case PVM_VIRTIO_MMIO_DEVICE_FEATURES:
		if (m->device_features_sel < 2)
			v = (uint32_t)(pvm_virtio_device_host_features(dev) >> (32 * m->device_features_sel));
		break;
	case PVM_VIRTIO_MMIO_QUEUE_NUM_MAX:
		v = pvm_virtio_device_queue_max(dev, sel);
		break;
	case PVM_VIRTIO_MMIO_QUEUE_READY:
		v = sel < pvm_virtio_device_num_queues(dev) &&
		    pvm_virtq_is_ready(pvm_virtio_device_queue(dev, sel));
		break;
	case PVM_VIRTIO_MMIO_INTERRUPT_STATUS:
		v = pvm_virtio_mmio_interrupt_status(m);
		break;
	case PVM_VIRTIO_MMIO_STATUS:
		v = pvm_virtio_device_status(dev);
		break;
	case PVM_VIRTIO_MMIO_SHM_LEN_LOW:
	case PVM_VIRTIO_MMIO_SHM_LEN_HIGH:
	case PVM_VIRTIO_MMIO_SHM_BASE_LOW:
	case PVM_VIRTIO_MMIO_SHM_BASE_HIGH:
		v = UINT32_MAX;  /* no shared memory regions: a length of -1 */
		break;
	case PVM_VIRTIO_MMIO_QUEUE_RESET:
		v = 0;
		break;
	case PVM_VIRTIO_MMIO_CONFIG_GENERATION:
		v = pvm_virtio_device_config_generation(dev);
		break;
	default:
		pthread_mutex_unlock(&m->lock);
		goto bad;
	}
	pthread_mutex_unlock(&m->lock);
	return v;
bad:
	pvm_debug("%s: mmio read of %u bytes at 0x%llx ignored", pvm_virtio_device_name(dev), size,
		  (unsigned long long)offset);
	return 0;
}

/* Set the low or high half of *@p. */
static void set_half(uint64_t *p, bool high, uint32_t v)
{
	if (high)
		*p = (*p & 0xffffffffULL) | ((uint64_t)v << 32);
	else
		*p = (*p & ~0xffffffffULL) | v;
}

/* A write to one of the queue address registers. */
static void write_queue_addr(struct pvm_virtio_mmio *m, uint64_t offset, uint32_t v)
{
	struct pvm_virtio_device *dev = m->dev;
	struct mmio_queue q;
	uint32_t sel;
	bool high = offset & 4;
	int rc;

	pthread_mutex_lock(&m->lock);
	sel = m->queue_sel;
	if (sel >= pvm_virtio_device_num_queues(dev)) {
		pthread_mutex_unlock(&m->lock);
		pvm_debug("%s: queue address for missing queue %u ignored", pvm_virtio_device_name(dev), sel);
		return;
	}
	switch (offset & ~4ULL) {
	case PVM_VIRTIO_MMIO_QUEUE_DESC_LOW:
		set_half(&m->queues[sel].desc, high, v);
		break;
	case PVM_VIRTIO_MMIO_QUEUE_AVAIL_LOW:
		set_half(&m->queues[sel].avail, high, v);
		break;
	default:
		set_half(&m->queues[sel].used, high, v);
		break;
	}
	q = m->queues[sel];
	pthread_mutex_unlock(&m->lock);
	rc = pvm_virtio_device_queue_set_addr(dev, sel, q.desc, q.avail, q.used);
	if (rc)
		pvm_debug("%s: queue %u address change refused: %s", pvm_virtio_device_name(dev), sel,
			  strerror(-rc));
}

void pvm_virtio_mmio_write(struct pvm_virtio_mmio *m, uint64_t offset, unsigned size, uint64_t value)
{
	struct pvm_virtio_device *dev = m->dev;
	uint32_t v = (uint32_t)value, sel;
	uint64_t features;
	int rc;

	if (offset >= PVM_VIRTIO_MMIO_CONFIG) {
		if (offset >= PVM_VIRTIO_MMIO_SIZE)
			goto bad;
		config_write(m, offset - PVM_VIRTIO_MMIO_CONFIG, size, value);
		return;
	}
	if (size != 4 || offset % 4)
		goto bad;
	switch (offset) {
	case PVM_VIRTIO_MMIO_DEVICE_FEATURES_SEL:
		pthread_mutex_lock(&m->lock);
		m->device_features_sel = v;
		pthread_mutex_unlock(&m->lock);
		return;
	case PVM_VIRTIO_MMIO_DRIVER_FEATURES_SEL:
		pthread_mutex_lock(&m->lock);
		m->driver_features_sel = v;
		pthread_mutex_unlock(&m->lock);
		return;
	case PVM_VIRTIO_MMIO_DRIVER_FEATURES:
		pthread_mutex_lock(&m->lock);
		if (m->driver_features_sel >= 2) {
			pthread_mutex_unlock(&m->lock);
			goto bad;
		}
		set_half(&m->driver_features, m->driver_features_sel == 1, v);
		features = m->driver_features;
		pthread_mutex_unlock(&m->lock);
		pvm_virtio_device_set_driver_features(dev, features);
		return;
	case PVM_VIRTIO_MMIO_QUEUE_SEL:
		pthread_mutex_lock(&m->lock);
		m->queue_sel = v;
		pthread_mutex_unlock(&m->lock);
		return;
	case PVM_VIRTIO_MMIO_QUEUE_NUM:
		pthread_mutex_lock(&m->lock);
		sel = m->queue_sel;
		pthread_mutex_unlock(&m->lock);
		rc = v > UINT16_MAX ? -EINVAL : pvm_virtio_device_queue_set_num(dev, sel, (uint16_t)v);
		if (rc)
			pvm_debug("%s: QueueNum %u for queue %u refused: %s", pvm_virtio_device_name(dev),
				  v, sel, strerror(-rc));
		return;
	case PVM_VIRTIO_MMIO_QUEUE_READY:
		pthread_mutex_lock(&m->lock);
		sel = m->queue_sel;
		pthread_mutex_unlock(&m->lock);
		if (v > 1 || pvm_virtio_device_queue_set_ready(dev, sel, v == 1) == -ENOENT)
			goto bad;
		return;
	case PVM_VIRTIO_MMIO_QUEUE_NOTIFY:
		/* Without VIRTIO_F_NOTIFICATION_DATA the value is the queue index. */
		pvm_virtio_device_queue_kick(dev, v);
		return;
	case PVM_VIRTIO_MMIO_INTERRUPT_ACK:
		pthread_mutex_lock(&m->irq_lock);
		__atomic_store_n(&m->int_status, m->int_status & ~v, __ATOMIC_RELAXED);
		if (m->irq_fn)
			m->irq_fn(m->irq_opaque, m->int_status != 0);
		pthread_mutex_unlock(&m->irq_lock);
		return;
	case PVM_VIRTIO_MMIO_STATUS:
		if (v > UINT8_MAX)
			goto bad;
		if (v == 0) {
			pthread_mutex_lock(&m->lock);
			m->driver_features = 0;
			memset(m->queues, 0, pvm_virtio_device_num_queues(dev) * sizeof(*m->queues));
			pthread_mutex_unlock(&m->lock);
		}
		pvm_virtio_device_set_status(dev, (uint8_t)v);
		return;
	case PVM_VIRTIO_MMIO_QUEUE_DESC_LOW:
	case PVM_VIRTIO_MMIO_QUEUE_DESC_HIGH:
	case PVM_VIRTIO_MMIO_QUEUE_AVAIL_LOW:
	case PVM_VIRTIO_MMIO_QUEUE_AVAIL_HIGH:
	case PVM_VIRTIO_MMIO_QUEUE_USED_LOW:
	case PVM_VIRTIO_MMIO_QUEUE_USED_HIGH:
		write_queue_addr(m, offset, v);
		return;
	case PVM_VIRTIO_MMIO_SHM_SEL:
		pthread_mutex_lock(&m->lock);
		m->shm_sel = v;
		pthread_mutex_unlock(&m->lock);
		return;
	default:
		break;
	}
bad:
	pvm_debug("%s: mmio write of %u bytes at 0x%llx (0x%llx) ignored", pvm_virtio_device_name(dev),
		  size, (unsigned long long)offset, (unsigned long long)value);
}

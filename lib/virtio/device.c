/* SPDX-License-Identifier: MIT */
/*
 * The common state of a virtio device (virtio 1.x "Basic Facilities of a Virtio Device"):
 * status and its rules, feature negotiation, configuration space with its generation,
 * NEEDS_RESET, interrupts, and queue configuration. Transports call the transport-side
 * functions; devices only see their ops being called.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/util.h"
#include "virtio/virtqueue-priv.h"

/* Device feature bits: 0-23 and 41-49 (virtio 1.x "Feature Bits"); the rest is transport. */
#define DEVICE_FEATURE_MASK (0xffffffULL | (0x1ffULL << 41))

int pvm_virtio_device_new(const struct pvm_virtio_device_ops *ops, void *opaque,
			  struct pvm_memslot_table *mem, struct pvm_virtio_device **out,
			  struct pvm_error *err)
{
	struct pvm_virtio_device *dev;
	unsigned n;

	*out = NULL;
	if (!ops || !mem)
		return pvm_error_set(err, -EINVAL, "virtio device needs ops and guest memory");
	n = ops->num_queues;
	if (n == 0 || n > PVM_VIRTIO_MAX_QUEUES)
		return pvm_error_set(err, -EINVAL, "virtio device queue count %u is not in 1..%u", n,
				     PVM_VIRTIO_MAX_QUEUES);
	if (!PVM_IS_POW2(ops->queue_max_size) || ops->queue_max_size > PVM_VIRTQ_MAX_SIZE)
		return pvm_error_set(err, -EINVAL, "virtio queue size %u is not a power of two <= %u",
				     ops->queue_max_size, PVM_VIRTQ_MAX_SIZE);
	if (ops->config_size > PVM_VIRTIO_MAX_CONFIG)
		return pvm_error_set(err, -EINVAL, "virtio config size %u exceeds %u", ops->config_size,
				     PVM_VIRTIO_MAX_CONFIG);
	dev = pvm_calloc(1, sizeof(*dev));
	if (!dev)
		return pvm_error_set(err, -ENOMEM, "out of memory");
	dev->queues = pvm_calloc(n, sizeof(*dev->queues));
	if (!dev->queues) {
		pvm_free(dev);
		return pvm_error_set(err, -ENOMEM, "out of memory");
	}
	for (unsigned i = 0; i < n; i++) {
		if (pvm_virtq_init(&dev->queues[i], dev, (uint16_t)i, ops->queue_max_size)) {
			while (i--)
				pvm_virtq_destroy(&dev->queues[i]);
			pvm_free(dev->queues);
			pvm_free(dev);
			return pvm_error_set(err, -ENOMEM, "out of memory");
		}
	}
	dev->ops = *ops;
	if (!dev->ops.name)
		dev->ops.name = "virtio";
	dev->opaque = opaque;
	dev->mem = mem;
	dev->host_features = (ops->features & (DEVICE_FEATURE_MASK | PVM_VIRTIO_CORE_FEATURES)) |
			     PVM_VIRTIO_BIT(PVM_VIRTIO_F_VERSION_1);
	pthread_mutex_init(&dev->lock, NULL);
	pthread_mutex_init(&dev->irq_lock, NULL);
	pthread_mutex_init(&dev->reason_lock, NULL);
	*out = dev;
	return 0;
}

void pvm_virtio_device_free(struct pvm_virtio_device *dev)
{
	if (!dev)
		return;
	for (unsigned i = 0; i < dev->ops.num_queues; i++)
		pvm_virtq_destroy(&dev->queues[i]);
	pvm_free(dev->queues);
	pthread_mutex_destroy(&dev->lock);
	pthread_mutex_destroy(&dev->irq_lock);
	pthread_mutex_destroy(&dev->reason_lock);
	pvm_free(dev);
}

const char *pvm_virtio_device_name(const struct pvm_virtio_device *dev)
{
	return dev->ops.name;
}

uint32_t pvm_virtio_device_id(const struct pvm_virtio_device *dev)
{
	return dev->ops.device_id;
}

void *pvm_virtio_device_opaque(const struct pvm_virtio_device *dev)
{
	return dev->opaque;
}

struct pvm_memslot_table *pvm_virtio_device_memory(const struct pvm_virtio_device *dev)
{
	return dev->mem;
}

unsigned pvm_virtio_device_num_queues(const struct pvm_virtio_device *dev)
{
	return dev->ops.num_queues;
}

struct pvm_virtq *pvm_virtio_device_queue(struct pvm_virtio_device *dev, unsigned index)
{
	return index < dev->ops.num_queues ? &dev->queues[index] : NULL;
}

uint64_t pvm_virtio_device_host_features(const struct pvm_virtio_device *dev)
{
	return dev->host_features;
}

uint64_t pvm_virtio_device_features(const struct pvm_virtio_device *dev)
{
	return atomic_load(&dev->features);
}

bool pvm_virtio_device_has_feature(const struct pvm_virtio_device *dev, unsigned bit)
{
	return bit < 64 && (atomic_load(&dev->features) & PVM_VIRTIO_BIT(bit));
}

uint8_t pvm_virtio_device_status(const struct pvm_virtio_device *dev)
{
	return atomic_load(&dev->status);
}

bool pvm_virtio_device_is_broken(const struct pvm_virtio_device *dev)
{
	return atomic_load(&dev->broken);
}

const char *pvm_virtio_device_broken_reason(const struct pvm_virtio_device *dev)
{
	return dev->broken_reason;
}

uint32_t pvm_virtio_device_config_generation(const struct pvm_virtio_device *dev)
{
	return atomic_load(&dev->config_generation);
}

void pvm_virtio_device_set_interrupt(struct pvm_virtio_device *dev, pvm_virtio_interrupt_fn fn,
				     void *opaque)
{
	pthread_mutex_lock(&dev->irq_lock);
	dev->irq_fn = fn;
	dev->irq_opaque = opaque;
	pthread_mutex_unlock(&dev->irq_lock);
}

void pvm_virtio_device_interrupt(struct pvm_virtio_device *dev, uint32_t bits)
{
	pthread_mutex_lock(&dev->irq_lock);
	if (dev->irq_fn)
		dev->irq_fn(dev->irq_opaque, bits);
	pthread_mutex_unlock(&dev->irq_lock);
}

void pvm_virtio_device_set_broken(struct pvm_virtio_device *dev, const char *fmt, ...)
{
	char reason[sizeof(dev->broken_reason)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	if (atomic_exchange(&dev->broken, true))
		return;  /* the first reason wins */
	pthread_mutex_lock(&dev->reason_lock);
	memcpy(dev->broken_reason, reason, sizeof(reason));
	pthread_mutex_unlock(&dev->reason_lock);
	pvm_warn("%s: device needs reset: %s", dev->ops.name, reason);
	PVM_TRACE(virtio_needs_reset, "dev=%s reason=%s", dev->ops.name, reason);
	if (atomic_fetch_or(&dev->status, PVM_VIRTIO_S_NEEDS_RESET) & PVM_VIRTIO_S_DRIVER_OK)
		pvm_virtio_device_interrupt(dev, PVM_VIRTIO_INT_CONFIG);
}

void pvm_virtio_device_config_changed(struct pvm_virtio_device *dev)
{
	uint32_t gen = atomic_fetch_add(&dev->config_generation, 1) + 1;
	bool irq = atomic_load(&dev->status) & PVM_VIRTIO_S_DRIVER_OK;

	PVM_TRACE(virtio_config_changed, "dev=%s generation=%u irq=%d", dev->ops.name, gen, irq);
	if (irq)
		pvm_virtio_device_interrupt(dev, PVM_VIRTIO_INT_CONFIG);
}

/* With dev->lock held. */
static void reset_locked(struct pvm_virtio_device *dev)
{
	if (dev->ops.reset)
		dev->ops.reset(dev->opaque);
	for (unsigned i = 0; i < dev->ops.num_queues; i++)
		pvm_virtq_reset(&dev->queues[i]);
	dev->driver_features = 0;
	atomic_store(&dev->features, 0);
	pthread_mutex_lock(&dev->reason_lock);
	dev->broken_reason[0] = '\0';
	pthread_mutex_unlock(&dev->reason_lock);
	atomic_store(&dev->broken, false);
	atomic_store(&dev->status, 0);
	/* bits == 0 tells the transport to drop its pending interrupt causes. */
	pvm_virtio_device_interrupt(dev, 0);
	PVM_TRACE(virtio_reset, "dev=%s", dev->ops.name);
}

void pvm_virtio_device_reset(struct pvm_virtio_device *dev)
{
	pthread_mutex_lock(&dev->lock);
	reset_locked(dev);
	pthread_mutex_unlock(&dev->lock);
}

/* Are the driver's features acceptable? With dev->lock held. */
static bool features_acceptable(struct pvm_virtio_device *dev, uint64_t f)
{
	int rc;

	if (f & ~dev->host_features) {
		pvm_warn("%s: driver accepted features 0x%llx that were not offered", dev->ops.name,
			 (unsigned long long)(f & ~dev->host_features));
		return false;
	}
	if (!(f & PVM_VIRTIO_BIT(PVM_VIRTIO_F_VERSION_1))) {
		pvm_warn("%s: driver did not accept VIRTIO_F_VERSION_1", dev->ops.name);
		return false;
	}
	if (dev->ops.validate_features && (rc = dev->ops.validate_features(dev->opaque, f)) < 0) {
		pvm_warn("%s: device refused features 0x%llx: %s", dev->ops.name,
			 (unsigned long long)f, strerror(-rc));
		return false;
	}
	return true;
}

void pvm_virtio_device_set_status(struct pvm_virtio_device *dev, uint8_t status)
{
	uint8_t old, new_status;
	uint64_t kicks = 0;

	pthread_mutex_lock(&dev->lock);
	if (status == 0) {
		reset_locked(dev);
		pthread_mutex_unlock(&dev->lock);
		return;
	}
	old = atomic_load(&dev->status);
	/* Bits are only ever added by the driver (it "MUST NOT clear a device status bit");
	 * NEEDS_RESET belongs to the device. */
	new_status = (uint8_t)((status & ~PVM_VIRTIO_S_NEEDS_RESET) | old);
	if ((new_status & PVM_VIRTIO_S_FEATURES_OK) && !(old & PVM_VIRTIO_S_FEATURES_OK)) {
		if (features_acceptable(dev, dev->driver_features))
			atomic_store(&dev->features, dev->driver_features);
		else
			new_status &= (uint8_t)~PVM_VIRTIO_S_FEATURES_OK;
	}
	if ((new_status & PVM_VIRTIO_S_DRIVER_OK) && !(new_status & PVM_VIRTIO_S_FEATURES_OK)) {
		pvm_warn("%s: DRIVER_OK without FEATURES_OK ignored", dev->ops.name);
		new_status &= (uint8_t)~PVM_VIRTIO_S_DRIVER_OK;
	}
	atomic_store(&dev->status, new_status);
	if (atomic_load(&dev->broken))
		atomic_fetch_or(&dev->status, PVM_VIRTIO_S_NEEDS_RESET);
	PVM_TRACE(virtio_status, "dev=%s old=0x%x new=0x%x", dev->ops.name, old, new_status);
	if (old != new_status && dev->ops.set_status)
		dev->ops.set_status(dev->opaque, old, new_status);
	if ((new_status & PVM_VIRTIO_S_DRIVER_OK) && !(old & PVM_VIRTIO_S_DRIVER_OK)) {
		for (unsigned i = 0; i < dev->ops.num_queues; i++) {
			struct pvm_virtq *vq = &dev->queues[i];

			pthread_mutex_lock(&vq->lock);
			if (vq->kick_pending && vq->ready)
				kicks |= 1ULL << i;
			vq->kick_pending = false;
			pthread_mutex_unlock(&vq->lock);
		}
	}
	pthread_mutex_unlock(&dev->lock);
	for (unsigned i = 0; kicks && i < dev->ops.num_queues; i++) {
		if ((kicks & (1ULL << i)) && dev->ops.queue_notify)
			dev->ops.queue_notify(dev->opaque, &dev->queues[i]);
	}
}

void pvm_virtio_device_set_driver_features(struct pvm_virtio_device *dev, uint64_t features)
{
	pthread_mutex_lock(&dev->lock);
	if (atomic_load(&dev->status) & PVM_VIRTIO_S_FEATURES_OK)
		pvm_debug("%s: driver features written after FEATURES_OK ignored", dev->ops.name);
	else
		dev->driver_features = features;
	pthread_mutex_unlock(&dev->lock);
}

uint64_t pvm_virtio_device_driver_features(const struct pvm_virtio_device *dev)
{
	return dev->driver_features;
}

static bool config_access_ok(const struct pvm_virtio_device *dev, uint32_t offset, uint32_t len)
{
	return (len == 1 || len == 2 || len == 4 || len == 8) && offset < dev->ops.config_size &&
	       len <= dev->ops.config_size - offset;
}

int pvm_virtio_device_config_read(struct pvm_virtio_device *dev, uint32_t offset, void *buf,
				  uint32_t len)
{
	uint8_t cfg[PVM_VIRTIO_MAX_CONFIG] = { 0 };

	if (!config_access_ok(dev, offset, len)) {
		if (len <= 8)
			memset(buf, 0, len);
		return -EINVAL;
	}
	if (dev->ops.get_config)
		dev->ops.get_config(dev->opaque, cfg);
	memcpy(buf, cfg + offset, len);
	return 0;
}

int pvm_virtio_device_config_write(struct pvm_virtio_device *dev, uint32_t offset, const void *buf,
				   uint32_t len)
{
	uint8_t cfg[PVM_VIRTIO_MAX_CONFIG] = { 0 };

	if (!config_access_ok(dev, offset, len))
		return -EINVAL;
	pthread_mutex_lock(&dev->lock);
	if (dev->ops.get_config)
		dev->ops.get_config(dev->opaque, cfg);
	memcpy(cfg + offset, buf, len);
	if (dev->ops.set_config)
		dev->ops.set_config(dev->opaque, cfg);
	pthread_mutex_unlock(&dev->lock);
	return 0;
}

uint16_t pvm_virtio_device_queue_max(const struct pvm_virtio_device *dev, unsigned index)
{
	return index < dev->ops.num_queues ? dev->ops.queue_max_size : 0;
}

int pvm_virtio_device_queue_set_num(struct pvm_virtio_device *dev, unsigned index, uint16_t num)
{
	struct pvm_virtq *vq;
	int rc = 0;

	if (index >= dev->ops.num_queues)
		return -ENOENT;
	vq = &dev->queues[index];
	pthread_mutex_lock(&dev->lock);
	pthread_mutex_lock(&vq->lock);
	if (vq->ready)
		rc = -EBUSY;
	else if (num == 0 || !PVM_IS_POW2(num) || num > vq->max_size)
		rc = -EINVAL;
	else
		vq->num = num;
	pthread_mutex_unlock(&vq->lock);
	pthread_mutex_unlock(&dev->lock);
	return rc;
}

int pvm_virtio_device_queue_set_addr(struct pvm_virtio_device *dev, unsigned index, uint64_t desc,
				     uint64_t avail, uint64_t used)
{
	struct pvm_virtq *vq;
	int rc = 0;

	if (index >= dev->ops.num_queues)
		return -ENOENT;
	vq = &dev->queues[index];
	pthread_mutex_lock(&dev->lock);
	pthread_mutex_lock(&vq->lock);
	if (vq->ready) {
		rc = -EBUSY;
	} else {
		vq->desc_gpa = desc;
		vq->avail_gpa = avail;
		vq->used_gpa = used;
	}
	pthread_mutex_unlock(&vq->lock);
	pthread_mutex_unlock(&dev->lock);
	return rc;
}

int pvm_virtio_device_queue_set_ready(struct pvm_virtio_device *dev, unsigned index, bool ready)
{
	char why[128];
	struct pvm_virtq *vq;
	int rc = 0;

	if (index >= dev->ops.num_queues)
		return -ENOENT;
	vq = &dev->queues[index];
	pthread_mutex_lock(&dev->lock);
	if (!ready) {
		pvm_virtq_reset(vq);
	} else if (!pvm_virtq_is_ready(vq)) {
		uint64_t f = atomic_load(&dev->features);

		rc = pvm_virtq_enable(vq, f & PVM_VIRTIO_BIT(PVM_VIRTIO_F_EVENT_IDX),
				      f & PVM_VIRTIO_BIT(PVM_VIRTIO_F_INDIRECT_DESC), why, sizeof(why));
		if (rc)
			pvm_virtio_device_set_broken(dev, "queue %u: %s", index, why);
	}
	PVM_TRACE(virtio_queue_ready, "dev=%s queue=%u ready=%d rc=%d", dev->ops.name, index, ready, rc);
	pthread_mutex_unlock(&dev->lock);
	return rc;
}

void pvm_virtio_device_queue_kick(struct pvm_virtio_device *dev, unsigned index)
{
	struct pvm_virtq *vq;
	bool deliver = false;

	if (index >= dev->ops.num_queues) {
		pvm_debug("%s: notify of queue %u ignored (no such queue)", dev->ops.name, index);
		return;
	}
	vq = &dev->queues[index];
	pthread_mutex_lock(&dev->lock);
	pthread_mutex_lock(&vq->lock);
	if (vq->ready && !atomic_load(&dev->broken)) {
		if (atomic_load(&dev->status) & PVM_VIRTIO_S_DRIVER_OK)
			deliver = true;
		else
			vq->kick_pending = true;
	}
	pthread_mutex_unlock(&vq->lock);
	pthread_mutex_unlock(&dev->lock);
	PVM_TRACE(virtio_kick, "dev=%s queue=%u deliver=%d", dev->ops.name, index, deliver);
	if (deliver && dev->ops.queue_notify)
		dev->ops.queue_notify(dev->opaque, vq);
}

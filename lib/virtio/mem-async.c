/* SPDX-License-Identifier: MIT */
/*
 * Asynchronous completion of long virtio-mem requests (multi-GiB unplug-all, preallocating
 * plugs). Linux backs off 50 s to 300 s after a BUSY answer, so instead of answering BUSY the
 * device keeps the element, lets one worker thread do the work, and answers when it is done.
 * Until then the queue is not processed further (Linux has one request in flight anyway), so
 * requests are still answered in order. A device reset meanwhile makes the answer stale: the
 * work still completes (block state is not tied to the driver), the answer is dropped.
 */
#include <errno.h>
#include <inttypes.h>

#include "core/util.h"
#include "virtio/mem-priv.h"

static void *worker(void *arg)
{
	struct pvm_vmem *vm = arg;

	pthread_mutex_lock(&vm->lock);
	for (;;) {
		struct pvm_virtq_elem *elem;
		struct pvm_virtq *vq;
		uint16_t resp;
		bool stale;

		while (!vm->job && !vm->worker_stop)
			pthread_cond_wait(&vm->cond, &vm->lock);
		if (!vm->job)
			break;
		resp = vm->job_d.resp;
		if (pvm_vmem_act(vm, &vm->job_d)) {
			resp = VIRTIO_MEM_RESP_BUSY;
			vm->busy_answers++;
		}
		elem = vm->job;
		vq = vm->job_vq;
		stale = vm->job_epoch != vm->epoch;
		vm->async_completions++;
		PVM_TRACE(vmem_async_done, "id=%s resp=%s stale=%d", vm->id, pvm_vmem_resp_name(resp), stale);
		if (stale) {
			/* The driver that asked is gone: do not write into its buffers. */
			pvm_virtq_elem_free(elem);
			vm->job = NULL;
			pthread_cond_broadcast(&vm->cond);
			continue;
		}
		{
			uint8_t buf[PVM_VMEM_RESP_SIZE];

			/* Written under the lock: a device reset (which takes it) cannot slip in
			 * between the staleness check and the write. */
			pvm_vmem_resp_encode(resp, 0, buf);
			pvm_virtq_elem_write(elem, 0, buf, sizeof(buf));
		}
		pthread_mutex_unlock(&vm->lock);
		(void)pvm_virtq_complete(vq, elem, PVM_VMEM_RESP_SIZE);   /* -ESTALE after a reset */
		pthread_mutex_lock(&vm->lock);
		vm->job = NULL;
		pthread_cond_broadcast(&vm->cond);
		pthread_mutex_unlock(&vm->lock);
		/* Requests that arrived meanwhile. */
		pvm_vmem_process_queue(vm, vq);
		pthread_mutex_lock(&vm->lock);
	}
	pthread_mutex_unlock(&vm->lock);
	return NULL;
}

int pvm_vmem_async_queue(struct pvm_vmem *vm, struct pvm_virtq *vq, struct pvm_virtq_elem *elem,
			 const struct pvm_vmem_decision *d)
{
	if (vm->worker_stop || vm->job)
		return -EBUSY;
	if (!vm->worker_started) {
		int rc = pthread_create(&vm->worker, NULL, worker, vm);

		if (rc)
			return -rc;
		vm->worker_started = true;
	}
	vm->job = elem;
	vm->job_d = *d;
	vm->job_vq = vq;
	vm->job_epoch = vm->epoch;
	PVM_TRACE(vmem_async_queued, "id=%s action=%d", vm->id, (int)d->action);
	pthread_cond_broadcast(&vm->cond);
	return 0;
}

void pvm_vmem_wait_idle(struct pvm_vmem *vm)
{
	pthread_mutex_lock(&vm->lock);
	while (vm->job)
		pthread_cond_wait(&vm->cond, &vm->lock);
	pthread_mutex_unlock(&vm->lock);
}

void pvm_vmem_async_stop(struct pvm_vmem *vm)
{
	if (!vm->worker_started)
		return;
	pthread_mutex_lock(&vm->lock);
	vm->worker_stop = true;
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	pthread_join(vm->worker, NULL);
	vm->worker_started = false;
}

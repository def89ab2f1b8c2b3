/* SPDX-License-Identifier: MIT */
/*
 * virtio-balloon device (virtio 1.4 §5.5). The contract is in include/pvmem/balloon.h; the page
 * tracking in balloon-track.c, the statistics format in balloon-stats.c.
 *
 * Order of this file: state, helpers, queue handlers (inflate/deflate, stats, reporting), virtio
 * callbacks, public API. Every request: parse (PFNs / ranges read through the checked element
 * accessors) -> decide (tracking, a pure function of state and PFN) -> act (discard) -> respond
 * (always acknowledge: a bad entry is skipped, never fatal).
 *
 * Lock order: the core's transport lock (held around reset/set_config) -> b->lock -> queue locks
 * (pop/push). pvm_virtio_device_config_changed() and owner events are called without b->lock.
 */
#include <endian.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "core/util.h"
#include "virtio/balloon-priv.h"
#include <pvmem/discard.h>

/* QEMU uses 128 for ivq/dvq/svq and 32 for reporting; Linux needs >= 32 for reporting. */
#define BALLOON_QUEUE_SIZE 128
/* PFNs read from an element at a time. */
#define PFN_CHUNK 256

struct pvm_balloon {
	pthread_mutex_t lock;               /* serialises everything below */
	struct pvm_virtio_device *dev;      /* the virtio device (owned) */
	struct pvm_balloon_track track;     /* RAM ranges and page state */
	struct pvm_discard_policy *policy;  /* asked per request; NULL = never disabled */
	uint64_t ram_size;                  /* bytes targets refer to */
	uint32_t config_size;               /* 8, or 16 with PAGE_POISON offered */
	uint32_t num_pages;                 /* config num_pages: requested balloon size */
	uint32_t actual;                    /* config actual: the driver's balloon size */
	uint32_t poison_val;                /* config poison_val (PAGE_POISON negotiated) */
	uint32_t inhibit_count;             /* pvm_balloon_inhibit() votes */
	struct pvm_virtq_elem *stats_elem;  /* the stats buffer the device holds, or NULL */
	struct pvm_balloon_stats stats;     /* the guest's last statistics */
	uint64_t stats_next_ms;             /* pvm_balloon_tick(): next request due; 0 = unarmed */
	uint32_t retry;                     /* queues whose pop failed with -ENOMEM (bit = index) */
	pvm_balloon_event_fn event;         /* owner's event callback, may be NULL */
	void *event_opaque;                 /* passed to event */
};

enum queue_role { ROLE_INFLATE, ROLE_DEFLATE, ROLE_STATS, ROLE_REPORT, ROLE_NONE };

/* ---- helpers ---------------------------------------------------------------------------------- */

static bool policy_disabled(const struct pvm_balloon *b)
{
	return b->policy && pvm_discard_policy_is_disabled(b->policy);
}

static bool inhibited(const struct pvm_balloon *b)
{
	return b->inhibit_count > 0 || policy_disabled(b);
}

static uint64_t features(const struct pvm_balloon *b)
{
	return pvm_virtio_device_features(b->dev);
}

static bool has(uint64_t f, unsigned bit)
{
	return f & PVM_VIRTIO_BIT(bit);
}

static uint64_t guest_bytes(const struct pvm_balloon *b, uint32_t pages)
{
	uint64_t bytes = (uint64_t)pages << PVM_BALLOON_PFN_SHIFT;

	return bytes >= b->ram_size ? 0 : b->ram_size - bytes;
}

static void emit(struct pvm_balloon *b, const struct pvm_balloon_event *ev)
{
	if (b->event)
		b->event(b->event_opaque, ev);
}

/* Free what inhibition held back, when discarding is allowed now. Caller holds b->lock. */
static uint64_t flush_locked(struct pvm_balloon *b)
{
	uint64_t freed;

	if (inhibited(b))
		return 0;
	freed = pvm_balloon_track_flush(&b->track);
	PVM_TRACE(balloon_flush, "freed=0x%llx", (unsigned long long)freed);
	return freed;
}

/*
 * Which job queue @idx does under the negotiated features. The spec numbers the reporting queue
 * 4; Linux drivers before the 2024 fix (and QEMU) number it after the queues that exist, i.e.
 * 2 + STATS_VQ + FREE_PAGE_HINT. Both are serviced. A queue with no job is drained and
 * acknowledged so that a confused driver never waits forever.
 */
static enum queue_role queue_role(uint64_t f, unsigned idx)
{
	if (idx == PVM_BALLOON_VQ_INFLATE)
		return ROLE_INFLATE;
	if (idx == PVM_BALLOON_VQ_DEFLATE)
		return ROLE_DEFLATE;
	if (has(f, PVM_BALLOON_F_PAGE_REPORTING) &&
	    (idx == PVM_BALLOON_VQ_REPORTING ||
	     idx == 2u + has(f, PVM_BALLOON_F_STATS_VQ) + has(f, PVM_BALLOON_F_FREE_PAGE_HINT)))
		return ROLE_REPORT;
	if (idx == PVM_BALLOON_VQ_STATS && has(f, PVM_BALLOON_F_STATS_VQ))
		return ROLE_STATS;
	return ROLE_NONE;
}

/* ---- queue handlers (b->lock held) ------------------------------------------------------------ */

/* After a loop of pops: -ENOMEM consumed nothing, and the driver will not notify again for
 * buffers it already published, so remember the queue for pvm_balloon_tick() to retry. -EIO
 * means the ring is malformed: the core has already put the device into NEEDS_RESET. */
static void pop_failed(struct pvm_balloon *b, struct pvm_virtq *vq, int rc)
{
	if (rc == -ENOMEM)
		b->retry |= 1u << pvm_virtq_index(vq);
	if (rc < 0 && rc != -EIO)
		pvm_debug("virtio-balloon: queue %u: %s", pvm_virtq_index(vq), strerror(-rc));
}

static void handle_pfns(struct pvm_balloon *b, struct pvm_virtq *vq, bool inflate)
{
	struct pvm_virtq_elem *elem;
	int rc;

	while ((rc = pvm_virtq_pop(vq, &elem)) == 1) {
		uint64_t n = PVM_MIN(elem->out_len / 4, (uint64_t)PVM_BALLOON_MAX_PFNS_PER_ELEM);
		uint64_t count[PVM_BALLOON_REPEAT + 1] = { 0 };
		bool inh = inhibited(b);
		uint32_t pfns[PFN_CHUNK];

		/* Re-check on every request: a policy change nobody reported is caught here. */
		if (!inh && b->track.flush_needed)
			flush_locked(b);
		for (uint64_t i = 0; i < n;) {
			size_t want = (size_t)PVM_MIN(n - i, (uint64_t)PFN_CHUNK);
			size_t got = pvm_virtq_elem_read(elem, i * 4, pfns, want * 4) / 4;

			for (size_t j = 0; j < got; j++)
				count[pvm_balloon_track_pfn(&b->track, le32toh(pfns[j]), inflate, inh)]++;
			if (got < want)
				break;
			i += got;
		}
		PVM_TRACE(balloon_pfns, "%s head=%u pfns=%llu bad=%llu tracked=%llu freed=%llu "
			  "repeat=%llu inhibited=%d", inflate ? "inflate" : "deflate", elem->head,
			  (unsigned long long)n, (unsigned long long)count[PVM_BALLOON_BAD],
			  (unsigned long long)count[PVM_BALLOON_TRACKED],
			  (unsigned long long)count[PVM_BALLOON_FREED],
			  (unsigned long long)count[PVM_BALLOON_REPEAT], inh);
		(void)pvm_virtq_push(vq, elem, 0);
	}
	pvm_virtq_notify(vq);
	pop_failed(b, vq, rc);
}

static int64_t wall_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec;
}

static void handle_stats(struct pvm_balloon *b, struct pvm_virtq *vq)
{
	struct pvm_virtq_elem *elem;
	uint8_t buf[PVM_BALLOON_STATS_MAX_BYTES];
	int rc;

	while ((rc = pvm_virtq_pop(vq, &elem)) == 1) {
		size_t got = pvm_virtq_elem_read(elem, 0, buf, sizeof(buf));
		unsigned known;

		if (b->stats_elem) {
			/* The driver broke "at most one buffer": give the older one back. */
			(void)pvm_virtq_push(vq, b->stats_elem, 0);
			pvm_virtq_notify(vq);
		}
		b->stats_elem = elem;
		known = pvm_balloon_stats_parse(buf, got, &b->stats);
		b->stats.updates++;
		b->stats.last_update = wall_seconds();
		PVM_TRACE(balloon_stats, "bytes=%zu known=%u valid=0x%x", got, known, b->stats.valid);
	}
	pop_failed(b, vq, rc);
}

static void handle_report(struct pvm_balloon *b, struct pvm_virtq *vq)
{
	struct pvm_virtq_elem *elem;
	int rc;

	while ((rc = pvm_virtq_pop(vq, &elem)) == 1) {
		/* "we must not discard the page if it is accessible by another device or process,
		 * or if the guest is expecting it to retain a non-zero value" */
		bool skip = inhibited(b) ||
			    (has(features(b), PVM_BALLOON_F_PAGE_POISON) && b->poison_val != 0);
		uint64_t done = 0;

		for (uint32_t i = 0; i < elem->in_num; i++) {
			if (skip)
				b->track.reports_skipped++;
			else
				done += pvm_balloon_track_report(&b->track, elem->in_addr[i],
								 elem->in[i].iov_len);
		}
		PVM_TRACE(balloon_report, "head=%u ranges=%u discarded=0x%llx skipped=%d", elem->head,
			  elem->in_num, (unsigned long long)done, skip);
		(void)pvm_virtq_push(vq, elem, 0);
	}
	pvm_virtq_notify(vq);
	pop_failed(b, vq, rc);
}

static void handle_none(struct pvm_balloon *b, struct pvm_virtq *vq)
{
	struct pvm_virtq_elem *elem;
	int rc;

	while ((rc = pvm_virtq_pop(vq, &elem)) == 1) {
		PVM_TRACE(balloon_unexpected, "queue=%u head=%u", pvm_virtq_index(vq), elem->head);
		(void)pvm_virtq_push(vq, elem, 0);
	}
	pvm_virtq_notify(vq);
	pop_failed(b, vq, rc);
}

/* ---- virtio callbacks ------------------------------------------------------------------------- */

static void balloon_queue_notify(void *opaque, struct pvm_virtq *vq)
{
	struct pvm_balloon *b = opaque;

	pthread_mutex_lock(&b->lock);
	b->retry &= ~(1u << pvm_virtq_index(vq));
	switch (queue_role(features(b), pvm_virtq_index(vq))) {
	case ROLE_INFLATE:
		handle_pfns(b, vq, true);
		break;
	case ROLE_DEFLATE:
		handle_pfns(b, vq, false);
		break;
	case ROLE_STATS:
		handle_stats(b, vq);
		break;
	case ROLE_REPORT:
		handle_report(b, vq);
		break;
	case ROLE_NONE:
		handle_none(b, vq);
		break;
	}
	pthread_mutex_unlock(&b->lock);
}

static void put_le32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

static uint32_t get_le32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return le32toh(v);
}

static void balloon_get_config(void *opaque, uint8_t *buf)
{
	struct pvm_balloon *b = opaque;

	pthread_mutex_lock(&b->lock);
	memset(buf, 0, b->config_size);
	put_le32(buf + PVM_BALLOON_CFG_NUM_PAGES, b->num_pages);
	put_le32(buf + PVM_BALLOON_CFG_ACTUAL, b->actual);
	if (b->config_size >= 16)
		put_le32(buf + PVM_BALLOON_CFG_POISON_VAL, b->poison_val);
	pthread_mutex_unlock(&b->lock);
}

static void balloon_set_config(void *opaque, const uint8_t *buf)
{
	struct pvm_balloon *b = opaque;
	struct pvm_balloon_event ev = { .kind = PVM_BALLOON_EVENT_ACTUAL };
	uint32_t actual = get_le32(buf + PVM_BALLOON_CFG_ACTUAL);
	bool changed;

	pthread_mutex_lock(&b->lock);
	changed = actual != b->actual;
	b->actual = actual;
	if (b->config_size >= 16 && has(features(b), PVM_BALLOON_F_PAGE_POISON))
		b->poison_val = get_le32(buf + PVM_BALLOON_CFG_POISON_VAL);
	ev.actual_pages = actual;
	ev.guest_bytes = guest_bytes(b, actual);
	PVM_TRACE(balloon_set_config, "actual=0x%x poison=0x%x", actual, b->poison_val);
	pthread_mutex_unlock(&b->lock);
	if (changed)
		emit(b, &ev);
}

static void balloon_reset(void *opaque)
{
	struct pvm_balloon *b = opaque;
	struct pvm_balloon_event ev = { .kind = PVM_BALLOON_EVENT_ACTUAL };
	bool changed;

	pthread_mutex_lock(&b->lock);
	/* The driver starts again with an empty balloon: every page is the guest's again. Host
	 * memory already given back simply refaults as zeros. The target stays. */
	if (b->stats_elem)
		pvm_virtq_elem_free(b->stats_elem);
	b->stats_elem = NULL;
	b->stats_next_ms = 0;
	b->retry = 0;
	pvm_balloon_track_reset(&b->track);
	changed = b->actual != 0;
	b->actual = 0;
	b->poison_val = 0;
	ev.guest_bytes = b->ram_size;
	PVM_TRACE(balloon_reset, "num_pages=0x%x", b->num_pages);
	pthread_mutex_unlock(&b->lock);
	if (changed)
		emit(b, &ev);
}

/* ---- public API --------------------------------------------------------------------------------- */

int pvm_balloon_new(const struct pvm_balloon_config *cfg, struct pvm_balloon **out,
		    struct pvm_error *err)
{
	struct pvm_virtio_device_ops ops = {
		.name = "virtio-balloon",
		.device_id = PVM_VIRTIO_ID_BALLOON,
		.num_queues = PVM_BALLOON_NUM_QUEUES,
		.queue_max_size = BALLOON_QUEUE_SIZE,
		.get_config = balloon_get_config,
		.set_config = balloon_set_config,
		.queue_notify = balloon_queue_notify,
		.reset = balloon_reset,
	};
	struct pvm_balloon *b;
	int rc;

	*out = NULL;
	if (!cfg || !cfg->memslots)
		return pvm_error_set(err, -EINVAL, "a balloon needs guest memory (memslots)");
	b = pvm_calloc(1, sizeof(*b));
	if (!b)
		return pvm_error_set(err, -ENOMEM, "cannot allocate the balloon");
	rc = pvm_balloon_track_init(&b->track, cfg->ram, cfg->nr_ram, cfg->memslots, err);
	if (rc < 0) {
		pvm_free(b);
		return rc;
	}
	b->policy = cfg->policy;
	b->ram_size = cfg->ram_size ? cfg->ram_size : pvm_balloon_track_ram_size(&b->track);
	b->config_size = cfg->page_poison ? 16 : 8;
	b->event = cfg->event;
	b->event_opaque = cfg->event_opaque;
	pvm_balloon_stats_reset(&b->stats);
	b->stats.interval = cfg->stats_interval;
	ops.config_size = b->config_size;
	ops.features = PVM_VIRTIO_CORE_FEATURES | PVM_VIRTIO_BIT(PVM_BALLOON_F_STATS_VQ) |
		       (cfg->deflate_on_oom ? PVM_VIRTIO_BIT(PVM_BALLOON_F_DEFLATE_ON_OOM) : 0) |
		       (cfg->page_poison ? PVM_VIRTIO_BIT(PVM_BALLOON_F_PAGE_POISON) : 0) |
		       (cfg->free_page_reporting ? PVM_VIRTIO_BIT(PVM_BALLOON_F_PAGE_REPORTING) : 0);
	pthread_mutex_init(&b->lock, NULL);
	rc = pvm_virtio_device_new(&ops, b, cfg->memslots, &b->dev, err);
	if (rc < 0) {
		pvm_balloon_free(b);
		return rc;
	}
	PVM_TRACE(balloon_new, "ram=0x%llx ranges=%zu features=0x%llx",
		  (unsigned long long)b->ram_size, b->track.nr_ranges, (unsigned long long)ops.features);
	*out = b;
	return 0;
}

void pvm_balloon_free(struct pvm_balloon *b)
{
	if (!b)
		return;
	if (b->stats_elem)
		pvm_virtq_elem_free(b->stats_elem);
	pvm_virtio_device_free(b->dev);
	pvm_balloon_track_fini(&b->track);
	pthread_mutex_destroy(&b->lock);
	pvm_free(b);
}

struct pvm_virtio_device *pvm_balloon_device(struct pvm_balloon *b)
{
	return b->dev;
}

int pvm_balloon_set_num_pages(struct pvm_balloon *b, uint32_t pages)
{
	bool changed;

	pthread_mutex_lock(&b->lock);
	changed = b->num_pages != pages;
	b->num_pages = pages;
	pthread_mutex_unlock(&b->lock);
	PVM_TRACE(balloon_target, "num_pages=0x%x changed=%d", pages, changed);
	if (changed)
		pvm_virtio_device_config_changed(b->dev);
	return 0;
}

int pvm_balloon_set_target(struct pvm_balloon *b, uint64_t target, struct pvm_error *err)
{
	uint64_t pages;

	if (!target)
		return pvm_error_set(err, -EINVAL, "the balloon target must be a size above zero");
	target = PVM_MIN(target, b->ram_size);
	pages = (b->ram_size - target) >> PVM_BALLOON_PFN_SHIFT;
	return pvm_balloon_set_num_pages(b, (uint32_t)PVM_MIN(pages, (uint64_t)UINT32_MAX));
}

void pvm_balloon_query(struct pvm_balloon *b, struct pvm_balloon_info *out)
{
	pthread_mutex_lock(&b->lock);
	*out = (struct pvm_balloon_info){
		.ram_size = b->ram_size,
		.num_pages = b->num_pages,
		.actual_pages = b->actual,
		.guest_bytes = guest_bytes(b, b->actual),
		.inflated_bytes = b->track.inflated_pages * PVM_BALLOON_PAGE,
		.freed_bytes = b->track.freed_pages * PVM_BALLOON_PAGE,
		.pending_bytes = (b->track.inflated_pages - b->track.freed_pages) * PVM_BALLOON_PAGE,
		.reported_bytes = b->track.reported_bytes,
		.bad_pfns = b->track.bad_pfns,
		.discard_errors = b->track.discard_errors,
		.inhibited = inhibited(b),
		.policy_disabled = policy_disabled(b),
		.inhibit_count = b->inhibit_count,
		.features = features(b),
		.poison_val = b->poison_val,
	};
	pthread_mutex_unlock(&b->lock);
}

uint64_t pvm_balloon_discard_changed(struct pvm_balloon *b)
{
	uint64_t freed;

	/* Taking the lock also waits for a request in progress that may have seen the old policy:
	 * call this after taking a DISABLE vote and before pinning, and after releasing one. */
	pthread_mutex_lock(&b->lock);
	freed = flush_locked(b);
	pthread_mutex_unlock(&b->lock);
	return freed;
}

int pvm_balloon_inhibit(struct pvm_balloon *b, bool on)
{
	int rc = 0;

	pthread_mutex_lock(&b->lock);
	if (on && b->inhibit_count == UINT32_MAX)
		rc = -EOVERFLOW;
	else if (on)
		b->inhibit_count++;
	else if (b->inhibit_count == 0)
		rc = -EINVAL;
	else if (--b->inhibit_count == 0)
		flush_locked(b);
	pthread_mutex_unlock(&b->lock);
	return rc;
}

void pvm_balloon_get_stats(struct pvm_balloon *b, struct pvm_balloon_stats *out)
{
	pthread_mutex_lock(&b->lock);
	*out = b->stats;
	pthread_mutex_unlock(&b->lock);
}

void pvm_balloon_set_stats_interval(struct pvm_balloon *b, uint32_t seconds)
{
	pthread_mutex_lock(&b->lock);
	b->stats.interval = seconds;
	b->stats_next_ms = 0;
	pthread_mutex_unlock(&b->lock);
}

/* Give the held stats buffer back so that the driver refills it. Caller holds b->lock. */
static int stats_request_locked(struct pvm_balloon *b)
{
	struct pvm_virtq *vq = pvm_virtio_device_queue(b->dev, PVM_BALLOON_VQ_STATS);

	if (!b->stats_elem || !vq)
		return -EAGAIN;
	PVM_TRACE(balloon_stats_request, "head=%u", b->stats_elem->head);
	(void)pvm_virtq_complete(vq, pvm_steal_ptr(&b->stats_elem), 0);
	return 0;
}

int pvm_balloon_stats_request(struct pvm_balloon *b)
{
	int rc;

	pthread_mutex_lock(&b->lock);
	rc = stats_request_locked(b);
	pthread_mutex_unlock(&b->lock);
	return rc;
}

uint64_t pvm_balloon_tick(struct pvm_balloon *b, uint64_t now_ms)
{
	uint64_t period, left = UINT64_MAX;
	uint32_t retry;

	pthread_mutex_lock(&b->lock);
	retry = b->retry;
	pthread_mutex_unlock(&b->lock);
	for (unsigned q = 0; q < PVM_BALLOON_NUM_QUEUES; q++)
		if (retry & (1u << q))
			balloon_queue_notify(b, pvm_virtio_device_queue(b->dev, q));

	pthread_mutex_lock(&b->lock);
	period = (uint64_t)b->stats.interval * 1000;
	if (period) {
		if (!b->stats_next_ms) {
			b->stats_next_ms = now_ms + period;
		} else if (now_ms >= b->stats_next_ms) {
			(void)stats_request_locked(b);
			b->stats_next_ms = now_ms + period;
		}
		left = b->stats_next_ms - now_ms;
	}
	if (b->retry)
		left = 0;  /* still failing: ask to be called again soon */
	pthread_mutex_unlock(&b->lock);
	return left;
}

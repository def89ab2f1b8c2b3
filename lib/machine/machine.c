/* SPDX-License-Identifier: MIT */
/*
 * The machine: build from the domain model, tear down in reverse order, virtio-mem and balloon
 * control, system reset. Host devices, DMA and memlock are in machine-hostdev.c; the loop in
 * loop.c; queries in machine-query.c.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "machine/machine-priv.h"

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

uint64_t pvm_machine_now_ms(const struct pvm_machine *m)
{
	return (mono_ns() - m->t0_ns) / 1000000ULL;
}

void pvm_machine_emit(struct pvm_machine *m, const struct pvm_machine_event *ev)
{
	if (m->event_fn)
		m->event_fn(m->event_opaque, ev);
}

void pvm_machine_set_event_handler(struct pvm_machine *m, pvm_machine_event_fn fn, void *opaque)
{
	m->event_fn = fn;
	m->event_opaque = opaque;
}

static void on_vmem_size(void *opaque, struct pvm_vmem *vmem, uint64_t plugged)
{
	struct pvm_machine_vmem *v = opaque;
	struct pvm_machine_event ev = { .kind = PVM_MACHINE_EVENT_SIZE_CHANGE,
					.id = pvm_vmem_id(vmem), .size = plugged };

	pvm_machine_emit(v->m, &ev);
}

/* The enforcer's monitor thread: queue the trap and wake the loop, never wait for it. */
static void on_vmem_trap(void *opaque, const struct pvm_enforce_trap *trap)
{
	struct pvm_machine_vmem *v = opaque;
	struct pvm_machine *m = v->m;

	pthread_mutex_lock(&m->trap_lock);
	m->traps_total++;
	if (m->ntraps < PVM_MACHINE_MAX_TRAPS) {
		m->traps[m->ntraps].id = pvm_vmem_id(v->vmem);
		m->traps[m->ntraps].gpa = v->gpa + trap->offset;
		m->ntraps++;
	} else {
		m->traps_dropped++;
	}
	pthread_mutex_unlock(&m->trap_lock);
	pvm_machine_irq(m, true);
}

void pvm_machine_drain_traps(struct pvm_machine *m)
{
	struct pvm_machine_trap traps[PVM_MACHINE_MAX_TRAPS];
	unsigned n;

	pthread_mutex_lock(&m->trap_lock);
	n = m->ntraps;
	memcpy(traps, m->traps, n * sizeof(traps[0]));
	m->ntraps = 0;
	pthread_mutex_unlock(&m->trap_lock);
	for (unsigned i = 0; i < n; i++) {
		struct pvm_machine_event ev = { .kind = PVM_MACHINE_EVENT_UNPLUGGED_ACCESS,
						.id = traps[i].id, .gpa = traps[i].gpa };

		pvm_machine_emit(m, &ev);
	}
}

static void on_balloon(void *opaque, const struct pvm_balloon_event *bev)
{
	struct pvm_machine_event ev = { .kind = PVM_MACHINE_EVENT_BALLOON_CHANGE,
					.size = bev->guest_bytes };

	pvm_machine_emit(opaque, &ev);
}

static int add_transport(struct pvm_machine *m, const char *id, struct pvm_virtio_device *dev, int vmem,
			 struct pvm_error *err)
{
	struct pvm_machine_vdev *v = &m->vdevs[m->nvdevs];
	int rc;

	if (m->nvdevs == PVM_MACHINE_MAX_DEVICES)
		return pvm_error_set(err, -EINVAL, "more than %u virtio devices", PVM_MACHINE_MAX_DEVICES);
	memset(v, 0, sizeof(*v));
	snprintf(v->id, sizeof(v->id), "%s", id);
	v->device_id = pvm_virtio_device_id(dev);
	v->dev = dev;
	v->vmem = vmem;
	v->mmio_gpa = PVM_MACHINE_MMIO_BASE + m->nvdevs * PVM_VIRTIO_MMIO_SIZE;
	rc = pvm_virtio_mmio_new(dev, &v->mmio, err);
	if (rc)
		return rc;
	pvm_virtio_mmio_set_irq(v->mmio, pvm_machine_irq, m);
	m->nvdevs++;
	return 0;
}

static int build_ram(struct pvm_machine *m, struct pvm_error *err)
{
	struct pvm_mem_region_config rc_cfg = { .name = "ram0", .backend = PVM_MEM_BACKEND_ANON,
						.noreserve = true };
	int rc;

	m->ram_size = pvm_domain_memory_initial(m->dom);
	if (m->ram_size < 2 * PVM_MACHINE_FW_SIZE || !PVM_IS_ALIGNED(m->ram_size, 2 * PVM_MiB))
		return pvm_error_set(err, -EINVAL, "boot memory must be a multiple of 2 MiB and at least %llu MiB",
				     2 * PVM_MACHINE_FW_SIZE / PVM_MiB);
	rc_cfg.size = m->ram_size;
	rc = pvm_mem_region_new(&rc_cfg, &m->ram, err);
	if (rc)
		return rc;
	rc = pvm_memslot_table_new(0, &m->slots);
	if (rc)
		return pvm_error_set(err, rc, "memslot table");
	return pvm_memslot_add(m->slots, 0, 0, 0, m->ram_size, pvm_mem_region_host(m->ram), err);
}

static int build_vmem(struct pvm_machine *m, const struct pvm_domain_memdev *md, uint64_t *next_gpa,
		      struct pvm_error *err)
{
	struct pvm_machine_vmem *v = &m->vmems[m->nvmems];
	struct pvm_mem_region_config rcfg = { .backend = PVM_MEM_BACKEND_ANON, .noreserve = true };
	struct pvm_vmem_config cfg = { 0 };
	int rc;

	if (m->nvmems == PVM_MACHINE_MAX_DEVICES)
		return pvm_error_set(err, -EINVAL, "more than %u virtio-mem devices", PVM_MACHINE_MAX_DEVICES);
	if (!md->size || !PVM_IS_ALIGNED(md->size, 2 * PVM_MiB))
		return pvm_error_set(err, -EINVAL, "virtio-mem %s: size must be a non-zero multiple of 2 MiB",
				     md->id);
	memset(v, 0, sizeof(*v));
	v->gpa = md->has_address_base ? md->address_base : *next_gpa;
	v->size = md->size;
	v->node = md->node < 0 ? 0 : md->node;
	rcfg.name = md->id;
	rcfg.size = md->size;
	rc = pvm_mem_region_new(&rcfg, &v->region, err);
	if (rc)
		return rc;
	cfg.id = md->id;
	cfg.addr = v->gpa;
	cfg.region_size = md->size;
	cfg.block_size = md->block_size;
	cfg.node = (uint16_t)v->node;
	cfg.acpi_pxm = pvm_domain_numa_nodes(m->dom) > 0;
	cfg.requested_size = md->requested_size;
	cfg.memory = v->region;
	cfg.prealloc = m->opts.prealloc;
	static const enum pvm_enforce_mode modes[] = {
		[PVM_MACHINE_ENFORCE_AUTO] = PVM_ENFORCE_AUTO,
		[PVM_MACHINE_ENFORCE_UFFD] = PVM_ENFORCE_UFFD,
		[PVM_MACHINE_ENFORCE_MPROTECT] = PVM_ENFORCE_MPROTECT,
		[PVM_MACHINE_ENFORCE_NONE] = PVM_ENFORCE_NONE,
	};
	cfg.enforce = modes[m->opts.enforce]; /* checked in pvm_machine_new() */
	cfg.enforce_policy = m->opts.enforce_policy;
	cfg.memslots = m->slots;
	cfg.discard_policy = m->policy;
	cfg.on_size_change = on_vmem_size;
	cfg.on_trap = on_vmem_trap;
	/* The machine is single-threaded (its loop runs devices, guest and control socket), so
	 * requests complete synchronously on the loop thread: the device's worker thread would
	 * change memslots and DMA mappings under the loop's feet. The guest still never sees BUSY
	 * for long work; it waits for the answer, as with QEMU's main loop. */
	cfg.async_threshold = UINT64_MAX;
	v->m = m;
	cfg.opaque = v;
	rc = pvm_vmem_new(&cfg, &v->vmem, err);
	if (rc) {
		pvm_mem_region_free(v->region);
		v->region = NULL;
		pvm_error_prefix(err, "virtio-mem %s", md->id);
		return rc;
	}
	m->nvmems++;
	*next_gpa = PVM_ALIGN_UP(v->gpa + v->size, PVM_GiB);
	return add_transport(m, md->id, pvm_vmem_virtio_device(v->vmem), (int)m->nvmems - 1, err);
}

static int build_balloon(struct pvm_machine *m, const struct pvm_domain_balloon *db, struct pvm_error *err)
{
	struct pvm_balloon_ram ram = { .gpa = 0, .size = m->ram_size - PVM_MACHINE_FW_SIZE,
				       .region = m->ram, .offset = 0 };
	struct pvm_balloon_config cfg = { .ram = &ram, .nr_ram = 1, .memslots = m->slots,
					  .policy = m->policy, .ram_size = m->ram_size,
					  .deflate_on_oom = db->autodeflate,
					  .free_page_reporting = db->free_page_reporting,
					  .stats_interval = db->stats_period,
					  .event = on_balloon, .event_opaque = m };
	int rc = pvm_balloon_new(&cfg, &m->balloon, err);

	if (rc)
		return rc;
	return add_transport(m, db->id, pvm_balloon_device(m->balloon), -1, err);
}

int pvm_machine_new(const struct pvm_domain *dom, const struct pvm_machine_opts *opts,
		    struct pvm_machine **out, struct pvm_error *err)
{
	struct pvm_machine *m;
	const struct pvm_domain_balloon *db;
	uint64_t next_gpa;
	int rc;

	if (opts && ((unsigned)opts->enforce > PVM_MACHINE_ENFORCE_NONE ||
		     (unsigned)opts->enforce_policy > PVM_ENFORCE_KILL))
		return pvm_error_set(err, -EINVAL, "unknown enforcement mode %d or policy %d",
				     (int)opts->enforce, (int)opts->enforce_policy);
	m = pvm_calloc(1, sizeof(*m));
	if (!m)
		return pvm_error_set(err, -ENOMEM, "out of memory");
	m->epfd = -1;
	pthread_mutex_init(&m->trap_lock, NULL);
	m->irqfd = -1;
	m->t0_ns = mono_ns();
	m->next_domain = 1;
	if (opts)
		m->opts = *opts;
	rc = pvm_domain_clone(dom, &m->dom, err);
	if (rc)
		goto fail;
	/* The loop first: transports connect their interrupt line to it. */
	rc = pvm_machine_loop_init(m, err);
	if (rc)
		goto fail;
	rc = pvm_discard_policy_new(&m->policy);
	if (rc) {
		pvm_error_set(err, rc, "discard policy");
		goto fail;
	}
	rc = build_ram(m, err);
	if (rc)
		goto fail;
	next_gpa = PVM_MAX(4 * PVM_GiB, PVM_ALIGN_UP(m->ram_size, PVM_GiB));
	for (size_t i = 0; i < pvm_domain_virtio_mem_count(m->dom); i++) {
		rc = build_vmem(m, pvm_domain_virtio_mem(m->dom, i), &next_gpa, err);
		if (rc)
			goto fail;
	}
	db = pvm_domain_balloon(m->dom);
	if (db && db->model && !strncmp(db->model, "virtio", 6)) {
		rc = build_balloon(m, db, err);
		if (rc)
			goto fail;
	}
	rc = pvm_machine_dma_init(m, err);
	if (rc)
		goto fail;
	/* Apply the start-up need (hostdevs in the XML); EPERM is recorded, not fatal. */
	rc = pvm_machine_memlock_update(m, 1, err);
	if (rc && rc != -EPERM)
		goto fail;
	if (rc)
		pvm_error_clear(err);
	*out = m;
	return 0;
fail:
	pvm_machine_free(m);
	return rc;
}

void pvm_machine_free(struct pvm_machine *m)
{
	if (!m)
		return;
	pvm_machine_dma_fini(m);
	for (size_t i = m->nvdevs; i-- > 0;)
		pvm_virtio_mmio_free(m->vdevs[i].mmio);
	pvm_balloon_free(m->balloon);
	for (size_t i = m->nvmems; i-- > 0;) {
		pvm_vmem_free(m->vmems[i].vmem);
		pvm_mem_region_free(m->vmems[i].region);
	}
	pvm_memslot_table_free(m->slots);
	pvm_mem_region_free(m->ram);
	pvm_discard_policy_free(m->policy);
	/* Last: device workers may raise interrupts until the devices are gone. */
	pvm_machine_loop_fini(m);
	if (m->memlock) {
		struct pvm_error e = { 0 };

		if (pvm_memlock_ctl_restore(m->memlock, &e))
			pvm_warn("memlock: could not restore the original limit: %s", pvm_error_message(&e));
		pvm_memlock_ctl_free(m->memlock);
	}
	pvm_domain_free(m->dom);
	pthread_mutex_destroy(&m->trap_lock);
	pvm_free(m);
}

const struct pvm_domain *pvm_machine_domain(const struct pvm_machine *m)
{
	return m->dom;
}

void pvm_machine_set_guest(struct pvm_machine *m, const struct pvm_machine_guest_ops *ops, void *opaque)
{
	m->guest_ops = ops;
	m->guest = opaque;
	m->guest_busy = ops != NULL;
	m->guest_waiting = false;
}

struct pvm_memslot_table *pvm_machine_memslots(struct pvm_machine *m)
{
	return m->slots;
}

uint64_t pvm_machine_ram_size(const struct pvm_machine *m)
{
	return m->ram_size;
}

uint64_t pvm_machine_fw_gpa(const struct pvm_machine *m)
{
	return m->ram_size - PVM_MACHINE_FW_SIZE;
}

size_t pvm_machine_virtio_count(const struct pvm_machine *m)
{
	return m->nvdevs;
}

int pvm_machine_virtio(const struct pvm_machine *m, size_t i, struct pvm_machine_virtio *out)
{
	const struct pvm_machine_vdev *v;

	if (i >= m->nvdevs)
		return -ENOENT;
	v = &m->vdevs[i];
	memset(out, 0, sizeof(*out));
	out->id = v->id;
	out->device_id = v->device_id;
	out->mmio = v->mmio;
	out->mmio_gpa = v->mmio_gpa;
	if (v->vmem >= 0) {
		out->region_gpa = m->vmems[v->vmem].gpa;
		out->region_size = m->vmems[v->vmem].size;
		out->node = m->vmems[v->vmem].node;
	}
	return 0;
}

int pvm_machine_memdev_find(const struct pvm_machine *m, const char *id)
{
	for (size_t i = 0; i < m->nvmems; i++)
		if (id && !strcmp(pvm_vmem_id(m->vmems[i].vmem), id))
			return (int)i;
	return -ENOENT;
}

int pvm_machine_set_requested_size(struct pvm_machine *m, const char *id, uint64_t size,
				   struct pvm_error *err)
{
	int i = pvm_machine_memdev_find(m, id);

	if (i < 0)
		return pvm_error_set(err, -ENOENT, "no virtio-mem device '%s'", id ? id : "");
	PVM_TRACE(machine_set_requested_size, "id=%s size=0x%llx", id, (unsigned long long)size);
	return pvm_vmem_set_requested_size(m->vmems[i].vmem, size, err);
}

int pvm_machine_set_balloon_target(struct pvm_machine *m, uint64_t guest_bytes, struct pvm_error *err)
{
	if (!m->balloon)
		return pvm_error_set(err, -ENODEV, "the machine has no balloon");
	PVM_TRACE(machine_set_balloon, "target=0x%llx", (unsigned long long)guest_bytes);
	return pvm_balloon_set_target(m->balloon, guest_bytes, err);
}

int pvm_machine_system_reset(struct pvm_machine *m, struct pvm_error *err)
{
	struct pvm_machine_event ev = { .kind = PVM_MACHINE_EVENT_RESET };
	int rc = 0;

	PVM_TRACE(machine_system_reset, "devices=%zu", m->nvdevs);
	for (size_t i = 0; i < m->nvdevs; i++)
		pvm_virtio_device_reset(m->vdevs[i].dev);
	for (size_t i = 0; i < m->nvmems; i++) {
		int r = pvm_vmem_system_reset(m->vmems[i].vmem, false, err);

		if (r && !rc)
			rc = r;
	}
	if (m->guest_ops && m->guest_ops->reset)
		m->guest_ops->reset(m->guest);
	m->guest_busy = m->guest_ops != NULL;
	m->guest_waiting = false;
	pvm_machine_emit(m, &ev);
	return rc;
}

void pvm_machine_request_quit(struct pvm_machine *m)
{
	m->quit = true;
}

bool pvm_machine_quit_requested(const struct pvm_machine *m)
{
	return m->quit;
}

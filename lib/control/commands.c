/* SPDX-License-Identifier: MIT */
/*
 * QMP commands bound to a pvmem machine, with QEMU's names, arguments, results and error
 * classes where QEMU has the command, and x-pvmem-* / query-* additions for what it lacks.
 * Each handler checks everything before it changes anything.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>

#include <pvmem/control.h>
#include "control/commands.h"
#include "control/server.h"
#include "core/util.h"

#define PERIPHERAL "/machine/peripheral/"

struct pvm_control {
	struct pvm_machine *m;        /* the machine commands act on (not owned) */
	struct pvm_qmp_server *srv;   /* the socket server */
};

/* ---- helpers --------------------------------------------------------------------------------- */

static json_object *u64(uint64_t v)
{
	return json_object_new_uint64(v);
}

/* The device id of a QOM path ("/machine/peripheral/vmem0" or just "vmem0"). */
static const char *qom_id(const char *path)
{
	return strncmp(path, PERIPHERAL, strlen(PERIPHERAL)) ? path : path + strlen(PERIPHERAL);
}

static int not_found(struct pvm_qmp_call *call, struct pvm_error *err, const char *what)
{
	pvm_qmp_set_class(call, "DeviceNotFound");
	return pvm_error_set(err, -ENODEV, "Device '%s' not found", what);
}

/* Map a machine failure to QMP: the message stays, ENOENT becomes DeviceNotFound. */
static int machine_failed(struct pvm_qmp_call *call, int rc, struct pvm_error *err)
{
	if (rc == -ENOENT)
		pvm_qmp_set_class(call, "DeviceNotFound");
	if (!err->code)
		pvm_error_set(err, rc, "%s", strerror(-rc));
	return rc;
}

/* ---- memory devices ------------------------------------------------------------------------- */

static json_object *memdev_json(const struct pvm_machine_memdev_info *d)
{
	json_object *o = json_object_new_object(), *data = json_object_new_object();
	char memdev[160];

	snprintf(memdev, sizeof(memdev), "/objects/mem-%s", d->id);
	json_object_object_add(data, "id", json_object_new_string(d->id));
	json_object_object_add(data, "memaddr", u64(d->addr));
	json_object_object_add(data, "requested-size", u64(d->requested_size));
	json_object_object_add(data, "size", u64(d->plugged_size));
	json_object_object_add(data, "max-size", u64(d->region_size));
	json_object_object_add(data, "block-size", u64(d->block_size));
	json_object_object_add(data, "node", json_object_new_int(d->node < 0 ? 0 : d->node));
	json_object_object_add(data, "memdev", json_object_new_string(memdev));
	json_object_object_add(o, "type", json_object_new_string("virtio-mem"));
	json_object_object_add(o, "data", data);
	return o;
}

static int cmd_query_memory_devices(void *opaque, struct pvm_qmp_call *call, json_object *args,
				    json_object **ret, struct pvm_error *err)
{
	struct pvm_control *c = opaque;
	json_object *a = json_object_new_array();

	for (size_t i = 0; i < pvm_machine_memdev_count(c->m); i++) {
		struct pvm_machine_memdev_info d;

		if (pvm_machine_memdev_info(c->m, i, &d) == 0)
			json_object_array_add(a, memdev_json(&d));
	}
	*ret = a;
	return 0;
}

/* Properties of a virtio-mem device that qom-get reads. */
static int memdev_prop(const struct pvm_machine_memdev_info *d, const char *prop, uint64_t *v)
{
	if (!strcmp(prop, "requested-size"))
		*v = d->requested_size;
	else if (!strcmp(prop, "size"))
		*v = d->plugged_size;
	else if (!strcmp(prop, "block-size"))
		*v = d->block_size;
	else if (!strcmp(prop, "max-size"))
		*v = d->region_size;
	else if (!strcmp(prop, "memaddr"))
		*v = d->addr;
	else if (!strcmp(prop, "node"))
		*v = d->node < 0 ? 0 : (uint64_t)d->node;
	else
		return -ENOENT;
	return 0;
}

static int find_memdev(struct pvm_control *c, struct pvm_qmp_call *call, const char *path,
		       struct pvm_machine_memdev_info *d, struct pvm_error *err)
{
	int i = pvm_machine_memdev_find(c->m, qom_id(path));

	if (i < 0 || pvm_machine_memdev_info(c->m, (size_t)i, d) < 0)
		return not_found(call, err, path);
	return 0;
}

static int cmd_qom_get(void *opaque, struct pvm_qmp_call *call, json_object *args,
		       json_object **ret, struct pvm_error *err)
{
	struct pvm_control *c = opaque;
	const char *path = pvm_qmp_arg_str(args, "path", ""), *prop = pvm_qmp_arg_str(args, "property", "");
	struct pvm_machine_memdev_info d;
	uint64_t v;

	if (find_memdev(c, call, path, &d, err) < 0)
		return -ENODEV;
	if (memdev_prop(&d, prop, &v) < 0)
		return pvm_error_set(err, -ENOENT, "Property 'virtio-mem-pci.%s' not found", prop);
	*ret = u64(v);
	return 0;
}

static int cmd_qom_set(void *opaque, struct pvm_qmp_call *call, json_object *args,
		       json_object **ret, struct pvm_error *err)
{
	struct pvm_control *c = opaque;
	const char *path = pvm_qmp_arg_str(args, "path", ""), *prop = pvm_qmp_arg_str(args, "property", "");
	struct pvm_machine_memdev_info d;
	uint64_t v;
	int rc;

	if (find_memdev(c, call, path, &d, err) < 0)
		return -ENODEV;
	if (memdev_prop(&d, prop, &v) < 0)
		return pvm_error_set(err, -ENOENT, "Property 'virtio-mem-pci.%s' not found", prop);
	if (strcmp(prop, "requested-size"))
		return pvm_error_set(err, -EPERM, "Property 'virtio-mem-pci.%s' can't be set", prop);
	if (pvm_qmp_arg_size(args, "value", &v, err) < 0)
		return -EINVAL;
	rc = pvm_machine_set_requested_size(c->m, d.id, v, err);
	return rc < 0 ? machine_failed(call, rc, err) : 0;
}

/* ---- balloon -------------------------------------------------------------------------------- */

static int need_balloon(struct pvm_control *c, struct pvm_qmp_call *call,
			struct pvm_machine_balloon_info *b, struct pvm_error *err)
{
	pvm_machine_balloon(c->m, b);
	if (!b->present) {
		pvm_qmp_set_class(call, "DeviceNotActive");
		return pvm_error_set(err, -ENODEV, "No balloon device has been activated");
	}
	return 0;
}

static int cmd_balloon(void *opaque, struct pvm_qmp_call *call, json_object *args,
		       json_object **ret, struct pvm_error *err)
{
	struct pvm_control *c = opaque;
	struct pvm_machine_balloon_info b;
	int64_t value = pvm_qmp_arg_int(args, "value", 0);
	int rc;

	if (value <= 0)
		return pvm_error_set(err, -EINVAL, "Parameter 'value' expects a size");
	if (need_balloon(c, call, &b, err) < 0)
		return -ENODEV;
	rc = pvm_machine_set_balloon_target(c->m, (uint64_t)value, err);
	return rc < 0 ? machine_failed(call, rc, err) : 0;
}

static int cmd_query_balloon(void *opaque, struct pvm_qmp_call *call, json_object *args,
			     json_object **ret, struct pvm_error *err)
{
	struct pvm_control *c = opaque;
	struct pvm_machine_balloon_info b;

	if (need_balloon(c, call, &b, err) < 0)
		return -ENODEV;
	*ret = json_object_new_object();
	json_object_object_add(*ret, "actual", u64(b.actual_bytes));
	return 0;
}

/* ---- host devices ---------------------------------------------------------------------------- */

static const struct {
	const char *driver;                   /* QEMU's device model name */
	enum pvm_machine_hostdev_kind kind;   /* what the machine attaches */
} drivers[] = {
	{ "vfio-pci", PVM_MACHINE_HOSTDEV_VFIO },
	{ "nvme", PVM_MACHINE_HOSTDEV_NVME },
	{ "vhost-vdpa-device-pci", PVM_MACHINE_HOSTDEV_VDPA },
	{ "vhost-vdpa", PVM_MACHINE_HOSTDEV_VDPA },
};

static int cmd_device_add(void *opaque, struct pvm_qmp_call *call, json_object *args,
			  json_object **ret, struct pvm_error *err)
{
	struct pvm_control *c = opaque;
	const char *driver = pvm_qmp_arg_str(args, "driver", ""), *id = pvm_qmp_arg_str(args, "id", NULL);
	int rc, kind = -1;

	for (size_t i = 0; i < PVM_ARRAY_SIZE(drivers); i++)
		if (!strcmp(driver, drivers[i].driver))
			kind = (int)drivers[i].kind;
	if (kind < 0)
		return pvm_error_set(err, -EINVAL,
				     "'%s' is not a valid device model name (this machine hot-plugs "
				     "vfio-pci, nvme and vhost-vdpa-device-pci)", driver);
	if (!id || !*id)
		return pvm_error_set(err, -EINVAL, "Parameter 'id' is missing");
	rc = pvm_machine_attach_hostdev(c->m, id, (enum pvm_machine_hostdev_kind)kind, err);
	return rc < 0 ? machine_failed(call, rc, err) : 0;
}

static int cmd_device_del(void *opaque, struct pvm_qmp_call *call, json_object *args,
			  json_object **ret, struct pvm_error *err)
{
	struct pvm_control *c = opaque;
	const char *id = pvm_qmp_arg_str(args, "id", "");
	int rc;

	if (pvm_machine_hostdev_find(c->m, qom_id(id)) < 0)
		return not_found(call, err, id);
	rc = pvm_machine_detach_hostdev(c->m, qom_id(id), err);
	return rc < 0 ? machine_failed(call, rc, err) : 0;
}

static int cmd_query_hostdevs(void *opaque, struct pvm_qmp_call *call, json_object *args,
			      json_object **ret, struct pvm_error *err)
{
	struct pvm_control *c = opaque;
	json_object *a = json_object_new_array();

	for (size_t i = 0; i < pvm_machine_hostdev_count(c->m); i++) {
		struct pvm_machine_hostdev_info h;
		json_object *o;

		if (pvm_machine_hostdev_info(c->m, i, &h) < 0)
			continue;
		o = json_object_new_object();
		json_object_object_add(o, "id", json_object_new_string(h.id));
		json_object_object_add(o, "kind", json_object_new_string(pvm_machine_hostdev_kind_name(h.kind)));
		json_object_object_add(o, "dma-mapped", u64(h.mapped));
		json_object_object_add(o, "viommu", json_object_new_boolean(h.viommu));
		json_object_array_add(a, o);
	}
	*ret = a;
	return 0;
}

static int cmd_viommu(void *opaque, struct pvm_qmp_call *call, json_object *args,
		      json_object **ret, struct pvm_error *err)
{
	struct pvm_control *c = opaque;
	int rc = pvm_machine_set_viommu(c->m, pvm_qmp_arg_bool(args, "enabled", false), err);

	if (rc == -ENODEV)
		pvm_qmp_set_class(call, "DeviceNotActive");
	return rc < 0 ? machine_failed(call, rc, err) : 0;
}

/* ---- machine ---------------------------------------------------------------------------------- */

static int cmd_system_reset(void *opaque, struct pvm_qmp_call *call, json_object *args,
			    json_object **ret, struct pvm_error *err)
{
	struct pvm_control *c = opaque;
	int rc = pvm_machine_system_reset(c->m, err);

	return rc < 0 ? machine_failed(call, rc, err) : 0;
}

static int cmd_quit(void *opaque, struct pvm_qmp_call *call, json_object *args,
		    json_object **ret, struct pvm_error *err)
{
	struct pvm_control *c = opaque;
	json_object *data = json_object_new_object();

	pvm_machine_request_quit(c->m);
	pvm_qmp_request_quit(call);
	json_object_object_add(data, "guest", json_object_new_boolean(false));
	json_object_object_add(data, "reason", json_object_new_string("host-qmp-quit"));
	if (c->srv)
		pvm_qmp_server_event(c->srv, "SHUTDOWN", data);
	json_object_put(data);
	return 0;
}

static const char *const vote_names[4] = {
	"require", "require-coordinated", "disable", "disable-uncoordinated",
};

static int cmd_query_discard(void *opaque, struct pvm_qmp_call *call, json_object *args,
			     json_object **ret, struct pvm_error *err)
{
	struct pvm_control *c = opaque;
	struct pvm_machine_discard_info d;
	struct pvm_machine_balloon_info b;
	json_object *votes = json_object_new_object(), *bal = json_object_new_object();

	pvm_machine_discard(c->m, &d);
	pvm_machine_balloon(c->m, &b);
	for (int i = 0; i < 4; i++)
		json_object_object_add(votes, vote_names[i], json_object_new_int64(d.votes[i]));
	json_object_object_add(bal, "present", json_object_new_boolean(b.present));
	json_object_object_add(bal, "inflated", u64(b.inflated_bytes));
	json_object_object_add(bal, "freed", u64(b.freed_bytes));
	json_object_object_add(bal, "inhibited", json_object_new_boolean(b.inhibited));
	*ret = json_object_new_object();
	/* "disabled": discarding that is not coordinated (balloon, free page reporting) is off. */
	json_object_object_add(*ret, "disabled", json_object_new_boolean(d.uncoordinated_disabled));
	json_object_object_add(*ret, "coordinated-disabled", json_object_new_boolean(d.coordinated_disabled));
	json_object_object_add(*ret, "votes", votes);
	json_object_object_add(*ret, "balloon", bal);
	return 0;
}

static json_object *bytes_or_unlimited(uint64_t v)
{
	return v == UINT64_MAX ? json_object_new_string("unlimited") : u64(v);
}

static int cmd_query_memlock(void *opaque, struct pvm_qmp_call *call, json_object *args,
			     json_object **ret, struct pvm_error *err)
{
	struct pvm_control *c = opaque;
	struct pvm_machine_memlock_info ml;
	json_object *r = json_object_new_object();

	pvm_machine_memlock(c->m, &ml);
	switch (ml.kind) {
	case PVM_MACHINE_MEMLOCK_BYTES:
		json_object_object_add(r, "limit", u64(ml.need));
		break;
	case PVM_MACHINE_MEMLOCK_UNLIMITED:
		json_object_object_add(r, "limit", json_object_new_string("unlimited"));
		break;
	default:
		json_object_object_add(r, "limit", NULL);
		break;
	}
	json_object_object_add(r, "applied", json_object_new_boolean(ml.applied));
	if (ml.apply_error)
		json_object_object_add(r, "apply-error", json_object_new_string(strerror(-ml.apply_error)));
	json_object_object_add(r, "soft", bytes_or_unlimited(ml.soft));
	json_object_object_add(r, "hard", bytes_or_unlimited(ml.hard));
	json_object_object_add(r, "pinned", u64(ml.pinned));
	json_object_object_add(r, "peak-pinned", u64(ml.peak_pinned));
	json_object_object_add(r, "budget", bytes_or_unlimited(ml.budget));
	*ret = r;
	return 0;
}

static int cmd_audit(void *opaque, struct pvm_qmp_call *call, json_object *args,
		     json_object **ret, struct pvm_error *err)
{
	struct pvm_control *c = opaque;
	struct pvm_machine_audit a;
	int rc = pvm_machine_audit(c->m, &a, err);

	if (rc < 0)
		return machine_failed(call, rc, err);
	*ret = json_object_new_object();
	json_object_object_add(*ret, "ok", json_object_new_boolean(!a.resident_unplugged && !a.memslot_mismatch &&
								   !a.size_mismatch && !a.dma_mismatch &&
								   !a.protection_mismatch));
	json_object_object_add(*ret, "resident-unplugged", u64(a.resident_unplugged));
	json_object_object_add(*ret, "memslot-mismatch", u64(a.memslot_mismatch));
	json_object_object_add(*ret, "size-mismatch", u64(a.size_mismatch));
	json_object_object_add(*ret, "dma-mismatch", u64(a.dma_mismatch));
	json_object_object_add(*ret, "protection-mismatch", u64(a.protection_mismatch));
	return 0;
}

/* ---- the table ---------------------------------------------------------------------------------- */

static const struct pvm_qmp_param p_qom_get[] = {
	{ "path", PVM_QMP_T_STR, false }, { "property", PVM_QMP_T_STR, false }, { 0 } };
static const struct pvm_qmp_param p_qom_set[] = {
	{ "path", PVM_QMP_T_STR, false }, { "property", PVM_QMP_T_STR, false },
	{ "value", PVM_QMP_T_ANY, false }, { 0 } };
static const struct pvm_qmp_param p_balloon[] = { { "value", PVM_QMP_T_INT, false }, { 0 } };
static const struct pvm_qmp_param p_device_add[] = {
	{ "driver", PVM_QMP_T_STR, false }, { "id", PVM_QMP_T_STR, true }, { "*", PVM_QMP_T_ANY, true },
	{ 0 } };
static const struct pvm_qmp_param p_device_del[] = { { "id", PVM_QMP_T_STR, false }, { 0 } };
static const struct pvm_qmp_param p_viommu[] = { { "enabled", PVM_QMP_T_BOOL, false }, { 0 } };

const struct pvm_qmp_command pvm_control_commands[] = {
	{ "query-memory-devices", cmd_query_memory_devices, NULL },
	{ "qom-get", cmd_qom_get, p_qom_get },
	{ "qom-set", cmd_qom_set, p_qom_set },
	{ "balloon", cmd_balloon, p_balloon },
	{ "query-balloon", cmd_query_balloon, NULL },
	{ "device_add", cmd_device_add, p_device_add },
	{ "device_del", cmd_device_del, p_device_del },
	{ "system_reset", cmd_system_reset, NULL },
	{ "quit", cmd_quit, NULL },
	{ "query-memlock", cmd_query_memlock, NULL },
	{ "query-discard", cmd_query_discard, NULL },
	{ "x-pvmem-audit", cmd_audit, NULL },
	{ "x-pvmem-query-hostdevs", cmd_query_hostdevs, NULL },
	{ "x-pvmem-viommu", cmd_viommu, p_viommu },
	{ 0 },
};

/* ---- events ------------------------------------------------------------------------------------- */

json_object *pvm_control_event_json(const struct pvm_machine_event *ev, const char **name)
{
	json_object *d = json_object_new_object();
	char path[192];

	switch (ev->kind) {
	case PVM_MACHINE_EVENT_SIZE_CHANGE:
		*name = "MEMORY_DEVICE_SIZE_CHANGE";
		snprintf(path, sizeof(path), PERIPHERAL "%s", ev->id ? ev->id : "");
		json_object_object_add(d, "id", json_object_new_string(ev->id ? ev->id : ""));
		json_object_object_add(d, "size", u64(ev->size));
		json_object_object_add(d, "qom-path", json_object_new_string(path));
		break;
	case PVM_MACHINE_EVENT_BALLOON_CHANGE:
		*name = "BALLOON_CHANGE";
		json_object_object_add(d, "actual", u64(ev->size));
		break;
	case PVM_MACHINE_EVENT_DEVICE_DELETED:
		*name = "DEVICE_DELETED";
		snprintf(path, sizeof(path), PERIPHERAL "%s", ev->id ? ev->id : "");
		json_object_object_add(d, "device", json_object_new_string(ev->id ? ev->id : ""));
		json_object_object_add(d, "path", json_object_new_string(path));
		break;
	case PVM_MACHINE_EVENT_UNPLUGGED_ACCESS:
		*name = "X_PVMEM_UNPLUGGED_ACCESS";
		json_object_object_add(d, "id", json_object_new_string(ev->id ? ev->id : ""));
		json_object_object_add(d, "addr", u64(ev->gpa));
		break;
	case PVM_MACHINE_EVENT_RESET:
	default:
		*name = "RESET";
		json_object_object_add(d, "guest", json_object_new_boolean(false));
		json_object_object_add(d, "reason", json_object_new_string("host-qmp-system-reset"));
		break;
	}
	return d;
}

void pvm_control_event(struct pvm_control *c, const struct pvm_machine_event *ev)
{
	const char *name;
	json_object *d;

	if (!c || !c->srv)
		return;
	d = pvm_control_event_json(ev, &name);
	pvm_qmp_server_event(c->srv, name, d);
	json_object_put(d);
}

static void on_event(void *opaque, const struct pvm_machine_event *ev)
{
	pvm_control_event(opaque, ev);
}

/* ---- sockets in the machine's loop ---------------------------------------------------------------- */

static void on_fd(void *opaque, int fd, uint32_t events)
{
	struct pvm_control *c = opaque;

	pvm_qmp_server_poll(c->srv, 0);
}

static void watch(void *opaque, int fd, bool added)
{
	struct pvm_control *c = opaque;

	if (added) {
		if (pvm_machine_add_fd(c->m, fd, EPOLLIN, on_fd, c) < 0)
			pvm_warn("qmp: cannot watch a client socket");
	} else {
		pvm_machine_remove_fd(c->m, fd);
	}
}

int pvm_control_new(struct pvm_machine *m, const char *spec, struct pvm_control **out,
		    struct pvm_error *err)
{
	struct pvm_control *c;
	const char *path;
	int rc;

	*out = NULL;
	if (!spec || (strchr(spec, ':') && strncmp(spec, "unix:", 5)))
		return pvm_error_set(err, -EINVAL, "'%s' is not a QMP socket (use unix:PATH)",
				     spec ? spec : "");
	path = !strncmp(spec, "unix:", 5) ? spec + 5 : spec;
	c = pvm_calloc(1, sizeof(*c));
	if (!c)
		return pvm_error_set(err, -ENOMEM, "out of memory");
	c->m = m;
	rc = pvm_qmp_server_new(path, pvm_control_commands, c, &c->srv, err);
	if (rc < 0) {
		pvm_free(c);
		return rc;
	}
	pvm_qmp_server_set_fd_watch(c->srv, watch, c);
	rc = pvm_machine_add_fd(m, pvm_qmp_server_fd(c->srv), EPOLLIN, on_fd, c);
	if (rc < 0) {
		pvm_qmp_server_free(c->srv);
		pvm_free(c);
		return pvm_error_set(err, rc, "cannot watch the QMP socket");
	}
	pvm_machine_set_event_handler(m, on_event, c);
	*out = c;
	return 0;
}

int pvm_control_new_detached(struct pvm_machine *m, struct pvm_control **out)
{
	*out = pvm_calloc(1, sizeof(**out));
	if (!*out)
		return -ENOMEM;
	(*out)->m = m;
	return 0;
}

void pvm_control_free(struct pvm_control *c)
{
	if (!c)
		return;
	if (!c->srv) {
		pvm_free(c);
		return;
	}
	pvm_machine_set_event_handler(c->m, NULL, NULL);
	/* Stop watching every descriptor before the server closes them. */
	pvm_machine_remove_fd(c->m, pvm_qmp_server_fd(c->srv));
	pvm_qmp_server_set_fd_watch(c->srv, watch, c);
	pvm_qmp_server_free(c->srv);
	pvm_free(c);
}

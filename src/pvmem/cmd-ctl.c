/* SPDX-License-Identifier: MIT */
/*
 * pvmem ctl SOCKET COMMAND [ARGS] — a small QMP client for people.
 *
 *   pvmem ctl /run/vm.sock set-size vmem0 3G     qom-set requested-size
 *   pvmem ctl /run/vm.sock info                   memory devices, balloon, memlock
 *   pvmem ctl /run/vm.sock qmp query-balloon '{}' any QMP command with JSON arguments
 *
 * It connects, reads the greeting, negotiates, sends one command and prints the result; with
 * `events` it prints events as they come.
 */
#include <errno.h>
#include <json-c/json.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define CTL_TIMEOUT_MS 30000

struct conn {
	int fd;             /* connected socket */
	char buf[1 << 16];  /* unread input */
	size_t len;         /* bytes in buf */
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: pvmem ctl [--json] SOCKET COMMAND [ARGS]\n\n"
		"commands:\n"
		"  info                      memory devices, balloon, memlock and discard state\n"
		"  set-size ID SIZE          set a virtio-mem device's requested size (qom-set)\n"
		"  get-size ID               a virtio-mem device's requested size (qom-get)\n"
		"  balloon SIZE              set the guest size the balloon aims for\n"
		"  attach ID vfio|nvme|vdpa  hot-plug a DMA device (device_add)\n"
		"  detach ID                 unplug it (device_del)\n"
		"  audit                     check that unplugged memory is really gone\n"
		"  reset                     system reset\n"
		"  quit                      stop the machine\n"
		"  events [SECONDS]          print events as they come (default: until interrupted)\n"
		"  qmp NAME [JSON-ARGS]      any QMP command\n\n"
		"SOCKET may be written unix:PATH, as for 'pvmem run --qmp'.\n");
}

/* Read one JSON message (a line). Returns a new object, or NULL on EOF, time-out or junk. */
static json_object *read_msg(struct conn *c, int timeout_ms)
{
	for (;;) {
		char *nl = memchr(c->buf, '\n', c->len);
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		ssize_t n;

		if (nl) {
			size_t line = (size_t)(nl - c->buf) + 1;
			json_object *o;

			*nl = '\0';
			o = json_tokener_parse(c->buf);
			memmove(c->buf, c->buf + line, c->len - line);
			c->len -= line;
			if (o)
				return o;
			continue;
		}
		if (c->len == sizeof(c->buf))
			return NULL;
		if (poll(&pfd, 1, timeout_ms) <= 0)
			return NULL;
		n = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);
		if (n <= 0)
			return NULL;
		c->len += (size_t)n;
	}
}

static int send_cmd(struct conn *c, const char *name, json_object *args)
{
	json_object *m = json_object_new_object();
	char *txt;
	size_t off = 0, len;
	int rc = 0;

	json_object_object_add(m, "execute", json_object_new_string(name));
	if (args)
		json_object_object_add(m, "arguments", json_object_get(args));
	/* One message with its newline: the server may act on it (quit) and close as soon as the
	 * object is complete, so nothing may be written after it. MSG_NOSIGNAL: a closed socket is
	 * an error (EPIPE), not a SIGPIPE that kills the client. */
	if (asprintf(&txt, "%s\n", json_object_to_json_string_ext(m, JSON_C_TO_STRING_PLAIN)) < 0) {
		json_object_put(m);
		return -ENOMEM;
	}
	len = strlen(txt);
	while (off < len && rc == 0) {
		ssize_t n = send(c->fd, txt + off, len - off, MSG_NOSIGNAL);

		if (n < 0 && errno != EINTR)
			rc = -errno;
		else if (n > 0)
			off += (size_t)n;
	}
	free(txt);
	json_object_put(m);
	return rc;
}

/* Run one command: returns its "return" value (new reference) or NULL after printing the error. */
static json_object *call(struct conn *c, const char *name, json_object *args)
{
	int rc = send_cmd(c, name, args);

	if (rc < 0) {
		pvm_cli_error("ctl", "cannot send '%s': %s", name, strerror(-rc));
		return NULL;
	}
	for (;;) {
		json_object *m = read_msg(c, CTL_TIMEOUT_MS), *v;

		if (!m) {
			pvm_cli_error("ctl", "no answer to '%s'", name);
			return NULL;
		}
		if (json_object_object_get_ex(m, "return", &v)) {
			if (!v) {
				pvm_cli_error("ctl", "%s: the server answered null", name);
				json_object_put(m);
				return NULL;
			}
			json_object_get(v);
			json_object_put(m);
			return v;
		}
		if (json_object_object_get_ex(m, "error", &v)) {
			json_object *cls = NULL, *desc = NULL;

			json_object_object_get_ex(v, "class", &cls);
			json_object_object_get_ex(v, "desc", &desc);
			pvm_cli_error("ctl", "%s: %s (%s)", name, desc ? json_object_get_string(desc) : "error",
				      cls ? json_object_get_string(cls) : "?");
			json_object_put(m);
			return NULL;
		}
		json_object_put(m); /* an event: not ours */
	}
}

static int connect_socket(const char *spec, struct conn *c)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *path = !strncmp(spec, "unix:", 5) ? spec + 5 : spec;
	json_object *greeting, *ret;

	if (!*path) {
		pvm_cli_error("ctl", "the socket path is empty: '%s'", spec);
		return -EINVAL;
	}
	if (strlen(path) >= sizeof(sa.sun_path)) {
		pvm_cli_error("ctl", "socket path too long: %s", path);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;

		pvm_cli_error("ctl", "cannot connect to %s: %s", path, strerror(e));
		return -e;
	}
	greeting = read_msg(c, CTL_TIMEOUT_MS);
	if (!greeting || !json_object_object_get_ex(greeting, "QMP", NULL)) {
		pvm_cli_error("ctl", "%s did not greet like a QMP server", path);
		json_object_put(greeting);
		return -EPROTO;
	}
	json_object_put(greeting);
	ret = call(c, "qmp_capabilities", NULL);
	if (!ret)
		return -EPROTO;
	json_object_put(ret);
	return 0;
}

static void print_json(json_object *o)
{
	printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED));
}

static json_object *args_obj(const char *k1, json_object *v1, const char *k2, json_object *v2,
			     const char *k3, json_object *v3)
{
	json_object *a = json_object_new_object();

	if (k1)
		json_object_object_add(a, k1, v1);
	if (k2)
		json_object_object_add(a, k2, v2);
	if (k3)
		json_object_object_add(a, k3, v3);
	return a;
}

static int size_arg(const char *text, uint64_t *v)
{
	if (pvm_size_parse(text, v) < 0) {
		pvm_cli_error("ctl", "'%s' is not a size (examples: 512M, 3G, 1073741824)", text);
		return -EINVAL;
	}
	return 0;
}

/* Size or "unlimited" from a JSON value, as text. */
static const char *size_text(json_object *v, char *buf, size_t len)
{
	if (!v)
		return "none";
	if (json_object_is_type(v, json_type_string))
		return json_object_get_string(v);
	return pvm_size_format(json_object_get_uint64(v), buf, len);
}

static json_object *member(json_object *o, const char *key)
{
	json_object *v = NULL;

	json_object_object_get_ex(o, key, &v);
	return v;
}

static void print_memlock(json_object *ml)
{
	char need[32], soft[32], pinned[32];
	json_object *err = member(ml, "apply-error");

	printf("memlock    need %s, process limit %s, pinned %s", size_text(member(ml, "limit"), need, sizeof(need)),
	       size_text(member(ml, "soft"), soft, sizeof(soft)), size_text(member(ml, "pinned"), pinned, sizeof(pinned)));
	if (err)
		printf(" (not applied: %s; pinning is checked against the need)", json_object_get_string(err));
	printf("\n");
}

static void print_discard(json_object *d)
{
	json_object *bal = member(d, "balloon");
	bool disabled = json_object_get_boolean(member(d, "disabled"));
	char inflated[32], freed[32];

	printf("discard    %s", disabled ? "uncoordinated discard disabled (a device pins guest memory)"
				    : "allowed");
	if (bal && json_object_get_boolean(member(bal, "present")))
		printf("; balloon holds %s, freed %s%s", size_text(member(bal, "inflated"), inflated, sizeof(inflated)),
		       size_text(member(bal, "freed"), freed, sizeof(freed)),
		       json_object_get_boolean(member(bal, "inhibited")) ? ", inhibited" : "");
	printf("\n");
}

static void print_hostdevs(json_object *a)
{
	for (size_t i = 0; i < json_object_array_length(a); i++) {
		json_object *h = json_object_array_get_idx(a, i);
		char mapped[32];

		printf("%-10s %s, DMA-mapped %s%s\n", json_object_get_string(member(h, "id")),
		       json_object_get_string(member(h, "kind")),
		       size_text(member(h, "dma-mapped"), mapped, sizeof(mapped)),
		       json_object_get_boolean(member(h, "viommu")) ? ", behind the vIOMMU" : "");
	}
}

/* Human summary of query-memory-devices + query-balloon + query-memlock. */
static int do_info(struct conn *c, bool json)
{
	json_object *devs = call(c, "query-memory-devices", NULL);
	json_object *bal, *ml, *disc, *hostdevs;
	char a[32], b[32], r[32];

	if (!devs)
		return PVM_EXIT_FAIL;
	if (!json_object_is_type(devs, json_type_array)) {
		pvm_cli_error("ctl", "query-memory-devices: the answer is not an array");
		json_object_put(devs);
		return PVM_EXIT_FAIL;
	}
	bal = call(c, "query-balloon", NULL);
	ml = call(c, "query-memlock", NULL);
	disc = call(c, "query-discard", NULL);
	hostdevs = call(c, "x-pvmem-query-hostdevs", NULL);
	if (json) {
		json_object *all = json_object_new_object();

		json_object_object_add(all, "memory-devices", devs);
		json_object_object_add(all, "balloon", bal);
		json_object_object_add(all, "memlock", ml);
		json_object_object_add(all, "discard", disc);
		json_object_object_add(all, "hostdevs", hostdevs);
		print_json(all);
		json_object_put(all);
		return PVM_EXIT_OK;
	}
	for (size_t i = 0; i < json_object_array_length(devs); i++) {
		json_object *d = json_object_array_get_idx(devs, i), *data, *v;
		const char *id = "?";
		uint64_t req = 0, size = 0, block = 0;

		if (!json_object_object_get_ex(d, "data", &data))
			continue;
		if (json_object_object_get_ex(data, "id", &v))
			id = json_object_get_string(v);
		if (json_object_object_get_ex(data, "requested-size", &v))
			req = json_object_get_uint64(v);
		if (json_object_object_get_ex(data, "size", &v))
			size = json_object_get_uint64(v);
		if (json_object_object_get_ex(data, "block-size", &v))
			block = json_object_get_uint64(v);
		printf("%-10s plugged %-10s requested %-10s block %s\n", id, pvm_size_format(size, a, sizeof(a)),
		       pvm_size_format(req, b, sizeof(b)), pvm_size_format(block, r, sizeof(r)));
	}
	if (bal) {
		json_object *v;

		if (json_object_object_get_ex(bal, "actual", &v))
			printf("balloon    guest sees %s\n", pvm_size_format(json_object_get_uint64(v), a, sizeof(a)));
	}
	if (ml)
		print_memlock(ml);
	if (disc)
		print_discard(disc);
	if (hostdevs && json_object_is_type(hostdevs, json_type_array))
		print_hostdevs(hostdevs);
	json_object_put(devs);
	json_object_put(bal);
	json_object_put(ml);
	json_object_put(disc);
	json_object_put(hostdevs);
	return PVM_EXIT_OK;
}

static int do_events(struct conn *c, int seconds)
{
	time_t until = seconds > 0 ? time(NULL) + seconds : 0;

	for (;;) {
		int wait = until ? (int)(until - time(NULL)) * 1000 : -1;
		json_object *m;

		if (until && wait <= 0)
			return PVM_EXIT_OK;
		m = read_msg(c, wait);
		if (!m)
			return until ? PVM_EXIT_OK : PVM_EXIT_FAIL;
		if (json_object_object_get_ex(m, "event", NULL)) {
			printf("%s\n", json_object_to_json_string_ext(m, JSON_C_TO_STRING_PLAIN));
			fflush(stdout);
		}
		json_object_put(m);
	}
}

int pvm_cmd_ctl(int argc, char **argv)
{
	struct conn *c;
	const char *cmd;
	json_object *args = NULL, *ret = NULL;
	const char *name = NULL;
	bool json = false;
	int i = 1, rc, status = PVM_EXIT_OK;
	uint64_t v;

	if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		usage(stdout);
		return PVM_EXIT_OK;
	}
	if (argc > 1 && !strcmp(argv[1], "--json")) {
		json = true;
		i++;
	}
	if (argc - i < 2) {
		usage(stderr);
		return PVM_EXIT_USAGE;
	}
	cmd = argv[i + 1];
	/* Validate the command and its arguments before connecting. */
	if (!strcmp(cmd, "set-size") && argc - i == 4) {
		if (size_arg(argv[i + 3], &v) < 0)
			return PVM_EXIT_USAGE;
		char path[256];

		snprintf(path, sizeof(path), "/machine/peripheral/%s", argv[i + 2]);
		name = "qom-set";
		args = args_obj("path", json_object_new_string(path), "property",
				json_object_new_string("requested-size"), "value", json_object_new_uint64(v));
	} else if (!strcmp(cmd, "get-size") && argc - i == 3) {
		char path[256];

		snprintf(path, sizeof(path), "/machine/peripheral/%s", argv[i + 2]);
		name = "qom-get";
		args = args_obj("path", json_object_new_string(path), "property",
				json_object_new_string("requested-size"), NULL, NULL);
	} else if (!strcmp(cmd, "balloon") && argc - i == 3) {
		if (size_arg(argv[i + 2], &v) < 0)
			return PVM_EXIT_USAGE;
		name = "balloon";
		args = args_obj("value", json_object_new_uint64(v), NULL, NULL, NULL, NULL);
	} else if (!strcmp(cmd, "attach") && argc - i == 4) {
		static const struct { const char *kind, *driver; } drivers[] = {
			{ "vfio", "vfio-pci" }, { "nvme", "nvme" }, { "vdpa", "vhost-vdpa-device-pci" },
		};
		const char *driver = NULL;

		for (size_t k = 0; k < sizeof(drivers) / sizeof(drivers[0]); k++)
			if (!strcmp(argv[i + 3], drivers[k].kind))
				driver = drivers[k].driver;
		if (!driver) {
			pvm_cli_error("ctl", "device kind '%s' is not vfio, nvme or vdpa", argv[i + 3]);
			return PVM_EXIT_USAGE;
		}
		name = "device_add";
		args = args_obj("driver", json_object_new_string(driver), "id",
				json_object_new_string(argv[i + 2]), NULL, NULL);
	} else if (!strcmp(cmd, "detach") && argc - i == 3) {
		name = "device_del";
		args = args_obj("id", json_object_new_string(argv[i + 2]), NULL, NULL, NULL, NULL);
	} else if (!strcmp(cmd, "audit") && argc - i == 2) {
		name = "x-pvmem-audit";
	} else if (!strcmp(cmd, "reset") && argc - i == 2) {
		name = "system_reset";
	} else if (!strcmp(cmd, "quit") && argc - i == 2) {
		name = "quit";
	} else if (!strcmp(cmd, "qmp") && (argc - i == 3 || argc - i == 4)) {
		name = argv[i + 2];
		if (argc - i == 4) {
			args = json_tokener_parse(argv[i + 3]);
			if (!args || !json_object_is_type(args, json_type_object)) {
				pvm_cli_error("ctl", "arguments must be a JSON object: %s", argv[i + 3]);
				json_object_put(args);
				return PVM_EXIT_USAGE;
			}
		}
	} else if (strcmp(cmd, "info") || argc - i != 2) {
		if (strcmp(cmd, "events") || argc - i > 3) {
			pvm_cli_error("ctl", "unknown command or wrong arguments: %s (try 'pvmem ctl --help')", cmd);
			return PVM_EXIT_USAGE;
		}
		if (argc - i == 3) {
			char *end;
			long secs;

			errno = 0;
			secs = strtol(argv[i + 2], &end, 10);
			if (end == argv[i + 2] || *end || errno || secs <= 0 || secs > 86400 * 365) {
				pvm_cli_error("ctl", "events: '%s' is not a number of seconds (1 or more)", argv[i + 2]);
				return PVM_EXIT_USAGE;
			}
		}
	}

	c = calloc(1, sizeof(*c));
	if (!c) {
		json_object_put(args);
		return PVM_EXIT_FAIL;
	}
	c->fd = -1;
	rc = connect_socket(argv[i], c);
	if (rc < 0) {
		/* A socket path that cannot be a path is an input error; a refused connection a failure. */
		status = rc == -EINVAL || rc == -ENAMETOOLONG ? PVM_EXIT_USAGE : PVM_EXIT_FAIL;
	} else if (!strcmp(cmd, "info")) {
		status = do_info(c, json);
	} else if (!strcmp(cmd, "events")) {
		status = do_events(c, argc - i == 3 ? atoi(argv[i + 2]) : 0);
	} else {
		ret = call(c, name, args);
		if (!ret)
			status = PVM_EXIT_FAIL;
		else if (json || !json_object_is_type(ret, json_type_object) || json_object_object_length(ret))
			print_json(ret);
	}
	json_object_put(ret);
	json_object_put(args);
	if (c->fd >= 0)
		close(c->fd);
	free(c);
	return status;
}

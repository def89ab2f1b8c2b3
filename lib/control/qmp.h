/* SPDX-License-Identifier: MIT */
/*
 * QMP protocol layer (internal): one session per client, independent of the transport, so that
 * transcripts can be replayed without sockets. It follows QEMU's docs/interop/qmp-spec.rst:
 * greeting, capabilities negotiation, {"execute", "arguments", "id"} commands answered with
 * {"return"} or {"error": {"class", "desc"}}, asynchronous {"event", "data", "timestamp"}.
 * Every error is reported before the command has any side effect: the envelope and the
 * arguments are checked against the command's parameter table before its handler runs, and
 * handlers validate everything before they change anything.
 */
#ifndef PVM_CONTROL_QMP_H
#define PVM_CONTROL_QMP_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include <pvmem/core.h>

/* Largest command the session accepts (bytes), and the deepest JSON nesting. */
#define PVM_QMP_MAX_INPUT (1u << 20)
#define PVM_QMP_MAX_DEPTH 64

enum pvm_qmp_type {
	PVM_QMP_T_STR,    /* JSON string */
	PVM_QMP_T_INT,    /* JSON integer (64-bit signed) */
	PVM_QMP_T_SIZE,   /* non-negative JSON integer, or a string like "2G" (QEMU accepts both for sizes) */
	PVM_QMP_T_BOOL,   /* JSON true/false */
	PVM_QMP_T_ANY,    /* anything */
};

/* One parameter of a command. */
struct pvm_qmp_param {
	const char *name;         /* key in "arguments"; "*" allows any other key (device_add) */
	enum pvm_qmp_type type;   /* expected type */
	bool optional;            /* may be absent */
};

/* A handler: fills *ret (NULL means {}) or returns -errno with @err set. The error class is
 * "GenericError" unless the handler sets one with pvm_qmp_set_class() (e.g. "DeviceNotFound"). */
struct pvm_qmp_call;
typedef int (*pvm_qmp_handler_fn)(void *opaque, struct pvm_qmp_call *call, json_object *args,
				  json_object **ret, struct pvm_error *err);

struct pvm_qmp_command {
	const char *name;                     /* "query-balloon" */
	pvm_qmp_handler_fn fn;                /* the handler */
	const struct pvm_qmp_param *params;   /* terminated by { NULL }; NULL = no parameters */
};

/* Output: one complete JSON message with its line ending. Returns 0 or -errno. */
typedef int (*pvm_qmp_write_fn)(void *opaque, const char *data, size_t len);

struct pvm_qmp_session;

/* A session for one client over @cmds (terminated by { NULL }), calling handlers with
 * @opaque and writing through @write. The built-in qmp_capabilities, query-commands and
 * query-version are added. */
int pvm_qmp_session_new(const struct pvm_qmp_command *cmds, void *opaque, pvm_qmp_write_fn write,
			void *write_opaque, struct pvm_qmp_session **out);
void pvm_qmp_session_free(struct pvm_qmp_session *s);
/* Send the greeting. */
int pvm_qmp_session_greet(struct pvm_qmp_session *s);
/* Feed bytes from the client; complete messages are executed in order. Returns 0, or -errno
 * when the output failed (the client should be dropped). */
int pvm_qmp_session_input(struct pvm_qmp_session *s, const char *buf, size_t len);
/* Send an event (only to sessions that completed negotiation). @data may be NULL; it is not
 * consumed. */
int pvm_qmp_session_event(struct pvm_qmp_session *s, const char *name, json_object *data);
/* True once the client asked to end the machine ("quit"). */
bool pvm_qmp_session_quit_requested(const struct pvm_qmp_session *s);
/* True once negotiation is complete. */
bool pvm_qmp_session_ready(const struct pvm_qmp_session *s);

/* For handlers: set the QMP error class of the failure being returned; request quit. */
void pvm_qmp_set_class(struct pvm_qmp_call *call, const char *cls);
void pvm_qmp_request_quit(struct pvm_qmp_call *call);

/* Argument getters (arguments were already type-checked against the parameter table). */
const char *pvm_qmp_arg_str(json_object *args, const char *name, const char *dflt);
bool pvm_qmp_arg_bool(json_object *args, const char *name, bool dflt);
int64_t pvm_qmp_arg_int(json_object *args, const char *name, int64_t dflt);
/* A size argument (integer or "2G" string) into *@v; -EINVAL with @err when malformed. */
int pvm_qmp_arg_size(json_object *args, const char *name, uint64_t *v, struct pvm_error *err);
bool pvm_qmp_arg_has(json_object *args, const char *name);

/* Check @text (a complete JSON text of @len bytes) for duplicate keys within any object and for
 * nesting deeper than @max_depth. json-c keeps the last duplicate silently; QMP must refuse.
 * Returns 0, or -EINVAL with a message naming the key. */
int pvm_json_check_text(const char *text, size_t len, int max_depth, struct pvm_error *err);

#endif

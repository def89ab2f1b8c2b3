/* SPDX-License-Identifier: MIT */
/*
 * QMP sessions: framing, negotiation, envelope and argument checks, dispatch, events.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "control/qmp.h"
#include "core/util.h"

struct pvm_qmp_call {
	struct pvm_qmp_session *s;   /* the session the call came from */
	const char *cls;             /* error class set by the handler, or NULL */
};

struct pvm_qmp_session {
	const struct pvm_qmp_command *cmds;  /* caller's table, terminated by { NULL } */
	void *opaque;                        /* passed to handlers */
	pvm_qmp_write_fn write;              /* output */
	void *write_opaque;                  /* passed to write */
	json_tokener *tok;                   /* incremental parser for the current message */
	char *buf;                           /* raw text of the current message (for strict checks) */
	size_t buf_len, buf_cap;             /* bytes held, allocated */
	bool negotiated;                     /* qmp_capabilities completed */
	bool quit;                           /* the client asked to quit */
	bool discarding;                     /* dropping an oversized message until a newline */
};

/* ---- output --------------------------------------------------------------------------------- */

static int send_obj(struct pvm_qmp_session *s, json_object *o)
{
	const char *txt = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	char *line = pvm_asprintf("%s\r\n", txt);
	int rc;

	if (!line)
		return -ENOMEM;
	rc = s->write(s->write_opaque, line, strlen(line));
	pvm_free(line);
	return rc;
}

static int send_error(struct pvm_qmp_session *s, json_object *id, const char *cls, const char *desc)
{
	json_object *r = json_object_new_object(), *e = json_object_new_object();
	int rc;

	json_object_object_add(e, "class", json_object_new_string(cls));
	json_object_object_add(e, "desc", json_object_new_string(desc));
	json_object_object_add(r, "error", e);
	if (id)
		json_object_object_add(r, "id", json_object_get(id));
	rc = send_obj(s, r);
	json_object_put(r);
	PVM_TRACE(qmp_error, "class=%s desc=%s", cls, desc);
	return rc;
}

static int send_return(struct pvm_qmp_session *s, json_object *id, json_object *ret)
{
	json_object *r = json_object_new_object();
	int rc;

	json_object_object_add(r, "return", ret ? ret : json_object_new_object());
	if (id)
		json_object_object_add(r, "id", json_object_get(id));
	rc = send_obj(s, r);
	json_object_put(r);
	return rc;
}

int pvm_qmp_session_greet(struct pvm_qmp_session *s)
{
	int major = 0, minor = 0, micro = 0;
	char *pkg = pvm_asprintf("pvmem %s", pvm_version());
	json_object *g, *q, *v, *qv;
	int rc;

	if (!pkg)
		return -ENOMEM;
	sscanf(pvm_version(), "%d.%d.%d", &major, &minor, &micro);
	g = json_object_new_object();
	q = json_object_new_object();
	v = json_object_new_object();
	qv = json_object_new_object();
	json_object_object_add(qv, "major", json_object_new_int(major));
	json_object_object_add(qv, "minor", json_object_new_int(minor));
	json_object_object_add(qv, "micro", json_object_new_int(micro));
	json_object_object_add(v, "qemu", qv);
	json_object_object_add(v, "package", json_object_new_string(pkg));
	json_object_object_add(q, "version", v);
	json_object_object_add(q, "capabilities", json_object_new_array());
	json_object_object_add(g, "QMP", q);
	rc = send_obj(s, g);
	json_object_put(g);
	pvm_free(pkg);
	return rc;
}

int pvm_qmp_session_event(struct pvm_qmp_session *s, const char *name, json_object *data)
{
	json_object *e, *ts;
	struct timespec now;
	int rc;

	if (!s->negotiated)
		return 0;
	clock_gettime(CLOCK_REALTIME, &now);
	e = json_object_new_object();
	ts = json_object_new_object();
	json_object_object_add(e, "event", json_object_new_string(name));
	if (data)
		json_object_object_add(e, "data", json_object_get(data));
	json_object_object_add(ts, "seconds", json_object_new_int64(now.tv_sec));
	json_object_object_add(ts, "microseconds", json_object_new_int64(now.tv_nsec / 1000));
	json_object_object_add(e, "timestamp", ts);
	rc = send_obj(s, e);
	json_object_put(e);
	return rc;
}

/* ---- arguments -------------------------------------------------------------------------------- */

static const char *type_name(enum pvm_qmp_type t)
{
	switch (t) {
	case PVM_QMP_T_STR: return "string";
	case PVM_QMP_T_INT: return "integer";
	case PVM_QMP_T_SIZE: return "size";
	case PVM_QMP_T_BOOL: return "boolean";
	default: return "any";
	}
}

static bool type_ok(json_object *v, enum pvm_qmp_type t)
{
	switch (t) {
	case PVM_QMP_T_STR: return json_object_is_type(v, json_type_string);
	case PVM_QMP_T_INT: return json_object_is_type(v, json_type_int);
	case PVM_QMP_T_SIZE:
		return (json_object_is_type(v, json_type_int) && json_object_get_int64(v) >= 0) ||
		       json_object_is_type(v, json_type_string);
	case PVM_QMP_T_BOOL: return json_object_is_type(v, json_type_boolean);
	default: return true;
	}
}

/* QEMU's messages: "Parameter 'x' is missing", "Invalid parameter type for 'x', expected: T",
 * "Parameter 'x' is unexpected". */
static int check_args(const struct pvm_qmp_command *cmd, json_object *args, struct pvm_error *err)
{
	const struct pvm_qmp_param *p;

	json_object_object_foreach(args, key, val) {
		bool known = false;

		(void)val;
		for (p = cmd->params; p && p->name; p++)
			known |= !strcmp(p->name, key) || !strcmp(p->name, "*");
		if (!known)
			return pvm_error_set(err, -EINVAL, "Parameter '%s' is unexpected", key);
	}
	for (p = cmd->params; p && p->name; p++) {
		json_object *v;

		if (!strcmp(p->name, "*"))
			continue;
		if (!json_object_object_get_ex(args, p->name, &v) || !v) {
			if (!p->optional)
				return pvm_error_set(err, -EINVAL, "Parameter '%s' is missing", p->name);
			continue;
		}
		if (!type_ok(v, p->type))
			return pvm_error_set(err, -EINVAL, "Invalid parameter type for '%s', expected: %s",
					     p->name, type_name(p->type));
	}
	return 0;
}

const char *pvm_qmp_arg_str(json_object *args, const char *name, const char *dflt)
{
	json_object *v;

	return json_object_object_get_ex(args, name, &v) && json_object_is_type(v, json_type_string)
		       ? json_object_get_string(v) : dflt;
}

bool pvm_qmp_arg_bool(json_object *args, const char *name, bool dflt)
{
	json_object *v;

	return json_object_object_get_ex(args, name, &v) && json_object_is_type(v, json_type_boolean)
		       ? json_object_get_boolean(v) : dflt;
}

int64_t pvm_qmp_arg_int(json_object *args, const char *name, int64_t dflt)
{
	json_object *v;

	return json_object_object_get_ex(args, name, &v) && json_object_is_type(v, json_type_int)
		       ? json_object_get_int64(v) : dflt;
}

bool pvm_qmp_arg_has(json_object *args, const char *name)
{
	json_object *v;

	return json_object_object_get_ex(args, name, &v) && v;
}

int pvm_qmp_arg_size(json_object *args, const char *name, uint64_t *out, struct pvm_error *err)
{
	json_object *v;

	if (!json_object_object_get_ex(args, name, &v) || !v)
		return pvm_error_set(err, -EINVAL, "Parameter '%s' is missing", name);
	if (json_object_is_type(v, json_type_int)) {
		/* json-c saturates integers beyond int64; refuse those instead of guessing. */
		int64_t i = json_object_get_int64(v);

		errno = 0;
		if (i < 0 || (i == INT64_MAX && json_object_get_uint64(v) != (uint64_t)INT64_MAX))
			return pvm_error_set(err, -EINVAL, "Parameter '%s' expects a size", name);
		*out = json_object_get_uint64(v);
		return 0;
	}
	if (json_object_is_type(v, json_type_string) &&
	    pvm_size_parse(json_object_get_string(v), out) == 0)
		return 0;
	return pvm_error_set(err, -EINVAL, "Parameter '%s' expects a size", name);
}

void pvm_qmp_set_class(struct pvm_qmp_call *call, const char *cls)
{
	call->cls = cls;
}

void pvm_qmp_request_quit(struct pvm_qmp_call *call)
{
	call->s->quit = true;
}

/* ---- built-in commands ------------------------------------------------------------------------ */

static int cmd_query_version(void *opaque, struct pvm_qmp_call *call, json_object *args,
			     json_object **ret, struct pvm_error *err)
{
	int major = 0, minor = 0, micro = 0;
	json_object *r = json_object_new_object(), *q = json_object_new_object();

	sscanf(pvm_version(), "%d.%d.%d", &major, &minor, &micro);
	json_object_object_add(q, "major", json_object_new_int(major));
	json_object_object_add(q, "minor", json_object_new_int(minor));
	json_object_object_add(q, "micro", json_object_new_int(micro));
	json_object_object_add(r, "qemu", q);
	json_object_object_add(r, "package", json_object_new_string("pvmem"));
	*ret = r;
	return 0;
}

static const struct pvm_qmp_command builtin[] = {
	{ "qmp_capabilities", NULL, (const struct pvm_qmp_param[]){
		{ "enable", PVM_QMP_T_ANY, true }, { 0 } } },
	{ "query-commands", NULL, NULL },
	{ "query-version", cmd_query_version, NULL },
	{ 0 },
};

static const struct pvm_qmp_command *find_cmd(const struct pvm_qmp_session *s, const char *name)
{
	for (const struct pvm_qmp_command *c = builtin; c->name; c++)
		if (!strcmp(c->name, name))
			return c;
	for (const struct pvm_qmp_command *c = s->cmds; c && c->name; c++)
		if (!strcmp(c->name, name))
			return c;
	return NULL;
}

static json_object *list_commands(const struct pvm_qmp_session *s)
{
	json_object *a = json_object_new_array();

	for (int pass = 0; pass < 2; pass++) {
		for (const struct pvm_qmp_command *c = pass ? s->cmds : builtin; c && c->name; c++) {
			json_object *o = json_object_new_object();

			json_object_object_add(o, "name", json_object_new_string(c->name));
			json_object_array_add(a, o);
		}
	}
	return a;
}

/* ---- dispatch ---------------------------------------------------------------------------------- */

/* Execute one parsed message whose raw text is s->buf[0..len). */
static int execute(struct pvm_qmp_session *s, json_object *msg, size_t len)
{
	struct pvm_error err = { 0 };
	struct pvm_qmp_call call = { .s = s };
	const struct pvm_qmp_command *cmd;
	json_object *id = NULL, *exec = NULL, *args = NULL, *ret = NULL;
	const char *name;
	int rc;

	if (pvm_json_check_text(s->buf, len, PVM_QMP_MAX_DEPTH, &err) < 0)
		return send_error(s, NULL, "GenericError", pvm_error_message(&err));
	if (!json_object_is_type(msg, json_type_object))
		return send_error(s, NULL, "GenericError", "QMP input must be a JSON object");
	json_object_object_get_ex(msg, "id", &id);
	json_object_object_foreach(msg, key, val) {
		char desc[128];

		if (!strcmp(key, "execute")) {
			if (!json_object_is_type(val, json_type_string))
				return send_error(s, id, "GenericError",
						  "QMP input member 'execute' must be a string");
			exec = val;
		} else if (!strcmp(key, "arguments")) {
			if (!json_object_is_type(val, json_type_object))
				return send_error(s, id, "GenericError",
						  "QMP input member 'arguments' must be an object");
			args = val;
		} else if (strcmp(key, "id")) {
			snprintf(desc, sizeof(desc), "QMP input member '%.64s' is unexpected", key);
			return send_error(s, id, "GenericError", desc);
		}
	}
	if (!exec)
		return send_error(s, id, "GenericError", "QMP input lacks member 'execute'");
	name = json_object_get_string(exec);
	PVM_TRACE(qmp_command, "name=%s", name);
	if (!s->negotiated && strcmp(name, "qmp_capabilities"))
		return send_error(s, id, "CommandNotFound",
				  "Expecting capabilities negotiation with 'qmp_capabilities'");
	cmd = find_cmd(s, name);
	if (!cmd) {
		char desc[160];

		snprintf(desc, sizeof(desc), "The command %.100s has not been found", name);
		return send_error(s, id, "CommandNotFound", desc);
	}
	if (args)
		json_object_get(args);
	else
		args = json_object_new_object();
	rc = check_args(cmd, args, &err);
	if (rc == 0) {
		if (!strcmp(name, "qmp_capabilities")) {
			if (s->negotiated) {
				pvm_qmp_set_class(&call, "CommandNotFound");
				rc = pvm_error_set(&err, -EINVAL, "Capabilities negotiation is already complete, command ignored");
			} else if (pvm_qmp_arg_has(args, "enable")) {
				rc = pvm_error_set(&err, -EINVAL, "This server supports no capabilities");
			} else {
				s->negotiated = true;
			}
		} else if (!strcmp(name, "query-commands")) {
			ret = list_commands(s);
		} else {
			rc = cmd->fn(s->opaque, &call, args, &ret, &err);
		}
	}
	json_object_put(args);
	if (rc < 0) {
		json_object_put(ret);
		return send_error(s, id, call.cls ? call.cls : "GenericError", pvm_error_message(&err));
	}
	return send_return(s, id, ret);
}

static int buf_append(struct pvm_qmp_session *s, const char *p, size_t n)
{
	if (s->buf_len + n > s->buf_cap) {
		size_t cap = PVM_MAX(s->buf_cap * 2, s->buf_len + n);
		char *b = pvm_reallocarray(s->buf, cap, 1);

		if (!b)
			return -ENOMEM;
		s->buf = b;
		s->buf_cap = cap;
	}
	memcpy(s->buf + s->buf_len, p, n);
	s->buf_len += n;
	return 0;
}

static void reset_message(struct pvm_qmp_session *s)
{
	json_tokener_reset(s->tok);
	s->buf_len = 0;
}

int pvm_qmp_session_input(struct pvm_qmp_session *s, const char *data, size_t len)
{
	const char *p = data, *end = data + len;

	while (p < end) {
		enum json_tokener_error jerr;
		json_object *msg;
		size_t used, chunk;
		int rc;

		if (s->discarding) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));

			if (!nl)
				return 0;
			p = nl + 1;
			s->discarding = false;
			continue;
		}
		/* Skip whitespace between messages. */
		if (s->buf_len == 0 && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')) {
			p++;
			continue;
		}
		chunk = (size_t)(end - p);
		if (chunk > INT32_MAX)
			chunk = INT32_MAX;
		msg = json_tokener_parse_ex(s->tok, p, (int)chunk);
		jerr = json_tokener_get_error(s->tok);
		used = jerr == json_tokener_continue ? chunk : json_tokener_get_parse_end(s->tok);
		if (used == 0 && jerr != json_tokener_success && jerr != json_tokener_continue)
			used = 1;
		rc = buf_append(s, p, used);
		p += used;
		if (rc < 0) {
			json_object_put(msg);
			reset_message(s);
			rc = send_error(s, NULL, "GenericError", "out of memory");
			if (rc < 0)
				return rc;
			continue;
		}
		if (jerr == json_tokener_continue) {
			if (s->buf_len > PVM_QMP_MAX_INPUT) {
				reset_message(s);
				s->discarding = true;
				rc = send_error(s, NULL, "GenericError", "JSON parse error, input too large");
				if (rc < 0)
					return rc;
			}
			continue;
		}
		if (jerr != json_tokener_success) {
			char desc[160];

			snprintf(desc, sizeof(desc), "JSON parse error, %s", json_tokener_error_desc(jerr));
			reset_message(s);
			/* Resynchronise at the next line, as a client sends one command a line. */
			s->discarding = true;
			rc = send_error(s, NULL, "GenericError", desc);
			if (rc < 0)
				return rc;
			continue;
		}
		rc = execute(s, msg, s->buf_len);
		json_object_put(msg);
		reset_message(s);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int pvm_qmp_session_new(const struct pvm_qmp_command *cmds, void *opaque, pvm_qmp_write_fn write,
			void *write_opaque, struct pvm_qmp_session **out)
{
	struct pvm_qmp_session *s = pvm_calloc(1, sizeof(*s));

	*out = NULL;
	if (!s)
		return -ENOMEM;
	s->tok = json_tokener_new_ex(PVM_QMP_MAX_DEPTH);
	if (!s->tok) {
		pvm_free(s);
		return -ENOMEM;
	}
	s->cmds = cmds;
	s->opaque = opaque;
	s->write = write;
	s->write_opaque = write_opaque;
	*out = s;
	return 0;
}

void pvm_qmp_session_free(struct pvm_qmp_session *s)
{
	if (!s)
		return;
	json_tokener_free(s->tok);
	pvm_free(s->buf);
	pvm_free(s);
}

bool pvm_qmp_session_quit_requested(const struct pvm_qmp_session *s)
{
	return s->quit;
}

bool pvm_qmp_session_ready(const struct pvm_qmp_session *s)
{
	return s->negotiated;
}

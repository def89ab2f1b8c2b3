/* SPDX-License-Identifier: MIT */
/* virtio-mem trace parser (see mem-trace.h). One line at a time, words split on blanks. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/util.h"
#include "virtio/mem-state.h"
#include "virtio/mem-trace.h"

#define MAX_WORDS 12
#define MAX_FILE (64 * PVM_MiB)

struct words {
	char buf[PVM_VTRACE_MAX_LINE + 1];   /* the line, NULs between words */
	char *w[MAX_WORDS];                  /* the words */
	unsigned n;                          /* how many */
};

/* Split @line (@len bytes, no newline) into words; comments start at '#'. false: too many. */
static bool split(const char *line, size_t len, struct words *ws)
{
	char *p;

	memcpy(ws->buf, line, len);
	ws->buf[len] = '\0';
	p = strchr(ws->buf, '#');
	if (p)
		*p = '\0';
	ws->n = 0;
	for (p = ws->buf; *p;) {
		while (*p == ' ' || *p == '\t' || *p == '\r')
			*p++ = '\0';
		if (!*p)
			break;
		if (ws->n == MAX_WORDS)
			return false;
		ws->w[ws->n++] = p;
		while (*p && *p != ' ' && *p != '\t' && *p != '\r')
			p++;
	}
	return true;
}

/* A number: 0x-hex or decimal, fitting @max. */
static bool num(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	unsigned base = 10;

	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
	}
	if (!*s)
		return false;
	for (; *s; s++) {
		unsigned d;

		if (*s >= '0' && *s <= '9')
			d = (unsigned)(*s - '0');
		else if (base == 16 && *s >= 'a' && *s <= 'f')
			d = (unsigned)(*s - 'a' + 10);
		else if (base == 16 && *s >= 'A' && *s <= 'F')
			d = (unsigned)(*s - 'A' + 10);
		else
			return false;
		if (pvm_mul_overflow(v, base, &v) || pvm_add_overflow(v, d, &v))
			return false;
	}
	if (v > max)
		return false;
	*out = v;
	return true;
}

/* "key=value" with the expected @key. */
static bool kv(const char *w, const char *key, uint64_t max, uint64_t *out)
{
	size_t k = strlen(key);

	return !strncmp(w, key, k) && w[k] == '=' && num(w + k + 1, max, out);
}

static int lookup(const char *s, const char *const *names, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (!strcmp(s, names[i]))
			return (int)i;
	return -1;
}

/* Parse one line's words into @ev; returns an error phrase or NULL. Empty lines: *skip. */
static const char *parse_words(struct words *ws, struct pvm_vtrace_event *ev, bool *skip)
{
	static const char *const reqs[] = { "plug", "unplug", "unplug_all", "state" };
	static const char *const resps[] = { "ack", "nack", "busy", "error" };
	static const char *const states[] = { "plugged", "unplugged", "mixed" };
	char **w = ws->w;
	unsigned n = ws->n;
	uint64_t v, v2;
	int t;

	*skip = n == 0;
	if (n == 0)
		return NULL;
	if (!strcmp(w[0], "config")) {
		ev->kind = PVM_VTRACE_CONFIG;
		if (n != 6 || !kv(w[1], "addr", UINT64_MAX, &ev->addr) ||
		    !kv(w[2], "region_size", UINT64_MAX, &ev->region_size) ||
		    !kv(w[3], "block_size", UINT64_MAX, &ev->block_size) ||
		    !kv(w[4], "node", UINT16_MAX, &v) ||
		    !kv(w[5], "requested_size", UINT64_MAX, &ev->requested_size))
			return "expected: config addr=A region_size=R block_size=B node=N requested_size=S";
		ev->node = (uint16_t)v;
		return NULL;
	}
	if (!strcmp(w[0], "host")) {
		if (n == 2 && !strcmp(w[1], "reset")) {
			ev->kind = PVM_VTRACE_HOST_RESET;
			return NULL;
		}
		if (n == 3 && !strcmp(w[1], "requested_size") && num(w[2], UINT64_MAX, &ev->value)) {
			ev->kind = PVM_VTRACE_HOST_REQUESTED;
			return NULL;
		}
		if (n == 3 && !strcmp(w[1], "balloon") && num(w[2], UINT64_MAX, &ev->value)) {
			ev->kind = PVM_VTRACE_HOST_BALLOON;
			return NULL;
		}
		return "expected: host reset | host requested_size S | host balloon S";
	}
	if (!strcmp(w[0], "usable")) {
		ev->kind = PVM_VTRACE_USABLE;
		return n == 2 && num(w[1], UINT64_MAX, &ev->value) ? NULL : "expected: usable U";
	}
	if (!strcmp(w[0], "unplugged_all")) {
		ev->kind = PVM_VTRACE_UNPLUGGED_ALL;
		return n == 1 ? NULL : "expected: unplugged_all";
	}
	if (!strcmp(w[0], "guest")) {
		ev->kind = PVM_VTRACE_GUEST_MEMTOTAL;
		return n == 3 && !strcmp(w[1], "memtotal") && num(w[2], UINT64_MAX, &ev->value)
			       ? NULL : "expected: guest memtotal K";
	}
	if (!strcmp(w[0], "final")) {
		ev->kind = PVM_VTRACE_FINAL;
		if (n == 5 && !strcmp(w[1], "size") && num(w[2], UINT64_MAX, &v) &&
		    !strcmp(w[3], "requested_size") && num(w[4], UINT64_MAX, &v2)) {
			ev->value = v;
			ev->value2 = v2;
			return NULL;
		}
		return "expected: final size P requested_size S";
	}
	t = lookup(w[0], reqs, PVM_ARRAY_SIZE(reqs));
	if (t < 0)
		return "unknown event";
	ev->kind = PVM_VTRACE_REQUEST;
	ev->req_type = (uint16_t)t;
	if (t == VIRTIO_MEM_REQ_UNPLUG_ALL) {
		if (n != 3 || strcmp(w[1], "->") || (t = lookup(w[2], resps, 4)) < 0)
			return "expected: unplug_all -> ack|nack|busy|error";
		ev->resp = (uint16_t)t;
		return NULL;
	}
	if (n < 5 || !num(w[1], UINT64_MAX, &ev->req_addr) || !num(w[2], UINT16_MAX, &v) ||
	    strcmp(w[3], "->"))
		return "expected: plug|unplug|state ADDR NB_BLOCKS -> ...";
	ev->nb_blocks = (uint16_t)v;
	if (ev->req_type == VIRTIO_MEM_REQ_STATE) {
		/* "state A N -> S R"; a refused request has no state: "state A N -> error". */
		if (n == 5 && (t = lookup(w[4], resps, 4)) >= 0 && t != VIRTIO_MEM_RESP_ACK) {
			ev->resp = (uint16_t)t;
			return NULL;
		}
		if (n != 6 || (t = lookup(w[4], states, 3)) < 0)
			return "expected: state ADDR NB_BLOCKS -> plugged|unplugged|mixed ack";
		ev->state = (uint16_t)t;
		if ((t = lookup(w[5], resps, 4)) < 0)
			return "unknown answer";
		ev->resp = (uint16_t)t;
		return NULL;
	}
	if (n != 5 || (t = lookup(w[4], resps, 4)) < 0)
		return "expected: plug|unplug ADDR NB_BLOCKS -> ack|nack|busy|error";
	ev->resp = (uint16_t)t;
	return NULL;
}

int pvm_vtrace_parse(const char *text, size_t len, struct pvm_vtrace **out, struct pvm_error *err)
{
	struct pvm_vtrace *t;
	struct words *ws;
	size_t pos = 0, cap = 0;
	unsigned line = 0;
	int rc = 0;

	*out = NULL;
	t = pvm_calloc(1, sizeof(*t));
	ws = pvm_malloc(sizeof(*ws));
	if (!t || !ws) {
		rc = pvm_error_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t l = nl ? (size_t)(nl - (text + pos)) : len - pos;
		struct pvm_vtrace_event ev = { 0 };
		const char *why;
		bool skip;

		line++;
		if (l > PVM_VTRACE_MAX_LINE) {
			rc = pvm_error_set(err, -E2BIG, "line %u: longer than %u bytes", line, PVM_VTRACE_MAX_LINE);
			goto fail;
		}
		if (memchr(text + pos, '\0', l)) {
			rc = pvm_error_set(err, -EINVAL, "line %u: NUL byte", line);
			goto fail;
		}
		if (!split(text + pos, l, ws)) {
			rc = pvm_error_set(err, -EINVAL, "line %u: too many words", line);
			goto fail;
		}
		pos += l + (nl != NULL);
		why = parse_words(ws, &ev, &skip);
		if (why) {
			rc = pvm_error_set(err, -EINVAL, "line %u: %s", line, why);
			goto fail;
		}
		if (skip)
			continue;
		if ((ev.kind == PVM_VTRACE_CONFIG) != (t->n == 0)) {
			rc = pvm_error_set(err, -EINVAL, "line %u: %s", line,
					   t->n ? "a second config line" : "the first event must be a config line");
			goto fail;
		}
		if (t->n == PVM_VTRACE_MAX_EVENTS) {
			rc = pvm_error_set(err, -E2BIG, "line %u: more than %u events", line, PVM_VTRACE_MAX_EVENTS);
			goto fail;
		}
		if (t->n == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			struct pvm_vtrace_event *nev = pvm_reallocarray(t->ev, ncap, sizeof(*nev));

			if (!nev) {
				rc = pvm_error_set(err, -ENOMEM, "out of memory");
				goto fail;
			}
			t->ev = nev;
			cap = ncap;
		}
		ev.line = line;
		t->ev[t->n++] = ev;
	}
	if (t->n == 0) {
		rc = pvm_error_set(err, -EINVAL, "no config line");
		goto fail;
	}
	pvm_free(ws);
	*out = t;
	return 0;
fail:
	pvm_free(ws);
	pvm_vtrace_free(t);
	return rc;
}

int pvm_vtrace_load(const char *path, struct pvm_vtrace **out, struct pvm_error *err)
{
	struct stat st;
	char *buf;
	size_t got = 0;
	int fd, rc;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return pvm_error_set(err, -errno, "%s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > (off_t)MAX_FILE) {
		close(fd);
		return pvm_error_set(err, -EINVAL, "%s: not a regular file of at most 64 MiB", path);
	}
	buf = pvm_malloc((size_t)st.st_size + 1);
	if (!buf) {
		close(fd);
		return pvm_error_set(err, -ENOMEM, "out of memory");
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	rc = pvm_vtrace_parse(buf, got, out, err);
	pvm_free(buf);
	if (rc)
		pvm_error_prefix(err, "%s", path);
	return rc;
}

void pvm_vtrace_free(struct pvm_vtrace *t)
{
	if (!t)
		return;
	pvm_free(t->ev);
	pvm_free(t);
}

/* SPDX-License-Identifier: MIT */
/*
 * Scenario script parser (see script.h for the language). Pure: text in, command array out.
 * Every line is checked completely (command, argument count, each argument) before it is
 * accepted, and the first bad line fails the whole parse with its line number.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/util.h"
#include "machine/script.h"

#define MAX_WORDS 6

static const char *const op_names[] = {
	[PVM_SCRIPT_SET_SIZE] = "set-size", [PVM_SCRIPT_BALLOON] = "balloon",
	[PVM_SCRIPT_GUEST_USE] = "guest-use", [PVM_SCRIPT_ATTACH] = "attach",
	[PVM_SCRIPT_DETACH] = "detach",     [PVM_SCRIPT_VIOMMU] = "viommu",
	[PVM_SCRIPT_RESET] = "reset",       [PVM_SCRIPT_SETTLE] = "settle",
	[PVM_SCRIPT_SLEEP] = "sleep",       [PVM_SCRIPT_EXPECT] = "expect",
};

static const char *const expect_names[] = {
	[PVM_EXPECT_PLUGGED] = "plugged",
	[PVM_EXPECT_REQUESTED] = "requested",
	[PVM_EXPECT_USABLE] = "usable",
	[PVM_EXPECT_BALLOON_ACTUAL] = "balloon-actual",
	[PVM_EXPECT_RSS_MAX] = "rss-max",
	[PVM_EXPECT_MEMLOCK] = "memlock",
	[PVM_EXPECT_PINNED] = "pinned",
	[PVM_EXPECT_DMA_MAPPED] = "dma-mapped",
	[PVM_EXPECT_DISCARD_INHIBITED] = "discard-inhibited",
};

static const char *const hostdev_names[] = {
	[PVM_SCRIPT_HOSTDEV_VFIO] = "vfio",
	[PVM_SCRIPT_HOSTDEV_NVME] = "nvme",
	[PVM_SCRIPT_HOSTDEV_VDPA] = "vdpa",
};

const char *pvm_script_op_name(enum pvm_script_op op)
{
	return (unsigned)op < PVM_ARRAY_SIZE(op_names) ? op_names[op] : "?";
}

const char *pvm_script_expect_name(enum pvm_script_expect what)
{
	return (unsigned)what < PVM_ARRAY_SIZE(expect_names) ? expect_names[what] : "?";
}

const char *pvm_script_hostdev_name(enum pvm_script_hostdev kind)
{
	return (unsigned)kind < PVM_ARRAY_SIZE(hostdev_names) ? hostdev_names[kind] : "?";
}

static int lookup(const char *const *names, size_t n, const char *word)
{
	for (size_t i = 0; i < n; i++)
		if (names[i] && !strcmp(names[i], word))
			return (int)i;
	return -1;
}

/* Ids name devices in the domain XML (<alias name=...>): letters, digits, '-', '_', '.'. */
static int parse_id(const char *word, struct pvm_script_cmd *c, unsigned line, struct pvm_error *err)
{
	size_t n = strlen(word);

	if (n == 0 || n >= PVM_SCRIPT_ID_MAX)
		return pvm_error_set(err, -EINVAL, "line %u: device id must be 1 to %u characters", line,
				     PVM_SCRIPT_ID_MAX - 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)word[i];

		if (!isalnum(ch) && ch != '-' && ch != '_' && ch != '.')
			return pvm_error_set(err, -EINVAL, "line %u: bad character in device id '%s'", line,
					     word);
	}
	memcpy(c->id, word, n + 1);
	return 0;
}

static int parse_size(const char *word, uint64_t *v, unsigned line, struct pvm_error *err)
{
	int rc = pvm_size_parse(word, v);

	if (rc)
		return pvm_error_set(err, -EINVAL, "line %u: '%s' is not a size", line, word);
	return 0;
}

static int parse_bool(const char *word, const char *yes, const char *no, bool *v, unsigned line,
		      struct pvm_error *err)
{
	if (!strcmp(word, yes))
		*v = true;
	else if (!strcmp(word, no))
		*v = false;
	else
		return pvm_error_set(err, -EINVAL, "line %u: expected %s or %s, not '%s'", line, yes, no,
				     word);
	return 0;
}

static int want_words(unsigned n, unsigned want, const char *what, unsigned line, struct pvm_error *err)
{
	if (n != want)
		return pvm_error_set(err, -EINVAL, "line %u: %s takes %u argument%s", line, what,
				     want - 1, want == 2 ? "" : "s");
	return 0;
}

static int parse_expect(char **w, unsigned n, struct pvm_script_cmd *c, unsigned line,
			struct pvm_error *err)
{
	int what, rc;

	if (n < 2)
		return pvm_error_set(err, -EINVAL, "line %u: expect what?", line);
	what = lookup(expect_names, PVM_ARRAY_SIZE(expect_names), w[1]);
	if (what < 0)
		return pvm_error_set(err, -EINVAL, "line %u: unknown expectation '%s'", line, w[1]);
	c->what = (enum pvm_script_expect)what;
	switch (c->what) {
	case PVM_EXPECT_PLUGGED:
	case PVM_EXPECT_REQUESTED:
	case PVM_EXPECT_USABLE:
	case PVM_EXPECT_DMA_MAPPED:
		if ((rc = want_words(n - 1, 3, w[1], line, err)) || (rc = parse_id(w[2], c, line, err)))
			return rc;
		return parse_size(w[3], &c->size, line, err);
	case PVM_EXPECT_BALLOON_ACTUAL:
	case PVM_EXPECT_RSS_MAX:
	case PVM_EXPECT_PINNED:
		if ((rc = want_words(n - 1, 2, w[1], line, err)))
			return rc;
		return parse_size(w[2], &c->size, line, err);
	case PVM_EXPECT_MEMLOCK:
		if ((rc = want_words(n - 1, 2, w[1], line, err)))
			return rc;
		if (!strcmp(w[2], "unlimited"))
			c->memlock = PVM_SCRIPT_MEMLOCK_UNLIMITED;
		else if (!strcmp(w[2], "none"))
			c->memlock = PVM_SCRIPT_MEMLOCK_NONE;
		else
			return parse_size(w[2], &c->size, line, err);
		return 0;
	case PVM_EXPECT_DISCARD_INHIBITED:
		if ((rc = want_words(n - 1, 2, w[1], line, err)))
			return rc;
		return parse_bool(w[2], "yes", "no", &c->flag, line, err);
	}
	return pvm_error_set(err, -EINVAL, "line %u: unknown expectation", line);
}

/* Parse one line already split into words; w[0] is the command. */
static int parse_words(char **w, unsigned n, struct pvm_script_cmd *c, unsigned line,
		       struct pvm_error *err)
{
	int op = lookup(op_names, PVM_ARRAY_SIZE(op_names), w[0]), rc;

	if (op < 0)
		return pvm_error_set(err, -EINVAL, "line %u: unknown command '%s'", line, w[0]);
	c->op = (enum pvm_script_op)op;
	c->line = line;
	switch (c->op) {
	case PVM_SCRIPT_SET_SIZE:
		if ((rc = want_words(n, 3, w[0], line, err)) || (rc = parse_id(w[1], c, line, err)))
			return rc;
		return parse_size(w[2], &c->size, line, err);
	case PVM_SCRIPT_BALLOON:
	case PVM_SCRIPT_GUEST_USE:
		if ((rc = want_words(n, 2, w[0], line, err)))
			return rc;
		return parse_size(w[1], &c->size, line, err);
	case PVM_SCRIPT_ATTACH: {
		int kind;

		if ((rc = want_words(n, 3, w[0], line, err)) || (rc = parse_id(w[1], c, line, err)))
			return rc;
		kind = lookup(hostdev_names, PVM_ARRAY_SIZE(hostdev_names), w[2]);
		if (kind < 0)
			return pvm_error_set(err, -EINVAL, "line %u: device kind must be vfio, nvme or vdpa",
					     line);
		c->kind = (enum pvm_script_hostdev)kind;
		return 0;
	}
	case PVM_SCRIPT_DETACH:
		if ((rc = want_words(n, 2, w[0], line, err)))
			return rc;
		return parse_id(w[1], c, line, err);
	case PVM_SCRIPT_VIOMMU:
		if ((rc = want_words(n, 2, w[0], line, err)))
			return rc;
		return parse_bool(w[1], "on", "off", &c->flag, line, err);
	case PVM_SCRIPT_RESET:
		return want_words(n, 1, w[0], line, err);
	case PVM_SCRIPT_SETTLE:
		c->size = PVM_SCRIPT_SETTLE_DEFAULT_S;
		if (n == 1)
			return 0;
		if ((rc = want_words(n, 2, w[0], line, err)) || (rc = parse_size(w[1], &c->size, line, err)))
			return rc;
		if (c->size == 0 || c->size > PVM_SCRIPT_SETTLE_MAX_S)
			return pvm_error_set(err, -EINVAL, "line %u: settle timeout must be 1 to %u seconds",
					     line, PVM_SCRIPT_SETTLE_MAX_S);
		return 0;
	case PVM_SCRIPT_SLEEP:
		if ((rc = want_words(n, 2, w[0], line, err)) || (rc = parse_size(w[1], &c->size, line, err)))
			return rc;
		if (c->size > PVM_SCRIPT_SETTLE_MAX_S * 1000ULL)
			return pvm_error_set(err, -EINVAL, "line %u: sleep is at most %u ms", line,
					     PVM_SCRIPT_SETTLE_MAX_S * 1000);
		return 0;
	case PVM_SCRIPT_EXPECT:
		return parse_expect(w, n, c, line, err);
	}
	return pvm_error_set(err, -EINVAL, "line %u: unknown command", line);
}

/* Split @buf in place into at most MAX_WORDS words; returns the count or -E2BIG. */
static int split(char *buf, char **w)
{
	int n = 0;
	char *p = buf;

	for (;;) {
		while (*p == ' ' || *p == '\t' || *p == '\r')
			p++;
		if (!*p || *p == '#')
			return n;
		if (n == MAX_WORDS)
			return -E2BIG;
		w[n++] = p;
		while (*p && *p != ' ' && *p != '\t' && *p != '\r' && *p != '#')
			p++;
		if (*p == '#') {
			*p = '\0';
			return n;
		}
		if (*p)
			*p++ = '\0';
	}
}

int pvm_script_parse(const char *text, size_t len, struct pvm_script **out, struct pvm_error *err)
{
	struct pvm_script *s;
	size_t cap = 0, pos = 0;
	unsigned line = 0;
	char buf[PVM_SCRIPT_MAX_LINE + 1];
	int rc = 0;

	if (len > PVM_SCRIPT_MAX_BYTES)
		return pvm_error_set(err, -E2BIG, "script is larger than %u bytes", PVM_SCRIPT_MAX_BYTES);
	s = pvm_calloc(1, sizeof(*s));
	if (!s)
		return pvm_error_set(err, -ENOMEM, "out of memory");
	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;
		char *w[MAX_WORDS];
		int nw;

		line++;
		if (n > PVM_SCRIPT_MAX_LINE) {
			rc = pvm_error_set(err, -E2BIG, "line %u: longer than %u characters", line,
					   PVM_SCRIPT_MAX_LINE);
			goto fail;
		}
		memcpy(buf, text + pos, n);
		buf[n] = '\0';
		pos += n + (nl ? 1 : 0);
		if (strlen(buf) != n) {
			rc = pvm_error_set(err, -EINVAL, "line %u: NUL byte", line);
			goto fail;
		}
		nw = split(buf, w);
		if (nw < 0) {
			rc = pvm_error_set(err, -EINVAL, "line %u: too many words", line);
			goto fail;
		}
		if (nw == 0)
			continue;
		if (s->n == PVM_SCRIPT_MAX_CMDS) {
			rc = pvm_error_set(err, -E2BIG, "line %u: more than %u commands", line,
					   PVM_SCRIPT_MAX_CMDS);
			goto fail;
		}
		if (s->n == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			struct pvm_script_cmd *nc = pvm_reallocarray(s->cmds, ncap, sizeof(*nc));

			if (!nc) {
				rc = pvm_error_set(err, -ENOMEM, "out of memory");
				goto fail;
			}
			s->cmds = nc;
			cap = ncap;
		}
		memset(&s->cmds[s->n], 0, sizeof(s->cmds[0]));
		rc = parse_words(w, (unsigned)nw, &s->cmds[s->n], line, err);
		if (rc)
			goto fail;
		s->n++;
	}
	*out = s;
	return 0;
fail:
	pvm_script_free(s);
	return rc;
}

int pvm_script_parse_file(const char *path, struct pvm_script **out, struct pvm_error *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc;
	char *text;
	size_t len = 0;

	if (fd < 0)
		return pvm_error_set(err, -errno, "%s: %s", path, strerror(errno));
	text = pvm_malloc(PVM_SCRIPT_MAX_BYTES + 1);
	if (!text) {
		close(fd);
		return pvm_error_set(err, -ENOMEM, "out of memory");
	}
	for (;;) {
		ssize_t r = read(fd, text + len, PVM_SCRIPT_MAX_BYTES + 1 - len);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = pvm_error_set(err, -errno, "%s: %s", path, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		len += (size_t)r;
		if (len > PVM_SCRIPT_MAX_BYTES)
			break;
	}
	rc = pvm_script_parse(text, len, out, err);
	if (rc)
		pvm_error_prefix(err, "%s", path);
out:
	pvm_free(text);
	close(fd);
	return rc;
}

void pvm_script_free(struct pvm_script *s)
{
	if (!s)
		return;
	pvm_free(s->cmds);
	pvm_free(s);
}

/* A byte count as a person writes it: the largest binary suffix that keeps it whole ("1536M",
 * "4G", "0"), which pvm_size_parse() reads back to the same value. */
static const char *bytes_word(uint64_t v, char *out, size_t len)
{
	static const char units[] = "KMGTPE";
	int u = -1;

	while (v && u < 5 && v % 1024 == 0) {
		v /= 1024;
		u++;
	}
	if (u < 0)
		snprintf(out, len, "%llu", (unsigned long long)v);
	else
		snprintf(out, len, "%llu%c", (unsigned long long)v, units[u]);
	return out;
}

char *pvm_script_cmd_format(const struct pvm_script_cmd *c, char *buf, size_t len)
{
	unsigned long long sz = (unsigned long long)c->size;
	char b[32];

	bytes_word(c->size, b, sizeof(b));
	switch (c->op) {
	case PVM_SCRIPT_SET_SIZE:
		snprintf(buf, len, "set-size %s %s", c->id, b);
		break;
	case PVM_SCRIPT_BALLOON:
	case PVM_SCRIPT_GUEST_USE:
		snprintf(buf, len, "%s %s", pvm_script_op_name(c->op), b);
		break;
	case PVM_SCRIPT_SETTLE:
	case PVM_SCRIPT_SLEEP:
		snprintf(buf, len, "%s %llu", pvm_script_op_name(c->op), sz);
		break;
	case PVM_SCRIPT_ATTACH:
		snprintf(buf, len, "attach %s %s", c->id, pvm_script_hostdev_name(c->kind));
		break;
	case PVM_SCRIPT_DETACH:
		snprintf(buf, len, "detach %s", c->id);
		break;
	case PVM_SCRIPT_VIOMMU:
		snprintf(buf, len, "viommu %s", c->flag ? "on" : "off");
		break;
	case PVM_SCRIPT_RESET:
		snprintf(buf, len, "reset");
		break;
	case PVM_SCRIPT_EXPECT:
		switch (c->what) {
		case PVM_EXPECT_PLUGGED:
		case PVM_EXPECT_REQUESTED:
		case PVM_EXPECT_USABLE:
		case PVM_EXPECT_DMA_MAPPED:
			snprintf(buf, len, "expect %s %s %s", pvm_script_expect_name(c->what), c->id, b);
			break;
		case PVM_EXPECT_MEMLOCK:
			if (c->memlock == PVM_SCRIPT_MEMLOCK_UNLIMITED)
				snprintf(buf, len, "expect memlock unlimited");
			else if (c->memlock == PVM_SCRIPT_MEMLOCK_NONE)
				snprintf(buf, len, "expect memlock none");
			else
				snprintf(buf, len, "expect memlock %s", b);
			break;
		case PVM_EXPECT_DISCARD_INHIBITED:
			snprintf(buf, len, "expect discard-inhibited %s", c->flag ? "yes" : "no");
			break;
		default:
			snprintf(buf, len, "expect %s %s", pvm_script_expect_name(c->what), b);
			break;
		}
		break;
	default:
		snprintf(buf, len, "?");
	}
	return buf;
}

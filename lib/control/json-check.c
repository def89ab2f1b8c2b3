/* SPDX-License-Identifier: MIT */
/*
 * Strict checks json-c does not make: duplicate keys in one object and excessive nesting. The
 * text was already accepted by json-c, so this scanner only needs to track strings, object
 * nesting and which keys each open object has seen.
 */
#include <errno.h>
#include <string.h>

#include "control/qmp.h"
#include "core/util.h"

/* Keys of one open object: pointers into the text (start, length). */
struct key_set {
	const char **start;   /* key starts (after the opening quote) */
	size_t *len;          /* key lengths in raw (escaped) form */
	size_t n, cap;        /* used, allocated */
	bool is_object;       /* false for arrays (no keys) */
	bool expect_key;      /* inside an object, the next string is a key */
};

/* Length of the string starting after its opening quote at @p; -1 if unterminated. */
static long string_len(const char *p, const char *end)
{
	const char *q = p;

	while (q < end && *q != '"') {
		if (*q == '\\')
			q++;
		q++;
	}
	return q < end ? q - p : -1;
}

static int add_key(struct key_set *ks, const char *k, size_t len, struct pvm_error *err)
{
	for (size_t i = 0; i < ks->n; i++) {
		if (ks->len[i] == len && !memcmp(ks->start[i], k, len))
			return pvm_error_set(err, -EINVAL, "JSON parse error, duplicate key '%.*s'",
					     (int)PVM_MIN(len, 64), k);
	}
	if (ks->n == ks->cap) {
		size_t cap = ks->cap ? ks->cap * 2 : 8;
		const char **s = pvm_reallocarray(ks->start, cap, sizeof(*s));
		size_t *l;

		if (!s)
			return -ENOMEM;
		ks->start = s;
		l = pvm_reallocarray(ks->len, cap, sizeof(*l));
		if (!l)
			return -ENOMEM;
		ks->len = l;
		ks->cap = cap;
	}
	ks->start[ks->n] = k;
	ks->len[ks->n++] = len;
	return 0;
}

int pvm_json_check_text(const char *text, size_t len, int max_depth, struct pvm_error *err)
{
	struct key_set *stack;
	const char *p = text, *end = text + len;
	int depth = 0, rc = 0;

	stack = pvm_calloc((size_t)max_depth + 1, sizeof(*stack));
	if (!stack)
		return -ENOMEM;
	while (p < end && rc == 0) {
		char c = *p++;
		long sl;

		switch (c) {
		case '{':
		case '[':
			if (depth >= max_depth) {
				rc = pvm_error_set(err, -EINVAL, "JSON parse error, nesting deeper than %d",
						   max_depth);
				break;
			}
			depth++;
			stack[depth].n = 0;
			stack[depth].is_object = c == '{';
			stack[depth].expect_key = c == '{';
			break;
		case '}':
		case ']':
			if (depth > 0)
				depth--;
			break;
		case ',':
			if (depth > 0 && stack[depth].is_object)
				stack[depth].expect_key = true;
			break;
		case '"':
			sl = string_len(p, end);
			if (sl < 0) {
				p = end;
				break;
			}
			if (depth > 0 && stack[depth].is_object && stack[depth].expect_key) {
				rc = add_key(&stack[depth], p, (size_t)sl, err);
				stack[depth].expect_key = false;
			}
			p += sl + 1;
			break;
		default:
			break;
		}
	}
	for (int i = 0; i <= max_depth; i++) {
		pvm_free(stack[i].start);
		pvm_free(stack[i].len);
	}
	pvm_free(stack);
	return rc;
}

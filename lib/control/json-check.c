/* SPDX-License-Identifier: MIT */
/*
 * Strict checks json-c does not make: duplicate keys in one object and excessive nesting. The
 * text was already accepted by json-c, so this scanner only needs to track strings, object
 * nesting and which keys each open object has seen.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "control/qmp.h"
#include "core/util.h"

/* A key as it appears in the text: start (after the opening quote) and raw (escaped) length. */
struct key {
	const char *start;   /* first byte of the key */
	size_t len;          /* its length */
};

/* Keys of one open object. */
struct key_set {
	struct key *keys;     /* keys seen so far, checked for duplicates when the object closes */
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

static int add_key(struct key_set *ks, const char *k, size_t len)
{
	if (ks->n == ks->cap) {
		size_t cap = ks->cap ? ks->cap * 2 : 8;
		struct key *keys = pvm_reallocarray(ks->keys, cap, sizeof(*keys));

		if (!keys)
			return -ENOMEM;
		ks->keys = keys;
		ks->cap = cap;
	}
	ks->keys[ks->n++] = (struct key){ .start = k, .len = len };
	return 0;
}

static int key_cmp(const void *a, const void *b)
{
	const struct key *x = a, *y = b;

	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return memcmp(x->start, y->start, x->len);
}

/*
 * The object of @ks closed: refuse a key that appears twice. Sorting makes this O(n log n);
 * comparing every new key with all earlier ones (as this did first) let one 1 MiB command with
 * ~100k keys keep the machine loop busy for minutes.
 */
static int check_keys(struct key_set *ks, struct pvm_error *err)
{
	if (ks->n < 2)
		return 0;
	qsort(ks->keys, ks->n, sizeof(*ks->keys), key_cmp);
	for (size_t i = 1; i < ks->n; i++) {
		const struct key *k = &ks->keys[i];

		if (!key_cmp(k, &ks->keys[i - 1]))
			return pvm_error_set(err, -EINVAL, "JSON parse error, duplicate key '%.*s'",
					     (int)PVM_MIN(k->len, 64), k->start);
	}
	return 0;
}

/* Offset of the first byte that is not part of well-formed UTF-8 (RFC 3629: no overlong forms,
 * no surrogates, nothing above U+10FFFF), or @len when all of it is. */
static size_t utf8_invalid_at(const unsigned char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		size_t n;
		uint32_t cp, min;

		if (c < 0x80) {
			i++;
			continue;
		}
		if ((c & 0xe0) == 0xc0) {
			n = 1, cp = c & 0x1f, min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			n = 2, cp = c & 0x0f, min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			n = 3, cp = c & 0x07, min = 0x10000;
		} else {
			return i;
		}
		if (len - i <= n)
			return i;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return i;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return i;
		i += n + 1;
	}
	return len;
}

int pvm_json_check_text(const char *text, size_t len, int max_depth, struct pvm_error *err)
{
	struct key_set *stack;
	const char *p = text, *end = text + len;
	int depth = 0, rc = 0;
	size_t bad = utf8_invalid_at((const unsigned char *)text, len);

	/* JSON text is UTF-8 (RFC 8259); QEMU's parser refuses anything else, and echoing such
	 * bytes back (a command name in an error) would make the reply invalid JSON. */
	if (bad < len)
		return pvm_error_set(err, -EINVAL, "JSON parse error, invalid UTF-8 sequence at byte %zu", bad);
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
			if (depth > 0) {
				if (stack[depth].is_object)
					rc = check_keys(&stack[depth], err);
				depth--;
			}
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
				if (add_key(&stack[depth], p, (size_t)sl) < 0)
					rc = pvm_error_set(err, -ENOMEM, "out of memory");
				stack[depth].expect_key = false;
			}
			p += sl + 1;
			break;
		default:
			break;
		}
	}
	for (int i = 0; i <= max_depth; i++)
		pvm_free(stack[i].keys);
	pvm_free(stack);
	return rc;
}

/* SPDX-License-Identifier: MIT */
/*
 * QMP protocol cases: each feeds client text to a fresh session over a small test command set
 * and compares every reply with the expected JSON (compared as JSON, not as text). Errors must
 * come before any side effect: the "touch" command counts its executions.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test-util.h"
#include "control/qmp.h"
#include "core/util.h"

struct out {
	char text[65536];   /* everything the session wrote */
	size_t len;         /* bytes used */
	int touched;        /* side effects of the "touch" command */
};

static int out_write(void *opaque, const char *data, size_t len)
{
	struct out *o = opaque;

	if (o->len + len >= sizeof(o->text))
		return -ENOBUFS;
	memcpy(o->text + o->len, data, len);
	o->len += len;
	o->text[o->len] = '\0';
	return 0;
}

static int cmd_touch(void *opaque, struct pvm_qmp_call *call, json_object *args,
		     json_object **ret, struct pvm_error *err)
{
	struct out *o = opaque;
	uint64_t size;

	if (pvm_qmp_arg_size(args, "size", &size, err) < 0)
		return -EINVAL;
	if (!strcmp(pvm_qmp_arg_str(args, "id", ""), "missing")) {
		pvm_qmp_set_class(call, "DeviceNotFound");
		return pvm_error_set(err, -ENODEV, "Device 'missing' not found");
	}
	o->touched++;
	*ret = json_object_new_object();
	json_object_object_add(*ret, "size", json_object_new_uint64(size));
	return 0;
}

static int cmd_quit(void *opaque, struct pvm_qmp_call *call, json_object *args,
		    json_object **ret, struct pvm_error *err)
{
	pvm_qmp_request_quit(call);
	return 0;
}

static const struct pvm_qmp_command test_cmds[] = {
	{ "touch", cmd_touch, (const struct pvm_qmp_param[]){
		{ "id", PVM_QMP_T_STR, false }, { "size", PVM_QMP_T_SIZE, false },
		{ "force", PVM_QMP_T_BOOL, true }, { 0 } } },
	{ "quit", cmd_quit, NULL },
	{ 0 },
};

#define NEG "{\"execute\":\"qmp_capabilities\"}\n"
#define NEG_OK "{\"return\": {}}"

static const struct qmp_case {
	const char *name;       /* what the case shows */
	const char *input;      /* client text */
	const char *expect[6];  /* replies in order (JSON) */
	int touched;            /* executions of "touch" expected */
} cases[] = {
	{ "negotiation required", "{\"execute\":\"touch\",\"arguments\":{\"id\":\"a\",\"size\":1}}",
	  { "{\"error\":{\"class\":\"CommandNotFound\",\"desc\":\"Expecting capabilities negotiation with 'qmp_capabilities'\"}}" }, 0 },
	{ "negotiate then command with id", NEG "{\"execute\":\"touch\",\"arguments\":{\"id\":\"a\",\"size\":\"2M\"},\"id\":7}",
	  { NEG_OK, "{\"return\":{\"size\":2097152},\"id\":7}" }, 1 },
	{ "negotiate twice", NEG NEG,
	  { NEG_OK, "{\"error\":{\"class\":\"CommandNotFound\",\"desc\":\"Capabilities negotiation is already complete, command ignored\"}}" }, 0 },
	{ "unknown command", NEG "{\"execute\":\"frobnicate\",\"id\":\"x\"}",
	  { NEG_OK, "{\"error\":{\"class\":\"CommandNotFound\",\"desc\":\"The command frobnicate has not been found\"},\"id\":\"x\"}" }, 0 },
	{ "malformed JSON, then recovery on the next line", NEG "{\"execute\": ]\n{\"execute\":\"touch\",\"arguments\":{\"id\":\"a\",\"size\":1}}\n",
	  { NEG_OK, "*GenericError", "{\"return\":{\"size\":1}}" }, 1 },
	{ "not an object", NEG "[1,2]\n",
	  { NEG_OK, "{\"error\":{\"class\":\"GenericError\",\"desc\":\"QMP input must be a JSON object\"}}" }, 0 },
	{ "execute not a string", NEG "{\"execute\":1}",
	  { NEG_OK, "{\"error\":{\"class\":\"GenericError\",\"desc\":\"QMP input member 'execute' must be a string\"}}" }, 0 },
	{ "unexpected member", NEG "{\"execute\":\"touch\",\"bogus\":1}",
	  { NEG_OK, "{\"error\":{\"class\":\"GenericError\",\"desc\":\"QMP input member 'bogus' is unexpected\"}}" }, 0 },
	{ "lacks execute", NEG "{\"arguments\":{}}",
	  { NEG_OK, "{\"error\":{\"class\":\"GenericError\",\"desc\":\"QMP input lacks member 'execute'\"}}" }, 0 },
	{ "arguments not an object", NEG "{\"execute\":\"touch\",\"arguments\":[]}",
	  { NEG_OK, "{\"error\":{\"class\":\"GenericError\",\"desc\":\"QMP input member 'arguments' must be an object\"}}" }, 0 },
	{ "missing parameter", NEG "{\"execute\":\"touch\",\"arguments\":{\"id\":\"a\"}}",
	  { NEG_OK, "{\"error\":{\"class\":\"GenericError\",\"desc\":\"Parameter 'size' is missing\"}}" }, 0 },
	{ "wrong type", NEG "{\"execute\":\"touch\",\"arguments\":{\"id\":5,\"size\":1}}",
	  { NEG_OK, "{\"error\":{\"class\":\"GenericError\",\"desc\":\"Invalid parameter type for 'id', expected: string\"}}" }, 0 },
	{ "negative size", NEG "{\"execute\":\"touch\",\"arguments\":{\"id\":\"a\",\"size\":-1}}",
	  { NEG_OK, "{\"error\":{\"class\":\"GenericError\",\"desc\":\"Invalid parameter type for 'size', expected: size\"}}" }, 0 },
	{ "bad size string", NEG "{\"execute\":\"touch\",\"arguments\":{\"id\":\"a\",\"size\":\"lots\"}}",
	  { NEG_OK, "{\"error\":{\"class\":\"GenericError\",\"desc\":\"Parameter 'size' expects a size\"}}" }, 0 },
	{ "unexpected parameter", NEG "{\"execute\":\"touch\",\"arguments\":{\"id\":\"a\",\"size\":1,\"colour\":\"red\"}}",
	  { NEG_OK, "{\"error\":{\"class\":\"GenericError\",\"desc\":\"Parameter 'colour' is unexpected\"}}" }, 0 },
	{ "duplicate key refused", NEG "{\"execute\":\"touch\",\"arguments\":{\"id\":\"a\",\"size\":1,\"size\":2}}",
	  { NEG_OK, "{\"error\":{\"class\":\"GenericError\",\"desc\":\"JSON parse error, duplicate key 'size'\"}}" }, 0 },
	{ "duplicate execute refused", NEG "{\"execute\":\"quit\",\"execute\":\"touch\"}",
	  { NEG_OK, "{\"error\":{\"class\":\"GenericError\",\"desc\":\"JSON parse error, duplicate key 'execute'\"}}" }, 0 },
	{ "handler error class", NEG "{\"execute\":\"touch\",\"arguments\":{\"id\":\"missing\",\"size\":1}}",
	  { NEG_OK, "{\"error\":{\"class\":\"DeviceNotFound\",\"desc\":\"Device 'missing' not found\"}}" }, 0 },
	{ "two commands in one read", NEG "{\"execute\":\"touch\",\"arguments\":{\"id\":\"a\",\"size\":1}}{\"execute\":\"touch\",\"arguments\":{\"id\":\"b\",\"size\":2}}",
	  { NEG_OK, "{\"return\":{\"size\":1}}", "{\"return\":{\"size\":2}}" }, 2 },
	{ "deep nesting refused", NEG "{\"execute\":\"touch\",\"arguments\":{\"id\":\"a\",\"size\":1,\"x\":"
	  "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}}\n",
	  { NEG_OK, "*GenericError" }, 0 },
	{ "invalid UTF-8 refused before it could be echoed", NEG "{\"execute\":\"\xff\xfe\"}\n",
	  { NEG_OK, "{\"error\":{\"class\":\"GenericError\",\"desc\":\"JSON parse error, invalid UTF-8 sequence at byte 12\"}}" }, 0 },
	{ "overlong and surrogate UTF-8 refused", NEG "{\"execute\":\"\xc0\xaf\"}\n{\"execute\":\"\xed\xa0\x80\"}\n",
	  { NEG_OK, "*GenericError", "*GenericError" }, 0 },
	{ "valid UTF-8 names are echoed", NEG "{\"execute\":\"caf\xc3\xa9\"}\n",
	  { NEG_OK, "{\"error\":{\"class\":\"CommandNotFound\",\"desc\":\"The command caf\xc3\xa9 has not been found\"}}" }, 0 },
	{ "query-commands lists built-ins and ours", NEG "{\"execute\":\"query-commands\"}",
	  { NEG_OK, "{\"return\":[{\"name\":\"qmp_capabilities\"},{\"name\":\"query-commands\"},{\"name\":\"query-version\"},{\"name\":\"touch\"},{\"name\":\"quit\"}]}" }, 0 },
};

/* Compare the session's output lines with the expected replies. "*CLASS" matches any error of
 * that class. */
static void check_output(const struct qmp_case *c, const char *text)
{
	const char *p = text;
	int i;

	for (i = 0; i < 6 && c->expect[i]; i++) {
		const char *nl = strstr(p, "\r\n");
		char *line;
		json_object *got, *want;

		if (!nl)
			fail_msg("%s: reply %d missing; output was:\n%s", c->name, i, text);
		line = strndup(p, (size_t)(nl - p));
		got = json_tokener_parse(line);
		if (!got)
			fail_msg("%s: reply %d is not JSON: %s", c->name, i, line);
		if (c->expect[i][0] == '*') {
			json_object *e, *cls;

			if (!json_object_object_get_ex(got, "error", &e) ||
			    !json_object_object_get_ex(e, "class", &cls) ||
			    strcmp(json_object_get_string(cls), c->expect[i] + 1))
				fail_msg("%s: reply %d: expected a %s error, got %s", c->name, i,
					 c->expect[i] + 1, line);
		} else {
			want = json_tokener_parse(c->expect[i]);
			assert_non_null(want);
			if (!json_object_equal(got, want))
				fail_msg("%s: reply %d:\n got  %s\n want %s", c->name, i, line, c->expect[i]);
			json_object_put(want);
		}
		json_object_put(got);
		free(line);
		p = nl + 2;
	}
	if (*p)
		fail_msg("%s: unexpected extra output: %s", c->name, p);
}

static void test_cases(void **state)
{
	for (size_t i = 0; i < PVM_ARRAY_SIZE(cases); i++) {
		struct out o = { 0 };
		struct pvm_qmp_session *s;

		assert_int_equal(pvm_qmp_session_new(test_cmds, &o, out_write, &o, &s), 0);
		assert_int_equal(pvm_qmp_session_input(s, cases[i].input, strlen(cases[i].input)), 0);
		check_output(&cases[i], o.text);
		if (o.touched != cases[i].touched)
			fail_msg("%s: touch ran %d times, expected %d", cases[i].name, o.touched, cases[i].touched);
		pvm_qmp_session_free(s);
	}
}

/* The same transcript fed one byte at a time gives the same replies. */
static void test_byte_by_byte(void **state)
{
	const struct qmp_case *c = &cases[18];
	struct out o = { 0 };
	struct pvm_qmp_session *s;

	assert_int_equal(pvm_qmp_session_new(test_cmds, &o, out_write, &o, &s), 0);
	for (const char *p = c->input; *p; p++)
		assert_int_equal(pvm_qmp_session_input(s, p, 1), 0);
	check_output(c, o.text);
	pvm_qmp_session_free(s);
}

static void test_greeting_and_events(void **state)
{
	struct out o = { 0 };
	struct pvm_qmp_session *s;
	json_object *g, *q, *data = json_object_new_object();

	assert_int_equal(pvm_qmp_session_new(test_cmds, &o, out_write, &o, &s), 0);
	assert_int_equal(pvm_qmp_session_greet(s), 0);
	g = json_tokener_parse(o.text);
	assert_true(json_object_object_get_ex(g, "QMP", &q));
	json_object_put(g);
	o.len = 0;
	o.text[0] = '\0';
	/* Events are held back until negotiation completes. */
	json_object_object_add(data, "actual", json_object_new_int64(42));
	assert_int_equal(pvm_qmp_session_event(s, "BALLOON_CHANGE", data), 0);
	assert_int_equal(o.len, 0);
	assert_int_equal(pvm_qmp_session_input(s, NEG, strlen(NEG)), 0);
	assert_int_equal(pvm_qmp_session_event(s, "BALLOON_CHANGE", data), 0);
	assert_non_null(strstr(o.text, "\"event\":\"BALLOON_CHANGE\""));
	assert_non_null(strstr(o.text, "\"data\":{\"actual\":42}"));
	assert_non_null(strstr(o.text, "\"timestamp\":{\"seconds\":"));
	json_object_put(data);
	pvm_qmp_session_free(s);
}

static void test_huge_input_refused_and_recovers(void **state)
{
	struct out o = { 0 };
	struct pvm_qmp_session *s;
	size_t n = PVM_QMP_MAX_INPUT + 4096;
	char *big = malloc(n + 200);
	const char *next = "\n{\"execute\":\"quit\"}";

	assert_non_null(big);
	assert_int_equal(pvm_qmp_session_new(test_cmds, &o, out_write, &o, &s), 0);
	assert_int_equal(pvm_qmp_session_input(s, NEG, strlen(NEG)), 0);
	strcpy(big, "{\"execute\":\"touch\",\"arguments\":{\"id\":\"");
	memset(big + strlen(big), 'a', n);
	big[n] = '\0';
	for (size_t off = 0; off < n; off += 65536)
		assert_int_equal(pvm_qmp_session_input(s, big + off, PVM_MIN(65536, n - off)), 0);
	assert_int_equal(pvm_qmp_session_input(s, next, strlen(next)), 0);
	assert_non_null(strstr(o.text, "input too large"));
	assert_true(pvm_qmp_session_quit_requested(s));
	assert_int_equal(o.touched, 0);
	free(big);
	pvm_qmp_session_free(s);
}

static void test_json_check(void **state)
{
	struct pvm_error err = { 0 };
	const char *ok = "{\"a\":{\"a\":1},\"b\":[{\"a\":1},{\"a\":2}],\"s\":\"{\\\"a\\\":1,\\\"a\\\":2}\"}";
	const char *dup = "{\"a\":1,\"b\":{\"x\":1,\"x\":2}}";

	assert_int_equal(pvm_json_check_text(ok, strlen(ok), 8, &err), 0);
	assert_int_equal(pvm_json_check_text(dup, strlen(dup), 8, &err), -EINVAL);
	assert_string_equal(err.msg, "JSON parse error, duplicate key 'x'");
}

/* One object with 100k keys (a 1 MiB command): duplicates were found by comparing each key with
 * every earlier one, which kept the loop busy for minutes; now the check is O(n log n). The
 * duplicate of the first key comes last, so every key must be looked at. */
static void test_json_check_many_keys(void **state)
{
	struct pvm_error err = { 0 };
	size_t n = 100000, cap = n * 16 + 64, len = 0;
	char *text = malloc(cap);

	assert_non_null(text);
	text[len++] = '{';
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(text + len, cap - len, "%s\"k%zu\":0", i ? "," : "", i);
	len += (size_t)snprintf(text + len, cap - len, "}");
	assert_int_equal(pvm_json_check_text(text, len, 8, &err), 0);
	len--;
	len += (size_t)snprintf(text + len, cap - len, ",\"k0\":1}");
	assert_int_equal(pvm_json_check_text(text, len, 8, &err), -EINVAL);
	assert_string_equal(err.msg, "JSON parse error, duplicate key 'k0'");
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cases),
		cmocka_unit_test(test_byte_by_byte),
		cmocka_unit_test(test_greeting_and_events),
		cmocka_unit_test(test_huge_input_refused_and_recovers),
		cmocka_unit_test(test_json_check),
		cmocka_unit_test(test_json_check_many_keys),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/*
 * Control transcripts: every tests/conformance/control/transcripts/NAME.qmp file is a conversation
 * in the QMP spec's notation ("-> " client, "<- " server, "# " comment) replayed against a real
 * machine built from examples/default.xml (no guest, no memlock changes). Replies and events
 * are compared as JSON; the string "*" in an expected reply matches any value.
 * PVM_TEST_REGENERATE_OUTPUT=1 rewrites the files with what the server said (review the diff).
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test-util.h"
#include <pvmem/machine.h>
#include <pvmem/domain.h>
#include <pvmem/control.h>
#include "control/commands.h"
#include "core/util.h"

#define TRANSCRIPTS PVM_SOURCE_ROOT "/tests/conformance/control/transcripts"
#define MAX_LINES 512

struct outq {
	char *lines[MAX_LINES];   /* server messages not yet matched */
	int head, tail;           /* queue indices */
};

static int out_write(void *opaque, const char *data, size_t len)
{
	struct outq *q = opaque;

	if (q->tail >= MAX_LINES)
		return -ENOBUFS;
	q->lines[q->tail++] = strndup(data, len >= 2 ? len - 2 : len); /* drop "\r\n" */
	return 0;
}

struct runner {
	struct pvm_qmp_session *s;   /* the session under test */
};

static void on_event(void *opaque, const struct pvm_machine_event *ev)
{
	struct runner *r = opaque;
	const char *name;
	json_object *d = pvm_control_event_json(ev, &name);

	pvm_qmp_session_event(r->s, name, d);
	json_object_put(d);
}

/* JSON equality where an expected "*" string matches anything. */
static bool json_match(json_object *want, json_object *got)
{
	if (json_object_is_type(want, json_type_string) && !strcmp(json_object_get_string(want), "*"))
		return true;
	if (json_object_get_type(want) != json_object_get_type(got))
		return false;
	if (json_object_is_type(want, json_type_object)) {
		if (json_object_object_length(want) != json_object_object_length(got))
			return false;
		json_object_object_foreach(want, k, wv) {
			json_object *gv;

			if (!json_object_object_get_ex(got, k, &gv) || !json_match(wv, gv))
				return false;
		}
		return true;
	}
	if (json_object_is_type(want, json_type_array)) {
		if (json_object_array_length(want) != json_object_array_length(got))
			return false;
		for (size_t i = 0; i < json_object_array_length(want); i++)
			if (!json_match(json_object_array_get_idx(want, i), json_object_array_get_idx(got, i)))
				return false;
		return true;
	}
	return json_object_equal(want, got);
}

/* Write a server line for a regenerated transcript; event timestamps become "*". */
static void regen_line(FILE *out, const char *line)
{
	json_object *o = json_tokener_parse(line);

	if (o && json_object_object_get_ex(o, "timestamp", NULL)) {
		json_object_object_add(o, "timestamp", json_object_new_string("*"));
		fprintf(out, "<- %s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	} else {
		fprintf(out, "<- %s\n", line);
	}
	json_object_put(o);
}

static struct pvm_machine *make_machine(void)
{
	struct pvm_machine_opts opts = { .no_memlock = true };
	struct pvm_domain *dom;
	struct pvm_machine *m;
	struct pvm_error err = { 0 };

	if (pvm_domain_parse_file(PVM_SOURCE_ROOT "/examples/default.xml", 0, &dom, &err) < 0)
		fail_msg("default.xml: %s", pvm_error_message(&err));
	if (pvm_machine_new(dom, &opts, &m, &err) < 0)
		fail_msg("machine: %s", pvm_error_message(&err));
	pvm_domain_free(dom);
	return m;
}

static int run_file(const char *path, bool regen)
{
	FILE *f = fopen(path, "r"), *out = NULL;
	struct outq q = { 0 };
	struct runner r = { 0 };
	struct pvm_machine *m = make_machine();
	struct pvm_control *c;
	char line[65536];
	int lineno = 0, failures = 0;
	char tmp[4200];

	assert_non_null(f);
	if (regen) {
		snprintf(tmp, sizeof(tmp), "%s.new", path);
		out = fopen(tmp, "w");
		assert_non_null(out);
	}
	assert_int_equal(pvm_control_new_detached(m, &c), 0);
	assert_int_equal(pvm_qmp_session_new(pvm_control_commands, c, out_write, &q, &r.s), 0);
	pvm_machine_set_event_handler(m, on_event, &r);
	assert_int_equal(pvm_qmp_session_greet(r.s), 0);
	while (fgets(line, sizeof(line), f)) {
		size_t n = strlen(line);

		lineno++;
		if (n && line[n - 1] == '\n')
			line[--n] = '\0';
		if (!strncmp(line, "-> ", 3)) {
			if (out)
				fprintf(out, "%s\n", line);
			assert_int_equal(pvm_qmp_session_input(r.s, line + 3, n - 3), 0);
			assert_int_equal(pvm_qmp_session_input(r.s, "\n", 1), 0);
		} else if (!strncmp(line, "<- ", 3)) {
			json_object *want = json_tokener_parse(line + 3), *got;

			if (!want)
				fail_msg("%s:%d: expected reply is not JSON", path, lineno);
			if (q.head == q.tail) {
				fprintf(stderr, "%s:%d: no reply; expected %s\n", path, lineno, line + 3);
				failures++;
				json_object_put(want);
				continue;
			}
			got = json_tokener_parse(q.lines[q.head]);
			if (out) {
				regen_line(out, q.lines[q.head]);
			} else if (!got || !json_match(want, got)) {
				fprintf(stderr, "%s:%d:\n  want %s\n  got  %s\n", path, lineno, line + 3,
					q.lines[q.head]);
				failures++;
			}
			free(q.lines[q.head++]);
			json_object_put(want);
			json_object_put(got);
		} else if (out) {
			fprintf(out, "%s\n", line);
		}
	}
	for (; q.head < q.tail; q.head++) {
		if (out)
			regen_line(out, q.lines[q.head]);
		else {
			fprintf(stderr, "%s: unexpected reply %s\n", path, q.lines[q.head]);
			failures++;
		}
		free(q.lines[q.head]);
	}
	fclose(f);
	if (out) {
		fclose(out);
		rename(tmp, path);
	}
	pvm_qmp_session_free(r.s);
	pvm_control_free(c);
	pvm_machine_free(m);
	return failures;
}

static void test_transcripts(void **state)
{
	bool regen = getenv("PVM_TEST_REGENERATE_OUTPUT") != NULL;
	struct dirent **names;
	int n = scandir(TRANSCRIPTS, &names, NULL, alphasort), files = 0, failures = 0;

	assert_true(n > 0);
	for (int i = 0; i < n; i++) {
		const char *d = names[i]->d_name;
		size_t len = strlen(d);

		if (len > 4 && !strcmp(d + len - 4, ".qmp")) {
			char path[4096];

			snprintf(path, sizeof(path), "%s/%s", TRANSCRIPTS, d);
			failures += run_file(path, regen);
			files++;
		}
		free(names[i]);
	}
	free(names);
	printf("transcripts: %d files, %d mismatches\n", files, failures);
	assert_true(files >= 5);
	assert_int_equal(failures, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_transcripts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "test-util.h"
#include "core/util.h"

struct seen {
	int count;          /* records received */
	char last[128];     /* "name msg" of the last one */
};

static void handler(void *opaque, const char *name, const char *msg)
{
	struct seen *s = opaque;

	s->count++;
	snprintf(s->last, sizeof(s->last), "%s %s", name, msg);
}

static void emit_both(void)
{
	PVM_TRACE(vmem_plug, "addr=0x%llx", 0x100000000ULL);
	PVM_TRACE(virtq_pop, "head=%d", 3);
}

static void test_patterns_select_points(void **state)
{
	struct seen s = { 0 };

	pvm_trace_set_handler(handler, &s);
	assert_int_equal(pvm_trace_set_patterns(NULL), 0);
	emit_both();
	assert_int_equal(s.count, 0);
	assert_int_equal(pvm_trace_set_patterns("vmem_*"), 0);
	emit_both();
	assert_int_equal(s.count, 1);
	assert_string_equal(s.last, "vmem_plug addr=0x100000000");
	assert_int_equal(pvm_trace_set_patterns("nothing, virtq_pop"), 0);
	emit_both();
	assert_int_equal(s.count, 2);
	assert_string_equal(s.last, "virtq_pop head=3");
	assert_int_equal(pvm_trace_set_patterns("*"), 0);
	emit_both();
	assert_int_equal(s.count, 4);
	pvm_trace_set_patterns("");
	pvm_trace_set_handler(NULL, NULL);
}

static void test_too_long_pattern_refused(void **state)
{
	char big[2000];

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(pvm_trace_set_patterns(big), -EINVAL);
}

struct logs { int n; enum pvm_log_level last; };

static void log_handler(void *opaque, enum pvm_log_level level, const char *msg)
{
	struct logs *l = opaque;
	l->n++;
	l->last = level;
}

static void test_log_level_filters(void **state)
{
	struct logs l = { 0 };

	pvm_log_set_handler(log_handler, &l);
	pvm_log_set_level(PVM_LOG_WARN);
	pvm_info("hidden");
	pvm_warn("shown %d", 1);
	assert_int_equal(l.n, 1);
	assert_int_equal(l.last, PVM_LOG_WARN);
	pvm_log_set_level(PVM_LOG_DEBUG);
	pvm_debug("now shown");
	assert_int_equal(l.n, 2);
	pvm_log_set_handler(NULL, NULL);
	pvm_log_set_level(PVM_LOG_WARN);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_patterns_select_points),
		cmocka_unit_test(test_too_long_pattern_refused),
		cmocka_unit_test(test_log_level_filters),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

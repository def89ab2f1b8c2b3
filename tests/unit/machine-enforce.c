/* SPDX-License-Identifier: MIT */
/*
 * Host enforcement inside a machine: a write into unplugged virtio-mem memory becomes an
 * UNPLUGGED_ACCESS event naming the right device and guest address (with two devices, the
 * second's region), the audit sees what an "allow" policy let in, "deny" stops the writer with
 * SIGBUS (in a child, so the test survives), and boot RAM never traps. The machine is the default one of `pvmem run`: enforcement is on by default.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test-util.h"
#include <pvmem/machine.h>
#include <pvmem/virtio-mem.h>
#include "machine/machine-priv.h"

static const char two_devices[] =
	"<domain type='kvm'><name>enf</name><memory unit='MiB'>640</memory>"
	"<os><type arch='x86_64'>hvm</type></os>"
	"<cpu><numa><cell id='0' cpus='0' memory='64' unit='MiB'/>"
	"<cell id='1' cpus='1' memory='64' unit='MiB'/></numa></cpu><devices>"
	"<memory model='virtio-mem'><target><size unit='MiB'>256</size><node>0</node>"
	"<block unit='MiB'>2</block><requested unit='MiB'>0</requested></target><alias name='vmem0'/></memory>"
	"<memory model='virtio-mem'><target><size unit='MiB'>256</size><node>1</node>"
	"<block unit='MiB'>2</block><requested unit='MiB'>0</requested></target><alias name='vmem1'/></memory>"
	"</devices></domain>";

struct seen {
	int n;             /* UNPLUGGED_ACCESS events */
	char id[32];       /* device of the last one */
	uint64_t gpa;      /* its address */
};

static void on_event(void *opaque, const struct pvm_machine_event *ev)
{
	struct seen *s = opaque;

	if (ev->kind != PVM_MACHINE_EVENT_UNPLUGGED_ACCESS)
		return;
	s->n++;
	snprintf(s->id, sizeof(s->id), "%s", ev->id ? ev->id : "");
	s->gpa = ev->gpa;
}

static struct pvm_machine *make(enum pvm_enforce_policy policy)
{
	struct pvm_machine_opts o = { .no_memlock = true, .enforce_policy = policy };
	struct pvm_error err = { 0 };
	struct pvm_domain *dom;
	struct pvm_machine *m = NULL;

	if (pvm_domain_parse_memory(two_devices, strlen(two_devices), PVM_DOMAIN_PARSE_NO_HOST, &dom, &err) ||
	    pvm_machine_new(dom, &o, &m, &err))
		fail_msg("machine: %s", pvm_error_message(&err));
	pvm_domain_free(dom);
	return m;
}

static volatile char *host(struct pvm_machine *m, size_t dev, uint64_t offset)
{
	return (volatile char *)pvm_mem_region_host(m->vmems[dev].region) + offset;
}

static void test_default_mode_is_enforcing(void **state)
{
	struct pvm_machine *m = make(PVM_ENFORCE_DENY);
	struct pvm_vmem_info info;

	pvm_vmem_get_info(m->vmems[0].vmem, &info);
	print_message("enforcement mode: %s\n", pvm_enforce_mode_name(info.enforce));
	assert_true(info.enforce == PVM_ENFORCE_UFFD || info.enforce == PVM_ENFORCE_MPROTECT);
	pvm_machine_free(m);
}

static void test_allow_reports_device_and_address(void **state)
{
	struct pvm_machine *m = make(PVM_ENFORCE_ALLOW);
	struct seen s = { 0 };
	struct pvm_machine_audit a;

	pvm_machine_set_event_handler(m, on_event, &s);
	/* Second device, 6 MiB + 123 bytes into its region: unplugged. */
	host(m, 1, 6 * PVM_MiB + 123)[0] = 1;
	for (int i = 0; i < 100 && s.n == 0; i++)
		assert_int_equal(pvm_machine_run_once(m, 10), 0);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.id, "vmem1");
	assert_int_equal(s.gpa, m->vmems[1].gpa + 6 * PVM_MiB);
	/* "allow" let the page in: the audit must see it. */
	assert_int_equal(pvm_machine_audit(m, &a, NULL), 0);
	assert_true(a.resident_unplugged >= 4096);
	pvm_machine_free(m);
}

/* Nothing resident in unplugged memory at start, and boot RAM (not virtio-mem) never traps. */
static void test_ram_writes_do_not_trap(void **state)
{
	struct pvm_machine *m = make(PVM_ENFORCE_ALLOW);
	struct seen s = { 0 };
	struct pvm_machine_audit a;

	pvm_machine_set_event_handler(m, on_event, &s);
	assert_int_equal(pvm_machine_audit(m, &a, NULL), 0);
	assert_int_equal(a.resident_unplugged, 0);
	((volatile char *)pvm_mem_region_host(m->ram))[4096] = 7;
	assert_int_equal(pvm_machine_run_once(m, 0), 0);
	assert_int_equal(s.n, 0);
	pvm_machine_free(m);
}

static void test_deny_stops_the_writer(void **state)
{
	pid_t pid = fork();
	int status;

	assert_true(pid >= 0);
	if (pid == 0) {
		/* Built after fork: the child has its own enforcer thread. The default action of
		 * the signals, not cmocka's handlers, so that the parent sees how the child ended. */
		struct pvm_machine *m;

		signal(SIGBUS, SIG_DFL);
		signal(SIGSEGV, SIG_DFL);
		m = make(PVM_ENFORCE_DENY);
		host(m, 0, 0)[0] = 1;   /* must not return */
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (WIFEXITED(status))
		fail_msg("the write into unplugged memory succeeded (exit %d)", WEXITSTATUS(status));
	assert_true(WIFSIGNALED(status));
	print_message("writer stopped by signal %d\n", WTERMSIG(status));
	assert_true(WTERMSIG(status) == SIGBUS || WTERMSIG(status) == SIGSEGV);
}

static void test_bad_options_refused(void **state)
{
	struct pvm_machine_opts o = { .no_memlock = true, .enforce = (enum pvm_machine_enforce)9 };
	struct pvm_error err = { 0 };
	struct pvm_domain *dom;
	struct pvm_machine *m = NULL;

	assert_int_equal(pvm_domain_parse_memory(two_devices, strlen(two_devices), PVM_DOMAIN_PARSE_NO_HOST,
						 &dom, NULL), 0);
	assert_int_equal(pvm_machine_new(dom, &o, &m, &err), -EINVAL);
	assert_null(m);
	assert_non_null(strstr(err.msg, "enforcement"));
	pvm_domain_free(dom);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_default_mode_is_enforcing),
		cmocka_unit_test(test_allow_reports_device_and_address),
		cmocka_unit_test(test_ram_writes_do_not_trap),
		cmocka_unit_test(test_deny_stops_the_writer),
		cmocka_unit_test(test_bad_options_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/*
 * libvirt's qemumemlocktest, replayed: every row of expected.tsv (case, arch, expected bytes)
 * parses qemumemlock-<case>.xml and must give exactly the value libvirt's
 * qemuDomainGetMemLockLimitBytes() returns (0 = leave the limit alone, "unlimited" =
 * VIR_DOMAIN_MEMORY_PARAM_UNLIMITED). The host is not consulted (no sysfs), as libvirt's test
 * mocks it: the hostdev is its own IOMMU group and no NVLink2 bridge.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test-util.h"
#include <pvmem/memlock.h>

static int check_case(const char *name, const char *arch, const char *expected)
{
	char path[4096];
	struct pvm_domain *dom = NULL;
	struct pvm_memlock_result *res = NULL;
	struct pvm_error err = { 0 };
	uint64_t sum = 0;
	int bad = 0;

	snprintf(path, sizeof(path), "%s/qemumemlock-%s.xml", PVM_MEMLOCK_CONF_DIR, name);
	if (pvm_domain_parse_file(path, PVM_DOMAIN_PARSE_NO_HOST, &dom, &err) < 0) {
		print_error("# %s: parse failed: %s\n", name, pvm_error_message(&err));
		return 1;
	}
	if (strcmp(pvm_arch_name(pvm_domain_arch(dom)), arch)) {
		print_error("# %s: arch %s, expected %s\n", name, pvm_arch_name(pvm_domain_arch(dom)), arch);
		bad = 1;
	}
	if (pvm_memlock_compute(dom, NULL, &res, &err) < 0) {
		print_error("# %s: compute failed: %s\n", name, pvm_error_message(&err));
		pvm_domain_free(dom);
		return 1;
	}
	if (!strcmp(expected, "unlimited")) {
		if (pvm_memlock_result_libvirt(res) != PVM_MEMLOCK_LIBVIRT_UNLIMITED ||
		    pvm_memlock_result_kind(res) != PVM_MEMLOCK_UNLIMITED)
			bad = 1;
	} else {
		uint64_t want = strtoull(expected, NULL, 10);

		if (pvm_memlock_result_libvirt(res) != want)
			bad = 1;
		if (want == 0 && pvm_memlock_result_kind(res) != PVM_MEMLOCK_NONE)
			bad = 1;
		if (want && (pvm_memlock_result_kind(res) != PVM_MEMLOCK_BYTES ||
			     pvm_memlock_result_bytes(res) != want))
			bad = 1;
		/* The explanation adds up to the limit. */
		for (size_t i = 0; i < pvm_memlock_result_term_count(res); i++)
			sum += pvm_memlock_result_term(res, i)->bytes;
		if (want && sum != want) {
			print_error("# %s: terms add up to %llu\n", name, (unsigned long long)sum);
			bad = 1;
		}
	}
	if (bad)
		print_error("# %s: got %llu (kind %d, rule %s), expected %s\n", name,
			    (unsigned long long)pvm_memlock_result_libvirt(res), (int)pvm_memlock_result_kind(res),
			    pvm_memlock_result_rule(res), expected);
	else
		print_message("# %s = %s\n", name, expected);
	pvm_memlock_result_free(res);
	pvm_domain_free(dom);
	return bad;
}

static void test_libvirt_cases(void **state)
{
	char line[512];
	int rows = 0, failed = 0;
	FILE *f = fopen(PVM_MEMLOCK_CONF_DIR "/expected.tsv", "r");

	if (!f)
		fail_msg("cannot open %s/expected.tsv: %s", PVM_MEMLOCK_CONF_DIR, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		char name[128], arch[32], expected[64];

		if (sscanf(line, "%127s %31s %63s", name, arch, expected) != 3 || !strcmp(name, "case"))
			continue;
		rows++;
		failed += check_case(name, arch, expected);
	}
	fclose(f);
	if (rows != 19)
		fail_msg("expected.tsv has %d cases, expected libvirt's 19", rows);
	if (failed)
		fail_msg("%d of %d libvirt cases differ", failed, rows);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_libvirt_cases),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

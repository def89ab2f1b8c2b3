/* SPDX-License-Identifier: MIT */
/*
 * A program as a user of the installed library writes it: only <pvmem/pvmem.h>, linked against
 * libpvmem.so. It proves the public headers stand alone (also as C++-compatible declarations
 * under -Wall -Wextra -Werror) and that the shared library exports what they declare, by
 * building a machine from a domain XML, resizing it and reading the result.
 */
#include <pvmem/pvmem.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

static const char xml[] =
	"<domain type='kvm'><name>api</name><memory unit='MiB'>384</memory>"
	"<os><type arch='x86_64'>hvm</type></os>"
	"<cpu><numa><cell id='0' cpus='0' memory='128' unit='MiB'/></numa></cpu>"
	"<devices><memory model='virtio-mem'><target><size unit='MiB'>256</size><node>0</node>"
	"<block unit='MiB'>2</block><requested unit='MiB'>0</requested></target>"
	"<alias name='vmem0'/></memory></devices></domain>";

int main(void)
{
	struct pvm_machine_opts opts = { .no_memlock = true };
	struct pvm_machine_memdev_info info;
	struct pvm_error err = { 0 };
	struct pvm_domain *dom = NULL;
	struct pvm_machine *m = NULL;
	int rc = 1;

	if (pvm_domain_parse_memory(xml, strlen(xml), PVM_DOMAIN_PARSE_NO_HOST, &dom, &err) < 0 ||
	    pvm_machine_new(dom, &opts, &m, &err) < 0 ||
	    pvm_machine_set_requested_size(m, "vmem0", 64ULL << 20, &err) < 0 ||
	    pvm_machine_memdev_info(m, 0, &info) < 0) {
		fprintf(stderr, "public-api: %s\n", pvm_error_message(&err));
		goto out;
	}
	if (info.requested_size != 64ULL << 20 || info.block_size != 2ULL << 20 ||
	    info.region_size != 256ULL << 20) {
		fprintf(stderr, "public-api: unexpected device figures\n");
		goto out;
	}
	/* An invalid size is refused with a message and changes nothing. */
	if (pvm_machine_set_requested_size(m, "vmem0", 3ULL << 20, &err) != -EINVAL || !err.msg[0]) {
		fprintf(stderr, "public-api: a misaligned size was not refused\n");
		goto out;
	}
	printf("public-api: libpvmem %s ok\n", pvm_version());
	rc = 0;
out:
	pvm_machine_free(m);
	pvm_domain_free(dom);
	return rc;
}

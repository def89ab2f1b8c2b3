/* SPDX-License-Identifier: MIT */
/*
 * Fuzz the libvirt domain XML path: parse (no host access), compute the memlock limit with both
 * accounting models, read every getter, then offer the same bytes as a hot-plug fragment to a
 * small domain and detach what was attached. Nothing may crash, leak or hang.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <pvmem/memlock.h>

#define MAX_INPUT (64 * 1024)

static void use_result(const struct pvm_domain *dom, enum pvm_memlock_model model)
{
	struct pvm_memlock_options o = { .model = model };
	struct pvm_memlock_result *r = NULL;
	volatile uint64_t sink = 0;

	if (pvm_memlock_compute(dom, &o, &r, NULL) < 0)
		return;
	sink += pvm_memlock_result_bytes(r) + pvm_memlock_result_libvirt(r);
	for (size_t i = 0; i < pvm_memlock_result_term_count(r); i++)
		sink += pvm_memlock_result_term(r, i)->bytes + strlen(pvm_memlock_result_term(r, i)->why);
	for (size_t i = 0; i < pvm_memlock_result_warning_count(r); i++)
		sink += strlen(pvm_memlock_result_warning(r, i));
	(void)sink;
	pvm_memlock_result_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char base[] = "<domain type='kvm'><maxMemory slots='4' unit='GiB'>64</maxMemory>"
				   "<memory unit='GiB'>4</memory></domain>";
	struct pvm_domain *dom = NULL;
	volatile uint64_t sink = 0;
	const char *id = NULL;

	if (size > MAX_INPUT)
		return 0;
	if (pvm_domain_parse_memory((const char *)data, size, PVM_DOMAIN_PARSE_NO_HOST, &dom, NULL) == 0) {
		sink += pvm_domain_memory(dom) + pvm_domain_current_memory(dom) + pvm_domain_max_memory(dom);
		sink += pvm_domain_memory_initial(dom) + pvm_domain_phb_count(dom) + pvm_domain_numa_nodes(dom);
		for (size_t i = 0; i < pvm_domain_memdev_count(dom); i++)
			sink += pvm_domain_memdev(dom, i)->size + strlen(pvm_domain_memdev(dom, i)->id);
		for (size_t i = 0; i < pvm_domain_pt_count(dom); i++)
			sink += strlen(pvm_domain_pt(dom, i)->id);
		use_result(dom, PVM_MEMLOCK_MODEL_TYPE1);
		use_result(dom, PVM_MEMLOCK_MODEL_IOMMUFD);
		pvm_domain_set_arch(dom, PVM_ARCH_PPC64);
		use_result(dom, PVM_MEMLOCK_MODEL_TYPE1);
		pvm_domain_free(dom);
		dom = NULL;
	}
	if (pvm_domain_parse_memory(base, sizeof(base) - 1, PVM_DOMAIN_PARSE_NO_HOST, &dom, NULL) == 0) {
		if (pvm_domain_attach_xml(dom, (const char *)data, size, &id, NULL) == 0) {
			use_result(dom, PVM_MEMLOCK_MODEL_TYPE1);
			pvm_domain_detach(dom, id, NULL);
		}
		pvm_domain_free(dom);
	}
	(void)sink;
	return 0;
}

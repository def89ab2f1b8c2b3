/* SPDX-License-Identifier: MIT */
/*
 * NUMA policy of a region, applied with mbind(2) right after the mapping is made and before
 * anything is populated, so that every page is allocated on the right node from the start.
 *
 * mbind() silently drops nodes that have no memory as long as one requested node is left, so a
 * typo in a node list would go unnoticed: every requested node is checked against the nodes this
 * process may allocate on (libnuma's numa_all_nodes_ptr) first, with a message naming it.
 */
#include <errno.h>
#include <inttypes.h>
#include <numa.h>
#include <numaif.h>
#include <stdio.h>
#include <string.h>

#include "core/util.h"
#include "mem/region-priv.h"

int pvm_mem_numa_check(enum pvm_mem_numa_mode mode, uint64_t nodes, struct pvm_error *err)
{
	if ((unsigned)mode > PVM_MEM_NUMA_INTERLEAVE)
		return pvm_error_set(err, -EINVAL, "unknown NUMA mode %d", (int)mode);
	if (mode == PVM_MEM_NUMA_DEFAULT) {
		if (nodes)
			return pvm_error_set(err, -EINVAL, "NUMA nodes given without a NUMA mode");
		return 0;
	}
	if (!nodes)
		return pvm_error_set(err, -EINVAL, "NUMA mode without nodes");
	if (numa_available() < 0)
		return pvm_error_set(err, -ENOSYS, "this kernel has no NUMA support");
	for (unsigned n = 0; n < 64; n++) {
		if (!(nodes >> n & 1))
			continue;
		if ((int)n > numa_max_node() || !numa_bitmask_isbitset(numa_all_nodes_ptr, n))
			return pvm_error_set(err, -EINVAL,
					     "NUMA node %u does not exist or has no memory for this process (nodes 0-%d)",
					     n, numa_max_node());
	}
	return 0;
}

int pvm_mem_numa_apply(const struct pvm_mem_region *r, uint64_t offset, uint64_t len,
		       struct pvm_error *err)
{
	unsigned long mask;
	int mode;

	switch (r->numa_mode) {
	case PVM_MEM_NUMA_BIND:
		mode = MPOL_BIND;
		mask = (unsigned long)r->numa_nodes;
		break;
	case PVM_MEM_NUMA_PREFERRED:
		/* One node: the lowest one given (the kernel takes the first anyway). */
		mode = MPOL_PREFERRED;
		mask = 1UL << __builtin_ctzll(r->numa_nodes);
		break;
	case PVM_MEM_NUMA_INTERLEAVE:
		mode = MPOL_INTERLEAVE;
		mask = (unsigned long)r->numa_nodes;
		break;
	default:
		return 0;
	}
	/* maxnode counts one more than the bits the kernel reads (it decrements it first). */
	if (mbind((uint8_t *)r->host + offset, (unsigned long)len, mode, &mask,
		  sizeof(mask) * 8 + 1, MPOL_MF_MOVE) != 0) {
		int e = errno;

		return pvm_error_set(err, e == ENOSYS ? -ENOSYS : -e,
				     "cannot set the NUMA policy of %s (nodes 0x%" PRIx64 "): %s", r->name,
				     r->numa_nodes, strerror(e));
	}
	return 0;
}

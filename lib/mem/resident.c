/* SPDX-License-Identifier: MIT */
/*
 * How much of a range holds host memory, the proof that a discard worked.
 *
 * pvm_mem_region_resident() asks mincore(2) about the mapping. For anonymous private memory that
 * is "mapped in this process's page tables". For shared memory (shmem, memfd, shared files)
 * mincore reports the page cache of the object behind the mapping, whether or not this process
 * touched the page: exactly the memory a discard must free. For hugetlb mappings it reports the
 * huge pages mapped here (a page that only another process mapped is not seen).
 *
 * pvm_mem_region_allocated() asks the backing file instead (lseek SEEK_DATA/SEEK_HOLE), which
 * also sees pages that no mapping has touched since they were written through the fd. hugetlbfs
 * reports no holes (every offset below EOF is "data"), so for hugetlb and for memory without a
 * shared file (anonymous, private file mappings) it answers like pvm_mem_region_resident().
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/util.h"
#include "mem/region-priv.h"

/* Base pages asked about per mincore() call (one byte each on the stack). */
#define MINCORE_BATCH 4096

static int mincore_bytes(const struct pvm_mem_region *r, uint64_t offset, uint64_t len,
			 uint64_t *bytes, struct pvm_error *err)
{
	unsigned char vec[MINCORE_BATCH];
	uint64_t page = pvm_mem_base_page_size();
	uint64_t total = 0;

	for (uint64_t at = 0; at < len;) {
		uint64_t n = PVM_MIN(len - at, MINCORE_BATCH * page);
		uint64_t pages = n / page;

		if (mincore((uint8_t *)r->host + offset + at, (size_t)n, vec) != 0) {
			int e = errno;

			return pvm_error_set(err, -e, "mincore of %s at 0x%" PRIx64 " failed: %s",
					     r->name, offset + at, strerror(e));
		}
		for (uint64_t i = 0; i < pages; i++)
			total += vec[i] & 1;
		at += n;
	}
	*bytes = total * page;
	return 0;
}

int pvm_mem_region_resident(const struct pvm_mem_region *r, uint64_t offset, uint64_t len,
			    uint64_t *bytes, struct pvm_error *err)
{
	int rc;

	if (!bytes)
		return pvm_error_set(err, -EINVAL, "resident: no result pointer");
	rc = pvm_mem_region_check_range(r, offset, len, "resident", err);
	if (rc < 0)
		return rc;
	rc = mincore_bytes(r, offset, len, bytes, err);
	PVM_TRACE(mem_region_resident, "name=%s offset=0x%" PRIx64 " len=0x%" PRIx64 " rc=%d bytes=0x%" PRIx64,
		  r->name, offset, len, rc, rc == 0 ? *bytes : 0);
	return rc;
}

/* Bytes of [offset, offset+len) of r->fd that are data, not holes. */
static int file_data_bytes(const struct pvm_mem_region *r, uint64_t offset, uint64_t len,
			   uint64_t *bytes, struct pvm_error *err)
{
	uint64_t end = offset + len, total = 0;
	off_t pos = (off_t)offset;

	while ((uint64_t)pos < end) {
		off_t data = lseek(r->fd, pos, SEEK_DATA), hole;

		if (data < 0 && errno == ENXIO)
			break;        /* no data at or after pos */
		if (data < 0)
			goto fail;
		if ((uint64_t)data >= end)
			break;
		hole = lseek(r->fd, data, SEEK_HOLE);
		if (hole < 0)
			goto fail;
		total += PVM_MIN((uint64_t)hole, end) - (uint64_t)data;
		pos = hole;
	}
	*bytes = total;
	return 0;
fail:
	return pvm_error_set(err, -errno, "cannot find the data in the file behind %s: %s", r->name,
			     strerror(errno));
}

int pvm_mem_region_allocated(const struct pvm_mem_region *r, uint64_t offset, uint64_t len,
			     uint64_t *bytes, struct pvm_error *err)
{
	int rc;

	if (!bytes)
		return pvm_error_set(err, -EINVAL, "allocated: no result pointer");
	rc = pvm_mem_region_check_range(r, offset, len, "allocated", err);
	if (rc < 0)
		return rc;
	if (r->fd >= 0 && r->shared && !r->hugetlb)
		rc = file_data_bytes(r, offset, len, bytes, err);
	else
		rc = mincore_bytes(r, offset, len, bytes, err);
	PVM_TRACE(mem_region_allocated, "name=%s offset=0x%" PRIx64 " len=0x%" PRIx64 " rc=%d bytes=0x%" PRIx64,
		  r->name, offset, len, rc, rc == 0 ? *bytes : 0);
	return rc;
}

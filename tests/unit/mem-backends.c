/* SPDX-License-Identifier: MIT */
/*
 * Discard really frees memory, per backend. Each case populates a region, checks what the
 * library says (pvm_mem_region_resident/allocated) against what the kernel says on its own
 * (/proc/self/smaps for the region's mappings, /proc/self/status for the process, the backing
 * file's blocks, the hugetlb pool), discards a quarter and then everything, and checks that the
 * memory is gone, reads back as zeros, and that the rest kept its contents.
 *
 * hugetlb cases need free huge pages: as root, the pool is raised by 4 pages while each case
 * runs and lowered again afterwards (PVMEM_TEST_NO_HUGEPAGES=1 forbids that); hugetlbfs cases mount
 * hugetlbfs in a private mount namespace of this process when no mount exists. Otherwise they
 * are skipped with the reason.
 */
#include <sys/mman.h>
#include <sys/stat.h>

#include "mem-test-util.h"
#include "core/util.h"
#include <pvmem/mem.h>

#define MiB (1024ULL * 1024)

enum path_kind { PK_NONE, PK_TMPDIR, PK_HUGETLBFS };

struct backend_case {
	enum pvm_mem_backend backend;
	bool shared;
	bool hugetlb;                /* needs free huge pages */
	enum path_kind path;
	uint64_t size;
	const char *status_field;    /* the /proc/self/status counter the memory shows up in */
	bool file_blocks;            /* the backing file's st_blocks must fall too */
};

static const struct backend_case cases[] = {
	{ PVM_MEM_BACKEND_ANON, false, false, PK_NONE, 64 * MiB, "RssAnon", false },
	{ PVM_MEM_BACKEND_ANON, true, false, PK_NONE, 64 * MiB, "RssShmem", false },
	{ PVM_MEM_BACKEND_MEMFD, true, false, PK_NONE, 64 * MiB, "RssShmem", true },
	{ PVM_MEM_BACKEND_FILE, true, false, PK_TMPDIR, 64 * MiB, "RssFile", true },
	{ PVM_MEM_BACKEND_FILE, false, false, PK_TMPDIR, 64 * MiB, "RssAnon", false },
	{ PVM_MEM_BACKEND_ANON, false, true, PK_NONE, 8 * MiB, "HugetlbPages", false },
	{ PVM_MEM_BACKEND_ANON, true, true, PK_NONE, 8 * MiB, "HugetlbPages", false },
	{ PVM_MEM_BACKEND_MEMFD, true, true, PK_NONE, 8 * MiB, "HugetlbPages", false },
	{ PVM_MEM_BACKEND_HUGETLBFS, true, true, PK_HUGETLBFS, 8 * MiB, "HugetlbPages", false },
	{ PVM_MEM_BACKEND_FILE, true, true, PK_HUGETLBFS, 8 * MiB, "HugetlbPages", false },
	{ PVM_MEM_BACKEND_FILE, false, true, PK_HUGETLBFS, 8 * MiB, "HugetlbPages", false },
};

static char tmpdir[64];
static char hugedir[256];
static bool huge_mounted, have_hugefs;
static const char *hugefs_why = "";
static struct mt_hugetlb_pool case_pool;   /* pages the running case added to the pool */

static int group_setup(void **state)
{
	mt_tmpdir(tmpdir, sizeof(tmpdir));
	have_hugefs = mt_hugetlbfs_get(hugedir, sizeof(hugedir), &huge_mounted, &hugefs_why);
	return 0;
}

static int group_teardown(void **state)
{
	mt_hugetlbfs_put(hugedir, huge_mounted);
	mt_tmpdir_remove(tmpdir);
	return 0;
}

/* Also after a failed case: never leave the pool raised. */
static int case_teardown(void **state)
{
	mt_hugetlb_release(&case_pool);
	return 0;
}

static uint64_t file_bytes(int fd)
{
	struct stat st;

	assert_int_equal(fstat(fd, &st), 0);
	return (uint64_t)st.st_blocks * 512;
}

static uint64_t resident(struct pvm_mem_region *r, uint64_t off, uint64_t len)
{
	uint64_t b = ~0ULL;
	struct pvm_error err = { 0 };

	if (pvm_mem_region_resident(r, off, len, &b, &err) != 0)
		fail_msg("resident: %s", err.msg);
	return b;
}

static uint64_t allocated(struct pvm_mem_region *r, uint64_t off, uint64_t len)
{
	uint64_t b = ~0ULL;
	struct pvm_error err = { 0 };

	if (pvm_mem_region_allocated(r, off, len, &b, &err) != 0)
		fail_msg("allocated: %s", err.msg);
	return b;
}

/* The process-wide counters lag a little (per-CPU batches): demand 3/4 of the change. */
static void expect_status_fell(const char *field, uint64_t before, uint64_t by)
{
	uint64_t now = mt_status_bytes(field);

	if (now + by * 3 / 4 > before)
		fail_msg("%s fell from %" PRIu64 " to %" PRIu64 ", expected by %" PRIu64, field,
			 before, now, by);
}

static void test_discard_frees(void **state)
{
	const struct backend_case *c = *state;
	struct pvm_mem_region_config cfg = {
		.name = "dt", .backend = c->backend, .shared = c->shared, .size = c->size,
		.hugetlb = c->hugetlb && (c->backend == PVM_MEM_BACKEND_ANON ||
					  c->backend == PVM_MEM_BACKEND_MEMFD),
		/* hugetlb: reserved at mmap time, so that nobody else can take the pages between
		 * populate and use (test programs run in parallel). */
		.noreserve = !c->hugetlb,
		.path = c->path == PK_TMPDIR ? tmpdir : c->path == PK_HUGETLBFS ? hugedir : NULL,
	};
	const uint64_t size = c->size, q = size / 4;
	struct pvm_mem_region *r;
	struct pvm_error err = { 0 };
	uint64_t smaps0, smaps1, st0, file0 = 0, huge0 = 0;
	uint8_t *h;

	const char *why = "";

	if (c->path == PK_HUGETLBFS && !have_hugefs) {
		print_message("skipped: %s\n", hugefs_why);
		skip();
	}
	/* The pool is raised only while a case runs: other tests may want it empty. */
	if (c->hugetlb && !mt_hugetlb_get(&case_pool, 4, &why)) {
		print_message("skipped: %s\n", why);
		skip();
	}
	if (pvm_mem_region_new(&cfg, &r, &err) != 0)
		fail_msg("new: %s", err.msg);
	h = pvm_mem_region_host(r);
	assert_int_equal(pvm_mem_region_page_size(r), c->hugetlb ? 2 * MiB : 4096);
	assert_int_equal(resident(r, 0, size), 0);

	/* Populate through the library, then write a pattern everywhere. */
	assert_int_equal(pvm_mem_region_populate(r, 0, size, NULL, &err), 0);
	memset(h, 0xa5, size);
	assert_int_equal(resident(r, 0, size), size);
	assert_int_equal(allocated(r, 0, size), size);
	smaps0 = mt_smaps_bytes(h, size);
	assert_true(smaps0 >= size);
	st0 = mt_status_bytes(c->status_field);
	assert_true(st0 >= size);
	if (c->file_blocks) {
		file0 = file_bytes(pvm_mem_region_fd(r));
		assert_true(file0 >= size);
	}
	if (c->hugetlb)
		huge0 = mt_status_bytes("HugetlbPages");

	/* Discard the second quarter. */
	if (pvm_mem_region_discard(r, q, q, &err) != 0)
		fail_msg("discard: %s", err.msg);
	assert_int_equal(resident(r, q, q), 0);
	assert_int_equal(resident(r, 0, size), size - q);
	assert_int_equal(allocated(r, q, q), 0);
	assert_int_equal(allocated(r, 0, size), size - q);
	smaps1 = mt_smaps_bytes(h, size);
	if (smaps0 - smaps1 < q)
		fail_msg("smaps: %" PRIu64 " -> %" PRIu64 " bytes, expected a drop of %" PRIu64,
			 smaps0, smaps1, q);
	expect_status_fell(c->status_field, st0, q);
	if (c->file_blocks)
		assert_true(file0 - file_bytes(pvm_mem_region_fd(r)) >= q);
	/* Exact for hugetlb (an atomic per-process counter); the pool may be shared with others. */
	if (c->hugetlb)
		assert_int_equal(mt_status_bytes("HugetlbPages"), huge0 - q);
	/* Zeros where discarded, the pattern elsewhere. */
	assert_true(mt_all(h + q, q, 0));
	assert_true(mt_all(h, q, 0xa5));
	assert_true(mt_all(h + 2 * q, 2 * q, 0xa5));

	/* Discard everything: nothing left anywhere. */
	assert_int_equal(pvm_mem_region_discard(r, 0, size, &err), 0);
	assert_int_equal(resident(r, 0, size), 0);
	assert_int_equal(allocated(r, 0, size), 0);
	assert_true(smaps0 - mt_smaps_bytes(h, size) >= size);
	expect_status_fell(c->status_field, st0, size);
	if (c->file_blocks)
		assert_int_equal(file_bytes(pvm_mem_region_fd(r)), 0);
	assert_true(mt_all(h, size, 0));

	/* The memory comes back on use. */
	h[q] = 1;
	assert_int_equal(resident(r, q, c->hugetlb ? 2 * MiB : 4096), c->hugetlb ? 2 * MiB : 4096);
	assert_int_equal(h[q], 1);
	pvm_mem_region_free(r);
	mt_hugetlb_release(&case_pool);
	if (c->hugetlb)
		assert_int_equal(mt_status_bytes("HugetlbPages"), huge0 - size);
	assert_int_equal(mt_dir_entries(tmpdir), 0);
}

/* A private mapping of an existing file: discard gives zeros and never touches the file. */
static void test_private_file_keeps_file(void **state)
{
	char path[128];
	const uint64_t size = 8 * MiB;
	struct pvm_mem_region_config cfg = { .backend = PVM_MEM_BACKEND_FILE, .size = size,
					     .path = path, .keep_contents = true };
	struct pvm_mem_region *r;
	uint8_t *buf = malloc(size), *h;
	int fd;

	snprintf(path, sizeof(path), "%s/snapshot", tmpdir);
	fd = open(path, O_CREAT | O_RDWR, 0600);
	assert_true(fd >= 0);
	memset(buf, 0x5a, size);
	assert_int_equal(pwrite(fd, buf, size, 0), (ssize_t)size);
	assert_int_equal(pvm_mem_region_new(&cfg, &r, NULL), 0);
	h = pvm_mem_region_host(r);
	assert_false(pvm_mem_region_is_shared(r));
	assert_true(mt_all(h, size, 0x5a));          /* the snapshot's contents */
	memset(h + MiB, 0xa5, MiB);                   /* a private copy of one MiB */
	assert_int_equal(pvm_mem_region_discard(r, 0, 4 * MiB, NULL), 0);
	/* Before reading: a read maps the shared zero page, which mincore counts. */
	assert_int_equal(resident(r, 0, 4 * MiB), 0);
	assert_true(mt_all(h, 4 * MiB, 0));
	assert_true(mt_all(h + 4 * MiB, 4 * MiB, 0x5a));
	/* Discarding an already discarded range again is fine. */
	assert_int_equal(pvm_mem_region_discard(r, 2 * MiB, 4 * MiB, NULL), 0);
	assert_true(mt_all(h, 6 * MiB, 0));
	pvm_mem_region_free(r);
	assert_int_equal(pread(fd, buf, size, 0), (ssize_t)size);
	assert_true(mt_all(buf, size, 0x5a));         /* the file never changed */
	close(fd);
	unlink(path);
	free(buf);
}

/* keep_contents on a shared file: the region shows the file, discard punches it. */
static void test_shared_file_keeps_contents(void **state)
{
	char path[128];
	const uint64_t size = 4 * MiB;
	struct pvm_mem_region_config cfg = { .backend = PVM_MEM_BACKEND_FILE, .size = size,
					     .path = path, .keep_contents = true, .shared = true };
	struct pvm_mem_region *r;
	uint8_t *h, b;
	int fd;

	snprintf(path, sizeof(path), "%s/shared", tmpdir);
	fd = open(path, O_CREAT | O_RDWR, 0600);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "x", 1, 3 * MiB), 1);   /* shorter than the region: grown */
	assert_int_equal(pvm_mem_region_new(&cfg, &r, NULL), 0);
	h = pvm_mem_region_host(r);
	assert_int_equal(h[3 * MiB], 'x');
	/* Written through the fd, never mapped: allocated sees it. */
	assert_int_equal(pwrite(fd, "y", 1, MiB), 1);
	assert_int_equal(allocated(r, MiB, 4096), 4096);
	assert_int_equal(pvm_mem_region_discard(r, 3 * MiB, MiB, NULL), 0);
	assert_int_equal(pread(fd, &b, 1, 3 * MiB), 1);
	assert_int_equal(b, 0);
	assert_int_equal(allocated(r, 0, size), 4096);
	pvm_mem_region_free(r);
	close(fd);
	unlink(path);
}

#define CASE(i, label) { label, test_discard_frees, NULL, case_teardown, (void *)&cases[i] }

int main(void)
{
	const struct CMUnitTest tests[] = {
		CASE(0, "discard anon private (MADV_DONTNEED)"),
		CASE(1, "discard anon shared (MADV_REMOVE)"),
		CASE(2, "discard memfd (punch hole)"),
		CASE(3, "discard shared file (punch hole)"),
		CASE(4, "discard private file (anonymous remap)"),
		CASE(5, "discard anon private hugetlb"),
		CASE(6, "discard anon shared hugetlb"),
		CASE(7, "discard memfd hugetlb"),
		CASE(8, "discard hugetlbfs directory"),
		CASE(9, "discard shared file on hugetlbfs"),
		CASE(10, "discard private file on hugetlbfs"),
		cmocka_unit_test(test_private_file_keeps_file),
		cmocka_unit_test(test_shared_file_keeps_contents),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

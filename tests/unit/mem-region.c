/* SPDX-License-Identifier: MIT */
/*
 * Guest memory regions: configuration errors, range checks, accessors, NUMA policy and
 * allocation torture. Every failure must leave nothing behind: no descriptor, no mapping, no file.
 */
#include <numa.h>
#include <numaif.h>
#include <sys/mman.h>

#include "mem-test-util.h"
#include "core/util.h"
#include "mem/region-priv.h"
#include <pvmem/mem.h>

#define MiB (1024ULL * 1024)

static char tmpdir[64];

static int setup(void **state)
{
	mt_tmpdir(tmpdir, sizeof(tmpdir));
	return 0;
}

static int teardown(void **state)
{
	mt_tmpdir_remove(tmpdir);
	return 0;
}

/* ---- configuration errors ------------------------------------------------------------------ */

enum cfg_path { P_NONE, P_TMPDIR, P_MISSING_FILE, P_MISSING_DIR, P_DEVNULL, P_NEWFILE };

struct cfg_case {
	const char *name;                  /* case name */
	enum pvm_mem_backend backend;
	uint64_t size;
	enum cfg_path path;
	bool hugetlb, keep, shared;
	uint64_t hugepage_size;
	enum pvm_mem_numa_mode numa_mode;
	uint64_t numa_nodes;
	int rc;                            /* expected result */
	const char *msg;                   /* expected in the message */
};

static const struct cfg_case cfg_cases[] = {
	{ "size 0", PVM_MEM_BACKEND_ANON, 0, P_NONE, .rc = -EINVAL, .msg = "size is 0" },
	{ "unaligned size", PVM_MEM_BACKEND_ANON, 4097, P_NONE, .rc = -EINVAL, .msg = "not a multiple of the page size" },
	{ "size too large", PVM_MEM_BACKEND_ANON, 1ULL << 63, P_NONE, .rc = -EINVAL, .msg = "too large" },
	{ "unknown backend", (enum pvm_mem_backend)9, MiB, P_NONE, .rc = -EINVAL, .msg = "unknown memory backend 9" },
	{ "file without path", PVM_MEM_BACKEND_FILE, MiB, P_NONE, .rc = -EINVAL, .msg = "file backend needs a path" },
	{ "hugetlbfs without path", PVM_MEM_BACKEND_HUGETLBFS, MiB, P_NONE, .rc = -EINVAL, .msg = "hugetlbfs backend needs a path" },
	{ "anon with path", PVM_MEM_BACKEND_ANON, MiB, P_TMPDIR, .rc = -EINVAL, .msg = "path is only for" },
	{ "keep_contents on memfd", PVM_MEM_BACKEND_MEMFD, MiB, P_NONE, .keep = true, .rc = -EINVAL, .msg = "keep_contents" },
	{ "missing file to keep", PVM_MEM_BACKEND_FILE, MiB, P_MISSING_FILE, .keep = true, .rc = -ENOENT, .msg = "cannot open" },
	{ "missing directory", PVM_MEM_BACKEND_FILE, MiB, P_MISSING_DIR, .rc = -ENOENT, .msg = "cannot open" },
	{ "not a regular file", PVM_MEM_BACKEND_FILE, MiB, P_DEVNULL, .rc = -EINVAL, .msg = "not a regular file" },
	{ "hugetlbfs on ext4", PVM_MEM_BACKEND_HUGETLBFS, 2 * MiB, P_TMPDIR, .rc = -EINVAL, .msg = "not on a hugetlbfs mount" },
	{ "hugetlb on file", PVM_MEM_BACKEND_FILE, 2 * MiB, P_TMPDIR, .hugetlb = true, .rc = -EINVAL, .msg = "use the hugetlbfs backend" },
	{ "hugepage size without hugetlb", PVM_MEM_BACKEND_ANON, 2 * MiB, P_NONE, .hugepage_size = 2 * MiB, .rc = -EINVAL, .msg = "without hugetlb" },
	{ "hugepage size not a power of 2", PVM_MEM_BACKEND_MEMFD, 6 * MiB, P_NONE, .hugetlb = true, .hugepage_size = 3 * MiB, .rc = -EINVAL, .msg = "not valid" },
	{ "hugepage size unknown (anon)", PVM_MEM_BACKEND_ANON, 4 * MiB, P_NONE, .hugetlb = true, .hugepage_size = 4 * MiB, .rc = -EINVAL, .msg = "no huge pages of 4096 KiB" },
	{ "hugepage size unknown (memfd)", PVM_MEM_BACKEND_MEMFD, 4 * MiB, P_NONE, .hugetlb = true, .hugepage_size = 4 * MiB, .rc = -EINVAL, .msg = "no huge pages of 4096 KiB" },
	{ "size not a multiple of the huge page", PVM_MEM_BACKEND_MEMFD, 3 * MiB, P_NONE, .hugetlb = true, .rc = -EINVAL, .msg = "page size 2097152" },
	{ "size not a multiple of the huge page (anon)", PVM_MEM_BACKEND_ANON, 3 * MiB, P_NONE, .hugetlb = true, .shared = true, .rc = -EINVAL, .msg = "page size 2097152" },
	{ "NUMA mode without nodes", PVM_MEM_BACKEND_ANON, MiB, P_NONE, .numa_mode = PVM_MEM_NUMA_BIND, .rc = -EINVAL, .msg = "without nodes" },
	{ "NUMA nodes without mode", PVM_MEM_BACKEND_ANON, MiB, P_NONE, .numa_nodes = 1, .rc = -EINVAL, .msg = "without a NUMA mode" },
	{ "unknown NUMA mode", PVM_MEM_BACKEND_ANON, MiB, P_NONE, .numa_mode = (enum pvm_mem_numa_mode)7, .numa_nodes = 1, .rc = -EINVAL, .msg = "unknown NUMA mode 7" },
	{ "NUMA node 5 missing", PVM_MEM_BACKEND_ANON, MiB, P_NONE, .numa_mode = PVM_MEM_NUMA_BIND, .numa_nodes = 1 << 5, .rc = -EINVAL, .msg = "NUMA node 5 does not exist" },
	{ "NUMA node 63 missing (file)", PVM_MEM_BACKEND_FILE, MiB, P_NEWFILE, .numa_mode = PVM_MEM_NUMA_INTERLEAVE, .numa_nodes = 1ULL | 1ULL << 63, .rc = -EINVAL, .msg = "NUMA node 63" },
	{ "NUMA node 1 missing (preferred)", PVM_MEM_BACKEND_MEMFD, MiB, P_NONE, .numa_mode = PVM_MEM_NUMA_PREFERRED, .numa_nodes = 2, .rc = -EINVAL, .msg = "NUMA node 1" },
};

static const char *case_path(enum cfg_path p, char *buf, size_t len)
{
	switch (p) {
	case P_TMPDIR: return tmpdir;
	case P_MISSING_FILE: snprintf(buf, len, "%s/missing", tmpdir); return buf;
	case P_MISSING_DIR: snprintf(buf, len, "%s/no/such/dir/file", tmpdir); return buf;
	case P_DEVNULL: return "/dev/null";
	case P_NEWFILE: snprintf(buf, len, "%s/new", tmpdir); return buf;
	default: return NULL;
	}
}

static void test_config_errors(void **state)
{
	if (numa_available() < 0)
		skip();
	/* Twice: the first pass may grow the allocator's own mappings (ASan, libnuma), the second
	 * must not change the count of mappings at all. */
	for (size_t i = 0; i < 2 * PVM_ARRAY_SIZE(cfg_cases); i++) {
		const struct cfg_case *c = &cfg_cases[i % PVM_ARRAY_SIZE(cfg_cases)];
		bool check_maps = i >= PVM_ARRAY_SIZE(cfg_cases);
		char buf[256];
		struct pvm_mem_region_config cfg = {
			.name = "t", .backend = c->backend, .size = c->size, .hugetlb = c->hugetlb,
			.keep_contents = c->keep, .shared = c->shared, .hugepage_size = c->hugepage_size,
			.numa_mode = c->numa_mode, .numa_nodes = c->numa_nodes, .noreserve = true,
		};
		struct pvm_mem_region *r = (struct pvm_mem_region *)&cfg; /* must become NULL */
		struct pvm_error err = { 0 };
		int fds = mt_count_fds(), maps = mt_count_maps(), rc;

		cfg.path = case_path(c->path, buf, sizeof(buf));
		rc = pvm_mem_region_new(&cfg, &r, &err);
		if (rc != c->rc || !strstr(err.msg, c->msg))
			fail_msg("case \"%s\": rc %d (want %d), message \"%s\" (want \"%s\")", c->name,
				 rc, c->rc, err.msg, c->msg);
		assert_int_equal(err.code, c->rc);
		assert_null(r);
		assert_int_equal(mt_count_fds(), fds);
		if (check_maps)
			assert_int_equal(mt_count_maps(), maps);
		assert_int_equal(mt_dir_entries(tmpdir), 0);
	}
}

static void test_null_arguments(void **state)
{
	struct pvm_mem_region_config cfg = { .size = MiB };
	struct pvm_mem_region *r;

	assert_int_equal(pvm_mem_region_new(NULL, &r, NULL), -EINVAL);
	assert_int_equal(pvm_mem_region_new(&cfg, NULL, NULL), -EINVAL);
	pvm_mem_region_free(NULL);
	assert_string_equal(pvm_mem_backend_name(PVM_MEM_BACKEND_HUGETLBFS), "hugetlbfs");
	assert_string_equal(pvm_mem_backend_name((enum pvm_mem_backend)42), "unknown");
}

/* ---- accessors ----------------------------------------------------------------------------- */

static void test_accessors(void **state)
{
	struct pvm_mem_region_config cfg = { .backend = PVM_MEM_BACKEND_MEMFD, .size = 6 * MiB };
	struct pvm_mem_region *r;
	struct pvm_error err = { 0 };

	assert_int_equal(pvm_mem_region_new(&cfg, &r, &err), 0);
	assert_string_equal(pvm_mem_region_name(r), "ram");
	assert_int_equal(pvm_mem_region_size(r), 6 * MiB);
	assert_int_equal(pvm_mem_region_page_size(r), sysconf(_SC_PAGESIZE));
	assert_int_equal(pvm_mem_region_backend(r), PVM_MEM_BACKEND_MEMFD);
	assert_true(pvm_mem_region_is_shared(r));
	assert_true(pvm_mem_region_fd(r) >= 0);
	/* Placed on a 2 MiB boundary so that THP can back it. */
	assert_int_equal((uintptr_t)pvm_mem_region_host(r) % (2 * MiB), 0);
	pvm_mem_region_free(r);

	cfg = (struct pvm_mem_region_config){ .name = "ram1", .size = MiB };
	assert_int_equal(pvm_mem_region_new(&cfg, &r, &err), 0);
	assert_string_equal(pvm_mem_region_name(r), "ram1");
	assert_false(pvm_mem_region_is_shared(r));
	assert_int_equal(pvm_mem_region_fd(r), -1);
	assert_int_equal(pvm_mem_region_backend(r), PVM_MEM_BACKEND_ANON);
	pvm_mem_region_free(r);
}

/* A hugetlb memfd needs no pool to exist with MAP_NORESERVE: its page size is the huge page. */
static void test_hugetlb_page_size(void **state)
{
	struct pvm_mem_region_config cfg = { .backend = PVM_MEM_BACKEND_MEMFD, .size = 4 * MiB,
					     .hugetlb = true, .noreserve = true };
	struct pvm_mem_region *r;
	struct pvm_error err = { 0 };
	int rc = pvm_mem_region_new(&cfg, &r, &err);

	if (rc == -ENOMEM || rc == -EINVAL)
		skip();
	assert_int_equal(rc, 0);
	assert_int_equal(pvm_mem_region_page_size(r), 2 * MiB);
	assert_int_equal(pvm_mem_region_discard(r, 4096, 2 * MiB, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "not aligned to the page size 0x200000"));
	assert_int_equal(pvm_mem_region_discard(r, 2 * MiB, 2 * MiB, NULL), 0);
	pvm_mem_region_free(r);
}

/* ---- ranges -------------------------------------------------------------------------------- */

struct range_case {
	const char *name;
	uint64_t offset, len;
	int rc;
	const char *msg;
};

#define RSIZE (16 * MiB)
static const struct range_case range_cases[] = {
	{ "whole region", 0, RSIZE, 0, NULL },
	{ "last page", RSIZE - 4096, 4096, 0, NULL },
	{ "empty at the end", RSIZE, 0, 0, NULL },
	{ "empty at the start", 0, 0, 0, NULL },
	{ "unaligned offset", 1, 4096, -EINVAL, "not aligned" },
	{ "unaligned length", 0, 4097, -EINVAL, "not aligned" },
	{ "one page past the end", RSIZE, 4096, -EINVAL, "outside" },
	{ "straddles the end", RSIZE - 4096, 8192, -EINVAL, "outside" },
	{ "offset past the end", RSIZE + 4096, 0, -EINVAL, "outside" },
	{ "offset + len wraps", UINT64_MAX - 4095, 8192, -EINVAL, "wraps" },
	{ "huge length wraps", 8192, UINT64_MAX & ~4095ULL, -EINVAL, "wraps" },
	{ "huge length", 0, UINT64_MAX & ~4095ULL, -EINVAL, "outside" },
};

static void test_range_checks(void **state)
{
	struct pvm_mem_region_config cfg = { .backend = PVM_MEM_BACKEND_MEMFD, .size = RSIZE };
	struct pvm_mem_region *r;

	assert_int_equal(pvm_mem_region_new(&cfg, &r, NULL), 0);
	for (size_t i = 0; i < PVM_ARRAY_SIZE(range_cases); i++) {
		const struct range_case *c = &range_cases[i];
		struct pvm_error e[4] = { 0 };
		uint64_t bytes = 77;
		int rc[4];

		rc[0] = pvm_mem_region_discard(r, c->offset, c->len, &e[0]);
		rc[1] = pvm_mem_region_populate(r, c->offset, c->len, NULL, &e[1]);
		rc[2] = pvm_mem_region_resident(r, c->offset, c->len, &bytes, &e[2]);
		rc[3] = pvm_mem_region_allocated(r, c->offset, c->len, &bytes, &e[3]);
		for (int k = 0; k < 4; k++) {
			if (rc[k] != c->rc || (c->msg && !strstr(e[k].msg, c->msg)))
				fail_msg("case \"%s\" op %d: rc %d (want %d) \"%s\"", c->name, k, rc[k],
					 c->rc, e[k].msg);
		}
		if (c->rc == 0)
			assert_int_equal(bytes, c->len);  /* just populated, still there */
	}
	assert_int_equal(pvm_mem_region_resident(r, 0, RSIZE, NULL, NULL), -EINVAL);
	pvm_mem_region_free(r);
}

/* ---- NUMA ---------------------------------------------------------------------------------- */

static void expect_policy(void *addr, int mode, unsigned long nodes)
{
	int got = -1;
	unsigned long mask = 0;

	assert_int_equal(get_mempolicy(&got, &mask, sizeof(mask) * 8 + 1, addr, MPOL_F_ADDR), 0);
	assert_int_equal(got, mode);
	if (mode != MPOL_DEFAULT)
		assert_int_equal(mask, nodes);
}

struct numa_case {
	const char *name;
	enum pvm_mem_backend backend;
	bool shared;
	enum pvm_mem_numa_mode mode;
	int mpol;
};

static const struct numa_case numa_cases[] = {
	{ "anon bind", PVM_MEM_BACKEND_ANON, false, PVM_MEM_NUMA_BIND, MPOL_BIND },
	{ "anon preferred", PVM_MEM_BACKEND_ANON, false, PVM_MEM_NUMA_PREFERRED, MPOL_PREFERRED },
	{ "shared anon interleave", PVM_MEM_BACKEND_ANON, true, PVM_MEM_NUMA_INTERLEAVE, MPOL_INTERLEAVE },
	{ "memfd bind", PVM_MEM_BACKEND_MEMFD, true, PVM_MEM_NUMA_BIND, MPOL_BIND },
	{ "private file bind", PVM_MEM_BACKEND_FILE, false, PVM_MEM_NUMA_BIND, MPOL_BIND },
	{ "default", PVM_MEM_BACKEND_ANON, false, PVM_MEM_NUMA_DEFAULT, MPOL_DEFAULT },
};

static void test_numa_node0(void **state)
{
	if (numa_available() < 0)
		skip();
	for (size_t i = 0; i < PVM_ARRAY_SIZE(numa_cases); i++) {
		const struct numa_case *c = &numa_cases[i];
		struct pvm_mem_region_config cfg = {
			.backend = c->backend, .shared = c->shared, .size = 8 * MiB,
			.numa_mode = c->mode, .numa_nodes = c->mode ? 1 : 0,
			.path = c->backend == PVM_MEM_BACKEND_FILE ? tmpdir : NULL,
			.prealloc = true,
		};
		struct pvm_mem_region *r;
		struct pvm_error err = { 0 };
		uint8_t *h;
		int node = -1;

		print_message("numa case %s\n", c->name);
		assert_int_equal(pvm_mem_region_new(&cfg, &r, &err), 0);
		h = pvm_mem_region_host(r);
		expect_policy(h + MiB, c->mpol, 1);
		/* Populated by prealloc, on node 0. */
		assert_int_equal(get_mempolicy(&node, NULL, 0, h + MiB, MPOL_F_NODE | MPOL_F_ADDR), 0);
		assert_int_equal(node, 0);
		/* A private file mapping gets new anonymous memory on discard: same policy. */
		assert_int_equal(pvm_mem_region_discard(r, 2 * MiB, 2 * MiB, &err), 0);
		expect_policy(h + 3 * MiB, c->mpol, 1);
		pvm_mem_region_free(r);
	}
}

/* ---- allocation torture -------------------------------------------------------------------- */

struct torture_ctx {
	struct pvm_mem_region_config cfg;   /* what to create */
	struct pvm_mem_region *r;           /* the result */
	int fds, maps;                      /* descriptors and mappings before */
};

static int op_new(void *opaque)
{
	struct torture_ctx *t = opaque;

	return pvm_mem_region_new(&t->cfg, &t->r, NULL);
}

static int new_unchanged(void *opaque)
{
	struct torture_ctx *t = opaque;

	return t->r == NULL && mt_count_fds() == t->fds && mt_count_maps() == t->maps &&
	       mt_dir_entries(tmpdir) == 0;
}

static void torture_one(struct pvm_mem_region_config cfg, int min_points)
{
	struct torture_ctx t = { .cfg = cfg };
	int points;

	t.fds = mt_count_fds();
	t.maps = mt_count_maps();
	points = pvm_test_torture(op_new, new_unchanged, &t);
	assert_true(points >= min_points);
	assert_non_null(t.r);
	pvm_mem_region_free(t.r);
	assert_int_equal(mt_count_fds(), t.fds);
	assert_int_equal(mt_count_maps(), t.maps);
}

static void test_torture_new(void **state)
{
	char file[128];

	torture_one((struct pvm_mem_region_config){ .name = "a", .size = 4 * MiB }, 1);
	torture_one((struct pvm_mem_region_config){ .backend = PVM_MEM_BACKEND_MEMFD, .size = 4 * MiB,
						    .prealloc = true, .numa_mode = PVM_MEM_NUMA_BIND,
						    .numa_nodes = 1 }, 1);
	/* A directory: name, path and the temporary file's name. */
	torture_one((struct pvm_mem_region_config){ .backend = PVM_MEM_BACKEND_FILE, .size = 4 * MiB,
						    .path = tmpdir, .shared = true, .prealloc = true }, 3);
	snprintf(file, sizeof(file), "%s/f", tmpdir);
	torture_one((struct pvm_mem_region_config){ .backend = PVM_MEM_BACKEND_FILE, .size = 4 * MiB,
						    .path = file }, 2);
	unlink(file);
}

/* A file made by pvm_mem_region_new() is removed again when a later step fails. */
static int madvise_enomem(void *addr, size_t len, int advice)
{
	errno = ENOMEM;
	return -1;
}

static void test_failed_prealloc_removes_created_file(void **state)
{
	char file[128];
	struct pvm_mem_region_config cfg = { .backend = PVM_MEM_BACKEND_FILE, .size = 4 * MiB,
					     .shared = true, .prealloc = true, .path = file };
	struct pvm_mem_region *r;
	struct pvm_error err = { 0 };
	int fds = mt_count_fds(), maps = mt_count_maps();

	snprintf(file, sizeof(file), "%s/g", tmpdir);
	pvm_mem_sys.madvise = madvise_enomem;
	assert_int_equal(pvm_mem_region_new(&cfg, &r, &err), -ENOMEM);
	pvm_mem_sys_reset();
	assert_non_null(strstr(err.msg, "cannot preallocate ram: no memory for ram"));
	assert_null(r);
	assert_int_equal(access(file, F_OK), -1);
	assert_int_equal(mt_count_fds(), fds);
	assert_int_equal(mt_count_maps(), maps);

	/* An existing file stays. */
	assert_int_equal(close(open(file, O_CREAT | O_WRONLY, 0600)), 0);
	pvm_mem_sys.madvise = madvise_enomem;
	assert_int_equal(pvm_mem_region_new(&cfg, &r, NULL), -ENOMEM);
	pvm_mem_sys_reset();
	assert_int_equal(access(file, F_OK), 0);
	unlink(file);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_errors),
		cmocka_unit_test(test_null_arguments),
		cmocka_unit_test(test_accessors),
		cmocka_unit_test(test_hugetlb_page_size),
		cmocka_unit_test(test_range_checks),
		cmocka_unit_test(test_numa_node0),
		cmocka_unit_test(test_torture_new),
		cmocka_unit_test(test_failed_prealloc_removes_created_file),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}

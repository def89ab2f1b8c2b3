/* SPDX-License-Identifier: MIT */
/*
 * The simulated guest's page allocator (src/sim/guest-mm.c): movable memory first for the
 * workload, every page it gets written, highest pages freed first, migration out of memory the
 * virtio-mem driver unplugs (or -EBUSY when it cannot), the balloon taking boot memory first,
 * reserved firmware memory never handed out, and the MemTotal/used/free counts after each step.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "test-util.h"
#include "../../src/sim/guest-mm.h"

#define MiB (1ULL << 20)
#define PG PVM_SIM_PAGE
#define RAM (64 * MiB)            /* boot RAM at GPA 0 */
#define HP_GPA (4096 * MiB)       /* the hot-plug region */
#define HP (128 * MiB)

/* Which pages the allocator wrote, by GPA page number (boot RAM and the hot-plug region). */
static uint8_t touched_ram[RAM / PG], touched_hp[HP / PG];
static uint64_t touch_calls;

static int touch(void *opaque, uint64_t gpa, uint64_t len)
{
	(void)opaque;
	touch_calls++;
	for (uint64_t a = gpa; a < gpa + len; a += PG) {
		if (a < RAM)
			touched_ram[a / PG] = 1;
		else if (a >= HP_GPA && a < HP_GPA + HP)
			touched_hp[(a - HP_GPA) / PG] = 1;
		else
			fail_msg("touch outside guest memory: 0x%llx", (unsigned long long)a);
	}
	return 0;
}

static uint64_t count(const uint8_t *v, size_t n)
{
	uint64_t c = 0;

	for (size_t i = 0; i < n; i++)
		c += v[i];
	return c;
}

static struct pvm_sim_mm *make(void)
{
	const struct pvm_sim_mm_range r[] = { { 0, RAM, false }, { HP_GPA, HP, true } };
	struct pvm_sim_mm *mm = NULL;

	memset(touched_ram, 0, sizeof(touched_ram));
	memset(touched_hp, 0, sizeof(touched_hp));
	touch_calls = 0;
	assert_int_equal(pvm_sim_mm_new(r, 2, touch, NULL, &mm), 0);
	pvm_sim_mm_reserve(mm, RAM - 4 * MiB, 4 * MiB); /* firmware */
	return mm;
}

static void expect_counts(const struct pvm_sim_mm *mm, uint64_t total, uint64_t used, uint64_t freeb)
{
	if (pvm_sim_mm_total(mm) != total || pvm_sim_mm_used(mm) != used ||
	    pvm_sim_mm_free_bytes(mm) != freeb)
		fail_msg("total/used/free %llu/%llu/%llu MiB, expected %llu/%llu/%llu MiB",
			 (unsigned long long)(pvm_sim_mm_total(mm) / MiB),
			 (unsigned long long)(pvm_sim_mm_used(mm) / MiB),
			 (unsigned long long)(pvm_sim_mm_free_bytes(mm) / MiB),
			 (unsigned long long)(total / MiB), (unsigned long long)(used / MiB),
			 (unsigned long long)(freeb / MiB));
}

static void test_boot_and_plug(void **state)
{
	struct pvm_sim_mm *mm = make();

	(void)state;
	/* Boot: RAM minus firmware; the hot-plug region is absent. */
	expect_counts(mm, 60 * MiB, 0, 60 * MiB);
	pvm_sim_mm_give(mm, HP_GPA, 32 * MiB);
	expect_counts(mm, 92 * MiB, 0, 92 * MiB);
	pvm_sim_mm_give(mm, HP_GPA, 32 * MiB); /* twice: no change */
	expect_counts(mm, 92 * MiB, 0, 92 * MiB);
	/* Reboot forgets everything, the reservation included (the guest makes it again). */
	pvm_sim_mm_reset(mm);
	expect_counts(mm, 64 * MiB, 0, 64 * MiB);
	pvm_sim_mm_free(mm);
}

static void test_workload_movable_first(void **state)
{
	struct pvm_sim_mm *mm = make();

	(void)state;
	pvm_sim_mm_give(mm, HP_GPA, 32 * MiB);
	/* 40 MiB: the 32 MiB of hot-plugged memory, then 8 MiB of boot RAM from the bottom. */
	assert_int_equal(pvm_sim_mm_set_used(mm, 40 * MiB), 40 * MiB);
	expect_counts(mm, 92 * MiB, 40 * MiB, 52 * MiB);
	assert_int_equal(count(touched_hp, HP / PG), 32 * MiB / PG);
	assert_int_equal(count(touched_ram, RAM / PG), 8 * MiB / PG);
	assert_int_equal(touched_ram[0], 1);
	assert_int_equal(touched_ram[8 * MiB / PG - 1], 1);
	assert_int_equal(touched_ram[8 * MiB / PG], 0);
	/* One contiguous run per range: two writes of whole runs, not one per page. */
	assert_int_equal(touch_calls, 2);
	/* More than there is: clamped; the firmware stays untouched. */
	assert_int_equal(pvm_sim_mm_set_used(mm, 1024 * MiB), 92 * MiB);
	assert_int_equal(touched_ram[(RAM - 4 * MiB) / PG], 0);
	/* Freeing takes the highest addresses first: all hot-plugged memory, then boot RAM's top,
	 * so the hot-plugged memory can go without migrating anything. */
	assert_int_equal(pvm_sim_mm_set_used(mm, 30 * MiB), 30 * MiB);
	expect_counts(mm, 92 * MiB, 30 * MiB, 62 * MiB);
	touch_calls = 0;
	assert_int_equal(pvm_sim_mm_take(mm, HP_GPA, 32 * MiB), 0);
	assert_int_equal(touch_calls, 0);
	expect_counts(mm, 60 * MiB, 30 * MiB, 30 * MiB);
	pvm_sim_mm_free(mm);
}

static void test_take_migrates(void **state)
{
	struct pvm_sim_mm *mm = make();

	(void)state;
	pvm_sim_mm_give(mm, HP_GPA, 32 * MiB);
	assert_int_equal(pvm_sim_mm_set_used(mm, 16 * MiB), 16 * MiB); /* all in hot-plugged memory */
	memset(touched_ram, 0, sizeof(touched_ram));
	/* Unplug the top 16 MiB of the plugged memory (free): nothing moves. */
	assert_int_equal(pvm_sim_mm_take(mm, HP_GPA + 16 * MiB, 16 * MiB), 0);
	expect_counts(mm, 76 * MiB, 16 * MiB, 60 * MiB);
	assert_int_equal(count(touched_ram, RAM / PG), 0);
	/* Unplug the rest (all in use): 16 MiB migrate into boot RAM, and are written there. */
	assert_int_equal(pvm_sim_mm_take(mm, HP_GPA, 16 * MiB), 0);
	expect_counts(mm, 60 * MiB, 16 * MiB, 44 * MiB);
	assert_int_equal(count(touched_ram, RAM / PG), 16 * MiB / PG);
	/* Outside any range. */
	assert_int_equal(pvm_sim_mm_take(mm, HP_GPA + HP, 2 * MiB), -EINVAL);
	pvm_sim_mm_free(mm);
}

static void test_take_busy(void **state)
{
	struct pvm_sim_mm *mm = make();
	uint32_t pfns[8];

	(void)state;
	pvm_sim_mm_give(mm, HP_GPA, 128 * MiB);
	/* 100 MiB used: 60 MiB of boot RAM cannot take the 64 MiB in use in the top half. */
	assert_int_equal(pvm_sim_mm_set_used(mm, 100 * MiB), 100 * MiB);
	assert_int_equal(pvm_sim_mm_set_used(mm, 128 * MiB + 60 * MiB), 188 * MiB);
	assert_int_equal(pvm_sim_mm_set_used(mm, 100 * MiB), 100 * MiB);
	expect_counts(mm, 188 * MiB, 100 * MiB, 88 * MiB);
	assert_int_equal(pvm_sim_mm_take(mm, HP_GPA, 128 * MiB), -EBUSY);
	expect_counts(mm, 188 * MiB, 100 * MiB, 88 * MiB); /* nothing changed */
	/* Reserved memory is never taken. */
	assert_int_equal(pvm_sim_mm_take(mm, RAM - 4 * MiB, 2 * MiB), -EBUSY);
	/* A ballooned page inside makes it busy too. */
	assert_int_equal(pvm_sim_mm_set_used(mm, 0), 0);
	assert_int_equal(pvm_sim_mm_balloon_alloc(mm, pfns, 8), 8);
	assert_int_equal(pfns[0], 0); /* the balloon takes boot memory first, lowest pages */
	assert_int_equal(pvm_sim_mm_take(mm, 0, 2 * MiB), -EBUSY);
	pvm_sim_mm_free(mm);
}

static void test_balloon(void **state)
{
	struct pvm_sim_mm *mm = make();
	uint32_t pfns[256];

	(void)state;
	pvm_sim_mm_give(mm, HP_GPA, 32 * MiB);
	assert_int_equal(pvm_sim_mm_balloon_alloc(mm, pfns, 256), 256);
	for (unsigned i = 0; i < 256; i++)
		assert_int_equal(pfns[i], i);
	/* Ballooned pages leave MemTotal (no DEFLATE_ON_OOM) and are not written. */
	expect_counts(mm, 91 * MiB, 0, 91 * MiB);
	assert_int_equal(count(touched_ram, RAM / PG), 0);
	/* The workload cannot get them. */
	assert_int_equal(pvm_sim_mm_set_used(mm, 91 * MiB), 91 * MiB);
	assert_int_equal(pvm_sim_mm_balloon_alloc(mm, pfns, 256), 0);
	assert_int_equal(pvm_sim_mm_set_used(mm, 0), 0);
	/* Deflate gives them back; PFNs that are not ballooned are ignored. */
	pfns[0] = 0;
	pfns[1] = 0xffffffffu;
	pvm_sim_mm_balloon_free(mm, pfns, 2);
	expect_counts(mm, 91 * MiB + PG, 0, 91 * MiB + PG);
	pvm_sim_mm_free(mm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_boot_and_plug),
		cmocka_unit_test(test_workload_movable_first),
		cmocka_unit_test(test_take_migrates),
		cmocka_unit_test(test_take_busy),
		cmocka_unit_test(test_balloon),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

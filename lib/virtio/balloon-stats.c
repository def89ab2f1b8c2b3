/* SPDX-License-Identifier: MIT */
/*
 * virtio-balloon statistics: the wire format (virtio 1.4 §5.5.6.3, "an array of 10-byte
 * entries", le16 tag + le64 value, packed) and the names QEMU gives them in query-balloon /
 * guest-stats ("stat-swap-in", ...). Tags 10..15 are the Linux >= 6.12 extensions that QEMU
 * adopted in 2024; anything above is ignored as the spec requires ("MUST ignore entries with tag
 * values that it does not recognize").
 *
 * The spec's driver rule says the buffer is "a multiple of 6 bytes"; the records are 10 bytes
 * and every implementation parses 10-byte records (research note §3.1: a spec erratum).
 */
#include <string.h>

#include "core/util.h"
#include "virtio/balloon-priv.h"

static const char *const stat_names[PVM_BALLOON_S_NR] = {
	[PVM_BALLOON_S_SWAP_IN] = "stat-swap-in",
	[PVM_BALLOON_S_SWAP_OUT] = "stat-swap-out",
	[PVM_BALLOON_S_MAJFLT] = "stat-major-faults",
	[PVM_BALLOON_S_MINFLT] = "stat-minor-faults",
	[PVM_BALLOON_S_MEMFREE] = "stat-free-memory",
	[PVM_BALLOON_S_MEMTOT] = "stat-total-memory",
	[PVM_BALLOON_S_AVAIL] = "stat-available-memory",
	[PVM_BALLOON_S_CACHES] = "stat-disk-caches",
	[PVM_BALLOON_S_HTLB_PGALLOC] = "stat-htlb-pgalloc",
	[PVM_BALLOON_S_HTLB_PGFAIL] = "stat-htlb-pgfail",
	[PVM_BALLOON_S_OOM_KILL] = "stat-oom-kills",
	[PVM_BALLOON_S_ALLOC_STALL] = "stat-alloc-stalls",
	[PVM_BALLOON_S_ASYNC_SCAN] = "stat-async-scans",
	[PVM_BALLOON_S_DIRECT_SCAN] = "stat-direct-scans",
	[PVM_BALLOON_S_ASYNC_RECLAIM] = "stat-async-reclaims",
	[PVM_BALLOON_S_DIRECT_RECLAIM] = "stat-direct-reclaims",
};

const char *pvm_balloon_stat_name(unsigned tag)
{
	return tag < PVM_BALLOON_S_NR ? stat_names[tag] : NULL;
}

void pvm_balloon_stats_reset(struct pvm_balloon_stats *st)
{
	for (unsigned i = 0; i < PVM_BALLOON_S_NR; i++)
		st->val[i] = PVM_BALLOON_STAT_UNSET;
	st->valid = 0;
}

static uint16_t load_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static uint64_t load_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

unsigned pvm_balloon_stats_parse(const uint8_t *buf, size_t len, struct pvm_balloon_stats *st)
{
	unsigned known = 0;

	/* "so that no stale values stick around": a statistic the guest stops sending reads as
	 * unset rather than as its last value. */
	pvm_balloon_stats_reset(st);
	if (!buf)
		return 0;
	len = PVM_MIN(len, (size_t)PVM_BALLOON_STATS_MAX_BYTES);
	for (size_t off = 0; len - off >= PVM_BALLOON_STAT_SIZE; off += PVM_BALLOON_STAT_SIZE) {
		uint16_t tag = load_le16(buf + off);

		if (tag >= PVM_BALLOON_S_NR)
			continue;
		st->val[tag] = load_le64(buf + off + 2);
		st->valid |= 1u << tag;
		known++;
	}
	return known;
}

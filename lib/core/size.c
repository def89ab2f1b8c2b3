/* SPDX-License-Identifier: MIT */
/*
 * Human sizes: "2M", "1.5GiB", "4096". Suffixes are binary multiples, as in QEMU's -m and
 * qom-set requested-size; an optional "i" and "B" are accepted so that "2MiB" and "2MB" parse.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/util.h"

static int suffix_shift(const char *s, const char **end)
{
	static const char units[] = "BKMGTPE";
	const char *u = *s ? strchr(units, toupper((unsigned char)*s)) : NULL;
	int shift;

	if (!u) {
		*end = s;
		return 0;
	}
	shift = (int)(u - units) * 10;
	s++;
	if (shift && (*s == 'i' || *s == 'I'))
		s++;
	if (shift && (*s == 'B' || *s == 'b'))
		s++;
	*end = s;
	return shift;
}

int pvm_size_parse(const char *text, uint64_t *bytes)
{
	const char *p = text;
	uint64_t whole = 0, frac_num = 0, frac_den = 1, v;
	int digits = 0, shift;

	if (!p)
		return -EINVAL;
	while (isspace((unsigned char)*p))
		p++;
	if (!isdigit((unsigned char)*p))
		return -EINVAL;
	for (; isdigit((unsigned char)*p); p++, digits++) {
		if (pvm_mul_overflow(whole, 10, &whole) || pvm_add_overflow(whole, (uint64_t)(*p - '0'), &whole))
			return -ERANGE;
	}
	if (*p == '.') {
		p++;
		if (!isdigit((unsigned char)*p))
			return -EINVAL;
		for (; isdigit((unsigned char)*p); p++) {
			if (frac_den >= 1000000000000ULL)
				return -EINVAL; /* more precision than any size needs */
			frac_num = frac_num * 10 + (uint64_t)(*p - '0');
			frac_den *= 10;
		}
	}
	while (isspace((unsigned char)*p))
		p++;
	shift = suffix_shift(p, &p);
	while (isspace((unsigned char)*p))
		p++;
	if (*p)
		return -EINVAL;
	if (shift >= 64 || (shift && whole > (UINT64_MAX >> shift)))
		return -ERANGE;
	v = whole << shift;
	if (frac_num) {
		/* frac_num / frac_den * 2^shift must be a whole number of bytes. */
		unsigned __int128 f = (unsigned __int128)frac_num << shift;

		if (f % frac_den)
			return -EINVAL;
		f /= frac_den;
		if (f > UINT64_MAX || pvm_add_overflow(v, (uint64_t)f, &v))
			return -ERANGE;
	}
	*bytes = v;
	return 0;
}

char *pvm_size_format(uint64_t bytes, char *buf, size_t len)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	int u = 0;

	while (u < 6 && bytes >= (1ULL << (10 * (u + 1))))
		u++;
	if (u == 0) {
		snprintf(buf, len, "%llu B", (unsigned long long)bytes);
	} else {
		uint64_t unit = 1ULL << (10 * u);
		uint64_t whole = bytes / unit, rem = bytes % unit;

		if (rem == 0)
			snprintf(buf, len, "%llu %s", (unsigned long long)whole, units[u]);
		else
			snprintf(buf, len, "%.2f %s", (double)bytes / (double)unit, units[u]);
	}
	return buf;
}

/* SPDX-License-Identifier: MIT */
/*
 * Bitmap with word-at-a-time range operations. Bits past nbits in the last word are kept clear,
 * so counts and comparisons can work on whole words.
 */
#include <errno.h>
#include <string.h>

#include <pvmem/bitmap.h>
#include "core/util.h"

#define WBITS 64u

struct pvm_bitmap {
	uint64_t nbits;   /* number of valid bits */
	uint64_t nwords;  /* DIV_ROUND_UP(nbits, 64) */
	uint64_t *w;      /* the words; bit i is w[i / 64] >> (i % 64) */
};

int pvm_bitmap_new(uint64_t nbits, struct pvm_bitmap **out)
{
	struct pvm_bitmap *b;
	uint64_t nwords = nbits / WBITS + (nbits % WBITS != 0);

	*out = NULL;
	if (nwords > SIZE_MAX / sizeof(uint64_t))
		return -ENOMEM;
	b = pvm_calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->w = pvm_calloc(nwords ? nwords : 1, sizeof(uint64_t));
	if (!b->w) {
		pvm_free(b);
		return -ENOMEM;
	}
	b->nbits = nbits;
	b->nwords = nwords;
	*out = b;
	return 0;
}

void pvm_bitmap_free(struct pvm_bitmap *b)
{
	if (!b)
		return;
	pvm_free(b->w);
	pvm_free(b);
}

int pvm_bitmap_dup(const struct pvm_bitmap *b, struct pvm_bitmap **out)
{
	int rc = pvm_bitmap_new(b->nbits, out);

	if (rc == 0 && b->nwords)
		memcpy((*out)->w, b->w, b->nwords * sizeof(uint64_t));
	return rc;
}

uint64_t pvm_bitmap_size(const struct pvm_bitmap *b)
{
	return b->nbits;
}

bool pvm_bitmap_test(const struct pvm_bitmap *b, uint64_t bit)
{
	return bit < b->nbits && (b->w[bit / WBITS] >> (bit % WBITS)) & 1;
}

void pvm_bitmap_set(struct pvm_bitmap *b, uint64_t bit)
{
	if (bit < b->nbits)
		b->w[bit / WBITS] |= 1ULL << (bit % WBITS);
}

void pvm_bitmap_clear(struct pvm_bitmap *b, uint64_t bit)
{
	if (bit < b->nbits)
		b->w[bit / WBITS] &= ~(1ULL << (bit % WBITS));
}

static bool range_ok(const struct pvm_bitmap *b, uint64_t start, uint64_t n)
{
	return start <= b->nbits && n <= b->nbits - start;
}

/* Mask of bits [lo, hi) within one word, 0 <= lo < hi <= 64. */
static inline uint64_t word_mask(unsigned lo, unsigned hi)
{
	uint64_t m = hi == WBITS ? ~0ULL : (1ULL << hi) - 1;
	return m & ~((1ULL << lo) - 1);
}

/* Apply @op (0 clear, 1 set) to [start, start+n). Range already checked. */
static void range_op(struct pvm_bitmap *b, uint64_t start, uint64_t n, int op)
{
	uint64_t end = start + n;

	while (start < end) {
		uint64_t wi = start / WBITS;
		unsigned lo = start % WBITS;
		unsigned hi = (end - wi * WBITS) >= WBITS ? WBITS : (unsigned)(end - wi * WBITS);
		uint64_t m = word_mask(lo, hi);

		if (op)
			b->w[wi] |= m;
		else
			b->w[wi] &= ~m;
		start = wi * WBITS + hi;
	}
}

int pvm_bitmap_set_range(struct pvm_bitmap *b, uint64_t start, uint64_t n)
{
	if (!range_ok(b, start, n))
		return -ERANGE;
	range_op(b, start, n, 1);
	return 0;
}

int pvm_bitmap_clear_range(struct pvm_bitmap *b, uint64_t start, uint64_t n)
{
	if (!range_ok(b, start, n))
		return -ERANGE;
	range_op(b, start, n, 0);
	return 0;
}

void pvm_bitmap_clear_all(struct pvm_bitmap *b)
{
	if (b->nwords)
		memset(b->w, 0, b->nwords * sizeof(uint64_t));
}

/* Find the first bit in [start, nbits) whose value equals @val; nbits if none. */
static uint64_t find_next(const struct pvm_bitmap *b, uint64_t start, bool val)
{
	uint64_t wi;
	uint64_t word;

	if (start >= b->nbits)
		return b->nbits;
	wi = start / WBITS;
	word = val ? b->w[wi] : ~b->w[wi];
	word &= ~0ULL << (start % WBITS);
	for (;;) {
		if (word) {
			uint64_t bit = wi * WBITS + (uint64_t)__builtin_ctzll(word);
			return bit < b->nbits ? bit : b->nbits;
		}
		if (++wi >= b->nwords)
			return b->nbits;
		word = val ? b->w[wi] : ~b->w[wi];
	}
}

uint64_t pvm_bitmap_next_set(const struct pvm_bitmap *b, uint64_t start)
{
	return find_next(b, start, true);
}

uint64_t pvm_bitmap_next_clear(const struct pvm_bitmap *b, uint64_t start)
{
	return find_next(b, start, false);
}

uint64_t pvm_bitmap_prev_set(const struct pvm_bitmap *b, uint64_t end)
{
	if (end > b->nbits)
		end = b->nbits;
	while (end > 0) {
		uint64_t bit = end - 1;
		uint64_t wi = bit / WBITS;
		uint64_t word = b->w[wi] & word_mask(0, (unsigned)(bit % WBITS) + 1);

		if (word)
			return wi * WBITS + 63 - (uint64_t)__builtin_clzll(word);
		end = wi * WBITS;
	}
	return b->nbits;
}

bool pvm_bitmap_range_is_set(const struct pvm_bitmap *b, uint64_t start, uint64_t n)
{
	if (!range_ok(b, start, n))
		return false;
	return n == 0 || find_next(b, start, false) >= start + n;
}

bool pvm_bitmap_range_is_clear(const struct pvm_bitmap *b, uint64_t start, uint64_t n)
{
	if (!range_ok(b, start, n))
		return false;
	return n == 0 || find_next(b, start, true) >= start + n;
}

uint64_t pvm_bitmap_count(const struct pvm_bitmap *b)
{
	uint64_t c = 0;

	for (uint64_t i = 0; i < b->nwords; i++)
		c += (uint64_t)__builtin_popcountll(b->w[i]);
	return c;
}

uint64_t pvm_bitmap_count_range(const struct pvm_bitmap *b, uint64_t start, uint64_t n)
{
	uint64_t end, c = 0;

	if (start >= b->nbits)
		return 0;
	end = (n > b->nbits - start) ? b->nbits : start + n;
	while (start < end) {
		uint64_t wi = start / WBITS;
		unsigned lo = start % WBITS;
		unsigned hi = (end - wi * WBITS) >= WBITS ? WBITS : (unsigned)(end - wi * WBITS);

		c += (uint64_t)__builtin_popcountll(b->w[wi] & word_mask(lo, hi));
		start = wi * WBITS + hi;
	}
	return c;
}

bool pvm_bitmap_equal(const struct pvm_bitmap *a, const struct pvm_bitmap *b)
{
	return a->nbits == b->nbits &&
	       (a->nwords == 0 || !memcmp(a->w, b->w, a->nwords * sizeof(uint64_t)));
}

const uint64_t *pvm_bitmap_data(const struct pvm_bitmap *b)
{
	return b->w;
}

uint64_t pvm_bitmap_words(const struct pvm_bitmap *b)
{
	return b->nwords;
}

void pvm_bitmap_load(struct pvm_bitmap *b, const uint64_t *words)
{
	if (!b->nwords)
		return;
	memcpy(b->w, words, b->nwords * sizeof(uint64_t));
	if (b->nbits % WBITS)
		b->w[b->nwords - 1] &= word_mask(0, b->nbits % WBITS);
}

/* SPDX-License-Identifier: MIT */
/*
 * A fixed-size bitmap with range operations, used for plugged blocks, dirty pages and balloon
 * sub-pages. Bit indices are uint64_t; every call checks its range and treats bits beyond
 * pvm_bitmap_size() as absent (tests return false, finds return the size).
 */
#ifndef PVMEM_BITMAP_H
#define PVMEM_BITMAP_H

#include <pvmem/core.h>

#ifdef __cplusplus
extern "C" {
#endif

struct pvm_bitmap;

/* A bitmap of @nbits cleared bits in *@out; -ENOMEM. @nbits may be 0. */
PVM_EXPORT int pvm_bitmap_new(uint64_t nbits, struct pvm_bitmap **out) PVM_MUST_CHECK;
PVM_EXPORT void pvm_bitmap_free(struct pvm_bitmap *b);
/* A copy of @b in *@out; -ENOMEM. */
PVM_EXPORT int pvm_bitmap_dup(const struct pvm_bitmap *b, struct pvm_bitmap **out) PVM_MUST_CHECK;

PVM_EXPORT uint64_t pvm_bitmap_size(const struct pvm_bitmap *b);
PVM_EXPORT bool pvm_bitmap_test(const struct pvm_bitmap *b, uint64_t bit);
PVM_EXPORT void pvm_bitmap_set(struct pvm_bitmap *b, uint64_t bit);
PVM_EXPORT void pvm_bitmap_clear(struct pvm_bitmap *b, uint64_t bit);
/* Set / clear @n bits from @start; -ERANGE (nothing changed) when the range leaves the bitmap. */
PVM_EXPORT int pvm_bitmap_set_range(struct pvm_bitmap *b, uint64_t start, uint64_t n);
PVM_EXPORT int pvm_bitmap_clear_range(struct pvm_bitmap *b, uint64_t start, uint64_t n);
PVM_EXPORT void pvm_bitmap_clear_all(struct pvm_bitmap *b);
/* True when all @n bits from @start are set (resp. clear); false when the range leaves the bitmap.
 * An empty range (n == 0) is both. */
PVM_EXPORT bool pvm_bitmap_range_is_set(const struct pvm_bitmap *b, uint64_t start, uint64_t n);
PVM_EXPORT bool pvm_bitmap_range_is_clear(const struct pvm_bitmap *b, uint64_t start, uint64_t n);
/* Number of set bits. */
PVM_EXPORT uint64_t pvm_bitmap_count(const struct pvm_bitmap *b);
/* Number of set bits among @n bits from @start (clipped to the bitmap). */
PVM_EXPORT uint64_t pvm_bitmap_count_range(const struct pvm_bitmap *b, uint64_t start, uint64_t n);
/* First set (resp. clear) bit at or after @start, or pvm_bitmap_size() if none. */
PVM_EXPORT uint64_t pvm_bitmap_next_set(const struct pvm_bitmap *b, uint64_t start);
PVM_EXPORT uint64_t pvm_bitmap_next_clear(const struct pvm_bitmap *b, uint64_t start);
/* Last set bit strictly below @end, or pvm_bitmap_size() if none. */
PVM_EXPORT uint64_t pvm_bitmap_prev_set(const struct pvm_bitmap *b, uint64_t end);
PVM_EXPORT bool pvm_bitmap_equal(const struct pvm_bitmap *a, const struct pvm_bitmap *b);
/* Raw little-endian 64-bit words (for migration streams): pvm_bitmap_words() of them. */
PVM_EXPORT const uint64_t *pvm_bitmap_data(const struct pvm_bitmap *b);
PVM_EXPORT uint64_t pvm_bitmap_words(const struct pvm_bitmap *b);
/* Replace the contents from @words (pvm_bitmap_words() words); bits past the size are ignored. */
PVM_EXPORT void pvm_bitmap_load(struct pvm_bitmap *b, const uint64_t *words);

/* Iterate over maximal runs of set bits: for (s = next_set(b, 0); s < size; s = next_set(b, e)) */
#define pvm_bitmap_for_each_set_run(b, s, e)                                            \
	for ((s) = pvm_bitmap_next_set((b), 0), (e) = pvm_bitmap_next_clear((b), (s));   \
	     (s) < pvm_bitmap_size(b);                                                  \
	     (s) = pvm_bitmap_next_set((b), (e)), (e) = pvm_bitmap_next_clear((b), (s)))

#ifdef __cplusplus
}
#endif
#endif /* PVMEM_BITMAP_H */

/* SPDX-License-Identifier: MIT */
/* Bitmaps of u64 words, bit i in word i / 64 at position i % 64. */
#include <string.h>

#include "shared.h"

/* Mask of bits [lo, hi] within one word, 0 <= lo <= hi <= 63. */
static inline uint64_t word_mask(unsigned lo, unsigned hi)
{
    return (~0ULL << lo) & (~0ULL >> (63 - hi));
}

void bitmap_set_range(uint64_t *map, uint64_t first, uint64_t count)
{
    if (count == 0)
        return;
    uint64_t last = first + count - 1;
    uint64_t w0 = first / 64, w1 = last / 64;

    if (w0 == w1) {
        map[w0] |= word_mask(first % 64, last % 64);
        return;
    }
    map[w0] |= word_mask(first % 64, 63);
    if (w1 > w0 + 1)
        memset(&map[w0 + 1], 0xff, (w1 - w0 - 1) * sizeof(uint64_t));
    map[w1] |= word_mask(0, last % 64);
}

void bitmap_clear_range(uint64_t *map, uint64_t first, uint64_t count)
{
    if (count == 0)
        return;
    uint64_t last = first + count - 1;
    uint64_t w0 = first / 64, w1 = last / 64;

    if (w0 == w1) {
        map[w0] &= ~word_mask(first % 64, last % 64);
        return;
    }
    map[w0] &= ~word_mask(first % 64, 63);
    if (w1 > w0 + 1)
        memset(&map[w0 + 1], 0, (w1 - w0 - 1) * sizeof(uint64_t));
    map[w1] &= ~word_mask(0, last % 64);
}

bool bitmap_test_range_any(const uint64_t *map, uint64_t first, uint64_t count)
{
    if (count == 0)
        return false;
    uint64_t last = first + count - 1;
    uint64_t w0 = first / 64, w1 = last / 64;

    if (w0 == w1)
        return map[w0] & word_mask(first % 64, last % 64);
    if (map[w0] & word_mask(first % 64, 63))
        return true;
    for (uint64_t w = w0 + 1; w < w1; w++)
        if (map[w])
            return true;
    return map[w1] & word_mask(0, last % 64);
}

void bitmap_or_at(uint64_t *dst, uint64_t dst_offset, const uint64_t *src, uint64_t nbits)
{
    if (nbits == 0)
        return;
    uint64_t full = nbits / 64;
    unsigned tail = nbits % 64;
    uint64_t *d = dst + dst_offset / 64;
    unsigned shift = dst_offset % 64;

    if (shift == 0) {
        for (uint64_t i = 0; i < full; i++)
            d[i] |= src[i];
        if (tail)
            d[full] |= src[full] & word_mask(0, tail - 1);
        return;
    }
    /* Each source word straddles two destination words. */
    for (uint64_t i = 0; i < full; i++) {
        uint64_t s = src[i];
        d[i] |= s << shift;
        d[i + 1] |= s >> (64 - shift);
    }
    if (tail) {
        uint64_t s = src[full] & word_mask(0, tail - 1);
        d[full] |= s << shift;
        if (tail + shift > 64)
            d[full + 1] |= s >> (64 - shift);
    }
}

void bitmap_extract(uint64_t *dst, const uint64_t *src, uint64_t first, uint64_t nbits)
{
    if (nbits == 0)
        return;
    const uint64_t *s = src + first / 64;
    unsigned shift = first % 64;
    uint64_t nwords = BITMAP_WORDS(nbits);
    /* The last source word that holds a wanted bit. */
    uint64_t slast = (first % 64 + nbits - 1) / 64;

    for (uint64_t i = 0; i < nwords; i++) {
        uint64_t w = s[i] >> shift;
        if (shift && i + 1 <= slast)
            w |= s[i + 1] << (64 - shift);
        dst[i] = w;
    }
    if (nbits % 64)
        dst[nwords - 1] &= word_mask(0, nbits % 64 - 1);
}

uint64_t bitmap_count(const uint64_t *map, uint64_t nbits)
{
    uint64_t n = 0, full = nbits / 64;

    for (uint64_t i = 0; i < full; i++)
        n += (uint64_t)__builtin_popcountll(map[i]);
    if (nbits % 64)
        n += (uint64_t)__builtin_popcountll(map[full] & word_mask(0, nbits % 64 - 1));
    return n;
}

uint64_t bitmap_next_set(const uint64_t *map, uint64_t nbits, uint64_t from)
{
    if (from >= nbits)
        return nbits;
    uint64_t w = from / 64;
    uint64_t word = map[w] & (~0ULL << (from % 64));
    uint64_t nwords = BITMAP_WORDS(nbits);

    for (;;) {
        if (word) {
            uint64_t bit = w * 64 + (uint64_t)__builtin_ctzll(word);
            return bit < nbits ? bit : nbits;
        }
        if (++w >= nwords)
            return nbits;
        word = map[w];
    }
}

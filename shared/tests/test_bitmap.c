/* SPDX-License-Identifier: MIT */
#include <criterion/criterion.h>
#include <glib.h>
#include <string.h>

#include "shared.h"

#define NBITS 1000

/* A bool-per-bit model to check the word-at-a-time code against. */
static bool model[NBITS + 256];

static void check_equal(const uint64_t *map, unsigned nbits)
{
    for (unsigned i = 0; i < nbits; i++)
        cr_assert_eq(bitmap_test(map, i), model[i], "bit %u", i);
}

Test(bitmap, set_and_clear_ranges_match_bit_model)
{
    uint64_t map[BITMAP_WORDS(NBITS)] = {0};
    GRand *rng = g_rand_new_with_seed(1234);
    memset(model, 0, sizeof(model));
    for (int round = 0; round < 5000; round++) {
        unsigned first = (unsigned)g_rand_int_range(rng, 0, NBITS);
        unsigned count = (unsigned)g_rand_int_range(rng, 0, NBITS - (int)first + 1);
        bool set = g_rand_boolean(rng);
        if (set)
            bitmap_set_range(map, first, count);
        else
            bitmap_clear_range(map, first, count);
        for (unsigned i = first; i < first + count; i++)
            model[i] = set;
        unsigned a = (unsigned)g_rand_int_range(rng, 0, NBITS);
        unsigned n = (unsigned)g_rand_int_range(rng, 0, NBITS - (int)a + 1);
        bool any = false;
        for (unsigned i = a; i < a + n; i++)
            any |= model[i];
        cr_assert_eq(bitmap_test_range_any(map, a, n), any);
    }
    check_equal(map, NBITS);
    unsigned expect = 0;
    for (unsigned i = 0; i < NBITS; i++)
        expect += model[i];
    cr_assert_eq(bitmap_count(map, NBITS), expect);
    g_rand_free(rng);
}

Test(bitmap, or_at_every_offset_and_length)
{
    GRand *rng = g_rand_new_with_seed(99);
    uint64_t src[8];
    for (unsigned i = 0; i < 8; i++)
        src[i] = ((uint64_t)g_rand_int(rng) << 32) | g_rand_int(rng);
    for (unsigned off = 0; off < 130; off++) {
        for (unsigned nbits = 0; nbits <= 8 * 64; nbits += 7) {
            uint64_t dst[16];
            memset(dst, 0, sizeof(dst));
            dst[15] = 0x5555; /* must survive */
            bitmap_or_at(dst, off, src, nbits);
            for (unsigned b = 0; b < 15 * 64; b++) {
                bool want = b >= off && b < off + nbits && bitmap_test(src, b - off);
                cr_assert_eq(bitmap_test(dst, b), want, "off %u nbits %u bit %u", off, nbits, b);
            }
            cr_assert_eq(dst[15], 0x5555);
        }
    }
    g_rand_free(rng);
}

Test(bitmap, or_at_keeps_existing_bits)
{
    uint64_t dst[2] = {0xf0, 0};
    uint64_t src[1] = {0x3};
    bitmap_or_at(dst, 62, src, 2);
    cr_assert_eq(dst[0], 0xf0 | (3ULL << 62));
    cr_assert_eq(dst[1], 0);
    bitmap_or_at(dst, 63, src, 2);
    cr_assert_eq(dst[1], 1);
}

Test(bitmap, next_set_iterates_in_order_and_stops_at_nbits)
{
    uint64_t map[3] = {0};
    unsigned want[] = {0, 5, 63, 64, 127, 130};
    for (unsigned i = 0; i < G_N_ELEMENTS(want); i++)
        bitmap_set_range(map, want[i], 1);
    bitmap_set_range(map, 150, 1); /* beyond nbits below */
    uint64_t bit;
    unsigned k = 0;
    BITMAP_FOREACH_SET(bit, map, 140)
    {
        cr_assert_lt(k, G_N_ELEMENTS(want));
        cr_assert_eq(bit, want[k]);
        k++;
    }
    cr_assert_eq(k, G_N_ELEMENTS(want));
    cr_assert_eq(bitmap_next_set(map, 140, 131), 140);
    cr_assert_eq(bitmap_count(map, 140), G_N_ELEMENTS(want));
    cr_assert_eq(bitmap_count(map, 151), G_N_ELEMENTS(want) + 1);
}

Test(bitmap, full_word_ranges)
{
    uint64_t map[4] = {0};
    bitmap_set_range(map, 0, 256);
    cr_assert_eq(bitmap_count(map, 256), 256);
    bitmap_clear_range(map, 64, 128);
    cr_assert_eq(map[0], UINT64_MAX);
    cr_assert_eq(map[1], 0);
    cr_assert_eq(map[2], 0);
    cr_assert_eq(map[3], UINT64_MAX);
}

Test(bitmap, extract_at_every_offset_matches_bit_by_bit)
{
    uint64_t src[6];
    GRand *rng = g_rand_new_with_seed(5);
    for (unsigned i = 0; i < 6; i++)
        src[i] = ((uint64_t)g_rand_int(rng) << 32) | g_rand_int(rng);
    for (unsigned first = 0; first < 128; first++) {
        for (unsigned nbits = 1; first + nbits <= 6 * 64; nbits += 5) {
            uint64_t dst[6];
            memset(dst, 0xff, sizeof(dst));
            bitmap_extract(dst, src, first, nbits);
            for (unsigned b = 0; b < BITMAP_WORDS(nbits) * 64; b++) {
                bool want = b < nbits && bitmap_test(src, first + b);
                cr_assert_eq(bitmap_test(dst, b), want, "first %u nbits %u bit %u", first, nbits,
                             b);
            }
        }
    }
    g_rand_free(rng);
}

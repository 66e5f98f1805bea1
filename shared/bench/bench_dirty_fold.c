/* SPDX-License-Identifier: MIT */
/*
 * Folding a device's dirty bitmap into the guest's dirty log, against
 * memcpy of the same bytes (the memory-bandwidth limit). Prints JSON
 * lines; "ratio" is baseline / value (memcpy cost / fold cost), so 0.5
 * means folding runs at half of memcpy's bandwidth.
 */
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shared.h"

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

#define PG 4096ull
#define RAM (4ull << 30)           /* 4 GiB of guest RAM: a 128 KiB log */
#define CHUNK_BITS (256ull * 1024) /* one 1 GiB unmap's bitmap: 32 KiB */

int main(void)
{
    guest_mem *gm = guest_mem_new(PG);
    /* No host mapping is needed to keep a dirty log. */
    if (guest_mem_add(gm, 0, RAM, -1, 0, NULL) < 0)
        return 1;
    size_t bytes = CHUNK_BITS / 8;
    uint64_t *bits = malloc(bytes);
    uint64_t *dst = malloc(bytes);
    GRand *rng = g_rand_new_with_seed(7);
    for (size_t i = 0; i < bytes / 8; i++)
        bits[i] = ((uint64_t)g_rand_int(rng) << 32) | g_rand_int(rng);

    const int reps = 4000;
    struct {
        const char *name;
        uint64_t shift_pages;
    } cases[] = {{"dirty_fold.word_aligned", 0}, {"dirty_fold.bit_shifted", 3}};
    for (unsigned c = 0; c < G_N_ELEMENTS(cases); c++) {
        double best_fold = 1e30, best_copy = 1e30;
        for (int round = 0; round < 5; round++) {
            double t0 = now_ns();
            for (int r = 0; r < reps; r++) {
                uint64_t gpa = ((uint64_t)(r % 3) * CHUNK_BITS + cases[c].shift_pages) * PG;
                guest_mem_dirty_fold(gm, gpa, PG, bits, 0, CHUNK_BITS);
            }
            double fold = (now_ns() - t0) / reps;
            t0 = now_ns();
            for (int r = 0; r < reps; r++) {
                memcpy(dst, bits, bytes);
                __asm__ volatile("" : : "r"(dst) : "memory");
            }
            double copy = (now_ns() - t0) / reps;
            best_fold = fold < best_fold ? fold : best_fold;
            best_copy = copy < best_copy ? copy : best_copy;
        }
        double kib = (double)bytes / 1024.0;
        printf("{\"bench\": \"%s\", \"value\": %.2f, \"unit\": \"ns/KiB\", \"baseline\": %.2f, "
               "\"ratio\": %.2f}\n",
               cases[c].name, best_fold / kib, best_copy / kib, best_copy / best_fold);
    }
    printf("{\"bench\": \"dirty_fold.pages_marked\", \"value\": %llu, \"unit\": \"pages\"}\n",
           (unsigned long long)guest_mem_dirty_count(gm));
    free(bits);
    free(dst);
    g_rand_free(rng);
    guest_mem_free(gm);
    return 0;
}

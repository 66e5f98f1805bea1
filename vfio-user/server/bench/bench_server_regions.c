/* SPDX-License-Identifier: MIT */
/*
 * Memory the reference server spends per DMA region: the region table
 * as it reports itself, and the heap it really took (mallinfo2), with
 * regions added in address order and in random order. Prints one JSON
 * object per line; "baseline" is the 96-byte budget, so "ratio" above 1
 * means under budget.
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>

#include "private.h"

#define BUDGET 96.0

static void emit(const char *name, size_t n, double value)
{
    printf("{\"bench\": \"%s/%zu\", \"value\": %.2f, \"unit\": \"bytes/region\", "
           "\"baseline\": %.2f, \"ratio\": %.2f}\n",
           name, n, value, BUDGET, BUDGET / value);
    fflush(stdout);
}

static void run(size_t n, bool shuffled, GRand *rng)
{
    vus_map_rules rules = {
        .max_regions = UINT32_MAX,
        .max_region_size = VUS_MAX_REGION_SIZE,
        .overlap_errno = EEXIST,
        .limit_errno = ENOSPC,
    };
    uint64_t *order = g_new(uint64_t, n);
    size_t heap0, heap1;
    vus_dma d;

    for (size_t i = 0; i < n; i++)
        order[i] = i;
    if (shuffled)
        for (size_t i = n - 1; i > 0; i--) {
            size_t j = (size_t)g_rand_int_range(rng, 0, (gint32)(i + 1));
            uint64_t t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
    heap0 = mallinfo2().uordblks;
    if (vus_dma_init(&d) < 0)
        abort();
    for (size_t i = 0; i < n; i++)
        if (vus_dma_map(&d, order[i] * 0x2000, 0x1000, -1, 0, 3, &rules) < 0)
            abort();
    heap1 = mallinfo2().uordblks;
    emit(shuffled ? "server_region_table_random" : "server_region_table_sequential", n,
         (double)interval_map_memory(d.map) / (double)n);
    emit(shuffled ? "server_region_heap_random" : "server_region_heap_sequential", n,
         (double)(heap1 - heap0) / (double)n);
    vus_dma_destroy(&d);
    g_free(order);
}

int main(void)
{
    GRand *rng = g_rand_new_with_seed(42);

    for (size_t n = 1000; n <= 1000000; n *= 10) {
        run(n, false, rng);
        run(n, true, rng);
    }
    g_rand_free(rng);
    return 0;
}

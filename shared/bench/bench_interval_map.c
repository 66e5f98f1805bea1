/* SPDX-License-Identifier: MIT */
/*
 * The interval map against a GTree keyed by intervals with an overlap
 * compare (the design of QEMU's virtio-iommu mapping store), on the
 * same data in the same process. Memory: the bytes the interval map
 * holds (interval_map_memory: whole node chunks, used or not) against the
 * bytes the GTree's nodes, keys and values take from malloc, headers
 * included. Prints one JSON object per line;
 * "ratio" is baseline / value, so above 1 means the interval map wins.
 */
#include <glib.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shared.h"

typedef struct interval {
    uint64_t low, high;
} interval;

typedef struct mapping {
    uint64_t phys;
    uint32_t flags;
} mapping;

/* QEMU's interval_cmp: overlapping intervals compare equal. */
static gint interval_cmp(gconstpointer a, gconstpointer b, gpointer user)
{
    const interval *x = a, *y = b;
    (void)user;
    if (x->high < y->low)
        return -1;
    if (y->high < x->low)
        return 1;
    return 0;
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static size_t heap_used(void)
{
    return mallinfo2().uordblks;
}

static void emit(const char *name, size_t n, double value, const char *unit, double baseline)
{
    printf("{\"bench\": \"%s/%zu\", \"value\": %.2f, \"unit\": \"%s\", \"baseline\": %.2f, "
           "\"ratio\": %.2f}\n",
           name, n, value, unit, baseline, baseline / value);
    fflush(stdout);
}

static void shuffle(uint64_t *a, size_t n, GRand *rng)
{
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = (size_t)g_rand_int_range(rng, 0, (gint32)(i + 1));
        uint64_t t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

#define STRIDE 8192u
#define SIZE 4096u

static volatile uint64_t sink;

static void run(size_t n, GRand *rng)
{
    uint64_t *order = malloc(n * sizeof(*order));
    size_t nlook = n < 1000000 ? 1000000 : n;
    uint64_t *probe = malloc(nlook * sizeof(*probe));
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    shuffle(order, n, rng);
    for (size_t i = 0; i < nlook; i++)
        probe[i] = (uint64_t)g_rand_int_range(rng, 0, (gint32)n) * STRIDE +
                   (uint64_t)g_rand_int_range(rng, 0, SIZE);

    /* ---- build ---- */
    size_t h0 = heap_used();
    double t0 = now_ns();
    GTree *tree = g_tree_new_full(interval_cmp, NULL, g_free, g_free);
    for (size_t i = 0; i < n; i++) {
        interval *k = g_new(interval, 1);
        mapping *v = g_new(mapping, 1);
        k->low = order[i] * STRIDE;
        k->high = k->low + SIZE - 1;
        v->phys = k->low;
        v->flags = 3;
        g_tree_insert(tree, k, v);
    }
    double t_tree_ins = (now_ns() - t0) / (double)n;
    size_t tree_bytes = heap_used() - h0;

    t0 = now_ns();
    interval_map *m8 = interval_map_new(sizeof(uint64_t));
    for (size_t i = 0; i < n; i++) {
        uint64_t s = order[i] * STRIDE;
        interval_map_insert(m8, s, s + SIZE - 1, &s);
    }
    double t_map_ins = (now_ns() - t0) / (double)n;
    size_t map8_bytes = interval_map_memory(m8);

    interval_map *m16 = interval_map_new(sizeof(mapping));
    for (size_t i = 0; i < n; i++) {
        mapping v = {order[i] * STRIDE, 3};
        interval_map_insert(m16, v.phys, v.phys + SIZE - 1, &v);
    }
    size_t map16_bytes = interval_map_memory(m16);

    /* ---- random lookups ---- */
    uint64_t acc = 0;
    t0 = now_ns();
    for (size_t i = 0; i < nlook; i++) {
        interval key = {probe[i], probe[i]};
        mapping *v = g_tree_lookup(tree, &key);
        acc += v->phys;
    }
    double t_tree_look = (now_ns() - t0) / (double)nlook;
    t0 = now_ns();
    for (size_t i = 0; i < nlook; i++) {
        uint64_t *v = interval_map_find(m8, probe[i], NULL);
        acc += *v;
    }
    double t_map_look = (now_ns() - t0) / (double)nlook;
    sink = acc;

    /* ---- in-order iteration over ranges of 64 entries ---- */
    size_t nwin = n / 64 ? n / 64 : 1, visited = 0;
    t0 = now_ns();
    for (size_t w = 0; w < nwin; w++) {
        uint64_t first = (uint64_t)g_rand_int_range(rng, 0, (gint32)n) * STRIDE;
        interval_map_iter it;
        uint64_t *v;
        interval_map_iter_init(&it, m8, first, first + 64 * STRIDE - 1);
        while ((v = interval_map_iter_next(&it, NULL))) {
            acc += *v;
            visited++;
        }
    }
    double t_map_iter = (now_ns() - t0) / (double)(visited ? visited : 1);
    /* GTree: QEMU walks a range by repeated lookups of the next address. */
    size_t tvisited = 0;
    t0 = now_ns();
    for (size_t w = 0; w < nwin; w++) {
        uint64_t first = (uint64_t)g_rand_int_range(rng, 0, (gint32)n) * STRIDE;
        uint64_t last = first + 64 * STRIDE - 1;
        GTreeNode *node = g_tree_lower_bound(tree, &(interval){first, first});
        while (node) {
            const interval *k = g_tree_node_key(node);
            if (k->low > last)
                break;
            acc += ((mapping *)g_tree_node_value(node))->phys;
            tvisited++;
            node = g_tree_node_next(node);
        }
    }
    double t_tree_iter = (now_ns() - t0) / (double)(tvisited ? tvisited : 1);
    sink = acc;

    /* ---- removes, in a fresh random order ---- */
    shuffle(order, n, rng);
    t0 = now_ns();
    for (size_t i = 0; i < n; i++) {
        interval key = {order[i] * STRIDE, order[i] * STRIDE};
        g_tree_remove(tree, &key);
    }
    double t_tree_rm = (now_ns() - t0) / (double)n;
    t0 = now_ns();
    for (size_t i = 0; i < n; i++)
        interval_map_remove(m8, order[i] * STRIDE, NULL);
    double t_map_rm = (now_ns() - t0) / (double)n;

    emit("interval_map.lookup", n, t_map_look, "ns/op", t_tree_look);
    emit("interval_map.insert", n, t_map_ins, "ns/op", t_tree_ins);
    emit("interval_map.remove", n, t_map_rm, "ns/op", t_tree_rm);
    emit("interval_map.iterate", n, t_map_iter, "ns/entry", t_tree_iter);
    emit("interval_map.bytes_per_entry_u64_value", n, (double)map8_bytes / (double)n, "bytes",
         (double)tree_bytes / (double)n);
    emit("interval_map.bytes_per_entry_16b_value", n, (double)map16_bytes / (double)n, "bytes",
         (double)tree_bytes / (double)n);

    g_tree_destroy(tree);
    interval_map_free(m8);
    interval_map_free(m16);
    free(order);
    free(probe);
}

int main(int argc, char **argv)
{
    GRand *rng = g_rand_new_with_seed(42);
    size_t sizes[] = {1000, 100000, 1000000};
    (void)argv;
    for (size_t i = 0; i < G_N_ELEMENTS(sizes); i++) {
        if (argc > 1 && sizes[i] > 100000)
            break; /* any argument: quick mode */
        run(sizes[i], rng);
    }
    g_rand_free(rng);
    return 0;
}

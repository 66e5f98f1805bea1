/* SPDX-License-Identifier: MIT */
#include <criterion/criterion.h>
#include <errno.h>
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared.h"

typedef struct value {
    uint64_t a, b;
} value;

Test(interval_map, empty_map_finds_nothing)
{
    interval_map *m = interval_map_new(sizeof(value));
    cr_assert_not_null(m);
    cr_assert_null(interval_map_find(m, 0, NULL));
    cr_assert_null(interval_map_find(m, UINT64_MAX, NULL));
    cr_assert_eq(interval_map_count(m), 0);
    cr_assert_eq(interval_map_remove(m, 0, NULL), -ENOENT);
    cr_assert_null(interval_map_find_first(m, 0, UINT64_MAX, NULL));
    interval_map_free(m);
}

Test(interval_map, refuses_value_size_too_large)
{
    cr_assert_null(interval_map_new(INTERVAL_MAP_MAX_VALUE + 1));
}

Test(interval_map, whole_u64_space_is_one_entry)
{
    interval_map *m = interval_map_new(sizeof(value));
    value v = {1, 2};
    u64_range r;
    cr_assert_eq(interval_map_insert(m, 0, UINT64_MAX, &v), 0);
    value *got = interval_map_find(m, UINT64_MAX, &r);
    cr_assert_not_null(got);
    cr_assert_eq(got->b, 2);
    cr_assert_eq(r.first, 0);
    cr_assert_eq(r.last, UINT64_MAX);
    cr_assert_not_null(interval_map_find(m, 0, NULL));
    cr_assert_eq(interval_map_insert(m, UINT64_MAX, UINT64_MAX, &v), -EEXIST);
    cr_assert_eq(interval_map_insert(m, 0, 0, &v), -EEXIST);
    cr_assert_eq(interval_map_remove(m, 0, &v), 0);
    cr_assert_eq(interval_map_count(m), 0);
    interval_map_free(m);
}

Test(interval_map, single_address_entries_at_both_ends)
{
    interval_map *m = interval_map_new(0);
    cr_assert_eq(interval_map_insert(m, UINT64_MAX, UINT64_MAX, NULL), 0);
    cr_assert_eq(interval_map_insert(m, 0, 0, NULL), 0);
    cr_assert_eq(interval_map_insert(m, 1, UINT64_MAX - 1, NULL), 0);
    cr_assert_eq(interval_map_count(m), 3);
    u64_range r;
    cr_assert_not_null(interval_map_find(m, UINT64_MAX, &r));
    cr_assert_eq(r.first, UINT64_MAX);
    cr_assert_not_null(interval_map_find(m, 12345, &r));
    cr_assert_eq(r.first, 1);
    interval_map_free(m);
}

Test(interval_map, refuses_overlap_and_inverted_range_unchanged)
{
    interval_map *m = interval_map_new(sizeof(value));
    value v = {7, 7};
    cr_assert_eq(interval_map_insert(m, 0x1000, 0x1fff, &v), 0);
    cr_assert_eq(interval_map_insert(m, 0x1fff, 0x2fff, &v), -EEXIST);
    cr_assert_eq(interval_map_insert(m, 0x0, 0x1000, &v), -EEXIST);
    cr_assert_eq(interval_map_insert(m, 0x0, UINT64_MAX, &v), -EEXIST);
    cr_assert_eq(interval_map_insert(m, 0x1800, 0x1800, &v), -EEXIST);
    cr_assert_eq(interval_map_insert(m, 5, 4, &v), -EINVAL);
    cr_assert_eq(interval_map_insert(m, 0x2000, 0x2fff, &v), 0);
    cr_assert_eq(interval_map_insert(m, 0, 0xfff, &v), 0);
    cr_assert_eq(interval_map_count(m), 3);
    interval_map_free(m);
}

Test(interval_map, values_are_copied_and_writable_in_place)
{
    interval_map *m = interval_map_new(sizeof(value));
    value v = {10, 20}, out;
    interval_map_insert(m, 100, 199, &v);
    v.a = 99;
    value *p = interval_map_find(m, 150, NULL);
    cr_assert_eq(p->a, 10);
    p->b = 42;
    cr_assert_eq(interval_map_remove(m, 100, &out), 0);
    cr_assert_eq(out.b, 42);
    cr_assert_eq(interval_map_remove(m, 100, &out), -ENOENT);
    interval_map_free(m);
}

Test(interval_map, remove_needs_exact_start)
{
    interval_map *m = interval_map_new(0);
    interval_map_insert(m, 100, 199, NULL);
    cr_assert_eq(interval_map_remove(m, 150, NULL), -ENOENT);
    cr_assert_eq(interval_map_remove(m, 101, NULL), -ENOENT);
    cr_assert_eq(interval_map_count(m), 1);
    interval_map_free(m);
}

Test(interval_map, iteration_is_ordered_and_clipped_to_range)
{
    interval_map *m = interval_map_new(sizeof(uint64_t));
    for (uint64_t i = 0; i < 10000; i++) {
        uint64_t v = i;
        cr_assert_eq(interval_map_insert(m, i * 100, i * 100 + 49, &v), 0);
    }
    interval_map_iter it;
    u64_range r;
    uint64_t *v;
    uint64_t expect = 10; /* [1025, 5049]: entries 10 (1000-1049) .. 50 */
    interval_map_iter_init(&it, m, 1025, 5049);
    while ((v = interval_map_iter_next(&it, &r))) {
        cr_assert_eq(*v, expect);
        cr_assert_eq(r.first, expect * 100);
        expect++;
    }
    cr_assert_eq(expect, 51);
    /* A range in a gap overlaps nothing. */
    interval_map_iter_init(&it, m, 1050, 1099);
    cr_assert_null(interval_map_iter_next(&it, NULL));
    /* The whole space visits everything. */
    size_t n = 0;
    interval_map_iter_init(&it, m, 0, UINT64_MAX);
    while (interval_map_iter_next(&it, NULL))
        n++;
    cr_assert_eq(n, 10000);
    cr_assert_gt(interval_map_memory(m), 10000 * 24);
    interval_map_clear(m);
    cr_assert_eq(interval_map_count(m), 0);
    cr_assert_null(interval_map_find(m, 100, NULL));
    interval_map_free(m);
}

Test(interval_map, lookup_finds_predecessor_across_leaf_after_separator_removed)
{
    /* Fill several leaves, then remove the first entry of each leaf so
     * separators no longer name a live start. */
    interval_map *m = interval_map_new(0);
    for (uint64_t i = 0; i < 2000; i++)
        interval_map_insert(m, i * 10, i * 10 + 8, NULL);
    for (uint64_t i = 0; i < 2000; i += 3)
        cr_assert_eq(interval_map_remove(m, i * 10, NULL), 0);
    for (uint64_t i = 0; i < 2000; i++) {
        bool live = i % 3 != 0;
        for (uint64_t a = i * 10; a < i * 10 + 10; a++) {
            u64_range r;
            void *p = interval_map_find(m, a, &r);
            bool want = live && a % 10 != 9;
            cr_assert_eq(p != NULL, want, "addr %lu", (unsigned long)a);
            if (want)
                cr_assert_eq(r.first, i * 10);
        }
    }
    interval_map_free(m);
}

/* ---- randomized test against a sorted array ---- */

typedef struct ref_entry {
    uint64_t start, end, val;
} ref_entry;

typedef struct ref_model {
    ref_entry *e;
    size_t n, cap;
} ref_model;

/* Index of the first entry with start > addr. */
static size_t ref_upper(const ref_model *r, uint64_t addr)
{
    size_t lo = 0, hi = r->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (r->e[mid].start <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int ref_insert(ref_model *r, uint64_t s, uint64_t e, uint64_t v)
{
    size_t i = ref_upper(r, s);
    if (i > 0 && r->e[i - 1].end >= s)
        return -EEXIST;
    if (i < r->n && r->e[i].start <= e)
        return -EEXIST;
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 1024;
        r->e = realloc(r->e, r->cap * sizeof(*r->e));
    }
    memmove(&r->e[i + 1], &r->e[i], (r->n - i) * sizeof(*r->e));
    r->e[i] = (ref_entry){s, e, v};
    r->n++;
    return 0;
}

static const ref_entry *ref_find(const ref_model *r, uint64_t addr)
{
    size_t i = ref_upper(r, addr);
    if (i > 0 && r->e[i - 1].end >= addr)
        return &r->e[i - 1];
    return NULL;
}

static int ref_remove(ref_model *r, uint64_t start)
{
    size_t i = ref_upper(r, start);
    if (i == 0 || r->e[i - 1].start != start)
        return -ENOENT;
    memmove(&r->e[i - 1], &r->e[i], (r->n - i) * sizeof(*r->e));
    r->n--;
    return 0;
}

/* Addresses clustered in a small space (so ops collide) or anywhere. */
static uint64_t rand_addr(GRand *rng, uint64_t space)
{
    switch (g_rand_int_range(rng, 0, 20)) {
    case 0:
        return 0;
    case 1:
        return UINT64_MAX - (uint64_t)g_rand_int_range(rng, 0, 4);
    default:
        return ((uint64_t)g_rand_int(rng) * 977) % space;
    }
}

typedef struct removed_log {
    u64_range r[64];
    uint64_t v[64];
    unsigned n;
} removed_log;

static void log_removed(void *opaque, const u64_range *r, const void *value)
{
    removed_log *log = opaque;
    cr_assert_lt(log->n, 64u);
    log->r[log->n] = *r;
    memcpy(&log->v[log->n], value, sizeof(uint64_t));
    log->n++;
}

/* One interval_map_remove_within against the model: half the time the
 * exact key of a live entry (the usual UNMAP), else a random window. */
static void run_remove_within(interval_map *m, ref_model *ref, GRand *rng, uint64_t space,
                              uint64_t seed, unsigned op)
{
    uint64_t a, b;
    if (ref->n && g_rand_boolean(rng)) {
        const ref_entry *e = &ref->e[g_rand_int_range(rng, 0, (gint32)ref->n)];
        a = e->start;
        b = e->end;
    } else {
        a = rand_addr(rng, space);
        uint64_t len = (uint64_t)g_rand_int_range(rng, 0, 200);
        b = UINT64_MAX - a < len ? UINT64_MAX : a + len;
    }
    size_t lo = ref_upper(ref, a);
    if (lo > 0 && ref->e[lo - 1].end >= a)
        lo--;
    size_t hi = lo;
    while (hi < ref->n && ref->e[hi].start <= b)
        hi++;
    bool split = hi > lo && (ref->e[lo].start < a || ref->e[hi - 1].end > b);
    size_t before = interval_map_count(m);
    removed_log log = {.n = 0};
    int got = interval_map_remove_within(m, a, b, log_removed, &log);
    if (split) {
        cr_assert_eq(got, -ERANGE, "seed %lu op %u remove_within [%lx,%lx]", (unsigned long)seed,
                     op, (unsigned long)a, (unsigned long)b);
        cr_assert_eq(log.n, 0u);
        cr_assert_eq(interval_map_count(m), before);
        return;
    }
    cr_assert_eq(got, (int)(hi - lo), "seed %lu op %u remove_within [%lx,%lx]", (unsigned long)seed,
                 op, (unsigned long)a, (unsigned long)b);
    cr_assert_eq(log.n, (unsigned)(hi - lo));
    for (unsigned k = 0; k < log.n; k++) {
        cr_assert_eq(log.r[k].first, ref->e[lo].start);
        cr_assert_eq(log.r[k].last, ref->e[lo].end);
        cr_assert_eq(log.v[k], ref->e[lo].val);
        ref_remove(ref, ref->e[lo].start);
    }
    cr_assert_eq(interval_map_count(m), ref->n);
}

static void run_random(uint64_t seed, unsigned ops, uint64_t space)
{
    GRand *rng = g_rand_new_with_seed((guint32)seed);
    interval_map *m = interval_map_new(sizeof(uint64_t));
    ref_model ref = {0};

    for (unsigned op = 0; op < ops; op++) {
        int kind = g_rand_int_range(rng, 0, 100);
        if (kind < 45) {
            uint64_t s = rand_addr(rng, space);
            uint64_t len = (uint64_t)g_rand_int_range(rng, 0, 64);
            uint64_t e = (UINT64_MAX - s < len) ? UINT64_MAX : s + len;
            uint64_t v = g_rand_int(rng);
            int want = ref_insert(&ref, s, e, v);
            int got = interval_map_insert(m, s, e, &v);
            cr_assert_eq(got, want, "seed %lu op %u insert [%lx,%lx]", (unsigned long)seed, op,
                         (unsigned long)s, (unsigned long)e);
        } else if (kind < 68) {
            run_remove_within(m, &ref, rng, space, seed, op);
        } else if (kind < 80) {
            uint64_t s;
            if (ref.n && g_rand_boolean(rng))
                s = ref.e[g_rand_int_range(rng, 0, (gint32)ref.n)].start;
            else
                s = rand_addr(rng, space);
            uint64_t want_v = 0, got_v = 1;
            const ref_entry *re = ref_find(&ref, s);
            if (re && re->start == s)
                want_v = re->val;
            int want = ref_remove(&ref, s);
            int got = interval_map_remove(m, s, &got_v);
            cr_assert_eq(got, want, "seed %lu op %u remove %lx", (unsigned long)seed, op,
                         (unsigned long)s);
            if (!got)
                cr_assert_eq(got_v, want_v);
        } else if (kind < 97) {
            uint64_t a = rand_addr(rng, space);
            const ref_entry *re = ref_find(&ref, a);
            u64_range r;
            uint64_t *v = interval_map_find(m, a, &r);
            cr_assert_eq(v != NULL, re != NULL, "seed %lu op %u find %lx", (unsigned long)seed, op,
                         (unsigned long)a);
            if (v) {
                cr_assert_eq(*v, re->val);
                cr_assert_eq(r.first, re->start);
                cr_assert_eq(r.last, re->end);
            }
        } else if (kind < 99) {
            uint64_t a = rand_addr(rng, space), b = rand_addr(rng, space);
            if (a > b) {
                uint64_t t = a;
                a = b;
                b = t;
            }
            size_t i = ref_upper(&ref, a);
            if (i > 0 && ref.e[i - 1].end >= a)
                i--;
            interval_map_iter it;
            u64_range r;
            uint64_t *v;
            interval_map_iter_init(&it, m, a, b);
            while ((v = interval_map_iter_next(&it, &r))) {
                cr_assert_lt(i, ref.n);
                cr_assert_eq(r.first, ref.e[i].start, "seed %lu op %u iter", (unsigned long)seed,
                             op);
                cr_assert_eq(*v, ref.e[i].val);
                i++;
            }
            cr_assert(i == ref.n || ref.e[i].start > b, "seed %lu op %u iter end",
                      (unsigned long)seed, op);
        } else {
            /* Occasionally drain most of the map to exercise merges. */
            while (ref.n > 10) {
                size_t k = (size_t)g_rand_int_range(rng, 0, (gint32)ref.n);
                uint64_t s = ref.e[k].start;
                cr_assert_eq(interval_map_remove(m, s, NULL), 0);
                ref_remove(&ref, s);
            }
        }
        cr_assert_eq(interval_map_count(m), ref.n);
    }
    /* Final full comparison in order. */
    interval_map_iter it;
    u64_range r;
    size_t i = 0;
    interval_map_iter_init(&it, m, 0, UINT64_MAX);
    while (interval_map_iter_next(&it, &r)) {
        cr_assert_eq(r.first, ref.e[i].start);
        cr_assert_eq(r.last, ref.e[i].end);
        i++;
    }
    cr_assert_eq(i, ref.n);
    free(ref.e);
    interval_map_free(m);
    g_rand_free(rng);
}

static uint64_t test_seed(void)
{
    const char *s = getenv("TEST_SEED");
    uint64_t seed = s ? strtoull(s, NULL, 0) : (uint64_t)g_get_real_time();
    fprintf(stderr, "interval_map random test seed: %lu (set TEST_SEED to repeat)\n",
            (unsigned long)seed);
    return seed;
}

Test(interval_map, matches_sorted_array_model_over_200k_random_ops)
{
    uint64_t seed = test_seed();
    run_random(seed, 100000, 200000);      /* dense: many collisions */
    run_random(seed + 1, 100000, 1 << 24); /* sparse: deep tree */
}

Test(interval_map, remove_within_is_all_or_nothing)
{
    interval_map *m = interval_map_new(sizeof(uint64_t));
    size_t empty = interval_map_memory(m);
    for (uint64_t i = 0; i < 4; i++) {
        uint64_t v = i;
        cr_assert_eq(interval_map_insert(m, 0x1000 * (i + 1), 0x1000 * (i + 1) + 0xfff, &v), 0);
    }
    removed_log log = {.n = 0};
    /* Would split the first or the last entry: nothing goes. */
    cr_assert_eq(interval_map_remove_within(m, 0x1001, 0x4fff, log_removed, &log), -ERANGE);
    cr_assert_eq(interval_map_remove_within(m, 0x1000, 0x4ffe, log_removed, &log), -ERANGE);
    cr_assert_eq(interval_map_remove_within(m, 0x2000, 0x2ffe, log_removed, &log), -ERANGE);
    cr_assert_eq(log.n, 0u);
    cr_assert_eq(interval_map_count(m), 4);
    cr_assert_eq(interval_map_remove_within(m, 1, 0, NULL, NULL), -EINVAL);
    /* Holes are fine; nothing there is not an error. */
    cr_assert_eq(interval_map_remove_within(m, 0, 0xfff, log_removed, &log), 0);
    cr_assert_eq(interval_map_remove_within(m, 0x2000, 0x2fff, log_removed, &log), 1);
    cr_assert_eq(interval_map_remove_within(m, 0, 0x3fff, log_removed, &log), 2);
    cr_assert_eq(interval_map_remove_within(m, 0, UINT64_MAX, log_removed, &log), 1);
    cr_assert_eq(log.n, 4u);
    const uint64_t want_first[] = {0x2000, 0x1000, 0x3000, 0x4000}, want_v[] = {1, 0, 2, 3};
    for (unsigned k = 0; k < 4; k++) {
        cr_assert_eq(log.r[k].first, want_first[k]);
        cr_assert_eq(log.r[k].last, want_first[k] + 0xfff);
        cr_assert_eq(log.v[k], want_v[k]);
    }
    cr_assert_eq(interval_map_count(m), 0);
    cr_assert_eq(interval_map_memory(m), empty);
    interval_map_free(m);
}

Test(interval_map, an_emptied_map_returns_its_memory)
{
    interval_map *m = interval_map_new(sizeof(uint64_t));
    size_t empty = interval_map_memory(m);
    for (uint64_t i = 0; i < 10000; i++)
        cr_assert_eq(interval_map_insert(m, i * 16, i * 16 + 15, &i), 0);
    cr_assert_gt(interval_map_memory(m), empty + 10000 * 16);
    cr_assert_eq(interval_map_remove_within(m, 0, UINT64_MAX, NULL, NULL), 10000);
    cr_assert_eq(interval_map_memory(m), empty);
    /* And grows again from nothing. */
    cr_assert_eq(interval_map_insert(m, 5, 6, &empty), 0);
    cr_assert_not_null(interval_map_find(m, 6, NULL));
    interval_map_free(m);
}

Test(interval_map, a_map_that_shrank_gives_memory_back_and_keeps_its_entries)
{
    interval_map *m = interval_map_new(sizeof(uint64_t));
    GRand *rng = g_rand_new_with_seed(7);
    enum { N = 50000 };
    static uint64_t order[N];
    for (uint64_t i = 0; i < N; i++)
        order[i] = i;
    for (size_t i = N - 1; i > 0; i--) {
        size_t j = (size_t)g_rand_int_range(rng, 0, (gint32)(i + 1));
        uint64_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (uint64_t i = 0; i < N; i++) {
        uint64_t v = order[i] * 3;
        cr_assert_eq(interval_map_insert(m, order[i] * 100, order[i] * 100 + 49, &v), 0);
    }
    size_t full = interval_map_memory(m);
    /* Remove all but every 100th entry, in random order. */
    for (uint64_t i = 0; i < N; i++)
        if (order[i] % 100 != 0)
            cr_assert_eq(interval_map_remove(m, order[i] * 100, NULL), 0);
    cr_assert_eq(interval_map_count(m), N / 100);
    cr_assert_lt(interval_map_memory(m), full / 10, "held %zu of %zu", interval_map_memory(m),
                 full);
    /* Every survivor is found with its value, in order, and the map still
     * takes inserts and removes around them. */
    interval_map_iter it;
    u64_range r;
    uint64_t *v, expect = 0;
    interval_map_iter_init(&it, m, 0, UINT64_MAX);
    while ((v = interval_map_iter_next(&it, &r))) {
        cr_assert_eq(r.first, expect * 100);
        cr_assert_eq(*v, expect * 3);
        cr_assert_eq(interval_map_find(m, expect * 100 + 49, NULL), v);
        expect += 100;
    }
    cr_assert_eq(expect, N);
    for (uint64_t i = 0; i < N; i += 100) {
        uint64_t w = i;
        cr_assert_eq(interval_map_insert(m, i * 100 + 50, i * 100 + 99, &w), 0);
        cr_assert_eq(interval_map_insert(m, i * 100 + 40, i * 100 + 60, &w), -EEXIST);
    }
    cr_assert_eq(interval_map_remove_within(m, 0, UINT64_MAX, NULL, NULL), 2 * N / 100);
    g_rand_free(rng);
    interval_map_free(m);
}

Test(interval_map, a_large_map_grows_into_huge_page_chunks_and_returns_them)
{
    /* 700k entries of 16-byte values: over 16 MiB of nodes, so the later
     * chunks are the 2 MiB mmap'd ones. */
    struct val16 {
        uint64_t a, b;
    } v;
    interval_map *m = interval_map_new(sizeof(v));
    size_t empty = interval_map_memory(m);
    const uint64_t n = 700000;
    for (uint64_t i = 0; i < n; i++) {
        v = (struct val16){i, ~i};
        cr_assert_eq(interval_map_insert(m, i << 12, (i << 12) + 4095, &v), 0);
    }
    cr_assert_gt(interval_map_memory(m), 16u << 20);
    for (uint64_t i = 0; i < n; i += 9973) {
        struct val16 *p = interval_map_find(m, (i << 12) + 17, NULL);
        cr_assert_not_null(p);
        cr_assert_eq(p->a, i);
        cr_assert_eq(p->b, ~i);
    }
    cr_assert_eq(interval_map_remove_within(m, 0, UINT64_MAX, NULL, NULL), (int)n);
    cr_assert_eq(interval_map_memory(m), empty);
    interval_map_free(m);
}

Test(interval_map, ascending_and_descending_fill_keeps_leaves_full)
{
    interval_map *up = interval_map_new(8), *down = interval_map_new(8);
    uint64_t v = 0;
    for (uint64_t i = 0; i < 100000; i++) {
        interval_map_insert(up, i * 4096, i * 4096 + 4095, &v);
        interval_map_insert(down, (200000 - i) * 4096, (200000 - i) * 4096 + 4095, &v);
    }
    /* Sequential fills pack leaves: well under 48 bytes per entry. */
    cr_assert_lt(interval_map_memory(up) / 100000, 40);
    cr_assert_lt(interval_map_memory(down) / 100000, 40);
    interval_map_free(up);
    interval_map_free(down);
}

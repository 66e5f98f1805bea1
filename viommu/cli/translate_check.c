/* SPDX-License-Identifier: MIT */
/*
 * translate_check.c - compares the device model's translations with the
 * ones a QEMU trace recorded (see translate_check.h for the rules).
 */
#include "translate_check.h"

#include <errno.h>
#include <string.h>

/* One access waiting for QEMU's result, per endpoint. */
typedef struct pending_access {
    uint64_t line;
    uint64_t addr;
    uint32_t access;
    int ours;
    bool ours_bypass;
    uint64_t ours_gpa;
} pending_access;

struct translate_check {
    GHashTable *pending; /* endpoint -> pending_access */
    translate_mismatch_fn fn;
    void *opaque;
    translate_check_stats stats;
};

translate_check *translate_check_new(translate_mismatch_fn fn, void *opaque)
{
    translate_check *tc = g_new0(translate_check, 1);

    tc->pending = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, g_free);
    tc->fn = fn;
    tc->opaque = opaque;
    return tc;
}

void translate_check_free(translate_check *tc)
{
    if (!tc)
        return;
    g_hash_table_destroy(tc->pending);
    g_free(tc);
}

static void report(translate_check *tc, uint32_t endpoint, const pending_access *p,
                   bool qemu_translated, uint64_t qemu_gpa)
{
    translate_mismatch m = {
        .line = p->line,
        .endpoint = endpoint,
        .addr = p->addr,
        .access = p->access,
        .qemu_translated = qemu_translated,
        .qemu_gpa = qemu_gpa,
        .ours = p->ours,
        .ours_bypass = p->ours_bypass,
        .ours_gpa = p->ours_gpa,
    };

    tc->stats.mismatches++;
    if (tc->fn)
        tc->fn(tc->opaque, &m);
}

/* QEMU printed no result for @p: it bypassed or refused, and so must we. */
static void settle_without_result(translate_check *tc, uint32_t endpoint, const pending_access *p)
{
    if (p->ours != 0 || p->ours_bypass)
        tc->stats.unmapped++;
    else
        report(tc, endpoint, p, false, 0);
}

int translate_check_event(translate_check *tc, viommu *dev, const qemu_log_event *ev)
{
    if (ev->type == QEMU_LOG_TRANSLATE) {
        uint32_t endpoint = ev->u.translate.endpoint;
        pending_access *prev = g_hash_table_lookup(tc->pending, GUINT_TO_POINTER(endpoint));
        pending_access *p;
        viommu_translation t;

        if (prev) {
            settle_without_result(tc, endpoint, prev);
            g_hash_table_remove(tc->pending, GUINT_TO_POINTER(endpoint));
        }
        /* QEMU's IOMMU_RO is 1 and IOMMU_WO 2, the same bits as VIOMMU_ACCESS_*. */
        if (ev->u.translate.flag == 0) {
            tc->stats.skipped++;
            return 0;
        }
        tc->stats.accesses++;
        p = g_try_new0(pending_access, 1);
        if (!p)
            return -ENOMEM;
        p->line = ev->line;
        p->addr = ev->u.translate.addr;
        p->access = ev->u.translate.flag;
        p->ours = viommu_translate(dev, endpoint, p->addr, p->access, &t);
        if (p->ours == 0) {
            p->ours_bypass = t.bypass;
            p->ours_gpa = t.gpa;
        }
        g_hash_table_insert(tc->pending, GUINT_TO_POINTER(endpoint), p);
        return 0;
    }
    if (ev->type == QEMU_LOG_TRANSLATE_OUT) {
        uint32_t endpoint = ev->u.translate_out.endpoint;
        pending_access *p = g_hash_table_lookup(tc->pending, GUINT_TO_POINTER(endpoint));

        if (!p || p->addr != ev->u.translate_out.addr) {
            tc->stats.unpaired++;
            return 0;
        }
        if (p->ours == 0 && !p->ours_bypass && p->ours_gpa == ev->u.translate_out.translated)
            tc->stats.translated++;
        else
            report(tc, endpoint, p, true, ev->u.translate_out.translated);
        g_hash_table_remove(tc->pending, GUINT_TO_POINTER(endpoint));
    }
    return 0;
}

void translate_check_finish(translate_check *tc)
{
    GHashTableIter it;
    gpointer key, value;

    g_hash_table_iter_init(&it, tc->pending);
    while (g_hash_table_iter_next(&it, &key, &value)) {
        settle_without_result(tc, GPOINTER_TO_UINT(key), value);
        g_hash_table_iter_remove(&it);
    }
}

void translate_check_get_stats(const translate_check *tc, translate_check_stats *out)
{
    *out = tc->stats;
}

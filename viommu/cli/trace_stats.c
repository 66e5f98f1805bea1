/* SPDX-License-Identifier: MIT */
/*
 * trace_stats.c - the statistics of `viommu trace summarize`. Every name
 * printed is one of this module's fixed strings, so the JSON output needs
 * no escaping.
 */
#include "trace_stats.h"

#include <inttypes.h>
#include <string.h>

#include <glib.h>

#include "viommu.h"

#define N_TYPES (VIRTIO_IOMMU_T_PROBE + 1)
#define N_STATUSES (VIRTIO_IOMMU_S_NOMEM + 1)

/* One domain ID's history: it may die and be created again. */
typedef struct dom_stats {
    uint32_t id;
    uint32_t endpoints;
    interval_map *live; /* the mappings now in place (value: phys_start) */
    uint64_t live_count;
    uint64_t max_live;
    uint64_t maps_ok;
    uint64_t unmaps_ok;
    GHashTable *starts; /* every virt_start mapped so far (uint64_t *) */
} dom_stats;

struct trace_stats {
    const char *format;
    bool statuses_from_replay;

    uint64_t requests;
    uint64_t by_type[N_TYPES];
    uint64_t other_types;
    uint64_t by_status[N_STATUSES];
    uint64_t no_status;
    uint64_t other_statuses;

    uint64_t map_sizes[TRACE_STATS_BUCKETS];
    uint64_t inverted_maps; /* virt_end < virt_start: no size */

    GHashTable *domains;   /* u32 id -> dom_stats * */
    GHashTable *endpoints; /* u32 endpoint -> u32 domain + 1 */
    uint64_t maps_ok, maps_reusing;
    uint64_t unmaps_ok, unmaps_nothing, unmaps_several, unmaps_max_covered;

    bool batches_known;
    uint64_t batch_cur, batch_len, batches, batch_max;
    uint64_t batch_sizes[TRACE_STATS_BUCKETS];

    uint64_t events[TRACE_EVENT_COUNT];
    uint64_t vu_sends, vu_replies, vu_waits, vu_bytes_sent, vu_bytes_received, vu_fds, vu_errors;
    uint64_t dirty_bitmaps, dirty_pages;
};

static void dom_free(gpointer p)
{
    dom_stats *d = p;
    interval_map_free(d->live);
    g_hash_table_destroy(d->starts);
    g_free(d);
}

trace_stats *trace_stats_new(void)
{
    trace_stats *s = g_new0(trace_stats, 1);
    s->format = "jsonl";
    s->domains = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, dom_free);
    s->endpoints = g_hash_table_new(g_direct_hash, g_direct_equal);
    return s;
}

void trace_stats_free(trace_stats *s)
{
    if (!s)
        return;
    g_hash_table_destroy(s->domains);
    g_hash_table_destroy(s->endpoints);
    g_free(s);
}

void trace_stats_set_source(trace_stats *s, const char *format, bool statuses_from_replay)
{
    s->format = format;
    s->statuses_from_replay = statuses_from_replay;
}

uint64_t trace_stats_requests(const trace_stats *s)
{
    return s->requests;
}

/* The bucket of @size bytes, where 0 stands for 2^64 (a whole-space range). */
static unsigned pow2_bucket(uint64_t size)
{
    return size == 0 ? 64 : 63 - (unsigned)__builtin_clzll(size);
}

static dom_stats *domain(trace_stats *s, uint32_t id)
{
    dom_stats *d = g_hash_table_lookup(s->domains, GUINT_TO_POINTER(id));
    if (!d) {
        d = g_new0(dom_stats, 1);
        d->id = id;
        d->live = interval_map_new(sizeof(uint64_t));
        d->starts = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, NULL);
        g_hash_table_insert(s->domains, GUINT_TO_POINTER(id), d);
    }
    return d;
}

/* @ep leaves the domain it is in; the domain's mappings go with its last endpoint. */
static void leave(trace_stats *s, uint32_t ep)
{
    gpointer v;
    if (!g_hash_table_lookup_extended(s->endpoints, GUINT_TO_POINTER(ep), NULL, &v))
        return;
    g_hash_table_remove(s->endpoints, GUINT_TO_POINTER(ep));
    dom_stats *d = domain(s, (uint32_t)(GPOINTER_TO_UINT(v) - 1));
    if (d->endpoints > 0 && --d->endpoints == 0) {
        interval_map_free(d->live);
        d->live = interval_map_new(sizeof(uint64_t));
        d->live_count = 0;
    }
}

static void attach(trace_stats *s, uint32_t dom, uint32_t ep)
{
    gpointer v;
    if (g_hash_table_lookup_extended(s->endpoints, GUINT_TO_POINTER(ep), NULL, &v) &&
        GPOINTER_TO_UINT(v) - 1 == dom)
        return;
    leave(s, ep);
    dom_stats *d = domain(s, dom);
    d->endpoints++;
    g_hash_table_insert(s->endpoints, GUINT_TO_POINTER(ep), GUINT_TO_POINTER(dom + 1u));
}

static void map_ok(trace_stats *s, const trace_stats_request *r)
{
    dom_stats *d = domain(s, r->domain);
    uint64_t key = r->virt_start;
    s->maps_ok++;
    d->maps_ok++;
    if (g_hash_table_contains(d->starts, &key))
        s->maps_reusing++;
    else
        g_hash_table_add(d->starts, g_memdup2(&key, sizeof(key)));
    if (r->virt_end < r->virt_start ||
        interval_map_insert(d->live, r->virt_start, r->virt_end, &r->phys_start) < 0)
        return; /* not a mapping this bookkeeping can hold (an overlap) */
    d->live_count++;
    if (d->live_count > d->max_live)
        d->max_live = d->live_count;
}

static void unmap_ok(trace_stats *s, const trace_stats_request *r)
{
    dom_stats *d = domain(s, r->domain);
    s->unmaps_ok++;
    d->unmaps_ok++;
    if (r->virt_end < r->virt_start)
        return;
    GArray *starts = g_array_new(FALSE, FALSE, sizeof(uint64_t));
    interval_map_iter it;
    u64_range range;
    interval_map_iter_init(&it, d->live, r->virt_start, r->virt_end);
    while (interval_map_iter_next(&it, &range))
        g_array_append_val(starts, range.first);
    for (guint i = 0; i < starts->len; i++)
        interval_map_remove(d->live, g_array_index(starts, uint64_t, i), NULL);
    d->live_count -= starts->len;
    if (starts->len == 0)
        s->unmaps_nothing++;
    if (starts->len > 1)
        s->unmaps_several++;
    if (starts->len > s->unmaps_max_covered)
        s->unmaps_max_covered = starts->len;
    g_array_free(starts, TRUE);
}

static void end_batch(trace_stats *s)
{
    if (s->batch_len == 0)
        return;
    s->batches++;
    s->batch_sizes[pow2_bucket(s->batch_len)]++;
    if (s->batch_len > s->batch_max)
        s->batch_max = s->batch_len;
    s->batch_len = 0;
}

void trace_stats_add_request(trace_stats *s, const trace_stats_request *r)
{
    s->requests++;
    if (r->type < N_TYPES && viommu_type_name(r->type))
        s->by_type[r->type]++;
    else
        s->other_types++;
    if (r->status == VIOMMU_STATUS_NONE)
        s->no_status++;
    else if (r->status >= 0 && r->status < N_STATUSES)
        s->by_status[r->status]++;
    else
        s->other_statuses++;

    if (r->type == VIRTIO_IOMMU_T_MAP) {
        if (r->virt_end < r->virt_start)
            s->inverted_maps++;
        else
            s->map_sizes[pow2_bucket(r->virt_end - r->virt_start + 1)]++;
    }
    if (r->status == VIRTIO_IOMMU_S_OK) {
        switch (r->type) {
        case VIRTIO_IOMMU_T_ATTACH:
            attach(s, r->domain, r->endpoint);
            break;
        case VIRTIO_IOMMU_T_DETACH:
            leave(s, r->endpoint);
            break;
        case VIRTIO_IOMMU_T_MAP:
            map_ok(s, r);
            break;
        case VIRTIO_IOMMU_T_UNMAP:
            unmap_ok(s, r);
            break;
        default:
            break;
        }
    }
    if (r->batch != 0) {
        s->batches_known = true;
        if (r->batch != s->batch_cur)
            end_batch(s);
        s->batch_cur = r->batch;
        s->batch_len++;
    }
}

void trace_stats_add_event(trace_stats *s, const trace_event *ev)
{
    if ((unsigned)ev->id < TRACE_EVENT_COUNT)
        s->events[ev->id]++;
    switch (ev->id) {
    case TRACE_EV_request_done: {
        const trace_request_done_fields *f = &ev->u.request_done;
        trace_stats_request r = {
            .type = f->type > UINT8_MAX ? UINT8_MAX : (uint8_t)f->type,
            .domain = f->domain,
            .endpoint = f->endpoint,
            .virt_start = f->virt_start,
            .virt_end = f->virt_end,
            .phys_start = f->phys_start,
            .flags = f->flags,
            .status = f->status > INT32_MAX ? INT32_MAX : (int)f->status,
            .batch = f->batch,
        };
        trace_stats_add_request(s, &r);
        break;
    }
    case TRACE_EV_vfio_user_send:
        s->vu_sends++;
        s->vu_bytes_sent += ev->u.vfio_user_send.size;
        s->vu_fds += ev->u.vfio_user_send.fds;
        break;
    case TRACE_EV_vfio_user_reply:
        s->vu_replies++;
        s->vu_bytes_received += ev->u.vfio_user_reply.size;
        s->vu_errors += ev->u.vfio_user_reply.error != 0;
        break;
    case TRACE_EV_vfio_user_wait:
        s->vu_waits++;
        break;
    case TRACE_EV_dirty_collected:
        s->dirty_bitmaps++;
        s->dirty_pages += ev->u.dirty_collected.pages_set;
        break;
    default:
        break;
    }
}

/* ---- printing -------------------------------------------------------- */

static const char *status_name(unsigned st)
{
    const char *n = viommu_status_name((int)st);
    return n ? n : "UNKNOWN";
}

static int cmp_u32(gconstpointer a, gconstpointer b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static GArray *sorted_domains(const trace_stats *s)
{
    GArray *ids = g_array_new(FALSE, FALSE, sizeof(uint32_t));
    GHashTableIter it;
    gpointer k;
    g_hash_table_iter_init(&it, s->domains);
    while (g_hash_table_iter_next(&it, &k, NULL)) {
        uint32_t id = GPOINTER_TO_UINT(k);
        g_array_append_val(ids, id);
    }
    g_array_sort(ids, cmp_u32);
    return ids;
}

/* "N/D" with three decimals, or "0" when D is 0. */
static double ratio(uint64_t n, uint64_t d)
{
    return d ? (double)n / (double)d : 0.0;
}

static bool has_vfio_user(const trace_stats *s)
{
    return s->vu_sends || s->vu_replies || s->vu_waits;
}

static void print_hist_json(FILE *out, const uint64_t *h)
{
    bool first = true;
    fputc('{', out);
    for (unsigned b = 0; b < TRACE_STATS_BUCKETS; b++) {
        if (!h[b])
            continue;
        /* Keys are the bucket's lower bound, a string because 2^64 is one. */
        if (b == 64)
            fprintf(out, "%s\"18446744073709551616\":%" PRIu64, first ? "" : ",", h[b]);
        else
            fprintf(out, "%s\"%" PRIu64 "\":%" PRIu64, first ? "" : ",", UINT64_C(1) << b, h[b]);
        first = false;
    }
    fputc('}', out);
}

static void print_json(const trace_stats *s, FILE *out)
{
    fprintf(out, "{\"summary\":{\"format\":\"%s\",\"statuses_from\":\"%s\",\"requests\":%" PRIu64,
            s->format, s->statuses_from_replay ? "replay" : "trace", s->requests);
    fprintf(out, ",\"types\":{");
    bool first = true;
    for (unsigned t = 0; t < N_TYPES; t++) {
        if (!viommu_type_name((int)t))
            continue;
        fprintf(out, "%s\"%s\":%" PRIu64, first ? "" : ",", viommu_type_name((int)t),
                s->by_type[t]);
        first = false;
    }
    fprintf(out, ",\"other\":%" PRIu64 "},\"statuses\":{", s->other_types);
    first = true;
    for (unsigned st = 0; st < N_STATUSES; st++) {
        if (!s->by_status[st])
            continue;
        fprintf(out, "%s\"%s\":%" PRIu64, first ? "" : ",", status_name(st), s->by_status[st]);
        first = false;
    }
    fprintf(out, "%s\"NONE\":%" PRIu64 ",\"other\":%" PRIu64 "}", first ? "" : ",", s->no_status,
            s->other_statuses);

    fprintf(out, ",\"map_sizes\":");
    print_hist_json(out, s->map_sizes);
    fprintf(out, ",\"inverted_maps\":%" PRIu64, s->inverted_maps);

    fprintf(out, ",\"domains\":[");
    GArray *ids = sorted_domains(s);
    for (guint i = 0; i < ids->len; i++) {
        const dom_stats *d =
            g_hash_table_lookup(s->domains, GUINT_TO_POINTER(g_array_index(ids, uint32_t, i)));
        fprintf(out,
                "%s{\"domain\":%" PRIu32 ",\"maps\":%" PRIu64 ",\"unmaps\":%" PRIu64
                ",\"max_live\":%" PRIu64 ",\"live_at_end\":%" PRIu64 "}",
                i ? "," : "", d->id, d->maps_ok, d->unmaps_ok, d->max_live, d->live_count);
    }
    g_array_free(ids, TRUE);
    fprintf(out, "]");

    fprintf(out,
            ",\"iova_reuse\":{\"maps\":%" PRIu64 ",\"reusing\":%" PRIu64 ",\"share\":%.4f}"
            ",\"unmaps\":{\"ok\":%" PRIu64 ",\"covering_none\":%" PRIu64
            ",\"covering_several\":%" PRIu64 ",\"max_covered\":%" PRIu64 "}",
            s->maps_ok, s->maps_reusing, ratio(s->maps_reusing, s->maps_ok), s->unmaps_ok,
            s->unmaps_nothing, s->unmaps_several, s->unmaps_max_covered);

    if (s->batches_known) {
        /* The open batch counts too, without changing the state. */
        uint64_t sizes[TRACE_STATS_BUCKETS];
        memcpy(sizes, s->batch_sizes, sizeof(sizes));
        uint64_t batches = s->batches, max = s->batch_max;
        if (s->batch_len) {
            sizes[pow2_bucket(s->batch_len)]++;
            batches++;
            if (s->batch_len > max)
                max = s->batch_len;
        }
        fprintf(out,
                ",\"batches\":{\"count\":%" PRIu64 ",\"max_requests\":%" PRIu64
                ",\"requests_per_batch\":%.4f,\"sizes\":",
                batches, max, ratio(s->requests, batches));
        print_hist_json(out, sizes);
        fputc('}', out);
    } else {
        fprintf(out, ",\"batches\":null");
    }

    if (has_vfio_user(s))
        fprintf(out,
                ",\"vfio_user\":{\"messages\":%" PRIu64 ",\"replies\":%" PRIu64
                ",\"waits\":%" PRIu64 ",\"bytes_sent\":%" PRIu64 ",\"bytes_received\":%" PRIu64
                ",\"fds\":%" PRIu64 ",\"errors\":%" PRIu64
                ",\"messages_per_request\":%.4f,\"waits_per_request\":%.4f"
                ",\"bytes_per_request\":%.1f}",
                s->vu_sends, s->vu_replies, s->vu_waits, s->vu_bytes_sent, s->vu_bytes_received,
                s->vu_fds, s->vu_errors, ratio(s->vu_sends, s->requests),
                ratio(s->vu_waits, s->requests),
                ratio(s->vu_bytes_sent + s->vu_bytes_received, s->requests));
    else
        fprintf(out, ",\"vfio_user\":null");
    fprintf(out, ",\"dirty\":{\"bitmaps\":%" PRIu64 ",\"pages\":%" PRIu64 "}", s->dirty_bitmaps,
            s->dirty_pages);

    fprintf(out, ",\"events\":{");
    first = true;
    for (unsigned e = 0; e < TRACE_EVENT_COUNT; e++) {
        if (!s->events[e])
            continue;
        fprintf(out, "%s\"%s\":%" PRIu64, first ? "" : ",", trace_event_name((trace_event_id)e),
                s->events[e]);
        first = false;
    }
    fprintf(out, "}}}\n");
}

static void print_hist_text(FILE *out, const uint64_t *h, const char *unit)
{
    for (unsigned b = 0; b < TRACE_STATS_BUCKETS; b++) {
        if (!h[b])
            continue;
        if (b == 64)
            fprintf(out, "    2^64 %s: %" PRIu64 "\n", unit, h[b]);
        else
            fprintf(out, "    %" PRIu64 "-%" PRIu64 " %s: %" PRIu64 "\n", UINT64_C(1) << b,
                    b == 63 ? UINT64_MAX : (UINT64_C(1) << (b + 1)) - 1, unit, h[b]);
    }
}

static void print_text(const trace_stats *s, FILE *out)
{
    fprintf(out, "requests: %" PRIu64 " (%s input%s)\n", s->requests, s->format,
            s->statuses_from_replay ? "; statuses as the device model answers them" : "");
    fprintf(out, "  by type:");
    for (unsigned t = 0; t < N_TYPES; t++)
        if (viommu_type_name((int)t) && s->by_type[t])
            fprintf(out, " %s=%" PRIu64, viommu_type_name((int)t), s->by_type[t]);
    if (s->other_types)
        fprintf(out, " other=%" PRIu64, s->other_types);
    fprintf(out, "\n  by status:");
    for (unsigned st = 0; st < N_STATUSES; st++)
        if (s->by_status[st])
            fprintf(out, " %s=%" PRIu64, status_name(st), s->by_status[st]);
    if (s->no_status)
        fprintf(out, " NONE=%" PRIu64, s->no_status);
    if (s->other_statuses)
        fprintf(out, " other=%" PRIu64, s->other_statuses);
    fprintf(out, "\nmap sizes (bytes):\n");
    print_hist_text(out, s->map_sizes, "bytes");
    if (s->inverted_maps)
        fprintf(out, "    virt_end before virt_start: %" PRIu64 "\n", s->inverted_maps);
    fprintf(out, "live mappings per domain:\n");
    GArray *ids = sorted_domains(s);
    for (guint i = 0; i < ids->len; i++) {
        const dom_stats *d =
            g_hash_table_lookup(s->domains, GUINT_TO_POINTER(g_array_index(ids, uint32_t, i)));
        fprintf(out,
                "    domain %" PRIu32 ": max %" PRIu64 ", at end %" PRIu64 " (%" PRIu64
                " maps, %" PRIu64 " unmaps)\n",
                d->id, d->max_live, d->live_count, d->maps_ok, d->unmaps_ok);
    }
    g_array_free(ids, TRUE);
    fprintf(out,
            "IOVA reuse: %" PRIu64 " of %" PRIu64
            " maps start at an earlier map's start (%.1f%%)\n",
            s->maps_reusing, s->maps_ok, 100.0 * ratio(s->maps_reusing, s->maps_ok));
    fprintf(out,
            "unmaps: %" PRIu64 " succeeded, %" PRIu64 " covering several mappings (at most %" PRIu64
            "), %" PRIu64 " covering none\n",
            s->unmaps_ok, s->unmaps_several, s->unmaps_max_covered, s->unmaps_nothing);
    if (s->batches_known) {
        uint64_t batches = s->batches + (s->batch_len != 0);
        uint64_t max = s->batch_len > s->batch_max ? s->batch_len : s->batch_max;
        fprintf(out, "batches: %" PRIu64 ", %.2f requests per batch, at most %" PRIu64 "\n",
                batches, ratio(s->requests, batches), max);
    } else {
        fprintf(out, "batches: unknown (the trace has no queue events)\n");
    }
    if (has_vfio_user(s))
        fprintf(out,
                "vfio-user: %" PRIu64 " messages, %" PRIu64 " replies (%" PRIu64
                " errors), %" PRIu64 " waits, %" PRIu64 " bytes; per request: %.2f messages, "
                "%.2f waits, %.1f bytes\n",
                s->vu_sends, s->vu_replies, s->vu_errors, s->vu_waits,
                s->vu_bytes_sent + s->vu_bytes_received, ratio(s->vu_sends, s->requests),
                ratio(s->vu_waits, s->requests),
                ratio(s->vu_bytes_sent + s->vu_bytes_received, s->requests));
    else
        fprintf(out, "vfio-user: no traffic in the trace\n");
    fprintf(out, "dirty pages: %" PRIu64 " in %" PRIu64 " bitmaps\n", s->dirty_pages,
            s->dirty_bitmaps);
}

void trace_stats_print(const trace_stats *s, FILE *out, bool json)
{
    if (json)
        print_json(s, out);
    else
        print_text(s, out);
}

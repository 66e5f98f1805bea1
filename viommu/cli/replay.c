/* SPDX-License-Identifier: MIT */
/*
 * replay.c - the replay engine: trace events in, guest requests through
 * the device's full request path out.
 *
 * Batches. QEMU pops and runs the requests of one notification of the
 * request queue in a loop, so in a trace that holds the queue events the
 * requests between two `virtio_queue_notify` lines of the IOMMU's request
 * queue form one batch. Which queue is the IOMMU's is learnt from the
 * trace itself: the queue of the `virtqueue_pop` that precedes the first
 * request. Without queue events, each request is its own batch, which is
 * also what a strict-mode guest sends.
 *
 * PROBE. QEMU 7.2 traces a PROBE only through the properties it fills,
 * one `virtio_iommu_fill_resv_property` line each, so a run of such lines
 * for one endpoint is one PROBE request.
 */
#include "replay.h"

#include <endian.h>
#include <errno.h>
#include <string.h>

G_DEFINE_QUARK(replay - error - quark, replay_error)

void replay_config_init(replay_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    viommu_config_init(&cfg->device);
    cfg->endpoints = g_array_new(FALSE, FALSE, sizeof(uint32_t));
    cfg->resv = g_array_new(FALSE, FALSE, sizeof(replay_resv));
}

void replay_config_clear(replay_config *cfg)
{
    if (cfg->endpoints)
        g_array_free(cfg->endpoints, TRUE);
    if (cfg->resv)
        g_array_free(cfg->resv, TRUE);
    cfg->endpoints = NULL;
    cfg->resv = NULL;
}

/* One request waiting for its batch: its wire bytes and buffers. */
typedef struct pending {
    union {
        struct virtio_iommu_req_attach attach;
        struct virtio_iommu_req_detach detach;
        struct virtio_iommu_req_map map;
        struct virtio_iommu_req_unmap unmap;
        struct virtio_iommu_req_probe probe;
    } rd;
    size_t rd_len;
    struct virtio_iommu_req_tail tail; /* the writable part, but for PROBE */
    uint8_t *probe_out;                /* PROBE: probe_size + 4 bytes */
    replay_resv *trace_resv;           /* PROBE: the regions the trace shows */
    size_t trace_resv_count;
    struct iovec rd_iov;
    struct iovec wr_iov;
} pending;

typedef struct engine {
    const replay_config *cfg;
    const replay_hooks *hooks;
    replay_summary *sum;
    viommu *dev;
    uint32_t probe_size;

    GArray *pending;             /* pending, the current batch */
    GArray *infos;               /* replay_request, parallel to pending */
    GArray *requests;            /* viommu_request, built at flush */
    GHashTable *resv_from_trace; /* endpoints whose trace regions were added */

    /* The PROBE being assembled from consecutive property lines. */
    bool probe_open;
    pending probe;
    replay_request probe_info;

    bool kicks; /* the trace shows the queue events */
    bool iommu_vq_known;
    uint64_t iommu_vq;
    bool pop_pending; /* a pop was seen since the last request */
    uint64_t last_pop_vq;
    uint64_t seq;
    uint64_t batch_no;
} engine;

static const replay_hooks no_hooks;

static void pending_clear(pending *p)
{
    g_free(p->probe_out);
    g_free(p->trace_resv);
    memset(p, 0, sizeof(*p));
}

static int hook_failed(GError **error, int ret, const char *what)
{
    if (error && !*error)
        g_set_error(error, REPLAY_ERROR, REPLAY_ERROR_HOOK, "replay stopped by the %s hook: %s",
                    what, g_strerror(-ret));
    return ret;
}

/* Declares @endpoint with the configured reserved regions. */
static int declare_endpoint(engine *e, uint32_t endpoint, GError **error)
{
    int ret = viommu_endpoint_add(e->dev, endpoint);

    if (ret == -EEXIST)
        return 0;
    if (ret < 0) {
        g_set_error(error, REPLAY_ERROR, REPLAY_ERROR_CONFIG, "cannot declare endpoint %u: %s",
                    endpoint, ret == -ENOSPC ? "too many endpoints" : g_strerror(-ret));
        return ret;
    }
    if (e->cfg->resv_given) {
        for (guint i = 0; i < e->cfg->resv->len; i++) {
            const replay_resv *r = &g_array_index(e->cfg->resv, replay_resv, i);
            ret = viommu_endpoint_add_resv(e->dev, endpoint, r->start, r->end, r->subtype);
            if (ret < 0) {
                g_set_error(error, REPLAY_ERROR, REPLAY_ERROR_CONFIG,
                            "reserved region 0x%" G_GINT64_MODIFIER "x-0x%" G_GINT64_MODIFIER
                            "x refused: %s",
                            r->start, r->end,
                            ret == -EINVAL   ? "it overlaps another or is a second MSI region"
                            : ret == -ENOSPC ? "too many regions for the probe size"
                                             : g_strerror(-ret));
                return ret;
            }
        }
    }
    e->sum->endpoints++;
    if (e->hooks->endpoint_added) {
        ret = e->hooks->endpoint_added(e->hooks->opaque, e->dev, endpoint);
        if (ret < 0)
            return hook_failed(error, ret, "endpoint");
    }
    return 0;
}

/* An endpoint the trace names exists unless --endpoints said otherwise. */
static int ensure_endpoint(engine *e, uint32_t endpoint, GError **error)
{
    if (e->cfg->endpoints_given || viommu_endpoint_exists(e->dev, endpoint))
        return 0;
    return declare_endpoint(e, endpoint, error);
}

/* Checks the properties a PROBE returned against the trace's. */
static bool probe_matches(const engine *e, const pending *p)
{
    size_t off = 0, n = 0;

    while (off + sizeof(struct virtio_iommu_probe_property) <= e->probe_size) {
        struct virtio_iommu_probe_resv_mem resv;
        uint16_t type, length;

        memcpy(&resv.head, p->probe_out + off, sizeof(resv.head));
        type = le16toh(resv.head.type) & VIRTIO_IOMMU_PROBE_T_MASK;
        length = le16toh(resv.head.length);
        if (type == VIRTIO_IOMMU_PROBE_T_NONE)
            break;
        if ((size_t)length > e->probe_size - off - sizeof(resv.head))
            return false;
        if (type == VIRTIO_IOMMU_PROBE_T_RESV_MEM) {
            if (length + sizeof(resv.head) < sizeof(resv) || n >= p->trace_resv_count)
                return false;
            memcpy(&resv, p->probe_out + off, sizeof(resv));
            if (resv.subtype != p->trace_resv[n].subtype ||
                le64toh(resv.start) != p->trace_resv[n].start ||
                le64toh(resv.end) != p->trace_resv[n].end)
                return false;
            n++;
        }
        off += sizeof(resv.head) + length;
    }
    return n == p->trace_resv_count;
}

static void count_request(engine *e, const replay_request *info)
{
    replay_summary *s = e->sum;

    s->requests++;
    if (info->type < G_N_ELEMENTS(s->by_type))
        s->by_type[info->type]++;
    if (info->status >= 0 && (size_t)info->status < G_N_ELEMENTS(s->by_status))
        s->by_status[info->status]++;
    else
        s->no_status++;
    if (info->probe_mismatch)
        s->probe_mismatches++;
}

/* Runs the current batch through the device. */
static int flush(engine *e, GError **error)
{
    size_t n = e->pending->len;
    int ret;

    if (n == 0)
        return 0;
    e->batch_no++;
    e->sum->queue_batches = e->kicks;
    g_array_set_size(e->requests, n);
    for (size_t i = 0; i < n; i++) {
        pending *p = &g_array_index(e->pending, pending, i);
        viommu_request *r = &g_array_index(e->requests, viommu_request, i);

        g_array_index(e->infos, replay_request, i).batch = e->batch_no;
        p->rd_iov = (struct iovec){.iov_base = &p->rd, .iov_len = p->rd_len};
        if (p->probe_out)
            p->wr_iov = (struct iovec){.iov_base = p->probe_out, .iov_len = e->probe_size + 4};
        else
            p->wr_iov = (struct iovec){.iov_base = &p->tail, .iov_len = sizeof(p->tail)};
        *r = (viommu_request){.readable = &p->rd_iov,
                              .readable_count = 1,
                              .writable = &p->wr_iov,
                              .writable_count = 1};
    }
    if (e->hooks->batch_begin) {
        ret = e->hooks->batch_begin(e->hooks->opaque, e->dev, e->batch_no, n);
        if (ret < 0)
            return hook_failed(error, ret, "batch_begin");
    }
    ret = viommu_process_batch(e->dev, (viommu_request *)(void *)e->requests->data, n);
    if (ret < 0) {
        g_set_error(error, REPLAY_ERROR, REPLAY_ERROR_CONFIG, "the device refused the batch: %s",
                    g_strerror(-ret));
        return ret;
    }
    for (size_t i = 0; i < n; i++) {
        pending *p = &g_array_index(e->pending, pending, i);
        const viommu_request *r = &g_array_index(e->requests, viommu_request, i);
        replay_request *info = &g_array_index(e->infos, replay_request, i);

        info->status = r->status;
        info->used_len = r->used_len;
        if (p->probe_out && r->status == VIRTIO_IOMMU_S_OK)
            info->probe_mismatch = !probe_matches(e, p);
        count_request(e, info);
    }
    e->sum->batches++;
    if (n > e->sum->largest_batch)
        e->sum->largest_batch = n;
    ret = 0;
    if (e->hooks->batch_end) {
        ret = e->hooks->batch_end(e->hooks->opaque, e->dev, e->batch_no,
                                  (const replay_request *)(const void *)e->infos->data, n);
        if (ret < 0)
            hook_failed(error, ret, "batch_end");
    }
    for (size_t i = 0; i < n && ret >= 0 && e->hooks->request_done; i++) {
        ret = e->hooks->request_done(e->hooks->opaque, &g_array_index(e->infos, replay_request, i));
        if (ret < 0)
            hook_failed(error, ret, "request_done");
    }
    for (size_t i = 0; i < n; i++)
        pending_clear(&g_array_index(e->pending, pending, i));
    g_array_set_size(e->pending, 0);
    g_array_set_size(e->infos, 0);
    return ret < 0 ? ret : 0;
}

/* Bookkeeping at the first line of every request: which batch it joins. */
static void request_starts(engine *e)
{
    if (e->pop_pending) {
        if (!e->iommu_vq_known) {
            e->iommu_vq = e->last_pop_vq;
            e->iommu_vq_known = true;
        }
        e->kicks = true;
        e->pop_pending = false;
    }
}

/* Adds a built request to the current batch (taking over @p's buffers). */
static int enqueue(engine *e, pending *p, replay_request *info, GError **error)
{
    int ret;

    if (e->pending->len >= REPLAY_MAX_BATCH) {
        ret = flush(e, error);
        if (ret < 0)
            return ret;
    }
    info->seq = ++e->seq;
    g_array_append_val(e->pending, *p);
    g_array_append_val(e->infos, *info);
    memset(p, 0, sizeof(*p));
    /* Without queue events every request is its own batch. */
    return e->kicks ? 0 : flush(e, error);
}

static void set_head(pending *p, uint8_t type, size_t full_size)
{
    memset(&p->rd, 0, sizeof(p->rd));
    p->rd.attach.head.type = type;
    /* The readable part is the request without its tail. */
    p->rd_len =
        full_size - (type == VIRTIO_IOMMU_T_PROBE ? 0 : sizeof(struct virtio_iommu_req_tail));
    /* A tail the device does not write keeps a status no request can have. */
    memset(&p->tail, 0xff, sizeof(p->tail));
}

static int request_from_event(engine *e, const qemu_log_event *ev, GError **error)
{
    pending p = {0};
    replay_request info = {.line = ev->line};
    int ret;

    request_starts(e);
    switch (ev->type) {
    case QEMU_LOG_ATTACH:
    case QEMU_LOG_DETACH:
        ret = ensure_endpoint(e, ev->u.attach.endpoint, error);
        if (ret < 0)
            return ret;
        info.has_domain = info.has_endpoint = true;
        info.domain = ev->u.attach.domain;
        info.endpoint = ev->u.attach.endpoint;
        if (ev->type == QEMU_LOG_ATTACH) {
            info.type = VIRTIO_IOMMU_T_ATTACH;
            set_head(&p, info.type, sizeof(p.rd.attach));
            p.rd.attach.domain = htole32(info.domain);
            p.rd.attach.endpoint = htole32(info.endpoint);
        } else {
            info.type = VIRTIO_IOMMU_T_DETACH;
            set_head(&p, info.type, sizeof(p.rd.detach));
            p.rd.detach.domain = htole32(info.domain);
            p.rd.detach.endpoint = htole32(info.endpoint);
        }
        break;
    case QEMU_LOG_MAP:
        info.type = VIRTIO_IOMMU_T_MAP;
        info.has_domain = info.has_virt = info.has_phys = info.has_flags = true;
        info.domain = ev->u.map.domain;
        info.virt_start = ev->u.map.virt_start;
        info.virt_end = ev->u.map.virt_end;
        info.phys_start = ev->u.map.phys_start;
        info.flags = ev->u.map.flags;
        set_head(&p, info.type, sizeof(p.rd.map));
        p.rd.map.domain = htole32(info.domain);
        p.rd.map.virt_start = htole64(info.virt_start);
        p.rd.map.virt_end = htole64(info.virt_end);
        p.rd.map.phys_start = htole64(info.phys_start);
        p.rd.map.flags = htole32(info.flags);
        break;
    case QEMU_LOG_UNMAP:
        info.type = VIRTIO_IOMMU_T_UNMAP;
        info.has_domain = info.has_virt = true;
        info.domain = ev->u.unmap.domain;
        info.virt_start = ev->u.unmap.virt_start;
        info.virt_end = ev->u.unmap.virt_end;
        set_head(&p, info.type, sizeof(p.rd.unmap));
        p.rd.unmap.domain = htole32(info.domain);
        p.rd.unmap.virt_start = htole64(info.virt_start);
        p.rd.unmap.virt_end = htole64(info.virt_end);
        break;
    default:
        return 0;
    }
    return enqueue(e, &p, &info, error);
}

/* Queues the PROBE assembled from property lines, if any. */
static int close_probe(engine *e, GError **error)
{
    uint32_t endpoint = e->probe_info.endpoint;
    int ret;

    if (!e->probe_open)
        return 0;
    e->probe_open = false;
    ret = ensure_endpoint(e, endpoint, error);
    if (ret < 0) {
        pending_clear(&e->probe);
        return ret;
    }
    /*
     * Without --resv an endpoint has the regions its first PROBE shows;
     * they can only be given while it is unattached, and a refused one
     * simply shows as a PROBE mismatch.
     */
    if (!e->cfg->resv_given && viommu_endpoint_exists(e->dev, endpoint) &&
        !g_hash_table_contains(e->resv_from_trace, GUINT_TO_POINTER(endpoint))) {
        g_hash_table_add(e->resv_from_trace, GUINT_TO_POINTER(endpoint));
        for (size_t i = 0; i < e->probe.trace_resv_count; i++) {
            const replay_resv *r = &e->probe.trace_resv[i];
            viommu_endpoint_add_resv(e->dev, endpoint, r->start, r->end, r->subtype);
        }
    }
    return enqueue(e, &e->probe, &e->probe_info, error);
}

static void open_probe(engine *e, const qemu_log_event *ev)
{
    pending *p = &e->probe;

    request_starts(e);
    memset(p, 0, sizeof(*p));
    e->probe_info = (replay_request){.line = ev->line,
                                     .type = VIRTIO_IOMMU_T_PROBE,
                                     .has_endpoint = true,
                                     .endpoint = ev->u.resv.endpoint};
    set_head(p, VIRTIO_IOMMU_T_PROBE, sizeof(p->rd.probe));
    p->rd.probe.endpoint = htole32(ev->u.resv.endpoint);
    p->probe_out = g_malloc(e->probe_size + 4);
    memset(p->probe_out, 0xff, e->probe_size + 4);
    e->probe_open = true;
}

static int probe_property(engine *e, const qemu_log_event *ev, GError **error)
{
    pending *p = &e->probe;
    int ret;

    if (!e->probe_open || e->probe_info.endpoint != ev->u.resv.endpoint ||
        p->trace_resv_count == REPLAY_MAX_PROBE_REGIONS) {
        ret = close_probe(e, error);
        if (ret < 0)
            return ret;
        open_probe(e, ev);
    }
    /* Grown as lines come: most PROBEs show one or two regions. */
    if ((p->trace_resv_count & (p->trace_resv_count - 1)) == 0)
        p->trace_resv =
            g_renew(replay_resv, p->trace_resv, p->trace_resv_count ? 2 * p->trace_resv_count : 1);
    p->trace_resv[p->trace_resv_count++] = (replay_resv){
        .start = ev->u.resv.start, .end = ev->u.resv.end, .subtype = (uint8_t)ev->u.resv.subtype};
    return 0;
}

static int handle_event(engine *e, const qemu_log_event *ev, GError **error)
{
    int ret;

    if (ev->type != QEMU_LOG_RESV_PROPERTY) {
        ret = close_probe(e, error);
        if (ret < 0)
            return ret;
    }
    switch (ev->type) {
    case QEMU_LOG_ATTACH:
    case QEMU_LOG_DETACH:
    case QEMU_LOG_MAP:
    case QEMU_LOG_UNMAP:
        return request_from_event(e, ev, error);
    case QEMU_LOG_RESV_PROPERTY:
        return probe_property(e, ev, error);
    case QEMU_LOG_QUEUE_NOTIFY:
        if (e->kicks && e->iommu_vq_known && ev->u.notify.vq == e->iommu_vq)
            return flush(e, error);
        return 0;
    case QEMU_LOG_QUEUE_POP:
        e->last_pop_vq = ev->u.pop.vq;
        e->pop_pending = true;
        return 0;
    case QEMU_LOG_TRANSLATE:
    case QEMU_LOG_TRANSLATE_OUT:
        if (ev->type == QEMU_LOG_TRANSLATE)
            e->sum->translations++;
        /* The device must have run every request QEMU ran before the access. */
        ret = flush(e, error);
        if (ret < 0)
            return ret;
        ret = ensure_endpoint(e,
                              ev->type == QEMU_LOG_TRANSLATE ? ev->u.translate.endpoint
                                                             : ev->u.translate_out.endpoint,
                              error);
        if (ret < 0)
            return ret;
        if (e->hooks->translate) {
            ret = e->hooks->translate(e->hooks->opaque, e->dev, ev);
            if (ret < 0)
                return hook_failed(error, ret, "translate");
        }
        return 0;
    case QEMU_LOG_EVENT_TYPE_MAX:
        break;
    }
    return 0;
}

static int engine_start(engine *e, GError **error)
{
    viommu_config dc;
    int ret;

    e->dev = viommu_new(&e->cfg->device, error);
    if (!e->dev) {
        g_prefix_error(error, "device configuration refused: ");
        return -EINVAL;
    }
    viommu_get_config(e->dev, &dc);
    e->probe_size = dc.probe_size;
    /* The guest's driver accepted every feature the device offered. */
    ret = viommu_set_driver_features(e->dev, viommu_device_features(e->dev));
    if (ret < 0) {
        g_set_error(error, REPLAY_ERROR, REPLAY_ERROR_CONFIG, "feature negotiation failed: %s",
                    g_strerror(-ret));
        return ret;
    }
    if (e->cfg->endpoints_given) {
        for (guint i = 0; i < e->cfg->endpoints->len; i++) {
            ret = declare_endpoint(e, g_array_index(e->cfg->endpoints, uint32_t, i), error);
            if (ret < 0)
                return ret;
        }
    }
    if (e->hooks->device_ready) {
        ret = e->hooks->device_ready(e->hooks->opaque, e->dev);
        if (ret < 0)
            return hook_failed(error, ret, "device_ready");
    }
    return 0;
}

int replay_run(const replay_config *cfg, qemu_log_reader *src, const replay_hooks *hooks,
               replay_summary *summary, GError **error)
{
    engine e = {.cfg = cfg, .hooks = hooks ? hooks : &no_hooks, .sum = summary};
    uint64_t next_progress = cfg->progress_lines;
    int ret;

    memset(summary, 0, sizeof(*summary));
    e.pending = g_array_new(FALSE, TRUE, sizeof(pending));
    e.infos = g_array_new(FALSE, TRUE, sizeof(replay_request));
    e.requests = g_array_new(FALSE, TRUE, sizeof(viommu_request));
    e.resv_from_trace = g_hash_table_new(g_direct_hash, g_direct_equal);

    ret = engine_start(&e, error);
    while (ret == 0) {
        qemu_log_event ev;
        g_autoptr(GError) line_error = NULL;

        ret = qemu_log_reader_next(src, &ev, &line_error);
        if (next_progress && qemu_log_reader_line(src) >= next_progress) {
            next_progress = qemu_log_reader_line(src) + cfg->progress_lines;
            if (e.hooks->progress)
                e.hooks->progress(e.hooks->opaque, qemu_log_reader_bytes(src),
                                  qemu_log_reader_size(src));
        }
        if (ret == 0) {
            ret = close_probe(&e, error);
            if (ret == 0)
                ret = flush(&e, error);
            break;
        }
        if (ret == -EINVAL) {
            summary->malformed_lines++;
            if (e.hooks->line_error)
                e.hooks->line_error(e.hooks->opaque, line_error);
            if (cfg->keep_going) {
                ret = 0;
                continue;
            }
            g_propagate_error(error, g_steal_pointer(&line_error));
        } else if (ret < 0) {
            g_propagate_error(error, g_steal_pointer(&line_error));
        } else {
            ret = handle_event(&e, &ev, error);
            continue;
        }
        /* Stopping: the requests already read still run. */
        if (close_probe(&e, NULL) == 0)
            flush(&e, NULL);
    }
    summary->lines = qemu_log_reader_line(src);

    if (e.probe_open)
        pending_clear(&e.probe);
    for (guint i = 0; i < e.pending->len; i++)
        pending_clear(&g_array_index(e.pending, pending, i));
    g_array_free(e.pending, TRUE);
    g_array_free(e.infos, TRUE);
    g_array_free(e.requests, TRUE);
    g_hash_table_destroy(e.resv_from_trace);
    viommu_free(e.dev);
    return ret;
}

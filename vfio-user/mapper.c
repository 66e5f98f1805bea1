/* SPDX-License-Identifier: MIT */
/*
 * The DMA mapper: turns a device's mapping events into vfio-user
 * DMA_MAP / DMA_UNMAP messages, and dirty bitmaps into the guest's dirty
 * log.
 *
 * Events are recorded as they arrive (map: split at guest RAM regions
 * into DMA regions; unmap: the regions to remove) and sent at batch_end,
 * pipelined, with one wait. Two tables mirror the device:
 *   guest   - the guest mappings this device holds (IOVA -> GPA, prot);
 *   regions - the DMA regions the server holds (IOVA -> GPA, fd, offset).
 * Every region maps IOVA linearly onto GPA, so a bitmap over a region's
 * IOVA range turns into GPA pages with one offset.
 */
#include <errno.h>
#include <stdlib.h>
#include <gio/gio.h>
#include <string.h>

#include "trace_points.h"
#include "vfio-user.h"

typedef struct guest_val {
    uint64_t gpa;
    uint32_t prot;
    uint32_t unused;
} guest_val;

typedef struct region_val {
    uint64_t gpa;
    uint64_t offset;
    int32_t fd;
    uint32_t prot;
} region_val;

enum op_kind { OP_MAP, OP_UNMAP, OP_REPORT };

/* One DMA region to map or unmap, from events [event, event_last] of
 * the batch (several when adjacent maps were merged). */
typedef struct op {
    enum op_kind kind;
    uint32_t event, event_last;
    uint64_t iova, size, gpa, offset;
    int fd;
    uint32_t prot;
    uint64_t pgsize; /* unmap / report: bitmap page size, 0 for none */
} op;

typedef struct pending_event {
    mapping_event ev;
    bool is_map;
    int err; /* map: 0, or why it failed */
} pending_event;

struct vfio_user_mapper {
    char *path;
    vfio_user_client_config client_cfg;
    vfio_user_client_ops client_ops;
    void *opaque;
    vfio_user_client *client;
    guest_mem *gm;
    vfio_user_mapper_config cfg;
    interval_map *guest;   /* guest_val */
    interval_map *regions; /* region_val */
    bool tracking;
    bool disconnect_marked; /* the lost connection's ranges are marked dirty */
    GArray *events;         /* pending_event */
    GArray *ops;            /* op */
    vfio_user_mapper_stats stats;
    vfio_user_client_stats mark; /* client counters when the mapper's own traffic began */
    uint32_t trace_attempts;     /* reconnect attempts since the connection was lost */
    uint64_t trace_lost_ns;      /* when the first of them began */
};

/* ------------------------------------------------------------------ */

int vfio_user_plan_parse(const char *name, vfio_user_plan *out)
{
    if (!strcmp(name, "coalesce"))
        *out = VFIO_USER_PLAN_COALESCE;
    else if (!strcmp(name, "qemu"))
        *out = VFIO_USER_PLAN_QEMU;
    else
        return -EINVAL;
    return 0;
}

static uint64_t dirty_pgsize(const vfio_user_mapper *m)
{
    return m->cfg.dirty_pgsize ? m->cfg.dirty_pgsize : guest_mem_page_size(m->gm);
}

static bool connected(const vfio_user_mapper *m)
{
    return m->client && vfio_user_client_connected(m->client);
}

static const vfio_user_caps *server_caps(const vfio_user_mapper *m)
{
    return vfio_user_client_server_caps(m->client);
}

/* The server keeps dirty state we can ask for. */
static bool server_logs(const vfio_user_mapper *m)
{
    return connected(m) && server_caps(m)->migration;
}

static bool server_unmaps_partial(const vfio_user_mapper *m)
{
    return connected(m) && server_caps(m)->unmap_partial &&
           vfio_user_client_dialect(m->client) == VFIO_USER_DIALECT_2021;
}

/* The largest message either side accepts: requests and replies alike. */
static uint64_t msg_limit(const vfio_user_mapper *m)
{
    uint64_t send = vfio_user_client_max_msg_size(m->client);
    uint64_t recv = m->client_cfg.caps.max_msg_size;
    return recv && recv < send ? recv : send;
}

static void fold_or_mark(vfio_user_mapper *m, uint64_t gpa, uint64_t size, uint64_t pgsize,
                         const uint8_t *bitmap, uint64_t bitmap_bytes)
{
    uint64_t npages = size / pgsize + (size % pgsize != 0);
    if (!bitmap || bitmap_bytes * 8 < npages) {
        guest_mem_dirty_mark(m->gm, gpa, gpa + size - 1);
        m->stats.bitmap_fallbacks++;
        return;
    }
    /* The wire bitmap is little-endian 64-bit words, as the log's. */
    uint64_t words = BITMAP_WORDS(npages);
    uint64_t *bits = g_malloc(words * sizeof(uint64_t));
    memcpy(bits, bitmap, words * sizeof(uint64_t));
    for (uint64_t i = 0; i < words; i++)
        bits[i] = GUINT64_FROM_LE(bits[i]);
    guest_mem_dirty_fold(m->gm, gpa, pgsize, bits, 0, npages);
    g_free(bits);
    m->stats.bitmaps++;
}

/* The mapper's own traffic is what happens between these two calls: the
 * client also carries the caller's device accesses, which do not count. */
static void traffic_begin(vfio_user_mapper *m)
{
    if (m->client)
        vfio_user_client_stats_get(m->client, &m->mark);
}

static void traffic_end(vfio_user_mapper *m)
{
    vfio_user_client_stats s;
    if (!m->client)
        return;
    vfio_user_client_stats_get(m->client, &s);
    m->stats.waits += s.waits - m->mark.waits;
    m->stats.bytes +=
        (s.bytes_sent - m->mark.bytes_sent) + (s.bytes_received - m->mark.bytes_received);
    m->mark = s;
}

/* ------------------------------------------------------------------ */
/* Recording events                                                    */
/* ------------------------------------------------------------------ */

typedef struct piece_ctx {
    vfio_user_mapper *m;
    uint32_t event;
    uint64_t iova; /* IOVA of the next piece */
    uint32_t prot;
} piece_ctx;

static void add_region(vfio_user_mapper *m, const op *o)
{
    region_val v = {o->gpa, o->offset, o->fd, o->prot};
    interval_map_insert(m->regions, o->iova, o->iova + o->size - 1, &v);
    m->stats.regions_live = interval_map_count(m->regions);
    if (m->stats.regions_live > m->stats.regions_live_max)
        m->stats.regions_live_max = m->stats.regions_live;
}

/* The largest power-of-two chunk at @iova that fits in @size bytes. */
static uint64_t pow2_chunk(uint64_t iova, uint64_t size)
{
    uint64_t align = iova ? (iova & -iova) : (1ull << 63);
    uint64_t fit = 1ull << (63 - __builtin_clzll(size));
    return align < fit ? align : fit;
}

static void push_map_op(vfio_user_mapper *m, const op *o)
{
    if (m->cfg.plan != VFIO_USER_PLAN_QEMU) {
        g_array_append_val(m->ops, *o);
        add_region(m, o);
        return;
    }
    /* QEMU notifies VFIO one power-of-two aligned chunk at a time. */
    for (uint64_t done = 0; done < o->size;) {
        op c = *o;
        c.iova = o->iova + done;
        c.size = pow2_chunk(c.iova, o->size - done);
        c.gpa = o->gpa + done;
        c.offset = o->offset + done;
        g_array_append_val(m->ops, c);
        add_region(m, &c);
        done += c.size;
    }
}

static int map_piece(void *opaque, const guest_mem_region *r, uint64_t gpa, uint64_t len,
                     uint64_t offset)
{
    piece_ctx *c = opaque;
    op o = {
        .kind = OP_MAP,
        .event = c->event,
        .event_last = c->event,
        .iova = c->iova,
        .size = len,
        .gpa = gpa,
        .offset = r->fd_offset + offset,
        .fd = c->m->cfg.isolated ? -1 : r->fd,
        .prot = c->prot,
    };
    if (o.fd < 0)
        o.offset = 0;
    push_map_op(c->m, &o);
    c->iova += len;
    return 0;
}

static int count_piece(void *opaque, const guest_mem_region *r, uint64_t gpa, uint64_t len,
                       uint64_t offset)
{
    (void)r, (void)gpa, (void)len, (void)offset;
    (*(uint64_t *)opaque)++;
    return 0;
}

static void listener_batch_begin(void *opaque)
{
    vfio_user_mapper *m = opaque;
    g_array_set_size(m->events, 0);
    g_array_set_size(m->ops, 0);
    if (!connected(m))
        vfio_user_mapper_reconnect(m);
}

static int listener_map(void *opaque, const mapping_event *ev)
{
    vfio_user_mapper *m = opaque;
    uint64_t size = ev->iova_last - ev->iova + 1;
    uint64_t gpa_last;

    if (ev->iova_last < ev->iova || size == 0 || u64_add_overflows(ev->gpa, size - 1, &gpa_last))
        return -EINVAL;
    if (interval_map_find_first(m->guest, ev->iova, ev->iova_last, NULL))
        return -EEXIST;

    uint32_t prot = ev->prot & (MAPPING_PROT_READ | MAPPING_PROT_WRITE);
    if (!(ev->prot & MAPPING_PROT_MMIO)) {
        uint64_t pieces = 0;
        if (guest_mem_for_each_piece(m->gm, ev->gpa, gpa_last, count_piece, &pieces) < 0)
            return -EFAULT;
        if (!connected(m))
            return -EIO;
        uint64_t max = server_caps(m)->max_dma_maps;
        if (max && interval_map_count(m->regions) + pieces > max)
            return -ENOSPC;
    }

    guest_val gv = {ev->gpa, ev->prot, 0};
    int ret = interval_map_insert(m->guest, ev->iova, ev->iova_last, &gv);
    if (ret < 0)
        return ret;
    pending_event pe = {*ev, true, 0};
    g_array_append_val(m->events, pe);
    m->stats.map_events++;
    if (ev->prot & MAPPING_PROT_MMIO)
        return 0;
    piece_ctx c = {m, m->events->len - 1, ev->iova, prot};
    guest_mem_for_each_piece(m->gm, ev->gpa, gpa_last, map_piece, &c);
    return 0;
}

/* Queues the removal of region @r ([first, last] of it) for event @event. */
static void unmap_region_part(vfio_user_mapper *m, uint32_t event, u64_range r, const region_val *v,
                              uint64_t first, uint64_t last)
{
    op o = {
        .kind = OP_UNMAP,
        .event = event,
        .event_last = event,
        .iova = first,
        .size = last - first + 1,
        .gpa = v->gpa + (first - r.first),
        .fd = -1,
        .prot = v->prot,
    };
    if (m->tracking) {
        if (server_logs(m)) {
            o.pgsize = dirty_pgsize(m);
            if (vfio_user_client_dialect(m->client) == VFIO_USER_DIALECT_FINAL) {
                op rep = o;
                rep.kind = OP_REPORT;
                g_array_append_val(m->ops, rep);
                o.pgsize = 0;
            }
        } else {
            guest_mem_dirty_mark(m->gm, o.gpa, o.gpa + o.size - 1);
            m->stats.bitmap_fallbacks++;
        }
    }
    g_array_append_val(m->ops, o);
}

/* Removes every region overlapping [first, last] from the table, queueing
 * its removal; a region reaching outside is cut (partial servers) or
 * removed whole (exact-match servers, where the guest range always
 * covers whole regions since regions are pieces of guest mappings). */
static void unmap_regions(vfio_user_mapper *m, uint32_t event, uint64_t first, uint64_t last)
{
    bool partial = server_unmaps_partial(m);
    u64_range r;
    region_val *vp;

    while ((vp = interval_map_find_first(m->regions, first, last, &r))) {
        region_val v = *vp;
        interval_map_remove(m->regions, r.first, NULL);
        uint64_t a = partial && r.first < first ? first : r.first;
        uint64_t b = partial && r.last > last ? last : r.last;
        if (connected(m))
            unmap_region_part(m, event, r, &v, a, b);
        else if (m->tracking)
            guest_mem_dirty_mark(m->gm, v.gpa + (a - r.first), v.gpa + (b - r.first));
        /* What a partial unmap leaves of the region stays mapped. */
        if (a > r.first) {
            interval_map_insert(m->regions, r.first, a - 1, &v);
        }
        if (b < r.last) {
            region_val rest = v;
            rest.gpa += b + 1 - r.first;
            if (rest.fd >= 0)
                rest.offset += b + 1 - r.first;
            interval_map_insert(m->regions, b + 1, r.last, &rest);
        }
    }
    m->stats.regions_live = interval_map_count(m->regions);
}

static int listener_unmap(void *opaque, const mapping_event *ev)
{
    vfio_user_mapper *m = opaque;
    u64_range r;

    if (ev->iova_last < ev->iova)
        return -EINVAL;
    pending_event pe = {*ev, false, 0};
    g_array_append_val(m->events, pe);
    uint32_t event = m->events->len - 1;
    m->stats.unmap_events++;
    while (interval_map_find_first(m->guest, ev->iova, ev->iova_last, &r)) {
        interval_map_remove(m->guest, r.first, NULL);
        unmap_regions(m, event, r.first, r.last);
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Sending a batch                                                     */
/* ------------------------------------------------------------------ */

/* The ops one message carries, for its completion. */
typedef struct msg_ctx {
    vfio_user_mapper *m;
    op *ops;
    size_t n;
    bool failed;
    int err;
} msg_ctx;

static int errno_to_map_error(int err)
{
    /* Servers refuse a region beyond their limit with EINVAL (libvfio-user,
     * QEMU) or ENOSPC / ENOMEM: all mean "out of resources" to the guest. */
    if (err == -EINVAL || err == -ENOSPC || err == -ENOMEM)
        return -ENOSPC;
    return -EIO;
}

static void fail_event(vfio_user_mapper *m, uint32_t event, int err)
{
    pending_event *pe = &g_array_index(m->events, pending_event, event);
    if (pe->is_map && !pe->err)
        pe->err = err;
}

static void on_reply(void *opaque, int result, const vfio_user_msg *reply)
{
    msg_ctx *c = opaque;
    vfio_user_mapper *m = c->m;
    size_t bm = 0;

    c->failed = result < 0;
    c->err = result;
    for (size_t i = 0; i < c->n; i++) {
        op *o = &c->ops[i];
        switch (o->kind) {
        case OP_MAP:
            for (uint32_t e = o->event; result < 0 && e <= o->event_last; e++)
                fail_event(m, e, errno_to_map_error(result));
            break;
        case OP_UNMAP:
            if (!o->pgsize)
                break;
            if (result < 0 || !reply || bm >= reply->dma.count) {
                fold_or_mark(m, o->gpa, o->size, o->pgsize, NULL, 0);
            } else {
                const vfio_user_dma_entry *e = &reply->dma.entries[bm++];
                vfio_user_trace_dirty(vfio_user_client_trace_device(m->client), o->iova, o->size,
                                      e->bitmap_pgsize, e->bitmap, e->bitmap_size);
                fold_or_mark(m, o->gpa, o->size, e->bitmap_pgsize, e->bitmap, e->bitmap_size);
            }
            break;
        case OP_REPORT:
            if (result < 0 || !reply)
                fold_or_mark(m, o->gpa, o->size, o->pgsize, NULL, 0);
            else {
                vfio_user_trace_dirty(vfio_user_client_trace_device(m->client), o->iova, o->size,
                                      o->pgsize, reply->feature.bitmap, reply->feature.bitmap_len);
                fold_or_mark(m, o->gpa, o->size, o->pgsize, reply->feature.bitmap,
                             reply->feature.bitmap_len);
            }
            break;
        }
    }
}

/* Bitmap bytes for @o at its pgsize, coarsened until one entry's reply fits. */
static uint64_t fit_bitmap(const vfio_user_mapper *m, op *o, uint64_t overhead)
{
    uint64_t bytes;
    for (;;) {
        if (vfio_user_bitmap_bytes(o->size, o->pgsize, &bytes) < 0)
            return 0;
        if (overhead + bytes <= msg_limit(m) || o->pgsize >= (1ull << 62))
            return bytes;
        o->pgsize <<= 1; /* coarser: more pages marked, none lost */
    }
}

static void fill_entry(const vfio_user_mapper *m, op *o, vfio_user_dma_entry *e)
{
    memset(e, 0, sizeof(*e));
    e->iova = o->iova;
    e->size = o->size;
    e->fd = -1;
    if (o->kind == OP_MAP) {
        e->offset = o->offset;
        e->prot = (o->prot & MAPPING_PROT_READ ? VFIO_USER_PROT_READ : 0) |
                  (o->prot & MAPPING_PROT_WRITE ? VFIO_USER_PROT_WRITE : 0);
        e->fd = o->fd;
    } else if (o->pgsize) {
        e->flags = VFIO_USER_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP;
        e->bitmap_pgsize = o->pgsize;
        e->bitmap_size = fit_bitmap(m, o, 16 + 24 + 16);
        e->bitmap_pgsize = o->pgsize;
    }
}

/* Submits ops[0..n) as one message; the context lives in @ctxs. */
static int submit(vfio_user_mapper *m, op *ops, size_t n, GPtrArray *ctxs)
{
    vfio_user_msg msg;
    memset(&msg, 0, sizeof(msg));
    msg_ctx *c = g_new0(msg_ctx, 1);
    c->m = m;
    c->ops = ops;
    c->n = n;
    g_ptr_array_add(ctxs, c);

    vfio_user_dma_entry *entries = g_new0(vfio_user_dma_entry, n);
    if (ops[0].kind == OP_REPORT) {
        msg.op = VFIO_USER_OP_DEVICE_FEATURE;
        msg.feature.flags =
            VFIO_USER_DEVICE_FEATURE_GET | VFIO_USER_DEVICE_FEATURE_DMA_LOGGING_REPORT;
        msg.feature.has_data = true;
        msg.feature.iova = ops[0].iova;
        msg.feature.length = ops[0].size;
        uint64_t bytes = fit_bitmap(m, &ops[0], 16 + 8 + 24);
        msg.feature.page_size = ops[0].pgsize;
        /* A GET's argsz covers the data the reply brings back. */
        msg.feature.argsz = (uint32_t)(8 + 24 + bytes);
    } else {
        msg.op = ops[0].kind == OP_MAP ? VFIO_USER_OP_DMA_MAP : VFIO_USER_OP_DMA_UNMAP;
        for (size_t i = 0; i < n; i++)
            fill_entry(m, &ops[i], &entries[i]);
        msg.dma.entries = entries;
        msg.dma.count = n;
    }
    int ret = vfio_user_client_submit(m->client, &msg, 0, on_reply, c);
    g_free(entries);
    if (ret < 0)
        on_reply(c, ret, NULL); /* the callback never runs for a refused submit */
    m->stats.messages += ret < 0 ? 0 : 1;
    return ret;
}

/* How many of ops[i..n) one 2021 table message carries. */
static size_t table_span(vfio_user_mapper *m, op *ops, size_t i, size_t n)
{
    uint64_t limit = msg_limit(m);
    uint32_t max_fds = server_caps(m)->max_msg_fds;
    uint64_t req = 16, rep = 16;
    uint32_t fds = 0;
    size_t j = i;

    for (; j < n && ops[j].kind == ops[i].kind; j++) {
        uint64_t r = 32, p = 0;
        if (ops[j].kind == OP_MAP && ops[j].fd >= 0) {
            if (fds + 1 > max_fds)
                break;
        }
        if (ops[j].kind == OP_UNMAP && ops[j].pgsize) {
            uint64_t bytes = fit_bitmap(m, &ops[j], 16 + 24 + 16);
            r += 24;
            p = 24 + bytes;
        }
        if (j > i && (req + r > limit || rep + p > limit))
            break;
        req += r;
        rep += p;
        if (ops[j].kind == OP_MAP && ops[j].fd >= 0)
            fds++;
    }
    return j > i ? j - i : 1;
}

/* Merges runs of adjacent regions into one, where the server allows it. */
static size_t merge_ops(vfio_user_mapper *m, op *ops, size_t n)
{
    if (!server_unmaps_partial(m) || m->cfg.plan == VFIO_USER_PLAN_QEMU)
        return n;
    size_t out = 0;
    for (size_t i = 0; i < n; i++) {
        op *prev = out ? &ops[out - 1] : NULL;
        op *o = &ops[i];
        bool joinable = prev && prev->kind == o->kind && o->kind != OP_REPORT &&
                        prev->iova + prev->size == o->iova && prev->gpa + prev->size == o->gpa &&
                        prev->prot == o->prot && prev->pgsize == o->pgsize;
        if (joinable && o->kind == OP_MAP)
            joinable = prev->fd == o->fd && (o->fd < 0 || prev->offset + prev->size == o->offset);
        /* A merged map fails as a whole: it may only span consecutive
         * events, so that a failure names exactly the maps it carried. */
        if (joinable && o->kind == OP_MAP)
            joinable = o->event == prev->event_last || o->event == prev->event_last + 1;
        if (joinable && !u64_add_overflows(prev->size, o->size, NULL)) {
            prev->size += o->size;
            prev->event_last = o->event;
            continue;
        }
        ops[out++] = *o;
    }
    return out;
}

static void rollback_failed(vfio_user_mapper *m, GPtrArray *ctxs)
{
    /* A failed map message may have applied part of its table: remove
     * every region of every failed map event, ignoring ENOENT. */
    GArray *undo = g_array_new(FALSE, FALSE, sizeof(op));
    for (uint32_t e = 0; e < m->events->len; e++) {
        pending_event *pe = &g_array_index(m->events, pending_event, e);
        if (!pe->is_map || !pe->err)
            continue;
        u64_range r;
        guest_val *gv = interval_map_find(m->guest, pe->ev.iova, &r);
        if (!gv || r.first != pe->ev.iova || r.last != pe->ev.iova_last)
            continue; /* unmapped again later in the batch */
        interval_map_remove(m->guest, r.first, NULL);
        region_val *vp;
        u64_range rr;
        while ((vp = interval_map_find_first(m->regions, r.first, r.last, &rr))) {
            op o = {.kind = OP_UNMAP,
                    .event = e,
                    .event_last = e,
                    .iova = rr.first,
                    .size = rr.last - rr.first + 1,
                    .gpa = vp->gpa,
                    .fd = -1};
            interval_map_remove(m->regions, rr.first, NULL);
            g_array_append_val(undo, o);
        }
    }
    (void)ctxs;
    if (undo->len && connected(m)) {
        GPtrArray *uctx = g_ptr_array_new_with_free_func(g_free);
        op *ops = (op *)(void *)undo->data;
        for (size_t i = 0; i < undo->len; i++)
            submit(m, &ops[i], 1, uctx);
        vfio_user_client_wait_all(m->client);
        g_ptr_array_free(uctx, TRUE);
    }
    m->stats.regions_live = interval_map_count(m->regions);
    g_array_free(undo, TRUE);
}

/* The connection dropped while tracking: the server's log is gone with
 * it, so every range it held may be dirty. */
static void mark_lost_connection(vfio_user_mapper *m)
{
    if (m->disconnect_marked || connected(m))
        return;
    m->disconnect_marked = true;
    if (!m->tracking)
        return;
    interval_map_iter it;
    u64_range r;
    region_val *v;
    interval_map_iter_init(&it, m->regions, 0, UINT64_MAX);
    while ((v = interval_map_iter_next(&it, &r)))
        guest_mem_dirty_mark(m->gm, v->gpa, v->gpa + (r.last - r.first));
}

/*
 * The connection broke during the batch: replies are matched to requests
 * by message id, and a server that lost track of the conversation may
 * have answered one request under another's id before it broke, so no
 * bitmap of the batch can be trusted. Every range it unmapped with a
 * bitmap is marked dirty whole.
 */
static void mark_batch_unmaps(vfio_user_mapper *m, const op *ops, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if ((ops[i].kind == OP_UNMAP && ops[i].pgsize) || ops[i].kind == OP_REPORT) {
            guest_mem_dirty_mark(m->gm, ops[i].gpa, ops[i].gpa + ops[i].size - 1);
            m->stats.bitmap_fallbacks++;
        }
    }
}

static int listener_batch_end(void *opaque, mapping_failed_fn failed, void *fail_opaque)
{
    vfio_user_mapper *m = opaque;
    op *ops = (op *)(void *)m->ops->data;
    size_t n = m->ops->len;
    GPtrArray *ctxs = g_ptr_array_new_with_free_func(g_free);

    if (n && connected(m)) {
        traffic_begin(m);
        m->stats.batches++;
        n = merge_ops(m, ops, n);
        bool table = vfio_user_client_dialect(m->client) == VFIO_USER_DIALECT_2021 &&
                     m->cfg.plan != VFIO_USER_PLAN_QEMU;
        for (size_t i = 0; i < n;) {
            size_t span = table && ops[i].kind != OP_REPORT ? table_span(m, ops, i, n) : 1;
            submit(m, &ops[i], span, ctxs);
            if (m->cfg.plan == VFIO_USER_PLAN_QEMU)
                vfio_user_client_wait_all(m->client);
            i += span;
        }
        if (m->cfg.plan != VFIO_USER_PLAN_QEMU)
            vfio_user_client_wait_all(m->client);
        traffic_end(m);
        if (!connected(m))
            mark_batch_unmaps(m, ops, n);
    } else if (n) {
        /* No connection: maps fail, unmaps were marked dirty when queued. */
        for (size_t i = 0; i < n; i++)
            if (ops[i].kind == OP_MAP)
                fail_event(m, ops[i].event, -EIO);
    }
    mark_lost_connection(m);

    int first_err = 0;
    bool any_failed = false;
    for (uint32_t e = 0; e < m->events->len; e++)
        any_failed |= g_array_index(m->events, pending_event, e).err != 0;
    if (any_failed) {
        traffic_begin(m);
        rollback_failed(m, ctxs);
        traffic_end(m);
        for (uint32_t e = 0; e < m->events->len; e++) {
            pending_event *pe = &g_array_index(m->events, pending_event, e);
            if (!pe->err)
                continue;
            m->stats.map_failures++;
            if (!first_err)
                first_err = pe->err;
            if (failed)
                failed(fail_opaque, &pe->ev, pe->err);
        }
    }
    g_ptr_array_free(ctxs, TRUE);
    g_array_set_size(m->events, 0);
    g_array_set_size(m->ops, 0);
    m->stats.regions_live = interval_map_count(m->regions);
    return first_err;
}

static const mapping_listener_ops mapper_listener_ops = {
    .batch_begin = listener_batch_begin,
    .map = listener_map,
    .unmap = listener_unmap,
    .batch_end = listener_batch_end,
};

mapping_listener vfio_user_mapper_listener(vfio_user_mapper *m)
{
    return (mapping_listener){&mapper_listener_ops, m};
}

/* ------------------------------------------------------------------ */
/* Connection, tracking, stats                                         */
/* ------------------------------------------------------------------ */

static int start_logging(vfio_user_mapper *m)
{
    if (!server_logs(m))
        return 0;
    if (vfio_user_client_dialect(m->client) == VFIO_USER_DIALECT_FINAL) {
        /* Log the whole IOVA space: regions come and go while tracking. */
        vfio_user_dma_entry all = {.iova = 0, .size = UINT64_MAX, .fd = -1};
        return vfio_user_client_dma_logging_start(m->client, dirty_pgsize(m), &all, 1);
    }
    return vfio_user_client_dirty_pages(m->client, VFIO_USER_DIRTY_PAGES_FLAG_START);
}

/* Maps every region of the table again, after a reconnect. */
static int remap_all(vfio_user_mapper *m)
{
    GArray *all = g_array_new(FALSE, FALSE, sizeof(op));
    interval_map_iter it;
    u64_range r;
    region_val *v;
    interval_map_iter_init(&it, m->regions, 0, UINT64_MAX);
    while ((v = interval_map_iter_next(&it, &r))) {
        op o = {.kind = OP_MAP,
                .event = 0,
                .iova = r.first,
                .size = r.last - r.first + 1,
                .gpa = v->gpa,
                .offset = v->offset,
                .fd = v->fd,
                .prot = v->prot};
        g_array_append_val(all, o);
    }
    GPtrArray *ctxs = g_ptr_array_new_with_free_func(g_free);
    /* Reuse the batch machinery without guest events: failures show in
     * the contexts. */
    g_array_set_size(m->events, 0);
    pending_event dummy = {0};
    dummy.is_map = false;
    g_array_append_val(m->events, dummy);
    op *ops = (op *)(void *)all->data;
    bool table = vfio_user_client_dialect(m->client) == VFIO_USER_DIALECT_2021;
    for (size_t i = 0; i < all->len;) {
        size_t span = table ? table_span(m, ops, i, all->len) : 1;
        submit(m, &ops[i], span, ctxs);
        i += span;
    }
    int ret = vfio_user_client_wait_all(m->client);
    for (guint i = 0; i < ctxs->len && !ret; i++) {
        msg_ctx *c = g_ptr_array_index(ctxs, i);
        if (c->failed)
            ret = c->err;
    }
    g_array_set_size(m->events, 0);
    g_ptr_array_free(ctxs, TRUE);
    g_array_free(all, TRUE);
    return ret;
}

int vfio_user_mapper_reconnect(vfio_user_mapper *m)
{
    if (connected(m))
        return 0;
    /* The lost server's dirty log went with it: whatever a batch or a sync
     * has not yet marked for it must be marked before the new connection
     * starts a fresh, empty log. */
    mark_lost_connection(m);
    uint32_t device = vfio_user_client_trace_device(m->client);
    if (m->trace_attempts++ == 0)
        m->trace_lost_ns = trace_now_ns();
    GError *err = NULL;
    vfio_user_client *c =
        vfio_user_client_connect(m->path, &m->client_cfg, &m->client_ops, m->opaque, &err);
    if (!c) {
        g_clear_error(&err);
        TRACE(reconnect, device, m->trace_attempts, -ECONNREFUSED,
              trace_now_ns() - m->trace_lost_ns);
        return -ECONNREFUSED;
    }
    vfio_user_client_free(m->client);
    m->client = c;
    vfio_user_client_set_trace_device(c, device);
    m->disconnect_marked = false;
    traffic_begin(m);
    int ret = remap_all(m);
    if (!ret && m->tracking)
        ret = start_logging(m);
    traffic_end(m);
    TRACE(reconnect, device, m->trace_attempts, ret, trace_now_ns() - m->trace_lost_ns);
    if (!ret) {
        m->stats.reconnects++;
        m->trace_attempts = 0;
    }
    return ret;
}

vfio_user_mapper *vfio_user_mapper_connect(const char *path,
                                           const vfio_user_client_config *client_cfg,
                                           const vfio_user_client_ops *ops, void *opaque,
                                           guest_mem *gm, const vfio_user_mapper_config *cfg,
                                           GError **error)
{
    vfio_user_mapper_config defaults = {0};
    if (!cfg)
        cfg = &defaults;
    uint64_t pg = cfg->dirty_pgsize;
    if (!path || !client_cfg || !gm || (pg & (pg - 1)) ||
        (cfg->plan != VFIO_USER_PLAN_COALESCE && cfg->plan != VFIO_USER_PLAN_QEMU)) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                    "vfio-user mapper: invalid configuration");
        return NULL;
    }
    vfio_user_client *c = vfio_user_client_connect(path, client_cfg, ops, opaque, error);
    if (!c)
        return NULL;
    vfio_user_mapper *m = g_new0(vfio_user_mapper, 1);
    m->path = g_strdup(path);
    m->client_cfg = *client_cfg;
    if (!m->client_cfg.caps.max_msg_size)
        m->client_cfg.caps.max_msg_size = (1u << 20) + 4096;
    if (ops)
        m->client_ops = *ops;
    m->opaque = opaque;
    m->client = c;
    m->gm = gm;
    m->cfg = *cfg;
    m->guest = interval_map_new(sizeof(guest_val));
    m->regions = interval_map_new(sizeof(region_val));
    m->events = g_array_new(FALSE, FALSE, sizeof(pending_event));
    m->ops = g_array_new(FALSE, FALSE, sizeof(op));
    return m;
}

void vfio_user_mapper_free(vfio_user_mapper *m)
{
    if (!m)
        return;
    vfio_user_client_free(m->client);
    interval_map_free(m->guest);
    interval_map_free(m->regions);
    g_array_free(m->events, TRUE);
    g_array_free(m->ops, TRUE);
    g_free(m->path);
    g_free(m);
}

vfio_user_client *vfio_user_mapper_client(vfio_user_mapper *m)
{
    return m->client;
}

bool vfio_user_mapper_tracking(const vfio_user_mapper *m)
{
    return m->tracking;
}

int vfio_user_mapper_dirty_start(vfio_user_mapper *m)
{
    if (m->tracking)
        return 0;
    if (!connected(m) && vfio_user_mapper_reconnect(m) < 0)
        return -ENOTCONN;
    traffic_begin(m);
    int ret = start_logging(m);
    traffic_end(m);
    m->stats.messages += server_logs(m) ? 1 : 0;
    if (ret < 0)
        return ret;
    m->tracking = true;
    return 0;
}

int vfio_user_mapper_dirty_stop(vfio_user_mapper *m)
{
    if (!m->tracking)
        return 0;
    m->tracking = false;
    if (!server_logs(m))
        return 0;
    m->stats.messages++;
    traffic_begin(m);
    int ret = vfio_user_client_dialect(m->client) == VFIO_USER_DIALECT_FINAL
                  ? vfio_user_client_dma_logging_stop(m->client)
                  : vfio_user_client_dirty_pages(m->client, VFIO_USER_DIRTY_PAGES_FLAG_STOP);
    traffic_end(m);
    return ret;
}

int vfio_user_mapper_dirty_sync(vfio_user_mapper *m)
{
    if (!m->tracking)
        return -EINVAL;
    if (!connected(m))
        vfio_user_mapper_reconnect(m);
    mark_lost_connection(m);
    bool logs = server_logs(m);
    bool final = logs && vfio_user_client_dialect(m->client) == VFIO_USER_DIALECT_FINAL;
    interval_map_iter it;
    u64_range r;
    region_val *v;
    traffic_begin(m);
    interval_map_iter_init(&it, m->regions, 0, UINT64_MAX);
    while ((v = interval_map_iter_next(&it, &r))) {
        uint64_t size = r.last - r.first + 1;
        op o = {.kind = OP_REPORT,
                .iova = r.first,
                .size = size,
                .gpa = v->gpa,
                .pgsize = dirty_pgsize(m)};
        if (!logs) {
            fold_or_mark(m, o.gpa, size, o.pgsize, NULL, 0);
            continue;
        }
        uint64_t bytes = fit_bitmap(m, &o, 16 + 48);
        uint8_t *bitmap = g_malloc0(bytes ? bytes : 8);
        int ret = -EINVAL;
        if (bytes) {
            ret = final ? vfio_user_client_dma_logging_report(m->client, r.first, size, o.pgsize,
                                                              bitmap, bytes)
                        : vfio_user_client_dirty_pages_get(m->client, r.first, size, o.pgsize,
                                                           bitmap, bytes);
            m->stats.messages++;
        }
        if (ret >= 0)
            vfio_user_trace_dirty(vfio_user_client_trace_device(m->client), r.first, size, o.pgsize,
                                  bitmap, bytes);
        fold_or_mark(m, o.gpa, size, o.pgsize, ret < 0 ? NULL : bitmap, bytes);
        g_free(bitmap);
    }
    traffic_end(m);
    return 0;
}

void vfio_user_mapper_stats_get(const vfio_user_mapper *m, vfio_user_mapper_stats *out)
{
    *out = m->stats;
    out->regions_live = interval_map_count(m->regions);
}

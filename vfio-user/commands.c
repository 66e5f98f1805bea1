/* SPDX-License-Identifier: MIT */
/*
 * commands.c - the client's synchronous commands, built on submit and
 * one wait per call: a DMA_MAP / DMA_UNMAP of many regions is pipelined
 * (tables in 2021, one message per region elsewhere) and waited once.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "private.h"
#include "transport.h"

/* What one synchronous call waits for. */
typedef struct sync_ctx {
    vfio_user_client *c;
    unsigned remaining;
    int first_err;
} sync_ctx;

static void sync_note(sync_ctx *s, int result)
{
    if (result < 0 && s->first_err == 0)
        s->first_err = result;
    s->remaining--;
}

static void sync_done(void *opaque, int result, const vfio_user_msg *reply)
{
    (void)reply;
    sync_note(opaque, result);
}

static int sync_submit(sync_ctx *s, const vfio_user_msg *m, vfio_user_completion_fn cb,
                       void *opaque)
{
    int rc = vfio_user_client_submit(s->c, m, 0, cb, opaque);
    if (rc == 0)
        s->remaining++;
    else if (s->first_err == 0)
        s->first_err = rc;
    return rc;
}

static int sync_finish(sync_ctx *s)
{
    int rc = s->remaining ? vfio_user_client_wait_for(s->c, &s->remaining) : 0;
    if (s->first_err)
        return s->first_err;
    return rc;
}

static vfio_user_msg command(vfio_user_op op)
{
    vfio_user_msg m;
    memset(&m, 0, sizeof(m));
    m.op = op;
    return m;
}

/* One message of a synchronous call, and its share of the caller's data. */
typedef struct part {
    sync_ctx *s;
    const vfio_user_dma_entry *regions;
    size_t n;
    uint8_t *const *bitmaps;
    void *buf;
    uint64_t len;
    void *out;
} part;

static int single(vfio_user_client *c, const vfio_user_msg *m, vfio_user_completion_fn cb, part *p)
{
    sync_ctx s = {.c = c};
    p->s = &s;
    sync_submit(&s, m, cb ? cb : sync_done, cb ? (void *)p : (void *)&s);
    return sync_finish(&s);
}

/* ------------------------------------------------------------------ */
/* DMA_MAP / DMA_UNMAP                                                 */
/* ------------------------------------------------------------------ */

static size_t table_limit(vfio_user_client *c, size_t per_entry)
{
    size_t max = vfio_user_client_max_msg_size(c);
    return max > VFIO_USER_HEADER_SIZE ? (max - VFIO_USER_HEADER_SIZE) / per_entry : 0;
}

int vfio_user_client_dma_map(vfio_user_client *c, const vfio_user_dma_entry *regions, size_t n)
{
    sync_ctx s = {.c = c};
    vfio_user_msg m = command(VFIO_USER_OP_DMA_MAP);
    size_t i = 0;

    if (n == 0 || !regions)
        return -EINVAL;
    if (vfio_user_client_dialect(c) != VFIO_USER_DIALECT_2021) {
        for (i = 0; i < n; i++) {
            m.dma.entries = (vfio_user_dma_entry *)&regions[i];
            m.dma.count = 1;
            if (sync_submit(&s, &m, sync_done, &s) < 0)
                break;
        }
        return sync_finish(&s);
    }

    size_t max_entries = table_limit(c, sizeof(struct vfio_user_2021_dma_entry_wire));
    size_t max_fds = vfio_user_client_server_caps(c)->max_msg_fds;
    if (max_fds > VFIO_USER_TRANSPORT_MAX_FDS)
        max_fds = VFIO_USER_TRANSPORT_MAX_FDS;
    if (max_entries == 0)
        return -EMSGSIZE;
    while (i < n) {
        size_t k = 0, fds = 0;
        while (i + k < n && k < max_entries) {
            bool mappable = regions[i + k].fd >= 0;
            if (mappable && fds == max_fds)
                break;
            fds += mappable;
            k++;
        }
        if (k == 0) {
            /* max_msg_fds is 0: a mappable region cannot travel at all */
            if (s.first_err == 0)
                s.first_err = -EMSGSIZE;
            break;
        }
        m.dma.entries = (vfio_user_dma_entry *)&regions[i];
        m.dma.count = k;
        if (sync_submit(&s, &m, sync_done, &s) < 0)
            break;
        i += k;
    }
    return sync_finish(&s);
}

/* Copies the bitmaps of one DMA_UNMAP reply to the caller's buffers. */
static void unmap_done(void *opaque, int result, const vfio_user_msg *reply)
{
    part *p = opaque;
    if (result == 0 && p->bitmaps) {
        size_t j = 0;
        for (size_t i = 0; i < p->n; i++) {
            if (!(p->regions[i].flags & VFIO_USER_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP))
                continue;
            /* vfio_user_reply_check() matched count, pgsize and size. */
            const vfio_user_dma_entry *b = &reply->dma.entries[j++];
            if (b->bitmap_size)
                memcpy(p->bitmaps[i], b->bitmap, b->bitmap_size);
        }
    }
    sync_note(p->s, result);
}

int vfio_user_client_dma_unmap(vfio_user_client *c, const vfio_user_dma_entry *regions, size_t n,
                               uint8_t *const *bitmaps)
{
    sync_ctx s = {.c = c};
    vfio_user_msg m = command(VFIO_USER_OP_DMA_UNMAP);
    bool table = vfio_user_client_dialect(c) == VFIO_USER_DIALECT_2021;
    size_t max_send = vfio_user_client_max_msg_size(c);
    size_t max_recv = vfio_user_client_max_recv(c);
    size_t i = 0;

    if (n == 0 || !regions)
        return -EINVAL;
    for (size_t k = 0; k < n; k++) {
        if ((regions[k].flags & VFIO_USER_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP) &&
            (!bitmaps || !bitmaps[k]))
            return -EINVAL;
    }
    part *parts = g_new0(part, n);
    size_t nparts = 0;
    while (i < n) {
        uint64_t req = VFIO_USER_HEADER_SIZE, rep = VFIO_USER_HEADER_SIZE;
        size_t k = 0;
        while (i + k < n) {
            const vfio_user_dma_entry *e = &regions[i + k];
            bool bm = e->flags & VFIO_USER_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP;
            uint64_t rq = table ? 32 + (bm ? 24 : 0) : 24 + (bm ? 16 : 0);
            uint64_t rp = table ? (bm ? 24 + e->bitmap_size : 0) : rq + (bm ? e->bitmap_size : 0);
            if (e->bitmap_size > max_recv || rp > max_recv || req + rq > max_send ||
                rep + rp > max_recv) {
                if (k == 0) {
                    /* this region's bitmap alone exceeds a message: a coarser pgsize is needed */
                    if (s.first_err == 0)
                        s.first_err = -EMSGSIZE;
                    goto wait;
                }
                break;
            }
            req += rq;
            rep += rp;
            k++;
            if (!table)
                break;
        }
        part *p = &parts[nparts++];
        p->s = &s;
        p->regions = &regions[i];
        p->n = k;
        p->bitmaps = bitmaps ? &bitmaps[i] : NULL;
        m.dma.entries = (vfio_user_dma_entry *)&regions[i];
        m.dma.count = k;
        if (sync_submit(&s, &m, unmap_done, p) < 0)
            break;
        i += k;
    }
wait:;
    int rc = sync_finish(&s);
    g_free(parts);
    return rc;
}

int vfio_user_client_dma_unmap_all(vfio_user_client *c)
{
    vfio_user_dma_entry e = {.flags = VFIO_USER_DMA_UNMAP_FLAG_ALL, .fd = -1};
    return vfio_user_client_dma_unmap(c, &e, 1, NULL);
}

/* ------------------------------------------------------------------ */
/* Dirty tracking                                                      */
/* ------------------------------------------------------------------ */

int vfio_user_client_dirty_pages(vfio_user_client *c, uint32_t flags)
{
    if (flags != VFIO_USER_DIRTY_PAGES_FLAG_START && flags != VFIO_USER_DIRTY_PAGES_FLAG_STOP)
        return -EINVAL;
    vfio_user_msg m = command(VFIO_USER_OP_DIRTY_PAGES);
    m.dirty.flags = flags;
    part p = {0};
    return single(c, &m, NULL, &p);
}

static void bitmap_done(void *opaque, int result, const vfio_user_msg *reply)
{
    part *p = opaque;
    if (result == 0) {
        const uint8_t *src =
            reply->op == VFIO_USER_OP_DIRTY_PAGES ? reply->dirty.bitmap : reply->feature.bitmap;
        if (p->len)
            memcpy(p->buf, src, p->len);
    }
    sync_note(p->s, result);
}

int vfio_user_client_dirty_pages_get(vfio_user_client *c, uint64_t iova, uint64_t size,
                                     uint64_t pgsize, uint8_t *bitmap, uint64_t bitmap_size)
{
    if (!bitmap || bitmap_size == 0 || pgsize == 0)
        return -EINVAL;
    if (bitmap_size > vfio_user_client_max_recv(c))
        return -EMSGSIZE;
    vfio_user_msg m = command(VFIO_USER_OP_DIRTY_PAGES);
    m.dirty.flags = VFIO_USER_DIRTY_PAGES_FLAG_GET_BITMAP;
    m.dirty.has_range = true;
    m.dirty.iova = iova;
    m.dirty.size = size;
    m.dirty.pgsize = pgsize;
    m.dirty.bitmap_size = bitmap_size;
    part p = {.buf = bitmap, .len = bitmap_size};
    return single(c, &m, bitmap_done, &p);
}

int vfio_user_client_dma_logging_start(vfio_user_client *c, uint64_t page_size,
                                       const vfio_user_dma_entry *ranges, size_t n)
{
    vfio_user_msg m = command(VFIO_USER_OP_DEVICE_FEATURE);
    m.feature.flags = VFIO_USER_DEVICE_FEATURE_SET | VFIO_USER_DEVICE_FEATURE_DMA_LOGGING_START;
    m.feature.has_data = true;
    m.feature.page_size = page_size;
    m.feature.ranges = (vfio_user_dma_entry *)ranges;
    m.feature.num_ranges = n;
    part p = {0};
    return single(c, &m, NULL, &p);
}

int vfio_user_client_dma_logging_stop(vfio_user_client *c)
{
    vfio_user_msg m = command(VFIO_USER_OP_DEVICE_FEATURE);
    m.feature.flags = VFIO_USER_DEVICE_FEATURE_SET | VFIO_USER_DEVICE_FEATURE_DMA_LOGGING_STOP;
    part p = {0};
    return single(c, &m, NULL, &p);
}

int vfio_user_client_dma_logging_report(vfio_user_client *c, uint64_t iova, uint64_t length,
                                        uint64_t page_size, uint8_t *bitmap, uint64_t bitmap_size)
{
    uint64_t want;
    int rc = vfio_user_bitmap_bytes(length, page_size, &want);
    if (rc < 0)
        return rc;
    if (!bitmap || bitmap_size != want)
        return -EINVAL;
    if (bitmap_size > vfio_user_client_max_recv(c))
        return -EMSGSIZE;
    vfio_user_msg m = command(VFIO_USER_OP_DEVICE_FEATURE);
    m.feature.flags = VFIO_USER_DEVICE_FEATURE_GET | VFIO_USER_DEVICE_FEATURE_DMA_LOGGING_REPORT;
    m.feature.has_data = true;
    m.feature.iova = iova;
    m.feature.length = length;
    m.feature.page_size = page_size;
    m.feature.bitmap_len = bitmap_size;
    part p = {.buf = bitmap, .len = bitmap_size};
    return single(c, &m, bitmap_done, &p);
}

/* ------------------------------------------------------------------ */
/* Device access                                                       */
/* ------------------------------------------------------------------ */

static void device_info_done(void *opaque, int result, const vfio_user_msg *reply)
{
    part *p = opaque;
    if (result == 0) {
        vfio_user_device_info *out = p->out;
        out->flags = reply->device_info.flags;
        out->num_regions = reply->device_info.num_regions;
        out->num_irqs = reply->device_info.num_irqs;
    }
    sync_note(p->s, result);
}

int vfio_user_client_device_get_info(vfio_user_client *c, vfio_user_device_info *out)
{
    vfio_user_msg m = command(VFIO_USER_OP_DEVICE_GET_INFO);
    m.device_info.argsz = sizeof(struct vfio_user_device_info_wire);
    part p = {.out = out};
    return single(c, &m, device_info_done, &p);
}

static void region_info_done(void *opaque, int result, const vfio_user_msg *reply)
{
    part *p = opaque;
    if (result == 0) {
        vfio_user_region_info *out = p->out;
        out->flags = reply->region_info.flags;
        out->index = reply->region_info.index;
        out->size = reply->region_info.size;
        out->offset = reply->region_info.offset;
        if (p->buf)
            *(int *)p->buf = vfio_user_client_take_fd(p->s->c);
    }
    sync_note(p->s, result);
}

int vfio_user_client_region_info(vfio_user_client *c, uint32_t index, vfio_user_region_info *out,
                                 int *fd)
{
    vfio_user_msg m = command(VFIO_USER_OP_DEVICE_GET_REGION_INFO);
    m.region_info.argsz = sizeof(struct vfio_user_region_info_wire);
    m.region_info.index = index;
    if (fd)
        *fd = -1;
    part p = {.out = out, .buf = fd};
    return single(c, &m, region_info_done, &p);
}

static int xfer_limit(vfio_user_client *c, uint64_t count)
{
    const vfio_user_caps *sc = vfio_user_client_server_caps(c);
    if (count > sc->max_data_xfer_size ||
        count + VFIO_USER_HEADER_SIZE + 16 > vfio_user_client_max_msg_size(c) ||
        count + VFIO_USER_HEADER_SIZE + 16 > vfio_user_client_max_recv(c))
        return -EMSGSIZE;
    return 0;
}

static void region_read_done(void *opaque, int result, const vfio_user_msg *reply)
{
    part *p = opaque;
    if (result == 0 && p->len)
        memcpy(p->buf, reply->region_io.data, p->len);
    sync_note(p->s, result);
}

int vfio_user_client_region_read(vfio_user_client *c, uint32_t region, uint64_t offset, void *buf,
                                 uint32_t count)
{
    int rc = xfer_limit(c, count);
    if (rc < 0)
        return rc;
    if (count && !buf)
        return -EINVAL;
    vfio_user_msg m = command(VFIO_USER_OP_REGION_READ);
    m.region_io.offset = offset;
    m.region_io.region = region;
    m.region_io.count = count;
    part p = {.buf = buf, .len = count};
    return single(c, &m, region_read_done, &p);
}

int vfio_user_client_region_write(vfio_user_client *c, uint32_t region, uint64_t offset,
                                  const void *buf, uint32_t count)
{
    int rc = xfer_limit(c, count);
    if (rc < 0)
        return rc;
    if (count && !buf)
        return -EINVAL;
    vfio_user_msg m = command(VFIO_USER_OP_REGION_WRITE);
    m.region_io.offset = offset;
    m.region_io.region = region;
    m.region_io.count = count;
    m.region_io.data = buf;
    m.region_io.data_len = count;
    part p = {0};
    return single(c, &m, NULL, &p);
}

int vfio_user_client_device_reset(vfio_user_client *c)
{
    vfio_user_msg m = command(VFIO_USER_OP_DEVICE_RESET);
    part p = {0};
    return single(c, &m, NULL, &p);
}

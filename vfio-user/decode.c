/* SPDX-License-Identifier: MIT */
/*
 * decode.c - vfio-user messages from byte buffers, and replies checked
 * against their requests. Every length, count and offset is checked
 * against the buffer before it is used.
 */
#include <errno.h>
#include <string.h>

#include "private.h"

/* ------------------------------------------------------------------ */
/* Decode                                                              */
/* ------------------------------------------------------------------ */

size_t vfio_user_msg_max_entries(size_t len)
{
    /* The smallest per-entry footprint is a 2021 reply bitmap header. */
    return len / SZ_2021_BITMAP + 1;
}

static int decode_dma_2021(const vfio_user_msg *m, const uint8_t *p, uint64_t n, bool reply,
                           vfio_user_dma_entry *entries, size_t max, size_t *count)
{
    size_t k = 0;
    while (n > 0) {
        vfio_user_dma_entry e = {.fd = -1};
        if (k >= max)
            return -ENOSPC;
        if (!reply) {
            if (n < SZ_2021_ENTRY)
                return -EBADMSG;
            e.iova = get_le64(p);
            e.size = get_le64(p + 8);
            e.offset = get_le64(p + 16);
            e.prot = get_le32(p + 24);
            e.flags = get_le32(p + 28);
            p += SZ_2021_ENTRY;
            n -= SZ_2021_ENTRY;
        } else {
            e.flags = VFIO_USER_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP;
        }
        if (m->op == VFIO_USER_OP_DMA_UNMAP &&
            (e.flags & VFIO_USER_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP)) {
            if (n < SZ_2021_BITMAP)
                return -EBADMSG;
            e.bitmap_pgsize = get_le64(p);
            e.bitmap_size = get_le64(p + 8);
            p += SZ_2021_BITMAP;
            n -= SZ_2021_BITMAP;
            if (reply) {
                if (e.bitmap_size > n)
                    return -EBADMSG;
                e.bitmap = p;
                p += e.bitmap_size;
                n -= e.bitmap_size;
            }
        }
        entries[k++] = e;
    }
    *count = k;
    return 0;
}

static int decode_dma(vfio_user_dialect d, vfio_user_msg *m, const uint8_t *p, uint64_t n,
                      const int *fds, size_t nfds, bool check_fds, vfio_user_dma_entry *entries,
                      size_t max)
{
    bool reply = vfio_user_msg_is_reply(&m->hdr);
    m->dma.entries = entries;
    m->dma.count = 0;
    m->dma.argsz = 0;

    if (m->op == VFIO_USER_OP_DMA_MAP && reply)
        return n == 0 ? 0 : -EBADMSG;
    if (d == VFIO_USER_DIALECT_2021) {
        if (!reply && n == 0)
            return -EBADMSG;
        int rc = decode_dma_2021(m, p, n, reply, entries, max, &m->dma.count);
        if (rc < 0)
            return rc;
        if (m->op == VFIO_USER_OP_DMA_MAP) {
            size_t k = 0;
            for (size_t i = 0; i < m->dma.count; i++) {
                if (entries[i].flags & ~VFIO_USER_2021_DMA_MAP_FLAG_MAPPABLE)
                    return -EBADMSG;
                if (!(entries[i].flags & VFIO_USER_2021_DMA_MAP_FLAG_MAPPABLE))
                    continue;
                if (k < nfds)
                    entries[i].fd = fds[k];
                k++;
            }
            if (check_fds && k != nfds)
                return -EPROTO;
        }
        return 0;
    }

    /* 0.9.1 / final: exactly one region. */
    if (max < 1)
        return -ENOSPC;
    vfio_user_dma_entry *e = &entries[0];
    *e = (vfio_user_dma_entry){.fd = -1};
    if (m->op == VFIO_USER_OP_DMA_MAP) {
        if (n != SZ_DMA_MAP)
            return -EBADMSG;
        m->dma.argsz = get_le32(p);
        e->prot = get_le32(p + 4);
        e->offset = get_le64(p + 8);
        e->iova = get_le64(p + 16);
        e->size = get_le64(p + 24);
        if (check_fds && nfds > 1)
            return -EPROTO;
        if (nfds == 1)
            e->fd = fds[0];
        m->dma.count = 1;
        return 0;
    }
    if (n < SZ_DMA_UNMAP)
        return -EBADMSG;
    m->dma.argsz = get_le32(p);
    e->flags = get_le32(p + 4);
    e->iova = get_le64(p + 8);
    e->size = get_le64(p + 16);
    p += SZ_DMA_UNMAP;
    n -= SZ_DMA_UNMAP;
    if (e->flags & VFIO_USER_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP) {
        if (n < SZ_BITMAP)
            return -EBADMSG;
        e->bitmap_pgsize = get_le64(p);
        e->bitmap_size = get_le64(p + 8);
        p += SZ_BITMAP;
        n -= SZ_BITMAP;
        if (reply) {
            if (e->bitmap_size != n)
                return -EBADMSG;
            e->bitmap = p;
            n = 0;
        }
    }
    /*
     * Real servers given two 24-byte entries act on the first only; a
     * request of that shape is accepted so a server can reproduce it.
     */
    if (n != 0 && (reply || n % SZ_DMA_UNMAP != 0))
        return -EBADMSG;
    m->dma.count = 1;
    return 0;
}

static int decode_feature(vfio_user_msg *m, const uint8_t *p, uint64_t n,
                          vfio_user_dma_entry *entries, size_t max)
{
    bool reply = vfio_user_msg_is_reply(&m->hdr);
    if (n < SZ_FEATURE)
        return -EBADMSG;
    m->feature.argsz = get_le32(p);
    m->feature.flags = get_le32(p + 4);
    p += SZ_FEATURE;
    n -= SZ_FEATURE;
    m->feature.has_data = n > 0;
    if (n == 0)
        return 0;
    switch (m->feature.flags & VFIO_USER_DEVICE_FEATURE_MASK) {
    case VFIO_USER_DEVICE_FEATURE_DMA_LOGGING_START: {
        if (n < SZ_LOG_CONTROL)
            return -EBADMSG;
        m->feature.page_size = get_le64(p);
        uint32_t nr = get_le32(p + 8);
        p += SZ_LOG_CONTROL;
        n -= SZ_LOG_CONTROL;
        if (n != (uint64_t)nr * SZ_LOG_RANGE)
            return -EBADMSG;
        if (nr > max)
            return -ENOSPC;
        for (uint32_t i = 0; i < nr; i++) {
            entries[i] = (vfio_user_dma_entry){.fd = -1};
            entries[i].iova = get_le64(p);
            entries[i].size = get_le64(p + 8);
            p += SZ_LOG_RANGE;
        }
        m->feature.ranges = entries;
        m->feature.num_ranges = nr;
        return 0;
    }
    case VFIO_USER_DEVICE_FEATURE_DMA_LOGGING_REPORT:
        if (n < SZ_LOG_REPORT)
            return -EBADMSG;
        m->feature.iova = get_le64(p);
        m->feature.length = get_le64(p + 8);
        m->feature.page_size = get_le64(p + 16);
        p += SZ_LOG_REPORT;
        n -= SZ_LOG_REPORT;
        if (!reply && n != 0)
            return -EBADMSG;
        m->feature.bitmap = n ? p : NULL;
        m->feature.bitmap_len = n;
        return 0;
    default:
        /* Other features carry data this library does not interpret. */
        return 0;
    }
}

static int decode_dirty(vfio_user_dialect d, vfio_user_msg *m, const uint8_t *p, uint64_t n)
{
    bool reply = vfio_user_msg_is_reply(&m->hdr);
    if (reply && n == 0)
        return 0; /* START / STOP */
    if (d == VFIO_USER_DIALECT_2021 && reply) {
        if (n < SZ_2021_BITMAP)
            return -EBADMSG;
        m->dirty.has_range = true;
        m->dirty.flags = VFIO_USER_DIRTY_PAGES_FLAG_GET_BITMAP;
        m->dirty.pgsize = get_le64(p);
        m->dirty.bitmap_size = get_le64(p + 8);
        if (m->dirty.bitmap_size != n - SZ_2021_BITMAP)
            return -EBADMSG;
        m->dirty.bitmap = p + SZ_2021_BITMAP;
        return 0;
    }
    if (n < SZ_DIRTY)
        return -EBADMSG;
    m->dirty.argsz = get_le32(p);
    m->dirty.flags = get_le32(p + 4);
    p += SZ_DIRTY;
    n -= SZ_DIRTY;
    if (!(m->dirty.flags & VFIO_USER_DIRTY_PAGES_FLAG_GET_BITMAP))
        return n == 0 ? 0 : -EBADMSG;
    uint64_t range = d == VFIO_USER_DIALECT_2021 ? SZ_2021_RANGE : SZ_RANGE;
    if (n < range)
        return -EBADMSG;
    m->dirty.has_range = true;
    m->dirty.iova = get_le64(p);
    m->dirty.size = get_le64(p + 8);
    m->dirty.pgsize = get_le64(p + 16);
    m->dirty.bitmap_size = get_le64(p + 24);
    p += range;
    n -= range;
    if (!reply)
        return n == 0 ? 0 : -EBADMSG;
    if (m->dirty.bitmap_size != n)
        return -EBADMSG;
    m->dirty.bitmap = p;
    return 0;
}

static int decode_body(vfio_user_dialect d, vfio_user_msg *m, const uint8_t *p, uint64_t n,
                       const int *fds, size_t nfds, bool check_fds, vfio_user_dma_entry *entries,
                       size_t max)
{
    bool reply = vfio_user_msg_is_reply(&m->hdr);

    switch (m->op) {
    case VFIO_USER_OP_VERSION:
        if (n < sizeof(struct vfio_user_version_wire))
            return -EBADMSG;
        m->version.major = get_le16(p);
        m->version.minor = get_le16(p + 2);
        n -= 4;
        if (n > 0) {
            /* The JSON must end with its NUL and hold no other. */
            const char *json = (const char *)p + 4;
            if (json[n - 1] != '\0' || memchr(json, '\0', n - 1))
                return -EBADMSG;
            m->version.json = json;
            m->version.json_len = n;
        }
        return 0;
    case VFIO_USER_OP_DMA_MAP:
    case VFIO_USER_OP_DMA_UNMAP:
        return decode_dma(d, m, p, n, fds, nfds, check_fds, entries, max);
    case VFIO_USER_OP_DEVICE_GET_INFO:
        if (n != SZ_DEVICE_INFO)
            return -EBADMSG;
        m->device_info.argsz = get_le32(p);
        m->device_info.flags = get_le32(p + 4);
        m->device_info.num_regions = get_le32(p + 8);
        m->device_info.num_irqs = get_le32(p + 12);
        return 0;
    case VFIO_USER_OP_DEVICE_GET_REGION_INFO:
        if (n < SZ_REGION_INFO || (!reply && n != SZ_REGION_INFO))
            return -EBADMSG;
        m->region_info.argsz = get_le32(p);
        m->region_info.flags = get_le32(p + 4);
        m->region_info.index = get_le32(p + 8);
        m->region_info.cap_offset = get_le32(p + 12);
        m->region_info.size = get_le64(p + 16);
        m->region_info.offset = get_le64(p + 24);
        m->region_info.caps_len = n - SZ_REGION_INFO;
        m->region_info.caps = m->region_info.caps_len ? p + SZ_REGION_INFO : NULL;
        return 0;
    case VFIO_USER_OP_REGION_READ:
    case VFIO_USER_OP_REGION_WRITE: {
        if (n < SZ_REGION_ACCESS)
            return -EBADMSG;
        m->region_io.offset = get_le64(p);
        m->region_io.region = get_le32(p + 8);
        m->region_io.count = get_le32(p + 12);
        m->region_io.data_len = n - SZ_REGION_ACCESS;
        m->region_io.data = m->region_io.data_len ? p + SZ_REGION_ACCESS : NULL;
        /* Data travels in the write request and the read reply only. */
        bool carries = (m->op == VFIO_USER_OP_REGION_WRITE) != reply;
        if (carries ? m->region_io.data_len != m->region_io.count : m->region_io.data_len != 0)
            return -EBADMSG;
        return 0;
    }
    case VFIO_USER_OP_DMA_READ:
    case VFIO_USER_OP_DMA_WRITE: {
        if (n < SZ_DMA_ACCESS)
            return -EBADMSG;
        m->dma_io.addr = get_le64(p);
        m->dma_io.count = get_le64(p + 8);
        m->dma_io.data_len = n - SZ_DMA_ACCESS;
        m->dma_io.data = m->dma_io.data_len ? p + SZ_DMA_ACCESS : NULL;
        bool carries = (m->op == VFIO_USER_OP_DMA_WRITE) != reply;
        if (carries ? m->dma_io.data_len != m->dma_io.count : m->dma_io.data_len != 0)
            return -EBADMSG;
        return 0;
    }
    case VFIO_USER_OP_VM_INTERRUPT:
        if (n != (reply ? 0 : 4))
            return -EBADMSG;
        if (!reply)
            m->interrupt.sub_index = get_le32(p);
        return 0;
    case VFIO_USER_OP_DEVICE_RESET:
        return n == 0 ? 0 : -EBADMSG;
    case VFIO_USER_OP_DIRTY_PAGES:
        return decode_dirty(d, m, p, n);
    case VFIO_USER_OP_DEVICE_FEATURE:
        return decode_feature(m, p, n, entries, max);
    default:
        return -ENOTSUP;
    }
}

/* Which messages may carry fds: DMA_MAP requests, and replies to VERSION
 * (twin socket) and DEVICE_GET_REGION_INFO (mmap). */
static bool fds_allowed(const vfio_user_msg *m)
{
    bool reply = vfio_user_msg_is_reply(&m->hdr);
    if (reply)
        return m->op == VFIO_USER_OP_VERSION || m->op == VFIO_USER_OP_DEVICE_GET_REGION_INFO;
    return m->op == VFIO_USER_OP_DMA_MAP;
}

static int decode_common(vfio_user_dialect d, const void *buf, size_t len, const int *fds,
                         size_t nfds, bool check_fds, vfio_user_msg *out,
                         vfio_user_dma_entry *entries, size_t max)
{
    const uint8_t *p = buf;
    memset(out, 0, sizeof(*out));
    int rc = vfio_user_header_decode(buf, len, &out->hdr);
    if (rc < 0)
        return rc;
    if (out->hdr.msg_size != len)
        return -EBADMSG;
    rc = vfio_user_command_op(d, out->hdr.command);
    if (rc < 0)
        return rc;
    out->op = (vfio_user_op)rc;
    if (check_fds && nfds > 0 && !fds_allowed(out))
        return -EPROTO;
    if (vfio_user_msg_is_reply(&out->hdr) && (out->hdr.flags & VFIO_USER_F_ERROR))
        return 0; /* an error reply's body, if any, means nothing */
    return decode_body(d, out, p + VFIO_USER_HEADER_SIZE, len - VFIO_USER_HEADER_SIZE, fds, nfds,
                       check_fds, entries, max);
}

int vfio_user_msg_decode(vfio_user_dialect d, const void *buf, size_t len, const int *fds,
                         size_t nfds, vfio_user_msg *out, vfio_user_dma_entry *entries,
                         size_t max_entries)
{
    if (nfds && !fds)
        return -EINVAL;
    return decode_common(d, buf, len, fds, nfds, true, out, entries, max_entries);
}

int vfio_user_msg_decode_nofds(vfio_user_dialect d, const void *buf, size_t len, vfio_user_msg *out,
                               vfio_user_dma_entry *entries, size_t max_entries)
{
    return decode_common(d, buf, len, NULL, 0, false, out, entries, max_entries);
}

/* ------------------------------------------------------------------ */
/* Reply against request                                               */
/* ------------------------------------------------------------------ */

static int check_unmap(vfio_user_dialect d, const vfio_user_msg *rq, const vfio_user_msg *rp)
{
    if (d == VFIO_USER_DIALECT_2021) {
        size_t j = 0;
        for (size_t i = 0; i < rq->dma.count; i++) {
            const vfio_user_dma_entry *e = &rq->dma.entries[i];
            if (!(e->flags & VFIO_USER_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP))
                continue;
            if (j >= rp->dma.count)
                return -EBADMSG;
            const vfio_user_dma_entry *b = &rp->dma.entries[j++];
            if (b->bitmap_pgsize != e->bitmap_pgsize || b->bitmap_size != e->bitmap_size)
                return -EBADMSG;
        }
        return j == rp->dma.count ? 0 : -EBADMSG;
    }
    const vfio_user_dma_entry *e = &rq->dma.entries[0], *b = &rp->dma.entries[0];
    if (rp->dma.count != 1 || b->iova != e->iova || b->size != e->size || b->flags != e->flags)
        return -EBADMSG;
    if ((e->flags & VFIO_USER_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP) &&
        (b->bitmap_pgsize != e->bitmap_pgsize || b->bitmap_size != e->bitmap_size))
        return -EBADMSG;
    return 0;
}

static int check_body(vfio_user_dialect d, const vfio_user_msg *rq, const vfio_user_msg *rp)
{
    switch (rq->op) {
    case VFIO_USER_OP_DMA_UNMAP:
        return check_unmap(d, rq, rp);
    case VFIO_USER_OP_REGION_READ:
        return rp->region_io.count == rq->region_io.count ? 0 : -EBADMSG;
    case VFIO_USER_OP_DIRTY_PAGES:
        if (rq->dirty.has_range != rp->dirty.has_range)
            return -EBADMSG;
        if (rq->dirty.has_range && (rp->dirty.bitmap_size != rq->dirty.bitmap_size ||
                                    rp->dirty.pgsize != rq->dirty.pgsize))
            return -EBADMSG;
        return 0;
    case VFIO_USER_OP_DEVICE_FEATURE: {
        uint32_t feature = rq->feature.flags & VFIO_USER_DEVICE_FEATURE_MASK;
        if ((rp->feature.flags & VFIO_USER_DEVICE_FEATURE_MASK) != feature)
            return -EBADMSG;
        if (feature != VFIO_USER_DEVICE_FEATURE_DMA_LOGGING_REPORT ||
            !(rq->feature.flags & VFIO_USER_DEVICE_FEATURE_GET) ||
            (rq->feature.flags & VFIO_USER_DEVICE_FEATURE_PROBE))
            return 0;
        uint64_t want;
        if (vfio_user_bitmap_bytes(rq->feature.length, rq->feature.page_size, &want) < 0)
            return -EBADMSG;
        if (!rp->feature.has_data || rp->feature.iova != rq->feature.iova ||
            rp->feature.length != rq->feature.length ||
            rp->feature.page_size != rq->feature.page_size || rp->feature.bitmap_len != want)
            return -EBADMSG;
        return 0;
    }
    default:
        return 0;
    }
}

int vfio_user_reply_check(vfio_user_dialect d, const void *req, size_t req_len,
                          const vfio_user_msg *reply)
{
    vfio_user_dma_entry stack[16];
    vfio_user_dma_entry *entries = stack;
    size_t max = vfio_user_msg_max_entries(req_len);
    vfio_user_msg rq;
    int rc;

    if (!vfio_user_msg_is_reply(&reply->hdr))
        return -EBADMSG;
    if (max > sizeof(stack) / sizeof(stack[0]))
        entries = g_new(vfio_user_dma_entry, max);
    else
        max = sizeof(stack) / sizeof(stack[0]);
    rc = vfio_user_msg_decode_nofds(d, req, req_len, &rq, entries, max);
    if (rc < 0)
        goto out;
    if (rq.op != reply->op || rq.hdr.msg_id != reply->hdr.msg_id) {
        rc = -EBADMSG;
        goto out;
    }
    if (reply->hdr.flags & VFIO_USER_F_ERROR) {
        rc = 0;
        goto out;
    }
    rc = check_body(d, &rq, reply);
out:
    if (entries != stack)
        g_free(entries);
    return rc;
}

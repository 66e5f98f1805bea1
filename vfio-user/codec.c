/* SPDX-License-Identifier: MIT */
/*
 * codec.c - vfio-user messages to and from byte buffers, for the three
 * dialects. Pure functions: no I/O, no fd handling beyond bookkeeping.
 * Every field read from a buffer is bounds-checked before use.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "private.h"

#define SZ_2021_ENTRY sizeof(struct vfio_user_2021_dma_entry_wire)
#define SZ_2021_BITMAP sizeof(struct vfio_user_2021_bitmap_wire)
#define SZ_DMA_MAP sizeof(struct vfio_user_dma_map_wire)
#define SZ_DMA_UNMAP sizeof(struct vfio_user_dma_unmap_wire)
#define SZ_BITMAP sizeof(struct vfio_user_bitmap_wire)
#define SZ_DEVICE_INFO sizeof(struct vfio_user_device_info_wire)
#define SZ_REGION_INFO sizeof(struct vfio_user_region_info_wire)
#define SZ_REGION_ACCESS sizeof(struct vfio_user_region_access_wire)
#define SZ_DMA_ACCESS sizeof(struct vfio_user_dma_access_wire)
#define SZ_DIRTY sizeof(struct vfio_user_dirty_pages_wire)
#define SZ_2021_RANGE sizeof(struct vfio_user_2021_bitmap_range_wire)
#define SZ_RANGE sizeof(struct vfio_user_bitmap_range_wire)
#define SZ_FEATURE sizeof(struct vfio_user_device_feature_wire)
#define SZ_LOG_CONTROL sizeof(struct vfio_user_dma_logging_control_wire)
#define SZ_LOG_RANGE sizeof(struct vfio_user_dma_logging_range_wire)
#define SZ_LOG_REPORT sizeof(struct vfio_user_dma_logging_report_wire)

const char *vfio_user_dialect_name(vfio_user_dialect d)
{
    switch (d) {
    case VFIO_USER_DIALECT_2021:
        return "2021";
    case VFIO_USER_DIALECT_0_9_1:
        return "0.9.1";
    case VFIO_USER_DIALECT_FINAL:
        return "final";
    }
    return NULL;
}

int vfio_user_dialect_parse(const char *name, vfio_user_dialect *out)
{
    static const vfio_user_dialect all[] = {VFIO_USER_DIALECT_2021, VFIO_USER_DIALECT_0_9_1,
                                            VFIO_USER_DIALECT_FINAL};
    if (!name)
        return -EINVAL;
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        if (strcmp(name, vfio_user_dialect_name(all[i])) == 0) {
            *out = all[i];
            return 0;
        }
    }
    return -EINVAL;
}

static bool dialect_valid(vfio_user_dialect d)
{
    return d == VFIO_USER_DIALECT_2021 || d == VFIO_USER_DIALECT_0_9_1 ||
           d == VFIO_USER_DIALECT_FINAL;
}

int vfio_user_op_command(vfio_user_dialect d, vfio_user_op op)
{
    if (!dialect_valid(d))
        return -ENOTSUP;
    switch (op) {
    case VFIO_USER_OP_VERSION:
        return VFIO_USER_VERSION;
    case VFIO_USER_OP_DMA_MAP:
        return VFIO_USER_DMA_MAP;
    case VFIO_USER_OP_DMA_UNMAP:
        return VFIO_USER_DMA_UNMAP;
    case VFIO_USER_OP_DEVICE_GET_INFO:
        return VFIO_USER_DEVICE_GET_INFO;
    case VFIO_USER_OP_DEVICE_GET_REGION_INFO:
        return VFIO_USER_DEVICE_GET_REGION_INFO;
    case VFIO_USER_OP_REGION_READ:
        return VFIO_USER_REGION_READ;
    case VFIO_USER_OP_REGION_WRITE:
        return VFIO_USER_REGION_WRITE;
    case VFIO_USER_OP_DMA_READ:
        return VFIO_USER_DMA_READ;
    case VFIO_USER_OP_DMA_WRITE:
        return VFIO_USER_DMA_WRITE;
    case VFIO_USER_OP_VM_INTERRUPT:
        return d == VFIO_USER_DIALECT_2021 ? VFIO_USER_2021_VM_INTERRUPT : -ENOTSUP;
    case VFIO_USER_OP_DEVICE_RESET:
        return d == VFIO_USER_DIALECT_2021 ? VFIO_USER_2021_DEVICE_RESET : VFIO_USER_DEVICE_RESET;
    case VFIO_USER_OP_DIRTY_PAGES:
        if (d == VFIO_USER_DIALECT_2021)
            return VFIO_USER_2021_DIRTY_PAGES;
        return d == VFIO_USER_DIALECT_0_9_1 ? VFIO_USER_DIRTY_PAGES : -ENOTSUP;
    case VFIO_USER_OP_DEVICE_FEATURE:
        return d == VFIO_USER_DIALECT_FINAL ? VFIO_USER_DEVICE_FEATURE : -ENOTSUP;
    }
    return -ENOTSUP;
}

int vfio_user_command_op(vfio_user_dialect d, uint16_t command)
{
    for (int op = VFIO_USER_OP_VERSION; op <= VFIO_USER_OP_DEVICE_FEATURE; op++) {
        if (vfio_user_op_command(d, (vfio_user_op)op) == (int)command)
            return op;
    }
    return -ENOTSUP;
}

const char *vfio_user_op_name(vfio_user_op op)
{
    static const char *const names[] = {
        [VFIO_USER_OP_VERSION] = "VERSION",
        [VFIO_USER_OP_DMA_MAP] = "DMA_MAP",
        [VFIO_USER_OP_DMA_UNMAP] = "DMA_UNMAP",
        [VFIO_USER_OP_DEVICE_GET_INFO] = "DEVICE_GET_INFO",
        [VFIO_USER_OP_DEVICE_GET_REGION_INFO] = "DEVICE_GET_REGION_INFO",
        [VFIO_USER_OP_REGION_READ] = "REGION_READ",
        [VFIO_USER_OP_REGION_WRITE] = "REGION_WRITE",
        [VFIO_USER_OP_DMA_READ] = "DMA_READ",
        [VFIO_USER_OP_DMA_WRITE] = "DMA_WRITE",
        [VFIO_USER_OP_VM_INTERRUPT] = "VM_INTERRUPT",
        [VFIO_USER_OP_DEVICE_RESET] = "DEVICE_RESET",
        [VFIO_USER_OP_DIRTY_PAGES] = "DIRTY_PAGES",
        [VFIO_USER_OP_DEVICE_FEATURE] = "DEVICE_FEATURE",
    };
    if ((unsigned)op < sizeof(names) / sizeof(names[0]) && names[op])
        return names[op];
    return "?";
}

int vfio_user_bitmap_bytes(uint64_t size, uint64_t pgsize, uint64_t *bytes)
{
    if (size == 0 || pgsize == 0 || (pgsize & (pgsize - 1)) != 0)
        return -EINVAL;
    uint64_t pages = size / pgsize + (size % pgsize != 0);
    uint64_t words = pages / 64 + (pages % 64 != 0);
    if (words > UINT64_MAX / 8)
        return -EOVERFLOW;
    *bytes = words * 8;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Header                                                              */
/* ------------------------------------------------------------------ */

int vfio_user_header_decode(const void *buf, size_t len, vfio_user_header *out)
{
    const uint8_t *p = buf;
    if (len < VFIO_USER_HEADER_SIZE)
        return -EBADMSG;
    out->msg_id = get_le16(p + offsetof(struct vfio_user_header_wire, msg_id));
    out->command = get_le16(p + offsetof(struct vfio_user_header_wire, command));
    out->msg_size = get_le32(p + offsetof(struct vfio_user_header_wire, msg_size));
    out->flags = get_le32(p + offsetof(struct vfio_user_header_wire, flags));
    out->error_no = get_le32(p + offsetof(struct vfio_user_header_wire, error_no));
    if (out->msg_size < VFIO_USER_HEADER_SIZE)
        return -EBADMSG;
    uint32_t type = out->flags & VFIO_USER_F_TYPE_MASK;
    if (type != VFIO_USER_F_TYPE_COMMAND && type != VFIO_USER_F_TYPE_REPLY)
        return -EBADMSG;
    return 0;
}

void vfio_user_header_encode(const vfio_user_header *h, void *buf)
{
    uint8_t *p = buf;
    put_le16(p + offsetof(struct vfio_user_header_wire, msg_id), h->msg_id);
    put_le16(p + offsetof(struct vfio_user_header_wire, command), h->command);
    put_le32(p + offsetof(struct vfio_user_header_wire, msg_size), h->msg_size);
    put_le32(p + offsetof(struct vfio_user_header_wire, flags), h->flags);
    put_le32(p + offsetof(struct vfio_user_header_wire, error_no), h->error_no);
}

/* ------------------------------------------------------------------ */
/* Sizes                                                               */
/* ------------------------------------------------------------------ */

/* Overflow-checked accumulation of a body size. */
static bool add_size(uint64_t *acc, uint64_t n)
{
    return !__builtin_add_overflow(*acc, n, acc);
}

static bool unmap_entry_valid(const vfio_user_dma_entry *e)
{
    uint32_t known = VFIO_USER_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP | VFIO_USER_DMA_UNMAP_FLAG_ALL;
    if (e->flags & ~known)
        return false;
    if ((e->flags & VFIO_USER_DMA_UNMAP_FLAG_ALL) &&
        ((e->flags & VFIO_USER_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP) || e->iova || e->size))
        return false;
    if ((e->flags & VFIO_USER_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP) && e->bitmap_pgsize == 0)
        return false;
    return true;
}

static bool is_reply(const vfio_user_msg *m)
{
    return vfio_user_msg_is_reply(&m->hdr);
}

static int feature_body_size(const vfio_user_msg *m, uint64_t *body)
{
    uint32_t feature = m->feature.flags & VFIO_USER_DEVICE_FEATURE_MASK;
    *body = SZ_FEATURE;
    if (!m->feature.has_data)
        return 0;
    switch (feature) {
    case VFIO_USER_DEVICE_FEATURE_DMA_LOGGING_START:
        if (m->feature.num_ranges && !m->feature.ranges)
            return -EINVAL;
        if (m->feature.num_ranges > UINT32_MAX)
            return -EINVAL;
        return add_size(body, SZ_LOG_CONTROL) &&
                       add_size(body, (uint64_t)m->feature.num_ranges * SZ_LOG_RANGE)
                   ? 0
                   : -EMSGSIZE;
    case VFIO_USER_DEVICE_FEATURE_DMA_LOGGING_STOP:
        return 0;
    case VFIO_USER_DEVICE_FEATURE_DMA_LOGGING_REPORT:
        *body += SZ_LOG_REPORT;
        if (is_reply(m)) {
            if (m->feature.bitmap_len && !m->feature.bitmap)
                return -EINVAL;
            return add_size(body, m->feature.bitmap_len) ? 0 : -EMSGSIZE;
        }
        return 0;
    default:
        return -ENOTSUP;
    }
}

static int body_size(vfio_user_dialect d, const vfio_user_msg *m, uint64_t *out)
{
    uint64_t body = 0;
    bool reply = is_reply(m);

    if (reply && (m->hdr.flags & VFIO_USER_F_ERROR)) {
        *out = 0;
        return 0;
    }
    switch (m->op) {
    case VFIO_USER_OP_VERSION:
        body = sizeof(struct vfio_user_version_wire);
        if (m->version.json) {
            size_t jl = m->version.json_len ? m->version.json_len : strlen(m->version.json) + 1;
            if (m->version.json[jl - 1] != '\0')
                return -EINVAL;
            body += jl;
        }
        break;
    case VFIO_USER_OP_DMA_MAP:
        if (reply)
            break;
        if (m->dma.count == 0 || !m->dma.entries)
            return -EINVAL;
        if (d == VFIO_USER_DIALECT_2021) {
            if (m->dma.count > UINT32_MAX / SZ_2021_ENTRY)
                return -EMSGSIZE;
            body = m->dma.count * SZ_2021_ENTRY;
        } else {
            if (m->dma.count != 1)
                return -ENOTSUP;
            body = SZ_DMA_MAP;
        }
        for (size_t i = 0; i < m->dma.count; i++) {
            if (m->dma.entries[i].prot & ~(VFIO_USER_PROT_READ | VFIO_USER_PROT_WRITE))
                return -EINVAL;
        }
        break;
    case VFIO_USER_OP_DMA_UNMAP:
        if (m->dma.count == 0 && !(reply && d == VFIO_USER_DIALECT_2021))
            return -EINVAL;
        if (m->dma.count && !m->dma.entries)
            return -EINVAL;
        if (d != VFIO_USER_DIALECT_2021 && m->dma.count != 1)
            return -ENOTSUP;
        for (size_t i = 0; i < m->dma.count; i++) {
            const vfio_user_dma_entry *e = &m->dma.entries[i];
            bool bm = e->flags & VFIO_USER_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP;
            if (!unmap_entry_valid(e))
                return -EINVAL;
            if ((e->flags & VFIO_USER_DMA_UNMAP_FLAG_ALL) && m->dma.count != 1)
                return -EINVAL;
            if (d == VFIO_USER_DIALECT_2021) {
                if (!reply && !add_size(&body, SZ_2021_ENTRY))
                    return -EMSGSIZE;
                if (bm && !add_size(&body, SZ_2021_BITMAP))
                    return -EMSGSIZE;
                if (bm && reply && !add_size(&body, e->bitmap_size))
                    return -EMSGSIZE;
            } else {
                body = SZ_DMA_UNMAP;
                if (bm) {
                    body += SZ_BITMAP;
                    if (reply && !add_size(&body, e->bitmap_size))
                        return -EMSGSIZE;
                }
            }
        }
        break;
    case VFIO_USER_OP_DEVICE_GET_INFO:
        body = SZ_DEVICE_INFO;
        break;
    case VFIO_USER_OP_DEVICE_GET_REGION_INFO:
        body = SZ_REGION_INFO;
        if (reply) {
            if (m->region_info.caps_len && !m->region_info.caps)
                return -EINVAL;
            if (!add_size(&body, m->region_info.caps_len))
                return -EMSGSIZE;
        }
        break;
    case VFIO_USER_OP_REGION_READ:
    case VFIO_USER_OP_REGION_WRITE:
        body = SZ_REGION_ACCESS;
        if (m->region_io.data_len && !m->region_io.data)
            return -EINVAL;
        if (!add_size(&body, m->region_io.data_len))
            return -EMSGSIZE;
        break;
    case VFIO_USER_OP_DMA_READ:
    case VFIO_USER_OP_DMA_WRITE:
        body = SZ_DMA_ACCESS;
        if (m->dma_io.data_len && !m->dma_io.data)
            return -EINVAL;
        if (!add_size(&body, m->dma_io.data_len))
            return -EMSGSIZE;
        break;
    case VFIO_USER_OP_VM_INTERRUPT:
        body = reply ? 0 : sizeof(struct vfio_user_vm_interrupt_wire);
        break;
    case VFIO_USER_OP_DEVICE_RESET:
        break;
    case VFIO_USER_OP_DIRTY_PAGES:
        if (!m->dirty.has_range) {
            body = reply ? 0 : SZ_DIRTY;
            break;
        }
        if (m->dirty.pgsize == 0)
            return -EINVAL;
        if (d == VFIO_USER_DIALECT_2021)
            body = reply ? SZ_2021_BITMAP : SZ_DIRTY + SZ_2021_RANGE;
        else
            body = SZ_DIRTY + SZ_RANGE;
        if (reply) {
            if (m->dirty.bitmap_size && !m->dirty.bitmap)
                return -EINVAL;
            if (!add_size(&body, m->dirty.bitmap_size))
                return -EMSGSIZE;
        }
        break;
    case VFIO_USER_OP_DEVICE_FEATURE: {
        int rc = feature_body_size(m, &body);
        if (rc < 0)
            return rc;
        break;
    }
    default:
        return -ENOTSUP;
    }
    *out = body;
    return 0;
}

int vfio_user_msg_size(vfio_user_dialect d, const vfio_user_msg *msg, size_t *size)
{
    uint64_t body;
    int rc = vfio_user_op_command(d, msg->op);
    if (rc < 0)
        return rc;
    rc = body_size(d, msg, &body);
    if (rc < 0)
        return rc;
    if (body > UINT32_MAX - VFIO_USER_HEADER_SIZE)
        return -EMSGSIZE;
    *size = (size_t)body + VFIO_USER_HEADER_SIZE;
    return 0;
}

size_t vfio_user_msg_fds(const vfio_user_msg *msg, int *fds, size_t max)
{
    size_t n = 0;
    if (msg->op != VFIO_USER_OP_DMA_MAP || is_reply(msg) || !msg->dma.entries)
        return 0;
    for (size_t i = 0; i < msg->dma.count; i++) {
        if (msg->dma.entries[i].fd < 0)
            continue;
        if (n < max && fds)
            fds[n] = msg->dma.entries[i].fd;
        n++;
    }
    return n;
}

/* ------------------------------------------------------------------ */
/* Encode                                                              */
/* ------------------------------------------------------------------ */

static uint8_t *put_bytes(uint8_t *p, const void *src, uint64_t n)
{
    if (n == 0)
        return p;
    if (src)
        memcpy(p, src, n);
    else
        memset(p, 0, n);
    return p + n;
}

static uint8_t *encode_dma(vfio_user_dialect d, const vfio_user_msg *m, uint8_t *p)
{
    bool reply = is_reply(m);
    for (size_t i = 0; i < m->dma.count; i++) {
        const vfio_user_dma_entry *e = &m->dma.entries[i];
        bool bm = m->op == VFIO_USER_OP_DMA_UNMAP &&
                  (e->flags & VFIO_USER_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP);
        if (d == VFIO_USER_DIALECT_2021) {
            if (!reply) {
                uint32_t flags = e->flags;
                if (m->op == VFIO_USER_OP_DMA_MAP)
                    flags = e->fd >= 0 ? VFIO_USER_2021_DMA_MAP_FLAG_MAPPABLE : 0;
                put_le64(p + 0, e->iova);
                put_le64(p + 8, e->size);
                put_le64(p + 16, m->op == VFIO_USER_OP_DMA_MAP ? e->offset : 0);
                put_le32(p + 24, m->op == VFIO_USER_OP_DMA_MAP ? e->prot : 0);
                put_le32(p + 28, flags);
                p += SZ_2021_ENTRY;
            }
            if (bm) {
                put_le64(p + 0, e->bitmap_pgsize);
                put_le64(p + 8, e->bitmap_size);
                put_le64(p + 16, 0);
                p += SZ_2021_BITMAP;
                if (reply)
                    p = put_bytes(p, e->bitmap, e->bitmap_size);
            }
            continue;
        }
        if (m->op == VFIO_USER_OP_DMA_MAP) {
            put_le32(p + 0, SZ_DMA_MAP);
            put_le32(p + 4, e->prot);
            put_le64(p + 8, e->fd >= 0 ? e->offset : 0);
            put_le64(p + 16, e->iova);
            put_le64(p + 24, e->size);
            p += SZ_DMA_MAP;
            continue;
        }
        uint64_t argsz = m->dma.argsz;
        if (argsz == 0)
            argsz = SZ_DMA_UNMAP + (bm ? SZ_BITMAP + e->bitmap_size : 0);
        put_le32(p + 0, (uint32_t)(argsz > UINT32_MAX ? UINT32_MAX : argsz));
        put_le32(p + 4, e->flags);
        put_le64(p + 8, e->iova);
        put_le64(p + 16, e->size);
        p += SZ_DMA_UNMAP;
        if (bm) {
            put_le64(p + 0, e->bitmap_pgsize);
            put_le64(p + 8, e->bitmap_size);
            p += SZ_BITMAP;
            if (reply)
                p = put_bytes(p, e->bitmap, e->bitmap_size);
        }
    }
    return p;
}

static uint8_t *encode_feature(const vfio_user_msg *m, uint8_t *p, uint64_t body)
{
    uint32_t argsz = m->feature.argsz ? m->feature.argsz : (uint32_t)body;
    put_le32(p + 0, argsz);
    put_le32(p + 4, m->feature.flags);
    p += SZ_FEATURE;
    if (!m->feature.has_data)
        return p;
    switch (m->feature.flags & VFIO_USER_DEVICE_FEATURE_MASK) {
    case VFIO_USER_DEVICE_FEATURE_DMA_LOGGING_START:
        put_le64(p + 0, m->feature.page_size);
        put_le32(p + 8, (uint32_t)m->feature.num_ranges);
        put_le32(p + 12, 0);
        p += SZ_LOG_CONTROL;
        for (size_t i = 0; i < m->feature.num_ranges; i++) {
            put_le64(p + 0, m->feature.ranges[i].iova);
            put_le64(p + 8, m->feature.ranges[i].size);
            p += SZ_LOG_RANGE;
        }
        break;
    case VFIO_USER_DEVICE_FEATURE_DMA_LOGGING_REPORT:
        put_le64(p + 0, m->feature.iova);
        put_le64(p + 8, m->feature.length);
        put_le64(p + 16, m->feature.page_size);
        p += SZ_LOG_REPORT;
        if (is_reply(m))
            p = put_bytes(p, m->feature.bitmap, m->feature.bitmap_len);
        break;
    default:
        break;
    }
    return p;
}

int vfio_user_msg_encode(vfio_user_dialect d, const vfio_user_msg *m, void *buf, size_t buflen,
                         size_t *len)
{
    size_t size;
    int rc = vfio_user_msg_size(d, m, &size);
    if (rc < 0)
        return rc;
    if (size > buflen)
        return -ENOSPC;

    uint8_t *start = buf, *p = start + VFIO_USER_HEADER_SIZE;
    vfio_user_header h = m->hdr;
    h.command = (uint16_t)vfio_user_op_command(d, m->op);
    h.msg_size = (uint32_t)size;
    vfio_user_header_encode(&h, start);
    uint64_t body = size - VFIO_USER_HEADER_SIZE;

    if (body == 0)
        goto done;
    switch (m->op) {
    case VFIO_USER_OP_VERSION:
        put_le16(p, m->version.major);
        put_le16(p + 2, m->version.minor);
        p = put_bytes(p + 4, m->version.json, body - 4);
        break;
    case VFIO_USER_OP_DMA_MAP:
    case VFIO_USER_OP_DMA_UNMAP:
        p = encode_dma(d, m, p);
        break;
    case VFIO_USER_OP_DEVICE_GET_INFO:
        put_le32(p + 0, m->device_info.argsz ? m->device_info.argsz : SZ_DEVICE_INFO);
        put_le32(p + 4, m->device_info.flags);
        put_le32(p + 8, m->device_info.num_regions);
        put_le32(p + 12, m->device_info.num_irqs);
        p += SZ_DEVICE_INFO;
        break;
    case VFIO_USER_OP_DEVICE_GET_REGION_INFO:
        put_le32(p + 0, m->region_info.argsz ? m->region_info.argsz : (uint32_t)body);
        put_le32(p + 4, m->region_info.flags);
        put_le32(p + 8, m->region_info.index);
        put_le32(p + 12, m->region_info.cap_offset);
        put_le64(p + 16, m->region_info.size);
        put_le64(p + 24, m->region_info.offset);
        p = put_bytes(p + SZ_REGION_INFO, m->region_info.caps, body - SZ_REGION_INFO);
        break;
    case VFIO_USER_OP_REGION_READ:
    case VFIO_USER_OP_REGION_WRITE:
        put_le64(p + 0, m->region_io.offset);
        put_le32(p + 8, m->region_io.region);
        put_le32(p + 12, m->region_io.count);
        p = put_bytes(p + SZ_REGION_ACCESS, m->region_io.data, m->region_io.data_len);
        break;
    case VFIO_USER_OP_DMA_READ:
    case VFIO_USER_OP_DMA_WRITE:
        put_le64(p + 0, m->dma_io.addr);
        put_le64(p + 8, m->dma_io.count);
        p = put_bytes(p + SZ_DMA_ACCESS, m->dma_io.data, m->dma_io.data_len);
        break;
    case VFIO_USER_OP_VM_INTERRUPT:
        put_le32(p, m->interrupt.sub_index);
        p += 4;
        break;
    case VFIO_USER_OP_DIRTY_PAGES:
        if (d == VFIO_USER_DIALECT_2021 && is_reply(m)) {
            /* 2021 answers GET_BITMAP "as DMA_UNMAP": bitmap header + bitmap. */
            put_le64(p + 0, m->dirty.pgsize);
            put_le64(p + 8, m->dirty.bitmap_size);
            put_le64(p + 16, 0);
            p = put_bytes(p + SZ_2021_BITMAP, m->dirty.bitmap, m->dirty.bitmap_size);
            break;
        }
        {
            uint64_t argsz = m->dirty.argsz;
            if (argsz == 0) {
                argsz = body;
                if (m->dirty.has_range && !is_reply(m))
                    argsz = SZ_DIRTY + SZ_RANGE + m->dirty.bitmap_size;
            }
            put_le32(p + 0, (uint32_t)(argsz > UINT32_MAX ? UINT32_MAX : argsz));
            put_le32(p + 4, m->dirty.flags);
            p += SZ_DIRTY;
        }
        if (m->dirty.has_range) {
            put_le64(p + 0, m->dirty.iova);
            put_le64(p + 8, m->dirty.size);
            put_le64(p + 16, m->dirty.pgsize);
            put_le64(p + 24, m->dirty.bitmap_size);
            p += 32;
            if (d == VFIO_USER_DIALECT_2021) {
                put_le64(p, 0); /* vfio_user_bitmap.data, unused */
                p += 8;
            }
            if (is_reply(m))
                p = put_bytes(p, m->dirty.bitmap, m->dirty.bitmap_size);
        }
        break;
    case VFIO_USER_OP_DEVICE_FEATURE: {
        uint64_t argsz_body = body;
        if (!is_reply(m) && (m->feature.flags & VFIO_USER_DEVICE_FEATURE_GET) &&
            (m->feature.flags & VFIO_USER_DEVICE_FEATURE_MASK) ==
                VFIO_USER_DEVICE_FEATURE_DMA_LOGGING_REPORT)
            argsz_body = body + m->feature.bitmap_len;
        p = encode_feature(m, p, argsz_body);
        break;
    }
    default:
        break;
    }
done:
    if ((size_t)(p - start) != size)
        return -EINVAL;
    *len = size;
    return 0;
}

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

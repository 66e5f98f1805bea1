/* SPDX-License-Identifier: MIT */
/*
 * codec.c - command numbers per dialect, message sizes and the encoder.
 * Pure functions over byte buffers: no I/O, no fd handling beyond
 * bookkeeping. The decoder is in decode.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "private.h"

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

/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the client's reply path: the first byte picks the
 * dialect and the request the bytes answer; the rest is decoded as a
 * reply and checked against that request. Whatever decodes must be
 * self-consistent: every pointer and length stays inside the input, and
 * a reply that passes the check has exactly the shape the request asked
 * for.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "private.h"

static void require(bool ok)
{
    if (!ok)
        abort();
}

static bool inside(const uint8_t *base, size_t len, const uint8_t *p, uint64_t n)
{
    if (!p)
        return n == 0;
    return p >= base && (uint64_t)(p - base) <= len && n <= len - (size_t)(p - base);
}

/* The requests a reply may answer, encoded once per dialect. */
static size_t make_request(vfio_user_dialect d, unsigned which, uint16_t id, uint8_t *buf,
                           size_t cap)
{
    vfio_user_dma_entry e[3] = {
        {.iova = 0x1000, .size = 0x40000, .flags = 1, .bitmap_pgsize = 4096, .bitmap_size = 8},
        {.iova = 0x100000, .size = 0x1000},
        {.iova = 0x200000, .size = 0x200000, .flags = 1, .bitmap_pgsize = 4096, .bitmap_size = 64},
    };
    vfio_user_msg m;
    size_t len = 0;
    memset(&m, 0, sizeof(m));
    m.hdr.msg_id = id;
    switch (which % 6) {
    case 0:
        m.op = VFIO_USER_OP_DMA_UNMAP;
        m.dma.entries = e;
        m.dma.count = d == VFIO_USER_DIALECT_2021 ? 3 : 1;
        break;
    case 1:
        m.op = VFIO_USER_OP_DMA_MAP;
        e[0].fd = -1;
        e[0].flags = 0;
        m.dma.entries = e;
        m.dma.count = 1;
        break;
    case 2:
        m.op = VFIO_USER_OP_REGION_READ;
        m.region_io.count = 8;
        break;
    case 3:
        if (d == VFIO_USER_DIALECT_FINAL) {
            m.op = VFIO_USER_OP_DEVICE_FEATURE;
            m.feature.flags =
                VFIO_USER_DEVICE_FEATURE_GET | VFIO_USER_DEVICE_FEATURE_DMA_LOGGING_REPORT;
            m.feature.has_data = true;
            m.feature.length = 0x200000;
            m.feature.page_size = 4096;
            m.feature.bitmap_len = 64;
        } else {
            m.op = VFIO_USER_OP_DIRTY_PAGES;
            m.dirty.flags = VFIO_USER_DIRTY_PAGES_FLAG_GET_BITMAP;
            m.dirty.has_range = true;
            m.dirty.size = 0x200000;
            m.dirty.pgsize = 4096;
            m.dirty.bitmap_size = 64;
        }
        break;
    case 4:
        m.op = VFIO_USER_OP_DEVICE_GET_REGION_INFO;
        break;
    default:
        m.op = VFIO_USER_OP_VERSION;
        break;
    }
    if (vfio_user_msg_encode(d, &m, buf, cap, &len) < 0)
        abort();
    return len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static vfio_user_dma_entry entries[4096];
    uint8_t req[512];
    if (size < 1)
        return 0;
    vfio_user_dialect d = (vfio_user_dialect)(data[0] % 3);
    unsigned which = data[0] / 3;
    data++;
    size--;

    /* A private copy, so any over-read is caught by the sanitizers. */
    uint8_t *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);
    int fd = 1000;
    vfio_user_msg m;
    size_t max = vfio_user_msg_max_entries(size);
    if (max > 4096)
        max = 4096;
    int rc = vfio_user_msg_decode(d, buf, size, &fd, which & 8 ? 1 : 0, &m, entries, max);
    if (rc == 0) {
        require(m.hdr.msg_size == size);
        if (m.op == VFIO_USER_OP_DMA_UNMAP || m.op == VFIO_USER_OP_DMA_MAP) {
            for (size_t i = 0; i < m.dma.count; i++)
                require(inside(buf, size, m.dma.entries[i].bitmap,
                               m.dma.entries[i].bitmap ? m.dma.entries[i].bitmap_size : 0));
        }
        if (m.op == VFIO_USER_OP_REGION_READ || m.op == VFIO_USER_OP_REGION_WRITE)
            require(inside(buf, size, m.region_io.data, m.region_io.data_len));
        if (m.op == VFIO_USER_OP_DIRTY_PAGES && m.dirty.bitmap)
            require(inside(buf, size, m.dirty.bitmap, m.dirty.bitmap_size));
        if (m.op == VFIO_USER_OP_DEVICE_FEATURE)
            require(inside(buf, size, m.feature.bitmap, m.feature.bitmap_len));
        if (m.op == VFIO_USER_OP_VERSION && m.version.json)
            require(m.version.json[m.version.json_len - 1] == '\0');

        size_t req_len = make_request(d, which, m.hdr.msg_id, req, sizeof(req));
        vfio_user_msg rq;
        vfio_user_dma_entry rq_entries[8];
        require(vfio_user_msg_decode_nofds(d, req, req_len, &rq, rq_entries, 8) == 0);
        if (vfio_user_reply_check(d, req, req_len, &m) == 0 && !(m.hdr.flags & VFIO_USER_F_ERROR)) {
            require(m.op == rq.op);
            if (rq.op == VFIO_USER_OP_DMA_MAP)
                require(size == VFIO_USER_HEADER_SIZE);
            if (rq.op == VFIO_USER_OP_REGION_READ)
                require(m.region_io.data_len == rq.region_io.count);
            if (rq.op == VFIO_USER_OP_DIRTY_PAGES)
                require(m.dirty.bitmap_size == rq.dirty.bitmap_size);
        }
        if (m.op == VFIO_USER_OP_VERSION && m.version.json) {
            vfio_user_caps caps;
            GError *err = NULL;
            if (!vfio_user_caps_from_json(m.version.json, m.version.json_len, &caps, &err))
                g_error_free(err);
        }
    }
    free(buf);
    return 0;
}

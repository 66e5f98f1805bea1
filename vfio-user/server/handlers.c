/* SPDX-License-Identifier: MIT */
/*
 * Request decoding and handling. Every length, count, offset and fd of a
 * request is checked before use; a bad request gets an error reply and
 * changes nothing (a table is checked whole before any entry is acted
 * on, except where an entry's effect depends on the entries before it).
 *
 * Handlers return 0 when they replied, a positive errno for the error
 * reply the dispatcher sends, or a negative errno when the connection is
 * over.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "private.h"

#define DIRTY_HDR sizeof(struct vfio_user_dirty_pages_wire)
#define RANGE_091 sizeof(struct vfio_user_bitmap_range_wire)
#define RANGE_2021 sizeof(struct vfio_user_2021_bitmap_range_wire)
#define BITMAP_091 sizeof(struct vfio_user_bitmap_wire)
#define BITMAP_2021 sizeof(struct vfio_user_2021_bitmap_wire)
#define UNMAP_091 sizeof(struct vfio_user_dma_unmap_wire)
#define ENTRY_2021 sizeof(struct vfio_user_2021_dma_entry_wire)
#define FEATURE_HDR sizeof(struct vfio_user_device_feature_wire)
#define REPORT_LEN sizeof(struct vfio_user_dma_logging_report_wire)
#define CONTROL_LEN sizeof(struct vfio_user_dma_logging_control_wire)
#define LOG_RANGE_LEN sizeof(struct vfio_user_dma_logging_range_wire)
#define ACCESS_LEN sizeof(struct vfio_user_region_access_wire)

/* Deeper JSON than this is refused before it reaches the parser. */
#define MAX_JSON_DEPTH 32
#define MIN_LOG_PGSIZE 4096u
#define MAX_LOG_PGSIZE (1ull << 30)

static vus_map_rules map_rules(const vfio_user_server_conn *c)
{
    vus_map_rules r = {
        .max_regions = c->prof->max_regions ? c->prof->max_regions : c->opts.max_regions,
        .max_region_size = c->prof->max_region_size,
        .overlap_errno = c->prof->map_overlap_errno,
        .identical_ok = c->prof->map_identical_ok,
        .limit_errno = c->prof->map_limit_errno,
    };
    return r;
}

/* The largest reply the client accepts (2021 states it; the others bound it by argsz). */
static uint64_t reply_limit(const vfio_user_server_conn *c)
{
    uint64_t lim = c->prof->max_msg_size;

    if (c->client_max_msg_size && c->client_max_msg_size < lim)
        lim = c->client_max_msg_size;
    return lim;
}

/* True when the next reply to @req will carry an oversized bitmap (fault injection). */
static bool fault_bitmap(const vfio_user_server_conn *c, const vus_msg *req)
{
    const vfio_user_server_faults *f = &c->opts.faults;

    if (!(f->kinds & VFIO_USER_SERVER_FAULT_OVERSIZED_BITMAP))
        return false;
    if (f->command ? req->hdr.command != f->command : req->hdr.command == VFIO_USER_VERSION)
        return false;
    return c->fault_matched >= f->skip && (!f->count || c->fault_done < f->count);
}

/*
 * Bitmap geometry of [iova, iova + size) at @pgsize: @min_bytes the
 * bytes that hold its bits, @word_bytes those rounded to u64 words.
 */
static int bitmap_geometry(uint64_t iova, uint64_t size, uint64_t pgsize, uint64_t *min_bytes,
                           uint64_t *word_bytes)
{
    u64_range r;
    uint64_t nbits;

    if (!vus_is_pow2(pgsize) || u64_range_from_size(iova, size, &r) < 0)
        return -EINVAL;
    /* Rounded up without "+ 63": nbits may be close to 2^64. */
    nbits = (size - 1) / pgsize + 1;
    *min_bytes = nbits / 8 + (nbits % 8 != 0);
    *word_bytes = (nbits / 64 + (nbits % 64 != 0)) * 8;
    return 0;
}

/* Checks a requested bitmap size against the profile's rule. */
static bool bitmap_size_ok(const vfio_user_server_conn *c, uint64_t asked, uint64_t min_bytes,
                           uint64_t word_bytes)
{
    if (c->prof->bitmap_strict)
        return asked == word_bytes;
    return asked >= min_bytes;
}

/* Collects the bitmap of a range into @out (@out_bytes, little-endian, zero past the range). */
static int collect_into(vfio_user_server_conn *c, uint64_t iova, uint64_t size, uint64_t pgsize,
                        uint8_t *out, uint64_t out_bytes)
{
    uint64_t nbits = (size - 1) / pgsize + 1;
    uint64_t nwords = nbits / 64 + (nbits % 64 != 0);
    uint64_t *words = g_try_new0(uint64_t, nwords);
    int ret;

    if (!words)
        return -ENOMEM;
    ret = vus_dma_collect(&c->dma, iova, size, pgsize, words, nwords);
    memset(out, 0, out_bytes);
    for (uint64_t j = 0; ret == 0 && j < out_bytes && j / 8 < nwords; j++)
        out[j] = (uint8_t)(words[j / 8] >> (8 * (j % 8)));
    g_free(words);
    return ret;
}

/* ------------------------------------------------------------------ */
/* VERSION                                                             */
/* ------------------------------------------------------------------ */

static bool json_depth_ok(const char *s, size_t len)
{
    int depth = 0;
    bool in_str = false, esc = false;

    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (in_str) {
            if (esc)
                esc = false;
            else if (ch == '\\')
                esc = true;
            else if (ch == '"')
                in_str = false;
        } else if (ch == '"') {
            in_str = true;
        } else if (ch == '{' || ch == '[') {
            if (++depth > MAX_JSON_DEPTH)
                return false;
        } else if (ch == '}' || ch == ']') {
            depth--;
        }
    }
    return true;
}

static int handle_version(vfio_user_server_conn *c, vus_msg *m)
{
    const size_t vlen = sizeof(struct vfio_user_version_wire);
    vfio_user_caps caps;
    g_autoptr(GError) err = NULL;
    g_autofree char *json = NULL;
    g_autofree uint8_t *body = NULL;
    uint16_t major, minor;
    int twin[2] = {-1, -1}, ret;
    bool use_twin = false;
    size_t jlen;

    if (c->version_done || m->len < vlen || m->nfds)
        return EINVAL;
    major = vus_get16(m->body);
    minor = vus_get16(m->body + 2);
    if (major != VFIO_USER_MAJOR) {
        vus_reply_error(c, m, ENOTSUP);
        return -EPROTO;
    }
    vfio_user_caps_init(&caps);
    if (m->len > vlen) {
        const char *j = (const char *)m->body + vlen;
        size_t n = m->len - vlen;
        if (!json_depth_ok(j, n) || !vfio_user_caps_from_json(j, n, &caps, &err)) {
            return EINVAL;
        }
    }

    c->pgsize = c->prof->id == VFIO_USER_SERVER_PROFILE_OWN ? c->opts.pgsize : 4096;
    if (caps.migration && c->prof->caps_migration) {
        if (c->prof->pgsize_fatal) {
            /* libvfio-user logs at the host page size only, and exits otherwise. */
            if (caps.pgsize != 4096) {
                vus_reply_error(c, m, EINVAL);
                return -EPROTO;
            }
        } else {
            /*
             * The server logs in software at any power of two from 4 KiB
             * to 1 GiB, so the client's page size is the smaller one.
             */
            if (!vus_is_pow2(caps.pgsize) || caps.pgsize < MIN_LOG_PGSIZE ||
                caps.pgsize > MAX_LOG_PGSIZE)
                return EINVAL;
            c->pgsize = caps.pgsize;
        }
    }
    c->client_max_fds = caps.max_msg_fds;
    c->client_max_xfer = caps.max_data_xfer_size;
    c->client_max_msg_size = caps.max_msg_size;
    if (c->prof->dialect == VFIO_USER_DIALECT_2021 && !c->client_max_msg_size)
        c->client_max_msg_size = VFIO_USER_DEFAULT_MAX_MSG_SIZE;
    if (c->client_max_msg_size && c->client_max_msg_size < 64)
        return EINVAL;

    if (c->prof->twin_socket && caps.twin_socket && c->client_max_fds >= 1) {
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, twin) < 0)
            return errno;
        use_twin = true;
    }
    json = vus_caps_json(c->prof, map_rules(c).max_regions, c->pgsize, use_twin);
    jlen = strlen(json) + 1;
    body = g_malloc(vlen + jlen);
    vus_put16(body, VFIO_USER_MAJOR);
    vus_put16(body + 2, minor < VFIO_USER_MINOR ? minor : VFIO_USER_MINOR);
    memcpy(body + vlen, json, jlen);
    ret = vus_reply(c, m, body, vlen + jlen, use_twin ? twin[1] : -1);
    if (use_twin) {
        close(twin[1]);
        if (ret == 0)
            c->twin_fd = twin[0];
        else
            close(twin[0]);
    }
    c->version_done = ret == 0;
    return ret < 0 ? ret : 0;
}

/* ------------------------------------------------------------------ */
/* DMA_MAP / DMA_UNMAP                                                 */
/* ------------------------------------------------------------------ */

static int handle_dma_map_2021(vfio_user_server_conn *c, vus_msg *m)
{
    vus_map_rules rules = map_rules(c);
    size_t n = m->len / ENTRY_2021, mappable = 0, done, fdi = 0;
    int ret = 0;

    if (m->len == 0 || m->len % ENTRY_2021 || m->fds_truncated)
        return EINVAL;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *e = m->body + i * ENTRY_2021;
        uint32_t flags = vus_get32(e + offsetof(struct vfio_user_2021_dma_entry_wire, flags));

        if (flags & ~VFIO_USER_2021_DMA_MAP_FLAG_MAPPABLE)
            return EINVAL;
        mappable += flags & VFIO_USER_2021_DMA_MAP_FLAG_MAPPABLE;
    }
    if (mappable != m->nfds)
        return EINVAL;
    for (done = 0; done < n; done++) {
        const uint8_t *e = m->body + done * ENTRY_2021;
        uint32_t flags = vus_get32(e + offsetof(struct vfio_user_2021_dma_entry_wire, flags));
        int fd = (flags & VFIO_USER_2021_DMA_MAP_FLAG_MAPPABLE) ? m->fds[fdi++] : -1;

        ret = vus_dma_map(&c->dma, vus_get64(e), vus_get64(e + 8), fd,
                          vus_get64(e + offsetof(struct vfio_user_2021_dma_entry_wire, offset)),
                          vus_get32(e + offsetof(struct vfio_user_2021_dma_entry_wire, prot)),
                          &rules);
        if (ret < 0)
            break;
    }
    if (ret < 0) {
        /* The spec lets a server make a table atomic: undo the entries already added. */
        for (size_t i = 0; i < done; i++) {
            const uint8_t *e = m->body + i * ENTRY_2021;
            vus_dma_unmap_exact(&c->dma, vus_get64(e), vus_get64(e + 8));
        }
        return -ret;
    }
    ret = vus_reply(c, m, NULL, 0, -1);
    return ret < 0 ? ret : 0;
}

static int handle_dma_map(vfio_user_server_conn *c, vus_msg *m)
{
    vus_map_rules rules = map_rules(c);
    const uint8_t *b = m->body;
    uint32_t argsz, flags;
    int ret;

    if (c->prof->dialect == VFIO_USER_DIALECT_2021)
        return handle_dma_map_2021(c, m);
    if (m->len < sizeof(struct vfio_user_dma_map_wire) || m->nfds > 1 || m->fds_truncated)
        return EINVAL;
    if (!c->prof->unmap_lenient && m->len != sizeof(struct vfio_user_dma_map_wire))
        return EINVAL;
    argsz = vus_get32(b + offsetof(struct vfio_user_dma_map_wire, argsz));
    flags = vus_get32(b + offsetof(struct vfio_user_dma_map_wire, flags));
    if (argsz < sizeof(struct vfio_user_dma_map_wire) ||
        (flags & ~(VFIO_USER_PROT_READ | VFIO_USER_PROT_WRITE)))
        return EINVAL;
    ret = vus_dma_map(
        &c->dma, vus_get64(b + offsetof(struct vfio_user_dma_map_wire, addr)),
        vus_get64(b + offsetof(struct vfio_user_dma_map_wire, size)), m->nfds ? m->fds[0] : -1,
        vus_get64(b + offsetof(struct vfio_user_dma_map_wire, offset)), flags, &rules);
    if (ret < 0)
        return -ret;
    ret = vus_reply(c, m, NULL, 0, -1);
    return ret < 0 ? ret : 0;
}

/* One decoded 2021 unmap entry. */
typedef struct unmap_entry {
    uint64_t iova, size, pgsize, bm_size;
    uint32_t flags;
} unmap_entry;

static int handle_dma_unmap_2021(vfio_user_server_conn *c, vus_msg *m)
{
    size_t pos = 0, n = 0, cap = m->len / ENTRY_2021;
    uint64_t reply_len = 0;
    g_autofree unmap_entry *e = NULL;
    g_autofree uint8_t *out = NULL;
    bool oversize = fault_bitmap(c, m);
    int ret;

    if (m->len == 0 || m->nfds)
        return EINVAL;
    e = g_try_new(unmap_entry, cap);
    if (!e)
        return ENOMEM;
    while (pos < m->len) {
        const uint8_t *p = m->body + pos;
        unmap_entry *x = &e[n];
        uint64_t min_b, word_b;

        if (m->len - pos < ENTRY_2021)
            return EINVAL;
        x->iova = vus_get64(p);
        x->size = vus_get64(p + 8);
        x->flags = vus_get32(p + offsetof(struct vfio_user_2021_dma_entry_wire, flags));
        pos += ENTRY_2021;
        if (x->flags & ~(VFIO_USER_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP | VFIO_USER_DMA_UNMAP_FLAG_ALL))
            return EINVAL;
        if (x->flags & VFIO_USER_DMA_UNMAP_FLAG_ALL) {
            /* Unmap-all stands alone: {0, 0, ALL} as the only entry. */
            if (x->flags != VFIO_USER_DMA_UNMAP_FLAG_ALL || x->iova || x->size ||
                m->len != ENTRY_2021)
                return EINVAL;
        } else if (x->size == 0 || u64_add_overflows(x->iova, x->size - 1, NULL)) {
            return EINVAL;
        }
        if (x->flags & VFIO_USER_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP) {
            if (m->len - pos < BITMAP_2021 || !c->dma.logging)
                return EINVAL;
            x->pgsize = vus_get64(m->body + pos);
            x->bm_size = vus_get64(m->body + pos + 8);
            pos += BITMAP_2021;
            if (bitmap_geometry(x->iova, x->size, x->pgsize, &min_b, &word_b) < 0 ||
                !bitmap_size_ok(c, x->bm_size, min_b, word_b) || x->bm_size > reply_limit(c))
                return EINVAL;
            reply_len += BITMAP_2021 + x->bm_size + (oversize ? 8 : 0);
            if (reply_len > reply_limit(c) - VFIO_USER_HEADER_SIZE)
                return EMSGSIZE;
        }
        n++;
    }
    out = g_try_malloc0(reply_len ? reply_len : 1);
    if (!out)
        return ENOMEM;
    pos = 0;
    for (size_t i = 0; i < n; i++) {
        unmap_entry *x = &e[i];

        if (x->flags & VFIO_USER_DMA_UNMAP_FLAG_ALL) {
            vus_dma_unmap_all(&c->dma);
            continue;
        }
        ret = vus_dma_unmap_check(&c->dma, x->iova, x->iova + x->size - 1);
        if (ret < 0)
            return -ret;
        if (x->flags & VFIO_USER_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP) {
            uint64_t shown = x->bm_size + (oversize ? 8 : 0);
            vus_put64(out + pos, x->pgsize);
            vus_put64(out + pos + 8, shown);
            vus_put64(out + pos + 16, 0);
            pos += BITMAP_2021;
            ret = collect_into(c, x->iova, x->size, x->pgsize, out + pos, x->bm_size);
            if (ret < 0)
                return -ret;
            pos += shown;
        }
        ret = vus_dma_unmap_range(&c->dma, x->iova, x->iova + x->size - 1);
        if (ret < 0)
            return -ret;
    }
    ret = vus_reply(c, m, out, reply_len, -1);
    return ret < 0 ? ret : 0;
}

static int handle_dma_unmap(vfio_user_server_conn *c, vus_msg *m)
{
    const uint8_t *b = m->body;
    uint32_t argsz, flags;
    uint64_t iova, size, pgsize = 0, bm_size = 0, min_b, word_b, need;
    bool want_bitmap, oversize = fault_bitmap(c, m);
    g_autofree uint8_t *out = NULL;
    size_t used = UNMAP_091;
    int ret;

    if (c->prof->dialect == VFIO_USER_DIALECT_2021)
        return handle_dma_unmap_2021(c, m);
    if (m->len < UNMAP_091 || m->nfds)
        return EINVAL;
    argsz = vus_get32(b);
    flags = vus_get32(b + offsetof(struct vfio_user_dma_unmap_wire, flags));
    iova = vus_get64(b + offsetof(struct vfio_user_dma_unmap_wire, addr));
    size = vus_get64(b + offsetof(struct vfio_user_dma_unmap_wire, size));
    want_bitmap = flags & VFIO_USER_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP;
    if (want_bitmap)
        used += BITMAP_091;
    /* The real servers read one entry and ignore whatever follows it. */
    if (m->len < used || (!c->prof->unmap_lenient && m->len != used))
        return EINVAL;
    if (flags & ~(VFIO_USER_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP | VFIO_USER_DMA_UNMAP_FLAG_ALL) ||
        argsz < UNMAP_091)
        return EINVAL;
    /* libvfio-user caps one unmap's reply, and so its bitmap, at 1 MiB. */
    if (c->prof->max_unmap_argsz && argsz > c->prof->max_unmap_argsz)
        return EINVAL;

    if (flags & VFIO_USER_DMA_UNMAP_FLAG_ALL) {
        if (want_bitmap || iova || size)
            return EINVAL;
        vus_dma_unmap_all(&c->dma);
        ret = vus_reply(c, m, b, UNMAP_091, -1);
        return ret < 0 ? ret : 0;
    }
    if (!want_bitmap) {
        ret = vus_dma_unmap_exact(&c->dma, iova, size);
        if (ret < 0)
            return -ret;
        ret = vus_reply(c, m, b, UNMAP_091, -1);
        return ret < 0 ? ret : 0;
    }

    if (!c->prof->unmap_bitmap || !c->dma.logging)
        return EINVAL;
    pgsize = vus_get64(b + UNMAP_091);
    bm_size = vus_get64(b + UNMAP_091 + 8);
    if (bitmap_geometry(iova, size, pgsize, &min_b, &word_b) < 0 ||
        !bitmap_size_ok(c, bm_size, min_b, word_b) ||
        (c->prof->bitmap_strict && pgsize != c->dma.log_pgsize))
        return EINVAL;
    need = UNMAP_091 + BITMAP_091 + bm_size;
    if (argsz < need || need > reply_limit(c) - VFIO_USER_HEADER_SIZE)
        return EINVAL;
    {
        u64_range key;
        if (!interval_map_find(c->dma.map, iova, &key) || key.first != iova ||
            key.last - key.first != size - 1)
            return ENOENT;
    }
    out = g_try_malloc0(need + (oversize ? 8 : 0));
    if (!out)
        return ENOMEM;
    memcpy(out, b, UNMAP_091 + BITMAP_091);
    if (oversize)
        vus_put64(out + UNMAP_091 + 8, bm_size + 8);
    ret = collect_into(c, iova, size, pgsize, out + UNMAP_091 + BITMAP_091, bm_size);
    if (ret < 0)
        return -ret;
    vus_dma_unmap_exact(&c->dma, iova, size);
    ret = vus_reply(c, m, out, need + (oversize ? 8 : 0), -1);
    return ret < 0 ? ret : 0;
}

/* ------------------------------------------------------------------ */
/* Dirty pages                                                         */
/* ------------------------------------------------------------------ */

static int dirty_get_bitmap(vfio_user_server_conn *c, vus_msg *m, uint32_t argsz)
{
    bool d2021 = c->prof->dialect == VFIO_USER_DIALECT_2021, oversize = fault_bitmap(c, m);
    size_t range_len = d2021 ? RANGE_2021 : RANGE_091;
    const uint8_t *r = m->body + DIRTY_HDR;
    uint64_t iova, size, pgsize, bm_size, min_b, word_b, need, shown;
    g_autofree uint8_t *out = NULL;
    size_t bm_off;
    int ret;

    if (m->len < DIRTY_HDR + range_len ||
        (!c->prof->unmap_lenient && m->len != DIRTY_HDR + range_len))
        return EINVAL;
    if (!c->dma.logging)
        return EINVAL;
    iova = vus_get64(r);
    size = vus_get64(r + 8);
    pgsize = vus_get64(r + 16);
    bm_size = vus_get64(r + 24);
    if (bitmap_geometry(iova, size, pgsize, &min_b, &word_b) < 0 ||
        !bitmap_size_ok(c, bm_size, min_b, word_b) || bm_size > reply_limit(c))
        return EINVAL;
    if (c->prof->bitmap_strict) {
        u64_range key;
        /* libvfio-user answers for exactly one region at the logging page size. */
        if (pgsize != c->dma.log_pgsize || !interval_map_find(c->dma.map, iova, &key) ||
            key.first != iova || key.last - key.first != size - 1)
            return EINVAL;
    }
    shown = bm_size + (oversize ? 8 : 0);
    if (d2021) {
        /* Answered as DMA_UNMAP answers: the 24-byte bitmap header, then the bitmap. */
        need = BITMAP_2021 + bm_size;
        bm_off = BITMAP_2021;
    } else {
        need = DIRTY_HDR + RANGE_091 + bm_size;
        bm_off = DIRTY_HDR + RANGE_091;
        if (argsz < need) {
            /* Too small: the header alone, saying how much is needed. */
            uint8_t small[DIRTY_HDR];
            vus_put32(small, (uint32_t)need);
            vus_put32(small + 4, VFIO_USER_DIRTY_PAGES_FLAG_GET_BITMAP);
            ret = vus_reply(c, m, small, sizeof(small), -1);
            return ret < 0 ? ret : 0;
        }
    }
    if (need > reply_limit(c) - VFIO_USER_HEADER_SIZE)
        return EINVAL;
    out = g_try_malloc0(need + (oversize ? 8 : 0));
    if (!out)
        return ENOMEM;
    if (d2021) {
        vus_put64(out, pgsize);
        vus_put64(out + 8, shown);
    } else {
        vus_put32(out, (uint32_t)(need + (oversize ? 8 : 0)));
        vus_put32(out + 4, VFIO_USER_DIRTY_PAGES_FLAG_GET_BITMAP);
        memcpy(out + DIRTY_HDR, r, RANGE_091);
        vus_put64(out + DIRTY_HDR + 24, shown);
    }
    ret = collect_into(c, iova, size, pgsize, out + bm_off, bm_size);
    if (ret < 0)
        return -ret;
    ret = vus_reply(c, m, out, need + (oversize ? 8 : 0), -1);
    return ret < 0 ? ret : 0;
}

static int handle_dirty_pages(vfio_user_server_conn *c, vus_msg *m)
{
    uint32_t argsz, flags;
    int ret;

    if (!c->prof->dirty_pages)
        return c->prof->dirty_pages_errno;
    if (m->len < DIRTY_HDR || m->nfds)
        return EINVAL;
    argsz = vus_get32(m->body);
    flags = vus_get32(m->body + 4);
    switch (flags) {
    case VFIO_USER_DIRTY_PAGES_FLAG_START:
        if (m->len != DIRTY_HDR && !c->prof->unmap_lenient)
            return EINVAL;
        if (!c->dma.logging) {
            ret = vus_dma_log_start(&c->dma, c->pgsize);
            if (ret < 0)
                return -ret;
        }
        break;
    case VFIO_USER_DIRTY_PAGES_FLAG_STOP:
        if (m->len != DIRTY_HDR && !c->prof->unmap_lenient)
            return EINVAL;
        vus_dma_log_stop(&c->dma);
        break;
    case VFIO_USER_DIRTY_PAGES_FLAG_GET_BITMAP:
        return dirty_get_bitmap(c, m, argsz);
    default:
        /* The flags are mutually exclusive. */
        return EINVAL;
    }
    ret = vus_reply(c, m, NULL, 0, -1);
    return ret < 0 ? ret : 0;
}

/* ------------------------------------------------------------------ */
/* DEVICE_FEATURE (final)                                              */
/* ------------------------------------------------------------------ */

static int logging_start(vfio_user_server_conn *c, vus_msg *m, uint8_t *echo)
{
    const uint8_t *d = m->body + FEATURE_HDR;
    uint64_t pgsize;
    uint32_t nranges;
    int ret;

    if (m->len < FEATURE_HDR + CONTROL_LEN)
        return EINVAL;
    pgsize = vus_get64(d);
    nranges = vus_get32(d + offsetof(struct vfio_user_dma_logging_control_wire, num_ranges));
    if (nranges > (m->len - FEATURE_HDR - CONTROL_LEN) / LOG_RANGE_LEN ||
        m->len != FEATURE_HDR + CONTROL_LEN + (size_t)nranges * LOG_RANGE_LEN)
        return EINVAL;
    for (uint32_t i = 0; i < nranges; i++) {
        const uint8_t *r = d + CONTROL_LEN + (size_t)i * LOG_RANGE_LEN;
        uint64_t len = vus_get64(r + 8);
        if (len == 0 || u64_add_overflows(vus_get64(r), len - 1, NULL))
            return EINVAL;
    }
    if (!vus_is_pow2(pgsize))
        return EINVAL;
    /* The device may pick its page size and says so in the reply. */
    if (pgsize < MIN_LOG_PGSIZE)
        pgsize = MIN_LOG_PGSIZE;
    if (pgsize > MAX_LOG_PGSIZE)
        pgsize = MAX_LOG_PGSIZE;
    if (c->dma.logging)
        return EBUSY;
    /* Every write is logged: the ranges only say what the client will ask about. */
    ret = vus_dma_log_start(&c->dma, pgsize);
    if (ret < 0)
        return -ret;
    vus_put64(echo + FEATURE_HDR, pgsize);
    return 0;
}

static int logging_report(vfio_user_server_conn *c, vus_msg *m, uint32_t argsz)
{
    const uint8_t *d = m->body + FEATURE_HDR;
    uint64_t iova, len, pgsize, min_b, word_b, need;
    bool oversize = fault_bitmap(c, m);
    g_autofree uint8_t *out = NULL;
    size_t extra = oversize ? 8 : 0;
    int ret;

    if (m->len != FEATURE_HDR + REPORT_LEN || !c->dma.logging)
        return EINVAL;
    iova = vus_get64(d);
    len = vus_get64(d + 8);
    pgsize = vus_get64(d + 16);
    if (bitmap_geometry(iova, len, pgsize, &min_b, &word_b) < 0)
        return EINVAL;
    need = FEATURE_HDR + REPORT_LEN + word_b;
    if (argsz < need || need > reply_limit(c) - VFIO_USER_HEADER_SIZE)
        return EINVAL;
    out = g_try_malloc0(need + extra);
    if (!out)
        return ENOMEM;
    vus_put32(out, (uint32_t)(need + extra));
    memcpy(out + 4, m->body + 4, 4 + REPORT_LEN);
    ret = collect_into(c, iova, len, pgsize, out + FEATURE_HDR + REPORT_LEN, word_b);
    if (ret < 0)
        return -ret;
    ret = vus_reply(c, m, out, need + extra, -1);
    return ret < 0 ? ret : 0;
}

static int handle_device_feature(vfio_user_server_conn *c, vus_msg *m)
{
    const uint32_t ops_mask = VFIO_USER_DEVICE_FEATURE_GET | VFIO_USER_DEVICE_FEATURE_SET |
                              VFIO_USER_DEVICE_FEATURE_PROBE;
    uint32_t argsz, flags, feature, ops, allowed;
    g_autofree uint8_t *echo = NULL;
    int ret;

    if (!c->prof->dma_logging || m->len < FEATURE_HDR || m->nfds)
        return EINVAL;
    argsz = vus_get32(m->body);
    flags = vus_get32(m->body + 4);
    feature = flags & VFIO_USER_DEVICE_FEATURE_MASK;
    ops = flags & ops_mask;
    if (flags & ~(VFIO_USER_DEVICE_FEATURE_MASK | ops_mask))
        return EINVAL;
    switch (feature) {
    case VFIO_USER_DEVICE_FEATURE_DMA_LOGGING_START:
    case VFIO_USER_DEVICE_FEATURE_DMA_LOGGING_STOP:
        allowed = VFIO_USER_DEVICE_FEATURE_SET;
        break;
    case VFIO_USER_DEVICE_FEATURE_DMA_LOGGING_REPORT:
        allowed = VFIO_USER_DEVICE_FEATURE_GET;
        break;
    default:
        return ENOTSUP;
    }
    if (ops & VFIO_USER_DEVICE_FEATURE_PROBE) {
        if ((ops & ~VFIO_USER_DEVICE_FEATURE_PROBE) & ~allowed)
            return ENOTSUP;
        ret = vus_reply(c, m, m->body, m->len, -1);
        return ret < 0 ? ret : 0;
    }
    if (ops != allowed)
        return EINVAL;
    if (feature == VFIO_USER_DEVICE_FEATURE_DMA_LOGGING_REPORT)
        return logging_report(c, m, argsz);

    echo = g_memdup2(m->body, m->len);
    if (feature == VFIO_USER_DEVICE_FEATURE_DMA_LOGGING_START) {
        ret = logging_start(c, m, echo);
        if (ret)
            return ret;
    } else {
        vus_dma_log_stop(&c->dma);
    }
    /* "The reply payload must be the same as the request payload for setting." */
    ret = vus_reply(c, m, echo, m->len, -1);
    return ret < 0 ? ret : 0;
}

/* ------------------------------------------------------------------ */
/* Device info, regions, reset                                         */
/* ------------------------------------------------------------------ */

static int handle_get_info(vfio_user_server_conn *c, vus_msg *m)
{
    uint8_t out[sizeof(struct vfio_user_device_info_wire)];
    int ret;

    if (m->len < 4 || m->nfds || vus_get32(m->body) < sizeof(out))
        return EINVAL;
    vus_put32(out, sizeof(out));
    vus_put32(out + 4, VFIO_USER_DEVICE_FLAGS_RESET | VFIO_USER_DEVICE_FLAGS_PCI);
    vus_put32(out + 8, 1);
    vus_put32(out + 12, 0);
    ret = vus_reply(c, m, out, sizeof(out), -1);
    return ret < 0 ? ret : 0;
}

static int handle_region_info(vfio_user_server_conn *c, vus_msg *m)
{
    uint8_t out[sizeof(struct vfio_user_region_info_wire)] = {0};
    const size_t idx_end = offsetof(struct vfio_user_region_info_wire, index) + 4;
    uint32_t index;
    int ret;

    if (m->len < idx_end || m->nfds || vus_get32(m->body) < sizeof(out))
        return EINVAL;
    index = vus_get32(m->body + offsetof(struct vfio_user_region_info_wire, index));
    if (index != 0)
        return EINVAL;
    vus_put32(out, sizeof(out));
    vus_put32(out + 4, VFIO_USER_REGION_INFO_FLAG_READ | VFIO_USER_REGION_INFO_FLAG_WRITE);
    vus_put32(out + offsetof(struct vfio_user_region_info_wire, index), index);
    vus_put64(out + offsetof(struct vfio_user_region_info_wire, size), VFIO_USER_SAMPLE_BAR_SIZE);
    ret = vus_reply(c, m, out, sizeof(out), -1);
    return ret < 0 ? ret : 0;
}

/* Checks a REGION_READ / REGION_WRITE access; returns 0 or a positive errno. */
static int check_access(const vus_msg *m, uint64_t *offset, uint32_t *count)
{
    uint64_t end;

    if (m->len < ACCESS_LEN || m->nfds)
        return EINVAL;
    *offset = vus_get64(m->body);
    *count = vus_get32(m->body + offsetof(struct vfio_user_region_access_wire, count));
    if (vus_get32(m->body + offsetof(struct vfio_user_region_access_wire, region)) != 0)
        return EINVAL;
    if (*count > VUS_MAX_DATA_XFER || u64_add_overflows(*offset, *count, &end) ||
        end > VFIO_USER_SAMPLE_BAR_SIZE)
        return EINVAL;
    return 0;
}

static int handle_region_read(vfio_user_server_conn *c, vus_msg *m)
{
    g_autofree uint8_t *out = NULL;
    uint64_t offset;
    uint32_t count;
    int ret = check_access(m, &offset, &count);

    if (ret)
        return ret;
    if (m->len != ACCESS_LEN)
        return EINVAL;
    out = g_malloc(ACCESS_LEN + count);
    memcpy(out, m->body, ACCESS_LEN);
    vus_device_read(c, offset, out + ACCESS_LEN, count);
    ret = vus_reply(c, m, out, ACCESS_LEN + count, -1);
    return ret < 0 ? ret : 0;
}

static int handle_region_write(vfio_user_server_conn *c, vus_msg *m)
{
    uint8_t out[ACCESS_LEN];
    uint64_t offset;
    uint32_t count;
    int ret = check_access(m, &offset, &count), dev;

    if (ret)
        return ret;
    if (m->len - ACCESS_LEN != count)
        return EINVAL;
    dev = vus_device_write(c, offset, m->body + ACCESS_LEN, count);
    memcpy(out, m->body, ACCESS_LEN);
    /* 2021: "The count field in the reply message must be zero." */
    if (c->prof->dialect == VFIO_USER_DIALECT_2021)
        vus_put32(out + offsetof(struct vfio_user_region_access_wire, count), 0);
    ret = vus_reply(c, m, out, sizeof(out), -1);
    if (ret < 0)
        return ret;
    return dev < 0 ? -EPROTO : 0;
}

static int handle_reset(vfio_user_server_conn *c, vus_msg *m)
{
    int ret;

    if (m->len || m->nfds)
        return EINVAL;
    vus_device_reset(c);
    ret = vus_reply(c, m, NULL, 0, -1);
    return ret < 0 ? ret : 0;
}

/* ------------------------------------------------------------------ */
/* Dispatch                                                            */
/* ------------------------------------------------------------------ */

int vus_handle(vfio_user_server_conn *c, vus_msg *m)
{
    int op = vfio_user_command_op(c->prof->dialect, m->hdr.command);
    int ret;

    if ((m->hdr.flags & VFIO_USER_F_TYPE_MASK) != VFIO_USER_F_TYPE_COMMAND) {
        /* Nothing is waiting for a reply here: a reply to nothing. */
        return 0;
    }
    if (op == VFIO_USER_OP_VERSION) {
        ret = handle_version(c, m);
    } else if (!c->version_done) {
        ret = EINVAL;
    } else {
        switch (op) {
        case VFIO_USER_OP_DMA_MAP:
            ret = handle_dma_map(c, m);
            break;
        case VFIO_USER_OP_DMA_UNMAP:
            ret = handle_dma_unmap(c, m);
            break;
        case VFIO_USER_OP_DEVICE_GET_INFO:
            ret = handle_get_info(c, m);
            break;
        case VFIO_USER_OP_DEVICE_GET_REGION_INFO:
            ret = handle_region_info(c, m);
            break;
        case VFIO_USER_OP_REGION_READ:
            ret = handle_region_read(c, m);
            break;
        case VFIO_USER_OP_REGION_WRITE:
            ret = handle_region_write(c, m);
            break;
        case VFIO_USER_OP_DEVICE_RESET:
            ret = handle_reset(c, m);
            break;
        case VFIO_USER_OP_DIRTY_PAGES:
            ret = handle_dirty_pages(c, m);
            break;
        case VFIO_USER_OP_DEVICE_FEATURE:
            ret = handle_device_feature(c, m);
            break;
        default:
            ret = EINVAL;
        }
    }
    /* One line per message handled. */
    vus_log(c, "id %u command %u (%s) size %u flags 0x%x fds %u: %s", m->hdr.msg_id, m->hdr.command,
            op > 0 ? vfio_user_op_name((vfio_user_op)op) : "unknown", m->hdr.msg_size, m->hdr.flags,
            m->nfds, ret == 0 ? "ok" : g_strerror(ret > 0 ? ret : -ret));
    if (ret > 0) {
        int r = vus_reply_error(c, m, ret);
        return r < 0 ? r : 0;
    }
    return ret;
}

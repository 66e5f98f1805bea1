/* SPDX-License-Identifier: MIT */
/*
 * fake_server.c - see fake_server.h. Deliberately simple: blocking I/O,
 * one message at a time, the codec for every encode and decode.
 */
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fake_server.h"
#include "private.h"

#define DEFAULT_JSON                                                                               \
    "{\"capabilities\":{\"max_msg_fds\":8,\"max_data_xfer_size\":1048576,"                         \
    "\"migration\":{\"pgsize\":4096},\"unmap_partial\":true}}"

typedef struct raw_msg {
    uint8_t *buf;
    size_t len;
    int fds[16];
    size_t nfds;
} raw_msg;

void fake_server_init(fake_server *f, vfio_user_dialect d)
{
    memset(f, 0, sizeof(*f));
    f->dialect = d;
    f->sock = -1;
    f->dirty_fill = 0xa5;
    f->error_errno = ENOENT;
}

static void raw_free(raw_msg *m)
{
    for (size_t i = 0; i < m->nfds; i++)
        close(m->fds[i]);
    g_free(m->buf);
    g_free(m);
}

static bool read_full(fake_server *f, uint8_t *buf, size_t len, int *fds, size_t *nfds)
{
    size_t off = 0;
    while (off < len) {
        size_t want = len - off;
        if (f->slow_reads && want > 100)
            want = 100;
        char ctrl[CMSG_SPACE(sizeof(int) * 16)];
        struct iovec iov = {.iov_base = buf + off, .iov_len = want};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
        if (fds) {
            mh.msg_control = ctrl;
            mh.msg_controllen = sizeof(ctrl);
        }
        ssize_t n = recvmsg(f->sock, &mh, MSG_CMSG_CLOEXEC);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        if (fds) {
            for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
                if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
                    continue;
                size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                memcpy(fds + *nfds, CMSG_DATA(cm), k * sizeof(int));
                *nfds += k;
            }
            fds = NULL; /* fds come with the first byte only */
        }
        off += (size_t)n;
    }
    return true;
}

static raw_msg *read_msg(fake_server *f)
{
    raw_msg *m = g_new0(raw_msg, 1);
    uint8_t hdr[16];
    vfio_user_header h;
    if (!read_full(f, hdr, 16, m->fds, &m->nfds) || vfio_user_header_decode(hdr, 16, &h) < 0 ||
        h.msg_size > 8 * 1024 * 1024) {
        raw_free(m);
        return NULL;
    }
    m->buf = g_malloc(h.msg_size);
    m->len = h.msg_size;
    memcpy(m->buf, hdr, 16);
    if (!read_full(f, m->buf + 16, h.msg_size - 16, NULL, NULL)) {
        raw_free(m);
        return NULL;
    }
    return m;
}

static bool send_bytes(fake_server *f, const uint8_t *buf, size_t len, int fd)
{
    size_t off = 0;
    while (off < len) {
        size_t want = f->short_writes ? 1 : len - off;
        char ctrl[CMSG_SPACE(sizeof(int))];
        struct iovec iov = {.iov_base = (void *)(buf + off), .iov_len = want};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
        if (off == 0 && fd >= 0) {
            memset(ctrl, 0, sizeof(ctrl));
            mh.msg_control = ctrl;
            mh.msg_controllen = sizeof(ctrl);
            struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
            cm->cmsg_level = SOL_SOCKET;
            cm->cmsg_type = SCM_RIGHTS;
            cm->cmsg_len = CMSG_LEN(sizeof(int));
            memcpy(CMSG_DATA(cm), &fd, sizeof(int));
        }
        ssize_t n = sendmsg(f->sock, &mh, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        off += (size_t)n;
    }
    return true;
}

static GByteArray *encode(fake_server *f, const vfio_user_msg *m)
{
    size_t size, len;
    if (vfio_user_msg_size(f->dialect, m, &size) < 0)
        return NULL;
    GByteArray *b = g_byte_array_sized_new((guint)size);
    g_byte_array_set_size(b, (guint)size);
    if (vfio_user_msg_encode(f->dialect, m, b->data, size, &len) < 0) {
        g_byte_array_free(b, TRUE);
        return NULL;
    }
    return b;
}

static _Thread_local GQueue backlog = G_QUEUE_INIT; /* the server thread's own */

/* Sends a request to the client and waits for its reply; commands that
 * arrive meanwhile are kept for later. */
static raw_msg *server_request(fake_server *f, const vfio_user_msg *m)
{
    GByteArray *b = encode(f, m);
    if (!b)
        return NULL;
    bool ok = send_bytes(f, b->data, b->len, -1);
    g_byte_array_free(b, TRUE);
    if (!ok)
        return NULL;
    for (;;) {
        raw_msg *r = read_msg(f);
        if (!r)
            return NULL;
        vfio_user_header h;
        vfio_user_header_decode(r->buf, r->len, &h);
        if (vfio_user_msg_is_reply(&h) && h.msg_id == m->hdr.msg_id)
            return r;
        g_queue_push_tail(&backlog, r);
    }
}

static void run_dma(fake_server *f, uint32_t cmd)
{
    static uint16_t next_id = 0x8000;
    uint64_t addr = get_le64(f->regs + FAKE_REG_DMA_ADDR);
    uint32_t len = get_le32(f->regs + FAKE_REG_DMA_LEN);
    uint8_t fill = f->regs[FAKE_REG_DMA_FILL];
    vfio_user_msg m;
    uint32_t status = 0;

    if (len == 0 || len > 1024 * 1024) {
        put_le32(f->regs + FAKE_REG_DMA_STATUS, EINVAL);
        return;
    }
    memset(&m, 0, sizeof(m));
    m.hdr.msg_id = next_id++;
    m.op = cmd == 1 ? VFIO_USER_OP_DMA_WRITE : VFIO_USER_OP_DMA_READ;
    m.dma_io.addr = addr;
    m.dma_io.count = len;
    g_autofree uint8_t *data = NULL;
    if (cmd == 1) {
        data = g_malloc(len);
        memset(data, fill, len);
        m.dma_io.data = data;
        m.dma_io.data_len = len;
    }
    raw_msg *r = server_request(f, &m);
    if (!r) {
        status = EPIPE;
    } else {
        vfio_user_msg rep;
        vfio_user_dma_entry none[1];
        if (vfio_user_msg_decode(f->dialect, r->buf, r->len, NULL, 0, &rep, none, 1) < 0)
            status = EBADMSG;
        else if (rep.hdr.flags & VFIO_USER_F_ERROR)
            status = rep.hdr.error_no;
        else if (cmd == 2) {
            uint64_t sum = 0;
            for (size_t i = 0; i < rep.dma_io.data_len; i++)
                sum += rep.dma_io.data[i];
            put_le64(f->regs + FAKE_REG_DMA_SUM, sum);
        }
        raw_free(r);
    }
    put_le32(f->regs + FAKE_REG_DMA_STATUS, status);

    if (f->interrupt_on_dma && f->dialect == VFIO_USER_DIALECT_2021) {
        memset(&m, 0, sizeof(m));
        m.hdr.msg_id = next_id++;
        m.op = VFIO_USER_OP_VM_INTERRUPT;
        m.interrupt.sub_index = 7;
        r = server_request(f, &m);
        if (r)
            raw_free(r);
    }
}

/* The answer to one decoded command, or NULL to send nothing. */
static GByteArray *answer(fake_server *f, vfio_user_msg *rq)
{
    vfio_user_msg r;
    g_autofree uint8_t *fillbuf = NULL;
    vfio_user_dma_entry echo[64];
    bool fault = f->commands == f->fault_at;
    uint64_t scale = fault && f->fault == FAKE_FAULT_OVERSIZED_BITMAP ? 2 : 1;

    memset(&r, 0, sizeof(r));
    r.op = rq->op;
    r.hdr.msg_id = rq->hdr.msg_id;
    r.hdr.flags = VFIO_USER_F_TYPE_REPLY;

    switch (rq->op) {
    case VFIO_USER_OP_VERSION:
        r.version.major = f->version_major;
        r.version.minor = 1;
        r.version.json = f->version_json ? f->version_json : DEFAULT_JSON;
        r.version.json_len = strlen(r.version.json) + 1;
        break;
    case VFIO_USER_OP_DMA_MAP:
        break;
    case VFIO_USER_OP_DMA_UNMAP: {
        size_t k = 0;
        uint64_t biggest = 0;
        for (size_t i = 0; i < rq->dma.count && i < 64; i++) {
            if (rq->dma.entries[i].bitmap_size > biggest)
                biggest = rq->dma.entries[i].bitmap_size;
        }
        fillbuf = g_malloc(biggest * scale + 1);
        memset(fillbuf, f->dirty_fill, biggest * scale + 1);
        for (size_t i = 0; i < rq->dma.count && i < 64; i++) {
            vfio_user_dma_entry e = rq->dma.entries[i];
            bool bm = e.flags & VFIO_USER_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP;
            if (f->dialect == VFIO_USER_DIALECT_2021 && !bm)
                continue;
            e.bitmap_size *= scale;
            e.bitmap = fillbuf;
            echo[k++] = e;
            if (f->dialect != VFIO_USER_DIALECT_2021)
                break; /* as the real servers: a second entry is ignored */
        }
        r.dma.entries = echo;
        r.dma.count = k;
        r.dma.argsz = rq->dma.argsz;
        break;
    }
    case VFIO_USER_OP_DEVICE_GET_INFO:
        r.device_info.flags = VFIO_USER_DEVICE_FLAGS_RESET | VFIO_USER_DEVICE_FLAGS_PCI;
        r.device_info.num_regions = 2;
        break;
    case VFIO_USER_OP_DEVICE_GET_REGION_INFO:
        if (rq->region_info.index > 1)
            goto einval;
        r.region_info.index = rq->region_info.index;
        r.region_info.flags = VFIO_USER_REGION_INFO_FLAG_READ | VFIO_USER_REGION_INFO_FLAG_WRITE;
        r.region_info.size = rq->region_info.index == 0 ? sizeof(f->regs) : FAKE_SCRATCH_SIZE;
        if (f->region_fd && rq->region_info.index == 1)
            r.region_info.flags |= VFIO_USER_REGION_INFO_FLAG_MMAP;
        break;
    case VFIO_USER_OP_REGION_READ:
    case VFIO_USER_OP_REGION_WRITE: {
        uint8_t *base = rq->region_io.region == 0 ? f->regs : f->scratch;
        uint64_t size = rq->region_io.region == 0 ? sizeof(f->regs) : FAKE_SCRATCH_SIZE;
        uint64_t end;
        if (rq->region_io.region > 1 ||
            __builtin_add_overflow(rq->region_io.offset, (uint64_t)rq->region_io.count, &end) ||
            end > size)
            goto einval;
        r.region_io = rq->region_io;
        if (rq->op == VFIO_USER_OP_REGION_READ) {
            r.region_io.data = base + rq->region_io.offset;
            r.region_io.data_len = rq->region_io.count;
            break;
        }
        memcpy(base + rq->region_io.offset, rq->region_io.data, rq->region_io.count);
        r.region_io.data = NULL;
        r.region_io.data_len = 0;
        if (rq->region_io.region == 0 && rq->region_io.offset == FAKE_REG_DMA_CMD &&
            rq->region_io.count == 4)
            run_dma(f, get_le32(f->regs + FAKE_REG_DMA_CMD));
        break;
    }
    case VFIO_USER_OP_DEVICE_RESET:
        memset(f->regs, 0, sizeof(f->regs));
        break;
    case VFIO_USER_OP_DIRTY_PAGES:
        if (rq->dirty.flags == VFIO_USER_DIRTY_PAGES_FLAG_START)
            f->logging = true;
        else if (rq->dirty.flags == VFIO_USER_DIRTY_PAGES_FLAG_STOP)
            f->logging = false;
        else if (rq->dirty.has_range) {
            r.dirty = rq->dirty;
            r.dirty.bitmap_size *= scale;
            fillbuf = g_malloc(r.dirty.bitmap_size + 1);
            memset(fillbuf, f->dirty_fill, r.dirty.bitmap_size + 1);
            r.dirty.bitmap = fillbuf;
        }
        break;
    case VFIO_USER_OP_DEVICE_FEATURE: {
        uint32_t feature = rq->feature.flags & VFIO_USER_DEVICE_FEATURE_MASK;
        r.feature = rq->feature;
        if (feature == VFIO_USER_DEVICE_FEATURE_DMA_LOGGING_START)
            f->logging = true;
        else if (feature == VFIO_USER_DEVICE_FEATURE_DMA_LOGGING_STOP)
            f->logging = false;
        else if (feature == VFIO_USER_DEVICE_FEATURE_DMA_LOGGING_REPORT) {
            uint64_t bytes;
            if (vfio_user_bitmap_bytes(rq->feature.length, rq->feature.page_size, &bytes) < 0)
                goto einval;
            bytes *= scale;
            fillbuf = g_malloc(bytes + 1);
            memset(fillbuf, f->dirty_fill, bytes + 1);
            r.feature.bitmap = fillbuf;
            r.feature.bitmap_len = bytes;
            r.feature.argsz = 0;
        }
        break;
    }
    default:
        goto einval;
    }
    if (fault && f->fault == FAKE_FAULT_ERROR_REPLY) {
        r.hdr.flags |= VFIO_USER_F_ERROR;
        r.hdr.error_no = f->error_errno;
    }
    return encode(f, &r);
einval:
    memset(&r.dma, 0, sizeof(r) - offsetof(vfio_user_msg, dma));
    r.hdr.flags |= VFIO_USER_F_ERROR;
    r.hdr.error_no = EINVAL;
    return encode(f, &r);
}

/* Sends @b, misbehaving as configured. Returns false to end the thread. */
static bool send_reply(fake_server *f, GByteArray *b, bool fault)
{
    int fd = -1;
    bool ok;
    if (!fault || f->fault == FAKE_FAULT_NONE || f->fault == FAKE_FAULT_ERROR_REPLY ||
        f->fault == FAKE_FAULT_OVERSIZED_BITMAP)
        return send_bytes(f, b->data, b->len, -1);
    switch (f->fault) {
    case FAKE_FAULT_DROP_MID_REPLY:
        send_bytes(f, b->data, b->len / 2 > 16 ? b->len / 2 : 8, -1);
        return false;
    case FAKE_FAULT_CLOSE_BEFORE_REPLY:
        return false;
    case FAKE_FAULT_HANG: {
        raw_msg *m;
        while ((m = read_msg(f)))
            raw_free(m);
        return false;
    }
    case FAKE_FAULT_WRONG_SIZE: {
        uint8_t junk[8] = {0};
        g_byte_array_append(b, junk, sizeof(junk));
        put_le32(b->data + 4, b->len);
        return send_bytes(f, b->data, b->len, -1);
    }
    case FAKE_FAULT_WRONG_ID:
        put_le16(b->data, get_le16(b->data) + 1000);
        return send_bytes(f, b->data, b->len, -1);
    case FAKE_FAULT_REPLY_TO_NOTHING: {
        uint16_t id = get_le16(b->data);
        put_le16(b->data, id + 2000);
        ok = send_bytes(f, b->data, b->len, -1);
        put_le16(b->data, id);
        return ok && send_bytes(f, b->data, b->len, -1);
    }
    case FAKE_FAULT_UNEXPECTED_FD:
        fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        ok = send_bytes(f, b->data, b->len, fd);
        close(fd);
        return ok;
    case FAKE_FAULT_HUGE_SIZE: {
        raw_msg *m;
        put_le32(b->data + 4, 0x7fffffff);
        send_bytes(f, b->data, 16, -1);
        while ((m = read_msg(f)))
            raw_free(m);
        return false;
    }
    case FAKE_FAULT_BAD_TYPE:
        put_le32(b->data + 8, (get_le32(b->data + 8) & ~0xfu) | 3);
        return send_bytes(f, b->data, b->len, -1);
    default:
        return send_bytes(f, b->data, b->len, -1);
    }
}

/* Handles one command; false ends the thread. */
static bool handle(fake_server *f, raw_msg *raw, GQueue *held)
{
    vfio_user_msg rq;
    vfio_user_dma_entry entries[64];
    vfio_user_header h;

    if (vfio_user_header_decode(raw->buf, raw->len, &h) < 0)
        return false;
    if (vfio_user_msg_is_reply(&h))
        return true; /* a late reply to a DMA request */
    int rc =
        vfio_user_msg_decode(f->dialect, raw->buf, raw->len, raw->fds, raw->nfds, &rq, entries, 64);
    if (rc == 0 && rq.op != VFIO_USER_OP_VERSION) {
        f->commands++;
        if (raw->nfds > f->max_fds_per_msg)
            f->max_fds_per_msg = (unsigned)raw->nfds;
        f->fds_received += (unsigned)raw->nfds;
        if ((rq.op == VFIO_USER_OP_DMA_MAP || rq.op == VFIO_USER_OP_DMA_UNMAP) &&
            rq.dma.count > f->max_table)
            f->max_table = (unsigned)rq.dma.count;
    }
    if (rc < 0) {
        vfio_user_msg e;
        memset(&e, 0, sizeof(e));
        int op = vfio_user_command_op(f->dialect, h.command);
        e.op = op > 0 ? (vfio_user_op)op : VFIO_USER_OP_DEVICE_RESET;
        e.hdr.msg_id = h.msg_id;
        e.hdr.flags = VFIO_USER_F_TYPE_REPLY | VFIO_USER_F_ERROR;
        e.hdr.error_no = EINVAL;
        GByteArray *b = encode(f, &e);
        bool ok = b && send_bytes(f, b->data, b->len, -1);
        if (b)
            g_byte_array_free(b, TRUE);
        return ok;
    }
    bool fault = rq.op != VFIO_USER_OP_VERSION && f->commands == f->fault_at;
    if (rq.op == VFIO_USER_OP_VERSION && f->version_no_nul) {
        /* Hand-built: the codec refuses to write JSON without its NUL. */
        const char *j = f->version_json ? f->version_json : DEFAULT_JSON;
        size_t jl = strlen(j);
        GByteArray *b = g_byte_array_new();
        g_byte_array_set_size(b, (guint)(20 + jl));
        vfio_user_header vh = {.msg_id = h.msg_id,
                               .command = 1,
                               .msg_size = (uint32_t)(20 + jl),
                               .flags = VFIO_USER_F_TYPE_REPLY};
        vfio_user_header_encode(&vh, b->data);
        put_le16(b->data + 16, 0);
        put_le16(b->data + 18, 1);
        memcpy(b->data + 20, j, jl);
        bool ok = send_bytes(f, b->data, b->len, -1);
        g_byte_array_free(b, TRUE);
        return ok;
    }
    GByteArray *b = answer(f, &rq);
    if (!b)
        return false;
    if ((h.flags & VFIO_USER_F_NO_REPLY) && !f->answer_no_reply) {
        g_byte_array_free(b, TRUE);
        return true;
    }
    if (held && f->hold > 0 && rq.op != VFIO_USER_OP_VERSION) {
        g_queue_push_tail(held, b);
        if (g_queue_get_length(held) < f->hold)
            return true;
        f->hold = 0;
        bool ok = true;
        while (ok && !g_queue_is_empty(held)) {
            GByteArray *x = f->reverse ? g_queue_pop_tail(held) : g_queue_pop_head(held);
            ok = send_bytes(f, x->data, x->len, -1);
            g_byte_array_free(x, TRUE);
        }
        return ok;
    }
    bool ok;
    if (rq.op == VFIO_USER_OP_DEVICE_GET_REGION_INFO && f->region_fd && rq.region_info.index == 1 &&
        !fault) {
        int fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
        ok = send_bytes(f, b->data, b->len, fd);
        close(fd);
    } else {
        ok = send_reply(f, b, fault);
    }
    g_byte_array_free(b, TRUE);
    return ok;
}

static void *run(void *arg)
{
    fake_server *f = arg;
    GQueue held = G_QUEUE_INIT;
    for (;;) {
        raw_msg *m = g_queue_is_empty(&backlog) ? read_msg(f) : g_queue_pop_head(&backlog);
        if (!m)
            break;
        bool ok = handle(f, m, &held);
        raw_free(m);
        if (!ok)
            break;
    }
    g_queue_clear_full(&held, (GDestroyNotify)g_byte_array_unref);
    raw_msg *m;
    while ((m = g_queue_pop_head(&backlog)))
        raw_free(m);
    shutdown(f->sock, SHUT_RDWR);
    close(f->sock);
    f->sock = -1;
    return NULL;
}

int fake_server_start(fake_server *f)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return -1;
    f->sock = sv[1];
    f->scratch = g_malloc0(FAKE_SCRATCH_SIZE);
    if (pthread_create(&f->thread, NULL, run, f) != 0) {
        close(sv[0]);
        close(sv[1]);
        g_free(f->scratch);
        return -1;
    }
    return sv[0];
}

void fake_server_join(fake_server *f)
{
    pthread_join(f->thread, NULL);
    g_free(f->scratch);
    f->scratch = NULL;
}

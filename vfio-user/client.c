/* SPDX-License-Identifier: MIT */
/*
 * client.c - the vfio-user client: a bounded window of pipelined requests
 * whose replies are matched by message id, with requests from the server
 * (DMA_READ, DMA_WRITE, VM_INTERRUPT) served whenever they arrive,
 * including while the client waits for a reply.
 *
 * Single-threaded: every call runs on the caller's thread. The socket is
 * only ever read or written with non-blocking calls and poll(), so a
 * wait can always serve the server, and a timeout can always fire.
 */
#include <errno.h>
#include <gio/gio.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "private.h"
#include "trace_points.h"
#include "transport.h"

#define DEFAULT_WINDOW 64
#define MAX_WINDOW 4096
#define DEFAULT_TIMEOUT_MS 5000
#define DEFAULT_MAX_FDS 8
#define DEFAULT_MAX_RECV (1024 * 1024 + 4096)
#define READ_CHUNK 65536
#define OUT_QUEUE 65536
/* Larger messages skip the queue (after flushing it): no copy of bulk data. */
#define OUT_DIRECT 16384
/* fd groups received but not yet matched to their message. */
#define MAX_FD_GROUPS 8

typedef struct pending {
    uint16_t id;
    bool done;
    vfio_user_completion_fn cb;
    void *opaque;
    uint8_t *req; /* the encoded request, to check the reply against */
    size_t req_len;
    size_t req_cap;
    uint64_t sent_ns; /* for the reply's trace latency; 0 when untraced */
} pending;

/* fds from one recvmsg: they belong to the last message starting in the
 * bytes [start, end) that call returned (Linux ends a read right after
 * the segment carrying fds, and senders attach them to a message's
 * first byte). */
typedef struct fd_group {
    size_t start, end;
    int fds[VFIO_USER_TRANSPORT_MAX_FDS];
    size_t n;
} fd_group;

struct vfio_user_client {
    int sock;
    vfio_user_client_config cfg;
    vfio_user_client_ops ops;
    void *opaque;
    vfio_user_caps server;
    size_t max_send;
    size_t max_recv;

    pending *ring;
    unsigned head, count;
    uint16_t next_id;
    /*
     * Ids sent with NO_REPLY: a server may still answer an error to one,
     * which is then dropped instead of being taken for a reply to nothing.
     */
    uint64_t no_reply_ids[65536 / 64];

    uint8_t *rbuf;
    size_t rcap, rlen;
    fd_group groups[MAX_FD_GROUPS];
    unsigned ngroups;
    /* fds of the message being completed; a callback may take them */
    int *cur_fds;
    size_t cur_nfds;

    vfio_user_dma_entry *entries;
    size_t entries_cap;
    uint8_t *sbuf; /* replies to server requests */
    size_t scap;
    /*
     * Small fd-less messages queue here and go out in one write at the
     * next wait, dispatch or flush, or when the queue fills: one system
     * call per batch instead of one per message.
     */
    uint8_t *obuf;
    size_t olen, ocap;

    /* true while messages inside rbuf are being handled: rbuf must not move */
    bool rbuf_pinned;
    bool connected;
    int last_error;
    vfio_user_client_stats stats;
    uint32_t trace_device; /* the connection's number in trace events */
};

static void close_fds(int *fds, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (fds[i] >= 0)
            close(fds[i]);
        fds[i] = -1;
    }
}

void vfio_user_client_config_init(vfio_user_client_config *cfg, vfio_user_dialect dialect)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->dialect = dialect;
    cfg->window = DEFAULT_WINDOW;
    cfg->timeout_ms = DEFAULT_TIMEOUT_MS;
    vfio_user_caps_init(&cfg->caps);
    cfg->caps.max_msg_fds = DEFAULT_MAX_FDS;
    cfg->caps.max_msg_size = DEFAULT_MAX_RECV;
    cfg->caps.max_data_xfer_size = VFIO_USER_DEFAULT_MAX_DATA_XFER_SIZE;
}

/* ------------------------------------------------------------------ */
/* Connection state                                                    */
/* ------------------------------------------------------------------ */

static pending *slot(vfio_user_client *c, unsigned i)
{
    return &c->ring[(c->head + i) % c->cfg.window];
}

/* Ends the connection: every request in flight completes with @err. */
static int fail_connection(vfio_user_client *c, int err)
{
    if (c->connected) {
        c->connected = false;
        c->last_error = err;
        shutdown(c->sock, SHUT_RDWR);
    }
    while (c->count > 0) {
        pending *p = slot(c, 0);
        if (!p->done && p->cb)
            p->cb(p->opaque, c->last_error, NULL);
        p->done = true;
        c->head = (c->head + 1) % c->cfg.window;
        c->count--;
    }
    for (unsigned g = 0; g < c->ngroups; g++)
        close_fds(c->groups[g].fds, c->groups[g].n);
    c->ngroups = 0;
    c->olen = 0;
    return c->last_error;
}

/* ------------------------------------------------------------------ */
/* Sending                                                             */
/* ------------------------------------------------------------------ */

static int read_available(vfio_user_client *c);

/*
 * Sends one whole message. While the socket is full it keeps reading
 * (without processing) so a server blocked on a request to us can make
 * progress; replies are processed once the message is out.
 */
static int send_all(vfio_user_client *c, const uint8_t *buf, size_t len, const int *fds,
                    size_t nfds)
{
    size_t off = 0;
    int64_t deadline = c->cfg.timeout_ms >= 0 ? vfio_user_now_ms() + c->cfg.timeout_ms : 0;

    while (off < len) {
        ssize_t n = vfio_user_send_some(c->sock, buf + off, len - off, off == 0 ? fds : NULL,
                                        off == 0 ? nfds : 0);
        if (n > 0) {
            off += (size_t)n;
            c->stats.bytes_sent += (uint64_t)n;
            if (c->cfg.timeout_ms >= 0)
                deadline = vfio_user_now_ms() + c->cfg.timeout_ms;
            continue;
        }
        if (n != -EAGAIN)
            return fail_connection(c, n == -EPIPE ? -EPIPE : (int)n);
        int timeout = -1;
        if (c->cfg.timeout_ms >= 0) {
            int64_t left = deadline - vfio_user_now_ms();
            if (left <= 0)
                return fail_connection(c, -ETIMEDOUT);
            timeout = (int)left;
        }
        short ev = POLLOUT;
        if (c->rbuf_pinned ? c->rlen < c->rcap : c->rlen < c->max_recv + READ_CHUNK)
            ev |= POLLIN;
        int rev = vfio_user_poll(c->sock, ev, timeout);
        if (rev < 0)
            return fail_connection(c, rev);
        if (rev & POLLIN) {
            int rc = read_available(c);
            if (rc < 0 && rc != -EAGAIN)
                return rc;
        } else if (rev & (POLLERR | POLLHUP)) {
            return fail_connection(c, -EPIPE);
        }
    }
    return 0;
}

static int flush_out(vfio_user_client *c)
{
    if (c->olen == 0)
        return 0;
    size_t n = c->olen;
    /* Cleared first: a failure ends the connection and drops the queue. */
    c->olen = 0;
    return send_all(c, c->obuf, n, NULL, 0);
}

/* Queues or sends one message, keeping the byte order of the stream. */
static int send_msg(vfio_user_client *c, const uint8_t *buf, size_t len, const int *fds,
                    size_t nfds)
{
    int rc;
    c->stats.messages_sent++;
    c->stats.fds_sent += nfds;
    if (nfds == 0 && len <= OUT_DIRECT) {
        if (c->olen + len > c->ocap) {
            rc = flush_out(c);
            if (rc < 0)
                return rc;
            if (c->ocap < OUT_QUEUE) {
                c->obuf = g_realloc(c->obuf, OUT_QUEUE);
                c->ocap = OUT_QUEUE;
            }
        }
        memcpy(c->obuf + c->olen, buf, len);
        c->olen += len;
        return 0;
    }
    /* Fds attach to a message's first byte: that message travels alone. */
    rc = flush_out(c);
    if (rc < 0)
        return rc;
    return send_all(c, buf, len, fds, nfds);
}

/* ------------------------------------------------------------------ */
/* Receiving                                                           */
/* ------------------------------------------------------------------ */

static int ensure_rbuf(vfio_user_client *c, size_t need)
{
    if (need <= c->rcap)
        return 0;
    size_t cap = c->rcap ? c->rcap : READ_CHUNK;
    while (cap < need)
        cap *= 2;
    if (cap > c->max_recv + READ_CHUNK)
        cap = c->max_recv + READ_CHUNK;
    if (cap < need)
        return -EMSGSIZE;
    c->rbuf = g_realloc(c->rbuf, cap);
    c->rcap = cap;
    return 0;
}

/* One non-blocking read into the receive buffer. */
static int read_available(vfio_user_client *c)
{
    int fds[VFIO_USER_TRANSPORT_MAX_FDS];
    size_t nfds = 0;

    if (!c->rbuf_pinned && c->rcap - c->rlen < READ_CHUNK / 4 &&
        c->rcap < c->max_recv + READ_CHUNK) {
        size_t want = c->rlen + READ_CHUNK;
        if (want > c->max_recv + READ_CHUNK)
            want = c->max_recv + READ_CHUNK;
        if (ensure_rbuf(c, want) < 0)
            return fail_connection(c, -EMSGSIZE);
    }
    if (c->rlen == c->rcap)
        return -EAGAIN;
    ssize_t n = vfio_user_recv_some(c->sock, c->rbuf + c->rlen, c->rcap - c->rlen, fds, &nfds);
    if (n == -EAGAIN)
        return -EAGAIN;
    if (n < 0)
        return fail_connection(c, (int)n);
    if (nfds > 0) {
        if (c->ngroups == MAX_FD_GROUPS) {
            close_fds(fds, nfds);
            return fail_connection(c, -EPROTO);
        }
        fd_group *g = &c->groups[c->ngroups++];
        g->start = c->rlen;
        g->end = c->rlen + (size_t)n;
        memcpy(g->fds, fds, nfds * sizeof(int));
        g->n = nfds;
    }
    c->rlen += (size_t)n;
    c->stats.bytes_received += (uint64_t)n;
    return 0;
}

static int send_server_reply(vfio_user_client *c, const vfio_user_msg *m)
{
    size_t size, len;
    int rc = vfio_user_msg_size(c->cfg.dialect, m, &size);
    if (rc < 0)
        return rc;
    if (size > c->scap) {
        c->sbuf = g_realloc(c->sbuf, size);
        c->scap = size;
    }
    rc = vfio_user_msg_encode(c->cfg.dialect, m, c->sbuf, c->scap, &len);
    if (rc < 0)
        return rc;
    rc = send_msg(c, c->sbuf, len, NULL, 0);
    return rc < 0 ? rc : flush_out(c);
}

static int reply_error(vfio_user_client *c, const vfio_user_header *h, vfio_user_op op, int err)
{
    vfio_user_msg r;
    if (h->flags & VFIO_USER_F_NO_REPLY)
        return 0;
    memset(&r, 0, sizeof(r));
    r.op = op;
    r.hdr.msg_id = h->msg_id;
    r.hdr.flags = VFIO_USER_F_TYPE_REPLY | VFIO_USER_F_ERROR;
    r.hdr.error_no = (uint32_t)(err < 0 ? -err : err);
    return send_server_reply(c, &r);
}

/* DMA_READ / DMA_WRITE / VM_INTERRUPT from the server. */
static int serve_request(vfio_user_client *c, const vfio_user_msg *m)
{
    vfio_user_msg r;
    int rc = 0;

    c->stats.server_requests++;
    memset(&r, 0, sizeof(r));
    r.op = m->op;
    r.hdr.msg_id = m->hdr.msg_id;
    r.hdr.flags = VFIO_USER_F_TYPE_REPLY;

    switch (m->op) {
    case VFIO_USER_OP_VM_INTERRUPT:
        if (c->ops.interrupt)
            c->ops.interrupt(c->opaque, m->interrupt.sub_index);
        break;
    case VFIO_USER_OP_DMA_READ: {
        uint64_t limit = c->cfg.caps.max_data_xfer_size ? c->cfg.caps.max_data_xfer_size
                                                        : VFIO_USER_DEFAULT_MAX_DATA_XFER_SIZE;
        if (m->dma_io.count > limit || m->dma_io.count + 32 > c->max_send)
            return reply_error(c, &m->hdr, m->op, EMSGSIZE);
        g_autofree uint8_t *data = g_malloc(m->dma_io.count ? m->dma_io.count : 1);
        rc = c->ops.dma_rw ? c->ops.dma_rw(c->opaque, m->dma_io.addr, data, m->dma_io.count, false)
                           : -EFAULT;
        if (rc < 0)
            return reply_error(c, &m->hdr, m->op, rc);
        r.dma_io.addr = m->dma_io.addr;
        r.dma_io.count = m->dma_io.count;
        r.dma_io.data = data;
        r.dma_io.data_len = m->dma_io.count;
        if (m->hdr.flags & VFIO_USER_F_NO_REPLY)
            return 0;
        return send_server_reply(c, &r);
    }
    case VFIO_USER_OP_DMA_WRITE:
        rc = c->ops.dma_rw ? c->ops.dma_rw(c->opaque, m->dma_io.addr, (void *)m->dma_io.data,
                                           m->dma_io.count, true)
                           : -EFAULT;
        if (rc < 0)
            return reply_error(c, &m->hdr, m->op, rc);
        r.dma_io.addr = m->dma_io.addr;
        /* 2021: "the count field in the reply must be zero"; later: bytes written. */
        r.dma_io.count = c->cfg.dialect == VFIO_USER_DIALECT_2021 ? 0 : m->dma_io.count;
        break;
    default:
        /* Only those three travel from server to client. */
        return reply_error(c, &m->hdr, m->op, EINVAL);
    }
    if (m->hdr.flags & VFIO_USER_F_NO_REPLY)
        return 0;
    return send_server_reply(c, &r);
}

/* Pops completed requests from the head of the window. */
static void retire(vfio_user_client *c)
{
    while (c->count > 0 && slot(c, 0)->done) {
        c->head = (c->head + 1) % c->cfg.window;
        c->count--;
    }
}

static pending *find_pending(vfio_user_client *c, uint16_t id)
{
    for (unsigned i = 0; i < c->count; i++) {
        pending *p = slot(c, i);
        if (!p->done && p->id == id)
            return p;
    }
    return NULL;
}

static int complete_reply(vfio_user_client *c, const uint8_t *buf, size_t len,
                          const vfio_user_header *h, int *fds, size_t nfds)
{
    pending *p = find_pending(c, h->msg_id);
    vfio_user_msg m;
    int result;

    if (!p && (c->no_reply_ids[h->msg_id / 64] >> (h->msg_id % 64)) & 1) {
        c->no_reply_ids[h->msg_id / 64] &= ~(1ull << (h->msg_id % 64));
        return 0;
    }
    /* A reply to nothing: the server has lost track of the conversation. */
    if (!p)
        return fail_connection(c, -EPROTO);

    size_t need = vfio_user_msg_max_entries(len);
    if (need > c->entries_cap) {
        c->entries = g_renew(vfio_user_dma_entry, c->entries, need);
        c->entries_cap = need;
    }
    result =
        vfio_user_msg_decode(c->cfg.dialect, buf, len, fds, nfds, &m, c->entries, c->entries_cap);
    if (result == -ENOTSUP) /* a command number the dialect lacks: not our reply */
        result = -EBADMSG;
    if (result == 0)
        result = vfio_user_reply_check(c->cfg.dialect, p->req, p->req_len, &m);
    if (result == 0 && (m.hdr.flags & VFIO_USER_F_ERROR))
        result = m.hdr.error_no ? -(int)m.hdr.error_no : -EIO;

    c->stats.replies_received++;
    TRACE(vfio_user_reply, c->trace_device, h->command, h->msg_id, (uint32_t)len, (uint32_t)nfds,
          result, p->sent_ns ? trace_now_ns() - p->sent_ns : 0);
    p->done = true;
    c->cur_fds = result == 0 ? fds : NULL;
    c->cur_nfds = result == 0 ? nfds : 0;
    if (p->cb)
        p->cb(p->opaque, result, result == 0 || (m.hdr.flags & VFIO_USER_F_ERROR) ? &m : NULL);
    c->cur_fds = NULL;
    c->cur_nfds = 0;
    retire(c);
    return 0;
}

static int handle_message(vfio_user_client *c, const uint8_t *buf, size_t len,
                          const vfio_user_header *h, int *fds, size_t nfds)
{
    if (vfio_user_msg_is_reply(h))
        return complete_reply(c, buf, len, h, fds, nfds);

    vfio_user_msg m;
    vfio_user_dma_entry none[1];
    int rc = vfio_user_msg_decode(c->cfg.dialect, buf, len, fds, nfds, &m, none, 1);
    if (rc < 0) {
        int op = vfio_user_command_op(c->cfg.dialect, h->command);
        return reply_error(c, h, op > 0 ? (vfio_user_op)op : VFIO_USER_OP_DMA_READ,
                           rc == -ENOTSUP ? ENOTSUP : EINVAL);
    }
    return serve_request(c, &m);
}

/* Takes the fds that belong to the message at [off, off + size). */
static size_t take_fds(vfio_user_client *c, size_t off, size_t size, int *out)
{
    size_t n = 0;
    unsigned g = 0;
    while (g < c->ngroups) {
        fd_group *grp = &c->groups[g];
        bool mine = grp->start <= off && off < grp->end && off + size >= grp->end;
        if (!mine) {
            g++;
            continue;
        }
        size_t k = grp->n;
        if (k > VFIO_USER_TRANSPORT_MAX_FDS - n) {
            close_fds(grp->fds + (VFIO_USER_TRANSPORT_MAX_FDS - n),
                      k - (VFIO_USER_TRANSPORT_MAX_FDS - n));
            k = VFIO_USER_TRANSPORT_MAX_FDS - n;
        }
        memcpy(out + n, grp->fds, k * sizeof(int));
        n += k;
        memmove(grp, grp + 1, (c->ngroups - g - 1) * sizeof(*grp));
        c->ngroups--;
    }
    return n;
}

/*
 * Handles every complete message in the receive buffer. Returns 0 or the
 * errno that ended the connection.
 */
static int process_buffer(vfio_user_client *c)
{
    size_t pos = 0;
    int rc = 0;

    while (c->connected && c->rlen - pos >= VFIO_USER_HEADER_SIZE) {
        vfio_user_header h;
        rc = vfio_user_header_decode(c->rbuf + pos, c->rlen - pos, &h);
        if (rc < 0) {
            rc = fail_connection(c, -EBADMSG);
            break;
        }
        if (h.msg_size > c->max_recv) {
            rc = fail_connection(c, -EMSGSIZE);
            break;
        }
        if (c->rlen - pos < h.msg_size) {
            rc = ensure_rbuf(c, h.msg_size);
            if (rc < 0)
                rc = fail_connection(c, rc);
            break;
        }
        int fds[VFIO_USER_TRANSPORT_MAX_FDS];
        size_t nfds = take_fds(c, pos, h.msg_size, fds);
        /* Fds in the middle of a message belong to none: a protocol error. */
        for (unsigned g = 0; g < c->ngroups; g++) {
            if (c->groups[g].end <= pos + h.msg_size) {
                close_fds(fds, nfds);
                rc = fail_connection(c, -EPROTO);
                goto out;
            }
        }
        /* Replies to server requests may read more while sending: append only. */
        c->rbuf_pinned = true;
        rc = handle_message(c, c->rbuf + pos, h.msg_size, &h, fds, nfds);
        c->rbuf_pinned = false;
        /* Whatever fds nobody took are closed: never leak one. */
        close_fds(fds, nfds);
        pos += h.msg_size;
        if (rc < 0)
            break;
    }
out:
    if (!c->connected) {
        c->rlen = 0;
        return c->last_error;
    }
    if (pos > 0) {
        memmove(c->rbuf, c->rbuf + pos, c->rlen - pos);
        c->rlen -= pos;
        for (unsigned g = 0; g < c->ngroups; g++) {
            c->groups[g].start = c->groups[g].start > pos ? c->groups[g].start - pos : 0;
            c->groups[g].end -= pos;
        }
    }
    return rc < 0 ? rc : 0;
}

/* Waits until *remaining drops to 0 (or the window has room when @room). */
static int wait_for(vfio_user_client *c, const unsigned *remaining, bool room)
{
    int64_t deadline = c->cfg.timeout_ms >= 0 ? vfio_user_now_ms() + c->cfg.timeout_ms : 0;
    bool counted = false;
    int frc = flush_out(c);
    if (frc < 0)
        return frc;

    for (;;) {
        int rc = process_buffer(c);
        if (rc < 0)
            return rc;
        if (room ? c->count < c->cfg.window : *remaining == 0)
            return 0;
        if (!c->connected)
            return c->last_error;
        if (!counted) {
            TRACE(vfio_user_wait, c->trace_device, c->count);
            c->stats.waits++;
            counted = true;
        }
        rc = read_available(c);
        if (rc == 0) {
            /* Progress: the timeout bounds silence, not the whole batch. */
            if (c->cfg.timeout_ms >= 0)
                deadline = vfio_user_now_ms() + c->cfg.timeout_ms;
            continue;
        }
        if (rc != -EAGAIN)
            return rc;
        int timeout = -1;
        if (c->cfg.timeout_ms >= 0) {
            int64_t left = deadline - vfio_user_now_ms();
            if (left <= 0)
                return fail_connection(c, -ETIMEDOUT);
            timeout = (int)left;
        }
        int rev = vfio_user_poll(c->sock, POLLIN, timeout);
        if (rev < 0)
            return fail_connection(c, rev);
        if (rev == 0)
            return fail_connection(c, -ETIMEDOUT);
    }
}

/* ------------------------------------------------------------------ */
/* Submit / wait                                                       */
/* ------------------------------------------------------------------ */

int vfio_user_client_submit(vfio_user_client *c, const vfio_user_msg *msg, unsigned flags,
                            vfio_user_completion_fn cb, void *opaque)
{
    int fds[VFIO_USER_TRANSPORT_MAX_FDS];
    size_t size, len;
    int rc;

    if (!c->connected)
        return -EPIPE;
    if (vfio_user_msg_is_reply(&msg->hdr))
        return -EINVAL;
    rc = vfio_user_msg_size(c->cfg.dialect, msg, &size);
    if (rc < 0)
        return rc;
    if (size > c->max_send)
        return -EMSGSIZE;
    size_t nfds = vfio_user_msg_fds(msg, fds, VFIO_USER_TRANSPORT_MAX_FDS);
    if (nfds > c->server.max_msg_fds || nfds > VFIO_USER_TRANSPORT_MAX_FDS)
        return -EMSGSIZE;

    if (!(flags & VFIO_USER_SUBMIT_NO_REPLY) && c->count == c->cfg.window) {
        rc = wait_for(c, NULL, true);
        if (rc < 0)
            return rc;
    }
    if (!c->connected)
        return -EPIPE;

    /* The next free slot doubles as the send buffer and keeps the request. */
    pending *p = slot(c, c->count);
    if (p->req_cap < size) {
        p->req = g_realloc(p->req, size);
        p->req_cap = size;
    }
    vfio_user_msg m = *msg;
    m.hdr.msg_id = c->next_id++;
    m.hdr.flags = VFIO_USER_F_TYPE_COMMAND;
    if (flags & VFIO_USER_SUBMIT_NO_REPLY)
        m.hdr.flags |= VFIO_USER_F_NO_REPLY;
    m.hdr.error_no = 0;
    rc = vfio_user_msg_encode(c->cfg.dialect, &m, p->req, p->req_cap, &len);
    if (rc < 0)
        return rc;
    uint64_t bit = 1ull << (m.hdr.msg_id % 64);
    if (flags & VFIO_USER_SUBMIT_NO_REPLY)
        c->no_reply_ids[m.hdr.msg_id / 64] |= bit;
    else
        c->no_reply_ids[m.hdr.msg_id / 64] &= ~bit;
    rc = send_msg(c, p->req, len, fds, nfds);
    if (rc < 0)
        return rc;
    TRACE(vfio_user_send, c->trace_device, (uint32_t)vfio_user_op_command(c->cfg.dialect, m.op),
          m.hdr.msg_id, (uint32_t)len, (uint32_t)nfds);
    if (flags & VFIO_USER_SUBMIT_NO_REPLY)
        return 0;
    p->sent_ns = trace_event_wanted(vfio_user_reply) ? trace_now_ns() : 0;
    p->id = m.hdr.msg_id;
    p->done = false;
    p->cb = cb;
    p->opaque = opaque;
    p->req_len = len;
    c->count++;
    return 0;
}

int vfio_user_client_wait_all(vfio_user_client *c)
{
    if (!c->connected)
        return c->last_error;
    if (c->count == 0) {
        int rc = flush_out(c);
        return rc < 0 ? rc : process_buffer(c);
    }
    return wait_for(c, &c->count, false);
}

unsigned vfio_user_client_in_flight(const vfio_user_client *c)
{
    return c->count;
}

int vfio_user_client_fd(const vfio_user_client *c)
{
    return c->sock;
}

int vfio_user_client_flush(vfio_user_client *c)
{
    if (!c->connected)
        return c->last_error;
    return flush_out(c);
}

int vfio_user_client_dispatch(vfio_user_client *c)
{
    if (!c->connected)
        return c->last_error;
    int frc = flush_out(c);
    if (frc < 0)
        return frc;
    for (;;) {
        int rc = read_available(c);
        if (rc == -EAGAIN)
            break;
        if (rc < 0)
            return rc;
        rc = process_buffer(c);
        if (rc < 0)
            return rc;
    }
    return process_buffer(c);
}

/* ------------------------------------------------------------------ */
/* Life cycle and VERSION                                              */
/* ------------------------------------------------------------------ */

vfio_user_dialect vfio_user_client_dialect(const vfio_user_client *c)
{
    return c->cfg.dialect;
}

const vfio_user_caps *vfio_user_client_server_caps(const vfio_user_client *c)
{
    return &c->server;
}

size_t vfio_user_client_max_msg_size(const vfio_user_client *c)
{
    return c->max_send;
}

bool vfio_user_client_connected(const vfio_user_client *c)
{
    return c->connected;
}

int vfio_user_client_last_error(const vfio_user_client *c)
{
    return c->last_error;
}

void vfio_user_client_stats_get(const vfio_user_client *c, vfio_user_client_stats *out)
{
    *out = c->stats;
}

typedef struct version_ctx {
    vfio_user_client *c;
    bool done, ok;
    int transport_err;
    GError *error;
} version_ctx;

static void version_done(void *opaque, int result, const vfio_user_msg *reply)
{
    version_ctx *v = opaque;
    vfio_user_client *c = v->c;
    v->done = true;
    if (!reply && result != -EBADMSG && result != -EPROTO) {
        v->transport_err = result; /* reported by negotiate() with its own code */
        return;
    }
    if (!reply) {
        g_set_error(&v->error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                    "vfio-user VERSION reply is malformed (%s): a short body, or JSON "
                    "data without its terminating NUL",
                    g_strerror(-result));
        return;
    }
    if (!vfio_user_version_check(&c->cfg.caps, reply, &c->server, &v->error))
        return;
    if (c->server.twin_socket) {
        /* The client never offers twin-socket mode; enabling it anyway breaks the spec. */
        g_set_error(&v->error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                    "vfio-user server enabled twin_socket, which the client did not offer");
        return;
    }
    v->ok = true;
}

static bool negotiate(vfio_user_client *c, GError **error)
{
    version_ctx v = {.c = c};
    vfio_user_msg m;
    vfio_user_caps offer = c->cfg.caps;

    offer.twin_socket = false;
    offer.unmap_partial = false;
    /* Each spec defines one of the two size limits; offer only that one. */
    if (c->cfg.dialect == VFIO_USER_DIALECT_2021)
        offer.max_data_xfer_size = 0;
    else
        offer.max_msg_size = 0;
    g_autofree char *json = vfio_user_caps_to_json(&offer);
    memset(&m, 0, sizeof(m));
    m.op = VFIO_USER_OP_VERSION;
    m.version.major = VFIO_USER_MAJOR;
    m.version.minor = VFIO_USER_MINOR;
    m.version.json = json;
    m.version.json_len = strlen(json) + 1;

    int rc = vfio_user_client_submit(c, &m, 0, version_done, &v);
    if (rc == 0)
        rc = vfio_user_client_wait_all(c);
    if (rc == 0 && v.transport_err)
        rc = v.transport_err;
    if (rc < 0 && !v.error) {
        int code = rc == -ETIMEDOUT                    ? G_IO_ERROR_TIMED_OUT
                   : rc == -ECONNRESET || rc == -EPIPE ? G_IO_ERROR_CONNECTION_CLOSED
                                                       : G_IO_ERROR_FAILED;
        g_set_error(error, G_IO_ERROR, code, "vfio-user VERSION negotiation failed: %s",
                    g_strerror(-rc));
        return false;
    }
    if (!v.ok) {
        if (v.error)
            g_propagate_error(error, v.error);
        else
            g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                        "vfio-user VERSION negotiation got no reply");
        return false;
    }

    /* What the server can receive bounds every message we send. */
    if (c->server.max_msg_size)
        c->max_send = c->server.max_msg_size;
    else if (c->server.max_data_xfer_size)
        c->max_send = c->server.max_data_xfer_size + VFIO_USER_HEADER_SIZE +
                      sizeof(struct vfio_user_region_access_wire);
    else if (c->cfg.dialect == VFIO_USER_DIALECT_2021)
        c->max_send = VFIO_USER_DEFAULT_MAX_MSG_SIZE;
    else
        c->max_send = VFIO_USER_DEFAULT_MAX_DATA_XFER_SIZE + 32;
    if (!c->server.max_data_xfer_size)
        c->server.max_data_xfer_size = c->max_send - 32;
    return true;
}

vfio_user_client *vfio_user_client_new(int fd, const vfio_user_client_config *cfg,
                                       const vfio_user_client_ops *ops, void *opaque,
                                       GError **error)
{
    vfio_user_client *c;

    if (!cfg || !vfio_user_dialect_name(cfg->dialect) || cfg->window > MAX_WINDOW || fd < 0) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                    "vfio-user client: invalid configuration (dialect, window <= %d, fd)",
                    MAX_WINDOW);
        return NULL;
    }
    c = g_new0(vfio_user_client, 1);
    c->sock = fd;
    c->cfg = *cfg;
    if (c->cfg.window == 0)
        c->cfg.window = DEFAULT_WINDOW;
    if (c->cfg.timeout_ms == 0)
        c->cfg.timeout_ms = DEFAULT_TIMEOUT_MS;
    if (c->cfg.caps.max_msg_fds == 0)
        c->cfg.caps.max_msg_fds = DEFAULT_MAX_FDS;
    if (c->cfg.caps.max_msg_size == 0)
        c->cfg.caps.max_msg_size = DEFAULT_MAX_RECV;
    if (c->cfg.caps.max_data_xfer_size == 0)
        c->cfg.caps.max_data_xfer_size = VFIO_USER_DEFAULT_MAX_DATA_XFER_SIZE;
    if (ops)
        c->ops = *ops;
    c->opaque = opaque;
    c->max_recv = c->cfg.caps.max_msg_size;
    /* VERSION goes out before the server's limits are known: the spec minimum. */
    c->max_send = VFIO_USER_DEFAULT_MAX_MSG_SIZE;
    vfio_user_caps_init(&c->server);
    c->server.max_msg_fds = 0;
    c->ring = g_new0(pending, c->cfg.window);
    c->next_id = 1;
    c->connected = true;
    static uint32_t next_trace_device;
    c->trace_device = __atomic_fetch_add(&next_trace_device, 1, __ATOMIC_RELAXED);

    if (!negotiate(c, error)) {
        c->sock = -1; /* the caller keeps the fd on failure */
        vfio_user_client_free(c);
        return NULL;
    }
    return c;
}

vfio_user_client *vfio_user_client_connect(const char *path, const vfio_user_client_config *cfg,
                                           const vfio_user_client_ops *ops, void *opaque,
                                           GError **error)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (!path || strlen(path) >= sizeof(sa.sun_path)) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                    "vfio-user socket path is missing or longer than %zu bytes",
                    sizeof(sa.sun_path) - 1);
        return NULL;
    }
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int e = errno;
        g_set_error(error, G_IO_ERROR, g_io_error_from_errno(e), "socket: %s", g_strerror(e));
        return NULL;
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;
        g_set_error(error, G_IO_ERROR, g_io_error_from_errno(e), "connect to %s: %s", path,
                    g_strerror(e));
        close(fd);
        return NULL;
    }
    vfio_user_client *c = vfio_user_client_new(fd, cfg, ops, opaque, error);
    if (!c)
        close(fd);
    return c;
}

void vfio_user_client_free(vfio_user_client *c)
{
    if (!c)
        return;
    if (c->connected) {
        c->connected = false;
        c->last_error = -ECONNABORTED;
    }
    fail_connection(c, -ECONNABORTED);
    if (c->sock >= 0)
        close(c->sock);
    for (unsigned i = 0; i < c->cfg.window; i++)
        g_free(c->ring[i].req);
    g_free(c->ring);
    g_free(c->rbuf);
    g_free(c->entries);
    g_free(c->sbuf);
    g_free(c->obuf);
    g_free(c);
}

/* Used by the synchronous commands to take an fd from the reply being completed. */
int vfio_user_client_take_fd(vfio_user_client *c)
{
    if (!c->cur_fds || c->cur_nfds == 0)
        return -1;
    int fd = c->cur_fds[0];
    c->cur_fds[0] = -1;
    return fd;
}

int vfio_user_client_wait_for(vfio_user_client *c, const unsigned *remaining)
{
    return wait_for(c, remaining, false);
}

size_t vfio_user_client_max_recv(const vfio_user_client *c)
{
    return c->max_recv;
}

uint32_t vfio_user_client_trace_device(const vfio_user_client *c)
{
    return c->trace_device;
}

void vfio_user_client_set_trace_device(vfio_user_client *c, uint32_t device)
{
    c->trace_device = device;
}

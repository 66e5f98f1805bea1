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

#include "client_internal.h"
#include "trace_points.h"

static void close_fds(int *fds, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (fds[i] >= 0)
            close(fds[i]);
        fds[i] = -1;
    }
}

/* ------------------------------------------------------------------ */
/* Connection state                                                    */
/* ------------------------------------------------------------------ */

static pending *slot(vfio_user_client *c, unsigned i)
{
    return &c->ring[(c->head + i) % c->cfg.window];
}

/* Ends the connection: every request in flight completes with @err. */
int vfio_user_client_fail(vfio_user_client *c, int err)
{
    if (c->connected) {
        c->connected = false;
        c->last_error = err;
        shutdown(c->sock, SHUT_RDWR);
    }
    while (c->count > 0) {
        pending *p = slot(c, 0);
        if (!p->done && p->cb) {
            c->in_callback++;
            p->cb(p->opaque, c->last_error, NULL);
            c->in_callback--;
        }
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
            return vfio_user_client_fail(c, n == -EPIPE ? -EPIPE : (int)n);
        int timeout = -1;
        if (c->cfg.timeout_ms >= 0) {
            int64_t left = deadline - vfio_user_now_ms();
            if (left <= 0)
                return vfio_user_client_fail(c, -ETIMEDOUT);
            timeout = (int)left;
        }
        short ev = POLLOUT;
        if (c->rbuf_pinned ? c->rlen < c->rcap : c->rlen < c->max_recv + READ_CHUNK)
            ev |= POLLIN;
        int rev = vfio_user_poll(c->sock, ev, timeout);
        if (rev < 0)
            return vfio_user_client_fail(c, rev);
        if (rev & POLLIN) {
            int rc = read_available(c);
            if (rc < 0 && rc != -EAGAIN)
                return rc;
        } else if (rev & (POLLERR | POLLHUP)) {
            return vfio_user_client_fail(c, -EPIPE);
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
            return vfio_user_client_fail(c, -EMSGSIZE);
    }
    if (c->rlen == c->rcap)
        return -EAGAIN;
    ssize_t n = vfio_user_recv_some(c->sock, c->rbuf + c->rlen, c->rcap - c->rlen, fds, &nfds);
    if (n == -EAGAIN)
        return -EAGAIN;
    if (n < 0)
        return vfio_user_client_fail(c, (int)n);
    if (nfds > 0) {
        if (c->ngroups == MAX_FD_GROUPS) {
            close_fds(fds, nfds);
            return vfio_user_client_fail(c, -EPROTO);
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
        if (c->ops.interrupt) {
            c->in_callback++;
            c->ops.interrupt(c->opaque, m->interrupt.sub_index);
            c->in_callback--;
        }
        break;
    case VFIO_USER_OP_DMA_READ: {
        uint64_t limit = c->cfg.caps.max_data_xfer_size ? c->cfg.caps.max_data_xfer_size
                                                        : VFIO_USER_DEFAULT_MAX_DATA_XFER_SIZE;
        if (m->dma_io.count > limit || m->dma_io.count + 32 > c->max_send)
            return reply_error(c, &m->hdr, m->op, EMSGSIZE);
        g_autofree uint8_t *data = g_malloc(m->dma_io.count ? m->dma_io.count : 1);
        c->in_callback++;
        rc = c->ops.dma_rw ? c->ops.dma_rw(c->opaque, m->dma_io.addr, data, m->dma_io.count, false)
                           : -EFAULT;
        c->in_callback--;
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
        c->in_callback++;
        rc = c->ops.dma_rw ? c->ops.dma_rw(c->opaque, m->dma_io.addr, (void *)m->dma_io.data,
                                           m->dma_io.count, true)
                           : -EFAULT;
        c->in_callback--;
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
        return vfio_user_client_fail(c, -EPROTO);

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
    if (p->cb) {
        c->in_callback++;
        p->cb(p->opaque, result, result == 0 || (m.hdr.flags & VFIO_USER_F_ERROR) ? &m : NULL);
        c->in_callback--;
    }
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
            rc = vfio_user_client_fail(c, -EBADMSG);
            break;
        }
        if (h.msg_size > c->max_recv) {
            rc = vfio_user_client_fail(c, -EMSGSIZE);
            break;
        }
        if (c->rlen - pos < h.msg_size) {
            rc = ensure_rbuf(c, h.msg_size);
            if (rc < 0)
                rc = vfio_user_client_fail(c, rc);
            break;
        }
        int fds[VFIO_USER_TRANSPORT_MAX_FDS];
        size_t nfds = take_fds(c, pos, h.msg_size, fds);
        /* Fds in the middle of a message belong to none: a protocol error. */
        for (unsigned g = 0; g < c->ngroups; g++) {
            if (c->groups[g].end <= pos + h.msg_size) {
                close_fds(fds, nfds);
                rc = vfio_user_client_fail(c, -EPROTO);
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
                return vfio_user_client_fail(c, -ETIMEDOUT);
            timeout = (int)left;
        }
        int rev = vfio_user_poll(c->sock, POLLIN, timeout);
        if (rev < 0)
            return vfio_user_client_fail(c, rev);
        if (rev == 0)
            return vfio_user_client_fail(c, -ETIMEDOUT);
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

    if (c->in_callback)
        return -EDEADLK;
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
    if (c->in_callback)
        return -EDEADLK;
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
    if (c->in_callback)
        return -EDEADLK;
    if (!c->connected)
        return c->last_error;
    return flush_out(c);
}

int vfio_user_client_dispatch(vfio_user_client *c)
{
    if (c->in_callback)
        return -EDEADLK;
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

int vfio_user_client_wait_for(vfio_user_client *c, const unsigned *remaining)
{
    if (c->in_callback)
        return -EDEADLK;
    return wait_for(c, remaining, false);
}

uint32_t vfio_user_client_trace_device(const vfio_user_client *c)
{
    return c->trace_device;
}

void vfio_user_client_set_trace_device(vfio_user_client *c, uint32_t device)
{
    c->trace_device = device;
}

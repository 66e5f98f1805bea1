/* SPDX-License-Identifier: MIT */
/*
 * Messages on the AF_UNIX stream: whole messages in, fds by SCM_RIGHTS,
 * replies out (with fault injection), and the server's own DMA_READ /
 * DMA_WRITE round trips, which queue any command arriving meanwhile.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "private.h"

/* Commands queued while a DMA round trip waits: beyond these, the client is flooding. */
#define PENDING_MAX_MSGS 256u
#define PENDING_MAX_BYTES (16u << 20)

void vus_log(const vfio_user_server_conn *c, const char *fmt, ...)
{
    va_list ap;

    if (!c->opts.verbose)
        return;
    va_start(ap, fmt);
    flockfile(stderr);
    fprintf(stderr, "vfio-user-server[%d]: ", c->fd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    funlockfile(stderr);
    va_end(ap);
}

void vus_msg_clear(vus_msg *m)
{
    g_free(m->body);
    m->body = NULL;
    m->len = 0;
    for (unsigned i = 0; i < m->nfds; i++)
        if (m->fds[i] >= 0)
            close(m->fds[i]);
    m->nfds = 0;
}

static int wait_readable(int fd, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int n;

    do {
        n = poll(&p, 1, timeout_ms);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    return n == 0 ? -ETIMEDOUT : 0;
}

/*
 * Reads exactly @len bytes, collecting the fds that arrive with them
 * into @m (closing those beyond its capacity).
 */
static int read_full(int fd, void *buf, size_t len, vus_msg *m, int timeout_ms)
{
    size_t done = 0;

    while (done < len) {
        union {
            char buf[CMSG_SPACE(sizeof(int) * VUS_MAX_RECV_FDS)];
            struct cmsghdr align;
        } ctl;
        struct iovec iov = {(char *)buf + done, len - done};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
        ssize_t n;

        if (timeout_ms >= 0) {
            int ret = wait_readable(fd, timeout_ms);
            if (ret < 0)
                return ret;
        }
        mh.msg_control = ctl.buf;
        mh.msg_controllen = sizeof(ctl.buf);
        n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return -errno;
        }
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
            size_t nfd;

            if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
                continue;
            nfd = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 0; i < nfd; i++) {
                int f;

                memcpy(&f, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
                if (m->nfds < VUS_MAX_RECV_FDS) {
                    m->fds[m->nfds++] = f;
                } else {
                    close(f);
                    m->fds_truncated = true;
                }
            }
        }
        if (mh.msg_flags & MSG_CTRUNC)
            m->fds_truncated = true;
        if (n == 0)
            return -ECONNRESET;
        done += (size_t)n;
    }
    return 0;
}

int vus_recv(vfio_user_server_conn *c, int fd, vus_msg *m, int timeout_ms)
{
    uint8_t h[VFIO_USER_HEADER_SIZE];
    int ret;

    memset(m, 0, sizeof(*m));
    ret = read_full(fd, h, sizeof(h), m, timeout_ms);
    if (ret < 0)
        goto fail;
    m->hdr.msg_id = vus_get16(h + offsetof(struct vfio_user_header_wire, msg_id));
    m->hdr.command = vus_get16(h + offsetof(struct vfio_user_header_wire, command));
    m->hdr.msg_size = vus_get32(h + offsetof(struct vfio_user_header_wire, msg_size));
    m->hdr.flags = vus_get32(h + offsetof(struct vfio_user_header_wire, flags));
    m->hdr.error_no = vus_get32(h + offsetof(struct vfio_user_header_wire, error_no));
    if (m->hdr.msg_size < VFIO_USER_HEADER_SIZE || m->hdr.msg_size > c->prof->max_msg_size) {
        ret = -EMSGSIZE;
        goto fail;
    }
    m->len = m->hdr.msg_size - VFIO_USER_HEADER_SIZE;
    if (m->len) {
        m->body = g_try_malloc(m->len);
        if (!m->body) {
            ret = -ENOMEM;
            goto fail;
        }
        ret = read_full(fd, m->body, m->len, m, timeout_ms);
        if (ret < 0)
            goto fail;
    }
    return 0;

fail : {
    vfio_user_header keep = m->hdr;
    vus_msg_clear(m);
    m->hdr = keep;
}
    return ret;
}

static int send_all(int fd, struct iovec *iov, int iovcnt, int fd_out, bool short_writes)
{
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } ctl;
    bool fd_sent = fd_out < 0;

    while (iovcnt > 0) {
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)iovcnt};
        struct iovec one;
        ssize_t n;

        if (iov->iov_len == 0) {
            iov++;
            iovcnt--;
            continue;
        }
        if (short_writes) {
            one.iov_base = iov->iov_base;
            one.iov_len = 1;
            mh.msg_iov = &one;
            mh.msg_iovlen = 1;
        }
        if (!fd_sent) {
            struct cmsghdr *cm;

            memset(&ctl, 0, sizeof(ctl));
            mh.msg_control = ctl.buf;
            mh.msg_controllen = sizeof(ctl.buf);
            cm = CMSG_FIRSTHDR(&mh);
            cm->cmsg_level = SOL_SOCKET;
            cm->cmsg_type = SCM_RIGHTS;
            cm->cmsg_len = CMSG_LEN(sizeof(int));
            memcpy(CMSG_DATA(cm), &fd_out, sizeof(int));
        }
        n = sendmsg(fd, &mh, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return -errno;
        }
        fd_sent = true;
        while (n > 0 && iovcnt > 0) {
            size_t take = (size_t)n < iov->iov_len ? (size_t)n : iov->iov_len;
            iov->iov_base = (char *)iov->iov_base + take;
            iov->iov_len -= take;
            n -= (ssize_t)take;
            if (iov->iov_len == 0) {
                iov++;
                iovcnt--;
            }
        }
    }
    return 0;
}

static void encode_header(uint8_t *h, const vfio_user_header *hdr)
{
    vus_put16(h + offsetof(struct vfio_user_header_wire, msg_id), hdr->msg_id);
    vus_put16(h + offsetof(struct vfio_user_header_wire, command), hdr->command);
    vus_put32(h + offsetof(struct vfio_user_header_wire, msg_size), hdr->msg_size);
    vus_put32(h + offsetof(struct vfio_user_header_wire, flags), hdr->flags);
    vus_put32(h + offsetof(struct vfio_user_header_wire, error_no), hdr->error_no);
}

int vus_send(int fd, const vfio_user_header *hdr, const void *body, size_t len, int fd_out,
             bool short_writes)
{
    uint8_t h[VFIO_USER_HEADER_SIZE];
    vfio_user_header copy = *hdr;
    struct iovec iov[2] = {{h, sizeof(h)}, {(void *)body, len}};

    if (len > UINT32_MAX - VFIO_USER_HEADER_SIZE)
        return -EMSGSIZE;
    copy.msg_size = (uint32_t)(VFIO_USER_HEADER_SIZE + len);
    encode_header(h, &copy);
    return send_all(fd, iov, 2, fd_out, short_writes);
}

/* True when fault injection applies to this reply (counting it). */
static bool fault_applies(vfio_user_server_conn *c, const vus_msg *req)
{
    const vfio_user_server_faults *f = &c->opts.faults;

    if (!f->kinds)
        return false;
    if (f->command ? req->hdr.command != f->command : req->hdr.command == VFIO_USER_VERSION)
        return false;
    if (c->fault_matched++ < f->skip)
        return false;
    if (f->count && c->fault_done >= f->count)
        return false;
    c->fault_done++;
    return true;
}

static int reply_faulty(vfio_user_server_conn *c, const vus_msg *req, vfio_user_header *hdr,
                        const void *body, size_t len, int fd_out)
{
    uint32_t k = c->opts.faults.kinds;
    int ret, extra_fd = -1;

    vus_log(c, "fault injection 0x%x on reply to command %u id %u", k, req->hdr.command,
            req->hdr.msg_id);
    if (k & VFIO_USER_SERVER_FAULT_DELAY) {
        struct timespec ts = {c->opts.faults.delay_ms / 1000,
                              (long)(c->opts.faults.delay_ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
            ;
    }
    if (k & VFIO_USER_SERVER_FAULT_REPLY_TO_NOTHING) {
        vfio_user_header stray = *hdr;
        stray.msg_id = (uint16_t)(hdr->msg_id + 0x8000u);
        ret = vus_send(c->fd, &stray, NULL, 0, -1, false);
        if (ret < 0)
            return ret;
    }
    if (k & VFIO_USER_SERVER_FAULT_WRONG_ID)
        hdr->msg_id = (uint16_t)(hdr->msg_id + 1);
    if (k & VFIO_USER_SERVER_FAULT_UNEXPECTED_FD) {
        extra_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd_out < 0)
            fd_out = extra_fd;
    }
    if (k & (VFIO_USER_SERVER_FAULT_DROP_MID_REPLY | VFIO_USER_SERVER_FAULT_WRONG_SIZE)) {
        size_t total = VFIO_USER_HEADER_SIZE + len, cut;
        uint8_t *buf = g_malloc(total);
        struct iovec iov;

        hdr->msg_size = (uint32_t)total;
        if (k & VFIO_USER_SERVER_FAULT_WRONG_SIZE)
            hdr->msg_size += 8;
        encode_header(buf, hdr);
        if (len)
            memcpy(buf + VFIO_USER_HEADER_SIZE, body, len);
        cut = (k & VFIO_USER_SERVER_FAULT_DROP_MID_REPLY) ? total / 2 : total;
        iov.iov_base = buf;
        iov.iov_len = cut;
        ret = send_all(c->fd, &iov, 1, fd_out, k & VFIO_USER_SERVER_FAULT_SHORT_WRITES);
        g_free(buf);
        if (extra_fd >= 0)
            close(extra_fd);
        /* The stream is out of step with the client from here. */
        c->broken = true;
        shutdown(c->fd, SHUT_RDWR);
        return ret < 0 ? ret : -EPROTO;
    }
    ret = vus_send(c->fd, hdr, body, len, fd_out, k & VFIO_USER_SERVER_FAULT_SHORT_WRITES);
    if (extra_fd >= 0)
        close(extra_fd);
    return ret;
}

int vus_reply(vfio_user_server_conn *c, const vus_msg *req, const void *body, size_t len,
              int fd_out)
{
    vfio_user_header hdr = {
        .msg_id = req->hdr.msg_id,
        .command = req->hdr.command,
        .flags = VFIO_USER_F_TYPE_REPLY,
    };

    if (req->hdr.flags & VFIO_USER_F_NO_REPLY)
        return 0;
    if (fault_applies(c, req))
        return reply_faulty(c, req, &hdr, body, len, fd_out);
    return vus_send(c->fd, &hdr, body, len, fd_out, false);
}

int vus_reply_error(vfio_user_server_conn *c, const vus_msg *req, int err)
{
    vfio_user_header hdr = {
        .msg_id = req->hdr.msg_id,
        .command = req->hdr.command,
        .flags = VFIO_USER_F_TYPE_REPLY | VFIO_USER_F_ERROR,
        .error_no = (uint32_t)err,
    };

    if (req->hdr.flags & VFIO_USER_F_NO_REPLY)
        return 0;
    if (fault_applies(c, req))
        return reply_faulty(c, req, &hdr, NULL, 0, -1);
    return vus_send(c->fd, &hdr, NULL, 0, -1, false);
}

/* Keeps a command that arrived during a DMA round trip for later, in order. */
static int queue_pending(vfio_user_server_conn *c, vus_msg *m)
{
    vus_msg *copy;

    if (g_queue_get_length(&c->pending) >= PENDING_MAX_MSGS ||
        c->pending_bytes + m->len > PENDING_MAX_BYTES)
        return -EPROTO;
    copy = g_new(vus_msg, 1);
    *copy = *m;
    memset(m, 0, sizeof(*m));
    c->pending_bytes += copy->len;
    g_queue_push_tail(&c->pending, copy);
    return 0;
}

/* Sends one server -> client command and waits for its reply in @reply. */
static int round_trip(vfio_user_server_conn *c, uint16_t cmd, const uint8_t *body, size_t len,
                      vus_msg *reply)
{
    int cfd = c->twin_fd >= 0 ? c->twin_fd : c->fd;
    int timeout = c->opts.dma_timeout_ms ? (int)c->opts.dma_timeout_ms : -1;
    vfio_user_header hdr = {.msg_id = c->next_id++, .command = cmd};
    int ret = vus_send(cfd, &hdr, body, len, -1, false);

    if (ret < 0)
        return ret;
    for (;;) {
        ret = vus_recv(c, cfd, reply, timeout);
        if (ret < 0)
            return ret == -EMSGSIZE ? -EPROTO : ret;
        if (reply->nfds || reply->fds_truncated) {
            /* No message from the client carries fds here except DMA_MAP commands. */
            if (vfio_user_msg_is_reply(&reply->hdr))
                return -EPROTO;
        }
        if (!vfio_user_msg_is_reply(&reply->hdr)) {
            if (cfd != c->fd)
                return -EPROTO;
            ret = queue_pending(c, reply);
            if (ret < 0)
                return ret;
            continue;
        }
        if (reply->hdr.msg_id == hdr.msg_id && reply->hdr.command == cmd)
            return 0;
        vus_log(c, "discarding a reply to nothing (id %u command %u)", reply->hdr.msg_id,
                reply->hdr.command);
        vus_msg_clear(reply);
    }
}

int vus_conn_dma_rw(vfio_user_server_conn *c, bool write, uint64_t iova, uint64_t len, uint8_t fill,
                    uint64_t *sum)
{
    uint64_t chunk_max = c->client_max_xfer ? c->client_max_xfer : VUS_MAX_DATA_XFER;
    const size_t hlen = sizeof(struct vfio_user_dma_access_wire);

    /* A DMA_WRITE carries its data to the client and a DMA_READ's reply
     * brings it back: each must fit the receiver's max_msg_size too. */
    uint64_t msg_max = write ? c->client_max_msg_size : c->prof->max_msg_size;

    if (chunk_max > VUS_MAX_DATA_XFER)
        chunk_max = VUS_MAX_DATA_XFER;
    if (msg_max > VFIO_USER_HEADER_SIZE + hlen &&
        msg_max - VFIO_USER_HEADER_SIZE - hlen < chunk_max)
        chunk_max = msg_max - VFIO_USER_HEADER_SIZE - hlen;
    while (len) {
        uint64_t n = len < chunk_max ? len : chunk_max;
        size_t blen = hlen + (write ? (size_t)n : 0);
        uint8_t *body = g_malloc(blen);
        vus_msg reply;
        int ret;

        vus_put64(body + offsetof(struct vfio_user_dma_access_wire, addr), iova);
        vus_put64(body + offsetof(struct vfio_user_dma_access_wire, count), n);
        if (write)
            memset(body + hlen, fill, (size_t)n);
        vus_log(c, "sending DMA_%s iova 0x%" G_GINT64_MODIFIER "x count %" G_GUINT64_FORMAT,
                write ? "WRITE" : "READ", iova, n);
        ret = round_trip(c, write ? VFIO_USER_DMA_WRITE : VFIO_USER_DMA_READ, body, blen, &reply);
        g_free(body);
        if (ret < 0) {
            c->broken = true;
            return ret;
        }
        if (reply.hdr.flags & VFIO_USER_F_ERROR) {
            ret = reply.hdr.error_no ? -(int)reply.hdr.error_no : -EIO;
        } else if (!write) {
            /* The reply must be exactly {addr, count, data[count]} for what we asked. */
            if (reply.len != hlen + n || vus_get64(reply.body) != iova ||
                vus_get64(reply.body + 8) != n) {
                ret = -EPROTO;
            } else {
                for (uint64_t i = 0; i < n; i++)
                    *sum += reply.body[hlen + i];
            }
        }
        vus_msg_clear(&reply);
        if (ret < 0)
            return ret;
        iova += n;
        len -= n;
    }
    return 0;
}

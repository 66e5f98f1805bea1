/* SPDX-License-Identifier: MIT */
/*
 * Test helpers: a server connection on one end of a socketpair, run by
 * its own thread, and raw vfio-user messages on the other end, so tests
 * see exactly the bytes the server sends.
 */
#ifndef VFIO_USER_SERVER_TESTS_RAW_H
#define VFIO_USER_SERVER_TESTS_RAW_H

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "private.h"

typedef struct srv_thread {
    vfio_user_server_thread *t;
    vfio_user_server_conn *conn;
} srv_thread;

/* Starts a server connection; *client_fd receives the client's end. */
static inline srv_thread *srv_start(const vfio_user_server_options *opts, int *client_fd)
{
    srv_thread *s = g_new0(srv_thread, 1);
    GError *err = NULL;

    s->t = vfio_user_server_spawn_pair(opts, client_fd, &err);
    cr_assert_not_null(s->t, "%s", err ? err->message : "");
    s->conn = vfio_user_server_thread_conn(s->t);
    return s;
}

/* Waits for the server thread (the client end must be closed first) and frees it. */
static inline int srv_join(srv_thread *s)
{
    int ret = vfio_user_server_join(s->t, false);

    g_free(s);
    return ret;
}

static inline int raw_send_hdr(int fd, uint16_t id, uint16_t cmd, uint32_t msg_size, uint32_t flags,
                               const void *body, size_t len, const int *fds, unsigned nfds)
{
    uint8_t h[16];
    struct iovec iov[2] = {{h, 16}, {(void *)body, len}};
    union {
        char buf[CMSG_SPACE(sizeof(int) * 16)];
        struct cmsghdr align;
    } ctl;
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = len ? 2 : 1};
    ssize_t n;

    vus_put16(h, id);
    vus_put16(h + 2, cmd);
    vus_put32(h + 4, msg_size);
    vus_put32(h + 8, flags);
    vus_put32(h + 12, 0);
    if (nfds) {
        struct cmsghdr *cm;
        memset(&ctl, 0, sizeof(ctl));
        mh.msg_control = ctl.buf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
    }
    n = sendmsg(fd, &mh, MSG_NOSIGNAL);
    return n == (ssize_t)(16 + len) ? 0 : -EIO;
}

static inline int raw_send(int fd, uint16_t id, uint16_t cmd, const void *body, size_t len,
                           const int *fds, unsigned nfds)
{
    return raw_send_hdr(fd, id, cmd, (uint32_t)(16 + len), 0, body, len, fds, nfds);
}

/* One received message. */
typedef struct raw_msg {
    uint16_t id, cmd;
    uint32_t size, flags, error;
    uint8_t *body;
    size_t len;
    unsigned nfds;
    int fd0; /* the first fd received, kept open until raw_msg_free(); -1 if none */
} raw_msg;

static inline int raw_read(int fd, void *buf, size_t len, unsigned *nfds, int *fd0)
{
    size_t done = 0;

    while (done < len) {
        union {
            char buf[CMSG_SPACE(sizeof(int) * 16)];
            struct cmsghdr align;
        } ctl;
        struct iovec iov = {(char *)buf + done, len - done};
        struct msghdr mh = {.msg_iov = &iov,
                            .msg_iovlen = 1,
                            .msg_control = ctl.buf,
                            .msg_controllen = sizeof(ctl.buf)};
        ssize_t n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -ECONNRESET;
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
            if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
                size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (size_t i = 0; i < k; i++) {
                    int f;
                    memcpy(&f, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
                    if (*fd0 < 0)
                        *fd0 = f;
                    else
                        close(f);
                    (*nfds)++;
                }
            }
        }
        done += (size_t)n;
    }
    return 0;
}

/* Receives one message (fds are counted; all but the first are closed at once). */
static inline int raw_recv(int fd, raw_msg *m)
{
    uint8_t h[16];
    int ret;

    memset(m, 0, sizeof(*m));
    m->fd0 = -1;
    ret = raw_read(fd, h, 16, &m->nfds, &m->fd0);
    if (ret < 0)
        return ret;
    m->id = vus_get16(h);
    m->cmd = vus_get16(h + 2);
    m->size = vus_get32(h + 4);
    m->flags = vus_get32(h + 8);
    m->error = vus_get32(h + 12);
    if (m->size < 16 || m->size > (64u << 20))
        return -EBADMSG;
    m->len = m->size - 16;
    m->body = g_malloc(m->len + 1);
    return raw_read(fd, m->body, m->len, &m->nfds, &m->fd0);
}

static inline void raw_msg_free(raw_msg *m)
{
    g_free(m->body);
    m->body = NULL;
    if (m->fd0 >= 0)
        close(m->fd0);
    m->fd0 = -1;
}

/* A memfd of @size bytes. */
static inline int test_memfd(size_t size)
{
    int fd = memfd_create("guest", MFD_CLOEXEC);
    cr_assert_geq(fd, 0);
    cr_assert_eq(ftruncate(fd, (off_t)size), 0);
    return fd;
}

/* The number of open fds of this process. */
static inline int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;

    cr_assert_not_null(d);
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* Sends a command and receives its reply; returns the reply's errno (0: success). */
static inline int raw_call(int fd, uint16_t id, uint16_t cmd, const void *body, size_t len,
                           const int *fds, unsigned nfds, raw_msg *reply)
{
    raw_msg r;

    cr_assert_eq(raw_send(fd, id, cmd, body, len, fds, nfds), 0);
    cr_assert_eq(raw_recv(fd, &r), 0, "no reply to command %u", cmd);
    cr_assert_eq(r.id, id);
    cr_assert_eq(r.cmd, cmd);
    cr_assert_eq(r.flags & VFIO_USER_F_TYPE_MASK, VFIO_USER_F_TYPE_REPLY);
    if (reply)
        *reply = r;
    else
        raw_msg_free(&r);
    return (r.flags & VFIO_USER_F_ERROR) ? (int)r.error : 0;
}

/* VERSION with @json (NULL: none); returns the reply's errno and the reply in @reply. */
static inline int raw_version(int fd, const char *json, raw_msg *reply)
{
    size_t jl = json ? strlen(json) + 1 : 0;
    g_autofree uint8_t *b = g_malloc(4 + jl);

    vus_put16(b, 0);
    vus_put16(b + 2, 1);
    if (jl)
        memcpy(b + 4, json, jl);
    return raw_call(fd, 0, VFIO_USER_VERSION, b, 4 + jl, NULL, 0, reply);
}

#define RAW_CAPS                                                                                   \
    "{\"capabilities\":{\"max_msg_fds\":8,\"max_msg_size\":4194304,\"migration\":{\"pgsize\":"     \
    "4096}}}"

/* A 2021 DMA_MAP / DMA_UNMAP table entry. */
static inline void raw_entry_2021(uint8_t *e, uint64_t iova, uint64_t size, uint64_t offset,
                                  uint32_t prot, uint32_t flags)
{
    vus_put64(e, iova);
    vus_put64(e + 8, size);
    vus_put64(e + 16, offset);
    vus_put32(e + 24, prot);
    vus_put32(e + 28, flags);
}

/* A 0.9.1 / final DMA_MAP body. */
static inline void raw_map_091(uint8_t *b, uint64_t iova, uint64_t size, uint64_t offset)
{
    vus_put32(b, 32);
    vus_put32(b + 4, 3);
    vus_put64(b + 8, offset);
    vus_put64(b + 16, iova);
    vus_put64(b + 24, size);
}

/* A REGION_WRITE of a 32-bit or 64-bit register of the sample device. */
static inline int raw_reg_write(int fd, uint16_t id, uint32_t off, uint64_t v, unsigned size)
{
    uint8_t b[24] = {0};

    vus_put64(b, off);
    vus_put32(b + 8, 0);
    vus_put32(b + 12, size);
    vus_put64(b + 16, v);
    return raw_call(fd, id, VFIO_USER_REGION_WRITE, b, 16 + size, NULL, 0, NULL);
}

static inline uint64_t raw_reg_read(int fd, uint16_t id, uint32_t off, unsigned size)
{
    uint8_t b[16] = {0};
    raw_msg r;
    uint64_t v;

    vus_put64(b, off);
    vus_put32(b + 12, size);
    cr_assert_eq(raw_call(fd, id, VFIO_USER_REGION_READ, b, 16, NULL, 0, &r), 0);
    cr_assert_eq(r.len, 16 + size);
    v = size == 8 ? vus_get64(r.body + 16) : vus_get32(r.body + 16);
    raw_msg_free(&r);
    return v;
}

#endif

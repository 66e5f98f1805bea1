/* SPDX-License-Identifier: MIT */
/*
 * transport.c - AF_UNIX stream I/O with SCM_RIGHTS. Every call is
 * non-blocking so that a caller waiting to send can still read (the
 * server may be blocked sending us a DMA request).
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "transport.h"

ssize_t vfio_user_send_some(int sock, const void *buf, size_t len, const int *fds, size_t nfds)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * VFIO_USER_TRANSPORT_MAX_FDS)];
        struct cmsghdr align;
    } ctrl;
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};

    if (nfds > VFIO_USER_TRANSPORT_MAX_FDS)
        return -EMSGSIZE;
    if (nfds > 0) {
        memset(&ctrl, 0, sizeof(ctrl));
        mh.msg_control = ctrl.buf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
    }
    for (;;) {
        ssize_t n = sendmsg(sock, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        if (errno == EWOULDBLOCK)
            return -EAGAIN;
        return -errno;
    }
}

static void close_fds(const int *fds, size_t n)
{
    for (size_t i = 0; i < n; i++)
        close(fds[i]);
}

ssize_t vfio_user_recv_some(int sock, void *buf, size_t len, int *fds, size_t *nfds)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * VFIO_USER_TRANSPORT_MAX_FDS)];
        struct cmsghdr align;
    } ctrl;
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    ssize_t n;

    *nfds = 0;
    for (;;) {
        mh.msg_control = ctrl.buf;
        mh.msg_controllen = sizeof(ctrl.buf);
        n = recvmsg(sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n >= 0)
            break;
        if (errno == EINTR)
            continue;
        if (errno == EWOULDBLOCK)
            return -EAGAIN;
        return errno == EPIPE ? -ECONNRESET : -errno;
    }
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        int got[VFIO_USER_TRANSPORT_MAX_FDS];
        if (k > VFIO_USER_TRANSPORT_MAX_FDS - *nfds)
            k = VFIO_USER_TRANSPORT_MAX_FDS - *nfds;
        memcpy(got, CMSG_DATA(cm), k * sizeof(int));
        memcpy(fds + *nfds, got, k * sizeof(int));
        *nfds += k;
    }
    if (mh.msg_flags & MSG_CTRUNC) {
        close_fds(fds, *nfds);
        *nfds = 0;
        return -EPROTO;
    }
    if (n == 0) {
        close_fds(fds, *nfds);
        *nfds = 0;
        return -ECONNRESET;
    }
    return n;
}

int64_t vfio_user_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int vfio_user_poll(int sock, short events, int timeout_ms)
{
    int64_t deadline = timeout_ms >= 0 ? vfio_user_now_ms() + timeout_ms : 0;
    struct pollfd p = {.fd = sock, .events = events};
    for (;;) {
        int n = poll(&p, 1, timeout_ms);
        if (n > 0)
            return p.revents;
        if (n == 0)
            return 0;
        if (errno != EINTR)
            return -errno;
        if (timeout_ms >= 0) {
            int64_t left = deadline - vfio_user_now_ms();
            timeout_ms = left > 0 ? (int)left : 0;
        }
    }
}

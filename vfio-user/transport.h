/* SPDX-License-Identifier: MIT */
/*
 * transport.h - AF_UNIX stream I/O with SCM_RIGHTS, one non-blocking
 * system call at a time; the caller owns waiting (poll) and framing.
 */
#ifndef VFIO_USER_TRANSPORT_H
#define VFIO_USER_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Most fds accepted in one receive; more is a protocol error. */
#define VFIO_USER_TRANSPORT_MAX_FDS 64

/**
 * vfio_user_send_some - one non-blocking sendmsg of @len bytes at @buf,
 * attaching @nfds fds (only pass them with the first byte of a message).
 * Returns the bytes sent (> 0), -EAGAIN when the socket is full, -EPIPE
 * / -ECONNRESET when the peer is gone, or another negative errno. Never
 * raises SIGPIPE; retries EINTR itself.
 */
ssize_t vfio_user_send_some(int sock, const void *buf, size_t len, const int *fds, size_t nfds);

/**
 * vfio_user_recv_some - one non-blocking recvmsg into @buf (up to @len
 * bytes). Received fds go to @fds (capacity VFIO_USER_TRANSPORT_MAX_FDS),
 * their count to @nfds; the caller owns them.
 * Returns the bytes read (> 0), -EAGAIN when nothing is there,
 * -ECONNRESET when the peer closed or reset the connection, -EPROTO when
 * the fds did not fit (any that arrived are closed), or another negative
 * errno. Retries EINTR itself.
 */
ssize_t vfio_user_recv_some(int sock, void *buf, size_t len, int *fds, size_t *nfds);

/**
 * vfio_user_poll - waits up to @timeout_ms (negative: forever) for
 * @events on @sock. Returns the revents (> 0), 0 on timeout, or a
 * negative errno. Retries EINTR with the remaining time.
 */
int vfio_user_poll(int sock, short events, int timeout_ms);

/** Monotonic milliseconds. */
int64_t vfio_user_now_ms(void);

#endif /* VFIO_USER_TRANSPORT_H */

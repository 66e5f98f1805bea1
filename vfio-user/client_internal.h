/* SPDX-License-Identifier: MIT */
/*
 * client_internal.h - the client's state, shared by client.c (the
 * message engine) and session.c (set-up, negotiation, teardown).
 */
#ifndef VFIO_USER_CLIENT_INTERNAL_H
#define VFIO_USER_CLIENT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "private.h"
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
    /* > 0 while a callback runs: calls back into the client are refused */
    unsigned in_callback;
    bool connected;
    int last_error;
    vfio_user_client_stats stats;
    uint32_t trace_device; /* the connection's number in trace events */
};

/*
 * vfio_user_client_fail - ends the connection: every request in flight
 * completes with @err (or the error that ended it first). Returns the
 * connection's error.
 */
int vfio_user_client_fail(vfio_user_client *c, int err);

#endif /* VFIO_USER_CLIENT_INTERNAL_H */

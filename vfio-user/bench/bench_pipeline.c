/* SPDX-License-Identifier: MIT */
/*
 * DMA_MAP + DMA_UNMAP pairs per second through the client over a real
 * AF_UNIX socket, pipelined per batch and waited once per batch, against
 * bare 16-byte messages (DEVICE_RESET, header only both ways) pipelined
 * the same way on the same socket in the same run. The two are measured
 * in alternating rounds so machine load hits both alike.
 *
 * The server is an in-process echo thread that answers every message it
 * reads with the smallest valid reply, so the figures measure the client
 * and the socket, not a device. Prints one JSON object per line:
 * "value" is pairs/s, "baseline" bare messages/s, "ratio" value/baseline
 * (the target is >= 0.5).
 */
#include <errno.h>
#include <glib.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "private.h"

#define SERVER_JSON "{\"capabilities\":{\"max_msg_fds\":8,\"max_msg_size\":1048576}}"

typedef struct echo {
    int sock;
    vfio_user_dialect dialect;
    pthread_t thread;
} echo;

/* Appends the reply to the message at @p (complete, @len bytes) to @out. */
static void echo_one(echo *e, const uint8_t *p, size_t len, GByteArray *out)
{
    vfio_user_header h;
    if (vfio_user_header_decode(p, len, &h) < 0 || vfio_user_msg_is_reply(&h))
        return;
    size_t body = 0;
    const uint8_t *src = NULL;
    uint8_t version[4 + sizeof(SERVER_JSON)];
    int op = vfio_user_command_op(e->dialect, h.command);
    if (op == VFIO_USER_OP_VERSION) {
        put_le16(version, 0);
        put_le16(version + 2, 1);
        memcpy(version + 4, SERVER_JSON, sizeof(SERVER_JSON));
        src = version;
        body = sizeof(version);
    } else if (op == VFIO_USER_OP_DMA_UNMAP && e->dialect != VFIO_USER_DIALECT_2021) {
        src = p + 16; /* the reply echoes the 24-byte region */
        body = 24;
    }
    if (h.flags & VFIO_USER_F_NO_REPLY)
        return;
    vfio_user_header r = h;
    r.flags = VFIO_USER_F_TYPE_REPLY;
    r.msg_size = (uint32_t)(16 + body);
    size_t at = out->len;
    g_byte_array_set_size(out, (guint)(at + 16 + body));
    vfio_user_header_encode(&r, out->data + at);
    if (body)
        memcpy(out->data + at + 16, src, body);
}

static void *echo_run(void *arg)
{
    echo *e = arg;
    size_t cap = 1 << 20, have = 0;
    uint8_t *buf = g_malloc(cap);
    GByteArray *out = g_byte_array_sized_new(1 << 16);
    for (;;) {
        char ctrl[CMSG_SPACE(sizeof(int) * 64)];
        struct iovec iov = {.iov_base = buf + have, .iov_len = cap - have};
        struct msghdr mh = {
            .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctrl, .msg_controllen = sizeof(ctrl)};
        ssize_t n = recvmsg(e->sock, &mh, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
            size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 0; i < k; i++) {
                int fd;
                memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
                close(fd);
            }
        }
        have += (size_t)n;
        size_t pos = 0;
        while (have - pos >= 16) {
            uint32_t size = get_le32(buf + pos + 4);
            if (size < 16 || size > cap)
                goto out;
            if (have - pos < size)
                break;
            echo_one(e, buf + pos, size, out);
            pos += size;
        }
        memmove(buf, buf + pos, have - pos);
        have -= pos;
        size_t off = 0;
        while (off < out->len) {
            ssize_t w = send(e->sock, out->data + off, out->len - off, MSG_NOSIGNAL);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                goto out;
            off += (size_t)w;
        }
        g_byte_array_set_size(out, 0);
    }
out:
    g_free(buf);
    g_byte_array_free(out, TRUE);
    close(e->sock);
    return NULL;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void check(int rc, const char *what)
{
    if (rc < 0) {
        fprintf(stderr, "bench_pipeline: %s: %s\n", what, g_strerror(-rc));
        exit(1);
    }
}

static void on_done(void *opaque, int result, const vfio_user_msg *reply)
{
    (void)reply;
    if (result < 0)
        *(int *)opaque = result;
}

/* One batch: @batch map+unmap pairs, submitted then waited once. */
static double pairs_batch(vfio_user_client *c, vfio_user_dma_entry *e, size_t batch)
{
    int err = 0;
    double t0 = now_s();
    vfio_user_msg m;
    memset(&m, 0, sizeof(m));
    if (vfio_user_client_dialect(c) == VFIO_USER_DIALECT_2021) {
        /* Tables: the whole batch in one DMA_MAP and one DMA_UNMAP. */
        m.op = VFIO_USER_OP_DMA_MAP;
        m.dma.entries = e;
        m.dma.count = batch;
        check(vfio_user_client_submit(c, &m, 0, on_done, &err), "submit map");
        m.op = VFIO_USER_OP_DMA_UNMAP;
        check(vfio_user_client_submit(c, &m, 0, on_done, &err), "submit unmap");
    } else {
        m.dma.count = 1;
        for (size_t i = 0; i < batch; i++) {
            m.op = VFIO_USER_OP_DMA_MAP;
            m.dma.entries = &e[i];
            check(vfio_user_client_submit(c, &m, 0, on_done, &err), "submit map");
        }
        for (size_t i = 0; i < batch; i++) {
            m.op = VFIO_USER_OP_DMA_UNMAP;
            m.dma.entries = &e[i];
            check(vfio_user_client_submit(c, &m, 0, on_done, &err), "submit unmap");
        }
    }
    check(vfio_user_client_wait_all(c), "wait");
    check(err, "reply");
    return now_s() - t0;
}

static double bare_batch(vfio_user_client *c, size_t batch)
{
    int err = 0;
    double t0 = now_s();
    vfio_user_msg m;
    memset(&m, 0, sizeof(m));
    m.op = VFIO_USER_OP_DEVICE_RESET;
    for (size_t i = 0; i < batch; i++)
        check(vfio_user_client_submit(c, &m, 0, on_done, &err), "submit bare");
    check(vfio_user_client_wait_all(c), "wait");
    check(err, "reply");
    return now_s() - t0;
}

static void run(vfio_user_dialect d, size_t batch, unsigned rounds)
{
    int sv[2];
    echo e = {.dialect = d};
    GError *err = NULL;
    vfio_user_client_config cfg;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        perror("socketpair");
        exit(1);
    }
    e.sock = sv[1];
    pthread_create(&e.thread, NULL, echo_run, &e);
    vfio_user_client_config_init(&cfg, d);
    cfg.window = (unsigned)(2 * batch);
    vfio_user_client *c = vfio_user_client_new(sv[0], &cfg, NULL, NULL, &err);
    if (!c) {
        fprintf(stderr, "bench_pipeline: %s\n", err->message);
        exit(1);
    }

    vfio_user_dma_entry *ent = g_new0(vfio_user_dma_entry, batch);
    for (size_t i = 0; i < batch; i++)
        ent[i] =
            (vfio_user_dma_entry){.iova = (uint64_t)i << 12, .size = 4096, .prot = 3, .fd = -1};
    double t_pairs = 0, t_bare = 0;
    vfio_user_client_stats s0, s1;
    vfio_user_client_stats_get(c, &s0);
    for (unsigned r = 0; r < rounds; r++) {
        t_pairs += pairs_batch(c, ent, batch);
        t_bare += bare_batch(c, batch);
    }
    vfio_user_client_stats_get(c, &s1);

    double n = (double)batch * rounds;
    double pairs_rate = n / t_pairs, bare_rate = n / t_bare;
    char name[96];
    snprintf(name, sizeof(name), "vfio_user.map_unmap_pairs/%s/batch%zu", vfio_user_dialect_name(d),
             batch);
    printf("{\"bench\": \"%s\", \"value\": %.0f, \"unit\": \"pairs/s\", \"baseline\": %.0f, "
           "\"ratio\": %.2f, \"waits_per_batch\": %.2f}\n",
           name, pairs_rate, bare_rate, pairs_rate / bare_rate,
           (double)(s1.waits - s0.waits) / (2.0 * rounds));
    fflush(stdout);

    g_free(ent);
    vfio_user_client_free(c);
    pthread_join(e.thread, NULL);
}

int main(int argc, char **argv)
{
    unsigned rounds = argc > 1 ? (unsigned)atoi(argv[1]) : 400;
    vfio_user_dialect ds[] = {VFIO_USER_DIALECT_2021, VFIO_USER_DIALECT_0_9_1,
                              VFIO_USER_DIALECT_FINAL};
    for (int i = 0; i < 3; i++) {
        run(ds[i], 32, rounds);
        run(ds[i], 256, rounds / 4 ? rounds / 4 : 1);
    }
    return 0;
}

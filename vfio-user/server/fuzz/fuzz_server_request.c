/* SPDX-License-Identifier: MIT */
/*
 * Fuzzes the server's request decoding and handling: the input's first
 * byte picks a profile and dialect, the rest is the byte stream a client
 * sends on a socket (several messages, any bytes). The server must
 * answer or disconnect, never crash, over-read, leak or hang; afterwards
 * its region table must agree with its own bookkeeping.
 */
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "private.h"

typedef struct feed {
    int fd;
    const uint8_t *data;
    size_t len;
} feed;

static void *writer(void *arg)
{
    feed *f = arg;
    size_t done = 0;

    while (done < f->len) {
        ssize_t n = send(f->fd, f->data + done, f->len - done, MSG_NOSIGNAL);
        if (n <= 0)
            break;
        done += (size_t)n;
    }
    shutdown(f->fd, SHUT_WR);
    return NULL;
}

static void *drainer(void *arg)
{
    int fd = *(int *)arg;
    char buf[65536];

    while (read(fd, buf, sizeof(buf)) > 0)
        ;
    return NULL;
}

static void check_table(vfio_user_server_conn *c)
{
    interval_map_iter it;
    u64_range key, prev = {0, 0};
    vus_region *r;
    size_t n = 0;
    uint64_t bytes = 0;

    interval_map_iter_init(&it, c->dma.map, 0, UINT64_MAX);
    while ((r = interval_map_iter_next(&it, &key))) {
        if (key.first > key.last || (n && key.first <= prev.last))
            abort();
        if (c->dma.logging != (r->dirty != NULL))
            abort();
        bytes += (uint64_t)r->dirty_words * 8;
        prev = key;
        n++;
    }
    if (n != interval_map_count(c->dma.map) || bytes != c->dma.dirty_bytes)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const vfio_user_server_profile profiles[] = {
        VFIO_USER_SERVER_PROFILE_OWN,
        VFIO_USER_SERVER_PROFILE_LIBVFIO_USER_2022,
        VFIO_USER_SERVER_PROFILE_QEMU_7_2,
        VFIO_USER_SERVER_PROFILE_LIBVFIO_USER_2026,
    };
    vfio_user_server_options o;
    vfio_user_server_conn *c;
    pthread_t w, d;
    feed f;
    int sv[2];

    if (size < 1 || size > (1u << 20))
        return 0;
    vfio_user_server_options_init(&o);
    o.profile = profiles[data[0] % 4];
    o.dialect = (vfio_user_dialect)((data[0] >> 2) % 3);
    o.dma_timeout_ms = 1000;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return 0;
    c = vfio_user_server_conn_new(sv[1], &o, NULL);
    if (!c)
        abort();
    f.fd = sv[0];
    f.data = data + 1;
    f.len = size - 1;
    pthread_create(&w, NULL, writer, &f);
    pthread_create(&d, NULL, drainer, &sv[0]);
    while (vfio_user_server_conn_serve_one(c) == 0)
        check_table(c);
    check_table(c);
    /* Closing the server's end ends the drainer. */
    shutdown(sv[1], SHUT_RDWR);
    pthread_join(w, NULL);
    pthread_join(d, NULL);
    vfio_user_server_conn_free(c);
    close(sv[0]);
    return 0;
}

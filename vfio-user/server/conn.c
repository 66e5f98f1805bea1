/* SPDX-License-Identifier: MIT */
/*
 * One client connection: its state, and the loop that reads a message,
 * handles it and answers, in order.
 */
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "private.h"

void vfio_user_server_options_init(vfio_user_server_options *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->profile = VFIO_USER_SERVER_PROFILE_OWN;
    opts->dialect = VFIO_USER_DIALECT_2021;
    opts->max_regions = 65535;
    opts->pgsize = 4096;
    opts->dma_timeout_ms = 10000;
}

vfio_user_server_conn *vfio_user_server_conn_new(int fd, const vfio_user_server_options *opts,
                                                 GError **error)
{
    const vus_profile *prof = vus_profile_get(opts->profile, opts->dialect);
    vfio_user_server_conn *c;

    if (!prof) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                    "unknown server profile %d or dialect %d", (int)opts->profile,
                    (int)opts->dialect);
        return NULL;
    }
    if (!vus_is_pow2(opts->pgsize) || opts->pgsize < 4096 || opts->pgsize > (1u << 30)) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                    "dirty page size %" G_GUINT64_FORMAT
                    " is not a power of two between 4 KiB and 1 GiB",
                    opts->pgsize);
        return NULL;
    }
    if (fd < 0) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "invalid socket fd %d", fd);
        return NULL;
    }
    c = g_new0(vfio_user_server_conn, 1);
    if (vus_dma_init(&c->dma) < 0) {
        g_free(c);
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "out of memory");
        return NULL;
    }
    c->fd = fd;
    c->twin_fd = -1;
    c->opts = *opts;
    c->prof = prof;
    c->pgsize = opts->pgsize;
    c->client_max_fds = VFIO_USER_DEFAULT_MAX_MSG_FDS;
    c->next_id = 1;
    g_queue_init(&c->pending);
    atomic_init(&c->stopping, false);
    return c;
}

void vfio_user_server_conn_free(vfio_user_server_conn *c)
{
    vus_msg *m;

    if (!c)
        return;
    while ((m = g_queue_pop_head(&c->pending))) {
        vus_msg_clear(m);
        g_free(m);
    }
    vus_dma_destroy(&c->dma);
    if (c->twin_fd >= 0)
        close(c->twin_fd);
    close(c->fd);
    g_free(c);
}

/* Ends the connection: the client sees EOF at once, the fd is closed by free. */
static int disconnect(vfio_user_server_conn *c, int err)
{
    c->broken = true;
    shutdown(c->fd, SHUT_RDWR);
    if (c->twin_fd >= 0)
        shutdown(c->twin_fd, SHUT_RDWR);
    return err;
}

int vfio_user_server_conn_serve_one(vfio_user_server_conn *c)
{
    vus_msg local, *m = g_queue_pop_head(&c->pending);
    int ret;

    if (c->broken)
        return -EPROTO;
    if (m) {
        c->pending_bytes -= m->len;
        local = *m;
        g_free(m);
    } else {
        ret = vus_recv(c, c->fd, &local, -1);
        if (ret == -EMSGSIZE) {
            /* The body cannot be skipped safely: answer, then end the connection. */
            vus_log(c, "id %u command %u claims msg_size %u: refused", local.hdr.msg_id,
                    local.hdr.command, local.hdr.msg_size);
            local.hdr.flags &= ~VFIO_USER_F_NO_REPLY;
            vus_reply_error(c, &local, EINVAL);
            return disconnect(c, -EPROTO);
        }
        if (ret < 0)
            return disconnect(c, ret);
    }
    ret = vus_handle(c, &local);
    vus_msg_clear(&local);
    if (ret < 0 || c->broken)
        return disconnect(c, ret < 0 ? ret : -EPROTO);
    return 0;
}

int vfio_user_server_conn_run(vfio_user_server_conn *c)
{
    while (!atomic_load(&c->stopping)) {
        int ret = vfio_user_server_conn_serve_one(c);

        if (ret == -ECONNRESET || atomic_load(&c->stopping))
            return 0;
        if (ret < 0)
            return ret;
    }
    return 0;
}

void vfio_user_server_conn_stop(vfio_user_server_conn *c)
{
    int twin = c->twin_fd;

    atomic_store(&c->stopping, true);
    /* Wakes a thread blocked reading the socket, or waiting for a DMA reply. */
    shutdown(c->fd, SHUT_RDWR);
    if (twin >= 0)
        shutdown(twin, SHUT_RDWR);
}

struct vfio_user_server_thread {
    vfio_user_server_conn *conn;
    GThread *thread;
    int ret;
};

static gpointer serve_thread(gpointer data)
{
    vfio_user_server_thread *t = data;

    t->ret = vfio_user_server_conn_run(t->conn);
    return NULL;
}

vfio_user_server_thread *vfio_user_server_spawn_pair(const vfio_user_server_options *opts,
                                                     int *client_fd, GError **error)
{
    vfio_user_server_thread *t;
    int sv[2];

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno), "socketpair: %s",
                    g_strerror(errno));
        return NULL;
    }
    t = g_new0(vfio_user_server_thread, 1);
    t->conn = vfio_user_server_conn_new(sv[1], opts, error);
    if (!t->conn)
        goto fail_conn;
    t->thread = g_thread_try_new("vfio-user-server", serve_thread, t, error);
    if (!t->thread)
        goto fail_thread;
    *client_fd = sv[0];
    return t;

fail_thread:
    vfio_user_server_conn_free(t->conn); /* closes sv[1] */
    sv[1] = -1;
fail_conn:
    if (sv[1] >= 0)
        close(sv[1]);
    close(sv[0]);
    g_free(t);
    return NULL;
}

vfio_user_server_conn *vfio_user_server_thread_conn(vfio_user_server_thread *t)
{
    return t->conn;
}

int vfio_user_server_join(vfio_user_server_thread *t, bool stop)
{
    int ret;

    if (stop)
        vfio_user_server_conn_stop(t->conn);
    g_thread_join(t->thread);
    ret = t->ret;
    vfio_user_server_conn_free(t->conn);
    g_free(t);
    return ret;
}

size_t vfio_user_server_conn_region_count(const vfio_user_server_conn *c)
{
    return interval_map_count(c->dma.map);
}

size_t vfio_user_server_conn_region_memory(const vfio_user_server_conn *c)
{
    return interval_map_memory(c->dma.map);
}

/* SPDX-License-Identifier: MIT */
/*
 * The listening server: accepts clients on an AF_UNIX socket and serves
 * each from its own thread with its own device instance, so a client's
 * DMA_READ / DMA_WRITE round trips never wait on another client.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "private.h"

typedef struct client {
    vfio_user_server *srv;
    vfio_user_server_conn *conn; /* NULL once the thread has freed it */
    GThread *thread;
    bool done;
} client;

struct vfio_user_server {
    int lfd;
    int wake[2]; /* written by vfio_user_server_stop(), polled by run */
    char *path;
    vfio_user_server_options opts;
    GMutex lock;
    GList *clients; /* client * */
};

vfio_user_server *vfio_user_server_new(const char *path, const vfio_user_server_options *opts,
                                       GError **error)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    vfio_user_server *srv;
    GError *probe_err = NULL;
    vfio_user_server_conn *probe;
    int probe_fd;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                    "socket path '%s' is longer than %zu bytes", path, sizeof(sa.sun_path) - 1);
        return NULL;
    }
    /* Checks the options once, with a throw-away connection on a dummy fd. */
    probe_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    probe = probe_fd >= 0 ? vfio_user_server_conn_new(probe_fd, opts, &probe_err) : NULL;
    if (!probe) {
        if (probe_fd >= 0)
            close(probe_fd);
        if (probe_err)
            g_propagate_error(error, probe_err);
        else
            g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno), "/dev/null: %s",
                        g_strerror(errno));
        return NULL;
    }
    vfio_user_server_conn_free(probe);

    srv = g_new0(vfio_user_server, 1);
    srv->opts = *opts;
    g_mutex_init(&srv->lock);
    srv->wake[0] = srv->wake[1] = -1;
    srv->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (srv->lfd < 0)
        goto fail_errno;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    if (bind(srv->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        goto fail_errno;
    srv->path = g_strdup(path);
    if (listen(srv->lfd, 16) < 0 || pipe2(srv->wake, O_CLOEXEC | O_NONBLOCK) < 0)
        goto fail_errno;
    return srv;

fail_errno:
    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno), "socket '%s': %s", path,
                g_strerror(errno));
    vfio_user_server_free(srv);
    return NULL;
}

static gpointer client_thread(gpointer data)
{
    client *cl = data;
    int ret = vfio_user_server_conn_run(cl->conn);

    if (ret < 0 && cl->srv->opts.verbose)
        g_printerr("vfio-user-server: client ended: %s\n", g_strerror(-ret));
    g_mutex_lock(&cl->srv->lock);
    vfio_user_server_conn_free(cl->conn);
    cl->conn = NULL;
    cl->done = true;
    g_mutex_unlock(&cl->srv->lock);
    return NULL;
}

/* Joins the threads of clients that have gone. */
static void reap(vfio_user_server *srv, bool all)
{
    GList *l, *next;

    g_mutex_lock(&srv->lock);
    for (l = srv->clients; l; l = next) {
        client *cl = l->data;

        next = l->next;
        if (all && !cl->done)
            vfio_user_server_conn_stop(cl->conn);
        if (!all && !cl->done)
            continue;
        srv->clients = g_list_delete_link(srv->clients, l);
        g_mutex_unlock(&srv->lock);
        g_thread_join(cl->thread);
        g_free(cl);
        g_mutex_lock(&srv->lock);
    }
    g_mutex_unlock(&srv->lock);
}

int vfio_user_server_run(vfio_user_server *srv)
{
    for (;;) {
        struct pollfd p[2] = {{.fd = srv->lfd, .events = POLLIN},
                              {.fd = srv->wake[0], .events = POLLIN}};
        g_autoptr(GError) err = NULL;
        vfio_user_server_conn *conn;
        client *cl;
        int fd;

        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (p[1].revents)
            break;
        reap(srv, false);
        if (!(p[0].revents & POLLIN))
            continue;
        fd = accept4(srv->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN || errno == EMFILE ||
                errno == ENFILE)
                continue;
            return -errno;
        }
        conn = vfio_user_server_conn_new(fd, &srv->opts, &err);
        if (!conn) {
            close(fd);
            continue;
        }
        if (srv->opts.verbose)
            g_printerr("vfio-user-server: client connected (fd %d)\n", fd);
        cl = g_new0(client, 1);
        cl->srv = srv;
        cl->conn = conn;
        g_mutex_lock(&srv->lock);
        srv->clients = g_list_prepend(srv->clients, cl);
        cl->thread = g_thread_try_new("vfio-user-client", client_thread, cl, &err);
        if (!cl->thread) {
            srv->clients = g_list_remove(srv->clients, cl);
            vfio_user_server_conn_free(conn);
            g_free(cl);
        }
        g_mutex_unlock(&srv->lock);
    }
    reap(srv, true);
    return 0;
}

void vfio_user_server_stop(vfio_user_server *srv)
{
    char b = 1;
    ssize_t n = write(srv->wake[1], &b, 1);
    (void)n; /* a full pipe already holds a wake-up */
}

unsigned vfio_user_server_clients(vfio_user_server *srv)
{
    unsigned n = 0;

    g_mutex_lock(&srv->lock);
    for (GList *l = srv->clients; l; l = l->next)
        n += !((client *)l->data)->done;
    g_mutex_unlock(&srv->lock);
    return n;
}

void vfio_user_server_free(vfio_user_server *srv)
{
    if (!srv)
        return;
    reap(srv, true);
    if (srv->lfd >= 0)
        close(srv->lfd);
    if (srv->path)
        unlink(srv->path);
    for (int i = 0; i < 2; i++)
        if (srv->wake[i] >= 0)
            close(srv->wake[i]);
    g_mutex_clear(&srv->lock);
    g_free(srv->path);
    g_free(srv);
}

/* SPDX-License-Identifier: MIT */
/*
 * session.c - a client's life: configuration defaults, connecting,
 * VERSION negotiation and the limits it yields, accessors, teardown.
 */
#include <errno.h>
#include <gio/gio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "client_internal.h"

void vfio_user_client_config_init(vfio_user_client_config *cfg, vfio_user_dialect dialect)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->dialect = dialect;
    cfg->window = DEFAULT_WINDOW;
    cfg->timeout_ms = DEFAULT_TIMEOUT_MS;
    vfio_user_caps_init(&cfg->caps);
    cfg->caps.max_msg_fds = DEFAULT_MAX_FDS;
    cfg->caps.max_msg_size = DEFAULT_MAX_RECV;
    cfg->caps.max_data_xfer_size = VFIO_USER_DEFAULT_MAX_DATA_XFER_SIZE;
}

/* ------------------------------------------------------------------ */
/* Life cycle and VERSION                                              */
/* ------------------------------------------------------------------ */

vfio_user_dialect vfio_user_client_dialect(const vfio_user_client *c)
{
    return c->cfg.dialect;
}

const vfio_user_caps *vfio_user_client_server_caps(const vfio_user_client *c)
{
    return &c->server;
}

size_t vfio_user_client_max_msg_size(const vfio_user_client *c)
{
    return c->max_send;
}

bool vfio_user_client_connected(const vfio_user_client *c)
{
    return c->connected;
}

int vfio_user_client_last_error(const vfio_user_client *c)
{
    return c->last_error;
}

void vfio_user_client_stats_get(const vfio_user_client *c, vfio_user_client_stats *out)
{
    *out = c->stats;
}

typedef struct version_ctx {
    vfio_user_client *c;
    bool done, ok;
    int transport_err;
    GError *error;
} version_ctx;

static void version_done(void *opaque, int result, const vfio_user_msg *reply)
{
    version_ctx *v = opaque;
    vfio_user_client *c = v->c;
    v->done = true;
    if (!reply && result != -EBADMSG && result != -EPROTO) {
        v->transport_err = result; /* reported by negotiate() with its own code */
        return;
    }
    if (!reply) {
        g_set_error(&v->error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                    "vfio-user VERSION reply is malformed (%s): a short body, or JSON "
                    "data without its terminating NUL",
                    g_strerror(-result));
        return;
    }
    if (!vfio_user_version_check(&c->cfg.caps, reply, &c->server, &v->error))
        return;
    if (c->server.twin_socket) {
        /* The client never offers twin-socket mode; enabling it anyway breaks the spec. */
        g_set_error(&v->error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                    "vfio-user server enabled twin_socket, which the client did not offer");
        return;
    }
    v->ok = true;
}

static bool negotiate(vfio_user_client *c, GError **error)
{
    version_ctx v = {.c = c};
    vfio_user_msg m;
    vfio_user_caps offer = c->cfg.caps;

    offer.twin_socket = false;
    offer.unmap_partial = false;
    /* Each spec defines one of the two size limits; offer only that one. */
    if (c->cfg.dialect == VFIO_USER_DIALECT_2021)
        offer.max_data_xfer_size = 0;
    else
        offer.max_msg_size = 0;
    /* A server's DMA_WRITE carries max_data_xfer_size bytes after a 32-byte
     * prefix: never offer more than a message we can receive holds. */
    if (offer.max_data_xfer_size && c->max_recv > 32 && offer.max_data_xfer_size > c->max_recv - 32)
        offer.max_data_xfer_size = c->max_recv - 32;
    g_autofree char *json = vfio_user_caps_to_json(&offer);
    memset(&m, 0, sizeof(m));
    m.op = VFIO_USER_OP_VERSION;
    m.version.major = VFIO_USER_MAJOR;
    m.version.minor = VFIO_USER_MINOR;
    m.version.json = json;
    m.version.json_len = strlen(json) + 1;

    int rc = vfio_user_client_submit(c, &m, 0, version_done, &v);
    if (rc == 0)
        rc = vfio_user_client_wait_all(c);
    if (rc == 0 && v.transport_err)
        rc = v.transport_err;
    if (rc < 0 && !v.error) {
        int code = rc == -ETIMEDOUT                    ? G_IO_ERROR_TIMED_OUT
                   : rc == -ECONNRESET || rc == -EPIPE ? G_IO_ERROR_CONNECTION_CLOSED
                                                       : G_IO_ERROR_FAILED;
        g_set_error(error, G_IO_ERROR, code, "vfio-user VERSION negotiation failed: %s",
                    g_strerror(-rc));
        return false;
    }
    if (!v.ok) {
        if (v.error)
            g_propagate_error(error, v.error);
        else
            g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                        "vfio-user VERSION negotiation got no reply");
        return false;
    }

    /* What the server can receive bounds every message we send. */
    if (c->server.max_msg_size)
        c->max_send = c->server.max_msg_size;
    else if (c->server.max_data_xfer_size)
        c->max_send = c->server.max_data_xfer_size + VFIO_USER_HEADER_SIZE +
                      sizeof(struct vfio_user_region_access_wire);
    else if (c->cfg.dialect == VFIO_USER_DIALECT_2021)
        c->max_send = VFIO_USER_DEFAULT_MAX_MSG_SIZE;
    else
        c->max_send = VFIO_USER_DEFAULT_MAX_DATA_XFER_SIZE + 32;
    if (!c->server.max_data_xfer_size)
        c->server.max_data_xfer_size = c->max_send - 32;
    return true;
}

vfio_user_client *vfio_user_client_new(int fd, const vfio_user_client_config *cfg,
                                       const vfio_user_client_ops *ops, void *opaque,
                                       GError **error)
{
    vfio_user_client *c;

    if (!cfg || !vfio_user_dialect_name(cfg->dialect) || cfg->window > MAX_WINDOW || fd < 0) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                    "vfio-user client: invalid configuration (dialect, window <= %d, fd)",
                    MAX_WINDOW);
        return NULL;
    }
    c = g_new0(vfio_user_client, 1);
    c->sock = fd;
    c->cfg = *cfg;
    if (c->cfg.window == 0)
        c->cfg.window = DEFAULT_WINDOW;
    if (c->cfg.timeout_ms == 0)
        c->cfg.timeout_ms = DEFAULT_TIMEOUT_MS;
    if (c->cfg.caps.max_msg_fds == 0)
        c->cfg.caps.max_msg_fds = DEFAULT_MAX_FDS;
    if (c->cfg.caps.max_msg_size == 0)
        c->cfg.caps.max_msg_size = DEFAULT_MAX_RECV;
    if (c->cfg.caps.max_data_xfer_size == 0)
        c->cfg.caps.max_data_xfer_size = VFIO_USER_DEFAULT_MAX_DATA_XFER_SIZE;
    if (ops)
        c->ops = *ops;
    c->opaque = opaque;
    c->max_recv = c->cfg.caps.max_msg_size;
    /* VERSION goes out before the server's limits are known: the spec minimum. */
    c->max_send = VFIO_USER_DEFAULT_MAX_MSG_SIZE;
    vfio_user_caps_init(&c->server);
    c->server.max_msg_fds = 0;
    c->ring = g_new0(pending, c->cfg.window);
    c->next_id = 1;
    c->connected = true;
    static uint32_t next_trace_device;
    c->trace_device = __atomic_fetch_add(&next_trace_device, 1, __ATOMIC_RELAXED);

    if (!negotiate(c, error)) {
        c->sock = -1; /* the caller keeps the fd on failure */
        vfio_user_client_free(c);
        return NULL;
    }
    return c;
}

vfio_user_client *vfio_user_client_connect(const char *path, const vfio_user_client_config *cfg,
                                           const vfio_user_client_ops *ops, void *opaque,
                                           GError **error)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (!path || strlen(path) >= sizeof(sa.sun_path)) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                    "vfio-user socket path is missing or longer than %zu bytes",
                    sizeof(sa.sun_path) - 1);
        return NULL;
    }
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int e = errno;
        g_set_error(error, G_IO_ERROR, g_io_error_from_errno(e), "socket: %s", g_strerror(e));
        return NULL;
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;
        g_set_error(error, G_IO_ERROR, g_io_error_from_errno(e), "connect to %s: %s", path,
                    g_strerror(e));
        close(fd);
        return NULL;
    }
    vfio_user_client *c = vfio_user_client_new(fd, cfg, ops, opaque, error);
    if (!c)
        close(fd);
    return c;
}

void vfio_user_client_free(vfio_user_client *c)
{
    if (!c)
        return;
    if (c->connected) {
        c->connected = false;
        c->last_error = -ECONNABORTED;
    }
    vfio_user_client_fail(c, -ECONNABORTED);
    if (c->sock >= 0)
        close(c->sock);
    for (unsigned i = 0; i < c->cfg.window; i++)
        g_free(c->ring[i].req);
    g_free(c->ring);
    g_free(c->rbuf);
    g_free(c->entries);
    g_free(c->sbuf);
    g_free(c->obuf);
    g_free(c);
}

/* Used by the synchronous commands to take an fd from the reply being completed. */
int vfio_user_client_take_fd(vfio_user_client *c)
{
    if (!c->cur_fds || c->cur_nfds == 0)
        return -1;
    int fd = c->cur_fds[0];
    c->cur_fds[0] = -1;
    return fd;
}

size_t vfio_user_client_max_recv(const vfio_user_client *c)
{
    return c->max_recv;
}

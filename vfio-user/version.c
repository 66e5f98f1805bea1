/* SPDX-License-Identifier: MIT */
/*
 * version.c - VERSION capabilities: the JSON object both sides exchange,
 * read and written with json-glib, and the checks on the server's reply.
 */
#include <errno.h>
#include <gio/gio.h>
#include <json-glib/json-glib.h>
#include <string.h>

#include "private.h"

void vfio_user_caps_init(vfio_user_caps *caps)
{
    memset(caps, 0, sizeof(*caps));
    caps->max_msg_fds = VFIO_USER_DEFAULT_MAX_MSG_FDS;
    caps->twin_socket_fd_index = -1;
}

char *vfio_user_caps_to_json(const vfio_user_caps *caps)
{
    g_autoptr(JsonBuilder) b = json_builder_new();

    json_builder_begin_object(b);
    json_builder_set_member_name(b, "capabilities");
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "max_msg_fds");
    json_builder_add_int_value(b, caps->max_msg_fds);
    if (caps->max_msg_size) {
        json_builder_set_member_name(b, "max_msg_size");
        json_builder_add_int_value(b, (gint64)caps->max_msg_size);
    }
    if (caps->max_data_xfer_size) {
        json_builder_set_member_name(b, "max_data_xfer_size");
        json_builder_add_int_value(b, (gint64)caps->max_data_xfer_size);
    }
    if (caps->max_dma_maps) {
        json_builder_set_member_name(b, "max_dma_maps");
        json_builder_add_int_value(b, (gint64)caps->max_dma_maps);
    }
    if (caps->migration) {
        json_builder_set_member_name(b, "migration");
        json_builder_begin_object(b);
        if (caps->pgsize) {
            json_builder_set_member_name(b, "pgsize");
            json_builder_add_int_value(b, (gint64)caps->pgsize);
        }
        if (caps->pgsizes) {
            json_builder_set_member_name(b, "pgsizes");
            json_builder_add_int_value(b, (gint64)caps->pgsizes);
        }
        json_builder_end_object(b);
    }
    if (caps->twin_socket) {
        json_builder_set_member_name(b, "twin_socket");
        json_builder_begin_object(b);
        json_builder_set_member_name(b, "supported");
        json_builder_add_boolean_value(b, TRUE);
        if (caps->twin_socket_fd_index >= 0) {
            json_builder_set_member_name(b, "fd_index");
            json_builder_add_int_value(b, caps->twin_socket_fd_index);
        }
        json_builder_end_object(b);
    }
    if (caps->unmap_partial) {
        json_builder_set_member_name(b, "unmap_partial");
        json_builder_add_boolean_value(b, TRUE);
    }
    json_builder_end_object(b);
    json_builder_end_object(b);

    g_autoptr(JsonGenerator) gen = json_generator_new();
    g_autoptr(JsonNode) root = json_builder_get_root(b);
    json_generator_set_root(gen, root);
    return json_generator_to_data(gen, NULL);
}

/* A non-negative integer member no larger than @max; absent leaves @out. */
static bool get_uint(JsonObject *obj, const char *name, uint64_t max, uint64_t *out, GError **error)
{
    JsonNode *n = json_object_get_member(obj, name);
    if (!n)
        return true;
    if (!JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_INT64) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                    "vfio-user capability \"%s\" is not an integer", name);
        return false;
    }
    gint64 v = json_node_get_int(n);
    if (v < 0 || (uint64_t)v > max) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                    "vfio-user capability \"%s\" = %" G_GINT64_FORMAT " is out of range", name, v);
        return false;
    }
    *out = (uint64_t)v;
    return true;
}

static bool get_bool(JsonObject *obj, const char *name, bool *out, GError **error)
{
    JsonNode *n = json_object_get_member(obj, name);
    if (!n)
        return true;
    if (!JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_BOOLEAN) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                    "vfio-user capability \"%s\" is not a boolean", name);
        return false;
    }
    *out = json_node_get_boolean(n);
    return true;
}

static JsonObject *get_object(JsonObject *obj, const char *name, GError **error)
{
    JsonNode *n = json_object_get_member(obj, name);
    if (!n)
        return NULL;
    if (!JSON_NODE_HOLDS_OBJECT(n)) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                    "vfio-user capability \"%s\" is not an object", name);
        return NULL;
    }
    return json_node_get_object(n);
}

static bool pow2(uint64_t v)
{
    return v && (v & (v - 1)) == 0;
}

static bool parse_caps(JsonObject *c, vfio_user_caps *caps, GError **error)
{
    uint64_t v;
    GError *err = NULL;
    JsonObject *o;

    v = caps->max_msg_fds;
    if (!get_uint(c, "max_msg_fds", 1024, &v, error))
        return false;
    caps->max_msg_fds = (uint32_t)v;
    if (!get_uint(c, "max_msg_size", UINT32_MAX, &caps->max_msg_size, error) ||
        !get_uint(c, "max_data_xfer_size", UINT32_MAX, &caps->max_data_xfer_size, error) ||
        !get_uint(c, "max_dma_maps", UINT64_MAX >> 1, &caps->max_dma_maps, error) ||
        !get_bool(c, "unmap_partial", &caps->unmap_partial, error))
        return false;
    if (caps->max_msg_size && caps->max_msg_size < VFIO_USER_HEADER_SIZE + 32) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                    "vfio-user capability \"max_msg_size\" = %" G_GUINT64_FORMAT
                    " is too small for any message",
                    caps->max_msg_size);
        return false;
    }

    o = get_object(c, "migration", &err);
    if (err) {
        g_propagate_error(error, err);
        return false;
    }
    if (o) {
        caps->migration = true;
        if (!get_uint(o, "pgsize", UINT64_MAX >> 1, &caps->pgsize, error) ||
            !get_uint(o, "pgsizes", UINT64_MAX >> 1, &caps->pgsizes, error))
            return false;
        if (caps->pgsize && !pow2(caps->pgsize)) {
            g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                        "vfio-user migration pgsize %" G_GUINT64_FORMAT " is not a power of two",
                        caps->pgsize);
            return false;
        }
    }

    o = get_object(c, "twin_socket", &err);
    if (err) {
        g_propagate_error(error, err);
        return false;
    }
    if (o) {
        uint64_t idx = UINT64_MAX;
        if (!get_bool(o, "supported", &caps->twin_socket, error) ||
            !get_uint(o, "fd_index", 1023, &idx, error))
            return false;
        caps->twin_socket_fd_index = idx == UINT64_MAX ? -1 : (int)idx;
    }
    return true;
}

bool vfio_user_caps_from_json(const char *json, size_t len, vfio_user_caps *caps, GError **error)
{
    vfio_user_caps_init(caps);
    if (!json || len == 0) /* no version data: every default applies */
        return true;
    if (json[len - 1] != '\0' || memchr(json, '\0', len - 1)) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                    "vfio-user VERSION data is not a single NUL-terminated string");
        return false;
    }

    g_autoptr(JsonParser) parser = json_parser_new();
    GError *err = NULL;
    if (!json_parser_load_from_data(parser, json, (gssize)(len - 1), &err)) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                    "vfio-user VERSION data is not valid JSON: %s", err->message);
        g_error_free(err);
        return false;
    }
    JsonNode *root = json_parser_get_root(parser);
    if (!root || !JSON_NODE_HOLDS_OBJECT(root)) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                    "vfio-user VERSION data is not a JSON object");
        return false;
    }
    JsonObject *c = get_object(json_node_get_object(root), "capabilities", &err);
    if (err) {
        g_propagate_error(error, err);
        return false;
    }
    if (!c)
        return true;
    return parse_caps(c, caps, error);
}

bool vfio_user_version_check(const vfio_user_caps *offered, const vfio_user_msg *reply,
                             vfio_user_caps *server, GError **error)
{
    if (reply->op != VFIO_USER_OP_VERSION || !vfio_user_msg_is_reply(&reply->hdr)) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                    "vfio-user server answered VERSION with another message (command %u)",
                    reply->hdr.command);
        return false;
    }
    if (reply->hdr.flags & VFIO_USER_F_ERROR) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                    "vfio-user server refused VERSION: %s",
                    g_strerror(reply->hdr.error_no ? (int)reply->hdr.error_no : EIO));
        return false;
    }
    if (reply->version.major != VFIO_USER_MAJOR || reply->version.minor > VFIO_USER_MINOR) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                    "vfio-user server speaks version %u.%u; this client speaks %u.%u",
                    reply->version.major, reply->version.minor, VFIO_USER_MAJOR, VFIO_USER_MINOR);
        return false;
    }
    if (!vfio_user_caps_from_json(reply->version.json, reply->version.json_len, server, error))
        return false;
    if (server->twin_socket && server->twin_socket_fd_index < 0) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                    "vfio-user server enabled twin_socket without an fd_index");
        return false;
    }
    if (server->migration && server->pgsize && offered->migration && offered->pgsize &&
        server->pgsize > offered->pgsize) {
        /* The smaller of the two is used; a larger answer breaks that rule. */
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                    "vfio-user server answered migration pgsize %" G_GUINT64_FORMAT
                    " above the %" G_GUINT64_FORMAT " offered",
                    server->pgsize, offered->pgsize);
        return false;
    }
    return true;
}

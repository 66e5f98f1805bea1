/* SPDX-License-Identifier: MIT */
/*
 * VERSION capabilities: JSON both ways, the replies real servers gave,
 * and clear errors for bad data.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <gio/gio.h>
#include <string.h>

#include "vfio-user.h"

static bool parse(const char *json, vfio_user_caps *caps, GError **err)
{
    return vfio_user_caps_from_json(json, strlen(json) + 1, caps, err);
}

Test(vfio_user_version, parses_the_libvfio_user_2022_reply)
{
    vfio_user_caps c;
    GError *err = NULL;
    cr_assert(parse("{\"capabilities\":{\"max_msg_fds\":8,\"max_data_xfer_size\":1048576,"
                    "\"migration\":{\"pgsize\":4096}}}",
                    &c, &err));
    cr_assert_eq(c.max_msg_fds, 8);
    cr_assert_eq(c.max_data_xfer_size, 1048576);
    cr_assert(c.migration);
    cr_assert_eq(c.pgsize, 4096);
    cr_assert_not(c.twin_socket);
}

Test(vfio_user_version, parses_spaced_json_with_twin_socket_from_libvfio_user_2026)
{
    vfio_user_caps c;
    GError *err = NULL;
    cr_assert(parse("{ \"capabilities\": { \"max_msg_fds\": 8, \"max_data_xfer_size\": 1048576, "
                    "\"migration\": { \"pgsize\": 4096 }, \"twin_socket\": { \"supported\": "
                    "true, \"fd_index\": 0 } } }",
                    &c, &err));
    cr_assert(c.twin_socket);
    cr_assert_eq(c.twin_socket_fd_index, 0);
}

Test(vfio_user_version, qemu_reply_without_migration_means_no_migration)
{
    vfio_user_caps c;
    GError *err = NULL;
    cr_assert(
        parse("{\"capabilities\":{\"max_msg_fds\":8,\"max_data_xfer_size\":1048576}}", &c, &err));
    cr_assert_not(c.migration);
    cr_assert_eq(c.pgsize, 0);
}

Test(vfio_user_version, unknown_capabilities_are_ignored_and_defaults_apply)
{
    vfio_user_caps c;
    GError *err = NULL;
    cr_assert(parse("{\"capabilities\":{\"future\":[1,2],\"unmap_partial\":true}}", &c, &err));
    cr_assert_eq(c.max_msg_fds, VFIO_USER_DEFAULT_MAX_MSG_FDS);
    cr_assert(c.unmap_partial);
    cr_assert(parse("{}", &c, &err));
    cr_assert_eq(c.max_msg_fds, 1);
}

Test(vfio_user_version, malformed_json_is_a_clear_error)
{
    vfio_user_caps c;
    GError *err = NULL;
    cr_assert_not(parse("{\"capabilities\":{\"max_msg_fds\":8", &c, &err));
    cr_assert(g_error_matches(err, G_IO_ERROR, G_IO_ERROR_INVALID_DATA));
    cr_assert(strstr(err->message, "not valid JSON"));
    g_clear_error(&err);
    cr_assert_not(parse("[1]", &c, &err));
    cr_assert(g_error_matches(err, G_IO_ERROR, G_IO_ERROR_INVALID_DATA));
    g_clear_error(&err);
    cr_assert_not(parse("{\"capabilities\":{\"max_msg_fds\":\"8\"}}", &c, &err));
    cr_assert(strstr(err->message, "max_msg_fds"));
    g_clear_error(&err);
    cr_assert_not(parse("{\"capabilities\":{\"max_msg_fds\":-1}}", &c, &err));
    g_clear_error(&err);
    cr_assert_not(parse("{\"capabilities\":{\"migration\":{\"pgsize\":3000}}}", &c, &err));
    g_clear_error(&err);
}

Test(vfio_user_version, a_missing_nul_is_a_clear_error)
{
    vfio_user_caps c;
    GError *err = NULL;
    const char *j = "{}";
    cr_assert_not(vfio_user_caps_from_json(j, 2, &c, &err));
    cr_assert(strstr(err->message, "NUL"));
    g_clear_error(&err);
}

Test(vfio_user_version, caps_written_as_json_parse_back)
{
    vfio_user_caps in, out;
    GError *err = NULL;
    vfio_user_caps_init(&in);
    in.max_msg_fds = 16;
    in.max_msg_size = 65536;
    in.max_dma_maps = 1000;
    in.migration = true;
    in.pgsize = 4096;
    in.pgsizes = 4096 | 2097152;
    in.twin_socket = true;
    in.unmap_partial = true;
    g_autofree char *json = vfio_user_caps_to_json(&in);
    cr_assert(vfio_user_caps_from_json(json, strlen(json) + 1, &out, &err));
    cr_assert_eq(out.max_msg_fds, 16);
    cr_assert_eq(out.max_msg_size, 65536);
    cr_assert_eq(out.max_dma_maps, 1000);
    cr_assert_eq(out.pgsizes, 4096 | 2097152);
    cr_assert(out.twin_socket);
    cr_assert_eq(out.twin_socket_fd_index, -1);
    cr_assert(out.unmap_partial);
}

static vfio_user_msg version_reply(uint16_t major, uint16_t minor, const char *json)
{
    vfio_user_msg m;
    memset(&m, 0, sizeof(m));
    m.op = VFIO_USER_OP_VERSION;
    m.hdr.flags = VFIO_USER_F_TYPE_REPLY;
    m.version.major = major;
    m.version.minor = minor;
    m.version.json = json;
    m.version.json_len = json ? strlen(json) + 1 : 0;
    return m;
}

Test(vfio_user_version, an_unsupported_major_version_is_refused)
{
    vfio_user_caps offered, server;
    GError *err = NULL;
    vfio_user_caps_init(&offered);
    vfio_user_msg r = version_reply(1, 0, "{}");
    cr_assert_not(vfio_user_version_check(&offered, &r, &server, &err));
    cr_assert(g_error_matches(err, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED));
    g_clear_error(&err);
    r = version_reply(0, 1, NULL);
    cr_assert(vfio_user_version_check(&offered, &r, &server, &err));
    cr_assert_eq(server.max_msg_fds, 1);
}

Test(vfio_user_version, twin_socket_without_fd_index_is_inconsistent)
{
    vfio_user_caps offered, server;
    GError *err = NULL;
    vfio_user_caps_init(&offered);
    offered.twin_socket = true;
    vfio_user_msg r =
        version_reply(0, 1, "{\"capabilities\":{\"twin_socket\":{\"supported\":true}}}");
    cr_assert_not(vfio_user_version_check(&offered, &r, &server, &err));
    cr_assert(g_error_matches(err, G_IO_ERROR, G_IO_ERROR_INVALID_DATA));
    g_clear_error(&err);
}

Test(vfio_user_version, a_server_pgsize_above_the_offer_is_refused)
{
    vfio_user_caps offered, server;
    GError *err = NULL;
    vfio_user_caps_init(&offered);
    offered.migration = true;
    offered.pgsize = 4096;
    vfio_user_msg r = version_reply(0, 1, "{\"capabilities\":{\"migration\":{\"pgsize\":8192}}}");
    cr_assert_not(vfio_user_version_check(&offered, &r, &server, &err));
    g_clear_error(&err);
    r = version_reply(0, 1, "{\"capabilities\":{\"migration\":{\"pgsize\":4096}}}");
    cr_assert(vfio_user_version_check(&offered, &r, &server, &err));
}

Test(vfio_user_version, an_error_reply_to_version_is_reported)
{
    vfio_user_caps offered, server;
    GError *err = NULL;
    vfio_user_caps_init(&offered);
    vfio_user_msg r = version_reply(0, 1, NULL);
    r.hdr.flags |= VFIO_USER_F_ERROR;
    r.hdr.error_no = EINVAL;
    cr_assert_not(vfio_user_version_check(&offered, &r, &server, &err));
    cr_assert(strstr(err->message, "refused"));
    g_clear_error(&err);
}

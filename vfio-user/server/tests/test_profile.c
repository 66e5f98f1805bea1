/* SPDX-License-Identifier: MIT */
/* Profiles: names, VERSION answers and the negotiation rules of each. */
#include "raw.h"

static int cfd;
static srv_thread *srv;

static void start(vfio_user_server_profile p, vfio_user_dialect dialect)
{
    vfio_user_server_options o;

    vfio_user_server_options_init(&o);
    o.profile = p;
    o.dialect = dialect;
    srv = srv_start(&o, &cfd);
}

static void finish(void)
{
    close(cfd);
    srv_join(srv);
}

Test(profile, names_parse_and_print_back)
{
    static const char *const names[] = {"own", "libvfio-user-2022", "qemu-7.2",
                                        "libvfio-user-2026"};
    vfio_user_server_profile p;

    for (size_t i = 0; i < G_N_ELEMENTS(names); i++) {
        cr_assert_eq(vfio_user_server_profile_parse(names[i], &p), 0);
        cr_assert_str_eq(vfio_user_server_profile_name(p), names[i]);
    }
    cr_assert_eq(vfio_user_server_profile_parse("qemu-8.0", &p), -EINVAL);
    cr_assert_eq(vfio_user_server_profile_parse(NULL, &p), -EINVAL);
    cr_assert_null(vfio_user_server_profile_name((vfio_user_server_profile)42));
}

Test(profile, own_2021_answers_with_its_exact_capabilities)
{
    raw_msg r;

    start(VFIO_USER_SERVER_PROFILE_OWN, VFIO_USER_DIALECT_2021);
    cr_assert_eq(raw_version(cfd, RAW_CAPS, &r), 0);
    cr_assert_str_eq((char *)r.body + 4,
                     "{\"capabilities\":{\"max_msg_fds\":8,\"max_msg_size\":4194304,"
                     "\"max_data_xfer_size\":1048576,\"max_dma_maps\":65535,"
                     "\"migration\":{\"pgsize\":4096},\"unmap_partial\":true}}");
    raw_msg_free(&r);
    finish();
}

Test(profile, own_takes_the_client_page_size_and_refuses_a_bad_one)
{
    raw_msg r;

    start(VFIO_USER_SERVER_PROFILE_OWN, VFIO_USER_DIALECT_0_9_1);
    cr_assert_eq(raw_version(cfd, "{\"capabilities\":{\"migration\":{\"pgsize\":3000}}}", NULL),
                 EINVAL);
    cr_assert_eq(raw_version(cfd, "{\"capabilities\":{\"migration\":{\"pgsize\":65536}}}", &r), 0);
    cr_assert_not_null(strstr((char *)r.body + 4, "\"pgsize\":65536"));
    raw_msg_free(&r);
    finish();
}

Test(profile, libvfio_user_2022_refuses_an_unsupported_page_size_and_disconnects)
{
    raw_msg r;

    start(VFIO_USER_SERVER_PROFILE_LIBVFIO_USER_2022, VFIO_USER_DIALECT_2021);
    cr_assert_eq(raw_version(cfd, "{\"capabilities\":{\"migration\":{\"pgsize\":8192}}}", NULL),
                 EINVAL);
    cr_assert_eq(raw_recv(cfd, &r), -ECONNRESET);
    finish();
}

Test(profile, qemu_7_2_never_offers_migration)
{
    raw_msg r;
    uint8_t b[8];

    start(VFIO_USER_SERVER_PROFILE_QEMU_7_2, VFIO_USER_DIALECT_2021);
    cr_assert_eq(raw_version(cfd, RAW_CAPS, &r), 0);
    cr_assert_null(strstr((char *)r.body + 4, "migration"));
    raw_msg_free(&r);
    vus_put32(b, 8);
    vus_put32(b + 4, VFIO_USER_DIRTY_PAGES_FLAG_START);
    cr_assert_eq(raw_call(cfd, 1, VFIO_USER_DIRTY_PAGES, b, 8, NULL, 0, NULL), ENOTSUP);
    finish();
}

Test(profile, libvfio_user_2026_hands_out_a_twin_socket_for_its_own_requests)
{
    const char *caps =
        "{\"capabilities\":{\"max_msg_fds\":8,\"twin_socket\":{\"supported\":true}}}";
    raw_msg r, q;
    uint8_t b[32];
    int twin;

    start(VFIO_USER_SERVER_PROFILE_LIBVFIO_USER_2026, VFIO_USER_DIALECT_2021);
    cr_assert_eq(raw_version(cfd, caps, &r), 0);
    cr_assert_str_eq((char *)r.body + 4,
                     "{ \"capabilities\": { \"max_msg_fds\": 8, \"max_data_xfer_size\": 1048576, "
                     "\"migration\": { \"pgsize\": 4096 }, \"twin_socket\": { \"supported\": true, "
                     "\"fd_index\": 0 } } }");
    cr_assert_eq(r.nfds, 1);
    twin = r.fd0;
    r.fd0 = -1;
    raw_msg_free(&r);

    raw_map_091(b, 0x100000, 0x1000, 0);
    cr_assert_eq(raw_call(cfd, 1, VFIO_USER_DMA_MAP, b, 32, NULL, 0, NULL), 0);
    cr_assert_eq(raw_reg_write(cfd, 2, VFIO_USER_SAMPLE_DMA_ADDR, 0x100000, 8), 0);
    cr_assert_eq(raw_reg_write(cfd, 3, VFIO_USER_SAMPLE_DMA_LEN, 4, 4), 0);
    vus_put64(b, VFIO_USER_SAMPLE_DMA_CMD);
    vus_put32(b + 8, 0);
    vus_put32(b + 12, 4);
    vus_put32(b + 16, VFIO_USER_SAMPLE_CMD_WRITE);
    cr_assert_eq(raw_send(cfd, 4, VFIO_USER_REGION_WRITE, b, 20, NULL, 0), 0);
    /* The server's DMA_WRITE arrives on the twin socket, not the main one. */
    cr_assert_eq(raw_recv(twin, &q), 0);
    cr_assert_eq(q.cmd, VFIO_USER_DMA_WRITE);
    cr_assert_eq(q.len, 16 + 4);
    cr_assert_eq(raw_send_hdr(twin, q.id, q.cmd, 32, VFIO_USER_F_TYPE_REPLY, q.body, 16, NULL, 0),
                 0);
    raw_msg_free(&q);
    cr_assert_eq(raw_recv(cfd, &r), 0);
    cr_assert_eq(r.id, 4);
    cr_assert_eq(r.flags, VFIO_USER_F_TYPE_REPLY);
    raw_msg_free(&r);
    cr_assert_eq(raw_reg_read(cfd, 5, VFIO_USER_SAMPLE_DMA_STATUS, 4), 0);
    close(twin);
    finish();
}

Test(profile, libvfio_user_2022_refuses_an_unmap_argsz_over_1_mib)
{
    uint8_t b[32];

    start(VFIO_USER_SERVER_PROFILE_LIBVFIO_USER_2022, VFIO_USER_DIALECT_2021);
    cr_assert_eq(raw_version(cfd, RAW_CAPS, NULL), 0);
    raw_map_091(b, 0x100000, 0x1000, 0);
    cr_assert_eq(raw_call(cfd, 1, VFIO_USER_DMA_MAP, b, 32, NULL, 0, NULL), 0);
    vus_put32(b, (1u << 20) + 1);
    vus_put32(b + 4, 0);
    vus_put64(b + 8, 0x100000);
    vus_put64(b + 16, 0x1000);
    cr_assert_eq(raw_call(cfd, 2, VFIO_USER_DMA_UNMAP, b, 24, NULL, 0, NULL), EINVAL);
    vus_put32(b, 1u << 20);
    cr_assert_eq(raw_call(cfd, 3, VFIO_USER_DMA_UNMAP, b, 24, NULL, 0, NULL), 0);
    finish();
}

Test(profile, peers_refuse_a_region_over_8_tib_and_a_17th_region)
{
    uint8_t b[32];

    start(VFIO_USER_SERVER_PROFILE_QEMU_7_2, VFIO_USER_DIALECT_2021);
    cr_assert_eq(raw_version(cfd, RAW_CAPS, NULL), 0);
    raw_map_091(b, 0, (8ull << 40) + 4096, 0);
    cr_assert_eq(raw_call(cfd, 1, VFIO_USER_DMA_MAP, b, 32, NULL, 0, NULL), ENOSPC);
    for (uint16_t i = 0; i < 16; i++) {
        raw_map_091(b, 0x10000ull * i, 0x1000, 0);
        cr_assert_eq(raw_call(cfd, (uint16_t)(2 + i), VFIO_USER_DMA_MAP, b, 32, NULL, 0, NULL), 0);
    }
    raw_map_091(b, 0x10000ull * 16, 0x1000, 0);
    cr_assert_eq(raw_call(cfd, 20, VFIO_USER_DMA_MAP, b, 32, NULL, 0, NULL), EINVAL);
    raw_map_091(b, 0x800, 0x1000, 0);
    cr_assert_eq(raw_call(cfd, 21, VFIO_USER_DMA_MAP, b, 32, NULL, 0, NULL), EINVAL,
                 "an overlap is EINVAL");
    finish();
}

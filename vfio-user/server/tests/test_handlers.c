/* SPDX-License-Identifier: MIT */
/* Request handling over a real socket: every dialect, good and bad requests. */
#include "raw.h"

static int cfd;
static srv_thread *srv;
static int fds_before;

/* Starts a PROFILE_OWN server in @dialect; @hello also sends VERSION. */
static void start(vfio_user_dialect dialect, bool hello)
{
    vfio_user_server_options o;

    fds_before = count_fds();
    vfio_user_server_options_init(&o);
    o.dialect = dialect;
    srv = srv_start(&o, &cfd);
    if (hello)
        cr_assert_eq(raw_version(cfd, RAW_CAPS, NULL), 0);
}

/* Ends the connection and checks that no fd leaked. */
static void finish(void)
{
    close(cfd);
    srv_join(srv);
    cr_assert_eq(count_fds(), fds_before, "fds leaked");
}

static size_t regions(void)
{
    return vfio_user_server_conn_region_count(srv->conn);
}

Test(handlers, own_2021_version_advertises_partial_unmap_and_limits)
{
    raw_msg r;
    vfio_user_caps caps;
    GError *err = NULL;

    start(VFIO_USER_DIALECT_2021, false);
    cr_assert_eq(raw_version(cfd, RAW_CAPS, &r), 0);
    cr_assert_eq(vus_get16(r.body), 0);
    cr_assert_eq(vus_get16(r.body + 2), 1);
    cr_assert(vfio_user_caps_from_json((char *)r.body + 4, r.len - 4, &caps, &err));
    cr_assert(caps.unmap_partial);
    cr_assert_eq(caps.max_dma_maps, 65535);
    cr_assert_eq(caps.max_msg_size, VUS_OWN_MAX_MSG_SIZE);
    cr_assert(caps.migration);
    cr_assert_eq(caps.pgsize, 4096);
    raw_msg_free(&r);
    finish();
}

Test(handlers, own_0_9_1_version_does_not_offer_partial_unmap)
{
    raw_msg r;
    vfio_user_caps caps;
    GError *err = NULL;

    start(VFIO_USER_DIALECT_0_9_1, false);
    cr_assert_eq(raw_version(cfd, RAW_CAPS, &r), 0);
    cr_assert(vfio_user_caps_from_json((char *)r.body + 4, r.len - 4, &caps, &err));
    cr_assert_not(caps.unmap_partial);
    raw_msg_free(&r);
    finish();
}

Test(handlers, refuses_commands_before_version)
{
    uint8_t e[32];

    start(VFIO_USER_DIALECT_2021, false);
    raw_entry_2021(e, 0x1000, 0x1000, 0, 3, 0);
    cr_assert_eq(raw_call(cfd, 1, VFIO_USER_DMA_MAP, e, 32, NULL, 0, NULL), EINVAL);
    cr_assert_eq(regions(), 0);
    finish();
}

Test(handlers, refuses_malformed_version_data_and_still_negotiates_after)
{
    const char bad[] = "{\"capabilities\":";
    const char nonul[4 + 2] = {0, 0, 1, 0, '{', '}'};
    GString *deep = g_string_new("");

    start(VFIO_USER_DIALECT_2021, false);
    cr_assert_eq(raw_version(cfd, bad, NULL), EINVAL);
    cr_assert_eq(raw_call(cfd, 1, VFIO_USER_VERSION, nonul, sizeof(nonul), NULL, 0, NULL), EINVAL);
    for (int i = 0; i < 10000; i++)
        g_string_append_c(deep, '[');
    cr_assert_eq(raw_version(cfd, deep->str, NULL), EINVAL);
    g_string_free(deep, TRUE);
    cr_assert_eq(raw_version(cfd, RAW_CAPS, NULL), 0);
    cr_assert_eq(raw_version(cfd, RAW_CAPS, NULL), EINVAL, "a second VERSION is refused");
    finish();
}

Test(handlers, maps_a_2021_table_with_fds_for_the_mappable_entries)
{
    uint8_t t[96];
    int fds[2];

    start(VFIO_USER_DIALECT_2021, true);
    fds[0] = test_memfd(0x10000);
    fds[1] = test_memfd(0x10000);
    raw_entry_2021(t, 0x100000, 0x10000, 0, 3, 1);
    raw_entry_2021(t + 32, 0x200000, 0x10000, 0, 3, 0);
    raw_entry_2021(t + 64, 0x300000, 0x10000, 0, 1, 1);
    cr_assert_eq(raw_call(cfd, 1, VFIO_USER_DMA_MAP, t, sizeof(t), fds, 2, NULL), 0);
    cr_assert_eq(regions(), 3);
    close(fds[0]);
    close(fds[1]);
    finish();
}

Test(handlers, refuses_a_2021_table_whose_fds_do_not_match_and_closes_them)
{
    uint8_t t[64];
    int fds[2];

    start(VFIO_USER_DIALECT_2021, true);
    fds[0] = test_memfd(0x10000);
    fds[1] = test_memfd(0x10000);
    raw_entry_2021(t, 0x100000, 0x10000, 0, 3, 1);
    raw_entry_2021(t + 32, 0x200000, 0x10000, 0, 3, 0);
    cr_assert_eq(raw_call(cfd, 1, VFIO_USER_DMA_MAP, t, sizeof(t), fds, 2, NULL), EINVAL);
    cr_assert_eq(raw_call(cfd, 2, VFIO_USER_DMA_MAP, t, 40, NULL, 0, NULL), EINVAL);
    cr_assert_eq(regions(), 0);
    close(fds[0]);
    close(fds[1]);
    finish();
}

Test(handlers, a_2021_table_that_fails_midway_maps_nothing)
{
    uint8_t t[96];

    start(VFIO_USER_DIALECT_2021, true);
    raw_entry_2021(t, 0x100000, 0x10000, 0, 3, 0);
    raw_entry_2021(t + 32, 0x200000, 0x10000, 0, 3, 0);
    raw_entry_2021(t + 64, 0x108000, 0x10000, 0, 3, 0);
    cr_assert_eq(raw_call(cfd, 1, VFIO_USER_DMA_MAP, t, sizeof(t), NULL, 0, NULL), EEXIST);
    cr_assert_eq(regions(), 0);
    finish();
}

Test(handlers, a_2021_unmap_table_removes_portions_of_a_region)
{
    uint8_t t[64];

    start(VFIO_USER_DIALECT_2021, true);
    raw_entry_2021(t, 0x100000, 0x100000, 0, 3, 0);
    cr_assert_eq(raw_call(cfd, 1, VFIO_USER_DMA_MAP, t, 32, NULL, 0, NULL), 0);
    raw_entry_2021(t, 0x110000, 0x10000, 0, 0, 0);
    raw_entry_2021(t + 32, 0x180000, 0x10000, 0, 0, 0);
    cr_assert_eq(raw_call(cfd, 2, VFIO_USER_DMA_UNMAP, t, 64, NULL, 0, NULL), 0);
    cr_assert_eq(regions(), 3);
    raw_entry_2021(t, 0x110000, 0x10000, 0, 0, 0);
    cr_assert_eq(raw_call(cfd, 3, VFIO_USER_DMA_UNMAP, t, 32, NULL, 0, NULL), ENOENT);
    raw_entry_2021(t, 0, 0, 0, 0, VFIO_USER_DMA_UNMAP_FLAG_ALL);
    cr_assert_eq(raw_call(cfd, 4, VFIO_USER_DMA_UNMAP, t, 32, NULL, 0, NULL), 0);
    cr_assert_eq(regions(), 0);
    finish();
}

Test(handlers, refuses_bad_2021_unmap_entries)
{
    uint8_t t[64];

    start(VFIO_USER_DIALECT_2021, true);
    raw_entry_2021(t, 0x100000, 0x100000, 0, 3, 0);
    cr_assert_eq(raw_call(cfd, 1, VFIO_USER_DMA_MAP, t, 32, NULL, 0, NULL), 0);
    raw_entry_2021(t, 0x100000, 0, 0, 0, 0);
    cr_assert_eq(raw_call(cfd, 2, VFIO_USER_DMA_UNMAP, t, 32, NULL, 0, NULL), EINVAL);
    raw_entry_2021(t, UINT64_MAX, 2, 0, 0, 0);
    cr_assert_eq(raw_call(cfd, 3, VFIO_USER_DMA_UNMAP, t, 32, NULL, 0, NULL), EINVAL);
    raw_entry_2021(t, 0x100000, 0x1000, 0, 0, 0x80);
    cr_assert_eq(raw_call(cfd, 4, VFIO_USER_DMA_UNMAP, t, 32, NULL, 0, NULL), EINVAL);
    /* A bitmap entry with its bitmap header cut off, and logging off. */
    raw_entry_2021(t, 0x100000, 0x1000, 0, 0, 1);
    cr_assert_eq(raw_call(cfd, 5, VFIO_USER_DMA_UNMAP, t, 40, NULL, 0, NULL), EINVAL);
    cr_assert_eq(regions(), 1);
    finish();
}

Test(handlers, own_0_9_1_unmap_needs_an_exact_region_and_one_entry)
{
    uint8_t b[48];

    start(VFIO_USER_DIALECT_0_9_1, true);
    raw_map_091(b, 0x100000, 0x200000, 0);
    b[4] = 3;
    cr_assert_eq(raw_call(cfd, 1, VFIO_USER_DMA_MAP, b, 32, NULL, 0, NULL), 0);
    vus_put32(b, 24);
    vus_put32(b + 4, 0);
    vus_put64(b + 8, 0x100000);
    vus_put64(b + 16, 0x100000);
    cr_assert_eq(raw_call(cfd, 2, VFIO_USER_DMA_UNMAP, b, 24, NULL, 0, NULL), ENOENT);
    vus_put64(b + 16, 0x200000);
    memcpy(b + 24, b, 24);
    cr_assert_eq(raw_call(cfd, 3, VFIO_USER_DMA_UNMAP, b, 48, NULL, 0, NULL), EINVAL);
    cr_assert_eq(raw_call(cfd, 4, VFIO_USER_DMA_UNMAP, b, 24, NULL, 0, NULL), 0);
    cr_assert_eq(regions(), 0);
    finish();
}

Test(handlers, own_final_has_no_dirty_pages_command)
{
    uint8_t b[8];

    start(VFIO_USER_DIALECT_FINAL, true);
    vus_put32(b, 8);
    vus_put32(b + 4, VFIO_USER_DIRTY_PAGES_FLAG_START);
    cr_assert_eq(raw_call(cfd, 1, 14, b, 8, NULL, 0, NULL), EINVAL);
    finish();
}

Test(handlers, refuses_an_unknown_command_and_goes_on)
{
    uint8_t b[16] = {0};

    start(VFIO_USER_DIALECT_2021, true);
    cr_assert_eq(raw_call(cfd, 1, 99, NULL, 0, NULL, 0, NULL), EINVAL);
    vus_put32(b, 16);
    cr_assert_eq(raw_call(cfd, 2, VFIO_USER_DEVICE_GET_INFO, b, 16, NULL, 0, NULL), 0);
    finish();
}

Test(handlers, refuses_an_oversized_message_and_closes)
{
    raw_msg r;

    start(VFIO_USER_DIALECT_2021, true);
    cr_assert_eq(
        raw_send_hdr(cfd, 7, VFIO_USER_DMA_MAP, VUS_OWN_MAX_MSG_SIZE + 1, 0, NULL, 0, NULL, 0), 0);
    cr_assert_eq(raw_recv(cfd, &r), 0);
    cr_assert_eq(r.id, 7);
    cr_assert_eq(r.error, EINVAL);
    raw_msg_free(&r);
    cr_assert_eq(raw_recv(cfd, &r), -ECONNRESET);
    cr_assert_eq(srv_join(srv), -EPROTO);
    srv = NULL;
    close(cfd);
    cr_assert_eq(count_fds(), fds_before);
}

Test(handlers, refuses_a_message_shorter_than_its_header_and_closes)
{
    raw_msg r;

    start(VFIO_USER_DIALECT_2021, true);
    cr_assert_eq(raw_send_hdr(cfd, 8, VFIO_USER_DMA_MAP, 8, 0, NULL, 0, NULL, 0), 0);
    cr_assert_eq(raw_recv(cfd, &r), 0);
    cr_assert_eq(r.error, EINVAL);
    raw_msg_free(&r);
    cr_assert_eq(raw_recv(cfd, &r), -ECONNRESET);
    close(cfd);
    srv_join(srv);
    cr_assert_eq(count_fds(), fds_before);
}

Test(handlers, refuses_and_closes_an_fd_sent_with_a_command_that_takes_none)
{
    uint8_t b[16] = {0};
    int fd;

    start(VFIO_USER_DIALECT_2021, true);
    fd = test_memfd(4096);
    vus_put32(b, 16);
    cr_assert_eq(raw_call(cfd, 1, VFIO_USER_DEVICE_GET_INFO, b, 16, &fd, 1, NULL), EINVAL);
    close(fd);
    finish();
}

Test(handlers, describes_the_device_and_its_bar)
{
    uint8_t b[32] = {0};
    raw_msg r;

    start(VFIO_USER_DIALECT_0_9_1, true);
    vus_put32(b, 16);
    cr_assert_eq(raw_call(cfd, 1, VFIO_USER_DEVICE_GET_INFO, b, 16, NULL, 0, &r), 0);
    cr_assert_eq(r.len, 16);
    cr_assert_eq(vus_get32(r.body + 4), VFIO_USER_DEVICE_FLAGS_RESET | VFIO_USER_DEVICE_FLAGS_PCI);
    cr_assert_eq(vus_get32(r.body + 8), 1);
    raw_msg_free(&r);
    vus_put32(b, 32);
    cr_assert_eq(raw_call(cfd, 2, VFIO_USER_DEVICE_GET_REGION_INFO, b, 32, NULL, 0, &r), 0);
    cr_assert_eq(r.len, 32);
    cr_assert_eq(vus_get64(r.body + 16), VFIO_USER_SAMPLE_BAR_SIZE);
    raw_msg_free(&r);
    vus_put32(b + 8, 1);
    cr_assert_eq(raw_call(cfd, 3, VFIO_USER_DEVICE_GET_REGION_INFO, b, 32, NULL, 0, NULL), EINVAL);
    vus_put32(b, 8);
    cr_assert_eq(raw_call(cfd, 4, VFIO_USER_DEVICE_GET_INFO, b, 16, NULL, 0, NULL), EINVAL);
    finish();
}

Test(handlers, refuses_region_accesses_outside_bar0)
{
    uint8_t b[24] = {0};

    start(VFIO_USER_DIALECT_2021, true);
    vus_put64(b, VFIO_USER_SAMPLE_BAR_SIZE - 4);
    vus_put32(b + 12, 8);
    cr_assert_eq(raw_call(cfd, 1, VFIO_USER_REGION_READ, b, 16, NULL, 0, NULL), EINVAL);
    vus_put64(b, UINT64_MAX - 2);
    cr_assert_eq(raw_call(cfd, 2, VFIO_USER_REGION_READ, b, 16, NULL, 0, NULL), EINVAL);
    vus_put64(b, 0);
    vus_put32(b + 8, 3);
    cr_assert_eq(raw_call(cfd, 3, VFIO_USER_REGION_READ, b, 16, NULL, 0, NULL), EINVAL);
    vus_put32(b + 8, 0);
    vus_put32(b + 12, 8);
    cr_assert_eq(raw_call(cfd, 4, VFIO_USER_REGION_WRITE, b, 20, NULL, 0, NULL), EINVAL,
                 "count says 8, 4 bytes of data");
    finish();
}

Test(handlers, reset_clears_the_registers)
{
    start(VFIO_USER_DIALECT_2021, true);
    cr_assert_eq(raw_reg_write(cfd, 1, VFIO_USER_SAMPLE_DMA_ADDR, 0x1234, 8), 0);
    cr_assert_eq(raw_reg_read(cfd, 2, VFIO_USER_SAMPLE_DMA_ADDR, 8), 0x1234);
    cr_assert_eq(raw_call(cfd, 3, VFIO_USER_2021_DEVICE_RESET, NULL, 0, NULL, 0, NULL), 0);
    cr_assert_eq(raw_reg_read(cfd, 4, VFIO_USER_SAMPLE_DMA_ADDR, 8), 0);
    finish();
}

Test(handlers, a_no_reply_command_gets_no_reply)
{
    uint8_t e[32], b[16] = {0};
    raw_msg r;

    start(VFIO_USER_DIALECT_2021, true);
    raw_entry_2021(e, 0x1000, 0x1000, 0, 3, 0);
    cr_assert_eq(raw_send_hdr(cfd, 1, VFIO_USER_DMA_MAP, 48, VFIO_USER_F_NO_REPLY, e, 32, NULL, 0),
                 0);
    vus_put32(b, 16);
    cr_assert_eq(raw_send(cfd, 2, VFIO_USER_DEVICE_GET_INFO, b, 16, NULL, 0), 0);
    cr_assert_eq(raw_recv(cfd, &r), 0);
    cr_assert_eq(r.id, 2, "the first reply answers the second command");
    raw_msg_free(&r);
    cr_assert_eq(regions(), 1);
    finish();
}

Test(handlers, a_2021_bitmap_larger_than_the_client_accepts_is_refused)
{
    uint8_t t[56], b[8];
    const char *small = "{\"capabilities\":{\"max_msg_size\":4096}}";
    vfio_user_server_options o;

    fds_before = count_fds();
    vfio_user_server_options_init(&o);
    srv = srv_start(&o, &cfd);
    cr_assert_eq(raw_version(cfd, small, NULL), 0);
    raw_entry_2021(t, 0, 1ull << 30, 0, 3, 0);
    cr_assert_eq(raw_call(cfd, 1, VFIO_USER_DMA_MAP, t, 32, NULL, 0, NULL), 0);
    vus_put32(b, 8);
    vus_put32(b + 4, VFIO_USER_DIRTY_PAGES_FLAG_START);
    cr_assert_eq(raw_call(cfd, 2, VFIO_USER_2021_DIRTY_PAGES, b, 8, NULL, 0, NULL), 0);
    /* 1 GiB at 4 KiB pages is a 32 KiB bitmap: more than a 4096-byte message. */
    raw_entry_2021(t, 0, 1ull << 30, 0, 0, 1);
    vus_put64(t + 32, 4096);
    vus_put64(t + 40, 32768);
    vus_put64(t + 48, 0);
    cr_assert_neq(raw_call(cfd, 3, VFIO_USER_DMA_UNMAP, t, 56, NULL, 0, NULL), 0);
    cr_assert_eq(regions(), 1);
    finish();
}

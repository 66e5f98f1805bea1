/* SPDX-License-Identifier: MIT */
/*
 * The sample DMA device: real DMA into a memfd the client passed (with
 * dirty logging), and DMA_READ / DMA_WRITE round trips to the client for
 * regions passed without an fd.
 */
#include "raw.h"

#define PG 4096ull
#define BASE 0x100000ull

static int cfd, mfd;
static uint8_t *view;
static srv_thread *srv;
static int fds_before;

static void start(vfio_user_dialect dialect)
{
    vfio_user_server_options o;

    fds_before = count_fds();
    vfio_user_server_options_init(&o);
    o.dialect = dialect;
    srv = srv_start(&o, &cfd);
    cr_assert_eq(raw_version(cfd, RAW_CAPS, NULL), 0);
    mfd = test_memfd(16 * PG);
    view = mmap(NULL, 16 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    cr_assert_neq(view, MAP_FAILED);
}

static void finish(void)
{
    munmap(view, 16 * PG);
    close(mfd);
    close(cfd);
    srv_join(srv);
    cr_assert_eq(count_fds(), fds_before, "fds leaked");
}

/* Maps the memfd (16 pages) at BASE, and @fdless_pages more pages right after it without fd. */
static void map_2021(uint32_t prot, uint64_t fdless_pages)
{
    uint8_t t[64];

    raw_entry_2021(t, BASE, 16 * PG, 0, prot, 1);
    raw_entry_2021(t + 32, BASE + 16 * PG, fdless_pages * PG, 0, 3, 0);
    cr_assert_eq(raw_call(cfd, 100, VFIO_USER_DMA_MAP, t, fdless_pages ? 64 : 32, &mfd, 1, NULL),
                 0);
}

static void program(uint64_t addr, uint32_t len, uint8_t fill)
{
    cr_assert_eq(raw_reg_write(cfd, 101, VFIO_USER_SAMPLE_DMA_ADDR, addr, 8), 0);
    cr_assert_eq(raw_reg_write(cfd, 102, VFIO_USER_SAMPLE_DMA_LEN, len, 4), 0);
    cr_assert_eq(raw_reg_write(cfd, 103, VFIO_USER_SAMPLE_DMA_FILL, fill, 4), 0);
}

static uint32_t run_cmd(uint32_t cmd)
{
    cr_assert_eq(raw_reg_write(cfd, 104, VFIO_USER_SAMPLE_DMA_CMD, cmd, 4), 0);
    return (uint32_t)raw_reg_read(cfd, 105, VFIO_USER_SAMPLE_DMA_STATUS, 4);
}

static void dirty_start_2021(void)
{
    uint8_t b[8];
    vus_put32(b, 8);
    vus_put32(b + 4, VFIO_USER_DIRTY_PAGES_FLAG_START);
    cr_assert_eq(raw_call(cfd, 106, VFIO_USER_2021_DIRTY_PAGES, b, 8, NULL, 0, NULL), 0);
}

/* DIRTY_PAGES GET_BITMAP (2021) of the memfd region: one u64. */
static uint64_t dirty_get_2021(void)
{
    uint8_t b[48] = {0};
    raw_msg r;
    uint64_t bits;

    vus_put32(b, 48);
    vus_put32(b + 4, VFIO_USER_DIRTY_PAGES_FLAG_GET_BITMAP);
    vus_put64(b + 8, BASE);
    vus_put64(b + 16, 16 * PG);
    vus_put64(b + 24, PG);
    vus_put64(b + 32, 8);
    cr_assert_eq(raw_call(cfd, 107, VFIO_USER_2021_DIRTY_PAGES, b, 48, NULL, 0, &r), 0);
    cr_assert_eq(r.len, 24 + 8);
    cr_assert_eq(vus_get64(r.body), PG);
    cr_assert_eq(vus_get64(r.body + 8), 8);
    bits = vus_get64(r.body + 24);
    raw_msg_free(&r);
    return bits;
}

Test(device, dma_write_fills_client_memory_and_marks_exactly_its_pages_dirty)
{
    start(VFIO_USER_DIALECT_2021);
    map_2021(3, 0);
    dirty_start_2021();
    program(BASE + 0x1800, 0x2000, 0xab);
    cr_assert_eq(run_cmd(VFIO_USER_SAMPLE_CMD_WRITE), 0);
    cr_assert_eq(view[0x17ff], 0);
    cr_assert_eq(view[0x1800], 0xab);
    cr_assert_eq(view[0x37ff], 0xab);
    cr_assert_eq(view[0x3800], 0);
    cr_assert_eq(dirty_get_2021(), 0x0e, "pages 1, 2 and 3");
    cr_assert_eq(dirty_get_2021(), 0, "cleared when read");
    finish();
}

Test(device, dma_read_sums_client_memory)
{
    start(VFIO_USER_DIALECT_2021);
    map_2021(3, 0);
    for (int i = 0; i < 100; i++)
        view[0x500 + i] = (uint8_t)i;
    program(BASE + 0x500, 100, 0);
    cr_assert_eq(run_cmd(VFIO_USER_SAMPLE_CMD_READ), 0);
    cr_assert_eq(raw_reg_read(cfd, 1, VFIO_USER_SAMPLE_DMA_SUM, 8), 99 * 100 / 2);
    finish();
}

Test(device, a_bad_transfer_sets_its_errno_in_dma_status)
{
    start(VFIO_USER_DIALECT_2021);
    map_2021(VFIO_USER_PROT_READ, 0);
    program(BASE + 15 * PG, 2 * PG, 1);
    cr_assert_eq(run_cmd(VFIO_USER_SAMPLE_CMD_READ), EFAULT, "runs past the region");
    program(BASE, 16, 1);
    cr_assert_eq(run_cmd(VFIO_USER_SAMPLE_CMD_WRITE), EACCES, "read-only region");
    program(BASE, 0, 1);
    cr_assert_eq(run_cmd(VFIO_USER_SAMPLE_CMD_READ), EINVAL, "zero length");
    program(BASE, VFIO_USER_SAMPLE_MAX_LEN + 1, 1);
    cr_assert_eq(run_cmd(VFIO_USER_SAMPLE_CMD_READ), EINVAL, "over 1 MiB");
    cr_assert_eq(run_cmd(7), EINVAL, "unknown command");
    cr_assert_eq(view[0], 0);
    finish();
}

/* Answers one DMA_WRITE / DMA_READ request from the server. */
static void serve_dma(uint16_t want_cmd, uint64_t want_addr, uint64_t want_count, uint8_t fill,
                      int error)
{
    raw_msg q;
    g_autofree uint8_t *out = NULL;
    size_t n = 16;

    cr_assert_eq(raw_recv(cfd, &q), 0);
    cr_assert_eq(q.cmd, want_cmd);
    cr_assert_eq(q.flags & VFIO_USER_F_TYPE_MASK, VFIO_USER_F_TYPE_COMMAND);
    cr_assert_eq(vus_get64(q.body), want_addr);
    cr_assert_eq(vus_get64(q.body + 8), want_count);
    if (want_cmd == VFIO_USER_DMA_WRITE) {
        cr_assert_eq(q.len, 16 + want_count);
        for (uint64_t i = 0; i < want_count; i++)
            cr_assert_eq(q.body[16 + i], fill);
    } else {
        cr_assert_eq(q.len, 16);
        n += want_count;
    }
    out = g_malloc0(n);
    memcpy(out, q.body, 16);
    memset(out + 16, fill, n - 16);
    if (error)
        cr_assert_eq(raw_send_hdr(cfd, q.id, q.cmd, 16, VFIO_USER_F_TYPE_REPLY | VFIO_USER_F_ERROR,
                                  NULL, 0, NULL, 0),
                     0);
    else
        cr_assert_eq(raw_send_hdr(cfd, q.id, q.cmd, (uint32_t)(16 + n), VFIO_USER_F_TYPE_REPLY, out,
                                  n, NULL, 0),
                     0);
    raw_msg_free(&q);
}

/* Sends the REGION_WRITE of DMA_CMD without waiting for its reply. */
static void send_cmd(uint16_t id, uint32_t cmd)
{
    uint8_t b[20] = {0};
    vus_put64(b, VFIO_USER_SAMPLE_DMA_CMD);
    vus_put32(b + 12, 4);
    vus_put32(b + 16, cmd);
    cr_assert_eq(raw_send(cfd, id, VFIO_USER_REGION_WRITE, b, 20, NULL, 0), 0);
}

static void expect_reply(uint16_t id, uint16_t cmd)
{
    raw_msg r;
    cr_assert_eq(raw_recv(cfd, &r), 0);
    cr_assert_eq(r.id, id);
    cr_assert_eq(r.cmd, cmd);
    cr_assert_eq(r.flags, VFIO_USER_F_TYPE_REPLY);
    raw_msg_free(&r);
}

Test(device, dma_to_a_region_without_fd_goes_through_messages_before_the_reply)
{
    start(VFIO_USER_DIALECT_2021);
    map_2021(3, 4);
    program(BASE + 16 * PG + 8, 100, 0x5c);
    send_cmd(200, VFIO_USER_SAMPLE_CMD_WRITE);
    serve_dma(VFIO_USER_DMA_WRITE, BASE + 16 * PG + 8, 100, 0x5c, 0);
    expect_reply(200, VFIO_USER_REGION_WRITE);
    cr_assert_eq(raw_reg_read(cfd, 1, VFIO_USER_SAMPLE_DMA_STATUS, 4), 0);

    send_cmd(201, VFIO_USER_SAMPLE_CMD_READ);
    serve_dma(VFIO_USER_DMA_READ, BASE + 16 * PG + 8, 100, 2, 0);
    expect_reply(201, VFIO_USER_REGION_WRITE);
    cr_assert_eq(raw_reg_read(cfd, 2, VFIO_USER_SAMPLE_DMA_SUM, 8), 200);
    finish();
}

Test(device, a_transfer_across_mapped_and_unmapped_regions_uses_both_paths)
{
    start(VFIO_USER_DIALECT_2021);
    map_2021(3, 4);
    program(BASE + 16 * PG - 10, 20, 0x77);
    send_cmd(200, VFIO_USER_SAMPLE_CMD_WRITE);
    serve_dma(VFIO_USER_DMA_WRITE, BASE + 16 * PG, 10, 0x77, 0);
    expect_reply(200, VFIO_USER_REGION_WRITE);
    cr_assert_eq(view[16 * PG - 10], 0x77);
    cr_assert_eq(view[16 * PG - 1], 0x77);
    finish();
}

Test(device, commands_sent_during_a_round_trip_are_answered_after_it_in_order)
{
    uint8_t info[16] = {0};

    start(VFIO_USER_DIALECT_2021);
    map_2021(3, 4);
    program(BASE + 16 * PG, 64, 1);
    send_cmd(300, VFIO_USER_SAMPLE_CMD_WRITE);
    vus_put32(info, 16);
    cr_assert_eq(raw_send(cfd, 301, VFIO_USER_DEVICE_GET_INFO, info, 16, NULL, 0), 0);
    cr_assert_eq(raw_send(cfd, 302, VFIO_USER_DEVICE_GET_INFO, info, 16, NULL, 0), 0);
    serve_dma(VFIO_USER_DMA_WRITE, BASE + 16 * PG, 64, 1, 0);
    expect_reply(300, VFIO_USER_REGION_WRITE);
    expect_reply(301, VFIO_USER_DEVICE_GET_INFO);
    expect_reply(302, VFIO_USER_DEVICE_GET_INFO);
    finish();
}

Test(device, a_client_error_on_dma_write_becomes_the_dma_status)
{
    start(VFIO_USER_DIALECT_2021);
    map_2021(3, 4);
    program(BASE + 16 * PG, 64, 1);
    send_cmd(400, VFIO_USER_SAMPLE_CMD_WRITE);
    serve_dma(VFIO_USER_DMA_WRITE, BASE + 16 * PG, 64, 1, 1);
    expect_reply(400, VFIO_USER_REGION_WRITE);
    cr_assert_neq(raw_reg_read(cfd, 1, VFIO_USER_SAMPLE_DMA_STATUS, 4), 0);
    finish();
}

Test(device, unmap_with_bitmap_in_0_9_1_reports_the_pages_the_device_wrote)
{
    uint8_t b[40];
    raw_msg r;

    start(VFIO_USER_DIALECT_0_9_1);
    raw_map_091(b, BASE, 16 * PG, 0);
    cr_assert_eq(raw_call(cfd, 1, VFIO_USER_DMA_MAP, b, 32, &mfd, 1, NULL), 0);
    vus_put32(b, 8);
    vus_put32(b + 4, VFIO_USER_DIRTY_PAGES_FLAG_START);
    cr_assert_eq(raw_call(cfd, 2, VFIO_USER_DIRTY_PAGES, b, 8, NULL, 0, NULL), 0);
    program(BASE + 5 * PG, 1, 9);
    cr_assert_eq(run_cmd(VFIO_USER_SAMPLE_CMD_WRITE), 0);
    vus_put32(b, 24 + 16 + 8);
    vus_put32(b + 4, VFIO_USER_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP);
    vus_put64(b + 8, BASE);
    vus_put64(b + 16, 16 * PG);
    vus_put64(b + 24, PG);
    vus_put64(b + 32, 8);
    cr_assert_eq(raw_call(cfd, 3, VFIO_USER_DMA_UNMAP, b, 40, NULL, 0, &r), 0);
    cr_assert_eq(r.len, 48);
    cr_assert_eq(vus_get64(r.body + 40), 1u << 5);
    raw_msg_free(&r);
    cr_assert_eq(vfio_user_server_conn_region_count(srv->conn), 0);
    cr_assert_eq(view[5 * PG], 9);
    finish();
}

Test(device, dma_logging_report_in_final_shows_the_pages_the_device_wrote)
{
    uint8_t b[40];
    raw_msg r;

    start(VFIO_USER_DIALECT_FINAL);
    raw_map_091(b, BASE, 16 * PG, 0);
    cr_assert_eq(raw_call(cfd, 1, VFIO_USER_DMA_MAP, b, 32, &mfd, 1, NULL), 0);
    vus_put32(b, 24);
    vus_put32(b + 4, VFIO_USER_DEVICE_FEATURE_SET | VFIO_USER_DEVICE_FEATURE_DMA_LOGGING_START);
    vus_put64(b + 8, PG);
    vus_put32(b + 16, 0);
    vus_put32(b + 20, 0);
    cr_assert_eq(raw_call(cfd, 2, VFIO_USER_DEVICE_FEATURE, b, 24, NULL, 0, NULL), 0);
    program(BASE + 2 * PG, (uint32_t)(2 * PG), 3);
    cr_assert_eq(run_cmd(VFIO_USER_SAMPLE_CMD_WRITE), 0);
    vus_put32(b, 8 + 24 + 8);
    vus_put32(b + 4, VFIO_USER_DEVICE_FEATURE_GET | VFIO_USER_DEVICE_FEATURE_DMA_LOGGING_REPORT);
    vus_put64(b + 8, BASE);
    vus_put64(b + 16, 16 * PG);
    vus_put64(b + 24, PG);
    cr_assert_eq(raw_call(cfd, 3, VFIO_USER_DEVICE_FEATURE, b, 32, NULL, 0, &r), 0);
    cr_assert_eq(r.len, 40);
    cr_assert_eq(vus_get64(r.body + 32), 0xc);
    raw_msg_free(&r);
    vus_put32(b, 8);
    vus_put32(b + 4, VFIO_USER_DEVICE_FEATURE_SET | VFIO_USER_DEVICE_FEATURE_DMA_LOGGING_STOP);
    cr_assert_eq(raw_call(cfd, 4, VFIO_USER_DEVICE_FEATURE, b, 8, NULL, 0, NULL), 0);
    finish();
}

Test(device, a_client_that_shrinks_its_memory_gets_efault_not_a_crash)
{
    start(VFIO_USER_DIALECT_2021);
    map_2021(3, 0);
    cr_assert_eq(ftruncate(mfd, (off_t)PG), 0);
    program(BASE + 2 * PG, 16, 0x11);
    cr_assert_eq(run_cmd(VFIO_USER_SAMPLE_CMD_WRITE), EFAULT);
    cr_assert_eq(run_cmd(VFIO_USER_SAMPLE_CMD_READ), EFAULT);
    program(BASE + 16, 16, 0x11);
    cr_assert_eq(run_cmd(VFIO_USER_SAMPLE_CMD_WRITE), 0, "the part still backed works");
    cr_assert_eq(view[16], 0x11);
    finish();
}

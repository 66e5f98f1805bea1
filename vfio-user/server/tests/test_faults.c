/* SPDX-License-Identifier: MIT */
/* Fault injection: each kind corrupts the replies it should, and only those. */
#include "raw.h"

static int cfd;
static srv_thread *srv;

static void start(uint32_t kinds, uint16_t command, uint32_t skip, uint32_t count)
{
    vfio_user_server_options o;

    vfio_user_server_options_init(&o);
    o.faults.kinds = kinds;
    o.faults.command = command;
    o.faults.skip = skip;
    o.faults.count = count;
    o.faults.delay_ms = 5;
    srv = srv_start(&o, &cfd);
    cr_assert_eq(raw_version(cfd, RAW_CAPS, NULL), 0, "VERSION is left alone");
}

static void finish(void)
{
    close(cfd);
    srv_join(srv);
}

static void send_info(uint16_t id)
{
    uint8_t b[16] = {0};
    vus_put32(b, 16);
    cr_assert_eq(raw_send(cfd, id, VFIO_USER_DEVICE_GET_INFO, b, 16, NULL, 0), 0);
}

static void expect_info(uint16_t id)
{
    raw_msg r;
    cr_assert_eq(raw_recv(cfd, &r), 0);
    cr_assert_eq(r.id, id);
    cr_assert_eq(r.len, 16);
    cr_assert_eq(r.nfds, 0);
    cr_assert_eq(vus_get32(r.body + 8), 1);
    raw_msg_free(&r);
}

Test(faults, wrong_id_answers_with_the_next_id)
{
    raw_msg r;

    start(VFIO_USER_SERVER_FAULT_WRONG_ID, 0, 0, 0);
    send_info(10);
    cr_assert_eq(raw_recv(cfd, &r), 0);
    cr_assert_eq(r.id, 11);
    raw_msg_free(&r);
    finish();
}

Test(faults, drop_mid_reply_sends_half_a_reply_then_closes)
{
    uint8_t buf[64];
    ssize_t n, total = 0;

    start(VFIO_USER_SERVER_FAULT_DROP_MID_REPLY, 0, 0, 0);
    send_info(1);
    while ((n = read(cfd, buf, sizeof(buf))) > 0)
        total += n;
    cr_assert_eq(total, 16, "half of a 32-byte reply");
    finish();
}

Test(faults, reply_to_nothing_comes_before_the_real_reply)
{
    raw_msg r;

    start(VFIO_USER_SERVER_FAULT_REPLY_TO_NOTHING, 0, 0, 0);
    send_info(5);
    cr_assert_eq(raw_recv(cfd, &r), 0);
    cr_assert_eq(r.id, 5 + 0x8000);
    cr_assert_eq(r.flags & VFIO_USER_F_TYPE_MASK, VFIO_USER_F_TYPE_REPLY);
    raw_msg_free(&r);
    expect_info(5);
    finish();
}

Test(faults, unexpected_fd_rides_on_the_reply)
{
    raw_msg r;

    start(VFIO_USER_SERVER_FAULT_UNEXPECTED_FD, 0, 0, 0);
    send_info(3);
    cr_assert_eq(raw_recv(cfd, &r), 0);
    cr_assert_eq(r.id, 3);
    cr_assert_eq(r.nfds, 1);
    raw_msg_free(&r);
    finish();
}

Test(faults, short_writes_deliver_the_same_bytes)
{
    start(VFIO_USER_SERVER_FAULT_SHORT_WRITES | VFIO_USER_SERVER_FAULT_DELAY, 0, 0, 0);
    send_info(4);
    expect_info(4);
    finish();
}

Test(faults, wrong_size_claims_more_than_is_sent_then_closes)
{
    uint8_t buf[64];
    ssize_t n, total = 0;

    start(VFIO_USER_SERVER_FAULT_WRONG_SIZE, 0, 0, 0);
    send_info(1);
    while ((n = read(cfd, buf + total, sizeof(buf) - (size_t)total)) > 0)
        total += n;
    cr_assert_eq(total, 32);
    cr_assert_eq(vus_get32(buf + 4), 40);
    finish();
}

Test(faults, only_the_chosen_command_and_window_are_corrupted)
{
    raw_msg r;

    start(VFIO_USER_SERVER_FAULT_WRONG_ID, VFIO_USER_DEVICE_GET_INFO, 1, 1);
    cr_assert_eq(raw_reg_write(cfd, 1, 0, 5, 8), 0, "another command is left alone");
    send_info(20);
    expect_info(20);
    send_info(21);
    cr_assert_eq(raw_recv(cfd, &r), 0);
    cr_assert_eq(r.id, 22);
    raw_msg_free(&r);
    send_info(23);
    expect_info(23);
    finish();
}

Test(faults, oversized_bitmap_states_and_carries_eight_bytes_more)
{
    uint8_t t[56], b[8];
    raw_msg r;

    start(VFIO_USER_SERVER_FAULT_OVERSIZED_BITMAP, VFIO_USER_DMA_UNMAP, 0, 0);
    raw_entry_2021(t, 0, 64 * 4096, 0, 3, 0);
    cr_assert_eq(raw_call(cfd, 1, VFIO_USER_DMA_MAP, t, 32, NULL, 0, NULL), 0);
    vus_put32(b, 8);
    vus_put32(b + 4, VFIO_USER_DIRTY_PAGES_FLAG_START);
    cr_assert_eq(raw_call(cfd, 2, VFIO_USER_2021_DIRTY_PAGES, b, 8, NULL, 0, NULL), 0);
    raw_entry_2021(t, 0, 64 * 4096, 0, 0, VFIO_USER_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP);
    vus_put64(t + 32, 4096);
    vus_put64(t + 40, 8);
    vus_put64(t + 48, 0);
    cr_assert_eq(raw_call(cfd, 3, VFIO_USER_DMA_UNMAP, t, 56, NULL, 0, &r), 0);
    cr_assert_eq(r.len, 24 + 16);
    cr_assert_eq(vus_get64(r.body + 8), 16);
    raw_msg_free(&r);
    finish();
}

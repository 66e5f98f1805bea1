/* SPDX-License-Identifier: MIT */
/*
 * The codec: round trips in every dialect, the seed's size formulas, the
 * byte layouts real servers put on the wire, and rejection of malformed
 * input.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "private.h"

#define D2021 VFIO_USER_DIALECT_2021
#define D091 VFIO_USER_DIALECT_0_9_1
#define DFINAL VFIO_USER_DIALECT_FINAL

static uint8_t buf[1 << 16];
static vfio_user_dma_entry dec_entries[256];

static size_t encode(vfio_user_dialect d, const vfio_user_msg *m)
{
    size_t len = 0;
    int rc = vfio_user_msg_encode(d, m, buf, sizeof(buf), &len);
    cr_assert_eq(rc, 0, "encode failed: %d", rc);
    return len;
}

static void decode_ok(vfio_user_dialect d, size_t len, const int *fds, size_t nfds,
                      vfio_user_msg *out)
{
    int rc = vfio_user_msg_decode(d, buf, len, fds, nfds, out, dec_entries, 256);
    cr_assert_eq(rc, 0, "decode failed: %d", rc);
}

static vfio_user_msg request(vfio_user_op op, uint16_t id)
{
    vfio_user_msg m;
    memset(&m, 0, sizeof(m));
    m.op = op;
    m.hdr.msg_id = id;
    m.hdr.flags = VFIO_USER_F_TYPE_COMMAND;
    return m;
}

static vfio_user_msg reply_to(vfio_user_op op, uint16_t id)
{
    vfio_user_msg m = request(op, id);
    m.hdr.flags = VFIO_USER_F_TYPE_REPLY;
    return m;
}

Test(vfio_user_codec, header_round_trips_in_little_endian)
{
    vfio_user_header h = {.msg_id = 0x1234,
                          .command = 3,
                          .msg_size = 40,
                          .flags = 1,
                          .error_no = 0},
                     out;
    uint8_t raw[16];
    vfio_user_header_encode(&h, raw);
    cr_assert_eq(raw[0], 0x34);
    cr_assert_eq(raw[1], 0x12);
    cr_assert_eq(raw[4], 40);
    cr_assert_eq(vfio_user_header_decode(raw, 16, &out), 0);
    cr_assert_eq(out.msg_id, 0x1234);
    cr_assert_eq(out.command, 3);
    cr_assert_eq(out.msg_size, 40);
    cr_assert_eq(out.flags, 1);
}

Test(vfio_user_codec, header_rejects_short_buffers_small_sizes_and_unknown_types)
{
    vfio_user_header h = {.msg_size = 15}, out;
    uint8_t raw[16];
    vfio_user_header_encode(&h, raw);
    cr_assert_eq(vfio_user_header_decode(raw, 15, &out), -EBADMSG);
    cr_assert_eq(vfio_user_header_decode(raw, 16, &out), -EBADMSG);
    h.msg_size = 16;
    h.flags = 2;
    vfio_user_header_encode(&h, raw);
    cr_assert_eq(vfio_user_header_decode(raw, 16, &out), -EBADMSG);
}

Test(vfio_user_codec, command_numbers_follow_the_dialect)
{
    cr_assert_eq(vfio_user_op_command(D2021, VFIO_USER_OP_DEVICE_RESET), 14);
    cr_assert_eq(vfio_user_op_command(D091, VFIO_USER_OP_DEVICE_RESET), 13);
    cr_assert_eq(vfio_user_op_command(D2021, VFIO_USER_OP_DIRTY_PAGES), 15);
    cr_assert_eq(vfio_user_op_command(D091, VFIO_USER_OP_DIRTY_PAGES), 14);
    cr_assert_eq(vfio_user_op_command(DFINAL, VFIO_USER_OP_DIRTY_PAGES), -ENOTSUP);
    cr_assert_eq(vfio_user_op_command(D2021, VFIO_USER_OP_VM_INTERRUPT), 13);
    cr_assert_eq(vfio_user_op_command(D091, VFIO_USER_OP_VM_INTERRUPT), -ENOTSUP);
    cr_assert_eq(vfio_user_op_command(DFINAL, VFIO_USER_OP_DEVICE_FEATURE), 16);
    cr_assert_eq(vfio_user_op_command(D091, VFIO_USER_OP_DEVICE_FEATURE), -ENOTSUP);
    cr_assert_eq(vfio_user_command_op(D2021, 13), VFIO_USER_OP_VM_INTERRUPT);
    cr_assert_eq(vfio_user_command_op(D091, 13), VFIO_USER_OP_DEVICE_RESET);
    cr_assert_eq(vfio_user_command_op(D091, 99), -ENOTSUP);
}

Test(vfio_user_codec, dialect_names_parse_back)
{
    vfio_user_dialect d;
    cr_assert_eq(vfio_user_dialect_parse("0.9.1", &d), 0);
    cr_assert_eq(d, D091);
    cr_assert_str_eq(vfio_user_dialect_name(DFINAL), "final");
    cr_assert_eq(vfio_user_dialect_parse("2022", &d), -EINVAL);
}

Test(vfio_user_codec, dma_map_2021_table_is_16_plus_32n_with_one_fd_per_mappable_entry)
{
    vfio_user_dma_entry e[3] = {
        {.iova = 0x1000, .size = 0x2000, .offset = 0x40, .prot = 3, .fd = 7},
        {.iova = 0x8000, .size = 0x1000, .prot = 1, .fd = -1},
        {.iova = 0x10000, .size = 0x1000, .offset = 0x80, .prot = 2, .fd = 9},
    };
    vfio_user_msg m = request(VFIO_USER_OP_DMA_MAP, 5), out;
    m.dma.entries = e;
    m.dma.count = 3;
    size_t len = encode(D2021, &m);
    cr_assert_eq(len, 16 + 32 * 3);
    int fds[4];
    cr_assert_eq(vfio_user_msg_fds(&m, fds, 4), 2);
    cr_assert_eq(fds[0], 7);
    cr_assert_eq(fds[1], 9);
    /* Mappable flag at entry offset 28. */
    cr_assert_eq(get_le32(buf + 16 + 28), 1);
    cr_assert_eq(get_le32(buf + 16 + 32 + 28), 0);

    int rx[2] = {100, 101};
    decode_ok(D2021, len, rx, 2, &out);
    cr_assert_eq(out.op, VFIO_USER_OP_DMA_MAP);
    cr_assert_eq(out.hdr.msg_id, 5);
    cr_assert_eq(out.dma.count, 3);
    cr_assert_eq(out.dma.entries[0].iova, 0x1000);
    cr_assert_eq(out.dma.entries[0].offset, 0x40);
    cr_assert_eq(out.dma.entries[0].fd, 100);
    cr_assert_eq(out.dma.entries[1].fd, -1);
    cr_assert_eq(out.dma.entries[2].fd, 101);
    cr_assert_eq(out.dma.entries[2].prot, 2);
}

Test(vfio_user_codec, dma_map_2021_rejects_an_fd_count_that_does_not_match)
{
    vfio_user_dma_entry e = {.iova = 0, .size = 0x1000, .prot = 3, .fd = 4};
    vfio_user_msg m = request(VFIO_USER_OP_DMA_MAP, 1), out;
    m.dma.entries = &e;
    m.dma.count = 1;
    size_t len = encode(D2021, &m);
    cr_assert_eq(vfio_user_msg_decode(D2021, buf, len, NULL, 0, &out, dec_entries, 256), -EPROTO);
    int two[2] = {3, 4};
    cr_assert_eq(vfio_user_msg_decode(D2021, buf, len, two, 2, &out, dec_entries, 256), -EPROTO);
}

Test(vfio_user_codec, dma_unmap_2021_request_is_16_plus_32n_plus_24k)
{
    vfio_user_dma_entry e[3] = {
        {.iova = 0x1000, .size = 0x1000},
        {.iova = 0x2000,
         .size = 0x40000,
         .flags = VFIO_USER_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
         .bitmap_pgsize = 4096,
         .bitmap_size = 8},
        {.iova = 0x100000,
         .size = 0x200000,
         .flags = VFIO_USER_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
         .bitmap_pgsize = 4096,
         .bitmap_size = 64},
    };
    vfio_user_msg m = request(VFIO_USER_OP_DMA_UNMAP, 9), out;
    m.dma.entries = e;
    m.dma.count = 3;
    size_t len = encode(D2021, &m);
    cr_assert_eq(len, 16 + 32 * 3 + 24 * 2);
    decode_ok(D2021, len, NULL, 0, &out);
    cr_assert_eq(out.dma.count, 3);
    cr_assert_eq(out.dma.entries[1].bitmap_pgsize, 4096);
    cr_assert_eq(out.dma.entries[2].bitmap_size, 64);
    cr_assert_eq(out.dma.entries[0].flags, 0);
}

Test(vfio_user_codec, dma_unmap_2021_reply_is_16_plus_24k_plus_bitmaps)
{
    uint8_t bm1[8] = {0x5}, bm2[64] = {[63] = 0x80};
    vfio_user_dma_entry req_e[2] = {
        {.iova = 0x2000, .size = 0x40000, .flags = 1, .bitmap_pgsize = 4096, .bitmap_size = 8},
        {.iova = 0x100000, .size = 0x200000, .flags = 1, .bitmap_pgsize = 4096, .bitmap_size = 64},
    };
    vfio_user_dma_entry rep_e[2] = {
        {.flags = 1, .bitmap_pgsize = 4096, .bitmap_size = 8, .bitmap = bm1},
        {.flags = 1, .bitmap_pgsize = 4096, .bitmap_size = 64, .bitmap = bm2},
    };
    vfio_user_msg rq = request(VFIO_USER_OP_DMA_UNMAP, 4), rp = reply_to(VFIO_USER_OP_DMA_UNMAP, 4),
                  out;
    rq.dma.entries = req_e;
    rq.dma.count = 2;
    uint8_t reqbuf[256];
    size_t reqlen;
    cr_assert_eq(vfio_user_msg_encode(D2021, &rq, reqbuf, sizeof(reqbuf), &reqlen), 0);

    rp.dma.entries = rep_e;
    rp.dma.count = 2;
    size_t len = encode(D2021, &rp);
    cr_assert_eq(len, 16 + 24 * 2 + 8 + 64);
    decode_ok(D2021, len, NULL, 0, &out);
    cr_assert_eq(out.dma.count, 2);
    cr_assert_eq(out.dma.entries[0].bitmap[0], 0x5);
    cr_assert_eq(out.dma.entries[1].bitmap[63], 0x80);
    cr_assert_eq(vfio_user_reply_check(D2021, reqbuf, reqlen, &out), 0);

    /* One bitmap missing: the reply does not fit the request. */
    rp.dma.count = 1;
    len = encode(D2021, &rp);
    decode_ok(D2021, len, NULL, 0, &out);
    cr_assert_eq(vfio_user_reply_check(D2021, reqbuf, reqlen, &out), -EBADMSG);
}

Test(vfio_user_codec, dma_unmap_2021_reply_rejects_a_bitmap_past_the_end)
{
    uint8_t raw[16 + 24 + 8];
    vfio_user_header h = {.msg_id = 1, .command = 3, .msg_size = sizeof(raw), .flags = 1};
    vfio_user_header_encode(&h, raw);
    put_le64(raw + 16, 4096);
    put_le64(raw + 24, 9); /* one byte more than present */
    put_le64(raw + 32, 0);
    memset(raw + 40, 0, 8);
    vfio_user_msg out;
    cr_assert_eq(vfio_user_msg_decode(D2021, raw, sizeof(raw), NULL, 0, &out, dec_entries, 256),
                 -EBADMSG);
}

Test(vfio_user_codec, dma_map_0_9_1_matches_the_peer_layout)
{
    vfio_user_dma_entry e = {.iova = 0x100000, .size = 0x200000, .offset = 0, .prot = 3, .fd = 4};
    vfio_user_msg m = request(VFIO_USER_OP_DMA_MAP, 2), out;
    m.dma.entries = &e;
    m.dma.count = 1;
    size_t len = encode(D091, &m);
    cr_assert_eq(len, 48);
    cr_assert_eq(get_le32(buf + 16), 32);       /* argsz */
    cr_assert_eq(get_le32(buf + 20), 3);        /* flags: read | write */
    cr_assert_eq(get_le64(buf + 32), 0x100000); /* addr at body offset 16 */
    cr_assert_eq(get_le64(buf + 40), 0x200000); /* size at body offset 24 */
    int fd = 12;
    decode_ok(D091, len, &fd, 1, &out);
    cr_assert_eq(out.dma.entries[0].fd, 12);
    cr_assert_eq(out.dma.entries[0].iova, 0x100000);
    decode_ok(D091, len, NULL, 0, &out);
    cr_assert_eq(out.dma.entries[0].fd, -1);
}

Test(vfio_user_codec, single_region_dialects_refuse_tables)
{
    vfio_user_dma_entry e[2] = {{.size = 0x1000, .fd = -1},
                                {.iova = 0x1000, .size = 0x1000, .fd = -1}};
    vfio_user_msg m = request(VFIO_USER_OP_DMA_MAP, 1);
    m.dma.entries = e;
    m.dma.count = 2;
    size_t len;
    cr_assert_eq(vfio_user_msg_encode(D091, &m, buf, sizeof(buf), &len), -ENOTSUP);
    m.op = VFIO_USER_OP_DMA_UNMAP;
    cr_assert_eq(vfio_user_msg_encode(DFINAL, &m, buf, sizeof(buf), &len), -ENOTSUP);
}

Test(vfio_user_codec, dma_unmap_0_9_1_with_bitmap_matches_the_peer_layout)
{
    vfio_user_dma_entry e = {.iova = 0x100000,
                             .size = 0x200000,
                             .flags = VFIO_USER_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
                             .bitmap_pgsize = 4096,
                             .bitmap_size = 64};
    vfio_user_msg m = request(VFIO_USER_OP_DMA_UNMAP, 10), out;
    m.dma.entries = &e;
    m.dma.count = 1;
    size_t len = encode(D091, &m);
    cr_assert_eq(len, 16 + 24 + 16);
    cr_assert_eq(get_le32(buf + 16), 104); /* argsz = 24 + 16 + 64, as the probe sent */
    uint8_t req[64];
    memcpy(req, buf, len);
    size_t req_len = len;

    uint8_t bitmap[64] = {[0] = 0x3};
    vfio_user_dma_entry r = e;
    r.bitmap = bitmap;
    vfio_user_msg rp = reply_to(VFIO_USER_OP_DMA_UNMAP, 10);
    rp.dma.entries = &r;
    rp.dma.count = 1;
    rp.dma.argsz = 104;
    len = encode(D091, &rp);
    cr_assert_eq(len, 16 + 104); /* the peer's msg_size=120 */
    decode_ok(D091, len, NULL, 0, &out);
    cr_assert_eq(out.dma.entries[0].bitmap_size, 64);
    cr_assert_eq(out.dma.entries[0].bitmap[0], 0x3);
    cr_assert_eq(vfio_user_reply_check(D091, req, req_len, &out), 0);
}

Test(vfio_user_codec, dma_unmap_reply_with_a_different_bitmap_size_fails_the_check)
{
    vfio_user_dma_entry e = {
        .iova = 0x100000, .size = 0x200000, .flags = 1, .bitmap_pgsize = 4096, .bitmap_size = 64};
    vfio_user_msg m = request(VFIO_USER_OP_DMA_UNMAP, 3), out;
    m.dma.entries = &e;
    m.dma.count = 1;
    uint8_t req[64];
    size_t req_len;
    cr_assert_eq(vfio_user_msg_encode(D091, &m, req, sizeof(req), &req_len), 0);
    vfio_user_dma_entry r = e;
    r.bitmap_size = 128;
    vfio_user_msg rp = reply_to(VFIO_USER_OP_DMA_UNMAP, 3);
    rp.dma.entries = &r;
    rp.dma.count = 1;
    size_t len = encode(D091, &rp);
    decode_ok(D091, len, NULL, 0, &out);
    cr_assert_eq(vfio_user_reply_check(D091, req, req_len, &out), -EBADMSG);
}

Test(vfio_user_codec, unmap_all_sets_flag_bit_1_with_a_zero_range)
{
    vfio_user_dma_entry e = {.flags = VFIO_USER_DMA_UNMAP_FLAG_ALL};
    vfio_user_msg m = request(VFIO_USER_OP_DMA_UNMAP, 17), out;
    m.dma.entries = &e;
    m.dma.count = 1;
    size_t len = encode(D091, &m);
    cr_assert_eq(len, 40);
    cr_assert_eq(get_le32(buf + 20), 2);
    decode_ok(D091, len, NULL, 0, &out);
    cr_assert_eq(out.dma.entries[0].flags, VFIO_USER_DMA_UNMAP_FLAG_ALL);

    e.iova = 0x1000;
    e.size = 0x1000;
    cr_assert_eq(vfio_user_msg_encode(D091, &m, buf, sizeof(buf), &len), -EINVAL);
    e.iova = 0;
    e.size = 0;
    e.flags |= VFIO_USER_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP;
    e.bitmap_pgsize = 4096;
    cr_assert_eq(vfio_user_msg_encode(D091, &m, buf, sizeof(buf), &len), -EINVAL);
}

Test(vfio_user_codec, dirty_pages_0_9_1_get_bitmap_matches_the_peer_layout)
{
    vfio_user_msg m = request(VFIO_USER_OP_DIRTY_PAGES, 7), out;
    m.dirty.flags = VFIO_USER_DIRTY_PAGES_FLAG_GET_BITMAP;
    m.dirty.has_range = true;
    m.dirty.iova = 0x100000;
    m.dirty.size = 0x200000;
    m.dirty.pgsize = 4096;
    m.dirty.bitmap_size = 64;
    size_t len = encode(D091, &m);
    cr_assert_eq(len, 16 + 40);
    cr_assert_eq(get_le32(buf + 16), 104);
    cr_assert_eq(get_le16(buf + 2), 14);
    uint8_t req[64];
    memcpy(req, buf, len);
    size_t req_len = len;

    uint8_t bitmap[64] = {0};
    vfio_user_msg rp = reply_to(VFIO_USER_OP_DIRTY_PAGES, 7);
    rp.dirty = m.dirty;
    rp.dirty.argsz = 104;
    rp.dirty.bitmap = bitmap;
    len = encode(D091, &rp);
    cr_assert_eq(len, 120);
    decode_ok(D091, len, NULL, 0, &out);
    cr_assert(out.dirty.has_range);
    cr_assert_eq(out.dirty.bitmap_size, 64);
    cr_assert_eq(vfio_user_reply_check(D091, req, req_len, &out), 0);
}

Test(vfio_user_codec, dirty_pages_2021_is_command_15_with_a_24_byte_bitmap_reply)
{
    vfio_user_msg m = request(VFIO_USER_OP_DIRTY_PAGES, 7), out;
    m.dirty.flags = VFIO_USER_DIRTY_PAGES_FLAG_GET_BITMAP;
    m.dirty.has_range = true;
    m.dirty.iova = 0;
    m.dirty.size = 0x40000;
    m.dirty.pgsize = 4096;
    m.dirty.bitmap_size = 8;
    size_t len = encode(D2021, &m);
    cr_assert_eq(len, 16 + 8 + 40);
    cr_assert_eq(get_le16(buf + 2), 15);
    decode_ok(D2021, len, NULL, 0, &out);
    cr_assert_eq(out.dirty.size, 0x40000);
    cr_assert_eq(out.dirty.bitmap_size, 8);

    uint8_t bm[8] = {0xff};
    vfio_user_msg rp = reply_to(VFIO_USER_OP_DIRTY_PAGES, 7);
    rp.dirty = m.dirty;
    rp.dirty.bitmap = bm;
    len = encode(D2021, &rp);
    cr_assert_eq(len, 16 + 24 + 8);
    decode_ok(D2021, len, NULL, 0, &out);
    cr_assert_eq(out.dirty.bitmap[0], 0xff);
}

Test(vfio_user_codec, dirty_pages_start_is_an_8_byte_body_with_an_empty_reply)
{
    vfio_user_msg m = request(VFIO_USER_OP_DIRTY_PAGES, 6), out;
    m.dirty.flags = VFIO_USER_DIRTY_PAGES_FLAG_START;
    size_t len = encode(D091, &m);
    cr_assert_eq(len, 24);
    cr_assert_eq(get_le32(buf + 16), 8);
    vfio_user_msg rp = reply_to(VFIO_USER_OP_DIRTY_PAGES, 6);
    len = encode(D091, &rp);
    cr_assert_eq(len, 16);
    decode_ok(D091, len, NULL, 0, &out);
    cr_assert_not(out.dirty.has_range);
}

Test(vfio_user_codec, dma_logging_start_with_two_ranges_is_56_bytes)
{
    vfio_user_dma_entry r[2] = {{.iova = 0x100000, .size = 0x200000},
                                {.iova = 0x400000, .size = 0x200000}};
    vfio_user_msg m = request(VFIO_USER_OP_DEVICE_FEATURE, 5), out;
    m.feature.flags = VFIO_USER_DEVICE_FEATURE_SET | VFIO_USER_DEVICE_FEATURE_DMA_LOGGING_START;
    m.feature.has_data = true;
    m.feature.page_size = 4096;
    m.feature.ranges = r;
    m.feature.num_ranges = 2;
    size_t len = encode(DFINAL, &m);
    cr_assert_eq(len, 16 + 56);
    cr_assert_eq(get_le16(buf + 2), 16);
    decode_ok(DFINAL, len, NULL, 0, &out);
    cr_assert_eq(out.feature.num_ranges, 2);
    cr_assert_eq(out.feature.ranges[1].iova, 0x400000);
    cr_assert_eq(out.feature.page_size, 4096);
}

Test(vfio_user_codec, dma_logging_report_reply_carries_the_bitmap_at_offset_24)
{
    vfio_user_msg m = request(VFIO_USER_OP_DEVICE_FEATURE, 7), out;
    m.feature.flags = VFIO_USER_DEVICE_FEATURE_GET | VFIO_USER_DEVICE_FEATURE_DMA_LOGGING_REPORT;
    m.feature.has_data = true;
    m.feature.iova = 0x100000;
    m.feature.length = 0x200000;
    m.feature.page_size = 4096;
    m.feature.bitmap_len = 64;
    size_t len = encode(DFINAL, &m);
    cr_assert_eq(len, 16 + 32);
    cr_assert_eq(get_le32(buf + 16), 96); /* argsz as the probe sent it */
    uint8_t req[64];
    memcpy(req, buf, len);
    size_t req_len = len;

    uint8_t bm[64] = {[1] = 0x10};
    vfio_user_msg rp = reply_to(VFIO_USER_OP_DEVICE_FEATURE, 7);
    rp.feature = m.feature;
    rp.feature.bitmap = bm;
    len = encode(DFINAL, &rp);
    cr_assert_eq(len, 112); /* the peer's msg_size */
    decode_ok(DFINAL, len, NULL, 0, &out);
    cr_assert_eq(out.feature.bitmap_len, 64);
    cr_assert_eq(out.feature.bitmap[1], 0x10);
    cr_assert_eq(vfio_user_reply_check(DFINAL, req, req_len, &out), 0);
}

Test(vfio_user_codec, region_read_and_write_round_trip_their_data)
{
    uint8_t data[5] = {1, 2, 3, 4, 5};
    vfio_user_msg m = request(VFIO_USER_OP_REGION_WRITE, 3), out;
    m.region_io.offset = 0x10;
    m.region_io.region = 0;
    m.region_io.count = 5;
    m.region_io.data = data;
    m.region_io.data_len = 5;
    size_t len = encode(D2021, &m);
    cr_assert_eq(len, 32 + 5);
    decode_ok(D2021, len, NULL, 0, &out);
    cr_assert_eq(out.region_io.count, 5);
    cr_assert_eq(memcmp(out.region_io.data, data, 5), 0);

    /* A write whose count disagrees with its data is malformed. */
    put_le32(buf + 28, 4);
    cr_assert_eq(vfio_user_msg_decode(D2021, buf, len, NULL, 0, &out, dec_entries, 256), -EBADMSG);

    vfio_user_msg rd = request(VFIO_USER_OP_REGION_READ, 4);
    rd.region_io.offset = 0x18;
    rd.region_io.count = 8;
    len = encode(D091, &rd);
    cr_assert_eq(len, 32);
    decode_ok(D091, len, NULL, 0, &out);
    cr_assert_eq(out.region_io.data_len, 0);
    cr_assert_eq(out.region_io.count, 8);
}

Test(vfio_user_codec, dma_read_and_write_from_the_server_round_trip)
{
    uint8_t data[16];
    memset(data, 0xab, sizeof(data));
    vfio_user_msg m = request(VFIO_USER_OP_DMA_WRITE, 1), out;
    m.dma_io.addr = 0x5000;
    m.dma_io.count = 16;
    m.dma_io.data = data;
    m.dma_io.data_len = 16;
    size_t len = encode(D091, &m);
    cr_assert_eq(len, 32 + 16);
    decode_ok(D091, len, NULL, 0, &out);
    cr_assert_eq(out.op, VFIO_USER_OP_DMA_WRITE);
    cr_assert_eq(out.dma_io.addr, 0x5000);
    cr_assert_eq(out.dma_io.data[15], 0xab);
}

Test(vfio_user_codec, vm_interrupt_exists_only_in_2021)
{
    vfio_user_msg m = request(VFIO_USER_OP_VM_INTERRUPT, 1), out;
    m.interrupt.sub_index = 3;
    size_t len = encode(D2021, &m);
    cr_assert_eq(len, 20);
    decode_ok(D2021, len, NULL, 0, &out);
    cr_assert_eq(out.interrupt.sub_index, 3);
    cr_assert_eq(vfio_user_msg_encode(D091, &m, buf, sizeof(buf), &len), -ENOTSUP);
}

Test(vfio_user_codec, device_info_and_region_info_round_trip)
{
    vfio_user_msg m = reply_to(VFIO_USER_OP_DEVICE_GET_INFO, 1), out;
    m.device_info.flags = VFIO_USER_DEVICE_FLAGS_RESET | VFIO_USER_DEVICE_FLAGS_PCI;
    m.device_info.num_regions = 9;
    m.device_info.num_irqs = 5;
    size_t len = encode(D091, &m);
    cr_assert_eq(len, 32);
    decode_ok(D091, len, NULL, 0, &out);
    cr_assert_eq(out.device_info.argsz, 16);
    cr_assert_eq(out.device_info.num_regions, 9);

    vfio_user_msg r = reply_to(VFIO_USER_OP_DEVICE_GET_REGION_INFO, 2);
    r.region_info.index = 0;
    r.region_info.flags = VFIO_USER_REGION_INFO_FLAG_READ | VFIO_USER_REGION_INFO_FLAG_WRITE;
    r.region_info.size = 4096;
    len = encode(D2021, &r);
    cr_assert_eq(len, 48);
    decode_ok(D2021, len, NULL, 0, &out);
    cr_assert_eq(out.region_info.size, 4096);
    cr_assert_eq(out.region_info.argsz, 32);
    int fd = 5;
    decode_ok(D2021, len, &fd, 1, &out); /* a region fd is allowed */
}

Test(vfio_user_codec, version_round_trips_and_rejects_a_missing_nul)
{
    const char *json = "{\"capabilities\":{\"max_msg_fds\":8}}";
    vfio_user_msg m = request(VFIO_USER_OP_VERSION, 0), out;
    m.version.major = 0;
    m.version.minor = 1;
    m.version.json = json;
    size_t len = encode(D2021, &m);
    cr_assert_eq(len, 16 + 4 + strlen(json) + 1);
    decode_ok(D2021, len, NULL, 0, &out);
    cr_assert_str_eq(out.version.json, json);
    cr_assert_eq(out.version.json_len, strlen(json) + 1);

    buf[len - 1] = '}';
    cr_assert_eq(vfio_user_msg_decode(D2021, buf, len, NULL, 0, &out, dec_entries, 256), -EBADMSG);
}

Test(vfio_user_codec, fds_on_a_message_that_cannot_carry_them_are_a_protocol_error)
{
    vfio_user_msg m = reply_to(VFIO_USER_OP_DMA_MAP, 1), out;
    size_t len = encode(D091, &m);
    int fd = 3;
    cr_assert_eq(vfio_user_msg_decode(D091, buf, len, &fd, 1, &out, dec_entries, 256), -EPROTO);
}

Test(vfio_user_codec, error_replies_decode_to_the_header_alone)
{
    vfio_user_msg m = reply_to(VFIO_USER_OP_DMA_UNMAP, 8), out;
    m.hdr.flags |= VFIO_USER_F_ERROR;
    m.hdr.error_no = ENOENT;
    size_t len = encode(D091, &m);
    cr_assert_eq(len, 16);
    decode_ok(D091, len, NULL, 0, &out);
    cr_assert_eq(out.hdr.error_no, ENOENT);
}

Test(vfio_user_codec, encode_reports_a_buffer_too_small)
{
    vfio_user_msg m = request(VFIO_USER_OP_DEVICE_GET_INFO, 1);
    size_t len;
    cr_assert_eq(vfio_user_msg_encode(D091, &m, buf, 31, &len), -ENOSPC);
    cr_assert_eq(vfio_user_msg_encode(D091, &m, buf, 32, &len), 0);
}

Test(vfio_user_codec, every_truncation_of_every_message_is_rejected_or_consistent)
{
    uint8_t bm[64] = {0};
    vfio_user_dma_entry e[2] = {
        {.iova = 0x1000,
         .size = 0x1000,
         .flags = 1,
         .bitmap_pgsize = 4096,
         .bitmap_size = 8,
         .bitmap = bm},
        {.iova = 0x9000,
         .size = 0x40000,
         .flags = 1,
         .bitmap_pgsize = 4096,
         .bitmap_size = 64,
         .bitmap = bm},
    };
    vfio_user_msg msgs[3];
    msgs[0] = reply_to(VFIO_USER_OP_DMA_UNMAP, 1);
    msgs[0].dma.entries = e;
    msgs[0].dma.count = 2;
    msgs[1] = request(VFIO_USER_OP_DMA_UNMAP, 2);
    msgs[1].dma.entries = e;
    msgs[1].dma.count = 2;
    msgs[2] = reply_to(VFIO_USER_OP_REGION_READ, 3);
    msgs[2].region_io.count = 8;
    msgs[2].region_io.data = bm;
    msgs[2].region_io.data_len = 8;
    int rejected = 0;
    for (int i = 0; i < 3; i++) {
        size_t full = encode(D2021, &msgs[i]);
        for (size_t cut = 0; cut < full; cut++) {
            uint8_t *copy = malloc(cut ? cut : 1);
            memcpy(copy, buf, cut);
            if (cut >= 16)
                put_le32(copy + 4, (uint32_t)cut);
            vfio_user_msg out;
            int rc = vfio_user_msg_decode(D2021, copy, cut, NULL, 0, &out, dec_entries, 256);
            free(copy);
            /* A prefix can only parse when it ends exactly on an entry. */
            if (rc < 0)
                rejected++;
        }
    }
    cr_assert_gt(rejected, 100);
}

Test(vfio_user_codec, bitmap_bytes_round_up_to_whole_words)
{
    uint64_t b;
    cr_assert_eq(vfio_user_bitmap_bytes(16 * 4096, 4096, &b), 0);
    cr_assert_eq(b, 8);
    cr_assert_eq(vfio_user_bitmap_bytes(0x200000, 4096, &b), 0);
    cr_assert_eq(b, 64);
    cr_assert_eq(vfio_user_bitmap_bytes(4097, 4096, &b), 0);
    cr_assert_eq(b, 8);
    cr_assert_eq(vfio_user_bitmap_bytes(4096, 3000, &b), -EINVAL);
    cr_assert_eq(vfio_user_bitmap_bytes(0, 4096, &b), -EINVAL);
}

Test(vfio_user_codec, reply_check_rejects_a_reply_to_another_operation)
{
    vfio_user_msg rq = request(VFIO_USER_OP_DEVICE_RESET, 2), out;
    uint8_t req[32];
    size_t req_len;
    cr_assert_eq(vfio_user_msg_encode(D091, &rq, req, sizeof(req), &req_len), 0);
    vfio_user_msg rp = reply_to(VFIO_USER_OP_DMA_MAP, 2);
    size_t len = encode(D091, &rp);
    decode_ok(D091, len, NULL, 0, &out);
    cr_assert_eq(vfio_user_reply_check(D091, req, req_len, &out), -EBADMSG);
    rp = reply_to(VFIO_USER_OP_DEVICE_RESET, 2);
    len = encode(D091, &rp);
    decode_ok(D091, len, NULL, 0, &out);
    cr_assert_eq(vfio_user_reply_check(D091, req, req_len, &out), 0);
}

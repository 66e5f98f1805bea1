/* SPDX-License-Identifier: MIT */
/*
 * The DMA mapper against the reference server over a real socket, in
 * every dialect and against the profiles of real servers. The sample
 * device's DMA shows what the server can reach.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <glib.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vfio-user-server.h"
#include "vfio-user.h"

#include "mapper_harness.h"

static uint8_t *ram_at_iova(uint64_t iova)
{
    return h.ram + (iova - 0x100000);
}

static void check_maps_and_dma(vfio_user_dialect d)
{
    vfio_user_mapper_config cfg = {0};
    start(VFIO_USER_SERVER_PROFILE_OWN, d, &cfg, NULL);
    mapping_event evs[3] = {
        ev_at(0x100000, PG, MAPPING_PROT_READ | MAPPING_PROT_WRITE, 0),
        ev_at(0x101000, 2 * PG, MAPPING_PROT_READ | MAPPING_PROT_WRITE, 1),
        ev_at(0x200000, PG, MAPPING_PROT_READ | MAPPING_PROT_WRITE, 2),
    };
    bool maps[3] = {true, true, true};
    vfio_user_mapper_stats before, after;
    vfio_user_mapper_stats_get(h.m, &before);
    cr_assert_eq(batch(evs, maps, 3, NULL), 0);
    vfio_user_mapper_stats_get(h.m, &after);
    cr_assert_eq(after.waits - before.waits, 1, "one wait per batch");
    cr_assert_eq(after.batches - before.batches, 1);
    if (d == VFIO_USER_DIALECT_2021)
        cr_assert_eq(after.messages - before.messages, 1, "the adjacent maps merge into a table");
    else
        cr_assert_eq(after.messages - before.messages, 3);

    cr_assert_eq(device_write(0x101800, 0x1000, 0x5a), 0);
    cr_assert_eq(ram_at_iova(0x101800)[0], 0x5a);
    cr_assert_eq(ram_at_iova(0x1027ff)[0], 0x5a);
    cr_assert_eq(ram_at_iova(0x102800)[0], 0);

    unmap_one(0x200000, PG);
    cr_assert_neq(device_write(0x200000, 16, 1), 0, "unmapped IOVA is unreachable");
    cr_assert_eq(ram_at_iova(0x200000)[0], 0);
    stop();
}

Test(vfio_user_mapper, maps_a_batch_with_one_wait_in_dialect_2021)
{
    check_maps_and_dma(VFIO_USER_DIALECT_2021);
}

Test(vfio_user_mapper, maps_a_batch_with_one_wait_in_dialect_0_9_1)
{
    check_maps_and_dma(VFIO_USER_DIALECT_0_9_1);
}

Test(vfio_user_mapper, maps_a_batch_with_one_wait_in_dialect_final)
{
    check_maps_and_dma(VFIO_USER_DIALECT_FINAL);
}

static int collect_page(void *opaque, uint64_t gpa)
{
    g_array_append_val((GArray *)opaque, gpa);
    return 0;
}

static GArray *dirty_pages(void)
{
    GArray *a = g_array_new(FALSE, FALSE, sizeof(uint64_t));
    guest_mem_dirty_collect(h.gm, true, collect_page, a);
    return a;
}

static void check_dirty_on_unmap(vfio_user_server_profile profile, vfio_user_dialect d, bool exact)
{
    vfio_user_mapper_config cfg = {0};
    start(profile, d, &cfg, NULL);
    cr_assert_eq(map_one(0x100000, 8 * PG), 0);
    cr_assert_eq(map_one(0x300000, 4 * PG), 0);
    cr_assert_eq(vfio_user_mapper_dirty_start(h.m), 0);
    cr_assert_eq(device_write(0x102000, 10, 7), 0); /* page 2 */
    cr_assert_eq(device_write(0x106ff0, 32, 7), 0); /* pages 6 and 7 */
    cr_assert_eq(device_write(0x301000, 1, 7), 0);
    unmap_one(0x100000, 8 * PG);
    GArray *a = dirty_pages();
    if (exact) {
        cr_assert_eq(a->len, 3, "got %u pages", a->len);
        cr_assert_eq(g_array_index(a, uint64_t, 0), RAM_GPA + 0x2000);
        cr_assert_eq(g_array_index(a, uint64_t, 1), RAM_GPA + 0x6000);
        cr_assert_eq(g_array_index(a, uint64_t, 2), RAM_GPA + 0x7000);
    } else {
        cr_assert_eq(a->len, 8, "no bitmap: the whole range is dirty");
    }
    g_array_free(a, TRUE);
    /* The still-mapped region's write comes with a sync. */
    cr_assert_eq(vfio_user_mapper_dirty_sync(h.m), 0);
    a = dirty_pages();
    if (exact) {
        cr_assert_eq(a->len, 1);
        cr_assert_eq(g_array_index(a, uint64_t, 0), RAM_GPA + 0x201000);
    } else {
        cr_assert_eq(a->len, 4);
    }
    g_array_free(a, TRUE);
    cr_assert_eq(vfio_user_mapper_dirty_stop(h.m), 0);
    stop();
}

Test(vfio_user_mapper, unmap_during_tracking_returns_exact_dirty_pages_in_2021)
{
    check_dirty_on_unmap(VFIO_USER_SERVER_PROFILE_OWN, VFIO_USER_DIALECT_2021, true);
}

Test(vfio_user_mapper, unmap_during_tracking_returns_exact_dirty_pages_in_0_9_1)
{
    check_dirty_on_unmap(VFIO_USER_SERVER_PROFILE_OWN, VFIO_USER_DIALECT_0_9_1, true);
}

Test(vfio_user_mapper, unmap_during_tracking_returns_exact_dirty_pages_in_final)
{
    check_dirty_on_unmap(VFIO_USER_SERVER_PROFILE_OWN, VFIO_USER_DIALECT_FINAL, true);
}

Test(vfio_user_mapper, libvfio_user_2022_profile_gives_exact_dirty_pages)
{
    check_dirty_on_unmap(VFIO_USER_SERVER_PROFILE_LIBVFIO_USER_2022, VFIO_USER_DIALECT_0_9_1, true);
}

Test(vfio_user_mapper, libvfio_user_2026_profile_gives_exact_dirty_pages)
{
    check_dirty_on_unmap(VFIO_USER_SERVER_PROFILE_LIBVFIO_USER_2026, VFIO_USER_DIALECT_FINAL, true);
}

Test(vfio_user_mapper, server_without_migration_marks_whole_ranges_dirty)
{
    check_dirty_on_unmap(VFIO_USER_SERVER_PROFILE_QEMU_7_2, VFIO_USER_DIALECT_0_9_1, false);
}

Test(vfio_user_mapper, region_limit_refusal_fails_only_that_map)
{
    vfio_user_mapper_config cfg = {0};
    start(VFIO_USER_SERVER_PROFILE_LIBVFIO_USER_2022, VFIO_USER_DIALECT_0_9_1, &cfg, NULL);
    for (unsigned i = 0; i < 16; i++)
        cr_assert_eq(map_one(0x100000 + i * 2 * PG, PG), 0, "map %u", i);
    cr_assert_eq(map_one(0x100000 + 16 * 2 * PG, PG), -ENOSPC);
    cr_assert_eq(h.failed->len, 1);
    cr_assert_eq(g_array_index(h.failed, mapping_event, 0).iova, 0x100000 + 16 * 2 * PG);
    cr_assert_eq(g_array_index(h.failed, mapping_event, 0).seq, ENOSPC);
    vfio_user_mapper_stats st;
    vfio_user_mapper_stats_get(h.m, &st);
    cr_assert_eq(st.regions_live, 16);
    cr_assert_eq(st.map_failures, 1);
    /* The others still work, and the refused one is unreachable. */
    cr_assert_eq(device_write(0x100000 + 15 * 2 * PG, 8, 3), 0);
    cr_assert_neq(device_write(0x100000 + 16 * 2 * PG, 8, 3), 0);
    /* After an unmap there is room again. */
    unmap_one(0x100000, PG);
    cr_assert_eq(map_one(0x100000 + 16 * 2 * PG, PG), 0);
    stop();
}

Test(vfio_user_mapper, range_outside_guest_ram_is_refused_at_once)
{
    vfio_user_mapper_config cfg = {0};
    start(VFIO_USER_SERVER_PROFILE_OWN, VFIO_USER_DIALECT_2021, &cfg, NULL);
    mapping_event e = ev_at(0x100000, PG, MAPPING_PROT_READ, 0);
    e.gpa = RAM_GPA + RAM_SIZE - PG;
    e.iova_last = e.iova + 2 * PG - 1;
    mapping_listener l = vfio_user_mapper_listener(h.m);
    l.ops->batch_begin(l.opaque);
    cr_assert_eq(l.ops->map(l.opaque, &e), -EFAULT);
    cr_assert_eq(l.ops->batch_end(l.opaque, on_failed, NULL), 0);
    vfio_user_mapper_stats st;
    vfio_user_mapper_stats_get(h.m, &st);
    cr_assert_eq(st.regions_live, 0);
    stop();
}

Test(vfio_user_mapper, mmio_mappings_are_not_forwarded)
{
    vfio_user_mapper_config cfg = {0};
    start(VFIO_USER_SERVER_PROFILE_OWN, VFIO_USER_DIALECT_2021, &cfg, NULL);
    mapping_event e = ev_at(0x100000, PG, MAPPING_PROT_READ | MAPPING_PROT_MMIO, 0);
    e.gpa = 0xfe000000; /* not RAM: an MMIO window */
    bool yes = true, no = false;
    cr_assert_eq(batch(&e, &yes, 1, NULL), 0);
    vfio_user_mapper_stats st;
    vfio_user_mapper_stats_get(h.m, &st);
    cr_assert_eq(st.regions_live, 0);
    cr_assert_eq(st.messages, 0);
    cr_assert_eq(batch(&e, &no, 1, NULL), 0);
    stop();
}

Test(vfio_user_mapper, isolated_mode_routes_device_dma_through_the_client)
{
    vfio_user_mapper_config cfg = {.isolated = true};
    start(VFIO_USER_SERVER_PROFILE_OWN, VFIO_USER_DIALECT_2021, &cfg, NULL);
    cr_assert_eq(map_one(0x100000, 4 * PG), 0);
    cr_assert_eq(device_write(0x100100, 64, 0x77), 0);
    cr_assert_gt(h.dma_calls, 0, "every access went through dma_rw");
    cr_assert_eq(ram_at_iova(0x100100)[63], 0x77);
    cr_assert(guest_mem_dirty_test(h.gm, RAM_GPA), "client-side writes mark the log");
    stop();
}

Test(vfio_user_mapper, qemu_plan_sends_one_waited_message_per_pow2_chunk)
{
    vfio_user_mapper_config cfg = {.plan = VFIO_USER_PLAN_QEMU};
    start(VFIO_USER_SERVER_PROFILE_OWN, VFIO_USER_DIALECT_0_9_1, &cfg, NULL);
    vfio_user_mapper_stats before, after;
    vfio_user_mapper_stats_get(h.m, &before);
    /* 0x100000 + 7 pages: chunks of 4, 2 and 1 pages. */
    cr_assert_eq(map_one(0x100000, 7 * PG), 0);
    vfio_user_mapper_stats_get(h.m, &after);
    cr_assert_eq(after.messages - before.messages, 3);
    cr_assert_eq(after.waits - before.waits, 3);
    cr_assert_eq(after.regions_live, 3);
    cr_assert_eq(device_write(0x106000, 4096, 9), 0);
    unmap_one(0x100000, 7 * PG);
    vfio_user_mapper_stats_get(h.m, &after);
    cr_assert_eq(after.regions_live, 0);
    stop();
}

Test(vfio_user_mapper, table_messages_respect_max_msg_fds)
{
    vfio_user_mapper_config cfg = {0};
    start(VFIO_USER_SERVER_PROFILE_OWN, VFIO_USER_DIALECT_2021, &cfg, NULL);
    const vfio_user_caps *caps = vfio_user_client_server_caps(vfio_user_mapper_client(h.m));
    unsigned n = caps->max_msg_fds * 3 + 1;
    mapping_event *evs = g_new(mapping_event, n);
    bool *maps = g_new(bool, n);
    for (unsigned i = 0; i < n; i++) {
        /* Gaps between them: nothing merges. */
        evs[i] = ev_at(0x100000 + i * 2 * PG, PG, MAPPING_PROT_READ, i);
        maps[i] = true;
    }
    vfio_user_mapper_stats before, after;
    vfio_user_mapper_stats_get(h.m, &before);
    cr_assert_eq(batch(evs, maps, n, NULL), 0);
    vfio_user_mapper_stats_get(h.m, &after);
    cr_assert_eq(after.messages - before.messages, 4);
    cr_assert_eq(after.waits - before.waits, 1);
    cr_assert_eq(after.regions_live, n);
    g_free(evs);
    g_free(maps);
    stop();
}

Test(vfio_user_mapper, reconnect_remaps_and_marks_lost_ranges_dirty)
{
    vfio_user_mapper_config cfg = {0};
    /* The first DMA_UNMAP reply is cut off: the connection drops. */
    vfio_user_server_faults f = {
        .kinds = VFIO_USER_SERVER_FAULT_DROP_MID_REPLY,
        .command = VFIO_USER_DMA_UNMAP,
        .count = 1,
    };
    start(VFIO_USER_SERVER_PROFILE_OWN, VFIO_USER_DIALECT_2021, &cfg, &f);
    cr_assert_eq(map_one(0x100000, 2 * PG), 0);
    cr_assert_eq(map_one(0x200000, 2 * PG), 0);
    cr_assert_eq(vfio_user_mapper_dirty_start(h.m), 0);
    unmap_one(0x200000, 2 * PG);
    cr_assert_not(vfio_user_client_connected(vfio_user_mapper_client(h.m)));
    /* No bitmap could be had: the removed range and everything the lost
     * server held are dirty. */
    GArray *a = dirty_pages();
    cr_assert_eq(a->len, 4);
    g_array_free(a, TRUE);
    /* The next batch reconnects first and re-establishes the mapping. */
    cr_assert_eq(map_one(0x300000, PG), 0);
    vfio_user_mapper_stats st;
    vfio_user_mapper_stats_get(h.m, &st);
    cr_assert_eq(st.reconnects, 1);
    cr_assert_eq(st.regions_live, 2);
    cr_assert_eq(device_write(0x101000, 8, 4), 0);
    cr_assert_eq(device_write(0x300000, 8, 4), 0);
    cr_assert_neq(device_write(0x200000, 8, 4), 0);
    /* Tracking resumed on the new connection: a sync brings back exactly
     * the pages written since (the fault hits each connection's first
     * DMA_UNMAP, so the check goes through GET_BITMAP). */
    cr_assert_eq(vfio_user_mapper_dirty_sync(h.m), 0);
    a = dirty_pages();
    cr_assert_eq(a->len, 2);
    cr_assert_eq(g_array_index(a, uint64_t, 0), RAM_GPA + 0x1000);
    cr_assert_eq(g_array_index(a, uint64_t, 1), RAM_GPA + 0x200000);
    g_array_free(a, TRUE);
    stop();
}

Test(vfio_user_mapper, bitmap_too_large_for_a_reply_is_asked_at_coarser_pgsize)
{
    vfio_user_mapper_config cfg = {0};
    start(VFIO_USER_SERVER_PROFILE_OWN, VFIO_USER_DIALECT_2021, &cfg, NULL);
    vfio_user_mapper_free(h.m);
    /* A client that accepts replies of at most 312 bytes: a 16 MiB
     * region's bitmap at 4 KiB per bit (512 bytes) does not fit, at 8 KiB
     * per bit (256 bytes) it does. */
    vfio_user_client_config ccfg;
    vfio_user_client_config_init(&ccfg, VFIO_USER_DIALECT_2021);
    ccfg.caps.migration = true;
    ccfg.caps.pgsize = PG;
    ccfg.caps.max_msg_size = 16 + 24 + 16 + 256; /* room for 2048 pages at most */
    vfio_user_client_ops ops = {.dma_rw = dma_rw};
    GError *err = NULL;
    h.m = vfio_user_mapper_connect(h.path, &ccfg, &ops, &h, h.gm, &cfg, &err);
    cr_assert_not_null(h.m, "%s", err ? err->message : "");
    cr_assert_eq(map_one(0x100000, RAM_SIZE), 0); /* 4096 pages */
    cr_assert_eq(vfio_user_mapper_dirty_start(h.m), 0);
    cr_assert_eq(device_write(0x100000 + 5 * PG, 1, 1), 0);
    unmap_one(0x100000, RAM_SIZE);
    /* At 8 KiB per bit the written page comes back with its neighbour:
     * more pages marked, none lost. */
    GArray *a = dirty_pages();
    cr_assert_eq(a->len, 2, "got %u", a->len);
    cr_assert_eq(g_array_index(a, uint64_t, 0), RAM_GPA + 4 * PG);
    cr_assert_eq(g_array_index(a, uint64_t, 1), RAM_GPA + 5 * PG);
    g_array_free(a, TRUE);
    stop();
}

Test(vfio_user_mapper, a_reconnect_keeps_pages_written_before_the_connection_was_lost)
{
    vfio_user_mapper_config cfg = {0};
    start(VFIO_USER_SERVER_PROFILE_OWN, VFIO_USER_DIALECT_2021, &cfg, NULL);
    cr_assert_eq(map_one(0x100000, 4 * PG), 0);
    cr_assert_eq(vfio_user_mapper_dirty_start(h.m), 0);
    cr_assert_eq(device_write(0x101000, 16, 9), 0); /* in the server's log only */
    /* The connection ends under a device access, not under the mapper: the
     * mapper learns of it only when it reconnects. */
    vfio_user_client *c = vfio_user_mapper_client(h.m);
    shutdown(vfio_user_client_fd(c), SHUT_RDWR);
    uint32_t status;
    cr_assert_lt(vfio_user_client_region_read(c, 0, VFIO_USER_SAMPLE_DMA_STATUS, &status, 4), 0);
    cr_assert_eq(vfio_user_mapper_reconnect(h.m), 0);
    unmap_one(0x100000, 4 * PG);
    cr_assert(guest_mem_dirty_test(h.gm, RAM_GPA + PG),
              "the page written before the connection was lost is dirty");
    stop();
}

/* Replaces the harness's mapper with an isolated one whose client
 * receives messages of at most @max_msg_size bytes. */
static void reconnect_isolated_small(vfio_user_dialect d, uint64_t max_msg_size)
{
    vfio_user_mapper_config cfg = {.isolated = true};
    vfio_user_mapper_free(h.m);
    vfio_user_client_config ccfg;
    vfio_user_client_config_init(&ccfg, d);
    ccfg.caps.max_msg_size = max_msg_size;
    vfio_user_client_ops ops = {.dma_rw = dma_rw};
    GError *err = NULL;
    h.m = vfio_user_mapper_connect(h.path, &ccfg, &ops, &h, h.gm, &cfg, &err);
    cr_assert_not_null(h.m, "%s", err ? err->message : "");
}

static void check_isolated_dma_fits(vfio_user_dialect d)
{
    vfio_user_mapper_config cfg = {.isolated = true};
    start(VFIO_USER_SERVER_PROFILE_OWN, d, &cfg, NULL);
    reconnect_isolated_small(d, 1024);
    cr_assert_eq(map_one(0x100000, 4 * PG), 0);
    /* 3 pages through DMA_WRITE messages the client can receive. */
    cr_assert_eq(device_write(0x100800, 3 * PG, 0x3c), 0);
    cr_assert(vfio_user_client_connected(vfio_user_mapper_client(h.m)));
    cr_assert_gt(h.dma_calls, 3, "the transfer came in pieces");
    cr_assert_eq(ram_at_iova(0x100800)[0], 0x3c);
    cr_assert_eq(ram_at_iova(0x100800 + 3 * PG - 1)[0], 0x3c);
    stop();
}

Test(vfio_user_mapper, isolated_dma_fits_a_small_max_msg_size_in_dialect_2021)
{
    check_isolated_dma_fits(VFIO_USER_DIALECT_2021);
}

Test(vfio_user_mapper, isolated_dma_fits_a_small_max_msg_size_in_dialect_0_9_1)
{
    check_isolated_dma_fits(VFIO_USER_DIALECT_0_9_1);
}

Test(vfio_user_mapper, isolated_dma_fits_a_small_max_msg_size_in_dialect_final)
{
    check_isolated_dma_fits(VFIO_USER_DIALECT_FINAL);
}

Test(vfio_user_mapper, a_batch_whose_connection_broke_trusts_none_of_its_bitmaps)
{
    vfio_user_mapper_config cfg = {0};
    /* The first DMA_UNMAP reply comes under the id of the second, which
     * is in flight too: in 2021 a table reply names no range, so its
     * (clean) bitmap passes for the second's. */
    vfio_user_server_faults f = {
        .kinds = VFIO_USER_SERVER_FAULT_WRONG_ID,
        .command = VFIO_USER_DMA_UNMAP,
        .count = 1,
    };
    start(VFIO_USER_SERVER_PROFILE_OWN, VFIO_USER_DIALECT_2021, &cfg, &f);
    vfio_user_mapper_free(h.m);
    /* Replies of at most 400 bytes: one 1536-page bitmap (192 bytes) per
     * table. A gap between the regions keeps them from merging. */
    vfio_user_client_config ccfg;
    vfio_user_client_config_init(&ccfg, VFIO_USER_DIALECT_2021);
    ccfg.caps.migration = true;
    ccfg.caps.pgsize = PG;
    ccfg.caps.max_msg_size = 400;
    vfio_user_client_ops ops = {.dma_rw = dma_rw};
    GError *err = NULL;
    h.m = vfio_user_mapper_connect(h.path, &ccfg, &ops, &h, h.gm, &cfg, &err);
    cr_assert_not_null(h.m, "%s", err ? err->message : "");
    cr_assert_eq(map_one(0x100000, 1536 * PG), 0);
    cr_assert_eq(map_one(0x800000, 1536 * PG), 0);
    cr_assert_eq(vfio_user_mapper_dirty_start(h.m), 0);
    cr_assert_eq(device_write(0x800000, 8, 5), 0);
    mapping_event evs[2] = {ev_at(0x100000, 1536 * PG, 0, 0), ev_at(0x800000, 1536 * PG, 0, 1)};
    bool maps[2] = {false, false};
    vfio_user_mapper_stats before, after;
    vfio_user_mapper_stats_get(h.m, &before);
    cr_assert_eq(batch(evs, maps, 2, NULL), 0);
    vfio_user_mapper_stats_get(h.m, &after);
    cr_assert_eq(after.messages - before.messages, 2, "one table per unmap");
    /* The real reply to the second then answers nothing: the stream broke. */
    cr_assert_not(vfio_user_client_connected(vfio_user_mapper_client(h.m)));
    cr_assert(guest_mem_dirty_test(h.gm, RAM_GPA + 0x700000), "the written page is dirty");
    stop();
}

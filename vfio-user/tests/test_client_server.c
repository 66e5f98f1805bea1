/* SPDX-License-Identifier: MIT */
/*
 * The client against the reference server (vfio-user/server) in every
 * dialect and every profile of a real server: mapping with and without
 * fds, device DMA through the mapping and through DMA_READ / DMA_WRITE
 * messages, dirty logging, bitmaps on unmap, the profiles' limits, and
 * the server's own fault injection. Built only when the server is.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vfio-user-server.h"
#include "vfio-user.h"

static int count_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    cr_assert_not_null(d);
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1;
}

typedef struct peer {
    vfio_user_server_conn *conn;
    pthread_t thread;
    vfio_user_client *client;
    int memfd;
    uint8_t *mem;           /* the memfd, 4 MiB, as the client sees it */
    uint8_t plain[1 << 16]; /* fd-less guest memory at PLAIN_IOVA */
} peer;

#define PLAIN_IOVA 0x800000ull

static void *serve(void *arg)
{
    peer *p = arg;
    vfio_user_server_conn_run(p->conn);
    return NULL;
}

static int plain_dma(void *opaque, uint64_t iova, void *buf, uint64_t len, bool write)
{
    peer *p = opaque;
    if (iova < PLAIN_IOVA || iova - PLAIN_IOVA > sizeof(p->plain) ||
        len > sizeof(p->plain) - (iova - PLAIN_IOVA))
        return -EFAULT;
    uint8_t *at = p->plain + (iova - PLAIN_IOVA);
    if (write)
        memcpy(at, buf, len);
    else
        memcpy(buf, at, len);
    return 0;
}

static const vfio_user_client_ops plain_ops = {.dma_rw = plain_dma};

static void peer_start(peer *p, vfio_user_server_profile profile, vfio_user_dialect d,
                       const vfio_user_server_faults *faults)
{
    vfio_user_server_options opts;
    vfio_user_client_config cfg;
    GError *err = NULL;
    int sv[2];

    memset(p, 0, sizeof(*p));
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    vfio_user_server_options_init(&opts);
    opts.profile = profile;
    opts.dialect = d;
    if (faults)
        opts.faults = *faults;
    p->conn = vfio_user_server_conn_new(sv[1], &opts, &err);
    cr_assert_not_null(p->conn, "server: %s", err ? err->message : "?");
    cr_assert_eq(pthread_create(&p->thread, NULL, serve, p), 0);

    vfio_user_client_config_init(&cfg, d);
    cfg.caps.migration = true;
    cfg.caps.pgsize = 4096;
    p->client = vfio_user_client_new(sv[0], &cfg, &plain_ops, p, &err);
    cr_assert_not_null(p->client, "client: %s", err ? err->message : "?");

    p->memfd = memfd_create("guest", MFD_CLOEXEC);
    cr_assert_geq(p->memfd, 0);
    cr_assert_eq(ftruncate(p->memfd, 4 << 20), 0);
    p->mem = mmap(NULL, 4 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, p->memfd, 0);
    cr_assert_neq(p->mem, MAP_FAILED);
}

static void peer_stop(peer *p)
{
    vfio_user_client_free(p->client);
    pthread_join(p->thread, NULL);
    vfio_user_server_conn_free(p->conn);
    munmap(p->mem, 4 << 20);
    close(p->memfd);
}

/* Two 2 MiB regions of the memfd (A at 1 MiB, B at 4 MiB) and one without an fd. */
static int map_three(peer *p)
{
    vfio_user_dma_entry e[3] = {
        {.iova = 0x100000, .size = 0x200000, .offset = 0, .prot = 3, .fd = p->memfd},
        {.iova = 0x400000, .size = 0x200000, .offset = 0x200000, .prot = 3, .fd = p->memfd},
        {.iova = PLAIN_IOVA, .size = sizeof(p->plain), .prot = 3, .fd = -1},
    };
    return vfio_user_client_dma_map(p->client, e, 3);
}

static uint32_t device_dma(peer *p, uint64_t iova, uint32_t len, uint32_t fill, uint32_t cmd)
{
    vfio_user_client *c = p->client;
    uint32_t status = 0xffffffff;
    cr_assert_eq(vfio_user_client_region_write(c, 0, VFIO_USER_SAMPLE_DMA_ADDR, &iova, 8), 0);
    cr_assert_eq(vfio_user_client_region_write(c, 0, VFIO_USER_SAMPLE_DMA_LEN, &len, 4), 0);
    cr_assert_eq(vfio_user_client_region_write(c, 0, VFIO_USER_SAMPLE_DMA_FILL, &fill, 4), 0);
    cr_assert_eq(vfio_user_client_region_write(c, 0, VFIO_USER_SAMPLE_DMA_CMD, &cmd, 4), 0);
    cr_assert_eq(vfio_user_client_region_read(c, 0, VFIO_USER_SAMPLE_DMA_STATUS, &status, 4), 0);
    return status;
}

static int start_logging(peer *p, vfio_user_dialect d)
{
    if (d == VFIO_USER_DIALECT_FINAL) {
        vfio_user_dma_entry r[2] = {{.iova = 0x100000, .size = 0x200000},
                                    {.iova = 0x400000, .size = 0x200000}};
        return vfio_user_client_dma_logging_start(p->client, 4096, r, 2);
    }
    return vfio_user_client_dirty_pages(p->client, VFIO_USER_DIRTY_PAGES_FLAG_START);
}

static int query_a(peer *p, vfio_user_dialect d, uint8_t bm[64])
{
    memset(bm, 0, 64);
    if (d == VFIO_USER_DIALECT_FINAL)
        return vfio_user_client_dma_logging_report(p->client, 0x100000, 0x200000, 4096, bm, 64);
    return vfio_user_client_dirty_pages_get(p->client, 0x100000, 0x200000, 4096, bm, 64);
}

/* The common walk, with what each server is expected to answer. */
static void walk(vfio_user_server_profile profile, vfio_user_dialect d, bool migration,
                 bool partial_unmap)
{
    peer p;
    uint8_t bm[64];
    int before = count_fds();

    peer_start(&p, profile, d, NULL);
    cr_assert_eq(vfio_user_client_server_caps(p.client)->unmap_partial, partial_unmap);
    cr_assert_eq(map_three(&p), 0);

    vfio_user_device_info di;
    cr_assert_eq(vfio_user_client_device_get_info(p.client, &di), 0);
    cr_assert_geq(di.num_regions, 1);

    cr_assert_eq(start_logging(&p, d), migration ? 0 : -ENOTSUP);

    /* Through the mapping: pages 3 and 4 of A. */
    cr_assert_eq(device_dma(&p, 0x103000, 0x2000, 0x5a, VFIO_USER_SAMPLE_CMD_WRITE), 0);
    cr_assert_eq(p.mem[0x3000], 0x5a);
    cr_assert_eq(p.mem[0x4fff], 0x5a);
    cr_assert_eq(p.mem[0x5000], 0);
    /* Through DMA_WRITE / DMA_READ messages for the fd-less region. */
    cr_assert_eq(device_dma(&p, PLAIN_IOVA + 0x100, 77, 0x33, VFIO_USER_SAMPLE_CMD_WRITE), 0);
    cr_assert_eq(p.plain[0x100], 0x33);
    cr_assert_eq(p.plain[0x100 + 76], 0x33);
    cr_assert_eq(p.plain[0x100 + 77], 0);
    cr_assert_eq(device_dma(&p, PLAIN_IOVA + 0x100, 100, 0, VFIO_USER_SAMPLE_CMD_READ), 0);
    uint64_t sum = 0;
    cr_assert_eq(vfio_user_client_region_read(p.client, 0, VFIO_USER_SAMPLE_DMA_SUM, &sum, 8), 0);
    cr_assert_eq(sum, 77u * 0x33);

    if (migration) {
        cr_assert_eq(query_a(&p, d, bm), 0);
        cr_assert_eq(bm[0], 0x18, "pages 3 and 4 are dirty");
        cr_assert_eq(query_a(&p, d, bm), 0);
        cr_assert_eq(bm[0], 0, "reading the bitmap cleared it");
    } else {
        cr_assert_eq(query_a(&p, d, bm), -ENOTSUP);
    }

    /* Unmap B with its bitmap after the device wrote its first page. */
    cr_assert_eq(device_dma(&p, 0x400000, 4096, 0x11, VFIO_USER_SAMPLE_CMD_WRITE), 0);
    uint8_t b2[64] = {0};
    uint8_t *bms[1] = {b2};
    vfio_user_dma_entry u = {
        .iova = 0x400000, .size = 0x200000, .flags = 1, .bitmap_pgsize = 4096, .bitmap_size = 64};
    if (migration) {
        cr_assert_eq(vfio_user_client_dma_unmap(p.client, &u, 1, bms), 0);
        cr_assert_eq(b2[0], 0x01);
    } else {
        cr_assert_eq(vfio_user_client_dma_unmap(p.client, &u, 1, bms), -EINVAL);
        u.flags = 0;
        cr_assert_eq(vfio_user_client_dma_unmap(p.client, &u, 1, NULL), 0);
    }

    /* Half of A: only a server that advertises unmap_partial removes it. */
    vfio_user_dma_entry half = {.iova = 0x100000, .size = 0x100000};
    cr_assert_eq(vfio_user_client_dma_unmap(p.client, &half, 1, NULL), partial_unmap ? 0 : -ENOENT);
    cr_assert_eq(vfio_user_client_dma_unmap_all(p.client), 0);
    cr_assert_eq(vfio_user_server_conn_region_count(p.conn), 0);
    cr_assert_eq(vfio_user_client_device_reset(p.client), 0);
    cr_assert(vfio_user_client_connected(p.client));
    peer_stop(&p);
    cr_assert_eq(count_fds(), before, "an fd leaked");
}

Test(vfio_user_client_server, own_server_in_2021_maps_logs_and_removes_portions)
{
    walk(VFIO_USER_SERVER_PROFILE_OWN, VFIO_USER_DIALECT_2021, true, true);
}

Test(vfio_user_client_server, own_server_in_0_9_1_maps_logs_and_unmaps_exactly)
{
    walk(VFIO_USER_SERVER_PROFILE_OWN, VFIO_USER_DIALECT_0_9_1, true, false);
}

Test(vfio_user_client_server, own_server_in_final_logs_through_device_feature)
{
    walk(VFIO_USER_SERVER_PROFILE_OWN, VFIO_USER_DIALECT_FINAL, true, false);
}

Test(vfio_user_client_server, libvfio_user_2022_profile_works_in_0_9_1)
{
    walk(VFIO_USER_SERVER_PROFILE_LIBVFIO_USER_2022, VFIO_USER_DIALECT_0_9_1, true, false);
}

Test(vfio_user_client_server, qemu_7_2_profile_refuses_dirty_logging)
{
    walk(VFIO_USER_SERVER_PROFILE_QEMU_7_2, VFIO_USER_DIALECT_0_9_1, false, false);
}

Test(vfio_user_client_server, libvfio_user_2026_profile_works_in_final)
{
    walk(VFIO_USER_SERVER_PROFILE_LIBVFIO_USER_2026, VFIO_USER_DIALECT_FINAL, true, false);
}

Test(vfio_user_client_server, the_17th_region_fails_cleanly_against_the_2022_servers)
{
    vfio_user_server_profile ps[] = {VFIO_USER_SERVER_PROFILE_LIBVFIO_USER_2022,
                                     VFIO_USER_SERVER_PROFILE_QEMU_7_2};
    for (int i = 0; i < 2; i++) {
        peer p;
        peer_start(&p, ps[i], VFIO_USER_DIALECT_0_9_1, NULL);
        vfio_user_dma_entry e[20];
        for (int k = 0; k < 20; k++)
            e[k] = (vfio_user_dma_entry){
                .iova = 0x10000000ull + ((uint64_t)k << 12), .size = 4096, .prot = 3, .fd = -1};
        cr_assert_eq(vfio_user_client_dma_map(p.client, e, 20), -EINVAL);
        cr_assert_eq(vfio_user_server_conn_region_count(p.conn), 16);
        cr_assert(vfio_user_client_connected(p.client));
        cr_assert_eq(vfio_user_client_dma_unmap_all(p.client), 0);
        peer_stop(&p);
    }
}

Test(vfio_user_client_server, a_pipelined_batch_against_the_server_waits_once)
{
    peer p;
    peer_start(&p, VFIO_USER_SERVER_PROFILE_OWN, VFIO_USER_DIALECT_0_9_1, NULL);
    vfio_user_client_stats s0, s1;
    vfio_user_dma_entry e[64];
    for (int k = 0; k < 64; k++)
        e[k] = (vfio_user_dma_entry){.iova = (uint64_t)k << 12, .size = 4096, .prot = 3, .fd = -1};
    vfio_user_client_stats_get(p.client, &s0);
    cr_assert_eq(vfio_user_client_dma_map(p.client, e, 64), 0);
    vfio_user_client_stats_get(p.client, &s1);
    cr_assert_eq(s1.messages_sent - s0.messages_sent, 64);
    cr_assert_leq(s1.waits - s0.waits, 1);
    cr_assert_eq(vfio_user_server_conn_region_count(p.conn), 64);
    cr_assert_eq(vfio_user_client_dma_unmap(p.client, e, 64, NULL), 0);
    cr_assert_eq(vfio_user_server_conn_region_count(p.conn), 0);
    peer_stop(&p);
}

static int reset_against(uint32_t kinds, bool *up)
{
    peer p;
    vfio_user_server_faults f = {.kinds = kinds, .command = 0, .skip = 0, .count = 1};
    int before = count_fds();
    peer_start(&p, VFIO_USER_SERVER_PROFILE_OWN, VFIO_USER_DIALECT_2021, &f);
    int rc = vfio_user_client_device_reset(p.client);
    *up = vfio_user_client_connected(p.client);
    peer_stop(&p);
    cr_assert_eq(count_fds(), before, "an fd leaked");
    return rc;
}

Test(vfio_user_client_server, the_server_faults_give_errors_not_hangs)
{
    bool up;
    int rc = reset_against(VFIO_USER_SERVER_FAULT_DROP_MID_REPLY, &up);
    cr_assert(rc == -ECONNRESET || rc == -EPIPE, "drop: %d", rc);
    cr_assert_not(up);
    cr_assert_eq(reset_against(VFIO_USER_SERVER_FAULT_WRONG_ID, &up), -EPROTO);
    cr_assert_not(up);
    cr_assert_eq(reset_against(VFIO_USER_SERVER_FAULT_REPLY_TO_NOTHING, &up), -EPROTO);
    cr_assert_eq(reset_against(VFIO_USER_SERVER_FAULT_UNEXPECTED_FD, &up), -EPROTO);
    cr_assert(up);
    cr_assert_eq(reset_against(VFIO_USER_SERVER_FAULT_SHORT_WRITES, &up), 0);
    cr_assert(up);
    rc = reset_against(VFIO_USER_SERVER_FAULT_WRONG_SIZE, &up);
    cr_assert(rc == -ECONNRESET || rc == -EBADMSG, "wrong size: %d", rc);
}

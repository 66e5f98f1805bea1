/* SPDX-License-Identifier: MIT */
/*
 * The project's client against the reference server, in each dialect
 * and profile: map a memfd region and an fd-less one, let the sample
 * device write and read both, collect the dirty pages, unmap, and leak
 * no fd.
 */
#include "raw.h"

#define PG 4096ull
#define A_IOVA 0x100000ull
#define B_IOVA 0x200000ull
#define A_PAGES 16u
#define B_PAGES 4u

/* Client memory of the fd-less region B, served to DMA_READ / DMA_WRITE. */
typedef struct guest {
    uint8_t b[B_PAGES * PG];
    unsigned requests;
} guest;

static int guest_dma(void *opaque, uint64_t iova, void *buf, uint64_t len, bool write)
{
    guest *g = opaque;

    g->requests++;
    if (iova < B_IOVA || len > sizeof(g->b) || iova - B_IOVA > sizeof(g->b) - len)
        return -EFAULT;
    if (write)
        memcpy(g->b + (iova - B_IOVA), buf, len);
    else
        memcpy(buf, g->b + (iova - B_IOVA), len);
    return 0;
}

static void reg(vfio_user_client *c, uint32_t off, uint64_t v, uint32_t size)
{
    uint8_t b[8];
    vus_put64(b, v);
    cr_assert_eq(vfio_user_client_region_write(c, 0, off, b, size), 0);
}

static uint64_t reg_read(vfio_user_client *c, uint32_t off, uint32_t size)
{
    uint8_t b[8] = {0};
    cr_assert_eq(vfio_user_client_region_read(c, 0, off, b, size), 0);
    return size == 8 ? vus_get64(b) : vus_get32(b);
}

static uint32_t dma(vfio_user_client *c, uint64_t addr, uint32_t len, uint8_t fill, uint32_t cmd)
{
    reg(c, VFIO_USER_SAMPLE_DMA_ADDR, addr, 8);
    reg(c, VFIO_USER_SAMPLE_DMA_LEN, len, 4);
    reg(c, VFIO_USER_SAMPLE_DMA_FILL, fill, 4);
    reg(c, VFIO_USER_SAMPLE_DMA_CMD, cmd, 4);
    return (uint32_t)reg_read(c, VFIO_USER_SAMPLE_DMA_STATUS, 4);
}

static void run(vfio_user_server_profile profile, vfio_user_dialect dialect)
{
    vfio_user_server_options o;
    vfio_user_client_config cfg;
    vfio_user_client_ops ops = {.dma_rw = guest_dma};
    guest g = {0};
    GError *err = NULL;
    vfio_user_client *c;
    srv_thread *s;
    vfio_user_device_info info;
    vfio_user_region_info rinfo;
    vfio_user_dma_entry regions[2] = {
        {.iova = A_IOVA, .size = A_PAGES * PG, .prot = 3, .fd = -1},
        {.iova = B_IOVA, .size = B_PAGES * PG, .prot = 3, .fd = -1},
    };
    bool logging = profile != VFIO_USER_SERVER_PROFILE_QEMU_7_2;
    uint8_t bitmap[8] = {0};
    uint8_t *view;
    int fd, mfd, fds_before = count_fds();

    vfio_user_server_options_init(&o);
    o.profile = profile;
    o.dialect = dialect;
    s = srv_start(&o, &fd);
    vfio_user_client_config_init(&cfg, dialect);
    cfg.caps.migration = true;
    cfg.caps.pgsize = PG;
    c = vfio_user_client_new(fd, &cfg, &ops, &g, &err);
    cr_assert_not_null(c, "%s", err ? err->message : "");

    mfd = test_memfd(A_PAGES * PG);
    view = mmap(NULL, A_PAGES * PG, PROT_READ, MAP_SHARED, mfd, 0);
    cr_assert_neq(view, MAP_FAILED);
    regions[0].fd = mfd;
    cr_assert_eq(vfio_user_client_dma_map(c, regions, 2), 0);

    cr_assert_eq(vfio_user_client_device_get_info(c, &info), 0);
    cr_assert_eq(info.num_regions, 1);
    cr_assert_eq(vfio_user_client_region_info(c, 0, &rinfo, NULL), 0);
    cr_assert_eq(rinfo.size, VFIO_USER_SAMPLE_BAR_SIZE);

    if (dialect == VFIO_USER_DIALECT_FINAL) {
        cr_assert_eq(vfio_user_client_dma_logging_start(c, PG, regions, 2), 0);
    } else {
        int ret = vfio_user_client_dirty_pages(c, VFIO_USER_DIRTY_PAGES_FLAG_START);
        cr_assert_eq(ret, logging ? 0 : -ENOTSUP);
    }

    /* Through the mapping: bytes land in the memfd and the pages get dirty. */
    cr_assert_eq(dma(c, A_IOVA + 3 * PG + 100, 2 * PG, 0xa5, VFIO_USER_SAMPLE_CMD_WRITE), 0);
    cr_assert_eq(view[3 * PG + 99], 0);
    cr_assert_eq(view[3 * PG + 100], 0xa5);
    cr_assert_eq(view[5 * PG + 99], 0xa5);
    cr_assert_eq(view[5 * PG + 100], 0);

    /* Through messages: the client serves DMA_WRITE then DMA_READ while waiting. */
    cr_assert_eq(dma(c, B_IOVA + 10, 1000, 0x3c, VFIO_USER_SAMPLE_CMD_WRITE), 0);
    cr_assert_eq(g.b[10], 0x3c);
    cr_assert_eq(g.b[1009], 0x3c);
    cr_assert_eq(g.b[1010], 0);
    cr_assert_eq(dma(c, B_IOVA + 10, 1000, 0, VFIO_USER_SAMPLE_CMD_READ), 0);
    cr_assert_eq(reg_read(c, VFIO_USER_SAMPLE_DMA_SUM, 8), 1000u * 0x3c);
    cr_assert_geq(g.requests, 2);

    if (dialect == VFIO_USER_DIALECT_FINAL) {
        cr_assert_eq(vfio_user_client_dma_logging_report(c, A_IOVA, A_PAGES * PG, PG, bitmap, 8),
                     0);
        cr_assert_eq(bitmap[0], 0x38, "pages 3, 4 and 5");
    } else if (logging) {
        vfio_user_dma_entry u = {.iova = A_IOVA,
                                 .size = A_PAGES * PG,
                                 .flags = VFIO_USER_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
                                 .bitmap_pgsize = PG,
                                 .bitmap_size = 8};
        uint8_t *bms[1] = {bitmap};
        cr_assert_eq(vfio_user_client_dma_unmap(c, &u, 1, bms), 0);
        cr_assert_eq(bitmap[0], 0x38, "pages 3, 4 and 5");
        cr_assert_eq(bitmap[1], 0);
    }
    if (dialect == VFIO_USER_DIALECT_2021) {
        /* The 2021 server removes a portion of a region. */
        vfio_user_dma_entry part = {.iova = B_IOVA + PG, .size = PG};
        cr_assert_eq(vfio_user_client_dma_unmap(c, &part, 1, NULL), 0);
        cr_assert_eq(vfio_user_server_conn_region_count(s->conn), 2);
    }
    cr_assert_eq(vfio_user_client_dma_unmap_all(c), 0);
    cr_assert_eq(vfio_user_server_conn_region_count(s->conn), 0);

    vfio_user_client_free(c);
    srv_join(s);
    munmap(view, A_PAGES * PG);
    close(mfd);
    cr_assert_eq(count_fds(), fds_before, "fds leaked");
}

Test(client_interop, own_2021)
{
    run(VFIO_USER_SERVER_PROFILE_OWN, VFIO_USER_DIALECT_2021);
}

Test(client_interop, own_0_9_1)
{
    run(VFIO_USER_SERVER_PROFILE_OWN, VFIO_USER_DIALECT_0_9_1);
}

Test(client_interop, own_final)
{
    run(VFIO_USER_SERVER_PROFILE_OWN, VFIO_USER_DIALECT_FINAL);
}

Test(client_interop, libvfio_user_2022)
{
    run(VFIO_USER_SERVER_PROFILE_LIBVFIO_USER_2022, VFIO_USER_DIALECT_0_9_1);
}

Test(client_interop, qemu_7_2)
{
    run(VFIO_USER_SERVER_PROFILE_QEMU_7_2, VFIO_USER_DIALECT_0_9_1);
}

Test(client_interop, libvfio_user_2026)
{
    run(VFIO_USER_SERVER_PROFILE_LIBVFIO_USER_2026, VFIO_USER_DIALECT_FINAL);
}

/* SPDX-License-Identifier: MIT */
/*
 * mapper_harness.h - what the mapper's tests share: the reference server
 * listening on a temporary socket in a thread, guest RAM in a memfd
 * registered in a guest_mem, a DMA mapper connected to the server, and
 * helpers to send batches of mapping events and to make the sample
 * device DMA. Tests map IOVA X to GPA RAM_GPA + (X - 0x100000).
 */
#ifndef VFIO_USER_TESTS_MAPPER_HARNESS_H
#define VFIO_USER_TESTS_MAPPER_HARNESS_H

#include <criterion/criterion.h>
#include <errno.h>
#include <glib.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vfio-user-server.h"
#include "vfio-user.h"

#define PG 4096ull
#define RAM_SIZE (16ull << 20)
#define RAM_GPA 0x40000000ull

typedef struct harness {
    char dir[64];
    char path[96];
    vfio_user_server *srv;
    GThread *thread;
    int memfd;
    uint8_t *ram;
    guest_mem *gm;
    vfio_user_mapper *m;
    unsigned dma_calls;
    GArray *failed; /* mapping_event */
} harness;

static harness h;

static inline gpointer server_thread(gpointer data)
{
    vfio_user_server_run(data);
    return NULL;
}

/* The device's DMA_READ / DMA_WRITE (isolated mode) arrive here. */
static inline int dma_rw(void *opaque, uint64_t iova, void *buf, uint64_t len, bool write)
{
    harness *hh = opaque;
    hh->dma_calls++;
    /* Tests map IOVA X to GPA RAM_GPA + (X - 0x100000). */
    if (iova < 0x100000)
        return -EFAULT;
    return guest_mem_rw(hh->gm, RAM_GPA + (iova - 0x100000), buf, len, write);
}

static inline void start(vfio_user_server_profile profile, vfio_user_dialect dialect,
                  const vfio_user_mapper_config *mcfg, const vfio_user_server_faults *faults)
{
    GError *err = NULL;
    memset(&h, 0, sizeof(h));
    snprintf(h.dir, sizeof(h.dir), "/tmp/mapper-test-XXXXXX");
    cr_assert_not_null(g_mkdtemp(h.dir));
    snprintf(h.path, sizeof(h.path), "%s/sock", h.dir);

    vfio_user_server_options opts;
    vfio_user_server_options_init(&opts);
    opts.profile = profile;
    opts.dialect = dialect;
    if (faults)
        opts.faults = *faults;
    h.srv = vfio_user_server_new(h.path, &opts, &err);
    cr_assert_not_null(h.srv, "server: %s", err ? err->message : "");
    h.thread = g_thread_new("server", server_thread, h.srv);

    h.memfd = memfd_create("guest-ram", 0);
    cr_assert_geq(h.memfd, 0);
    cr_assert_eq(ftruncate(h.memfd, RAM_SIZE), 0);
    h.ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, h.memfd, 0);
    cr_assert_neq(h.ram, MAP_FAILED);
    h.gm = guest_mem_new(PG);
    cr_assert_eq(guest_mem_add(h.gm, RAM_GPA, RAM_SIZE, h.memfd, 0, h.ram), 0);

    vfio_user_client_config ccfg;
    vfio_user_client_config_init(&ccfg, profile == VFIO_USER_SERVER_PROFILE_OWN
                                            ? dialect
                                            : (profile == VFIO_USER_SERVER_PROFILE_LIBVFIO_USER_2026
                                                   ? VFIO_USER_DIALECT_FINAL
                                                   : VFIO_USER_DIALECT_0_9_1));
    ccfg.timeout_ms = 5000;
    if (profile != VFIO_USER_SERVER_PROFILE_QEMU_7_2) {
        ccfg.caps.migration = true;
        ccfg.caps.pgsize = PG;
    }
    vfio_user_client_ops ops = {.dma_rw = dma_rw};
    h.m = vfio_user_mapper_connect(h.path, &ccfg, &ops, &h, h.gm, mcfg, &err);
    cr_assert_not_null(h.m, "mapper: %s", err ? err->message : "");
    h.failed = g_array_new(FALSE, FALSE, sizeof(mapping_event));
}

static inline void stop(void)
{
    vfio_user_mapper_free(h.m);
    vfio_user_server_stop(h.srv);
    g_thread_join(h.thread);
    vfio_user_server_free(h.srv);
    guest_mem_free(h.gm);
    munmap(h.ram, RAM_SIZE);
    close(h.memfd);
    rmdir(h.dir);
    g_array_free(h.failed, TRUE);
}

static inline void on_failed(void *opaque, const mapping_event *ev, int err)
{
    (void)opaque;
    mapping_event e = *ev;
    e.seq = (uint32_t)-err; /* keep the errno alongside */
    g_array_append_val(h.failed, e);
}

static inline mapping_event ev_at(uint64_t iova, uint64_t size, uint32_t prot, uint32_t seq)
{
    mapping_event e = {
        .endpoint = 24,
        .domain = 1,
        .iova = iova,
        .iova_last = iova + size - 1,
        .gpa = RAM_GPA + (iova - 0x100000),
        .prot = prot,
        .seq = seq,
    };
    return e;
}

/* A batch of @n events: map when maps[i], else unmap. Returns batch_end's result. */
static inline int batch(const mapping_event *evs, const bool *maps, size_t n, int *map_results)
{
    mapping_listener l = vfio_user_mapper_listener(h.m);
    l.ops->batch_begin(l.opaque);
    for (size_t i = 0; i < n; i++) {
        int r = maps[i] ? l.ops->map(l.opaque, &evs[i]) : l.ops->unmap(l.opaque, &evs[i]);
        if (map_results)
            map_results[i] = r;
    }
    return l.ops->batch_end(l.opaque, on_failed, NULL);
}

static inline int map_one(uint64_t iova, uint64_t size)
{
    mapping_event e = ev_at(iova, size, MAPPING_PROT_READ | MAPPING_PROT_WRITE, 0);
    bool yes = true;
    int r = 0;
    int ret = batch(&e, &yes, 1, &r);
    return r < 0 ? r : ret;
}

static inline void unmap_one(uint64_t iova, uint64_t size)
{
    mapping_event e = ev_at(iova, size, 0, 0);
    bool no = false;
    cr_assert_eq(batch(&e, &no, 1, NULL), 0);
}

/* Asks the sample device to write @len bytes of @fill at @iova; returns DMA_STATUS. */
static inline uint32_t device_write(uint64_t iova, uint32_t len, uint8_t fill)
{
    vfio_user_client *c = vfio_user_mapper_client(h.m);
    uint64_t addr = GUINT64_TO_LE(iova);
    uint32_t l = GUINT32_TO_LE(len), f = GUINT32_TO_LE(fill), cmd = GUINT32_TO_LE(1), status = 0;
    cr_assert_eq(vfio_user_client_region_write(c, 0, VFIO_USER_SAMPLE_DMA_ADDR, &addr, 8), 0);
    cr_assert_eq(vfio_user_client_region_write(c, 0, VFIO_USER_SAMPLE_DMA_LEN, &l, 4), 0);
    cr_assert_eq(vfio_user_client_region_write(c, 0, VFIO_USER_SAMPLE_DMA_FILL, &f, 4), 0);
    cr_assert_eq(vfio_user_client_region_write(c, 0, VFIO_USER_SAMPLE_DMA_CMD, &cmd, 4), 0);
    cr_assert_eq(vfio_user_client_region_read(c, 0, VFIO_USER_SAMPLE_DMA_STATUS, &status, 4), 0);
    return GUINT32_FROM_LE(status);
}

#endif

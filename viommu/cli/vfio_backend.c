/* SPDX-License-Identifier: MIT */
/*
 * vfio_backend.c - vfio-user devices behind a replay's endpoints. This is
 * where the device model and the vfio-user mapper meet: the mapper is the
 * endpoint's mapping listener, and the device's DMA requests (DMA_READ /
 * DMA_WRITE, for regions mapped without an fd) are translated by the
 * device model for that endpoint before they touch guest RAM.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <gio/gio.h>

#include "vfio-user-server.h"
#include "vfio_backend.h"

#define PAGE 4096ull

typedef struct endpoint_dev {
    vfio_backend *b;
    uint32_t endpoint;
    vfio_user_mapper *mapper;
} endpoint_dev;

struct vfio_backend {
    vfio_backend_config cfg;
    int memfd;
    void *ram;
    guest_mem *gm;
    viommu *dev;
    GHashTable *devs; /* endpoint -> endpoint_dev * */
    replay_hooks prev;
    uint64_t requests_done; /* requests of finished batches */
    bool tracking;
    uint64_t dma_writes, dma_reads, dma_failures, dma_untranslated;
    uint8_t fill;
};

void vfio_backend_config_init(vfio_backend_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->sockets = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, g_free);
    cfg->dialect = VFIO_USER_DIALECT_2021;
    cfg->plan = VFIO_USER_PLAN_COALESCE;
    cfg->migrate_at = -1;
    cfg->ram_size = 1ull << 30;
}

void vfio_backend_config_clear(vfio_backend_config *cfg)
{
    g_free(cfg->socket_all);
    if (cfg->sockets)
        g_hash_table_unref(cfg->sockets);
    memset(cfg, 0, sizeof(*cfg));
}

bool vfio_backend_config_add_socket(vfio_backend_config *cfg, const char *value, GError **error)
{
    const char *eq = strchr(value, '=');
    if (eq) {
        g_autofree char *ep = g_strndup(value, (gsize)(eq - value));
        char *end = NULL;
        errno = 0;
        unsigned long long v = strtoull(ep, &end, 0);
        if (!*ep || *end || errno || v > UINT32_MAX || !eq[1]) {
            g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                        "--vfio-user: '%s' is not EP=SOCKET with an endpoint ID", value);
            return false;
        }
        g_hash_table_replace(cfg->sockets, GUINT_TO_POINTER((guint)v), g_strdup(eq + 1));
        return true;
    }
    if (cfg->socket_all) {
        g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                    "--vfio-user: only one SOCKET may serve every endpoint (use EP=SOCKET)");
        return false;
    }
    cfg->socket_all = g_strdup(value);
    return true;
}

bool vfio_backend_config_active(const vfio_backend_config *cfg)
{
    return cfg->socket_all || (cfg->sockets && g_hash_table_size(cfg->sockets));
}

static void endpoint_dev_free(gpointer p)
{
    endpoint_dev *d = p;
    vfio_user_mapper_free(d->mapper);
    g_free(d);
}

vfio_backend *vfio_backend_new(const vfio_backend_config *cfg, GError **error)
{
    if (!cfg->ram_size || cfg->ram_size % PAGE) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                    "guest RAM size must be a positive multiple of 4 KiB");
        return NULL;
    }
    vfio_backend *b = g_new0(vfio_backend, 1);
    b->cfg = *cfg;
    b->cfg.socket_all = g_strdup(cfg->socket_all);
    b->cfg.sockets = g_hash_table_ref(cfg->sockets);
    b->memfd = memfd_create("viommu-guest-ram", MFD_CLOEXEC);
    if (b->memfd < 0 || ftruncate(b->memfd, (off_t)cfg->ram_size) < 0) {
        g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno), "guest RAM: %s",
                    g_strerror(errno));
        goto fail;
    }
    b->ram = mmap(NULL, cfg->ram_size, PROT_READ | PROT_WRITE, MAP_SHARED, b->memfd, 0);
    if (b->ram == MAP_FAILED) {
        b->ram = NULL;
        g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno), "guest RAM: %s",
                    g_strerror(errno));
        goto fail;
    }
    b->gm = guest_mem_new(PAGE);
    guest_mem_add(b->gm, 0, cfg->ram_size, b->memfd, 0, b->ram);
    b->devs = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, endpoint_dev_free);
    return b;
fail:
    vfio_backend_free(b);
    return NULL;
}

void vfio_backend_free(vfio_backend *b)
{
    if (!b)
        return;
    if (b->devs)
        g_hash_table_unref(b->devs);
    guest_mem_free(b->gm);
    if (b->ram)
        munmap(b->ram, b->cfg.ram_size);
    if (b->memfd >= 0)
        close(b->memfd);
    vfio_backend_config_clear(&b->cfg);
    g_free(b);
}

/* The device's DMA: every byte goes through the device model's
 * translation for this endpoint, page run by page run. */
static int dev_dma_rw(void *opaque, uint64_t iova, void *buf, uint64_t len, bool write)
{
    endpoint_dev *d = opaque;
    uint8_t *p = buf;
    while (len) {
        viommu_translation t;
        int ret = viommu_translate(d->b->dev, d->endpoint, iova,
                                   write ? VIOMMU_ACCESS_WRITE : VIOMMU_ACCESS_READ, &t);
        if (ret < 0)
            return -EFAULT;
        uint64_t run = t.iova_last - iova + 1; /* 0 when the run is all of u64 */
        uint64_t n = run && run < len ? run : len;
        ret = guest_mem_rw(d->b->gm, t.gpa, p, n, write);
        if (ret < 0)
            return ret;
        p += n;
        iova += n;
        len -= n;
    }
    return 0;
}

static const char *socket_for(const vfio_backend *b, uint32_t ep)
{
    const char *s = g_hash_table_lookup(b->cfg.sockets, GUINT_TO_POINTER(ep));
    return s ? s : b->cfg.socket_all;
}

static int on_endpoint_added(void *opaque, viommu *dev, uint32_t ep)
{
    vfio_backend *b = opaque;
    b->dev = dev;
    const char *path = socket_for(b, ep);
    if (path) {
        endpoint_dev *d = g_new0(endpoint_dev, 1);
        d->b = b;
        d->endpoint = ep;
        vfio_user_client_config ccfg;
        vfio_user_client_config_init(&ccfg, b->cfg.dialect);
        ccfg.caps.migration = true;
        ccfg.caps.pgsize = PAGE;
        ccfg.window = 1024; /* a whole batch in flight: one wait per batch */
        vfio_user_client_ops ops = {.dma_rw = dev_dma_rw};
        vfio_user_mapper_config mcfg = {.plan = b->cfg.plan, .isolated = b->cfg.isolated};
        GError *err = NULL;
        d->mapper = vfio_user_mapper_connect(path, &ccfg, &ops, d, b->gm, &mcfg, &err);
        if (!d->mapper) {
            fprintf(stderr, "viommu: endpoint %" PRIu32 ": vfio-user device at %s: %s\n", ep, path,
                    err ? err->message : "connection failed");
            g_clear_error(&err);
            g_free(d);
            return -ECONNREFUSED;
        }
        if (b->tracking)
            vfio_user_mapper_dirty_start(d->mapper);
        mapping_listener l = vfio_user_mapper_listener(d->mapper);
        viommu_endpoint_set_listener(dev, ep, &l);
        g_hash_table_insert(b->devs, GUINT_TO_POINTER(ep), d);
    }
    return b->prev.endpoint_added ? b->prev.endpoint_added(b->prev.opaque, dev, ep) : 0;
}

static void start_tracking(vfio_backend *b)
{
    GHashTableIter it;
    gpointer v;
    /* Migration starts from a clean log: what was written before is sent
     * with the first full copy of guest RAM. */
    guest_mem_dirty_clear(b->gm);
    b->tracking = true;
    g_hash_table_iter_init(&it, b->devs);
    while (g_hash_table_iter_next(&it, NULL, &v))
        vfio_user_mapper_dirty_start(((endpoint_dev *)v)->mapper);
}

static int on_batch_begin(void *opaque, viommu *dev, uint64_t batch, size_t n)
{
    vfio_backend *b = opaque;
    GHashTableIter it;
    gpointer v;
    b->dev = dev;
    /* The device accesses re-enacted since the last batch complete first,
     * so that the batch's own traffic is counted alone. */
    g_hash_table_iter_init(&it, b->devs);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        vfio_user_client *c = vfio_user_mapper_client(((endpoint_dev *)v)->mapper);
        if (vfio_user_client_in_flight(c))
            vfio_user_client_wait_all(c);
    }
    /* Tracking starts before the batch holding request N: with one request
     * per batch exactly before it, otherwise a little earlier (never later). */
    if (!b->tracking && b->cfg.migrate_at >= 0 &&
        b->requests_done + n > (uint64_t)b->cfg.migrate_at)
        start_tracking(b);
    return b->prev.batch_begin ? b->prev.batch_begin(b->prev.opaque, dev, batch, n) : 0;
}

static int on_batch_end(void *opaque, viommu *dev, uint64_t batch, const replay_request *reqs,
                        size_t n)
{
    vfio_backend *b = opaque;
    b->requests_done += n;
    return b->prev.batch_end ? b->prev.batch_end(b->prev.opaque, dev, batch, reqs, n) : 0;
}

static void on_status(void *opaque, int result, const vfio_user_msg *reply)
{
    vfio_backend *b = opaque;
    uint32_t status = 1;
    if (result == 0 && reply && reply->region_io.data && reply->region_io.data_len >= 4)
        memcpy(&status, reply->region_io.data, 4);
    if (GUINT32_FROM_LE(status))
        b->dma_failures++;
}

/*
 * One access by the sample device: a single REGION_WRITE sets DMA_ADDR,
 * DMA_LEN, DMA_FILL and DMA_CMD (contiguous registers), then a
 * REGION_READ of DMA_STATUS says how it went. Both are pipelined, not
 * waited: the server handles a connection's messages in order, so the
 * transfer is done before any later DMA_UNMAP of the same device.
 */
static void device_access(vfio_backend *b, endpoint_dev *d, uint64_t iova, bool write)
{
    uint8_t regs[20];
    uint64_t addr = GUINT64_TO_LE(iova);
    uint32_t len = GUINT32_TO_LE(1), fill = GUINT32_TO_LE(++b->fill);
    uint32_t cmd = GUINT32_TO_LE(write ? VFIO_USER_SAMPLE_CMD_WRITE : VFIO_USER_SAMPLE_CMD_READ);
    memcpy(regs + VFIO_USER_SAMPLE_DMA_ADDR, &addr, 8);
    memcpy(regs + VFIO_USER_SAMPLE_DMA_LEN, &len, 4);
    memcpy(regs + VFIO_USER_SAMPLE_DMA_FILL, &fill, 4);
    memcpy(regs + VFIO_USER_SAMPLE_DMA_CMD, &cmd, 4);

    vfio_user_client *c = vfio_user_mapper_client(d->mapper);
    if (!vfio_user_client_connected(c)) {
        vfio_user_mapper_reconnect(d->mapper);
        c = vfio_user_mapper_client(d->mapper);
    }
    vfio_user_msg msg;
    memset(&msg, 0, sizeof(msg));
    msg.op = VFIO_USER_OP_REGION_WRITE;
    msg.region_io.region = 0;
    msg.region_io.offset = 0;
    msg.region_io.count = sizeof(regs);
    msg.region_io.data = regs;
    msg.region_io.data_len = sizeof(regs);
    int ret = vfio_user_client_submit(c, &msg, 0, NULL, NULL);
    memset(&msg, 0, sizeof(msg));
    msg.op = VFIO_USER_OP_REGION_READ;
    msg.region_io.offset = VFIO_USER_SAMPLE_DMA_STATUS;
    msg.region_io.count = 4;
    if (!ret)
        ret = vfio_user_client_submit(c, &msg, 0, on_status, b);
    if (ret < 0)
        b->dma_failures++;
    /* Without an fd the transfer is a DMA_READ / DMA_WRITE round trip
     * from the server, which queues what arrives meanwhile (256 messages
     * in the reference server): keep the pipeline well below that. */
    if (b->cfg.isolated && vfio_user_client_in_flight(c) >= 64)
        vfio_user_client_wait_all(c);
}

static int on_translate(void *opaque, viommu *dev, const qemu_log_event *ev)
{
    vfio_backend *b = opaque;
    b->dev = dev;
    if (b->cfg.dma && ev->type == QEMU_LOG_TRANSLATE) {
        uint32_t ep = ev->u.translate.endpoint;
        endpoint_dev *d = g_hash_table_lookup(b->devs, GUINT_TO_POINTER(ep));
        bool write = ev->u.translate.flag & 2;
        viommu_translation t;
        /* An access the IOMMU refuses, or one in bypass (guest RAM reached
         * untranslated, where the device holds no region), is counted and
         * not re-enacted; translating it raised the guest's fault report
         * as the device's attempt would. */
        int tr = d ? viommu_translate(dev, ep, ev->u.translate.addr,
                                      write ? VIOMMU_ACCESS_WRITE : VIOMMU_ACCESS_READ, &t)
                   : 0;
        if (d && (tr < 0 || t.bypass)) {
            b->dma_untranslated++;
        } else if (d) {
            if (write)
                b->dma_writes++;
            else
                b->dma_reads++;
            device_access(b, d, ev->u.translate.addr, write);
        }
    }
    return b->prev.translate ? b->prev.translate(b->prev.opaque, dev, ev) : 0;
}

/* The remaining hooks pass straight through to the previous ones. */
static int on_device_ready(void *opaque, viommu *dev)
{
    vfio_backend *b = opaque;
    b->dev = dev;
    return b->prev.device_ready ? b->prev.device_ready(b->prev.opaque, dev) : 0;
}

static int on_request_done(void *opaque, const replay_request *req)
{
    vfio_backend *b = opaque;
    return b->prev.request_done ? b->prev.request_done(b->prev.opaque, req) : 0;
}

static void on_line_error(void *opaque, const GError *error)
{
    vfio_backend *b = opaque;
    if (b->prev.line_error)
        b->prev.line_error(b->prev.opaque, error);
}

static void on_progress(void *opaque, uint64_t bytes, uint64_t total)
{
    vfio_backend *b = opaque;
    if (b->prev.progress)
        b->prev.progress(b->prev.opaque, bytes, total);
}

void vfio_backend_install_hooks(vfio_backend *b, replay_hooks *hooks)
{
    b->prev = *hooks;
    hooks->opaque = b;
    hooks->device_ready = on_device_ready;
    hooks->endpoint_added = on_endpoint_added;
    hooks->batch_begin = on_batch_begin;
    hooks->batch_end = on_batch_end;
    hooks->request_done = b->prev.request_done ? on_request_done : NULL;
    hooks->translate = on_translate;
    hooks->line_error = b->prev.line_error ? on_line_error : NULL;
    hooks->progress = b->prev.progress ? on_progress : NULL;
}

int vfio_backend_finish(vfio_backend *b)
{
    GHashTableIter it;
    gpointer v;
    int first = 0;
    /* Device accesses still in flight complete first. */
    g_hash_table_iter_init(&it, b->devs);
    while (g_hash_table_iter_next(&it, NULL, &v))
        vfio_user_client_wait_all(vfio_user_mapper_client(((endpoint_dev *)v)->mapper));
    if (!b->tracking)
        return 0;
    g_hash_table_iter_init(&it, b->devs);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        int ret = vfio_user_mapper_dirty_sync(((endpoint_dev *)v)->mapper);
        if (ret < 0 && !first)
            first = ret;
    }
    return first;
}

static int write_page(void *opaque, uint64_t gpa)
{
    return fprintf(opaque, "0x%" PRIx64 "\n", gpa) < 0 ? -EIO : 0;
}

bool vfio_backend_write_dirty(vfio_backend *b, const char *path, GError **error)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno), "%s: %s", path,
                    g_strerror(errno));
        return false;
    }
    int ret = guest_mem_dirty_collect(b->gm, false, write_page, f);
    if (fclose(f) != 0 || ret < 0) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "%s: write failed", path);
        return false;
    }
    return true;
}

void vfio_backend_summary_get(vfio_backend *b, vfio_backend_summary *out)
{
    GHashTableIter it;
    gpointer v;
    memset(out, 0, sizeof(*out));
    g_hash_table_iter_init(&it, b->devs);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        vfio_user_mapper_stats s;
        vfio_user_mapper_stats_get(((endpoint_dev *)v)->mapper, &s);
        out->devices++;
        out->mapper.batches += s.batches;
        out->mapper.map_events += s.map_events;
        out->mapper.unmap_events += s.unmap_events;
        out->mapper.map_failures += s.map_failures;
        out->mapper.messages += s.messages;
        out->mapper.waits += s.waits;
        out->mapper.bytes += s.bytes;
        out->mapper.regions_live += s.regions_live;
        out->mapper.regions_live_max += s.regions_live_max;
        out->mapper.bitmaps += s.bitmaps;
        out->mapper.bitmap_fallbacks += s.bitmap_fallbacks;
        out->mapper.reconnects += s.reconnects;
    }
    out->dma_writes = b->dma_writes;
    out->dma_reads = b->dma_reads;
    out->dma_failures = b->dma_failures;
    out->dma_untranslated = b->dma_untranslated;
    out->dirty_pages = guest_mem_dirty_count(b->gm);
    out->tracking_started = b->tracking;
}

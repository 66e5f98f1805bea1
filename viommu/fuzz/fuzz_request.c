/* SPDX-License-Identifier: MIT */
/*
 * fuzz_request - arbitrary bytes become batches of requests, split into
 * readable and writable iovecs, run against a device with four
 * endpoints whose listeners refuse or fail maps on the input's say.
 * After each batch the target checks the device against its own
 * bookkeeping: used lengths fit the writable buffers, the tail holds
 * the status, every attached listener holds exactly its domain's
 * mappings, and the mapping counters add up.
 *
 * Input: byte 0 picks the granule and negotiated features; then per
 * batch a count byte, and per request: readable length (2 bytes),
 * writable length (2 bytes), a split byte, a listener-control byte, and
 * the readable bytes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "viommu.h"

#define NEP 4
#define MAX_BATCH 8
#define MAX_LEN 0x240

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "invariant failed: %s (line %d)\n", #c, __LINE__);                     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

typedef struct fl {
    uint32_t ep;
    GHashTable *held; /* iova -> iova_last + 1 (0 for the top) */
    GArray *batch;
    bool in_batch;
    int refuse;      /* errno map() returns, 0 to accept */
    int fail_at_end; /* errno for every map at batch_end */
} fl;

static void fl_begin(void *o)
{
    fl *f = o;
    CHECK(!f->in_batch);
    f->in_batch = true;
    g_array_set_size(f->batch, 0);
}

static int fl_map(void *o, const mapping_event *ev)
{
    fl *f = o;
    CHECK(f->in_batch);
    CHECK(ev->endpoint == f->ep);
    CHECK(ev->iova <= ev->iova_last);
    CHECK(!g_hash_table_contains(f->held, &ev->iova));
    if (f->refuse)
        return f->refuse;
    uint64_t *k = g_new(uint64_t, 1);
    *k = ev->iova;
    g_hash_table_insert(f->held, k, GSIZE_TO_POINTER(1));
    g_array_append_val(f->batch, *ev);
    return 0;
}

static int fl_unmap(void *o, const mapping_event *ev)
{
    fl *f = o;
    CHECK(f->in_batch);
    CHECK(g_hash_table_remove(f->held, &ev->iova));
    return 0;
}

static int fl_end(void *o, mapping_failed_fn failed, void *fo)
{
    fl *f = o;
    CHECK(f->in_batch);
    f->in_batch = false;
    if (!f->fail_at_end)
        return 0;
    for (guint i = 0; i < f->batch->len; i++) {
        mapping_event ev = g_array_index(f->batch, mapping_event, i);
        if (g_hash_table_remove(f->held, &ev.iova))
            failed(fo, &ev, f->fail_at_end);
    }
    return 0;
}

static const mapping_listener_ops fl_ops = {fl_begin, fl_map, fl_unmap, fl_end};

typedef struct reader {
    const uint8_t *p;
    size_t left;
} reader;

static bool take(reader *r, void *out, size_t n)
{
    if (r->left < n)
        return false;
    memcpy(out, r->p, n);
    r->p += n;
    r->left -= n;
    return true;
}

/* Splits @len bytes at @base into up to 3 iovecs as @split says. */
static size_t split_iov(uint8_t *base, size_t len, uint8_t split, struct iovec *iov)
{
    size_t a = len ? (split & 0x0f) % (len + 1) : 0;
    size_t b = len ? ((split >> 4) & 0x0f) % (len - a + 1) : 0;
    iov[0] = (struct iovec){base, a};
    iov[1] = (struct iovec){base + a, b};
    iov[2] = (struct iovec){base + a + b, len - a - b};
    return 3;
}

static void check_views(viommu *v, fl *fls)
{
    viommu_stats st;
    viommu_get_stats(v, &st);
    uint64_t sum = 0;
    for (int i = 0; i < NEP; i++) {
        uint32_t d;
        if (viommu_endpoint_domain(v, fls[i].ep, &d) == 0) {
            uint64_t n = 0;
            bool bypass = false;
            CHECK(viommu_domain_info(v, d, &bypass, &n, NULL) == 0);
            CHECK(g_hash_table_size(fls[i].held) == n);
        } else {
            CHECK(g_hash_table_size(fls[i].held) == 0);
        }
    }
    /* Each domain counted once: endpoints are the only way to reach one. */
    GHashTable *seen = g_hash_table_new(g_direct_hash, g_direct_equal);
    for (int i = 0; i < NEP; i++) {
        uint32_t d;
        if (viommu_endpoint_domain(v, fls[i].ep, &d) == 0 &&
            !g_hash_table_contains(seen, GUINT_TO_POINTER(d))) {
            uint64_t n = 0;
            viommu_domain_info(v, d, NULL, &n, NULL);
            sum += n;
            g_hash_table_add(seen, GUINT_TO_POINTER(d));
        }
    }
    CHECK(st.domains == g_hash_table_size(seen));
    CHECK(st.mappings == sum);
    g_hash_table_destroy(seen);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    reader r = {data, size};
    uint8_t mode;
    if (!take(&r, &mode, 1))
        return 0;

    viommu_config cfg;
    viommu_config_init(&cfg);
    cfg.page_size_mask = (mode & 1) ? 1 : UINT64_C(0xfffffffffffff000);
    cfg.max_mappings_per_domain = 64;
    cfg.max_domains = 3;
    cfg.probe_size = (mode & 2) ? 0x200 : 0x30;
    viommu *v = viommu_new(&cfg, NULL);
    CHECK(v);
    uint64_t feats = viommu_device_features(v);
    if (mode & 4)
        feats &= ~VIOMMU_FEATURE(VIRTIO_IOMMU_F_MMIO);
    if (mode & 8)
        feats &= ~VIOMMU_FEATURE(VIRTIO_IOMMU_F_BYPASS_CONFIG);
    if (mode & 16)
        feats &= ~VIOMMU_FEATURE(VIRTIO_IOMMU_F_PROBE);
    CHECK(viommu_set_driver_features(v, feats) == 0);

    fl fls[NEP];
    for (int i = 0; i < NEP; i++) {
        fls[i] = (fl){.ep = (uint32_t)i + 1,
                      .held = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, NULL),
                      .batch = g_array_new(FALSE, FALSE, sizeof(mapping_event))};
        CHECK(viommu_endpoint_add(v, fls[i].ep) == 0);
        mapping_listener l = {&fl_ops, &fls[i]};
        CHECK(viommu_endpoint_set_listener(v, fls[i].ep, &l) == 0);
    }
    viommu_endpoint_add_resv(v, 2, 0xfee00000, 0xfeefffff, VIRTIO_IOMMU_RESV_MEM_T_MSI);
    viommu_endpoint_add_resv(v, 3, 0, 0xfff, VIRTIO_IOMMU_RESV_MEM_T_RESERVED);

    uint8_t count;
    while (take(&r, &count, 1)) {
        size_t n = (size_t)(count % MAX_BATCH) + 1;
        viommu_request reqs[MAX_BATCH];
        struct iovec iov[MAX_BATCH][6];
        uint8_t *bufs[MAX_BATCH][2];
        size_t wlens[MAX_BATCH];
        size_t built = 0;
        for (; built < n; built++) {
            uint16_t rlen, wlen;
            uint8_t split, ctl;
            if (!take(&r, &rlen, 2) || !take(&r, &wlen, 2) || !take(&r, &split, 1) ||
                !take(&r, &ctl, 1))
                break;
            rlen = (uint16_t)(le16toh(rlen) % MAX_LEN);
            wlen = (uint16_t)(le16toh(wlen) % MAX_LEN);
            if (rlen > r.left)
                rlen = (uint16_t)r.left;
            /* Exact-size heap buffers, so ASan catches any over-read. */
            uint8_t *rd = g_malloc(rlen ? rlen : 1);
            uint8_t *wr = g_malloc(wlen ? wlen : 1);
            take(&r, rd, rlen);
            memset(wr, 0xa5, wlen);
            bufs[built][0] = rd;
            bufs[built][1] = wr;
            wlens[built] = wlen;
            split_iov(rd, rlen, split, iov[built]);
            split_iov(wr, wlen, (uint8_t)(split * 7), iov[built] + 3);
            reqs[built] = (viommu_request){iov[built], 3, iov[built] + 3, 3, 0, 0, 0};
            fl *f = &fls[ctl % NEP];
            f->refuse = (ctl & 0x10) ? ((ctl & 0x20) ? -ENOSPC : -EIO) : 0;
            f->fail_at_end = (ctl & 0x40) ? ((ctl & 0x80) ? -ENOMEM : -EIO) : 0;
        }
        CHECK(viommu_process_batch(v, reqs, built) == 0);
        for (size_t i = 0; i < built; i++) {
            CHECK(reqs[i].used_len <= wlens[i]);
            CHECK((reqs[i].status == VIOMMU_STATUS_NONE) == (reqs[i].used_len == 0));
            if (reqs[i].status != VIOMMU_STATUS_NONE) {
                CHECK(viommu_status_name(reqs[i].status) != NULL);
                CHECK(bufs[i][1][reqs[i].used_len - 4] == (uint8_t)reqs[i].status);
            } else {
                for (size_t k = 0; k < wlens[i]; k++)
                    CHECK(bufs[i][1][k] == 0xa5);
            }
            g_free(bufs[i][0]);
            g_free(bufs[i][1]);
        }
        for (int i = 0; i < NEP; i++)
            fls[i].refuse = fls[i].fail_at_end = 0;
        check_views(v, fls);

        /* Translations agree with the mappings they come from. */
        for (int i = 0; i < NEP; i++) {
            viommu_translation t;
            uint64_t iova = (uint64_t)count << 12;
            if (viommu_translate(v, fls[i].ep, iova, VIOMMU_ACCESS_READ, &t) == 0) {
                CHECK(t.iova_last >= iova);
                CHECK(t.prot & VIOMMU_ACCESS_READ);
            }
        }
    }

    viommu_reset(v);
    check_views(v, fls);
    for (int i = 0; i < NEP; i++) {
        g_hash_table_destroy(fls[i].held);
        g_array_free(fls[i].batch, TRUE);
    }
    viommu_free(v);
    return 0;
}

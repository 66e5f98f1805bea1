/* SPDX-License-Identifier: MIT */
/*
 * fuzz_state - arbitrary bytes loaded as a device state stream into a
 * device that declares endpoints 1 and 2 with listeners. A refused
 * stream must leave the device exactly as it was and every listener
 * holding nothing; a loaded one must save back to the very same bytes,
 * with each listener holding exactly its domain's mappings.
 *
 * Input: byte 0 says how to treat the rest. Bit 0 set: the stream's
 * length field and CRC are rewritten to match, so the fuzzer reaches
 * the decoder behind the checksum; clear: the bytes are loaded as they
 * are. Bit 1 makes endpoint 2's listener refuse every map.
 */
#include <endian.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "viommu.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "invariant failed: %s (line %d)\n", #c, __LINE__);                     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

typedef struct holder {
    int64_t held;
    bool in_batch;
    bool refuse;
} holder;

static void h_begin(void *o)
{
    holder *h = o;
    CHECK(!h->in_batch);
    h->in_batch = true;
}

static int h_map(void *o, const mapping_event *ev)
{
    holder *h = o;
    CHECK(h->in_batch);
    CHECK(ev->iova <= ev->iova_last);
    if (h->refuse)
        return -ENOSPC;
    h->held++;
    return 0;
}

static int h_unmap(void *o, const mapping_event *ev)
{
    holder *h = o;
    (void)ev;
    CHECK(h->in_batch);
    h->held--;
    CHECK(h->held >= 0);
    return 0;
}

static int h_end(void *o, mapping_failed_fn failed, void *fail_opaque)
{
    holder *h = o;
    (void)failed;
    (void)fail_opaque;
    CHECK(h->in_batch);
    h->in_batch = false;
    return 0;
}

static const mapping_listener_ops h_ops = {h_begin, h_map, h_unmap, h_end};

static uint32_t crc32_ref(const uint8_t *p, size_t len)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < len; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
    }
    return c ^ 0xffffffffu;
}

static uint8_t *save(const viommu *v, size_t *len)
{
    CHECK(viommu_save(v, NULL, 0, len) == -ENOSPC);
    uint8_t *buf = malloc(*len);
    CHECK(buf);
    CHECK(viommu_save(v, buf, *len, len) == 0);
    return buf;
}

static uint64_t domain_mappings(viommu *v, uint32_t ep)
{
    uint32_t dom;
    uint64_t n = 0;
    if (viommu_endpoint_domain(v, ep, &dom) == 0)
        CHECK(viommu_domain_info(v, dom, NULL, &n, NULL) == 0);
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > (1u << 20))
        return 0;
    uint8_t mode = data[0];
    size_t len = size - 1;
    uint8_t *s = malloc(len ? len : 1);
    CHECK(s);
    memcpy(s, data + 1, len);
    if ((mode & 1) && len >= 36) {
        uint64_t l = htole64(len);
        memcpy(s + 16, &l, 8);
        uint32_t c = htole32(crc32_ref(s, len - 4));
        memcpy(s + len - 4, &c, 4);
    }

    viommu_config cfg;
    viommu_config_init(&cfg);
    cfg.max_mappings_per_domain = 4096;
    viommu *v = viommu_new(&cfg, NULL);
    CHECK(v);
    holder h[3] = {{0, false, false}, {0, false, false}, {0, false, (mode & 2) != 0}};
    for (uint32_t ep = 1; ep <= 2; ep++) {
        mapping_listener l = {&h_ops, &h[ep]};
        CHECK(viommu_endpoint_add(v, ep) == 0);
        CHECK(viommu_endpoint_set_listener(v, ep, &l) == 0);
    }
    size_t before_len;
    uint8_t *before = save(v, &before_len);

    GError *err = NULL;
    int rc = viommu_load(v, s, len, &err);
    size_t after_len;
    uint8_t *after = save(v, &after_len);
    if (rc < 0) {
        CHECK(err != NULL);
        CHECK(after_len == before_len && memcmp(after, before, after_len) == 0);
        CHECK(h[1].held == 0 && h[2].held == 0);
        g_error_free(err);
    } else {
        CHECK(err == NULL);
        CHECK(after_len == len && memcmp(after, s, len) == 0);
        for (uint32_t ep = 1; ep <= 2; ep++)
            CHECK((uint64_t)h[ep].held == domain_mappings(v, ep));
    }
    CHECK(!h[1].in_batch && !h[2].in_batch);
    free(before);
    free(after);
    free(s);
    viommu_free(v);
    return 0;
}

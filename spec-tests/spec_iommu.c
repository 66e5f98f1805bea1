/* SPDX-License-Identifier: MIT */
/* spec_iommu.c - the driver side of the conformance suite. */
#include "spec_iommu.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

void spec_put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

void spec_put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

void spec_put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

uint16_t spec_get_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

uint32_t spec_get_le32(const uint8_t *p)
{
    uint32_t v = 0;

    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

uint64_t spec_get_le64(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

viommu *spec_device_with(const viommu_config *cfg, uint64_t features, uint32_t endpoints)
{
    viommu_config defaults;
    GError *error = NULL;
    viommu *v;

    if (!cfg) {
        viommu_config_init(&defaults);
        cfg = &defaults;
    }
    v = viommu_new(cfg, &error);
    cr_assert_not_null(v, "viommu_new: %s", error ? error->message : "?");
    if (features == SPEC_ALL_OFFERED)
        features = viommu_device_features(v);
    cr_assert_eq(viommu_set_driver_features(v, features), 0);
    for (uint32_t ep = 1; ep <= endpoints; ep++)
        cr_assert_eq(viommu_endpoint_add(v, ep), 0);
    return v;
}

viommu *spec_device(void)
{
    return spec_device_with(NULL, SPEC_ALL_OFFERED, SPEC_ENDPOINTS);
}

viommu *spec_device_granule(uint64_t mask)
{
    viommu_config cfg;

    viommu_config_init(&cfg);
    cfg.page_size_mask = mask;
    return spec_device_with(&cfg, SPEC_ALL_OFFERED, SPEC_ENDPOINTS);
}

/*
 * Layouts from the spec's listings:
 *   head { u8 type; u8 reserved[3]; }                          bytes 0-3
 *   attach { le32 domain; le32 endpoint; le32 flags; u8 reserved[4]; }
 *   detach { le32 domain; le32 endpoint; u8 reserved[8]; }
 *   map { le32 domain; le64 virt_start; le64 virt_end; le64 phys_start; le32 flags; }
 *   unmap { le32 domain; le64 virt_start; le64 virt_end; u8 reserved[4]; }
 *   tail { u8 status; u8 reserved[3]; }
 */
size_t spec_enc_attach(uint8_t buf[SPEC_ATTACH_LEN], uint32_t domain, uint32_t endpoint,
                       uint32_t flags)
{
    memset(buf, 0, SPEC_ATTACH_LEN);
    buf[0] = VIRTIO_IOMMU_T_ATTACH;
    spec_put_le32(buf + 4, domain);
    spec_put_le32(buf + 8, endpoint);
    spec_put_le32(buf + 12, flags);
    return SPEC_ATTACH_LEN - SPEC_TAIL_LEN;
}

size_t spec_enc_detach(uint8_t buf[SPEC_DETACH_LEN], uint32_t domain, uint32_t endpoint)
{
    memset(buf, 0, SPEC_DETACH_LEN);
    buf[0] = VIRTIO_IOMMU_T_DETACH;
    spec_put_le32(buf + 4, domain);
    spec_put_le32(buf + 8, endpoint);
    return SPEC_DETACH_LEN - SPEC_TAIL_LEN;
}

size_t spec_enc_map(uint8_t buf[SPEC_MAP_LEN], uint32_t domain, uint64_t virt_start,
                    uint64_t virt_end, uint64_t phys_start, uint32_t flags)
{
    memset(buf, 0, SPEC_MAP_LEN);
    buf[0] = VIRTIO_IOMMU_T_MAP;
    spec_put_le32(buf + 4, domain);
    spec_put_le64(buf + 8, virt_start);
    spec_put_le64(buf + 16, virt_end);
    spec_put_le64(buf + 24, phys_start);
    spec_put_le32(buf + 32, flags);
    return SPEC_MAP_LEN - SPEC_TAIL_LEN;
}

size_t spec_enc_unmap(uint8_t buf[SPEC_UNMAP_LEN], uint32_t domain, uint64_t virt_start,
                      uint64_t virt_end)
{
    memset(buf, 0, SPEC_UNMAP_LEN);
    buf[0] = VIRTIO_IOMMU_T_UNMAP;
    spec_put_le32(buf + 4, domain);
    spec_put_le64(buf + 8, virt_start);
    spec_put_le64(buf + 16, virt_end);
    return SPEC_UNMAP_LEN - SPEC_TAIL_LEN;
}

size_t spec_send(viommu *v, const void *rd, size_t rd_len, void *wr, size_t wr_len)
{
    struct iovec rd_iov = {.iov_base = (void *)rd, .iov_len = rd_len};
    struct iovec wr_iov = {.iov_base = wr, .iov_len = wr_len};
    viommu_request req = {
        .readable = &rd_iov,
        .readable_count = 1,
        .writable = &wr_iov,
        .writable_count = wr_len ? 1 : 0,
    };

    cr_assert_eq(viommu_handle_request(v, &req), 0);
    cr_assert_leq(req.used_len, wr_len, "used length beyond the writable buffers");
    return req.used_len;
}

int spec_request(viommu *v, const void *rd, size_t rd_len, uint8_t tail[SPEC_TAIL_LEN])
{
    uint8_t wr[SPEC_TAIL_LEN];
    size_t used;

    memset(wr, 0xff, sizeof(wr));
    used = spec_send(v, rd, rd_len, wr, sizeof(wr));
    if (tail)
        memcpy(tail, wr, sizeof(wr));
    if (used == 0) {
        /* Used length 0 means the buffer was not written: check it. */
        for (size_t i = 0; i < sizeof(wr); i++)
            cr_assert_eq(wr[i], 0xff, "a buffer returned with used length 0 was written");
        return SPEC_UNWRITTEN;
    }
    cr_assert_eq(used, SPEC_TAIL_LEN, "a tail-only request's used length is the tail");
    return wr[0];
}

int spec_attach(viommu *v, uint32_t domain, uint32_t endpoint, uint32_t flags)
{
    uint8_t buf[SPEC_ATTACH_LEN];
    size_t n = spec_enc_attach(buf, domain, endpoint, flags);

    return spec_request(v, buf, n, NULL);
}

int spec_detach(viommu *v, uint32_t domain, uint32_t endpoint)
{
    uint8_t buf[SPEC_DETACH_LEN];
    size_t n = spec_enc_detach(buf, domain, endpoint);

    return spec_request(v, buf, n, NULL);
}

int spec_map(viommu *v, uint32_t domain, uint64_t virt_start, uint64_t virt_end,
             uint64_t phys_start, uint32_t flags)
{
    uint8_t buf[SPEC_MAP_LEN];
    size_t n = spec_enc_map(buf, domain, virt_start, virt_end, phys_start, flags);

    return spec_request(v, buf, n, NULL);
}

int spec_unmap(viommu *v, uint32_t domain, uint64_t virt_start, uint64_t virt_end)
{
    uint8_t buf[SPEC_UNMAP_LEN];
    size_t n = spec_enc_unmap(buf, domain, virt_start, virt_end);

    return spec_request(v, buf, n, NULL);
}

int spec_probe(viommu *v, uint32_t endpoint, uint8_t *props, size_t props_len, size_t *used)
{
    uint8_t rd[SPEC_PROBE_READABLE] = {0};
    size_t wr_len = props_len + SPEC_TAIL_LEN;
    uint8_t *wr = g_malloc(wr_len);
    int status;

    rd[0] = VIRTIO_IOMMU_T_PROBE;
    spec_put_le32(rd + 4, endpoint);
    memset(wr, 0xff, wr_len);
    *used = spec_send(v, rd, sizeof(rd), wr, wr_len);
    memcpy(props, wr, props_len);
    status = *used ? wr[wr_len - SPEC_TAIL_LEN] : SPEC_UNWRITTEN;
    g_free(wr);
    return status;
}

bool spec_access(viommu *v, uint32_t endpoint, uint64_t iova, uint32_t access, uint64_t *gpa)
{
    viommu_translation t;
    int ret = viommu_translate(v, endpoint, iova, access, &t);

    cr_assert(ret == 0 || ret == -EFAULT, "translate: unexpected %d", ret);
    if (ret == 0 && gpa)
        *gpa = t.gpa;
    return ret == 0;
}

uint8_t spec_config_u8(viommu *v, uint32_t offset)
{
    uint8_t b;

    cr_assert_eq(viommu_config_read(v, offset, &b, 1), 0);
    return b;
}

uint64_t spec_config_u64(viommu *v, uint32_t offset)
{
    uint8_t b[8];

    cr_assert_eq(viommu_config_read(v, offset, b, 8), 0);
    return spec_get_le64(b);
}

int64_t spec_mapping_count(viommu *v, uint32_t domain)
{
    uint64_t n;

    if (viommu_domain_info(v, domain, NULL, &n, NULL) < 0)
        return -1;
    return (int64_t)n;
}

static void on_event(void *opaque, uint64_t cookie, size_t used_len)
{
    spec_events *ev = opaque;

    cr_assert_lt(cookie, 4);
    ev->completed[cookie] = true;
    ev->used[cookie] = used_len;
}

void spec_events_post(viommu *v, spec_events *ev, unsigned i, size_t len)
{
    struct iovec iov = {.iov_base = ev->buf[i], .iov_len = len};

    cr_assert_lt(i, 4);
    cr_assert_leq(len, sizeof(ev->buf[i]));
    memset(ev->buf[i], 0xff, sizeof(ev->buf[i]));
    ev->completed[i] = false;
    ev->used[i] = 0;
    viommu_set_event_handler(v, on_event, ev);
    cr_assert_eq(viommu_event_post(v, &iov, 1, i), 0);
}

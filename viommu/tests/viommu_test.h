/* SPDX-License-Identifier: MIT */
/*
 * viommu_test.h - builds wire requests for the unit tests and runs them
 * through the full request path.
 */
#ifndef VIOMMU_TEST_H
#define VIOMMU_TEST_H

#include <criterion/criterion.h>
#include <endian.h>
#include <errno.h>
#include <string.h>

#include "viommu.h"

/* A device with the default configuration (or @page_mask), every offered
 * feature negotiated, and endpoints 1..@nep. */
static inline viommu *test_device(uint64_t page_mask, uint32_t nep)
{
    viommu_config cfg;
    viommu_config_init(&cfg);
    if (page_mask)
        cfg.page_size_mask = page_mask;
    viommu *v = viommu_new(&cfg, NULL);
    cr_assert_not_null(v);
    cr_assert_eq(viommu_set_driver_features(v, viommu_device_features(v)), 0);
    for (uint32_t i = 1; i <= nep; i++)
        cr_assert_eq(viommu_endpoint_add(v, i), 0);
    return v;
}

/* Runs @body (readable) with a 4-byte writable tail; returns the status
 * and stores the used length in *used when not NULL. */
static inline int test_send(viommu *v, const void *body, size_t len, size_t *used)
{
    uint8_t tail[4] = {0xff, 0xff, 0xff, 0xff};
    struct iovec rd = {(void *)body, len};
    struct iovec wr = {tail, sizeof(tail)};
    viommu_request req = {&rd, 1, &wr, 1, 0, 0, 0};
    cr_assert_eq(viommu_handle_request(v, &req), 0);
    if (used)
        *used = req.used_len;
    if (req.status != VIOMMU_STATUS_NONE) {
        cr_assert_eq(tail[0], req.status, "tail holds the status");
        cr_assert(tail[1] == 0 && tail[2] == 0 && tail[3] == 0, "tail reserved is zero");
    }
    return req.status;
}

static inline struct virtio_iommu_req_attach test_attach_req(uint32_t domain, uint32_t ep,
                                                             uint32_t flags)
{
    struct virtio_iommu_req_attach r;
    memset(&r, 0, sizeof(r));
    r.head.type = VIRTIO_IOMMU_T_ATTACH;
    r.domain = htole32(domain);
    r.endpoint = htole32(ep);
    r.flags = htole32(flags);
    return r;
}

static inline int test_attach(viommu *v, uint32_t domain, uint32_t ep, uint32_t flags)
{
    struct virtio_iommu_req_attach r = test_attach_req(domain, ep, flags);
    return test_send(v, &r, offsetof(struct virtio_iommu_req_attach, tail), NULL);
}

static inline int test_detach(viommu *v, uint32_t domain, uint32_t ep)
{
    struct virtio_iommu_req_detach r;
    memset(&r, 0, sizeof(r));
    r.head.type = VIRTIO_IOMMU_T_DETACH;
    r.domain = htole32(domain);
    r.endpoint = htole32(ep);
    return test_send(v, &r, offsetof(struct virtio_iommu_req_detach, tail), NULL);
}

static inline struct virtio_iommu_req_map test_map_req(uint32_t domain, uint64_t vs, uint64_t ve,
                                                       uint64_t ps, uint32_t flags)
{
    struct virtio_iommu_req_map r;
    memset(&r, 0, sizeof(r));
    r.head.type = VIRTIO_IOMMU_T_MAP;
    r.domain = htole32(domain);
    r.virt_start = htole64(vs);
    r.virt_end = htole64(ve);
    r.phys_start = htole64(ps);
    r.flags = htole32(flags);
    return r;
}

static inline int test_map(viommu *v, uint32_t domain, uint64_t vs, uint64_t ve, uint64_t ps,
                           uint32_t flags)
{
    struct virtio_iommu_req_map r = test_map_req(domain, vs, ve, ps, flags);
    return test_send(v, &r, offsetof(struct virtio_iommu_req_map, tail), NULL);
}

static inline struct virtio_iommu_req_unmap test_unmap_req(uint32_t domain, uint64_t vs,
                                                           uint64_t ve)
{
    struct virtio_iommu_req_unmap r;
    memset(&r, 0, sizeof(r));
    r.head.type = VIRTIO_IOMMU_T_UNMAP;
    r.domain = htole32(domain);
    r.virt_start = htole64(vs);
    r.virt_end = htole64(ve);
    return r;
}

static inline int test_unmap(viommu *v, uint32_t domain, uint64_t vs, uint64_t ve)
{
    struct virtio_iommu_req_unmap r = test_unmap_req(domain, vs, ve);
    return test_send(v, &r, offsetof(struct virtio_iommu_req_unmap, tail), NULL);
}

static inline uint64_t test_mappings(viommu *v, uint32_t domain)
{
    uint64_t n = 0;
    if (viommu_domain_info(v, domain, NULL, &n, NULL) != 0)
        return 0;
    return n;
}

#define RW (VIRTIO_IOMMU_MAP_F_READ | VIRTIO_IOMMU_MAP_F_WRITE)

#endif /* VIOMMU_TEST_H */

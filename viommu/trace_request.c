/* SPDX-License-Identifier: MIT */
/*
 * trace_request.c - the request and batch trace events. They run only
 * while tracing is wanted, so they decode what they report from the
 * driver's buffers again instead of making the request path carry it.
 */
#include <string.h>

#include "viommu_internal.h"

/* Bytes the driver made available, saturated to the field's width. */
static uint32_t request_size(const viommu_request *req)
{
    size_t r = vi_iov_size(req->readable, req->readable_count);
    size_t w = vi_iov_size(req->writable, req->writable_count);
    size_t total = r > SIZE_MAX - w ? SIZE_MAX : r + w;
    return total > UINT32_MAX ? UINT32_MAX : (uint32_t)total;
}

uint64_t vi_trace_batch_begin(const viommu *v, const viommu_request *reqs, size_t n)
{
    uint64_t batch = v->stats.batches + 1;
    uint64_t t0 = trace_now_ns();
    TRACE(batch_begin, batch);
    /* The VMM hands over every request of the notification at once:
     * they are all received when the batch begins. */
    for (size_t i = 0; i < n; i++) {
        struct virtio_iommu_req_head head;
        uint32_t type = 0;
        if (vi_iov_read(reqs[i].readable, reqs[i].readable_count, 0, &head, sizeof(head)) ==
            sizeof(head))
            type = head.type;
        uint32_t size = request_size(&reqs[i]);
        TRACE(request_received, type, size, batch);
    }
    return t0;
}

/* Reads the first @len bytes of the request (zeros where it is short). */
static void read_request(const viommu_request *req, void *buf, size_t len)
{
    memset(buf, 0, len);
    vi_iov_read(req->readable, req->readable_count, 0, buf, len);
}

void vi_trace_request_done(const viommu *v, const viommu_request *req, uint64_t t0)
{
    uint32_t domain = 0, endpoint = 0, flags = 0;
    uint64_t virt_start = 0, virt_end = 0, phys_start = 0;

    switch (req->type) {
    case VIRTIO_IOMMU_T_ATTACH: {
        struct virtio_iommu_req_attach r;
        read_request(req, &r, offsetof(struct virtio_iommu_req_attach, tail));
        domain = le32toh(r.domain);
        endpoint = le32toh(r.endpoint);
        flags = le32toh(r.flags);
        break;
    }
    case VIRTIO_IOMMU_T_DETACH: {
        struct virtio_iommu_req_detach r;
        read_request(req, &r, offsetof(struct virtio_iommu_req_detach, tail));
        domain = le32toh(r.domain);
        endpoint = le32toh(r.endpoint);
        break;
    }
    case VIRTIO_IOMMU_T_MAP: {
        struct virtio_iommu_req_map r;
        read_request(req, &r, offsetof(struct virtio_iommu_req_map, tail));
        domain = le32toh(r.domain);
        virt_start = le64toh(r.virt_start);
        virt_end = le64toh(r.virt_end);
        phys_start = le64toh(r.phys_start);
        flags = le32toh(r.flags);
        break;
    }
    case VIRTIO_IOMMU_T_UNMAP: {
        struct virtio_iommu_req_unmap r;
        read_request(req, &r, offsetof(struct virtio_iommu_req_unmap, tail));
        domain = le32toh(r.domain);
        virt_start = le64toh(r.virt_start);
        virt_end = le64toh(r.virt_end);
        break;
    }
    case VIRTIO_IOMMU_T_PROBE: {
        struct virtio_iommu_req_probe r;
        read_request(req, &r, sizeof(r));
        endpoint = le32toh(r.endpoint);
        break;
    }
    default:
        break;
    }
    uint64_t now = trace_now_ns();
    TRACE(request_done, req->type, domain, endpoint, virt_start, virt_end, phys_start, flags,
          (uint32_t)req->status, now > t0 ? now - t0 : 0, v->stats.batches + 1);
}

void vi_trace_batch_end(const viommu *v, size_t n, uint64_t t0)
{
    uint64_t now = trace_now_ns();
    TRACE(batch_end, v->stats.batches + 1, n > UINT32_MAX ? UINT32_MAX : (uint32_t)n,
          now > t0 ? now - t0 : 0);
}

uint32_t vi_trace_listener_index(viommu *v, uint32_t endpoint)
{
    const vi_endpoint *ep = vi_endpoint_lookup(v, endpoint);
    return ep ? ep->trace_index : UINT32_MAX;
}

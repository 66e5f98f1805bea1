/* SPDX-License-Identifier: MIT */
/*
 * trace_request.c - the request and batch trace events. They run only
 * while tracing is wanted. A request_done reports the fields the request
 * kept as it decoded them; only a request that stopped before decoding
 * its body (unsupported, too short) has them read from the driver's
 * buffers again.
 *
 * Two clock readings per batch, whatever its size (a reading costs more
 * than the rest of an event): one when the batch begins, the time of
 * every request_received (the VMM hands the whole notification over at
 * once) and of the listener events the batch fires; one when the
 * requests complete (their statuses are written together, after the
 * last one ran), the time of every request_done and of batch_end.
 */
#include <string.h>

#include "viommu_internal.h"

/* Bytes the driver made available, saturated to the field's width. */
static inline uint32_t request_size(const viommu_request *req)
{
    size_t r = vi_iov_size(req->readable, req->readable_count);
    size_t w = vi_iov_size(req->writable, req->writable_count);
    size_t total = r > SIZE_MAX - w ? SIZE_MAX : r + w;
    return total > UINT32_MAX ? UINT32_MAX : (uint32_t)total;
}

/* The type of a request: its head's first byte (0 when the driver's
 * buffers do not hold a whole head). */
static inline uint32_t request_type(const viommu_request *req)
{
    if (req->readable_count &&
        req->readable[0].iov_len >= sizeof(struct virtio_iommu_req_head))
        return *(const uint8_t *)req->readable[0].iov_base;
    struct virtio_iommu_req_head head;
    if (vi_iov_read(req->readable, req->readable_count, 0, &head, sizeof(head)) != sizeof(head))
        return 0;
    return head.type;
}

/* The type and size of a request, as its request_received reports them:
 * inline for the usual request, in one readable and one writable buffer
 * (request_type and request_size with the buffer counts checked once:
 * 4 fewer instructions per traced request). */
static inline void received_fields(const viommu_request *req, uint8_t *type, uint32_t *size)
{
    if (__builtin_expect(req->readable_count == 1 && req->writable_count == 1, 1)) {
        size_t r = req->readable[0].iov_len, total;
        *type = r >= sizeof(struct virtio_iommu_req_head)
                    ? *(const uint8_t *)req->readable[0].iov_base
                    : 0;
        if (__builtin_add_overflow(r, req->writable[0].iov_len, &total) || total > UINT32_MAX)
            total = UINT32_MAX;
        *size = (uint32_t)total;
        return;
    }
    *type = (uint8_t)request_type(req);
    *size = request_size(req);
}

/* No tracer is attached to the probes of the events a batch fires. */
#define BATCH_PROBES_IDLE()                                                                        \
    ((__atomic_load_n(&viommu_batch_begin_semaphore, __ATOMIC_RELAXED) |                           \
      __atomic_load_n(&viommu_batch_end_semaphore, __ATOMIC_RELAXED) |                             \
      __atomic_load_n(&viommu_request_received_semaphore, __ATOMIC_RELAXED) |                      \
      __atomic_load_n(&viommu_request_done_semaphore, __ATOMIC_RELAXED) |                          \
      __atomic_load_n(&viommu_listener_map_semaphore, __ATOMIC_RELAXED) |                          \
      __atomic_load_n(&viommu_listener_unmap_semaphore, __ATOMIC_RELAXED)) == 0)

uint64_t vi_trace_batch_begin(viommu *v, const viommu_request *reqs, size_t n, vi_req_trace **tf)
{
    uint64_t batch = v->stats.batches + 1;
    uint64_t t0 = trace_now_ns();
    g_array_set_size(v->trace_reqs, n);
    vi_req_trace *fields = (vi_req_trace *)(void *)v->trace_reqs->data;
    *tf = fields;
    /* With the trace files the only outputs, the batch's events go
     * straight into the thread's ring: no call, no check per event. */
    trace_ring *r = BATCH_PROBES_IDLE() ? trace_thread_ring() : NULL;
    v->trace_ring = r;
    v->trace_ts = t0;
    VI_TRACE_AT(v, batch_begin, t0, batch);
    /* The VMM hands over every request of the notification at once:
     * they are all received when the batch begins. Into the ring,
     * TRACE_RECEIVED_PER_SLOT requests a slot. */
    size_t i = 0;
    while (r && i < n) {
        trace_event *ev;
        size_t k = trace_ring_stage_run(
            r, (n - i + TRACE_RECEIVED_PER_SLOT - 1) / TRACE_RECEIVED_PER_SLOT, &ev);
        if (!k)
            break;
        for (size_t j = 0; j < k; j++) {
            trace_received_run run;
            size_t m = n - i < TRACE_RECEIVED_PER_SLOT ? n - i : TRACE_RECEIVED_PER_SLOT;
            run.batch = batch;
            run.count = (uint8_t)m;
            for (size_t e = 0; e < m; e++, i++) {
                fields[i].id = TRACE_EVENT_COUNT; /* not decoded */
                received_fields(&reqs[i], &run.type[e], &run.size[e]);
            }
            ev[j].id = TRACE_RING_RECEIVED_RUN;
            ev[j].ts_ns = t0;
            memcpy(&ev[j].u, &run, sizeof(run));
        }
        trace_ring_staged_run(r, k);
    }
    for (size_t j = i; j < n; j++)
        fields[j].id = TRACE_EVENT_COUNT;
    for (; !r && i < n; i++)
        TRACE_AT(request_received, t0, request_type(&reqs[i]), request_size(&reqs[i]), batch);
    return t0;
}

/* Reads the first @len bytes of the request (zeros where it is short). */
static void read_request(const viommu_request *req, void *buf, size_t len)
{
    memset(buf, 0, len);
    vi_iov_read(req->readable, req->readable_count, 0, buf, len);
}

/* The fields of a request that was not decoded, read from its buffers
 * as far as they go (the rest 0). */
static void reread_fields(const viommu_request *req, trace_request_done_fields *f)
{
    memset(f, 0, sizeof(*f));
    switch (req->type) {
    case VIRTIO_IOMMU_T_ATTACH: {
        struct virtio_iommu_req_attach r;
        read_request(req, &r, offsetof(struct virtio_iommu_req_attach, tail));
        f->domain = le32toh(r.domain);
        f->endpoint = le32toh(r.endpoint);
        f->flags = le32toh(r.flags);
        break;
    }
    case VIRTIO_IOMMU_T_DETACH: {
        struct virtio_iommu_req_detach r;
        read_request(req, &r, offsetof(struct virtio_iommu_req_detach, tail));
        f->domain = le32toh(r.domain);
        f->endpoint = le32toh(r.endpoint);
        break;
    }
    case VIRTIO_IOMMU_T_MAP: {
        struct virtio_iommu_req_map r;
        read_request(req, &r, offsetof(struct virtio_iommu_req_map, tail));
        f->domain = le32toh(r.domain);
        f->virt_start = le64toh(r.virt_start);
        f->virt_end = le64toh(r.virt_end);
        f->phys_start = le64toh(r.phys_start);
        f->flags = le32toh(r.flags);
        break;
    }
    case VIRTIO_IOMMU_T_UNMAP: {
        struct virtio_iommu_req_unmap r;
        read_request(req, &r, offsetof(struct virtio_iommu_req_unmap, tail));
        f->domain = le32toh(r.domain);
        f->virt_start = le64toh(r.virt_start);
        f->virt_end = le64toh(r.virt_end);
        break;
    }
    case VIRTIO_IOMMU_T_PROBE: {
        struct virtio_iommu_req_probe r;
        read_request(req, &r, sizeof(r));
        f->endpoint = le32toh(r.endpoint);
        break;
    }
    default:
        break;
    }
}

/* Completes the request_done slot of @req: what its decoder did not
 * fill, with time @now. */
static inline void complete_done(const viommu_request *req, vi_req_trace *ev, uint64_t now,
                                 uint64_t latency, uint64_t batch)
{
    if (__builtin_expect(ev->id != TRACE_EV_request_done, 0)) {
        ev->id = TRACE_EV_request_done;
        reread_fields(req, &ev->u.request_done);
    }
    ev->ts_ns = now;
    ev->u.request_done.type = req->type;
    ev->u.request_done.status = (uint32_t)req->status;
    ev->u.request_done.latency_ns = latency;
    ev->u.request_done.batch = batch;
}

void vi_trace_batch_done(const viommu *v, const viommu_request *reqs, vi_req_trace *tf, size_t n,
                         uint64_t t0, uint64_t now)
{
    uint64_t batch = v->stats.batches + 1, latency = now > t0 ? now - t0 : 0;
    trace_ring *r = v->trace_ring;
    /* A request with no status did not complete. */
    size_t done = 0;
    for (size_t i = 0; i < n; i++) {
        if (__builtin_expect(reqs[i].status != VIOMMU_STATUS_NONE, 1)) {
            complete_done(&reqs[i], &tf[i], now, latency, batch);
            done++;
        }
    }
    if (r && done == n) {
        trace_ring_put_events(r, tf, n);
    } else if (r) {
        /* The slots of each run of completed requests go into the ring
         * whole. */
        for (size_t i = 0, run = 0; i <= n; i++) {
            if (i < n && reqs[i].status != VIOMMU_STATUS_NONE)
                continue;
            if (run < i && trace_ring_put_events(r, &tf[run], i - run) < i - run)
                break;
            run = i + 1;
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            if (reqs[i].status == VIOMMU_STATUS_NONE)
                continue;
            const trace_request_done_fields *f = &tf[i].u.request_done;
            TRACE_AT(request_done, now, f->type, f->domain, f->endpoint, f->virt_start, f->virt_end,
                     f->phys_start, f->flags, f->status, f->latency_ns, f->batch);
        }
    }
    VI_TRACE_AT(v, batch_end, now, batch, n > UINT32_MAX ? UINT32_MAX : (uint32_t)n, latency);
}

/*
 * vi_trace_listener_map / vi_trace_listener_unmap: out of line, for when
 * VI_TRACE_LISTENER found no room as last seen (the put waits for room)
 * or the batch has no ring (the fire functions). The two events have the
 * same fields.
 */
#define LISTENER_EVENT_FN_(name)                                                                   \
    void vi_trace_##name(const viommu *v, uint32_t index, const mapping_event *ev, int rc)         \
    {                                                                                              \
        VI_TRACE_AT(v, name, v->trace_ts, index, ev->endpoint, ev->domain, ev->iova,               \
                    ev->iova_last, ev->gpa, ev->prot, rc);                                         \
    }
LISTENER_EVENT_FN_(listener_map)
LISTENER_EVENT_FN_(listener_unmap)

uint32_t vi_trace_listener_index(viommu *v, uint32_t endpoint)
{
    const vi_endpoint *ep = vi_endpoint_lookup(v, endpoint);
    return ep ? ep->trace_index : UINT32_MAX;
}

/* SPDX-License-Identifier: MIT */
/*
 * request.c - decoding requests from the driver's buffers and running
 * them as batches: exact lengths, tails written once the batch's
 * listeners have confirmed every map, rollback of the maps they failed.
 */
#include <string.h>

#include "viommu_internal.h"

size_t vi_iov_size_walk(const struct iovec *iov, size_t count)
{
    size_t total = 0;
    for (size_t i = 0; i < count; i++) {
        /* Saturate: a list this large is rejected by the length checks. */
        if (iov[i].iov_len > SIZE_MAX - total)
            return SIZE_MAX;
        total += iov[i].iov_len;
    }
    return total;
}

typedef enum iov_op { IOV_READ, IOV_WRITE, IOV_FILL } iov_op;

/* Walks @iov from @offset for up to @len bytes: copies out to @buf,
 * copies in from @buf, or fills with @byte. Returns the bytes done. */
static size_t iov_walk(const struct iovec *iov, size_t count, size_t offset, uint8_t *buf,
                       uint8_t byte, size_t len, iov_op op)
{
    size_t done = 0;
    for (size_t i = 0; i < count && done < len; i++) {
        size_t l = iov[i].iov_len;
        if (offset >= l) {
            offset -= l;
            continue;
        }
        size_t n = l - offset;
        if (n > len - done)
            n = len - done;
        uint8_t *p = (uint8_t *)iov[i].iov_base + offset;
        if (op == IOV_READ)
            memcpy(buf + done, p, n);
        else if (op == IOV_WRITE)
            memcpy(p, buf + done, n);
        else
            memset(p, byte, n);
        done += n;
        offset = 0;
    }
    return done;
}

size_t vi_iov_read_walk(const struct iovec *iov, size_t count, size_t offset, void *buf, size_t len)
{
    return iov_walk(iov, count, offset, buf, 0, len, IOV_READ);
}

size_t vi_iov_write_walk(const struct iovec *iov, size_t count, size_t offset, const void *buf,
                         size_t len)
{
    /* IOV_WRITE only reads through the pointer. */
    return iov_walk(iov, count, offset, (uint8_t *)(uintptr_t)buf, 0, len, IOV_WRITE);
}

size_t vi_iov_fill(const struct iovec *iov, size_t count, size_t offset, uint8_t byte, size_t len)
{
    return iov_walk(iov, count, offset, NULL, byte, len, IOV_FILL);
}

uint8_t vi_errno_status(int err)
{
    /* The one place a listener's errno becomes a guest status. */
    return (err == -ENOSPC || err == -ENOMEM) ? VIRTIO_IOMMU_S_NOMEM : VIRTIO_IOMMU_S_DEVERR;
}

/* ---- listener plumbing ---------------------------------------------- */

static void begin_listener(viommu *v, vi_endpoint *ep)
{
    if (ep->batch_gen == v->batch_gen)
        return;
    ep->batch_gen = v->batch_gen;
    /* touched_cap >= number of endpoints (viommu_endpoint_add). */
    v->touched[v->ntouched++] = ep;
    if (ep->listener.ops->batch_begin)
        ep->listener.ops->batch_begin(ep->listener.opaque);
}

int vi_emit_map(viommu *v, vi_endpoint *ep, const mapping_event *ev)
{
    if (!ep->listener.ops || !ep->listener.ops->map)
        return 0;
    begin_listener(v, ep);
    int rc = ep->listener.ops->map(ep->listener.opaque, ev);
    if (vi_trace_listener_wanted(v))
        VI_TRACE_LISTENER(v, listener_map, ep->trace_index, ev, rc);
    if (rc < 0) {
        v->stats.listener_failures++;
        return rc;
    }
    return 0;
}

void vi_emit_unmap(viommu *v, vi_endpoint *ep, const mapping_event *ev)
{
    if (!ep->listener.ops || !ep->listener.ops->unmap)
        return;
    begin_listener(v, ep);
    /* The range is gone from the guest's view whatever the listener says. */
    int rc = ep->listener.ops->unmap(ep->listener.opaque, ev);
    if (vi_trace_listener_wanted(v))
        VI_TRACE_LISTENER(v, listener_unmap, ep->trace_index, ev, rc);
}

void vi_batch_start(viommu *v)
{
    v->batch_gen++;
    v->ntouched = 0;
#ifndef TRACE_COMPILED_OUT
    v->trace_listeners = vi_trace_listeners_on();
#endif
}

/* Unmap-only batches cannot fail a map: nothing to collect. */
static void ignore_failure(void *opaque, const mapping_event *ev, int err)
{
    (void)opaque;
    (void)ev;
    (void)err;
}

void vi_batch_finish(viommu *v, mapping_failed_fn failed, void *fail_opaque)
{
    if (!failed)
        failed = ignore_failure;
    for (size_t i = 0; i < v->ntouched; i++) {
        vi_endpoint *ep = v->touched[i];
        if (ep->listener.ops->batch_end)
            (void)ep->listener.ops->batch_end(ep->listener.opaque, failed, fail_opaque);
    }
    v->ntouched = 0;
    v->trace_listeners = true;
}

static void collect_failure(void *opaque, const mapping_event *ev, int err)
{
    viommu *v = opaque;
    vi_failure f = {*ev, err < 0 ? err : -EIO};
    /* The listener's final answer to a map it had accepted at first. */
    if (vi_trace_listener_wanted(v))
        vi_trace_listener_map(v, vi_trace_listener_index(v, ev->endpoint), ev, f.err);
    g_array_append_val(v->failures, f);
    v->stats.listener_failures++;
}

static void set_failed_status(viommu_request *req, int err)
{
    if (req->status == VIRTIO_IOMMU_S_OK)
        req->status = vi_errno_status(err);
}

/*
 * True when @endpoint's listener failed this very mapping (created by
 * request @seq, or replayed to it by a later ATTACH): it holds nothing
 * to unmap.
 */
static bool listener_failed(const viommu_request *reqs, size_t n, const vi_failure *all,
                            size_t nall, uint32_t endpoint, uint32_t domain, u64_range r,
                            uint32_t seq)
{
    for (size_t i = 0; i < nall; i++) {
        const mapping_event *e = &all[i].ev;
        if (e->endpoint != endpoint || e->domain != domain || e->iova != r.first ||
            e->iova_last != r.last)
            continue;
        if (e->seq == seq ||
            (e->seq > seq && e->seq < n && reqs[e->seq].type == VIRTIO_IOMMU_T_ATTACH))
            return true;
    }
    return false;
}

/*
 * A map failed at batch_end: take it back from the guest's view. A MAP
 * request's mapping is removed from its domain and unmapped from the
 * other endpoints; a replay to an endpoint joining a domain undoes that
 * ATTACH. Either way the request answers NOMEM (or DEVERR).
 */
static void rollback_failure(viommu *v, viommu_request *reqs, size_t n, const vi_failure *f,
                             const vi_failure *all, size_t nall)
{
    const mapping_event *ev = &f->ev;
    if (ev->seq >= n)
        return;
    viommu_request *req = &reqs[ev->seq];
    vi_domain *d = vi_domain_lookup(v, ev->domain);

    if (req->type == VIRTIO_IOMMU_T_ATTACH) {
        vi_endpoint *ep = vi_endpoint_lookup(v, ev->endpoint);
        if (ep && d && ep->domain == d) {
            /* Skip every range this endpoint's listener failed: it holds none. */
            vi_endpoint_detach(v, ep, ev->seq, all, nall);
        }
        set_failed_status(req, f->err);
        return;
    }

    if (d && d->map) {
        u64_range r;
        vi_map_val *val = interval_map_find(d->map, ev->iova, &r);
        if (val && r.first == ev->iova && r.last == ev->iova_last && val->seq == ev->seq &&
            val->phys == ev->gpa) {
            mapping_event un = *ev;
            interval_map_remove(d->map, r.first, NULL);
            v->stats.mappings--;
            for (vi_endpoint *ep = d->endpoints; ep; ep = ep->dom_next) {
                if (listener_failed(reqs, n, all, nall, ep->id, d->id, r, ev->seq))
                    continue;
                un.endpoint = ep->id;
                vi_emit_unmap(v, ep, &un);
            }
        }
    }
    set_failed_status(req, f->err);
}

/* ---- decoding ------------------------------------------------------- */

/* Reads the body of a request into @buf (the wire struct) and says
 * whether the readable buffers hold all of it. */
static bool read_body(const viommu_request *req, void *buf, size_t len)
{
    return vi_iov_read(req->readable, req->readable_count, 0, buf, len) == len;
}

static uint8_t do_attach(viommu *v, const viommu_request *req, uint32_t seq, vi_req_trace *tf)
{
    struct virtio_iommu_req_attach r;
    const size_t len = offsetof(struct virtio_iommu_req_attach, tail);
    if (!read_body(req, &r, len))
        return VIRTIO_IOMMU_S_INVAL;
    if (tf)
        VI_REQ_DECODED(tf, le32toh(r.domain), le32toh(r.endpoint), 0, 0, 0, le32toh(r.flags));
    for (size_t i = 0; i < sizeof(r.reserved); i++)
        if (r.reserved[i])
            return VIRTIO_IOMMU_S_INVAL;
    return vi_attach(v, le32toh(r.domain), le32toh(r.endpoint), le32toh(r.flags), seq);
}

static uint8_t do_detach(viommu *v, const viommu_request *req, uint32_t seq, vi_req_trace *tf)
{
    struct virtio_iommu_req_detach r;
    const size_t len = offsetof(struct virtio_iommu_req_detach, tail);
    if (!read_body(req, &r, len))
        return VIRTIO_IOMMU_S_INVAL;
    if (tf)
        VI_REQ_DECODED(tf, le32toh(r.domain), le32toh(r.endpoint), 0, 0, 0, 0);
    /* reserved is ignored, as the spec requires. */
    return vi_detach(v, le32toh(r.domain), le32toh(r.endpoint), seq);
}

static uint8_t do_map(viommu *v, const viommu_request *req, uint32_t seq, vi_req_trace *tf)
{
    struct virtio_iommu_req_map r;
    const size_t len = offsetof(struct virtio_iommu_req_map, tail);
    if (!vi_negotiated(v, VIRTIO_IOMMU_F_MAP_UNMAP))
        return VIRTIO_IOMMU_S_UNSUPP;
    if (!read_body(req, &r, len))
        return VIRTIO_IOMMU_S_INVAL;
    if (tf)
        VI_REQ_DECODED(tf, le32toh(r.domain), 0, le64toh(r.virt_start), le64toh(r.virt_end),
                       le64toh(r.phys_start), le32toh(r.flags));
    return vi_map(v, le32toh(r.domain), le64toh(r.virt_start), le64toh(r.virt_end),
                  le64toh(r.phys_start), le32toh(r.flags), seq);
}

static uint8_t do_unmap(viommu *v, const viommu_request *req, uint32_t seq, vi_req_trace *tf)
{
    struct virtio_iommu_req_unmap r;
    const size_t len = offsetof(struct virtio_iommu_req_unmap, tail);
    if (!vi_negotiated(v, VIRTIO_IOMMU_F_MAP_UNMAP))
        return VIRTIO_IOMMU_S_UNSUPP;
    if (!read_body(req, &r, len))
        return VIRTIO_IOMMU_S_INVAL;
    if (tf)
        VI_REQ_DECODED(tf, le32toh(r.domain), 0, le64toh(r.virt_start), le64toh(r.virt_end), 0, 0);
    /* The spec lets the device refuse a non-zero reserved field; refusing
     * keeps a malformed request from changing state. */
    for (size_t i = 0; i < sizeof(r.reserved); i++)
        if (r.reserved[i])
            return VIRTIO_IOMMU_S_INVAL;
    return vi_unmap(v, le32toh(r.domain), le64toh(r.virt_start), le64toh(r.virt_end), seq);
}

/* PROBE: properties written now (they do not depend on the batch's
 * outcome); returns the status and sets the tail's offset. */
static uint8_t do_probe(viommu *v, viommu_request *req, size_t wlen, size_t *tail_at,
                        vi_req_trace *tf)
{
    struct virtio_iommu_req_probe r;
    const uint32_t psize = v->cfg.probe_size;
    if (wlen < (size_t)psize + sizeof(struct virtio_iommu_req_tail)) {
        /* Too small for the properties: no property, tail at the end. */
        *tail_at = wlen - sizeof(struct virtio_iommu_req_tail);
        return VIRTIO_IOMMU_S_INVAL;
    }
    *tail_at = psize;
    if (!read_body(req, &r, sizeof(r))) {
        vi_iov_fill(req->writable, req->writable_count, 0, 0, psize);
        return VIRTIO_IOMMU_S_INVAL;
    }
    if (tf)
        VI_REQ_DECODED(tf, 0, le32toh(r.endpoint), 0, 0, 0, 0);
    /* reserved is ignored, as the spec requires. */
    const vi_endpoint *ep = vi_endpoint_lookup(v, le32toh(r.endpoint));
    if (!ep) {
        vi_iov_fill(req->writable, req->writable_count, 0, 0, psize);
        return VIRTIO_IOMMU_S_NOENT;
    }
    size_t off = 0;
    for (uint32_t i = 0; i < ep->nresv; i++) {
        struct virtio_iommu_probe_resv_mem p;
        memset(&p, 0, sizeof(p));
        p.head.type = htole16(VIRTIO_IOMMU_PROBE_T_RESV_MEM);
        p.head.length = htole16(sizeof(p) - sizeof(p.head));
        p.subtype = ep->resv[i].subtype;
        p.start = htole64(ep->resv[i].start);
        p.end = htole64(ep->resv[i].end);
        /* viommu_endpoint_add_resv keeps every property within probe_size. */
        vi_iov_write(req->writable, req->writable_count, off, &p, sizeof(p));
        off += sizeof(p);
        TRACE(probe_property, ep->id, ep->resv[i].subtype, ep->resv[i].start, ep->resv[i].end);
    }
    /* The rest is zero: an empty property (type 0) ends the list. */
    vi_iov_fill(req->writable, req->writable_count, off, 0, psize - off);
    return VIRTIO_IOMMU_S_OK;
}

/* Runs one request; leaves the tail offset in used_len (tail written at
 * used_len - 4 when the batch ends) or status NONE. @tf, when not NULL,
 * receives the fields its request_done event reports. */
static void run_request(viommu *v, viommu_request *req, uint32_t seq, vi_req_trace *tf)
{
    struct virtio_iommu_req_head head;
    size_t wlen = vi_iov_size(req->writable, req->writable_count);
    size_t tail_at = 0;
    uint8_t status;

    req->used_len = 0;
    req->status = VIOMMU_STATUS_NONE;
    req->type = 0;
    if (wlen < sizeof(struct virtio_iommu_req_tail))
        return; /* nowhere to put a status: return the buffers unwritten */
    if (vi_iov_read(req->readable, req->readable_count, 0, &head, sizeof(head)) != sizeof(head)) {
        status = VIRTIO_IOMMU_S_DEVERR;
    } else {
        req->type = head.type;
        switch (head.type) {
        case VIRTIO_IOMMU_T_ATTACH:
            status = do_attach(v, req, seq, tf);
            break;
        case VIRTIO_IOMMU_T_DETACH:
            status = do_detach(v, req, seq, tf);
            break;
        case VIRTIO_IOMMU_T_MAP:
            status = do_map(v, req, seq, tf);
            break;
        case VIRTIO_IOMMU_T_UNMAP:
            status = do_unmap(v, req, seq, tf);
            break;
        case VIRTIO_IOMMU_T_PROBE:
            if (!vi_negotiated(v, VIRTIO_IOMMU_F_PROBE))
                return; /* as an unknown type: used length 0 */
            status = do_probe(v, req, wlen, &tail_at, tf);
            break;
        default:
            return; /* unknown type: used length 0, buffers untouched */
        }
    }
    req->status = status;
    req->used_len = tail_at + sizeof(struct virtio_iommu_req_tail);
}

/* Writes the status of @req into its tail, when it has one (else its
 * buffers go back unwritten). */
static inline void write_status(viommu_request *req)
{
    if (req->status == VIOMMU_STATUS_NONE)
        return;
    struct virtio_iommu_req_tail tail = {(uint8_t)req->status, {0, 0, 0}};
    vi_iov_write(req->writable, req->writable_count, req->used_len - sizeof(tail), &tail,
                 sizeof(tail));
}

int viommu_process_batch(viommu *v, viommu_request *reqs, size_t n)
{
    if (!v || (!reqs && n))
        return -EINVAL;
    vi_batch_start(v);
    uint64_t trace_t0 = 0;
    vi_req_trace *tf = NULL;
    if (vi_trace_batch_wanted())
        trace_t0 = vi_trace_batch_begin(v, reqs, n, &tf);
    g_array_set_size(v->failures, 0);
    for (size_t i = 0; i < n; i++)
        run_request(v, &reqs[i], (uint32_t)(i > UINT32_MAX ? UINT32_MAX : i), tf ? &tf[i] : NULL);
    vi_batch_finish(v, collect_failure, v);

    if (v->failures->len) {
        /* Rollback unmaps go to the listeners in a batch of their own. */
        const vi_failure *all = (const vi_failure *)(void *)v->failures->data;
        size_t nall = v->failures->len;
        vi_batch_start(v);
        for (size_t i = 0; i < nall; i++)
            rollback_failure(v, reqs, n, &all[i], all, nall);
        vi_batch_finish(v, NULL, NULL);
        g_array_set_size(v->failures, 0);
    }

    /* The requests complete as their statuses are written, all at once:
     * one clock reading is the time of every request_done. */
    for (size_t i = 0; i < n; i++)
        write_status(&reqs[i]);
    if (trace_t0) {
        vi_trace_batch_done(v, reqs, tf, n, trace_t0, trace_now_ns());
        if (v->trace_ring)
            trace_ring_publish(v->trace_ring);
        v->trace_ts = 0;
        v->trace_ring = NULL;
    }
    v->stats.requests += n;
    v->stats.batches++;
    return 0;
}

int viommu_handle_request(viommu *v, viommu_request *req)
{
    return viommu_process_batch(v, req, 1);
}

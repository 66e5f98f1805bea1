/* SPDX-License-Identifier: MIT */
/*
 * translate.c - where an endpoint's DMA lands, and the fault reports a
 * refused access sends to the driver on the event queue.
 */
#include <string.h>

#include "viommu_internal.h"

void viommu_set_event_handler(viommu *v, viommu_event_complete_fn fn, void *opaque)
{
    v->event_complete = fn;
    v->event_opaque = opaque;
}

int viommu_event_post(viommu *v, const struct iovec *iov, size_t count, uint64_t cookie)
{
    if (!iov || count == 0 || count > VIOMMU_EVENT_IOV_MAX)
        return -EINVAL;
    if (v->event_vq)
        return -EBUSY;
    if (v->events_count >= v->cfg.max_event_buffers)
        return -ENOSPC;
    uint32_t slot = (v->events_head + v->events_count) % v->cfg.max_event_buffers;
    vi_event_buf *b = &v->events[slot];
    memcpy(b->iov, iov, count * sizeof(*iov));
    b->count = count;
    b->cookie = cookie;
    v->events_count++;
    return 0;
}

void vi_events_drop(viommu *v)
{
    v->events_head = 0;
    v->events_count = 0;
}

int viommu_vq_set_event_queue(viommu *v, viommu_vq *vq, void (*notify)(void *opaque), void *opaque)
{
    v->event_vq = vq;
    v->event_vq_notify = notify;
    v->event_vq_opaque = opaque;
    if (vq)
        vi_events_drop(v);
    return 0;
}

/* Delivers one fault report; returns true when a buffer took it. */
static bool report_fault(viommu *v, const struct virtio_iommu_fault *f)
{
    if (v->event_vq) {
        for (;;) {
            bool notify = false;
            int rc = vi_vq_push_event(v->event_vq, f, sizeof(*f), &notify);
            if (notify && v->event_vq_notify)
                v->event_vq_notify(v->event_vq_opaque);
            if (rc != -EAGAIN)
                return rc == 0;
        }
    }
    while (v->events_count) {
        vi_event_buf *b = &v->events[v->events_head];
        v->events_head = (v->events_head + 1) % v->cfg.max_event_buffers;
        v->events_count--;
        size_t used = 0;
        /* A report never spans buffers: one too small is returned empty
         * and the next one is tried. */
        if (vi_iov_size(b->iov, b->count) >= sizeof(*f))
            used = vi_iov_write(b->iov, b->count, 0, f, sizeof(*f));
        if (v->event_complete)
            v->event_complete(v->event_opaque, b->cookie, used);
        if (used)
            return true;
    }
    return false;
}

static int fault(viommu *v, uint32_t endpoint, uint64_t iova, uint32_t access, uint8_t reason)
{
    struct virtio_iommu_fault f;
    uint32_t flags = VIRTIO_IOMMU_FAULT_F_ADDRESS;
    if (access & VIOMMU_ACCESS_READ)
        flags |= VIRTIO_IOMMU_FAULT_F_READ;
    if (access & VIOMMU_ACCESS_WRITE)
        flags |= VIRTIO_IOMMU_FAULT_F_WRITE;
    memset(&f, 0, sizeof(f));
    f.reason = reason;
    f.flags = htole32(flags);
    f.endpoint = htole32(endpoint);
    f.address = htole64(iova);
    v->stats.faults++;
    if (report_fault(v, &f)) {
        v->stats.faults_reported++;
        TRACE(fault, endpoint, reason, flags, iova);
    } else
        v->stats.faults_dropped++;
    return -EFAULT;
}

static bool unattached_bypass(const viommu *v)
{
    /* config.bypass applies when F_BYPASS_CONFIG is offered, even if the
     * driver did not accept it; otherwise the legacy F_BYPASS decides. */
    if (vi_offered(v, VIRTIO_IOMMU_F_BYPASS_CONFIG))
        return v->bypass == 1;
    return vi_negotiated(v, VIRTIO_IOMMU_F_BYPASS);
}

int viommu_translate(viommu *v, uint32_t endpoint, uint64_t iova, uint32_t access,
                     viommu_translation *out)
{
    const uint32_t rw = VIOMMU_ACCESS_READ | VIOMMU_ACCESS_WRITE;
    if (access == 0 || (access & ~rw) || !out)
        return -EINVAL;
    const vi_endpoint *ep = vi_endpoint_lookup(v, endpoint);
    if (!ep)
        return -ENOENT;
    const vi_domain *d = ep->domain;
    if ((!d && unattached_bypass(v)) || (d && d->bypass)) {
        *out = (viommu_translation){iova, UINT64_MAX, rw, true};
        return 0;
    }
    if (!d)
        return fault(v, endpoint, iova, access, VIRTIO_IOMMU_FAULT_R_DOMAIN);
    u64_range r;
    const vi_map_val *val = interval_map_find(d->map, iova, &r);
    if (!val)
        return fault(v, endpoint, iova, access, VIRTIO_IOMMU_FAULT_R_MAPPING);
    uint32_t prot = val->flags & rw;
    /* Write-only mappings stay unreadable: the model has no architecture
     * that forces READ with WRITE. */
    if ((access & prot) != access)
        return fault(v, endpoint, iova, access, VIRTIO_IOMMU_FAULT_R_MAPPING);
    *out = (viommu_translation){val->phys + (iova - r.first), r.last, prot, false};
    return 0;
}

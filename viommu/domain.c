/* SPDX-License-Identifier: MIT */
/*
 * domain.c - domains, endpoints attached to them and their mappings:
 * the semantics of ATTACH, DETACH, MAP and UNMAP on decoded values.
 * Every check runs before the first change, so a refused request leaves
 * the state exactly as it was.
 */
#include "viommu_internal.h"

static mapping_event make_event(const vi_endpoint *ep, const vi_domain *d, u64_range r,
                                const vi_map_val *val, uint32_t seq)
{
    mapping_event ev = {
        .endpoint = ep->id,
        .domain = d->id,
        .iova = r.first,
        .iova_last = r.last,
        .gpa = val->phys,
        .prot = val->flags & (MAPPING_PROT_READ | MAPPING_PROT_WRITE | MAPPING_PROT_MMIO),
        .seq = seq,
    };
    return ev;
}

void vi_domain_destroy(viommu *v, vi_domain *d)
{
    TRACE(domain_destroyed, d->id, d->map ? interval_map_count(d->map) : 0);
    if (d->map)
        v->stats.mappings -= interval_map_count(d->map);
    if (v->last_domain == d)
        v->last_domain = NULL;
    v->stats.domains--;
    g_hash_table_remove(v->domains, GUINT_TO_POINTER(d->id));
}

/*
 * True when @ep's listener failed this very mapping, so it holds nothing
 * to unmap. The whole mapping must match, not just its start: a mapping
 * the listener failed may have been unmapped and another one made at the
 * same IOVA later in the batch, which the listener does hold.
 */
static bool skipped(const vi_failure *skip, size_t nskip, const vi_endpoint *ep, const vi_domain *d,
                    u64_range r, const vi_map_val *val)
{
    for (size_t i = 0; i < nskip; i++) {
        const mapping_event *e = &skip[i].ev;
        if (e->endpoint == ep->id && e->domain == d->id && e->iova == r.first &&
            e->iova_last == r.last && e->gpa == val->phys)
            return true;
    }
    return false;
}

void vi_endpoint_unmap_all(viommu *v, vi_endpoint *ep, uint32_t seq, const vi_failure *skip,
                           size_t nskip)
{
    vi_domain *d = ep->domain;
    if (d && d->map && ep->listener.ops) {
        interval_map_iter it;
        u64_range r;
        const vi_map_val *val;
        interval_map_iter_init(&it, d->map, 0, UINT64_MAX);
        while ((val = interval_map_iter_next(&it, &r))) {
            if (skipped(skip, nskip, ep, d, r, val))
                continue;
            mapping_event ev = make_event(ep, d, r, val, seq);
            vi_emit_unmap(v, ep, &ev);
        }
    }
}

void vi_endpoint_detach(viommu *v, vi_endpoint *ep, uint32_t seq, const vi_failure *skip,
                        size_t nskip)
{
    vi_domain *d = ep->domain;
    if (!d)
        return;
    vi_endpoint_unmap_all(v, ep, seq, skip, nskip);
    vi_endpoint **pp = &d->endpoints;
    while (*pp != ep)
        pp = &(*pp)->dom_next;
    *pp = ep->dom_next;
    ep->dom_next = NULL;
    ep->domain = NULL;
    TRACE(endpoint_detached, ep->id, d->id);
    if (--d->nendpoints == 0)
        vi_domain_destroy(v, d);
}

vi_domain *vi_domain_create(viommu *v, uint32_t id, bool bypass)
{
    vi_domain *d = g_try_new0(vi_domain, 1);
    if (!d)
        return NULL;
    d->id = id;
    d->bypass = bypass;
    if (!bypass) {
        d->map = interval_map_new(sizeof(vi_map_val));
        if (!d->map) {
            g_free(d);
            return NULL;
        }
    }
    g_hash_table_insert(v->domains, GUINT_TO_POINTER(id), d);
    v->stats.domains++;
    return d;
}

void vi_domain_link(vi_domain *d, vi_endpoint *ep)
{
    ep->domain = d;
    ep->dom_next = d->endpoints;
    d->endpoints = ep;
    d->nendpoints++;
}

/* True when a mapping of @d overlaps a reserved region of @ep. */
static bool resv_conflicts(const vi_endpoint *ep, const vi_domain *d)
{
    if (!d->map)
        return false;
    for (uint32_t i = 0; i < ep->nresv; i++)
        if (interval_map_find_first(d->map, ep->resv[i].start, ep->resv[i].end, NULL))
            return true;
    return false;
}

int vi_replay(viommu *v, vi_endpoint *ep, vi_domain *d, uint32_t seq)
{
    if (!d->map || !ep->listener.ops || !ep->listener.ops->map)
        return 0;
    interval_map_iter it;
    u64_range r;
    const vi_map_val *val;
    interval_map_iter_init(&it, d->map, 0, UINT64_MAX);
    while ((val = interval_map_iter_next(&it, &r))) {
        mapping_event ev = make_event(ep, d, r, val, seq);
        int rc = vi_emit_map(v, ep, &ev);
        if (rc == 0)
            continue;
        uint64_t failed_at = r.first;
        interval_map_iter_init(&it, d->map, 0, UINT64_MAX);
        while ((val = interval_map_iter_next(&it, &r)) && r.first < failed_at) {
            ev = make_event(ep, d, r, val, seq);
            vi_emit_unmap(v, ep, &ev);
        }
        return rc;
    }
    return 0;
}

uint8_t vi_attach(viommu *v, uint32_t domain, uint32_t endpoint, uint32_t flags, uint32_t seq)
{
    uint32_t known =
        vi_negotiated(v, VIRTIO_IOMMU_F_BYPASS_CONFIG) ? VIRTIO_IOMMU_ATTACH_F_BYPASS : 0;
    if (flags & ~known)
        return VIRTIO_IOMMU_S_INVAL;
    bool bypass = flags & VIRTIO_IOMMU_ATTACH_F_BYPASS;
    vi_endpoint *ep = vi_endpoint_lookup(v, endpoint);
    if (!ep)
        return VIRTIO_IOMMU_S_NOENT;
    if (vi_offered(v, VIRTIO_IOMMU_F_DOMAIN_RANGE) &&
        (domain < v->cfg.domain_first || domain > v->cfg.domain_last))
        return VIRTIO_IOMMU_S_RANGE;
    vi_domain *d = vi_domain_lookup(v, domain);
    if (d && d->bypass != bypass)
        return VIRTIO_IOMMU_S_INVAL;
    if (d && ep->domain == d)
        return VIRTIO_IOMMU_S_OK; /* already there: nothing changes */
    if (d && resv_conflicts(ep, d))
        return VIRTIO_IOMMU_S_UNSUPP;
    if (!d) {
        /* Moving frees the old domain when ep was its last endpoint. */
        uint64_t live = v->stats.domains;
        if (ep->domain && ep->domain->nendpoints == 1)
            live--;
        if (live >= v->cfg.max_domains)
            return VIRTIO_IOMMU_S_NOMEM;
    }

    /* As if the driver had sent a DETACH first (the spec's wording). */
    if (ep->domain)
        vi_endpoint_detach(v, ep, seq, NULL, 0);

    if (!d) {
        d = vi_domain_create(v, domain, bypass);
        if (!d)
            return VIRTIO_IOMMU_S_NOMEM;
        TRACE(domain_created, domain, flags);
    } else {
        int rc = vi_replay(v, ep, d, seq);
        if (rc < 0)
            return vi_errno_status(rc);
    }
    vi_domain_link(d, ep);
    TRACE(endpoint_attached, ep->id, d->id);
    return VIRTIO_IOMMU_S_OK;
}

uint8_t vi_detach(viommu *v, uint32_t domain, uint32_t endpoint, uint32_t seq)
{
    vi_endpoint *ep = vi_endpoint_lookup(v, endpoint);
    if (!ep)
        return VIRTIO_IOMMU_S_NOENT;
    if (!ep->domain || ep->domain->id != domain)
        return VIRTIO_IOMMU_S_INVAL;
    vi_endpoint_detach(v, ep, seq, NULL, 0);
    return VIRTIO_IOMMU_S_OK;
}

uint8_t vi_map_insert(viommu *v, uint32_t domain, uint64_t virt_start, uint64_t virt_end,
                      uint64_t phys_start, uint32_t flags, uint32_t seq, vi_domain **out)
{
    uint32_t known = VIRTIO_IOMMU_MAP_F_READ | VIRTIO_IOMMU_MAP_F_WRITE;
    if (vi_negotiated(v, VIRTIO_IOMMU_F_MMIO))
        known |= VIRTIO_IOMMU_MAP_F_MMIO;
    if (flags & ~known)
        return VIRTIO_IOMMU_S_INVAL;
    if (virt_end < virt_start)
        return VIRTIO_IOMMU_S_INVAL;
    uint64_t gm = v->granule_mask;
    /* virt_end + 1 wraps to 0 for the last page, which is aligned. */
    if ((virt_start & gm) || (phys_start & gm) || ((virt_end + 1) & gm))
        return VIRTIO_IOMMU_S_RANGE;
    if (vi_offered(v, VIRTIO_IOMMU_F_INPUT_RANGE) &&
        !u64_range_covers(v->cfg.input_range, (u64_range){virt_start, virt_end}))
        return VIRTIO_IOMMU_S_RANGE;
    if (u64_add_overflows(phys_start, virt_end - virt_start, NULL))
        return VIRTIO_IOMMU_S_RANGE;
    vi_domain *d = vi_domain_lookup(v, domain);
    if (!d)
        return VIRTIO_IOMMU_S_NOENT;
    if (d->bypass)
        return VIRTIO_IOMMU_S_INVAL;
    for (const vi_endpoint *ep = d->endpoints; ep; ep = ep->dom_next)
        for (uint32_t i = 0; i < ep->nresv; i++)
            if (ep->resv[i].start <= virt_end && virt_start <= ep->resv[i].end)
                return VIRTIO_IOMMU_S_RANGE;
    if (interval_map_count(d->map) >= v->cfg.max_mappings_per_domain)
        return VIRTIO_IOMMU_S_NOMEM;

    vi_map_val val = {phys_start, flags, seq};
    int rc = interval_map_insert(d->map, virt_start, virt_end, &val);
    if (rc == -EEXIST)
        return VIRTIO_IOMMU_S_INVAL;
    if (rc < 0)
        return VIRTIO_IOMMU_S_NOMEM;
    v->stats.mappings++;
    *out = d;
    return VIRTIO_IOMMU_S_OK;
}

uint8_t vi_map(viommu *v, uint32_t domain, uint64_t virt_start, uint64_t virt_end,
               uint64_t phys_start, uint32_t flags, uint32_t seq)
{
    vi_domain *d;
    uint8_t status = vi_map_insert(v, domain, virt_start, virt_end, phys_start, flags, seq, &d);
    if (status != VIRTIO_IOMMU_S_OK)
        return status;
    vi_map_val val = {phys_start, flags, seq};
    u64_range r = {virt_start, virt_end};
    for (vi_endpoint *ep = d->endpoints; ep; ep = ep->dom_next) {
        mapping_event ev = make_event(ep, d, r, &val, seq);
        int rc = vi_emit_map(v, ep, &ev);
        if (rc == 0)
            continue;
        /* Refused: the endpoints before this one hold it, take it back. */
        for (vi_endpoint *e = d->endpoints; e != ep; e = e->dom_next) {
            mapping_event un = make_event(e, d, r, &val, seq);
            vi_emit_unmap(v, e, &un);
        }
        interval_map_remove(d->map, virt_start, NULL);
        v->stats.mappings--;
        return vi_errno_status(rc);
    }
    return VIRTIO_IOMMU_S_OK;
}

typedef struct unmap_ctx {
    viommu *v;
    vi_domain *d;
    uint32_t seq;
} unmap_ctx;

static void unmapped_one(void *opaque, const u64_range *r, const void *value)
{
    unmap_ctx *c = opaque;
    vi_map_val val;
    memcpy(&val, value, sizeof(val));
    c->v->stats.mappings--;
    for (vi_endpoint *ep = c->d->endpoints; ep; ep = ep->dom_next) {
        mapping_event ev = make_event(ep, c->d, *r, &val, c->seq);
        vi_emit_unmap(c->v, ep, &ev);
    }
}

uint8_t vi_unmap(viommu *v, uint32_t domain, uint64_t virt_start, uint64_t virt_end, uint32_t seq)
{
    if (virt_end < virt_start)
        return VIRTIO_IOMMU_S_INVAL;
    vi_domain *d = vi_domain_lookup(v, domain);
    if (!d)
        return VIRTIO_IOMMU_S_NOENT;
    if (d->bypass)
        return VIRTIO_IOMMU_S_INVAL;

    /* Atomic: when the first or last affected mapping would be split,
     * nothing is removed. */
    unmap_ctx c = {v, d, seq};
    if (interval_map_remove_within(d->map, virt_start, virt_end, unmapped_one, &c) == -ERANGE)
        return VIRTIO_IOMMU_S_RANGE;
    return VIRTIO_IOMMU_S_OK;
}

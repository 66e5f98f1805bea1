/* SPDX-License-Identifier: MIT */
/*
 * device.c - configuration, lifecycle, features, configuration space,
 * reset, endpoints and inspection of a virtio-iommu device.
 */
#include <gio/gio.h>
#include <string.h>

#include "viommu_internal.h"

void viommu_config_init(viommu_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->features = VIOMMU_FEATURES_DEFAULT;
    cfg->page_size_mask = UINT64_C(0xfffffffffffff000);
    cfg->input_range = (u64_range){0, UINT64_MAX};
    cfg->domain_first = 0;
    cfg->domain_last = UINT32_MAX;
    cfg->probe_size = 0x200;
    cfg->bypass = true;
    cfg->max_endpoints = 4096;
    cfg->max_domains = 4096;
    cfg->max_mappings_per_domain = UINT64_C(1) << 22;
    cfg->max_event_buffers = 64;
}

static bool config_valid(const viommu_config *cfg, GError **error)
{
    const char *why = NULL;
    if (cfg->page_size_mask == 0)
        why = "page_size_mask must have at least one bit set";
    else if (!u64_range_valid(cfg->input_range))
        why = "input_range start is above its end";
    else if (cfg->domain_first > cfg->domain_last)
        why = "domain_range start is above its end";
    else if (cfg->features & ~VIOMMU_FEATURES_KNOWN)
        why = "unknown feature bits offered";
    else if ((cfg->features & VIOMMU_FEATURE(VIRTIO_IOMMU_F_BYPASS)) &&
             (cfg->features & VIOMMU_FEATURE(VIRTIO_IOMMU_F_BYPASS_CONFIG)))
        why = "F_BYPASS and F_BYPASS_CONFIG must not be offered together";
    else if (!(cfg->features & VIOMMU_FEATURE(VIRTIO_IOMMU_F_MAP_UNMAP)))
        why = "F_MAP_UNMAP must be offered (the only mode of operation)";
    else if (cfg->probe_size < 4 || cfg->probe_size > (1u << 20))
        why = "probe_size must be between 4 and 1 MiB";
    else if (cfg->max_endpoints == 0 || cfg->max_domains == 0 ||
             cfg->max_mappings_per_domain == 0 || cfg->max_event_buffers == 0)
        why = "limits must be at least 1";
    if (!why)
        return true;
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "invalid viommu configuration: %s",
                why);
    return false;
}

static void endpoint_free(gpointer p)
{
    vi_endpoint *ep = p;
    g_free(ep->resv);
    g_free(ep);
}

static void domain_free(gpointer p)
{
    vi_domain *d = p;
    interval_map_free(d->map);
    g_free(d);
}

viommu *viommu_new(const viommu_config *cfg, GError **error)
{
    g_return_val_if_fail(cfg != NULL, NULL);
    if (!config_valid(cfg, error))
        return NULL;
    viommu *v = g_new0(viommu, 1);
    v->cfg = *cfg;
    v->bypass = cfg->bypass ? 1 : 0;
    v->granule_mask = (cfg->page_size_mask & -cfg->page_size_mask) - 1;
    v->endpoints = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, endpoint_free);
    v->domains = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, domain_free);
    v->failures = g_array_new(FALSE, FALSE, sizeof(vi_failure));
    v->trace_reqs = g_array_new(FALSE, FALSE, sizeof(vi_req_trace));
    v->trace_listeners = true;
    v->events = g_new0(vi_event_buf, cfg->max_event_buffers);
    return v;
}

void viommu_free(viommu *v)
{
    if (!v)
        return;
    g_hash_table_destroy(v->domains);
    g_hash_table_destroy(v->endpoints);
    g_array_free(v->failures, TRUE);
    g_array_free(v->trace_reqs, TRUE);
    g_free(v->touched);
    g_free(v->events);
    g_free(v);
}

void viommu_get_config(const viommu *v, viommu_config *cfg)
{
    *cfg = v->cfg;
}

uint64_t viommu_device_features(const viommu *v)
{
    return v->cfg.features;
}

int viommu_set_driver_features(viommu *v, uint64_t features)
{
    if (features & ~v->cfg.features)
        return -EINVAL;
    v->driver_features = features;
    return 0;
}

uint64_t viommu_driver_features(const viommu *v)
{
    return v->driver_features;
}

static void config_encode(const viommu *v, struct virtio_iommu_config *c)
{
    memset(c, 0, sizeof(*c));
    c->page_size_mask = htole64(v->cfg.page_size_mask);
    c->input_range.start = htole64(v->cfg.input_range.first);
    c->input_range.end = htole64(v->cfg.input_range.last);
    c->domain_range.start = htole32(v->cfg.domain_first);
    c->domain_range.end = htole32(v->cfg.domain_last);
    c->probe_size = htole32(v->cfg.probe_size);
    /* Only meaningful with F_BYPASS_CONFIG; otherwise the field is absent. */
    c->bypass = vi_offered(v, VIRTIO_IOMMU_F_BYPASS_CONFIG) ? v->bypass : 0;
}

int viommu_config_read(const viommu *v, uint32_t offset, void *buf, size_t len)
{
    struct virtio_iommu_config c;
    if (offset > sizeof(c) || len > sizeof(c) - offset || (!buf && len))
        return -EINVAL;
    config_encode(v, &c);
    if (len)
        memcpy(buf, (const uint8_t *)&c + offset, len);
    return 0;
}

int viommu_config_write(viommu *v, uint32_t offset, const void *buf, size_t len)
{
    const size_t at = offsetof(struct virtio_iommu_config, bypass);
    if (offset > sizeof(struct virtio_iommu_config) ||
        len > sizeof(struct virtio_iommu_config) - offset || (!buf && len))
        return -EINVAL;
    if (len == 0)
        return 0;
    if (offset != at || len != 1 || !vi_negotiated(v, VIRTIO_IOMMU_F_BYPASS_CONFIG))
        return -EPERM;
    /* The driver should ignore bits 1-7 and the device must only ever
     * present 0 or 1: keep bit 0. */
    v->bypass = *(const uint8_t *)buf & 1;
    return 0;
}

void viommu_reset(viommu *v)
{
    GHashTableIter it;
    gpointer val;
    vi_batch_start(v);
    g_hash_table_iter_init(&it, v->endpoints);
    while (g_hash_table_iter_next(&it, NULL, &val)) {
        vi_endpoint *ep = val;
        if (ep->domain)
            vi_endpoint_detach(v, ep, 0, NULL, 0);
    }
    vi_batch_finish(v, NULL, NULL);
    g_hash_table_remove_all(v->domains);
    v->last_domain = NULL;
    v->stats.domains = 0;
    v->stats.mappings = 0;
    v->driver_features = 0;
    vi_events_drop(v);
}

void viommu_system_reset(viommu *v)
{
    viommu_reset(v);
    v->bypass = v->cfg.bypass ? 1 : 0;
}

int viommu_endpoint_add(viommu *v, uint32_t endpoint)
{
    if (vi_endpoint_lookup(v, endpoint))
        return -EEXIST;
    if (g_hash_table_size(v->endpoints) >= v->cfg.max_endpoints)
        return -ENOSPC;
    /* Room for every endpoint's batch_begin, so batches never allocate. */
    if (v->touched_cap < g_hash_table_size(v->endpoints) + 1u) {
        size_t cap = v->touched_cap ? v->touched_cap * 2 : 16;
        vi_endpoint **t = g_try_renew(vi_endpoint *, v->touched, cap);
        if (!t)
            return -ENOMEM;
        v->touched = t;
        v->touched_cap = cap;
    }
    vi_endpoint *ep = g_try_new0(vi_endpoint, 1);
    if (!ep)
        return -ENOMEM;
    ep->id = endpoint;
    ep->trace_index = (uint32_t)v->stats.endpoints;
    g_hash_table_insert(v->endpoints, GUINT_TO_POINTER(endpoint), ep);
    v->stats.endpoints++;
    return 0;
}

bool viommu_endpoint_exists(const viommu *v, uint32_t endpoint)
{
    return vi_endpoint_find(v, endpoint) != NULL;
}

int viommu_endpoint_add_resv(viommu *v, uint32_t endpoint, uint64_t start, uint64_t end,
                             uint8_t subtype)
{
    vi_endpoint *ep = vi_endpoint_lookup(v, endpoint);
    if (!ep)
        return -ENOENT;
    if (start > end ||
        (subtype != VIRTIO_IOMMU_RESV_MEM_T_RESERVED && subtype != VIRTIO_IOMMU_RESV_MEM_T_MSI))
        return -EINVAL;
    if (ep->domain)
        return -EBUSY;
    for (uint32_t i = 0; i < ep->nresv; i++) {
        const vi_resv *r = &ep->resv[i];
        if (u64_range_overlaps((u64_range){r->start, r->end}, (u64_range){start, end}))
            return -EINVAL;
        if (subtype == VIRTIO_IOMMU_RESV_MEM_T_MSI && r->subtype == VIRTIO_IOMMU_RESV_MEM_T_MSI)
            return -EINVAL;
    }
    if ((uint64_t)(ep->nresv + 1) * sizeof(struct virtio_iommu_probe_resv_mem) > v->cfg.probe_size)
        return -ENOSPC;
    vi_resv *n = g_try_renew(vi_resv, ep->resv, ep->nresv + 1);
    if (!n)
        return -ENOMEM;
    ep->resv = n;
    ep->resv[ep->nresv++] = (vi_resv){start, end, subtype};
    return 0;
}

int viommu_endpoint_set_listener(viommu *v, uint32_t endpoint, const mapping_listener *listener)
{
    vi_endpoint *ep = vi_endpoint_lookup(v, endpoint);
    if (!ep)
        return -ENOENT;
    if (ep->domain)
        return -EBUSY;
    if (listener && listener->ops)
        ep->listener = *listener;
    else
        ep->listener = (mapping_listener){NULL, NULL};
    return 0;
}

int viommu_endpoint_domain(const viommu *v, uint32_t endpoint, uint32_t *domain)
{
    const vi_endpoint *ep = vi_endpoint_find(v, endpoint);
    if (!ep)
        return -ENOENT;
    if (!ep->domain)
        return -ENODEV;
    if (domain)
        *domain = ep->domain->id;
    return 0;
}

const char *viommu_status_name(int status)
{
    static const char *const names[] = {"OK",    "IOERR", "UNSUPP", "DEVERR", "INVAL",
                                        "RANGE", "NOENT", "FAULT",  "NOMEM"};
    if (status == VIOMMU_STATUS_NONE)
        return "NONE";
    if (status < 0 || (size_t)status >= G_N_ELEMENTS(names))
        return NULL;
    return names[status];
}

const char *viommu_type_name(int type)
{
    static const char *const names[] = {NULL, "ATTACH", "DETACH", "MAP", "UNMAP", "PROBE"};
    if (type < 0 || (size_t)type >= G_N_ELEMENTS(names))
        return NULL;
    return names[type];
}

int viommu_domain_info(const viommu *v, uint32_t domain, bool *bypass, uint64_t *mappings,
                       uint32_t *endpoints)
{
    const vi_domain *d = g_hash_table_lookup(v->domains, GUINT_TO_POINTER(domain));
    if (!d)
        return -ENOENT;
    if (bypass)
        *bypass = d->bypass;
    if (mappings)
        *mappings = d->map ? interval_map_count(d->map) : 0;
    if (endpoints)
        *endpoints = d->nendpoints;
    return 0;
}

int viommu_domain_foreach_mapping(const viommu *v, uint32_t domain, uint64_t first, uint64_t last,
                                  int (*fn)(void *opaque, const viommu_mapping *m), void *opaque)
{
    const vi_domain *d = g_hash_table_lookup(v->domains, GUINT_TO_POINTER(domain));
    if (!d)
        return -ENOENT;
    if (!d->map || first > last)
        return 0;
    interval_map_iter it;
    u64_range r;
    const vi_map_val *val;
    interval_map_iter_init(&it, d->map, first, last);
    while ((val = interval_map_iter_next(&it, &r))) {
        viommu_mapping m = {r.first, r.last, val->phys, val->flags};
        int rc = fn(opaque, &m);
        if (rc)
            return rc;
    }
    return 0;
}

void viommu_get_stats(const viommu *v, viommu_stats *out)
{
    *out = v->stats;
}

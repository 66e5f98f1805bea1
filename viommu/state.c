/* SPDX-License-Identifier: MIT */
/*
 * state.c - the guest-visible state as bytes, for migration.
 *
 * Image layout, every integer little-endian:
 *   header  magic "VIOMMUS1", le64 features, u8 bypass, u8 reserved[3],
 *           le32 domain count
 *   domain  le32 id, le32 flags (bit 0: bypass), le32 endpoint count,
 *           le32 reserved, le64 mapping count,
 *           then le32 endpoint IDs, then mappings
 *   mapping le64 virt_start, le64 virt_end, le64 phys_start, le32 flags,
 *           le32 reserved
 */
#include <string.h>

#include "viommu_internal.h"

static const char state_magic[8] = {'V', 'I', 'O', 'M', 'M', 'U', 'S', '1'};

#define STATE_DOMAIN_F_BYPASS 1u

struct state_header {
    char magic[8];
    viommu_le64 features;
    uint8_t bypass;
    uint8_t reserved[3];
    viommu_le32 ndomains;
};
_Static_assert(sizeof(struct state_header) == 24, "state_header size");

struct state_domain {
    viommu_le32 id;
    viommu_le32 flags;
    viommu_le32 nendpoints;
    viommu_le32 reserved;
    viommu_le64 nmappings;
};
_Static_assert(sizeof(struct state_domain) == 24, "state_domain size");

struct state_mapping {
    viommu_le64 virt_start;
    viommu_le64 virt_end;
    viommu_le64 phys_start;
    viommu_le32 flags;
    viommu_le32 reserved;
};
_Static_assert(sizeof(struct state_mapping) == 32, "state_mapping size");

int viommu_save(const viommu *v, uint8_t **data, size_t *len)
{
    GByteArray *b = g_byte_array_new();
    struct state_header h;
    memset(&h, 0, sizeof(h));
    memcpy(h.magic, state_magic, sizeof(h.magic));
    h.features = htole64(v->driver_features);
    h.bypass = v->bypass;
    h.ndomains = htole32(g_hash_table_size(v->domains));
    g_byte_array_append(b, (const guint8 *)&h, sizeof(h));

    GHashTableIter it;
    gpointer val;
    g_hash_table_iter_init(&it, v->domains);
    while (g_hash_table_iter_next(&it, NULL, &val)) {
        const vi_domain *d = val;
        struct state_domain sd;
        memset(&sd, 0, sizeof(sd));
        sd.id = htole32(d->id);
        sd.flags = htole32(d->bypass ? STATE_DOMAIN_F_BYPASS : 0);
        sd.nendpoints = htole32(d->nendpoints);
        sd.nmappings = htole64(d->map ? interval_map_count(d->map) : 0);
        g_byte_array_append(b, (const guint8 *)&sd, sizeof(sd));
        for (const vi_endpoint *ep = d->endpoints; ep; ep = ep->dom_next) {
            viommu_le32 id = htole32(ep->id);
            g_byte_array_append(b, (const guint8 *)&id, sizeof(id));
        }
        if (!d->map)
            continue;
        interval_map_iter mi;
        u64_range r;
        const vi_map_val *mv;
        interval_map_iter_init(&mi, d->map, 0, UINT64_MAX);
        while ((mv = interval_map_iter_next(&mi, &r))) {
            struct state_mapping sm = {htole64(r.first), htole64(r.last), htole64(mv->phys),
                                       htole32(mv->flags), 0};
            g_byte_array_append(b, (const guint8 *)&sm, sizeof(sm));
        }
    }
    *len = b->len;
    *data = g_byte_array_free(b, FALSE);
    return 0;
}

typedef struct state_reader {
    const uint8_t *p;
    size_t left;
} state_reader;

static bool take(state_reader *r, void *out, size_t n)
{
    if (r->left < n)
        return false;
    memcpy(out, r->p, n);
    r->p += n;
    r->left -= n;
    return true;
}

/* Forgets every domain without telling a listener (none was told yet). */
static void drop_silently(viommu *v)
{
    GHashTableIter it;
    gpointer val;
    g_hash_table_iter_init(&it, v->endpoints);
    while (g_hash_table_iter_next(&it, NULL, &val)) {
        vi_endpoint *ep = val;
        ep->domain = NULL;
        ep->dom_next = NULL;
    }
    g_hash_table_remove_all(v->domains);
    v->last_domain = NULL;
    v->stats.domains = 0;
    v->stats.mappings = 0;
}

/* Builds the domains of the image; returns 0 or -EINVAL / -ENOMEM. */
static int load_domains(viommu *v, state_reader *r, uint32_t ndomains)
{
    for (uint32_t i = 0; i < ndomains; i++) {
        struct state_domain sd;
        if (!take(r, &sd, sizeof(sd)))
            return -EINVAL;
        uint32_t id = le32toh(sd.id), flags = le32toh(sd.flags);
        uint32_t neps = le32toh(sd.nendpoints);
        uint64_t nmaps = le64toh(sd.nmappings);
        bool bypass = flags & STATE_DOMAIN_F_BYPASS;
        if ((flags & ~STATE_DOMAIN_F_BYPASS) || sd.reserved || neps == 0)
            return -EINVAL;
        if (bypass && !vi_negotiated(v, VIRTIO_IOMMU_F_BYPASS_CONFIG))
            return -EINVAL;
        if (vi_offered(v, VIRTIO_IOMMU_F_DOMAIN_RANGE) &&
            (id < v->cfg.domain_first || id > v->cfg.domain_last))
            return -EINVAL;
        if (g_hash_table_contains(v->domains, GUINT_TO_POINTER(id)) ||
            v->stats.domains >= v->cfg.max_domains)
            return -EINVAL;
        /* Counts are checked against the bytes left before any loop. */
        if (neps > r->left / sizeof(viommu_le32))
            return -EINVAL;
        vi_domain *d = vi_domain_create(v, id, bypass);
        if (!d)
            return -ENOMEM;
        for (uint32_t k = 0; k < neps; k++) {
            viommu_le32 le;
            if (!take(r, &le, sizeof(le)))
                return -EINVAL;
            vi_endpoint *ep = vi_endpoint_lookup(v, le32toh(le));
            if (!ep || ep->domain)
                return -EINVAL;
            vi_domain_link(d, ep);
        }
        if (nmaps > r->left / sizeof(struct state_mapping) || (bypass && nmaps))
            return -EINVAL;
        for (uint64_t k = 0; k < nmaps; k++) {
            struct state_mapping sm;
            vi_domain *out;
            if (!take(r, &sm, sizeof(sm)) || sm.reserved)
                return -EINVAL;
            uint8_t st = vi_map_insert(v, id, le64toh(sm.virt_start), le64toh(sm.virt_end),
                                       le64toh(sm.phys_start), le32toh(sm.flags), 0, &out);
            if (st == VIRTIO_IOMMU_S_NOMEM)
                return -ENOMEM;
            if (st != VIRTIO_IOMMU_S_OK)
                return -EINVAL;
        }
    }
    return r->left ? -EINVAL : 0;
}

static void note_failure(void *opaque, const mapping_event *ev, int err)
{
    viommu *v = opaque;
    vi_failure f = {*ev, err < 0 ? err : -EIO};
    g_array_append_val(v->failures, f);
    v->stats.listener_failures++;
}

/*
 * Tells every attached endpoint's listener its domain's mappings, in
 * one batch. On a refusal or failure, takes back what each listener
 * accepted and returns the listener's error.
 */
static int load_announce(viommu *v)
{
    GPtrArray *eps = g_ptr_array_new();
    GHashTableIter it;
    gpointer val;
    g_hash_table_iter_init(&it, v->endpoints);
    while (g_hash_table_iter_next(&it, NULL, &val))
        if (((vi_endpoint *)val)->domain)
            g_ptr_array_add(eps, val);

    int err = 0;
    guint announced = 0;
    vi_batch_start(v);
    g_array_set_size(v->failures, 0);
    for (; announced < eps->len; announced++) {
        vi_endpoint *ep = g_ptr_array_index(eps, announced);
        /* A refusal is taken back by vi_replay itself for this endpoint. */
        err = vi_replay(v, ep, ep->domain, 0);
        if (err < 0)
            break;
    }
    vi_batch_finish(v, note_failure, v);
    if (!err && v->failures->len)
        err = ((const vi_failure *)(void *)v->failures->data)->err;
    if (err) {
        const vi_failure *all = (const vi_failure *)(void *)v->failures->data;
        vi_batch_start(v);
        for (guint i = 0; i < announced; i++)
            vi_endpoint_unmap_all(v, g_ptr_array_index(eps, i), 0, all, v->failures->len);
        vi_batch_finish(v, NULL, NULL);
        g_array_set_size(v->failures, 0);
    }
    g_ptr_array_free(eps, TRUE);
    return err;
}

int viommu_load(viommu *v, const uint8_t *data, size_t len)
{
    struct state_header h;
    state_reader r = {data, data ? len : 0};
    if (g_hash_table_size(v->domains))
        return -EBUSY;
    if (!take(&r, &h, sizeof(h)) || memcmp(h.magic, state_magic, sizeof(h.magic)) || h.bypass > 1 ||
        h.reserved[0] || h.reserved[1] || h.reserved[2])
        return -EINVAL;
    uint64_t features = le64toh(h.features);
    if (features & ~v->cfg.features)
        return -EINVAL;

    uint64_t old_features = v->driver_features;
    uint8_t old_bypass = v->bypass;
    /* The mappings are checked against the negotiated features. */
    v->driver_features = features;
    v->bypass = h.bypass;
    int rc = load_domains(v, &r, le32toh(h.ndomains));
    if (rc == 0)
        rc = load_announce(v);
    if (rc < 0) {
        drop_silently(v);
        v->driver_features = old_features;
        v->bypass = old_bypass;
    }
    return rc;
}

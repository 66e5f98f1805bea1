/* SPDX-License-Identifier: MIT */
/*
 * state.c - the device's state as a versioned, checksummed byte stream
 * (live migration of the virtio-iommu itself).
 *
 * Layout, every integer little-endian, every record a fixed-size struct
 * with explicit reserved bytes (which a reader requires to be zero):
 *
 *   header        magic, version, total length, record counts
 *   config        the guest-visible configuration the stream was saved with
 *   device        negotiated features, config.bypass, counters
 *   endpoints     n_endpoints x (endpoint record, nresv x resv record),
 *                 ascending endpoint ID
 *   domains       n_domains x (domain record, nmappings x mapping record),
 *                 ascending domain ID, mappings in address order
 *   crc           CRC-32 (IEEE 802.3) of every byte before it
 *
 * The envelope (magic, version, length and the trailing CRC) is the same
 * in every version, so corruption is told apart from a newer version:
 * the checksum is verified before the version is looked at.
 *
 * Loading builds the new state in a device of its own through the same
 * checks the guest's requests go through (so a stream can never create a
 * state the requests could not), re-establishes every mapping with the
 * listeners, and only then swaps it in: a refused stream, or a refusing
 * listener, leaves the device as it was.
 */
#include <gio/gio.h>
#include <inttypes.h>
#include <string.h>

#include "viommu_internal.h"

static const uint8_t state_magic[8] = {'V', 'I', 'O', 'M', 'M', 'U', 'S', 'T'};

struct state_header_wire {
    uint8_t magic[8];
    viommu_le32 version;
    viommu_le32 reserved;
    viommu_le64 length; /* whole stream, header and crc included */
    viommu_le32 n_endpoints;
    viommu_le32 n_domains;
};
_Static_assert(sizeof(struct state_header_wire) == 32, "state header size");
_Static_assert(offsetof(struct state_header_wire, version) == 8, "state version offset");
_Static_assert(offsetof(struct state_header_wire, length) == 16, "state length offset");
_Static_assert(offsetof(struct state_header_wire, n_endpoints) == 24, "state n_endpoints offset");
_Static_assert(offsetof(struct state_header_wire, n_domains) == 28, "state n_domains offset");

struct state_config_wire {
    viommu_le64 features;
    viommu_le64 page_size_mask;
    viommu_le64 input_first;
    viommu_le64 input_last;
    viommu_le32 domain_first;
    viommu_le32 domain_last;
    viommu_le32 probe_size;
    uint8_t bypass; /* the configured initial value */
    uint8_t reserved[3];
};
_Static_assert(sizeof(struct state_config_wire) == 48, "state config size");
_Static_assert(offsetof(struct state_config_wire, domain_first) == 32, "config domain offset");
_Static_assert(offsetof(struct state_config_wire, bypass) == 44, "config bypass offset");

struct state_device_wire {
    viommu_le64 driver_features;
    uint8_t bypass; /* config.bypass as the driver left it */
    uint8_t reserved[7];
    viommu_le64 requests;
    viommu_le64 batches;
    viommu_le64 faults;
    viommu_le64 faults_reported;
    viommu_le64 faults_dropped;
    viommu_le64 listener_failures;
};
_Static_assert(sizeof(struct state_device_wire) == 64, "state device size");
_Static_assert(offsetof(struct state_device_wire, bypass) == 8, "device bypass offset");
_Static_assert(offsetof(struct state_device_wire, requests) == 16, "device requests offset");
_Static_assert(offsetof(struct state_device_wire, listener_failures) == 56, "device lf offset");

#define STATE_EP_ATTACHED 1u

struct state_endpoint_wire {
    viommu_le32 id;
    viommu_le32 domain; /* meaningful with STATE_EP_ATTACHED */
    viommu_le32 flags;
    viommu_le32 nresv;
};
_Static_assert(sizeof(struct state_endpoint_wire) == 16, "state endpoint size");
_Static_assert(offsetof(struct state_endpoint_wire, nresv) == 12, "endpoint nresv offset");

struct state_resv_wire {
    viommu_le64 start;
    viommu_le64 end;
    uint8_t subtype;
    uint8_t reserved[7];
};
_Static_assert(sizeof(struct state_resv_wire) == 24, "state resv size");
_Static_assert(offsetof(struct state_resv_wire, subtype) == 16, "resv subtype offset");

#define STATE_DOMAIN_BYPASS 1u

struct state_domain_wire {
    viommu_le32 id;
    viommu_le32 flags;
    viommu_le64 nmappings;
};
_Static_assert(sizeof(struct state_domain_wire) == 16, "state domain size");
_Static_assert(offsetof(struct state_domain_wire, nmappings) == 8, "domain nmappings offset");

struct state_mapping_wire {
    viommu_le64 virt_start;
    viommu_le64 virt_end;
    viommu_le64 phys_start;
    viommu_le32 flags;
    viommu_le32 reserved;
};
_Static_assert(sizeof(struct state_mapping_wire) == 32, "state mapping size");
_Static_assert(offsetof(struct state_mapping_wire, phys_start) == 16, "mapping phys offset");
_Static_assert(offsetof(struct state_mapping_wire, flags) == 24, "mapping flags offset");

#define STATE_CRC_SIZE 4u
#define STATE_FIXED_SIZE                                                                           \
    (sizeof(struct state_header_wire) + sizeof(struct state_config_wire) +                         \
     sizeof(struct state_device_wire) + STATE_CRC_SIZE)

/* ---- CRC-32 ------------------------------------------------------------ */

/* Reflected CRC-32, polynomial 0x04c11db7 (zlib's crc32()), eight bytes
 * a step with eight tables ("slicing-by-8"), so checksumming a stream of
 * a million mappings costs a fraction of building it. CRC-32 detects
 * every error burst of up to 32 bits: no single corrupted byte of a
 * stream goes unnoticed. */
static uint32_t crc_table[8][256];

static void crc_table_init(void)
{
    static gsize done;
    if (!g_once_init_enter(&done))
        return;
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
    g_once_init_leave(&done, 1);
}

static uint32_t state_crc32(const uint8_t *p, size_t len)
{
    crc_table_init();
    uint32_t c = 0xffffffffu;
    for (; len >= 8; p += 8, len -= 8) {
        uint32_t lo, hi;
        memcpy(&lo, p, 4);
        memcpy(&hi, p + 4, 4);
        lo = le32toh(lo) ^ c;
        hi = le32toh(hi);
        c = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
            crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^ crc_table[3][hi & 0xff] ^
            crc_table[2][(hi >> 8) & 0xff] ^ crc_table[1][(hi >> 16) & 0xff] ^
            crc_table[0][hi >> 24];
    }
    for (; len; p++, len--)
        c = crc_table[0][(c ^ *p) & 0xff] ^ (c >> 8);
    return c ^ 0xffffffffu;
}

/* ---- save ------------------------------------------------------------ */

static gint cmp_u32(gconstpointer a, gconstpointer b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* The IDs of a hash table keyed by u32, ascending (the stream's order, so
 * that one state always gives the same bytes). */
static uint32_t *sorted_ids(GHashTable *t, size_t *n)
{
    *n = g_hash_table_size(t);
    uint32_t *ids = g_new(uint32_t, *n ? *n : 1);
    GHashTableIter it;
    gpointer key;
    size_t i = 0;
    g_hash_table_iter_init(&it, t);
    while (g_hash_table_iter_next(&it, &key, NULL))
        ids[i++] = GPOINTER_TO_UINT(key);
    qsort(ids, *n, sizeof(*ids), (int (*)(const void *, const void *))cmp_u32);
    return ids;
}

static size_t state_length(const viommu *v)
{
    size_t len = STATE_FIXED_SIZE;
    GHashTableIter it;
    gpointer val;
    g_hash_table_iter_init(&it, v->endpoints);
    while (g_hash_table_iter_next(&it, NULL, &val))
        len += sizeof(struct state_endpoint_wire) +
               (size_t)((vi_endpoint *)val)->nresv * sizeof(struct state_resv_wire);
    g_hash_table_iter_init(&it, v->domains);
    while (g_hash_table_iter_next(&it, NULL, &val)) {
        const vi_domain *d = val;
        len += sizeof(struct state_domain_wire) +
               (d->map ? interval_map_count(d->map) : 0) * sizeof(struct state_mapping_wire);
    }
    return len;
}

int viommu_save(const viommu *v, void *buf, size_t bufsize, size_t *len)
{
    if (!v || !len || (!buf && bufsize))
        return -EINVAL;
    size_t total = state_length(v);
    *len = total;
    if (bufsize < total)
        return -ENOSPC;

    uint8_t *p = buf;
    size_t n_eps, n_doms;
    g_autofree uint32_t *eps = sorted_ids(v->endpoints, &n_eps);
    g_autofree uint32_t *doms = sorted_ids(v->domains, &n_doms);

    struct state_header_wire h;
    memset(&h, 0, sizeof(h));
    memcpy(h.magic, state_magic, sizeof(h.magic));
    h.version = htole32(VIOMMU_STATE_VERSION);
    h.length = htole64(total);
    h.n_endpoints = htole32((uint32_t)n_eps);
    h.n_domains = htole32((uint32_t)n_doms);
    memcpy(p, &h, sizeof(h));
    p += sizeof(h);

    struct state_config_wire c;
    memset(&c, 0, sizeof(c));
    c.features = htole64(v->cfg.features);
    c.page_size_mask = htole64(v->cfg.page_size_mask);
    c.input_first = htole64(v->cfg.input_range.first);
    c.input_last = htole64(v->cfg.input_range.last);
    c.domain_first = htole32(v->cfg.domain_first);
    c.domain_last = htole32(v->cfg.domain_last);
    c.probe_size = htole32(v->cfg.probe_size);
    c.bypass = v->cfg.bypass ? 1 : 0;
    memcpy(p, &c, sizeof(c));
    p += sizeof(c);

    struct state_device_wire dv;
    memset(&dv, 0, sizeof(dv));
    dv.driver_features = htole64(v->driver_features);
    dv.bypass = v->bypass;
    dv.requests = htole64(v->stats.requests);
    dv.batches = htole64(v->stats.batches);
    dv.faults = htole64(v->stats.faults);
    dv.faults_reported = htole64(v->stats.faults_reported);
    dv.faults_dropped = htole64(v->stats.faults_dropped);
    dv.listener_failures = htole64(v->stats.listener_failures);
    memcpy(p, &dv, sizeof(dv));
    p += sizeof(dv);

    for (size_t i = 0; i < n_eps; i++) {
        const vi_endpoint *ep = vi_endpoint_find(v, eps[i]);
        struct state_endpoint_wire e;
        memset(&e, 0, sizeof(e));
        e.id = htole32(ep->id);
        e.domain = htole32(ep->domain ? ep->domain->id : 0);
        e.flags = htole32(ep->domain ? STATE_EP_ATTACHED : 0);
        e.nresv = htole32(ep->nresv);
        memcpy(p, &e, sizeof(e));
        p += sizeof(e);
        for (uint32_t k = 0; k < ep->nresv; k++) {
            struct state_resv_wire r;
            memset(&r, 0, sizeof(r));
            r.start = htole64(ep->resv[k].start);
            r.end = htole64(ep->resv[k].end);
            r.subtype = ep->resv[k].subtype;
            memcpy(p, &r, sizeof(r));
            p += sizeof(r);
        }
    }

    for (size_t i = 0; i < n_doms; i++) {
        const vi_domain *d = g_hash_table_lookup(v->domains, GUINT_TO_POINTER(doms[i]));
        struct state_domain_wire dw;
        memset(&dw, 0, sizeof(dw));
        dw.id = htole32(d->id);
        dw.flags = htole32(d->bypass ? STATE_DOMAIN_BYPASS : 0);
        dw.nmappings = htole64(d->map ? interval_map_count(d->map) : 0);
        memcpy(p, &dw, sizeof(dw));
        p += sizeof(dw);
        if (!d->map)
            continue;
        interval_map_iter it;
        u64_range r;
        const vi_map_val *val;
        interval_map_iter_init(&it, d->map, 0, UINT64_MAX);
        while ((val = interval_map_iter_next(&it, &r))) {
            struct state_mapping_wire m;
            memset(&m, 0, sizeof(m));
            m.virt_start = htole64(r.first);
            m.virt_end = htole64(r.last);
            m.phys_start = htole64(val->phys);
            m.flags = htole32(val->flags);
            memcpy(p, &m, sizeof(m));
            p += sizeof(m);
        }
    }

    uint32_t crc = htole32(state_crc32(buf, total - STATE_CRC_SIZE));
    memcpy(p, &crc, sizeof(crc));
    return 0;
}

/* ---- load: reading the stream ----------------------------------------- */

typedef struct reader {
    const uint8_t *p;
    size_t left;
} reader;

static bool take(reader *r, void *out, size_t len)
{
    if (r->left < len)
        return false;
    memcpy(out, r->p, len);
    r->p += len;
    r->left -= len;
    return true;
}

static bool all_zero(const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (p[i])
            return false;
    return true;
}

/* The GError code of a load error: a corrupt stream is invalid data. */
static int load_error_code(int err)
{
    return err == -EBADMSG ? G_IO_ERROR_INVALID_DATA : g_io_error_from_errno(-err);
}

#define LOAD_FAIL(code, ...)                                                                       \
    do {                                                                                           \
        g_set_error(error, G_IO_ERROR, load_error_code(code), "viommu state: " __VA_ARGS__);       \
        return (code);                                                                             \
    } while (0)

/* The envelope: size, magic, version, length, checksum. */
static int check_envelope(const uint8_t *p, size_t len, GError **error)
{
    struct state_header_wire h;
    if (len >= sizeof(h.magic) && memcmp(p, state_magic, sizeof(h.magic)) != 0)
        LOAD_FAIL(-EBADMSG, "not a state stream (bad magic)");
    if (len < STATE_FIXED_SIZE)
        LOAD_FAIL(-EBADMSG, "truncated: %zu bytes, a stream has at least %zu", len,
                  (size_t)STATE_FIXED_SIZE);
    memcpy(&h, p, sizeof(h));
    uint64_t total = le64toh(h.length);
    if (total > len)
        LOAD_FAIL(-EBADMSG, "truncated: the stream says %" PRIu64 " bytes, %zu are given", total,
                  len);
    if (total < len)
        LOAD_FAIL(-EBADMSG, "%zu bytes follow the %" PRIu64 "-byte stream", len - (size_t)total,
                  total);
    uint32_t want, got = state_crc32(p, len - STATE_CRC_SIZE);
    memcpy(&want, p + len - STATE_CRC_SIZE, sizeof(want));
    want = le32toh(want);
    if (want != got)
        LOAD_FAIL(-EBADMSG,
                  "checksum mismatch (stream 0x%08" PRIx32 ", computed 0x%08" PRIx32
                  "): the stream is corrupt",
                  want, got);
    uint32_t version = le32toh(h.version);
    if (version > VIOMMU_STATE_VERSION)
        LOAD_FAIL(-ENOTSUP,
                  "stream version %" PRIu32 " is newer than %u, the newest this library reads",
                  version, VIOMMU_STATE_VERSION);
    if (version == 0)
        LOAD_FAIL(-EBADMSG, "stream version 0 does not exist");
    if (le32toh(h.reserved) != 0)
        LOAD_FAIL(-EBADMSG, "reserved header field is not zero");
    return 0;
}

/* The stream's configuration must be the device's: the guest saw it
 * (configuration space, PROBE) and its driver relies on it. Limits are
 * the destination's own; the state just has to fit in them. */
static int check_config(const viommu *v, const struct state_config_wire *c, GError **error)
{
    const viommu_config *cfg = &v->cfg;
    if (!all_zero(c->reserved, sizeof(c->reserved)))
        LOAD_FAIL(-EBADMSG, "reserved config bytes are not zero");
#define SAME(name, mine, theirs, fmt)                                                              \
    if ((theirs) != (mine))                                                                        \
        LOAD_FAIL(-EINVAL, "the stream's " name " 0x%" fmt " differs from the device's 0x%" fmt,   \
                  (theirs), (mine));
    SAME("features", cfg->features, le64toh(c->features), PRIx64)
    SAME("page_size_mask", cfg->page_size_mask, le64toh(c->page_size_mask), PRIx64)
    SAME("input_range start", cfg->input_range.first, le64toh(c->input_first), PRIx64)
    SAME("input_range end", cfg->input_range.last, le64toh(c->input_last), PRIx64)
    SAME("domain_range start", cfg->domain_first, le32toh(c->domain_first), PRIx32)
    SAME("domain_range end", cfg->domain_last, le32toh(c->domain_last), PRIx32)
    SAME("probe_size", cfg->probe_size, le32toh(c->probe_size), PRIx32)
    SAME("initial bypass", (unsigned)cfg->bypass, (unsigned)c->bypass, "x")
#undef SAME
    return 0;
}

/* An endpoint the stream attaches, waiting for its domain's record. */
typedef struct pending_ep {
    uint32_t id;
    uint32_t domain;
} pending_ep;

static int read_endpoints(viommu *n, reader *r, uint32_t count, GArray *attached, GError **error)
{
    uint32_t prev = 0;
    for (uint32_t i = 0; i < count; i++) {
        struct state_endpoint_wire e;
        if (!take(r, &e, sizeof(e)))
            LOAD_FAIL(-EBADMSG, "endpoint record %" PRIu32 " runs past the end", i);
        uint32_t id = le32toh(e.id), flags = le32toh(e.flags), nresv = le32toh(e.nresv);
        if (i && id <= prev)
            LOAD_FAIL(-EBADMSG, "endpoint %" PRIu32 " is out of order", id);
        prev = id;
        if (flags & ~STATE_EP_ATTACHED)
            LOAD_FAIL(-EBADMSG, "endpoint %" PRIu32 " has unknown flags 0x%" PRIx32, id, flags);
        if (!(flags & STATE_EP_ATTACHED) && le32toh(e.domain) != 0)
            LOAD_FAIL(-EBADMSG, "unattached endpoint %" PRIu32 " names a domain", id);
        if (nresv > r->left / sizeof(struct state_resv_wire))
            LOAD_FAIL(-EBADMSG,
                      "endpoint %" PRIu32 ": %" PRIu32 " reserved regions run past the end", id,
                      nresv);
        int rc = viommu_endpoint_add(n, id);
        if (rc == -ENOSPC)
            LOAD_FAIL(-EINVAL, "more endpoints than this device's max_endpoints");
        if (rc < 0)
            LOAD_FAIL(rc, "endpoint %" PRIu32 ": %s", id, g_strerror(-rc));
        for (uint32_t k = 0; k < nresv; k++) {
            struct state_resv_wire rw;
            if (!take(r, &rw, sizeof(rw)))
                LOAD_FAIL(-EBADMSG, "endpoint %" PRIu32 ": region %" PRIu32 " runs past the end",
                          id, k);
            if (!all_zero(rw.reserved, sizeof(rw.reserved)))
                LOAD_FAIL(-EBADMSG, "endpoint %" PRIu32 ": reserved bytes of a region are not zero",
                          id);
            uint64_t start = le64toh(rw.start), end = le64toh(rw.end);
            rc = viommu_endpoint_add_resv(n, id, start, end, rw.subtype);
            if (rc == -ENOMEM)
                LOAD_FAIL(rc, "out of memory");
            if (rc < 0)
                LOAD_FAIL(-EBADMSG,
                          "endpoint %" PRIu32 ": reserved region [0x%" PRIx64 ", 0x%" PRIx64
                          "] subtype %u refused: %s",
                          id, start, end, rw.subtype, g_strerror(-rc));
        }
        if (flags & STATE_EP_ATTACHED) {
            pending_ep p = {id, le32toh(e.domain)};
            g_array_append_val(attached, p);
        }
    }
    return 0;
}

static int read_domains(viommu *n, reader *r, uint32_t count, GArray *attached, GError **error)
{
    const pending_ep *eps = (const pending_ep *)(void *)attached->data;
    uint32_t prev = 0;
    size_t placed = 0;
    for (uint32_t i = 0; i < count; i++) {
        struct state_domain_wire dw;
        if (!take(r, &dw, sizeof(dw)))
            LOAD_FAIL(-EBADMSG, "domain record %" PRIu32 " runs past the end", i);
        uint32_t id = le32toh(dw.id), flags = le32toh(dw.flags);
        uint64_t nmap = le64toh(dw.nmappings);
        if (i && id <= prev)
            LOAD_FAIL(-EBADMSG, "domain %" PRIu32 " is out of order", id);
        prev = id;
        if (flags & ~STATE_DOMAIN_BYPASS)
            LOAD_FAIL(-EBADMSG, "domain %" PRIu32 " has unknown flags 0x%" PRIx32, id, flags);
        bool bypass = flags & STATE_DOMAIN_BYPASS;
        if (bypass && nmap)
            LOAD_FAIL(-EBADMSG, "bypass domain %" PRIu32 " has mappings", id);
        if (nmap > r->left / sizeof(struct state_mapping_wire))
            LOAD_FAIL(-EBADMSG, "domain %" PRIu32 ": %" PRIu64 " mappings run past the end", id,
                      nmap);

        /* Its endpoints join through ATTACH's own checks (domain range,
         * bypass flag, the domain limit); the first creates the domain. */
        uint32_t members = 0;
        for (size_t k = 0; k < attached->len; k++) {
            if (eps[k].domain != id)
                continue;
            uint8_t st = vi_attach(n, id, eps[k].id, bypass ? VIRTIO_IOMMU_ATTACH_F_BYPASS : 0, 0);
            if (st == VIRTIO_IOMMU_S_NOMEM && n->stats.domains >= n->cfg.max_domains)
                LOAD_FAIL(-EINVAL, "more domains than this device's max_domains");
            if (st == VIRTIO_IOMMU_S_NOMEM)
                LOAD_FAIL(-ENOMEM, "out of memory");
            if (st != VIRTIO_IOMMU_S_OK)
                LOAD_FAIL(-EBADMSG, "endpoint %" PRIu32 " cannot attach to domain %" PRIu32 " (%s)",
                          eps[k].id, id, viommu_status_name(st));
            members++;
        }
        if (members == 0)
            LOAD_FAIL(-EBADMSG, "domain %" PRIu32 " has no endpoint", id);
        placed += members;
        uint64_t last_end = 0;

        /* Mappings go through MAP's checks: granule, input range, flags,
         * reserved regions of the members, overlap, the per-domain limit. */
        for (uint64_t k = 0; k < nmap; k++) {
            struct state_mapping_wire m;
            if (!take(r, &m, sizeof(m)))
                LOAD_FAIL(-EBADMSG, "domain %" PRIu32 ": mapping %" PRIu64 " runs past the end", id,
                          k);
            if (m.reserved)
                LOAD_FAIL(-EBADMSG, "domain %" PRIu32 ": mapping %" PRIu64 " has reserved bits", id,
                          k);
            uint64_t vs = le64toh(m.virt_start), ve = le64toh(m.virt_end);
            if (k && vs <= last_end)
                LOAD_FAIL(-EBADMSG, "domain %" PRIu32 ": mapping at 0x%" PRIx64 " is out of order",
                          id, vs);
            uint8_t st = vi_map(n, id, vs, ve, le64toh(m.phys_start), le32toh(m.flags), 0);
            if (st == VIRTIO_IOMMU_S_NOMEM && k >= n->cfg.max_mappings_per_domain)
                LOAD_FAIL(-EINVAL,
                          "domain %" PRIu32
                          " has more mappings than this device's max_mappings_per_domain",
                          id);
            if (st == VIRTIO_IOMMU_S_NOMEM)
                LOAD_FAIL(-ENOMEM, "out of memory");
            if (st != VIRTIO_IOMMU_S_OK)
                LOAD_FAIL(-EBADMSG,
                          "domain %" PRIu32 ": mapping [0x%" PRIx64 ", 0x%" PRIx64 "] refused (%s)",
                          id, vs, ve, viommu_status_name(st));
            last_end = ve;
        }
    }
    if (placed != attached->len)
        LOAD_FAIL(-EBADMSG, "an endpoint is attached to a domain the stream does not hold");
    return 0;
}

/* ---- re-establishing the mappings with the listeners ----------------- */

typedef struct replay_ctx {
    GArray *failed; /* uint64_t iova of each map the listener failed */
    int err;
} replay_ctx;

static void replay_failed(void *opaque, const mapping_event *ev, int err)
{
    replay_ctx *c = opaque;
    g_array_append_val(c->failed, ev->iova);
    if (!c->err)
        c->err = err < 0 ? err : -EIO;
}

static gint cmp_u64(gconstpointer a, gconstpointer b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static mapping_event replay_event(const vi_endpoint *ep, u64_range r, const vi_map_val *val)
{
    mapping_event ev = {
        .endpoint = ep->id,
        .domain = ep->domain->id,
        .iova = r.first,
        .iova_last = r.last,
        .gpa = val->phys,
        .prot = val->flags & (MAPPING_PROT_READ | MAPPING_PROT_WRITE | MAPPING_PROT_MMIO),
        .seq = 0,
    };
    return ev;
}

static bool has_replay(const vi_endpoint *ep)
{
    return ep->listener.ops && ep->listener.ops->map && ep->domain && ep->domain->map &&
           interval_map_count(ep->domain->map) > 0;
}

/* Takes back from @ep's listener the mappings below @stop (all when
 * @stop_all) except those it failed (sorted in @failed), in one batch. */
static void replay_undo(const vi_endpoint *ep, uint64_t stop, bool stop_all, const GArray *failed)
{
    const mapping_listener_ops *ops = ep->listener.ops;
    if (ops->batch_begin)
        ops->batch_begin(ep->listener.opaque);
    interval_map_iter it;
    u64_range r;
    const vi_map_val *val;
    interval_map_iter_init(&it, ep->domain->map, 0, UINT64_MAX);
    while ((val = interval_map_iter_next(&it, &r)) && (stop_all || r.first < stop)) {
        if (failed && failed->len &&
            bsearch(&r.first, failed->data, failed->len, sizeof(uint64_t),
                    (int (*)(const void *, const void *))cmp_u64))
            continue;
        mapping_event ev = replay_event(ep, r, val);
        if (ops->unmap)
            (void)ops->unmap(ep->listener.opaque, &ev);
    }
    if (ops->batch_end)
        (void)ops->batch_end(ep->listener.opaque, NULL, NULL);
}

/*
 * Gives every listener of @n's endpoints its domain's mappings, a batch
 * per endpoint, in ascending endpoint order. When a listener refuses or
 * fails one, every listener gets back (as unmaps) what it had accepted,
 * and the refusal is returned.
 */
static int replay_all(viommu *n, GError **error)
{
    size_t n_eps;
    g_autofree uint32_t *eps = sorted_ids(n->endpoints, &n_eps);
    replay_ctx ctx = {g_array_new(FALSE, FALSE, sizeof(uint64_t)), 0};
    int rc = 0;
    size_t i;
    for (i = 0; i < n_eps; i++) {
        vi_endpoint *ep = vi_endpoint_find(n, eps[i]);
        if (!has_replay(ep))
            continue;
        const mapping_listener_ops *ops = ep->listener.ops;
        void *opaque = ep->listener.opaque;
        uint64_t refused_at = 0;
        bool refused = false;
        if (ops->batch_begin)
            ops->batch_begin(opaque);
        interval_map_iter it;
        u64_range r;
        const vi_map_val *val;
        interval_map_iter_init(&it, ep->domain->map, 0, UINT64_MAX);
        while ((val = interval_map_iter_next(&it, &r))) {
            mapping_event ev = replay_event(ep, r, val);
            int mrc = ops->map(opaque, &ev);
            if (mrc < 0) {
                refused = true;
                refused_at = r.first;
                ctx.err = mrc;
                break;
            }
        }
        if (ops->batch_end)
            (void)ops->batch_end(opaque, replay_failed, &ctx);
        if (!refused && ctx.failed->len == 0)
            continue;

        rc = ctx.err ? ctx.err : -EIO;
        g_set_error(error, G_IO_ERROR, load_error_code(rc),
                    "viommu state: endpoint %" PRIu32
                    "'s listener could not re-establish %s mapping of domain %" PRIu32
                    ": %s; the device is unchanged",
                    ep->id, refused ? "a" : "every", ep->domain->id, g_strerror(-rc));
        g_array_sort(ctx.failed, cmp_u64);
        replay_undo(ep, refused_at, !refused, ctx.failed);
        break;
    }
    if (rc < 0) {
        /* The endpoints before the failing one hold their whole domain. */
        for (size_t k = 0; k < i; k++) {
            const vi_endpoint *ep = vi_endpoint_find(n, eps[k]);
            if (has_replay(ep))
                replay_undo(ep, 0, true, NULL);
        }
    }
    g_array_free(ctx.failed, TRUE);
    return rc;
}

/* ---- load: building aside, then swapping ------------------------------ */

/* Exchanges what the stream describes between @v and @n; what belongs to
 * the VMM's wiring (event buffers and queue, handlers) stays with @v. */
static void swap_state(viommu *v, viommu *n)
{
#define SWAP(field)                                                                                \
    do {                                                                                           \
        __typeof__(v->field) tmp_ = v->field;                                                      \
        v->field = n->field;                                                                       \
        n->field = tmp_;                                                                           \
    } while (0)
    SWAP(driver_features);
    SWAP(bypass);
    SWAP(endpoints);
    SWAP(domains);
    SWAP(touched);
    SWAP(touched_cap);
    SWAP(stats);
#undef SWAP
    v->ntouched = 0;
    v->last_domain = NULL;
    v->last_endpoint = NULL;
    n->last_domain = NULL;
    n->last_endpoint = NULL;
}

/* Every endpoint the VMM declared must be in the stream (its listener
 * moves to the loaded endpoint); the stream may add endpoints. */
static int adopt_listeners(viommu *v, viommu *n, GError **error)
{
    GHashTableIter it;
    gpointer val;
    g_hash_table_iter_init(&it, v->endpoints);
    while (g_hash_table_iter_next(&it, NULL, &val)) {
        const vi_endpoint *old = val;
        vi_endpoint *ep = vi_endpoint_find(n, old->id);
        if (!ep)
            LOAD_FAIL(-EINVAL,
                      "endpoint %" PRIu32 " is declared on this device but not in the stream",
                      old->id);
        ep->listener = old->listener;
    }
    return 0;
}

static int load_into(viommu *v, viommu *n, const uint8_t *p, size_t len, GError **error)
{
    reader r = {p, len - STATE_CRC_SIZE};
    struct state_header_wire h;
    struct state_config_wire c;
    struct state_device_wire dv;
    take(&r, &h, sizeof(h));
    take(&r, &c, sizeof(c));
    take(&r, &dv, sizeof(dv));
    int rc = check_config(v, &c, error);
    if (rc < 0)
        return rc;
    if (!all_zero(dv.reserved, sizeof(dv.reserved)))
        LOAD_FAIL(-EBADMSG, "reserved device bytes are not zero");
    if (dv.bypass > 1)
        LOAD_FAIL(-EBADMSG, "config.bypass is %u, not 0 or 1", dv.bypass);
    uint64_t features = le64toh(dv.driver_features);
    if (viommu_set_driver_features(n, features) < 0)
        LOAD_FAIL(-EBADMSG, "negotiated features 0x%" PRIx64 " were not offered (0x%" PRIx64 ")",
                  features, v->cfg.features);
    n->bypass = dv.bypass;

    g_autoptr(GArray) attached = g_array_new(FALSE, FALSE, sizeof(pending_ep));
    rc = read_endpoints(n, &r, le32toh(h.n_endpoints), attached, error);
    if (rc < 0)
        return rc;
    rc = read_domains(n, &r, le32toh(h.n_domains), attached, error);
    if (rc < 0)
        return rc;
    if (r.left)
        LOAD_FAIL(-EBADMSG, "%zu bytes after the last record", r.left);
    n->stats.requests = le64toh(dv.requests);
    n->stats.batches = le64toh(dv.batches);
    n->stats.faults = le64toh(dv.faults);
    n->stats.faults_reported = le64toh(dv.faults_reported);
    n->stats.faults_dropped = le64toh(dv.faults_dropped);
    n->stats.listener_failures = le64toh(dv.listener_failures);

    rc = adopt_listeners(v, n, error);
    if (rc < 0)
        return rc;
    return replay_all(n, error);
}

int viommu_load(viommu *v, const void *buf, size_t len, GError **error)
{
    if (!v || (!buf && len))
        LOAD_FAIL(-EINVAL, "no device or no buffer");
    int rc = check_envelope(buf, len, error);
    if (rc < 0)
        return rc;
    if (g_hash_table_size(v->domains))
        LOAD_FAIL(-EBUSY, "the device has attached endpoints; load into a new or reset device");

    GError *cfg_err = NULL;
    viommu *n = viommu_new(&v->cfg, &cfg_err);
    if (!n) {
        /* v was created from this very configuration. */
        g_propagate_error(error, cfg_err);
        return -EINVAL;
    }
    rc = load_into(v, n, buf, len, error);
    if (rc == 0)
        swap_state(v, n);
    /* On failure the half-built state goes without a word to any
     * listener: viommu_free() calls none. */
    viommu_free(n);
    return rc;
}

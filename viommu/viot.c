// SPDX-License-Identifier: MIT
/*
 * viot.c - the ACPI Virtual I/O Translation table (ACPI 6.4, 5.2.30):
 * writer and validating decoder, and the topology check that both this
 * writer and the device-tree writer (fdt.c) run first.
 *
 * The wire structs mirror Linux's include/acpi/actbl3.h field for field;
 * every multi-byte field is little-endian and is converted only when a
 * struct is copied to or from the table bytes.
 */
#include "describe_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

struct acpi_table_header {
    uint8_t signature[4];
    uint32_t length;
    uint8_t revision;
    uint8_t checksum;
    uint8_t oem_id[6];
    uint8_t oem_table_id[8];
    uint32_t oem_revision;
    uint8_t creator_id[4];
    uint32_t creator_revision;
};
_Static_assert(sizeof(struct acpi_table_header) == 36, "ACPI table header");
_Static_assert(offsetof(struct acpi_table_header, checksum) == 9, "checksum");
_Static_assert(offsetof(struct acpi_table_header, oem_revision) == 24, "oem_revision");
_Static_assert(offsetof(struct acpi_table_header, creator_revision) == 32, "creator_revision");

struct acpi_table_viot {
    struct acpi_table_header header;
    uint16_t node_count;
    uint16_t node_offset;
    uint8_t reserved[8];
};
_Static_assert(sizeof(struct acpi_table_viot) == 48, "VIOT header");
_Static_assert(offsetof(struct acpi_table_viot, node_count) == 36, "node_count");
_Static_assert(offsetof(struct acpi_table_viot, node_offset) == 38, "node_offset");

struct acpi_viot_header {
    uint8_t type;
    uint8_t reserved;
    uint16_t length;
};
_Static_assert(sizeof(struct acpi_viot_header) == 4, "VIOT node header");

struct acpi_viot_pci_range {
    struct acpi_viot_header header;
    uint32_t endpoint_start;
    uint16_t segment_start;
    uint16_t segment_end;
    uint16_t bdf_start;
    uint16_t bdf_end;
    uint16_t output_node;
    uint8_t reserved[6];
};
_Static_assert(sizeof(struct acpi_viot_pci_range) == 24, "VIOT PCI range node");
_Static_assert(offsetof(struct acpi_viot_pci_range, bdf_start) == 12, "bdf_start");
_Static_assert(offsetof(struct acpi_viot_pci_range, output_node) == 16, "output_node");

struct acpi_viot_mmio {
    struct acpi_viot_header header;
    uint32_t endpoint;
    uint64_t base_address;
    uint16_t output_node;
    uint8_t reserved[6];
};
_Static_assert(sizeof(struct acpi_viot_mmio) == 24, "VIOT MMIO endpoint node");
_Static_assert(offsetof(struct acpi_viot_mmio, base_address) == 8, "base_address");
_Static_assert(offsetof(struct acpi_viot_mmio, output_node) == 16, "output_node");

struct acpi_viot_virtio_iommu_pci {
    struct acpi_viot_header header;
    uint16_t segment;
    uint16_t bdf;
    uint8_t reserved[8];
};
_Static_assert(sizeof(struct acpi_viot_virtio_iommu_pci) == 16, "VIOT virtio-pci IOMMU node");
_Static_assert(offsetof(struct acpi_viot_virtio_iommu_pci, bdf) == 6, "bdf");

struct acpi_viot_virtio_iommu_mmio {
    struct acpi_viot_header header;
    uint8_t reserved[4];
    uint64_t base_address;
};
_Static_assert(sizeof(struct acpi_viot_virtio_iommu_mmio) == 16, "VIOT virtio-mmio IOMMU node");
_Static_assert(offsetof(struct acpi_viot_virtio_iommu_mmio, base_address) == 8, "base_address");

/* ------------------------------------------------------------------ */
/* Topology                                                            */
/* ------------------------------------------------------------------ */

/* An inclusive interval with the index of the topology item it came from. */
struct span {
    uint64_t first;
    uint64_t last;
    size_t item;
};

static int span_cmp(const void *a, const void *b)
{
    const struct span *x = a, *y = b;

    if (x->first != y->first)
        return x->first < y->first ? -1 : 1;
    return x->last < y->last ? -1 : x->last > y->last;
}

/*
 * Sorts @spans and returns the index (in @spans) of the second of the
 * first overlapping pair, or 0 when none overlap: sorting turns an
 * O(n^2) pairwise check into one pass, which matters at 64k endpoints.
 */
static size_t spans_first_overlap(struct span *spans, size_t n)
{
    qsort(spans, n, sizeof(*spans), span_cmp);
    for (size_t i = 1; i < n; i++)
        if (spans[i].first <= spans[i - 1].last)
            return i;
    return 0;
}

static int fail(GError **error, int err, const char *fmt, ...) G_GNUC_PRINTF(3, 4);

static int fail(GError **error, int err, const char *fmt, ...)
{
    va_list ap;

    if (error) {
        va_start(ap, fmt);
        g_autofree char *msg = g_strdup_vprintf(fmt, ap);
        va_end(ap);
        g_set_error_literal(error, G_FILE_ERROR, g_file_error_from_errno(-err), msg);
    }
    return err;
}

/* Describes endpoint-ID span @s for an error message. */
static char *endpoint_owner(const struct viommu_topology *topo, const struct span *s)
{
    if (s->item < topo->n_pci_ranges) {
        const struct viommu_pci_range *r = &topo->pci_ranges[s->item];
        return g_strdup_printf("PCI range %04x:%04x-%04x", r->segment, r->bdf_first, r->bdf_last);
    }
    return g_strdup_printf("MMIO endpoint 0x%" PRIx64,
                           topo->mmio_endpoints[s->item - topo->n_pci_ranges].base);
}

int viommu_topology_check(const struct viommu_topology *topo, GError **error)
{
    size_t n_eps, i, bad;
    g_autofree struct span *spans = NULL;

    if (!topo)
        return fail(error, -EINVAL, "no topology given");
    if ((topo->n_pci_ranges && !topo->pci_ranges) ||
        (topo->n_mmio_endpoints && !topo->mmio_endpoints))
        return fail(error, -EINVAL, "an endpoint count is given without its array");

    switch (topo->transport) {
    case VIOMMU_TRANSPORT_PCI:
        break;
    case VIOMMU_TRANSPORT_MMIO: {
        uint64_t size = viommu_topology_mmio_size(topo);

        if (topo->mmio_base > UINT64_MAX - (size - 1))
            return fail(error, -EINVAL,
                        "the virtio-iommu MMIO window 0x%" PRIx64 " + 0x%" PRIx64
                        " runs past the end of the address space",
                        topo->mmio_base, size);
        if (topo->mmio_irq_cells > VIOMMU_DESCRIBE_MAX_IRQ_CELLS)
            return fail(error, -EINVAL, "%u interrupt cells given, at most %d are supported",
                        topo->mmio_irq_cells, VIOMMU_DESCRIBE_MAX_IRQ_CELLS);
        break;
    }
    default:
        return fail(error, -EINVAL, "unknown virtio-iommu transport %d", (int)topo->transport);
    }

    /* The virtio-iommu node takes one of the 65535 nodes node_count can count. */
    if (topo->n_pci_ranges > VIOMMU_VIOT_MAX_NODES - 1 ||
        topo->n_mmio_endpoints > VIOMMU_VIOT_MAX_NODES - 1 - topo->n_pci_ranges)
        return fail(error, -E2BIG,
                    "%zu PCI ranges and %zu MMIO endpoints do not fit in a VIOT table "
                    "(at most %d nodes besides the virtio-iommu)",
                    topo->n_pci_ranges, topo->n_mmio_endpoints, VIOMMU_VIOT_MAX_NODES - 1);

    n_eps = topo->n_pci_ranges + topo->n_mmio_endpoints;
    spans = g_new(struct span, n_eps ? n_eps : 1);

    /* Requester IDs: one span per range, keyed by segment so segments never collide. */
    for (i = 0; i < topo->n_pci_ranges; i++) {
        const struct viommu_pci_range *r = &topo->pci_ranges[i];
        uint64_t key = (uint64_t)r->segment << 16;

        if (r->bdf_first > r->bdf_last)
            return fail(error, -EINVAL, "PCI range %04x:%04x-%04x ends before it starts",
                        r->segment, r->bdf_first, r->bdf_last);
        if ((uint64_t)r->endpoint_first + (r->bdf_last - r->bdf_first) > UINT32_MAX)
            return fail(error, -EINVAL,
                        "PCI range %04x:%04x-%04x: endpoint IDs from 0x%x run past 0xffffffff",
                        r->segment, r->bdf_first, r->bdf_last, r->endpoint_first);
        spans[i] = (struct span){key | r->bdf_first, key | r->bdf_last, i};
    }
    bad = spans_first_overlap(spans, topo->n_pci_ranges);
    if (bad) {
        const struct viommu_pci_range *a = &topo->pci_ranges[spans[bad - 1].item];
        const struct viommu_pci_range *b = &topo->pci_ranges[spans[bad].item];
        return fail(error, -EINVAL, "PCI ranges %04x:%04x-%04x and %04x:%04x-%04x overlap",
                    a->segment, a->bdf_first, a->bdf_last, b->segment, b->bdf_first, b->bdf_last);
    }

    for (i = 0; i < topo->n_mmio_endpoints; i++) {
        uint64_t base = topo->mmio_endpoints[i].base;

        /* The virtio-iommu never translates its own accesses. */
        if (topo->transport == VIOMMU_TRANSPORT_MMIO && base >= topo->mmio_base &&
            base - topo->mmio_base < viommu_topology_mmio_size(topo))
            return fail(error, -EINVAL,
                        "MMIO endpoint 0x%" PRIx64 " lies in the virtio-iommu's own window", base);
        spans[i] = (struct span){base, base, i};
    }
    bad = spans_first_overlap(spans, topo->n_mmio_endpoints);
    if (bad)
        return fail(error, -EINVAL, "two MMIO endpoints have base address 0x%" PRIx64,
                    spans[bad].first);

    /* Endpoint IDs: each endpoint is one endpoint of the virtio-iommu, never two. */
    for (i = 0; i < topo->n_pci_ranges; i++) {
        const struct viommu_pci_range *r = &topo->pci_ranges[i];
        spans[i] = (struct span){r->endpoint_first,
                                 (uint64_t)r->endpoint_first + (r->bdf_last - r->bdf_first), i};
    }
    for (i = 0; i < topo->n_mmio_endpoints; i++) {
        uint32_t id = topo->mmio_endpoints[i].endpoint;
        spans[topo->n_pci_ranges + i] = (struct span){id, id, topo->n_pci_ranges + i};
    }
    bad = spans_first_overlap(spans, n_eps);
    if (bad) {
        g_autofree char *a = endpoint_owner(topo, &spans[bad - 1]);
        g_autofree char *b = endpoint_owner(topo, &spans[bad]);
        return fail(error, -EINVAL, "%s and %s share endpoint ID 0x%" PRIx64, a, b,
                    spans[bad].first);
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Writer                                                              */
/* ------------------------------------------------------------------ */

/* The virtio-iommu node always comes first, right after the header. */
#define VIOT_IOMMU_OFFSET ((uint16_t)sizeof(struct acpi_table_viot))

static const struct viommu_acpi_ids default_ids = {
    .oem_id = {'V', 'I', 'O', 'M', 'M', 'U'},
    .oem_table_id = {'V', 'I', 'O', 'M', 'M', 'U', ' ', ' '},
    .oem_revision = 1,
    .creator_id = {'V', 'I', 'O', 'M'},
    .creator_revision = 1,
};

static uint8_t viot_sum(const uint8_t *p, size_t n)
{
    uint8_t sum = 0;

    while (n--)
        sum += *p++;
    return sum;
}

static struct acpi_viot_header node_header(uint8_t type, size_t length)
{
    return (struct acpi_viot_header){.type = type, .length = GUINT16_TO_LE((uint16_t)length)};
}

int viommu_viot_build(const struct viommu_topology *topo, const struct viommu_acpi_ids *ids,
                      void *buf, size_t bufsize, size_t *len)
{
    size_t total, i, n_nodes;
    uint8_t *p = buf;
    int ret;

    if (!len)
        return -EINVAL;
    ret = viommu_topology_check(topo, NULL);
    if (ret)
        return ret;
    if (!ids)
        ids = &default_ids;

    n_nodes = 1 + topo->n_pci_ranges + topo->n_mmio_endpoints;
    total = sizeof(struct acpi_table_viot) + sizeof(struct acpi_viot_virtio_iommu_pci) +
            topo->n_pci_ranges * sizeof(struct acpi_viot_pci_range) +
            topo->n_mmio_endpoints * sizeof(struct acpi_viot_mmio);
    *len = total;
    if (bufsize < total || !buf)
        return -ENOSPC;

    struct acpi_table_viot hdr = {
        .header.length = GUINT32_TO_LE((uint32_t)total),
        .header.revision = 0,
        .header.oem_revision = GUINT32_TO_LE(ids->oem_revision),
        .header.creator_revision = GUINT32_TO_LE(ids->creator_revision),
        .node_count = GUINT16_TO_LE((uint16_t)n_nodes),
        .node_offset = GUINT16_TO_LE(VIOT_IOMMU_OFFSET),
    };
    memcpy(hdr.header.signature, "VIOT", 4);
    memcpy(hdr.header.oem_id, ids->oem_id, sizeof(hdr.header.oem_id));
    memcpy(hdr.header.oem_table_id, ids->oem_table_id, sizeof(hdr.header.oem_table_id));
    memcpy(hdr.header.creator_id, ids->creator_id, sizeof(hdr.header.creator_id));
    memcpy(p, &hdr, sizeof(hdr));
    p += sizeof(hdr);

    if (topo->transport == VIOMMU_TRANSPORT_PCI) {
        struct acpi_viot_virtio_iommu_pci n = {
            .header = node_header(VIOMMU_VIOT_NODE_VIRTIO_IOMMU_PCI, sizeof(n)),
            .segment = GUINT16_TO_LE(topo->pci_segment),
            .bdf = GUINT16_TO_LE(topo->pci_bdf),
        };
        memcpy(p, &n, sizeof(n));
        p += sizeof(n);
    } else {
        struct acpi_viot_virtio_iommu_mmio n = {
            .header = node_header(VIOMMU_VIOT_NODE_VIRTIO_IOMMU_MMIO, sizeof(n)),
            .base_address = GUINT64_TO_LE(topo->mmio_base),
        };
        memcpy(p, &n, sizeof(n));
        p += sizeof(n);
    }

    for (i = 0; i < topo->n_pci_ranges; i++) {
        const struct viommu_pci_range *r = &topo->pci_ranges[i];
        struct acpi_viot_pci_range n = {
            .header = node_header(VIOMMU_VIOT_NODE_PCI_RANGE, sizeof(n)),
            .endpoint_start = GUINT32_TO_LE(r->endpoint_first),
            .segment_start = GUINT16_TO_LE(r->segment),
            .segment_end = GUINT16_TO_LE(r->segment),
            .bdf_start = GUINT16_TO_LE(r->bdf_first),
            .bdf_end = GUINT16_TO_LE(r->bdf_last),
            .output_node = GUINT16_TO_LE(VIOT_IOMMU_OFFSET),
        };
        memcpy(p, &n, sizeof(n));
        p += sizeof(n);
    }

    for (i = 0; i < topo->n_mmio_endpoints; i++) {
        const struct viommu_mmio_endpoint *e = &topo->mmio_endpoints[i];
        struct acpi_viot_mmio n = {
            .header = node_header(VIOMMU_VIOT_NODE_MMIO_ENDPOINT, sizeof(n)),
            .endpoint = GUINT32_TO_LE(e->endpoint),
            .base_address = GUINT64_TO_LE(e->base),
            .output_node = GUINT16_TO_LE(VIOT_IOMMU_OFFSET),
        };
        memcpy(p, &n, sizeof(n));
        p += sizeof(n);
    }

    ((uint8_t *)buf)[offsetof(struct acpi_table_header, checksum)] =
        (uint8_t)(0x100 - viot_sum(buf, total));
    return 0;
}

/* ------------------------------------------------------------------ */
/* Decoder                                                             */
/* ------------------------------------------------------------------ */

static int bad(GError **error, int err, const char *fmt, ...) G_GNUC_PRINTF(3, 4);

static int bad(GError **error, int err, const char *fmt, ...)
{
    va_list ap;

    if (error) {
        va_start(ap, fmt);
        g_autofree char *msg = g_strdup_vprintf(fmt, ap);
        va_end(ap);
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(-err), "invalid VIOT table: %s",
                    msg);
    }
    return err;
}

static bool all_zero(const uint8_t *p, size_t n)
{
    while (n--)
        if (*p++)
            return false;
    return true;
}

static void copy_id(char *dst, const uint8_t *src, size_t n)
{
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* Exact length of each known node type; 0 for unknown types. */
static size_t node_type_length(uint8_t type)
{
    switch (type) {
    case VIOMMU_VIOT_NODE_PCI_RANGE:
        return sizeof(struct acpi_viot_pci_range);
    case VIOMMU_VIOT_NODE_MMIO_ENDPOINT:
        return sizeof(struct acpi_viot_mmio);
    case VIOMMU_VIOT_NODE_VIRTIO_IOMMU_PCI:
        return sizeof(struct acpi_viot_virtio_iommu_pci);
    case VIOMMU_VIOT_NODE_VIRTIO_IOMMU_MMIO:
        return sizeof(struct acpi_viot_virtio_iommu_mmio);
    default:
        return 0;
    }
}

/* Decodes the fixed-size node of a known type at @p (its length already checked). */
static int decode_node(const uint8_t *p, struct viommu_viot_node *node, uint16_t *output,
                       GError **error)
{
    switch (node->type) {
    case VIOMMU_VIOT_NODE_PCI_RANGE: {
        struct acpi_viot_pci_range n;

        memcpy(&n, p, sizeof(n));
        node->u.pci_range.endpoint_start = GUINT32_FROM_LE(n.endpoint_start);
        node->u.pci_range.segment_start = GUINT16_FROM_LE(n.segment_start);
        node->u.pci_range.segment_end = GUINT16_FROM_LE(n.segment_end);
        node->u.pci_range.bdf_start = GUINT16_FROM_LE(n.bdf_start);
        node->u.pci_range.bdf_end = GUINT16_FROM_LE(n.bdf_end);
        *output = GUINT16_FROM_LE(n.output_node);
        if (!all_zero(n.reserved, sizeof(n.reserved)))
            return bad(error, -EINVAL, "PCI range node at 0x%x: reserved bytes are not 0",
                       node->offset);
        if (node->u.pci_range.segment_start > node->u.pci_range.segment_end ||
            node->u.pci_range.bdf_start > node->u.pci_range.bdf_end)
            return bad(error, -EINVAL, "PCI range node at 0x%x ends before it starts",
                       node->offset);
        /* Linux numbers the IDs segment by segment: (seg - start) << 16 + bdf - bdf_start. */
        uint64_t last_id =
            (uint64_t)node->u.pci_range.endpoint_start +
            ((uint64_t)(node->u.pci_range.segment_end - node->u.pci_range.segment_start) << 16) +
            (node->u.pci_range.bdf_end - node->u.pci_range.bdf_start);
        if (last_id > UINT32_MAX)
            return bad(error, -EINVAL, "PCI range node at 0x%x: endpoint IDs run past 0xffffffff",
                       node->offset);
        return 0;
    }
    case VIOMMU_VIOT_NODE_MMIO_ENDPOINT: {
        struct acpi_viot_mmio n;

        memcpy(&n, p, sizeof(n));
        node->u.mmio_endpoint.endpoint = GUINT32_FROM_LE(n.endpoint);
        node->u.mmio_endpoint.base = GUINT64_FROM_LE(n.base_address);
        *output = GUINT16_FROM_LE(n.output_node);
        if (!all_zero(n.reserved, sizeof(n.reserved)))
            return bad(error, -EINVAL, "MMIO endpoint node at 0x%x: reserved bytes are not 0",
                       node->offset);
        return 0;
    }
    case VIOMMU_VIOT_NODE_VIRTIO_IOMMU_PCI: {
        struct acpi_viot_virtio_iommu_pci n;

        memcpy(&n, p, sizeof(n));
        node->u.virtio_pci.segment = GUINT16_FROM_LE(n.segment);
        node->u.virtio_pci.bdf = GUINT16_FROM_LE(n.bdf);
        if (!all_zero(n.reserved, sizeof(n.reserved)))
            return bad(error, -EINVAL, "virtio-pci IOMMU node at 0x%x: reserved bytes are not 0",
                       node->offset);
        return 0;
    }
    case VIOMMU_VIOT_NODE_VIRTIO_IOMMU_MMIO: {
        struct acpi_viot_virtio_iommu_mmio n;

        memcpy(&n, p, sizeof(n));
        node->u.virtio_mmio.base = GUINT64_FROM_LE(n.base_address);
        if (!all_zero(n.reserved, sizeof(n.reserved)))
            return bad(error, -EINVAL, "virtio-mmio IOMMU node at 0x%x: reserved bytes are not 0",
                       node->offset);
        return 0;
    }
    default:
        return 0;
    }
}

static bool is_iommu_node(const struct viommu_viot_node *n)
{
    return n->type == VIOMMU_VIOT_NODE_VIRTIO_IOMMU_PCI ||
           n->type == VIOMMU_VIOT_NODE_VIRTIO_IOMMU_MMIO;
}

/* Index of the node starting at @offset (nodes are in ascending offset order), or -1. */
static ssize_t node_at(const struct viommu_viot *v, uint32_t offset)
{
    size_t lo = 0, hi = v->n_nodes;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (v->nodes[mid].offset == offset)
            return (ssize_t)mid;
        if (v->nodes[mid].offset < offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

int viommu_viot_decode(const void *table, size_t size, struct viommu_viot **out, GError **error)
{
    const uint8_t *bytes = table;
    struct acpi_table_viot hdr;
    struct viommu_viot *v;
    uint16_t *outputs;
    uint32_t off;
    size_t i;
    int ret;

    if (!table || !out)
        return bad(error, -EINVAL, "no table given");
    if (size < sizeof(struct acpi_table_header))
        return bad(error, -EINVAL, "%zu bytes is shorter than an ACPI table header (36)", size);
    memcpy(&hdr, bytes, sizeof(struct acpi_table_header));
    if (memcmp(hdr.header.signature, "VIOT", 4))
        return bad(error, -EINVAL, "the signature is not \"VIOT\"");
    uint32_t length = GUINT32_FROM_LE(hdr.header.length);
    if (length != size)
        return bad(error, -EINVAL, "the header says %" PRIu32 " bytes, the table has %zu", length,
                   size);
    if (length < sizeof(hdr))
        return bad(error, -EINVAL, "%" PRIu32 " bytes is shorter than the VIOT header (48)",
                   length);
    memcpy(&hdr, bytes, sizeof(hdr));
    if (viot_sum(bytes, length))
        return bad(error, -EINVAL, "the checksum is wrong (bytes sum to 0x%02x, not 0)",
                   viot_sum(bytes, length));
    if (hdr.header.revision != 0)
        return bad(error, -ENOTSUP, "revision %u is not supported (only 0)", hdr.header.revision);
    if (!all_zero(hdr.reserved, sizeof(hdr.reserved)))
        return bad(error, -EINVAL, "the header's reserved bytes are not 0");

    uint16_t node_count = GUINT16_FROM_LE(hdr.node_count);
    uint16_t node_offset = GUINT16_FROM_LE(hdr.node_offset);
    if (node_count && (node_offset < sizeof(hdr) || node_offset > length))
        return bad(error, -EINVAL, "node_offset 0x%x is outside the node area [0x30, 0x%x]",
                   node_offset, length);

    v = g_new0(struct viommu_viot, 1);
    v->length = length;
    v->revision = hdr.header.revision;
    v->checksum = hdr.header.checksum;
    copy_id(v->oem_id, hdr.header.oem_id, sizeof(hdr.header.oem_id));
    copy_id(v->oem_table_id, hdr.header.oem_table_id, sizeof(hdr.header.oem_table_id));
    v->oem_revision = GUINT32_FROM_LE(hdr.header.oem_revision);
    copy_id(v->creator_id, hdr.header.creator_id, sizeof(hdr.header.creator_id));
    v->creator_revision = GUINT32_FROM_LE(hdr.header.creator_revision);
    v->node_offset = node_offset;
    v->nodes = g_new0(struct viommu_viot_node, node_count ? node_count : 1);
    outputs = g_new0(uint16_t, node_count ? node_count : 1);

    /* Nodes follow one another; each one's length is checked before the next is read. */
    off = node_count ? node_offset : (uint32_t)sizeof(hdr);
    for (i = 0; i < node_count; i++) {
        struct viommu_viot_node *node = &v->nodes[i];
        struct acpi_viot_header nh;
        size_t want;

        if (length - off < sizeof(nh)) {
            ret = bad(error, -EINVAL, "node %zu of %u at 0x%x runs past the end (0x%x)", i,
                      node_count, off, length);
            goto fail_free;
        }
        memcpy(&nh, bytes + off, sizeof(nh));
        node->offset = off;
        node->type = nh.type;
        node->length = GUINT16_FROM_LE(nh.length);
        if (node->length < sizeof(nh) || node->length > length - off) {
            ret = bad(error, -EINVAL, "node at 0x%x has length %u, outside [4, 0x%x]", off,
                      node->length, length - off);
            goto fail_free;
        }
        want = node_type_length(nh.type);
        if (want && node->length != want) {
            ret = bad(error, -EINVAL, "node at 0x%x of type %u has length %u, not %zu", off,
                      nh.type, node->length, want);
            goto fail_free;
        }
        if (want && nh.reserved) {
            ret = bad(error, -EINVAL, "node at 0x%x: reserved header byte is not 0", off);
            goto fail_free;
        }
        ret = decode_node(bytes + off, node, &outputs[i], error);
        if (ret)
            goto fail_free;
        off += node->length;
        v->n_nodes++;
    }
    if (off != length) {
        ret = bad(error, -EINVAL, "%u bytes follow the last node", length - off);
        goto fail_free;
    }

    for (i = 0; i < v->n_nodes; i++) {
        struct viommu_viot_node *node = &v->nodes[i];
        size_t *target;
        ssize_t idx;

        if (node->type == VIOMMU_VIOT_NODE_PCI_RANGE)
            target = &node->u.pci_range.output_node;
        else if (node->type == VIOMMU_VIOT_NODE_MMIO_ENDPOINT)
            target = &node->u.mmio_endpoint.output_node;
        else
            continue;
        idx = node_at(v, outputs[i]);
        if (idx < 0 || !is_iommu_node(&v->nodes[idx])) {
            ret = bad(error, -EINVAL,
                      "the endpoint node at 0x%x points at 0x%x, which is not a virtio-iommu "
                      "node",
                      node->offset, outputs[i]);
            goto fail_free;
        }
        *target = (size_t)idx;
    }

    g_free(outputs);
    *out = v;
    return 0;

fail_free:
    g_free(outputs);
    viommu_viot_free(v);
    return ret;
}

void viommu_viot_free(struct viommu_viot *viot)
{
    if (!viot)
        return;
    g_free(viot->nodes);
    g_free(viot);
}

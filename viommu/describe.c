// SPDX-License-Identifier: MIT
/*
 * describe.c - topology validation shared by the device-tree and VIOT
 * writers.
 */
#include "describe_internal.h"

#include <errno.h>
#include <stdlib.h>

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

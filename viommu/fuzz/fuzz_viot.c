// SPDX-License-Identifier: MIT
/*
 * fuzz_viot.c - libFuzzer target for the VIOT decoder. A table that
 * decodes must satisfy the decoder's promises (every node inside the
 * table, endpoints pointing at virtio-iommu nodes), and a table in the
 * layout the writer produces must be rebuilt byte for byte from what
 * was decoded.
 */
#include <stdlib.h>
#include <string.h>

#include "viommu.h"

/* Rebuilds @v through the writer when it has the writer's layout; compares with @data. */
static void check_round_trip(const struct viommu_viot *v, const uint8_t *data, size_t size)
{
    struct viommu_topology t = {0};
    struct viommu_acpi_ids ids;
    struct viommu_pci_range *ranges;
    struct viommu_mmio_endpoint *eps;
    size_t n_ranges = 0, n_eps = 0, len;
    uint8_t *out;

    if (v->n_nodes == 0 || v->node_offset != 48 || v->nodes[0].offset != 48)
        return;
    if (v->nodes[0].type == VIOMMU_VIOT_NODE_VIRTIO_IOMMU_PCI) {
        t.transport = VIOMMU_TRANSPORT_PCI;
        t.pci_segment = v->nodes[0].u.virtio_pci.segment;
        t.pci_bdf = v->nodes[0].u.virtio_pci.bdf;
    } else if (v->nodes[0].type == VIOMMU_VIOT_NODE_VIRTIO_IOMMU_MMIO) {
        t.transport = VIOMMU_TRANSPORT_MMIO;
        t.mmio_base = v->nodes[0].u.virtio_mmio.base;
    } else {
        return;
    }
    ranges = calloc(v->n_nodes, sizeof(*ranges));
    eps = calloc(v->n_nodes, sizeof(*eps));
    if (!ranges || !eps)
        goto out;
    /* The writer puts every range before every MMIO endpoint, all pointing at node 0. */
    for (size_t i = 1; i < v->n_nodes; i++) {
        const struct viommu_viot_node *n = &v->nodes[i];

        if (n->type == VIOMMU_VIOT_NODE_PCI_RANGE && n_eps == 0 &&
            n->u.pci_range.output_node == 0 &&
            n->u.pci_range.segment_start == n->u.pci_range.segment_end)
            ranges[n_ranges++] = (struct viommu_pci_range){
                .segment = n->u.pci_range.segment_start,
                .bdf_first = n->u.pci_range.bdf_start,
                .bdf_last = n->u.pci_range.bdf_end,
                .endpoint_first = n->u.pci_range.endpoint_start,
            };
        else if (n->type == VIOMMU_VIOT_NODE_MMIO_ENDPOINT && n->u.mmio_endpoint.output_node == 0)
            eps[n_eps++] = (struct viommu_mmio_endpoint){.base = n->u.mmio_endpoint.base,
                                                         .endpoint = n->u.mmio_endpoint.endpoint};
        else
            goto out;
    }
    t.pci_ranges = ranges;
    t.n_pci_ranges = n_ranges;
    t.mmio_endpoints = eps;
    t.n_mmio_endpoints = n_eps;
    if (viommu_topology_check(&t, NULL) != 0)
        goto out;

    memcpy(ids.oem_id, v->oem_id, sizeof(ids.oem_id));
    memcpy(ids.oem_table_id, v->oem_table_id, sizeof(ids.oem_table_id));
    memcpy(ids.creator_id, v->creator_id, sizeof(ids.creator_id));
    ids.oem_revision = v->oem_revision;
    ids.creator_revision = v->creator_revision;
    out = malloc(size);
    if (!out)
        goto out;
    if (viommu_viot_build(&t, &ids, out, size, &len) != 0 || len != size ||
        memcmp(out, data, size) != 0)
        abort();
    free(out);
out:
    free(ranges);
    free(eps);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct viommu_viot *v = NULL;

    if (viommu_viot_decode(data, size, &v, NULL) != 0) {
        if (v)
            abort();
        return 0;
    }
    if (v->length != size)
        abort();
    for (size_t i = 0; i < v->n_nodes; i++) {
        const struct viommu_viot_node *n = &v->nodes[i];
        size_t target = SIZE_MAX;

        if (n->offset < 48 || n->length < 4 || n->offset + (size_t)n->length > size)
            abort();
        if (i > 0 && n->offset < v->nodes[i - 1].offset + (size_t)v->nodes[i - 1].length)
            abort();
        if (n->type == VIOMMU_VIOT_NODE_PCI_RANGE)
            target = n->u.pci_range.output_node;
        else if (n->type == VIOMMU_VIOT_NODE_MMIO_ENDPOINT)
            target = n->u.mmio_endpoint.output_node;
        if (target != SIZE_MAX &&
            (target >= v->n_nodes || (v->nodes[target].type != VIOMMU_VIOT_NODE_VIRTIO_IOMMU_PCI &&
                                      v->nodes[target].type != VIOMMU_VIOT_NODE_VIRTIO_IOMMU_MMIO)))
            abort();
    }
    check_round_trip(v, data, size);
    viommu_viot_free(v);
    return 0;
}

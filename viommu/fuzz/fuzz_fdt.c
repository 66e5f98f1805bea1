// SPDX-License-Identifier: MIT
/*
 * fuzz_fdt.c - libFuzzer target for viommu_fdt_add() on arbitrary blobs.
 * The first input byte picks a topology, the rest is the caller's blob.
 * A refusal must leave the buffer exactly as it was; a success must
 * leave a valid tree holding the virtio-iommu's #iommu-cells.
 */
#include <stdlib.h>
#include <string.h>

#include <libfdt.h>

#include "viommu.h"

static const struct viommu_pci_range ranges[] = {
    {.segment = 0, .bdf_first = 0x0000, .bdf_last = 0x00ff, .endpoint_first = 0},
    {.segment = 1, .bdf_first = 0x0008, .bdf_last = 0x0010, .endpoint_first = 0x10008},
};
static const struct viommu_mmio_endpoint eps[] = {
    {.base = 0xa003c00, .endpoint = 0x20000},
    {.base = 0xa003a00, .endpoint = 0x20001},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct viommu_topology t = {0};
    uint8_t pick, *buf, *before;
    size_t bufsize;
    uint32_t phandle = 0;
    int ret;

    if (size < 1)
        return 0;
    pick = data[0];
    data++;
    size--;
    if (pick & 1) {
        t.transport = VIOMMU_TRANSPORT_MMIO;
        t.mmio_base = 0xa003e00;
        t.mmio_irq[0] = 0;
        t.mmio_irq[1] = 0x2f;
        t.mmio_irq[2] = 1;
        t.mmio_irq_cells = (pick & 2) ? 3 : 0;
        t.mmio_dma_coherent = true;
    } else {
        t.transport = VIOMMU_TRANSPORT_PCI;
        t.pci_bdf = (pick & 2) ? 0x0010 : 0x0100;
    }
    t.pci_ranges = ranges;
    t.n_pci_ranges = (pick >> 2) & 3;
    if (t.n_pci_ranges > 2)
        t.n_pci_ranges = 2;
    t.mmio_endpoints = eps;
    t.n_mmio_endpoints = (pick >> 4) & 3;
    if (t.n_mmio_endpoints > 2)
        t.n_mmio_endpoints = 2;

    /* Room to grow, and an exact fit, by the top bit. */
    bufsize = (pick & 0x80) ? size : size + 1024;
    buf = calloc(1, bufsize ? bufsize : 1);
    before = calloc(1, bufsize ? bufsize : 1);
    if (!buf || !before)
        goto out;
    memcpy(buf, data, size);
    memcpy(before, buf, bufsize);

    ret = viommu_fdt_add(buf, bufsize, &t, &phandle);
    if (ret != 0) {
        if (memcmp(buf, before, bufsize) != 0)
            abort();
    } else {
        int node = fdt_node_offset_by_phandle(buf, phandle);

        if (fdt_check_full(buf, bufsize) != 0 || node < 0 ||
            !fdt_getprop(buf, node, "#iommu-cells", NULL))
            abort();
    }
out:
    free(buf);
    free(before);
    return 0;
}

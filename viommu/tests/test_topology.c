// SPDX-License-Identifier: MIT
/*
 * test_topology.c - topology validation, the rules both writers rely on.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include <glib.h>

#include "viommu.h"

/* Checks @t expecting @err and, on failure, a message mentioning @what. */
static void assert_check(const struct viommu_topology *t, int err, const char *what)
{
    GError *error = NULL;

    cr_assert_eq(viommu_topology_check(t, &error), err, "expected %d", err);
    if (err == 0) {
        cr_assert_null(error);
        return;
    }
    cr_assert_not_null(error);
    cr_assert(strstr(error->message, what) != NULL, "'%s' does not mention '%s'", error->message,
              what);
    g_error_free(error);
}

Test(viommu_topology, accepts_the_q35_topology)
{
    struct viommu_pci_range r = {.bdf_first = 0, .bdf_last = 0xff};
    struct viommu_topology t = {
        .transport = VIOMMU_TRANSPORT_PCI, .pci_bdf = 0x10, .pci_ranges = &r, .n_pci_ranges = 1};

    assert_check(&t, 0, NULL);
}

Test(viommu_topology, rejects_an_unknown_transport_and_a_missing_topology)
{
    struct viommu_topology t = {.transport = 7};

    assert_check(&t, -EINVAL, "transport 7");
    assert_check(NULL, -EINVAL, "no topology");
    cr_assert_eq(viommu_topology_check(NULL, NULL), -EINVAL);
}

Test(viommu_topology, rejects_a_count_without_its_array)
{
    struct viommu_topology t = {.transport = VIOMMU_TRANSPORT_PCI, .n_mmio_endpoints = 1};

    assert_check(&t, -EINVAL, "without its array");
}

Test(viommu_topology, rejects_an_mmio_window_past_the_end_of_the_address_space)
{
    struct viommu_topology t = {.transport = VIOMMU_TRANSPORT_MMIO,
                                .mmio_base = UINT64_MAX - 0x1fe};

    assert_check(&t, -EINVAL, "runs past the end");
    t.mmio_base = UINT64_MAX - 0x1ff;
    assert_check(&t, 0, NULL);
    t.mmio_size = UINT64_MAX;
    assert_check(&t, -EINVAL, "runs past the end");
}

Test(viommu_topology, rejects_more_interrupt_cells_than_supported)
{
    struct viommu_topology t = {.transport = VIOMMU_TRANSPORT_MMIO,
                                .mmio_base = 0x1000,
                                .mmio_irq_cells = VIOMMU_DESCRIBE_MAX_IRQ_CELLS + 1};

    assert_check(&t, -EINVAL, "interrupt cells");
}

Test(viommu_topology, rejects_a_reversed_pci_range)
{
    struct viommu_pci_range r = {.segment = 3, .bdf_first = 0x20, .bdf_last = 0x1f};
    struct viommu_topology t = {
        .transport = VIOMMU_TRANSPORT_PCI, .pci_ranges = &r, .n_pci_ranges = 1};

    assert_check(&t, -EINVAL, "0003:0020-001f ends before it starts");
}

Test(viommu_topology, rejects_endpoint_ids_past_32_bits)
{
    struct viommu_pci_range r = {.bdf_first = 0, .bdf_last = 1, .endpoint_first = UINT32_MAX};
    struct viommu_topology t = {
        .transport = VIOMMU_TRANSPORT_PCI, .pci_ranges = &r, .n_pci_ranges = 1};

    assert_check(&t, -EINVAL, "run past 0xffffffff");
    r.bdf_last = 0;
    assert_check(&t, 0, NULL);
}

Test(viommu_topology, rejects_pci_ranges_sharing_a_requester_id_only_within_a_segment)
{
    struct viommu_pci_range r[] = {
        {.segment = 0, .bdf_first = 0x00, .bdf_last = 0xff, .endpoint_first = 0},
        {.segment = 1, .bdf_first = 0x00, .bdf_last = 0xff, .endpoint_first = 0x10000},
        {.segment = 0, .bdf_first = 0xff, .bdf_last = 0x100, .endpoint_first = 0x20000},
    };
    struct viommu_topology t = {
        .transport = VIOMMU_TRANSPORT_PCI, .pci_ranges = r, .n_pci_ranges = 2};

    assert_check(&t, 0, NULL);
    t.n_pci_ranges = 3;
    assert_check(&t, -EINVAL, "0000:0000-00ff and 0000:00ff-0100 overlap");
}

Test(viommu_topology, rejects_two_mmio_endpoints_at_one_address)
{
    struct viommu_mmio_endpoint e[] = {{.base = 0x1000, .endpoint = 1},
                                       {.base = 0x2000, .endpoint = 2},
                                       {.base = 0x1000, .endpoint = 3}};
    struct viommu_topology t = {
        .transport = VIOMMU_TRANSPORT_PCI, .mmio_endpoints = e, .n_mmio_endpoints = 3};

    assert_check(&t, -EINVAL, "two MMIO endpoints have base address 0x1000");
}

Test(viommu_topology, rejects_an_mmio_endpoint_inside_the_iommu_window)
{
    struct viommu_mmio_endpoint e = {.base = 0xa003fff, .endpoint = 1};
    struct viommu_topology t = {.transport = VIOMMU_TRANSPORT_MMIO,
                                .mmio_base = 0xa003e00,
                                .mmio_endpoints = &e,
                                .n_mmio_endpoints = 1};

    assert_check(&t, -EINVAL, "own window");
    e.base = 0xa004000;
    assert_check(&t, 0, NULL);
}

Test(viommu_topology, rejects_an_endpoint_id_given_twice)
{
    struct viommu_pci_range r = {.bdf_first = 0x10, .bdf_last = 0x1f, .endpoint_first = 0x10};
    struct viommu_mmio_endpoint e = {.base = 0xa000000, .endpoint = 0x1f};
    struct viommu_topology t = {.transport = VIOMMU_TRANSPORT_PCI,
                                .pci_ranges = &r,
                                .n_pci_ranges = 1,
                                .mmio_endpoints = &e,
                                .n_mmio_endpoints = 1};

    assert_check(&t, -EINVAL,
                 "PCI range 0000:0010-001f and MMIO endpoint 0xa000000 share "
                 "endpoint ID 0x1f");
    e.endpoint = 0x20;
    assert_check(&t, 0, NULL);
}

Test(viommu_topology, rejects_more_endpoints_than_a_viot_table_holds)
{
    size_t n = 65535;
    g_autofree struct viommu_pci_range *r = g_new0(struct viommu_pci_range, n);
    struct viommu_topology t = {
        .transport = VIOMMU_TRANSPORT_PCI, .pci_ranges = r, .n_pci_ranges = n};

    for (size_t i = 0; i < n; i++)
        r[i] = (struct viommu_pci_range){.segment = (uint16_t)(i >> 8),
                                         .bdf_first = (uint16_t)(i & 0xff),
                                         .bdf_last = (uint16_t)(i & 0xff),
                                         .endpoint_first = (uint32_t)i};
    assert_check(&t, -E2BIG, "do not fit in a VIOT table");
    t.n_pci_ranges = n - 1;
    assert_check(&t, 0, NULL);
}

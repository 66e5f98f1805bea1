// SPDX-License-Identifier: MIT
/*
 * test_fdt.c - adding the virtio-iommu to a device tree: the layout QEMU
 * gives its arm virt machine, and every refusal leaving the blob as it was.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>
#include <libfdt.h>

#include "viommu.h"

#define BUF_SIZE 8192

/* Runs dtc on @in_path; returns its stdout. */
static char *run_dtc(const char *in_fmt, const char *out_fmt, const char *in_path, gsize *len)
{
    char *argv[] = {"dtc",           "-q", "-I", (char *)in_fmt, "-O", (char *)out_fmt,
                    (char *)in_path, NULL};
    g_autoptr(GError) error = NULL;
    char *out = NULL;
    int status;

    cr_assert(g_spawn_sync(NULL, argv, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_STDERR_TO_DEV_NULL, NULL,
                           NULL, &out, NULL, &status, &error),
              "dtc: %s", error ? error->message : "");
    cr_assert(g_spawn_check_wait_status(status, NULL), "dtc failed on %s", in_path);
    if (len)
        *len = strlen(out);
    return out;
}

/* Decodes @fdt with `dtc -I dtb -O dts`. */
static char *dtb_to_dts(const void *fdt)
{
    g_autofree char *path = NULL;
    int fd = g_file_open_tmp("test-fdt-XXXXXX.dtb", &path, NULL);

    cr_assert(fd >= 0);
    close(fd);
    cr_assert(g_file_set_contents(path, fdt, fdt_totalsize(fdt), NULL));
    char *dts = run_dtc("dtb", "dts", path, NULL);
    g_unlink(path);
    return dts;
}

/* Compiles a data file with dtc into a buffer of BUF_SIZE * 4 bytes. */
static void *dts_file_to_dtb(const char *name)
{
    g_autofree char *path = g_build_filename(TEST_DATA_DIR, name, NULL);
    gsize len;
    char *argv[] = {"dtc", "-q", "-I", "dts", "-O", "dtb", path, NULL};
    char *out = NULL;
    int status;

    cr_assert(g_spawn_sync(NULL, argv, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_STDERR_TO_DEV_NULL, NULL,
                           NULL, &out, NULL, &status, NULL));
    cr_assert(g_spawn_check_wait_status(status, NULL));
    /* The dtb came through a text pipe, so its length is the header's. */
    len = fdt_totalsize(out);
    void *buf = g_malloc0(BUF_SIZE * 4);
    cr_assert(len <= BUF_SIZE * 4);
    memcpy(buf, out, len);
    g_free(out);
    return buf;
}

/* The text of node @name (its "\t...name {" line through its "};"), or NULL. */
static char *node_text(const char *dts, const char *name)
{
    g_autofree char *open = g_strdup_printf("%s {\n", name);
    const char *start = strstr(dts, open), *p;
    int depth = 0;

    if (!start)
        return NULL;
    while (start > dts && start[-1] == '\t')
        start--;
    for (p = start; *p; p++) {
        if (*p == '{')
            depth++;
        else if (*p == '}' && --depth == 0)
            return g_strndup(start, (gsize)(p - start + 3));
    }
    return NULL;
}

/* Adds `name` under @parent with device_type "pci" and the given domain (-1: none). */
static int add_host_bridge(void *fdt, const char *name, int domain, uint32_t first_bus)
{
    fdt32_t bus_range[2] = {cpu_to_fdt32(first_bus), cpu_to_fdt32(0xff)};
    int node = fdt_add_subnode(fdt, 0, name);

    cr_assert(node >= 0);
    cr_assert_eq(fdt_setprop_string(fdt, node, "compatible", "pci-host-ecam-generic"), 0);
    cr_assert_eq(fdt_setprop_string(fdt, node, "device_type", "pci"), 0);
    cr_assert_eq(fdt_setprop_u32(fdt, node, "#address-cells", 3), 0);
    cr_assert_eq(fdt_setprop_u32(fdt, node, "#size-cells", 2), 0);
    cr_assert_eq(fdt_setprop(fdt, node, "bus-range", bus_range, sizeof(bus_range)), 0);
    if (domain >= 0)
        cr_assert_eq(fdt_setprop_u32(fdt, node, "linux,pci-domain", (uint32_t)domain), 0);
    return node;
}

static int add_mmio_node(void *fdt, uint64_t base)
{
    char name[40];
    int node;

    snprintf(name, sizeof(name), "virtio_mmio@%" PRIx64, base);
    node = fdt_add_subnode(fdt, 0, name);
    cr_assert(node >= 0);
    cr_assert_eq(fdt_setprop_string(fdt, node, "compatible", "virtio,mmio"), 0);
    cr_assert_eq(fdt_setprop_u64(fdt, node, "reg", base), 0);
    cr_assert_eq(fdt_appendprop_u64(fdt, node, "reg", 0x200), 0);
    return node;
}

/* An empty tree with #address-cells = #size-cells = 2, in a BUF_SIZE buffer. */
static void *new_tree(void)
{
    void *fdt = g_malloc0(BUF_SIZE);

    cr_assert_eq(fdt_create_empty_tree(fdt, BUF_SIZE), 0);
    cr_assert_eq(fdt_setprop_u32(fdt, 0, "#address-cells", 2), 0);
    cr_assert_eq(fdt_setprop_u32(fdt, 0, "#size-cells", 2), 0);
    return fdt;
}

static const uint32_t *prop_cells(const void *fdt, const char *path, const char *name, int *n)
{
    int node = fdt_path_offset(fdt, path), len;
    const fdt32_t *p;

    cr_assert(node >= 0, "no node %s", path);
    p = fdt_getprop(fdt, node, name, &len);
    cr_assert_not_null(p, "no %s in %s", name, path);
    *n = len / 4;
    uint32_t *cells = g_new(uint32_t, *n ? *n : 1);
    for (int i = 0; i < *n; i++)
        cells[i] = fdt32_to_cpu(p[i]);
    return cells;
}

static void assert_cells(const void *fdt, const char *path, const char *name, const uint32_t *want,
                         int n_want)
{
    int n;
    g_autofree const uint32_t *got = prop_cells(fdt, path, name, &n);

    cr_assert_eq(n, n_want, "%s:%s has %d cells, expected %d", path, name, n, n_want);
    for (int i = 0; i < n; i++)
        cr_assert_eq(got[i], want[i], "%s:%s cell %d is 0x%x, expected 0x%x", path, name, i, got[i],
                     want[i]);
}

static void assert_refused_unchanged(void *fdt, size_t size, const struct viommu_topology *t,
                                     int expected)
{
    g_autofree void *before = g_memdup2(fdt, size);
    uint32_t phandle = 0xdead;

    cr_assert_eq(viommu_fdt_add(fdt, size, t, &phandle), expected, "expected %d (%s)", expected,
                 g_strerror(-expected));
    cr_assert(memcmp(before, fdt, size) == 0, "a refused add changed the blob");
    cr_assert_eq(phandle, 0xdead, "a refused add set the phandle");
}

Test(viommu_fdt, gives_the_layout_qemu_gives_arm_virt_for_virtio_iommu_pci)
{
    g_autofree void *fdt = dts_file_to_dtb("qemu-arm-virt-base.dts");
    g_autofree char *ref_path = g_build_filename(TEST_DATA_DIR, "qemu-arm-virt-viommu.dts", NULL);
    g_autofree char *reference = NULL, *got = NULL;
    g_autofree char *ref_node = NULL, *got_node = NULL, *ref_bridge = NULL, *got_bridge = NULL;
    struct viommu_pci_range all = {.segment = 0, .bdf_first = 0, .bdf_last = 0xffff};
    struct viommu_topology t = {
        .transport = VIOMMU_TRANSPORT_PCI,
        .pci_bdf = 0x0010,
        .pci_ranges = &all,
        .n_pci_ranges = 1,
    };
    uint32_t phandle = 0;

    cr_assert(g_file_get_contents(ref_path, &reference, NULL, NULL));
    cr_assert_eq(viommu_fdt_add(fdt, BUF_SIZE * 4, &t, &phandle), 0);
    cr_assert_eq(phandle, 0x8005);
    got = dtb_to_dts(fdt);

    ref_node = node_text(reference, "virtio_iommu@2,0");
    got_node = node_text(got, "virtio_iommu@2,0");
    cr_assert_not_null(ref_node);
    cr_assert_not_null(got_node, "no virtio_iommu@2,0 node in:\n%s", got);
    cr_assert_str_eq(got_node, ref_node);

    ref_bridge = node_text(reference, "pcie@10000000");
    got_bridge = node_text(got, "pcie@10000000");
    cr_assert_not_null(got_bridge);
    cr_assert(strstr(got_bridge,
                     "iommu-map = <0x00 0x8005 0x00 0x10 0x11 0x8005 0x11 0xffef>;\n") != NULL,
              "iommu-map differs:\n%s", got_bridge);
    cr_assert_str_eq(got_bridge, ref_bridge);
    /* Nothing else in the tree moved. */
    cr_assert_str_eq(got, reference);
}

Test(viommu_fdt, leaves_out_the_iommu_at_the_start_of_a_range)
{
    g_autofree void *fdt = new_tree();
    struct viommu_pci_range r = {.bdf_first = 0, .bdf_last = 0xff, .endpoint_first = 0x100};
    struct viommu_topology t = {
        .transport = VIOMMU_TRANSPORT_PCI, .pci_bdf = 0, .pci_ranges = &r, .n_pci_ranges = 1};
    uint32_t phandle = 0;

    add_host_bridge(fdt, "pcie@10000000", -1, 0);
    cr_assert_eq(viommu_fdt_add(fdt, BUF_SIZE, &t, &phandle), 0);
    cr_assert_eq(phandle, 1);
    assert_cells(fdt, "/pcie@10000000", "iommu-map", (uint32_t[]){1, 1, 0x101, 0xff}, 4);
    assert_cells(fdt, "/pcie@10000000/virtio_iommu@0,0", "reg", (uint32_t[]){0, 0, 0, 0, 0}, 5);
    assert_cells(fdt, "/pcie@10000000/virtio_iommu@0,0", "#iommu-cells", (uint32_t[]){1}, 1);
}

Test(viommu_fdt, sorts_ranges_and_splits_only_the_one_holding_the_iommu)
{
    g_autofree void *fdt = new_tree();
    struct viommu_pci_range r[] = {
        {.segment = 1, .bdf_first = 0x0008, .bdf_last = 0x0008, .endpoint_first = 0x10008},
        {.segment = 0, .bdf_first = 0x0100, .bdf_last = 0x01ff, .endpoint_first = 0x100},
        {.segment = 0, .bdf_first = 0x0000, .bdf_last = 0x00ff, .endpoint_first = 0},
    };
    struct viommu_topology t = {
        .transport = VIOMMU_TRANSPORT_PCI, .pci_bdf = 0x00ff, .pci_ranges = r, .n_pci_ranges = 3};

    add_host_bridge(fdt, "pcie@10000000", 0, 0);
    add_host_bridge(fdt, "pcie@20000000", 1, 0);
    cr_assert_eq(viommu_fdt_add(fdt, BUF_SIZE, &t, NULL), 0);
    assert_cells(fdt, "/pcie@10000000", "iommu-map",
                 (uint32_t[]){0, 1, 0, 0xff, 0x100, 1, 0x100, 0x100}, 8);
    /* The virtio-iommu lives in segment 0; segment 1's 00:01.0 keeps its entry. */
    assert_cells(fdt, "/pcie@20000000", "iommu-map", (uint32_t[]){8, 1, 0x10008, 1}, 4);
    cr_assert(fdt_path_offset(fdt, "/pcie@10000000/virtio_iommu@1f,7") >= 0);
}

Test(viommu_fdt, grows_the_blob_up_to_the_buffer_size)
{
    g_autofree void *fdt = g_malloc0(BUF_SIZE);
    struct viommu_pci_range r = {.bdf_first = 0x08, .bdf_last = 0x0f, .endpoint_first = 8};
    struct viommu_topology t = {
        .transport = VIOMMU_TRANSPORT_PCI, .pci_bdf = 0x10, .pci_ranges = &r, .n_pci_ranges = 1};

    cr_assert_eq(fdt_create_empty_tree(fdt, 512), 0);
    add_host_bridge(fdt, "pcie@10000000", -1, 0);
    cr_assert_eq(fdt_totalsize(fdt), 512);
    cr_assert_eq(viommu_fdt_add(fdt, BUF_SIZE, &t, NULL), 0);
    cr_assert_eq(fdt_totalsize(fdt), BUF_SIZE);
    cr_assert_eq(fdt_check_full(fdt, BUF_SIZE), 0);
    assert_cells(fdt, "/pcie@10000000", "iommu-map", (uint32_t[]){8, 1, 8, 8}, 4);
}

Test(viommu_fdt, refuses_a_buffer_without_room_and_leaves_the_blob_unchanged)
{
    g_autofree void *fdt = g_malloc0(BUF_SIZE);
    struct viommu_pci_range r = {.bdf_first = 0, .bdf_last = 0xffff};
    struct viommu_topology t = {
        .transport = VIOMMU_TRANSPORT_PCI, .pci_bdf = 0x10, .pci_ranges = &r, .n_pci_ranges = 1};

    cr_assert_eq(fdt_create_empty_tree(fdt, 400), 0);
    add_host_bridge(fdt, "pcie@10000000", -1, 0);
    fdt_pack(fdt);
    /* Room for the iommu node or the map, not both. */
    assert_refused_unchanged(fdt, fdt_totalsize(fdt) + 120, &t, -ENOSPC);
    assert_refused_unchanged(fdt, fdt_totalsize(fdt), &t, -ENOSPC);
}

Test(viommu_fdt, refuses_a_tree_holding_the_phandle_0xffffffff)
{
    /* No phandle can follow it: libfdt would hand out 0. */
    g_autofree void *fdt = new_tree();
    struct viommu_pci_range r = {.bdf_first = 0, .bdf_last = 0xff};
    struct viommu_topology t = {
        .transport = VIOMMU_TRANSPORT_PCI, .pci_bdf = 0x10, .pci_ranges = &r, .n_pci_ranges = 1};

    add_host_bridge(fdt, "pcie@10000000", -1, 0);
    cr_assert_eq(fdt_setprop_u32(fdt, 0, "phandle", 0xffffffffu), 0);
    assert_refused_unchanged(fdt, BUF_SIZE, &t, -ERANGE);
}

Test(viommu_fdt, refuses_a_tree_without_a_host_bridge)
{
    g_autofree void *fdt = new_tree();
    struct viommu_topology t = {.transport = VIOMMU_TRANSPORT_PCI, .pci_bdf = 0x10};

    assert_refused_unchanged(fdt, BUF_SIZE, &t, -ENOENT);
}

Test(viommu_fdt, refuses_endpoints_of_a_segment_without_a_host_bridge)
{
    g_autofree void *fdt = new_tree();
    struct viommu_pci_range r = {
        .segment = 2, .bdf_first = 0, .bdf_last = 7, .endpoint_first = 0x20000};
    struct viommu_topology t = {
        .transport = VIOMMU_TRANSPORT_PCI, .pci_bdf = 0x10, .pci_ranges = &r, .n_pci_ranges = 1};

    add_host_bridge(fdt, "pcie@10000000", 0, 0);
    add_host_bridge(fdt, "pcie@20000000", 1, 0);
    assert_refused_unchanged(fdt, BUF_SIZE, &t, -ENOENT);
}

Test(viommu_fdt, does_not_guess_the_segment_of_several_bridges_without_domains)
{
    g_autofree void *fdt = new_tree();
    struct viommu_topology t = {.transport = VIOMMU_TRANSPORT_PCI, .pci_bdf = 0x10};

    add_host_bridge(fdt, "pcie@10000000", -1, 0);
    add_host_bridge(fdt, "pcie@20000000", -1, 0);
    assert_refused_unchanged(fdt, BUF_SIZE, &t, -ENOENT);
}

Test(viommu_fdt, refuses_a_virtio_iommu_off_the_root_bus)
{
    g_autofree void *fdt = new_tree();
    struct viommu_topology t = {.transport = VIOMMU_TRANSPORT_PCI, .pci_bdf = 0x0110};

    add_host_bridge(fdt, "pcie@10000000", -1, 0);
    assert_refused_unchanged(fdt, BUF_SIZE, &t, -EINVAL);
}

Test(viommu_fdt, places_the_iommu_on_a_bridge_whose_root_bus_is_not_zero)
{
    g_autofree void *fdt = new_tree();
    struct viommu_topology t = {.transport = VIOMMU_TRANSPORT_PCI, .pci_bdf = 0x8010};

    add_host_bridge(fdt, "pcie@10000000", -1, 0x80);
    cr_assert_eq(viommu_fdt_add(fdt, BUF_SIZE, &t, NULL), 0);
    assert_cells(fdt, "/pcie@10000000/virtio_iommu@2,0", "reg", (uint32_t[]){0x801000, 0, 0, 0, 0},
                 5);
}

Test(viommu_fdt, refuses_a_bridge_that_already_has_an_iommu_map)
{
    g_autofree void *fdt = new_tree();
    struct viommu_pci_range r = {.bdf_first = 0, .bdf_last = 7};
    struct viommu_topology t = {
        .transport = VIOMMU_TRANSPORT_PCI, .pci_bdf = 0x10, .pci_ranges = &r, .n_pci_ranges = 1};
    int hb = add_host_bridge(fdt, "pcie@10000000", -1, 0);

    cr_assert_eq(fdt_setprop_u32(fdt, hb, "iommu-map", 0), 0);
    assert_refused_unchanged(fdt, BUF_SIZE, &t, -EEXIST);
}

Test(viommu_fdt, refuses_to_add_the_same_virtio_iommu_twice)
{
    g_autofree void *fdt = new_tree();
    struct viommu_topology t = {.transport = VIOMMU_TRANSPORT_PCI, .pci_bdf = 0x10};

    add_host_bridge(fdt, "pcie@10000000", -1, 0);
    cr_assert_eq(viommu_fdt_add(fdt, BUF_SIZE, &t, NULL), 0);
    assert_refused_unchanged(fdt, BUF_SIZE, &t, -EEXIST);
}

Test(viommu_fdt, refuses_what_is_not_a_device_tree)
{
    g_autofree void *fdt = new_tree();
    struct viommu_topology t = {.transport = VIOMMU_TRANSPORT_PCI, .pci_bdf = 0x10};
    char garbage[256];

    memset(garbage, 0x5a, sizeof(garbage));
    add_host_bridge(fdt, "pcie@10000000", -1, 0);
    assert_refused_unchanged(garbage, sizeof(garbage), &t, -EINVAL);
    /* A header claiming more bytes than the buffer holds. */
    assert_refused_unchanged(fdt, BUF_SIZE - 1, &t, -EINVAL);
    /* A structure block cut short. */
    fdt_set_size_dt_struct(fdt, 8);
    assert_refused_unchanged(fdt, BUF_SIZE, &t, -EINVAL);
    cr_assert_eq(viommu_fdt_add(NULL, BUF_SIZE, &t, NULL), -EINVAL);
}

Test(viommu_fdt, refuses_a_blob_older_than_version_16_without_crashing)
{
    g_autofree void *fdt = new_tree();
    struct viommu_topology t = {.transport = VIOMMU_TRANSPORT_PCI, .pci_bdf = 0x10};

    add_host_bridge(fdt, "pcie@10000000", -1, 0);
    /* Version 9 makes libfdt 1.6.1's fdt_check_full() dereference NULL. */
    fdt_set_version(fdt, 9);
    assert_refused_unchanged(fdt, BUF_SIZE, &t, -EINVAL);
}

Test(viommu_fdt, refuses_a_property_length_past_2_to_the_31_that_libfdt_lets_through)
{
    g_autofree char *path = g_build_filename(TEST_DATA_DIR, "fdt-negative-length.bin", NULL);
    g_autofree char *data = NULL;
    gsize len;
    struct viommu_topology t = {.transport = VIOMMU_TRANSPORT_MMIO,
                                .mmio_base = 0xa003e00,
                                .mmio_irq = {0, 0x2f, 1},
                                .mmio_irq_cells = 3};

    cr_assert(g_file_get_contents(path, &data, &len, NULL));
    g_autofree void *fdt = g_malloc0(len + 1024);
    memcpy(fdt, data, len);
    /* The blob runs on into the zeroed tail of the buffer, as the fuzzer found it. */
    cr_assert_eq(fdt_check_full(fdt, fdt_totalsize(fdt)), 0, "libfdt no longer accepts this blob");
    assert_refused_unchanged(fdt, len + 1024, &t, -EINVAL);
}

Test(viommu_fdt, refuses_a_property_length_that_makes_libfdt_walk_in_place)
{
    g_autofree void *fdt = new_tree();
    struct viommu_topology t = {.transport = VIOMMU_TRANSPORT_PCI, .pci_bdf = 0x10};
    int hb = add_host_bridge(fdt, "pcie@10000000", -1, 0);
    int prop = fdt_first_property_offset(fdt, hb);
    uint8_t *len_field = (uint8_t *)fdt + fdt_off_dt_struct(fdt) + prop + 4;
    fdt32_t minus_12 = cpu_to_fdt32(0xfffffff4);

    /* libfdt 1.6.1's fdt_check_full() never returns on this blob. */
    cr_assert(prop >= 0);
    memcpy(len_field, &minus_12, sizeof(minus_12));
    assert_refused_unchanged(fdt, BUF_SIZE, &t, -EINVAL);
}

Test(viommu_fdt, refuses_a_tree_nested_deeper_than_64_levels)
{
    g_autofree void *fdt = new_tree();
    struct viommu_topology t = {.transport = VIOMMU_TRANSPORT_PCI, .pci_bdf = 0x10};
    int node = 0;

    add_host_bridge(fdt, "pcie@10000000", -1, 0);
    for (int i = 0; i < 70; i++) {
        node = fdt_add_subnode(fdt, node, "n");
        cr_assert(node >= 0);
    }
    assert_refused_unchanged(fdt, BUF_SIZE, &t, -EINVAL);
}

Test(viommu_fdt, refuses_an_invalid_topology)
{
    g_autofree void *fdt = new_tree();
    struct viommu_pci_range r = {.bdf_first = 9, .bdf_last = 8};
    struct viommu_topology t = {
        .transport = VIOMMU_TRANSPORT_PCI, .pci_bdf = 0x10, .pci_ranges = &r, .n_pci_ranges = 1};

    add_host_bridge(fdt, "pcie@10000000", -1, 0);
    assert_refused_unchanged(fdt, BUF_SIZE, &t, -EINVAL);
}

Test(viommu_fdt, creates_an_mmio_virtio_iommu_and_points_each_endpoint_at_it)
{
    g_autofree void *fdt = new_tree();
    struct viommu_mmio_endpoint eps[] = {{.base = 0xa003c00, .endpoint = 7},
                                         {.base = 0xa003a00, .endpoint = 9}};
    struct viommu_topology t = {
        .transport = VIOMMU_TRANSPORT_MMIO,
        .mmio_base = 0xa003e00,
        .mmio_irq = {0, 0x2f, 1},
        .mmio_irq_cells = 3,
        .mmio_dma_coherent = true,
        .mmio_endpoints = eps,
        .n_mmio_endpoints = 2,
    };
    uint32_t phandle = 0;
    int gic = fdt_add_subnode(fdt, 0, "intc@8000000");

    cr_assert(gic >= 0);
    cr_assert_eq(fdt_setprop_u32(fdt, gic, "#interrupt-cells", 3), 0);
    cr_assert_eq(fdt_setprop_u32(fdt, gic, "phandle", 0x8002), 0);
    cr_assert_eq(fdt_setprop_u32(fdt, 0, "interrupt-parent", 0x8002), 0);
    add_mmio_node(fdt, 0xa003c00);
    add_mmio_node(fdt, 0xa003a00);

    cr_assert_eq(viommu_fdt_add(fdt, BUF_SIZE, &t, &phandle), 0);
    cr_assert_eq(phandle, 0x8003);
    g_autofree char *dts = dtb_to_dts(fdt);
    g_autofree char *node = node_text(dts, "virtio_mmio@a003e00");
    cr_assert_not_null(node, "no virtio_mmio@a003e00 in:\n%s", dts);
    cr_assert_str_eq(node, "\tvirtio_mmio@a003e00 {\n"
                           "\t\tphandle = <0x8003>;\n"
                           "\t\t#iommu-cells = <0x01>;\n"
                           "\t\tdma-coherent;\n"
                           "\t\tinterrupts = <0x00 0x2f 0x01>;\n"
                           "\t\treg = <0x00 0xa003e00 0x00 0x200>;\n"
                           "\t\tcompatible = \"virtio,mmio\";\n"
                           "\t};\n");
    assert_cells(fdt, "/virtio_mmio@a003c00", "iommus", (uint32_t[]){0x8003, 7}, 2);
    assert_cells(fdt, "/virtio_mmio@a003a00", "iommus", (uint32_t[]){0x8003, 9}, 2);
}

Test(viommu_fdt, turns_an_existing_virtio_mmio_node_into_the_iommu_keeping_its_phandle)
{
    g_autofree void *fdt = new_tree();
    struct viommu_mmio_endpoint ep = {.base = 0xa003a00, .endpoint = 1};
    struct viommu_topology t = {.transport = VIOMMU_TRANSPORT_MMIO,
                                .mmio_base = 0xa003e00,
                                .mmio_endpoints = &ep,
                                .n_mmio_endpoints = 1};
    uint32_t phandle = 0;
    int node = add_mmio_node(fdt, 0xa003e00);

    cr_assert_eq(fdt_setprop_u32(fdt, node, "phandle", 0x42), 0);
    add_mmio_node(fdt, 0xa003a00);
    cr_assert_eq(viommu_fdt_add(fdt, BUF_SIZE, &t, &phandle), 0);
    cr_assert_eq(phandle, 0x42);
    assert_cells(fdt, "/virtio_mmio@a003e00", "#iommu-cells", (uint32_t[]){1}, 1);
    assert_cells(fdt, "/virtio_mmio@a003a00", "iommus", (uint32_t[]){0x42, 1}, 2);
    cr_assert_null(
        fdt_getprop(fdt, fdt_path_offset(fdt, "/virtio_mmio@a003e00"), "interrupts", NULL));
}

Test(viommu_fdt, refuses_an_mmio_endpoint_without_a_node)
{
    g_autofree void *fdt = new_tree();
    struct viommu_mmio_endpoint ep = {.base = 0xa003a00, .endpoint = 1};
    struct viommu_topology t = {.transport = VIOMMU_TRANSPORT_MMIO,
                                .mmio_base = 0xa003e00,
                                .mmio_endpoints = &ep,
                                .n_mmio_endpoints = 1};

    assert_refused_unchanged(fdt, BUF_SIZE, &t, -ENOENT);
}

Test(viommu_fdt, refuses_an_mmio_endpoint_that_already_has_an_iommu)
{
    g_autofree void *fdt = new_tree();
    struct viommu_mmio_endpoint ep = {.base = 0xa003a00, .endpoint = 1};
    struct viommu_topology t = {.transport = VIOMMU_TRANSPORT_MMIO,
                                .mmio_base = 0xa003e00,
                                .mmio_endpoints = &ep,
                                .n_mmio_endpoints = 1};
    int node = add_mmio_node(fdt, 0xa003a00);

    cr_assert_eq(fdt_setprop_u32(fdt, node, "iommus", 5), 0);
    assert_refused_unchanged(fdt, BUF_SIZE, &t, -EEXIST);
}

Test(viommu_fdt, refuses_an_iommu_window_that_belongs_to_another_device)
{
    g_autofree void *fdt = new_tree();
    struct viommu_topology t = {.transport = VIOMMU_TRANSPORT_MMIO, .mmio_base = 0x9000000};
    int node = fdt_add_subnode(fdt, 0, "pl011@9000000");

    cr_assert(node >= 0);
    cr_assert_eq(fdt_setprop_string(fdt, node, "compatible", "arm,pl011"), 0);
    cr_assert_eq(fdt_setprop_u64(fdt, node, "reg", 0x9000000), 0);
    assert_refused_unchanged(fdt, BUF_SIZE, &t, -EEXIST);
}

Test(viommu_fdt, refuses_interrupt_cells_the_interrupt_parent_does_not_take)
{
    g_autofree void *fdt = new_tree();
    struct viommu_topology t = {.transport = VIOMMU_TRANSPORT_MMIO,
                                .mmio_base = 0xa003e00,
                                .mmio_irq = {47},
                                .mmio_irq_cells = 1};
    int gic = fdt_add_subnode(fdt, 0, "intc@8000000");

    cr_assert_eq(fdt_setprop_u32(fdt, gic, "#interrupt-cells", 3), 0);
    cr_assert_eq(fdt_setprop_u32(fdt, gic, "phandle", 1), 0);
    cr_assert_eq(fdt_setprop_u32(fdt, 0, "interrupt-parent", 1), 0);
    assert_refused_unchanged(fdt, BUF_SIZE, &t, -EINVAL);
}

Test(viommu_fdt, refuses_a_window_the_root_address_cells_cannot_hold)
{
    g_autofree void *fdt = g_malloc0(BUF_SIZE);
    struct viommu_topology t = {.transport = VIOMMU_TRANSPORT_MMIO, .mmio_base = 1ull << 32};

    cr_assert_eq(fdt_create_empty_tree(fdt, BUF_SIZE), 0);
    cr_assert_eq(fdt_setprop_u32(fdt, 0, "#address-cells", 1), 0);
    cr_assert_eq(fdt_setprop_u32(fdt, 0, "#size-cells", 1), 0);
    assert_refused_unchanged(fdt, BUF_SIZE, &t, -EINVAL);
}

Test(viommu_fdt, refuses_an_address_matching_several_nodes)
{
    g_autofree void *fdt = new_tree();
    struct viommu_mmio_endpoint ep = {.base = 0xa003a00, .endpoint = 1};
    struct viommu_topology t = {.transport = VIOMMU_TRANSPORT_MMIO,
                                .mmio_base = 0xa003e00,
                                .mmio_endpoints = &ep,
                                .n_mmio_endpoints = 1};
    int bus = fdt_add_subnode(fdt, 0, "bus");

    add_mmio_node(fdt, 0xa003a00);
    cr_assert(bus >= 0);
    int dup = fdt_add_subnode(fdt, bus, "dup@a003a00");
    cr_assert(dup >= 0);
    cr_assert_eq(fdt_setprop_u64(fdt, dup, "reg", 0xa003a00), 0);
    assert_refused_unchanged(fdt, BUF_SIZE, &t, -EINVAL);
}

Test(viommu_fdt, describes_the_most_mmio_endpoints_a_topology_can_hold)
{
    const size_t n = 65534, size = 16u << 20;
    g_autofree struct viommu_mmio_endpoint *eps = g_new(struct viommu_mmio_endpoint, n);
    g_autofree void *fdt = g_malloc(size);
    struct viommu_topology t = {.transport = VIOMMU_TRANSPORT_MMIO,
                                .mmio_base = 0x1000,
                                .mmio_endpoints = eps,
                                .n_mmio_endpoints = n};
    uint32_t phandle = 0;
    size_t seen = 0;

    /* Sequential writes keep building the base tree linear in its size. */
    cr_assert_eq(fdt_create(fdt, (int)size), 0);
    cr_assert_eq(fdt_finish_reservemap(fdt), 0);
    cr_assert_eq(fdt_begin_node(fdt, ""), 0);
    cr_assert_eq(fdt_property_u32(fdt, "#address-cells", 2), 0);
    cr_assert_eq(fdt_property_u32(fdt, "#size-cells", 2), 0);
    for (size_t i = 0; i < n; i++) {
        char name[40];
        fdt64_t reg[2] = {cpu_to_fdt64(0x100000000ull + i * 0x200), cpu_to_fdt64(0x200)};

        /* Endpoints listed in reverse ID order, so lookups cannot follow the tree. */
        eps[i] = (struct viommu_mmio_endpoint){.base = 0x100000000ull + i * 0x200,
                                               .endpoint = (uint32_t)(n - i)};
        snprintf(name, sizeof(name), "virtio_mmio@%" PRIx64,
                 (uint64_t)(0x100000000ull + i * 0x200));
        cr_assert_eq(fdt_begin_node(fdt, name), 0);
        cr_assert_eq(fdt_property(fdt, "reg", reg, sizeof(reg)), 0);
        cr_assert_eq(fdt_end_node(fdt), 0);
    }
    cr_assert_eq(fdt_end_node(fdt), 0);
    cr_assert_eq(fdt_finish(fdt), 0);

    cr_assert_eq(viommu_fdt_add(fdt, size, &t, &phandle), 0);
    for (int node = fdt_first_subnode(fdt, 0); node >= 0; node = fdt_next_subnode(fdt, node)) {
        const void *reg = fdt_getprop(fdt, node, "reg", NULL);
        const fdt32_t *iommus = fdt_getprop(fdt, node, "iommus", NULL);
        fdt64_t reg0;

        /* Properties are only 4-byte aligned. */
        memcpy(&reg0, reg, sizeof(reg0));
        uint64_t base = fdt64_to_cpu(reg0);

        if (base == 0x1000)
            continue;
        cr_assert_not_null(iommus, "no iommus at 0x%" PRIx64, base);
        cr_assert_eq(fdt32_to_cpu(iommus[0]), phandle);
        cr_assert_eq(fdt32_to_cpu(iommus[1]), n - (base - 0x100000000ull) / 0x200);
        seen++;
    }
    cr_assert_eq(seen, n);
}

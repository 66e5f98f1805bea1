// SPDX-License-Identifier: MIT
/*
 * test_viot.c - the ACPI VIOT writer against QEMU's q35 table, and the
 * decoder against every kind of malformed table.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include <glib.h>

#include "viommu.h"

/* Offsets from ACPI 6.4, 5.2.30, written out so the test does not share the code's structs. */
enum {
    OFF_SIGNATURE = 0,
    OFF_LENGTH = 4,
    OFF_REVISION = 8,
    OFF_CHECKSUM = 9,
    OFF_OEM_ID = 10,
    OFF_OEM_REVISION = 24,
    OFF_CREATOR_ID = 28,
    OFF_CREATOR_REVISION = 32,
    OFF_NODE_COUNT = 36,
    OFF_NODE_OFFSET = 38,
    OFF_RESERVED = 40,
    HEADER_SIZE = 48,
};

static uint16_t le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static uint8_t *load_qemu_table(size_t *len)
{
    g_autofree char *path = g_build_filename(TEST_DATA_DIR, "qemu-q35-viot.bin", NULL);
    char *data = NULL;
    gsize n;

    cr_assert(g_file_get_contents(path, &data, &n, NULL));
    *len = n;
    return (uint8_t *)data;
}

/* Recomputes the checksum after a test edits a table. */
static void fix_checksum(uint8_t *t, size_t len)
{
    uint8_t sum = 0;

    t[OFF_CHECKSUM] = 0;
    for (size_t i = 0; i < len; i++)
        sum += t[i];
    t[OFF_CHECKSUM] = (uint8_t)(0x100 - sum);
}

static uint8_t *build(const struct viommu_topology *t, size_t *len)
{
    uint8_t *buf;

    cr_assert_eq(viommu_viot_build(t, NULL, NULL, 0, len), -ENOSPC);
    buf = g_malloc(*len);
    cr_assert_eq(viommu_viot_build(t, NULL, buf, *len, len), 0);
    return buf;
}

static const struct viommu_pci_range q35_range = {.bdf_first = 0x0000, .bdf_last = 0x00ff};
static const struct viommu_topology q35 = {
    .transport = VIOMMU_TRANSPORT_PCI,
    .pci_bdf = 0x0010,
    .pci_ranges = &q35_range,
    .n_pci_ranges = 1,
};

Test(viommu_viot, matches_qemu_q35_table_field_by_field)
{
    size_t qlen, len;
    g_autofree uint8_t *qemu = load_qemu_table(&qlen);
    g_autofree uint8_t *ours = build(&q35, &len);
    uint8_t sum = 0;

    cr_assert_eq(qlen, 88);
    cr_assert_eq(len, qlen);
    cr_assert(memcmp(ours + OFF_SIGNATURE, "VIOT", 4) == 0);
    cr_assert_eq(le32(ours + OFF_LENGTH), le32(qemu + OFF_LENGTH));
    cr_assert_eq(ours[OFF_REVISION], qemu[OFF_REVISION]);
    cr_assert(memcmp(ours + OFF_OEM_ID, "VIOMMU", 6) == 0);
    cr_assert(memcmp(ours + OFF_CREATOR_ID, "VIOM", 4) == 0);
    cr_assert_eq(le32(ours + OFF_OEM_REVISION), 1);
    cr_assert_eq(le32(ours + OFF_CREATOR_REVISION), 1);
    cr_assert_eq(le16(ours + OFF_NODE_COUNT), le16(qemu + OFF_NODE_COUNT));
    cr_assert_eq(le16(ours + OFF_NODE_OFFSET), le16(qemu + OFF_NODE_OFFSET));
    cr_assert(memcmp(ours + OFF_RESERVED, qemu + OFF_RESERVED, 8) == 0);
    for (size_t i = 0; i < len; i++)
        sum += ours[i];
    cr_assert_eq(sum, 0, "bytes sum to 0x%02x", sum);

    /* virtio-pci IOMMU node at 0x30: type, reserved, length, segment, bdf, reserved[8]. */
    const uint8_t *qi = qemu + 0x30, *oi = ours + 0x30;
    cr_assert_eq(oi[0], 3);
    cr_assert_eq(oi[0], qi[0]);
    cr_assert_eq(oi[1], qi[1]);
    cr_assert_eq(le16(oi + 2), le16(qi + 2));
    cr_assert_eq(le16(oi + 4), le16(qi + 4));
    cr_assert_eq(le16(oi + 6), 0x0010);
    cr_assert_eq(le16(oi + 6), le16(qi + 6));
    cr_assert(memcmp(oi + 8, qi + 8, 8) == 0);

    /* PCI range node at 0x40: endpoint_start, segments, BDFs, output node, reserved[6]. */
    const uint8_t *qr = qemu + 0x40, * or = ours + 0x40;
    cr_assert_eq(or [0], 1);
    cr_assert_eq(or [0], qr[0]);
    cr_assert_eq(or [1], qr[1]);
    cr_assert_eq(le16(or +2), le16(qr + 2));
    cr_assert_eq(le32(or +4), le32(qr + 4));
    cr_assert_eq(le16(or +8), le16(qr + 8));
    cr_assert_eq(le16(or +10), le16(qr + 10));
    cr_assert_eq(le16(or +12), le16(qr + 12));
    cr_assert_eq(le16(or +14), 0x00ff);
    cr_assert_eq(le16(or +14), le16(qr + 14));
    cr_assert_eq(le16(or +16), 0x30);
    cr_assert_eq(le16(or +16), le16(qr + 16));
    cr_assert(memcmp(or +18, qr + 18, 6) == 0);

    /* Apart from the OEM fields and the checksum that covers them, the bytes are QEMU's. */
    cr_assert(memcmp(ours + HEADER_SIZE, qemu + HEADER_SIZE, len - HEADER_SIZE) == 0);
}

Test(viommu_viot, equals_qemu_bytes_when_given_qemu_oem_fields)
{
    size_t qlen, len;
    g_autofree uint8_t *qemu = load_qemu_table(&qlen);
    struct viommu_acpi_ids bochs = {
        .oem_id = {'B', 'O', 'C', 'H', 'S', ' '},
        .oem_table_id = {'B', 'X', 'P', 'C', ' ', ' ', ' ', ' '},
        .oem_revision = 1,
        .creator_id = {'B', 'X', 'P', 'C'},
        .creator_revision = 1,
    };
    uint8_t buf[128];

    cr_assert_eq(viommu_viot_build(&q35, &bochs, buf, sizeof(buf), &len), 0);
    cr_assert_eq(len, qlen);
    cr_assert(memcmp(buf, qemu, len) == 0);
}

Test(viommu_viot, decodes_qemu_q35_table)
{
    size_t len;
    g_autofree uint8_t *qemu = load_qemu_table(&len);
    struct viommu_viot *v = NULL;

    cr_assert_eq(viommu_viot_decode(qemu, len, &v, NULL), 0);
    cr_assert_str_eq(v->oem_id, "BOCHS ");
    cr_assert_str_eq(v->oem_table_id, "BXPC    ");
    cr_assert_str_eq(v->creator_id, "BXPC");
    cr_assert_eq(v->checksum, 0x5e);
    cr_assert_eq(v->n_nodes, 2);
    cr_assert_eq(v->nodes[0].type, VIOMMU_VIOT_NODE_VIRTIO_IOMMU_PCI);
    cr_assert_eq(v->nodes[0].u.virtio_pci.bdf, 0x10);
    cr_assert_eq(v->nodes[1].type, VIOMMU_VIOT_NODE_PCI_RANGE);
    cr_assert_eq(v->nodes[1].offset, 0x40);
    cr_assert_eq(v->nodes[1].u.pci_range.bdf_end, 0xff);
    cr_assert_eq(v->nodes[1].u.pci_range.output_node, 0);
    viommu_viot_free(v);
}

Test(viommu_viot, round_trips_an_mmio_iommu_with_both_kinds_of_endpoint)
{
    struct viommu_pci_range r[] = {
        {.segment = 1, .bdf_first = 0x100, .bdf_last = 0x1ff, .endpoint_first = 0x10100},
        {.segment = 0, .bdf_first = 0x8, .bdf_last = 0x8, .endpoint_first = 8},
    };
    struct viommu_mmio_endpoint e[] = {{.base = 0xa003c00, .endpoint = 0x20000},
                                       {.base = 0xfffffffff000, .endpoint = 0x20001}};
    struct viommu_topology t = {.transport = VIOMMU_TRANSPORT_MMIO,
                                .mmio_base = 0xa003e00,
                                .pci_ranges = r,
                                .n_pci_ranges = 2,
                                .mmio_endpoints = e,
                                .n_mmio_endpoints = 2};
    size_t len;
    g_autofree uint8_t *table = build(&t, &len);
    struct viommu_viot *v = NULL;

    cr_assert_eq(len, 48 + 16 + 4 * 24);
    cr_assert_eq(viommu_viot_decode(table, len, &v, NULL), 0);
    cr_assert_eq(v->n_nodes, 5);
    cr_assert_eq(v->nodes[0].type, VIOMMU_VIOT_NODE_VIRTIO_IOMMU_MMIO);
    cr_assert_eq(v->nodes[0].u.virtio_mmio.base, 0xa003e00);
    cr_assert_eq(v->nodes[1].u.pci_range.segment_start, 1);
    cr_assert_eq(v->nodes[1].u.pci_range.segment_end, 1);
    cr_assert_eq(v->nodes[1].u.pci_range.endpoint_start, 0x10100);
    cr_assert_eq(v->nodes[2].u.pci_range.bdf_start, 8);
    cr_assert_eq(v->nodes[3].type, VIOMMU_VIOT_NODE_MMIO_ENDPOINT);
    cr_assert_eq(v->nodes[3].u.mmio_endpoint.base, 0xa003c00);
    cr_assert_eq(v->nodes[4].u.mmio_endpoint.base, 0xfffffffff000);
    cr_assert_eq(v->nodes[4].u.mmio_endpoint.endpoint, 0x20001);
    cr_assert_eq(v->nodes[4].u.mmio_endpoint.output_node, 0);
    viommu_viot_free(v);
}

Test(viommu_viot, reports_the_length_and_writes_nothing_when_the_buffer_is_short)
{
    uint8_t buf[87];
    size_t len = 0;

    memset(buf, 0xee, sizeof(buf));
    cr_assert_eq(viommu_viot_build(&q35, NULL, buf, sizeof(buf), &len), -ENOSPC);
    cr_assert_eq(len, 88);
    for (size_t i = 0; i < sizeof(buf); i++)
        cr_assert_eq(buf[i], 0xee);
    cr_assert_eq(viommu_viot_build(&q35, NULL, buf, sizeof(buf), NULL), -EINVAL);
}

Test(viommu_viot, refuses_to_build_an_invalid_topology)
{
    struct viommu_pci_range r = {.bdf_first = 0x10, .bdf_last = 0x0f};
    struct viommu_topology t = q35;
    uint8_t buf[128];
    size_t len;

    t.pci_ranges = &r;
    cr_assert_eq(viommu_viot_build(&t, NULL, buf, sizeof(buf), &len), -EINVAL);
    cr_assert_eq(viommu_viot_build(NULL, NULL, buf, sizeof(buf), &len), -EINVAL);
}

Test(viommu_viot, fits_the_most_nodes_node_count_can_count)
{
    size_t n = 65534, len;
    g_autofree struct viommu_mmio_endpoint *e = g_new(struct viommu_mmio_endpoint, n + 1);
    struct viommu_topology t = {
        .transport = VIOMMU_TRANSPORT_PCI, .mmio_endpoints = e, .n_mmio_endpoints = n};
    struct viommu_viot *v = NULL;

    for (size_t i = 0; i <= n; i++)
        e[i] = (struct viommu_mmio_endpoint){.base = 0x100000000ull + i * 0x200,
                                             .endpoint = (uint32_t)i};
    g_autofree uint8_t *table = build(&t, &len);
    cr_assert_eq(viommu_viot_decode(table, len, &v, NULL), 0);
    cr_assert_eq(v->n_nodes, 65535);
    viommu_viot_free(v);
    t.n_mmio_endpoints = n + 1;
    cr_assert_eq(viommu_viot_build(&t, NULL, NULL, 0, &len), -E2BIG);
}

/* Decodes @t (of @len bytes) expecting @err and a message mentioning @what. */
static void assert_rejected(const uint8_t *t, size_t len, int err, const char *what)
{
    struct viommu_viot *v = (struct viommu_viot *)0x1;
    GError *error = NULL;

    cr_assert_eq(viommu_viot_decode(t, len, &v, &error), err);
    cr_assert_eq(v, (struct viommu_viot *)0x1, "the output was touched on error");
    cr_assert_not_null(error);
    cr_assert(strstr(error->message, what) != NULL, "'%s' does not mention '%s'", error->message,
              what);
    g_error_free(error);
}

Test(viommu_viot, rejects_a_table_cut_short_at_every_length)
{
    size_t len;
    g_autofree uint8_t *qemu = load_qemu_table(&len);

    for (size_t n = 0; n < len; n++) {
        g_autofree uint8_t *copy = g_memdup2(qemu, n ? n : 1);
        struct viommu_viot *v = NULL;
        cr_assert_eq(viommu_viot_decode(copy, n, &v, NULL), -EINVAL, "length %zu", n);
        cr_assert_null(v);
    }
}

Test(viommu_viot, rejects_a_wrong_signature_length_or_checksum)
{
    size_t len;
    g_autofree uint8_t *t = load_qemu_table(&len);

    t[0] = 'X';
    assert_rejected(t, len, -EINVAL, "signature");
    t[0] = 'V';
    t[OFF_CHECKSUM]++;
    assert_rejected(t, len, -EINVAL, "checksum");
    t[OFF_CHECKSUM]--;
    t[OFF_LENGTH] = 89;
    fix_checksum(t, len);
    assert_rejected(t, len, -EINVAL, "89 bytes");
    t[OFF_LENGTH] = 40;
    fix_checksum(t, len);
    assert_rejected(t, 40, -EINVAL, "shorter than the VIOT header");
    assert_rejected(NULL, len, -EINVAL, "no table");
}

Test(viommu_viot, rejects_an_unknown_revision)
{
    size_t len;
    g_autofree uint8_t *t = load_qemu_table(&len);

    t[OFF_REVISION] = 1;
    fix_checksum(t, len);
    assert_rejected(t, len, -ENOTSUP, "revision 1");
}

Test(viommu_viot, rejects_nodes_outside_the_table)
{
    size_t len;
    g_autofree uint8_t *t = load_qemu_table(&len);

    put16(t + OFF_NODE_COUNT, 3);
    fix_checksum(t, len);
    assert_rejected(t, len, -EINVAL, "runs past the end");
    put16(t + OFF_NODE_COUNT, 2);
    put16(t + OFF_NODE_OFFSET, 0x20);
    fix_checksum(t, len);
    assert_rejected(t, len, -EINVAL, "node_offset");
    put16(t + OFF_NODE_OFFSET, 0x30);
    put16(t + 0x40 + 2, 0xffff);
    fix_checksum(t, len);
    assert_rejected(t, len, -EINVAL, "length 65535");
    put16(t + 0x40 + 2, 2);
    fix_checksum(t, len);
    assert_rejected(t, len, -EINVAL, "length 2");
    put16(t + 0x40 + 2, 20);
    fix_checksum(t, len);
    assert_rejected(t, len, -EINVAL, "not 24");
}

Test(viommu_viot, rejects_bytes_after_the_last_node)
{
    size_t len;
    g_autofree uint8_t *t = load_qemu_table(&len);

    put16(t + OFF_NODE_COUNT, 1);
    fix_checksum(t, len);
    assert_rejected(t, len, -EINVAL, "follow the last node");
}

Test(viommu_viot, rejects_an_endpoint_pointing_elsewhere_than_an_iommu_node)
{
    size_t len;
    g_autofree uint8_t *t = load_qemu_table(&len);

    /* At the range node itself, in the middle of the IOMMU node, past the end. */
    const uint16_t targets[] = {0x40, 0x34, 0x1000, 0};
    for (size_t i = 0; i < G_N_ELEMENTS(targets); i++) {
        put16(t + 0x40 + 16, targets[i]);
        fix_checksum(t, len);
        assert_rejected(t, len, -EINVAL, "not a virtio-iommu node");
    }
}

Test(viommu_viot, rejects_reversed_ranges_and_endpoint_ids_past_32_bits)
{
    size_t len;
    g_autofree uint8_t *t = load_qemu_table(&len);

    put16(t + 0x40 + 12, 0x100);
    fix_checksum(t, len);
    assert_rejected(t, len, -EINVAL, "ends before it starts");
    put16(t + 0x40 + 12, 0);
    put16(t + 0x40 + 10, 1);
    put16(t + 0x40 + 8, 2);
    fix_checksum(t, len);
    assert_rejected(t, len, -EINVAL, "ends before it starts");
    put16(t + 0x40 + 8, 0);
    put16(t + 0x40 + 10, 0);
    memset(t + 0x40 + 4, 0xff, 4);
    fix_checksum(t, len);
    assert_rejected(t, len, -EINVAL, "past 0xffffffff");
}

Test(viommu_viot, rejects_non_zero_reserved_bytes)
{
    size_t len;
    g_autofree uint8_t *qemu = load_qemu_table(&len);
    /* Header reserved, node header reserved, IOMMU node reserved, range node reserved. */
    const size_t offsets[] = {OFF_RESERVED + 7, 0x31, 0x38, 0x40 + 23};

    for (size_t i = 0; i < G_N_ELEMENTS(offsets); i++) {
        g_autofree uint8_t *t = g_memdup2(qemu, len);
        t[offsets[i]] = 1;
        fix_checksum(t, len);
        assert_rejected(t, len, -EINVAL, "reserved");
    }
}

Test(viommu_viot, skips_nodes_of_unknown_types)
{
    size_t len;
    g_autofree uint8_t *qemu = load_qemu_table(&len);
    g_autofree uint8_t *t = g_malloc0(len + 8);
    struct viommu_viot *v = NULL;

    memcpy(t, qemu, len);
    t[len] = 0x80;
    put16(t + len + 2, 8);
    t[OFF_LENGTH] = (uint8_t)(len + 8);
    put16(t + OFF_NODE_COUNT, 3);
    fix_checksum(t, len + 8);
    cr_assert_eq(viommu_viot_decode(t, len + 8, &v, NULL), 0);
    cr_assert_eq(v->n_nodes, 3);
    cr_assert_eq(v->nodes[2].type, 0x80);
    cr_assert_eq(v->nodes[2].length, 8);
    viommu_viot_free(v);
}

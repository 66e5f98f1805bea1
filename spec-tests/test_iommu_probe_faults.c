/* SPDX-License-Identifier: MIT */
/*
 * Conformance: PROBE, the RESV_MEM property and fault reporting (virtio
 * spec, IOMMU device, Device operations).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "spec_iommu.h"

#define PROBE_SIZE 0x200
#define OK VIRTIO_IOMMU_S_OK

/* A RESV_MEM property as the spec lays it out, read back from bytes. */
typedef struct property {
    uint16_t type;     /* bits 0-11 */
    uint16_t reserved; /* bits 12-15 of the first le16 */
    uint16_t length;
    uint8_t subtype;
    uint8_t resv_reserved[3];
    uint64_t start, end;
} property;

static property read_property(const uint8_t *p)
{
    property prop;
    uint16_t t = spec_get_le16(p);

    prop.type = t & 0xfff;
    prop.reserved = t >> 12;
    prop.length = spec_get_le16(p + 2);
    prop.subtype = p[4];
    memcpy(prop.resv_reserved, p + 5, 3);
    prop.start = spec_get_le64(p + 8);
    prop.end = spec_get_le64(p + 16);
    return prop;
}

/* Endpoint 1 with a RESERVED and an MSI region. */
static viommu *device_with_regions(void)
{
    viommu *v = spec_device();

    cr_assert_eq(viommu_endpoint_add_resv(v, 1, 0x8000, 0x8fff, VIRTIO_IOMMU_RESV_MEM_T_RESERVED),
                 0);
    cr_assert_eq(
        viommu_endpoint_add_resv(v, 1, 0xfee00000, 0xfeefffff, VIRTIO_IOMMU_RESV_MEM_T_MSI), 0);
    return v;
}

/* Probes endpoint 1 of @v; returns the properties (PROBE_SIZE bytes). */
static uint8_t *probe_ok(viommu *v, uint32_t endpoint)
{
    uint8_t *props = g_malloc(PROBE_SIZE);
    size_t used;

    cr_assert_eq(spec_probe(v, endpoint, props, PROBE_SIZE, &used), OK);
    cr_assert_eq(used, PROBE_SIZE + 4, "the device wrote the properties and the tail");
    return props;
}

/* ---- PROBE ----------------------------------------------------------- */

Test(probe, device_must_ignore_reserved)
{
    viommu *v = device_with_regions();
    uint8_t rd[SPEC_PROBE_READABLE];
    uint8_t wr[PROBE_SIZE + 4];
    g_autofree uint8_t *expected = probe_ok(v, 1);

    memset(rd, 0xee, sizeof(rd));
    rd[0] = VIRTIO_IOMMU_T_PROBE;
    memset(rd + 1, 0x77, 3);
    spec_put_le32(rd + 4, 1);
    cr_assert_eq(spec_send(v, rd, sizeof(rd), wr, sizeof(wr)), sizeof(wr));
    cr_assert_eq(wr[PROBE_SIZE], OK);
    cr_assert_arr_eq(wr, expected, PROBE_SIZE, "same properties as with zeroed reserved bytes");
    viommu_free(v);
}

Test(probe, device_should_reject_unknown_endpoints_with_noent)
{
    viommu *v = spec_device();
    uint8_t props[PROBE_SIZE];
    size_t used;

    cr_assert_eq(spec_probe(v, 99, props, sizeof(props), &used), VIRTIO_IOMMU_S_NOENT);
    viommu_free(v);
}

Test(probe, device_without_f_probe_should_not_write_probe_requests)
{
    viommu_config cfg;
    viommu *v;
    uint8_t props[PROBE_SIZE];
    size_t used;

    viommu_config_init(&cfg);
    cfg.features &= ~VIOMMU_FEATURE(VIRTIO_IOMMU_F_PROBE);
    v = spec_device_with(&cfg, SPEC_ALL_OFFERED, 1);
    cr_assert_eq(spec_probe(v, 1, props, sizeof(props), &used), SPEC_UNWRITTEN);
    cr_assert_eq(used, 0);
    for (size_t i = 0; i < sizeof(props); i++)
        cr_assert_eq(props[i], 0xff, "byte %zu written", i);
    viommu_free(v);
}

Test(probe, device_should_zero_property_reserved_bits)
{
    viommu *v = device_with_regions();
    g_autofree uint8_t *props = probe_ok(v, 1);

    for (size_t off = 0; off + 4 <= PROBE_SIZE;) {
        property p = read_property(props + off);
        if (p.type == VIRTIO_IOMMU_PROBE_T_NONE)
            break;
        cr_assert_eq(p.reserved, 0);
        off += 4 + p.length;
    }
    viommu_free(v);
}

Test(probe, device_must_write_property_length_without_header)
{
    viommu *v = device_with_regions();
    g_autofree uint8_t *props = probe_ok(v, 1);
    property p = read_property(props);

    cr_assert_eq(p.type, VIRTIO_IOMMU_PROBE_T_RESV_MEM);
    /* struct virtio_iommu_probe_resv_mem is 24 bytes, 20 after the header. */
    cr_assert_eq(p.length, 20);
    viommu_free(v);
}

Test(probe, device_must_place_properties_length_plus_4_apart)
{
    viommu *v = device_with_regions();
    g_autofree uint8_t *props = probe_ok(v, 1);
    property first = read_property(props);
    property second = read_property(props + 4 + first.length);
    property third = read_property(props + 8 + first.length + second.length);

    cr_assert_eq(first.type, VIRTIO_IOMMU_PROBE_T_RESV_MEM);
    cr_assert_eq(second.type, VIRTIO_IOMMU_PROBE_T_RESV_MEM);
    cr_assert_eq(third.type, VIRTIO_IOMMU_PROBE_T_NONE, "the list ends after two");
    /* Both regions, in some order. */
    cr_assert_eq(first.start + second.start, 0x8000 + 0xfee00000ull);
    cr_assert_eq(first.end + second.end, 0x8fff + 0xfeefffffull);
    viommu_free(v);
}

Test(probe, device_should_reject_short_property_buffers_with_inval)
{
    viommu *v = device_with_regions();
    uint8_t props[PROBE_SIZE - 4];
    size_t used;

    cr_assert_eq(spec_probe(v, 1, props, sizeof(props), &used), VIRTIO_IOMMU_S_INVAL);
    cr_assert_eq(used, sizeof(props) + 4);
    for (size_t i = 0; i < sizeof(props); i++)
        cr_assert(props[i] == 0xff || props[i] == 0, "byte %zu holds a property", i);
    viommu_free(v);
}

Test(probe, device_should_zero_fill_unused_property_bytes)
{
    viommu *v = device_with_regions();
    g_autofree uint8_t *props = probe_ok(v, 1);

    for (size_t i = 2 * 24; i < PROBE_SIZE; i++)
        cr_assert_eq(props[i], 0, "byte %zu", i);
    viommu_free(v);
    /* An endpoint without regions: all zero. */
    v = spec_device();
    g_free(props);
    props = probe_ok(v, 2);
    for (size_t i = 0; i < PROBE_SIZE; i++)
        cr_assert_eq(props[i], 0, "byte %zu", i);
    viommu_free(v);
}

/* ---- RESV_MEM -------------------------------------------------------- */

Test(resv_mem, device_should_zero_reserved)
{
    viommu *v = device_with_regions();
    g_autofree uint8_t *props = probe_ok(v, 1);
    property first = read_property(props);
    property second = read_property(props + 24);

    cr_assert(first.resv_reserved[0] == 0 && first.resv_reserved[1] == 0 &&
              first.resv_reserved[2] == 0);
    cr_assert(second.resv_reserved[0] == 0 && second.resv_reserved[1] == 0 &&
              second.resv_reserved[2] == 0);
    viommu_free(v);
}

Test(resv_mem, device_should_present_at_most_one_msi_region)
{
    viommu *v = device_with_regions();
    g_autofree uint8_t *props = NULL;
    int msi = 0;

    cr_assert_eq(viommu_endpoint_add_resv(v, 1, 0x100000, 0x1fffff, VIRTIO_IOMMU_RESV_MEM_T_MSI),
                 -EINVAL);
    props = probe_ok(v, 1);
    for (size_t off = 0; off + 24 <= PROBE_SIZE; off += 24) {
        property p = read_property(props + off);
        if (p.type == VIRTIO_IOMMU_PROBE_T_NONE)
            break;
        msi += p.subtype == VIRTIO_IOMMU_RESV_MEM_T_MSI;
    }
    cr_assert_eq(msi, 1);
    viommu_free(v);
}

Test(resv_mem, device_should_not_present_overlapping_regions)
{
    viommu *v = device_with_regions();
    g_autofree uint8_t *props = NULL;

    cr_assert_eq(viommu_endpoint_add_resv(v, 1, 0x8800, 0x9fff, VIRTIO_IOMMU_RESV_MEM_T_RESERVED),
                 -EINVAL);
    cr_assert_eq(viommu_endpoint_add_resv(v, 1, 0x0, UINT64_MAX, VIRTIO_IOMMU_RESV_MEM_T_RESERVED),
                 -EINVAL);
    props = probe_ok(v, 1);
    cr_assert_eq(read_property(props + 48).type, VIRTIO_IOMMU_PROBE_T_NONE, "still two");
    viommu_free(v);
}

Test(resv_mem, device_should_reject_maps_overlapping_a_region)
{
    viommu *v = device_with_regions();

    cr_assert_eq(spec_attach(v, 1, 1, 0), OK);
    cr_assert_neq(spec_map(v, 1, 0x8000, 0x8fff, 0x0, VIRTIO_IOMMU_MAP_F_READ), OK);
    cr_assert_neq(spec_map(v, 1, 0x0, 0xffff, 0x0, VIRTIO_IOMMU_MAP_F_READ), OK);
    cr_assert_neq(spec_map(v, 1, 0xfeeff000, 0xfef00fff, 0x0, VIRTIO_IOMMU_MAP_F_WRITE), OK);
    cr_assert_eq(spec_mapping_count(v, 1), 0);
    cr_assert_eq(spec_map(v, 1, 0x9000, 0x9fff, 0x0, VIRTIO_IOMMU_MAP_F_READ), OK);
    viommu_free(v);
}

Test(resv_mem, device_should_keep_region_accesses_from_other_components)
{
    viommu *v = device_with_regions();
    uint64_t gpa;

    cr_assert_eq(spec_attach(v, 1, 1, 0), OK);
    cr_assert_eq(spec_attach(v, 1, 2, 0), OK);
    /* Another endpoint of the domain cannot get a mapping over the region either. */
    cr_assert_neq(spec_map(v, 1, 0x8000, 0x8fff, 0x20000, VIRTIO_IOMMU_MAP_F_WRITE), OK);
    /* An access into a region reaches no guest memory but its own address, if any. */
    for (uint64_t iova = 0x8000; iova <= 0x8fff; iova += 0x400) {
        if (spec_access(v, 1, iova, VIOMMU_ACCESS_WRITE, &gpa))
            cr_assert_eq(gpa, iova);
    }
    if (spec_access(v, 1, 0xfee00000, VIOMMU_ACCESS_WRITE, &gpa))
        cr_assert_eq(gpa, 0xfee00000);
    viommu_free(v);
}

/* ---- Fault reporting -------------------------------------------------- */

/* A device with bypass off, endpoint 1 in domain 1 mapping [0x1000, 0x1fff] read-only. */
static viommu *faulting_device(void)
{
    viommu_config cfg;
    viommu *v;

    viommu_config_init(&cfg);
    cfg.bypass = false;
    v = spec_device_with(&cfg, SPEC_ALL_OFFERED, SPEC_ENDPOINTS);
    cr_assert_eq(spec_attach(v, 1, 1, 0), OK);
    cr_assert_eq(spec_map(v, 1, 0x1000, 0x1fff, 0x0, VIRTIO_IOMMU_MAP_F_READ), OK);
    return v;
}

Test(faults, device_should_zero_reserved_fields)
{
    viommu *v = faulting_device();
    spec_events ev = {0};

    spec_events_post(v, &ev, 0, 24);
    cr_assert_not(spec_access(v, 1, 0x1000, VIOMMU_ACCESS_WRITE, NULL));
    cr_assert(ev.completed[0]);
    cr_assert_eq(ev.used[0], 24);
    cr_assert(ev.buf[0][1] == 0 && ev.buf[0][2] == 0 && ev.buf[0][3] == 0, "reserved");
    cr_assert_eq(spec_get_le32(ev.buf[0] + 12), 0, "reserved1");
    viommu_free(v);
}

Test(faults, device_should_zero_undefined_flags)
{
    viommu *v = faulting_device();
    spec_events ev = {0};
    const uint32_t defined =
        VIRTIO_IOMMU_FAULT_F_READ | VIRTIO_IOMMU_FAULT_F_WRITE | VIRTIO_IOMMU_FAULT_F_ADDRESS;

    spec_events_post(v, &ev, 0, 24);
    spec_events_post(v, &ev, 1, 24);
    cr_assert_not(spec_access(v, 1, 0x1000, VIOMMU_ACCESS_WRITE, NULL));
    cr_assert_not(spec_access(v, 2, 0x5000, VIOMMU_ACCESS_READ, NULL));
    cr_assert(ev.completed[0] && ev.completed[1]);
    cr_assert_eq(spec_get_le32(ev.buf[0] + 4) & ~defined, 0);
    cr_assert_eq(spec_get_le32(ev.buf[1] + 4) & ~defined, 0);
    viommu_free(v);
}

Test(faults, device_should_write_a_valid_endpoint)
{
    viommu *v = faulting_device();
    spec_events ev = {0};

    spec_events_post(v, &ev, 0, 24);
    spec_events_post(v, &ev, 1, 24);
    cr_assert_not(spec_access(v, 3, 0x1000, VIOMMU_ACCESS_READ, NULL));
    cr_assert_not(spec_access(v, 1, 0x3000, VIOMMU_ACCESS_READ, NULL));
    cr_assert_eq(spec_get_le32(ev.buf[0] + 8), 3);
    cr_assert_eq(spec_get_le32(ev.buf[1] + 8), 1);
    viommu_free(v);
}

Test(faults, device_may_omit_the_address)
{
    viommu *v = faulting_device();
    spec_events ev = {0};

    spec_events_post(v, &ev, 0, 24);
    cr_assert_not(spec_access(v, 1, 0x1abc, VIOMMU_ACCESS_WRITE, NULL));
    cr_assert(ev.completed[0]);
    /* When the address is given, it is the one that faulted. */
    if (spec_get_le32(ev.buf[0] + 4) & VIRTIO_IOMMU_FAULT_F_ADDRESS)
        cr_assert_eq(spec_get_le64(ev.buf[0] + 16), 0x1abc);
    viommu_free(v);
}

Test(faults, device_should_not_split_a_report_over_buffers)
{
    viommu *v = faulting_device();
    spec_events ev = {0};

    spec_events_post(v, &ev, 0, 12);
    spec_events_post(v, &ev, 1, 12);
    cr_assert_not(spec_access(v, 1, 0x1000, VIOMMU_ACCESS_WRITE, NULL));
    /* No buffer holds a piece of the report: each returned empty, or not at all. */
    for (int i = 0; i < 2; i++) {
        if (ev.completed[i])
            cr_assert_eq(ev.used[i], 0, "buffer %d", i);
        for (size_t j = 0; j < 12; j++)
            cr_assert_eq(ev.buf[i][j], 0xff, "buffer %d byte %zu written", i, j);
    }
    viommu_free(v);
}

Test(faults, device_reports_the_reason_and_access)
{
    viommu *v = faulting_device();
    spec_events ev = {0};

    spec_events_post(v, &ev, 0, 24);
    spec_events_post(v, &ev, 1, 24);
    spec_events_post(v, &ev, 2, 24);
    cr_assert_not(spec_access(v, 2, 0x1000, VIOMMU_ACCESS_READ, NULL));
    cr_assert_not(spec_access(v, 1, 0x1000, VIOMMU_ACCESS_WRITE, NULL));
    cr_assert_not(spec_access(v, 1, 0x7000, VIOMMU_ACCESS_READ, NULL));
    cr_assert_eq(ev.buf[0][0], VIRTIO_IOMMU_FAULT_R_DOMAIN, "unattached");
    cr_assert(spec_get_le32(ev.buf[0] + 4) & VIRTIO_IOMMU_FAULT_F_READ);
    cr_assert_eq(ev.buf[1][0], VIRTIO_IOMMU_FAULT_R_MAPPING, "wrong protection");
    cr_assert(spec_get_le32(ev.buf[1] + 4) & VIRTIO_IOMMU_FAULT_F_WRITE);
    cr_assert_eq(ev.buf[2][0], VIRTIO_IOMMU_FAULT_R_MAPPING, "not mapped");
    viommu_free(v);
}

Test(faults, device_may_drop_events_without_buffers)
{
    viommu *v = faulting_device();
    viommu_stats before, after;

    viommu_get_stats(v, &before);
    cr_assert_not(spec_access(v, 1, 0x5000, VIOMMU_ACCESS_READ, NULL));
    viommu_get_stats(v, &after);
    cr_assert_eq(after.faults, before.faults + 1);
    cr_assert_eq(after.faults_dropped, before.faults_dropped + 1);
    viommu_free(v);
}

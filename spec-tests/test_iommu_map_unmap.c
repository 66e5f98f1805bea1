/* SPDX-License-Identifier: MIT */
/*
 * Conformance: MAP and UNMAP (virtio spec, IOMMU device, Device
 * operations), and the seven UNMAP examples of the spec, run exactly as
 * written with a 1-byte granule and again scaled to 4 KiB pages.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "spec_iommu.h"

#define R VIRTIO_IOMMU_MAP_F_READ
#define W VIRTIO_IOMMU_MAP_F_WRITE
#define OK VIRTIO_IOMMU_S_OK

/* A default device with endpoint 1 attached to domain 1, bypass off. */
static viommu *attached_device(uint64_t page_size_mask)
{
    viommu_config cfg;
    viommu *v;

    viommu_config_init(&cfg);
    cfg.bypass = false;
    cfg.page_size_mask = page_size_mask;
    v = spec_device_with(&cfg, SPEC_ALL_OFFERED, SPEC_ENDPOINTS);
    cr_assert_eq(spec_attach(v, 1, 1, 0), OK);
    return v;
}

/* ---- MAP ------------------------------------------------------------- */

Test(map, device_should_reject_unaligned_ranges_with_range)
{
    viommu *v = attached_device(0xfffffffffffff000ull);

    cr_assert_eq(spec_map(v, 1, 0x1800, 0x2fff, 0x4000, R), VIRTIO_IOMMU_S_RANGE, "virt_start");
    cr_assert_eq(spec_map(v, 1, 0x1000, 0x1fff, 0x4800, R), VIRTIO_IOMMU_S_RANGE, "phys_start");
    cr_assert_eq(spec_map(v, 1, 0x1000, 0x17ff, 0x4000, R), VIRTIO_IOMMU_S_RANGE, "virt_end + 1");
    cr_assert_eq(spec_map(v, 1, 0x1000, 0x2000, 0x4000, R), VIRTIO_IOMMU_S_RANGE, "virt_end + 1");
    cr_assert_eq(spec_mapping_count(v, 1), 0, "no mapping was created");
    /* virt_end + 1 wraps to 0 for the last page, which is aligned. */
    cr_assert_eq(spec_map(v, 1, 0xfffffffffffff000ull, UINT64_MAX, 0x0, R), OK);
    viommu_free(v);
}

Test(map, device_should_reject_overlaps_with_inval)
{
    viommu *v = attached_device(0xfffffffffffff000ull);
    uint64_t gpa;

    cr_assert_eq(spec_map(v, 1, 0x2000, 0x3fff, 0xa000, R), OK);
    cr_assert_eq(spec_map(v, 1, 0x2000, 0x3fff, 0xb000, R), VIRTIO_IOMMU_S_INVAL);
    cr_assert_eq(spec_map(v, 1, 0x1000, 0x2fff, 0xb000, R), VIRTIO_IOMMU_S_INVAL);
    cr_assert_eq(spec_map(v, 1, 0x3000, 0x4fff, 0xb000, R), VIRTIO_IOMMU_S_INVAL);
    cr_assert_eq(spec_map(v, 1, 0x0, 0xffff, 0xb000, R), VIRTIO_IOMMU_S_INVAL);
    cr_assert_eq(spec_mapping_count(v, 1), 1);
    cr_assert(spec_access(v, 1, 0x2000, VIOMMU_ACCESS_READ, &gpa));
    cr_assert_eq(gpa, 0xa000, "the first mapping is untouched");
    viommu_free(v);
}

Test(map, device_must_reject_unknown_flags_with_inval)
{
    viommu *v = attached_device(0xfffffffffffff000ull);
    viommu *no_mmio = spec_device_with(
        NULL, VIOMMU_FEATURES_DEFAULT & ~VIOMMU_FEATURE(VIRTIO_IOMMU_F_MMIO), SPEC_ENDPOINTS);

    for (int bit = 3; bit < 32; bit++)
        cr_assert_eq(spec_map(v, 1, 0x1000, 0x1fff, 0x0, R | (1u << bit)), VIRTIO_IOMMU_S_INVAL,
                     "bit %d", bit);
    cr_assert_eq(spec_mapping_count(v, 1), 0);
    /* MAP_F_MMIO is unknown unless F_MMIO was negotiated. */
    cr_assert_eq(spec_attach(no_mmio, 1, 1, 0), OK);
    cr_assert_eq(spec_map(no_mmio, 1, 0x1000, 0x1fff, 0x0, R | VIRTIO_IOMMU_MAP_F_MMIO),
                 VIRTIO_IOMMU_S_INVAL);
    cr_assert_eq(spec_map(v, 1, 0x1000, 0x1fff, 0x0, R | W | VIRTIO_IOMMU_MAP_F_MMIO), OK);
    viommu_free(v);
    viommu_free(no_mmio);
}

Test(map, device_should_reject_unknown_domains_with_noent)
{
    viommu *v = attached_device(0xfffffffffffff000ull);

    cr_assert_eq(spec_map(v, 2, 0x1000, 0x1fff, 0x0, R), VIRTIO_IOMMU_S_NOENT);
    cr_assert_eq(spec_mapping_count(v, 2), -1);
    viommu_free(v);
}

Test(map, device_should_reject_bypass_domains_with_inval)
{
    viommu *v = attached_device(0xfffffffffffff000ull);

    cr_assert_eq(spec_attach(v, 2, 2, VIRTIO_IOMMU_ATTACH_F_BYPASS), OK);
    cr_assert_eq(spec_map(v, 2, 0x1000, 0x1fff, 0x0, R), VIRTIO_IOMMU_S_INVAL);
    cr_assert_eq(spec_mapping_count(v, 2), 0);
    viommu_free(v);
}

Test(map, device_must_not_allow_writes_without_the_write_flag)
{
    viommu *v = attached_device(0xfffffffffffff000ull);
    uint64_t gpa;

    cr_assert_eq(spec_map(v, 1, 0x1000, 0x1fff, 0x8000, R), OK);
    cr_assert(spec_access(v, 1, 0x1234, VIOMMU_ACCESS_READ, &gpa));
    cr_assert_eq(gpa, 0x8234);
    cr_assert_not(spec_access(v, 1, 0x1234, VIOMMU_ACCESS_WRITE, NULL));
    cr_assert_not(spec_access(v, 1, 0x1234, VIOMMU_ACCESS_READ | VIOMMU_ACCESS_WRITE, NULL));
    /* A mapping without any permission allows nothing. */
    cr_assert_eq(spec_map(v, 1, 0x4000, 0x4fff, 0x9000, 0), OK);
    cr_assert_not(spec_access(v, 1, 0x4000, VIOMMU_ACCESS_WRITE, NULL));
    viommu_free(v);
}

Test(map, device_may_allow_reads_of_write_only_mappings)
{
    viommu *v = attached_device(0xfffffffffffff000ull);
    uint64_t gpa = 0;

    cr_assert_eq(spec_map(v, 1, 0x1000, 0x1fff, 0x8000, W), OK);
    cr_assert(spec_access(v, 1, 0x1008, VIOMMU_ACCESS_WRITE, &gpa));
    cr_assert_eq(gpa, 0x8008);
    /* A read is either refused or lands at the same place. */
    gpa = 0;
    if (spec_access(v, 1, 0x1008, VIOMMU_ACCESS_READ, &gpa))
        cr_assert_eq(gpa, 0x8008);
    viommu_free(v);
}

Test(map, device_refuses_maps_outside_the_input_range)
{
    viommu_config cfg;
    viommu *v;

    viommu_config_init(&cfg);
    cfg.input_range = (u64_range){0x10000, 0x1ffff};
    v = spec_device_with(&cfg, SPEC_ALL_OFFERED, 1);
    cr_assert_eq(spec_attach(v, 1, 1, 0), OK);
    cr_assert_neq(spec_map(v, 1, 0xf000, 0xffff, 0x0, R), OK);
    cr_assert_neq(spec_map(v, 1, 0x1f000, 0x20fff, 0x0, R), OK);
    cr_assert_eq(spec_mapping_count(v, 1), 0);
    cr_assert_eq(spec_map(v, 1, 0x10000, 0x1ffff, 0x0, R), OK);
    viommu_free(v);
}

Test(map, map_and_unmap_need_f_map_unmap_negotiated)
{
    viommu *v = spec_device_with(NULL, VIOMMU_FEATURE(VIRTIO_IOMMU_F_PROBE), 1);

    cr_assert_eq(spec_attach(v, 1, 1, 0), OK);
    cr_assert_neq(spec_map(v, 1, 0x1000, 0x1fff, 0x0, R), OK);
    cr_assert_eq(spec_mapping_count(v, 1), 0);
    cr_assert_neq(spec_unmap(v, 1, 0, UINT64_MAX), OK);
    viommu_free(v);
}

Test(map, endpoints_translate_va_minus_virt_start_plus_phys_start)
{
    viommu *v = attached_device(0xfffffffffffff000ull);
    uint64_t gpa;

    cr_assert_eq(spec_attach(v, 1, 2, 0), OK);
    cr_assert_eq(spec_map(v, 1, 0x40000, 0x5ffff, 0x123000, R | W), OK);
    for (uint64_t va = 0x40000; va <= 0x5ffff; va += 0x1ff1) {
        cr_assert(spec_access(v, 1, va, VIOMMU_ACCESS_READ, &gpa));
        cr_assert_eq(gpa, va - 0x40000 + 0x123000);
        cr_assert(spec_access(v, 2, va, VIOMMU_ACCESS_WRITE, &gpa), "all attached endpoints");
        cr_assert_eq(gpa, va - 0x40000 + 0x123000);
    }
    cr_assert_not(spec_access(v, 1, 0x60000, VIOMMU_ACCESS_READ, NULL));
    cr_assert_not(spec_access(v, 1, 0x3ffff, VIOMMU_ACCESS_READ, NULL));
    viommu_free(v);
}

/* ---- UNMAP ----------------------------------------------------------- */

Test(unmap, device_may_answer_inval_for_nonzero_reserved)
{
    viommu *v = attached_device(0xfffffffffffff000ull);
    uint8_t buf[SPEC_UNMAP_LEN];
    size_t n;
    int status;

    cr_assert_eq(spec_map(v, 1, 0x1000, 0x1fff, 0x0, R), OK);
    n = spec_enc_unmap(buf, 1, 0x1000, 0x1fff);
    buf[24] = 0x5a;
    status = spec_request(v, buf, n, NULL);
    cr_assert(status == OK || status == VIRTIO_IOMMU_S_INVAL, "status %d", status);
    if (status == OK)
        cr_assert_eq(spec_mapping_count(v, 1), 0, "OK means unmapped");
    viommu_free(v);
}

Test(unmap, device_should_reject_unknown_domains_with_noent)
{
    viommu *v = attached_device(0xfffffffffffff000ull);

    cr_assert_eq(spec_unmap(v, 2, 0x0, 0xfff), VIRTIO_IOMMU_S_NOENT);
    viommu_free(v);
}

Test(unmap, device_should_reject_bypass_domains_with_inval)
{
    viommu *v = attached_device(0xfffffffffffff000ull);

    cr_assert_eq(spec_attach(v, 2, 2, VIRTIO_IOMMU_ATTACH_F_BYPASS), OK);
    cr_assert_eq(spec_unmap(v, 2, 0x0, UINT64_MAX), VIRTIO_IOMMU_S_INVAL);
    viommu_free(v);
}

Test(unmap, device_should_answer_range_and_remove_nothing_when_splitting)
{
    viommu *v = attached_device(0xfffffffffffff000ull);

    cr_assert_eq(spec_map(v, 1, 0x1000, 0x1fff, 0x0, R), OK);
    cr_assert_eq(spec_map(v, 1, 0x2000, 0x3fff, 0x0, R), OK);
    cr_assert_eq(spec_map(v, 1, 0x4000, 0x4fff, 0x0, R), OK);
    /* Covers the first mapping wholly but splits the second. */
    cr_assert_eq(spec_unmap(v, 1, 0x1000, 0x2fff), VIRTIO_IOMMU_S_RANGE);
    /* Splits the second at its start, the third untouched. */
    cr_assert_eq(spec_unmap(v, 1, 0x3000, 0x4fff), VIRTIO_IOMMU_S_RANGE);
    cr_assert_eq(spec_mapping_count(v, 1), 3, "nothing was removed");
    cr_assert(spec_access(v, 1, 0x1000, VIOMMU_ACCESS_READ, NULL));
    cr_assert(spec_access(v, 1, 0x4000, VIOMMU_ACCESS_READ, NULL));
    viommu_free(v);
}

Test(unmap, device_should_remove_mappings_of_a_partly_covered_range)
{
    viommu *v = attached_device(0xfffffffffffff000ull);

    cr_assert_eq(spec_map(v, 1, 0x2000, 0x2fff, 0x0, R), OK);
    cr_assert_eq(spec_map(v, 1, 0x5000, 0x6fff, 0x0, R), OK);
    cr_assert_eq(spec_map(v, 1, 0x9000, 0x9fff, 0x0, R), OK);
    cr_assert_eq(spec_unmap(v, 1, 0x0, 0x7fff), OK);
    cr_assert_eq(spec_mapping_count(v, 1), 1);
    cr_assert_not(spec_access(v, 1, 0x2000, VIOMMU_ACCESS_READ, NULL));
    cr_assert_not(spec_access(v, 1, 0x6000, VIOMMU_ACCESS_READ, NULL));
    cr_assert(spec_access(v, 1, 0x9000, VIOMMU_ACCESS_READ, NULL));
    /* Nothing mapped at all in the range: OK too. */
    cr_assert_eq(spec_unmap(v, 1, 0x100000, 0x1fffff), OK);
    viommu_free(v);
}

Test(unmap, full_range_removes_every_mapping)
{
    viommu *v = attached_device(0xfffffffffffff000ull);

    cr_assert_eq(spec_map(v, 1, 0x0, 0xfff, 0x0, R), OK);
    cr_assert_eq(spec_map(v, 1, 0x7000000000ull, 0x7000000fffull, 0x0, R), OK);
    cr_assert_eq(spec_map(v, 1, 0xfffffffffffff000ull, UINT64_MAX, 0x0, R), OK);
    cr_assert_eq(spec_unmap(v, 1, 0, UINT64_MAX), OK);
    cr_assert_eq(spec_mapping_count(v, 1), 0);
    viommu_free(v);
}

/* ---- The seven UNMAP examples ----------------------------------------- */

/*
 * Each example starts from a blank address space. @scale multiplies the
 * example's byte addresses: 1 runs them exactly as written (1-byte
 * granule, page_size_mask = 1), 0x1000 scales them to 4 KiB pages, where
 * map(a, b) becomes map(a * 4096, (b + 1) * 4096 - 1).
 */
typedef struct example {
    viommu *v;
    uint64_t scale;
} example;

static example example_start(uint64_t scale)
{
    example e = {.v = attached_device(scale == 1 ? 1 : 0xfffffffffffff000ull), .scale = scale};
    return e;
}

static int ex_map(example *e, uint64_t start, uint64_t end)
{
    /* Distinct guest-physical backing per mapping: phys = virt + 1 MiB-scaled. */
    return spec_map(e->v, 1, start * e->scale, (end + 1) * e->scale - 1,
                    (start + 0x100000) * e->scale, R | W);
}

static int ex_unmap(example *e, uint64_t start, uint64_t end)
{
    return spec_unmap(e->v, 1, start * e->scale, (end + 1) * e->scale - 1);
}

/* True when the mapping that starts at @start still translates, end to end. */
static bool ex_mapped(example *e, uint64_t start, uint64_t end)
{
    uint64_t gpa_first, gpa_last;
    bool first = spec_access(e->v, 1, start * e->scale, VIOMMU_ACCESS_READ, &gpa_first);
    bool last = spec_access(e->v, 1, (end + 1) * e->scale - 1, VIOMMU_ACCESS_READ, &gpa_last);

    cr_assert_eq(first, last, "a mapping is present or gone as a whole");
    if (first) {
        cr_assert_eq(gpa_first, (start + 0x100000) * e->scale);
        cr_assert_eq(gpa_last, (end + 1 + 0x100000) * e->scale - 1);
    }
    return first;
}

static void example_end(example *e)
{
    viommu_free(e->v);
}

/* (1) unmap(virt_start=0, virt_end=4) -> succeeds, doesn't unmap anything */
static void example_1(uint64_t scale)
{
    example e = example_start(scale);

    cr_assert_eq(ex_unmap(&e, 0, 4), OK);
    cr_assert_eq(spec_mapping_count(e.v, 1), 0);
    example_end(&e);
}

/* (2) a = map(virt_start=0, virt_end=9); unmap(0, 9) -> succeeds, unmaps a */
static void example_2(uint64_t scale)
{
    example e = example_start(scale);

    cr_assert_eq(ex_map(&e, 0, 9), OK);
    cr_assert(ex_mapped(&e, 0, 9));
    cr_assert_eq(ex_unmap(&e, 0, 9), OK);
    cr_assert_not(ex_mapped(&e, 0, 9));
    cr_assert_eq(spec_mapping_count(e.v, 1), 0);
    example_end(&e);
}

/* (3) a = map(0, 4); b = map(5, 9); unmap(0, 9) -> succeeds, unmaps a and b */
static void example_3(uint64_t scale)
{
    example e = example_start(scale);

    cr_assert_eq(ex_map(&e, 0, 4), OK);
    cr_assert_eq(ex_map(&e, 5, 9), OK);
    cr_assert_eq(ex_unmap(&e, 0, 9), OK);
    cr_assert_not(ex_mapped(&e, 0, 4));
    cr_assert_not(ex_mapped(&e, 5, 9));
    cr_assert_eq(spec_mapping_count(e.v, 1), 0);
    example_end(&e);
}

/* (4) a = map(0, 9); unmap(0, 4) -> fails, doesn't unmap anything */
static void example_4(uint64_t scale)
{
    example e = example_start(scale);

    cr_assert_eq(ex_map(&e, 0, 9), OK);
    cr_assert_eq(ex_unmap(&e, 0, 4), VIRTIO_IOMMU_S_RANGE);
    cr_assert(ex_mapped(&e, 0, 9));
    cr_assert_eq(spec_mapping_count(e.v, 1), 1);
    example_end(&e);
}

/* (5) a = map(0, 4); b = map(5, 9); unmap(0, 4) -> succeeds, unmaps a */
static void example_5(uint64_t scale)
{
    example e = example_start(scale);

    cr_assert_eq(ex_map(&e, 0, 4), OK);
    cr_assert_eq(ex_map(&e, 5, 9), OK);
    cr_assert_eq(ex_unmap(&e, 0, 4), OK);
    cr_assert_not(ex_mapped(&e, 0, 4));
    cr_assert(ex_mapped(&e, 5, 9));
    cr_assert_eq(spec_mapping_count(e.v, 1), 1);
    example_end(&e);
}

/* (6) a = map(0, 4); unmap(0, 9) -> succeeds, unmaps a */
static void example_6(uint64_t scale)
{
    example e = example_start(scale);

    cr_assert_eq(ex_map(&e, 0, 4), OK);
    cr_assert_eq(ex_unmap(&e, 0, 9), OK);
    cr_assert_not(ex_mapped(&e, 0, 4));
    cr_assert_eq(spec_mapping_count(e.v, 1), 0);
    example_end(&e);
}

/* (7) a = map(0, 4); b = map(10, 14); unmap(0, 14) -> succeeds, unmaps a and b */
static void example_7(uint64_t scale)
{
    example e = example_start(scale);

    cr_assert_eq(ex_map(&e, 0, 4), OK);
    cr_assert_eq(ex_map(&e, 10, 14), OK);
    cr_assert_eq(ex_unmap(&e, 0, 14), OK);
    cr_assert_not(ex_mapped(&e, 0, 4));
    cr_assert_not(ex_mapped(&e, 10, 14));
    cr_assert_eq(spec_mapping_count(e.v, 1), 0);
    example_end(&e);
}

Test(unmap_examples, example_1_bytes)
{
    example_1(1);
}
Test(unmap_examples, example_2_bytes)
{
    example_2(1);
}
Test(unmap_examples, example_3_bytes)
{
    example_3(1);
}
Test(unmap_examples, example_4_bytes)
{
    example_4(1);
}
Test(unmap_examples, example_5_bytes)
{
    example_5(1);
}
Test(unmap_examples, example_6_bytes)
{
    example_6(1);
}
Test(unmap_examples, example_7_bytes)
{
    example_7(1);
}
Test(unmap_examples, example_1_4k_pages)
{
    example_1(0x1000);
}
Test(unmap_examples, example_2_4k_pages)
{
    example_2(0x1000);
}
Test(unmap_examples, example_3_4k_pages)
{
    example_3(0x1000);
}
Test(unmap_examples, example_4_4k_pages)
{
    example_4(0x1000);
}
Test(unmap_examples, example_5_4k_pages)
{
    example_5(0x1000);
}
Test(unmap_examples, example_6_4k_pages)
{
    example_6(0x1000);
}
Test(unmap_examples, example_7_4k_pages)
{
    example_7(0x1000);
}

/* SPDX-License-Identifier: MIT */
/* ATTACH, DETACH, MAP and UNMAP semantics on domains and endpoints. */
#include "viommu_test.h"

Test(viommu_attach, creates_the_domain_on_first_attach)
{
    viommu *v = test_device(0, 2);
    cr_assert_eq(test_attach(v, 4, 1, 0), VIRTIO_IOMMU_S_OK);
    uint32_t neps = 0;
    bool bypass = true;
    cr_assert_eq(viommu_domain_info(v, 4, &bypass, NULL, &neps), 0);
    cr_assert_eq(neps, 1);
    cr_assert_not(bypass);
    cr_assert_eq(test_attach(v, 4, 2, 0), VIRTIO_IOMMU_S_OK);
    viommu_domain_info(v, 4, NULL, NULL, &neps);
    cr_assert_eq(neps, 2);
    viommu_free(v);
}

Test(viommu_attach, rejects_an_unknown_endpoint_with_noent)
{
    viommu *v = test_device(0, 1);
    cr_assert_eq(test_attach(v, 1, 9, 0), VIRTIO_IOMMU_S_NOENT);
    cr_assert_eq(viommu_domain_info(v, 1, NULL, NULL, NULL), -ENOENT, "no domain created");
    viommu_free(v);
}

Test(viommu_attach, rejects_nonzero_reserved_with_inval)
{
    viommu *v = test_device(0, 1);
    struct virtio_iommu_req_attach r = test_attach_req(1, 1, 0);
    r.reserved[3] = 1;
    cr_assert_eq(test_send(v, &r, 20, NULL), VIRTIO_IOMMU_S_INVAL);
    cr_assert_eq(viommu_endpoint_domain(v, 1, NULL), -ENODEV);
    viommu_free(v);
}

Test(viommu_attach, rejects_unknown_flags_with_inval)
{
    viommu *v = test_device(0, 1);
    cr_assert_eq(test_attach(v, 1, 1, 2), VIRTIO_IOMMU_S_INVAL);
    viommu_set_driver_features(v, VIOMMU_FEATURE(VIRTIO_IOMMU_F_MAP_UNMAP));
    cr_assert_eq(test_attach(v, 1, 1, VIRTIO_IOMMU_ATTACH_F_BYPASS), VIRTIO_IOMMU_S_INVAL,
                 "ATTACH_F_BYPASS is unknown without F_BYPASS_CONFIG negotiated");
    viommu_free(v);
}

Test(viommu_attach, rejects_a_domain_outside_domain_range)
{
    viommu_config cfg;
    viommu_config_init(&cfg);
    cfg.domain_first = 1;
    cfg.domain_last = 10;
    viommu *v = viommu_new(&cfg, NULL);
    viommu_set_driver_features(v, viommu_device_features(v));
    viommu_endpoint_add(v, 1);
    cr_assert_eq(test_attach(v, 0, 1, 0), VIRTIO_IOMMU_S_RANGE);
    cr_assert_eq(test_attach(v, 11, 1, 0), VIRTIO_IOMMU_S_RANGE);
    cr_assert_eq(test_attach(v, 10, 1, 0), VIRTIO_IOMMU_S_OK);
    viommu_free(v);
}

Test(viommu_attach, moves_an_endpoint_and_frees_the_emptied_domain)
{
    viommu *v = test_device(0, 1);
    cr_assert_eq(test_attach(v, 1, 1, 0), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(test_map(v, 1, 0, 0xfff, 0, RW), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(test_attach(v, 2, 1, 0), VIRTIO_IOMMU_S_OK);
    uint32_t d;
    viommu_endpoint_domain(v, 1, &d);
    cr_assert_eq(d, 2);
    cr_assert_eq(viommu_domain_info(v, 1, NULL, NULL, NULL), -ENOENT);
    viommu_stats st;
    viommu_get_stats(v, &st);
    cr_assert_eq(st.mappings, 0, "the old domain's mappings died with it");
    cr_assert_eq(st.domains, 1);
    viommu_free(v);
}

Test(viommu_attach, accepts_reattaching_to_the_same_domain)
{
    viommu *v = test_device(0, 1);
    cr_assert_eq(test_attach(v, 1, 1, 0), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(test_map(v, 1, 0, 0xfff, 0, RW), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(test_attach(v, 1, 1, 0), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(test_mappings(v, 1), 1, "mappings kept");
    viommu_free(v);
}

Test(viommu_attach, rejects_bypass_flag_inconsistent_with_the_domain)
{
    viommu *v = test_device(0, 2);
    cr_assert_eq(test_attach(v, 1, 1, VIRTIO_IOMMU_ATTACH_F_BYPASS), VIRTIO_IOMMU_S_OK);
    bool bypass = false;
    viommu_domain_info(v, 1, &bypass, NULL, NULL);
    cr_assert(bypass);
    cr_assert_eq(test_attach(v, 1, 2, 0), VIRTIO_IOMMU_S_INVAL);
    cr_assert_eq(test_attach(v, 2, 2, 0), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(test_attach(v, 2, 1, VIRTIO_IOMMU_ATTACH_F_BYPASS), VIRTIO_IOMMU_S_INVAL);
    uint32_t d;
    viommu_endpoint_domain(v, 1, &d);
    cr_assert_eq(d, 1, "a refused attach leaves the endpoint where it was");
    viommu_free(v);
}

Test(viommu_attach, refuses_a_domain_whose_mappings_hit_reserved_regions)
{
    viommu *v = test_device(0, 2);
    cr_assert_eq(viommu_endpoint_add_resv(v, 2, 0x8000, 0x8fff, 0), 0);
    cr_assert_eq(test_attach(v, 1, 1, 0), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(test_map(v, 1, 0x8000, 0x8fff, 0, RW), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(test_attach(v, 1, 2, 0), VIRTIO_IOMMU_S_UNSUPP);
    cr_assert_eq(viommu_endpoint_domain(v, 2, NULL), -ENODEV);
    viommu_free(v);
}

Test(viommu_attach, gives_nomem_beyond_max_domains)
{
    viommu_config cfg;
    viommu_config_init(&cfg);
    cfg.max_domains = 1;
    viommu *v = viommu_new(&cfg, NULL);
    viommu_set_driver_features(v, viommu_device_features(v));
    viommu_endpoint_add(v, 1);
    viommu_endpoint_add(v, 2);
    cr_assert_eq(test_attach(v, 1, 1, 0), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(test_attach(v, 2, 2, 0), VIRTIO_IOMMU_S_NOMEM);
    cr_assert_eq(test_attach(v, 1, 2, 0), VIRTIO_IOMMU_S_OK, "joining needs no new domain");
    cr_assert_eq(test_detach(v, 1, 2), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(test_attach(v, 3, 1, 0), VIRTIO_IOMMU_S_OK, "moving frees the old one first");
    viommu_free(v);
}

Test(viommu_detach, rejects_an_unknown_endpoint_with_noent)
{
    viommu *v = test_device(0, 1);
    cr_assert_eq(test_detach(v, 1, 5), VIRTIO_IOMMU_S_NOENT);
    viommu_free(v);
}

Test(viommu_detach, rejects_a_domain_the_endpoint_is_not_in)
{
    viommu *v = test_device(0, 2);
    cr_assert_eq(test_detach(v, 1, 1), VIRTIO_IOMMU_S_INVAL, "not attached");
    cr_assert_eq(test_attach(v, 1, 1, 0), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(test_attach(v, 2, 2, 0), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(test_detach(v, 2, 1), VIRTIO_IOMMU_S_INVAL, "attached elsewhere");
    cr_assert_eq(viommu_endpoint_domain(v, 1, NULL), 0);
    viommu_free(v);
}

Test(viommu_detach, ignores_reserved)
{
    viommu *v = test_device(0, 1);
    cr_assert_eq(test_attach(v, 1, 1, 0), VIRTIO_IOMMU_S_OK);
    struct virtio_iommu_req_detach r;
    memset(&r, 0, sizeof(r));
    r.head.type = VIRTIO_IOMMU_T_DETACH;
    r.domain = htole32(1);
    r.endpoint = htole32(1);
    memset(r.reserved, 0xaa, sizeof(r.reserved));
    cr_assert_eq(test_send(v, &r, 20, NULL), VIRTIO_IOMMU_S_OK);
    viommu_free(v);
}

Test(viommu_detach, destroys_the_domain_with_its_last_endpoint)
{
    viommu *v = test_device(0, 2);
    test_attach(v, 1, 1, 0);
    test_attach(v, 1, 2, 0);
    cr_assert_eq(test_map(v, 1, 0, 0xfff, 0, RW), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(test_detach(v, 1, 1), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(test_mappings(v, 1), 1, "still one endpoint");
    cr_assert_eq(test_detach(v, 1, 2), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(viommu_domain_info(v, 1, NULL, NULL, NULL), -ENOENT);
    cr_assert_eq(test_map(v, 1, 0, 0xfff, 0, RW), VIRTIO_IOMMU_S_NOENT);
    cr_assert_eq(test_attach(v, 1, 1, 0), VIRTIO_IOMMU_S_OK, "the ID can be reused");
    cr_assert_eq(test_mappings(v, 1), 0, "a new domain starts empty");
    viommu_free(v);
}

static viommu *attached(uint64_t mask)
{
    viommu *v = test_device(mask, 1);
    cr_assert_eq(test_attach(v, 1, 1, 0), VIRTIO_IOMMU_S_OK);
    return v;
}

Test(viommu_map, rejects_unaligned_virt_start_phys_start_and_virt_end)
{
    viommu *v = attached(0);
    cr_assert_eq(test_map(v, 1, 0x1001, 0x1fff, 0, RW), VIRTIO_IOMMU_S_RANGE);
    cr_assert_eq(test_map(v, 1, 0x1000, 0x1fff, 0x10, RW), VIRTIO_IOMMU_S_RANGE);
    cr_assert_eq(test_map(v, 1, 0x1000, 0x1ffe, 0, RW), VIRTIO_IOMMU_S_RANGE);
    cr_assert_eq(test_mappings(v, 1), 0);
    cr_assert_eq(test_map(v, 1, 0x1000, 0x1fff, 0x3000, RW), VIRTIO_IOMMU_S_OK);
    viommu_free(v);
}

Test(viommu_map, accepts_the_last_page_of_the_address_space)
{
    viommu *v = attached(0);
    cr_assert_eq(test_map(v, 1, UINT64_C(0xfffffffffffff000), UINT64_MAX, 0, RW),
                 VIRTIO_IOMMU_S_OK);
    viommu_free(v);
}

Test(viommu_map, rejects_virt_end_below_virt_start)
{
    viommu *v = attached(1);
    cr_assert_eq(test_map(v, 1, 10, 9, 0, RW), VIRTIO_IOMMU_S_INVAL);
    viommu_free(v);
}

Test(viommu_map, rejects_a_physical_range_that_wraps)
{
    viommu *v = attached(0);
    cr_assert_eq(test_map(v, 1, 0, 0x1fff, UINT64_C(0xfffffffffffff000), RW), VIRTIO_IOMMU_S_RANGE);
    viommu_free(v);
}

Test(viommu_map, rejects_ranges_outside_input_range)
{
    viommu_config cfg;
    viommu_config_init(&cfg);
    cfg.input_range = (u64_range){0x10000, 0xfffff};
    viommu *v = viommu_new(&cfg, NULL);
    viommu_set_driver_features(v, viommu_device_features(v));
    viommu_endpoint_add(v, 1);
    test_attach(v, 1, 1, 0);
    cr_assert_eq(test_map(v, 1, 0xf000, 0x10fff, 0, RW), VIRTIO_IOMMU_S_RANGE);
    cr_assert_eq(test_map(v, 1, 0xff000, 0x100fff, 0, RW), VIRTIO_IOMMU_S_RANGE);
    cr_assert_eq(test_map(v, 1, 0x10000, 0xfffff, 0, RW), VIRTIO_IOMMU_S_OK);
    viommu_free(v);
}

Test(viommu_map, rejects_overlap_with_inval)
{
    viommu *v = attached(0);
    cr_assert_eq(test_map(v, 1, 0x2000, 0x3fff, 0, RW), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(test_map(v, 1, 0x3000, 0x4fff, 0, RW), VIRTIO_IOMMU_S_INVAL);
    cr_assert_eq(test_map(v, 1, 0x1000, 0x2fff, 0, RW), VIRTIO_IOMMU_S_INVAL);
    cr_assert_eq(test_map(v, 1, 0x2000, 0x3fff, 0, RW), VIRTIO_IOMMU_S_INVAL);
    cr_assert_eq(test_mappings(v, 1), 1);
    viommu_free(v);
}

Test(viommu_map, rejects_unknown_flags_and_mmio_without_f_mmio)
{
    viommu *v = attached(0);
    cr_assert_eq(test_map(v, 1, 0, 0xfff, 0, 8), VIRTIO_IOMMU_S_INVAL);
    cr_assert_eq(test_map(v, 1, 0, 0xfff, 0, VIRTIO_IOMMU_MAP_F_MMIO | VIRTIO_IOMMU_MAP_F_WRITE),
                 VIRTIO_IOMMU_S_OK);
    viommu_set_driver_features(v, viommu_device_features(v) & ~VIOMMU_FEATURE(VIRTIO_IOMMU_F_MMIO));
    cr_assert_eq(test_map(v, 1, 0x1000, 0x1fff, 0, VIRTIO_IOMMU_MAP_F_MMIO), VIRTIO_IOMMU_S_INVAL);
    cr_assert_eq(test_mappings(v, 1), 1);
    viommu_free(v);
}

Test(viommu_map, rejects_an_unknown_domain_with_noent)
{
    viommu *v = attached(0);
    cr_assert_eq(test_map(v, 2, 0, 0xfff, 0, RW), VIRTIO_IOMMU_S_NOENT);
    viommu_free(v);
}

Test(viommu_map, rejects_a_bypass_domain_with_inval)
{
    viommu *v = test_device(0, 1);
    test_attach(v, 1, 1, VIRTIO_IOMMU_ATTACH_F_BYPASS);
    cr_assert_eq(test_map(v, 1, 0, 0xfff, 0, RW), VIRTIO_IOMMU_S_INVAL);
    cr_assert_eq(test_unmap(v, 1, 0, 0xfff), VIRTIO_IOMMU_S_INVAL);
    viommu_free(v);
}

Test(viommu_map, rejects_reserved_regions_of_attached_endpoints)
{
    viommu *v = test_device(0, 1);
    viommu_endpoint_add_resv(v, 1, 0xfee00000, 0xfeefffff, VIRTIO_IOMMU_RESV_MEM_T_MSI);
    test_attach(v, 1, 1, 0);
    cr_assert_eq(test_map(v, 1, 0xfee00000, 0xfee00fff, 0, RW), VIRTIO_IOMMU_S_RANGE);
    cr_assert_eq(test_map(v, 1, 0xfed00000, 0xfee00fff, 0, RW), VIRTIO_IOMMU_S_RANGE);
    cr_assert_eq(test_map(v, 1, 0xfef00000, 0xfef00fff, 0, RW), VIRTIO_IOMMU_S_OK);
    viommu_free(v);
}

Test(viommu_map, gives_nomem_beyond_max_mappings_per_domain)
{
    viommu_config cfg;
    viommu_config_init(&cfg);
    cfg.max_mappings_per_domain = 2;
    viommu *v = viommu_new(&cfg, NULL);
    viommu_set_driver_features(v, viommu_device_features(v));
    viommu_endpoint_add(v, 1);
    test_attach(v, 1, 1, 0);
    cr_assert_eq(test_map(v, 1, 0, 0xfff, 0, RW), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(test_map(v, 1, 0x1000, 0x1fff, 0, RW), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(test_map(v, 1, 0x2000, 0x2fff, 0, RW), VIRTIO_IOMMU_S_NOMEM);
    cr_assert_eq(test_unmap(v, 1, 0, 0xfff), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(test_map(v, 1, 0x2000, 0x2fff, 0, RW), VIRTIO_IOMMU_S_OK);
    viommu_free(v);
}

Test(viommu_map, needs_map_unmap_negotiated)
{
    viommu *v = attached(0);
    viommu_set_driver_features(v, 0);
    cr_assert_eq(test_map(v, 1, 0, 0xfff, 0, RW), VIRTIO_IOMMU_S_UNSUPP);
    cr_assert_eq(test_unmap(v, 1, 0, 0xfff), VIRTIO_IOMMU_S_UNSUPP);
    viommu_free(v);
}

static int collect(void *opaque, const viommu_mapping *m)
{
    GArray *a = opaque;
    g_array_append_val(a, *m);
    return 0;
}

Test(viommu_map, stores_range_phys_and_flags)
{
    viommu *v = attached(0);
    cr_assert_eq(test_map(v, 1, 0x4000, 0x5fff, 0x90000, VIRTIO_IOMMU_MAP_F_READ),
                 VIRTIO_IOMMU_S_OK);
    GArray *a = g_array_new(FALSE, FALSE, sizeof(viommu_mapping));
    cr_assert_eq(viommu_domain_foreach_mapping(v, 1, 0, UINT64_MAX, collect, a), 0);
    cr_assert_eq(a->len, 1);
    viommu_mapping m = g_array_index(a, viommu_mapping, 0);
    cr_assert_eq(m.virt_start, 0x4000);
    cr_assert_eq(m.virt_end, 0x5fff);
    cr_assert_eq(m.phys_start, 0x90000);
    cr_assert_eq(m.flags, VIRTIO_IOMMU_MAP_F_READ);
    g_array_free(a, TRUE);
    cr_assert_eq(viommu_domain_foreach_mapping(v, 9, 0, 1, collect, NULL), -ENOENT);
    viommu_free(v);
}

/* The seven UNMAP examples of the spec, byte granular. */
Test(viommu_unmap, example_1_unmaps_nothing_and_succeeds)
{
    viommu *v = attached(1);
    cr_assert_eq(test_unmap(v, 1, 0, 4), VIRTIO_IOMMU_S_OK);
    viommu_free(v);
}

Test(viommu_unmap, example_2_unmaps_an_exact_mapping)
{
    viommu *v = attached(1);
    cr_assert_eq(test_map(v, 1, 0, 9, 0, RW), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(test_unmap(v, 1, 0, 9), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(test_mappings(v, 1), 0);
    viommu_free(v);
}

Test(viommu_unmap, example_3_unmaps_two_adjacent_mappings)
{
    viommu *v = attached(1);
    test_map(v, 1, 0, 4, 0, RW);
    test_map(v, 1, 5, 9, 0, RW);
    cr_assert_eq(test_unmap(v, 1, 0, 9), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(test_mappings(v, 1), 0);
    viommu_free(v);
}

Test(viommu_unmap, example_4_refuses_to_split_and_removes_nothing)
{
    viommu *v = attached(1);
    test_map(v, 1, 0, 9, 0, RW);
    cr_assert_eq(test_unmap(v, 1, 0, 4), VIRTIO_IOMMU_S_RANGE);
    cr_assert_eq(test_mappings(v, 1), 1);
    viommu_free(v);
}

Test(viommu_unmap, example_5_unmaps_only_the_covered_mapping)
{
    viommu *v = attached(1);
    test_map(v, 1, 0, 4, 0, RW);
    test_map(v, 1, 5, 9, 0, RW);
    cr_assert_eq(test_unmap(v, 1, 0, 4), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(test_mappings(v, 1), 1);
    viommu_free(v);
}

Test(viommu_unmap, example_6_spills_over_unmapped_addresses)
{
    viommu *v = attached(1);
    test_map(v, 1, 0, 4, 0, RW);
    cr_assert_eq(test_unmap(v, 1, 0, 9), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(test_mappings(v, 1), 0);
    viommu_free(v);
}

Test(viommu_unmap, example_7_unmaps_across_a_hole)
{
    viommu *v = attached(1);
    test_map(v, 1, 0, 4, 0, RW);
    test_map(v, 1, 10, 14, 0, RW);
    cr_assert_eq(test_unmap(v, 1, 0, 14), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(test_mappings(v, 1), 0);
    viommu_free(v);
}

Test(viommu_unmap, is_atomic_when_the_last_mapping_would_be_split)
{
    viommu *v = attached(0);
    test_map(v, 1, 0x0000, 0x0fff, 0, RW);
    test_map(v, 1, 0x1000, 0x1fff, 0, RW);
    test_map(v, 1, 0x2000, 0x3fff, 0, RW);
    cr_assert_eq(test_unmap(v, 1, 0, 0x2fff), VIRTIO_IOMMU_S_RANGE);
    cr_assert_eq(test_mappings(v, 1), 3, "nothing removed, unlike QEMU");
    viommu_free(v);
}

Test(viommu_unmap, removes_everything_with_the_whole_address_space)
{
    viommu *v = attached(0);
    for (uint64_t i = 0; i < 100; i++)
        cr_assert_eq(test_map(v, 1, i * 0x3000, i * 0x3000 + 0xfff, i << 12, RW),
                     VIRTIO_IOMMU_S_OK);
    test_map(v, 1, UINT64_C(0xfffffffffffff000), UINT64_MAX, 0, RW);
    cr_assert_eq(test_unmap(v, 1, 0, UINT64_MAX), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(test_mappings(v, 1), 0);
    viommu_stats st;
    viommu_get_stats(v, &st);
    cr_assert_eq(st.mappings, 0);
    viommu_free(v);
}

Test(viommu_unmap, rejects_unknown_domain_reserved_and_inverted_ranges)
{
    viommu *v = attached(0);
    test_map(v, 1, 0, 0xfff, 0, RW);
    cr_assert_eq(test_unmap(v, 2, 0, 0xfff), VIRTIO_IOMMU_S_NOENT);
    cr_assert_eq(test_unmap(v, 1, 0x1000, 0xfff), VIRTIO_IOMMU_S_INVAL);
    struct virtio_iommu_req_unmap r = test_unmap_req(1, 0, 0xfff);
    r.reserved[0] = 1;
    cr_assert_eq(test_send(v, &r, 28, NULL), VIRTIO_IOMMU_S_INVAL);
    cr_assert_eq(test_mappings(v, 1), 1, "a refused unmap removes nothing");
    viommu_free(v);
}

/* The same examples scaled to 4 KiB pages. */
Test(viommu_unmap, examples_hold_with_4k_pages)
{
    viommu *v = attached(0);
    const uint64_t P = 0x1000;
    cr_assert_eq(test_unmap(v, 1, 0, 5 * P - 1), VIRTIO_IOMMU_S_OK);
    test_map(v, 1, 0, 10 * P - 1, 0, RW);
    cr_assert_eq(test_unmap(v, 1, 0, 5 * P - 1), VIRTIO_IOMMU_S_RANGE);
    cr_assert_eq(test_unmap(v, 1, 0, 10 * P - 1), VIRTIO_IOMMU_S_OK);
    test_map(v, 1, 0, 5 * P - 1, 0, RW);
    test_map(v, 1, 10 * P, 15 * P - 1, 0, RW);
    cr_assert_eq(test_unmap(v, 1, 0, 15 * P - 1), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(test_mappings(v, 1), 0);
    viommu_free(v);
}

/*
 * A naive model of one domain over a 64-byte address space (byte
 * granule): owner[a] is the index of the mapping covering a, or -1.
 * Random MAP and UNMAP requests must get the model's status and leave
 * the same mappings.
 */
typedef struct model {
    int owner[64];
    int next_id;
} model;

static int model_map(model *m, unsigned s, unsigned e)
{
    for (unsigned a = s; a <= e; a++)
        if (m->owner[a] >= 0)
            return VIRTIO_IOMMU_S_INVAL;
    for (unsigned a = s; a <= e; a++)
        m->owner[a] = m->next_id;
    m->next_id++;
    return VIRTIO_IOMMU_S_OK;
}

static int model_unmap(model *m, unsigned s, unsigned e)
{
    /* A mapping crossing either end of the range would be split. */
    if (s > 0 && m->owner[s] >= 0 && m->owner[s - 1] == m->owner[s])
        return VIRTIO_IOMMU_S_RANGE;
    if (e < 63 && m->owner[e] >= 0 && m->owner[e + 1] == m->owner[e])
        return VIRTIO_IOMMU_S_RANGE;
    for (unsigned a = s; a <= e; a++)
        m->owner[a] = -1;
    return VIRTIO_IOMMU_S_OK;
}

static int check_mapping(void *opaque, const viommu_mapping *mp)
{
    model *m = opaque;
    cr_assert_leq(mp->virt_end, 63);
    int id = m->owner[mp->virt_start];
    cr_assert_geq(id, 0, "device mapping at %lu unknown to the model",
                  (unsigned long)mp->virt_start);
    for (uint64_t a = mp->virt_start; a <= mp->virt_end; a++)
        cr_assert_eq(m->owner[a], id);
    if (mp->virt_start > 0)
        cr_assert_neq(m->owner[mp->virt_start - 1], id);
    if (mp->virt_end < 63)
        cr_assert_neq(m->owner[mp->virt_end + 1], id);
    cr_assert_eq(mp->phys_start, mp->virt_start + 0x1000);
    return 0;
}

Test(viommu_model, agrees_with_a_naive_model_on_random_requests)
{
    viommu *v = attached(1);
    model m;
    memset(m.owner, -1, sizeof(m.owner));
    m.next_id = 0;
    GRand *rng = g_rand_new_with_seed(7);
    for (int i = 0; i < 20000; i++) {
        unsigned s = (unsigned)g_rand_int_range(rng, 0, 64);
        unsigned e = s + (unsigned)g_rand_int_range(rng, 0, 64 - (gint32)s);
        e = s + (e - s) % 8; /* mostly short ranges, so splits happen */
        bool map = g_rand_boolean(rng) || g_rand_boolean(rng);
        int want = map ? model_map(&m, s, e) : model_unmap(&m, s, e);
        int got = map ? test_map(v, 1, s, e, s + 0x1000, RW) : test_unmap(v, 1, s, e);
        cr_assert_eq(got, want, "request %d: %s(%u, %u) got %s, want %s", i, map ? "map" : "unmap",
                     s, e, viommu_status_name(got), viommu_status_name(want));
        if (i % 500 == 0 || i == 19999) {
            uint64_t n = 0;
            viommu_domain_foreach_mapping(v, 1, 0, UINT64_MAX, check_mapping, &m);
            unsigned distinct = 0;
            for (unsigned a = 0; a < 64; a++)
                if (m.owner[a] >= 0 && (a == 0 || m.owner[a - 1] != m.owner[a]))
                    distinct++;
            viommu_domain_info(v, 1, NULL, &n, NULL);
            cr_assert_eq(n, distinct);
        }
    }
    g_rand_free(rng);
    viommu_free(v);
}

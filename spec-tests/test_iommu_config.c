/* SPDX-License-Identifier: MIT */
/*
 * Conformance: feature bits, the configuration layout and device
 * initialization (virtio spec, IOMMU device). Each test is named after the
 * device-normative statement it checks; statements.c holds their text.
 */
#include <criterion/criterion.h>
#include <errno.h>

#include "spec_iommu.h"

/* Configuration-space offsets from the spec's struct virtio_iommu_config. */
#define CFG_PAGE_SIZE_MASK 0
#define CFG_BYPASS 36

Test(features, device_should_offer_map_unmap)
{
    viommu_config cfg;
    GError *error = NULL;
    viommu *v = spec_device();

    cr_assert(viommu_device_features(v) & VIOMMU_FEATURE(VIRTIO_IOMMU_F_MAP_UNMAP));
    viommu_free(v);
    /* A configuration that would not offer it is refused outright. */
    viommu_config_init(&cfg);
    cfg.features &= ~VIOMMU_FEATURE(VIRTIO_IOMMU_F_MAP_UNMAP);
    cr_assert_null(viommu_new(&cfg, &error));
    cr_assert_not_null(error);
    g_error_free(error);
}

Test(features, new_devices_should_not_offer_bypass)
{
    viommu *v = spec_device();

    cr_assert_eq(viommu_device_features(v) & VIOMMU_FEATURE(VIRTIO_IOMMU_F_BYPASS), 0);
    cr_assert(viommu_device_features(v) & VIOMMU_FEATURE(VIRTIO_IOMMU_F_BYPASS_CONFIG));
    viommu_free(v);
}

Test(features, devices_should_not_offer_both_bypass_features)
{
    viommu_config cfg;
    GError *error = NULL;

    viommu_config_init(&cfg);
    cfg.features |=
        VIOMMU_FEATURE(VIRTIO_IOMMU_F_BYPASS) | VIOMMU_FEATURE(VIRTIO_IOMMU_F_BYPASS_CONFIG);
    cr_assert_null(viommu_new(&cfg, &error));
    g_clear_error(&error);
}

Test(config, device_must_set_a_page_size_bit)
{
    viommu_config cfg;
    GError *error = NULL;
    viommu *v = spec_device_granule(1);

    cr_assert_eq(spec_config_u64(v, CFG_PAGE_SIZE_MASK), 1);
    viommu_free(v);
    v = spec_device();
    cr_assert_neq(spec_config_u64(v, CFG_PAGE_SIZE_MASK), 0);
    viommu_free(v);
    viommu_config_init(&cfg);
    cfg.page_size_mask = 0;
    cr_assert_null(viommu_new(&cfg, &error));
    g_clear_error(&error);
}

Test(config, device_may_set_several_page_size_bits)
{
    viommu *v = spec_device_granule(0x40201000);

    cr_assert_eq(spec_config_u64(v, CFG_PAGE_SIZE_MASK), 0x40201000);
    /* The least significant bit is the granule: 4 KiB mappings work. */
    cr_assert_eq(spec_attach(v, 1, 1, 0), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(spec_map(v, 1, 0x3000, 0x3fff, 0x5000, VIRTIO_IOMMU_MAP_F_READ),
                 VIRTIO_IOMMU_S_OK);
    cr_assert_eq(spec_map(v, 1, 0x4800, 0x4fff, 0x0, VIRTIO_IOMMU_MAP_F_READ),
                 VIRTIO_IOMMU_S_RANGE);
    viommu_free(v);
}

Test(config, device_may_initialize_bypass_to_one)
{
    viommu_config cfg;
    viommu *v;

    viommu_config_init(&cfg);
    cfg.bypass = true;
    v = spec_device_with(&cfg, SPEC_ALL_OFFERED, 1);
    cr_assert_eq(spec_config_u8(v, CFG_BYPASS), 1);
    cr_assert(spec_access(v, 1, 0x1234, VIOMMU_ACCESS_WRITE, NULL));
    viommu_free(v);
    cfg.bypass = false;
    v = spec_device_with(&cfg, SPEC_ALL_OFFERED, 1);
    cr_assert_eq(spec_config_u8(v, CFG_BYPASS), 0);
    viommu_free(v);
}

Test(config, bypass_should_not_change_on_device_reset)
{
    viommu *v = spec_device();
    uint8_t zero = 0;

    cr_assert_eq(spec_config_u8(v, CFG_BYPASS), 1);
    cr_assert_eq(viommu_config_write(v, CFG_BYPASS, &zero, 1), 0);
    cr_assert_eq(spec_config_u8(v, CFG_BYPASS), 0);
    viommu_reset(v);
    cr_assert_eq(spec_config_u8(v, CFG_BYPASS), 0);
    viommu_free(v);
}

Test(config, bypass_should_be_restored_on_system_reset)
{
    viommu *v = spec_device();
    uint8_t zero = 0;

    cr_assert_eq(viommu_config_write(v, CFG_BYPASS, &zero, 1), 0);
    viommu_system_reset(v);
    cr_assert_eq(spec_config_u8(v, CFG_BYPASS), 1);
    viommu_free(v);
}

Test(config, device_must_present_bypass_as_zero_or_one)
{
    viommu *v = spec_device();

    for (unsigned value = 0; value < 256; value++) {
        uint8_t b = (uint8_t)value;
        uint8_t seen;
        cr_assert_eq(viommu_config_write(v, CFG_BYPASS, &b, 1), 0);
        seen = spec_config_u8(v, CFG_BYPASS);
        cr_assert(seen == 0 || seen == 1, "bypass reads %u after writing %u", seen, value);
    }
    viommu_free(v);
}

Test(init, reset_leaves_endpoints_unattached)
{
    viommu *v = spec_device();
    uint32_t domain;

    cr_assert_eq(spec_attach(v, 7, 1, 0), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(spec_map(v, 7, 0x1000, 0x1fff, 0x9000, VIRTIO_IOMMU_MAP_F_READ),
                 VIRTIO_IOMMU_S_OK);
    viommu_reset(v);
    cr_assert_eq(viommu_endpoint_domain(v, 1, &domain), -ENODEV);
    cr_assert_eq(spec_mapping_count(v, 7), -1, "the domain is gone");
    viommu_free(v);
}

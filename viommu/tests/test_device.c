/* SPDX-License-Identifier: MIT */
/* Configuration, features, configuration space, reset and endpoints. */
#include "viommu_test.h"

Test(viommu_config, defaults_match_the_documented_values)
{
    viommu_config cfg;
    viommu_config_init(&cfg);
    cr_assert_eq(cfg.page_size_mask, UINT64_C(0xfffffffffffff000));
    cr_assert_eq(cfg.input_range.first, 0);
    cr_assert_eq(cfg.input_range.last, UINT64_MAX);
    cr_assert_eq(cfg.domain_first, 0);
    cr_assert_eq(cfg.domain_last, UINT32_MAX);
    cr_assert_eq(cfg.probe_size, 0x200);
    cr_assert(cfg.bypass);
    cr_assert_eq(cfg.features, VIOMMU_FEATURES_DEFAULT);
}

Test(viommu_config, offers_every_feature_but_legacy_bypass_by_default)
{
    viommu *v = test_device(0, 0);
    uint64_t f = viommu_device_features(v);
    cr_assert(f & VIOMMU_FEATURE(VIRTIO_IOMMU_F_INPUT_RANGE));
    cr_assert(f & VIOMMU_FEATURE(VIRTIO_IOMMU_F_DOMAIN_RANGE));
    cr_assert(f & VIOMMU_FEATURE(VIRTIO_IOMMU_F_MAP_UNMAP));
    cr_assert(f & VIOMMU_FEATURE(VIRTIO_IOMMU_F_BYPASS_CONFIG));
    cr_assert(f & VIOMMU_FEATURE(VIRTIO_IOMMU_F_PROBE));
    cr_assert(f & VIOMMU_FEATURE(VIRTIO_IOMMU_F_MMIO));
    cr_assert_not(f & VIOMMU_FEATURE(VIRTIO_IOMMU_F_BYPASS));
    viommu_free(v);
}

static void expect_rejected(viommu_config *cfg)
{
    GError *err = NULL;
    viommu *v = viommu_new(cfg, &err);
    cr_assert_null(v);
    cr_assert_not_null(err);
    cr_assert_not_null(strstr(err->message, "invalid viommu configuration"));
    g_error_free(err);
}

Test(viommu_config, rejects_inconsistent_configurations)
{
    viommu_config cfg;
    viommu_config_init(&cfg);
    cfg.page_size_mask = 0;
    expect_rejected(&cfg);
    viommu_config_init(&cfg);
    cfg.input_range = (u64_range){10, 9};
    expect_rejected(&cfg);
    viommu_config_init(&cfg);
    cfg.domain_first = 5;
    cfg.domain_last = 4;
    expect_rejected(&cfg);
    viommu_config_init(&cfg);
    cfg.features |= VIOMMU_FEATURE(VIRTIO_IOMMU_F_BYPASS);
    expect_rejected(&cfg);
    viommu_config_init(&cfg);
    cfg.features |= UINT64_C(1) << 40;
    expect_rejected(&cfg);
    viommu_config_init(&cfg);
    cfg.features &= ~VIOMMU_FEATURE(VIRTIO_IOMMU_F_MAP_UNMAP);
    expect_rejected(&cfg);
    viommu_config_init(&cfg);
    cfg.probe_size = 3;
    expect_rejected(&cfg);
    viommu_config_init(&cfg);
    cfg.max_domains = 0;
    expect_rejected(&cfg);
}

Test(viommu_config, offers_legacy_bypass_only_when_configured)
{
    viommu_config cfg;
    viommu_config_init(&cfg);
    cfg.features &= ~VIOMMU_FEATURE(VIRTIO_IOMMU_F_BYPASS_CONFIG);
    cfg.features |= VIOMMU_FEATURE(VIRTIO_IOMMU_F_BYPASS);
    viommu *v = viommu_new(&cfg, NULL);
    cr_assert_not_null(v);
    cr_assert(viommu_device_features(v) & VIOMMU_FEATURE(VIRTIO_IOMMU_F_BYPASS));
    viommu_free(v);
}

Test(viommu_features, refuses_driver_features_not_offered)
{
    viommu *v = test_device(0, 0);
    cr_assert_eq(viommu_set_driver_features(v, VIOMMU_FEATURE(VIRTIO_IOMMU_F_BYPASS)), -EINVAL);
    cr_assert_eq(viommu_driver_features(v), viommu_device_features(v), "unchanged");
    cr_assert_eq(viommu_set_driver_features(v, VIOMMU_FEATURE(VIRTIO_IOMMU_F_MAP_UNMAP)), 0);
    cr_assert_eq(viommu_driver_features(v), VIOMMU_FEATURE(VIRTIO_IOMMU_F_MAP_UNMAP));
    viommu_free(v);
}

Test(viommu_config_space, reads_little_endian_fields_at_their_offsets)
{
    viommu_config cfg;
    viommu_config_init(&cfg);
    cfg.page_size_mask = UINT64_C(0x0102030405060708);
    cfg.input_range = (u64_range){0x1000, 0xffffffffff};
    cfg.domain_first = 3;
    cfg.domain_last = 0x1234;
    cfg.probe_size = 0x300;
    viommu *v = viommu_new(&cfg, NULL);
    struct virtio_iommu_config c;
    cr_assert_eq(viommu_config_read(v, 0, &c, sizeof(c)), 0);
    cr_assert_eq(le64toh(c.page_size_mask), UINT64_C(0x0102030405060708));
    cr_assert_eq(le64toh(c.input_range.start), 0x1000);
    cr_assert_eq(le64toh(c.input_range.end), 0xffffffffff);
    cr_assert_eq(le32toh(c.domain_range.start), 3);
    cr_assert_eq(le32toh(c.domain_range.end), 0x1234);
    cr_assert_eq(le32toh(c.probe_size), 0x300);
    cr_assert_eq(c.bypass, 1);
    cr_assert(c.reserved[0] == 0 && c.reserved[1] == 0 && c.reserved[2] == 0);
    uint8_t b;
    cr_assert_eq(viommu_config_read(v, 0, &b, 1), 0);
    cr_assert_eq(b, 0x08, "byte 0 is the low byte");
    uint16_t w;
    cr_assert_eq(viommu_config_read(v, 33, &w, 2), 0);
    cr_assert_eq(le16toh(w), 0x03, "an unaligned 2-byte read of probe_size");
    viommu_free(v);
}

Test(viommu_config_space, refuses_reads_outside_the_space)
{
    viommu *v = test_device(0, 0);
    uint8_t buf[48];
    cr_assert_eq(viommu_config_read(v, 0, buf, 41), -EINVAL);
    cr_assert_eq(viommu_config_read(v, 40, buf, 1), -EINVAL);
    cr_assert_eq(viommu_config_read(v, UINT32_MAX, buf, 4), -EINVAL);
    cr_assert_eq(viommu_config_read(v, 36, buf, 4), 0);
    viommu_free(v);
}

Test(viommu_config_space, lets_the_driver_write_only_bypass)
{
    viommu *v = test_device(0, 0);
    uint8_t zero = 0, two = 2, three = 3, b;
    uint32_t ps = 0;
    cr_assert_eq(viommu_config_write(v, 32, &ps, 4), -EPERM);
    cr_assert_eq(viommu_config_write(v, 36, &ps, 4), -EPERM, "bypass plus reserved bytes");
    cr_assert_eq(viommu_config_write(v, 36, &zero, 1), 0);
    viommu_config_read(v, 36, &b, 1);
    cr_assert_eq(b, 0);
    cr_assert_eq(viommu_config_write(v, 36, &three, 1), 0);
    viommu_config_read(v, 36, &b, 1);
    cr_assert_eq(b, 1, "only bit 0 is kept");
    cr_assert_eq(viommu_config_write(v, 36, &two, 1), 0);
    viommu_config_read(v, 36, &b, 1);
    cr_assert_eq(b, 0, "never presents anything but 0 or 1");
    cr_assert_eq(viommu_config_write(v, 40, &zero, 1), -EINVAL);
    viommu_free(v);
}

Test(viommu_config_space, refuses_bypass_writes_without_bypass_config_negotiated)
{
    viommu *v = test_device(0, 0);
    viommu_set_driver_features(v, VIOMMU_FEATURE(VIRTIO_IOMMU_F_MAP_UNMAP));
    uint8_t zero = 0, b;
    cr_assert_eq(viommu_config_write(v, 36, &zero, 1), -EPERM);
    viommu_config_read(v, 36, &b, 1);
    cr_assert_eq(b, 1);
    viommu_free(v);
}

Test(viommu_reset, detaches_everything_but_keeps_endpoints_and_bypass)
{
    viommu *v = test_device(0, 2);
    uint8_t zero = 0, b;
    viommu_config_write(v, 36, &zero, 1);
    cr_assert_eq(test_attach(v, 1, 1, 0), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(test_map(v, 1, 0x1000, 0x1fff, 0x5000, RW), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(viommu_endpoint_add_resv(v, 2, 0xfee00000, 0xfeefffff, 1), 0);
    viommu_reset(v);
    viommu_stats st;
    viommu_get_stats(v, &st);
    cr_assert_eq(st.domains, 0);
    cr_assert_eq(st.mappings, 0);
    cr_assert_eq(st.endpoints, 2);
    cr_assert_eq(viommu_driver_features(v), 0);
    cr_assert(viommu_endpoint_exists(v, 1));
    cr_assert_eq(viommu_endpoint_domain(v, 1, NULL), -ENODEV);
    cr_assert_eq(viommu_domain_info(v, 1, NULL, NULL, NULL), -ENOENT);
    viommu_config_read(v, 36, &b, 1);
    cr_assert_eq(b, 0, "bypass survives a device reset");
    viommu_system_reset(v);
    viommu_config_read(v, 36, &b, 1);
    cr_assert_eq(b, 1, "system reset restores the initial bypass");
    viommu_free(v);
}

Test(viommu_endpoint, refuses_duplicates_and_respects_the_limit)
{
    viommu_config cfg;
    viommu_config_init(&cfg);
    cfg.max_endpoints = 2;
    viommu *v = viommu_new(&cfg, NULL);
    cr_assert_eq(viommu_endpoint_add(v, 7), 0);
    cr_assert_eq(viommu_endpoint_add(v, 7), -EEXIST);
    cr_assert_eq(viommu_endpoint_add(v, 0), 0);
    cr_assert_eq(viommu_endpoint_add(v, 9), -ENOSPC);
    cr_assert(viommu_endpoint_exists(v, 0));
    cr_assert_not(viommu_endpoint_exists(v, 9));
    viommu_free(v);
}

Test(viommu_endpoint, validates_reserved_regions)
{
    viommu_config cfg;
    viommu_config_init(&cfg);
    cfg.probe_size = 48;
    viommu *v = viommu_new(&cfg, NULL);
    viommu_set_driver_features(v, viommu_device_features(v));
    viommu_endpoint_add(v, 1);
    cr_assert_eq(viommu_endpoint_add_resv(v, 2, 0, 1, 0), -ENOENT);
    cr_assert_eq(viommu_endpoint_add_resv(v, 1, 5, 4, 0), -EINVAL);
    cr_assert_eq(viommu_endpoint_add_resv(v, 1, 0, 4, 2), -EINVAL);
    cr_assert_eq(viommu_endpoint_add_resv(v, 1, 0x1000, 0x1fff, 1), 0);
    cr_assert_eq(viommu_endpoint_add_resv(v, 1, 0x1800, 0x2fff, 0), -EINVAL, "overlap");
    cr_assert_eq(viommu_endpoint_add_resv(v, 1, 0x8000, 0x8fff, 1), -EINVAL, "second MSI");
    cr_assert_eq(viommu_endpoint_add_resv(v, 1, 0x8000, 0x8fff, 0), 0);
    cr_assert_eq(viommu_endpoint_add_resv(v, 1, 0x9000, 0x9fff, 0), -ENOSPC, "48 bytes: two");
    viommu_free(v);
}

Test(viommu_endpoint, refuses_listener_and_region_changes_while_attached)
{
    viommu *v = test_device(0, 1);
    static const mapping_listener_ops ops = {0};
    mapping_listener l = {&ops, NULL};
    cr_assert_eq(viommu_endpoint_set_listener(v, 2, &l), -ENOENT);
    cr_assert_eq(test_attach(v, 1, 1, 0), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(viommu_endpoint_set_listener(v, 1, &l), -EBUSY);
    cr_assert_eq(viommu_endpoint_add_resv(v, 1, 0, 0xfff, 0), -EBUSY);
    uint32_t d = 0;
    cr_assert_eq(viommu_endpoint_domain(v, 1, &d), 0);
    cr_assert_eq(d, 1);
    cr_assert_eq(viommu_endpoint_domain(v, 5, &d), -ENOENT);
    viommu_free(v);
}

Test(viommu_names, spells_statuses_and_types_as_the_spec)
{
    cr_assert_str_eq(viommu_status_name(VIRTIO_IOMMU_S_OK), "OK");
    cr_assert_str_eq(viommu_status_name(VIRTIO_IOMMU_S_IOERR), "IOERR");
    cr_assert_str_eq(viommu_status_name(VIRTIO_IOMMU_S_UNSUPP), "UNSUPP");
    cr_assert_str_eq(viommu_status_name(VIRTIO_IOMMU_S_DEVERR), "DEVERR");
    cr_assert_str_eq(viommu_status_name(VIRTIO_IOMMU_S_INVAL), "INVAL");
    cr_assert_str_eq(viommu_status_name(VIRTIO_IOMMU_S_RANGE), "RANGE");
    cr_assert_str_eq(viommu_status_name(VIRTIO_IOMMU_S_NOENT), "NOENT");
    cr_assert_str_eq(viommu_status_name(VIRTIO_IOMMU_S_FAULT), "FAULT");
    cr_assert_str_eq(viommu_status_name(VIRTIO_IOMMU_S_NOMEM), "NOMEM");
    cr_assert_str_eq(viommu_status_name(VIOMMU_STATUS_NONE), "NONE");
    cr_assert_null(viommu_status_name(9));
    cr_assert_str_eq(viommu_type_name(VIRTIO_IOMMU_T_ATTACH), "ATTACH");
    cr_assert_str_eq(viommu_type_name(VIRTIO_IOMMU_T_PROBE), "PROBE");
    cr_assert_null(viommu_type_name(0));
    cr_assert_null(viommu_type_name(6));
}

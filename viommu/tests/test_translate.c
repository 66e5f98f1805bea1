/* SPDX-License-Identifier: MIT */
/* translate(), bypass, fault reports and the posted event buffers. */
#include "viommu_test.h"

typedef struct completions {
    uint64_t cookies[8];
    size_t lens[8];
    int n;
} completions;

static void on_complete(void *opaque, uint64_t cookie, size_t used_len)
{
    completions *c = opaque;
    cr_assert_lt(c->n, 8);
    c->cookies[c->n] = cookie;
    c->lens[c->n] = used_len;
    c->n++;
}

static viommu *no_bypass_device(uint32_t nep)
{
    viommu *v = test_device(0, nep);
    uint8_t zero = 0;
    cr_assert_eq(viommu_config_write(v, 36, &zero, 1), 0);
    return v;
}

Test(viommu_translate, translates_inside_a_mapping_with_its_remaining_length)
{
    viommu *v = no_bypass_device(1);
    test_attach(v, 1, 1, 0);
    test_map(v, 1, 0x10000, 0x13fff, 0x80000, RW);
    viommu_translation t;
    cr_assert_eq(viommu_translate(v, 1, 0x11234, VIOMMU_ACCESS_WRITE, &t), 0);
    cr_assert_eq(t.gpa, 0x81234);
    cr_assert_eq(t.iova_last, 0x13fff);
    cr_assert_eq(t.prot, MAPPING_PROT_READ | MAPPING_PROT_WRITE);
    cr_assert_not(t.bypass);
    viommu_free(v);
}

Test(viommu_translate, refuses_a_write_to_a_read_only_mapping_with_a_fault)
{
    viommu *v = no_bypass_device(1);
    completions c = {0};
    viommu_set_event_handler(v, on_complete, &c);
    test_attach(v, 1, 1, 0);
    test_map(v, 1, 0x1000, 0x1fff, 0x5000, VIRTIO_IOMMU_MAP_F_READ);
    struct virtio_iommu_fault f;
    memset(&f, 0xcc, sizeof(f));
    struct iovec iov = {&f, sizeof(f)};
    cr_assert_eq(viommu_event_post(v, &iov, 1, 42), 0);
    viommu_translation t;
    cr_assert_eq(viommu_translate(v, 1, 0x1800, VIOMMU_ACCESS_READ, &t), 0);
    cr_assert_eq(viommu_translate(v, 1, 0x1800, VIOMMU_ACCESS_WRITE, &t), -EFAULT);
    cr_assert_eq(c.n, 1);
    cr_assert_eq(c.cookies[0], 42);
    cr_assert_eq(c.lens[0], sizeof(f));
    cr_assert_eq(f.reason, VIRTIO_IOMMU_FAULT_R_MAPPING);
    cr_assert_eq(le32toh(f.flags), VIRTIO_IOMMU_FAULT_F_WRITE | VIRTIO_IOMMU_FAULT_F_ADDRESS);
    cr_assert_eq(le32toh(f.endpoint), 1);
    cr_assert_eq(le64toh(f.address), 0x1800);
    cr_assert(f.reserved[0] == 0 && f.reserved[1] == 0 && f.reserved[2] == 0);
    cr_assert_eq(f.reserved1, 0);
    viommu_free(v);
}

Test(viommu_translate, refuses_reads_of_write_only_mappings)
{
    viommu *v = no_bypass_device(1);
    test_attach(v, 1, 1, 0);
    test_map(v, 1, 0x1000, 0x1fff, 0x5000, VIRTIO_IOMMU_MAP_F_WRITE);
    viommu_translation t;
    cr_assert_eq(viommu_translate(v, 1, 0x1000, VIOMMU_ACCESS_READ, &t), -EFAULT);
    cr_assert_eq(viommu_translate(v, 1, 0x1000, VIOMMU_ACCESS_WRITE, &t), 0);
    viommu_free(v);
}

Test(viommu_translate, reports_an_unmapped_address_as_a_mapping_fault)
{
    viommu *v = no_bypass_device(1);
    test_attach(v, 1, 1, 0);
    struct virtio_iommu_fault f;
    struct iovec iov = {&f, sizeof(f)};
    viommu_event_post(v, &iov, 1, 1);
    viommu_translation t;
    cr_assert_eq(viommu_translate(v, 1, 0x9000, VIOMMU_ACCESS_READ, &t), -EFAULT);
    cr_assert_eq(f.reason, VIRTIO_IOMMU_FAULT_R_MAPPING);
    cr_assert_eq(le32toh(f.flags), VIRTIO_IOMMU_FAULT_F_READ | VIRTIO_IOMMU_FAULT_F_ADDRESS);
    viommu_free(v);
}

Test(viommu_translate, reports_an_unattached_endpoint_as_a_domain_fault)
{
    viommu *v = no_bypass_device(1);
    struct virtio_iommu_fault f;
    struct iovec iov = {&f, sizeof(f)};
    viommu_event_post(v, &iov, 1, 1);
    viommu_translation t;
    cr_assert_eq(viommu_translate(v, 1, 0x9000, VIOMMU_ACCESS_READ, &t), -EFAULT);
    cr_assert_eq(f.reason, VIRTIO_IOMMU_FAULT_R_DOMAIN);
    viommu_free(v);
}

Test(viommu_translate, counts_faults_dropped_without_an_event_buffer)
{
    viommu *v = no_bypass_device(1);
    viommu_translation t;
    cr_assert_eq(viommu_translate(v, 1, 0, VIOMMU_ACCESS_READ, &t), -EFAULT);
    cr_assert_eq(viommu_translate(v, 1, 0, VIOMMU_ACCESS_WRITE, &t), -EFAULT);
    viommu_stats st;
    viommu_get_stats(v, &st);
    cr_assert_eq(st.faults, 2);
    cr_assert_eq(st.faults_dropped, 2);
    cr_assert_eq(st.faults_reported, 0);
    viommu_free(v);
}

Test(viommu_translate, returns_too_small_event_buffers_empty_and_uses_the_next)
{
    viommu *v = no_bypass_device(1);
    completions c = {0};
    viommu_set_event_handler(v, on_complete, &c);
    uint8_t small[16];
    struct virtio_iommu_fault f;
    uint8_t *p = (uint8_t *)&f;
    struct iovec s = {small, sizeof(small)};
    struct iovec split[2] = {{p, 10}, {p + 10, sizeof(f) - 10}};
    viommu_event_post(v, &s, 1, 1);
    viommu_event_post(v, split, 2, 2);
    viommu_translation t;
    viommu_translate(v, 1, 0x1234, VIOMMU_ACCESS_READ, &t);
    cr_assert_eq(c.n, 2);
    cr_assert_eq(c.lens[0], 0);
    cr_assert_eq(c.cookies[1], 2);
    cr_assert_eq(c.lens[1], sizeof(f));
    cr_assert_eq(le64toh(f.address), 0x1234);
    viommu_stats st;
    viommu_get_stats(v, &st);
    cr_assert_eq(st.faults_reported, 1);
    viommu_free(v);
}

Test(viommu_translate, limits_posted_event_buffers)
{
    viommu_config cfg;
    viommu_config_init(&cfg);
    cfg.max_event_buffers = 2;
    viommu *v = viommu_new(&cfg, NULL);
    uint8_t b[24];
    struct iovec iov[5] = {{b, 24}, {b, 24}, {b, 24}, {b, 24}, {b, 24}};
    cr_assert_eq(viommu_event_post(v, iov, 0, 0), -EINVAL);
    cr_assert_eq(viommu_event_post(v, iov, 5, 0), -EINVAL);
    cr_assert_eq(viommu_event_post(v, NULL, 1, 0), -EINVAL);
    cr_assert_eq(viommu_event_post(v, iov, 1, 0), 0);
    cr_assert_eq(viommu_event_post(v, iov, 4, 0), 0);
    cr_assert_eq(viommu_event_post(v, iov, 1, 0), -ENOSPC);
    viommu_reset(v);
    cr_assert_eq(viommu_event_post(v, iov, 1, 0), 0, "reset drops posted buffers");
    viommu_free(v);
}

Test(viommu_translate, bypasses_unattached_endpoints_per_config_bypass)
{
    viommu *v = test_device(0, 1);
    viommu_translation t;
    cr_assert_eq(viommu_translate(v, 1, 0x1234, VIOMMU_ACCESS_WRITE, &t), 0);
    cr_assert(t.bypass);
    cr_assert_eq(t.gpa, 0x1234);
    cr_assert_eq(t.iova_last, UINT64_MAX);
    test_attach(v, 1, 1, 0);
    cr_assert_eq(viommu_translate(v, 1, 0x1234, VIOMMU_ACCESS_WRITE, &t), -EFAULT,
                 "attached endpoints do not bypass");
    viommu_free(v);
}

Test(viommu_translate, applies_config_bypass_even_when_the_driver_declined_the_feature)
{
    viommu *v = test_device(0, 1);
    viommu_set_driver_features(v, VIOMMU_FEATURE(VIRTIO_IOMMU_F_MAP_UNMAP));
    viommu_translation t;
    cr_assert_eq(viommu_translate(v, 1, 0, VIOMMU_ACCESS_READ, &t), 0);
    cr_assert(t.bypass);
    viommu_free(v);
}

Test(viommu_translate, bypasses_endpoints_in_a_bypass_domain)
{
    viommu *v = no_bypass_device(1);
    test_attach(v, 1, 1, VIRTIO_IOMMU_ATTACH_F_BYPASS);
    viommu_translation t;
    cr_assert_eq(viommu_translate(v, 1, 0xabc000, VIOMMU_ACCESS_READ, &t), 0);
    cr_assert(t.bypass);
    cr_assert_eq(t.gpa, 0xabc000);
    viommu_free(v);
}

Test(viommu_translate, follows_legacy_bypass_only_when_negotiated)
{
    viommu_config cfg;
    viommu_config_init(&cfg);
    cfg.features &= ~VIOMMU_FEATURE(VIRTIO_IOMMU_F_BYPASS_CONFIG);
    cfg.features |= VIOMMU_FEATURE(VIRTIO_IOMMU_F_BYPASS);
    viommu *v = viommu_new(&cfg, NULL);
    viommu_endpoint_add(v, 1);
    viommu_translation t;
    cr_assert_eq(viommu_translate(v, 1, 0, VIOMMU_ACCESS_READ, &t), -EFAULT);
    viommu_set_driver_features(v, viommu_device_features(v));
    cr_assert_eq(viommu_translate(v, 1, 0, VIOMMU_ACCESS_READ, &t), 0);
    uint8_t b = 0xff;
    viommu_config_read(v, 36, &b, 1);
    cr_assert_eq(b, 0, "no bypass field without F_BYPASS_CONFIG");
    viommu_free(v);
}

Test(viommu_translate, stops_after_detach)
{
    viommu *v = no_bypass_device(1);
    test_attach(v, 1, 1, 0);
    test_map(v, 1, 0, 0xfff, 0, RW);
    viommu_translation t;
    cr_assert_eq(viommu_translate(v, 1, 0, VIOMMU_ACCESS_READ, &t), 0);
    test_detach(v, 1, 1);
    cr_assert_eq(viommu_translate(v, 1, 0, VIOMMU_ACCESS_READ, &t), -EFAULT);
    viommu_free(v);
}

Test(viommu_translate, rejects_bad_arguments)
{
    viommu *v = test_device(0, 1);
    viommu_translation t;
    cr_assert_eq(viommu_translate(v, 1, 0, 0, &t), -EINVAL);
    cr_assert_eq(viommu_translate(v, 1, 0, 4, &t), -EINVAL);
    cr_assert_eq(viommu_translate(v, 2, 0, VIOMMU_ACCESS_READ, &t), -ENOENT);
    viommu_stats st;
    viommu_get_stats(v, &st);
    cr_assert_eq(st.faults, 0);
    viommu_free(v);
}

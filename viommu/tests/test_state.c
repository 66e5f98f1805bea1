/* SPDX-License-Identifier: MIT */
/* viommu_save() / viommu_load(): the guest-visible state for migration. */
#include "viommu_test.h"

static viommu *populated(void)
{
    viommu *v = test_device(0, 4);
    uint8_t zero = 0;
    viommu_config_write(v, 36, &zero, 1);
    cr_assert_eq(test_attach(v, 1, 1, 0), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(test_attach(v, 1, 2, 0), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(test_attach(v, 9, 3, VIRTIO_IOMMU_ATTACH_F_BYPASS), VIRTIO_IOMMU_S_OK);
    for (uint64_t i = 0; i < 20; i++)
        cr_assert_eq(test_map(v, 1, i << 14, (i << 14) + 0x1fff, 0x100000 + (i << 13),
                              i % 2 ? VIRTIO_IOMMU_MAP_F_READ : RW),
                     VIRTIO_IOMMU_S_OK);
    return v;
}

typedef struct listing {
    viommu_mapping m[64];
    int n;
} listing;

static int list_cb(void *opaque, const viommu_mapping *m)
{
    listing *l = opaque;
    cr_assert_lt(l->n, 64);
    l->m[l->n++] = *m;
    return 0;
}

static void image(viommu *v, uint8_t **data, size_t *len)
{
    cr_assert_eq(viommu_save(v, data, len), 0);
    cr_assert_not_null(*data);
}

Test(viommu_state, round_trips_domains_endpoints_mappings_features_and_bypass)
{
    viommu *a = populated();
    uint8_t *data;
    size_t len;
    image(a, &data, &len);
    viommu *b = test_device(0, 4);
    viommu_set_driver_features(b, 0);
    cr_assert_eq(viommu_load(b, data, len), 0);
    cr_assert_eq(viommu_driver_features(b), viommu_driver_features(a));
    uint8_t bypass;
    viommu_config_read(b, 36, &bypass, 1);
    cr_assert_eq(bypass, 0);
    uint32_t d;
    cr_assert_eq(viommu_endpoint_domain(b, 2, &d), 0);
    cr_assert_eq(d, 1);
    cr_assert_eq(viommu_endpoint_domain(b, 4, &d), -ENODEV);
    bool bp = false;
    cr_assert_eq(viommu_domain_info(b, 9, &bp, NULL, NULL), 0);
    cr_assert(bp);
    listing la = {.n = 0}, lb = {.n = 0};
    viommu_domain_foreach_mapping(a, 1, 0, UINT64_MAX, list_cb, &la);
    viommu_domain_foreach_mapping(b, 1, 0, UINT64_MAX, list_cb, &lb);
    cr_assert_eq(la.n, 20);
    cr_assert_eq(lb.n, la.n);
    cr_assert_arr_eq(la.m, lb.m, sizeof(viommu_mapping) * (size_t)la.n);
    viommu_translation t;
    cr_assert_eq(viommu_translate(b, 2, 0x4000 + 0x123, VIOMMU_ACCESS_READ, &t), 0);
    cr_assert_eq(t.gpa, 0x102000 + 0x123);
    viommu_stats st;
    viommu_get_stats(b, &st);
    cr_assert_eq(st.domains, 2);
    cr_assert_eq(st.mappings, 20);
    /* The image of the copy is the image of the original. */
    uint8_t *data2;
    size_t len2;
    image(b, &data2, &len2);
    cr_assert_eq(len2, len);
    g_free(data);
    g_free(data2);
    viommu_free(a);
    viommu_free(b);
}

Test(viommu_state, refuses_to_load_over_existing_domains)
{
    viommu *a = populated();
    uint8_t *data;
    size_t len;
    image(a, &data, &len);
    cr_assert_eq(viommu_load(a, data, len), -EBUSY);
    viommu_reset(a);
    cr_assert_eq(viommu_load(a, data, len), 0, "a reset device takes it");
    g_free(data);
    viommu_free(a);
}

Test(viommu_state, refuses_every_truncated_image_and_keeps_nothing)
{
    viommu *a = populated();
    uint8_t *data;
    size_t len;
    image(a, &data, &len);
    viommu *b = test_device(0, 4);
    uint64_t features = viommu_driver_features(b);
    for (size_t l = 0; l < len; l++) {
        cr_assert_eq(viommu_load(b, data, l), -EINVAL, "length %zu", l);
        viommu_stats st;
        viommu_get_stats(b, &st);
        cr_assert_eq(st.domains, 0);
        cr_assert_eq(st.mappings, 0);
        cr_assert_eq(viommu_endpoint_domain(b, 1, NULL), -ENODEV);
        cr_assert_eq(viommu_driver_features(b), features);
    }
    uint8_t *longer = g_malloc(len + 1);
    memcpy(longer, data, len);
    longer[len] = 0;
    cr_assert_eq(viommu_load(b, longer, len + 1), -EINVAL, "trailing bytes");
    cr_assert_eq(viommu_load(b, NULL, 5), -EINVAL);
    g_free(longer);
    g_free(data);
    viommu_free(a);
    viommu_free(b);
}

Test(viommu_state, refuses_images_that_do_not_fit_the_device)
{
    viommu *a = populated();
    uint8_t *data;
    size_t len;
    image(a, &data, &len);
    viommu *b = test_device(0, 1); /* endpoints 2 and 3 missing */
    cr_assert_eq(viommu_load(b, data, len), -EINVAL);
    viommu_free(b);

    viommu_config cfg;
    viommu_config_init(&cfg);
    cfg.page_size_mask = 0x10000; /* 64 KiB granule: the mappings misalign */
    b = viommu_new(&cfg, NULL);
    for (uint32_t i = 1; i <= 4; i++)
        viommu_endpoint_add(b, i);
    cr_assert_eq(viommu_load(b, data, len), -EINVAL);
    viommu_free(b);

    viommu_config_init(&cfg);
    cfg.features &= ~VIOMMU_FEATURE(VIRTIO_IOMMU_F_MMIO);
    b = viommu_new(&cfg, NULL);
    for (uint32_t i = 1; i <= 4; i++)
        viommu_endpoint_add(b, i);
    cr_assert_eq(viommu_load(b, data, len), -EINVAL, "F_MMIO was negotiated, not offered here");
    viommu_free(b);

    b = test_device(0, 4);
    viommu_endpoint_add_resv(b, 2, 0x4000, 0x4fff, VIRTIO_IOMMU_RESV_MEM_T_RESERVED);
    cr_assert_eq(viommu_load(b, data, len), -EINVAL, "a mapping over a reserved region");
    viommu_free(b);

    data[0] ^= 1;
    b = test_device(0, 4);
    cr_assert_eq(viommu_load(b, data, len), -EINVAL, "bad magic");
    viommu_free(b);
    g_free(data);
    viommu_free(a);
}

Test(viommu_state, refuses_overlapping_mappings_in_an_image)
{
    viommu *a = test_device(0, 1);
    test_attach(a, 1, 1, 0);
    test_map(a, 1, 0x0000, 0x1fff, 0, RW);
    test_map(a, 1, 0x2000, 0x3fff, 0, RW);
    uint8_t *data;
    size_t len;
    image(a, &data, &len);
    /* The second mapping's virt_start (header 24, domain 24, endpoint 4,
     * one mapping 32) moves into the first one. */
    uint64_t vs = htole64(0x1000);
    memcpy(data + 24 + 24 + 4 + 32, &vs, 8);
    viommu *b = test_device(0, 1);
    cr_assert_eq(viommu_load(b, data, len), -EINVAL);
    g_free(data);
    viommu_free(a);
    viommu_free(b);
}

typedef struct holder {
    int held;
    int refuse_after; /* -1: never */
    bool fail_at_end;
    int accepted_in_batch;
} holder;

static int h_map(void *o, const mapping_event *ev)
{
    holder *h = o;
    (void)ev;
    if (h->refuse_after >= 0 && h->held >= h->refuse_after)
        return -ENOSPC;
    h->held++;
    h->accepted_in_batch++;
    return 0;
}

static int h_unmap(void *o, const mapping_event *ev)
{
    holder *h = o;
    (void)ev;
    cr_assert_gt(h->held, 0, "unmap of something held");
    h->held--;
    return 0;
}

static void h_begin(void *o)
{
    ((holder *)o)->accepted_in_batch = 0;
}

static int h_end(void *o, mapping_failed_fn failed, void *fo)
{
    holder *h = o;
    if (!h->fail_at_end || !h->accepted_in_batch)
        return 0;
    /* Fails the first mapping of the test's image. */
    mapping_event ev = {.endpoint = 1,
                        .domain = 1,
                        .iova = 0,
                        .iova_last = 0x1fff,
                        .gpa = 0x100000,
                        .prot = 3,
                        .seq = 0};
    h->held--;
    failed(fo, &ev, -EIO);
    return -EIO;
}

static const mapping_listener_ops h_ops = {h_begin, h_map, h_unmap, h_end};

Test(viommu_state, announces_every_mapping_to_the_listeners)
{
    viommu *a = populated();
    uint8_t *data;
    size_t len;
    image(a, &data, &len);
    viommu *b = test_device(0, 4);
    holder h1 = {0, -1, false, 0}, h2 = {0, -1, false, 0};
    viommu_endpoint_set_listener(b, 1, &(mapping_listener){&h_ops, &h1});
    viommu_endpoint_set_listener(b, 2, &(mapping_listener){&h_ops, &h2});
    cr_assert_eq(viommu_load(b, data, len), 0);
    cr_assert_eq(h1.held, 20);
    cr_assert_eq(h2.held, 20);
    g_free(data);
    viommu_free(a);
    viommu_free(b);
}

Test(viommu_state, undoes_a_load_a_listener_refuses)
{
    viommu *a = populated();
    uint8_t *data;
    size_t len;
    image(a, &data, &len);
    viommu *b = test_device(0, 4);
    holder h1 = {0, -1, false, 0}, h2 = {0, 7, false, 0};
    viommu_endpoint_set_listener(b, 1, &(mapping_listener){&h_ops, &h1});
    viommu_endpoint_set_listener(b, 2, &(mapping_listener){&h_ops, &h2});
    cr_assert_eq(viommu_load(b, data, len), -ENOSPC);
    cr_assert_eq(h1.held, 0);
    cr_assert_eq(h2.held, 0);
    viommu_stats st;
    viommu_get_stats(b, &st);
    cr_assert_eq(st.domains, 0);
    cr_assert_eq(viommu_endpoint_domain(b, 1, NULL), -ENODEV);
    g_free(data);
    viommu_free(a);
    viommu_free(b);
}

Test(viommu_state, undoes_a_load_a_listener_fails_at_batch_end)
{
    viommu *a = test_device(0, 1);
    test_attach(a, 1, 1, 0);
    test_map(a, 1, 0, 0x1fff, 0x100000, RW);
    test_map(a, 1, 0x4000, 0x5fff, 0x200000, RW);
    uint8_t *data;
    size_t len;
    image(a, &data, &len);
    viommu *b = test_device(0, 1);
    holder h1 = {0, -1, true, 0};
    viommu_endpoint_set_listener(b, 1, &(mapping_listener){&h_ops, &h1});
    cr_assert_eq(viommu_load(b, data, len), -EIO);
    cr_assert_eq(h1.held, 0, "the other mapping was taken back, the failed one not unmapped");
    cr_assert_eq(viommu_domain_info(b, 1, NULL, NULL, NULL), -ENOENT);
    g_free(data);
    viommu_free(a);
    viommu_free(b);
}

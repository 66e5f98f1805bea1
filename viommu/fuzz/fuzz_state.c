/* SPDX-License-Identifier: MIT */
/*
 * fuzz_state - arbitrary bytes as a migration image for viommu_load().
 * A refused image must leave the device without domains; an accepted
 * one must save back to an image that loads into a second device with
 * the same counters.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "viommu.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "invariant failed: %s (line %d)\n", #c, __LINE__);                     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static viommu *device(void)
{
    viommu_config cfg;
    viommu_config_init(&cfg);
    cfg.page_size_mask = 0x3000; /* 4 KiB granule, 8 KiB hint */
    cfg.max_domains = 4;
    cfg.max_mappings_per_domain = 256;
    viommu *v = viommu_new(&cfg, NULL);
    CHECK(v);
    for (uint32_t ep = 0; ep < 4; ep++)
        CHECK(viommu_endpoint_add(v, ep) == 0);
    viommu_endpoint_add_resv(v, 3, 0xfee00000, 0xfeefffff, VIRTIO_IOMMU_RESV_MEM_T_MSI);
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    viommu *v = device();
    viommu_stats st;
    int rc = viommu_load(v, data, size);
    viommu_get_stats(v, &st);
    if (rc < 0) {
        CHECK(rc == -EINVAL || rc == -ENOMEM);
        CHECK(st.domains == 0 && st.mappings == 0);
        CHECK(viommu_driver_features(v) == 0);
    } else {
        uint8_t *img;
        size_t len;
        CHECK(viommu_save(v, &img, &len) == 0);
        viommu *w = device();
        CHECK(viommu_load(w, img, len) == 0);
        viommu_stats st2;
        viommu_get_stats(w, &st2);
        CHECK(st2.domains == st.domains && st2.mappings == st.mappings);
        CHECK(viommu_driver_features(w) == viommu_driver_features(v));
        g_free(img);
        viommu_free(w);
    }
    viommu_free(v);
    return 0;
}

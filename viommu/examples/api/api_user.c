/* SPDX-License-Identifier: MIT */
/*
 * api_user.c - a program that knows the libraries only through their
 * installed headers and pkg-config files: it uses a little of each
 * public API and exits 0 when everything answered as documented.
 */
#include <endian.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vfio-user-server.h>
#include <vfio-user.h>
#include <viommu.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "api_user: %s:%d: %s\n", __FILE__, __LINE__, #cond);                   \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

static int map_one(viommu *v)
{
    struct virtio_iommu_req_attach a;
    memset(&a, 0, sizeof(a));
    a.head.type = VIRTIO_IOMMU_T_ATTACH;
    a.domain = htole32(1);
    a.endpoint = htole32(8);
    struct virtio_iommu_req_map m;
    memset(&m, 0, sizeof(m));
    m.head.type = VIRTIO_IOMMU_T_MAP;
    m.domain = htole32(1);
    m.virt_start = htole64(0x10000);
    m.virt_end = htole64(0x10fff);
    m.phys_start = htole64(0x80000);
    m.flags = htole32(VIRTIO_IOMMU_MAP_F_READ);
    struct iovec rd[2] = {{&a, offsetof(struct virtio_iommu_req_attach, tail)},
                          {&m, offsetof(struct virtio_iommu_req_map, tail)}};
    struct iovec wr[2] = {{&a.tail, sizeof(a.tail)}, {&m.tail, sizeof(m.tail)}};
    viommu_request reqs[2] = {{&rd[0], 1, &wr[0], 1, 0, 0, 0}, {&rd[1], 1, &wr[1], 1, 0, 0, 0}};
    CHECK(viommu_process_batch(v, reqs, 2) == 0);
    CHECK(a.tail.status == VIRTIO_IOMMU_S_OK && m.tail.status == VIRTIO_IOMMU_S_OK);
    return 0;
}

int main(void)
{
    /* viommu */
    viommu_config cfg;
    viommu_config_init(&cfg);
    GError *err = NULL;
    viommu *v = viommu_new(&cfg, &err);
    CHECK(v != NULL);
    CHECK(viommu_set_driver_features(v, viommu_device_features(v)) == 0);
    CHECK(viommu_endpoint_add(v, 8) == 0);
    CHECK(map_one(v) == 0);
    viommu_translation t;
    CHECK(viommu_translate(v, 8, 0x10123, VIOMMU_ACCESS_READ, &t) == 0 && t.gpa == 0x80123);
    size_t len = 0;
    CHECK(viommu_save(v, NULL, 0, &len) == -ENOSPC);
    void *state = malloc(len);
    CHECK(state && viommu_save(v, state, len, &len) == 0);
    viommu *w = viommu_new(&cfg, NULL);
    CHECK(w && viommu_load(w, state, len, NULL) == 0);
    CHECK(viommu_translate(w, 8, 0x10123, VIOMMU_ACCESS_READ, &t) == 0 && t.gpa == 0x80123);
    free(state);
    viommu_free(w);
    viommu_free(v);
    CHECK(strcmp(viommu_status_name(VIRTIO_IOMMU_S_RANGE), "RANGE") == 0);

    /* viommu-shared */
    interval_map *im = interval_map_new(8);
    uint64_t val = 7;
    CHECK(im && interval_map_insert(im, 10, 20, &val) == 0 && interval_map_count(im) == 1);
    interval_map_free(im);

    /* vfio-user */
    vfio_user_dialect d;
    CHECK(vfio_user_dialect_parse("0.9.1", &d) == 0 && d == VFIO_USER_DIALECT_0_9_1);
    vfio_user_caps caps;
    vfio_user_caps_init(&caps);
    caps.max_dma_maps = 16;
    char *json = vfio_user_caps_to_json(&caps);
    CHECK(json && strstr(json, "max_dma_maps"));
    g_free(json);

    /* vfio-user-server */
    vfio_user_server_options opts;
    vfio_user_server_options_init(&opts);
    CHECK(strcmp(vfio_user_server_profile_name(opts.profile), "own") == 0);

    printf("api_user: viommu, viommu-shared, vfio-user and vfio-user-server answered\n");
    return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * fuzz_virtqueue - arbitrary bytes become a small guest RAM holding a
 * request queue and an event queue (descriptor tables, rings, indirect
 * tables, buffers) that the device walks. The RAM is an exact-size heap
 * block, so ASan catches any access outside it; the target checks that
 * the used index only ever advances by what was completed and that
 * every used length fits the chain it completes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "viommu.h"

#define RAM 0x4000
#define QSIZE 16
#define DESC 0x0
#define AVAIL 0x100
#define USED 0x200
#define EDESC 0x300
#define EAVAIL 0x400
#define EUSED 0x500

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "invariant failed: %s (line %d)\n", #c, __LINE__);                     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void *ram_map(void *opaque, uint64_t gpa, uint64_t len, bool write)
{
    (void)write;
    if (gpa > RAM || len > RAM - gpa)
        return NULL;
    return (uint8_t *)opaque + gpa;
}

static uint16_t used_idx(const uint8_t *ram, uint64_t used)
{
    uint16_t i;
    memcpy(&i, ram + used + 2, 2);
    return le16toh(i);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *ram = calloc(1, RAM);
    CHECK(ram);
    memcpy(ram, data, size < RAM ? size : RAM);
    /* The device owns the used rings: start them clean. */
    memset(ram + USED, 0, 4 + 8 * QSIZE);
    memset(ram + EUSED, 0, 4 + 8 * QSIZE);

    viommu_config cfg;
    viommu_config_init(&cfg);
    cfg.page_size_mask = 1;
    cfg.probe_size = 0x40;
    viommu *v = viommu_new(&cfg, NULL);
    CHECK(v);
    viommu_set_driver_features(v, viommu_device_features(v));
    for (uint32_t ep = 0; ep < 4; ep++)
        viommu_endpoint_add(v, ep);
    uint8_t zero = 0;
    viommu_config_write(v, 36, &zero, 1);

    viommu_vq_config rq = {QSIZE, DESC, AVAIL, USED, {ram_map, ram}};
    viommu_vq_config eq = {QSIZE, EDESC, EAVAIL, EUSED, {ram_map, ram}};
    viommu_vq *req = NULL, *ev = NULL;
    CHECK(viommu_vq_new(&rq, &req) == 0);
    CHECK(viommu_vq_new(&eq, &ev) == 0);
    viommu_vq_set_event_queue(v, ev, NULL, NULL);

    /* Two notifications: the second sees whatever the first left. */
    for (int round = 0; round < 2; round++) {
        uint16_t before = used_idx(ram, USED);
        bool notify;
        int rc = viommu_vq_process_requests(v, req, &notify);
        CHECK(rc >= 0 || rc == -EIO);
        uint16_t after = used_idx(ram, USED);
        if (rc >= 0)
            CHECK((uint16_t)(after - before) == rc);
        CHECK((uint16_t)(after - before) <= QSIZE);
    }
    /* Faults go through the event queue the input describes. */
    for (uint32_t ep = 0; ep < 4; ep++) {
        viommu_translation t;
        viommu_translate(v, ep, (uint64_t)ep << 12, VIOMMU_ACCESS_WRITE, &t);
    }
    viommu_stats st;
    viommu_get_stats(v, &st);
    CHECK(st.faults == st.faults_reported + st.faults_dropped);
    CHECK(used_idx(ram, EUSED) <= QSIZE);

    viommu_vq_set_event_queue(v, NULL, NULL, NULL);
    viommu_vq_free(req);
    viommu_vq_free(ev);
    viommu_free(v);
    free(ram);
    return 0;
}

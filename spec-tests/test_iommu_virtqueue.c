/* SPDX-License-Identifier: MIT */
/*
 * Conformance: requests travel on the request virtqueue (virtio spec,
 * IOMMU device, Device operations): the driver's descriptor chains in
 * guest memory, one notification, statuses returned through the used ring.
 * The split-ring layout is written here from the virtio spec's split
 * virtqueue format.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "spec_iommu.h"

#define QUEUE_SIZE 8
#define RAM_SIZE 0x10000
#define DESC_GPA 0x0000
#define AVAIL_GPA 0x1000
#define USED_GPA 0x2000
#define REQ_GPA 0x4000 /* request i at REQ_GPA + 0x100 * i, its tail 0x80 further */

#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2

static uint8_t ram[RAM_SIZE];

static void *ram_map(void *opaque, uint64_t gpa, uint64_t len, bool write)
{
    (void)opaque;
    (void)write;
    if (gpa > RAM_SIZE || len > RAM_SIZE - gpa)
        return NULL;
    return ram + gpa;
}

/* Descriptor @i: le64 addr, le32 len, le16 flags, le16 next. */
static void put_desc(unsigned i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
    uint8_t *d = ram + DESC_GPA + 16 * i;

    spec_put_le64(d, addr);
    spec_put_le32(d + 8, len);
    spec_put_le16(d + 12, flags);
    spec_put_le16(d + 14, next);
}

/* Makes request @i (readable @rd) available as chain 2i -> 2i+1 (its tail). */
static void post(unsigned i, const uint8_t *rd, size_t rd_len)
{
    uint64_t req = REQ_GPA + 0x100 * i;
    uint16_t idx = spec_get_le16(ram + AVAIL_GPA + 2);

    memcpy(ram + req, rd, rd_len);
    memset(ram + req + 0x80, 0xff, SPEC_TAIL_LEN);
    put_desc(2 * i, req, (uint32_t)rd_len, VIRTQ_DESC_F_NEXT, (uint16_t)(2 * i + 1));
    put_desc(2 * i + 1, req + 0x80, SPEC_TAIL_LEN, VIRTQ_DESC_F_WRITE, 0);
    /* avail: le16 flags, le16 idx, le16 ring[]. */
    spec_put_le16(ram + AVAIL_GPA + 4 + 2 * (idx % QUEUE_SIZE), (uint16_t)(2 * i));
    spec_put_le16(ram + AVAIL_GPA + 2, (uint16_t)(idx + 1));
}

Test(operations, requests_return_with_a_status_in_the_used_ring)
{
    viommu *v = spec_device();
    viommu_vq_config qc = {.size = QUEUE_SIZE,
                           .desc_gpa = DESC_GPA,
                           .avail_gpa = AVAIL_GPA,
                           .used_gpa = USED_GPA,
                           .mem = {.map = ram_map}};
    viommu_vq *vq = NULL;
    uint8_t attach[SPEC_ATTACH_LEN], map[SPEC_MAP_LEN], bad[SPEC_MAP_LEN];
    bool notify = false;

    memset(ram, 0, sizeof(ram));
    cr_assert_eq(viommu_vq_new(&qc, &vq), 0);
    post(0, attach, spec_enc_attach(attach, 1, 1, 0));
    post(1, map, spec_enc_map(map, 1, 0x1000, 0x1fff, 0x5000, VIRTIO_IOMMU_MAP_F_READ));
    post(2, bad, spec_enc_map(bad, 9, 0x1000, 0x1fff, 0x5000, VIRTIO_IOMMU_MAP_F_READ));
    /* One notification: all three chains come back. */
    cr_assert_eq(viommu_vq_process_requests(v, vq, &notify), 3);
    cr_assert(notify, "the driver did not suppress interrupts");
    /* used: le16 flags, le16 idx, {le32 id, le32 len} ring[]. */
    cr_assert_eq(spec_get_le16(ram + USED_GPA + 2), 3);
    for (unsigned i = 0; i < 3; i++) {
        const uint8_t *elem = ram + USED_GPA + 4 + 8 * i;
        cr_assert_eq(spec_get_le32(elem), 2 * i, "used element %u names its chain head", i);
        cr_assert_eq(spec_get_le32(elem + 4), SPEC_TAIL_LEN, "the tail was written");
    }
    cr_assert_eq(ram[REQ_GPA + 0x80], VIRTIO_IOMMU_S_OK);
    cr_assert_eq(ram[REQ_GPA + 0x180], VIRTIO_IOMMU_S_OK);
    cr_assert_eq(ram[REQ_GPA + 0x280], VIRTIO_IOMMU_S_NOENT);
    cr_assert(spec_access(v, 1, 0x1800, VIOMMU_ACCESS_READ, NULL));
    /* Nothing new available: nothing happens. */
    cr_assert_eq(viommu_vq_process_requests(v, vq, &notify), 0);
    viommu_vq_free(vq);
    viommu_free(v);
}

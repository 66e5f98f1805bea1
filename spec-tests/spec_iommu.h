/* SPDX-License-Identifier: MIT */
/*
 * spec_iommu.h - drives a virtio-iommu device model the way a driver
 * does, through the public API only: request bytes laid out by hand from
 * the spec's structure definitions (not from the library's structs, so
 * the layouts are checked too), status and used length read back from
 * the device-writable bytes.
 */
#ifndef SPEC_IOMMU_H
#define SPEC_IOMMU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "viommu.h"

/* The status byte was not written (used length 0). */
#define SPEC_UNWRITTEN (-1)

/* Every feature the device offers is negotiated. */
#define SPEC_ALL_OFFERED UINT64_MAX

/* Endpoints 1 .. SPEC_ENDPOINTS exist on every spec device. */
#define SPEC_ENDPOINTS 4

/* Spec layouts: total sizes and where the device-writable part starts. */
#define SPEC_ATTACH_LEN 24
#define SPEC_DETACH_LEN 24
#define SPEC_MAP_LEN 40
#define SPEC_UNMAP_LEN 32
#define SPEC_PROBE_READABLE 72
#define SPEC_TAIL_LEN 4

void spec_put_le16(uint8_t *p, uint16_t v);
void spec_put_le32(uint8_t *p, uint32_t v);
void spec_put_le64(uint8_t *p, uint64_t v);
uint16_t spec_get_le16(const uint8_t *p);
uint32_t spec_get_le32(const uint8_t *p);
uint64_t spec_get_le64(const uint8_t *p);

/*
 * spec_device_with - a device from @cfg (NULL: defaults) with @features
 * negotiated (SPEC_ALL_OFFERED: all offered) and endpoints 1..@endpoints.
 */
viommu *spec_device_with(const viommu_config *cfg, uint64_t features, uint32_t endpoints);

/* spec_device - the default device, everything negotiated, SPEC_ENDPOINTS endpoints. */
viommu *spec_device(void);

/* spec_device_granule - spec_device() with page_size_mask @mask. */
viommu *spec_device_granule(uint64_t mask);

/*
 * Request encoders: fill @buf (the whole request, tail included, zeroed
 * first) and return the length of its device-readable part.
 */
size_t spec_enc_attach(uint8_t buf[SPEC_ATTACH_LEN], uint32_t domain, uint32_t endpoint,
                       uint32_t flags);
size_t spec_enc_detach(uint8_t buf[SPEC_DETACH_LEN], uint32_t domain, uint32_t endpoint);
size_t spec_enc_map(uint8_t buf[SPEC_MAP_LEN], uint32_t domain, uint64_t virt_start,
                    uint64_t virt_end, uint64_t phys_start, uint32_t flags);
size_t spec_enc_unmap(uint8_t buf[SPEC_UNMAP_LEN], uint32_t domain, uint64_t virt_start,
                      uint64_t virt_end);

/*
 * spec_send - hands the device one request: @rd_len readable bytes and
 * @wr_len writable bytes. Returns the used length.
 */
size_t spec_send(viommu *v, const void *rd, size_t rd_len, void *wr, size_t wr_len);

/*
 * spec_request - sends @rd with a 4-byte tail prefilled with 0xff and
 * returns the status byte the device wrote, or SPEC_UNWRITTEN. @tail,
 * when not NULL, receives the 4 tail bytes.
 */
int spec_request(viommu *v, const void *rd, size_t rd_len, uint8_t tail[SPEC_TAIL_LEN]);

int spec_attach(viommu *v, uint32_t domain, uint32_t endpoint, uint32_t flags);
int spec_detach(viommu *v, uint32_t domain, uint32_t endpoint);
int spec_map(viommu *v, uint32_t domain, uint64_t virt_start, uint64_t virt_end,
             uint64_t phys_start, uint32_t flags);
int spec_unmap(viommu *v, uint32_t domain, uint64_t virt_start, uint64_t virt_end);

/*
 * spec_probe - a PROBE of @endpoint with @props_len bytes of properties
 * (filled with 0xff first) followed by the tail. Returns the status read
 * from the tail, or SPEC_UNWRITTEN; @used gets the used length.
 */
int spec_probe(viommu *v, uint32_t endpoint, uint8_t *props, size_t props_len, size_t *used);

/*
 * spec_access - true when @endpoint may perform @access (VIOMMU_ACCESS_*)
 * at @iova; @gpa (may be NULL) receives where it lands.
 */
bool spec_access(viommu *v, uint32_t endpoint, uint64_t iova, uint32_t access, uint64_t *gpa);

/* spec_config_u8/u64 - a configuration-space field as the driver reads it. */
uint8_t spec_config_u8(viommu *v, uint32_t offset);
uint64_t spec_config_u64(viommu *v, uint32_t offset);

/* spec_mapping_count - the mappings of @domain, or -1 when it does not exist. */
int64_t spec_mapping_count(viommu *v, uint32_t domain);

/* Fault reports the device returned on the event queue. */
typedef struct spec_events {
    uint8_t buf[4][64];
    size_t used[4];
    bool completed[4];
} spec_events;

/*
 * spec_events_post - posts buffer @i of @ev, @len bytes (<= 64, filled
 * with 0xff), and routes completions to @ev.
 */
void spec_events_post(viommu *v, spec_events *ev, unsigned i, size_t len);

#endif

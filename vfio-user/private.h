/* SPDX-License-Identifier: MIT */
/*
 * private.h - helpers shared by the vfio-user sources; not installed.
 */
#ifndef VFIO_USER_PRIVATE_H
#define VFIO_USER_PRIVATE_H

#include <endian.h>
#include <stdint.h>
#include <string.h>

#include "vfio-user.h"

/* Wire struct sizes, as the codec uses them. */
#define SZ_2021_ENTRY sizeof(struct vfio_user_2021_dma_entry_wire)
#define SZ_2021_BITMAP sizeof(struct vfio_user_2021_bitmap_wire)
#define SZ_DMA_MAP sizeof(struct vfio_user_dma_map_wire)
#define SZ_DMA_UNMAP sizeof(struct vfio_user_dma_unmap_wire)
#define SZ_BITMAP sizeof(struct vfio_user_bitmap_wire)
#define SZ_DEVICE_INFO sizeof(struct vfio_user_device_info_wire)
#define SZ_REGION_INFO sizeof(struct vfio_user_region_info_wire)
#define SZ_REGION_ACCESS sizeof(struct vfio_user_region_access_wire)
#define SZ_DMA_ACCESS sizeof(struct vfio_user_dma_access_wire)
#define SZ_DIRTY sizeof(struct vfio_user_dirty_pages_wire)
#define SZ_2021_RANGE sizeof(struct vfio_user_2021_bitmap_range_wire)
#define SZ_RANGE sizeof(struct vfio_user_bitmap_range_wire)
#define SZ_FEATURE sizeof(struct vfio_user_device_feature_wire)
#define SZ_LOG_CONTROL sizeof(struct vfio_user_dma_logging_control_wire)
#define SZ_LOG_RANGE sizeof(struct vfio_user_dma_logging_range_wire)
#define SZ_LOG_REPORT sizeof(struct vfio_user_dma_logging_report_wire)

/* Little-endian loads and stores at unaligned byte addresses. */
static inline uint16_t get_le16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, sizeof(v));
    return le16toh(v);
}

static inline uint32_t get_le32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof(v));
    return le32toh(v);
}

static inline uint64_t get_le64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return le64toh(v);
}

static inline void put_le16(uint8_t *p, uint16_t v)
{
    v = htole16(v);
    memcpy(p, &v, sizeof(v));
}

static inline void put_le32(uint8_t *p, uint32_t v)
{
    v = htole32(v);
    memcpy(p, &v, sizeof(v));
}

static inline void put_le64(uint8_t *p, uint64_t v)
{
    v = htole64(v);
    memcpy(p, &v, sizeof(v));
}

/*
 * decode without the fd-count rules: used to re-read our own encoded
 * requests, whose fds travel separately.
 */
int vfio_user_msg_decode_nofds(vfio_user_dialect d, const void *buf, size_t len, vfio_user_msg *out,
                               vfio_user_dma_entry *entries, size_t max_entries);

/*
 * vfio_user_client_take_fd - inside a completion callback, takes over the
 * first fd that came with the reply (the caller then owns it); -1 when
 * there is none.
 */
int vfio_user_client_take_fd(vfio_user_client *c);

/* vfio_user_client_wait_for - waits until *remaining is 0 (callbacks decrement it). */
int vfio_user_client_wait_for(vfio_user_client *c, const unsigned *remaining);

/* vfio_user_client_max_recv - the largest message the client accepts. */
size_t vfio_user_client_max_recv(const vfio_user_client *c);

#endif /* VFIO_USER_PRIVATE_H */

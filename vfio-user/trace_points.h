/* SPDX-License-Identifier: MIT */
/*
 * trace_points.h - what the vfio-user trace events need beyond TRACE():
 * the device number a connection reports, and the dirty-bitmap count.
 */
#ifndef VFIO_USER_TRACE_POINTS_H
#define VFIO_USER_TRACE_POINTS_H

#include "vfio-user.h"

/*
 * vfio_user_client_trace_device - the number trace events give this
 * connection: distinct for every client the process created, unless
 * vfio_user_client_set_trace_device gave it an earlier one.
 */
uint32_t vfio_user_client_trace_device(const vfio_user_client *c);

/* vfio_user_client_set_trace_device - a reconnected device keeps its number. */
void vfio_user_client_set_trace_device(vfio_user_client *c, uint32_t device);

/*
 * Fires dirty_collected for the @bytes-byte little-endian bitmap of
 * [@iova, @iova + @size) at @pgsize bytes per bit, counting the bits set
 * among the range's pages. Only while tracing is wanted: the count reads
 * the whole bitmap.
 */
static inline void vfio_user_trace_dirty(uint32_t device, uint64_t iova, uint64_t size,
                                         uint64_t pgsize, const uint8_t *bitmap, uint64_t bytes)
{
    if (!trace_event_wanted(dirty_collected) || !bitmap || pgsize == 0 || size == 0)
        return;
    uint64_t npages = size / pgsize + (size % pgsize != 0);
    if (npages > bytes * 8)
        npages = bytes * 8;
    uint64_t set = 0;
    for (uint64_t i = 0; i < npages / 8; i++)
        set += (uint64_t)__builtin_popcount(bitmap[i]);
    if (npages % 8)
        set += (uint64_t)__builtin_popcount(bitmap[npages / 8] & ((1u << (npages % 8)) - 1));
    TRACE(dirty_collected, device, iova, iova + size - 1, pgsize, set);
}

#endif /* VFIO_USER_TRACE_POINTS_H */

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

/* SPDX-License-Identifier: MIT */
/*
 * Internals of the reference server: the DMA region table, profiles,
 * the sample device, message transport and the connection state.
 */
#ifndef VFIO_USER_SERVER_PRIVATE_H
#define VFIO_USER_SERVER_PRIVATE_H

#include <stdatomic.h>
#include <string.h>

#include <gio/gio.h>

#include "shared.h"
#include "vfio-user-server.h"

/* ------------------------------------------------------------------ */
/* Little-endian access at the wire boundary                           */
/* ------------------------------------------------------------------ */

static inline uint16_t vus_get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (unsigned)p[1] << 8);
}

static inline uint32_t vus_get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t vus_get64(const uint8_t *p)
{
    return (uint64_t)vus_get32(p) | (uint64_t)vus_get32(p + 4) << 32;
}

static inline void vus_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline void vus_put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline void vus_put64(uint8_t *p, uint64_t v)
{
    vus_put32(p, (uint32_t)v);
    vus_put32(p + 4, (uint32_t)(v >> 32));
}

static inline bool vus_is_pow2(uint64_t x)
{
    return x && !(x & (x - 1));
}

/* ------------------------------------------------------------------ */
/* Profiles                                                            */
/* ------------------------------------------------------------------ */

/*
 * Everything that differs between the servers a profile reproduces.
 * Numbers and errnos are those observed on the wire
 * (vfio-user-peers.md and the transcripts in tests/transcripts/).
 */
typedef struct vus_profile {
    vfio_user_server_profile id;
    const char *name;
    vfio_user_dialect dialect;
    bool json_spaced;    /* json-c's "spaced" output: { "a": 1 } */
    bool caps_migration; /* advertise migration.pgsize */
    bool caps_own;       /* advertise max_msg_size, max_dma_maps */
    bool caps_unmap_partial;
    uint32_t max_msg_size;    /* largest request accepted, header included */
    uint32_t max_unmap_argsz; /* DMA_UNMAP argsz above this is refused; 0: no limit */
    uint32_t max_regions;
    uint64_t max_region_size;
    int map_overlap_errno; /* a map overlapping a region */
    bool map_identical_ok; /* re-mapping an identical region succeeds */
    int map_limit_errno;   /* a map beyond max_regions */
    bool unmap_partial;    /* remove any portion (2021); else exact match */
    bool unmap_lenient;    /* read the first unmap entry, ignore the rest */
    bool unmap_bitmap;     /* unmap-with-bitmap supported */
    bool dirty_pages;      /* DIRTY_PAGES command supported */
    int dirty_pages_errno; /* its errno when not */
    bool dma_logging;      /* DEVICE_FEATURE DMA_LOGGING_* supported */
    bool bitmap_strict;    /* bitmap = one whole region, size in u64 words, pgsize = logging's */
    bool pgsize_fatal;     /* an unsupported migration pgsize closes the connection */
    bool twin_socket;      /* accepts twin-socket mode when offered */
} vus_profile;

/* The profile @p, with @dialect for PROFILE_OWN; NULL when unknown. */
const vus_profile *vus_profile_get(vfio_user_server_profile p, vfio_user_dialect dialect);

#define VUS_OWN_MAX_MSG_SIZE (4u << 20)
#define VUS_PEER_MAX_MSG_SIZE ((1u << 20) + 32u)
#define VUS_MAX_DATA_XFER (1u << 20)
#define VUS_MAX_MSG_FDS 8u
#define VUS_MAX_REGION_SIZE (8ull << 40)

/*
 * vus_caps_json - the VERSION reply's JSON for @prof (built with
 * json-glib): @pgsize the negotiated logging page size, @twin whether the
 * twin-socket answer (fd_index 0) is included. Returns a g_malloc'ed
 * NUL-terminated string.
 */
char *vus_caps_json(const vus_profile *prof, uint32_t max_regions, uint64_t pgsize, bool twin);

/* ------------------------------------------------------------------ */
/* DMA region table                                                    */
/* ------------------------------------------------------------------ */

/*
 * One region, the interval map's inline value (kept small: the region
 * table must stay under 96 bytes per region). The fd passed with a map
 * is closed once mapped: the mapping keeps the memory alive.
 */
typedef struct vus_region {
    uint8_t *host;        /* the region's first byte in our mapping; NULL: reach it by messages */
    uint64_t *dirty;      /* logged pages from floor(first / log_pgsize); NULL when not logging */
    uint32_t prot;        /* VFIO_USER_PROT_* */
    uint32_t dirty_words; /* u64 words allocated at @dirty */
} vus_region;
_Static_assert(sizeof(vus_region) == 24, "region value is 24 bytes");

/*
 * Dirty bitmaps of one connection stay under this many bytes (an 8 TiB
 * region at 4 KiB pages needs 256 MiB): a client cannot make the server
 * allocate without bound by logging huge regions at tiny pages.
 */
#define VUS_MAX_DIRTY_BYTES (512ull << 20)

typedef struct vus_dma {
    interval_map *map;
    uint64_t host_pgsize;
    uint64_t log_pgsize; /* valid while logging */
    uint64_t dirty_bytes;
    bool logging;
} vus_dma;

/* The rules of one profile for DMA_MAP. */
typedef struct vus_map_rules {
    uint32_t max_regions;
    uint64_t max_region_size;
    int overlap_errno;
    bool identical_ok;
    int limit_errno;
} vus_map_rules;

int vus_dma_init(vus_dma *d);
void vus_dma_destroy(vus_dma *d);

/*
 * vus_dma_map - adds [iova, iova + size). @fd >= 0: mmap @size bytes at
 * @offset of it (the caller keeps and closes @fd). Returns 0; -EINVAL
 * for a zero size, overflow, unknown prot bits or an fd too small;
 * rules->overlap_errno, rules->limit_errno, -ENOSPC beyond
 * max_region_size, -ENOMEM, or mmap's errno.
 */
int vus_dma_map(vus_dma *d, uint64_t iova, uint64_t size, int fd, uint64_t offset, uint32_t prot,
                const vus_map_rules *rules);

/* vus_dma_unmap_exact - removes the region that is exactly [iova, iova + size); -ENOENT. */
int vus_dma_unmap_exact(vus_dma *d, uint64_t iova, uint64_t size);

/*
 * vus_dma_unmap_check - whether vus_dma_unmap_range() of [first, last]
 * would succeed: -ENOENT when no byte of it is mapped, -EINVAL when it
 * would cut a region with a mapping at an address that is not
 * host-page aligned. Changes nothing.
 */
int vus_dma_unmap_check(const vus_dma *d, uint64_t first, uint64_t last);

/*
 * vus_dma_unmap_range - removes every mapped byte of [first, last],
 * splitting the regions it cuts. Returns 0, the errors of
 * vus_dma_unmap_check(), or -ENOMEM (the regions concerned are then
 * removed whole).
 */
int vus_dma_unmap_range(vus_dma *d, uint64_t first, uint64_t last);

/* vus_dma_unmap_all - removes every region. */
void vus_dma_unmap_all(vus_dma *d);

/* vus_dma_log_start - starts dirty logging at @pgsize (power of two); -ENOMEM. */
int vus_dma_log_start(vus_dma *d, uint64_t pgsize);

/* vus_dma_log_stop - stops dirty logging, dropping the bitmaps. */
void vus_dma_log_stop(vus_dma *d);

/*
 * vus_dma_mark_dirty - records a device write to [first, last], which
 * lies within the region @r keyed @key.
 */
void vus_dma_mark_dirty(vus_dma *d, vus_region *r, u64_range key, uint64_t first, uint64_t last);

/*
 * vus_dma_collect - the dirty bitmap of [iova, iova + size) at @pgsize
 * per bit, ORed into @words (host-order u64s, @nwords of them, enough for
 * ceil(size / pgsize) bits); logged pages wholly inside the range are
 * cleared (bitmaps are cleared on read). Returns 0, -EINVAL.
 */
int vus_dma_collect(vus_dma *d, uint64_t iova, uint64_t size, uint64_t pgsize, uint64_t *words,
                    size_t nwords);

/* ------------------------------------------------------------------ */
/* Messages                                                            */
/* ------------------------------------------------------------------ */

#define VUS_MAX_RECV_FDS 16u

typedef struct vus_msg {
    vfio_user_header hdr;
    uint8_t *body;
    size_t len;
    int fds[VUS_MAX_RECV_FDS];
    unsigned nfds;
    bool fds_truncated; /* more fds arrived than fds[] holds (the rest were closed) */
} vus_msg;

/* vus_msg_clear - frees the body and closes every fd still held. */
void vus_msg_clear(vus_msg *m);

/* ------------------------------------------------------------------ */
/* Connection                                                          */
/* ------------------------------------------------------------------ */

struct vfio_user_server_conn {
    int fd;
    int twin_fd; /* server -> client commands when twin-socket mode is on, else -1 */
    vfio_user_server_options opts;
    const vus_profile *prof;
    bool version_done;
    uint32_t client_max_fds;
    uint64_t client_max_msg_size; /* 0: no limit beyond ours */
    uint64_t client_max_xfer;
    uint64_t pgsize; /* dirty-logging page size */
    vus_dma dma;
    uint8_t regs[0x20]; /* sample device registers */
    uint16_t next_id;
    GQueue pending; /* vus_msg * received while waiting for a DMA reply */
    size_t pending_bytes;
    uint32_t fault_matched;
    uint32_t fault_done;
    bool broken; /* the stream cannot be trusted any more */
    atomic_bool stopping;
};

/*
 * vus_recv - reads one message from @fd into @m. @timeout_ms < 0 waits
 * forever. Returns 0; -ECONNRESET on EOF; -ETIMEDOUT; -EMSGSIZE when
 * the header's msg_size is below 16 or above the profile's limit (@m->hdr
 * is then valid, the body unread); -ENOMEM; -EIO or another errno.
 */
int vus_recv(vfio_user_server_conn *c, int fd, vus_msg *m, int timeout_ms);

/*
 * vus_send - sends a message: the 16-byte header from @hdr (msg_size
 * computed), then @body. @fd_out >= 0 travels as SCM_RIGHTS.
 */
int vus_send(int fd, const vfio_user_header *hdr, const void *body, size_t len, int fd_out,
             bool short_writes);

/* vus_reply - answers @req with @body; applies fault injection. */
int vus_reply(vfio_user_server_conn *c, const vus_msg *req, const void *body, size_t len,
              int fd_out);

/* vus_reply_error - answers @req with the error @err (a positive errno). */
int vus_reply_error(vfio_user_server_conn *c, const vus_msg *req, int err);

/* vus_log - one line on stderr when verbose. */
void vus_log(const vfio_user_server_conn *c, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

/*
 * vus_conn_dma_rw - a server -> client DMA_WRITE (fill @len bytes of
 * @fill) or DMA_READ (adding the bytes read to @sum) of [iova, iova +
 * len), in chunks of the client's max_data_xfer_size, each waiting for
 * its reply while queueing commands that arrive meanwhile. Returns 0 or
 * a negative errno (the client's error, -ETIMEDOUT, -EPROTO).
 */
int vus_conn_dma_rw(vfio_user_server_conn *c, bool write, uint64_t iova, uint64_t len, uint8_t fill,
                    uint64_t *sum);

/* vus_handle - handles one received command; returns as serve_one. */
int vus_handle(vfio_user_server_conn *c, vus_msg *m);

/* ------------------------------------------------------------------ */
/* Sample device                                                       */
/* ------------------------------------------------------------------ */

void vus_device_reset(vfio_user_server_conn *c);

/* Reads @count bytes at @offset of BAR0 into @out; offset + count <= BAR size. */
void vus_device_read(vfio_user_server_conn *c, uint64_t offset, uint8_t *out, uint32_t count);

/*
 * Writes @count bytes at @offset of BAR0, running the command when the
 * write touches DMA_CMD. Returns 0, or a negative errno when the
 * connection broke during a server -> client transfer.
 */
int vus_device_write(vfio_user_server_conn *c, uint64_t offset, const uint8_t *data,
                     uint32_t count);

#endif /* VFIO_USER_SERVER_PRIVATE_H */

/* SPDX-License-Identifier: MIT */
/*
 * vfio-user.h - the vfio-user protocol: wire definitions for the three
 * dialects the world speaks, a pure message codec, VERSION negotiation
 * and a pipelined client.
 *
 * Dialects (chosen by configuration, checked against the VERSION reply):
 *
 *   VFIO_USER_DIALECT_2021   the 2021 spec: DMA_MAP / DMA_UNMAP carry tables
 *                            of 32-byte entries (one fd per mappable entry),
 *                            an UNMAP entry with GET_DIRTY_BITMAP carries a
 *                            24-byte vfio_user_bitmap; DIRTY_PAGES is 15.
 *   VFIO_USER_DIALECT_0_9_1  libvfio-user 2021-2023 and QEMU 7.2: one region
 *                            per message with argsz, 16-byte bitmap header,
 *                            unmap-all flag, DIRTY_PAGES is 14.
 *   VFIO_USER_DIALECT_FINAL  QEMU's current spec: as 0.9.1 for DMA, dirty
 *                            logging through DEVICE_FEATURE DMA_LOGGING_*.
 *
 * Conventions: functions return 0 or a negative errno unless documented
 * otherwise. Wire structs hold little-endian values exactly as they sit
 * on the wire; every other struct in this header is host byte order. The
 * codec converts at the byte-buffer boundary only.
 *
 * Errors used throughout:
 *   -EBADMSG   a message is malformed (a length, count or field that does
 *              not fit the message, or does not match its request)
 *   -EMSGSIZE  a message exceeds a negotiated or configured limit
 *   -ENOSPC    the caller's output buffer is too small
 *   -EINVAL    an invalid argument from the caller
 *   -ENOTSUP   the operation does not exist in the dialect
 *   -EPROTO    the peer broke the protocol (a reply to nothing, an
 *              unexpected fd, a command where a reply belongs)
 */
#ifndef VFIO_USER_H
#define VFIO_USER_H

#include <glib.h>

#include "shared.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(VFIO_USER_BUILDING) && defined(__GNUC__)
#define VFIO_USER_API __attribute__((visibility("default")))
#else
#define VFIO_USER_API
#endif

/* ------------------------------------------------------------------ */
/* Dialects, operations and command numbers                            */
/* ------------------------------------------------------------------ */

typedef enum vfio_user_dialect {
    VFIO_USER_DIALECT_2021 = 0,
    VFIO_USER_DIALECT_0_9_1 = 1,
    VFIO_USER_DIALECT_FINAL = 2,
} vfio_user_dialect;

/**
 * vfio_user_dialect_name - "2021", "0.9.1" or "final"; NULL for an
 * unknown value.
 */
VFIO_USER_API const char *vfio_user_dialect_name(vfio_user_dialect d);

/**
 * vfio_user_dialect_parse - the dialect called @name ("2021", "0.9.1",
 * "final"). Returns 0, or -EINVAL for any other name.
 */
VFIO_USER_API int vfio_user_dialect_parse(const char *name, vfio_user_dialect *out);

/*
 * Operations, independent of dialect: the command number of one
 * operation differs between dialects (DEVICE_RESET is 14 in 2021 and 13
 * later; DIRTY_PAGES 15 vs 14), so the codec speaks in operations and
 * maps them to command numbers with vfio_user_op_command().
 */
typedef enum vfio_user_op {
    VFIO_USER_OP_VERSION = 1,
    VFIO_USER_OP_DMA_MAP,
    VFIO_USER_OP_DMA_UNMAP,
    VFIO_USER_OP_DEVICE_GET_INFO,
    VFIO_USER_OP_DEVICE_GET_REGION_INFO,
    VFIO_USER_OP_REGION_READ,
    VFIO_USER_OP_REGION_WRITE,
    VFIO_USER_OP_DMA_READ,     /* server -> client */
    VFIO_USER_OP_DMA_WRITE,    /* server -> client */
    VFIO_USER_OP_VM_INTERRUPT, /* server -> client, 2021 only */
    VFIO_USER_OP_DEVICE_RESET,
    VFIO_USER_OP_DIRTY_PAGES,    /* 2021 and 0.9.1 */
    VFIO_USER_OP_DEVICE_FEATURE, /* final */
} vfio_user_op;

/* Command numbers common to every dialect. */
#define VFIO_USER_VERSION 1
#define VFIO_USER_DMA_MAP 2
#define VFIO_USER_DMA_UNMAP 3
#define VFIO_USER_DEVICE_GET_INFO 4
#define VFIO_USER_DEVICE_GET_REGION_INFO 5
#define VFIO_USER_REGION_READ 9
#define VFIO_USER_REGION_WRITE 10
#define VFIO_USER_DMA_READ 11
#define VFIO_USER_DMA_WRITE 12
/* 2021 numbering. */
#define VFIO_USER_2021_VM_INTERRUPT 13
#define VFIO_USER_2021_DEVICE_RESET 14
#define VFIO_USER_2021_DIRTY_PAGES 15
/* 0.9.1 and final numbering (DIRTY_PAGES = 14 is how real servers use it). */
#define VFIO_USER_DEVICE_RESET 13
#define VFIO_USER_DIRTY_PAGES 14
#define VFIO_USER_DEVICE_FEATURE 16

/**
 * vfio_user_op_command - the command number of @op in @d.
 * Returns it (> 0), or -ENOTSUP when @d has no such command.
 */
VFIO_USER_API int vfio_user_op_command(vfio_user_dialect d, vfio_user_op op);

/**
 * vfio_user_command_op - the operation command number @command means in
 * @d. Returns it (> 0), or -ENOTSUP for a command @d does not define.
 */
VFIO_USER_API int vfio_user_command_op(vfio_user_dialect d, uint16_t command);

/** vfio_user_op_name - "DMA_MAP" etc.; "?" for an unknown value. */
VFIO_USER_API const char *vfio_user_op_name(vfio_user_op op);

/* ------------------------------------------------------------------ */
/* Wire structs (little-endian, exactly as on the wire)                */
/* ------------------------------------------------------------------ */

/* Header flags. */
#define VFIO_USER_F_TYPE_MASK 0xfu
#define VFIO_USER_F_TYPE_COMMAND 0x0u
#define VFIO_USER_F_TYPE_REPLY 0x1u
#define VFIO_USER_F_NO_REPLY 0x10u
#define VFIO_USER_F_ERROR 0x20u

struct vfio_user_header_wire {
    uint16_t msg_id;
    uint16_t command;
    uint32_t msg_size; /* whole message, header included */
    uint32_t flags;
    uint32_t error_no;
};
_Static_assert(sizeof(struct vfio_user_header_wire) == 16, "header is 16 bytes");
_Static_assert(offsetof(struct vfio_user_header_wire, msg_size) == 4, "msg_size at 4");
_Static_assert(offsetof(struct vfio_user_header_wire, error_no) == 12, "error at 12");

#define VFIO_USER_HEADER_SIZE 16u

struct vfio_user_version_wire {
    uint16_t major;
    uint16_t minor;
    /* followed by optional NUL-terminated JSON */
};
_Static_assert(sizeof(struct vfio_user_version_wire) == 4, "version header is 4 bytes");

/* DMA protection bits (PROT_READ / PROT_WRITE values, all dialects). */
#define VFIO_USER_PROT_READ 0x1u
#define VFIO_USER_PROT_WRITE 0x2u

/* 2021: DMA_MAP / DMA_UNMAP table entry. */
#define VFIO_USER_2021_DMA_MAP_FLAG_MAPPABLE 0x1u
struct vfio_user_2021_dma_entry_wire {
    uint64_t addr;
    uint64_t size;
    uint64_t offset;
    uint32_t prot;
    uint32_t flags;
};
_Static_assert(sizeof(struct vfio_user_2021_dma_entry_wire) == 32, "2021 entry is 32 bytes");
_Static_assert(offsetof(struct vfio_user_2021_dma_entry_wire, prot) == 24, "prot at 24");
_Static_assert(offsetof(struct vfio_user_2021_dma_entry_wire, flags) == 28, "flags at 28");

/* 2021: struct vfio_user_bitmap, after an UNMAP entry with the bitmap flag. */
struct vfio_user_2021_bitmap_wire {
    uint64_t pgsize;
    uint64_t size; /* bitmap bytes, excluding this header */
    uint64_t data; /* unused on the wire */
};
_Static_assert(sizeof(struct vfio_user_2021_bitmap_wire) == 24, "2021 bitmap is 24 bytes");
_Static_assert(offsetof(struct vfio_user_2021_bitmap_wire, data) == 16, "data at 16");

/* 0.9.1 / final: DMA_MAP body. */
struct vfio_user_dma_map_wire {
    uint32_t argsz;
    uint32_t flags; /* VFIO_USER_PROT_* bits */
    uint64_t offset;
    uint64_t addr;
    uint64_t size;
};
_Static_assert(sizeof(struct vfio_user_dma_map_wire) == 32, "dma_map is 32 bytes");
_Static_assert(offsetof(struct vfio_user_dma_map_wire, offset) == 8, "offset at 8");
_Static_assert(offsetof(struct vfio_user_dma_map_wire, addr) == 16, "addr at 16");
_Static_assert(offsetof(struct vfio_user_dma_map_wire, size) == 24, "size at 24");

/* DMA_UNMAP flags (entry flags in 2021, body flags later). */
#define VFIO_USER_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP 0x1u
/*
 * Unmap every region. Defined by 0.9.1 and honoured by every real server;
 * in 2021 it is accepted as a single table entry {0, 0, flags = ALL} by
 * this project's reference server.
 */
#define VFIO_USER_DMA_UNMAP_FLAG_ALL 0x2u

/* 0.9.1 / final: DMA_UNMAP body. */
struct vfio_user_dma_unmap_wire {
    uint32_t argsz; /* maximum reply payload */
    uint32_t flags;
    uint64_t addr;
    uint64_t size;
};
_Static_assert(sizeof(struct vfio_user_dma_unmap_wire) == 24, "dma_unmap is 24 bytes");
_Static_assert(offsetof(struct vfio_user_dma_unmap_wire, addr) == 8, "addr at 8");

/* 0.9.1 / final: bitmap header after a DMA_UNMAP body with the bitmap flag. */
struct vfio_user_bitmap_wire {
    uint64_t pgsize;
    uint64_t size;
};
_Static_assert(sizeof(struct vfio_user_bitmap_wire) == 16, "bitmap header is 16 bytes");

struct vfio_user_device_info_wire {
    uint32_t argsz;
    uint32_t flags;
    uint32_t num_regions;
    uint32_t num_irqs;
};
_Static_assert(sizeof(struct vfio_user_device_info_wire) == 16, "device info is 16 bytes");
_Static_assert(offsetof(struct vfio_user_device_info_wire, num_irqs) == 12, "num_irqs at 12");
#define VFIO_USER_DEVICE_FLAGS_RESET 0x1u
#define VFIO_USER_DEVICE_FLAGS_PCI 0x2u

struct vfio_user_region_info_wire {
    uint32_t argsz;
    uint32_t flags;
    uint32_t index;
    uint32_t cap_offset;
    uint64_t size;
    uint64_t offset;
};
_Static_assert(sizeof(struct vfio_user_region_info_wire) == 32, "region info is 32 bytes");
_Static_assert(offsetof(struct vfio_user_region_info_wire, size) == 16, "size at 16");
_Static_assert(offsetof(struct vfio_user_region_info_wire, offset) == 24, "offset at 24");
#define VFIO_USER_REGION_INFO_FLAG_READ 0x1u
#define VFIO_USER_REGION_INFO_FLAG_WRITE 0x2u
#define VFIO_USER_REGION_INFO_FLAG_MMAP 0x4u
#define VFIO_USER_REGION_INFO_FLAG_CAPS 0x8u

/* REGION_READ / REGION_WRITE. */
struct vfio_user_region_access_wire {
    uint64_t offset;
    uint32_t region;
    uint32_t count;
    /* followed by data */
};
_Static_assert(sizeof(struct vfio_user_region_access_wire) == 16, "region access is 16 bytes");
_Static_assert(offsetof(struct vfio_user_region_access_wire, count) == 12, "count at 12");

/* DMA_READ / DMA_WRITE (server -> client). */
struct vfio_user_dma_access_wire {
    uint64_t addr;
    uint64_t count;
    /* followed by data */
};
_Static_assert(sizeof(struct vfio_user_dma_access_wire) == 16, "dma access is 16 bytes");

/* 2021: VM_INTERRUPT. */
struct vfio_user_vm_interrupt_wire {
    uint32_t sub_index;
};
_Static_assert(sizeof(struct vfio_user_vm_interrupt_wire) == 4, "vm interrupt is 4 bytes");

/* DIRTY_PAGES (2021 and 0.9.1). */
#define VFIO_USER_DIRTY_PAGES_FLAG_START 0x1u
#define VFIO_USER_DIRTY_PAGES_FLAG_STOP 0x2u
#define VFIO_USER_DIRTY_PAGES_FLAG_GET_BITMAP 0x4u
struct vfio_user_dirty_pages_wire {
    uint32_t argsz;
    uint32_t flags;
};
_Static_assert(sizeof(struct vfio_user_dirty_pages_wire) == 8, "dirty pages is 8 bytes");

/*
 * 2021 GET_BITMAP range: iova, size and a 24-byte vfio_user_bitmap. The
 * reply is answered "the same way as DMA_UNMAP": the 24-byte bitmap
 * header, then the bitmap.
 */
struct vfio_user_2021_bitmap_range_wire {
    uint64_t iova;
    uint64_t size;
    struct vfio_user_2021_bitmap_wire bitmap;
};
_Static_assert(sizeof(struct vfio_user_2021_bitmap_range_wire) == 40, "2021 range is 40 bytes");

/*
 * 0.9.1 GET_BITMAP range, as the real servers use it: iova, size and the
 * 16-byte bitmap header. The reply is dirty_pages + range + bitmap.
 */
struct vfio_user_bitmap_range_wire {
    uint64_t iova;
    uint64_t size;
    struct vfio_user_bitmap_wire bitmap;
};
_Static_assert(sizeof(struct vfio_user_bitmap_range_wire) == 32, "range is 32 bytes");
_Static_assert(offsetof(struct vfio_user_bitmap_range_wire, bitmap) == 16, "bitmap at 16");

/* final: DEVICE_FEATURE. */
#define VFIO_USER_DEVICE_FEATURE_MASK 0xffffu
#define VFIO_USER_DEVICE_FEATURE_GET (1u << 16)
#define VFIO_USER_DEVICE_FEATURE_SET (1u << 17)
#define VFIO_USER_DEVICE_FEATURE_PROBE (1u << 18)
#define VFIO_USER_DEVICE_FEATURE_DMA_LOGGING_START 6u
#define VFIO_USER_DEVICE_FEATURE_DMA_LOGGING_STOP 7u
#define VFIO_USER_DEVICE_FEATURE_DMA_LOGGING_REPORT 8u
struct vfio_user_device_feature_wire {
    uint32_t argsz;
    uint32_t flags;
};
_Static_assert(sizeof(struct vfio_user_device_feature_wire) == 8, "device feature is 8 bytes");

struct vfio_user_dma_logging_control_wire {
    uint64_t page_size;
    uint32_t num_ranges;
    uint32_t reserved;
    /* followed by num_ranges vfio_user_dma_logging_range_wire */
};
_Static_assert(sizeof(struct vfio_user_dma_logging_control_wire) == 16, "control is 16 bytes");
_Static_assert(offsetof(struct vfio_user_dma_logging_control_wire, num_ranges) == 8, "at 8");

struct vfio_user_dma_logging_range_wire {
    uint64_t iova;
    uint64_t length;
};
_Static_assert(sizeof(struct vfio_user_dma_logging_range_wire) == 16, "range is 16 bytes");

struct vfio_user_dma_logging_report_wire {
    uint64_t iova;
    uint64_t length;
    uint64_t page_size;
    /* followed, in the reply, by the bitmap */
};
_Static_assert(sizeof(struct vfio_user_dma_logging_report_wire) == 24, "report is 24 bytes");

/* ------------------------------------------------------------------ */
/* Codec (host byte order, pure functions over byte buffers)           */
/* ------------------------------------------------------------------ */

/** Decoded header, host byte order. */
typedef struct vfio_user_header {
    uint16_t msg_id;
    uint16_t command;
    uint32_t msg_size;
    uint32_t flags;
    uint32_t error_no;
} vfio_user_header;

/**
 * vfio_user_dma_entry - one DMA region of a DMA_MAP or DMA_UNMAP message,
 * or one range of DMA_LOGGING_START (iova and size only).
 *
 * @fd: DMA_MAP: the file descriptor backing the region, or -1 when the
 *   region is not mappable (the server then uses DMA_READ / DMA_WRITE).
 *   On decode it is the fd from the message's fd array (the codec never
 *   takes ownership of an fd).
 * @flags: DMA_UNMAP: VFIO_USER_DMA_UNMAP_FLAG_*.
 * @bitmap_pgsize, @bitmap_size: DMA_UNMAP with GET_DIRTY_BITMAP: the page
 *   size of the bitmap and its length in bytes.
 * @bitmap: in a decoded DMA_UNMAP reply, points at the bitmap inside the
 *   decoded buffer. When encoding a reply, the bitmap to copy (NULL
 *   writes zeros).
 */
typedef struct vfio_user_dma_entry {
    uint64_t iova;
    uint64_t size;
    uint64_t offset;
    uint32_t prot;
    uint32_t flags;
    int fd;
    uint64_t bitmap_pgsize;
    uint64_t bitmap_size;
    const uint8_t *bitmap;
} vfio_user_dma_entry;

/**
 * vfio_user_msg - one decoded (or to-be-encoded) message, host order.
 *
 * @hdr: the header. On encode, msg_id, flags and error_no are taken from
 *   it; command and msg_size are computed.
 * @op: the operation (from hdr.command through the dialect on decode).
 * Pointers (json, data, bitmap, entries[i].bitmap) point into the decoded
 * buffer, or, on encode, at caller memory that is copied.
 *
 * Which union member is used follows @op:
 *   VERSION: version; DMA_MAP, DMA_UNMAP: dma (and unmap's argsz);
 *   DEVICE_GET_INFO: device_info; DEVICE_GET_REGION_INFO: region_info;
 *   REGION_READ/WRITE: region_io; DMA_READ/WRITE: dma_io;
 *   VM_INTERRUPT: interrupt; DEVICE_RESET: none; DIRTY_PAGES: dirty;
 *   DEVICE_FEATURE: feature.
 * An error reply (VFIO_USER_F_ERROR) has no body: only hdr is filled.
 */
typedef struct vfio_user_msg {
    vfio_user_header hdr;
    vfio_user_op op;
    union {
        struct {
            uint16_t major, minor;
            const char *json; /* NUL-terminated, or NULL when absent */
            size_t json_len;  /* bytes including the NUL, 0 when absent */
        } version;
        struct {
            vfio_user_dma_entry *entries;
            size_t count;
            /* 0.9.1/final argsz; 0 on encode means "compute it" */
            uint32_t argsz;
        } dma;
        struct {
            uint32_t argsz, flags, num_regions, num_irqs;
        } device_info;
        struct {
            uint32_t argsz, flags, index, cap_offset;
            uint64_t size, offset;
            const uint8_t *caps; /* bytes after the 32-byte struct */
            size_t caps_len;
        } region_info;
        struct {
            uint64_t offset;
            uint32_t region, count;
            const uint8_t *data; /* NULL / absent when the message has none */
            size_t data_len;
        } region_io;
        struct {
            uint64_t addr, count;
            const uint8_t *data;
            size_t data_len;
        } dma_io;
        struct {
            uint32_t sub_index;
        } interrupt;
        struct {
            uint32_t argsz, flags;
            bool has_range; /* GET_BITMAP request / reply */
            uint64_t iova, size, pgsize, bitmap_size;
            const uint8_t *bitmap; /* reply only */
        } dirty;
        struct {
            uint32_t argsz, flags;
            /* DMA_LOGGING_START (SET): page size and ranges (dma entries) */
            uint64_t page_size;
            vfio_user_dma_entry *ranges;
            size_t num_ranges;
            /* DMA_LOGGING_REPORT (GET): the range and, in the reply, the bitmap */
            uint64_t iova, length;
            const uint8_t *bitmap;
            size_t bitmap_len;
            bool has_data; /* false: the 8-byte form with no feature data */
        } feature;
    };
} vfio_user_msg;

/** vfio_user_msg_is_reply - true when @hdr's type is REPLY. */
static inline bool vfio_user_msg_is_reply(const vfio_user_header *hdr)
{
    return (hdr->flags & VFIO_USER_F_TYPE_MASK) == VFIO_USER_F_TYPE_REPLY;
}

/**
 * vfio_user_header_decode - reads the 16-byte header at @buf.
 *
 * Returns 0; -EBADMSG when @len < 16, msg_size < 16, or the type is
 * neither command nor reply.
 */
VFIO_USER_API int vfio_user_header_decode(const void *buf, size_t len, vfio_user_header *out);

/** vfio_user_header_encode - writes @h as 16 little-endian bytes at @buf. */
VFIO_USER_API void vfio_user_header_encode(const vfio_user_header *h, void *buf);

/**
 * vfio_user_msg_size - the encoded size of @msg in @d, header included.
 *
 * Returns 0 and stores it in @size; -ENOTSUP when @msg->op has no command
 * in @d or the message shape is not allowed there (a table of several
 * regions outside 2021, a bitmap in a 2021 DMA_MAP); -EINVAL for an
 * inconsistent message (a data pointer missing for a nonzero length, a
 * bitmap flag with a zero pgsize, unmap-all combined with a bitmap or
 * with a nonzero range); -EMSGSIZE when it would exceed UINT32_MAX.
 */
VFIO_USER_API int vfio_user_msg_size(vfio_user_dialect d, const vfio_user_msg *msg, size_t *size);

/**
 * vfio_user_msg_encode - encodes @msg for @d into @buf.
 * @len: receives the number of bytes written (the message size).
 *
 * The file descriptors the message carries are not written (see
 * vfio_user_msg_fds()). Returns 0, any error of vfio_user_msg_size(), or
 * -ENOSPC when @buflen is too small (@buf is then unspecified).
 */
VFIO_USER_API int vfio_user_msg_encode(vfio_user_dialect d, const vfio_user_msg *msg, void *buf,
                                       size_t buflen, size_t *len);

/**
 * vfio_user_msg_fds - the file descriptors @msg must carry as SCM_RIGHTS,
 * in order: one per mappable DMA_MAP entry (fd >= 0). Copies at most
 * @max into @fds. Returns the number the message carries (which may
 * exceed @max). The fds stay owned by the caller.
 */
VFIO_USER_API size_t vfio_user_msg_fds(const vfio_user_msg *msg, int *fds, size_t max);

/**
 * vfio_user_msg_decode - decodes one complete message of @len bytes.
 * @fds, @nfds: the fds received with it (never taken over, never closed).
 * @entries, @max_entries: storage for DMA_MAP / DMA_UNMAP entries, the
 *   bitmaps of a 2021 DMA_UNMAP reply, and DMA_LOGGING_START ranges.
 *   vfio_user_msg_max_entries() gives a count that always suffices.
 *
 * Every length, count and offset is checked against @len before use;
 * pointers in @out point into @buf. Returns 0; -EBADMSG for a malformed
 * message (msg_size != @len, a body too short or too long for its
 * counts, a bitmap running past the end, a missing NUL after the JSON);
 * -ENOTSUP for a command @d does not define; -EPROTO when the number of
 * fds does not match what the message may carry; -ENOSPC when
 * @max_entries is too small.
 */
VFIO_USER_API int vfio_user_msg_decode(vfio_user_dialect d, const void *buf, size_t len,
                                       const int *fds, size_t nfds, vfio_user_msg *out,
                                       vfio_user_dma_entry *entries, size_t max_entries);

/**
 * vfio_user_msg_max_entries - an entries capacity that suffices for
 * decoding any message of @len bytes.
 */
VFIO_USER_API size_t vfio_user_msg_max_entries(size_t len);

/**
 * vfio_user_reply_check - checks a decoded reply against the encoded
 * request it answers (@req, @req_len bytes, as vfio_user_msg_encode()
 * wrote it): same operation, and a body whose shape follows from the
 * request (DMA_MAP: empty; DMA_UNMAP: one bitmap of the requested pgsize
 * and size per entry that asked for one; REGION_READ: at most the count
 * asked; DIRTY_PAGES / DMA_LOGGING_REPORT: the requested bitmap size;
 * ...). An error reply passes when it has no body.
 *
 * Returns 0, or -EBADMSG when the reply does not fit the request.
 */
VFIO_USER_API int vfio_user_reply_check(vfio_user_dialect d, const void *req, size_t req_len,
                                        const vfio_user_msg *reply);

/**
 * vfio_user_bitmap_bytes - the bitmap size, in bytes, that covers @size
 * bytes of IOVA at @pgsize per bit, rounded up to whole 64-bit words (as
 * real servers demand). Returns 0 and stores it; -EINVAL when @pgsize is
 * not a power of two or @size is 0; -EOVERFLOW.
 */
VFIO_USER_API int vfio_user_bitmap_bytes(uint64_t size, uint64_t pgsize, uint64_t *bytes);

/* ------------------------------------------------------------------ */
/* VERSION capabilities (JSON, read and written with json-glib)        */
/* ------------------------------------------------------------------ */

/** Protocol version this library speaks. */
#define VFIO_USER_MAJOR 0
#define VFIO_USER_MINOR 1

/* Spec defaults for absent capabilities. */
#define VFIO_USER_DEFAULT_MAX_MSG_FDS 1u
#define VFIO_USER_DEFAULT_MAX_MSG_SIZE 4096u
#define VFIO_USER_DEFAULT_MAX_DATA_XFER_SIZE 1048576u

/**
 * vfio_user_caps - the capabilities of one side, host order.
 *
 * @max_msg_fds: fds the sender can receive in one message.
 * @max_msg_size: largest message (header included) the sender can
 *   receive; 0 when not stated.
 * @max_data_xfer_size: largest REGION/DMA read or write count; 0 when not
 *   stated.
 * @max_dma_maps: largest number of DMA regions; 0 when not stated.
 * @migration: a "migration" object was present; @pgsize is its page
 *   size and @pgsizes its bitmask of supported page sizes (0 when absent).
 * @twin_socket: "twin_socket.supported"; @twin_socket_fd_index its
 *   fd_index, or -1 when absent.
 * @unmap_partial: "unmap_partial": true - the server removes a portion of
 *   a DMA region on request (2021 allows it).
 */
typedef struct vfio_user_caps {
    uint32_t max_msg_fds;
    uint64_t max_msg_size;
    uint64_t max_data_xfer_size;
    uint64_t max_dma_maps;
    bool migration;
    uint64_t pgsize;
    uint64_t pgsizes;
    bool twin_socket;
    int twin_socket_fd_index;
    bool unmap_partial;
} vfio_user_caps;

/** vfio_user_caps_init - the spec's defaults: what an empty object means. */
VFIO_USER_API void vfio_user_caps_init(vfio_user_caps *caps);

/**
 * vfio_user_caps_to_json - @caps as the VERSION JSON object
 * {"capabilities": {...}}: fields at their default or 0 are left out.
 * Returns a NUL-terminated string the caller frees with g_free().
 */
VFIO_USER_API char *vfio_user_caps_to_json(const vfio_user_caps *caps);

/**
 * vfio_user_caps_from_json - parses VERSION data of @len bytes that must
 * end with its NUL (as on the wire). Unknown members are ignored; a
 * member of the wrong type or out of range is an error.
 *
 * Returns true and fills @caps (starting from the defaults), or false
 * with @error set (G_IO_ERROR_INVALID_DATA) for a missing NUL, malformed
 * JSON, a non-object root or "capabilities", or a bad member.
 */
VFIO_USER_API bool vfio_user_caps_from_json(const char *json, size_t len, vfio_user_caps *caps,
                                            GError **error);

/**
 * vfio_user_version_check - checks a decoded VERSION reply against what
 * the client proposed and computes the effective limits.
 * @offered: the client's capabilities.
 * @reply: the decoded VERSION reply.
 * @server: receives the server's capabilities as parsed.
 *
 * Fails (G_IO_ERROR_NOT_SUPPORTED) when the major version differs or the
 * minor is above the one proposed, or when the server answered a
 * migration pgsize above the one offered (the smaller of the two is the
 * one used); (G_IO_ERROR_INVALID_DATA)
 * for bad JSON (see vfio_user_caps_from_json()), an error reply, or
 * twin_socket supported without an fd_index.
 */
VFIO_USER_API bool vfio_user_version_check(const vfio_user_caps *offered,
                                           const vfio_user_msg *reply, vfio_user_caps *server,
                                           GError **error);

/* ------------------------------------------------------------------ */
/* Client                                                              */
/* ------------------------------------------------------------------ */

typedef struct vfio_user_client vfio_user_client;

/**
 * vfio_user_client_ops - how the client serves requests from the server.
 * @dma_rw: DMA_READ (@write false: fill @buf) or DMA_WRITE (@write true:
 *   store @buf) of @len bytes at @iova of the device's address space.
 *   Returns 0 or a negative errno, which is sent back as the error of the
 *   server's request. NULL: every DMA request fails with EFAULT.
 * @interrupt: VM_INTERRUPT (2021) for @sub_index (may be NULL).
 * Both run on the thread calling into the client, also while it waits
 * for a reply; they must not call back into the client.
 */
typedef struct vfio_user_client_ops {
    int (*dma_rw)(void *opaque, uint64_t iova, void *buf, uint64_t len, bool write);
    void (*interrupt)(void *opaque, uint32_t sub_index);
} vfio_user_client_ops;

/**
 * vfio_user_client_config - client settings.
 * @dialect: the wire dialect.
 * @window: requests in flight at most (1 .. 4096; 0 means 64).
 * @timeout_ms: how long the socket may stay silent while the client waits
 *   for it (to send, or for a reply); 0 means 5000, negative means
 *   forever. A timeout ends the connection: a late reply could no longer
 *   be told from a reply to a later request.
 * @caps: what the client offers in VERSION (max_msg_fds, max_msg_size it
 *   can receive, migration pgsize...). Zero-initialised fields get
 *   defaults (max_msg_fds 8, max_msg_size 1 MiB + 4 KiB).
 */
typedef struct vfio_user_client_config {
    vfio_user_dialect dialect;
    unsigned window;
    int timeout_ms;
    vfio_user_caps caps;
} vfio_user_client_config;

/** vfio_user_client_config_init - defaults for @dialect. */
VFIO_USER_API void vfio_user_client_config_init(vfio_user_client_config *cfg,
                                                vfio_user_dialect dialect);

/** vfio_user_client_stats - counters since the client was created. */
typedef struct vfio_user_client_stats {
    uint64_t messages_sent;    /* commands and replies to server requests */
    uint64_t replies_received; /* replies to our commands */
    uint64_t server_requests;  /* DMA_READ / DMA_WRITE / VM_INTERRUPT served */
    uint64_t waits;            /* times the client blocked for replies */
    uint64_t bytes_sent;
    uint64_t bytes_received;
    uint64_t fds_sent;
} vfio_user_client_stats;

/**
 * vfio_user_client_new - a client on the connected AF_UNIX stream socket
 * @fd, which it takes over on success (ownership stays with the caller
 * on failure). It then performs VERSION negotiation.
 * @ops, @opaque: server-request handlers (copied; @ops may be NULL).
 *
 * Returns the client, or NULL with @error set: G_IO_ERROR_INVALID_ARGUMENT
 * for a bad @cfg; negotiation errors as vfio_user_version_check();
 * G_IO_ERROR_CONNECTION_CLOSED / G_IO_ERROR_TIMED_OUT / G_IO_ERROR_FAILED
 * for transport failures.
 */
VFIO_USER_API vfio_user_client *vfio_user_client_new(int fd, const vfio_user_client_config *cfg,
                                                     const vfio_user_client_ops *ops, void *opaque,
                                                     GError **error);

/**
 * vfio_user_client_connect - connects to the AF_UNIX socket at @path and
 * calls vfio_user_client_new(). Errors as vfio_user_client_new(), plus
 * the connect() errno as a G_IO_ERROR.
 */
VFIO_USER_API vfio_user_client *vfio_user_client_connect(const char *path,
                                                         const vfio_user_client_config *cfg,
                                                         const vfio_user_client_ops *ops,
                                                         void *opaque, GError **error);

/**
 * vfio_user_client_free - closes the socket; requests still in flight
 * complete with -ECONNABORTED. NULL is allowed.
 */
VFIO_USER_API void vfio_user_client_free(vfio_user_client *c);

/** vfio_user_client_dialect - the dialect in use. */
VFIO_USER_API vfio_user_dialect vfio_user_client_dialect(const vfio_user_client *c);

/**
 * vfio_user_client_server_caps - the server's capabilities from VERSION.
 * The struct belongs to @c and lives as long as it.
 */
VFIO_USER_API const vfio_user_caps *vfio_user_client_server_caps(const vfio_user_client *c);

/**
 * vfio_user_client_max_msg_size - the largest message the client sends
 * (the server's max_msg_size, else max_data_xfer_size + 32, else 4096).
 */
VFIO_USER_API size_t vfio_user_client_max_msg_size(const vfio_user_client *c);

/**
 * vfio_user_client_connected - false once the connection is gone
 * (peer closed, reset, timed out, or broke the protocol).
 */
VFIO_USER_API bool vfio_user_client_connected(const vfio_user_client *c);

/**
 * vfio_user_client_last_error - the negative errno that ended the
 * connection (-ECONNRESET when the peer closed or reset it, -ETIMEDOUT,
 * -EPROTO, -EBADMSG ...), 0 while connected.
 */
VFIO_USER_API int vfio_user_client_last_error(const vfio_user_client *c);

/** vfio_user_client_stats_get - copies the counters into @out. */
VFIO_USER_API void vfio_user_client_stats_get(const vfio_user_client *c,
                                              vfio_user_client_stats *out);

/**
 * vfio_user_completion_fn - called once per submitted request with its
 * result: 0, the server's error as a negative errno (-EIO when it set the
 * error flag without an errno), or a transport error (-ECONNRESET,
 * -ETIMEDOUT, -EBADMSG for a reply that does not fit the request,
 * -ECONNABORTED when the client is freed). @reply is the decoded reply
 * (NULL on transport errors); it and every pointer in it are valid only
 * during the call. Must not call into the client.
 */
typedef void (*vfio_user_completion_fn)(void *opaque, int result, const vfio_user_msg *reply);

/* Submit flags. */
#define VFIO_USER_SUBMIT_NO_REPLY 0x1u /* ask for no reply; @cb is never called */

/**
 * vfio_user_client_submit - encodes @msg (its hdr.msg_id is assigned by
 * the client) and sends it with the fds it carries, without waiting for
 * the reply. Blocks only when @window requests are already in flight,
 * until the oldest completes (serving server requests meanwhile).
 * @cb (may be NULL) is called from a later submit, wait or dispatch.
 *
 * Small messages without fds are queued and written together at the next
 * wait, dispatch or vfio_user_client_flush(), or once 64 KiB are queued:
 * a batch costs one write, not one per message. A message with fds, or
 * above 16 KiB, flushes the queue and goes out at once.
 *
 * Returns 0; -EINVAL / -ENOTSUP from the codec; -EMSGSIZE when the
 * message exceeds the server's max_msg_size or carries more fds than its
 * max_msg_fds; -EPIPE when the connection is already gone; -ECONNRESET /
 * -ETIMEDOUT when it ends during the send; -EDEADLK when called from a
 * completion or ops callback. @cb is not called on failure.
 */
VFIO_USER_API int vfio_user_client_submit(vfio_user_client *c, const vfio_user_msg *msg,
                                          unsigned flags, vfio_user_completion_fn cb, void *opaque);

/**
 * vfio_user_client_wait_all - waits until every submitted request has
 * completed, serving server requests meanwhile. Counts one wait when it
 * has to block. Returns 0 (individual results went to the callbacks),
 * the negative errno that ended the connection, or -EDEADLK when called
 * from a callback.
 */
VFIO_USER_API int vfio_user_client_wait_all(vfio_user_client *c);

/**
 * vfio_user_client_flush - writes every queued message now (for callers
 * that submit and then wait on the socket themselves, e.g. no-reply
 * commands). Returns 0 or the negative errno that ended the connection.
 */
VFIO_USER_API int vfio_user_client_flush(vfio_user_client *c);

/** vfio_user_client_in_flight - requests submitted and not yet completed. */
VFIO_USER_API unsigned vfio_user_client_in_flight(const vfio_user_client *c);

/**
 * vfio_user_client_fd - the socket, for an event loop: call
 * vfio_user_client_flush() after submitting, and
 * vfio_user_client_dispatch() when the socket is readable.
 */
VFIO_USER_API int vfio_user_client_fd(const vfio_user_client *c);

/**
 * vfio_user_client_dispatch - reads whatever is available without
 * blocking, serves server requests and completes replies. Returns 0, or
 * the negative errno that ended the connection.
 */
VFIO_USER_API int vfio_user_client_dispatch(vfio_user_client *c);

/*
 * Synchronous commands. Each sends its message(s), waits once and
 * returns 0, the server's error as a negative errno, or a transport /
 * validation error as vfio_user_client_submit() and the completion
 * callback describe.
 */

/**
 * vfio_user_client_dma_map - maps @n regions (iova, size, offset, prot,
 * fd: -1 for a region the server reaches by DMA_READ / DMA_WRITE): as
 * tables in 2021 (each within the server's max_msg_size and carrying at
 * most max_msg_fds fds), one message per region otherwise, all pipelined
 * and waited once. The fds stay the caller's.
 *
 * Returns 0 or the first failure: the server's error (a 2021 table may
 * have been applied in part, as the spec allows), -EINVAL for @n == 0,
 * -EMSGSIZE when the server accepts no fds but a region has one, or a
 * transport error. Messages after a failed one still ran.
 */
VFIO_USER_API int vfio_user_client_dma_map(vfio_user_client *c, const vfio_user_dma_entry *regions,
                                           size_t n);

/**
 * vfio_user_client_dma_unmap - unmaps @n regions (iova, size, flags). An
 * entry with GET_DIRTY_BITMAP must give bitmap_pgsize and bitmap_size;
 * @bitmaps[i] (for those entries) receives bitmap_size bytes, checked
 * against the reply's pgsize and size. @bitmaps may be NULL when no entry
 * asks for one. 2021 packs the entries into tables whose requests fit the
 * server's max_msg_size and whose replies fit the client's; elsewhere one
 * message per region. All pipelined and waited once.
 *
 * Returns 0 or the first failure: the server's error, -EINVAL (no
 * regions, a bitmap entry without its buffer or pgsize), -EMSGSIZE when
 * one region's bitmap alone cannot fit a reply (ask for a coarser pgsize;
 * nothing from that region on was sent), -EBADMSG for a reply whose
 * bitmaps do not match the request, or a transport error. Bitmaps of
 * failed messages are left untouched.
 */
VFIO_USER_API int vfio_user_client_dma_unmap(vfio_user_client *c,
                                             const vfio_user_dma_entry *regions, size_t n,
                                             uint8_t *const *bitmaps);

/** vfio_user_client_dma_unmap_all - removes every DMA region. */
VFIO_USER_API int vfio_user_client_dma_unmap_all(vfio_user_client *c);

/**
 * vfio_user_client_dirty_pages - DIRTY_PAGES START (@flags =
 * VFIO_USER_DIRTY_PAGES_FLAG_START) or STOP. -ENOTSUP in final.
 */
VFIO_USER_API int vfio_user_client_dirty_pages(vfio_user_client *c, uint32_t flags);

/**
 * vfio_user_client_dirty_pages_get - DIRTY_PAGES GET_BITMAP for [iova,
 * iova + size) at @pgsize: @bitmap receives @bitmap_size bytes.
 */
VFIO_USER_API int vfio_user_client_dirty_pages_get(vfio_user_client *c, uint64_t iova,
                                                   uint64_t size, uint64_t pgsize, uint8_t *bitmap,
                                                   uint64_t bitmap_size);

/**
 * vfio_user_client_dma_logging_start - DEVICE_FEATURE SET
 * DMA_LOGGING_START over @n ranges (iova, size) at @page_size (final
 * only, else -ENOTSUP).
 */
VFIO_USER_API int vfio_user_client_dma_logging_start(vfio_user_client *c, uint64_t page_size,
                                                     const vfio_user_dma_entry *ranges, size_t n);

/** vfio_user_client_dma_logging_stop - DEVICE_FEATURE SET DMA_LOGGING_STOP. */
VFIO_USER_API int vfio_user_client_dma_logging_stop(vfio_user_client *c);

/**
 * vfio_user_client_dma_logging_report - DEVICE_FEATURE GET
 * DMA_LOGGING_REPORT of [iova, iova + length) at @page_size: @bitmap
 * receives @bitmap_size bytes (vfio_user_bitmap_bytes() of the range).
 */
VFIO_USER_API int vfio_user_client_dma_logging_report(vfio_user_client *c, uint64_t iova,
                                                      uint64_t length, uint64_t page_size,
                                                      uint8_t *bitmap, uint64_t bitmap_size);

/** vfio_user_device_info - DEVICE_GET_INFO reply, host order. */
typedef struct vfio_user_device_info {
    uint32_t flags;
    uint32_t num_regions;
    uint32_t num_irqs;
} vfio_user_device_info;

/** vfio_user_client_device_get_info - DEVICE_GET_INFO. */
VFIO_USER_API int vfio_user_client_device_get_info(vfio_user_client *c, vfio_user_device_info *out);

/** vfio_user_region_info - DEVICE_GET_REGION_INFO reply, host order. */
typedef struct vfio_user_region_info {
    uint32_t flags;
    uint32_t index;
    uint64_t size;
    uint64_t offset;
} vfio_user_region_info;

/**
 * vfio_user_client_region_info - DEVICE_GET_REGION_INFO of @index.
 * @fd: receives the region's fd when the reply carries one (the caller
 * owns it then), else -1. May be NULL: a received fd is then closed.
 */
VFIO_USER_API int vfio_user_client_region_info(vfio_user_client *c, uint32_t index,
                                               vfio_user_region_info *out, int *fd);

/**
 * vfio_user_client_region_read - REGION_READ of @count bytes at @offset
 * of region @region into @buf. -EBADMSG when the server returns fewer
 * bytes; -EMSGSIZE when @count exceeds the server's max_data_xfer_size.
 */
VFIO_USER_API int vfio_user_client_region_read(vfio_user_client *c, uint32_t region,
                                               uint64_t offset, void *buf, uint32_t count);

/** vfio_user_client_region_write - REGION_WRITE of @count bytes of @buf. */
VFIO_USER_API int vfio_user_client_region_write(vfio_user_client *c, uint32_t region,
                                                uint64_t offset, const void *buf, uint32_t count);

/** vfio_user_client_device_reset - DEVICE_RESET. */
VFIO_USER_API int vfio_user_client_device_reset(vfio_user_client *c);

/* ------------------------------------------------------------------ */
/* DMA mapper: a mapping listener that drives one vfio-user device      */
/* ------------------------------------------------------------------ */

/**
 * vfio_user_plan - how mapping events become messages.
 * @VFIO_USER_PLAN_COALESCE: every event of a batch in as few messages as
 *   the dialect and the server allow (tables in 2021, pipelined single
 *   regions otherwise), one wait per batch; adjacent regions merged only
 *   where the server can remove a portion of a region.
 * @VFIO_USER_PLAN_QEMU: the baseline QEMU uses with VFIO: one message per
 *   power-of-two aligned chunk, each waited before the next (benchmarks).
 */
typedef enum vfio_user_plan {
    VFIO_USER_PLAN_COALESCE = 0,
    VFIO_USER_PLAN_QEMU = 1,
} vfio_user_plan;

/**
 * vfio_user_plan_parse - "coalesce" or "qemu". Returns 0 or -EINVAL.
 */
VFIO_USER_API int vfio_user_plan_parse(const char *name, vfio_user_plan *out);

/**
 * vfio_user_mapper_config - mapper settings.
 * @plan: see vfio_user_plan.
 * @isolated: map regions without file descriptors, so that the server
 *   reaches guest memory only through DMA_READ / DMA_WRITE, which the
 *   client's dma_rw handler checks (through the vIOMMU's translate()).
 *   Passing a guest-RAM fd lets the server map all of guest RAM behind
 *   that fd; an untrusted server must not get it.
 * @dirty_pgsize: page size of the bitmaps asked of the server; 0 means
 *   the guest memory map's page size.
 */
typedef struct vfio_user_mapper_config {
    vfio_user_plan plan;
    bool isolated;
    uint64_t dirty_pgsize;
} vfio_user_mapper_config;

/** vfio_user_mapper_stats - counters since the mapper was created. */
typedef struct vfio_user_mapper_stats {
    uint64_t batches;          /* batches that sent at least one message */
    uint64_t map_events;       /* map events accepted */
    uint64_t unmap_events;     /* unmap events */
    uint64_t map_failures;     /* map events refused or failed */
    uint64_t messages;         /* DMA / dirty-tracking commands sent */
    uint64_t waits;            /* times the mapper blocked for replies */
    uint64_t bytes;            /* bytes sent and received by the client */
    uint64_t regions_live;     /* DMA regions the server holds now */
    uint64_t regions_live_max; /* ... at most */
    uint64_t bitmaps;          /* dirty bitmaps collected */
    uint64_t bitmap_fallbacks; /* removed ranges marked dirty whole (no bitmap) */
    uint64_t reconnects;       /* successful reconnections */
} vfio_user_mapper_stats;

typedef struct vfio_user_mapper vfio_user_mapper;

/**
 * vfio_user_mapper_connect - a mapper driving the vfio-user device at
 * the AF_UNIX socket @path: connects, negotiates VERSION and keeps
 * @path, @client_cfg and @ops to reconnect after a disconnect.
 * @gm: the guest memory map (borrowed; must outlive the mapper): mapped
 *   guest-physical ranges are split at its regions, and the dirty pages
 *   the server reports are folded into its dirty log.
 * @ops, @opaque: the client's server-request handlers (DMA_READ /
 *   DMA_WRITE), see vfio_user_client_ops.
 *
 * Returns the mapper, or NULL with @error set as
 * vfio_user_client_connect() does (G_IO_ERROR_INVALID_ARGUMENT for a bad
 * @cfg).
 */
VFIO_USER_API vfio_user_mapper *vfio_user_mapper_connect(const char *path,
                                                         const vfio_user_client_config *client_cfg,
                                                         const vfio_user_client_ops *ops,
                                                         void *opaque, guest_mem *gm,
                                                         const vfio_user_mapper_config *cfg,
                                                         GError **error);

/**
 * vfio_user_mapper_free - closes the connection (the server then drops
 * every region). NULL is allowed.
 */
VFIO_USER_API void vfio_user_mapper_free(vfio_user_mapper *m);

/**
 * vfio_user_mapper_listener - the mapping listener to attach to the
 * endpoint of this device. Map events: ranges outside guest RAM are
 * refused with -EFAULT; MMIO mappings (MAPPING_PROT_MMIO) are kept but
 * not forwarded, since they do not name guest RAM a DMA region could
 * describe; a server refusal (its region limit) fails the map with
 * -ENOSPC, an I/O failure with -EIO, after the pieces that did map are
 * removed again. Unmap events never fail: a range that cannot be unmapped
 * with a bitmap while dirty tracking is on is marked dirty whole.
 *
 * The listener's opaque pointer is @m: free the mapper only once no
 * device model can call the listener any more (listener removed from
 * its endpoint, or the device freed).
 */
VFIO_USER_API mapping_listener vfio_user_mapper_listener(vfio_user_mapper *m);

/**
 * vfio_user_mapper_client - the current client, owned by @m (never free
 * it). A reconnect replaces it: fetch it again rather than keep it.
 */
VFIO_USER_API vfio_user_client *vfio_user_mapper_client(vfio_user_mapper *m);

/**
 * vfio_user_mapper_dirty_start - starts dirty tracking on the device
 * (DIRTY_PAGES START, or DMA_LOGGING_START in final). From then on every
 * unmapped range comes back with its bitmap. A server without migration
 * support is still tracked, conservatively: every range it unmaps, and
 * every range a sync covers, is marked dirty whole.
 * Returns 0, or the transport's negative errno.
 */
VFIO_USER_API int vfio_user_mapper_dirty_start(vfio_user_mapper *m);

/** vfio_user_mapper_dirty_stop - stops dirty tracking. Returns 0 or a negative errno. */
VFIO_USER_API int vfio_user_mapper_dirty_stop(vfio_user_mapper *m);

/**
 * vfio_user_mapper_dirty_sync - collects the bitmaps of every
 * still-mapped region into the dirty log (one migration iteration).
 * Regions whose bitmap cannot be had are marked dirty whole.
 * Returns 0, or -EINVAL when tracking is off.
 */
VFIO_USER_API int vfio_user_mapper_dirty_sync(vfio_user_mapper *m);

/** vfio_user_mapper_tracking - true while dirty tracking is on. */
VFIO_USER_API bool vfio_user_mapper_tracking(const vfio_user_mapper *m);

/**
 * vfio_user_mapper_reconnect - reconnects to the socket when the
 * connection is gone and re-establishes every mapping the device holds
 * (and dirty tracking, if on). Called by the listener at the start of
 * each batch; callable directly. Returns 0 (also when still connected),
 * or the negative errno of the failed attempt.
 */
VFIO_USER_API int vfio_user_mapper_reconnect(vfio_user_mapper *m);

/** vfio_user_mapper_stats_get - copies the counters into @out. */
VFIO_USER_API void vfio_user_mapper_stats_get(const vfio_user_mapper *m,
                                              vfio_user_mapper_stats *out);

#ifdef __cplusplus
}
#endif

#endif /* VFIO_USER_H */

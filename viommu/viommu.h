/* SPDX-License-Identifier: MIT */
/*
 * viommu.h - a virtio-iommu device model (virtio device ID 23) for a VMM
 * to embed.
 *
 * The VMM creates a device from a configuration, declares the endpoints
 * (the DMA-capable devices behind the IOMMU) and their reserved regions,
 * hands over the guest's requests (as iovec lists, or as a whole split
 * virtqueue notification) and asks translate() where an endpoint's DMA
 * lands. Every change to what an endpoint can reach is forwarded to that
 * endpoint's mapping listener (shared.h), one batch per notification.
 *
 * Conventions: functions return 0 or a negative errno unless documented
 * otherwise; ranges are inclusive; wire structs are little-endian and are
 * converted to host order only where requests are decoded. A device is
 * not thread-safe: the VMM serializes every call on one device.
 */
#ifndef VIOMMU_H
#define VIOMMU_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "shared.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(VIOMMU_BUILDING) && defined(__GNUC__)
#define VIOMMU_API __attribute__((visibility("default")))
#else
#define VIOMMU_API
#endif

/* ------------------------------------------------------------------ */
/* Wire format (virtio spec, IOMMU device)                             */
/* ------------------------------------------------------------------ */

/* Little-endian wire integers: convert with le16toh()/htole16() etc. */
typedef uint16_t viommu_le16;
typedef uint32_t viommu_le32;
typedef uint64_t viommu_le64;

#define VIRTIO_ID_IOMMU 23

/* Virtqueues */
#define VIRTIO_IOMMU_REQUEST_QUEUE 0
#define VIRTIO_IOMMU_EVENT_QUEUE 1

/* Feature bits (bit numbers) */
#define VIRTIO_IOMMU_F_INPUT_RANGE 0
#define VIRTIO_IOMMU_F_DOMAIN_RANGE 1
#define VIRTIO_IOMMU_F_MAP_UNMAP 2
#define VIRTIO_IOMMU_F_BYPASS 3
#define VIRTIO_IOMMU_F_PROBE 4
#define VIRTIO_IOMMU_F_MMIO 5
#define VIRTIO_IOMMU_F_BYPASS_CONFIG 6

/** VIOMMU_FEATURE - the feature mask of bit number @bit. */
#define VIOMMU_FEATURE(bit) (UINT64_C(1) << (bit))

/** Every device-specific feature bit this model implements. */
#define VIOMMU_FEATURES_KNOWN                                                                      \
    (VIOMMU_FEATURE(VIRTIO_IOMMU_F_INPUT_RANGE) | VIOMMU_FEATURE(VIRTIO_IOMMU_F_DOMAIN_RANGE) |    \
     VIOMMU_FEATURE(VIRTIO_IOMMU_F_MAP_UNMAP) | VIOMMU_FEATURE(VIRTIO_IOMMU_F_BYPASS) |            \
     VIOMMU_FEATURE(VIRTIO_IOMMU_F_PROBE) | VIOMMU_FEATURE(VIRTIO_IOMMU_F_MMIO) |                  \
     VIOMMU_FEATURE(VIRTIO_IOMMU_F_BYPASS_CONFIG))

/** The features offered by default (the legacy F_BYPASS is not). */
#define VIOMMU_FEATURES_DEFAULT (VIOMMU_FEATURES_KNOWN & ~VIOMMU_FEATURE(VIRTIO_IOMMU_F_BYPASS))

struct virtio_iommu_range_64 {
    viommu_le64 start;
    viommu_le64 end;
};
_Static_assert(sizeof(struct virtio_iommu_range_64) == 16, "virtio_iommu_range_64 size");

struct virtio_iommu_range_32 {
    viommu_le32 start;
    viommu_le32 end;
};
_Static_assert(sizeof(struct virtio_iommu_range_32) == 8, "virtio_iommu_range_32 size");

/* Device configuration space; only @bypass is driver-writable. */
struct virtio_iommu_config {
    viommu_le64 page_size_mask;
    struct virtio_iommu_range_64 input_range;
    struct virtio_iommu_range_32 domain_range;
    viommu_le32 probe_size;
    uint8_t bypass;
    uint8_t reserved[3];
};
_Static_assert(sizeof(struct virtio_iommu_config) == 40, "virtio_iommu_config size");
_Static_assert(offsetof(struct virtio_iommu_config, input_range) == 8, "input_range offset");
_Static_assert(offsetof(struct virtio_iommu_config, domain_range) == 24, "domain_range offset");
_Static_assert(offsetof(struct virtio_iommu_config, probe_size) == 32, "probe_size offset");
_Static_assert(offsetof(struct virtio_iommu_config, bypass) == 36, "bypass offset");
_Static_assert(offsetof(struct virtio_iommu_config, reserved) == 37, "config reserved offset");

/* Request types */
#define VIRTIO_IOMMU_T_ATTACH 1
#define VIRTIO_IOMMU_T_DETACH 2
#define VIRTIO_IOMMU_T_MAP 3
#define VIRTIO_IOMMU_T_UNMAP 4
#define VIRTIO_IOMMU_T_PROBE 5

/* Status codes */
#define VIRTIO_IOMMU_S_OK 0
#define VIRTIO_IOMMU_S_IOERR 1
#define VIRTIO_IOMMU_S_UNSUPP 2
#define VIRTIO_IOMMU_S_DEVERR 3
#define VIRTIO_IOMMU_S_INVAL 4
#define VIRTIO_IOMMU_S_RANGE 5
#define VIRTIO_IOMMU_S_NOENT 6
#define VIRTIO_IOMMU_S_FAULT 7
#define VIRTIO_IOMMU_S_NOMEM 8

struct virtio_iommu_req_head {
    uint8_t type;
    uint8_t reserved[3];
};
_Static_assert(sizeof(struct virtio_iommu_req_head) == 4, "req_head size");

struct virtio_iommu_req_tail {
    uint8_t status;
    uint8_t reserved[3];
};
_Static_assert(sizeof(struct virtio_iommu_req_tail) == 4, "req_tail size");

#define VIRTIO_IOMMU_ATTACH_F_BYPASS (1u << 0)

struct virtio_iommu_req_attach {
    struct virtio_iommu_req_head head;
    viommu_le32 domain;
    viommu_le32 endpoint;
    viommu_le32 flags;
    uint8_t reserved[4];
    struct virtio_iommu_req_tail tail;
};
_Static_assert(sizeof(struct virtio_iommu_req_attach) == 24, "req_attach size");
_Static_assert(offsetof(struct virtio_iommu_req_attach, domain) == 4, "attach domain offset");
_Static_assert(offsetof(struct virtio_iommu_req_attach, endpoint) == 8, "attach endpoint offset");
_Static_assert(offsetof(struct virtio_iommu_req_attach, flags) == 12, "attach flags offset");
_Static_assert(offsetof(struct virtio_iommu_req_attach, reserved) == 16, "attach reserved offset");
_Static_assert(offsetof(struct virtio_iommu_req_attach, tail) == 20, "attach tail offset");

struct virtio_iommu_req_detach {
    struct virtio_iommu_req_head head;
    viommu_le32 domain;
    viommu_le32 endpoint;
    uint8_t reserved[8];
    struct virtio_iommu_req_tail tail;
};
_Static_assert(sizeof(struct virtio_iommu_req_detach) == 24, "req_detach size");
_Static_assert(offsetof(struct virtio_iommu_req_detach, endpoint) == 8, "detach endpoint offset");
_Static_assert(offsetof(struct virtio_iommu_req_detach, reserved) == 12, "detach reserved offset");
_Static_assert(offsetof(struct virtio_iommu_req_detach, tail) == 20, "detach tail offset");

#define VIRTIO_IOMMU_MAP_F_READ (1u << 0)
#define VIRTIO_IOMMU_MAP_F_WRITE (1u << 1)
#define VIRTIO_IOMMU_MAP_F_MMIO (1u << 2)
#define VIRTIO_IOMMU_MAP_F_MASK                                                                    \
    (VIRTIO_IOMMU_MAP_F_READ | VIRTIO_IOMMU_MAP_F_WRITE | VIRTIO_IOMMU_MAP_F_MMIO)

struct virtio_iommu_req_map {
    struct virtio_iommu_req_head head;
    viommu_le32 domain;
    viommu_le64 virt_start;
    viommu_le64 virt_end;
    viommu_le64 phys_start;
    viommu_le32 flags;
    struct virtio_iommu_req_tail tail;
};
_Static_assert(sizeof(struct virtio_iommu_req_map) == 40, "req_map size");
_Static_assert(offsetof(struct virtio_iommu_req_map, domain) == 4, "map domain offset");
_Static_assert(offsetof(struct virtio_iommu_req_map, virt_start) == 8, "map virt_start offset");
_Static_assert(offsetof(struct virtio_iommu_req_map, virt_end) == 16, "map virt_end offset");
_Static_assert(offsetof(struct virtio_iommu_req_map, phys_start) == 24, "map phys_start offset");
_Static_assert(offsetof(struct virtio_iommu_req_map, flags) == 32, "map flags offset");
_Static_assert(offsetof(struct virtio_iommu_req_map, tail) == 36, "map tail offset");

struct virtio_iommu_req_unmap {
    struct virtio_iommu_req_head head;
    viommu_le32 domain;
    viommu_le64 virt_start;
    viommu_le64 virt_end;
    uint8_t reserved[4];
    struct virtio_iommu_req_tail tail;
};
_Static_assert(sizeof(struct virtio_iommu_req_unmap) == 32, "req_unmap size");
_Static_assert(offsetof(struct virtio_iommu_req_unmap, virt_start) == 8, "unmap virt_start offset");
_Static_assert(offsetof(struct virtio_iommu_req_unmap, virt_end) == 16, "unmap virt_end offset");
_Static_assert(offsetof(struct virtio_iommu_req_unmap, reserved) == 24, "unmap reserved offset");
_Static_assert(offsetof(struct virtio_iommu_req_unmap, tail) == 28, "unmap tail offset");

/*
 * PROBE: the device-readable part is this struct (72 bytes); the
 * device-writable part is probe_size bytes of properties followed by a
 * struct virtio_iommu_req_tail.
 */
struct virtio_iommu_req_probe {
    struct virtio_iommu_req_head head;
    viommu_le32 endpoint;
    uint8_t reserved[64];
};
_Static_assert(sizeof(struct virtio_iommu_req_probe) == 72, "req_probe size");
_Static_assert(offsetof(struct virtio_iommu_req_probe, endpoint) == 4, "probe endpoint offset");
_Static_assert(offsetof(struct virtio_iommu_req_probe, reserved) == 8, "probe reserved offset");

#define VIRTIO_IOMMU_PROBE_T_NONE 0
#define VIRTIO_IOMMU_PROBE_T_RESV_MEM 1
#define VIRTIO_IOMMU_PROBE_T_MASK 0xfffu

/* @type: bits 0-11 the property type, bits 12-15 reserved. */
struct virtio_iommu_probe_property {
    viommu_le16 type;
    viommu_le16 length;
};
_Static_assert(sizeof(struct virtio_iommu_probe_property) == 4, "probe_property size");

#define VIRTIO_IOMMU_RESV_MEM_T_RESERVED 0
#define VIRTIO_IOMMU_RESV_MEM_T_MSI 1

struct virtio_iommu_probe_resv_mem {
    struct virtio_iommu_probe_property head;
    uint8_t subtype;
    uint8_t reserved[3];
    viommu_le64 start;
    viommu_le64 end;
};
_Static_assert(sizeof(struct virtio_iommu_probe_resv_mem) == 24, "probe_resv_mem size");
_Static_assert(offsetof(struct virtio_iommu_probe_resv_mem, subtype) == 4, "resv subtype offset");
_Static_assert(offsetof(struct virtio_iommu_probe_resv_mem, start) == 8, "resv start offset");
_Static_assert(offsetof(struct virtio_iommu_probe_resv_mem, end) == 16, "resv end offset");

#define VIRTIO_IOMMU_FAULT_R_UNKNOWN 0
#define VIRTIO_IOMMU_FAULT_R_DOMAIN 1
#define VIRTIO_IOMMU_FAULT_R_MAPPING 2

#define VIRTIO_IOMMU_FAULT_F_READ (1u << 0)
#define VIRTIO_IOMMU_FAULT_F_WRITE (1u << 1)
#define VIRTIO_IOMMU_FAULT_F_ADDRESS (1u << 8)

struct virtio_iommu_fault {
    uint8_t reason;
    uint8_t reserved[3];
    viommu_le32 flags;
    viommu_le32 endpoint;
    viommu_le32 reserved1;
    viommu_le64 address;
};
_Static_assert(sizeof(struct virtio_iommu_fault) == 24, "fault size");
_Static_assert(offsetof(struct virtio_iommu_fault, flags) == 4, "fault flags offset");
_Static_assert(offsetof(struct virtio_iommu_fault, endpoint) == 8, "fault endpoint offset");
_Static_assert(offsetof(struct virtio_iommu_fault, reserved1) == 12, "fault reserved1 offset");
_Static_assert(offsetof(struct virtio_iommu_fault, address) == 16, "fault address offset");

/* ------------------------------------------------------------------ */
/* Device configuration and lifecycle                                  */
/* ------------------------------------------------------------------ */

/**
 * viommu_config - what the VMM decides about a device. Fill it with
 * viommu_config_init() and change what differs.
 *
 * @features: device-specific feature bits offered (VIOMMU_FEATURE()
 *   masks); default VIOMMU_FEATURES_DEFAULT. Offering both F_BYPASS and
 *   F_BYPASS_CONFIG is refused (the spec says a device should not).
 * @page_size_mask: default 0xfffffffffffff000 (4 KiB granule); its
 *   lowest set bit is the mapping granule (bit 0 = 1-byte granule).
 * @input_range: IOVAs the device translates; default [0, UINT64_MAX].
 * @domain_first, @domain_last: domain IDs ATTACH accepts when
 *   F_DOMAIN_RANGE is offered; default [0, UINT32_MAX].
 * @probe_size: bytes of PROBE properties; default 0x200. Bounds the
 *   reserved regions an endpoint can have (24 bytes each).
 * @bypass: the initial (and system-reset) value of config.bypass;
 *   default true.
 * @max_endpoints: default 4096.
 * @max_domains: live domains at once; default 4096.
 * @max_mappings_per_domain: default 4194304 (1 << 22).
 * @max_event_buffers: event buffers viommu_event_post() holds; default 64.
 */
typedef struct viommu_config {
    uint64_t features;
    uint64_t page_size_mask;
    u64_range input_range;
    uint32_t domain_first;
    uint32_t domain_last;
    uint32_t probe_size;
    bool bypass;
    uint32_t max_endpoints;
    uint32_t max_domains;
    uint64_t max_mappings_per_domain;
    uint32_t max_event_buffers;
} viommu_config;

/** viommu_config_init - fills @cfg with the defaults listed above. */
VIOMMU_API void viommu_config_init(viommu_config *cfg);

/** viommu - one virtio-iommu device. */
typedef struct viommu viommu;

/**
 * viommu_new - a device configured by @cfg (copied), with no endpoints,
 * no domains and no negotiated features.
 *
 * Returns the device, owned by the caller (free with viommu_free()), or
 * NULL with @error set (G_IO_ERROR_INVALID_ARGUMENT) when @cfg is
 * inconsistent: page_size_mask 0, an empty or inverted input or domain
 * range, unknown feature bits, F_BYPASS together with F_BYPASS_CONFIG,
 * F_MAP_UNMAP not offered, a probe_size below 4 or above 1 MiB, or a
 * zero limit.
 */
VIOMMU_API viommu *viommu_new(const viommu_config *cfg, GError **error);

/**
 * viommu_free - frees @v and every domain, mapping and endpoint. No
 * listener is called. NULL is allowed.
 */
VIOMMU_API void viommu_free(viommu *v);

/** viommu_get_config - copies the configuration @v was created with into @cfg (the caller's). */
VIOMMU_API void viommu_get_config(const viommu *v, viommu_config *cfg);

/* ------------------------------------------------------------------ */
/* Features, configuration space, reset                                */
/* ------------------------------------------------------------------ */

/** viommu_device_features - the device-specific feature bits offered. */
VIOMMU_API uint64_t viommu_device_features(const viommu *v);

/**
 * viommu_set_driver_features - records the features the driver
 * accepted (device-specific bits; transport bits such as VERSION_1 are
 * the VMM's business and must be masked out by it). Behaviour follows
 * the negotiated set from then on: MAP/UNMAP need F_MAP_UNMAP (else
 * S_UNSUPP), PROBE needs F_PROBE (else treated as an unknown type),
 * MAP_F_MMIO needs F_MMIO, ATTACH_F_BYPASS and writes of config.bypass
 * need F_BYPASS_CONFIG. Until this is called nothing is negotiated.
 *
 * Returns 0, or -EINVAL when @features holds a bit the device did not
 * offer (nothing changes).
 */
VIOMMU_API int viommu_set_driver_features(viommu *v, uint64_t features);

/** viommu_driver_features - the negotiated features. */
VIOMMU_API uint64_t viommu_driver_features(const viommu *v);

/**
 * viommu_config_read - copies @len bytes of the configuration space
 * (struct virtio_iommu_config, little-endian) from @offset into @buf.
 * Any offset and width inside the 40 bytes is allowed.
 *
 * Returns 0, or -EINVAL when [offset, offset + len) leaves the space
 * or @buf is NULL with @len > 0.
 */
VIOMMU_API int viommu_config_read(const viommu *v, uint32_t offset, void *buf, size_t len);

/**
 * viommu_config_write - the driver writes @len bytes at @offset. Only
 * the byte @bypass is writable, and only once F_BYPASS_CONFIG is
 * negotiated; bit 0 of the written value is kept (the device never
 * presents anything but 0 or 1).
 *
 * Returns 0; -EINVAL when the range leaves the space; -EPERM when it
 * covers another field or F_BYPASS_CONFIG is not negotiated (nothing
 * changes).
 */
VIOMMU_API int viommu_config_write(viommu *v, uint32_t offset, const void *buf, size_t len);

/**
 * viommu_reset - device reset: every endpoint is detached (its listener
 * gets the unmaps, in one batch), every domain and mapping is gone,
 * negotiated features are cleared and posted event buffers are dropped
 * without completion. Endpoints, their reserved regions and listeners,
 * the configuration, counters and config.bypass are kept (the spec says
 * bypass should not change on device reset).
 */
VIOMMU_API void viommu_reset(viommu *v);

/**
 * viommu_system_reset - viommu_reset() plus config.bypass back to its
 * configured initial value.
 */
VIOMMU_API void viommu_system_reset(viommu *v);

/* ------------------------------------------------------------------ */
/* Endpoints                                                           */
/* ------------------------------------------------------------------ */

/**
 * viommu_endpoint_add - declares endpoint @endpoint (unattached).
 *
 * Returns 0; -EEXIST when it exists; -ENOSPC when max_endpoints are
 * declared; -ENOMEM.
 */
VIOMMU_API int viommu_endpoint_add(viommu *v, uint32_t endpoint);

/** viommu_endpoint_exists - true when @endpoint is declared. */
VIOMMU_API bool viommu_endpoint_exists(const viommu *v, uint32_t endpoint);

/**
 * viommu_endpoint_add_resv - gives @endpoint a reserved IOVA region
 * [start, end] of @subtype VIRTIO_IOMMU_RESV_MEM_T_RESERVED or _MSI. It
 * is reported by PROBE, MAP requests overlapping it are refused
 * (S_RANGE), and an ATTACH to a domain with a mapping overlapping it is
 * refused (S_UNSUPP).
 *
 * Returns 0; -ENOENT when @endpoint is unknown; -EINVAL when start >
 * end, @subtype is unknown, the region overlaps another of the
 * endpoint, or it is a second MSI region; -ENOSPC when the PROBE
 * properties would no longer fit in probe_size; -EBUSY when the
 * endpoint is attached; -ENOMEM.
 */
VIOMMU_API int viommu_endpoint_add_resv(viommu *v, uint32_t endpoint, uint64_t start, uint64_t end,
                                        uint8_t subtype);

/**
 * viommu_endpoint_set_listener - @listener (copied; NULL or a NULL ops
 * removes it) receives the mapping events of @endpoint from now on. The
 * listener's opaque pointer stays the caller's. Listener callbacks must
 * not call back into the device.
 *
 * Returns 0; -ENOENT when @endpoint is unknown; -EBUSY when it is
 * attached to a domain (set listeners before the driver attaches).
 */
VIOMMU_API int viommu_endpoint_set_listener(viommu *v, uint32_t endpoint,
                                            const mapping_listener *listener);

/**
 * viommu_endpoint_domain - the domain @endpoint is attached to.
 *
 * Returns 0 and fills @domain; -ENOENT when @endpoint is unknown;
 * -ENODEV when it is not attached.
 */
VIOMMU_API int viommu_endpoint_domain(const viommu *v, uint32_t endpoint, uint32_t *domain);

/* ------------------------------------------------------------------ */
/* Requests                                                            */
/* ------------------------------------------------------------------ */

/** The request's buffers were returned without being written. */
#define VIOMMU_STATUS_NONE (-1)

/**
 * viommu_request - one request as the VMM popped it: the driver's
 * device-readable buffers (head and body) and device-writable buffers
 * (tail; PROBE: properties then tail). The iovecs and the memory they
 * point to stay the caller's and must stay valid during the call.
 *
 * @used_len: out: bytes written to the writable buffers (the used
 *   ring's length); 0 when nothing was written.
 * @status: out: the VIRTIO_IOMMU_S_* written, or VIOMMU_STATUS_NONE.
 * @type: out: the request type read from the head, 0 when there was
 *   no head.
 */
typedef struct viommu_request {
    const struct iovec *readable;
    size_t readable_count;
    const struct iovec *writable;
    size_t writable_count;
    size_t used_len;
    int status;
    uint8_t type;
} viommu_request;

/**
 * viommu_process_batch - runs @n requests of one queue notification in
 * order, as one batch for the listeners: batch_begin before the first
 * event of each listener, batch_end on each once every request ran. A
 * map a listener fails at batch_end is rolled back (its request then
 * answers S_NOMEM, or S_DEVERR for an I/O failure), which is why
 * statuses are only final when this returns: the tails are written
 * last.
 *
 * Buffer rules: no head (fewer than 4 readable bytes) -> S_DEVERR; no
 * room for the tail (fewer than 4 writable bytes) -> nothing written,
 * VIOMMU_STATUS_NONE; unknown type (or PROBE without F_PROBE) ->
 * nothing written, used length 0; a body shorter than its type's ->
 * S_INVAL; extra readable bytes are ignored. The tail is written at
 * the start of the writable buffers (PROBE: after probe_size bytes of
 * properties); a PROBE whose writable part is shorter than
 * probe_size + 4 gets S_INVAL in its last 4 bytes and no property.
 *
 * Returns 0, or -EINVAL when @reqs is NULL with @n > 0.
 */
VIOMMU_API int viommu_process_batch(viommu *v, viommu_request *reqs, size_t n);

/**
 * viommu_handle_request - viommu_process_batch() of one request.
 *
 * Returns 0, or -EINVAL when @req is NULL.
 */
VIOMMU_API int viommu_handle_request(viommu *v, viommu_request *req);

/**
 * viommu_status_name - the spec's name of a VIRTIO_IOMMU_S_* status
 * without prefix ("OK", "IOERR", "UNSUPP", "DEVERR", "INVAL", "RANGE",
 * "NOENT", "FAULT", "NOMEM"), "NONE" for VIOMMU_STATUS_NONE, or NULL
 * for any other value.
 */
VIOMMU_API const char *viommu_status_name(int status);

/**
 * viommu_type_name - "ATTACH", "DETACH", "MAP", "UNMAP" or "PROBE" for
 * a VIRTIO_IOMMU_T_* value, NULL for any other.
 */
VIOMMU_API const char *viommu_type_name(int type);

/* ------------------------------------------------------------------ */
/* Domains and mappings (inspection)                                   */
/* ------------------------------------------------------------------ */

/** viommu_mapping - one mapping of a domain, host byte order. */
typedef struct viommu_mapping {
    uint64_t virt_start;
    uint64_t virt_end;
    uint64_t phys_start;
    uint32_t flags; /* VIRTIO_IOMMU_MAP_F_* */
} viommu_mapping;

/**
 * viommu_domain_info - what @domain is.
 * @bypass, @mappings, @endpoints: filled when not NULL.
 *
 * Returns 0, or -ENOENT when the domain does not exist.
 */
VIOMMU_API int viommu_domain_info(const viommu *v, uint32_t domain, bool *bypass,
                                  uint64_t *mappings, uint32_t *endpoints);

/**
 * viommu_domain_foreach_mapping - calls @fn for each mapping of
 * @domain overlapping [first, last], in address order, until @fn
 * returns non-zero. @fn must not change the device.
 *
 * Returns 0, @fn's non-zero value, or -ENOENT for an unknown domain.
 */
VIOMMU_API int viommu_domain_foreach_mapping(const viommu *v, uint32_t domain, uint64_t first,
                                             uint64_t last,
                                             int (*fn)(void *opaque, const viommu_mapping *m),
                                             void *opaque);

/* ------------------------------------------------------------------ */
/* Translation and faults                                              */
/* ------------------------------------------------------------------ */

/** Access kinds for viommu_translate() (the mapping protection bits). */
#define VIOMMU_ACCESS_READ MAPPING_PROT_READ
#define VIOMMU_ACCESS_WRITE MAPPING_PROT_WRITE

/**
 * viommu_translation - where an IOVA lands.
 * @gpa: guest-physical address of the IOVA asked for.
 * @iova_last: the last IOVA (inclusive) for which gpa + offset holds
 *   with the same permissions (end of the mapping, or UINT64_MAX in
 *   bypass).
 * @prot: MAPPING_PROT_* the range allows (READ|WRITE in bypass).
 * @bypass: true when translated by the identity function.
 */
typedef struct viommu_translation {
    uint64_t gpa;
    uint64_t iova_last;
    uint32_t prot;
    bool bypass;
} viommu_translation;

/**
 * viommu_translate - translates an access by @endpoint to @iova.
 * @access: VIOMMU_ACCESS_READ and/or VIOMMU_ACCESS_WRITE (not 0).
 *
 * A refused access raises a fault (reason DOMAIN for an unattached
 * endpoint not in bypass, MAPPING for an unmapped IOVA or missing
 * permission; flags READ/WRITE per @access, ADDRESS with @iova) written
 * to a buffer the driver posted on the event queue, or counted as
 * dropped when none is available.
 *
 * Returns 0 and fills @out; -EFAULT when refused; -ENOENT when
 * @endpoint is unknown (no fault: there is no endpoint to name);
 * -EINVAL when @access is 0 or has other bits, or @out is NULL.
 */
VIOMMU_API int viommu_translate(viommu *v, uint32_t endpoint, uint64_t iova, uint32_t access,
                                viommu_translation *out);

/**
 * viommu_event_complete_fn - a buffer posted with viommu_event_post()
 * was filled with a fault report of @used_len bytes and is returned;
 * the VMM puts @cookie's descriptor on the used ring and notifies.
 */
typedef void (*viommu_event_complete_fn)(void *opaque, uint64_t cookie, size_t used_len);

/**
 * viommu_set_event_handler - sets the completion callback of posted
 * event buffers (NULL removes it; buffers are then still filled).
 */
VIOMMU_API void viommu_set_event_handler(viommu *v, viommu_event_complete_fn fn, void *opaque);

/** The most iovecs one posted event buffer may have. */
#define VIOMMU_EVENT_IOV_MAX 4

/**
 * viommu_event_post - the driver made a device-writable buffer
 * available on the event queue; the device keeps the iovecs (copied;
 * the memory they point to must stay valid until completion or reset)
 * and fills it with the next fault. A buffer too small for a fault
 * report is returned with used length 0 (the spec forbids splitting a
 * report over buffers).
 *
 * Returns 0; -EINVAL when @count is 0 or above VIOMMU_EVENT_IOV_MAX or
 * @iov is NULL; -ENOSPC when max_event_buffers are already held;
 * -EBUSY while an event virtqueue is attached (viommu_vq_set_event_queue).
 */
VIOMMU_API int viommu_event_post(viommu *v, const struct iovec *iov, size_t count, uint64_t cookie);

/**
 * viommu_stats - device counters since creation (not cleared by reset).
 * @domains, @mappings, @endpoints: current totals.
 * @requests: requests processed; @batches: batches processed.
 * @faults: refused translations; @faults_reported: written to an event
 *   buffer; @faults_dropped: no buffer was available.
 * @listener_failures: maps a listener refused or failed.
 */
typedef struct viommu_stats {
    uint64_t domains;
    uint64_t mappings;
    uint64_t endpoints;
    uint64_t requests;
    uint64_t batches;
    uint64_t faults;
    uint64_t faults_reported;
    uint64_t faults_dropped;
    uint64_t listener_failures;
} viommu_stats;

/** viommu_get_stats - fills @out with the current counters. */
VIOMMU_API void viommu_get_stats(const viommu *v, viommu_stats *out);

/* ------------------------------------------------------------------ */
/* Split virtqueues in guest memory                                    */
/* ------------------------------------------------------------------ */

/**
 * viommu_guest_memory - how the device reaches guest RAM.
 * @map: returns a host pointer through which the @len bytes at guest
 *   physical @gpa are reachable contiguously (writable when @write),
 *   or NULL when any of them is not guest RAM. Must not call back into
 *   the device.
 */
typedef struct viommu_guest_memory {
    void *(*map)(void *opaque, uint64_t gpa, uint64_t len, bool write);
    void *opaque;
} viommu_guest_memory;

/** The longest descriptor chain accepted (direct plus indirect). */
#define VIOMMU_VQ_MAX_CHAIN 1024

/**
 * viommu_vq_config - a split virtqueue as the driver set it up.
 * @size: number of descriptors, a power of two, 1 .. 32768.
 * @desc_gpa, @avail_gpa, @used_gpa: ring addresses (16, 2 and 4 byte
 *   aligned).
 * @mem: guest memory accessors (copied).
 */
typedef struct viommu_vq_config {
    uint16_t size;
    uint64_t desc_gpa;
    uint64_t avail_gpa;
    uint64_t used_gpa;
    viommu_guest_memory mem;
} viommu_vq_config;

/** viommu_vq - the device side of one split virtqueue. */
typedef struct viommu_vq viommu_vq;

/**
 * viommu_vq_new - the device side of a queue, starting at index 0.
 *
 * Returns 0 and stores the queue (owned by the caller, free with
 * viommu_vq_free()) in @out; -EINVAL for a bad size, alignment or a
 * NULL map callback; -ENOMEM.
 */
VIOMMU_API int viommu_vq_new(const viommu_vq_config *cfg, viommu_vq **out);

/** viommu_vq_free - frees @vq; NULL is allowed. */
VIOMMU_API void viommu_vq_free(viommu_vq *vq);

/**
 * viommu_vq_set_event_idx - whether VIRTIO_F_EVENT_IDX was negotiated
 * (off by default): interrupts then follow the driver's used_event and
 * the device publishes avail_event.
 */
VIOMMU_API void viommu_vq_set_event_idx(viommu_vq *vq, bool on);

/**
 * viommu_vq_process_requests - handles one notification of the request
 * queue: pops every available chain (direct and indirect descriptors,
 * readable before writable), runs them as ONE batch, writes each used
 * element and then the used index. @notify (may be NULL) is set when
 * the driver wants an interrupt for the chains completed (per
 * VRING_AVAIL_F_NO_INTERRUPT, or used_event with event_idx).
 *
 * Returns the number of chains completed; -EIO when the ring is broken
 * (a descriptor index or buffer outside the table or guest RAM, a
 * loop, a chain longer than VIOMMU_VQ_MAX_CHAIN, a writable descriptor
 * before a readable one, a bad indirect table, more available chains
 * than the queue size), or when memory for a chain's iovecs runs out:
 * the chains popped before it are completed, and the VMM should set
 * DEVICE_NEEDS_RESET; -EINVAL when @v or @vq is NULL.
 */
VIOMMU_API int viommu_vq_process_requests(viommu *v, viommu_vq *vq, bool *notify);

/**
 * viommu_vq_set_event_queue - fault reports go to @vq (the event
 * queue; not owned, must outlive its use or be detached with NULL):
 * each fault pops one available chain, writes the report, pushes it
 * to the used ring and calls @notify(@opaque) unless the driver
 * suppressed interrupts. Buffers posted with viommu_event_post() are
 * dropped. A broken event ring (see viommu_vq_process_requests) drops
 * the report.
 *
 * Returns 0.
 */
VIOMMU_API int viommu_vq_set_event_queue(viommu *v, viommu_vq *vq, void (*notify)(void *opaque),
                                         void *opaque);

/* ------------------------------------------------------------------ */
/* State save/load (live migration of the device itself)               */
/* ------------------------------------------------------------------ */

/** The state stream version viommu_save() writes and the newest viommu_load() reads. */
#define VIOMMU_STATE_VERSION 1

/**
 * viommu_save - writes the state of @v as a byte stream: the guest-visible
 * configuration, the negotiated features, config.bypass, every endpoint
 * with its reserved regions and the domain it is attached to, every
 * domain (bypass or not) with its mappings, and the counters of
 * viommu_get_stats(). Little-endian, starting with a magic and
 * VIOMMU_STATE_VERSION, ending with a CRC-32 of the rest. The same state
 * always gives the same bytes (records in ascending ID and address order).
 *
 * Not saved, because they belong to the VMM's wiring rather than to the
 * device: listeners, the event handler and event virtqueue, and event
 * buffers posted with viommu_event_post() (their iovecs point into this
 * process; the VMM re-posts the driver's buffers on the destination, as
 * a virtio transport rewinds its in-flight elements). Split virtqueue
 * indices are the transport's state, not the device's.
 *
 * @buf: where to write (the caller's); may be NULL when @bufsize is 0.
 * @len: receives the stream's length, also when it does not fit. Call
 *       with @bufsize 0 to learn it (about 32 bytes per mapping).
 *
 * Returns:
 *   0 on success,
 *   -EINVAL when @v or @len is NULL, or @buf is NULL with @bufsize > 0,
 *   -ENOSPC when @bufsize is smaller than *@len (nothing is written).
 */
VIOMMU_API int viommu_save(const viommu *v, void *buf, size_t bufsize, size_t *len);

/**
 * viommu_load - replaces the state of @v by the one in the @len bytes at
 * @buf, written by viommu_save() (of this or an older stream version).
 *
 * @v must have no attached endpoint (newly created, or after
 * viommu_reset()). The endpoints it has declared must all be in the
 * stream; they keep their listeners, and the stream's other endpoints are
 * created without one. The stream's guest-visible configuration
 * (features offered, page_size_mask, input and domain ranges, probe_size,
 * initial bypass) must equal @v's; its limits are @v's own, and the state
 * must fit in them. Every domain and mapping is rebuilt through the same
 * checks as the guest's ATTACH and MAP requests.
 *
 * Once the new state is complete, each endpoint's listener receives its
 * domain's mappings as map events, one batch per endpoint (batch_begin,
 * the maps in address order, batch_end), in ascending endpoint order.
 * Only then is the new state swapped in. On any error @v is unchanged:
 * a listener that refused or failed a map gets back, as unmaps in a
 * batch of their own, the maps it had accepted, and so do the listeners
 * served before it. The event handler, event virtqueue and posted event
 * buffers of @v are kept. @buf stays the caller's.
 *
 * @error: optional; receives a sentence saying what is wrong (G_IO_ERROR
 *         domain; G_IO_ERROR_INVALID_DATA for a corrupt stream).
 *
 * Returns:
 *   0 on success,
 *   -EINVAL when @v is NULL, @buf is NULL with @len > 0, the stream's
 *           configuration differs from @v's, an endpoint @v declares is
 *           not in the stream, or the state exceeds @v's max_endpoints,
 *           max_domains or max_mappings_per_domain,
 *   -EBADMSG when the stream is corrupt: bad magic, truncated or followed
 *           by extra bytes, checksum mismatch, non-zero reserved bytes,
 *           records out of order or running past the end, or a state the
 *           requests could not have built (a mapping that is misaligned,
 *           overlaps another or a reserved region, a domain without an
 *           endpoint, features that were not offered ...),
 *   -ENOTSUP when the stream's version is newer than VIOMMU_STATE_VERSION,
 *   -EBUSY when @v has attached endpoints,
 *   -ENOMEM when memory ran out,
 *   or the negative errno a listener refused or failed a map with
 *           (-ENOSPC / -ENOMEM: out of resources; others: I/O failure).
 */
VIOMMU_API int viommu_load(viommu *v, const void *buf, size_t len, GError **error);

/*
 * Firmware description: describing a virtio-iommu and the endpoints behind it to
 * the guest's firmware: a device-tree (libfdt) writer and an ACPI VIOT
 * table writer and decoder.
 *
 * Everything here works from a topology, a plain description of where
 * the virtio-iommu sits (a PCI function or a virtio-mmio window) and
 * which endpoints it translates for (ranges of PCI requester IDs, and
 * virtio-mmio devices known by their base address). Each endpoint gets
 * an endpoint ID, the number the guest driver puts in ATTACH requests.
 *
 * Conventions: functions return 0 or a negative errno; inclusive
 * ranges; all values in host byte order (tables and blobs are encoded
 * on output only).
 */

/* ------------------------------------------------------------------ */
/* Topology                                                            */
/* ------------------------------------------------------------------ */

/** enum viommu_transport - how the virtio-iommu itself is reached. */
enum viommu_transport {
    VIOMMU_TRANSPORT_PCI = 1,  /* a virtio-pci function */
    VIOMMU_TRANSPORT_MMIO = 2, /* a virtio-mmio window */
};

/** VIOMMU_MMIO_DEFAULT_SIZE - the window QEMU gives each virtio-mmio device. */
#define VIOMMU_MMIO_DEFAULT_SIZE 0x200u

/** VIOMMU_DESCRIBE_MAX_IRQ_CELLS - most cells in an MMIO `interrupts` value. */
#define VIOMMU_DESCRIBE_MAX_IRQ_CELLS 4

/**
 * struct viommu_pci_range - PCI endpoints by requester ID.
 * @segment: PCI segment (domain) number of the endpoints.
 * @bdf_first, @bdf_last: inclusive range of requester IDs (bus << 8 |
 *                        device << 3 | function).
 * @endpoint_first: endpoint ID of @bdf_first; the IDs follow the
 *                  requester IDs one for one.
 */
struct viommu_pci_range {
    uint16_t segment;
    uint16_t bdf_first;
    uint16_t bdf_last;
    uint32_t endpoint_first;
};

/**
 * struct viommu_mmio_endpoint - one virtio-mmio endpoint.
 * @base: base address of its MMIO window (the first address of its
 *        device-tree `reg`, the VIOT node's base address).
 * @endpoint: its endpoint ID.
 */
struct viommu_mmio_endpoint {
    uint64_t base;
    uint32_t endpoint;
};

/**
 * struct viommu_topology - where the virtio-iommu sits and what it manages.
 * @transport: VIOMMU_TRANSPORT_PCI or VIOMMU_TRANSPORT_MMIO.
 * @pci_segment, @pci_bdf: the virtio-iommu's PCI address (PCI transport).
 * @mmio_base, @mmio_size: its window (MMIO transport); a @mmio_size of 0
 *        means VIOMMU_MMIO_DEFAULT_SIZE.
 * @mmio_irq, @mmio_irq_cells: the device-tree `interrupts` value of the
 *        MMIO virtio-iommu, in the interrupt parent's format (for a GIC:
 *        <type number flags>); 0 cells writes no `interrupts` property.
 *        ACPI describes the interrupt elsewhere (DSDT), so VIOT ignores it.
 * @mmio_dma_coherent: add `dma-coherent` to a virtio-mmio node this
 *        library creates (the virtio-iommu's own rings are coherent on
 *        every VMM this targets; an existing node is left as it is).
 * @pci_ranges, @n_pci_ranges: PCI endpoints (may be 0).
 * @mmio_endpoints, @n_mmio_endpoints: virtio-mmio endpoints (may be 0).
 *
 * Both kinds of endpoint may sit behind either kind of virtio-iommu. The
 * caller keeps ownership of the arrays; nothing here keeps a pointer.
 */
struct viommu_topology {
    enum viommu_transport transport;
    uint16_t pci_segment;
    uint16_t pci_bdf;
    uint64_t mmio_base;
    uint64_t mmio_size;
    uint32_t mmio_irq[VIOMMU_DESCRIBE_MAX_IRQ_CELLS];
    unsigned int mmio_irq_cells;
    bool mmio_dma_coherent;
    const struct viommu_pci_range *pci_ranges;
    size_t n_pci_ranges;
    const struct viommu_mmio_endpoint *mmio_endpoints;
    size_t n_mmio_endpoints;
};

/**
 * viommu_topology_check - validate a topology.
 * @topo: the topology.
 * @error: optional; receives a sentence naming the offending item, in
 *         the G_FILE_ERROR domain with the code g_file_error_from_errno()
 *         gives for the returned errno.
 *
 * A topology is valid when: the transport is known; an MMIO window is
 * non-empty and does not wrap past 2^64; at most
 * VIOMMU_DESCRIBE_MAX_IRQ_CELLS interrupt cells are given; each PCI range
 * has bdf_first <= bdf_last and its endpoint IDs fit in 32 bits; PCI
 * ranges of one segment do not share a requester ID; MMIO endpoints have
 * distinct base addresses outside an MMIO virtio-iommu's window, no
 * endpoint ID is given to two endpoints;
 * and the whole description fits in a VIOT table (at most 65535 nodes).
 * Both writers below run this check first.
 *
 * Returns:
 *   0 on success,
 *   -EINVAL when the topology breaks one of the rules above (or @topo or
 *           a non-empty array pointer is NULL),
 *   -E2BIG when it has more endpoints than a VIOT table can hold.
 */
VIOMMU_API int viommu_topology_check(const struct viommu_topology *topo, GError **error);

/* ------------------------------------------------------------------ */
/* Device tree (libfdt)                                                */
/* ------------------------------------------------------------------ */

/**
 * viommu_fdt_add - add the virtio-iommu to a flattened device tree.
 * @fdt: the caller's blob, at the start of a buffer of @bufsize bytes.
 * @bufsize: size of that buffer; the blob may grow up to it (its
 *           totalsize becomes @bufsize, at most INT_MAX, as after
 *           fdt_open_into()).
 * @topo: the topology (see viommu_topology_check()).
 * @phandle: optional; receives the virtio-iommu node's phandle.
 *
 * PCI transport: a `virtio_iommu@D,F` node with compatible
 * "virtio,pci-iommu", "pci1af4,1057", `reg` for its BDF and
 * `#iommu-cells = <1>` is added under the host bridge of its segment.
 * MMIO transport: the virtio-mmio node whose `reg` starts at the
 * window's base gets `#iommu-cells = <1>` (and a phandle); when there is
 * none, a `virtio_mmio@ADDR` node is created under the root with
 * compatible "virtio,mmio", `reg`, and the optional `interrupts` and
 * `dma-coherent`. The phandle is the highest one in the tree plus one.
 *
 * Endpoints: each PCI range becomes `iommu-map` entries of the host
 * bridge of its segment (<rid phandle endpoint-id count>, in requester
 * ID order), leaving out the virtio-iommu's own requester ID, which is
 * not translated by itself; each MMIO endpoint's node (found by the
 * first address of its `reg`) gets `iommus = <phandle endpoint-id>`.
 *
 * A host bridge is a node with device_type "pci" whose parent is not
 * one; the bridge of segment N is the one whose `linux,pci-domain` is N,
 * or, for segment 0 only, the single host bridge of a tree with one and
 * no `linux,pci-domain`. The virtio-iommu must sit on the bridge's root
 * bus (the first bus of its `bus-range`, 0 when absent), because a
 * device-tree node is bound only to a device directly below the node
 * that contains it.
 *
 * New properties come first in their node and the new node first among
 * its siblings, where fdt_setprop() and fdt_add_subnode() put them, so
 * `dtc -I dtb -O dts` prints the result as it prints QEMU's trees. The
 * tree is rewritten in one pass (NOPs dropped, strings deduplicated),
 * linear in its size however many endpoints there are.
 *
 * The work is done on a copy: on any error the caller's buffer is left
 * exactly as it was. The caller keeps ownership of everything; nothing
 * is kept after the call returns.
 *
 * Returns:
 *   0 on success,
 *   -EINVAL for an invalid topology (viommu_topology_check()), a NULL
 *           @fdt, a blob that is not a valid device tree of version 16
 *           or later (including property lengths of 2^31 or more, which
 *           libfdt's own check lets through), a blob whose totalsize
 *           exceeds @bufsize, a tree nested deeper than 64 levels, an
 *           interrupt parent whose `#interrupt-cells` differs from
 *           @mmio_irq_cells, a virtio-iommu off its host bridge's root
 *           bus, a new virtio_mmio window the root's `#address-cells` /
 *           `#size-cells` cannot hold, or an address that matches the
 *           `reg` of more than one node,
 *   -ENOENT when no host bridge serves a needed segment, or no node has
 *           the base address of an MMIO endpoint,
 *   -EEXIST when the virtio-iommu node already exists (or the node at
 *           its MMIO base is not "virtio,mmio" or already has
 *           `#iommu-cells`), or a host bridge already has an `iommu-map`,
 *           or an MMIO endpoint already has `iommus`,
 *   -E2BIG when the topology has more endpoints than a VIOT table can
 *           hold (the same limit applies to both descriptions),
 *   -ENOSPC when the result does not fit in @bufsize bytes,
 *   -ERANGE when the tree has no phandle left to give,
 *   -ENOMEM when the working copy cannot be allocated.
 */
VIOMMU_API int viommu_fdt_add(void *fdt, size_t bufsize, const struct viommu_topology *topo,
                              uint32_t *phandle);

/* ------------------------------------------------------------------ */
/* ACPI VIOT table                                                     */
/* ------------------------------------------------------------------ */

/* Node types of the VIOT table (ACPI 6.4, 5.2.30). */
#define VIOMMU_VIOT_NODE_PCI_RANGE 1
#define VIOMMU_VIOT_NODE_MMIO_ENDPOINT 2
#define VIOMMU_VIOT_NODE_VIRTIO_IOMMU_PCI 3
#define VIOMMU_VIOT_NODE_VIRTIO_IOMMU_MMIO 4

/**
 * struct viommu_acpi_ids - identification fields of an ACPI table header.
 * Strings are space-padded to their field width and need no NUL.
 */
struct viommu_acpi_ids {
    char oem_id[6];
    char oem_table_id[8];
    uint32_t oem_revision;
    char creator_id[4];
    uint32_t creator_revision;
};

/**
 * viommu_viot_build - write the ACPI VIOT table of a topology.
 * @topo: the topology (see viommu_topology_check()).
 * @ids: the header's OEM and creator fields; NULL for "VIOMMU",
 *       "VIOMMU  ", 1, "VIOM", 1.
 * @buf: where to write; may be NULL when @bufsize is 0.
 * @bufsize: size of @buf.
 * @len: receives the table's length, also when it does not fit.
 *
 * Layout: the 48-byte header (revision 0), the virtio-iommu node (PCI or
 * MMIO) at offset 48, then one PCI range node per PCI range in the
 * given order, then one MMIO endpoint node per MMIO endpoint, each
 * pointing at the virtio-iommu node. The checksum makes the bytes sum
 * to 0 mod 256. Call with @bufsize 0 to learn the length.
 *
 * Returns:
 *   0 on success,
 *   -EINVAL for an invalid topology or a NULL @len,
 *   -E2BIG when the topology has more nodes than a VIOT table can hold,
 *   -ENOSPC when @bufsize is smaller than *@len (nothing is written).
 */
VIOMMU_API int viommu_viot_build(const struct viommu_topology *topo,
                                 const struct viommu_acpi_ids *ids, void *buf, size_t bufsize,
                                 size_t *len);

/**
 * struct viommu_viot_node - one decoded VIOT node, host byte order.
 * @offset: where it starts in the table; @type, @length: its header.
 * Of the union, the member of @type is filled (none for unknown types,
 * which ACPI allows and a reader skips).
 * @output_node: for endpoint nodes, the index in viommu_viot::nodes of
 *               the virtio-iommu node it points at.
 */
struct viommu_viot_node {
    uint32_t offset;
    uint8_t type;
    uint16_t length;
    union {
        struct {
            uint32_t endpoint_start;
            uint16_t segment_start, segment_end;
            uint16_t bdf_start, bdf_end;
            size_t output_node;
        } pci_range;
        struct {
            uint32_t endpoint;
            uint64_t base;
            size_t output_node;
        } mmio_endpoint;
        struct {
            uint16_t segment;
            uint16_t bdf;
        } virtio_pci;
        struct {
            uint64_t base;
        } virtio_mmio;
    } u;
};

/**
 * struct viommu_viot - a decoded VIOT table (see viommu_viot_decode()).
 * String fields are the raw header bytes plus a NUL.
 */
struct viommu_viot {
    uint32_t length;
    uint8_t revision;
    uint8_t checksum;
    char oem_id[7];
    char oem_table_id[9];
    uint32_t oem_revision;
    char creator_id[5];
    uint32_t creator_revision;
    uint16_t node_offset;
    size_t n_nodes;
    struct viommu_viot_node *nodes;
};

/**
 * viommu_viot_decode - decode and validate a VIOT table.
 * @table: the bytes; @size: how many there are.
 * @out: receives the decoded table, owned by the caller, freed with
 *       viommu_viot_free(); left untouched on error.
 * @error: optional; receives a sentence saying what is wrong and where
 *         (G_FILE_ERROR domain, as for viommu_topology_check()).
 *
 * Checks, before using anything: signature "VIOT", the header's length
 * against @size (equal) and against the 48-byte minimum, the checksum,
 * revision 0, that the nodes start at or after byte 48 and that every
 * node (counted by node_count) lies inside the table with a length of at
 * least 4, the exact length of each known node type, bdf_start <=
 * bdf_end and segment_start <= segment_end in PCI ranges, endpoint IDs
 * that do not wrap past 2^32, and that each endpoint's output node is
 * the start of a virtio-iommu node of the table.
 *
 * Returns:
 *   0 on success,
 *   -EINVAL when @table or @out is NULL or the table breaks a rule above,
 *   -ENOTSUP for a revision other than 0.
 */
VIOMMU_API int viommu_viot_decode(const void *table, size_t size, struct viommu_viot **out,
                                  GError **error);

/** viommu_viot_free - free a decoded table; NULL is allowed. */
VIOMMU_API void viommu_viot_free(struct viommu_viot *viot);

#ifdef __cplusplus
}
#endif

#endif /* VIOMMU_H */

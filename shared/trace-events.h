/* SPDX-License-Identifier: MIT */
/*
 * trace-events.h - the one definition of every trace event.
 *
 * Each event is a line of TRACE_EVENT_LIST(EV): EV(name, doc), plus a
 * field list TRACE_FIELDS_<name>(F, S) where every field is
 * F(KIND, field_name, doc) and fields are separated by S(). Everything
 * else is generated from these lists: the typed field structs, the
 * TRACE() wrappers in shared.h, the USDT probes (provider "viommu", probe
 * name = event name, arguments in field order), the text and JSON Lines
 * writers and the JSON Lines reader. Adding a field appends it, so the
 * argument numbers bpftrace scripts use stay stable.
 *
 * Field kinds (the C type and how the outputs print it):
 *   U32     uint32_t, decimal
 *   I32     int32_t, decimal (0 or a negative errno)
 *   U64     uint64_t, decimal
 *   ADDR    uint64_t address, hex; a "0x..." string in JSON Lines because
 *           JSON readers that use doubles lose bits above 2^53
 *   FLAGS   uint32_t bit set, hex in text, decimal in JSON Lines
 *   REQ     uint32_t virtio-iommu request type (VIRTIO_IOMMU_T_*),
 *           its name in text, decimal in JSON Lines
 *   STATUS  uint32_t virtio-iommu status (VIRTIO_IOMMU_S_*), its name in
 *           text, decimal in JSON Lines
 *
 * shared.h includes this file; include shared.h rather than this file.
 */
#ifndef SHARED_TRACE_EVENTS_H
#define SHARED_TRACE_EVENTS_H

#define TRACE_EVENT_LIST(EV)                                                                       \
    EV(request_received, "a virtio-iommu request was popped from the request queue")               \
    EV(request_done, "a virtio-iommu request completed and its status was written")                \
    EV(batch_begin, "the requests of one queue notification start")                                \
    EV(batch_end, "the requests of one queue notification are all completed")                      \
    EV(domain_created, "a domain came into existence (first endpoint attached)")                   \
    EV(domain_destroyed, "a domain ceased to exist, with all its mappings")                        \
    EV(endpoint_attached, "an endpoint joined a domain")                                           \
    EV(endpoint_detached, "an endpoint left a domain")                                             \
    EV(listener_map, "a mapping listener was told that a range became reachable")                  \
    EV(listener_unmap, "a mapping listener was told that a range is no longer reachable")          \
    EV(vfio_user_send, "a vfio-user request message was sent to a server")                         \
    EV(vfio_user_reply, "the reply to a vfio-user request was received")                           \
    EV(dirty_collected, "a dirty-page bitmap was collected from a vfio-user server")               \
    EV(reconnect, "an attempt to re-establish a vfio-user server connection ended")                \
    EV(fault, "a fault was reported to the guest on the event queue")                              \
    EV(vfio_user_wait, "the vfio-user client blocked until a server's replies arrived")            \
    EV(probe_property, "a PROBE request reported a reserved-memory region of an endpoint")

// clang-format off
#define TRACE_FIELDS_request_received(F, S)                                                        \
    F(REQ, type, "request type (VIRTIO_IOMMU_T_*)")                                                \
    S() F(U32, size, "bytes the driver made available for the request and its reply")              \
    S() F(U64, batch, "batch (queue notification) sequence number")

#define TRACE_FIELDS_request_done(F, S)                                                            \
    F(REQ, type, "request type (VIRTIO_IOMMU_T_*)")                                                \
    S() F(U32, domain, "domain ID from the request (0 when the type has none)")                    \
    S() F(U32, endpoint, "endpoint ID from the request (0 when the type has none)")                \
    S() F(ADDR, virt_start, "first IOVA of a MAP or UNMAP (0 otherwise)")                          \
    S() F(ADDR, virt_end, "last IOVA, inclusive, of a MAP or UNMAP (0 otherwise)")                 \
    S() F(ADDR, phys_start, "guest-physical address of virt_start for a MAP (0 otherwise)")        \
    S() F(FLAGS, flags, "request flags (MAP: VIRTIO_IOMMU_MAP_F_*, ATTACH: _ATTACH_F_*)")          \
    S() F(STATUS, status, "status written to the driver (VIRTIO_IOMMU_S_*)")                       \
    S() F(U64, latency_ns, "nanoseconds from request_received to completion")                      \
    S() F(U64, batch, "batch (queue notification) sequence number")

#define TRACE_FIELDS_batch_begin(F, S)                                                             \
    F(U64, batch, "batch (queue notification) sequence number")

#define TRACE_FIELDS_batch_end(F, S)                                                               \
    F(U64, batch, "batch (queue notification) sequence number")                                    \
    S() F(U32, requests, "requests completed in the batch")                                        \
    S() F(U64, latency_ns, "nanoseconds from batch_begin to batch_end")

#define TRACE_FIELDS_domain_created(F, S)                                                          \
    F(U32, domain, "domain ID")                                                                    \
    S() F(FLAGS, flags, "ATTACH flags that created it (VIRTIO_IOMMU_ATTACH_F_BYPASS)")

#define TRACE_FIELDS_domain_destroyed(F, S)                                                        \
    F(U32, domain, "domain ID")                                                                    \
    S() F(U64, mappings, "mappings the domain still held")

#define TRACE_FIELDS_endpoint_attached(F, S)                                                       \
    F(U32, endpoint, "endpoint ID")                                                                \
    S() F(U32, domain, "domain ID")

#define TRACE_FIELDS_endpoint_detached(F, S)                                                       \
    F(U32, endpoint, "endpoint ID")                                                                \
    S() F(U32, domain, "domain ID")

#define TRACE_FIELDS_listener_map(F, S)                                                            \
    F(U32, listener, "index of the listener, in registration order")                               \
    S() F(U32, endpoint, "endpoint ID")                                                            \
    S() F(U32, domain, "domain ID")                                                                \
    S() F(ADDR, iova, "first IOVA")                                                                \
    S() F(ADDR, iova_last, "last IOVA, inclusive")                                                 \
    S() F(ADDR, gpa, "guest-physical address of iova")                                             \
    S() F(FLAGS, prot, "MAPPING_PROT_* bits")                                                      \
    S() F(I32, error, "the listener's answer: 0 or a negative errno")

#define TRACE_FIELDS_listener_unmap(F, S) TRACE_FIELDS_listener_map(F, S)

#define TRACE_FIELDS_vfio_user_send(F, S)                                                          \
    F(U32, device, "index of the vfio-user device (server connection)")                            \
    S() F(U32, command, "vfio-user command number (as the connection's dialect numbers it)")       \
    S() F(U32, id, "message ID")                                                                   \
    S() F(U32, size, "message size in bytes, header included")                                     \
    S() F(U32, fds, "file descriptors passed with the message")

#define TRACE_FIELDS_vfio_user_reply(F, S)                                                         \
    F(U32, device, "index of the vfio-user device (server connection)")                            \
    S() F(U32, command, "vfio-user command number of the request")                                 \
    S() F(U32, id, "message ID")                                                                   \
    S() F(U32, size, "reply size in bytes, header included")                                       \
    S() F(U32, fds, "file descriptors received with the reply")                                    \
    S() F(I32, error, "0, or the negative errno the reply carried or the client detected")         \
    S() F(U64, latency_ns, "nanoseconds from sending the request to receiving the reply")

#define TRACE_FIELDS_dirty_collected(F, S)                                                         \
    F(U32, device, "index of the vfio-user device (server connection)")                            \
    S() F(ADDR, iova, "first IOVA the bitmap covers")                                              \
    S() F(ADDR, iova_last, "last IOVA the bitmap covers, inclusive")                               \
    S() F(U64, pgsize, "bytes per bitmap bit")                                                     \
    S() F(U64, pages_set, "bits set in the bitmap (dirty pages)")

#define TRACE_FIELDS_reconnect(F, S)                                                               \
    F(U32, device, "index of the vfio-user device (server connection)")                            \
    S() F(U32, attempt, "attempts made, this one included")                                        \
    S() F(I32, error, "0 when connected and every mapping re-established, else a negative errno")  \
    S() F(U64, latency_ns, "nanoseconds from the disconnect to this result")

#define TRACE_FIELDS_fault(F, S)                                                                   \
    F(U32, endpoint, "endpoint ID")                                                                \
    S() F(U32, reason, "VIRTIO_IOMMU_FAULT_R_* (0 unknown, 1 domain, 2 mapping)")                  \
    S() F(FLAGS, flags, "VIRTIO_IOMMU_FAULT_F_* (read 0x1, write 0x2, address 0x100)")             \
    S() F(ADDR, address, "faulting address (meaningful when F_ADDRESS is set)")

#define TRACE_FIELDS_vfio_user_wait(F, S)                                                          \
    F(U32, device, "index of the vfio-user device (server connection)")                            \
    S() F(U32, in_flight, "requests sent and not yet answered when the wait began")

#define TRACE_FIELDS_probe_property(F, S)                                                          \
    F(U32, endpoint, "endpoint ID")                                                                \
    S() F(U32, subtype, "VIRTIO_IOMMU_RESV_MEM_T_* (0 reserved, 1 MSI)")                           \
    S() F(ADDR, start, "first address of the region")                                              \
    S() F(ADDR, end, "last address of the region, inclusive")
// clang-format on

/* The most fields any event has (USDT allows up to 12 arguments). */
#define TRACE_MAX_FIELDS 10

/* C type of each field kind. */
#define TRACE_CTYPE_U32 uint32_t
#define TRACE_CTYPE_I32 int32_t
#define TRACE_CTYPE_U64 uint64_t
#define TRACE_CTYPE_ADDR uint64_t
#define TRACE_CTYPE_FLAGS uint32_t
#define TRACE_CTYPE_REQ uint32_t
#define TRACE_CTYPE_STATUS uint32_t

/* Expansion helpers for the field lists. */
#define TRACE_SEP_COMMA() ,
#define TRACE_SEP_NONE()
#define TRACE_F_PARAM(kind, name, doc) TRACE_CTYPE_##kind name
#define TRACE_F_ARG(kind, name, doc) name
#define TRACE_F_MEMBER(kind, name, doc) TRACE_CTYPE_##kind name;

#endif /* SHARED_TRACE_EVENTS_H */

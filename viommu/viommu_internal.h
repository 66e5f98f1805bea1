/* SPDX-License-Identifier: MIT */
/*
 * viommu_internal.h - the device's state, shared by the library's
 * modules (device.c, request.c, domain.c, translate.c, virtqueue.c).
 */
#ifndef VIOMMU_INTERNAL_H
#define VIOMMU_INTERNAL_H

#include <endian.h>
#include <errno.h>
#include <string.h>

#include "trace-internal.h"
#include "viommu.h"

/* A domain mapping's inline value in the interval map: 16 bytes. */
typedef struct vi_map_val {
    uint64_t phys;
    uint32_t flags;
    /* Index of the creating request within its batch, so a map a
     * listener fails at batch_end is matched to exactly this mapping. */
    uint32_t seq;
} vi_map_val;
_Static_assert(sizeof(vi_map_val) == 16, "mapping value is 16 bytes");

typedef struct vi_resv {
    uint64_t start;
    uint64_t end;
    uint8_t subtype;
} vi_resv;

typedef struct vi_domain vi_domain;

typedef struct vi_endpoint {
    uint32_t id;
    vi_domain *domain;
    struct vi_endpoint *dom_next; /* next endpoint of the same domain */
    mapping_listener listener;
    vi_resv *resv;
    uint32_t nresv;
    uint64_t batch_gen; /* batch in which batch_begin was last called */
    /* The listener's number in trace events: order of addition. */
    uint32_t trace_index;
} vi_endpoint;

struct vi_domain {
    uint32_t id;
    bool bypass;
    interval_map *map; /* NULL for a bypass domain */
    vi_endpoint *endpoints;
    uint32_t nendpoints;
};

/* A map a listener failed at batch_end. */
typedef struct vi_failure {
    mapping_event ev;
    int err;
} vi_failure;

/* A buffer the driver posted on the event queue (iovec interface). */
typedef struct vi_event_buf {
    struct iovec iov[VIOMMU_EVENT_IOV_MAX];
    size_t count;
    uint64_t cookie;
} vi_event_buf;

struct viommu {
    viommu_config cfg;
    uint64_t driver_features;
    uint8_t bypass;        /* config.bypass as the driver sees it */
    uint64_t granule_mask; /* granule - 1 */

    GHashTable *endpoints;      /* u32 id -> vi_endpoint * */
    GHashTable *domains;        /* u32 id -> vi_domain * */
    vi_domain *last_domain;     /* lookup cache, cleared when a domain dies */
    vi_endpoint *last_endpoint; /* lookup cache */

    /* The batch in progress. */
    uint64_t batch_gen;
    vi_endpoint **touched; /* listeners that got batch_begin */
    size_t ntouched;
    size_t touched_cap;
    GArray *failures; /* vi_failure, collected at batch_end */
    /* vi_req_trace of each request of the batch being traced: the fields
     * its request_done reports, kept as the request decodes them. */
    GArray *trace_reqs;
    /* While a traced batch runs, its start time: the time of the listener
     * events it fires (0 outside a batch: they read the clock). */
    uint64_t trace_ts;
    /* While a traced batch runs with the trace files as the only outputs
     * (vi_trace_batch_begin), the thread's ring, which its events go
     * straight into; else NULL. */
    trace_ring *trace_ring;
    /* Within a batch, whether its listener events may be wanted, as read
     * when it started (vi_batch_start); true outside a batch, where each
     * event checks for itself. */
    bool trace_listeners;

    /* Event queue: posted buffers (a ring) or an attached virtqueue. */
    vi_event_buf *events;
    uint32_t events_head;
    uint32_t events_count;
    viommu_event_complete_fn event_complete;
    void *event_opaque;
    viommu_vq *event_vq;
    void (*event_vq_notify)(void *opaque);
    void *event_vq_opaque;

    viommu_stats stats;
};

static inline bool vi_negotiated(const viommu *v, unsigned bit)
{
    return (v->driver_features & VIOMMU_FEATURE(bit)) != 0;
}

static inline bool vi_offered(const viommu *v, unsigned bit)
{
    return (v->cfg.features & VIOMMU_FEATURE(bit)) != 0;
}

static inline vi_endpoint *vi_endpoint_find(const viommu *v, uint32_t id)
{
    return g_hash_table_lookup(v->endpoints, GUINT_TO_POINTER(id));
}

static inline vi_endpoint *vi_endpoint_lookup(viommu *v, uint32_t id)
{
    /* Endpoints are never removed, so the cached pointer stays valid. */
    vi_endpoint *ep = v->last_endpoint;
    if (ep && ep->id == id)
        return ep;
    ep = vi_endpoint_find(v, id);
    if (ep)
        v->last_endpoint = ep;
    return ep;
}

static inline vi_domain *vi_domain_lookup(viommu *v, uint32_t id)
{
    vi_domain *d = v->last_domain;
    if (d && d->id == id)
        return d;
    d = g_hash_table_lookup(v->domains, GUINT_TO_POINTER(id));
    if (d)
        v->last_domain = d;
    return d;
}

/* domain.c: the request semantics, on decoded host-order values. */
uint8_t vi_attach(viommu *v, uint32_t domain, uint32_t endpoint, uint32_t flags, uint32_t seq);
uint8_t vi_detach(viommu *v, uint32_t domain, uint32_t endpoint, uint32_t seq);
uint8_t vi_map(viommu *v, uint32_t domain, uint64_t virt_start, uint64_t virt_end,
               uint64_t phys_start, uint32_t flags, uint32_t seq);
uint8_t vi_unmap(viommu *v, uint32_t domain, uint64_t virt_start, uint64_t virt_end, uint32_t seq);
/* vi_map without the listeners: checks and inserts, *out = the domain. */
uint8_t vi_map_insert(viommu *v, uint32_t domain, uint64_t virt_start, uint64_t virt_end,
                      uint64_t phys_start, uint32_t flags, uint32_t seq, vi_domain **out);
/* A new empty domain (NULL when memory is short); no endpoint yet. */
vi_domain *vi_domain_create(viommu *v, uint32_t id, bool bypass);
void vi_domain_link(vi_domain *d, vi_endpoint *ep);
/* Replays @d's mappings to @ep's listener; on a refusal, unmaps what it
 * had accepted and returns the refusal. */
int vi_replay(viommu *v, vi_endpoint *ep, vi_domain *d, uint32_t seq);
/* Unmap events to @ep's listener for every mapping of its domain,
 * except the ranges listed in @skip (which it does not hold). */
void vi_endpoint_unmap_all(viommu *v, vi_endpoint *ep, uint32_t seq, const vi_failure *skip,
                           size_t nskip);
/* Detaches @ep from its domain (unmap events to its listener, except the
 * ranges listed in @skip), destroying the domain when it empties. */
void vi_endpoint_detach(viommu *v, vi_endpoint *ep, uint32_t seq, const vi_failure *skip,
                        size_t nskip);
void vi_domain_destroy(viommu *v, vi_domain *d);

/* request.c: listener plumbing within a batch. */
int vi_emit_map(viommu *v, vi_endpoint *ep, const mapping_event *ev);
void vi_emit_unmap(viommu *v, vi_endpoint *ep, const mapping_event *ev);
void vi_batch_start(viommu *v);
/* Calls batch_end on every listener of the batch; @failed NULL ignores
 * failures (for batches of unmaps only). */
void vi_batch_finish(viommu *v, mapping_failed_fn failed, void *fail_opaque);
uint8_t vi_errno_status(int err);

/*
 * The request_done event of a request of a traced batch, as the ring
 * slot it is copied into whole: the request's decoder fills the fields
 * from the request (VI_REQ_DECODED, 0 for those its type has not; it sets
 * the id), the batch's end the time, type, status, latency and batch. A
 * slot whose id is not request_done was not decoded (unsupported, too
 * short): the batch's end reads its fields from the driver's buffers.
 */
typedef trace_event vi_req_trace;
#define VI_REQ_DECODED(tf, domain_, endpoint_, virt_start_, virt_end_, phys_start_, flags_)        \
    do {                                                                                           \
        trace_request_done_fields *f_ = &(tf)->u.request_done;                                     \
        (tf)->id = TRACE_EV_request_done;                                                          \
        f_->domain = (domain_);                                                                    \
        f_->endpoint = (endpoint_);                                                                \
        f_->virt_start = (virt_start_);                                                            \
        f_->virt_end = (virt_end_);                                                                \
        f_->phys_start = (phys_start_);                                                            \
        f_->flags = (flags_);                                                                      \
    } while (0)

/* VI_TRACE_AT - TRACE_AT for the events a batch fires: straight into the
 * thread's ring (trace_ring_put_<name>) while the batch has one. */
#ifdef TRACE_COMPILED_OUT
#define VI_TRACE_AT(v, name, ts, ...) TRACE_AT(name, ts, __VA_ARGS__)
#else
#define VI_TRACE_AT(v, name, ts, ...)                                                              \
    ((v)->trace_ring ? trace_ring_put_##name((v)->trace_ring, (ts), __VA_ARGS__)                   \
                     : TRACE_AT(name, ts, __VA_ARGS__))
#endif

/* trace_request.c: the request and batch trace events, called only while
 * vi_trace_batch_wanted(). vi_trace_batch_begin returns the batch's start
 * time (trace_now_ns()), which the others take as @t0: every request of
 * the batch was received then. */
#ifdef TRACE_COMPILED_OUT
#define vi_trace_batch_wanted() 0
#else
#define vi_trace_batch_wanted()                                                                    \
    __builtin_expect((__atomic_load_n(&trace_enabled_flag, __ATOMIC_RELAXED) |                     \
                      __atomic_load_n(&viommu_batch_begin_semaphore, __ATOMIC_RELAXED) |           \
                      __atomic_load_n(&viommu_batch_end_semaphore, __ATOMIC_RELAXED) |             \
                      __atomic_load_n(&viommu_request_received_semaphore, __ATOMIC_RELAXED) |      \
                      __atomic_load_n(&viommu_request_done_semaphore, __ATOMIC_RELAXED)) != 0,     \
                     0)
#endif
/* Also sets *@tf to the batch's vi_req_trace array, each request's
 * marked not decoded yet. */
uint64_t vi_trace_batch_begin(viommu *v, const viommu_request *reqs, size_t n, vi_req_trace **tf);
/* The request_done event of every request of @reqs that completed (its
 * fields in @tf), then batch_end: all at @now, when the statuses were
 * written. */
void vi_trace_batch_done(const viommu *v, const viommu_request *reqs, vi_req_trace *tf, size_t n,
                         uint64_t t0, uint64_t now);
uint32_t vi_trace_listener_index(viommu *v, uint32_t endpoint);

/* A listener event may be wanted: with tracing off, one load and a
 * branch per listener call; VI_TRACE_LISTENER then stages the event. */
#ifdef TRACE_COMPILED_OUT
#define vi_trace_listener_wanted(v) 0
#else
#define vi_trace_listener_wanted(v) __builtin_expect((v)->trace_listeners, 0)
#endif
/* What vi_batch_start reads: tracing is on, or a tracer is attached to
 * a listener event's probe. */
#define vi_trace_listeners_on()                                                                    \
    ((__atomic_load_n(&trace_enabled_flag, __ATOMIC_RELAXED) |                                     \
      __atomic_load_n(&viommu_listener_map_semaphore, __ATOMIC_RELAXED) |                          \
      __atomic_load_n(&viommu_listener_unmap_semaphore, __ATOMIC_RELAXED)) != 0)
/* Fire listener_map or listener_unmap for @ev, which listener @index
 * answered with @rc, when that event is wanted: out of line, waiting for
 * room in the batch's ring if it must. */
void vi_trace_listener_map(const viommu *v, uint32_t index, const mapping_event *ev, int rc);
void vi_trace_listener_unmap(const viommu *v, uint32_t index, const mapping_event *ev, int rc);
/* The same, inline while the batch's ring has room as last seen, else
 * through the functions above. */
#define VI_TRACE_LISTENER(v, name, index, ev, rc)                                                  \
    do {                                                                                           \
        trace_ring *r_ = (v)->trace_ring;                                                          \
        if (!r_ ||                                                                                 \
            !trace_ring_try_put_##name(r_, (v)->trace_ts, (index), (ev)->endpoint, (ev)->domain,   \
                                       (ev)->iova, (ev)->iova_last, (ev)->gpa, (ev)->prot, (rc)))  \
            vi_trace_##name((v), (index), (ev), (rc));                                             \
    } while (0)

/* translate.c: the event queue. */
void vi_events_drop(viommu *v);

/* virtqueue.c: pops one chain of the event queue, writes @len bytes
 * of @data into it and pushes it. Returns 0; -EAGAIN when the chain was
 * too small (returned with used length 0: try the next); -ENOENT when
 * no chain is available; -EIO when the ring is broken. Sets *notify. */
int vi_vq_push_event(viommu_vq *vq, const void *data, size_t len, bool *notify);

/* Copies between iovec lists and flat buffers; return bytes copied. */
size_t vi_iov_size_walk(const struct iovec *iov, size_t count);
size_t vi_iov_read_walk(const struct iovec *iov, size_t count, size_t offset, void *buf,
                        size_t len);
size_t vi_iov_write_walk(const struct iovec *iov, size_t count, size_t offset, const void *buf,
                         size_t len);

/* The bytes of an iovec list, saturated at SIZE_MAX. Inline for the
 * usual case, a single buffer. */
static inline size_t vi_iov_size(const struct iovec *iov, size_t count)
{
    return count == 1 ? iov[0].iov_len : vi_iov_size_walk(iov, count);
}

/* Copies up to @len bytes at @offset of the iovec list out to @buf;
 * returns the bytes copied. Inline for the usual case, a request that
 * lies in its first buffer: the copy then has the caller's constant size. */
static inline size_t vi_iov_read(const struct iovec *iov, size_t count, size_t offset, void *buf,
                                 size_t len)
{
    if (count && offset <= iov[0].iov_len && len <= iov[0].iov_len - offset) {
        memcpy(buf, (const uint8_t *)iov[0].iov_base + offset, len);
        return len;
    }
    return vi_iov_read_walk(iov, count, offset, buf, len);
}

/* Copies @len bytes from @buf into the iovec list at @offset; returns the
 * bytes copied. */
static inline size_t vi_iov_write(const struct iovec *iov, size_t count, size_t offset,
                                  const void *buf, size_t len)
{
    if (count && offset <= iov[0].iov_len && len <= iov[0].iov_len - offset) {
        memcpy((uint8_t *)iov[0].iov_base + offset, buf, len);
        return len;
    }
    return vi_iov_write_walk(iov, count, offset, buf, len);
}
size_t vi_iov_fill(const struct iovec *iov, size_t count, size_t offset, uint8_t byte, size_t len);

#endif /* VIOMMU_INTERNAL_H */

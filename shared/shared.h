/* SPDX-License-Identifier: MIT */
/*
 * shared.h - the code both halves of the project use: inclusive u64
 * ranges, the interval map, bitmaps and the mapping-listener interface.
 *
 * Conventions: functions return 0 or a negative errno unless documented
 * otherwise; every range is inclusive, [first, last], so the whole u64
 * space [0, UINT64_MAX] is a valid range whose size does not fit in 64 bits.
 */
#ifndef SHARED_H
#define SHARED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(SHARED_BUILDING) && defined(__GNUC__)
#define SHARED_API __attribute__((visibility("default")))
#else
#define SHARED_API
#endif

/* ------------------------------------------------------------------ */
/* Inclusive u64 ranges                                                */
/* ------------------------------------------------------------------ */

/**
 * u64_range - an inclusive range [first, last]; valid when first <= last.
 */
typedef struct u64_range {
    uint64_t first;
    uint64_t last;
} u64_range;

/**
 * u64_range_from_size - the range of @size bytes starting at @start.
 * @out: receives the range.
 *
 * Returns 0, -EINVAL when @size is 0, or -EOVERFLOW when
 * start + size - 1 does not fit in 64 bits.
 */
SHARED_API int u64_range_from_size(uint64_t start, uint64_t size, u64_range *out);

/**
 * u64_range_size - the number of bytes in @r.
 * @size: receives last - first + 1.
 *
 * Returns 0, or -EOVERFLOW for [0, UINT64_MAX] (2^64 bytes; *size is
 * then left untouched).
 */
SHARED_API int u64_range_size(u64_range r, uint64_t *size);

/** u64_range_valid - true when first <= last. */
static inline bool u64_range_valid(u64_range r)
{
    return r.first <= r.last;
}

/** u64_range_contains - true when @addr lies in @r. */
static inline bool u64_range_contains(u64_range r, uint64_t addr)
{
    return r.first <= addr && addr <= r.last;
}

/** u64_range_overlaps - true when @a and @b share at least one address. */
static inline bool u64_range_overlaps(u64_range a, u64_range b)
{
    return a.first <= b.last && b.first <= a.last;
}

/** u64_range_covers - true when every address of @inner is in @outer. */
static inline bool u64_range_covers(u64_range outer, u64_range inner)
{
    return outer.first <= inner.first && inner.last <= outer.last;
}

/**
 * u64_range_intersect - the addresses @a and @b share.
 * Returns true and fills @out when they overlap, false otherwise.
 */
SHARED_API bool u64_range_intersect(u64_range a, u64_range b, u64_range *out);

/**
 * u64_add_overflows - true when a + b does not fit in 64 bits; else
 * stores the sum in @sum (which may be NULL).
 */
static inline bool u64_add_overflows(uint64_t a, uint64_t b, uint64_t *sum)
{
    uint64_t s;
    bool of = __builtin_add_overflow(a, b, &s);
    if (!of && sum)
        *sum = s;
    return of;
}

/**
 * u64_range_aligned - true when first and last + 1 are multiples of
 * @granule (a power of two). last + 1 == 2^64 counts as aligned.
 */
static inline bool u64_range_aligned(u64_range r, uint64_t granule)
{
    uint64_t mask = granule - 1;
    return (r.first & mask) == 0 && ((r.last + 1) & mask) == 0;
}

/* ------------------------------------------------------------------ */
/* Interval map                                                        */
/* ------------------------------------------------------------------ */

/**
 * interval_map - non-overlapping inclusive [start, end] keys over the
 * whole u64 space, each carrying a fixed-size value stored inline.
 *
 * A B+tree keyed by start: lookups, inserts and removes are logarithmic,
 * lookups never allocate, and an entry costs its key (16 bytes) plus its
 * value, at the nodes' fill factor. Leaves are linked, so iterating a
 * range in address order walks contiguous memory.
 *
 * Memory: nodes come from the map's own chunks (each about an eighth of
 * what the map already holds; 2 MiB chunks advised as transparent huge
 * pages once the map holds 16 MiB, because random lookups in a large map
 * otherwise miss the TLB at every level). Nodes freed by removes are
 * reused by later inserts. When removes leave the chunks four times
 * larger than the nodes need, the tree is rebuilt, packed, into new
 * chunks (O(1) amortized per remove), and an empty map holds none.
 * interval_map_memory() counts whole chunks.
 *
 * Pointers to values returned by lookups and iterators stay valid until
 * the next insert, remove or clear on the same map.
 */
typedef struct interval_map interval_map;

/** The largest value size an interval map accepts, in bytes. */
#define INTERVAL_MAP_MAX_VALUE 64

/**
 * interval_map_new - an empty map whose entries carry @value_size bytes
 * (0 .. INTERVAL_MAP_MAX_VALUE). Returns NULL when @value_size is too
 * large or memory is short. The caller owns the map.
 */
SHARED_API interval_map *interval_map_new(size_t value_size);

/** interval_map_free - frees @map and every entry; NULL is allowed. */
SHARED_API void interval_map_free(interval_map *map);

/** interval_map_value_size - the value size given at creation. */
SHARED_API size_t interval_map_value_size(const interval_map *map);

/**
 * interval_map_insert - adds [start, end] carrying a copy of
 * @value (value_size bytes; may be NULL when value_size is 0).
 *
 * Returns 0; -EINVAL when start > end; -EEXIST when the range overlaps
 * an entry (the map is unchanged); -ENOMEM.
 */
SHARED_API int interval_map_insert(interval_map *map, uint64_t start, uint64_t end,
                                   const void *value);

/**
 * interval_map_find - the entry containing @addr.
 * @range: receives the entry's key when found (may be NULL).
 *
 * Returns a pointer to the entry's value (valid until the map is next
 * modified; writable in place), or NULL when no entry contains @addr.
 * When value_size is 0 a non-NULL dummy pointer signals a hit.
 */
SHARED_API void *interval_map_find(const interval_map *map, uint64_t addr, u64_range *range);

/**
 * interval_map_find_first - the lowest entry overlapping [first, last].
 * Returns its value and fills @range, or NULL when none overlaps.
 */
SHARED_API void *interval_map_find_first(const interval_map *map, uint64_t first, uint64_t last,
                                         u64_range *range);

/**
 * interval_map_remove - removes the entry whose key starts exactly at
 * @start. @value_out (may be NULL) receives a copy of its value.
 * Returns 0, or -ENOENT when no entry starts at @start.
 */
SHARED_API int interval_map_remove(interval_map *map, uint64_t start, void *value_out);

/**
 * interval_map_removed_fn - told of each entry interval_map_remove_within
 * removed: its key and a copy of its value. It must not modify the map.
 */
typedef void (*interval_map_removed_fn)(void *opaque, const u64_range *range, const void *value);

/**
 * interval_map_remove_within - removes every entry overlapping
 * [first, last], provided each lies wholly inside it.
 * @fn: called after each removal, in address order (may be NULL).
 *
 * All or nothing: when an entry overlapping the range starts before
 * @first or ends after @last, nothing is removed. One descent of the tree
 * serves the usual case of a range that holds exactly one entry.
 *
 * Returns the number of entries removed (0 when none overlaps), -ERANGE
 * when an overlapping entry extends outside the range, or -EINVAL when
 * @first > @last.
 */
SHARED_API int interval_map_remove_within(interval_map *map, uint64_t first, uint64_t last,
                                          interval_map_removed_fn fn, void *opaque);

/** interval_map_count - the number of entries. */
SHARED_API size_t interval_map_count(const interval_map *map);

/** interval_map_clear - removes every entry. */
SHARED_API void interval_map_clear(interval_map *map);

/**
 * interval_map_memory - bytes the map currently holds from the system
 * for its nodes (whole chunks, used or not) and bookkeeping (for
 * benchmarks and budgets).
 */
SHARED_API size_t interval_map_memory(const interval_map *map);

/**
 * interval_map_iter - walks the entries overlapping a range in address
 * order. Lives on the caller's stack; no allocation. Modifying the map
 * invalidates it.
 */
typedef struct interval_map_iter {
    const interval_map *map;
    void *leaf;
    unsigned idx;
    uint64_t last;
} interval_map_iter;

/** interval_map_iter_init - positions @it before the first entry overlapping [first, last]. */
SHARED_API void interval_map_iter_init(interval_map_iter *it, const interval_map *map,
                                       uint64_t first, uint64_t last);

/**
 * interval_map_iter_next - the next overlapping entry: fills @range and
 * returns its value pointer, or NULL when the walk is over.
 */
SHARED_API void *interval_map_iter_next(interval_map_iter *it, u64_range *range);

/* ------------------------------------------------------------------ */
/* Bitmaps, a 64-bit word at a time                                    */
/* ------------------------------------------------------------------ */

/** Words needed for @nbits bits. */
#define BITMAP_WORDS(nbits) (((nbits) + 63) / 64)

/** bitmap_set_range - sets bits [first, first + count). */
SHARED_API void bitmap_set_range(uint64_t *map, uint64_t first, uint64_t count);

/** bitmap_clear_range - clears bits [first, first + count). */
SHARED_API void bitmap_clear_range(uint64_t *map, uint64_t first, uint64_t count);

/** bitmap_test - the value of bit @bit. */
static inline bool bitmap_test(const uint64_t *map, uint64_t bit)
{
    return (map[bit / 64] >> (bit % 64)) & 1;
}

/** bitmap_test_range_any - true when any bit of [first, first + count) is set. */
SHARED_API bool bitmap_test_range_any(const uint64_t *map, uint64_t first, uint64_t count);

/**
 * bitmap_or_at - ORs @nbits bits of @src (starting at its bit 0) into
 * @dst starting at bit @dst_offset. @src may hold garbage past @nbits:
 * those bits are ignored.
 */
SHARED_API void bitmap_or_at(uint64_t *dst, uint64_t dst_offset, const uint64_t *src,
                             uint64_t nbits);

/**
 * bitmap_extract - copies bits [first, first + nbits) of @src to bits
 * [0, nbits) of @dst (which must hold BITMAP_WORDS(nbits) words; bits
 * of its last word past @nbits become 0). Never reads @src past the
 * word holding bit first + nbits - 1.
 */
SHARED_API void bitmap_extract(uint64_t *dst, const uint64_t *src, uint64_t first, uint64_t nbits);

/** bitmap_count - the number of set bits in [0, nbits). */
SHARED_API uint64_t bitmap_count(const uint64_t *map, uint64_t nbits);

/**
 * bitmap_next_set - the index of the first set bit at or after @from
 * and below @nbits, or @nbits when there is none.
 */
SHARED_API uint64_t bitmap_next_set(const uint64_t *map, uint64_t nbits, uint64_t from);

/** Iterates every set bit of [0, nbits) in ascending order. */
#define BITMAP_FOREACH_SET(bit, map, nbits)                                                        \
    for ((bit) = bitmap_next_set((map), (nbits), 0); (bit) < (nbits);                              \
         (bit) = bitmap_next_set((map), (nbits), (bit) + 1))

/* ------------------------------------------------------------------ */
/* Guest memory map and dirty log                                      */
/* ------------------------------------------------------------------ */

/**
 * guest_mem - the VMM's guest RAM: regions of guest-physical space, each
 * backed by a host mapping and (optionally) a file descriptor that can
 * be passed to another process, plus a dirty log per region: one bit
 * per page of the log's page size, set by whoever learns that a page
 * was written behind the VMM's back (a vfio-user device's bitmap).
 *
 * Not thread-safe: the caller serializes access.
 */
typedef struct guest_mem guest_mem;

/** guest_mem_region - one RAM region, as registered. */
typedef struct guest_mem_region {
    uint64_t gpa;       /* first guest-physical byte */
    uint64_t size;      /* bytes, > 0 */
    int fd;             /* backing fd, or -1 when the region has none */
    uint64_t fd_offset; /* offset of gpa within fd */
    void *host;         /* host address of gpa, or NULL */
} guest_mem_region;

/**
 * guest_mem_new - an empty map whose dirty log tracks pages of
 * @page_size bytes (a power of two, >= 1). Returns NULL when
 * @page_size is not a power of two or memory is short.
 */
SHARED_API guest_mem *guest_mem_new(uint64_t page_size);

/** guest_mem_free - frees @gm; the fds and host mappings stay the caller's. NULL is allowed. */
SHARED_API void guest_mem_free(guest_mem *gm);

/** guest_mem_page_size - the dirty log's page size. */
SHARED_API uint64_t guest_mem_page_size(const guest_mem *gm);

/**
 * guest_mem_add - registers a RAM region. The fd and the host mapping
 * stay owned by the caller and must outlive the region.
 *
 * Returns 0; -EINVAL when @size is 0, the range wraps past 2^64, or gpa
 * and size are not multiples of the log's page size; -EEXIST when it
 * overlaps a registered region; -ENOMEM.
 */
SHARED_API int guest_mem_add(guest_mem *gm, uint64_t gpa, uint64_t size, int fd, uint64_t fd_offset,
                             void *host);

/** guest_mem_remove - unregisters the region starting at @gpa. Returns 0 or -ENOENT. */
SHARED_API int guest_mem_remove(guest_mem *gm, uint64_t gpa);

/** guest_mem_count - the number of regions. */
SHARED_API size_t guest_mem_count(const guest_mem *gm);

/**
 * guest_mem_find - the region containing @gpa, or NULL. The region
 * belongs to @gm and stays valid until the next guest_mem_add() or
 * guest_mem_remove().
 */
SHARED_API const guest_mem_region *guest_mem_find(const guest_mem *gm, uint64_t gpa);

/**
 * guest_mem_piece_fn - receives one piece of a guest-physical range
 * that lies in one region: [gpa, gpa + len) at byte @offset of region @r.
 * Returns 0 to continue, anything else to stop the walk with that value.
 */
typedef int (*guest_mem_piece_fn)(void *opaque, const guest_mem_region *r, uint64_t gpa,
                                  uint64_t len, uint64_t offset);

/**
 * guest_mem_for_each_piece - splits [first, last] at region boundaries
 * and calls @fn for each piece in address order.
 *
 * Returns 0; -EFAULT (before any call) when part of the range is not
 * RAM; -EINVAL when first > last; or the first non-zero value @fn
 * returned.
 */
SHARED_API int guest_mem_for_each_piece(const guest_mem *gm, uint64_t first, uint64_t last,
                                        guest_mem_piece_fn fn, void *opaque);

/**
 * guest_mem_rw - copies @len bytes between @buf and guest RAM at @gpa
 * (to RAM when @write), across regions as needed; a write marks the
 * pages dirty. Returns 0, or -EFAULT when any byte is not RAM with a
 * host mapping (nothing is copied then).
 */
SHARED_API int guest_mem_rw(guest_mem *gm, uint64_t gpa, void *buf, uint64_t len, bool write);

/**
 * guest_mem_dirty_mark - marks every log page touching [first, last]
 * dirty. Parts outside RAM are skipped. Returns the number of RAM log
 * pages the range touches.
 */
SHARED_API uint64_t guest_mem_dirty_mark(guest_mem *gm, uint64_t first, uint64_t last);

/**
 * guest_mem_dirty_fold - ORs part of a device's dirty bitmap into the
 * log: bit first_bit + i of @bits (i < @nbits) stands for the @pgsize
 * bytes at gpa + i * pgsize. When pgsize equals the log's page size and the
 * pages are aligned and in one region, the bitmap is ORed a word at a
 * time; otherwise each set bit marks every log page it covers (a
 * coarser pgsize marks more pages, never fewer).
 *
 * Returns 0, or -EINVAL when @pgsize is not a power of two or the
 * range wraps past 2^64.
 */
SHARED_API int guest_mem_dirty_fold(guest_mem *gm, uint64_t gpa, uint64_t pgsize,
                                    const uint64_t *bits, uint64_t first_bit, uint64_t nbits);

/** guest_mem_dirty_count - the number of dirty log pages over all regions. */
SHARED_API uint64_t guest_mem_dirty_count(const guest_mem *gm);

/**
 * guest_mem_dirty_test - true when the log page containing @gpa is
 * dirty (false outside RAM).
 */
SHARED_API bool guest_mem_dirty_test(const guest_mem *gm, uint64_t gpa);

/**
 * guest_mem_dirty_page_fn - receives the guest-physical address of one
 * dirty log page. Returns 0 to continue, anything else to stop.
 */
typedef int (*guest_mem_dirty_page_fn)(void *opaque, uint64_t gpa);

/**
 * guest_mem_dirty_collect - calls @fn for every dirty log page in
 * ascending address order, then clears the log when @clear. Returns 0
 * or the first non-zero value @fn returned (the log is then not cleared).
 */
SHARED_API int guest_mem_dirty_collect(guest_mem *gm, bool clear, guest_mem_dirty_page_fn fn,
                                       void *opaque);

/** guest_mem_dirty_clear - clears the whole log. */
SHARED_API void guest_mem_dirty_clear(guest_mem *gm);

/* ------------------------------------------------------------------ */
/* Mapping listeners                                                   */
/* ------------------------------------------------------------------ */

/* Protection bits of a mapping event (same values as the virtio-iommu MAP flags). */
#define MAPPING_PROT_READ (1u << 0)
#define MAPPING_PROT_WRITE (1u << 1)
#define MAPPING_PROT_MMIO (1u << 2)

/**
 * mapping_event - one IOVA range of one endpoint gaining or losing a
 * translation. All values in host byte order.
 */
typedef struct mapping_event {
    uint32_t endpoint;  /* endpoint ID the event concerns */
    uint32_t domain;    /* domain holding the mapping */
    uint64_t iova;      /* first IOVA byte */
    uint64_t iova_last; /* last IOVA byte, inclusive */
    uint64_t gpa;       /* guest-physical address of iova */
    uint32_t prot;      /* MAPPING_PROT_* */
    uint32_t seq;       /* index of the causing request within its batch */
} mapping_event;

/**
 * mapping_failed_fn - called by a listener's batch_end for each map it
 * had accepted but could not complete; @err is a negative errno
 * (-ENOSPC / -ENOMEM: out of resources; anything else: an I/O failure).
 */
typedef void (*mapping_failed_fn)(void *fail_opaque, const mapping_event *ev, int err);

/**
 * mapping_listener_ops - how a device model tells a consumer (a
 * vfio-user device, an emulated device's IOTLB, vhost, ...) that an
 * endpoint's translations change. Events arrive between batch_begin
 * and batch_end, one batch per queue notification.
 *
 * @batch_begin: a batch starts (may be NULL).
 * @map: @ev becomes reachable. Returns 0 when accepted (it may be sent
 *   later, at batch_end), or a negative errno to refuse it now
 *   (-ENOSPC/-ENOMEM: out of resources, e.g. a backend's region limit;
 *   other: I/O failure). A refused map is rolled back by the caller,
 *   which then sends no unmap for it.
 * @unmap: @ev is no longer reachable by the guest. Returns 0 or a
 *   negative errno; the range is gone from the guest's view either way.
 * @batch_end: completes the batch: returns only once every accepted
 *   event is acknowledged by the consumer. For each accepted map that
 *   failed, it calls @failed; the caller rolls those back (with unmap
 *   events to the listeners that hold them). Returns 0 or the first
 *   failure's negative errno.
 */
typedef struct mapping_listener_ops {
    void (*batch_begin)(void *opaque);
    int (*map)(void *opaque, const mapping_event *ev);
    int (*unmap)(void *opaque, const mapping_event *ev);
    int (*batch_end)(void *opaque, mapping_failed_fn failed, void *fail_opaque);
} mapping_listener_ops;

/** mapping_listener - an ops table and its opaque pointer. */
typedef struct mapping_listener {
    const mapping_listener_ops *ops;
    void *opaque;
} mapping_listener;

/* ------------------------------------------------------------------ */
/* Trace events                                                        */
/* ------------------------------------------------------------------ */

/*
 * Every event is defined once, in trace-events.h. Code fires an event
 * with TRACE(name, fields...) in the order the event's field list gives;
 * while tracing is off that costs one load and one predicted branch, and
 * the arguments are not evaluated. While it is on, the event goes to the
 * USDT probe viommu:<name> and to every output enabled below: text lines,
 * JSON Lines, a callback. Timestamps are nanoseconds of the trace clock
 * (trace_now_ns) since tracing was last turned on from fully off. A file
 * output (trace_open_path) is formatted and written by a thread of the
 * library: the firing thread only copies the event's fields into a ring
 * of its own, taking no lock.
 *
 * The USDT probes sit in libviommu-shared.so (provider "viommu", probe =
 * event name, arguments = fields in order), behind the same branch. Each
 * probe has a semaphore that the branch also tests, so bpftrace or perf
 * can attach to a running process that was started without tracing and
 * the probe fires from then on; trace_set_usdt(true), `--trace=usdt`,
 * fires every probe whether a tracer is attached or not.
 *
 * The configuration functions and the events may be used from any
 * thread; outputs see events one at a time, in the order they fired,
 * with timestamps that never decrease.
 */

#include <stdio.h>

#include "trace-events.h"

/* GLib's error type, without making every user of shared.h include glib.h. */
typedef struct _GError GError;

/** trace_event_id - TRACE_EV_<name> for each event, in definition order. */
#define TRACE_ENUM_ENTRY_(name, doc) TRACE_EV_##name,
typedef enum trace_event_id {
    TRACE_EVENT_LIST(TRACE_ENUM_ENTRY_) TRACE_EVENT_COUNT
} trace_event_id;

/** trace_<name>_fields - the typed fields of each event, in definition order. */
#define TRACE_FIELDS_STRUCT_(name, doc)                                                            \
    typedef struct trace_##name##_fields {                                                         \
        TRACE_FIELDS_##name(TRACE_F_MEMBER, TRACE_SEP_NONE)                                        \
    } trace_##name##_fields;
TRACE_EVENT_LIST(TRACE_FIELDS_STRUCT_)

/**
 * trace_event - one decoded event: what callbacks receive and what the
 * JSON Lines reader produces. u.<name> holds the fields of event @id.
 */
#define TRACE_UNION_MEMBER_(name, doc) trace_##name##_fields name;
typedef struct trace_event {
    trace_event_id id;
    uint64_t ts_ns; /* nanoseconds since tracing started */
    union {
        TRACE_EVENT_LIST(TRACE_UNION_MEMBER_)
    } u;
} trace_event;

/** trace_field_kind - TRACE_KIND_<KIND> for the kinds trace-events.h lists. */
typedef enum trace_field_kind {
    TRACE_KIND_U32,
    TRACE_KIND_I32,
    TRACE_KIND_U64,
    TRACE_KIND_ADDR,
    TRACE_KIND_FLAGS,
    TRACE_KIND_REQ,
    TRACE_KIND_STATUS,
} trace_field_kind;

/**
 * trace_field_info - one field of an event: its name (also its JSON key),
 * its one-line description, its kind, and where it lies in the event's
 * trace_<name>_fields struct.
 */
typedef struct trace_field_info {
    const char *name;
    const char *doc;
    trace_field_kind kind;
    uint16_t offset;
    uint16_t size; /* 4 or 8 */
} trace_field_info;

/**
 * trace_enabled_flag - nonzero while any output is on. Read it through
 * trace_enabled(); change it only through the functions below.
 */
SHARED_API extern int trace_enabled_flag;

/**
 * trace_enabled - true while any output is on. Code that computes a
 * field only for tracing (a clock read for a latency) tests this first.
 */
static inline bool trace_enabled(void)
{
    return __builtin_expect(__atomic_load_n(&trace_enabled_flag, __ATOMIC_RELAXED) != 0, 0);
}

/**
 * viommu_<name>_semaphore - the USDT semaphore of probe viommu:<name>.
 * A tracer (bpftrace, perf, systemtap) increments it while it is attached
 * to the probe and decrements it when it leaves, so a process that was
 * started without tracing fires the probe as soon as a tracer attaches.
 * Read-only for everything but tracers.
 */
#define TRACE_SEMAPHORE_DECL_(name, doc) SHARED_API extern unsigned short viommu_##name##_semaphore;
TRACE_EVENT_LIST(TRACE_SEMAPHORE_DECL_)

/**
 * trace_event_wanted - true while any output is on or a tracer is
 * attached to the event's probe: two loads, OR-ed so there is one branch.
 */
#define trace_event_wanted(name)                                                                   \
    __builtin_expect((__atomic_load_n(&trace_enabled_flag, __ATOMIC_RELAXED) |                     \
                      __atomic_load_n(&viommu_##name##_semaphore, __ATOMIC_RELAXED)) != 0,         \
                     0)

/*
 * trace_<name>_fire - emits event <name> unconditionally (USDT probe and
 * the enabled outputs), timestamped when it reaches the outputs. Call it
 * through TRACE().
 *
 * trace_<name>_fire_at - the same with the event's time @ts_ns given by
 * the caller, a trace_now_ns() reading it already has (0: read the clock
 * as trace_<name>_fire does). Call it through TRACE_AT().
 */
#define TRACE_FIRE_DECL_(name, doc)                                                                \
    SHARED_API void trace_##name##_fire(TRACE_FIELDS_##name(TRACE_F_PARAM, TRACE_SEP_COMMA));      \
    SHARED_API void trace_##name##_fire_at(uint64_t ts_ns,                                         \
                                           TRACE_FIELDS_##name(TRACE_F_PARAM, TRACE_SEP_COMMA));
TRACE_EVENT_LIST(TRACE_FIRE_DECL_)

/**
 * TRACE - fires event @name with its fields, in definition order, when
 * tracing is on or a tracer is attached to its probe; the arguments are
 * evaluated only then.
 *
 *   TRACE(request_done, type, domain, endpoint, virt_start, virt_end,
 *         phys_start, flags, status, latency_ns, batch);
 */
/*
 * TRACE_AT - TRACE with the event's time: @ts_ns, a trace_now_ns()
 * reading the caller took anyway (for a latency field, or once for
 * several events that happened at the same instant), saves the event its
 * own clock read. Events reach the outputs with non-decreasing
 * timestamps: a time older than an event another thread fired meanwhile
 * is raised to that event's.
 */
#ifndef TRACE_COMPILED_OUT
#define TRACE(name, ...) (trace_event_wanted(name) ? trace_##name##_fire(__VA_ARGS__) : (void)0)
#define TRACE_AT(name, ts_ns, ...)                                                                 \
    (trace_event_wanted(name) ? trace_##name##_fire_at((ts_ns), __VA_ARGS__) : (void)0)
#else
/* A build that measures what tracing costs compiles every event out; the
 * unevaluated sizeof keeps the arguments type-checked and "used". */
#undef trace_event_wanted
#define trace_event_wanted(name) 0
#define TRACE(name, ...) ((void)sizeof((trace_##name##_fire(__VA_ARGS__), 0)))
#define TRACE_AT(name, ts_ns, ...) ((void)sizeof((trace_##name##_fire_at((ts_ns), __VA_ARGS__), 0)))
#endif

/** trace_format - the line formats of stream outputs. */
typedef enum trace_format {
    TRACE_FORMAT_TEXT,  /* "<s.ns> <event> field=value ..." */
    TRACE_FORMAT_JSONL, /* {"ts":N,"event":"<name>","<field>":value,...} */
} trace_format;

/** The longest line (newline included) either format produces. */
#define TRACE_LINE_MAX 640

/** trace_error_quark - the GError domain of trace errors (TRACE_ERROR_*). */
SHARED_API uint32_t trace_error_quark(void);
#define TRACE_ERROR (trace_error_quark())
enum {
    TRACE_ERROR_SPEC,  /* a trace specification string is invalid */
    TRACE_ERROR_PARSE, /* a JSON Lines line is malformed */
};

/**
 * trace_set_stream - writes every event as a @format line to @stream,
 * replacing any earlier stream of that format (which is flushed, and
 * closed when trace_open_path opened it). @stream NULL turns the format
 * off. The caller keeps ownership of @stream and must keep it open until
 * it is replaced or tracing stops.
 *
 * Returns 0, or -EINVAL for an unknown @format.
 */
SHARED_API int trace_set_stream(trace_format format, FILE *stream);

/**
 * trace_open_path - like trace_set_stream with a file the library
 * creates (truncating it) at @path and closes when replaced or stopped.
 * A thread of the library formats and writes it, so the firing thread
 * only copies the event's fields into a ring of its own (1.25 MiB, made
 * at its first event for a file, freed when it exits): lines reach the
 * file within 0.1 s, and at the latest when trace_flush or trace_stop
 * returns (trace_flush waits for every event fired before it, those of
 * a request batch still running aside). Events are never dropped: a
 * thread that outruns the writer waits for room. Events whose time is
 * before the file was opened are not written to it.
 *
 * Returns 0; -EINVAL for an unknown @format; or the negative errno of the
 * failed open (-EAGAIN: no writer thread), with @error (may be NULL) set
 * in the G_FILE_ERROR domain.
 */
SHARED_API int trace_open_path(trace_format format, const char *path, GError **error);

/**
 * trace_callback_fn - receives each event. It runs on the thread that
 * fired the event, with the trace lock held: it must neither fire events
 * nor call the trace_* configuration functions. @ev is valid during the
 * call only.
 */
typedef void (*trace_callback_fn)(void *opaque, const trace_event *ev);

/**
 * trace_set_callback - calls @fn(@opaque, event) for every event,
 * replacing any earlier callback; @fn NULL turns the callback off. When
 * this returns, the earlier callback is no longer running or called.
 */
SHARED_API void trace_set_callback(trace_callback_fn fn, void *opaque);

/**
 * trace_set_usdt - with @on, fires the USDT probes even when no other
 * output is on, so bpftrace or perf can attach to the running process;
 * this costs a function call per event. Probes fire whenever tracing is
 * on, whatever this setting.
 */
SHARED_API void trace_set_usdt(bool on);

/**
 * trace_usdt_available - true when the library was built with USDT
 * probes (sys/sdt.h was found).
 */
SHARED_API bool trace_usdt_available(void);

/**
 * trace_configure - enables the outputs a specification names, the
 * argument of `viommu --trace=`: comma-separated items
 *   usdt           the USDT probes only (see trace_set_usdt)
 *   text[=PATH]    text lines to PATH, or standard error
 *   jsonl[=PATH]   JSON Lines to PATH, or standard error
 *   off            everything off (as trace_stop)
 * PATH "-" is standard output; a PATH cannot contain a comma. Items are
 * applied in order; outputs not named keep their state.
 *
 * Returns 0; -EINVAL with @error set (TRACE_ERROR_SPEC) for an unknown
 * item, leaving every output as it was; or the negative errno of a failed
 * open, with @error set, after applying the items before it.
 */
SHARED_API int trace_configure(const char *spec, GError **error);

/**
 * trace_flush - flushes the stream outputs: when it returns, every event
 * fired before the call is in the files. Returns 0, or the negative errno
 * of the first write or flush failure since the last trace_flush (-EIO
 * when the stream does not say).
 */
SHARED_API int trace_flush(void);

/**
 * trace_stop - turns every output off: flushes the streams, closes the
 * ones trace_open_path opened, forgets the callback. The next output
 * turned on restarts the timestamps at 0.
 */
SHARED_API void trace_stop(void);

/**
 * trace_now_ns - the trace clock in nanoseconds, for latency fields and
 * TRACE_AT: CLOCK_MONOTONIC, read through the TSC where the kernel's own
 * clocksource is the TSC (x86-64; VIOMMU_TRACE_TSC=0 in the environment
 * turns that off), with a rate measured against CLOCK_MONOTONIC and
 * re-anchored to it at least every 0.1 s. A reading is within the rate's
 * error over that interval of clock_gettime(CLOCK_MONOTONIC) (a few
 * microseconds in the first milliseconds, nanoseconds once calibrated);
 * a re-anchoring may set it back by that much.
 */
SHARED_API uint64_t trace_now_ns(void);

/**
 * trace_ring - a thread's ring of events bound for the trace files
 * (trace_open_path). Its layout is private to the project's libraries,
 * which share it through trace-internal.h: the device writes the events
 * of a request batch straight into the ring of the thread that runs it,
 * with no call per event. Only these four functions cross the libraries'
 * boundary.
 *
 * trace_thread_ring - the calling thread's ring while the trace files are
 * the only outputs that want events (no synchronous stream, no callback),
 * else NULL. trace_ring_publish - hands the events staged in @r to the
 * writer thread. trace_ring_copy_group - copies the group of events just
 * staged in @r into the ring. trace_ring_wait_room - waits until @r has
 * room; false when no file output is on any more.
 */
typedef struct trace_ring trace_ring;
SHARED_API trace_ring *trace_thread_ring(void);
SHARED_API void trace_ring_publish(trace_ring *r);
SHARED_API void trace_ring_copy_group(trace_ring *r);
SHARED_API bool trace_ring_wait_room(trace_ring *r);

/** trace_event_name - the name of @id, or NULL when @id is not an event. */
SHARED_API const char *trace_event_name(trace_event_id id);

/** trace_event_doc - the one-line description of @id, or NULL. */
SHARED_API const char *trace_event_doc(trace_event_id id);

/**
 * trace_event_lookup - the event called @name (@len bytes, no NUL needed).
 * Returns 0 and fills @id, or -ENOENT.
 */
SHARED_API int trace_event_lookup(const char *name, size_t len, trace_event_id *id);

/**
 * trace_event_fields - the fields of @id, in definition order (static
 * storage), with their number in @count. NULL (count 0) when @id is not
 * an event.
 */
SHARED_API const trace_field_info *trace_event_fields(trace_event_id id, unsigned *count);

/**
 * trace_event_field_value - field @index of @ev widened to 64 bits (I32
 * sign-extended: cast to int64_t to read it).
 * Returns 0, or -EINVAL when @ev->id or @index is out of range.
 */
SHARED_API int trace_event_field_value(const trace_event *ev, unsigned index, uint64_t *value);

/**
 * trace_event_format - writes @ev as one @format line, newline included,
 * NUL-terminated, into @buf (TRACE_LINE_MAX bytes always suffice).
 *
 * Returns the line's length without the NUL; -EINVAL for an unknown
 * event or format; -ENOSPC when @size is too small (@buf then holds a
 * truncated, NUL-terminated prefix when @size > 0).
 */
SHARED_API int trace_event_format(const trace_event *ev, trace_format format, char *buf,
                                  size_t size);

/**
 * trace_event_parse_json - decodes one JSON Lines line (@len bytes; a
 * trailing "\n" or "\r\n" is allowed) as written by the JSONL output:
 * an object with "ts", "event" and every field of that event, each of
 * the documented JSON type and in range for its C type. Keys the event
 * does not define are ignored, so newer writers stay readable.
 *
 * Returns 0 and fills @ev, or -EINVAL with @error (may be NULL) set to a
 * TRACE_ERROR_PARSE message naming the column and what was wrong; @ev is
 * then unspecified.
 */
SHARED_API int trace_event_parse_json(const char *line, size_t len, trace_event *ev,
                                      GError **error);

#ifdef __cplusplus
}
#endif

#endif /* SHARED_H */

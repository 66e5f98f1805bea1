/* SPDX-License-Identifier: MIT */
/*
 * trace-internal.h - helpers the trace modules share, not exported.
 */
#ifndef SHARED_TRACE_INTERNAL_H
#define SHARED_TRACE_INTERNAL_H

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "shared.h"

/* Field @f of @ev widened to 64 bits (I32 sign-extended). */
static inline uint64_t trace_field_load(const trace_event *ev, const trace_field_info *f)
{
    const unsigned char *base = (const unsigned char *)&ev->u + f->offset;
    if (f->size == sizeof(uint64_t)) {
        uint64_t v;
        memcpy(&v, base, sizeof(v));
        return v;
    }
    if (f->kind == TRACE_KIND_I32) {
        int32_t v;
        memcpy(&v, base, sizeof(v));
        return (uint64_t)(int64_t)v;
    }
    uint32_t v;
    memcpy(&v, base, sizeof(v));
    return v;
}

/* Stores @value, truncated to the field's size, into field @f of @ev. */
static inline void trace_field_store(trace_event *ev, const trace_field_info *f, uint64_t value)
{
    unsigned char *base = (unsigned char *)&ev->u + f->offset;
    if (f->size == sizeof(uint64_t)) {
        memcpy(base, &value, sizeof(value));
    } else {
        uint32_t v = (uint32_t)value;
        memcpy(base, &v, sizeof(v));
    }
}

/*
 * The file outputs' path (trace_writer.c). Every thread that fires an
 * event while a file output is on copies it, still binary, into a ring
 * of its own; one writer thread drains the rings of every thread, merges
 * them by time, formats the lines and writes them to the open files. A
 * producer takes no lock and executes no atomic read-modify-write: it
 * stores the event into its next slot and publishes it with a release
 * store, so its cost is the stores themselves.
 */

/* Slots in a thread's ring: 1.25 MiB, a few milliseconds of events at
 * full speed, so a thread that outruns the writer waits seldom. The
 * streaming stores keep the ring out of the firing thread's cache, so
 * its size costs that thread no cache space. A power of two, a multiple
 * of TRACE_RING_GROUP; a test builds the writer with a small one, which
 * its threads fill all the time. */
#ifndef TRACE_RING_SLOTS
#define TRACE_RING_SLOTS (16u * 1024)
#endif
/* Events a producer stages before it copies them into its ring: 2560
 * bytes, whole cache lines. Divides TRACE_RING_SLOTS. */
#define TRACE_RING_GROUP 32u

/*
 * One thread's ring. The owner fills the slots of a private stage, which
 * stays in its cache, and copies each full group into the ring with
 * streaming stores (x86-64), which go to memory without taking the
 * lines: the writer's reads then never take a line the owner will write
 * again, which would make the owner's later stores wait for the other
 * core. Streaming stores need a fence before the count that publishes
 * them, and a fence waits until they reach memory: the owner publishes
 * when a request batch ends (trace_ring_publish), or once
 * TRACE_RING_PUBLISH_EVERY events wait, not at every group, so by then
 * the groups copied earlier are already in memory and one fence covers
 * them all. What it publishes before a group is full it copies with
 * plain stores, and a fire function's event, with nothing staged and no
 * fence owed, goes straight into the ring. Its fields, its published
 * count and the writer's position are on separate cache lines.
 */
struct trace_ring {
    trace_event *slots; /* ts_ns: the absolute trace clock reading */
    uint64_t head;      /* events put; the owner thread only */
    uint64_t copied;    /* events copied into slots */
    uint64_t announced; /* events published (the last store of published) */
    uint64_t tail_seen; /* the last tail the owner loaded */
    bool fence_owed;    /* streaming stores since the last fence */
    /* Event i is staged in stage[i % TRACE_RING_GROUP] until copied. */
    _Alignas(64) trace_event stage[TRACE_RING_GROUP];
    /* announced, as the writer sees it: a release store. */
    _Alignas(64) uint64_t published;
    /* The writer's position: a release store after it formatted slots. */
    _Alignas(64) uint64_t tail;
    /* slots, as the writer reads it: the writer never loads the owner's
     * line, whose next store would then wait for the other core. */
    const trace_event *events;
    /* Guarded by the writer's mutex. */
    struct trace_ring *next;
    bool dead; /* the owner thread exited */
};

/* Events copied into a ring and not yet published, at most: a batch with
 * many more events than a request batch's hands them over as it goes. A
 * test builds the writer with more than a ring holds, so only a full
 * ring publishes. */
#ifndef TRACE_RING_PUBLISH_EVERY
#define TRACE_RING_PUBLISH_EVERY (TRACE_RING_SLOTS / 8)
#endif

/* A new ring for the calling thread, registered with the writer. */
trace_ring *trace_ring_new(void);

/* The owner thread of @r exits: the writer frees @r once drained. */
void trace_ring_retire(trace_ring *r);

/* trace_ring_wait_room (shared.h) is the slow path of trace_ring_room;
 * trace_ring_publish (shared.h) copies the staged events into the ring
 * and publishes them; trace_ring_copy_group (shared.h) copies a full
 * group. */

/* True when @r has a free slot, waiting for one if it must. */
static inline bool trace_ring_room(trace_ring *r)
{
    if (__builtin_expect(r->head - r->tail_seen < TRACE_RING_SLOTS, 1))
        return true;
    r->tail_seen = __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE);
    return r->head - r->tail_seen < TRACE_RING_SLOTS || trace_ring_wait_room(r);
}

/* The stage slot of the next event; trace_ring_room must be true. */
static inline trace_event *trace_ring_stage(trace_ring *r)
{
    return &r->stage[r->head % TRACE_RING_GROUP];
}

/* Counts the event filled through trace_ring_stage, copying the group it
 * completes into the ring. */
static inline void trace_ring_staged(trace_ring *r)
{
    if (++r->head % TRACE_RING_GROUP == 0)
        trace_ring_copy_group(r);
}

/*
 * A run of stage slots for events put one after the other, as a loop
 * that fires many does without a call or a check per event:
 * trace_ring_stage_run gives the first slot and how many follow it (at
 * least one, at most @want and what is left of the current group and of
 * the room in the ring, waiting for room if it must; 0 when the files
 * went off while @r was full); the caller fills some of them (id, ts_ns,
 * fields) and counts them with trace_ring_staged_run.
 */
static inline size_t trace_ring_stage_run(trace_ring *r, size_t want, trace_event **first)
{
    if (!trace_ring_room(r))
        return 0;
    size_t room = TRACE_RING_SLOTS - (size_t)(r->head - r->tail_seen);
    size_t left = TRACE_RING_GROUP - (size_t)(r->head % TRACE_RING_GROUP);
    size_t k = want < left ? want : left;
    *first = &r->stage[r->head % TRACE_RING_GROUP];
    return k < room ? k : room;
}

static inline void trace_ring_staged_run(trace_ring *r, size_t k)
{
    r->head += k;
    if (k && r->head % TRACE_RING_GROUP == 0)
        trace_ring_copy_group(r);
}

/* Stages the @n whole events at @src, a run of stage slots at a time.
 * Returns how many it staged: fewer only when the files went off while
 * @r was full. */
static inline size_t trace_ring_put_events(trace_ring *r, const trace_event *src, size_t n)
{
    size_t done = 0;
    while (done < n) {
        trace_event *ev;
        size_t k = trace_ring_stage_run(r, n - done, &ev);
        if (!k)
            break;
        memcpy(ev, src + done, k * sizeof(*ev));
        trace_ring_staged_run(r, k);
        done += k;
    }
    return done;
}

/*
 * trace_ring_put_<name>(r, ts_ns, fields...) - stages event <name> with
 * time @ts_ns (a trace_now_ns() reading) in @r; the event is dropped only
 * when the files went off while @r was full. The writer sees it once
 * published (trace_ring_publish, or TRACE_RING_PUBLISH_EVERY events
 * later, or when @r is full). The fire functions
 * use them, and so can a hot loop of the project that took its thread's
 * ring from trace_thread_ring() once and publishes when it is done. Such
 * a caller must fire its events through TRACE() instead while a tracer
 * is attached to their USDT probes (their semaphores are nonzero): the
 * puts have no probes.
 */
/* Stages event <name> in @r, which has room: straight into the stage,
 * field by field. */
#define TRACE_RING_FILL_FN_(name, doc)                                                             \
    static inline void trace_ring_fill_##name(trace_ring *r, uint64_t ts_ns,                       \
                                              TRACE_FIELDS_##name(TRACE_F_PARAM, TRACE_SEP_COMMA)) \
    {                                                                                              \
        trace_event *ev = trace_ring_stage(r);                                                     \
        ev->id = TRACE_EV_##name;                                                                  \
        ev->ts_ns = ts_ns;                                                                         \
        ev->u.name = (trace_##name##_fields){TRACE_FIELDS_##name(TRACE_F_ARG, TRACE_SEP_COMMA)};   \
        trace_ring_staged(r);                                                                      \
    }
TRACE_EVENT_LIST(TRACE_RING_FILL_FN_)

#define TRACE_RING_PUT_FN_(name, doc)                                                              \
    static inline void trace_ring_put_##name(trace_ring *r, uint64_t ts_ns,                        \
                                             TRACE_FIELDS_##name(TRACE_F_PARAM, TRACE_SEP_COMMA))  \
    {                                                                                              \
        if (trace_ring_room(r))                                                                    \
            trace_ring_fill_##name(r, ts_ns, TRACE_FIELDS_##name(TRACE_F_ARG, TRACE_SEP_COMMA));   \
    }
TRACE_EVENT_LIST(TRACE_RING_PUT_FN_)

/*
 * trace_ring_try_put_<name>(r, ts_ns, fields...) - trace_ring_put_<name>
 * when @r has room as far as its owner last saw, without waiting: false
 * (nothing staged) when it must look again or wait, which the caller
 * then does out of line (trace_ring_put_<name>). Nothing it keeps is
 * live across a call, so a small function around it saves no registers.
 */
#define TRACE_RING_TRY_PUT_FN_(name, doc)                                                          \
    static inline bool trace_ring_try_put_##name(                                                  \
        trace_ring *r, uint64_t ts_ns, TRACE_FIELDS_##name(TRACE_F_PARAM, TRACE_SEP_COMMA))        \
    {                                                                                              \
        if (__builtin_expect(r->head - r->tail_seen >= TRACE_RING_SLOTS, 0))                       \
            return false;                                                                          \
        trace_ring_fill_##name(r, ts_ns, TRACE_FIELDS_##name(TRACE_F_ARG, TRACE_SEP_COMMA));       \
        return true;                                                                               \
    }
TRACE_EVENT_LIST(TRACE_RING_TRY_PUT_FN_)

/*
 * A ring slot whose id is TRACE_RING_RECEIVED_RUN carries, instead of
 * one event, the request_received events of up to TRACE_RECEIVED_PER_SLOT
 * requests of one batch, all with the slot's time: what a batch stages
 * for its requests at a fraction of the stores and bytes of a slot each.
 * The writer writes them as the request_received lines they stand for;
 * no other output sees a slot.
 */
#define TRACE_RING_RECEIVED_RUN ((trace_event_id)TRACE_EVENT_COUNT)
#define TRACE_RECEIVED_PER_SLOT 11
typedef struct trace_received_run {
    uint64_t batch;
    uint32_t size[TRACE_RECEIVED_PER_SLOT];
    uint8_t type[TRACE_RECEIVED_PER_SLOT];
    uint8_t count;
} trace_received_run;
_Static_assert(sizeof(trace_received_run) <= sizeof(((trace_event *)0)->u),
               "a run fits in a slot's fields");

/* Wakes the writer, once per backlog, when @r is half full. */
void trace_ring_kick(trace_ring *r);

/*
 * trace_ring_write_<name>(r, ts_ns, fields...) - writes event <name> and
 * publishes it at once, as a fire function does: straight into the ring
 * when nothing is staged and no fence is owed (one copy, plain stores,
 * which the release store of the count orders), else staged behind what
 * is and published with it.
 */
#define TRACE_RING_WRITE_FN_(name, doc)                                                            \
    static inline void trace_ring_write_##name(                                                    \
        trace_ring *r, uint64_t ts_ns, TRACE_FIELDS_##name(TRACE_F_PARAM, TRACE_SEP_COMMA))        \
    {                                                                                              \
        if (r->copied != r->head || r->fence_owed) {                                               \
            trace_ring_put_##name(r, ts_ns, TRACE_FIELDS_##name(TRACE_F_ARG, TRACE_SEP_COMMA));    \
            trace_ring_publish(r);                                                                 \
            return;                                                                                \
        }                                                                                          \
        if (!trace_ring_room(r))                                                                   \
            return;                                                                                \
        trace_event *ev = &r->slots[r->head % TRACE_RING_SLOTS];                                   \
        ev->id = TRACE_EV_##name;                                                                  \
        ev->ts_ns = ts_ns;                                                                         \
        ev->u.name = (trace_##name##_fields){TRACE_FIELDS_##name(TRACE_F_ARG, TRACE_SEP_COMMA)};   \
        uint64_t head = ++r->head;                                                                 \
        r->copied = head;                                                                          \
        r->announced = head;                                                                       \
        __atomic_store_n(&r->published, head, __ATOMIC_RELEASE);                                   \
        if (__builtin_expect(head - r->tail_seen >= TRACE_RING_SLOTS / 2, 0))                      \
            trace_ring_kick(r);                                                                    \
    }
TRACE_EVENT_LIST(TRACE_RING_WRITE_FN_)

/*
 * A line of @ev (an event: id below TRACE_EVENT_COUNT) with time @ts_ns,
 * as the writer thread formats it, in two parts, so that the lines of one
 * time format it once: trace_ts_format_at writes what the line starts
 * with (at most TRACE_TS_MAX bytes), trace_event_format_after_ts the rest,
 * newline included, no NUL. Both write at @buf, which has TRACE_LINE_MAX
 * bytes, and return the length.
 */
#define TRACE_TS_MAX 32
size_t trace_ts_format_at(uint64_t ts_ns, trace_format format, char *buf);
size_t trace_event_format_after_ts(const trace_event *ev, trace_format format, char *buf);
/* Writes the lines of the request_received events @slot carries (its id
 * TRACE_RING_RECEIVED_RUN) with time @ts_ns at @buf, which has
 * TRACE_RECEIVED_PER_SLOT * TRACE_LINE_MAX bytes. Returns their length. */
size_t trace_received_run_format_at(const trace_event *slot, uint64_t ts_ns, trace_format format,
                                    char *buf);

/*
 * The file outputs, one per format, called under trace.c's configuration
 * lock. trace_files_attach hands @file over (closed by trace_files_detach)
 * and starts the writer thread when it is the first: it returns 0, or the
 * negative errno of pthread_create, @file then staying the caller's.
 * Events whose time is before @since_ns of the first file of a run are
 * not written (they were fired while no file was on); ts counts from
 * @origin_ns, the time tracing was turned on.
 */
int trace_files_attach(trace_format format, FILE *file, uint64_t since_ns, uint64_t origin_ns);

/* Writes every event fired before the call, then closes the file of
 * @format. Returns 0 or the first write error since the last flush. */
int trace_files_detach(trace_format format);

/* Waits until every event fired before the call is in the files. Returns
 * 0, or the first write or format error since the last flush. */
int trace_files_flush(void);

#endif /* SHARED_TRACE_INTERNAL_H */

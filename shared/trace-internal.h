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
 * trace_writer - formats and writes a trace file from its own thread
 * (trace_writer.c). Producers hand it binary events.
 *
 * trace_writer_has_room, trace_writer_push and trace_writer_hold are
 * called with the fire lock (trace.c) held, which serializes producers;
 * the other functions without it.
 */
typedef struct trace_writer trace_writer;

/* Slots in a writer's ring: 640 KiB, about a millisecond of events at
 * full speed, and small enough to stay in the caches the producer and
 * the writer share. A power of two. */
#define TRACE_RING_SLOTS (8u * 1024)

/*
 * The producers' side of a writer's ring, the first member of every
 * trace_writer, so that the fire path pushes inline. Producers change it
 * under the fire lock only; the writer reads head and owns tail.
 */
typedef struct trace_ring {
    trace_event *slots;
    uint64_t head;      /* the next slot to fill; producers only */
    uint64_t tail_seen; /* the last tail a producer loaded */
    /* head as the writer sees it (release store after each slot), on a
     * cache line of its own: the producers only store to it, so they
     * never wait for the line the writer keeps reading. */
    _Alignas(64) uint64_t published;
    /* The writer's position, on a cache line of its own: the writer
     * stores it, producers load it only when the ring looks full or
     * half full. */
    _Alignas(64) uint64_t tail;
} trace_ring;

/* Starts a writer of @format lines for @file, which it owns from then on
 * (closed by trace_writer_close). Returns 0, or the negative errno of
 * pthread_create (-EAGAIN: no thread can be started; @file then stays
 * the caller's). */
int trace_writer_new(FILE *file, trace_format format, trace_writer **out);

/* Called by trace_ring_push when the ring is half full: wakes the writer
 * if it sleeps (it polls, and may sleep up to 0.1 s). */
void trace_writer_kick(trace_writer *w);

/* True when a slot is free for trace_writer_push. */
static inline bool trace_writer_has_room(trace_writer *w)
{
    trace_ring *r = (trace_ring *)(void *)w;
    if (r->head - r->tail_seen < TRACE_RING_SLOTS)
        return true;
    r->tail_seen = __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE);
    return r->head - r->tail_seen < TRACE_RING_SLOTS;
}

/* Copies @ev into the next slot; trace_writer_has_room must be true. */
static inline void trace_writer_push(trace_writer *w, const trace_event *ev)
{
    trace_ring *r = (trace_ring *)(void *)w;
    uint64_t head = r->head;
    memcpy(&r->slots[head & (TRACE_RING_SLOTS - 1)], ev, sizeof(*ev));
    r->head = head + 1;
    __atomic_store_n(&r->published, head + 1, __ATOMIC_RELEASE);
    if (__builtin_expect(head + 1 - r->tail_seen >= TRACE_RING_SLOTS / 2, 0))
        trace_writer_kick(w);
}

/* Keeps @w alive for a producer that is about to release the fire lock
 * and call trace_writer_wait_room, which ends the hold. */
void trace_writer_hold(trace_writer *w);

/* Waits until a slot is free or @w is being closed. The caller then
 * takes the fire lock again and must look @w up anew. */
void trace_writer_wait_room(trace_writer *w);

/* Waits until every event pushed so far is written. Returns 0, or the
 * first write or format error since the last flush. */
int trace_writer_flush(trace_writer *w);

/* Writes what is left, stops the thread, closes the file and frees @w.
 * The caller must have made @w unreachable for producers first (under
 * the fire lock). Returns 0 or the first error since the last flush. */
int trace_writer_close(trace_writer *w);

#endif /* SHARED_TRACE_INTERNAL_H */

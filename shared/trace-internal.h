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

/* Starts a writer of @format lines for @file, which it owns from then on
 * (closed by trace_writer_close). Returns 0, or the negative errno of
 * pthread_create (-EAGAIN: no thread can be started; @file then stays
 * the caller's). */
int trace_writer_new(FILE *file, trace_format format, trace_writer **out);

/* True when a slot is free for trace_writer_push. */
bool trace_writer_has_room(trace_writer *w);

/* Copies @ev into the next slot; trace_writer_has_room must be true. */
void trace_writer_push(trace_writer *w, const trace_event *ev);

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

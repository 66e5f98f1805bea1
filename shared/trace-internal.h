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
 * trace_writer - writes a trace file from its own thread (trace_writer.c).
 * Every function is called with @lock (given at creation) held; the ones
 * that wait release it meanwhile.
 */
typedef struct trace_writer trace_writer;

/* Starts a writer for @file, which it owns from then on (closed by
 * trace_writer_close_locked). Returns 0, or -EAGAIN when no thread can
 * be started, or another negative errno from pthread_create (@file
 * then stays the caller's). */
int trace_writer_new(FILE *file, pthread_mutex_t *lock, trace_writer **out);

/* Makes room for @n bytes (at most TRACE_LINE_MAX), waiting while both
 * buffers are full. Returns true when it had to wait, i.e. the lock was
 * released and anything it guards may have changed. */
bool trace_writer_make_room_locked(trace_writer *w, size_t n);

/* Appends @n bytes (at most TRACE_LINE_MAX); waits, like
 * trace_writer_make_room_locked, unless room was made for them before. */
void trace_writer_append_locked(trace_writer *w, const char *data, size_t n);

/* Waits until everything appended so far is written. Returns 0, or the
 * first write error since the last flush. */
int trace_writer_flush_locked(trace_writer *w);

/* Writes what is left, stops the thread, closes the file and frees @w.
 * The caller must have made @w unreachable for new appends first; the
 * lock is released while the thread is joined. Returns 0 or the first
 * error. */
int trace_writer_close_locked(trace_writer *w);

#endif /* SHARED_TRACE_INTERNAL_H */

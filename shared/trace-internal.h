/* SPDX-License-Identifier: MIT */
/*
 * trace-internal.h - helpers the trace modules share, not exported.
 */
#ifndef SHARED_TRACE_INTERNAL_H
#define SHARED_TRACE_INTERNAL_H

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

#endif /* SHARED_TRACE_INTERNAL_H */

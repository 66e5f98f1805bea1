/* SPDX-License-Identifier: MIT */
/*
 * trace-internal.h - helpers the trace modules share, not exported.
 */
#ifndef SHARED_TRACE_INTERNAL_H
#define SHARED_TRACE_INTERNAL_H

#include "shared.h"

/* Field @f of @ev widened to 64 bits (I32 sign-extended). */
uint64_t trace_field_load(const trace_event *ev, const trace_field_info *f);

/* Stores @value, truncated to the field's size, into field @f of @ev. */
void trace_field_store(trace_event *ev, const trace_field_info *f, uint64_t value);

#endif /* SHARED_TRACE_INTERNAL_H */

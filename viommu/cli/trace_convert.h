/* SPDX-License-Identifier: MIT */
/*
 * trace_convert.h - the two trace formats `viommu trace` reads and
 * writes: this project's JSON Lines (shared.h's trace events) and QEMU's
 * log format (qemu_log.h), and the conversions between them.
 *
 * QEMU -> JSON Lines runs the log's requests through the device model
 * (the replay engine) with tracing on, so the output holds what the
 * device did: requests with their statuses, batches, domain and endpoint
 * changes, PROBE properties. JSON Lines -> QEMU writes, for each
 * request_done, the line QEMU's trace-events print for that request
 * (PROBE: one virtio_iommu_fill_resv_property per probe_property), and
 * virtio_queue_notify / virtqueue_pop lines that keep the batches.
 *
 * What the formats share survives a round trip: request types, domains,
 * endpoints, addresses, flags, PROBE properties and batches. QEMU's
 * device accesses (virtio_iommu_translate) have no event of ours, and
 * our timestamps, statuses and vfio-user events have no QEMU line.
 */
#ifndef VIOMMU_CLI_TRACE_CONVERT_H
#define VIOMMU_CLI_TRACE_CONVERT_H

#include <stdbool.h>
#include <stdio.h>

#include <glib.h>

#include "replay.h"
#include "shared.h"

typedef enum trace_file_format {
    TRACE_FILE_JSONL, /* our JSON Lines */
    TRACE_FILE_QEMU,  /* QEMU's log format, plain or xz */
} trace_file_format;

/**
 * trace_file_detect - which format @path holds, plain or xz-compressed: a
 * first non-blank character other than '{' (after decompression) means
 * QEMU's. An empty file is JSON Lines (it holds no event either way).
 *
 * Returns 0, or a negative errno from open or read (-EIO also for a
 * corrupt xz stream) with @error set.
 */
int trace_file_detect(const char *path, trace_file_format *out, GError **error);

/** trace_event_fn - receives each event of a JSON Lines file; a negative return stops. */
typedef int (*trace_event_fn)(void *opaque, const trace_event *ev);

/**
 * trace_jsonl_read - calls @fn for every event of the JSON Lines file at
 * @path ("-": standard input), plain or xz-compressed (recognised by its
 * magic bytes, as QEMU logs are), skipping blank lines.
 *
 * Returns 0; -EINVAL for a malformed line or one longer than
 * QEMU_LOG_MAX_LINE, with @error naming its number and what is wrong; a
 * negative errno from open or read (-EIO also for a corrupt or truncated
 * xz stream); or @fn's value.
 */
int trace_jsonl_read(const char *path, trace_event_fn fn, void *opaque, GError **error);

/**
 * trace_convert_to_jsonl - replays the QEMU log at @path through a device
 * model made from @cfg and writes every event the device fires to @out.
 *
 * Returns 0, or replay_run()'s error (a malformed line, unreadable input).
 */
int trace_convert_to_jsonl(const char *path, const replay_config *cfg, FILE *out, GError **error);

/**
 * trace_convert_to_qemu - writes the requests and batches of the JSON
 * Lines file at @path to @out as QEMU log lines.
 *
 * Returns 0, or trace_jsonl_read()'s error.
 */
int trace_convert_to_qemu(const char *path, FILE *out, GError **error);

#endif

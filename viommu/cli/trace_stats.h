/* SPDX-License-Identifier: MIT */
/*
 * trace_stats.h - the statistics `viommu trace summarize` prints: what a
 * guest did with its vIOMMU (requests by type and status, map sizes, live
 * mappings per domain, IOVA reuse, unmaps covering several mappings,
 * requests per batch) and what it cost the vfio-user devices behind it
 * (messages, waits and bytes per request, dirty pages).
 *
 * Requests come in one at a time, in the order the device ran them, from
 * either source: JSON Lines events (trace_stats_add_event) or a replayed
 * QEMU log (trace_stats_add_request). Live mappings are tracked here from
 * the requests that succeeded, independently of any device model.
 */
#ifndef VIOMMU_CLI_TRACE_STATS_H
#define VIOMMU_CLI_TRACE_STATS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "shared.h"

typedef struct trace_stats trace_stats;

/** The power-of-two buckets of a histogram: bucket b holds [2^b, 2^(b+1)), 64 holds 2^64. */
#define TRACE_STATS_BUCKETS 65

/** trace_stats_request - one request and its outcome, host order. */
typedef struct trace_stats_request {
    uint8_t type; /* VIRTIO_IOMMU_T_* */
    uint32_t domain;
    uint32_t endpoint;
    uint64_t virt_start;
    uint64_t virt_end;
    uint64_t phys_start;
    uint32_t flags;
    int status;     /* VIRTIO_IOMMU_S_*, or VIOMMU_STATUS_NONE */
    uint64_t batch; /* batch number, or 0 when batches are unknown */
} trace_stats_request;

/** trace_stats_new - empty statistics; free with trace_stats_free(). */
trace_stats *trace_stats_new(void);

/** trace_stats_free - frees @s; NULL is allowed. */
void trace_stats_free(trace_stats *s);

/**
 * trace_stats_set_source - names the input in the output ("jsonl" or
 * "qemu"); @statuses_from_replay says the statuses are the device
 * model's answers rather than recorded ones (QEMU logs carry none).
 */
void trace_stats_set_source(trace_stats *s, const char *format, bool statuses_from_replay);

/** trace_stats_add_request - counts one request, in the order they ran. */
void trace_stats_add_request(trace_stats *s, const trace_stats_request *r);

/**
 * trace_stats_add_event - counts one JSON Lines event: request_done as a
 * request, the vfio-user, dirty, fault and reconnect events as costs,
 * every event in the per-event totals.
 */
void trace_stats_add_event(trace_stats *s, const trace_event *ev);

/** trace_stats_requests - the number of requests counted so far. */
uint64_t trace_stats_requests(const trace_stats *s);

/** trace_stats_print - writes the summary to @out, readable or as one JSON object. */
void trace_stats_print(const trace_stats *s, FILE *out, bool json);

#endif

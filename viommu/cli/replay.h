/* SPDX-License-Identifier: MIT */
/*
 * replay.h - runs the requests of a QEMU trace log through a virtio-iommu
 * device model, each as the guest sent it: wire bytes in device-readable
 * and device-writable buffers, one viommu_process_batch() per queue
 * notification.
 *
 * The engine owns the device and the trace bookkeeping (which endpoints
 * exist, which requests form a batch); everything else - printing,
 * listeners, DMA re-enactment - plugs in through replay_hooks, each hook
 * optional.
 */
#ifndef VIOMMU_CLI_REPLAY_H
#define VIOMMU_CLI_REPLAY_H

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

#include "qemu_log.h"
#include "viommu.h"

#define REPLAY_ERROR (replay_error_quark())
GQuark replay_error_quark(void);

typedef enum replay_error_code {
    REPLAY_ERROR_CONFIG, /* the device configuration is refused */
    REPLAY_ERROR_HOOK,   /* a hook stopped the replay */
} replay_error_code;

/** The most requests one batch holds (the largest split virtqueue). */
#define REPLAY_MAX_BATCH 32768

/** The most RESV_MEM properties one PROBE line run may carry. */
#define REPLAY_MAX_PROBE_REGIONS 64

/** A reserved region given on the command line. */
typedef struct replay_resv {
    uint64_t start;
    uint64_t end;
    uint8_t subtype; /* VIRTIO_IOMMU_RESV_MEM_T_* */
} replay_resv;

/**
 * replay_config - what the replay's device looks like.
 * @device: the device configuration (viommu_config_init() defaults, then
 *   the command line's page size mask, input and domain ranges).
 * @endpoints: when @endpoints_given, the only endpoints that exist
 *   (uint32_t); otherwise every endpoint the trace names exists from the
 *   line that first names it.
 * @resv: when @resv_given, the reserved regions of every endpoint
 *   (replay_resv); otherwise each endpoint gets the regions its first
 *   PROBE in the trace reported.
 * @keep_going: report a malformed line and go on instead of stopping.
 * @progress_lines: call the progress hook every this many lines (0: never).
 */
typedef struct replay_config {
    viommu_config device;
    GArray *endpoints;
    bool endpoints_given;
    GArray *resv;
    bool resv_given;
    bool keep_going;
    uint64_t progress_lines;
} replay_config;

/** replay_config_init - defaults; free with replay_config_clear(). */
void replay_config_init(replay_config *cfg);

/** replay_config_clear - frees the arrays of @cfg. */
void replay_config_clear(replay_config *cfg);

/**
 * replay_request - one request of the trace and the device's answer.
 * Fields the request type does not have are flagged absent.
 */
typedef struct replay_request {
    uint64_t seq;   /* 1-based request number */
    uint64_t line;  /* trace line of the request (first line of a PROBE) */
    uint64_t batch; /* 1-based batch number */
    uint8_t type;   /* VIRTIO_IOMMU_T_* */
    bool has_domain, has_endpoint, has_virt, has_phys, has_flags;
    uint32_t domain;
    uint32_t endpoint;
    uint64_t virt_start;
    uint64_t virt_end;
    uint64_t phys_start;
    uint32_t flags;
    int status;      /* VIRTIO_IOMMU_S_* or VIOMMU_STATUS_NONE */
    size_t used_len; /* bytes the device wrote */
    /* PROBE: the trace's regions were not what the device reported. */
    bool probe_mismatch;
} replay_request;

/** replay_summary - totals of a replay. */
typedef struct replay_summary {
    uint64_t lines;
    uint64_t requests;
    uint64_t batches;
    uint64_t by_type[VIRTIO_IOMMU_T_PROBE + 1];
    uint64_t by_status[VIRTIO_IOMMU_S_NOMEM + 1];
    uint64_t no_status; /* returned without a status */
    uint64_t malformed_lines;
    uint64_t translations; /* device accesses (translate lines) seen */
    uint64_t probe_mismatches;
    uint64_t endpoints; /* endpoints declared */
    uint64_t largest_batch;
    /* Batches come from the trace's queue events (otherwise each request
     * is its own batch). Set before the hooks see the first batch. */
    bool queue_batches;
} replay_summary;

/**
 * replay_hooks - optional callbacks; a hook returning a negative errno
 * stops the replay, which then returns that value.
 * @device_ready: the device exists, features are negotiated, no request
 *   ran yet.
 * @endpoint_added: @endpoint was just declared (unattached: the time to
 *   give it a mapping listener).
 * @batch_begin / @batch_end: around each viommu_process_batch() of @n
 *   requests; batch_end sees the final statuses.
 * @request_done: each request of a batch, in order, after batch_end.
 * @translate: a translate or translate_out line, after every earlier
 *   request has run.
 * @line_error: a malformed line (also with keep_going).
 * @progress: every progress_lines lines: input bytes consumed and the
 *   input size (0 when unknown).
 */
typedef struct replay_hooks {
    void *opaque;
    int (*device_ready)(void *opaque, viommu *dev);
    int (*endpoint_added)(void *opaque, viommu *dev, uint32_t endpoint);
    int (*batch_begin)(void *opaque, viommu *dev, uint64_t batch, size_t n);
    int (*batch_end)(void *opaque, viommu *dev, uint64_t batch, const replay_request *reqs,
                     size_t n);
    int (*request_done)(void *opaque, const replay_request *req);
    int (*translate)(void *opaque, viommu *dev, const qemu_log_event *ev);
    void (*line_error)(void *opaque, const GError *error);
    void (*progress)(void *opaque, uint64_t bytes, uint64_t total);
} replay_hooks;

/**
 * replay_run - replays every request of @src through a new device made
 * from @cfg.
 * @hooks: may be NULL.
 * @summary: receives the totals (also on failure, up to where it stopped).
 *
 * Requests the device answers with a status other than OK are results,
 * not errors: they are counted in @summary.
 *
 * Returns 0 when the whole trace was read; -EINVAL for the first
 * malformed line (unless keep_going; the count is then in @summary);
 * -EIO when the input cannot be read; a hook's negative value; -EINVAL
 * with REPLAY_ERROR_CONFIG when the device configuration is refused.
 */
int replay_run(const replay_config *cfg, qemu_log_reader *src, const replay_hooks *hooks,
               replay_summary *summary, GError **error);

#endif

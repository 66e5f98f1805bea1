/* SPDX-License-Identifier: MIT */
/*
 * vfio_backend.h - puts vfio-user devices behind a replay's endpoints:
 * guest RAM in a memfd, one DMA mapper (and connection) per endpoint,
 * device DMA routed through the device model's translate(), the trace's
 * device writes re-enacted by the sample device, dirty tracking turned
 * on before a chosen request, and the dirty log written out at the end.
 */
#ifndef VIOMMU_CLI_VFIO_BACKEND_H
#define VIOMMU_CLI_VFIO_BACKEND_H

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

#include "qemu_log.h"
#include "replay.h"
#include "vfio-user.h"
#include "viommu.h"

/**
 * vfio_backend_config - where the devices are and how to drive them.
 * @socket_all: a device behind every endpoint, each on its own
 *   connection to this socket (NULL: none).
 * @sockets: endpoint -> socket path (GUINT_TO_POINTER keys, char * values
 *   owned by the table), for `--vfio-user EP=SOCKET`.
 * @dialect, @plan, @isolated: for every mapper.
 * @dma: re-enact the trace's device accesses with the sample device.
 * @migrate_at: turn dirty tracking on just before request N (0-based, in
 *   file order); -1: never.
 * @ram_size: guest RAM, at guest-physical 0.
 */
typedef struct vfio_backend_config {
    char *socket_all;
    GHashTable *sockets;
    vfio_user_dialect dialect;
    vfio_user_plan plan;
    bool isolated;
    bool dma;
    int64_t migrate_at;
    uint64_t ram_size;
} vfio_backend_config;

/** vfio_backend_config_init - defaults: no device, dialect 2021, coalesce, 1 GiB RAM. */
void vfio_backend_config_init(vfio_backend_config *cfg);

/** vfio_backend_config_clear - frees what @cfg holds. */
void vfio_backend_config_clear(vfio_backend_config *cfg);

/**
 * vfio_backend_config_add_socket - parses one `--vfio-user` value:
 * SOCKET or EP=SOCKET. Returns false with @error for a bad endpoint or
 * a second SOCKET for every endpoint.
 */
bool vfio_backend_config_add_socket(vfio_backend_config *cfg, const char *value, GError **error);

/** vfio_backend_config_active - true when some endpoint gets a device. */
bool vfio_backend_config_active(const vfio_backend_config *cfg);

typedef struct vfio_backend vfio_backend;

/** vfio_backend_summary - what the devices saw over the whole replay. */
typedef struct vfio_backend_summary {
    uint64_t devices;
    vfio_user_mapper_stats mapper; /* summed over the devices */
    uint64_t dma_writes, dma_reads, dma_failures;
    uint64_t dma_untranslated; /* refused or in bypass: not re-enacted */
    uint64_t dirty_pages;
    bool tracking_started;
} vfio_backend_summary;

/**
 * vfio_backend_new - guest RAM for @cfg (copied). Returns NULL with
 * @error when the memory cannot be had.
 */
vfio_backend *vfio_backend_new(const vfio_backend_config *cfg, GError **error);

/** vfio_backend_free - closes every connection and frees the RAM; NULL allowed. */
void vfio_backend_free(vfio_backend *b);

/**
 * vfio_backend_install_hooks - fills the device-related hooks of
 * @hooks (endpoint_added, batch_begin, batch_end, translate) with the
 * backend's, keeping a previous hook of the same slot chained after it.
 */
void vfio_backend_install_hooks(vfio_backend *b, replay_hooks *hooks);

/**
 * vfio_backend_finish - the end of the replay: a final dirty sync when
 * tracking is on. Returns 0 or a negative errno.
 */
int vfio_backend_finish(vfio_backend *b);

/**
 * vfio_backend_write_dirty - writes the dirty log, sorted guest-physical
 * page addresses in hex, one per line, to @path. Returns false with @error.
 */
bool vfio_backend_write_dirty(vfio_backend *b, const char *path, GError **error);

/** vfio_backend_summary_get - the totals so far. */
void vfio_backend_summary_get(vfio_backend *b, vfio_backend_summary *out);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * describe_internal.h - helpers shared by fdt.c and viot.c.
 */
#ifndef VIOMMU_DESCRIBE_INTERNAL_H
#define VIOMMU_DESCRIBE_INTERNAL_H

#include "viommu.h"

#include <inttypes.h>
#include <stdarg.h>

/* node_count is 16 bits wide. */
#define VIOMMU_VIOT_MAX_NODES 65535

/* The size of the virtio-iommu's MMIO window, with 0 meaning the default. */
static inline uint64_t viommu_topology_mmio_size(const struct viommu_topology *topo)
{
    return topo->mmio_size ? topo->mmio_size : VIOMMU_MMIO_DEFAULT_SIZE;
}

#endif /* VIOMMU_DESCRIBE_INTERNAL_H */

/* SPDX-License-Identifier: MIT */
/*
 * describe.h - describing a virtio-iommu and the endpoints behind it to
 * the guest's firmware: a device-tree (libfdt) writer and an ACPI VIOT
 * table writer and decoder.
 *
 * Everything here works from a topology, a plain description of where
 * the virtio-iommu sits (a PCI function or a virtio-mmio window) and
 * which endpoints it translates for (ranges of PCI requester IDs, and
 * virtio-mmio devices known by their base address). Each endpoint gets
 * an endpoint ID, the number the guest driver puts in ATTACH requests.
 *
 * Conventions: functions return 0 or a negative errno; inclusive
 * ranges; all values in host byte order (tables and blobs are encoded
 * on output only).
 */
#ifndef VIOMMU_DESCRIBE_H
#define VIOMMU_DESCRIBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <glib.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef VIOMMU_API
#if defined(VIOMMU_BUILDING) && defined(__GNUC__)
#define VIOMMU_API __attribute__((visibility("default")))
#else
#define VIOMMU_API
#endif
#endif

/* ------------------------------------------------------------------ */
/* Topology                                                            */
/* ------------------------------------------------------------------ */

/** enum viommu_transport - how the virtio-iommu itself is reached. */
enum viommu_transport {
    VIOMMU_TRANSPORT_PCI = 1,  /* a virtio-pci function */
    VIOMMU_TRANSPORT_MMIO = 2, /* a virtio-mmio window */
};

/** VIOMMU_MMIO_DEFAULT_SIZE - the window QEMU gives each virtio-mmio device. */
#define VIOMMU_MMIO_DEFAULT_SIZE 0x200u

/** VIOMMU_DESCRIBE_MAX_IRQ_CELLS - most cells in an MMIO `interrupts` value. */
#define VIOMMU_DESCRIBE_MAX_IRQ_CELLS 4

/**
 * struct viommu_pci_range - PCI endpoints by requester ID.
 * @segment: PCI segment (domain) number of the endpoints.
 * @bdf_first, @bdf_last: inclusive range of requester IDs (bus << 8 |
 *                        device << 3 | function).
 * @endpoint_first: endpoint ID of @bdf_first; the IDs follow the
 *                  requester IDs one for one.
 */
struct viommu_pci_range {
    uint16_t segment;
    uint16_t bdf_first;
    uint16_t bdf_last;
    uint32_t endpoint_first;
};

/**
 * struct viommu_mmio_endpoint - one virtio-mmio endpoint.
 * @base: base address of its MMIO window (the first address of its
 *        device-tree `reg`, the VIOT node's base address).
 * @endpoint: its endpoint ID.
 */
struct viommu_mmio_endpoint {
    uint64_t base;
    uint32_t endpoint;
};

/**
 * struct viommu_topology - where the virtio-iommu sits and what it manages.
 * @transport: VIOMMU_TRANSPORT_PCI or VIOMMU_TRANSPORT_MMIO.
 * @pci_segment, @pci_bdf: the virtio-iommu's PCI address (PCI transport).
 * @mmio_base, @mmio_size: its window (MMIO transport); a @mmio_size of 0
 *        means VIOMMU_MMIO_DEFAULT_SIZE.
 * @mmio_irq, @mmio_irq_cells: the device-tree `interrupts` value of the
 *        MMIO virtio-iommu, in the interrupt parent's format (for a GIC:
 *        <type number flags>); 0 cells writes no `interrupts` property.
 *        ACPI describes the interrupt elsewhere (DSDT), so VIOT ignores it.
 * @mmio_dma_coherent: add `dma-coherent` to a virtio-mmio node this
 *        library creates (the virtio-iommu's own rings are coherent on
 *        every VMM this targets; an existing node is left as it is).
 * @pci_ranges, @n_pci_ranges: PCI endpoints (may be 0).
 * @mmio_endpoints, @n_mmio_endpoints: virtio-mmio endpoints (may be 0).
 *
 * Both kinds of endpoint may sit behind either kind of virtio-iommu. The
 * caller keeps ownership of the arrays; nothing here keeps a pointer.
 */
struct viommu_topology {
    enum viommu_transport transport;
    uint16_t pci_segment;
    uint16_t pci_bdf;
    uint64_t mmio_base;
    uint64_t mmio_size;
    uint32_t mmio_irq[VIOMMU_DESCRIBE_MAX_IRQ_CELLS];
    unsigned int mmio_irq_cells;
    bool mmio_dma_coherent;
    const struct viommu_pci_range *pci_ranges;
    size_t n_pci_ranges;
    const struct viommu_mmio_endpoint *mmio_endpoints;
    size_t n_mmio_endpoints;
};

/**
 * viommu_topology_check - validate a topology.
 * @topo: the topology.
 * @error: optional; receives a sentence naming the offending item, in
 *         the G_FILE_ERROR domain with the code g_file_error_from_errno()
 *         gives for the returned errno.
 *
 * A topology is valid when: the transport is known; an MMIO window is
 * non-empty and does not wrap past 2^64; at most
 * VIOMMU_DESCRIBE_MAX_IRQ_CELLS interrupt cells are given; each PCI range
 * has bdf_first <= bdf_last and its endpoint IDs fit in 32 bits; PCI
 * ranges of one segment do not share a requester ID; MMIO endpoints have
 * distinct base addresses outside an MMIO virtio-iommu's window, no
 * endpoint ID is given to two endpoints;
 * and the whole description fits in a VIOT table (at most 65535 nodes).
 * Both writers below run this check first.
 *
 * Returns:
 *   0 on success,
 *   -EINVAL when the topology breaks one of the rules above (or @topo or
 *           a non-empty array pointer is NULL),
 *   -E2BIG when it has more endpoints than a VIOT table can hold.
 */
VIOMMU_API int viommu_topology_check(const struct viommu_topology *topo, GError **error);

/* ------------------------------------------------------------------ */
/* Device tree (libfdt)                                                */
/* ------------------------------------------------------------------ */

/**
 * viommu_fdt_add - add the virtio-iommu to a flattened device tree.
 * @fdt: the caller's blob, at the start of a buffer of @bufsize bytes.
 * @bufsize: size of that buffer; the blob may grow up to it (its
 *           totalsize becomes @bufsize, at most INT_MAX, as after
 *           fdt_open_into()).
 * @topo: the topology (see viommu_topology_check()).
 * @phandle: optional; receives the virtio-iommu node's phandle.
 *
 * PCI transport: a `virtio_iommu@D,F` node with compatible
 * "virtio,pci-iommu", "pci1af4,1057", `reg` for its BDF and
 * `#iommu-cells = <1>` is added under the host bridge of its segment.
 * MMIO transport: the virtio-mmio node whose `reg` starts at the
 * window's base gets `#iommu-cells = <1>` (and a phandle); when there is
 * none, a `virtio_mmio@ADDR` node is created under the root with
 * compatible "virtio,mmio", `reg`, and the optional `interrupts` and
 * `dma-coherent`. The phandle is the highest one in the tree plus one.
 *
 * Endpoints: each PCI range becomes `iommu-map` entries of the host
 * bridge of its segment (<rid phandle endpoint-id count>, in requester
 * ID order), leaving out the virtio-iommu's own requester ID, which is
 * not translated by itself; each MMIO endpoint's node (found by the
 * first address of its `reg`) gets `iommus = <phandle endpoint-id>`.
 *
 * A host bridge is a node with device_type "pci" whose parent is not
 * one; the bridge of segment N is the one whose `linux,pci-domain` is N,
 * or, for segment 0 only, the single host bridge of a tree with one and
 * no `linux,pci-domain`. The virtio-iommu must sit on the bridge's root
 * bus (the first bus of its `bus-range`, 0 when absent), because a
 * device-tree node is bound only to a device directly below the node
 * that contains it.
 *
 * New properties come first in their node and the new node first among
 * its siblings, where fdt_setprop() and fdt_add_subnode() put them, so
 * `dtc -I dtb -O dts` prints the result as it prints QEMU's trees. The
 * tree is rewritten in one pass (NOPs dropped, strings deduplicated),
 * linear in its size however many endpoints there are.
 *
 * The work is done on a copy: on any error the caller's buffer is left
 * exactly as it was. The caller keeps ownership of everything; nothing
 * is kept after the call returns.
 *
 * Returns:
 *   0 on success,
 *   -EINVAL for an invalid topology (viommu_topology_check()), a NULL
 *           @fdt, a blob that is not a valid device tree of version 16
 *           or later (including property lengths of 2^31 or more, which
 *           libfdt's own check lets through), a blob whose totalsize
 *           exceeds @bufsize, a tree nested deeper than 64 levels, an
 *           interrupt parent whose `#interrupt-cells` differs from
 *           @mmio_irq_cells, a virtio-iommu off its host bridge's root
 *           bus, a new virtio_mmio window the root's `#address-cells` /
 *           `#size-cells` cannot hold, or an address that matches the
 *           `reg` of more than one node,
 *   -ENOENT when no host bridge serves a needed segment, or no node has
 *           the base address of an MMIO endpoint,
 *   -EEXIST when the virtio-iommu node already exists (or the node at
 *           its MMIO base is not "virtio,mmio" or already has
 *           `#iommu-cells`), or a host bridge already has an `iommu-map`,
 *           or an MMIO endpoint already has `iommus`,
 *   -E2BIG when the topology has more endpoints than a VIOT table can
 *           hold (the same limit applies to both descriptions),
 *   -ENOSPC when the result does not fit in @bufsize bytes,
 *   -ERANGE when the tree has no phandle left to give,
 *   -ENOMEM when the working copy cannot be allocated.
 */
VIOMMU_API int viommu_fdt_add(void *fdt, size_t bufsize, const struct viommu_topology *topo,
                              uint32_t *phandle);

/* ------------------------------------------------------------------ */
/* ACPI VIOT table                                                     */
/* ------------------------------------------------------------------ */

/* Node types of the VIOT table (ACPI 6.4, 5.2.30). */
#define VIOMMU_VIOT_NODE_PCI_RANGE 1
#define VIOMMU_VIOT_NODE_MMIO_ENDPOINT 2
#define VIOMMU_VIOT_NODE_VIRTIO_IOMMU_PCI 3
#define VIOMMU_VIOT_NODE_VIRTIO_IOMMU_MMIO 4

/**
 * struct viommu_acpi_ids - identification fields of an ACPI table header.
 * Strings are space-padded to their field width and need no NUL.
 */
struct viommu_acpi_ids {
    char oem_id[6];
    char oem_table_id[8];
    uint32_t oem_revision;
    char creator_id[4];
    uint32_t creator_revision;
};

/**
 * viommu_viot_build - write the ACPI VIOT table of a topology.
 * @topo: the topology (see viommu_topology_check()).
 * @ids: the header's OEM and creator fields; NULL for "VIOMMU",
 *       "VIOMMU  ", 1, "VIOM", 1.
 * @buf: where to write; may be NULL when @bufsize is 0.
 * @bufsize: size of @buf.
 * @len: receives the table's length, also when it does not fit.
 *
 * Layout: the 48-byte header (revision 0), the virtio-iommu node (PCI or
 * MMIO) at offset 48, then one PCI range node per PCI range in the
 * given order, then one MMIO endpoint node per MMIO endpoint, each
 * pointing at the virtio-iommu node. The checksum makes the bytes sum
 * to 0 mod 256. Call with @bufsize 0 to learn the length.
 *
 * Returns:
 *   0 on success,
 *   -EINVAL for an invalid topology or a NULL @len,
 *   -E2BIG when the topology has more nodes than a VIOT table can hold,
 *   -ENOSPC when @bufsize is smaller than *@len (nothing is written).
 */
VIOMMU_API int viommu_viot_build(const struct viommu_topology *topo,
                                 const struct viommu_acpi_ids *ids, void *buf, size_t bufsize,
                                 size_t *len);

/**
 * struct viommu_viot_node - one decoded VIOT node, host byte order.
 * @offset: where it starts in the table; @type, @length: its header.
 * Of the union, the member of @type is filled (none for unknown types,
 * which ACPI allows and a reader skips).
 * @output_node: for endpoint nodes, the index in viommu_viot::nodes of
 *               the virtio-iommu node it points at.
 */
struct viommu_viot_node {
    uint32_t offset;
    uint8_t type;
    uint16_t length;
    union {
        struct {
            uint32_t endpoint_start;
            uint16_t segment_start, segment_end;
            uint16_t bdf_start, bdf_end;
            size_t output_node;
        } pci_range;
        struct {
            uint32_t endpoint;
            uint64_t base;
            size_t output_node;
        } mmio_endpoint;
        struct {
            uint16_t segment;
            uint16_t bdf;
        } virtio_pci;
        struct {
            uint64_t base;
        } virtio_mmio;
    } u;
};

/**
 * struct viommu_viot - a decoded VIOT table (see viommu_viot_decode()).
 * String fields are the raw header bytes plus a NUL.
 */
struct viommu_viot {
    uint32_t length;
    uint8_t revision;
    uint8_t checksum;
    char oem_id[7];
    char oem_table_id[9];
    uint32_t oem_revision;
    char creator_id[5];
    uint32_t creator_revision;
    uint16_t node_offset;
    size_t n_nodes;
    struct viommu_viot_node *nodes;
};

/**
 * viommu_viot_decode - decode and validate a VIOT table.
 * @table: the bytes; @size: how many there are.
 * @out: receives the decoded table, owned by the caller, freed with
 *       viommu_viot_free(); left untouched on error.
 * @error: optional; receives a sentence saying what is wrong and where
 *         (G_FILE_ERROR domain, as for viommu_topology_check()).
 *
 * Checks, before using anything: signature "VIOT", the header's length
 * against @size (equal) and against the 48-byte minimum, the checksum,
 * revision 0, that the nodes start at or after byte 48 and that every
 * node (counted by node_count) lies inside the table with a length of at
 * least 4, the exact length of each known node type, bdf_start <=
 * bdf_end and segment_start <= segment_end in PCI ranges, endpoint IDs
 * that do not wrap past 2^32, and that each endpoint's output node is
 * the start of a virtio-iommu node of the table.
 *
 * Returns:
 *   0 on success,
 *   -EINVAL when @table or @out is NULL or the table breaks a rule above,
 *   -ENOTSUP for a revision other than 0.
 */
VIOMMU_API int viommu_viot_decode(const void *table, size_t size, struct viommu_viot **out,
                                  GError **error);

/** viommu_viot_free - free a decoded table; NULL is allowed. */
VIOMMU_API void viommu_viot_free(struct viommu_viot *viot);

#ifdef __cplusplus
}
#endif

#endif /* VIOMMU_DESCRIBE_H */

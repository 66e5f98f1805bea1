// SPDX-License-Identifier: MIT
/*
 * fdt.c - adding the virtio-iommu to a flattened device tree, following
 * Linux's bindings (Documentation/devicetree/bindings/virtio/iommu.yaml,
 * pci/pci-iommu.txt, iommu/iommu.txt) and the layout QEMU gives its arm
 * `virt` machine.
 *
 * Every change is made on a working copy opened with fdt_open_into();
 * the caller's buffer is overwritten only once everything succeeded.
 * Node offsets move whenever the tree grows, so each step looks its
 * nodes up again instead of keeping offsets across modifications.
 */
#include "describe_internal.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libfdt.h>

/* Deeper trees are refused: real ones are a handful of levels deep. */
#define WALK_MAX_DEPTH 64

/* The one place libfdt error codes become errnos. */
static int fdt_errno(int err)
{
    switch (err) {
    case 0:
        return 0;
    case -FDT_ERR_NOSPACE:
        return -ENOSPC;
    case -FDT_ERR_NOTFOUND:
        return -ENOENT;
    case -FDT_ERR_EXISTS:
        return -EEXIST;
    case -FDT_ERR_NOPHANDLES:
        return -ERANGE;
    default:
        return -EINVAL;
    }
}

static bool node_is_pci(const void *fdt, int node)
{
    int len;
    const char *type = fdt_getprop(fdt, node, "device_type", &len);

    return type && len == sizeof("pci") && !memcmp(type, "pci", sizeof("pci"));
}

static bool node_get_u32(const void *fdt, int node, const char *name, uint32_t *val)
{
    int len;
    const fdt32_t *p = fdt_getprop(fdt, node, name, &len);

    if (!p || len != sizeof(*p))
        return false;
    *val = fdt32_to_cpu(*p);
    return true;
}

/*
 * The host bridge of PCI @segment (see viommu_fdt_add()), or a negative
 * errno: -ENOENT when there is none, -EINVAL for a tree too deep to walk.
 */
static int find_host_bridge(const void *fdt, uint16_t segment)
{
    int stack[WALK_MAX_DEPTH];
    int depth = 0, node, found = -ENOENT, n_bridges = 0, undomained = -ENOENT;

    for (node = fdt_next_node(fdt, -1, &depth); node >= 0;
         node = fdt_next_node(fdt, node, &depth)) {
        uint32_t domain;

        if (depth >= WALK_MAX_DEPTH)
            return -EINVAL;
        stack[depth] = node;
        if (!node_is_pci(fdt, node) || (depth > 0 && node_is_pci(fdt, stack[depth - 1])))
            continue;
        n_bridges++;
        if (node_get_u32(fdt, node, "linux,pci-domain", &domain)) {
            if (domain == segment && found < 0)
                found = node;
        } else {
            undomained = node;
        }
    }
    if (found >= 0)
        return found;
    /* A lone bridge without a domain number is segment 0 (Linux numbers it so). */
    if (segment == 0 && n_bridges == 1 && undomained >= 0)
        return undomained;
    return -ENOENT;
}

/* Reads @cells big-endian cells at @p as one number; false when it needs more than 64 bits. */
static bool read_cells(const fdt32_t *p, int cells, uint64_t *val)
{
    uint64_t v = 0;

    for (int i = 0; i < cells; i++) {
        if (v >> 32)
            return false;
        v = (v << 32) | fdt32_to_cpu(p[i]);
    }
    *val = v;
    return true;
}

/*
 * The node whose `reg` starts at @base, outside PCI buses (their `reg`
 * holds PCI addresses). Returns the offset, -ENOENT when none matches,
 * -EINVAL when several do or the tree is too deep.
 */
static int find_node_by_base(const void *fdt, uint64_t base)
{
    int stack[WALK_MAX_DEPTH];
    int depth = 0, node, found = -ENOENT;

    for (node = fdt_next_node(fdt, -1, &depth); node >= 0;
         node = fdt_next_node(fdt, node, &depth)) {
        const fdt32_t *reg;
        uint64_t addr;
        int len, cells;

        if (depth >= WALK_MAX_DEPTH)
            return -EINVAL;
        stack[depth] = node;
        if (depth == 0 || node_is_pci(fdt, stack[depth - 1]))
            continue;
        reg = fdt_getprop(fdt, node, "reg", &len);
        cells = fdt_address_cells(fdt, stack[depth - 1]);
        if (!reg || cells <= 0 || len < cells * (int)sizeof(fdt32_t))
            continue;
        if (!read_cells(reg, cells, &addr) || addr != base)
            continue;
        if (found >= 0)
            return -EINVAL;
        found = node;
    }
    return found;
}

/* Writes @val into @cells cells at @out; false when it does not fit. */
static bool write_cells(fdt32_t *out, int cells, uint64_t val)
{
    if (cells < 1 || cells > 2 || (cells == 1 && val > UINT32_MAX))
        return false;
    if (cells == 2)
        *out++ = cpu_to_fdt32((uint32_t)(val >> 32));
    *out = cpu_to_fdt32((uint32_t)val);
    return true;
}

/* The `#interrupt-cells` of @node's interrupt parent, or -ENOENT when it has none. */
static int interrupt_parent_cells(const void *fdt, int node)
{
    uint32_t phandle, cells;

    while (node >= 0) {
        if (node_get_u32(fdt, node, "interrupt-parent", &phandle)) {
            int parent = fdt_node_offset_by_phandle(fdt, phandle);

            if (parent < 0 || !node_get_u32(fdt, parent, "#interrupt-cells", &cells))
                return -ENOENT;
            return (int)cells;
        }
        node = fdt_parent_offset(fdt, node);
    }
    return -ENOENT;
}

static int add_pci_iommu(void *fdt, const struct viommu_topology *topo, uint32_t phandle)
{
    static const char compatible[] = "virtio,pci-iommu\0pci1af4,1057";
    const fdt32_t *busrange;
    unsigned int root_bus = 0;
    char name[32];
    int hb, node, len, err;

    hb = find_host_bridge(fdt, topo->pci_segment);
    if (hb < 0)
        return hb;
    busrange = fdt_getprop(fdt, hb, "bus-range", &len);
    if (busrange && len == 2 * (int)sizeof(fdt32_t))
        root_bus = fdt32_to_cpu(busrange[0]);
    if ((unsigned int)(topo->pci_bdf >> 8) != root_bus)
        return -EINVAL;

    snprintf(name, sizeof(name), "virtio_iommu@%x,%x", (topo->pci_bdf >> 3) & 0x1f,
             topo->pci_bdf & 7);
    node = fdt_add_subnode(fdt, hb, name);
    if (node < 0)
        return fdt_errno(node);

    /* A PCI child's reg is <phys.hi phys.mid phys.lo size.hi size.lo>; config space is 0. */
    fdt32_t reg[5] = {cpu_to_fdt32((uint32_t)topo->pci_bdf << 8)};
    /* libfdt puts each new property first, so this order prints as QEMU's does. */
    err = fdt_setprop(fdt, node, "compatible", compatible, sizeof(compatible));
    if (!err)
        err = fdt_setprop(fdt, node, "reg", reg, sizeof(reg));
    if (!err)
        err = fdt_setprop_u32(fdt, node, "#iommu-cells", 1);
    if (!err)
        err = fdt_setprop_u32(fdt, node, "phandle", phandle);
    return err ? fdt_errno(err) : 0;
}

/* Gives @node the MMIO virtio-iommu's `interrupts`, checked against its interrupt parent. */
static int set_mmio_irq(void *fdt, int node, const struct viommu_topology *topo)
{
    fdt32_t irq[VIOMMU_DESCRIBE_MAX_IRQ_CELLS];
    int cells = interrupt_parent_cells(fdt, node), err;

    if (cells >= 0 && (unsigned int)cells != topo->mmio_irq_cells)
        return -EINVAL;
    for (unsigned int i = 0; i < topo->mmio_irq_cells; i++)
        irq[i] = cpu_to_fdt32(topo->mmio_irq[i]);
    err = fdt_setprop(fdt, node, "interrupts", irq, (int)(topo->mmio_irq_cells * sizeof(fdt32_t)));
    return err ? fdt_errno(err) : 0;
}

/* Makes the virtio-mmio node of the window a virtio-iommu; *@phandle is its phandle. */
static int add_mmio_iommu(void *fdt, const struct viommu_topology *topo, uint32_t *phandle)
{
    int node, err = 0;

    node = find_node_by_base(fdt, topo->mmio_base);
    if (node == -EINVAL)
        return node;
    if (node >= 0) {
        /* The VMM already describes the transport: only the IOMMU parts are added. */
        if (fdt_node_check_compatible(fdt, node, "virtio,mmio") != 0 ||
            fdt_getprop(fdt, node, "#iommu-cells", NULL))
            return -EEXIST;
        /* Its own interrupts, where it has them, are the VMM's and stay. */
        if (topo->mmio_irq_cells && !fdt_getprop(fdt, node, "interrupts", NULL))
            err = set_mmio_irq(fdt, node, topo);
        if (err)
            return err;
        if (fdt_get_phandle(fdt, node))
            *phandle = fdt_get_phandle(fdt, node);
    } else {
        int ac = fdt_address_cells(fdt, 0), sc = fdt_size_cells(fdt, 0);
        fdt32_t reg[4];
        char name[40];

        if (ac < 0 || sc < 0)
            return fdt_errno(ac < 0 ? ac : sc);
        if (!write_cells(reg, ac, topo->mmio_base) ||
            !write_cells(reg + ac, sc, viommu_topology_mmio_size(topo)))
            return -EINVAL;
        snprintf(name, sizeof(name), "virtio_mmio@%" PRIx64, topo->mmio_base);
        node = fdt_add_subnode(fdt, 0, name);
        if (node < 0)
            return fdt_errno(node);
        err = fdt_setprop(fdt, node, "compatible", "virtio,mmio", sizeof("virtio,mmio"));
        if (!err)
            err = fdt_setprop(fdt, node, "reg", reg, (int)((ac + sc) * sizeof(fdt32_t)));
        if (err)
            return fdt_errno(err);
        if (topo->mmio_irq_cells)
            err = set_mmio_irq(fdt, node, topo);
        if (!err && topo->mmio_dma_coherent)
            err = fdt_errno(fdt_setprop_empty(fdt, node, "dma-coherent"));
        if (err)
            return err;
    }

    err = fdt_setprop_u32(fdt, node, "#iommu-cells", 1);
    if (!err && !fdt_get_phandle(fdt, node))
        err = fdt_setprop_u32(fdt, node, "phandle", *phandle);
    return err ? fdt_errno(err) : 0;
}

static int range_cmp(const void *a, const void *b)
{
    const struct viommu_pci_range *x = *(const struct viommu_pci_range *const *)a;
    const struct viommu_pci_range *y = *(const struct viommu_pci_range *const *)b;

    if (x->segment != y->segment)
        return x->segment < y->segment ? -1 : 1;
    return x->bdf_first < y->bdf_first ? -1 : x->bdf_first > y->bdf_first;
}

static void map_entry(GArray *map, uint32_t rid, uint32_t phandle, uint32_t id, uint32_t count)
{
    fdt32_t e[4] = {cpu_to_fdt32(rid), cpu_to_fdt32(phandle), cpu_to_fdt32(id),
                    cpu_to_fdt32(count)};

    g_array_append_vals(map, e, 4);
}

/* Writes the `iommu-map` of the host bridge of @ranges[0]'s segment from the @n ranges. */
static int add_iommu_map(void *fdt, const struct viommu_topology *topo, uint32_t phandle,
                         const struct viommu_pci_range *const *ranges, size_t n)
{
    uint16_t segment = ranges[0]->segment;
    bool skip_self = topo->transport == VIOMMU_TRANSPORT_PCI && topo->pci_segment == segment;
    g_autoptr(GArray) map = g_array_new(FALSE, FALSE, sizeof(fdt32_t));
    int hb, err;

    for (size_t i = 0; i < n; i++) {
        uint32_t first = ranges[i]->bdf_first, last = ranges[i]->bdf_last;
        uint32_t id = ranges[i]->endpoint_first;

        if (skip_self && first <= topo->pci_bdf && topo->pci_bdf <= last) {
            uint32_t self = topo->pci_bdf;

            if (self > first)
                map_entry(map, first, phandle, id, self - first);
            if (self < last)
                map_entry(map, self + 1, phandle, id + (self + 1 - first), last - self);
        } else {
            map_entry(map, first, phandle, id, last - first + 1);
        }
    }

    hb = find_host_bridge(fdt, segment);
    if (hb < 0)
        return hb;
    if (fdt_getprop(fdt, hb, "iommu-map", NULL))
        return -EEXIST;
    if (map->len == 0)
        return 0;
    if (map->len * sizeof(fdt32_t) > INT_MAX)
        return -ENOSPC;
    err = fdt_setprop(fdt, hb, "iommu-map", map->data, (int)(map->len * sizeof(fdt32_t)));
    return err ? fdt_errno(err) : 0;
}

static int add_pci_endpoints(void *fdt, const struct viommu_topology *topo, uint32_t phandle)
{
    g_autofree const struct viommu_pci_range **sorted = NULL;
    size_t n = topo->n_pci_ranges, start, i;
    int ret;

    if (!n)
        return 0;
    sorted = g_new(const struct viommu_pci_range *, n);
    for (i = 0; i < n; i++)
        sorted[i] = &topo->pci_ranges[i];
    qsort(sorted, n, sizeof(*sorted), range_cmp);

    for (start = 0; start < n; start = i) {
        for (i = start; i < n && sorted[i]->segment == sorted[start]->segment; i++)
            ;
        ret = add_iommu_map(fdt, topo, phandle, sorted + start, i - start);
        if (ret)
            return ret;
    }
    return 0;
}

static int add_mmio_endpoints(void *fdt, const struct viommu_topology *topo, uint32_t phandle)
{
    for (size_t i = 0; i < topo->n_mmio_endpoints; i++) {
        const struct viommu_mmio_endpoint *ep = &topo->mmio_endpoints[i];
        fdt32_t iommus[2] = {cpu_to_fdt32(phandle), cpu_to_fdt32(ep->endpoint)};
        int node = find_node_by_base(fdt, ep->base), err;

        if (node < 0)
            return node;
        if (fdt_getprop(fdt, node, "iommus", NULL))
            return -EEXIST;
        err = fdt_setprop(fdt, node, "iommus", iommus, sizeof(iommus));
        if (err)
            return fdt_errno(err);
    }
    return 0;
}

static int add_to_copy(void *fdt, const struct viommu_topology *topo, uint32_t *phandle)
{
    int ret = fdt_generate_phandle(fdt, phandle);

    if (ret)
        return fdt_errno(ret);
    if (topo->transport == VIOMMU_TRANSPORT_PCI)
        ret = add_pci_iommu(fdt, topo, *phandle);
    else
        ret = add_mmio_iommu(fdt, topo, phandle);
    if (!ret)
        ret = add_pci_endpoints(fdt, topo, *phandle);
    if (!ret)
        ret = add_mmio_endpoints(fdt, topo, *phandle);
    return ret;
}

int viommu_fdt_add(void *fdt, size_t bufsize, const struct viommu_topology *topo, uint32_t *phandle)
{
    int size = bufsize > INT_MAX ? INT_MAX : (int)bufsize;
    uint32_t ph = 0;
    void *work;
    int ret;

    ret = viommu_topology_check(topo, NULL);
    if (ret)
        return ret;
    /*
     * Versions before 16 are refused before fdt_check_full() sees them:
     * libfdt 1.6.1's fdt_check_full() dereferences the NULL name
     * fdt_get_name() returns for such a blob's root node.
     */
    if (!fdt || bufsize < FDT_V1_SIZE || fdt_check_header(fdt) != 0 || fdt_version(fdt) < 16 ||
        fdt_totalsize(fdt) > (size_t)size || fdt_check_full(fdt, fdt_totalsize(fdt)) != 0)
        return -EINVAL;

    work = g_try_malloc(bufsize);
    if (!work)
        return -ENOMEM;
    ret = fdt_open_into(fdt, work, size);
    if (ret) {
        ret = fdt_errno(ret);
        goto out_free;
    }
    ret = add_to_copy(work, topo, &ph);
    if (ret)
        goto out_free;
    memcpy(fdt, work, fdt_totalsize(work));
    if (phandle)
        *phandle = ph;

out_free:
    g_free(work);
    return ret;
}

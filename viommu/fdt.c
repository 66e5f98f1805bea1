// SPDX-License-Identifier: MIT
/*
 * fdt.c - adding the virtio-iommu to a flattened device tree, following
 * Linux's bindings (Documentation/devicetree/bindings/virtio/iommu.yaml,
 * pci/pci-iommu.txt, iommu/iommu.txt) and the layout QEMU gives its arm
 * `virt` machine.
 *
 * Every change is made on a working copy opened with fdt_open_into();
 * the caller's buffer is overwritten only once everything succeeded.
 *
 * One read-only walk indexes the caller's tree (host bridges, nodes by
 * the first address of their `reg`), every check runs against that
 * index and plans the edits, and a second walk copies the tree into the
 * working buffer with libfdt's sequential writer, adding the planned
 * properties and node on the way. Splicing each edit into the blob
 * instead (fdt_setprop) would move the rest of the blob every time,
 * which is quadratic for tens of thousands of endpoints; this is
 * O(n log n). New properties come first in their node and a new node
 * first among its siblings, where fdt_setprop() and fdt_add_subnode()
 * would put them, so the result prints as QEMU's trees do.
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
    *val = fdt32_ld(p); /* the blob may sit at any address */
    return true;
}

/* Reads @cells big-endian cells at @p as one number; false when it needs more than 64 bits. */
static bool read_cells(const fdt32_t *p, int cells, uint64_t *val)
{
    uint64_t v = 0;

    for (int i = 0; i < cells; i++) {
        if (v >> 32)
            return false;
        v = (v << 32) | fdt32_ld(&p[i]);
    }
    *val = v;
    return true;
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

/* ------------------------------------------------------------------ */
/* Index of the tree                                                   */
/* ------------------------------------------------------------------ */

struct bridge {
    bool has_domain;
    uint32_t domain; /* linux,pci-domain */
    int offset;
};

struct reg_node {
    uint64_t base; /* first address of its reg */
    int offset;
};

struct tree_index {
    int root;
    GArray *bridges; /* struct bridge, by (has_domain first, domain, offset) */
    GArray *regs;    /* struct reg_node, by (base, offset) */
};

static int bridge_cmp(const void *a, const void *b)
{
    const struct bridge *x = a, *y = b;

    if (x->has_domain != y->has_domain)
        return x->has_domain ? -1 : 1;
    if (x->domain != y->domain)
        return x->domain < y->domain ? -1 : 1;
    return (x->offset > y->offset) - (x->offset < y->offset);
}

static int reg_cmp(const void *a, const void *b)
{
    const struct reg_node *x = a, *y = b;

    if (x->base != y->base)
        return x->base < y->base ? -1 : 1;
    return (x->offset > y->offset) - (x->offset < y->offset);
}

static void tree_index_clear(struct tree_index *ix)
{
    g_clear_pointer(&ix->bridges, g_array_unref);
    g_clear_pointer(&ix->regs, g_array_unref);
}

/*
 * Walks the tree once. A host bridge is a device_type "pci" node whose
 * parent is not one; a reg node is any other node outside PCI buses
 * (their reg holds PCI addresses) with a reg its parent's
 * #address-cells can read. Returns 0 or -EINVAL for a tree too deep.
 */
static int tree_index_build(const void *fdt, struct tree_index *ix)
{
    int stack[WALK_MAX_DEPTH];
    bool pci[WALK_MAX_DEPTH];
    /*
     * Starting at -1, libfdt counts the root as depth 0; the depth drops
     * below 0 once the walk leaves the root (a checked tree has one).
     */
    int depth = -1, node;

    ix->bridges = g_array_new(FALSE, FALSE, sizeof(struct bridge));
    ix->regs = g_array_new(FALSE, FALSE, sizeof(struct reg_node));
    for (node = fdt_next_node(fdt, -1, &depth); node >= 0 && depth >= 0;
         node = fdt_next_node(fdt, node, &depth)) {
        const fdt32_t *reg;
        int len, cells;

        if (depth >= WALK_MAX_DEPTH)
            return -EINVAL;
        stack[depth] = node;
        pci[depth] = node_is_pci(fdt, node);
        if (depth == 0) {
            ix->root = node;
            continue;
        }
        if (pci[depth - 1])
            continue;
        if (pci[depth]) {
            struct bridge b = {.offset = node};
            b.has_domain = node_get_u32(fdt, node, "linux,pci-domain", &b.domain);
            g_array_append_val(ix->bridges, b);
            continue;
        }
        reg = fdt_getprop(fdt, node, "reg", &len);
        cells = fdt_address_cells(fdt, stack[depth - 1]);
        if (reg && cells > 0 && len >= cells * (int)sizeof(fdt32_t)) {
            struct reg_node r = {.offset = node};
            if (read_cells(reg, cells, &r.base))
                g_array_append_val(ix->regs, r);
        }
    }
    g_array_sort(ix->bridges, bridge_cmp);
    g_array_sort(ix->regs, reg_cmp);
    return 0;
}

/* The host bridge of PCI @segment (see viommu_fdt_add()), or -ENOENT. */
static int tree_index_bridge(const struct tree_index *ix, uint16_t segment)
{
    const struct bridge *b = (const struct bridge *)(const void *)ix->bridges->data;
    size_t lo = 0, hi = ix->bridges->len;

    /* Lowest index with has_domain and domain >= segment, or the first without a domain. */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (b[mid].has_domain && b[mid].domain < segment)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < ix->bridges->len && b[lo].has_domain && b[lo].domain == segment)
        return b[lo].offset;
    /* A lone bridge without a domain number is segment 0 (Linux numbers it so). */
    if (segment == 0 && ix->bridges->len == 1 && !b[0].has_domain)
        return b[0].offset;
    return -ENOENT;
}

/* The node whose reg starts at @base: its offset, -ENOENT, or -EINVAL when several do. */
static int tree_index_node_at(const struct tree_index *ix, uint64_t base)
{
    const struct reg_node *r = (const struct reg_node *)(const void *)ix->regs->data;
    size_t lo = 0, hi = ix->regs->len;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r[mid].base < base)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo >= ix->regs->len || r[lo].base != base)
        return -ENOENT;
    if (lo + 1 < ix->regs->len && r[lo + 1].base == base)
        return -EINVAL;
    return r[lo].offset;
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

/* ------------------------------------------------------------------ */
/* Edits                                                               */
/* ------------------------------------------------------------------ */

enum edit_kind {
    EDIT_PCI_IOMMU,      /* add virtio_iommu@D,F under the bridge */
    EDIT_MMIO_IOMMU_NEW, /* add virtio_mmio@ADDR under the root */
    EDIT_MMIO_IOMMU_EXISTING /* give the existing virtio-mmio node the IOMMU properties */,
    EDIT_IOMMU_MAP, /* set a bridge's iommu-map from the map array */
    EDIT_IOMMUS,    /* set an MMIO endpoint's iommus */
};

struct edit {
    int offset;
    enum edit_kind kind;
    uint32_t arg;     /* EDIT_IOMMUS: endpoint ID; EDIT_IOMMU_MAP: first cell in the map */
    uint32_t n_cells; /* EDIT_IOMMU_MAP: cells in the map */
    bool set_irq;     /* EDIT_MMIO_IOMMU_EXISTING: it has no interrupts of its own */
};

struct plan {
    uint32_t phandle;
    int root_address_cells, root_size_cells; /* for a new virtio_mmio node's reg */
    GArray *edits;                           /* struct edit */
    GArray *map;                             /* fdt32_t, every iommu-map back to back */
};

static int edit_cmp(const void *a, const void *b)
{
    const struct edit *x = a, *y = b;

    return (x->offset > y->offset) - (x->offset < y->offset);
}

static void plan_edit(struct plan *p, struct edit e)
{
    g_array_append_val(p->edits, e);
}

static void map_entry(GArray *map, uint32_t rid, uint32_t phandle, uint32_t id, uint32_t count)
{
    fdt32_t e[4] = {cpu_to_fdt32(rid), cpu_to_fdt32(phandle), cpu_to_fdt32(id),
                    cpu_to_fdt32(count)};

    g_array_append_vals(map, e, 4);
}

static int plan_pci_iommu(const void *fdt, const struct tree_index *ix,
                          const struct viommu_topology *topo, struct plan *p)
{
    const fdt32_t *busrange;
    unsigned int root_bus = 0;
    char name[32];
    int hb, len;

    hb = tree_index_bridge(ix, topo->pci_segment);
    if (hb < 0)
        return hb;
    busrange = fdt_getprop(fdt, hb, "bus-range", &len);
    if (busrange && len == 2 * (int)sizeof(fdt32_t))
        root_bus = fdt32_ld(&busrange[0]);
    if ((unsigned int)(topo->pci_bdf >> 8) != root_bus)
        return -EINVAL;
    snprintf(name, sizeof(name), "virtio_iommu@%x,%x", (topo->pci_bdf >> 3) & 0x1f,
             topo->pci_bdf & 7);
    if (fdt_subnode_offset(fdt, hb, name) >= 0)
        return -EEXIST;
    plan_edit(p, (struct edit){.offset = hb, .kind = EDIT_PCI_IOMMU});
    return 0;
}

static int plan_mmio_iommu(const void *fdt, const struct tree_index *ix,
                           const struct viommu_topology *topo, struct plan *p)
{
    int node = tree_index_node_at(ix, topo->mmio_base), cells;

    if (node == -EINVAL)
        return node;
    if (node >= 0) {
        /* The VMM already describes the transport: only the IOMMU parts are added. */
        if (fdt_node_check_compatible(fdt, node, "virtio,mmio") != 0 ||
            fdt_getprop(fdt, node, "#iommu-cells", NULL))
            return -EEXIST;
        /* Its own interrupts, where it has them, are the VMM's and stay. */
        bool set_irq = topo->mmio_irq_cells && !fdt_getprop(fdt, node, "interrupts", NULL);
        if (set_irq) {
            cells = interrupt_parent_cells(fdt, node);
            if (cells >= 0 && (unsigned int)cells != topo->mmio_irq_cells)
                return -EINVAL;
        }
        uint32_t own = fdt_get_phandle(fdt, node);
        if (own > FDT_MAX_PHANDLE)
            return -EINVAL; /* 0xffffffff is no phandle */
        if (own)
            p->phandle = own;
        plan_edit(
            p, (struct edit){.offset = node, .kind = EDIT_MMIO_IOMMU_EXISTING, .set_irq = set_irq});
        return 0;
    }

    int ac = fdt_address_cells(fdt, ix->root), sc = fdt_size_cells(fdt, ix->root);
    fdt32_t reg[4];
    char name[40];

    if (ac < 0 || sc < 0)
        return fdt_errno(ac < 0 ? ac : sc);
    if (!write_cells(reg, ac, topo->mmio_base) ||
        !write_cells(reg + ac, sc, viommu_topology_mmio_size(topo)))
        return -EINVAL;
    if (topo->mmio_irq_cells) {
        cells = interrupt_parent_cells(fdt, ix->root);
        if (cells >= 0 && (unsigned int)cells != topo->mmio_irq_cells)
            return -EINVAL;
    }
    snprintf(name, sizeof(name), "virtio_mmio@%" PRIx64, topo->mmio_base);
    if (fdt_subnode_offset(fdt, ix->root, name) >= 0)
        return -EEXIST;
    p->root_address_cells = ac;
    p->root_size_cells = sc;
    plan_edit(p, (struct edit){.offset = ix->root, .kind = EDIT_MMIO_IOMMU_NEW});
    return 0;
}

static int range_cmp(const void *a, const void *b)
{
    const struct viommu_pci_range *x = *(const struct viommu_pci_range *const *)a;
    const struct viommu_pci_range *y = *(const struct viommu_pci_range *const *)b;

    if (x->segment != y->segment)
        return x->segment < y->segment ? -1 : 1;
    return x->bdf_first < y->bdf_first ? -1 : x->bdf_first > y->bdf_first;
}

/* Plans the `iommu-map` of the bridge of @ranges[0]'s segment from its @n ranges. */
static int plan_iommu_map(const void *fdt, const struct tree_index *ix,
                          const struct viommu_topology *topo, struct plan *p,
                          const struct viommu_pci_range *const *ranges, size_t n)
{
    uint16_t segment = ranges[0]->segment;
    bool skip_self = topo->transport == VIOMMU_TRANSPORT_PCI && topo->pci_segment == segment;
    uint32_t start = p->map->len;
    int hb = tree_index_bridge(ix, segment);

    if (hb < 0)
        return hb;
    if (fdt_getprop(fdt, hb, "iommu-map", NULL))
        return -EEXIST;
    for (size_t i = 0; i < n; i++) {
        uint32_t first = ranges[i]->bdf_first, last = ranges[i]->bdf_last;
        uint32_t id = ranges[i]->endpoint_first;

        if (skip_self && first <= topo->pci_bdf && topo->pci_bdf <= last) {
            uint32_t self = topo->pci_bdf;

            if (self > first)
                map_entry(p->map, first, p->phandle, id, self - first);
            if (self < last)
                map_entry(p->map, self + 1, p->phandle, id + (self + 1 - first), last - self);
        } else {
            map_entry(p->map, first, p->phandle, id, last - first + 1);
        }
    }
    if (p->map->len > start)
        plan_edit(p, (struct edit){.offset = hb,
                                   .kind = EDIT_IOMMU_MAP,
                                   .arg = start,
                                   .n_cells = p->map->len - start});
    return 0;
}

static int plan_pci_endpoints(const void *fdt, const struct tree_index *ix,
                              const struct viommu_topology *topo, struct plan *p)
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
        ret = plan_iommu_map(fdt, ix, topo, p, sorted + start, i - start);
        if (ret)
            return ret;
    }
    return 0;
}

static int plan_mmio_endpoints(const void *fdt, const struct tree_index *ix,
                               const struct viommu_topology *topo, struct plan *p)
{
    for (size_t i = 0; i < topo->n_mmio_endpoints; i++) {
        const struct viommu_mmio_endpoint *ep = &topo->mmio_endpoints[i];
        int node = tree_index_node_at(ix, ep->base);

        if (node < 0)
            return node;
        if (fdt_getprop(fdt, node, "iommus", NULL))
            return -EEXIST;
        plan_edit(p, (struct edit){.offset = node, .kind = EDIT_IOMMUS, .arg = ep->endpoint});
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Writing the result                                                  */
/* ------------------------------------------------------------------ */

static int write_irq(void *out, const struct viommu_topology *topo)
{
    fdt32_t irq[VIOMMU_DESCRIBE_MAX_IRQ_CELLS];

    for (unsigned int i = 0; i < topo->mmio_irq_cells; i++)
        irq[i] = cpu_to_fdt32(topo->mmio_irq[i]);
    return fdt_property(out, "interrupts", irq, (int)(topo->mmio_irq_cells * sizeof(fdt32_t)));
}

/* Writes the properties edit @e adds to an existing node. */
static int write_new_props(void *out, const void *src, const struct viommu_topology *topo,
                           const struct plan *p, const struct edit *e)
{
    int err = 0;

    switch (e->kind) {
    case EDIT_IOMMU_MAP:
        if ((size_t)e->n_cells * sizeof(fdt32_t) > INT_MAX)
            return -FDT_ERR_NOSPACE;
        return fdt_property(out, "iommu-map", &g_array_index(p->map, fdt32_t, e->arg),
                            (int)(e->n_cells * sizeof(fdt32_t)));
    case EDIT_IOMMUS: {
        fdt32_t iommus[2] = {cpu_to_fdt32(p->phandle), cpu_to_fdt32(e->arg)};
        return fdt_property(out, "iommus", iommus, sizeof(iommus));
    }
    case EDIT_MMIO_IOMMU_EXISTING:
        if (!fdt_get_phandle(src, e->offset))
            err = fdt_property_u32(out, "phandle", p->phandle);
        err = err ? err : fdt_property_u32(out, "#iommu-cells", 1);
        if (!err && e->set_irq)
            err = write_irq(out, topo);
        return err;
    default:
        return 0;
    }
}

/* Writes the new virtio-iommu node of edit @e. */
static int write_new_node(void *out, const struct viommu_topology *topo, const struct plan *p,
                          const struct edit *e)
{
    static const char pci_compatible[] = "virtio,pci-iommu\0pci1af4,1057";
    char name[40];
    int err;

    if (e->kind == EDIT_PCI_IOMMU)
        snprintf(name, sizeof(name), "virtio_iommu@%x,%x", (topo->pci_bdf >> 3) & 0x1f,
                 topo->pci_bdf & 7);
    else
        snprintf(name, sizeof(name), "virtio_mmio@%" PRIx64, topo->mmio_base);
    err = fdt_begin_node(out, name);
    err = err ? err : fdt_property_u32(out, "phandle", p->phandle);
    err = err ? err : fdt_property_u32(out, "#iommu-cells", 1);
    if (err)
        return err;

    if (e->kind == EDIT_PCI_IOMMU) {
        /* A PCI child's reg is <phys.hi phys.mid phys.lo size.hi size.lo>; config space is 0. */
        fdt32_t reg[5] = {cpu_to_fdt32((uint32_t)topo->pci_bdf << 8)};

        err = fdt_property(out, "reg", reg, sizeof(reg));
        err = err ? err : fdt_property(out, "compatible", pci_compatible, sizeof(pci_compatible));
    } else {
        int ac = p->root_address_cells, sc = p->root_size_cells;
        fdt32_t reg[4];

        /* Both fit: checked while planning. */
        write_cells(reg, ac, topo->mmio_base);
        write_cells(reg + ac, sc, viommu_topology_mmio_size(topo));
        if (topo->mmio_dma_coherent)
            err = fdt_property(out, "dma-coherent", NULL, 0);
        if (!err && topo->mmio_irq_cells)
            err = write_irq(out, topo);
        err = err ? err : fdt_property(out, "reg", reg, (int)((ac + sc) * sizeof(fdt32_t)));
        err = err ? err : fdt_property(out, "compatible", "virtio,mmio", sizeof("virtio,mmio"));
    }
    return err ? err : fdt_end_node(out);
}

/*
 * Copies @src into @out (@size bytes) with the planned edits, whose
 * array is sorted by offset. Returns 0 or a libfdt error.
 */
static int write_tree(const void *src, void *out, int size, const struct viommu_topology *topo,
                      const struct plan *p)
{
    const struct edit *edits = (const struct edit *)(const void *)p->edits->data;
    size_t n_edits = p->edits->len, e = 0;
    const struct edit *pending = NULL; /* a new node, written before its parent's first child */
    int n_rsv = fdt_num_mem_rsv(src), offset = 0, next, err;

    err = fdt_create(out, size);
    for (int i = 0; !err && i < n_rsv; i++) {
        uint64_t address, rsv_size;

        err = fdt_get_mem_rsv(src, i, &address, &rsv_size);
        err = err ? err : fdt_add_reservemap_entry(out, address, rsv_size);
    }
    err = err ? err : fdt_finish_reservemap(out);

    while (!err) {
        uint32_t tag = fdt_next_tag(src, offset, &next);
        const char *name;
        const void *val;
        int len;

        if (next < 0)
            return next;
        if (pending && (tag == FDT_BEGIN_NODE || tag == FDT_END_NODE)) {
            err = write_new_node(out, topo, p, pending);
            pending = NULL;
            if (err)
                break;
        }
        switch (tag) {
        case FDT_BEGIN_NODE:
            name = fdt_get_name(src, offset, NULL);
            if (!name)
                return -FDT_ERR_BADSTRUCTURE;
            err = fdt_begin_node(out, name);
            for (; !err && e < n_edits && edits[e].offset == offset; e++) {
                if (edits[e].kind == EDIT_PCI_IOMMU || edits[e].kind == EDIT_MMIO_IOMMU_NEW)
                    pending = &edits[e];
                else
                    err = write_new_props(out, src, topo, p, &edits[e]);
            }
            break;
        case FDT_PROP:
            val = fdt_getprop_by_offset(src, offset, &name, &len);
            if (!val)
                return len;
            /* libfdt 1.6.1's fdt_check_full() lets a length of 2^31 or more through. */
            if (len < 0)
                return -FDT_ERR_BADSTRUCTURE;
            err = fdt_property(out, name, val, len);
            break;
        case FDT_END_NODE:
            err = fdt_end_node(out);
            break;
        case FDT_NOP:
            break;
        case FDT_END:
            return fdt_finish(out);
        default:
            return -FDT_ERR_BADSTRUCTURE;
        }
        offset = next;
    }
    return err;
}

/* Plans against @src and writes the result into @out of @size bytes. */
static int describe_into(const void *src, void *out, int size, const struct viommu_topology *topo,
                         uint32_t *phandle)
{
    struct tree_index ix = {0};
    struct plan p = {
        .edits = g_array_new(FALSE, FALSE, sizeof(struct edit)),
        .map = g_array_new(FALSE, FALSE, sizeof(fdt32_t)),
    };
    int ret = fdt_generate_phandle(src, &p.phandle);

    if (ret) {
        ret = fdt_errno(ret);
        goto out;
    }
    /* Some libfdt releases count a phandle of 0xffffffff (never valid) as
     * the largest and hand out its successor, 0. */
    if (p.phandle == 0 || p.phandle > FDT_MAX_PHANDLE) {
        ret = -ERANGE;
        goto out;
    }
    ret = tree_index_build(src, &ix);
    if (ret)
        goto out;
    /* The IOMMU first: an existing node may bring its own phandle for the others. */
    if (topo->transport == VIOMMU_TRANSPORT_PCI)
        ret = plan_pci_iommu(src, &ix, topo, &p);
    else
        ret = plan_mmio_iommu(src, &ix, topo, &p);
    ret = ret ? ret : plan_pci_endpoints(src, &ix, topo, &p);
    ret = ret ? ret : plan_mmio_endpoints(src, &ix, topo, &p);
    if (ret)
        goto out;

    /* Stable: a bridge's iommu-map and its new node keep their planned order. */
    g_array_sort(p.edits, edit_cmp);
    ret = write_tree(src, out, size, topo, &p);
    /* The blob keeps the whole buffer as room to grow, as fdt_open_into() leaves it. */
    ret = ret ? ret : fdt_open_into(out, out, size);
    ret = fdt_errno(ret);
    if (!ret)
        *phandle = p.phandle;
out:
    tree_index_clear(&ix);
    g_array_unref(p.edits);
    g_array_unref(p.map);
    return ret;
}

/*
 * libfdt 1.6.1 trusts property lengths while it walks: a length of 2^31
 * or more moves its walkers backwards, so fdt_check_full() loops forever
 * on a length of -12 and lets -2 through to memcpy. This walk runs
 * first, reading every tag itself with lengths as unsigned numbers
 * bounded by the structure block. The header was checked already, so
 * the block lies inside the blob.
 */
static bool fdt_struct_sane(const void *fdt)
{
    const uint8_t *base = (const uint8_t *)fdt + fdt_off_dt_struct(fdt);
    uint32_t size = fdt_version(fdt) >= 17 ? fdt_size_dt_struct(fdt)
                                           : fdt_totalsize(fdt) - fdt_off_dt_struct(fdt);
    uint32_t off = 0;

    for (;;) {
        fdt32_t word;
        const uint8_t *nul;

        if (off > size || size - off < sizeof(word))
            return false;
        memcpy(&word, base + off, sizeof(word));
        off += sizeof(word);
        switch (fdt32_to_cpu(word)) {
        case FDT_BEGIN_NODE:
            nul = memchr(base + off, 0, size - off);
            if (!nul)
                return false;
            off = (uint32_t)(nul - base) + 1;
            break;
        case FDT_PROP:
            /* len, then nameoff, then len bytes of value. */
            if (size - off < 2 * sizeof(word))
                return false;
            memcpy(&word, base + off, sizeof(word));
            off += 2 * sizeof(word);
            if (fdt32_to_cpu(word) > size - off)
                return false;
            off += fdt32_to_cpu(word);
            break;
        case FDT_END_NODE:
        case FDT_NOP:
            break;
        case FDT_END:
            return true;
        default:
            return false;
        }
        /* Tags are 4-byte aligned; off <= size < 2^32 - 3, so this cannot wrap. */
        off = (off + 3) & ~3u;
    }
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
     * fdt_get_name() returns for such a blob's root node. Property
     * lengths are checked before it too (fdt_struct_sane()).
     */
    if (!fdt || bufsize < FDT_V1_SIZE || fdt_check_header(fdt) != 0 || fdt_version(fdt) < 16 ||
        fdt_totalsize(fdt) > (size_t)size || !fdt_struct_sane(fdt) ||
        fdt_check_full(fdt, fdt_totalsize(fdt)) != 0)
        return -EINVAL;

    work = g_try_malloc((size_t)size);
    if (!work)
        return -ENOMEM;
    ret = describe_into(fdt, work, size, topo, &ph);
    if (ret)
        goto out_free;
    memcpy(fdt, work, fdt_totalsize(work));
    if (phandle)
        *phandle = ph;

out_free:
    g_free(work);
    return ret;
}

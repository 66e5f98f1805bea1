// SPDX-License-Identifier: MIT
/*
 * describe.c - `viommu describe`: shows what a VMM hands the guest's
 * firmware for a virtio-iommu topology: the device-tree nodes (as dts
 * text or a .dtb) or the ACPI VIOT table (hex and decoded, or binary).
 */
#include "describe.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>
#include <libfdt.h>

#include "viommu.h"

/* A blob grows by doubling until the description fits, up to this. */
#define FDT_MAX_SIZE (64u << 20)

/* The skeleton's ECAM windows: segment N at 0x10000000 * (N + 1), 256 buses each. */
#define SKELETON_ECAM_SIZE 0x10000000ull

struct options {
    char *pci_iommu;
    char *mmio_iommu;
    char *mmio_size;
    char *mmio_irq_cells;
    char *segment;
    char **endpoints;
    char **mmio_endpoints;
    gboolean viot;
    gboolean builtin_printer;
    char *dtb;
    char *decode_viot;
    char *output;
};

struct topo_storage {
    struct viommu_topology topo;
    GArray *pci_ranges;     /* struct viommu_pci_range */
    GArray *mmio_endpoints; /* struct viommu_mmio_endpoint */
};

static void usage_error(GError **error, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static void usage_error(GError **error, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error_literal(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, msg);
}

/* Parses all of @s as an unsigned number (0x for hex) no greater than @max. */
static bool parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    char *end;
    guint64 v;

    if (!s || !*s || !g_ascii_isdigit(*s))
        return false;
    errno = 0;
    v = g_ascii_strtoull(s, &end, 0);
    if (errno || *end || v > max)
        return false;
    *out = v;
    return true;
}

/* Parses all of @s as hex digits (1..@digits of them) no greater than @max. */
static bool parse_hex_field(const char *s, size_t len, size_t digits, unsigned int max,
                            unsigned int *out)
{
    unsigned int v = 0;

    if (len == 0 || len > digits)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (!g_ascii_isxdigit(s[i]))
            return false;
        v = v * 16 + (unsigned int)g_ascii_xdigit_value(s[i]);
    }
    if (v > max)
        return false;
    *out = v;
    return true;
}

/*
 * Parses a PCI address: "[SEG:]BB:DD.F" or a 4-digit requester ID
 * ("00ff"). *@segment is set only when one is given, as *@has_segment says.
 */
static bool parse_bdf(const char *s, uint16_t *segment, bool *has_segment, uint16_t *bdf)
{
    g_auto(GStrv) parts = g_strsplit(s, ":", 0);
    guint n = g_strv_length(parts);
    unsigned int seg = 0, bus, dev, fn;
    const char *devfn, *dot;

    *has_segment = false;
    if (n == 1) {
        if (strlen(s) != 4 || !parse_hex_field(s, 4, 4, 0xffff, &bus))
            return false;
        *bdf = (uint16_t)bus;
        return true;
    }
    if (n == 3) {
        if (!parse_hex_field(parts[0], strlen(parts[0]), 4, 0xffff, &seg))
            return false;
        *has_segment = true;
    } else if (n != 2) {
        return false;
    }
    devfn = parts[n - 1];
    dot = strchr(devfn, '.');
    if (!parse_hex_field(parts[n - 2], strlen(parts[n - 2]), 2, 0xff, &bus) || !dot ||
        !parse_hex_field(devfn, (size_t)(dot - devfn), 2, 0x1f, &dev) ||
        !parse_hex_field(dot + 1, strlen(dot + 1), 1, 7, &fn))
        return false;
    if (*has_segment)
        *segment = (uint16_t)seg;
    *bdf = (uint16_t)(bus << 8 | dev << 3 | fn);
    return true;
}

/* Splits "A@B" into its two parts; *@id is NULL when there is no '@'. */
static char *split_id(const char *s, const char **id)
{
    const char *at = strchr(s, '@');

    *id = at ? at + 1 : NULL;
    return at ? g_strndup(s, (gsize)(at - s)) : g_strdup(s);
}

static bool parse_endpoints(const char *arg, uint16_t default_segment, struct viommu_pci_range *r,
                            bool *has_id, GError **error)
{
    const char *id;
    g_autofree char *span = split_id(arg, &id);
    char *dash = strchr(span, '-');
    uint16_t seg_first = default_segment, seg_last = default_segment;
    bool seg1 = false, seg2 = false;
    uint64_t v;

    if (!dash) {
        usage_error(error, "--endpoints %s: expected FIRST-LAST[@ID]", arg);
        return false;
    }
    *dash = '\0';
    if (!parse_bdf(span, &seg_first, &seg1, &r->bdf_first) ||
        !parse_bdf(dash + 1, &seg_last, &seg2, &r->bdf_last)) {
        usage_error(error,
                    "--endpoints %s: FIRST and LAST must be [SEG:]BB:DD.F or 4-digit "
                    "requester IDs",
                    arg);
        return false;
    }
    if (seg1 && seg2 && seg_first != seg_last) {
        usage_error(error, "--endpoints %s: a range stays within one segment", arg);
        return false;
    }
    r->segment = seg1 ? seg_first : seg2 ? seg_last : default_segment;
    *has_id = id != NULL;
    if (id) {
        if (!parse_u64(id, UINT32_MAX, &v)) {
            usage_error(error, "--endpoints %s: the endpoint ID must be a 32-bit number", arg);
            return false;
        }
        r->endpoint_first = (uint32_t)v;
    } else {
        /* The endpoint ID of a PCI device is its requester ID, segments side by side. */
        r->endpoint_first = (uint32_t)r->segment << 16 | r->bdf_first;
    }
    return true;
}

static bool parse_cells(const char *arg, struct viommu_topology *t, GError **error)
{
    g_auto(GStrv) cells = g_strsplit(arg, ",", 0);
    guint n = g_strv_length(cells);
    uint64_t v;

    if (n == 0 || n > VIOMMU_DESCRIBE_MAX_IRQ_CELLS) {
        usage_error(error, "--mmio-irq-cells %s: give 1 to %d cells", arg,
                    VIOMMU_DESCRIBE_MAX_IRQ_CELLS);
        return false;
    }
    for (guint i = 0; i < n; i++) {
        if (!parse_u64(cells[i], UINT32_MAX, &v)) {
            usage_error(error, "--mmio-irq-cells %s: each cell is a 32-bit number", arg);
            return false;
        }
        t->mmio_irq[i] = (uint32_t)v;
    }
    t->mmio_irq_cells = n;
    return true;
}

/* Builds the topology from the options; false with @error set when one is malformed. */
static bool build_topology(const struct options *o, struct topo_storage *s, GError **error)
{
    struct viommu_topology *t = &s->topo;
    uint16_t segment = 0;
    uint64_t v, next_id = 0;
    bool has_seg;
    g_autoptr(GArray) mmio_has_id = g_array_new(FALSE, FALSE, sizeof(gboolean));

    memset(t, 0, sizeof(*t));
    if (o->segment) {
        if (!parse_u64(o->segment, 0xffff, &v)) {
            usage_error(error, "--segment %s: expected a number 0..0xffff", o->segment);
            return false;
        }
        segment = (uint16_t)v;
    }
    if (!!o->pci_iommu == !!o->mmio_iommu) {
        usage_error(error, "give exactly one of --pci-iommu and --mmio-iommu");
        return false;
    }
    if (o->pci_iommu) {
        t->transport = VIOMMU_TRANSPORT_PCI;
        t->pci_segment = segment;
        if (!parse_bdf(o->pci_iommu, &t->pci_segment, &has_seg, &t->pci_bdf)) {
            usage_error(error, "--pci-iommu %s: expected [SEG:]BB:DD.F", o->pci_iommu);
            return false;
        }
        if (o->mmio_size || o->mmio_irq_cells) {
            usage_error(error, "--mmio-size and --mmio-irq-cells need --mmio-iommu");
            return false;
        }
    } else {
        g_autofree char *addr = g_strdup(o->mmio_iommu);
        char *comma = strchr(addr, ',');

        t->transport = VIOMMU_TRANSPORT_MMIO;
        t->mmio_dma_coherent = true;
        if (comma)
            *comma = '\0';
        if (!parse_u64(addr, UINT64_MAX, &t->mmio_base)) {
            usage_error(error, "--mmio-iommu %s: expected ADDR[,IRQ]", o->mmio_iommu);
            return false;
        }
        if (comma) {
            /* The arm virt machine's virtio-mmio interrupts: GIC SPI, edge-triggered. */
            if (!parse_u64(comma + 1, UINT32_MAX, &v)) {
                usage_error(error, "--mmio-iommu %s: IRQ must be a number", o->mmio_iommu);
                return false;
            }
            t->mmio_irq[0] = 0;
            t->mmio_irq[1] = (uint32_t)v;
            t->mmio_irq[2] = 1;
            t->mmio_irq_cells = 3;
        }
        if (o->mmio_irq_cells && !parse_cells(o->mmio_irq_cells, t, error))
            return false;
        if (o->mmio_size &&
            (!parse_u64(o->mmio_size, UINT64_MAX, &t->mmio_size) || t->mmio_size == 0)) {
            usage_error(error, "--mmio-size %s: expected a non-zero size", o->mmio_size);
            return false;
        }
    }

    for (char **e = o->endpoints; e && *e; e++) {
        struct viommu_pci_range r = {0};
        bool has_id;

        if (!parse_endpoints(*e, segment, &r, &has_id, error))
            return false;
        if (r.bdf_first > r.bdf_last) {
            usage_error(error, "--endpoints %s: LAST comes before FIRST", *e);
            return false;
        }
        g_array_append_val(s->pci_ranges, r);
        next_id = MAX(next_id, (uint64_t)r.endpoint_first + (r.bdf_last - r.bdf_first) + 1);
    }
    for (char **e = o->mmio_endpoints; e && *e; e++) {
        const char *id;
        g_autofree char *addr = split_id(*e, &id);
        struct viommu_mmio_endpoint ep = {0};
        gboolean has_id = id != NULL;

        if (!parse_u64(addr, UINT64_MAX, &ep.base) || (id && !parse_u64(id, UINT32_MAX, &v))) {
            usage_error(error, "--mmio-endpoint %s: expected ADDR[@ID]", *e);
            return false;
        }
        if (id) {
            ep.endpoint = (uint32_t)v;
            next_id = MAX(next_id, v + 1);
        }
        g_array_append_val(s->mmio_endpoints, ep);
        g_array_append_val(mmio_has_id, has_id);
    }
    /* MMIO endpoints without an ID take the next ones after every ID given. */
    for (guint i = 0; i < s->mmio_endpoints->len; i++) {
        if (g_array_index(mmio_has_id, gboolean, i))
            continue;
        if (next_id > UINT32_MAX) {
            usage_error(error, "no endpoint ID is left for the MMIO endpoints");
            return false;
        }
        g_array_index(s->mmio_endpoints, struct viommu_mmio_endpoint, i).endpoint =
            (uint32_t)next_id++;
    }

    t->pci_ranges = (const struct viommu_pci_range *)(const void *)s->pci_ranges->data;
    t->n_pci_ranges = s->pci_ranges->len;
    t->mmio_endpoints = (const struct viommu_mmio_endpoint *)(const void *)s->mmio_endpoints->data;
    t->n_mmio_endpoints = s->mmio_endpoints->len;
    return viommu_topology_check(t, error) == 0;
}

/* ------------------------------------------------------------------ */
/* Device tree                                                         */
/* ------------------------------------------------------------------ */

/* Writes a host bridge node for @segment (sequential-write mode). */
static int skeleton_host_bridge(void *fdt, uint16_t segment)
{
    uint64_t base = SKELETON_ECAM_SIZE * (segment + 1ull);
    fdt32_t reg[4] = {cpu_to_fdt32((uint32_t)(base >> 32)), cpu_to_fdt32((uint32_t)base), 0,
                      cpu_to_fdt32((uint32_t)SKELETON_ECAM_SIZE)};
    fdt32_t bus_range[2] = {0, cpu_to_fdt32(0xff)};
    char name[32];
    int err;

    snprintf(name, sizeof(name), "pcie@%" PRIx64, base);
    err = fdt_begin_node(fdt, name);
    err = err ? err : fdt_property_string(fdt, "compatible", "pci-host-ecam-generic");
    err = err ? err : fdt_property_string(fdt, "device_type", "pci");
    err = err ? err : fdt_property_u32(fdt, "#address-cells", 3);
    err = err ? err : fdt_property_u32(fdt, "#size-cells", 2);
    err = err ? err : fdt_property_u32(fdt, "linux,pci-domain", segment);
    err = err ? err : fdt_property(fdt, "bus-range", bus_range, sizeof(bus_range));
    err = err ? err : fdt_property(fdt, "reg", reg, sizeof(reg));
    return err ? err : fdt_end_node(fdt);
}

/* Writes a virtio-mmio node at @base (sequential-write mode). */
static int skeleton_mmio_device(void *fdt, uint64_t base)
{
    fdt32_t reg[4] = {cpu_to_fdt32((uint32_t)(base >> 32)), cpu_to_fdt32((uint32_t)base), 0,
                      cpu_to_fdt32(VIOMMU_MMIO_DEFAULT_SIZE)};
    char name[40];
    int err;

    snprintf(name, sizeof(name), "virtio_mmio@%" PRIx64, base);
    err = fdt_begin_node(fdt, name);
    err = err ? err : fdt_property_string(fdt, "compatible", "virtio,mmio");
    err = err ? err : fdt_property(fdt, "reg", reg, sizeof(reg));
    err = err ? err : fdt_property(fdt, "dma-coherent", NULL, 0);
    return err ? err : fdt_end_node(fdt);
}

static int u16_cmp(const void *a, const void *b)
{
    return (int)*(const uint16_t *)a - (int)*(const uint16_t *)b;
}

static int u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return (x > y) - (x < y);
}

/*
 * Writes the skeleton into @fdt of @size bytes with libfdt's sequential
 * writer, which costs O(size) where adding nodes one by one to a
 * finished tree would search the root's children each time.
 */
static int write_skeleton(void *fdt, int size, const uint16_t *segs, size_t n_segs,
                          const uint64_t *bases, size_t n_bases)
{
    int err = fdt_create(fdt, size);

    err = err ? err : fdt_finish_reservemap(fdt);
    err = err ? err : fdt_begin_node(fdt, "");
    err = err ? err : fdt_property_string(fdt, "compatible", "linux,dummy-virt");
    err = err ? err : fdt_property_u32(fdt, "#address-cells", 2);
    err = err ? err : fdt_property_u32(fdt, "#size-cells", 2);
    for (size_t i = 0; !err && i < n_segs; i++)
        if (i == 0 || segs[i] != segs[i - 1])
            err = skeleton_host_bridge(fdt, segs[i]);
    for (size_t i = 0; !err && i < n_bases; i++)
        err = skeleton_mmio_device(fdt, bases[i]);
    err = err ? err : fdt_end_node(fdt);
    return err ? err : fdt_finish(fdt);
}

/*
 * A minimal tree in the arm virt machine's style holding what the
 * topology refers to: a host bridge per PCI segment in use and a
 * virtio-mmio node per MMIO endpoint, in address order.
 */
static void *build_skeleton(const struct viommu_topology *t, size_t *size, GError **error)
{
    g_autofree uint16_t *segs = g_new(uint16_t, t->n_pci_ranges + 1);
    g_autofree uint64_t *bases = g_new(uint64_t, t->n_mmio_endpoints + 1);
    size_t n_segs = 0, bufsize = 4096 + (t->n_pci_ranges + t->n_mmio_endpoints) * 160;
    int err;

    if (t->transport == VIOMMU_TRANSPORT_PCI)
        segs[n_segs++] = t->pci_segment;
    for (size_t i = 0; i < t->n_pci_ranges; i++)
        segs[n_segs++] = t->pci_ranges[i].segment;
    qsort(segs, n_segs, sizeof(*segs), u16_cmp);
    for (size_t i = 0; i < t->n_mmio_endpoints; i++)
        bases[i] = t->mmio_endpoints[i].base;
    qsort(bases, t->n_mmio_endpoints, sizeof(*bases), u64_cmp);

    for (;;) {
        g_autofree void *fdt = g_malloc(bufsize);

        err = write_skeleton(fdt, (int)bufsize, segs, n_segs, bases, t->n_mmio_endpoints);
        if (!err) {
            *size = fdt_totalsize(fdt);
            return g_steal_pointer(&fdt);
        }
        if (err != -FDT_ERR_NOSPACE || bufsize >= FDT_MAX_SIZE)
            break;
        bufsize = MIN(bufsize * 2, (size_t)FDT_MAX_SIZE);
    }
    g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_FAILED, "cannot build the base tree: %s",
                fdt_strerror(err));
    return NULL;
}

static void *load_dtb(const char *path, size_t *size, GError **error)
{
    g_autofree char *data = NULL;
    gsize len;

    if (!g_file_get_contents(path, &data, &len, error))
        return NULL;
    /*
     * Only the header is checked here: viommu_fdt_add() checks the rest,
     * guarding against the blobs libfdt 1.6.1's fdt_check_full() crashes
     * or hangs on.
     */
    if (len < FDT_V1_SIZE || fdt_check_header(data) != 0 || fdt_totalsize(data) > len) {
        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL, "%s is not a valid .dtb", path);
        return NULL;
    }
    *size = len;
    return g_steal_pointer(&data);
}

static const char *fdt_add_failure(int err)
{
    switch (err) {
    case -ENOENT:
        return "the tree has no host bridge for a PCI segment in use, or no node at an MMIO "
               "endpoint's address";
    case -EEXIST:
        return "the tree already describes this virtio-iommu or an endpoint's IOMMU";
    case -EINVAL:
        return "the tree is malformed or does not fit the topology (virtio-iommu off its host "
               "bridge's root bus, interrupt cells not matching the interrupt parent, an "
               "address that fits no reg or matches several nodes)";
    case -ENOSPC:
        return "the tree grew past its size limit";
    default:
        return g_strerror(-err);
    }
}

/* Adds the virtio-iommu to @base, growing the buffer until it fits. */
static void *describe_fdt(const void *base, size_t base_size, const struct viommu_topology *t,
                          GError **error)
{
    /* Enough for the usual case at once: an iommus or two map entries per endpoint. */
    size_t size = MAX(base_size, (size_t)fdt_totalsize(base)) + 4096 +
                  32 * (t->n_pci_ranges + t->n_mmio_endpoints);
    int err;

    for (;;) {
        g_autofree void *buf = g_malloc0(size);

        memcpy(buf, base, fdt_totalsize(base));
        err = viommu_fdt_add(buf, size, t, NULL);
        if (err == 0) {
            fdt_pack(buf);
            return g_steal_pointer(&buf);
        }
        if (err != -ENOSPC || size >= FDT_MAX_SIZE)
            break;
        size = MIN(size * 2, (size_t)FDT_MAX_SIZE);
    }
    g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(-err),
                "cannot add the virtio-iommu to the device tree: %s", fdt_add_failure(err));
    return NULL;
}

/* dtc's rule: printable text ending in a NUL, with no more NULs than other bytes. */
static bool looks_like_strings(const uint8_t *p, int len)
{
    int nul = 0;

    if (len == 0 || p[len - 1] != '\0')
        return false;
    for (int i = 0; i < len; i++) {
        if (p[i] == '\0')
            nul++;
        else if (!isprint(p[i]) && !strchr("\a\b\t\n\v\f\r", p[i]))
            return false;
    }
    return nul <= len - nul;
}

static void print_value(GString *out, const uint8_t *p, int len)
{
    if (len == 0)
        return;
    if (looks_like_strings(p, len)) {
        g_string_append(out, " = \"");
        for (int i = 0; i < len - 1; i++) {
            const char *esc = NULL;
            switch (p[i]) {
            case '\0':
                esc = "\\0";
                break;
            case '\a':
                esc = "\\a";
                break;
            case '\b':
                esc = "\\b";
                break;
            case '\t':
                esc = "\\t";
                break;
            case '\n':
                esc = "\\n";
                break;
            case '\v':
                esc = "\\v";
                break;
            case '\f':
                esc = "\\f";
                break;
            case '\r':
                esc = "\\r";
                break;
            case '\\':
                esc = "\\\\";
                break;
            case '"':
                esc = "\\\"";
                break;
            }
            if (esc)
                g_string_append(out, esc);
            else
                g_string_append_c(out, (char)p[i]);
        }
        g_string_append_c(out, '"');
    } else if (len % 4 == 0) {
        g_string_append(out, " = <");
        for (int i = 0; i < len; i += 4) {
            fdt32_t cell;
            memcpy(&cell, p + i, 4);
            g_string_append_printf(out, "%s0x%02x", i ? " " : "", fdt32_to_cpu(cell));
        }
        g_string_append_c(out, '>');
    } else {
        g_string_append(out, " = [");
        for (int i = 0; i < len; i++)
            g_string_append_printf(out, "%s%02x", i ? " " : "", p[i]);
        g_string_append_c(out, ']');
    }
}

/* Prints a (checked) blob as dts text in the layout `dtc -I dtb -O dts` uses. */
static char *fdt_to_dts(const void *fdt)
{
    GString *out = g_string_new("/dts-v1/;\n\n");
    int n = fdt_num_mem_rsv(fdt), depth = 0;

    for (int i = 0; i < n; i++) {
        uint64_t addr, size;
        fdt_get_mem_rsv(fdt, i, &addr, &size);
        g_string_append_printf(out, "/memreserve/\t0x%016" PRIx64 " 0x%016" PRIx64 ";\n", addr,
                               size);
    }
    if (n > 0)
        g_string_append_c(out, '\n');

    for (int off = 0, next;; off = next) {
        uint32_t tag = fdt_next_tag(fdt, off, &next);
        g_autofree char *indent = g_strnfill((gsize)depth, '\t');

        if (tag == FDT_END || next < 0)
            break;
        if (tag == FDT_BEGIN_NODE) {
            const char *name = fdt_get_name(fdt, off, NULL);
            if (depth > 0)
                g_string_append_c(out, '\n');
            g_string_append_printf(out, "%s%s {\n", indent, depth ? (name ? name : "") : "/");
            depth++;
        } else if (tag == FDT_END_NODE) {
            depth--;
            g_string_append_printf(out, "%.*s};\n", depth, indent);
        } else if (tag == FDT_PROP) {
            const char *name;
            int len;
            const uint8_t *val = fdt_getprop_by_offset(fdt, off, &name, &len);
            if (!val || len < 0)
                break;
            g_string_append_printf(out, "%s%s", indent, name);
            print_value(out, val, len);
            g_string_append(out, ";\n");
        }
    }
    return g_string_free(out, FALSE);
}

/* dtc's own rendering when dtc is installed; NULL when it is not or fails. */
static char *fdt_to_dts_with_dtc(const void *fdt)
{
    g_autofree char *dtc = g_find_program_in_path("dtc");
    g_autofree char *tmp = NULL, *out = NULL;
    int fd, status = -1;

    if (!dtc)
        return NULL;
    fd = g_file_open_tmp("viommu-describe-XXXXXX.dtb", &tmp, NULL);
    if (fd < 0)
        return NULL;
    close(fd);
    if (g_file_set_contents(tmp, fdt, fdt_totalsize(fdt), NULL)) {
        char *argv[] = {dtc, "-q", "-I", "dtb", "-O", "dts", tmp, NULL};
        if (!g_spawn_sync(NULL, argv, NULL, G_SPAWN_STDERR_TO_DEV_NULL, NULL, NULL, &out, NULL,
                          &status, NULL) ||
            !g_spawn_check_wait_status(status, NULL))
            g_clear_pointer(&out, g_free);
    }
    g_unlink(tmp);
    return g_steal_pointer(&out);
}

static int run_fdt(const struct options *o, const struct viommu_topology *t, GError **error)
{
    g_autofree void *base = NULL, *fdt = NULL;
    g_autofree char *dts = NULL;
    size_t base_size;

    base = o->dtb ? load_dtb(o->dtb, &base_size, error) : build_skeleton(t, &base_size, error);
    if (!base)
        return 1;
    fdt = describe_fdt(base, base_size, t, error);
    if (!fdt)
        return 1;
    if (o->output)
        return g_file_set_contents(o->output, fdt, fdt_totalsize(fdt), error) ? 0 : 1;
    if (!o->builtin_printer)
        dts = fdt_to_dts_with_dtc(fdt);
    if (!dts)
        dts = fdt_to_dts(fdt);
    fputs(dts, stdout);
    return 0;
}

/* ------------------------------------------------------------------ */
/* VIOT                                                                */
/* ------------------------------------------------------------------ */

static void print_hex(const uint8_t *p, size_t len)
{
    for (size_t off = 0; off < len; off += 16) {
        size_t n = MIN(len - off, (size_t)16);

        printf("%04zx:", off);
        for (size_t i = 0; i < 16; i++) {
            if (i < n)
                printf(" %02x", p[off + i]);
            else
                printf("   ");
        }
        printf("  ");
        for (size_t i = 0; i < n; i++)
            putchar(isprint(p[off + i]) ? p[off + i] : '.');
        putchar('\n');
    }
}

static void print_bdf(uint16_t bdf)
{
    printf("%02x:%02x.%x", bdf >> 8, (bdf >> 3) & 0x1f, bdf & 7);
}

static void print_viot(const struct viommu_viot *v)
{
    printf("Signature \"VIOT\"  Length %" PRIu32 " (0x%" PRIx32 ")  Revision %u  Checksum 0x%02x\n",
           v->length, v->length, v->revision, v->checksum);
    printf("OEM \"%s\"  OEM table \"%s\"  OEM revision %" PRIu32
           "  Creator \"%s\" revision %" PRIu32 "\n",
           v->oem_id, v->oem_table_id, v->oem_revision, v->creator_id, v->creator_revision);
    printf("Nodes %zu at 0x%x\n", v->n_nodes, v->node_offset);
    for (size_t i = 0; i < v->n_nodes; i++) {
        const struct viommu_viot_node *n = &v->nodes[i];

        printf("@0x%04x type %u length %u: ", n->offset, n->type, n->length);
        switch (n->type) {
        case VIOMMU_VIOT_NODE_PCI_RANGE:
            printf("PCI range, segments %u-%u, BDF ", n->u.pci_range.segment_start,
                   n->u.pci_range.segment_end);
            print_bdf(n->u.pci_range.bdf_start);
            printf("-");
            print_bdf(n->u.pci_range.bdf_end);
            printf(" (0x%04x-0x%04x), first endpoint ID 0x%" PRIx32 ", IOMMU @0x%04x\n",
                   n->u.pci_range.bdf_start, n->u.pci_range.bdf_end, n->u.pci_range.endpoint_start,
                   v->nodes[n->u.pci_range.output_node].offset);
            break;
        case VIOMMU_VIOT_NODE_MMIO_ENDPOINT:
            printf("MMIO endpoint at 0x%" PRIx64 ", endpoint ID 0x%" PRIx32 ", IOMMU @0x%04x\n",
                   n->u.mmio_endpoint.base, n->u.mmio_endpoint.endpoint,
                   v->nodes[n->u.mmio_endpoint.output_node].offset);
            break;
        case VIOMMU_VIOT_NODE_VIRTIO_IOMMU_PCI:
            printf("virtio-pci IOMMU, segment %u, BDF ", n->u.virtio_pci.segment);
            print_bdf(n->u.virtio_pci.bdf);
            printf(" (0x%04x)\n", n->u.virtio_pci.bdf);
            break;
        case VIOMMU_VIOT_NODE_VIRTIO_IOMMU_MMIO:
            printf("virtio-mmio IOMMU at 0x%" PRIx64 "\n", n->u.virtio_mmio.base);
            break;
        default:
            printf("unknown type, skipped\n");
            break;
        }
    }
}

static int show_viot(const uint8_t *table, size_t len, GError **error)
{
    struct viommu_viot *v = NULL;

    if (viommu_viot_decode(table, len, &v, error))
        return 1;
    print_hex(table, len);
    putchar('\n');
    print_viot(v);
    viommu_viot_free(v);
    return 0;
}

static int run_viot(const struct options *o, const struct viommu_topology *t, GError **error)
{
    g_autofree uint8_t *table = NULL;
    size_t len = 0;
    int err;

    viommu_viot_build(t, NULL, NULL, 0, &len);
    table = g_malloc(len);
    err = viommu_viot_build(t, NULL, table, len, &len);
    if (err) {
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(-err),
                    "cannot build the VIOT table: %s", g_strerror(-err));
        return 1;
    }
    if (o->output)
        return g_file_set_contents(o->output, (const char *)table, (gssize)len, error) ? 0 : 1;
    return show_viot(table, len, error);
}

static int run_decode(const char *path, GError **error)
{
    g_autofree char *data = NULL;
    gsize len;

    if (!g_file_get_contents(path, &data, &len, error))
        return 1;
    return show_viot((const uint8_t *)data, len, error);
}

/* ------------------------------------------------------------------ */
/* Command line                                                        */
/* ------------------------------------------------------------------ */

static const char description[] =
    "Topology: exactly one of --pci-iommu and --mmio-iommu, any number of\n"
    "--endpoints and --mmio-endpoint. PCI addresses are [SEG:]BB:DD.F (hex)\n"
    "or a 4-digit requester ID such as 00ff; numbers take a 0x prefix for hex.\n"
    "A PCI endpoint's ID is its requester ID (SEG << 16 | BDF) unless @ID is\n"
    "given; an MMIO endpoint without @ID takes the next ID after all others.\n"
    "\n"
    "Device tree (default): the nodes are added to a minimal tree in the arm\n"
    "virt machine's style (a pcie host bridge per segment, a virtio_mmio node\n"
    "per MMIO endpoint), or to --dtb FILE, and printed as dts (with dtc when\n"
    "installed), or written as a .dtb with -o.\n"
    "\n"
    "VIOT (--viot): the ACPI table is printed as hex and decoded fields, or\n"
    "written as binary with -o. --decode-viot FILE checks and decodes a table\n"
    "(e.g. /sys/firmware/acpi/tables/VIOT).\n"
    "\n"
    "Examples:\n"
    "  viommu describe --pci-iommu 00:02.0 --endpoints 0000-00ff --viot\n"
    "  viommu describe --pci-iommu 00:02.0 --endpoints 00:00.0-ff:1f.7\n"
    "  viommu describe --mmio-iommu 0xa003e00,47 --mmio-endpoint 0xa003c00@1\n"
    "\n"
    "Exit status: 0 success, 1 refused topology or input, 2 usage error.";

int viommu_cli_describe(int argc, char **argv)
{
    struct options o = {0};
    gboolean help = FALSE;
    GOptionEntry entries[] = {
        {"pci-iommu", 0, 0, G_OPTION_ARG_STRING, &o.pci_iommu,
         "the virtio-iommu is the PCI function at BDF", "[SEG:]BB:DD.F"},
        {"mmio-iommu", 0, 0, G_OPTION_ARG_STRING, &o.mmio_iommu,
         "the virtio-iommu is a virtio-mmio device at ADDR (with GIC SPI IRQ)", "ADDR[,IRQ]"},
        {"mmio-size", 0, 0, G_OPTION_ARG_STRING, &o.mmio_size,
         "size of its MMIO window (default 0x200)", "SIZE"},
        {"mmio-irq-cells", 0, 0, G_OPTION_ARG_STRING, &o.mmio_irq_cells,
         "its device-tree interrupts cells, replacing IRQ", "CELL[,CELL...]"},
        {"segment", 0, 0, G_OPTION_ARG_STRING, &o.segment,
         "PCI segment of addresses given without one (default 0)", "N"},
        {"endpoints", 0, 0, G_OPTION_ARG_STRING_ARRAY, &o.endpoints,
         "PCI requester IDs FIRST..LAST are endpoints (repeatable)", "FIRST-LAST[@ID]"},
        {"mmio-endpoint", 0, 0, G_OPTION_ARG_STRING_ARRAY, &o.mmio_endpoints,
         "the virtio-mmio device at ADDR is an endpoint (repeatable)", "ADDR[@ID]"},
        {"viot", 0, 0, G_OPTION_ARG_NONE, &o.viot, "describe with an ACPI VIOT table", NULL},
        {"dtb", 0, 0, G_OPTION_ARG_FILENAME, &o.dtb, "add to this device tree", "FILE"},
        {"decode-viot", 0, 0, G_OPTION_ARG_FILENAME, &o.decode_viot,
         "check and decode the VIOT table in FILE", "FILE"},
        {"output", 'o', 0, G_OPTION_ARG_FILENAME, &o.output,
         "write the binary .dtb or VIOT table to FILE", "FILE"},
        {"builtin-printer", 0, 0, G_OPTION_ARG_NONE, &o.builtin_printer,
         "print dts without running dtc", NULL},
        {"help", 'h', 0, G_OPTION_ARG_NONE, &help, "show this help", NULL},
        {NULL, 0, 0, 0, NULL, NULL, NULL},
    };
    g_autoptr(GOptionContext) ctx = g_option_context_new("- show how the guest's firmware "
                                                         "sees a virtio-iommu");
    g_autoptr(GError) error = NULL;
    struct topo_storage s = {
        .pci_ranges = g_array_new(FALSE, FALSE, sizeof(struct viommu_pci_range)),
        .mmio_endpoints = g_array_new(FALSE, FALSE, sizeof(struct viommu_mmio_endpoint)),
    };
    int status = 2;

    g_option_context_set_help_enabled(ctx, FALSE);
    g_option_context_add_main_entries(ctx, entries, NULL);
    g_option_context_set_description(ctx, description);
    if (!g_option_context_parse(ctx, &argc, &argv, &error))
        goto out;
    if (help) {
        g_autofree char *text = g_option_context_get_help(ctx, TRUE, NULL);
        fputs(text, stdout);
        status = 0;
        goto out;
    }
    if (argc > 1) {
        usage_error(&error, "unexpected argument '%s'", argv[1]);
        goto out;
    }
    if (o.decode_viot) {
        if (o.pci_iommu || o.mmio_iommu || o.endpoints || o.mmio_endpoints || o.output) {
            usage_error(&error, "--decode-viot takes no topology and no -o");
            goto out;
        }
        status = run_decode(o.decode_viot, &error);
        goto out;
    }
    if (o.viot && o.dtb) {
        usage_error(&error, "--dtb is for device-tree output, not --viot");
        goto out;
    }
    if (!build_topology(&o, &s, &error)) {
        status = error && error->domain == G_OPTION_ERROR ? 2 : 1;
        goto out;
    }
    status = o.viot ? run_viot(&o, &s.topo, &error) : run_fdt(&o, &s.topo, &error);

out:
    if (error)
        fprintf(stderr, "viommu describe: %s\n", error->message);
    if (status == 2)
        fprintf(stderr, "Try 'viommu describe --help'.\n");
    g_array_free(s.pci_ranges, TRUE);
    g_array_free(s.mmio_endpoints, TRUE);
    g_free(o.pci_iommu);
    g_free(o.mmio_iommu);
    g_free(o.mmio_size);
    g_free(o.mmio_irq_cells);
    g_free(o.segment);
    g_strfreev(o.endpoints);
    g_strfreev(o.mmio_endpoints);
    g_free(o.dtb);
    g_free(o.decode_viot);
    g_free(o.output);
    return status;
}

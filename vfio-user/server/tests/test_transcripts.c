/* SPDX-License-Identifier: MIT */
/*
 * Replays the probe sequence recorded against each real server
 * (transcripts/, see transcripts/README.md) against the matching
 * profile, and compares every line the probe printed about a reply
 * (header fields, VERSION JSON, payload bytes, dirty bit counts) with
 * the recorded one, byte for byte.
 */
#include <stdio.h>

#include "raw.h"

#define MIB (1ull << 20)
#define A_IOVA 0x100000ull
#define B_IOVA 0x400000ull
#define REGION_SIZE (2 * MIB)
#define FDLESS_BASE 0x40000000ull

static const char *const VERSION_JSON =
    "{\"capabilities\":{\"max_msg_fds\":8,\"max_data_xfer_size\":1048576,"
    "\"migration\":{\"pgsize\":4096}}}";

typedef struct probe {
    int fd;
    uint16_t next_id;
    GPtrArray *lines;
    int fd_a, fd_b;
} probe;

static const char *cmd_name(uint16_t cmd)
{
    switch (cmd) {
    case 1:
        return "VERSION";
    case 2:
        return "DMA_MAP";
    case 3:
        return "DMA_UNMAP";
    case 14:
        return "DIRTY_PAGES";
    case 16:
        return "DEVICE_FEATURE";
    default:
        return "?";
    }
}

static void line(probe *p, char *s)
{
    g_ptr_array_add(p->lines, s);
}

static void hex(probe *p, const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i += 16) {
        GString *s = g_string_new("     ");
        for (size_t j = i; j < n && j < i + 16; j++)
            g_string_append_printf(s, " %02x", b[j]);
        line(p, g_string_free(s, FALSE));
    }
}

static unsigned bits_set(const uint8_t *b, size_t n)
{
    unsigned k = 0;
    for (size_t i = 0; i < n; i++)
        k += (unsigned)__builtin_popcount(b[i]);
    return k;
}

/* Sends one message and records its reply line; returns the reply's error (0 on success). */
static int exchange_hdr(probe *p, uint16_t cmd, uint32_t msg_size, const void *body, size_t len,
                        int fd, raw_msg *reply)
{
    uint16_t id = p->next_id++;
    raw_msg r;

    cr_assert_eq(raw_send_hdr(p->fd, id, cmd, msg_size, 0, body, len, &fd, fd >= 0 ? 1 : 0), 0);
    cr_assert_eq(raw_recv(p->fd, &r), 0, "no reply to command %u id %u", cmd, id);
    line(p,
         g_strdup_printf("  -> reply: id=%u cmd=%u(%s) msg_size=%u flags=0x%x error_no=%u%s%s "
                         "payload=%zu fds=%u",
                         r.id, r.cmd, cmd_name(r.cmd), r.size, r.flags, r.error, r.error ? " " : "",
                         r.error ? g_strerror((int)r.error) : "", r.len, r.nfds));
    if (reply)
        *reply = r;
    else
        raw_msg_free(&r);
    return (r.flags & VFIO_USER_F_ERROR) ? (int)r.error : 0;
}

static int exchange(probe *p, uint16_t cmd, const void *body, size_t len, int fd, raw_msg *reply)
{
    return exchange_hdr(p, cmd, (uint32_t)(16 + len), body, len, fd, reply);
}

static int dma_map(probe *p, uint64_t iova, uint64_t size, int fd)
{
    uint8_t b[32] = {0};
    vus_put32(b, 32);
    vus_put32(b + 4, 3);
    vus_put64(b + 16, iova);
    vus_put64(b + 24, size);
    return exchange(p, 2, b, sizeof(b), fd, NULL);
}

static void unmap_body(uint8_t *b, uint32_t argsz, uint32_t flags, uint64_t iova, uint64_t size)
{
    vus_put32(b, argsz);
    vus_put32(b + 4, flags);
    vus_put64(b + 8, iova);
    vus_put64(b + 16, size);
}

/* A plain unmap; prints the echoed body when it succeeds. */
static int dma_unmap(probe *p, uint32_t flags, uint64_t iova, uint64_t size)
{
    uint8_t b[24];
    raw_msg r;
    int err;

    unmap_body(b, 24, flags, iova, size);
    err = exchange(p, 3, b, sizeof(b), -1, &r);
    if (!err)
        hex(p, r.body, r.len);
    raw_msg_free(&r);
    return err;
}

static void feature_start(probe *p, uint32_t ops)
{
    uint8_t b[56] = {0};
    vus_put32(b, sizeof(b));
    vus_put32(b + 4, ops | VFIO_USER_DEVICE_FEATURE_DMA_LOGGING_START);
    vus_put64(b + 8, 4096);
    vus_put32(b + 16, 2);
    vus_put64(b + 24, A_IOVA);
    vus_put64(b + 32, REGION_SIZE);
    vus_put64(b + 40, B_IOVA);
    vus_put64(b + 48, REGION_SIZE);
    p->next_id += 0;
    exchange(p, 16, b, sizeof(b), -1, NULL);
}

static void run_probe(probe *p, unsigned fdless_maps)
{
    size_t jl = strlen(VERSION_JSON) + 1;
    g_autofree uint8_t *vb = g_malloc(4 + jl);
    uint8_t b[64];
    raw_msg r;
    int err, feature_ok, dirty_ok;

    /* 1. VERSION */
    vus_put16(vb, 0);
    vus_put16(vb + 2, 1);
    memcpy(vb + 4, VERSION_JSON, jl);
    cr_assert_eq(exchange(p, 1, vb, 4 + jl, -1, &r), 0);
    line(p, g_strdup_printf("  server version %u.%u json(%zu bytes incl NUL)=%s", vus_get16(r.body),
                            vus_get16(r.body + 2), r.len - 4, (const char *)r.body + 4));
    raw_msg_free(&r);

    /* 2. two 2 MiB memfd regions */
    dma_map(p, A_IOVA, REGION_SIZE, p->fd_a);
    dma_map(p, B_IOVA, REGION_SIZE, p->fd_b);

    /* 3. logging through DEVICE_FEATURE, then DIRTY_PAGES */
    feature_start(p, VFIO_USER_DEVICE_FEATURE_PROBE | VFIO_USER_DEVICE_FEATURE_SET);
    {
        uint8_t f[56] = {0};
        vus_put32(f, sizeof(f));
        vus_put32(f + 4, VFIO_USER_DEVICE_FEATURE_SET | VFIO_USER_DEVICE_FEATURE_DMA_LOGGING_START);
        vus_put64(f + 8, 4096);
        vus_put32(f + 16, 2);
        vus_put64(f + 24, A_IOVA);
        vus_put64(f + 32, REGION_SIZE);
        vus_put64(f + 40, B_IOVA);
        vus_put64(f + 48, REGION_SIZE);
        feature_ok = exchange(p, 16, f, sizeof(f), -1, NULL) == 0;
    }
    vus_put32(b, 8);
    vus_put32(b + 4, VFIO_USER_DIRTY_PAGES_FLAG_START);
    dirty_ok = exchange(p, 14, b, 8, -1, NULL) == 0;

    /* 4. the bitmap of A, without unmapping */
    if (feature_ok) {
        vus_put32(b, 96);
        vus_put32(b + 4,
                  VFIO_USER_DEVICE_FEATURE_GET | VFIO_USER_DEVICE_FEATURE_DMA_LOGGING_REPORT);
        vus_put64(b + 8, A_IOVA);
        vus_put64(b + 16, REGION_SIZE);
        vus_put64(b + 24, 4096);
        if (exchange(p, 16, b, 32, -1, &r) == 0) {
            cr_assert_geq(r.len, 32);
            hex(p, r.body, 32);
            line(p, g_strdup_printf("  dirty bits set: %u", bits_set(r.body + 32, r.len - 32)));
        }
        raw_msg_free(&r);
    } else {
        (void)dirty_ok;
        vus_put32(b, 104);
        vus_put32(b + 4, VFIO_USER_DIRTY_PAGES_FLAG_GET_BITMAP);
        vus_put64(b + 8, A_IOVA);
        vus_put64(b + 16, REGION_SIZE);
        vus_put64(b + 24, 4096);
        vus_put64(b + 32, 64);
        if (exchange(p, 14, b, 40, -1, &r) == 0) {
            cr_assert_geq(r.len, 40);
            hex(p, r.body, 40);
            line(p, g_strdup_printf("  dirty bits set: %u", bits_set(r.body + 40, r.len - 40)));
        }
        raw_msg_free(&r);
    }

    /* 5. each half of A */
    dma_unmap(p, 0, A_IOVA, REGION_SIZE / 2);
    dma_unmap(p, 0, A_IOVA + REGION_SIZE / 2, REGION_SIZE / 2);

    /* 6. A with its dirty bitmap; plainly when refused */
    unmap_body(b, 104, VFIO_USER_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, A_IOVA, REGION_SIZE);
    vus_put64(b + 24, 4096);
    vus_put64(b + 32, 64);
    err = exchange(p, 3, b, 40, -1, &r);
    if (!err) {
        cr_assert_geq(r.len, 40);
        hex(p, r.body, 40);
        line(p, g_strdup_printf("  bitmap data %zu bytes, dirty bits set: %u", r.len - 40,
                                bits_set(r.body + 40, r.len - 40)));
    }
    raw_msg_free(&r);
    if (err)
        dma_unmap(p, 0, A_IOVA, REGION_SIZE);

    /* 7. a two-entry table [A, B] */
    dma_map(p, A_IOVA, REGION_SIZE, p->fd_a);
    unmap_body(b, 24, 0, A_IOVA, REGION_SIZE);
    unmap_body(b + 24, 24, 0, B_IOVA, REGION_SIZE);
    if (exchange(p, 3, b, 48, -1, &r) == 0)
        hex(p, r.body, r.len);
    raw_msg_free(&r);
    dma_unmap(p, 0, A_IOVA, REGION_SIZE);
    dma_unmap(p, 0, B_IOVA, REGION_SIZE);

    /* 8. unmap-all */
    dma_map(p, A_IOVA, REGION_SIZE, p->fd_a);
    dma_map(p, B_IOVA, REGION_SIZE, p->fd_b);
    dma_unmap(p, VFIO_USER_DMA_UNMAP_FLAG_ALL, 0, 0);
    dma_unmap(p, 0, A_IOVA, REGION_SIZE);

    /* 9. fd-less 4 KiB regions until one fails */
    for (unsigned i = 0; i < fdless_maps; i++)
        if (dma_map(p, FDLESS_BASE + i * 0x2000ull, 0x1000, -1))
            break;
    dma_unmap(p, VFIO_USER_DMA_UNMAP_FLAG_ALL, 0, 0);

    /* 10. a header claiming one byte over the limit, with no body */
    exchange_hdr(p, 3, VUS_PEER_MAX_MSG_SIZE + 1, NULL, 0, -1, NULL);
}

/* The lines of a transcript that describe replies. */
static GPtrArray *recorded(const char *name)
{
    g_autofree char *path = g_build_filename(TRANSCRIPT_DIR, name, NULL);
    g_autofree char *text = NULL;
    g_auto(GStrv) all = NULL;
    GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GRegex) hexre = g_regex_new("^      [0-9a-f]{2}( [0-9a-f]{2})*$", 0, 0, NULL);

    cr_assert(g_file_get_contents(path, &text, NULL, NULL), "cannot read %s", path);
    all = g_strsplit(text, "\n", -1);
    for (char **l = all; *l; l++) {
        if (g_str_has_prefix(*l, "  -> reply:") || g_str_has_prefix(*l, "  server version") ||
            strstr(*l, "dirty bits set:") || g_regex_match(hexre, *l, 0, NULL))
            g_ptr_array_add(out, g_strdup(*l));
    }
    return out;
}

static void replay(vfio_user_server_profile profile, const char *file, unsigned fdless_maps)
{
    vfio_user_server_options opts;
    g_autoptr(GPtrArray) want = recorded(file);
    probe p = {.next_id = 1, .lines = g_ptr_array_new_with_free_func(g_free)};
    srv_thread *s;
    int fds_before = count_fds();

    vfio_user_server_options_init(&opts);
    opts.profile = profile;
    s = srv_start(&opts, &p.fd);
    p.fd_a = test_memfd(REGION_SIZE);
    p.fd_b = test_memfd(REGION_SIZE);
    run_probe(&p, fdless_maps);
    close(p.fd_a);
    close(p.fd_b);
    close(p.fd);
    srv_join(s);

    cr_assert_gt(want->len, 40, "transcript %s has too few reply lines", file);
    for (unsigned i = 0; i < want->len && i < p.lines->len; i++)
        cr_assert_str_eq(g_ptr_array_index(p.lines, i), g_ptr_array_index(want, i),
                         "%s: reply line %u differs", file, i);
    cr_assert_eq(p.lines->len, want->len, "%s: %u reply lines, recorded %u", file, p.lines->len,
                 want->len);
    cr_assert_eq(count_fds(), fds_before, "fds leaked");
    g_ptr_array_unref(p.lines);
}

Test(transcripts, libvfio_user_2022_profile_answers_as_recorded)
{
    replay(VFIO_USER_SERVER_PROFILE_LIBVFIO_USER_2022, "libvfio-user-2022.txt", 20);
}

Test(transcripts, qemu_7_2_profile_answers_as_recorded)
{
    replay(VFIO_USER_SERVER_PROFILE_QEMU_7_2, "qemu-7.2.txt", 20);
}

Test(transcripts, libvfio_user_2026_profile_answers_as_recorded)
{
    replay(VFIO_USER_SERVER_PROFILE_LIBVFIO_USER_2026, "libvfio-user-2026.txt", 40);
}

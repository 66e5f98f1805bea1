/* SPDX-License-Identifier: MIT */
/*
 * cmd_replay.c - `viommu replay`: the command-line face of the replay
 * engine (replay.h). Prints one line or one JSON object per request and a
 * summary; shows progress on a terminal.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "replay.h"
#include "replay_print.h"
#include "translate_check.h"
#include "vfio_backend.h"

/* IDs --endpoints may list; the device's own limit applies after. */
#define MAX_LISTED_ENDPOINTS 65536

typedef struct replay_output {
    bool json;
    bool quiet;
    bool progress; /* stderr is a terminal */
    bool progress_shown;
    gint64 start_us;
    translate_check *check; /* --check-translations */
    bool has_vfio;          /* --vfio-user */
    vfio_backend_summary vfio;
} replay_output;

static void clear_progress(replay_output *out)
{
    if (out->progress_shown) {
        fputs("\r\033[K", stderr);
        out->progress_shown = false;
    }
}

static int on_request(void *opaque, const replay_request *r)
{
    replay_output *out = opaque;

    if (!out->quiet)
        replay_print_request(stdout, r, out->json);
    return 0;
}

static void on_mismatch(void *opaque, const translate_mismatch *m)
{
    replay_output *out = opaque;

    clear_progress(out);
    replay_print_mismatch(stdout, m, out->json);
}

static void on_line_error(void *opaque, const GError *error)
{
    replay_output *out = opaque;

    clear_progress(out);
    fflush(stdout);
    fprintf(stderr, "viommu replay: %s\n", error->message);
}

static void on_progress(void *opaque, uint64_t bytes, uint64_t total)
{
    replay_output *out = opaque;

    /* Only long replays show progress: the first second stays quiet. */
    if (!out->progress || g_get_monotonic_time() - out->start_us < G_USEC_PER_SEC)
        return;
    if (total)
        fprintf(stderr, "\rviommu replay: %3u%%", (unsigned)(bytes * 100 / total));
    else
        fprintf(stderr, "\rviommu replay: %" PRIu64 " MB read", bytes >> 20);
    out->progress_shown = true;
}

static int on_translate(void *opaque, viommu *dev, const qemu_log_event *ev)
{
    replay_output *out = opaque;

    return out->check ? translate_check_event(out->check, dev, ev) : 0;
}

/* The vfio-user side of a replay: after the summary, in the same format. */
static void print_vfio_summary(const replay_output *out)
{
    const vfio_backend_summary *v = &out->vfio;

    if (out->json) {
        printf("{\"vfio_user\":{\"devices\":%" PRIu64 ",\"batches\":%" PRIu64
               ",\"messages\":%" PRIu64 ",\"waits\":%" PRIu64 ",\"bytes\":%" PRIu64
               ",\"regions_live_max\":%" PRIu64 ",\"map_failures\":%" PRIu64 ",\"bitmaps\":%" PRIu64
               ",\"bitmap_fallbacks\":%" PRIu64 ",\"reconnects\":%" PRIu64
               ",\"dma_writes\":%" PRIu64 ",\"dma_reads\":%" PRIu64 ",\"dma_failures\":%" PRIu64
               ",\"dma_untranslated\":%" PRIu64 ",\"tracking\":%s,\"dirty_pages\":%" PRIu64 "}}\n",
               v->devices, v->mapper.batches, v->mapper.messages, v->mapper.waits, v->mapper.bytes,
               v->mapper.regions_live_max, v->mapper.map_failures, v->mapper.bitmaps,
               v->mapper.bitmap_fallbacks, v->mapper.reconnects, v->dma_writes, v->dma_reads,
               v->dma_failures, v->dma_untranslated, v->tracking_started ? "true" : "false",
               v->dirty_pages);
        return;
    }
    printf("vfio-user: %" PRIu64 " devices, %" PRIu64 " batches sent, %" PRIu64
           " messages, %" PRIu64 " waits, %" PRIu64 " bytes, %" PRIu64
           " regions live at most, %" PRIu64 " maps refused\n",
           v->devices, v->mapper.batches, v->mapper.messages, v->mapper.waits, v->mapper.bytes,
           v->mapper.regions_live_max, v->mapper.map_failures);
    if (v->dma_writes || v->dma_reads || v->dma_untranslated)
        printf("device DMA: %" PRIu64 " writes, %" PRIu64 " reads, %" PRIu64 " failed; %" PRIu64
               " refused or in bypass, not re-enacted\n",
               v->dma_writes, v->dma_reads, v->dma_failures, v->dma_untranslated);
    if (v->tracking_started)
        printf("dirty tracking: %" PRIu64 " bitmaps, %" PRIu64 " ranges marked whole, %" PRIu64
               " reconnects, %" PRIu64 " dirty pages\n",
               v->mapper.bitmaps, v->mapper.bitmap_fallbacks, v->mapper.reconnects, v->dirty_pages);
}

static bool translate_mismatches(const replay_output *out)
{
    translate_check_stats tc;

    if (!out->check)
        return false;
    translate_check_get_stats(out->check, &tc);
    return tc.mismatches != 0;
}

/* --resv START-END[:msi|:reserved] */
static bool parse_resv(const char *s, replay_resv *out)
{
    g_autofree char *range = g_strdup(s);
    char *colon = strchr(range, ':');

    out->subtype = VIRTIO_IOMMU_RESV_MEM_T_RESERVED;
    if (colon) {
        *colon = '\0';
        if (strcmp(colon + 1, "msi") == 0)
            out->subtype = VIRTIO_IOMMU_RESV_MEM_T_MSI;
        else if (strcmp(colon + 1, "reserved") != 0)
            return false;
    }
    return cli_parse_range(range, &out->start, &out->end);
}

static const char replay_description[] =
    "Reads a trace in QEMU's log format (the lines QEMU prints with\n"
    "-trace 'virtio_iommu_*', plus virtio_queue_notify and virtqueue_pop for\n"
    "batches), plain or xz-compressed, and runs each virtio_iommu_attach,\n"
    "_detach, _map, _unmap and _fill_resv_property (a PROBE) line as a guest\n"
    "request through the device model. FILE '-' is standard input.\n"
    "\n"
    "Exit status: 0 when every request succeeded, 1 when some did not,\n"
    "2 for bad options, unreadable input or a malformed line.";

int cmd_replay(int argc, char **argv)
{
    g_autofree char *page_size_mask = NULL, *endpoints = NULL, *input_range = NULL,
                    *domain_range = NULL;
    g_auto(GStrv) resv = NULL;
    gboolean json = FALSE, keep_going = FALSE, quiet = FALSE, check_translations = FALSE;
    g_auto(GStrv) vfio_user = NULL;
    g_autofree char *dialect = NULL, *plan = NULL, *dirty_out = NULL, *ram_size = NULL;
    gboolean dma = FALSE, isolated = FALSE;
    gint64 migrate_at = -1;
    GOptionEntry entries[] = {
        {"page-size-mask", 0, 0, G_OPTION_ARG_STRING, &page_size_mask,
         "Page sizes (hex); the lowest set bit is the granule (default 0xfffffffffffff000)", "HEX"},
        {"endpoints", 0, 0, G_OPTION_ARG_STRING, &endpoints,
         "The endpoints that exist, e.g. 0,24-48 (default: every endpoint the trace names)",
         "LIST"},
        {"resv", 0, 0, G_OPTION_ARG_STRING_ARRAY, &resv,
         "A reserved region of every endpoint; repeatable (default: the regions each "
         "endpoint's PROBE shows in the trace)",
         "START-END[:msi]"},
        {"input-range", 0, 0, G_OPTION_ARG_STRING, &input_range,
         "IOVAs the device translates (default 0-0xffffffffffffffff)", "A-B"},
        {"domain-range", 0, 0, G_OPTION_ARG_STRING, &domain_range,
         "Domain IDs the device accepts (default 0-0xffffffff)", "A-B"},
        {"json", 0, 0, G_OPTION_ARG_NONE, &json,
         "One JSON object per request, then a summary object", NULL},
        {"quiet", 'q', 0, G_OPTION_ARG_NONE, &quiet, "Print the summary only", NULL},
        {"check-translations", 0, 0, G_OPTION_ARG_NONE, &check_translations,
         "Run each virtio_iommu_translate access through the device and compare with QEMU's "
         "virtio_iommu_translate_out",
         NULL},
        {"keep-going", 'k', 0, G_OPTION_ARG_NONE, &keep_going, "Report malformed lines and go on",
         NULL},
        {"vfio-user", 0, 0, G_OPTION_ARG_STRING_ARRAY, &vfio_user,
         "Forward each endpoint's mappings to a vfio-user device at SOCKET (each endpoint on "
         "its own connection), or only endpoint EP's; repeatable",
         "[EP=]SOCKET"},
        {"dialect", 0, 0, G_OPTION_ARG_STRING, &dialect,
         "vfio-user dialect: 2021 (default), 0.9.1 or final", "D"},
        {"plan", 0, 0, G_OPTION_ARG_STRING, &plan,
         "How mappings become messages: coalesce (default) or qemu (one waited message per "
         "power-of-two chunk, for comparison)",
         "P"},
        {"isolated", 0, 0, G_OPTION_ARG_NONE, &isolated,
         "Map without file descriptors: every device access goes through DMA_READ/DMA_WRITE "
         "and the device model's translation",
         NULL},
        {"dma", 0, 0, G_OPTION_ARG_NONE, &dma,
         "Re-enact the trace's device accesses (virtio_iommu_translate lines) with the "
         "sample device",
         NULL},
        {"migrate-at", 0, 0, G_OPTION_ARG_INT64, &migrate_at,
         "Turn dirty tracking on just before request N (0-based, in file order)", "N"},
        {"dirty-out", 0, 0, G_OPTION_ARG_FILENAME, &dirty_out,
         "At the end, write the dirty log: guest-physical page addresses, hex, one per line",
         "FILE"},
        {"ram-size", 0, 0, G_OPTION_ARG_STRING, &ram_size,
         "Guest RAM at guest-physical 0, in bytes (default 0x40000000)", "BYTES"},
        {NULL, 0, 0, 0, NULL, NULL, NULL},
    };
    g_autoptr(GOptionContext) ctx = g_option_context_new("FILE|-");
    g_autoptr(GError) error = NULL;
    replay_config cfg;
    replay_output out = {0};
    replay_hooks hooks = {
        .opaque = &out,
        .request_done = on_request,
        .translate = on_translate,
        .line_error = on_line_error,
        .progress = on_progress,
    };
    replay_summary summary;
    qemu_log_reader *reader = NULL;
    vfio_backend_config vcfg;
    vfio_backend *backend = NULL;
    int exit_status = VIOMMU_EXIT_USAGE;
    bool all_ok;
    int ret;

    g_option_context_set_summary(ctx,
                                 "Replays a QEMU virtio-iommu trace through the device model.");
    g_option_context_set_description(ctx, replay_description);
    g_option_context_add_main_entries(ctx, entries, NULL);
    /* glib names the program from argv[0]; make --help read "viommu replay". */
    g_set_prgname("viommu replay");
    replay_config_init(&cfg);
    vfio_backend_config_init(&vcfg);

    if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
        fprintf(stderr, "viommu replay: %s\n", error->message);
        goto out;
    }
    if (argc != 2) {
        fprintf(stderr, "viommu replay: expected one FILE (or - for standard input); "
                        "see 'viommu replay --help'\n");
        goto out;
    }
    if (page_size_mask) {
        const char *s = page_size_mask;
        guint64 v;
        if (g_str_has_prefix(s, "0x") || g_str_has_prefix(s, "0X"))
            s += 2;
        if (!g_ascii_isxdigit(*s) || !g_ascii_string_to_unsigned(s, 16, 1, G_MAXUINT64, &v, NULL)) {
            fprintf(stderr, "viommu replay: --page-size-mask: '%s' is not a non-zero hex mask\n",
                    page_size_mask);
            goto out;
        }
        cfg.device.page_size_mask = v;
    }
    if (input_range && !cli_parse_range(input_range, &cfg.device.input_range.first,
                                        &cfg.device.input_range.last)) {
        fprintf(stderr, "viommu replay: --input-range: '%s' is not a range A-B with A <= B\n",
                input_range);
        goto out;
    }
    if (domain_range) {
        uint64_t first, last;
        if (!cli_parse_range(domain_range, &first, &last) || last > G_MAXUINT32) {
            fprintf(stderr,
                    "viommu replay: --domain-range: '%s' is not a 32-bit range A-B with A <= B\n",
                    domain_range);
            goto out;
        }
        cfg.device.domain_first = (uint32_t)first;
        cfg.device.domain_last = (uint32_t)last;
    }
    if (endpoints) {
        if (!cli_parse_id_list(endpoints, cfg.endpoints, MAX_LISTED_ENDPOINTS, &error)) {
            fprintf(stderr, "viommu replay: --endpoints: %s\n", error->message);
            goto out;
        }
        cfg.endpoints_given = true;
    }
    for (char **r = resv; r && *r; r++) {
        replay_resv region;
        if (!parse_resv(*r, &region)) {
            fprintf(stderr,
                    "viommu replay: --resv: '%s' is not START-END, START-END:msi or "
                    "START-END:reserved\n",
                    *r);
            goto out;
        }
        g_array_append_val(cfg.resv, region);
        cfg.resv_given = true;
    }
    for (char **v = vfio_user; v && *v; v++) {
        if (!vfio_backend_config_add_socket(&vcfg, *v, &error)) {
            fprintf(stderr, "viommu replay: %s\n", error->message);
            goto out;
        }
    }
    if (dialect && vfio_user_dialect_parse(dialect, &vcfg.dialect) < 0) {
        fprintf(stderr, "viommu replay: --dialect: '%s' is not 2021, 0.9.1 or final\n", dialect);
        goto out;
    }
    if (plan && vfio_user_plan_parse(plan, &vcfg.plan) < 0) {
        fprintf(stderr, "viommu replay: --plan: '%s' is not coalesce or qemu\n", plan);
        goto out;
    }
    if (ram_size) {
        guint64 v;
        if (!g_ascii_string_to_unsigned(ram_size, 0, 4096, G_MAXUINT64, &v, NULL) || v % 4096) {
            fprintf(stderr, "viommu replay: --ram-size: '%s' is not a multiple of 4096\n",
                    ram_size);
            goto out;
        }
        vcfg.ram_size = v;
    }
    if (migrate_at < -1) {
        fprintf(stderr, "viommu replay: --migrate-at: must be a request number >= 0\n");
        goto out;
    }
    vcfg.dma = dma;
    vcfg.isolated = isolated;
    vcfg.migrate_at = migrate_at;
    if (!vfio_backend_config_active(&vcfg) && (dma || migrate_at >= 0 || dirty_out || isolated)) {
        fprintf(stderr, "viommu replay: --dma, --migrate-at, --dirty-out and --isolated need "
                        "--vfio-user\n");
        goto out;
    }
    if (vfio_backend_config_active(&vcfg)) {
        backend = vfio_backend_new(&vcfg, &error);
        if (!backend) {
            fprintf(stderr, "viommu replay: %s\n", error->message);
            goto out;
        }
    }
    cfg.keep_going = keep_going;
    cfg.progress_lines = 16384;
    out.json = json;
    out.quiet = quiet;
    out.progress = isatty(STDERR_FILENO);
    out.start_us = g_get_monotonic_time();
    if (check_translations)
        out.check = translate_check_new(on_mismatch, &out);

    ret = qemu_log_reader_open(argv[1], &reader, &error);
    if (ret < 0) {
        fprintf(stderr, "viommu replay: %s\n", error->message);
        goto out;
    }
    if (backend)
        vfio_backend_install_hooks(backend, &hooks);
    ret = replay_run(&cfg, reader, &hooks, &summary, &error);
    if (backend) {
        vfio_backend_finish(backend);
        vfio_backend_summary_get(backend, &out.vfio);
        out.has_vfio = true;
        if (dirty_out && !vfio_backend_write_dirty(backend, dirty_out, &error)) {
            fprintf(stderr, "viommu replay: --dirty-out: %s\n", error->message);
            ret = -EIO;
        }
    }
    if (out.check)
        translate_check_finish(out.check);
    clear_progress(&out);
    if (ret < 0 && error && error->domain != QEMU_LOG_ERROR) {
        fflush(stdout);
        fprintf(stderr, "viommu replay: %s\n", error->message);
    } else if (ret < 0 && error && error->code != QEMU_LOG_ERROR_MALFORMED) {
        /* Malformed lines were reported as they came; I/O errors were not. */
        fflush(stdout);
        fprintf(stderr, "viommu replay: %s\n", error->message);
    }
    all_ok = ret == 0 && summary.malformed_lines == 0 && summary.no_status == 0 &&
             summary.by_status[VIRTIO_IOMMU_S_OK] == summary.requests &&
             summary.probe_mismatches == 0 && !translate_mismatches(&out);
    if (out.check) {
        translate_check_stats tc;
        translate_check_get_stats(out.check, &tc);
        replay_print_summary(stdout, &summary, &tc, all_ok, out.json);
    } else {
        replay_print_summary(stdout, &summary, NULL, all_ok, out.json);
    }
    if (out.has_vfio)
        print_vfio_summary(&out);
    if (ret < 0 || summary.malformed_lines)
        exit_status = VIOMMU_EXIT_USAGE;
    else
        exit_status = all_ok ? VIOMMU_EXIT_OK : VIOMMU_EXIT_FAILED;

out:
    vfio_backend_free(backend);
    vfio_backend_config_clear(&vcfg);
    translate_check_free(out.check);
    qemu_log_reader_free(reader);
    replay_config_clear(&cfg);
    if (fflush(stdout) != 0 && exit_status == VIOMMU_EXIT_OK)
        exit_status = VIOMMU_EXIT_USAGE;
    return exit_status;
}

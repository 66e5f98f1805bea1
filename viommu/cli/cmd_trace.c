/* SPDX-License-Identifier: MIT */
/*
 * cmd_trace.c - `viommu trace summarize` and `viommu trace convert`.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "trace_convert.h"
#include "trace_stats.h"

static const char summarize_description[] =
    "FILE is a JSON Lines trace (viommu --trace=jsonl=FILE ...) or a QEMU\n"
    "log with virtio_iommu_* events, either plain or xz-compressed; the\n"
    "format is recognised from the content. A QEMU log's requests run through the\n"
    "device model (as 'viommu replay' does) for their statuses and batches.\n"
    "\n"
    "Prints: requests by type and status; MAP sizes as a power-of-two\n"
    "histogram; live mappings per domain (most at once, and at the end);\n"
    "IOVA reuse (the share of successful maps starting where an earlier map\n"
    "of the domain started); unmaps that removed several mappings; requests\n"
    "per batch when the trace shows batches; vfio-user messages, waits and\n"
    "bytes per request when it holds vfio-user traffic; dirty pages.\n"
    "\n"
    "Exit status: 0, or 2 for bad options, unreadable input or a malformed line.";

static const char convert_description[] =
    "Converts between QEMU's log format and JSON Lines, either read plain or\n"
    "xz-compressed. QEMU\n"
    "to JSON Lines runs the log's requests through the device model and\n"
    "writes the events it fires; JSON Lines to QEMU writes each request as\n"
    "the line QEMU prints for it, with queue events that keep the batches,\n"
    "so 'viommu replay' runs it. IN '-' is standard input (JSON Lines only),\n"
    "OUT '-' is standard output.\n"
    "\n"
    "Exit status: 0, or 2 for bad options, unreadable input or a malformed line.";

typedef struct summarize_ctx {
    trace_stats *stats;
    replay_summary sum;
} summarize_ctx;

static int on_event(void *opaque, const trace_event *ev)
{
    trace_stats_add_event(opaque, ev);
    return 0;
}

static int on_replayed(void *opaque, const replay_request *r)
{
    summarize_ctx *c = opaque;
    trace_stats_request req = {
        .type = r->type,
        .domain = r->domain,
        .endpoint = r->endpoint,
        .virt_start = r->virt_start,
        .virt_end = r->virt_end,
        .phys_start = r->phys_start,
        .flags = r->flags,
        .status = r->status,
        /* Without queue events every request is a batch of its own only
         * because nothing says otherwise: report batches as unknown. */
        .batch = c->sum.queue_batches ? r->batch : 0,
    };
    trace_stats_add_request(c->stats, &req);
    return 0;
}

static int summarize_qemu(summarize_ctx *c, const char *path, GError **error)
{
    qemu_log_reader *reader = NULL;
    replay_config cfg;
    replay_hooks hooks = {.opaque = c, .request_done = on_replayed};
    int ret = qemu_log_reader_open(path, &reader, error);
    if (ret < 0)
        return ret;
    replay_config_init(&cfg);
    ret = replay_run(&cfg, reader, &hooks, &c->sum, error);
    replay_config_clear(&cfg);
    qemu_log_reader_free(reader);
    return ret;
}

static int cmd_summarize(int argc, char **argv)
{
    gboolean json = FALSE;
    GOptionEntry entries[] = {
        {"json", 0, 0, G_OPTION_ARG_NONE, &json, "Print the summary as one JSON object", NULL},
        {NULL, 0, 0, 0, NULL, NULL, NULL},
    };
    g_autoptr(GOptionContext) ctx = g_option_context_new("FILE");
    g_autoptr(GError) error = NULL;
    g_option_context_set_summary(ctx, "Summarizes a trace's mapping traffic and its costs.");
    g_option_context_set_description(ctx, summarize_description);
    g_option_context_add_main_entries(ctx, entries, NULL);
    g_set_prgname("viommu trace summarize");
    if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
        fprintf(stderr, "viommu trace summarize: %s\n", error->message);
        return VIOMMU_EXIT_USAGE;
    }
    if (argc != 2) {
        fprintf(stderr, "viommu trace summarize: expected one FILE; see "
                        "'viommu trace summarize --help'\n");
        return VIOMMU_EXIT_USAGE;
    }
    trace_file_format fmt;
    if (trace_file_detect(argv[1], &fmt, &error) < 0) {
        fprintf(stderr, "viommu trace summarize: %s\n", error->message);
        return VIOMMU_EXIT_USAGE;
    }
    summarize_ctx c = {.stats = trace_stats_new()};
    int ret;
    if (fmt == TRACE_FILE_QEMU) {
        trace_stats_set_source(c.stats, "qemu", true);
        ret = summarize_qemu(&c, argv[1], &error);
    } else {
        trace_stats_set_source(c.stats, "jsonl", false);
        ret = trace_jsonl_read(argv[1], on_event, c.stats, &error);
    }
    if (ret < 0) {
        fprintf(stderr, "viommu trace summarize: %s\n", error ? error->message : g_strerror(-ret));
        trace_stats_free(c.stats);
        return VIOMMU_EXIT_USAGE;
    }
    trace_stats_print(c.stats, stdout, json);
    trace_stats_free(c.stats);
    return VIOMMU_EXIT_OK;
}

static int cmd_convert(int argc, char **argv)
{
    g_autofree char *to = NULL;
    GOptionEntry entries[] = {
        {"to", 0, 0, G_OPTION_ARG_STRING, &to,
         "Output format: jsonl or qemu (default: the other one)", "FORMAT"},
        {NULL, 0, 0, 0, NULL, NULL, NULL},
    };
    g_autoptr(GOptionContext) ctx = g_option_context_new("IN OUT");
    g_autoptr(GError) error = NULL;
    g_option_context_set_summary(ctx, "Converts a trace between QEMU's log format and JSON Lines.");
    g_option_context_set_description(ctx, convert_description);
    g_option_context_add_main_entries(ctx, entries, NULL);
    g_set_prgname("viommu trace convert");
    if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
        fprintf(stderr, "viommu trace convert: %s\n", error->message);
        return VIOMMU_EXIT_USAGE;
    }
    if (argc != 3) {
        fprintf(stderr, "viommu trace convert: expected IN and OUT; see "
                        "'viommu trace convert --help'\n");
        return VIOMMU_EXIT_USAGE;
    }
    trace_file_format in_fmt = TRACE_FILE_JSONL, out_fmt;
    if (strcmp(argv[1], "-") != 0 && trace_file_detect(argv[1], &in_fmt, &error) < 0) {
        fprintf(stderr, "viommu trace convert: %s\n", error->message);
        return VIOMMU_EXIT_USAGE;
    }
    if (!to)
        out_fmt = in_fmt == TRACE_FILE_QEMU ? TRACE_FILE_JSONL : TRACE_FILE_QEMU;
    else if (strcmp(to, "jsonl") == 0)
        out_fmt = TRACE_FILE_JSONL;
    else if (strcmp(to, "qemu") == 0)
        out_fmt = TRACE_FILE_QEMU;
    else {
        fprintf(stderr, "viommu trace convert: --to must be jsonl or qemu, not '%s'\n", to);
        return VIOMMU_EXIT_USAGE;
    }
    if (out_fmt == in_fmt) {
        fprintf(stderr, "viommu trace convert: %s is already in %s format\n", argv[1],
                in_fmt == TRACE_FILE_QEMU ? "QEMU's log" : "JSON Lines");
        return VIOMMU_EXIT_USAGE;
    }
    FILE *out = strcmp(argv[2], "-") == 0 ? stdout : fopen(argv[2], "we");
    if (!out) {
        fprintf(stderr, "viommu trace convert: cannot create %s: %s\n", argv[2], g_strerror(errno));
        return VIOMMU_EXIT_USAGE;
    }
    int ret;
    if (out_fmt == TRACE_FILE_JSONL) {
        replay_config cfg;
        replay_config_init(&cfg);
        ret = trace_convert_to_jsonl(argv[1], &cfg, out, &error);
        replay_config_clear(&cfg);
    } else {
        ret = trace_convert_to_qemu(argv[1], out, &error);
    }
    if (out != stdout && fclose(out) != 0 && ret == 0) {
        fprintf(stderr, "viommu trace convert: cannot write %s: %s\n", argv[2], g_strerror(errno));
        return VIOMMU_EXIT_USAGE;
    }
    if (ret < 0) {
        fprintf(stderr, "viommu trace convert: %s\n", error ? error->message : g_strerror(-ret));
        return VIOMMU_EXIT_USAGE;
    }
    return VIOMMU_EXIT_OK;
}

static void usage(FILE *out)
{
    fprintf(out, "Usage: viommu trace summarize [--json] FILE\n"
                 "       viommu trace convert [--to jsonl|qemu] IN OUT\n"
                 "\n"
                 "Run 'viommu trace summarize --help' or 'viommu trace convert --help'\n"
                 "for details.\n");
}

int cmd_trace(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return VIOMMU_EXIT_USAGE;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        usage(stdout);
        return VIOMMU_EXIT_OK;
    }
    if (strcmp(argv[1], "summarize") == 0)
        return cmd_summarize(argc - 1, argv + 1);
    if (strcmp(argv[1], "convert") == 0)
        return cmd_convert(argc - 1, argv + 1);
    fprintf(stderr, "viommu trace: unknown subcommand '%s'\n\n", argv[1]);
    usage(stderr);
    return VIOMMU_EXIT_USAGE;
}

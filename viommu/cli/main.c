/* SPDX-License-Identifier: MIT */
/*
 * main.c - the `viommu` command: dispatches to its subcommands.
 */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "describe.h"
#include "shared.h"

static const viommu_command commands[] = {
    {"replay", "run a QEMU trace log's requests through the device model", cmd_replay},
    {"describe", "print the device tree or ACPI VIOT description of a topology",
     viommu_cli_describe},
    {"trace", "summarize a trace, or convert it between QEMU's log format and JSON Lines",
     cmd_trace},
};

static void usage(FILE *out)
{
    fprintf(out, "Usage: viommu COMMAND [OPTIONS...]\n"
                 "\n"
                 "A virtio-iommu device model and its tools.\n"
                 "\n"
                 "Commands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n"
                 "Options:\n"
                 "  -h, --help     show this help\n"
                 "  --version      show the version\n"
                 "  --trace=SPEC   trace the device model and vfio-user traffic while the\n"
                 "                 command runs; SPEC is a comma-separated list of\n"
                 "                 usdt             fire the USDT probes (provider viommu)\n"
                 "                 text[=PATH]      readable lines to PATH (- is stdout),\n"
                 "                                  or standard error\n"
                 "                 jsonl[=PATH]     JSON Lines to PATH, or standard error\n"
                 "                 off              nothing (the default)\n"
                 "\n"
                 "Run 'viommu COMMAND --help' for a command's options.\n");
}

/* Applies `--trace=SPEC` / `--trace SPEC` at argv[1] and removes it;
 * returns false (message printed) when it is malformed. */
static bool take_trace_option(int *argc, char ***argv)
{
    char **av = *argv;
    const char *spec;
    int used;
    if (*argc < 2)
        return true;
    if (strncmp(av[1], "--trace=", 8) == 0) {
        spec = av[1] + 8;
        used = 1;
    } else if (strcmp(av[1], "--trace") == 0) {
        if (*argc < 3) {
            fprintf(stderr, "viommu: --trace needs a value\n");
            return false;
        }
        spec = av[2];
        used = 2;
    } else {
        return true;
    }
    GError *err = NULL;
    if (trace_configure(spec, &err) < 0) {
        fprintf(stderr, "viommu: --trace: %s\n", err->message);
        g_error_free(err);
        return false;
    }
    /* The command sees its own name in argv[1] as before. */
    av[used] = av[0];
    *argv = av + used;
    *argc -= used;
    return true;
}

static int run(int argc, char **argv);

int main(int argc, char **argv)
{
    if (!take_trace_option(&argc, &argv))
        return VIOMMU_EXIT_USAGE;
    int status = run(argc, argv);
    /* A trace that did not reach its file is a failure of the command. */
    if (trace_flush() < 0) {
        fprintf(stderr, "viommu: --trace: writing the trace failed\n");
        if (status == VIOMMU_EXIT_OK)
            status = VIOMMU_EXIT_FAILED;
    }
    trace_stop();
    return status;
}

static int run(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return VIOMMU_EXIT_USAGE;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "help") == 0) {
        if (argc > 2 && strcmp(argv[1], "help") == 0) {
            for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
                if (strcmp(argv[2], commands[i].name) == 0) {
                    char *help_argv[] = {argv[0], argv[2], (char *)"--help", NULL};
                    return commands[i].run(3, help_argv);
                }
            }
        }
        usage(stdout);
        return VIOMMU_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("viommu %s\n", VIOMMU_VERSION);
        return VIOMMU_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    }
    fprintf(stderr, "viommu: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return VIOMMU_EXIT_USAGE;
}

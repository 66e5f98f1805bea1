/* SPDX-License-Identifier: MIT */
/*
 * main.c - the `viommu` command: dispatches to its subcommands.
 */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "describe.h"

static const viommu_command commands[] = {
    {"replay", "run a QEMU trace log's requests through the device model", cmd_replay},
    {"describe", "print the device tree or ACPI VIOT description of a topology",
     viommu_cli_describe},
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
                 "\n"
                 "Run 'viommu COMMAND --help' for a command's options.\n");
}

int main(int argc, char **argv)
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

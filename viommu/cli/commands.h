/* SPDX-License-Identifier: MIT */
/*
 * commands.h - the subcommands of the `viommu` command and the option
 * parsing helpers they share.
 */
#ifndef VIOMMU_CLI_COMMANDS_H
#define VIOMMU_CLI_COMMANDS_H

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

/* Exit statuses of every subcommand. */
#define VIOMMU_EXIT_OK 0     /* done, and every request succeeded */
#define VIOMMU_EXIT_FAILED 1 /* done, but some request did not succeed */
#define VIOMMU_EXIT_USAGE 2  /* bad options, unreadable or malformed input */

typedef struct viommu_command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv); /* argv[0] is the command's name */
} viommu_command;

int cmd_replay(int argc, char **argv);
int cmd_trace(int argc, char **argv);

/*
 * Option values. Each returns true with the value, or false when the text
 * is not one (cli_parse_id_list then also says why in @error).
 */

/* A u64 in decimal, or hexadecimal with a 0x prefix. */
bool cli_parse_u64(const char *s, uint64_t *out);

/* "A-B" with A <= B, each as cli_parse_u64. */
bool cli_parse_range(const char *s, uint64_t *first, uint64_t *last);

/*
 * A comma-separated list of IDs and inclusive ID ranges ("0,24-48"), at
 * most @max IDs in all, appended to @ids (uint32_t).
 */
bool cli_parse_id_list(const char *s, GArray *ids, guint max, GError **error);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * options.c - parsing of the option values the subcommands share.
 */
#include <errno.h>
#include <string.h>

#include "commands.h"

bool cli_parse_u64(const char *s, uint64_t *out)
{
    guint64 v;
    guint base = 10;

    if (g_str_has_prefix(s, "0x") || g_str_has_prefix(s, "0X")) {
        s += 2;
        base = 16;
    }
    /* Signs and blanks are not numbers here; glib would accept a '+'. */
    if (!g_ascii_isxdigit(*s))
        return false;
    if (!g_ascii_string_to_unsigned(s, base, 0, G_MAXUINT64, &v, NULL))
        return false;
    *out = v;
    return true;
}

bool cli_parse_range(const char *s, uint64_t *first, uint64_t *last)
{
    const char *dash = strchr(s, '-');
    g_autofree char *a = NULL;

    if (!dash)
        return false;
    a = g_strndup(s, (gsize)(dash - s));
    if (!cli_parse_u64(a, first) || !cli_parse_u64(dash + 1, last))
        return false;
    return *first <= *last;
}

bool cli_parse_id_list(const char *s, GArray *ids, guint max, GError **error)
{
    g_auto(GStrv) parts = g_strsplit(s, ",", -1);

    if (!parts[0]) {
        g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, "empty endpoint list");
        return false;
    }
    for (char **p = parts; *p; p++) {
        uint64_t first, last;

        if (strchr(*p, '-')) {
            if (!cli_parse_range(*p, &first, &last)) {
                g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                            "'%s' is not an ID range A-B", *p);
                return false;
            }
        } else if (cli_parse_u64(*p, &first)) {
            last = first;
        } else {
            g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, "'%s' is not an ID", *p);
            return false;
        }
        if (last > G_MAXUINT32) {
            g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                        "'%s': IDs are 32-bit numbers", *p);
            return false;
        }
        if (last - first >= max || ids->len + (last - first + 1) > max) {
            g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, "more than %u IDs in '%s'",
                        max, s);
            return false;
        }
        for (uint64_t id = first; id <= last; id++) {
            uint32_t v = (uint32_t)id;
            g_array_append_val(ids, v);
        }
    }
    return true;
}

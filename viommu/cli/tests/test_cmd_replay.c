/* SPDX-License-Identifier: MIT */
/*
 * Tests of `viommu replay` run as a user runs it: the built command (its
 * path in VIOMMU_EXE) on a real trace, every line of its --json output
 * parsed with json-glib.
 */
#include <criterion/criterion.h>
#include <json-glib/json-glib.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef TEST_DATA_DIR
#error "TEST_DATA_DIR must name the directory holding the traces"
#endif

/* Runs the command with @args; returns its stdout, stores the exit status. */
static char *run(const char *const *args, int *exit_status)
{
    const char *exe = getenv("VIOMMU_EXE");
    GPtrArray *argv = g_ptr_array_new();
    char *out = NULL;
    GError *error = NULL;
    int wait_status;

    cr_assert_not_null(exe, "VIOMMU_EXE names the built command");
    g_ptr_array_add(argv, (char *)exe);
    for (; *args; args++)
        g_ptr_array_add(argv, (char *)*args);
    g_ptr_array_add(argv, NULL);
    cr_assert(g_spawn_sync(NULL, (char **)argv->pdata, NULL, G_SPAWN_STDERR_TO_DEV_NULL, NULL, NULL,
                           &out, NULL, &wait_status, &error),
              "%s", error ? error->message : "");
    *exit_status = WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : -1;
    g_ptr_array_free(argv, TRUE);
    return out;
}

static const char *const request_fields[] = {
    "seq", "type", "domain", "endpoint", "virt_start", "virt_end", "phys_start", "flags", "status"};

Test(cmd_replay, json_output_of_the_kicks_trace_parses_with_every_field, .timeout = 300)
{
    const char *args[] = {"replay", "--json", TEST_DATA_DIR "/strict-kicks.trace.log.xz", NULL};
    int status;
    g_autofree char *out = run(args, &status);
    g_autoptr(GPtrArray) lines = g_ptr_array_new();
    unsigned seen[G_N_ELEMENTS(request_fields)] = {0};
    uint64_t requests = 0, ok = 0;
    g_autoptr(JsonParser) parser = json_parser_new();
    JsonObject *summary;
    size_t len;

    cr_assert_eq(status, 0);
    /*
     * Split in place with memchr: g_strsplit's strstr scans the rest of
     * the output for every line under AddressSanitizer.
     */
    len = strlen(out);
    cr_assert_gt(len, 0);
    cr_assert_eq(out[len - 1], '\n', "the output ends with a newline");
    for (char *p = out; p < out + len;) {
        char *nl = memchr(p, '\n', (size_t)(out + len - p));
        *nl = '\0';
        g_ptr_array_add(lines, p);
        p = nl + 1;
    }
    cr_assert_gt(lines->len, 1);
    for (guint i = 0; i + 1 < lines->len; i++) {
        JsonObject *o;
        GError *error = NULL;

        /* Plain checks per line, criterion's only on failure: 85k lines
         * under AddressSanitizer make every assertion count. */
        if (!json_parser_load_from_data(parser, g_ptr_array_index(lines, i), -1, &error))
            cr_assert_fail("line %u: %s", i + 1, error ? error->message : "");
        if (!JSON_NODE_HOLDS_OBJECT(json_parser_get_root(parser)))
            cr_assert_fail("line %u is not an object", i + 1);
        o = json_node_get_object(json_parser_get_root(parser));
        if (json_object_get_int_member(o, "seq") != (gint64)i + 1)
            cr_assert_fail("line %u: seq is not %u", i + 1, i + 1);
        for (size_t f = 0; f < G_N_ELEMENTS(request_fields); f++)
            seen[f] += json_object_has_member(o, request_fields[f]);
        requests++;
        ok += strcmp(json_object_get_string_member(o, "status"), "OK") == 0;
    }
    /* Every field appears on the requests that have it. */
    for (size_t f = 0; f < G_N_ELEMENTS(request_fields); f++)
        cr_assert_gt(seen[f], 0, "no request has \"%s\"", request_fields[f]);
    cr_assert_eq(seen[0], requests);
    cr_assert_eq(seen[8], requests, "every request has a status");
    cr_assert_eq(ok, requests);
    cr_assert(
        json_parser_load_from_data(parser, g_ptr_array_index(lines, lines->len - 1), -1, NULL));
    summary = json_object_get_object_member(json_node_get_object(json_parser_get_root(parser)),
                                            "summary");
    cr_assert_not_null(summary, "the last object is the summary");
    cr_assert_eq(json_object_get_int_member(summary, "requests"), (gint64)requests);
    cr_assert(json_object_get_boolean_member(summary, "all_ok"));
}

Test(cmd_replay, exits_1_when_a_request_fails)
{
    g_autofree char *path = NULL;
    int fd = g_file_open_tmp(NULL, &path, NULL);
    const char *text = "virtio_iommu_attach domain=1 endpoint=8\n"
                       "virtio_iommu_map domain=2 virt_start=0x0 virt_end=0xfff "
                       "phys_start=0x0 flags=1\n";
    int status;

    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    {
        const char *args[] = {"replay", "--json", path, NULL};
        g_autofree char *out = run(args, &status);
        cr_assert_eq(status, 1);
        cr_assert(strstr(out, "\"status\":\"NOENT\""), "%s", out);
    }
    unlink(path);
}

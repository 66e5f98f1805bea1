/* SPDX-License-Identifier: MIT */
/*
 * conformance_table.c - runs the virtio-iommu conformance suite (the
 * criterion program named on the command line), reads its JSON report and
 * prints one row per statement of the spec: result, level, section,
 * statement and test.
 *
 * Exits 0 when every statement's test passed; 1 when one failed, a
 * statement has no test or a test has no statement; 2 when the suite could
 * not be run or its report not read.
 */
#include <json-glib/json-glib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "statements.h"

/*
 * "suite::test" -> criterion status ("PASSED", "FAILED", "ERRORED",
 * "SKIPPED"), or "EMPTY" for a test that passed without asserting
 * anything (it would check no statement).
 */
static GHashTable *read_results(const char *json_path, GError **error)
{
    g_autoptr(JsonParser) parser = json_parser_new();
    GHashTable *results = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    JsonObject *root;
    JsonArray *suites;

    if (!json_parser_load_from_file(parser, json_path, error))
        goto fail;
    if (!JSON_NODE_HOLDS_OBJECT(json_parser_get_root(parser)))
        goto malformed;
    root = json_node_get_object(json_parser_get_root(parser));
    if (!json_object_has_member(root, "test_suites") ||
        !JSON_NODE_HOLDS_ARRAY(json_object_get_member(root, "test_suites")))
        goto malformed;
    suites = json_object_get_array_member(root, "test_suites");
    for (guint i = 0; i < json_array_get_length(suites); i++) {
        JsonNode *sn = json_array_get_element(suites, i);
        JsonObject *suite;
        JsonArray *tests;

        if (!JSON_NODE_HOLDS_OBJECT(sn))
            goto malformed;
        suite = json_node_get_object(sn);
        if (!json_object_has_member(suite, "tests") || !json_object_has_member(suite, "name"))
            goto malformed;
        tests = json_object_get_array_member(suite, "tests");
        for (guint j = 0; tests && j < json_array_get_length(tests); j++) {
            JsonNode *tn = json_array_get_element(tests, j);
            JsonObject *test;
            const char *name, *status;

            if (!JSON_NODE_HOLDS_OBJECT(tn))
                goto malformed;
            test = json_node_get_object(tn);
            name = json_object_get_string_member_with_default(test, "name", NULL);
            status = json_object_get_string_member_with_default(test, "status", NULL);
            if (!name || !status)
                goto malformed;
            g_hash_table_insert(
                results,
                g_strdup_printf(
                    "%s::%s", json_object_get_string_member_with_default(suite, "name", "?"), name),
                g_strdup(status));
        }
    }
    return results;

malformed:
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "%s is not a criterion JSON report",
                json_path);
fail:
    g_hash_table_destroy(results);
    return NULL;
}

static const char *result_word(const char *status)
{
    if (!status)
        return "NO TEST";
    if (strcmp(status, "PASSED") == 0)
        return "PASS";
    if (strcmp(status, "SKIPPED") == 0)
        return "SKIP";
    if (strcmp(status, "EMPTY") == 0)
        return "EMPTY";
    return "FAIL";
}

int main(int argc, char **argv)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *tmpdir = NULL, *json_path = NULL, *json_arg = NULL;
    g_autoptr(GHashTable) results = NULL;
    unsigned pass = 0, fail = 0, untested = 0, unlisted = 0;
    int wait_status = 0;
    GHashTableIter it;
    gpointer key;

    if (argc != 2) {
        fprintf(stderr, "usage: %s SUITE-PROGRAM\n", argv[0]);
        return 2;
    }
    tmpdir = g_dir_make_tmp(NULL, &error);
    if (!tmpdir) {
        fprintf(stderr, "conformance: %s\n", error->message);
        return 2;
    }
    json_path = g_build_filename(tmpdir, "report.json", NULL);
    json_arg = g_strdup_printf("--json=%s", json_path);
    {
        char *child_argv[] = {argv[1], json_arg, (char *)"-j1", NULL};
        if (!g_spawn_sync(NULL, child_argv, NULL,
                          G_SPAWN_STDOUT_TO_DEV_NULL | G_SPAWN_STDERR_TO_DEV_NULL, NULL, NULL, NULL,
                          NULL, &wait_status, &error)) {
            fprintf(stderr, "conformance: cannot run %s: %s\n", argv[1], error->message);
            rmdir(tmpdir);
            return 2;
        }
    }
    /* The suite's exit status only repeats what the report says. */
    results = read_results(json_path, &error);
    unlink(json_path);
    rmdir(tmpdir);
    if (!results) {
        fprintf(stderr, "conformance: %s\n", error->message);
        return 2;
    }

    printf("virtio-iommu conformance (virtio spec, Device Types / IOMMU Device)\n\n");
    printf("%-7s  %-10s  %-46s  %s\n", "result", "level", "section", "statement [test]");
    for (size_t i = 0; i < spec_statement_count; i++) {
        const spec_statement *s = &spec_statements[i];
        g_autofree char *id = g_strdup_printf("%s::%s", s->suite, s->test);
        const char *status = g_hash_table_lookup(results, id);
        const char *word = result_word(status);

        if (strcmp(word, "PASS") == 0)
            pass++;
        else if (!status)
            untested++;
        else
            fail++;
        printf("%-7s  %-10s  %-46s  %s [%s]\n", word, s->level, s->section, s->text, id);
        g_hash_table_remove(results, id);
    }
    /* Every test of the suite must check a statement of the table. */
    g_hash_table_iter_init(&it, results);
    while (g_hash_table_iter_next(&it, &key, NULL)) {
        printf("%-7s  %-10s  %-46s  %s [%s]\n", "NO STMT", "-", "-",
               "a test the statement table does not list", (const char *)key);
        unlisted++;
    }
    printf("\n%zu statements: %u pass, %u fail, %u without a test; %u tests without a "
           "statement\n",
           spec_statement_count, pass, fail, untested, unlisted);
    return (fail || untested || unlisted) ? 1 : 0;
}

/* SPDX-License-Identifier: MIT */
/* Tests of the replay output: readable lines and JSON objects that parse. */
#include "replay_print.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <json-glib/json-glib.h>
#include <string.h>

/* Prints with @fn into a string. */
#define CAPTURE(buf, call)                                                                         \
    do {                                                                                           \
        size_t len_;                                                                               \
        FILE *f = open_memstream(&(buf), &len_);                                                   \
        cr_assert_not_null(f);                                                                     \
        call;                                                                                      \
        cr_assert_eq(fclose(f), 0);                                                                \
    } while (0)

/* Parses one line of JSON output into its object (owned by the returned parser). */
static JsonObject *parse_object(const char *text, JsonParser **parser)
{
    GError *error = NULL;

    cr_assert_not_null(strchr(text, '\n'), "one object per line");
    cr_assert_eq(strchr(text, '\n')[1], '\0', "exactly one line");
    *parser = json_parser_new();
    cr_assert(json_parser_load_from_data(*parser, text, -1, &error), "%s: %s", text,
              error ? error->message : "");
    cr_assert(JSON_NODE_HOLDS_OBJECT(json_parser_get_root(*parser)));
    return json_node_get_object(json_parser_get_root(*parser));
}

static const replay_request map_request = {
    .seq = 3,
    .line = 17,
    .batch = 2,
    .type = VIRTIO_IOMMU_T_MAP,
    .has_domain = true,
    .has_virt = true,
    .has_phys = true,
    .has_flags = true,
    .domain = 4,
    .virt_start = 0xfffffffffffff000ull,
    .virt_end = UINT64_MAX,
    .phys_start = 0x1fa9000,
    .flags = 3,
    .status = VIRTIO_IOMMU_S_RANGE,
};

Test(replay_print, writes_a_map_as_json_with_every_field)
{
    char *out = NULL;
    JsonParser *parser;
    JsonObject *o;

    CAPTURE(out, replay_print_request(f, &map_request, true));
    o = parse_object(out, &parser);
    cr_assert_eq(json_object_get_int_member(o, "seq"), 3);
    cr_assert_eq(json_object_get_int_member(o, "line"), 17);
    cr_assert_eq(json_object_get_int_member(o, "batch"), 2);
    cr_assert_str_eq(json_object_get_string_member(o, "type"), "MAP");
    cr_assert_eq(json_object_get_int_member(o, "domain"), 4);
    cr_assert_str_eq(json_object_get_string_member(o, "virt_start"), "0xfffffffffffff000");
    cr_assert_str_eq(json_object_get_string_member(o, "virt_end"), "0xffffffffffffffff");
    cr_assert_str_eq(json_object_get_string_member(o, "phys_start"), "0x1fa9000");
    cr_assert_eq(json_object_get_int_member(o, "flags"), 3);
    cr_assert_str_eq(json_object_get_string_member(o, "status"), "RANGE");
    cr_assert_not(json_object_has_member(o, "endpoint"), "absent fields are omitted");
    g_object_unref(parser);
    free(out);
}

Test(replay_print, omits_the_fields_a_request_type_lacks)
{
    replay_request probe = {.seq = 1,
                            .line = 1,
                            .batch = 1,
                            .type = VIRTIO_IOMMU_T_PROBE,
                            .has_endpoint = true,
                            .endpoint = 24,
                            .status = VIRTIO_IOMMU_S_OK};
    replay_request unknown = {
        .seq = 2, .type = VIRTIO_IOMMU_T_ATTACH, .status = VIOMMU_STATUS_NONE};
    char *out = NULL;
    JsonParser *parser;
    JsonObject *o;

    CAPTURE(out, replay_print_request(f, &probe, true));
    o = parse_object(out, &parser);
    cr_assert_eq(json_object_get_size(o), 7, "%s", out);
    cr_assert_eq(json_object_get_int_member(o, "endpoint"), 24);
    cr_assert(json_object_get_boolean_member(o, "probe_matches_trace"));
    cr_assert_not(json_object_has_member(o, "domain"));
    cr_assert_not(json_object_has_member(o, "virt_start"));
    cr_assert_not(json_object_has_member(o, "flags"));
    g_object_unref(parser);
    free(out);
    out = NULL;
    CAPTURE(out, replay_print_request(f, &unknown, true));
    o = parse_object(out, &parser);
    cr_assert_str_eq(json_object_get_string_member(o, "status"), "NONE");
    g_object_unref(parser);
    free(out);
}

Test(replay_print, writes_a_readable_line_per_request)
{
    char *out = NULL;

    CAPTURE(out, replay_print_request(f, &map_request, false));
    cr_assert_str_eq(out, "3 (line 17): MAP domain=4 virt_start=0xfffffffffffff000 "
                          "virt_end=0xffffffffffffffff phys_start=0x1fa9000 flags=0x3 -> RANGE\n");
    free(out);
}

Test(replay_print, writes_a_summary_object_that_parses)
{
    replay_summary s = {.lines = 10, .requests = 4, .batches = 2, .largest_batch = 3};
    translate_check_stats tc = {.accesses = 5, .translated = 4, .unmapped = 1};
    char *out = NULL;
    JsonParser *parser;
    JsonObject *o, *sum, *types, *statuses, *check;

    s.by_type[VIRTIO_IOMMU_T_MAP] = 3;
    s.by_type[VIRTIO_IOMMU_T_UNMAP] = 1;
    s.by_status[VIRTIO_IOMMU_S_OK] = 3;
    s.by_status[VIRTIO_IOMMU_S_NOENT] = 1;
    CAPTURE(out, replay_print_summary(f, &s, &tc, false, true));
    o = parse_object(out, &parser);
    sum = json_object_get_object_member(o, "summary");
    cr_assert_not_null(sum);
    cr_assert_eq(json_object_get_int_member(sum, "requests"), 4);
    cr_assert_eq(json_object_get_int_member(sum, "largest_batch"), 3);
    types = json_object_get_object_member(sum, "types");
    cr_assert_eq(json_object_get_int_member(types, "MAP"), 3);
    cr_assert_eq(json_object_get_int_member(types, "PROBE"), 0);
    statuses = json_object_get_object_member(sum, "statuses");
    cr_assert_eq(json_object_get_int_member(statuses, "OK"), 3);
    cr_assert_eq(json_object_get_int_member(statuses, "NOENT"), 1);
    cr_assert_not(json_object_has_member(statuses, "RANGE"));
    check = json_object_get_object_member(sum, "translate_check");
    cr_assert_eq(json_object_get_int_member(check, "accesses"), 5);
    cr_assert_not(json_object_get_boolean_member(sum, "all_ok"));
    g_object_unref(parser);
    free(out);
}

Test(replay_print, writes_a_mismatch_both_ways)
{
    translate_mismatch m = {.line = 9,
                            .endpoint = 24,
                            .addr = 0x1234,
                            .access = VIOMMU_ACCESS_WRITE,
                            .qemu_translated = true,
                            .qemu_gpa = 0xa234,
                            .ours = -EFAULT};
    char *out = NULL;
    JsonParser *parser;
    JsonObject *o;

    CAPTURE(out, replay_print_mismatch(f, &m, true));
    o = json_object_get_object_member(parse_object(out, &parser), "translate_mismatch");
    cr_assert_eq(json_object_get_int_member(o, "line"), 9);
    cr_assert_str_eq(json_object_get_string_member(o, "qemu"), "0xa234");
    cr_assert_str_eq(json_object_get_string_member(o, "replay"), "fault");
    g_object_unref(parser);
    free(out);
    out = NULL;
    CAPTURE(out, replay_print_mismatch(f, &m, false));
    cr_assert_str_eq(
        out, "line 9: translate endpoint=24 addr=0x1234 write: QEMU 0xa234, replay fault\n");
    free(out);
}

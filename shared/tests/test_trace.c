/* SPDX-License-Identifier: MIT */
#include <criterion/criterion.h>
#include <errno.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <inttypes.h>
#include <json-glib/json-glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "shared.h"
#include "trace-internal.h"

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

/* A distinct, kind-appropriate value for field @i of event @id. */
static uint64_t sample_value(trace_event_id id, unsigned i, const trace_field_info *f)
{
    uint64_t base = (uint64_t)id * 100 + i + 1;
    switch (f->kind) {
    case TRACE_KIND_I32:
        return (uint64_t)(int64_t) - (int64_t)base;
    case TRACE_KIND_ADDR:
        return 0xfedc000000000000ull | base << 12;
    case TRACE_KIND_U64:
        return (1ull << 40) + base;
    default:
        return base;
    }
}

static trace_event sample_event(trace_event_id id)
{
    trace_event ev;
    unsigned n;
    memset(&ev, 0, sizeof(ev));
    ev.id = id;
    ev.ts_ns = 1234567890123ull + id;
    const trace_field_info *f = trace_event_fields(id, &n);
    for (unsigned i = 0; i < n; i++) {
        unsigned char *p = (unsigned char *)&ev.u + f[i].offset;
        uint64_t v = sample_value(id, i, &f[i]);
        if (f[i].size == 8) {
            memcpy(p, &v, 8);
        } else {
            uint32_t v32 = (uint32_t)v;
            memcpy(p, &v32, 4);
        }
    }
    return ev;
}

static void assert_events_equal(const trace_event *a, const trace_event *b)
{
    unsigned n;
    cr_assert_eq(a->id, b->id);
    cr_assert_eq(a->ts_ns, b->ts_ns);
    trace_event_fields(a->id, &n);
    for (unsigned i = 0; i < n; i++) {
        uint64_t x, y;
        cr_assert_eq(trace_event_field_value(a, i, &x), 0);
        cr_assert_eq(trace_event_field_value(b, i, &y), 0);
        cr_assert_eq(x, y, "event %s field %u: %#llx != %#llx", trace_event_name(a->id), i,
                     (unsigned long long)x, (unsigned long long)y);
    }
}

typedef struct recorder {
    trace_event events[64];
    unsigned count;
} recorder;

static void record(void *opaque, const trace_event *ev)
{
    recorder *r = opaque;
    if (r->count < G_N_ELEMENTS(r->events))
        r->events[r->count] = *ev;
    r->count++;
}

/* Fires one event of every kind with the values sample_event gives. */
static void fire_all_samples(void)
{
    trace_event e;
    e = sample_event(TRACE_EV_request_received);
    TRACE(request_received, e.u.request_received.type, e.u.request_received.size,
          e.u.request_received.batch);
    e = sample_event(TRACE_EV_request_done);
    {
        trace_request_done_fields *f = &e.u.request_done;
        TRACE(request_done, f->type, f->domain, f->endpoint, f->virt_start, f->virt_end,
              f->phys_start, f->flags, f->status, f->latency_ns, f->batch);
    }
    e = sample_event(TRACE_EV_batch_begin);
    TRACE(batch_begin, e.u.batch_begin.batch);
    e = sample_event(TRACE_EV_batch_end);
    TRACE(batch_end, e.u.batch_end.batch, e.u.batch_end.requests, e.u.batch_end.latency_ns);
    e = sample_event(TRACE_EV_domain_created);
    TRACE(domain_created, e.u.domain_created.domain, e.u.domain_created.flags);
    e = sample_event(TRACE_EV_domain_destroyed);
    TRACE(domain_destroyed, e.u.domain_destroyed.domain, e.u.domain_destroyed.mappings);
    e = sample_event(TRACE_EV_endpoint_attached);
    TRACE(endpoint_attached, e.u.endpoint_attached.endpoint, e.u.endpoint_attached.domain);
    e = sample_event(TRACE_EV_endpoint_detached);
    TRACE(endpoint_detached, e.u.endpoint_detached.endpoint, e.u.endpoint_detached.domain);
    e = sample_event(TRACE_EV_listener_map);
    {
        trace_listener_map_fields *f = &e.u.listener_map;
        TRACE(listener_map, f->listener, f->endpoint, f->domain, f->iova, f->iova_last, f->gpa,
              f->prot, f->error);
    }
    e = sample_event(TRACE_EV_listener_unmap);
    {
        trace_listener_unmap_fields *f = &e.u.listener_unmap;
        TRACE(listener_unmap, f->listener, f->endpoint, f->domain, f->iova, f->iova_last, f->gpa,
              f->prot, f->error);
    }
    e = sample_event(TRACE_EV_vfio_user_send);
    {
        trace_vfio_user_send_fields *f = &e.u.vfio_user_send;
        TRACE(vfio_user_send, f->device, f->command, f->id, f->size, f->fds);
    }
    e = sample_event(TRACE_EV_vfio_user_reply);
    {
        trace_vfio_user_reply_fields *f = &e.u.vfio_user_reply;
        TRACE(vfio_user_reply, f->device, f->command, f->id, f->size, f->fds, f->error,
              f->latency_ns);
    }
    e = sample_event(TRACE_EV_dirty_collected);
    {
        trace_dirty_collected_fields *f = &e.u.dirty_collected;
        TRACE(dirty_collected, f->device, f->iova, f->iova_last, f->pgsize, f->pages_set);
    }
    e = sample_event(TRACE_EV_reconnect);
    TRACE(reconnect, e.u.reconnect.device, e.u.reconnect.attempt, e.u.reconnect.error,
          e.u.reconnect.latency_ns);
    e = sample_event(TRACE_EV_fault);
    TRACE(fault, e.u.fault.endpoint, e.u.fault.reason, e.u.fault.flags, e.u.fault.address);
    e = sample_event(TRACE_EV_vfio_user_wait);
    TRACE(vfio_user_wait, e.u.vfio_user_wait.device, e.u.vfio_user_wait.in_flight);
    e = sample_event(TRACE_EV_probe_property);
    TRACE(probe_property, e.u.probe_property.endpoint, e.u.probe_property.subtype,
          e.u.probe_property.start, e.u.probe_property.end);
}

static char *read_file(const char *path)
{
    char *text = NULL;
    cr_assert(g_file_get_contents(path, &text, NULL, NULL), "cannot read %s", path);
    return text;
}

static char *temp_path(const char *name)
{
    char *dir = g_dir_make_tmp("test_trace-XXXXXX", NULL);
    cr_assert_not_null(dir);
    char *path = g_build_filename(dir, name, NULL);
    g_free(dir);
    return path;
}

static void remove_temp(char *path)
{
    char *dir = g_path_get_dirname(path);
    g_unlink(path);
    g_rmdir(dir);
    g_free(dir);
    g_free(path);
}

/* ------------------------------------------------------------------ */
/* The event table                                                     */
/* ------------------------------------------------------------------ */

Test(trace_events, every_event_has_a_name_a_doc_and_uniquely_named_fields)
{
    for (unsigned id = 0; id < TRACE_EVENT_COUNT; id++) {
        const char *name = trace_event_name((trace_event_id)id);
        cr_assert_not_null(name);
        cr_assert_not_null(trace_event_doc((trace_event_id)id));
        trace_event_id back;
        cr_assert_eq(trace_event_lookup(name, strlen(name), &back), 0);
        cr_assert_eq(back, id);
        unsigned n;
        const trace_field_info *f = trace_event_fields((trace_event_id)id, &n);
        cr_assert_not_null(f);
        cr_assert(n >= 1 && n <= TRACE_MAX_FIELDS);
        for (unsigned i = 0; i < n; i++) {
            cr_assert_not_null(f[i].doc);
            cr_assert(f[i].size == 4 || f[i].size == 8);
            cr_assert_str_neq(f[i].name, "ts");
            cr_assert_str_neq(f[i].name, "event");
            for (unsigned j = 0; j < i; j++)
                cr_assert_str_neq(f[i].name, f[j].name, "%s repeats a field", name);
        }
    }
}

Test(trace_events, request_done_fields_are_in_the_documented_probe_order)
{
    static const char *const order[] = {"type",       "domain",     "endpoint", "virt_start",
                                        "virt_end",   "phys_start", "flags",    "status",
                                        "latency_ns", "batch"};
    unsigned n;
    const trace_field_info *f = trace_event_fields(TRACE_EV_request_done, &n);
    cr_assert_eq(n, G_N_ELEMENTS(order));
    for (unsigned i = 0; i < n; i++)
        cr_assert_str_eq(f[i].name, order[i]);
    cr_assert_eq(f[0].kind, TRACE_KIND_REQ);
    cr_assert_eq(f[3].kind, TRACE_KIND_ADDR);
}

Test(trace_events, lookups_outside_the_table_fail)
{
    unsigned n = 7;
    trace_event_id id;
    cr_assert_null(trace_event_name(TRACE_EVENT_COUNT));
    cr_assert_null(trace_event_doc(TRACE_EVENT_COUNT));
    cr_assert_null(trace_event_fields(TRACE_EVENT_COUNT, &n));
    cr_assert_eq(n, 0);
    cr_assert_eq(trace_event_lookup("request_don", 11, &id), -ENOENT);
    cr_assert_eq(trace_event_lookup("request_done_", 13, &id), -ENOENT);
    trace_event ev = {.id = TRACE_EV_batch_begin};
    uint64_t v;
    cr_assert_eq(trace_event_field_value(&ev, 1, &v), -EINVAL);
    ev.id = TRACE_EVENT_COUNT;
    cr_assert_eq(trace_event_field_value(&ev, 0, &v), -EINVAL);
}

/* ------------------------------------------------------------------ */
/* Enabling and the callback output                                    */
/* ------------------------------------------------------------------ */

static int evaluated;

static uint32_t counted_arg(void)
{
    evaluated++;
    return 1;
}

Test(trace_outputs, tracing_is_off_by_default_and_arguments_are_not_evaluated)
{
    cr_assert_not(trace_enabled());
    TRACE(batch_end, 1, counted_arg(), 2);
    cr_assert_eq(evaluated, 0);

    recorder r = {0};
    trace_set_callback(record, &r);
    cr_assert(trace_enabled());
    TRACE(batch_end, 1, counted_arg(), 2);
    cr_assert_eq(evaluated, 1);
    cr_assert_eq(r.count, 1);

    trace_set_callback(NULL, NULL);
    cr_assert_not(trace_enabled());
    TRACE(batch_end, 1, counted_arg(), 2);
    cr_assert_eq(evaluated, 1);
    cr_assert_eq(r.count, 1);
}

Test(trace_outputs, an_attached_tracer_turns_its_event_on_through_the_semaphore)
{
    /* What a tracer does when it attaches to viommu:batch_end and leaves. */
    cr_assert_not(trace_enabled());
    viommu_batch_end_semaphore++;
    TRACE(batch_end, 1, counted_arg(), 2);
    cr_assert_eq(evaluated, 1);
    TRACE(batch_begin, (uint64_t)counted_arg());
    cr_assert_eq(evaluated, 1, "only the probe a tracer attached to fires");
    viommu_batch_end_semaphore--;
    TRACE(batch_end, 1, counted_arg(), 2);
    cr_assert_eq(evaluated, 1);
}

Test(trace_outputs, callback_receives_every_event_decoded_in_order)
{
    recorder r = {0};
    trace_set_callback(record, &r);
    fire_all_samples();
    trace_stop();
    cr_assert_eq(r.count, TRACE_EVENT_COUNT);
    for (unsigned id = 0; id < TRACE_EVENT_COUNT; id++) {
        trace_event want = sample_event((trace_event_id)id);
        want.ts_ns = r.events[id].ts_ns;
        assert_events_equal(&r.events[id], &want);
        if (id > 0)
            cr_assert_geq(r.events[id].ts_ns, r.events[id - 1].ts_ns);
    }
}

Test(trace_outputs, usdt_alone_turns_tracing_on_and_stop_turns_it_off)
{
    cr_assert_not(trace_enabled());
    trace_set_usdt(true);
    cr_assert(trace_enabled());
    trace_set_usdt(false);
    cr_assert_not(trace_enabled());
    trace_set_usdt(true);
    trace_stop();
    cr_assert_not(trace_enabled());
}

/* ------------------------------------------------------------------ */
/* Text lines                                                          */
/* ------------------------------------------------------------------ */

Test(trace_text, a_request_done_line_names_its_type_and_status)
{
    trace_event ev = {.id = TRACE_EV_request_done, .ts_ns = 3000000042ull};
    ev.u.request_done = (trace_request_done_fields){
        .type = 3,
        .domain = 7,
        .endpoint = 8,
        .virt_start = 0x1000,
        .virt_end = 0x1fff,
        .phys_start = 0xfeed0000,
        .flags = 3,
        .status = 5,
        .latency_ns = 1500,
        .batch = 12,
    };
    char line[TRACE_LINE_MAX];
    int n = trace_event_format(&ev, TRACE_FORMAT_TEXT, line, sizeof(line));
    cr_assert_str_eq(line, "3.000000042 request_done type=MAP domain=7 endpoint=8 "
                           "virt_start=0x1000 virt_end=0x1fff phys_start=0xfeed0000 flags=0x3 "
                           "status=RANGE latency_ns=1500 batch=12\n");
    cr_assert_eq(n, (int)strlen(line));
}

Test(trace_text, unknown_codes_print_as_numbers_and_errors_as_negative)
{
    trace_event ev = {.id = TRACE_EV_request_done};
    ev.u.request_done.type = 99;
    ev.u.request_done.status = 42;
    char line[TRACE_LINE_MAX];
    cr_assert_gt(trace_event_format(&ev, TRACE_FORMAT_TEXT, line, sizeof(line)), 0);
    cr_assert_not_null(strstr(line, " type=99 "));
    cr_assert_not_null(strstr(line, " status=42 "));

    ev = (trace_event){.id = TRACE_EV_vfio_user_reply};
    ev.u.vfio_user_reply.error = INT32_MIN;
    cr_assert_gt(trace_event_format(&ev, TRACE_FORMAT_TEXT, line, sizeof(line)), 0);
    cr_assert_not_null(strstr(line, " error=-2147483648 "));
}

Test(trace_text, stream_output_writes_one_line_per_event)
{
    char *path = temp_path("events.txt");
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    cr_assert_eq(trace_set_stream(TRACE_FORMAT_TEXT, f), 0);
    fire_all_samples();
    trace_stop();
    fclose(f);

    char *text = read_file(path);
    char **lines = g_strsplit(text, "\n", -1);
    cr_assert_eq(g_strv_length(lines), TRACE_EVENT_COUNT + 1); /* ends with "\n" */
    cr_assert_str_empty(lines[TRACE_EVENT_COUNT]);
    for (unsigned id = 0; id < TRACE_EVENT_COUNT; id++) {
        char **words = g_strsplit(lines[id], " ", -1);
        unsigned n;
        const trace_field_info *fi = trace_event_fields((trace_event_id)id, &n);
        cr_assert_eq(g_strv_length(words), n + 2, "line: %s", lines[id]);
        cr_assert(g_regex_match_simple("^[0-9]+\\.[0-9]{9}$", words[0], 0, 0));
        cr_assert_str_eq(words[1], trace_event_name((trace_event_id)id));
        for (unsigned i = 0; i < n; i++) {
            char *prefix = g_strconcat(fi[i].name, "=", NULL);
            cr_assert(g_str_has_prefix(words[i + 2], prefix), "%s in %s", prefix, lines[id]);
            g_free(prefix);
        }
        g_strfreev(words);
    }
    g_strfreev(lines);
    g_free(text);
    remove_temp(path);
}

/* ------------------------------------------------------------------ */
/* JSON Lines                                                          */
/* ------------------------------------------------------------------ */

Test(trace_jsonl, every_line_parses_with_the_documented_fields)
{
    char *path = temp_path("events.jsonl");
    GError *err = NULL;
    cr_assert_eq(trace_open_path(TRACE_FORMAT_JSONL, path, &err), 0);
    fire_all_samples();
    trace_stop();

    char *text = read_file(path);
    char **lines = g_strsplit(text, "\n", -1);
    cr_assert_eq(g_strv_length(lines), TRACE_EVENT_COUNT + 1);
    int64_t last_ts = 0;
    for (unsigned id = 0; id < TRACE_EVENT_COUNT; id++) {
        JsonParser *parser = json_parser_new();
        cr_assert(json_parser_load_from_data(parser, lines[id], -1, &err), "%s: %s", lines[id],
                  err ? err->message : "");
        JsonNode *root = json_parser_get_root(parser);
        cr_assert(JSON_NODE_HOLDS_OBJECT(root));
        JsonObject *o = json_node_get_object(root);
        unsigned n;
        const trace_field_info *fi = trace_event_fields((trace_event_id)id, &n);
        cr_assert_eq(json_object_get_size(o), n + 2);
        cr_assert_eq(json_node_get_value_type(json_object_get_member(o, "ts")), G_TYPE_INT64);
        int64_t ts = json_object_get_int_member(o, "ts");
        cr_assert_geq(ts, last_ts);
        last_ts = ts;
        cr_assert_str_eq(json_object_get_string_member(o, "event"),
                         trace_event_name((trace_event_id)id));
        for (unsigned i = 0; i < n; i++) {
            JsonNode *m = json_object_get_member(o, fi[i].name);
            cr_assert_not_null(m, "%s lacks %s", lines[id], fi[i].name);
            uint64_t want = sample_value((trace_event_id)id, i, &fi[i]);
            if (fi[i].kind == TRACE_KIND_ADDR) {
                char *hex = g_strdup_printf("0x%llx", (unsigned long long)want);
                cr_assert_str_eq(json_node_get_string(m), hex);
                g_free(hex);
            } else {
                cr_assert_eq(json_node_get_value_type(m), G_TYPE_INT64);
                cr_assert_eq((uint64_t)json_node_get_int(m), want, "%s.%s",
                             trace_event_name((trace_event_id)id), fi[i].name);
            }
        }
        g_object_unref(parser);
    }
    g_strfreev(lines);
    g_free(text);
    remove_temp(path);
}

Test(trace_jsonl, every_event_round_trips_through_the_reader)
{
    char line[TRACE_LINE_MAX];
    for (unsigned id = 0; id < TRACE_EVENT_COUNT; id++) {
        trace_event ev = sample_event((trace_event_id)id), back;
        int n = trace_event_format(&ev, TRACE_FORMAT_JSONL, line, sizeof(line));
        cr_assert_gt(n, 0);
        GError *err = NULL;
        cr_assert_eq(trace_event_parse_json(line, (size_t)n, &back, &err), 0, "%s: %s", line,
                     err ? err->message : "");
        assert_events_equal(&ev, &back);
    }
}

Test(trace_jsonl, extreme_values_round_trip_exactly)
{
    trace_event ev = {.id = TRACE_EV_request_done, .ts_ns = UINT64_MAX};
    ev.u.request_done = (trace_request_done_fields){
        .type = UINT32_MAX,
        .domain = UINT32_MAX,
        .virt_start = 0,
        .virt_end = UINT64_MAX,
        .phys_start = 0x8000000000000000ull,
        .flags = UINT32_MAX,
        .latency_ns = UINT64_MAX,
        .batch = 0,
    };
    char line[TRACE_LINE_MAX];
    int n = trace_event_format(&ev, TRACE_FORMAT_JSONL, line, sizeof(line));
    trace_event back;
    cr_assert_eq(trace_event_parse_json(line, (size_t)n, &back, NULL), 0, "%s", line);
    assert_events_equal(&ev, &back);

    ev = (trace_event){.id = TRACE_EV_vfio_user_reply};
    ev.u.vfio_user_reply.error = INT32_MIN;
    n = trace_event_format(&ev, TRACE_FORMAT_JSONL, line, sizeof(line));
    cr_assert_eq(trace_event_parse_json(line, (size_t)n, &back, NULL), 0, "%s", line);
    cr_assert_eq(back.u.vfio_user_reply.error, INT32_MIN);
}

/* Addresses are printed as printf's "0x%" PRIx64 prints them, at every
 * length, in both formats. */
Test(trace_text, addresses_print_in_lower_case_hex_without_leading_zeros)
{
    GRand *rng = g_rand_new_with_seed(7);
    for (unsigned bits = 0; bits <= 64; bits++) {
        for (int k = 0; k < 16; k++) {
            uint64_t v = ((uint64_t)g_rand_int(rng) << 32 | g_rand_int(rng));
            v = bits == 0 ? 0 : bits == 64 ? v : (v & ((1ull << bits) - 1)) | 1ull << (bits - 1);
            if (k == 1)
                v = bits == 64 ? UINT64_MAX : (1ull << bits) - 1;
            trace_event ev = {.id = TRACE_EV_probe_property};
            ev.u.probe_property.start = v;
            ev.u.probe_property.end = ~v;
            char *start = g_strdup_printf("0x%" PRIx64, v),
                 *end = g_strdup_printf("0x%" PRIx64, ~v);
            char text[TRACE_LINE_MAX], json[TRACE_LINE_MAX];
            cr_assert_gt(trace_event_format(&ev, TRACE_FORMAT_TEXT, text, sizeof(text)), 0);
            cr_assert_gt(trace_event_format(&ev, TRACE_FORMAT_JSONL, json, sizeof(json)), 0);
            char *want_text = g_strdup_printf(" start=%s end=%s\n", start, end);
            char *want_json = g_strdup_printf(",\"start\":\"%s\",\"end\":\"%s\"}\n", start, end);
            cr_assert(g_str_has_suffix(text, want_text), "%s / %s", text, want_text);
            cr_assert(g_str_has_suffix(json, want_json), "%s / %s", json, want_json);
            g_free(start);
            g_free(end);
            g_free(want_text);
            g_free(want_json);
        }
    }
    g_rand_free(rng);
}

Test(trace_jsonl, reader_accepts_any_key_order_whitespace_and_unknown_keys)
{
    const char *line = " { \"domain\" : 2, \"future\": {\"a\": [1, 2.5e3, true, null, \"x\"]},"
                       " \"ts\": 10, \"endpoint\": 5, \"event\": \"endpoint_attached\"} \r\n";
    trace_event ev;
    GError *err = NULL;
    cr_assert_eq(trace_event_parse_json(line, strlen(line), &ev, &err), 0, "%s",
                 err ? err->message : "");
    cr_assert_eq(ev.id, TRACE_EV_endpoint_attached);
    cr_assert_eq(ev.ts_ns, 10);
    cr_assert_eq(ev.u.endpoint_attached.endpoint, 5);
    cr_assert_eq(ev.u.endpoint_attached.domain, 2);

    line = "{\"ts\":0,\"event\":\"fault\",\"endpoint\":1,\"reason\":2,\"flags\":257,"
           "\"address\":\"0XABCdef\",\"n\\u00e9\":\"\\u0041\\n\"}";
    cr_assert_eq(trace_event_parse_json(line, strlen(line), &ev, &err), 0, "%s",
                 err ? err->message : "");
    cr_assert_eq(ev.u.fault.address, 0xabcdef);
}

typedef struct bad_line {
    const char *line;
    const char *message; /* expected substring of the error */
} bad_line;

static const bad_line bad_lines[] = {
    {"", "empty line"},
    {"\n", "empty line"},
    {"[]", "expected '{'"},
    {"{\"ts\":1,\"event\":\"batch_begin\",\"batch\":1", "expected ',' or '}'"},
    {"{\"ts\":1,\"event\":\"batch_begin\",\"batch\":1} x", "text after the event object"},
    {"{\"ts\":1,\"batch\":1}", "no \"event\" key"},
    {"{\"event\":\"batch_begin\",\"batch\":1}", "no \"ts\" key"},
    {"{\"ts\":1,\"event\":\"batch_start\",\"batch\":1}", "unknown event \"batch_start\""},
    {"{\"ts\":1,\"event\":7,\"batch\":1}", "\"event\" must be a string"},
    {"{\"ts\":1,\"event\":\"batch_begin\"}", "missing field \"batch\""},
    {"{\"ts\":1,\"event\":\"batch_begin\",\"batch\":1,\"batch\":2}", "duplicate key \"batch\""},
    {"{\"ts\":1,\"ts\":2,\"event\":\"batch_begin\",\"batch\":1}", "duplicate key \"ts\""},
    {"{\"ts\":-1,\"event\":\"batch_begin\",\"batch\":1}", "\"ts\" must be an integer"},
    {"{\"ts\":1.5,\"event\":\"batch_begin\",\"batch\":1}", "\"ts\" must be an integer"},
    {"{\"ts\":1,\"event\":\"batch_begin\",\"batch\":18446744073709551616}",
     "\"batch\" must be an integer from 0 to 18446744073709551615"},
    {"{\"ts\":1,\"event\":\"batch_begin\",\"batch\":\"1\"}", "\"batch\" must be an integer"},
    {"{\"ts\":1,\"event\":\"endpoint_attached\",\"endpoint\":4294967296,\"domain\":1}",
     "\"endpoint\" must be an integer from 0 to 4294967295"},
    {"{\"ts\":1,\"event\":\"reconnect\",\"device\":0,\"attempt\":1,\"error\":-2147483649,"
     "\"latency_ns\":0}",
     "\"error\" must be an integer from -2147483648 to 2147483647"},
    {"{\"ts\":1,\"event\":\"fault\",\"endpoint\":1,\"reason\":0,\"flags\":0,\"address\":16}",
     "\"address\" must be a string of 0x"},
    {"{\"ts\":1,\"event\":\"fault\",\"endpoint\":1,\"reason\":0,\"flags\":0,\"address\":\"0x\"}",
     "\"address\" must be a string of 0x"},
    {"{\"ts\":1,\"event\":\"fault\",\"endpoint\":1,\"reason\":0,\"flags\":0,"
     "\"address\":\"0x10000000000000000\"}",
     "\"address\" must be a string of 0x"},
    {"{\"ts\":1,\"event\":\"fault\",\"endpoint\":1,\"reason\":0,\"flags\":0,\"address\":\"0xg\"}",
     "\"address\" must be a string of 0x"},
    {"{\"ts\":01,\"event\":\"batch_begin\",\"batch\":1}", "leading zero"},
    {"{\"ts\":1,\"event\":\"batch_begin\",\"batch\":1,\"x\":\"a\\qb\"}", "invalid escape"},
    {"{\"ts\":1,\"event\":\"batch_begin\",\"batch\":1,\"x\":\"\\u12\"}", "four hex digits"},
    {"{\"ts\":1,\"event\":\"batch_begin\",\"batch\":1,\"x\":\"tab\there\"}", "control character"},
    {"{\"ts\":1,\"event\":\"batch_begin\",\"batch\":1,\"x\":tru}", "invalid value"},
    {"{\"ts\":1,\"event\":\"batch_begin\",\"batch\":1,\"x\":[1,]}", "invalid value"},
    {"{\"ts\":1,\"event\":\"batch_begin\",\"batch\":1,\"x\":\"open}", "unterminated string"},
    {"{\"ts\":1,\"event\":\"batch_begin\",\"batch\":1,\"x\":\xff}", "not valid UTF-8"},
    {"{ts:1}", "expected a string key"},
    {"{\"ts\" 1}", "expected ':' after a key"},
};

Test(trace_jsonl, reader_rejects_malformed_lines_with_a_clear_error)
{
    for (size_t i = 0; i < G_N_ELEMENTS(bad_lines); i++) {
        const bad_line *b = &bad_lines[i];
        trace_event ev;
        GError *err = NULL;
        cr_assert_eq(trace_event_parse_json(b->line, strlen(b->line), &ev, &err), -EINVAL,
                     "accepted: %s", b->line);
        cr_assert_not_null(err);
        cr_assert(g_error_matches(err, TRACE_ERROR, TRACE_ERROR_PARSE));
        cr_assert(strstr(err->message, b->message), "for %s: got \"%s\", want \"%s\"", b->line,
                  err->message, b->message);
        cr_assert(g_str_has_prefix(err->message, "trace line, column "));
        g_error_free(err);
    }
}

Test(trace_jsonl, reader_rejects_embedded_nul_and_deep_nesting)
{
    const char with_nul[] = "{\"ts\":1,\"event\":\"batch_begin\",\"batch\":1}\0";
    trace_event ev;
    cr_assert_eq(trace_event_parse_json(with_nul, sizeof(with_nul) - 1, &ev, NULL), -EINVAL);

    GString *deep = g_string_new("{\"ts\":1,\"event\":\"batch_begin\",\"batch\":1,\"x\":");
    for (int i = 0; i < 100; i++)
        g_string_append_c(deep, '[');
    for (int i = 0; i < 100; i++)
        g_string_append_c(deep, ']');
    g_string_append_c(deep, '}');
    GError *err = NULL;
    cr_assert_eq(trace_event_parse_json(deep->str, deep->len, &ev, &err), -EINVAL);
    cr_assert_not_null(strstr(err->message, "nested"));
    g_error_free(err);
    g_string_free(deep, TRUE);
}

Test(trace_jsonl, the_longest_line_of_every_event_fits_trace_line_max)
{
    for (unsigned id = 0; id < TRACE_EVENT_COUNT; id++) {
        trace_event ev = {.id = (trace_event_id)id, .ts_ns = UINT64_MAX};
        unsigned n;
        const trace_field_info *f = trace_event_fields(ev.id, &n);
        for (unsigned i = 0; i < n; i++) {
            /* The widest value of each kind: UINT64_MAX, or INT32_MIN. */
            unsigned char *p = (unsigned char *)&ev.u + f[i].offset;
            if (f[i].kind == TRACE_KIND_I32) {
                int32_t v = INT32_MIN;
                memcpy(p, &v, sizeof(v));
            } else {
                memset(p, 0xff, f[i].size);
            }
        }
        for (int fmt = TRACE_FORMAT_TEXT; fmt <= TRACE_FORMAT_JSONL; fmt++) {
            char line[TRACE_LINE_MAX];
            int len = trace_event_format(&ev, (trace_format)fmt, line, sizeof(line));
            cr_assert_gt(len, 0, "%s does not fit", trace_event_name(ev.id));
            cr_assert_lt(len, TRACE_LINE_MAX);
        }
    }
}

/* A ring slot carrying a run of request_received events is written as
 * the lines of those events, byte for byte, in both formats; a count past
 * what a slot holds stops at what it holds. */
Test(trace_writer, a_run_of_received_requests_is_written_as_its_events_lines)
{
    static const uint8_t types[] = {1, 2, 3, 4, 5, 0, 255, 3, 4, 9, 100};
    static const uint32_t sizes[] = {24, 24, 40, 32, 12, 0, UINT32_MAX, 1, 99999, 100000000, 7};
    _Static_assert(G_N_ELEMENTS(types) == TRACE_RECEIVED_PER_SLOT, "a full slot");
    const uint64_t batches[] = {1, 99, UINT64_MAX};
    const uint64_t times[] = {0, 123456789, UINT64_MAX};
    const unsigned counts[] = {0, 1, 5, TRACE_RECEIVED_PER_SLOT, 200};
    for (unsigned b = 0; b < G_N_ELEMENTS(batches); b++) {
        for (unsigned c = 0; c < G_N_ELEMENTS(counts); c++) {
            trace_received_run run = {.batch = batches[b], .count = (uint8_t)counts[c]};
            memcpy(run.type, types, sizeof(types));
            memcpy(run.size, sizes, sizeof(sizes));
            trace_event slot = {.id = TRACE_RING_RECEIVED_RUN, .ts_ns = times[b]};
            memcpy(&slot.u, &run, sizeof(run));
            unsigned lines =
                counts[c] < TRACE_RECEIVED_PER_SLOT ? counts[c] : TRACE_RECEIVED_PER_SLOT;
            for (int fmt = TRACE_FORMAT_TEXT; fmt <= TRACE_FORMAT_JSONL; fmt++) {
                char got[TRACE_RECEIVED_PER_SLOT * TRACE_LINE_MAX];
                size_t n = trace_received_run_format_at(&slot, times[b], (trace_format)fmt, got);
                GString *want = g_string_new(NULL);
                for (unsigned i = 0; i < lines; i++) {
                    trace_event ev = {.id = TRACE_EV_request_received, .ts_ns = times[b]};
                    ev.u.request_received =
                        (trace_request_received_fields){types[i], sizes[i], batches[b]};
                    char line[TRACE_LINE_MAX];
                    cr_assert_gt(trace_event_format(&ev, (trace_format)fmt, line, sizeof(line)), 0);
                    g_string_append(want, line);
                }
                cr_assert_eq(n, want->len, "batch %u count %u format %d", b, c, fmt);
                cr_assert_arr_eq(got, want->str, n, "batch %u count %u format %d", b, c, fmt);
                g_string_free(want, TRUE);
            }
        }
    }
}

Test(trace_jsonl, a_short_buffer_gets_a_terminated_prefix_and_enospc)
{
    trace_event ev = sample_event(TRACE_EV_request_done);
    char full[TRACE_LINE_MAX], small[16];
    int n = trace_event_format(&ev, TRACE_FORMAT_JSONL, full, sizeof(full));
    cr_assert_gt(n, (int)sizeof(small));
    cr_assert_eq(trace_event_format(&ev, TRACE_FORMAT_JSONL, small, sizeof(small)), -ENOSPC);
    cr_assert_eq(strlen(small), sizeof(small) - 1);
    cr_assert_eq(strncmp(small, full, sizeof(small) - 1), 0);
    cr_assert_eq(trace_event_format(&ev, (trace_format)9, full, sizeof(full)), -EINVAL);
    ev.id = TRACE_EVENT_COUNT;
    cr_assert_eq(trace_event_format(&ev, TRACE_FORMAT_JSONL, full, sizeof(full)), -EINVAL);
}

/* Lines from several threads never interleave. */
static gpointer fire_many(gpointer data)
{
    uint32_t t = GPOINTER_TO_UINT(data);
    for (uint32_t i = 0; i < 2000; i++)
        TRACE(endpoint_attached, t, i);
    return NULL;
}

Test(trace_jsonl, concurrent_events_give_whole_lines)
{
    char *path = temp_path("threads.jsonl");
    cr_assert_eq(trace_open_path(TRACE_FORMAT_JSONL, path, NULL), 0);
    GThread *threads[4];
    for (unsigned t = 0; t < G_N_ELEMENTS(threads); t++)
        threads[t] = g_thread_new("fire", fire_many, GUINT_TO_POINTER(t));
    for (unsigned t = 0; t < G_N_ELEMENTS(threads); t++)
        g_thread_join(threads[t]);
    cr_assert_eq(trace_flush(), 0);
    trace_stop();

    char *text = read_file(path);
    char **lines = g_strsplit(text, "\n", -1);
    unsigned per_thread[4] = {0};
    uint64_t last_ts = 0;
    cr_assert_eq(g_strv_length(lines), 4 * 2000 + 1);
    for (unsigned i = 0; i < 4 * 2000; i++) {
        trace_event ev;
        cr_assert_eq(trace_event_parse_json(lines[i], strlen(lines[i]), &ev, NULL), 0);
        cr_assert_lt(ev.u.endpoint_attached.endpoint, 4);
        /* Each thread's events arrive in its own order. */
        cr_assert_eq(ev.u.endpoint_attached.domain, per_thread[ev.u.endpoint_attached.endpoint]++);
        cr_assert_geq(ev.ts_ns, last_ts);
        last_ts = ev.ts_ns;
    }
    g_strfreev(lines);
    g_free(text);
    remove_temp(path);
}

Test(trace_jsonl, a_path_output_has_every_line_once_flushed)
{
    char *path = temp_path("flush.jsonl");
    cr_assert_eq(trace_open_path(TRACE_FORMAT_JSONL, path, NULL), 0);
    /* Several writer buffers' worth, so buffers are handed over while
     * events keep coming. */
    for (uint32_t i = 0; i < 20000; i++)
        TRACE(domain_destroyed, i, (uint64_t)i * 3);
    cr_assert_eq(trace_flush(), 0);

    char *text = read_file(path);
    char **lines = g_strsplit(text, "\n", -1);
    cr_assert_eq(g_strv_length(lines), 20000 + 1);
    for (uint32_t i = 0; i < 20000; i++) {
        trace_event ev;
        cr_assert_eq(trace_event_parse_json(lines[i], strlen(lines[i]), &ev, NULL), 0);
        cr_assert_eq(ev.u.domain_destroyed.domain, i);
        cr_assert_eq(ev.u.domain_destroyed.mappings, (uint64_t)i * 3);
    }
    g_strfreev(lines);
    g_free(text);
    trace_stop();
    remove_temp(path);
}

Test(trace_jsonl, reopening_a_path_output_closes_the_old_file_complete)
{
    char *a = temp_path("a.jsonl"), *b = temp_path("b.jsonl");
    cr_assert_eq(trace_open_path(TRACE_FORMAT_JSONL, a, NULL), 0);
    TRACE(batch_begin, 1);
    cr_assert_eq(trace_open_path(TRACE_FORMAT_JSONL, b, NULL), 0);
    TRACE(batch_begin, 2);
    trace_stop();
    char *ta = read_file(a), *tb = read_file(b);
    cr_assert(g_str_has_suffix(ta, ",\"event\":\"batch_begin\",\"batch\":1}\n"), "%s", ta);
    cr_assert(g_str_has_suffix(tb, ",\"event\":\"batch_begin\",\"batch\":2}\n"), "%s", tb);
    cr_assert_eq(strchr(ta, '\n'), ta + strlen(ta) - 1);
    g_free(ta);
    g_free(tb);
    remove_temp(a);
    remove_temp(b);
}

/* ------------------------------------------------------------------ */
/* Configuration                                                       */
/* ------------------------------------------------------------------ */

Test(trace_configure, a_spec_enables_jsonl_and_text_files)
{
    char *jpath = temp_path("a.jsonl");
    char *tpath = temp_path("a.txt");
    char *spec = g_strdup_printf("usdt,jsonl=%s,text=%s", jpath, tpath);
    GError *err = NULL;
    cr_assert_eq(trace_configure(spec, &err), 0, "%s", err ? err->message : "");
    cr_assert(trace_enabled());
    TRACE(batch_begin, 77);
    trace_stop();
    cr_assert_not(trace_enabled());

    char *j = read_file(jpath), *t = read_file(tpath);
    trace_event ev;
    cr_assert_eq(trace_event_parse_json(j, strlen(j), &ev, NULL), 0, "%s", j);
    cr_assert_eq(ev.id, TRACE_EV_batch_begin);
    cr_assert_eq(ev.u.batch_begin.batch, 77);
    cr_assert(g_str_has_suffix(t, " batch_begin batch=77\n"), "%s", t);
    g_free(j);
    g_free(t);
    g_free(spec);
    remove_temp(jpath);
    remove_temp(tpath);
}

Test(trace_configure, an_unknown_item_changes_nothing)
{
    static const char *const bad[] = {"usdt,jsn", "", "text=", "usdt=1", "off,", "texts"};
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        GError *err = NULL;
        cr_assert_eq(trace_configure(bad[i], &err), -EINVAL, "accepted \"%s\"", bad[i]);
        cr_assert(g_error_matches(err, TRACE_ERROR, TRACE_ERROR_SPEC));
        g_error_free(err);
        cr_assert_not(trace_enabled());
    }
}

Test(trace_configure, off_turns_everything_off)
{
    cr_assert_eq(trace_configure("usdt", NULL), 0);
    cr_assert(trace_enabled());
    cr_assert_eq(trace_configure("off", NULL), 0);
    cr_assert_not(trace_enabled());
}

Test(trace_configure, an_unopenable_path_reports_a_file_error)
{
    GError *err = NULL;
    cr_assert_eq(trace_open_path(TRACE_FORMAT_JSONL, "/nonexistent-dir/x.jsonl", &err), -ENOENT);
    cr_assert(g_error_matches(err, G_FILE_ERROR, G_FILE_ERROR_NOENT));
    cr_assert_not_null(strstr(err->message, "/nonexistent-dir/x.jsonl"));
    cr_assert_not(trace_enabled());

    g_clear_error(&err);
    cr_assert_eq(trace_configure("jsonl=/nonexistent-dir/y", &err), -ENOENT);
    g_clear_error(&err);
    cr_assert_eq(trace_set_stream((trace_format)5, stderr), -EINVAL);
    cr_assert_eq(trace_open_path((trace_format)5, "/tmp/x", NULL), -EINVAL);
}

Test(trace_configure, replacing_a_stream_flushes_the_old_one)
{
    char *path = temp_path("r.txt");
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    cr_assert_eq(trace_set_stream(TRACE_FORMAT_TEXT, f), 0);
    TRACE(batch_begin, 1);
    cr_assert_eq(trace_set_stream(TRACE_FORMAT_TEXT, NULL), 0);
    cr_assert_not(trace_enabled());
    /* The line is in the file before f is closed: the switch flushed it. */
    char *text = read_file(path);
    cr_assert(g_str_has_suffix(text, " batch_begin batch=1\n"), "%s", text);
    g_free(text);
    fclose(f);
    remove_temp(path);
}

/* ------------------------------------------------------------------ */
/* USDT probes                                                         */
/* ------------------------------------------------------------------ */

/* Checks a probe's "Arguments: 4@%edi -4@%esi 8@%rdx" against its fields. */
static void check_probe_arguments(trace_event_id id, const char *args)
{
    unsigned n;
    const trace_field_info *f = trace_event_fields(id, &n);
    char **words = g_strsplit_set(args, " ", -1);
    unsigned count = 0;
    for (char **w = words; *w; w++) {
        if (**w == '\0')
            continue;
        cr_assert_lt(count, n, "%s: more probe arguments than fields", trace_event_name(id));
        long size = strtol(*w, NULL, 10);
        bool is_signed = size < 0;
        cr_assert_eq(labs(size), (long)f[count].size, "%s.%s: probe argument %s",
                     trace_event_name(id), f[count].name, *w);
        cr_assert_eq(is_signed, f[count].kind == TRACE_KIND_I32, "%s.%s: probe argument %s",
                     trace_event_name(id), f[count].name, *w);
        count++;
    }
    cr_assert_eq(count, n, "%s: %u probe arguments for %u fields", trace_event_name(id), count, n);
    g_strfreev(words);
}

Test(trace_usdt, the_shared_library_has_one_probe_per_event_with_its_fields)
{
    if (!trace_usdt_available())
        cr_skip_test("built without sys/sdt.h");
    char *cmd = g_strdup_printf("readelf -n --wide '%s'", TRACE_SHARED_LIB);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    unsigned counts[TRACE_EVENT_COUNT] = {0};
    char line[1024];
    bool viommu = false;
    int current = -1;
    unsigned probes = 0;
    while (fgets(line, sizeof(line), p)) {
        const char *s;
        if ((s = strstr(line, "Provider: "))) {
            viommu = strcmp(g_strstrip((char *)s + 10), "viommu") == 0;
            current = -1;
        } else if (viommu && (s = strstr(line, "Name: "))) {
            char *name = g_strstrip((char *)s + 6);
            trace_event_id id;
            cr_assert_eq(trace_event_lookup(name, strlen(name), &id), 0, "stray probe %s", name);
            counts[id]++;
            probes++;
            current = (int)id;
        } else if (viommu && current >= 0 && (s = strstr(line, "Semaphore: "))) {
            /* Tracers attach to a running process through the semaphore. */
            cr_assert_neq(g_ascii_strtoull(s + 11, NULL, 16), 0, "probe viommu:%s has no semaphore",
                          trace_event_name(current));
        } else if (viommu && current >= 0 && (s = strstr(line, "Arguments: "))) {
            check_probe_arguments((trace_event_id)current, g_strstrip((char *)s + 11));
            current = -1;
        }
    }
    cr_assert_eq(pclose(p), 0, "%s failed", cmd);
    for (unsigned id = 0; id < TRACE_EVENT_COUNT; id++)
        cr_assert_eq(counts[id], 1, "probe viommu:%s appears %u times",
                     trace_event_name((trace_event_id)id), counts[id]);
    cr_assert_eq(probes, TRACE_EVENT_COUNT);
    g_free(cmd);
}

/* ------------------------------------------------------------------ */
/* The writer thread: binary hand-off, ordering, flush, errors, stop   */
/* ------------------------------------------------------------------ */

#define PRODUCERS 4
#define PER_PRODUCER 30000 /* with 4 threads, several times the writer's ring */

typedef struct producer {
    uint32_t id;
    uint32_t count;
} producer;

/* Fires endpoint_attached(id, i) for every i, every third one with
 * TRACE_AT and a time read before the others. */
static gpointer produce(gpointer data)
{
    const producer *p = data;
    for (uint32_t i = 0; i < p->count; i++) {
        if (i % 3 == 0) {
            uint64_t t = trace_now_ns();
            TRACE_AT(endpoint_attached, t, p->id, i);
        } else {
            TRACE(endpoint_attached, p->id, i);
        }
    }
    return NULL;
}

/* Splits @text into lines in place (no copy per line, fast under ASan). */
static GPtrArray *split_lines(char *text)
{
    GPtrArray *lines = g_ptr_array_new();
    char *p = text;
    while (*p) {
        char *nl = strchr(p, '\n');
        cr_assert_not_null(nl, "the file ends with a whole line");
        *nl = '\0';
        g_ptr_array_add(lines, p);
        p = nl + 1;
    }
    return lines;
}

Test(trace_writer, events_of_several_threads_are_each_written_once_in_timestamp_order)
{
    char *path = temp_path("producers.jsonl");
    cr_assert_eq(trace_open_path(TRACE_FORMAT_JSONL, path, NULL), 0);
    producer p[PRODUCERS];
    GThread *threads[PRODUCERS];
    for (uint32_t t = 0; t < PRODUCERS; t++) {
        p[t] = (producer){t, PER_PRODUCER};
        threads[t] = g_thread_new("produce", produce, &p[t]);
    }
    for (unsigned t = 0; t < PRODUCERS; t++)
        g_thread_join(threads[t]);
    cr_assert_eq(trace_flush(), 0);
    trace_stop();

    char *text = read_file(path);
    GPtrArray *lines = split_lines(text);
    cr_assert_eq(lines->len, PRODUCERS * PER_PRODUCER);
    uint32_t next[PRODUCERS] = {0};
    uint64_t last_ts = 0;
    for (unsigned i = 0; i < lines->len; i++) {
        const char *line = g_ptr_array_index(lines, i);
        trace_event ev;
        cr_assert_eq(trace_event_parse_json(line, strlen(line), &ev, NULL), 0, "%s", line);
        cr_assert_eq(ev.id, TRACE_EV_endpoint_attached);
        uint32_t t = ev.u.endpoint_attached.endpoint;
        cr_assert_lt(t, PRODUCERS);
        /* Each thread's events in its order: every one present, once. */
        cr_assert_eq(ev.u.endpoint_attached.domain, next[t], "%s", line);
        next[t]++;
        cr_assert_geq(ev.ts_ns, last_ts, "line %u: %s", i + 1, line);
        last_ts = ev.ts_ns;
    }
    for (unsigned t = 0; t < PRODUCERS; t++)
        cr_assert_eq(next[t], PER_PRODUCER);
    g_ptr_array_free(lines, TRUE);
    g_free(text);
    remove_temp(path);
}

Test(trace_writer, a_given_time_is_the_event_timestamp_and_never_goes_back)
{
    char *path = temp_path("at.jsonl");
    cr_assert_eq(trace_open_path(TRACE_FORMAT_JSONL, path, NULL), 0);
    uint64_t t = trace_now_ns();
    TRACE_AT(batch_begin, t, 1);
    TRACE_AT(batch_begin, t + 12345, 2);
    TRACE_AT(batch_begin, t, 3); /* older than the event before it */
    cr_assert_eq(trace_flush(), 0);
    trace_stop();

    char *text = read_file(path);
    GPtrArray *lines = split_lines(text);
    cr_assert_eq(lines->len, 3);
    trace_event ev[3];
    for (unsigned i = 0; i < 3; i++) {
        const char *line = g_ptr_array_index(lines, i);
        cr_assert_eq(trace_event_parse_json(line, strlen(line), &ev[i], NULL), 0);
        cr_assert_eq(ev[i].u.batch_begin.batch, i + 1);
    }
    cr_assert_eq(ev[1].ts_ns - ev[0].ts_ns, 12345);
    cr_assert_eq(ev[2].ts_ns, ev[1].ts_ns, "an older time is raised to the latest timestamp");
    g_ptr_array_free(lines, TRUE);
    g_free(text);
    remove_temp(path);
}

Test(trace_writer, flush_returns_once_every_line_fired_before_it_is_in_the_file)
{
    char *path = temp_path("flush-threads.jsonl");
    cr_assert_eq(trace_open_path(TRACE_FORMAT_JSONL, path, NULL), 0);
    producer p = {7, 20000};
    GThread *th = g_thread_new("produce", produce, &p);
    g_thread_join(th);
    TRACE(batch_begin, 99);
    /* The file is read while the output stays open: no stop, no close. */
    cr_assert_eq(trace_flush(), 0);
    char *text = read_file(path);
    GPtrArray *lines = split_lines(text);
    cr_assert_eq(lines->len, 20000 + 1);
    cr_assert(g_str_has_suffix(g_ptr_array_index(lines, 20000), "\"batch\":99}"));
    g_ptr_array_free(lines, TRUE);
    g_free(text);
    trace_stop();
    remove_temp(path);
}

Test(trace_writer, write_errors_are_reported_by_flush_and_nothing_blocks)
{
    /* /dev/full fails every write with ENOSPC. */
    cr_assert_eq(trace_open_path(TRACE_FORMAT_JSONL, "/dev/full", NULL), 0);
    for (uint32_t i = 0; i < 3 * 8192; i++) /* more than the ring holds */
        TRACE(domain_destroyed, i, i);
    cr_assert_eq(trace_flush(), -ENOSPC);
    /* Reported once: the next flush, with nothing new, is clean. */
    cr_assert_eq(trace_flush(), 0);
    TRACE(domain_destroyed, 1, 1);
    cr_assert_eq(trace_flush(), -ENOSPC);
    trace_stop();
}

typedef struct stopper_ctx {
    producer p;
    int stop;
} stopper_ctx;

/* Fires until told to stop, whatever the outputs are doing. */
static gpointer produce_until_stopped(gpointer data)
{
    stopper_ctx *c = data;
    uint32_t i = 0;
    while (!__atomic_load_n(&c->stop, __ATOMIC_RELAXED))
        TRACE(endpoint_detached, c->p.id, i++);
    return NULL;
}

Test(trace_writer, stopping_and_reopening_while_threads_fire_neither_deadlocks_nor_loses_lines)
{
    char *a = temp_path("race-a.jsonl"), *b = temp_path("race-b.txt");
    stopper_ctx c[3];
    GThread *threads[3];
    cr_assert_eq(trace_open_path(TRACE_FORMAT_JSONL, a, NULL), 0);
    for (uint32_t t = 0; t < 3; t++) {
        c[t] = (stopper_ctx){{t, 0}, 0};
        threads[t] = g_thread_new("fire", produce_until_stopped, &c[t]);
    }
    for (int round = 0; round < 20; round++) {
        /* Replace, stop, and reopen both formats under the producers. */
        cr_assert_eq(trace_open_path(TRACE_FORMAT_JSONL, round % 2 ? a : b, NULL), 0);
        cr_assert_eq(trace_open_path(TRACE_FORMAT_TEXT, round % 2 ? b : a, NULL), 0);
        g_usleep(2000);
        trace_stop();
        cr_assert_eq(trace_open_path(TRACE_FORMAT_JSONL, a, NULL), 0);
        g_usleep(1000);
    }
    for (unsigned t = 0; t < 3; t++)
        __atomic_store_n(&c[t].stop, 1, __ATOMIC_RELAXED);
    for (unsigned t = 0; t < 3; t++)
        g_thread_join(threads[t]);
    cr_assert_eq(trace_flush(), 0);
    trace_stop();

    /* The last file holds whole lines only, each a valid event. */
    char *text = read_file(a);
    GPtrArray *lines = split_lines(text);
    for (unsigned i = 0; i < lines->len; i++) {
        const char *line = g_ptr_array_index(lines, i);
        trace_event ev;
        cr_assert_eq(trace_event_parse_json(line, strlen(line), &ev, NULL), 0, "%s", line);
        cr_assert_eq(ev.id, TRACE_EV_endpoint_detached);
    }
    g_ptr_array_free(lines, TRUE);
    g_free(text);
    remove_temp(a);
    remove_temp(b);
}

Test(trace_writer, flush_returns_while_another_thread_keeps_firing)
{
    char *path = temp_path("busy.jsonl");
    cr_assert_eq(trace_open_path(TRACE_FORMAT_JSONL, path, NULL), 0);
    stopper_ctx c = {{5, 0}, 0};
    GThread *th = g_thread_new("fire", produce_until_stopped, &c);
    for (uint32_t i = 0; i < 5; i++) {
        TRACE(batch_begin, 1000 + i);
        cr_assert_eq(trace_flush(), 0);
        char *text = read_file(path);
        char *marker = g_strdup_printf(",\"event\":\"batch_begin\",\"batch\":%u}\n", 1000 + i);
        cr_assert_not_null(strstr(text, marker), "flush %u returned before its event was written",
                           i);
        g_free(marker);
        g_free(text);
    }
    __atomic_store_n(&c.stop, 1, __ATOMIC_RELAXED);
    g_thread_join(th);
    trace_stop();
    remove_temp(path);
}

/* Resident bytes of the process. */
static size_t resident(void)
{
    unsigned long size = 0, pages = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    cr_assert_not_null(f);
    cr_assert_eq(fscanf(f, "%lu %lu", &size, &pages), 2);
    fclose(f);
    return pages * (size_t)sysconf(_SC_PAGESIZE);
}

static gpointer fire_a_few(gpointer data)
{
    uint32_t id = GPOINTER_TO_UINT(data);
    for (uint32_t i = 0; i < 3; i++)
        TRACE(endpoint_attached, id, i);
    return NULL;
}

#define FEW_THREADS 24

Test(trace_writer, a_thread_firing_a_few_events_costs_a_few_pages_of_its_ring)
{
    char *path = temp_path("few.jsonl");
    cr_assert_eq(trace_open_path(TRACE_FORMAT_JSONL, path, NULL), 0);
    size_t before = resident();
    /* All alive at once, so none reuses an exited thread's ring. */
    GThread *threads[FEW_THREADS];
    for (unsigned t = 0; t < FEW_THREADS; t++)
        threads[t] = g_thread_new("few", fire_a_few, GUINT_TO_POINTER(t));
    for (unsigned t = 0; t < FEW_THREADS; t++)
        g_thread_join(threads[t]);
    size_t grown = resident() - before;
    cr_assert_eq(trace_flush(), 0);
    trace_stop();
    /* A ring is 1.25 MiB; what a thread touches of it is a page or two
     * (thread stacks and the sanitizers' own memory count here too). */
    cr_assert_lt(grown, FEW_THREADS * (1280u << 10) / 4, "%zu bytes for %u threads", grown,
                 FEW_THREADS);
    char *text = read_file(path);
    GPtrArray *lines = split_lines(text);
    cr_assert_eq(lines->len, FEW_THREADS * 3);
    g_ptr_array_free(lines, TRUE);
    g_free(text);
    remove_temp(path);
}

/* CLOCK_MONOTONIC in nanoseconds, as the test reads it itself. */
static uint64_t monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

Test(trace_clock, the_trace_clock_reads_clock_monotonic)
{
    /* Over several recalibration intervals: between a CLOCK_MONOTONIC
     * reading before and one after, within the calibration's error (a
     * few microseconds; 100 us allowed). */
    const uint64_t slack = 100000;
    for (int i = 0; i < 40; i++) {
        uint64_t before = monotonic();
        uint64_t t = trace_now_ns();
        uint64_t after = monotonic();
        cr_assert_geq(t + slack, before, "reading %d: %" PRIu64 " before %" PRIu64, i, t, before);
        cr_assert_leq(t, after + slack, "reading %d: %" PRIu64 " after %" PRIu64, i, t, after);
        g_usleep(1000 + (gulong)i * 200);
    }
}

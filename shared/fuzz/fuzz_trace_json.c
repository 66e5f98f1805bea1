/* SPDX-License-Identifier: MIT */
/*
 * Fuzzes the JSON Lines reader. Every line it accepts must format back
 * to a line it reads as the same event, and format as text; every line
 * it refuses must come with a TRACE_ERROR_PARSE message.
 */
#include <glib.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shared.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    trace_event ev, again;
    GError *err = NULL;
    char line[TRACE_LINE_MAX];

    if (trace_event_parse_json((const char *)data, size, &ev, &err) < 0) {
        if (!err || !g_error_matches(err, TRACE_ERROR, TRACE_ERROR_PARSE) || !err->message[0])
            abort();
        g_error_free(err);
        return 0;
    }
    if (err)
        abort();
    int n = trace_event_format(&ev, TRACE_FORMAT_JSONL, line, sizeof(line));
    if (n <= 0 || (size_t)n >= sizeof(line) || line[n - 1] != '\n')
        abort();
    if (trace_event_parse_json(line, (size_t)n, &again, NULL) < 0)
        abort();
    if (again.id != ev.id || again.ts_ns != ev.ts_ns)
        abort();
    unsigned count;
    trace_event_fields(ev.id, &count);
    for (unsigned i = 0; i < count; i++) {
        uint64_t a, b;
        if (trace_event_field_value(&ev, i, &a) < 0 || trace_event_field_value(&again, i, &b) < 0 ||
            a != b)
            abort();
    }
    if (trace_event_format(&ev, TRACE_FORMAT_TEXT, line, sizeof(line)) <= 0)
        abort();
    return 0;
}

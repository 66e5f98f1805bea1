/* SPDX-License-Identifier: MIT */
/*
 * Reading JSON Lines traces and writing them as QEMU log lines that the
 * QEMU log reader parses back to the same requests.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <glib/gstdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qemu_log.h"
#include "trace_convert.h"
#include "viommu.h"

static char *write_temp(const char *text)
{
    char *path = NULL;
    int fd = g_file_open_tmp("trace-convert-XXXXXX", &path, NULL);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

/* @path compressed with the xz command, as @path.xz (the caller frees it). */
static char *xz_file(const char *path)
{
    char *out = g_strdup_printf("%s.xz", path);
    char *cmd = g_strdup_printf("xz -kc '%s' > '%s'", path, out);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    g_free(cmd);
    return out;
}

static int count_event(void *opaque, const trace_event *ev)
{
    GArray *seen = opaque;
    g_array_append_val(seen, *ev);
    return 0;
}

static char *to_qemu(const char *jsonl, int *ret, GError **error)
{
    char *in = write_temp(jsonl);
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    *ret = trace_convert_to_qemu(in, out, error);
    fclose(out);
    g_unlink(in);
    g_free(in);
    return buf;
}

Test(trace_convert, detects_json_lines_and_qemu_logs)
{
    trace_file_format f;
    char *a = write_temp("\n  {\"ts\":0,\"event\":\"batch_begin\",\"batch\":1}\n");
    char *b = write_temp("12@1.5:virtio_iommu_attach domain=1 endpoint=2\n");
    cr_assert_eq(trace_file_detect(a, &f, NULL), 0);
    cr_assert_eq(f, TRACE_FILE_JSONL);
    cr_assert_eq(trace_file_detect(b, &f, NULL), 0);
    cr_assert_eq(f, TRACE_FILE_QEMU);
    GError *err = NULL;
    cr_assert_eq(trace_file_detect("/nonexistent/trace", &f, &err), -ENOENT);
    cr_assert_not_null(err);
    g_clear_error(&err);
    g_unlink(a);
    g_unlink(b);
    g_free(a);
    g_free(b);
}

Test(trace_convert, requests_become_the_lines_qemu_prints_and_parse_back)
{
    const char *jsonl =
        "{\"ts\":1000,\"event\":\"request_done\",\"type\":1,\"domain\":4294967295,\"endpoint\":8,"
        "\"virt_start\":\"0x0\",\"virt_end\":\"0x0\",\"phys_start\":\"0x0\",\"flags\":0,"
        "\"status\":0,\"latency_ns\":5,\"batch\":1}\n"
        "{\"ts\":2000,\"event\":\"probe_property\",\"endpoint\":8,\"subtype\":1,"
        "\"start\":\"0xfee00000\",\"end\":\"0xfeefffff\"}\n"
        "{\"ts\":2500,\"event\":\"request_done\",\"type\":5,\"domain\":0,\"endpoint\":8,"
        "\"virt_start\":\"0x0\",\"virt_end\":\"0x0\",\"phys_start\":\"0x0\",\"flags\":0,"
        "\"status\":0,\"latency_ns\":5,\"batch\":2}\n"
        "{\"ts\":3000,\"event\":\"request_done\",\"type\":3,\"domain\":7,\"endpoint\":0,"
        "\"virt_start\":\"0xffffffffffff0000\",\"virt_end\":\"0xffffffffffffffff\","
        "\"phys_start\":\"0x80000\",\"flags\":3,\"status\":0,\"latency_ns\":5,\"batch\":2}\n";
    int ret;
    char *out = to_qemu(jsonl, &ret, NULL);
    cr_assert_eq(ret, 0);
    cr_assert_not_null(strstr(out, "virtio_iommu_attach domain=-1 endpoint=8\n"), "%s", out);
    cr_assert_not_null(strstr(out,
                              "virtio_iommu_fill_resv_property dev= 8, type=1 start=0xfee00000 "
                              "end=0xfeefffff\n"));
    cr_assert_not_null(strstr(out, "virtio_iommu_map domain=7 virt_start=0xffffffffffff0000 "
                                   "virt_end=0xffffffffffffffff phys_start=0x80000 flags=3\n"));

    /* Every line the QEMU log reader knows parses, with the same values. */
    char **lines = g_strsplit(out, "\n", -1);
    unsigned requests = 0, notifies = 0;
    for (unsigned i = 0; lines[i] && *lines[i]; i++) {
        qemu_log_event ev;
        cr_assert_eq(qemu_log_parse_line(lines[i], strlen(lines[i]), i + 1, &ev, NULL), 1, "%s",
                     lines[i]);
        cr_assert(ev.has_prefix);
        if (ev.type == QEMU_LOG_ATTACH) {
            cr_assert_eq(ev.u.attach.domain, UINT32_MAX);
            requests++;
        } else if (ev.type == QEMU_LOG_MAP) {
            cr_assert_eq(ev.u.map.virt_start, 0xffffffffffff0000ull);
            cr_assert_eq(ev.u.map.flags, 3);
            cr_assert_eq(ev.time_us, 3);
            requests++;
        } else if (ev.type == QEMU_LOG_RESV_PROPERTY) {
            cr_assert_eq(ev.u.resv.end, 0xfeefffffull);
            requests++;
        } else if (ev.type == QEMU_LOG_QUEUE_NOTIFY) {
            notifies++;
        }
    }
    cr_assert_eq(requests, 3);
    cr_assert_eq(notifies, 2, "one notification per batch");
    g_strfreev(lines);
    free(out);
}

Test(trace_convert, a_malformed_line_is_reported_with_its_number)
{
    int ret;
    GError *err = NULL;
    char *out =
        to_qemu("{\"ts\":0,\"event\":\"batch_begin\",\"batch\":1}\n\n{\"ts\":\n", &ret, &err);
    cr_assert_eq(ret, -EINVAL);
    cr_assert_not_null(err);
    cr_assert_not_null(strstr(err->message, "line 3"), "%s", err->message);
    g_clear_error(&err);
    free(out);
}

Test(trace_convert, xz_compressed_json_lines_are_detected_and_read_like_the_plain_file)
{
    char text[64 * 1024] = "";
    /* Blank lines first, then more than one xz block of events. */
    strcat(text, "\n  \n");
    for (unsigned i = 0; i < 400; i++) {
        char line[128];
        snprintf(line, sizeof(line), "{\"ts\":%u,\"event\":\"batch_begin\",\"batch\":%u}\n", i * 10,
                 i + 1);
        strcat(text, line);
    }
    char *plain = write_temp(text);
    char *xz = xz_file(plain);

    trace_file_format f = TRACE_FILE_QEMU;
    cr_assert_eq(trace_file_detect(xz, &f, NULL), 0);
    cr_assert_eq(f, TRACE_FILE_JSONL);

    GArray *seen = g_array_new(FALSE, FALSE, sizeof(trace_event));
    cr_assert_eq(trace_jsonl_read(xz, count_event, seen, NULL), 0);
    cr_assert_eq(seen->len, 400);
    for (unsigned i = 0; i < seen->len; i++) {
        const trace_event *ev = &g_array_index(seen, trace_event, i);
        cr_assert_eq(ev->id, TRACE_EV_batch_begin);
        cr_assert_eq(ev->ts_ns, (uint64_t)i * 10);
        cr_assert_eq(ev->u.batch_begin.batch, i + 1);
    }
    g_array_free(seen, TRUE);
    g_unlink(plain);
    g_unlink(xz);
    g_free(plain);
    g_free(xz);
}

Test(trace_convert, an_xz_compressed_qemu_log_is_still_a_qemu_log)
{
    trace_file_format f = TRACE_FILE_JSONL;
    cr_assert_eq(trace_file_detect(TEST_DATA_DIR "/strict.trace.log.xz", &f, NULL), 0);
    cr_assert_eq(f, TRACE_FILE_QEMU);
}

Test(trace_convert, a_malformed_line_of_an_xz_file_is_reported_with_its_number)
{
    char *plain = write_temp("{\"ts\":0,\"event\":\"batch_begin\",\"batch\":1}\n"
                             "{\"ts\":1,\"event\":\"batch_begin\"}\n");
    char *xz = xz_file(plain);
    GArray *seen = g_array_new(FALSE, FALSE, sizeof(trace_event));
    GError *err = NULL;
    cr_assert_eq(trace_jsonl_read(xz, count_event, seen, &err), -EINVAL);
    cr_assert_not_null(err);
    cr_assert_not_null(strstr(err->message, "line 2"), "%s", err->message);
    cr_assert_eq(seen->len, 1);
    g_clear_error(&err);
    g_array_free(seen, TRUE);
    g_unlink(plain);
    g_unlink(xz);
    g_free(plain);
    g_free(xz);
}

Test(trace_convert, a_truncated_xz_file_is_a_read_error)
{
    char text[16 * 1024] = "";
    for (unsigned i = 0; i < 200; i++) {
        char line[128];
        snprintf(line, sizeof(line),
                 "{\"ts\":%u,\"event\":\"batch_end\",\"batch\":%u,"
                 "\"requests\":1,\"latency_ns\":%u}\n",
                 i, i, i * 7);
        strcat(text, line);
    }
    char *plain = write_temp(text);
    char *xz = xz_file(plain);
    gchar *data = NULL;
    gsize len = 0;
    cr_assert(g_file_get_contents(xz, &data, &len, NULL));
    cr_assert(g_file_set_contents(xz, data, (gssize)(len - 12), NULL));
    GArray *seen = g_array_new(FALSE, FALSE, sizeof(trace_event));
    GError *err = NULL;
    cr_assert_eq(trace_jsonl_read(xz, count_event, seen, &err), -EIO);
    cr_assert_not_null(err);
    g_clear_error(&err);
    g_array_free(seen, TRUE);
    g_free(data);
    g_unlink(plain);
    g_unlink(xz);
    g_free(plain);
    g_free(xz);
}

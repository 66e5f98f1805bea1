/* SPDX-License-Identifier: MIT */
/* Tests of the QEMU trace-log parser and reader. */
#include "qemu_log.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <lzma.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#ifndef TEST_DATA_DIR
#error "TEST_DATA_DIR must name the directory holding the traces"
#endif

static int parse(const char *line, qemu_log_event *ev, GError **error)
{
    return qemu_log_parse_line(line, strlen(line), 7, ev, error);
}

/* Parses a line expected to be malformed; returns the message. */
static char *parse_error(const char *line)
{
    qemu_log_event ev;
    GError *error = NULL;
    char *msg;

    cr_assert_eq(parse(line, &ev, &error), -EINVAL, "accepted: %s", line);
    cr_assert_not_null(error);
    cr_assert_eq(error->domain, QEMU_LOG_ERROR);
    cr_assert_eq(error->code, QEMU_LOG_ERROR_MALFORMED);
    msg = g_strdup(error->message);
    g_error_free(error);
    return msg;
}

Test(qemu_log_parse, reads_a_map_line_with_its_prefix)
{
    qemu_log_event ev;
    const char *line = "19448@1795441204.887884:virtio_iommu_map domain=0 virt_start=0xffff9000 "
                       "virt_end=0xffff9fff phys_start=0x1fa9000 flags=1";

    cr_assert_eq(parse(line, &ev, NULL), 1);
    cr_assert_eq(ev.type, QEMU_LOG_MAP);
    cr_assert_eq(ev.line, 7);
    cr_assert(ev.has_prefix);
    cr_assert_eq(ev.tid, 19448);
    cr_assert_eq(ev.time_us, 1795441204887884ull);
    cr_assert_eq(ev.u.map.domain, 0);
    cr_assert_eq(ev.u.map.virt_start, 0xffff9000);
    cr_assert_eq(ev.u.map.virt_end, 0xffff9fff);
    cr_assert_eq(ev.u.map.phys_start, 0x1fa9000);
    cr_assert_eq(ev.u.map.flags, 1);
}

Test(qemu_log_parse, accepts_lines_without_a_prefix)
{
    qemu_log_event ev;

    cr_assert_eq(parse("virtio_iommu_unmap domain=3 virt_start=0x1000 virt_end=0x1fff", &ev, NULL),
                 1);
    cr_assert_eq(ev.type, QEMU_LOG_UNMAP);
    cr_assert_not(ev.has_prefix);
    cr_assert_eq(ev.u.unmap.domain, 3);
    cr_assert_eq(ev.u.unmap.virt_start, 0x1000);
    cr_assert_eq(ev.u.unmap.virt_end, 0x1fff);
}

Test(qemu_log_parse, reads_attach_and_detach)
{
    qemu_log_event ev;

    cr_assert_eq(parse("1@2.5:virtio_iommu_attach domain=4 endpoint=0", &ev, NULL), 1);
    cr_assert_eq(ev.type, QEMU_LOG_ATTACH);
    cr_assert_eq(ev.time_us, 2500000);
    cr_assert_eq(ev.u.attach.domain, 4);
    cr_assert_eq(ev.u.attach.endpoint, 0);
    cr_assert_eq(parse("virtio_iommu_detach domain=3 endpoint=48", &ev, NULL), 1);
    cr_assert_eq(ev.type, QEMU_LOG_DETACH);
    cr_assert_eq(ev.u.attach.domain, 3);
    cr_assert_eq(ev.u.attach.endpoint, 48);
}

Test(qemu_log_parse, turns_ids_printed_negative_back_into_u32)
{
    qemu_log_event ev;

    cr_assert_eq(parse("virtio_iommu_attach domain=-1 endpoint=-2147483648", &ev, NULL), 1);
    cr_assert_eq(ev.u.attach.domain, UINT32_MAX);
    cr_assert_eq(ev.u.attach.endpoint, 0x80000000u);
}

Test(qemu_log_parse, reads_the_resv_property_with_its_odd_spacing)
{
    qemu_log_event ev;

    cr_assert_eq(parse("virtio_iommu_fill_resv_property dev= 24, type=1 start=0xfee00000 "
                       "end=0xfeefffff",
                       &ev, NULL),
                 1);
    cr_assert_eq(ev.type, QEMU_LOG_RESV_PROPERTY);
    cr_assert_eq(ev.u.resv.endpoint, 24);
    cr_assert_eq(ev.u.resv.subtype, 1);
    cr_assert_eq(ev.u.resv.start, 0xfee00000);
    cr_assert_eq(ev.u.resv.end, 0xfeefffff);
}

Test(qemu_log_parse, reads_queue_events)
{
    qemu_log_event ev;

    cr_assert_eq(parse("virtio_queue_notify vdev 0x56544fb91890 n 0 vq 0x7fbda6085010", &ev, NULL),
                 1);
    cr_assert_eq(ev.type, QEMU_LOG_QUEUE_NOTIFY);
    cr_assert_eq(ev.u.notify.vdev, 0x56544fb91890);
    cr_assert_eq(ev.u.notify.queue_index, 0);
    cr_assert_eq(ev.u.notify.vq, 0x7fbda6085010);
    cr_assert_eq(
        parse("virtqueue_pop vq 0x7fbda6085010 elem 0x7fbd10021a10 in_num 1 out_num 2", &ev, NULL),
        1);
    cr_assert_eq(ev.type, QEMU_LOG_QUEUE_POP);
    cr_assert_eq(ev.u.pop.vq, 0x7fbda6085010);
    cr_assert_eq(ev.u.pop.elem, 0x7fbd10021a10);
    cr_assert_eq(ev.u.pop.in_num, 1);
    cr_assert_eq(ev.u.pop.out_num, 2);
}

Test(qemu_log_parse, reads_translate_and_its_result)
{
    qemu_log_event ev;

    cr_assert_eq(parse("virtio_iommu_translate mr=virtio-iommu-memory-region-3-24 rid=24 "
                       "addr=0xffdb7000 flag=2",
                       &ev, NULL),
                 1);
    cr_assert_eq(ev.type, QEMU_LOG_TRANSLATE);
    cr_assert_eq(ev.u.translate.endpoint, 24);
    cr_assert_eq(ev.u.translate.addr, 0xffdb7000);
    cr_assert_eq(ev.u.translate.flag, 2);
    cr_assert_eq(parse("virtio_iommu_translate_out 0xffffd002 -> 0x1b0d002 for sid=24", &ev, NULL),
                 1);
    cr_assert_eq(ev.type, QEMU_LOG_TRANSLATE_OUT);
    cr_assert_eq(ev.u.translate_out.addr, 0xffffd002);
    cr_assert_eq(ev.u.translate_out.translated, 0x1b0d002);
    cr_assert_eq(ev.u.translate_out.endpoint, 24);
}

Test(qemu_log_parse, ignores_other_events_and_text)
{
    qemu_log_event ev;

    cr_assert_eq(
        parse("1@1.0:virtio_iommu_unmap_done domain=0 virt_start=0x0 virt_end=0xfff", &ev, NULL),
        0);
    cr_assert_eq(
        parse("1@1.0:virtio_iommu_get_config page_size_mask=0xfffffffffffff000", &ev, NULL), 0);
    cr_assert_eq(parse("", &ev, NULL), 0);
    cr_assert_eq(parse("qemu-system-x86_64: warning: something", &ev, NULL), 0);
    cr_assert_eq(parse("virtio_iommu_mapped domain=0", &ev, NULL), 0);
}

Test(qemu_log_parse, accepts_a_carriage_return_and_trailing_blanks)
{
    qemu_log_event ev;

    cr_assert_eq(parse("virtio_iommu_attach domain=1 endpoint=2  \r", &ev, NULL), 1);
    cr_assert_eq(ev.u.attach.endpoint, 2);
}

Test(qemu_log_parse, names_the_line_of_a_malformed_map)
{
    g_autofree char *msg = parse_error("virtio_iommu_map domain=0 virt_start=0x1000");

    cr_assert(strncmp(msg, "line 7: ", 8) == 0, "%s", msg);
    cr_assert(strstr(msg, "virtio_iommu_map"), "%s", msg);
}

Test(qemu_log_parse, rejects_a_decimal_address)
{
    g_autofree char *msg =
        parse_error("virtio_iommu_unmap domain=0 virt_start=4096 virt_end=0x1fff");

    cr_assert(strstr(msg, "hexadecimal"), "%s", msg);
}

Test(qemu_log_parse, rejects_an_address_wider_than_64_bits)
{
    g_autofree char *msg =
        parse_error("virtio_iommu_unmap domain=0 virt_start=0x10000000000000000 virt_end=0x1");

    cr_assert(strstr(msg, "line 7"), "%s", msg);
}

Test(qemu_log_parse, rejects_an_id_wider_than_32_bits)
{
    g_autofree char *a = parse_error("virtio_iommu_attach domain=4294967296 endpoint=1");
    g_autofree char *b = parse_error("virtio_iommu_attach domain=-2147483649 endpoint=1");

    cr_assert(strstr(a, "32-bit"), "%s", a);
    cr_assert(strstr(b, "32-bit"), "%s", b);
}

Test(qemu_log_parse, rejects_trailing_text)
{
    g_autofree char *msg = parse_error("virtio_iommu_attach domain=1 endpoint=2 extra");

    cr_assert(strstr(msg, "unexpected text"), "%s", msg);
}

Test(qemu_log_parse, rejects_a_wrong_argument_name)
{
    g_autofree char *msg = parse_error("virtio_iommu_attach domain=1 device=2");

    cr_assert(strstr(msg, "unexpected text at column"), "%s", msg);
}

Test(qemu_log_parse, rejects_a_known_event_without_arguments)
{
    g_autofree char *msg = parse_error("virtio_iommu_detach");

    cr_assert(strstr(msg, "missing arguments"), "%s", msg);
}

Test(qemu_log_parse, rejects_an_inverted_range)
{
    g_autofree char *msg =
        parse_error("virtio_iommu_map domain=0 virt_start=0x2000 virt_end=0x1fff "
                    "phys_start=0x0 flags=1");

    cr_assert(strstr(msg, "below"), "%s", msg);
}

Test(qemu_log_parse, rejects_a_malformed_prefix)
{
    g_autofree char *a = parse_error("12@:virtio_iommu_attach domain=1 endpoint=2");
    g_autofree char *b = parse_error("12@3.5virtio_iommu_attach domain=1 endpoint=2");
    g_autofree char *c = parse_error("12@3.1234567:virtio_iommu_attach domain=1 endpoint=2");

    cr_assert(strstr(a, "prefix"), "%s", a);
    cr_assert(strstr(b, "prefix"), "%s", b);
    cr_assert(strstr(c, "prefix"), "%s", c);
}

Test(qemu_log_parse, rejects_a_nul_byte)
{
    qemu_log_event ev;
    static const char line[] = "virtio_iommu_attach domain=1\0 endpoint=2";

    cr_assert_eq(qemu_log_parse_line(line, sizeof(line) - 1, 1, &ev, NULL), -EINVAL);
}

Test(qemu_log_parse, rejects_a_translate_flag_that_is_no_access)
{
    g_autofree char *msg = parse_error("virtio_iommu_translate mr=x rid=1 addr=0x1000 flag=4");

    cr_assert(strstr(msg, "flag"), "%s", msg);
}

/* ------------------------------------------------------------------ */
/* The reader                                                         */
/* ------------------------------------------------------------------ */

static qemu_log_reader *reader_on_bytes(const void *data, size_t len)
{
    int fds[2];
    qemu_log_reader *r = NULL;
    FILE *tmp = tmpfile();

    cr_assert_not_null(tmp);
    cr_assert_eq(fwrite(data, 1, len, tmp), len);
    cr_assert_eq(fflush(tmp), 0);
    fds[0] = dup(fileno(tmp));
    fclose(tmp);
    cr_assert_geq(fds[0], 0);
    cr_assert_eq(lseek(fds[0], 0, SEEK_SET), 0);
    cr_assert_eq(qemu_log_reader_new_fd(fds[0], "test", &r, NULL), 0);
    return r;
}

static const char sample[] = "1@1.0:virtio_iommu_attach domain=1 endpoint=8\n"
                             "some other output\n"
                             "1@1.1:virtio_iommu_map domain=1 virt_start=0x1000 "
                             "virt_end=0x1fff phys_start=0xa000 flags=1\n"
                             "1@1.2:virtio_iommu_map domain=1 virt_start=zzz\n"
                             "virtio_iommu_unmap domain=1 virt_start=0x1000 virt_end=0x1fff";

static void check_sample(qemu_log_reader *r)
{
    qemu_log_event ev;
    GError *error = NULL;

    cr_assert_eq(qemu_log_reader_next(r, &ev, NULL), 1);
    cr_assert_eq(ev.type, QEMU_LOG_ATTACH);
    cr_assert_eq(ev.line, 1);
    cr_assert_eq(qemu_log_reader_next(r, &ev, NULL), 1);
    cr_assert_eq(ev.type, QEMU_LOG_MAP);
    cr_assert_eq(ev.line, 3);
    cr_assert_eq(qemu_log_reader_next(r, &ev, &error), -EINVAL);
    cr_assert(strstr(error->message, "line 4:"), "%s", error->message);
    g_clear_error(&error);
    /* The reader carries on after a malformed line. */
    cr_assert_eq(qemu_log_reader_next(r, &ev, NULL), 1);
    cr_assert_eq(ev.type, QEMU_LOG_UNMAP);
    cr_assert_eq(ev.line, 5);
    cr_assert_eq(qemu_log_reader_next(r, &ev, NULL), 0);
    cr_assert_eq(qemu_log_reader_line(r), 5);
}

Test(qemu_log_reader, reads_plain_text_and_continues_after_an_error)
{
    qemu_log_reader *r = reader_on_bytes(sample, sizeof(sample) - 1);

    check_sample(r);
    qemu_log_reader_free(r);
}

static uint8_t *xz_compress(const void *data, size_t len, size_t *out_len)
{
    size_t cap = len + len / 2 + 4096, pos = 0;
    uint8_t *buf = g_malloc(cap);

    cr_assert_eq(lzma_easy_buffer_encode(1, LZMA_CHECK_CRC64, NULL, data, len, buf, &pos, cap),
                 LZMA_OK);
    *out_len = pos;
    return buf;
}

Test(qemu_log_reader, reads_xz_compressed_text)
{
    size_t len;
    g_autofree uint8_t *xz = xz_compress(sample, sizeof(sample) - 1, &len);
    qemu_log_reader *r = reader_on_bytes(xz, len);

    check_sample(r);
    qemu_log_reader_free(r);
}

Test(qemu_log_reader, reports_a_truncated_xz_stream)
{
    size_t len;
    g_autofree uint8_t *xz = xz_compress(sample, sizeof(sample) - 1, &len);
    qemu_log_reader *r = reader_on_bytes(xz, len - 10);
    qemu_log_event ev;
    GError *error = NULL;
    int ret;

    while ((ret = qemu_log_reader_next(r, &ev, &error)) > 0 || ret == -EINVAL)
        g_clear_error(&error);
    cr_assert_eq(ret, -EIO);
    cr_assert_eq(error->code, QEMU_LOG_ERROR_XZ);
    g_error_free(error);
    cr_assert_eq(qemu_log_reader_next(r, &ev, NULL), 0);
    qemu_log_reader_free(r);
}

Test(qemu_log_reader, reports_corrupt_xz_data)
{
    size_t len;
    g_autofree uint8_t *xz = xz_compress(sample, sizeof(sample) - 1, &len);
    qemu_log_reader *r;
    qemu_log_event ev;
    GError *error = NULL;
    int ret;

    for (size_t i = 12; i < len - 12; i++)
        xz[i] ^= 0x5a;
    r = reader_on_bytes(xz, len);
    while ((ret = qemu_log_reader_next(r, &ev, &error)) > 0 || ret == -EINVAL)
        g_clear_error(&error);
    cr_assert_eq(ret, -EIO);
    g_error_free(error);
    qemu_log_reader_free(r);
}

Test(qemu_log_reader, rejects_an_overlong_line_and_goes_on)
{
    size_t n = QEMU_LOG_MAX_LINE * 3;
    g_autofree char *text = g_malloc(n + 64);
    qemu_log_reader *r;
    qemu_log_event ev;
    GError *error = NULL;

    memset(text, 'a', n);
    strcpy(text + n, "\nvirtio_iommu_attach domain=1 endpoint=2\n");
    r = reader_on_bytes(text, strlen(text));
    cr_assert_eq(qemu_log_reader_next(r, &ev, &error), -EINVAL);
    cr_assert(strstr(error->message, "line 1: the line is longer"), "%s", error->message);
    g_clear_error(&error);
    cr_assert_eq(qemu_log_reader_next(r, &ev, NULL), 1);
    cr_assert_eq(ev.line, 2);
    cr_assert_eq(qemu_log_reader_next(r, &ev, NULL), 0);
    qemu_log_reader_free(r);
}

Test(qemu_log_reader, reports_a_missing_file)
{
    qemu_log_reader *r = NULL;
    GError *error = NULL;

    cr_assert_eq(qemu_log_reader_open("/nonexistent/trace.log", &r, &error), -ENOENT);
    cr_assert_null(r);
    cr_assert(strstr(error->message, "/nonexistent/trace.log"), "%s", error->message);
    g_error_free(error);
}

/* Counts the request lines of a trace with xz and grep, independently of the parser. */
static unsigned long grep_count(const char *path, const char *regex)
{
    g_autofree char *cmd = g_strdup_printf("xz -dc '%s' | grep -cE '%s'", path, regex);
    FILE *p = popen(cmd, "r");
    unsigned long n = 0;

    cr_assert_not_null(p);
    cr_assert_eq(fscanf(p, "%lu", &n), 1);
    pclose(p);
    return n;
}

Test(qemu_log_reader, counts_every_event_of_the_real_trace, .timeout = 120)
{
    const char *path = TEST_DATA_DIR "/strict.trace.log.xz";
    qemu_log_reader *r = NULL;
    qemu_log_event ev;
    unsigned long count[QEMU_LOG_EVENT_TYPE_MAX] = {0};
    int ret;

    cr_assert_eq(qemu_log_reader_open(path, &r, NULL), 0);
    while ((ret = qemu_log_reader_next(r, &ev, NULL)) > 0)
        count[ev.type]++;
    cr_assert_eq(ret, 0);
    qemu_log_reader_free(r);
    cr_assert_eq(count[QEMU_LOG_MAP], grep_count(path, ":virtio_iommu_map "));
    cr_assert_eq(count[QEMU_LOG_UNMAP], grep_count(path, ":virtio_iommu_unmap "));
    cr_assert_eq(count[QEMU_LOG_ATTACH], grep_count(path, ":virtio_iommu_attach "));
    cr_assert_eq(count[QEMU_LOG_DETACH], grep_count(path, ":virtio_iommu_detach "));
    cr_assert_eq(count[QEMU_LOG_TRANSLATE], grep_count(path, ":virtio_iommu_translate "));
    cr_assert_gt(count[QEMU_LOG_MAP], 40000);
}

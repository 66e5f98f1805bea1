/* SPDX-License-Identifier: MIT */
/*
 * trace_convert.c - reading JSON Lines traces, and converting between
 * them and QEMU's log format (see trace_convert.h for what survives).
 */
#include "trace_convert.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "viommu.h"

static int open_error(const char *path, int err, GError **error)
{
    g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(err), "cannot read %s: %s", path,
                g_strerror(err));
    return -err;
}

/* JSON Lines when the first non-blank character is '{' (or there is
 * none); @text holds @n bytes of the file's start. Sets *@decided when a
 * non-blank character was found. */
static trace_file_format format_of_text(const char *text, size_t n, bool *decided)
{
    for (size_t i = 0; i < n; i++) {
        if (text[i] == ' ' || text[i] == '\t' || text[i] == '\r' || text[i] == '\n')
            continue;
        *decided = true;
        return text[i] == '{' ? TRACE_FILE_JSONL : TRACE_FILE_QEMU;
    }
    return TRACE_FILE_JSONL;
}

/* The format of an xz-compressed file, from its decompressed lines. */
static int detect_xz(const char *path, trace_file_format *out, GError **error)
{
    qemu_log_reader *r = NULL;
    int ret = qemu_log_reader_open(path, &r, error);
    if (ret < 0)
        return ret;
    *out = TRACE_FILE_JSONL;
    for (;;) {
        const char *line;
        size_t len;
        GError *lerr = NULL;
        ret = qemu_log_reader_next_line(r, &line, &len, &lerr);
        if (ret == -EINVAL) {
            /* A line too long for either reader: not ours. */
            g_clear_error(&lerr);
            *out = TRACE_FILE_QEMU;
            ret = 0;
            break;
        }
        if (ret <= 0) {
            if (ret < 0)
                g_propagate_error(error, lerr);
            break;
        }
        bool decided = false;
        *out = format_of_text(line, len, &decided);
        if (decided)
            break;
    }
    qemu_log_reader_free(r);
    return ret < 0 ? ret : 0;
}

int trace_file_detect(const char *path, trace_file_format *out, GError **error)
{
    static const unsigned char xz_magic[6] = {0xfd, '7', 'z', 'X', 'Z', 0};
    unsigned char buf[4096];
    FILE *f = fopen(path, "rbe");
    if (!f)
        return open_error(path, errno, error);
    size_t n = fread(buf, 1, sizeof(buf), f);
    int err = ferror(f) ? EIO : 0;
    fclose(f);
    if (err)
        return open_error(path, err, error);
    if (n >= sizeof(xz_magic) && memcmp(buf, xz_magic, sizeof(xz_magic)) == 0)
        return detect_xz(path, out, error);
    bool decided = false;
    *out = format_of_text((const char *)buf, n, &decided);
    return 0;
}

int trace_jsonl_read(const char *path, trace_event_fn fn, void *opaque, GError **error)
{
    qemu_log_reader *r = NULL;
    GError *oerr = NULL;
    /* The QEMU log reader's file handling: standard input, xz. */
    int ret = qemu_log_reader_open(path, &r, &oerr);
    if (ret < 0) {
        g_clear_error(&oerr);
        return open_error(path, -ret, error);
    }
    for (;;) {
        const char *line;
        size_t len;
        GError *lerr = NULL;
        ret = qemu_log_reader_next_line(r, &line, &len, &lerr);
        if (ret == 0)
            break;
        if (ret < 0) {
            if (ret == -EINVAL)
                g_set_error(error, TRACE_ERROR, TRACE_ERROR_PARSE, "%s: %s", path,
                            lerr ? lerr->message : "malformed");
            else
                g_propagate_error(error, g_steal_pointer(&lerr));
            g_clear_error(&lerr);
            break;
        }
        bool blank = true;
        for (size_t i = 0; i < len && blank; i++)
            blank = line[i] == ' ' || line[i] == '\t' || line[i] == '\r' || line[i] == '\n';
        if (blank)
            continue;
        trace_event ev;
        GError *perr = NULL;
        if (trace_event_parse_json(line, len, &ev, &perr) < 0) {
            g_set_error(error, TRACE_ERROR, TRACE_ERROR_PARSE, "%s: line %" PRIu64 ": %s", path,
                        qemu_log_reader_line(r), perr ? perr->message : "malformed");
            g_clear_error(&perr);
            ret = -EINVAL;
            break;
        }
        ret = fn(opaque, &ev);
        if (ret < 0)
            break;
    }
    qemu_log_reader_free(r);
    return ret < 0 ? ret : 0;
}

/* ---- QEMU -> JSON Lines ---------------------------------------------- */

typedef struct jsonl_out {
    FILE *out;
    int err; /* first format or write failure, negative errno */
} jsonl_out;

static void write_jsonl(void *opaque, const trace_event *ev)
{
    jsonl_out *o = opaque;
    char line[TRACE_LINE_MAX];
    int n = trace_event_format(ev, TRACE_FORMAT_JSONL, line, sizeof(line));
    if (n < 0) {
        if (!o->err)
            o->err = n;
        return;
    }
    if (fwrite(line, 1, (size_t)n, o->out) != (size_t)n && !o->err)
        o->err = -EIO;
}

int trace_convert_to_jsonl(const char *path, const replay_config *cfg, FILE *out, GError **error)
{
    qemu_log_reader *reader = NULL;
    replay_summary sum;
    int ret = qemu_log_reader_open(path, &reader, error);
    if (ret < 0)
        return ret;
    jsonl_out o = {out, 0};
    /* The device model's own events are the conversion: it fires exactly
     * what a VMM running this guest would have traced. */
    trace_set_callback(write_jsonl, &o);
    ret = replay_run(cfg, reader, NULL, &sum, error);
    trace_set_callback(NULL, NULL);
    qemu_log_reader_free(reader);
    if (ret == 0 && (o.err || fflush(out) != 0)) {
        ret = o.err ? o.err : -EIO;
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(-ret),
                    "cannot write the JSON Lines output: %s", g_strerror(-ret));
    }
    return ret;
}

/* ---- JSON Lines -> QEMU ---------------------------------------------- */

typedef struct qemu_out {
    FILE *out;
    GArray *props; /* trace_probe_property_fields not yet written */
    uint64_t batch;
    bool any;
} qemu_out;

/* QEMU's "pid@seconds.micros:" prefix, from the event's timestamp. */
static void prefix(FILE *f, uint64_t ts_ns)
{
    uint64_t us = ts_ns / 1000;
    fprintf(f, "1@%" PRIu64 ".%06" PRIu64 ":", us / 1000000, us % 1000000);
}

static void write_probe(qemu_out *q, const trace_event *ev, uint32_t endpoint)
{
    guint i = 0;
    while (i < q->props->len) {
        trace_probe_property_fields *p = &g_array_index(q->props, trace_probe_property_fields, i);
        if (p->endpoint != endpoint) {
            i++;
            continue;
        }
        prefix(q->out, ev->ts_ns);
        /* QEMU prints IDs with %d. */
        fprintf(q->out,
                "virtio_iommu_fill_resv_property dev= %d, type=%d start=0x%" PRIx64
                " end=0x%" PRIx64 "\n",
                (int32_t)p->endpoint, (int32_t)p->subtype, p->start, p->end);
        g_array_remove_index(q->props, i);
    }
}

static int write_request(void *opaque, const trace_event *ev)
{
    qemu_out *q = opaque;
    if (ev->id == TRACE_EV_probe_property) {
        g_array_append_val(q->props, ev->u.probe_property);
        return 0;
    }
    if (ev->id != TRACE_EV_request_done)
        return 0;
    const trace_request_done_fields *r = &ev->u.request_done;
    if (r->type < VIRTIO_IOMMU_T_ATTACH || r->type > VIRTIO_IOMMU_T_PROBE)
        return 0;
    /* Replay groups the requests between two notifications of the queue
     * the popped requests came from into one batch. */
    if (!q->any || r->batch != q->batch) {
        prefix(q->out, ev->ts_ns);
        fprintf(q->out, "virtio_queue_notify vdev 0x1 n 0 vq 0x1\n");
        q->batch = r->batch;
        q->any = true;
    }
    prefix(q->out, ev->ts_ns);
    fprintf(q->out, "virtqueue_pop vq 0x1 elem 0x1 in_num 1 out_num 1\n");
    switch (r->type) {
    case VIRTIO_IOMMU_T_ATTACH:
    case VIRTIO_IOMMU_T_DETACH:
        prefix(q->out, ev->ts_ns);
        fprintf(q->out, "virtio_iommu_%s domain=%d endpoint=%d\n",
                r->type == VIRTIO_IOMMU_T_ATTACH ? "attach" : "detach", (int32_t)r->domain,
                (int32_t)r->endpoint);
        break;
    case VIRTIO_IOMMU_T_MAP:
        prefix(q->out, ev->ts_ns);
        fprintf(q->out,
                "virtio_iommu_map domain=%d virt_start=0x%" PRIx64 " virt_end=0x%" PRIx64
                " phys_start=0x%" PRIx64 " flags=%d\n",
                (int32_t)r->domain, r->virt_start, r->virt_end, r->phys_start, (int32_t)r->flags);
        break;
    case VIRTIO_IOMMU_T_UNMAP:
        prefix(q->out, ev->ts_ns);
        fprintf(q->out,
                "virtio_iommu_unmap domain=%d virt_start=0x%" PRIx64 " virt_end=0x%" PRIx64 "\n",
                (int32_t)r->domain, r->virt_start, r->virt_end);
        break;
    case VIRTIO_IOMMU_T_PROBE:
        write_probe(q, ev, r->endpoint);
        break;
    default:
        break;
    }
    return 0;
}

int trace_convert_to_qemu(const char *path, FILE *out, GError **error)
{
    qemu_out q = {.out = out,
                  .props = g_array_new(FALSE, FALSE, sizeof(trace_probe_property_fields))};
    int ret = trace_jsonl_read(path, write_request, &q, error);
    g_array_free(q.props, TRUE);
    if (ret == 0 && (ferror(out) || fflush(out) != 0)) {
        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_IO, "cannot write the QEMU log output");
        ret = -EIO;
    }
    return ret;
}

/* SPDX-License-Identifier: MIT */
/*
 * qemu_log.c - parses QEMU trace-log lines and reads them from plain or
 * xz-compressed files.
 *
 * Each known event is described by a small pattern ("domain=%d
 * endpoint=%d") that the line must match exactly: a space in a pattern
 * stands for one or more blanks, conversions are strict about their base
 * and range, and nothing may follow the last argument but blanks. That
 * way a damaged line is reported instead of being half-understood.
 */
#include "qemu_log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <lzma.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

G_DEFINE_QUARK(qemu - log - error - quark, qemu_log_error)

/* --------------------------------------------------------------------- */
/* Line parsing                                                           */
/* --------------------------------------------------------------------- */

typedef struct cursor {
    const char *p;
    const char *end;
} cursor;

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static void skip_blanks(cursor *c)
{
    while (c->p < c->end && is_blank(*c->p))
        c->p++;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Digits of @base at the cursor into *out; false when none or on overflow. */
static bool scan_digits(cursor *c, unsigned base, uint64_t *out)
{
    uint64_t v = 0;
    const char *start = c->p;

    while (c->p < c->end) {
        int d = hex_digit(*c->p);
        if (d < 0 || (unsigned)d >= base)
            break;
        if (v > (UINT64_MAX - (uint64_t)d) / base)
            return false;
        v = v * base + (uint64_t)d;
        c->p++;
    }
    *out = v;
    return c->p != start;
}

/*
 * Decimal u32 as QEMU prints it with %d or %u: a value in
 * [INT32_MIN, UINT32_MAX]; negative values are the u32 seen through %d.
 */
static bool scan_u32_dec(cursor *c, uint32_t *out)
{
    bool neg = false;
    uint64_t v;

    if (c->p < c->end && *c->p == '-') {
        neg = true;
        c->p++;
    }
    if (!scan_digits(c, 10, &v))
        return false;
    if (neg) {
        if (v > (uint64_t)INT32_MAX + 1)
            return false;
        *out = (uint32_t)(-(int64_t)v);
        return true;
    }
    if (v > UINT32_MAX)
        return false;
    *out = (uint32_t)v;
    return true;
}

/* "0x" followed by at least one hex digit, at most 64 bits. */
static bool scan_u64_hex(cursor *c, uint64_t *out)
{
    if (c->end - c->p < 2 || c->p[0] != '0' || (c->p[1] != 'x' && c->p[1] != 'X'))
        return false;
    c->p += 2;
    return scan_digits(c, 16, out);
}

/*
 * Matches @fmt against the cursor. In @fmt: ' ' matches one or more
 * blanks; "%d" a decimal u32 (see scan_u32_dec), preceded by optional
 * blanks because QEMU prints "dev= 24"; "%x" a 0x-prefixed u64; "%s" a
 * token of non-blank characters (skipped); anything else matches itself.
 * On failure, *what receives a short description of what was expected.
 */
static bool scan_pattern(cursor *c, const char **what, const char *fmt, ...)
{
    va_list ap;
    bool ok = true;

    va_start(ap, fmt);
    for (const char *f = fmt; *f && ok; f++) {
        if (*f == ' ') {
            if (c->p >= c->end || !is_blank(*c->p)) {
                *what = "a blank between arguments";
                ok = false;
            }
            skip_blanks(c);
        } else if (*f == '%' && f[1] == 'd') {
            f++;
            skip_blanks(c);
            if (!scan_u32_dec(c, va_arg(ap, uint32_t *))) {
                *what = "a decimal 32-bit number";
                ok = false;
            }
        } else if (*f == '%' && f[1] == 'x') {
            f++;
            if (!scan_u64_hex(c, va_arg(ap, uint64_t *))) {
                *what = "a 0x-prefixed 64-bit hexadecimal number";
                ok = false;
            }
        } else if (*f == '%' && f[1] == 's') {
            const char *start = c->p;
            f++;
            while (c->p < c->end && !is_blank(*c->p))
                c->p++;
            if (c->p == start) {
                *what = "a name";
                ok = false;
            }
        } else {
            if (c->p >= c->end || *c->p != *f) {
                *what = NULL; /* the caller names the literal */
                ok = false;
            } else {
                c->p++;
            }
        }
    }
    va_end(ap);
    return ok;
}

typedef struct event_syntax {
    const char *name;
    qemu_log_event_type type;
} event_syntax;

static const event_syntax event_names[] = {
    {"virtio_iommu_attach", QEMU_LOG_ATTACH},
    {"virtio_iommu_detach", QEMU_LOG_DETACH},
    {"virtio_iommu_map", QEMU_LOG_MAP},
    {"virtio_iommu_unmap", QEMU_LOG_UNMAP},
    {"virtio_iommu_fill_resv_property", QEMU_LOG_RESV_PROPERTY},
    {"virtio_queue_notify", QEMU_LOG_QUEUE_NOTIFY},
    {"virtqueue_pop", QEMU_LOG_QUEUE_POP},
    {"virtio_iommu_translate", QEMU_LOG_TRANSLATE},
    {"virtio_iommu_translate_out", QEMU_LOG_TRANSLATE_OUT},
};

const char *qemu_log_event_name(qemu_log_event_type type)
{
    for (size_t i = 0; i < G_N_ELEMENTS(event_names); i++)
        if (event_names[i].type == type)
            return event_names[i].name;
    return "unknown";
}

/* The argument syntax of each event, as QEMU 7.2's trace-events print it. */
static const char *event_pattern(qemu_log_event_type type)
{
    switch (type) {
    case QEMU_LOG_ATTACH:
    case QEMU_LOG_DETACH:
        return "domain=%d endpoint=%d";
    case QEMU_LOG_MAP:
        return "domain=%d virt_start=%x virt_end=%x phys_start=%x flags=%d";
    case QEMU_LOG_UNMAP:
        return "domain=%d virt_start=%x virt_end=%x";
    case QEMU_LOG_RESV_PROPERTY:
        return "dev=%d, type=%d start=%x end=%x";
    case QEMU_LOG_QUEUE_NOTIFY:
        return "vdev %x n %d vq %x";
    case QEMU_LOG_QUEUE_POP:
        return "vq %x elem %x in_num %d out_num %d";
    case QEMU_LOG_TRANSLATE:
        return "mr=%s rid=%d addr=%x flag=%d";
    case QEMU_LOG_TRANSLATE_OUT:
        return "%x -> %x for sid=%d";
    case QEMU_LOG_EVENT_TYPE_MAX:
        break;
    }
    return "";
}

/* The pattern as a user reads it: "domain=N virt_start=0xHEX ...". */
static char *readable_pattern(qemu_log_event_type type)
{
    GString *out = g_string_new(NULL);

    for (const char *f = event_pattern(type); *f; f++) {
        if (*f == '%' && f[1] == 'd') {
            g_string_append_c(out, 'N');
            f++;
        } else if (*f == '%' && f[1] == 'x') {
            g_string_append(out, "0xHEX");
            f++;
        } else if (*f == '%' && f[1] == 's') {
            g_string_append(out, "NAME");
            f++;
        } else {
            g_string_append_c(out, *f);
        }
    }
    return g_string_free(out, FALSE);
}

static bool scan_arguments(cursor *c, qemu_log_event *ev, const char **what)
{
    const char *fmt = event_pattern(ev->type);

    switch (ev->type) {
    case QEMU_LOG_ATTACH:
    case QEMU_LOG_DETACH:
        return scan_pattern(c, what, fmt, &ev->u.attach.domain, &ev->u.attach.endpoint);
    case QEMU_LOG_MAP:
        return scan_pattern(c, what, fmt, &ev->u.map.domain, &ev->u.map.virt_start,
                            &ev->u.map.virt_end, &ev->u.map.phys_start, &ev->u.map.flags);
    case QEMU_LOG_UNMAP:
        return scan_pattern(c, what, fmt, &ev->u.unmap.domain, &ev->u.unmap.virt_start,
                            &ev->u.unmap.virt_end);
    case QEMU_LOG_RESV_PROPERTY:
        return scan_pattern(c, what, fmt, &ev->u.resv.endpoint, &ev->u.resv.subtype,
                            &ev->u.resv.start, &ev->u.resv.end);
    case QEMU_LOG_QUEUE_NOTIFY:
        return scan_pattern(c, what, fmt, &ev->u.notify.vdev, &ev->u.notify.queue_index,
                            &ev->u.notify.vq);
    case QEMU_LOG_QUEUE_POP:
        return scan_pattern(c, what, fmt, &ev->u.pop.vq, &ev->u.pop.elem, &ev->u.pop.in_num,
                            &ev->u.pop.out_num);
    case QEMU_LOG_TRANSLATE:
        return scan_pattern(c, what, fmt, &ev->u.translate.endpoint, &ev->u.translate.addr,
                            &ev->u.translate.flag);
    case QEMU_LOG_TRANSLATE_OUT:
        return scan_pattern(c, what, fmt, &ev->u.translate_out.addr,
                            &ev->u.translate_out.translated, &ev->u.translate_out.endpoint);
    case QEMU_LOG_EVENT_TYPE_MAX:
        break;
    }
    return false;
}

/* Checks on values that parse but that QEMU can never print. */
static const char *check_values(const qemu_log_event *ev)
{
    switch (ev->type) {
    case QEMU_LOG_MAP:
        if (ev->u.map.virt_end < ev->u.map.virt_start)
            return "virt_end is below virt_start";
        break;
    case QEMU_LOG_UNMAP:
        if (ev->u.unmap.virt_end < ev->u.unmap.virt_start)
            return "virt_end is below virt_start";
        break;
    case QEMU_LOG_RESV_PROPERTY:
        if (ev->u.resv.end < ev->u.resv.start)
            return "end is below start";
        if (ev->u.resv.subtype > 0xff)
            return "type does not fit the 8-bit subtype";
        break;
    case QEMU_LOG_TRANSLATE:
        if (ev->u.translate.flag > 3)
            return "flag is not an access flag (0 to 3)";
        break;
    default:
        break;
    }
    return NULL;
}

static int malformed(GError **error, uint64_t lineno, const char *fmt, ...) G_GNUC_PRINTF(3, 4);

static int malformed(GError **error, uint64_t lineno, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *msg = NULL;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error(error, QEMU_LOG_ERROR, QEMU_LOG_ERROR_MALFORMED, "line %" PRIu64 ": %s", lineno,
                msg);
    return -EINVAL;
}

/* "TID@SECONDS.MICROSECONDS:" ; returns false when malformed. */
static bool scan_prefix(cursor *c, qemu_log_event *ev)
{
    uint64_t secs, frac = 0;
    const char *frac_start;

    if (!scan_digits(c, 10, &ev->tid) || c->p >= c->end || *c->p != '@')
        return false;
    c->p++;
    if (!scan_digits(c, 10, &secs))
        return false;
    if (c->p < c->end && *c->p == '.') {
        c->p++;
        frac_start = c->p;
        if (!scan_digits(c, 10, &frac) || c->p - frac_start > 6)
            return false;
        for (ptrdiff_t i = c->p - frac_start; i < 6; i++)
            frac *= 10;
    }
    if (c->p >= c->end || *c->p != ':')
        return false;
    c->p++;
    if (secs > (UINT64_MAX - frac) / 1000000)
        return false;
    ev->time_us = secs * 1000000 + frac;
    ev->has_prefix = true;
    return true;
}

int qemu_log_parse_line(const char *line, size_t len, uint64_t lineno, qemu_log_event *ev,
                        GError **error)
{
    cursor c = {line, line + len};
    const char *name;
    size_t name_len;
    const char *what = NULL;
    const char *bad;
    bool known = false;
    g_autofree char *expected = NULL;

    memset(ev, 0, sizeof(*ev));
    ev->line = lineno;
    if (len && line[len - 1] == '\r')
        c.end--;
    if (memchr(line, '\0', len))
        return malformed(error, lineno, "the line contains a NUL byte");

    /* A line that starts with digits and '@' claims to have a prefix. */
    if (c.p < c.end && g_ascii_isdigit(*c.p)) {
        const char *q = c.p;
        while (q < c.end && g_ascii_isdigit(*q))
            q++;
        if (q < c.end && *q == '@' && !scan_prefix(&c, ev))
            return malformed(error, lineno, "malformed TID@SECONDS: prefix");
    }

    name = c.p;
    while (c.p < c.end && !is_blank(*c.p))
        c.p++;
    name_len = (size_t)(c.p - name);
    for (size_t i = 0; i < G_N_ELEMENTS(event_names); i++) {
        if (strlen(event_names[i].name) == name_len &&
            memcmp(event_names[i].name, name, name_len) == 0) {
            ev->type = event_names[i].type;
            known = true;
            break;
        }
    }
    if (!known)
        return 0;

    expected = readable_pattern(ev->type);
    if (c.p >= c.end || !is_blank(*c.p))
        return malformed(error, lineno, "%s: missing arguments (expected \"%s\")",
                         qemu_log_event_name(ev->type), expected);
    skip_blanks(&c);
    if (!scan_arguments(&c, ev, &what)) {
        ptrdiff_t column = c.p - line + 1;
        if (what)
            return malformed(error, lineno, "%s: expected %s at column %td (format \"%s\")",
                             qemu_log_event_name(ev->type), what, column, expected);
        return malformed(error, lineno, "%s: unexpected text at column %td (format \"%s\")",
                         qemu_log_event_name(ev->type), column, expected);
    }
    skip_blanks(&c);
    if (c.p != c.end)
        return malformed(error, lineno, "%s: unexpected text after the arguments at column %td",
                         qemu_log_event_name(ev->type), c.p - line + 1);
    bad = check_values(ev);
    if (bad)
        return malformed(error, lineno, "%s: %s", qemu_log_event_name(ev->type), bad);
    return 1;
}

/* --------------------------------------------------------------------- */
/* Reading files                                                          */
/* --------------------------------------------------------------------- */

#define READ_CHUNK (64 * 1024)

static const uint8_t xz_magic[6] = {0xfd, '7', 'z', 'X', 'Z', 0x00};

struct qemu_log_reader {
    int fd;
    char *name;
    uint64_t size;     /* regular files only */
    uint64_t consumed; /* input bytes */
    uint64_t lineno;

    bool detected; /* the first bytes were looked at */
    bool xz;
    lzma_stream lz;
    bool lz_started;
    bool in_eof;  /* read() returned 0 */
    bool out_eof; /* no more text will come */

    uint8_t in[READ_CHUNK];
    size_t in_pos, in_len;

    /* Decoded text not yet split into lines: text[text_pos, text_len). */
    char text[READ_CHUNK];
    size_t text_pos, text_len;

    /* The line being assembled across chunks. */
    char line[QEMU_LOG_MAX_LINE];
    size_t line_len;
    bool line_too_long;
};

int qemu_log_reader_new_fd(int fd, const char *name, qemu_log_reader **out, GError **error)
{
    qemu_log_reader *r;
    struct stat st;

    r = g_try_new0(qemu_log_reader, 1);
    if (!r) {
        close(fd);
        g_set_error(error, QEMU_LOG_ERROR, QEMU_LOG_ERROR_IO, "%s: out of memory", name);
        return -ENOMEM;
    }
    r->fd = fd;
    r->name = g_strdup(name);
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
        r->size = (uint64_t)st.st_size;
    *out = r;
    return 0;
}

int qemu_log_reader_open(const char *path, qemu_log_reader **out, GError **error)
{
    int fd;

    if (strcmp(path, "-") == 0) {
        fd = dup(STDIN_FILENO);
        if (fd < 0) {
            int err = errno;
            g_set_error(error, QEMU_LOG_ERROR, QEMU_LOG_ERROR_IO, "standard input: %s",
                        g_strerror(err));
            return -err;
        }
        return qemu_log_reader_new_fd(fd, "<stdin>", out, error);
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        g_set_error(error, QEMU_LOG_ERROR, QEMU_LOG_ERROR_IO, "%s: %s", path, g_strerror(err));
        return -err;
    }
    return qemu_log_reader_new_fd(fd, path, out, error);
}

void qemu_log_reader_free(qemu_log_reader *r)
{
    if (!r)
        return;
    if (r->lz_started)
        lzma_end(&r->lz);
    if (r->fd >= 0)
        close(r->fd);
    g_free(r->name);
    g_free(r);
}

uint64_t qemu_log_reader_line(const qemu_log_reader *r)
{
    return r->lineno;
}

uint64_t qemu_log_reader_bytes(const qemu_log_reader *r)
{
    return r->consumed;
}

uint64_t qemu_log_reader_size(const qemu_log_reader *r)
{
    return r->size;
}

static int io_error(qemu_log_reader *r, GError **error, int code, const char *fmt, ...)
    G_GNUC_PRINTF(4, 5);

static int io_error(qemu_log_reader *r, GError **error, int code, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *msg = NULL;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    r->out_eof = true;
    g_set_error(error, QEMU_LOG_ERROR, code, "%s: %s", r->name, msg);
    return -EIO;
}

/* Refills r->in when it is empty; returns 0 or -EIO. */
static int fill_input(qemu_log_reader *r, GError **error)
{
    ssize_t n;

    if (r->in_pos < r->in_len || r->in_eof)
        return 0;
    do {
        n = read(r->fd, r->in, sizeof(r->in));
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return io_error(r, error, QEMU_LOG_ERROR_IO, "read failed: %s", g_strerror(errno));
    r->in_pos = 0;
    r->in_len = (size_t)n;
    r->consumed += (uint64_t)n;
    if (n == 0)
        r->in_eof = true;
    return 0;
}

/* Looks at the first bytes to choose between plain text and xz. */
static int detect_format(qemu_log_reader *r, GError **error)
{
    lzma_ret ret;

    /* The magic may straddle short reads from a pipe: gather 6 bytes. */
    while (r->in_len < sizeof(xz_magic) && !r->in_eof) {
        ssize_t n;
        do {
            n = read(r->fd, r->in + r->in_len, sizeof(r->in) - r->in_len);
        } while (n < 0 && errno == EINTR);
        if (n < 0)
            return io_error(r, error, QEMU_LOG_ERROR_IO, "read failed: %s", g_strerror(errno));
        if (n == 0)
            r->in_eof = true;
        r->in_len += (size_t)n;
        r->consumed += (uint64_t)n;
    }
    r->detected = true;
    r->xz = r->in_len >= sizeof(xz_magic) && memcmp(r->in, xz_magic, sizeof(xz_magic)) == 0;
    if (!r->xz)
        return 0;
    r->lz = (lzma_stream)LZMA_STREAM_INIT;
    /* Concatenated .xz streams are valid .xz files (xz -dc accepts them). */
    ret = lzma_stream_decoder(&r->lz, UINT64_MAX, LZMA_CONCATENATED);
    if (ret != LZMA_OK) {
        r->out_eof = true;
        g_set_error(error, QEMU_LOG_ERROR, QEMU_LOG_ERROR_XZ, "%s: cannot start the xz decoder",
                    r->name);
        return -ENOMEM;
    }
    r->lz_started = true;
    return 0;
}

/* Refills r->text with decoded bytes; sets out_eof at the end. */
static int fill_text(qemu_log_reader *r, GError **error)
{
    int err;

    if (!r->detected) {
        err = detect_format(r, error);
        if (err)
            return err;
    }
    r->text_pos = 0;
    r->text_len = 0;
    if (!r->xz) {
        err = fill_input(r, error);
        if (err)
            return err;
        if (r->in_pos == r->in_len) {
            r->out_eof = true;
            return 0;
        }
        r->text_len = r->in_len - r->in_pos;
        memcpy(r->text, r->in + r->in_pos, r->text_len);
        r->in_pos = r->in_len;
        return 0;
    }

    while (r->text_len == 0) {
        lzma_ret ret;

        err = fill_input(r, error);
        if (err)
            return err;
        r->lz.next_in = r->in + r->in_pos;
        r->lz.avail_in = r->in_len - r->in_pos;
        r->lz.next_out = (uint8_t *)r->text;
        r->lz.avail_out = sizeof(r->text);
        ret = lzma_code(&r->lz, r->in_eof ? LZMA_FINISH : LZMA_RUN);
        r->in_pos = r->in_len - r->lz.avail_in;
        r->text_len = sizeof(r->text) - r->lz.avail_out;
        if (ret == LZMA_STREAM_END) {
            r->out_eof = r->text_len == 0;
            if (r->text_len == 0)
                return 0;
            break;
        }
        if (ret == LZMA_BUF_ERROR && r->in_eof)
            return io_error(r, error, QEMU_LOG_ERROR_XZ, "the xz stream is truncated");
        if (ret == LZMA_MEM_ERROR)
            return io_error(r, error, QEMU_LOG_ERROR_XZ, "out of memory decoding xz");
        if (ret != LZMA_OK)
            return io_error(r, error, QEMU_LOG_ERROR_XZ, "corrupt xz data (liblzma error %d)",
                            (int)ret);
    }
    return 0;
}

/*
 * Assembles the next line into r->line. Returns 1 with a line, 0 at the
 * end, a negative errno on an input error. A line longer than
 * QEMU_LOG_MAX_LINE is consumed to its end and flagged line_too_long.
 */
static int next_line(qemu_log_reader *r, GError **error)
{
    r->line_len = 0;
    r->line_too_long = false;
    for (;;) {
        char *nl;
        size_t avail, take;

        if (r->text_pos == r->text_len) {
            int err;
            if (r->out_eof)
                break;
            err = fill_text(r, error);
            if (err)
                return err;
            if (r->text_len == 0)
                break;
        }
        avail = r->text_len - r->text_pos;
        nl = memchr(r->text + r->text_pos, '\n', avail);
        take = nl ? (size_t)(nl - (r->text + r->text_pos)) : avail;
        if (r->line_len + take > sizeof(r->line)) {
            r->line_too_long = true;
        } else {
            memcpy(r->line + r->line_len, r->text + r->text_pos, take);
            r->line_len += take;
        }
        r->text_pos += take;
        if (nl) {
            r->text_pos++; /* the newline */
            r->lineno++;
            return 1;
        }
    }
    /* The last line of a file may lack its newline. */
    if (r->line_len || r->line_too_long) {
        r->lineno++;
        return 1;
    }
    return 0;
}

int qemu_log_reader_next(qemu_log_reader *r, qemu_log_event *ev, GError **error)
{
    for (;;) {
        int ret = next_line(r, error);
        if (ret <= 0)
            return ret;
        if (r->line_too_long)
            return malformed(error, r->lineno, "the line is longer than %d bytes",
                             QEMU_LOG_MAX_LINE);
        ret = qemu_log_parse_line(r->line, r->line_len, r->lineno, ev, error);
        if (ret != 0)
            return ret;
    }
}

int qemu_log_reader_next_line(qemu_log_reader *r, const char **line, size_t *len, GError **error)
{
    int ret = next_line(r, error);
    if (ret <= 0)
        return ret;
    if (r->line_too_long)
        return malformed(error, r->lineno, "the line is longer than %d bytes", QEMU_LOG_MAX_LINE);
    *line = r->line;
    *len = r->line_len;
    return 1;
}

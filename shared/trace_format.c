/* SPDX-License-Identifier: MIT */
/*
 * trace_format.c - the text and JSON Lines forms of a trace event, and
 * the JSON Lines reader.
 *
 * The reader is a strict parser written for our lines (one flat object
 * per line) rather than a general JSON library: shared/ depends on GLib
 * only, and the u64 fields need exact 64-bit integers, which
 * double-based readers cannot promise. It still accepts any valid JSON
 * value under keys it does not know, so it reads lines from newer writers.
 */
#include <errno.h>
#include <glib.h>
#include <stdarg.h>
#include <string.h>

#include "shared.h"
#include "trace-internal.h"

/* ------------------------------------------------------------------ */
/* Writing                                                             */
/* ------------------------------------------------------------------ */

typedef struct out_buf {
    char *p;
    char *end; /* one past the last usable byte (the NUL slot excluded) */
    bool full;
} out_buf;

static void put_mem(out_buf *o, const char *s, size_t n)
{
    if (o->full || (size_t)(o->end - o->p) < n) {
        o->full = true;
        return;
    }
    memcpy(o->p, s, n);
    o->p += n;
}

static void put_str(out_buf *o, const char *s)
{
    put_mem(o, s, strlen(s));
}

/* Reserves @n bytes at the end of @o, or marks it full. */
static char *reserve(out_buf *o, size_t n)
{
    if (o->full || (size_t)(o->end - o->p) < n) {
        o->full = true;
        return NULL;
    }
    char *at = o->p;
    o->p += n;
    return at;
}

static const char digit_pairs[] = "00010203040506070809"
                                  "10111213141516171819"
                                  "20212223242526272829"
                                  "30313233343536373839"
                                  "40414243444546474849"
                                  "50515253545556575859"
                                  "60616263646566676869"
                                  "70717273747576777879"
                                  "80818283848586878889"
                                  "90919293949596979899";

static unsigned decimal_digits(uint64_t v)
{
    unsigned n = 1;
    while (v >= 10) {
        v /= 10;
        n++;
    }
    return n;
}

/* Events are formatted on the traced thread: digits go straight into the
 * line, two at a time, without an intermediate copy. */
static void put_u64(out_buf *o, uint64_t v)
{
    unsigned n = decimal_digits(v);
    char *at = reserve(o, n);
    if (!at)
        return;
    char *q = at + n;
    while (v >= 100) {
        q -= 2;
        memcpy(q, &digit_pairs[(v % 100) * 2], 2);
        v /= 100;
    }
    if (v >= 10) {
        q -= 2;
        memcpy(q, &digit_pairs[v * 2], 2);
    } else {
        *--q = (char)('0' + v);
    }
}

static void put_i64(out_buf *o, int64_t v)
{
    if (v < 0) {
        put_mem(o, "-", 1);
        put_u64(o, -(uint64_t)v);
    } else {
        put_u64(o, (uint64_t)v);
    }
}

static void put_hex(out_buf *o, uint64_t v)
{
    static const char digits[] = "0123456789abcdef";
    unsigned n = v ? (unsigned)(67 - __builtin_clzll(v)) / 4 : 1;
    char *at = reserve(o, n + 2);
    if (!at)
        return;
    at[0] = '0';
    at[1] = 'x';
    for (char *q = at + 2 + n; q > at + 2; v >>= 4)
        *--q = digits[v & 0xf];
}

/* Zero-padded to 9 digits: the fractional part of a seconds timestamp. */
static void put_ns_fraction(out_buf *o, uint64_t ns)
{
    char tmp[9];
    for (int i = 8; i >= 0; i--) {
        tmp[i] = (char)('0' + ns % 10);
        ns /= 10;
    }
    put_mem(o, tmp, sizeof(tmp));
}

static const char *const request_names[] = {
    [1] = "ATTACH", [2] = "DETACH", [3] = "MAP", [4] = "UNMAP", [5] = "PROBE",
};

static const char *const status_names[] = {
    [0] = "OK",    [1] = "IOERR", [2] = "UNSUPP", [3] = "DEVERR", [4] = "INVAL",
    [5] = "RANGE", [6] = "NOENT", [7] = "FAULT",  [8] = "NOMEM",
};

static void put_named(out_buf *o, uint64_t v, const char *const *names, size_t count)
{
    if (v < count && names[v])
        put_str(o, names[v]);
    else
        put_u64(o, v);
}

static void put_text_value(out_buf *o, const trace_field_info *f, uint64_t v)
{
    switch (f->kind) {
    case TRACE_KIND_I32:
        put_i64(o, (int64_t)v);
        break;
    case TRACE_KIND_ADDR:
    case TRACE_KIND_FLAGS:
        put_hex(o, v);
        break;
    case TRACE_KIND_REQ:
        put_named(o, v, request_names, G_N_ELEMENTS(request_names));
        break;
    case TRACE_KIND_STATUS:
        put_named(o, v, status_names, G_N_ELEMENTS(status_names));
        break;
    case TRACE_KIND_U32:
    case TRACE_KIND_U64:
        put_u64(o, v);
        break;
    }
}

static void put_json_value(out_buf *o, const trace_field_info *f, uint64_t v)
{
    switch (f->kind) {
    case TRACE_KIND_I32:
        put_i64(o, (int64_t)v);
        break;
    case TRACE_KIND_ADDR:
        put_mem(o, "\"", 1);
        put_hex(o, v);
        put_mem(o, "\"", 1);
        break;
    case TRACE_KIND_FLAGS:
    case TRACE_KIND_REQ:
    case TRACE_KIND_STATUS:
    case TRACE_KIND_U32:
    case TRACE_KIND_U64:
        put_u64(o, v);
        break;
    }
}

/*
 * The constant parts of each line, built at compile time from the event
 * list so that formatting copies them without measuring: the event's
 * name and every field's key, in both formats.
 */
typedef struct lit {
    char s[32]; /* whole array readable: put_lit copies it in one move */
    size_t len;
} lit;

#define LIT_(str)                                                                                  \
    {                                                                                              \
        str, sizeof(str) - 1                                                                       \
    }

typedef struct field_keys {
    lit json; /* ,"name": */
    lit text; /*  name= */
} field_keys;

typedef struct event_lits {
    lit json; /* ,"event":"name" */
    lit text; /*  name */
    const field_keys *keys;
} event_lits;

#define KEYS_F_(k, fname, fdoc)                                                                    \
    {                                                                                              \
        LIT_(",\"" #fname "\":"), LIT_(" " #fname "=")                                             \
    }
#define KEYS_EV_(name, doc)                                                                        \
    static const field_keys keys_##name[] = {TRACE_FIELDS_##name(KEYS_F_, TRACE_SEP_COMMA)};
TRACE_EVENT_LIST(KEYS_EV_)

#define LITS_EV_(name, doc)                                                                        \
    [TRACE_EV_##name] = {LIT_(",\"event\":\"" #name "\""), LIT_(" " #name), keys_##name},
static const event_lits event_lits_table[TRACE_EVENT_COUNT] = {TRACE_EVENT_LIST(LITS_EV_)};

static void put_lit(out_buf *o, const lit *l)
{
    /* With room for the whole array, a fixed-size copy (a couple of
     * vector moves, no call) is cheaper than copying exactly len bytes;
     * the bytes past len are overwritten by what follows or ignored. */
    if (!o->full && (size_t)(o->end - o->p) >= sizeof(l->s)) {
        memcpy(o->p, l->s, sizeof(l->s));
        o->p += l->len;
    } else {
        put_mem(o, l->s, l->len);
    }
}

static void format_line(out_buf *o, const trace_event *ev, trace_format format,
                        const trace_field_info *fields, unsigned count)
{
    const event_lits *el = &event_lits_table[ev->id];

    if (format == TRACE_FORMAT_TEXT) {
        put_u64(o, ev->ts_ns / 1000000000u);
        put_mem(o, ".", 1);
        put_ns_fraction(o, ev->ts_ns % 1000000000u);
        put_lit(o, &el->text);
        for (unsigned i = 0; i < count; i++) {
            put_lit(o, &el->keys[i].text);
            put_text_value(o, &fields[i], trace_field_load(ev, &fields[i]));
        }
    } else {
        put_mem(o, "{\"ts\":", 6);
        put_u64(o, ev->ts_ns);
        put_lit(o, &el->json);
        for (unsigned i = 0; i < count; i++) {
            put_lit(o, &el->keys[i].json);
            put_json_value(o, &fields[i], trace_field_load(ev, &fields[i]));
        }
        put_mem(o, "}", 1);
    }
    put_mem(o, "\n", 1);
}

int trace_event_format(const trace_event *ev, trace_format format, char *buf, size_t size)
{
    unsigned count;
    const trace_field_info *fields = trace_event_fields(ev->id, &count);
    if (!fields || (format != TRACE_FORMAT_TEXT && format != TRACE_FORMAT_JSONL))
        return -EINVAL;

    /* Format in place when the buffer is known to be large enough; else
     * into a local line so a short buffer still gets a clean prefix. */
    char local[TRACE_LINE_MAX];
    char *dst = size >= TRACE_LINE_MAX ? buf : local;
    size_t cap = size >= TRACE_LINE_MAX ? size : sizeof(local);
    out_buf o = {dst, dst + cap - 1, false};
    format_line(&o, ev, format, fields, count);
    if (o.full) /* cannot happen for TRACE_LINE_MAX, which bounds every event */
        return -ENOSPC;
    size_t n = (size_t)(o.p - dst);
    dst[n] = '\0';
    if (dst == buf)
        return (int)n;
    if (n + 1 > size) {
        if (size > 0) {
            memcpy(buf, local, size - 1);
            buf[size - 1] = '\0';
        }
        return -ENOSPC;
    }
    memcpy(buf, local, n + 1);
    return (int)n;
}

/* ------------------------------------------------------------------ */
/* Reading                                                             */
/* ------------------------------------------------------------------ */

/* Deeper nesting under an unknown key is refused rather than recursed. */
#define MAX_DEPTH 32

/* Longest decoded string kept; longer ones are still parsed, but match
 * nothing we look for (every name and hex value is shorter). */
#define MAX_STR 48

typedef struct parser {
    const char *s;
    size_t len;
    size_t pos;
    GError **error;
} parser;

typedef enum jtype { J_STRING, J_INT, J_OTHER } jtype;

typedef struct jvalue {
    jtype type;
    size_t col; /* 1-based column where the value starts */
    /* J_INT */
    bool negative;
    bool overflow; /* magnitude above UINT64_MAX */
    uint64_t magnitude;
    /* J_STRING, decoded; non-ASCII characters become 0xff bytes */
    char str[MAX_STR + 1];
    size_t str_len;
    bool str_long;
} jvalue;

G_GNUC_PRINTF(3, 4)
static int fail_at(parser *p, size_t pos, const char *fmt, ...)
{
    if (p->error) {
        va_list ap;
        va_start(ap, fmt);
        char *msg = g_strdup_vprintf(fmt, ap);
        va_end(ap);
        g_set_error(p->error, TRACE_ERROR, TRACE_ERROR_PARSE, "trace line, column %zu: %s", pos + 1,
                    msg);
        g_free(msg);
    }
    return -EINVAL;
}

static void skip_ws(parser *p)
{
    while (p->pos < p->len) {
        char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        p->pos++;
    }
}

static int peek(parser *p)
{
    return p->pos < p->len ? (unsigned char)p->s[p->pos] : -1;
}

static int expect(parser *p, char c, const char *what)
{
    skip_ws(p);
    if (peek(p) != (unsigned char)c)
        return fail_at(p, p->pos, "expected %s", what);
    p->pos++;
    return 0;
}

static int hex_digit(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static void str_push(jvalue *v, char c)
{
    if (v->str_len < MAX_STR)
        v->str[v->str_len++] = c;
    else
        v->str_long = true;
}

/* At the opening quote. */
static int parse_string(parser *p, jvalue *v)
{
    size_t start = p->pos;
    v->type = J_STRING;
    v->str_len = 0;
    v->str_long = false;
    p->pos++;
    for (;;) {
        int c = peek(p);
        if (c < 0)
            return fail_at(p, start, "unterminated string");
        p->pos++;
        if (c == '"')
            break;
        if (c < 0x20)
            return fail_at(p, p->pos - 1, "control character in a string");
        if (c >= 0x80) {
            str_push(v, (char)0xff);
            continue;
        }
        if (c != '\\') {
            str_push(v, (char)c);
            continue;
        }
        int e = peek(p);
        p->pos++;
        switch (e) {
        case '"':
        case '\\':
        case '/':
            str_push(v, (char)e);
            break;
        case 'b':
            str_push(v, '\b');
            break;
        case 'f':
            str_push(v, '\f');
            break;
        case 'n':
            str_push(v, '\n');
            break;
        case 'r':
            str_push(v, '\r');
            break;
        case 't':
            str_push(v, '\t');
            break;
        case 'u': {
            unsigned cp = 0;
            for (int i = 0; i < 4; i++) {
                int d = hex_digit(peek(p));
                if (d < 0)
                    return fail_at(p, p->pos, "\\u needs four hex digits");
                cp = cp * 16 + (unsigned)d;
                p->pos++;
            }
            /* Surrogate halves are kept as non-ASCII like any other
             * code point above 0x7f: nothing we match contains them. */
            str_push(v, cp < 0x80 ? (char)cp : (char)0xff);
            break;
        }
        default:
            return fail_at(p, p->pos - 1, "invalid escape in a string");
        }
    }
    v->str[v->str_len] = '\0';
    return 0;
}

static bool is_digit(int c)
{
    return c >= '0' && c <= '9';
}

/* JSON number grammar; integers also get their exact value. */
static int parse_number(parser *p, jvalue *v)
{
    size_t start = p->pos;
    bool integer = true;
    v->negative = false;
    v->overflow = false;
    v->magnitude = 0;
    if (peek(p) == '-') {
        v->negative = true;
        p->pos++;
    }
    if (!is_digit(peek(p)))
        return fail_at(p, start, "invalid number");
    if (peek(p) == '0') {
        p->pos++;
        if (is_digit(peek(p)))
            return fail_at(p, start, "number with a leading zero");
    } else {
        while (is_digit(peek(p))) {
            unsigned d = (unsigned)(peek(p) - '0');
            if (v->magnitude > (UINT64_MAX - d) / 10)
                v->overflow = true;
            else
                v->magnitude = v->magnitude * 10 + d;
            p->pos++;
        }
    }
    if (peek(p) == '.') {
        integer = false;
        p->pos++;
        if (!is_digit(peek(p)))
            return fail_at(p, start, "invalid number");
        while (is_digit(peek(p)))
            p->pos++;
    }
    if (peek(p) == 'e' || peek(p) == 'E') {
        integer = false;
        p->pos++;
        if (peek(p) == '+' || peek(p) == '-')
            p->pos++;
        if (!is_digit(peek(p)))
            return fail_at(p, start, "invalid number");
        while (is_digit(peek(p)))
            p->pos++;
    }
    v->type = integer ? J_INT : J_OTHER;
    return 0;
}

static int parse_literal(parser *p, const char *word)
{
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0)
        return fail_at(p, p->pos, "invalid value");
    p->pos += n;
    return 0;
}

static int parse_value(parser *p, jvalue *v, unsigned depth);

/* At '[' or '{': a nested value under an unknown key, checked and skipped. */
static int parse_container(parser *p, unsigned depth)
{
    char open = p->s[p->pos];
    char close = open == '[' ? ']' : '}';
    jvalue scratch;

    if (depth >= MAX_DEPTH)
        return fail_at(p, p->pos, "values nested more than %d deep", MAX_DEPTH);
    p->pos++;
    skip_ws(p);
    if (peek(p) == (unsigned char)close) {
        p->pos++;
        return 0;
    }
    for (;;) {
        skip_ws(p);
        if (open == '{') {
            if (peek(p) != '"')
                return fail_at(p, p->pos, "expected a string key");
            if (parse_string(p, &scratch) < 0 || expect(p, ':', "':' after a key") < 0)
                return -EINVAL;
        }
        if (parse_value(p, &scratch, depth + 1) < 0)
            return -EINVAL;
        skip_ws(p);
        int c = peek(p);
        p->pos++;
        if (c == (unsigned char)close)
            return 0;
        if (c != ',')
            return fail_at(p, p->pos - 1, "expected ',' or '%c'", close);
    }
}

static int parse_value(parser *p, jvalue *v, unsigned depth)
{
    skip_ws(p);
    v->col = p->pos + 1;
    int c = peek(p);
    switch (c) {
    case '"':
        return parse_string(p, v);
    case '[':
    case '{':
        v->type = J_OTHER;
        return parse_container(p, depth);
    case 't':
        v->type = J_OTHER;
        return parse_literal(p, "true");
    case 'f':
        v->type = J_OTHER;
        return parse_literal(p, "false");
    case 'n':
        v->type = J_OTHER;
        return parse_literal(p, "null");
    default:
        if (c == '-' || is_digit(c))
            return parse_number(p, v);
        return fail_at(p, p->pos, c < 0 ? "value missing at end of line" : "invalid value");
    }
}

/* An unsigned integer no larger than @max. */
static int value_to_uint(parser *p, const jvalue *v, const char *key, uint64_t max, uint64_t *out)
{
    if (v->type != J_INT || v->overflow || (v->negative && v->magnitude != 0) || v->magnitude > max)
        return fail_at(p, v->col - 1, "\"%s\" must be an integer from 0 to %" G_GUINT64_FORMAT, key,
                       max);
    *out = v->magnitude;
    return 0;
}

static int value_to_field(parser *p, const jvalue *v, const trace_field_info *f, uint64_t *out)
{
    switch (f->kind) {
    case TRACE_KIND_I32:
        if (v->type != J_INT || v->overflow ||
            v->magnitude > (v->negative ? (uint64_t)INT32_MAX + 1 : (uint64_t)INT32_MAX))
            return fail_at(p, v->col - 1, "\"%s\" must be an integer from %d to %d", f->name,
                           INT32_MIN, INT32_MAX);
        *out = v->negative ? (uint64_t)(-(int64_t)v->magnitude) : v->magnitude;
        return 0;
    case TRACE_KIND_ADDR: {
        uint64_t a = 0;
        bool ok = v->type == J_STRING && !v->str_long && v->str_len > 2 && v->str_len <= 18 &&
                  v->str[0] == '0' && (v->str[1] == 'x' || v->str[1] == 'X');
        for (size_t i = 2; ok && i < v->str_len; i++) {
            int d = hex_digit((unsigned char)v->str[i]);
            ok = d >= 0;
            a = a << 4 | (uint64_t)(d & 0xf);
        }
        if (!ok)
            return fail_at(p, v->col - 1, "\"%s\" must be a string of 0x and 1 to 16 hex digits",
                           f->name);
        *out = a;
        return 0;
    }
    case TRACE_KIND_U64:
        return value_to_uint(p, v, f->name, UINT64_MAX, out);
    case TRACE_KIND_U32:
    case TRACE_KIND_FLAGS:
    case TRACE_KIND_REQ:
    case TRACE_KIND_STATUS:
        return value_to_uint(p, v, f->name, UINT32_MAX, out);
    }
    return fail_at(p, v->col - 1, "\"%s\" has an unknown kind", f->name);
}

/* The value of "event": a known event name. */
static int event_from_value(parser *p, const jvalue *v, trace_event_id *id)
{
    if (v->type != J_STRING)
        return fail_at(p, v->col - 1, "\"event\" must be a string");
    if (v->str_long || trace_event_lookup(v->str, v->str_len, id) < 0)
        return fail_at(p, v->col - 1, "unknown event \"%s%s\"", v->str, v->str_long ? "..." : "");
    return 0;
}

/*
 * Walks the top-level object. The first pass (@fields NULL) checks the
 * syntax and reads "ts" and "event" into @ev; the second, knowing the
 * event's fields, stores them. Two passes let "event" come anywhere.
 */
static int walk_object(parser *p, trace_event *ev, const trace_field_info *fields, unsigned count)
{
    bool have_ts = false, have_event = false;
    uint32_t seen = 0;
    jvalue key, val;

    _Static_assert(TRACE_MAX_FIELDS <= 32, "seen is a 32-bit mask");
    p->pos = 0;
    if (expect(p, '{', "'{' starting the event object") < 0)
        return -EINVAL;
    skip_ws(p);
    if (peek(p) == '}') {
        p->pos++;
        goto done;
    }
    for (;;) {
        skip_ws(p);
        if (peek(p) != '"')
            return fail_at(p, p->pos, "expected a string key");
        size_t key_pos = p->pos;
        if (parse_string(p, &key) < 0 || expect(p, ':', "':' after a key") < 0 ||
            parse_value(p, &val, 1) < 0)
            return -EINVAL;
        if (!fields && !key.str_long && strcmp(key.str, "ts") == 0) {
            if (have_ts)
                return fail_at(p, key_pos, "duplicate key \"ts\"");
            have_ts = true;
            if (value_to_uint(p, &val, "ts", UINT64_MAX, &ev->ts_ns) < 0)
                return -EINVAL;
        } else if (!fields && !key.str_long && strcmp(key.str, "event") == 0) {
            if (have_event)
                return fail_at(p, key_pos, "duplicate key \"event\"");
            have_event = true;
            if (event_from_value(p, &val, &ev->id) < 0)
                return -EINVAL;
        } else if (fields && !key.str_long) {
            for (unsigned i = 0; i < count; i++) {
                if (strcmp(key.str, fields[i].name) != 0)
                    continue;
                if (seen & (1u << i))
                    return fail_at(p, key_pos, "duplicate key \"%s\"", fields[i].name);
                seen |= 1u << i;
                uint64_t x;
                if (value_to_field(p, &val, &fields[i], &x) < 0)
                    return -EINVAL;
                trace_field_store(ev, &fields[i], x);
                break;
            }
        }
        skip_ws(p);
        int c = peek(p);
        if (c == '}') {
            p->pos++;
            break;
        }
        if (c != ',')
            return fail_at(p, p->pos, "expected ',' or '}'");
        p->pos++;
    }
done:
    skip_ws(p);
    if (p->pos != p->len)
        return fail_at(p, p->pos, "text after the event object");
    if (!fields) {
        if (!have_event)
            return fail_at(p, 0, "no \"event\" key");
        if (!have_ts)
            return fail_at(p, 0, "no \"ts\" key");
        return 0;
    }
    for (unsigned i = 0; i < count; i++) {
        if (!(seen & (1u << i)))
            return fail_at(p, p->len, "missing field \"%s\" of event %s", fields[i].name,
                           trace_event_name(ev->id));
    }
    return 0;
}

int trace_event_parse_json(const char *line, size_t len, trace_event *ev, GError **error)
{
    parser p = {line, len, 0, error};

    if (len == 0 || (len == 1 && line[0] == '\n'))
        return fail_at(&p, 0, "empty line");
    /* Also refuses NUL bytes, which would end the line early for C tools. */
    if (!g_utf8_validate(line, (gssize)len, NULL))
        return fail_at(&p, 0, "not valid UTF-8");
    memset(ev, 0, sizeof(*ev));
    if (walk_object(&p, ev, NULL, 0) < 0)
        return -EINVAL;
    unsigned count;
    const trace_field_info *fields = trace_event_fields(ev->id, &count);
    return walk_object(&p, ev, fields, count);
}

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
#if defined(__SSE2__) && defined(__x86_64__)
#include <emmintrin.h>
#endif

#include "shared.h"
#include "trace-internal.h"

/* ------------------------------------------------------------------ */
/* Writing                                                             */
/* ------------------------------------------------------------------ */

/*
 * The writers below store through a plain pointer and return the end of
 * what they wrote, without bounds checks: every line is formatted into
 * at least TRACE_LINE_MAX bytes, which the compile-time bound checked
 * after the event functions shows to be enough for every event. The
 * writer thread formats every line of a trace file, so these loops are
 * its cost per event.
 */

static inline unsigned decimal_digits(uint64_t v)
{
    static const uint64_t pow10[20] = {
        1u,
        10u,
        100u,
        1000u,
        10000u,
        100000u,
        1000000u,
        10000000u,
        100000000u,
        1000000000u,
        10000000000u,
        100000000000u,
        1000000000000u,
        10000000000000u,
        100000000000000u,
        1000000000000000u,
        10000000000000000u,
        100000000000000000u,
        1000000000000000000u,
        10000000000000000000u,
    };
    /* log10 from the bit length (1233 / 4096 ~ log10(2)), then one
     * comparison fixes the rounding. */
    unsigned t = ((64u - (unsigned)__builtin_clzll(v | 1)) * 1233u) >> 12;
    unsigned n = t + 1 - (v < pow10[t]);
    return n ? n : 1;
}

/*
 * The 8 decimal digits of @v < 10^8, leading zeros included, as ASCII
 * bytes in a register, the first digit in the lowest byte. The divisions
 * by 10^4, 10^2 and 10 run on every part at once (multiply-and-shift
 * reciprocals, exact below 10^8), with no table and no chain of one
 * division per digit.
 */
static inline uint64_t ascii8(uint32_t v)
{
    uint64_t x = v;
    uint64_t abcd_efgh = x + (0x100000000u - 10000u) * ((x * 0x68db8bbu) >> 40);
    uint64_t ab_cd_ef_gh =
        abcd_efgh + (0x10000u - 100u) * (((abcd_efgh * 0x147bu) >> 19) & 0x7f0000007fu);
    uint64_t a_b_c_d_e_f_g_h =
        ab_cd_ef_gh + (0x100u - 10u) * (((ab_cd_ef_gh * 0x67u) >> 10) & 0xf000f000f000fu);
    uint64_t le = a_b_c_d_e_f_g_h + 0x3030303030303030u;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return __builtin_bswap64(le);
#else
    return le;
#endif
}

/* Stores the last @n (1 to 8) of the digits @ascii holds, with one 8-byte
 * store: the bytes past them are scratch that what follows overwrites
 * (every line buffer leaves VALUE_MAX bytes per value). */
static inline char *store_last(char *p, uint64_t ascii, unsigned n)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t x = ascii >> (8 * (8 - n));
#else
    uint64_t x = ascii << (8 * (8 - n));
#endif
    memcpy(p, &x, 8);
    return p + n;
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

static inline char *w_u64(char *p, uint64_t v)
{
    /* Most fields (types, IDs, statuses, flags) are one or two digits. */
    if (v < 10) {
        *p = (char)('0' + v);
        return p + 1;
    }
    if (v < 100) {
        memcpy(p, &digit_pairs[v * 2], 2);
        return p + 2;
    }
    if (v < 100000000u)
        return store_last(p, ascii8((uint32_t)v), decimal_digits(v));
    uint64_t low;
    if (v < 10000000000000000u) {
        uint64_t high = v / 100000000u;
        p = store_last(p, ascii8((uint32_t)high), decimal_digits(high));
        low = v % 100000000u;
    } else {
        uint64_t top = v / 10000000000000000u; /* at most 1844 */
        uint64_t rest = v % 10000000000000000u;
        p = store_last(p, ascii8((uint32_t)top), decimal_digits(top));
        uint64_t mid = ascii8((uint32_t)(rest / 100000000u));
        memcpy(p, &mid, 8);
        p += 8;
        low = rest % 100000000u;
    }
    uint64_t lo = ascii8((uint32_t)low);
    memcpy(p, &lo, 8);
    return p + 8;
}

static inline char *w_i64(char *p, int64_t v)
{
    if (v < 0) {
        *p++ = '-';
        return w_u64(p, -(uint64_t)v);
    }
    return w_u64(p, (uint64_t)v);
}

#if defined(__SSE2__) && defined(__x86_64__)
/*
 * The 16 hex digits of @v, lower case, leading zeros included, as the
 * ASCII bytes of two registers in the order ascii8 gives (*hi the first
 * eight): every byte split into its two nibbles, interleaved, and '0' or
 * 'a' - 10 added to all sixteen at once.
 */
static inline void hex16(uint64_t v, uint64_t *hi, uint64_t *lo)
{
    __m128i x = _mm_cvtsi64_si128((long long)__builtin_bswap64(v));
    __m128i mask = _mm_set1_epi8(0x0f);
    __m128i high = _mm_and_si128(_mm_srli_epi16(x, 4), mask);
    __m128i digits = _mm_unpacklo_epi8(high, _mm_and_si128(x, mask));
    __m128i letters =
        _mm_and_si128(_mm_cmpgt_epi8(digits, _mm_set1_epi8(9)), _mm_set1_epi8('a' - '0' - 10));
    digits = _mm_add_epi8(digits, _mm_add_epi8(letters, _mm_set1_epi8('0')));
    *hi = (uint64_t)_mm_cvtsi128_si64(digits);
    *lo = (uint64_t)_mm_cvtsi128_si64(_mm_srli_si128(digits, 8));
}

/* "0x" and the hex digits of @v, lower case, no leading zeros. */
static inline char *w_hex(char *p, uint64_t v)
{
    unsigned n = v ? (unsigned)(67 - __builtin_clzll(v)) / 4 : 1;
    uint64_t hi, lo;
    hex16(v, &hi, &lo);
    p[0] = '0';
    p[1] = 'x';
    p += 2;
    if (n <= 8)
        return store_last(p, lo, n);
    p = store_last(p, hi, n - 8);
    memcpy(p, &lo, 8);
    return p + 8;
}
#else
static const char hex_pairs[] = "000102030405060708090a0b0c0d0e0f"
                                "101112131415161718191a1b1c1d1e1f"
                                "202122232425262728292a2b2c2d2e2f"
                                "303132333435363738393a3b3c3d3e3f"
                                "404142434445464748494a4b4c4d4e4f"
                                "505152535455565758595a5b5c5d5e5f"
                                "606162636465666768696a6b6c6d6e6f"
                                "707172737475767778797a7b7c7d7e7f"
                                "808182838485868788898a8b8c8d8e8f"
                                "909192939495969798999a9b9c9d9e9f"
                                "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"
                                "b0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
                                "c0c1c2c3c4c5c6c7c8c9cacbcccdcecf"
                                "d0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
                                "e0e1e2e3e4e5e6e7e8e9eaebecedeeef"
                                "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";

/* "0x" and the hex digits of @v, lower case, no leading zeros. */
static inline char *w_hex(char *p, uint64_t v)
{
    unsigned n = v ? (unsigned)(67 - __builtin_clzll(v)) / 4 : 1;
    p[0] = '0';
    p[1] = 'x';
    char *end = p + 2 + n, *q = end;
    while (q - (p + 2) >= 2) {
        q -= 2;
        memcpy(q, &hex_pairs[(v & 0xff) * 2], 2);
        v >>= 8;
    }
    if (q > p + 2)
        *--q = hex_pairs[(v & 0xf) * 2 + 1];
    return end;
}
#endif

/* A string literal: its length is a constant, so the copy is a few moves. */
#define W_CONST(p, str) (memcpy((p), (str), sizeof(str) - 1), (p) + sizeof(str) - 1)

static const char *const request_names[] = {
    [1] = "ATTACH", [2] = "DETACH", [3] = "MAP", [4] = "UNMAP", [5] = "PROBE",
};

static const char *const status_names[] = {
    [0] = "OK",    [1] = "IOERR", [2] = "UNSUPP", [3] = "DEVERR", [4] = "INVAL",
    [5] = "RANGE", [6] = "NOENT", [7] = "FAULT",  [8] = "NOMEM",
};

static inline char *w_named(char *p, uint64_t v, const char *const *names, size_t count)
{
    if (v < count && names[v]) {
        size_t n = strlen(names[v]);
        memcpy(p, names[v], n);
        return p + n;
    }
    return w_u64(p, v);
}

static inline char *w_json_addr(char *p, uint64_t v)
{
    *p++ = '"';
    p = w_hex(p, v);
    *p++ = '"';
    return p;
}

/* One value of each kind, in each format. */
#define w_text_U32(p, v) w_u64((p), (v))
#define w_text_U64(p, v) w_u64((p), (v))
#define w_text_I32(p, v) w_i64((p), (v))
#define w_text_ADDR(p, v) w_hex((p), (v))
#define w_text_FLAGS(p, v) w_hex((p), (v))
#define w_text_REQ(p, v) w_named((p), (v), request_names, G_N_ELEMENTS(request_names))
#define w_text_STATUS(p, v) w_named((p), (v), status_names, G_N_ELEMENTS(status_names))

#define w_json_U32(p, v) w_u64((p), (v))
#define w_json_U64(p, v) w_u64((p), (v))
#define w_json_I32(p, v) w_i64((p), (v))
#define w_json_ADDR(p, v) w_json_addr((p), (v))
#define w_json_FLAGS(p, v) w_u64((p), (v))
#define w_json_REQ(p, v) w_u64((p), (v))
#define w_json_STATUS(p, v) w_u64((p), (v))

/* The most bytes a value of any kind takes in either format (a sign and
 * 20 decimal digits, "0x" and 16 hex digits in quotes, a name), and the
 * most w_u64 stores. */
#define VALUE_MAX 21

/*
 * One formatting function per event and format, generated from the event
 * list: every key is a literal and every field is read from its typed
 * struct, with no table walk per field.
 */
#define TEXT_FIELD_(k, fname, fdoc)                                                                \
    p = W_CONST(p, " " #fname "=");                                                                \
    p = w_text_##k(p, f->fname);
#define JSON_FIELD_(k, fname, fdoc)                                                                \
    p = W_CONST(p, ",\"" #fname "\":");                                                            \
    p = w_json_##k(p, f->fname);
#define FORMAT_FNS_(name, doc)                                                                     \
    static char *text_##name(char *p, const trace_##name##_fields *f)                              \
    {                                                                                              \
        p = W_CONST(p, " " #name);                                                                 \
        TRACE_FIELDS_##name(TEXT_FIELD_, TRACE_SEP_NONE) return p;                                 \
    }                                                                                              \
    static char *json_##name(char *p, const trace_##name##_fields *f)                              \
    {                                                                                              \
        p = W_CONST(p, ",\"event\":\"" #name "\"");                                                \
        TRACE_FIELDS_##name(JSON_FIELD_, TRACE_SEP_NONE) return p;                                 \
    }
TRACE_EVENT_LIST(FORMAT_FNS_)

/* The longest line of each event, from its keys and VALUE_MAX per value:
 * "{"ts":" (6) or "<s>.<9 digits>" (31) before, "}\n" and the NUL after. */
#define FIELD_MAX_(k, fname, fdoc) +sizeof(",\"" #fname "\":") + VALUE_MAX
#define LINE_MAX_CHECK_(name, doc)                                                                 \
    _Static_assert(                                                                                \
        32 + sizeof(",\"event\":\"" #name "\"") TRACE_FIELDS_##name(FIELD_MAX_, TRACE_SEP_NONE) +  \
                3 <=                                                                               \
            TRACE_LINE_MAX,                                                                        \
        "the longest line of event " #name " exceeds TRACE_LINE_MAX");
TRACE_EVENT_LIST(LINE_MAX_CHECK_)

#define TEXT_CASE_(name, doc)                                                                      \
    case TRACE_EV_##name:                                                                          \
        p = text_##name(p, &ev->u.name);                                                           \
        break;
#define JSON_CASE_(name, doc)                                                                      \
    case TRACE_EV_##name:                                                                          \
        p = json_##name(p, &ev->u.name);                                                           \
        break;

/* Writes what a line with time @ts_ns starts with at @p. Returns its end. */
static char *format_ts(char *p, uint64_t ts_ns, trace_format format)
{
    if (format == TRACE_FORMAT_TEXT) {
        p = w_u64(p, ts_ns / 1000000000u);
        *p++ = '.';
        uint64_t frac = ts_ns % 1000000000u;
        *p++ = (char)('0' + frac / 100000000u);
        uint64_t digits = ascii8((uint32_t)(frac % 100000000u));
        memcpy(p, &digits, 8);
        return p + 8;
    }
    return w_u64(W_CONST(p, "{\"ts\":"), ts_ns);
}

/* Writes the rest of @ev's line after its time, newline included, at @p;
 * @ev->id is an event. Returns the end of the line. */
static inline __attribute__((always_inline)) char *format_after_ts(char *p, const trace_event *ev,
                                                                   trace_format format)
{
    if (format == TRACE_FORMAT_TEXT) {
        switch (ev->id) {
            TRACE_EVENT_LIST(TEXT_CASE_)
        case TRACE_EVENT_COUNT:
            break;
        }
    } else {
        switch (ev->id) {
            TRACE_EVENT_LIST(JSON_CASE_)
        case TRACE_EVENT_COUNT:
            break;
        }
        *p++ = '}';
    }
    *p++ = '\n';
    return p;
}

/* Writes @ev's line with time @ts_ns, newline included, at @p, which has
 * TRACE_LINE_MAX bytes; @ev->id is an event. Returns the end of the
 * line. */
static char *format_line(char *p, const trace_event *ev, uint64_t ts_ns, trace_format format)
{
    return format_after_ts(format_ts(p, ts_ns, format), ev, format);
}

int trace_event_format(const trace_event *ev, trace_format format, char *buf, size_t size)
{
    if ((unsigned)ev->id >= TRACE_EVENT_COUNT ||
        (format != TRACE_FORMAT_TEXT && format != TRACE_FORMAT_JSONL))
        return -EINVAL;

    /* Format in place when the buffer is known to be large enough; else
     * into a local line so a short buffer still gets a clean prefix. */
    char local[TRACE_LINE_MAX];
    char *dst = size >= TRACE_LINE_MAX ? buf : local;
    size_t n = (size_t)(format_line(dst, ev, ev->ts_ns, format) - dst);
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

size_t trace_ts_format_at(uint64_t ts_ns, trace_format format, char *buf)
{
    return (size_t)(format_ts(buf, ts_ns, format) - buf);
}

size_t trace_event_format_after_ts(const trace_event *ev, trace_format format, char *buf)
{
    return (size_t)(format_after_ts(buf, ev, format) - buf);
}

/*
 * The request_received lines of a ring slot that carries a run of them
 * (TRACE_RING_RECEIVED_RUN). In JSON Lines every line of the run is the
 * same but for its type and size, so the rest ("ts", "event", "batch") is
 * formatted once: the lines are those json_request_received writes,
 * fields in definition order (a test compares them).
 */
_Static_assert(sizeof(trace_request_received_fields) == 16,
               "request_received has the fields trace_received_run_format_at writes");

size_t trace_received_run_format_at(const trace_event *slot, uint64_t ts_ns, trace_format format,
                                    char *buf)
{
    trace_received_run run;
    memcpy(&run, &slot->u, sizeof(run));
    unsigned n = run.count < TRACE_RECEIVED_PER_SLOT ? run.count : TRACE_RECEIVED_PER_SLOT;
    char *p = buf;
    if (format != TRACE_FORMAT_JSONL) {
        trace_event ev = {.id = TRACE_EV_request_received};
        for (unsigned i = 0; i < n; i++) {
            ev.u.request_received =
                (trace_request_received_fields){run.type[i], run.size[i], run.batch};
            p = format_line(p, &ev, ts_ns, format);
        }
        return (size_t)(p - buf);
    }
    /* VALUE_MAX bytes of room after each value, as in a line buffer. */
    char head[64 + VALUE_MAX], tail[32 + VALUE_MAX];
    char *h = W_CONST(head, "{\"ts\":");
    h = w_u64(h, ts_ns);
    h = W_CONST(h, ",\"event\":\"request_received\",\"type\":");
    char *t = W_CONST(tail, ",\"batch\":");
    t = w_u64(t, run.batch);
    t = W_CONST(t, "}\n");
    size_t hn = (size_t)(h - head), tn = (size_t)(t - tail);
    for (unsigned i = 0; i < n; i++) {
        memcpy(p, head, hn);
        p = w_u64(p + hn, run.type[i]);
        p = W_CONST(p, ",\"size\":");
        p = w_u64(p, run.size[i]);
        memcpy(p, tail, tn);
        p += tn;
    }
    return (size_t)(p - buf);
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
                uint64_t x = 0;
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

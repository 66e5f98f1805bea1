/* SPDX-License-Identifier: MIT */
/*
 * trace.c - the event table, the fire functions with their USDT probes,
 * and the outputs (text and JSON Lines streams, a callback) with their
 * run-time configuration. The line formats are in trace_format.c.
 */
#include <errno.h>
#include <glib.h>
#include <pthread.h>
#include <sched.h>
#include <stddef.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "shared.h"
#include "trace-internal.h"

/* Every probe has a semaphore (viommu_<name>_semaphore, in the .probes
 * section where tracers look for it): TRACE() tests it, so attaching a
 * tracer turns the event on without any call into the library. */
#define _SDT_HAS_SEMAPHORES 1

#if HAVE_USDT
#include <sys/sdt.h>
/* STAP_PROBE<N> for the number of fields (sdt.h's STAP_PROBEV needs
 * SDT_USE_VARIADIC and a GNU comma extension). Expanding through these
 * helpers also turns a field list into separate arguments first. */
#define TRACE_NARG_(...) TRACE_NARG_AT_(__VA_ARGS__, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0)
#define TRACE_NARG_AT_(a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, n, ...) n
#define TRACE_PROBE_N_(n, name, ...) STAP_PROBE##n(viommu, name, __VA_ARGS__)
#define TRACE_PROBE_(n, name, ...) TRACE_PROBE_N_(n, name, __VA_ARGS__)
#define TRACE_USDT_(name, ...) TRACE_PROBE_(TRACE_NARG_(__VA_ARGS__), name, __VA_ARGS__)
#else
#define TRACE_USDT_(name, ...) ((void)0)
#endif

/* ------------------------------------------------------------------ */
/* Event table                                                         */
/* ------------------------------------------------------------------ */

#define FIELD_INFO_(k, fname, fdoc)                                                                \
    {                                                                                              \
        .name = #fname, .doc = fdoc, .kind = TRACE_KIND_##k,                                       \
        .offset = offsetof(cur_fields_t, fname), .size = sizeof(((cur_fields_t *)0)->fname),       \
    }

/* One function per event holds its field table: the local typedef lets
 * the field list, which knows only field names, reach the event's struct. */
#define FIELDS_FN_(name, doc)                                                                      \
    static const trace_field_info *fields_of_##name(unsigned *count)                               \
    {                                                                                              \
        typedef trace_##name##_fields cur_fields_t;                                                \
        static const trace_field_info fields[] = {                                                 \
            TRACE_FIELDS_##name(FIELD_INFO_, TRACE_SEP_COMMA)};                                    \
        _Static_assert(sizeof(fields) / sizeof(fields[0]) <= TRACE_MAX_FIELDS,                     \
                       "too many fields in event " #name);                                         \
        *count = sizeof(fields) / sizeof(fields[0]);                                               \
        return fields;                                                                             \
    }
TRACE_EVENT_LIST(FIELDS_FN_)

typedef struct event_def {
    const char *name;
    const char *doc;
    const trace_field_info *(*fields)(unsigned *count);
} event_def;

#define EVENT_DEF_(name, doc) [TRACE_EV_##name] = {#name, doc, fields_of_##name},
static const event_def events[TRACE_EVENT_COUNT] = {TRACE_EVENT_LIST(EVENT_DEF_)};

const char *trace_event_name(trace_event_id id)
{
    if ((unsigned)id >= TRACE_EVENT_COUNT)
        return NULL;
    return events[id].name;
}

const char *trace_event_doc(trace_event_id id)
{
    if ((unsigned)id >= TRACE_EVENT_COUNT)
        return NULL;
    return events[id].doc;
}

int trace_event_lookup(const char *name, size_t len, trace_event_id *id)
{
    for (unsigned i = 0; i < TRACE_EVENT_COUNT; i++) {
        if (strlen(events[i].name) == len && memcmp(events[i].name, name, len) == 0) {
            *id = (trace_event_id)i;
            return 0;
        }
    }
    return -ENOENT;
}

const trace_field_info *trace_event_fields(trace_event_id id, unsigned *count)
{
    if ((unsigned)id >= TRACE_EVENT_COUNT) {
        *count = 0;
        return NULL;
    }
    return events[id].fields(count);
}

int trace_event_field_value(const trace_event *ev, unsigned index, uint64_t *value)
{
    unsigned n;
    const trace_field_info *f = trace_event_fields(ev->id, &n);
    if (!f || index >= n)
        return -EINVAL;
    *value = trace_field_load(ev, &f[index]);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Outputs                                                             */
/* ------------------------------------------------------------------ */

int trace_enabled_flag;

/* Defined whether or not probes are built, so TRACE() is the same for
 * every build; without probes they stay 0. */
#define SEMAPHORE_DEF_(name, doc)                                                                  \
    __attribute__((section(".probes"))) unsigned short viommu_##name##_semaphore;
TRACE_EVENT_LIST(SEMAPHORE_DEF_)

typedef struct stream_out {
    FILE *file;
    bool threaded; /* a file trace_open_path opened: the writer thread's */
    int err;       /* first write error since the last flush, negative errno */
} stream_out;

/*
 * The configuration lock guards the outputs' configuration and the
 * synchronous outputs (FILE streams that trace_set_stream set, the
 * callback): events reach those one at a time, so lines never
 * interleave. (POSIX threads rather than GMutex: ThreadSanitizer
 * understands them.) Events bound for the files trace_open_path opened
 * take no lock: each thread copies them into a ring of its own, which the
 * writer thread drains (trace_writer.c).
 */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static stream_out streams[2];
static trace_callback_fn callback;
static void *callback_opaque;
static bool usdt_on;
/* Nonzero while a stream or the callback is on: with USDT alone, the fire
 * functions return after the probe. */
static int outputs_on;
/* Nonzero while a synchronous output is on: events then go through the
 * configuration lock. */
static int sync_on;
/* Nonzero while a file output is on: events then go into the rings. */
static int files_on;
/* Guarded by the configuration lock. */
static uint64_t start_ns;
static uint64_t sync_last_ts; /* the latest timestamp given to a synchronous output */

/* The calling thread's ring, made at its first event for a file. */
static __thread trace_ring *thread_ring __attribute__((tls_model("initial-exec")));
static pthread_key_t ring_key;
static pthread_once_t ring_key_once = PTHREAD_ONCE_INIT;

static void ring_thread_exit(void *r)
{
    trace_ring_retire(r);
}

static void ring_key_init(void)
{
    if (pthread_key_create(&ring_key, ring_thread_exit) != 0)
        abort(); /* only when the process has no keys left */
}

static trace_ring *thread_ring_new(void)
{
    pthread_once(&ring_key_once, ring_key_init);
    trace_ring *r = trace_ring_new();
    pthread_setspecific(ring_key, r);
    thread_ring = r;
    return r;
}

/* The calling thread's ring, made at its first event for a file. */
static inline trace_ring *ring_for_event(void)
{
    trace_ring *r = thread_ring;
    if (__builtin_expect(r == NULL, 0))
        r = thread_ring_new();
    return r;
}

trace_ring *trace_thread_ring(void)
{
    if (!__atomic_load_n(&files_on, __ATOMIC_RELAXED) ||
        __atomic_load_n(&sync_on, __ATOMIC_RELAXED))
        return NULL;
    return ring_for_event();
}

static uint64_t monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * The trace clock: CLOCK_MONOTONIC, read through the TSC where that is
 * safe. clock_gettime() costs about three TSC reads here, and an event
 * needs one reading, so on the request path it was the largest part of
 * an event's cost.
 *
 * The TSC is used only on x86-64 when the kernel's own clocksource is
 * "tsc" (the kernel found it invariant and synchronized across CPUs, so
 * CLOCK_MONOTONIC is itself computed from it), unless VIOMMU_TRACE_TSC=0
 * is set. A reading is anchor_ns + (tsc - anchor_tsc) * rate. The rate is
 * measured against CLOCK_MONOTONIC from the first reading on, so its error
 * shrinks as the baseline grows; the anchor is moved to a fresh
 * CLOCK_MONOTONIC reading whenever the last one is older than the
 * recalibration interval (1 ms at first, doubling to 100 ms). A reading
 * is therefore CLOCK_MONOTONIC to within the rate error over one
 * interval (microseconds at first, nanoseconds once the baseline is
 * seconds long); a re-anchoring may move it back by that much, which the
 * outputs absorb (timestamps never decrease in a file) and latencies
 * saturate at 0.
 */
#if defined(__x86_64__)
#include <x86intrin.h>

/* 64x64-bit products and 96-bit dividends of the fixed-point rate. */
__extension__ typedef unsigned __int128 u128;

typedef struct tsc_clock {
    /* Seqlock: odd while the parameters below change. */
    unsigned seq;
    uint64_t anchor_tsc;
    uint64_t anchor_ns;
    uint64_t rate;     /* nanoseconds per tick, 32.32 fixed point */
    uint64_t next_tsc; /* recalibrate from this tick on */
} tsc_clock;

static tsc_clock tscc;
static int tsc_state; /* 0 not decided, 1 in use, 2 not used */
static int tsc_updating;
static uint64_t first_tsc, first_ns; /* the long baseline */
static uint64_t interval_ns = 1000000;

static bool tsc_usable(void)
{
    const char *env = getenv("VIOMMU_TRACE_TSC");
    if (env && strcmp(env, "0") == 0)
        return false;
    char buf[16] = {0};
    FILE *f = fopen("/sys/devices/system/clocksource/clocksource0/current_clocksource", "re");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    return n >= 3 && strncmp(buf, "tsc", 3) == 0 && (buf[3] == '\n' || buf[3] == '\0');
}

/* Takes a (TSC, CLOCK_MONOTONIC) pair with the TSC read on both sides of
 * the clock read, keeping the tightest of a few tries. */
static void tsc_pair(uint64_t *tsc, uint64_t *ns)
{
    uint64_t best = UINT64_MAX;
    *tsc = 0;
    *ns = 0;
    for (int i = 0; i < 5; i++) {
        uint64_t a = __rdtsc();
        uint64_t m = monotonic_ns();
        uint64_t b = __rdtsc();
        if (b - a < best) {
            best = b - a;
            *tsc = a + (b - a) / 2;
            *ns = m;
        }
    }
}

static void tsc_publish(uint64_t anchor_tsc, uint64_t anchor_ns, uint64_t rate, uint64_t next)
{
    unsigned seq = __atomic_load_n(&tscc.seq, __ATOMIC_RELAXED);
    __atomic_store_n(&tscc.seq, seq + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    __atomic_store_n(&tscc.anchor_tsc, anchor_tsc, __ATOMIC_RELAXED);
    __atomic_store_n(&tscc.anchor_ns, anchor_ns, __ATOMIC_RELAXED);
    __atomic_store_n(&tscc.rate, rate, __ATOMIC_RELAXED);
    __atomic_store_n(&tscc.next_tsc, next, __ATOMIC_RELAXED);
    __atomic_store_n(&tscc.seq, seq + 2, __ATOMIC_RELEASE);
}

/* Rate from the first pair to (@tsc, @ns), 32.32 fixed point. */
static uint64_t tsc_rate(uint64_t tsc, uint64_t ns)
{
    uint64_t dt = tsc - first_tsc;
    if (dt == 0)
        return 1ull << 32;
    return (uint64_t)(((u128)(ns - first_ns) << 32) / dt);
}

/* Decides whether to use the TSC and takes the first calibration, over
 * about 50 us so the first interval's readings are already close. */
static void tsc_init(void)
{
    if (!tsc_usable()) {
        __atomic_store_n(&tsc_state, 2, __ATOMIC_RELEASE);
        return;
    }
    tsc_pair(&first_tsc, &first_ns);
    uint64_t tsc, ns;
    do
        tsc_pair(&tsc, &ns);
    while (ns - first_ns < 50000);
    uint64_t rate = tsc_rate(tsc, ns);
    if (tsc <= first_tsc || rate == 0) {
        __atomic_store_n(&tsc_state, 2, __ATOMIC_RELEASE);
        return;
    }
    uint64_t ticks = (uint64_t)(((u128)interval_ns << 32) / rate);
    tsc_publish(tsc, ns, rate, tsc + ticks);
    __atomic_store_n(&tsc_state, 1, __ATOMIC_RELEASE);
}

/* Re-anchors the clock; one thread at a time, the others keep reading
 * with the parameters they have. Returns true when it published new
 * ones. */
static bool tsc_recalibrate(void)
{
    if (__atomic_exchange_n(&tsc_updating, 1, __ATOMIC_ACQUIRE))
        return false;
    uint64_t tsc, ns;
    tsc_pair(&tsc, &ns);
    uint64_t rate = tsc_rate(tsc, ns);
    if (interval_ns < 100000000)
        interval_ns *= 2;
    if (rate != 0) {
        uint64_t ticks = (uint64_t)(((u128)interval_ns << 32) / rate);
        tsc_publish(tsc, ns, rate, tsc + ticks);
    }
    __atomic_store_n(&tsc_updating, 0, __ATOMIC_RELEASE);
    return rate != 0;
}

static pthread_once_t tsc_once = PTHREAD_ONCE_INIT;

uint64_t trace_now_ns(void)
{
    int state = __atomic_load_n(&tsc_state, __ATOMIC_ACQUIRE);
    if (__builtin_expect(state == 0, 0)) {
        pthread_once(&tsc_once, tsc_init);
        state = __atomic_load_n(&tsc_state, __ATOMIC_ACQUIRE);
    }
    if (state != 1)
        return monotonic_ns();
    for (;;) {
        unsigned seq = __atomic_load_n(&tscc.seq, __ATOMIC_ACQUIRE);
        uint64_t tsc = __rdtsc();
        uint64_t anchor_tsc = __atomic_load_n(&tscc.anchor_tsc, __ATOMIC_RELAXED);
        uint64_t anchor_ns = __atomic_load_n(&tscc.anchor_ns, __ATOMIC_RELAXED);
        uint64_t rate = __atomic_load_n(&tscc.rate, __ATOMIC_RELAXED);
        uint64_t next = __atomic_load_n(&tscc.next_tsc, __ATOMIC_RELAXED);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if ((seq & 1) || __atomic_load_n(&tscc.seq, __ATOMIC_RELAXED) != seq)
            continue;
        if (__builtin_expect(tsc >= next, 0) && tsc_recalibrate())
            continue;
        /* Read on a CPU a few ticks behind the one that anchored. */
        if (tsc < anchor_tsc)
            return anchor_ns;
        return anchor_ns + (uint64_t)(((u128)(tsc - anchor_tsc) * rate) >> 32);
    }
}
#else
uint64_t trace_now_ns(void)
{
    return monotonic_ns();
}
#endif

static void update_enabled_locked(void)
{
    bool outputs = streams[TRACE_FORMAT_TEXT].file || streams[TRACE_FORMAT_JSONL].file || callback;
    bool sync = callback ||
                (streams[TRACE_FORMAT_TEXT].file && !streams[TRACE_FORMAT_TEXT].threaded) ||
                (streams[TRACE_FORMAT_JSONL].file && !streams[TRACE_FORMAT_JSONL].threaded);
    bool files = streams[TRACE_FORMAT_TEXT].threaded || streams[TRACE_FORMAT_JSONL].threaded;
    bool on = outputs || usdt_on;
    if (on && !trace_enabled_flag) {
        start_ns = trace_now_ns();
        sync_last_ts = 0;
    }
    __atomic_store_n(&files_on, files ? 1 : 0, __ATOMIC_RELAXED);
    __atomic_store_n(&sync_on, sync ? 1 : 0, __ATOMIC_RELAXED);
    __atomic_store_n(&outputs_on, outputs ? 1 : 0, __ATOMIC_RELAXED);
    __atomic_store_n(&trace_enabled_flag, on ? 1 : 0, __ATOMIC_RELAXED);
}

/* Detaches @s, flushes it, and closes it when the library opened it. */
static int stream_release_locked(stream_out *s)
{
    stream_out old = *s;
    int err = old.err;

    *s = (stream_out){0};
    update_enabled_locked();
    if (old.threaded) {
        int e = trace_files_detach((trace_format)(s - streams));
        if (err == 0)
            err = e;
    } else if (old.file) {
        errno = 0;
        if (fflush(old.file) != 0 && err == 0)
            err = errno ? -errno : -EIO;
    }
    return err;
}

/* The synchronous outputs, under the configuration lock. @now is the
 * trace clock time of the event; timestamps are made non-decreasing in
 * the order events reach these outputs. */
static void dispatch_sync(trace_event *ev, uint64_t now)
{
    char line[TRACE_LINE_MAX];

    pthread_mutex_lock(&lock);
    /* Outputs may have been turned off between the caller's test and here. */
    if (!outputs_on)
        goto out;
    uint64_t ts = now > start_ns ? now - start_ns : 0;
    if (ts < sync_last_ts)
        ts = sync_last_ts;
    sync_last_ts = ts;
    ev->ts_ns = ts;
    for (unsigned f = 0; f < G_N_ELEMENTS(streams); f++) {
        stream_out *s = &streams[f];
        if (!s->file || s->threaded)
            continue;
        int n = trace_event_format(ev, (trace_format)f, line, sizeof(line));
        if (n < 0) {
            if (s->err == 0)
                s->err = n;
            continue;
        }
        errno = 0;
        if (fwrite(line, 1, (size_t)n, s->file) != (size_t)n && s->err == 0)
            s->err = errno ? -errno : -EIO;
    }
    if (callback)
        callback(callback_opaque, ev);
out:
    pthread_mutex_unlock(&lock);
}

/* The fire functions: the USDT probe first (a nop unless a tracer is
 * attached), then the outputs. trace_<name>_fire is trace_<name>_fire_at
 * with the time read when the event reaches the outputs. */
#define FIRE_FN_(name, doc)                                                                        \
    void trace_##name##_fire_at(uint64_t ts_ns,                                                    \
                                TRACE_FIELDS_##name(TRACE_F_PARAM, TRACE_SEP_COMMA))               \
    {                                                                                              \
        TRACE_USDT_(name, TRACE_FIELDS_##name(TRACE_F_ARG, TRACE_SEP_COMMA));                      \
        if (!__atomic_load_n(&outputs_on, __ATOMIC_RELAXED))                                       \
            return;                                                                                \
        uint64_t now = ts_ns ? ts_ns : trace_now_ns();                                             \
        if (__atomic_load_n(&files_on, __ATOMIC_RELAXED)) {                                        \
            trace_ring_write_##name(ring_for_event(), now,                                         \
                                    TRACE_FIELDS_##name(TRACE_F_ARG, TRACE_SEP_COMMA));            \
        }                                                                                          \
        if (__atomic_load_n(&sync_on, __ATOMIC_RELAXED)) {                                         \
            trace_event ev = {                                                                     \
                .id = TRACE_EV_##name,                                                             \
                .u.name = {TRACE_FIELDS_##name(TRACE_F_ARG, TRACE_SEP_COMMA)},                     \
            };                                                                                     \
            dispatch_sync(&ev, now);                                                               \
        }                                                                                          \
    }                                                                                              \
    void trace_##name##_fire(TRACE_FIELDS_##name(TRACE_F_PARAM, TRACE_SEP_COMMA))                  \
    {                                                                                              \
        trace_##name##_fire_at(0, TRACE_FIELDS_##name(TRACE_F_ARG, TRACE_SEP_COMMA));              \
    }
#ifdef __clang__
/* sdt.h's own internal macros pass an empty "..." (a GNU extension). */
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wgnu-zero-variadic-macro-arguments"
#endif
TRACE_EVENT_LIST(FIRE_FN_)
#ifdef __clang__
#pragma clang diagnostic pop
#endif

int trace_set_stream(trace_format format, FILE *stream)
{
    if ((unsigned)format >= G_N_ELEMENTS(streams))
        return -EINVAL;
    pthread_mutex_lock(&lock);
    if (streams[format].file)
        stream_release_locked(&streams[format]);
    streams[format].file = stream;
    update_enabled_locked();
    pthread_mutex_unlock(&lock);
    return 0;
}

int trace_open_path(trace_format format, const char *path, GError **error)
{
    if ((unsigned)format >= G_N_ELEMENTS(streams))
        return -EINVAL;
    FILE *f = fopen(path, "we");
    if (!f) {
        int e = errno;
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(e),
                    "cannot open trace file %s: %s", path, g_strerror(e));
        return -e;
    }
    pthread_mutex_lock(&lock);
    if (streams[format].file)
        stream_release_locked(&streams[format]);
    /* The origin is set now if tracing turns on with this file. */
    uint64_t now = trace_now_ns();
    int ret = trace_files_attach(format, f, now, trace_enabled_flag ? start_ns : now);
    if (ret < 0) {
        pthread_mutex_unlock(&lock);
        fclose(f);
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(-ret),
                    "cannot start the writer thread for trace file %s: %s", path, g_strerror(-ret));
        return ret;
    }
    streams[format].file = f;
    streams[format].threaded = true;
    if (!trace_enabled_flag) {
        /* Turned on by this file: the origin the writer was given. */
        start_ns = now;
        sync_last_ts = 0;
        __atomic_store_n(&trace_enabled_flag, 1, __ATOMIC_RELAXED);
    }
    update_enabled_locked();
    pthread_mutex_unlock(&lock);
    return 0;
}

void trace_set_callback(trace_callback_fn fn, void *opaque)
{
    pthread_mutex_lock(&lock);
    callback = fn;
    callback_opaque = fn ? opaque : NULL;
    update_enabled_locked();
    pthread_mutex_unlock(&lock);
}

void trace_set_usdt(bool on)
{
    pthread_mutex_lock(&lock);
    usdt_on = on;
    update_enabled_locked();
    pthread_mutex_unlock(&lock);
}

bool trace_usdt_available(void)
{
    return HAVE_USDT != 0;
}

int trace_flush(void)
{
    pthread_mutex_lock(&lock);
    int ret = 0;
    bool files = false;
    for (unsigned f = 0; f < G_N_ELEMENTS(streams); f++) {
        stream_out *s = &streams[f];
        if (!s->file)
            continue;
        int err = s->err;
        s->err = 0;
        if (s->threaded) {
            files = true;
        } else {
            errno = 0;
            if (fflush(s->file) != 0 && err == 0)
                err = errno ? -errno : -EIO;
        }
        if (err != 0 && ret == 0)
            ret = err;
    }
    if (files) {
        int e = trace_files_flush();
        if (ret == 0)
            ret = e;
    }
    pthread_mutex_unlock(&lock);
    return ret;
}

void trace_stop(void)
{
    pthread_mutex_lock(&lock);
    for (unsigned f = 0; f < G_N_ELEMENTS(streams); f++) {
        if (streams[f].file)
            stream_release_locked(&streams[f]);
    }
    callback = NULL;
    callback_opaque = NULL;
    usdt_on = false;
    update_enabled_locked();
    pthread_mutex_unlock(&lock);
}

uint32_t trace_error_quark(void)
{
    return g_quark_from_static_string("trace-error-quark");
}

/* ------------------------------------------------------------------ */
/* --trace= specifications                                             */
/* ------------------------------------------------------------------ */

typedef enum spec_kind { SPEC_OFF, SPEC_USDT, SPEC_STREAM } spec_kind;

typedef struct spec_item {
    spec_kind kind;
    trace_format format;
    char *path; /* NULL: standard error; "-": standard output */
} spec_item;

static int spec_parse_item(const char *item, spec_item *out, GError **error)
{
    const char *eq = strchr(item, '=');
    size_t key_len = eq ? (size_t)(eq - item) : strlen(item);
    *out = (spec_item){0};

    if (!eq && strcmp(item, "off") == 0) {
        out->kind = SPEC_OFF;
        return 0;
    }
    if (!eq && strcmp(item, "usdt") == 0) {
        out->kind = SPEC_USDT;
        return 0;
    }
    if (key_len == 4 && strncmp(item, "text", 4) == 0)
        out->format = TRACE_FORMAT_TEXT;
    else if (key_len == 5 && strncmp(item, "jsonl", 5) == 0)
        out->format = TRACE_FORMAT_JSONL;
    else
        goto bad;
    if (eq && eq[1] == '\0')
        goto bad;
    out->kind = SPEC_STREAM;
    out->path = eq ? g_strdup(eq + 1) : NULL;
    return 0;
bad:
    g_set_error(error, TRACE_ERROR, TRACE_ERROR_SPEC,
                "unknown trace output \"%s\" (expected usdt, text[=PATH], jsonl[=PATH] or off)",
                item);
    return -EINVAL;
}

int trace_configure(const char *spec, GError **error)
{
    gchar **parts = g_strsplit(spec, ",", -1);
    guint n = g_strv_length(parts);
    spec_item *items = g_new0(spec_item, n ? n : 1);
    int ret = 0;

    /* Check every item before applying any, so a typo changes nothing. */
    for (guint i = 0; i < n; i++) {
        ret = spec_parse_item(parts[i], &items[i], error);
        if (ret < 0)
            goto out;
    }
    if (n == 0) {
        g_set_error(error, TRACE_ERROR, TRACE_ERROR_SPEC, "empty trace specification");
        ret = -EINVAL;
        goto out;
    }
    for (guint i = 0; i < n; i++) {
        spec_item *it = &items[i];
        switch (it->kind) {
        case SPEC_OFF:
            trace_stop();
            break;
        case SPEC_USDT:
            trace_set_usdt(true);
            break;
        case SPEC_STREAM:
            if (!it->path)
                ret = trace_set_stream(it->format, stderr);
            else if (strcmp(it->path, "-") == 0)
                ret = trace_set_stream(it->format, stdout);
            else
                ret = trace_open_path(it->format, it->path, error);
            break;
        }
        if (ret < 0)
            goto out;
    }
out:
    for (guint i = 0; i < n; i++)
        g_free(items[i].path);
    g_free(items);
    g_strfreev(parts);
    return ret;
}

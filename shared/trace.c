/* SPDX-License-Identifier: MIT */
/*
 * trace.c - the event table, the fire functions with their USDT probes,
 * and the outputs (text and JSON Lines streams, a callback) with their
 * run-time configuration. The line formats are in trace_format.c.
 */
#include <errno.h>
#include <glib.h>
#include <pthread.h>
#include <stddef.h>
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
    trace_writer *writer; /* set for files trace_open_path opened */
    int err;              /* first write error since the last flush, negative errno */
} stream_out;

/* Everything below is guarded by lock; events are written one at a time
 * so lines never interleave and timestamps appear in order. (POSIX
 * threads rather than GMutex: ThreadSanitizer understands them.) */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static stream_out streams[2];
static trace_callback_fn callback;
static void *callback_opaque;
static bool usdt_on;
static uint64_t start_ns;
/* Nonzero while a stream or the callback is on: with USDT alone, the fire
 * functions return after the probe without taking the lock. */
static int outputs_on;

uint64_t trace_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void update_enabled_locked(void)
{
    bool outputs = streams[TRACE_FORMAT_TEXT].file || streams[TRACE_FORMAT_JSONL].file || callback;
    bool on = outputs || usdt_on;
    if (on && !trace_enabled_flag)
        start_ns = trace_now_ns();
    __atomic_store_n(&outputs_on, outputs ? 1 : 0, __ATOMIC_RELAXED);
    __atomic_store_n(&trace_enabled_flag, on ? 1 : 0, __ATOMIC_RELAXED);
}

/* Detaches @s, flushes it, and closes it when the library opened it. The
 * lock may be released meanwhile (joining a writer thread), so callers
 * that install a new stream loop until the slot stays empty. */
static int stream_release_locked(stream_out *s)
{
    stream_out old = *s;
    int err = old.err;

    *s = (stream_out){0};
    update_enabled_locked();
    if (old.writer) {
        int e = trace_writer_close_locked(old.writer);
        if (err == 0)
            err = e;
    } else if (old.file) {
        errno = 0;
        if (fflush(old.file) != 0 && err == 0)
            err = errno ? -errno : -EIO;
    }
    return err;
}

/*
 * Waits until every writer has room for a line. A wait releases the lock,
 * so the streams are checked again until one pass needs no wait: then
 * the timestamp, taken next, is in file order even when threads had to
 * wait for the disk.
 */
static void wait_for_room_locked(void)
{
    bool waited;
    do {
        waited = false;
        for (unsigned f = 0; f < G_N_ELEMENTS(streams); f++) {
            if (streams[f].writer &&
                trace_writer_make_room_locked(streams[f].writer, TRACE_LINE_MAX))
                waited = true;
        }
    } while (waited);
}

static void dispatch(trace_event *ev)
{
    char line[TRACE_LINE_MAX];

    pthread_mutex_lock(&lock);
    wait_for_room_locked();
    /* Outputs may have been turned off between the caller's test and here. */
    if (!outputs_on)
        goto out;
    uint64_t now = trace_now_ns();
    ev->ts_ns = now > start_ns ? now - start_ns : 0;
    for (unsigned f = 0; f < G_N_ELEMENTS(streams); f++) {
        stream_out *s = &streams[f];
        if (!s->file)
            continue;
        int n = trace_event_format(ev, (trace_format)f, line, sizeof(line));
        if (n < 0) {
            if (s->err == 0)
                s->err = n;
            continue;
        }
        if (s->writer) {
            trace_writer_append_locked(s->writer, line, (size_t)n);
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
 * attached), then the outputs. */
#define FIRE_FN_(name, doc)                                                                        \
    void trace_##name##_fire(TRACE_FIELDS_##name(TRACE_F_PARAM, TRACE_SEP_COMMA))                  \
    {                                                                                              \
        TRACE_USDT_(name, TRACE_FIELDS_##name(TRACE_F_ARG, TRACE_SEP_COMMA));                      \
        if (!__atomic_load_n(&outputs_on, __ATOMIC_RELAXED))                                       \
            return;                                                                                \
        trace_event ev;                                                                            \
        memset(&ev, 0, sizeof(ev));                                                                \
        ev.id = TRACE_EV_##name;                                                                   \
        ev.u.name = (trace_##name##_fields){TRACE_FIELDS_##name(TRACE_F_ARG, TRACE_SEP_COMMA)};    \
        dispatch(&ev);                                                                             \
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
    while (streams[format].file)
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
    trace_writer *w;
    pthread_mutex_lock(&lock);
    int ret = trace_writer_new(f, &lock, &w);
    if (ret < 0) {
        pthread_mutex_unlock(&lock);
        fclose(f);
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(-ret),
                    "cannot start the writer thread for trace file %s: %s", path, g_strerror(-ret));
        return ret;
    }
    while (streams[format].file)
        stream_release_locked(&streams[format]);
    streams[format].file = f;
    streams[format].writer = w;
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
    int ret = 0;
    pthread_mutex_lock(&lock);
    for (unsigned f = 0; f < G_N_ELEMENTS(streams); f++) {
        stream_out *s = &streams[f];
        if (!s->file)
            continue;
        int err = s->err;
        s->err = 0;
        if (s->writer) {
            /* May wait, releasing the lock; the writer stays alive until
             * the wait ends even if the stream is replaced meanwhile. */
            int e = trace_writer_flush_locked(s->writer);
            if (err == 0)
                err = e;
        } else {
            errno = 0;
            if (fflush(s->file) != 0 && err == 0)
                err = errno ? -errno : -EIO;
        }
        if (err != 0 && ret == 0)
            ret = err;
    }
    pthread_mutex_unlock(&lock);
    return ret;
}

void trace_stop(void)
{
    pthread_mutex_lock(&lock);
    for (unsigned f = 0; f < G_N_ELEMENTS(streams); f++) {
        while (streams[f].file)
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

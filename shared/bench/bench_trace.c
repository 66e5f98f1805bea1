/* SPDX-License-Identifier: MIT */
/*
 * The cost of trace events. A stand-in for a request (one interval-map
 * lookup, as a MAP or translate does) runs N times without an event, then
 * with a request_done event per iteration: tracing off, USDT probes only,
 * and JSON Lines to a file. Also the bare cost of one event call: on the
 * firing thread, and with the trace writer thread's CPU time added. And
 * the pace of the JSON Lines writer thread: a thread hands it the events
 * of batches of 64 MAP requests (request_received, listener_map,
 * request_done) straight into its ring, as a request batch does, far
 * faster than the writer formats and writes them, so the wall-clock time
 * per request is the writer's. Prints one JSON object per line; "ratio"
 * is baseline / value, so 0.98 means the events cost 2%.
 */
#include <glib.h>
#include <glib/gstdio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shared.h"
#include "trace-internal.h"

#define MAPPINGS 65536u
#define STRIDE 8192u
#define SIZE 4096u
#define REPEATS 3

static double clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* CPU time of this thread: the machine may be shared, and a descheduled
 * interval is not a cost of the code under test. Kernel time spent in
 * write(2) counts, background writeback does not. */
static double now_ns(void)
{
    return clock_ns(CLOCK_THREAD_CPUTIME_ID);
}

static void emit(const char *name, size_t n, double value, const char *unit, double baseline)
{
    if (baseline > 0)
        printf("{\"bench\": \"%s/%zu\", \"value\": %.2f, \"unit\": \"%s\", \"baseline\": %.2f, "
               "\"ratio\": %.3f}\n",
               name, n, value, unit, baseline, baseline / value);
    else
        printf("{\"bench\": \"%s/%zu\", \"value\": %.2f, \"unit\": \"%s\"}\n", name, n, value,
               unit);
    fflush(stdout);
}

static volatile uint64_t sink;

typedef struct workload {
    interval_map *map;
    uint64_t *probe; /* addresses to look up, one per iteration */
    size_t n;
} workload;

/* The request stand-in, with or without its completion event. */
static double run(const workload *w, bool with_event)
{
    uint64_t acc = 0;
    double t0 = now_ns();
    for (size_t i = 0; i < w->n; i++) {
        u64_range r;
        uint64_t *gpa = interval_map_find(w->map, w->probe[i], &r);
        uint64_t phys = gpa ? *gpa : 0;
        acc += phys;
        if (with_event)
            TRACE(request_done, 3, (uint32_t)(i & 7), 8, r.first, r.last, phys, 3, 0, 250, i);
    }
    double t = (now_ns() - t0) / (double)w->n;
    sink = acc;
    return t;
}

/* The best of REPEATS runs: the least disturbed by the other processes. */
static double best(const workload *w, bool with_event)
{
    double b = 0;
    for (int i = 0; i < REPEATS; i++) {
        double t = run(w, with_event);
        if (i == 0 || t < b)
            b = t;
    }
    return b;
}

static double bare_events(size_t n)
{
    double t0 = now_ns();
    for (size_t i = 0; i < n; i++) {
        TRACE(batch_begin, i);
        __asm__ volatile("" ::: "memory");
    }
    return (now_ns() - t0) / (double)n;
}

static double bare_request_done(size_t n)
{
    double t0 = now_ns();
    for (size_t i = 0; i < n; i++) {
        TRACE(request_done, 3, 1, 8, i << 12, (i << 12) + 4095, i << 12, 3, 0, 250, i);
        __asm__ volatile("" ::: "memory");
    }
    return (now_ns() - t0) / (double)n;
}

/* Wall-clock nanoseconds per request until the writer has written the
 * events of @n requests (in whole batches of 64, at least one), handed
 * over as a request batch does: batch_begin, the request_received events
 * eleven to a ring slot, a listener event per request, the request_done
 * events and batch_end. */
static double writer_pace(size_t n)
{
    double t0 = clock_ns(CLOCK_MONOTONIC);
    trace_ring *r = trace_thread_ring();
    if (!r)
        abort();
    uint64_t t = trace_now_ns();
    size_t batches = n / 64 ? n / 64 : 1;
    for (size_t b = 0; b < batches; b++) {
        trace_ring_put_batch_begin(r, t, b + 1);
        for (size_t i = 0; i < 64;) {
            trace_event *ev;
            if (!trace_ring_stage_run(r, 1, &ev))
                abort();
            trace_received_run run = {.batch = b + 1};
            for (; i < 64 && run.count < TRACE_RECEIVED_PER_SLOT; i++, run.count++) {
                run.type[run.count] = i % 2 ? 3 : 4;
                run.size[run.count] = i % 2 ? 44 : 36;
            }
            ev->id = TRACE_RING_RECEIVED_RUN;
            ev->ts_ns = t;
            memcpy(&ev->u, &run, sizeof(run));
            trace_ring_staged_run(r, 1);
        }
        for (size_t i = b * 64; i < b * 64 + 64; i++) {
            uint64_t iova = (i % MAPPINGS) * STRIDE;
            trace_ring_put_listener_map(r, t, 0, 1, 1, iova, iova + SIZE - 1, iova + (1ull << 32),
                                        3, 0);
        }
        for (size_t i = b * 64; i < b * 64 + 64; i++) {
            uint64_t iova = (i % MAPPINGS) * STRIDE;
            trace_ring_put_request_done(r, t + 700, 3, 1, 0, iova, iova + SIZE - 1,
                                        iova + (1ull << 32), 3, 0, 700, b + 1);
        }
        trace_ring_put_batch_end(r, t + 700, b + 1, 64, 700);
        trace_ring_publish(r);
        t += 1000;
    }
    trace_flush();
    return (clock_ns(CLOCK_MONOTONIC) - t0) / (double)(batches * 64);
}

static double bare_loop(size_t n)
{
    double t0 = now_ns();
    for (size_t i = 0; i < n; i++)
        __asm__ volatile("" ::: "memory");
    return (now_ns() - t0) / (double)n;
}

int main(int argc, char **argv)
{
    size_t n_off = argc > 1 ? strtoull(argv[1], NULL, 10) : 2000000;
    size_t n_on = n_off / 20 ? n_off / 20 : 1;
    GRand *rng = g_rand_new_with_seed(42);
    workload w = {interval_map_new(sizeof(uint64_t)), NULL, n_off};

    for (uint64_t i = 0; i < MAPPINGS; i++) {
        uint64_t s = i * STRIDE, gpa = s + (1ull << 32);
        interval_map_insert(w.map, s, s + SIZE - 1, &gpa);
    }
    w.probe = malloc(n_off * sizeof(*w.probe));
    for (size_t i = 0; i < n_off; i++)
        w.probe[i] = (uint64_t)g_rand_int_range(rng, 0, MAPPINGS) * STRIDE +
                     (uint64_t)g_rand_int_range(rng, 0, SIZE);

    /* Tracing off: the branch per event. */
    double base = best(&w, false);
    double off = best(&w, true);
    emit("trace_off_request", n_off, off, "ns/op", base);
    emit("trace_off_event", n_off, bare_events(n_off), "ns/event", bare_loop(n_off));

    /* The on cases write fewer events: a JSON Lines file grows ~200 B each. */
    workload w_on = w;
    w_on.n = n_on;
    double base_on = best(&w_on, false);

    trace_set_usdt(true);
    emit("trace_usdt_request", n_on, best(&w_on, true), "ns/op", base_on);
    trace_stop();

    char *path = NULL;
    int fd = g_file_open_tmp("bench_trace-XXXXXX.jsonl", &path, NULL);
    if (fd < 0) {
        fprintf(stderr, "bench_trace: cannot create a temporary file\n");
        return 1;
    }
    close(fd);
    GError *err = NULL;
    if (trace_open_path(TRACE_FORMAT_JSONL, path, &err) < 0) {
        fprintf(stderr, "bench_trace: %s\n", err->message);
        g_error_free(err);
        return 1;
    }
    double jsonl = best(&w_on, true);
    trace_flush();
    double jsonl_event = bare_request_done(n_on);
    trace_flush();
    /* Every thread's CPU time, the trace writer's included. */
    double p0 = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
    bare_request_done(n_on);
    trace_flush();
    double jsonl_event_all = (clock_ns(CLOCK_PROCESS_CPUTIME_ID) - p0) / (double)n_on;
    trace_stop();
    emit("trace_jsonl_request", n_on, jsonl, "ns/op", base_on);
    emit("trace_jsonl_event", n_on, jsonl_event, "ns/event", 0);
    emit("trace_jsonl_event_all_threads", n_on, jsonl_event_all, "ns/event", 0);
    trace_stop();
    g_unlink(path);

    /* The writer's pace, best of REPEATS files. */
    size_t n_pace = n_on * 4;
    double pace = 1e300;
    for (int rep = 0; rep < REPEATS; rep++) {
        if (trace_open_path(TRACE_FORMAT_JSONL, path, NULL) < 0)
            return 1;
        double v = writer_pace(n_pace);
        pace = v < pace ? v : pace;
        trace_stop();
        g_unlink(path);
    }
    emit("trace_jsonl_writer_request", n_pace, pace, "ns/req", 0);
    g_unlink(path);
    g_free(path);

    free(w.probe);
    interval_map_free(w.map);
    g_rand_free(rng);
    return 0;
}

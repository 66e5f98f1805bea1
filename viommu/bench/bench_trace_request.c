/* SPDX-License-Identifier: MIT */
/*
 * What tracing costs the request path: MAP+UNMAP pairs through the
 * device's full request path (decode, domain, listener, batch of 64) at
 * a large number of live mappings (1M by default, the size of
 * bench_request; the first argument after the child's path changes it),
 * in three configurations on the same data in the same process - tracing
 * off, USDT probes only, JSON Lines to a file. Each request fires
 * request_received, request_done and one listener event; every 64
 * requests a batch_begin and batch_end.
 *
 * What tracing costs when it is off is measured against a second build
 * of the device with every event compiled out (TRACE_COMPILED_OUT): in
 * every round each build runs the same work with tracing off as a fresh
 * child process, one after the other, so the two differ only in their
 * code (the process that measured the other configurations has written
 * files and run a second thread, which an off measurement in it would
 * carry).
 *
 * What is measured: the wall-clock time (CLOCK_MONOTONIC) of the thread
 * that runs the requests, around the work and, with JSON Lines, the
 * trace_flush() that ends it. That is what tracing costs the request
 * path when requests come as fast as the device takes them: the JSON
 * Lines writer thread formats and writes the file on the other core, and
 * the flush makes a writer that falls behind count (the requests then
 * wait for room in their ring, or the flush waits for the last lines).
 * The viommu.request_trace_jsonl_cpu_vs_off line adds what the flush
 * hides, the whole process's CPU time (the writer thread included)
 * against the same with tracing off: the machine's total cost.
 *
 * The viommu.request_trace_jsonl_paced_vs_off line offers the requests at
 * PACED_RATE per second instead, a batch of 64 at a time, and counts only
 * the time the request thread spends processing them: what the events
 * cost the request path itself while the writer keeps up.
 * viommu.request_trace_jsonl_paced_writer_cpu is the CPU time per request
 * the writer thread takes meanwhile: what the file costs the machine's
 * other core while requests come at that rate.
 *
 * ROUNDS rounds alternate the configurations. Each line's "ratio" is the
 * median over the rounds of the round's baseline / value, each round's
 * pair measured back to back, so 0.98 means 2% slower than the baseline;
 * "value" and "baseline" are the medians of the two configurations. A
 * machine shared with other work goes through slower and faster spells
 * that last longer than a round: the two halves of a pair see the same
 * spell, and the median leaves out the rounds a spell cut in two.
 * Prints one JSON object per line.
 */
#include <endian.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "viommu.h"

#define STRIDE 8192u
#define SIZE 4096u
#define BATCH 64
#define PAIRS 4096
#define ROUNDS 9
/* Measurements in each child process, of which it reports the best. */
#define CHILD_ROUNDS 5
#define DEFAULT_LIVE 1000000
#define DEFAULT_CHURN 131072
/* Requests per second offered in the paced measurement: a guest that
 * maps and unmaps a million times a second, which the trace writer
 * keeps up with. */
#define PACED_RATE 1e6

static double clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

typedef struct wire_req {
    union {
        struct virtio_iommu_req_map map;
        struct virtio_iommu_req_unmap unmap;
        struct virtio_iommu_req_attach attach;
    } u;
    size_t len;
    uint8_t tail[4];
    struct iovec iov[2];
} wire_req;

static void wire_map(wire_req *w, uint64_t start)
{
    memset(w, 0, sizeof(*w));
    w->u.map.head.type = VIRTIO_IOMMU_T_MAP;
    w->u.map.domain = htole32(1);
    w->u.map.virt_start = htole64(start);
    w->u.map.virt_end = htole64(start + SIZE - 1);
    w->u.map.phys_start = htole64(start);
    w->u.map.flags = htole32(VIRTIO_IOMMU_MAP_F_READ | VIRTIO_IOMMU_MAP_F_WRITE);
    w->len = offsetof(struct virtio_iommu_req_map, tail);
}

static void wire_unmap(wire_req *w, uint64_t start)
{
    memset(w, 0, sizeof(*w));
    w->u.unmap.head.type = VIRTIO_IOMMU_T_UNMAP;
    w->u.unmap.domain = htole32(1);
    w->u.unmap.virt_start = htole64(start);
    w->u.unmap.virt_end = htole64(start + SIZE - 1);
    w->len = offsetof(struct virtio_iommu_req_unmap, tail);
}

static void wire_iov(wire_req *w)
{
    w->iov[0] = (struct iovec){&w->u, w->len};
    w->iov[1] = (struct iovec){w->tail, sizeof(w->tail)};
}

static uint64_t listened;
static int count_event(void *o, const mapping_event *ev)
{
    (void)o;
    listened += ev->iova_last - ev->iova + 1;
    return 0;
}
static const mapping_listener_ops count_ops = {NULL, count_event, count_event, NULL};

static void device_run(viommu *v, wire_req *w, size_t n)
{
    viommu_request reqs[BATCH];
    for (size_t i = 0; i < n; i += BATCH) {
        size_t k = n - i < BATCH ? n - i : BATCH;
        for (size_t j = 0; j < k; j++)
            reqs[j] = (viommu_request){&w[i + j].iov[0], 1, &w[i + j].iov[1], 1, 0, 0, 0};
        viommu_process_batch(v, reqs, k);
        for (size_t j = 0; j < k; j++)
            if (reqs[j].status != VIRTIO_IOMMU_S_OK)
                abort();
    }
}

typedef struct workload {
    viommu *v;
    wire_req *pairs;
    size_t churn;
} workload;

/* n live mappings in random slots, and PAIRS UNMAP+MAP pairs on distinct
 * live slots: each pair restores what it removed, so cycling keeps n live. */
static void workload_init(workload *w, size_t n, size_t churn)
{
    GRand *rng = g_rand_new_with_seed(42);
    uint64_t *order = malloc(n * sizeof(*order));
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = (size_t)g_rand_int_range(rng, 0, (gint32)(i + 1));
        uint64_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    viommu_config cfg;
    viommu_config_init(&cfg);
    w->v = viommu_new(&cfg, NULL);
    viommu_set_driver_features(w->v, viommu_device_features(w->v));
    viommu_endpoint_add(w->v, 1);
    mapping_listener l = {&count_ops, NULL};
    viommu_endpoint_set_listener(w->v, 1, &l);

    wire_req *fill = malloc((n + 1) * sizeof(*fill));
    memset(&fill[0], 0, sizeof(fill[0]));
    fill[0].u.attach.head.type = VIRTIO_IOMMU_T_ATTACH;
    fill[0].u.attach.domain = htole32(1);
    fill[0].u.attach.endpoint = htole32(1);
    fill[0].len = offsetof(struct virtio_iommu_req_attach, tail);
    for (size_t i = 0; i < n; i++)
        wire_map(&fill[i + 1], order[i] * STRIDE);
    for (size_t i = 0; i < n + 1; i++)
        wire_iov(&fill[i]);
    device_run(w->v, fill, n + 1);
    free(fill);

    w->pairs = malloc(2 * PAIRS * sizeof(*w->pairs));
    for (size_t i = 0; i < PAIRS; i++) {
        wire_unmap(&w->pairs[2 * i], order[i % n] * STRIDE);
        wire_map(&w->pairs[2 * i + 1], order[i % n] * STRIDE);
    }
    for (size_t i = 0; i < 2 * PAIRS; i++)
        wire_iov(&w->pairs[i]);
    w->churn = churn;
    free(order);
    g_rand_free(rng);
}

static void workload_free(workload *w)
{
    viommu_free(w->v);
    free(w->pairs);
}

/* Nanoseconds per request of the churn: the request thread's wall clock
 * and the process's CPU time. */
typedef struct cost {
    double wall;
    double cpu;
    double thread;
} cost;

static cost measure(workload *w)
{
    double cpu0 = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
    double th0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
    double t0 = clock_ns(CLOCK_MONOTONIC);
    size_t done = 0;
    while (done < w->churn) {
        device_run(w->v, w->pairs, 2 * PAIRS);
        done += 2 * PAIRS;
    }
#ifndef TRACE_COMPILED_OUT
    /* The file's lines are part of the cost: wait for the writer. */
    trace_flush();
#endif
    double t1 = clock_ns(CLOCK_MONOTONIC);
    double th1 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
    double cpu1 = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
    return (cost){(t1 - t0) / (double)done, (cpu1 - cpu0) / (double)done,
                  (th1 - th0) / (double)done};
}

#ifndef TRACE_COMPILED_OUT
/* Nanoseconds per request the request thread spends in
 * viommu_process_batch when the requests arrive at PACED_RATE per second,
 * a batch of BATCH at a time: the thread waits for each batch's arrival
 * (spinning, so it keeps its core), and only the processing counts. And
 * the CPU time per request of the process's other threads meanwhile (the
 * trace writer), the final flush included. */
typedef struct paced {
    double busy;
    double others;
} paced;

static paced measure_paced(workload *w)
{
    const double period = BATCH * 1e9 / PACED_RATE;
    viommu_request reqs[BATCH];
    double cpu0 = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
    double th0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
    double busy = 0, next = clock_ns(CLOCK_MONOTONIC);
    size_t done = 0, at = 0;
    while (done < w->churn) {
        for (size_t j = 0; j < BATCH; j++) {
            wire_req *r = &w->pairs[(at + j) % (2 * PAIRS)];
            reqs[j] = (viommu_request){&r->iov[0], 1, &r->iov[1], 1, 0, 0, 0};
        }
        while (clock_ns(CLOCK_MONOTONIC) < next)
            ;
        double t0 = clock_ns(CLOCK_MONOTONIC);
        viommu_process_batch(w->v, reqs, BATCH);
        busy += clock_ns(CLOCK_MONOTONIC) - t0;
        for (size_t j = 0; j < BATCH; j++)
            if (reqs[j].status != VIRTIO_IOMMU_S_OK)
                abort();
        next += period;
        at = (at + BATCH) % (2 * PAIRS);
        done += BATCH;
    }
    trace_flush();
    double others = (clock_ns(CLOCK_PROCESS_CPUTIME_ID) - cpu0) -
                    (clock_ns(CLOCK_THREAD_CPUTIME_ID) - th0);
    return (paced){busy / (double)done, others / (double)done};
}
#endif

static void keep_best(cost *best, cost c)
{
    if (c.wall < best->wall)
        best->wall = c.wall;
    if (c.cpu < best->cpu)
        best->cpu = c.cpu;
    if (c.thread < best->thread)
        best->thread = c.thread;
}

#define COST_NONE ((cost){1e300, 1e300, 1e300})

/* A child (either build, tracing off): the best of CHILD_ROUNDS measurements
 * on a workload of its own, printed as three numbers (wall clock, CPU, and
 * how many requests it measured, warm-up included). */
static int child_main(size_t n, size_t churn)
{
    workload w;
    workload_init(&w, n, churn);
    cost best = COST_NONE;
    measure(&w); /* warm-up */
    for (int r = 0; r < CHILD_ROUNDS; r++)
        keep_best(&best, measure(&w));
    /* measure() runs whole cycles of the 2 * PAIRS requests. */
    size_t cycles = (churn + 2 * PAIRS - 1) / (2 * PAIRS);
    printf("%.3f %.3f %zu\n", best.wall, best.cpu, (CHILD_ROUNDS + 1) * cycles * 2 * PAIRS);
    workload_free(&w);
    return listened == 0;
}

#ifdef TRACE_COMPILED_OUT
int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 0) : DEFAULT_LIVE;
    size_t churn = argc > 2 ? strtoul(argv[2], NULL, 0) : DEFAULT_CHURN;
    return child_main(n, churn);
}
#else
static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The median of @n values (n > 0). */
static double median(const double *v, int n)
{
    double s[ROUNDS];
    memcpy(s, v, (size_t)n * sizeof(*s));
    qsort(s, (size_t)n, sizeof(*s), cmp_double);
    return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/* One result line: the median of @value's @n rounds; with @baseline, its
 * median and the median of the rounds' baseline / value. */
static void emit(const char *name, size_t n_live, const double *value, const double *baseline,
                 int n)
{
    printf("{\"bench\": \"%s/%zu\", \"value\": %.2f, \"unit\": \"ns/req\"", name, n_live,
           median(value, n));
    if (baseline) {
        double ratio[ROUNDS];
        for (int r = 0; r < n; r++)
            ratio[r] = baseline[r] / value[r];
        printf(", \"baseline\": %.2f, \"ratio\": %.3f", median(baseline, n), median(ratio, n));
    }
    printf("}\n");
    fflush(stdout);
}

/* Runs @exe (with @arg first, when given) as a child process measuring
 * with tracing off; zeros when it failed. */
static cost run_child(const char *exe, const char *arg, size_t n, size_t churn)
{
    char *cmd = g_strdup_printf("'%s' %s %zu %zu", exe, arg ? arg : "", n, churn);
    FILE *p = popen(cmd, "r");
    cost c = {0, 0, 0};
    if (!p || fscanf(p, "%lf %lf", &c.wall, &c.cpu) != 2)
        c = (cost){0, 0, 0};
    if (p && pclose(p) != 0)
        c = (cost){0, 0, 0};
    g_free(cmd);
    return c;
}

/*
 * The instructions per request the request path executes with tracing
 * off, in @exe (with @arg first, when given), counted by valgrind's
 * cachegrind: the count of a child that measures 2 * PAIRS requests per
 * round minus that of one that measures 4 * PAIRS, over the requests
 * between, so the workload's set-up cancels out. Unlike a time it does
 * not vary from run to run. 0 when a run failed.
 */
static double child_instructions(const char *valgrind, const char *exe, const char *arg, size_t n,
                                 const char *dir)
{
    char *log = g_build_filename(dir, "cachegrind.log", NULL);
    GRegex *refs = g_regex_new("I\\s+refs:\\s+([0-9,]+)", 0, 0, NULL);
    double count[2] = {0, 0}, requests[2] = {0, 0};
    bool ok = true;
    for (int i = 0; i < 2 && ok; i++) {
        char *cmd = g_strdup_printf("'%s' --tool=cachegrind --cache-sim=no "
                                    "--cachegrind-out-file=/dev/null --log-file='%s' '%s' %s %zu %u",
                                    valgrind, log, exe, arg ? arg : "", n, (i + 1) * 2 * PAIRS);
        FILE *p = popen(cmd, "r");
        double wall, cpu;
        ok = p && fscanf(p, "%lf %lf %lf", &wall, &cpu, &requests[i]) == 3;
        if (p && pclose(p) != 0)
            ok = false;
        char *text = NULL;
        GMatchInfo *m = NULL;
        if (ok && g_file_get_contents(log, &text, NULL, NULL) &&
            g_regex_match(refs, text, 0, &m)) {
            char *digits = g_match_info_fetch(m, 1);
            GString *plain = g_string_new(NULL);
            for (const char *c = digits; *c; c++)
                if (*c != ',')
                    g_string_append_c(plain, *c);
            count[i] = g_ascii_strtod(plain->str, NULL);
            g_string_free(plain, TRUE);
            g_free(digits);
        } else {
            ok = false;
        }
        g_match_info_free(m);
        g_free(text);
        g_unlink(log);
        g_free(cmd);
    }
    g_regex_unref(refs);
    g_free(log);
    if (!ok || requests[1] <= requests[0] || count[1] <= count[0])
        return 0;
    return (count[1] - count[0]) / (requests[1] - requests[0]);
}

int main(int argc, char **argv)
{
    /* bench_trace_request --child N CHURN: this build, tracing off, as a
     * child process like the untraced build's. */
    if (argc == 4 && strcmp(argv[1], "--child") == 0)
        return child_main(strtoul(argv[2], NULL, 0), strtoul(argv[3], NULL, 0));
    /* bench_trace_request UNTRACED_EXE [N [CHURN]] */
    if (argc < 2) {
        fprintf(stderr, "usage: %s UNTRACED_EXE [LIVE_MAPPINGS [REQUESTS]]\n", argv[0]);
        return 2;
    }
    size_t n = argc > 2 ? strtoul(argv[2], NULL, 0) : DEFAULT_LIVE;
    size_t churn = argc > 3 ? strtoul(argv[3], NULL, 0) : DEFAULT_CHURN;
    if (n < PAIRS)
        n = PAIRS;
    /* This program, which popen's shell would not find as /proc/self/exe. */
    char *self = g_file_read_link("/proc/self/exe", NULL);
    char *dir = g_dir_make_tmp("bench-trace-XXXXXX", NULL);
    char *path = g_build_filename(dir, "trace.jsonl", NULL);

    workload w;
    workload_init(&w, n, churn);
    /* Each configuration's cost in each round: wall clock, process CPU,
     * request thread CPU. */
    double off[3][ROUNDS], usdt[ROUNDS], jsonl[3][ROUNDS];
    double paced_off[ROUNDS], paced_jsonl[ROUNDS], paced_writer[ROUNDS];
    double untraced[ROUNDS], off_child[ROUNDS];
    int children = 0;
    measure(&w); /* warm-up */
    for (int r = 0; r < ROUNDS; r++) {
        cost c = measure(&w);
        off[0][r] = c.wall;
        off[1][r] = c.cpu;
        off[2][r] = c.thread;

        trace_set_usdt(true);
        usdt[r] = measure(&w).wall;
        trace_stop();

        if (trace_open_path(TRACE_FORMAT_JSONL, path, NULL) < 0)
            abort();
        c = measure(&w);
        jsonl[0][r] = c.wall;
        jsonl[1][r] = c.cpu;
        jsonl[2][r] = c.thread;
        trace_stop();
        g_unlink(path);

        paced_off[r] = measure_paced(&w).busy;
        if (trace_open_path(TRACE_FORMAT_JSONL, path, NULL) < 0)
            abort();
        paced p = measure_paced(&w);
        paced_jsonl[r] = p.busy;
        paced_writer[r] = p.others;
        trace_stop();
        g_unlink(path);

        /* Both builds with tracing off, each as a fresh child process
         * after the other measurements of the round, so the two see the
         * same machine and the same kind of process. */
        cost u = run_child(argv[1], NULL, n, churn);
        cost o = self ? run_child(self, "--child", n, churn) : (cost){0, 0, 0};
        if (u.wall > 0 && o.wall > 0) {
            untraced[children] = u.wall;
            off_child[children++] = o.wall;
        }
    }
    workload_free(&w);

    /* The instructions of both builds with tracing off, when valgrind is
     * installed: what tracing off adds to the request path, exactly. */
    char *valgrind = g_find_program_in_path("valgrind");
    double insn_untraced = 0, insn_off = 0;
    if (valgrind && self) {
        insn_untraced = child_instructions(valgrind, argv[1], NULL, n, dir);
        insn_off = child_instructions(valgrind, self, "--child", n, dir);
    } else {
        fprintf(stderr, "valgrind not found: no instruction counts\n");
    }
    g_free(valgrind);
    g_rmdir(dir);
    g_free(path);
    g_free(dir);
    g_free(self);

    if (children)
        emit("viommu.request_trace_off_vs_compiled_out", n, off_child, untraced, children);
    if (insn_untraced > 0 && insn_off > 0)
        printf("{\"bench\": \"viommu.request_trace_off_vs_compiled_out_instructions/%zu\", "
               "\"value\": %.1f, \"unit\": \"instructions/req\", \"baseline\": %.1f, "
               "\"ratio\": %.4f}\n",
               n, insn_off, insn_untraced, insn_untraced / insn_off);
    emit("viommu.request_trace_usdt_vs_off", n, usdt, off[0], ROUNDS);
    emit("viommu.request_trace_jsonl_vs_off", n, jsonl[0], off[0], ROUNDS);
    emit("viommu.request_trace_jsonl_cpu_vs_off", n, jsonl[1], off[1], ROUNDS);
    emit("viommu.request_trace_jsonl_thread_cpu_vs_off", n, jsonl[2], off[2], ROUNDS);
    emit("viommu.request_trace_jsonl_paced_vs_off", n, paced_jsonl, paced_off, ROUNDS);
    emit("viommu.request_trace_jsonl_paced_writer_cpu", n, paced_writer, NULL, ROUNDS);
    return listened == 0;
}
#endif

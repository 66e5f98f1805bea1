/* SPDX-License-Identifier: MIT */
/*
 * The trace writer with rings of a few hundred slots (this test's build
 * sets TRACE_RING_SLOTS), which the firing threads fill all the time:
 * they wait for room over and over, spinning and sleeping, while the
 * writer drains, blocks on a slow reader and sleeps in turn. One thread
 * fires events one by one (the fire functions), the other puts them into
 * its ring in batches, one put per event or a run of stage slots at a
 * time, and publishes each batch, as the device's request path does. Every event must reach the output in its thread's order,
 * and no thread may wait for ever (the test's timeout). One build's batch
 * thread publishes only at its end: a ring that fills must then publish
 * what it holds itself, or its thread waits for room for ever.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <sys/stat.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "trace-internal.h"

/* Events each thread fires. */
#ifndef EVENTS
#define EVENTS 1000000u
#endif
/* Events the batch thread puts between two publishes; one build publishes
 * only at the end, so only a full ring hands its events over. */
#ifndef BATCH
#define BATCH 64u
#endif

_Static_assert(TRACE_RING_SLOTS <= 1024, "this test's build makes the rings small");

/* Reads the output pipe to its end: the lines, and the next sequence
 * number of each thread (endpoint 0 or 1). */
typedef struct reader {
    int fd;
    uint64_t lines;
    uint32_t next[2];
    bool in_order;
} reader;

static void reader_line(reader *rd, const char *line, size_t len)
{
    trace_event ev;
    rd->lines++;
    if (trace_event_parse_json(line, len, &ev, NULL) != 0 || ev.id != TRACE_EV_endpoint_attached ||
        ev.u.endpoint_attached.endpoint >= 2 ||
        ev.u.endpoint_attached.domain != rd->next[ev.u.endpoint_attached.endpoint]++)
        rd->in_order = false;
}

static void *read_all(void *data)
{
    reader *rd = data;
    static char buf[1 << 16];
    static char line[TRACE_LINE_MAX + 1];
    size_t have = 0, reads = 0;
    ssize_t n;
    while ((n = read(rd->fd, buf, sizeof(buf))) > 0) {
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] == '\n') {
                reader_line(rd, line, have);
                have = 0;
            } else if (have < TRACE_LINE_MAX) {
                line[have++] = buf[i];
            }
        }
        /* Now and then a slow reader: the writer blocks on the full pipe
         * and the firing threads give up spinning and sleep. */
        if (++reads % 8 == 0)
            g_usleep(200);
    }
    return NULL;
}

static void *fire_one_by_one(void *unused)
{
    (void)unused;
    for (uint32_t i = 0; i < EVENTS; i++)
        TRACE(endpoint_attached, 0, i);
    return NULL;
}

/* Chunks of events alternate between one put per event and runs of
 * stage slots (trace_ring_stage_run), as the device's request path
 * stages its events both ways. A chunk is not a whole number of groups,
 * and the ring is published after the chunk that reaches BATCH events
 * since the last publish, so the writer hands room back at any offset
 * within a group, and a run must stop where the room ends. */
#define CHUNK 45u

static void *put_in_batches(void *unused)
{
    (void)unused;
    trace_ring *r = trace_thread_ring();
    if (!r)
        return NULL; /* the reader then misses this thread's events */
    uint32_t i = 0, published = 0;
    while (i < EVENTS) {
        uint32_t end = EVENTS - i < CHUNK ? EVENTS : i + CHUNK;
        if (i / CHUNK % 2 == 0) {
            for (; i < end; i++)
                trace_ring_put_endpoint_attached(r, trace_now_ns(), 1, i);
        }
        while (i < end) {
            trace_event *ev;
            size_t k = trace_ring_stage_run(r, end - i, &ev);
            if (!k)
                return NULL;
            for (size_t j = 0; j < k; j++, i++) {
                ev[j].id = TRACE_EV_endpoint_attached;
                ev[j].ts_ns = trace_now_ns();
                ev[j].u.endpoint_attached = (trace_endpoint_attached_fields){1, i};
            }
            trace_ring_staged_run(r, k);
        }
        if (i - published >= BATCH) {
            trace_ring_publish(r);
            published = i;
        }
    }
    trace_ring_publish(r);
    return NULL;
}

Test(trace_ring_full, threads_that_fill_their_rings_lose_no_event_and_never_hang, .timeout = 240)
{
    /* A file output (the writer thread's), which is a pipe. */
    char *dir = g_dir_make_tmp("trace-ring-full-XXXXXX", NULL);
    cr_assert_not_null(dir);
    char *path = g_build_filename(dir, "trace.jsonl", NULL);
    cr_assert_eq(mkfifo(path, 0600), 0);
    /* The read end first, without waiting for a writer, so opening the
     * output does not block; the reader starts once the output is open,
     * so it never sees the pipe's end before the writer's first line. */
    reader rd = {.fd = open(path, O_RDONLY | O_NONBLOCK), .in_order = true};
    cr_assert_geq(rd.fd, 0);
    cr_assert_eq(trace_open_path(TRACE_FORMAT_JSONL, path, NULL), 0);
    cr_assert_eq(fcntl(rd.fd, F_SETFL, 0), 0);
    GThread *rt = g_thread_new("read", read_all, &rd);

    GThread *one = g_thread_new("one-by-one", fire_one_by_one, NULL);
    GThread *batches = g_thread_new("batches", put_in_batches, NULL);
    g_thread_join(one);
    g_thread_join(batches);
    cr_assert_eq(trace_flush(), 0);
    trace_stop();
    g_thread_join(rt);
    close(rd.fd);
    g_unlink(path);
    g_rmdir(dir);
    g_free(path);
    g_free(dir);

    cr_assert_eq(rd.lines, 2ull * EVENTS);
    cr_assert(rd.in_order, "a thread's events arrived malformed or out of its order");
}

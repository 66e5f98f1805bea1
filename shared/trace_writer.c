/* SPDX-License-Identifier: MIT */
/*
 * trace_writer.c - writes a trace file from a thread of its own.
 *
 * The firing threads only copy each event, still binary (a trace_event),
 * into a ring of slots; the writer thread formats the lines and writes
 * them, so neither the line formatting nor the write(2) cost of a trace
 * file is on the traced thread's path. When the ring is full the firing
 * thread waits for the writer: events are never dropped.
 *
 * Producers push under the caller's fire lock (trace.c), which orders
 * them and their timestamps; they publish each slot with a release store
 * of head. The writer alone advances tail, with a release store, once the
 * lines of the slots before it are formatted. Everything else (sleeping,
 * waiting for room, flushing, stopping) goes through the writer's mutex.
 *
 * A regular file gets its blocks reserved ahead (fallocate, keeping the
 * size), which makes appending to it markedly cheaper on ext4; closing
 * the file gives back what was reserved past its end.
 *
 * The writer polls: it sleeps 1 ms after finding events, doubling up to
 * WRITER_PERIOD_MAX_US while the ring stays empty, so a steady stream of
 * events costs the producers no wake-up call; a producer wakes it early
 * only when the ring is half full. A file being followed (tail -f) lags
 * by at most WRITER_PERIOD_MAX_US.
 */
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <sys/stat.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "trace-internal.h"

#define RING_SLOTS TRACE_RING_SLOTS
/* Lines are written in pieces of this size, which stay in cache. */
#define TEXT_BUF (64u * 1024)
/* A regular file's blocks are reserved this far ahead of the lines. */
#define PREALLOC (16u << 20)
#define WRITER_PERIOD_MIN_US 1000
#define WRITER_PERIOD_MAX_US (100 * 1000)
/* Slots formatted before tail advances, so a waiting producer gets room
 * without waiting for the whole backlog. */
#define DRAIN_CHUNK 1024u

_Static_assert((RING_SLOTS & (RING_SLOTS - 1)) == 0, "RING_SLOTS must be a power of two");
_Static_assert(TRACE_LINE_MAX <= TEXT_BUF, "a line must fit in an empty buffer");

struct trace_writer {
    trace_ring ring; /* first: trace.c pushes through it */
    bool wake_sent;  /* a producer woke the writer for this backlog (fire lock) */
    /* Producers that released the fire lock to wait for room and may
     * still touch the writer; changed under the fire lock (+1) and mu (-1). */
    unsigned holders;

    /* Everything below is guarded by mu. */
    _Alignas(64) pthread_mutex_t mu;
    pthread_cond_t cond; /* the writer's sleep; room, written, detached, holders changes */
    pthread_t thread;
    FILE *file;
    int fd;
    trace_format format;
    uint64_t written;      /* events whose lines are in the file (or failed to be) */
    uint64_t flush_to;     /* a flusher waits for this many events */
    unsigned room_waiters; /* producers inside trace_writer_wait_room */
    bool detached;         /* no producer will push again */
    bool stop;
    int err; /* first write error since the last flush, negative errno */

    /* The writer thread's own. */
    const trace_event *slots; /* ring.slots, read without touching the producers' line */
    char *text;
    size_t text_len;
    uint64_t pos;       /* bytes written to the file */
    uint64_t alloc_end; /* blocks reserved up to here */
    bool prealloc;      /* a regular file that accepts fallocate */
};

/* More than half the ring is in use. */
static bool ring_over_half(trace_writer *w)
{
    return __atomic_load_n(&w->ring.published, __ATOMIC_ACQUIRE) -
               __atomic_load_n(&w->ring.tail, __ATOMIC_ACQUIRE) >
           RING_SLOTS / 2;
}

/* Writes the formatted text out; a failure is kept for trace_flush and
 * the text dropped, so producers never wait on a broken file. */
static void write_text(trace_writer *w)
{
    size_t done = 0;
    int err = 0;
    if (w->prealloc && w->pos + w->text_len > w->alloc_end) {
        if (fallocate(w->fd, FALLOC_FL_KEEP_SIZE, (off_t)w->alloc_end, PREALLOC) == 0)
            w->alloc_end += PREALLOC;
        else
            w->prealloc = false; /* not supported, or no space: plain appends */
    }
    while (done < w->text_len) {
        ssize_t n = write(w->fd, w->text + done, w->text_len - done);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            err = -errno;
            break;
        }
        if (n == 0) {
            err = -EIO;
            break;
        }
        done += (size_t)n;
    }
    w->pos += done;
    w->text_len = 0;
    if (err) {
        pthread_mutex_lock(&w->mu);
        if (!w->err)
            w->err = err;
        pthread_mutex_unlock(&w->mu);
    }
}

/* Formats slots [from, to), writing the text out whenever the buffer
 * could not take another line. */
static void format_slots(trace_writer *w, uint64_t from, uint64_t to)
{
    for (uint64_t i = from; i < to; i++) {
        if (w->text_len + TRACE_LINE_MAX > TEXT_BUF)
            write_text(w);
        const trace_event *ev = &w->slots[i & (RING_SLOTS - 1)];
        int n = trace_event_format(ev, w->format, w->text + w->text_len, TEXT_BUF - w->text_len);
        if (n > 0) {
            w->text_len += (size_t)n;
        } else {
            pthread_mutex_lock(&w->mu);
            if (!w->err)
                w->err = n < 0 ? n : -EIO;
            pthread_mutex_unlock(&w->mu);
        }
    }
}

static void deadline_after_us(struct timespec *t, long us)
{
    clock_gettime(CLOCK_MONOTONIC, t);
    t->tv_nsec += us * 1000;
    while (t->tv_nsec >= 1000000000) {
        t->tv_sec++;
        t->tv_nsec -= 1000000000;
    }
}

static void *writer_main(void *data)
{
    trace_writer *w = data;
    long period_us = WRITER_PERIOD_MIN_US;

    pthread_mutex_lock(&w->mu);
    for (;;) {
        uint64_t tail = w->ring.tail;
        uint64_t head = __atomic_load_n(&w->ring.published, __ATOMIC_ACQUIRE);
        if (head != tail) {
            pthread_mutex_unlock(&w->mu);
            while (tail != head) {
                uint64_t to = head - tail > DRAIN_CHUNK ? tail + DRAIN_CHUNK : head;
                format_slots(w, tail, to);
                tail = to;
                __atomic_store_n(&w->ring.tail, tail, __ATOMIC_RELEASE);
                pthread_mutex_lock(&w->mu);
                if (w->room_waiters && !ring_over_half(w))
                    pthread_cond_broadcast(&w->cond);
                /* A flusher need not wait for producers to pause. */
                bool flushing = w->flush_to > w->written && tail >= w->flush_to;
                pthread_mutex_unlock(&w->mu);
                if (flushing) {
                    write_text(w);
                    pthread_mutex_lock(&w->mu);
                    w->written = tail;
                    pthread_cond_broadcast(&w->cond);
                    pthread_mutex_unlock(&w->mu);
                }
                if (tail == head)
                    head = __atomic_load_n(&w->ring.published, __ATOMIC_ACQUIRE);
            }
            /* The ring is empty: what is formatted goes to the file now,
             * so a flush or a follower sees it. */
            write_text(w);
            pthread_mutex_lock(&w->mu);
            w->written = tail;
            pthread_cond_broadcast(&w->cond);
            period_us = WRITER_PERIOD_MIN_US;
            continue;
        }
        if (w->stop)
            break;
        __atomic_store_n(&w->wake_sent, false, __ATOMIC_RELAXED);
        struct timespec deadline;
        deadline_after_us(&deadline, period_us);
        if (pthread_cond_timedwait(&w->cond, &w->mu, &deadline) == ETIMEDOUT &&
            period_us < WRITER_PERIOD_MAX_US) {
            period_us *= 2;
            if (period_us > WRITER_PERIOD_MAX_US)
                period_us = WRITER_PERIOD_MAX_US;
        }
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

int trace_writer_new(FILE *file, trace_format format, trace_writer **out)
{
    /* Aligned for the cache-line members. */
    trace_writer *w = g_aligned_alloc0(1, sizeof(trace_writer), _Alignof(trace_writer));
    pthread_condattr_t attr;
    int err;

    pthread_mutex_init(&w->mu, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cond, &attr);
    pthread_condattr_destroy(&attr);
    w->file = file;
    w->fd = fileno(file);
    w->format = format;
    struct stat st;
    w->prealloc = fstat(w->fd, &st) == 0 && S_ISREG(st.st_mode);
    if (w->prealloc)
        w->pos = w->alloc_end = (uint64_t)lseek(w->fd, 0, SEEK_CUR);
    w->ring.slots = g_new(trace_event, RING_SLOTS);
    w->slots = w->ring.slots;
    w->text = g_malloc(TEXT_BUF);
    err = pthread_create(&w->thread, NULL, writer_main, w);
    if (err) {
        g_free(w->ring.slots);
        g_free(w->text);
        pthread_cond_destroy(&w->cond);
        pthread_mutex_destroy(&w->mu);
        g_aligned_free(w);
        return -err;
    }
    pthread_setname_np(w->thread, "trace-writer");
    *out = w;
    return 0;
}

void trace_writer_kick(trace_writer *w)
{
    if (__atomic_load_n(&w->wake_sent, __ATOMIC_RELAXED))
        return;
    w->ring.tail_seen = __atomic_load_n(&w->ring.tail, __ATOMIC_ACQUIRE);
    if (w->ring.head - w->ring.tail_seen >= RING_SLOTS / 2) {
        __atomic_store_n(&w->wake_sent, true, __ATOMIC_RELAXED);
        pthread_mutex_lock(&w->mu);
        pthread_cond_broadcast(&w->cond);
        pthread_mutex_unlock(&w->mu);
    }
}

void trace_writer_hold(trace_writer *w)
{
    __atomic_add_fetch(&w->holders, 1, __ATOMIC_RELAXED);
}

void trace_writer_wait_room(trace_writer *w)
{
    pthread_mutex_lock(&w->mu);
    w->room_waiters++;
    pthread_cond_broadcast(&w->cond); /* the writer may be asleep */
    /* Until half the ring is free, not one slot: a producer that outruns
     * the writer then sleeps once per half ring, not once per slot. */
    while (!w->detached && ring_over_half(w))
        pthread_cond_wait(&w->cond, &w->mu);
    w->room_waiters--;
    __atomic_sub_fetch(&w->holders, 1, __ATOMIC_RELAXED);
    if (w->detached)
        pthread_cond_broadcast(&w->cond); /* the closer waits for holders to reach 0 */
    pthread_mutex_unlock(&w->mu);
}

int trace_writer_flush(trace_writer *w)
{
    uint64_t target = __atomic_load_n(&w->ring.published, __ATOMIC_ACQUIRE);
    pthread_mutex_lock(&w->mu);
    if (w->written < target) {
        if (w->flush_to < target)
            w->flush_to = target;
        pthread_cond_broadcast(&w->cond);
        while (w->written < target)
            pthread_cond_wait(&w->cond, &w->mu);
    }
    int err = w->err;
    w->err = 0;
    pthread_mutex_unlock(&w->mu);
    return err;
}

int trace_writer_close(trace_writer *w)
{
    pthread_mutex_lock(&w->mu);
    w->detached = true;
    pthread_cond_broadcast(&w->cond);
    while (__atomic_load_n(&w->holders, __ATOMIC_RELAXED) > 0)
        pthread_cond_wait(&w->cond, &w->mu);
    w->stop = true;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);

    int err = w->err;
    /* Give back the blocks reserved past the end (truncating to the same
     * size drops only the reservation), unless the file changed under us
     * (the same path opened again for a new output). */
    struct stat st;
    if (w->alloc_end > w->pos && fstat(w->fd, &st) == 0 && (uint64_t)st.st_size == w->pos &&
        ftruncate(w->fd, (off_t)w->pos) != 0 && !err)
        err = -errno;
    errno = 0;
    if (fclose(w->file) != 0 && !err)
        err = errno ? -errno : -EIO;
    g_free(w->ring.slots);
    g_free(w->text);
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->mu);
    g_aligned_free(w);
    return err;
}

/* SPDX-License-Identifier: MIT */
/*
 * trace_writer.c - writes a trace file from a thread of its own.
 *
 * Lines are appended to a memory buffer on the traced thread; a writer
 * thread hands full buffers to the file, so the write(2) cost of a trace
 * file stays off the request path. Two buffers alternate: the traced
 * threads fill one while the writer writes the other. When both are full
 * the traced thread waits: events are never dropped. The writer also
 * hands over a partly filled buffer every WRITER_PERIOD_US, so a file
 * being followed (tail -f) lags by at most that much.
 *
 * Every function runs under the caller's lock (the trace lock), which
 * also guards the writer's state; waits release it.
 */
#include <errno.h>
#include <glib.h>
#include <pthread.h>
#include <time.h>
#include <stdio.h>
#include <string.h>

#include "trace-internal.h"

#define WRITER_BUF (256u * 1024)
#define WRITER_PERIOD_US (100 * 1000)

_Static_assert(TRACE_LINE_MAX <= WRITER_BUF, "a line must fit in an empty buffer");

struct trace_writer {
    pthread_mutex_t *lock;
    pthread_cond_t cond; /* any change below: buffers swapped or drained, stop */
    pthread_t thread;
    FILE *file;
    char *cur; /* being filled by the traced threads */
    size_t cur_len;
    char *pending; /* being written by the writer thread when pending_len > 0 */
    size_t pending_len;
    unsigned waiters; /* threads inside a wait on cond, other than the writer */
    bool stop;
    int err; /* first write error since the last flush, negative errno */
};

static void swap_locked(trace_writer *w)
{
    char *t = w->pending;
    w->pending = w->cur;
    w->pending_len = w->cur_len;
    w->cur = t;
    w->cur_len = 0;
    pthread_cond_broadcast(&w->cond);
}

static void wait_locked(trace_writer *w)
{
    w->waiters++;
    pthread_cond_wait(&w->cond, w->lock);
    w->waiters--;
    /* A closing thread waits for waiters to reach 0. */
    pthread_cond_broadcast(&w->cond);
}

static void *writer_main(void *data)
{
    trace_writer *w = data;
    bool period_over = false;

    pthread_mutex_lock(w->lock);
    for (;;) {
        if (w->pending_len == 0 && w->cur_len > 0 && (w->stop || period_over))
            swap_locked(w);
        if (w->pending_len > 0) {
            char *buf = w->pending;
            size_t len = w->pending_len;
            pthread_mutex_unlock(w->lock);
            int err = 0;
            errno = 0;
            if (fwrite(buf, 1, len, w->file) != len || fflush(w->file) != 0)
                err = errno ? -errno : -EIO;
            pthread_mutex_lock(w->lock);
            if (err && !w->err)
                w->err = err;
            w->pending_len = 0;
            pthread_cond_broadcast(&w->cond);
            period_over = false;
            continue;
        }
        if (w->stop)
            break;
        struct timespec deadline;
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_nsec += WRITER_PERIOD_US * 1000;
        if (deadline.tv_nsec >= 1000000000) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000;
        }
        period_over = pthread_cond_timedwait(&w->cond, w->lock, &deadline) == ETIMEDOUT;
    }
    pthread_mutex_unlock(w->lock);
    return NULL;
}

int trace_writer_new(FILE *file, pthread_mutex_t *lock, trace_writer **out)
{
    trace_writer *w = g_new0(trace_writer, 1);
    pthread_condattr_t attr;
    int err;

    w->lock = lock;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cond, &attr);
    pthread_condattr_destroy(&attr);
    w->file = file;
    w->cur = g_malloc(WRITER_BUF);
    w->pending = g_malloc(WRITER_BUF);
    err = pthread_create(&w->thread, NULL, writer_main, w);
    if (err) {
        g_free(w->cur);
        g_free(w->pending);
        pthread_cond_destroy(&w->cond);
        g_free(w);
        return -err;
    }
    pthread_setname_np(w->thread, "trace-writer");
    /* The writer hands whole buffers over: stdio buffering would only
     * copy. (Set before the thread's first write, which needs the lock
     * the caller holds.) */
    setvbuf(file, NULL, _IONBF, 0);
    *out = w;
    return 0;
}

bool trace_writer_make_room_locked(trace_writer *w, size_t n)
{
    bool waited = false;
    while (w->cur_len + n > WRITER_BUF) {
        if (w->pending_len == 0) {
            swap_locked(w);
        } else {
            wait_locked(w);
            waited = true;
        }
    }
    return waited;
}

void trace_writer_append_locked(trace_writer *w, const char *data, size_t n)
{
    trace_writer_make_room_locked(w, n);
    memcpy(w->cur + w->cur_len, data, n);
    w->cur_len += n;
}

int trace_writer_flush_locked(trace_writer *w)
{
    while (w->cur_len > 0 || w->pending_len > 0) {
        if (w->pending_len == 0)
            swap_locked(w);
        else
            wait_locked(w);
    }
    int err = w->err;
    w->err = 0;
    return err;
}

int trace_writer_close_locked(trace_writer *w)
{
    /* The caller has detached @w, so only threads already waiting inside
     * it can still append; drain until they are all gone. */
    int err = trace_writer_flush_locked(w);
    while (w->waiters > 0 || w->cur_len > 0 || w->pending_len > 0) {
        if (w->pending_len == 0 && w->cur_len > 0)
            swap_locked(w);
        else
            wait_locked(w);
    }
    if (!err)
        err = w->err;
    w->stop = true;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(w->lock);
    pthread_join(w->thread, NULL);
    pthread_mutex_lock(w->lock);
    errno = 0;
    if (fclose(w->file) != 0 && !err)
        err = errno ? -errno : -EIO;
    g_free(w->cur);
    g_free(w->pending);
    pthread_cond_destroy(&w->cond);
    g_free(w);
    return err;
}

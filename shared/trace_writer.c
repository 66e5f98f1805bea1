/* SPDX-License-Identifier: MIT */
/*
 * trace_writer.c - writes the trace files from a thread of its own.
 *
 * Each thread that fires events while a file output is on has a ring of
 * its own (trace_ring, trace-internal.h). It stores each event, still
 * binary, into a private stage that stays in its cache, copies each
 * full group of events into the ring with streaming stores (the rest of
 * a request batch, at its end, with plain ones; a fire function's event
 * goes straight into the ring), and publishes the count with a release
 * store when the batch ends, behind one fence for all its streaming
 * stores: no lock, no atomic read-modify-write, and, for the bulk of a
 * busy thread's events, no store to a line the writer has read (the
 * streaming stores leave no copy in its cache), so nothing on the
 * firing thread waits for the other core. A fence per group instead of
 * per batch cost the request path about 4% more at 1M live mappings.
 * One writer thread drains every ring, merges the rings by time,
 * formats the lines for each open file (text and JSON Lines can both be
 * on) and writes them. When a ring is full its thread waits for the
 * writer: events are never dropped.
 *
 * Order: each thread's events reach the files in the order it fired
 * them; the rings are merged by timestamp, and a timestamp older than one
 * already written (a thread that handed its event over late) is raised to
 * it, so ts never decreases down a file.
 *
 * A regular file gets its blocks reserved ahead (fallocate, keeping the
 * size), which makes appending to it markedly cheaper on ext4; closing
 * the file gives back what was reserved past its end.
 *
 * The writer polls: once it has caught up it sleeps WRITER_PERIOD_MIN_US,
 * doubling up to WRITER_PERIOD_MAX_US while the rings stay empty, so a
 * steady stream of events costs the producers no wake-up call; a producer
 * wakes it early only when its ring is half full. It does not spin while
 * it waits, which took a whole core: 700 to 960 ns of CPU time per
 * request with a million requests a second, against 340 to 450 asleep.
 * A file being followed (tail -f) lags by at most WRITER_PERIOD_MAX_US.
 *
 * Everything that is not a ring's data (the list of rings, the files,
 * sleeping, waiting for room, flushing, starting and stopping the thread)
 * goes through one mutex. The files change only while the writer thread
 * is stopped: attaching or detaching one stops the thread (it first
 * writes every event already handed over) and starts it again.
 */
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "trace-internal.h"

#define RING_SLOTS TRACE_RING_SLOTS
#define RING_BYTES (RING_SLOTS * sizeof(trace_event))
/* Lines are written in pieces of this size, which stay in cache. */
#define TEXT_BUF (64u * 1024)
/* A regular file's blocks are reserved this far ahead of the lines. */
#define PREALLOC (16u << 20)
/* A ring takes 16384 events: at full speed, a few milliseconds' worth,
 * so a producer seldom finds its ring half full when the writer sleeps
 * the shortest period. */
#define WRITER_PERIOD_MIN_US 200
#define WRITER_PERIOD_MAX_US (100 * 1000)
/* Slots formatted before the tails advance, so a waiting producer gets
 * room without waiting for the whole backlog. */
#define DRAIN_CHUNK 1024u

/* A thread whose ring is full looks for room every SPIN_PAUSES pause
 * instructions (a few microseconds), up to ROOM_SPINS times (about
 * 50 us), before it sleeps: the writer frees room every DRAIN_CHUNK
 * events. */
#define SPIN_PAUSES 64
/* A test builds the writer with one, so its threads sleep almost at
 * once. */
#ifndef ROOM_SPINS
#define ROOM_SPINS 25
#endif

#if defined(__x86_64__) || defined(__i386__)
#define cpu_relax() __builtin_ia32_pause()
#else
#define cpu_relax() ((void)0)
#endif

_Static_assert((RING_SLOTS & (RING_SLOTS - 1)) == 0, "RING_SLOTS must be a power of two");
_Static_assert(TRACE_LINE_MAX <= TEXT_BUF, "a line must fit in an empty buffer");

/* One open trace file. */
typedef struct sink {
    FILE *file; /* NULL: this format has no file */
    int fd;
    char *text; /* lines formatted and not yet written */
    size_t text_len;
    uint64_t pos;       /* bytes written to the file */
    uint64_t alloc_end; /* blocks reserved up to here */
    bool prealloc;      /* a regular file that accepts fallocate */
    int err;            /* first error since the last flush (under mu) */
    /* What the lines of time ts_at start with (ts_len bytes), when
     * ts_known: the lines of a batch share a few times. */
    bool ts_known;
    uint64_t ts_at;
    size_t ts_len;
    char ts_text[TRACE_TS_MAX];
} sink;

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cond; /* the writer's sleep, room, flushes, the thread's end */
    pthread_t thread;
    bool running; /* the thread exists */
    bool stop;    /* the thread is asked to write what it has and end */
    unsigned nsinks;
    trace_ring *rings; /* every thread's ring, newest first */
    unsigned room_waiters;
    uint64_t flush_req, flush_done;
    int wake_sent; /* a producer woke the writer for its backlog (atomic) */
    int lost_err;  /* the files were closed: the thread could not restart */

    /* Changed only while the thread is stopped; the thread's own then. */
    sink sinks[2];
    sink *open[2]; /* the sinks with a file, from the thread's start */
    unsigned nopen;
    uint64_t since_ns;   /* events before this are from before the files */
    uint64_t origin_ns;  /* ts 0 */
    uint64_t last_ts;    /* the latest timestamp written */
    trace_ring **active; /* the rings of one pass, */
    uint64_t *pos, *end; /* their positions in it */
    size_t active_cap;
} W = {.mu = PTHREAD_MUTEX_INITIALIZER};

static pthread_once_t cond_once = PTHREAD_ONCE_INIT;

/* Set once, with the condition: the processor has AVX2, and a group is
 * copied into a ring 32 bytes at a time. */
static bool copy_avx2;

static void cond_init(void)
{
#if defined(__x86_64__)
    copy_avx2 = __builtin_cpu_supports("avx2");
#endif
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&W.cond, &attr);
    pthread_condattr_destroy(&attr);
}

static void ring_free(trace_ring *r)
{
    munmap(r->slots, RING_BYTES);
    g_aligned_free(r);
}

trace_ring *trace_ring_new(void)
{
    pthread_once(&cond_once, cond_init);
    trace_ring *r = g_aligned_alloc0(1, sizeof(*r), _Alignof(trace_ring));
    /* Mapped, not allocated: its pages are touched only as events fill
     * them (an allocator may clear or fill a block it hands out), so a
     * thread that fires a few events costs a page or two. Page-aligned:
     * the streaming stores of a group fill whole lines. */
    void *slots =
        mmap(NULL, RING_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (slots == MAP_FAILED)
        g_error("trace: cannot map a ring of %zu bytes: %s", (size_t)RING_BYTES, g_strerror(errno));
    r->slots = slots;
    r->events = slots;
    pthread_mutex_lock(&W.mu);
    r->next = W.rings;
    W.rings = r;
    pthread_mutex_unlock(&W.mu);
    return r;
}

/* Unlinks and frees the dead rings with nothing left to write (mu held,
 * the thread not in a pass). */
static void reap_locked(void)
{
    for (trace_ring **pp = &W.rings; *pp;) {
        trace_ring *r = *pp;
        if (r->dead && r->tail == __atomic_load_n(&r->published, __ATOMIC_ACQUIRE)) {
            *pp = r->next;
            ring_free(r);
        } else {
            pp = &r->next;
        }
    }
}

void trace_ring_retire(trace_ring *r)
{
    pthread_mutex_lock(&W.mu);
    r->dead = true;
    if (!W.running)
        reap_locked();
    pthread_mutex_unlock(&W.mu);
}

void trace_ring_kick(trace_ring *r)
{
    r->tail_seen = __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE);
    if (r->announced - r->tail_seen < RING_SLOTS / 2 ||
        __atomic_load_n(&W.wake_sent, __ATOMIC_RELAXED))
        return;
    __atomic_store_n(&W.wake_sent, 1, __ATOMIC_RELAXED);
    pthread_mutex_lock(&W.mu);
    pthread_cond_broadcast(&W.cond);
    pthread_mutex_unlock(&W.mu);
}

/* Copies a group of events from the stage to @dst with streaming
 * stores; both are 16-byte aligned. They are ordered before the count
 * that publishes them by store_fence(). The size is a constant, so the
 * loop unrolls: a group is 160 loads and stores of 16 bytes. */
#define GROUP_BYTES (TRACE_RING_GROUP * sizeof(trace_event))
static void stream_copy_group(trace_event *dst, const trace_event *src)
{
#if defined(__x86_64__)
    __m128i *d = (__m128i *)(void *)dst;
    const __m128i *s = (const __m128i *)(const void *)src;
#pragma GCC unroll 16
    for (size_t i = 0; i < GROUP_BYTES / sizeof(__m128i); i++)
        _mm_stream_si128(&d[i], _mm_load_si128(&s[i]));
#else
    memcpy(dst, src, GROUP_BYTES);
#endif
}

#if defined(__x86_64__)
/* The same with 32-byte loads and stores, on a processor with AVX2: half
 * the instructions. Both are 32-byte aligned (a group is whole cache
 * lines of the stage and of the page-aligned ring). */
__attribute__((target("avx2"))) static void stream_copy_group_avx2(trace_event *dst,
                                                                    const trace_event *src)
{
    __m256i *d = (__m256i *)(void *)dst;
    const __m256i *s = (const __m256i *)(const void *)src;
#pragma GCC unroll 16
    for (size_t i = 0; i < GROUP_BYTES / sizeof(__m256i); i++)
        _mm256_stream_si256(&d[i], _mm256_load_si256(&s[i]));
}
#endif

/* Waits until the streaming stores before it are in memory. */
static void store_fence(void)
{
#if defined(__x86_64__)
    _mm_sfence();
#endif
}

_Static_assert(sizeof(trace_event) % 16 == 0, "events copy in 16-byte pieces");
_Static_assert(GROUP_BYTES % 32 == 0, "a group copies in 32-byte pieces");
_Static_assert(RING_SLOTS % TRACE_RING_GROUP == 0, "a group never wraps the ring");

/* Copies the staged events [copied, head) into the ring. */
static void ring_copy(trace_ring *r)
{
    uint64_t from = r->copied, to = r->head;
    if (from == to)
        return;
    /* [from, to) lies within one group: contiguous in the stage and in
     * the ring. A whole group goes in with streaming stores; a few events
     * (a fire function publishes each of its own) with plain ones, as the
     * fence streaming stores need before the count costs more than the
     * copy. */
    trace_event *dst = &r->slots[from % RING_SLOTS];
    const trace_event *src = &r->stage[from % TRACE_RING_GROUP];
    size_t bytes = (size_t)(to - from) * sizeof(trace_event);
    if (to - from == TRACE_RING_GROUP) {
#if defined(__x86_64__)
        if (copy_avx2)
            stream_copy_group_avx2(dst, src);
        else
#endif
            stream_copy_group(dst, src);
        r->fence_owed = true;
    } else {
        memcpy(dst, src, bytes);
    }
    r->copied = to;
}

void trace_ring_publish(trace_ring *r)
{
    ring_copy(r);
    uint64_t to = r->copied;
    if (to == r->announced)
        return;
    /* The events are in memory before the count that publishes them. */
    if (r->fence_owed) {
        store_fence();
        r->fence_owed = false;
    }
    r->announced = to;
    __atomic_store_n(&r->published, to, __ATOMIC_RELEASE);
    if (__builtin_expect(to - r->tail_seen >= RING_SLOTS / 2, 0))
        trace_ring_kick(r);
}

void trace_ring_copy_group(trace_ring *r)
{
    ring_copy(r);
    if (__builtin_expect(r->copied - r->announced >= TRACE_RING_PUBLISH_EVERY, 0))
        trace_ring_publish(r);
}

bool trace_ring_wait_room(trace_ring *r)
{
    /* The writer frees room only up to what is published. */
    trace_ring_publish(r);
    /* The writer frees room every DRAIN_CHUNK events: waiting for it
     * without sleeping first saves both threads a wake-up, which costs
     * more than the wait, and more still in a virtual machine. */
    trace_ring_kick(r);
    for (unsigned i = 0; i < ROOM_SPINS; i++) {
        for (int j = 0; j < SPIN_PAUSES; j++)
            cpu_relax();
        r->tail_seen = __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE);
        if (r->head - r->tail_seen <= RING_SLOTS / 2)
            return true;
    }
    pthread_mutex_lock(&W.mu);
    /* A full barrier between this store and the load of the tail below,
     * as between the writer's store of a tail and its load of the count
     * (publish_tails): else each may miss the other's, the writer waking
     * nobody and this thread sleeping for ever. */
    __atomic_fetch_add(&W.room_waiters, 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    /* Until half the ring is free, not one slot: a producer that outruns
     * the writer then sleeps once per half ring, not once per slot. */
    for (;;) {
        r->tail_seen = __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE);
        if (W.nsinks == 0 || r->head - r->tail_seen <= RING_SLOTS / 2)
            break;
        pthread_cond_broadcast(&W.cond); /* the writer may be asleep */
        pthread_cond_wait(&W.cond, &W.mu);
    }
    __atomic_fetch_sub(&W.room_waiters, 1, __ATOMIC_RELAXED);
    bool on = W.nsinks > 0;
    pthread_mutex_unlock(&W.mu);
    return on;
}

static void set_err(sink *s, int err)
{
    pthread_mutex_lock(&W.mu);
    if (!s->err)
        s->err = err;
    pthread_mutex_unlock(&W.mu);
}

/* Writes the formatted text out; a failure is kept for trace_flush and
 * the text dropped, so producers never wait on a broken file. */
static void write_text(sink *s)
{
    size_t done = 0;
    int err = 0;
    if (s->prealloc && s->pos + s->text_len > s->alloc_end) {
        if (fallocate(s->fd, FALLOC_FL_KEEP_SIZE, (off_t)s->alloc_end, PREALLOC) == 0)
            s->alloc_end += PREALLOC;
        else
            s->prealloc = false; /* not supported, or no space: plain appends */
    }
    while (done < s->text_len) {
        ssize_t n = write(s->fd, s->text + done, s->text_len - done);
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
    s->pos += done;
    s->text_len = 0;
    if (err)
        set_err(s, err);
}

static void write_all(void)
{
    for (unsigned f = 0; f < G_N_ELEMENTS(W.sinks); f++) {
        if (W.sinks[f].file && W.sinks[f].text_len)
            write_text(&W.sinks[f]);
    }
}

/* Formats one slot, its timestamp made relative and non-decreasing,
 * into every file's text. */
static void emit(const trace_event *slot)
{
    if (slot->ts_ns < W.since_ns)
        return; /* fired while no file was on */
    uint64_t ts = slot->ts_ns > W.origin_ns ? slot->ts_ns - W.origin_ns : 0;
    if (ts < W.last_ts)
        ts = W.last_ts;
    W.last_ts = ts;
    if (__builtin_expect((unsigned)slot->id >= TRACE_EVENT_COUNT, 0)) {
        bool run = slot->id == TRACE_RING_RECEIVED_RUN;
        for (unsigned k = 0; k < W.nopen; k++) {
            sink *s = W.open[k];
            if (!run) {
                set_err(s, -EINVAL);
                continue;
            }
            if (s->text_len + TRACE_RECEIVED_PER_SLOT * TRACE_LINE_MAX > TEXT_BUF)
                write_text(s);
            s->text_len += trace_received_run_format_at(slot, ts, (trace_format)(s - W.sinks),
                                                        s->text + s->text_len);
        }
        return;
    }
    /* Formatted straight from the slot, with the time the file shows. */
    for (unsigned k = 0; k < W.nopen; k++) {
        sink *s = W.open[k];
        trace_format f = (trace_format)(s - W.sinks);
        if (s->text_len + TRACE_LINE_MAX > TEXT_BUF)
            write_text(s);
        char *at = s->text + s->text_len;
        if (!s->ts_known || s->ts_at != ts) {
            s->ts_len = trace_ts_format_at(ts, f, at);
            memcpy(s->ts_text, at, TRACE_TS_MAX);
            s->ts_at = ts;
            s->ts_known = true;
        } else {
            /* The whole prefix buffer: what it holds past ts_len the rest
             * of the line overwrites. */
            memcpy(at, s->ts_text, TRACE_TS_MAX);
        }
        s->text_len += s->ts_len + trace_event_format_after_ts(slot, f, at + s->ts_len);
    }
}

/* Hands the slots before the rings' positions back to their producers. */
static void publish_tails(trace_ring **rings, const uint64_t *pos, size_t n)
{
    for (size_t i = 0; i < n; i++)
        __atomic_store_n(&rings[i]->tail, pos[i], __ATOMIC_RELEASE);
    /* Pairs with the one in trace_ring_wait_room: a producer that counted
     * itself as waiting after this load sees the new tails. */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (__atomic_load_n(&W.room_waiters, __ATOMIC_RELAXED)) {
        pthread_mutex_lock(&W.mu);
        pthread_cond_broadcast(&W.cond);
        pthread_mutex_unlock(&W.mu);
    }
}

/*
 * One pass: formats the events the rings' owners had published when it
 * began, merged by time. Returns the number of events. The rings stay
 * alive through the pass (only the writer frees a ring while it runs).
 */
static size_t drain(trace_ring **rings, size_t n)
{
    uint64_t *pos = W.pos, *end = W.end;
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        pos[i] = rings[i]->tail;
        end[i] = __atomic_load_n(&rings[i]->published, __ATOMIC_ACQUIRE);
    }
    for (;;) {
        /* The ring whose next event is the oldest, and the oldest next
         * event of the others. */
        size_t best = n;
        uint64_t best_ts = 0, limit = UINT64_MAX;
        for (size_t i = 0; i < n; i++) {
            if (pos[i] == end[i])
                continue;
            uint64_t ts = rings[i]->events[pos[i] % RING_SLOTS].ts_ns;
            if (best == n || ts < best_ts) {
                if (best != n)
                    limit = best_ts;
                best = i;
                best_ts = ts;
            } else if (ts < limit) {
                limit = ts;
            }
        }
        if (best == n)
            break;
        /* That ring's events up to the others' oldest. */
        trace_ring *r = rings[best];
        do {
            emit(&r->events[pos[best] % RING_SLOTS]);
            pos[best]++;
            if (++count % DRAIN_CHUNK == 0)
                publish_tails(rings, pos, n);
        } while (pos[best] != end[best] && r->events[pos[best] % RING_SLOTS].ts_ns <= limit);
    }
    if (count)
        publish_tails(rings, pos, n);
    return count;
}

/* The rings with published events, into W.active (mu held). */
static size_t collect_active_locked(void)
{
    size_t n = 0;
    reap_locked();
    for (trace_ring *r = W.rings; r; r = r->next) {
        if (__atomic_load_n(&r->published, __ATOMIC_ACQUIRE) == r->tail)
            continue;
        if (n == W.active_cap) {
            W.active_cap = W.active_cap ? 2 * W.active_cap : 8;
            W.active = g_renew(trace_ring *, W.active, W.active_cap);
            W.pos = g_renew(uint64_t, W.pos, W.active_cap);
            W.end = g_renew(uint64_t, W.end, W.active_cap);
        }
        W.active[n++] = r;
    }
    return n;
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

static void *writer_main(void *unused)
{
    (void)unused;
    long period_us = WRITER_PERIOD_MIN_US;

    pthread_mutex_lock(&W.mu);
    for (;;) {
        /* What is asked of this pass is seen before the pass reads the
         * rings, so the pass covers every event fired before the ask. */
        uint64_t flush_want = W.flush_req;
        bool stop = W.stop;
        size_t n = collect_active_locked();
        pthread_mutex_unlock(&W.mu);
        size_t done = n ? drain(W.active, n) : 0;
        /* Lines reach the file once the writer has caught up with the
         * producers (a file being followed lags by no more), and before a
         * flush or the end returns. */
        if (!done || stop || flush_want != W.flush_done)
            write_all();
        pthread_mutex_lock(&W.mu);
        if (flush_want != W.flush_done) {
            W.flush_done = flush_want;
            pthread_cond_broadcast(&W.cond);
        }
        if (stop)
            break;
        if (done) {
            period_us = WRITER_PERIOD_MIN_US;
            continue;
        }
        if (W.stop || W.flush_req != W.flush_done)
            continue;
        __atomic_store_n(&W.wake_sent, 0, __ATOMIC_RELAXED);
        struct timespec deadline;
        deadline_after_us(&deadline, period_us);
        if (pthread_cond_timedwait(&W.cond, &W.mu, &deadline) == ETIMEDOUT &&
            period_us < WRITER_PERIOD_MAX_US) {
            period_us *= 2;
            if (period_us > WRITER_PERIOD_MAX_US)
                period_us = WRITER_PERIOD_MAX_US;
        }
    }
    pthread_mutex_unlock(&W.mu);
    return NULL;
}

/* Starts the thread (mu held). Returns 0 or the negative errno. */
static int start_locked(void)
{
    W.stop = false;
    W.nopen = 0;
    for (unsigned f = 0; f < G_N_ELEMENTS(W.sinks); f++)
        if (W.sinks[f].file)
            W.open[W.nopen++] = &W.sinks[f];
    int err = pthread_create(&W.thread, NULL, writer_main, NULL);
    if (err)
        return -err;
    pthread_setname_np(W.thread, "trace-writer");
    W.running = true;
    return 0;
}

/* Has the thread write every event handed over so far, and end (mu
 * held; released while joining). Only the configuration lock's holder
 * starts and stops it, so nothing else can start it meanwhile. */
static void stop_locked(void)
{
    if (!W.running)
        return;
    W.stop = true;
    pthread_cond_broadcast(&W.cond);
    pthread_mutex_unlock(&W.mu);
    pthread_join(W.thread, NULL);
    pthread_mutex_lock(&W.mu);
    W.running = false;
    W.stop = false;
    /* A flusher waiting on the ended thread has what it waited for. */
    W.flush_done = W.flush_req;
    pthread_cond_broadcast(&W.cond);
}

/* Closes @s: gives back the blocks reserved past the end and closes the
 * file. Returns 0 or the first error (mu held). */
static int sink_close_locked(sink *s)
{
    int err = s->err;
    /* Truncating to the same size drops only the reservation; skipped
     * when the file changed under us (the same path opened again). */
    struct stat st;
    if (s->alloc_end > s->pos && fstat(s->fd, &st) == 0 && (uint64_t)st.st_size == s->pos &&
        ftruncate(s->fd, (off_t)s->pos) != 0 && !err)
        err = -errno;
    errno = 0;
    if (fclose(s->file) != 0 && !err)
        err = errno ? -errno : -EIO;
    g_free(s->text);
    *s = (sink){0};
    return err;
}

/* The files are off: what the rings still hold was fired during the
 * change and is dropped, waiting producers return (mu held, thread
 * stopped). */
static void files_off_locked(void)
{
    for (trace_ring *r = W.rings; r; r = r->next)
        __atomic_store_n(&r->tail, __atomic_load_n(&r->published, __ATOMIC_ACQUIRE),
                         __ATOMIC_RELEASE);
    reap_locked();
    g_free(W.active);
    g_free(W.pos);
    g_free(W.end);
    W.active = NULL;
    W.pos = W.end = NULL;
    W.active_cap = 0;
    pthread_cond_broadcast(&W.cond);
}

/* Starts the thread again for the files still open, or turns the files
 * off when none is (mu held, thread stopped). When the thread cannot be
 * started, the files are closed and the error kept for the next flush or
 * detach. */
static void restart_locked(void)
{
    if (W.nsinks > 0) {
        int e = start_locked();
        if (e < 0) {
            for (unsigned f = 0; f < G_N_ELEMENTS(W.sinks); f++)
                if (W.sinks[f].file)
                    sink_close_locked(&W.sinks[f]);
            W.nsinks = 0;
            W.lost_err = e;
        }
    }
    if (W.nsinks == 0)
        files_off_locked();
}

int trace_files_attach(trace_format format, FILE *file, uint64_t since_ns, uint64_t origin_ns)
{
    pthread_once(&cond_once, cond_init);
    pthread_mutex_lock(&W.mu);
    stop_locked();
    sink *s = &W.sinks[format];
    *s = (sink){.file = file, .fd = fileno(file), .text = g_malloc(TEXT_BUF)};
    struct stat st;
    s->prealloc = fstat(s->fd, &st) == 0 && S_ISREG(st.st_mode);
    if (s->prealloc)
        s->pos = s->alloc_end = (uint64_t)lseek(s->fd, 0, SEEK_CUR);
    if (W.nsinks++ == 0) {
        W.since_ns = since_ns;
        W.origin_ns = origin_ns;
        W.last_ts = 0;
    }
    int err = start_locked();
    if (err) {
        g_free(s->text);
        *s = (sink){0}; /* the file stays the caller's */
        W.nsinks--;
        restart_locked();
    }
    pthread_mutex_unlock(&W.mu);
    return err;
}

int trace_files_detach(trace_format format)
{
    pthread_mutex_lock(&W.mu);
    stop_locked();
    int err = 0;
    if (W.sinks[format].file) {
        err = sink_close_locked(&W.sinks[format]);
        W.nsinks--;
    }
    restart_locked();
    if (!err) {
        err = W.lost_err;
        W.lost_err = 0;
    }
    pthread_mutex_unlock(&W.mu);
    return err;
}

int trace_files_flush(void)
{
    pthread_mutex_lock(&W.mu);
    if (W.running) {
        uint64_t want = ++W.flush_req;
        pthread_cond_broadcast(&W.cond);
        while (W.running && W.flush_done < want)
            pthread_cond_wait(&W.cond, &W.mu);
    }
    int err = W.lost_err;
    W.lost_err = 0;
    for (unsigned f = 0; f < G_N_ELEMENTS(W.sinks); f++) {
        if (!err)
            err = W.sinks[f].err;
        W.sinks[f].err = 0;
    }
    pthread_mutex_unlock(&W.mu);
    return err;
}

/* SPDX-License-Identifier: MIT */
/*
 * The vfio-user trace events (messages sent, replies, waits, dirty
 * bitmaps, reconnects), recorded through a trace callback while the DMA
 * mapper talks to the reference server over a real socket.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <glib.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "trace_points.h"
#include "vfio-user-server.h"
#include "vfio-user.h"

#define PG 4096ull
#define RAM_SIZE (16ull << 20)
#define RAM_GPA 0x40000000ull

typedef struct harness {
    char dir[64];
    char path[96];
    vfio_user_server *srv;
    GThread *thread;
    int memfd;
    uint8_t *ram;
    guest_mem *gm;
    vfio_user_mapper *m;
    unsigned dma_calls;
    GArray *failed; /* mapping_event */
} harness;

static harness h;

static gpointer server_thread(gpointer data)
{
    vfio_user_server_run(data);
    return NULL;
}

/* Isolated mode: the device's DMA arrives here; IOVA == GPA - RAM_GPA + IOVA_BASE
 * is not assumed, the test maps IOVA 1:1 onto GPA offsets below. */
static int dma_rw(void *opaque, uint64_t iova, void *buf, uint64_t len, bool write)
{
    harness *hh = opaque;
    hh->dma_calls++;
    /* Tests map IOVA X to GPA RAM_GPA + (X - 0x100000). */
    if (iova < 0x100000)
        return -EFAULT;
    return guest_mem_rw(hh->gm, RAM_GPA + (iova - 0x100000), buf, len, write);
}

static void start(vfio_user_server_profile profile, vfio_user_dialect dialect,
                  const vfio_user_mapper_config *mcfg, const vfio_user_server_faults *faults)
{
    GError *err = NULL;
    memset(&h, 0, sizeof(h));
    snprintf(h.dir, sizeof(h.dir), "/tmp/mapper-test-XXXXXX");
    cr_assert_not_null(g_mkdtemp(h.dir));
    snprintf(h.path, sizeof(h.path), "%s/sock", h.dir);

    vfio_user_server_options opts;
    vfio_user_server_options_init(&opts);
    opts.profile = profile;
    opts.dialect = dialect;
    if (faults)
        opts.faults = *faults;
    h.srv = vfio_user_server_new(h.path, &opts, &err);
    cr_assert_not_null(h.srv, "server: %s", err ? err->message : "");
    h.thread = g_thread_new("server", server_thread, h.srv);

    h.memfd = memfd_create("guest-ram", 0);
    cr_assert_geq(h.memfd, 0);
    cr_assert_eq(ftruncate(h.memfd, RAM_SIZE), 0);
    h.ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, h.memfd, 0);
    cr_assert_neq(h.ram, MAP_FAILED);
    h.gm = guest_mem_new(PG);
    cr_assert_eq(guest_mem_add(h.gm, RAM_GPA, RAM_SIZE, h.memfd, 0, h.ram), 0);

    vfio_user_client_config ccfg;
    vfio_user_client_config_init(&ccfg, profile == VFIO_USER_SERVER_PROFILE_OWN
                                            ? dialect
                                            : (profile == VFIO_USER_SERVER_PROFILE_LIBVFIO_USER_2026
                                                   ? VFIO_USER_DIALECT_FINAL
                                                   : VFIO_USER_DIALECT_0_9_1));
    ccfg.timeout_ms = 5000;
    if (profile != VFIO_USER_SERVER_PROFILE_QEMU_7_2) {
        ccfg.caps.migration = true;
        ccfg.caps.pgsize = PG;
    }
    vfio_user_client_ops ops = {.dma_rw = dma_rw};
    h.m = vfio_user_mapper_connect(h.path, &ccfg, &ops, &h, h.gm, mcfg, &err);
    cr_assert_not_null(h.m, "mapper: %s", err ? err->message : "");
    h.failed = g_array_new(FALSE, FALSE, sizeof(mapping_event));
}

static void stop(void)
{
    vfio_user_mapper_free(h.m);
    vfio_user_server_stop(h.srv);
    g_thread_join(h.thread);
    vfio_user_server_free(h.srv);
    guest_mem_free(h.gm);
    munmap(h.ram, RAM_SIZE);
    close(h.memfd);
    rmdir(h.dir);
    g_array_free(h.failed, TRUE);
}

static void on_failed(void *opaque, const mapping_event *ev, int err)
{
    (void)opaque;
    mapping_event e = *ev;
    e.seq = (uint32_t)-err; /* keep the errno alongside */
    g_array_append_val(h.failed, e);
}

static mapping_event ev_at(uint64_t iova, uint64_t size, uint32_t prot, uint32_t seq)
{
    mapping_event e = {
        .endpoint = 24,
        .domain = 1,
        .iova = iova,
        .iova_last = iova + size - 1,
        .gpa = RAM_GPA + (iova - 0x100000),
        .prot = prot,
        .seq = seq,
    };
    return e;
}

/* A batch of @n events: map when maps[i], else unmap. Returns batch_end's result. */
static int batch(const mapping_event *evs, const bool *maps, size_t n, int *map_results)
{
    mapping_listener l = vfio_user_mapper_listener(h.m);
    l.ops->batch_begin(l.opaque);
    for (size_t i = 0; i < n; i++) {
        int r = maps[i] ? l.ops->map(l.opaque, &evs[i]) : l.ops->unmap(l.opaque, &evs[i]);
        if (map_results)
            map_results[i] = r;
    }
    return l.ops->batch_end(l.opaque, on_failed, NULL);
}

static int map_one(uint64_t iova, uint64_t size)
{
    mapping_event e = ev_at(iova, size, MAPPING_PROT_READ | MAPPING_PROT_WRITE, 0);
    bool yes = true;
    int r = 0;
    int ret = batch(&e, &yes, 1, &r);
    return r < 0 ? r : ret;
}

static void unmap_one(uint64_t iova, uint64_t size)
{
    mapping_event e = ev_at(iova, size, 0, 0);
    bool no = false;
    cr_assert_eq(batch(&e, &no, 1, NULL), 0);
}

/* Asks the sample device to write @len bytes of @fill at @iova; returns DMA_STATUS. */
static uint32_t device_write(uint64_t iova, uint32_t len, uint8_t fill)
{
    vfio_user_client *c = vfio_user_mapper_client(h.m);
    uint64_t addr = GUINT64_TO_LE(iova);
    uint32_t l = GUINT32_TO_LE(len), f = GUINT32_TO_LE(fill), cmd = GUINT32_TO_LE(1), status = 0;
    cr_assert_eq(vfio_user_client_region_write(c, 0, VFIO_USER_SAMPLE_DMA_ADDR, &addr, 8), 0);
    cr_assert_eq(vfio_user_client_region_write(c, 0, VFIO_USER_SAMPLE_DMA_LEN, &l, 4), 0);
    cr_assert_eq(vfio_user_client_region_write(c, 0, VFIO_USER_SAMPLE_DMA_FILL, &f, 4), 0);
    cr_assert_eq(vfio_user_client_region_write(c, 0, VFIO_USER_SAMPLE_DMA_CMD, &cmd, 4), 0);
    cr_assert_eq(vfio_user_client_region_read(c, 0, VFIO_USER_SAMPLE_DMA_STATUS, &status, 4), 0);
    return GUINT32_FROM_LE(status);
}

#define MAX_EVENTS 4096

static trace_event rec[MAX_EVENTS];
static unsigned nrec;

static void record(void *opaque, const trace_event *ev)
{
    (void)opaque;
    if (nrec < MAX_EVENTS)
        rec[nrec] = *ev;
    nrec++;
}

static unsigned count(trace_event_id id)
{
    unsigned c = 0;
    for (unsigned i = 0; i < nrec && i < MAX_EVENTS; i++)
        c += rec[i].id == id;
    return c;
}

Test(vfio_user_trace, every_request_sent_has_one_reply_with_its_id_and_command)
{
    start(VFIO_USER_SERVER_PROFILE_OWN, VFIO_USER_DIALECT_2021, NULL, NULL);
    nrec = 0;
    trace_set_callback(record, NULL);
    mapping_event evs[3] = {
        ev_at(0x100000, PG, MAPPING_PROT_READ, 0),
        ev_at(0x200000, PG, MAPPING_PROT_READ, 1),
        ev_at(0x300000, PG, MAPPING_PROT_READ, 2),
    };
    bool maps[3] = {true, true, true};
    cr_assert_eq(batch(evs, maps, 3, NULL), 0);
    trace_stop();
    cr_assert_leq(nrec, MAX_EVENTS);

    unsigned sends = count(TRACE_EV_vfio_user_send);
    cr_assert_geq(sends, 1);
    cr_assert_eq(count(TRACE_EV_vfio_user_reply), sends);
    cr_assert_eq(count(TRACE_EV_vfio_user_wait), 1, "the batch waits once");
    for (unsigned i = 0; i < nrec; i++) {
        if (rec[i].id != TRACE_EV_vfio_user_send)
            continue;
        const trace_vfio_user_send_fields *s = &rec[i].u.vfio_user_send;
        cr_assert_eq(vfio_user_command_op(VFIO_USER_DIALECT_2021, (uint16_t)s->command),
                     VFIO_USER_OP_DMA_MAP);
        cr_assert_geq(s->size, 16 + 32, "a header and at least one table entry");
        cr_assert_geq(s->fds, 1, "guest RAM travels as an fd");
        bool answered = false;
        for (unsigned j = i + 1; j < nrec; j++) {
            const trace_vfio_user_reply_fields *r = &rec[j].u.vfio_user_reply;
            if (rec[j].id != TRACE_EV_vfio_user_reply || r->id != s->id)
                continue;
            cr_assert_eq(r->device, s->device);
            cr_assert_eq(r->command, s->command);
            cr_assert_eq(r->error, 0);
            cr_assert_geq(r->size, 16);
            answered = true;
        }
        cr_assert(answered, "message %u has its reply", s->id);
    }
    stop();
}

Test(vfio_user_trace, an_unmap_during_tracking_reports_the_dirty_pages_it_collected)
{
    vfio_user_mapper_config cfg = {0};
    start(VFIO_USER_SERVER_PROFILE_OWN, VFIO_USER_DIALECT_2021, &cfg, NULL);
    cr_assert_eq(map_one(0x100000, 8 * PG), 0);
    cr_assert_eq(vfio_user_mapper_dirty_start(h.m), 0);
    cr_assert_eq(device_write(0x102000, 10, 7), 0); /* page 2 */
    cr_assert_eq(device_write(0x106ff0, 32, 7), 0); /* pages 6 and 7 */
    nrec = 0;
    trace_set_callback(record, NULL);
    unmap_one(0x100000, 8 * PG);
    trace_stop();
    cr_assert_eq(count(TRACE_EV_dirty_collected), 1);
    for (unsigned i = 0; i < nrec; i++) {
        if (rec[i].id != TRACE_EV_dirty_collected)
            continue;
        const trace_dirty_collected_fields *d = &rec[i].u.dirty_collected;
        cr_assert_eq(d->iova, 0x100000);
        cr_assert_eq(d->iova_last, 0x100000 + 8 * PG - 1);
        cr_assert_eq(d->pgsize, PG);
        cr_assert_eq(d->pages_set, 3);
    }
    cr_assert_eq(vfio_user_mapper_dirty_stop(h.m), 0);
    stop();
}

Test(vfio_user_trace, a_reconnect_is_traced_with_its_attempt_and_result)
{
    vfio_user_mapper_config cfg = {0};
    vfio_user_server_faults f = {
        .kinds = VFIO_USER_SERVER_FAULT_DROP_MID_REPLY,
        .command = VFIO_USER_DMA_UNMAP,
        .count = 1,
    };
    start(VFIO_USER_SERVER_PROFILE_OWN, VFIO_USER_DIALECT_2021, &cfg, &f);
    cr_assert_eq(map_one(0x100000, 2 * PG), 0);
    cr_assert_eq(map_one(0x200000, 2 * PG), 0);
    uint32_t device = vfio_user_client_trace_device(vfio_user_mapper_client(h.m));
    unmap_one(0x200000, 2 * PG);
    cr_assert_not(vfio_user_client_connected(vfio_user_mapper_client(h.m)));
    nrec = 0;
    trace_set_callback(record, NULL);
    cr_assert_eq(map_one(0x300000, PG), 0);
    trace_stop();
    cr_assert_eq(count(TRACE_EV_reconnect), 1);
    unsigned i = 0;
    while (rec[i].id != TRACE_EV_reconnect)
        i++;
    cr_assert_eq(rec[i].u.reconnect.device, device);
    cr_assert_eq(rec[i].u.reconnect.attempt, 1);
    cr_assert_eq(rec[i].u.reconnect.error, 0);
    cr_assert_eq(vfio_user_client_trace_device(vfio_user_mapper_client(h.m)), device,
                 "the device keeps its number across the reconnect");
    /* Only the new connection's VERSION handshake precedes the renumbering. */
    unsigned maps = 0;
    for (i = 0; i < nrec; i++) {
        if (rec[i].id != TRACE_EV_vfio_user_send ||
            rec[i].u.vfio_user_send.command == VFIO_USER_VERSION)
            continue;
        cr_assert_eq(rec[i].u.vfio_user_send.device, device);
        maps++;
    }
    cr_assert_geq(maps, 2, "the kept mapping again, then the new one");
    stop();
}

/* SPDX-License-Identifier: MIT */
/*
 * The trace events of the device model, recorded through a trace
 * callback while requests run the full request path.
 */
#include <glib/gstdio.h>

#include "viommu_test.h"

#define MAX_EVENTS 128

typedef struct recorder {
    trace_event ev[MAX_EVENTS];
    unsigned n;
} recorder;

static recorder rec;

static void record(void *opaque, const trace_event *ev)
{
    recorder *r = opaque;
    if (r->n < MAX_EVENTS)
        r->ev[r->n] = *ev;
    r->n++;
}

static void start(void)
{
    memset(&rec, 0, sizeof(rec));
    trace_set_callback(record, &rec);
}

/* The index of the first event @id at or after @from, or -1. */
static int find(trace_event_id id, unsigned from)
{
    for (unsigned i = from; i < rec.n && i < MAX_EVENTS; i++)
        if (rec.ev[i].id == id)
            return (int)i;
    return -1;
}

static unsigned count(trace_event_id id)
{
    unsigned c = 0;
    for (unsigned i = 0; i < rec.n && i < MAX_EVENTS; i++)
        c += rec.ev[i].id == id;
    return c;
}

typedef struct listener_log {
    int map_rc;
    unsigned maps, unmaps;
} listener_log;

static int on_map(void *opaque, const mapping_event *ev)
{
    (void)ev;
    listener_log *l = opaque;
    l->maps++;
    return l->map_rc;
}

static int on_unmap(void *opaque, const mapping_event *ev)
{
    (void)ev;
    listener_log *l = opaque;
    l->unmaps++;
    return 0;
}

static const mapping_listener_ops log_ops = {.map = on_map, .unmap = on_unmap};

Test(trace_request, nothing_is_recorded_while_tracing_is_off)
{
    viommu *v = test_device(0, 1);
    memset(&rec, 0, sizeof(rec));
    cr_assert_eq(test_attach(v, 1, 1, 0), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(rec.n, 0);
    viommu_free(v);
}

Test(trace_request, a_map_is_received_and_done_with_its_fields_in_one_batch)
{
    viommu *v = test_device(0, 1);
    cr_assert_eq(test_attach(v, 7, 1, 0), VIRTIO_IOMMU_S_OK);
    start();
    cr_assert_eq(test_map(v, 7, 0x10000, 0x1ffff, 0x80000, RW), VIRTIO_IOMMU_S_OK);
    trace_stop();

    cr_assert_eq(rec.n, 4, "batch_begin, request_received, request_done, batch_end");
    cr_assert_eq(rec.ev[0].id, TRACE_EV_batch_begin);
    uint64_t batch = rec.ev[0].u.batch_begin.batch;
    cr_assert_eq(batch, 2, "the ATTACH was batch 1");

    cr_assert_eq(rec.ev[1].id, TRACE_EV_request_received);
    cr_assert_eq(rec.ev[1].u.request_received.type, VIRTIO_IOMMU_T_MAP);
    cr_assert_eq(rec.ev[1].u.request_received.size,
                 offsetof(struct virtio_iommu_req_map, tail) + 4);
    cr_assert_eq(rec.ev[1].u.request_received.batch, batch);

    cr_assert_eq(rec.ev[2].id, TRACE_EV_request_done);
    const trace_request_done_fields *d = &rec.ev[2].u.request_done;
    cr_assert_eq(d->type, VIRTIO_IOMMU_T_MAP);
    cr_assert_eq(d->domain, 7);
    cr_assert_eq(d->endpoint, 0);
    cr_assert_eq(d->virt_start, 0x10000);
    cr_assert_eq(d->virt_end, 0x1ffff);
    cr_assert_eq(d->phys_start, 0x80000);
    cr_assert_eq(d->flags, RW);
    cr_assert_eq(d->status, VIRTIO_IOMMU_S_OK);
    cr_assert_eq(d->batch, batch);

    cr_assert_eq(rec.ev[3].id, TRACE_EV_batch_end);
    cr_assert_eq(rec.ev[3].u.batch_end.batch, batch);
    cr_assert_eq(rec.ev[3].u.batch_end.requests, 1);
    cr_assert_geq(rec.ev[3].u.batch_end.latency_ns, d->latency_ns);
    viommu_free(v);
}

Test(trace_request, a_refused_unmap_is_done_with_its_status)
{
    viommu *v = test_device(0, 1);
    cr_assert_eq(test_attach(v, 1, 1, 0), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(test_map(v, 1, 0, 0x1fff, 0, RW), VIRTIO_IOMMU_S_OK);
    start();
    cr_assert_eq(test_unmap(v, 1, 0, 0xfff), VIRTIO_IOMMU_S_RANGE);
    trace_stop();
    int i = find(TRACE_EV_request_done, 0);
    cr_assert_geq(i, 0);
    cr_assert_eq(rec.ev[i].u.request_done.type, VIRTIO_IOMMU_T_UNMAP);
    cr_assert_eq(rec.ev[i].u.request_done.status, VIRTIO_IOMMU_S_RANGE);
    cr_assert_eq(rec.ev[i].u.request_done.virt_end, 0xfff);
    viommu_free(v);
}

Test(trace_request, attach_and_detach_create_and_destroy_the_domain)
{
    viommu *v = test_device(0, 1);
    start();
    cr_assert_eq(test_attach(v, 3, 1, 0), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(test_map(v, 3, 0, 0xfff, 0, RW), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(test_detach(v, 3, 1), VIRTIO_IOMMU_S_OK);
    trace_stop();

    int c = find(TRACE_EV_domain_created, 0);
    cr_assert_geq(c, 0);
    cr_assert_eq(rec.ev[c].u.domain_created.domain, 3);
    int a = find(TRACE_EV_endpoint_attached, (unsigned)c);
    cr_assert_gt(a, c, "the domain exists before the endpoint joins it");
    cr_assert_eq(rec.ev[a].u.endpoint_attached.endpoint, 1);
    cr_assert_eq(rec.ev[a].u.endpoint_attached.domain, 3);
    int dt = find(TRACE_EV_endpoint_detached, (unsigned)a);
    cr_assert_gt(dt, a);
    int x = find(TRACE_EV_domain_destroyed, (unsigned)dt);
    cr_assert_gt(x, dt, "the domain dies after its last endpoint left");
    cr_assert_eq(rec.ev[x].u.domain_destroyed.domain, 3);
    cr_assert_eq(rec.ev[x].u.domain_destroyed.mappings, 1);
    viommu_free(v);
}

Test(trace_request, each_listener_call_is_traced_with_its_answer)
{
    viommu *v = test_device(0, 2);
    /* Endpoint 2 joined last and is told first; endpoint 1 refuses. */
    listener_log l1 = {.map_rc = -ENOSPC}, l2 = {0};
    mapping_listener a = {&log_ops, &l1}, b = {&log_ops, &l2};
    cr_assert_eq(viommu_endpoint_set_listener(v, 1, &a), 0);
    cr_assert_eq(viommu_endpoint_set_listener(v, 2, &b), 0);
    cr_assert_eq(test_attach(v, 1, 1, 0), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(test_attach(v, 1, 2, 0), VIRTIO_IOMMU_S_OK);
    start();
    cr_assert_eq(test_map(v, 1, 0x2000, 0x2fff, 0x5000, RW), VIRTIO_IOMMU_S_NOMEM);
    trace_stop();

    cr_assert_eq(count(TRACE_EV_listener_map), 2);
    cr_assert_eq(count(TRACE_EV_listener_unmap), 1, "the map endpoint 2 accepted is taken back");
    bool refused = false;
    for (unsigned i = 0; i < rec.n; i++) {
        if (rec.ev[i].id != TRACE_EV_listener_map)
            continue;
        const trace_listener_map_fields *f = &rec.ev[i].u.listener_map;
        cr_assert_eq(f->iova, 0x2000);
        cr_assert_eq(f->iova_last, 0x2fff);
        cr_assert_eq(f->gpa, 0x5000);
        cr_assert_eq(f->listener, f->endpoint - 1, "listeners are numbered in order of addition");
        if (f->endpoint == 1) {
            cr_assert_eq(f->error, -ENOSPC);
            refused = true;
        } else {
            cr_assert_eq(f->error, 0);
        }
    }
    cr_assert(refused);
    viommu_free(v);
}

/* A listener that turns tracing on or off when it is told a map. */
typedef enum switch_action { SWITCH_NONE, SWITCH_ON, SWITCH_OFF } switch_action;

static int switch_tracing(void *opaque, const mapping_event *ev)
{
    (void)ev;
    switch_action *action = opaque;
    if (*action == SWITCH_ON)
        start();
    else if (*action == SWITCH_OFF)
        trace_stop();
    *action = SWITCH_NONE;
    return 0;
}

static const mapping_listener_ops switch_ops = {.map = switch_tracing, .unmap = on_unmap};

Test(trace_request, a_batch_fires_the_events_tracing_wanted_when_it_started)
{
    viommu *v = test_device(0, 1);
    switch_action action = SWITCH_ON;
    mapping_listener l = {&switch_ops, &action};
    cr_assert_eq(viommu_endpoint_set_listener(v, 1, &l), 0);
    cr_assert_eq(test_attach(v, 1, 1, 0), VIRTIO_IOMMU_S_OK);
    memset(&rec, 0, sizeof(rec));

    /* Tracing goes on within the batch: the batch, listener event
     * included, stays untraced; the next one is traced whole. */
    cr_assert_eq(test_map(v, 1, 0x1000, 0x1fff, 0x1000, RW), VIRTIO_IOMMU_S_OK);
    cr_assert(trace_enabled());
    cr_assert_eq(rec.n, 0);
    cr_assert_eq(test_map(v, 1, 0x2000, 0x2fff, 0x2000, RW), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(count(TRACE_EV_request_received), 1);
    cr_assert_eq(count(TRACE_EV_listener_map), 1);
    cr_assert_eq(count(TRACE_EV_request_done), 1);

    /* Tracing goes off within a traced batch, before its listener event:
     * what the batch fired before is recorded, nothing after. */
    memset(&rec, 0, sizeof(rec));
    action = SWITCH_OFF;
    cr_assert_eq(test_map(v, 1, 0x3000, 0x3fff, 0x3000, RW), VIRTIO_IOMMU_S_OK);
    cr_assert_not(trace_enabled());
    cr_assert_eq(count(TRACE_EV_request_received), 1);
    cr_assert_eq(count(TRACE_EV_listener_map), 0);
    cr_assert_eq(count(TRACE_EV_request_done), 0);
    viommu_free(v);
}

Test(trace_request, a_reported_fault_is_traced)
{
    viommu *v = test_device(0, 1);
    uint8_t buf[sizeof(struct virtio_iommu_fault)];
    struct iovec iov = {buf, sizeof(buf)};
    cr_assert_eq(viommu_event_post(v, &iov, 1, 1), 0);
    cr_assert_eq(test_attach(v, 1, 1, 0), VIRTIO_IOMMU_S_OK);
    start();
    viommu_translation t;
    cr_assert_lt(viommu_translate(v, 1, 0x1234, VIOMMU_ACCESS_READ, &t), 0);
    trace_stop();
    int i = find(TRACE_EV_fault, 0);
    cr_assert_geq(i, 0);
    cr_assert_eq(rec.ev[i].u.fault.endpoint, 1);
    cr_assert_eq(rec.ev[i].u.fault.address, 0x1234);
    cr_assert_eq(rec.ev[i].u.fault.reason, VIRTIO_IOMMU_FAULT_R_MAPPING);
    cr_assert_eq(rec.ev[i].u.fault.flags, VIRTIO_IOMMU_FAULT_F_ADDRESS | VIRTIO_IOMMU_FAULT_F_READ);
    viommu_free(v);
}

/*
 * The same traffic traced three ways must give the same events: through
 * the callback (the fire functions), into a JSON Lines file while the
 * file is the only output (a batch then writes its events straight into
 * its thread's ring), and into the file while a tracer is attached to a
 * probe (the batch then fires them one by one again).
 */
#define SCENARIO_BATCH 17

/* A batch of every kind of request the events have fields for: a map the
 * listeners accept, one endpoint 1 refuses (rolled back), an unmap of two
 * mappings, a request too short to decode, a map with no room for its
 * status (it does not complete), a map whose body spans two buffers,
 * unmaps of nothing, which make the batch longer than one ring slot of
 * request_received events holds, and a detach (last: its events read the
 * clock, and the listener events after them would show their time). */
static void run_scenario(void)
{
    viommu *v = test_device(0, 2);
    listener_log l1 = {0}, l2 = {0};
    mapping_listener a = {&log_ops, &l1}, b = {&log_ops, &l2};
    cr_assert_eq(viommu_endpoint_set_listener(v, 1, &a), 0);
    cr_assert_eq(viommu_endpoint_set_listener(v, 2, &b), 0);
    cr_assert_eq(test_attach(v, 3, 1, 0), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(test_attach(v, 3, 2, 0), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(test_map(v, 3, 0x4000, 0x4fff, 0x9000, RW), VIRTIO_IOMMU_S_OK);

    struct virtio_iommu_req_map m1 = test_map_req(3, 0x1000, 0x1fff, 0x7000, RW);
    struct virtio_iommu_req_map m2 = test_map_req(3, 0x2000, 0x2fff, 0x8000, RW);
    struct virtio_iommu_req_unmap u = test_unmap_req(3, 0x1000, 0x4fff);
    struct virtio_iommu_req_head shorty = {.type = VIRTIO_IOMMU_T_MAP};
    struct virtio_iommu_req_detach d;
    memset(&d, 0, sizeof(d));
    d.head.type = VIRTIO_IOMMU_T_DETACH;
    d.domain = htole32(3);
    d.endpoint = htole32(2);
    struct virtio_iommu_req_map untold = test_map_req(3, 0x5000, 0x5fff, 0xa000, RW);
    struct virtio_iommu_req_map split = test_map_req(3, 0x6000, 0x6fff, 0xb000, RW);
    struct virtio_iommu_req_unmap nothing = test_unmap_req(3, 0x100000, 0x1fffff);
    const size_t map_len = offsetof(struct virtio_iommu_req_map, tail);
    const size_t unmap_len = offsetof(struct virtio_iommu_req_unmap, tail);
    const void *body[SCENARIO_BATCH] = {&m1, &m2, &u, &shorty, &untold, &split};
    size_t len[SCENARIO_BATCH] = {map_len, map_len, unmap_len, sizeof(shorty), map_len, map_len};
    body[SCENARIO_BATCH - 1] = &d;
    len[SCENARIO_BATCH - 1] = offsetof(struct virtio_iommu_req_detach, tail);
    uint8_t tails[SCENARIO_BATCH][4];
    struct iovec rd[SCENARIO_BATCH + 1], wr[SCENARIO_BATCH];
    viommu_request reqs[SCENARIO_BATCH];
    for (unsigned i = 0; i < SCENARIO_BATCH; i++) {
        if (!body[i]) {
            body[i] = &nothing;
            len[i] = unmap_len;
        }
        rd[i] = (struct iovec){(void *)body[i], len[i]};
        wr[i] = (struct iovec){tails[i], sizeof(tails[i])};
        reqs[i] = (viommu_request){&rd[i], 1, &wr[i], 1, 0, 0, 0};
    }
    wr[4].iov_len = 2;
    /* The split map: its head and domain, then the rest. */
    rd[5].iov_len = 8;
    rd[SCENARIO_BATCH] = (struct iovec){(uint8_t *)&split + 8, map_len - 8};
    struct iovec split_rd[2] = {rd[5], rd[SCENARIO_BATCH]};
    reqs[5].readable = split_rd;
    reqs[5].readable_count = 2;
    /* Endpoint 1 refuses the second map only. */
    l1.map_rc = 0;
    cr_assert_eq(viommu_process_batch(v, reqs, 1), 0);
    l1.map_rc = -ENOSPC;
    cr_assert_eq(viommu_process_batch(v, reqs + 1, SCENARIO_BATCH - 1), 0);
    cr_assert_eq(reqs[1].status, VIRTIO_IOMMU_S_NOMEM);
    cr_assert_eq(reqs[2].status, VIRTIO_IOMMU_S_OK);
    cr_assert_eq(reqs[3].status, VIRTIO_IOMMU_S_INVAL);
    cr_assert_eq(reqs[4].status, VIOMMU_STATUS_NONE);
    cr_assert_eq(reqs[5].status, VIRTIO_IOMMU_S_NOMEM, "endpoint 1 refuses it too");
    for (unsigned i = 6; i < SCENARIO_BATCH; i++)
        cr_assert_eq(reqs[i].status, VIRTIO_IOMMU_S_OK);
    viommu_free(v);
}

/* The events of @path's JSON Lines, into rec. */
static void read_events(const char *path)
{
    char *text = NULL;
    cr_assert(g_file_get_contents(path, &text, NULL, NULL));
    memset(&rec, 0, sizeof(rec));
    for (char *line = text, *nl; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        cr_assert_not_null(nl, "whole lines only");
        cr_assert_lt(rec.n, MAX_EVENTS);
        cr_assert_eq(trace_event_parse_json(line, (size_t)(nl - line), &rec.ev[rec.n], NULL), 0,
                     "%.*s", (int)(nl - line), line);
        rec.n++;
    }
    g_free(text);
}

/* Traces run_scenario into a JSON Lines file and reads it back. */
static void scenario_to_file(void)
{
    char *dir = g_dir_make_tmp("trace-request-XXXXXX", NULL);
    char *path = g_build_filename(dir, "batch.jsonl", NULL);
    cr_assert_eq(trace_open_path(TRACE_FORMAT_JSONL, path, NULL), 0);
    run_scenario();
    cr_assert_eq(trace_flush(), 0);
    trace_stop();
    read_events(path);
    g_unlink(path);
    g_rmdir(dir);
    g_free(path);
    g_free(dir);
}

/* Every event of @a and @b the same, times (ts, latencies) aside. */
static void assert_same_events(const recorder *a, const recorder *b)
{
    cr_assert_eq(a->n, b->n);
    for (unsigned i = 0; i < a->n; i++) {
        trace_event x = a->ev[i], y = b->ev[i];
        x.ts_ns = y.ts_ns = 0;
        cr_assert_eq(x.id, y.id, "event %u", i);
        unsigned nf;
        const trace_field_info *fi = trace_event_fields(x.id, &nf);
        for (unsigned f = 0; f < nf; f++) {
            if (strcmp(fi[f].name, "latency_ns") == 0)
                continue;
            uint64_t vx, vy;
            cr_assert_eq(trace_event_field_value(&x, f, &vx), 0);
            cr_assert_eq(trace_event_field_value(&y, f, &vy), 0);
            cr_assert_eq(vx, vy, "event %u (%s) field %u", i, trace_event_name(x.id), f);
        }
    }
}

Test(trace_request, a_batch_writes_the_same_events_into_its_ring_as_the_fire_functions_give)
{
    start();
    run_scenario();
    trace_stop();
    recorder by_callback = rec;
    cr_assert_gt(by_callback.n, 40);
    cr_assert_eq(count(TRACE_EV_request_received), SCENARIO_BATCH + 3, "the set-up's, and all");
    cr_assert_eq(count(TRACE_EV_request_done), SCENARIO_BATCH + 2, "all but the untold map");
    cr_assert_geq(count(TRACE_EV_listener_unmap), 3, "the unmap and the rollback");

    scenario_to_file();
    assert_same_events(&by_callback, &rec);

    /* The batch's clock readings: its start for what it received and what
     * it told the listeners, its completion for request_done and its end. */
    uint64_t begin = 0, end = 0, last = 0;
    for (unsigned i = 0; i < rec.n; i++) {
        const trace_event *ev = &rec.ev[i];
        cr_assert_geq(ev->ts_ns, last, "ts never decreases");
        last = ev->ts_ns;
        switch (ev->id) {
        case TRACE_EV_batch_begin:
            begin = ev->ts_ns;
            end = 0;
            break;
        case TRACE_EV_request_received:
        case TRACE_EV_listener_map:
        case TRACE_EV_listener_unmap:
            if (begin)
                cr_assert_eq(ev->ts_ns, begin, "event %u", i);
            break;
        case TRACE_EV_request_done:
            if (!end)
                end = ev->ts_ns;
            cr_assert_eq(ev->ts_ns, end, "event %u", i);
            cr_assert_eq(ev->u.request_done.latency_ns, end - begin);
            break;
        case TRACE_EV_batch_end:
            cr_assert_eq(ev->ts_ns, end);
            cr_assert_eq(ev->u.batch_end.latency_ns, end - begin);
            begin = 0;
            break;
        default:
            break;
        }
    }

    /* A tracer on one of the batch's probes: the events go through the
     * fire functions, with their probes, and the file is the same. */
    __atomic_store_n(&viommu_listener_map_semaphore, 1, __ATOMIC_RELAXED);
    scenario_to_file();
    __atomic_store_n(&viommu_listener_map_semaphore, 0, __ATOMIC_RELAXED);
    assert_same_events(&by_callback, &rec);
}

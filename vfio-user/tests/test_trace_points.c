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

#include "mapper_harness.h"

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

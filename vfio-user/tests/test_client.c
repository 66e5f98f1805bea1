/* SPDX-License-Identifier: MIT */
/*
 * The client over a real socket against the in-test fake server:
 * negotiation, pipelining and id matching, every command, server
 * requests served while waiting, and fault injection where the client
 * must return an error without hanging, crashing or leaking an fd.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fake_server.h"
#include "private.h"

#define D2021 VFIO_USER_DIALECT_2021
#define D091 VFIO_USER_DIALECT_0_9_1
#define DFINAL VFIO_USER_DIALECT_FINAL

static int count_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    cr_assert_not_null(d);
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the directory's own fd */
}

typedef struct guest {
    uint8_t mem[65536];
    unsigned interrupts;
    uint32_t last_vector;
} guest;

static int guest_dma(void *opaque, uint64_t iova, void *buf, uint64_t len, bool write)
{
    guest *g = opaque;
    if (iova >= sizeof(g->mem) || len > sizeof(g->mem) - iova)
        return -EFAULT;
    if (write)
        memcpy(g->mem + iova, buf, len);
    else
        memcpy(buf, g->mem + iova, len);
    return 0;
}

static void guest_irq(void *opaque, uint32_t vector)
{
    guest *g = opaque;
    g->interrupts++;
    g->last_vector = vector;
}

static const vfio_user_client_ops guest_ops = {.dma_rw = guest_dma, .interrupt = guest_irq};

static vfio_user_client *start(fake_server *f, unsigned window, int timeout_ms, guest *g)
{
    vfio_user_client_config cfg;
    GError *err = NULL;
    int fd = fake_server_start(f);
    cr_assert_geq(fd, 0);
    vfio_user_client_config_init(&cfg, f->dialect);
    cfg.window = window;
    cfg.timeout_ms = timeout_ms;
    cfg.caps.migration = true;
    cfg.caps.pgsize = 4096;
    vfio_user_client *c = vfio_user_client_new(fd, &cfg, &guest_ops, g, &err);
    cr_assert_not_null(c, "client: %s", err ? err->message : "?");
    return c;
}

static void stop(fake_server *f, vfio_user_client *c)
{
    vfio_user_client_free(c);
    fake_server_join(f);
}

static vfio_user_msg map_msg(vfio_user_dma_entry *e)
{
    vfio_user_msg m;
    memset(&m, 0, sizeof(m));
    m.op = VFIO_USER_OP_DMA_MAP;
    m.dma.entries = e;
    m.dma.count = 1;
    return m;
}

typedef struct tally {
    unsigned done, failed;
    int last;
} tally;

static void count_done(void *opaque, int result, const vfio_user_msg *reply)
{
    tally *t = opaque;
    (void)reply;
    t->done++;
    if (result < 0) {
        t->failed++;
        t->last = result;
    }
}

Test(vfio_user_client, negotiates_version_and_learns_the_server_caps_in_every_dialect)
{
    vfio_user_dialect ds[] = {D2021, D091, DFINAL};
    for (int i = 0; i < 3; i++) {
        fake_server f;
        fake_server_init(&f, ds[i]);
        vfio_user_client *c = start(&f, 0, 0, NULL);
        const vfio_user_caps *sc = vfio_user_client_server_caps(c);
        cr_assert_eq(sc->max_msg_fds, 8);
        cr_assert_eq(sc->pgsize, 4096);
        cr_assert(sc->unmap_partial);
        cr_assert_eq(vfio_user_client_max_msg_size(c), 1048576 + 32);
        cr_assert(vfio_user_client_connected(c));
        cr_assert_eq(vfio_user_client_dialect(c), ds[i]);
        stop(&f, c);
    }
}

Test(vfio_user_client, pipelined_dma_maps_are_waited_once)
{
    fake_server f;
    fake_server_init(&f, D091);
    f.hold = 32; /* the server answers only once all 32 arrived */
    vfio_user_client *c = start(&f, 64, 0, NULL);
    vfio_user_client_stats before, after;
    vfio_user_client_stats_get(c, &before);
    tally t = {0};
    vfio_user_dma_entry e[32];
    for (int i = 0; i < 32; i++) {
        e[i] = (vfio_user_dma_entry){.iova = (uint64_t)i << 12, .size = 4096, .prot = 3, .fd = -1};
        vfio_user_msg m = map_msg(&e[i]);
        cr_assert_eq(vfio_user_client_submit(c, &m, 0, count_done, &t), 0);
    }
    cr_assert_eq(vfio_user_client_in_flight(c), 32);
    cr_assert_eq(vfio_user_client_wait_all(c), 0);
    vfio_user_client_stats_get(c, &after);
    cr_assert_eq(t.done, 32);
    cr_assert_eq(t.failed, 0);
    cr_assert_eq(after.waits - before.waits, 1);
    cr_assert_eq(after.messages_sent - before.messages_sent, 32);
    cr_assert_eq(after.replies_received - before.replies_received, 32);
    cr_assert_eq(after.bytes_sent - before.bytes_sent, 32 * 48);
    stop(&f, c);
}

typedef struct read_slot {
    uint64_t offset;
    uint8_t got[16];
    int result;
    bool done;
} read_slot;

static void read_done(void *opaque, int result, const vfio_user_msg *reply)
{
    read_slot *s = opaque;
    s->result = result;
    s->done = true;
    if (result == 0)
        memcpy(s->got, reply->region_io.data, 16);
}

Test(vfio_user_client, replies_in_another_order_are_matched_by_id)
{
    fake_server f;
    fake_server_init(&f, D2021);
    vfio_user_client *c = start(&f, 16, 0, NULL);
    uint8_t pattern[256];
    for (int i = 0; i < 256; i++)
        pattern[i] = (uint8_t)i;
    cr_assert_eq(vfio_user_client_region_write(c, 1, 0, pattern, sizeof(pattern)), 0);

    f.reverse = true;
    f.hold = 8;
    read_slot s[8];
    for (int i = 0; i < 8; i++) {
        s[i] = (read_slot){.offset = (uint64_t)i * 16};
        vfio_user_msg m;
        memset(&m, 0, sizeof(m));
        m.op = VFIO_USER_OP_REGION_READ;
        m.region_io.region = 1;
        m.region_io.offset = s[i].offset;
        m.region_io.count = 16;
        cr_assert_eq(vfio_user_client_submit(c, &m, 0, read_done, &s[i]), 0);
    }
    cr_assert_eq(vfio_user_client_wait_all(c), 0);
    for (int i = 0; i < 8; i++) {
        cr_assert(s[i].done);
        cr_assert_eq(s[i].result, 0);
        cr_assert_eq(memcmp(s[i].got, pattern + i * 16, 16), 0, "slot %d got another reply", i);
    }
    stop(&f, c);
}

Test(vfio_user_client, the_window_bounds_requests_in_flight)
{
    fake_server f;
    fake_server_init(&f, D091);
    vfio_user_client *c = start(&f, 4, 0, NULL);
    tally t = {0};
    vfio_user_dma_entry e = {.size = 4096, .prot = 1, .fd = -1};
    for (int i = 0; i < 40; i++) {
        e.iova = (uint64_t)i << 12;
        vfio_user_msg m = map_msg(&e);
        cr_assert_eq(vfio_user_client_submit(c, &m, 0, count_done, &t), 0);
        cr_assert_leq(vfio_user_client_in_flight(c), 4);
    }
    cr_assert_eq(vfio_user_client_wait_all(c), 0);
    cr_assert_eq(t.done, 40);
    cr_assert_eq(f.commands, 40);
    stop(&f, c);
}

static void open_fds(int *fds, int n)
{
    for (int i = 0; i < n; i++) {
        fds[i] = open("/dev/zero", O_RDONLY | O_CLOEXEC);
        cr_assert_geq(fds[i], 0);
    }
}

static void close_all(int *fds, int n)
{
    for (int i = 0; i < n; i++)
        close(fds[i]);
}

Test(vfio_user_client, dma_map_2021_sends_tables_with_at_most_max_msg_fds_fds)
{
    fake_server f;
    fake_server_init(&f, D2021);
    f.version_json = "{\"capabilities\":{\"max_msg_fds\":2,\"max_msg_size\":65536}}";
    int before = count_fds();
    vfio_user_client *c = start(&f, 0, 0, NULL);
    int fds[7];
    open_fds(fds, 7);
    vfio_user_dma_entry e[9];
    for (int i = 0; i < 9; i++)
        e[i] = (vfio_user_dma_entry){
            .iova = (uint64_t)i << 20, .size = 1 << 20, .prot = 3, .fd = i < 7 ? fds[i] : -1};
    cr_assert_eq(vfio_user_client_dma_map(c, e, 9), 0);
    stop(&f, c);
    close_all(fds, 7);
    cr_assert_eq(f.fds_received, 7);
    cr_assert_eq(f.max_fds_per_msg, 2);
    cr_assert_gt(f.max_table, 1);
    cr_assert_eq(f.commands, 4); /* 2 + 2 + 2 + (1 mappable and 2 fd-less) */
    cr_assert_eq(count_fds(), before);
}

Test(vfio_user_client, dma_map_outside_2021_sends_one_region_per_message)
{
    fake_server f;
    fake_server_init(&f, DFINAL);
    vfio_user_client *c = start(&f, 0, 0, NULL);
    int fds[3];
    open_fds(fds, 3);
    vfio_user_dma_entry e[3];
    for (int i = 0; i < 3; i++)
        e[i] = (vfio_user_dma_entry){
            .iova = (uint64_t)i << 20, .size = 1 << 20, .prot = 3, .fd = fds[i]};
    cr_assert_eq(vfio_user_client_dma_map(c, e, 3), 0);
    vfio_user_client_stats st;
    vfio_user_client_stats_get(c, &st);
    cr_assert_eq(st.fds_sent, 3);
    stop(&f, c);
    close_all(fds, 3);
    cr_assert_eq(f.commands, 3);
    cr_assert_eq(f.max_table, 1);
    cr_assert_eq(f.max_fds_per_msg, 1);
}

static void unmap_with_bitmaps(vfio_user_dialect d)
{
    fake_server f;
    fake_server_init(&f, d);
    f.dirty_fill = 0x5a;
    vfio_user_client *c = start(&f, 0, 0, NULL);
    uint8_t b0[8], b2[64];
    memset(b0, 0, sizeof(b0));
    memset(b2, 0, sizeof(b2));
    vfio_user_dma_entry e[3] = {
        {.iova = 0, .size = 16 * 4096, .flags = 1, .bitmap_pgsize = 4096, .bitmap_size = 8},
        {.iova = 0x100000, .size = 4096},
        {.iova = 0x200000, .size = 0x200000, .flags = 1, .bitmap_pgsize = 4096, .bitmap_size = 64},
    };
    uint8_t *bitmaps[3] = {b0, NULL, b2};
    cr_assert_eq(vfio_user_client_dma_unmap(c, e, 3, bitmaps), 0);
    cr_assert_eq(b0[7], 0x5a);
    cr_assert_eq(b2[0], 0x5a);
    cr_assert_eq(b2[63], 0x5a);
    stop(&f, c);
    cr_assert_eq(f.commands, d == D2021 ? 1 : 3);
}

Test(vfio_user_client, dma_unmap_returns_the_bitmaps_in_2021)
{
    unmap_with_bitmaps(D2021);
}

Test(vfio_user_client, dma_unmap_returns_the_bitmaps_in_0_9_1)
{
    unmap_with_bitmaps(D091);
}

Test(vfio_user_client, unmap_all_is_one_message)
{
    fake_server f;
    fake_server_init(&f, D091);
    vfio_user_client *c = start(&f, 0, 0, NULL);
    cr_assert_eq(vfio_user_client_dma_unmap_all(c), 0);
    stop(&f, c);
    cr_assert_eq(f.commands, 1);
}

Test(vfio_user_client, dirty_pages_start_get_and_stop)
{
    vfio_user_dialect ds[] = {D2021, D091};
    for (int i = 0; i < 2; i++) {
        fake_server f;
        fake_server_init(&f, ds[i]);
        f.dirty_fill = 0x11;
        vfio_user_client *c = start(&f, 0, 0, NULL);
        uint8_t bm[64] = {0};
        cr_assert_eq(vfio_user_client_dirty_pages(c, VFIO_USER_DIRTY_PAGES_FLAG_START), 0);
        cr_assert_eq(vfio_user_client_dirty_pages_get(c, 0x100000, 0x200000, 4096, bm, 64), 0);
        cr_assert_eq(bm[10], 0x11);
        cr_assert_eq(vfio_user_client_dirty_pages(c, VFIO_USER_DIRTY_PAGES_FLAG_STOP), 0);
        stop(&f, c);
        cr_assert_not(f.logging);
    }
}

Test(vfio_user_client, dirty_pages_do_not_exist_in_final)
{
    fake_server f;
    fake_server_init(&f, DFINAL);
    vfio_user_client *c = start(&f, 0, 0, NULL);
    cr_assert_eq(vfio_user_client_dirty_pages(c, VFIO_USER_DIRTY_PAGES_FLAG_START), -ENOTSUP);
    cr_assert(vfio_user_client_connected(c));
    stop(&f, c);
}

Test(vfio_user_client, dma_logging_start_report_and_stop_in_final)
{
    fake_server f;
    fake_server_init(&f, DFINAL);
    f.dirty_fill = 0x81;
    vfio_user_client *c = start(&f, 0, 0, NULL);
    vfio_user_dma_entry r[2] = {{.iova = 0x100000, .size = 0x200000},
                                {.iova = 0x400000, .size = 0x200000}};
    cr_assert_eq(vfio_user_client_dma_logging_start(c, 4096, r, 2), 0);
    uint8_t bm[64] = {0};
    cr_assert_eq(vfio_user_client_dma_logging_report(c, 0x100000, 0x200000, 4096, bm, 64), 0);
    cr_assert_eq(bm[63], 0x81);
    cr_assert_eq(vfio_user_client_dma_logging_report(c, 0x100000, 0x200000, 4096, bm, 32), -EINVAL);
    cr_assert_eq(vfio_user_client_dma_logging_stop(c), 0);
    stop(&f, c);
    cr_assert_not(f.logging);
}

Test(vfio_user_client, drives_a_device_through_info_region_access_and_reset)
{
    fake_server f;
    fake_server_init(&f, D091);
    vfio_user_client *c = start(&f, 0, 0, NULL);
    vfio_user_device_info di;
    cr_assert_eq(vfio_user_client_device_get_info(c, &di), 0);
    cr_assert_eq(di.num_regions, 2);
    cr_assert(di.flags & VFIO_USER_DEVICE_FLAGS_RESET);
    vfio_user_region_info ri;
    int fd = 99;
    cr_assert_eq(vfio_user_client_region_info(c, 0, &ri, &fd), 0);
    cr_assert_eq(ri.size, 4096);
    cr_assert_eq(fd, -1);
    cr_assert_eq(vfio_user_client_region_info(c, 5, &ri, NULL), -EINVAL);
    uint64_t v = 0x1122334455667788ull, back = 0;
    cr_assert_eq(vfio_user_client_region_write(c, 0, 0x100, &v, 8), 0);
    cr_assert_eq(vfio_user_client_region_read(c, 0, 0x100, &back, 8), 0);
    cr_assert_eq(back, v);
    cr_assert_eq(vfio_user_client_device_reset(c), 0);
    cr_assert_eq(vfio_user_client_region_read(c, 0, 0x100, &back, 8), 0);
    cr_assert_eq(back, 0);
    stop(&f, c);
}

static void program_dma(vfio_user_client *c, uint64_t addr, uint32_t len, uint32_t fill,
                        uint32_t cmd)
{
    cr_assert_eq(vfio_user_client_region_write(c, 0, FAKE_REG_DMA_ADDR, &addr, 8), 0);
    cr_assert_eq(vfio_user_client_region_write(c, 0, FAKE_REG_DMA_LEN, &len, 4), 0);
    cr_assert_eq(vfio_user_client_region_write(c, 0, FAKE_REG_DMA_FILL, &fill, 4), 0);
    cr_assert_eq(vfio_user_client_region_write(c, 0, FAKE_REG_DMA_CMD, &cmd, 4), 0);
}

static uint32_t dma_status(vfio_user_client *c)
{
    uint32_t st = 0xffffffff;
    cr_assert_eq(vfio_user_client_region_read(c, 0, FAKE_REG_DMA_STATUS, &st, 4), 0);
    return st;
}

Test(vfio_user_client, serves_dma_requests_that_arrive_while_it_waits_for_a_reply)
{
    vfio_user_dialect ds[] = {D2021, D091, DFINAL};
    for (int i = 0; i < 3; i++) {
        fake_server f;
        guest g;
        memset(&g, 0, sizeof(g));
        fake_server_init(&f, ds[i]);
        f.interrupt_on_dma = true;
        vfio_user_client *c = start(&f, 0, 0, &g);
        program_dma(c, 0x1000, 300, 0x42, 1); /* the device writes guest memory */
        cr_assert_eq(dma_status(c), 0);
        cr_assert_eq(g.mem[0x1000], 0x42);
        cr_assert_eq(g.mem[0x1000 + 299], 0x42);
        cr_assert_eq(g.mem[0x1000 + 300], 0);
        program_dma(c, 0x1000, 400, 0, 2); /* ... and reads it back */
        uint64_t sum = 0;
        cr_assert_eq(vfio_user_client_region_read(c, 0, FAKE_REG_DMA_SUM, &sum, 8), 0);
        cr_assert_eq(sum, 300u * 0x42);
        if (ds[i] == D2021) {
            cr_assert_eq(g.interrupts, 2);
            cr_assert_eq(g.last_vector, 7);
        }
        vfio_user_client_stats st;
        vfio_user_client_stats_get(c, &st);
        cr_assert_geq(st.server_requests, 2);
        stop(&f, c);
    }
}

Test(vfio_user_client, a_failing_dma_accessor_is_reported_to_the_server)
{
    fake_server f;
    guest g;
    memset(&g, 0, sizeof(g));
    fake_server_init(&f, D091);
    vfio_user_client *c = start(&f, 0, 0, &g);
    program_dma(c, sizeof(g.mem) - 10, 100, 1, 1);
    cr_assert_eq(dma_status(c), EFAULT);
    cr_assert(vfio_user_client_connected(c));
    stop(&f, c);
}

Test(vfio_user_client, large_transfers_survive_short_reads_and_writes)
{
    fake_server f;
    fake_server_init(&f, D091);
    f.short_writes = true;
    f.slow_reads = true;
    vfio_user_client *c = start(&f, 0, 0, NULL);
    size_t n = 256 * 1024;
    uint8_t *out = g_malloc(n), *in = g_malloc0(n);
    for (size_t i = 0; i < n; i++)
        out[i] = (uint8_t)(i * 7);
    cr_assert_eq(vfio_user_client_region_write(c, 1, 4096, out, (uint32_t)n), 0);
    /* The reply comes a byte at a time: 16 + 16 + 64 KiB of single bytes. */
    cr_assert_eq(vfio_user_client_region_read(c, 1, 4096, in, 65536), 0);
    cr_assert_eq(memcmp(in, out, 65536), 0);
    g_free(out);
    g_free(in);
    stop(&f, c);
}

Test(vfio_user_client, transfers_above_the_server_limit_are_refused_before_sending)
{
    fake_server f;
    fake_server_init(&f, D091);
    f.version_json = "{\"capabilities\":{\"max_data_xfer_size\":4096}}";
    vfio_user_client *c = start(&f, 0, 0, NULL);
    static uint8_t big[8192];
    cr_assert_eq(vfio_user_client_region_write(c, 1, 0, big, 8192), -EMSGSIZE);
    cr_assert_eq(vfio_user_client_region_write(c, 1, 0, big, 4096), 0);
    stop(&f, c);
    cr_assert_eq(f.commands, 1);
}

Test(vfio_user_client, a_no_reply_command_is_not_waited_for)
{
    fake_server f;
    fake_server_init(&f, D091);
    vfio_user_client *c = start(&f, 0, 0, NULL);
    vfio_user_msg m;
    memset(&m, 0, sizeof(m));
    m.op = VFIO_USER_OP_DEVICE_RESET;
    cr_assert_eq(vfio_user_client_submit(c, &m, VFIO_USER_SUBMIT_NO_REPLY, NULL, NULL), 0);
    cr_assert_eq(vfio_user_client_in_flight(c), 0);
    vfio_user_device_info di;
    cr_assert_eq(vfio_user_client_device_get_info(c, &di), 0);
    stop(&f, c);
    cr_assert_eq(f.commands, 2);
}

/* ------------------------------------------------------------------ */
/* Faults                                                              */
/* ------------------------------------------------------------------ */

/* Runs DEVICE_RESET against a server with @fault on it; returns the result. */
static int reset_with_fault(vfio_user_dialect d, fake_fault fault, bool *still_connected)
{
    fake_server f;
    int before = count_fds();
    fake_server_init(&f, d);
    f.fault = fault;
    f.fault_at = 1;
    vfio_user_client *c = start(&f, 0, 300, NULL);
    int rc = vfio_user_client_device_reset(c);
    *still_connected = vfio_user_client_connected(c);
    if (*still_connected)
        cr_assert_eq(vfio_user_client_device_reset(c), 0, "the connection stays usable");
    else
        cr_assert_eq(vfio_user_client_device_reset(c), -EPIPE);
    stop(&f, c);
    cr_assert_eq(count_fds(), before, "an fd leaked");
    return rc;
}

Test(vfio_user_client, a_connection_dropped_mid_reply_is_reported_as_a_reset)
{
    bool up;
    cr_assert_eq(reset_with_fault(D091, FAKE_FAULT_DROP_MID_REPLY, &up), -ECONNRESET);
    cr_assert_not(up);
}

Test(vfio_user_client, a_connection_closed_before_the_reply_is_reported_as_a_reset)
{
    bool up;
    cr_assert_eq(reset_with_fault(D2021, FAKE_FAULT_CLOSE_BEFORE_REPLY, &up), -ECONNRESET);
    cr_assert_not(up);
}

Test(vfio_user_client, a_server_that_never_answers_times_out)
{
    bool up;
    cr_assert_eq(reset_with_fault(D091, FAKE_FAULT_HANG, &up), -ETIMEDOUT);
    cr_assert_not(up);
}

Test(vfio_user_client, a_reply_of_the_wrong_size_fails_only_its_request)
{
    bool up;
    cr_assert_eq(reset_with_fault(D091, FAKE_FAULT_WRONG_SIZE, &up), -EBADMSG);
    cr_assert(up);
}

Test(vfio_user_client, a_reply_under_a_wrong_id_ends_the_connection)
{
    bool up;
    cr_assert_eq(reset_with_fault(DFINAL, FAKE_FAULT_WRONG_ID, &up), -EPROTO);
    cr_assert_not(up);
}

Test(vfio_user_client, a_reply_to_nothing_ends_the_connection)
{
    bool up;
    cr_assert_eq(reset_with_fault(D2021, FAKE_FAULT_REPLY_TO_NOTHING, &up), -EPROTO);
    cr_assert_not(up);
}

Test(vfio_user_client, an_unexpected_fd_fails_the_request_and_is_closed)
{
    bool up;
    cr_assert_eq(reset_with_fault(D091, FAKE_FAULT_UNEXPECTED_FD, &up), -EPROTO);
    cr_assert(up);
}

Test(vfio_user_client, a_header_claiming_a_huge_message_ends_the_connection)
{
    bool up;
    cr_assert_eq(reset_with_fault(D091, FAKE_FAULT_HUGE_SIZE, &up), -EMSGSIZE);
    cr_assert_not(up);
}

Test(vfio_user_client, an_error_reply_becomes_a_negative_errno)
{
    bool up;
    cr_assert_eq(reset_with_fault(D091, FAKE_FAULT_ERROR_REPLY, &up), -ENOENT);
    cr_assert(up);
}

Test(vfio_user_client, a_header_of_unknown_type_ends_the_connection)
{
    bool up;
    cr_assert_eq(reset_with_fault(D091, FAKE_FAULT_BAD_TYPE, &up), -EBADMSG);
    cr_assert_not(up);
}

Test(vfio_user_client, oversized_bitmaps_fail_the_unmap)
{
    vfio_user_dialect ds[] = {D2021, D091};
    for (int i = 0; i < 2; i++) {
        fake_server f;
        int before = count_fds();
        fake_server_init(&f, ds[i]);
        f.fault = FAKE_FAULT_OVERSIZED_BITMAP;
        f.fault_at = 1;
        vfio_user_client *c = start(&f, 0, 0, NULL);
        uint8_t bm[64];
        uint8_t *bms[1] = {bm};
        vfio_user_dma_entry e = {
            .iova = 0, .size = 0x200000, .flags = 1, .bitmap_pgsize = 4096, .bitmap_size = 64};
        cr_assert_eq(vfio_user_client_dma_unmap(c, &e, 1, bms), -EBADMSG);
        stop(&f, c);
        cr_assert_eq(count_fds(), before);
    }
}

Test(vfio_user_client, faults_in_the_middle_of_a_pipeline_fail_every_request_once)
{
    fake_server f;
    int before = count_fds();
    fake_server_init(&f, D091);
    f.fault = FAKE_FAULT_DROP_MID_REPLY;
    f.fault_at = 5;
    vfio_user_client *c = start(&f, 0, 0, NULL);
    tally t = {0};
    vfio_user_dma_entry e = {.size = 4096, .prot = 1, .fd = -1};
    int submitted = 0;
    for (int i = 0; i < 20; i++) {
        e.iova = (uint64_t)i << 12;
        vfio_user_msg m = map_msg(&e);
        if (vfio_user_client_submit(c, &m, 0, count_done, &t) == 0)
            submitted++;
    }
    /* The peer's close shows as a reset when reading, a broken pipe when sending. */
    int rc = vfio_user_client_wait_all(c);
    cr_assert(rc == -ECONNRESET || rc == -EPIPE, "wait_all: %d", rc);
    cr_assert_not(vfio_user_client_connected(c));
    cr_assert_eq(t.done, (unsigned)submitted, "every submitted request completes exactly once");
    cr_assert_leq(t.done - t.failed, 4, "only the replies sent before the fault succeed");
    stop(&f, c);
    cr_assert_eq(count_fds(), before);
}

static void version_fails(fake_server *f, const char *expect)
{
    vfio_user_client_config cfg;
    GError *err = NULL;
    int before = count_fds();
    int fd = fake_server_start(f);
    vfio_user_client_config_init(&cfg, f->dialect);
    vfio_user_client *c = vfio_user_client_new(fd, &cfg, NULL, NULL, &err);
    cr_assert_null(c);
    cr_assert_not_null(err);
    cr_assert(strstr(err->message, expect), "message: %s", err->message);
    g_error_free(err);
    close(fd); /* the caller keeps its fd when negotiation fails */
    fake_server_join(f);
    cr_assert_eq(count_fds(), before);
}

Test(vfio_user_client, malformed_version_json_is_a_clear_error)
{
    fake_server f;
    fake_server_init(&f, D091);
    f.version_json = "{\"capabilities\":";
    version_fails(&f, "not valid JSON");
}

Test(vfio_user_client, version_json_without_its_nul_is_a_clear_error)
{
    fake_server f;
    fake_server_init(&f, D091);
    f.version_no_nul = true;
    version_fails(&f, "NUL");
}

Test(vfio_user_client, an_unsupported_major_version_is_a_clear_error)
{
    fake_server f;
    fake_server_init(&f, D2021);
    f.version_major = 1;
    version_fails(&f, "version 1.1");
}

Test(vfio_user_client, a_server_gone_before_version_is_a_clear_error)
{
    vfio_user_client_config cfg;
    GError *err = NULL;
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    close(sv[1]);
    vfio_user_client_config_init(&cfg, D2021);
    cr_assert_null(vfio_user_client_new(sv[0], &cfg, NULL, NULL, &err));
    cr_assert(g_error_matches(err, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED), "%s", err->message);
    g_error_free(err);
    close(sv[0]);
}

Test(vfio_user_client, connect_reports_a_missing_socket)
{
    vfio_user_client_config cfg;
    GError *err = NULL;
    vfio_user_client_config_init(&cfg, D091);
    cr_assert_null(vfio_user_client_connect("/nonexistent/vfio-user.sock", &cfg, NULL, NULL, &err));
    cr_assert(g_error_matches(err, G_IO_ERROR, G_IO_ERROR_NOT_FOUND), "%s", err->message);
    g_error_free(err);
}

Test(vfio_user_client, a_server_enabling_twin_socket_unasked_is_refused)
{
    fake_server f;
    fake_server_init(&f, D091);
    f.version_json = "{\"capabilities\":{\"twin_socket\":{\"supported\":true,\"fd_index\":0}}}";
    version_fails(&f, "twin_socket");
}

Test(vfio_user_client, dma_tables_are_split_to_fit_the_server_message_size)
{
    fake_server f;
    fake_server_init(&f, D2021);
    f.version_json = "{\"capabilities\":{\"max_msg_fds\":8,\"max_msg_size\":128}}";
    vfio_user_client *c = start(&f, 0, 0, NULL);
    vfio_user_dma_entry e[5];
    for (int i = 0; i < 5; i++)
        e[i] = (vfio_user_dma_entry){.iova = (uint64_t)i << 12, .size = 4096, .prot = 3, .fd = -1};
    cr_assert_eq(vfio_user_client_dma_map(c, e, 5), 0);
    cr_assert_eq(vfio_user_client_dma_unmap(c, e, 5, NULL), 0);
    stop(&f, c);
    cr_assert_eq(f.commands, 4); /* (128 - 16) / 32 = 3 entries per table */
    cr_assert_eq(f.max_table, 3);
}

Test(vfio_user_client, a_bitmap_that_cannot_fit_one_reply_is_refused_before_sending)
{
    fake_server f;
    fake_server_init(&f, D2021);
    int fd = fake_server_start(&f);
    vfio_user_client_config cfg;
    GError *err = NULL;
    vfio_user_client_config_init(&cfg, D2021);
    cfg.caps.max_msg_size = 4096;
    vfio_user_client *c = vfio_user_client_new(fd, &cfg, NULL, NULL, &err);
    cr_assert_not_null(c);
    static uint8_t bm[8192];
    uint8_t *bms[1] = {bm};
    vfio_user_dma_entry e = {
        .size = 8192ull * 8 * 4096, .flags = 1, .bitmap_pgsize = 4096, .bitmap_size = 8192};
    cr_assert_eq(vfio_user_client_dma_unmap(c, &e, 1, bms), -EMSGSIZE);
    cr_assert(vfio_user_client_connected(c));
    stop(&f, c);
    cr_assert_eq(f.commands, 0);
}

typedef struct async_write {
    bool done;
    int result;
} async_write;

static void write_done(void *opaque, int result, const vfio_user_msg *reply)
{
    async_write *w = opaque;
    (void)reply;
    w->done = true;
    w->result = result;
}

Test(vfio_user_client, an_event_loop_can_drive_the_client_with_dispatch)
{
    fake_server f;
    guest g;
    memset(&g, 0, sizeof(g));
    fake_server_init(&f, DFINAL);
    vfio_user_client *c = start(&f, 0, 0, &g);
    uint64_t addr = 0x2000;
    uint32_t len = 64, fill = 0x77, cmd = 1;
    cr_assert_eq(vfio_user_client_region_write(c, 0, FAKE_REG_DMA_ADDR, &addr, 8), 0);
    cr_assert_eq(vfio_user_client_region_write(c, 0, FAKE_REG_DMA_LEN, &len, 4), 0);
    cr_assert_eq(vfio_user_client_region_write(c, 0, FAKE_REG_DMA_FILL, &fill, 4), 0);

    async_write w = {0};
    vfio_user_msg m;
    memset(&m, 0, sizeof(m));
    m.op = VFIO_USER_OP_REGION_WRITE;
    m.region_io.offset = FAKE_REG_DMA_CMD;
    m.region_io.count = 4;
    m.region_io.data = (const uint8_t *)&cmd;
    m.region_io.data_len = 4;
    cr_assert_eq(vfio_user_client_submit(c, &m, 0, write_done, &w), 0);
    cr_assert_eq(vfio_user_client_flush(c), 0); /* submitted messages may sit in the queue */
    struct pollfd p = {.fd = vfio_user_client_fd(c), .events = POLLIN};
    for (int spins = 0; !w.done && spins < 1000; spins++) {
        cr_assert_geq(poll(&p, 1, 5000), 0);
        cr_assert_eq(vfio_user_client_dispatch(c), 0);
    }
    cr_assert(w.done);
    cr_assert_eq(w.result, 0);
    cr_assert_eq(g.mem[0x2000 + 63], 0x77);
    stop(&f, c);
}

Test(vfio_user_client, a_server_error_of_enotsup_reaches_the_caller_unchanged)
{
    fake_server f;
    fake_server_init(&f, D091);
    f.fault = FAKE_FAULT_ERROR_REPLY;
    f.fault_at = 1;
    f.error_errno = ENOTSUP; /* QEMU 7.2 answers DIRTY_PAGES START so */
    vfio_user_client *c = start(&f, 0, 0, NULL);
    cr_assert_eq(vfio_user_client_dirty_pages(c, VFIO_USER_DIRTY_PAGES_FLAG_START), -ENOTSUP);
    cr_assert(vfio_user_client_connected(c));
    stop(&f, c);
}

Test(vfio_user_client, a_region_fd_goes_to_the_caller_or_is_closed)
{
    fake_server f;
    int before = count_fds();
    fake_server_init(&f, D2021);
    f.region_fd = true;
    vfio_user_client *c = start(&f, 0, 0, NULL);
    vfio_user_region_info ri;
    int fd = -1;
    cr_assert_eq(vfio_user_client_region_info(c, 1, &ri, &fd), 0);
    cr_assert(ri.flags & VFIO_USER_REGION_INFO_FLAG_MMAP);
    cr_assert_geq(fd, 0);
    cr_assert_geq(fcntl(fd, F_GETFD), 0, "the fd is open and ours");
    close(fd);
    /* Nobody asks for it: the client closes it. */
    cr_assert_eq(vfio_user_client_region_info(c, 1, &ri, NULL), 0);

    /* Pipelined replies with fds, completed without taking them. */
    tally t = {0};
    for (int i = 0; i < 4; i++) {
        vfio_user_msg m;
        memset(&m, 0, sizeof(m));
        m.op = VFIO_USER_OP_DEVICE_GET_REGION_INFO;
        m.region_info.index = 1;
        cr_assert_eq(vfio_user_client_submit(c, &m, 0, count_done, &t), 0);
    }
    cr_assert_eq(vfio_user_client_wait_all(c), 0);
    cr_assert_eq(t.done, 4);
    cr_assert_eq(t.failed, 0);
    stop(&f, c);
    cr_assert_eq(count_fds(), before);
}

Test(vfio_user_client, an_answer_to_a_no_reply_command_is_dropped)
{
    fake_server f;
    fake_server_init(&f, D2021);
    f.answer_no_reply = true;
    vfio_user_client *c = start(&f, 0, 0, NULL);
    vfio_user_msg m;
    memset(&m, 0, sizeof(m));
    m.op = VFIO_USER_OP_DEVICE_RESET;
    cr_assert_eq(vfio_user_client_submit(c, &m, VFIO_USER_SUBMIT_NO_REPLY, NULL, NULL), 0);
    vfio_user_device_info di;
    cr_assert_eq(vfio_user_client_device_get_info(c, &di), 0);
    cr_assert(vfio_user_client_connected(c));
    stop(&f, c);
    cr_assert_eq(f.commands, 2);
}

typedef struct reentry {
    vfio_user_client *c;
    int submit_rc, wait_rc;
} reentry;

static void reenter(void *opaque, int result, const vfio_user_msg *reply)
{
    reentry *r = opaque;
    vfio_user_msg m;
    (void)result;
    (void)reply;
    memset(&m, 0, sizeof(m));
    m.op = VFIO_USER_OP_DEVICE_RESET;
    r->submit_rc = vfio_user_client_submit(r->c, &m, 0, NULL, NULL);
    r->wait_rc = vfio_user_client_wait_all(r->c);
}

Test(vfio_user_client, calls_from_a_completion_callback_are_refused)
{
    fake_server f;
    fake_server_init(&f, D091);
    vfio_user_client *c = start(&f, 0, 0, NULL);
    reentry r = {.c = c};
    vfio_user_msg m;
    memset(&m, 0, sizeof(m));
    m.op = VFIO_USER_OP_DEVICE_RESET;
    cr_assert_eq(vfio_user_client_submit(c, &m, 0, reenter, &r), 0);
    cr_assert_eq(vfio_user_client_wait_all(c), 0);
    cr_assert_eq(r.submit_rc, -EDEADLK);
    cr_assert_eq(r.wait_rc, -EDEADLK);
    stop(&f, c);
    cr_assert_eq(f.commands, 1);
}

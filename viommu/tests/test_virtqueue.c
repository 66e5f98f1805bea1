/* SPDX-License-Identifier: MIT */
/* The split-virtqueue helper over a fake guest RAM. */
#include "viommu_test.h"

#define RAM_SIZE 0x40000
#define QSIZE 8
#define DESC 0x0
#define AVAIL 0x1000
#define USED 0x2000
#define BUFS 0x10000

typedef struct guest {
    uint8_t *ram;
    uint16_t next_desc;
    uint16_t avail_idx;
    uint64_t next_buf;
} guest;

static void *ram_map(void *opaque, uint64_t gpa, uint64_t len, bool write)
{
    guest *g = opaque;
    (void)write;
    if (gpa > RAM_SIZE || len > RAM_SIZE - gpa)
        return NULL;
    return g->ram + gpa;
}

static guest *guest_new(void)
{
    guest *g = g_new0(guest, 1);
    g->ram = g_malloc0(RAM_SIZE);
    g->next_buf = BUFS;
    return g;
}

static void guest_free(guest *g)
{
    g_free(g->ram);
    g_free(g);
}

static viommu_vq *make_vq(guest *g)
{
    viommu_vq_config c = {QSIZE, DESC, AVAIL, USED, {ram_map, g}};
    viommu_vq *vq = NULL;
    cr_assert_eq(viommu_vq_new(&c, &vq), 0);
    return vq;
}

static void put_desc(guest *g, uint64_t table, uint16_t i, uint64_t addr, uint32_t len,
                     uint16_t flags, uint16_t next)
{
    uint8_t *d = g->ram + table + 16 * (uint64_t)i;
    uint64_t a = htole64(addr);
    uint32_t l = htole32(len);
    uint16_t f = htole16(flags), n = htole16(next);
    memcpy(d, &a, 8);
    memcpy(d + 8, &l, 4);
    memcpy(d + 12, &f, 2);
    memcpy(d + 14, &n, 2);
}

static uint64_t put_buf(guest *g, const void *data, size_t len)
{
    uint64_t at = g->next_buf;
    if (data)
        memcpy(g->ram + at, data, len);
    g->next_buf += (len + 15) & ~(uint64_t)15;
    return at;
}

static void make_avail(guest *g, uint16_t head)
{
    uint16_t h = htole16(head);
    memcpy(g->ram + AVAIL + 4 + 2 * (g->avail_idx % QSIZE), &h, 2);
    g->avail_idx++;
    uint16_t idx = htole16(g->avail_idx);
    memcpy(g->ram + AVAIL + 2, &idx, 2);
}

/* Queues a direct two-descriptor request; returns the tail's GPA. */
static uint64_t queue_request(guest *g, const void *body, size_t len, size_t wlen)
{
    uint16_t d0 = g->next_desc++, d1 = g->next_desc++;
    uint64_t rd = put_buf(g, body, len);
    uint64_t wr = put_buf(g, NULL, wlen);
    put_desc(g, DESC, d0, rd, (uint32_t)len, 1, d1);
    put_desc(g, DESC, d1, wr, (uint32_t)wlen, 2, 0);
    make_avail(g, d0);
    return wr;
}

static uint16_t used_idx(guest *g)
{
    uint16_t i;
    memcpy(&i, g->ram + USED + 2, 2);
    return le16toh(i);
}

static void used_elem(guest *g, unsigned i, uint32_t *id, uint32_t *len)
{
    memcpy(id, g->ram + USED + 4 + 8 * i, 4);
    memcpy(len, g->ram + USED + 8 + 8 * i, 4);
    *id = le32toh(*id);
    *len = le32toh(*len);
}

static int batches;
static void count_begin(void *o)
{
    (void)o;
    batches++;
}
static int accept_map(void *o, const mapping_event *ev)
{
    (void)o;
    (void)ev;
    return 0;
}
static const mapping_listener_ops counting_ops = {count_begin, accept_map, NULL, NULL};

Test(viommu_vq, runs_one_notification_as_one_batch_and_fills_the_used_ring)
{
    guest *g = guest_new();
    viommu *v = test_device(0, 1);
    mapping_listener l = {&counting_ops, NULL};
    viommu_endpoint_set_listener(v, 1, &l);
    viommu_vq *vq = make_vq(g);
    struct virtio_iommu_req_attach a = test_attach_req(1, 1, 0);
    struct virtio_iommu_req_map m1 = test_map_req(1, 0, 0xfff, 0, RW);
    struct virtio_iommu_req_map m2 = test_map_req(1, 0x1000, 0x1fff, 0, RW);
    uint64_t t0 = queue_request(g, &a, 20, 4);
    uint64_t t1 = queue_request(g, &m1, 36, 4);
    uint64_t t2 = queue_request(g, &m2, 36, 4);
    batches = 0;
    bool notify = false;
    cr_assert_eq(viommu_vq_process_requests(v, vq, &notify), 3);
    cr_assert(notify);
    cr_assert_eq(batches, 1, "one batch for the whole notification");
    cr_assert_eq(used_idx(g), 3);
    uint32_t id, len;
    used_elem(g, 1, &id, &len);
    cr_assert_eq(id, 2);
    cr_assert_eq(len, 4);
    cr_assert_eq(g->ram[t0], VIRTIO_IOMMU_S_OK);
    cr_assert_eq(g->ram[t1], VIRTIO_IOMMU_S_OK);
    cr_assert_eq(g->ram[t2], VIRTIO_IOMMU_S_OK);
    cr_assert_eq(test_mappings(v, 1), 2);
    cr_assert_eq(viommu_vq_process_requests(v, vq, &notify), 0, "nothing new");
    cr_assert_not(notify);
    viommu_vq_free(vq);
    viommu_free(v);
    guest_free(g);
}

Test(viommu_vq, follows_indirect_descriptor_tables)
{
    guest *g = guest_new();
    viommu *v = test_device(0, 1);
    viommu_vq *vq = make_vq(g);
    struct virtio_iommu_req_attach a = test_attach_req(5, 1, 0);
    uint8_t *p = (uint8_t *)&a;
    uint64_t table = put_buf(g, NULL, 3 * 16);
    uint64_t b0 = put_buf(g, p, 8), b1 = put_buf(g, p + 8, 12), w = put_buf(g, NULL, 4);
    put_desc(g, table, 0, b0, 8, 1, 1);
    put_desc(g, table, 1, b1, 12, 1, 2);
    put_desc(g, table, 2, w, 4, 2, 0);
    put_desc(g, DESC, 0, table, 48, 4, 0);
    make_avail(g, 0);
    cr_assert_eq(viommu_vq_process_requests(v, vq, NULL), 1);
    cr_assert_eq(g->ram[w], VIRTIO_IOMMU_S_OK);
    uint32_t d;
    viommu_endpoint_domain(v, 1, &d);
    cr_assert_eq(d, 5);
    viommu_vq_free(vq);
    viommu_free(v);
    guest_free(g);
}

static int broken(void (*build)(guest *g))
{
    guest *g = guest_new();
    viommu *v = test_device(0, 1);
    viommu_vq *vq = make_vq(g);
    build(g);
    int rc = viommu_vq_process_requests(v, vq, NULL);
    viommu_vq_free(vq);
    viommu_free(v);
    guest_free(g);
    return rc;
}

static void build_loop(guest *g)
{
    put_desc(g, DESC, 0, BUFS, 4, 1, 1);
    put_desc(g, DESC, 1, BUFS, 4, 1, 0);
    make_avail(g, 0);
}

static void build_bad_index(guest *g)
{
    put_desc(g, DESC, 0, BUFS, 4, 1, QSIZE);
    make_avail(g, 0);
}

static void build_bad_head(guest *g)
{
    make_avail(g, QSIZE + 3);
}

static void build_outside_ram(guest *g)
{
    put_desc(g, DESC, 0, RAM_SIZE - 2, 4, 0, 0);
    make_avail(g, 0);
}

static void build_read_after_write(guest *g)
{
    put_desc(g, DESC, 0, BUFS, 4, 2 | 1, 1);
    put_desc(g, DESC, 1, BUFS, 4, 0, 0);
    make_avail(g, 0);
}

static void build_indirect_with_next(guest *g)
{
    put_desc(g, DESC, 0, BUFS, 32, 4 | 1, 1);
    make_avail(g, 0);
}

static void build_bad_indirect_len(guest *g)
{
    put_desc(g, DESC, 0, BUFS, 20, 4, 0);
    make_avail(g, 0);
}

static void build_nested_indirect(guest *g)
{
    put_desc(g, BUFS, 0, BUFS, 16, 4, 0);
    put_desc(g, DESC, 0, BUFS, 16, 4, 0);
    make_avail(g, 0);
}

static void build_indirect_loop(guest *g)
{
    put_desc(g, BUFS, 0, BUFS + 0x100, 4, 1, 1);
    put_desc(g, BUFS, 1, BUFS + 0x100, 4, 1, 0);
    put_desc(g, DESC, 0, BUFS, 32, 4, 0);
    make_avail(g, 0);
}

/* The head's indirect table is the queue's own descriptor table, whose
 * first descriptor is that head: walking it would never end. */
static void build_indirect_to_own_table(guest *g)
{
    put_desc(g, DESC, 0, DESC, 16 * QSIZE, 4, 0);
    make_avail(g, 0);
}

static void build_too_many_avail(guest *g)
{
    uint16_t idx = htole16(QSIZE + 1);
    memcpy(g->ram + AVAIL + 2, &idx, 2);
}

Test(viommu_vq, reports_broken_rings_as_eio)
{
    cr_assert_eq(broken(build_loop), -EIO);
    cr_assert_eq(broken(build_bad_index), -EIO);
    cr_assert_eq(broken(build_bad_head), -EIO);
    cr_assert_eq(broken(build_outside_ram), -EIO);
    cr_assert_eq(broken(build_read_after_write), -EIO);
    cr_assert_eq(broken(build_indirect_with_next), -EIO);
    cr_assert_eq(broken(build_bad_indirect_len), -EIO);
    cr_assert_eq(broken(build_nested_indirect), -EIO);
    cr_assert_eq(broken(build_indirect_loop), -EIO);
    cr_assert_eq(broken(build_indirect_to_own_table), -EIO);
    cr_assert_eq(broken(build_too_many_avail), -EIO);
}

Test(viommu_vq, completes_the_chains_before_a_broken_one)
{
    guest *g = guest_new();
    viommu *v = test_device(0, 1);
    viommu_vq *vq = make_vq(g);
    struct virtio_iommu_req_attach a = test_attach_req(1, 1, 0);
    uint64_t t = queue_request(g, &a, 20, 4);
    put_desc(g, DESC, 5, BUFS, 4, 1, 5);
    make_avail(g, 5);
    cr_assert_eq(viommu_vq_process_requests(v, vq, NULL), -EIO);
    cr_assert_eq(used_idx(g), 1);
    cr_assert_eq(g->ram[t], VIRTIO_IOMMU_S_OK);
    viommu_vq_free(vq);
    viommu_free(v);
    guest_free(g);
}

Test(viommu_vq, honours_no_interrupt)
{
    guest *g = guest_new();
    viommu *v = test_device(0, 1);
    viommu_vq *vq = make_vq(g);
    uint16_t flags = htole16(1);
    memcpy(g->ram + AVAIL, &flags, 2);
    struct virtio_iommu_req_attach a = test_attach_req(1, 1, 0);
    queue_request(g, &a, 20, 4);
    bool notify = true;
    cr_assert_eq(viommu_vq_process_requests(v, vq, &notify), 1);
    cr_assert_not(notify);
    viommu_vq_free(vq);
    viommu_free(v);
    guest_free(g);
}

Test(viommu_vq, rejects_bad_queue_configurations)
{
    guest *g = guest_new();
    viommu_vq *vq = NULL;
    viommu_vq_config c = {QSIZE, DESC, AVAIL, USED, {ram_map, g}};
    c.size = 6;
    cr_assert_eq(viommu_vq_new(&c, &vq), -EINVAL);
    c.size = 0;
    cr_assert_eq(viommu_vq_new(&c, &vq), -EINVAL);
    c.size = QSIZE;
    c.desc_gpa = 8;
    cr_assert_eq(viommu_vq_new(&c, &vq), -EINVAL);
    c.desc_gpa = DESC;
    c.used_gpa = USED + 2;
    cr_assert_eq(viommu_vq_new(&c, &vq), -EINVAL);
    c.used_gpa = USED;
    c.mem.map = NULL;
    cr_assert_eq(viommu_vq_new(&c, &vq), -EINVAL);
    cr_assert_null(vq);
    guest_free(g);
}

static int notified;
static void on_notify(void *o)
{
    (void)o;
    notified++;
}

Test(viommu_vq, writes_faults_into_the_event_queue)
{
    guest *g = guest_new();
    viommu *v = test_device(0, 1);
    uint8_t zero = 0;
    viommu_config_write(v, 36, &zero, 1);
    viommu_vq *evq = make_vq(g);
    cr_assert_eq(viommu_vq_set_event_queue(v, evq, on_notify, NULL), 0);
    uint8_t b[24];
    struct iovec iov = {b, sizeof(b)};
    cr_assert_eq(viommu_event_post(v, &iov, 1, 0), -EBUSY);
    uint64_t small = put_buf(g, NULL, 8);
    uint64_t buf = put_buf(g, NULL, 24);
    put_desc(g, DESC, 0, small, 8, 2, 0);
    put_desc(g, DESC, 1, buf, 24, 2, 0);
    make_avail(g, 0);
    make_avail(g, 1);
    notified = 0;
    viommu_translation t;
    cr_assert_eq(viommu_translate(v, 1, 0x4321, VIOMMU_ACCESS_READ, &t), -EFAULT);
    cr_assert_eq(used_idx(g), 2, "the small buffer came back empty, the next took it");
    uint32_t id, len;
    used_elem(g, 0, &id, &len);
    cr_assert_eq(len, 0);
    used_elem(g, 1, &id, &len);
    cr_assert_eq(id, 1);
    cr_assert_eq(len, 24);
    struct virtio_iommu_fault f;
    memcpy(&f, g->ram + buf, sizeof(f));
    cr_assert_eq(f.reason, VIRTIO_IOMMU_FAULT_R_DOMAIN);
    cr_assert_eq(le64toh(f.address), 0x4321);
    cr_assert_geq(notified, 1);
    cr_assert_eq(viommu_translate(v, 1, 0, VIOMMU_ACCESS_READ, &t), -EFAULT);
    viommu_stats st;
    viommu_get_stats(v, &st);
    cr_assert_eq(st.faults_reported, 1);
    cr_assert_eq(st.faults_dropped, 1, "no buffer left");
    viommu_vq_set_event_queue(v, NULL, NULL, NULL);
    viommu_vq_free(evq);
    viommu_free(v);
    guest_free(g);
}

Test(viommu_vq, follows_used_event_and_publishes_avail_event_with_event_idx)
{
    guest *g = guest_new();
    viommu *v = test_device(0, 1);
    viommu_vq *vq = make_vq(g);
    viommu_vq_set_event_idx(vq, true);
    uint16_t used_event = htole16(0);
    memcpy(g->ram + AVAIL + 4 + 2 * QSIZE, &used_event, 2);
    struct virtio_iommu_req_attach a = test_attach_req(1, 1, 0);
    queue_request(g, &a, 20, 4);
    bool notify = false;
    cr_assert_eq(viommu_vq_process_requests(v, vq, &notify), 1);
    cr_assert(notify, "the used index passed used_event 0");
    uint16_t avail_event;
    memcpy(&avail_event, g->ram + USED + 4 + 8 * QSIZE, 2);
    cr_assert_eq(le16toh(avail_event), 1);
    queue_request(g, &a, 20, 4);
    cr_assert_eq(viommu_vq_process_requests(v, vq, &notify), 1);
    cr_assert_not(notify, "used_event 0 was already passed");
    used_event = htole16(2);
    memcpy(g->ram + AVAIL + 4 + 2 * QSIZE, &used_event, 2);
    queue_request(g, &a, 20, 4);
    queue_request(g, &a, 20, 4);
    cr_assert_eq(viommu_vq_process_requests(v, vq, &notify), 2);
    cr_assert(notify);
    viommu_vq_free(vq);
    viommu_free(v);
    guest_free(g);
}

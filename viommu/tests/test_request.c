/* SPDX-License-Identifier: MIT */
/* Request decoding, PROBE, batches and mapping listeners. */
#include "viommu_test.h"

static viommu_request make_req(const void *rd, size_t rdlen, void *wr, size_t wrlen,
                               struct iovec iov[2])
{
    iov[0] = (struct iovec){(void *)rd, rdlen};
    iov[1] = (struct iovec){wr, wrlen};
    return (viommu_request){&iov[0], 1, &iov[1], 1, 0, 0, 0};
}

Test(viommu_request, leaves_an_unknown_type_unwritten_with_used_length_zero)
{
    viommu *v = test_device(0, 1);
    uint8_t rd[32] = {9}, wr[8];
    memset(wr, 0xcc, sizeof(wr));
    struct iovec iov[2];
    viommu_request req = make_req(rd, sizeof(rd), wr, sizeof(wr), iov);
    cr_assert_eq(viommu_handle_request(v, &req), 0);
    cr_assert_eq(req.used_len, 0);
    cr_assert_eq(req.status, VIOMMU_STATUS_NONE);
    cr_assert_eq(req.type, 9);
    for (size_t i = 0; i < sizeof(wr); i++)
        cr_assert_eq(wr[i], 0xcc);
    viommu_free(v);
}

Test(viommu_request, returns_buffers_unwritten_when_there_is_no_room_for_a_tail)
{
    viommu *v = test_device(0, 1);
    struct virtio_iommu_req_attach r = test_attach_req(1, 1, 0);
    uint8_t wr[3] = {0xcc, 0xcc, 0xcc};
    struct iovec iov[2];
    viommu_request req = make_req(&r, 20, wr, sizeof(wr), iov);
    viommu_handle_request(v, &req);
    cr_assert_eq(req.used_len, 0);
    cr_assert_eq(req.status, VIOMMU_STATUS_NONE);
    cr_assert_eq(wr[0], 0xcc);
    cr_assert_eq(viommu_endpoint_domain(v, 1, NULL), -ENODEV, "not executed");
    viommu_free(v);
}

Test(viommu_request, answers_deverr_without_a_head)
{
    viommu *v = test_device(0, 1);
    uint8_t rd[3] = {1, 0, 0};
    size_t used;
    cr_assert_eq(test_send(v, rd, sizeof(rd), &used), VIRTIO_IOMMU_S_DEVERR);
    cr_assert_eq(used, 4);
    viommu_free(v);
}

Test(viommu_request, answers_inval_to_short_bodies_and_changes_nothing)
{
    viommu *v = test_device(0, 1);
    struct virtio_iommu_req_attach a = test_attach_req(1, 1, 0);
    size_t used;
    cr_assert_eq(test_send(v, &a, 19, &used), VIRTIO_IOMMU_S_INVAL);
    cr_assert_eq(used, 4);
    cr_assert_eq(viommu_endpoint_domain(v, 1, NULL), -ENODEV);
    cr_assert_eq(test_send(v, &a, 20, NULL), VIRTIO_IOMMU_S_OK);
    struct virtio_iommu_req_map m = test_map_req(1, 0, 0xfff, 0, RW);
    cr_assert_eq(test_send(v, &m, 35, NULL), VIRTIO_IOMMU_S_INVAL);
    struct virtio_iommu_req_unmap u = test_unmap_req(1, 0, 0xfff);
    cr_assert_eq(test_send(v, &u, 27, NULL), VIRTIO_IOMMU_S_INVAL);
    struct virtio_iommu_req_detach d;
    memset(&d, 0, sizeof(d));
    d.head.type = VIRTIO_IOMMU_T_DETACH;
    d.domain = htole32(1);
    d.endpoint = htole32(1);
    cr_assert_eq(test_send(v, &d, 19, NULL), VIRTIO_IOMMU_S_INVAL);
    cr_assert_eq(viommu_endpoint_domain(v, 1, NULL), 0);
    viommu_free(v);
}

Test(viommu_request, reads_bodies_split_across_iovecs_and_ignores_head_reserved)
{
    viommu *v = test_device(0, 1);
    struct virtio_iommu_req_attach a = test_attach_req(3, 1, 0);
    a.head.reserved[0] = 0x55;
    uint8_t *p = (uint8_t *)&a;
    uint8_t tail[4];
    struct iovec rd[3] = {{p, 1}, {p + 1, 10}, {p + 11, 9}};
    struct iovec wr[2] = {{tail, 1}, {tail + 1, 3}};
    viommu_request req = {rd, 3, wr, 2, 0, 0, 0};
    viommu_handle_request(v, &req);
    cr_assert_eq(req.status, VIRTIO_IOMMU_S_OK);
    cr_assert_eq(req.used_len, 4);
    cr_assert_eq(tail[0], 0);
    uint32_t d;
    viommu_endpoint_domain(v, 1, &d);
    cr_assert_eq(d, 3);
    viommu_free(v);
}

static struct virtio_iommu_req_probe probe_req(uint32_t ep)
{
    struct virtio_iommu_req_probe r;
    memset(&r, 0, sizeof(r));
    r.head.type = VIRTIO_IOMMU_T_PROBE;
    r.endpoint = htole32(ep);
    return r;
}

Test(viommu_probe, reports_reserved_regions_then_zeroes)
{
    viommu *v = test_device(0, 1);
    viommu_endpoint_add_resv(v, 1, 0xfee00000, 0xfeefffff, VIRTIO_IOMMU_RESV_MEM_T_MSI);
    viommu_endpoint_add_resv(v, 1, 0x0, 0xfff, VIRTIO_IOMMU_RESV_MEM_T_RESERVED);
    struct virtio_iommu_req_probe r = probe_req(1);
    memset(r.reserved, 0xee, sizeof(r.reserved)); /* must be ignored */
    uint8_t wr[0x200 + 4];
    memset(wr, 0xcc, sizeof(wr));
    struct iovec iov[2];
    viommu_request req = make_req(&r, sizeof(r), wr, sizeof(wr), iov);
    viommu_handle_request(v, &req);
    cr_assert_eq(req.status, VIRTIO_IOMMU_S_OK);
    cr_assert_eq(req.used_len, 0x204);
    struct virtio_iommu_probe_resv_mem p[2];
    memcpy(p, wr, sizeof(p));
    cr_assert_eq(le16toh(p[0].head.type), VIRTIO_IOMMU_PROBE_T_RESV_MEM);
    cr_assert_eq(le16toh(p[0].head.length), 20);
    cr_assert_eq(p[0].subtype, VIRTIO_IOMMU_RESV_MEM_T_MSI);
    cr_assert_eq(le64toh(p[0].start), 0xfee00000);
    cr_assert_eq(le64toh(p[0].end), 0xfeefffff);
    cr_assert_eq(p[1].subtype, VIRTIO_IOMMU_RESV_MEM_T_RESERVED);
    cr_assert_eq(le64toh(p[1].end), 0xfff);
    for (size_t i = sizeof(p); i < 0x200; i++)
        cr_assert_eq(wr[i], 0, "remaining properties bytes are zero");
    cr_assert_eq(wr[0x200], VIRTIO_IOMMU_S_OK);
    viommu_free(v);
}

Test(viommu_probe, answers_noent_for_an_unknown_endpoint)
{
    viommu *v = test_device(0, 1);
    struct virtio_iommu_req_probe r = probe_req(7);
    uint8_t wr[0x204];
    struct iovec iov[2];
    viommu_request req = make_req(&r, sizeof(r), wr, sizeof(wr), iov);
    viommu_handle_request(v, &req);
    cr_assert_eq(req.status, VIRTIO_IOMMU_S_NOENT);
    cr_assert_eq(wr[0x200], VIRTIO_IOMMU_S_NOENT);
    viommu_free(v);
}

Test(viommu_probe, answers_inval_without_properties_when_the_buffer_is_short)
{
    viommu *v = test_device(0, 1);
    viommu_endpoint_add_resv(v, 1, 0, 0xfff, 0);
    struct virtio_iommu_req_probe r = probe_req(1);
    uint8_t wr[0x100];
    memset(wr, 0xcc, sizeof(wr));
    struct iovec iov[2];
    viommu_request req = make_req(&r, sizeof(r), wr, sizeof(wr), iov);
    viommu_handle_request(v, &req);
    cr_assert_eq(req.status, VIRTIO_IOMMU_S_INVAL);
    cr_assert_eq(wr[0], 0xcc, "no property written");
    cr_assert_eq(wr[sizeof(wr) - 4], VIRTIO_IOMMU_S_INVAL, "tail at the end");
    viommu_free(v);
}

Test(viommu_probe, is_an_unknown_type_without_f_probe)
{
    viommu *v = test_device(0, 1);
    viommu_set_driver_features(v, VIOMMU_FEATURE(VIRTIO_IOMMU_F_MAP_UNMAP));
    struct virtio_iommu_req_probe r = probe_req(1);
    uint8_t wr[0x204] = {0};
    struct iovec iov[2];
    viommu_request req = make_req(&r, sizeof(r), wr, sizeof(wr), iov);
    viommu_handle_request(v, &req);
    cr_assert_eq(req.used_len, 0);
    cr_assert_eq(req.status, VIOMMU_STATUS_NONE);
    viommu_free(v);
}

/* ---- listeners ------------------------------------------------------ */

typedef struct fake_listener {
    uint32_t ep;
    GArray *maps; /* mapping_event accepted and still held */
    int begins, ends;
    int unmaps;
    int refuse_now; /* error returned by map() once maps->len reaches limit */
    unsigned refuse_limit;
    int fail_at_end; /* error for every map accepted in the batch */
    GArray *batch;   /* maps accepted in the current batch */
    bool in_batch;
} fake_listener;

static void fl_begin(void *o)
{
    fake_listener *f = o;
    cr_assert_not(f->in_batch, "no nested batches");
    f->in_batch = true;
    f->begins++;
    g_array_set_size(f->batch, 0);
}

static ssize_t fl_find(fake_listener *f, const mapping_event *ev)
{
    for (guint i = 0; i < f->maps->len; i++) {
        mapping_event *m = &g_array_index(f->maps, mapping_event, i);
        if (m->iova == ev->iova && m->iova_last == ev->iova_last && m->domain == ev->domain)
            return i;
    }
    return -1;
}

static int fl_map(void *o, const mapping_event *ev)
{
    fake_listener *f = o;
    cr_assert(f->in_batch, "map inside a batch");
    cr_assert_eq(ev->endpoint, f->ep);
    cr_assert_eq(fl_find(f, ev), -1, "never mapped twice");
    if (f->refuse_now && f->maps->len >= f->refuse_limit)
        return f->refuse_now;
    g_array_append_val(f->maps, *ev);
    g_array_append_val(f->batch, *ev);
    return 0;
}

static int fl_unmap(void *o, const mapping_event *ev)
{
    fake_listener *f = o;
    cr_assert(f->in_batch, "unmap inside a batch");
    ssize_t i = fl_find(f, ev);
    cr_assert_geq(i, 0, "unmap of a range the listener holds");
    g_array_remove_index(f->maps, (guint)i);
    f->unmaps++;
    return 0;
}

static int fl_end(void *o, mapping_failed_fn failed, void *fo)
{
    fake_listener *f = o;
    cr_assert(f->in_batch);
    f->in_batch = false;
    f->ends++;
    if (!f->fail_at_end)
        return 0;
    for (guint i = 0; i < f->batch->len; i++) {
        mapping_event ev = g_array_index(f->batch, mapping_event, i);
        ssize_t k = fl_find(f, &ev);
        if (k >= 0)
            g_array_remove_index(f->maps, (guint)k);
        failed(fo, &ev, f->fail_at_end);
    }
    return f->batch->len ? f->fail_at_end : 0;
}

static const mapping_listener_ops fl_ops = {fl_begin, fl_map, fl_unmap, fl_end};

static void fl_init(fake_listener *f, viommu *v, uint32_t ep)
{
    memset(f, 0, sizeof(*f));
    f->ep = ep;
    f->maps = g_array_new(FALSE, FALSE, sizeof(mapping_event));
    f->batch = g_array_new(FALSE, FALSE, sizeof(mapping_event));
    mapping_listener l = {&fl_ops, f};
    cr_assert_eq(viommu_endpoint_set_listener(v, ep, &l), 0);
}

static void fl_fini(fake_listener *f)
{
    g_array_free(f->maps, TRUE);
    g_array_free(f->batch, TRUE);
}

static int count_cb(void *opaque, const viommu_mapping *m)
{
    (void)m;
    (*(unsigned *)opaque)++;
    return 0;
}

/* The guest's view of @domain equals what listener @f holds. */
static void assert_same_view(viommu *v, uint32_t domain, fake_listener *f)
{
    unsigned n = 0;
    viommu_domain_foreach_mapping(v, domain, 0, UINT64_MAX, count_cb, &n);
    cr_assert_eq(n, f->maps->len, "guest view %u mappings, listener %u", n, f->maps->len);
}

Test(viommu_listener, receives_maps_and_unmaps_inside_batches)
{
    viommu *v = test_device(0, 1);
    fake_listener f;
    fl_init(&f, v, 1);
    test_attach(v, 1, 1, 0);
    cr_assert_eq(test_map(v, 1, 0x1000, 0x1fff, 0x8000, VIRTIO_IOMMU_MAP_F_READ),
                 VIRTIO_IOMMU_S_OK);
    cr_assert_eq(f.maps->len, 1);
    mapping_event ev = g_array_index(f.maps, mapping_event, 0);
    cr_assert_eq(ev.iova, 0x1000);
    cr_assert_eq(ev.iova_last, 0x1fff);
    cr_assert_eq(ev.gpa, 0x8000);
    cr_assert_eq(ev.prot, MAPPING_PROT_READ);
    cr_assert_eq(ev.domain, 1);
    cr_assert_eq(test_unmap(v, 1, 0, UINT64_MAX), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(f.maps->len, 0);
    cr_assert_eq(f.begins, 2);
    cr_assert_eq(f.ends, 2);
    fl_fini(&f);
    viommu_free(v);
}

Test(viommu_listener, gets_one_batch_per_notification_with_request_indexes)
{
    viommu *v = test_device(0, 1);
    fake_listener f;
    fl_init(&f, v, 1);
    test_attach(v, 1, 1, 0);
    struct virtio_iommu_req_map m[3];
    uint8_t tails[3][4];
    struct iovec iov[6];
    viommu_request reqs[3];
    for (int i = 0; i < 3; i++) {
        m[i] = test_map_req(1, (uint64_t)i << 12, ((uint64_t)i << 12) + 0xfff, 0, RW);
        reqs[i] = make_req(&m[i], 36, tails[i], 4, &iov[2 * i]);
    }
    cr_assert_eq(viommu_process_batch(v, reqs, 3), 0);
    cr_assert_eq(f.begins, 1);
    cr_assert_eq(f.ends, 1);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(reqs[i].status, VIRTIO_IOMMU_S_OK);
        cr_assert_eq(g_array_index(f.maps, mapping_event, i).seq, (uint32_t)i);
    }
    fl_fini(&f);
    viommu_free(v);
}

Test(viommu_listener, replays_a_populated_domain_to_a_joining_endpoint)
{
    viommu *v = test_device(0, 2);
    fake_listener f1, f2;
    fl_init(&f1, v, 1);
    fl_init(&f2, v, 2);
    test_attach(v, 1, 1, 0);
    test_map(v, 1, 0x1000, 0x1fff, 0, RW);
    test_map(v, 1, 0x4000, 0x4fff, 0, RW);
    cr_assert_eq(test_attach(v, 1, 2, 0), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(f2.maps->len, 2);
    assert_same_view(v, 1, &f2);
    cr_assert_eq(test_detach(v, 1, 2), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(f2.maps->len, 0, "a leaving endpoint is unmapped from everything");
    cr_assert_eq(f1.maps->len, 2);
    fl_fini(&f1);
    fl_fini(&f2);
    viommu_free(v);
}

Test(viommu_listener, refusing_a_map_gives_nomem_and_rolls_back_the_others)
{
    viommu *v = test_device(0, 2);
    fake_listener f1, f2;
    fl_init(&f1, v, 1);
    fl_init(&f2, v, 2);
    test_attach(v, 1, 1, 0);
    test_attach(v, 1, 2, 0);
    f1.refuse_now = -ENOSPC;
    f1.refuse_limit = 1;
    cr_assert_eq(test_map(v, 1, 0x1000, 0x1fff, 0, RW), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(test_map(v, 1, 0x2000, 0x2fff, 0, RW), VIRTIO_IOMMU_S_NOMEM);
    cr_assert_eq(test_mappings(v, 1), 1);
    assert_same_view(v, 1, &f1);
    assert_same_view(v, 1, &f2);
    f1.refuse_now = -EIO;
    cr_assert_eq(test_map(v, 1, 0x2000, 0x2fff, 0, RW), VIRTIO_IOMMU_S_DEVERR);
    assert_same_view(v, 1, &f2);
    viommu_stats st;
    viommu_get_stats(v, &st);
    cr_assert_eq(st.listener_failures, 2);
    fl_fini(&f1);
    fl_fini(&f2);
    viommu_free(v);
}

Test(viommu_listener, failing_a_map_at_batch_end_gives_nomem_and_rolls_back)
{
    viommu *v = test_device(0, 2);
    fake_listener f1, f2;
    fl_init(&f1, v, 1);
    fl_init(&f2, v, 2);
    test_attach(v, 1, 1, 0);
    test_attach(v, 1, 2, 0);
    cr_assert_eq(test_map(v, 1, 0x1000, 0x1fff, 0, RW), VIRTIO_IOMMU_S_OK);
    f2.fail_at_end = -ENOMEM;
    /* One batch: a MAP that f2 fails at batch_end, then an UNMAP of the
     * first mapping, which must stay OK. */
    struct virtio_iommu_req_map m = test_map_req(1, 0x2000, 0x2fff, 0, RW);
    struct virtio_iommu_req_unmap u = test_unmap_req(1, 0x1000, 0x1fff);
    uint8_t t[2][4];
    struct iovec iov[4];
    viommu_request reqs[2] = {make_req(&m, 36, t[0], 4, &iov[0]),
                              make_req(&u, 28, t[1], 4, &iov[2])};
    viommu_process_batch(v, reqs, 2);
    cr_assert_eq(reqs[0].status, VIRTIO_IOMMU_S_NOMEM);
    cr_assert_eq(t[0][0], VIRTIO_IOMMU_S_NOMEM, "the tail holds the final status");
    cr_assert_eq(reqs[1].status, VIRTIO_IOMMU_S_OK);
    cr_assert_eq(test_mappings(v, 1), 0);
    assert_same_view(v, 1, &f1);
    assert_same_view(v, 1, &f2);
    f2.fail_at_end = -EIO;
    cr_assert_eq(test_map(v, 1, 0x2000, 0x2fff, 0, RW), VIRTIO_IOMMU_S_DEVERR);
    assert_same_view(v, 1, &f1);
    fl_fini(&f1);
    fl_fini(&f2);
    viommu_free(v);
}

Test(viommu_listener, refusing_a_replay_fails_the_attach)
{
    viommu *v = test_device(0, 2);
    fake_listener f1, f2;
    fl_init(&f1, v, 1);
    fl_init(&f2, v, 2);
    test_attach(v, 1, 1, 0);
    for (uint64_t i = 0; i < 4; i++)
        test_map(v, 1, i << 12, (i << 12) + 0xfff, 0, RW);
    f2.refuse_now = -ENOSPC;
    f2.refuse_limit = 2;
    cr_assert_eq(test_attach(v, 1, 2, 0), VIRTIO_IOMMU_S_NOMEM);
    cr_assert_eq(f2.maps->len, 0, "the accepted replays are unmapped");
    cr_assert_eq(viommu_endpoint_domain(v, 2, NULL), -ENODEV);
    f2.refuse_now = 0;
    f2.fail_at_end = -ENOSPC;
    cr_assert_eq(test_attach(v, 1, 2, 0), VIRTIO_IOMMU_S_NOMEM, "failed at batch_end");
    cr_assert_eq(f2.maps->len, 0);
    cr_assert_eq(viommu_endpoint_domain(v, 2, NULL), -ENODEV);
    cr_assert_eq(test_mappings(v, 1), 4, "the domain keeps its mappings");
    assert_same_view(v, 1, &f1);
    fl_fini(&f1);
    fl_fini(&f2);
    viommu_free(v);
}

Test(viommu_listener, gets_unmaps_on_reset)
{
    viommu *v = test_device(0, 1);
    fake_listener f;
    fl_init(&f, v, 1);
    test_attach(v, 1, 1, 0);
    test_map(v, 1, 0, 0xfff, 0, RW);
    viommu_reset(v);
    cr_assert_eq(f.maps->len, 0);
    cr_assert_eq(f.begins, f.ends);
    fl_fini(&f);
    viommu_free(v);
}

/* One batch: MAP X, then ATTACH ep2 to the domain (X replayed to it). */
static void map_then_join(viommu *v, viommu_request reqs[2], uint8_t t[2][4], struct iovec iov[4],
                          struct virtio_iommu_req_map *m, struct virtio_iommu_req_attach *a)
{
    *m = test_map_req(1, 0x5000, 0x5fff, 0, RW);
    *a = test_attach_req(1, 2, 0);
    reqs[0] = make_req(m, 36, t[0], 4, &iov[0]);
    reqs[1] = make_req(a, 20, t[1], 4, &iov[2]);
    viommu_process_batch(v, reqs, 2);
}

Test(viommu_listener, rolls_back_a_failed_map_from_an_endpoint_that_joined_in_the_batch)
{
    viommu *v = test_device(0, 2);
    fake_listener f1, f2;
    fl_init(&f1, v, 1);
    fl_init(&f2, v, 2);
    test_attach(v, 1, 1, 0);
    f1.fail_at_end = -ENOSPC;
    viommu_request reqs[2];
    uint8_t t[2][4];
    struct iovec iov[4];
    struct virtio_iommu_req_map m;
    struct virtio_iommu_req_attach a;
    map_then_join(v, reqs, t, iov, &m, &a);
    cr_assert_eq(reqs[0].status, VIRTIO_IOMMU_S_NOMEM);
    cr_assert_eq(reqs[1].status, VIRTIO_IOMMU_S_OK);
    cr_assert_eq(test_mappings(v, 1), 0);
    assert_same_view(v, 1, &f1);
    assert_same_view(v, 1, &f2);
    fl_fini(&f1);
    fl_fini(&f2);
    viommu_free(v);
}

Test(viommu_listener, never_unmaps_what_a_listener_failed_when_both_fail)
{
    viommu *v = test_device(0, 2);
    fake_listener f1, f2;
    fl_init(&f1, v, 1);
    fl_init(&f2, v, 2);
    test_attach(v, 1, 1, 0);
    f1.fail_at_end = -ENOSPC;
    f2.fail_at_end = -EIO;
    viommu_request reqs[2];
    uint8_t t[2][4];
    struct iovec iov[4];
    struct virtio_iommu_req_map m;
    struct virtio_iommu_req_attach a;
    map_then_join(v, reqs, t, iov, &m, &a);
    cr_assert_eq(reqs[0].status, VIRTIO_IOMMU_S_NOMEM);
    cr_assert_eq(reqs[1].status, VIRTIO_IOMMU_S_DEVERR);
    cr_assert_eq(viommu_endpoint_domain(v, 2, NULL), -ENODEV);
    cr_assert_eq(f1.maps->len, 0);
    cr_assert_eq(f2.maps->len, 0);
    cr_assert_eq(test_mappings(v, 1), 0);
    fl_fini(&f1);
    fl_fini(&f2);
    viommu_free(v);
}

Test(viommu_request, rejects_a_null_request_array)
{
    viommu *v = test_device(0, 1);
    cr_assert_eq(viommu_process_batch(v, NULL, 1), -EINVAL);
    cr_assert_eq(viommu_process_batch(v, NULL, 0), 0, "an empty batch is fine");
    viommu_stats st;
    viommu_get_stats(v, &st);
    cr_assert_eq(st.batches, 1);
    cr_assert_eq(st.requests, 0);
    viommu_free(v);
}

Test(viommu_listener, gets_no_batch_without_events)
{
    viommu *v = test_device(0, 2);
    fake_listener f1, f2;
    fl_init(&f1, v, 1);
    fl_init(&f2, v, 2);
    test_attach(v, 1, 1, 0);
    test_attach(v, 2, 2, 0);
    cr_assert_eq(test_map(v, 1, 0, 0xfff, 0, RW), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(f1.begins, 1);
    cr_assert_eq(f2.begins, 0, "domain 2 saw no change");
    fl_fini(&f1);
    fl_fini(&f2);
    viommu_free(v);
}

Test(viommu_listener, sees_the_old_domain_unmapped_and_the_new_one_replayed_on_a_move)
{
    viommu *v = test_device(0, 3);
    fake_listener f1, f2, f3;
    fl_init(&f1, v, 1);
    fl_init(&f2, v, 2);
    fl_init(&f3, v, 3);
    test_attach(v, 1, 1, 0);
    test_attach(v, 1, 3, 0);
    test_map(v, 1, 0x1000, 0x1fff, 0, RW);
    test_attach(v, 2, 2, 0);
    test_map(v, 2, 0x7000, 0x7fff, 0x3000, VIRTIO_IOMMU_MAP_F_WRITE);
    test_map(v, 2, 0x9000, 0xafff, 0x5000, RW);
    cr_assert_eq(test_attach(v, 2, 1, 0), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(f1.unmaps, 1);
    cr_assert_eq(f1.maps->len, 2);
    mapping_event ev = g_array_index(f1.maps, mapping_event, 0);
    cr_assert_eq(ev.domain, 2);
    cr_assert_eq(ev.iova, 0x7000);
    cr_assert_eq(ev.gpa, 0x3000);
    cr_assert_eq(ev.prot, MAPPING_PROT_WRITE);
    assert_same_view(v, 2, &f1);
    assert_same_view(v, 1, &f3);
    fl_fini(&f1);
    fl_fini(&f2);
    fl_fini(&f3);
    viommu_free(v);
}

Test(viommu_listener, gets_every_removed_mapping_of_a_wide_unmap)
{
    viommu *v = test_device(0, 1);
    fake_listener f;
    fl_init(&f, v, 1);
    test_attach(v, 1, 1, 0);
    for (uint64_t i = 0; i < 50; i++)
        test_map(v, 1, i << 13, (i << 13) + 0xfff, i << 12, RW);
    cr_assert_eq(test_unmap(v, 1, 0x2000 * 10, 0x2000 * 20 - 1), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(f.unmaps, 10);
    cr_assert_eq(test_mappings(v, 1), 40);
    assert_same_view(v, 1, &f);
    cr_assert_eq(test_unmap(v, 1, 0x2000 * 30 + 0x800, UINT64_MAX), VIRTIO_IOMMU_S_RANGE);
    cr_assert_eq(f.unmaps, 10, "a refused unmap sends nothing");
    fl_fini(&f);
    viommu_free(v);
}

Test(viommu_listener, batches_many_endpoints_of_one_domain)
{
    enum { N = 40 };
    viommu *v = test_device(0, N);
    fake_listener f[N];
    for (uint32_t i = 0; i < N; i++) {
        fl_init(&f[i], v, i + 1);
        cr_assert_eq(test_attach(v, 1, i + 1, 0), VIRTIO_IOMMU_S_OK);
    }
    cr_assert_eq(test_map(v, 1, 0x1000, 0x1fff, 0, RW), VIRTIO_IOMMU_S_OK);
    for (uint32_t i = 0; i < N; i++) {
        cr_assert_eq(f[i].maps->len, 1);
        cr_assert_eq(f[i].begins, f[i].ends);
        cr_assert_not(f[i].in_batch);
    }
    f[N - 1].refuse_now = -ENOMEM;
    f[N - 1].refuse_limit = 1;
    cr_assert_eq(test_map(v, 1, 0x2000, 0x2fff, 0, RW), VIRTIO_IOMMU_S_NOMEM);
    for (uint32_t i = 0; i < N; i++) {
        assert_same_view(v, 1, &f[i]);
        fl_fini(&f[i]);
    }
    viommu_free(v);
}

/* SPDX-License-Identifier: MIT */
/*
 * test_state.c - saving and loading the device state: round trips (up to
 * a million mappings), corrupt, truncated and newer streams refused with
 * the device untouched, mappings re-established with the listeners.
 */
#include <gio/gio.h>

#include "viommu_test.h"

/* ---- a recording listener -------------------------------------------- */

enum { EV_BEGIN, EV_MAP, EV_UNMAP, EV_END };

typedef struct rec_event {
    int kind;
    mapping_event ev;
} rec_event;

typedef struct recorder {
    GArray *events;     /* rec_event */
    uint64_t refuse_at; /* map of this iova is refused at once ... */
    bool refuse;        /* ... when set */
    uint64_t fail_at;   /* map of this iova is failed at batch_end ... */
    bool fail;          /* ... when set */
    bool fail_pending;
    mapping_event failed_ev;
    uint64_t maps, unmaps, begins, ends;
    int64_t held; /* maps accepted and not failed, minus unmaps */
} recorder;

static void rec_begin(void *opaque)
{
    recorder *r = opaque;
    rec_event e = {EV_BEGIN, {0}};
    g_array_append_val(r->events, e);
    r->begins++;
}

static int rec_map(void *opaque, const mapping_event *ev)
{
    recorder *r = opaque;
    if (r->refuse && ev->iova == r->refuse_at)
        return -ENOSPC;
    if (r->fail && ev->iova == r->fail_at) {
        r->fail_pending = true;
        r->failed_ev = *ev;
    }
    rec_event e = {EV_MAP, *ev};
    g_array_append_val(r->events, e);
    r->maps++;
    r->held++;
    return 0;
}

static int rec_unmap(void *opaque, const mapping_event *ev)
{
    recorder *r = opaque;
    rec_event e = {EV_UNMAP, *ev};
    g_array_append_val(r->events, e);
    r->unmaps++;
    r->held--;
    return 0;
}

static int rec_end(void *opaque, mapping_failed_fn failed, void *fail_opaque)
{
    recorder *r = opaque;
    rec_event e = {EV_END, {0}};
    g_array_append_val(r->events, e);
    r->ends++;
    if (r->fail_pending) {
        r->fail_pending = false;
        r->held--;
        if (failed)
            failed(fail_opaque, &r->failed_ev, -EIO);
        return -EIO;
    }
    return 0;
}

static const mapping_listener_ops rec_ops = {rec_begin, rec_map, rec_unmap, rec_end};

static void rec_init(recorder *r)
{
    memset(r, 0, sizeof(*r));
    r->events = g_array_new(FALSE, FALSE, sizeof(rec_event));
}

static void rec_clear(recorder *r)
{
    g_array_free(r->events, TRUE);
}

static mapping_listener rec_listener(recorder *r)
{
    return (mapping_listener){&rec_ops, r};
}

/* ---- helpers --------------------------------------------------------- */

static uint8_t *save(const viommu *v, size_t *len)
{
    cr_assert_eq(viommu_save(v, NULL, 0, len), -ENOSPC);
    uint8_t *buf = g_malloc(*len);
    size_t len2 = 0;
    cr_assert_eq(viommu_save(v, buf, *len, &len2), 0);
    cr_assert_eq(len2, *len);
    return buf;
}

/* Rewrites the trailing CRC-32 after a deliberate change. */
static uint32_t crc32_ref(const uint8_t *p, size_t len)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < len; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
    }
    return c ^ 0xffffffffu;
}

static void fix_crc(uint8_t *p, size_t len)
{
    uint32_t c = htole32(crc32_ref(p, len - 4));
    memcpy(p + len - 4, &c, 4);
}

/* A device with a bit of everything: reserved regions (one MSI), two
 * translated domains sharing nothing, a bypass domain, an unattached
 * endpoint, config.bypass cleared by the driver and a dropped fault. */
static viommu *rich_device(void)
{
    viommu *v = test_device(0, 5);
    cr_assert_eq(viommu_endpoint_add_resv(v, 1, 0x8000000, 0x80fffff, VIRTIO_IOMMU_RESV_MEM_T_MSI),
                 0);
    cr_assert_eq(
        viommu_endpoint_add_resv(v, 1, 0xfee00000, 0xfeefffff, VIRTIO_IOMMU_RESV_MEM_T_RESERVED),
        0);
    cr_assert_eq(test_attach(v, 10, 1, 0), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(test_attach(v, 10, 2, 0), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(test_attach(v, 20, 3, 0), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(test_attach(v, 30, 4, VIRTIO_IOMMU_ATTACH_F_BYPASS), VIRTIO_IOMMU_S_OK);
    for (uint64_t i = 0; i < 16; i++)
        cr_assert_eq(test_map(v, 10, i * 0x2000, i * 0x2000 + 0xfff, 0x100000 + i * 0x1000, RW),
                     VIRTIO_IOMMU_S_OK);
    cr_assert_eq(test_map(v, 20, 0x10000, 0x1ffff, 0x40000, VIRTIO_IOMMU_MAP_F_READ),
                 VIRTIO_IOMMU_S_OK);
    cr_assert_eq(test_map(v, 20, 0x30000, 0x30fff, 0xd0000000, VIRTIO_IOMMU_MAP_F_MMIO | RW),
                 VIRTIO_IOMMU_S_OK);
    uint8_t zero = 0;
    cr_assert_eq(viommu_config_write(v, offsetof(struct virtio_iommu_config, bypass), &zero, 1), 0);
    viommu_translation t;
    cr_assert_eq(viommu_translate(v, 5, 0x1234, VIOMMU_ACCESS_READ, &t), -EFAULT);
    return v;
}

static viommu *fresh_device(void)
{
    viommu_config cfg;
    viommu_config_init(&cfg);
    viommu *v = viommu_new(&cfg, NULL);
    cr_assert_not_null(v);
    return v;
}

/* ---- round trips ----------------------------------------------------- */

Test(viommu_state, round_trips_a_device_byte_for_byte)
{
    viommu *a = rich_device();
    size_t len;
    g_autofree uint8_t *s = save(a, &len);

    viommu *b = fresh_device();
    GError *err = NULL;
    cr_assert_eq(viommu_load(b, s, len, &err), 0, "%s", err ? err->message : "");
    size_t len2;
    g_autofree uint8_t *s2 = save(b, &len2);
    cr_assert_eq(len2, len);
    cr_assert(memcmp(s, s2, len) == 0, "saving the loaded state gives the same bytes");

    cr_assert_eq(viommu_driver_features(b), viommu_driver_features(a));
    uint8_t bypass = 0xff;
    cr_assert_eq(viommu_config_read(b, offsetof(struct virtio_iommu_config, bypass), &bypass, 1),
                 0);
    cr_assert_eq(bypass, 0);
    viommu_stats sa, sb;
    viommu_get_stats(a, &sa);
    viommu_get_stats(b, &sb);
    cr_assert(memcmp(&sa, &sb, sizeof(sa)) == 0, "counters survive");
    cr_assert_eq(sb.faults_dropped, 1);

    uint32_t dom;
    cr_assert_eq(viommu_endpoint_domain(b, 2, &dom), 0);
    cr_assert_eq(dom, 10);
    cr_assert_eq(viommu_endpoint_domain(b, 5, &dom), -ENODEV);
    bool byp;
    uint64_t nmap;
    uint32_t neps;
    cr_assert_eq(viommu_domain_info(b, 30, &byp, &nmap, &neps), 0);
    cr_assert(byp);
    cr_assert_eq(neps, 1);
    cr_assert_eq(viommu_domain_info(b, 10, &byp, &nmap, &neps), 0);
    cr_assert(!byp);
    cr_assert_eq(nmap, 16);
    cr_assert_eq(neps, 2);

    viommu_translation t;
    cr_assert_eq(viommu_translate(b, 2, 0x6010, VIOMMU_ACCESS_WRITE, &t), 0);
    cr_assert_eq(t.gpa, 0x103010);
    cr_assert_eq(viommu_translate(b, 3, 0x10000, VIOMMU_ACCESS_WRITE, &t), -EFAULT,
                 "read-only mapping stays read-only");
    cr_assert_eq(viommu_translate(b, 4, 0x55, VIOMMU_ACCESS_READ, &t), 0);
    cr_assert(t.bypass);
    /* The reserved regions came along: a MAP over the MSI window is refused. */
    cr_assert_eq(test_map(b, 10, 0x8000000, 0x8000fff, 0, RW), VIRTIO_IOMMU_S_RANGE);
    viommu_free(a);
    viommu_free(b);
}

typedef struct collect_ctx {
    viommu_mapping *maps;
    size_t n;
} collect_ctx;

static int collect(void *opaque, const viommu_mapping *m)
{
    collect_ctx *c = opaque;
    c->maps[c->n++] = *m;
    return 0;
}

typedef struct compare_ctx {
    const viommu_mapping *maps;
    size_t i;
    size_t n;
} compare_ctx;

static int compare(void *opaque, const viommu_mapping *m)
{
    compare_ctx *c = opaque;
    if (c->i >= c->n)
        return 1;
    const viommu_mapping *o = &c->maps[c->i++];
    if (o->virt_start != m->virt_start || o->virt_end != m->virt_end ||
        o->phys_start != m->phys_start || o->flags != m->flags)
        return 2;
    return 0;
}

#define MILLION 1000000u

Test(viommu_state, round_trips_a_million_mappings, .timeout = 600)
{
    viommu_config cfg;
    viommu_config_init(&cfg);
    viommu *a = viommu_new(&cfg, NULL);
    cr_assert_not_null(a);
    cr_assert_eq(viommu_set_driver_features(a, viommu_device_features(a)), 0);
    cr_assert_eq(viommu_endpoint_add(a, 7), 0);
    cr_assert_eq(test_attach(a, 1, 7, 0), VIRTIO_IOMMU_S_OK);

    /* A million MAP requests, 4096 per notification, through the decoder. */
    enum { BATCH = 4096 };
    struct virtio_iommu_req_map *bodies = g_new(struct virtio_iommu_req_map, BATCH);
    struct iovec *rd = g_new(struct iovec, BATCH);
    struct iovec *wr = g_new(struct iovec, BATCH);
    viommu_request *reqs = g_new0(viommu_request, BATCH);
    for (uint32_t done = 0; done < MILLION;) {
        uint32_t n = MILLION - done < BATCH ? MILLION - done : BATCH;
        for (uint32_t i = 0; i < n; i++) {
            uint64_t k = done + i;
            /* Every other page, so no two mappings touch; scattered backing. */
            bodies[i] = test_map_req(1, k * 0x2000, k * 0x2000 + 0xfff,
                                     ((k * 7919) % MILLION) * 0x1000, (k % 3) + 1);
            rd[i] = (struct iovec){&bodies[i], offsetof(struct virtio_iommu_req_map, tail)};
            wr[i] = (struct iovec){&bodies[i].tail, sizeof(bodies[i].tail)};
            reqs[i] = (viommu_request){&rd[i], 1, &wr[i], 1, 0, 0, 0};
        }
        cr_assert_eq(viommu_process_batch(a, reqs, n), 0);
        for (uint32_t i = 0; i < n; i++)
            cr_assert_eq(reqs[i].status, VIRTIO_IOMMU_S_OK);
        done += n;
    }
    g_free(bodies);
    g_free(rd);
    g_free(wr);
    g_free(reqs);
    cr_assert_eq(test_mappings(a, 1), MILLION);

    size_t len;
    g_autofree uint8_t *s = save(a, &len);
    cr_assert_gt(len, (size_t)MILLION * 32);

    viommu *b = fresh_device();
    recorder rec;
    rec_init(&rec);
    mapping_listener l = rec_listener(&rec);
    cr_assert_eq(viommu_endpoint_add(b, 7), 0);
    cr_assert_eq(viommu_endpoint_set_listener(b, 7, &l), 0);
    GError *err = NULL;
    cr_assert_eq(viommu_load(b, s, len, &err), 0, "%s", err ? err->message : "");
    cr_assert_eq(test_mappings(b, 1), MILLION);

    /* The listener got them all, in one batch, in address order. */
    cr_assert_eq(rec.begins, 1);
    cr_assert_eq(rec.ends, 1);
    cr_assert_eq(rec.maps, MILLION);
    cr_assert_eq(rec.unmaps, 0);
    const rec_event *ev = (const rec_event *)(void *)rec.events->data;
    cr_assert_eq(ev[0].kind, EV_BEGIN);
    cr_assert_eq(ev[rec.events->len - 1].kind, EV_END);

    /* Same mappings, compared by iterating both devices. */
    collect_ctx c = {g_new(viommu_mapping, MILLION), 0};
    cr_assert_eq(viommu_domain_foreach_mapping(a, 1, 0, UINT64_MAX, collect, &c), 0);
    cr_assert_eq(c.n, MILLION);
    for (size_t i = 0; i < MILLION; i++) {
        const mapping_event *m = &ev[i + 1].ev;
        if (ev[i + 1].kind != EV_MAP || m->endpoint != 7 || m->domain != 1 ||
            m->iova != c.maps[i].virt_start || m->iova_last != c.maps[i].virt_end ||
            m->gpa != c.maps[i].phys_start || m->prot != c.maps[i].flags)
            cr_assert_fail("map event %zu differs from mapping %zu", i, i);
    }
    compare_ctx cc = {c.maps, 0, c.n};
    cr_assert_eq(viommu_domain_foreach_mapping(b, 1, 0, UINT64_MAX, compare, &cc), 0);
    cr_assert_eq(cc.i, MILLION);

    /* And by translating a spread of addresses on both. */
    for (uint64_t k = 0; k < MILLION; k += 997) {
        viommu_translation ta, tb;
        uint64_t iova = k * 0x2000 + 0x123;
        uint32_t access = (uint32_t)(k % 3) + 1; /* the mapping's own permission */
        cr_assert_eq(viommu_translate(a, 7, iova, access, &ta), 0);
        cr_assert_eq(viommu_translate(b, 7, iova, access, &tb), 0);
        cr_assert_eq(ta.gpa, tb.gpa);
        cr_assert_eq(ta.iova_last, tb.iova_last);
        cr_assert_eq(ta.prot, tb.prot);
    }
    g_free(c.maps);

    size_t len2;
    g_autofree uint8_t *s2 = save(b, &len2);
    cr_assert_eq(len2, len);
    cr_assert(memcmp(s, s2, len) == 0);
    rec_clear(&rec);
    viommu_free(a);
    viommu_free(b);
}

/* ---- refusals leave the device untouched ---------------------------- */

/* A target device with one declared endpoint and a listener on it; its
 * own saved state is the reference for "untouched". */
typedef struct target {
    viommu *v;
    recorder rec;
    uint8_t *before;
    size_t before_len;
} target;

static void target_init(target *t)
{
    t->v = fresh_device();
    rec_init(&t->rec);
    mapping_listener l = rec_listener(&t->rec);
    cr_assert_eq(viommu_endpoint_add(t->v, 1), 0);
    cr_assert_eq(viommu_endpoint_set_listener(t->v, 1, &l), 0);
    t->before = save(t->v, &t->before_len);
}

static void target_assert_untouched(const target *t)
{
    size_t len;
    g_autofree uint8_t *now = save(t->v, &len);
    cr_assert_eq(len, t->before_len);
    cr_assert(memcmp(now, t->before, len) == 0, "the device is unchanged");
    /* Whatever the listener was given, it was given back. */
    cr_assert_eq(t->rec.held, 0);
}

static void target_clear(target *t)
{
    viommu_free(t->v);
    rec_clear(&t->rec);
    g_free(t->before);
}

/* Loads @s into @t: returns the result, and checks that a refusal says
 * why and leaves the device and its listener as they were. */
static int try_load(target *t, const uint8_t *s, size_t len)
{
    GError *err = NULL;
    int rc = viommu_load(t->v, s, len, &err);
    if (rc < 0) {
        cr_assert_not_null(err, "a refusal comes with a sentence");
        cr_assert_not_null(strstr(err->message, "viommu state"));
        g_error_free(err);
        target_assert_untouched(t);
    } else {
        cr_assert_null(err);
    }
    return rc;
}

Test(viommu_state, refuses_every_corrupted_byte_of_a_small_stream)
{
    viommu *a = rich_device();
    size_t len;
    g_autofree uint8_t *s = save(a, &len);
    viommu_free(a);
    target t;
    target_init(&t);
    g_autofree uint8_t *bad = g_memdup2(s, len);
    for (size_t i = 0; i < len; i++) {
        for (unsigned bit = 0; bit < 8; bit += 3) {
            bad[i] ^= (uint8_t)(1u << bit);
            int rc = try_load(&t, bad, len);
            cr_assert_eq(rc, -EBADMSG, "byte %zu bit %u", i, bit);
            bad[i] = s[i];
        }
    }
    target_clear(&t);
}

/* With the checksum recomputed, a changed byte reaches the decoder: the
 * stream is refused, or it describes a state the requests can build, and
 * saving that state gives exactly the changed stream back. */
static void check_fixed_flip(target *t, const uint8_t *s, size_t len, size_t pos, uint8_t mask,
                             unsigned *loaded)
{
    g_autofree uint8_t *bad = g_memdup2(s, len);
    bad[pos] ^= mask;
    fix_crc(bad, len);
    int rc = try_load(t, bad, len);
    if (rc < 0)
        return;
    size_t len2;
    g_autofree uint8_t *again = save(t->v, &len2);
    cr_assert_eq(len2, len, "byte %zu: length", pos);
    cr_assert(memcmp(again, bad, len) == 0, "byte %zu mask 0x%x loads identically", pos, mask);
    (*loaded)++;
    target_clear(t);
    target_init(t);
}

Test(viommu_state, decodes_every_changed_byte_of_a_small_stream_to_a_refusal_or_the_same_state)
{
    viommu *a = rich_device();
    size_t len;
    g_autofree uint8_t *s = save(a, &len);
    viommu_free(a);
    target t;
    target_init(&t);
    unsigned loaded = 0;
    for (size_t i = 0; i < len - 4; i++) {
        check_fixed_flip(&t, s, len, i, 0x01, &loaded);
        check_fixed_flip(&t, s, len, i, 0x80, &loaded);
    }
    /* Counters and addresses are free values: some changes are states. */
    cr_assert_gt(loaded, 0);
    target_clear(&t);
}

/* A larger stream: a few thousand sampled positions. */
static viommu *busy_device(void)
{
    viommu *v = test_device(0, 4);
    cr_assert_eq(test_attach(v, 1, 1, 0), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(test_attach(v, 2, 2, 0), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(test_attach(v, 2, 3, 0), VIRTIO_IOMMU_S_OK);
    for (uint64_t i = 0; i < 1000; i++) {
        cr_assert_eq(test_map(v, 1, i << 16, (i << 16) + 0x3fff, i << 14, RW), VIRTIO_IOMMU_S_OK);
        cr_assert_eq(test_map(v, 2, i << 20, (i << 20) + 0xfff, i << 12, VIRTIO_IOMMU_MAP_F_READ),
                     VIRTIO_IOMMU_S_OK);
    }
    return v;
}

Test(viommu_state, refuses_sampled_corruptions_of_a_larger_stream, .timeout = 300)
{
    viommu *a = busy_device();
    size_t len;
    g_autofree uint8_t *s = save(a, &len);
    viommu_free(a);
    cr_assert_gt(len, 60000);
    target t;
    target_init(&t);
    g_autofree uint8_t *bad = g_memdup2(s, len);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    unsigned loaded = 0;
    for (unsigned k = 0; k < 3000; k++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        size_t pos = (size_t)((x >> 33) % len);
        uint8_t mask = (uint8_t)(1u << ((x >> 20) & 7));
        bad[pos] ^= mask;
        int rc = try_load(&t, bad, len);
        cr_assert_eq(rc, -EBADMSG, "byte %zu", pos);
        bad[pos] = s[pos];
        if (k % 10 == 0)
            check_fixed_flip(&t, s, len, pos < len - 4 ? pos : 0, mask, &loaded);
    }
    target_clear(&t);
}

Test(viommu_state, refuses_every_truncation)
{
    viommu *a = rich_device();
    size_t len;
    g_autofree uint8_t *s = save(a, &len);
    viommu_free(a);
    target t;
    target_init(&t);
    for (size_t l = 0; l < len; l++)
        cr_assert_eq(try_load(&t, s, l), -EBADMSG, "length %zu", l);
    /* Extra bytes after a valid stream are refused too. */
    g_autofree uint8_t *longer = g_malloc0(len + 1);
    memcpy(longer, s, len);
    cr_assert_eq(try_load(&t, longer, len + 1), -EBADMSG);
    target_clear(&t);
}

Test(viommu_state, refuses_a_newer_version_and_says_so)
{
    viommu *a = rich_device();
    size_t len;
    g_autofree uint8_t *s = save(a, &len);
    viommu_free(a);
    uint32_t version = htole32(VIOMMU_STATE_VERSION + 1);
    memcpy(s + 8, &version, 4);
    fix_crc(s, len);
    target t;
    target_init(&t);
    GError *err = NULL;
    cr_assert_eq(viommu_load(t.v, s, len, &err), -ENOTSUP);
    cr_assert_not_null(err);
    cr_assert_not_null(strstr(err->message, "newer"), "%s", err->message);
    cr_assert(g_error_matches(err, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED));
    g_error_free(err);
    target_assert_untouched(&t);
    target_clear(&t);
}

Test(viommu_state, names_a_checksum_mismatch_as_corruption)
{
    viommu *a = rich_device();
    size_t len;
    g_autofree uint8_t *s = save(a, &len);
    viommu_free(a);
    s[len / 2] ^= 0x10;
    viommu *b = fresh_device();
    GError *err = NULL;
    cr_assert_eq(viommu_load(b, s, len, &err), -EBADMSG);
    cr_assert(g_error_matches(err, G_IO_ERROR, G_IO_ERROR_INVALID_DATA));
    cr_assert_not_null(strstr(err->message, "checksum"), "%s", err->message);
    g_error_free(err);
    viommu_free(b);
}

Test(viommu_state, names_a_foreign_stream_by_its_magic)
{
    viommu *a = rich_device();
    size_t len;
    g_autofree uint8_t *s = save(a, &len);
    viommu_free(a);
    memcpy(s, "NOTVIOMM", 8);
    fix_crc(s, len);
    viommu *b = fresh_device();
    GError *err = NULL;
    cr_assert_eq(viommu_load(b, s, len, &err), -EBADMSG);
    cr_assert_not_null(strstr(err->message, "magic"), "%s", err->message);
    g_error_free(err);
    viommu_free(b);
}

Test(viommu_state, refuses_a_stream_of_another_configuration)
{
    viommu *a = rich_device();
    size_t len;
    g_autofree uint8_t *s = save(a, &len);
    viommu_free(a);
    viommu_config cfg;
    viommu_config_init(&cfg);
    cfg.probe_size = 0x100;
    viommu *b = viommu_new(&cfg, NULL);
    GError *err = NULL;
    cr_assert_eq(viommu_load(b, s, len, &err), -EINVAL);
    cr_assert_not_null(strstr(err->message, "probe_size"), "%s", err->message);
    g_error_free(err);
    viommu_free(b);

    /* Limits are the destination's: too small for the state is refused. */
    viommu_config_init(&cfg);
    cfg.max_mappings_per_domain = 8;
    b = viommu_new(&cfg, NULL);
    cr_assert_eq(viommu_load(b, s, len, NULL), -EINVAL);
    viommu_stats st;
    viommu_get_stats(b, &st);
    cr_assert_eq(st.endpoints, 0);
    cr_assert_eq(st.domains, 0);
    viommu_free(b);
}

Test(viommu_state, refuses_to_load_over_attached_endpoints)
{
    viommu *a = rich_device();
    size_t len;
    g_autofree uint8_t *s = save(a, &len);
    GError *err = NULL;
    cr_assert_eq(viommu_load(a, s, len, &err), -EBUSY);
    g_error_free(err);
    /* After a reset it loads, and is the saved device again. */
    viommu_reset(a);
    cr_assert_eq(viommu_load(a, s, len, NULL), 0);
    size_t len2;
    g_autofree uint8_t *s2 = save(a, &len2);
    cr_assert_eq(len2, len);
    cr_assert(memcmp(s, s2, len) == 0);
    viommu_free(a);
}

Test(viommu_state, refuses_a_stream_without_an_endpoint_the_device_declares)
{
    viommu *a = rich_device();
    size_t len;
    g_autofree uint8_t *s = save(a, &len);
    viommu_free(a);
    viommu *b = fresh_device();
    cr_assert_eq(viommu_endpoint_add(b, 99), 0);
    GError *err = NULL;
    cr_assert_eq(viommu_load(b, s, len, &err), -EINVAL);
    cr_assert_not_null(strstr(err->message, "99"), "%s", err->message);
    g_error_free(err);
    cr_assert(!viommu_endpoint_exists(b, 1));
    viommu_free(b);
}

Test(viommu_state, rejects_bad_arguments)
{
    viommu *v = fresh_device();
    size_t len = 0;
    uint8_t buf[8];
    cr_assert_eq(viommu_save(NULL, buf, sizeof(buf), &len), -EINVAL);
    cr_assert_eq(viommu_save(v, buf, sizeof(buf), NULL), -EINVAL);
    cr_assert_eq(viommu_save(v, NULL, 8, &len), -EINVAL);
    cr_assert_eq(viommu_save(v, buf, sizeof(buf), &len), -ENOSPC);
    cr_assert_gt(len, sizeof(buf), "the needed length is reported");
    cr_assert_eq(viommu_load(NULL, buf, sizeof(buf), NULL), -EINVAL);
    cr_assert_eq(viommu_load(v, NULL, 8, NULL), -EINVAL);
    cr_assert_eq(viommu_load(v, NULL, 0, NULL), -EBADMSG);
    viommu_free(v);
}

/* ---- listeners ------------------------------------------------------- */

Test(viommu_state, gives_each_listener_its_domain_in_one_batch)
{
    viommu *a = rich_device();
    size_t len;
    g_autofree uint8_t *s = save(a, &len);
    viommu_free(a);
    viommu *b = fresh_device();
    recorder r[4];
    for (uint32_t ep = 1; ep <= 3; ep++) {
        rec_init(&r[ep]);
        mapping_listener l = rec_listener(&r[ep]);
        cr_assert_eq(viommu_endpoint_add(b, ep), 0);
        cr_assert_eq(viommu_endpoint_set_listener(b, ep, &l), 0);
    }
    cr_assert_eq(viommu_load(b, s, len, NULL), 0);
    /* Endpoints 1 and 2 share domain 10 (16 mappings); 3 has domain 20. */
    for (uint32_t ep = 1; ep <= 3; ep++) {
        uint64_t want = ep == 3 ? 2 : 16;
        cr_assert_eq(r[ep].begins, 1, "endpoint %u", ep);
        cr_assert_eq(r[ep].ends, 1);
        cr_assert_eq(r[ep].maps, want);
        const rec_event *ev = (const rec_event *)(void *)r[ep].events->data;
        for (uint64_t i = 1; i <= want; i++) {
            cr_assert_eq(ev[i].ev.endpoint, ep);
            cr_assert_eq(ev[i].ev.domain, ep == 3 ? 20 : 10);
        }
    }
    /* The MMIO mapping keeps its flag. */
    const rec_event *ev3 = (const rec_event *)(void *)r[3].events->data;
    cr_assert_eq(ev3[2].ev.prot, MAPPING_PROT_MMIO | MAPPING_PROT_READ | MAPPING_PROT_WRITE);
    /* The loaded device goes on emitting to them. */
    cr_assert_eq(test_unmap(b, 20, 0x10000, 0x1ffff), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(r[3].unmaps, 1);
    for (uint32_t ep = 1; ep <= 3; ep++)
        rec_clear(&r[ep]);
    viommu_free(b);
}

static void listener_failure_case(bool at_batch_end)
{
    viommu *a = rich_device();
    size_t len;
    g_autofree uint8_t *s = save(a, &len);
    viommu_free(a);
    viommu *b = fresh_device();
    recorder r[4];
    for (uint32_t ep = 1; ep <= 3; ep++) {
        rec_init(&r[ep]);
        mapping_listener l = rec_listener(&r[ep]);
        cr_assert_eq(viommu_endpoint_add(b, ep), 0);
        cr_assert_eq(viommu_endpoint_set_listener(b, ep, &l), 0);
    }
    size_t before_len;
    g_autofree uint8_t *before = save(b, &before_len);
    /* Endpoint 2 (served after endpoint 1) refuses the 6th mapping. */
    if (at_batch_end) {
        r[2].fail = true;
        r[2].fail_at = 5 * 0x2000;
    } else {
        r[2].refuse = true;
        r[2].refuse_at = 5 * 0x2000;
    }
    GError *err = NULL;
    int rc = viommu_load(b, s, len, &err);
    cr_assert_eq(rc, at_batch_end ? -EIO : -ENOSPC);
    cr_assert_not_null(strstr(err->message, "endpoint 2"), "%s", err->message);
    g_error_free(err);

    cr_assert_eq(r[1].maps, 16);
    cr_assert_eq(r[1].unmaps, 16, "endpoint 1 gives back all it got");
    cr_assert_eq(r[1].begins, 2, "in a batch of its own");
    cr_assert_eq(r[2].held, 0, "endpoint 2 gives back all it had accepted");
    cr_assert_eq(r[2].unmaps, at_batch_end ? 15 : 5);
    const rec_event *ev = (const rec_event *)(void *)r[2].events->data;
    for (guint i = 0; i < r[2].events->len; i++)
        if (ev[i].kind == EV_UNMAP)
            cr_assert_neq(ev[i].ev.iova, 5 * 0x2000, "no unmap of what it failed");
    cr_assert_eq(r[3].maps, 0, "endpoint 3 was never served");

    size_t after_len;
    g_autofree uint8_t *after = save(b, &after_len);
    cr_assert_eq(after_len, before_len);
    cr_assert(memcmp(after, before, after_len) == 0, "the device is unchanged");
    for (uint32_t ep = 1; ep <= 3; ep++)
        rec_clear(&r[ep]);
    viommu_free(b);
}

Test(viommu_state, takes_everything_back_when_a_listener_refuses_a_map)
{
    listener_failure_case(false);
}

Test(viommu_state, takes_everything_back_when_a_listener_fails_a_map_at_batch_end)
{
    listener_failure_case(true);
}

static void on_event(void *opaque, uint64_t cookie, size_t used_len)
{
    uint64_t *got = opaque;
    got[0] = cookie;
    got[1] = used_len;
}

Test(viommu_state, keeps_the_vmm_wiring_of_the_destination)
{
    viommu *a = rich_device();
    size_t len;
    g_autofree uint8_t *s = save(a, &len);
    viommu_free(a);
    viommu *b = fresh_device();
    uint64_t got[2] = {0, 0};
    struct virtio_iommu_fault report;
    struct iovec iov = {&report, sizeof(report)};
    viommu_set_event_handler(b, on_event, got);
    cr_assert_eq(viommu_event_post(b, &iov, 1, 42), 0);
    cr_assert_eq(viommu_load(b, s, len, NULL), 0);
    /* The posted buffer and the handler are still there for the next fault. */
    viommu_translation t;
    cr_assert_eq(viommu_translate(b, 5, 0x5000, VIOMMU_ACCESS_WRITE, &t), -EFAULT);
    cr_assert_eq(got[0], 42);
    cr_assert_eq(got[1], sizeof(report));
    cr_assert_eq(le32toh(report.endpoint), 5);
    viommu_stats st;
    viommu_get_stats(b, &st);
    cr_assert_eq(st.faults, 2, "the loaded count goes on");
    cr_assert_eq(st.faults_reported, 1);
    viommu_free(b);
}

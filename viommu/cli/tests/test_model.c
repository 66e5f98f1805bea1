/* SPDX-License-Identifier: MIT */
/*
 * Model-based test of the whole path: guest requests in wire format
 * through the device model, the DMA mappers of three endpoints, each on
 * its own connection to the reference vfio-user server (in-process, one
 * listening socket), and the sample device's DMA into guest RAM.
 *
 * Random guest batches (MAP / UNMAP / ATTACH / DETACH), random device
 * writes to mapped and unmapped IOVAs, server faults (injected reply
 * faults, closed connections, server restarts), reconnects and dirty
 * tracking toggled on and off run against a reference model that knows
 * the mappings of every domain, the domain of every endpoint and the
 * guest pages each device wrote while tracking was on. After every step:
 *
 *   - the device model holds exactly the model's domains and mappings
 *     (or, in a step where a server failed, a state the failure explains);
 *   - each device's DMA reaches exactly what its endpoint's domain maps
 *     (probed with device writes; a write that lands is read back from
 *     guest RAM) and each mapper holds the DMA regions the model expects;
 *   - every page a device wrote while tracking was on is in the dirty log,
 *     or was collected from it earlier, once the mapping it was written
 *     through is gone or a sync ran;
 *   - no message exceeded a negotiated limit: a connection never ends with
 *     -EMSGSIZE, and in a step without a server fault no range had to be
 *     marked dirty whole and no map failed.
 *
 * Each test runs a fixed seed by default, so the suite gives the same
 * verdict on every run; TEST_SEED=random draws a new seed per run (printed),
 * TEST_SEED=N repeats one, TEST_MODEL_OPS=N sets
 * the number of operations of each test, TEST_MODEL_TRACE=1 prints every
 * step and TEST_MODEL_SERVER_VERBOSE=1 every message the server handles.
 */
#include <criterion/criterion.h>
#include <endian.h>
#include <errno.h>
#include <glib.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vfio-user-server.h"
#include "vfio-user.h"
#include "viommu.h"

#define PG 4096ull
/* Guest RAM: two regions backed by one memfd, adjacent in guest-physical
 * space but not in the file, so a mapping across 4 MiB becomes two DMA
 * regions; guest-physical 8 MiB and up is not RAM. */
#define RAM_SPLIT (4ull << 20)
#define RAM_END (8ull << 20)
#define RAM1_FD_OFFSET (8ull << 20)
#define FD_SIZE (16ull << 20)
#define RAM_PAGES (RAM_END / PG)
#define IOVA_PAGES 256ull /* a small IOVA space, so that requests collide */
#define NDOM 4            /* domain IDs 1 .. NDOM */
#define NEP 3             /* endpoint IDs EP_BASE .. EP_BASE + NEP - 1 */
#define EP_BASE 8u
#define MAX_BATCH 16

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

/* TEST_MODEL_TRACE=1 prints every step, to follow a failing seed. */
static bool trace_steps;
#define STEP_TRACE(...)                                                                            \
    do {                                                                                           \
        if (trace_steps)                                                                           \
            fprintf(stderr, __VA_ARGS__);                                                          \
    } while (0)

/* ------------------------------------------------------------------ */
/* The reference model                                                 */
/* ------------------------------------------------------------------ */

typedef struct model_map {
    uint64_t iova, last, gpa;
    uint32_t flags; /* VIRTIO_IOMMU_MAP_F_* */
    uint64_t id;    /* identity: a remap of the same range is a new mapping */
} model_map;

typedef struct model {
    bool live[NDOM + 1];
    GArray *maps[NDOM + 1]; /* model_map, unordered */
    uint32_t ep_dom[NEP];   /* 0: not attached */
    uint64_t next_id;
} model;

static void model_init(model *m)
{
    memset(m, 0, sizeof(*m));
    for (int d = 0; d <= NDOM; d++)
        m->maps[d] = g_array_new(FALSE, FALSE, sizeof(model_map));
    m->next_id = 1;
}

static void model_clear(model *m)
{
    for (int d = 0; d <= NDOM; d++)
        g_array_free(m->maps[d], TRUE);
}

static void model_copy(model *dst, const model *src)
{
    for (int d = 0; d <= NDOM; d++) {
        g_array_set_size(dst->maps[d], 0);
        g_array_append_vals(dst->maps[d], src->maps[d]->data, src->maps[d]->len);
        dst->live[d] = src->live[d];
    }
    memcpy(dst->ep_dom, src->ep_dom, sizeof(dst->ep_dom));
    dst->next_id = src->next_id;
}

static model_map *model_maps(const model *m, uint32_t d, guint *n)
{
    *n = m->maps[d]->len;
    return (model_map *)(void *)m->maps[d]->data;
}

static unsigned model_ep_count(const model *m, uint32_t d)
{
    unsigned n = 0;
    for (int e = 0; e < NEP; e++)
        n += m->ep_dom[e] == d;
    return n;
}

static void model_leave(model *m, int e)
{
    uint32_t d = m->ep_dom[e];
    m->ep_dom[e] = 0;
    if (d && model_ep_count(m, d) == 0) {
        m->live[d] = false;
        g_array_set_size(m->maps[d], 0);
    }
}

static uint8_t model_attach(model *m, uint32_t d, int e)
{
    if (m->live[d] && m->ep_dom[e] == d)
        return VIRTIO_IOMMU_S_OK;
    model_leave(m, e);
    m->live[d] = true;
    m->ep_dom[e] = d;
    return VIRTIO_IOMMU_S_OK;
}

static uint8_t model_detach(model *m, uint32_t d, int e)
{
    if (m->ep_dom[e] != d)
        return VIRTIO_IOMMU_S_INVAL;
    model_leave(m, e);
    return VIRTIO_IOMMU_S_OK;
}

static bool in_ram(uint64_t gpa, uint64_t size)
{
    return gpa < RAM_END && size <= RAM_END - gpa;
}

static uint8_t model_map_req(model *m, uint32_t d, uint64_t s, uint64_t e, uint64_t gpa,
                             uint32_t flags)
{
    if ((s | gpa | (e + 1)) & (PG - 1))
        return VIRTIO_IOMMU_S_RANGE;
    if (!m->live[d])
        return VIRTIO_IOMMU_S_NOENT;
    guint n;
    model_map *mm = model_maps(m, d, &n);
    for (guint i = 0; i < n; i++)
        if (mm[i].iova <= e && s <= mm[i].last)
            return VIRTIO_IOMMU_S_INVAL;
    /* Every endpoint of a live domain has a mapper, which refuses a
     * range outside guest RAM (unless it names MMIO). */
    if (!(flags & VIRTIO_IOMMU_MAP_F_MMIO) && !in_ram(gpa, e - s + 1))
        return VIRTIO_IOMMU_S_DEVERR;
    model_map nm = {s, e, gpa, flags, m->next_id++};
    g_array_append_val(m->maps[d], nm);
    return VIRTIO_IOMMU_S_OK;
}

static uint8_t model_unmap_req(model *m, uint32_t d, uint64_t s, uint64_t e)
{
    if (!m->live[d])
        return VIRTIO_IOMMU_S_NOENT;
    guint n;
    model_map *mm = model_maps(m, d, &n);
    for (guint i = 0; i < n; i++)
        if (mm[i].iova <= e && s <= mm[i].last && (mm[i].iova < s || mm[i].last > e))
            return VIRTIO_IOMMU_S_RANGE; /* atomic: nothing is removed */
    for (guint i = 0; i < m->maps[d]->len;) {
        model_map *x = &g_array_index(m->maps[d], model_map, i);
        if (x->iova <= e && s <= x->last)
            g_array_remove_index_fast(m->maps[d], i);
        else
            i++;
    }
    return VIRTIO_IOMMU_S_OK;
}

/* The mapping of endpoint @e's domain that holds @iova, or NULL. */
static const model_map *model_lookup(const model *m, int e, uint64_t iova)
{
    uint32_t d = m->ep_dom[e];
    if (!d)
        return NULL;
    guint n;
    const model_map *mm = model_maps(m, d, &n);
    for (guint i = 0; i < n; i++)
        if (mm[i].iova <= iova && iova <= mm[i].last)
            return &mm[i];
    return NULL;
}

static bool model_has_id(const model *m, int e, uint32_t d, uint64_t id)
{
    if (m->ep_dom[e] != d)
        return false;
    guint n;
    const model_map *mm = model_maps(m, d, &n);
    for (guint i = 0; i < n; i++)
        if (mm[i].id == id)
            return true;
    return false;
}

/* ------------------------------------------------------------------ */
/* The harness                                                         */
/* ------------------------------------------------------------------ */

typedef struct harness harness;

typedef struct endpoint_dev {
    harness *h;
    int idx;
    uint32_t id;
    vfio_user_mapper *m;
    vfio_user_mapper_config mcfg;
} endpoint_dev;

/* A page range a device wrote through mapping @map_id while tracking was on. */
typedef struct pending_write {
    int ep;
    uint32_t dom;
    uint64_t map_id;
    uint64_t gpa_first, gpa_last;
    bool synced; /* a sync ran since: it must be in the log now */
} pending_write;

/* What a step is compared against, per endpoint. */
typedef struct ep_snapshot {
    vfio_user_client *client;
    vfio_user_mapper_stats stats;
} ep_snapshot;

struct harness {
    uint64_t seed, rng;
    vfio_user_dialect dialect;
    char dir[64];
    char path[108];
    vfio_user_server_options sopts;
    vfio_user_server *srv;
    GThread *thread;
    int memfd;
    uint8_t *ram;
    guest_mem *gm;
    viommu *v;
    vfio_user_client_config ccfg;
    endpoint_dev eps[NEP];
    model mdl, pred;
    GArray *pending; /* pending_write */
    uint64_t collected[BITMAP_WORDS(RAM_PAGES)];
    uint32_t region_limit; /* 0: the server's default */
    bool logs;             /* the server keeps a dirty log */
    uint8_t fill;
    uint64_t ops, target;
    ep_snapshot snap[NEP];
    bool ep_faulty[NEP]; /* as step_faulty() last found each endpoint */
    /* counters for the closing line */
    uint64_t steps, batches, requests, faulty_steps, strict_checks, probes, probes_hit,
        probes_missed, probes_unknown, dirty_checked, syncs, restarts, closes, toggles;
};

static uint64_t rnd_next(harness *h)
{
    /* splitmix64: small, fast, and the same sequence everywhere. */
    uint64_t z = (h->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rnd(harness *h, uint64_t n)
{
    return rnd_next(h) % n;
}

static uint8_t *ram_at(harness *h, uint64_t gpa)
{
    return gpa < RAM_SPLIT ? h->ram + gpa : h->ram + RAM1_FD_OFFSET + (gpa - RAM_SPLIT);
}

/* The device's DMA in isolated mode: through the device model's
 * translation for its endpoint, as viommu/cli/vfio_backend.c does it. */
static int dev_dma_rw(void *opaque, uint64_t iova, void *buf, uint64_t len, bool write)
{
    endpoint_dev *e = opaque;
    uint8_t *p = buf;
    while (len) {
        viommu_translation t;
        int ret = viommu_translate(e->h->v, e->id, iova,
                                   write ? VIOMMU_ACCESS_WRITE : VIOMMU_ACCESS_READ, &t);
        if (ret < 0 || t.bypass)
            return -EFAULT;
        uint64_t run = t.iova_last - iova + 1;
        uint64_t n = run && run < len ? run : len;
        ret = guest_mem_rw(e->h->gm, t.gpa, p, n, write);
        if (ret < 0)
            return ret;
        p += n;
        iova += n;
        len -= n;
    }
    return 0;
}

static gpointer server_thread(gpointer data)
{
    vfio_user_server_run(data);
    return NULL;
}

/* Fault injection of a server instance: none, or one kind hitting the
 * reply after a random number of replies on every connection. */
static void pick_faults(harness *h, vfio_user_server_faults *f)
{
    /* Faults that end the connection, and (rarer, since a step they may
     * hit is held to less) faults the connection survives. */
    static const uint32_t ending[] = {
        VFIO_USER_SERVER_FAULT_DROP_MID_REPLY, VFIO_USER_SERVER_FAULT_WRONG_SIZE,
        VFIO_USER_SERVER_FAULT_REPLY_TO_NOTHING,
        /* Another request's reply, or one to nothing: either way the real
         * reply then answers nothing and the stream breaks. */
        VFIO_USER_SERVER_FAULT_WRONG_ID,
        VFIO_USER_SERVER_FAULT_SHORT_WRITES, /* survived, and harmless */
    };
    static const uint32_t survived[] = {
        VFIO_USER_SERVER_FAULT_UNEXPECTED_FD,
        VFIO_USER_SERVER_FAULT_OVERSIZED_BITMAP,
    };
    static const uint16_t commands[] = {0, 0, 0, VFIO_USER_DMA_MAP, VFIO_USER_DMA_UNMAP};
    memset(f, 0, sizeof(*f));
    unsigned k = (unsigned)rnd(h, 20);
    if (k < 8)
        return;
    if (k < 17)
        f->kinds = ending[rnd(h, G_N_ELEMENTS(ending))];
    else
        f->kinds = survived[rnd(h, G_N_ELEMENTS(survived))];
    f->command = commands[rnd(h, G_N_ELEMENTS(commands))];
    f->skip = 20 + (uint32_t)rnd(h, 600);
    f->count = 1;
}

static void server_start(harness *h)
{
    GError *err = NULL;
    pick_faults(h, &h->sopts.faults);
    h->srv = vfio_user_server_new(h->path, &h->sopts, &err);
    cr_assert_not_null(h->srv, "server: %s", err ? err->message : "");
    h->thread = g_thread_new("vfio-user-server", server_thread, h->srv);
}

static void server_stop(harness *h)
{
    vfio_user_server_stop(h->srv);
    g_thread_join(h->thread);
    vfio_user_server_free(h->srv);
    h->srv = NULL;
}

static uint64_t env_u64(const char *name, uint64_t def)
{
    const char *s = getenv(name);
    if (!s || !*s)
        return def;
    char *end = NULL;
    uint64_t v = g_ascii_strtoull(s, &end, 0);
    cr_assert(end && !*end, "%s=%s is not a number", name, s);
    return v;
}

/* A regression test's seed: wins over TEST_SEED when set. */
static uint64_t forced_seed;

/* TEST_SEED: unset, the test's fixed seed; "random", a new one; else that one. */
static uint64_t test_seed(uint64_t fixed)
{
    const char *want = getenv("TEST_SEED");
    if (forced_seed)
        return forced_seed;
    if (want && !strcmp(want, "random"))
        return (uint64_t)g_get_real_time() ^ ((uint64_t)getpid() << 32) ^ fixed;
    return env_u64("TEST_SEED", fixed);
}

static void harness_setup(harness *h, vfio_user_server_profile profile, vfio_user_dialect dialect,
                          uint64_t ops)
{
    GError *err = NULL;
    memset(h, 0, sizeof(*h));
    uint64_t seed = test_seed(0x5eed0000u + (uint64_t)dialect);
    h->seed = h->rng = seed;
    h->dialect = dialect;
    h->target = env_u64("TEST_MODEL_OPS", ops);
    trace_steps = env_u64("TEST_MODEL_TRACE", 0) != 0;

    snprintf(h->dir, sizeof(h->dir), "/tmp/viommu-model-XXXXXX");
    cr_assert_not_null(g_mkdtemp(h->dir));
    snprintf(h->path, sizeof(h->path), "%s/sock", h->dir);

    vfio_user_server_options_init(&h->sopts);
    h->sopts.profile = profile;
    h->sopts.dialect = dialect;
    h->sopts.verbose = env_u64("TEST_MODEL_SERVER_VERBOSE", 0) != 0;
    /* A small region limit in some runs: maps beyond it answer S_NOMEM. */
    if (profile == VFIO_USER_SERVER_PROFILE_LIBVFIO_USER_2022 ||
        profile == VFIO_USER_SERVER_PROFILE_QEMU_7_2) {
        h->region_limit = 16;
    } else if (profile == VFIO_USER_SERVER_PROFILE_OWN && rnd(h, 5) == 0) {
        h->region_limit = 24 + (uint32_t)rnd(h, 40);
        h->sopts.max_regions = h->region_limit;
    }
    server_start(h);

    h->memfd = memfd_create("model-guest-ram", MFD_CLOEXEC);
    cr_assert_geq(h->memfd, 0);
    cr_assert_eq(ftruncate(h->memfd, (off_t)FD_SIZE), 0);
    h->ram = mmap(NULL, FD_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, h->memfd, 0);
    cr_assert_neq(h->ram, MAP_FAILED);
    h->gm = guest_mem_new(PG);
    cr_assert_eq(guest_mem_add(h->gm, 0, RAM_SPLIT, h->memfd, 0, h->ram), 0);
    cr_assert_eq(guest_mem_add(h->gm, RAM_SPLIT, RAM_END - RAM_SPLIT, h->memfd, RAM1_FD_OFFSET,
                               h->ram + RAM1_FD_OFFSET),
                 0);

    viommu_config vcfg;
    viommu_config_init(&vcfg);
    h->v = viommu_new(&vcfg, &err);
    cr_assert_not_null(h->v, "viommu: %s", err ? err->message : "");
    cr_assert_eq(viommu_set_driver_features(h->v, VIOMMU_FEATURE(VIRTIO_IOMMU_F_MAP_UNMAP) |
                                                      VIOMMU_FEATURE(VIRTIO_IOMMU_F_INPUT_RANGE) |
                                                      VIOMMU_FEATURE(VIRTIO_IOMMU_F_DOMAIN_RANGE) |
                                                      VIOMMU_FEATURE(VIRTIO_IOMMU_F_MMIO) |
                                                      VIOMMU_FEATURE(VIRTIO_IOMMU_F_PROBE)),
                 0);

    /* Message size limits: the defaults, or small ones that split tables
     * and coarsen bitmaps. */
    static const uint64_t sizes[] = {0, 0, 65536, 4096, 1024, 512};
    vfio_user_client_config_init(&h->ccfg, dialect);
    h->ccfg.timeout_ms = 10000;
    /* QEMU 7.2's server has no migration: every range it unmaps, and every
     * sync, is marked dirty whole. */
    h->logs = profile != VFIO_USER_SERVER_PROFILE_QEMU_7_2;
    h->ccfg.caps.migration = h->logs;
    h->ccfg.caps.pgsize = h->logs ? PG : 0;
    uint64_t max_msg = sizes[rnd(h, G_N_ELEMENTS(sizes))];
    if (max_msg && profile == VFIO_USER_SERVER_PROFILE_OWN)
        h->ccfg.caps.max_msg_size = max_msg;

    vfio_user_client_ops client_ops = {.dma_rw = dev_dma_rw};
    for (int i = 0; i < NEP; i++) {
        endpoint_dev *e = &h->eps[i];
        static const uint64_t pgsizes[] = {0, 0, 0, 2 * PG, 4 * PG};
        e->h = h;
        e->idx = i;
        e->id = EP_BASE + (uint32_t)i;
        e->mcfg.isolated = rnd(h, 3) == 0;
        e->mcfg.plan = rnd(h, 6) == 0 ? VFIO_USER_PLAN_QEMU : VFIO_USER_PLAN_COALESCE;
        e->mcfg.dirty_pgsize = pgsizes[rnd(h, G_N_ELEMENTS(pgsizes))];
        /* Real servers log at the negotiated page size only. */
        if (profile != VFIO_USER_SERVER_PROFILE_OWN)
            e->mcfg.dirty_pgsize = 0;
        cr_assert_eq(viommu_endpoint_add(h->v, e->id), 0);
        e->m = vfio_user_mapper_connect(h->path, &h->ccfg, &client_ops, e, h->gm, &e->mcfg, &err);
        cr_assert_not_null(e->m, "mapper: %s", err ? err->message : "");
        mapping_listener l = vfio_user_mapper_listener(e->m);
        cr_assert_eq(viommu_endpoint_set_listener(h->v, e->id, &l), 0);
    }
    model_init(&h->mdl);
    model_init(&h->pred);
    h->pending = g_array_new(FALSE, FALSE, sizeof(pending_write));

    fprintf(stderr,
            "model: %s server, dialect %s, seed %" PRIu64 " (TEST_SEED=%" PRIu64
            " repeats it), %" PRIu64 " operations, max_msg_size %" PRIu64
            ", region limit %u, endpoints:",
            vfio_user_server_profile_name(profile), vfio_user_dialect_name(dialect), seed, seed,
            h->target, (uint64_t)h->ccfg.caps.max_msg_size, h->region_limit);
    for (int i = 0; i < NEP; i++)
        fprintf(stderr, " [%s%s pgsize %" PRIu64 "]", h->eps[i].mcfg.isolated ? "isolated " : "",
                h->eps[i].mcfg.plan == VFIO_USER_PLAN_QEMU ? "qemu" : "coalesce",
                h->eps[i].mcfg.dirty_pgsize);
    fprintf(stderr, "\n");
}

static void harness_teardown(harness *h)
{
    fprintf(stderr,
            "model: seed %" PRIu64 ": %" PRIu64 " operations in %" PRIu64 " steps: %" PRIu64
            " batches (%" PRIu64 " requests), %" PRIu64 " steps with a server fault, %" PRIu64
            " devices checked strictly after a step without one, %" PRIu64 " probes (%" PRIu64
            " reached, %" PRIu64 " refused, %" PRIu64 " lost with a connection), %" PRIu64
            " dirty pages checked, %" PRIu64 " syncs, %" PRIu64 " tracking toggles, %" PRIu64
            " closed connections, %" PRIu64 " server restarts\n",
            h->seed, h->ops, h->steps, h->batches, h->requests, h->faulty_steps, h->strict_checks,
            h->probes, h->probes_hit, h->probes_missed, h->probes_unknown, h->dirty_checked,
            h->syncs, h->toggles, h->closes, h->restarts);
    for (int i = 0; i < NEP; i++)
        vfio_user_mapper_free(h->eps[i].m);
    viommu_free(h->v);
    server_stop(h);
    guest_mem_free(h->gm);
    munmap(h->ram, FD_SIZE);
    close(h->memfd);
    rmdir(h->dir);
    model_clear(&h->mdl);
    model_clear(&h->pred);
    g_array_free(h->pending, TRUE);
}

/* ------------------------------------------------------------------ */
/* Steps and what they are held to                                     */
/* ------------------------------------------------------------------ */

static void snapshot(harness *h)
{
    for (int i = 0; i < NEP; i++) {
        h->snap[i].client = vfio_user_mapper_client(h->eps[i].m);
        vfio_user_mapper_stats_get(h->eps[i].m, &h->snap[i].stats);
    }
}

/* Faults that make a reply larger than it should be: near the limit,
 * the client then rightly refuses it with EMSGSIZE. */
static bool oversize_excused(const harness *h)
{
    return h->sopts.faults.kinds &
           (VFIO_USER_SERVER_FAULT_WRONG_SIZE | VFIO_USER_SERVER_FAULT_OVERSIZED_BITMAP);
}

/* True when some server connection failed or was re-established since
 * the snapshot: the step's requests may then fail, and ranges may be
 * marked dirty whole. A connection that ended must not have ended for a
 * message over a negotiated limit. */
static bool step_faulty(harness *h)
{
    /* Faults the connection survives fail one request: its map fails or
     * its bitmap is refused, with nothing else to show for it. */
    const uint32_t survivable =
        VFIO_USER_SERVER_FAULT_UNEXPECTED_FD | VFIO_USER_SERVER_FAULT_OVERSIZED_BITMAP;
    bool survived = (h->sopts.faults.kinds & survivable) != 0, faulty = survived;
    for (int i = 0; i < NEP; i++) {
        vfio_user_mapper_stats s;
        h->ep_faulty[i] = survived;
        vfio_user_client *c = vfio_user_mapper_client(h->eps[i].m);
        vfio_user_mapper_stats_get(h->eps[i].m, &s);
        if (!vfio_user_client_connected(c)) {
            cr_assert(oversize_excused(h) || vfio_user_client_last_error(c) != -EMSGSIZE,
                      "seed %" PRIu64 ": endpoint %u's connection ended with EMSGSIZE", h->seed,
                      h->eps[i].id);
            STEP_TRACE("  endpoint %u disconnected: %s\n", h->eps[i].id,
                       g_strerror(-vfio_user_client_last_error(c)));
            h->ep_faulty[i] = true;
        }
        if (c != h->snap[i].client || s.reconnects != h->snap[i].stats.reconnects)
            h->ep_faulty[i] = true;
        faulty |= h->ep_faulty[i];
    }
    return faulty;
}

/* Pieces of a mapping as DMA regions: split at guest RAM regions, and in
 * QEMU's plan into power-of-two aligned chunks. */
static uint64_t pow2_pieces(uint64_t iova, uint64_t size)
{
    uint64_t n = 0;
    while (size) {
        uint64_t align = iova ? (iova & -iova) : (1ull << 63);
        uint64_t fit = 1ull << (63 - __builtin_clzll(size));
        uint64_t c = align < fit ? align : fit;
        iova += c;
        size -= c;
        n++;
    }
    return n;
}

static uint64_t expected_regions(const harness *h, int e)
{
    uint32_t d = h->mdl.ep_dom[e];
    if (!d)
        return 0;
    bool qemu = h->eps[e].mcfg.plan == VFIO_USER_PLAN_QEMU;
    guint n;
    const model_map *mm = model_maps(&h->mdl, d, &n);
    uint64_t total = 0;
    for (guint i = 0; i < n; i++) {
        if (mm[i].flags & VIRTIO_IOMMU_MAP_F_MMIO)
            continue;
        uint64_t size = mm[i].last - mm[i].iova + 1;
        uint64_t first = size, split_at = 0;
        if (mm[i].gpa < RAM_SPLIT && mm[i].gpa + size > RAM_SPLIT)
            first = split_at = RAM_SPLIT - mm[i].gpa;
        if (!qemu) {
            total += split_at ? 2 : 1;
        } else {
            total += pow2_pieces(mm[i].iova, first);
            if (split_at)
                total += pow2_pieces(mm[i].iova + first, size - first);
        }
    }
    return total;
}

static bool page_collected(const harness *h, uint64_t gpa)
{
    return bitmap_test(h->collected, gpa / PG);
}

/* Every pending write whose mapping is gone, or that a sync covered, is
 * in the dirty log or was collected from it. */
static void check_dirty(harness *h)
{
    for (guint i = 0; i < h->pending->len;) {
        pending_write *p = &g_array_index(h->pending, pending_write, i);
        if (!p->synced && model_has_id(&h->mdl, p->ep, p->dom, p->map_id)) {
            i++;
            continue;
        }
        for (uint64_t g = p->gpa_first & ~(PG - 1); g <= p->gpa_last; g += PG) {
            cr_assert(guest_mem_dirty_test(h->gm, g) || page_collected(h, g),
                      "seed %" PRIu64 ", step %" PRIu64 ": page 0x%" PRIx64
                      " written by endpoint %u's device while tracking was on is not in the "
                      "dirty log (%s)",
                      h->seed, h->steps, g, h->eps[p->ep].id,
                      p->synced ? "synced" : "its mapping is gone");
            h->dirty_checked++;
        }
        g_array_remove_index_fast(h->pending, i);
    }
}

static void check_step(harness *h)
{
    check_dirty(h);
    for (int i = 0; i < NEP; i++) {
        vfio_user_mapper_stats s;
        vfio_user_mapper_stats_get(h->eps[i].m, &s);
        cr_assert_eq(s.regions_live, expected_regions(h, i),
                     "seed %" PRIu64 ", step %" PRIu64 ": endpoint %u's mapper holds %" PRIu64
                     " DMA regions, its domain maps %" PRIu64,
                     h->seed, h->steps, h->eps[i].id, s.regions_live, expected_regions(h, i));
        if (h->region_limit)
            cr_assert_leq(s.regions_live, h->region_limit);
        if (h->ep_faulty[i])
            continue;
        h->strict_checks++;
        /* Without a server fault, every bitmap fits the negotiated sizes
         * and every map is acknowledged. (A map the server refused for its
         * region limit may be unmapped again in the same batch: the server
         * then has no bitmap for it, and the range is marked whole.) */
        bool refused = s.map_failures != h->snap[i].stats.map_failures;
        if (h->logs && !(h->region_limit && refused))
            cr_assert_eq(s.bitmap_fallbacks, h->snap[i].stats.bitmap_fallbacks,
                         "seed %" PRIu64 ", step %" PRIu64
                         ": endpoint %u marked a range dirty whole without a server fault",
                         h->seed, h->steps, h->eps[i].id);
        if (!h->region_limit)
            cr_assert_eq(s.map_failures, h->snap[i].stats.map_failures,
                         "seed %" PRIu64 ", step %" PRIu64
                         ": endpoint %u failed a map without a server fault",
                         h->seed, h->steps, h->eps[i].id);
    }
}

/* ---- device DMA ----------------------------------------------------- */

/* The sample device of @e writes @len bytes of @fill at @iova. Returns
 * DMA_STATUS (0 or a positive errno), or a negative errno when the
 * connection failed and the outcome is unknown. */
static int device_write(endpoint_dev *e, uint64_t iova, uint32_t len, uint8_t fill)
{
    vfio_user_client *c = vfio_user_mapper_client(e->m);
    if (!vfio_user_client_connected(c)) {
        /* As a VMM does before using a device whose server went away. */
        vfio_user_mapper_reconnect(e->m);
        c = vfio_user_mapper_client(e->m);
    }
    uint8_t regs[20];
    uint64_t addr = htole64(iova);
    uint32_t l = htole32(len), f = htole32(fill), cmd = htole32(VFIO_USER_SAMPLE_CMD_WRITE);
    memcpy(regs + VFIO_USER_SAMPLE_DMA_ADDR, &addr, 8);
    memcpy(regs + VFIO_USER_SAMPLE_DMA_LEN, &l, 4);
    memcpy(regs + VFIO_USER_SAMPLE_DMA_FILL, &f, 4);
    memcpy(regs + VFIO_USER_SAMPLE_DMA_CMD, &cmd, 4);
    int ret = vfio_user_client_region_write(c, 0, 0, regs, sizeof(regs));
    uint32_t status = 0;
    if (!ret)
        ret = vfio_user_client_region_read(c, 0, VFIO_USER_SAMPLE_DMA_STATUS, &status, 4);
    cr_assert(oversize_excused(e->h) ||
                  (ret != -EMSGSIZE && vfio_user_client_last_error(c) != -EMSGSIZE),
              "seed %" PRIu64 ": a message to or from endpoint %u's device exceeded a limit",
              e->h->seed, e->id);
    if (ret < 0)
        return ret;
    return (int)le32toh(status);
}

/* Whether every byte of [iova, iova + len) is mapped writable (and not
 * MMIO) in @e's domain. */
static bool model_writable(const harness *h, int e, uint64_t iova, uint64_t len)
{
    uint64_t a = iova, last = iova + len - 1;
    while (a <= last) {
        const model_map *m = model_lookup(&h->mdl, e, a);
        if (!m || !(m->flags & VIRTIO_IOMMU_MAP_F_WRITE) || (m->flags & VIRTIO_IOMMU_MAP_F_MMIO))
            return false;
        if (m->last >= last)
            return true;
        a = m->last + 1;
    }
    return true;
}

/* Records the pages of [iova, iova + len) as written through their
 * mappings while tracking is on. */
static void record_write(harness *h, int e, uint64_t iova, uint64_t len)
{
    uint64_t a = iova, last = iova + len - 1;
    while (a <= last) {
        const model_map *m = model_lookup(&h->mdl, e, a);
        if (!m)
            return;
        uint64_t b = m->last < last ? m->last : last;
        pending_write p = {
            .ep = e,
            .dom = h->mdl.ep_dom[e],
            .map_id = m->id,
            .gpa_first = m->gpa + (a - m->iova),
            .gpa_last = m->gpa + (b - m->iova),
        };
        g_array_append_val(h->pending, p);
        if (b == last)
            return;
        a = b + 1;
    }
}

static void probe(harness *h, int e, uint64_t iova, uint32_t len)
{
    endpoint_dev *ep = &h->eps[e];
    bool expect = model_writable(h, e, iova, len);
    bool tracking = vfio_user_mapper_tracking(ep->m);
    uint8_t fill = ++h->fill ? h->fill : ++h->fill;
    int st = device_write(ep, iova, len, fill);

    h->probes++;
    h->ops++;
    STEP_TRACE("  probe ep %u iova 0x%" PRIx64 " len %u fill %u tracking %d expect %d -> %d\n",
               ep->id, iova, len, fill, tracking, expect, st);
    if (st < 0) {
        /* The connection failed around the transfer, which may or may not
         * have happened: a write that may have landed must not be lost. */
        h->probes_unknown++;
        /* (An isolated device's writes reach the log directly, and only
         * those that happened.) */
        if (expect && tracking && !ep->mcfg.isolated)
            record_write(h, e, iova, len);
        return;
    }
    cr_assert_eq(st == 0, expect,
                 "seed %" PRIu64 ", step %" PRIu64 ": endpoint %u's device wrote %u bytes at "
                 "IOVA 0x%" PRIx64 " with status %d, but its domain %s it writable",
                 h->seed, h->steps, ep->id, len, iova, st, expect ? "maps" : "does not map");
    if (st != 0) {
        h->probes_missed++;
        return;
    }
    h->probes_hit++;
    const model_map *first = model_lookup(&h->mdl, e, iova);
    const model_map *lastm = model_lookup(&h->mdl, e, iova + len - 1);
    cr_assert_eq(*ram_at(h, first->gpa + (iova - first->iova)), fill,
                 "seed %" PRIu64 ": the device's write at IOVA 0x%" PRIx64
                 " did not land where the mapping points",
                 h->seed, iova);
    cr_assert_eq(*ram_at(h, lastm->gpa + (iova + len - 1 - lastm->iova)), fill);
    if (tracking)
        record_write(h, e, iova, len);
}

/* A random write by a random device: mostly inside a mapping of its
 * domain (sometimes running past it), otherwise anywhere. */
static void random_probe(harness *h)
{
    int e = (int)rnd(h, NEP);
    /* Mostly a device whose domain maps something. */
    for (int t = 0;
         t < NEP && rnd(h, 4) && !(h->mdl.ep_dom[e] && h->mdl.maps[h->mdl.ep_dom[e]]->len); t++)
        e = (e + 1) % NEP;
    uint32_t d = h->mdl.ep_dom[e];
    guint n = 0;
    const model_map *mm = d ? model_maps(&h->mdl, d, &n) : NULL;
    uint64_t iova;
    uint32_t len;
    if (n && rnd(h, 10) < 7) {
        const model_map *m = &mm[rnd(h, n)];
        uint64_t size = m->last - m->iova + 1;
        iova = m->iova + rnd(h, size);
        uint64_t room = m->last - iova + 1;
        len = (uint32_t)(1 + rnd(h, room < 2 * PG ? room : 2 * PG));
        if (rnd(h, 10) == 0)
            len += (uint32_t)PG; /* past the mapping's end */
    } else {
        iova = rnd(h, IOVA_PAGES * PG);
        len = (uint32_t)(1 + rnd(h, PG));
    }
    probe(h, e, iova, len);
}

/* ---- guest requests --------------------------------------------------- */

typedef struct wire_req {
    uint8_t buf[48];
    size_t body_len; /* device-readable bytes; the 4-byte tail follows */
    struct iovec rd, wr;
} wire_req;

static void wire_finish(wire_req *w, const void *req, size_t body_len)
{
    memcpy(w->buf, req, body_len);
    memset(w->buf + body_len, 0xee, 4); /* the device must overwrite the status */
    w->body_len = body_len;
}

static void gen_map(harness *h, wire_req *w, const model *m)
{
    uint32_t d = (uint32_t)(1 + rnd(h, NDOM));
    for (uint32_t t = 0; t < 3 && !m->live[d]; t++)
        d = (uint32_t)(1 + rnd(h, NDOM));
    uint64_t pages = 1 + (rnd(h, 4) ? rnd(h, 4) : rnd(h, 16));
    uint64_t iova = rnd(h, IOVA_PAGES) * PG;
    uint64_t size = pages * PG;
    uint64_t gpa;
    switch (rnd(h, 20)) {
    case 0: /* across the two RAM regions */
        gpa = RAM_SPLIT - (1 + rnd(h, pages)) * PG;
        break;
    case 1: /* past the end of RAM */
        gpa = RAM_END - rnd(h, pages) * PG;
        break;
    default:
        gpa = rnd(h, RAM_PAGES - pages) * PG;
        break;
    }
    static const uint32_t flag_choices[] = {
        VIRTIO_IOMMU_MAP_F_READ | VIRTIO_IOMMU_MAP_F_WRITE,
        VIRTIO_IOMMU_MAP_F_READ | VIRTIO_IOMMU_MAP_F_WRITE,
        VIRTIO_IOMMU_MAP_F_READ | VIRTIO_IOMMU_MAP_F_WRITE,
        VIRTIO_IOMMU_MAP_F_READ | VIRTIO_IOMMU_MAP_F_WRITE,
        VIRTIO_IOMMU_MAP_F_WRITE,
        VIRTIO_IOMMU_MAP_F_READ,
        VIRTIO_IOMMU_MAP_F_READ | VIRTIO_IOMMU_MAP_F_WRITE | VIRTIO_IOMMU_MAP_F_MMIO,
    };
    uint32_t flags = flag_choices[rnd(h, G_N_ELEMENTS(flag_choices))];
    uint64_t end = iova + size - 1;
    if (rnd(h, 50) == 0)
        end -= 0x800; /* unaligned end: S_RANGE */
    struct virtio_iommu_req_map r;
    memset(&r, 0, sizeof(r));
    r.head.type = VIRTIO_IOMMU_T_MAP;
    r.domain = htole32(d);
    r.virt_start = htole64(iova);
    r.virt_end = htole64(end);
    r.phys_start = htole64(gpa);
    r.flags = htole32(flags);
    wire_finish(w, &r, offsetof(struct virtio_iommu_req_map, tail));
}

static void gen_unmap(harness *h, wire_req *w, const model *m)
{
    uint32_t d = (uint32_t)(1 + rnd(h, NDOM));
    for (uint32_t t = 0; t < 3 && !m->live[d]; t++)
        d = (uint32_t)(1 + rnd(h, NDOM));
    guint n;
    const model_map *mm = model_maps(m, d, &n);
    uint64_t s, e;
    unsigned how = (unsigned)rnd(h, 20);
    if (n && how < 11) { /* one mapping, exactly */
        const model_map *x = &mm[rnd(h, n)];
        s = x->iova;
        e = x->last;
    } else if (n && how < 15) { /* from one mapping to the end of another */
        const model_map *x = &mm[rnd(h, n)], *y = &mm[rnd(h, n)];
        s = x->iova < y->iova ? x->iova : y->iova;
        e = x->last > y->last ? x->last : y->last;
    } else if (how < 19) { /* anywhere: nothing, a split (S_RANGE), or some */
        s = rnd(h, IOVA_PAGES) * PG;
        e = s + (1 + rnd(h, 8)) * PG - 1;
    } else {
        s = 0;
        e = UINT64_MAX;
    }
    struct virtio_iommu_req_unmap r;
    memset(&r, 0, sizeof(r));
    r.head.type = VIRTIO_IOMMU_T_UNMAP;
    r.domain = htole32(d);
    r.virt_start = htole64(s);
    r.virt_end = htole64(e);
    wire_finish(w, &r, offsetof(struct virtio_iommu_req_unmap, tail));
}

static void gen_attach(harness *h, wire_req *w, const model *m)
{
    (void)m;
    struct virtio_iommu_req_attach r;
    memset(&r, 0, sizeof(r));
    r.head.type = VIRTIO_IOMMU_T_ATTACH;
    r.domain = htole32((uint32_t)(1 + rnd(h, NDOM)));
    r.endpoint = htole32(EP_BASE + (uint32_t)rnd(h, NEP));
    wire_finish(w, &r, offsetof(struct virtio_iommu_req_attach, tail));
}

static void gen_detach(harness *h, wire_req *w, const model *m)
{
    int e = (int)rnd(h, NEP);
    uint32_t d = m->ep_dom[e] && rnd(h, 5) ? m->ep_dom[e] : (uint32_t)(1 + rnd(h, NDOM));
    struct virtio_iommu_req_detach r;
    memset(&r, 0, sizeof(r));
    r.head.type = VIRTIO_IOMMU_T_DETACH;
    r.domain = htole32(d);
    r.endpoint = htole32(EP_BASE + (uint32_t)e);
    wire_finish(w, &r, offsetof(struct virtio_iommu_req_detach, tail));
}

/* Applies the request in @w to @m and returns the status it predicts. */
static uint8_t model_apply(model *m, const wire_req *w)
{
    switch (w->buf[0]) {
    case VIRTIO_IOMMU_T_MAP: {
        struct virtio_iommu_req_map r;
        memcpy(&r, w->buf, sizeof(r));
        return model_map_req(m, le32toh(r.domain), le64toh(r.virt_start), le64toh(r.virt_end),
                             le64toh(r.phys_start), le32toh(r.flags));
    }
    case VIRTIO_IOMMU_T_UNMAP: {
        struct virtio_iommu_req_unmap r;
        memcpy(&r, w->buf, sizeof(r));
        return model_unmap_req(m, le32toh(r.domain), le64toh(r.virt_start), le64toh(r.virt_end));
    }
    case VIRTIO_IOMMU_T_ATTACH: {
        struct virtio_iommu_req_attach r;
        memcpy(&r, w->buf, sizeof(r));
        return model_attach(m, le32toh(r.domain), (int)(le32toh(r.endpoint) - EP_BASE));
    }
    default: {
        struct virtio_iommu_req_detach r;
        memcpy(&r, w->buf, sizeof(r));
        return model_detach(m, le32toh(r.domain), (int)(le32toh(r.endpoint) - EP_BASE));
    }
    }
}

typedef struct collect_ctx {
    const model *pred;
    model *out;
    uint32_t dom;
} collect_ctx;

/* Takes a mapping of the device into the model, keeping the identity
 * the prediction gave it when the prediction has it too. */
static int adopt_mapping(void *opaque, const viommu_mapping *vm)
{
    collect_ctx *c = opaque;
    guint n;
    const model_map *pm = model_maps(c->pred, c->dom, &n);
    model_map nm = {vm->virt_start, vm->virt_end, vm->phys_start, vm->flags, 0};
    for (guint i = 0; i < n && !nm.id; i++)
        if (pm[i].iova == nm.iova && pm[i].last == nm.last && pm[i].gpa == nm.gpa &&
            pm[i].flags == nm.flags)
            nm.id = pm[i].id;
    if (!nm.id)
        nm.id = c->out->next_id++;
    g_array_append_val(c->out->maps[c->dom], nm);
    return 0;
}

/* A step where a server failed: the device model rolled back what the
 * failure refused, so the model takes the device's state. */
static void adopt_device_state(harness *h)
{
    model *m = &h->mdl;
    m->next_id = h->pred.next_id;
    for (uint32_t d = 1; d <= NDOM; d++) {
        g_array_set_size(m->maps[d], 0);
        m->live[d] = viommu_domain_info(h->v, d, NULL, NULL, NULL) == 0;
        if (!m->live[d])
            continue;
        collect_ctx c = {&h->pred, m, d};
        cr_assert_eq(viommu_domain_foreach_mapping(h->v, d, 0, UINT64_MAX, adopt_mapping, &c), 0);
    }
    for (int e = 0; e < NEP; e++) {
        uint32_t d = 0;
        m->ep_dom[e] = viommu_endpoint_domain(h->v, EP_BASE + (uint32_t)e, &d) == 0 ? d : 0;
    }
}

typedef struct match_ctx {
    const model *m;
    uint32_t dom;
    uint64_t seen;
    bool ok;
} match_ctx;

static int match_mapping(void *opaque, const viommu_mapping *vm)
{
    match_ctx *c = opaque;
    guint n;
    const model_map *mm = model_maps(c->m, c->dom, &n);
    bool found = false;
    for (guint i = 0; i < n && !found; i++)
        found = mm[i].iova == vm->virt_start && mm[i].last == vm->virt_end &&
                mm[i].gpa == vm->phys_start && mm[i].flags == vm->flags;
    c->ok &= found;
    c->seen++;
    return 0;
}

/* The device model holds exactly the model's domains, mappings and attachments. */
static void check_device_state(harness *h)
{
    for (uint32_t d = 1; d <= NDOM; d++) {
        uint64_t count = 0;
        bool live = viommu_domain_info(h->v, d, NULL, &count, NULL) == 0;
        cr_assert_eq(live, h->mdl.live[d], "seed %" PRIu64 ", step %" PRIu64 ": domain %u %s",
                     h->seed, h->steps, d, live ? "exists" : "is gone");
        if (!live)
            continue;
        match_ctx c = {&h->mdl, d, 0, true};
        viommu_domain_foreach_mapping(h->v, d, 0, UINT64_MAX, match_mapping, &c);
        cr_assert(c.ok && c.seen == h->mdl.maps[d]->len,
                  "seed %" PRIu64 ", step %" PRIu64 ": domain %u maps other ranges than the model",
                  h->seed, h->steps, d);
    }
    for (int e = 0; e < NEP; e++) {
        uint32_t d = 0;
        if (viommu_endpoint_domain(h->v, EP_BASE + (uint32_t)e, &d) < 0)
            d = 0;
        cr_assert_eq(d, h->mdl.ep_dom[e], "seed %" PRIu64 ": endpoint %u is in domain %u, not %u",
                     h->seed, EP_BASE + (uint32_t)e, d, h->mdl.ep_dom[e]);
    }
}

static void guest_batch(harness *h)
{
    wire_req w[MAX_BATCH];
    viommu_request reqs[MAX_BATCH];
    uint8_t predicted[MAX_BATCH];
    size_t n = rnd(h, 10) ? 1 + rnd(h, 6) : 1 + rnd(h, MAX_BATCH);

    /* Requests are drawn from the state the earlier ones of the batch
     * leave, so an UNMAP can name a mapping the same batch created. */
    model_copy(&h->pred, &h->mdl);
    for (size_t i = 0; i < n; i++) {
        unsigned k = (unsigned)rnd(h, 100);
        if (k < 45)
            gen_map(h, &w[i], &h->pred);
        else if (k < 80)
            gen_unmap(h, &w[i], &h->pred);
        else if (k < 92)
            gen_attach(h, &w[i], &h->pred);
        else
            gen_detach(h, &w[i], &h->pred);
        predicted[i] = model_apply(&h->pred, &w[i]);
        w[i].rd = (struct iovec){w[i].buf, w[i].body_len};
        w[i].wr = (struct iovec){w[i].buf + w[i].body_len, 4};
        memset(&reqs[i], 0, sizeof(reqs[i]));
        reqs[i].readable = &w[i].rd;
        reqs[i].readable_count = 1;
        reqs[i].writable = &w[i].wr;
        reqs[i].writable_count = 1;
    }
    cr_assert_eq(viommu_process_batch(h->v, reqs, n), 0);
    for (size_t i = 0; i < n && trace_steps; i++) {
        uint32_t a, b;
        uint64_t x, y, z;
        memcpy(&a, w[i].buf + 4, 4);
        memcpy(&b, w[i].buf + 8, 4);
        memcpy(&x, w[i].buf + 8, 8);
        memcpy(&y, w[i].buf + 16, 8);
        memcpy(&z, w[i].buf + 24, 8);
        if (w[i].buf[0] == VIRTIO_IOMMU_T_MAP || w[i].buf[0] == VIRTIO_IOMMU_T_UNMAP)
            STEP_TRACE("  %s dom %u [0x%" PRIx64 ", 0x%" PRIx64 "] gpa 0x%" PRIx64
                       " flags %u -> %d (model %d)\n",
                       viommu_type_name(w[i].buf[0]), le32toh(a), le64toh(x), le64toh(y),
                       w[i].buf[0] == VIRTIO_IOMMU_T_MAP ? le64toh(z) : 0,
                       w[i].buf[0] == VIRTIO_IOMMU_T_MAP ? w[i].buf[32] : 0, reqs[i].status,
                       predicted[i]);
        else
            STEP_TRACE("  %s dom %u ep %u -> %d (model %d)\n", viommu_type_name(w[i].buf[0]),
                       le32toh(a), le32toh(b), reqs[i].status, predicted[i]);
    }
    h->batches++;
    h->requests += n;
    h->ops += n;

    bool faulty = step_faulty(h);
    bool differs = false, nomem = false;
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(reqs[i].used_len, 4);
        cr_assert_eq(w[i].buf[w[i].body_len], (uint8_t)reqs[i].status,
                     "the status is written to the tail");
        differs |= reqs[i].status != predicted[i];
        nomem |= reqs[i].status == VIRTIO_IOMMU_S_NOMEM;
    }
    if (differs) {
        /* Only a failed server, or a server's region limit, turns a
         * request the model accepts into a failure. */
        cr_assert(faulty || (h->region_limit && nomem),
                  "seed %" PRIu64 ", step %" PRIu64
                  ": a request's status differs from the model's without a server fault",
                  h->seed, h->steps);
        adopt_device_state(h);
    } else {
        model_copy(&h->mdl, &h->pred);
    }
    check_device_state(h);
}

/* ---- tracking, syncs, faults ------------------------------------------ */

static void sync_endpoint(harness *h, int e)
{
    vfio_user_mapper *m = h->eps[e].m;
    if (!vfio_user_mapper_tracking(m))
        return;
    cr_assert_eq(vfio_user_mapper_dirty_sync(m), 0);
    h->syncs++;
    STEP_TRACE("  sync ep %u\n", h->eps[e].id);
    for (guint i = 0; i < h->pending->len; i++) {
        pending_write *p = &g_array_index(h->pending, pending_write, i);
        if (p->ep == e)
            p->synced = true;
    }
}

static int collect_page(void *opaque, uint64_t gpa)
{
    harness *h = opaque;
    if (gpa < RAM_END)
        h->collected[gpa / PG / 64] |= 1ull << (gpa / PG % 64);
    return 0;
}

/* One migration iteration: every device synced, the log read and cleared. */
static void migration_iteration(harness *h)
{
    for (int e = 0; e < NEP; e++)
        sync_endpoint(h, e);
    if (rnd(h, 2)) {
        check_dirty(h);
        guest_mem_dirty_collect(h->gm, true, collect_page, h);
        STEP_TRACE("  log collected\n");
    }
}

static void toggle_tracking(harness *h)
{
    h->toggles++;
    STEP_TRACE("  tracking toggled\n");
    for (int e = 0; e < NEP; e++) {
        vfio_user_mapper *m = h->eps[e].m;
        if (!vfio_user_mapper_tracking(m)) {
            /* A fault can hit the start message: a VMM tries again. */
            for (int t = 0; t < 4 && vfio_user_mapper_dirty_start(m) < 0; t++)
                vfio_user_mapper_reconnect(m);
        } else {
            /* The last iteration of a migration: sync, then stop. */
            sync_endpoint(h, e);
            check_dirty(h);
            vfio_user_mapper_dirty_stop(m);
        }
    }
}

static void close_connection(harness *h)
{
    vfio_user_client *c = vfio_user_mapper_client(h->eps[rnd(h, NEP)].m);
    if (vfio_user_client_connected(c)) {
        /* The server sees the end of the stream and drops the device's
         * regions; the client learns of it at its next read or write. */
        shutdown(vfio_user_client_fd(c), SHUT_RDWR);
        h->closes++;
        STEP_TRACE("  connection closed\n");
    }
}

static void restart_server(harness *h)
{
    server_stop(h);
    server_start(h);
    h->restarts++;
    STEP_TRACE("  server restarted, faults 0x%x\n", h->sopts.faults.kinds);
}

static void run_model(vfio_user_server_profile profile, vfio_user_dialect dialect, uint64_t ops)
{
    harness *h = g_new0(harness, 1);
    harness_setup(h, profile, dialect, ops);

    while (h->ops < h->target) {
        snapshot(h);
        h->steps++;
        STEP_TRACE("step %" PRIu64 "\n", h->steps);
        unsigned k = (unsigned)rnd(h, 1000);
        if (k < 600) {
            guest_batch(h);
            /* A write where the batch may have changed something. */
            random_probe(h);
        } else if (k < 950) {
            for (uint64_t i = 1 + rnd(h, 3); i; i--)
                random_probe(h);
        } else if (k < 970) {
            migration_iteration(h);
            h->ops++;
        } else if (k < 985) {
            toggle_tracking(h);
            h->ops++;
        } else if (k < 998) {
            close_connection(h);
            h->ops++;
        } else {
            restart_server(h);
            h->ops++;
        }
        bool faulty = step_faulty(h);
        h->faulty_steps += faulty;
        check_step(h);
        if (h->steps % 64 == 0)
            check_device_state(h);
    }
    /* The end of a migration: the final sync leaves nothing behind. */
    migration_iteration(h);
    for (guint i = 0; i < h->pending->len; i++)
        g_array_index(h->pending, pending_write, i).synced = true;
    check_dirty(h);
    cr_assert_eq(h->pending->len, 0);
    harness_teardown(h);
    g_free(h);
}

/* Operations per dialect of the project's own server; the sanitizer
 * build, several times slower, runs a third (still 100k in all). */
#define OWN_OPS (SANITIZED ? 34000 : 100000)

Test(viommu_vfio_user_model, agrees_with_the_reference_model_in_dialect_2021, .timeout = 600)
{
    run_model(VFIO_USER_SERVER_PROFILE_OWN, VFIO_USER_DIALECT_2021, OWN_OPS);
}

Test(viommu_vfio_user_model, agrees_with_the_reference_model_in_dialect_0_9_1, .timeout = 600)
{
    run_model(VFIO_USER_SERVER_PROFILE_OWN, VFIO_USER_DIALECT_0_9_1, OWN_OPS);
}

Test(viommu_vfio_user_model, agrees_with_the_reference_model_in_dialect_final, .timeout = 600)
{
    run_model(VFIO_USER_SERVER_PROFILE_OWN, VFIO_USER_DIALECT_FINAL, OWN_OPS);
}

/* A seed that once found a listener left holding a mapping: an ATTACH
 * whose replay failed in a faulted step was rolled back while a mapping
 * at the same IOVA had been replaced later in the batch, and the rollback
 * skipped the new mapping's unmap. */
Test(viommu_vfio_user_model, regression_rollback_unmaps_a_mapping_remade_at_a_failed_iova,
     .timeout = 600)
{
    forced_seed = 1794296534252449ull;
    run_model(VFIO_USER_SERVER_PROFILE_OWN, VFIO_USER_DIALECT_0_9_1, 70000);
}

/* One of the profiles of real servers, chosen by the seed: exact-match
 * unmap, 16-region limits, a server without migration, DMA logging with
 * the quirks of libvfio-user. */
Test(viommu_vfio_user_model, agrees_with_the_reference_model_behind_a_real_server_profile,
     .timeout = 600)
{
    static const vfio_user_server_profile profiles[] = {
        VFIO_USER_SERVER_PROFILE_LIBVFIO_USER_2022,
        VFIO_USER_SERVER_PROFILE_QEMU_7_2,
        VFIO_USER_SERVER_PROFILE_LIBVFIO_USER_2026,
    };
    uint64_t pick = test_seed(0x5eed0007u) % G_N_ELEMENTS(profiles);
    vfio_user_server_profile p = profiles[pick];
    run_model(p,
              p == VFIO_USER_SERVER_PROFILE_LIBVFIO_USER_2026 ? VFIO_USER_DIALECT_FINAL
                                                              : VFIO_USER_DIALECT_0_9_1,
              SANITIZED ? 8000 : 20000);
}

/* SPDX-License-Identifier: MIT */
/*
 * The device's full request path against a QEMU-style baseline on the
 * same requests in the same process: MAP+UNMAP request throughput and
 * translate() at a large number of live mappings, and the bytes each
 * live mapping costs. The baseline follows QEMU's virtio-iommu: domains
 * and mappings in GTrees keyed by intervals with an overlap compare,
 * virtio_iommu_map / virtio_iommu_unmap logic, one heap key and one
 * heap value per mapping. The two sides alternate for ROUNDS rounds on
 * the same populated state and each reports its best round. Prints one
 * JSON object per line; "ratio" is baseline / value, so above 1 means
 * the device wins.
 */
#include <endian.h>
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "viommu.h"

#define STRIDE 8192u
#define SIZE 4096u
#define BATCH 64   /* requests per queue notification */
#define PAIRS 4096 /* distinct UNMAP+MAP pairs, cycled */
#define ROUNDS 5

static volatile uint64_t sink;

/* CPU time of this thread: on a shared machine, time spent descheduled
 * would otherwise land on whichever side happened to run then. */
static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Resident memory: what each side really costs, whether its memory comes
 * from malloc or (the device's large mapping stores) from mmap. */
static size_t heap_used(void)
{
    unsigned long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f || fscanf(f, "%lu %lu", &size, &resident) != 2)
        abort();
    fclose(f);
    return resident * (size_t)sysconf(_SC_PAGESIZE);
}

static void emit(const char *name, size_t n, double value, const char *unit, double baseline)
{
    if (baseline >= 1e300) {
        printf("{\"bench\": \"%s/%zu\", \"value\": %.2f, \"unit\": \"%s\"}\n", name, n, value,
               unit);
    } else {
        printf("{\"bench\": \"%s/%zu\", \"value\": %.2f, \"unit\": \"%s\", \"baseline\": %.2f, "
               "\"ratio\": %.2f}\n",
               name, n, value, unit, baseline, baseline / value);
    }
    fflush(stdout);
}

/* ---- the requests both sides run ------------------------------------ */

/* A request as the guest laid it out: readable body, writable tail. */
typedef struct wire_req {
    union {
        struct virtio_iommu_req_head head;
        struct virtio_iommu_req_map map;
        struct virtio_iommu_req_unmap unmap;
        struct virtio_iommu_req_attach attach;
    } u;
    size_t len;
    uint8_t tail[4];
    struct iovec iov[2];
} wire_req;

static void wire_map(wire_req *w, uint32_t domain, uint64_t start)
{
    memset(w, 0, sizeof(*w));
    w->u.map.head.type = VIRTIO_IOMMU_T_MAP;
    w->u.map.domain = htole32(domain);
    w->u.map.virt_start = htole64(start);
    w->u.map.virt_end = htole64(start + SIZE - 1);
    w->u.map.phys_start = htole64(start);
    w->u.map.flags = htole32(VIRTIO_IOMMU_MAP_F_READ | VIRTIO_IOMMU_MAP_F_WRITE);
    w->len = offsetof(struct virtio_iommu_req_map, tail);
}

static void wire_unmap(wire_req *w, uint32_t domain, uint64_t start)
{
    memset(w, 0, sizeof(*w));
    w->u.unmap.head.type = VIRTIO_IOMMU_T_UNMAP;
    w->u.unmap.domain = htole32(domain);
    w->u.unmap.virt_start = htole64(start);
    w->u.unmap.virt_end = htole64(start + SIZE - 1);
    w->len = offsetof(struct virtio_iommu_req_unmap, tail);
}

static void wire_attach(wire_req *w, uint32_t domain, uint32_t ep)
{
    memset(w, 0, sizeof(*w));
    w->u.attach.head.type = VIRTIO_IOMMU_T_ATTACH;
    w->u.attach.domain = htole32(domain);
    w->u.attach.endpoint = htole32(ep);
    w->len = offsetof(struct virtio_iommu_req_attach, tail);
}

static void wire_iov(wire_req *w)
{
    w->iov[0] = (struct iovec){&w->u, w->len};
    w->iov[1] = (struct iovec){w->tail, sizeof(w->tail)};
}

/* ---- the device ------------------------------------------------------ */

static uint64_t events;
static int count_event(void *o, const mapping_event *ev)
{
    (void)o;
    events += ev->iova_last - ev->iova + 1;
    return 0;
}
static const mapping_listener_ops count_ops = {NULL, count_event, count_event, NULL};

static void device_run(viommu *v, wire_req *w, size_t n, viommu_request *reqs)
{
    for (size_t i = 0; i < n; i += BATCH) {
        size_t k = n - i < BATCH ? n - i : BATCH;
        for (size_t j = 0; j < k; j++)
            reqs[j] = (viommu_request){&w[i + j].iov[0], 1, &w[i + j].iov[1], 1, 0, 0, 0};
        viommu_process_batch(v, reqs, k);
        for (size_t j = 0; j < k; j++)
            if (reqs[j].status != VIRTIO_IOMMU_S_OK)
                abort();
    }
}

/* ---- the QEMU-style baseline ----------------------------------------- */

typedef struct q_interval {
    uint64_t low, high;
} q_interval;

typedef struct q_mapping {
    uint64_t phys_addr;
    uint32_t flags;
} q_mapping;

typedef struct q_domain {
    uint32_t id;
    bool bypass;
    GTree *mappings;
    GList *endpoints;
} q_domain;

typedef struct q_endpoint {
    uint32_t id;
    q_domain *domain;
} q_endpoint;

typedef struct q_iommu {
    GTree *domains;
    GTree *endpoints;
} q_iommu;

static gint interval_cmp(gconstpointer a, gconstpointer b, gpointer user)
{
    const q_interval *x = a, *y = b;
    (void)user;
    if (x->high < y->low)
        return -1;
    if (y->high < x->low)
        return 1;
    return 0;
}

static gint int_cmp(gconstpointer a, gconstpointer b, gpointer user)
{
    guint ua = GPOINTER_TO_UINT(a), ub = GPOINTER_TO_UINT(b);
    (void)user;
    return (ua > ub) - (ua < ub);
}

static void q_notify(uint64_t low, uint64_t high)
{
    events += high - low + 1;
}

static uint8_t q_attach(q_iommu *s, const struct virtio_iommu_req_attach *req)
{
    uint32_t domain_id = le32toh(req->domain), ep_id = le32toh(req->endpoint);
    q_endpoint *ep = g_tree_lookup(s->endpoints, GUINT_TO_POINTER(ep_id));
    if (!ep) {
        ep = g_new0(q_endpoint, 1);
        ep->id = ep_id;
        g_tree_insert(s->endpoints, GUINT_TO_POINTER(ep_id), ep);
    }
    q_domain *d = g_tree_lookup(s->domains, GUINT_TO_POINTER(domain_id));
    if (!d) {
        d = g_new0(q_domain, 1);
        d->id = domain_id;
        d->mappings = g_tree_new_full(interval_cmp, NULL, g_free, g_free);
        g_tree_insert(s->domains, GUINT_TO_POINTER(domain_id), d);
    }
    ep->domain = d;
    d->endpoints = g_list_prepend(d->endpoints, ep);
    return VIRTIO_IOMMU_S_OK;
}

/* QEMU's virtio_iommu_map. */
static uint8_t q_map(q_iommu *s, const struct virtio_iommu_req_map *req)
{
    uint32_t domain_id = le32toh(req->domain);
    uint64_t phys_start = le64toh(req->phys_start);
    uint64_t virt_start = le64toh(req->virt_start);
    uint64_t virt_end = le64toh(req->virt_end);
    uint32_t flags = le32toh(req->flags);
    if (flags & ~VIRTIO_IOMMU_MAP_F_MASK)
        return VIRTIO_IOMMU_S_INVAL;
    q_domain *domain = g_tree_lookup(s->domains, GUINT_TO_POINTER(domain_id));
    if (!domain)
        return VIRTIO_IOMMU_S_NOENT;
    if (domain->bypass)
        return VIRTIO_IOMMU_S_INVAL;
    q_interval *interval = g_malloc0(sizeof(*interval));
    interval->low = virt_start;
    interval->high = virt_end;
    if (g_tree_lookup(domain->mappings, interval)) {
        g_free(interval);
        return VIRTIO_IOMMU_S_INVAL;
    }
    q_mapping *mapping = g_malloc0(sizeof(*mapping));
    mapping->phys_addr = phys_start;
    mapping->flags = flags;
    g_tree_insert(domain->mappings, interval, mapping);
    for (GList *l = domain->endpoints; l; l = l->next)
        q_notify(virt_start, virt_end);
    return VIRTIO_IOMMU_S_OK;
}

/* QEMU's virtio_iommu_unmap. */
static uint8_t q_unmap(q_iommu *s, const struct virtio_iommu_req_unmap *req)
{
    uint32_t domain_id = le32toh(req->domain);
    q_interval interval = {le64toh(req->virt_start), le64toh(req->virt_end)};
    q_interval *iter_key;
    q_mapping *iter_val;
    uint8_t ret = VIRTIO_IOMMU_S_OK;
    q_domain *domain = g_tree_lookup(s->domains, GUINT_TO_POINTER(domain_id));
    if (!domain)
        return VIRTIO_IOMMU_S_NOENT;
    if (domain->bypass)
        return VIRTIO_IOMMU_S_INVAL;
    while (g_tree_lookup_extended(domain->mappings, &interval, (void **)&iter_key,
                                  (void **)&iter_val)) {
        uint64_t low = iter_key->low, high = iter_key->high;
        if (interval.low <= low && interval.high >= high) {
            for (GList *l = domain->endpoints; l; l = l->next)
                q_notify(low, high);
            g_tree_remove(domain->mappings, iter_key);
        } else {
            ret = VIRTIO_IOMMU_S_RANGE;
            break;
        }
    }
    return ret;
}

static size_t iov_copy_out(const struct iovec *iov, size_t cnt, void *buf, size_t len)
{
    size_t done = 0;
    for (size_t i = 0; i < cnt && done < len; i++) {
        size_t n = iov[i].iov_len < len - done ? iov[i].iov_len : len - done;
        memcpy((uint8_t *)buf + done, iov[i].iov_base, n);
        done += n;
    }
    return done;
}

/* QEMU's virtio_iommu_handle_command for one element. */
static void q_handle(q_iommu *s, const struct iovec *out, const struct iovec *in)
{
    union {
        struct virtio_iommu_req_head head;
        struct virtio_iommu_req_map map;
        struct virtio_iommu_req_unmap unmap;
        struct virtio_iommu_req_attach attach;
    } req;
    struct virtio_iommu_req_tail tail = {0, {0, 0, 0}};
    if (iov_copy_out(out, 1, &req.head, sizeof(req.head)) != sizeof(req.head)) {
        tail.status = VIRTIO_IOMMU_S_DEVERR;
    } else {
        switch (req.head.type) {
        case VIRTIO_IOMMU_T_ATTACH:
            iov_copy_out(out, 1, &req, offsetof(struct virtio_iommu_req_attach, tail));
            tail.status = q_attach(s, &req.attach);
            break;
        case VIRTIO_IOMMU_T_MAP:
            if (iov_copy_out(out, 1, &req, offsetof(struct virtio_iommu_req_map, tail)) !=
                offsetof(struct virtio_iommu_req_map, tail))
                tail.status = VIRTIO_IOMMU_S_INVAL;
            else
                tail.status = q_map(s, &req.map);
            break;
        case VIRTIO_IOMMU_T_UNMAP:
            if (iov_copy_out(out, 1, &req, offsetof(struct virtio_iommu_req_unmap, tail)) !=
                offsetof(struct virtio_iommu_req_unmap, tail))
                tail.status = VIRTIO_IOMMU_S_INVAL;
            else
                tail.status = q_unmap(s, &req.unmap);
            break;
        default:
            tail.status = VIRTIO_IOMMU_S_UNSUPP;
        }
    }
    memcpy(in->iov_base, &tail, sizeof(tail));
}

static void q_run(q_iommu *s, wire_req *w, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        q_handle(s, &w[i].iov[0], &w[i].iov[1]);
        if (w[i].tail[0] != VIRTIO_IOMMU_S_OK)
            abort();
    }
}

/* QEMU's virtio_iommu_translate lookups. */
static bool q_translate(q_iommu *s, uint32_t ep_id, uint64_t addr, uint64_t *gpa)
{
    q_endpoint *ep = g_tree_lookup(s->endpoints, GUINT_TO_POINTER(ep_id));
    if (!ep || !ep->domain)
        return false;
    q_interval interval = {addr, addr};
    q_interval *key;
    q_mapping *m;
    if (!g_tree_lookup_extended(ep->domain->mappings, &interval, (void **)&key, (void **)&m))
        return false;
    if (!(m->flags & VIRTIO_IOMMU_MAP_F_READ))
        return false;
    *gpa = addr - key->low + m->phys_addr;
    return true;
}

static void q_free_domain(gpointer p)
{
    q_domain *d = p;
    g_tree_destroy(d->mappings);
    g_list_free(d->endpoints);
    g_free(d);
}

/* ---- the run ---------------------------------------------------------- */

static void shuffle(uint64_t *a, size_t n, GRand *rng)
{
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = (size_t)g_rand_int_range(rng, 0, (gint32)(i + 1));
        uint64_t t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

static double min2(double a, double b)
{
    return a < b ? a : b;
}

static void run(size_t n, size_t churn, bool device_only, GRand *rng)
{
    uint64_t *order = malloc(n * sizeof(*order));
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    shuffle(order, n, rng);

    /* The populate requests, and PAIRS UNMAP+MAP pairs on random live
     * slots: each pair restores what it removes, so cycling them keeps
     * n mappings live. */
    wire_req *fill = malloc((n + 1) * sizeof(*fill));
    wire_attach(&fill[0], 1, 1);
    for (size_t i = 0; i < n; i++)
        wire_map(&fill[i + 1], 1, order[i] * STRIDE);
    for (size_t i = 0; i < n + 1; i++)
        wire_iov(&fill[i]);
    wire_req *pairs = malloc(2 * PAIRS * sizeof(*pairs));
    for (size_t i = 0; i < PAIRS; i++) {
        uint64_t slot = (uint64_t)g_rand_int_range(rng, 0, (gint32)n) * STRIDE;
        wire_unmap(&pairs[2 * i], 1, slot);
        wire_map(&pairs[2 * i + 1], 1, slot);
    }
    /* Distinct slots within one cycle, so no pair meets a gap it made. */
    for (size_t i = 0; i < PAIRS; i++) {
        uint64_t slot = order[i % n] * STRIDE;
        wire_unmap(&pairs[2 * i], 1, slot);
        wire_map(&pairs[2 * i + 1], 1, slot);
    }
    for (size_t i = 0; i < 2 * PAIRS; i++)
        wire_iov(&pairs[i]);
    size_t nlook = churn / 4;
    uint64_t *probe = malloc(nlook * sizeof(*probe));
    for (size_t i = 0; i < nlook; i++)
        probe[i] = (uint64_t)g_rand_int_range(rng, 0, (gint32)n) * STRIDE +
                   (uint64_t)g_rand_int_range(rng, 0, SIZE);
    viommu_request reqs[BATCH];

    /* ---- device ---- */
    size_t h0 = heap_used();
    viommu_config cfg;
    viommu_config_init(&cfg);
    viommu *v = viommu_new(&cfg, NULL);
    viommu_set_driver_features(v, viommu_device_features(v));
    viommu_endpoint_add(v, 1);
    mapping_listener l = {&count_ops, NULL};
    viommu_endpoint_set_listener(v, 1, &l);
    device_run(v, fill, n + 1, reqs);
    size_t dev_bytes = heap_used() - h0;

    /* ---- QEMU-style baseline ---- */
    h0 = heap_used();
    q_iommu s = {g_tree_new_full(int_cmp, NULL, NULL, q_free_domain),
                 g_tree_new_full(int_cmp, NULL, NULL, g_free)};
    q_run(&s, fill, n + 1);
    size_t q_bytes = heap_used() - h0;

    /* Both sides alternate, round after round, and each keeps its best
     * round: a machine that is busy for a moment then costs both alike. */
    double dev_req = 1e300, q_req = 1e300, dev_tr = 1e300, q_tr = 1e300;
    uint64_t acc = 0;
    for (int round = 0; round < ROUNDS; round++) {
        double t0 = now_ns();
        for (size_t done = 0; done < churn; done += 2 * PAIRS)
            device_run(v, pairs, 2 * PAIRS, reqs);
        dev_req = min2(dev_req, (now_ns() - t0) / (double)churn);

        if (!device_only) {
            t0 = now_ns();
            for (size_t done = 0; done < churn; done += 2 * PAIRS)
                q_run(&s, pairs, 2 * PAIRS);
            q_req = min2(q_req, (now_ns() - t0) / (double)churn);
        }

        viommu_translation t;
        t0 = now_ns();
        for (size_t i = 0; i < nlook; i++) {
            if (viommu_translate(v, 1, probe[i], VIOMMU_ACCESS_READ, &t) != 0)
                abort();
            acc += t.gpa;
        }
        dev_tr = min2(dev_tr, (now_ns() - t0) / (double)nlook);

        if (!device_only) {
            t0 = now_ns();
            for (size_t i = 0; i < nlook; i++) {
                uint64_t gpa;
                if (!q_translate(&s, 1, probe[i], &gpa))
                    abort();
                acc += gpa;
            }
            q_tr = min2(q_tr, (now_ns() - t0) / (double)nlook);
        }
    }
    sink = acc + events;
    viommu_free(v);
    g_tree_destroy(s.domains);
    g_tree_destroy(s.endpoints);

    emit("viommu.map_unmap_request", n, dev_req, "ns/req", q_req);
    emit("viommu.translate", n, dev_tr, "ns/op", q_tr);
    emit("viommu.bytes_per_mapping", n, (double)dev_bytes / (double)n, "bytes",
         (double)q_bytes / (double)n);
    free(order);
    free(fill);
    free(pairs);
    free(probe);
}

int main(int argc, char **argv)
{
    /* bench_request [--device-only] [LIVE_MAPPINGS]: a number below PAIRS
     * (or any other word) means the quick size, 100k. --device-only skips
     * the baseline (for profiling the device alone). */
    bool device_only = false;
    size_t n = 1000000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--device-only") == 0) {
            device_only = true;
            continue;
        }
        n = strtoul(argv[i], NULL, 0);
        if (n < PAIRS)
            n = 100000;
    }
    GRand *rng = g_rand_new_with_seed(42);
    run(n, 1u << 20, device_only, rng);
    g_rand_free(rng);
    return 0;
}

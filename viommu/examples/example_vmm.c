/* SPDX-License-Identifier: MIT */
/*
 * example_vmm.c - the smallest VMM that embeds the virtio-iommu, end to
 * end, in one process:
 *
 *   - guest RAM is a memfd mapped into the VMM;
 *   - the request and event queues are split virtqueues in that RAM;
 *   - a "driver" writes real requests (PROBE, ATTACH, MAP, UNMAP,
 *     DETACH) into the request ring and kicks; the device model pops
 *     them from guest RAM, runs them and publishes the used ring;
 *   - endpoint 1 is a vfio-user device (the reference server's sample
 *     DMA device, in-process on a temporary socket) that receives its
 *     domain's mappings through the DMA mapper and DMAs into guest RAM;
 *   - endpoint 2 is an emulated device whose every access goes through
 *     viommu_translate(); a refused access becomes a fault report the
 *     driver reads from the event queue;
 *   - the vIOMMU's state is saved and loaded into a second device, as a
 *     live migration would; a second vfio-user connection wired to that
 *     device gets every mapping re-established by the load.
 *
 * It prints what each side does and exits 0 when every step had the
 * expected outcome.
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <glib.h>

#include "vfio-user-server.h"
#include "vfio-user.h"
#include "viommu.h"

/* Guest-physical layout. */
#define RAM_SIZE (64ull << 20)
#define PAGE 4096ull
#define QSIZE 16u
#define REQ_DESC 0x1000ull /* request queue: descriptors, avail, used */
#define REQ_AVAIL 0x1100ull
#define REQ_USED 0x1200ull
#define EVT_DESC 0x2000ull /* event queue */
#define EVT_AVAIL 0x2100ull
#define EVT_USED 0x2200ull
#define REQ_BUFS 0x10000ull /* one 1 KiB slot per request of a kick */
#define EVT_BUFS 0x8000ull  /* the driver's fault report buffers */
#define DMA_BUF 0x200000ull /* where endpoint 1's DMA lands */
#define EMU_BUF 0x300000ull /* what endpoint 2 reads */

#define EP_VFIO 1u
#define EP_EMU 2u
#define MSI_START 0x8000000ull
#define MSI_END 0x80fffffull

typedef struct vmm {
    int memfd;
    uint8_t *ram;
    guest_mem *gm;
    viommu *dev;
    viommu_vq *reqq;
    viommu_vq *evtq;
    bool evt_irq;
    /* the vfio-user side */
    char sockdir[64];
    char sockpath[96];
    vfio_user_server *srv;
    GThread *srv_thread;
    vfio_user_mapper *mapper;
    int failures;
} vmm;

static void say(const char *who, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static void say(const char *who, const char *fmt, ...)
{
    va_list ap;
    printf("%-7s ", who);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

static void expect(vmm *m, bool ok, const char *what)
{
    if (!ok) {
        say("FAILED", "%s", what);
        m->failures++;
    }
}

/* ---- guest memory as the device model sees it ---------------------- */

static void *ram_map(void *opaque, uint64_t gpa, uint64_t len, bool write)
{
    vmm *m = opaque;
    (void)write;
    if (gpa >= RAM_SIZE || len > RAM_SIZE - gpa)
        return NULL;
    return m->ram + gpa;
}

static void gput16(vmm *m, uint64_t gpa, uint16_t v)
{
    v = htole16(v);
    memcpy(m->ram + gpa, &v, 2);
}

static uint16_t gget16(vmm *m, uint64_t gpa)
{
    uint16_t v;
    memcpy(&v, m->ram + gpa, 2);
    return le16toh(v);
}

static uint32_t gget32(vmm *m, uint64_t gpa)
{
    uint32_t v;
    memcpy(&v, m->ram + gpa, 4);
    return le32toh(v);
}

/* ---- the driver side of a split virtqueue -------------------------- */

typedef struct drv_queue {
    uint64_t desc, avail, used;
    uint16_t avail_idx; /* next avail index the driver publishes */
    uint16_t used_seen; /* used entries the driver has consumed */
} drv_queue;

static drv_queue req_ring = {REQ_DESC, REQ_AVAIL, REQ_USED, 0, 0};
static drv_queue evt_ring = {EVT_DESC, EVT_AVAIL, EVT_USED, 0, 0};

static void drv_desc(vmm *m, const drv_queue *q, uint16_t i, uint64_t addr, uint32_t len,
                     uint16_t flags, uint16_t next)
{
    uint8_t d[16];
    uint64_t a = htole64(addr);
    uint32_t l = htole32(len);
    uint16_t f = htole16(flags), n = htole16(next);
    memcpy(d, &a, 8);
    memcpy(d + 8, &l, 4);
    memcpy(d + 12, &f, 2);
    memcpy(d + 14, &n, 2);
    memcpy(m->ram + q->desc + 16ull * i, d, 16);
}

static void drv_publish(vmm *m, drv_queue *q, uint16_t head)
{
    gput16(m, q->avail + 4 + 2ull * (q->avail_idx % QSIZE), head);
    q->avail_idx++;
    /* The index goes last: the device must see the ring entry first. */
    __atomic_thread_fence(__ATOMIC_RELEASE);
    gput16(m, q->avail + 2, q->avail_idx);
}

/* One request of a kick: its body (device-readable) and how many bytes
 * the device may write back (tail, or PROBE properties + tail). */
typedef struct drv_req {
    const char *what;
    uint8_t body[128];
    uint32_t body_len;
    uint32_t wlen;
    uint8_t status; /* read back after the kick */
} drv_req;

#define VRING_DESC_F_NEXT 1
#define VRING_DESC_F_WRITE 2

/* Writes @n requests into the request ring (two descriptors each:
 * readable body, writable tail) and kicks once: one notification, one
 * batch for the listeners. */
static void drv_kick(vmm *m, drv_req *reqs, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        uint64_t slot = REQ_BUFS + 0x400ull * i;
        memcpy(m->ram + slot, reqs[i].body, reqs[i].body_len);
        memset(m->ram + slot + 0x100, 0xff, reqs[i].wlen);
        uint16_t d = (uint16_t)(2 * i);
        drv_desc(m, &req_ring, d, slot, reqs[i].body_len, VRING_DESC_F_NEXT, (uint16_t)(d + 1));
        drv_desc(m, &req_ring, (uint16_t)(d + 1), slot + 0x100, reqs[i].wlen, VRING_DESC_F_WRITE,
                 0);
        drv_publish(m, &req_ring, d);
    }
    say("driver", "kick: %u request%s on the request queue", n, n == 1 ? "" : "s");
    bool irq = false;
    int done = viommu_vq_process_requests(m->dev, m->reqq, &irq);
    say("device", "popped and completed %d chain%s from guest RAM%s", done, done == 1 ? "" : "s",
        irq ? ", interrupt raised" : "");
    expect(m, done == (int)n, "every request completed");
    /* The driver reads the used ring and each request's tail. */
    for (unsigned i = 0; i < n; i++) {
        uint16_t u = req_ring.used_seen++;
        uint64_t e = req_ring.used + 4 + 8ull * (u % QSIZE);
        uint32_t id = gget32(m, e), len = gget32(m, e + 4);
        uint64_t slot = REQ_BUFS + 0x400ull * (id / 2);
        reqs[i].status = m->ram[slot + 0x100 + len - 4];
        say("driver", "  %-44s -> %s (used length %" PRIu32 ")", reqs[i].what,
            viommu_status_name(reqs[i].status), len);
    }
}

static drv_req req_attach(uint32_t domain, uint32_t ep)
{
    drv_req r = {.body_len = offsetof(struct virtio_iommu_req_attach, tail), .wlen = 4};
    struct virtio_iommu_req_attach a;
    memset(&a, 0, sizeof(a));
    a.head.type = VIRTIO_IOMMU_T_ATTACH;
    a.domain = htole32(domain);
    a.endpoint = htole32(ep);
    memcpy(r.body, &a, r.body_len);
    return r;
}

static drv_req req_detach(uint32_t domain, uint32_t ep)
{
    drv_req r = {.body_len = offsetof(struct virtio_iommu_req_detach, tail), .wlen = 4};
    struct virtio_iommu_req_detach d;
    memset(&d, 0, sizeof(d));
    d.head.type = VIRTIO_IOMMU_T_DETACH;
    d.domain = htole32(domain);
    d.endpoint = htole32(ep);
    memcpy(r.body, &d, r.body_len);
    return r;
}

static drv_req req_map(uint32_t domain, uint64_t iova, uint64_t size, uint64_t gpa, uint32_t flags)
{
    drv_req r = {.body_len = offsetof(struct virtio_iommu_req_map, tail), .wlen = 4};
    struct virtio_iommu_req_map mp;
    memset(&mp, 0, sizeof(mp));
    mp.head.type = VIRTIO_IOMMU_T_MAP;
    mp.domain = htole32(domain);
    mp.virt_start = htole64(iova);
    mp.virt_end = htole64(iova + size - 1);
    mp.phys_start = htole64(gpa);
    mp.flags = htole32(flags);
    memcpy(r.body, &mp, r.body_len);
    return r;
}

static drv_req req_unmap(uint32_t domain, uint64_t iova, uint64_t size)
{
    drv_req r = {.body_len = offsetof(struct virtio_iommu_req_unmap, tail), .wlen = 4};
    struct virtio_iommu_req_unmap u;
    memset(&u, 0, sizeof(u));
    u.head.type = VIRTIO_IOMMU_T_UNMAP;
    u.domain = htole32(domain);
    u.virt_start = htole64(iova);
    u.virt_end = htole64(iova + size - 1);
    memcpy(r.body, &u, r.body_len);
    return r;
}

static drv_req req_probe(uint32_t ep, uint32_t probe_size)
{
    drv_req r = {.body_len = sizeof(struct virtio_iommu_req_probe), .wlen = probe_size + 4};
    struct virtio_iommu_req_probe p;
    memset(&p, 0, sizeof(p));
    p.head.type = VIRTIO_IOMMU_T_PROBE;
    p.endpoint = htole32(ep);
    memcpy(r.body, &p, r.body_len);
    return r;
}

/* The driver makes @n fault-report buffers available on the event queue. */
static void drv_post_event_buffers(vmm *m, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        uint16_t d = (uint16_t)i;
        drv_desc(m, &evt_ring, d, EVT_BUFS + 0x40ull * i, sizeof(struct virtio_iommu_fault),
                 VRING_DESC_F_WRITE, 0);
        drv_publish(m, &evt_ring, d);
    }
    say("driver", "posted %u fault report buffers on the event queue", n);
}

static void on_event_irq(void *opaque)
{
    ((vmm *)opaque)->evt_irq = true;
}

/* ---- the vfio-user device behind endpoint 1 ------------------------- */

static gpointer server_thread(gpointer srv)
{
    vfio_user_server_run(srv);
    return NULL;
}

/* DMA_READ / DMA_WRITE from the device (used for regions mapped without
 * an fd): translated by the vIOMMU for the device's endpoint. */
static int device_dma(void *opaque, uint64_t iova, void *buf, uint64_t len, bool write)
{
    vmm *m = opaque;
    viommu_translation t;
    if (viommu_translate(m->dev, EP_VFIO, iova, write ? VIOMMU_ACCESS_WRITE : VIOMMU_ACCESS_READ,
                         &t) < 0 ||
        t.iova_last - iova < len - 1)
        return -EFAULT;
    return guest_mem_rw(m->gm, t.gpa, buf, len, write);
}

static int start_vfio_user_device(vmm *m)
{
    GError *err = NULL;
    snprintf(m->sockdir, sizeof(m->sockdir), "%s", "/tmp/example-vmm-XXXXXX");
    if (!g_mkdtemp(m->sockdir))
        return -errno;
    snprintf(m->sockpath, sizeof(m->sockpath), "%s/sample.sock", m->sockdir);
    vfio_user_server_options opts;
    vfio_user_server_options_init(&opts);
    m->srv = vfio_user_server_new(m->sockpath, &opts, &err);
    if (!m->srv) {
        say("vmm", "vfio-user server: %s", err->message);
        g_error_free(err);
        return -EIO;
    }
    m->srv_thread = g_thread_new("vfio-user-server", server_thread, m->srv);
    say("vmm", "vfio-user reference server (sample DMA device) listening on %s", m->sockpath);

    vfio_user_client_config ccfg;
    vfio_user_client_config_init(&ccfg, VFIO_USER_DIALECT_2021);
    vfio_user_client_ops ops = {.dma_rw = device_dma};
    vfio_user_mapper_config mcfg = {.plan = VFIO_USER_PLAN_COALESCE};
    m->mapper = vfio_user_mapper_connect(m->sockpath, &ccfg, &ops, m, m->gm, &mcfg, &err);
    if (!m->mapper) {
        say("vmm", "vfio-user connect: %s", err->message);
        g_error_free(err);
        return -EIO;
    }
    mapping_listener l = vfio_user_mapper_listener(m->mapper);
    int rc = viommu_endpoint_set_listener(m->dev, EP_VFIO, &l);
    say("vmm",
        "endpoint %u: vfio-user device connected (dialect 2021); its DMA mapper is the "
        "endpoint's mapping listener",
        EP_VFIO);
    return rc;
}

static void mapper_report(vfio_user_mapper *mapper, const char *when)
{
    vfio_user_mapper_stats st;
    vfio_user_mapper_stats_get(mapper, &st);
    say("vfio",
        "%s: %" PRIu64 " DMA message%s sent so far, %" PRIu64 " region%s live on the "
        "device",
        when, st.messages, st.messages == 1 ? "" : "s", st.regions_live,
        st.regions_live == 1 ? "" : "s");
}

/* Asks the sample device to DMA-write @len bytes of @fill at @iova and
 * returns its DMA_STATUS (0: done). */
static uint32_t device_dma_write(vfio_user_mapper *mapper, uint64_t iova, uint32_t len,
                                 uint8_t fill)
{
    vfio_user_client *c = vfio_user_mapper_client(mapper);
    uint8_t regs[20];
    uint64_t a = htole64(iova);
    uint32_t l = htole32(len), f = htole32(fill), cmd = htole32(VFIO_USER_SAMPLE_CMD_WRITE);
    memcpy(regs + VFIO_USER_SAMPLE_DMA_ADDR, &a, 8);
    memcpy(regs + VFIO_USER_SAMPLE_DMA_LEN, &l, 4);
    memcpy(regs + VFIO_USER_SAMPLE_DMA_FILL, &f, 4);
    memcpy(regs + VFIO_USER_SAMPLE_DMA_CMD, &cmd, 4);
    uint32_t status = UINT32_MAX;
    if (vfio_user_client_region_write(c, 0, 0, regs, sizeof(regs)) == 0 &&
        vfio_user_client_region_read(c, 0, VFIO_USER_SAMPLE_DMA_STATUS, &status, 4) == 0)
        status = le32toh(status);
    say("vfio",
        "sample device: DMA write of %" PRIu32 " bytes of 0x%02x at IOVA 0x%" PRIx64
        " -> DMA_STATUS %" PRIu32 " (%s)",
        len, fill, iova, status, status == 0 ? "done" : g_strerror((int)status));
    return status;
}

/* ---- the emulated device behind endpoint 2 -------------------------- */

/* Reads @len bytes the device sees at @iova, as an emulated device's DMA
 * does: translate, then access guest RAM. */
static int emulated_dma(vmm *m, uint64_t iova, void *buf, uint64_t len, bool write)
{
    viommu_translation t;
    int rc = viommu_translate(m->dev, EP_EMU, iova,
                              write ? VIOMMU_ACCESS_WRITE : VIOMMU_ACCESS_READ, &t);
    if (rc < 0) {
        say("emu", "%s of IOVA 0x%" PRIx64 " refused by the vIOMMU (%s)", write ? "write" : "read",
            iova, g_strerror(-rc));
        return rc;
    }
    say("emu",
        "%s of IOVA 0x%" PRIx64 " -> GPA 0x%" PRIx64 " (same translation up to IOVA "
        "0x%" PRIx64 ")",
        write ? "write" : "read", iova, t.gpa, t.iova_last);
    return guest_mem_rw(m->gm, t.gpa, buf, len, write);
}

/* The driver reads the fault reports the device pushed on the event queue. */
static unsigned drv_read_faults(vmm *m)
{
    unsigned n = 0;
    while (evt_ring.used_seen != gget16(m, evt_ring.used + 2)) {
        uint16_t u = evt_ring.used_seen++;
        uint64_t e = evt_ring.used + 4 + 8ull * (u % QSIZE);
        uint32_t id = gget32(m, e);
        struct virtio_iommu_fault f;
        memcpy(&f, m->ram + EVT_BUFS + 0x40ull * id, sizeof(f));
        say("driver",
            "fault report: endpoint %" PRIu32 ", reason %s, flags 0x%" PRIx32
            ", address 0x%" PRIx64,
            le32toh(f.endpoint),
            f.reason == VIRTIO_IOMMU_FAULT_R_MAPPING  ? "MAPPING"
            : f.reason == VIRTIO_IOMMU_FAULT_R_DOMAIN ? "DOMAIN"
                                                      : "UNKNOWN",
            le32toh(f.flags), le64toh(f.address));
        n++;
    }
    return n;
}

/* ---- setup and teardown -------------------------------------------- */

static int vmm_init(vmm *m)
{
    GError *err = NULL;
    memset(m, 0, sizeof(*m));
    m->memfd = memfd_create("example-vmm-ram", MFD_CLOEXEC);
    if (m->memfd < 0 || ftruncate(m->memfd, (off_t)RAM_SIZE) < 0)
        return -errno;
    void *p = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, m->memfd, 0);
    if (p == MAP_FAILED)
        return -errno;
    m->ram = p;
    m->gm = guest_mem_new(PAGE);
    if (!m->gm || guest_mem_add(m->gm, 0, RAM_SIZE, m->memfd, 0, m->ram) < 0)
        return -ENOMEM;
    say("vmm", "guest RAM: %llu MiB in a memfd at GPA 0x0", RAM_SIZE >> 20);

    viommu_config cfg;
    viommu_config_init(&cfg);
    m->dev = viommu_new(&cfg, &err);
    if (!m->dev) {
        say("vmm", "viommu: %s", err->message);
        g_error_free(err);
        return -EINVAL;
    }
    viommu_endpoint_add(m->dev, EP_VFIO);
    viommu_endpoint_add(m->dev, EP_EMU);
    viommu_endpoint_add_resv(m->dev, EP_VFIO, MSI_START, MSI_END, VIRTIO_IOMMU_RESV_MEM_T_MSI);
    viommu_endpoint_add_resv(m->dev, EP_EMU, MSI_START, MSI_END, VIRTIO_IOMMU_RESV_MEM_T_MSI);
    say("vmm",
        "virtio-iommu: endpoints %u and %u, each with an MSI doorbell at "
        "[0x%llx, 0x%llx]",
        EP_VFIO, EP_EMU, MSI_START, MSI_END);

    viommu_vq_config q = {QSIZE, REQ_DESC, REQ_AVAIL, REQ_USED, {ram_map, m}};
    int rc = viommu_vq_new(&q, &m->reqq);
    if (rc < 0)
        return rc;
    q = (viommu_vq_config){QSIZE, EVT_DESC, EVT_AVAIL, EVT_USED, {ram_map, m}};
    rc = viommu_vq_new(&q, &m->evtq);
    if (rc < 0)
        return rc;
    viommu_vq_set_event_queue(m->dev, m->evtq, on_event_irq, m);
    say("vmm", "request queue at GPA 0x%llx, event queue at GPA 0x%llx (split, %u entries)",
        REQ_DESC, EVT_DESC, QSIZE);
    return start_vfio_user_device(m);
}

static void vmm_fini(vmm *m)
{
    vfio_user_mapper_free(m->mapper);
    if (m->srv) {
        vfio_user_server_stop(m->srv);
        g_thread_join(m->srv_thread);
        vfio_user_server_free(m->srv);
    }
    if (m->sockdir[0])
        rmdir(m->sockdir);
    viommu_free(m->dev);
    viommu_vq_free(m->reqq);
    viommu_vq_free(m->evtq);
    guest_mem_free(m->gm);
    if (m->ram)
        munmap(m->ram, RAM_SIZE);
    if (m->memfd > 0)
        close(m->memfd);
}

/* ---- the walkthrough ------------------------------------------------ */

static void negotiate(vmm *m)
{
    uint64_t offered = viommu_device_features(m->dev);
    expect(m, viommu_set_driver_features(m->dev, offered) == 0, "feature negotiation");
    struct virtio_iommu_config c;
    viommu_config_read(m->dev, 0, &c, sizeof(c));
    say("driver",
        "features 0x%" PRIx64 " accepted; config: page_size_mask 0x%" PRIx64 ", probe_size %" PRIu32
        ", bypass %u",
        offered, le64toh(c.page_size_mask), le32toh(c.probe_size), c.bypass);
    /* Nothing reaches RAM untranslated from here on. */
    uint8_t off = 0;
    viommu_config_write(m->dev, offsetof(struct virtio_iommu_config, bypass), &off, 1);
    say("driver", "config.bypass <- 0");
}

static void probe(vmm *m)
{
    uint32_t psize;
    viommu_config_read(m->dev, offsetof(struct virtio_iommu_config, probe_size), &psize, 4);
    psize = le32toh(psize);
    drv_req r = req_probe(EP_VFIO, psize);
    r.what = "PROBE endpoint 1";
    drv_kick(m, &r, 1);
    expect(m, r.status == VIRTIO_IOMMU_S_OK, "PROBE answers OK");
    struct virtio_iommu_probe_resv_mem prop;
    memcpy(&prop, m->ram + REQ_BUFS + 0x100, sizeof(prop));
    say("driver", "  property: type %u (RESV_MEM), subtype %s, [0x%" PRIx64 ", 0x%" PRIx64 "]",
        le16toh(prop.head.type), prop.subtype == VIRTIO_IOMMU_RESV_MEM_T_MSI ? "MSI" : "RESERVED",
        le64toh(prop.start), le64toh(prop.end));
    expect(m, le64toh(prop.start) == MSI_START && le64toh(prop.end) == MSI_END,
           "PROBE reports the MSI region");
}

static int run(vmm *m)
{
    negotiate(m);
    probe(m);

    drv_req att[] = {req_attach(1, EP_VFIO), req_attach(2, EP_EMU)};
    att[0].what = "ATTACH endpoint 1 to domain 1";
    att[1].what = "ATTACH endpoint 2 to domain 2";
    drv_kick(m, att, 2);
    expect(m, att[0].status == VIRTIO_IOMMU_S_OK && att[1].status == VIRTIO_IOMMU_S_OK,
           "ATTACH answers OK");

    /* Four maps in one kick: the mapper sends them as one DMA_MAP table. */
    drv_req maps[] = {
        req_map(1, 0x10000000, 0x4000, DMA_BUF, VIRTIO_IOMMU_MAP_F_READ | VIRTIO_IOMMU_MAP_F_WRITE),
        req_map(1, 0x10004000, 0x4000, DMA_BUF + 0x10000,
                VIRTIO_IOMMU_MAP_F_READ | VIRTIO_IOMMU_MAP_F_WRITE),
        req_map(1, 0x20000000, 0x1000, DMA_BUF + 0x20000, VIRTIO_IOMMU_MAP_F_READ),
        req_map(2, 0x0, 0x2000, EMU_BUF, VIRTIO_IOMMU_MAP_F_READ),
    };
    maps[0].what = "MAP domain 1 IOVA 0x10000000+16K -> 0x200000";
    maps[1].what = "MAP domain 1 IOVA 0x10004000+16K -> 0x210000";
    maps[2].what = "MAP domain 1 IOVA 0x20000000+4K -> 0x220000 (R)";
    maps[3].what = "MAP domain 2 IOVA 0x0+8K -> 0x300000 (R)";
    drv_kick(m, maps, 4);
    for (unsigned i = 0; i < 4; i++)
        expect(m, maps[i].status == VIRTIO_IOMMU_S_OK, "MAP answers OK");
    mapper_report(m->mapper, "after the MAP kick");

    drv_req bad = req_map(1, MSI_START, 0x1000, DMA_BUF, VIRTIO_IOMMU_MAP_F_WRITE);
    bad.what = "MAP domain 1 over the MSI doorbell";
    drv_kick(m, &bad, 1);
    expect(m, bad.status == VIRTIO_IOMMU_S_RANGE, "MAP over a reserved region answers RANGE");

    /* The vfio-user device writes guest RAM through its IOVAs. */
    expect(m, device_dma_write(m->mapper, 0x10003000, 0x2000, 0xab) == 0,
           "device DMA write succeeds");
    bool filled = m->ram[DMA_BUF + 0x3000] == 0xab && m->ram[DMA_BUF + 0x3fff] == 0xab &&
                  m->ram[DMA_BUF + 0x10000] == 0xab && m->ram[DMA_BUF + 0x10fff] == 0xab &&
                  m->ram[DMA_BUF + 0x11000] == 0;
    say("vmm",
        "guest RAM at GPA 0x203000..0x203fff and 0x210000..0x210fff now holds 0x%02x "
        "(the two mappings the IOVA range spans)",
        m->ram[DMA_BUF + 0x3000]);
    expect(m, filled, "the DMA landed where the mappings say");

    /* The emulated device reads through translate(). */
    memcpy(m->ram + EMU_BUF + 0x80, "hello from guest RAM", 21);
    char text[21] = {0};
    expect(m, emulated_dma(m, 0x80, text, sizeof(text), false) == 0, "emulated read translates");
    say("emu", "read \"%s\"", text);
    expect(m, strcmp(text, "hello from guest RAM") == 0, "emulated read sees guest RAM");

    /* A write to a read-only mapping faults; the driver sees the report. */
    drv_post_event_buffers(m, 4);
    uint8_t junk = 1;
    expect(m, emulated_dma(m, 0x100, &junk, 1, true) == -EFAULT, "write to read-only faults");
    expect(m, emulated_dma(m, 0x5000, &junk, 1, false) == -EFAULT, "unmapped read faults");
    say("device", "event queue interrupt %s", m->evt_irq ? "raised" : "not raised");
    expect(m, drv_read_faults(m) == 2, "two fault reports on the event queue");

    /* Migration of the vIOMMU itself. The destination device is created
     * with the same configuration and declares the same endpoints; a
     * second connection to the vfio-user server (a fresh device instance
     * there) is wired to endpoint 1 before the state is loaded. */
    size_t len = 0;
    viommu_save(m->dev, NULL, 0, &len);
    g_autofree uint8_t *state = g_malloc(len);
    expect(m, viommu_save(m->dev, state, len, &len) == 0, "save");
    viommu_config cfg;
    viommu_get_config(m->dev, &cfg);
    viommu *dst = viommu_new(&cfg, NULL);
    viommu_endpoint_add(dst, EP_VFIO);
    viommu_endpoint_add(dst, EP_EMU);
    vfio_user_client_config ccfg;
    vfio_user_client_config_init(&ccfg, VFIO_USER_DIALECT_2021);
    vfio_user_mapper_config mcfg = {.plan = VFIO_USER_PLAN_COALESCE};
    GError *err = NULL;
    vfio_user_mapper *m2 =
        vfio_user_mapper_connect(m->sockpath, &ccfg, NULL, NULL, m->gm, &mcfg, &err);
    expect(m, m2 != NULL, "second vfio-user connection");
    if (!m2) {
        say("vmm", "vfio-user connect: %s", err->message);
        g_clear_error(&err);
        viommu_free(dst);
        return -1;
    }
    mapping_listener l2 = vfio_user_mapper_listener(m2);
    viommu_endpoint_set_listener(dst, EP_VFIO, &l2);
    int rc = viommu_load(dst, state, len, &err);
    say("vmm", "state saved: %zu bytes; loaded into a second device: %s", len,
        rc == 0 ? "OK" : err->message);
    g_clear_error(&err);
    vfio_user_mapper_stats st2;
    vfio_user_mapper_stats_get(m2, &st2);
    say("vfio",
        "the second device instance got its mappings back: %" PRIu64 " regions live after %" PRIu64
        " DMA message%s",
        st2.regions_live, st2.messages, st2.messages == 1 ? "" : "s");
    expect(m, st2.regions_live == 3, "the load re-established every mapping of domain 1");
    viommu_translation t = {0};
    expect(m,
           rc == 0 && viommu_translate(dst, EP_VFIO, 0x10004010, VIOMMU_ACCESS_WRITE, &t) == 0 &&
               t.gpa == DMA_BUF + 0x10010,
           "the loaded device translates the same");
    say("vmm", "second device: endpoint 1 IOVA 0x10004010 -> GPA 0x%" PRIx64, t.gpa);
    expect(m,
           device_dma_write(m2, 0x10004000, 0x100, 0x5a) == 0 &&
               m->ram[DMA_BUF + 0x10000] == 0x5a && m->ram[DMA_BUF + 0x100ff] == 0x5a,
           "the second device instance DMAs through the re-established mapping");
    viommu_free(dst);
    vfio_user_mapper_free(m2);

    /* UNMAP: once it completes, the device can no longer reach the range. */
    drv_req un = req_unmap(1, 0x10000000, 0x8000);
    un.what = "UNMAP domain 1 IOVA 0x10000000+32K";
    drv_kick(m, &un, 1);
    expect(m, un.status == VIRTIO_IOMMU_S_OK, "UNMAP answers OK");
    mapper_report(m->mapper, "after the UNMAP kick");
    expect(m, device_dma_write(m->mapper, 0x10003000, 0x1000, 0xcd) != 0, "DMA after UNMAP fails");
    expect(m, m->ram[DMA_BUF + 0x3000] == 0xab, "guest RAM untouched by the refused DMA");

    drv_req det[] = {req_detach(1, EP_VFIO), req_detach(2, EP_EMU)};
    det[0].what = "DETACH endpoint 1 from domain 1";
    det[1].what = "DETACH endpoint 2 from domain 2";
    drv_kick(m, det, 2);
    expect(m, det[0].status == VIRTIO_IOMMU_S_OK && det[1].status == VIRTIO_IOMMU_S_OK,
           "DETACH answers OK");
    mapper_report(m->mapper, "after the DETACH kick");
    vfio_user_mapper_stats st;
    vfio_user_mapper_stats_get(m->mapper, &st);
    expect(m, st.regions_live == 0, "the device holds no region after DETACH");
    return 0;
}

int main(void)
{
    vmm m;
    int rc = vmm_init(&m);
    if (rc < 0) {
        say("vmm", "setup failed: %s", g_strerror(-rc));
        vmm_fini(&m);
        return 1;
    }
    run(&m);
    vmm_fini(&m);
    if (m.failures) {
        say("vmm", "%d step%s did not go as expected", m.failures, m.failures == 1 ? "" : "s");
        return 1;
    }
    say("vmm", "every step went as expected");
    return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * virtqueue.c - the device side of a split virtqueue in guest memory:
 * walks descriptor chains (direct and indirect) with every index,
 * length and address checked, runs one notification's requests as one
 * batch and publishes the used ring; also feeds fault reports into the
 * event queue.
 */
#include <string.h>

#include "viommu_internal.h"

#define VRING_DESC_F_NEXT 1
#define VRING_DESC_F_WRITE 2
#define VRING_DESC_F_INDIRECT 4
#define VRING_AVAIL_F_NO_INTERRUPT 1

struct vring_desc {
    viommu_le64 addr;
    viommu_le32 len;
    viommu_le16 flags;
    viommu_le16 next;
};
_Static_assert(sizeof(struct vring_desc) == 16, "vring_desc size");

struct vring_used_elem {
    viommu_le32 id;
    viommu_le32 len;
};
_Static_assert(sizeof(struct vring_used_elem) == 8, "vring_used_elem size");

/* Offsets inside the avail and used rings. */
#define AVAIL_FLAGS 0
#define AVAIL_IDX 2
#define AVAIL_RING 4
#define USED_IDX 2
#define USED_RING 4

typedef struct vq_chain {
    uint16_t head;
    size_t off; /* first iovec in the scratch array */
    size_t nr;  /* readable iovecs */
    size_t nw;  /* writable iovecs */
} vq_chain;

struct viommu_vq {
    viommu_vq_config cfg;
    uint16_t last_avail;
    uint16_t used_idx;
    bool event_idx;
    /* Scratch reused across notifications: grows, never shrinks, so a
     * steady stream of requests does not allocate. */
    struct iovec *iov;
    size_t iov_len;
    size_t iov_cap;
    vq_chain *chains;
    viommu_request *reqs;
};

int viommu_vq_new(const viommu_vq_config *cfg, viommu_vq **out)
{
    if (!cfg || !out || !cfg->mem.map)
        return -EINVAL;
    if (cfg->size == 0 || cfg->size > 32768 || (cfg->size & (cfg->size - 1)))
        return -EINVAL;
    if ((cfg->desc_gpa & 15) || (cfg->avail_gpa & 1) || (cfg->used_gpa & 3))
        return -EINVAL;
    viommu_vq *vq = g_try_new0(viommu_vq, 1);
    if (!vq)
        return -ENOMEM;
    vq->cfg = *cfg;
    vq->chains = g_try_new(vq_chain, cfg->size);
    vq->reqs = g_try_new0(viommu_request, cfg->size);
    vq->iov_cap = (size_t)cfg->size * 2;
    vq->iov = g_try_new(struct iovec, vq->iov_cap);
    if (!vq->chains || !vq->reqs || !vq->iov) {
        viommu_vq_free(vq);
        return -ENOMEM;
    }
    *out = vq;
    return 0;
}

void viommu_vq_free(viommu_vq *vq)
{
    if (!vq)
        return;
    g_free(vq->chains);
    g_free(vq->reqs);
    g_free(vq->iov);
    g_free(vq);
}

void viommu_vq_set_event_idx(viommu_vq *vq, bool on)
{
    vq->event_idx = on;
}

static void *gmap(const viommu_vq *vq, uint64_t gpa, uint64_t len, bool write, size_t align)
{
    if (u64_add_overflows(gpa, len, NULL))
        return NULL;
    void *p = vq->cfg.mem.map(vq->cfg.mem.opaque, gpa, len, write);
    if (p && ((uintptr_t)p & (align - 1)))
        return NULL; /* the ring fields are accessed as aligned integers */
    return p;
}

static int push_iov(viommu_vq *vq, void *base, size_t len)
{
    if (vq->iov_len == vq->iov_cap) {
        size_t cap = vq->iov_cap * 2;
        struct iovec *n = g_try_renew(struct iovec, vq->iov, cap);
        if (!n)
            return -ENOMEM;
        vq->iov = n;
        vq->iov_cap = cap;
    }
    vq->iov[vq->iov_len++] = (struct iovec){base, len};
    return 0;
}

/* Walks the chain at @head into the scratch iovecs; -EIO when broken. */
static int walk_chain(viommu_vq *vq, const struct vring_desc *table, uint16_t head, vq_chain *c)
{
    const struct vring_desc *descs = table;
    uint32_t n = vq->cfg.size;
    uint32_t idx = head;
    uint32_t walked = 0; /* in the current table: more than n means a loop */
    uint32_t total = 0;
    bool writing = false;
    /* Told apart by a flag, not by the table's address: an indirect
     * table may sit where the queue's own table is. */
    bool indirect = false;

    c->head = head;
    c->off = vq->iov_len;
    c->nr = c->nw = 0;
    for (;;) {
        struct vring_desc d;
        if (idx >= n)
            return -EIO;
        memcpy(&d, &descs[idx], sizeof(d));
        uint16_t flags = le16toh(d.flags);
        uint64_t addr = le64toh(d.addr);
        uint32_t len = le32toh(d.len);
        if (flags & VRING_DESC_F_INDIRECT) {
            /* Only a head may point to an indirect table, and not also
             * chain on: the spec forbids INDIRECT with NEXT. */
            if (indirect || walked || (flags & VRING_DESC_F_NEXT))
                return -EIO;
            if (len == 0 || len % sizeof(struct vring_desc) ||
                len / sizeof(struct vring_desc) > VIOMMU_VQ_MAX_CHAIN)
                return -EIO;
            descs = gmap(vq, addr, len, false, 1); /* read with memcpy */
            if (!descs)
                return -EIO;
            indirect = true;
            n = len / sizeof(struct vring_desc);
            idx = 0;
            continue;
        }
        if (++walked > n || ++total > VIOMMU_VQ_MAX_CHAIN)
            return -EIO;
        if (flags & VRING_DESC_F_WRITE)
            writing = true;
        else if (writing)
            return -EIO; /* readable after writable */
        if (len) {
            void *p = gmap(vq, addr, len, writing, 1);
            if (!p || push_iov(vq, p, len) < 0)
                return -EIO;
            if (writing)
                c->nw++;
            else
                c->nr++;
        }
        if (!(flags & VRING_DESC_F_NEXT))
            return 0;
        idx = le16toh(d.next);
    }
}

typedef struct vq_rings {
    const struct vring_desc *desc;
    uint8_t *avail;
    uint8_t *used;
} vq_rings;

static int map_rings(const viommu_vq *vq, vq_rings *r)
{
    uint64_t size = vq->cfg.size;
    r->desc = gmap(vq, vq->cfg.desc_gpa, size * sizeof(struct vring_desc), false, 1);
    /* Both rings end with the event-index field (used_event, avail_event). */
    r->avail = gmap(vq, vq->cfg.avail_gpa, AVAIL_RING + 2 * size + 2, false, 2);
    r->used = gmap(vq, vq->cfg.used_gpa, USED_RING + 8 * size + 2, true, 4);
    return (r->desc && r->avail && r->used) ? 0 : -EIO;
}

static uint16_t avail_idx(const vq_rings *r)
{
    uint16_t idx =
        __atomic_load_n((const uint16_t *)(const void *)(r->avail + AVAIL_IDX), __ATOMIC_ACQUIRE);
    return le16toh(idx);
}

static uint16_t avail_head(const viommu_vq *vq, const vq_rings *r, uint16_t i)
{
    uint16_t h;
    memcpy(&h, r->avail + AVAIL_RING + 2 * (size_t)(i & (vq->cfg.size - 1)), sizeof(h));
    return le16toh(h);
}

static void used_put(viommu_vq *vq, const vq_rings *r, uint16_t head, size_t len)
{
    struct vring_used_elem e = {htole32(head), htole32((uint32_t)len)};
    memcpy(r->used + USED_RING + 8 * (size_t)(vq->used_idx & (vq->cfg.size - 1)), &e, sizeof(e));
    vq->used_idx++;
}

static void used_publish(viommu_vq *vq, const vq_rings *r)
{
    /* Entries first, then the index the driver polls. */
    __atomic_store_n((uint16_t *)(void *)(r->used + USED_IDX), htole16(vq->used_idx),
                     __ATOMIC_RELEASE);
}

/* Whether the driver wants an interrupt now that the used index moved
 * from @old to vq->used_idx. */
static bool wants_interrupt(const viommu_vq *vq, const vq_rings *r, uint16_t old)
{
    if (vq->event_idx) {
        uint16_t ev;
        /* The used index must be visible before used_event is read, or
         * an update of used_event racing with it could be missed. */
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        memcpy(&ev, r->avail + AVAIL_RING + 2 * (size_t)vq->cfg.size, sizeof(ev));
        ev = le16toh(ev);
        /* vring_need_event(): did the index step past used_event? */
        return (uint16_t)(vq->used_idx - ev - 1) < (uint16_t)(vq->used_idx - old);
    }
    uint16_t flags;
    memcpy(&flags, r->avail + AVAIL_FLAGS, sizeof(flags));
    return !(le16toh(flags) & VRING_AVAIL_F_NO_INTERRUPT);
}

/* With event_idx, tells the driver which available index to kick at. */
static void publish_avail_event(const viommu_vq *vq, const vq_rings *r)
{
    if (!vq->event_idx)
        return;
    uint16_t ev = htole16(vq->last_avail);
    memcpy(r->used + USED_RING + 8 * (size_t)vq->cfg.size, &ev, sizeof(ev));
}

int viommu_vq_process_requests(viommu *v, viommu_vq *vq, bool *notify)
{
    vq_rings r;
    if (notify)
        *notify = false;
    if (!v || !vq)
        return -EINVAL;
    if (map_rings(vq, &r) < 0)
        return -EIO;
    uint16_t pending = (uint16_t)(avail_idx(&r) - vq->last_avail);
    int rc = 0;
    if (pending > vq->cfg.size) {
        pending = 0;
        rc = -EIO;
    }
    size_t n = 0;
    vq->iov_len = 0;
    for (; n < pending; n++) {
        uint16_t head = avail_head(vq, &r, (uint16_t)(vq->last_avail + n));
        if (head >= vq->cfg.size || walk_chain(vq, r.desc, head, &vq->chains[n]) < 0) {
            rc = -EIO;
            break;
        }
    }
    /* The scratch array is final now: point the requests into it. */
    for (size_t i = 0; i < n; i++) {
        const vq_chain *c = &vq->chains[i];
        vq->reqs[i] = (viommu_request){
            .readable = vq->iov + c->off,
            .readable_count = c->nr,
            .writable = vq->iov + c->off + c->nr,
            .writable_count = c->nw,
        };
    }
    if (n) {
        uint16_t old = vq->used_idx;
        viommu_process_batch(v, vq->reqs, n);
        for (size_t i = 0; i < n; i++)
            used_put(vq, &r, vq->chains[i].head, vq->reqs[i].used_len);
        vq->last_avail = (uint16_t)(vq->last_avail + n);
        publish_avail_event(vq, &r);
        used_publish(vq, &r);
        if (notify)
            *notify = wants_interrupt(vq, &r, old);
    }
    return rc < 0 ? rc : (int)n;
}

int vi_vq_push_event(viommu_vq *vq, const void *data, size_t len, bool *notify)
{
    vq_rings r;
    vq_chain c;
    *notify = false;
    if (map_rings(vq, &r) < 0)
        return -EIO;
    uint16_t pending = (uint16_t)(avail_idx(&r) - vq->last_avail);
    if (pending == 0)
        return -ENOENT;
    if (pending > vq->cfg.size)
        return -EIO;
    uint16_t head = avail_head(vq, &r, vq->last_avail);
    vq->iov_len = 0;
    if (head >= vq->cfg.size || walk_chain(vq, r.desc, head, &c) < 0)
        return -EIO;
    const struct iovec *w = vq->iov + c.off + c.nr;
    size_t used = 0;
    /* A report never spans buffers: too small a buffer comes back empty. */
    if (vi_iov_size(w, c.nw) >= len)
        used = vi_iov_write(w, c.nw, 0, data, len);
    uint16_t old = vq->used_idx;
    vq->last_avail++;
    used_put(vq, &r, head, used);
    publish_avail_event(vq, &r);
    used_publish(vq, &r);
    *notify = wants_interrupt(vq, &r, old);
    return used ? 0 : -EAGAIN;
}

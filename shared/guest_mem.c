/* SPDX-License-Identifier: MIT */
/*
 * Guest RAM regions and their dirty log. Regions are few (a VMM has a
 * handful), but lookups sit on every DMA access and every bitmap fold,
 * so they go through the interval map.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "shared.h"

typedef struct region {
    guest_mem_region r;
    uint64_t npages;
    uint64_t *dirty; /* npages bits */
} region;

struct guest_mem {
    interval_map *map; /* value: region * */
    uint64_t page_size;
    unsigned page_shift;
};

static region *region_at(const guest_mem *gm, uint64_t gpa)
{
    region **p = interval_map_find(gm->map, gpa, NULL);
    return p ? *p : NULL;
}

guest_mem *guest_mem_new(uint64_t page_size)
{
    if (page_size == 0 || (page_size & (page_size - 1)))
        return NULL;
    guest_mem *gm = calloc(1, sizeof(*gm));
    if (!gm)
        return NULL;
    gm->map = interval_map_new(sizeof(region *));
    if (!gm->map) {
        free(gm);
        return NULL;
    }
    gm->page_size = page_size;
    gm->page_shift = (unsigned)__builtin_ctzll(page_size);
    return gm;
}

static void region_free(region *rg)
{
    free(rg->dirty);
    free(rg);
}

void guest_mem_free(guest_mem *gm)
{
    if (!gm)
        return;
    interval_map_iter it;
    region **p;
    interval_map_iter_init(&it, gm->map, 0, UINT64_MAX);
    while ((p = interval_map_iter_next(&it, NULL)))
        region_free(*p);
    interval_map_free(gm->map);
    free(gm);
}

uint64_t guest_mem_page_size(const guest_mem *gm)
{
    return gm->page_size;
}

size_t guest_mem_count(const guest_mem *gm)
{
    return interval_map_count(gm->map);
}

int guest_mem_add(guest_mem *gm, uint64_t gpa, uint64_t size, int fd, uint64_t fd_offset,
                  void *host)
{
    u64_range range;
    uint64_t mask = gm->page_size - 1;

    if (u64_range_from_size(gpa, size, &range) < 0 || (gpa & mask) || (size & mask))
        return -EINVAL;
    if (interval_map_find_first(gm->map, range.first, range.last, NULL))
        return -EEXIST;
    region *rg = calloc(1, sizeof(*rg));
    if (!rg)
        return -ENOMEM;
    rg->r = (guest_mem_region){gpa, size, fd, fd_offset, host};
    rg->npages = size >> gm->page_shift;
    rg->dirty = calloc(BITMAP_WORDS(rg->npages), sizeof(uint64_t));
    if (!rg->dirty) {
        free(rg);
        return -ENOMEM;
    }
    int ret = interval_map_insert(gm->map, range.first, range.last, &rg);
    if (ret < 0)
        region_free(rg);
    return ret;
}

int guest_mem_remove(guest_mem *gm, uint64_t gpa)
{
    region *rg;
    if (interval_map_remove(gm->map, gpa, &rg) < 0)
        return -ENOENT;
    region_free(rg);
    return 0;
}

const guest_mem_region *guest_mem_find(const guest_mem *gm, uint64_t gpa)
{
    region *rg = region_at(gm, gpa);
    return rg ? &rg->r : NULL;
}

int guest_mem_for_each_piece(const guest_mem *gm, uint64_t first, uint64_t last,
                             guest_mem_piece_fn fn, void *opaque)
{
    if (first > last)
        return -EINVAL;
    /* Check the whole range is RAM before the first call. */
    uint64_t at = first;
    for (;;) {
        region *rg = region_at(gm, at);
        if (!rg)
            return -EFAULT;
        uint64_t rlast = rg->r.gpa + rg->r.size - 1;
        if (rlast >= last)
            break;
        at = rlast + 1;
    }
    at = first;
    for (;;) {
        region *rg = region_at(gm, at);
        uint64_t rlast = rg->r.gpa + rg->r.size - 1;
        uint64_t plast = rlast < last ? rlast : last;
        int ret = fn(opaque, &rg->r, at, plast - at + 1, at - rg->r.gpa);
        if (ret)
            return ret;
        if (plast == last)
            return 0;
        at = plast + 1;
    }
}

typedef struct rw_ctx {
    unsigned char *buf;
    bool write;
} rw_ctx;

static int check_host(void *opaque, const guest_mem_region *r, uint64_t gpa, uint64_t len,
                      uint64_t offset)
{
    (void)opaque, (void)gpa, (void)len, (void)offset;
    return r->host ? 0 : -EFAULT;
}

static int copy_piece(void *opaque, const guest_mem_region *r, uint64_t gpa, uint64_t len,
                      uint64_t offset)
{
    rw_ctx *c = opaque;
    unsigned char *host = (unsigned char *)r->host + offset;
    (void)gpa;
    if (c->write)
        memcpy(host, c->buf, len);
    else
        memcpy(c->buf, host, len);
    c->buf += len;
    return 0;
}

int guest_mem_rw(guest_mem *gm, uint64_t gpa, void *buf, uint64_t len, bool write)
{
    if (len == 0)
        return 0;
    u64_range range;
    if (u64_range_from_size(gpa, len, &range) < 0)
        return -EFAULT;
    int ret = guest_mem_for_each_piece(gm, range.first, range.last, check_host, NULL);
    if (ret < 0)
        return -EFAULT;
    rw_ctx c = {buf, write};
    guest_mem_for_each_piece(gm, range.first, range.last, copy_piece, &c);
    if (write)
        guest_mem_dirty_mark(gm, range.first, range.last);
    return 0;
}

uint64_t guest_mem_dirty_mark(guest_mem *gm, uint64_t first, uint64_t last)
{
    uint64_t pages = 0;
    interval_map_iter it;
    u64_range rr;
    region **p;

    if (first > last)
        return 0;
    interval_map_iter_init(&it, gm->map, first, last);
    while ((p = interval_map_iter_next(&it, &rr))) {
        region *rg = *p;
        uint64_t a = first > rr.first ? first : rr.first;
        uint64_t b = last < rr.last ? last : rr.last;
        uint64_t p0 = (a - rg->r.gpa) >> gm->page_shift;
        uint64_t p1 = (b - rg->r.gpa) >> gm->page_shift;
        bitmap_set_range(rg->dirty, p0, p1 - p0 + 1);
        pages += p1 - p0 + 1;
    }
    return pages;
}

int guest_mem_dirty_fold(guest_mem *gm, uint64_t gpa, uint64_t pgsize, const uint64_t *bits,
                         uint64_t first_bit, uint64_t nbits)
{
    if (pgsize == 0 || (pgsize & (pgsize - 1)))
        return -EINVAL;
    if (nbits == 0)
        return 0;
    uint64_t span;
    if (__builtin_mul_overflow(nbits, pgsize, &span) || u64_add_overflows(gpa, span - 1, NULL) ||
        u64_add_overflows(first_bit, nbits, NULL))
        return -EINVAL;

    region *rg = region_at(gm, gpa);
    if (pgsize == gm->page_size && rg && (gpa & (pgsize - 1)) == 0 &&
        gpa + span - 1 <= rg->r.gpa + rg->r.size - 1) {
        uint64_t at = (gpa - rg->r.gpa) >> gm->page_shift;
        if (first_bit % 64 == 0) {
            bitmap_or_at(rg->dirty, at, bits + first_bit / 64, nbits);
            return 0;
        }
        /* Realign the source through a small buffer, a chunk at a time. */
        uint64_t tmp[256];
        for (uint64_t done = 0; done < nbits;) {
            uint64_t n = nbits - done < 256 * 64 ? nbits - done : 256 * 64;
            bitmap_extract(tmp, bits, first_bit + done, n);
            bitmap_or_at(rg->dirty, at + done, tmp, n);
            done += n;
        }
        return 0;
    }
    for (uint64_t i = bitmap_next_set(bits, first_bit + nbits, first_bit); i < first_bit + nbits;
         i = bitmap_next_set(bits, first_bit + nbits, i + 1)) {
        uint64_t a = gpa + (i - first_bit) * pgsize;
        guest_mem_dirty_mark(gm, a, a + pgsize - 1);
    }
    return 0;
}

uint64_t guest_mem_dirty_count(const guest_mem *gm)
{
    uint64_t n = 0;
    interval_map_iter it;
    region **p;
    interval_map_iter_init(&it, gm->map, 0, UINT64_MAX);
    while ((p = interval_map_iter_next(&it, NULL)))
        n += bitmap_count((*p)->dirty, (*p)->npages);
    return n;
}

bool guest_mem_dirty_test(const guest_mem *gm, uint64_t gpa)
{
    region *rg = region_at(gm, gpa);
    return rg && bitmap_test(rg->dirty, (gpa - rg->r.gpa) >> gm->page_shift);
}

int guest_mem_dirty_collect(guest_mem *gm, bool clear, guest_mem_dirty_page_fn fn, void *opaque)
{
    interval_map_iter it;
    region **p;
    interval_map_iter_init(&it, gm->map, 0, UINT64_MAX);
    while ((p = interval_map_iter_next(&it, NULL))) {
        region *rg = *p;
        uint64_t bit;
        BITMAP_FOREACH_SET(bit, rg->dirty, rg->npages)
        {
            int ret = fn(opaque, rg->r.gpa + (bit << gm->page_shift));
            if (ret)
                return ret;
        }
    }
    if (clear)
        guest_mem_dirty_clear(gm);
    return 0;
}

void guest_mem_dirty_clear(guest_mem *gm)
{
    interval_map_iter it;
    region **p;
    interval_map_iter_init(&it, gm->map, 0, UINT64_MAX);
    while ((p = interval_map_iter_next(&it, NULL)))
        memset((*p)->dirty, 0, BITMAP_WORDS((*p)->npages) * sizeof(uint64_t));
}

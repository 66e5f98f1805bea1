/* SPDX-License-Identifier: MIT */
/*
 * The DMA region table: regions keyed by IOVA in the shared interval
 * map, each optionally backed by a mapping of the client's fd, each with
 * a dirty-page bitmap while logging is on.
 *
 * Partial unmap cuts a region in up to two pieces. A piece that keeps a
 * mapping unmaps, when it goes, every host page it touches: that is safe
 * because a region's mapping is its own mmap() (no other region shares
 * its pages) and a cut inside a mapped region must fall on a host page
 * boundary, so two pieces of one mapping never share a page either.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "private.h"

int vus_dma_init(vus_dma *d)
{
    long pg = sysconf(_SC_PAGESIZE);

    memset(d, 0, sizeof(*d));
    d->host_pgsize = pg > 0 ? (uint64_t)pg : 4096;
    d->map = interval_map_new(sizeof(vus_region));
    return d->map ? 0 : -ENOMEM;
}

static uint64_t page_floor(uint64_t x, uint64_t pg)
{
    return x & ~(pg - 1);
}

/* Unmaps the host pages of the piece @key of a region whose first byte is @host. */
static void unmap_piece(const vus_dma *d, uint8_t *host, u64_range key)
{
    uintptr_t lo = (uintptr_t)host, hi = lo + (uintptr_t)(key.last - key.first);
    uintptr_t pg = (uintptr_t)d->host_pgsize;
    uintptr_t start = lo & ~(pg - 1), end = (hi | (pg - 1)) + 1;

    munmap((void *)start, end - start);
}

static uint64_t log_bits(const vus_dma *d, u64_range key)
{
    return key.last / d->log_pgsize - key.first / d->log_pgsize + 1;
}

static void free_bitmap(vus_dma *d, vus_region *r)
{
    if (r->dirty) {
        d->dirty_bytes -= (uint64_t)r->dirty_words * 8;
        free(r->dirty);
    }
    r->dirty = NULL;
    r->dirty_words = 0;
}

static void release(vus_dma *d, vus_region *r, u64_range key)
{
    if (r->host)
        unmap_piece(d, r->host, key);
    free_bitmap(d, r);
}

void vus_dma_unmap_all(vus_dma *d)
{
    interval_map_iter it;
    u64_range key;
    vus_region *r;

    interval_map_iter_init(&it, d->map, 0, UINT64_MAX);
    while ((r = interval_map_iter_next(&it, &key)))
        release(d, r, key);
    interval_map_clear(d->map);
}

void vus_dma_destroy(vus_dma *d)
{
    if (!d->map)
        return;
    vus_dma_unmap_all(d);
    interval_map_free(d->map);
    d->map = NULL;
}

/* Gives @r a zeroed bitmap of @nbits bits, within the connection's budget; -ENOMEM. */
static int new_bitmap(vus_dma *d, vus_region *r, uint64_t nbits)
{
    uint64_t words = BITMAP_WORDS(nbits);

    if (words > UINT32_MAX || words * 8 > VUS_MAX_DIRTY_BYTES - d->dirty_bytes)
        return -ENOMEM;
    r->dirty = calloc((size_t)words, sizeof(uint64_t));
    if (!r->dirty)
        return -ENOMEM;
    r->dirty_words = (uint32_t)words;
    d->dirty_bytes += words * 8;
    return 0;
}

int vus_dma_map(vus_dma *d, uint64_t iova, uint64_t size, int fd, uint64_t offset, uint32_t prot,
                const vus_map_rules *rules)
{
    vus_region r = {.prot = prot};
    u64_range key, old;
    vus_region *hit;
    int ret;

    if (prot & ~(VFIO_USER_PROT_READ | VFIO_USER_PROT_WRITE))
        return -EINVAL;
    if (u64_range_from_size(iova, size, &key) < 0)
        return -EINVAL;
    if (size > rules->max_region_size)
        return -ENOSPC;
    hit = interval_map_find_first(d->map, key.first, key.last, &old);
    if (hit) {
        if (rules->identical_ok && old.first == key.first && old.last == key.last &&
            hit->prot == prot && (hit->host != NULL) == (fd >= 0))
            return 0;
        return -rules->overlap_errno;
    }
    if (interval_map_count(d->map) >= rules->max_regions)
        return -rules->limit_errno;

    if (fd >= 0) {
        uint64_t map_off = page_floor(offset, d->host_pgsize), delta = offset - map_off, len, end;
        struct stat st;
        int mprot = PROT_NONE;
        void *base;

        if (u64_add_overflows(offset, size, &end) || u64_add_overflows(size, delta, &len) ||
            len > SIZE_MAX - d->host_pgsize)
            return -EINVAL;
        /* Touching a mapping past the end of its file raises SIGBUS. */
        if (fstat(fd, &st) < 0)
            return -errno;
        if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size < end)
            return -EINVAL;
        if (prot & VFIO_USER_PROT_READ)
            mprot |= PROT_READ;
        if (prot & VFIO_USER_PROT_WRITE)
            mprot |= PROT_WRITE;
        base = mmap(NULL, (size_t)len, mprot, MAP_SHARED, fd, (off_t)map_off);
        if (base == MAP_FAILED)
            return -errno;
        r.host = (uint8_t *)base + delta;
    }
    if (d->logging) {
        ret = new_bitmap(d, &r, log_bits(d, key));
        if (ret < 0)
            goto fail_release;
    }
    ret = interval_map_insert(d->map, key.first, key.last, &r);
    if (ret < 0)
        goto fail_release;
    return 0;

fail_release:
    release(d, &r, key);
    return ret;
}

int vus_dma_unmap_exact(vus_dma *d, uint64_t iova, uint64_t size)
{
    vus_region r;
    u64_range key, want;

    if (u64_range_from_size(iova, size, &want) < 0)
        return -ENOENT;
    if (!interval_map_find(d->map, iova, &key) || key.first != want.first || key.last != want.last)
        return -ENOENT;
    interval_map_remove(d->map, key.first, &r);
    release(d, &r, key);
    return 0;
}

/* True when cutting mapped region @r (keyed @key) just before @addr is allowed. */
static bool cut_ok(const vus_dma *d, const vus_region *r, u64_range key, uint64_t addr)
{
    if (!r->host)
        return true;
    return ((uintptr_t)(r->host + (addr - key.first)) & (d->host_pgsize - 1)) == 0;
}

int vus_dma_unmap_check(const vus_dma *d, uint64_t first, uint64_t last)
{
    interval_map_iter it;
    u64_range key;
    vus_region *r;
    bool any = false;

    interval_map_iter_init(&it, d->map, first, last);
    while ((r = interval_map_iter_next(&it, &key))) {
        any = true;
        if (key.first < first && !cut_ok(d, r, key, first))
            return -EINVAL;
        if (key.last > last && !cut_ok(d, r, key, last + 1))
            return -EINVAL;
    }
    return any ? 0 : -ENOENT;
}

/* Gives @dst the logged bits of the pages of @to out of @src's bitmap. */
static int split_bitmap(vus_dma *d, const uint64_t *src, u64_range from, vus_region *dst,
                        u64_range to)
{
    uint64_t shift = to.first / d->log_pgsize - from.first / d->log_pgsize;
    uint64_t nbits = log_bits(d, to), src_bits = log_bits(d, from), bit;
    int ret = new_bitmap(d, dst, nbits);

    if (ret < 0)
        return ret;
    for (bit = bitmap_next_set(src, src_bits, shift); bit < src_bits && bit - shift < nbits;
         bit = bitmap_next_set(src, src_bits, bit + 1))
        dst->dirty[(bit - shift) / 64] |= 1ull << ((bit - shift) % 64);
    return 0;
}

/* Removes [first, last] from the one region @key (which it overlaps). */
static int cut_region(vus_dma *d, u64_range key, uint64_t first, uint64_t last)
{
    vus_region r, left, right;
    u64_range lkey = {key.first, first - 1}, rkey = {last + 1, key.last};
    u64_range gone = {first > key.first ? first : key.first, last < key.last ? last : key.last};
    bool has_left = key.first < first;
    bool has_right = key.last > last;
    int ret = 0;

    interval_map_remove(d->map, key.first, &r);
    left = r;
    right = r;
    if (has_right) {
        right.host = r.host ? r.host + (rkey.first - key.first) : NULL;
        right.dirty = NULL;
        right.dirty_words = 0;
        if (r.dirty)
            ret = split_bitmap(d, r.dirty, key, &right, rkey);
    }
    /* The left piece keeps the bitmap: its bits past the piece are never read. */
    if (!has_left)
        free_bitmap(d, &r);

    if (r.host)
        unmap_piece(d, r.host + (gone.first - key.first), gone);
    if (ret == 0 && has_left)
        ret = interval_map_insert(d->map, lkey.first, lkey.last, &left);
    if (ret < 0) {
        /* Out of memory: drop the pieces whole rather than keep a half-made table. */
        if (has_left)
            release(d, &left, lkey);
        if (has_right)
            release(d, &right, rkey);
        return ret;
    }
    if (has_right) {
        ret = interval_map_insert(d->map, rkey.first, rkey.last, &right);
        if (ret < 0)
            release(d, &right, rkey);
    }
    return ret;
}

int vus_dma_unmap_range(vus_dma *d, uint64_t first, uint64_t last)
{
    u64_range key;
    uint64_t from = first;
    int ret = vus_dma_unmap_check(d, first, last);

    if (ret < 0)
        return ret;
    /* Each step removes the lowest region left in the range; the map changes under us. */
    while (interval_map_find_first(d->map, from, last, &key)) {
        int r = cut_region(d, key, first, last);
        if (r < 0)
            ret = r;
        if (key.last >= last)
            break;
        from = key.last + 1;
    }
    return ret;
}

int vus_dma_log_start(vus_dma *d, uint64_t pgsize)
{
    interval_map_iter it;
    u64_range key;
    vus_region *r;

    if (!vus_is_pow2(pgsize))
        return -EINVAL;
    if (d->logging)
        vus_dma_log_stop(d);
    d->log_pgsize = pgsize;
    interval_map_iter_init(&it, d->map, 0, UINT64_MAX);
    while ((r = interval_map_iter_next(&it, &key))) {
        if (new_bitmap(d, r, log_bits(d, key)) < 0) {
            vus_dma_log_stop(d);
            return -ENOMEM;
        }
    }
    d->logging = true;
    return 0;
}

void vus_dma_log_stop(vus_dma *d)
{
    interval_map_iter it;
    u64_range key;
    vus_region *r;

    interval_map_iter_init(&it, d->map, 0, UINT64_MAX);
    while ((r = interval_map_iter_next(&it, &key)))
        free_bitmap(d, r);
    d->logging = false;
}

void vus_dma_mark_dirty(vus_dma *d, vus_region *r, u64_range key, uint64_t first, uint64_t last)
{
    uint64_t base;

    if (!d->logging || !r->dirty)
        return;
    base = key.first / d->log_pgsize;
    bitmap_set_range(r->dirty, first / d->log_pgsize - base,
                     last / d->log_pgsize - first / d->log_pgsize + 1);
}

int vus_dma_collect(vus_dma *d, uint64_t iova, uint64_t size, uint64_t pgsize, uint64_t *words,
                    size_t nwords)
{
    interval_map_iter it;
    u64_range key, want;
    vus_region *r;

    if (!vus_is_pow2(pgsize) || u64_range_from_size(iova, size, &want) < 0)
        return -EINVAL;
    if (((size - 1) / pgsize) / 64 >= nwords)
        return -EINVAL;
    if (!d->logging)
        return 0;
    interval_map_iter_init(&it, d->map, want.first, want.last);
    while ((r = interval_map_iter_next(&it, &key))) {
        uint64_t lp = d->log_pgsize, base = key.first / lp;
        uint64_t lo = key.first > want.first ? key.first : want.first;
        uint64_t hi = key.last < want.last ? key.last : want.last;
        uint64_t end_bit = hi / lp - base + 1, bit;

        if (!r->dirty)
            continue;
        for (bit = bitmap_next_set(r->dirty, end_bit, lo / lp - base); bit < end_bit;
             bit = bitmap_next_set(r->dirty, end_bit, bit + 1)) {
            uint64_t pfirst = (base + bit) * lp, plast = pfirst + (lp - 1);
            uint64_t a = pfirst > lo ? pfirst : lo, b = plast < hi ? plast : hi;

            bitmap_set_range(words, (a - iova) / pgsize,
                             (b - iova) / pgsize - (a - iova) / pgsize + 1);
            /* A page partly outside the range keeps its bit for the other part. */
            if (pfirst >= want.first && plast <= want.last)
                r->dirty[bit / 64] &= ~(1ull << (bit % 64));
        }
    }
    return 0;
}

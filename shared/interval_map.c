/* SPDX-License-Identifier: MIT */
/*
 * The interval map: a B+tree keyed by each interval's start.
 *
 * Leaves hold parallel arrays of starts, ends and inline values and are
 * linked both ways; inner nodes hold separators and children. For child
 * i > 0 of an inner node, every start below it is >= key[i] and every
 * start below child i - 1 is < key[i]; key[0] is unused. Separators are
 * not refreshed when the entry they were copied from goes away, so the
 * first entry of a leaf may start above its separator: the entry that
 * contains an address can then sit at the end of the previous leaf, which
 * is why lookups look one entry back across a leaf boundary.
 *
 * Intervals never overlap, so the entry containing an address is always
 * the one with the greatest start <= address.
 *
 * Nodes come from the map's own slabs (one per node size) rather than
 * one malloc each: nodes are cache-line aligned and packed, and a large
 * map's nodes sit in 2 MiB chunks the kernel may back with transparent
 * huge pages. A random lookup in a map of millions of entries misses the
 * cache at every level; with 4 KiB pages it also misses the TLB at every
 * level, which under virtualization costs more than the miss itself.
 * Freed nodes are kept for reuse; a map whose chunks hold four times what
 * its nodes need is rebuilt, packed, into new ones, and an empty map
 * holds none.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "shared.h"

#define LEAF_CAP 32
#define LEAF_MIN (LEAF_CAP / 2)
#define INNER_CAP 32
#define INNER_MIN (INNER_CAP / 2)
#define MAX_HEIGHT 24

struct node {
    uint16_t n;    /* entries (leaf) or children (inner) */
    uint16_t leaf; /* 1 for a leaf */
};

/* The header has a cache line of its own so that each array starts on
 * one: a leaf's 32 starts are then exactly four lines. */
struct leaf {
    struct node h;
    struct leaf *prev, *next;
    _Alignas(64) uint64_t start[LEAF_CAP];
    uint64_t end[LEAF_CAP];
    unsigned char val[]; /* LEAF_CAP values of value_size bytes */
};

struct inner {
    struct node h;
    uint64_t key[INNER_CAP];
    struct node *child[INNER_CAP];
};

/* A chunk of a slab; nodes follow the header's cache line. */
struct chunk {
    struct chunk *next;
    size_t size; /* bytes, header included */
    bool mapped; /* from mmap (a huge-page chunk), else from aligned_alloc */
};

#define CHUNK_HEADER 64
#define HUGE_CHUNK (2u * 1024 * 1024)
/* Huge-page chunks only once a slab holds this much: below it the TLB
 * covers the map anyway, and a half-used 2 MiB chunk would be a large
 * share of a small map. */
#define HUGE_FROM (16u * 1024 * 1024)
/* Maps holding less than this are never compacted. */
#define COMPACT_FROM (64u * 1024)

struct slab {
    size_t node_size;    /* a multiple of 64 */
    void *free_list;     /* freed nodes, linked through their first word */
    unsigned char *bump; /* the unused tail of the newest chunk */
    unsigned char *bump_end;
    struct chunk *chunks; /* newest first */
    size_t held;          /* bytes of every chunk */
    size_t live;          /* nodes handed out and not freed */
};

struct interval_map {
    struct node *root; /* NULL when empty */
    size_t value_size;
    size_t count;
    unsigned height; /* inner levels above the leaves */
    struct slab leaves, inners;
};

struct path {
    struct inner *node[MAX_HEIGHT];
    unsigned idx[MAX_HEIGHT];
    unsigned depth;
};

/* The number of elements of a[0..n) that are <= x (a is sorted). */
static inline unsigned count_le(const uint64_t *a, unsigned n, uint64_t x)
{
    const uint64_t *base = a;

    /* Branch-free: the comparison's outcome is random, so a branch here
     * would be mispredicted half the time. */
    while (n > 1) {
        unsigned half = n / 2;
        base += (size_t)(base[half - 1] <= x) * half;
        n -= half;
    }
    return (unsigned)(base - a) + (n == 1 && base[0] <= x);
}

static inline unsigned char *leaf_val(const interval_map *m, const struct leaf *l, unsigned i)
{
    return (unsigned char *)l->val + (size_t)i * m->value_size;
}

/*
 * Asks for every cache line a step of a lookup reads at once, so that the
 * misses overlap instead of arriving one after the other: an inner node
 * whole (its keys, then the child the search picks); a leaf's header,
 * starts and ends (its values wait for the index).
 */
static inline void prefetch_inner(const struct inner *in)
{
    for (size_t off = 0; off < sizeof(struct inner); off += 64)
        __builtin_prefetch((const char *)in + off);
}

static inline void prefetch_leaf(const interval_map *m, const struct leaf *l)
{
    __builtin_prefetch(l);
    for (unsigned i = 0; i < LEAF_CAP; i += 8) {
        __builtin_prefetch(&l->start[i]);
        __builtin_prefetch(&l->end[i]);
    }
    for (size_t off = 0; off < LEAF_CAP * m->value_size; off += 64)
        __builtin_prefetch(l->val + off);
}

/*
 * The leaf where @key belongs, recording the way down in @p (may be
 * NULL). The map's height says which level holds the leaves, so a node's
 * lines are requested as soon as its parent names it, before any of them
 * is read.
 */
static struct leaf *descend(const interval_map *m, uint64_t key, struct path *p)
{
    struct node *n = m->root;
    unsigned height = m->height;

    if (p)
        p->depth = height;
    if (height == 0) {
        prefetch_leaf(m, (const struct leaf *)n);
        return (struct leaf *)n;
    }
    prefetch_inner((const struct inner *)n);
    for (unsigned lv = 0; lv < height; lv++) {
        struct inner *in = (struct inner *)n;
        unsigned idx = count_le(in->key + 1, in->h.n - 1u, key);
        n = in->child[idx];
        if (lv + 1 < height)
            prefetch_inner((const struct inner *)n);
        else
            prefetch_leaf(m, (const struct leaf *)n);
        if (p) {
            p->node[lv] = in;
            p->idx[lv] = idx;
        }
    }
    return (struct leaf *)n;
}

#if defined(__SANITIZE_ADDRESS__)
#define SLAB_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SLAB_ASAN 1
#endif
#endif
#ifdef SLAB_ASAN
/* Nodes not handed out stay poisoned, so a use after free is caught as
 * it would be with one malloc per node. */
#include <sanitizer/asan_interface.h>
#define slab_poison(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define slab_unpoison(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define slab_poison(p, n) ((void)(p), (void)(n))
#define slab_unpoison(p, n) ((void)(p), (void)(n))
#endif

static void slab_init(struct slab *s, size_t node_size)
{
    *s = (struct slab){.node_size = (node_size + 63) & ~(size_t)63};
}

/* A 2 MiB chunk aligned to 2 MiB, so the kernel can map it with one
 * huge page; NULL when the address space is exhausted. */
static void *huge_chunk_map(void)
{
    size_t len = 2 * (size_t)HUGE_CHUNK;
    unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    uintptr_t a = ((uintptr_t)p + HUGE_CHUNK - 1) & ~(uintptr_t)(HUGE_CHUNK - 1);
    unsigned char *aligned = (unsigned char *)a;
    if (aligned > p)
        munmap(p, (size_t)(aligned - p));
    if (aligned + HUGE_CHUNK < p + len)
        munmap(aligned + HUGE_CHUNK, (size_t)(p + len - (aligned + HUGE_CHUNK)));
#ifdef MADV_HUGEPAGE
    madvise(aligned, HUGE_CHUNK, MADV_HUGEPAGE);
#endif
    return aligned;
}

/* Adds a chunk of about an eighth of what the slab holds (at least four
 * nodes), so at most about 1/8 of a growing map's memory is unused. */
static bool slab_grow(struct slab *s)
{
    size_t size, min = CHUNK_HEADER + 4 * s->node_size;
    bool huge = s->held >= HUGE_FROM && min <= HUGE_CHUNK;
    void *mem;

    if (huge) {
        size = HUGE_CHUNK;
        mem = huge_chunk_map();
    } else {
        size = s->held / 8;
        if (size > HUGE_CHUNK)
            size = HUGE_CHUNK;
        if (size < min)
            size = min;
        size = (size + 63) & ~(size_t)63;
        mem = aligned_alloc(64, size);
    }
    if (!mem)
        return false;
    struct chunk *c = mem;
    c->next = s->chunks;
    c->size = size;
    c->mapped = huge;
    s->chunks = c;
    s->held += size;
    s->bump = (unsigned char *)mem + CHUNK_HEADER;
    s->bump_end = (unsigned char *)mem + size;
    slab_poison(s->bump, (size_t)(s->bump_end - s->bump));
    return true;
}

static void *slab_alloc(struct slab *s)
{
    void *p = s->free_list;
    if (p) {
        slab_unpoison(p, s->node_size);
        s->free_list = *(void **)p;
        s->live++;
        return p;
    }
    if ((size_t)(s->bump_end - s->bump) < s->node_size && !slab_grow(s))
        return NULL;
    p = s->bump;
    s->bump += s->node_size;
    slab_unpoison(p, s->node_size);
    s->live++;
    return p;
}

static void slab_free(struct slab *s, void *p)
{
    *(void **)p = s->free_list;
    s->free_list = p;
    s->live--;
    slab_poison((unsigned char *)p + sizeof(void *), s->node_size - sizeof(void *));
}

/* Returns every chunk to the system; the slab is then empty. */
static void slab_release(struct slab *s)
{
    struct chunk *c = s->chunks;
    while (c) {
        struct chunk *next = c->next;
        slab_unpoison(c, c->size);
        if (c->mapped)
            munmap(c, c->size);
        else
            free(c);
        c = next;
    }
    slab_init(s, s->node_size);
}

static struct leaf *leaf_new(interval_map *m)
{
    struct leaf *l = slab_alloc(&m->leaves);
    if (l) {
        l->h.n = 0;
        l->h.leaf = 1;
        l->prev = l->next = NULL;
    }
    return l;
}

static struct inner *inner_new(interval_map *m)
{
    struct inner *in = slab_alloc(&m->inners);
    if (in)
        in->h = (struct node){0, 0};
    return in;
}

static void leaf_free(interval_map *m, struct leaf *l)
{
    slab_free(&m->leaves, l);
}

static void inner_free(interval_map *m, struct inner *in)
{
    slab_free(&m->inners, in);
}

interval_map *interval_map_new(size_t value_size)
{
    if (value_size > INTERVAL_MAP_MAX_VALUE)
        return NULL;
    interval_map *m = calloc(1, sizeof(*m));
    if (m) {
        m->value_size = value_size;
        slab_init(&m->leaves, sizeof(struct leaf) + LEAF_CAP * value_size);
        slab_init(&m->inners, sizeof(struct inner));
    }
    return m;
}

void interval_map_clear(interval_map *m)
{
    m->root = NULL;
    m->count = 0;
    m->height = 0;
    slab_release(&m->leaves);
    slab_release(&m->inners);
}

void interval_map_free(interval_map *m)
{
    if (!m)
        return;
    interval_map_clear(m);
    free(m);
}

size_t interval_map_value_size(const interval_map *m)
{
    return m->value_size;
}

size_t interval_map_count(const interval_map *m)
{
    return m->count;
}

size_t interval_map_memory(const interval_map *m)
{
    return sizeof(*m) + m->leaves.held + m->inners.held;
}

/*
 * The position of the entry with the greatest start <= addr: a leaf and
 * an index, or leaf NULL when every entry starts above addr.
 */
static struct leaf *find_le(const interval_map *m, uint64_t addr, unsigned *idx)
{
    if (!m->root)
        return NULL;
    struct leaf *l = descend(m, addr, NULL);
    unsigned i = count_le(l->start, l->h.n, addr);

    if (i > 0) {
        *idx = i - 1;
        return l;
    }
    /* Every entry here starts above addr: the predecessor, if any, ends
     * the previous leaf. */
    l = l->prev;
    if (!l)
        return NULL;
    *idx = l->h.n - 1u;
    return l;
}

/* A non-NULL pointer standing for the value of a zero-size entry. */
static unsigned char empty_value;

static void *value_ptr(const interval_map *m, struct leaf *l, unsigned i)
{
    return m->value_size ? (void *)leaf_val(m, l, i) : (void *)&empty_value;
}

void *interval_map_find(const interval_map *m, uint64_t addr, u64_range *range)
{
    unsigned i;
    struct leaf *l = find_le(m, addr, &i);

    if (!l)
        return NULL;
    /* The end and the value sit in different cache lines: fetch both at once. */
    if (m->value_size)
        __builtin_prefetch(leaf_val(m, l, i));
    if (l->end[i] < addr)
        return NULL;
    if (range) {
        range->first = l->start[i];
        range->last = l->end[i];
    }
    return value_ptr(m, l, i);
}

void interval_map_iter_init(interval_map_iter *it, const interval_map *m, uint64_t first,
                            uint64_t last)
{
    unsigned i;
    struct leaf *l;

    it->map = m;
    it->last = last;
    it->leaf = NULL;
    it->idx = 0;
    if (!m->root || first > last)
        return;
    l = find_le(m, first, &i);
    if (l && l->end[i] >= first) {
        it->leaf = l;
        it->idx = i;
        return;
    }
    if (l) {
        it->leaf = l;
        it->idx = i + 1;
    } else {
        /* Every entry starts above first: begin at the leftmost leaf. */
        struct node *n = m->root;
        while (!n->leaf)
            n = ((struct inner *)n)->child[0];
        it->leaf = n;
        it->idx = 0;
    }
}

void *interval_map_iter_next(interval_map_iter *it, u64_range *range)
{
    struct leaf *l = it->leaf;

    while (l && it->idx >= l->h.n) {
        l = l->next;
        it->idx = 0;
    }
    it->leaf = l;
    if (!l || l->start[it->idx] > it->last) {
        it->leaf = NULL;
        return NULL;
    }
    unsigned i = it->idx++;
    if (range) {
        range->first = l->start[i];
        range->last = l->end[i];
    }
    return value_ptr(it->map, l, i);
}

void *interval_map_find_first(const interval_map *m, uint64_t first, uint64_t last,
                              u64_range *range)
{
    interval_map_iter it;

    interval_map_iter_init(&it, m, first, last);
    return interval_map_iter_next(&it, range);
}

/* Moves entries [from, from + count) of @src to position @to of @dst. */
static void leaf_move(const interval_map *m, struct leaf *dst, unsigned to, struct leaf *src,
                      unsigned from, unsigned count)
{
    memmove(&dst->start[to], &src->start[from], count * sizeof(uint64_t));
    memmove(&dst->end[to], &src->end[from], count * sizeof(uint64_t));
    if (m->value_size)
        memmove(leaf_val(m, dst, to), leaf_val(m, src, from), count * m->value_size);
}

static void leaf_put(const interval_map *m, struct leaf *l, unsigned i, uint64_t start,
                     uint64_t end, const void *value)
{
    leaf_move(m, l, i + 1, l, i, l->h.n - i);
    l->start[i] = start;
    l->end[i] = end;
    if (m->value_size)
        memcpy(leaf_val(m, l, i), value, m->value_size);
    l->h.n++;
}

static void inner_put(struct inner *in, unsigned i, uint64_t key, struct node *child)
{
    memmove(&in->key[i + 1], &in->key[i], (in->h.n - i) * sizeof(uint64_t));
    memmove(&in->child[i + 1], &in->child[i], (in->h.n - i) * sizeof(struct node *));
    in->key[i] = key;
    in->child[i] = child;
    in->h.n++;
}

static void inner_drop(struct inner *in, unsigned i)
{
    memmove(&in->key[i], &in->key[i + 1], (in->h.n - i - 1) * sizeof(uint64_t));
    memmove(&in->child[i], &in->child[i + 1], (in->h.n - i - 1) * sizeof(struct node *));
    in->h.n--;
}

/*
 * Inserts separator @key and @right after child @idx of the inner node
 * at @p->node[level], splitting upward as needed. Nodes are allocated
 * up front by the caller's budget check, so this cannot fail halfway.
 */
static void insert_up(interval_map *m, struct path *p, int level, uint64_t key, struct node *right,
                      struct inner **spare, unsigned *nspare)
{
    while (level >= 0) {
        struct inner *in = p->node[level];
        unsigned pos = p->idx[level] + 1;

        if (in->h.n < INNER_CAP) {
            inner_put(in, pos, key, right);
            return;
        }
        /* Split: the combined CAP + 1 children go half and half. */
        uint64_t keys[INNER_CAP + 1];
        struct node *kids[INNER_CAP + 1];
        memcpy(keys, in->key, pos * sizeof(uint64_t));
        memcpy(kids, in->child, pos * sizeof(struct node *));
        keys[pos] = key;
        kids[pos] = right;
        memcpy(&keys[pos + 1], &in->key[pos], (INNER_CAP - pos) * sizeof(uint64_t));
        memcpy(&kids[pos + 1], &in->child[pos], (INNER_CAP - pos) * sizeof(struct node *));

        struct inner *r = spare[--*nspare];
        unsigned lcount = (INNER_CAP + 1) / 2, rcount = INNER_CAP + 1 - lcount;
        memcpy(in->key, keys, lcount * sizeof(uint64_t));
        memcpy(in->child, kids, lcount * sizeof(struct node *));
        in->h.n = (uint16_t)lcount;
        memcpy(r->key, &keys[lcount], rcount * sizeof(uint64_t));
        memcpy(r->child, &kids[lcount], rcount * sizeof(struct node *));
        r->h.n = (uint16_t)rcount;
        key = keys[lcount];
        right = &r->h;
        level--;
    }
    /* The root split: a new root above both halves. */
    struct inner *root = spare[--*nspare];
    root->h.n = 2;
    root->key[0] = 0;
    root->child[0] = m->root;
    root->key[1] = key;
    root->child[1] = right;
    m->root = &root->h;
    m->height++;
}

int interval_map_insert(interval_map *m, uint64_t start, uint64_t end, const void *value)
{
    struct path p;
    struct leaf *l;
    unsigned pos;

    if (start > end)
        return -EINVAL;
    if (!m->root) {
        l = leaf_new(m);
        if (!l)
            return -ENOMEM;
        leaf_put(m, l, 0, start, end, value);
        m->root = &l->h;
        m->count = 1;
        return 0;
    }

    l = descend(m, start, &p);
    pos = count_le(l->start, l->h.n, start);

    /* Overlap with the predecessor or the successor? */
    if (pos > 0 ? l->end[pos - 1] >= start : (l->prev && l->prev->end[l->prev->h.n - 1] >= start))
        return -EEXIST;
    if (pos < l->h.n ? l->start[pos] <= end : (l->next && l->next->start[0] <= end))
        return -EEXIST;

    if (l->h.n < LEAF_CAP) {
        leaf_put(m, l, pos, start, end, value);
        m->count++;
        return 0;
    }

    /* A split needs one leaf and up to one inner node per level plus a
     * new root; allocate them all first so failure changes nothing. */
    struct inner *spare[MAX_HEIGHT + 1];
    unsigned nspare = 0, need = 1;
    for (int lv = (int)p.depth - 1; lv >= 0 && p.node[lv]->h.n == INNER_CAP; lv--)
        need++;
    struct leaf *r = leaf_new(m);
    if (!r)
        return -ENOMEM;
    for (; nspare < need; nspare++) {
        spare[nspare] = inner_new(m);
        if (!spare[nspare]) {
            while (nspare--) {
                inner_free(m, spare[nspare]);
            }
            leaf_free(m, r);
            return -ENOMEM;
        }
    }

    /* Ascending inserts at the right edge keep the old leaf full and
     * descending ones at the left edge leave it to the new key alone,
     * so sequential traffic fills leaves instead of halving them. */
    unsigned split;
    if (!l->next && pos == LEAF_CAP)
        split = LEAF_CAP;
    else if (!l->prev && pos == 0)
        split = 0;
    else
        split = LEAF_CAP / 2;
    leaf_move(m, r, 0, l, split, LEAF_CAP - split);
    r->h.n = (uint16_t)(LEAF_CAP - split);
    l->h.n = (uint16_t)split;
    if (pos < split || (split == 0 && pos == 0))
        leaf_put(m, l, pos, start, end, value);
    else
        leaf_put(m, r, pos - split, start, end, value);
    r->next = l->next;
    if (r->next)
        r->next->prev = r;
    r->prev = l;
    l->next = r;
    m->count++;

    insert_up(m, &p, (int)p.depth - 1, r->start[0], &r->h, spare, &nspare);
    /* Levels that turned out not to split return their spare nodes. */
    while (nspare--) {
        inner_free(m, spare[nspare]);
    }
    return 0;
}

/* Rebalances inner node @in (child @idx of @parent) after it lost a child. */
static void rebalance_inner(interval_map *m, struct path *p, int level)
{
    while (level > 0) {
        struct inner *in = p->node[level];
        if (in->h.n >= INNER_MIN)
            return;
        struct inner *par = p->node[level - 1];
        unsigned i = p->idx[level - 1];
        struct inner *left = i > 0 ? (struct inner *)par->child[i - 1] : NULL;
        struct inner *right = i + 1u < par->h.n ? (struct inner *)par->child[i + 1] : NULL;

        if (left && left->h.n > INNER_MIN) {
            /* Rotate the left sibling's last child through the parent. */
            inner_put(in, 0, 0, left->child[left->h.n - 1]);
            in->key[1] = par->key[i];
            par->key[i] = left->key[left->h.n - 1];
            left->h.n--;
            return;
        }
        if (right && right->h.n > INNER_MIN) {
            in->key[in->h.n] = par->key[i + 1];
            in->child[in->h.n] = right->child[0];
            in->h.n++;
            par->key[i + 1] = right->key[1];
            inner_drop(right, 0);
            return;
        }
        if (left) {
            /* Merge @in into its left sibling. */
            in->key[0] = par->key[i];
            memcpy(&left->key[left->h.n], in->key, in->h.n * sizeof(uint64_t));
            memcpy(&left->child[left->h.n], in->child, in->h.n * sizeof(struct node *));
            left->h.n = (uint16_t)(left->h.n + in->h.n);
            inner_drop(par, i);
            inner_free(m, in);
        } else {
            right->key[0] = par->key[i + 1];
            memcpy(&in->key[in->h.n], right->key, right->h.n * sizeof(uint64_t));
            memcpy(&in->child[in->h.n], right->child, right->h.n * sizeof(struct node *));
            in->h.n = (uint16_t)(in->h.n + right->h.n);
            inner_drop(par, i + 1);
            inner_free(m, right);
        }
        level--;
    }
    /* The root keeps any number of children; one child replaces it. */
    struct inner *root = (struct inner *)m->root;
    if (!root->h.leaf && root->h.n == 1) {
        m->root = root->child[0];
        m->height--;
        inner_free(m, root);
    }
}

/*
 * Removes entry @i of leaf @l, which @p leads to (the path descend()
 * filled), and rebalances. @value_out (may be NULL) receives its value.
 */
static void remove_rebalance(interval_map *m, struct path *p, struct leaf *l, unsigned i,
                             void *value_out)
{
    if (value_out && m->value_size)
        memcpy(value_out, leaf_val(m, l, i), m->value_size);
    leaf_move(m, l, i, l, i + 1, l->h.n - i - 1u);
    l->h.n--;
    m->count--;

    if (p->depth == 0) {
        if (l->h.n == 0)
            interval_map_clear(m); /* empty: every chunk goes back */
        return;
    }
    if (l->h.n >= LEAF_MIN)
        return;

    struct inner *par = p->node[p->depth - 1];
    unsigned ci = p->idx[p->depth - 1];
    struct leaf *left = ci > 0 ? (struct leaf *)par->child[ci - 1] : NULL;
    struct leaf *right = ci + 1u < par->h.n ? (struct leaf *)par->child[ci + 1] : NULL;

    if (left && left->h.n > LEAF_MIN) {
        leaf_move(m, l, 1, l, 0, l->h.n);
        leaf_move(m, l, 0, left, left->h.n - 1u, 1);
        l->h.n++;
        left->h.n--;
        par->key[ci] = l->start[0];
        return;
    }
    if (right && right->h.n > LEAF_MIN) {
        leaf_move(m, l, l->h.n, right, 0, 1);
        l->h.n++;
        leaf_move(m, right, 0, right, 1, right->h.n - 1u);
        right->h.n--;
        par->key[ci + 1] = right->start[0];
        return;
    }
    /* Merge with a sibling: the right one of the pair goes away. */
    struct leaf *keep = left ? left : l;
    struct leaf *gone = left ? l : right;
    unsigned gone_idx = left ? ci : ci + 1;
    leaf_move(m, keep, keep->h.n, gone, 0, gone->h.n);
    keep->h.n = (uint16_t)(keep->h.n + gone->h.n);
    keep->next = gone->next;
    if (keep->next)
        keep->next->prev = keep;
    inner_drop(par, gone_idx);
    leaf_free(m, gone);
    rebalance_inner(m, p, (int)p->depth - 1);
    return;
}

/*
 * Rebuilds the tree, packed, into new chunks. Returns false (the tree
 * unchanged) when memory for it is short: compaction is an optimisation.
 */
static bool rebuild(interval_map *m)
{
    const unsigned fill = LEAF_CAP - LEAF_CAP / 4; /* room for inserts */
    size_t n = m->count, count = (n + fill - 1) / fill;
    struct slab leaves, inners;
    struct node **nodes = malloc(count * sizeof(*nodes));
    uint64_t *mins = malloc(count * sizeof(*mins));
    unsigned height = 0;

    slab_init(&leaves, m->leaves.node_size);
    slab_init(&inners, m->inners.node_size);
    if (!nodes || !mins)
        goto fail;

    /* The leaves: entries in order, spread evenly (count >= 1: n > 0). */
    struct node *old = m->root;
    while (!old->leaf)
        old = ((struct inner *)old)->child[0];
    struct leaf *src = (struct leaf *)old, *prev = NULL;
    unsigned from = 0;
    for (size_t k = 0; k < count; k++) {
        struct leaf *l = slab_alloc(&leaves);
        if (!l)
            goto fail;
        l->h = (struct node){0, 1};
        l->prev = prev;
        l->next = NULL;
        if (prev)
            prev->next = l;
        unsigned want = (unsigned)(n / count + (k < n % count));
        while (l->h.n < want) {
            if (from == src->h.n) {
                src = src->next;
                from = 0;
            }
            unsigned take = src->h.n - from;
            if (take > want - l->h.n)
                take = want - l->h.n;
            leaf_move(m, l, l->h.n, src, from, take);
            l->h.n = (uint16_t)(l->h.n + take);
            from += take;
        }
        nodes[k] = &l->h;
        mins[k] = l->start[0];
        prev = l;
    }

    /* Inner levels, children spread evenly, until one node is left. */
    while (count > 1) {
        size_t parents = (count + fill - 1) / fill, c = 0;
        for (size_t k = 0; k < parents; k++) {
            struct inner *in = slab_alloc(&inners);
            if (!in)
                goto fail;
            in->h = (struct node){0, 0};
            unsigned want = (unsigned)(count / parents + (k < count % parents));
            uint64_t min = mins[c];
            for (unsigned j = 0; j < want; j++, c++) {
                in->key[j] = j ? mins[c] : 0;
                in->child[j] = nodes[c];
            }
            in->h.n = (uint16_t)want;
            nodes[k] = &in->h;
            mins[k] = min;
        }
        count = parents;
        height++;
    }

    struct node *root = nodes[0];
    free(nodes);
    free(mins);
    slab_release(&m->leaves);
    slab_release(&m->inners);
    m->leaves = leaves;
    m->inners = inners;
    m->root = root;
    m->height = height;
    return true;
fail:
    free(nodes);
    free(mins);
    slab_release(&leaves);
    slab_release(&inners);
    return false;
}

/* Compacts a map whose chunks hold four times what its nodes need (and
 * more than COMPACT_FROM): removes then cost O(1) amortized more, and a
 * map that shrank gives its memory back. */
static void maybe_compact(interval_map *m)
{
    size_t need = m->leaves.live * m->leaves.node_size + m->inners.live * m->inners.node_size;
    size_t held = m->leaves.held + m->inners.held;
    if (m->root && held > COMPACT_FROM && need < held / 4)
        rebuild(m);
}

static void remove_at(interval_map *m, struct path *p, struct leaf *l, unsigned i, void *value_out)
{
    remove_rebalance(m, p, l, i, value_out);
    maybe_compact(m);
}

int interval_map_remove(interval_map *m, uint64_t start, void *value_out)
{
    struct path p;

    if (!m->root)
        return -ENOENT;
    struct leaf *l = descend(m, start, &p);
    unsigned i = count_le(l->start, l->h.n, start);
    if (i == 0 || l->start[i - 1] != start)
        return -ENOENT;
    remove_at(m, &p, l, i - 1, value_out);
    return 0;
}

int interval_map_remove_within(interval_map *m, uint64_t first, uint64_t last,
                               interval_map_removed_fn fn, void *opaque)
{
    unsigned char value[INTERVAL_MAP_MAX_VALUE > 0 ? INTERVAL_MAP_MAX_VALUE : 1];
    u64_range r, last_r;
    struct path p;

    if (first > last)
        return -EINVAL;
    if (!m->root)
        return 0;

    /* The usual request removes exactly one entry: find it and remove
     * it through one descent. */
    struct leaf *l = descend(m, first, &p);
    unsigned i = count_le(l->start, l->h.n, first);
    if (i > 0 && l->end[i - 1] >= first) {
        i--; /* the entry containing first */
        if (l->start[i] < first)
            return -ERANGE;
    } else if (i == l->h.n || (i == 0 && l->prev && l->prev->end[l->prev->h.n - 1] >= first)) {
        l = NULL; /* the first entry to look at sits in a neighbouring leaf */
    } else if (l->start[i] > last) {
        return 0;
    }
    if (l && l->end[i] >= last) {
        if (l->end[i] > last)
            return -ERANGE;
        r = (u64_range){l->start[i], l->end[i]};
        remove_at(m, &p, l, i, value);
        if (fn)
            fn(opaque, &r, value);
        return 1;
    }

    /* Several entries (or a leaf boundary): check both ends, then remove
     * one entry at a time. Every entry between the first and the last
     * overlapping ones lies wholly inside the range. */
    if (!interval_map_find_first(m, first, last, &r))
        return 0;
    if (r.first < first)
        return -ERANGE;
    if (r.last > last || (interval_map_find(m, last, &last_r) && last_r.last > last))
        return -ERANGE;
    int removed = 0;
    for (;;) {
        interval_map_remove(m, r.first, value);
        removed++;
        if (fn)
            fn(opaque, &r, value);
        if (r.last >= last || !interval_map_find_first(m, r.last + 1, last, &r))
            break;
    }
    return removed;
}

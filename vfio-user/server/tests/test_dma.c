/* SPDX-License-Identifier: MIT */
/* The DMA region table: map rules, exact and partial unmap, dirty logging. */
#include "raw.h"

#define KIB 1024ull
#define MIB (1024ull * KIB)

static const vus_map_rules own_rules = {
    .max_regions = 1000,
    .max_region_size = VUS_MAX_REGION_SIZE,
    .overlap_errno = EEXIST,
    .identical_ok = false,
    .limit_errno = ENOSPC,
};

static const vus_map_rules peer_rules = {
    .max_regions = 16,
    .max_region_size = VUS_MAX_REGION_SIZE,
    .overlap_errno = EINVAL,
    .identical_ok = true,
    .limit_errno = EINVAL,
};

static vus_dma d;

static void setup(void)
{
    cr_assert_eq(vus_dma_init(&d), 0);
}

static void teardown(void)
{
    vus_dma_destroy(&d);
}

static size_t count(void)
{
    return interval_map_count(d.map);
}

static bool mapped(uint64_t first, uint64_t last)
{
    u64_range key;
    return interval_map_find(d.map, first, &key) && key.first == first && key.last == last;
}

TestSuite(dma, .init = setup, .fini = teardown);

Test(dma, maps_a_region_without_fd_and_finds_it)
{
    cr_assert_eq(vus_dma_map(&d, 0x1000, 0x2000, -1, 0, 3, &own_rules), 0);
    cr_assert(mapped(0x1000, 0x2fff));
    cr_assert_null(interval_map_find(d.map, 0x3000, NULL));
}

Test(dma, refuses_zero_size_overflow_and_unknown_prot)
{
    cr_assert_eq(vus_dma_map(&d, 0x1000, 0, -1, 0, 3, &own_rules), -EINVAL);
    cr_assert_eq(vus_dma_map(&d, UINT64_MAX, 2, -1, 0, 3, &own_rules), -EINVAL);
    cr_assert_eq(vus_dma_map(&d, 0x1000, 0x1000, -1, 0, 4, &own_rules), -EINVAL);
    cr_assert_eq(count(), 0);
}

Test(dma, refuses_an_overlap_with_the_profile_errno)
{
    cr_assert_eq(vus_dma_map(&d, 0x10000, 0x10000, -1, 0, 3, &own_rules), 0);
    cr_assert_eq(vus_dma_map(&d, 0x18000, 0x10000, -1, 0, 3, &own_rules), -EEXIST);
    cr_assert_eq(vus_dma_map(&d, 0x18000, 0x10000, -1, 0, 3, &peer_rules), -EINVAL);
    cr_assert_eq(count(), 1);
}

Test(dma, identical_remap_succeeds_only_where_the_peer_allows_it)
{
    cr_assert_eq(vus_dma_map(&d, 0x10000, 0x10000, -1, 0, 3, &peer_rules), 0);
    cr_assert_eq(vus_dma_map(&d, 0x10000, 0x10000, -1, 0, 3, &peer_rules), 0);
    cr_assert_eq(vus_dma_map(&d, 0x10000, 0x10000, -1, 0, 3, &own_rules), -EEXIST);
    cr_assert_eq(count(), 1);
}

Test(dma, refuses_the_seventeenth_region_of_a_16_region_peer)
{
    for (uint64_t i = 0; i < 16; i++)
        cr_assert_eq(vus_dma_map(&d, i * 0x2000, 0x1000, -1, 0, 3, &peer_rules), 0);
    cr_assert_eq(vus_dma_map(&d, 16 * 0x2000, 0x1000, -1, 0, 3, &peer_rules), -EINVAL);
    cr_assert_eq(count(), 16);
}

Test(dma, refuses_a_region_larger_than_8_tib)
{
    cr_assert_eq(vus_dma_map(&d, 0, (8ull << 40) + 4096, -1, 0, 3, &own_rules), -ENOSPC);
    cr_assert_eq(vus_dma_map(&d, 0, 8ull << 40, -1, 0, 3, &own_rules), 0);
}

Test(dma, refuses_an_fd_smaller_than_the_region)
{
    int fd = test_memfd(64 * KIB);
    cr_assert_eq(vus_dma_map(&d, 0, 128 * KIB, fd, 0, 3, &own_rules), -EINVAL);
    cr_assert_eq(vus_dma_map(&d, 0, 64 * KIB, fd, 4096, 3, &own_rules), -EINVAL);
    cr_assert_eq(vus_dma_map(&d, 0, 60 * KIB, fd, 4096, 3, &own_rules), 0);
    close(fd);
}

Test(dma, maps_the_fd_so_writes_reach_the_client_memory)
{
    int fd = test_memfd(64 * KIB);
    uint8_t *view = mmap(NULL, 64 * KIB, PROT_READ, MAP_SHARED, fd, 0);
    vus_region *r;

    cr_assert_neq(view, MAP_FAILED);
    cr_assert_eq(vus_dma_map(&d, 0x100000, 32 * KIB, fd, 16 * KIB, 3, &own_rules), 0);
    close(fd); /* the mapping keeps the memory */
    r = interval_map_find(d.map, 0x100000, NULL);
    cr_assert_not_null(r->host);
    r->host[5] = 0xab;
    cr_assert_eq(view[16 * KIB + 5], 0xab);
    munmap(view, 64 * KIB);
}

Test(dma, exact_unmap_needs_the_exact_region)
{
    cr_assert_eq(vus_dma_map(&d, 0x100000, 0x200000, -1, 0, 3, &own_rules), 0);
    cr_assert_eq(vus_dma_unmap_exact(&d, 0x100000, 0x100000), -ENOENT);
    cr_assert_eq(vus_dma_unmap_exact(&d, 0x200000, 0x100000), -ENOENT);
    cr_assert_eq(vus_dma_unmap_exact(&d, 0x100000, 0x200000), 0);
    cr_assert_eq(count(), 0);
}

Test(dma, partial_unmap_of_the_middle_leaves_two_pieces)
{
    cr_assert_eq(vus_dma_map(&d, 0x100000, 0x300000, -1, 0, 3, &own_rules), 0);
    cr_assert_eq(vus_dma_unmap_range(&d, 0x200000, 0x2fffff), 0);
    cr_assert_eq(count(), 2);
    cr_assert(mapped(0x100000, 0x1fffff));
    cr_assert(mapped(0x300000, 0x3fffff));
}

Test(dma, partial_unmap_spanning_regions_trims_both_ends)
{
    cr_assert_eq(vus_dma_map(&d, 0x0, 0x4000, -1, 0, 3, &own_rules), 0);
    cr_assert_eq(vus_dma_map(&d, 0x4000, 0x4000, -1, 0, 3, &own_rules), 0);
    cr_assert_eq(vus_dma_map(&d, 0x10000, 0x4000, -1, 0, 3, &own_rules), 0);
    cr_assert_eq(vus_dma_unmap_range(&d, 0x2000, 0x10fff), 0);
    cr_assert_eq(count(), 2);
    cr_assert(mapped(0x0, 0x1fff));
    cr_assert(mapped(0x11000, 0x13fff));
}

Test(dma, partial_unmap_of_unmapped_space_is_enoent)
{
    cr_assert_eq(vus_dma_map(&d, 0x10000, 0x1000, -1, 0, 3, &own_rules), 0);
    cr_assert_eq(vus_dma_unmap_range(&d, 0x20000, 0x2ffff), -ENOENT);
    cr_assert_eq(count(), 1);
}

Test(dma, partial_unmap_of_a_mapped_region_keeps_the_rest_reachable)
{
    int fd = test_memfd(16 * 4096);
    uint8_t *view = mmap(NULL, 16 * 4096, PROT_READ, MAP_SHARED, fd, 0);
    vus_region *r;
    u64_range key;

    cr_assert_neq(view, MAP_FAILED);
    cr_assert_eq(vus_dma_map(&d, 0x100000, 16 * 4096, fd, 0, 3, &own_rules), 0);
    cr_assert_eq(vus_dma_unmap_range(&d, 0x100000 + 4 * 4096, 0x100000 + 8 * 4096 - 1), 0);
    r = interval_map_find(d.map, 0x100000 + 12 * 4096, &key);
    cr_assert_not_null(r);
    cr_assert_eq(key.first, 0x100000 + 8 * 4096);
    r->host[4 * 4096] = 0x5a; /* IOVA 0x100000 + 12 pages: still the right byte of the fd */
    cr_assert_eq(view[12 * 4096], 0x5a);
    r = interval_map_find(d.map, 0x100000, NULL);
    r->host[4095] = 0x33;
    cr_assert_eq(view[4095], 0x33);
    munmap(view, 16 * 4096);
    close(fd);
}

Test(dma, refuses_to_cut_a_mapped_region_off_a_page_boundary)
{
    int fd = test_memfd(4 * 4096);

    cr_assert_eq(vus_dma_map(&d, 0x100000, 4 * 4096, fd, 0, 3, &own_rules), 0);
    cr_assert_eq(vus_dma_unmap_range(&d, 0x100800, 0x101fff), -EINVAL);
    cr_assert_eq(count(), 1);
    cr_assert_eq(vus_dma_unmap_range(&d, 0x101000, 0x101fff), 0);
    cr_assert_eq(count(), 2);
    close(fd);
}

Test(dma, collects_dirty_pages_and_clears_them_on_read)
{
    u64_range key;
    vus_region *r;
    uint64_t words[1] = {0};

    cr_assert_eq(vus_dma_map(&d, 0x100000, 16 * 4096, -1, 0, 3, &own_rules), 0);
    cr_assert_eq(vus_dma_log_start(&d, 4096), 0);
    r = interval_map_find(d.map, 0x100000, &key);
    vus_dma_mark_dirty(&d, r, key, 0x100000 + 3 * 4096, 0x100000 + 3 * 4096 + 10);
    vus_dma_mark_dirty(&d, r, key, 0x100000 + 9 * 4096 - 1, 0x100000 + 9 * 4096);
    cr_assert_eq(vus_dma_collect(&d, 0x100000, 16 * 4096, 4096, words, 1), 0);
    cr_assert_eq(words[0], (1u << 3) | (1u << 8) | (1u << 9));
    words[0] = 0;
    cr_assert_eq(vus_dma_collect(&d, 0x100000, 16 * 4096, 4096, words, 1), 0);
    cr_assert_eq(words[0], 0);
}

Test(dma, collects_at_a_coarser_page_size)
{
    u64_range key;
    vus_region *r;
    uint64_t words[1] = {0};

    cr_assert_eq(vus_dma_map(&d, 0, 64 * 4096, -1, 0, 3, &own_rules), 0);
    cr_assert_eq(vus_dma_log_start(&d, 4096), 0);
    r = interval_map_find(d.map, 0, &key);
    vus_dma_mark_dirty(&d, r, key, 17 * 4096, 17 * 4096);
    cr_assert_eq(vus_dma_collect(&d, 0, 64 * 4096, 16 * 4096, words, 1), 0);
    cr_assert_eq(words[0], 1u << 1);
}

Test(dma, a_page_partly_outside_the_range_keeps_its_bit)
{
    u64_range key;
    vus_region *r;
    uint64_t words[1] = {0};

    cr_assert_eq(vus_dma_map(&d, 0, 4 * 4096, -1, 0, 3, &own_rules), 0);
    cr_assert_eq(vus_dma_log_start(&d, 4096), 0);
    r = interval_map_find(d.map, 0, &key);
    vus_dma_mark_dirty(&d, r, key, 4096, 4096);
    cr_assert_eq(vus_dma_collect(&d, 4096, 2048, 512, words, 1), 0);
    cr_assert_eq(words[0], 0xf);
    words[0] = 0;
    cr_assert_eq(vus_dma_collect(&d, 0, 4 * 4096, 4096, words, 1), 0);
    cr_assert_eq(words[0], 1u << 1);
}

Test(dma, splitting_a_region_keeps_the_dirty_bits_of_both_pieces)
{
    u64_range key;
    vus_region *r;
    uint64_t words[1] = {0};

    cr_assert_eq(vus_dma_map(&d, 0, 16 * 4096, -1, 0, 3, &own_rules), 0);
    cr_assert_eq(vus_dma_log_start(&d, 4096), 0);
    r = interval_map_find(d.map, 0, &key);
    vus_dma_mark_dirty(&d, r, key, 1 * 4096, 1 * 4096);
    vus_dma_mark_dirty(&d, r, key, 12 * 4096, 12 * 4096);
    cr_assert_eq(vus_dma_unmap_range(&d, 4 * 4096, 8 * 4096 - 1), 0);
    cr_assert_eq(vus_dma_collect(&d, 0, 16 * 4096, 4096, words, 1), 0);
    cr_assert_eq(words[0], (1u << 1) | (1u << 12));
}

Test(dma, logging_stop_forgets_the_bitmaps)
{
    uint64_t words[1] = {0};
    u64_range key;
    vus_region *r;

    cr_assert_eq(vus_dma_map(&d, 0, 4096, -1, 0, 3, &own_rules), 0);
    cr_assert_eq(vus_dma_log_start(&d, 4096), 0);
    r = interval_map_find(d.map, 0, &key);
    vus_dma_mark_dirty(&d, r, key, 0, 0);
    vus_dma_log_stop(&d);
    cr_assert_null(r->dirty);
    cr_assert_eq(vus_dma_collect(&d, 0, 4096, 4096, words, 1), 0);
    cr_assert_eq(words[0], 0);
}

Test(dma, a_region_costs_at_most_96_bytes_of_table)
{
    vus_map_rules many = own_rules;

    many.max_regions = 1u << 20;
    for (uint64_t i = 0; i < 100000; i++)
        cr_assert_eq(vus_dma_map(&d, i * 0x2000, 0x1000, -1, 0, 3, &many), 0);
    cr_assert_leq(interval_map_memory(d.map) / count(), 96);
}

Test(dma, dirty_bitmaps_stay_within_the_connection_budget)
{
    cr_assert_eq(vus_dma_map(&d, 0, 8ull << 40, -1, 0, 3, &own_rules), 0);
    cr_assert_eq(vus_dma_map(&d, 8ull << 40, 8ull << 40, -1, 0, 3, &own_rules), 0);
    cr_assert_eq(vus_dma_map(&d, 16ull << 40, 8ull << 40, -1, 0, 3, &own_rules), 0);
    cr_assert_eq(vus_dma_log_start(&d, 4096), -ENOMEM, "768 MiB of bitmaps");
    cr_assert_not(d.logging);
    cr_assert_eq(d.dirty_bytes, 0);
    cr_assert_eq(vus_dma_unmap_exact(&d, 16ull << 40, 8ull << 40), 0);
    cr_assert_eq(vus_dma_log_start(&d, 4096), 0);
    cr_assert_eq(d.dirty_bytes, 512ull << 20);
    cr_assert_eq(vus_dma_map(&d, 16ull << 40, 4096, -1, 0, 3, &own_rules), -ENOMEM);
    vus_dma_log_stop(&d);
    cr_assert_eq(d.dirty_bytes, 0);
}

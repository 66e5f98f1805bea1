/* SPDX-License-Identifier: MIT */
#include <criterion/criterion.h>
#include <errno.h>
#include <glib.h>
#include <stdlib.h>
#include <string.h>

#include "shared.h"

#define PG 4096u

static unsigned char ram0[16 * PG], ram1[16 * PG];

/* Two regions: [0, 64K) and [64K, 128K) contiguous, then a hole, then
 * [1M, 1M + 64K) without a host mapping. */
static guest_mem *make(void)
{
    guest_mem *gm = guest_mem_new(PG);
    cr_assert_not_null(gm);
    cr_assert_eq(guest_mem_add(gm, 0, sizeof(ram0), 10, 0, ram0), 0);
    cr_assert_eq(guest_mem_add(gm, sizeof(ram0), sizeof(ram1), 11, 0x1000, ram1), 0);
    cr_assert_eq(guest_mem_add(gm, 0x100000, 16 * PG, -1, 0, NULL), 0);
    return gm;
}

Test(guest_mem, refuses_bad_page_size_and_bad_regions)
{
    cr_assert_null(guest_mem_new(0));
    cr_assert_null(guest_mem_new(3000));
    guest_mem *gm = make();
    cr_assert_eq(guest_mem_add(gm, 0x1000, PG, -1, 0, NULL), -EEXIST);
    cr_assert_eq(guest_mem_add(gm, 0x200000, 0, -1, 0, NULL), -EINVAL);
    cr_assert_eq(guest_mem_add(gm, 0x200001, PG, -1, 0, NULL), -EINVAL);
    cr_assert_eq(guest_mem_add(gm, UINT64_MAX - PG + 1, 2 * PG, -1, 0, NULL), -EINVAL);
    cr_assert_eq(guest_mem_add(gm, UINT64_MAX - PG + 1, PG, -1, 0, NULL), 0);
    cr_assert_eq(guest_mem_count(gm), 4);
    cr_assert_eq(guest_mem_remove(gm, 0x1000), -ENOENT);
    cr_assert_eq(guest_mem_remove(gm, UINT64_MAX - PG + 1), 0);
    guest_mem_free(gm);
}

typedef struct piece {
    uint64_t gpa, len, offset;
    int fd;
} piece;

static int collect_piece(void *opaque, const guest_mem_region *r, uint64_t gpa, uint64_t len,
                         uint64_t offset)
{
    GArray *a = opaque;
    piece p = {gpa, len, offset, r->fd};
    g_array_append_val(a, p);
    return 0;
}

Test(guest_mem, splits_a_range_at_region_boundaries)
{
    guest_mem *gm = make();
    GArray *a = g_array_new(FALSE, FALSE, sizeof(piece));
    cr_assert_eq(guest_mem_for_each_piece(gm, 0xf000, 0x10fff, collect_piece, a), 0);
    cr_assert_eq(a->len, 2);
    piece *p = &g_array_index(a, piece, 0);
    cr_assert_eq(p[0].gpa, 0xf000);
    cr_assert_eq(p[0].len, 0x1000);
    cr_assert_eq(p[0].offset, 0xf000);
    cr_assert_eq(p[0].fd, 10);
    cr_assert_eq(p[1].gpa, 0x10000);
    cr_assert_eq(p[1].len, 0x1000);
    cr_assert_eq(p[1].offset, 0);
    cr_assert_eq(p[1].fd, 11);
    g_array_free(a, TRUE);
    guest_mem_free(gm);
}

Test(guest_mem, range_reaching_outside_ram_is_refused_before_any_piece)
{
    guest_mem *gm = make();
    GArray *a = g_array_new(FALSE, FALSE, sizeof(piece));
    cr_assert_eq(guest_mem_for_each_piece(gm, 0x1f000, 0x20fff, collect_piece, a), -EFAULT);
    cr_assert_eq(a->len, 0);
    cr_assert_eq(guest_mem_for_each_piece(gm, 5, 4, collect_piece, a), -EINVAL);
    g_array_free(a, TRUE);
    guest_mem_free(gm);
}

Test(guest_mem, rw_crosses_regions_and_marks_written_pages_dirty)
{
    guest_mem *gm = make();
    unsigned char buf[2 * PG];
    memset(buf, 0xab, sizeof(buf));
    cr_assert_eq(guest_mem_rw(gm, 0x10000 - PG / 2, buf, PG, true), 0);
    cr_assert_eq(ram0[sizeof(ram0) - 1], 0xab);
    cr_assert_eq(ram1[0], 0xab);
    cr_assert_eq(ram1[PG / 2], 0);
    cr_assert_eq(guest_mem_dirty_count(gm), 2);
    cr_assert(guest_mem_dirty_test(gm, 0xf000));
    cr_assert(guest_mem_dirty_test(gm, 0x10000));
    memset(buf, 0, sizeof(buf));
    cr_assert_eq(guest_mem_rw(gm, 0x10000 - PG / 2, buf, PG, false), 0);
    cr_assert_eq(buf[0], 0xab);
    cr_assert_eq(buf[PG - 1], 0xab);
    /* No host mapping, or not RAM: refused, nothing copied. */
    cr_assert_eq(guest_mem_rw(gm, 0x100000, buf, 16, true), -EFAULT);
    cr_assert_eq(guest_mem_rw(gm, 0x1f000, buf, 2 * PG, true), -EFAULT);
    cr_assert_eq(ram1[sizeof(ram1) - 1], 0);
    cr_assert_eq(guest_mem_rw(gm, UINT64_MAX, buf, 2, false), -EFAULT);
    guest_mem_free(gm);
}

Test(guest_mem, fold_at_log_page_size_is_exact)
{
    guest_mem *gm = make();
    uint64_t bits[1] = {0x5}; /* pages 0 and 2 */
    cr_assert_eq(guest_mem_dirty_fold(gm, 0x3000, PG, bits, 0, 3), 0);
    cr_assert_eq(guest_mem_dirty_count(gm), 2);
    cr_assert(guest_mem_dirty_test(gm, 0x3000));
    cr_assert_not(guest_mem_dirty_test(gm, 0x4000));
    cr_assert(guest_mem_dirty_test(gm, 0x5000));
    guest_mem_free(gm);
}

Test(guest_mem, fold_across_regions_and_coarser_pgsize_marks_every_covered_page)
{
    guest_mem *gm = make();
    uint64_t bits[1] = {0x2}; /* the second 64 KiB page: [64K, 128K) */
    cr_assert_eq(guest_mem_dirty_fold(gm, 0, 0x10000, bits, 0, 2), 0);
    cr_assert_eq(guest_mem_dirty_count(gm), 16);
    cr_assert(guest_mem_dirty_test(gm, 0x10000));
    cr_assert(guest_mem_dirty_test(gm, 0x1f000));
    cr_assert_not(guest_mem_dirty_test(gm, 0xf000));
    guest_mem_dirty_clear(gm);
    /* Straddling two regions at the log's page size takes the slow path. */
    uint64_t all[1] = {0xf};
    cr_assert_eq(guest_mem_dirty_fold(gm, 0xe000, PG, all, 0, 4), 0);
    cr_assert_eq(guest_mem_dirty_count(gm), 4);
    cr_assert(guest_mem_dirty_test(gm, 0x11000));
    /* Unaligned gpa: every touched page is marked. */
    guest_mem_dirty_clear(gm);
    uint64_t one[1] = {1};
    cr_assert_eq(guest_mem_dirty_fold(gm, 0x800, PG, one, 0, 1), 0);
    cr_assert_eq(guest_mem_dirty_count(gm), 2);
    cr_assert_eq(guest_mem_dirty_fold(gm, 0, 3, one, 0, 1), -EINVAL);
    cr_assert_eq(guest_mem_dirty_fold(gm, UINT64_MAX - PG, PG, all, 0, 4), -EINVAL);
    guest_mem_free(gm);
}

static int collect_page(void *opaque, uint64_t gpa)
{
    g_array_append_val((GArray *)opaque, gpa);
    return 0;
}

Test(guest_mem, fold_from_a_bit_offset_takes_only_the_named_bits)
{
    guest_mem *gm = make();
    uint64_t bits[3] = {0, 0, 0};
    bitmap_set_range(bits, 70, 1);  /* the 4th page of the range: 0x4000 */
    bitmap_set_range(bits, 66, 1);  /* before first_bit: ignored */
    bitmap_set_range(bits, 140, 1); /* past the range: ignored */
    cr_assert_eq(guest_mem_dirty_fold(gm, 0x1000, PG, bits, 67, 10), 0);
    cr_assert_eq(guest_mem_dirty_count(gm), 1);
    cr_assert(guest_mem_dirty_test(gm, 0x4000));
    guest_mem_dirty_clear(gm);
    /* Slow path (a hole after the region) with an offset too. */
    cr_assert_eq(guest_mem_dirty_fold(gm, 0x1c000, PG, bits, 67, 10), 0);
    cr_assert_eq(guest_mem_dirty_count(gm), 1);
    cr_assert(guest_mem_dirty_test(gm, 0x1f000));
    guest_mem_free(gm);
}

Test(guest_mem, collect_lists_dirty_pages_in_order_and_clears)
{
    guest_mem *gm = make();
    guest_mem_dirty_mark(gm, 0x10fff, 0x11000);
    guest_mem_dirty_mark(gm, 0x100000, 0x100000);
    cr_assert_eq(guest_mem_dirty_mark(gm, 0x40000, 0x50000), 0); /* a hole */
    guest_mem_dirty_mark(gm, 0x2000, 0x2000);
    GArray *a = g_array_new(FALSE, FALSE, sizeof(uint64_t));
    cr_assert_eq(guest_mem_dirty_collect(gm, true, collect_page, a), 0);
    cr_assert_eq(a->len, 4);
    uint64_t want[] = {0x2000, 0x10000, 0x11000, 0x100000};
    for (unsigned i = 0; i < 4; i++)
        cr_assert_eq(g_array_index(a, uint64_t, i), want[i]);
    cr_assert_eq(guest_mem_dirty_count(gm), 0);
    g_array_free(a, TRUE);
    guest_mem_free(gm);
}

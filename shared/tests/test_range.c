/* SPDX-License-Identifier: MIT */
#include <criterion/criterion.h>
#include <errno.h>

#include "shared.h"

Test(u64_range, from_size_builds_inclusive_range)
{
    u64_range r;
    cr_assert_eq(u64_range_from_size(0x1000, 0x1000, &r), 0);
    cr_assert_eq(r.first, 0x1000);
    cr_assert_eq(r.last, 0x1fff);
}

Test(u64_range, from_size_refuses_zero_size)
{
    u64_range r = {1, 2};
    cr_assert_eq(u64_range_from_size(5, 0, &r), -EINVAL);
    cr_assert_eq(r.first, 1);
}

Test(u64_range, from_size_reaches_top_of_space_without_overflow)
{
    u64_range r;
    cr_assert_eq(u64_range_from_size(UINT64_MAX - 0xfff, 0x1000, &r), 0);
    cr_assert_eq(r.last, UINT64_MAX);
    cr_assert_eq(u64_range_from_size(UINT64_MAX, 1, &r), 0);
    cr_assert_eq(r.first, UINT64_MAX);
    cr_assert_eq(r.last, UINT64_MAX);
}

Test(u64_range, from_size_detects_overflow_past_top)
{
    u64_range r;
    cr_assert_eq(u64_range_from_size(UINT64_MAX - 0xfff, 0x1001, &r), -EOVERFLOW);
    cr_assert_eq(u64_range_from_size(2, UINT64_MAX, &r), -EOVERFLOW);
    cr_assert_eq(u64_range_from_size(1, UINT64_MAX, &r), 0);
    cr_assert_eq(r.last, UINT64_MAX);
    cr_assert_eq(u64_range_from_size(0, UINT64_MAX, &r), 0);
    cr_assert_eq(r.last, UINT64_MAX - 1);
}

Test(u64_range, size_of_whole_space_does_not_fit)
{
    uint64_t size = 42;
    cr_assert_eq(u64_range_size((u64_range){0, UINT64_MAX}, &size), -EOVERFLOW);
    cr_assert_eq(size, 42);
    cr_assert_eq(u64_range_size((u64_range){1, UINT64_MAX}, &size), 0);
    cr_assert_eq(size, UINT64_MAX);
    cr_assert_eq(u64_range_size((u64_range){7, 7}, &size), 0);
    cr_assert_eq(size, 1);
}

Test(u64_range, overlap_and_cover_at_extremes)
{
    u64_range all = {0, UINT64_MAX};
    u64_range top = {UINT64_MAX, UINT64_MAX};
    u64_range bottom = {0, 0};
    cr_assert(u64_range_overlaps(all, top));
    cr_assert(u64_range_overlaps(all, bottom));
    cr_assert_not(u64_range_overlaps(top, bottom));
    cr_assert(u64_range_covers(all, top));
    cr_assert_not(u64_range_covers(top, all));
    cr_assert(u64_range_contains(all, UINT64_MAX));
    cr_assert_not(u64_range_valid((u64_range){2, 1}));
}

Test(u64_range, intersect_gives_shared_part)
{
    u64_range out;
    cr_assert(u64_range_intersect((u64_range){0, 100}, (u64_range){50, UINT64_MAX}, &out));
    cr_assert_eq(out.first, 50);
    cr_assert_eq(out.last, 100);
    cr_assert_not(u64_range_intersect((u64_range){0, 49}, (u64_range){50, 60}, &out));
}

Test(u64_range, alignment_counts_end_of_space_as_aligned)
{
    cr_assert(u64_range_aligned((u64_range){0x1000, 0x1fff}, 0x1000));
    cr_assert_not(u64_range_aligned((u64_range){0x1000, 0x1ffe}, 0x1000));
    cr_assert_not(u64_range_aligned((u64_range){0x1001, 0x1fff}, 0x1000));
    cr_assert(u64_range_aligned((u64_range){0, UINT64_MAX}, 0x1000));
    cr_assert(u64_range_aligned((u64_range){3, 4}, 1));
}

Test(u64_range, add_overflow_helper)
{
    uint64_t s = 0;
    cr_assert_not(u64_add_overflows(UINT64_MAX - 1, 1, &s));
    cr_assert_eq(s, UINT64_MAX);
    cr_assert(u64_add_overflows(UINT64_MAX, 1, &s));
    cr_assert_eq(s, UINT64_MAX);
}

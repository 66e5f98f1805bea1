/* SPDX-License-Identifier: MIT */
/* Inclusive u64 ranges: every end + 1 and start + size - 1 is checked. */
#include <errno.h>

#include "shared.h"

int u64_range_from_size(uint64_t start, uint64_t size, u64_range *out)
{
    uint64_t last;

    if (size == 0)
        return -EINVAL;
    if (u64_add_overflows(start, size - 1, &last))
        return -EOVERFLOW;
    out->first = start;
    out->last = last;
    return 0;
}

int u64_range_size(u64_range r, uint64_t *size)
{
    if (r.first == 0 && r.last == UINT64_MAX)
        return -EOVERFLOW;
    *size = r.last - r.first + 1;
    return 0;
}

bool u64_range_intersect(u64_range a, u64_range b, u64_range *out)
{
    if (!u64_range_overlaps(a, b))
        return false;
    out->first = a.first > b.first ? a.first : b.first;
    out->last = a.last < b.last ? a.last : b.last;
    return true;
}

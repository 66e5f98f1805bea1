/* SPDX-License-Identifier: MIT */
/*
 * translate_check.h - re-runs the device accesses of a QEMU trace
 * (`virtio_iommu_translate` lines) through viommu_translate() and
 * compares each result with what QEMU answered.
 *
 * QEMU prints `virtio_iommu_translate_out` only for an access it
 * translated through a mapping; an access without one was either in
 * bypass or refused. So an access agrees with QEMU when
 *   - QEMU printed translate_out ADDR -> GPA: ours translated through a
 *     mapping to the same GPA;
 *   - QEMU printed none: ours was in bypass or refused.
 * Accesses are paired with their result by endpoint, since the lines of
 * different threads interleave.
 */
#ifndef VIOMMU_CLI_TRANSLATE_CHECK_H
#define VIOMMU_CLI_TRANSLATE_CHECK_H

#include <stdbool.h>
#include <stdint.h>

#include "qemu_log.h"
#include "viommu.h"

/** What went differently for one access. */
typedef struct translate_mismatch {
    uint64_t line; /* the translate line */
    uint32_t endpoint;
    uint64_t addr;
    uint32_t access; /* VIOMMU_ACCESS_* */
    bool qemu_translated;
    uint64_t qemu_gpa; /* when qemu_translated */
    int ours;          /* 0: translated, else viommu_translate()'s negative errno */
    bool ours_bypass;
    uint64_t ours_gpa; /* when ours == 0 */
} translate_mismatch;

typedef void (*translate_mismatch_fn)(void *opaque, const translate_mismatch *m);

/** Counters of a check. */
typedef struct translate_check_stats {
    uint64_t accesses;   /* translate lines checked */
    uint64_t translated; /* QEMU printed translate_out and we agree */
    uint64_t unmapped;   /* QEMU printed none and we bypassed or refused */
    uint64_t mismatches;
    uint64_t unpaired; /* translate_out lines without a pending access */
    uint64_t skipped;  /* accesses with flag 0 (no access to check) */
} translate_check_stats;

typedef struct translate_check translate_check;

/**
 * translate_check_new - a checker reporting each mismatch to @fn (may be
 * NULL). Free with translate_check_free().
 */
translate_check *translate_check_new(translate_mismatch_fn fn, void *opaque);

/** translate_check_free - frees @tc; NULL is allowed. */
void translate_check_free(translate_check *tc);

/**
 * translate_check_event - feeds one translate or translate_out event;
 * translate lines are run through viommu_translate() on @dev at once.
 * Other event types are ignored.
 *
 * Returns 0, or -ENOMEM.
 */
int translate_check_event(translate_check *tc, viommu *dev, const qemu_log_event *ev);

/** translate_check_finish - settles the accesses still waiting for a result (end of trace). */
void translate_check_finish(translate_check *tc);

/** translate_check_get_stats - the counters so far. */
void translate_check_get_stats(const translate_check *tc, translate_check_stats *out);

#endif

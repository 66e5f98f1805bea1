/* SPDX-License-Identifier: MIT */
/*
 * replay_print.h - the output of `viommu replay`: one line per request
 * (readable, or a JSON object), translation mismatches, and the summary.
 *
 * JSON objects are one per line. A request object has "seq", "line",
 * "batch", "type" and "status" (the spec's name without prefix: "OK",
 * "RANGE", ...; "NONE" when the device returned the buffers unwritten),
 * and those of "domain", "endpoint", "virt_start", "virt_end",
 * "phys_start", "flags" that its type has; addresses are strings
 * ("0x1000") since JSON readers lose 64-bit integers above 2^53. A
 * successful PROBE adds "probe_matches_trace". The summary is
 * {"summary": {...}}, a mismatch {"translate_mismatch": {...}}.
 */
#ifndef VIOMMU_CLI_REPLAY_PRINT_H
#define VIOMMU_CLI_REPLAY_PRINT_H

#include <stdbool.h>
#include <stdio.h>

#include "replay.h"
#include "translate_check.h"

/** replay_print_request - one request and the device's answer. */
void replay_print_request(FILE *f, const replay_request *r, bool json);

/** replay_print_mismatch - an access the device translated differently from QEMU. */
void replay_print_mismatch(FILE *f, const translate_mismatch *m, bool json);

/**
 * replay_print_summary - the totals; @tc is NULL when translations were
 * not checked. @all_ok: every request succeeded and nothing differed.
 */
void replay_print_summary(FILE *f, const replay_summary *s, const translate_check_stats *tc,
                          bool all_ok, bool json);

#endif

/* SPDX-License-Identifier: MIT */
/* Tests of the translation check: device accesses compared with QEMU's results. */
#include "translate_check.h"

#include <criterion/criterion.h>
#include <endian.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "replay.h"

#ifndef TEST_DATA_DIR
#error "TEST_DATA_DIR must name the directory holding the traces"
#endif

typedef struct mismatches {
    translate_mismatch last;
    unsigned count;
} mismatches;

static void on_mismatch(void *opaque, const translate_mismatch *m)
{
    mismatches *mm = opaque;

    mm->last = *m;
    mm->count++;
}

/* Endpoint 1 in domain 1 with [0x1000, 0x1fff] -> 0xa000 read-only; endpoint 2 unattached. */
static viommu *device(bool bypass)
{
    viommu_config cfg;
    viommu *v;
    struct virtio_iommu_req_attach at = {.head.type = VIRTIO_IOMMU_T_ATTACH};
    struct virtio_iommu_req_map map = {.head.type = VIRTIO_IOMMU_T_MAP};
    uint8_t tail[4];
    struct iovec wr = {tail, sizeof(tail)};
    struct iovec rd[2] = {{&at, offsetof(struct virtio_iommu_req_attach, tail)},
                          {&map, offsetof(struct virtio_iommu_req_map, tail)}};
    viommu_request req = {.readable_count = 1, .writable = &wr, .writable_count = 1};

    viommu_config_init(&cfg);
    cfg.bypass = bypass;
    v = viommu_new(&cfg, NULL);
    cr_assert_not_null(v);
    cr_assert_eq(viommu_set_driver_features(v, viommu_device_features(v)), 0);
    cr_assert_eq(viommu_endpoint_add(v, 1), 0);
    cr_assert_eq(viommu_endpoint_add(v, 2), 0);
    at.domain = htole32(1);
    at.endpoint = htole32(1);
    map.domain = htole32(1);
    map.virt_start = htole64(0x1000);
    map.virt_end = htole64(0x1fff);
    map.phys_start = htole64(0xa000);
    map.flags = htole32(VIRTIO_IOMMU_MAP_F_READ);
    for (int i = 0; i < 2; i++) {
        req.readable = &rd[i];
        cr_assert_eq(viommu_handle_request(v, &req), 0);
        cr_assert_eq(req.status, VIRTIO_IOMMU_S_OK);
    }
    return v;
}

static void feed(translate_check *tc, viommu *v, const char *line)
{
    qemu_log_event ev;

    cr_assert_eq(qemu_log_parse_line(line, strlen(line), 42, &ev, NULL), 1, "%s", line);
    cr_assert_eq(translate_check_event(tc, v, &ev), 0);
}

Test(translate_check, agrees_with_a_translation_qemu_made)
{
    viommu *v = device(false);
    mismatches mm = {0};
    translate_check *tc = translate_check_new(on_mismatch, &mm);
    translate_check_stats st;

    feed(tc, v, "virtio_iommu_translate mr=m rid=1 addr=0x1234 flag=1");
    feed(tc, v, "virtio_iommu_translate_out 0x1234 -> 0xa234 for sid=1");
    translate_check_finish(tc);
    translate_check_get_stats(tc, &st);
    cr_assert_eq(st.accesses, 1);
    cr_assert_eq(st.translated, 1);
    cr_assert_eq(st.mismatches, 0);
    cr_assert_eq(mm.count, 0);
    translate_check_free(tc);
    viommu_free(v);
}

Test(translate_check, reports_a_different_address)
{
    viommu *v = device(false);
    mismatches mm = {0};
    translate_check *tc = translate_check_new(on_mismatch, &mm);

    feed(tc, v, "virtio_iommu_translate mr=m rid=1 addr=0x1234 flag=1");
    feed(tc, v, "virtio_iommu_translate_out 0x1234 -> 0xb234 for sid=1");
    cr_assert_eq(mm.count, 1);
    cr_assert_eq(mm.last.line, 42);
    cr_assert_eq(mm.last.endpoint, 1);
    cr_assert(mm.last.qemu_translated);
    cr_assert_eq(mm.last.qemu_gpa, 0xb234);
    cr_assert_eq(mm.last.ours, 0);
    cr_assert_eq(mm.last.ours_gpa, 0xa234);
    translate_check_free(tc);
    viommu_free(v);
}

Test(translate_check, reports_a_write_qemu_allowed_but_the_device_refused)
{
    viommu *v = device(false);
    mismatches mm = {0};
    translate_check *tc = translate_check_new(on_mismatch, &mm);

    feed(tc, v, "virtio_iommu_translate mr=m rid=1 addr=0x1234 flag=2");
    feed(tc, v, "virtio_iommu_translate_out 0x1234 -> 0xa234 for sid=1");
    cr_assert_eq(mm.count, 1);
    cr_assert_eq(mm.last.ours, -EFAULT);
    cr_assert_eq(mm.last.access, VIOMMU_ACCESS_WRITE);
    translate_check_free(tc);
    viommu_free(v);
}

Test(translate_check, accepts_bypass_or_refusal_when_qemu_printed_no_result)
{
    viommu *v = device(true);
    mismatches mm = {0};
    translate_check *tc = translate_check_new(on_mismatch, &mm);
    translate_check_stats st;

    /* Endpoint 2 bypasses; endpoint 1 faults at 0x5000; both have no result line. */
    feed(tc, v, "virtio_iommu_translate mr=m rid=2 addr=0x5000 flag=3");
    feed(tc, v, "virtio_iommu_translate mr=m rid=1 addr=0x5000 flag=1");
    feed(tc, v, "virtio_iommu_translate mr=m rid=2 addr=0x6000 flag=1");
    translate_check_finish(tc);
    translate_check_get_stats(tc, &st);
    cr_assert_eq(st.accesses, 3);
    cr_assert_eq(st.unmapped, 3);
    cr_assert_eq(mm.count, 0);
    translate_check_free(tc);
    viommu_free(v);
}

Test(translate_check, reports_a_mapped_access_qemu_did_not_translate)
{
    viommu *v = device(false);
    mismatches mm = {0};
    translate_check *tc = translate_check_new(on_mismatch, &mm);

    feed(tc, v, "virtio_iommu_translate mr=m rid=1 addr=0x1000 flag=1");
    translate_check_finish(tc);
    cr_assert_eq(mm.count, 1);
    cr_assert_not(mm.last.qemu_translated);
    cr_assert_eq(mm.last.ours_gpa, 0xa000);
    translate_check_free(tc);
    viommu_free(v);
}

Test(translate_check, pairs_results_by_endpoint_across_interleaved_lines)
{
    viommu *v = device(true);
    mismatches mm = {0};
    translate_check *tc = translate_check_new(on_mismatch, &mm);
    translate_check_stats st;

    feed(tc, v, "virtio_iommu_translate mr=m rid=1 addr=0x1004 flag=1");
    feed(tc, v, "virtio_iommu_translate mr=m rid=2 addr=0x9000 flag=2");
    feed(tc, v, "virtio_iommu_translate_out 0x1004 -> 0xa004 for sid=1");
    feed(tc, v, "virtio_iommu_translate_out 0x7777 -> 0x7777 for sid=3");
    translate_check_finish(tc);
    translate_check_get_stats(tc, &st);
    cr_assert_eq(st.translated, 1);
    cr_assert_eq(st.unmapped, 1);
    cr_assert_eq(st.unpaired, 1);
    cr_assert_eq(mm.count, 0);
    translate_check_free(tc);
    viommu_free(v);
}

Test(translate_check, skips_accesses_without_a_direction)
{
    viommu *v = device(false);
    translate_check *tc = translate_check_new(NULL, NULL);
    translate_check_stats st;

    feed(tc, v, "virtio_iommu_translate mr=m rid=1 addr=0x1000 flag=0");
    translate_check_finish(tc);
    translate_check_get_stats(tc, &st);
    cr_assert_eq(st.skipped, 1);
    cr_assert_eq(st.accesses, 0);
    translate_check_free(tc);
    viommu_free(v);
}

static int check_hook(void *opaque, viommu *dev, const qemu_log_event *ev)
{
    return translate_check_event(opaque, dev, ev);
}

Test(translate_check, every_access_of_the_strict_trace_agrees_with_qemu, .timeout = 300)
{
    mismatches mm = {0};
    translate_check *tc = translate_check_new(on_mismatch, &mm);
    replay_hooks hooks = {.opaque = tc, .translate = check_hook};
    replay_config cfg;
    replay_summary sum;
    translate_check_stats st;
    qemu_log_reader *r = NULL;

    replay_config_init(&cfg);
    cr_assert_eq(qemu_log_reader_open(TEST_DATA_DIR "/strict.trace.log.xz", &r, NULL), 0);
    cr_assert_eq(replay_run(&cfg, r, &hooks, &sum, NULL), 0);
    translate_check_finish(tc);
    translate_check_get_stats(tc, &st);
    cr_assert_eq(mm.count, 0, "first mismatch at line %lu", (unsigned long)mm.last.line);
    cr_assert_gt(st.accesses, 170000);
    cr_assert_eq(st.translated + st.unmapped, st.accesses);
    cr_assert_gt(st.translated, 170000);
    cr_assert_eq(st.unpaired, 0);
    qemu_log_reader_free(r);
    replay_config_clear(&cfg);
    translate_check_free(tc);
}

/* SPDX-License-Identifier: MIT */
/* Tests of the replay engine: requests, batches, endpoints, hooks, errors. */
#include "replay.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#ifndef TEST_DATA_DIR
#error "TEST_DATA_DIR must name the directory holding the traces"
#endif

/* What the hooks saw. */
typedef struct seen {
    GArray *requests; /* replay_request */
    unsigned batch_begins, batch_ends, endpoints_added, device_ready, translates, line_errors;
    size_t batch_sizes[64];
    int fail_batch_end; /* return this from batch_end when non-zero */
    uint64_t translate_gpa;
    int translate_ret;
} seen;

static int on_device_ready(void *opaque, viommu *dev)
{
    seen *s = opaque;

    cr_assert_not_null(dev);
    s->device_ready++;
    return 0;
}

static int on_endpoint(void *opaque, viommu *dev, uint32_t endpoint)
{
    seen *s = opaque;

    cr_assert(viommu_endpoint_exists(dev, endpoint));
    s->endpoints_added++;
    return 0;
}

static int on_batch_begin(void *opaque, viommu *dev, uint64_t batch, size_t n)
{
    seen *s = opaque;

    (void)dev;
    cr_assert_eq(batch, s->batch_begins + 1);
    if (s->batch_begins < G_N_ELEMENTS(s->batch_sizes))
        s->batch_sizes[s->batch_begins] = n;
    s->batch_begins++;
    return 0;
}

static int on_batch_end(void *opaque, viommu *dev, uint64_t batch, const replay_request *reqs,
                        size_t n)
{
    seen *s = opaque;

    (void)dev;
    cr_assert_eq(batch, s->batch_begins);
    cr_assert_gt(n, 0);
    cr_assert_eq(reqs[n - 1].batch, batch);
    s->batch_ends++;
    return s->fail_batch_end;
}

static int on_request(void *opaque, const replay_request *r)
{
    seen *s = opaque;

    g_array_append_val(s->requests, *r);
    return 0;
}

static int on_translate(void *opaque, viommu *dev, const qemu_log_event *ev)
{
    seen *s = opaque;
    viommu_translation t;

    s->translates++;
    if (ev->type == QEMU_LOG_TRANSLATE) {
        s->translate_ret = viommu_translate(dev, ev->u.translate.endpoint, ev->u.translate.addr,
                                            ev->u.translate.flag, &t);
        s->translate_gpa = t.gpa;
    }
    return 0;
}

static void on_line_error(void *opaque, const GError *error)
{
    seen *s = opaque;

    cr_assert(strstr(error->message, "line "), "%s", error->message);
    s->line_errors++;
}

static replay_hooks hooks_for(seen *s)
{
    return (replay_hooks){
        .opaque = s,
        .device_ready = on_device_ready,
        .endpoint_added = on_endpoint,
        .batch_begin = on_batch_begin,
        .batch_end = on_batch_end,
        .request_done = on_request,
        .translate = on_translate,
        .line_error = on_line_error,
    };
}

static qemu_log_reader *reader_on_text(const char *text)
{
    FILE *tmp = tmpfile();
    qemu_log_reader *r = NULL;
    int fd;

    cr_assert_not_null(tmp);
    cr_assert_eq(fwrite(text, 1, strlen(text), tmp), strlen(text));
    cr_assert_eq(fflush(tmp), 0);
    fd = dup(fileno(tmp));
    fclose(tmp);
    cr_assert_eq(lseek(fd, 0, SEEK_SET), 0);
    cr_assert_eq(qemu_log_reader_new_fd(fd, "test", &r, NULL), 0);
    return r;
}

/* Replays @text with @cfg (NULL: defaults) and returns replay_run's value. */
static int replay_text(const char *text, replay_config *cfg, seen *s, replay_summary *sum,
                       GError **error)
{
    replay_config defaults;
    qemu_log_reader *r = reader_on_text(text);
    replay_hooks hooks = hooks_for(s);
    int ret;

    if (!cfg) {
        replay_config_init(&defaults);
        cfg = &defaults;
    }
    s->requests = g_array_new(FALSE, TRUE, sizeof(replay_request));
    ret = replay_run(cfg, r, &hooks, sum, error);
    qemu_log_reader_free(r);
    if (cfg == &defaults)
        replay_config_clear(&defaults);
    return ret;
}

static const replay_request *req(seen *s, guint i)
{
    cr_assert_lt(i, s->requests->len);
    return &g_array_index(s->requests, replay_request, i);
}

static void seen_clear(seen *s)
{
    g_array_free(s->requests, TRUE);
}

Test(replay, runs_each_request_as_its_own_batch_without_queue_events)
{
    seen s = {0};
    replay_summary sum;
    const char *text =
        "1@1.0:virtio_iommu_fill_resv_property dev= 8, type=1 start=0xfee00000 end=0xfeefffff\n"
        "1@1.1:virtio_iommu_attach domain=1 endpoint=8\n"
        "1@1.2:virtio_iommu_map domain=1 virt_start=0x1000 virt_end=0x1fff phys_start=0xa000 "
        "flags=3\n"
        "1@1.3:virtio_iommu_unmap domain=1 virt_start=0x1000 virt_end=0x1fff\n"
        "1@1.4:virtio_iommu_detach domain=1 endpoint=8\n";

    cr_assert_eq(replay_text(text, NULL, &s, &sum, NULL), 0);
    cr_assert_eq(sum.requests, 5);
    cr_assert_eq(sum.batches, 5);
    cr_assert_eq(sum.by_status[VIRTIO_IOMMU_S_OK], 5);
    cr_assert_eq(sum.by_type[VIRTIO_IOMMU_T_PROBE], 1);
    cr_assert_eq(sum.by_type[VIRTIO_IOMMU_T_MAP], 1);
    cr_assert_eq(sum.endpoints, 1);
    cr_assert_eq(sum.probe_mismatches, 0);
    cr_assert_eq(s.device_ready, 1);
    cr_assert_eq(s.endpoints_added, 1);
    cr_assert_eq(s.batch_begins, 5);
    cr_assert_eq(s.batch_ends, 5);
    cr_assert_eq(req(&s, 0)->type, VIRTIO_IOMMU_T_PROBE);
    cr_assert_eq(req(&s, 0)->line, 1);
    cr_assert(req(&s, 0)->has_endpoint);
    cr_assert_not(req(&s, 0)->has_domain);
    cr_assert_eq(req(&s, 2)->type, VIRTIO_IOMMU_T_MAP);
    cr_assert_eq(req(&s, 2)->seq, 3);
    cr_assert_eq(req(&s, 2)->virt_end, 0x1fff);
    cr_assert_eq(req(&s, 2)->phys_start, 0xa000);
    cr_assert_eq(req(&s, 2)->flags, 3);
    cr_assert_eq(req(&s, 2)->used_len, 4);
    cr_assert_not(req(&s, 3)->has_phys);
    seen_clear(&s);
}

Test(replay, groups_the_requests_of_one_notification_into_one_batch)
{
    seen s = {0};
    replay_summary sum;
    /* The disk's queue (0xd0) kicks too; only the IOMMU's queue (0xa0) delimits batches. */
    const char *text = "virtio_queue_notify vdev 0x1 n 0 vq 0xa0\n"
                       "virtqueue_pop vq 0xa0 elem 0x10 in_num 1 out_num 1\n"
                       "virtio_iommu_attach domain=1 endpoint=8\n"
                       "virtio_queue_notify vdev 0x1 n 0 vq 0xa0\n"
                       "virtqueue_pop vq 0xa0 elem 0x10 in_num 1 out_num 1\n"
                       "virtio_iommu_map domain=1 virt_start=0x1000 virt_end=0x1fff "
                       "phys_start=0xa000 flags=1\n"
                       "virtio_queue_notify vdev 0x2 n 0 vq 0xd0\n"
                       "virtqueue_pop vq 0xd0 elem 0x20 in_num 2 out_num 1\n"
                       "virtqueue_pop vq 0xa0 elem 0x11 in_num 1 out_num 1\n"
                       "virtio_iommu_map domain=1 virt_start=0x2000 virt_end=0x2fff "
                       "phys_start=0xb000 flags=1\n"
                       "virtqueue_pop vq 0xa0 elem 0x12 in_num 1 out_num 1\n"
                       "virtio_iommu_unmap domain=1 virt_start=0x1000 virt_end=0x1fff\n"
                       "virtio_queue_notify vdev 0x1 n 0 vq 0xa0\n"
                       "virtqueue_pop vq 0xa0 elem 0x10 in_num 1 out_num 1\n"
                       "virtio_iommu_unmap domain=1 virt_start=0x2000 virt_end=0x2fff\n";

    cr_assert_eq(replay_text(text, NULL, &s, &sum, NULL), 0);
    cr_assert_eq(sum.requests, 5);
    cr_assert_eq(sum.batches, 3);
    cr_assert_eq(sum.largest_batch, 3);
    cr_assert_eq(s.batch_sizes[0], 1);
    cr_assert_eq(s.batch_sizes[1], 3);
    cr_assert_eq(s.batch_sizes[2], 1);
    cr_assert_eq(sum.by_status[VIRTIO_IOMMU_S_OK], 5);
    cr_assert_eq(req(&s, 3)->batch, 2);
    seen_clear(&s);
}

Test(replay, turns_a_run_of_property_lines_into_one_probe)
{
    seen s = {0};
    replay_summary sum;
    const char *text =
        "virtio_iommu_fill_resv_property dev= 8, type=0 start=0x1000 end=0x1fff\n"
        "virtio_iommu_fill_resv_property dev= 8, type=1 start=0xfee00000 end=0xfeefffff\n"
        "virtio_iommu_fill_resv_property dev= 9, type=1 start=0xfee00000 end=0xfeefffff\n"
        "virtio_iommu_attach domain=1 endpoint=8\n"
        "virtio_iommu_map domain=1 virt_start=0x1000 virt_end=0x1fff phys_start=0x0 flags=1\n";

    cr_assert_eq(replay_text(text, NULL, &s, &sum, NULL), 0);
    cr_assert_eq(sum.by_type[VIRTIO_IOMMU_T_PROBE], 2);
    cr_assert_eq(req(&s, 0)->status, VIRTIO_IOMMU_S_OK);
    cr_assert_not(req(&s, 0)->probe_mismatch);
    cr_assert_eq(req(&s, 1)->endpoint, 9);
    cr_assert_not(req(&s, 1)->probe_mismatch);
    /* The trace's reserved region now guards the endpoint's domain. */
    cr_assert_eq(req(&s, 3)->type, VIRTIO_IOMMU_T_MAP);
    cr_assert_eq(req(&s, 3)->status, VIRTIO_IOMMU_S_RANGE);
    seen_clear(&s);
}

Test(replay, gives_every_endpoint_the_regions_of_the_command_line)
{
    seen s = {0};
    replay_summary sum;
    replay_config cfg;
    replay_resv r = {.start = 0x8000, .end = 0x8fff, .subtype = VIRTIO_IOMMU_RESV_MEM_T_MSI};
    const char *text = "virtio_iommu_attach domain=1 endpoint=8\n"
                       "virtio_iommu_map domain=1 virt_start=0x8000 virt_end=0x8fff "
                       "phys_start=0x0 flags=1\n"
                       "virtio_iommu_fill_resv_property dev= 8, type=1 start=0xfee00000 "
                       "end=0xfeefffff\n";

    replay_config_init(&cfg);
    g_array_append_val(cfg.resv, r);
    cfg.resv_given = true;
    cr_assert_eq(replay_text(text, &cfg, &s, &sum, NULL), 0);
    cr_assert_eq(req(&s, 1)->status, VIRTIO_IOMMU_S_RANGE);
    /* The device reports the configured region, not the trace's. */
    cr_assert_eq(req(&s, 2)->status, VIRTIO_IOMMU_S_OK);
    cr_assert(req(&s, 2)->probe_mismatch);
    cr_assert_eq(sum.probe_mismatches, 1);
    replay_config_clear(&cfg);
    seen_clear(&s);
}

Test(replay, declares_only_the_listed_endpoints)
{
    seen s = {0};
    replay_summary sum;
    replay_config cfg;
    uint32_t ep = 8;
    const char *text = "virtio_iommu_attach domain=1 endpoint=8\n"
                       "virtio_iommu_attach domain=2 endpoint=9\n";

    replay_config_init(&cfg);
    g_array_append_val(cfg.endpoints, ep);
    cfg.endpoints_given = true;
    cr_assert_eq(replay_text(text, &cfg, &s, &sum, NULL), 0);
    cr_assert_eq(sum.endpoints, 1);
    cr_assert_eq(req(&s, 0)->status, VIRTIO_IOMMU_S_OK);
    cr_assert_eq(req(&s, 1)->status, VIRTIO_IOMMU_S_NOENT);
    cr_assert_eq(sum.by_status[VIRTIO_IOMMU_S_NOENT], 1);
    replay_config_clear(&cfg);
    seen_clear(&s);
}

Test(replay, applies_the_page_size_mask)
{
    seen s = {0};
    replay_summary sum;
    replay_config cfg;
    const char *text = "virtio_iommu_attach domain=1 endpoint=8\n"
                       "virtio_iommu_map domain=1 virt_start=0x1000 virt_end=0x1fff "
                       "phys_start=0x0 flags=1\n"
                       "virtio_iommu_map domain=1 virt_start=0x0 virt_end=0x4 "
                       "phys_start=0x0 flags=1\n";

    replay_config_init(&cfg);
    cfg.device.page_size_mask = 0x2000;
    cr_assert_eq(replay_text(text, &cfg, &s, &sum, NULL), 0);
    cr_assert_eq(req(&s, 1)->status, VIRTIO_IOMMU_S_RANGE);
    seen_clear(&s);
    s = (seen){0};
    cfg.device.page_size_mask = 1;
    cr_assert_eq(replay_text(text, &cfg, &s, &sum, NULL), 0);
    cr_assert_eq(req(&s, 1)->status, VIRTIO_IOMMU_S_OK);
    cr_assert_eq(req(&s, 2)->status, VIRTIO_IOMMU_S_OK);
    replay_config_clear(&cfg);
    seen_clear(&s);
}

Test(replay, reports_a_refused_device_configuration)
{
    seen s = {0};
    replay_summary sum;
    replay_config cfg;
    GError *error = NULL;

    replay_config_init(&cfg);
    cfg.device.page_size_mask = 0;
    cr_assert_eq(replay_text("", &cfg, &s, &sum, &error), -EINVAL);
    cr_assert_not_null(error);
    cr_assert(strstr(error->message, "device configuration"), "%s", error->message);
    g_error_free(error);
    replay_config_clear(&cfg);
    seen_clear(&s);
}

Test(replay, stops_at_a_malformed_line_after_running_what_came_before)
{
    seen s = {0};
    replay_summary sum;
    GError *error = NULL;
    const char *text = "virtio_iommu_attach domain=1 endpoint=8\n"
                       "virtio_iommu_detach domain=1\n"
                       "virtio_iommu_detach domain=1 endpoint=8\n";

    cr_assert_eq(replay_text(text, NULL, &s, &sum, &error), -EINVAL);
    cr_assert(strstr(error->message, "line 2:"), "%s", error->message);
    cr_assert_eq(error->domain, QEMU_LOG_ERROR);
    cr_assert_eq(sum.malformed_lines, 1);
    cr_assert_eq(sum.requests, 1);
    cr_assert_eq(s.line_errors, 1);
    g_error_free(error);
    seen_clear(&s);
}

Test(replay, keeps_going_past_malformed_lines_when_asked)
{
    seen s = {0};
    replay_summary sum;
    replay_config cfg;
    const char *text = "virtio_iommu_attach domain=1 endpoint=8\n"
                       "virtio_iommu_detach domain=1\n"
                       "virtio_iommu_map domain=x\n"
                       "virtio_iommu_detach domain=1 endpoint=8\n";

    replay_config_init(&cfg);
    cfg.keep_going = true;
    cr_assert_eq(replay_text(text, &cfg, &s, &sum, NULL), 0);
    cr_assert_eq(sum.malformed_lines, 2);
    cr_assert_eq(s.line_errors, 2);
    cr_assert_eq(sum.requests, 2);
    cr_assert_eq(req(&s, 1)->line, 4);
    cr_assert_eq(req(&s, 1)->status, VIRTIO_IOMMU_S_OK);
    replay_config_clear(&cfg);
    seen_clear(&s);
}

Test(replay, stops_when_a_hook_fails)
{
    seen s = {.fail_batch_end = -ECANCELED};
    replay_summary sum;
    GError *error = NULL;
    const char *text = "virtio_iommu_attach domain=1 endpoint=8\n"
                       "virtio_iommu_detach domain=1 endpoint=8\n";

    cr_assert_eq(replay_text(text, NULL, &s, &sum, &error), -ECANCELED);
    cr_assert_eq(error->domain, REPLAY_ERROR);
    cr_assert_eq(s.batch_ends, 1);
    g_error_free(error);
    seen_clear(&s);
}

Test(replay, runs_pending_requests_before_a_translation)
{
    seen s = {0};
    replay_summary sum;
    const char *text = "virtqueue_pop vq 0xa0 elem 0x10 in_num 1 out_num 1\n"
                       "virtio_iommu_attach domain=1 endpoint=8\n"
                       "virtqueue_pop vq 0xa0 elem 0x10 in_num 1 out_num 1\n"
                       "virtio_iommu_map domain=1 virt_start=0x1000 virt_end=0x1fff "
                       "phys_start=0xa000 flags=1\n"
                       "virtio_iommu_translate mr=m rid=8 addr=0x1234 flag=1\n";

    cr_assert_eq(replay_text(text, NULL, &s, &sum, NULL), 0);
    cr_assert_eq(s.translates, 1);
    cr_assert_eq(sum.translations, 1);
    cr_assert_eq(s.translate_ret, 0);
    cr_assert_eq(s.translate_gpa, 0xa234);
    seen_clear(&s);
}

/* Runs a shell pipeline that prints one number. */
static unsigned long shell_count(const char *cmd)
{
    FILE *p = popen(cmd, "r");
    unsigned long n = 0;

    cr_assert_not_null(p);
    cr_assert_eq(fscanf(p, "%lu", &n), 1, "%s", cmd);
    pclose(p);
    return n;
}

static unsigned long grep_requests(const char *path)
{
    g_autofree char *cmd =
        g_strdup_printf("xz -dc '%s' | grep -cE "
                        "':virtio_iommu_(attach|detach|map|unmap|fill_resv_property) '",
                        path);
    return shell_count(cmd);
}

static void replay_file(const char *path, replay_summary *sum, seen *s)
{
    replay_config cfg;
    qemu_log_reader *r = NULL;
    replay_hooks hooks = hooks_for(s);

    hooks.request_done = NULL;
    replay_config_init(&cfg);
    cr_assert_eq(qemu_log_reader_open(path, &r, NULL), 0);
    cr_assert_eq(replay_run(&cfg, r, &hooks, sum, NULL), 0);
    qemu_log_reader_free(r);
    replay_config_clear(&cfg);
}

Test(replay_traces, replays_every_request_of_the_strict_trace_to_ok, .timeout = 300)
{
    const char *path = TEST_DATA_DIR "/strict.trace.log.xz";
    replay_summary sum;
    seen s = {0};

    replay_file(path, &sum, &s);
    cr_assert_eq(sum.requests, grep_requests(path));
    cr_assert_gt(sum.requests, 90000);
    cr_assert_eq(sum.by_status[VIRTIO_IOMMU_S_OK], sum.requests);
    cr_assert_eq(sum.probe_mismatches, 0);
    cr_assert_eq(sum.batches, sum.requests, "no queue events: one request per batch");
    cr_assert_eq(sum.translations,
                 shell_count("xz -dc '" TEST_DATA_DIR "/strict.trace.log.xz' | grep -c "
                             "':virtio_iommu_translate '"));
}

Test(replay_traces, replays_every_request_of_the_kicks_trace_to_ok_in_its_batches, .timeout = 300)
{
    const char *path = TEST_DATA_DIR "/strict-kicks.trace.log.xz";
    replay_summary sum;
    seen s = {0};
    /*
     * Batches counted by awk: notifications of the IOMMU's request queue
     * (the queue popped right before the first request) followed by at
     * least one request.
     */
    const char *awk =
        "xz -dc '" TEST_DATA_DIR "/strict-kicks.trace.log.xz' | sed -E 's/^[0-9]+@[0-9.]+://' | "
        "awk '$1 == \"virtqueue_pop\" { last = $3 } "
        "/^virtio_iommu_(attach|detach|map|unmap|fill_resv_property) / { if (vq == \"\") vq = "
        "last; n++ } "
        "$1 == \"virtio_queue_notify\" && $7 == vq { if (n) b++; n = 0 } "
        "END { if (n) b++; print b }'";

    replay_file(path, &sum, &s);
    cr_assert_eq(sum.requests, grep_requests(path));
    cr_assert_eq(sum.by_status[VIRTIO_IOMMU_S_OK], sum.requests);
    cr_assert_eq(sum.probe_mismatches, 0);
    cr_assert_eq(sum.batches, shell_count(awk));
    cr_assert_lt(sum.batches, sum.requests);
    cr_assert_gt(sum.largest_batch, 1);
}

/* SPDX-License-Identifier: MIT */
/*
 * The statistics of `viommu trace summarize`, fed request by request and
 * event by event, read back from the JSON summary.
 */
#include <criterion/criterion.h>
#include <json-glib/json-glib.h>
#include <string.h>

#include "trace_stats.h"
#include "viommu.h"

#define OK VIRTIO_IOMMU_S_OK

static trace_stats_request req(uint8_t type, uint32_t domain, uint32_t endpoint, uint64_t vs,
                               uint64_t ve, int status, uint64_t batch)
{
    trace_stats_request r = {
        .type = type,
        .domain = domain,
        .endpoint = endpoint,
        .virt_start = vs,
        .virt_end = ve,
        .status = status,
        .batch = batch,
    };
    return r;
}

static void add(trace_stats *s, trace_stats_request r)
{
    trace_stats_add_request(s, &r);
}

/* The JSON summary's "summary" object; the parser is returned for freeing. */
static JsonObject *summary(trace_stats *s, JsonParser **parser)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_not_null(f);
    trace_stats_print(s, f, true);
    fclose(f);
    *parser = json_parser_new();
    GError *err = NULL;
    cr_assert(json_parser_load_from_data(*parser, buf, (gssize)len, &err), "%s: %s", buf,
              err ? err->message : "");
    free(buf);
    JsonObject *root = json_node_get_object(json_parser_get_root(*parser));
    return json_object_get_object_member(root, "summary");
}

static gint64 member(JsonObject *o, const char *path)
{
    char **parts = g_strsplit(path, ".", -1);
    for (guint i = 0; parts[i + 1]; i++)
        o = json_object_get_object_member(o, parts[i]);
    gint64 v = json_object_get_int_member(o, parts[g_strv_length(parts) - 1]);
    g_strfreev(parts);
    return v;
}

static JsonObject *domain_of(JsonObject *sum, uint32_t id)
{
    JsonArray *a = json_object_get_array_member(sum, "domains");
    for (guint i = 0; i < json_array_get_length(a); i++) {
        JsonObject *d = json_array_get_object_element(a, i);
        if (json_object_get_int_member(d, "domain") == id)
            return d;
    }
    cr_assert_fail("no domain %u", id);
    return NULL;
}

Test(trace_stats, counts_requests_by_type_and_status)
{
    trace_stats *s = trace_stats_new();
    add(s, req(VIRTIO_IOMMU_T_ATTACH, 1, 8, 0, 0, OK, 0));
    add(s, req(VIRTIO_IOMMU_T_MAP, 1, 0, 0x1000, 0x1fff, OK, 0));
    add(s, req(VIRTIO_IOMMU_T_MAP, 1, 0, 0x1000, 0x1fff, VIRTIO_IOMMU_S_INVAL, 0));
    add(s, req(VIRTIO_IOMMU_T_PROBE, 0, 8, 0, 0, VIOMMU_STATUS_NONE, 0));
    JsonParser *p;
    JsonObject *sum = summary(s, &p);
    cr_assert_eq(member(sum, "requests"), 4);
    cr_assert_eq(member(sum, "types.ATTACH"), 1);
    cr_assert_eq(member(sum, "types.MAP"), 2);
    cr_assert_eq(member(sum, "types.PROBE"), 1);
    cr_assert_eq(member(sum, "statuses.OK"), 2);
    cr_assert_eq(member(sum, "statuses.INVAL"), 1);
    cr_assert_eq(member(sum, "statuses.NONE"), 1);
    cr_assert(json_object_get_null_member(sum, "batches"), "no batch numbers: batches unknown");
    g_object_unref(p);
    trace_stats_free(s);
}

Test(trace_stats, map_sizes_fall_in_power_of_two_buckets_up_to_the_whole_space)
{
    trace_stats *s = trace_stats_new();
    add(s, req(VIRTIO_IOMMU_T_MAP, 1, 0, 0, 0xfff, OK, 0));
    add(s, req(VIRTIO_IOMMU_T_MAP, 1, 0, 0x10000, 0x11fff, OK, 0));
    add(s, req(VIRTIO_IOMMU_T_MAP, 1, 0, 0x20000, 0x22fff, OK, 0));
    add(s, req(VIRTIO_IOMMU_T_MAP, 2, 0, 0, UINT64_MAX, OK, 0));
    add(s, req(VIRTIO_IOMMU_T_MAP, 2, 0, 5, 4, VIRTIO_IOMMU_S_INVAL, 0));
    JsonParser *p;
    JsonObject *sum = summary(s, &p);
    cr_assert_eq(member(sum, "map_sizes.4096"), 1);
    cr_assert_eq(member(sum, "map_sizes.8192"), 2, "8 KiB and 12 KiB share a bucket");
    cr_assert_eq(member(sum, "map_sizes.18446744073709551616"), 1);
    cr_assert_eq(member(sum, "inverted_maps"), 1);
    g_object_unref(p);
    trace_stats_free(s);
}

Test(trace_stats, tracks_live_mappings_reuse_and_wide_unmaps_per_domain)
{
    trace_stats *s = trace_stats_new();
    add(s, req(VIRTIO_IOMMU_T_ATTACH, 1, 8, 0, 0, OK, 0));
    add(s, req(VIRTIO_IOMMU_T_MAP, 1, 0, 0x1000, 0x1fff, OK, 0));
    add(s, req(VIRTIO_IOMMU_T_MAP, 1, 0, 0x2000, 0x2fff, OK, 0));
    add(s, req(VIRTIO_IOMMU_T_MAP, 1, 0, 0x3000, 0x3fff, OK, 0));
    add(s, req(VIRTIO_IOMMU_T_UNMAP, 1, 0, 0x1000, 0x2fff, OK, 0)); /* two at once */
    add(s, req(VIRTIO_IOMMU_T_UNMAP, 1, 0, 0x8000, 0x8fff, OK, 0)); /* nothing there */
    add(s, req(VIRTIO_IOMMU_T_MAP, 1, 0, 0x1000, 0x1fff, OK, 0));   /* reuses a start */
    add(s, req(VIRTIO_IOMMU_T_MAP, 1, 0, 0x9000, 0x9fff, VIRTIO_IOMMU_S_RANGE, 0));
    JsonParser *p;
    JsonObject *sum = summary(s, &p);
    JsonObject *d = domain_of(sum, 1);
    cr_assert_eq(json_object_get_int_member(d, "max_live"), 3);
    cr_assert_eq(json_object_get_int_member(d, "live_at_end"), 2);
    cr_assert_eq(member(sum, "iova_reuse.maps"), 4, "only maps that succeeded");
    cr_assert_eq(member(sum, "iova_reuse.reusing"), 1);
    cr_assert_eq(member(sum, "unmaps.ok"), 2);
    cr_assert_eq(member(sum, "unmaps.covering_several"), 1);
    cr_assert_eq(member(sum, "unmaps.covering_none"), 1);
    cr_assert_eq(member(sum, "unmaps.max_covered"), 2);
    g_object_unref(p);
    trace_stats_free(s);
}

Test(trace_stats, a_domain_loses_its_mappings_with_its_last_endpoint)
{
    trace_stats *s = trace_stats_new();
    add(s, req(VIRTIO_IOMMU_T_ATTACH, 1, 8, 0, 0, OK, 0));
    add(s, req(VIRTIO_IOMMU_T_ATTACH, 1, 9, 0, 0, OK, 0));
    add(s, req(VIRTIO_IOMMU_T_MAP, 1, 0, 0x1000, 0x1fff, OK, 0));
    add(s, req(VIRTIO_IOMMU_T_DETACH, 1, 8, 0, 0, OK, 0));
    JsonParser *p;
    JsonObject *sum = summary(s, &p);
    cr_assert_eq(json_object_get_int_member(domain_of(sum, 1), "live_at_end"), 1);
    g_object_unref(p);
    /* Moving the last endpoint elsewhere ends domain 1. */
    add(s, req(VIRTIO_IOMMU_T_ATTACH, 2, 9, 0, 0, OK, 0));
    sum = summary(s, &p);
    cr_assert_eq(json_object_get_int_member(domain_of(sum, 1), "live_at_end"), 0);
    cr_assert_eq(json_object_get_int_member(domain_of(sum, 1), "max_live"), 1);
    g_object_unref(p);
    trace_stats_free(s);
}

Test(trace_stats, batches_and_vfio_user_costs_come_per_request)
{
    trace_stats *s = trace_stats_new();
    trace_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.id = TRACE_EV_request_done;
    ev.u.request_done = (trace_request_done_fields){
        .type = VIRTIO_IOMMU_T_MAP, .domain = 1, .virt_start = 0, .virt_end = 0xfff, .batch = 1};
    trace_stats_add_event(s, &ev);
    ev.u.request_done.batch = 2;
    ev.u.request_done.virt_start = 0x1000;
    ev.u.request_done.virt_end = 0x1fff;
    trace_stats_add_event(s, &ev);
    ev.u.request_done.virt_start = 0x2000;
    ev.u.request_done.virt_end = 0x2fff;
    trace_stats_add_event(s, &ev);
    memset(&ev, 0, sizeof(ev));
    ev.id = TRACE_EV_vfio_user_send;
    ev.u.vfio_user_send.size = 100;
    for (int i = 0; i < 3; i++)
        trace_stats_add_event(s, &ev);
    ev.id = TRACE_EV_vfio_user_reply;
    ev.u.vfio_user_reply.size = 16;
    for (int i = 0; i < 3; i++)
        trace_stats_add_event(s, &ev);
    memset(&ev, 0, sizeof(ev));
    ev.id = TRACE_EV_vfio_user_wait;
    trace_stats_add_event(s, &ev);
    ev.id = TRACE_EV_dirty_collected;
    ev.u.dirty_collected.pages_set = 5;
    trace_stats_add_event(s, &ev);

    JsonParser *p;
    JsonObject *sum = summary(s, &p);
    cr_assert_eq(member(sum, "batches.count"), 2);
    cr_assert_eq(member(sum, "batches.max_requests"), 2);
    cr_assert_eq(member(sum, "vfio_user.messages"), 3);
    cr_assert_eq(member(sum, "vfio_user.waits"), 1);
    cr_assert_eq(member(sum, "vfio_user.bytes_sent"), 300);
    cr_assert_eq(member(sum, "vfio_user.bytes_received"), 48);
    JsonObject *vu = json_object_get_object_member(sum, "vfio_user");
    cr_assert_float_eq(json_object_get_double_member(vu, "messages_per_request"), 1.0, 1e-9);
    cr_assert_float_eq(json_object_get_double_member(vu, "bytes_per_request"), 116.0, 1e-9);
    cr_assert_eq(member(sum, "dirty.pages"), 5);
    cr_assert_eq(member(sum, "events.vfio_user_send"), 3);
    g_object_unref(p);
    trace_stats_free(s);
}

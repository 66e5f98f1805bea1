/* SPDX-License-Identifier: MIT */
/*
 * replay_print.c - how `viommu replay` shows requests, translation
 * mismatches and its summary: one readable line each, or one JSON object
 * per line. Every string printed is one of this module's fixed names, so
 * nothing from the trace needs escaping.
 */
#include "replay_print.h"

#include <errno.h>
#include <inttypes.h>

static const char *status_name(int status)
{
    const char *name = viommu_status_name(status);

    return name ? name : "UNKNOWN";
}

static void print_request_json(FILE *f, const replay_request *r)
{
    fprintf(f, "{\"seq\":%" PRIu64 ",\"line\":%" PRIu64 ",\"batch\":%" PRIu64 ",\"type\":\"%s\"",
            r->seq, r->line, r->batch, viommu_type_name(r->type));
    if (r->has_domain)
        fprintf(f, ",\"domain\":%" PRIu32, r->domain);
    if (r->has_endpoint)
        fprintf(f, ",\"endpoint\":%" PRIu32, r->endpoint);
    /* Addresses are strings: JSON readers lose 64-bit integers above 2^53. */
    if (r->has_virt)
        fprintf(f, ",\"virt_start\":\"0x%" PRIx64 "\",\"virt_end\":\"0x%" PRIx64 "\"",
                r->virt_start, r->virt_end);
    if (r->has_phys)
        fprintf(f, ",\"phys_start\":\"0x%" PRIx64 "\"", r->phys_start);
    if (r->has_flags)
        fprintf(f, ",\"flags\":%" PRIu32, r->flags);
    fprintf(f, ",\"status\":\"%s\"", status_name(r->status));
    if (r->type == VIRTIO_IOMMU_T_PROBE && r->status == VIRTIO_IOMMU_S_OK)
        fprintf(f, ",\"probe_matches_trace\":%s", r->probe_mismatch ? "false" : "true");
    fprintf(f, "}\n");
}

static void print_request_text(FILE *f, const replay_request *r)
{
    fprintf(f, "%" PRIu64 " (line %" PRIu64 "): %s", r->seq, r->line, viommu_type_name(r->type));
    if (r->has_domain)
        fprintf(f, " domain=%" PRIu32, r->domain);
    if (r->has_endpoint)
        fprintf(f, " endpoint=%" PRIu32, r->endpoint);
    if (r->has_virt)
        fprintf(f, " virt_start=0x%" PRIx64 " virt_end=0x%" PRIx64, r->virt_start, r->virt_end);
    if (r->has_phys)
        fprintf(f, " phys_start=0x%" PRIx64, r->phys_start);
    if (r->has_flags)
        fprintf(f, " flags=0x%" PRIx32, r->flags);
    fprintf(f, " -> %s%s\n", status_name(r->status),
            r->probe_mismatch ? " (properties differ from the trace)" : "");
}

void replay_print_request(FILE *f, const replay_request *r, bool json)
{
    if (json)
        print_request_json(f, r);
    else
        print_request_text(f, r);
}

static const char *access_name(uint32_t access)
{
    switch (access) {
    case VIOMMU_ACCESS_READ:
        return "read";
    case VIOMMU_ACCESS_WRITE:
        return "write";
    default:
        return "read-write";
    }
}

void replay_print_mismatch(FILE *f, const translate_mismatch *m, bool json)
{
    char qemu[64], ours[64];

    if (m->qemu_translated)
        g_snprintf(qemu, sizeof(qemu), "0x%" PRIx64, m->qemu_gpa);
    else
        g_strlcpy(qemu, "bypass or fault", sizeof(qemu));
    if (m->ours == 0)
        g_snprintf(ours, sizeof(ours), "0x%" PRIx64 "%s", m->ours_gpa,
                   m->ours_bypass ? " (bypass)" : "");
    else
        g_strlcpy(ours, m->ours == -EFAULT ? "fault" : g_strerror(-m->ours), sizeof(ours));
    if (json)
        fprintf(f,
                "{\"translate_mismatch\":{\"line\":%" PRIu64 ",\"endpoint\":%" PRIu32
                ",\"addr\":\"0x%" PRIx64
                "\",\"access\":\"%s\",\"qemu\":\"%s\",\"replay\":\"%s\"}}\n",
                m->line, m->endpoint, m->addr, access_name(m->access), qemu, ours);
    else
        fprintf(f,
                "line %" PRIu64 ": translate endpoint=%" PRIu32 " addr=0x%" PRIx64
                " %s: QEMU %s, replay %s\n",
                m->line, m->endpoint, m->addr, access_name(m->access), qemu, ours);
}

void replay_print_summary(FILE *f, const replay_summary *s, const translate_check_stats *tc,
                          bool all_ok, bool json)
{
    if (json) {
        bool first = true;

        fprintf(f,
                "{\"summary\":{\"lines\":%" PRIu64 ",\"requests\":%" PRIu64 ",\"batches\":%" PRIu64
                ",\"largest_batch\":%" PRIu64 ",\"endpoints\":%" PRIu64 ",\"translations\":%" PRIu64
                ",\"malformed_lines\":%" PRIu64 ",\"probe_mismatches\":%" PRIu64 ",\"types\":{",
                s->lines, s->requests, s->batches, s->largest_batch, s->endpoints, s->translations,
                s->malformed_lines, s->probe_mismatches);
        for (int t = VIRTIO_IOMMU_T_ATTACH; t <= VIRTIO_IOMMU_T_PROBE; t++)
            fprintf(f, "%s\"%s\":%" PRIu64, t == VIRTIO_IOMMU_T_ATTACH ? "" : ",",
                    viommu_type_name(t), s->by_type[t]);
        fprintf(f, "},\"statuses\":{");
        for (int st = VIRTIO_IOMMU_S_OK; st <= VIRTIO_IOMMU_S_NOMEM; st++) {
            if (!s->by_status[st] && st != VIRTIO_IOMMU_S_OK)
                continue;
            fprintf(f, "%s\"%s\":%" PRIu64, first ? "" : ",", status_name(st), s->by_status[st]);
            first = false;
        }
        if (s->no_status)
            fprintf(f, ",\"NONE\":%" PRIu64, s->no_status);
        fprintf(f, "}");
        if (tc)
            fprintf(f,
                    ",\"translate_check\":{\"accesses\":%" PRIu64 ",\"translated\":%" PRIu64
                    ",\"unmapped\":%" PRIu64 ",\"mismatches\":%" PRIu64 ",\"unpaired\":%" PRIu64
                    "}",
                    tc->accesses, tc->translated, tc->unmapped, tc->mismatches, tc->unpaired);
        fprintf(f, ",\"all_ok\":%s}}\n", all_ok ? "true" : "false");
        return;
    }
    fprintf(f,
            "replayed %" PRIu64 " requests (ATTACH %" PRIu64 ", DETACH %" PRIu64 ", MAP %" PRIu64
            ", UNMAP %" PRIu64 ", PROBE %" PRIu64 ") in %" PRIu64 " batches (largest %" PRIu64
            ") from %" PRIu64 " lines; %" PRIu64 " endpoints\n",
            s->requests, s->by_type[VIRTIO_IOMMU_T_ATTACH], s->by_type[VIRTIO_IOMMU_T_DETACH],
            s->by_type[VIRTIO_IOMMU_T_MAP], s->by_type[VIRTIO_IOMMU_T_UNMAP],
            s->by_type[VIRTIO_IOMMU_T_PROBE], s->batches, s->largest_batch, s->lines, s->endpoints);
    fprintf(f, "statuses:");
    for (int st = VIRTIO_IOMMU_S_OK; st <= VIRTIO_IOMMU_S_NOMEM; st++)
        if (s->by_status[st] || st == VIRTIO_IOMMU_S_OK)
            fprintf(f, " %s %" PRIu64, status_name(st), s->by_status[st]);
    if (s->no_status)
        fprintf(f, " NONE %" PRIu64, s->no_status);
    fprintf(f, "\n");
    if (s->malformed_lines)
        fprintf(f, "malformed lines: %" PRIu64 "\n", s->malformed_lines);
    if (s->probe_mismatches)
        fprintf(f, "PROBE answers that differ from the trace: %" PRIu64 "\n", s->probe_mismatches);
    if (tc)
        fprintf(f,
                "device accesses: %" PRIu64 " checked, %" PRIu64 " translated as QEMU did, %" PRIu64
                " bypassed or refused as QEMU did, %" PRIu64 " mismatches, %" PRIu64
                " results without their access\n",
                tc->accesses, tc->translated, tc->unmapped, tc->mismatches, tc->unpaired);
    if (all_ok)
        fprintf(f, "every request succeeded\n");
    else if (s->malformed_lines)
        fprintf(f, "the trace has malformed lines\n");
    else
        fprintf(f, "some requests did not succeed\n");
}

/* SPDX-License-Identifier: MIT */
/*
 * Conformance: general request handling, ATTACH and DETACH (virtio spec,
 * IOMMU device, Device operations).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "spec_iommu.h"

#define R VIRTIO_IOMMU_MAP_F_READ
#define W VIRTIO_IOMMU_MAP_F_WRITE

static viommu *device_without_bypass(void)
{
    viommu_config cfg;

    viommu_config_init(&cfg);
    cfg.bypass = false;
    return spec_device_with(&cfg, SPEC_ALL_OFFERED, SPEC_ENDPOINTS);
}

/* ---- Device operations ---------------------------------------------- */

Test(operations, device_should_set_status_ok_on_success)
{
    viommu *v = spec_device();

    cr_assert_eq(spec_attach(v, 1, 1, 0), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(spec_map(v, 1, 0x1000, 0x1fff, 0x2000, R), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(spec_unmap(v, 1, 0x1000, 0x1fff), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(spec_detach(v, 1, 1), VIRTIO_IOMMU_S_OK);
    viommu_free(v);
}

Test(operations, device_should_not_write_requests_of_unknown_type)
{
    viommu *v = spec_device();
    static const uint8_t types[] = {0, 6, 7, 0x80, 0xff};

    for (size_t i = 0; i < sizeof(types); i++) {
        uint8_t rd[SPEC_MAP_LEN] = {types[i]};
        uint8_t wr[64];
        memset(wr, 0xa5, sizeof(wr));
        cr_assert_eq(spec_send(v, rd, sizeof(rd), wr, sizeof(wr)), 0, "type %u", types[i]);
        for (size_t j = 0; j < sizeof(wr); j++)
            cr_assert_eq(wr[j], 0xa5, "type %u: byte %zu written", types[i], j);
    }
    viommu_free(v);
}

Test(operations, device_must_ignore_head_reserved)
{
    viommu *v = spec_device();
    uint8_t buf[SPEC_ATTACH_LEN];
    size_t n = spec_enc_attach(buf, 1, 1, 0);

    buf[1] = 0xff;
    buf[2] = 0x12;
    buf[3] = 0x80;
    cr_assert_eq(spec_request(v, buf, n, NULL), VIRTIO_IOMMU_S_OK);
    viommu_free(v);
}

Test(operations, device_should_zero_tail_reserved)
{
    viommu *v = spec_device();
    uint8_t buf[SPEC_ATTACH_LEN];
    uint8_t tail[SPEC_TAIL_LEN];
    size_t n = spec_enc_attach(buf, 1, 1, 0);

    cr_assert_eq(spec_request(v, buf, n, tail), VIRTIO_IOMMU_S_OK);
    cr_assert(tail[1] == 0 && tail[2] == 0 && tail[3] == 0);
    /* A failing request too. */
    n = spec_enc_attach(buf, 1, 99, 0);
    cr_assert_eq(spec_request(v, buf, n, tail), VIRTIO_IOMMU_S_NOENT);
    cr_assert(tail[1] == 0 && tail[2] == 0 && tail[3] == 0);
    viommu_free(v);
}

Test(operations, device_should_not_let_unattached_endpoints_access_memory)
{
    viommu *v = device_without_bypass();
    spec_events ev = {0};

    cr_assert_not(spec_access(v, 1, 0x1000, VIOMMU_ACCESS_READ, NULL));
    cr_assert_not(spec_access(v, 1, 0x1000, VIOMMU_ACCESS_WRITE, NULL));
    /* A device that starts in bypass and whose driver clears it, too. */
    viommu_free(v);
    v = spec_device();
    uint8_t zero = 0;
    cr_assert(spec_access(v, 1, 0x1000, VIOMMU_ACCESS_READ, NULL));
    cr_assert_eq(viommu_config_write(v, 36, &zero, 1), 0);
    spec_events_post(v, &ev, 0, 64);
    cr_assert_not(spec_access(v, 1, 0x1000, VIOMMU_ACCESS_READ, NULL));
    cr_assert(ev.completed[0]);
    cr_assert_eq(ev.buf[0][0], VIRTIO_IOMMU_FAULT_R_DOMAIN);
    viommu_free(v);
}

Test(operations, device_returns_unparsable_requests_unwritten)
{
    viommu *v = spec_device();
    uint8_t buf[SPEC_MAP_LEN];
    size_t n = spec_enc_map(buf, 1, 0, 0xfff, 0, R);
    uint8_t wr[3];

    /* No room for the tail: the device cannot set the status. */
    memset(wr, 0xa5, sizeof(wr));
    cr_assert_eq(spec_send(v, buf, n, wr, sizeof(wr)), 0);
    cr_assert(wr[0] == 0xa5 && wr[1] == 0xa5 && wr[2] == 0xa5);
    cr_assert_eq(spec_send(v, buf, n, NULL, 0), 0);
    viommu_free(v);
}

Test(operations, bypass_mode_translates_by_identity)
{
    viommu *v = spec_device_with(NULL, 0x0 | VIOMMU_FEATURE(VIRTIO_IOMMU_F_MAP_UNMAP), 2);
    uint64_t gpa = 0;

    /*
     * config.bypass is 1 and F_BYPASS_CONFIG is offered: unattached
     * endpoints bypass even though the driver did not accept the feature.
     */
    cr_assert(spec_access(v, 1, 0xfedcba9876543210ull, VIOMMU_ACCESS_WRITE, &gpa));
    cr_assert_eq(gpa, 0xfedcba9876543210ull);
    cr_assert(spec_access(v, 2, 0x42, VIOMMU_ACCESS_READ, &gpa));
    cr_assert_eq(gpa, 0x42);
    viommu_free(v);
}

Test(operations, domain_range_limits_domain_ids)
{
    viommu_config cfg;
    viommu *v;
    uint32_t domain;

    viommu_config_init(&cfg);
    cfg.domain_first = 10;
    cfg.domain_last = 20;
    v = spec_device_with(&cfg, SPEC_ALL_OFFERED, 1);
    cr_assert_neq(spec_attach(v, 9, 1, 0), VIRTIO_IOMMU_S_OK);
    cr_assert_neq(spec_attach(v, 21, 1, 0), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(viommu_endpoint_domain(v, 1, &domain), -ENODEV);
    cr_assert_eq(spec_attach(v, 20, 1, 0), VIRTIO_IOMMU_S_OK);
    viommu_free(v);
    /* Without F_DOMAIN_RANGE any domain value is valid. */
    cfg.features &= ~VIOMMU_FEATURE(VIRTIO_IOMMU_F_DOMAIN_RANGE);
    v = spec_device_with(&cfg, SPEC_ALL_OFFERED, 1);
    cr_assert_eq(spec_attach(v, UINT32_MAX, 1, 0), VIRTIO_IOMMU_S_OK);
    viommu_free(v);
}

/* ---- ATTACH ---------------------------------------------------------- */

Test(attach, device_must_reject_nonzero_reserved_with_inval)
{
    viommu *v = spec_device();
    uint32_t domain;

    for (int i = 0; i < 4; i++) {
        uint8_t buf[SPEC_ATTACH_LEN];
        size_t n = spec_enc_attach(buf, 1, 1, 0);
        buf[16 + i] = 1;
        cr_assert_eq(spec_request(v, buf, n, NULL), VIRTIO_IOMMU_S_INVAL, "reserved[%d]", i);
    }
    cr_assert_eq(viommu_endpoint_domain(v, 1, &domain), -ENODEV, "not attached");
    viommu_free(v);
}

Test(attach, device_must_reject_unknown_flags_with_inval)
{
    viommu *v = spec_device();
    /* Without F_BYPASS_CONFIG negotiated, ATTACH_F_BYPASS is unknown too. */
    viommu *nobypass = spec_device_with(
        NULL, VIOMMU_FEATURES_DEFAULT & ~VIOMMU_FEATURE(VIRTIO_IOMMU_F_BYPASS_CONFIG), 1);

    for (int bit = 1; bit < 32; bit++)
        cr_assert_eq(spec_attach(v, 1, 1, 1u << bit), VIRTIO_IOMMU_S_INVAL, "bit %d", bit);
    cr_assert_eq(spec_attach(nobypass, 1, 1, VIRTIO_IOMMU_ATTACH_F_BYPASS), VIRTIO_IOMMU_S_INVAL);
    viommu_free(v);
    viommu_free(nobypass);
}

Test(attach, device_must_reject_unknown_endpoints_with_noent)
{
    viommu *v = spec_device();

    cr_assert_eq(spec_attach(v, 1, 99, 0), VIRTIO_IOMMU_S_NOENT);
    cr_assert_eq(spec_attach(v, 1, 0, 0), VIRTIO_IOMMU_S_NOENT);
    cr_assert_eq(spec_mapping_count(v, 1), -1, "no domain was created");
    viommu_free(v);
}

Test(attach, device_may_attach_several_endpoints_else_must_answer_unsupp)
{
    viommu *v = spec_device();
    uint64_t gpa;
    int status;

    cr_assert_eq(spec_attach(v, 1, 1, 0), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(spec_map(v, 1, 0x1000, 0x1fff, 0x8000, R), VIRTIO_IOMMU_S_OK);
    status = spec_attach(v, 1, 2, 0);
    cr_assert(status == VIRTIO_IOMMU_S_OK || status == VIRTIO_IOMMU_S_UNSUPP);
    if (status == VIRTIO_IOMMU_S_OK) {
        cr_assert(spec_access(v, 2, 0x1010, VIOMMU_ACCESS_READ, &gpa));
        cr_assert_eq(gpa, 0x8010);
    }
    viommu_free(v);
}

Test(attach, device_should_reject_an_inconsistent_bypass_flag_with_inval)
{
    viommu *v = spec_device();
    uint32_t domain;

    cr_assert_eq(spec_attach(v, 1, 1, 0), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(spec_attach(v, 1, 2, VIRTIO_IOMMU_ATTACH_F_BYPASS), VIRTIO_IOMMU_S_INVAL);
    cr_assert_eq(spec_attach(v, 2, 3, VIRTIO_IOMMU_ATTACH_F_BYPASS), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(spec_attach(v, 2, 4, 0), VIRTIO_IOMMU_S_INVAL);
    cr_assert_eq(viommu_endpoint_domain(v, 2, &domain), -ENODEV);
    cr_assert_eq(viommu_endpoint_domain(v, 4, &domain), -ENODEV);
    viommu_free(v);
}

Test(attach, device_should_move_an_endpoint_attached_elsewhere)
{
    viommu *v = device_without_bypass();
    uint64_t gpa;
    uint32_t domain;

    cr_assert_eq(spec_attach(v, 1, 1, 0), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(spec_map(v, 1, 0x1000, 0x1fff, 0xa000, R), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(spec_attach(v, 2, 2, 0), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(spec_map(v, 2, 0x1000, 0x1fff, 0xb000, R), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(spec_attach(v, 2, 1, 0), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(viommu_endpoint_domain(v, 1, &domain), 0);
    cr_assert_eq(domain, 2);
    cr_assert(spec_access(v, 1, 0x1000, VIOMMU_ACCESS_READ, &gpa));
    cr_assert_eq(gpa, 0xb000);
    /* As after a DETACH: domain 1 lost its last endpoint and ceased to exist. */
    cr_assert_eq(spec_mapping_count(v, 1), -1);
    cr_assert_eq(spec_map(v, 1, 0x4000, 0x4fff, 0x0, R), VIRTIO_IOMMU_S_NOENT);
    viommu_free(v);
}

Test(attach, device_should_reject_incompatible_endpoints_with_unsupp)
{
    viommu *v = spec_device();
    uint32_t domain;

    /* Endpoint 2 reserves an IOVA range that domain 1 already maps. */
    cr_assert_eq(viommu_endpoint_add_resv(v, 2, 0x8000, 0x8fff, VIRTIO_IOMMU_RESV_MEM_T_RESERVED),
                 0);
    cr_assert_eq(viommu_endpoint_add_resv(v, 3, 0xf000, 0xffff, VIRTIO_IOMMU_RESV_MEM_T_MSI), 0);
    cr_assert_eq(spec_attach(v, 1, 1, 0), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(spec_map(v, 1, 0x8000, 0x8fff, 0x0, R), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(spec_attach(v, 1, 2, 0), VIRTIO_IOMMU_S_UNSUPP);
    cr_assert_eq(viommu_endpoint_domain(v, 2, &domain), -ENODEV);
    /* Compatible properties: attached. */
    cr_assert_eq(spec_attach(v, 1, 3, 0), VIRTIO_IOMMU_S_OK);
    viommu_free(v);
}

Test(attach, device_must_attach_when_it_does_not_reject)
{
    viommu *v = device_without_bypass();
    uint64_t gpa;
    uint32_t domain;

    cr_assert_eq(spec_attach(v, 5, 3, 0), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(viommu_endpoint_domain(v, 3, &domain), 0);
    cr_assert_eq(domain, 5);
    cr_assert_not(spec_access(v, 3, 0x1000, VIOMMU_ACCESS_READ, NULL), "an empty domain");
    cr_assert_eq(spec_map(v, 5, 0x1000, 0x1fff, 0x3000, R | W), VIRTIO_IOMMU_S_OK);
    cr_assert(spec_access(v, 3, 0x1ffe, VIOMMU_ACCESS_WRITE, &gpa));
    cr_assert_eq(gpa, 0x3ffe);
    viommu_free(v);
}

Test(attach, bypass_flag_creates_a_bypass_domain)
{
    viommu *v = device_without_bypass();
    uint64_t gpa;

    cr_assert_eq(spec_attach(v, 3, 1, VIRTIO_IOMMU_ATTACH_F_BYPASS), VIRTIO_IOMMU_S_OK);
    cr_assert(spec_access(v, 1, 0x123456789ull, VIOMMU_ACCESS_WRITE, &gpa));
    cr_assert_eq(gpa, 0x123456789ull);
    cr_assert_not(spec_access(v, 2, 0x1000, VIOMMU_ACCESS_READ, NULL));
    viommu_free(v);
}

/* ---- DETACH ---------------------------------------------------------- */

Test(detach, device_must_ignore_reserved)
{
    viommu *v = spec_device();
    uint8_t buf[SPEC_DETACH_LEN];
    size_t n;

    cr_assert_eq(spec_attach(v, 1, 1, 0), VIRTIO_IOMMU_S_OK);
    n = spec_enc_detach(buf, 1, 1);
    memset(buf + 12, 0xff, 8);
    cr_assert_eq(spec_request(v, buf, n, NULL), VIRTIO_IOMMU_S_OK);
    viommu_free(v);
}

Test(detach, device_must_reject_unknown_endpoints_with_noent)
{
    viommu *v = spec_device();

    cr_assert_eq(spec_attach(v, 1, 1, 0), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(spec_detach(v, 1, 99), VIRTIO_IOMMU_S_NOENT);
    cr_assert_eq(spec_mapping_count(v, 1), 0, "domain 1 still exists");
    viommu_free(v);
}

Test(detach, device_may_answer_inval_for_another_domain)
{
    viommu *v = spec_device();
    uint32_t domain;
    int status;

    cr_assert_eq(spec_attach(v, 1, 1, 0), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(spec_attach(v, 2, 2, 0), VIRTIO_IOMMU_S_OK);
    /* Domain 3 does not exist; endpoint 1 is not in domain 2; endpoint 3 is nowhere. */
    status = spec_detach(v, 3, 1);
    cr_assert(status == VIRTIO_IOMMU_S_INVAL || status == VIRTIO_IOMMU_S_OK, "%d", status);
    status = spec_detach(v, 2, 1);
    cr_assert(status == VIRTIO_IOMMU_S_INVAL || status == VIRTIO_IOMMU_S_OK, "%d", status);
    status = spec_detach(v, 1, 3);
    cr_assert(status == VIRTIO_IOMMU_S_INVAL || status == VIRTIO_IOMMU_S_OK, "%d", status);
    /* Whatever the answer, a DETACH naming the wrong domain leaves endpoint 1 where it was. */
    cr_assert_eq(viommu_endpoint_domain(v, 1, &domain), 0);
    cr_assert_eq(domain, 1);
    cr_assert_eq(viommu_endpoint_domain(v, 2, &domain), 0);
    cr_assert_eq(domain, 2);
    viommu_free(v);
}

Test(detach, device_must_cut_access_to_the_domain)
{
    viommu *v = device_without_bypass();
    viommu *bypassing = spec_device();
    uint64_t gpa = 0;

    cr_assert_eq(spec_attach(v, 1, 1, 0), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(spec_attach(v, 1, 2, 0), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(spec_map(v, 1, 0x1000, 0x1fff, 0xa000, R | W), VIRTIO_IOMMU_S_OK);
    cr_assert(spec_access(v, 1, 0x1000, VIOMMU_ACCESS_READ, NULL));
    cr_assert_eq(spec_detach(v, 1, 1), VIRTIO_IOMMU_S_OK);
    cr_assert_not(spec_access(v, 1, 0x1000, VIOMMU_ACCESS_READ, NULL));
    cr_assert(spec_access(v, 2, 0x1000, VIOMMU_ACCESS_READ, NULL), "the other endpoint keeps it");
    /* In bypass after DETACH: identity, never the domain's mapping. */
    cr_assert_eq(spec_attach(bypassing, 1, 1, 0), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(spec_map(bypassing, 1, 0x1000, 0x1fff, 0xa000, R), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(spec_detach(bypassing, 1, 1), VIRTIO_IOMMU_S_OK);
    cr_assert(spec_access(bypassing, 1, 0x1000, VIOMMU_ACCESS_READ, &gpa));
    cr_assert_eq(gpa, 0x1000);
    viommu_free(v);
    viommu_free(bypassing);
}

Test(detach, domain_ceases_to_exist_with_its_last_endpoint)
{
    viommu *v = device_without_bypass();

    cr_assert_eq(spec_attach(v, 1, 1, 0), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(spec_map(v, 1, 0x1000, 0x1fff, 0xa000, R), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(spec_detach(v, 1, 1), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(spec_map(v, 1, 0x2000, 0x2fff, 0xa000, R), VIRTIO_IOMMU_S_NOENT);
    /* Its ID can be reused: a new, empty domain. */
    cr_assert_eq(spec_attach(v, 1, 2, 0), VIRTIO_IOMMU_S_OK);
    cr_assert_eq(spec_mapping_count(v, 1), 0);
    cr_assert_not(spec_access(v, 2, 0x1000, VIOMMU_ACCESS_READ, NULL));
    viommu_free(v);
}

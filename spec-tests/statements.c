/* SPDX-License-Identifier: MIT */
/*
 * statements.c - every statement of the IOMMU section that the device must
 * honour: each MUST / SHOULD / MAY of a \devicenormative block, plus the
 * descriptive sentences that constrain the device (level TEXT) and the
 * seven UNMAP examples (level EXAMPLE, run twice). Sections use the spec's
 * own labels below "Device Types / IOMMU Device".
 */
#include "statements.h"

#define FEATURES "Feature bits"
#define CONFIG "Device configuration layout"
#define INIT "Device initialization"
#define OPS "Device operations"
#define ATTACH "Device operations / ATTACH request"
#define DETACH "Device operations / DETACH request"
#define MAP "Device operations / MAP request"
#define UNMAP "Device operations / UNMAP request"
#define PROBE "Device operations / PROBE request"
#define RESV "Device operations / PROBE properties / RESVMEM"
#define FAULT "Device operations / Fault reporting"

const spec_statement spec_statements[] = {
    {"features", "device_should_offer_map_unmap", FEATURES, "SHOULD",
     "The device SHOULD offer feature bit VIRTIO_IOMMU_F_MAP_UNMAP."},
    {"features", "new_devices_should_not_offer_bypass", FEATURES, "SHOULD NOT",
     "New devices SHOULD NOT offer VIRTIO_IOMMU_F_BYPASS."},
    {"features", "devices_should_not_offer_both_bypass_features", FEATURES, "SHOULD NOT",
     "Devices SHOULD NOT offer both VIRTIO_IOMMU_F_BYPASS and VIRTIO_IOMMU_F_BYPASS_CONFIG."},

    {"config", "device_must_set_a_page_size_bit", CONFIG, "MUST",
     "The device MUST set at least one bit in page_size_mask, describing the page "
     "granularity."},
    {"config", "device_may_set_several_page_size_bits", CONFIG, "MAY",
     "The device MAY set more than one bit in page_size_mask."},
    {"config", "device_may_initialize_bypass_to_one", CONFIG, "MAY",
     "If the device offers the VIRTIO_IOMMU_F_BYPASS_CONFIG feature, it MAY initialize the "
     "bypass field to 1."},
    {"config", "bypass_should_not_change_on_device_reset", CONFIG, "SHOULD NOT",
     "Field bypass SHOULD NOT change on device reset,"},
    {"config", "bypass_should_be_restored_on_system_reset", CONFIG, "SHOULD",
     "but SHOULD be restored to its initial value on system reset."},
    {"config", "device_must_present_bypass_as_zero_or_one", CONFIG, "MUST NOT",
     "The device MUST NOT present a value different than 0 or 1 in bypass."},

    {"init", "reset_leaves_endpoints_unattached", INIT, "TEXT",
     "When the device is reset, endpoints are not attached to any domain."},

    {"operations", "device_should_set_status_ok_on_success", OPS, "SHOULD",
     "The device SHOULD set status to VIRTIO_IOMMU_S_OK if a request succeeds."},
    {"operations", "device_should_not_write_requests_of_unknown_type", OPS, "SHOULD NOT",
     "If a request type is not recognized, the device SHOULD NOT write the buffer and SHOULD "
     "set the used length to zero."},
    {"operations", "device_must_ignore_head_reserved", OPS, "MUST",
     "The device MUST ignore field reserved of struct virtio_iommu_req_head"},
    {"operations", "device_should_zero_tail_reserved", OPS, "SHOULD",
     "and SHOULD set field reserved of struct virtio_iommu_req_tail to zero."},
    {"operations", "device_should_not_let_unattached_endpoints_access_memory", OPS, "SHOULD NOT",
     "The device SHOULD NOT let unattached endpoints that are not in bypass mode access the "
     "guest-physical address space."},
    {"operations", "requests_return_with_a_status_in_the_used_ring", OPS, "TEXT",
     "Driver send requests on the request virtqueue, notifies the device and waits for the "
     "device to return the request with a status in the used ring. All requests are split in "
     "two parts: one device-readable, one device-writable."},
    {"operations", "device_returns_unparsable_requests_unwritten", OPS, "TEXT",
     "When the device fails to parse a request, for instance if a request is too small for its "
     "type and the device cannot find the tail, then it is unable to set status. In that case, "
     "it returns the buffers without writing to them."},
    {"operations", "bypass_mode_translates_by_identity", OPS, "TEXT",
     "An endpoint is in bypass mode if BYPASS_CONFIG is offered and bypass is 1 and the "
     "endpoint is not attached (even if the driver does not accept the feature). All accesses "
     "from an endpoint in bypass mode are allowed and translated using the identity function."},
    {"operations", "domain_range_limits_domain_ids", OPS, "TEXT",
     "If the VIRTIO_IOMMU_F_DOMAIN_RANGE feature is offered, domain_range describes the values "
     "supported in a domain field. If the feature is not offered, any domain value is valid."},

    {"attach", "device_must_reject_nonzero_reserved_with_inval", ATTACH, "MUST",
     "If the reserved field of an ATTACH request is not zero, the device MUST reject the "
     "request and set status to VIRTIO_IOMMU_S_INVAL."},
    {"attach", "device_must_reject_unknown_flags_with_inval", ATTACH, "MUST",
     "If the device does not recognize a flags bit, it MUST reject the request and set status "
     "to VIRTIO_IOMMU_S_INVAL."},
    {"attach", "device_must_reject_unknown_endpoints_with_noent", ATTACH, "MUST",
     "If the endpoint identified by endpoint doesn't exist, the device MUST reject the request "
     "and set status to VIRTIO_IOMMU_S_NOENT."},
    {"attach", "device_may_attach_several_endpoints_else_must_answer_unsupp", ATTACH, "MAY",
     "If another endpoint is already attached to the domain identified by domain, then the "
     "device MAY attach the endpoint identified by endpoint to the domain. If it cannot do so, "
     "the device MUST reject the request and set status to VIRTIO_IOMMU_S_UNSUPP."},
    {"attach", "device_should_reject_an_inconsistent_bypass_flag_with_inval", ATTACH, "SHOULD",
     "If the domain already exists and the VIRTIO_IOMMU_ATTACH_F_BYPASS flag is not consistent "
     "with that domain, the device SHOULD reject the request and set status to "
     "VIRTIO_IOMMU_S_INVAL."},
    {"attach", "device_should_move_an_endpoint_attached_elsewhere", ATTACH, "SHOULD",
     "If the endpoint identified by endpoint is already attached to another domain, then the "
     "device SHOULD first detach it from that domain and attach it to the one identified by "
     "domain, as if the driver issued a DETACH request followed by the ATTACH request."},
    {"attach", "device_should_reject_incompatible_endpoints_with_unsupp", ATTACH, "SHOULD",
     "If properties of the endpoint (obtained with a PROBE request) are compatible with "
     "properties of other endpoints already attached to the requested domain, then the device "
     "SHOULD attach the endpoint. Otherwise the device SHOULD reject the request and set "
     "status to VIRTIO_IOMMU_S_UNSUPP."},
    {"attach", "device_must_attach_when_it_does_not_reject", ATTACH, "MUST",
     "A device that does not reject the request MUST attach the endpoint."},
    {"attach", "bypass_flag_creates_a_bypass_domain", ATTACH, "TEXT",
     "When the VIRTIO_IOMMU_F_BYPASS_CONFIG is negotiated, the driver can set the "
     "VIRTIO_IOMMU_ATTACH_F_BYPASS flag to create a bypass domain. Endpoints attached to this "
     "domain are in bypass mode."},

    {"detach", "device_must_ignore_reserved", DETACH, "MUST", "The device MUST ignore reserved."},
    {"detach", "device_must_reject_unknown_endpoints_with_noent", DETACH, "MUST",
     "If the endpoint identified by endpoint doesn't exist, then the device MUST reject the "
     "request and set status to VIRTIO_IOMMU_S_NOENT."},
    {"detach", "device_may_answer_inval_for_another_domain", DETACH, "MAY",
     "If the domain identified by domain doesn't exist, or if the endpoint identified by "
     "endpoint isn't attached to this domain, then the device MAY set the request status to "
     "VIRTIO_IOMMU_S_INVAL."},
    {"detach", "device_must_cut_access_to_the_domain", DETACH, "MUST",
     "The device MUST ensure that after being detached from a domain, the endpoint cannot "
     "access any mapping from that domain."},
    {"detach", "domain_ceases_to_exist_with_its_last_endpoint", DETACH, "TEXT",
     "After all endpoints have been successfully detached from a domain, it ceases to exist "
     "and its ID can be reused by the driver for another domain."},

    {"map", "device_should_reject_unaligned_ranges_with_range", MAP, "SHOULD",
     "If virt_start, phys_start or (virt_end + 1) is not aligned on the page granularity, the "
     "device SHOULD reject the request and set status to VIRTIO_IOMMU_S_RANGE."},
    {"map", "device_should_reject_overlaps_with_inval", MAP, "SHOULD",
     "If a mapping already exists in the requested range, the device SHOULD reject the request "
     "and set status to VIRTIO_IOMMU_S_INVAL."},
    {"map", "device_must_reject_unknown_flags_with_inval", MAP, "MUST",
     "If the device doesn't recognize a flags bit, it MUST reject the request and set status "
     "to VIRTIO_IOMMU_S_INVAL."},
    {"map", "device_should_reject_unknown_domains_with_noent", MAP, "SHOULD",
     "If domain does not exist, the device SHOULD reject the request and set status to "
     "VIRTIO_IOMMU_S_NOENT."},
    {"map", "device_should_reject_bypass_domains_with_inval", MAP, "SHOULD",
     "If the domain is a bypass domain, the device SHOULD reject the request and set status to "
     "VIRTIO_IOMMU_S_INVAL."},
    {"map", "device_must_not_allow_writes_without_the_write_flag", MAP, "MUST NOT",
     "The device MUST NOT allow writes to a range mapped without the VIRTIO_IOMMU_MAP_F_WRITE "
     "flag."},
    {"map", "device_may_allow_reads_of_write_only_mappings", MAP, "MAY",
     "However, if the underlying architecture does not support write-only mappings, the device "
     "MAY allow reads to a range mapped with VIRTIO_IOMMU_MAP_F_WRITE but not "
     "VIRTIO_IOMMU_MAP_F_READ."},
    {"map", "device_refuses_maps_outside_the_input_range", OPS, "TEXT",
     "If the VIRTIO_IOMMU_F_INPUT_RANGE feature is offered, input_range contains the virtual "
     "address range that the IOMMU is able to translate. Any mapping request to virtual "
     "addresses outside of this range fails."},
    {"map", "map_and_unmap_need_f_map_unmap_negotiated", MAP, "TEXT",
     "This request is only available when VIRTIO_IOMMU_F_MAP_UNMAP has been negotiated."},
    {"map", "endpoints_translate_va_minus_virt_start_plus_phys_start", MAP, "TEXT",
     "After the request succeeds, all endpoints attached to this domain can access memory in "
     "the range [virt_start; virt_end]: PA = VA - virt_start + phys_start."},

    {"unmap", "device_may_answer_inval_for_nonzero_reserved", UNMAP, "MAY",
     "If the reserved field of an UNMAP request is not zero, the device MAY set the request "
     "status to VIRTIO_IOMMU_S_INVAL, in which case the device MAY perform the UNMAP "
     "operation."},
    {"unmap", "device_should_reject_unknown_domains_with_noent", UNMAP, "SHOULD",
     "If domain does not exist, the device SHOULD set the request status to "
     "VIRTIO_IOMMU_S_NOENT."},
    {"unmap", "device_should_reject_bypass_domains_with_inval", UNMAP, "SHOULD",
     "If the domain is a bypass domain, the device SHOULD reject the request and set status to "
     "VIRTIO_IOMMU_S_INVAL."},
    {"unmap", "device_should_answer_range_and_remove_nothing_when_splitting", UNMAP, "SHOULD",
     "If a mapping affected by the range is not covered in its entirety by the range (the "
     "UNMAP request would split the mapping), then the device SHOULD set the request status to "
     "VIRTIO_IOMMU_S_RANGE, and SHOULD NOT remove any mapping."},
    {"unmap", "device_should_remove_mappings_of_a_partly_covered_range", UNMAP, "SHOULD",
     "If part of the range or the full range is not covered by an existing mapping, then the "
     "device SHOULD remove all mappings affected by the range and set the request status to "
     "VIRTIO_IOMMU_S_OK."},
    {"unmap", "full_range_removes_every_mapping", UNMAP, "TEXT",
     "UNMAP(domain, 0, ~0ULL) removes all mappings (the reason the request carries virt_start "
     "and virt_end)."},

    {"unmap_examples", "example_1_bytes", UNMAP, "EXAMPLE",
     "(1) unmap(0, 4) -> succeeds, doesn't unmap anything [1-byte granule]"},
    {"unmap_examples", "example_2_bytes", UNMAP, "EXAMPLE",
     "(2) a = map(0, 9); unmap(0, 9) -> succeeds, unmaps a [1-byte granule]"},
    {"unmap_examples", "example_3_bytes", UNMAP, "EXAMPLE",
     "(3) a = map(0, 4); b = map(5, 9); unmap(0, 9) -> succeeds, unmaps a and b [1-byte "
     "granule]"},
    {"unmap_examples", "example_4_bytes", UNMAP, "EXAMPLE",
     "(4) a = map(0, 9); unmap(0, 4) -> fails, doesn't unmap anything [1-byte granule]"},
    {"unmap_examples", "example_5_bytes", UNMAP, "EXAMPLE",
     "(5) a = map(0, 4); b = map(5, 9); unmap(0, 4) -> succeeds, unmaps a [1-byte granule]"},
    {"unmap_examples", "example_6_bytes", UNMAP, "EXAMPLE",
     "(6) a = map(0, 4); unmap(0, 9) -> succeeds, unmaps a [1-byte granule]"},
    {"unmap_examples", "example_7_bytes", UNMAP, "EXAMPLE",
     "(7) a = map(0, 4); b = map(10, 14); unmap(0, 14) -> succeeds, unmaps a and b [1-byte "
     "granule]"},
    {"unmap_examples", "example_1_4k_pages", UNMAP, "EXAMPLE",
     "(1) unmap(0, 4) -> succeeds, doesn't unmap anything [4 KiB pages]"},
    {"unmap_examples", "example_2_4k_pages", UNMAP, "EXAMPLE",
     "(2) a = map(0, 9); unmap(0, 9) -> succeeds, unmaps a [4 KiB pages]"},
    {"unmap_examples", "example_3_4k_pages", UNMAP, "EXAMPLE",
     "(3) a = map(0, 4); b = map(5, 9); unmap(0, 9) -> succeeds, unmaps a and b [4 KiB pages]"},
    {"unmap_examples", "example_4_4k_pages", UNMAP, "EXAMPLE",
     "(4) a = map(0, 9); unmap(0, 4) -> fails, doesn't unmap anything [4 KiB pages]"},
    {"unmap_examples", "example_5_4k_pages", UNMAP, "EXAMPLE",
     "(5) a = map(0, 4); b = map(5, 9); unmap(0, 4) -> succeeds, unmaps a [4 KiB pages]"},
    {"unmap_examples", "example_6_4k_pages", UNMAP, "EXAMPLE",
     "(6) a = map(0, 4); unmap(0, 9) -> succeeds, unmaps a [4 KiB pages]"},
    {"unmap_examples", "example_7_4k_pages", UNMAP, "EXAMPLE",
     "(7) a = map(0, 4); b = map(10, 14); unmap(0, 14) -> succeeds, unmaps a and b [4 KiB "
     "pages]"},

    {"probe", "device_must_ignore_reserved", PROBE, "MUST",
     "The device MUST ignore field reserved of a PROBE request."},
    {"probe", "device_should_reject_unknown_endpoints_with_noent", PROBE, "SHOULD",
     "If the endpoint identified by endpoint doesn't exist, then the device SHOULD reject the "
     "request and set status to VIRTIO_IOMMU_S_NOENT."},
    {"probe", "device_without_f_probe_should_not_write_probe_requests", PROBE, "SHOULD NOT",
     "If the device does not offer the VIRTIO_IOMMU_F_PROBE feature, and if the driver sends a "
     "VIRTIO_IOMMU_T_PROBE request, then the device SHOULD NOT write the buffer and SHOULD set "
     "the used length to zero."},
    {"probe", "device_should_zero_property_reserved_bits", PROBE, "SHOULD",
     "The device SHOULD set field reserved of a property to zero."},
    {"probe", "device_must_write_property_length_without_header", PROBE, "MUST",
     "The device MUST write the size of a property without the struct "
     "virtio_iommu_probe_property header, in bytes, into length."},
    {"probe", "device_must_place_properties_length_plus_4_apart", PROBE, "MUST",
     "When two properties follow each other, the device MUST put the second property exactly "
     "(length + 4) bytes after the beginning of the first one."},
    {"probe", "device_should_reject_short_property_buffers_with_inval", PROBE, "SHOULD",
     "If the properties list is smaller than probe_size, the device SHOULD NOT write any "
     "property. It SHOULD reject the request and set status to VIRTIO_IOMMU_S_INVAL."},
    {"probe", "device_should_zero_fill_unused_property_bytes", PROBE, "SHOULD",
     "If the device doesn't fill all probe_size bytes with properties, it SHOULD fill the "
     "remaining bytes of properties with zeroes."},

    {"resv_mem", "device_should_zero_reserved", RESV, "SHOULD",
     "The device SHOULD set reserved to zero."},
    {"resv_mem", "device_should_present_at_most_one_msi_region", RESV, "SHOULD NOT",
     "The device SHOULD NOT present more than one VIRTIO_IOMMU_RESV_MEM_T_MSI property per "
     "endpoint."},
    {"resv_mem", "device_should_not_present_overlapping_regions", RESV, "SHOULD NOT",
     "The device SHOULD NOT present multiple RESV_MEM properties that overlap each other for "
     "the same endpoint."},
    {"resv_mem", "device_should_reject_maps_overlapping_a_region", RESV, "SHOULD",
     "The device SHOULD reject a MAP request that overlaps a RESV_MEM region."},
    {"resv_mem", "device_should_keep_region_accesses_from_other_components", RESV, "SHOULD NOT",
     "The device SHOULD NOT allow accesses from the endpoint to RESV_MEM regions to affect any "
     "other component than the endpoint and the driver."},

    {"faults", "device_should_zero_reserved_fields", FAULT, "SHOULD",
     "The device SHOULD set reserved and reserved1 to zero."},
    {"faults", "device_should_zero_undefined_flags", FAULT, "SHOULD",
     "The device SHOULD set undefined flags to zero."},
    {"faults", "device_should_write_a_valid_endpoint", FAULT, "SHOULD",
     "The device SHOULD write a valid endpoint ID in endpoint."},
    {"faults", "device_may_omit_the_address", FAULT, "MAY",
     "The device MAY omit setting VIRTIO_IOMMU_FAULT_F_ADDRESS and writing address in any "
     "fault report, regardless of the reason."},
    {"faults", "device_should_not_split_a_report_over_buffers", FAULT, "SHOULD NOT",
     "If a buffer is too small to contain the fault report, the device SHOULD NOT use multiple "
     "buffers to describe it."},
    {"faults", "device_reports_the_reason_and_access", FAULT, "TEXT",
     "reason: VIRTIO_IOMMU_FAULT_R_DOMAIN when the endpoint accessed address without being "
     "attached to a domain, VIRTIO_IOMMU_FAULT_R_MAPPING when address wasn't mapped or didn't "
     "have the correct protection flags; flags: information about the fault context."},
    {"faults", "device_may_drop_events_without_buffers", FAULT, "TEXT",
     "If no buffer is available, the device can either wait for one to be consumed, or drop "
     "the event."},
};

const size_t spec_statement_count = sizeof(spec_statements) / sizeof(spec_statements[0]);

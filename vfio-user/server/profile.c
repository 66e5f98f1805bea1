/* SPDX-License-Identifier: MIT */
/*
 * Profiles: the behaviours of the servers recorded in
 * tests/transcripts/ (libvfio-user's sample server in 2022 and 2026,
 * QEMU 7.2's multi-process server) and this project's own, and the
 * VERSION capabilities each answers with.
 */
#include <errno.h>
#include <json-glib/json-glib.h>

#include "private.h"

#define PEER_MAX_REGIONS_2022 16u
#define PEER_MAX_REGIONS_2026 1000000u

static const vus_profile profiles[] = {
    {
        .id = VFIO_USER_SERVER_PROFILE_OWN,
        .name = "own",
        .dialect = VFIO_USER_DIALECT_2021,
        .caps_migration = true,
        .caps_own = true,
        .max_msg_size = VUS_OWN_MAX_MSG_SIZE,
        .max_region_size = VUS_MAX_REGION_SIZE,
        /* The spec: "A command to map over an existing region must be failed ... EEXIST". */
        .map_overlap_errno = EEXIST,
        .map_limit_errno = ENOSPC,
        .unmap_bitmap = true,
        .dirty_pages = true,
        .dirty_pages_errno = EINVAL,
    },
    {
        .id = VFIO_USER_SERVER_PROFILE_LIBVFIO_USER_2022,
        .name = "libvfio-user-2022",
        .dialect = VFIO_USER_DIALECT_0_9_1,
        .caps_migration = true,
        .max_msg_size = VUS_PEER_MAX_MSG_SIZE,
        .max_unmap_argsz = VUS_MAX_DATA_XFER,
        .max_regions = PEER_MAX_REGIONS_2022,
        .max_region_size = VUS_MAX_REGION_SIZE,
        .map_overlap_errno = EINVAL,
        .map_identical_ok = true,
        .map_limit_errno = EINVAL,
        .unmap_lenient = true,
        .unmap_bitmap = true,
        .dirty_pages = true,
        .bitmap_strict = true,
        .pgsize_fatal = true,
    },
    {
        .id = VFIO_USER_SERVER_PROFILE_QEMU_7_2,
        .name = "qemu-7.2",
        .dialect = VFIO_USER_DIALECT_0_9_1,
        .max_msg_size = VUS_PEER_MAX_MSG_SIZE,
        .max_unmap_argsz = VUS_MAX_DATA_XFER,
        .max_regions = PEER_MAX_REGIONS_2022,
        .max_region_size = VUS_MAX_REGION_SIZE,
        .map_overlap_errno = EINVAL,
        .map_identical_ok = true,
        .map_limit_errno = EINVAL,
        .unmap_lenient = true,
        /* "migration not configured" */
        .dirty_pages_errno = ENOTSUP,
        .bitmap_strict = true,
    },
    {
        .id = VFIO_USER_SERVER_PROFILE_LIBVFIO_USER_2026,
        .name = "libvfio-user-2026",
        .dialect = VFIO_USER_DIALECT_FINAL,
        .json_spaced = true,
        .caps_migration = true,
        .max_msg_size = VUS_PEER_MAX_MSG_SIZE,
        .max_unmap_argsz = VUS_MAX_DATA_XFER,
        .max_regions = PEER_MAX_REGIONS_2026,
        .max_region_size = VUS_MAX_REGION_SIZE,
        .map_overlap_errno = EINVAL,
        .map_identical_ok = true,
        .map_limit_errno = EINVAL,
        .unmap_lenient = true,
        .unmap_bitmap = true,
        .dirty_pages_errno = EINVAL,
        .dma_logging = true,
        .bitmap_strict = true,
        .pgsize_fatal = true,
        .twin_socket = true,
    },
};

/* PROFILE_OWN in each dialect: tables and partial unmap exist only in 2021. */
static vus_profile own[3];
static GOnce own_once = G_ONCE_INIT;

static gpointer own_init(gpointer unused)
{
    (void)unused;
    for (int d = 0; d < 3; d++) {
        own[d] = profiles[0];
        own[d].dialect = (vfio_user_dialect)d;
    }
    own[VFIO_USER_DIALECT_2021].unmap_partial = true;
    own[VFIO_USER_DIALECT_2021].caps_unmap_partial = true;
    /* final logs through DEVICE_FEATURE; DIRTY_PAGES does not exist there. */
    own[VFIO_USER_DIALECT_FINAL].dirty_pages = false;
    own[VFIO_USER_DIALECT_FINAL].dma_logging = true;
    return NULL;
}

const vus_profile *vus_profile_get(vfio_user_server_profile p, vfio_user_dialect dialect)
{
    if (p == VFIO_USER_SERVER_PROFILE_OWN) {
        if ((unsigned)dialect > VFIO_USER_DIALECT_FINAL)
            return NULL;
        g_once(&own_once, own_init, NULL);
        return &own[dialect];
    }
    for (size_t i = 0; i < G_N_ELEMENTS(profiles); i++)
        if (profiles[i].id == p)
            return &profiles[i];
    return NULL;
}

int vfio_user_server_profile_parse(const char *name, vfio_user_server_profile *out)
{
    if (!name)
        return -EINVAL;
    for (size_t i = 0; i < G_N_ELEMENTS(profiles); i++) {
        if (strcmp(profiles[i].name, name) == 0) {
            *out = profiles[i].id;
            return 0;
        }
    }
    return -EINVAL;
}

const char *vfio_user_server_profile_name(vfio_user_server_profile p)
{
    for (size_t i = 0; i < G_N_ELEMENTS(profiles); i++)
        if (profiles[i].id == p)
            return profiles[i].name;
    return NULL;
}

/*
 * json-c's JSON_C_TO_STRING_SPACED layout, which libvfio-user 2026 sends:
 * a space after '{', ':' and ',' and before '}', "{ }" when empty.
 * Applied to json-glib's compact output, outside string literals only.
 */
static char *json_spaced(const char *compact)
{
    GString *s = g_string_sized_new(strlen(compact) * 2);
    bool in_str = false, esc = false;

    for (const char *p = compact; *p; p++) {
        char ch = *p;

        if (in_str) {
            g_string_append_c(s, ch);
            if (esc)
                esc = false;
            else if (ch == '\\')
                esc = true;
            else if (ch == '"')
                in_str = false;
            continue;
        }
        switch (ch) {
        case '"':
            in_str = true;
            g_string_append_c(s, ch);
            break;
        case '{':
            g_string_append(s, "{ ");
            break;
        case '}':
            if (s->len >= 2 && s->str[s->len - 1] == ' ' && s->str[s->len - 2] == '{')
                g_string_append(s, "}");
            else
                g_string_append(s, " }");
            break;
        case ':':
            g_string_append(s, ": ");
            break;
        case ',':
            g_string_append(s, ", ");
            break;
        default:
            g_string_append_c(s, ch);
        }
    }
    return g_string_free(s, FALSE);
}

char *vus_caps_json(const vus_profile *prof, uint32_t max_regions, uint64_t pgsize, bool twin)
{
    g_autoptr(JsonBuilder) b = json_builder_new();
    g_autoptr(JsonGenerator) gen = json_generator_new();
    g_autoptr(JsonNode) root = NULL;
    char *compact, *out;

    /* Member order is the order the real servers send. */
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "capabilities");
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "max_msg_fds");
    json_builder_add_int_value(b, VUS_MAX_MSG_FDS);
    if (prof->caps_own) {
        json_builder_set_member_name(b, "max_msg_size");
        json_builder_add_int_value(b, prof->max_msg_size);
    }
    json_builder_set_member_name(b, "max_data_xfer_size");
    json_builder_add_int_value(b, VUS_MAX_DATA_XFER);
    if (prof->caps_own) {
        json_builder_set_member_name(b, "max_dma_maps");
        json_builder_add_int_value(b, max_regions);
    }
    if (prof->caps_migration) {
        json_builder_set_member_name(b, "migration");
        json_builder_begin_object(b);
        json_builder_set_member_name(b, "pgsize");
        json_builder_add_int_value(b, (gint64)pgsize);
        json_builder_end_object(b);
    }
    if (prof->caps_unmap_partial) {
        json_builder_set_member_name(b, "unmap_partial");
        json_builder_add_boolean_value(b, TRUE);
    }
    if (twin) {
        json_builder_set_member_name(b, "twin_socket");
        json_builder_begin_object(b);
        json_builder_set_member_name(b, "supported");
        json_builder_add_boolean_value(b, TRUE);
        json_builder_set_member_name(b, "fd_index");
        json_builder_add_int_value(b, 0);
        json_builder_end_object(b);
    }
    json_builder_end_object(b);
    json_builder_end_object(b);

    root = json_builder_get_root(b);
    json_generator_set_root(gen, root);
    compact = json_generator_to_data(gen, NULL);
    if (!prof->json_spaced)
        return compact;
    out = json_spaced(compact);
    g_free(compact);
    return out;
}

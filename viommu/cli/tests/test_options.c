/* SPDX-License-Identifier: MIT */
/* Tests of the option-value parsers the subcommands share. */
#include "commands.h"

#include <criterion/criterion.h>
#include <string.h>

Test(cli_parse_u64, reads_decimal_and_prefixed_hex)
{
    uint64_t v;

    cr_assert(cli_parse_u64("0", &v));
    cr_assert_eq(v, 0);
    cr_assert(cli_parse_u64("4096", &v));
    cr_assert_eq(v, 4096);
    cr_assert(cli_parse_u64("0xfee00000", &v));
    cr_assert_eq(v, 0xfee00000);
    cr_assert(cli_parse_u64("0XFFFFFFFFFFFFFFFF", &v));
    cr_assert_eq(v, UINT64_MAX);
}

Test(cli_parse_u64, rejects_signs_blanks_garbage_and_overflow)
{
    uint64_t v = 7;

    cr_assert_not(cli_parse_u64("", &v));
    cr_assert_not(cli_parse_u64("-1", &v));
    cr_assert_not(cli_parse_u64("+1", &v));
    cr_assert_not(cli_parse_u64(" 1", &v));
    cr_assert_not(cli_parse_u64("1 ", &v));
    cr_assert_not(cli_parse_u64("0x", &v));
    cr_assert_not(cli_parse_u64("12abc", &v));
    cr_assert_not(cli_parse_u64("ff", &v));
    cr_assert_not(cli_parse_u64("0x10000000000000000", &v));
    cr_assert_not(cli_parse_u64("18446744073709551616", &v));
    cr_assert_eq(v, 7, "the value is untouched on failure");
}

Test(cli_parse_range, reads_inclusive_ranges)
{
    uint64_t a, b;

    cr_assert(cli_parse_range("0-0xffffffffffffffff", &a, &b));
    cr_assert_eq(a, 0);
    cr_assert_eq(b, UINT64_MAX);
    cr_assert(cli_parse_range("5-5", &a, &b));
    cr_assert_eq(a, 5);
    cr_assert_eq(b, 5);
}

Test(cli_parse_range, rejects_inverted_or_incomplete_ranges)
{
    uint64_t a, b;

    cr_assert_not(cli_parse_range("6-5", &a, &b));
    cr_assert_not(cli_parse_range("5", &a, &b));
    cr_assert_not(cli_parse_range("5-", &a, &b));
    cr_assert_not(cli_parse_range("-5", &a, &b));
    cr_assert_not(cli_parse_range("1-2-3", &a, &b));
}

Test(cli_parse_id_list, reads_ids_and_ranges)
{
    GArray *ids = g_array_new(FALSE, FALSE, sizeof(uint32_t));

    cr_assert(cli_parse_id_list("0,24-26,0x30", ids, 100, NULL));
    cr_assert_eq(ids->len, 5);
    cr_assert_eq(g_array_index(ids, uint32_t, 0), 0);
    cr_assert_eq(g_array_index(ids, uint32_t, 1), 24);
    cr_assert_eq(g_array_index(ids, uint32_t, 3), 26);
    cr_assert_eq(g_array_index(ids, uint32_t, 4), 48);
    g_array_free(ids, TRUE);
}

Test(cli_parse_id_list, bounds_the_number_of_ids)
{
    GArray *ids = g_array_new(FALSE, FALSE, sizeof(uint32_t));
    GError *error = NULL;

    cr_assert_not(cli_parse_id_list("0-0xffffffff", ids, 65536, &error));
    cr_assert_not_null(error);
    cr_assert_eq(ids->len, 0, "nothing was expanded");
    g_clear_error(&error);
    cr_assert_not(cli_parse_id_list("1,2,3", ids, 2, &error));
    g_clear_error(&error);
    g_array_free(ids, TRUE);
}

Test(cli_parse_id_list, rejects_ids_beyond_32_bits_and_junk)
{
    GArray *ids = g_array_new(FALSE, FALSE, sizeof(uint32_t));
    GError *error = NULL;

    cr_assert_not(cli_parse_id_list("0x100000000", ids, 10, &error));
    cr_assert(strstr(error->message, "32-bit"), "%s", error->message);
    g_clear_error(&error);
    cr_assert_not(cli_parse_id_list("1,,2", ids, 10, &error));
    g_clear_error(&error);
    cr_assert_not(cli_parse_id_list("", ids, 10, &error));
    g_clear_error(&error);
    cr_assert_not(cli_parse_id_list("3-1", ids, 10, &error));
    g_clear_error(&error);
    g_array_free(ids, TRUE);
}

// SPDX-License-Identifier: MIT
/*
 * test_describe_cli.c - `viommu describe` run as a user runs it: the
 * program, its output, its files and its exit status.
 */
#include <criterion/criterion.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>

struct run {
    char *out;
    char *err;
    int status;
};

static void run_free(struct run *r)
{
    g_free(r->out);
    g_free(r->err);
}

/* Runs the describe program with the NULL-terminated arguments. */
static struct run describe(const char *first, ...)
{
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    struct run r = {0};
    int status;
    va_list ap;

    g_ptr_array_add(argv, (char *)VIOMMU_DESCRIBE_EXE);
    g_ptr_array_add(argv, (char *)"describe");
    va_start(ap, first);
    for (const char *a = first; a; a = va_arg(ap, const char *))
        g_ptr_array_add(argv, (char *)a);
    va_end(ap);
    g_ptr_array_add(argv, NULL);
    cr_assert(g_spawn_sync(NULL, (char **)argv->pdata, NULL, G_SPAWN_DEFAULT, NULL, NULL, &r.out,
                           &r.err, &status, NULL));
    cr_assert(WIFEXITED(status), "the program did not exit normally");
    r.status = WEXITSTATUS(status);
    return r;
}

static char *tmp_path(const char *name)
{
    g_autofree char *dir = g_dir_make_tmp("describe-cli-XXXXXX", NULL);

    cr_assert_not_null(dir);
    return g_build_filename(dir, name, NULL);
}

static void remove_tmp(const char *path)
{
    g_autofree char *dir = g_path_get_dirname(path);

    g_unlink(path);
    g_rmdir(dir);
}

static char *data_path(const char *name)
{
    return g_build_filename(TEST_DATA_DIR, name, NULL);
}

/* Decodes a .dtb file with dtc. */
static char *dtc_decode(const char *path)
{
    char *argv[] = {"dtc", "-q", "-I", "dtb", "-O", "dts", (char *)path, NULL};
    char *out = NULL;
    int status;

    cr_assert(g_spawn_sync(NULL, argv, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_STDERR_TO_DEV_NULL, NULL,
                           NULL, &out, NULL, &status, NULL));
    cr_assert(g_spawn_check_wait_status(status, NULL));
    return out;
}

static void assert_has(const char *text, const char *what)
{
    cr_assert(strstr(text, what) != NULL, "missing '%s' in:\n%s", what, text);
}

/* Runs with the arguments expecting @status and an error mentioning @what. */
#define assert_refused(status_, what, ...)                                                         \
    do {                                                                                           \
        struct run r_ = describe(__VA_ARGS__, NULL);                                               \
        cr_assert_eq(r_.status, status_, "status %d, stderr: %s", r_.status, r_.err);              \
        cr_assert_str_empty(r_.out);                                                               \
        assert_has(r_.err, what);                                                                  \
        run_free(&r_);                                                                             \
    } while (0)

Test(describe_cli, prints_help_and_exits_0)
{
    struct run r = describe("--help", NULL);

    cr_assert_eq(r.status, 0);
    assert_has(r.out, "--pci-iommu");
    assert_has(r.out, "--mmio-endpoint");
    assert_has(r.out, "--viot");
    run_free(&r);
}

Test(describe_cli, prints_the_q35_viot_table_as_hex_and_fields)
{
    struct run r = describe("--pci-iommu", "00:02.0", "--endpoints", "0000-00ff", "--viot", NULL);

    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    assert_has(r.out, "0030: 03 00 10 00 00 00 10 00 00 00 00 00 00 00 00 00");
    assert_has(r.out, "0050: 30 00 00 00 00 00 00 00");
    assert_has(r.out, "Length 88 (0x58)  Revision 0");
    assert_has(r.out,
               "@0x0030 type 3 length 16: virtio-pci IOMMU, segment 0, BDF 00:02.0 (0x0010)");
    assert_has(r.out, "@0x0040 type 1 length 24: PCI range, segments 0-0, BDF 00:00.0-00:1f.7 "
                      "(0x0000-0x00ff), first endpoint ID 0x0, IOMMU @0x0030");
    run_free(&r);
}

Test(describe_cli, writes_the_q35_viot_table_qemu_writes)
{
    g_autofree char *out = tmp_path("viot.bin");
    g_autofree char *ref_path = data_path("qemu-q35-viot.bin");
    g_autofree char *ours = NULL, *qemu = NULL;
    gsize ours_len, qemu_len;
    struct run r = describe("--pci-iommu", "0:00:02.0", "--endpoints", "00:00.0-00:1f.7", "--viot",
                            "-o", out, NULL);

    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    cr_assert_str_empty(r.out);
    cr_assert(g_file_get_contents(out, &ours, &ours_len, NULL));
    cr_assert(g_file_get_contents(ref_path, &qemu, &qemu_len, NULL));
    cr_assert_eq(ours_len, qemu_len);
    /* Signature and length, then everything after the header's OEM fields. */
    cr_assert(memcmp(ours, qemu, 9) == 0);
    cr_assert(memcmp(ours + 36, qemu + 36, ours_len - 36) == 0);
    remove_tmp(out);
    run_free(&r);
}

Test(describe_cli, decodes_a_viot_table_file_and_refuses_a_corrupt_one)
{
    g_autofree char *ref_path = data_path("qemu-q35-viot.bin");
    g_autofree char *bad = tmp_path("bad.bin");
    g_autofree char *bytes = NULL;
    gsize len;
    struct run r = describe("--decode-viot", ref_path, NULL);

    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    assert_has(r.out, "OEM \"BOCHS \"  OEM table \"BXPC    \"");
    run_free(&r);

    cr_assert(g_file_get_contents(ref_path, &bytes, &len, NULL));
    bytes[0x44] ^= 1;
    cr_assert(g_file_set_contents(bad, bytes, (gssize)len, NULL));
    r = describe("--decode-viot", bad, NULL);
    cr_assert_eq(r.status, 1);
    cr_assert_str_empty(r.out);
    assert_has(r.err, "invalid VIOT table: the checksum is wrong");
    remove_tmp(bad);
    run_free(&r);
}

Test(describe_cli, prints_the_pci_device_tree_nodes_the_same_with_and_without_dtc)
{
    struct run a = describe("--pci-iommu", "00:02.0", "--endpoints", "0000-00ff", NULL);
    struct run b =
        describe("--pci-iommu", "00:02.0", "--endpoints", "0000-00ff", "--builtin-printer", NULL);

    cr_assert_eq(a.status, 0, "stderr: %s", a.err);
    cr_assert_eq(b.status, 0, "stderr: %s", b.err);
    assert_has(a.out, "\tpcie@10000000 {\n"
                      "\t\tiommu-map = <0x00 0x01 0x00 0x10 0x11 0x01 0x11 0xef>;\n");
    assert_has(a.out, "\t\tvirtio_iommu@2,0 {\n"
                      "\t\t\tphandle = <0x01>;\n"
                      "\t\t\t#iommu-cells = <0x01>;\n"
                      "\t\t\treg = <0x1000 0x00 0x00 0x00 0x00>;\n"
                      "\t\t\tcompatible = \"virtio,pci-iommu\\0pci1af4,1057\";\n"
                      "\t\t};\n");
    cr_assert_str_eq(b.out, a.out);
    run_free(&a);
    run_free(&b);
}

Test(describe_cli, adds_to_a_given_dtb_what_qemu_gives_arm_virt)
{
    g_autofree char *base_dts = data_path("qemu-arm-virt-base.dts");
    g_autofree char *ref_path = data_path("qemu-arm-virt-viommu.dts");
    g_autofree char *base = tmp_path("base.dtb");
    g_autofree char *out = tmp_path("out.dtb");
    g_autofree char *reference = NULL, *got = NULL;
    char *dtc[] = {"dtc", "-q", "-I", "dts", "-O", "dtb", "-o", base, base_dts, NULL};
    int status;

    cr_assert(
        g_spawn_sync(NULL, dtc, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL, NULL, &status, NULL));
    cr_assert(g_spawn_check_wait_status(status, NULL));
    struct run r = describe("--dtb", base, "--pci-iommu", "00:02.0", "--endpoints", "0000-ffff",
                            "-o", out, NULL);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    got = dtc_decode(out);
    cr_assert(g_file_get_contents(ref_path, &reference, NULL, NULL));
    cr_assert_str_eq(got, reference);
    run_free(&r);

    /* The built-in printer renders the whole virt tree as dtc does. */
    r = describe("--dtb", base, "--pci-iommu", "00:02.0", "--endpoints", "0000-ffff",
                 "--builtin-printer", NULL);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    cr_assert_str_eq(r.out, reference);
    remove_tmp(base);
    remove_tmp(out);
    run_free(&r);
}

Test(describe_cli, prints_an_mmio_virtio_iommu_and_its_endpoints)
{
    struct run r = describe("--mmio-iommu", "0xa003e00,47", "--mmio-endpoint", "0xa003c00",
                            "--mmio-endpoint", "0xa003a00@0x20", "--builtin-printer", NULL);

    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    assert_has(r.out, "\tvirtio_mmio@a003e00 {\n"
                      "\t\tphandle = <0x01>;\n"
                      "\t\t#iommu-cells = <0x01>;\n"
                      "\t\tdma-coherent;\n"
                      "\t\tinterrupts = <0x00 0x2f 0x01>;\n"
                      "\t\treg = <0x00 0xa003e00 0x00 0x200>;\n"
                      "\t\tcompatible = \"virtio,mmio\";\n");
    /* The endpoint without an ID takes the one after the highest given. */
    assert_has(r.out, "\tvirtio_mmio@a003c00 {\n\t\tiommus = <0x01 0x21>;\n");
    assert_has(r.out, "\tvirtio_mmio@a003a00 {\n\t\tiommus = <0x01 0x20>;\n");
    run_free(&r);
}

Test(describe_cli, puts_addresses_without_a_segment_in_the_segment_option)
{
    struct run r = describe("--segment", "2", "--pci-iommu", "00:02.0", "--endpoints", "0000-00ff",
                            "--endpoints", "3:00:00.0-3:00:00.7", "--viot", NULL);

    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    assert_has(r.out, "virtio-pci IOMMU, segment 2, BDF 00:02.0");
    assert_has(r.out, "PCI range, segments 2-2, BDF 00:00.0-00:1f.7 (0x0000-0x00ff), first "
                      "endpoint ID 0x20000");
    assert_has(r.out, "PCI range, segments 3-3, BDF 00:00.0-00:00.7 (0x0000-0x0007), first "
                      "endpoint ID 0x30000");
    run_free(&r);

    r = describe("--segment", "2", "--pci-iommu", "00:02.0", "--endpoints", "0000-00ff", NULL);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    assert_has(r.out, "\tpcie@30000000 {\n"
                      "\t\tiommu-map = <0x00 0x01 0x20000 0x10 0x11 0x01 0x20011 0xef>;\n");
    assert_has(r.out, "linux,pci-domain = <0x02>;");
    run_free(&r);
}

Test(describe_cli, takes_raw_interrupt_cells_and_a_window_size)
{
    struct run r = describe("--mmio-iommu", "0x10000000,47", "--mmio-irq-cells", "5", "--mmio-size",
                            "0x1000", "--builtin-printer", NULL);

    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    assert_has(r.out, "\t\tinterrupts = <0x05>;\n"
                      "\t\treg = <0x00 0x10000000 0x00 0x1000>;\n");
    run_free(&r);
    assert_refused(2, "give 1 to 4 cells", "--mmio-iommu", "0x1000", "--mmio-irq-cells",
                   "1,2,3,4,5");
    assert_refused(2, "non-zero size", "--mmio-iommu", "0x1000", "--mmio-size", "0");
}

Test(describe_cli, describes_an_mmio_iommu_in_viot)
{
    struct run r = describe("--mmio-iommu", "0xa003e00", "--mmio-endpoint", "0xa003c00@5",
                            "--endpoints", "1:00:00.0-1:00:1f.7", "--viot", NULL);

    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    assert_has(r.out, "@0x0030 type 4 length 16: virtio-mmio IOMMU at 0xa003e00");
    assert_has(r.out, "PCI range, segments 1-1, BDF 00:00.0-00:1f.7 (0x0000-0x00ff), first "
                      "endpoint ID 0x10000");
    assert_has(r.out, "MMIO endpoint at 0xa003c00, endpoint ID 0x5, IOMMU @0x0030");
    run_free(&r);
}

Test(describe_cli, refuses_malformed_options_with_status_2)
{
    assert_refused(2, "exactly one of --pci-iommu and --mmio-iommu", "--viot");
    assert_refused(2, "exactly one of", "--pci-iommu", "00:02.0", "--mmio-iommu", "0x1000");
    assert_refused(2, "--pci-iommu 00:20.0: expected", "--pci-iommu", "00:20.0");
    assert_refused(2, "--pci-iommu 00:02.8", "--pci-iommu", "00:02.8");
    assert_refused(2, "--endpoints 0000: expected FIRST-LAST", "--pci-iommu", "00:02.0",
                   "--endpoints", "0000");
    assert_refused(2, "LAST comes before FIRST", "--pci-iommu", "00:02.0", "--endpoints",
                   "00ff-0000");
    assert_refused(2, "one segment", "--pci-iommu", "00:02.0", "--endpoints",
                   "0:00:00.0-1:00:00.0");
    assert_refused(2, "32-bit", "--pci-iommu", "00:02.0", "--endpoints", "0000-00ff@0x100000000");
    assert_refused(2, "--mmio-endpoint zzz", "--pci-iommu", "00:02.0", "--mmio-endpoint", "zzz");
    assert_refused(2, "--segment 0x10000", "--segment", "0x10000", "--pci-iommu", "00:02.0");
    assert_refused(2, "need --mmio-iommu", "--pci-iommu", "00:02.0", "--mmio-size", "0x1000");
    assert_refused(2, "unexpected argument 'extra'", "--pci-iommu", "00:02.0", "extra");
    assert_refused(2, "Unknown option", "--no-such-option");
    assert_refused(2, "--dtb is for device-tree output", "--pci-iommu", "00:02.0", "--viot",
                   "--dtb", "x.dtb");
}

Test(describe_cli, refuses_a_malformed_topology_with_status_1)
{
    assert_refused(1, "PCI ranges 0000:0000-00ff and 0000:0080-0100 overlap", "--pci-iommu",
                   "00:02.0", "--endpoints", "0000-00ff", "--endpoints", "0080-0100");
    assert_refused(1, "share endpoint ID 0x5", "--pci-iommu", "00:02.0", "--endpoints", "0000-00ff",
                   "--mmio-endpoint", "0x1000@5");
    assert_refused(1, "own window", "--mmio-iommu", "0x1000", "--mmio-endpoint", "0x1100");
    assert_refused(1, "runs past the end", "--mmio-iommu", "0xffffffffffffff00");
}

Test(describe_cli, refuses_a_dtb_that_cannot_take_the_iommu_with_status_1)
{
    g_autofree char *mmio = tmp_path("mmio.dtb");
    g_autofree char *junk = tmp_path("junk.dtb");
    struct run r = describe("--mmio-iommu", "0x1000", "-o", mmio, NULL);

    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    run_free(&r);
    /* A tree without a PCI host bridge cannot take a PCI virtio-iommu. */
    assert_refused(1, "no host bridge", "--dtb", mmio, "--pci-iommu", "00:02.0");
    /* Nor the same virtio-iommu twice. */
    assert_refused(1, "already describes", "--dtb", mmio, "--mmio-iommu", "0x1000");
    assert_refused(1, "no node at an MMIO endpoint's address", "--dtb", mmio, "--mmio-iommu",
                   "0x2000", "--mmio-endpoint", "0x3000");
    cr_assert(g_file_set_contents(junk, "not a device tree", -1, NULL));
    assert_refused(1, "is not a valid .dtb", "--dtb", junk, "--pci-iommu", "00:02.0");
    assert_refused(1, "No such file", "--dtb", "/nonexistent/x.dtb", "--pci-iommu", "00:02.0");
    remove_tmp(mmio);
    remove_tmp(junk);
}

/* SPDX-License-Identifier: MIT */
/*
 * fuzz_qemu_log.c - libFuzzer target for everything a trace file reaches:
 * the line parser, the (plain or xz) reader and the replay engine with the
 * device model behind it. Whatever the input, nothing may crash, leak or
 * read out of bounds.
 */
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "qemu_log.h"
#include "replay.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void parse_lines(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data, *end = p + size;
    uint64_t lineno = 0;

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        qemu_log_event ev;
        GError *error = NULL;

        qemu_log_parse_line(p, len, ++lineno, &ev, &error);
        g_clear_error(&error);
        p += len + (nl ? 1 : 0);
    }
}

static void replay(const uint8_t *data, size_t size)
{
    int fd = memfd_create("trace", MFD_CLOEXEC);
    qemu_log_reader *r = NULL;
    replay_config cfg;
    replay_summary sum;
    GError *error = NULL;
    size_t done = 0;

    if (fd < 0)
        return;
    while (done < size) {
        ssize_t n = write(fd, data + done, size - done);
        if (n <= 0) {
            close(fd);
            return;
        }
        done += (size_t)n;
    }
    if (lseek(fd, 0, SEEK_SET) != 0 || qemu_log_reader_new_fd(fd, "fuzz", &r, NULL) < 0) {
        close(fd);
        return;
    }
    replay_config_init(&cfg);
    cfg.keep_going = true;
    /* Small limits keep each run short; the engine must cope with hitting them. */
    cfg.device.max_endpoints = 16;
    cfg.device.max_domains = 16;
    cfg.device.max_mappings_per_domain = 256;
    replay_run(&cfg, r, NULL, &sum, &error);
    g_clear_error(&error);
    replay_config_clear(&cfg);
    qemu_log_reader_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    parse_lines(data, size);
    replay(data, size);
    return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * qemu_log.h - a reader for QEMU's trace log (the lines QEMU prints with
 * `-trace 'virtio_iommu_*'` and the log backend), plain or xz-compressed.
 * Its file handling (standard input, xz detection and decoding, line
 * assembly) also serves the JSON Lines reader, through
 * qemu_log_reader_next_line().
 *
 * Every line is either an event this module knows (the virtio-iommu
 * requests, the virtio queue events that show the batches, the device's
 * translations), or ignored. A known event whose arguments do not parse is
 * an error naming the line; the reader then carries on with the next line,
 * so a caller can choose to stop or to keep going.
 *
 * Functions return 0 or a negative errno unless documented otherwise; the
 * GError, when one is passed, holds the sentence for the user.
 */
#ifndef VIOMMU_CLI_QEMU_LOG_H
#define VIOMMU_CLI_QEMU_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <glib.h>

/* The longest line accepted; QEMU's virtio-iommu lines are below 300 bytes. */
#define QEMU_LOG_MAX_LINE 4096

#define QEMU_LOG_ERROR (qemu_log_error_quark())
GQuark qemu_log_error_quark(void);

typedef enum qemu_log_error_code {
    QEMU_LOG_ERROR_MALFORMED, /* a line that does not parse */
    QEMU_LOG_ERROR_IO,        /* the file cannot be opened or read */
    QEMU_LOG_ERROR_XZ,        /* the xz stream is corrupt or truncated */
} qemu_log_error_code;

typedef enum qemu_log_event_type {
    QEMU_LOG_ATTACH,         /* virtio_iommu_attach */
    QEMU_LOG_DETACH,         /* virtio_iommu_detach */
    QEMU_LOG_MAP,            /* virtio_iommu_map */
    QEMU_LOG_UNMAP,          /* virtio_iommu_unmap */
    QEMU_LOG_RESV_PROPERTY,  /* virtio_iommu_fill_resv_property: a PROBE */
    QEMU_LOG_QUEUE_NOTIFY,   /* virtio_queue_notify: the driver kicked a queue */
    QEMU_LOG_QUEUE_POP,      /* virtqueue_pop: the device took a request */
    QEMU_LOG_TRANSLATE,      /* virtio_iommu_translate: a device access */
    QEMU_LOG_TRANSLATE_OUT,  /* virtio_iommu_translate_out: its result */
    QEMU_LOG_EVENT_TYPE_MAX, /* number of types, not a type */
} qemu_log_event_type;

/** qemu_log_event_name - QEMU's name of @type ("virtio_iommu_map", ...). */
const char *qemu_log_event_name(qemu_log_event_type type);

/**
 * qemu_log_event - one parsed line. Only the member of @u that @type names
 * is set. Values are exactly as printed; 32-bit IDs that QEMU prints with
 * %d (so 0xffffffff shows as -1) are turned back into their u32 value.
 */
typedef struct qemu_log_event {
    qemu_log_event_type type;
    uint64_t line;    /* 1-based line number in the file */
    bool has_prefix;  /* the line had a TID@SECONDS: prefix */
    uint64_t tid;     /* from the prefix */
    uint64_t time_us; /* from the prefix, in microseconds */
    union {
        struct {
            uint32_t domain;
            uint32_t endpoint;
        } attach; /* ATTACH and DETACH */
        struct {
            uint32_t domain;
            uint64_t virt_start;
            uint64_t virt_end;
            uint64_t phys_start;
            uint32_t flags;
        } map;
        struct {
            uint32_t domain;
            uint64_t virt_start;
            uint64_t virt_end;
        } unmap;
        struct {
            uint32_t endpoint;
            uint32_t subtype; /* VIRTIO_IOMMU_RESV_MEM_T_* */
            uint64_t start;
            uint64_t end;
        } resv;
        struct {
            uint64_t vdev;
            uint32_t queue_index;
            uint64_t vq;
        } notify;
        struct {
            uint64_t vq;
            uint64_t elem;
            uint32_t in_num;
            uint32_t out_num;
        } pop;
        struct {
            uint32_t endpoint; /* rid */
            uint64_t addr;
            uint32_t flag; /* 1 read, 2 write (IOMMU_RO / IOMMU_WO) */
        } translate;
        struct {
            uint32_t endpoint; /* sid */
            uint64_t addr;
            uint64_t translated;
        } translate_out;
    } u;
} qemu_log_event;

/**
 * qemu_log_parse_line - parses one line (without its newline).
 * @line, @len: the bytes of the line; need not be NUL-terminated.
 * @lineno: the line number used in the error message and in @ev.
 * @ev: receives the event when the line is one.
 * @error: receives a "line N: ..." message on -EINVAL.
 *
 * Returns 1 when @ev holds an event, 0 for a line that is not one of the
 * events above (other trace events, blank lines, any other text), or
 * -EINVAL for a malformed line: a known event with missing, extra or
 * out-of-range arguments, a malformed TID@SECONDS: prefix, a NUL byte.
 */
int qemu_log_parse_line(const char *line, size_t len, uint64_t lineno, qemu_log_event *ev,
                        GError **error);

typedef struct qemu_log_reader qemu_log_reader;

/**
 * qemu_log_reader_open - opens @path ("-" for standard input) for reading.
 * xz-compressed input is recognised by its magic bytes, whatever the name.
 * @out: receives the reader, which the caller frees with
 *       qemu_log_reader_free().
 *
 * Returns 0, or a negative errno from open() (-ENOENT, -EACCES, ...) with
 * a QEMU_LOG_ERROR_IO message, or -ENOMEM when liblzma cannot start.
 */
int qemu_log_reader_open(const char *path, qemu_log_reader **out, GError **error);

/**
 * qemu_log_reader_new_fd - a reader on @fd, which it takes over (it is
 * closed by qemu_log_reader_free(), also when this function fails).
 * @name: used in messages ("<stdin>", a path).
 */
int qemu_log_reader_new_fd(int fd, const char *name, qemu_log_reader **out, GError **error);

/**
 * qemu_log_reader_next - the next event of the file.
 * @ev: receives it.
 *
 * Returns 1 with an event, 0 at the end of the file, -EINVAL for a
 * malformed line (QEMU_LOG_ERROR_MALFORMED; the next call continues with
 * the following line), -EIO for a read error or a corrupt or truncated xz
 * stream (the reader is then at its end), -ENOMEM.
 */
int qemu_log_reader_next(qemu_log_reader *r, qemu_log_event *ev, GError **error);

/**
 * qemu_log_reader_next_line - the next line of the file as text, without
 * its newline, whatever it holds: for readers of other line formats that
 * share the file handling (standard input, xz). @line stays valid until
 * the next call on @r.
 *
 * Returns 1 with a line, 0 at the end of the file, -EINVAL for a line
 * longer than QEMU_LOG_MAX_LINE (QEMU_LOG_ERROR_MALFORMED; the next call
 * continues with the following line), -EIO for a read error or a corrupt
 * or truncated xz stream (the reader is then at its end), -ENOMEM.
 */
int qemu_log_reader_next_line(qemu_log_reader *r, const char **line, size_t *len, GError **error);

/** qemu_log_reader_line - the number of the last line read (0 before any). */
uint64_t qemu_log_reader_line(const qemu_log_reader *r);

/** qemu_log_reader_bytes - input bytes consumed so far (compressed bytes for xz). */
uint64_t qemu_log_reader_bytes(const qemu_log_reader *r);

/** qemu_log_reader_size - the input's size when it is a regular file, else 0. */
uint64_t qemu_log_reader_size(const qemu_log_reader *r);

/** qemu_log_reader_free - closes the input and frees @r; NULL is allowed. */
void qemu_log_reader_free(qemu_log_reader *r);

#endif

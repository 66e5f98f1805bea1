/* SPDX-License-Identifier: MIT */
/*
 * statements.h - the device statements of the virtio spec's IOMMU section
 * (reference/virtio-iommu-spec.tex) and the test that checks each.
 */
#ifndef SPEC_STATEMENTS_H
#define SPEC_STATEMENTS_H

#include <stddef.h>

typedef struct spec_statement {
    const char *suite; /* criterion suite of the test */
    const char *test;  /* criterion test name */
    const char *section;
    const char *level; /* MUST, MUST NOT, SHOULD, SHOULD NOT, MAY, EXAMPLE, TEXT */
    const char *text;  /* the statement, as the spec words it */
} spec_statement;

extern const spec_statement spec_statements[];
extern const size_t spec_statement_count;

#endif

/* SPDX-License-Identifier: MIT */
/*
 * fake_server.h - a small in-process vfio-user server on one end of a
 * socketpair, run by a thread, for the client's tests and benchmark. It
 * answers every command of every dialect and can misbehave on request
 * (faults), so the client's error paths run over a real socket.
 */
#ifndef VFIO_USER_FAKE_SERVER_H
#define VFIO_USER_FAKE_SERVER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "vfio-user.h"

typedef enum fake_fault {
    FAKE_FAULT_NONE = 0,
    FAKE_FAULT_DROP_MID_REPLY,     /* send half the reply, then close */
    FAKE_FAULT_HANG,               /* never answer; wait for the client to go */
    FAKE_FAULT_WRONG_SIZE,         /* 8 stray bytes after the reply body */
    FAKE_FAULT_WRONG_ID,           /* reply under an id never used */
    FAKE_FAULT_OVERSIZED_BITMAP,   /* bitmaps twice the requested size */
    FAKE_FAULT_UNEXPECTED_FD,      /* an fd attached to the reply */
    FAKE_FAULT_REPLY_TO_NOTHING,   /* an extra reply before the real one */
    FAKE_FAULT_HUGE_SIZE,          /* a header claiming a 2 GiB message */
    FAKE_FAULT_ERROR_REPLY,        /* ENOENT instead of the answer */
    FAKE_FAULT_BAD_TYPE,           /* a header of neither type */
    FAKE_FAULT_CLOSE_BEFORE_REPLY, /* close without answering */
} fake_fault;

/* Registers of the sample DMA device in region 0 (see DESIGN.md). */
#define FAKE_REG_DMA_ADDR 0x00
#define FAKE_REG_DMA_LEN 0x08
#define FAKE_REG_DMA_FILL 0x0c
#define FAKE_REG_DMA_CMD 0x10
#define FAKE_REG_DMA_STATUS 0x14
#define FAKE_REG_DMA_SUM 0x18
#define FAKE_SCRATCH_SIZE (1024 * 1024)

typedef struct fake_server {
    /* set before fake_server_start */
    vfio_user_dialect dialect;
    const char *version_json; /* VERSION reply data; NULL: a sensible default */
    bool version_no_nul;      /* send the JSON without its NUL */
    uint16_t version_major;
    fake_fault fault;
    unsigned fault_at;     /* apply the fault to the Nth command after VERSION (1-based) */
    unsigned hold;         /* collect this many commands before answering any */
    bool reverse;          /* answer held commands in reverse order */
    bool short_writes;     /* send replies a byte at a time */
    bool slow_reads;       /* read requests in small pieces */
    bool interrupt_on_dma; /* 2021: raise VM_INTERRUPT after each DMA command */
    uint8_t dirty_fill;    /* byte every returned bitmap is filled with */
    uint32_t error_errno;  /* errno of FAKE_FAULT_ERROR_REPLY (default ENOENT) */
    bool region_fd;        /* region 1 is mappable: its info reply carries an fd */
    bool answer_no_reply;  /* answer NO_REPLY commands anyway */

    /* state, read by tests after fake_server_join */
    int sock;
    pthread_t thread;
    unsigned commands;     /* commands handled after VERSION */
    unsigned fds_received; /* fds that came with DMA_MAP */
    unsigned max_fds_per_msg;
    unsigned max_table; /* largest DMA_MAP / DMA_UNMAP table */
    bool logging;
    uint8_t regs[4096];
    uint8_t *scratch; /* region 1 */
} fake_server;

/* fake_server_init - defaults: dialect @d, well-behaved. */
void fake_server_init(fake_server *f, vfio_user_dialect d);

/*
 * fake_server_start - creates the socketpair and the server thread.
 * Returns the client's end (the caller owns it), or -1.
 */
int fake_server_start(fake_server *f);

/* fake_server_join - waits for the thread (it ends when the client closes). */
void fake_server_join(fake_server *f);

#endif /* VFIO_USER_FAKE_SERVER_H */

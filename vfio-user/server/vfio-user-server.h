/* SPDX-License-Identifier: MIT */
/*
 * vfio-user-server.h - the project's reference vfio-user server: a DMA
 * region table, per-region dirty logging, a sample DMA device, profiles
 * that reproduce real servers byte for byte, and fault injection for
 * testing clients.
 *
 * One connection serves one client and owns one device instance. A
 * connection is driven by one thread (vfio_user_server_conn_run()); the
 * listener (vfio_user_server_new()) runs one such thread per client.
 *
 * Conventions: functions return 0 or a negative errno unless documented
 * otherwise; GError reports setup errors a person reads.
 *
 * The sample device (BAR0, region index 0, 4 KiB, little-endian):
 *
 *   0x00 DMA_ADDR   u64  IOVA of the transfer
 *   0x08 DMA_LEN    u32  bytes, 1 .. 1 MiB
 *   0x0c DMA_FILL   u32  byte written by a DMA write (low 8 bits)
 *   0x10 DMA_CMD    u32  1: DMA write of DMA_LEN bytes of DMA_FILL at
 *                        DMA_ADDR; 2: DMA read of DMA_LEN bytes there
 *   0x14 DMA_STATUS u32  0 when the last transfer succeeded, else errno
 *   0x18 DMA_SUM    u64  sum of the bytes of the last DMA read
 *
 * A REGION_WRITE touching DMA_CMD performs the transfer before it is
 * answered: through the mapping of a region that came with an fd
 * (marking its pages dirty while logging is on), or with DMA_READ /
 * DMA_WRITE messages to the client for a region that came without one.
 *
 * A client may shrink the file behind a mapped region; a transfer that
 * then touches the lost part fails with DMA_STATUS = EFAULT instead of
 * killing the process. For that, the first transfer through a mapping
 * installs a process-wide SIGBUS handler that hands any SIGBUS raised
 * outside a transfer back to the disposition it replaced.
 */
#ifndef VFIO_USER_SERVER_H
#define VFIO_USER_SERVER_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vfio-user.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(VFIO_USER_SERVER_BUILDING) && defined(__GNUC__)
#define VFIO_USER_SERVER_API __attribute__((visibility("default")))
#else
#define VFIO_USER_SERVER_API
#endif

/* Sample device registers (offsets in BAR0). */
#define VFIO_USER_SAMPLE_BAR_SIZE 4096u
#define VFIO_USER_SAMPLE_DMA_ADDR 0x00u
#define VFIO_USER_SAMPLE_DMA_LEN 0x08u
#define VFIO_USER_SAMPLE_DMA_FILL 0x0cu
#define VFIO_USER_SAMPLE_DMA_CMD 0x10u
#define VFIO_USER_SAMPLE_DMA_STATUS 0x14u
#define VFIO_USER_SAMPLE_DMA_SUM 0x18u
#define VFIO_USER_SAMPLE_CMD_WRITE 1u
#define VFIO_USER_SAMPLE_CMD_READ 2u
#define VFIO_USER_SAMPLE_MAX_LEN (1u << 20)

/**
 * vfio_user_server_profile - whose behaviour a connection reproduces.
 *
 * @VFIO_USER_SERVER_PROFILE_OWN: this project's server, speaking the
 *   configured dialect: tables and partial unmap in 2021 (advertised as
 *   "unmap_partial": true), exact-match unmap in 0.9.1 and final.
 * @VFIO_USER_SERVER_PROFILE_LIBVFIO_USER_2022: libvfio-user's sample
 *   server at 0b28d205 (dialect 0.9.1): 16 regions, DIRTY_PAGES 14.
 * @VFIO_USER_SERVER_PROFILE_QEMU_7_2: QEMU 7.2's x-vfio-user-server
 *   (dialect 0.9.1) without migration: 16 regions, no dirty logging.
 * @VFIO_USER_SERVER_PROFILE_LIBVFIO_USER_2026: libvfio-user master
 *   efd091b (dialect final): DMA_LOGGING, legacy unmap-with-bitmap,
 *   twin socket when the client offers it.
 */
typedef enum vfio_user_server_profile {
    VFIO_USER_SERVER_PROFILE_OWN = 0,
    VFIO_USER_SERVER_PROFILE_LIBVFIO_USER_2022,
    VFIO_USER_SERVER_PROFILE_QEMU_7_2,
    VFIO_USER_SERVER_PROFILE_LIBVFIO_USER_2026,
} vfio_user_server_profile;

/**
 * vfio_user_server_profile_parse - the profile called @name: "own",
 * "libvfio-user-2022", "qemu-7.2" or "libvfio-user-2026".
 * Returns 0, or -EINVAL for any other name.
 */
VFIO_USER_SERVER_API int vfio_user_server_profile_parse(const char *name,
                                                        vfio_user_server_profile *out);

/** vfio_user_server_profile_name - the name of @p, or NULL when unknown. */
VFIO_USER_SERVER_API const char *vfio_user_server_profile_name(vfio_user_server_profile p);

/*
 * Fault injection, for testing clients: each bit corrupts the replies it
 * applies to (see vfio_user_server_faults).
 *
 * DROP_MID_REPLY   send the first half of the reply, then close.
 * DELAY            sleep delay_ms before sending the reply.
 * SHORT_WRITES     send the reply one byte per write.
 * WRONG_SIZE       the header's msg_size claims 8 bytes more than sent
 *                  (the connection is closed after it, as the stream
 *                  is then out of step).
 * WRONG_ID         the reply carries msg_id + 1.
 * OVERSIZED_BITMAP a bitmap reply states a bitmap size 8 bytes larger
 *                  than the one asked for and carries those bytes.
 * UNEXPECTED_FD    the reply carries an fd (of /dev/null) it should not.
 * REPLY_TO_NOTHING an extra reply with an id never used (msg_id + 0x8000)
 *                  is sent before the real one.
 */
#define VFIO_USER_SERVER_FAULT_DROP_MID_REPLY (1u << 0)
#define VFIO_USER_SERVER_FAULT_DELAY (1u << 1)
#define VFIO_USER_SERVER_FAULT_SHORT_WRITES (1u << 2)
#define VFIO_USER_SERVER_FAULT_WRONG_SIZE (1u << 3)
#define VFIO_USER_SERVER_FAULT_WRONG_ID (1u << 4)
#define VFIO_USER_SERVER_FAULT_OVERSIZED_BITMAP (1u << 5)
#define VFIO_USER_SERVER_FAULT_UNEXPECTED_FD (1u << 6)
#define VFIO_USER_SERVER_FAULT_REPLY_TO_NOTHING (1u << 7)

/**
 * vfio_user_server_faults - which replies to corrupt, and how.
 * @kinds: VFIO_USER_SERVER_FAULT_* bits; 0 disables injection.
 * @command: only replies to this command number; 0 means every command
 *   except VERSION (so a client can still connect).
 * @skip: leave this many matching replies intact first.
 * @count: corrupt at most this many (0: every later matching reply).
 * @delay_ms: for FAULT_DELAY.
 */
typedef struct vfio_user_server_faults {
    uint32_t kinds;
    uint16_t command;
    uint32_t skip;
    uint32_t count;
    uint32_t delay_ms;
} vfio_user_server_faults;

/**
 * vfio_user_server_options - what every connection of a server does.
 * @profile: the behaviour to reproduce.
 * @dialect: the wire dialect of PROFILE_OWN (profiles of real servers
 *   always speak their own).
 * @max_regions: PROFILE_OWN's DMA region limit (advertised as
 *   max_dma_maps; a map beyond it fails with ENOSPC).
 * @pgsize: PROFILE_OWN's dirty-logging page size when the client offers
 *   none (a power of two from 4 KiB to 1 GiB); a client's migration.pgsize
 *   in that range is taken instead, any other is refused with EINVAL.
 * @dma_timeout_ms: how long a server-to-client DMA_READ / DMA_WRITE may
 *   wait for its reply before the transfer fails with ETIMEDOUT and the
 *   connection is closed; 0 waits forever.
 * @verbose: log every message handled to stderr, one line each.
 * @faults: replies to corrupt (testing only).
 */
typedef struct vfio_user_server_options {
    vfio_user_server_profile profile;
    vfio_user_dialect dialect;
    uint32_t max_regions;
    uint64_t pgsize;
    uint32_t dma_timeout_ms;
    bool verbose;
    vfio_user_server_faults faults;
} vfio_user_server_options;

/**
 * vfio_user_server_options_init - defaults: PROFILE_OWN, dialect 2021,
 * 65535 regions, pgsize 4096, a 10 s DMA timeout, quiet, no faults.
 */
VFIO_USER_SERVER_API void vfio_user_server_options_init(vfio_user_server_options *opts);

/* ------------------------------------------------------------------ */
/* One connection                                                      */
/* ------------------------------------------------------------------ */

typedef struct vfio_user_server_conn vfio_user_server_conn;

/**
 * vfio_user_server_conn_new - a connection serving the connected stream
 * socket @fd with a fresh device instance.
 *
 * The connection takes @fd on success (it is closed by
 * vfio_user_server_conn_free()); on failure @fd stays the caller's.
 * Returns NULL with @error set (G_IO_ERROR_INVALID_ARGUMENT) for bad
 * options, or on allocation failure.
 */
VFIO_USER_SERVER_API vfio_user_server_conn *
vfio_user_server_conn_new(int fd, const vfio_user_server_options *opts, GError **error);

/**
 * vfio_user_server_conn_free - closes the socket, unmaps every DMA
 * region and frees @conn; NULL is allowed.
 */
VFIO_USER_SERVER_API void vfio_user_server_conn_free(vfio_user_server_conn *conn);

/**
 * vfio_user_server_conn_serve_one - reads and handles one message.
 *
 * Returns 0 when the connection goes on; -ECONNRESET when the client
 * closed it; -EPROTO when the client broke the protocol so that the
 * stream cannot be trusted (the connection is then over, an error reply
 * having been sent when one could be); -EIO (or another negative errno)
 * when the socket failed. After a nonzero return the connection only
 * serves vfio_user_server_conn_free().
 */
VFIO_USER_SERVER_API int vfio_user_server_conn_serve_one(vfio_user_server_conn *conn);

/**
 * vfio_user_server_conn_run - serves messages until the client goes
 * away or vfio_user_server_conn_stop() is called. Returns 0 for an
 * orderly end (client closed, or stopped), else the error of
 * vfio_user_server_conn_serve_one().
 */
VFIO_USER_SERVER_API int vfio_user_server_conn_run(vfio_user_server_conn *conn);

/**
 * vfio_user_server_conn_stop - makes vfio_user_server_conn_run() return
 * soon; callable from any thread.
 */
VFIO_USER_SERVER_API void vfio_user_server_conn_stop(vfio_user_server_conn *conn);

/** vfio_user_server_conn_region_count - the number of DMA regions mapped. */
VFIO_USER_SERVER_API size_t vfio_user_server_conn_region_count(const vfio_user_server_conn *conn);

/**
 * vfio_user_server_conn_region_memory - bytes the DMA region table holds
 * from the allocator (dirty bitmaps excluded).
 */
VFIO_USER_SERVER_API size_t vfio_user_server_conn_region_memory(const vfio_user_server_conn *conn);

/**
 * vfio_user_server_thread - a connection served by its own thread (for
 * tests of clients, which drive the other end of a socketpair).
 */
typedef struct vfio_user_server_thread vfio_user_server_thread;

/**
 * vfio_user_server_spawn_pair - creates an AF_UNIX socketpair and serves
 * one end with a new connection on a new thread.
 * @client_fd: receives the other end; the caller owns it.
 *
 * Returns the thread, or NULL with @error set (bad options, socketpair or
 * thread creation failure). Finish it with vfio_user_server_join().
 */
VFIO_USER_SERVER_API vfio_user_server_thread *
vfio_user_server_spawn_pair(const vfio_user_server_options *opts, int *client_fd, GError **error);

/**
 * vfio_user_server_thread_conn - the connection the thread serves, for
 * vfio_user_server_conn_region_count() and the like. Only valid until
 * vfio_user_server_join(); read it while the client is idle.
 */
VFIO_USER_SERVER_API vfio_user_server_conn *
vfio_user_server_thread_conn(vfio_user_server_thread *t);

/**
 * vfio_user_server_join - ends the thread and frees it with its
 * connection. @stop: stop serving now (else wait until the client closes
 * its end). Returns what vfio_user_server_conn_run() returned.
 */
VFIO_USER_SERVER_API int vfio_user_server_join(vfio_user_server_thread *t, bool stop);

/* ------------------------------------------------------------------ */
/* Listening server: one thread per client                             */
/* ------------------------------------------------------------------ */

typedef struct vfio_user_server vfio_user_server;

/**
 * vfio_user_server_new - listens on the AF_UNIX stream socket @path
 * (which must not exist). @opts is copied.
 * Returns NULL with @error set when the socket cannot be created, bound
 * or listened on, or when @opts are invalid. The caller owns the result.
 */
VFIO_USER_SERVER_API vfio_user_server *
vfio_user_server_new(const char *path, const vfio_user_server_options *opts, GError **error);

/**
 * vfio_user_server_run - accepts clients, each served by its own thread
 * with its own device instance, until vfio_user_server_stop(). Returns 0,
 * or a negative errno when accepting fails for good.
 */
VFIO_USER_SERVER_API int vfio_user_server_run(vfio_user_server *srv);

/**
 * vfio_user_server_stop - makes vfio_user_server_run() return after
 * closing every client. Async-signal-safe: a SIGTERM handler may call it.
 */
VFIO_USER_SERVER_API void vfio_user_server_stop(vfio_user_server *srv);

/**
 * vfio_user_server_free - stops and joins every client thread, closes
 * the listening socket, unlinks its path and frees @srv; NULL allowed.
 */
VFIO_USER_SERVER_API void vfio_user_server_free(vfio_user_server *srv);

/** vfio_user_server_clients - the number of clients connected now. */
VFIO_USER_SERVER_API unsigned vfio_user_server_clients(vfio_user_server *srv);

#ifdef __cplusplus
}
#endif

#endif /* VFIO_USER_SERVER_H */

/* SPDX-License-Identifier: MIT */
/*
 * The sample DMA device: a 4 KiB BAR0 whose registers (see
 * vfio-user-server.h) make the server read or write guest memory on
 * command, so that tests and demos create dirty pages where they want.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>

#include "private.h"

#define REGS_SIZE sizeof(((vfio_user_server_conn *)0)->regs)
_Static_assert(VFIO_USER_SAMPLE_DMA_SUM + 8 == 0x20, "registers end at 0x20");

void vus_device_reset(vfio_user_server_conn *c)
{
    memset(c->regs, 0, sizeof(c->regs));
}

void vus_device_read(vfio_user_server_conn *c, uint64_t offset, uint8_t *out, uint32_t count)
{
    /* Offsets past the registers read as zero. */
    memset(out, 0, count);
    if (offset < REGS_SIZE) {
        uint64_t n = REGS_SIZE - offset < count ? REGS_SIZE - offset : count;
        memcpy(out, c->regs + offset, (size_t)n);
    }
}

/*
 * Checks that [first, last] is wholly mapped with @prot. Returns 0,
 * -EFAULT for a hole, -EACCES for a region without the permission.
 */
static int check_range(vus_dma *d, uint64_t first, uint64_t last, uint32_t prot)
{
    interval_map_iter it;
    u64_range key;
    vus_region *r;
    uint64_t next = first;

    interval_map_iter_init(&it, d->map, first, last);
    while ((r = interval_map_iter_next(&it, &key))) {
        if (key.first > next)
            return -EFAULT;
        if ((r->prot & prot) != prot)
            return -EACCES;
        if (key.last >= last)
            return 0;
        next = key.last + 1;
    }
    return -EFAULT;
}

/*
 * A client can shrink the file behind a region after mapping it; touching
 * the mapping past the new end then raises SIGBUS. Transfers through a
 * mapping run under a SIGBUS handler that turns such a fault into EFAULT
 * for that transfer; a SIGBUS outside a transfer goes to the previous
 * disposition.
 */
/* volatile: the signal handler reads it, the compiler must not drop the stores. */
static _Thread_local sigjmp_buf *volatile dma_jmp;
static struct sigaction old_sigbus;
static pthread_once_t sigbus_once = PTHREAD_ONCE_INIT;

static void on_sigbus(int sig, siginfo_t *info, void *uctx)
{
    (void)sig;
    (void)info;
    (void)uctx;
    if (dma_jmp)
        siglongjmp(*dma_jmp, 1);
    /* Not ours: the faulting access runs again under the old disposition. */
    sigaction(SIGBUS, &old_sigbus, NULL);
}

static void install_sigbus(void)
{
    struct sigaction sa = {.sa_sigaction = on_sigbus, .sa_flags = SA_SIGINFO};

    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, &old_sigbus);
}

/* memset() or sums @n bytes at @p of a mapping; -EFAULT when the mapping faults. */
static int guarded_access(uint8_t *p, uint64_t n, bool write, uint8_t fill, uint64_t *sum)
{
    sigjmp_buf jb;
    uint64_t acc = 0;

    pthread_once(&sigbus_once, install_sigbus);
    if (sigsetjmp(jb, 1)) {
        dma_jmp = NULL;
        return -EFAULT;
    }
    dma_jmp = &jb;
    if (write) {
        memset(p, fill, (size_t)n);
    } else {
        for (uint64_t i = 0; i < n; i++)
            acc += ((volatile uint8_t *)p)[i];
    }
    dma_jmp = NULL;
    *sum += acc;
    return 0;
}

/*
 * Runs one transfer. Returns the transfer's status (0 or a positive
 * errno) in *status, and a negative errno only when the connection broke.
 */
static int run_dma(vfio_user_server_conn *c, bool write, uint64_t addr, uint32_t len, uint8_t fill,
                   uint64_t *sum, uint32_t *status)
{
    interval_map_iter it;
    u64_range key, want;
    vus_region *r;
    int ret;

    *status = 0;
    if (len == 0 || len > VFIO_USER_SAMPLE_MAX_LEN || u64_range_from_size(addr, len, &want) < 0) {
        *status = EINVAL;
        return 0;
    }
    ret = check_range(&c->dma, want.first, want.last,
                      write ? VFIO_USER_PROT_WRITE : VFIO_USER_PROT_READ);
    if (ret < 0) {
        *status = (uint32_t)-ret;
        return 0;
    }
    /*
     * The table cannot change under the walk: a DMA_UNMAP arriving during
     * a round trip is queued, and handled only after this command.
     */
    interval_map_iter_init(&it, c->dma.map, want.first, want.last);
    while ((r = interval_map_iter_next(&it, &key))) {
        uint64_t a = key.first > want.first ? key.first : want.first;
        uint64_t b = key.last < want.last ? key.last : want.last;
        uint64_t n = b - a + 1;

        if (r->host) {
            /* Marked first: a write cut short by a fault may still have landed in part. */
            if (write)
                vus_dma_mark_dirty(&c->dma, r, key, a, b);
            ret = guarded_access(r->host + (a - key.first), n, write, fill, sum);
            if (ret < 0) {
                *status = (uint32_t)-ret;
                return 0;
            }
            continue;
        }
        ret = vus_conn_dma_rw(c, write, a, n, fill, sum);
        if (ret < 0) {
            *status = (uint32_t)-ret;
            if (c->broken)
                return ret;
            return 0;
        }
    }
    return 0;
}

int vus_device_write(vfio_user_server_conn *c, uint64_t offset, const uint8_t *data, uint32_t count)
{
    uint64_t end = offset + count, sum = 0;
    uint32_t cmd, len, status;
    int ret;

    if (offset >= REGS_SIZE)
        return 0;
    if (end > REGS_SIZE)
        end = REGS_SIZE;
    /* DMA_STATUS and DMA_SUM are read-only. */
    for (uint64_t i = offset; i < end; i++)
        if (i < VFIO_USER_SAMPLE_DMA_STATUS)
            c->regs[i] = data[i - offset];
    if (offset >= VFIO_USER_SAMPLE_DMA_CMD + 4 || end <= VFIO_USER_SAMPLE_DMA_CMD)
        return 0;

    cmd = vus_get32(c->regs + VFIO_USER_SAMPLE_DMA_CMD);
    memset(c->regs + VFIO_USER_SAMPLE_DMA_CMD, 0, 4);
    len = vus_get32(c->regs + VFIO_USER_SAMPLE_DMA_LEN);
    if (cmd != VFIO_USER_SAMPLE_CMD_WRITE && cmd != VFIO_USER_SAMPLE_CMD_READ) {
        vus_put32(c->regs + VFIO_USER_SAMPLE_DMA_STATUS, EINVAL);
        return 0;
    }
    ret = run_dma(c, cmd == VFIO_USER_SAMPLE_CMD_WRITE,
                  vus_get64(c->regs + VFIO_USER_SAMPLE_DMA_ADDR), len,
                  c->regs[VFIO_USER_SAMPLE_DMA_FILL], &sum, &status);
    vus_put32(c->regs + VFIO_USER_SAMPLE_DMA_STATUS, status);
    if (cmd == VFIO_USER_SAMPLE_CMD_READ && status == 0)
        vus_put64(c->regs + VFIO_USER_SAMPLE_DMA_SUM, sum);
    return ret;
}

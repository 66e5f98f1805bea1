/* SPDX-License-Identifier: MIT */
/*
 * Saving and loading the device state at 1k..1M live mappings. save is
 * measured against memcpy of the same number of bytes (the memory
 * bandwidth limit); load (which rebuilds every mapping through MAP's
 * checks and hands each to a listener) against building the same state
 * by sending the guest's MAP requests again through the full decoder.
 * Prints one JSON object per line; values and baselines are times, and
 * "ratio" is baseline / value, so above 1 means the measured path is
 * faster than its baseline.
 */
#include <endian.h>
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "viommu.h"

static volatile uint64_t sink;

/* CPU time of this (only) thread: the comparisons stay fair on a machine
 * whose other processes take the cores in turns. */
static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void emit(const char *name, size_t n, double value, const char *unit, double baseline)
{
    printf("{\"bench\": \"%s/%zu\", \"value\": %.2f, \"unit\": \"%s\", \"baseline\": %.2f, "
           "\"ratio\": %.2f}\n",
           name, n, value, unit, baseline, baseline / value);
    fflush(stdout);
}

static int count_map(void *opaque, const mapping_event *ev)
{
    (void)ev;
    (*(uint64_t *)opaque)++;
    return 0;
}

static const mapping_listener_ops counting_ops = {NULL, count_map, NULL, NULL};

static viommu *device(uint64_t *maps)
{
    viommu_config cfg;
    viommu_config_init(&cfg);
    viommu *v = viommu_new(&cfg, NULL);
    viommu_set_driver_features(v, viommu_device_features(v));
    viommu_endpoint_add(v, 1);
    mapping_listener l = {&counting_ops, maps};
    viommu_endpoint_set_listener(v, 1, &l);
    return v;
}

/* Attaches endpoint 1 to domain 1 and maps @n pages, @batch requests per
 * notification, as the guest would. */
static void populate(viommu *v, size_t n)
{
    enum { BATCH = 256 };
    struct virtio_iommu_req_attach a;
    memset(&a, 0, sizeof(a));
    a.head.type = VIRTIO_IOMMU_T_ATTACH;
    a.domain = htole32(1);
    a.endpoint = htole32(1);
    struct iovec ard = {&a, offsetof(struct virtio_iommu_req_attach, tail)};
    struct iovec awr = {&a.tail, sizeof(a.tail)};
    viommu_request ar = {&ard, 1, &awr, 1, 0, 0, 0};
    viommu_handle_request(v, &ar);

    static struct virtio_iommu_req_map body[BATCH];
    static struct iovec rd[BATCH], wr[BATCH];
    static viommu_request reqs[BATCH];
    for (size_t done = 0; done < n;) {
        size_t k = n - done < BATCH ? n - done : BATCH;
        for (size_t i = 0; i < k; i++) {
            uint64_t p = done + i;
            memset(&body[i], 0, sizeof(body[i]));
            body[i].head.type = VIRTIO_IOMMU_T_MAP;
            body[i].domain = htole32(1);
            body[i].virt_start = htole64(p * 0x2000);
            body[i].virt_end = htole64(p * 0x2000 + 0xfff);
            body[i].phys_start = htole64(p * 0x1000);
            body[i].flags = htole32(VIRTIO_IOMMU_MAP_F_READ | VIRTIO_IOMMU_MAP_F_WRITE);
            rd[i] = (struct iovec){&body[i], offsetof(struct virtio_iommu_req_map, tail)};
            wr[i] = (struct iovec){&body[i].tail, sizeof(body[i].tail)};
            reqs[i] = (viommu_request){&rd[i], 1, &wr[i], 1, 0, 0, 0};
        }
        viommu_process_batch(v, reqs, k);
        done += k;
    }
}

int main(void)
{
    static const size_t sizes[] = {1000, 10000, 100000, 1000000};
    for (size_t si = 0; si < G_N_ELEMENTS(sizes); si++) {
        size_t n = sizes[si];
        uint64_t maps = 0;
        viommu *src = device(&maps);
        double t0 = now_ns();
        populate(src, n);
        double t_requests = now_ns() - t0;

        size_t len = 0;
        viommu_save(src, NULL, 0, &len);
        uint8_t *buf = malloc(len), *copy = malloc(len);
        t0 = now_ns();
        viommu_save(src, buf, len, &len);
        double t_save = now_ns() - t0;
        memset(copy, 1, len);
        t0 = now_ns();
        memcpy(copy, buf, len);
        double t_memcpy = now_ns() - t0;
        sink += copy[len / 2];

        uint64_t loaded = 0;
        viommu *dst = device(&loaded);
        t0 = now_ns();
        int rc = viommu_load(dst, buf, len, NULL);
        double t_load = now_ns() - t0;
        if (rc < 0 || loaded != n) {
            fprintf(stderr, "bench_state: load failed (%d, %llu maps)\n", rc,
                    (unsigned long long)loaded);
            return 1;
        }
        emit("state_save_ns_per_mapping", n, t_save / (double)n, "ns", t_memcpy / (double)n);
        printf("{\"bench\": \"state_save_MBps/%zu\", \"value\": %.1f, \"unit\": \"MB/s\"}\n", n,
               (double)len / 1e6 / (t_save / 1e9));
        emit("state_load_ns_per_mapping", n, t_load / (double)n, "ns", t_requests / (double)n);
        printf("{\"bench\": \"state_bytes_per_mapping/%zu\", \"value\": %.2f, \"unit\": \"B\"}\n",
               n, (double)len / (double)n);
        free(buf);
        free(copy);
        viommu_free(src);
        viommu_free(dst);
    }
    return 0;
}

/*
 * store_ingest.c - the store's own ingest limit: a plain writer, no MQTT,
 * no ZeroMQ, no collector threads (DESIGN §9: "the store's own ingest
 * limit measured by a plain writer").
 *
 *   store_ingest STORE_URL [--devices N] [--run K] [--batch B]
 *                [--seconds S] [--max-points M] [--cache-kib C]
 *
 * Writes needle_window points through collector/store.h's nw_store_write()
 * in batches of B (default 5000, the collector writer's default
 * store.batch_points) for S seconds (default 10) or M points. The points
 * are what the collector's workers make of the loadgen's windows: devices
 * BENCH-xxxxx, tags from an inventory-less collector (clinic
 * "unassigned"), per-device seq 1, 2, 3... and 1 s windows from 20 days
 * ago, written K consecutive windows per device before the next device
 * (K = 1: one-window messages from a live fleet; K = 256: catch-up
 * batches), exactly the order the collector's writer receives them in.
 *
 * Prints "RESULT role=store points=... seconds=... rate=... writes=...
 * write_ms_mean=... write_ms_max=..." and exits 0 if every write
 * succeeded.
 */
#include "store.h"

#include <needlewatch/clock.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long arg_long(int argc, char **argv, const char *name, long def)
{
    for (int i = 2; i + 1 < argc; i++) {
        if (!strcmp(argv[i], name)) {
            return strtol(argv[i + 1], NULL, 10);
        }
    }
    return def;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: store_ingest STORE_URL [--devices N] [--run K] [--batch B] "
                        "[--seconds S] [--max-points M] [--cache-kib C]\n");
        return 2;
    }
    nw_store_sqlite_process_init(); /* as the collector does */
    long devices = arg_long(argc, argv, "--devices", 1000);
    long run = arg_long(argc, argv, "--run", 1);
    long batch = arg_long(argc, argv, "--batch", 5000);
    long seconds = arg_long(argc, argv, "--seconds", 10);
    long max_points = arg_long(argc, argv, "--max-points", 50000000);
    long cache_kib = arg_long(argc, argv, "--cache-kib", 0); /* 0: the store's default */
    if (devices < 1 || devices > 100000 || run < 1 || run > 4096 || batch < 1 || batch > 1000000 ||
        seconds < 1 || seconds > 300 || max_points < 1) {
        fprintf(stderr, "store_ingest: bad option value\n");
        return 2;
    }
    struct nw_store_options so = {.sqlite_cache_kib = (uint64_t)cache_kib};
    struct nw_store *store = NULL;
    struct nw_error err = {0};
    if (nw_store_open(argv[1], &so, &store, &err) != NW_OK) {
        fprintf(stderr, "store_ingest: %s\n", err.msg);
        return 1;
    }
    struct nw_point *pts = calloc((size_t)batch, sizeof(*pts));
    uint64_t *seq = calloc((size_t)devices, sizeof(*seq));
    if (!pts || !seq) {
        fprintf(stderr, "store_ingest: out of memory\n");
        return 1;
    }
    int64_t base = (nw_clock_realtime_ms() - 20LL * 86400 * 1000) / 1000 * 1000;
    long dev = 0, in_run = 0;
    uint64_t total = 0, writes = 0, max_us = 0, sum_us = 0;
    int64_t t0 = nw_clock_mono_ns(), deadline = t0 + (int64_t)seconds * 1000000000LL;
    int rc = 0;
    while (nw_clock_mono_ns() < deadline && (long)total < max_points) {
        for (long i = 0; i < batch; i++) {
            struct nw_point *p = &pts[i];
            memset(p, 0, sizeof(*p));
            p->kind = NW_POINT_WINDOW;
            snprintf(p->device, sizeof(p->device), "BENCH-%05ld", dev);
            snprintf(p->clinic, sizeof(p->clinic), "unassigned");
            snprintf(p->model, sizeof(p->model), "unknown");
            p->epoch = 12345;
            struct nw_window *w = &p->u.window.w;
            w->seq = ++seq[dev];
            w->start_ms = base + (int64_t)w->seq * 1000;
            w->duration_ms = 1000, w->running_ms = 1000, w->cycles = 120;
            w->rate_mean_hz = 120.0, w->rate_min_hz = 118.5, w->rate_max_hz = 121.5;
            w->depth_mean_mm = 0.38, w->depth_min_mm = 0.36, w->depth_max_mm = 0.40;
            w->pigment_ul = 0.0144;
            snprintf(w->session_id, sizeof(w->session_id), "s-bench");
            snprintf(w->cartridge_id, sizeof(w->cartridge_id), "CRT-BENCH");
            snprintf(w->pigment_lot, sizeof(w->pigment_lot), "PL-1");
            p->u.window.in_spec = true;
            if (++in_run == run) {
                in_run = 0;
                dev = (dev + 1) % devices;
            }
        }
        struct nw_store_outcome o;
        int64_t w0 = nw_clock_mono_ns();
        nw_store_write(store, pts, (size_t)batch, &o);
        uint64_t us = (uint64_t)(nw_clock_mono_ns() - w0) / 1000;
        writes++;
        sum_us += us;
        max_us = us > max_us ? us : max_us;
        if (o.code != NW_OK || o.stored != (size_t)batch) {
            fprintf(stderr, "store_ingest: write failed: %s (%zu of %ld stored)\n", o.msg, o.stored,
                    batch);
            rc = 1;
            break;
        }
        total += o.stored;
    }
    double s = (double)(nw_clock_mono_ns() - t0) / 1e9;
    printf("RESULT role=store url=%s points=%" PRIu64 " seconds=%.3f rate=%.1f writes=%" PRIu64
           " batch=%ld run=%ld devices=%ld write_ms_mean=%.2f write_ms_max=%.2f\n",
           nw_store_name(store), total, s, (double)total / s, writes, batch, run, devices,
           writes ? (double)sum_us / (double)writes / 1000.0 : 0.0, (double)max_us / 1000.0);
    free(pts);
    free(seq);
    nw_store_close(&store);
    return rc;
}

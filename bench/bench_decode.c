/*
 * bench_decode.c - CPU per window of decoding a WindowBatch: protobuf-c's
 * generic unpack against the direct decoder (lib/pbwindows.c), and the
 * whole nw_codec_decode_windows() (direct decoder, checks, copies into
 * struct nw_window) the collector's ingest runs per message.
 *
 *   bench_decode [SECONDS_PER_ROW]
 *
 * Payloads are what the agent sends: 1 window per message (a live fleet)
 * and 256 (catching up), made by nw_codec_encode_windows(). Each row runs
 * for SECONDS_PER_ROW (default 2) of CPU-bound decoding on one thread and
 * prints ns per window; the machine's load average is printed first, since
 * a busy neighbour changes every row alike.
 */
#include <needlewatch/clock.h>
#include <needlewatch/codec.h>
#include <needlewatch/pbwindows.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_BYTES (1u << 20)

static uint8_t arena[ARENA_BYTES];
static size_t used;

static void *bump(void *data, size_t n)
{
    (void)data;
    size_t at = (used + 15) & ~(size_t)15;
    if (at > ARENA_BYTES || n > ARENA_BYTES - at) {
        return NULL;
    }
    used = at + n;
    return arena + at;
}

static void no_free(void *data, void *p)
{
    (void)data;
    (void)p;
}

enum how { PROTOBUF_C, DIRECT, CODEC };

/* Decodes buf until `seconds` pass; returns ns per window, < 0 on failure. */
static double run(enum how how, struct nw_codec *c, const uint8_t *buf, size_t len, size_t n,
                  struct nw_window_batch *out, double seconds)
{
    ProtobufCAllocator a = {.alloc = bump, .free = no_free};
    int64_t t0 = nw_clock_mono_ns(), until = t0 + (int64_t)(seconds * 1e9);
    uint64_t rounds = 0;
    for (int64_t now = t0; now < until; now = nw_clock_mono_ns()) {
        for (int k = 0; k < 256; k++, rounds++) {
            used = 0;
            bool ok;
            if (how == PROTOBUF_C) {
                ok = needlewatch__v1__window_batch__unpack(&a, len, buf) != NULL;
            } else if (how == DIRECT) {
                ok = nw_pbwindows_unpack(&a, buf, len) != NULL;
            } else {
                ok = nw_codec_decode_windows(c, buf, len, out, NULL, NULL) == NW_OK;
            }
            if (!ok) {
                return -1;
            }
        }
    }
    return (double)(nw_clock_mono_ns() - t0) / (double)(rounds * n);
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 2.0;
    if (seconds <= 0 || seconds > 60) {
        fprintf(stderr, "usage: bench_decode [SECONDS_PER_ROW (0-60]]\n");
        return 2;
    }
    double load[3] = {0};
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf %lf %lf", &load[0], &load[1], &load[2]) != 3) {
            load[0] = -1;
        }
        fclose(f);
    }
    printf("# load average %.2f %.2f %.2f\n", load[0], load[1], load[2]);
    struct nw_limits lim;
    nw_limits_default(&lim);
    struct nw_codec *c = nw_codec_new(&lim);
    struct nw_window *w = calloc(256, sizeof(*w));
    struct nw_window *got = calloc(256, sizeof(*got));
    uint8_t *buf = malloc(lim.max_payload);
    if (!c || !w || !got || !buf) {
        fprintf(stderr, "bench_decode: out of memory\n");
        return 1;
    }
    int64_t t = nw_clock_realtime_ms() / 1000 * 1000 - 3600000;
    for (size_t i = 0; i < 256; i++) {
        w[i] = (struct nw_window){.seq = 1000 + i,
                                  .start_ms = t + (int64_t)i * 1000,
                                  .duration_ms = 1000,
                                  .running_ms = 980,
                                  .cycles = 118,
                                  .rate_mean_hz = 120.4,
                                  .rate_min_hz = 118.9,
                                  .rate_max_hz = 121.7,
                                  .depth_mean_mm = 0.381,
                                  .depth_min_mm = 0.362,
                                  .depth_max_mm = 0.397,
                                  .pigment_ul = 0.0147};
        snprintf(w[i].session_id, sizeof(w[i].session_id), "s-7f3a9c21");
        snprintf(w[i].cartridge_id, sizeof(w[i].cartridge_id), "C3RL-20241101-004217");
        snprintf(w[i].pigment_lot, sizeof(w[i].pigment_lot), "PGM-L2409-117");
    }
    static const char *const names[] = {"protobuf-c unpack", "direct (pbwindows)",
                                        "nw_codec_decode_windows"};
    int rc = 0;
    static const size_t sizes[] = {1, 256}; /* live, catching up */
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        size_t n = sizes[k];
        struct nw_window_batch in = {
            .device_id = "SMP-000042", .epoch = 77, .count = n, .capacity = n, .windows = w};
        struct nw_window_batch out = {.capacity = 256, .windows = got};
        size_t len = 0;
        if (nw_codec_encode_windows(c, &in, buf, lim.max_payload, &len, NULL) != NW_OK) {
            fprintf(stderr, "bench_decode: encode failed\n");
            return 1;
        }
        for (int how = PROTOBUF_C; how <= CODEC; how++) {
            double ns = run((enum how)how, c, buf, len, n, &out, seconds);
            printf("RESULT windows_per_msg=%zu bytes=%zu decoder=\"%s\" ns_per_window=%.1f\n", n,
                   len, names[how], ns);
            rc |= ns < 0;
        }
    }
    nw_codec_destroy(&c);
    free(w);
    free(got);
    free(buf);
    return rc;
}

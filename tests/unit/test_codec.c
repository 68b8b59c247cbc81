/*
 * test_codec.c - the wire form of every message (codec.h).
 *
 * Three parts:
 *  1. Round trips: encode -> decode gives back the input, floats after the
 *     documented quantisation; window strings inherit across windows; the
 *     inheritance really saves bytes; the wire size against compact JSON.
 *  2. A table of hostile payloads, each with the expected nw_err, nw_reason
 *     and a piece of the message. Payloads are written with protobuf-c
 *     directly (to get a structurally valid message with one thing wrong) or
 *     byte by byte (for what protobuf-c itself would never write).
 *  3. Encoder refusals (too small a buffer, count > capacity).
 *
 * The ASan/UBSan build runs the same file, so every row is also a check for
 * crashes and leaks.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <needlewatch/codec.h>
#include <needlewatch/pbwindows.h>
#include <needlewatch/validate.h>

#include "needlewatch.pb-c.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEVICE "smp-0042"
#define EPOCH UINT64_C(0x8badf00ddeadbeef)
#define T0 INT64_C(1732000000000) /* 2024-11-19T07:06:40Z */
#define BUF_CAP (512 * 1024)

/* ---- helpers --------------------------------------------------------- */

#define assert_double_exact(a, b)                                                                  \
    do {                                                                                           \
        double a_ = (a), b_ = (b);                                                                 \
        if (a_ != b_) {                                                                            \
            print_error("%s = %.17g, expected %.17g\n", #a, a_, b_);                               \
            fail();                                                                                \
        }                                                                                          \
    } while (0)

#define assert_contains(haystack, needle)                                                          \
    do {                                                                                           \
        const char *h_ = (haystack), *n_ = (needle);                                               \
        if (!strstr(h_, n_)) {                                                                     \
            print_error("\"%s\" does not contain \"%s\"\n", h_, n_);                               \
            fail();                                                                                \
        }                                                                                          \
    } while (0)

static struct nw_codec *codec_with(size_t max_payload, size_t max_windows, size_t max_events)
{
    struct nw_limits lim;
    nw_limits_default(&lim);
    if (max_payload) {
        lim.max_payload = max_payload;
    }
    if (max_windows) {
        lim.max_windows = max_windows;
    }
    if (max_events) {
        lim.max_events = max_events;
    }
    struct nw_codec *c = nw_codec_new(&lim);
    assert_non_null(c);
    return c;
}

static struct nw_codec *codec_default(void)
{
    return codec_with(0, 0, 0);
}

/* A window whose floats are exact multiples of the wire resolution, so a
 * round trip must give back the very same doubles. */
static void make_window(struct nw_window *w, uint64_t seq, const char *session,
                        const char *cartridge, const char *lot)
{
    memset(w, 0, sizeof(*w));
    unsigned k = (unsigned)(seq % 7);
    w->seq = seq;
    w->start_ms = T0 + (int64_t)seq * 1000;
    w->duration_ms = 1000;
    w->running_ms = 1000 - 10 * k;
    w->cycles = 118 + k;
    w->rate_mean_hz = (120000 + 137 * k) / 1e3;
    w->rate_min_hz = (118500 + 11 * k) / 1e3;
    w->rate_max_hz = (121750 + 301 * k) / 1e3;
    w->depth_mean_mm = (3512 + 7 * k) / 1e4;
    w->depth_min_mm = (3301 + 3 * k) / 1e4;
    w->depth_max_mm = (3725 + 9 * k) / 1e4;
    w->pigment_ul = (125 + k) / 1e4;
    snprintf(w->session_id, sizeof(w->session_id), "%s", session);
    snprintf(w->cartridge_id, sizeof(w->cartridge_id), "%s", cartridge);
    snprintf(w->pigment_lot, sizeof(w->pigment_lot), "%s", lot);
}

static void assert_window_eq(const struct nw_window *got, const struct nw_window *want)
{
    assert_int_equal(got->seq, want->seq);
    assert_int_equal(got->start_ms, want->start_ms);
    assert_int_equal(got->duration_ms, want->duration_ms);
    assert_int_equal(got->running_ms, want->running_ms);
    assert_int_equal(got->cycles, want->cycles);
    assert_double_exact(got->rate_mean_hz, want->rate_mean_hz);
    assert_double_exact(got->rate_min_hz, want->rate_min_hz);
    assert_double_exact(got->rate_max_hz, want->rate_max_hz);
    assert_double_exact(got->depth_mean_mm, want->depth_mean_mm);
    assert_double_exact(got->depth_min_mm, want->depth_min_mm);
    assert_double_exact(got->depth_max_mm, want->depth_max_mm);
    assert_double_exact(got->pigment_ul, want->pigment_ul);
    assert_string_equal(got->session_id, want->session_id);
    assert_string_equal(got->cartridge_id, want->cartridge_id);
    assert_string_equal(got->pigment_lot, want->pigment_lot);
}

/* Encodes in, decodes it again into out (capacity cap), returns the size. */
static size_t windows_round_trip(struct nw_codec *c, const struct nw_window_batch *in,
                                 struct nw_window_batch *out)
{
    uint8_t *buf = malloc(BUF_CAP);
    assert_non_null(buf);
    size_t len = 0;
    struct nw_error err = {0};
    assert_int_equal(nw_codec_encode_windows(c, in, buf, BUF_CAP, &len, &err), NW_OK);
    enum nw_reason reason = NW_REASON_NONE;
    enum nw_err rc = nw_codec_decode_windows(c, buf, len, out, &reason, &err);
    free(buf);
    if (rc != NW_OK) {
        print_error("decode: %s (%s)\n", err.msg, nw_reason_name(reason));
    }
    assert_int_equal(rc, NW_OK);
    assert_string_equal(out->device_id, in->device_id);
    assert_int_equal(out->epoch, in->epoch);
    assert_int_equal(out->queue_floor, in->queue_floor);
    assert_int_equal(out->count, in->count);
    for (size_t i = 0; i < in->count; i++) {
        assert_window_eq(&out->windows[i], &in->windows[i]);
    }
    return len;
}

static size_t encoded_windows_len(struct nw_codec *c, const struct nw_window_batch *in)
{
    uint8_t *buf = malloc(BUF_CAP);
    assert_non_null(buf);
    size_t len = 0;
    assert_int_equal(nw_codec_encode_windows(c, in, buf, BUF_CAP, &len, NULL), NW_OK);
    free(buf);
    return len;
}

/* ---- window round trips ---------------------------------------------- */

static void test_window_round_trip_one(void **state)
{
    (void)state;
    struct nw_codec *c = codec_default();
    struct nw_window w, got;
    make_window(&w, 7, "s-7f3a9c2e41d8", "C3RL-20241101-004217", "PGM-L2409-117");
    struct nw_window_batch in = {.device_id = DEVICE,
                                 .epoch = EPOCH,
                                 .queue_floor = 3,
                                 .count = 1,
                                 .capacity = 1,
                                 .windows = &w};
    struct nw_window_batch out = {.capacity = 1, .windows = &got, .queue_floor = 99};
    size_t len = windows_round_trip(c, &in, &out);
    assert_true(len > 0);
    /* Without a queue floor (0: unknown) it reads back as 0. */
    in.queue_floor = 0;
    out.queue_floor = 99;
    windows_round_trip(c, &in, &out);
    nw_codec_destroy(&c);
    assert_null(c);
    nw_codec_destroy(&c); /* NULL-safe */
}

static void test_window_round_trip_extremes(void **state)
{
    (void)state;
    struct nw_codec *c = codec_default();
    struct nw_window w[3], got[3];
    /* All zero: an idle window with no session. */
    make_window(&w[0], 1, "", "", "");
    w[0].running_ms = 0;
    w[0].cycles = 0;
    w[0].rate_mean_hz = w[0].rate_min_hz = w[0].rate_max_hz = 0;
    w[0].depth_mean_mm = w[0].depth_min_mm = w[0].depth_max_mm = 0;
    w[0].pigment_ul = 0;
    /* Largest integers, negative time, 64-char ids. */
    make_window(&w[1], UINT64_MAX, "", "", "");
    w[1].start_ms = INT64_MIN;
    w[1].duration_ms = UINT32_MAX;
    w[1].running_ms = UINT32_MAX;
    w[1].cycles = UINT64_MAX;
    memset(w[1].session_id, 'S', NW_ID_MAX);
    memset(w[1].cartridge_id, 'C', NW_ID_MAX);
    memset(w[1].pigment_lot, 'L', NW_ID_MAX);
    /* Values the validator refuses still cross the wire unchanged. */
    make_window(&w[2], 3, "a", "b", "c");
    w[2].start_ms = INT64_MAX;
    w[2].rate_mean_hz = 5000;
    w[2].depth_max_mm = 12.5;
    w[2].pigment_ul = 9999.5;
    struct nw_window_batch in = {
        .device_id = DEVICE, .epoch = 0, .count = 3, .capacity = 3, .windows = w};
    struct nw_window_batch out = {.capacity = 3, .windows = got};
    windows_round_trip(c, &in, &out);
    nw_codec_destroy(&c);
}

/* A window that counted no cycles still keeps what it says about depth and
 * rate: the encoder must not drop non-zero values. */
static void test_window_round_trip_values_without_cycles(void **state)
{
    (void)state;
    struct nw_codec *c = codec_default();
    struct nw_window w, got;
    make_window(&w, 9, "s1", "c1", "l1");
    w.cycles = 0;
    w.running_ms = 0;
    struct nw_window_batch in = {
        .device_id = DEVICE, .epoch = EPOCH, .count = 1, .capacity = 1, .windows = &w};
    struct nw_window_batch out = {.capacity = 1, .windows = &got};
    windows_round_trip(c, &in, &out);
    nw_codec_destroy(&c);
}

static void test_window_quantisation(void **state)
{
    (void)state;
    struct nw_codec *c = codec_default();
    struct nw_window w, got;
    make_window(&w, 1, "s", "c", "l");
    w.rate_mean_hz = 120.01249; /* -> 120.012 */
    w.rate_min_hz = 118.50061;  /* -> 118.501 */
    w.rate_max_hz = 121.7496;   /* -> 121.750 */
    w.depth_mean_mm = 0.351249; /* -> 0.3512 */
    w.depth_min_mm = 0.33006;   /* -> 0.3301 */
    w.depth_max_mm = 0.3725;    /* exact */
    w.pigment_ul = 0.0123449;   /* -> 0.0123 */
    uint8_t buf[512];
    size_t len = 0;
    assert_int_equal(
        nw_codec_encode_windows(
            c,
            &(struct nw_window_batch){
                .device_id = DEVICE, .epoch = EPOCH, .count = 1, .capacity = 1, .windows = &w},
            buf, sizeof(buf), &len, NULL),
        NW_OK);
    struct nw_window_batch out = {.capacity = 1, .windows = &got};
    assert_int_equal(nw_codec_decode_windows(c, buf, len, &out, NULL, NULL), NW_OK);
    assert_double_exact(got.rate_mean_hz, 120.012);
    assert_double_exact(got.rate_min_hz, 118.501);
    assert_double_exact(got.rate_max_hz, 121.75);
    assert_double_exact(got.depth_mean_mm, 0.3512);
    assert_double_exact(got.depth_min_mm, 0.3301);
    assert_double_exact(got.depth_max_mm, 0.3725);
    assert_double_exact(got.pigment_ul, 0.0123);
    nw_codec_destroy(&c);
}

/*
 * Strings repeat the previous window's when absent; empty means none. The
 * test checks the decoded values and, through protobuf-c, what is actually
 * on the wire.
 */
static void test_window_string_inheritance(void **state)
{
    (void)state;
    struct nw_codec *c = codec_default();
    struct nw_window w[6], got[6];
    make_window(&w[0], 10, "S1", "C1", "L1");
    make_window(&w[1], 11, "S1", "C1", "L1"); /* all inherited */
    make_window(&w[2], 12, "", "C1", "L1");   /* session ended: "" on the wire */
    make_window(&w[3], 13, "", "C2", "L1");   /* new cartridge */
    make_window(&w[4], 14, "S2", "C2", "L2"); /* new session and lot */
    make_window(&w[5], 15, "S2", "C2", "L2"); /* all inherited */
    struct nw_window_batch in = {
        .device_id = DEVICE, .epoch = EPOCH, .count = 6, .capacity = 6, .windows = w};
    struct nw_window_batch out = {.capacity = 6, .windows = got};
    windows_round_trip(c, &in, &out);

    uint8_t buf[2048];
    size_t len = 0;
    assert_int_equal(nw_codec_encode_windows(c, &in, buf, sizeof(buf), &len, NULL), NW_OK);
    Needlewatch__V1__WindowBatch *pb = needlewatch__v1__window_batch__unpack(NULL, len, buf);
    assert_non_null(pb);
    assert_int_equal(pb->n_windows, 6);
    const char *want[6][3] = {{"S1", "C1", "L1"}, {NULL, NULL, NULL}, {"", NULL, NULL},
                              {NULL, "C2", NULL}, {"S2", NULL, "L2"}, {NULL, NULL, NULL}};
    for (size_t i = 0; i < 6; i++) {
        const char *have[3] = {pb->windows[i]->session_id, pb->windows[i]->cartridge_id,
                               pb->windows[i]->pigment_lot};
        for (size_t j = 0; j < 3; j++) {
            if (!want[i][j]) {
                assert_null(have[j]);
            } else {
                assert_non_null(have[j]);
                assert_string_equal(have[j], want[i][j]);
            }
        }
    }
    needlewatch__v1__window_batch__free_unpacked(pb, NULL);
    nw_codec_destroy(&c);
}

/* The decoder's side of inheritance on a hand-made batch. */
static void test_window_decode_inherits_hand_made(void **state)
{
    (void)state;
    struct nw_codec *c = codec_default();
    Needlewatch__V1__Window pw[3];
    Needlewatch__V1__Window *pp[3];
    for (size_t i = 0; i < 3; i++) {
        needlewatch__v1__window__init(&pw[i]);
        pw[i].has_seq = pw[i].has_start_ms = pw[i].has_duration_ms = true;
        pw[i].seq = i + 1;
        pw[i].start_ms = T0 + (int64_t)i * 1000;
        pw[i].duration_ms = 1000;
        pp[i] = &pw[i];
    }
    pw[0].session_id = "S1";
    pw[0].cartridge_id = "C1";
    pw[0].pigment_lot = "L1";
    pw[2].session_id = ""; /* present and empty: none */
    pw[2].pigment_lot = "L9";
    Needlewatch__V1__WindowBatch pb = NEEDLEWATCH__V1__WINDOW_BATCH__INIT;
    pb.device_id = DEVICE;
    pb.has_epoch = true;
    pb.epoch = 1;
    pb.n_windows = 3;
    pb.windows = pp;
    uint8_t buf[512];
    size_t len = needlewatch__v1__window_batch__pack(&pb, buf);
    struct nw_window got[3];
    struct nw_window_batch out = {.capacity = 3, .windows = got};
    assert_int_equal(nw_codec_decode_windows(c, buf, len, &out, NULL, NULL), NW_OK);
    assert_int_equal(out.count, 3);
    assert_string_equal(got[1].session_id, "S1");
    assert_string_equal(got[1].cartridge_id, "C1");
    assert_string_equal(got[1].pigment_lot, "L1");
    assert_string_equal(got[2].session_id, "");
    assert_string_equal(got[2].cartridge_id, "C1");
    assert_string_equal(got[2].pigment_lot, "L9");
    /* Absent floats and counters are zero. */
    assert_int_equal(got[2].cycles, 0);
    assert_int_equal(got[2].running_ms, 0);
    assert_double_exact(got[2].rate_mean_hz, 0.0);
    assert_double_exact(got[2].pigment_ul, 0.0);
    nw_codec_destroy(&c);
}

/* Length on the wire of one window's three strings when they are sent. */
static size_t strings_cost(const struct nw_window *w)
{
    return 2 + strlen(w->session_id) + 2 + strlen(w->cartridge_id) + 2 + strlen(w->pigment_lot);
}

static void test_window_inheritance_shrinks_payload(void **state)
{
    (void)state;
    struct nw_codec *c = codec_default();
    enum { N = 100 };
    struct nw_window *w = calloc(N, sizeof(*w));
    assert_non_null(w);
    for (size_t i = 0; i < N; i++) {
        make_window(&w[i], 1000 + i, "s-7f3a9c2e41d8", "C3RL-20241101-004217", "PGM-L2409-117");
    }
    struct nw_window_batch batch = {
        .device_id = DEVICE, .epoch = EPOCH, .count = N, .capacity = N, .windows = w};
    size_t batched = encoded_windows_len(c, &batch);
    size_t singles = 0;
    for (size_t i = 0; i < N; i++) {
        struct nw_window_batch one = {
            .device_id = DEVICE, .epoch = EPOCH, .count = 1, .capacity = 1, .windows = &w[i]};
        singles += encoded_windows_len(c, &one);
    }
    /* Same batch with the strings repeated in every window, through protobuf-c. */
    Needlewatch__V1__Window *pw = calloc(N, sizeof(*pw));
    Needlewatch__V1__Window **pp = calloc(N, sizeof(*pp));
    assert_non_null(pw);
    assert_non_null(pp);
    uint8_t one_buf[512];
    size_t one_len = 0;
    for (size_t i = 0; i < N; i++) {
        struct nw_window_batch one = {
            .device_id = DEVICE, .epoch = EPOCH, .count = 1, .capacity = 1, .windows = &w[i]};
        assert_int_equal(nw_codec_encode_windows(c, &one, one_buf, sizeof(one_buf), &one_len, NULL),
                         NW_OK);
        Needlewatch__V1__WindowBatch *u =
            needlewatch__v1__window_batch__unpack(NULL, one_len, one_buf);
        assert_non_null(u);
        pw[i] = *u->windows[0];
        pw[i].session_id = w[i].session_id;
        pw[i].cartridge_id = w[i].cartridge_id;
        pw[i].pigment_lot = w[i].pigment_lot;
        pp[i] = &pw[i];
        needlewatch__v1__window_batch__free_unpacked(u, NULL);
    }
    Needlewatch__V1__WindowBatch full = NEEDLEWATCH__V1__WINDOW_BATCH__INIT;
    full.device_id = DEVICE;
    full.has_epoch = true;
    full.epoch = EPOCH;
    full.n_windows = N;
    full.windows = pp;
    size_t repeated = needlewatch__v1__window_batch__get_packed_size(&full);
    print_message("100 windows: batched %zu bytes, strings repeated %zu, 100 single batches %zu\n",
                  batched, repeated, singles);
    assert_true(batched < singles);
    /* Exactly the strings of windows 2..100 are saved (window lengths stay
     * below 128 bytes either way, so their length prefixes do not change). */
    assert_int_equal(repeated - batched, (N - 1) * strings_cost(&w[0]));
    free(pp);
    free(pw);
    free(w);
    nw_codec_destroy(&c);
}

/* ---- wire size against JSON ------------------------------------------ */

/* Appends a decimal with at most `decimals` places, trailing zeros cut. */
static void json_num(char *out, size_t cap, double v, int decimals)
{
    snprintf(out, cap, "%.*f", decimals, v);
    char *dot = strchr(out, '.');
    if (dot) {
        char *end = out + strlen(out) - 1;
        while (end > dot && *end == '0') {
            *end-- = '\0';
        }
        if (end == dot) {
            *end = '\0';
        }
    }
}

/* Compact JSON of one window; strings only when with_strings. */
static size_t json_window(char *out, size_t cap, const struct nw_window *w, bool with_strings)
{
    char rm[32], rn[32], rx[32], dm[32], dn[32], dx[32], pg[32];
    json_num(rm, sizeof(rm), w->rate_mean_hz, 3);
    json_num(rn, sizeof(rn), w->rate_min_hz, 3);
    json_num(rx, sizeof(rx), w->rate_max_hz, 3);
    json_num(dm, sizeof(dm), w->depth_mean_mm, 4);
    json_num(dn, sizeof(dn), w->depth_min_mm, 4);
    json_num(dx, sizeof(dx), w->depth_max_mm, 4);
    json_num(pg, sizeof(pg), w->pigment_ul, 4);
    int n = snprintf(out, cap,
                     "{\"seq\":%llu,\"start_ms\":%lld,\"duration_ms\":%u,\"cycles\":%llu,"
                     "\"running_ms\":%u,\"rate_mean_hz\":%s,\"rate_min_hz\":%s,\"rate_max_hz\":%s,"
                     "\"depth_mean_mm\":%s,\"depth_min_mm\":%s,\"depth_max_mm\":%s,"
                     "\"pigment_ul\":%s",
                     (unsigned long long)w->seq, (long long)w->start_ms, w->duration_ms,
                     (unsigned long long)w->cycles, w->running_ms, rm, rn, rx, dm, dn, dx, pg);
    assert_true(n > 0 && (size_t)n < cap);
    if (with_strings) {
        n += snprintf(out + n, cap - (size_t)n,
                      ",\"session_id\":\"%s\",\"cartridge_id\":\"%s\",\"pigment_lot\":\"%s\"",
                      w->session_id, w->cartridge_id, w->pigment_lot);
    }
    n += snprintf(out + n, cap - (size_t)n, "}");
    assert_true((size_t)n < cap);
    return (size_t)n;
}

/* {"device_id":..,"epoch":..,"windows":[...]}: strings in every window
 * (all_strings) or only in the first (as the protobuf form does). */
static size_t json_batch(const struct nw_window_batch *b, bool all_strings)
{
    char head[160];
    size_t total = (size_t)snprintf(head, sizeof(head),
                                    "{\"device_id\":\"%s\",\"epoch\":%llu,"
                                    "\"windows\":[",
                                    b->device_id, (unsigned long long)b->epoch);
    char one[1024];
    for (size_t i = 0; i < b->count; i++) {
        total += json_window(one, sizeof(one), &b->windows[i], all_strings || i == 0);
        total += i ? 1 : 0; /* comma */
    }
    return total + 2; /* "]}" */
}

static void test_wire_size_vs_json(void **state)
{
    (void)state;
    struct nw_codec *c = codec_default();
    enum { N = 60 };
    struct nw_window w[N];
    /* A month into the device's life: seq ~2.6 M, realistic values. */
    for (size_t i = 0; i < N; i++) {
        make_window(&w[i], 2592001 + i, "s-7f3a9c2e41d8", "C3RL-20241101-004217", "PGM-L2409-117");
    }
    struct nw_window_batch b = {
        .device_id = DEVICE, .epoch = EPOCH, .count = N, .capacity = N, .windows = w};
    size_t pb_len = encoded_windows_len(c, &b);
    size_t json_full = json_batch(&b, true);
    size_t json_lean = json_batch(&b, false);
    double per_window_pb = (double)pb_len / N;
    double ratio = (double)pb_len / (double)json_full;
    double ratio_lean = (double)pb_len / (double)json_lean;
    print_message("wire size, 60 x 1 s windows: protobuf %zu bytes (%.1f per window); "
                  "compact JSON %zu bytes (%.1f per window) -> %.1f %%; JSON without repeated "
                  "strings %zu bytes (%.1f per window) -> %.1f %% (target <= 40 %%)\n",
                  pb_len, per_window_pb, json_full, (double)json_full / N, 100 * ratio, json_lean,
                  (double)json_lean / N, 100 * ratio_lean);
    /* Holds with margin (measured: see the print above), so it is asserted. */
    assert_true(ratio <= 0.40);
    assert_true(ratio_lean <= 0.40);
    nw_codec_destroy(&c);
}

/* ---- events ---------------------------------------------------------- */

static void make_event(struct nw_event *e, uint64_t seq, enum nw_event_kind kind)
{
    memset(e, 0, sizeof(*e));
    e->seq = seq;
    e->time_ms = T0 + (int64_t)seq * 1000;
    e->kind = kind;
    switch (kind) {
    case NW_EVENT_POWER_ON:
        strcpy(e->firmware, "2.4.1");
        strcpy(e->boot_reason, "watchdog");
        break;
    case NW_EVENT_SESSION_START:
        strcpy(e->session_id, "s-7f3a9c2e41d8");
        strcpy(e->operator_code, "OP-17");
        break;
    case NW_EVENT_SESSION_END:
        strcpy(e->session_id, "s-7f3a9c2e41d8");
        e->end_reason = NW_SESSION_END_POWER_LOSS;
        break;
    case NW_EVENT_CARTRIDGE_INSERTED:
        strcpy(e->cartridge_id, "C3RL-20241101-004217");
        strcpy(e->needle_config, "3RL");
        strcpy(e->lot, "L2024-11");
        break;
    case NW_EVENT_CARTRIDGE_REMOVED:
        strcpy(e->cartridge_id, "C3RL-20241101-004217");
        break;
    case NW_EVENT_PIGMENT_LOADED:
        strcpy(e->lot, "PGM-L2409-117");
        strcpy(e->shade, "Caf\xc3\xa9 Noir \xe2\x80\x93 3");
        e->volume_ul = 250.5;
        break;
    case NW_EVENT_FAULT:
        e->fault_code = 4711;
        strcpy(e->text, "motor stall: current 1.8 A");
        break;
    case NW_EVENT_MAINTENANCE:
        strcpy(e->action, "motor-replaced");
        e->resets_service = true;
        break;
    case NW_EVENT_CALIBRATION:
        e->depth_offset_mm = -0.0125;
        e->rate_scale = 1.0125;
        break;
    default:
        break;
    }
}

static void assert_event_eq(const struct nw_event *got, const struct nw_event *want)
{
    assert_int_equal(got->seq, want->seq);
    assert_int_equal(got->time_ms, want->time_ms);
    assert_int_equal(got->kind, want->kind);
    assert_string_equal(got->firmware, want->firmware);
    assert_string_equal(got->boot_reason, want->boot_reason);
    assert_string_equal(got->session_id, want->session_id);
    assert_string_equal(got->operator_code, want->operator_code);
    assert_int_equal(got->end_reason, want->end_reason);
    assert_string_equal(got->cartridge_id, want->cartridge_id);
    assert_string_equal(got->needle_config, want->needle_config);
    assert_string_equal(got->lot, want->lot);
    assert_string_equal(got->shade, want->shade);
    assert_double_exact(got->volume_ul, want->volume_ul);
    assert_int_equal(got->fault_code, want->fault_code);
    assert_string_equal(got->text, want->text);
    assert_string_equal(got->action, want->action);
    assert_int_equal(got->resets_service, want->resets_service);
    assert_double_exact(got->depth_offset_mm, want->depth_offset_mm);
    assert_double_exact(got->rate_scale, want->rate_scale);
}

static void test_event_round_trip_every_kind(void **state)
{
    (void)state;
    struct nw_codec *c = codec_default();
    enum { N = 14 };
    struct nw_event e[N], got[N];
    for (int k = 0; k < NW_EVENT__COUNT; k++) {
        make_event(&e[k], 100 + (uint64_t)k, (enum nw_event_kind)k);
    }
    /* Variants: no operator code, other end reasons, no service reset. */
    make_event(&e[10], 110, NW_EVENT_SESSION_START);
    e[10].operator_code[0] = '\0';
    make_event(&e[11], 111, NW_EVENT_SESSION_END);
    e[11].end_reason = NW_SESSION_END_UNSPECIFIED;
    make_event(&e[12], 112, NW_EVENT_SESSION_END);
    e[12].end_reason = NW_SESSION_END_TIMEOUT;
    make_event(&e[13], 113, NW_EVENT_MAINTENANCE);
    e[13].resets_service = false;
    struct nw_event_batch in = {.device_id = DEVICE,
                                .epoch = EPOCH,
                                .queue_floor = UINT64_MAX,
                                .count = N,
                                .capacity = N,
                                .events = e};
    uint8_t buf[4096];
    size_t len = 0;
    struct nw_error err = {0};
    assert_int_equal(nw_codec_encode_events(c, &in, buf, sizeof(buf), &len, &err), NW_OK);
    struct nw_event_batch out = {.capacity = N, .events = got};
    enum nw_reason reason = NW_REASON_NONE;
    assert_int_equal(nw_codec_decode_events(c, buf, len, &out, &reason, &err), NW_OK);
    assert_string_equal(out.device_id, DEVICE);
    assert_int_equal(out.epoch, EPOCH);
    assert_int_equal(out.queue_floor, UINT64_MAX);
    assert_int_equal(out.count, N);
    for (size_t i = 0; i < N; i++) {
        assert_event_eq(&got[i], &e[i]);
    }
    nw_codec_destroy(&c);
}

static void test_event_quantisation(void **state)
{
    (void)state;
    struct nw_codec *c = codec_default();
    struct nw_event e[2], got[2];
    make_event(&e[0], 1, NW_EVENT_PIGMENT_LOADED);
    e[0].volume_ul = 250.12345; /* float 250.1234436... -> 250.1234 */
    make_event(&e[1], 2, NW_EVENT_CALIBRATION);
    e[1].depth_offset_mm = 0.012349; /* -> 0.0123 */
    e[1].rate_scale = 0.9876543;     /* -> 0.987654 */
    struct nw_event_batch in = {
        .device_id = DEVICE, .epoch = 1, .count = 2, .capacity = 2, .events = e};
    uint8_t buf[512];
    size_t len = 0;
    assert_int_equal(nw_codec_encode_events(c, &in, buf, sizeof(buf), &len, NULL), NW_OK);
    struct nw_event_batch out = {.capacity = 2, .events = got};
    assert_int_equal(nw_codec_decode_events(c, buf, len, &out, NULL, NULL), NW_OK);
    assert_double_exact(got[0].volume_ul, round((double)(float)250.12345 * 1e4) / 1e4);
    assert_double_exact(got[0].volume_ul, 250.1234);
    assert_double_exact(got[1].depth_offset_mm, 0.0123);
    assert_double_exact(got[1].rate_scale, 0.987654);
    nw_codec_destroy(&c);
}

/* ---- status, ack, alert ---------------------------------------------- */

static void assert_status_eq(const struct nw_status *got, const struct nw_status *want)
{
    assert_string_equal(got->device_id, want->device_id);
    assert_int_equal(got->epoch, want->epoch);
    assert_int_equal(got->state, want->state);
    assert_int_equal(got->time_ms, want->time_ms);
    assert_string_equal(got->firmware, want->firmware);
    assert_string_equal(got->model, want->model);
    assert_int_equal(got->uptime_s, want->uptime_s);
    assert_int_equal(got->odometer_cycles, want->odometer_cycles);
    assert_int_equal(got->running_s, want->running_s);
    assert_int_equal(got->queue_depth, want->queue_depth);
    assert_int_equal(got->queue_bytes, want->queue_bytes);
    assert_int_equal(got->windows_dropped, want->windows_dropped);
    assert_int_equal(got->events_dropped, want->events_dropped);
    assert_int_equal(got->corrupt_records, want->corrupt_records);
    assert_int_equal(got->last_window_seq, want->last_window_seq);
    assert_int_equal(got->last_event_seq, want->last_event_seq);
    assert_string_equal(got->session_id, want->session_id);
    assert_int_equal(got->heartbeat_s, want->heartbeat_s);
}

static void test_status_round_trip(void **state)
{
    (void)state;
    struct nw_codec *c = codec_default();
    struct nw_status in = {
        .device_id = DEVICE,
        .epoch = EPOCH,
        .state = NW_DEVICE_ONLINE,
        .time_ms = T0,
        .firmware = "2.4.1+build.7",
        .model = "DG-3000",
        .uptime_s = 86400,
        .odometer_cycles = UINT64_MAX,
        .running_s = 123456789,
        .queue_depth = 42,
        .queue_bytes = 1 << 20,
        .windows_dropped = 3,
        .events_dropped = 4,
        .corrupt_records = 5,
        .last_window_seq = 2592060,
        .last_event_seq = 77,
        .session_id = "s-7f3a9c2e41d8",
        .heartbeat_s = 30,
    };
    uint8_t buf[512];
    size_t len = 0;
    assert_int_equal(nw_codec_encode_status(c, &in, buf, sizeof(buf), &len, NULL), NW_OK);
    struct nw_status out;
    memset(&out, 0xa5, sizeof(out));
    assert_int_equal(nw_codec_decode_status(c, buf, len, &out, NULL, NULL), NW_OK);
    assert_status_eq(&out, &in);

    /* The last will: offline, no session, zero counters. */
    struct nw_status will = {
        .device_id = DEVICE, .epoch = EPOCH, .state = NW_DEVICE_OFFLINE, .time_ms = T0};
    assert_int_equal(nw_codec_encode_status(c, &will, buf, sizeof(buf), &len, NULL), NW_OK);
    memset(&out, 0xa5, sizeof(out));
    assert_int_equal(nw_codec_decode_status(c, buf, len, &out, NULL, NULL), NW_OK);
    assert_status_eq(&out, &will);
    nw_codec_destroy(&c);
}

static void test_ack_round_trip(void **state)
{
    (void)state;
    struct nw_codec *c = codec_default();
    struct nw_ack in = {.device_id = DEVICE,
                        .epoch = EPOCH,
                        .window_seq = UINT64_MAX,
                        .event_seq = 0,
                        .time_ms = T0};
    uint8_t buf[128];
    size_t len = 0;
    assert_int_equal(nw_codec_encode_ack(c, &in, buf, sizeof(buf), &len, NULL), NW_OK);
    struct nw_ack out;
    memset(&out, 0xa5, sizeof(out));
    assert_int_equal(nw_codec_decode_ack(c, buf, len, &out, NULL, NULL), NW_OK);
    assert_string_equal(out.device_id, in.device_id);
    assert_int_equal(out.epoch, in.epoch);
    assert_int_equal(out.window_seq, in.window_seq);
    assert_int_equal(out.event_seq, in.event_seq);
    assert_int_equal(out.time_ms, in.time_ms);
    nw_codec_destroy(&c);
}

static void test_alert_round_trip(void **state)
{
    (void)state;
    struct nw_codec *c = codec_default();
    struct nw_alert in = {
        .device_id = DEVICE,
        .alert_id = UINT64_C(0x123456789abcdef0),
        .rule = "needle_rate_out_of_spec",
        .severity = NW_SEVERITY_CRITICAL,
        .state = NW_ALERT_FIRING,
        .time_ms = T0,
        .since_ms = T0 - 2000,
        .value = 163.25,
        .threshold = 140.0,
        .message = "rate 163.25 Hz above 140 Hz for 2 s \xe2\x80\x94 session s-7f3a",
        .clinic = "Cl\xc3\xadnica S\xc3\xa3o Paulo, Unit 2",
        .model = "DG-3000",
        .late = true,
    };
    uint8_t buf[1024];
    size_t len = 0;
    assert_int_equal(nw_codec_encode_alert(c, &in, buf, sizeof(buf), &len, NULL), NW_OK);
    struct nw_alert out;
    memset(&out, 0xa5, sizeof(out));
    assert_int_equal(nw_codec_decode_alert(c, buf, len, &out, NULL, NULL), NW_OK);
    assert_string_equal(out.device_id, in.device_id);
    assert_int_equal(out.alert_id, in.alert_id);
    assert_string_equal(out.rule, in.rule);
    assert_int_equal(out.severity, in.severity);
    assert_int_equal(out.state, in.state);
    assert_int_equal(out.time_ms, in.time_ms);
    assert_int_equal(out.since_ms, in.since_ms);
    assert_double_exact(out.value, in.value);
    assert_double_exact(out.threshold, in.threshold);
    assert_string_equal(out.message, in.message);
    assert_string_equal(out.clinic, in.clinic);
    assert_string_equal(out.model, in.model);
    assert_true(out.late);

    /* Resolved, not late, negative value: doubles are not quantised. */
    in.state = NW_ALERT_RESOLVED;
    in.late = false;
    in.value = -0.123456789012345;
    in.severity = NW_SEVERITY_INFO;
    assert_int_equal(nw_codec_encode_alert(c, &in, buf, sizeof(buf), &len, NULL), NW_OK);
    assert_int_equal(nw_codec_decode_alert(c, buf, len, &out, NULL, NULL), NW_OK);
    assert_int_equal(out.state, NW_ALERT_RESOLVED);
    assert_int_equal(out.severity, NW_SEVERITY_INFO);
    assert_false(out.late);
    assert_double_exact(out.value, -0.123456789012345);
    nw_codec_destroy(&c);
}

/* A value of an enum this build does not know reads as UNSPECIFIED (the
 * .proto's evolution rule), for every enum of every message. */
static void test_unknown_enum_values_read_as_unspecified(void **state)
{
    (void)state;
    struct nw_codec *c = codec_default();
    uint8_t buf[512];
    size_t len;

    Needlewatch__V1__Status st = NEEDLEWATCH__V1__STATUS__INIT;
    st.device_id = DEVICE;
    st.has_state = st.has_time_ms = true;
    st.state = (Needlewatch__V1__DeviceState)7;
    st.time_ms = T0;
    len = needlewatch__v1__status__pack(&st, buf);
    struct nw_status s;
    assert_int_equal(nw_codec_decode_status(c, buf, len, &s, NULL, NULL), NW_OK);
    assert_int_equal(s.state, NW_DEVICE_UNSPECIFIED);

    Needlewatch__V1__Alert al = NEEDLEWATCH__V1__ALERT__INIT;
    al.device_id = DEVICE;
    al.rule = "data_gap";
    al.has_severity = al.has_state = al.has_time_ms = true;
    al.severity = (Needlewatch__V1__Severity)9;
    al.state = (Needlewatch__V1__AlertState)12;
    al.time_ms = T0;
    len = needlewatch__v1__alert__pack(&al, buf);
    struct nw_alert a;
    assert_int_equal(nw_codec_decode_alert(c, buf, len, &a, NULL, NULL), NW_OK);
    assert_int_equal(a.severity, NW_SEVERITY_UNSPECIFIED);
    assert_int_equal(a.state, NW_ALERT_UNSPECIFIED);

    Needlewatch__V1__SessionEnd se = NEEDLEWATCH__V1__SESSION_END__INIT;
    se.session_id = "s1";
    se.has_reason = true;
    se.reason = (Needlewatch__V1__SessionEndReason)5;
    Needlewatch__V1__Event ev = NEEDLEWATCH__V1__EVENT__INIT;
    ev.has_seq = ev.has_time_ms = ev.has_kind = true;
    ev.seq = 1;
    ev.time_ms = T0;
    ev.kind = NEEDLEWATCH__V1__EVENT_KIND__EVENT_KIND_SESSION_END;
    ev.detail_case = NEEDLEWATCH__V1__EVENT__DETAIL_SESSION_END;
    ev.session_end = &se;
    Needlewatch__V1__Event *evp = &ev;
    Needlewatch__V1__EventBatch eb = NEEDLEWATCH__V1__EVENT_BATCH__INIT;
    eb.device_id = DEVICE;
    eb.has_epoch = true;
    eb.n_events = 1;
    eb.events = &evp;
    len = needlewatch__v1__event_batch__pack(&eb, buf);
    struct nw_event e;
    struct nw_event_batch out = {.capacity = 1, .events = &e};
    assert_int_equal(nw_codec_decode_events(c, buf, len, &out, NULL, NULL), NW_OK);
    assert_int_equal(e.kind, NW_EVENT_SESSION_END);
    assert_int_equal(e.end_reason, NW_SESSION_END_UNSPECIFIED);
    assert_string_equal(e.session_id, "s1");
    nw_codec_destroy(&c);
}

/* ---- raw wire writing for hostile inputs ----------------------------- */

struct wire {
    uint8_t *p;
    size_t len, cap;
};

static void w_byte(struct wire *w, uint8_t b)
{
    assert_true(w->len < w->cap);
    w->p[w->len++] = b;
}

static void w_varint(struct wire *w, uint64_t v)
{
    while (v >= 0x80) {
        w_byte(w, (uint8_t)(v | 0x80));
        v >>= 7;
    }
    w_byte(w, (uint8_t)v);
}

static void w_tag(struct wire *w, uint32_t field, unsigned wire_type)
{
    w_varint(w, ((uint64_t)field << 3) | wire_type);
}

static void w_bytes(struct wire *w, uint32_t field, const void *data, size_t n)
{
    w_tag(w, field, 2);
    w_varint(w, n);
    assert_true(w->len + n <= w->cap);
    memcpy(w->p + w->len, data, n);
    w->len += n;
}

static void w_fixed64(struct wire *w, uint32_t field, uint64_t v)
{
    w_tag(w, field, 1);
    for (int i = 0; i < 8; i++) {
        w_byte(w, (uint8_t)(v >> (8 * i)));
    }
}

/* ---- protobuf-c builders for hostile inputs -------------------------- */

enum msg_type { T_WINDOWS, T_EVENTS, T_STATUS, T_ACK, T_ALERT };

enum mutation {
    M_NONE,
    M_DEVICE, /* device_id = row->str */
    M_NO_DEVICE,
    M_NO_EPOCH,
    M_NO_SEQ,      /* in element 1 */
    M_NO_START,    /* windows[1] */
    M_NO_DURATION, /* windows[1] */
    M_NO_FIRST_STRINGS,
    M_NO_FIRST_LOT,
    M_SESSION, /* session id of element 0 = row->str */
    M_KIND_MISMATCH,
    M_UNKNOWN_KIND,
    M_UNSPECIFIED_KIND_WITH_DETAIL,
    M_NO_KIND,
    M_NO_TIME,
    M_NO_STATE,
    M_NO_RULE,
    M_NO_SEVERITY,
    M_FUTURE_FIELDS,
};

struct row;
typedef size_t (*build_fn)(uint8_t *buf, size_t cap, const struct row *r);

struct row {
    const char *name;
    enum msg_type type;
    build_fn build;
    enum mutation mut;
    const char *str; /* builder argument: bytes, device id, session id */
    size_t n;        /* builder argument: length, element count */
    size_t max_payload, max_windows, max_events, capacity; /* 0: defaults, capacity 8 */
    enum nw_err rc;
    enum nw_reason reason;
    const char *needle; /* in the error message; NULL for rc == NW_OK */
};

static size_t b_bytes(uint8_t *buf, size_t cap, const struct row *r)
{
    assert_true(r->n <= cap);
    memcpy(buf, r->str, r->n);
    return r->n;
}

/* row->n bytes of the pattern row->str (2 bytes) repeated. */
static size_t b_repeat2(uint8_t *buf, size_t cap, const struct row *r)
{
    assert_true(r->n <= cap && r->n % 2 == 0);
    for (size_t i = 0; i < r->n; i += 2) {
        memcpy(buf + i, r->str, 2);
    }
    return r->n;
}

static char long_id[NW_ID_MAX + 2]; /* 65 characters, filled in main() */
static char max_id[NW_ID_MAX + 1];  /* 64 characters */

static size_t b_windows(uint8_t *buf, size_t cap, const struct row *r)
{
    size_t n = r->n ? r->n : 3;
    Needlewatch__V1__Window *pw = calloc(n, sizeof(*pw));
    Needlewatch__V1__Window **pp = calloc(n, sizeof(*pp));
    assert_non_null(pw);
    assert_non_null(pp);
    for (size_t i = 0; i < n; i++) {
        needlewatch__v1__window__init(&pw[i]);
        pw[i].has_seq = pw[i].has_start_ms = pw[i].has_duration_ms = true;
        pw[i].seq = i + 1;
        pw[i].start_ms = T0 + (int64_t)i * 1000;
        pw[i].duration_ms = 1000;
        pw[i].has_cycles = pw[i].has_running_ms = true;
        pw[i].cycles = 120;
        pw[i].running_ms = 1000;
        pp[i] = &pw[i];
    }
    if (r->mut == M_NO_SEQ && n > 1) {
        pw[1].has_seq = false;
    }
    if (r->mut == M_NO_START && n > 1) {
        pw[1].has_start_ms = false;
    }
    if (r->mut == M_NO_DURATION && n > 1) {
        pw[1].has_duration_ms = false;
    }
    if (n > 0 && r->mut != M_NO_FIRST_STRINGS) {
        pw[0].session_id = r->mut == M_SESSION ? (char *)r->str : "s-1";
        pw[0].cartridge_id = "c-1";
        pw[0].pigment_lot = r->mut == M_NO_FIRST_LOT ? NULL : "l-1";
    }
    Needlewatch__V1__WindowBatch pb = NEEDLEWATCH__V1__WINDOW_BATCH__INIT;
    pb.device_id = r->mut == M_NO_DEVICE ? NULL : r->mut == M_DEVICE ? (char *)r->str : DEVICE;
    pb.has_epoch = r->mut != M_NO_EPOCH;
    pb.epoch = EPOCH;
    pb.n_windows = n;
    pb.windows = pp;
    size_t need = needlewatch__v1__window_batch__get_packed_size(&pb);
    assert_true(need <= cap);
    size_t len = needlewatch__v1__window_batch__pack(&pb, buf);
    free(pp);
    free(pw);
    return len;
}

/* Zero windows: the count row needs n == 0 to mean zero, so a separate
 * builder. */
static size_t b_windows_none(uint8_t *buf, size_t cap, const struct row *r)
{
    (void)r;
    Needlewatch__V1__WindowBatch pb = NEEDLEWATCH__V1__WINDOW_BATCH__INIT;
    pb.device_id = DEVICE;
    pb.has_epoch = true;
    pb.epoch = EPOCH;
    assert_true(needlewatch__v1__window_batch__get_packed_size(&pb) <= cap);
    return needlewatch__v1__window_batch__pack(&pb, buf);
}

/* A valid batch with unknown fields everywhere: a window field 16, a
 * batch field 20 (fixed64) and 21 (string), field 1000 (reserved for local
 * experiments), and an unknown field after the windows. */
static size_t b_windows_future(uint8_t *buf, size_t cap, const struct row *r)
{
    (void)r;
    uint8_t inner[256];
    struct wire wi = {inner, 0, sizeof(inner)};
    w_tag(&wi, 1, 0);
    w_varint(&wi, 1);
    w_tag(&wi, 16, 0); /* new uint field */
    w_varint(&wi, 5);
    w_tag(&wi, 2, 0);
    w_varint(&wi, (uint64_t)T0);
    w_tag(&wi, 3, 0);
    w_varint(&wi, 1000);
    w_bytes(&wi, 13, "s-1", 3);
    w_bytes(&wi, 14, "c-1", 3);
    w_bytes(&wi, 15, "l-1", 3);
    w_bytes(&wi, 1000, "experiment", 10);
    w_tag(&wi, 17, 5); /* new float */
    for (int i = 0; i < 4; i++) {
        w_byte(&wi, 0x42);
    }
    struct wire w = {buf, 0, cap};
    w_fixed64(&w, 20, 99);
    w_bytes(&w, 1, DEVICE, strlen(DEVICE));
    w_fixed64(&w, 2, EPOCH);
    w_bytes(&w, 3, inner, wi.len);
    w_bytes(&w, 21, "future", 6);
    return w.len;
}

static size_t b_events(uint8_t *buf, size_t cap, const struct row *r)
{
    size_t n = r->n ? r->n : 2;
    Needlewatch__V1__Event *pe = calloc(n, sizeof(*pe));
    Needlewatch__V1__Event **pp = calloc(n, sizeof(*pp));
    assert_non_null(pe);
    assert_non_null(pp);
    Needlewatch__V1__Fault fault = NEEDLEWATCH__V1__FAULT__INIT;
    fault.has_code = true;
    fault.code = 17;
    fault.text = "overcurrent";
    Needlewatch__V1__SessionStart start = NEEDLEWATCH__V1__SESSION_START__INIT;
    start.session_id = r->mut == M_SESSION ? (char *)r->str : "s-1";
    for (size_t i = 0; i < n; i++) {
        needlewatch__v1__event__init(&pe[i]);
        pe[i].has_seq = pe[i].has_time_ms = pe[i].has_kind = true;
        pe[i].seq = i + 1;
        pe[i].time_ms = T0 + (int64_t)i;
        pe[i].kind = NEEDLEWATCH__V1__EVENT_KIND__EVENT_KIND_FAULT;
        pe[i].detail_case = NEEDLEWATCH__V1__EVENT__DETAIL_FAULT;
        pe[i].fault = &fault;
        pp[i] = &pe[i];
    }
    switch (r->mut) {
    case M_SESSION:
        pe[0].kind = NEEDLEWATCH__V1__EVENT_KIND__EVENT_KIND_SESSION_START;
        pe[0].detail_case = NEEDLEWATCH__V1__EVENT__DETAIL_SESSION_START;
        pe[0].session_start = &start;
        break;
    case M_KIND_MISMATCH: /* says session start, carries a fault */
        pe[n - 1].kind = NEEDLEWATCH__V1__EVENT_KIND__EVENT_KIND_SESSION_START;
        break;
    case M_UNKNOWN_KIND:
        pe[0].kind = (Needlewatch__V1__EventKind)42;
        break;
    case M_UNSPECIFIED_KIND_WITH_DETAIL:
        pe[0].kind = NEEDLEWATCH__V1__EVENT_KIND__EVENT_KIND_UNSPECIFIED;
        break;
    case M_NO_KIND:
        pe[n - 1].has_kind = false;
        break;
    case M_NO_SEQ:
        pe[n - 1].has_seq = false;
        break;
    case M_NO_TIME:
        pe[n - 1].has_time_ms = false;
        break;
    default:
        break;
    }
    Needlewatch__V1__EventBatch pb = NEEDLEWATCH__V1__EVENT_BATCH__INIT;
    pb.device_id = r->mut == M_NO_DEVICE ? NULL : r->mut == M_DEVICE ? (char *)r->str : DEVICE;
    pb.has_epoch = r->mut != M_NO_EPOCH;
    pb.epoch = EPOCH;
    pb.n_events = n;
    pb.events = pp;
    assert_true(needlewatch__v1__event_batch__get_packed_size(&pb) <= cap);
    size_t len = needlewatch__v1__event_batch__pack(&pb, buf);
    free(pp);
    free(pe);
    if (r->mut == M_FUTURE_FIELDS) {
        struct wire w = {buf, len, cap};
        w_bytes(&w, 20, "new", 3);
        w_tag(&w, 1500, 5);
        for (int i = 0; i < 4; i++) {
            w_byte(&w, 0);
        }
        len = w.len;
    }
    return len;
}

static size_t b_events_none(uint8_t *buf, size_t cap, const struct row *r)
{
    (void)r;
    Needlewatch__V1__EventBatch pb = NEEDLEWATCH__V1__EVENT_BATCH__INIT;
    pb.device_id = DEVICE;
    pb.has_epoch = true;
    assert_true(needlewatch__v1__event_batch__get_packed_size(&pb) <= cap);
    return needlewatch__v1__event_batch__pack(&pb, buf);
}

static size_t b_status(uint8_t *buf, size_t cap, const struct row *r)
{
    Needlewatch__V1__Status pb = NEEDLEWATCH__V1__STATUS__INIT;
    pb.device_id = r->mut == M_NO_DEVICE ? NULL : r->mut == M_DEVICE ? (char *)r->str : DEVICE;
    pb.has_epoch = true;
    pb.epoch = EPOCH;
    pb.has_state = r->mut != M_NO_STATE;
    pb.state = NEEDLEWATCH__V1__DEVICE_STATE__DEVICE_STATE_ONLINE;
    pb.has_time_ms = r->mut != M_NO_TIME;
    pb.time_ms = T0;
    pb.session_id = r->mut == M_SESSION ? (char *)r->str : "s-1";
    assert_true(needlewatch__v1__status__get_packed_size(&pb) <= cap);
    size_t len = needlewatch__v1__status__pack(&pb, buf);
    if (r->mut == M_FUTURE_FIELDS) {
        struct wire w = {buf, len, cap};
        w_bytes(&w, 19, "new", 3);
        w_tag(&w, 1999, 0);
        w_varint(&w, 1);
        len = w.len;
    }
    return len;
}

static size_t b_ack(uint8_t *buf, size_t cap, const struct row *r)
{
    Needlewatch__V1__Ack pb = NEEDLEWATCH__V1__ACK__INIT;
    pb.device_id = r->mut == M_NO_DEVICE ? NULL : r->mut == M_DEVICE ? (char *)r->str : DEVICE;
    pb.has_epoch = r->mut != M_NO_EPOCH;
    pb.epoch = EPOCH;
    pb.has_window_seq = true;
    pb.window_seq = 10;
    assert_true(needlewatch__v1__ack__get_packed_size(&pb) <= cap);
    size_t len = needlewatch__v1__ack__pack(&pb, buf);
    if (r->mut == M_FUTURE_FIELDS) {
        struct wire w = {buf, len, cap};
        w_fixed64(&w, 6, 1);
        len = w.len;
    }
    return len;
}

static size_t b_alert(uint8_t *buf, size_t cap, const struct row *r)
{
    Needlewatch__V1__Alert pb = NEEDLEWATCH__V1__ALERT__INIT;
    pb.device_id = r->mut == M_NO_DEVICE ? NULL : r->mut == M_DEVICE ? (char *)r->str : DEVICE;
    pb.rule = r->mut == M_NO_RULE ? NULL : "data_gap";
    pb.has_severity = r->mut != M_NO_SEVERITY;
    pb.severity = NEEDLEWATCH__V1__SEVERITY__SEVERITY_WARNING;
    pb.has_state = true;
    pb.state = NEEDLEWATCH__V1__ALERT_STATE__ALERT_STATE_FIRING;
    pb.has_time_ms = r->mut != M_NO_TIME;
    pb.time_ms = T0;
    assert_true(needlewatch__v1__alert__get_packed_size(&pb) <= cap);
    size_t len = needlewatch__v1__alert__pack(&pb, buf);
    if (r->mut == M_FUTURE_FIELDS) {
        struct wire w = {buf, len, cap};
        w_bytes(&w, 14, "runbook-url", 11);
        len = w.len;
    }
    return len;
}

#define KIB 1024
#define DEFAULT_MAX_PAYLOAD (256 * KIB)
#define BYTES(s) b_bytes, M_NONE, s, sizeof(s) - 1

/* Hostile and edge-case payloads. */
static const struct row rows[] = {
    /* An empty payload is the valid encoding of an empty message: every field
     * absent, so it is refused for its first missing field, not as garbage. */
    {"empty payload (windows)", T_WINDOWS, BYTES(""), 0, 0, 0, 0, NW_ERR_INVALID,
     NW_REASON_MISSING_FIELD, "device_id: missing"},
    {"empty payload (events)", T_EVENTS, BYTES(""), 0, 0, 0, 0, NW_ERR_INVALID,
     NW_REASON_MISSING_FIELD, "device_id: missing"},
    {"empty payload (status)", T_STATUS, BYTES(""), 0, 0, 0, 0, NW_ERR_INVALID,
     NW_REASON_MISSING_FIELD, "device_id: missing"},
    {"empty payload (ack)", T_ACK, BYTES(""), 0, 0, 0, 0, NW_ERR_INVALID, NW_REASON_MISSING_FIELD,
     "device_id: missing"},
    {"empty payload (alert)", T_ALERT, BYTES(""), 0, 0, 0, 0, NW_ERR_INVALID,
     NW_REASON_MISSING_FIELD, "device_id: missing"},
    {"one random byte 0xa7", T_WINDOWS, BYTES("\xa7"), 0, 0, 0, 0, NW_ERR_DECODE,
     NW_REASON_MALFORMED, "not a valid protobuf message of the expected type (1 bytes)"},
    {"one byte: tag without value", T_ACK, BYTES("\x08"), 0, 0, 0, 0, NW_ERR_DECODE,
     NW_REASON_MALFORMED, "not a valid protobuf"},
    {"one zero byte (field 0)", T_STATUS, BYTES("\x00"), 0, 0, 0, 0, NW_ERR_DECODE,
     NW_REASON_MALFORMED, "not a valid protobuf"},
    {"truncated varint", T_ACK,
     BYTES("\x0a\x03"
           "dev\x18\xff\xff"),
     0, 0, 0, 0, NW_ERR_DECODE, NW_REASON_MALFORMED, "(8 bytes)"},
    {"varint of 11 bytes", T_ACK, BYTES("\x18\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"), 0, 0,
     0, 0, NW_ERR_DECODE, NW_REASON_MALFORMED, "not a valid protobuf"},
    {"truncated length-delimited field", T_WINDOWS,
     BYTES("\x0a\x05"
           "ab"),
     0, 0, 0, 0, NW_ERR_DECODE, NW_REASON_MALFORMED, "not a valid protobuf"},
    {"truncated nested window", T_WINDOWS,
     BYTES("\x0a\x03"
           "dev\x11\x01\x02\x03\x04\x05\x06\x07\x08\x1a\x10\x08\x01"),
     0, 0, 0, 0, NW_ERR_DECODE, NW_REASON_MALFORMED, "not a valid protobuf"},
    {"truncated fixed64", T_ACK,
     BYTES("\x0a\x03"
           "dev\x11\x01\x02\x03"),
     0, 0, 0, 0, NW_ERR_DECODE, NW_REASON_MALFORMED, "not a valid protobuf"},
    {"length prefix of 4 GiB", T_STATUS,
     BYTES("\x0a\xff\xff\xff\xff\x0f"
           "dev"),
     0, 0, 0, 0, NW_ERR_DECODE, NW_REASON_MALFORMED, "not a valid protobuf"},
    {"wrong wire type: device_id as fixed32", T_ACK,
     BYTES("\x0d"
           "abcd"),
     0, 0, 0, 0, NW_ERR_DECODE, NW_REASON_MALFORMED, "not a valid protobuf"},
    {"wrong wire type: epoch as varint", T_WINDOWS,
     BYTES("\x0a\x03"
           "dev\x10\x05"),
     0, 0, 0, 0, NW_ERR_DECODE, NW_REASON_MALFORMED, "not a valid protobuf"},
    {"wrong wire type: windows as varint", T_WINDOWS, BYTES("\x18\x01"), 0, 0, 0, 0, NW_ERR_DECODE,
     NW_REASON_MALFORMED, "not a valid protobuf"},
    {"invalid wire type 7", T_ALERT, BYTES("\x0f\x00"), 0, 0, 0, 0, NW_ERR_DECODE,
     NW_REASON_MALFORMED, "not a valid protobuf"},
    {"end-group without start", T_ALERT, BYTES("\x0c"), 0, 0, 0, 0, NW_ERR_DECODE,
     NW_REASON_MALFORMED, "not a valid protobuf"},
    /* protobuf-c PR #794: a 5-byte tag whose last byte is shifted by 25. */
    {"5-byte tag (protobuf-c #794)", T_WINDOWS, BYTES("\xf8\xff\xff\xff\x7f"), 0, 0, 0, 0,
     NW_ERR_DECODE, NW_REASON_MALFORMED, "(5 bytes)"},
    {"5-byte tag 0x58 (protobuf-c #794)", T_EVENTS, BYTES("\x80\x80\x80\x80\x58"), 0, 0, 0, 0,
     NW_ERR_DECODE, NW_REASON_MALFORMED, "(5 bytes)"},
    {"payload over max_payload", T_WINDOWS, b_repeat2, M_NONE, "\x1a\x00", DEFAULT_MAX_PAYLOAD + 2,
     0, 0, 0, 0, NW_ERR_TOO_BIG, NW_REASON_TOO_BIG,
     "payload of 262146 bytes exceeds the limit of 262144"},
    {"payload over a small max_payload", T_STATUS, b_repeat2, M_NONE, "\x1a\x00", 1026, 1024, 0, 0,
     0, NW_ERR_TOO_BIG, NW_REASON_TOO_BIG, "payload of 1026 bytes exceeds the limit of 1024"},
    {"256 KiB of empty windows", T_WINDOWS, b_repeat2, M_NONE, "\x1a\x00", DEFAULT_MAX_PAYLOAD, 0,
     0, 0, 0, NW_ERR_TOO_BIG, NW_REASON_TOO_COMPLEX,
     "decoded form exceeds the 6356992-byte decoder bound"},
    {"256 KiB of empty events", T_EVENTS, b_repeat2, M_NONE, "\x1a\x00", DEFAULT_MAX_PAYLOAD, 0, 0,
     0, 0, NW_ERR_TOO_BIG, NW_REASON_TOO_COMPLEX, "decoder bound"},
    {"4 KiB of empty windows, max_payload 4 KiB", T_WINDOWS, b_repeat2, M_NONE, "\x1a\x00", 4 * KIB,
     4 * KIB, 0, 0, 0, NW_ERR_TOO_BIG, NW_REASON_TOO_COMPLEX,
     "decoded form exceeds the 163840-byte decoder bound"},
    /* Below the arena bound the same shape decodes and fails on content. */
    {"100 empty windows", T_WINDOWS, b_repeat2, M_NONE, "\x1a\x00", 200, 0, 0, 0, 0, NW_ERR_INVALID,
     NW_REASON_MISSING_FIELD, "device_id: missing"},
    {"device id of 256 KiB - 64", T_WINDOWS, b_windows, M_DEVICE, NULL, 1, 0, 0, 0, 0,
     NW_ERR_INVALID, NW_REASON_BAD_DEVICE_ID, "device_id: needs 1-64 characters"},
    {"more windows than capacity", T_WINDOWS, b_windows, M_NONE, NULL, 5, 0, 0, 0, 4,
     NW_ERR_INVALID, NW_REASON_BAD_COUNT, "windows: 5 in one batch, allowed 1..4"},
    {"more windows than max_windows", T_WINDOWS, b_windows, M_NONE, NULL, 4, 0, 3, 0, 8,
     NW_ERR_INVALID, NW_REASON_BAD_COUNT, "windows: 4 in one batch, allowed 1..3"},
    {"windows == capacity == max_windows", T_WINDOWS, b_windows, M_NONE, NULL, 3, 0, 3, 0, 3, NW_OK,
     NW_REASON_NONE, NULL},
    {"zero windows", T_WINDOWS, b_windows_none, M_NONE, NULL, 0, 0, 0, 0, 0, NW_ERR_INVALID,
     NW_REASON_BAD_COUNT, "windows: 0 in one batch, allowed 1..8"},
    {"missing device_id", T_WINDOWS, b_windows, M_NO_DEVICE, NULL, 0, 0, 0, 0, 0, NW_ERR_INVALID,
     NW_REASON_MISSING_FIELD, "device_id: missing"},
    {"missing epoch", T_WINDOWS, b_windows, M_NO_EPOCH, NULL, 0, 0, 0, 0, 0, NW_ERR_INVALID,
     NW_REASON_MISSING_FIELD, "epoch: missing"},
    {"missing seq", T_WINDOWS, b_windows, M_NO_SEQ, NULL, 0, 0, 0, 0, 0, NW_ERR_INVALID,
     NW_REASON_MISSING_FIELD, "windows[1]: seq: missing"},
    {"missing start_ms", T_WINDOWS, b_windows, M_NO_START, NULL, 0, 0, 0, 0, 0, NW_ERR_INVALID,
     NW_REASON_MISSING_FIELD, "windows[1]: start_ms: missing"},
    {"missing duration_ms", T_WINDOWS, b_windows, M_NO_DURATION, NULL, 0, 0, 0, 0, 0,
     NW_ERR_INVALID, NW_REASON_MISSING_FIELD, "windows[1]: duration_ms: missing"},
    {"first window without strings", T_WINDOWS, b_windows, M_NO_FIRST_STRINGS, NULL, 0, 0, 0, 0, 0,
     NW_ERR_INVALID, NW_REASON_MISSING_FIELD,
     "windows[0]: the first window of a batch must carry session_id"},
    {"first window without pigment_lot", T_WINDOWS, b_windows, M_NO_FIRST_LOT, NULL, 0, 0, 0, 0, 0,
     NW_ERR_INVALID, NW_REASON_MISSING_FIELD, "windows[0]: the first window"},
    {"device id with '/'", T_WINDOWS, b_windows, M_DEVICE, "smp/0042", 0, 0, 0, 0, 0,
     NW_ERR_INVALID, NW_REASON_BAD_DEVICE_ID, "device_id: needs 1-64 characters of [A-Za-z0-9_-]"},
    {"device id with '+'", T_WINDOWS, b_windows, M_DEVICE, "smp+0042", 0, 0, 0, 0, 0,
     NW_ERR_INVALID, NW_REASON_BAD_DEVICE_ID, "device_id"},
    {"device id '#'", T_EVENTS, b_events, M_DEVICE, "#", 0, 0, 0, 0, 0, NW_ERR_INVALID,
     NW_REASON_BAD_DEVICE_ID, "device_id"},
    {"device id with space", T_STATUS, b_status, M_DEVICE, "smp 0042", 0, 0, 0, 0, 0,
     NW_ERR_INVALID, NW_REASON_BAD_DEVICE_ID, "device_id"},
    {"device id of 65 chars", T_ACK, b_ack, M_DEVICE, long_id, 0, 0, 0, 0, 0, NW_ERR_INVALID,
     NW_REASON_BAD_DEVICE_ID, "device_id"},
    {"device id of 64 chars", T_ACK, b_ack, M_DEVICE, max_id, 0, 0, 0, 0, 0, NW_OK, NW_REASON_NONE,
     NULL},
    {"device id empty", T_ALERT, b_alert, M_DEVICE, "", 0, 0, 0, 0, 0, NW_ERR_INVALID,
     NW_REASON_BAD_DEVICE_ID, "device_id"},
    {"device id non-ASCII", T_WINDOWS, b_windows, M_DEVICE, "smp-d\xc3\xa9v", 0, 0, 0, 0, 0,
     NW_ERR_INVALID, NW_REASON_BAD_DEVICE_ID, "device_id"},
    {"device id with control char", T_EVENTS, b_events, M_DEVICE, "smp\n", 0, 0, 0, 0, 0,
     NW_ERR_INVALID, NW_REASON_BAD_DEVICE_ID, "device_id"},
    {"session id of 65 chars (window)", T_WINDOWS, b_windows, M_SESSION, long_id, 0, 0, 0, 0, 0,
     NW_ERR_INVALID, NW_REASON_BAD_STRING, "windows[0]: session_id: longer than 64 bytes"},
    {"session id of 64 chars (window)", T_WINDOWS, b_windows, M_SESSION, max_id, 0, 0, 0, 0, 0,
     NW_OK, NW_REASON_NONE, NULL},
    {"session id of 65 chars (event)", T_EVENTS, b_events, M_SESSION, long_id, 0, 0, 0, 0, 0,
     NW_ERR_INVALID, NW_REASON_BAD_STRING, "events[0]: session_id: longer than 64 bytes"},
    {"session id of 65 chars (status)", T_STATUS, b_status, M_SESSION, long_id, 0, 0, 0, 0, 0,
     NW_ERR_INVALID, NW_REASON_BAD_STRING, "session_id: longer than 64 bytes"},
    {"event kind/detail mismatch", T_EVENTS, b_events, M_KIND_MISMATCH, NULL, 3, 0, 0, 0, 0,
     NW_ERR_INVALID, NW_REASON_MALFORMED,
     "events[2]: kind session_start carries the detail of another kind (field 10)"},
    {"unknown event kind", T_EVENTS, b_events, M_UNKNOWN_KIND, NULL, 0, 0, 0, 0, 0, NW_OK,
     NW_REASON_NONE, NULL},
    {"unspecified event kind with detail", T_EVENTS, b_events, M_UNSPECIFIED_KIND_WITH_DETAIL, NULL,
     0, 0, 0, 0, 0, NW_OK, NW_REASON_NONE, NULL},
    {"event without kind", T_EVENTS, b_events, M_NO_KIND, NULL, 2, 0, 0, 0, 0, NW_ERR_INVALID,
     NW_REASON_MISSING_FIELD, "events[1]: kind: missing"},
    {"event without seq", T_EVENTS, b_events, M_NO_SEQ, NULL, 2, 0, 0, 0, 0, NW_ERR_INVALID,
     NW_REASON_MISSING_FIELD, "events[1]: seq: missing"},
    {"event without time", T_EVENTS, b_events, M_NO_TIME, NULL, 2, 0, 0, 0, 0, NW_ERR_INVALID,
     NW_REASON_MISSING_FIELD, "events[1]: time_ms: missing"},
    {"event batch without epoch", T_EVENTS, b_events, M_NO_EPOCH, NULL, 0, 0, 0, 0, 0,
     NW_ERR_INVALID, NW_REASON_MISSING_FIELD, "epoch: missing"},
    {"zero events", T_EVENTS, b_events_none, M_NONE, NULL, 0, 0, 0, 0, 0, NW_ERR_INVALID,
     NW_REASON_BAD_COUNT, "events: 0 in one batch, allowed 1..8"},
    {"more events than max_events", T_EVENTS, b_events, M_NONE, NULL, 3, 0, 0, 2, 8, NW_ERR_INVALID,
     NW_REASON_BAD_COUNT, "events: 3 in one batch, allowed 1..2"},
    {"more events than capacity", T_EVENTS, b_events, M_NONE, NULL, 9, 0, 0, 0, 8, NW_ERR_INVALID,
     NW_REASON_BAD_COUNT, "events: 9 in one batch, allowed 1..8"},
    {"status without state", T_STATUS, b_status, M_NO_STATE, NULL, 0, 0, 0, 0, 0, NW_ERR_INVALID,
     NW_REASON_MISSING_FIELD, "state: missing"},
    {"status without time", T_STATUS, b_status, M_NO_TIME, NULL, 0, 0, 0, 0, 0, NW_ERR_INVALID,
     NW_REASON_MISSING_FIELD, "time_ms: missing"},
    {"ack without epoch", T_ACK, b_ack, M_NO_EPOCH, NULL, 0, 0, 0, 0, 0, NW_ERR_INVALID,
     NW_REASON_MISSING_FIELD, "epoch: missing"},
    {"ack without device", T_ACK, b_ack, M_NO_DEVICE, NULL, 0, 0, 0, 0, 0, NW_ERR_INVALID,
     NW_REASON_MISSING_FIELD, "device_id: missing"},
    {"alert without rule", T_ALERT, b_alert, M_NO_RULE, NULL, 0, 0, 0, 0, 0, NW_ERR_INVALID,
     NW_REASON_MISSING_FIELD, "rule: missing"},
    {"alert without severity", T_ALERT, b_alert, M_NO_SEVERITY, NULL, 0, 0, 0, 0, 0, NW_ERR_INVALID,
     NW_REASON_MISSING_FIELD, "severity: missing"},
    {"alert without time", T_ALERT, b_alert, M_NO_TIME, NULL, 0, 0, 0, 0, 0, NW_ERR_INVALID,
     NW_REASON_MISSING_FIELD, "time_ms: missing"},
    /* Forward compatibility: fields from a newer schema are skipped. */
    {"unknown future fields (windows)", T_WINDOWS, b_windows_future, M_FUTURE_FIELDS, NULL, 0, 0, 0,
     0, 0, NW_OK, NW_REASON_NONE, NULL},
    {"unknown future fields (events)", T_EVENTS, b_events, M_FUTURE_FIELDS, NULL, 0, 0, 0, 0, 0,
     NW_OK, NW_REASON_NONE, NULL},
    {"unknown future fields (status)", T_STATUS, b_status, M_FUTURE_FIELDS, NULL, 0, 0, 0, 0, 0,
     NW_OK, NW_REASON_NONE, NULL},
    {"unknown future fields (ack)", T_ACK, b_ack, M_FUTURE_FIELDS, NULL, 0, 0, 0, 0, 0, NW_OK,
     NW_REASON_NONE, NULL},
    {"unknown future fields (alert)", T_ALERT, b_alert, M_FUTURE_FIELDS, NULL, 0, 0, 0, 0, 0, NW_OK,
     NW_REASON_NONE, NULL},
    {"valid windows (control row)", T_WINDOWS, b_windows, M_NONE, NULL, 0, 0, 0, 0, 0, NW_OK,
     NW_REASON_NONE, NULL},
};

static char *huge_device; /* for the "device id of 256 KiB" row */

static enum nw_err decode_row(struct nw_codec *c, const struct row *r, const uint8_t *buf,
                              size_t len, enum nw_reason *reason, struct nw_error *err)
{
    size_t capacity = r->capacity ? r->capacity : 8;
    switch (r->type) {
    case T_WINDOWS: {
        struct nw_window *w = calloc(capacity, sizeof(*w));
        assert_non_null(w);
        struct nw_window_batch out = {.capacity = capacity, .windows = w};
        enum nw_err rc = nw_codec_decode_windows(c, buf, len, &out, reason, err);
        if (rc == NW_OK) {
            assert_true(out.count >= 1 && out.count <= capacity);
            assert_string_equal(out.windows[0].cartridge_id, "c-1");
        }
        free(w);
        return rc;
    }
    case T_EVENTS: {
        struct nw_event *e = calloc(capacity, sizeof(*e));
        assert_non_null(e);
        struct nw_event_batch out = {.capacity = capacity, .events = e};
        enum nw_err rc = nw_codec_decode_events(c, buf, len, &out, reason, err);
        if (rc == NW_OK && (r->mut == M_UNKNOWN_KIND || r->mut == M_UNSPECIFIED_KIND_WITH_DETAIL)) {
            /* Stored as unspecified; the detail of a kind we do not know is
             * not interpreted (msg.h: fields not of `kind` are zero). */
            assert_int_equal(e[0].kind, NW_EVENT_UNSPECIFIED);
            assert_int_equal(e[0].seq, 1);
            assert_int_equal(e[0].fault_code, 0);
            assert_string_equal(e[0].text, "");
            assert_int_equal(e[1].kind, NW_EVENT_FAULT);
            assert_string_equal(e[1].text, "overcurrent");
        }
        free(e);
        return rc;
    }
    case T_STATUS: {
        struct nw_status s;
        return nw_codec_decode_status(c, buf, len, &s, reason, err);
    }
    case T_ACK: {
        struct nw_ack a;
        enum nw_err rc = nw_codec_decode_ack(c, buf, len, &a, reason, err);
        if (rc == NW_OK) {
            assert_int_equal(a.window_seq, 10);
        }
        return rc;
    }
    case T_ALERT: {
        struct nw_alert a;
        return nw_codec_decode_alert(c, buf, len, &a, reason, err);
    }
    }
    fail();
    return NW_ERR_INVAL;
}

static void test_hostile_table(void **state)
{
    (void)state;
    uint8_t *buf = malloc(BUF_CAP);
    assert_non_null(buf);
    int failures = 0;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct row r = rows[i];
        if (r.mut == M_DEVICE && r.str == NULL) {
            r.str = huge_device;
        }
        size_t len = r.build(buf, BUF_CAP, &r);
        struct nw_codec *c = codec_with(r.max_payload, r.max_windows, r.max_events);
        enum nw_reason reason = (enum nw_reason) - 1;
        struct nw_error err = {.code = NW_ERR__COUNT, .msg = "untouched"};
        enum nw_err rc = decode_row(c, &r, buf, len, &reason, &err);
        bool ok = rc == r.rc;
        if (r.rc == NW_OK) {
            ok = ok && strcmp(err.msg, "untouched") == 0;
        } else {
            ok = ok && reason == r.reason && err.code == r.rc && strstr(err.msg, r.needle);
        }
        if (!ok) {
            print_error("row \"%s\" (%zu bytes): got %s/%s \"%s\", want %s/%s \"%s\"\n", r.name,
                        len, nw_strerror(rc), rc == NW_OK ? "-" : nw_reason_name(reason), err.msg,
                        nw_strerror(r.rc), nw_reason_name(r.reason), r.needle ? r.needle : "");
            failures++;
        }
        /* NULL reason and error are allowed and give the same code. */
        assert_int_equal(decode_row(c, &r, buf, len, NULL, NULL), r.rc);
        nw_codec_destroy(&c);
    }
    free(buf);
    print_message("%zu hostile rows, %d failed\n", sizeof(rows) / sizeof(rows[0]), failures);
    assert_int_equal(failures, 0);
}

/* After too_complex, the same codec still decodes a normal payload. */
static void test_codec_usable_after_refusal(void **state)
{
    (void)state;
    struct nw_codec *c = codec_default();
    uint8_t *buf = malloc(BUF_CAP);
    assert_non_null(buf);
    for (size_t i = 0; i < DEFAULT_MAX_PAYLOAD; i += 2) {
        buf[i] = 0x1a;
        buf[i + 1] = 0x00;
    }
    struct nw_window w[8];
    struct nw_window_batch out = {.capacity = 8, .windows = w};
    enum nw_reason reason = NW_REASON_NONE;
    assert_int_equal(nw_codec_decode_windows(c, buf, DEFAULT_MAX_PAYLOAD, &out, &reason, NULL),
                     NW_ERR_TOO_BIG);
    assert_int_equal(reason, NW_REASON_TOO_COMPLEX);
    struct row r = {.mut = M_NONE, .n = 3};
    size_t len = b_windows(buf, BUF_CAP, &r);
    reason = NW_REASON_TOO_COMPLEX;
    assert_int_equal(nw_codec_decode_windows(c, buf, len, &out, &reason, NULL), NW_OK);
    assert_int_equal(out.count, 3);
    assert_int_equal(w[2].seq, 3);
    assert_string_equal(w[2].session_id, "s-1");
    free(buf);
    nw_codec_destroy(&c);
}

/* ---- encoder refusals ------------------------------------------------ */

static void test_encode_refusals(void **state)
{
    (void)state;
    struct nw_codec *c = codec_default();
    struct nw_window w[2];
    make_window(&w[0], 1, "s", "c", "l");
    make_window(&w[1], 2, "s", "c", "l");
    uint8_t buf[1024];
    size_t len = 12345;
    struct nw_error err = {0};

    struct nw_window_batch over = {
        .device_id = DEVICE, .epoch = 1, .count = 3, .capacity = 2, .windows = w};
    assert_int_equal(nw_codec_encode_windows(c, &over, buf, sizeof(buf), &len, &err), NW_ERR_INVAL);
    assert_int_equal(err.code, NW_ERR_INVAL);
    assert_string_equal(err.msg, "window batch count 3 > capacity 2");

    struct nw_window_batch ok = {
        .device_id = DEVICE, .epoch = 1, .count = 2, .capacity = 2, .windows = w};
    size_t need = 0;
    assert_int_equal(nw_codec_encode_windows(c, &ok, buf, sizeof(buf), &need, &err), NW_OK);
    assert_int_equal(nw_codec_encode_windows(c, &ok, buf, need - 1, &len, &err), NW_ERR_TOO_BIG);
    char want[160];
    snprintf(want, sizeof(want), "WindowBatch needs %zu bytes; buffer %zu, payload limit 262144",
             need, need - 1);
    assert_string_equal(err.msg, want);
    assert_int_equal(nw_codec_encode_windows(c, &ok, buf, need, &len, &err), NW_OK);
    assert_int_equal(len, need);

    struct nw_event e[2];
    make_event(&e[0], 1, NW_EVENT_FAULT);
    make_event(&e[1], 2, NW_EVENT_POWER_ON);
    struct nw_event_batch eover = {
        .device_id = DEVICE, .epoch = 1, .count = 2, .capacity = 1, .events = e};
    assert_int_equal(nw_codec_encode_events(c, &eover, buf, sizeof(buf), &len, &err), NW_ERR_INVAL);
    assert_string_equal(err.msg, "event batch count 2 > capacity 1");
    struct nw_event_batch eok = {
        .device_id = DEVICE, .epoch = 1, .count = 2, .capacity = 2, .events = e};
    assert_int_equal(nw_codec_encode_events(c, &eok, buf, 10, &len, &err), NW_ERR_TOO_BIG);
    assert_contains(err.msg, "EventBatch needs");

    struct nw_status st = {.device_id = DEVICE, .state = NW_DEVICE_ONLINE, .time_ms = T0};
    assert_int_equal(nw_codec_encode_status(c, &st, buf, 4, &len, &err), NW_ERR_TOO_BIG);
    assert_contains(err.msg, "Status needs");
    struct nw_ack ack = {.device_id = DEVICE};
    assert_int_equal(nw_codec_encode_ack(c, &ack, buf, 4, &len, &err), NW_ERR_TOO_BIG);
    assert_contains(err.msg, "Ack needs");
    struct nw_alert al = {.device_id = DEVICE, .rule = "data_gap"};
    assert_int_equal(nw_codec_encode_alert(c, &al, buf, 4, &len, &err), NW_ERR_TOO_BIG);
    assert_contains(err.msg, "Alert needs");
    nw_codec_destroy(&c);

    /* The payload limit binds the encoder as well as the decoder. */
    struct nw_codec *small = codec_with(64, 0, 0);
    assert_int_equal(nw_codec_encode_windows(small, &ok, buf, sizeof(buf), &len, &err),
                     NW_ERR_TOO_BIG);
    snprintf(want, sizeof(want), "WindowBatch needs %zu bytes; buffer 1024, payload limit 64",
             need);
    assert_string_equal(err.msg, want);
    assert_int_equal(nw_codec_limits(small)->max_payload, 64);
    nw_codec_destroy(&small);
}

/* A batch as large as the limits allow encodes and decodes. */
static void test_max_windows_batch(void **state)
{
    (void)state;
    struct nw_codec *c = codec_default();
    size_t n = nw_codec_limits(c)->max_windows;
    assert_int_equal(n, 4096);
    struct nw_window *w = calloc(n, sizeof(*w));
    struct nw_window *got = calloc(n, sizeof(*got));
    assert_non_null(w);
    assert_non_null(got);
    for (size_t i = 0; i < n; i++) {
        make_window(&w[i], 1 + i, i < n / 2 ? "s-1" : "s-2", "C3RL-20241101-004217",
                    "PGM-L2409-117");
    }
    struct nw_window_batch in = {
        .device_id = DEVICE, .epoch = EPOCH, .count = n, .capacity = n, .windows = w};
    struct nw_window_batch out = {.capacity = n, .windows = got};
    size_t len = windows_round_trip(c, &in, &out);
    print_message("4096-window batch: %zu bytes (%.1f per window)\n", len, (double)len / n);
    free(got);
    free(w);
    nw_codec_destroy(&c);
}

/* The direct WindowBatch decoder (pbwindows.h) takes what the encoder
 * makes, with the values protobuf-c gives, and leaves anything else to
 * protobuf-c: a field it does not know, 8-bit strings, a uint32 wider than
 * 32 bits, a wrong wire type, a cut message. */
static uint8_t bump_mem[64 * 1024];
static size_t bump_used;

static void *bump_alloc(void *data, size_t n)
{
    (void)data;
    size_t at = (bump_used + 15) & ~(size_t)15;
    if (at > sizeof(bump_mem) || n > sizeof(bump_mem) - at) {
        return NULL;
    }
    bump_used = at + n;
    return bump_mem + at;
}

static void bump_free(void *data, void *p)
{
    (void)data;
    (void)p;
}

static void test_direct_window_decoder(void **state)
{
    (void)state;
    static uint8_t buf[4096];
    struct nw_codec *c = codec_default();
    struct nw_window w[2];
    make_window(&w[0], 7, "s-1", "CRT-1", "PL-1");
    make_window(&w[1], 8, "s-1", "CRT-2", "PL-1");
    struct nw_window_batch in = {
        .device_id = DEVICE, .epoch = EPOCH, .count = 2, .capacity = 2, .windows = w};
    size_t len = 0;
    assert_int_equal(nw_codec_encode_windows(c, &in, buf, sizeof(buf), &len, NULL), NW_OK);
    nw_codec_destroy(&c);
    ProtobufCAllocator a = {.alloc = bump_alloc, .free = bump_free}; /* as codec.c's arena */
    Needlewatch__V1__WindowBatch *b = nw_pbwindows_unpack(&a, buf, len);
    Needlewatch__V1__WindowBatch *ref = needlewatch__v1__window_batch__unpack(NULL, len, buf);
    assert_non_null(b);
    assert_non_null(ref);
    assert_string_equal(b->device_id, DEVICE);
    assert_true(b->has_epoch);
    assert_int_equal(b->epoch, EPOCH);
    assert_int_equal(b->n_windows, 2);
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(b->windows[i]->seq, ref->windows[i]->seq);
        assert_int_equal(b->windows[i]->start_ms, ref->windows[i]->start_ms);
        assert_memory_equal(&b->windows[i]->rate_mean_hz, &ref->windows[i]->rate_mean_hz,
                            sizeof(float));
        assert_int_equal(b->windows[i]->has_cycles, ref->windows[i]->has_cycles);
    }
    assert_string_equal(b->windows[1]->cartridge_id, "CRT-2");
    assert_null(b->windows[1]->session_id); /* inherited: absent on the wire */
    needlewatch__v1__window_batch__free_unpacked(ref, NULL);

    struct wire x = {buf, 0, sizeof(buf)};
    w_bytes(&x, 1, "DG-1", 4);
    w_tag(&x, 16, 0); /* a field from a newer agent */
    w_varint(&x, 1);
    assert_null(nw_pbwindows_unpack(&a, buf, x.len));
    x.len = 0;
    w_bytes(&x, 1, "DG-\xe9", 4);
    assert_null(nw_pbwindows_unpack(&a, buf, x.len));
    x.len = 0;
    uint8_t wide[] = {3 << 3, 0x80, 0x80, 0x80, 0x80, 0x10}; /* duration_ms = 2^32 */
    w_bytes(&x, 3, wide, sizeof(wide));
    assert_null(nw_pbwindows_unpack(&a, buf, x.len));
    x.len = 0;
    w_tag(&x, 2, 0); /* epoch as a varint: it is fixed64 */
    w_varint(&x, 7);
    assert_null(nw_pbwindows_unpack(&a, buf, x.len));
    assert_null(nw_pbwindows_unpack(&a, buf, x.len - 1)); /* cut */
}

int main(void)
{
    memset(long_id, 'a', NW_ID_MAX + 1);
    memset(max_id, 'b', NW_ID_MAX);
    /* The largest device id that fits in a default payload with 1 window. */
    size_t huge = DEFAULT_MAX_PAYLOAD - 64;
    huge_device = malloc(huge + 1);
    assert_non_null(huge_device);
    memset(huge_device, 'd', huge);
    huge_device[huge] = '\0';

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_window_round_trip_one),
        cmocka_unit_test(test_window_round_trip_extremes),
        cmocka_unit_test(test_window_round_trip_values_without_cycles),
        cmocka_unit_test(test_window_quantisation),
        cmocka_unit_test(test_window_string_inheritance),
        cmocka_unit_test(test_window_decode_inherits_hand_made),
        cmocka_unit_test(test_window_inheritance_shrinks_payload),
        cmocka_unit_test(test_wire_size_vs_json),
        cmocka_unit_test(test_event_round_trip_every_kind),
        cmocka_unit_test(test_event_quantisation),
        cmocka_unit_test(test_status_round_trip),
        cmocka_unit_test(test_ack_round_trip),
        cmocka_unit_test(test_alert_round_trip),
        cmocka_unit_test(test_unknown_enum_values_read_as_unspecified),
        cmocka_unit_test(test_hostile_table),
        cmocka_unit_test(test_codec_usable_after_refusal),
        cmocka_unit_test(test_encode_refusals),
        cmocka_unit_test(test_max_windows_batch),
        cmocka_unit_test(test_direct_window_decoder),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    free(huge_device);
    return failed;
}

/*
 * fuzz_decode.c - every decoder of codec.h against arbitrary bytes.
 *
 * The first byte picks the message type (windows, events, status, ack,
 * alert: byte % 5), the rest is the payload, decoded by one codec made once
 * with the default limits (as the collector does). Oracles, checked with
 * abort() so libFuzzer and the replay test both stop on them:
 *  - a refusal carries a reason and a message, and the code in the error
 *    equals the returned code;
 *  - an accepted payload is validated (the verdict, too, must carry a reason
 *    and a message), encoded again and decoded again: the second decode must
 *    succeed and give exactly the first result (NaN equal to NaN).
 * The encoder may refuse with too_big only when the input was already within
 * a few bytes per record of max_payload (it writes some absent fields).
 */
#include <needlewatch/codec.h>
#include <needlewatch/validate.h>

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW_MS INT64_C(1732000000000)
#define MAX_WINDOWS 4096 /* nw_limits_default() */
#define MAX_EVENTS 1024
#define MAX_PAYLOAD (256 * 1024)

static struct nw_codec *codec;
static struct nw_limits lim;
static uint8_t wire[MAX_PAYLOAD];
static struct nw_window win1[MAX_WINDOWS], win2[MAX_WINDOWS];
static struct nw_event ev1[MAX_EVENTS], ev2[MAX_EVENTS];

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_decode: %s\n", what);
        abort();
    }
}

static bool same_double(double a, double b)
{
    return a == b || (isnan(a) && isnan(b));
}

#define SAME_INT(a, b, f) ((a)->f == (b)->f)
#define SAME_DBL(a, b, f) same_double((a)->f, (b)->f)
#define SAME_STR(a, b, f) (strcmp((a)->f, (b)->f) == 0)

static void init(void)
{
    nw_limits_default(&lim);
    check(lim.max_windows <= MAX_WINDOWS && lim.max_events <= MAX_EVENTS &&
              lim.max_payload <= MAX_PAYLOAD,
          "default limits exceed the harness arrays");
    codec = nw_codec_new(&lim);
    check(codec != NULL, "nw_codec_new");
}

/* A refusal must say why. */
static void check_refusal(enum nw_err rc, enum nw_reason reason, const struct nw_error *err)
{
    check(rc == NW_ERR_TOO_BIG || rc == NW_ERR_DECODE || rc == NW_ERR_INVALID,
          "decoder returned an undocumented code");
    check(reason > NW_REASON_NONE && reason < NW_REASON__COUNT, "refusal without a reason");
    check(err->code == rc, "error code differs from the returned code");
    check(err->msg[0] != '\0' && memchr(err->msg, '\0', sizeof(err->msg)) != NULL,
          "refusal without a message");
}

static void check_verdict(enum nw_err rc, enum nw_reason reason, const struct nw_error *err)
{
    if (rc == NW_OK) {
        return;
    }
    check(rc == NW_ERR_INVALID, "validator returned an undocumented code");
    check(reason > NW_REASON_NONE && reason < NW_REASON__COUNT, "verdict without a reason");
    check(err->code == NW_ERR_INVALID && err->msg[0] != '\0', "verdict without a message");
}

/* The encoder may grow a message by a few bytes per record (absent fields
 * it always writes); only then may it refuse a payload that decoded. */
static void check_encoded(enum nw_err rc, size_t in_len, size_t records)
{
    if (rc == NW_ERR_TOO_BIG && in_len + 256 + 16 * records > lim.max_payload) {
        return;
    }
    check(rc == NW_OK, "re-encoding a decoded message failed");
}

static bool same_window(const struct nw_window *a, const struct nw_window *b)
{
    return SAME_INT(a, b, seq) && SAME_INT(a, b, start_ms) && SAME_INT(a, b, duration_ms) &&
           SAME_INT(a, b, running_ms) && SAME_INT(a, b, cycles) && SAME_DBL(a, b, rate_mean_hz) &&
           SAME_DBL(a, b, rate_min_hz) && SAME_DBL(a, b, rate_max_hz) &&
           SAME_DBL(a, b, depth_mean_mm) && SAME_DBL(a, b, depth_min_mm) &&
           SAME_DBL(a, b, depth_max_mm) && SAME_DBL(a, b, pigment_ul) &&
           SAME_STR(a, b, session_id) && SAME_STR(a, b, cartridge_id) &&
           SAME_STR(a, b, pigment_lot);
}

static void fuzz_windows(const uint8_t *p, size_t n)
{
    struct nw_window_batch a = {.capacity = MAX_WINDOWS, .windows = win1};
    enum nw_reason reason = NW_REASON_NONE;
    struct nw_error err = {0};
    enum nw_err rc = nw_codec_decode_windows(codec, p, n, &a, &reason, &err);
    if (rc != NW_OK) {
        check_refusal(rc, reason, &err);
        return;
    }
    check(a.count >= 1 && a.count <= lim.max_windows, "window count out of bounds");
    reason = NW_REASON_NONE;
    rc = nw_validate_window_batch(&a, &lim, NOW_MS, &reason, &err);
    check_verdict(rc, reason, &err);

    size_t len = 0;
    rc = nw_codec_encode_windows(codec, &a, wire, sizeof(wire), &len, &err);
    check_encoded(rc, n, a.count);
    if (rc != NW_OK) {
        return;
    }
    struct nw_window_batch b = {.capacity = MAX_WINDOWS, .windows = win2};
    check(nw_codec_decode_windows(codec, wire, len, &b, NULL, &err) == NW_OK,
          "second decode of windows failed");
    check(strcmp(a.device_id, b.device_id) == 0 && a.epoch == b.epoch &&
              a.queue_floor == b.queue_floor && a.count == b.count,
          "window batch header changed in the round trip");
    for (size_t i = 0; i < a.count; i++) {
        check(same_window(&win1[i], &win2[i]), "window changed in the round trip");
    }
}

static bool same_event(const struct nw_event *a, const struct nw_event *b)
{
    return SAME_INT(a, b, seq) && SAME_INT(a, b, time_ms) && SAME_INT(a, b, kind) &&
           SAME_STR(a, b, firmware) && SAME_STR(a, b, boot_reason) && SAME_STR(a, b, session_id) &&
           SAME_STR(a, b, operator_code) && SAME_INT(a, b, end_reason) &&
           SAME_STR(a, b, cartridge_id) && SAME_STR(a, b, needle_config) && SAME_STR(a, b, lot) &&
           SAME_STR(a, b, shade) && SAME_DBL(a, b, volume_ul) && SAME_INT(a, b, fault_code) &&
           SAME_STR(a, b, text) && SAME_STR(a, b, action) && SAME_INT(a, b, resets_service) &&
           SAME_DBL(a, b, depth_offset_mm) && SAME_DBL(a, b, rate_scale);
}

static void fuzz_events(const uint8_t *p, size_t n)
{
    struct nw_event_batch a = {.capacity = MAX_EVENTS, .events = ev1};
    enum nw_reason reason = NW_REASON_NONE;
    struct nw_error err = {0};
    enum nw_err rc = nw_codec_decode_events(codec, p, n, &a, &reason, &err);
    if (rc != NW_OK) {
        check_refusal(rc, reason, &err);
        return;
    }
    check(a.count >= 1 && a.count <= lim.max_events, "event count out of bounds");
    for (size_t i = 0; i < a.count; i++) {
        check((unsigned)ev1[i].kind < NW_EVENT__COUNT, "event kind outside the enum");
    }
    reason = NW_REASON_NONE;
    rc = nw_validate_event_batch(&a, &lim, NOW_MS, &reason, &err);
    check_verdict(rc, reason, &err);

    size_t len = 0;
    rc = nw_codec_encode_events(codec, &a, wire, sizeof(wire), &len, &err);
    check_encoded(rc, n, a.count);
    if (rc != NW_OK) {
        return;
    }
    struct nw_event_batch b = {.capacity = MAX_EVENTS, .events = ev2};
    check(nw_codec_decode_events(codec, wire, len, &b, NULL, &err) == NW_OK,
          "second decode of events failed");
    check(strcmp(a.device_id, b.device_id) == 0 && a.epoch == b.epoch &&
              a.queue_floor == b.queue_floor && a.count == b.count,
          "event batch header changed in the round trip");
    for (size_t i = 0; i < a.count; i++) {
        check(same_event(&ev1[i], &ev2[i]), "event changed in the round trip");
    }
}

static bool same_status(const struct nw_status *a, const struct nw_status *b)
{
    return SAME_STR(a, b, device_id) && SAME_INT(a, b, epoch) && SAME_INT(a, b, state) &&
           SAME_INT(a, b, time_ms) && SAME_STR(a, b, firmware) && SAME_STR(a, b, model) &&
           SAME_INT(a, b, uptime_s) && SAME_INT(a, b, odometer_cycles) &&
           SAME_INT(a, b, running_s) && SAME_INT(a, b, queue_depth) &&
           SAME_INT(a, b, queue_bytes) && SAME_INT(a, b, windows_dropped) &&
           SAME_INT(a, b, events_dropped) && SAME_INT(a, b, corrupt_records) &&
           SAME_INT(a, b, last_window_seq) && SAME_INT(a, b, last_event_seq) &&
           SAME_STR(a, b, session_id) && SAME_INT(a, b, heartbeat_s);
}

static void fuzz_status(const uint8_t *p, size_t n)
{
    struct nw_status a, b;
    enum nw_reason reason = NW_REASON_NONE;
    struct nw_error err = {0};
    enum nw_err rc = nw_codec_decode_status(codec, p, n, &a, &reason, &err);
    if (rc != NW_OK) {
        check_refusal(rc, reason, &err);
        return;
    }
    check((unsigned)a.state <= NW_DEVICE_OFFLINE, "device state outside the enum");
    reason = NW_REASON_NONE;
    rc = nw_validate_status(&a, &lim, NOW_MS, &reason, &err);
    check_verdict(rc, reason, &err);
    size_t len = 0;
    rc = nw_codec_encode_status(codec, &a, wire, sizeof(wire), &len, &err);
    check_encoded(rc, n, 1);
    if (rc != NW_OK) {
        return;
    }
    check(nw_codec_decode_status(codec, wire, len, &b, NULL, &err) == NW_OK,
          "second decode of status failed");
    check(same_status(&a, &b), "status changed in the round trip");
}

static void fuzz_ack(const uint8_t *p, size_t n)
{
    struct nw_ack a, b;
    enum nw_reason reason = NW_REASON_NONE;
    struct nw_error err = {0};
    enum nw_err rc = nw_codec_decode_ack(codec, p, n, &a, &reason, &err);
    if (rc != NW_OK) {
        check_refusal(rc, reason, &err);
        return;
    }
    reason = NW_REASON_NONE;
    rc = nw_validate_ack(&a, &reason, &err);
    check_verdict(rc, reason, &err);
    size_t len = 0;
    rc = nw_codec_encode_ack(codec, &a, wire, sizeof(wire), &len, &err);
    check_encoded(rc, n, 1);
    if (rc != NW_OK) {
        return;
    }
    check(nw_codec_decode_ack(codec, wire, len, &b, NULL, &err) == NW_OK,
          "second decode of ack failed");
    check(SAME_STR(&a, &b, device_id) && SAME_INT(&a, &b, epoch) && SAME_INT(&a, &b, window_seq) &&
              SAME_INT(&a, &b, event_seq) && SAME_INT(&a, &b, time_ms),
          "ack changed in the round trip");
}

static bool same_alert(const struct nw_alert *a, const struct nw_alert *b)
{
    return SAME_STR(a, b, device_id) && SAME_INT(a, b, alert_id) && SAME_STR(a, b, rule) &&
           SAME_INT(a, b, severity) && SAME_INT(a, b, state) && SAME_INT(a, b, time_ms) &&
           SAME_INT(a, b, since_ms) && SAME_DBL(a, b, value) && SAME_DBL(a, b, threshold) &&
           SAME_STR(a, b, message) && SAME_STR(a, b, clinic) && SAME_STR(a, b, model) &&
           SAME_INT(a, b, late);
}

static void fuzz_alert(const uint8_t *p, size_t n)
{
    struct nw_alert a, b;
    enum nw_reason reason = NW_REASON_NONE;
    struct nw_error err = {0};
    enum nw_err rc = nw_codec_decode_alert(codec, p, n, &a, &reason, &err);
    if (rc != NW_OK) {
        check_refusal(rc, reason, &err);
        return;
    }
    check((unsigned)a.severity <= NW_SEVERITY_CRITICAL && (unsigned)a.state <= NW_ALERT_RENOTIFY,
          "alert enum outside its range");
    reason = NW_REASON_NONE;
    rc = nw_validate_alert(&a, &lim, NOW_MS, &reason, &err);
    check_verdict(rc, reason, &err);
    size_t len = 0;
    rc = nw_codec_encode_alert(codec, &a, wire, sizeof(wire), &len, &err);
    check_encoded(rc, n, 1);
    if (rc != NW_OK) {
        return;
    }
    check(nw_codec_decode_alert(codec, wire, len, &b, NULL, &err) == NW_OK,
          "second decode of alert failed");
    check(same_alert(&a, &b), "alert changed in the round trip");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!codec) {
        init();
    }
    if (size == 0) {
        return 0;
    }
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    switch (data[0] % 5) {
    case 0:
        fuzz_windows(p, n);
        break;
    case 1:
        fuzz_events(p, n);
        break;
    case 2:
        fuzz_status(p, n);
        break;
    case 3:
        fuzz_ack(p, n);
        break;
    default:
        fuzz_alert(p, n);
        break;
    }
    return 0;
}

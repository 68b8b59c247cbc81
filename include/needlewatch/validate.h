/*
 * validate.h - what a needlewatch message may contain, and why it was refused.
 *
 * Everything that crosses a trust boundary (MQTT payloads, replay files,
 * pipes from device firmware) is checked here before anyone stores or acts
 * on it. A refusal carries a reason code, counted per reason in /metrics
 * under nw_reason_name(), and a one-line message naming the field, e.g.
 * "windows[3].rate_max_hz = 1250: above the physical limit 1000 Hz".
 *
 * The checks are physical and structural, not the spec windows of a device
 * model: a needle at 160 Hz is out of spec (an alert), at 5000 Hz it is a
 * broken sensor or a forged message (a reject).
 */
#ifndef NW_VALIDATE_H
#define NW_VALIDATE_H

#include <needlewatch/err.h>
#include <needlewatch/msg.h>

#include <stdint.h>

enum nw_reason {
    NW_REASON_NONE = 0,
    NW_REASON_TOO_BIG,       /* payload larger than limits.max_payload */
    NW_REASON_MALFORMED,     /* not a protobuf message of the expected type */
    NW_REASON_TOO_COMPLEX,   /* decoded form would exceed the decoder's memory bound */
    NW_REASON_MISSING_FIELD, /* a field the message needs is absent */
    NW_REASON_BAD_DEVICE_ID, /* empty, too long, or outside [A-Za-z0-9_-] */
    NW_REASON_BAD_STRING,    /* a string too long, bad charset, bad UTF-8 */
    NW_REASON_BAD_COUNT,     /* zero or too many windows/events in a batch */
    NW_REASON_NOT_FINITE,    /* NaN or infinity */
    NW_REASON_OUT_OF_RANGE,  /* negative or absurd value */
    NW_REASON_IMPOSSIBLE,    /* physically impossible (rate > limit, min > max...) */
    NW_REASON_BAD_TIME,      /* timestamp too far from now */
    NW_REASON_BAD_SEQUENCE,  /* seq 0 or not ascending within a batch */
    NW_REASON_ID_MISMATCH,   /* topic device id differs from payload id */
    NW_REASON_BAD_TOPIC,     /* topic not of the needlewatch form */
    NW_REASON__COUNT
};

/* Stable snake_case label ("bad_device_id"), for metrics and logs. */
const char *nw_reason_name(enum nw_reason reason);

/* Bounds applied by the decoder and validators. Immutable once in use. */
struct nw_limits {
    size_t max_payload;    /* bytes of one MQTT payload (default 256 KiB) */
    size_t max_windows;    /* windows per batch (default 4096) */
    size_t max_events;     /* events per batch (default 1024) */
    int64_t max_past_ms;   /* oldest accepted timestamp, before now (30 d) */
    int64_t max_future_ms; /* newest accepted timestamp, after now (5 min) */
    double max_rate_hz;    /* physical needle rate limit (1000 Hz) */
    double max_depth_mm;   /* physical depth limit (5 mm) */
    double max_pigment_ul; /* pigment per window or load (10 000 µL) */
};

/* Fills *out with the defaults documented above. */
void nw_limits_default(struct nw_limits *out);

/* Character-set checks on a NUL-terminated string of at most max bytes. */
bool nw_valid_device_id(const char *s);
bool nw_valid_id(const char *s, size_t max, bool allow_empty);
bool nw_valid_text(const char *s, size_t max); /* UTF-8, no control chars */

/*
 * Each validator returns NW_OK, or NW_ERR_INVALID with *out_reason (may be
 * NULL) and out_err (may be NULL) saying what failed. now_ms is the
 * reference for the timestamp window. Borrowed arguments only.
 */
enum nw_err nw_validate_window(const struct nw_window *w, const struct nw_limits *lim,
                               int64_t now_ms, enum nw_reason *out_reason,
                               struct nw_error *out_err);
enum nw_err nw_validate_window_batch(const struct nw_window_batch *b, const struct nw_limits *lim,
                                     int64_t now_ms, enum nw_reason *out_reason,
                                     struct nw_error *out_err);
enum nw_err nw_validate_event(const struct nw_event *e, const struct nw_limits *lim, int64_t now_ms,
                              enum nw_reason *out_reason, struct nw_error *out_err);
enum nw_err nw_validate_event_batch(const struct nw_event_batch *b, const struct nw_limits *lim,
                                    int64_t now_ms, enum nw_reason *out_reason,
                                    struct nw_error *out_err);
enum nw_err nw_validate_status(const struct nw_status *s, const struct nw_limits *lim,
                               int64_t now_ms, enum nw_reason *out_reason,
                               struct nw_error *out_err);
enum nw_err nw_validate_ack(const struct nw_ack *a, enum nw_reason *out_reason,
                            struct nw_error *out_err);
enum nw_err nw_validate_alert(const struct nw_alert *a, const struct nw_limits *lim, int64_t now_ms,
                              enum nw_reason *out_reason, struct nw_error *out_err);

/*
 * Sets *out_reason (if not NULL) and fills out_err; returns NW_ERR_INVALID.
 * For validators elsewhere (topic checks, collector cross-checks).
 */
enum nw_err nw_reject(enum nw_reason reason, enum nw_reason *out_reason, struct nw_error *out_err,
                      const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif

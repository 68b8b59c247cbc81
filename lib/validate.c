/*
 * validate.c - structural and physical checks on decoded messages.
 *
 * The rule of thumb: a value a real machine can produce passes, even when it
 * is out of spec (that is an alert's job); a value no machine can produce
 * (NaN, negative cycles, 5000 Hz, a window of 3 hours, a timestamp in 1970)
 * is refused with the field named, so the operator sees which device sends
 * garbage and why.
 */
#include <needlewatch/validate.h>

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define MIN_WINDOW_MS 100
#define MAX_WINDOW_MS 60000
#define MAX_HEARTBEAT_S 3600
#define MAX_RATE_SCALE 10.0
/* Floats on the wire carry ~7 digits: mean may sit a hair outside [min,max]. */
#define ORDER_SLACK 1e-3

static const char *const reason_names[NW_REASON__COUNT] = {
    [NW_REASON_NONE] = "none",
    [NW_REASON_TOO_BIG] = "too_big",
    [NW_REASON_MALFORMED] = "malformed",
    [NW_REASON_TOO_COMPLEX] = "too_complex",
    [NW_REASON_MISSING_FIELD] = "missing_field",
    [NW_REASON_BAD_DEVICE_ID] = "bad_device_id",
    [NW_REASON_BAD_STRING] = "bad_string",
    [NW_REASON_BAD_COUNT] = "bad_count",
    [NW_REASON_NOT_FINITE] = "not_finite",
    [NW_REASON_OUT_OF_RANGE] = "out_of_range",
    [NW_REASON_IMPOSSIBLE] = "impossible",
    [NW_REASON_BAD_TIME] = "bad_time",
    [NW_REASON_BAD_SEQUENCE] = "bad_sequence",
    [NW_REASON_ID_MISMATCH] = "id_mismatch",
    [NW_REASON_BAD_TOPIC] = "bad_topic",
};

const char *nw_reason_name(enum nw_reason reason)
{
    if ((unsigned)reason >= NW_REASON__COUNT) {
        return "unknown";
    }
    return reason_names[reason];
}

void nw_limits_default(struct nw_limits *out)
{
    out->max_payload = 256 * 1024;
    out->max_windows = 4096;
    out->max_events = 1024;
    out->max_past_ms = 30LL * 24 * 3600 * 1000;
    out->max_future_ms = 5LL * 60 * 1000;
    out->max_rate_hz = 1000.0;
    out->max_depth_mm = 5.0;
    out->max_pigment_ul = 10000.0;
}

enum nw_err nw_reject(enum nw_reason reason, enum nw_reason *out_reason, struct nw_error *out_err,
                      const char *fmt, ...)
{
    if (out_reason) {
        *out_reason = reason;
    }
    va_list ap;
    va_start(ap, fmt);
    nw_error_vset(out_err, NW_ERR_INVALID, fmt, ap);
    va_end(ap);
    return NW_ERR_INVALID;
}

/* ---- strings --------------------------------------------------------- */

static bool charset_ok(const char *s, size_t max, const char *extra, bool allow_empty)
{
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        unsigned char c = (unsigned char)s[n];
        if (n >= max) {
            return false;
        }
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && (c == '\0' || !strchr(extra, c))) {
            return false;
        }
    }
    return n > 0 || allow_empty;
}

bool nw_valid_device_id(const char *s)
{
    return s && charset_ok(s, NW_DEVICE_ID_MAX, "_-", false);
}

bool nw_valid_id(const char *s, size_t max, bool allow_empty)
{
    return s && charset_ok(s, max, "._:-", allow_empty);
}

/* Length of the UTF-8 sequence starting at s, 0 if invalid (overlong,
 * surrogate, above U+10FFFF, truncated). */
static size_t utf8_seq(const unsigned char *s)
{
    unsigned char c = s[0];
    if (c < 0x80) {
        return 1;
    }
    size_t len;
    uint32_t cp, min;
    if ((c & 0xE0) == 0xC0) {
        len = 2, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3, cp = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        len = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        return 0;
    }
    return len;
}

bool nw_valid_text(const char *s, size_t max)
{
    if (!s) {
        return false;
    }
    const unsigned char *p = (const unsigned char *)s;
    size_t n = 0;
    while (p[n] != '\0') {
        if (p[n] < 0x20 || p[n] == 0x7F) {
            return false;
        }
        size_t len = utf8_seq(p + n);
        if (len == 0) {
            return false;
        }
        if (p[n] == 0xC2 && p[n + 1] < 0xA0) {
            return false; /* U+0080..U+009F: C1 control characters (NEL, CSI...) */
        }
        n += len;
        if (n > max) {
            return false;
        }
    }
    return true;
}

/* ---- numbers --------------------------------------------------------- */

/* Checks 0 <= v <= max and finiteness, naming the field on failure. */
static enum nw_err check_range(const char *what, size_t idx, const char *field, double v,
                               double max, const char *unit, enum nw_reason *out_reason,
                               struct nw_error *out_err)
{
    if (!isfinite(v)) {
        return nw_reject(NW_REASON_NOT_FINITE, out_reason, out_err, "%s[%zu].%s = %g: not finite",
                         what, idx, field, v);
    }
    if (v < 0) {
        return nw_reject(NW_REASON_OUT_OF_RANGE, out_reason, out_err, "%s[%zu].%s = %g: negative",
                         what, idx, field, v);
    }
    if (v > max) {
        return nw_reject(NW_REASON_IMPOSSIBLE, out_reason, out_err,
                         "%s[%zu].%s = %g: above the physical limit %g %s", what, idx, field, v,
                         max, unit);
    }
    return NW_OK;
}

static enum nw_err check_time(const char *what, size_t idx, const char *field, int64_t t,
                              const struct nw_limits *lim, int64_t now_ms,
                              enum nw_reason *out_reason, struct nw_error *out_err)
{
    if (t < now_ms - lim->max_past_ms) {
        return nw_reject(NW_REASON_BAD_TIME, out_reason, out_err,
                         "%s[%zu].%s = %" PRId64 ": more than %" PRId64 " s in the past", what, idx,
                         field, t, lim->max_past_ms / 1000);
    }
    if (t > now_ms + lim->max_future_ms) {
        return nw_reject(NW_REASON_BAD_TIME, out_reason, out_err,
                         "%s[%zu].%s = %" PRId64 ": more than %" PRId64 " s in the future", what,
                         idx, field, t, lim->max_future_ms / 1000);
    }
    return NW_OK;
}

static enum nw_err check_id(const char *what, size_t idx, const char *field, const char *s,
                            size_t max, bool allow_empty, enum nw_reason *out_reason,
                            struct nw_error *out_err)
{
    if (nw_valid_id(s, max, allow_empty)) {
        return NW_OK;
    }
    return nw_reject(NW_REASON_BAD_STRING, out_reason, out_err,
                     "%s[%zu].%s: %s 1-%zu characters of [A-Za-z0-9._:-]", what, idx, field,
                     allow_empty ? "empty or" : "needs", max);
}

/* Firmware, model, needle configuration: empty or [A-Za-z0-9._+-] (msg.h),
 * so a version with build metadata ("2.4.1+build.7") passes. */
static enum nw_err check_version(const char *what, size_t idx, const char *field, const char *s,
                                 enum nw_reason *out_reason, struct nw_error *out_err)
{
    if (s && charset_ok(s, NW_VERSION_MAX, "._+-", true)) {
        return NW_OK;
    }
    return nw_reject(NW_REASON_BAD_STRING, out_reason, out_err,
                     "%s[%zu].%s: empty or 1-%d characters of [A-Za-z0-9._+-]", what, idx, field,
                     NW_VERSION_MAX);
}

static enum nw_err check_text(const char *what, size_t idx, const char *field, const char *s,
                              size_t max, enum nw_reason *out_reason, struct nw_error *out_err)
{
    if (nw_valid_text(s, max)) {
        return NW_OK;
    }
    return nw_reject(NW_REASON_BAD_STRING, out_reason, out_err,
                     "%s[%zu].%s: not valid UTF-8 text of at most %zu bytes without control "
                     "characters",
                     what, idx, field, max);
}

#define TRY(expr)                                                                                  \
    do {                                                                                           \
        enum nw_err rc_ = (expr);                                                                  \
        if (rc_ != NW_OK) {                                                                        \
            return rc_;                                                                            \
        }                                                                                          \
    } while (0)

/* ---- windows --------------------------------------------------------- */

/* name and suffix make the wire field names: rate + hz -> rate_min_hz. */
/* names[] are the min, mean and max field names: literals, so the valid
 * path (every window) formats nothing. */
static enum nw_err check_triple(size_t i, const char *name, const char *const names[3], double mn,
                                double mean, double mx, double max, const char *unit,
                                enum nw_reason *out_reason, struct nw_error *out_err)
{
    TRY(check_range("windows", i, names[0], mn, max, unit, out_reason, out_err));
    TRY(check_range("windows", i, names[1], mean, max, unit, out_reason, out_err));
    TRY(check_range("windows", i, names[2], mx, max, unit, out_reason, out_err));
    if (mn > mean + ORDER_SLACK || mean > mx + ORDER_SLACK) {
        return nw_reject(NW_REASON_IMPOSSIBLE, out_reason, out_err,
                         "windows[%zu].%s: min %g <= mean %g <= max %g does not hold", i, name, mn,
                         mean, mx);
    }
    return NW_OK;
}

static enum nw_err window_at(const struct nw_window *w, size_t i, const struct nw_limits *lim,
                             int64_t now_ms, enum nw_reason *out_reason, struct nw_error *out_err)
{
    if (w->seq == 0) {
        return nw_reject(NW_REASON_BAD_SEQUENCE, out_reason, out_err,
                         "windows[%zu].seq = 0: sequence numbers start at 1", i);
    }
    TRY(check_time("windows", i, "start_ms", w->start_ms, lim, now_ms, out_reason, out_err));
    if (w->duration_ms < MIN_WINDOW_MS || w->duration_ms > MAX_WINDOW_MS) {
        return nw_reject(NW_REASON_OUT_OF_RANGE, out_reason, out_err,
                         "windows[%zu].duration_ms = %" PRIu32 ": outside %d..%d", i,
                         w->duration_ms, MIN_WINDOW_MS, MAX_WINDOW_MS);
    }
    if (w->running_ms > w->duration_ms) {
        return nw_reject(NW_REASON_IMPOSSIBLE, out_reason, out_err,
                         "windows[%zu].running_ms = %" PRIu32 ": longer than the window (%" PRIu32
                         " ms)",
                         i, w->running_ms, w->duration_ms);
    }
    /* One cycle of slack: a cycle may straddle the window edge. */
    double max_cycles = lim->max_rate_hz * w->running_ms / 1000.0 + 1.0;
    if ((double)w->cycles > max_cycles) {
        return nw_reject(NW_REASON_IMPOSSIBLE, out_reason, out_err,
                         "windows[%zu].cycles = %" PRIu64 ": more than %g Hz over %" PRIu32
                         " ms running",
                         i, w->cycles, lim->max_rate_hz, w->running_ms);
    }
    static const char *const rate_names[3] = {"rate_min_hz", "rate_mean_hz", "rate_max_hz"};
    static const char *const depth_names[3] = {"depth_min_mm", "depth_mean_mm", "depth_max_mm"};
    TRY(check_triple(i, "rate", rate_names, w->rate_min_hz, w->rate_mean_hz, w->rate_max_hz,
                     lim->max_rate_hz, "Hz", out_reason, out_err));
    TRY(check_triple(i, "depth", depth_names, w->depth_min_mm, w->depth_mean_mm, w->depth_max_mm,
                     lim->max_depth_mm, "mm", out_reason, out_err));
    TRY(check_range("windows", i, "pigment_ul", w->pigment_ul, lim->max_pigment_ul, "uL",
                    out_reason, out_err));
    TRY(check_id("windows", i, "session_id", w->session_id, NW_ID_MAX, true, out_reason, out_err));
    TRY(check_id("windows", i, "cartridge_id", w->cartridge_id, NW_ID_MAX, true, out_reason,
                 out_err));
    TRY(check_id("windows", i, "pigment_lot", w->pigment_lot, NW_ID_MAX, true, out_reason,
                 out_err));
    return NW_OK;
}

enum nw_err nw_validate_window(const struct nw_window *w, const struct nw_limits *lim,
                               int64_t now_ms, enum nw_reason *out_reason, struct nw_error *out_err)
{
    return window_at(w, 0, lim, now_ms, out_reason, out_err);
}

static enum nw_err check_device(const char *id, enum nw_reason *out_reason,
                                struct nw_error *out_err)
{
    if (nw_valid_device_id(id)) {
        return NW_OK;
    }
    return nw_reject(NW_REASON_BAD_DEVICE_ID, out_reason, out_err,
                     "device_id: needs 1-%d characters of [A-Za-z0-9_-]", NW_DEVICE_ID_MAX);
}

static enum nw_err check_count(const char *what, size_t n, size_t max, enum nw_reason *out_reason,
                               struct nw_error *out_err)
{
    if (n == 0 || n > max) {
        return nw_reject(NW_REASON_BAD_COUNT, out_reason, out_err,
                         "%s: %zu in one batch, allowed 1..%zu", what, n, max);
    }
    return NW_OK;
}

static enum nw_err check_ascending(const char *what, size_t i, uint64_t prev, uint64_t seq,
                                   enum nw_reason *out_reason, struct nw_error *out_err)
{
    if (i > 0 && seq <= prev) {
        return nw_reject(NW_REASON_BAD_SEQUENCE, out_reason, out_err,
                         "%s[%zu].seq = %" PRIu64 ": not above the previous %" PRIu64, what, i, seq,
                         prev);
    }
    return NW_OK;
}

enum nw_err nw_validate_window_batch(const struct nw_window_batch *b, const struct nw_limits *lim,
                                     int64_t now_ms, enum nw_reason *out_reason,
                                     struct nw_error *out_err)
{
    TRY(check_device(b->device_id, out_reason, out_err));
    TRY(check_count("windows", b->count, lim->max_windows, out_reason, out_err));
    for (size_t i = 0; i < b->count; i++) {
        const struct nw_window *w = &b->windows[i];
        TRY(check_ascending("windows", i, i ? b->windows[i - 1].seq : 0, w->seq, out_reason,
                            out_err));
        TRY(window_at(w, i, lim, now_ms, out_reason, out_err));
    }
    return NW_OK;
}

/* ---- events ---------------------------------------------------------- */

static enum nw_err event_detail(const struct nw_event *e, size_t i, const struct nw_limits *lim,
                                enum nw_reason *out_reason, struct nw_error *out_err)
{
    switch (e->kind) {
    case NW_EVENT_POWER_ON:
        TRY(check_version("events", i, "firmware", e->firmware, out_reason, out_err));
        return check_text("events", i, "boot_reason", e->boot_reason, NW_NAME_MAX, out_reason,
                          out_err);
    case NW_EVENT_SESSION_START:
        TRY(check_id("events", i, "session_id", e->session_id, NW_ID_MAX, false, out_reason,
                     out_err));
        if (!charset_ok(e->operator_code, NW_OPERATOR_MAX, "_-", true)) {
            return nw_reject(NW_REASON_BAD_STRING, out_reason, out_err,
                             "events[%zu].operator_code: at most %d characters of [A-Za-z0-9_-] "
                             "(a pseudonymous code, never a name)",
                             i, NW_OPERATOR_MAX);
        }
        return NW_OK;
    case NW_EVENT_SESSION_END:
        return check_id("events", i, "session_id", e->session_id, NW_ID_MAX, false, out_reason,
                        out_err);
    case NW_EVENT_CARTRIDGE_INSERTED:
        TRY(check_version("events", i, "needle_config", e->needle_config, out_reason, out_err));
        TRY(check_id("events", i, "lot", e->lot, NW_ID_MAX, true, out_reason, out_err));
        return check_id("events", i, "cartridge_id", e->cartridge_id, NW_ID_MAX, false, out_reason,
                        out_err);
    case NW_EVENT_CARTRIDGE_REMOVED:
        return check_id("events", i, "cartridge_id", e->cartridge_id, NW_ID_MAX, false, out_reason,
                        out_err);
    case NW_EVENT_PIGMENT_LOADED:
        TRY(check_id("events", i, "lot", e->lot, NW_ID_MAX, false, out_reason, out_err));
        TRY(check_text("events", i, "shade", e->shade, NW_NAME_MAX, out_reason, out_err));
        return check_range("events", i, "volume_ul", e->volume_ul, lim->max_pigment_ul, "uL",
                           out_reason, out_err);
    case NW_EVENT_FAULT:
        return check_text("events", i, "text", e->text, NW_TEXT_MAX, out_reason, out_err);
    case NW_EVENT_MAINTENANCE:
        return check_text("events", i, "action", e->action, NW_NAME_MAX, out_reason, out_err);
    case NW_EVENT_CALIBRATION:
        if (!isfinite(e->depth_offset_mm) || fabs(e->depth_offset_mm) > lim->max_depth_mm) {
            return nw_reject(
                isfinite(e->depth_offset_mm) ? NW_REASON_IMPOSSIBLE : NW_REASON_NOT_FINITE,
                out_reason, out_err, "events[%zu].depth_offset_mm = %g: outside +-%g mm", i,
                e->depth_offset_mm, lim->max_depth_mm);
        }
        if (!isfinite(e->rate_scale) || e->rate_scale < 0 || e->rate_scale > MAX_RATE_SCALE) {
            return nw_reject(isfinite(e->rate_scale) ? NW_REASON_OUT_OF_RANGE
                                                     : NW_REASON_NOT_FINITE,
                             out_reason, out_err, "events[%zu].rate_scale = %g: outside 0..%g", i,
                             e->rate_scale, MAX_RATE_SCALE);
        }
        return NW_OK;
    default:
        return NW_OK; /* unknown kinds are stored as "unspecified", not refused */
    }
}

static enum nw_err event_at(const struct nw_event *e, size_t i, const struct nw_limits *lim,
                            int64_t now_ms, enum nw_reason *out_reason, struct nw_error *out_err)
{
    if (e->seq == 0) {
        return nw_reject(NW_REASON_BAD_SEQUENCE, out_reason, out_err,
                         "events[%zu].seq = 0: sequence numbers start at 1", i);
    }
    TRY(check_time("events", i, "time_ms", e->time_ms, lim, now_ms, out_reason, out_err));
    return event_detail(e, i, lim, out_reason, out_err);
}

enum nw_err nw_validate_event(const struct nw_event *e, const struct nw_limits *lim, int64_t now_ms,
                              enum nw_reason *out_reason, struct nw_error *out_err)
{
    return event_at(e, 0, lim, now_ms, out_reason, out_err);
}

enum nw_err nw_validate_event_batch(const struct nw_event_batch *b, const struct nw_limits *lim,
                                    int64_t now_ms, enum nw_reason *out_reason,
                                    struct nw_error *out_err)
{
    TRY(check_device(b->device_id, out_reason, out_err));
    TRY(check_count("events", b->count, lim->max_events, out_reason, out_err));
    for (size_t i = 0; i < b->count; i++) {
        const struct nw_event *e = &b->events[i];
        TRY(check_ascending("events", i, i ? b->events[i - 1].seq : 0, e->seq, out_reason,
                            out_err));
        TRY(event_at(e, i, lim, now_ms, out_reason, out_err));
    }
    return NW_OK;
}

/* ---- status, ack, alert ---------------------------------------------- */

enum nw_err nw_validate_status(const struct nw_status *s, const struct nw_limits *lim,
                               int64_t now_ms, enum nw_reason *out_reason, struct nw_error *out_err)
{
    TRY(check_device(s->device_id, out_reason, out_err));
    if (s->state != NW_DEVICE_ONLINE && s->state != NW_DEVICE_OFFLINE) {
        return nw_reject(NW_REASON_MISSING_FIELD, out_reason, out_err,
                         "status.state = %d: must be online (1) or offline (2)", (int)s->state);
    }
    TRY(check_time("status", 0, "time_ms", s->time_ms, lim, now_ms, out_reason, out_err));
    TRY(check_version("status", 0, "firmware", s->firmware, out_reason, out_err));
    TRY(check_version("status", 0, "model", s->model, out_reason, out_err));
    TRY(check_id("status", 0, "session_id", s->session_id, NW_ID_MAX, true, out_reason, out_err));
    if (s->heartbeat_s > MAX_HEARTBEAT_S) {
        return nw_reject(NW_REASON_OUT_OF_RANGE, out_reason, out_err,
                         "status.heartbeat_s = %" PRIu32 ": above %d", s->heartbeat_s,
                         MAX_HEARTBEAT_S);
    }
    return NW_OK;
}

enum nw_err nw_validate_ack(const struct nw_ack *a, enum nw_reason *out_reason,
                            struct nw_error *out_err)
{
    return check_device(a->device_id, out_reason, out_err);
}

enum nw_err nw_validate_alert(const struct nw_alert *a, const struct nw_limits *lim, int64_t now_ms,
                              enum nw_reason *out_reason, struct nw_error *out_err)
{
    TRY(check_device(a->device_id, out_reason, out_err));
    if (!charset_ok(a->rule, NW_NAME_MAX, "_", false)) {
        return nw_reject(NW_REASON_BAD_STRING, out_reason, out_err,
                         "alert.rule: needs 1-%d characters of [A-Za-z0-9_]", NW_NAME_MAX);
    }
    if (a->severity < NW_SEVERITY_INFO || a->severity > NW_SEVERITY_CRITICAL) {
        return nw_reject(NW_REASON_OUT_OF_RANGE, out_reason, out_err,
                         "alert.severity = %d: outside 1..3", (int)a->severity);
    }
    if (a->state < NW_ALERT_FIRING || a->state > NW_ALERT_RENOTIFY) {
        return nw_reject(NW_REASON_OUT_OF_RANGE, out_reason, out_err,
                         "alert.state = %d: outside 1..4", (int)a->state);
    }
    if (!isfinite(a->value) || !isfinite(a->threshold)) {
        return nw_reject(NW_REASON_NOT_FINITE, out_reason, out_err,
                         "alert value %g / threshold %g: not finite", a->value, a->threshold);
    }
    TRY(check_time("alert", 0, "time_ms", a->time_ms, lim, now_ms, out_reason, out_err));
    TRY(check_text("alert", 0, "message", a->message, NW_TEXT_MAX, out_reason, out_err));
    TRY(check_text("alert", 0, "clinic", a->clinic, NW_CLINIC_MAX, out_reason, out_err));
    return check_version("alert", 0, "model", a->model, out_reason, out_err);
}

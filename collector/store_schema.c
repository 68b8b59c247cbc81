/*
 * store_schema.c - the columns of DESIGN.md §5's five measurements, and the
 * values of a point in that order.
 *
 * One table drives both backends: SQLite creates its tables and INSERTs
 * from it, the InfluxDB writer emits tags and fields from it. A column
 * added here appears in both, with the same name and type, so a report
 * that works on one store works on the other.
 *
 * Conventions:
 *  - tags (clinic, device, model, kind, rule, severity) come first, sorted
 *    bytewise, because InfluxDB sorts unsorted tags on every write;
 *  - empty strings are "absent" (no field in InfluxDB, NULL in SQLite), so
 *    a window without a session reads the same on both;
 *  - unsigned counters are stored as signed 64-bit integers (InfluxDB's
 *    i); a value above INT64_MAX is refused, never wrapped or clamped;
 *  - NaN and infinities are refused: InfluxDB cannot store them and SQLite
 *    would silently store NULL.
 */
#include "store_impl.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>

/* Short macros keep the column tables readable. */
// clang-format off
#define T(n) {n, NW_COL_TAG, false}
#define K(n) {n, NW_COL_TAG, true}
#define I(n) {n, NW_COL_INT, false}
#define F(n) {n, NW_COL_F64, false}
#define B(n) {n, NW_COL_BOOL, false}
#define S(n) {n, NW_COL_STR, false}
// clang-format on

static const struct nw_col window_cols[] = {
    T("clinic"),      K("device"),     T("model"),       I("epoch"),     I("seq"),
    I("duration_ms"), I("running_ms"), I("cycles"),      F("rate_mean"), F("rate_min"),
    F("rate_max"),    F("depth_mean"), F("depth_min"),   F("depth_max"), F("pigment_ul"),
    S("session"),     S("cartridge"),  S("pigment_lot"), B("in_spec"),
};

static const struct nw_col event_cols[] = {
    T("clinic"),     K("device"),        K("kind"),    I("epoch"),          I("seq"),
    S("firmware"),   S("boot_reason"),   S("session"), S("operator"),       S("end_reason"),
    S("cartridge"),  S("needle_config"), S("lot"),     S("shade"),          F("volume_ul"),
    I("fault_code"), S("text"),          S("action"),  B("resets_service"), F("depth_offset_mm"),
    F("rate_scale"),
};

static const struct nw_col status_cols[] = {
    T("clinic"),          K("device"),          I("epoch"),          B("online"),
    S("firmware"),        I("uptime_s"),        I("odometer"),       F("hours"),
    I("queue_depth"),     I("queue_bytes"),     I("dropped"),        I("events_dropped"),
    I("corrupt_records"), I("last_window_seq"), I("last_event_seq"), S("session"),
    I("heartbeat_s"),
};

static const struct nw_col session_cols[] = {
    T("clinic"),
    K("device"),
    T("model"),
    I("epoch"),
    S("session"),
    S("operator"),
    S("cartridge"),
    S("cartridge_lot"),
    S("pigment_lot"),
    S("firmware"),
    I("start_ms"),
    F("duration_s"),
    F("running_s"),
    I("cycles"),
    F("pigment_ul"),
    F("rate_in_spec_pct"),
    F("depth_in_spec_pct"),
    I("cartridges"),
    I("alerts"),
    I("windows"),
    I("windows_expected"),
    B("cut_off"),
};

static const struct nw_col alert_cols[] = {
    T("clinic"), K("device"),   K("rule"),  T("severity"),  I("epoch"),   I("alert_id"),
    S("state"),  I("since_ms"), F("value"), F("threshold"), S("message"), B("late"),
};

#define SCHEMA(m, c)                                                                               \
    {                                                                                              \
        m, c, sizeof(c) / sizeof(c[0])                                                             \
    }

static const struct nw_schema schemas[NW_POINT__COUNT] = {
    [NW_POINT_WINDOW] = SCHEMA("needle_window", window_cols),
    [NW_POINT_EVENT] = SCHEMA("device_event", event_cols),
    [NW_POINT_STATUS] = SCHEMA("device_status", status_cols),
    [NW_POINT_SESSION] = SCHEMA("session", session_cols),
    [NW_POINT_ALERT] = SCHEMA("alert", alert_cols),
};

const struct nw_schema *nw_schema_of(enum nw_point_kind kind)
{
    return (unsigned)kind < NW_POINT__COUNT ? &schemas[kind] : NULL;
}

/* --- values ----------------------------------------------------------- */

/* Builds the values of one point; the first refused value is sticky. */
struct vb {
    struct nw_col_value *v;
    const struct nw_schema *sc;
    size_t n;
    struct nw_error *err;
    enum nw_err rc;
};

static struct nw_col_value *next(struct vb *b)
{
    struct nw_col_value *v = &b->v[b->n++];
    memset(v, 0, sizeof(*v));
    return v;
}

static void str(struct vb *b, const char *s)
{
    struct nw_col_value *v = next(b);
    v->s = s;
    v->present = s && s[0];
}

static void u64(struct vb *b, uint64_t x)
{
    struct nw_col_value *v = next(b);
    if (x > (uint64_t)INT64_MAX && b->rc == NW_OK) {
        b->rc = nw_error_set(b->err, NW_ERR_INVALID,
                             "%s.%s = %" PRIu64 " does not fit a signed 64-bit integer",
                             b->sc->measurement, b->sc->cols[b->n - 1].name, x);
    }
    v->i = (int64_t)x;
    v->present = true;
}

static void i64(struct vb *b, int64_t x)
{
    struct nw_col_value *v = next(b);
    v->i = x;
    v->present = true;
}

static void f64(struct vb *b, double x)
{
    struct nw_col_value *v = next(b);
    if (!isfinite(x) && b->rc == NW_OK) {
        b->rc = nw_error_set(b->err, NW_ERR_INVALID, "%s.%s is %s", b->sc->measurement,
                             b->sc->cols[b->n - 1].name, isnan(x) ? "NaN" : "infinite");
    }
    v->f = x;
    v->present = true;
}

/* A field that only some event kinds carry: absent for the others. */
static void f64_if(struct vb *b, bool on, double x)
{
    if (on) {
        f64(b, x);
    } else {
        next(b);
    }
}

static void boolean(struct vb *b, bool on, bool x)
{
    struct nw_col_value *v = next(b);
    v->b = x;
    v->present = on;
}

static void tags(struct vb *b, const struct nw_point *p, const char *third, const char *fourth)
{
    str(b, p->clinic);
    str(b, p->device);
    if (third) {
        str(b, third);
    }
    if (fourth) {
        str(b, fourth);
    }
}

static void window_values(struct vb *b, const struct nw_point *p)
{
    const struct nw_window *w = &p->u.window.w;
    tags(b, p, p->model, NULL);
    u64(b, p->epoch);
    u64(b, w->seq);
    i64(b, w->duration_ms);
    i64(b, w->running_ms);
    u64(b, w->cycles);
    f64(b, w->rate_mean_hz);
    f64(b, w->rate_min_hz);
    f64(b, w->rate_max_hz);
    f64(b, w->depth_mean_mm);
    f64(b, w->depth_min_mm);
    f64(b, w->depth_max_mm);
    f64(b, w->pigment_ul);
    str(b, w->session_id);
    str(b, w->cartridge_id);
    str(b, w->pigment_lot);
    boolean(b, true, p->u.window.in_spec);
}

static const char *end_reason_name(enum nw_session_end_reason r)
{
    switch (r) {
    case NW_SESSION_END_NORMAL:
        return "normal";
    case NW_SESSION_END_POWER_LOSS:
        return "power_loss";
    case NW_SESSION_END_TIMEOUT:
        return "timeout";
    default:
        return "unspecified";
    }
}

static void event_values(struct vb *b, const struct nw_point *p)
{
    const struct nw_event *e = &p->u.event;
    enum nw_event_kind k = e->kind;
    bool session_end = k == NW_EVENT_SESSION_END;
    tags(b, p, nw_event_kind_name(k), NULL);
    u64(b, p->epoch);
    u64(b, e->seq);
    str(b, e->firmware);
    str(b, e->boot_reason);
    str(b, e->session_id);
    str(b, e->operator_code);
    str(b, session_end ? end_reason_name(e->end_reason) : NULL);
    str(b, e->cartridge_id);
    str(b, e->needle_config);
    str(b, e->lot);
    str(b, e->shade);
    f64_if(b, k == NW_EVENT_PIGMENT_LOADED, e->volume_ul);
    if (k == NW_EVENT_FAULT) {
        i64(b, e->fault_code);
    } else {
        next(b);
    }
    str(b, e->text);
    str(b, e->action);
    boolean(b, k == NW_EVENT_MAINTENANCE, e->resets_service);
    f64_if(b, k == NW_EVENT_CALIBRATION, e->depth_offset_mm);
    f64_if(b, k == NW_EVENT_CALIBRATION, e->rate_scale);
}

static void status_values(struct vb *b, const struct nw_point *p)
{
    const struct nw_status *s = &p->u.status;
    tags(b, p, NULL, NULL);
    u64(b, p->epoch);
    boolean(b, true, s->state == NW_DEVICE_ONLINE);
    str(b, s->firmware);
    u64(b, s->uptime_s);
    u64(b, s->odometer_cycles);
    f64(b, (double)s->running_s / 3600.0);
    u64(b, s->queue_depth);
    u64(b, s->queue_bytes);
    u64(b, s->windows_dropped);
    u64(b, s->events_dropped);
    u64(b, s->corrupt_records);
    u64(b, s->last_window_seq);
    u64(b, s->last_event_seq);
    str(b, s->session_id);
    i64(b, s->heartbeat_s);
}

static void session_values(struct vb *b, const struct nw_point *p)
{
    const struct nw_session_summary *s = &p->u.session;
    tags(b, p, p->model, NULL);
    u64(b, p->epoch);
    str(b, s->session_id);
    str(b, s->operator_code);
    str(b, s->cartridge_id);
    str(b, s->cartridge_lot);
    str(b, s->pigment_lot);
    str(b, s->firmware);
    i64(b, s->start_ms);
    f64(b, s->duration_s);
    f64(b, s->running_s);
    u64(b, s->cycles);
    f64(b, s->pigment_ul);
    f64(b, s->rate_in_spec_pct);
    f64(b, s->depth_in_spec_pct);
    i64(b, s->cartridges);
    i64(b, s->alerts);
    u64(b, s->windows);
    u64(b, s->windows_expected);
    boolean(b, true, s->cut_off);
}

static void alert_values(struct vb *b, const struct nw_point *p)
{
    const struct nw_alert *a = &p->u.alert;
    tags(b, p, a->rule, nw_severity_name(a->severity));
    u64(b, p->epoch);
    u64(b, a->alert_id);
    str(b, nw_alert_state_name(a->state));
    i64(b, a->since_ms);
    f64(b, a->value);
    f64(b, a->threshold);
    str(b, a->message);
    boolean(b, true, a->late);
}

enum nw_err nw_schema_values(const struct nw_point *p, struct nw_col_value *vals,
                             struct nw_error *err)
{
    static void (*const fill[NW_POINT__COUNT])(struct vb *, const struct nw_point *) = {
        [NW_POINT_WINDOW] = window_values, [NW_POINT_EVENT] = event_values,
        [NW_POINT_STATUS] = status_values, [NW_POINT_SESSION] = session_values,
        [NW_POINT_ALERT] = alert_values,
    };
    const struct nw_schema *sc = nw_schema_of(p->kind);
    if (!sc) {
        return nw_error_set(err, NW_ERR_INVALID, "unknown point kind %d", (int)p->kind);
    }
    struct vb b = {vals, sc, 0, err, NW_OK};
    fill[p->kind](&b, p);
    if (b.rc == NW_OK && b.n != sc->ncols) { /* a table and its filler disagree */
        b.rc = nw_error_set(err, NW_ERR_INVAL, "%s: %zu values for %zu columns", sc->measurement,
                            b.n, sc->ncols);
    }
    return b.rc;
}

/*
 * rules.c - DESIGN §6 rules over one device's windows, events and statuses.
 *
 * Every hold/clear rule goes through one step function (step) that keeps
 * two event-time marks per rule: when the firing condition began to hold
 * and when the clear condition began to hold. The rules differ only in how
 * they compute "holds", "clears" and the value they report.
 */
#include "rules.h"

#include <needlewatch/hash.h>

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const names[RULE__COUNT] = {
    [RULE_RATE] = "needle_rate_out_of_spec",
    [RULE_UNSTABLE] = "needle_rate_unstable",
    [RULE_DEPTH] = "needle_depth_out_of_spec",
    [RULE_CART_REUSE] = "cartridge_reuse",
    [RULE_CART_WORN] = "cartridge_worn",
    [RULE_MAINT] = "maintenance_due",
    [RULE_OFFLINE] = "device_offline",
    [RULE_PIGMENT] = "pigment_overuse",
    [RULE_GAP] = "data_gap",
    [RULE_UNKNOWN] = "unknown_device",
};

const char *rules_name(enum rule_id r)
{
    return (unsigned)r < RULE__COUNT ? names[r] : NULL;
}

enum rule_id rules_from_name(const char *name)
{
    for (int i = 0; i < RULE__COUNT; i++) {
        if (name && strcmp(names[i], name) == 0) {
            return (enum rule_id)i;
        }
    }
    return RULE__COUNT;
}

void rules_config_defaults(struct rules_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    static const struct rule_params def[RULE__COUNT] = {
        [RULE_RATE] = {true, NW_SEVERITY_CRITICAL, 2000, 2000},
        [RULE_UNSTABLE] = {true, NW_SEVERITY_WARNING, 5000, 5000},
        [RULE_DEPTH] = {true, NW_SEVERITY_CRITICAL, 1000, 1000},
        [RULE_CART_REUSE] = {true, NW_SEVERITY_CRITICAL, 0, 0},
        [RULE_CART_WORN] = {true, NW_SEVERITY_WARNING, 0, 0},
        [RULE_MAINT] = {true, NW_SEVERITY_WARNING, 0, 0},
        [RULE_OFFLINE] = {true, NW_SEVERITY_WARNING, 0, 0},
        [RULE_PIGMENT] = {true, NW_SEVERITY_WARNING, 10000, 10000},
        [RULE_GAP] = {true, NW_SEVERITY_WARNING, 600000, 0},
        [RULE_UNKNOWN] = {true, NW_SEVERITY_WARNING, 0, 0},
    };
    memcpy(cfg->rule, def, sizeof(def));
    cfg->rate_clear_margin_hz = 2;
    cfg->depth_clear_margin_mm = 0.01;
    cfg->unstable_spread_hz = 15;
    cfg->unstable_clear_hz = 12;
    cfg->pigment_factor = 3;
    cfg->pigment_clear_factor = 2.5;
    cfg->pigment_min_samples = 300;
    cfg->offline_after_ms = 90000;
    cfg->renotify_ms = 30 * 60000;
    cfg->late_after_ms = 60000;
    cfg->session_grace_ms = 2000;
    cfg->session_cutoff_ms = 600000;
}

uint64_t rules_alert_id(const char *device, enum rule_id r, int64_t fired_ms)
{
    char key[160];
    snprintf(key, sizeof(key), "%s/%d/%lld", device, (int)r, (long long)fired_ms);
    uint64_t id = (nw_hash_str(key) * 0x9E3779B97F4A7C15ULL) >> 11; /* 53 bits */
    return id ? id : 1;
}

void rules_dev_init(struct rules_dev *d)
{
    memset(d, 0, sizeof(*d));
    d->version = RULES_DEV_VERSION;
    d->size = sizeof(*d);
}

bool rules_dev_valid(const void *blob, size_t len)
{
    struct rules_dev head;
    if (len != sizeof(head)) {
        return false;
    }
    memcpy(&head, blob, sizeof(head));
    return head.version == RULES_DEV_VERSION && head.size == sizeof(head);
}

void rules_new_epoch(struct rules_dev *d)
{
    d->last_wseq = d->last_eseq = 0;
    d->gap_hi = 0;
    d->gap_since = 0;
}

/* ---- transitions -------------------------------------------------------- */

static struct nw_alert *emit(const struct rules_ctx *c, struct rules_out *out, enum rule_id r,
                             const struct rule_track *t, enum nw_alert_state state, int64_t time_ms)
{
    if (out->nalerts == RULES_OUT_MAX) {
        out->overflow++;
        return NULL;
    }
    struct nw_alert *a = &out->alerts[out->nalerts++];
    memset(a, 0, sizeof(*a));
    snprintf(a->device_id, sizeof(a->device_id), "%s", c->device);
    snprintf(a->clinic, sizeof(a->clinic), "%s", c->clinic);
    snprintf(a->model, sizeof(a->model), "%s", c->model);
    snprintf(a->rule, sizeof(a->rule), "%s", names[r]);
    a->alert_id = t->alert_id;
    a->severity = (enum nw_severity)t->severity;
    a->state = state;
    a->time_ms = time_ms;
    a->since_ms = t->fired_ms;
    a->value = t->value;
    a->late = c->now_ms - time_ms > c->cfg->late_after_ms;
    return a;
}

static bool inhibited(const struct rules_dev *d, enum rule_id r)
{
    return d->r[RULE_OFFLINE].alert_id &&
           (r == RULE_RATE || r == RULE_UNSTABLE || r == RULE_DEPTH || r == RULE_GAP);
}

static void fire(struct rules_dev *d, const struct rules_ctx *c, struct rules_out *out,
                 enum rule_id r, int64_t time_ms, double value, double threshold, const char *msg)
{
    struct rule_track *t = &d->r[r];
    if (t->alert_id || !c->cfg->rule[r].enabled) {
        return;
    }
    t->alert_id = rules_alert_id(c->device, r, time_ms);
    t->fired_ms = time_ms;
    t->notified_ms = c->now_ms;
    t->value = value;
    t->acked = false;
    t->clear_since = 0;
    t->severity = (uint8_t)c->cfg->rule[r].severity;
    if (r == RULE_OFFLINE && d->sess.open && !d->sess.end_seen) {
        t->severity = NW_SEVERITY_CRITICAL; /* an interrupted session */
    }
    struct nw_alert *a = emit(c, out, r, t, NW_ALERT_FIRING, time_ms);
    if (a) {
        a->threshold = threshold;
        snprintf(a->message, sizeof(a->message), "%s", msg);
    }
    if (d->sess.open) {
        d->sess.alerts++;
    }
}

static void resolve(struct rules_dev *d, const struct rules_ctx *c, struct rules_out *out,
                    enum rule_id r, int64_t time_ms, double value, const char *msg)
{
    struct rule_track *t = &d->r[r];
    if (!t->alert_id) {
        return;
    }
    t->value = value;
    if (time_ms <= t->fired_ms) {
        time_ms = t->fired_ms + 1; /* the store keys alerts by (device, rule, time) */
    }
    struct nw_alert *a = emit(c, out, r, t, NW_ALERT_RESOLVED, time_ms);
    if (a) {
        snprintf(a->message, sizeof(a->message), "%s", msg);
    }
    memset(t, 0, sizeof(*t));
}

/*
 * One window-driven rule over [start, end): holds/clears are the window's
 * verdicts (a window can do neither: idle, or in the band between the fire
 * and clear thresholds). The message is formatted only when the rule fires:
 * formatting three of them per window cost 7 % of the collector's CPU.
 */
__attribute__((format(printf, 11, 12))) static void
step(struct rules_dev *d, const struct rules_ctx *c, struct rules_out *out, enum rule_id r,
     int64_t start, int64_t end, bool holds, bool clears, double value, double threshold,
     const char *fmt, ...)
{
    struct rule_track *t = &d->r[r];
    const struct rule_params *p = &c->cfg->rule[r];
    t->cond_since = holds ? (t->cond_since ? t->cond_since : start) : 0;
    t->clear_since = clears ? (t->clear_since ? t->clear_since : start) : 0;
    if (!t->alert_id) {
        if (holds && end - t->cond_since >= p->hold_ms && !inhibited(d, r)) {
            char msg[NW_TEXT_MAX + 1];
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(msg, sizeof(msg), fmt, ap);
            va_end(ap);
            fire(d, c, out, r, end, value, threshold, msg);
        }
    } else if (clears && end - t->clear_since >= p->clear_ms) {
        resolve(d, c, out, r, end, value, "back in spec");
    }
}

/* ---- windows ------------------------------------------------------------ */

static bool outside(double v, const struct nw_cfg_range *r)
{
    return v < r->lo || v > r->hi;
}

static bool inside_by(double v, const struct nw_cfg_range *r, double margin)
{
    return v >= r->lo + margin && v <= r->hi - margin;
}

static void spec_rules(struct rules_dev *d, const struct rules_ctx *c, const struct nw_window *w,
                       int64_t end, struct rules_out *out)
{
    const struct nw_model_spec *s = c->spec;
    bool run = w->cycles > 0;
    double rate = w->rate_mean_hz, depth = w->depth_mean_mm;
    step(d, c, out, RULE_RATE, w->start_ms, end, run && outside(rate, &s->rate_hz),
         run && inside_by(rate, &s->rate_hz, c->cfg->rate_clear_margin_hz), rate,
         rate < s->rate_hz.lo ? s->rate_hz.lo : s->rate_hz.hi,
         "needle rate %.1f Hz outside %.0f-%.0f Hz", rate, s->rate_hz.lo, s->rate_hz.hi);
    double spread = w->rate_max_hz - w->rate_min_hz;
    step(d, c, out, RULE_UNSTABLE, w->start_ms, end, run && spread > c->cfg->unstable_spread_hz,
         run && spread <= c->cfg->unstable_clear_hz, spread, c->cfg->unstable_spread_hz,
         "needle rate swings %.1f Hz within a window (limit %.0f Hz)", spread,
         c->cfg->unstable_spread_hz);
    step(d, c, out, RULE_DEPTH, w->start_ms, end, run && outside(depth, &s->depth_mm),
         run && inside_by(depth, &s->depth_mm, c->cfg->depth_clear_margin_mm), depth,
         depth < s->depth_mm.lo ? s->depth_mm.lo : s->depth_mm.hi,
         "needle depth %.3f mm outside %.2f-%.2f mm", depth, s->depth_mm.lo, s->depth_mm.hi);
}

static void pigment_rule(struct rules_dev *d, const struct rules_ctx *c, const struct nw_window *w,
                         int64_t end, struct rules_out *out)
{
    if (!c->pig || w->running_ms < 500 || w->cycles == 0) {
        return; /* idle or too short to tell */
    }
    double per_min = w->pigment_ul / (w->running_ms / 60000.0);
    double median = rules_pig_median(c->pig, c->cfg->pigment_min_samples);
    rules_pig_add(c->pig, per_min);
    if (isnan(median) || median <= 0) {
        return;
    }
    step(d, c, out, RULE_PIGMENT, w->start_ms, end, per_min > c->cfg->pigment_factor * median,
         per_min <= c->cfg->pigment_clear_factor * median, per_min, c->cfg->pigment_factor * median,
         "pigment %.1f uL per running minute, %.1fx the model median %.1f", per_min,
         per_min / median, median);
}

static void cartridge_cycles(struct rules_dev *d, const struct rules_ctx *c,
                             const struct nw_window *w, int64_t end, struct rules_out *out)
{
    if (!w->cartridge_id[0]) {
        return;
    }
    if (strcmp(w->cartridge_id, d->cartridge) != 0) {
        resolve(d, c, out, RULE_CART_WORN, w->start_ms, (double)d->cart_cycles,
                "cartridge replaced");
        snprintf(d->cartridge, sizeof(d->cartridge), "%s", w->cartridge_id);
        d->cart_cycles = 0;
    }
    d->cart_cycles += w->cycles;
    uint64_t max = c->spec->cartridge_max_cycles;
    if (max && d->cart_cycles > max) {
        char msg[NW_TEXT_MAX + 1];
        snprintf(msg, sizeof(msg), "cartridge %s has %llu cycles (limit %llu)", d->cartridge,
                 (unsigned long long)d->cart_cycles, (unsigned long long)max);
        fire(d, c, out, RULE_CART_WORN, end, (double)d->cart_cycles, (double)max, msg);
    }
}

static void maintenance_rule(struct rules_dev *d, const struct rules_ctx *c, int64_t t,
                             struct rules_out *out)
{
    const struct nw_model_spec *s = c->spec;
    if (d->running_s < d->base_running_s || d->odometer < d->base_cycles) {
        d->base_running_s = d->base_cycles = 0; /* the device's counters started over */
    }
    double hours = (double)(d->running_s - d->base_running_s) / 3600.0;
    uint64_t cycles = d->odometer - d->base_cycles;
    char msg[NW_TEXT_MAX + 1];
    if (s->service_hours > 0 && hours > s->service_hours) {
        snprintf(msg, sizeof(msg), "%.1f running hours since service (interval %.0f h)", hours,
                 s->service_hours);
        fire(d, c, out, RULE_MAINT, t, hours, s->service_hours, msg);
    } else if (s->service_cycles && cycles > s->service_cycles) {
        snprintf(msg, sizeof(msg), "%llu cycles since service (interval %llu)",
                 (unsigned long long)cycles, (unsigned long long)s->service_cycles);
        fire(d, c, out, RULE_MAINT, t, (double)cycles, (double)s->service_cycles, msg);
    }
}

/* A gap opened at seq; it closes when the store's contiguous watermark
 * passes it (filled, or declared lost by the device's queue floor). */
static void gap_rule(struct rules_dev *d, const struct rules_ctx *c, const struct nw_window *w,
                     int64_t end, struct rules_out *out)
{
    if (d->last_wseq && w->seq > d->last_wseq + 1) {
        d->gap_hi = w->seq - 1 > d->gap_hi ? w->seq - 1 : d->gap_hi;
        d->gap_since = d->gap_since ? d->gap_since : w->start_ms;
    }
    if (d->gap_hi && c->stored_contig < d->gap_hi &&
        end - d->gap_since >= c->cfg->rule[RULE_GAP].hold_ms && !inhibited(d, RULE_GAP)) {
        char msg[NW_TEXT_MAX + 1];
        snprintf(msg, sizeof(msg), "windows %llu-%llu missing for %lld s",
                 (unsigned long long)c->stored_contig + 1, (unsigned long long)d->gap_hi,
                 (long long)(end - d->gap_since) / 1000);
        fire(d, c, out, RULE_GAP, end, (double)(d->gap_hi - c->stored_contig),
             (double)c->cfg->rule[RULE_GAP].hold_ms / 1000.0, msg);
    }
}

/* ---- sessions ------------------------------------------------------------ */

static void session_emit(struct rules_dev *d, struct rules_out *out)
{
    struct session_acc *s = &d->sess;
    if (!s->open) {
        return;
    }
    if (out->nsessions < sizeof(out->sessions) / sizeof(out->sessions[0])) {
        struct nw_session_summary *p = &out->sessions[out->nsessions++];
        memset(p, 0, sizeof(*p));
        snprintf(p->session_id, sizeof(p->session_id), "%s", s->id);
        snprintf(p->operator_code, sizeof(p->operator_code), "%s", s->operator_code);
        snprintf(p->cartridge_id, sizeof(p->cartridge_id), "%s", s->cartridge);
        snprintf(p->cartridge_lot, sizeof(p->cartridge_lot), "%s", s->cartridge_lot);
        snprintf(p->pigment_lot, sizeof(p->pigment_lot), "%s", s->pigment_lot);
        snprintf(p->firmware, sizeof(p->firmware), "%s", d->firmware);
        p->start_ms = s->start_ms;
        p->end_ms = s->end_seen ? s->end_ms : s->last_ms;
        if (p->end_ms < p->start_ms) {
            p->end_ms = p->start_ms;
        }
        p->duration_s = (double)(p->end_ms - p->start_ms) / 1000.0;
        p->running_s = (double)s->running_ms / 1000.0;
        p->cycles = s->cycles;
        p->pigment_ul = s->pigment_ul;
        p->rate_in_spec_pct =
            s->running_ms ? 100.0 * (double)s->rate_ok_ms / (double)s->running_ms : 100.0;
        p->depth_in_spec_pct =
            s->running_ms ? 100.0 * (double)s->depth_ok_ms / (double)s->running_ms : 100.0;
        p->cartridges = s->cartridges;
        p->alerts = s->alerts;
        p->windows = s->windows;
        p->windows_expected = s->windows ? s->last_seq - s->first_seq + 1 : 0;
        p->cut_off = s->cut_off || !s->end_seen;
    } else {
        out->overflow++;
    }
    memset(s, 0, sizeof(*s));
}

static void session_open(struct rules_dev *d, const char *id, int64_t start)
{
    struct session_acc *s = &d->sess;
    memset(s, 0, sizeof(*s));
    s->open = true;
    snprintf(s->id, sizeof(s->id), "%s", id);
    s->start_ms = s->last_ms = start;
}

static void session_window(struct rules_dev *d, const struct rules_ctx *c,
                           const struct nw_window *w, int64_t end, struct rules_out *out)
{
    struct session_acc *s = &d->sess;
    if (!w->session_id[0]) {
        if (s->open && s->end_seen) {
            session_emit(d, out);
        }
        return;
    }
    if (s->open && strcmp(s->id, w->session_id) != 0) {
        s->cut_off = !s->end_seen; /* a new session without an end: the old one was cut off */
        session_emit(d, out);
    }
    if (!s->open) {
        session_open(d, w->session_id, w->start_ms); /* windows before the start event */
    }
    s->last_ms = end > s->last_ms ? end : s->last_ms;
    s->first_seq = s->windows ? s->first_seq : w->seq;
    s->last_seq = w->seq;
    s->windows++;
    s->cycles += w->cycles;
    s->pigment_ul += w->pigment_ul;
    if (w->cycles > 0) {
        s->running_ms += w->running_ms;
        s->rate_ok_ms += outside(w->rate_mean_hz, &c->spec->rate_hz) ? 0 : w->running_ms;
        s->depth_ok_ms += outside(w->depth_mean_mm, &c->spec->depth_mm) ? 0 : w->running_ms;
    }
    if (!s->pigment_lot[0] && w->pigment_lot[0]) {
        snprintf(s->pigment_lot, sizeof(s->pigment_lot), "%s", w->pigment_lot);
    }
    if (!s->cartridge[0] && w->cartridge_id[0]) {
        snprintf(s->cartridge, sizeof(s->cartridge), "%s", w->cartridge_id);
    }
}

void rules_on_window(struct rules_dev *d, const struct rules_ctx *c, const struct nw_window *w,
                     struct rules_out *out)
{
    d->last_seen_wall = c->now_ms;
    if (w->seq <= d->last_wseq) {
        return; /* a re-send or a late fill: judged already, or out of order */
    }
    int64_t end = w->start_ms + w->duration_ms;
    d->last_data_ms = end > d->last_data_ms ? end : d->last_data_ms;
    gap_rule(d, c, w, end, out);
    d->last_wseq = w->seq;
    session_window(d, c, w, end, out);
    spec_rules(d, c, w, end, out);
    pigment_rule(d, c, w, end, out);
    cartridge_cycles(d, c, w, end, out);
    if (w->cycles > 0 && w->start_ms >= d->running_at_ms) { /* not yet in a status */
        d->odometer += w->cycles;
        d->running_s += (w->running_ms + 500) / 1000;
        d->running_at_ms = end;
        maintenance_rule(d, c, end, out);
    }
}

/* ---- events -------------------------------------------------------------- */

static void on_cartridge_in(struct rules_dev *d, const struct rules_ctx *c,
                            const struct nw_event *e, struct rules_out *out)
{
    struct session_acc *s = &d->sess;
    if (strcmp(d->cartridge, e->cartridge_id) != 0) { /* not a re-seat */
        resolve(d, c, out, RULE_CART_REUSE, e->time_ms, 0, "another cartridge inserted");
        resolve(d, c, out, RULE_CART_WORN, e->time_ms, (double)d->cart_cycles,
                "cartridge replaced");
        snprintf(d->cartridge, sizeof(d->cartridge), "%s", e->cartridge_id);
        d->cart_cycles = 0;
    }
    if (s->open) {
        s->cartridges++;
        if (!s->cartridge_lot[0]) {
            snprintf(s->cartridge, sizeof(s->cartridge), "%s", e->cartridge_id);
            snprintf(s->cartridge_lot, sizeof(s->cartridge_lot), "%s", e->lot);
        }
    }
    char where[160] = "";
    if (c->cart && e->cartridge_id[0] &&
        c->cart(c->cart_user, e->cartridge_id, c->device, s->open ? s->id : "", e->time_ms, where,
                sizeof(where))) {
        char msg[NW_TEXT_MAX + 1];
        snprintf(msg, sizeof(msg), "cartridge %s already used: %s", e->cartridge_id, where);
        fire(d, c, out, RULE_CART_REUSE, e->time_ms, 1, 1, msg);
    }
}

static void on_session_start(struct rules_dev *d, const struct nw_event *e, struct rules_out *out)
{
    struct session_acc *s = &d->sess;
    if (s->open && strcmp(s->id, e->session_id) != 0) {
        s->cut_off = !s->end_seen;
        session_emit(d, out);
    }
    if (!s->open) {
        session_open(d, e->session_id, e->time_ms);
    }
    if (e->time_ms < s->start_ms) {
        s->start_ms = e->time_ms;
    }
    snprintf(s->operator_code, sizeof(s->operator_code), "%s", e->operator_code);
}

void rules_on_event(struct rules_dev *d, const struct rules_ctx *c, const struct nw_event *e,
                    struct rules_out *out)
{
    d->last_seen_wall = c->now_ms;
    if (e->seq <= d->last_eseq) {
        return;
    }
    d->last_eseq = e->seq;
    struct session_acc *s = &d->sess;
    switch (e->kind) {
    case NW_EVENT_POWER_ON:
        snprintf(d->firmware, sizeof(d->firmware), "%s", e->firmware);
        break;
    case NW_EVENT_SESSION_START:
        on_session_start(d, e, out);
        break;
    case NW_EVENT_SESSION_END:
        if (s->open && strcmp(s->id, e->session_id) == 0) {
            s->end_seen = true;
            s->end_ms = e->time_ms;
            s->end_wall_ms = c->now_ms;
        }
        resolve(d, c, out, RULE_CART_REUSE, e->time_ms, 0, "session ended");
        break;
    case NW_EVENT_CARTRIDGE_INSERTED:
        on_cartridge_in(d, c, e, out);
        break;
    case NW_EVENT_CARTRIDGE_REMOVED:
        resolve(d, c, out, RULE_CART_REUSE, e->time_ms, 0, "cartridge removed");
        resolve(d, c, out, RULE_CART_WORN, e->time_ms, (double)d->cart_cycles, "cartridge removed");
        d->cartridge[0] = '\0';
        d->cart_cycles = 0;
        break;
    case NW_EVENT_PIGMENT_LOADED:
        if (s->open && !s->pigment_lot[0]) {
            snprintf(s->pigment_lot, sizeof(s->pigment_lot), "%s", e->lot);
        }
        break;
    case NW_EVENT_MAINTENANCE:
        if (e->resets_service) {
            d->base_running_s = d->running_s;
            d->base_cycles = d->odometer;
            resolve(d, c, out, RULE_MAINT, e->time_ms, 0, "serviced");
        }
        break;
    default:
        break;
    }
}

/* ---- status, inventory, time ------------------------------------------- */

void rules_on_status(struct rules_dev *d, const struct rules_ctx *c, const struct nw_status *s,
                     struct rules_out *out)
{
    d->last_seen_wall = c->now_ms;
    if (s->firmware[0]) {
        snprintf(d->firmware, sizeof(d->firmware), "%s", s->firmware);
    }
    if (s->state == NW_DEVICE_OFFLINE) {
        fire(d, c, out, RULE_OFFLINE, s->time_ms, 0, 0, "device went offline (last will)");
        return;
    }
    resolve(d, c, out, RULE_OFFLINE, s->time_ms, 1, "device back online");
    /* A status older than the windows counted since (a retained one, read
     * again after a collector restart) would move the counters back. */
    if ((s->running_s || s->odometer_cycles) && s->time_ms >= d->running_at_ms) {
        d->running_s = s->running_s;
        d->odometer = s->odometer_cycles;
        d->running_at_ms = s->time_ms;
        maintenance_rule(d, c, s->time_ms, out);
    }
}

void rules_on_inventory(struct rules_dev *d, const struct rules_ctx *c, bool known,
                        struct rules_out *out)
{
    if (!known) {
        fire(d, c, out, RULE_UNKNOWN, c->now_ms, 0, 0,
             "device is not in the inventory: stored under clinic \"unassigned\"");
    } else {
        resolve(d, c, out, RULE_UNKNOWN, c->now_ms, 1, "device added to the inventory");
    }
}

void rules_tick(struct rules_dev *d, const struct rules_ctx *c, struct rules_out *out)
{
    const struct rules_config *cfg = c->cfg;
    if (d->last_seen_wall && c->now_ms - d->last_seen_wall >= cfg->offline_after_ms) {
        char msg[NW_TEXT_MAX + 1];
        snprintf(msg, sizeof(msg), "no message for %lld s",
                 (long long)(c->now_ms - d->last_seen_wall) / 1000);
        fire(d, c, out, RULE_OFFLINE, c->now_ms, (double)(c->now_ms - d->last_seen_wall) / 1000.0,
             (double)cfg->offline_after_ms / 1000.0, msg);
    }
    if (d->gap_hi && c->stored_contig >= d->gap_hi) {
        resolve(d, c, out, RULE_GAP, d->last_data_ms, 0, "gap filled");
        d->gap_hi = 0;
        d->gap_since = 0;
    }
    struct session_acc *s = &d->sess;
    if (s->open && s->end_seen && c->now_ms - s->end_wall_ms >= cfg->session_grace_ms &&
        c->now_ms - d->last_seen_wall >= cfg->session_grace_ms) {
        session_emit(d, out);
    }
    /* A device gone in the middle of a session: summarise what came, marked
     * cut off (if it returns with the same session, the rest is summarised
     * as a second part). */
    if (s->open && !s->end_seen && d->r[RULE_OFFLINE].alert_id && cfg->session_cutoff_ms > 0 &&
        c->now_ms - d->last_seen_wall >= cfg->session_cutoff_ms) {
        s->cut_off = true;
        session_emit(d, out);
    }
    for (int r = 0; cfg->renotify_ms > 0 && r < RULE__COUNT; r++) {
        struct rule_track *t = &d->r[r];
        if (t->alert_id && !t->acked && t->severity == NW_SEVERITY_CRITICAL &&
            c->now_ms - t->notified_ms >= cfg->renotify_ms) {
            t->notified_ms = c->now_ms;
            struct nw_alert *a = emit(c, out, (enum rule_id)r, t, NW_ALERT_RENOTIFY, c->now_ms);
            if (a) {
                snprintf(a->message, sizeof(a->message), "still open, not acknowledged");
                a->late = false;
            }
        }
    }
}

bool rules_ack(struct rules_dev *d, const struct rules_ctx *c, uint64_t alert_id,
               struct rules_out *out)
{
    for (int r = 0; r < RULE__COUNT; r++) {
        struct rule_track *t = &d->r[r];
        if (alert_id && t->alert_id == alert_id) {
            if (!t->acked) {
                t->acked = true;
                struct nw_alert *a =
                    emit(c, out, (enum rule_id)r, t, NW_ALERT_ACKNOWLEDGED, c->now_ms);
                if (a) {
                    snprintf(a->message, sizeof(a->message), "acknowledged by an operator");
                    a->late = false;
                }
            }
            return true;
        }
    }
    return false;
}

/* ---- pigment median ------------------------------------------------------ */

/* Bins of 2^(1/16) from 0.01 uL/min: 256 bins reach ~640 000 uL/min. */
static int pig_bin(double v)
{
    if (!(v > 0.01)) {
        return 0;
    }
    int b = (int)(log2(v / 0.01) * 16.0);
    return b >= RULES_PIG_BINS ? RULES_PIG_BINS - 1 : b;
}

void rules_pig_add(struct rules_pigstat *s, double ul_per_min)
{
    if (isfinite(ul_per_min)) {
        s->bins[pig_bin(ul_per_min)]++;
        s->n++;
    }
}

double rules_pig_median(const struct rules_pigstat *s, uint64_t min)
{
    if (s->n == 0 || s->n < min) {
        return NAN;
    }
    uint64_t half = (s->n + 1) / 2, acc = 0;
    for (int b = 0; b < RULES_PIG_BINS; b++) {
        acc += s->bins[b];
        if (acc >= half) {
            return 0.01 * exp2((b + 0.5) / 16.0); /* the bin's geometric middle */
        }
    }
    return NAN;
}

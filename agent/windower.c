/*
 * windower.c - samples in, fixed-length aligned windows out.
 *
 * Each sample covers (prev_t, t]. That interval is split at window
 * boundaries, and each piece adds running time, cycles (rate x time) and
 * time-weighted rate and depth sums to the window it falls in. Cycles are
 * kept as one running double total and each window takes the difference of
 * its rounded end and start totals, so no fraction of a cycle is lost or
 * counted twice between windows.
 */
#include "windower.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct open_window {
    bool open;
    int64_t lstart; /* logical start: aligned on the device clock */
    double cycles_at_open;
    bool had_sample;
    double running_ms;
    double rate_sum, rate_min, rate_max;    /* rate x running ms */
    double depth_sum, depth_min, depth_max; /* depth x running ms */
    double pigment_ul;
};

struct agent_windower {
    uint32_t window_ms;
    bool idle_windows;
    bool have_prev;
    int64_t prev_t;
    int64_t last_stamp; /* start_ms of the last window produced */
    double total_cycles;
    struct open_window cur;
    char session_id[NW_ID_MAX + 1];
    char cartridge_id[NW_ID_MAX + 1];
    char pigment_lot[NW_ID_MAX + 1];
};

struct agent_windower *agent_windower_new(uint32_t window_ms)
{
    if (window_ms < AGENT_WINDOW_MS_MIN || window_ms > AGENT_WINDOW_MS_MAX) {
        return NULL;
    }
    struct agent_windower *w = calloc(1, sizeof(*w));
    if (w) {
        w->window_ms = window_ms;
        w->last_stamp = INT64_MIN;
    }
    return w;
}

void agent_windower_destroy(struct agent_windower **p)
{
    if (p && *p) {
        free(*p);
        *p = NULL;
    }
}

static void copy_id(char dst[NW_ID_MAX + 1], const char *src)
{
    snprintf(dst, NW_ID_MAX + 1, "%s", src ? src : "");
}

void agent_windower_set_context(struct agent_windower *w, const char *session_id,
                                const char *cartridge_id, const char *pigment_lot)
{
    copy_id(w->session_id, session_id);
    copy_id(w->cartridge_id, cartridge_id);
    copy_id(w->pigment_lot, pigment_lot);
}

void agent_windower_set_idle_windows(struct agent_windower *w, bool on)
{
    w->idle_windows = on;
}

uint64_t agent_windower_total_cycles(const struct agent_windower *w)
{
    return (uint64_t)llround(w->total_cycles);
}

static int64_t align(int64_t t, uint32_t window_ms)
{
    int64_t q = t / window_ms;
    if (t % window_ms < 0) {
        q--; /* floor for times before 1970, which validation refuses anyway */
    }
    return q * window_ms;
}

static void open_at(struct agent_windower *w, int64_t t)
{
    memset(&w->cur, 0, sizeof(w->cur));
    w->cur.open = true;
    w->cur.lstart = align(t, w->window_ms);
    w->cur.cycles_at_open = w->total_cycles;
}

/* Turns the open window into out if it deserves to exist; closes it. */
static size_t close_window(struct agent_windower *w, struct nw_window *out)
{
    struct open_window *c = &w->cur;
    c->open = false;
    uint64_t cycles = (uint64_t)llround(w->total_cycles) - (uint64_t)llround(c->cycles_at_open);
    bool ran = c->running_ms > 0;
    if (!ran && !(w->idle_windows && c->had_sample)) {
        return 0;
    }
    memset(out, 0, sizeof(*out));
    out->start_ms = c->lstart > w->last_stamp ? c->lstart : w->last_stamp + 1;
    w->last_stamp = out->start_ms;
    out->duration_ms = w->window_ms;
    double run = c->running_ms > w->window_ms ? w->window_ms : c->running_ms;
    out->running_ms = (uint32_t)llround(run);
    out->cycles = cycles;
    if (ran) {
        out->rate_mean_hz = c->rate_sum / c->running_ms;
        out->rate_min_hz = c->rate_min;
        out->rate_max_hz = c->rate_max;
        out->depth_mean_mm = c->depth_sum / c->running_ms;
        out->depth_min_mm = c->depth_min;
        out->depth_max_mm = c->depth_max;
    }
    out->pigment_ul = c->pigment_ul;
    memcpy(out->session_id, w->session_id, sizeof(out->session_id));
    memcpy(out->cartridge_id, w->cartridge_id, sizeof(out->cartridge_id));
    memcpy(out->pigment_lot, w->pigment_lot, sizeof(out->pigment_lot));
    return 1;
}

/* Adds dt ms of the sample's activity to the open window. */
static void accumulate(struct agent_windower *w, const struct agent_sample *s, double dt)
{
    struct open_window *c = &w->cur;
    c->had_sample = true;
    if (s->rate_hz <= 0 || dt <= 0) {
        return;
    }
    bool first = c->running_ms == 0;
    c->running_ms += dt;
    w->total_cycles += s->rate_hz * dt / 1000.0;
    c->rate_sum += s->rate_hz * dt;
    c->depth_sum += s->depth_mm * dt;
    c->rate_min = first || s->rate_hz < c->rate_min ? s->rate_hz : c->rate_min;
    c->rate_max = first || s->rate_hz > c->rate_max ? s->rate_hz : c->rate_max;
    c->depth_min = first || s->depth_mm < c->depth_min ? s->depth_mm : c->depth_min;
    c->depth_max = first || s->depth_mm > c->depth_max ? s->depth_mm : c->depth_max;
}

static bool sample_ok(const struct agent_sample *s, struct nw_error *out_err)
{
    if (!isfinite(s->rate_hz) || !isfinite(s->depth_mm) || !isfinite(s->pigment_ul) ||
        s->rate_hz < 0 || s->depth_mm < 0 || s->pigment_ul < 0) {
        nw_error_set(out_err, NW_ERR_INVALID,
                     "sample at %lld: rate %g Hz, depth %g mm, pigment %g uL: values must be "
                     "finite and not negative",
                     (long long)s->t_ms, s->rate_hz, s->depth_mm, s->pigment_ul);
        return false;
    }
    return true;
}

size_t agent_windower_feed(struct agent_windower *w, const struct agent_sample *s,
                           struct nw_window *out, size_t cap, struct nw_error *out_err)
{
    if (cap < AGENT_WINDOWER_MAX_OUT) {
        nw_error_set(out_err, NW_ERR_INVAL, "windower output needs %d slots",
                     AGENT_WINDOWER_MAX_OUT);
        return 0;
    }
    if (!sample_ok(s, out_err)) {
        return 0;
    }
    size_t n = 0;
    int64_t from = s->t_ms;
    if (w->have_prev && s->t_ms > w->prev_t) {
        int64_t gap = s->t_ms - w->prev_t;
        from = gap > AGENT_SAMPLE_MAX_GAP_MS ? s->t_ms - AGENT_SAMPLE_MAX_GAP_MS : w->prev_t;
    }
    /* A clock step back (or a far jump) closes the window it left behind. */
    if (w->cur.open && (from < w->cur.lstart || from >= w->cur.lstart + 2 * w->window_ms)) {
        n += close_window(w, &out[n]);
    }
    if (!w->cur.open) {
        open_at(w, from);
    }
    /* Split (from, t] at window boundaries; each piece to its window. */
    for (;;) {
        int64_t end = w->cur.lstart + w->window_ms;
        int64_t to = s->t_ms < end ? s->t_ms : end;
        accumulate(w, s, (double)(to - from));
        if (to == s->t_ms) {
            break;
        }
        n += close_window(w, &out[n]);
        open_at(w, to);
        from = to;
    }
    w->cur.pigment_ul += s->pigment_ul;
    w->have_prev = true;
    w->prev_t = s->t_ms;
    return n;
}

size_t agent_windower_tick(struct agent_windower *w, int64_t now_ms, int64_t grace_ms,
                           struct nw_window *out)
{
    if (!w->cur.open || now_ms < w->cur.lstart + w->window_ms + grace_ms) {
        return 0;
    }
    return close_window(w, out);
}

size_t agent_windower_flush(struct agent_windower *w, struct nw_window *out)
{
    if (!w->cur.open) {
        return 0;
    }
    return close_window(w, out);
}

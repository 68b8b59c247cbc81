/*
 * sim.c - the needle machine model behind the `sim` source and needlewatch-sim.
 *
 * A small state machine on virtual time. Events of a session boundary are
 * queued in a short FIFO and handed out before the next sample, all at the
 * boundary's time. Randomness is splitmix64 seeded from the seed and the
 * device id, so fleets are reproducible device by device.
 */
#include "sim.h"

#include <needlewatch/hash.h>
#include <needlewatch/clock.h>
#include <needlewatch/validate.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_SAMPLE_MS 100
#define DEFAULT_SESSION_MIN_S (30 * 60)
#define DEFAULT_SESSION_MAX_S (4 * 3600)
#define DEFAULT_GAP_MIN_S (10 * 60)
#define DEFAULT_GAP_MAX_S (60 * 60)
#define BURST_MIN_S 20
#define BURST_MAX_S 120
#define PAUSE_MIN_S 5
#define PAUSE_MAX_S 40
#define RATE_MEAN_HZ 120.0
#define RATE_SD_HZ 1.5
#define DEPTH_MEAN_MM 0.37
#define DEPTH_SD_MM 0.015
#define PIGMENT_PER_CYCLE_UL 0.0012
#define FAULT_RATE_HZ 152.0
#define FAULT_UNSTABLE_SWING_HZ 12.0
#define FAULT_DEPTH_MM 0.62
#define FAULT_PIGMENT_FACTOR 5.0
#define SHARED_CARTRIDGE "CRT-SHARED-0001"
#define PENDING_MAX 6 /* a session start (3) and a fault-end event or two */

enum phase { PHASE_IDLE, PHASE_RUN, PHASE_PAUSE };

struct agent_sim {
    struct agent_sim_options opt;
    char device_id[NW_DEVICE_ID_MAX + 1];
    uint64_t rng;
    int64_t t; /* virtual time of the next item */
    enum phase phase;
    int64_t phase_end;   /* when the current burst, pause or gap ends */
    int64_t session_end; /* 0 outside a session */
    unsigned session_no;
    bool reuse_done;
    bool reuse_next;                 /* the next session re-inserts the previous cartridge */
    int64_t reuse_end;               /* the re-inserting session ends then (START + LEN) */
    bool done[AGENT_SIM_MAX_FAULTS]; /* one-shot actions at a fault's end */
    char session_id[NW_ID_MAX + 1];
    char cartridge_id[NW_ID_MAX + 1];
    char prev_cartridge[NW_ID_MAX + 1];
    char pigment_lot[NW_ID_MAX + 1];
    struct nw_event pending[PENDING_MAX];
    size_t npending, pending_at;
    bool swing; /* alternates the unstable-rate fault */
};

static const char *const fault_names[AGENT_FAULT__COUNT] = {
    [AGENT_FAULT_RATE_OUT_OF_SPEC] = "needle_rate_out_of_spec",
    [AGENT_FAULT_RATE_UNSTABLE] = "needle_rate_unstable",
    [AGENT_FAULT_DEPTH_OUT_OF_SPEC] = "needle_depth_out_of_spec",
    [AGENT_FAULT_PIGMENT_OVERUSE] = "pigment_overuse",
    [AGENT_FAULT_CARTRIDGE_REUSE] = "cartridge_reuse",
    [AGENT_FAULT_CARTRIDGE_WORN] = "cartridge_worn",
    [AGENT_FAULT_DEVICE_OFFLINE] = "device_offline",
    [AGENT_FAULT_DATA_GAP] = "data_gap",
    [AGENT_FAULT_UNKNOWN_DEVICE] = "unknown_device",
    [AGENT_FAULT_MAINTENANCE_DUE] = "maintenance_due",
};

const char *agent_fault_name(enum agent_fault_kind kind)
{
    return (unsigned)kind < AGENT_FAULT__COUNT ? fault_names[kind] : NULL;
}

enum agent_fault_kind agent_fault_from_name(const char *name)
{
    for (int k = 1; k < AGENT_FAULT__COUNT; k++) {
        if (strcmp(name, fault_names[k]) == 0) {
            return (enum agent_fault_kind)k;
        }
    }
    return AGENT_FAULT_NONE;
}

/* ---- randomness ------------------------------------------------------- */

static uint64_t next_u64(struct agent_sim *s)
{
    uint64_t z = (s->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double uniform(struct agent_sim *s)
{
    return (double)(next_u64(s) >> 11) / 9007199254740992.0;
}

static int64_t between_s(struct agent_sim *s, uint32_t lo, uint32_t hi)
{
    return ((int64_t)lo + (int64_t)(uniform(s) * (hi - lo + 1))) * 1000;
}

static double normal(struct agent_sim *s, double mean, double sd)
{
    double u1 = uniform(s), u2 = uniform(s);
    if (u1 < 1e-300) {
        u1 = 1e-300;
    }
    return mean + sd * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* ---- lifecycle -------------------------------------------------------- */

struct agent_sim *agent_sim_new(const struct agent_sim_options *opt)
{
    struct agent_sim *s = calloc(1, sizeof(*s));
    if (!s) {
        return NULL;
    }
    s->opt = *opt;
    snprintf(s->device_id, sizeof(s->device_id), "%s", opt->device_id ? opt->device_id : "sim");
    s->opt.device_id = s->device_id;
    s->opt.sample_ms = opt->sample_ms ? opt->sample_ms : DEFAULT_SAMPLE_MS;
    s->opt.session_min_s = opt->session_min_s ? opt->session_min_s : DEFAULT_SESSION_MIN_S;
    s->opt.session_max_s = opt->session_max_s ? opt->session_max_s : DEFAULT_SESSION_MAX_S;
    s->opt.gap_min_s = opt->gap_min_s ? opt->gap_min_s : DEFAULT_GAP_MIN_S;
    s->opt.gap_max_s = opt->gap_max_s ? opt->gap_max_s : DEFAULT_GAP_MAX_S;
    if (s->opt.session_max_s < s->opt.session_min_s) {
        s->opt.session_max_s = s->opt.session_min_s;
    }
    if (s->opt.gap_max_s < s->opt.gap_min_s) {
        s->opt.gap_max_s = s->opt.gap_min_s;
    }
    s->rng = opt->seed ^ nw_hash_str(s->device_id);
    s->t = opt->start_ms;
    s->phase = PHASE_IDLE;
    s->phase_end =
        opt->start_in_session ? opt->start_ms : opt->start_ms + between_s(s, 0, s->opt.gap_max_s);
    return s;
}

void agent_sim_destroy(struct agent_sim **p)
{
    if (p && *p) {
        free(*p);
        *p = NULL;
    }
}

bool agent_sim_fault_active(const struct agent_sim *s, enum agent_fault_kind kind, int64_t t_ms)
{
    int64_t rel = t_ms - s->opt.start_ms;
    for (size_t i = 0; i < s->opt.nfaults; i++) {
        const struct agent_fault *f = &s->opt.faults[i];
        if (f->kind == kind && rel >= f->start_ms && rel < f->start_ms + f->len_ms) {
            return true;
        }
    }
    return false;
}

/* Faults that change the needle signal: a session is kept open (or
 * opened) over them, so they hold for their whole LEN. */
static bool is_signal_fault(enum agent_fault_kind kind)
{
    return kind == AGENT_FAULT_RATE_OUT_OF_SPEC || kind == AGENT_FAULT_RATE_UNSTABLE ||
           kind == AGENT_FAULT_DEPTH_OUT_OF_SPEC || kind == AGENT_FAULT_PIGMENT_OVERUSE ||
           kind == AGENT_FAULT_CARTRIDGE_WORN;
}

static int64_t fault_start(const struct agent_sim *s, const struct agent_fault *f)
{
    return s->opt.start_ms + f->start_ms;
}

static int64_t fault_end(const struct agent_sim *s, const struct agent_fault *f)
{
    return s->opt.start_ms + f->start_ms + (f->len_ms > 0 ? f->len_ms : 0);
}

/* The latest end of the signal faults active at t; 0 when none is. */
static int64_t signal_fault_until(const struct agent_sim *s, int64_t t)
{
    int64_t until = 0;
    for (size_t i = 0; i < s->opt.nfaults; i++) {
        const struct agent_fault *f = &s->opt.faults[i];
        if (is_signal_fault(f->kind) && agent_sim_fault_active(s, f->kind, t) &&
            fault_end(s, f) > until) {
            until = fault_end(s, f);
        }
    }
    return until;
}

/* The earliest time >= t at which an idle machine has something to do
 * because of a fault: a signal or reuse fault starts (or holds), a
 * maintenance event is due. INT64_MAX when none. */
static int64_t idle_wake(const struct agent_sim *s, int64_t t)
{
    int64_t best = INT64_MAX;
    for (size_t i = 0; i < s->opt.nfaults; i++) {
        const struct agent_fault *f = &s->opt.faults[i];
        int64_t a = fault_start(s, f), e = fault_end(s, f), cand = INT64_MAX;
        if ((is_signal_fault(f->kind) ||
             (f->kind == AGENT_FAULT_CARTRIDGE_REUSE && !s->reuse_done)) &&
            f->len_ms > 0 && e > t) {
            cand = a > t ? a : t;
        } else if (f->kind == AGENT_FAULT_MAINTENANCE_DUE && !s->done[i]) {
            cand = e > t ? e : t;
        }
        best = cand < best ? cand : best;
    }
    return best;
}

/* ---- events ----------------------------------------------------------- */

/* Callers make sure there is room (PENDING_MAX). */
static struct nw_event *push_event(struct agent_sim *s, enum nw_event_kind kind, int64_t t)
{
    struct nw_event *e = &s->pending[s->npending++];
    memset(e, 0, sizeof(*e));
    e->kind = kind;
    e->time_ms = t;
    return e;
}

static void new_cartridge_id(struct agent_sim *s)
{
    snprintf(s->cartridge_id, sizeof(s->cartridge_id), "CRT-%012llx",
             (unsigned long long)(next_u64(s) & 0xffffffffffffULL));
}

static void push_inserted(struct agent_sim *s, int64_t t)
{
    struct nw_event *e = push_event(s, NW_EVENT_CARTRIDGE_INSERTED, t);
    snprintf(e->cartridge_id, sizeof(e->cartridge_id), "%s", s->cartridge_id);
    snprintf(e->needle_config, sizeof(e->needle_config), "3RL");
    snprintf(e->lot, sizeof(e->lot), "CL-%04u", (unsigned)(next_u64(s) % 100));
}

static void begin_session(struct agent_sim *s, int64_t t, bool reuse)
{
    s->session_no++;
    snprintf(s->session_id, sizeof(s->session_id), "s-%016llx", (unsigned long long)next_u64(s));
    memcpy(s->prev_cartridge, s->cartridge_id, sizeof(s->prev_cartridge));
    if (reuse) {
        snprintf(s->cartridge_id, sizeof(s->cartridge_id), "%s",
                 s->prev_cartridge[0] ? s->prev_cartridge : SHARED_CARTRIDGE);
    } else {
        new_cartridge_id(s);
    }
    snprintf(s->pigment_lot, sizeof(s->pigment_lot), "PL-%04u", (unsigned)(next_u64(s) % 40));
    struct nw_event *e = push_event(s, NW_EVENT_SESSION_START, t);
    snprintf(e->session_id, sizeof(e->session_id), "%s", s->session_id);
    snprintf(e->operator_code, sizeof(e->operator_code), "OP-%02u", (unsigned)(next_u64(s) % 12));
    push_inserted(s, t);
    e = push_event(s, NW_EVENT_PIGMENT_LOADED, t);
    snprintf(e->lot, sizeof(e->lot), "%s", s->pigment_lot);
    snprintf(e->shade, sizeof(e->shade), "Charcoal %u", (unsigned)(next_u64(s) % 6) + 1);
    e->volume_ul = 1500.0;
    s->session_end = t + between_s(s, s->opt.session_min_s, s->opt.session_max_s);
    s->phase = PHASE_RUN;
    s->phase_end = t + between_s(s, BURST_MIN_S, BURST_MAX_S);
}

static void end_session(struct agent_sim *s, int64_t t)
{
    struct nw_event *e = push_event(s, NW_EVENT_CARTRIDGE_REMOVED, t);
    snprintf(e->cartridge_id, sizeof(e->cartridge_id), "%s", s->cartridge_id);
    e = push_event(s, NW_EVENT_SESSION_END, t);
    snprintf(e->session_id, sizeof(e->session_id), "%s", s->session_id);
    e->end_reason = NW_SESSION_END_NORMAL;
    s->session_end = 0;
    s->session_id[0] = '\0';
    s->phase = PHASE_IDLE;
    s->phase_end = t + between_s(s, s->opt.gap_min_s, s->opt.gap_max_s);
}

/* One-shot events at a fault's end: the maintenance that resets the
 * service counter; a worn cartridge replaced in a session that goes on
 * (a session that ends removes it anyway). keep: queue slots left for the
 * caller's own events. Stamped at the fault's end, the first step at or
 * after it; one that found no room goes at the next step, stamped then. */
static void fault_end_events(struct agent_sim *s, int64_t t, size_t keep)
{
    for (size_t i = 0; i < s->opt.nfaults; i++) {
        const struct agent_fault *f = &s->opt.faults[i];
        int64_t e = fault_end(s, f);
        if (s->done[i] || t < e || s->npending + keep + 2 > PENDING_MAX) {
            continue;
        }
        int64_t at = t - e < (int64_t)s->opt.sample_ms ? e : t;
        if (f->kind == AGENT_FAULT_MAINTENANCE_DUE) {
            s->done[i] = true;
            struct nw_event *ev = push_event(s, NW_EVENT_MAINTENANCE, at);
            snprintf(ev->action, sizeof(ev->action), "service");
            ev->resets_service = true;
        } else if (f->kind == AGENT_FAULT_CARTRIDGE_WORN && s->session_end && t < s->session_end) {
            s->done[i] = true;
            struct nw_event *ev = push_event(s, NW_EVENT_CARTRIDGE_REMOVED, t);
            snprintf(ev->cartridge_id, sizeof(ev->cartridge_id), "%s", s->cartridge_id);
            new_cartridge_id(s);
            push_inserted(s, t);
        }
    }
}

/* Moves the state machine to time t, queueing boundary events. Called
 * only when every queued event has been handed out. */
static void advance(struct agent_sim *s, int64_t t)
{
    s->npending = s->pending_at = 0;
    if (!s->reuse_done && agent_sim_fault_active(s, AGENT_FAULT_CARTRIDGE_REUSE, t)) {
        s->reuse_done = s->reuse_next = true;
        for (size_t i = 0; i < s->opt.nfaults; i++) {
            if (s->opt.faults[i].kind == AGENT_FAULT_CARTRIDGE_REUSE &&
                agent_sim_fault_active(s, AGENT_FAULT_CARTRIDGE_REUSE, t)) {
                s->reuse_end = fault_end(s, &s->opt.faults[i]);
                break;
            }
        }
        if (s->session_end) {
            end_session(s, t);
            s->phase_end = t; /* the re-inserting session follows at once */
            return;
        }
        s->phase_end = t;
    }
    if (s->phase == PHASE_IDLE) {
        fault_end_events(s, t, 3);
        if (t >= s->phase_end || signal_fault_until(s, t) > t) {
            bool reuse = s->reuse_next;
            begin_session(s, t, reuse);
            s->reuse_next = false;
            if (reuse) {
                int64_t min_end = t + s->opt.sample_ms;
                s->session_end = s->reuse_end > min_end ? s->reuse_end : min_end;
            }
        }
        return;
    }
    if (t >= s->session_end) {
        int64_t until = signal_fault_until(s, t);
        if (until > t) {
            s->session_end = until; /* a signal fault holds: the session goes on */
        } else {
            fault_end_events(s, t, 2); /* a maintenance due now comes first */
            end_session(s, t);
            for (size_t i = 0; i < s->opt.nfaults; i++) {
                if (s->opt.faults[i].kind == AGENT_FAULT_CARTRIDGE_WORN &&
                    t >= fault_end(s, &s->opt.faults[i])) {
                    s->done[i] = true; /* removed with the session */
                }
            }
            return;
        }
    }
    fault_end_events(s, t, 0);
    if (t >= s->phase_end) {
        bool to_pause = s->phase == PHASE_RUN;
        s->phase = to_pause ? PHASE_PAUSE : PHASE_RUN;
        s->phase_end = t + (to_pause ? between_s(s, PAUSE_MIN_S, PAUSE_MAX_S)
                                     : between_s(s, BURST_MIN_S, BURST_MAX_S));
    }
}

/* ---- samples ---------------------------------------------------------- */

static void make_sample(struct agent_sim *s, int64_t t, struct agent_sample *out)
{
    bool forced = agent_sim_fault_active(s, AGENT_FAULT_RATE_OUT_OF_SPEC, t) ||
                  agent_sim_fault_active(s, AGENT_FAULT_DEPTH_OUT_OF_SPEC, t) ||
                  agent_sim_fault_active(s, AGENT_FAULT_CARTRIDGE_WORN, t) ||
                  agent_sim_fault_active(s, AGENT_FAULT_RATE_UNSTABLE, t);
    bool running = s->phase == PHASE_RUN || forced;
    out->t_ms = t;
    out->rate_hz = 0;
    out->depth_mm = 0;
    out->pigment_ul = 0;
    if (!running) {
        return;
    }
    double rate = normal(s, RATE_MEAN_HZ, RATE_SD_HZ);
    if (agent_sim_fault_active(s, AGENT_FAULT_RATE_OUT_OF_SPEC, t)) {
        rate = normal(s, FAULT_RATE_HZ, 0.5);
    }
    if (agent_sim_fault_active(s, AGENT_FAULT_RATE_UNSTABLE, t)) {
        s->swing = !s->swing;
        rate = RATE_MEAN_HZ + (s->swing ? FAULT_UNSTABLE_SWING_HZ : -FAULT_UNSTABLE_SWING_HZ);
    }
    double depth = normal(s, DEPTH_MEAN_MM, DEPTH_SD_MM);
    if (agent_sim_fault_active(s, AGENT_FAULT_DEPTH_OUT_OF_SPEC, t)) {
        depth = normal(s, FAULT_DEPTH_MM, 0.005);
    }
    double per_cycle = PIGMENT_PER_CYCLE_UL * normal(s, 1.0, 0.05);
    if (agent_sim_fault_active(s, AGENT_FAULT_PIGMENT_OVERUSE, t)) {
        per_cycle *= FAULT_PIGMENT_FACTOR;
    }
    out->rate_hz = rate > 0 ? rate : 0;
    out->depth_mm = depth > 0 ? depth : 0;
    double cycles = out->rate_hz * s->opt.sample_ms / 1000.0;
    out->pigment_ul = per_cycle > 0 ? per_cycle * cycles : 0;
}

enum agent_input_kind agent_sim_next(struct agent_sim *s, int64_t until_ms, struct agent_input *out)
{
    for (int guard = 0; guard < 4; guard++) {
        if (s->pending_at < s->npending) {
            if (s->pending[s->pending_at].time_ms > until_ms) {
                return out->kind = AGENT_INPUT_NONE;
            }
            out->kind = AGENT_INPUT_EVENT;
            out->event = s->pending[s->pending_at++];
            return out->kind;
        }
        if (s->phase == PHASE_IDLE && s->t < s->phase_end) {
            /* no samples between sessions: on to the next session, or to a
             * fault that cannot wait for it */
            int64_t wake = idle_wake(s, s->t);
            s->t = wake < s->phase_end ? wake : s->phase_end;
        }
        if (s->t > until_ms) {
            return out->kind = AGENT_INPUT_NONE;
        }
        advance(s, s->t);
        if (s->pending_at < s->npending || s->phase == PHASE_IDLE) {
            continue;
        }
        out->kind = AGENT_INPUT_SAMPLE;
        make_sample(s, s->t, &out->sample);
        s->t += s->opt.sample_ms;
        return out->kind;
    }
    return out->kind = AGENT_INPUT_NONE;
}

/* ---- fault specs ------------------------------------------------------ */

static enum nw_err parse_part(const char *part, const char *what, int64_t *out,
                              struct nw_error *out_err)
{
    if (nw_clock_parse_duration_ms(part, out, out_err) != NW_OK || *out < 0) {
        return nw_error_set(out_err, NW_ERR_CONFIG, "--fault: %s \"%s\" is not a duration", what,
                            part);
    }
    return NW_OK;
}

enum nw_err agent_fault_parse(const char *spec, struct agent_fault *out,
                              char out_device[NW_DEVICE_ID_MAX + 1], struct nw_error *out_err)
{
    char buf[256];
    if (snprintf(buf, sizeof(buf), "%s", spec) >= (int)sizeof(buf)) {
        return nw_error_set(out_err, NW_ERR_CONFIG, "--fault: longer than %zu bytes",
                            sizeof(buf) - 1);
    }
    char *at = strchr(buf, '@');
    if (!at) {
        return nw_error_set(out_err, NW_ERR_CONFIG,
                            "--fault \"%s\": expected RULE@DEVICE[:START[:LEN]]", spec);
    }
    *at = '\0';
    out->kind = agent_fault_from_name(buf);
    if (out->kind == AGENT_FAULT_NONE) {
        return nw_error_set(out_err, NW_ERR_CONFIG, "--fault: unknown rule \"%s\"", buf);
    }
    char *dev = at + 1;
    char *start = strchr(dev, ':');
    char *len = NULL;
    if (start) {
        *start++ = '\0';
        len = strchr(start, ':');
        if (len) {
            *len++ = '\0';
        }
    }
    if (!nw_valid_device_id(dev)) {
        return nw_error_set(out_err, NW_ERR_CONFIG,
                            "--fault: device \"%s\" is not 1-64 of [A-Za-z0-9_-]", dev);
    }
    snprintf(out_device, NW_DEVICE_ID_MAX + 1, "%s", dev);
    out->start_ms = 60000;
    /* data_gap without LEN: a seq skipped for good (see sim.h) */
    out->len_ms = out->kind == AGENT_FAULT_DATA_GAP ? AGENT_FAULT_LEN_NONE : 30000;
    if (start && parse_part(start, "START", &out->start_ms, out_err) != NW_OK) {
        return NW_ERR_CONFIG;
    }
    if (len && parse_part(len, "LEN", &out->len_ms, out_err) != NW_OK) {
        return NW_ERR_CONFIG;
    }
    return NW_OK;
}

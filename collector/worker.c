/*
 * worker.c - per-device state, points out, watermarks and ack requests.
 *
 * Device state lives in an open-addressing table of pointers sized for
 * max_devices at a load factor of 1/2; each device is allocated once on
 * first sight, so memory follows the devices actually seen.
 */
#include "worker.h"

#include "ackstate.h"
#include "cartidx.h"
#include "metrics.h"
#include "pipeline.h"
#include "seqtrack.h"

#include <needlewatch/hash.h>
#include <needlewatch/clock.h>
#include <needlewatch/codec.h>
#include <needlewatch/log.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <zmq.h>

#define DEFAULT_MAX_DEVICES 100000
#define POLL_MS 100
#define INPUT_PER_TURN 256          /* input messages per loop turn, between polls */
#define COALESCE_BELOW 16           /* a turn with fewer input messages pauses (coalesce_ms) */
#define PERSIST_EVERY_MS 200        /* = the default ack interval: one fsync per ack round */
#define RULES_PERSIST_EVERY_MS 1000 /* rule state without transitions */
#define TICK_MS 1000                /* offline timeouts, gaps, session ends, re-notify */
#define NOTES_MAX 256               /* transitions of one message awaiting notification */
#define SILENCES_MAX 256
#define ALERT_LOG_PER_S 20 /* alert log lines per worker per second; the rest summarised */

struct wdev {
    char id[NW_DEVICE_ID_MAX + 1];
    uint64_t epoch;
    bool have_epoch;
    struct nw_seqtrack w, e; /* watermarks of windows and events */
    char clinic[NW_CLINIC_MAX + 1];
    char model[NW_VERSION_MAX + 1];
    const struct nw_model_spec *spec;
    bool unknown;
    bool fresh_w, fresh_e; /* no watermark known yet for this epoch */
    bool dirty;            /* watermark moved; to persist, then ack */
    bool rdirty;           /* rule state changed; to persist */
    struct rules_dev rd;
};

struct worker {
    struct worker_options opt;
    atomic_bool quiesced; /* stopping, and every point it made is sent to the writer */
    void *in, *writer, *settle, *acks, *control, *control_ack;
    struct nw_codec *codec;
    struct wdev **table;
    size_t nslots, ndevices;
    uint64_t table_full;
    struct nw_window *windows;
    struct nw_event *events;
    struct nw_point *points; /* for the writer, sent once per loop turn */
    size_t npts, pcap;
    uint8_t *rejected_mask;
    size_t cap;
    struct ackstate *state;
    struct nw_logonce *lost_log; /* one line per minute, not per message */
    bool bad_batch_logged;       /* a malformed input batch is logged once */
    bool bad_record_logged;      /* and so is a malformed record */
    struct wdev **dirty;
    size_t ndirty;
    int64_t persisted_at;
    bool persist_failing;
    /* alerts */
    struct alertstate *ast;
    struct cartidx *cx;
    void *notify, *ops;
    struct rules_pigstat pig[NW_MAX_MODELS];
    struct rules_out out;
    struct nw_alert notes[NOTES_MAX];
    size_t nnotes;
    struct wdev **rdirty;
    size_t nrdirty;
    int64_t rules_persisted_at, next_tick;
    bool rules_failing;
    struct alert_silence silences[SILENCES_MAX];
    size_t nsilences;
    int64_t log_second;
    unsigned logged, unlogged;
};

const struct nw_model_spec *worker_spec_for(const struct nw_model_spec *specs, size_t n,
                                            const char *model)
{
    for (size_t i = 1; i < n; i++) {
        if (strcmp(specs[i].model, model) == 0) {
            return &specs[i];
        }
    }
    return &specs[0];
}

/* ---- devices ----------------------------------------------------------- */

static struct wdev **slot_of(struct worker *w, const char *device)
{
    size_t mask = w->nslots - 1;
    for (size_t i = nw_hash_str(device) & mask, n = 0; n < w->nslots; i = (i + 1) & mask, n++) {
        if (!w->table[i] || strcmp(w->table[i]->id, device) == 0) {
            return &w->table[i];
        }
    }
    return NULL;
}

static struct wdev *find(struct worker *w, const char *device)
{
    struct wdev **s = slot_of(w, device);
    return s ? *s : NULL;
}

/* Clinic, model and spec of d from the current inventory. */
static void resolve(struct worker *w, struct wdev *d)
{
    const struct nw_inventory_entry *e = nw_inventory_find(w->opt.inventory, d->id);
    d->unknown = e == NULL;
    snprintf(d->clinic, sizeof(d->clinic), "%s", e ? e->clinic : NW_UNASSIGNED_CLINIC);
    snprintf(d->model, sizeof(d->model), "%s", e ? e->model : NW_UNKNOWN_MODEL);
    d->spec = worker_spec_for(w->opt.specs, w->opt.nspecs, d->model);
}

static struct wdev *device(struct worker *w, const char *id)
{
    struct wdev **s = slot_of(w, id);
    if (s && *s) {
        return *s;
    }
    if (!s || w->ndevices >= w->opt.max_devices || !(*s = calloc(1, sizeof(**s)))) {
        if (w->table_full++ == 0) {
            nw_log(NW_LOG_ERROR, "worker",
                   "worker %d: device table full (%zu): messages of new "
                   "devices dropped until restart with a higher max_devices",
                   w->opt.id, w->opt.max_devices);
        }
        return NULL;
    }
    struct wdev *d = *s;
    w->ndevices++;
    CM_ADD(devices, 1);
    snprintf(d->id, sizeof(d->id), "%s", id);
    rules_dev_init(&d->rd);
    resolve(w, d);
    if (d->unknown) {
        nw_log(NW_LOG_WARN, "worker",
               "device %s is not in the inventory: stored under clinic "
               "\"%s\"",
               id, NW_UNASSIGNED_CLINIC);
    }
    return d;
}

/* A new epoch means the device lost its state: sequences start over. */
static void check_epoch(struct wdev *d, uint64_t epoch)
{
    if (d->have_epoch && d->epoch == epoch) {
        return;
    }
    if (d->have_epoch) {
        nw_log(NW_LOG_NOTICE, "worker",
               "device %s: new epoch %016" PRIx64 " (was %016" PRIx64 "): sequence numbers restart",
               d->id, epoch, d->epoch);
    }
    d->epoch = epoch;
    d->have_epoch = true;
    d->fresh_w = d->fresh_e = true;
    rules_new_epoch(&d->rd);
    nw_seqtrack_reset(&d->w, 0);
    nw_seqtrack_reset(&d->e, 0);
}

/* ---- acks -------------------------------------------------------------- */

static void request_ack(struct worker *w, const struct wdev *d)
{
    struct cp_ack a = {.epoch = d->epoch, .window_seq = d->w.contig, .event_seq = d->e.contig};
    memcpy(a.device, d->id, sizeof(a.device));
    if (zmq_send(w->acks, &a, sizeof(a), ZMQ_DONTWAIT) < 0) {
        CM_ADD(hwm_drops_settle, 1); /* the next settle of this device acks again */
    }
}

/* A first floor only tells where this collector starts: what lies below it
 * was acknowledged before (by an earlier run) or lost, and nobody can tell
 * which. Later floors are counted as loss. */
/* The watermark moved: persist it (persist_dirty), then ack. */
static void mark_dirty(struct worker *w, struct wdev *d)
{
    if (!d->dirty) {
        d->dirty = true;
        w->dirty[w->ndirty++] = d;
    }
}

static bool apply_floor(struct worker *w, struct wdev *d, struct nw_seqtrack *t, bool *fresh,
                        uint64_t floor)
{
    uint64_t before = t->contig;
    uint64_t lost = floor ? nw_seqtrack_floor(t, floor) : 0;
    bool first = *fresh;
    *fresh = false;
    if (lost && !first) {
        CM_ADD(seqs_lost, lost);
        nw_logonce_hit(w->lost_log, 0,
                       "device %s: %" PRIu64 " seqs below %" PRIu64
                       " are lost on the device (its queue no longer holds them)",
                       d->id, lost, floor);
    }
    return t->contig != before;
}

static void settle(struct worker *w, const struct cp_ref *refs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct wdev *d = find(w, refs[i].device);
        if (!d || (d->epoch & INT64_MAX) != refs[i].epoch) {
            continue; /* the device moved to a new epoch meanwhile */
        }
        struct nw_seqtrack *t = refs[i].type == CP_WINDOWS ? &d->w : &d->e;
        if (nw_seqtrack_settle(t, refs[i].seq)) {
            mark_dirty(w, d); /* once per device until persisted: a flag */
        }
    }
}

/* ---- points ------------------------------------------------------------ */

static void fill_tags(const struct wdev *d, struct nw_point *p, enum nw_point_kind kind)
{
    p->kind = kind;
    memcpy(p->device, d->id, sizeof(p->device));
    memcpy(p->clinic, d->clinic, sizeof(p->clinic));
    memcpy(p->model, d->model, sizeof(p->model));
    /* Stores keep signed 64-bit integers; agents draw 63-bit epochs, and a
     * foreign sender's top bit is folded away rather than refused. */
    p->epoch = d->epoch & INT64_MAX;
}

static bool in_range(double v, const struct nw_cfg_range *r)
{
    return v >= r->lo && v <= r->hi;
}

/* In spec: the means of a running window inside the model's windows; an
 * idle window has nothing out of spec. */
static bool window_in_spec(const struct nw_window *win, const struct nw_model_spec *spec)
{
    return win->cycles == 0 || (in_range(win->rate_mean_hz, &spec->rate_hz) &&
                                in_range(win->depth_mean_mm, &spec->depth_mm));
}

/* Points go to the writer in one message per loop turn, not one per input
 * message: a live fleet sends one window per message, and each ZeroMQ
 * message costs both threads more than copying the point. */
static void flush_points(struct worker *w)
{
    size_t n = w->npts;
    w->npts = 0;
    if (n == 0) {
        return;
    }
    struct cp_batch hdr = {.worker = w->opt.id, .npoints = (uint32_t)n};
    if (zmq_send(w->writer, &hdr, sizeof(hdr), ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        CM_ADD(hwm_drops_writer, 1); /* never settled, so never acked */
        CM_ADD(writer_dropped_points, n);
        return;
    }
    zmq_send(w->writer, w->points, n * sizeof(struct nw_point), 0);
}

/* The next point for the writer; sends the full buffer first. */
static struct nw_point *new_point(struct worker *w)
{
    if (w->npts == w->pcap) {
        flush_points(w);
    }
    return &w->points[w->npts++];
}

static void mark_rejected(struct worker *w, const uint8_t *idx, size_t nrej, size_t count)
{
    memset(w->rejected_mask, 0, count);
    for (size_t i = 0; i < nrej; i++) {
        uint32_t k; /* any alignment: the batch came from ZeroMQ */
        memcpy(&k, idx + i * sizeof(k), sizeof(k));
        if (k < count) {
            w->rejected_mask[k] = 1;
        }
    }
}

/* ---- alerts (rules.h) ---------------------------------------------------- */

static bool cart_check(void *user, const char *cartridge, const char *device, const char *session,
                       int64_t time_ms, char *out_where, size_t where_cap)
{
    return cartidx_check(user, cartridge, device, session, time_ms, out_where, where_cap);
}

static void ctx_of(struct worker *w, struct wdev *d, struct rules_ctx *c)
{
    memset(c, 0, sizeof(*c));
    c->cfg = w->opt.rules;
    c->spec = d->spec;
    c->device = d->id;
    c->clinic = d->clinic;
    c->model = d->model;
    c->pig = &w->pig[(size_t)(d->spec - w->opt.specs) % NW_MAX_MODELS];
    c->cart = w->cx ? cart_check : NULL;
    c->cart_user = w->cx;
    c->now_ms = nw_clock_realtime_ms();
    c->stored_contig = d->w.contig;
}

static void mark_rdirty(struct worker *w, struct wdev *d)
{
    if (!d->rdirty) {
        d->rdirty = true;
        w->rdirty[w->nrdirty++] = d;
    }
}

static void count_transition(const struct nw_alert *a)
{
    switch (a->state) {
    case NW_ALERT_FIRING:
        CM_ADD(alerts_fired, 1);
        CM_ADD(alerts_open, 1);
        break;
    case NW_ALERT_RESOLVED:
        CM_ADD(alerts_resolved, 1);
        atomic_fetch_sub_explicit(&cm.alerts_open, 1, memory_order_relaxed);
        break;
    case NW_ALERT_ACKNOWLEDGED:
        CM_ADD(alerts_acked, 1);
        break;
    default:
        CM_ADD(alerts_renotified, 1);
        break;
    }
}

/* The rules' outputs for device d: points to the writer now, notifications
 * after the rule state is committed (flush_notes). */
static void take_out(struct worker *w, struct wdev *d)
{
    struct rules_out *o = &w->out;
    if (o->nalerts == 0 && o->nsessions == 0 && o->overflow == 0) {
        return; /* the common case: nothing changed */
    }
    if (o->overflow) {
        CM_ADD(alerts_overflow, o->overflow);
    }
    for (size_t i = 0; i < o->nalerts; i++) {
        const struct nw_alert *a = &o->alerts[i];
        count_transition(a);
        if (w->opt.registry) {
            alertreg_apply(w->opt.registry, a);
        }
        struct nw_point *p = new_point(w);
        fill_tags(d, p, NW_POINT_ALERT);
        p->u.alert = *a;
        if (w->nnotes < NOTES_MAX) {
            w->notes[w->nnotes++] = *a;
        } else {
            CM_ADD(alerts_notify_drops, 1);
        }
    }
    for (size_t i = 0; i < o->nsessions; i++) {
        struct nw_point *p = new_point(w);
        fill_tags(d, p, NW_POINT_SESSION);
        p->u.session = o->sessions[i];
        CM_ADD(sessions_written, 1);
    }
    mark_rdirty(w, d);             /* something changed: see the early return */
    o->nalerts = o->nsessions = 0; /* the arrays are rewritten before use: no memset */
    o->overflow = 0;
}

/* Unknown devices raise unknown_device; an inventory that lists them
 * resolves it. */
static void check_known(struct worker *w, struct wdev *d)
{
    if (w->opt.rules && d->unknown != (d->rd.r[RULE_UNKNOWN].alert_id != 0)) {
        struct rules_ctx c;
        ctx_of(w, d, &c);
        rules_on_inventory(&d->rd, &c, !d->unknown, &w->out);
        take_out(w, d);
    }
}

static void persist_rules(struct worker *w)
{
    if (!w->ast || w->nrdirty == 0) {
        w->nrdirty = 0;
        return;
    }
    struct nw_error err = {0};
    enum nw_err rc = alertstate_begin(w->ast, &err);
    for (size_t i = 0; rc == NW_OK && i < w->nrdirty; i++) {
        rc = alertstate_put(w->ast, w->rdirty[i]->id, &w->rdirty[i]->rd, sizeof(struct rules_dev),
                            &err);
    }
    rc = rc == NW_OK ? alertstate_commit(w->ast, &err) : rc;
    if (rc != NW_OK) {
        alertstate_rollback(w->ast);
        CM_ADD(alert_state_errors, 1);
        if (!w->rules_failing) {
            nw_log(NW_LOG_ERROR, "worker", "worker %d: %s; a restart may notify again", w->opt.id,
                   err.msg);
        }
        w->rules_failing = true;
        return; /* stays dirty: retried at the next persist */
    }
    if (w->rules_failing) {
        nw_log(NW_LOG_NOTICE, "worker", "worker %d: alert state writable again", w->opt.id);
        w->rules_failing = false;
    }
    for (size_t i = 0; i < w->nrdirty; i++) {
        w->rdirty[i]->rdirty = false;
    }
    w->nrdirty = 0;
    w->rules_persisted_at = nw_clock_mono_ms();
}

/* One line per firing and resolved (a state change, not a message), at most
 * ALERT_LOG_PER_S a second: a storm is summarised, never floods the log. */
static void log_alert(struct worker *w, const struct nw_alert *a)
{
    int64_t sec = nw_clock_mono_ms() / 1000;
    if (sec != w->log_second) {
        if (w->unlogged) {
            nw_log(NW_LOG_NOTICE, "alert", "%u more alert changes not logged (see /alerts)",
                   w->unlogged);
        }
        w->log_second = sec;
        w->logged = w->unlogged = 0;
    }
    if (a->state != NW_ALERT_FIRING && a->state != NW_ALERT_RESOLVED) {
        return;
    }
    if (w->logged++ >= ALERT_LOG_PER_S) {
        w->unlogged++;
        return;
    }
    nw_log(NW_LOG_NOTICE, "alert", "alert %s: %s on %s (%s): %s%s [%s, id %llu]",
           nw_alert_state_name(a->state), a->rule, a->device_id, a->clinic, a->message,
           a->late ? " (late)" : "", nw_severity_name(a->severity),
           (unsigned long long)a->alert_id);
}

static bool silenced(struct worker *w, const struct nw_alert *a, int64_t now)
{
    for (size_t i = 0; i < w->nsilences; i++) {
        const struct alert_silence *s = &w->silences[i];
        if (s->until_ms > now && (!s->device[0] || !strcmp(s->device, a->device_id)) &&
            (!s->rule[0] || !strcmp(s->rule, a->rule))) {
            return true;
        }
    }
    return false;
}

/* Commit the rule state, then tell the world: a restart never notifies a
 * transition twice (alertstate.h). MQTT goes through ingest's connection. */
static void flush_notes(struct worker *w)
{
    if (w->nnotes == 0) {
        return;
    }
    persist_rules(w);
    int64_t now = nw_clock_realtime_ms();
    for (size_t i = 0; i < w->nnotes; i++) {
        const struct nw_alert *a = &w->notes[i];
        log_alert(w, a);
        if (silenced(w, a, now)) {
            CM_ADD(alerts_silenced, 1);
            continue;
        }
        if (zmq_send(w->acks, a, sizeof(*a), ZMQ_DONTWAIT) < 0) {
            CM_ADD(alerts_notify_drops, 1);
        }
        if (w->notify && zmq_send(w->notify, a, sizeof(*a), ZMQ_DONTWAIT) < 0) {
            CM_ADD(alerts_notify_drops, 1);
        }
    }
    w->nnotes = 0;
}

static void tick(struct worker *w)
{
    int64_t now = nw_clock_mono_ms();
    if (!w->opt.rules || now < w->next_tick) {
        return;
    }
    w->next_tick = now + TICK_MS;
    for (size_t i = 0; i < w->nslots; i++) {
        struct wdev *d = w->table[i];
        if (d) {
            struct rules_ctx c;
            ctx_of(w, d, &c);
            rules_tick(&d->rd, &c, &w->out);
            take_out(w, d);
        }
    }
    flush_notes(w);
    if (now - w->rules_persisted_at >= RULES_PERSIST_EVERY_MS) {
        persist_rules(w);
    }
}

static void on_op(struct worker *w, const struct worker_op *op)
{
    if (op->kind == WORKER_OP_SILENCE) {
        if (w->nsilences == SILENCES_MAX) { /* the oldest goes: it ends first, most often */
            memmove(w->silences, w->silences + 1, (SILENCES_MAX - 1) * sizeof(w->silences[0]));
            w->nsilences--;
        }
        w->silences[w->nsilences++] = op->silence;
        return;
    }
    for (size_t i = 0; op->kind == WORKER_OP_ACK && i < w->nslots; i++) {
        struct wdev *d = w->table[i];
        struct rules_ctx c;
        if (d) {
            ctx_of(w, d, &c);
            if (rules_ack(&d->rd, &c, op->alert_id, &w->out)) {
                take_out(w, d);
                break;
            }
        }
    }
    flush_notes(w);
}

static void recv_op(struct worker *w)
{
    struct worker_op op;
    if (zmq_recv(w->ops, &op, sizeof(op), ZMQ_DONTWAIT) == (int)sizeof(op)) {
        on_op(w, &op);
    }
}

/* The accepted windows or events of one message through the rules, in seq
 * order (agents send them so; a re-send is skipped by the rules). Rejected
 * items are dead letters: not judged. */
static void judge(struct worker *w, struct wdev *d, const struct nw_window *wins,
                  const struct nw_event *evs, size_t count)
{
    if (!w->opt.rules) {
        return;
    }
    check_known(w, d);
    struct rules_ctx c;
    ctx_of(w, d, &c);
    for (size_t i = 0; i < count; i++) {
        if (w->rejected_mask[i]) {
            continue;
        }
        if (wins) {
            rules_on_window(&d->rd, &c, &wins[i], &w->out);
        } else {
            rules_on_event(&d->rd, &c, &evs[i], &w->out);
        }
        if (w->out.nalerts + 2 > RULES_OUT_MAX || w->out.nsessions) {
            take_out(w, d); /* keep room: one window can make several transitions */
        }
    }
    take_out(w, d);
    mark_rdirty(w, d);
    flush_notes(w);
}

/* A record this build's ingest cannot have made (a peer of another build,
 * or a bug): rejected as malformed, never acked, logged once. */
static void bad_record(struct worker *w, const char *why)
{
    CM_ADD(rejected[NW_REASON_MALFORMED], 1);
    if (!w->bad_record_logged) {
        nw_log(NW_LOG_WARN, "worker",
               "an input record was refused as malformed (%s): ingest and aggregate processes "
               "of different builds?",
               why);
        w->bad_record_logged = true;
    }
}

/* Ingest validated the windows it did not reject against now_ms; they are
 * checked again, as cheap as it is, so that bytes from a tcp:// peer never
 * reach the rules unchecked. */
static bool still_valid(struct worker *w, const struct nw_window_batch *b, int64_t now_ms)
{
    if (b->count == 0 || !nw_valid_device_id(b->device_id)) {
        return false;
    }
    for (size_t i = 0; i < b->count; i++) {
        if (i > 0 && b->windows[i].seq <= b->windows[i - 1].seq) {
            return false;
        }
        if (!w->rejected_mask[i] &&
            nw_validate_window(&b->windows[i], &w->opt.limits, now_ms, NULL, NULL) != NW_OK) {
            return false;
        }
    }
    return true;
}

static void on_windows(struct worker *w, const uint8_t *buf, size_t len, int64_t arrival_ms,
                       const uint8_t *rej, size_t nrej)
{
    struct nw_window_batch b = {.windows = w->windows, .capacity = w->cap};
    if (!cp_windows_get(buf, len, &b)) {
        bad_record(w, "window record of the wrong size");
        return;
    }
    mark_rejected(w, rej, nrej, b.count);
    if (!still_valid(w, &b, arrival_ms)) {
        bad_record(w, "windows that do not validate");
        return;
    }
    struct wdev *d = device(w, b.device_id);
    if (!d) {
        return;
    }
    check_epoch(d, b.epoch);
    bool moved = apply_floor(w, d, &d->w, &d->fresh_w, b.queue_floor);
    for (size_t i = 0; i < b.count; i++) {
        if (w->rejected_mask[i]) {
            moved = nw_seqtrack_settle(&d->w, b.windows[i].seq) || moved; /* dead-lettered */
            continue;
        }
        struct nw_point *p = new_point(w);
        fill_tags(d, p, NW_POINT_WINDOW);
        p->u.window.w = b.windows[i];
        p->u.window.in_spec = window_in_spec(&b.windows[i], d->spec);
    }
    if (moved) {
        mark_dirty(w, d);
    }
    judge(w, d, b.windows, NULL, b.count);
}

static void on_events(struct worker *w, const uint8_t *buf, size_t len, const uint8_t *rej,
                      size_t nrej)
{
    struct nw_event_batch b = {.events = w->events, .capacity = w->cap};
    if (nw_codec_decode_events(w->codec, buf, len, &b, NULL, NULL) != NW_OK) {
        return;
    }
    struct wdev *d = device(w, b.device_id);
    if (!d) {
        return;
    }
    check_epoch(d, b.epoch);
    bool moved = apply_floor(w, d, &d->e, &d->fresh_e, b.queue_floor);
    mark_rejected(w, rej, nrej, b.count);
    for (size_t i = 0; i < b.count; i++) {
        if (w->rejected_mask[i]) {
            moved = nw_seqtrack_settle(&d->e, b.events[i].seq) || moved;
            continue;
        }
        struct nw_point *p = new_point(w);
        fill_tags(d, p, NW_POINT_EVENT);
        p->u.event = b.events[i];
    }
    if (moved) {
        mark_dirty(w, d);
    }
    judge(w, d, NULL, b.events, b.count);
}

static void on_status(struct worker *w, const uint8_t *buf, size_t len)
{
    struct nw_status s;
    if (nw_codec_decode_status(w->codec, buf, len, &s, NULL, NULL) != NW_OK) {
        return;
    }
    struct wdev *d = device(w, s.device_id);
    if (!d) {
        return;
    }
    if (s.state == NW_DEVICE_OFFLINE) {
        s.time_ms = nw_clock_realtime_ms(); /* see ingest: a will is old */
    }
    struct nw_point *p = new_point(w);
    fill_tags(d, p, NW_POINT_STATUS);
    p->epoch = s.epoch & INT64_MAX;
    p->u.status = s;
    p->u.status.epoch &= INT64_MAX;
    if (w->opt.rules) {
        struct rules_ctx c;
        ctx_of(w, d, &c);
        check_known(w, d);
        rules_on_status(&d->rd, &c, &s, &w->out);
        take_out(w, d);
        mark_rdirty(w, d);
        flush_notes(w);
    }
}

/* ---- the loop ---------------------------------------------------------- */

/* Takes one input batch (pipeline.h); the number of MQTT messages in it,
 * -1 when none was waiting. A record that would run past the end (a batch
 * from a different build over tcp://) ends the batch. */
static int recv_input(struct worker *w)
{
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, w->in, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&m);
        return -1;
    }
    const uint8_t *p = zmq_msg_data(&m), *payload, *rej;
    size_t size = zmq_msg_size(&m), at = sizeof(struct cp_in_batch);
    struct cp_in_batch b = {0};
    if (size >= sizeof(b)) {
        memcpy(&b, p, sizeof(b));
    }
    struct cp_in hdr;
    uint32_t done = 0;
    for (; done < b.nmsgs && cp_in_next(p, size, &at, &hdr, &payload, &rej); done++) {
        if (hdr.type == CP_WINDOWS) {
            on_windows(w, payload, hdr.len, hdr.arrival_ms, rej, hdr.nrejected);
        } else if (hdr.type == CP_EVENTS) {
            on_events(w, payload, hdr.len, rej, hdr.nrejected);
        } else if (hdr.type == CP_STATUS) {
            on_status(w, payload, hdr.len);
        }
    }
    zmq_msg_close(&m);
    if (done < b.nmsgs) { /* never acked: their agents re-send them */
        CM_ADD(rejected[NW_REASON_MALFORMED], b.nmsgs - done);
        if (!w->bad_batch_logged) {
            nw_log(NW_LOG_WARN, "worker",
                   "an input batch ends after %u of its %u messages (ingest and aggregate "
                   "processes of different builds?): the rest rejected as malformed",
                   done, b.nmsgs);
            w->bad_batch_logged = true;
        }
    }
    return (int)done;
}

/* Takes one settle message; false when none was waiting. */
static bool recv_settle(struct worker *w)
{
    zmq_msg_t m;
    zmq_msg_init(&m);
    bool ok = zmq_msg_recv(&m, w->settle, ZMQ_DONTWAIT) >= 0;
    if (ok) {
        settle(w, zmq_msg_data(&m), zmq_msg_size(&m) / sizeof(struct cp_ref));
    }
    zmq_msg_close(&m);
    return ok;
}

/* Writes the moved watermarks, then asks for their acks: an ack is never
 * sent for a watermark a restart could forget. */
static void persist_dirty(struct worker *w, bool force)
{
    int64_t now = nw_clock_mono_ms();
    if (w->ndirty == 0 || (!force && now - w->persisted_at < PERSIST_EVERY_MS)) {
        return;
    }
    w->persisted_at = now;
    struct nw_error err = {0};
    enum nw_err rc = w->state ? ackstate_begin(w->state, &err) : NW_OK;
    for (size_t i = 0; rc == NW_OK && w->state && i < w->ndirty; i++) {
        const struct wdev *d = w->dirty[i];
        rc = ackstate_put(w->state, d->id, d->epoch, d->w.contig, d->e.contig, &err);
    }
    if (rc == NW_OK && w->state) {
        rc = ackstate_commit(w->state, &err);
    }
    if (rc != NW_OK) {
        ackstate_rollback(w->state);
        if (!w->persist_failing) {
            nw_log(NW_LOG_ERROR, "worker", "worker %d: %s; acks wait", w->opt.id, err.msg);
        }
        w->persist_failing = true;
        return;
    }
    if (w->persist_failing) {
        nw_log(NW_LOG_NOTICE, "worker", "worker %d: ack state writable again", w->opt.id);
        w->persist_failing = false;
    }
    for (size_t i = 0; i < w->ndirty; i++) {
        w->dirty[i]->dirty = false;
        request_ack(w, w->dirty[i]);
    }
    w->ndirty = 0;
}

/* A new inventory: every known device takes its new clinic and model. */
static void recv_control(struct worker *w)
{
    struct worker_control c;
    if (zmq_recv(w->control, &c, sizeof(c), ZMQ_DONTWAIT) != (int)sizeof(c)) {
        return;
    }
    w->opt.inventory = c.inventory;
    for (size_t i = 0; i < w->nslots; i++) {
        if (w->table[i]) {
            resolve(w, w->table[i]);
            check_known(w, w->table[i]);
        }
    }
    flush_notes(w);
    int done = w->opt.id;
    zmq_send(w->control_ack, &done, sizeof(done), 0);
}

bool worker_quiesced(struct worker *w)
{
    return atomic_load(&w->quiesced);
}

void worker_run(struct worker *w, volatile sig_atomic_t *stop, volatile sig_atomic_t *drained)
{
    char name[16];
    snprintf(name, sizeof(name), "nw-worker-%d", w->opt.id % 100000);
    prctl(PR_SET_NAME, name, 0, 0, 0); /* top -H, perf */
    zmq_pollitem_t items[4] = {{.socket = w->settle, .events = ZMQ_POLLIN},
                               {.socket = w->control, .events = ZMQ_POLLIN},
                               {.socket = w->in, .events = ZMQ_POLLIN},
                               {.socket = w->ops, .events = ZMQ_POLLIN}};
    if (w->ops) { /* operator commands are polled before input, ahead of the flood */
        zmq_pollitem_t t = items[2];
        items[2] = items[3];
        items[3] = t;
    }
    int nin = w->ops ? 4 : 3;
    while (!*drained) {
        bool stopping = *stop;
        int n = stopping ? 2 : nin; /* stopping: settle what is stored, take nothing new */
        persist_dirty(w, false);
        if (!stopping) {
            tick(w); /* no new transitions once stopping: their points could miss the writer */
        }
        nw_logonce_flush(w->lost_log, false);
        flush_points(w); /* what tick, control or an operator's ack made, before waiting */
        if (stopping) {
            atomic_store(&w->quiesced, true); /* every point made is with the writer */
        }
        if (zmq_poll(items, n, w->ndirty ? PERSIST_EVERY_MS : POLL_MS) <= 0) {
            continue;
        }
        if (items[1].revents & ZMQ_POLLIN) {
            recv_control(w);
        }
        if (w->ops && n > 2 && (items[2].revents & ZMQ_POLLIN)) {
            recv_op(w);
        }
        for (int i = 0; i < 256 && (items[0].revents & ZMQ_POLLIN) && recv_settle(w); i++) {
        }
        zmq_pollitem_t *input = &items[w->ops ? 3 : 2];
        int got = 0, k = 0;
        while (got < INPUT_PER_TURN && n > 2 && (input->revents & ZMQ_POLLIN) &&
               (k = recv_input(w)) >= 0) {
            got += k;
        }
        flush_points(w);
        /* As ingest does: a turn that emptied the queue after a few
         * messages waits for more, so the writer gets one message of points
         * per pause instead of one per input message. */
        if (w->opt.coalesce_ms > 0 && got > 0 && got < COALESCE_BELOW) {
            struct timespec pause = {.tv_nsec = (long)(w->opt.coalesce_ms * 1000000)};
            nanosleep(&pause, NULL);
        }
    }
    flush_points(w);
    persist_rules(w);
    persist_dirty(w, true);
    nw_logonce_flush(w->lost_log, true);
}

/* Devices of this worker from the ack state: their watermarks go on. */
static void load_row(void *user, const char *id, uint64_t epoch, uint64_t wseq, uint64_t eseq)
{
    struct worker *w = user;
    if (cp_worker_of(id, w->opt.workers) != w->opt.global_id || !nw_valid_device_id(id)) {
        return;
    }
    struct wdev *d = device(w, id);
    if (d) {
        d->epoch = epoch;
        d->have_epoch = true;
        nw_seqtrack_reset(&d->w, wseq);
        nw_seqtrack_reset(&d->e, eseq);
    }
}

/* Rule state of this worker's devices: open alerts stay open. */
static void load_rules(void *user, const char *id, const void *blob, size_t len)
{
    struct worker *w = user;
    if (cp_worker_of(id, w->opt.workers) != w->opt.global_id || !nw_valid_device_id(id)) {
        return;
    }
    if (!rules_dev_valid(blob, len)) {
        nw_log(NW_LOG_WARN, "worker", "device %s: alert state of another layout ignored", id);
        return;
    }
    struct wdev *d = device(w, id);
    if (d) {
        memcpy(&d->rd, blob, sizeof(d->rd));
        for (int r = 0; r < RULE__COUNT; r++) {
            if (d->rd.r[r].alert_id) {
                CM_ADD(alerts_open, 1);
                if (w->opt.registry) {
                    struct nw_alert a = {.alert_id = d->rd.r[r].alert_id,
                                         .severity = d->rd.r[r].severity,
                                         .state = d->rd.r[r].acked ? NW_ALERT_ACKNOWLEDGED
                                                                   : NW_ALERT_FIRING,
                                         .since_ms = d->rd.r[r].fired_ms,
                                         .value = d->rd.r[r].value};
                    memcpy(a.device_id, d->id, sizeof(a.device_id));
                    snprintf(a.rule, sizeof(a.rule), "%s", rules_name((enum rule_id)r));
                    snprintf(a.clinic, sizeof(a.clinic), "%s", d->clinic);
                    alertreg_apply(w->opt.registry, &a);
                }
            }
        }
    }
}

static enum nw_err open_alerts(struct worker *w, void *zctx, struct nw_error *out_err)
{
    const struct worker_options *o = &w->opt;
    if (!o->rules) {
        return NW_OK;
    }
    if (o->alert_state_path && (alertstate_open(o->alert_state_path, &w->ast, out_err) != NW_OK ||
                                alertstate_load(w->ast, load_rules, w, out_err) != NW_OK)) {
        return NW_ERR_IO;
    }
    struct alert_silence sil[SILENCES_MAX];
    size_t ns =
        w->ast ? alertstate_silences(w->ast, nw_clock_realtime_ms(), sil, SILENCES_MAX, out_err)
               : 0;
    if (ns == (size_t)-1) {
        return NW_ERR_IO;
    }
    memcpy(w->silences, sil, ns * sizeof(sil[0]));
    w->nsilences = ns;
    if (o->cartridge_index_path &&
        cartidx_open(o->cartridge_index_path, &w->cx, out_err) != NW_OK) {
        return NW_ERR_IO;
    }
    if (o->notify_endpoint &&
        !(w->notify = cp_open(zctx, ZMQ_PUSH, o->notify_endpoint, false, out_err))) {
        return NW_ERR_CONFIG;
    }
    if (o->ops_endpoint) {
        if (!(w->ops = cp_open(zctx, ZMQ_SUB, o->ops_endpoint, false, out_err))) {
            return NW_ERR_CONFIG;
        }
        zmq_setsockopt(w->ops, ZMQ_SUBSCRIBE, "", 0);
    }
    return NW_OK;
}

/* ---- lifecycle --------------------------------------------------------- */

enum nw_err worker_new(const struct worker_options *opt, void *zctx, struct worker **out,
                       struct nw_error *out_err)
{
    struct worker *w = calloc(1, sizeof(*w));
    if (!w) {
        return nw_error_set(out_err, NW_ERR_NOMEM, "worker: out of memory");
    }
    w->opt = *opt;
    if (w->opt.max_devices == 0) {
        w->opt.max_devices = DEFAULT_MAX_DEVICES;
    }
    w->nslots = 16;
    while (w->nslots < 2 * w->opt.max_devices) {
        w->nslots *= 2;
    }
    w->cap = opt->limits.max_windows > opt->limits.max_events ? opt->limits.max_windows
                                                              : opt->limits.max_events;
    w->codec = nw_codec_new(&opt->limits);
    w->table = calloc(w->nslots, sizeof(*w->table));
    w->windows = calloc(w->cap, sizeof(*w->windows));
    w->events = calloc(w->cap, sizeof(*w->events));
    w->pcap = CP_MAX_POINTS_IN;
    w->points = calloc(w->pcap, sizeof(*w->points));
    w->rejected_mask = calloc(w->cap, 1);
    w->dirty = calloc(w->opt.max_devices, sizeof(*w->dirty));
    w->rdirty = calloc(w->opt.max_devices, sizeof(*w->rdirty));
    static const char *const lost_reason[] = {"seqs_lost"};
    w->lost_log = nw_logonce_new(NW_LOG_WARN, "worker", "gap", "gaps", lost_reason, 1, 60000);
    if (w->opt.workers < 1) {
        w->opt.workers = 1;
    }
    enum nw_err rc = NW_OK;
    if (!w->codec || !w->table || !w->windows || !w->events || !w->points || !w->rejected_mask ||
        !w->dirty || !w->rdirty || !w->lost_log) {
        rc = nw_error_set(out_err, NW_ERR_NOMEM, "worker: out of memory");
    } else if (opt->ack_state_path &&
               (ackstate_open(opt->ack_state_path, &w->state, out_err) != NW_OK ||
                ackstate_load(w->state, load_row, w, out_err) != NW_OK)) {
        rc = NW_ERR_IO;
    } else if ((rc = open_alerts(w, zctx, out_err)) != NW_OK) {
        /* named in out_err */
    } else if (!(w->in = cp_open(zctx, ZMQ_PULL, opt->endpoint, true, out_err)) ||
               !(w->settle = cp_open(zctx, ZMQ_PULL, opt->settle_endpoint, true, out_err)) ||
               !(w->writer = cp_open(zctx, ZMQ_PUSH, opt->writer_endpoint, false, out_err)) ||
               !(w->acks = cp_open(zctx, ZMQ_PUSH, opt->ack_endpoint, false, out_err)) ||
               !(w->control = cp_open(zctx, ZMQ_PULL, opt->control_endpoint, true, out_err)) ||
               !(w->control_ack =
                     cp_open(zctx, ZMQ_PUSH, opt->control_ack_endpoint, false, out_err))) {
        rc = out_err ? out_err->code : NW_ERR_CONFIG;
    }
    if (rc != NW_OK) {
        worker_destroy(&w);
        return rc;
    }
    *out = w;
    return NW_OK;
}

void worker_destroy(struct worker **p)
{
    if (!p || !*p) {
        return;
    }
    struct worker *w = *p;
    void *socks[] = {w->in,      w->settle,      w->writer, w->acks,
                     w->control, w->control_ack, w->notify, w->ops};
    for (size_t i = 0; i < sizeof(socks) / sizeof(socks[0]); i++) {
        if (socks[i]) {
            zmq_close(socks[i]);
        }
    }
    for (size_t i = 0; w->table && i < w->nslots; i++) {
        if (w->table[i]) {
            nw_seqtrack_release(&w->table[i]->w);
            nw_seqtrack_release(&w->table[i]->e);
            free(w->table[i]);
        }
    }
    nw_codec_destroy(&w->codec);
    ackstate_close(&w->state);
    alertstate_close(&w->ast);
    cartidx_close(&w->cx);
    free(w->rdirty);
    nw_logonce_destroy(&w->lost_log);
    free(w->dirty);
    free(w->table);
    free(w->windows);
    free(w->events);
    free(w->points);
    free(w->rejected_mask);
    free(w);
    *p = NULL;
}

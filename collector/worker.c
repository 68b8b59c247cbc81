/*
 * worker.c - per-device state, points out, watermarks and ack requests.
 *
 * Device state lives in an open-addressing table of pointers sized for
 * max_devices at a load factor of 1/2; each device is allocated once on
 * first sight, so memory follows the devices actually seen.
 */
#include "worker.h"

#include "ackstate.h"
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
#include <string.h>
#include <zmq.h>

#define DEFAULT_MAX_DEVICES 100000
#define POLL_MS 100
#define PERSIST_EVERY_MS 100

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
};

struct worker {
    struct worker_options opt;
    void *in, *writer, *settle, *acks, *control, *control_ack;
    struct nw_codec *codec;
    struct wdev **table;
    size_t nslots, ndevices;
    uint64_t table_full;
    struct nw_window *windows;
    struct nw_event *events;
    struct nw_point *points;
    uint8_t *rejected_mask;
    size_t cap;
    struct ackstate *state;
    struct nw_logonce *lost_log; /* one line per minute, not per message */
    struct wdev **dirty;
    size_t ndirty;
    int64_t persisted_at;
    bool persist_failing;
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
    nw_seqtrack_init(&d->w, 0);
    nw_seqtrack_init(&d->e, 0);
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

static void send_points(struct worker *w, size_t n)
{
    if (n == 0) {
        return;
    }
    struct cp_batch hdr = {.worker = w->opt.id, .npoints = (uint32_t)n};
    if (zmq_send(w->writer, &hdr, sizeof(hdr), ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        CM_ADD(hwm_drops_writer, 1); /* never settled, so never acked */
        return;
    }
    zmq_send(w->writer, w->points, n * sizeof(struct nw_point), 0);
}

static void mark_rejected(struct worker *w, const uint32_t *idx, size_t nrej, size_t count)
{
    memset(w->rejected_mask, 0, count);
    for (size_t i = 0; i < nrej; i++) {
        if (idx[i] < count) {
            w->rejected_mask[idx[i]] = 1;
        }
    }
}

static void on_windows(struct worker *w, const uint8_t *buf, size_t len, const uint32_t *rej,
                       size_t nrej)
{
    struct nw_window_batch b = {.windows = w->windows, .capacity = w->cap};
    if (nw_codec_decode_windows(w->codec, buf, len, &b, NULL, NULL) != NW_OK) {
        return; /* ingest checked it: cannot happen short of a version skew */
    }
    struct wdev *d = device(w, b.device_id);
    if (!d) {
        return;
    }
    check_epoch(d, b.epoch);
    bool moved = apply_floor(w, d, &d->w, &d->fresh_w, b.queue_floor);
    mark_rejected(w, rej, nrej, b.count);
    size_t n = 0;
    for (size_t i = 0; i < b.count; i++) {
        if (w->rejected_mask[i]) {
            moved = nw_seqtrack_settle(&d->w, b.windows[i].seq) || moved; /* dead-lettered */
            continue;
        }
        struct nw_point *p = &w->points[n++];
        fill_tags(d, p, NW_POINT_WINDOW);
        p->u.window.w = b.windows[i];
        p->u.window.in_spec = window_in_spec(&b.windows[i], d->spec);
    }
    send_points(w, n);
    if (moved) {
        mark_dirty(w, d);
    }
}

static void on_events(struct worker *w, const uint8_t *buf, size_t len, const uint32_t *rej,
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
    size_t n = 0;
    for (size_t i = 0; i < b.count; i++) {
        if (w->rejected_mask[i]) {
            moved = nw_seqtrack_settle(&d->e, b.events[i].seq) || moved;
            continue;
        }
        struct nw_point *p = &w->points[n++];
        fill_tags(d, p, NW_POINT_EVENT);
        p->u.event = b.events[i];
    }
    send_points(w, n);
    if (moved) {
        mark_dirty(w, d);
    }
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
    struct nw_point *p = &w->points[0];
    fill_tags(d, p, NW_POINT_STATUS);
    p->epoch = s.epoch & INT64_MAX;
    p->u.status = s;
    p->u.status.epoch &= INT64_MAX;
    send_points(w, 1);
}

/* ---- the loop ---------------------------------------------------------- */

static void recv_input(struct worker *w)
{
    zmq_msg_t parts[3];
    for (int i = 0; i < 3; i++) {
        zmq_msg_init(&parts[i]);
    }
    int got = 0;
    for (; got < 3; got++) {
        if (zmq_msg_recv(&parts[got], w->in, ZMQ_DONTWAIT) < 0 || !zmq_msg_more(&parts[got])) {
            got++;
            break;
        }
    }
    if (got == 3 && zmq_msg_size(&parts[0]) == sizeof(struct cp_in)) {
        struct cp_in hdr;
        memcpy(&hdr, zmq_msg_data(&parts[0]), sizeof(hdr));
        const uint8_t *payload = zmq_msg_data(&parts[1]);
        size_t len = zmq_msg_size(&parts[1]);
        const uint32_t *rej = zmq_msg_data(&parts[2]);
        size_t nrej = zmq_msg_size(&parts[2]) / sizeof(uint32_t);
        if (hdr.type == CP_WINDOWS) {
            on_windows(w, payload, len, rej, nrej);
        } else if (hdr.type == CP_EVENTS) {
            on_events(w, payload, len, rej, nrej);
        } else if (hdr.type == CP_STATUS) {
            on_status(w, payload, len);
        }
    }
    for (int i = 0; i < 3; i++) {
        zmq_msg_close(&parts[i]);
    }
}

static void recv_settle(struct worker *w)
{
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, w->settle, ZMQ_DONTWAIT) >= 0) {
        settle(w, zmq_msg_data(&m), zmq_msg_size(&m) / sizeof(struct cp_ref));
    }
    zmq_msg_close(&m);
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
        }
    }
    int done = w->opt.id;
    zmq_send(w->control_ack, &done, sizeof(done), 0);
}

void worker_run(struct worker *w, volatile sig_atomic_t *stop, volatile sig_atomic_t *drained)
{
    zmq_pollitem_t items[3] = {{.socket = w->settle, .events = ZMQ_POLLIN},
                               {.socket = w->control, .events = ZMQ_POLLIN},
                               {.socket = w->in, .events = ZMQ_POLLIN}};
    while (!*drained) {
        int n = *stop ? 2 : 3; /* stopping: settle what is stored, take nothing new */
        persist_dirty(w, false);
        nw_logonce_flush(w->lost_log, false);
        if (zmq_poll(items, n, w->ndirty ? PERSIST_EVERY_MS : POLL_MS) <= 0) {
            continue;
        }
        if (items[1].revents & ZMQ_POLLIN) {
            recv_control(w);
        }
        for (int i = 0; i < 256 && (items[0].revents & ZMQ_POLLIN); i++) {
            recv_settle(w);
            zmq_poll(items, 1, 0);
        }
        if (n > 2 && (items[2].revents & ZMQ_POLLIN)) {
            recv_input(w);
        }
    }
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
        nw_seqtrack_init(&d->w, wseq);
        nw_seqtrack_init(&d->e, eseq);
    }
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
    w->points = calloc(w->cap, sizeof(*w->points));
    w->rejected_mask = calloc(w->cap, 1);
    w->dirty = calloc(w->opt.max_devices, sizeof(*w->dirty));
    static const char *const lost_reason[] = {"seqs_lost"};
    w->lost_log = nw_logonce_new(NW_LOG_WARN, "worker", "gap", "gaps", lost_reason, 1, 60000);
    if (w->opt.workers < 1) {
        w->opt.workers = 1;
    }
    enum nw_err rc = NW_OK;
    if (!w->codec || !w->table || !w->windows || !w->events || !w->points || !w->rejected_mask ||
        !w->dirty || !w->lost_log) {
        rc = nw_error_set(out_err, NW_ERR_NOMEM, "worker: out of memory");
    } else if (opt->ack_state_path &&
               (ackstate_open(opt->ack_state_path, &w->state, out_err) != NW_OK ||
                ackstate_load(w->state, load_row, w, out_err) != NW_OK)) {
        rc = NW_ERR_IO;
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
    void *socks[] = {w->in, w->settle, w->writer, w->acks, w->control, w->control_ack};
    for (size_t i = 0; i < 6; i++) {
        if (socks[i]) {
            zmq_close(socks[i]);
        }
    }
    for (size_t i = 0; w->table && i < w->nslots; i++) {
        free(w->table[i]);
    }
    nw_codec_destroy(&w->codec);
    ackstate_close(&w->state);
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

/*
 * writer.c - batch, write, settle.
 *
 * The pending array holds at most batch_points + one input message of
 * points (CP_MAX_POINTS_IN), so receiving never overflows it: the writer
 * only reads its socket while there is room for a whole message.
 */
#include "writer.h"

#include "metrics.h"
#include "pipeline.h"

#include <needlewatch/clock.h>
#include <needlewatch/dq.h>
#include <needlewatch/log.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define DEFAULT_BATCH 5000
#define DEFAULT_FLUSH_MS 200
#define DEFAULT_DRAIN_MS 8000
#define CP_MAX_POINTS_IN 4096
#define SPOOL_TYPE 0
#define SPOOL_CHUNK_POINTS ((NW_DQ_MAX_PAYLOAD - sizeof(int32_t)) / sizeof(struct nw_point))
#define DEFAULT_SPOOL_BYTES (1024ull * 1024 * 1024)

struct writer {
    struct writer_options opt;
    struct nw_store *store;
    void *in;
    void *settle[CP_MAX_WORKERS];
    struct nw_point *pending;
    int32_t *owner;      /* worker of each pending point */
    uint64_t *spool_seq; /* spool chunk of each pending point; 0: live */
    size_t npending, cap;
    struct cp_ref *refs; /* scratch for one worker's settle message */
    int64_t first_at;    /* mono ms of the oldest pending point */
    int64_t retry_at;
    bool down;
    struct nw_dq *spool;
    uint64_t spool_next; /* seq of the next chunk appended */
    bool spooling;       /* the spool holds data (logged on each change) */
    bool spool_failing;  /* appends fail (logged once) */
    uint8_t chunk[NW_DQ_MAX_PAYLOAD];
};

enum nw_err writer_new(const struct writer_options *opt, void *zctx, struct writer **out,
                       struct nw_error *out_err)
{
    struct writer *w = calloc(1, sizeof(*w));
    if (!w) {
        return nw_error_set(out_err, NW_ERR_NOMEM, "writer: out of memory");
    }
    w->opt = *opt;
    w->opt.batch_points = opt->batch_points ? opt->batch_points : DEFAULT_BATCH;
    w->opt.flush_ms = opt->flush_ms > 0 ? opt->flush_ms : DEFAULT_FLUSH_MS;
    w->opt.drain_ms = opt->drain_ms > 0 ? opt->drain_ms : DEFAULT_DRAIN_MS;
    w->cap = w->opt.batch_points + CP_MAX_POINTS_IN;
    w->pending = calloc(w->cap, sizeof(*w->pending));
    w->owner = calloc(w->cap, sizeof(*w->owner));
    w->spool_seq = calloc(w->cap, sizeof(*w->spool_seq));
    w->refs = calloc(w->cap, sizeof(*w->refs));
    enum nw_err rc = NW_OK;
    if (!w->pending || !w->owner || !w->refs || !w->spool_seq) {
        rc = nw_error_set(out_err, NW_ERR_NOMEM, "writer: out of memory");
    } else {
        rc = nw_store_open(opt->store_url, &opt->store, &w->store, out_err);
    }
    if (rc == NW_OK && opt->spool_dir) {
        struct nw_dq_options o;
        nw_dq_options_init(&o, opt->spool_dir);
        o.max_bytes = opt->spool_max_bytes ? opt->spool_max_bytes : DEFAULT_SPOOL_BYTES;
        o.segment_bytes = 4u << 20;
        o.sync = NW_DQ_SYNC_NEVER; /* nothing in it is acknowledged yet */
        rc = nw_dq_open(&o, &w->spool, out_err);
        w->spool_next = w->spool ? nw_dq_max_seq(w->spool, SPOOL_TYPE) + 1 : 1;
    }
    if (rc == NW_OK && !(w->in = cp_open(zctx, ZMQ_PULL, opt->endpoint, true, out_err))) {
        rc = NW_ERR_CONFIG;
    }
    for (int i = 0; rc == NW_OK && i < opt->workers; i++) {
        w->settle[i] = cp_open(zctx, ZMQ_PUSH, opt->settle_endpoints[i], false, out_err);
        rc = w->settle[i] ? NW_OK : NW_ERR_CONFIG;
    }
    if (rc != NW_OK) {
        writer_destroy(&w);
        return rc;
    }
    CM_SET(store_up, 1);
    *out = w;
    return NW_OK;
}

void writer_destroy(struct writer **p)
{
    if (!p || !*p) {
        return;
    }
    struct writer *w = *p;
    if (w->in) {
        zmq_close(w->in);
    }
    for (int i = 0; i < CP_MAX_WORKERS; i++) {
        if (w->settle[i]) {
            zmq_close(w->settle[i]);
        }
    }
    nw_store_close(&w->store);
    nw_dq_close(&w->spool);
    free(w->pending);
    free(w->owner);
    free(w->spool_seq);
    free(w->refs);
    free(w);
    *p = NULL;
}

/* ---- settling ---------------------------------------------------------- */

static bool ref_of(const struct nw_point *p, struct cp_ref *r)
{
    if (p->kind != NW_POINT_WINDOW && p->kind != NW_POINT_EVENT) {
        return false;
    }
    memcpy(r->device, p->device, sizeof(r->device));
    r->epoch = p->epoch;
    r->type = p->kind == NW_POINT_WINDOW ? CP_WINDOWS : CP_EVENTS;
    r->seq = p->kind == NW_POINT_WINDOW ? p->u.window.w.seq : p->u.event.seq;
    return true;
}

/* Tells each worker which of its points among the first n are stored. */
static void settle(struct writer *w, size_t n)
{
    for (int k = 0; k < w->opt.workers; k++) {
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            if (w->owner[i] == k && ref_of(&w->pending[i], &w->refs[m])) {
                m++;
            }
        }
        if (m && zmq_send(w->settle[k], w->refs, m * sizeof(*w->refs), ZMQ_DONTWAIT) < 0) {
            CM_ADD(hwm_drops_settle, 1); /* stored but not acked: re-sent, re-stored */
        }
    }
}

/* ---- the spool --------------------------------------------------------- */

/* Chunks are loaded in seq order and done is a prefix, so every chunk up to
 * the last one in the prefix is stored, unless that one continues past it. */
static void ack_spool(struct writer *w, size_t done)
{
    uint64_t top = 0;
    for (size_t i = 0; i < done; i++) {
        top = w->spool_seq[i] > top ? w->spool_seq[i] : top;
    }
    if (top && done < w->npending && w->spool_seq[done] == top) {
        top--;
    }
    if (top && w->spool) {
        nw_dq_ack(w->spool, SPOOL_TYPE, top, NULL);
        CM_SET(spool_records, nw_dq_max_seq(w->spool, SPOOL_TYPE) - top);
        if (w->spooling && top + 1 == w->spool_next) {
            w->spooling = false;
            nw_log(NW_LOG_NOTICE, "writer", "spool drained: writing from memory again");
        }
    }
}

static bool spool_holds_data(const struct writer *w)
{
    struct nw_dq_stats st;
    if (!w->spool) {
        return false;
    }
    nw_dq_stats(w->spool, &st);
    return st.unacked[SPOOL_TYPE] > 0;
}

/* Appends n points of a worker as chunks; false if the spool failed. */
static bool spool_points(struct writer *w, int32_t worker, const struct nw_point *pts, size_t n)
{
    for (size_t at = 0; at < n; at += SPOOL_CHUNK_POINTS) {
        size_t k = n - at < SPOOL_CHUNK_POINTS ? n - at : SPOOL_CHUNK_POINTS;
        memcpy(w->chunk, &worker, sizeof(worker));
        memcpy(w->chunk + sizeof(worker), pts + at, k * sizeof(*pts));
        struct nw_error err = {0};
        if (nw_dq_append(w->spool, SPOOL_TYPE, w->spool_next, w->chunk,
                         sizeof(worker) + k * sizeof(*pts), &err) != NW_OK) {
            if (!w->spool_failing) {
                nw_log(NW_LOG_ERROR, "writer",
                       "spool: %s; points dropped (never acked, agents "
                       "re-send)",
                       err.msg);
            }
            w->spool_failing = true;
            return false;
        }
        if (w->spool_failing) {
            nw_log(NW_LOG_NOTICE, "writer", "spool writable again");
            w->spool_failing = false;
        }
        if (!w->spooling) {
            w->spooling = true;
            nw_log(NW_LOG_NOTICE, "writer", "spooling to disk (%s): the store is %s",
                   w->opt.spool_dir, w->down ? "down" : "behind");
        }
        w->spool_next++;
        CM_ADD(spool_records, 1);
    }
    return true;
}

static void add_pending(struct writer *w, int32_t worker, const struct nw_point *pts, size_t n,
                        uint64_t spool_seq)
{
    if (w->npending == 0) {
        w->first_at = nw_clock_mono_ms();
    }
    memcpy(w->pending + w->npending, pts, n * sizeof(*pts));
    for (size_t k = 0; k < n; k++) {
        w->owner[w->npending + k] = worker;
        w->spool_seq[w->npending + k] = spool_seq;
    }
    w->npending += n;
}

/* Moves spooled chunks into memory while there is room. */
static void load_spool(struct writer *w)
{
    while (w->spool && w->npending + SPOOL_CHUNK_POINTS <= w->opt.batch_points) {
        struct nw_dq_record rec;
        if (nw_dq_next(w->spool, &rec, NULL) != NW_OK) {
            return;
        }
        int32_t worker;
        memcpy(&worker, rec.payload, sizeof(worker));
        size_t n = (rec.len - sizeof(worker)) / sizeof(struct nw_point);
        if (worker < 0 || worker >= w->opt.workers) {
            worker = 0; /* a spool from a run with more workers: settles are ignored */
        }
        /* rec.payload is the dq's buffer: copy before the next dq call. */
        add_pending(w, worker, (const struct nw_point *)(rec.payload + sizeof(worker)), n, rec.seq);
    }
}

/* ---- writing ----------------------------------------------------------- */

static void note_state(struct writer *w, const struct nw_store_outcome *o)
{
    bool down = o->code != NW_OK;
    if (down && !w->down) {
        nw_log(NW_LOG_ERROR, "writer", "store %s down: %s; holding %zu points, acks paused",
               nw_store_name(w->store), o->msg, w->npending);
    } else if (!down && w->down) {
        nw_log(NW_LOG_NOTICE, "writer", "store %s up again", nw_store_name(w->store));
    }
    w->down = down;
    CM_SET(store_up, down ? 0 : 1);
}

static void write_batch(struct writer *w)
{
    size_t n = w->npending < w->opt.batch_points ? w->npending : w->opt.batch_points;
    struct nw_store_outcome o;
    int64_t t0 = nw_clock_mono_ns();
    nw_store_write(w->store, w->pending, n, &o);
    uint64_t us = (uint64_t)(nw_clock_mono_ns() - t0) / 1000;
    CM_ADD(store_writes, 1);
    CM_ADD(store_latency_us_sum, us);
    if (us > CM_GET(store_latency_us_max)) {
        CM_SET(store_latency_us_max, us);
    }
    if (o.done > 0) {
        settle(w, o.done);
        ack_spool(w, o.done);
        CM_ADD(points_stored, o.done);
        size_t rest = w->npending - o.done;
        memmove(w->pending, w->pending + o.done, rest * sizeof(*w->pending));
        memmove(w->owner, w->owner + o.done, rest * sizeof(*w->owner));
        memmove(w->spool_seq, w->spool_seq + o.done, rest * sizeof(*w->spool_seq));
        w->npending = rest;
        w->first_at = nw_clock_mono_ms();
    }
    if (o.code != NW_OK) {
        CM_ADD(store_failures, 1);
        w->retry_at = nw_clock_mono_ms() + (o.retry_after_ms > 0 ? o.retry_after_ms : 1000);
    }
    note_state(w, &o);
    CM_SET(points_pending, w->npending);
}

static bool due(const struct writer *w, int64_t now)
{
    if (w->npending == 0 || now < w->retry_at) {
        return false;
    }
    return w->npending >= w->opt.batch_points || now - w->first_at >= w->opt.flush_ms;
}

/* Takes one message; false when none was waiting. Points that cannot wait
 * in memory go to the spool, and behind it while it holds anything. */
static bool receive_one(struct writer *w)
{
    zmq_msg_t hdr, body;
    zmq_msg_init(&hdr);
    zmq_msg_init(&body);
    bool ok = zmq_msg_recv(&hdr, w->in, ZMQ_DONTWAIT) >= 0 && zmq_msg_more(&hdr) &&
              zmq_msg_recv(&body, w->in, 0) >= 0 && zmq_msg_size(&hdr) == sizeof(struct cp_batch);
    if (ok) {
        struct cp_batch b;
        memcpy(&b, zmq_msg_data(&hdr), sizeof(b));
        size_t n = zmq_msg_size(&body) / sizeof(struct nw_point);
        const struct nw_point *pts = zmq_msg_data(&body);
        /* While the store is down, memory holds the batch being retried and
         * the rest waits on disk. */
        bool room = (!w->down || !w->spool) && w->npending + n <= w->cap;
        if (n > CP_MAX_POINTS_IN || b.worker < 0 || b.worker >= w->opt.workers) {
            /* not ours: ignore */
        } else if (room && !spool_holds_data(w)) {
            add_pending(w, b.worker, pts, n, 0);
        } else if (!w->spool || !spool_points(w, b.worker, pts, n)) {
            CM_ADD(hwm_drops_writer, 1); /* never acked: agents re-send */
        }
    }
    zmq_msg_close(&hdr);
    zmq_msg_close(&body);
    return ok;
}

/* The spool is for a store that is down (or a spool still draining):
 * while the store works, a full buffer pushes back through the
 * high-water marks instead, so points are not written to disk twice. */
static void receive(struct writer *w)
{
    for (int i = 0; i < 64; i++) {
        bool room = w->npending + CP_MAX_POINTS_IN <= w->cap;
        bool to_spool = w->spool && (w->down || spool_holds_data(w));
        if ((!room && !to_spool) || !receive_one(w)) {
            break;
        }
    }
    if (!w->down) {
        load_spool(w);
    }
    CM_SET(points_pending, w->npending);
}

static int poll_timeout(const struct writer *w, int64_t now)
{
    if (w->npending == 0) {
        return 200;
    }
    int64_t at = w->first_at + w->opt.flush_ms;
    if (w->retry_at > at) {
        at = w->retry_at;
    }
    int64_t d = at - now;
    return d < 0 ? 0 : (d > 200 ? 200 : (int)d);
}

void writer_run(struct writer *w, volatile sig_atomic_t *stop)
{
    nw_log(NW_LOG_NOTICE, "writer", "store %s, batches of %zu points or %" PRId64 " ms",
           nw_store_name(w->store), w->opt.batch_points, w->opt.flush_ms);
    while (!*stop) {
        zmq_pollitem_t item = {.socket = w->in, .events = ZMQ_POLLIN};
        bool room = (w->spool && (w->down || spool_holds_data(w))) ||
                    w->npending + CP_MAX_POINTS_IN <= w->cap;
        zmq_poll(&item, room ? 1 : 0, poll_timeout(w, nw_clock_mono_ms()));
        receive(w);
        if (due(w, nw_clock_mono_ms())) {
            write_batch(w);
        }
    }
    /* Stopping: take what the workers already sent, write it all if the
     * store lets us within drain_ms. */
    int64_t until = nw_clock_mono_ms() + w->opt.drain_ms;
    receive(w);
    while (w->npending > 0 && nw_clock_mono_ms() < until) {
        if (nw_clock_mono_ms() >= w->retry_at) {
            write_batch(w);
        } else {
            zmq_poll(NULL, 0, 50);
        }
        receive(w);
    }
    if (w->npending > 0) {
        nw_log(NW_LOG_WARN, "writer",
               "stopping with %zu points unstored: never acked, the "
               "agents will send them again",
               w->npending);
    }
}

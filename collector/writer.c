/*
 * writer.c - batch, write, settle.
 *
 * Two threads. The writer thread takes the workers' points off their
 * socket all the time, batches them, spools them while the store is down,
 * and settles what the store confirmed. The store thread owns the store
 * and does nothing but nw_store_write(). They pass whole batches (struct
 * job) over an inproc PAIR socket: a job belongs to one thread at a time,
 * and the pointer on the socket is the hand-over.
 *
 * Why: a store write takes tens to hundreds of milliseconds (one SQLite
 * transaction, one fsync; one HTTP request). A single thread does not
 * read its socket meanwhile, so at a live fleet's rate the workers' queue
 * overflowed during every write (bench/README.md, diagnosis 2). Now the
 * store writes batch k while batch k+1 fills, and the store is never idle
 * while points wait.
 *
 * Memory is two jobs: one in the store thread, one filling. A batch is
 * handed over at batch_points points (or flush_ms) when the store is idle;
 * while the store is busy the filling job keeps taking points, up to half
 * of max_pending_points, so the next write is larger. That is group
 * commit: a slow write makes the next one cheaper per point (one SQLite
 * transaction dirties each device's leaf once, whatever its size), so the
 * writer catches up instead of dropping. Jobs keep compact points (only
 * the bytes of their kind, nw_point_size(): a window is 536 of the 968
 * bytes of struct nw_point) in an arena of half of max_pending_points
 * windows, released to the system beyond one batch when a job empties.
 * max_pending_points is the bound of the worker->writer stage. A message
 * that finds the filling job full while the other one is being written is
 * dropped and counted (nw_hwm_drops_total{stage="writer"} messages,
 * nw_writer_dropped_points_total points): those points were never
 * acknowledged, so their agents send them again. The writer keeps reading
 * its socket to do that, so the ZeroMQ queue in front of it stays short
 * instead of holding up to CP_HWM messages of up to 4096 points each.
 *
 * While the store is down (the last write failed) the failed job waits for
 * its retry time with what it still holds, and new points go to the spool
 * (or, without a spool, fill the other job and are dropped beyond it).
 * Once the spool holds anything, new points queue behind it, so it drains
 * in order when the store returns. Chunks are acknowledged in the spool
 * only when every point of them, and of every chunk before them, is stored.
 */
#include "writer.h"

#include "metrics.h"
#include "pipeline.h"
#include "pointbuf.h"

#include <needlewatch/clock.h>
#include <needlewatch/dq.h>
#include <needlewatch/log.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <zmq.h>

#define DEFAULT_BATCH 5000
#define DEFAULT_MAX_PENDING 40000
#define DEFAULT_FLUSH_MS 200
#define DEFAULT_DRAIN_MS 8000
#define RECV_PER_TURN 256
#define SPOOL_TYPE 0
#define SPOOL_CHUNK_POINTS ((NW_DQ_MAX_PAYLOAD - sizeof(int32_t)) / sizeof(struct nw_point))
#define DEFAULT_SPOOL_BYTES (1024ull * 1024 * 1024)

/* A batch. Owned by the writer thread, or by the store thread between the
 * hand-over and the answer. */
struct job {
    struct nw_pointbuf *buf; /* the points, compact */
    int32_t *owner;          /* worker of each point */
    uint64_t *spool_seq;     /* spool chunk of each point; 0: came from memory */
    int64_t first_at;        /* mono ms when its first point arrived */
    /* filled by the store thread */
    struct nw_store_outcome out;
    uint64_t write_us;
};

struct writer {
    struct writer_options opt;
    struct nw_store *store; /* used by the store thread only after writer_new */
    void *in;
    void *settle[CP_MAX_WORKERS];
    void *to_store, *from_writer; /* the PAIR: writer end, store thread end */
    pthread_t thread;
    bool thread_started;
    struct job jobs[2];
    size_t job_points; /* points one job takes: max_pending_points / 2 */
    size_t keep_bytes; /* arena bytes a job keeps mapped when it empties */
    struct job *fill;  /* taking new points */
    struct job *out;   /* in the store thread, or NULL */
    struct job *retry; /* failed, waits for retry_at; or NULL */
    struct cp_ref *refs;
    int64_t retry_at;
    bool down;
    struct nw_dq *spool;
    uint64_t spool_next;   /* seq of the next chunk appended */
    uint64_t spool_loaded; /* highest chunk seq moved into memory */
    uint64_t spool_unread; /* chunks on disk not yet moved into memory */
    uint64_t spool_acked;
    bool spooling;      /* the spool holds data (logged on each change) */
    bool spool_failing; /* appends fail (logged once) */
    _Alignas(struct nw_point) uint8_t chunk[NW_DQ_MAX_PAYLOAD];
};

/* ---- the store thread -------------------------------------------------- */

static void *store_main(void *arg)
{
    struct writer *w = arg;
    prctl(PR_SET_NAME, "nw-store", 0, 0, 0); /* top -H, perf */
    for (;;) {
        struct job *j = NULL;
        if (zmq_recv(w->from_writer, &j, sizeof(j), 0) != (int)sizeof(j)) {
            if (errno == EINTR) {
                continue;
            }
            break; /* context terminated */
        }
        if (!j) {
            break; /* writer_destroy */
        }
        int64_t t0 = nw_clock_mono_ns();
        memset(&j->out, 0, sizeof(j->out));
        nw_store_write_ptrs(w->store, nw_pointbuf_points(j->buf), nw_pointbuf_count(j->buf),
                            &j->out);
        j->write_us = (uint64_t)(nw_clock_mono_ns() - t0) / 1000;
        while (zmq_send(w->from_writer, &j, sizeof(j), 0) < 0 && errno == EINTR) {
        }
    }
    return NULL;
}

/* ---- lifecycle --------------------------------------------------------- */

/* cap points and `bytes` of compact points. */
static bool job_alloc(struct job *j, size_t cap, size_t bytes)
{
    j->buf = nw_pointbuf_new(cap, bytes);
    j->owner = malloc(cap * sizeof(*j->owner));
    j->spool_seq = malloc(cap * sizeof(*j->spool_seq));
    return j->buf && j->owner && j->spool_seq;
}

static void job_free(struct job *j)
{
    nw_pointbuf_destroy(&j->buf);
    free(j->owner);
    free(j->spool_seq);
}

static size_t count(const struct job *j)
{
    return nw_pointbuf_count(j->buf);
}

static enum nw_err open_spool(struct writer *w, struct nw_error *out_err)
{
    struct nw_dq_options o;
    nw_dq_options_init(&o, w->opt.spool_dir);
    o.max_bytes = w->opt.spool_max_bytes ? w->opt.spool_max_bytes : DEFAULT_SPOOL_BYTES;
    o.segment_bytes = 4u << 20;
    o.sync = NW_DQ_SYNC_NEVER; /* nothing in it is acknowledged yet */
    enum nw_err rc = nw_dq_open(&o, &w->spool, out_err);
    if (rc == NW_OK) {
        struct nw_dq_stats st;
        nw_dq_stats(w->spool, &st);
        w->spool_next = nw_dq_max_seq(w->spool, SPOOL_TYPE) + 1;
        w->spool_acked = st.acked_seq[SPOOL_TYPE];
        w->spool_loaded = w->spool_acked;
        w->spool_unread = st.unacked[SPOOL_TYPE]; /* a restart drains it first */
        w->spooling = w->spool_unread > 0;
        CM_SET(spool_records, w->spool_unread);
        CM_SET(spool_bytes, st.bytes);
    }
    return rc;
}

static enum nw_err open_store_thread(struct writer *w, void *zctx, struct nw_error *out_err)
{
    char ep[64];
    snprintf(ep, sizeof(ep), "inproc://nw-store-%p", (void *)w);
    w->to_store = zmq_socket(zctx, ZMQ_PAIR);
    w->from_writer = zmq_socket(zctx, ZMQ_PAIR);
    int linger = 0;
    if (!w->to_store || !w->from_writer || zmq_bind(w->to_store, ep) != 0 ||
        zmq_connect(w->from_writer, ep) != 0) {
        return nw_error_set(out_err, NW_ERR_NOMEM, "writer: store socket: %s", zmq_strerror(errno));
    }
    zmq_setsockopt(w->to_store, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_setsockopt(w->from_writer, ZMQ_LINGER, &linger, sizeof(linger));
    if (pthread_create(&w->thread, NULL, store_main, w) != 0) {
        return nw_error_set(out_err, NW_ERR_NOMEM, "writer: cannot start the store thread");
    }
    w->thread_started = true;
    return NW_OK;
}

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
    size_t maxp = opt->max_pending_points ? opt->max_pending_points : DEFAULT_MAX_PENDING;
    w->job_points = maxp / 2 > w->opt.batch_points ? maxp / 2 : w->opt.batch_points;
    w->opt.max_pending_points = 2 * w->job_points;
    size_t cap = w->job_points + CP_MAX_POINTS_IN; /* + a message into an empty job */
    /* Room for job_points windows, and for one message of the largest
     * points in an empty job (a message that can never fit is never
     * stored). */
    size_t bytes = w->job_points * nw_point_size(NW_POINT_WINDOW);
    size_t one_msg = CP_MAX_POINTS_IN * sizeof(struct nw_point);
    bytes = bytes > one_msg ? bytes : one_msg;
    w->keep_bytes = w->opt.batch_points * nw_point_size(NW_POINT_WINDOW);
    w->refs = malloc(cap * sizeof(*w->refs));
    enum nw_err rc = NW_OK;
    if (!w->refs || !job_alloc(&w->jobs[0], cap, bytes) || !job_alloc(&w->jobs[1], cap, bytes)) {
        rc = nw_error_set(out_err, NW_ERR_NOMEM, "writer: out of memory");
    } else {
        rc = nw_store_open(opt->store_url, &opt->store, &w->store, out_err);
    }
    w->fill = &w->jobs[0];
    if (rc == NW_OK && opt->spool_dir) {
        rc = open_spool(w, out_err);
    }
    if (rc == NW_OK && !(w->in = cp_open(zctx, ZMQ_PULL, opt->endpoint, true, out_err))) {
        rc = NW_ERR_CONFIG;
    }
    for (int i = 0; rc == NW_OK && i < opt->workers; i++) {
        w->settle[i] = cp_open(zctx, ZMQ_PUSH, opt->settle_endpoints[i], false, out_err);
        rc = w->settle[i] ? NW_OK : NW_ERR_CONFIG;
    }
    if (rc == NW_OK) {
        rc = open_store_thread(w, zctx, out_err);
    }
    if (rc != NW_OK) {
        writer_destroy(&w);
        return rc;
    }
    CM_SET(store_up, 1);
    CM_SET(writer_bound_points, w->opt.max_pending_points);
    *out = w;
    return NW_OK;
}

void writer_destroy(struct writer **p)
{
    if (!p || !*p) {
        return;
    }
    struct writer *w = *p;
    if (w->thread_started) {
        /* writer_run returned, so no job is out: the thread waits on its
         * socket and ends on the NULL job. */
        struct job *none = NULL;
        zmq_send(w->to_store, &none, sizeof(none), 0);
        pthread_join(w->thread, NULL);
    }
    if (w->to_store) {
        zmq_close(w->to_store);
    }
    if (w->from_writer) {
        zmq_close(w->from_writer);
    }
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
    job_free(&w->jobs[0]);
    job_free(&w->jobs[1]);
    free(w->refs);
    free(w);
    *p = NULL;
}

/* ---- bookkeeping ------------------------------------------------------- */

static size_t held(const struct writer *w)
{
    return count(&w->jobs[0]) + count(&w->jobs[1]);
}

static void note_pending(const struct writer *w)
{
    CM_SET(points_pending, held(w));
}

/* The job that takes no points now: free to become the next fill. */
static struct job *other(struct writer *w, const struct job *j)
{
    return j == &w->jobs[0] ? &w->jobs[1] : &w->jobs[0];
}

/* Copies n points (an array of whole structs) into j; false if they do
 * not fit in `limit` points or the arena. */
static bool add_points(struct job *j, int32_t worker, const struct nw_point *pts, size_t n,
                       uint64_t spool_seq, size_t limit)
{
    size_t at = count(j);
    limit = at == 0 && n > limit ? n : limit; /* an empty job takes any message */
    if (!nw_pointbuf_fits(j->buf, n, nw_pointbuf_bytes_of(pts, n), limit) ||
        !nw_pointbuf_add(j->buf, pts, n)) {
        return false;
    }
    if (at == 0) {
        j->first_at = nw_clock_mono_ms();
    }
    for (size_t k = 0; k < n; k++) {
        j->owner[at + k] = worker;
        j->spool_seq[at + k] = spool_seq;
    }
    return true;
}

/* Forgets the first `done` points of j. */
static void drop_front(struct job *j, size_t done)
{
    size_t rest = count(j) - done;
    nw_pointbuf_drop_front(j->buf, done);
    memmove(j->owner, j->owner + done, rest * sizeof(*j->owner));
    memmove(j->spool_seq, j->spool_seq + done, rest * sizeof(*j->spool_seq));
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

/* Tells each worker which of the first n points of j are stored. */
static void settle(struct writer *w, const struct job *j, size_t n)
{
    const struct nw_point *const *pts = nw_pointbuf_points(j->buf);
    for (int k = 0; k < w->opt.workers; k++) {
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            if (j->owner[i] == k && ref_of(pts[i], &w->refs[m])) {
                m++;
            }
        }
        if (m && zmq_send(w->settle[k], w->refs, m * sizeof(*w->refs), ZMQ_DONTWAIT) < 0) {
            CM_ADD(hwm_drops_settle, 1); /* stored but not acked: re-sent, re-stored */
        }
    }
}

/* ---- the spool --------------------------------------------------------- */

static void drop(size_t n)
{
    CM_ADD(hwm_drops_writer, 1); /* never acked: agents re-send */
    CM_ADD(writer_dropped_points, n);
}

/* Acknowledges every chunk below the oldest one that still has a point in
 * memory: chunks are loaded in order, each whole into one job. */
static void ack_spool(struct writer *w)
{
    if (!w->spool) {
        return;
    }
    uint64_t top = w->spool_loaded;
    for (int k = 0; k < 2; k++) {
        const struct job *j = &w->jobs[k];
        for (size_t i = 0; i < count(j); i++) {
            if (j->spool_seq[i] && j->spool_seq[i] <= top) {
                top = j->spool_seq[i] - 1;
            }
        }
    }
    if (top <= w->spool_acked) {
        return;
    }
    nw_dq_ack(w->spool, SPOOL_TYPE, top, NULL);
    w->spool_acked = top;
    struct nw_dq_stats st;
    nw_dq_stats(w->spool, &st);
    CM_SET(spool_records, w->spool_next - 1 - top);
    CM_SET(spool_bytes, st.bytes);
    if (w->spooling && top + 1 == w->spool_next) {
        w->spooling = false;
        nw_log(NW_LOG_NOTICE, "writer", "spool drained: writing from memory again");
    }
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
                       "spool: %s; points dropped (never acked, agents re-send)", err.msg);
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
        w->spool_unread++;
        CM_ADD(spool_records, 1);
        CM_ADD(spool_bytes, sizeof(worker) + k * sizeof(*pts) + NW_DQ_RECORD_OVERHEAD);
    }
    return true;
}

/* Moves spooled chunks into the filling job while they fit in a batch. */
static void load_spool(struct writer *w)
{
    while (w->spool && w->spool_unread > 0 &&
           nw_pointbuf_fits(w->fill->buf, SPOOL_CHUNK_POINTS,
                            SPOOL_CHUNK_POINTS * sizeof(struct nw_point), w->opt.batch_points)) {
        struct nw_dq_record rec;
        if (nw_dq_next(w->spool, &rec, NULL) != NW_OK) {
            w->spool_unread = 0; /* every record was returned (or unreadable) */
            return;
        }
        w->spool_unread--;
        int32_t worker;
        memcpy(&worker, rec.payload, sizeof(worker));
        size_t n = (rec.len - sizeof(worker)) / sizeof(struct nw_point);
        if (worker < 0 || worker >= w->opt.workers) {
            worker = 0; /* a spool from a run with more workers: settles are ignored */
        }
        w->spool_loaded = rec.seq > w->spool_loaded ? rec.seq : w->spool_loaded;
        /* rec.payload is the dq's buffer, and its points are not aligned:
         * copied into the (aligned) chunk buffer first. */
        memcpy(w->chunk, rec.payload + sizeof(worker), n * sizeof(struct nw_point));
        if (!add_points(w->fill, worker, (const struct nw_point *)(void *)w->chunk, n, rec.seq,
                        w->opt.batch_points)) {
            drop(n); /* cannot happen: it fit before the read */
        }
    }
}

/* ---- writing ----------------------------------------------------------- */

static void note_state(struct writer *w, const struct nw_store_outcome *o)
{
    bool down = o->code != NW_OK;
    if (down && !w->down) {
        nw_log(NW_LOG_ERROR, "writer", "store %s down: %s; holding %zu points, acks paused",
               nw_store_name(w->store), o->msg, held(w));
    } else if (!down && w->down) {
        nw_log(NW_LOG_NOTICE, "writer", "store %s up again", nw_store_name(w->store));
    }
    w->down = down;
    CM_SET(store_up, down ? 0 : 1);
}

static void submit(struct writer *w, struct job *j)
{
    if (w->fill == j) {
        w->fill = other(w, j); /* empty: the store is idle, and no retry waits */
    }
    if (w->retry == j) {
        w->retry = NULL;
    }
    w->out = j;
    while (zmq_send(w->to_store, &j, sizeof(j), 0) < 0 && errno == EINTR) {
    }
}

/* The store thread answered for the job that was out. */
static void take_answer(struct writer *w)
{
    struct job *j = NULL;
    if (zmq_recv(w->to_store, &j, sizeof(j), ZMQ_DONTWAIT) != (int)sizeof(j) || j != w->out) {
        return;
    }
    w->out = NULL;
    const struct nw_store_outcome *o = &j->out;
    CM_ADD(store_writes, 1);
    CM_ADD(store_latency_us_sum, j->write_us);
    if (j->write_us > CM_GET(store_latency_us_max)) {
        CM_SET(store_latency_us_max, j->write_us);
    }
    size_t done = o->done < count(j) ? o->done : count(j);
    if (done > 0) {
        settle(w, j, done);
        CM_ADD(points_stored, done);
        drop_front(j, done);
        if (count(j) == 0) {
            nw_pointbuf_release(j->buf, w->keep_bytes);
        }
        j->first_at = nw_clock_mono_ms();
        ack_spool(w);
    }
    if (o->code != NW_OK) {
        CM_ADD(store_failures, 1);
        w->retry_at = nw_clock_mono_ms() + (o->retry_after_ms > 0 ? o->retry_after_ms : 1000);
    }
    if (count(j) > 0) {
        w->retry = j; /* what the store did not take goes first next time */
    }
    note_state(w, o);
    note_pending(w);
}

/* Hands the next batch to the store thread when it is idle and one is due:
 * a failed job once its retry time has come, else the filling job when it
 * is full or its oldest point waited flush_ms (or at once when draining). */
static void maybe_submit(struct writer *w, int64_t now, bool draining)
{
    if (w->out) {
        return;
    }
    if (w->retry) {
        if (now >= w->retry_at) {
            submit(w, w->retry);
        }
        return;
    }
    struct job *f = w->fill;
    size_t n = count(f);
    if (n > 0 && now >= w->retry_at &&
        (draining || n >= w->opt.batch_points || now - f->first_at >= w->opt.flush_ms)) {
        submit(w, f);
    }
}

/* ---- receiving --------------------------------------------------------- */

/* Takes one message; false when none was waiting. */
static bool receive_one(struct writer *w)
{
    zmq_msg_t hdr, body;
    zmq_msg_init(&hdr);
    zmq_msg_init(&body);
    bool ok = zmq_msg_recv(&hdr, w->in, ZMQ_DONTWAIT) >= 0;
    bool whole = ok && zmq_msg_more(&hdr) && zmq_msg_recv(&body, w->in, 0) >= 0 &&
                 zmq_msg_size(&hdr) == sizeof(struct cp_batch);
    if (whole) {
        struct cp_batch b;
        memcpy(&b, zmq_msg_data(&hdr), sizeof(b));
        size_t n = zmq_msg_size(&body) / sizeof(struct nw_point);
        const struct nw_point *pts = zmq_msg_data(&body);
        /* The filling job takes a message while it fits in job_points
         * (more than a batch: the store is busy); it cannot be the retry
         * job (the store is down then: spool). */
        bool room = w->fill != w->retry && w->fill != w->out;
        bool to_spool = w->spool && (w->down || w->spool_unread > 0);
        if (n > CP_MAX_POINTS_IN || b.worker < 0 || b.worker >= w->opt.workers) {
            /* not ours: ignore */
        } else if (to_spool) {
            if (!spool_points(w, b.worker, pts, n)) {
                drop(n);
            }
        } else if (!room || !add_points(w->fill, b.worker, pts, n, 0, w->job_points)) {
            drop(n);
        }
    }
    zmq_msg_close(&hdr);
    zmq_msg_close(&body);
    return ok;
}

static void receive(struct writer *w)
{
    for (int i = 0; i < RECV_PER_TURN && receive_one(w); i++) {
    }
    if (!w->down && w->fill != w->retry && w->fill != w->out) {
        load_spool(w);
    }
    note_pending(w);
}

static int poll_timeout(const struct writer *w, int64_t now)
{
    int64_t at = now + 200;
    if (!w->out && w->retry) {
        at = w->retry_at;
    } else if (!w->out && count(w->fill) > 0) {
        at = w->fill->first_at + w->opt.flush_ms;
        at = at > w->retry_at ? at : w->retry_at;
    }
    int64_t d = at - now;
    return d < 0 ? 0 : (d > 200 ? 200 : (int)d);
}

void writer_run(struct writer *w, volatile sig_atomic_t *stop)
{
    prctl(PR_SET_NAME, "nw-writer", 0, 0, 0);
    nw_log(NW_LOG_NOTICE, "writer",
           "store %s, batches of %zu points or %" PRId64 " ms, at most %zu points held",
           nw_store_name(w->store), w->opt.batch_points, w->opt.flush_ms,
           w->opt.max_pending_points);
    while (!*stop) {
        zmq_pollitem_t items[2] = {{.socket = w->in, .events = ZMQ_POLLIN},
                                   {.socket = w->to_store, .events = ZMQ_POLLIN}};
        zmq_poll(items, 2, poll_timeout(w, nw_clock_mono_ms()));
        if (items[1].revents & ZMQ_POLLIN) {
            take_answer(w);
        }
        receive(w);
        maybe_submit(w, nw_clock_mono_ms(), false);
    }
    /* Stopping: take what the workers already sent, write it all if the
     * store lets us within drain_ms. */
    int64_t until = nw_clock_mono_ms() + w->opt.drain_ms;
    receive(w);
    while ((held(w) > 0 || w->out) && nw_clock_mono_ms() < until) {
        maybe_submit(w, nw_clock_mono_ms(), true);
        zmq_pollitem_t item = {.socket = w->to_store, .events = ZMQ_POLLIN};
        if (zmq_poll(&item, 1, 50) > 0) {
            take_answer(w);
        }
        receive(w);
    }
    /* A write still out uses the job's memory: wait for its answer. */
    while (w->out) {
        zmq_pollitem_t item = {.socket = w->to_store, .events = ZMQ_POLLIN};
        if (zmq_poll(&item, 1, 1000) > 0) {
            take_answer(w);
        }
    }
    if (held(w) > 0) {
        nw_log(NW_LOG_WARN, "writer",
               "stopping with %zu points unstored: never acked, the agents will send them "
               "again",
               held(w));
    }
}

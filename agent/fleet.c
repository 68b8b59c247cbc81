/*
 * fleet.c - devices, virtual clock and record stores of needlewatch-sim.
 *
 * The ring keeps records in one byte array: [head, tail) while not
 * wrapped, [head, end) + [0, tail) while wrapped. A record that does not
 * fit before the end of the array starts again at 0 (end remembers where
 * the upper part stops), so a record is always contiguous and can be handed
 * to the publisher in place. Invariant: the oldest record (head) is never
 * acknowledged, because every ack and every drop trims acknowledged records
 * off the head; so a drop always loses an unacknowledged record, and is
 * counted as such.
 *
 * A device's single-record message is the record itself: the ring holds the
 * encoded one-entry batch, and protobuf-c writes fields in number order, so
 * appending field 4 (queue_floor, a varint) gives exactly the bytes the
 * codec would produce for that batch with its floor. Catching up, records
 * are decoded and re-encoded as one batch of up to batch_max.
 */
#include "fleet.h"
#include "windower.h"

#include <needlewatch/hash.h>
#include <needlewatch/log.h>
#include <needlewatch/validate.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SAMPLE_MS 100
#define MODEL_RATE_HZ 120          /* nominal rate for odometers */
#define FIELD_QUEUE_FLOOR_TAG 0x20 /* field 4, varint */

/* ---- hashing ------------------------------------------------------------- */

static uint64_t mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A value derived from the seed, a purpose and a number: stable forever. */
static uint64_t derive(uint64_t seed, const char *purpose, uint64_t n)
{
    return mix64(seed ^ mix64(nw_hash_str(purpose) ^ mix64(n)));
}

/* ---- virtual clock ------------------------------------------------------- */

enum nw_err fleet_clock_init(struct fleet_clock *c, int64_t wall_now_ms, int64_t mono_now_ms,
                             int64_t duration_ms, double rate, uint32_t window_ms,
                             struct nw_error *out_err)
{
    if (!isfinite(rate) || rate <= 0 || rate > 1e6) {
        return nw_error_set(out_err, NW_ERR_CONFIG,
                            "--rate %g: must be a positive number of windows per second per "
                            "device (at most 1000000)",
                            rate);
    }
    if (duration_ms <= 0) {
        return nw_error_set(out_err, NW_ERR_CONFIG, "--duration: must be positive");
    }
    double factor = rate * (double)window_ms / 1000.0;
    double span = factor * (double)duration_ms;
    if (span - (double)duration_ms > (double)FLEET_MAX_PAST_MS) {
        return nw_error_set(out_err, NW_ERR_CONFIG,
                            "--rate %g: virtual time would start %.1f days ago (%.0fx over %" PRId64
                            " s); collectors refuse data older than 30 days: lower --rate or "
                            "--duration",
                            rate, (span - (double)duration_ms) / 86400000.0, factor,
                            duration_ms / 1000);
    }
    memset(c, 0, sizeof(*c));
    c->wall0_ms = wall_now_ms;
    c->mono0_ms = mono_now_ms;
    c->duration_ms = duration_ms;
    c->factor = factor;
    if (factor >= 1.0) {
        c->virt_end_ms = wall_now_ms + duration_ms;
        c->virt0_ms = c->virt_end_ms - llround(span);
    } else {
        c->virt0_ms = wall_now_ms;
        c->virt_end_ms = wall_now_ms + llround(span);
    }
    return NW_OK;
}

int64_t fleet_clock_virtual(const struct fleet_clock *c, int64_t mono_ms)
{
    int64_t elapsed = mono_ms - c->mono0_ms;
    if (elapsed <= 0) {
        return c->virt0_ms;
    }
    if (elapsed >= c->duration_ms) {
        return c->virt_end_ms;
    }
    int64_t v = c->virt0_ms + (int64_t)floor((double)elapsed * c->factor);
    return v < c->virt_end_ms ? v : c->virt_end_ms;
}

int64_t fleet_clock_to_wall_ms(const struct fleet_clock *c, int64_t virt_span_ms)
{
    if (virt_span_ms <= 0 || c->factor <= 0) {
        return 0;
    }
    return (int64_t)ceil((double)virt_span_ms / c->factor);
}

/* ---- resend ring --------------------------------------------------------- */

struct fleet_ring {
    uint8_t *buf;
    size_t cap;
    size_t head, tail, end; /* end: where the upper part stops while wrapped */
    bool wrapped;
    size_t count, bytes;
    size_t cur, sent; /* cursor position; records before it */
    uint64_t last[FLEET_REC_TYPES];
    uint64_t acked_seq[FLEET_REC_TYPES];
    uint64_t acked[FLEET_REC_TYPES];
    uint64_t dropped[FLEET_REC_TYPES];
};

struct fleet_ring *fleet_ring_new(size_t cap_bytes)
{
    if (cap_bytes < FLEET_RING_MIN) {
        return NULL;
    }
    struct fleet_ring *r = calloc(1, sizeof(*r));
    if (!r) {
        return NULL;
    }
    r->cap = cap_bytes & ~(size_t)7;
    r->buf = malloc(r->cap);
    if (!r->buf) {
        free(r);
        return NULL;
    }
    return r;
}

void fleet_ring_destroy(struct fleet_ring **p)
{
    if (!p || !*p) {
        return;
    }
    free((*p)->buf);
    free(*p);
    *p = NULL;
}

/* Header: u32 length, u8 type, 3 bytes padding, u64 seq. */
static void read_rec(const struct fleet_ring *r, size_t pos, struct fleet_rec *out)
{
    uint32_t len;
    uint64_t seq;
    memcpy(&len, r->buf + pos, sizeof(len));
    memcpy(&seq, r->buf + pos + 8, sizeof(seq));
    out->type = (enum fleet_rec_type)r->buf[pos + 4];
    out->seq = seq;
    out->data = r->buf + pos + FLEET_RING_HEADER;
    out->len = len;
}

static size_t next_pos(const struct fleet_ring *r, size_t pos)
{
    struct fleet_rec h;
    read_rec(r, pos, &h);
    size_t p = pos + FLEET_RING_RECORD_SIZE(h.len);
    if (r->wrapped && p == r->end) {
        p = 0;
    }
    return p;
}

static void reset_empty(struct fleet_ring *r)
{
    r->head = r->tail = r->end = r->cur = r->sent = 0;
    r->wrapped = false;
}

static void pop_head(struct fleet_ring *r)
{
    struct fleet_rec h;
    read_rec(r, r->head, &h);
    size_t size = FLEET_RING_RECORD_SIZE(h.len);
    r->head += size;
    r->bytes -= size;
    r->count--;
    if (r->wrapped && r->head == r->end) {
        r->head = 0;
        r->end = 0;
        r->wrapped = false;
    }
    if (r->count == 0) {
        reset_empty(r);
        return;
    }
    if (r->sent > 0) {
        r->sent--; /* the record was behind the cursor */
    }
    if (r->sent == 0) {
        r->cur = r->head;
    }
}

/* Removes acknowledged records from the head (keeps the invariant). */
static void trim(struct fleet_ring *r)
{
    for (size_t guard = r->count; guard > 0 && r->count > 0; guard--) {
        struct fleet_rec h;
        read_rec(r, r->head, &h);
        if (h.seq > r->acked_seq[h.type]) {
            return;
        }
        r->acked[h.type]++;
        pop_head(r);
    }
}

enum nw_err fleet_ring_append(struct fleet_ring *r, enum fleet_rec_type type, uint64_t seq,
                              const void *data, size_t len, struct nw_error *out_err)
{
    if ((unsigned)type >= FLEET_REC_TYPES || seq <= r->last[type]) {
        return nw_error_set(
            out_err, NW_ERR_INVAL, "ring: record type %u seq %" PRIu64 " not after %" PRIu64,
            (unsigned)type, seq, (unsigned)type < FLEET_REC_TYPES ? r->last[type] : 0);
    }
    size_t need = FLEET_RING_RECORD_SIZE(len);
    if (len > UINT32_MAX || need > r->cap) {
        return nw_error_set(out_err, NW_ERR_TOO_BIG, "ring: record of %zu bytes exceeds %zu", len,
                            r->cap);
    }
    size_t pos = SIZE_MAX;
    /* Each pass places the record or drops one: at most count + 1 passes. */
    for (size_t guard = r->count + 1; guard > 0; guard--) {
        if (r->count == 0) {
            reset_empty(r);
        }
        if (!r->wrapped) {
            if (r->cap - r->tail >= need) {
                pos = r->tail;
            } else if (r->head >= need) {
                r->end = r->tail;
                r->wrapped = true;
                pos = 0;
            }
        } else if (r->head - r->tail >= need) {
            pos = r->tail;
        }
        if (pos != SIZE_MAX) {
            break;
        }
        struct fleet_rec h;
        read_rec(r, r->head, &h);
        r->dropped[h.type]++; /* unacknowledged: the invariant */
        pop_head(r);
        trim(r);
    }
    if (pos == SIZE_MAX) {
        return nw_error_set(out_err, NW_ERR_FULL, "ring: no room (internal error)");
    }
    uint32_t len32 = (uint32_t)len;
    uint8_t hdr[FLEET_RING_HEADER] = {0};
    memcpy(hdr, &len32, sizeof(len32));
    hdr[4] = (uint8_t)type;
    memcpy(hdr + 8, &seq, sizeof(seq));
    memcpy(r->buf + pos, hdr, sizeof(hdr));
    if (len) {
        memcpy(r->buf + pos + FLEET_RING_HEADER, data, len);
    }
    if (r->sent == r->count) {
        r->cur = pos; /* the cursor was at the end: it points at the new record */
    }
    r->tail = pos + need;
    r->count++;
    r->bytes += need;
    r->last[type] = seq;
    return NW_OK;
}

bool fleet_ring_peek(struct fleet_ring *r, struct fleet_rec *out)
{
    while (r->sent < r->count) {
        read_rec(r, r->cur, out);
        if (out->seq > r->acked_seq[out->type]) {
            return true;
        }
        r->cur = next_pos(r, r->cur); /* acknowledged behind an older record */
        r->sent++;
    }
    return false;
}

void fleet_ring_take(struct fleet_ring *r)
{
    if (r->sent < r->count) {
        r->cur = next_pos(r, r->cur);
        r->sent++;
    }
}

void fleet_ring_rewind(struct fleet_ring *r)
{
    r->cur = r->head;
    r->sent = 0;
}

enum nw_err fleet_ring_ack(struct fleet_ring *r, enum fleet_rec_type type, uint64_t seq,
                           struct nw_error *out_err)
{
    if ((unsigned)type >= FLEET_REC_TYPES) {
        return nw_error_set(out_err, NW_ERR_INVAL, "ring: bad record type %u", (unsigned)type);
    }
    if (seq > r->last[type]) {
        return nw_error_set(out_err, NW_ERR_INVALID,
                            "ack of %s seq %" PRIu64 " beyond the newest made (%" PRIu64 ")",
                            type == FLEET_REC_WINDOW ? "window" : "event", seq, r->last[type]);
    }
    if (seq > r->acked_seq[type]) {
        r->acked_seq[type] = seq;
        trim(r);
    }
    return NW_OK;
}

uint64_t fleet_ring_floor(const struct fleet_ring *r, enum fleet_rec_type type)
{
    size_t pos = r->head;
    for (size_t i = 0; i < r->count; i++) {
        struct fleet_rec h;
        read_rec(r, pos, &h);
        if (h.type == type && h.seq > r->acked_seq[type]) {
            return h.seq;
        }
        pos = next_pos(r, pos);
    }
    return 0;
}

void fleet_ring_unacked(const struct fleet_ring *r, uint64_t out_unacked[FLEET_REC_TYPES],
                        uint64_t out_stalled[FLEET_REC_TYPES])
{
    bool next_held[FLEET_REC_TYPES] = {false, false};
    uint64_t un[FLEET_REC_TYPES] = {0, 0};
    size_t pos = r->head;
    for (size_t i = 0; i < r->count; i++) {
        struct fleet_rec h;
        read_rec(r, pos, &h);
        if (h.seq > r->acked_seq[h.type]) {
            un[h.type]++;
            next_held[h.type] |= h.seq == r->acked_seq[h.type] + 1;
        }
        pos = next_pos(r, pos);
    }
    for (int t = 0; t < FLEET_REC_TYPES; t++) {
        out_unacked[t] = un[t];
        if (out_stalled) {
            out_stalled[t] = next_held[t] ? 0 : un[t];
        }
    }
}

void fleet_ring_get_stats(const struct fleet_ring *r, struct fleet_store_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->cap = r->cap;
    out->bytes = r->bytes;
    out->records = r->count;
    for (int t = 0; t < FLEET_REC_TYPES; t++) {
        out->last_seq[t] = r->last[t];
        out->acked_seq[t] = r->acked_seq[t];
        out->acked[t] = r->acked[t];
        out->dropped[t] = out->dropped_total[t] = r->dropped[t];
    }
}

/* ---- record store: one interface, a ring or a disk queue behind it ------ */

struct store_ops {
    enum nw_err (*append)(void *impl, enum fleet_rec_type type, uint64_t seq, const void *data,
                          size_t len, struct nw_error *err);
    bool (*peek)(void *impl, struct fleet_rec *out);
    void (*take)(void *impl);
    void (*rewind)(void *impl);
    enum nw_err (*ack)(void *impl, enum fleet_rec_type type, uint64_t seq, struct nw_error *err);
    uint64_t (*floor)(const void *impl, enum fleet_rec_type type);
    void (*unacked)(const void *impl, uint64_t un[FLEET_REC_TYPES], uint64_t st[FLEET_REC_TYPES]);
    void (*stats)(const void *impl, struct fleet_store_stats *out);
    void (*tick)(void *impl);
    void (*destroy)(void *impl);
};

struct fleet_store {
    const struct store_ops *ops;
    void *impl;
};

enum nw_err fleet_store_append(struct fleet_store *s, enum fleet_rec_type type, uint64_t seq,
                               const void *data, size_t len, struct nw_error *out_err)
{
    return s->ops->append(s->impl, type, seq, data, len, out_err);
}

bool fleet_store_peek(struct fleet_store *s, struct fleet_rec *out)
{
    return s->ops->peek(s->impl, out);
}

void fleet_store_take(struct fleet_store *s)
{
    s->ops->take(s->impl);
}

void fleet_store_rewind(struct fleet_store *s)
{
    s->ops->rewind(s->impl);
}

enum nw_err fleet_store_ack(struct fleet_store *s, enum fleet_rec_type type, uint64_t seq,
                            struct nw_error *out_err)
{
    if ((unsigned)type >= FLEET_REC_TYPES) {
        return nw_error_set(out_err, NW_ERR_INVAL, "store: bad record type %u", (unsigned)type);
    }
    return s->ops->ack(s->impl, type, seq, out_err);
}

uint64_t fleet_store_floor(const struct fleet_store *s, enum fleet_rec_type type)
{
    return (unsigned)type < FLEET_REC_TYPES ? s->ops->floor(s->impl, type) : 0;
}

void fleet_store_unacked(const struct fleet_store *s, uint64_t out_unacked[FLEET_REC_TYPES],
                         uint64_t out_stalled[FLEET_REC_TYPES])
{
    uint64_t st[FLEET_REC_TYPES];
    s->ops->unacked(s->impl, out_unacked, out_stalled ? out_stalled : st);
}

void fleet_store_get_stats(const struct fleet_store *s, struct fleet_store_stats *out)
{
    s->ops->stats(s->impl, out);
}

void fleet_store_tick(struct fleet_store *s)
{
    if (s->ops->tick) {
        s->ops->tick(s->impl);
    }
}

void fleet_store_destroy(struct fleet_store **p)
{
    if (!p || !*p) {
        return;
    }
    (*p)->ops->destroy((*p)->impl);
    free(*p);
    *p = NULL;
}

static struct fleet_store *store_wrap(const struct store_ops *ops, void *impl)
{
    struct fleet_store *s = malloc(sizeof(*s));
    if (s) {
        s->ops = ops;
        s->impl = impl;
    }
    return s;
}

/* -- memory: the ring -- */

static enum nw_err mem_append(void *impl, enum fleet_rec_type type, uint64_t seq, const void *data,
                              size_t len, struct nw_error *err)
{
    if (len > FLEET_RECORD_MAX) {
        return nw_error_set(err, NW_ERR_TOO_BIG, "store: record of %zu bytes exceeds %d", len,
                            FLEET_RECORD_MAX);
    }
    return fleet_ring_append(impl, type, seq, data, len, err);
}

static bool mem_peek(void *impl, struct fleet_rec *out)
{
    return fleet_ring_peek(impl, out);
}

static void mem_take(void *impl)
{
    fleet_ring_take(impl);
}

static void mem_rewind(void *impl)
{
    fleet_ring_rewind(impl);
}

static enum nw_err mem_ack(void *impl, enum fleet_rec_type type, uint64_t seq, struct nw_error *err)
{
    return fleet_ring_ack(impl, type, seq, err);
}

static uint64_t mem_floor(const void *impl, enum fleet_rec_type type)
{
    return fleet_ring_floor(impl, type);
}

static void mem_unacked(const void *impl, uint64_t un[FLEET_REC_TYPES],
                        uint64_t st[FLEET_REC_TYPES])
{
    fleet_ring_unacked(impl, un, st);
}

static void mem_stats(const void *impl, struct fleet_store_stats *out)
{
    fleet_ring_get_stats(impl, out);
}

static void mem_destroy(void *impl)
{
    struct fleet_ring *r = impl;
    fleet_ring_destroy(&r);
}

static const struct store_ops mem_ops = {.append = mem_append,
                                         .peek = mem_peek,
                                         .take = mem_take,
                                         .rewind = mem_rewind,
                                         .ack = mem_ack,
                                         .floor = mem_floor,
                                         .unacked = mem_unacked,
                                         .stats = mem_stats,
                                         .destroy = mem_destroy};

struct fleet_store *fleet_store_memory_new(size_t cap_bytes)
{
    struct fleet_ring *r = fleet_ring_new(cap_bytes);
    struct fleet_store *s = r ? store_wrap(&mem_ops, r) : NULL;
    if (!s) {
        fleet_ring_destroy(&r);
    }
    return s;
}

/* -- disk: the agent's queue --
 *
 * The queue hands records out with a cursor that moves as it reads (no
 * peek), and keeps only per-segment summaries, so this side keeps:
 *   - a one-record look-ahead (copied: the queue's buffer changes on the
 *     next call), which is what peek returns until take;
 *   - per type, the unacknowledged seqs on disk as a short list of runs
 *     [first, last]: appended seqs extend the newest run or start one
 *     (after a data_gap hole), acks trim the oldest, and the queue's drop
 *     counter says how many of the oldest an overflow took. The floor is
 *     the first run's first seq, unacked the runs' length, all exact and
 *     in memory that grows with the number of holes, not of records. Past
 *     RUNS_MAX holes the two newest runs merge (counts then err high: a
 *     drain waits longer, never shorter). Rebuilt by one read at open.
 */

#define RUNS_MAX 64

struct seq_run {
    uint64_t first, last;
};

struct seq_runs {
    struct seq_run r[RUNS_MAX];
    size_t n;
};

static void runs_push(struct seq_runs *rs, uint64_t seq)
{
    if (rs->n > 0 && seq <= rs->r[rs->n - 1].last) {
        return; /* not ascending: the queue refuses such appends anyway */
    }
    if (rs->n > 0 && rs->r[rs->n - 1].last + 1 == seq) {
        rs->r[rs->n - 1].last = seq;
    } else if (rs->n == RUNS_MAX) {
        rs->r[rs->n - 1].last = seq; /* merge over the hole (see above) */
    } else {
        rs->r[rs->n++] = (struct seq_run){seq, seq};
    }
}

static uint64_t runs_count(const struct seq_runs *rs)
{
    uint64_t n = 0;
    for (size_t i = 0; i < rs->n; i++) {
        n += rs->r[i].last - rs->r[i].first + 1;
    }
    return n;
}

static uint64_t runs_front(const struct seq_runs *rs)
{
    return rs->n ? rs->r[0].first : 0;
}

static void runs_pop(struct seq_runs *rs)
{
    memmove(&rs->r[0], &rs->r[1], (rs->n - 1) * sizeof(rs->r[0]));
    rs->n--;
}

/* Removes every seq <= upto; returns how many. */
static uint64_t runs_trim(struct seq_runs *rs, uint64_t upto)
{
    uint64_t removed = 0;
    while (rs->n > 0 && rs->r[0].first <= upto) {
        if (rs->r[0].last <= upto) {
            removed += rs->r[0].last - rs->r[0].first + 1;
            runs_pop(rs);
        } else {
            removed += upto - rs->r[0].first + 1;
            rs->r[0].first = upto + 1;
        }
    }
    return removed;
}

/* Removes the k oldest seqs. */
static void runs_drop(struct seq_runs *rs, uint64_t k)
{
    while (k > 0 && rs->n > 0) {
        uint64_t len = rs->r[0].last - rs->r[0].first + 1;
        if (len <= k) {
            k -= len;
            runs_pop(rs);
        } else {
            rs->r[0].first += k;
            k = 0;
        }
    }
}

struct disk_store {
    struct nw_dq *dq;
    size_t cap;
    struct seq_runs held[FLEET_REC_TYPES]; /* unacked seqs on disk */
    uint64_t acked[FLEET_REC_TYPES];       /* since open */
    uint64_t dropped[FLEET_REC_TYPES];     /* since open */
    uint64_t dq_dropped[FLEET_REC_TYPES];  /* the queue's counter when last looked at */
    uint64_t skipped;                      /* records not ours (type, size) */
    bool have_look;
    struct fleet_rec look;
    uint8_t look_buf[FLEET_RECORD_MAX];
    bool io_logged;
};

static const uint8_t dq_type_of[FLEET_REC_TYPES] = {NW_DQ_TYPE_WINDOW, NW_DQ_TYPE_EVENT};

/* The fleet type of a queue record type, or -1. */
static int fleet_type_of(uint8_t dq_type)
{
    return dq_type == NW_DQ_TYPE_WINDOW ? FLEET_REC_WINDOW
                                        : (dq_type == NW_DQ_TYPE_EVENT ? FLEET_REC_EVENT : -1);
}

static void disk_log_io(struct disk_store *ds, const struct nw_error *err)
{
    if (!ds->io_logged) {
        nw_log(NW_LOG_WARN, "fleet", "%s", err->msg);
        ds->io_logged = true;
    }
}

/* Counts what overflow took since the last look (the queue drops inside
 * nw_dq_append) off the oldest runs. */
static void disk_note_drops(struct disk_store *ds)
{
    struct nw_dq_stats st;
    nw_dq_stats(ds->dq, &st);
    for (int t = 0; t < FLEET_REC_TYPES; t++) {
        uint64_t now = st.dropped[dq_type_of[t]];
        if (now > ds->dq_dropped[t]) {
            ds->dropped[t] += now - ds->dq_dropped[t];
            runs_drop(&ds->held[t], now - ds->dq_dropped[t]);
        }
        ds->dq_dropped[t] = now;
    }
}

static enum nw_err disk_append(void *impl, enum fleet_rec_type type, uint64_t seq, const void *data,
                               size_t len, struct nw_error *err)
{
    struct disk_store *ds = impl;
    if ((unsigned)type >= FLEET_REC_TYPES) {
        return nw_error_set(err, NW_ERR_INVAL, "store: bad record type %u", (unsigned)type);
    }
    if (len > FLEET_RECORD_MAX) {
        return nw_error_set(err, NW_ERR_TOO_BIG, "store: record of %zu bytes exceeds %d", len,
                            FLEET_RECORD_MAX);
    }
    enum nw_err rc = nw_dq_append(ds->dq, dq_type_of[type], seq, data, len, err);
    disk_note_drops(ds); /* also after a failed append: it may have dropped first */
    if (rc != NW_OK) {
        return rc;
    }
    runs_push(&ds->held[type], seq);
    return NW_OK;
}

/* Whether seq of type is still on disk and unacknowledged. */
static bool disk_holds(const struct disk_store *ds, int type, uint64_t seq)
{
    uint64_t front = runs_front(&ds->held[type]);
    return front != 0 && seq >= front;
}

static bool disk_peek(void *impl, struct fleet_rec *out)
{
    struct disk_store *ds = impl;
    if (ds->have_look && disk_holds(ds, ds->look.type, ds->look.seq)) {
        *out = ds->look;
        return true;
    }
    ds->have_look = false;
    for (;;) { /* ends: every call moves the queue's cursor on */
        struct nw_dq_record rec;
        struct nw_error err = {0};
        enum nw_err rc = nw_dq_next(ds->dq, &rec, &err);
        if (rc != NW_OK) {
            if (rc != NW_ERR_NOT_FOUND) {
                disk_log_io(ds, &err);
            }
            return false;
        }
        int t = fleet_type_of(rec.type);
        if (t < 0 || rec.len > FLEET_RECORD_MAX) {
            ds->skipped++;
            continue;
        }
        if (!disk_holds(ds, t, rec.seq)) {
            continue; /* acked or dropped since the queue's cursor passed it */
        }
        if (rec.len) {
            memcpy(ds->look_buf, rec.payload, rec.len);
        }
        ds->look = (struct fleet_rec){
            .type = (enum fleet_rec_type)t, .seq = rec.seq, .data = ds->look_buf, .len = rec.len};
        ds->have_look = true;
        *out = ds->look;
        return true;
    }
}

static void disk_take(void *impl)
{
    struct disk_store *ds = impl;
    ds->have_look = false;
}

static void disk_rewind(void *impl)
{
    struct disk_store *ds = impl;
    nw_dq_rewind(ds->dq);
    ds->have_look = false;
}

static enum nw_err disk_ack(void *impl, enum fleet_rec_type type, uint64_t seq,
                            struct nw_error *err)
{
    struct disk_store *ds = impl;
    uint64_t newest = nw_dq_max_seq(ds->dq, dq_type_of[type]);
    if (seq > newest) {
        return nw_error_set(err, NW_ERR_INVALID,
                            "ack of %s seq %" PRIu64 " beyond the newest made (%" PRIu64 ")",
                            type == FLEET_REC_WINDOW ? "window" : "event", seq, newest);
    }
    struct nw_error e = {0};
    enum nw_err rc = nw_dq_ack(ds->dq, dq_type_of[type], seq, &e);
    if (rc != NW_OK && rc != NW_ERR_IO) {
        return nw_error_set(err, rc, "%s", e.msg);
    }
    if (rc == NW_ERR_IO) {
        disk_log_io(ds, &e); /* kept in memory by the queue, written later */
    }
    ds->acked[type] += runs_trim(&ds->held[type], seq);
    return NW_OK;
}

static uint64_t disk_floor(const void *impl, enum fleet_rec_type type)
{
    const struct disk_store *ds = impl;
    return runs_front(&ds->held[type]);
}

static void disk_unacked(const void *impl, uint64_t un[FLEET_REC_TYPES],
                         uint64_t st[FLEET_REC_TYPES])
{
    const struct disk_store *ds = impl;
    struct nw_dq_stats qs;
    nw_dq_stats(ds->dq, &qs);
    for (int t = 0; t < FLEET_REC_TYPES; t++) {
        un[t] = runs_count(&ds->held[t]);
        uint64_t front = runs_front(&ds->held[t]);
        st[t] = un[t] && front != qs.acked_seq[dq_type_of[t]] + 1 ? un[t] : 0;
    }
}

static void disk_stats(const void *impl, struct fleet_store_stats *out)
{
    const struct disk_store *ds = impl;
    struct nw_dq_stats qs;
    nw_dq_stats(ds->dq, &qs);
    memset(out, 0, sizeof(*out));
    out->cap = ds->cap;
    out->bytes = (size_t)qs.bytes;
    for (int t = 0; t < FLEET_REC_TYPES; t++) {
        uint8_t q = dq_type_of[t];
        out->records += (size_t)runs_count(&ds->held[t]);
        out->last_seq[t] = nw_dq_max_seq(ds->dq, q);
        out->acked_seq[t] = qs.acked_seq[q];
        out->acked[t] = ds->acked[t];
        out->dropped[t] = ds->dropped[t];
        out->dropped_total[t] = qs.dropped[q];
    }
}

static void disk_tick(void *impl)
{
    struct disk_store *ds = impl;
    struct nw_error err = {0};
    if (nw_dq_tick(ds->dq, &err) != NW_OK) {
        disk_log_io(ds, &err);
    }
}

static void disk_destroy(void *impl)
{
    struct disk_store *ds = impl;
    nw_dq_close(&ds->dq);
    free(ds);
}

static const struct store_ops disk_ops = {.append = disk_append,
                                          .peek = disk_peek,
                                          .take = disk_take,
                                          .rewind = disk_rewind,
                                          .ack = disk_ack,
                                          .floor = disk_floor,
                                          .unacked = disk_unacked,
                                          .stats = disk_stats,
                                          .tick = disk_tick,
                                          .destroy = disk_destroy};

enum nw_err fleet_store_disk_open(const char *dir, size_t max_bytes, enum nw_dq_sync sync,
                                  struct fleet_store **out, struct nw_error *out_err)
{
    *out = NULL;
    if (max_bytes < FLEET_RING_MIN) {
        return nw_error_set(out_err, NW_ERR_INVAL, "store: %zu bytes is below %d", max_bytes,
                            FLEET_RING_MIN);
    }
    struct disk_store *ds = calloc(1, sizeof(*ds));
    if (!ds) {
        return nw_error_set(out_err, NW_ERR_NOMEM, "store: out of memory");
    }
    struct nw_dq_options o;
    nw_dq_options_init(&o, dir);
    o.max_bytes = max_bytes;
    o.segment_bytes = max_bytes / 4 > 4096 ? max_bytes / 4 : 4096;
    o.sync = sync;
    ds->cap = max_bytes;
    enum nw_err rc = nw_dq_open(&o, &ds->dq, out_err);
    if (rc != NW_OK) {
        free(ds);
        return rc;
    }
    /* One pass over what the queue holds unacknowledged: the runs. */
    for (;;) {
        struct nw_dq_record rec;
        struct nw_error err = {0};
        rc = nw_dq_next(ds->dq, &rec, &err);
        if (rc == NW_ERR_NOT_FOUND) {
            break;
        }
        if (rc != NW_OK) {
            nw_dq_close(&ds->dq);
            free(ds);
            return nw_error_set(out_err, rc, "%s", err.msg);
        }
        int t = fleet_type_of(rec.type);
        if (t < 0 || rec.len > FLEET_RECORD_MAX) {
            ds->skipped++;
            continue;
        }
        runs_push(&ds->held[t], rec.seq);
    }
    nw_dq_rewind(ds->dq);
    struct nw_dq_stats qs;
    nw_dq_stats(ds->dq, &qs);
    for (int t = 0; t < FLEET_REC_TYPES; t++) {
        ds->dq_dropped[t] = qs.dropped[dq_type_of[t]];
    }
    *out = store_wrap(&disk_ops, ds);
    if (!*out) {
        disk_destroy(ds);
        return nw_error_set(out_err, NW_ERR_NOMEM, "store: out of memory");
    }
    return NW_OK;
}

bool fleet_store_is_disk(const struct fleet_store *s)
{
    return s->ops == &disk_ops;
}

/* ---- configuration, names, faults ---------------------------------------- */

void fleet_config_init(struct fleet_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->seed = 1;
    cfg->ndevices = 10;
    cfg->nclinics = 3;
    snprintf(cfg->id_prefix, sizeof(cfg->id_prefix), "SIM-");
    cfg->window_ms = 1000;
    cfg->buffer_bytes = 16 * 1024;
    cfg->queue_sync = NW_DQ_SYNC_NEVER;
    snprintf(cfg->firmware, sizeof(cfg->firmware), "sim-%s", NW_VERSION);
}

static unsigned id_width(const struct fleet_config *cfg)
{
    unsigned w = 1;
    for (unsigned n = cfg->ndevices; n >= 10; n /= 10) {
        w++;
    }
    return w < 4 ? 4 : w;
}

enum nw_err fleet_device_id(const struct fleet_config *cfg, unsigned n,
                            char out[NW_DEVICE_ID_MAX + 1])
{
    int len = snprintf(out, NW_DEVICE_ID_MAX + 1, "%s%0*u", cfg->id_prefix, (int)id_width(cfg), n);
    if (len < 0 || len > NW_DEVICE_ID_MAX || !nw_valid_device_id(out)) {
        out[0] = '\0';
        return NW_ERR_INVAL;
    }
    return NW_OK;
}

unsigned fleet_device_number(const struct fleet_config *cfg, const char *id)
{
    size_t plen = strlen(cfg->id_prefix);
    if (strncmp(id, cfg->id_prefix, plen) != 0) {
        return 0;
    }
    const char *digits = id + plen;
    size_t ndig = strlen(digits);
    if (ndig != id_width(cfg)) {
        return 0;
    }
    uint64_t n = 0;
    for (size_t i = 0; i < ndig; i++) {
        if (digits[i] < '0' || digits[i] > '9') {
            return 0;
        }
        n = n * 10 + (uint64_t)(digits[i] - '0');
    }
    return n >= 1 && n <= cfg->ndevices ? (unsigned)n : 0;
}

enum nw_err fleet_config_check(const struct fleet_config *cfg, struct nw_error *out_err)
{
    if (cfg->ndevices < 1 || cfg->ndevices > FLEET_DEVICES_MAX) {
        return nw_error_set(out_err, NW_ERR_CONFIG, "--devices %u: must be 1-%d", cfg->ndevices,
                            FLEET_DEVICES_MAX);
    }
    if (cfg->nclinics < 1 || cfg->nclinics > FLEET_CLINICS_MAX) {
        return nw_error_set(out_err, NW_ERR_CONFIG, "--clinics %u: must be 1-%d", cfg->nclinics,
                            FLEET_CLINICS_MAX);
    }
    for (const char *p = cfg->id_prefix; *p; p++) {
        bool ok = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                  (*p >= '0' && *p <= '9') || *p == '_' || *p == '-';
        if (!ok) {
            return nw_error_set(out_err, NW_ERR_CONFIG,
                                "--id-prefix \"%s\": only [A-Za-z0-9_-] may be used",
                                cfg->id_prefix);
        }
    }
    char id[NW_DEVICE_ID_MAX + 1];
    if (fleet_device_id(cfg, cfg->ndevices, id) != NW_OK) {
        return nw_error_set(out_err, NW_ERR_CONFIG,
                            "--id-prefix \"%s\": ids would be longer than %d characters",
                            cfg->id_prefix, NW_DEVICE_ID_MAX);
    }
    if (cfg->window_ms < AGENT_WINDOW_MS_MIN || cfg->window_ms > AGENT_WINDOW_MS_MAX) {
        return nw_error_set(out_err, NW_ERR_CONFIG, "--window-ms %u: must be %d-%d", cfg->window_ms,
                            AGENT_WINDOW_MS_MIN, AGENT_WINDOW_MS_MAX);
    }
    if (cfg->buffer_bytes < FLEET_RING_MIN || cfg->buffer_bytes > (size_t)64 << 20) {
        return nw_error_set(out_err, NW_ERR_CONFIG, "--buffer %zu: must be %d bytes to 64 MiB",
                            cfg->buffer_bytes, FLEET_RING_MIN);
    }
    if (strnlen(cfg->queue_dir, sizeof(cfg->queue_dir)) >= FLEET_QUEUE_DIR_MAX) {
        return nw_error_set(out_err, NW_ERR_CONFIG, "--queue-dir: longer than %d bytes",
                            FLEET_QUEUE_DIR_MAX - 1);
    }
    return NW_OK;
}

static size_t faults_of(const struct fleet_config *cfg, unsigned device)
{
    size_t n = 0;
    for (size_t i = 0; i < cfg->nfaults; i++) {
        n += cfg->faults[i].device == device;
    }
    return n;
}

enum nw_err fleet_config_add_fault(struct fleet_config *cfg, const char *spec,
                                   struct nw_error *out_err)
{
    struct agent_fault f;
    char dev[NW_DEVICE_ID_MAX + 1];
    if (agent_fault_parse(spec, &f, dev, out_err) != NW_OK) {
        return NW_ERR_CONFIG;
    }
    unsigned n = fleet_device_number(cfg, dev);
    if (n == 0) {
        char first[NW_DEVICE_ID_MAX + 1], last[NW_DEVICE_ID_MAX + 1];
        fleet_device_id(cfg, 1, first);
        fleet_device_id(cfg, cfg->ndevices, last);
        return nw_error_set(out_err, NW_ERR_CONFIG,
                            "--fault %s: no device \"%s\" in this fleet (%s..%s)", spec, dev, first,
                            last);
    }
    if (cfg->nfaults >= FLEET_FAULTS_MAX) {
        return nw_error_set(out_err, NW_ERR_CONFIG, "--fault %s: more than %d faults", spec,
                            FLEET_FAULTS_MAX);
    }
    if (faults_of(cfg, n) >= AGENT_SIM_MAX_FAULTS) {
        return nw_error_set(out_err, NW_ERR_CONFIG, "--fault %s: more than %d faults on %s", spec,
                            AGENT_SIM_MAX_FAULTS, dev);
    }
    cfg->faults[cfg->nfaults++] = (struct fleet_fault){.fault = f, .device = n};
    return NW_OK;
}

bool fleet_config_has_fault(const struct fleet_config *cfg, unsigned device,
                            enum agent_fault_kind kind)
{
    for (size_t i = 0; i < cfg->nfaults; i++) {
        if (cfg->faults[i].device == device && cfg->faults[i].fault.kind == kind) {
            return true;
        }
    }
    return false;
}

/* Clinic names: a seeded walk over these, with a unit number for the
 * second round and beyond (and for the first clinic and some others of the
 * first round), so names are unique and even a small fleet has commas in
 * them; some also carry quotes and accents. */
static const char *const clinic_bases[] = {
    "Clínica São Paulo",
    "Hairline Studio Leeds",
    "Zürich Haarklinik",
    "Kraków Scalp Studio",
    "Northside Scalp Co., Dublin",
    "Clinique Capillaire Lyon-Part-Dieu",
    "Łódź SMP Atelier",
    "København Hårklinik",
    "Málaga Dermopigmentación",
    "Montréal Micro-Pigmentation",
    "Scalp Art \"Nord\", Hamburg",
    "İstanbul Şişli Saç Kliniği",
    "Praha Vlasová Klinika",
    "Athens Trichology Centre",
    "Ōsaka Hairline Clinic",
    "Cape Town SMP, Sea Point",
    "Melbourne Scalp Studio",
    "Austin Hairline & Co.",
    "Lisboa Micropigmentação",
    "Göteborg Hårklinik",
    "A Coruña Clínica Capilar",
    "Bogotá Estética Capilar",
    "Reykjavík Hair Studio",
    "Wrocław Trychologia",
};
#define NBASES (sizeof(clinic_bases) / sizeof(clinic_bases[0]))

unsigned fleet_clinic_of(const struct fleet_config *cfg, unsigned n)
{
    if (n >= 1 && n <= cfg->nclinics) {
        return n - 1; /* every clinic has at least one device */
    }
    return (unsigned)(derive(cfg->seed, "clinic-of", n) % cfg->nclinics);
}

void fleet_clinic_name(const struct fleet_config *cfg, unsigned clinic, char out[NW_CLINIC_MAX + 1])
{
    static const unsigned strides[] = {1, 5, 7, 11, 13, 17, 19, 23}; /* coprime with 24 */
    uint64_t h = derive(cfg->seed, "clinic-walk", 0);
    unsigned stride = strides[h % (sizeof(strides) / sizeof(strides[0]))];
    unsigned base = (unsigned)((h >> 8) % NBASES + (uint64_t)clinic * stride) % NBASES;
    unsigned round = clinic / NBASES;
    if (round > 0) {
        snprintf(out, NW_CLINIC_MAX + 1, "%s, Unit %u", clinic_bases[base], round + 1);
    } else if (clinic == 0 || derive(cfg->seed, "clinic-unit", clinic) % 3 == 0) {
        snprintf(out, NW_CLINIC_MAX + 1, "%s, Unit 1", clinic_bases[base]);
    } else {
        snprintf(out, NW_CLINIC_MAX + 1, "%s", clinic_bases[base]);
    }
}

static const char *const model_names[FLEET_MODELS] = {"DG-3", "DG-3X"};

unsigned fleet_model_index(const struct fleet_config *cfg, unsigned n)
{
    return derive(cfg->seed, "model", n) % 5 == 0 ? 1 : 0;
}

const char *fleet_model_name(unsigned index)
{
    return index < FLEET_MODELS ? model_names[index] : "?";
}

const char *fleet_model_of(const struct fleet_config *cfg, unsigned n)
{
    return model_names[fleet_model_index(cfg, n)];
}

size_t fleet_csv_field(const char *s, char *out, size_t cap)
{
    size_t len = strlen(s);
    bool quote = len > 0 && (s[0] == ' ' || s[len - 1] == ' ');
    quote = quote || strpbrk(s, ",\"\r\n") != NULL;
    size_t o = 0;
    if (quote && o < cap) {
        out[o++] = '"';
    }
    for (size_t i = 0; i < len && o < cap; i++) {
        if (s[i] == '"' && quote) {
            out[o++] = '"';
        }
        if (o < cap) {
            out[o++] = s[i];
        }
    }
    if (quote && o < cap) {
        out[o++] = '"';
    }
    if (o >= cap) {
        if (cap > 0) {
            out[0] = '\0';
        }
        return 0;
    }
    out[o] = '\0';
    return o;
}

enum nw_err fleet_inventory_write(const struct fleet_config *cfg, FILE *f, struct nw_error *out_err)
{
    bool ok = fputs("device,clinic,model\n", f) >= 0;
    for (unsigned n = 1; ok && n <= cfg->ndevices; n++) {
        if (fleet_config_has_fault(cfg, n, AGENT_FAULT_UNKNOWN_DEVICE)) {
            continue;
        }
        char id[NW_DEVICE_ID_MAX + 1], clinic[NW_CLINIC_MAX + 1];
        char field[2 * NW_CLINIC_MAX + 3];
        fleet_device_id(cfg, n, id);
        fleet_clinic_name(cfg, fleet_clinic_of(cfg, n), clinic);
        fleet_csv_field(clinic, field, sizeof(field));
        ok = fprintf(f, "%s,%s,%s\n", id, field, fleet_model_of(cfg, n)) > 0;
    }
    if (!ok || fflush(f) != 0 || ferror(f)) {
        return nw_error_set(out_err, NW_ERR_IO, "inventory: write failed");
    }
    return NW_OK;
}

/* ---- one device ---------------------------------------------------------- */

struct fleet_device {
    const struct fleet_config *cfg;
    char id[NW_DEVICE_ID_MAX + 1];
    unsigned n;
    uint64_t epoch;
    int64_t virt0; /* the run's virtual start: device faults count from it */
    int64_t start; /* the model's start: virt0, or the time lease of a resumed device */
    struct agent_sim *sim;
    struct agent_windower *win;
    struct fleet_store *store;
    char *dir;       /* disk store: the device's directory; NULL in memory */
    bool state_ours; /* sim.state was read or made by us: ours to rewrite */
    bool resumed;
    bool state_logged;
    int64_t lease;      /* disk: nothing is stamped at or after it (sim.state) */
    int64_t made_until; /* end of the newest record made, 0 for none */
    uint64_t next_seq[FLEET_REC_TYPES];
    size_t nfaults;
    struct agent_fault faults[AGENT_SIM_MAX_FAULTS];
    bool gap_done[AGENT_SIM_MAX_FAULTS]; /* data_gap without LEN: the seq is skipped */
    /* data_gap with LEN: the window held back, and when it goes */
    enum { GAP_WAIT = 0, GAP_HOLDING, GAP_RELEASED } gap_state[AGENT_SIM_MAX_FAULTS];
    uint64_t gap_seq[AGENT_SIM_MAX_FAULTS];
    int64_t gap_release[AGENT_SIM_MAX_FAULTS];
    bool powered;
    char session[NW_ID_MAX + 1], cartridge[NW_ID_MAX + 1], lot[NW_ID_MAX + 1];
    uint64_t base_cycles, base_running_ms, cycles, running_ms;
    int64_t last_progress_ms;
    int64_t virt_now;             /* the latest virtual time the device was advanced to */
    struct fleet_device_stats st; /* the counters kept here; the rest is filled on read */
};

static unsigned long rejected_logged;

/* -- sim.state: epoch, time lease and odometer of a disk device --
 *
 * Text, "key=value" lines and a CRC-32C over them, as agent.state; written
 * to a temp file and renamed (fsync'd unless the queue syncs "never"). A
 * file that fails its CRC or names another device is an error, not a
 * reset: a silent new epoch would hide the problem. */

#define STATE_FILE "sim.state"
#define STATE_MAGIC "needlewatch-sim-device 1\n"
#define STATE_MAX 512
#define PATH_CAP (FLEET_QUEUE_DIR_MAX + NW_DEVICE_ID_MAX + 32) /* DIR/<id>/sim.state.tmp */

static size_t state_render(const struct fleet_device *d, int64_t lease, char *buf, size_t cap)
{
    int n = snprintf(buf, cap,
                     STATE_MAGIC "device=%s\nepoch=%016" PRIx64 "\ntime_lease=%" PRId64
                                 "\nodometer_cycles=%" PRIu64 "\nrunning_ms=%" PRIu64 "\n",
                     d->id, d->epoch, lease, d->base_cycles + d->cycles,
                     d->base_running_ms + d->running_ms);
    uint32_t crc = nw_dq_crc32c(0, buf, (size_t)n);
    n += snprintf(buf + n, cap - (size_t)n, "crc=%08" PRIx32 "\n", crc);
    return (size_t)n;
}

static enum nw_err state_save(struct fleet_device *d, int64_t lease, struct nw_error *out_err)
{
    char buf[STATE_MAX], path[PATH_CAP], tmp[PATH_CAP];
    size_t len = state_render(d, lease, buf, sizeof(buf));
    snprintf(path, sizeof(path), "%s/" STATE_FILE, d->dir);
    snprintf(tmp, sizeof(tmp), "%s/" STATE_FILE ".tmp", d->dir);
    bool durable = d->cfg->queue_sync != NW_DQ_SYNC_NEVER;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        return nw_error_set(out_err, NW_ERR_IO, "%s: %s", tmp, strerror(errno));
    }
    bool ok = write(fd, buf, len) == (ssize_t)len && (!durable || fsync(fd) == 0);
    ok = close(fd) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return nw_error_set(out_err, NW_ERR_IO, "%s: %s", path, strerror(e));
    }
    if (durable) {
        int dfd = open(d->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
    }
    return NW_OK;
}

static bool state_u64(const char *buf, const char *key, int base, uint64_t *out)
{
    size_t klen = strlen(key);
    for (const char *p = buf; p && *p;) {
        if (strncmp(p, key, klen) == 0 && p[klen] == '=') {
            char *end;
            errno = 0;
            *out = strtoull(p + klen + 1, &end, base);
            return errno == 0 && end != p + klen + 1 && *end == '\n';
        }
        p = strchr(p, '\n');
        p = p ? p + 1 : NULL;
    }
    return false;
}

/* Loads sim.state into d; *out_found false when there is none. */
static enum nw_err state_load(struct fleet_device *d, bool *out_found, struct nw_error *out_err)
{
    char path[PATH_CAP], buf[STATE_MAX];
    snprintf(path, sizeof(path), "%s/" STATE_FILE, d->dir);
    *out_found = false;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return errno == ENOENT ? NW_OK
                               : nw_error_set(out_err, NW_ERR_IO, "%s: %s", path, strerror(errno));
    }
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0 || n == (ssize_t)sizeof(buf) - 1) {
        return nw_error_set(out_err, NW_ERR_CORRUPT, "%s: unreadable or too long", path);
    }
    buf[n] = '\0';
    const char *crc_line = strstr(buf, "\ncrc=");
    if (strncmp(buf, STATE_MAGIC, strlen(STATE_MAGIC)) != 0 || !crc_line ||
        nw_dq_crc32c(0, buf, (size_t)(crc_line + 1 - buf)) !=
            (uint32_t)strtoul(crc_line + 5, NULL, 16)) {
        return nw_error_set(out_err, NW_ERR_CORRUPT,
                            "%s: damaged (checksum); remove the device's directory to start it "
                            "afresh with a new epoch",
                            path);
    }
    const char *dev = strstr(buf, "\ndevice=");
    size_t idlen = strlen(d->id);
    if (!dev || strncmp(dev + 8, d->id, idlen) != 0 || dev[8 + idlen] != '\n') {
        return nw_error_set(out_err, NW_ERR_CONFIG, "%s belongs to another device, not %s", path,
                            d->id);
    }
    uint64_t lease, cycles, running;
    if (!state_u64(buf, "epoch", 16, &d->epoch) || !state_u64(buf, "time_lease", 10, &lease) ||
        !state_u64(buf, "odometer_cycles", 10, &cycles) ||
        !state_u64(buf, "running_ms", 10, &running) || d->epoch == 0) {
        return nw_error_set(out_err, NW_ERR_CORRUPT, "%s: missing fields", path);
    }
    d->lease = (int64_t)lease;
    d->base_cycles = cycles;
    d->base_running_ms = running;
    *out_found = true;
    return NW_OK;
}

/* A device with a device_offline or a held data_gap fault keeps LEN of
 * windows unacknowledged (nothing is acked while offline; acks are
 * contiguous, so nothing after a held window is): its store gets room for
 * them, so no overflow turns the fault into real losses. */
static size_t device_buffer_bytes(const struct fleet_config *cfg, const struct agent_fault *f,
                                  size_t nfaults)
{
    uint64_t cap = cfg->buffer_bytes;
    for (size_t i = 0; i < nfaults; i++) {
        bool holds = f[i].kind == AGENT_FAULT_DEVICE_OFFLINE ||
                     (f[i].kind == AGENT_FAULT_DATA_GAP && f[i].len_ms >= 0);
        if (!holds) {
            continue;
        }
        uint64_t windows = (uint64_t)f[i].len_ms / cfg->window_ms + 1;
        uint64_t need = cfg->buffer_bytes + windows * FLEET_HOLD_BYTES_PER_WINDOW;
        cap = need > cap ? need : cap;
    }
    return cap > FLEET_HOLD_BUFFER_MAX ? FLEET_HOLD_BUFFER_MAX : (size_t)cap;
}

/* Opens the device's disk store (DIR/<id>/queue, as the agent lays out its
 * directory) and its sim.state (made when new): the queue's lock is taken
 * first, so two processes never share a device's state either. */
static enum nw_err device_open_disk(struct fleet_device *d, struct nw_error *out_err)
{
    char path[PATH_CAP];
    snprintf(path, sizeof(path), "%s/%s", d->cfg->queue_dir, d->id);
    d->dir = strdup(path);
    if (!d->dir) {
        return nw_error_set(out_err, NW_ERR_NOMEM, "out of memory");
    }
    if (mkdir(d->dir, 0700) != 0 && errno != EEXIST) {
        return nw_error_set(out_err, errno == ENOENT ? NW_ERR_NOT_FOUND : NW_ERR_IO, "%s: %s",
                            d->dir, strerror(errno));
    }
    snprintf(path, sizeof(path), "%s/%s/queue", d->cfg->queue_dir, d->id);
    enum nw_err rc = fleet_store_disk_open(path, device_buffer_bytes(d->cfg, d->faults, d->nfaults),
                                           d->cfg->queue_sync, &d->store, out_err);
    bool found = false;
    if (rc == NW_OK) {
        rc = state_load(d, &found, out_err);
    }
    if (rc != NW_OK) {
        return rc;
    }
    struct fleet_store_stats ss;
    fleet_store_get_stats(d->store, &ss);
    if (!found && (ss.last_seq[FLEET_REC_WINDOW] || ss.last_seq[FLEET_REC_EVENT])) {
        return nw_error_set(out_err, NW_ERR_CORRUPT,
                            "%s holds a queue but no " STATE_FILE
                            " (its epoch): remove the directory to start the device afresh",
                            d->dir);
    }
    d->resumed = found;
    for (int t = 0; t < FLEET_REC_TYPES; t++) {
        d->next_seq[t] = ss.last_seq[t] + 1;
    }
    rc = found ? NW_OK : state_save(d, 0, out_err); /* the new epoch, before any record */
    d->state_ours = rc == NW_OK;
    return rc;
}

/*
 * maintenance_due: the needle-running ms the device's model makes in the
 * windows that start before until_ms, found by running a copy of the model
 * (same options, so the same samples) a little past it: the service hours
 * then reach the interval exactly with the last of those windows.
 */
static uint64_t running_before(const struct agent_sim_options *so, uint32_t window_ms,
                               int64_t until_ms)
{
    struct agent_sim *s = agent_sim_new(so);
    struct agent_windower *w = agent_windower_new(window_ms);
    uint64_t run = 0;
    struct nw_window out[AGENT_WINDOWER_MAX_OUT];
    int64_t feed_until = until_ms + window_ms + AGENT_SAMPLE_MAX_GAP_MS;
    struct agent_input in;
    while (s && w && agent_sim_next(s, feed_until, &in) != AGENT_INPUT_NONE) {
        if (in.kind != AGENT_INPUT_SAMPLE) {
            continue;
        }
        size_t n = agent_windower_feed(w, &in.sample, out, AGENT_WINDOWER_MAX_OUT, NULL);
        for (size_t k = 0; k < n; k++) {
            run += out[k].start_ms < until_ms ? out[k].running_ms : 0;
        }
    }
    if (w && agent_windower_flush(w, &out[0]) && out[0].start_ms < until_ms) {
        run += out[0].running_ms;
    }
    agent_sim_destroy(&s);
    agent_windower_destroy(&w);
    return run;
}

enum nw_err fleet_device_open(const struct fleet_config *cfg, unsigned n, int64_t virt0_ms,
                              uint64_t run_salt, struct fleet_device **out,
                              struct nw_error *out_err)
{
    *out = NULL;
    if (n < 1 || n > cfg->ndevices) {
        return nw_error_set(out_err, NW_ERR_INVAL, "device %u of %u", n, cfg->ndevices);
    }
    struct fleet_device *d = calloc(1, sizeof(*d));
    if (!d) {
        return nw_error_set(out_err, NW_ERR_NOMEM, "out of memory");
    }
    d->cfg = cfg;
    d->n = n;
    d->virt0 = d->start = virt0_ms;
    if (fleet_device_id(cfg, n, d->id) != NW_OK) {
        free(d);
        return nw_error_set(out_err, NW_ERR_INVAL, "device %u: no valid id", n);
    }
    d->epoch = mix64(derive(cfg->seed, "epoch", n) ^ nw_hash_str(d->id) ^ mix64(run_salt));
    d->epoch |= d->epoch == 0;
    for (size_t i = 0; i < cfg->nfaults; i++) {
        if (cfg->faults[i].device == n && d->nfaults < AGENT_SIM_MAX_FAULTS) {
            d->faults[d->nfaults++] = cfg->faults[i].fault;
        }
    }
    uint64_t hours = 20 + derive(cfg->seed, "hours", n) % 430;
    d->base_running_ms = hours * 3600 * 1000 + derive(cfg->seed, "minutes", n) % 3600000;
    for (size_t i = 0; i < d->nfaults; i++) {
        if (d->faults[i].kind == AGENT_FAULT_MAINTENANCE_DUE) {
            /* A new device's model starts at virt0: what it runs before
             * START brings it to the interval exactly (a resumed device's
             * odometer comes from sim.state below). */
            struct agent_sim_options so = {.seed = cfg->seed,
                                           .device_id = d->id,
                                           .start_ms = virt0_ms,
                                           .sample_ms = SAMPLE_MS,
                                           .start_in_session = true,
                                           .nfaults = d->nfaults};
            memcpy(so.faults, d->faults, d->nfaults * sizeof(d->faults[0]));
            uint64_t below = running_before(&so, cfg->window_ms, virt0_ms + d->faults[i].start_ms);
            uint64_t interval = (uint64_t)FLEET_SERVICE_INTERVAL_S * 1000;
            d->base_running_ms = below < interval ? interval - below : 0;
            break;
        }
    }
    d->base_cycles = d->base_running_ms / 1000 * MODEL_RATE_HZ;
    d->next_seq[FLEET_REC_WINDOW] = d->next_seq[FLEET_REC_EVENT] = 1;
    enum nw_err rc = NW_OK;
    if (cfg->queue_dir[0]) {
        rc = device_open_disk(d, out_err); /* may replace epoch, odometer, seqs */
    } else {
        d->store = fleet_store_memory_new(device_buffer_bytes(cfg, d->faults, d->nfaults));
        rc = d->store ? NW_OK : nw_error_set(out_err, NW_ERR_NOMEM, "out of memory");
    }
    if (rc != NW_OK) {
        fleet_device_destroy(&d);
        return rc;
    }
    d->start = d->lease > virt0_ms ? d->lease : virt0_ms;
    /* Signal faults count from the run's start, the model from its own. */
    struct agent_sim_options so = {.seed = cfg->seed,
                                   .device_id = d->id,
                                   .start_ms = d->start,
                                   .sample_ms = SAMPLE_MS,
                                   .start_in_session = true};
    for (size_t i = 0; i < d->nfaults; i++) {
        so.faults[so.nfaults] = d->faults[i]; /* the model ignores non-signal ones */
        so.faults[so.nfaults++].start_ms -= d->start - d->virt0;
    }
    d->sim = agent_sim_new(&so);
    d->win = agent_windower_new(cfg->window_ms);
    if (!d->sim || !d->win) {
        fleet_device_destroy(&d);
        return nw_error_set(out_err, NW_ERR_NOMEM, "out of memory");
    }
    *out = d;
    return NW_OK;
}

struct fleet_device *fleet_device_new(const struct fleet_config *cfg, unsigned n, int64_t virt0_ms,
                                      uint64_t run_salt)
{
    struct fleet_device *d = NULL;
    fleet_device_open(cfg, n, virt0_ms, run_salt, &d, NULL);
    return d;
}

void fleet_device_destroy(struct fleet_device **p)
{
    if (!p || !*p) {
        return;
    }
    struct fleet_device *d = *p;
    if (d->state_ours) {
        /* Where this run's time really ended: the next run goes on from it.
         * (Never over a file that was refused: that stays for a person.) */
        struct nw_error err = {0};
        int64_t lease = d->made_until ? d->made_until : d->lease;
        if (state_save(d, lease, &err) != NW_OK) {
            nw_log(NW_LOG_WARN, "fleet", "%s", err.msg);
        }
    }
    agent_sim_destroy(&d->sim);
    agent_windower_destroy(&d->win);
    fleet_store_destroy(&d->store);
    free(d->dir);
    free(d);
    *p = NULL;
}

const char *fleet_device_name(const struct fleet_device *d)
{
    return d->id;
}

unsigned fleet_device_index(const struct fleet_device *d)
{
    return d->n;
}

uint64_t fleet_device_epoch(const struct fleet_device *d)
{
    return d->epoch;
}

bool fleet_device_resumed(const struct fleet_device *d)
{
    return d->resumed;
}

int64_t fleet_device_start_ms(const struct fleet_device *d)
{
    return d->start;
}

void fleet_device_tick(struct fleet_device *d)
{
    fleet_store_tick(d->store);
}

static void reject(struct fleet_device *d, const char *what, const struct nw_error *err)
{
    d->st.rejected++;
    if (rejected_logged++ < 10) {
        nw_log(NW_LOG_WARN, "fleet", "%s: %s refused: %s", d->id, what, err->msg);
    }
}

/* A disk device moves its time lease past end_ms before storing a record
 * that ends there; false (logged) when sim.state cannot be written. */
static bool cover_time(struct fleet_device *d, int64_t end_ms, struct nw_error *err)
{
    if (end_ms > d->made_until) {
        d->made_until = end_ms;
    }
    if (!d->dir || end_ms <= d->lease) {
        return true;
    }
    int64_t lease = end_ms + (int64_t)FLEET_TIME_LEASE_WINDOWS * d->cfg->window_ms;
    if (state_save(d, lease, err) != NW_OK) {
        return false;
    }
    d->lease = lease;
    return true;
}

static size_t store(struct fleet_device *d, enum fleet_rec_type type, uint64_t seq, int64_t end_ms,
                    const uint8_t *rec, size_t len, struct nw_error *err)
{
    if (!cover_time(d, end_ms, err) ||
        fleet_store_append(d->store, type, seq, rec, len, err) != NW_OK) {
        reject(d, type == FLEET_REC_WINDOW ? "window" : "event", err);
        return 0;
    }
    return 1;
}

/* data_gap with LEN: the first window stored at or after START stays in
 * the store (the queue floor stays at or below it) but is not sent until
 * START + LEN: a late-filled gap. */
static void hold_if_due(struct fleet_device *d, const struct nw_window *w)
{
    for (size_t i = 0; i < d->nfaults; i++) {
        const struct agent_fault *f = &d->faults[i];
        if (f->kind != AGENT_FAULT_DATA_GAP || f->len_ms < 0 || d->gap_state[i] != GAP_WAIT ||
            w->start_ms - d->virt0 < f->start_ms) {
            continue;
        }
        d->gap_state[i] = GAP_HOLDING;
        d->gap_seq[i] = w->seq;
        d->gap_release[i] = d->virt0 + f->start_ms + f->len_ms;
        d->st.windows_held++;
        nw_log(NW_LOG_NOTICE, "fault",
               "%s: data_gap: holding back window seq %" PRIu64 " (virtual +%" PRId64
               " s) until virtual +%" PRId64 " s",
               d->id, w->seq, (w->start_ms - d->virt0) / 1000, (f->start_ms + f->len_ms) / 1000);
        return; /* one window per fault; one fault per window */
    }
}

/* Lets held windows go whose time has come (all of them at the end of the
 * run): the store rewinds, so the held window goes first, then everything
 * unacknowledged after it (the collector could ack nothing past it). */
static void release_holds(struct fleet_device *d, int64_t virt_now_ms, bool all)
{
    bool any = false;
    for (size_t i = 0; i < d->nfaults; i++) {
        if (d->gap_state[i] == GAP_HOLDING && (all || virt_now_ms >= d->gap_release[i])) {
            d->gap_state[i] = GAP_RELEASED;
            any = true;
            nw_log(NW_LOG_NOTICE, "fault",
                   "%s: data_gap: window seq %" PRIu64 " released at virtual +%" PRId64 " s%s",
                   d->id, d->gap_seq[i], (virt_now_ms - d->virt0) / 1000,
                   all && virt_now_ms < d->gap_release[i] ? " (end of the run)" : "");
        }
    }
    if (any) {
        fleet_store_rewind(d->store);
    }
}

static bool is_held(const struct fleet_device *d, const struct fleet_rec *r)
{
    for (size_t i = 0; r->type == FLEET_REC_WINDOW && i < d->nfaults; i++) {
        if (d->gap_state[i] == GAP_HOLDING && d->gap_seq[i] == r->seq) {
            return true;
        }
    }
    return false;
}

/* fleet_store_peek() past held windows (they count as taken until a
 * rewind hands them out again). */
static bool peek_sendable(struct fleet_device *d, struct fleet_rec *out)
{
    for (size_t guard = 0; guard <= AGENT_SIM_MAX_FAULTS; guard++) {
        if (!fleet_store_peek(d->store, out)) {
            return false;
        }
        if (!is_held(d, out)) {
            return true;
        }
        fleet_store_take(d->store);
    }
    return false;
}

static size_t enqueue_window(struct fleet_device *d, struct nw_window *w, int64_t wall_now_ms,
                             struct nw_codec *codec)
{
    struct nw_error err = {0};
    uint64_t seq = d->next_seq[FLEET_REC_WINDOW];
    bool skip[AGENT_SIM_MAX_FAULTS] = {false};
    size_t skipped = 0;
    for (size_t i = 0; i < d->nfaults; i++) {
        if (d->faults[i].kind == AGENT_FAULT_DATA_GAP && d->faults[i].len_ms < 0 &&
            !d->gap_done[i] && w->start_ms - d->virt0 >= d->faults[i].start_ms) {
            skip[i] = true;
            skipped++;
        }
    }
    w->seq = seq + skipped;
    if (nw_validate_window(w, nw_codec_limits(codec), wall_now_ms, NULL, &err) != NW_OK) {
        reject(d, "window", &err);
        return 0;
    }
    for (size_t i = 0; i < d->nfaults; i++) {
        d->gap_done[i] |= skip[i];
    }
    d->st.windows_skipped += skipped;
    d->next_seq[FLEET_REC_WINDOW] = w->seq + 1; /* used even if lost below */
    d->st.windows_made++;
    d->cycles += w->cycles;
    d->running_ms += w->running_ms;
    struct nw_window_batch b = {.epoch = d->epoch, .count = 1, .capacity = 1, .windows = w};
    memcpy(b.device_id, d->id, sizeof(d->id));
    uint8_t rec[FLEET_RECORD_MAX];
    size_t len = 0;
    if (nw_codec_encode_windows(codec, &b, rec, sizeof(rec), &len, &err) != NW_OK) {
        reject(d, "window", &err);
        return 0;
    }
    if (!store(d, FLEET_REC_WINDOW, w->seq, w->start_ms + w->duration_ms, rec, len, &err)) {
        return 0;
    }
    hold_if_due(d, w);
    return 1;
}

static void track_context(struct fleet_device *d, const struct nw_event *e)
{
    switch (e->kind) {
    case NW_EVENT_SESSION_START:
        snprintf(d->session, sizeof(d->session), "%s", e->session_id);
        agent_windower_set_idle_windows(d->win, true);
        break;
    case NW_EVENT_SESSION_END:
        d->session[0] = '\0';
        agent_windower_set_idle_windows(d->win, false);
        break;
    case NW_EVENT_CARTRIDGE_INSERTED:
        snprintf(d->cartridge, sizeof(d->cartridge), "%s", e->cartridge_id);
        break;
    case NW_EVENT_CARTRIDGE_REMOVED:
        d->cartridge[0] = '\0';
        break;
    case NW_EVENT_PIGMENT_LOADED:
        snprintf(d->lot, sizeof(d->lot), "%s", e->lot);
        break;
    default:
        return;
    }
    agent_windower_set_context(d->win, d->session, d->cartridge, d->lot);
}

static size_t enqueue_event(struct fleet_device *d, struct nw_event *e, int64_t wall_now_ms,
                            struct nw_codec *codec)
{
    struct nw_error err = {0};
    e->seq = d->next_seq[FLEET_REC_EVENT];
    if (nw_validate_event(e, nw_codec_limits(codec), wall_now_ms, NULL, &err) != NW_OK) {
        reject(d, "event", &err);
        return 0;
    }
    track_context(d, e);
    d->next_seq[FLEET_REC_EVENT]++;
    d->st.events_made++;
    struct nw_event_batch b = {.epoch = d->epoch, .count = 1, .capacity = 1, .events = e};
    memcpy(b.device_id, d->id, sizeof(d->id));
    uint8_t rec[FLEET_RECORD_MAX];
    size_t len = 0;
    if (nw_codec_encode_events(codec, &b, rec, sizeof(rec), &len, &err) != NW_OK) {
        reject(d, "event", &err);
        return 0;
    }
    return store(d, FLEET_REC_EVENT, e->seq, e->time_ms + 1, rec, len, &err);
}

size_t fleet_device_advance(struct fleet_device *d, int64_t virt_now_ms, int64_t wall_now_ms,
                            struct nw_codec *codec, size_t max_items)
{
    size_t made = 0;
    if (virt_now_ms < d->start) {
        return 0; /* resumed past now: nothing happens before the time lease */
    }
    if (!d->powered) {
        struct nw_event e;
        memset(&e, 0, sizeof(e));
        e.kind = NW_EVENT_POWER_ON;
        e.time_ms = d->start;
        snprintf(e.firmware, sizeof(e.firmware), "%s", d->cfg->firmware);
        snprintf(e.boot_reason, sizeof(e.boot_reason), "%s", d->resumed ? "restart" : "power_on");
        made += enqueue_event(d, &e, wall_now_ms, codec);
        d->powered = true;
    }
    struct nw_window out[AGENT_WINDOWER_MAX_OUT];
    bool caught_up = false;
    for (size_t i = 0; i < max_items; i++) {
        struct agent_input in;
        enum agent_input_kind kind = agent_sim_next(d->sim, virt_now_ms, &in);
        if (kind == AGENT_INPUT_NONE) {
            caught_up = true;
            break;
        }
        if (kind == AGENT_INPUT_EVENT) {
            made += enqueue_event(d, &in.event, wall_now_ms, codec);
            continue;
        }
        struct nw_error err = {0};
        size_t n = agent_windower_feed(d->win, &in.sample, out, AGENT_WINDOWER_MAX_OUT, &err);
        if (err.code != NW_OK) {
            reject(d, "sample", &err);
        }
        for (size_t k = 0; k < n; k++) {
            made += enqueue_window(d, &out[k], wall_now_ms, codec);
        }
    }
    /* A model with nothing more to say (between sessions) still gets its
     * last window out; never while it lags behind, or a window would be
     * closed before all its samples came. */
    if (caught_up && agent_windower_tick(d->win, virt_now_ms, 2 * SAMPLE_MS, &out[0])) {
        made += enqueue_window(d, &out[0], wall_now_ms, codec);
    }
    d->virt_now = virt_now_ms;
    release_holds(d, virt_now_ms, false);
    return made;
}

size_t fleet_device_flush(struct fleet_device *d, int64_t wall_now_ms, struct nw_codec *codec)
{
    struct nw_window w;
    size_t made = 0;
    if (agent_windower_flush(d->win, &w)) {
        made = enqueue_window(d, &w, wall_now_ms, codec);
    }
    release_holds(d, d->virt_now, true);
    return made;
}

bool fleet_device_offline_at(const struct fleet_device *d, int64_t virt_ms)
{
    int64_t rel = virt_ms - d->virt0;
    for (size_t i = 0; i < d->nfaults; i++) {
        const struct agent_fault *f = &d->faults[i];
        if (f->kind == AGENT_FAULT_DEVICE_OFFLINE && rel >= f->start_ms &&
            rel < f->start_ms + f->len_ms) {
            return true;
        }
    }
    return false;
}

void fleet_device_on_connect(struct fleet_device *d, int64_t mono_ms)
{
    fleet_store_rewind(d->store);
    d->last_progress_ms = mono_ms;
}

enum nw_err fleet_device_on_ack(struct fleet_device *d, const struct nw_ack *ack, int64_t mono_ms,
                                struct nw_error *out_err)
{
    if (strcmp(ack->device_id, d->id) != 0 || ack->epoch != d->epoch) {
        d->st.acks_ignored++;
        return nw_error_set(out_err, NW_ERR_INVALID,
                            "%s: ack for %s epoch %016" PRIx64 " ignored (ours: %016" PRIx64 ")",
                            d->id, ack->device_id, ack->epoch, d->epoch);
    }
    struct fleet_store_stats before, after;
    fleet_store_get_stats(d->store, &before);
    enum nw_err rw = fleet_store_ack(d->store, FLEET_REC_WINDOW, ack->window_seq, out_err);
    enum nw_err re =
        fleet_store_ack(d->store, FLEET_REC_EVENT, ack->event_seq, rw == NW_OK ? out_err : NULL);
    fleet_store_get_stats(d->store, &after);
    if (after.acked_seq[FLEET_REC_WINDOW] > before.acked_seq[FLEET_REC_WINDOW] ||
        after.acked_seq[FLEET_REC_EVENT] > before.acked_seq[FLEET_REC_EVENT]) {
        d->last_progress_ms = mono_ms;
    }
    if (rw != NW_OK || re != NW_OK) {
        d->st.acks_ignored++;
        return NW_ERR_INVALID;
    }
    d->st.acks++;
    return NW_OK;
}

bool fleet_device_check_timeout(struct fleet_device *d, int64_t mono_ms, bool connected,
                                int64_t ack_timeout_ms)
{
    struct fleet_store_stats st;
    fleet_store_get_stats(d->store, &st);
    if (st.records == 0) {
        d->last_progress_ms = mono_ms;
        return false;
    }
    if (!connected || mono_ms - d->last_progress_ms < ack_timeout_ms) {
        return false;
    }
    fleet_store_rewind(d->store);
    d->st.resends++;
    d->last_progress_ms = mono_ms;
    return true;
}

void fleet_device_rewind(struct fleet_device *d)
{
    fleet_store_rewind(d->store);
}

/* ---- messages ------------------------------------------------------------ */

struct fleet_batcher {
    struct nw_codec *codec;
    size_t batch_max;
    struct nw_window *windows;
    struct nw_event *events;
    uint8_t *out;
    size_t out_cap;
};

struct fleet_batcher *fleet_batcher_new(struct nw_codec *codec, size_t batch_max)
{
    const struct nw_limits *lim = nw_codec_limits(codec);
    struct fleet_batcher *b = calloc(1, sizeof(*b));
    if (!b) {
        return NULL;
    }
    /* Every record is at most FLEET_RECORD_MAX encoded, so this many always
     * fit one payload; and no more than the decoder accepts. */
    size_t cap = lim->max_payload / FLEET_RECORD_MAX;
    cap = cap < lim->max_windows ? cap : lim->max_windows;
    cap = cap < lim->max_events ? cap : lim->max_events;
    b->batch_max = batch_max == 0 ? 1 : (batch_max < cap ? batch_max : cap);
    b->codec = codec;
    b->windows = calloc(b->batch_max, sizeof(*b->windows));
    b->events = calloc(b->batch_max, sizeof(*b->events));
    b->out_cap = lim->max_payload;
    b->out = malloc(b->out_cap);
    if (!b->windows || !b->events || !b->out) {
        fleet_batcher_destroy(&b);
    }
    return b;
}

void fleet_batcher_destroy(struct fleet_batcher **p)
{
    if (!p || !*p) {
        return;
    }
    free((*p)->windows);
    free((*p)->events);
    free((*p)->out);
    free(*p);
    *p = NULL;
}

static size_t put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

static enum nw_err decode_into(struct fleet_batcher *b, const struct fleet_rec *rec, size_t i,
                               struct nw_error *err)
{
    if (rec->type == FLEET_REC_WINDOW) {
        struct nw_window_batch wb = {.windows = &b->windows[i], .capacity = 1};
        return nw_codec_decode_windows(b->codec, rec->data, rec->len, &wb, NULL, err);
    }
    struct nw_event_batch eb = {.events = &b->events[i], .capacity = 1};
    return nw_codec_decode_events(b->codec, rec->data, rec->len, &eb, NULL, err);
}

enum nw_err fleet_device_next_message(struct fleet_device *d, struct fleet_batcher *b,
                                      struct fleet_message *out, struct nw_error *out_err)
{
    struct fleet_rec rec, next;
    if (!peek_sendable(d, &rec)) {
        return NW_ERR_NOT_FOUND;
    }
    enum fleet_rec_type type = rec.type;
    if (rec.len + 11 > b->out_cap) {
        return nw_error_set(out_err, NW_ERR_TOO_BIG, "record of %zu bytes", rec.len);
    }
    /* A store's record is valid until its next call: keep a copy (it is the
     * message itself below, or decoded before the batch is encoded). */
    memcpy(b->out, rec.data, rec.len);
    rec.data = b->out;
    uint64_t floor_seq = fleet_store_floor(d->store, type);
    out->kind = type == FLEET_REC_WINDOW ? NW_TOPIC_TELEMETRY : NW_TOPIC_EVENT;
    fleet_store_take(d->store);
    bool more = b->batch_max > 1 && peek_sendable(d, &next) && next.type == type;
    if (!more) {
        /* The record is the one-entry batch; add its floor (field 4). */
        size_t len = rec.len;
        if (floor_seq) {
            b->out[len++] = FIELD_QUEUE_FLOOR_TAG;
            len += put_varint(b->out + len, floor_seq);
        }
        out->payload = b->out;
        out->len = len;
        out->records = 1;
        return NW_OK;
    }
    size_t n = 0;
    for (size_t guard = 0; guard < b->batch_max; guard++) {
        struct nw_error err = {0};
        if (decode_into(b, &rec, n, &err) == NW_OK) {
            n++;
        } else {
            reject(d, "record", &err);
        }
        if (n == b->batch_max || !peek_sendable(d, &rec) || rec.type != type) {
            break;
        }
        fleet_store_take(d->store);
    }
    if (n == 0) {
        return NW_ERR_NOT_FOUND;
    }
    size_t len = 0;
    enum nw_err rc;
    if (type == FLEET_REC_WINDOW) {
        struct nw_window_batch wb = {.epoch = d->epoch,
                                     .queue_floor = floor_seq,
                                     .count = n,
                                     .capacity = n,
                                     .windows = b->windows};
        memcpy(wb.device_id, d->id, sizeof(d->id));
        rc = nw_codec_encode_windows(b->codec, &wb, b->out, b->out_cap, &len, out_err);
    } else {
        struct nw_event_batch eb = {.epoch = d->epoch,
                                    .queue_floor = floor_seq,
                                    .count = n,
                                    .capacity = n,
                                    .events = b->events};
        memcpy(eb.device_id, d->id, sizeof(d->id));
        rc = nw_codec_encode_events(b->codec, &eb, b->out, b->out_cap, &len, out_err);
    }
    if (rc != NW_OK) {
        return rc;
    }
    out->payload = b->out;
    out->len = len;
    out->records = n;
    return NW_OK;
}

void fleet_device_sent(struct fleet_device *d, const struct fleet_message *m)
{
    d->st.messages++;
    if (m->kind == NW_TOPIC_TELEMETRY) {
        d->st.windows_sent += m->records;
    } else {
        d->st.events_sent += m->records;
    }
}

/* ---- status and statistics ----------------------------------------------- */

void fleet_device_status(const struct fleet_device *d, enum nw_device_state state,
                         int64_t virt_now_ms, uint32_t heartbeat_s, struct nw_status *out)
{
    struct fleet_store_stats rs;
    fleet_store_get_stats(d->store, &rs);
    memset(out, 0, sizeof(*out));
    memcpy(out->device_id, d->id, sizeof(d->id));
    out->epoch = d->epoch;
    out->state = state;
    out->time_ms = virt_now_ms;
    snprintf(out->firmware, sizeof(out->firmware), "%s", d->cfg->firmware);
    snprintf(out->model, sizeof(out->model), "%s", fleet_model_of(d->cfg, d->n));
    out->uptime_s = virt_now_ms > d->start ? (uint64_t)(virt_now_ms - d->start) / 1000 : 0;
    out->odometer_cycles = d->base_cycles + d->cycles;
    out->running_s = (d->base_running_ms + d->running_ms) / 1000;
    out->queue_depth = rs.records;
    out->queue_bytes = rs.bytes;
    out->windows_dropped = rs.dropped_total[FLEET_REC_WINDOW]; /* over the queue's life */
    out->events_dropped = rs.dropped_total[FLEET_REC_EVENT];
    out->last_window_seq = d->next_seq[FLEET_REC_WINDOW] - 1;
    out->last_event_seq = d->next_seq[FLEET_REC_EVENT] - 1;
    memcpy(out->session_id, d->session, sizeof(out->session_id));
    out->heartbeat_s = heartbeat_s;
}

void fleet_device_get_stats(const struct fleet_device *d, struct fleet_device_stats *out)
{
    struct fleet_store_stats rs;
    fleet_store_get_stats(d->store, &rs);
    *out = d->st;
    out->windows_acked = rs.acked[FLEET_REC_WINDOW];
    out->events_acked = rs.acked[FLEET_REC_EVENT];
    out->windows_dropped = rs.dropped[FLEET_REC_WINDOW];
    out->events_dropped = rs.dropped[FLEET_REC_EVENT];
    out->queued_records = rs.records;
    out->queued_bytes = rs.bytes;
    out->last_window_seq = d->next_seq[FLEET_REC_WINDOW] - 1;
    out->last_event_seq = d->next_seq[FLEET_REC_EVENT] - 1;
    out->odometer_cycles = d->base_cycles + d->cycles;
    out->running_s = (d->base_running_ms + d->running_ms) / 1000;
}

void fleet_device_unacked(const struct fleet_device *d, uint64_t *out_unacked,
                          uint64_t *out_stalled)
{
    uint64_t un[FLEET_REC_TYPES], st[FLEET_REC_TYPES];
    fleet_store_unacked(d->store, un, st);
    *out_unacked = un[0] + un[1];
    if (out_stalled) {
        *out_stalled = st[0] + st[1];
    }
}

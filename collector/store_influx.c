/*
 * store_influx.c - the InfluxDB line-protocol writer (v1 /write and v2
 * /api/v2/write; InfluxDB 1.x/2.x/3.x, VictoriaMetrics).
 *
 * A write call turns the points into line protocol in ONE buffer (lib/lp.c,
 * allocated at open, reused), one chunk at a time: as many points as fit
 * max_batch_bytes and max_batch_points. Each chunk is POSTed, and the answer
 * decides what happens to each of its lines (the table is in STORE.md):
 *
 *   2xx            stored
 *   400 / 422      the body names refused lines ("unable to parse 'LINE'",
 *                  "field type conflict ... on measurement M", 3.x
 *                  "line_number"): dead-letter them, re-send the rest ONCE;
 *                  a second 400, or a body that names no line: bisect
 *   413            nothing stored: split in halves; a lone line is dead-lettered
 *   429 / 503      stop; retry after Retry-After (or backoff)
 *   5xx, no answer stop; NW_ERR_RETRY / NW_ERR_TIMEOUT with backoff
 *   401 / 403      stop; NW_ERR_AUTH        (data kept)
 *   404            stop; NW_ERR_NOT_FOUND   (data kept)
 *
 * Re-sends and bisection send subsets of the chunk's lines without copying
 * them: the request body is streamed from (offset, length) pairs into the
 * one buffer. Every path is bounded: each 400 either refuses lines or
 * halves the set, each set is re-sent at most once, and a call makes at
 * most max_requests requests within write_budget_ms.
 *
 * A 400 that names no line could also be a server refusing everything (a
 * proxy, a misconfiguration). Bisection would then dead-letter every point,
 * one by one. So lines refused only because they were alone in a 400
 * ("blind" refusals) are limited to blind_dead_letter_max until the server
 * accepts something again; past it the call stops with NW_ERR_PROTOCOL and
 * the data stays with the caller.
 */
#include "store_impl.h"

#include <needlewatch/clock.h>
#include <needlewatch/log.h>
#include <needlewatch/lp.h>

#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum { PENDING = 0, STORED, REFUSED };

struct line {
    uint32_t off, len; /* in the lp buffer; len includes the '\n' */
    uint32_t point;    /* index of its point within the chunk */
};

struct influx {
    struct nw_http *http;
    struct nw_lp *lp;
    char url[2048];
    bool has_credentials;
    size_t max_lines;
    struct line *lines;
    size_t nlines;
    uint32_t *sel;           /* working sets: indices into lines */
    uint8_t *pstate;         /* per point of the chunk */
    uint8_t *hit;            /* per line of the set being examined */
    struct nw_lp_line *view; /* lines of that set, for nw_influx_identify */
    unsigned blind;          /* blind refusals since the last 2xx */
    struct nw_http_answer ans;

    /* the call in progress */
    struct nw_store *s;
    const struct nw_point *const *pts;
    size_t base; /* array index of the chunk's first point */
    struct nw_store_outcome *out;
    int64_t deadline_ms;
    enum nw_err stop; /* first condition that ends the call */
    const uint32_t *rd_sel;
    size_t rd_n, rd_line;
    uint64_t rd_pos; /* body offset at the start of rd_line */
};

/* out->msg, cut to fit: a message is one line for a log, not a record. */
static void set_msg(struct nw_store_outcome *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void set_msg(struct nw_store_outcome *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->msg, sizeof(out->msg), fmt, ap);
    va_end(ap);
}

/* --- building a chunk ------------------------------------------------- */

static enum nw_err add_point(struct nw_lp *lp, const struct nw_point *p, struct nw_error *err)
{
    struct nw_col_value v[NW_SCHEMA_MAX_COLS];
    const struct nw_schema *sc = nw_schema_of(p->kind);
    if (!sc || nw_schema_values(p, v, err) != NW_OK) {
        return sc ? err->code : nw_error_set(err, NW_ERR_INVALID, "unknown point kind");
    }
    nw_lp_begin(lp, sc->measurement, err);
    for (size_t i = 0; i < sc->ncols; i++) {
        const char *k = sc->cols[i].name;
        if (sc->cols[i].type == NW_COL_TAG) {
            nw_lp_tag(lp, k, v[i].s ? v[i].s : "", err);
        } else if (!v[i].present) {
            continue;
        } else if (sc->cols[i].type == NW_COL_INT) {
            nw_lp_field_i64(lp, k, v[i].i, err);
        } else if (sc->cols[i].type == NW_COL_F64) {
            nw_lp_field_f64(lp, k, v[i].f, err);
        } else if (sc->cols[i].type == NW_COL_BOOL) {
            nw_lp_field_bool(lp, k, v[i].b, err);
        } else {
            nw_lp_field_str(lp, k, v[i].s, err);
        }
    }
    return nw_lp_end(lp, nw_point_time_ms(p), NW_LP_MS, err);
}

/* Settles point k of the chunk as refused; false if the dead letter could
 * not be written (the point then stays pending and the call stops). */
static bool refuse_point(struct influx *x, size_t k, const char *reason, const char *line,
                         size_t len)
{
    struct nw_error e = {0};
    if (x->pstate[k] != PENDING) {
        return true;
    }
    if (nw_store_dead_letter(x->s, x->pts[x->base + k], reason, line, len, &e) != NW_OK) {
        x->stop = e.code;
        snprintf(x->out->msg, sizeof(x->out->msg), "%s", e.msg);
        return false;
    }
    x->pstate[k] = REFUSED;
    x->out->dead_lettered++;
    return true;
}

/* Fills the buffer from pts[i] on; returns the end of the chunk. */
static size_t build_chunk(struct influx *x, size_t i, size_t n)
{
    nw_lp_reset(x->lp);
    x->nlines = 0;
    x->base = i;
    size_t k = i;
    for (; k < n && k - i < x->max_lines && x->stop == NW_OK; k++) {
        struct nw_error e = {0};
        size_t before = nw_lp_len(x->lp);
        x->pstate[k - i] = PENDING;
        enum nw_err rc = add_point(x->lp, x->pts[k], &e);
        if (rc == NW_ERR_FULL) {
            break;
        }
        if (rc == NW_OK) {
            x->lines[x->nlines++] = (struct line){
                (uint32_t)before, (uint32_t)(nw_lp_len(x->lp) - before), (uint32_t)(k - i)};
        } else if (!refuse_point(x, k - i, e.msg, NULL, 0)) {
            break; /* the encoder refused it for good, but the dead letter failed */
        }
    }
    return k;
}

/* --- sending a set of lines ------------------------------------------- */

static size_t read_lines(void *ctx, uint64_t offset, char *dst, size_t cap)
{
    struct influx *x = ctx;
    if (offset < x->rd_pos) { /* libcurl rewound: start over */
        x->rd_line = 0;
        x->rd_pos = 0;
    }
    const char *data = nw_lp_data(x->lp);
    size_t n = 0;
    while (n < cap && x->rd_line < x->rd_n) {
        const struct line *l = &x->lines[x->rd_sel[x->rd_line]];
        uint64_t in = offset + n - x->rd_pos;
        if (in >= l->len) {
            x->rd_pos += l->len;
            x->rd_line++;
            continue;
        }
        size_t take = l->len - (size_t)in < cap - n ? l->len - (size_t)in : cap - n;
        memcpy(dst + n, data + l->off + in, take);
        n += take;
    }
    return n;
}

static bool budget_left(struct influx *x)
{
    if (x->out->requests < x->s->opt.max_requests && nw_clock_mono_ms() < x->deadline_ms) {
        return true;
    }
    x->stop = NW_ERR_RETRY;
    snprintf(x->out->msg, sizeof(x->out->msg),
             "%.96s: request budget of this call used up (%u requests) while isolating refused "
             "lines; continuing on the next call",
             x->s->url.name, x->out->requests);
    return false;
}

static void send_set(struct influx *x, const uint32_t *sel, size_t n)
{
    uint64_t len = 0;
    for (size_t j = 0; j < n; j++) {
        len += x->lines[sel[j]].len;
    }
    x->rd_sel = sel, x->rd_n = n, x->rd_line = 0, x->rd_pos = 0;
    nw_http_post(x->http, x->url, read_lines, x, len, &x->ans);
    x->out->requests++;
    x->out->http_status = (int)x->ans.status;
    if (x->ans.status > 0) {
        nw_store_count_request(x->s, (int)x->ans.status, len, x->ans.latency_us);
    } else {
        nw_store_count_transport(x->s, x->ans.timeout, len, x->ans.latency_us);
    }
}

/* --- answers that end the call ---------------------------------------- */

/* The server's message, one line, for out->msg: JSON "error"/"message"
 * or the start of a plain body. */
static void server_text(const struct nw_http_answer *a, char *out, size_t cap)
{
    static const char *const keys[] = {"error", "message", NULL};
    if (!nw_store_json_get(a->body, a->body_len, keys, out, cap)) {
        snprintf(out, cap, "%.*s", (int)(a->body_len < cap ? a->body_len : cap - 1), a->body);
    }
    for (char *c = out; *c; c++) {
        *c = (*c == '\n' || *c == '\r' || *c == '\t') ? ' ' : *c;
    }
}

static void stop_with(struct influx *x, enum nw_err code, const char *hint)
{
    char text[160];
    const struct nw_http_answer *a = &x->ans;
    x->stop = code;
    if (a->status == 0) {
        snprintf(x->out->msg, sizeof(x->out->msg), "%.96s: %s%.140s", x->s->url.name,
                 a->timeout ? "timed out: " : "", a->error);
        return;
    }
    server_text(a, text, sizeof(text));
    set_msg(x->out, "%.96s: HTTP %ld%s%s%s", x->s->url.name, a->status, text[0] ? ": " : "", text,
            hint);
}

static void on_retry_answer(struct influx *x)
{
    int64_t ra = x->ans.retry_after_ms;
    if (ra >= 0) { /* the server decides; 0 still means "wait the minimum" */
        x->out->retry_after_ms = ra > x->s->opt.retry_after_max_ms ? x->s->opt.retry_after_max_ms
                                 : ra > 0                          ? ra
                                                                   : x->s->opt.backoff_min_ms;
    }
    stop_with(x, NW_ERR_RETRY, "");
}

static void on_auth_answer(struct influx *x)
{
    stop_with(x, NW_ERR_AUTH,
              x->has_credentials ? " (credentials refused)"
                                 : " (no credentials: set NEEDLEWATCH_INFLUX_USER/PASSWORD or "
                                   "NEEDLEWATCH_INFLUX_TOKEN, or the credentials/token file)");
}

static void on_not_found(struct influx *x)
{
    bool page = strstr(x->ans.body, "page not found") != NULL;
    stop_with(x, NW_ERR_NOT_FOUND,
              page && x->s->url.scheme == NW_STORE_INFLUX2
                  ? " (no /api/v2/write here: InfluxDB 1.x needs influx://)"
                  : "");
}

/* --- 400: which lines ------------------------------------------------- */

/* 400 bodies that are about the request or the server, not about lines:
 * bisecting them would dead-letter good data. */
static enum nw_err systemic(const char *msg)
{
    static const char *const not_found[] = {"database not found", "retention policy not found",
                                            "bucket not found",   "organization not found",
                                            "org not found",      NULL};
    static const char *const other[] = {"database is required", "bucket is required",
                                        "invalid precision", NULL};
    for (int i = 0; not_found[i]; i++) {
        if (strstr(msg, not_found[i])) {
            return NW_ERR_NOT_FOUND;
        }
    }
    for (int i = 0; other[i]; i++) {
        if (strstr(msg, other[i])) {
            return NW_ERR_PROTOCOL;
        }
    }
    return NW_OK;
}

struct refuse_ctx {
    struct influx *x;
    const uint32_t *sel;
    size_t hits;
};

static void refuse_named(void *ctx, size_t j, const char *reason)
{
    struct refuse_ctx *r = ctx;
    struct influx *x = r->x;
    if (x->hit[j] || x->stop != NW_OK) {
        return;
    }
    const struct line *l = &x->lines[r->sel[j]];
    char why[512];
    snprintf(why, sizeof(why), "HTTP %ld: %s", x->ans.status, reason);
    if (refuse_point(x, l->point, why, nw_lp_data(x->lp) + l->off, l->len - 1)) {
        x->hit[j] = 1;
        r->hits++;
    }
}

/* A line refused only because it was alone in a 400. */
static void refuse_blind(struct influx *x, uint32_t li)
{
    char text[384], why[448];
    if (x->blind >= x->s->opt.blind_dead_letter_max) {
        stop_with(x, NW_ERR_PROTOCOL,
                  " (answers name no refused line and nothing was accepted since: not "
                  "dead-lettering more; check the server)");
        return;
    }
    x->blind++;
    server_text(&x->ans, text, sizeof(text));
    snprintf(why, sizeof(why), "HTTP %ld: %s", x->ans.status, text);
    const struct line *l = &x->lines[li];
    refuse_point(x, l->point, why, nw_lp_data(x->lp) + l->off, l->len - 1);
}

/* Calls refuse_named for the lines the body names; returns how many. */
static size_t identify_set(struct influx *x, const uint32_t *sel, size_t n)
{
    const char *data = nw_lp_data(x->lp);
    for (size_t j = 0; j < n; j++) {
        const struct line *l = &x->lines[sel[j]];
        x->view[j] = (struct nw_lp_line){data + l->off, l->len - 1};
        x->hit[j] = 0;
    }
    struct refuse_ctx r = {x, sel, 0};
    nw_influx_identify(x->ans.body, x->ans.body_len, x->view, n, refuse_named, &r);
    return r.hits;
}

/* Moves the lines not hit to the front of sel (stable); returns how many. */
static size_t compact(struct influx *x, uint32_t *sel, size_t n)
{
    size_t m = 0;
    for (size_t j = 0; j < n; j++) {
        if (!x->hit[j]) {
            sel[m++] = sel[j];
        }
    }
    return m;
}

static void process(struct influx *x, uint32_t *sel, size_t n, bool resent);

static void bisect(struct influx *x, uint32_t *sel, size_t n)
{
    process(x, sel, n / 2, false);
    process(x, sel + n / 2, n - n / 2, false);
}

static void on_bad_request(struct influx *x, uint32_t *sel, size_t n, bool resent)
{
    char text[256];
    server_text(&x->ans, text, sizeof(text));
    enum nw_err sys = systemic(text);
    if (sys != NW_OK) {
        stop_with(x, sys, "");
        return;
    }
    size_t hits = identify_set(x, sel, n);
    if (x->stop != NW_OK) {
        return;
    }
    if (hits == 0) {
        if (n == 1) {
            refuse_blind(x, sel[0]);
        } else {
            bisect(x, sel, n);
        }
        return;
    }
    size_t m = compact(x, sel, n);
    if (m > 0 && !resent) {
        process(x, sel, m, true); /* the rest, once: stored lines overwrite themselves */
    } else if (m > 0) {
        bisect(x, sel, m); /* a second 400: never the same set a third time */
    }
}

static void mark_stored(struct influx *x, const uint32_t *sel, size_t n)
{
    for (size_t j = 0; j < n; j++) {
        uint32_t k = x->lines[sel[j]].point;
        if (x->pstate[k] == PENDING) {
            x->pstate[k] = STORED;
            x->out->stored++;
        }
    }
    x->blind = 0;
}

static void on_too_large(struct influx *x, uint32_t *sel, size_t n)
{
    if (n > 1) {
        bisect(x, sel, n);
        return;
    }
    const struct line *l = &x->lines[sel[0]];
    refuse_point(x, l->point, "HTTP 413: the point alone is larger than the server accepts",
                 nw_lp_data(x->lp) + l->off, l->len - 1);
}

/* Sends sel[0..n) and acts on the answer, recursing on 400 and 413. */
static void process(struct influx *x, uint32_t *sel, size_t n, bool resent)
{
    if (n == 0 || x->stop != NW_OK || !budget_left(x)) {
        return;
    }
    send_set(x, sel, n);
    long st = x->ans.status;
    if (st == 0) {
        stop_with(x,
                  x->ans.tls_trust ? NW_ERR_AUTH
                  : x->ans.timeout ? NW_ERR_TIMEOUT
                                   : NW_ERR_RETRY,
                  "");
    } else if (st >= 200 && st < 300) {
        mark_stored(x, sel, n);
    } else if (st == 400 || st == 422) {
        on_bad_request(x, sel, n, resent);
    } else if (st == 413) {
        on_too_large(x, sel, n);
    } else if (st == 429 || st >= 500) {
        on_retry_answer(x);
    } else if (st == 401 || st == 403) {
        on_auth_answer(x);
    } else if (st == 404) {
        on_not_found(x);
    } else {
        stop_with(x, NW_ERR_PROTOCOL, st >= 300 && st < 400 ? " (redirects are not followed)" : "");
    }
}

/* --- the write call --------------------------------------------------- */

/* Points of the chunk settled from its start; REFUSED counts only when the
 * dead letters are durable. */
static size_t settled_prefix(struct influx *x, size_t count, bool refusals_durable)
{
    size_t k = 0;
    while (k < count && (x->pstate[k] == STORED || (x->pstate[k] == REFUSED && refusals_durable))) {
        k++;
    }
    return k;
}

static void influx_write(struct nw_store *s, const struct nw_point *const *pts, size_t n,
                         struct nw_store_outcome *out)
{
    struct influx *x = s->impl;
    x->s = s, x->pts = pts, x->out = out, x->stop = NW_OK;
    x->deadline_ms = nw_clock_mono_ms() + s->opt.write_budget_ms;
    size_t i = 0;
    while (i < n) {
        size_t end = build_chunk(x, i, n);
        for (size_t j = 0; j < x->nlines; j++) {
            x->sel[j] = (uint32_t)j;
        }
        process(x, x->sel, x->nlines, false);
        struct nw_error e = {0};
        bool durable = nw_store_dead_letter_sync(s, &e) == NW_OK;
        if (!durable && x->stop == NW_OK) {
            x->stop = e.code;
            snprintf(out->msg, sizeof(out->msg), "%s", e.msg);
        }
        size_t k = settled_prefix(x, end - i, durable);
        out->done = i + k;
        if (k < end - i || x->stop != NW_OK) {
            break;
        }
        i = end;
    }
    out->code = out->done == n ? NW_OK : (x->stop != NW_OK ? x->stop : NW_ERR_RETRY);
}

/* --- open ------------------------------------------------------------- */

static void pct_encode(char *out, size_t cap, const char *s)
{
    size_t n = 0;
    for (; *s && n + 4 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            out[n++] = (char)c;
        } else {
            n += (size_t)snprintf(out + n, cap - n, "%%%02X", c);
        }
    }
    out[n] = '\0';
}

static void build_url(struct influx *x, const struct nw_store_url *u)
{
    char a[768], b[768];
    const char *lb = strchr(u->host, ':') ? "[" : "", *rb = lb[0] ? "]" : "";
    int at = snprintf(x->url, sizeof(x->url), "%s://%s%s%s:%u", u->tls ? "https" : "http", lb,
                      u->host, rb, u->port);
    if (u->scheme == NW_STORE_INFLUX1) {
        pct_encode(a, sizeof(a), u->db);
        pct_encode(b, sizeof(b), u->rp);
        snprintf(x->url + at, sizeof(x->url) - (size_t)at, "/write?db=%s%s%s&precision=ms", a,
                 u->rp[0] ? "&rp=" : "", b);
    } else {
        pct_encode(a, sizeof(a), u->org);
        pct_encode(b, sizeof(b), u->bucket);
        snprintf(x->url + at, sizeof(x->url) - (size_t)at,
                 "/api/v2/write?org=%s&bucket=%s&precision=ms", a, b);
    }
}

/* First line of a secret file, trimmed, into out. Never quotes the content. */
static enum nw_err read_secret_file(const char *path, char *out, size_t cap, struct nw_error *err)
{
    FILE *f = fopen(path, "re");
    struct stat st;
    if (!f) {
        return nw_error_set(err, NW_ERR_CONFIG, "credentials file %s: %s", path, strerror(errno));
    }
    if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077)) {
        nw_log(NW_LOG_WARN, "store", "credentials file %s is readable by others (chmod 600)", path);
    }
    bool ok = fgets(out, (int)cap, f) != NULL;
    fclose(f);
    size_t len = ok ? strcspn(out, "\r\n") : 0;
    while (len > 0 && (out[len - 1] == ' ' || out[len - 1] == '\t')) {
        len--;
    }
    out[len] = '\0';
    size_t lead = strspn(out, " \t");
    memmove(out, out + lead, len - lead + 1);
    return out[0] ? NW_OK : nw_error_set(err, NW_ERR_CONFIG, "credentials file %s: empty", path);
}

static enum nw_err v1_credentials(const struct nw_store *s, const struct nw_store_options *opt,
                                  char *user, char *pass, size_t cap, struct nw_error *err)
{
    const char *eu = getenv("NEEDLEWATCH_INFLUX_USER"), *ep = getenv("NEEDLEWATCH_INFLUX_PASSWORD");
    if (s->url.user[0]) {
        nw_log(NW_LOG_WARN, "store",
               "%s: credentials in the store URL; prefer NEEDLEWATCH_INFLUX_USER/PASSWORD or a "
               "credentials file",
               s->url.name);
        snprintf(user, cap, "%s", s->url.user);
        snprintf(pass, cap, "%s", s->url.password);
    } else if (eu && eu[0]) {
        snprintf(user, cap, "%s", eu);
        snprintf(pass, cap, "%s", ep ? ep : "");
    } else if (opt->credentials_file) {
        char line[512];
        enum nw_err rc = read_secret_file(opt->credentials_file, line, sizeof(line), err);
        char *colon = rc == NW_OK ? strchr(line, ':') : NULL;
        if (rc == NW_OK && (!colon || colon == line)) {
            rc = nw_error_set(err, NW_ERR_CONFIG,
                              "credentials file %s: expected user:password on the first line",
                              opt->credentials_file);
        }
        if (rc == NW_OK) {
            *colon = '\0';
            snprintf(user, cap, "%s", line);
            snprintf(pass, cap, "%s", colon + 1);
        }
        explicit_bzero(line, sizeof(line));
        return rc;
    }
    return NW_OK;
}

static enum nw_err v2_token(const struct nw_store_options *opt, char *header, size_t cap,
                            struct nw_error *err)
{
    char tok[1024] = "";
    const char *env = getenv("NEEDLEWATCH_INFLUX_TOKEN");
    enum nw_err rc = NW_OK;
    if (env && env[0]) {
        snprintf(tok, sizeof(tok), "%s", env);
    } else if (opt->token_file) {
        rc = read_secret_file(opt->token_file, tok, sizeof(tok), err);
    }
    if (rc == NW_OK && tok[0]) {
        snprintf(header, cap, "Authorization: Token %s", tok);
    }
    explicit_bzero(tok, sizeof(tok));
    return rc;
}

static enum nw_err make_http(struct nw_store *s, const struct nw_store_options *opt,
                             struct influx *x, struct nw_error *err)
{
    char user[512] = "", pass[512] = "", header[1100] = "";
    enum nw_err rc = s->url.scheme == NW_STORE_INFLUX1
                         ? v1_credentials(s, opt, user, pass, sizeof(user), err)
                         : v2_token(opt, header, sizeof(header), err);
    if (rc == NW_OK) {
        x->has_credentials = user[0] || header[0];
        x->http = nw_http_new(opt, header[0] ? header : NULL, user[0] ? user : NULL, pass, err);
        rc = x->http ? NW_OK : (err ? err->code : NW_ERR_NOMEM);
    }
    explicit_bzero(user, sizeof(user));
    explicit_bzero(pass, sizeof(pass));
    explicit_bzero(header, sizeof(header));
    return rc;
}

static void influx_close(struct nw_store *s)
{
    struct influx *x = s->impl;
    if (!x) {
        return;
    }
    nw_http_destroy(&x->http);
    nw_lp_destroy(&x->lp);
    free(x->lines);
    free(x->sel);
    free(x->pstate);
    free(x->hit);
    free(x->view);
    free(x);
    s->impl = NULL;
}

static const struct nw_store_ops influx_ops = {influx_write, influx_close};

enum nw_err nw_store_influx_open(struct nw_store *s, struct nw_error *err)
{
    struct influx *x = calloc(1, sizeof(*x));
    if (!x) {
        return nw_error_set(err, NW_ERR_NOMEM, "influx: out of memory");
    }
    s->impl = x;
    s->ops = &influx_ops;
    size_t m = s->opt.max_batch_points;
    x->max_lines = m;
    x->lp = nw_lp_new(s->opt.max_batch_bytes);
    x->lines = calloc(m, sizeof(*x->lines));
    x->sel = calloc(m, sizeof(*x->sel));
    x->pstate = calloc(m, 1);
    x->hit = calloc(m, 1);
    x->view = calloc(m, sizeof(*x->view));
    if (!x->lp || !x->lines || !x->sel || !x->pstate || !x->hit || !x->view) {
        return nw_error_set(err, NW_ERR_NOMEM, "influx: out of memory for %zu points", m);
    }
    build_url(x, &s->url);
    return make_http(s, &s->opt, x, err);
}

/* --- identifying refused lines (pure) --------------------------------- */

/* Unescaped measurement of a line (up to an unescaped ',' or ' ') into out
 * (cut at cap); returns where it ends in the line. */
static size_t line_measurement(const char *l, size_t len, char *out, size_t cap)
{
    size_t i = 0, n = 0;
    while (i < len && l[i] != ',' && l[i] != ' ') {
        bool esc = l[i] == '\\' && i + 1 < len && (l[i + 1] == ',' || l[i + 1] == ' ');
        char c = esc ? l[i + 1] : l[i];
        i += esc ? 2 : 1;
        if (n + 1 < cap) {
            out[n++] = c;
        }
    }
    out[n] = '\0';
    return i;
}

/* Index just past the next unescaped space from i (tags end there). */
static size_t skip_to_space(const char *l, size_t len, size_t i)
{
    while (i < len && l[i] != ' ') {
        i += l[i] == '\\' ? 2 : 1;
    }
    return i + 1;
}

static const char *value_type(const char *v, size_t vl)
{
    static const char *const bools[] = {"t", "T", "true",  "True",  "TRUE",
                                        "f", "F", "false", "False", "FALSE"};
    if (vl > 0 && v[0] == '"') {
        return "string";
    }
    for (size_t b = 0; b < sizeof(bools) / sizeof(bools[0]); b++) {
        if (strlen(bools[b]) == vl && memcmp(v, bools[b], vl) == 0) {
            return "boolean";
        }
    }
    return vl > 0 && v[vl - 1] == 'i'   ? "integer"
           : vl > 0 && v[vl - 1] == 'u' ? "unsigned"
                                        : "float";
}

/* Type name of field `field` in a line, or NULL if it has none. */
static const char *line_field_type(const char *l, size_t len, const char *field)
{
    char m[2];
    size_t i = skip_to_space(l, len, line_measurement(l, len, m, sizeof(m)));
    while (i < len && l[i] != ' ') {
        char key[256];
        size_t k = 0;
        while (i < len && l[i] != '=' && k + 1 < sizeof(key)) {
            key[k++] = l[i] == '\\' && i + 1 < len ? l[++i] : l[i];
            i++;
        }
        key[k] = '\0';
        size_t v0 = ++i;
        bool quoted = i < len && l[i] == '"';
        for (i += quoted; i < len; i++) {
            if (quoted ? l[i] == '"' : (l[i] == ',' || l[i] == ' ')) {
                break;
            }
            i += quoted && l[i] == '\\';
        }
        i += quoted;
        if (strcmp(key, field) == 0) {
            return value_type(l + v0, i - v0);
        }
        i += i < len && l[i] == ',';
    }
    return NULL;
}

/* "unable to parse 'LINE': reason" - each such segment names one line. */
static size_t parse_failures(const char *msg, const struct nw_lp_line *lines, size_t n,
                             nw_influx_refuse_fn refuse, void *ctx)
{
    static const char pre[] = "unable to parse '";
    size_t count = 0;
    for (const char *p = strstr(msg, pre); p; p = strstr(p, pre)) {
        p += sizeof(pre) - 1;
        const char *seg_end = p + strcspn(p, "\n");
        const char *q = NULL; /* the last "': " of the segment ends the line */
        for (const char *c = p; c + 3 <= seg_end; c++) {
            q = memcmp(c, "': ", 3) == 0 ? c : q;
        }
        if (!q) {
            continue;
        }
        char reason[256];
        snprintf(reason, sizeof(reason), "unable to parse: %.*s", (int)(seg_end - q - 3), q + 3);
        char *dropped = strstr(reason, " dropped=");
        if (dropped) {
            *dropped = '\0';
        }
        for (size_t j = 0; j < n; j++) {
            if (lines[j].len == (size_t)(q - p) && memcmp(lines[j].text, p, lines[j].len) == 0) {
                refuse(ctx, j, reason);
                count++;
            }
        }
    }
    return count;
}

/* Copies the text between `after` and the next `stop` char into out. */
static const char *take_until(const char *p, const char *after, char stop, char *out, size_t cap)
{
    const char *a = p ? strstr(p, after) : NULL;
    if (!a) {
        return NULL;
    }
    a += strlen(after);
    const char *e = strchr(a, stop);
    if (!e || (size_t)(e - a) >= cap) {
        return NULL;
    }
    memcpy(out, a, (size_t)(e - a));
    out[e - a] = '\0';
    return e;
}

/* "field type conflict: input field "F" on measurement "M" is type T, ..." */
static size_t type_conflicts(const char *msg, const struct nw_lp_line *lines, size_t n,
                             nw_influx_refuse_fn refuse, void *ctx)
{
    size_t count = 0;
    for (const char *p = strstr(msg, "field type conflict: "); p;
         p = strstr(p + 1, "field type conflict: ")) {
        char field[256], meas[256], type[32], reason[256], m[256];
        const char *e = take_until(p, "input field \"", '"', field, sizeof(field));
        e = take_until(e, " on measurement \"", '"', meas, sizeof(meas));
        e = take_until(e, " is type ", ',', type, sizeof(type));
        if (!e) {
            continue;
        }
        size_t rl = strcspn(p, "\n");
        snprintf(reason, sizeof(reason), "%.*s", (int)rl, p);
        char *dropped = strstr(reason, " dropped=");
        if (dropped) {
            *dropped = '\0';
        }
        for (size_t j = 0; j < n; j++) {
            line_measurement(lines[j].text, lines[j].len, m, sizeof(m));
            const char *t =
                strcmp(m, meas) == 0 ? line_field_type(lines[j].text, lines[j].len, field) : NULL;
            if (t && strcmp(t, type) == 0) {
                refuse(ctx, j, reason);
                count++;
            }
        }
    }
    return count;
}

/* InfluxDB 3.x: {"error":"partial write ...","data":[{"line_number":2,...}]} */
static size_t line_numbers(const char *body, const char *msg, size_t n, nw_influx_refuse_fn refuse,
                           void *ctx)
{
    size_t count = 0;
    for (const char *p = strstr(body, "\"line_number\""); p; p = strstr(p + 1, "\"line_number\"")) {
        const char *v = p + strlen("\"line_number\"");
        v += strspn(v, " :");
        char *end;
        unsigned long long no = strtoull(v, &end, 10);
        if (end > v && no >= 1 && no <= n) {
            refuse(ctx, (size_t)(no - 1), msg[0] ? msg : "refused by line number");
            count++;
        }
    }
    return count;
}

size_t nw_influx_identify(const char *body, size_t body_len, const struct nw_lp_line *lines,
                          size_t n, nw_influx_refuse_fn refuse, void *ctx)
{
    static const char *const keys[] = {"error", "message", NULL};
    char *msg = malloc(body_len + 1); /* once per 400 answer, never per point */
    char *raw = malloc(body_len + 1);
    size_t count = 0;
    if (msg && raw) {
        memcpy(raw, body, body_len);
        raw[body_len] = '\0';
        if (!nw_store_json_get(body, body_len, keys, msg, body_len + 1)) {
            memcpy(msg, raw, body_len + 1);
        }
        count = parse_failures(msg, lines, n, refuse, ctx);
        count += type_conflicts(msg, lines, n, refuse, ctx);
        count += line_numbers(raw, msg, n, refuse, ctx);
    }
    free(msg);
    free(raw);
    return count;
}

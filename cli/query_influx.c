/*
 * query_influx.c - query.h on InfluxDB 1.x: InfluxQL over HTTP.
 *
 *   POST /query   db=DB&epoch=ms&chunked=true&chunk_size=N&q=SELECT ... GROUP BY "device"
 *
 * With chunked=true InfluxDB streams one complete JSON document per chunk
 * (at most chunk_size rows of one series each). The write callback cuts the
 * stream into documents by tracking brace depth outside strings, parses each
 * one with json.c as soon as it is complete, hands its rows to the caller
 * and drops it: memory is one chunk, whatever the time range. A document
 * bigger than max_chunk_bytes, or one that does not parse, stops the
 * transfer with NW_ERR_PROTOCOL.
 *
 * Values are normalised by the schema type of each column (query.h): JSON
 * numbers to INT or REAL, true/false to BOOL; a string where a number
 * belongs is a protocol error, not a silent zero. Errors InfluxDB reports
 * inside a 200 answer ({"results":[{"error":"database not found: x"}]},
 * also mid-stream) are errors here.
 *
 * Credentials: user:password from the URL, else NEEDLEWATCH_INFLUX_USER /
 * NEEDLEWATCH_INFLUX_PASSWORD, sent as HTTP basic auth; never in messages.
 * Redirects are not followed (they would carry the credentials elsewhere).
 */
#include "json.h"
#include "query_impl.h"

#include <store_impl.h>

#include <curl/curl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define Q_MAX 8192
#define ERRBODY_MAX 4096
#define TEXT_MAX 16384

struct qi {
    CURL *curl;
    char base[600]; /* http[s]://host:port */
    char db[256], rp[256];
    char user[256], password[256];
    char name[NW_STORE_URL_MAX];
    struct nw_query_options opt;
    struct nw_json *json;
};

/* One running query: the stream state. */
struct stream {
    struct qi *qi;
    const struct nw_query_spec *spec;
    const int *types;
    nw_query_row_fn fn;
    void *user;
    struct nw_error *err;
    enum nw_err rc; /* first failure; stops the transfer */
    long status;
    char *buf;
    size_t len, cap, scan; /* bytes held; allocated; scanned for document ends */
    int depth;
    bool in_str, esc;
    char errbody[ERRBODY_MAX];
    size_t errlen;
    char text[TEXT_MAX]; /* unescaped strings of one row */
    struct nw_qvalue vals[NW_QUERY_MAX_COLS];
    char device[NW_DEVICE_ID_MAX * 2 + 1];
};

/* --- InfluxQL ----------------------------------------------------------- */

static bool put(char *b, size_t *at, const char *s)
{
    size_t n = strlen(s);
    if (*at + n >= Q_MAX) {
        return false;
    }
    memcpy(b + *at, s, n + 1);
    *at += n;
    return true;
}

/* Quoted identifier "x" or string literal 'x', backslash-escaped. */
static bool put_quoted(char *b, size_t *at, const char *s, char q)
{
    if (*at + 1 >= Q_MAX) {
        return false;
    }
    b[(*at)++] = q;
    for (; *s; s++) {
        if (*at + 3 >= Q_MAX) {
            return false;
        }
        if (*s == q || *s == '\\') {
            b[(*at)++] = '\\';
        }
        b[(*at)++] = *s;
    }
    b[(*at)++] = q;
    b[*at] = '\0';
    return true;
}

static bool influxql(const struct qi *x, const struct nw_query_spec *spec, char *q)
{
    size_t at = 0;
    char num[64];
    bool ok = put(q, &at, "SELECT ");
    for (size_t k = 0; ok && k < spec->ncols; k++) {
        ok = (k == 0 || put(q, &at, ",")) && put_quoted(q, &at, spec->cols[k], '"');
    }
    ok = ok && put(q, &at, " FROM ");
    if (ok && x->rp[0]) {
        ok = put_quoted(q, &at, x->rp, '"') && put(q, &at, ".");
    }
    ok = ok && put_quoted(q, &at, spec->measurement, '"');
    snprintf(num, sizeof(num), " WHERE time >= %" PRId64 "ms AND time < %" PRId64 "ms",
             spec->from_ms, spec->to_ms);
    ok = ok && put(q, &at, num);
    for (size_t k = 0; ok && k < spec->nfilters; k++) {
        ok = put(q, &at, " AND ") && put_quoted(q, &at, spec->filters[k].col, '"') &&
             put(q, &at, " = ") && put_quoted(q, &at, spec->filters[k].value, '\'');
    }
    ok = ok && put(q, &at, " GROUP BY \"device\"");
    if (ok && spec->latest_per_device) {
        ok = put(q, &at, " ORDER BY time DESC LIMIT 1");
    }
    return ok;
}

/* --- answers ------------------------------------------------------------ */

static enum nw_err proto(struct stream *s, const char *what)
{
    return nw_error_set(s->err, NW_ERR_PROTOCOL, "%s: malformed answer to /query: %s", s->qi->name,
                        what);
}

/* InfluxDB's error text: "database not found: x" is a missing database. */
static enum nw_err influx_error(struct stream *s, const char *msg)
{
    enum nw_err code = strstr(msg, "not found") ? NW_ERR_NOT_FOUND
                       : strstr(msg, "authorization") || strstr(msg, "authenticat")
                           ? NW_ERR_AUTH
                           : NW_ERR_PROTOCOL;
    return nw_error_set(s->err, code, "%s: InfluxDB: %s", s->qi->name, msg);
}

static enum nw_err series_rows(struct stream *s, struct nw_json *j, uint32_t ser)
{
    uint32_t tags = nw_json_member(j, ser, "tags");
    uint32_t dev = tags ? nw_json_member(j, tags, "device") : 0;
    s->device[0] = '\0';
    if (dev && nw_json_str(j, dev, s->device, sizeof(s->device)) < 0) {
        return proto(s, "bad device tag");
    }
    uint32_t cols = nw_json_member(j, ser, "columns");
    uint32_t vals = nw_json_member(j, ser, "values");
    const struct nw_json_tok *ct = nw_json_at(j, cols);
    if (!cols || ct->type != NW_JSON_ARR || ct->size > 64) {
        return proto(s, "series without columns");
    }
    /* map[c] = spec column of answer column c; -2 time; -1 unknown */
    int map[64];
    uint32_t c = nw_json_first(j, cols);
    bool have_time = false;
    for (uint32_t i = 0; i < ct->size; i++, c = nw_json_next(j, c)) {
        map[i] = -1;
        if (nw_json_str_eq(j, c, "time")) {
            map[i] = -2;
            have_time = true;
            continue;
        }
        for (size_t k = 0; k < s->spec->ncols; k++) {
            if (nw_json_str_eq(j, c, s->spec->cols[k])) {
                map[i] = (int)k;
                break;
            }
        }
    }
    if (!have_time) {
        return proto(s, "series without a time column");
    }
    const struct nw_json_tok *vt = nw_json_at(j, vals);
    if (!vals) {
        return NW_OK;
    }
    if (vt->type != NW_JSON_ARR) {
        return proto(s, "values is not an array");
    }
    uint32_t r = nw_json_first(j, vals);
    for (uint32_t ri = 0; ri < vt->size; ri++, r = nw_json_next(j, r)) {
        const struct nw_json_tok *rt = nw_json_at(j, r);
        if (rt->type != NW_JSON_ARR || rt->size != ct->size) {
            return proto(s, "a row does not match its columns");
        }
        size_t tat = 0;
        int64_t time_ms = 0;
        for (size_t k = 0; k < s->spec->ncols; k++) {
            s->vals[k] =
                (struct nw_qvalue){s->types[k] == NW_COL_TAG ? NW_QV_TEXT : NW_QV_NULL, 0, 0, ""};
        }
        uint32_t v = nw_json_first(j, r);
        for (uint32_t i = 0; i < rt->size; i++, v = nw_json_next(j, v)) {
            const struct nw_json_tok *t = nw_json_at(j, v);
            if (map[i] == -2) {
                if (!nw_json_int(j, v, &time_ms)) {
                    return proto(s, "time is not an integer (epoch=ms)");
                }
                continue;
            }
            if (map[i] < 0 || t->type == NW_JSON_NULL) {
                continue;
            }
            struct nw_qvalue *q = &s->vals[map[i]];
            int type = s->types[map[i]];
            if (type == NW_COL_TAG || type == NW_COL_STR) {
                long n = nw_json_str(j, v, s->text + tat, sizeof(s->text) - tat);
                if (n < 0) {
                    return proto(s, "a string value is not a string or too long");
                }
                if (n > 0 || type == NW_COL_TAG) {
                    q->type = NW_QV_TEXT;
                    q->s = s->text + tat;
                }
                tat += (size_t)n + 1;
            } else if (type == NW_COL_BOOL) {
                if (t->type != NW_JSON_BOOL) {
                    return proto(s, "a flag is not true/false");
                }
                q->type = NW_QV_BOOL;
                q->i = nw_json_at(j, v)->end - nw_json_at(j, v)->start == 4; /* "true" */
                q->f = (double)q->i;
            } else if (type == NW_COL_INT) {
                double d;
                if (nw_json_int(j, v, &q->i)) {
                    q->f = (double)q->i;
                } else if (nw_json_num(j, v, &d) && d == (double)(int64_t)d) {
                    q->i = (int64_t)d; /* written as float by another writer */
                    q->f = d;
                } else {
                    return proto(s, "an integer field is not an integer");
                }
                q->type = NW_QV_INT;
            } else {
                if (!nw_json_num(j, v, &q->f)) {
                    return proto(s, "a number field is not a number");
                }
                q->type = NW_QV_REAL;
            }
        }
        struct nw_qrow row = {s->device, time_ms, s->vals, s->spec->ncols};
        enum nw_err rc = s->fn(s->user, &row, s->err);
        if (rc != NW_OK) {
            return rc;
        }
    }
    return NW_OK;
}

static enum nw_err document(struct stream *s, const char *text, size_t len)
{
    struct nw_json *j = s->qi->json;
    struct nw_error perr;
    enum nw_err rc = nw_json_parse(j, text, len, &perr);
    if (rc != NW_OK) {
        return proto(s, perr.msg);
    }
    char msg[512];
    uint32_t e = nw_json_member(j, 0, "error");
    if (e) {
        nw_json_str(j, e, msg, sizeof(msg));
        return influx_error(s, msg);
    }
    uint32_t results = nw_json_member(j, 0, "results");
    const struct nw_json_tok *rt = nw_json_at(j, results);
    if (!results || rt->type != NW_JSON_ARR) {
        return proto(s, "no results");
    }
    uint32_t r = nw_json_first(j, results);
    for (uint32_t i = 0; i < rt->size; i++, r = nw_json_next(j, r)) {
        if ((e = nw_json_member(j, r, "error")) != 0) {
            nw_json_str(j, e, msg, sizeof(msg));
            return influx_error(s, msg);
        }
        uint32_t series = nw_json_member(j, r, "series");
        if (!series) {
            continue; /* no rows */
        }
        const struct nw_json_tok *st = nw_json_at(j, series);
        if (st->type != NW_JSON_ARR) {
            return proto(s, "series is not an array");
        }
        uint32_t ser = nw_json_first(j, series);
        for (uint32_t k = 0; k < st->size; k++, ser = nw_json_next(j, ser)) {
            if ((rc = series_rows(s, j, ser)) != NW_OK) {
                return rc;
            }
        }
    }
    return NW_OK;
}

/* Finds complete top-level documents in s->buf and processes them. */
static enum nw_err drain(struct stream *s)
{
    size_t start = 0;
    for (size_t i = s->scan; i < s->len; i++) {
        char c = s->buf[i];
        if (s->in_str) {
            if (s->esc) {
                s->esc = false;
            } else if (c == '\\') {
                s->esc = true;
            } else if (c == '"') {
                s->in_str = false;
            }
            continue;
        }
        if (c == '"') {
            s->in_str = true;
        } else if (c == '{' || c == '[') {
            s->depth++;
        } else if (c == '}' || c == ']') {
            if (--s->depth < 0) {
                return proto(s, "unbalanced brackets");
            }
            if (s->depth == 0) {
                enum nw_err rc = document(s, s->buf + start, i + 1 - start);
                if (rc != NW_OK) {
                    return rc;
                }
                start = i + 1;
            }
        } else if (s->depth == 0 && c != ' ' && c != '\n' && c != '\r' && c != '\t') {
            return proto(s, "text between documents");
        }
    }
    memmove(s->buf, s->buf + start, s->len - start);
    s->len -= start;
    s->scan = s->len;
    return NW_OK;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *user)
{
    struct stream *s = user;
    size_t n = size * nmemb;
    if (s->rc != NW_OK) {
        return 0;
    }
    if (s->status == 0) {
        curl_easy_getinfo(s->qi->curl, CURLINFO_RESPONSE_CODE, &s->status);
    }
    if (s->status != 200) { /* keep the start of an error answer for the message */
        size_t room = sizeof(s->errbody) - 1 - s->errlen;
        size_t k = n < room ? n : room;
        memcpy(s->errbody + s->errlen, data, k);
        s->errlen += k;
        s->errbody[s->errlen] = '\0';
        return n;
    }
    if (s->len + n > s->qi->opt.max_chunk_bytes) {
        s->rc = proto(s, "a chunk is larger than the limit (max_chunk_bytes)");
        return 0;
    }
    if (s->len + n > s->cap) {
        size_t cap = s->cap ? s->cap : 65536;
        while (cap < s->len + n) {
            cap *= 2;
        }
        char *b = realloc(s->buf, cap);
        if (!b) {
            s->rc = nw_error_set(s->err, NW_ERR_NOMEM, "out of memory");
            return 0;
        }
        s->buf = b;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, data, n);
    s->len += n;
    s->rc = drain(s);
    return s->rc == NW_OK ? n : 0;
}

static enum nw_err http_error(struct stream *s)
{
    const char *body = s->errbody;
    char msg[300] = "";
    struct nw_json *j = s->qi->json;
    if (s->errlen && nw_json_parse(j, body, s->errlen, NULL) == NW_OK) {
        uint32_t e = nw_json_member(j, 0, "error");
        if (e) {
            nw_json_str(j, e, msg, sizeof(msg));
        }
    }
    if (!msg[0]) {
        snprintf(msg, sizeof(msg), "%.200s", body);
        for (char *p = msg; *p; p++) {
            if ((unsigned char)*p < 0x20) {
                *p = ' ';
            }
        }
    }
    long st = s->status;
    enum nw_err code = st == 401 || st == 403   ? NW_ERR_AUTH
                       : st == 404              ? NW_ERR_NOT_FOUND
                       : st >= 500 || st == 429 ? NW_ERR_RETRY
                                                : NW_ERR_PROTOCOL;
    if (code == NW_ERR_AUTH) {
        return nw_error_set(s->err, code, "%s: HTTP %ld: %s%s", s->qi->name, st, msg,
                            s->qi->user[0] ? " (credentials refused)"
                                           : " (no credentials: set NEEDLEWATCH_INFLUX_USER and "
                                             "NEEDLEWATCH_INFLUX_PASSWORD)");
    }
    return nw_error_set(s->err, code, "%s: HTTP %ld: %s", s->qi->name, st, msg);
}

static enum nw_err run(void *impl, const struct nw_query_spec *spec, const int *types,
                       nw_query_row_fn fn, void *user, struct nw_error *err)
{
    struct qi *x = impl;
    char q[Q_MAX];
    if (!influxql(x, spec, q)) {
        return nw_error_set(err, NW_ERR_TOO_BIG, "query on %s too long", spec->measurement);
    }
    struct stream *s = calloc(1, sizeof(*s));
    if (!s) {
        return nw_error_set(err, NW_ERR_NOMEM, "out of memory");
    }
    *s = (struct stream){.qi = x, .spec = spec, .types = types, .fn = fn, .user = user, .err = err};
    char *eq = curl_easy_escape(x->curl, q, 0);
    char *edb = curl_easy_escape(x->curl, x->db, 0);
    char url[700], *body = NULL;
    size_t blen = (eq ? strlen(eq) : 0) + (edb ? strlen(edb) : 0) + 128;
    body = eq && edb ? malloc(blen) : NULL;
    enum nw_err rc = NW_OK;
    if (!body) {
        rc = nw_error_set(err, NW_ERR_NOMEM, "out of memory");
        goto done;
    }
    snprintf(body, blen, "db=%s&epoch=ms&chunked=true&chunk_size=%zu&q=%s", edb, x->opt.chunk_rows,
             eq);
    snprintf(url, sizeof(url), "%s/query", x->base);
    curl_easy_setopt(x->curl, CURLOPT_URL, url);
    curl_easy_setopt(x->curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(x->curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    curl_easy_setopt(x->curl, CURLOPT_WRITEDATA, s);
    char cerr[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(x->curl, CURLOPT_ERRORBUFFER, cerr);
    CURLcode cc = curl_easy_perform(x->curl);
    curl_easy_setopt(x->curl, CURLOPT_ERRORBUFFER, NULL);
    if (s->rc != NW_OK) {
        rc = s->rc;
    } else if (cc != CURLE_OK) {
        rc = nw_error_set(err, cc == CURLE_OPERATION_TIMEDOUT ? NW_ERR_TIMEOUT : NW_ERR_RETRY,
                          "%s: cannot query the store: %s", x->name,
                          cerr[0] ? cerr : curl_easy_strerror(cc));
    } else {
        curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &s->status);
        if (s->status != 200) {
            rc = http_error(s);
        } else if (s->depth != 0 || s->in_str) {
            rc = proto(s, "the answer ends inside a document");
        }
    }
done:
    curl_free(eq);
    curl_free(edb);
    free(body);
    free(s->buf);
    free(s);
    return rc;
}

static void close_qi(void *impl)
{
    struct qi *x = impl;
    if (x) {
        curl_easy_cleanup(x->curl);
        nw_json_destroy(&x->json);
        memset(x->password, 0, sizeof(x->password));
        free(x);
    }
}

static const struct nw_query_backend ops = {run, close_qi};

enum nw_err nw_query_influx_open(const struct nw_store_url *url, const char *name,
                                 const struct nw_query_options *opt,
                                 const struct nw_query_backend **out_ops, void **out_impl,
                                 struct nw_error *err)
{
    static bool curl_ready;
    if (!curl_ready) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        curl_ready = true;
    }
    struct qi *x = calloc(1, sizeof(*x));
    if (!x) {
        return nw_error_set(err, NW_ERR_NOMEM, "out of memory");
    }
    x->opt = *opt;
    snprintf(x->name, sizeof(x->name), "%s", name);
    bool v6 = strchr(url->host, ':') != NULL;
    snprintf(x->base, sizeof(x->base), "%s://%s%s%s:%u", url->tls ? "https" : "http", v6 ? "[" : "",
             url->host, v6 ? "]" : "", url->port);
    snprintf(x->db, sizeof(x->db), "%s", url->db);
    snprintf(x->rp, sizeof(x->rp), "%s", url->rp);
    const char *eu = getenv("NEEDLEWATCH_INFLUX_USER"), *ep = getenv("NEEDLEWATCH_INFLUX_PASSWORD");
    if (url->user[0]) {
        snprintf(x->user, sizeof(x->user), "%s", url->user);
        snprintf(x->password, sizeof(x->password), "%s", url->password);
    } else if (eu && eu[0]) {
        snprintf(x->user, sizeof(x->user), "%s", eu);
        snprintf(x->password, sizeof(x->password), "%s", ep ? ep : "");
    }
    /* A 10 000-row chunk of 20 columns is ~220 000 tokens. */
    x->json = nw_json_new((opt->chunk_rows + 16) * (NW_QUERY_MAX_COLS + 2) + 1024);
    x->curl = curl_easy_init();
    if (!x->json || !x->curl) {
        close_qi(x);
        return nw_error_set(err, NW_ERR_NOMEM, "out of memory");
    }
    CURL *c = x->curl;
    CURLcode rc = curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    rc |= curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)opt->connect_timeout_ms);
    rc |= curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)opt->timeout_ms);
    rc |= curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    rc |= curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    rc |= curl_easy_setopt(c, CURLOPT_USERAGENT, "needlewatch/" NW_VERSION);
    rc |= curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    rc |= curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
    if (x->user[0]) {
        rc |= curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        rc |= curl_easy_setopt(c, CURLOPT_USERNAME, x->user);
        rc |= curl_easy_setopt(c, CURLOPT_PASSWORD, x->password);
    }
    if (rc != CURLE_OK) {
        close_qi(x);
        return nw_error_set(err, NW_ERR_IO, "%s: libcurl setup failed", name);
    }
    *out_ops = &ops;
    *out_impl = x;
    return NW_OK;
}

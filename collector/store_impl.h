/*
 * store_impl.h - what the store backends share; private to collector/store*.c
 * and their unit tests.
 *
 * store.c owns the parts every backend needs the same way: URL parsing,
 * option defaults, the dead-letter file, backoff with jitter, and counters.
 * store_schema.c is the one table of columns per measurement from which
 * both the SQLite DDL/INSERTs and the line-protocol points are made, so the
 * two backends cannot drift apart. store_sqlite.c and store_influx.c
 * implement write/close; store_http.c is the libcurl part.
 */
#ifndef COLLECTOR_STORE_IMPL_H
#define COLLECTOR_STORE_IMPL_H

#include "store.h"

#include <pthread.h>
#include <stdint.h>

/* --- backends -------------------------------------------------------- */

struct nw_store_ops {
    /* Fills *out (zeroed by the caller, done = 0); never sleeps. */
    void (*write)(struct nw_store *s, const struct nw_point *const *pts, size_t n,
                  struct nw_store_outcome *out);
    void (*close)(struct nw_store *s);
};

struct nw_store {
    const struct nw_store_ops *ops;
    void *impl;
    struct nw_store_url url;     /* password wiped after open */
    struct nw_store_options opt; /* defaults applied; string pointers cleared */

    /* dead-letter file: one JSON object per line */
    int dl_fd; /* -1: none configured */
    char *dl_buf;
    size_t dl_cap;
    uint64_t dl_bytes; /* file size */
    bool dl_dirty;     /* written since the last fsync */

    /* backoff: failures in a row, and no request before not_before */
    unsigned failures;
    int64_t not_before_mono_ms;
    uint64_t rng;

    pthread_mutex_t stats_mu;
    struct nw_store_stats stats;
};

enum nw_err nw_store_sqlite_open(struct nw_store *s, struct nw_error *err);
enum nw_err nw_store_influx_open(struct nw_store *s, struct nw_error *err);

/* --- shared helpers (store.c) ---------------------------------------- */

/*
 * Appends one dead-letter record for point p (refused for good, `reason`
 * from the server or the encoder, `line` the line protocol or NULL) and
 * logs it. NW_OK: the record is written (made durable by
 * nw_store_dead_letter_sync before the point is reported settled).
 * NW_ERR_IO / NW_ERR_FULL: not written; the point must stay unsettled.
 */
enum nw_err nw_store_dead_letter(struct nw_store *s, const struct nw_point *p, const char *reason,
                                 const char *line, size_t line_len, struct nw_error *err);
/* fsync()s the dead-letter file if anything was written since the last call. */
enum nw_err nw_store_dead_letter_sync(struct nw_store *s, struct nw_error *err);

/* After a failure: the next delay (exponential, equal jitter, capped). */
int64_t nw_store_backoff_next(struct nw_store *s);
/* After a success: back to the minimum. */
void nw_store_backoff_reset(struct nw_store *s);

/* Counter updates (take the stats mutex). */
void nw_store_count_request(struct nw_store *s, int http_status, uint64_t bytes,
                            uint64_t latency_us);
void nw_store_count_transport(struct nw_store *s, bool timeout, uint64_t bytes,
                              uint64_t latency_us);

/*
 * Retry-After value (delta-seconds or an HTTP-date) relative to now_ms, in
 * ms, >= 0; -1 when it is neither. value is borrowed.
 */
int64_t nw_store_parse_retry_after(const char *value, int64_t now_ms);

/*
 * Appends s (len bytes) to dst as the inside of a JSON string; returns the
 * new length, or (size_t)-1 when it does not fit cap (dst then unspecified).
 * Bytes >= 0x80 are copied as they are (the inputs are UTF-8).
 */
size_t nw_store_json_escape(char *dst, size_t at, size_t cap, const char *s, size_t len);

/* Decodes the string value of "key" in a flat JSON object body; the first
 * of the keys that is present wins. false if none. out is NUL-terminated. */
bool nw_store_json_get(const char *body, size_t len, const char *const *keys, char *out,
                       size_t cap);

/* --- schema (store_schema.c) ----------------------------------------- */

enum nw_col_type {
    NW_COL_TAG,  /* string; an InfluxDB tag, TEXT NOT NULL in SQLite */
    NW_COL_INT,  /* 64-bit signed: 12i / INTEGER */
    NW_COL_F64,  /* REAL */
    NW_COL_BOOL, /* true/false / INTEGER 0 or 1 */
    NW_COL_STR,  /* string field / TEXT; "" is stored as absent (NULL) */
};

struct nw_col {
    const char *name;
    enum nw_col_type type;
    bool key; /* part of the point's identity (with the time) */
};

struct nw_col_value {
    bool present;
    int64_t i;
    double f;
    bool b;
    const char *s; /* borrowed from the point */
};

#define NW_SCHEMA_MAX_COLS 32
#define NW_SCHEMA_VERSION 2

struct nw_schema {
    const char *measurement;
    const struct nw_col *cols; /* tags first, sorted by name; then fields */
    size_t ncols;
};

/* The columns of a kind; NULL for an unknown kind. Static. */
const struct nw_schema *nw_schema_of(enum nw_point_kind kind);

/*
 * The values of p in column order (vals has NW_SCHEMA_MAX_COLS slots).
 * NW_ERR_INVALID with the field named when a value cannot be stored
 * unchanged (an unsigned counter above INT64_MAX, NaN or infinity): the
 * point is refused by every backend alike.
 */
enum nw_err nw_schema_values(const struct nw_point *p, struct nw_col_value *vals,
                             struct nw_error *err);

/* --- HTTP (store_http.c) ---------------------------------------------- */

/* Bytes of an answer body kept (the rest is read and discarded). */
#define NW_HTTP_BODY_MAX (64 * 1024)

struct nw_http;

struct nw_http_answer {
    long status;            /* 0: no HTTP answer */
    bool transport_error;   /* connection refused, reset, DNS, TLS, ... */
    bool timeout;           /* connect or total timeout */
    bool tls_trust;         /* certificate not trusted: configuration */
    int64_t retry_after_ms; /* -1: no usable Retry-After header */
    size_t body_len;
    bool body_truncated;
    char body[NW_HTTP_BODY_MAX + 1]; /* NUL-terminated */
    char error[256];                 /* transport error text */
    uint64_t latency_us;
};

/* Produces the request body from byte `offset` on: copies up to cap bytes
 * into dst, returns how many (0 only at the end). Offsets may go back to 0:
 * libcurl re-sends a request on a fresh connection when a kept-alive one
 * turned out to be closed by the server. */
typedef size_t (*nw_http_read_fn)(void *ctx, uint64_t offset, char *dst, size_t cap);

/*
 * One reusable HTTP client (a libcurl easy handle: connections are kept
 * alive between requests). auth_header ("Authorization: Token ...") and
 * user/password (basic auth) may be NULL; all strings are copied, and the
 * copies of secrets are wiped at destroy.
 */
struct nw_http *nw_http_new(const struct nw_store_options *opt, const char *auth_header,
                            const char *user, const char *password, struct nw_error *err);
void nw_http_destroy(struct nw_http **h);

/* POSTs len bytes produced by read(ctx) to url (borrowed). Fills *ans. */
void nw_http_post(struct nw_http *h, const char *url, nw_http_read_fn read, void *ctx, size_t len,
                  struct nw_http_answer *ans);

/* --- InfluxDB answers (store_influx.c), pure, exposed for tests ------- */

/*
 * What an HTTP 400/422 body says about the lines of the request: calls
 * refuse(ctx, i, reason) for each request line i (0-based, lines[] are the
 * request's lines without '\n') that the body names as refused, via
 *  - "unable to parse 'LINE': reason" (InfluxDB 1.x and 2.x),
 *  - "field type conflict: input field "F" on measurement "M" is type T"
 *    (InfluxDB 1.x partial write: every line of M whose field F is of type T),
 *  - "line_number":N entries (InfluxDB 3.x, 1-based).
 * Returns how many distinct lines were named. msg is the decoded error text.
 */
struct nw_lp_line {
    const char *text;
    size_t len; /* without the '\n' */
};
typedef void (*nw_influx_refuse_fn)(void *ctx, size_t i, const char *reason);
size_t nw_influx_identify(const char *body, size_t body_len, const struct nw_lp_line *lines,
                          size_t n, nw_influx_refuse_fn refuse, void *ctx);

#endif

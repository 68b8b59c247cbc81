/*
 * store.h - the time-series store behind the collector's writer thread.
 *
 * One interface, three backends chosen by URL (DESIGN.md §5, §10):
 *
 *   sqlite:PATH                              embedded default ("sqlite:" = needlewatch.db)
 *   influx://[user:pass@]host[:port]/DB[?rp=RP]   InfluxDB 1.x /write (also VictoriaMetrics)
 *   influx2://host[:port]/?org=O&bucket=B    InfluxDB 2.x/3.x /api/v2/write (VictoriaMetrics)
 *   influxs://, influx2s://                  the same over HTTPS
 *
 * The port defaults to 8086. Credentials: v1 takes user:password from the
 * URL (allowed, discouraged: a URL ends up in ps, shell history and config
 * dumps), else NEEDLEWATCH_INFLUX_USER / NEEDLEWATCH_INFLUX_PASSWORD, else
 * the first line "user:password" of opt->credentials_file. v2 takes its
 * token from NEEDLEWATCH_INFLUX_TOKEN, else the first line of
 * opt->token_file. No secret ever appears in a log line, an error message,
 * nw_store_name() or an outcome.
 *
 * The contract of nw_store_write() is what lets the collector acknowledge
 * windows end to end (DESIGN.md §4): out->done counts the points, from the
 * START of the array, that are settled - stored (a committed SQLite
 * transaction; HTTP 2xx for a request that carried the point) or refused
 * for good and written to the dead-letter file with the device and the
 * reason. Everything from out->done on is still the caller's: on a retryable
 * code it waits out->retry_after_ms and calls again with the rest; on
 * NW_ERR_AUTH / NW_ERR_NOT_FOUND / NW_ERR_PROTOCOL (configuration problems)
 * it alerts, keeps the data and retries slowly. The store never sleeps,
 * never loops without bound (a request budget and a time budget per call),
 * and never allocates per point.
 *
 * Re-sending is always safe: every point has an identity (collector/point.h)
 * that maps to one row (SQLite primary key) or one series+timestamp
 * (InfluxDB), so a re-sent point overwrites itself. A point may therefore be
 * written to the dead-letter file more than once when a batch is retried;
 * it is never stored twice.
 *
 * Threads: a store belongs to one thread (the writer). Only
 * nw_store_stats() may be called from another thread (the /metrics
 * handler) while the owner writes.
 */
#ifndef COLLECTOR_STORE_H
#define COLLECTOR_STORE_H

#include "point.h"

#include <needlewatch/err.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum nw_store_scheme {
    NW_STORE_SQLITE,
    NW_STORE_INFLUX1, /* /write?db= (InfluxDB 1.x, VictoriaMetrics, QuestDB) */
    NW_STORE_INFLUX2, /* /api/v2/write?org=&bucket= with a token */
};

#define NW_STORE_URL_MAX 1024

/* A parsed store URL. user and password are secrets: never print them. */
struct nw_store_url {
    enum nw_store_scheme scheme;
    bool tls;                      /* influxs://, influx2s:// */
    char path[NW_STORE_URL_MAX];   /* sqlite: the database file */
    char host[256];                /* without IPv6 brackets */
    unsigned port;                 /* 1..65535, default 8086 */
    char db[256], rp[256];         /* v1; rp may be "" */
    char org[256], bucket[256];    /* v2 */
    char user[256], password[256]; /* v1, from the URL; "" if none */
    char name[NW_STORE_URL_MAX];   /* the URL without credentials, for logs */
};

/*
 * Parses url (borrowed) into *out (caller-owned; zeroed first). Percent
 * escapes are decoded in user, password, DB, rp, org and bucket (a '@' in a
 * password is %40). NW_ERR_CONFIG with a reason that never quotes the
 * credentials. Wipe out->password when done with it (nw_store_url_wipe).
 */
enum nw_err nw_store_url_parse(const char *url, struct nw_store_url *out, struct nw_error *out_err);

/* Overwrites the credentials in *u with zeros. NULL-safe. */
void nw_store_url_wipe(struct nw_store_url *u);

/*
 * Options. A zeroed struct (or NULL) means every default; each field's
 * default is in its comment. Strings are borrowed for nw_store_open() only.
 */
struct nw_store_options {
    int64_t connect_timeout_ms;     /* 5000: TCP + TLS handshake */
    int64_t timeout_ms;             /* 30000: one whole HTTP request; bounds a hung server */
    int64_t write_budget_ms;        /* 60000: no new request after this much time in a call */
    unsigned max_requests;          /* 64: HTTP requests per nw_store_write() call (>= 8) */
    size_t max_batch_bytes;         /* 1 MiB: the one line-protocol buffer (16 KiB..64 MiB) */
    size_t max_batch_points;        /* 5000: points per HTTP request (1..1000000) */
    const char *dead_letter_path;   /* NULL: refused points are only logged and counted */
    uint64_t dead_letter_max_bytes; /* 64 MiB: beyond it refusals stay unsettled (NW_ERR_FULL) */
    const char *user_agent;         /* "needlewatch/VERSION" */
    const char *credentials_file;   /* v1: first line "user:password" */
    const char *token_file;         /* v2: first line is the token */
    const char *ca_file;            /* https: CA bundle instead of the system's */
    int64_t backoff_min_ms;         /* 500: first delay after a failure */
    int64_t backoff_max_ms;         /* 60000: cap, also the slow pace for auth/404 */
    int64_t retry_after_max_ms;     /* 600000: a server's Retry-After is capped at this */
    unsigned blind_dead_letter_max; /* 8: see STORE.md, "400 that names no line" */
    int64_t sqlite_busy_timeout_ms; /* 5000 */
    uint64_t sqlite_cache_kib;      /* 2048: page cache of the SQLite connection */
    uint64_t jitter_seed;           /* 0: seeded from the clock; tests fix it */
};

/* The result of one nw_store_write() call. */
struct nw_store_outcome {
    enum nw_err code;       /* NW_OK iff done == n */
    size_t done;            /* settled points from the start of the array */
    size_t stored;          /* points this call stored; when it stopped midway some of
                               them may lie after done (re-sent later, they overwrite
                               themselves) */
    size_t dead_lettered;   /* points this call refused and dead-lettered (idem) */
    int64_t retry_after_ms; /* when code != NW_OK: wait at least this long */
    int http_status;        /* last HTTP status seen, 0 if none (SQLite, no answer) */
    unsigned requests;      /* HTTP requests made by this call */
    char msg[256];          /* one line, no secrets; "" on success */
};

/* Counters since open, for /metrics. */
#define NW_STORE_STATUS_CLASSES 10
struct nw_store_stats {
    uint64_t writes;        /* nw_store_write() calls */
    uint64_t writes_failed; /* calls that returned code != NW_OK */
    uint64_t points_stored;
    uint64_t points_dead_lettered;
    uint64_t requests;       /* HTTP requests, or SQLite transactions */
    uint64_t bytes_sent;     /* request bodies */
    uint64_t latency_sum_us; /* per request / transaction */
    uint64_t latency_max_us;
    /* HTTP answers: 2xx, 400, 401, 403, 404, 413, 429, 503, other 5xx,
     * other; transport errors (no answer) and timeouts separately. */
    uint64_t http[NW_STORE_STATUS_CLASSES];
    uint64_t transport_errors;
    uint64_t timeouts;
};

/* Names of the http[] slots: "2xx", "400", ..., "other"; static. */
const char *nw_store_status_class_name(unsigned i);

struct nw_store;

/*
 * Opens the store at url (borrowed). For SQLite this creates or migrates
 * the schema (PRAGMA user_version; a file newer than this build is an
 * error); for InfluxDB it reads credentials and prepares the HTTP handle but
 * sends nothing (a store that is down at start-up is not an open failure:
 * the first write says NW_ERR_RETRY). *out is caller-owned, free with
 * nw_store_close(). Errors: NW_ERR_CONFIG (URL, options, credentials),
 * NW_ERR_IO / NW_ERR_CORRUPT / NW_ERR_NOT_FOUND (database file), with a
 * one-line reason in *out_err (may be NULL).
 */
enum nw_err nw_store_open(const char *url, const struct nw_store_options *opt,
                          struct nw_store **out, struct nw_error *out_err);

/*
 * Writes pts[0..n) (borrowed for the call). Synchronous. Fills *out (never
 * NULL) and returns out->code: NW_OK; NW_ERR_RETRY / NW_ERR_TIMEOUT /
 * NW_ERR_IO / NW_ERR_FULL (retryable, out->retry_after_ms set);
 * NW_ERR_AUTH, NW_ERR_NOT_FOUND, NW_ERR_PROTOCOL, NW_ERR_CORRUPT
 * (configuration or server problem: keep the data, alert, retry slowly at
 * out->retry_after_ms). A call made before the previous call's
 * retry_after_ms has passed sends nothing and returns NW_ERR_RETRY with the
 * time left, so a caller cannot hammer a server that asked for a pause.
 */
enum nw_err nw_store_write(struct nw_store *store, const struct nw_point *pts, size_t n,
                           struct nw_store_outcome *out);

/* nw_store_write() of the points pts[0..n) point to, in that order: the
 * collector's writer keeps its batches as compact points in an arena (see
 * nw_point_size()). The pointers and points are borrowed for the call. */
enum nw_err nw_store_write_ptrs(struct nw_store *store, const struct nw_point *const *pts, size_t n,
                                struct nw_store_outcome *out);

/* The URL without credentials ("influx://127.0.0.1:8086/nw"). Borrowed. */
const char *nw_store_name(const struct nw_store *store);

enum nw_store_scheme nw_store_scheme(const struct nw_store *store);

/* Copies the counters into *out. Thread-safe. */
void nw_store_stats(struct nw_store *store, struct nw_store_stats *out);

/* Closes and frees *store, sets it to NULL. NULL-safe. */
void nw_store_close(struct nw_store **store);

/* PRAGMA application_id of a needlewatch SQLite store ("NWAT"): readers
 * (the CLI) check it before they trust a file. */
#define NW_STORE_SQLITE_APPLICATION_ID 0x4e574154

/* An SQLite result code in our vocabulary: busy/locked -> NW_ERR_RETRY,
 * corrupt/not a database -> NW_ERR_CORRUPT, cannot open -> NW_ERR_NOT_FOUND,
 * out of memory -> NW_ERR_NOMEM, anything else (I/O, disk full, read-only,
 * permissions) -> NW_ERR_IO. */
enum nw_err nw_store_sqlite_err(int sqlite_rc);

/* Process-wide SQLite settings; call once in main() before any thread
 * opens a database (later calls change nothing). Turns off SQLite's memory
 * statistics, which nothing here reads and which take a global mutex on
 * every allocation: 8.5 -> 7.9 us of CPU per stored window in
 * bench/store_ingest (three alternated pairs). */
void nw_store_sqlite_process_init(void);

#endif

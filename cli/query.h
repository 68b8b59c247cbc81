/*
 * query.h - read rows back from the collector's store, the same way on
 * both backends.
 *
 * Reports never ask a backend to aggregate: aggregation semantics differ
 * (InfluxDB buckets time and orders ties its own way, SQLite does not), so
 * every figure is computed in C from plain rows. A query is therefore only
 * "these columns of this measurement, time in [from, to), these tag or
 * field values equal", and the answer is a stream of rows handed to a
 * callback, never materialised:
 *
 *   sqlite:PATH    per device (a loose index scan finds them): SELECT device, time, cols
 *                  FROM m WHERE device = ? AND time in range AND ... ORDER BY time - one
 *                  range seek on the (device, time) key each (read-only connection; the
 *                  collector may write meanwhile)
 *   influx://...   InfluxQL over HTTP: SELECT cols FROM m WHERE ... GROUP BY device,
 *                  answered in chunks (chunked=true) that are parsed one by one,
 *                  so memory stays bounded whatever the range
 *
 * Guarantees: rows of one device arrive in ascending time (descending with
 * latest_per_device); devices arrive one after the other (a device's rows are
 * never interleaved with another's). The order *between* devices, and between
 * rows of one device with the same time (events of different kinds), is the
 * backend's: consumers that need more sort themselves. Values are normalised
 * by the store schema (collector/store_schema.c): a tag is always text ("" when
 * absent), an absent field is NW_QV_NULL, an integer field is NW_QV_INT, a
 * float NW_QV_REAL, a flag NW_QV_BOOL - whatever the backend's own encoding.
 *
 * Credentials (InfluxDB user:password from the URL or NEEDLEWATCH_INFLUX_USER /
 * NEEDLEWATCH_INFLUX_PASSWORD) never appear in an error message.
 */
#ifndef CLI_QUERY_H
#define CLI_QUERY_H

#include <needlewatch/err.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NW_QUERY_MAX_COLS 24
#define NW_QUERY_MAX_FILTERS 6

enum nw_qtype { NW_QV_NULL, NW_QV_INT, NW_QV_REAL, NW_QV_BOOL, NW_QV_TEXT };

struct nw_qvalue {
    enum nw_qtype type;
    int64_t i;     /* INT, BOOL (0/1) */
    double f;      /* REAL; also INT as a double */
    const char *s; /* TEXT: borrowed for the callback only; "" for non-text */
};

/* One row: borrowed for the duration of the callback. v[k] is column k of
 * the spec. */
struct nw_qrow {
    const char *device;
    int64_t time_ms;
    const struct nw_qvalue *v;
    size_t n;
};

struct nw_qfilter {
    const char *col;   /* a tag or string field of the measurement */
    const char *value; /* equal to this */
};

struct nw_query_spec {
    const char *measurement;             /* "needle_window", "session", ... */
    const char *cols[NW_QUERY_MAX_COLS]; /* names from store_schema.c; not device/time */
    size_t ncols;
    int64_t from_ms, to_ms; /* time in [from, to) */
    struct nw_qfilter filters[NW_QUERY_MAX_FILTERS];
    size_t nfilters;
    bool latest_per_device; /* only each device's newest row in the range */
};

/* Return NW_OK to go on; anything else stops the query and is returned by
 * nw_query_run() (with *err filled by the callback). */
typedef enum nw_err (*nw_query_row_fn)(void *user, const struct nw_qrow *row, struct nw_error *err);

struct nw_query_options {
    int64_t connect_timeout_ms; /* 5000 */
    int64_t timeout_ms;         /* 600000: one whole query (a 90-day report is long) */
    size_t chunk_rows;          /* 10000 (env NEEDLEWATCH_QUERY_CHUNK): InfluxDB rows per chunk */
    size_t max_chunk_bytes;     /* 64 MiB: a bigger chunk is a protocol error */
};

struct nw_query;

/*
 * Opens the store at url (borrowed) for reading: "sqlite:PATH" (must exist,
 * opened read-only) or "influx[s]://[user:pass@]host[:port]/DB" (nothing is
 * sent until the first query). opt may be NULL for defaults. *out is
 * caller-owned: nw_query_destroy(). Errors: NW_ERR_CONFIG (URL; influx2://
 * has no InfluxQL endpoint here), NW_ERR_NOT_FOUND (no such database file),
 * NW_ERR_IO / NW_ERR_CORRUPT (not a needlewatch store).
 */
enum nw_err nw_query_open(const char *url, const struct nw_query_options *opt,
                          struct nw_query **out, struct nw_error *err);

/*
 * Runs spec (borrowed) and calls fn for every row. Errors: NW_ERR_INVAL (a
 * column or filter the measurement does not have), NW_ERR_RETRY /
 * NW_ERR_TIMEOUT (store unreachable or too slow), NW_ERR_AUTH,
 * NW_ERR_NOT_FOUND (database), NW_ERR_PROTOCOL (an answer we cannot read),
 * NW_ERR_IO, or what fn returned. *err gets one line naming the store.
 */
enum nw_err nw_query_run(struct nw_query *q, const struct nw_query_spec *spec, nw_query_row_fn fn,
                         void *user, struct nw_error *err);

/* The store URL without credentials, for messages. Borrowed. */
const char *nw_query_name(const struct nw_query *q);

/* Rows delivered and queries run since open (for progress lines). */
uint64_t nw_query_rows_total(const struct nw_query *q);

void nw_query_destroy(struct nw_query **q);

#endif

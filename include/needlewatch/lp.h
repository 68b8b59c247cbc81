/*
 * lp.h - InfluxDB line protocol, built point by point into one fixed buffer.
 *
 * The store writer turns windows, events and alerts into line protocol and
 * POSTs the buffer to /write (InfluxDB 1.x, VictoriaMetrics) or
 * /api/v2/write. This module is the pure half: no I/O, no allocation after
 * nw_lp_new(), and every byte it emits is one the servers parse back into
 * exactly the value the caller gave, or the call fails.
 *
 *     struct nw_lp *lp = nw_lp_new(1 << 20);
 *     nw_lp_begin(lp, "needle_window", &err);
 *     nw_lp_tag(lp, "clinic", "Clínica São Paulo, Unit 2", &err);
 *     nw_lp_field_f64(lp, "rate_mean", 120.0, &err);
 *     if (nw_lp_end(lp, window_start_ms, NW_LP_MS, &err) == NW_ERR_FULL) {
 *         flush (POST nw_lp_data/nw_lp_len), nw_lp_reset(lp), build it again
 *     }
 * gives  needle_window,clinic=Clínica\ São\ Paulo\,\ Unit\ 2 rate_mean=120.0 1700000000000\n
 *
 * Errors are sticky within a point: after the first failure every call on
 * that point returns the same code and reason, and nw_lp_end() reports it,
 * so a caller may check only nw_lp_end(). A failed point is rolled back:
 * the buffer only ever holds complete, valid lines.
 *
 * Escaping, as InfluxDB 1.x documents it and its parser (models/points.go)
 * reads it back:
 *   measurement                      comma, space        ->  \,  "\ "
 *   tag key, tag value, field key    comma, equals, space ->  \,  \=  "\ "
 *   string field value               double quote, backslash -> \"  \\
 * integers get the suffix i (-9223372036854775808i), floats always carry a
 * '.' or an exponent (120.0, 1e+21) in the shortest form that strtod reads
 * back to the same double, booleans are true/false.
 *
 * What line protocol cannot carry is refused with NW_ERR_INVALID and a
 * reason naming the part and the byte, never written (checked against
 * InfluxDB 1.6.7 and VictoriaMetrics by tests/integration):
 *  - invalid UTF-8 anywhere (overlong forms, surrogates, > U+10FFFF);
 *  - control characters (0x00-0x1f, 0x7f) in names; in string values all
 *    but TAB. A newline ends the line: in a tag it injects a forged point
 *    and InfluxDB still answers 204; inside a quoted string InfluxDB 1.6.7
 *    keeps it but VictoriaMetrics splits the line there and stores the
 *    rest as a point of its own. A leading TAB in a measurement is eaten
 *    by InfluxDB as whitespace. The other control bytes InfluxDB would
 *    store inside a string, but ours are ids, lots and messages: there one
 *    is corruption, or a terminal escape waiting for whoever prints the
 *    report, and this is the last place that sees every string.
 *  - in a name, a backslash at the end or before , = space " or another
 *    backslash: line protocol has no escape for a backslash there. Before
 *    a delimiter the parsers take it as escaping the delimiter (InfluxDB
 *    400s, VictoriaMetrics silently drops the line); "\\" is two
 *    backslashes to InfluxDB and one to VictoriaMetrics. A backslash before
 *    any other byte is kept as it is by both.
 *  - a double quote in a field key: InfluxDB accepts it, VictoriaMetrics
 *    then loses the line's timestamp and stores the point at "now".
 *  - empty measurement, tag key or field key; a measurement starting with
 *    '#' (both servers skip the line as a comment and answer 204);
 *  - the reserved keys time, _field, _measurement as tag or field keys
 *    (InfluxDB 1.6.7 refuses a tag "time" and silently drops a field
 *    "time"; 2.x discards the point);
 *  - a repeated tag key (InfluxDB: 400) or field key (InfluxDB keeps the
 *    last, VictoriaMetrics stores both) within one point;
 *  - NaN and +-Inf; a point without fields; a timestamp outside InfluxDB's
 *    range, -9223372036854775806..9223372036854775806 ns.
 * NW_ERR_TOO_BIG: the escaped series key (measurement, tags, field key)
 * over InfluxDB's 65535 bytes, or a point larger than the whole buffer.
 *
 * An empty tag VALUE is not an error: the tag is left out. InfluxDB has no
 * empty tag values (it refuses "k=") and treats a missing tag exactly as an
 * empty one in queries (WHERE k = '' matches it), so leaving it out is the
 * only way to store it. The tag key is still checked.
 *
 * Tags are written in the order given. Pass them sorted by key (bytewise,
 * as memcmp/Go's bytes.Compare order them): InfluxDB sorts unsorted tags on
 * every write, which costs it CPU on each line.
 *
 * Not thread-safe: one struct nw_lp per writer thread.
 */
#ifndef NW_LP_H
#define NW_LP_H

#include <needlewatch/err.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* InfluxDB refuses a series key (escaped measurement+tags, 4, field key)
 * longer than this. */
#define NW_LP_MAX_SERIES_KEY 65535

/* Unit of the timestamps in a buffer; one /write request has one. */
enum nw_lp_precision {
    NW_LP_NS = 0, /* nanoseconds: precision=ns */
    NW_LP_MS,     /* milliseconds: precision=ms */
};

/* The parts of a line, each with its own escaping and rules. */
enum nw_lp_part {
    NW_LP_MEASUREMENT,
    NW_LP_TAG_KEY,
    NW_LP_TAG_VALUE,
    NW_LP_FIELD_KEY,
    NW_LP_STRING, /* the inside of a string field value, without its quotes */
};

struct nw_lp;

/*
 * A batch buffer of `capacity` bytes, allocated once; nothing is allocated
 * afterwards. Caller-owned: free with nw_lp_destroy(). NULL when capacity
 * is 0 or memory is short.
 */
struct nw_lp *nw_lp_new(size_t capacity);

/* Frees the buffer and sets *p to NULL. NULL-safe (p and *p). */
void nw_lp_destroy(struct nw_lp **p);

/*
 * Starts a point. measurement is borrowed for the call only (copied,
 * escaped, into the buffer). NW_ERR_INVAL if a point is already in
 * progress (that point is dropped).
 */
enum nw_err nw_lp_begin(struct nw_lp *lp, const char *measurement, struct nw_error *out_err);

/*
 * Adds a tag; all tags come before the first field. key and value are
 * borrowed for the call only. An empty value leaves the tag out.
 */
enum nw_err nw_lp_tag(struct nw_lp *lp, const char *key, const char *value,
                      struct nw_error *out_err);

/* Adds a field; key (and for _str the value) are borrowed for the call. */
enum nw_err nw_lp_field_i64(struct nw_lp *lp, const char *key, int64_t value,
                            struct nw_error *out_err);
enum nw_err nw_lp_field_f64(struct nw_lp *lp, const char *key, double value,
                            struct nw_error *out_err);
enum nw_err nw_lp_field_bool(struct nw_lp *lp, const char *key, bool value,
                             struct nw_error *out_err);
enum nw_err nw_lp_field_str(struct nw_lp *lp, const char *key, const char *value,
                            struct nw_error *out_err);

/*
 * Completes the point with its timestamp and makes the line part of the
 * batch. All lines of a buffer share one precision (the /write request
 * names one): a different one is NW_ERR_INVAL until nw_lp_reset().
 * NW_ERR_FULL: the point does not fit behind the earlier lines, which are
 * intact; send them, nw_lp_reset(), and build the point again. (A point
 * that would not fit even into the empty buffer is NW_ERR_TOO_BIG instead,
 * so that loop always ends.) Any failure drops the point.
 */
enum nw_err nw_lp_end(struct nw_lp *lp, int64_t ts, enum nw_lp_precision prec,
                      struct nw_error *out_err);

/* Drops the point being built, if any; earlier lines stay. NULL-safe. */
void nw_lp_abort(struct nw_lp *lp);

/*
 * The complete lines, each ending in '\n', nw_lp_len() bytes, NOT
 * NUL-terminated. Borrowed: valid until the next call that changes lp.
 */
const char *nw_lp_data(const struct nw_lp *lp);
size_t nw_lp_len(const struct nw_lp *lp);

/* Number of complete lines in the buffer. */
size_t nw_lp_count(const struct nw_lp *lp);

/* The buffer's size as given to nw_lp_new(). */
size_t nw_lp_capacity(const struct nw_lp *lp);

/* Precision of the lines in the buffer (NW_LP_NS while it is empty). */
enum nw_lp_precision nw_lp_precision(const struct nw_lp *lp);

/* "ns" or "ms", the value of the precision= query parameter. Static. */
const char *nw_lp_precision_name(enum nw_lp_precision prec);

/* Empties the buffer (after a successful send) and drops any point. */
void nw_lp_reset(struct nw_lp *lp);

/*
 * Checks and escapes one part on its own, for callers that assemble lines
 * elsewhere. It applies the same rules as the builder (all but those that
 * need the whole point: duplicates, series-key length) and refuses exactly
 * what the builder refuses, because an escaper that cannot say no is how a
 * newline gets into a tag. src is borrowed. On NW_OK dst holds the escaped
 * text and a NUL; *out_len (optional) is its length without the NUL. When
 * cap is too small: NW_ERR_TOO_BIG, *out_len is the length needed, dst is
 * unspecified. An empty NW_LP_TAG_VALUE is NW_ERR_INVALID here (there is no
 * tag to leave out).
 */
enum nw_err nw_lp_escape(enum nw_lp_part part, const char *src, char *dst, size_t cap,
                         size_t *out_len, struct nw_error *out_err);

#endif

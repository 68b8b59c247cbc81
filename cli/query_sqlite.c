/*
 * query_sqlite.c - query.h on the embedded store: plain SELECTs over the
 * tables store_sqlite.c created (one per measurement, time in ms).
 *
 * The file is opened read-write without create and switched to
 * query_only: a missing file is an error instead of a new empty store, the
 * CLI can never write, and WAL reading works even when the collector is
 * not running (a read-only open cannot create the -shm file).
 */
#include "query_impl.h"

#include <store_impl.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define SQL_MAX 4096

struct qs {
    sqlite3 *db;
    char name[NW_STORE_URL_MAX];
};

static enum nw_err fail(struct qs *s, int rc, struct nw_error *err, const char *what)
{
    return nw_error_set(err, nw_store_sqlite_err(rc), "%s: %s: %s", s->name, what,
                        s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
}

/* Appends printf output to b (size SQL_MAX); false when it does not fit.
 * A macro, so the format stays a literal the compiler checks. */
static bool added(size_t *at, int n)
{
    if (n < 0 || (size_t)n >= SQL_MAX - *at) {
        return false;
    }
    *at += (size_t)n;
    return true;
}
#define add(b, at, fmt, a) added(at, snprintf((b) + *(at), SQL_MAX - *(at), fmt, a))

/*
 * The rows query, run once per device (?3 = device): every table's primary
 * key or an index starts with (device, time), so each run is one range
 * seek that already yields rows in time order. A plain "time in range
 * ORDER BY device, time" would walk the time index, look every row up in
 * the table and sort them all (measured 3x slower on a week of a fleet).
 * latest_per_device: newest first, LIMIT 1.
 */
static bool build(const struct nw_query_spec *spec, char *sql)
{
    size_t at = 0;
    bool ok = add(sql, &at, "%s", "SELECT device, time");
    for (size_t k = 0; ok && k < spec->ncols; k++) {
        ok = add(sql, &at, ", \"%s\"", spec->cols[k]);
    }
    ok = ok && add(sql, &at, " FROM \"%s\" WHERE device = ?3 AND time >= ?1 AND time < ?2",
                   spec->measurement);
    for (size_t k = 0; ok && k < spec->nfilters; k++) {
        char param[48];
        snprintf(param, sizeof(param), " = ?%zu", k + 4);
        ok = add(sql, &at, " AND \"%s\"", spec->filters[k].col) && add(sql, &at, "%s", param);
    }
    ok = ok && add(sql, &at, "%s",
                   spec->latest_per_device ? " ORDER BY time DESC LIMIT 1" : " ORDER BY time");
    return ok;
}

/* The devices of a table, one index seek each (a loose index scan). */
static bool build_devices(const struct nw_query_spec *spec, char *sql)
{
    size_t at = 0;
    return add(sql, &at, "WITH RECURSIVE d(device) AS (SELECT min(device) FROM \"%s\"",
               spec->measurement) &&
           add(sql, &at, " UNION ALL SELECT (SELECT min(device) FROM \"%s\"", spec->measurement) &&
           add(sql, &at, "%s",
               " WHERE device > d.device) FROM d WHERE d.device IS NOT NULL)"
               " SELECT device FROM d WHERE device IS NOT NULL");
}

static void value_of(sqlite3_stmt *st, int col, int type, struct nw_qvalue *v)
{
    int t = sqlite3_column_type(st, col);
    memset(v, 0, sizeof(*v));
    v->s = "";
    if (type == NW_COL_TAG) {
        v->type = NW_QV_TEXT;
        const unsigned char *s = sqlite3_column_text(st, col);
        v->s = s ? (const char *)s : "";
        return;
    }
    if (t == SQLITE_NULL) {
        v->type = NW_QV_NULL;
        return;
    }
    switch (type) {
    case NW_COL_STR: {
        const unsigned char *s = sqlite3_column_text(st, col);
        if (s && s[0]) {
            v->type = NW_QV_TEXT;
            v->s = (const char *)s;
        }
        break;
    }
    case NW_COL_INT:
        v->type = NW_QV_INT;
        v->i = sqlite3_column_int64(st, col);
        v->f = (double)v->i;
        break;
    case NW_COL_BOOL:
        v->type = NW_QV_BOOL;
        v->i = sqlite3_column_int64(st, col) != 0;
        v->f = (double)v->i;
        break;
    default: /* NW_COL_F64 */
        v->type = NW_QV_REAL;
        v->f = sqlite3_column_double(st, col);
        break;
    }
}

static enum nw_err prepare(struct qs *s, const char *sql, sqlite3_stmt **st,
                           const struct nw_query_spec *spec, struct nw_error *err)
{
    int rc = sqlite3_prepare_v2(s->db, sql, -1, st, NULL);
    if (rc != SQLITE_OK) {
        if (strstr(sqlite3_errmsg(s->db), "no such")) {
            return nw_error_set(err, NW_ERR_CORRUPT,
                                "%s: %s: is this a needlewatch store of another version?", s->name,
                                sqlite3_errmsg(s->db));
        }
        return fail(s, rc, err, "query");
    }
    sqlite3_bind_int64(*st, 1, spec->from_ms);
    sqlite3_bind_int64(*st, 2, spec->to_ms);
    for (size_t k = 0; k < spec->nfilters; k++) {
        sqlite3_bind_text(*st, (int)k + 4, spec->filters[k].value, -1, SQLITE_STATIC);
    }
    return NW_OK;
}

/* Steps st to the end, one callback per row. */
static enum nw_err rows(struct qs *s, sqlite3_stmt *st, const struct nw_query_spec *spec,
                        const int *types, nw_query_row_fn fn, void *user, struct nw_error *err)
{
    struct nw_qvalue vals[NW_QUERY_MAX_COLS];
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        for (size_t k = 0; k < spec->ncols; k++) {
            value_of(st, (int)k + 2, types[k], &vals[k]);
        }
        const unsigned char *dev = sqlite3_column_text(st, 0);
        struct nw_qrow row = {dev ? (const char *)dev : "", sqlite3_column_int64(st, 1), vals,
                              spec->ncols};
        enum nw_err out = fn(user, &row, err);
        if (out != NW_OK) {
            return out;
        }
    }
    return rc == SQLITE_DONE ? NW_OK : fail(s, rc, err, "reading rows");
}

/* The value of an equality filter on the device, or NULL. */
static const char *device_filter(const struct nw_query_spec *spec)
{
    for (size_t k = 0; k < spec->nfilters; k++) {
        if (!strcmp(spec->filters[k].col, "device")) {
            return spec->filters[k].value;
        }
    }
    return NULL;
}

static enum nw_err run(void *impl, const struct nw_query_spec *spec, const int *types,
                       nw_query_row_fn fn, void *user, struct nw_error *err)
{
    struct qs *s = impl;
    char sql[SQL_MAX], dsql[SQL_MAX];
    if (!build(spec, sql) || !build_devices(spec, dsql)) {
        return nw_error_set(err, NW_ERR_TOO_BIG, "query on %s too long", spec->measurement);
    }
    sqlite3_stmt *st = NULL, *devs = NULL;
    enum nw_err out = prepare(s, sql, &st, spec, err);
    const char *one = device_filter(spec);
    if (out == NW_OK && one) {
        sqlite3_bind_text(st, 3, one, -1, SQLITE_STATIC);
        out = rows(s, st, spec, types, fn, user, err);
    } else if (out == NW_OK) {
        int rc = sqlite3_prepare_v2(s->db, dsql, -1, &devs, NULL);
        if (rc != SQLITE_OK) {
            out = fail(s, rc, err, "query");
        }
        while (out == NW_OK && (rc = sqlite3_step(devs)) == SQLITE_ROW) {
            sqlite3_reset(st);
            sqlite3_bind_text(st, 3, (const char *)sqlite3_column_text(devs, 0), -1,
                              SQLITE_TRANSIENT);
            out = rows(s, st, spec, types, fn, user, err);
        }
        if (out == NW_OK && rc != SQLITE_DONE) {
            out = fail(s, rc, err, "reading devices");
        }
    }
    sqlite3_finalize(devs);
    sqlite3_finalize(st);
    return out;
}

static void close_qs(void *impl)
{
    struct qs *s = impl;
    if (s) {
        sqlite3_close(s->db);
        free(s);
    }
}

static const struct nw_query_backend ops = {run, close_qs};

enum nw_err nw_query_sqlite_open(const struct nw_store_url *url, const char *name,
                                 const struct nw_query_options *opt,
                                 const struct nw_query_backend **out_ops, void **out_impl,
                                 struct nw_error *err)
{
    (void)opt;
    struct stat sb;
    if (stat(url->path, &sb) != 0) {
        return nw_error_set(err, NW_ERR_NOT_FOUND,
                            "%s: no such database file (give the collector's store with --store "
                            "or NEEDLEWATCH_STORE)",
                            name);
    }
    struct qs *s = calloc(1, sizeof(*s));
    if (!s) {
        return nw_error_set(err, NW_ERR_NOMEM, "out of memory");
    }
    snprintf(s->name, sizeof(s->name), "%s", name);
    int rc = sqlite3_open_v2(url->path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        /* A file we may not write (another user's store): read-only then. */
        sqlite3_close(s->db);
        s->db = NULL;
        rc = sqlite3_open_v2(url->path, &s->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    }
    enum nw_err e = NW_OK;
    if (rc != SQLITE_OK) {
        e = fail(s, rc, err, "open");
    } else {
        sqlite3_busy_timeout(s->db, 5000);
        sqlite3_stmt *st = NULL;
        rc = sqlite3_exec(s->db, "PRAGMA query_only = 1", NULL, NULL, NULL);
        if (rc == SQLITE_OK) {
            rc = sqlite3_prepare_v2(s->db, "PRAGMA application_id", -1, &st, NULL);
        }
        if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
            if (sqlite3_column_int64(st, 0) != NW_STORE_SQLITE_APPLICATION_ID) {
                e = nw_error_set(err, NW_ERR_CORRUPT, "%s: not a needlewatch store", name);
            }
        } else {
            e = fail(s, rc ? rc : sqlite3_errcode(s->db), err, "open");
        }
        sqlite3_finalize(st);
    }
    if (e != NW_OK) {
        close_qs(s);
        return e;
    }
    *out_ops = &ops;
    *out_impl = s;
    return NW_OK;
}

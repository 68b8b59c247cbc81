/*
 * query.c - the store-independent half of query.h: URL dispatch, checking a
 * query against the store schema (collector/store_schema.c, the table both
 * backends were written from), row counting.
 */
#include "query_impl.h"

#include <store_impl.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct nw_query {
    const struct nw_query_backend *ops;
    void *impl;
    char name[NW_STORE_URL_MAX];
    uint64_t rows;
};

static const struct nw_schema *schema_named(const char *measurement)
{
    for (int k = 0; k < NW_POINT__COUNT; k++) {
        const struct nw_schema *sc = nw_schema_of((enum nw_point_kind)k);
        if (sc && strcmp(sc->measurement, measurement) == 0) {
            return sc;
        }
    }
    return NULL;
}

static int col_type(const struct nw_schema *sc, const char *col)
{
    for (size_t i = 0; i < sc->ncols; i++) {
        if (strcmp(sc->cols[i].name, col) == 0) {
            return (int)sc->cols[i].type;
        }
    }
    return -1;
}

enum nw_err nw_query_open(const char *url, const struct nw_query_options *opt,
                          struct nw_query **out, struct nw_error *err)
{
    *out = NULL;
    struct nw_query_options o = {5000, 600000, 10000, 64u << 20};
    if (opt) {
        o.connect_timeout_ms =
            opt->connect_timeout_ms ? opt->connect_timeout_ms : o.connect_timeout_ms;
        o.timeout_ms = opt->timeout_ms ? opt->timeout_ms : o.timeout_ms;
        o.chunk_rows = opt->chunk_rows ? opt->chunk_rows : o.chunk_rows;
        o.max_chunk_bytes = opt->max_chunk_bytes ? opt->max_chunk_bytes : o.max_chunk_bytes;
    }
    /* NEEDLEWATCH_QUERY_CHUNK: InfluxDB rows per chunk (tuning, tests) */
    const char *env = getenv("NEEDLEWATCH_QUERY_CHUNK");
    if (env && env[0]) {
        char *end;
        unsigned long v = strtoul(env, &end, 10);
        if (*end || v < 1 || v > 1000000) {
            return nw_error_set(err, NW_ERR_CONFIG,
                                "NEEDLEWATCH_QUERY_CHUNK=%s: expected 1..1000000", env);
        }
        o.chunk_rows = v;
    }
    struct nw_store_url *u = calloc(1, sizeof(*u));
    struct nw_query *q = calloc(1, sizeof(*q));
    if (!u || !q) {
        free(u);
        free(q);
        return nw_error_set(err, NW_ERR_NOMEM, "out of memory");
    }
    enum nw_err rc = nw_store_url_parse(url, u, err);
    if (rc == NW_OK) {
        snprintf(q->name, sizeof(q->name), "%s", u->name);
        switch (u->scheme) {
        case NW_STORE_SQLITE:
            rc = nw_query_sqlite_open(u, q->name, &o, &q->ops, &q->impl, err);
            break;
        case NW_STORE_INFLUX1:
            rc = nw_query_influx_open(u, q->name, &o, &q->ops, &q->impl, err);
            break;
        default:
            rc = nw_error_set(err, NW_ERR_CONFIG,
                              "%s: reports need InfluxQL (influx://); the v2 API (influx2://) "
                              "has no /query endpoint here",
                              u->name);
            break;
        }
    }
    nw_store_url_wipe(u);
    free(u);
    if (rc != NW_OK) {
        free(q);
        return rc;
    }
    *out = q;
    return NW_OK;
}

struct counting {
    struct nw_query *q;
    nw_query_row_fn fn;
    void *user;
};

static enum nw_err count_row(void *user, const struct nw_qrow *row, struct nw_error *err)
{
    struct counting *c = user;
    c->q->rows++;
    return c->fn(c->user, row, err);
}

enum nw_err nw_query_run(struct nw_query *q, const struct nw_query_spec *spec, nw_query_row_fn fn,
                         void *user, struct nw_error *err)
{
    const struct nw_schema *sc = schema_named(spec->measurement);
    if (!sc) {
        return nw_error_set(err, NW_ERR_INVAL, "no measurement \"%s\" in the store schema",
                            spec->measurement);
    }
    if (spec->ncols == 0 || spec->ncols > NW_QUERY_MAX_COLS ||
        spec->nfilters > NW_QUERY_MAX_FILTERS || spec->from_ms > spec->to_ms) {
        return nw_error_set(err, NW_ERR_INVAL, "bad query on %s", spec->measurement);
    }
    int types[NW_QUERY_MAX_COLS];
    bool any_field = false;
    for (size_t k = 0; k < spec->ncols; k++) {
        types[k] = col_type(sc, spec->cols[k]);
        if (types[k] < 0 || strcmp(spec->cols[k], "device") == 0) {
            return nw_error_set(err, NW_ERR_INVAL, "%s has no column \"%s\"", spec->measurement,
                                spec->cols[k]);
        }
        any_field |= types[k] != NW_COL_TAG;
    }
    if (!any_field) { /* InfluxQL needs at least one field */
        return nw_error_set(err, NW_ERR_INVAL, "query on %s selects no field", spec->measurement);
    }
    for (size_t k = 0; k < spec->nfilters; k++) {
        int t = col_type(sc, spec->filters[k].col);
        if (t != NW_COL_TAG && t != NW_COL_STR) {
            return nw_error_set(err, NW_ERR_INVAL, "%s: cannot filter on \"%s\"", spec->measurement,
                                spec->filters[k].col);
        }
    }
    struct counting c = {q, fn, user};
    return q->ops->run(q->impl, spec, types, count_row, &c, err);
}

const char *nw_query_name(const struct nw_query *q)
{
    return q->name;
}

uint64_t nw_query_rows_total(const struct nw_query *q)
{
    return q->rows;
}

void nw_query_destroy(struct nw_query **p)
{
    if (p && *p) {
        (*p)->ops->close((*p)->impl);
        free(*p);
        *p = NULL;
    }
}

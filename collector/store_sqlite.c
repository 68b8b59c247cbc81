/*
 * store_sqlite.c - the embedded default store: one SQLite file, one table
 * per measurement, one transaction per nw_store_write() call.
 *
 * Durability (DESIGN.md §4: the collector acks only after "a committed
 * SQLite transaction", and an ack lets the agent delete the data):
 *  - journal_mode=WAL, so reports (the CLI, another connection) read while
 *    the collector writes, and a commit is one sequential append;
 *  - synchronous=FULL. With WAL, NORMAL fsyncs only at checkpoints: a
 *    committed transaction survives a crash of the process (kill -9) but
 *    the last ones can roll back after a power loss or kernel crash - and
 *    those windows were already acknowledged and deleted on the device:
 *    lost. FULL fsyncs the WAL at every commit, so what was acknowledged
 *    survives power loss too. It costs one fsync per write call, i.e. per
 *    batch, not per window (see the rate printed by the unit test).
 *
 * Speed (bench/store_ingest.c measures it; figures in bench/README.md).
 * What a write costs is mostly pages: every B-tree leaf a transaction
 * touches is read into the page cache and written whole to the WAL at the
 * commit. So:
 *  - the points of a write are inserted in identity order (kind, device,
 *    time), not in arrival order: a live fleet's batch interleaves every
 *    device, and sorted, each leaf is visited once instead of once per
 *    device per pass (same rows, same transaction: nothing else changes;
 *    equal identities keep their order, so the last one still wins);
 *  - the page cache (cache_kib) stays at SQLite's 2 MiB: once sorted, 16 MiB
 *    saved no measurable CPU per point, and it would be a quarter of the
 *    collector's memory budget (DESIGN §9: 64 MiB at 10 000 devices);
 *  - the WAL is checkpointed every WAL_CHECKPOINT_PAGES (32 MiB) instead of
 *    every 1000 pages (4 MiB): a leaf rewritten by many commits is copied
 *    into the database once per checkpoint;
 *  - needle_window has no (device, epoch, seq) index since schema version 2
 *    (one B-tree insert per window less; nothing queried it);
 *  - new files keep needle_window in arrival order (append_layout()).
 * synchronous stays FULL: measured, NORMAL saved no CPU per point.
 *
 * Idempotence: each table's primary key is the point's identity
 * (collector/point.h) and rows are written with INSERT OR REPLACE, so a
 * re-sent point replaces itself: duplicates are impossible by construction.
 *
 * Schema versions live in PRAGMA user_version (and PRAGMA application_id
 * marks the file as ours). Version 1 is created from store_schema.c's
 * tables. A file with a newer version than this build knows is refused with
 * a clear message instead of being written with the wrong columns.
 */
#include "store_impl.h"

#include <needlewatch/clock.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SQL_MAX 4096
#define DEFAULT_CACHE_KIB 2048
#define WAL_CHECKPOINT_PAGES 8192
#define WAL_SIZE_LIMIT (64 * 1024 * 1024) /* what a checkpoint leaves on disk */

/* One point of a write, for sorting into identity order. */
struct sq_ord {
    const struct nw_point *p;
    int64_t time_ms;
    uint32_t at; /* position in the caller's array: equal identities keep it */
};

struct sq {
    sqlite3 *db;
    sqlite3_stmt *insert[NW_POINT__COUNT];
    char path[NW_STORE_URL_MAX];
    struct sq_ord *ord; /* grows to the largest write seen, never per point */
    size_t ord_cap;
};

enum nw_err nw_store_sqlite_err(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return NW_ERR_RETRY;
    case SQLITE_NOMEM:
        return NW_ERR_NOMEM;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return NW_ERR_CORRUPT;
    case SQLITE_CANTOPEN:
        return NW_ERR_NOT_FOUND;
    default: /* IOERR, FULL (disk full), READONLY, PERM, ... */
        return NW_ERR_IO;
    }
}

void nw_store_sqlite_process_init(void)
{
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); /* SQLITE_MISUSE once initialized: fine */
}

static enum nw_err sq_fail(struct sq *q, int rc, struct nw_error *err, const char *what)
{
    return nw_error_set(err, nw_store_sqlite_err(rc), "%s: %s: %s", q->path, what,
                        q->db ? sqlite3_errmsg(q->db) : sqlite3_errstr(rc));
}

static enum nw_err exec(struct sq *q, const char *sql, struct nw_error *err)
{
    int rc = sqlite3_exec(q->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? NW_OK : sq_fail(q, rc, err, sql);
}

static enum nw_err pragma_int(struct sq *q, const char *sql, int64_t *out, struct nw_error *err)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(q->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        *out = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
        rc = rc == SQLITE_ROW ? SQLITE_OK : rc;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_OK ? NW_OK : sq_fail(q, rc, err, sql);
}

/* --- schema ----------------------------------------------------------- */

static const char *sql_type(enum nw_col_type t)
{
    switch (t) {
    case NW_COL_TAG:
        return "TEXT NOT NULL";
    case NW_COL_INT:
    case NW_COL_BOOL:
        return "INTEGER";
    case NW_COL_F64:
        return "REAL";
    default:
        return "TEXT";
    }
}

/*
 * Whether a table is stored in arrival order (a rowid table; its primary key
 * is a separate index) rather than clustered on the key (WITHOUT ROWID).
 * needle_window takes a row per device per second: clustered on (device,
 * time), every write dirties and splits a leaf of every device in the
 * batch, rows of ~190 bytes and all. In arrival order the rows append to
 * the table's last pages, and only the key's 25-byte entries land in each
 * device's leaf: 11-20 % less CPU per window at a live fleet's batches,
 * for reports about 7 % slower (one rowid lookup per row read by device;
 * bench/README.md, session 5). The rarely written tables stay
 * clustered. A file keeps the layout it was created with: both are read
 * and written by the same statements.
 */
static bool append_layout(const struct nw_schema *sc)
{
    return sc == nw_schema_of(NW_POINT_WINDOW);
}

/* CREATE TABLE: tags, time, fields; primary key = identity columns + time. */
static void table_ddl(const struct nw_schema *sc, char *b, size_t cap)
{
    size_t at = (size_t)snprintf(b, cap, "CREATE TABLE %s (", sc->measurement);
    bool time_done = false;
    for (size_t i = 0; i < sc->ncols && at < cap; i++) {
        if (!time_done && sc->cols[i].type != NW_COL_TAG) {
            at += (size_t)snprintf(b + at, cap - at, "time INTEGER NOT NULL, ");
            time_done = true;
        }
        at += (size_t)snprintf(b + at, cap - at, "%s %s, ", sc->cols[i].name,
                               sql_type(sc->cols[i].type));
    }
    at += (size_t)snprintf(b + at, cap - at, "PRIMARY KEY (");
    for (size_t i = 0; i < sc->ncols && at < cap; i++) {
        if (sc->cols[i].key) {
            at += (size_t)snprintf(b + at, cap - at, "%s, ", sc->cols[i].name);
        }
    }
    snprintf(b + at, cap - at, "time))%s", append_layout(sc) ? "" : " WITHOUT ROWID");
}

static size_t key_count(const struct nw_schema *sc)
{
    size_t k = 0;
    for (size_t i = 0; i < sc->ncols; i++) {
        k += sc->cols[i].key;
    }
    return k;
}

/* Time range scans for reports, per-device scans where the key does not
 * start with (device, time), and (device, epoch, seq) for completeness. */
static enum nw_err create_indexes(struct sq *q, const struct nw_schema *sc, struct nw_error *err)
{
    char sql[512];
    const char *m = sc->measurement;
    snprintf(sql, sizeof(sql), "CREATE INDEX %s_time ON %s (time)", m, m);
    enum nw_err rc = exec(q, sql, err);
    if (rc == NW_OK && key_count(sc) > 1) {
        snprintf(sql, sizeof(sql), "CREATE INDEX %s_device_time ON %s (device, time)", m, m);
        rc = exec(q, sql, err);
    }
    if (rc == NW_OK &&
        (sc == nw_schema_of(NW_POINT_WINDOW) || sc == nw_schema_of(NW_POINT_EVENT))) {
        snprintf(sql, sizeof(sql), "CREATE INDEX %s_seq ON %s (device, epoch, seq)", m, m);
        rc = exec(q, sql, err);
    }
    return rc;
}

static enum nw_err migrate_to_1(struct sq *q, struct nw_error *err)
{
    char sql[SQL_MAX];
    enum nw_err rc = NW_OK;
    for (int k = 0; k < NW_POINT__COUNT && rc == NW_OK; k++) {
        table_ddl(nw_schema_of((enum nw_point_kind)k), sql, sizeof(sql));
        rc = exec(q, sql, err);
        if (rc == NW_OK) {
            rc = create_indexes(q, nw_schema_of((enum nw_point_kind)k), err);
        }
    }
    return rc;
}

/* Version 2: needle_window loses its (device, epoch, seq) index, the
 * costliest of its three B-trees to keep (one random-order insert per
 * window) and used by no query; per-device completeness reads the primary
 * key (device, time). device_event keeps its seq index (few rows). */
static enum nw_err migrate_to_2(struct sq *q, struct nw_error *err)
{
    return exec(q, "DROP INDEX IF EXISTS needle_window_seq", err);
}

/* Steps from version i to i+1; index 0 creates version 1. */
static enum nw_err (*const migrations[NW_SCHEMA_VERSION])(struct sq *, struct nw_error *) = {
    migrate_to_1,
    migrate_to_2,
};

static enum nw_err check_version(struct sq *q, int64_t version, int64_t app_id, int64_t tables,
                                 struct nw_error *err)
{
    if (app_id != 0 && app_id != NW_STORE_SQLITE_APPLICATION_ID) {
        return nw_error_set(err, NW_ERR_CONFIG,
                            "%s: not a needlewatch database (application_id %lld)", q->path,
                            (long long)app_id);
    }
    if (version == 0 && tables > 0) {
        return nw_error_set(err, NW_ERR_CONFIG,
                            "%s: not a needlewatch database (has tables but no schema version)",
                            q->path);
    }
    if (version > NW_SCHEMA_VERSION) {
        return nw_error_set(err, NW_ERR_CONFIG,
                            "%s: schema version %lld is newer than this needlewatch knows (%d): "
                            "upgrade needlewatch",
                            q->path, (long long)version, NW_SCHEMA_VERSION);
    }
    return NW_OK;
}

/* Reads the version inside the write transaction, so two processes that
 * open a new file at once do not both create it. */
static enum nw_err migrate(struct sq *q, struct nw_error *err)
{
    int64_t version = 0, app_id = 0, tables = 0;
    enum nw_err rc = exec(q, "BEGIN IMMEDIATE", err);
    if (rc == NW_OK) {
        rc = pragma_int(q, "PRAGMA user_version", &version, err);
    }
    if (rc == NW_OK) {
        rc = pragma_int(q, "PRAGMA application_id", &app_id, err);
    }
    if (rc == NW_OK) {
        rc = pragma_int(q, "SELECT count(*) FROM sqlite_master", &tables, err);
    }
    if (rc == NW_OK) {
        rc = check_version(q, version, app_id, tables, err);
    }
    for (int64_t v = version; rc == NW_OK && v < NW_SCHEMA_VERSION; v++) {
        rc = migrations[v](q, err);
    }
    if (rc == NW_OK && version < NW_SCHEMA_VERSION) {
        char sql[128];
        snprintf(sql, sizeof(sql), "PRAGMA application_id = %d; PRAGMA user_version = %d",
                 NW_STORE_SQLITE_APPLICATION_ID, NW_SCHEMA_VERSION);
        rc = exec(q, sql, err);
    }
    if (rc == NW_OK) {
        return exec(q, "COMMIT", err);
    }
    sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

/* INSERT OR REPLACE INTO m (cols..., time) VALUES (?, ...). */
static enum nw_err prepare_insert(struct sq *q, enum nw_point_kind k, struct nw_error *err)
{
    const struct nw_schema *sc = nw_schema_of(k);
    char sql[SQL_MAX], vals[256];
    size_t at = (size_t)snprintf(sql, sizeof(sql), "INSERT OR REPLACE INTO %s (", sc->measurement);
    size_t va = 0;
    for (size_t i = 0; i < sc->ncols; i++) {
        at += (size_t)snprintf(sql + at, sizeof(sql) - at, "%s, ", sc->cols[i].name);
        va += (size_t)snprintf(vals + va, sizeof(vals) - va, "?, ");
    }
    snprintf(sql + at, sizeof(sql) - at, "time) VALUES (%s?)", vals);
    int rc = sqlite3_prepare_v3(q->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &q->insert[k], NULL);
    return rc == SQLITE_OK ? NW_OK : sq_fail(q, rc, err, "prepare INSERT");
}

/* --- open ------------------------------------------------------------- */

static enum nw_err configure(struct sq *q, int64_t busy_ms, uint64_t cache_kib,
                             struct nw_error *err)
{
    if (sqlite3_db_readonly(q->db, "main") == 1) {
        return nw_error_set(err, NW_ERR_IO, "%s: the database file is read-only", q->path);
    }
    sqlite3_busy_timeout(q->db, busy_ms > 0x7fffffff ? 0x7fffffff : (int)busy_ms);
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(q->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *mode = (const char *)sqlite3_column_text(st, 0);
        rc = mode && strcmp(mode, "wal") == 0 ? SQLITE_OK : SQLITE_CANTOPEN;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_OK) {
        return rc == SQLITE_CANTOPEN
                   ? nw_error_set(err, NW_ERR_IO, "%s: cannot switch to WAL mode", q->path)
                   : sq_fail(q, rc, err, "open");
    }
    char sql[160];
    snprintf(sql, sizeof(sql),
             "PRAGMA synchronous = FULL; PRAGMA cache_size = -%llu; "
             "PRAGMA wal_autocheckpoint = %d; PRAGMA journal_size_limit = %d",
             (unsigned long long)(cache_kib ? cache_kib : DEFAULT_CACHE_KIB), WAL_CHECKPOINT_PAGES,
             WAL_SIZE_LIMIT);
    return exec(q, sql, err);
}

static void sq_close(struct nw_store *s);
static void sq_write(struct nw_store *s, const struct nw_point *const *pts, size_t n,
                     struct nw_store_outcome *out);

static const struct nw_store_ops sqlite_ops = {sq_write, sq_close};

enum nw_err nw_store_sqlite_open(struct nw_store *s, struct nw_error *err)
{
    struct sq *q = calloc(1, sizeof(*q));
    if (!q) {
        return nw_error_set(err, NW_ERR_NOMEM, "sqlite: out of memory");
    }
    s->impl = q;
    s->ops = &sqlite_ops;
    snprintf(q->path, sizeof(q->path), "%s", s->url.path);
    int rc = sqlite3_open_v2(
        q->path, &q->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        return sq_fail(q, rc, err, "open");
    }
    sqlite3_extended_result_codes(q->db, 1);
    enum nw_err e = configure(q, s->opt.sqlite_busy_timeout_ms, s->opt.sqlite_cache_kib, err);
    if (e == NW_OK) {
        e = migrate(q, err);
    }
    for (int k = 0; k < NW_POINT__COUNT && e == NW_OK; k++) {
        e = prepare_insert(q, (enum nw_point_kind)k, err);
    }
    return e;
}

static void sq_close(struct nw_store *s)
{
    struct sq *q = s->impl;
    if (!q) {
        return;
    }
    for (int k = 0; k < NW_POINT__COUNT; k++) {
        sqlite3_finalize(q->insert[k]);
    }
    sqlite3_close_v2(q->db);
    free(q->ord);
    free(q);
    s->impl = NULL;
}

/* --- write ------------------------------------------------------------ */

static int bind_point(sqlite3_stmt *st, const struct nw_schema *sc, const struct nw_col_value *v,
                      int64_t time_ms)
{
    int rc = SQLITE_OK;
    for (size_t i = 0; i < sc->ncols && rc == SQLITE_OK; i++) {
        int at = (int)i + 1;
        if (sc->cols[i].type == NW_COL_TAG) {
            rc = sqlite3_bind_text(st, at, v[i].s ? v[i].s : "", -1, SQLITE_STATIC);
        } else if (!v[i].present) {
            rc = sqlite3_bind_null(st, at);
        } else if (sc->cols[i].type == NW_COL_INT) {
            rc = sqlite3_bind_int64(st, at, v[i].i);
        } else if (sc->cols[i].type == NW_COL_F64) {
            rc = sqlite3_bind_double(st, at, v[i].f);
        } else if (sc->cols[i].type == NW_COL_BOOL) {
            rc = sqlite3_bind_int(st, at, v[i].b);
        } else {
            rc = sqlite3_bind_text(st, at, v[i].s, -1, SQLITE_STATIC);
        }
    }
    return rc == SQLITE_OK ? sqlite3_bind_int64(st, (int)sc->ncols + 1, time_ms) : rc;
}

/* A failure that concerns this point only (the statement is undone, the
 * transaction goes on) as opposed to the database. */
static bool point_level(int rc)
{
    int p = rc & 0xff;
    return p == SQLITE_CONSTRAINT || p == SQLITE_TOOBIG || p == SQLITE_MISMATCH ||
           p == SQLITE_RANGE;
}

/* Inserts one point: 1 stored, 0 dead-lettered, -1 database failure (*err). */
static int insert_one(struct nw_store *s, const struct nw_point *p, struct nw_error *err)
{
    struct sq *q = s->impl;
    struct nw_col_value v[NW_SCHEMA_MAX_COLS];
    struct nw_error why = {0};
    if (nw_schema_values(p, v, &why) != NW_OK) {
        return nw_store_dead_letter(s, p, why.msg, NULL, 0, err) == NW_OK ? 0 : -1;
    }
    sqlite3_stmt *st = q->insert[p->kind];
    int rc = bind_point(st, nw_schema_of(p->kind), v, nw_point_time_ms(p));
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
    }
    sqlite3_reset(st); /* every parameter is bound again by the next point */
    if (rc == SQLITE_DONE) {
        return 1;
    }
    if (point_level(rc)) {
        snprintf(why.msg, sizeof(why.msg), "sqlite: %s", sqlite3_errmsg(q->db));
        return nw_store_dead_letter(s, p, why.msg, NULL, 0, err) == NW_OK ? 0 : -1;
    }
    sq_fail(q, rc, err, "insert");
    return -1;
}

static void fail_outcome(struct nw_store_outcome *out, const struct nw_error *e)
{
    out->code = e->code == NW_OK ? NW_ERR_IO : e->code;
    out->done = out->stored = out->dead_lettered = 0;
    snprintf(out->msg, sizeof(out->msg), "%s", e->msg);
}

static int ord_cmp(const void *a, const void *b)
{
    const struct sq_ord *x = a, *y = b;
    if (x->p->kind != y->p->kind) {
        return x->p->kind < y->p->kind ? -1 : 1;
    }
    int c = strcmp(x->p->device, y->p->device);
    if (c != 0) {
        return c;
    }
    if (x->time_ms != y->time_ms) {
        return x->time_ms < y->time_ms ? -1 : 1;
    }
    return x->at < y->at ? -1 : 1;
}

/* q->ord = pts in identity order; false (arrival order) if it cannot grow. */
static bool sort_points(struct sq *q, const struct nw_point *const *pts, size_t n)
{
    if (n > q->ord_cap) {
        struct sq_ord *o = realloc(q->ord, n * sizeof(*o));
        if (!o) {
            return false;
        }
        q->ord = o;
        q->ord_cap = n;
    }
    for (size_t i = 0; i < n; i++) {
        q->ord[i] = (struct sq_ord){pts[i], nw_point_time_ms(pts[i]), (uint32_t)i};
    }
    qsort(q->ord, n, sizeof(*q->ord), ord_cmp);
    return true;
}

static void sq_write(struct nw_store *s, const struct nw_point *const *pts, size_t n,
                     struct nw_store_outcome *out)
{
    struct sq *q = s->impl;
    struct nw_error e = {0};
    int64_t t0 = nw_clock_mono_ns();
    size_t stored = 0, dead = 0;
    /* The transaction is all or nothing, so insertion order is free. */
    bool sorted = n > 1 && n <= UINT32_MAX && sort_points(q, pts, n);
    enum nw_err rc = exec(q, "BEGIN IMMEDIATE", &e);
    for (size_t i = 0; i < n && rc == NW_OK; i++) {
        int r = insert_one(s, sorted ? q->ord[i].p : pts[i], &e);
        stored += r == 1;
        dead += r == 0;
        rc = r < 0 ? (e.code ? e.code : NW_ERR_IO) : NW_OK;
    }
    /* Dead letters must be durable before the points count as settled. */
    if (rc == NW_OK) {
        rc = nw_store_dead_letter_sync(s, &e);
    }
    if (rc == NW_OK) {
        rc = exec(q, "COMMIT", &e);
    }
    nw_store_count_request(s, 0, 0, (uint64_t)(nw_clock_mono_ns() - t0) / 1000);
    if (rc != NW_OK) {
        sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
        fail_outcome(out, &e);
        return;
    }
    out->code = NW_OK;
    out->done = n;
    out->stored = stored;
    out->dead_lettered = dead;
}

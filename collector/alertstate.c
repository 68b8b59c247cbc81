/* alertstate.c - rule state blobs and silences in SQLite. */
#include "alertstate.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>

struct alertstate {
    sqlite3 *db;
    sqlite3_stmt *put;
};

static enum nw_err fail(struct alertstate *st, const char *what, struct nw_error *out_err)
{
    return nw_error_set(out_err, NW_ERR_IO, "alert state: %s: %s", what, sqlite3_errmsg(st->db));
}

static const char schema[] =
    "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-512;"
    "CREATE TABLE IF NOT EXISTS rule_state (device TEXT PRIMARY KEY, state BLOB NOT NULL);"
    "CREATE TABLE IF NOT EXISTS silences (device TEXT NOT NULL, rule TEXT NOT NULL,"
    " until_ms INTEGER NOT NULL, created_ms INTEGER NOT NULL)";

enum nw_err alertstate_open(const char *path, struct alertstate **out, struct nw_error *out_err)
{
    struct alertstate *st = calloc(1, sizeof(*st));
    if (!st) {
        return nw_error_set(out_err, NW_ERR_NOMEM, "alert state: out of memory");
    }
    enum nw_err rc = NW_OK;
    if (sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        rc = nw_error_set(out_err, NW_ERR_IO, "alert state %s: %s", path,
                          st->db ? sqlite3_errmsg(st->db) : "cannot open");
    } else if (sqlite3_busy_timeout(st->db, 5000) != SQLITE_OK ||
               sqlite3_exec(st->db, schema, NULL, NULL, NULL) != SQLITE_OK ||
               sqlite3_prepare_v2(st->db,
                                  "INSERT INTO rule_state VALUES (?1, ?2) ON CONFLICT (device)"
                                  " DO UPDATE SET state = ?2",
                                  -1, &st->put, NULL) != SQLITE_OK) {
        rc = fail(st, path, out_err);
    }
    if (rc != NW_OK) {
        alertstate_close(&st);
        return rc;
    }
    *out = st;
    return NW_OK;
}

void alertstate_close(struct alertstate **p)
{
    if (!p || !*p) {
        return;
    }
    sqlite3_finalize((*p)->put);
    sqlite3_close((*p)->db);
    free(*p);
    *p = NULL;
}

enum nw_err alertstate_load(struct alertstate *st, alertstate_row_fn fn, void *user,
                            struct nw_error *out_err)
{
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(st->db, "SELECT device, state FROM rule_state", -1, &q, NULL) !=
        SQLITE_OK) {
        return fail(st, "load", out_err);
    }
    int r;
    while ((r = sqlite3_step(q)) == SQLITE_ROW) {
        fn(user, (const char *)sqlite3_column_text(q, 0), sqlite3_column_blob(q, 1),
           (size_t)sqlite3_column_bytes(q, 1));
    }
    sqlite3_finalize(q);
    return r == SQLITE_DONE ? NW_OK : fail(st, "load", out_err);
}

enum nw_err alertstate_begin(struct alertstate *st, struct nw_error *out_err)
{
    return sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK
               ? NW_OK
               : fail(st, "begin", out_err);
}

enum nw_err alertstate_put(struct alertstate *st, const char *device, const void *blob, size_t len,
                           struct nw_error *out_err)
{
    sqlite3_reset(st->put);
    sqlite3_bind_text(st->put, 1, device, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st->put, 2, blob, (int)len, SQLITE_STATIC);
    return sqlite3_step(st->put) == SQLITE_DONE ? NW_OK : fail(st, "put", out_err);
}

enum nw_err alertstate_commit(struct alertstate *st, struct nw_error *out_err)
{
    return sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK
               ? NW_OK
               : fail(st, "commit", out_err);
}

void alertstate_rollback(struct alertstate *st)
{
    sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
}

enum nw_err alertstate_add_silence(struct alertstate *st, const struct alert_silence *s,
                                   struct nw_error *out_err)
{
    sqlite3_stmt *q = NULL;
    int r =
        sqlite3_prepare_v2(st->db, "INSERT INTO silences VALUES (?1, ?2, ?3, ?4)", -1, &q, NULL);
    if (r == SQLITE_OK) {
        sqlite3_bind_text(q, 1, s->device, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, s->rule, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 3, s->until_ms);
        sqlite3_bind_int64(q, 4, s->created_ms);
        r = sqlite3_step(q) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
    }
    sqlite3_finalize(q);
    return r == SQLITE_OK ? NW_OK : fail(st, "silence", out_err);
}

size_t alertstate_silences(struct alertstate *st, int64_t now_ms, struct alert_silence *out,
                           size_t cap, struct nw_error *out_err)
{
    sqlite3_stmt *q = NULL;
    char sql[128];
    snprintf(sql, sizeof(sql), "DELETE FROM silences WHERE until_ms <= %lld", (long long)now_ms);
    sqlite3_exec(st->db, sql, NULL, NULL, NULL); /* best effort: expired ones are skipped anyway */
    if (sqlite3_prepare_v2(st->db,
                           "SELECT device, rule, until_ms, created_ms FROM silences"
                           " WHERE until_ms > ?1 ORDER BY created_ms",
                           -1, &q, NULL) != SQLITE_OK) {
        fail(st, "silences", out_err);
        return (size_t)-1;
    }
    sqlite3_bind_int64(q, 1, now_ms);
    size_t n = 0;
    int r;
    while ((r = sqlite3_step(q)) == SQLITE_ROW && n < cap) {
        struct alert_silence *s = &out[n++];
        snprintf(s->device, sizeof(s->device), "%s", (const char *)sqlite3_column_text(q, 0));
        snprintf(s->rule, sizeof(s->rule), "%s", (const char *)sqlite3_column_text(q, 1));
        s->until_ms = sqlite3_column_int64(q, 2);
        s->created_ms = sqlite3_column_int64(q, 3);
    }
    sqlite3_finalize(q);
    if (r != SQLITE_DONE && r != SQLITE_ROW) {
        fail(st, "silences", out_err);
        return (size_t)-1;
    }
    return n;
}

/* ackstate.c - device watermarks in SQLite. */
#include "ackstate.h"

#include <sqlite3.h>
#include <stdlib.h>

struct ackstate {
    sqlite3 *db;
    sqlite3_stmt *put;
};

static enum nw_err fail(struct ackstate *st, const char *what, struct nw_error *out_err)
{
    return nw_error_set(out_err, NW_ERR_IO, "ack state: %s: %s", what, sqlite3_errmsg(st->db));
}

enum nw_err ackstate_open(const char *path, struct ackstate **out, struct nw_error *out_err)
{
    struct ackstate *st = calloc(1, sizeof(*st));
    if (!st) {
        return nw_error_set(out_err, NW_ERR_NOMEM, "ack state: out of memory");
    }
    enum nw_err rc = NW_OK;
    if (sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        rc = nw_error_set(out_err, NW_ERR_IO, "ack state %s: %s", path,
                          st->db ? sqlite3_errmsg(st->db) : "cannot open");
    } else if (sqlite3_busy_timeout(st->db, 5000) != SQLITE_OK ||
               sqlite3_exec(
                   st->db,
                   "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA cache_size=-256;"
                   "CREATE TABLE IF NOT EXISTS device_acks (device TEXT NOT NULL,"
                   " epoch INTEGER NOT NULL, window_seq INTEGER NOT NULL,"
                   " event_seq INTEGER NOT NULL, PRIMARY KEY (device))",
                   NULL, NULL, NULL) != SQLITE_OK ||
               sqlite3_prepare_v2(st->db,
                                  "INSERT INTO device_acks VALUES (?1, ?2, ?3, ?4) ON CONFLICT"
                                  " (device) DO UPDATE SET epoch=?2, window_seq=?3, event_seq=?4",
                                  -1, &st->put, NULL) != SQLITE_OK) {
        rc = fail(st, path, out_err);
    }
    if (rc != NW_OK) {
        ackstate_close(&st);
        return rc;
    }
    *out = st;
    return NW_OK;
}

void ackstate_close(struct ackstate **p)
{
    if (!p || !*p) {
        return;
    }
    sqlite3_finalize((*p)->put);
    sqlite3_close((*p)->db);
    free(*p);
    *p = NULL;
}

enum nw_err ackstate_load(struct ackstate *st, ackstate_row_fn fn, void *user,
                          struct nw_error *out_err)
{
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(st->db, "SELECT device, epoch, window_seq, event_seq FROM device_acks",
                           -1, &q, NULL) != SQLITE_OK) {
        return fail(st, "load", out_err);
    }
    int r;
    while ((r = sqlite3_step(q)) == SQLITE_ROW) {
        fn(user, (const char *)sqlite3_column_text(q, 0), (uint64_t)sqlite3_column_int64(q, 1),
           (uint64_t)sqlite3_column_int64(q, 2), (uint64_t)sqlite3_column_int64(q, 3));
    }
    sqlite3_finalize(q);
    return r == SQLITE_DONE ? NW_OK : fail(st, "load", out_err);
}

enum nw_err ackstate_begin(struct ackstate *st, struct nw_error *out_err)
{
    return sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK
               ? NW_OK
               : fail(st, "begin", out_err);
}

enum nw_err ackstate_put(struct ackstate *st, const char *device, uint64_t epoch,
                         uint64_t window_seq, uint64_t event_seq, struct nw_error *out_err)
{
    sqlite3_reset(st->put);
    sqlite3_bind_text(st->put, 1, device, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st->put, 2, (sqlite3_int64)epoch); /* bits kept as they are */
    sqlite3_bind_int64(st->put, 3, (sqlite3_int64)window_seq);
    sqlite3_bind_int64(st->put, 4, (sqlite3_int64)event_seq);
    return sqlite3_step(st->put) == SQLITE_DONE ? NW_OK : fail(st, "put", out_err);
}

enum nw_err ackstate_commit(struct ackstate *st, struct nw_error *out_err)
{
    return sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK
               ? NW_OK
               : fail(st, "commit", out_err);
}

void ackstate_rollback(struct ackstate *st)
{
    sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
}

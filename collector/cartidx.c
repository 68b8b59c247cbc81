/* cartidx.c - cartridge uses in SQLite. */
#include "cartidx.h"

#include <needlewatch/log.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cartidx {
    sqlite3 *db;
    sqlite3_stmt *get, *ins, *set_session;
    uint64_t errors;
    bool failing;
};

enum nw_err cartidx_open(const char *path, struct cartidx **out, struct nw_error *out_err)
{
    struct cartidx *ix = calloc(1, sizeof(*ix));
    if (!ix) {
        return nw_error_set(out_err, NW_ERR_NOMEM, "cartridge index: out of memory");
    }
    if (sqlite3_open_v2(path, &ix->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
            SQLITE_OK ||
        sqlite3_busy_timeout(ix->db, 5000) != SQLITE_OK ||
        sqlite3_exec(ix->db,
                     "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-128;"
                     "CREATE TABLE IF NOT EXISTS cartridges (id TEXT PRIMARY KEY,"
                     " device TEXT NOT NULL, session TEXT NOT NULL, first_ms INTEGER NOT NULL)",
                     NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(ix->db, "SELECT device, session FROM cartridges WHERE id = ?1", -1,
                           &ix->get, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(ix->db, "INSERT INTO cartridges VALUES (?1, ?2, ?3, ?4)", -1, &ix->ins,
                           NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(ix->db, "UPDATE cartridges SET session = ?2 WHERE id = ?1", -1,
                           &ix->set_session, NULL) != SQLITE_OK) {
        enum nw_err rc = nw_error_set(out_err, NW_ERR_IO, "cartridge index %s: %s", path,
                                      ix->db ? sqlite3_errmsg(ix->db) : "cannot open");
        cartidx_close(&ix);
        return rc;
    }
    *out = ix;
    return NW_OK;
}

void cartidx_close(struct cartidx **p)
{
    if (!p || !*p) {
        return;
    }
    sqlite3_finalize((*p)->get);
    sqlite3_finalize((*p)->ins);
    sqlite3_finalize((*p)->set_session);
    sqlite3_close((*p)->db);
    free(*p);
    *p = NULL;
}

static int run(sqlite3_stmt *st, const char *a, const char *b, const char *c, int64_t t)
{
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
    if (b) {
        sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
    }
    if (c) {
        sqlite3_bind_text(st, 3, c, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, t);
    }
    return sqlite3_step(st);
}

/* Inside a transaction: the verdict, recording the use. SQLITE_OK or an
 * error code. */
static int check(struct cartidx *ix, const char *cart, const char *device, const char *session,
                 int64_t t, bool *reuse, char *where, size_t cap)
{
    int r = run(ix->get, cart, NULL, NULL, 0);
    if (r == SQLITE_DONE) {
        return run(ix->ins, cart, device, session, t) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
    }
    if (r != SQLITE_ROW) {
        return r;
    }
    const char *dev0 = (const char *)sqlite3_column_text(ix->get, 0);
    const char *ses0 = (const char *)sqlite3_column_text(ix->get, 1);
    *reuse = strcmp(dev0, device) != 0 || (ses0[0] && session[0] && strcmp(ses0, session) != 0);
    snprintf(where, cap, "device %s, session %s", dev0, ses0[0] ? ses0 : "(none)");
    if (!*reuse && !ses0[0] && session[0]) {
        return run(ix->set_session, cart, session, NULL, 0) == SQLITE_DONE ? SQLITE_OK
                                                                           : SQLITE_ERROR;
    }
    return SQLITE_OK;
}

bool cartidx_check(struct cartidx *ix, const char *cartridge, const char *device,
                   const char *session, int64_t time_ms, char *out_where, size_t where_cap)
{
    bool reuse = false;
    int r = sqlite3_exec(ix->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (r == SQLITE_OK) {
        r = check(ix, cartridge, device, session, time_ms, &reuse, out_where, where_cap);
        sqlite3_reset(ix->get);
        r = r == SQLITE_OK ? sqlite3_exec(ix->db, "COMMIT", NULL, NULL, NULL) : r;
    }
    if (r != SQLITE_OK) {
        sqlite3_exec(ix->db, "ROLLBACK", NULL, NULL, NULL);
        ix->errors++;
        if (!ix->failing) {
            nw_log(NW_LOG_ERROR, "cartidx", "cartridge index: %s: reuse checks skipped",
                   sqlite3_errmsg(ix->db));
        }
        ix->failing = true;
        return false;
    }
    if (ix->failing) {
        nw_log(NW_LOG_NOTICE, "cartidx", "cartridge index writable again");
        ix->failing = false;
    }
    return reuse;
}

uint64_t cartidx_errors(const struct cartidx *ix)
{
    return ix->errors;
}

/*
 * test_collector_store_sqlite.c - the embedded store: every point kind
 * round-trips through plain SQL, re-writes replace instead of duplicating,
 * bad files fail with a clear reason, readers see whole transactions while
 * the writer works (WAL), and 100k windows go in at a printed rate.
 */
#include "store.h"
#include "store_impl.h"

#include <needlewatch/clock.h>

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <math.h>
#include <sqlite3.h>

#define T0 1700000000000LL
#define CLINIC "Clínica São Paulo, Unit 2"

static char dir[256];

static void path_of(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

static int setup(void **state)
{
    snprintf(dir, sizeof(dir), "%s/nw-store-sqlite.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* --- points ------------------------------------------------------------ */

static void base(struct nw_point *p, enum nw_point_kind k, const char *dev)
{
    memset(p, 0, sizeof(*p));
    p->kind = k;
    snprintf(p->device, sizeof(p->device), "%s", dev);
    snprintf(p->clinic, sizeof(p->clinic), "%s", CLINIC);
    snprintf(p->model, sizeof(p->model), "DG-3");
    p->epoch = 2;
}

static struct nw_point window(const char *dev, uint64_t seq)
{
    struct nw_point p;
    base(&p, NW_POINT_WINDOW, dev);
    struct nw_window *w = &p.u.window.w;
    w->seq = seq;
    w->start_ms = T0 + (int64_t)seq * 1000;
    w->duration_ms = 1000;
    w->running_ms = 900;
    w->cycles = 118;
    w->rate_mean_hz = 120.5, w->rate_min_hz = 110.25, w->rate_max_hz = 130.0;
    w->depth_mean_mm = 0.4, w->depth_min_mm = 0.3, w->depth_max_mm = 0.45;
    w->pigment_ul = 0.125;
    snprintf(w->session_id, sizeof(w->session_id), "sess-%s", dev);
    snprintf(w->cartridge_id, sizeof(w->cartridge_id), "cart-1");
    p.u.window.in_spec = seq % 2 == 0;
    return p;
}

static struct nw_point event(void)
{
    struct nw_point p;
    base(&p, NW_POINT_EVENT, "dev-e");
    p.u.event.seq = 7;
    p.u.event.time_ms = T0 + 5;
    p.u.event.kind = NW_EVENT_PIGMENT_LOADED;
    snprintf(p.u.event.lot, sizeof(p.u.event.lot), "LOT-9");
    snprintf(p.u.event.shade, sizeof(p.u.event.shade), "Noir \"deep\"");
    p.u.event.volume_ul = 250.5;
    return p;
}

static struct nw_point status(void)
{
    struct nw_point p;
    base(&p, NW_POINT_STATUS, "dev-s");
    struct nw_status *s = &p.u.status;
    s->state = NW_DEVICE_ONLINE;
    s->time_ms = T0 + 6;
    snprintf(s->firmware, sizeof(s->firmware), "1.2.3");
    s->odometer_cycles = 123456789;
    s->running_s = 7200;
    s->queue_depth = 4;
    s->windows_dropped = 1;
    return p;
}

static struct nw_point session(void)
{
    struct nw_point p;
    base(&p, NW_POINT_SESSION, "dev-x");
    struct nw_session_summary *s = &p.u.session;
    snprintf(s->session_id, sizeof(s->session_id), "sess-42");
    s->start_ms = T0;
    s->end_ms = T0 + 3600000;
    s->duration_s = 3600;
    s->cycles = 400000;
    s->rate_in_spec_pct = 99.5;
    s->windows = 3599;
    s->windows_expected = 3600;
    s->cut_off = true;
    return p;
}

static struct nw_point alert(void)
{
    struct nw_point p;
    base(&p, NW_POINT_ALERT, "dev-a");
    struct nw_alert *a = &p.u.alert;
    snprintf(a->rule, sizeof(a->rule), "needle_rate_out_of_spec");
    a->severity = NW_SEVERITY_CRITICAL;
    a->state = NW_ALERT_FIRING;
    a->time_ms = T0 + 9;
    a->value = 151.5;
    a->threshold = 140;
    snprintf(a->message, sizeof(a->message), "rate 151.5 Hz > 140 Hz for 2 s");
    return p;
}

/* --- helpers ----------------------------------------------------------- */

static struct nw_store *open_store(const char *file, const struct nw_store_options *opt)
{
    char url[512];
    struct nw_store *s = NULL;
    struct nw_error err = {0};
    snprintf(url, sizeof(url), "sqlite:%s/%s", dir, file);
    enum nw_err rc = nw_store_open(url, opt, &s, &err);
    if (rc != NW_OK) {
        fail_msg("open %s: %s", url, err.msg);
    }
    return s;
}

static sqlite3 *reader(const char *file)
{
    char path[512];
    sqlite3 *db;
    path_of(path, sizeof(path), file);
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    return db;
}

static int64_t scalar(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* One row as "col=value|col=value..." in column order. */
static void row_text(sqlite3 *db, const char *sql, char *out, size_t cap)
{
    sqlite3_stmt *st;
    size_t at = 0;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    for (int i = 0; i < sqlite3_column_count(st) && at < cap; i++) {
        const char *v = (const char *)sqlite3_column_text(st, i);
        at += (size_t)snprintf(out + at, cap - at, "%s%s=%s", i ? "|" : "",
                               sqlite3_column_name(st, i), v ? v : "NULL");
    }
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
}

static void write_ok(struct nw_store *s, const struct nw_point *p, size_t n)
{
    struct nw_store_outcome out;
    enum nw_err rc = nw_store_write(s, p, n, &out);
    if (rc != NW_OK) {
        fail_msg("write: %s (%s)", nw_strerror(rc), out.msg);
    }
    assert_int_equal(out.done, n);
}

/* --- tests ------------------------------------------------------------- */

static void round_trip_every_kind(void **state)
{
    struct nw_store *s = open_store("rt.db", NULL);
    struct nw_point pts[] = {window("dev-w", 3), event(), status(), session(), alert()};
    write_ok(s, pts, 5);
    assert_int_equal(strncmp(nw_store_name(s), "sqlite:/", 8), 0);
    nw_store_close(&s);
    assert_null(s);

    sqlite3 *db = reader("rt.db");
    char row[2048];
    row_text(db, "SELECT * FROM needle_window", row, sizeof(row));
    assert_string_equal(row, "clinic=" CLINIC "|device=dev-w|model=DG-3|time=1700000003000|"
                             "epoch=2|seq=3|duration_ms=1000|running_ms=900|cycles=118|"
                             "rate_mean=120.5|rate_min=110.25|rate_max=130.0|depth_mean=0.4|"
                             "depth_min=0.3|depth_max=0.45|pigment_ul=0.125|session=sess-dev-w|"
                             "cartridge=cart-1|pigment_lot=NULL|in_spec=0");
    row_text(db,
             "SELECT device, kind, time, seq, lot, shade, volume_ul, firmware, fault_code "
             "FROM device_event",
             row, sizeof(row));
    assert_string_equal(row, "device=dev-e|kind=pigment_loaded|time=1700000000005|seq=7|"
                             "lot=LOT-9|shade=Noir \"deep\"|volume_ul=250.5|firmware=NULL|"
                             "fault_code=NULL");
    row_text(db,
             "SELECT device, time, online, firmware, odometer, hours, queue_depth, dropped "
             "FROM device_status",
             row, sizeof(row));
    assert_string_equal(row, "device=dev-s|time=1700000000006|online=1|firmware=1.2.3|"
                             "odometer=123456789|hours=2.0|queue_depth=4|dropped=1");
    row_text(db,
             "SELECT device, time, session, start_ms, cycles, rate_in_spec_pct, windows, "
             "windows_expected, cut_off FROM session",
             row, sizeof(row));
    assert_string_equal(row, "device=dev-x|time=1700003600000|session=sess-42|"
                             "start_ms=1700000000000|cycles=400000|rate_in_spec_pct=99.5|"
                             "windows=3599|windows_expected=3600|cut_off=1");
    row_text(db, "SELECT device, rule, severity, time, state, value, threshold, message FROM alert",
             row, sizeof(row));
    assert_string_equal(row, "device=dev-a|rule=needle_rate_out_of_spec|severity=critical|"
                             "time=1700000000009|state=firing|value=151.5|threshold=140.0|"
                             "message=rate 151.5 Hz > 140 Hz for 2 s");
    assert_int_equal(scalar(db, "PRAGMA user_version"), NW_SCHEMA_VERSION);
    sqlite3_close(db);
}

static void wal_and_full_sync(void **state)
{
    struct nw_store *s = open_store("pragma.db", NULL);
    nw_store_close(&s);
    sqlite3 *db = reader("pragma.db");
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    /* The primary key is the identity: a second row for it is impossible. */
    assert_int_equal(scalar(db, "SELECT count(*) FROM sqlite_master WHERE type='index' AND "
                                "name IN ('needle_window_time','device_event_seq',"
                                "'device_event_device_time','alert_device_time')"),
                     4);
    assert_int_equal(scalar(db, "SELECT count(*) FROM sqlite_master WHERE name = "
                                "'needle_window_seq'"),
                     0);                                   /* gone since version 2 */
    assert_int_equal(scalar(db, "PRAGMA synchronous"), 2); /* FULL (per connection) */
    sqlite3_close(db);
}

/* A version-1 file (with needle_window_seq) is migrated to version 2 and
 * keeps its rows. */
static void migrates_from_1(void **state)
{
    struct nw_store *s = open_store("v1.db", NULL);
    struct nw_point pts[3] = {window("a", 1), window("a", 2), window("b", 1)};
    write_ok(s, pts, 3);
    nw_store_close(&s);
    char path[512];
    path_of(path, sizeof(path), "v1.db");
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE INDEX needle_window_seq ON needle_window "
                                  "(device, epoch, seq); PRAGMA user_version = 1",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    s = open_store("v1.db", NULL);
    nw_store_close(&s);
    db = reader("v1.db");
    assert_int_equal(scalar(db, "PRAGMA user_version"), 2);
    assert_int_equal(scalar(db, "SELECT count(*) FROM sqlite_master WHERE name = "
                                "'needle_window_seq'"),
                     0);
    assert_int_equal(scalar(db, "SELECT count(*) FROM needle_window"), 3);
    sqlite3_close(db);
}

static int64_t clustered(sqlite3 *db, const char *table)
{
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM sqlite_master WHERE name = '%s' AND sql LIKE '%%WITHOUT ROWID'",
             table);
    return scalar(db, sql);
}

/* Of two rows for one identity in a write the later stays; a re-send
 * replaces it again; nothing is stored twice. */
static void replaces(const char *file)
{
    struct nw_point pts[4] = {window("a", 1), window("a", 2), window("b", 1), window("a", 2)};
    pts[3].u.window.w.cycles = 777;
    struct nw_store *s = open_store(file, NULL);
    write_ok(s, pts, 4);
    nw_store_close(&s);
    sqlite3 *db = reader(file);
    assert_int_equal(scalar(db, "SELECT count(*) FROM needle_window WHERE cycles = 777"), 1);
    sqlite3_close(db);
    s = open_store(file, NULL);
    write_ok(s, pts, 2);
    nw_store_close(&s);
    db = reader(file);
    assert_int_equal(scalar(db, "SELECT count(*) FROM needle_window"), 3);
    assert_int_equal(scalar(db, "SELECT count(*) FROM needle_window WHERE cycles = 777"), 0);
    sqlite3_close(db);
}

/* New files keep needle_window in arrival order and the other tables
 * clustered on their key; a file made with needle_window clustered (before
 * session 5) is written through the same statements. */
static void table_layouts(void **state)
{
    replaces("layout.db");
    sqlite3 *db = reader("layout.db");
    assert_int_equal(clustered(db, "needle_window"), 0);
    assert_int_equal(clustered(db, "device_event"), 1);
    assert_int_equal(clustered(db, "alert"), 1);
    sqlite3_close(db);
    struct nw_store *s = open_store("old.db", NULL);
    nw_store_close(&s);
    char path[512];
    path_of(path, sizeof(path), "old.db");
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db,
                     "DROP TABLE needle_window; CREATE TABLE needle_window (clinic TEXT NOT NULL, "
                     "device TEXT NOT NULL, model TEXT NOT NULL, time INTEGER NOT NULL, epoch "
                     "INTEGER, seq INTEGER, duration_ms INTEGER, running_ms INTEGER, cycles "
                     "INTEGER, rate_mean REAL, rate_min REAL, rate_max REAL, depth_mean REAL, "
                     "depth_min REAL, depth_max REAL, pigment_ul REAL, session TEXT, cartridge "
                     "TEXT, pigment_lot TEXT, in_spec INTEGER, PRIMARY KEY (device, time)) "
                     "WITHOUT ROWID; CREATE INDEX needle_window_time ON needle_window (time)",
                     NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    replaces("old.db");
    db = reader("old.db");
    assert_int_equal(clustered(db, "needle_window"), 1);
    sqlite3_close(db);
}

/* Points are inserted in identity order, not in arrival order: the same
 * rows, and of two points with one identity in a write the later wins. */
static void write_order_is_free(void **state)
{
    struct nw_store *s = open_store("order.db", NULL);
    enum { N = 600 };
    static struct nw_point pts[N];
    for (int i = 0; i < N; i++) { /* a live fleet: devices interleaved */
        char dev[16];
        snprintf(dev, sizeof(dev), "d%02d", (i * 7) % 30);
        pts[i] = window(dev, (uint64_t)(i / 30) + 1);
        pts[i].u.window.w.cycles = (uint64_t)i;
    }
    pts[N - 1] = pts[3]; /* a re-send of pts[3] in the same write, newer values */
    pts[N - 1].u.window.w.cycles = 4242;
    write_ok(s, pts, N);
    nw_store_close(&s);
    sqlite3 *db = reader("order.db");
    assert_int_equal(scalar(db, "SELECT count(*) FROM needle_window"), N - 1);
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT cycles FROM needle_window WHERE device = '%s' AND time = %lld", pts[3].device,
             (long long)pts[3].u.window.w.start_ms);
    assert_int_equal(scalar(db, sql), 4242);
    assert_int_equal(scalar(db, "SELECT sum(cycles) FROM needle_window"),
                     (int64_t)(N - 2) * (N - 1) / 2 - 3 + 4242);
    sqlite3_close(db);
}

static void rewrite_replaces(void **state)
{
    struct nw_store *s = open_store("idem.db", NULL);
    struct nw_point pts[100];
    for (int i = 0; i < 100; i++) {
        pts[i] = window(i % 2 ? "a" : "b", (uint64_t)i + 1);
    }
    write_ok(s, pts, 100);
    write_ok(s, pts, 100);
    write_ok(s, pts + 10, 50);
    pts[0].u.window.w.cycles = 999; /* same identity, new value: replaces */
    write_ok(s, pts, 1);
    struct nw_point e[2] = {event(), event()};
    write_ok(s, e, 2); /* the same event twice in one batch */
    nw_store_close(&s);
    sqlite3 *db = reader("idem.db");
    assert_int_equal(scalar(db, "SELECT count(*) FROM needle_window"), 100);
    assert_int_equal(scalar(db, "SELECT count(*) FROM device_event"), 1);
    assert_int_equal(scalar(db, "SELECT cycles FROM needle_window WHERE seq = 1"), 999);
    sqlite3_close(db);
}

static void expect_open_error(const char *url, enum nw_err code, const char *needle)
{
    struct nw_store *s = NULL;
    struct nw_error err = {0};
    enum nw_err rc = nw_store_open(url, NULL, &s, &err);
    if (rc != code || !strstr(err.msg, needle)) {
        fail_msg("%s: got %s \"%s\", want %s containing \"%s\"", url, nw_strerror(rc), err.msg,
                 nw_strerror(code), needle);
    }
    assert_null(s);
}

static bool readonly_open_fails(const char *url)
{
    struct nw_store *s = NULL;
    struct nw_error err = {0};
    enum nw_err rc = nw_store_open(url, NULL, &s, &err);
    nw_store_close(&s);
    if (rc != NW_ERR_IO || !strstr(err.msg, "read-only")) {
        fprintf(stderr, "read-only open: %s: %s\n", nw_strerror(rc), err.msg);
        return false;
    }
    return true;
}

static void bad_files(void **state)
{
    char path[512], url[600];
    path_of(path, sizeof(path), "garbage.db");
    FILE *f = fopen(path, "w");
    for (int i = 0; i < 512; i++) {
        fputs("this is not a database ", f);
    }
    fclose(f);
    snprintf(url, sizeof(url), "sqlite:%s", path);
    expect_open_error(url, NW_ERR_CORRUPT, "file is not a database");

    snprintf(url, sizeof(url), "sqlite:%s", dir); /* a directory */
    expect_open_error(url, NW_ERR_NOT_FOUND, "unable to open database file");

    snprintf(url, sizeof(url), "sqlite:%s/no/such/dir/x.db", dir);
    expect_open_error(url, NW_ERR_NOT_FOUND, "unable to open");

    /* Someone else's database: tables but no version of ours. */
    sqlite3 *db;
    path_of(path, sizeof(path), "foreign.db");
    sqlite3_open(path, &db);
    sqlite3_exec(db, "CREATE TABLE t (x)", NULL, NULL, NULL);
    sqlite3_close(db);
    snprintf(url, sizeof(url), "sqlite:%s", path);
    expect_open_error(url, NW_ERR_CONFIG, "not a needlewatch database");

    /* A file from a newer needlewatch. */
    struct nw_store *s = open_store("newer.db", NULL);
    nw_store_close(&s);
    path_of(path, sizeof(path), "newer.db");
    sqlite3_open(path, &db);
    sqlite3_exec(db, "PRAGMA user_version = 7", NULL, NULL, NULL);
    sqlite3_close(db);
    snprintf(url, sizeof(url), "sqlite:%s", path);
    expect_open_error(url, NW_ERR_CONFIG,
                      "schema version 7 is newer than this needlewatch "
                      "knows (2): upgrade needlewatch");

    /* Read-only. Root ignores file modes, so as root the check runs in a
     * child that became nobody. */
    s = open_store("ro.db", NULL);
    nw_store_close(&s);
    path_of(path, sizeof(path), "ro.db");
    chmod(path, 0444);
    chmod(dir, 0755);
    snprintf(url, sizeof(url), "sqlite:%s", path);
    if (geteuid() != 0) {
        assert_true(readonly_open_fails(url));
        return;
    }
    pid_t pid = fork();
    if (pid == 0) {
        bool dropped = setgid(65534) == 0 && setuid(65534) == 0;
        _exit(!dropped ? 3 : readonly_open_fails(url) ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void refused_points_are_dead_lettered(void **state)
{
    char dl[512];
    path_of(dl, sizeof(dl), "dead.jsonl");
    struct nw_store_options opt = {.dead_letter_path = dl};
    struct nw_store *s = open_store("dead.db", &opt);
    struct nw_point pts[4] = {window("d", 1), window("d", 2), window("d", 3), window("d", 4)};
    pts[1].u.window.w.rate_max_hz = NAN;
    pts[2].u.window.w.cycles = UINT64_MAX;
    struct nw_store_outcome out;
    assert_int_equal(nw_store_write(s, pts, 4, &out), NW_OK);
    assert_int_equal(out.done, 4);
    assert_int_equal(out.stored, 2);
    assert_int_equal(out.dead_lettered, 2);
    struct nw_store_stats st;
    nw_store_stats(s, &st);
    assert_int_equal(st.points_dead_lettered, 2);
    nw_store_close(&s);

    FILE *f = fopen(dl, "r");
    char line[2048];
    assert_non_null(fgets(line, sizeof(line), f));
    assert_non_null(strstr(line, "\"device\":\"d\""));
    assert_non_null(strstr(line, "\"seq\":2"));
    assert_non_null(strstr(line, "needle_window.rate_max is NaN"));
    assert_non_null(fgets(line, sizeof(line), f));
    assert_non_null(strstr(line, "needle_window.cycles = 18446744073709551615 does not fit"));
    assert_null(fgets(line, sizeof(line), f));
    fclose(f);
}

/* A reader in another connection while the writer commits batches: never
 * blocked (WAL), and it only ever sees whole transactions. */
struct reader_arg {
    char path[512];
    int64_t batch;
    volatile int stop;
    int reads, errors, torn;
};

static void *read_loop(void *p)
{
    struct reader_arg *a = p;
    sqlite3 *db;
    sqlite3_open_v2(a->path, &db, SQLITE_OPEN_READONLY, NULL);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, "SELECT count(*) FROM needle_window", -1, &st, NULL);
    while (!a->stop) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            a->torn += sqlite3_column_int64(st, 0) % a->batch != 0;
            a->reads++;
        } else {
            a->errors++;
        }
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return NULL;
}

static void write_batches(struct nw_store *s, const char *dev, int batches, int per, double *rate)
{
    struct nw_point *pts = calloc((size_t)per, sizeof(*pts));
    int64_t t0 = nw_clock_mono_ns();
    for (int b = 0; b < batches; b++) {
        for (int i = 0; i < per; i++) {
            pts[i] = window(dev, (uint64_t)(b * per + i + 1));
        }
        write_ok(s, pts, (size_t)per);
    }
    double secs = (double)(nw_clock_mono_ns() - t0) / 1e9;
    *rate = batches * per / secs;
    free(pts);
}

static void concurrent_reader(void **state)
{
    struct nw_store *s = open_store("wal.db", NULL);
    struct reader_arg a = {.batch = 200};
    path_of(a.path, sizeof(a.path), "wal.db");
    pthread_t t;
    pthread_create(&t, NULL, read_loop, &a);
    double rate;
    write_batches(s, "w", 50, 200, &rate);
    a.stop = 1;
    pthread_join(t, NULL);
    nw_store_close(&s);
    print_message("reader: %d reads during 50 commits, %d errors, %d torn\n", a.reads, a.errors,
                  a.torn);
    assert_true(a.reads > 0);
    assert_int_equal(a.errors, 0);
    assert_int_equal(a.torn, 0);
}

static void hundred_thousand_windows(void **state)
{
    struct nw_store *s = open_store("bulk.db", NULL);
    double rate;
    write_batches(s, "bulk", 100, 1000, &rate);
    write_batches(s, "bulk", 1, 1000, &(double){0}); /* a replayed batch changes nothing */
    struct nw_store_stats st;
    nw_store_stats(s, &st);
    nw_store_close(&s);
    print_message("sqlite: %.0f windows/s in 1000-window transactions (synchronous=FULL, WAL); "
                  "mean commit %.2f ms\n",
                  rate, (double)st.latency_sum_us / 1000.0 / (double)st.requests);
    sqlite3 *db = reader("bulk.db");
    assert_int_equal(scalar(db, "SELECT count(*) FROM needle_window"), 100000);
    assert_int_equal(scalar(db, "SELECT sum(seq) FROM needle_window"), 100000LL * 100001 / 2);
    /* Completeness from seq: no gap between the first and the last. */
    assert_int_equal(scalar(db, "SELECT max(seq) - min(seq) + 1 - count(*) FROM needle_window "
                                "WHERE device = 'bulk' AND epoch = 2"),
                     0);
    sqlite3_close(db);
}

static void empty_and_null_arguments(void **state)
{
    struct nw_store *s = open_store("empty.db", NULL);
    struct nw_store_outcome out;
    assert_int_equal(nw_store_write(s, NULL, 0, &out), NW_OK);
    assert_int_equal(out.done, 0);
    assert_int_equal(nw_store_write(s, NULL, 3, &out), NW_ERR_INVAL);
    assert_int_equal(nw_store_scheme(s), NW_STORE_SQLITE);
    nw_store_close(&s);
    nw_store_close(&s); /* NULL-safe */
    nw_store_close(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip_every_kind),
        cmocka_unit_test(wal_and_full_sync),
        cmocka_unit_test(rewrite_replaces),
        cmocka_unit_test(migrates_from_1),
        cmocka_unit_test(table_layouts),
        cmocka_unit_test(write_order_is_free),
        cmocka_unit_test(bad_files),
        cmocka_unit_test(refused_points_are_dead_lettered),
        cmocka_unit_test(concurrent_reader),
        cmocka_unit_test(hundred_thousand_windows),
        cmocka_unit_test(empty_and_null_arguments),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

/* Unit tests of agent/fleet.c: the resend ring and the disk store behind the
 * same interface, the virtual clock, fault specs, names and inventory, and
 * one device end to end without a broker, in memory and on disk (restarts
 * included). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "fleet.h"

#include <needlewatch/log.h>
#include <needlewatch/validate.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define T0 1795000000000LL

/* ---- ring helpers --------------------------------------------------------- */

/* A payload whose bytes say which record it is, so a split or overwritten
 * record is caught: byte i = (seq * 31 + type * 7 + i) & 0xff. */
static void fill(uint8_t *buf, size_t len, enum fleet_rec_type type, uint64_t seq)
{
    for (size_t i = 0; i < len; i++) {
        buf[i] = (uint8_t)((seq * 31 + (uint64_t)type * 7 + i) & 0xff);
    }
}

static bool intact(const struct fleet_rec *r)
{
    for (size_t i = 0; i < r->len; i++) {
        if (r->data[i] != (uint8_t)((r->seq * 31 + (uint64_t)r->type * 7 + i) & 0xff)) {
            return false;
        }
    }
    return true;
}

static void put(struct fleet_ring *r, enum fleet_rec_type type, uint64_t seq, size_t len)
{
    uint8_t buf[2048];
    fill(buf, len, type, seq);
    assert_int_equal(fleet_ring_append(r, type, seq, buf, len, NULL), NW_OK);
}

/* Takes the next record and checks it is (type, seq) and intact. */
static void expect(struct fleet_ring *r, enum fleet_rec_type type, uint64_t seq)
{
    struct fleet_rec rec;
    assert_true(fleet_ring_peek(r, &rec));
    assert_int_equal(rec.type, type);
    assert_int_equal(rec.seq, seq);
    assert_true(intact(&rec));
    fleet_ring_take(r);
}

/* ---- ring ----------------------------------------------------------------- */

static void ring_appends_and_hands_out_in_order(void **state)
{
    (void)state;
    assert_null(fleet_ring_new(FLEET_RING_MIN - 1));
    struct fleet_ring *r = fleet_ring_new(8192);
    assert_non_null(r);
    struct fleet_rec rec;
    assert_false(fleet_ring_peek(r, &rec));
    put(r, FLEET_REC_EVENT, 1, 40);
    for (uint64_t s = 1; s <= 5; s++) {
        put(r, FLEET_REC_WINDOW, s, 100 + s);
    }
    put(r, FLEET_REC_EVENT, 2, 0); /* empty payloads are records too */
    expect(r, FLEET_REC_EVENT, 1);
    for (uint64_t s = 1; s <= 5; s++) {
        expect(r, FLEET_REC_WINDOW, s);
    }
    expect(r, FLEET_REC_EVENT, 2);
    assert_false(fleet_ring_peek(r, &rec));
    struct fleet_store_stats st;
    fleet_ring_get_stats(r, &st);
    assert_int_equal(st.records, 7);
    assert_int_equal(st.last_seq[FLEET_REC_WINDOW], 5);
    assert_int_equal(st.last_seq[FLEET_REC_EVENT], 2);
    /* seqs only go up; a record larger than the ring never fits */
    uint8_t big[8200] = {0};
    assert_int_equal(fleet_ring_append(r, FLEET_REC_WINDOW, 5, big, 10, NULL), NW_ERR_INVAL);
    assert_int_equal(fleet_ring_append(r, FLEET_REC_WINDOW, 9, big, sizeof(big), NULL),
                     NW_ERR_TOO_BIG);
    fleet_ring_get_stats(r, &st);
    assert_int_equal(st.records, 7);
    fleet_ring_destroy(&r);
    assert_null(r);
    fleet_ring_destroy(&r); /* NULL-safe */
}

static void ring_acks_trim_and_skip(void **state)
{
    (void)state;
    struct fleet_ring *r = fleet_ring_new(8192);
    put(r, FLEET_REC_EVENT, 1, 30);
    for (uint64_t s = 1; s <= 4; s++) {
        put(r, FLEET_REC_WINDOW, s, 80);
    }
    put(r, FLEET_REC_EVENT, 2, 30);
    struct fleet_store_stats st;
    /* windows acked, but event 1 (older) is not: nothing can leave yet */
    assert_int_equal(fleet_ring_ack(r, FLEET_REC_WINDOW, 3, NULL), NW_OK);
    fleet_ring_get_stats(r, &st);
    assert_int_equal(st.records, 6);
    assert_int_equal(st.acked_seq[FLEET_REC_WINDOW], 3);
    /* but acked records are never handed out again */
    expect(r, FLEET_REC_EVENT, 1);
    expect(r, FLEET_REC_WINDOW, 4);
    expect(r, FLEET_REC_EVENT, 2);
    fleet_ring_rewind(r);
    expect(r, FLEET_REC_EVENT, 1);
    expect(r, FLEET_REC_WINDOW, 4);
    /* event 1 acked: it and windows 1-3 behind it leave */
    assert_int_equal(fleet_ring_ack(r, FLEET_REC_EVENT, 1, NULL), NW_OK);
    fleet_ring_get_stats(r, &st);
    assert_int_equal(st.records, 2);
    assert_int_equal(st.acked[FLEET_REC_WINDOW], 3);
    assert_int_equal(st.acked[FLEET_REC_EVENT], 1);
    /* the cursor stays where it was: event 2 is next */
    expect(r, FLEET_REC_EVENT, 2);
    /* an old ack changes nothing, one beyond what was made is refused */
    assert_int_equal(fleet_ring_ack(r, FLEET_REC_WINDOW, 2, NULL), NW_OK);
    struct nw_error err = {0};
    assert_int_equal(fleet_ring_ack(r, FLEET_REC_WINDOW, 5, &err), NW_ERR_INVALID);
    assert_non_null(strstr(err.msg, "beyond"));
    fleet_ring_get_stats(r, &st);
    assert_int_equal(st.acked_seq[FLEET_REC_WINDOW], 3);
    assert_int_equal(fleet_ring_ack(r, FLEET_REC_WINDOW, 4, NULL), NW_OK);
    assert_int_equal(fleet_ring_ack(r, FLEET_REC_EVENT, 2, NULL), NW_OK);
    fleet_ring_get_stats(r, &st);
    assert_int_equal(st.records, 0);
    assert_int_equal(st.bytes, 0);
    assert_int_equal(st.dropped[FLEET_REC_WINDOW] + st.dropped[FLEET_REC_EVENT], 0);
    fleet_ring_destroy(&r);
}

static void ring_rewind_redelivers_in_order(void **state)
{
    (void)state;
    struct fleet_ring *r = fleet_ring_new(FLEET_RING_MIN);
    for (uint64_t s = 1; s <= 10; s++) {
        put(r, FLEET_REC_WINDOW, s, 150);
    }
    for (uint64_t s = 1; s <= 6; s++) {
        expect(r, FLEET_REC_WINDOW, s);
    }
    assert_int_equal(fleet_ring_ack(r, FLEET_REC_WINDOW, 2, NULL), NW_OK);
    fleet_ring_rewind(r);
    for (uint64_t s = 3; s <= 10; s++) {
        expect(r, FLEET_REC_WINDOW, s);
    }
    /* new records after a rewind follow the old ones */
    fleet_ring_rewind(r);
    expect(r, FLEET_REC_WINDOW, 3);
    put(r, FLEET_REC_WINDOW, 11, 150);
    for (uint64_t s = 4; s <= 11; s++) {
        expect(r, FLEET_REC_WINDOW, s);
    }
    struct fleet_rec rec;
    assert_false(fleet_ring_peek(r, &rec));
    fleet_ring_destroy(&r);
}

static void ring_overflow_drops_oldest_and_counts_exactly(void **state)
{
    (void)state;
    struct fleet_ring *r = fleet_ring_new(FLEET_RING_MIN);
    const size_t len = 100; /* 16 + 104 = 120 bytes a record: 34 fit in 4096 */
    const size_t fit = FLEET_RING_MIN / FLEET_RING_RECORD_SIZE(len);
    for (uint64_t s = 1; s <= 1000; s++) {
        put(r, FLEET_REC_WINDOW, s, len);
        if (s == 20) {
            for (uint64_t k = 1; k <= 5; k++) {
                expect(r, FLEET_REC_WINDOW, k); /* a cursor in the middle */
            }
        }
    }
    struct fleet_store_stats st;
    fleet_ring_get_stats(r, &st);
    assert_true(st.bytes <= st.cap);
    assert_int_equal(st.records + st.dropped[FLEET_REC_WINDOW], 1000);
    assert_true(st.records >= fit - 1 && st.records <= fit);
    /* the newest survive, in order, intact; the cursor fell back to the oldest */
    uint64_t first = 1000 - st.records + 1;
    for (uint64_t s = first; s <= 1000; s++) {
        expect(r, FLEET_REC_WINDOW, s);
    }
    /* acked records are never counted as dropped */
    assert_int_equal(fleet_ring_ack(r, FLEET_REC_WINDOW, 990, NULL), NW_OK);
    uint64_t dropped_before = st.dropped[FLEET_REC_WINDOW];
    for (uint64_t s = 1001; s <= 1010; s++) {
        put(r, FLEET_REC_WINDOW, s, len);
    }
    fleet_ring_get_stats(r, &st);
    assert_int_equal(st.dropped[FLEET_REC_WINDOW], dropped_before);
    assert_int_equal(st.records, 20);
    fleet_ring_destroy(&r);
}

/* Random appends of random sizes, acks, takes and rewinds against a model:
 * every appended record is acked, dropped or held, exactly once; held ones
 * are a suffix of what was appended, in order and intact. */
static void ring_random_against_model(void **state)
{
    (void)state;
    struct fleet_ring *r = fleet_ring_new(6000);
    uint64_t next[2] = {1, 1}, rng = 12345;
    for (int step = 0; step < 200000; step++) {
        rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
        unsigned op = (unsigned)(rng >> 33) % 100;
        enum fleet_rec_type t = (rng >> 20) & 1 ? FLEET_REC_EVENT : FLEET_REC_WINDOW;
        if (op < 60) {
            put(r, t, next[t]++, (size_t)((rng >> 40) % 700));
        } else if (op < 80) {
            struct fleet_rec rec;
            if (fleet_ring_peek(r, &rec)) {
                assert_true(intact(&rec));
                fleet_ring_take(r);
            }
        } else if (op < 83) {
            fleet_ring_rewind(r);
        } else {
            struct fleet_store_stats st;
            fleet_ring_get_stats(r, &st);
            uint64_t upto = st.acked_seq[t] + (rng >> 45) % 8;
            if (upto > next[t] - 1) {
                upto = next[t] - 1;
            }
            assert_int_equal(fleet_ring_ack(r, t, upto, NULL), NW_OK);
        }
        if (step % 1000 == 999) {
            struct fleet_store_stats st;
            fleet_ring_get_stats(r, &st);
            assert_true(st.bytes <= st.cap);
            uint64_t held[2] = {0, 0}, unacked[2], stalled[2];
            uint64_t prev[2] = {0, 0};
            fleet_ring_rewind(r);
            struct fleet_rec rec;
            for (size_t i = 0; i < st.records && fleet_ring_peek(r, &rec); i++) {
                assert_true(intact(&rec));
                assert_true(rec.seq > prev[rec.type]);
                prev[rec.type] = rec.seq;
                held[rec.type]++;
                fleet_ring_take(r);
            }
            assert_false(fleet_ring_peek(r, &rec));
            fleet_ring_unacked(r, unacked, stalled);
            for (int k = 0; k < 2; k++) {
                assert_int_equal(unacked[k], held[k]);
                /* held records of a type are the newest of that type */
                if (held[k]) {
                    assert_int_equal(prev[k], next[k] - 1);
                }
                /* unacked held + dropped + acked (+ acked not yet trimmed) = made */
                uint64_t total = st.acked[k] + st.dropped[k] + held[k];
                assert_true(total <= next[k] - 1);
                assert_true(st.acked_seq[k] + held[k] + st.dropped[k] >= next[k] - 1);
            }
        }
    }
    fleet_ring_destroy(&r);
}

static void ring_floor_and_stall(void **state)
{
    (void)state;
    struct fleet_ring *r = fleet_ring_new(8192);
    assert_int_equal(fleet_ring_floor(r, FLEET_REC_WINDOW), 0);
    put(r, FLEET_REC_EVENT, 1, 10);
    for (uint64_t s = 1; s <= 5; s++) {
        put(r, FLEET_REC_WINDOW, s, 10);
    }
    for (uint64_t s = 7; s <= 9; s++) { /* 6 never made: a data_gap hole */
        put(r, FLEET_REC_WINDOW, s, 10);
    }
    assert_int_equal(fleet_ring_floor(r, FLEET_REC_WINDOW), 1);
    assert_int_equal(fleet_ring_floor(r, FLEET_REC_EVENT), 1);
    uint64_t un[2], st[2];
    fleet_ring_unacked(r, un, st);
    assert_int_equal(un[FLEET_REC_WINDOW], 8);
    assert_int_equal(st[FLEET_REC_WINDOW], 0);
    /* the collector reached the hole: what is left is behind it */
    assert_int_equal(fleet_ring_ack(r, FLEET_REC_WINDOW, 5, NULL), NW_OK);
    assert_int_equal(fleet_ring_floor(r, FLEET_REC_WINDOW), 7);
    fleet_ring_unacked(r, un, st);
    assert_int_equal(un[FLEET_REC_WINDOW], 3);
    assert_int_equal(st[FLEET_REC_WINDOW], 3);
    assert_int_equal(un[FLEET_REC_EVENT], 1);
    assert_int_equal(st[FLEET_REC_EVENT], 0);
    /* a collector honouring the floor acks past it */
    assert_int_equal(fleet_ring_ack(r, FLEET_REC_WINDOW, 9, NULL), NW_OK);
    assert_int_equal(fleet_ring_ack(r, FLEET_REC_EVENT, 1, NULL), NW_OK);
    fleet_ring_unacked(r, un, st);
    assert_int_equal(un[0] + un[1] + st[0] + st[1], 0);
    assert_int_equal(fleet_ring_floor(r, FLEET_REC_WINDOW), 0);
    fleet_ring_destroy(&r);
}

/* ---- record store: the same properties on disk ----------------------------- */

/* A scratch directory per test, removed with everything in it. */
static char *scratch(void)
{
    const char *tmp = getenv("TMPDIR");
    char buf[512];
    snprintf(buf, sizeof(buf), "%s/nw-fleet-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(buf));
    char *dir = strdup(buf);
    assert_non_null(dir);
    return dir;
}

static void rm_tree(const char *path)
{
    DIR *dp = opendir(path);
    if (dp) {
        for (struct dirent *e = readdir(dp); e; e = readdir(dp)) {
            if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
                char child[1024];
                snprintf(child, sizeof(child), "%s/%s", path, e->d_name);
                rm_tree(child);
            }
        }
        closedir(dp);
        assert_int_equal(rmdir(path), 0);
    } else {
        assert_int_equal(unlink(path), 0);
    }
}

static void scratch_remove(char **dir)
{
    rm_tree(*dir);
    free(*dir);
    *dir = NULL;
}

/* A disk store in DIR/q of cap bytes. */
static struct fleet_store *disk(const char *dir, size_t cap)
{
    char q[600];
    snprintf(q, sizeof(q), "%s/q", dir);
    struct fleet_store *s = NULL;
    struct nw_error err = {0};
    enum nw_err rc = fleet_store_disk_open(q, cap, NW_DQ_SYNC_NEVER, &s, &err);
    if (rc != NW_OK) {
        fail_msg("disk store: %s", err.msg);
    }
    assert_true(fleet_store_is_disk(s));
    return s;
}

static void sput(struct fleet_store *s, enum fleet_rec_type type, uint64_t seq, size_t len)
{
    uint8_t buf[FLEET_RECORD_MAX];
    fill(buf, len, type, seq);
    assert_int_equal(fleet_store_append(s, type, seq, buf, len, NULL), NW_OK);
}

static void sexpect(struct fleet_store *s, enum fleet_rec_type type, uint64_t seq)
{
    struct fleet_rec rec;
    assert_true(fleet_store_peek(s, &rec));
    assert_int_equal(rec.type, type);
    assert_int_equal(rec.seq, seq);
    assert_true(intact(&rec));
    fleet_store_take(s);
}

static void disk_appends_and_hands_out_in_order(void **state)
{
    (void)state;
    char *dir = scratch();
    struct fleet_store *s = disk(dir, 8192);
    struct fleet_rec rec;
    assert_false(fleet_store_peek(s, &rec));
    sput(s, FLEET_REC_EVENT, 1, 40);
    for (uint64_t k = 1; k <= 5; k++) {
        sput(s, FLEET_REC_WINDOW, k, 100 + k);
    }
    sput(s, FLEET_REC_EVENT, 2, 0); /* empty payloads are records too */
    /* peek does not move: the same record until it is taken */
    assert_true(fleet_store_peek(s, &rec));
    assert_true(fleet_store_peek(s, &rec));
    assert_int_equal(rec.seq, 1);
    sexpect(s, FLEET_REC_EVENT, 1);
    for (uint64_t k = 1; k <= 5; k++) {
        sexpect(s, FLEET_REC_WINDOW, k);
    }
    sexpect(s, FLEET_REC_EVENT, 2);
    assert_false(fleet_store_peek(s, &rec));
    struct fleet_store_stats st;
    fleet_store_get_stats(s, &st);
    assert_int_equal(st.records, 7);
    assert_int_equal(st.cap, 8192);
    assert_true(st.bytes > 0 && st.bytes <= 8192);
    assert_int_equal(st.last_seq[FLEET_REC_WINDOW], 5);
    assert_int_equal(st.last_seq[FLEET_REC_EVENT], 2);
    /* seqs only go up; records above FLEET_RECORD_MAX never fit */
    uint8_t big[FLEET_RECORD_MAX + 1] = {0};
    assert_int_equal(fleet_store_append(s, FLEET_REC_WINDOW, 5, big, 10, NULL), NW_ERR_INVAL);
    assert_int_equal(fleet_store_append(s, FLEET_REC_WINDOW, 9, big, sizeof(big), NULL),
                     NW_ERR_TOO_BIG);
    assert_int_equal(fleet_store_append(s, 7, 9, big, 1, NULL), NW_ERR_INVAL);
    fleet_store_get_stats(s, &st);
    assert_int_equal(st.records, 7);
    /* appends after the cursor reached the end come next */
    sput(s, FLEET_REC_WINDOW, 6, 10);
    sexpect(s, FLEET_REC_WINDOW, 6);
    fleet_store_destroy(&s);
    assert_null(s);
    fleet_store_destroy(&s); /* NULL-safe */
    scratch_remove(&dir);
}

static void disk_acks_trim_and_skip(void **state)
{
    (void)state;
    char *dir = scratch();
    struct fleet_store *s = disk(dir, 8192);
    sput(s, FLEET_REC_EVENT, 1, 30);
    for (uint64_t k = 1; k <= 4; k++) {
        sput(s, FLEET_REC_WINDOW, k, 80);
    }
    sput(s, FLEET_REC_EVENT, 2, 30);
    struct fleet_store_stats st;
    /* on disk an ack counts at once, even behind an older unacked record */
    assert_int_equal(fleet_store_ack(s, FLEET_REC_WINDOW, 3, NULL), NW_OK);
    fleet_store_get_stats(s, &st);
    assert_int_equal(st.records, 3); /* event 1, window 4, event 2 */
    assert_int_equal(st.acked_seq[FLEET_REC_WINDOW], 3);
    assert_int_equal(st.acked[FLEET_REC_WINDOW], 3);
    /* acked records are never handed out again */
    sexpect(s, FLEET_REC_EVENT, 1);
    sexpect(s, FLEET_REC_WINDOW, 4);
    sexpect(s, FLEET_REC_EVENT, 2);
    fleet_store_rewind(s);
    sexpect(s, FLEET_REC_EVENT, 1);
    /* an ack of the peeked record: the look-ahead is not handed out */
    struct fleet_rec rec;
    assert_true(fleet_store_peek(s, &rec));
    assert_int_equal(rec.seq, 4);
    assert_int_equal(fleet_store_ack(s, FLEET_REC_WINDOW, 4, NULL), NW_OK);
    sexpect(s, FLEET_REC_EVENT, 2);
    assert_int_equal(fleet_store_ack(s, FLEET_REC_EVENT, 1, NULL), NW_OK);
    fleet_store_get_stats(s, &st);
    assert_int_equal(st.records, 1);
    assert_int_equal(st.acked[FLEET_REC_WINDOW], 4);
    assert_int_equal(st.acked[FLEET_REC_EVENT], 1);
    /* an old ack changes nothing, one beyond what was made is refused */
    assert_int_equal(fleet_store_ack(s, FLEET_REC_WINDOW, 2, NULL), NW_OK);
    struct nw_error err = {0};
    assert_int_equal(fleet_store_ack(s, FLEET_REC_WINDOW, 5, &err), NW_ERR_INVALID);
    assert_non_null(strstr(err.msg, "beyond"));
    assert_int_equal(fleet_store_ack(s, 9, 1, NULL), NW_ERR_INVAL);
    fleet_store_get_stats(s, &st);
    assert_int_equal(st.acked_seq[FLEET_REC_WINDOW], 4);
    assert_int_equal(fleet_store_ack(s, FLEET_REC_EVENT, 2, NULL), NW_OK);
    fleet_store_get_stats(s, &st);
    assert_int_equal(st.records, 0);
    assert_int_equal(st.dropped[FLEET_REC_WINDOW] + st.dropped[FLEET_REC_EVENT], 0);
    fleet_store_rewind(s);
    assert_false(fleet_store_peek(s, &rec));
    fleet_store_destroy(&s);
    scratch_remove(&dir);
}

static void disk_rewind_redelivers_in_order(void **state)
{
    (void)state;
    char *dir = scratch();
    struct fleet_store *s = disk(dir, FLEET_RING_MIN);
    for (uint64_t k = 1; k <= 10; k++) {
        sput(s, FLEET_REC_WINDOW, k, 150);
    }
    for (uint64_t k = 1; k <= 6; k++) {
        sexpect(s, FLEET_REC_WINDOW, k);
    }
    assert_int_equal(fleet_store_ack(s, FLEET_REC_WINDOW, 2, NULL), NW_OK);
    fleet_store_rewind(s);
    for (uint64_t k = 3; k <= 10; k++) {
        sexpect(s, FLEET_REC_WINDOW, k);
    }
    /* new records after a rewind follow the old ones */
    fleet_store_rewind(s);
    sexpect(s, FLEET_REC_WINDOW, 3);
    sput(s, FLEET_REC_WINDOW, 11, 150);
    for (uint64_t k = 4; k <= 11; k++) {
        sexpect(s, FLEET_REC_WINDOW, k);
    }
    struct fleet_rec rec;
    assert_false(fleet_store_peek(s, &rec));
    fleet_store_destroy(&s);
    scratch_remove(&dir);
}

static void disk_overflow_drops_oldest_and_counts_exactly(void **state)
{
    (void)state;
    char *dir = scratch();
    const size_t cap = 16 * 1024, len = 100;
    struct fleet_store *s = disk(dir, cap);
    for (uint64_t k = 1; k <= 1000; k++) {
        sput(s, FLEET_REC_WINDOW, k, len);
        if (k == 20) {
            for (uint64_t j = 1; j <= 5; j++) {
                sexpect(s, FLEET_REC_WINDOW, j); /* a cursor in the middle */
            }
        }
        struct fleet_store_stats st;
        fleet_store_get_stats(s, &st);
        assert_true(st.bytes <= cap);
    }
    struct fleet_store_stats st;
    fleet_store_get_stats(s, &st);
    assert_int_equal(st.records + st.dropped[FLEET_REC_WINDOW], 1000);
    assert_int_equal(st.dropped_total[FLEET_REC_WINDOW], st.dropped[FLEET_REC_WINDOW]);
    /* segments of 4 KiB (32 records): at least three full ones stay */
    assert_true(st.records >= 3 * 32 && st.records < cap / (len + NW_DQ_RECORD_OVERHEAD));
    /* the newest survive, in order, intact; the floor is the oldest held */
    uint64_t first = 1000 - st.records + 1;
    assert_int_equal(fleet_store_floor(s, FLEET_REC_WINDOW), first);
    fleet_store_rewind(s);
    for (uint64_t k = first; k <= 1000; k++) {
        sexpect(s, FLEET_REC_WINDOW, k);
    }
    uint64_t un[2], stalled[2];
    fleet_store_unacked(s, un, stalled);
    assert_int_equal(un[FLEET_REC_WINDOW], st.records);
    assert_int_equal(stalled[FLEET_REC_WINDOW], st.records); /* window 1 .. first-1 are gone */
    /* acked records are never counted as dropped */
    assert_int_equal(fleet_store_ack(s, FLEET_REC_WINDOW, 990, NULL), NW_OK);
    uint64_t dropped_before = st.dropped[FLEET_REC_WINDOW];
    for (uint64_t k = 1001; k <= 1040; k++) {
        sput(s, FLEET_REC_WINDOW, k, len);
    }
    fleet_store_get_stats(s, &st);
    assert_int_equal(st.dropped[FLEET_REC_WINDOW], dropped_before);
    assert_int_equal(st.records, 50);
    /* the drops survive a restart in the queue's own counter */
    fleet_store_destroy(&s);
    s = disk(dir, cap);
    fleet_store_get_stats(s, &st);
    assert_int_equal(st.dropped[FLEET_REC_WINDOW], 0); /* since open */
    assert_int_equal(st.dropped_total[FLEET_REC_WINDOW], dropped_before);
    assert_int_equal(st.records, 50);
    fleet_store_destroy(&s);
    scratch_remove(&dir);
}

static void disk_floor_and_stall(void **state)
{
    (void)state;
    char *dir = scratch();
    struct fleet_store *s = disk(dir, 8192);
    assert_int_equal(fleet_store_floor(s, FLEET_REC_WINDOW), 0);
    sput(s, FLEET_REC_EVENT, 1, 10);
    for (uint64_t k = 1; k <= 5; k++) {
        sput(s, FLEET_REC_WINDOW, k, 10);
    }
    for (uint64_t k = 7; k <= 9; k++) { /* 6 never made: a data_gap hole */
        sput(s, FLEET_REC_WINDOW, k, 10);
    }
    assert_int_equal(fleet_store_floor(s, FLEET_REC_WINDOW), 1);
    assert_int_equal(fleet_store_floor(s, FLEET_REC_EVENT), 1);
    uint64_t un[2], st[2];
    fleet_store_unacked(s, un, st);
    assert_int_equal(un[FLEET_REC_WINDOW], 8);
    assert_int_equal(st[FLEET_REC_WINDOW], 0);
    assert_int_equal(fleet_store_ack(s, FLEET_REC_WINDOW, 5, NULL), NW_OK);
    assert_int_equal(fleet_store_floor(s, FLEET_REC_WINDOW), 7);
    fleet_store_unacked(s, un, st);
    assert_int_equal(un[FLEET_REC_WINDOW], 3);
    assert_int_equal(st[FLEET_REC_WINDOW], 3);
    assert_int_equal(un[FLEET_REC_EVENT], 1);
    assert_int_equal(st[FLEET_REC_EVENT], 0);
    /* the hole is known again after a restart (one read at open) */
    fleet_store_destroy(&s);
    s = disk(dir, 8192);
    assert_int_equal(fleet_store_floor(s, FLEET_REC_WINDOW), 7);
    fleet_store_unacked(s, un, st);
    assert_int_equal(un[FLEET_REC_WINDOW], 3);
    assert_int_equal(st[FLEET_REC_WINDOW], 3);
    assert_int_equal(fleet_store_ack(s, FLEET_REC_WINDOW, 9, NULL), NW_OK);
    assert_int_equal(fleet_store_ack(s, FLEET_REC_EVENT, 1, NULL), NW_OK);
    fleet_store_unacked(s, un, st);
    assert_int_equal(un[0] + un[1] + st[0] + st[1], 0);
    assert_int_equal(fleet_store_floor(s, FLEET_REC_WINDOW), 0);
    fleet_store_destroy(&s);
    scratch_remove(&dir);
}

/* The random walk of ring_random_against_model, against either store:
 * every appended record is acked, dropped or held, exactly once; held ones
 * are the newest of their type, in order and intact. */
static void random_walk(struct fleet_store *s, int steps, size_t max_len)
{
    uint64_t next[2] = {1, 1}, rng = 12345;
    for (int step = 0; step < steps; step++) {
        rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
        unsigned op = (unsigned)(rng >> 33) % 100;
        enum fleet_rec_type t = (rng >> 20) & 1 ? FLEET_REC_EVENT : FLEET_REC_WINDOW;
        if (op < 60) {
            sput(s, t, next[t]++, (size_t)((rng >> 40) % max_len));
        } else if (op < 80) {
            struct fleet_rec rec;
            if (fleet_store_peek(s, &rec)) {
                assert_true(intact(&rec));
                fleet_store_take(s);
            }
        } else if (op < 83) {
            fleet_store_rewind(s);
        } else {
            struct fleet_store_stats st;
            fleet_store_get_stats(s, &st);
            uint64_t upto = st.acked_seq[t] + (rng >> 45) % 8;
            upto = upto > next[t] - 1 ? next[t] - 1 : upto;
            assert_int_equal(fleet_store_ack(s, t, upto, NULL), NW_OK);
        }
        if (step % 500 == 499) {
            struct fleet_store_stats st;
            fleet_store_get_stats(s, &st);
            assert_true(st.bytes <= st.cap);
            uint64_t held[2] = {0, 0}, prev[2] = {0, 0}, unacked[2], stalled[2];
            fleet_store_rewind(s);
            struct fleet_rec rec;
            while (fleet_store_peek(s, &rec)) {
                assert_true(intact(&rec));
                assert_true(rec.seq > prev[rec.type]);
                assert_true(rec.seq > st.acked_seq[rec.type]);
                prev[rec.type] = rec.seq;
                held[rec.type]++;
                fleet_store_take(s);
            }
            fleet_store_unacked(s, unacked, stalled);
            for (int k = 0; k < 2; k++) {
                assert_int_equal(unacked[k], held[k]);
                if (held[k]) {
                    assert_int_equal(prev[k], next[k] - 1);
                    assert_int_equal(fleet_store_floor(s, k), prev[k] - held[k] + 1);
                }
                uint64_t total = st.acked[k] + st.dropped[k] + held[k];
                if (fleet_store_is_disk(s)) {
                    assert_int_equal(total, next[k] - 1); /* counted at the ack */
                } else {
                    assert_true(total <= next[k] - 1);
                }
                assert_true(st.acked_seq[k] + held[k] + st.dropped[k] >= next[k] - 1);
            }
        }
    }
}

static void stores_random_against_model(void **state)
{
    (void)state;
    struct fleet_store *m = fleet_store_memory_new(6000);
    assert_non_null(m);
    assert_false(fleet_store_is_disk(m));
    random_walk(m, 100000, 700);
    fleet_store_destroy(&m);
    char *dir = scratch();
    struct fleet_store *d = disk(dir, 6000);
    random_walk(d, 20000, 700);
    fleet_store_destroy(&d);
    scratch_remove(&dir);
}

static size_t open_fds(void)
{
    size_t n = 0;
    DIR *dp = opendir("/proc/self/fd");
    assert_non_null(dp);
    for (struct dirent *e = readdir(dp); e; e = readdir(dp)) {
        n += e->d_name[0] != '.';
    }
    closedir(dp);
    return n;
}

/* What needlewatch-sim budgets per device in disk mode is what it holds. */
static void disk_store_descriptors(void **state)
{
    (void)state;
    char *dir = scratch();
    size_t before = open_fds();
    struct fleet_store *s = disk(dir, 16384);
    sput(s, FLEET_REC_WINDOW, 1, 50); /* the segment writer */
    struct fleet_rec rec;
    assert_true(fleet_store_peek(s, &rec)); /* the reader */
    /* roll segments, drop the oldest, read on: never more than budgeted */
    for (uint64_t k = 2; k <= 400; k++) {
        sput(s, FLEET_REC_WINDOW, k, 50);
        fleet_store_take(s);
        fleet_store_peek(s, &rec);
        fleet_store_tick(s);
        assert_true(open_fds() <= before + FLEET_DISK_FDS_PER_DEVICE);
    }
    assert_int_equal(open_fds(), before + FLEET_DISK_FDS_PER_DEVICE);
    fleet_store_destroy(&s);
    assert_int_equal(open_fds(), before);
    scratch_remove(&dir);
}

/* kill -9 in the middle: a child appends and acks, then _exit()s without
 * closing. While it lives, its queue is locked; afterwards every record
 * survives (acks younger than the queue's state interval may not), and
 * seqs go on after the last one. */
static void disk_survives_a_crash(void **state)
{
    (void)state;
    char *dir = scratch();
    int ready[2], go[2];
    assert_int_equal(pipe(ready), 0);
    assert_int_equal(pipe(go), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct fleet_store *s = disk(dir, 16384);
        for (uint64_t k = 1; k <= 50; k++) {
            sput(s, FLEET_REC_WINDOW, k, 60);
        }
        for (uint64_t k = 1; k <= 3; k++) {
            sput(s, FLEET_REC_EVENT, k, 20);
        }
        fleet_store_ack(s, FLEET_REC_WINDOW, 20, NULL);
        char c = 'r';
        if (write(ready[1], &c, 1) != 1 || read(go[0], &c, 1) != 1) {
            _exit(1);
        }
        _exit(0); /* no close, no flush */
    }
    char c;
    assert_int_equal(read(ready[0], &c, 1), 1);
    char q[600];
    snprintf(q, sizeof(q), "%s/q", dir);
    struct fleet_store *s = NULL;
    struct nw_error err = {0};
    assert_int_equal(fleet_store_disk_open(q, 16384, NW_DQ_SYNC_NEVER, &s, &err), NW_ERR_IO);
    assert_non_null(strstr(err.msg, "in use"));
    assert_int_equal(write(go[1], "g", 1), 1);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(ready[0]), close(ready[1]), close(go[0]), close(go[1]);

    s = disk(dir, 16384);
    struct fleet_store_stats st;
    fleet_store_get_stats(s, &st);
    assert_int_equal(st.last_seq[FLEET_REC_WINDOW], 50);
    assert_int_equal(st.last_seq[FLEET_REC_EVENT], 3);
    uint64_t un[2];
    fleet_store_unacked(s, un, NULL);
    assert_true(un[FLEET_REC_WINDOW] >= 30 && un[FLEET_REC_WINDOW] <= 50);
    assert_int_equal(un[FLEET_REC_EVENT], 3);
    uint64_t w = 50 - un[FLEET_REC_WINDOW], e = 0;
    struct fleet_rec rec;
    while (fleet_store_peek(s, &rec)) {
        assert_true(intact(&rec));
        assert_int_equal(rec.seq, rec.type == FLEET_REC_WINDOW ? ++w : ++e);
        fleet_store_take(s);
    }
    assert_int_equal(w, 50);
    assert_int_equal(e, 3);
    assert_int_equal(fleet_store_append(s, FLEET_REC_WINDOW, 50, "x", 1, NULL), NW_ERR_INVAL);
    sput(s, FLEET_REC_WINDOW, 51, 60);
    fleet_store_destroy(&s);
    scratch_remove(&dir);
}

/* ---- virtual clock --------------------------------------------------------- */

static void clock_starts_in_the_past_and_ends_now(void **state)
{
    (void)state;
    struct fleet_clock c;
    const int64_t mono = 5000;
    assert_int_equal(fleet_clock_init(&c, T0, mono, 8000, 20, 1000, NULL), NW_OK);
    assert_true(c.factor > 19.999 && c.factor < 20.001);
    assert_int_equal(c.virt_end_ms, T0 + 8000);
    assert_int_equal(c.virt0_ms, T0 + 8000 - 160000);
    assert_int_equal(fleet_clock_virtual(&c, mono), c.virt0_ms);
    assert_int_equal(fleet_clock_virtual(&c, mono - 100), c.virt0_ms);
    assert_int_equal(fleet_clock_virtual(&c, mono + 4000), c.virt0_ms + 80000);
    assert_int_equal(fleet_clock_virtual(&c, mono + 8000), T0 + 8000);
    assert_int_equal(fleet_clock_virtual(&c, mono + 60000), T0 + 8000);
    for (int64_t e = 0; e <= 8000; e += 7) {
        int64_t v = fleet_clock_virtual(&c, mono + e);
        assert_true(v <= T0 + e); /* never in the future */
        assert_true(v >= fleet_clock_virtual(&c, mono + e - 7));
    }
    assert_int_equal(fleet_clock_to_wall_ms(&c, 20000), 1000);
    assert_int_equal(fleet_clock_to_wall_ms(&c, -5), 0);

    /* 100 ms windows, 50 per second: x5 */
    assert_int_equal(fleet_clock_init(&c, T0, 0, 10000, 50, 100, NULL), NW_OK);
    assert_int_equal(c.virt0_ms, T0 + 10000 - 50000);

    /* slower than real time: starts now, never ahead */
    assert_int_equal(fleet_clock_init(&c, T0, mono, 10000, 0.5, 1000, NULL), NW_OK);
    assert_int_equal(c.virt0_ms, T0);
    assert_int_equal(fleet_clock_virtual(&c, mono + 10000), T0 + 5000);
    assert_int_equal(fleet_clock_to_wall_ms(&c, 1000), 2000);
}

static void clock_refuses_bad_rates(void **state)
{
    (void)state;
    struct fleet_clock c;
    struct nw_error err = {0};
    assert_int_equal(fleet_clock_init(&c, T0, 0, 1000, 0, 1000, &err), NW_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "--rate"));
    assert_int_equal(fleet_clock_init(&c, T0, 0, 1000, -1, 1000, &err), NW_ERR_CONFIG);
    assert_int_equal(fleet_clock_init(&c, T0, 0, 0, 1, 1000, &err), NW_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "--duration"));
    /* a day at x1000 would start years ago: beyond what collectors accept */
    assert_int_equal(fleet_clock_init(&c, T0, 0, 86400000, 1000, 1000, &err), NW_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "30 days"));
    /* 29 days back is fine */
    assert_int_equal(fleet_clock_init(&c, T0, 0, 3600000, 29 * 24 + 1, 1000, NULL), NW_OK);
}

/* ---- configuration, names, faults ------------------------------------------ */

static void ids_are_deterministic(void **state)
{
    (void)state;
    struct fleet_config cfg;
    fleet_config_init(&cfg);
    cfg.ndevices = 20;
    char id[NW_DEVICE_ID_MAX + 1];
    assert_int_equal(fleet_device_id(&cfg, 1, id), NW_OK);
    assert_string_equal(id, "SIM-0001");
    assert_int_equal(fleet_device_id(&cfg, 20, id), NW_OK);
    assert_string_equal(id, "SIM-0020");
    assert_int_equal(fleet_device_number(&cfg, "SIM-0020"), 20);
    assert_int_equal(fleet_device_number(&cfg, "SIM-0021"), 0);
    assert_int_equal(fleet_device_number(&cfg, "SIM-0000"), 0);
    assert_int_equal(fleet_device_number(&cfg, "SIM-1"), 0);
    assert_int_equal(fleet_device_number(&cfg, "SIM-00001"), 0);
    assert_int_equal(fleet_device_number(&cfg, "DG-0001"), 0);
    cfg.ndevices = 12345;
    snprintf(cfg.id_prefix, sizeof(cfg.id_prefix), "clinicA_");
    assert_int_equal(fleet_device_id(&cfg, 7, id), NW_OK);
    assert_string_equal(id, "clinicA_00007");
    assert_int_equal(fleet_device_number(&cfg, "clinicA_12345"), 12345);
    assert_int_equal(fleet_config_check(&cfg, NULL), NW_OK);
    struct nw_error err = {0};
    snprintf(cfg.id_prefix, sizeof(cfg.id_prefix), "bad/prefix");
    assert_int_equal(fleet_config_check(&cfg, &err), NW_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "--id-prefix"));
    fleet_config_init(&cfg);
    cfg.ndevices = 0;
    assert_int_equal(fleet_config_check(&cfg, &err), NW_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "--devices"));
    fleet_config_init(&cfg);
    cfg.buffer_bytes = 100;
    assert_int_equal(fleet_config_check(&cfg, &err), NW_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "--buffer"));
}

static void clinics_and_models_are_deterministic(void **state)
{
    (void)state;
    struct fleet_config a, b;
    fleet_config_init(&a);
    fleet_config_init(&b);
    a.seed = b.seed = 42;
    a.ndevices = b.ndevices = 1000;
    a.nclinics = b.nclinics = 100;
    char na[NW_CLINIC_MAX + 1], nb[NW_CLINIC_MAX + 1];
    char names[100][NW_CLINIC_MAX + 1];
    for (unsigned c = 0; c < 100; c++) {
        fleet_clinic_name(&a, c, na);
        fleet_clinic_name(&b, c, nb);
        assert_string_equal(na, nb);
        assert_true(nw_valid_text(na, NW_CLINIC_MAX));
        for (unsigned k = 0; k < c; k++) {
            assert_string_not_equal(na, names[k]); /* unique */
        }
        memcpy(names[c], na, sizeof(na));
    }
    assert_non_null(strchr(names[0], ',')); /* even one clinic needs quoting */
    unsigned per_clinic[100] = {0}, x = 0;
    for (unsigned n = 1; n <= 1000; n++) {
        assert_int_equal(fleet_clinic_of(&a, n), fleet_clinic_of(&b, n));
        assert_string_equal(fleet_model_of(&a, n), fleet_model_of(&b, n));
        per_clinic[fleet_clinic_of(&a, n)]++;
        x += strcmp(fleet_model_of(&a, n), "DG-3X") == 0;
    }
    for (unsigned c = 0; c < 100; c++) {
        assert_true(per_clinic[c] >= 1);
    }
    assert_true(x > 100 && x < 300); /* DG-3 most, DG-3X about one in five */
    /* another seed, another fleet */
    b.seed = 43;
    unsigned differ = 0;
    for (unsigned c = 0; c < 10; c++) {
        fleet_clinic_name(&a, c, na);
        fleet_clinic_name(&b, c, nb);
        differ += strcmp(na, nb) != 0;
    }
    assert_true(differ > 0);
}

static void faults_name_existing_devices(void **state)
{
    (void)state;
    struct fleet_config cfg;
    fleet_config_init(&cfg);
    cfg.ndevices = 20;
    struct nw_error err = {0};
    assert_int_equal(fleet_config_add_fault(&cfg, "needle_rate_out_of_spec@SIM-0004:30s:1m", &err),
                     NW_OK);
    assert_int_equal(fleet_config_add_fault(&cfg, "data_gap@SIM-0007:40s", &err), NW_OK);
    assert_int_equal(fleet_config_add_fault(&cfg, "unknown_device@SIM-0015", &err), NW_OK);
    assert_int_equal(cfg.nfaults, 3);
    assert_int_equal(cfg.faults[0].device, 4);
    assert_int_equal(cfg.faults[0].fault.start_ms, 30000);
    assert_int_equal(cfg.faults[0].fault.len_ms, 60000);
    assert_true(fleet_config_has_fault(&cfg, 7, AGENT_FAULT_DATA_GAP));
    assert_false(fleet_config_has_fault(&cfg, 7, AGENT_FAULT_UNKNOWN_DEVICE));
    /* a device that does not exist is an error naming it */
    assert_int_equal(fleet_config_add_fault(&cfg, "data_gap@SIM-0021", &err), NW_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "SIM-0021"));
    assert_non_null(strstr(err.msg, "SIM-0001..SIM-0020"));
    assert_int_equal(fleet_config_add_fault(&cfg, "data_gap@DG-1", &err), NW_ERR_CONFIG);
    assert_int_equal(fleet_config_add_fault(&cfg, "no_such_rule@SIM-0001", &err), NW_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "no_such_rule"));
    assert_int_equal(fleet_config_add_fault(&cfg, "data_gap@SIM-0001:soon", &err), NW_ERR_CONFIG);
    assert_int_equal(cfg.nfaults, 3);
    /* at most AGENT_SIM_MAX_FAULTS on one device */
    for (int i = 0; i < AGENT_SIM_MAX_FAULTS; i++) {
        assert_int_equal(fleet_config_add_fault(&cfg, "pigment_overuse@SIM-0002", &err), NW_OK);
    }
    assert_int_equal(fleet_config_add_fault(&cfg, "pigment_overuse@SIM-0002", &err), NW_ERR_CONFIG);
}

static void csv_fields_and_inventory(void **state)
{
    (void)state;
    char out[300];
    assert_int_equal(fleet_csv_field("plain", out, sizeof(out)), 5);
    assert_string_equal(out, "plain");
    fleet_csv_field("Clínica São Paulo, Unit 2", out, sizeof(out));
    assert_string_equal(out, "\"Clínica São Paulo, Unit 2\"");
    fleet_csv_field("Scalp Art \"Nord\"", out, sizeof(out));
    assert_string_equal(out, "\"Scalp Art \"\"Nord\"\"\"");
    fleet_csv_field(" padded", out, sizeof(out));
    assert_string_equal(out, "\" padded\"");
    assert_int_equal(fleet_csv_field("a,b", out, 4), 0);
    assert_string_equal(out, "");

    struct fleet_config cfg;
    fleet_config_init(&cfg);
    cfg.ndevices = 30;
    cfg.nclinics = 24; /* every base name, so quotes and commas appear */
    assert_int_equal(fleet_config_add_fault(&cfg, "unknown_device@SIM-0015", NULL), NW_OK);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    assert_int_equal(fleet_inventory_write(&cfg, f, NULL), NW_OK);
    fclose(f);
    assert_true(strncmp(buf, "device,clinic,model\n", 20) == 0);
    assert_null(strstr(buf, "SIM-0015"));
    assert_non_null(strstr(buf, "SIM-0014,"));
    assert_non_null(strstr(buf, "SIM-0030,"));
    assert_non_null(strstr(buf, "\"\"Nord\"\""));
    unsigned lines = 0;
    for (char *p = buf; *p; p++) {
        lines += *p == '\n';
    }
    assert_int_equal(lines, 1 + 29);
    free(buf);
}

/* ---- one device ------------------------------------------------------------ */

static struct nw_codec *codec(void)
{
    struct nw_limits lim;
    nw_limits_default(&lim);
    struct nw_codec *c = nw_codec_new(&lim);
    assert_non_null(c);
    return c;
}

/* Takes every message and decodes the window seqs (and floors) of it. */
static size_t drain_windows(struct fleet_device *d, struct fleet_batcher *b, struct nw_codec *c,
                            uint64_t *seqs, size_t cap, size_t *out_msgs)
{
    static struct nw_window w[256];
    static struct nw_event e[256];
    size_t n = 0, msgs = 0;
    struct fleet_message m;
    while (fleet_device_next_message(d, b, &m, NULL) == NW_OK) {
        msgs++;
        fleet_device_sent(d, &m);
        if (m.kind == NW_TOPIC_EVENT) {
            struct nw_event_batch eb = {.events = e, .capacity = 256};
            assert_int_equal(nw_codec_decode_events(c, m.payload, m.len, &eb, NULL, NULL), NW_OK);
            assert_int_equal(eb.count, m.records);
            continue;
        }
        struct nw_window_batch wb = {.windows = w, .capacity = 256};
        assert_int_equal(nw_codec_decode_windows(c, m.payload, m.len, &wb, NULL, NULL), NW_OK);
        assert_int_equal(wb.count, m.records);
        assert_string_equal(wb.device_id, fleet_device_name(d));
        assert_int_equal(wb.epoch, fleet_device_epoch(d));
        assert_true(wb.queue_floor >= 1 && wb.queue_floor <= w[0].seq);
        for (size_t i = 0; i < wb.count && n < cap; i++) {
            seqs[n++] = w[i].seq;
        }
    }
    *out_msgs = msgs;
    return n;
}

static void device_numbers_windows_gap_free(void **state)
{
    (void)state;
    struct fleet_config cfg;
    fleet_config_init(&cfg);
    cfg.ndevices = 3;
    cfg.buffer_bytes = 1 << 20;
    struct nw_codec *c = codec();
    struct fleet_batcher *b = fleet_batcher_new(c, 256);
    const int64_t v0 = T0 - 3600000;
    struct fleet_device *d = fleet_device_new(&cfg, 2, v0, 99);
    struct fleet_device *twin = fleet_device_new(&cfg, 2, v0, 99);
    assert_non_null(d);
    assert_string_equal(fleet_device_name(d), "SIM-0002");
    assert_int_equal(fleet_device_index(d), 2);
    assert_int_equal(fleet_device_epoch(d), fleet_device_epoch(twin));
    struct fleet_device *other_run = fleet_device_new(&cfg, 2, v0, 100);
    assert_int_not_equal(fleet_device_epoch(d), fleet_device_epoch(other_run));
    fleet_device_destroy(&other_run);
    assert_null(fleet_device_new(&cfg, 4, v0, 99));

    /* 10 virtual minutes, in ticks of 5 s */
    for (int64_t t = v0; t <= v0 + 600000; t += 5000) {
        fleet_device_advance(d, t, T0, c, 4096);
        fleet_device_advance(twin, t, T0, c, 4096);
    }
    struct fleet_device_stats st, st2;
    fleet_device_get_stats(d, &st);
    fleet_device_get_stats(twin, &st2);
    assert_true(st.windows_made >= 590 && st.windows_made <= 601); /* in session all along */
    assert_int_equal(st.windows_made, st2.windows_made);
    assert_int_equal(st.rejected, 0);
    assert_int_equal(st.events_made, 4); /* power on, session start, cartridge, pigment */
    assert_int_equal(st.last_window_seq, st.windows_made);
    assert_int_equal(st.last_event_seq, 4);

    static uint64_t seqs[1024];
    size_t msgs = 0;
    size_t n = drain_windows(d, b, c, seqs, 1024, &msgs);
    assert_int_equal(n, st.windows_made);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(seqs[i], i + 1);
    }
    assert_true(msgs <= 6); /* a backlog goes out in batches of up to 256 */
    /* and byte for byte the same as its twin's */
    struct fleet_message m1, m2;
    fleet_device_rewind(d);
    assert_int_equal(fleet_device_next_message(d, b, &m1, NULL), NW_OK);
    uint8_t copy[4096];
    size_t l1 = m1.len < sizeof(copy) ? m1.len : sizeof(copy);
    memcpy(copy, m1.payload, l1);
    assert_int_equal(fleet_device_next_message(twin, b, &m2, NULL), NW_OK);
    assert_int_equal(m2.len, m1.len);
    assert_memory_equal(copy, m2.payload, l1);

    /* status */
    struct nw_status s;
    fleet_device_status(d, NW_DEVICE_ONLINE, v0 + 600000, 30, &s);
    assert_string_equal(s.device_id, "SIM-0002");
    assert_int_equal(s.state, NW_DEVICE_ONLINE);
    assert_int_equal(s.last_window_seq, st.windows_made);
    assert_int_equal(s.uptime_s, 600);
    assert_true(s.running_s > 20 * 3600 && s.running_s < FLEET_SERVICE_INTERVAL_S);
    assert_true(strcmp(s.model, "DG-3") == 0 || strcmp(s.model, "DG-3X") == 0);
    struct nw_limits lim;
    nw_limits_default(&lim);
    assert_int_equal(nw_validate_status(&s, &lim, T0, NULL, NULL), NW_OK);

    fleet_device_destroy(&d);
    fleet_device_destroy(&twin);
    fleet_batcher_destroy(&b);
    nw_codec_destroy(&c);
}

/* The single-record fast path appends field 4 to a stored one-entry batch:
 * that must be exactly what the codec makes of the batch with its floor. */
static void codec_floor_is_an_appended_field(void **state)
{
    (void)state;
    struct nw_codec *c = codec();
    struct nw_window w = {.seq = 77,
                          .start_ms = T0,
                          .duration_ms = 1000,
                          .running_ms = 1000,
                          .cycles = 120,
                          .rate_mean_hz = 120.1234,
                          .rate_min_hz = 119.5,
                          .rate_max_hz = 121.25,
                          .depth_mean_mm = 0.37,
                          .depth_min_mm = 0.36,
                          .depth_max_mm = 0.38,
                          .pigment_ul = 0.144};
    snprintf(w.session_id, sizeof(w.session_id), "s-0123456789abcdef");
    snprintf(w.cartridge_id, sizeof(w.cartridge_id), "CRT-0123456789ab");
    snprintf(w.pigment_lot, sizeof(w.pigment_lot), "PL-0007");
    struct nw_window_batch wb = {.device_id = "SIM-0001",
                                 .epoch = 0x1234567890abcdefULL,
                                 .count = 1,
                                 .capacity = 1,
                                 .windows = &w};
    uint8_t plain[1024], floored[1024];
    size_t lp = 0, lf = 0;
    const uint64_t floors[] = {1, 76, 127, 128, 300000, 1ULL << 40};
    for (size_t i = 0; i < sizeof(floors) / sizeof(floors[0]); i++) {
        wb.queue_floor = 0;
        assert_int_equal(nw_codec_encode_windows(c, &wb, plain, sizeof(plain), &lp, NULL), NW_OK);
        wb.queue_floor = floors[i];
        assert_int_equal(nw_codec_encode_windows(c, &wb, floored, sizeof(floored), &lf, NULL),
                         NW_OK);
        assert_true(lf > lp + 1);
        assert_memory_equal(plain, floored, lp);
        assert_int_equal(floored[lp], 0x20); /* field 4, varint */
        uint64_t v = 0;
        for (size_t k = lp + 1, shift = 0; k < lf; k++, shift += 7) {
            v |= (uint64_t)(floored[k] & 0x7f) << shift;
        }
        assert_int_equal(v, floors[i]);
    }
    struct nw_event e = {.seq = 3, .time_ms = T0, .kind = NW_EVENT_POWER_ON};
    snprintf(e.firmware, sizeof(e.firmware), "sim-1");
    struct nw_event_batch eb = {
        .device_id = "SIM-0001", .epoch = 9, .count = 1, .capacity = 1, .events = &e};
    assert_int_equal(nw_codec_encode_events(c, &eb, plain, sizeof(plain), &lp, NULL), NW_OK);
    eb.queue_floor = 3;
    assert_int_equal(nw_codec_encode_events(c, &eb, floored, sizeof(floored), &lf, NULL), NW_OK);
    assert_int_equal(lf, lp + 2);
    assert_memory_equal(plain, floored, lp);
    assert_int_equal(floored[lp], 0x20);
    assert_int_equal(floored[lp + 1], 3);
    nw_codec_destroy(&c);
}

/* At steady state a device sends one window per message, with its floor. */
static void device_steady_state_sends_single_windows(void **state)
{
    (void)state;
    struct fleet_config cfg;
    fleet_config_init(&cfg);
    struct nw_codec *c = codec();
    struct fleet_batcher *b = fleet_batcher_new(c, 256);
    const int64_t v0 = T0 - 600000;
    struct fleet_device *d = fleet_device_new(&cfg, 1, v0, 1);
    size_t msgs = 0;
    static uint64_t seqs[64];
    int64_t t = v0;
    fleet_device_advance(d, t, T0, c, 4096);
    drain_windows(d, b, c, seqs, 64, &msgs); /* the power-on events */
    size_t singles = 0;
    uint64_t expect_seq = 1;
    for (int i = 0; i < 30; i++) {
        t += 1000;
        fleet_device_advance(d, t, T0, c, 4096);
        struct fleet_message m;
        while (fleet_device_next_message(d, b, &m, NULL) == NW_OK) {
            assert_int_equal(m.kind, NW_TOPIC_TELEMETRY);
            static struct nw_window w[8];
            struct nw_window_batch wb = {.windows = w, .capacity = 8};
            assert_int_equal(nw_codec_decode_windows(c, m.payload, m.len, &wb, NULL, NULL), NW_OK);
            assert_int_equal(wb.count, m.records);
            assert_int_equal(w[0].seq, expect_seq);
            assert_int_equal(wb.queue_floor, 1); /* nothing acked yet */
            expect_seq += wb.count;
            singles += m.records == 1;
            fleet_device_sent(d, &m);
        }
        /* the collector acks everything so far */
        struct fleet_device_stats st;
        fleet_device_get_stats(d, &st);
        struct nw_ack ack = {
            .epoch = fleet_device_epoch(d), .window_seq = 0, .event_seq = st.last_event_seq};
        snprintf(ack.device_id, sizeof(ack.device_id), "%s", fleet_device_name(d));
        assert_int_equal(fleet_device_on_ack(d, &ack, i, NULL), NW_OK);
    }
    assert_true(singles >= 25);
    fleet_device_destroy(&d);
    fleet_batcher_destroy(&b);
    nw_codec_destroy(&c);
}

/* queue_dir NULL: in memory; else on disk there. */
static void acks_timeouts_and_gaps(const char *queue_dir)
{
    struct fleet_config cfg;
    fleet_config_init(&cfg);
    cfg.ndevices = 8;
    cfg.buffer_bytes = 1 << 20;
    if (queue_dir) {
        snprintf(cfg.queue_dir, sizeof(cfg.queue_dir), "%s", queue_dir);
    }
    assert_int_equal(fleet_config_add_fault(&cfg, "data_gap@SIM-0003:20s", NULL), NW_OK);
    assert_int_equal(fleet_config_add_fault(&cfg, "device_offline@SIM-0003:40s:10s", NULL), NW_OK);
    struct nw_codec *c = codec();
    struct fleet_batcher *b = fleet_batcher_new(c, 256);
    const int64_t v0 = T0 - 600000;
    struct fleet_device *d = fleet_device_new(&cfg, 3, v0, 5);
    assert_false(fleet_device_offline_at(d, v0 + 39999));
    assert_true(fleet_device_offline_at(d, v0 + 40000));
    assert_true(fleet_device_offline_at(d, v0 + 49999));
    assert_false(fleet_device_offline_at(d, v0 + 50000));

    fleet_device_advance(d, v0 + 60000, T0, c, 100000);
    struct fleet_device_stats st;
    fleet_device_get_stats(d, &st);
    assert_int_equal(st.windows_skipped, 1);
    assert_int_equal(st.last_window_seq, st.windows_made + 1);
    static uint64_t seqs[256];
    size_t msgs = 0;
    size_t n = drain_windows(d, b, c, seqs, 256, &msgs);
    uint64_t hole = 0;
    for (size_t i = 0; i < n; i++) {
        if (seqs[i] != i + 1 + (hole ? 1 : 0)) {
            assert_int_equal(hole, 0);
            hole = i + 1;
            assert_int_equal(seqs[i], hole + 1);
        }
    }
    assert_true(hole >= 20 && hole <= 22); /* the window made at virtual +20 s */

    /* acks: another epoch is ignored; the right one trims */
    struct nw_ack ack = {.epoch = fleet_device_epoch(d) ^ 1, .window_seq = 3, .event_seq = 1};
    snprintf(ack.device_id, sizeof(ack.device_id), "SIM-0003");
    assert_int_equal(fleet_device_on_ack(d, &ack, 1000, NULL), NW_ERR_INVALID);
    ack.epoch = fleet_device_epoch(d);
    ack.window_seq = hole - 1;
    ack.event_seq = st.last_event_seq;
    assert_int_equal(fleet_device_on_ack(d, &ack, 1000, NULL), NW_OK);
    uint64_t un = 0, stalled = 0;
    fleet_device_unacked(d, &un, &stalled);
    assert_int_equal(un, n - (hole - 1));
    assert_int_equal(stalled, un); /* all behind the hole */
    /* the next message tells the collector it can pass the hole */
    fleet_device_rewind(d);
    struct fleet_message m;
    assert_int_equal(fleet_device_next_message(d, b, &m, NULL), NW_OK);
    static struct nw_window w[256];
    struct nw_window_batch wb = {.windows = w, .capacity = 256};
    assert_int_equal(nw_codec_decode_windows(c, m.payload, m.len, &wb, NULL, NULL), NW_OK);
    assert_int_equal(wb.queue_floor, hole + 1);
    assert_int_equal(w[0].seq, hole + 1);

    /* no progress for the ack timeout while connected: rewind */
    assert_false(fleet_device_check_timeout(d, 20000, true, 30000));
    assert_false(fleet_device_check_timeout(d, 40000, false, 30000));
    assert_true(fleet_device_check_timeout(d, 40000, true, 30000));
    fleet_device_get_stats(d, &st);
    assert_int_equal(st.resends, 1);
    assert_int_equal(st.acks, 1);
    assert_int_equal(st.acks_ignored, 1);
    assert_int_equal(fleet_device_next_message(d, b, &m, NULL), NW_OK);
    assert_int_equal(m.records, un); /* everything unacked goes again */
    /* an ack past the hole empties the ring; no more timeouts */
    ack.window_seq = st.last_window_seq;
    assert_int_equal(fleet_device_on_ack(d, &ack, 50000, NULL), NW_OK);
    fleet_device_unacked(d, &un, &stalled);
    assert_int_equal(un, 0);
    assert_false(fleet_device_check_timeout(d, 900000, true, 30000));

    fleet_device_destroy(&d);
    fleet_batcher_destroy(&b);
    nw_codec_destroy(&c);
}

static void device_acks_timeouts_and_gaps(void **state)
{
    (void)state;
    acks_timeouts_and_gaps(NULL);
}

static void device_acks_timeouts_and_gaps_on_disk(void **state)
{
    (void)state;
    char *dir = scratch();
    acks_timeouts_and_gaps(dir);
    scratch_remove(&dir);
}

static void bounded_and_drops_counted(const char *queue_dir)
{
    struct fleet_config cfg;
    fleet_config_init(&cfg); /* 16 KiB store */
    cfg.ndevices = 2;
    if (queue_dir) {
        snprintf(cfg.queue_dir, sizeof(cfg.queue_dir), "%s", queue_dir);
    }
    assert_int_equal(fleet_config_add_fault(&cfg, "maintenance_due@SIM-0002:60s", NULL), NW_OK);
    struct nw_codec *c = codec();
    const int64_t v0 = T0 - 7200000;
    struct fleet_device *d = fleet_device_new(&cfg, 2, v0, 5);
    struct nw_status s;
    fleet_device_status(d, NW_DEVICE_ONLINE, v0, 30, &s);
    /* START (60 s) of the model's needle time below the interval */
    assert_true(s.running_s < FLEET_SERVICE_INTERVAL_S &&
                s.running_s >= FLEET_SERVICE_INTERVAL_S - 60);
    /* two hours without a single ack */
    for (int64_t t = v0; t <= T0; t += 10000) {
        fleet_device_advance(d, t, T0, c, 4096);
    }
    struct fleet_device_stats st;
    fleet_device_get_stats(d, &st);
    assert_true(st.queued_bytes <= 16 * 1024);
    assert_true(st.windows_dropped > 0);
    uint64_t un = 0;
    fleet_device_unacked(d, &un, NULL);
    assert_int_equal(un, st.queued_records);
    assert_int_equal(st.windows_dropped + st.events_dropped + st.queued_records,
                     st.windows_made + st.events_made);
    fleet_device_status(d, NW_DEVICE_ONLINE, T0, 30, &s);
    assert_int_equal(s.windows_dropped, st.windows_dropped);
    assert_true(s.running_s > FLEET_SERVICE_INTERVAL_S); /* crossed during the run */
    fleet_device_destroy(&d);
    nw_codec_destroy(&c);
}

static void device_memory_is_bounded_and_drops_counted(void **state)
{
    (void)state;
    bounded_and_drops_counted(NULL);
}

static void device_disk_is_bounded_and_drops_counted(void **state)
{
    (void)state;
    char *dir = scratch();
    bounded_and_drops_counted(dir);
    scratch_remove(&dir);
}

/* Runs a device from virtual v0 to v1 in 5 s ticks. */
static void run_device(struct fleet_device *d, struct nw_codec *c, int64_t v0, int64_t v1)
{
    for (int64_t t = v0; t <= v1; t += 5000) {
        fleet_device_advance(d, t, T0, c, 100000);
    }
}

/* Every message of d decoded: windows into w (seq order as sent), events'
 * seqs and boot reasons into e. */
struct sent {
    struct nw_window w[2048];
    size_t nw;
    struct nw_event e[64];
    size_t ne;
    uint64_t epoch;
};

static void take_all(struct fleet_device *d, struct fleet_batcher *b, struct nw_codec *c,
                     struct sent *out)
{
    static struct nw_window w[256];
    static struct nw_event e[256];
    struct fleet_message m;
    memset(out, 0, sizeof(*out));
    while (fleet_device_next_message(d, b, &m, NULL) == NW_OK) {
        fleet_device_sent(d, &m);
        if (m.kind == NW_TOPIC_EVENT) {
            struct nw_event_batch eb = {.events = e, .capacity = 256};
            assert_int_equal(nw_codec_decode_events(c, m.payload, m.len, &eb, NULL, NULL), NW_OK);
            out->epoch = eb.epoch;
            for (size_t i = 0; i < eb.count && out->ne < 64; i++) {
                out->e[out->ne++] = e[i];
            }
            continue;
        }
        struct nw_window_batch wb = {.windows = w, .capacity = 256};
        assert_int_equal(nw_codec_decode_windows(c, m.payload, m.len, &wb, NULL, NULL), NW_OK);
        out->epoch = wb.epoch;
        for (size_t i = 0; i < wb.count && out->nw < 2048; i++) {
            out->w[out->nw++] = w[i];
        }
    }
}

static void ack_upto(struct fleet_device *d, uint64_t window_seq, uint64_t event_seq)
{
    struct nw_ack ack = {
        .epoch = fleet_device_epoch(d), .window_seq = window_seq, .event_seq = event_seq};
    snprintf(ack.device_id, sizeof(ack.device_id), "%s", fleet_device_name(d));
    assert_int_equal(fleet_device_on_ack(d, &ack, 0, NULL), NW_OK);
}

/* A clean stop and a start with the same queue dir: same epoch, unacked
 * records first, seqs and time go on where they stopped, odometer kept. */
static void device_resumes_from_queue_dir(void **state)
{
    (void)state;
    char *dir = scratch();
    struct fleet_config cfg;
    fleet_config_init(&cfg);
    cfg.ndevices = 3;
    cfg.buffer_bytes = 1 << 20;
    snprintf(cfg.queue_dir, sizeof(cfg.queue_dir), "%s", dir);
    struct nw_codec *c = codec();
    struct fleet_batcher *b = fleet_batcher_new(c, 256);
    static struct sent s1, s2;
    const int64_t v0 = T0 - 3600000;

    struct fleet_device *d = fleet_device_new(&cfg, 2, v0, 1);
    assert_non_null(d);
    assert_false(fleet_device_resumed(d));
    uint64_t epoch = fleet_device_epoch(d);
    run_device(d, c, v0, v0 + 300000);
    take_all(d, b, c, &s1);
    assert_true(s1.nw > 250);
    assert_int_equal(s1.epoch, epoch);
    ack_upto(d, 100, s1.e[s1.ne - 1].seq);
    struct fleet_device_stats st1;
    fleet_device_get_stats(d, &st1);
    struct nw_status status1;
    fleet_device_status(d, NW_DEVICE_ONLINE, v0 + 300000, 30, &status1);
    int64_t end1 = s1.w[s1.nw - 1].start_ms + s1.w[s1.nw - 1].duration_ms;
    fleet_device_destroy(&d);

    /* the next run's clock starts in the past again, with another salt */
    d = fleet_device_new(&cfg, 2, v0 + 60000, 2);
    assert_non_null(d);
    assert_true(fleet_device_resumed(d));
    assert_int_equal(fleet_device_epoch(d), epoch);
    assert_int_equal(fleet_device_start_ms(d), end1); /* a clean stop: no gap */
    uint64_t un = 0;
    fleet_device_unacked(d, &un, NULL);
    assert_int_equal(un, st1.last_window_seq - 100);
    struct nw_status status2;
    fleet_device_status(d, NW_DEVICE_ONLINE, end1, 30, &status2);
    assert_int_equal(status2.odometer_cycles, status1.odometer_cycles);
    assert_int_equal(status2.last_window_seq, st1.last_window_seq);
    run_device(d, c, v0 + 60000, v0 + 600000);
    take_all(d, b, c, &s2);
    assert_int_equal(s2.epoch, epoch);
    /* first what the collector never acknowledged, then the new windows */
    assert_true(s2.nw > st1.last_window_seq - 100 + 250);
    for (size_t i = 0; i < s2.nw; i++) {
        assert_int_equal(s2.w[i].seq, 101 + i);
        if (i > 0) {
            assert_true(s2.w[i].start_ms >= s2.w[i - 1].start_ms + s2.w[i - 1].duration_ms);
        }
    }
    assert_int_equal(s2.w[st1.last_window_seq - 100].start_ms, end1);
    assert_int_equal(s2.e[0].seq, st1.last_event_seq + 1);
    assert_int_equal(s2.e[0].kind, NW_EVENT_POWER_ON);
    assert_string_equal(s2.e[0].boot_reason, "restart");
    assert_int_equal(s2.e[0].time_ms, end1);
    fleet_device_destroy(&d);
    fleet_batcher_destroy(&b);
    nw_codec_destroy(&c);
    scratch_remove(&dir);
}

/* kill -9: the child runs a device and _exit()s; the restarted device goes
 * on after the child's last seq, never stamps a window before the child's
 * last one ended, and skips at most the time lease. */
static void device_resumes_after_a_crash(void **state)
{
    (void)state;
    char *dir = scratch();
    struct fleet_config cfg;
    fleet_config_init(&cfg);
    cfg.ndevices = 1;
    cfg.buffer_bytes = 1 << 20;
    snprintf(cfg.queue_dir, sizeof(cfg.queue_dir), "%s", dir);
    const int64_t v0 = T0 - 3600000;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct nw_codec *c = codec();
        struct fleet_device *d = fleet_device_new(&cfg, 1, v0, 1);
        uint64_t report[3] = {0};
        for (int64_t t = v0; t <= v0 + 123000; t += 1000) {
            fleet_device_advance(d, t, T0, c, 100000);
        }
        struct fleet_device_stats st;
        fleet_device_get_stats(d, &st);
        report[0] = fleet_device_epoch(d);
        report[1] = st.last_window_seq;
        report[2] = st.last_event_seq;
        if (write(fds[1], report, sizeof(report)) != (ssize_t)sizeof(report)) {
            _exit(1);
        }
        _exit(0); /* no destroy: the lease, not the clean stop, must hold */
    }
    uint64_t report[3];
    assert_int_equal(read(fds[0], report, sizeof(report)), (ssize_t)sizeof(report));
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(fds[0]), close(fds[1]);

    struct nw_codec *c = codec();
    struct fleet_batcher *b = fleet_batcher_new(c, 256);
    static struct sent s;
    struct fleet_device *d = fleet_device_new(&cfg, 1, v0 + 5000, 9);
    assert_non_null(d);
    assert_int_equal(fleet_device_epoch(d), report[0]);
    take_all(d, b, c, &s); /* everything the child made, nothing acked */
    assert_int_equal(s.nw, report[1]);
    assert_int_equal(s.ne, report[2]);
    int64_t end = s.w[s.nw - 1].start_ms + s.w[s.nw - 1].duration_ms;
    int64_t start = fleet_device_start_ms(d);
    assert_true(start >= end);
    assert_true(start <= end + (int64_t)FLEET_TIME_LEASE_WINDOWS * cfg.window_ms);
    run_device(d, c, v0 + 5000, v0 + 400000);
    take_all(d, b, c, &s);
    assert_true(s.nw > 100);
    assert_int_equal(s.w[0].seq, report[1] + 1);
    assert_true(s.w[0].start_ms >= start);
    assert_int_equal(s.e[0].seq, report[2] + 1);
    fleet_device_destroy(&d);
    fleet_batcher_destroy(&b);
    nw_codec_destroy(&c);
    scratch_remove(&dir);
}

static size_t read_file(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    return n;
}

static void copy_file(const char *from, const char *to)
{
    char buf[1024];
    FILE *f = fopen(from, "rb");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    f = fopen(to, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, n, f), n);
    fclose(f);
}

/* A device's directory is its identity: damage or a mix-up is an error,
 * never a silent new epoch; and one process at a time. */
static void device_refuses_a_foreign_or_damaged_state(void **state)
{
    (void)state;
    char *dir = scratch();
    struct fleet_config cfg;
    fleet_config_init(&cfg);
    cfg.ndevices = 3;
    snprintf(cfg.queue_dir, sizeof(cfg.queue_dir), "%s", dir);
    struct nw_codec *c = codec();
    struct fleet_device *d1 = fleet_device_new(&cfg, 1, T0 - 60000, 1);
    struct fleet_device *d2 = fleet_device_new(&cfg, 2, T0 - 60000, 1);
    assert_non_null(d1);
    run_device(d1, c, T0 - 60000, T0);
    struct fleet_device *again = NULL;
    struct nw_error err = {0};
    assert_int_equal(fleet_device_open(&cfg, 1, T0, 2, &again, &err), NW_ERR_IO);
    assert_null(again);
    fleet_device_destroy(&d1);
    fleet_device_destroy(&d2);

    char p1[700], p2[700];
    snprintf(p1, sizeof(p1), "%s/SIM-0001/sim.state", dir);
    snprintf(p2, sizeof(p2), "%s/SIM-0002/sim.state", dir);
    copy_file(p1, p2); /* SIM-0001's identity in SIM-0002's place */
    char before[1024], after[1024];
    size_t nb = read_file(p2, before, sizeof(before));
    for (int i = 0; i < 2; i++) { /* refused, and left as it was for a person to look at */
        assert_int_equal(fleet_device_open(&cfg, 2, T0, 2, &again, &err), NW_ERR_CONFIG);
        assert_non_null(strstr(err.msg, "another device"));
        assert_int_equal(read_file(p2, after, sizeof(after)), nb);
        assert_memory_equal(before, after, nb);
    }
    FILE *f = fopen(p1, "r+b");
    assert_non_null(f);
    fseek(f, 40, SEEK_SET);
    fputc('#', f);
    fclose(f);
    nb = read_file(p1, before, sizeof(before));
    for (int i = 0; i < 2; i++) {
        assert_int_equal(fleet_device_open(&cfg, 1, T0, 2, &again, &err), NW_ERR_CORRUPT);
        assert_non_null(strstr(err.msg, "damaged"));
        assert_int_equal(read_file(p1, after, sizeof(after)), nb);
        assert_memory_equal(before, after, nb);
    }
    assert_int_equal(remove(p1), 0); /* records queued, identity gone */
    assert_int_equal(fleet_device_open(&cfg, 1, T0, 2, &again, &err), NW_ERR_CORRUPT);
    assert_non_null(strstr(err.msg, "no sim.state"));
    assert_null(again);
    /* a queue dir that does not exist is an error, not a tree made somewhere */
    snprintf(cfg.queue_dir, sizeof(cfg.queue_dir), "%s/missing", dir);
    assert_int_not_equal(fleet_device_open(&cfg, 3, T0, 2, &again, &err), NW_OK);
    nw_codec_destroy(&c);
    scratch_remove(&dir);
}

/* ---- faults that hold for LEN, then clear ---------------------------------- */

/* A collector in a test: what it received, and what it acks (the highest
 * contiguous window seq, or past seqs below the batch's queue_floor). */
struct fake_collector {
    bool seen[4096];
    uint64_t acked, top_event;
    int64_t held_sent_at; /* virtual time the held window first arrived */
    struct nw_window held;
    uint64_t max_floor_before; /* highest floor seen before the held window arrived */
};

static void collector_take(struct fleet_device *d, struct fleet_batcher *b, struct nw_codec *c,
                           struct fake_collector *fc, uint64_t held_seq, int64_t virt)
{
    static struct nw_window w[256];
    static struct nw_event e[256];
    struct fleet_message m;
    while (fleet_device_next_message(d, b, &m, NULL) == NW_OK) {
        fleet_device_sent(d, &m);
        if (m.kind == NW_TOPIC_EVENT) {
            struct nw_event_batch eb = {.events = e, .capacity = 256};
            assert_int_equal(nw_codec_decode_events(c, m.payload, m.len, &eb, NULL, NULL), NW_OK);
            fc->top_event = e[eb.count - 1].seq;
            continue;
        }
        struct nw_window_batch wb = {.windows = w, .capacity = 256};
        assert_int_equal(nw_codec_decode_windows(c, m.payload, m.len, &wb, NULL, NULL), NW_OK);
        for (size_t i = 0; i < wb.count; i++) {
            assert_true(w[i].seq < 4096);
            if (w[i].seq == held_seq && fc->held_sent_at < 0) {
                fc->held_sent_at = virt;
                fc->held = w[i];
            }
            fc->seen[w[i].seq] = true;
        }
        if (fc->held_sent_at < 0 && wb.queue_floor > fc->max_floor_before) {
            fc->max_floor_before = wb.queue_floor;
        }
        if (wb.queue_floor > fc->acked + 1) {
            fc->acked = wb.queue_floor - 1; /* the device no longer holds those */
        }
    }
    while (fc->acked + 1 < 4096 && fc->seen[fc->acked + 1]) {
        fc->acked++;
    }
    ack_upto(d, fc->acked, fc->top_event);
}

/*
 * data_gap with LEN: the first window at or after START is kept in the
 * store but not sent until START+LEN; meanwhile every batch's queue_floor
 * stays at or below it, so a collector acking by floor never passes it;
 * then it arrives with its original seq and start time, the collector's
 * contiguous ack moves past it and nothing is left. The device's 16 KiB
 * buffer grows to hold LEN of windows: nothing dropped.
 */
static void data_gap_holds_a_window_for_len(void **state)
{
    (void)state;
    struct fleet_config cfg;
    fleet_config_init(&cfg); /* 16 KiB buffer */
    cfg.ndevices = 3;
    assert_int_equal(fleet_config_add_fault(&cfg, "data_gap@SIM-0002:30s:11m", NULL), NW_OK);
    struct nw_codec *c = codec();
    struct fleet_batcher *b = fleet_batcher_new(c, 256);
    const int64_t v0 = T0 - 3600000, start = 30000, len = 660000;
    struct fleet_device *d = fleet_device_new(&cfg, 2, v0, 5);
    static struct fake_collector fc;
    memset(&fc, 0, sizeof(fc));
    fc.held_sent_at = -1;
    uint64_t held_seq = 0;
    for (int64_t t = v0; t <= v0 + 15 * 60000; t += 1000) {
        fleet_device_advance(d, t, T0, c, 100000);
        collector_take(d, b, c, &fc, held_seq, t);
        if (!held_seq && t - v0 >= start + 3000) {
            /* the held one: the first window starting at or after START */
            held_seq = fc.acked + 1;
            assert_false(fc.seen[held_seq]);
            assert_true(fc.seen[held_seq + 1]);
        }
        if (held_seq && t - v0 < start + len) {
            assert_int_equal(fc.acked, held_seq - 1); /* never declared lost */
        }
    }
    assert_true(held_seq >= 29 && held_seq <= 32);
    assert_true(fc.max_floor_before >= 1 && fc.max_floor_before <= held_seq);
    assert_true(fc.held_sent_at >= v0 + start + len && fc.held_sent_at < v0 + start + len + 1000);
    assert_int_equal(fc.held.seq, held_seq);
    assert_true(fc.held.start_ms >= v0 + start && fc.held.start_ms < v0 + start + 1000);
    struct fleet_device_stats st;
    fleet_device_get_stats(d, &st);
    assert_int_equal(st.windows_held, 1);
    assert_int_equal(st.windows_skipped, 0);
    assert_int_equal(st.windows_dropped + st.events_dropped, 0);
    assert_int_equal(fc.acked, st.last_window_seq); /* gap-free, all acked */
    uint64_t un = 0;
    fleet_device_unacked(d, &un, NULL);
    assert_int_equal(un, 0);
    fleet_device_destroy(&d);

    /* a run that ends before START+LEN lets the window go at its end */
    d = fleet_device_new(&cfg, 2, v0, 5);
    memset(&fc, 0, sizeof(fc));
    fc.held_sent_at = -1;
    fleet_device_advance(d, v0 + 120000, T0, c, 100000);
    collector_take(d, b, c, &fc, 0, v0 + 120000);
    held_seq = fc.acked + 1;
    assert_false(fc.seen[held_seq]);
    fleet_device_flush(d, T0, c);
    collector_take(d, b, c, &fc, held_seq, v0 + 120000);
    assert_int_equal(fc.held.seq, held_seq);
    fleet_device_get_stats(d, &st);
    assert_int_equal(fc.acked, st.last_window_seq);
    fleet_device_destroy(&d);
    fleet_batcher_destroy(&b);
    nw_codec_destroy(&c);
}

/*
 * maintenance_due: the service hours reach the interval exactly with the
 * windows that start before START (the model's needle time before START
 * is computed ahead) and exceed it from the first running window after;
 * a maintenance event (service, resets_service) at START+LEN; the status
 * odometer (running_s, a lifetime count) goes on: hours since service are
 * the windows' running_ms after the event.
 */
static void maintenance_due_crosses_at_start_and_resets_at_len(void **state)
{
    (void)state;
    struct fleet_config cfg;
    fleet_config_init(&cfg);
    cfg.ndevices = 2;
    cfg.buffer_bytes = 1 << 20;
    assert_int_equal(fleet_config_add_fault(&cfg, "maintenance_due@SIM-0001:2m:3m", NULL), NW_OK);
    struct nw_codec *c = codec();
    struct fleet_batcher *b = fleet_batcher_new(c, 256);
    const int64_t v0 = T0 - 3600000, start = 120000, len = 180000;
    struct fleet_device *d = fleet_device_new(&cfg, 1, v0, 5);
    struct nw_status s0, s1;
    fleet_device_status(d, NW_DEVICE_ONLINE, v0, 30, &s0);
    run_device(d, c, v0, v0 + 8 * 60000);
    fleet_device_flush(d, T0, c);
    static struct sent got;
    take_all(d, b, c, &got);
    fleet_device_status(d, NW_DEVICE_ONLINE, v0 + 8 * 60000, 30, &s1);
    uint64_t before = 0, all = 0, after_event = 0;
    int64_t crossed_at = -1;
    const uint64_t interval = (uint64_t)FLEET_SERVICE_INTERVAL_S * 1000;
    for (size_t i = 0; i < got.nw; i++) {
        all += got.w[i].running_ms;
        if (got.w[i].start_ms < v0 + start) {
            before += got.w[i].running_ms;
        } else if (crossed_at < 0 && got.w[i].running_ms > 0) {
            crossed_at = got.w[i].start_ms - v0;
        }
        if (got.w[i].start_ms >= v0 + start + len) {
            after_event += got.w[i].running_ms;
        }
    }
    /* base + before == interval: the status at v0 says base (in seconds) */
    uint64_t base = interval - before;
    assert_int_equal(s0.running_s, base / 1000);
    assert_true(before > 0 && before <= (uint64_t)start);
    assert_true(crossed_at >= start && crossed_at < start + 60000);
    assert_int_equal(s1.running_s, (base + all) / 1000); /* lifetime: not reset */
    assert_true(after_event > 0);
    size_t maint = 0;
    for (size_t i = 0; i < got.ne; i++) {
        if (got.e[i].kind == NW_EVENT_MAINTENANCE) {
            maint++;
            assert_int_equal(got.e[i].time_ms, v0 + start + len);
            assert_true(got.e[i].resets_service);
            assert_string_equal(got.e[i].action, "service");
        }
    }
    assert_int_equal(maint, 1);
    fleet_device_destroy(&d);
    fleet_batcher_destroy(&b);
    nw_codec_destroy(&c);
}

/* device_offline: LEN of windows unacked fit the device's store. */
static void offline_device_store_holds_len(void **state)
{
    (void)state;
    struct fleet_config cfg;
    fleet_config_init(&cfg); /* 16 KiB */
    cfg.ndevices = 2;
    assert_int_equal(fleet_config_add_fault(&cfg, "device_offline@SIM-0002:1m:20m", NULL), NW_OK);
    struct nw_codec *c = codec();
    const int64_t v0 = T0 - 3600000;
    struct fleet_device *on = fleet_device_new(&cfg, 1, v0, 5);
    struct fleet_device *off = fleet_device_new(&cfg, 2, v0, 5);
    assert_true(fleet_device_offline_at(off, v0 + 60000));
    assert_true(fleet_device_offline_at(off, v0 + 21 * 60000 - 1));
    assert_false(fleet_device_offline_at(off, v0 + 21 * 60000));
    /* 21 minutes without an ack: the faulted device drops nothing */
    for (int64_t t = v0; t <= v0 + 21 * 60000; t += 5000) {
        fleet_device_advance(on, t, T0, c, 100000);
        fleet_device_advance(off, t, T0, c, 100000);
    }
    struct fleet_device_stats st;
    fleet_device_get_stats(off, &st);
    assert_int_equal(st.windows_dropped + st.events_dropped, 0);
    assert_true(st.queued_records >= 1200);
    fleet_device_get_stats(on, &st);
    assert_true(st.windows_dropped > 0); /* the plain 16 KiB store does not */
    fleet_device_destroy(&on);
    fleet_device_destroy(&off);
    nw_codec_destroy(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ring_appends_and_hands_out_in_order),
        cmocka_unit_test(ring_acks_trim_and_skip),
        cmocka_unit_test(ring_rewind_redelivers_in_order),
        cmocka_unit_test(ring_overflow_drops_oldest_and_counts_exactly),
        cmocka_unit_test(ring_random_against_model),
        cmocka_unit_test(ring_floor_and_stall),
        cmocka_unit_test(disk_appends_and_hands_out_in_order),
        cmocka_unit_test(disk_acks_trim_and_skip),
        cmocka_unit_test(disk_rewind_redelivers_in_order),
        cmocka_unit_test(disk_overflow_drops_oldest_and_counts_exactly),
        cmocka_unit_test(disk_floor_and_stall),
        cmocka_unit_test(stores_random_against_model),
        cmocka_unit_test(disk_store_descriptors),
        cmocka_unit_test(disk_survives_a_crash),
        cmocka_unit_test(clock_starts_in_the_past_and_ends_now),
        cmocka_unit_test(clock_refuses_bad_rates),
        cmocka_unit_test(ids_are_deterministic),
        cmocka_unit_test(clinics_and_models_are_deterministic),
        cmocka_unit_test(faults_name_existing_devices),
        cmocka_unit_test(csv_fields_and_inventory),
        cmocka_unit_test(device_numbers_windows_gap_free),
        cmocka_unit_test(codec_floor_is_an_appended_field),
        cmocka_unit_test(device_steady_state_sends_single_windows),
        cmocka_unit_test(device_acks_timeouts_and_gaps),
        cmocka_unit_test(device_acks_timeouts_and_gaps_on_disk),
        cmocka_unit_test(device_memory_is_bounded_and_drops_counted),
        cmocka_unit_test(device_disk_is_bounded_and_drops_counted),
        cmocka_unit_test(device_resumes_from_queue_dir),
        cmocka_unit_test(device_resumes_after_a_crash),
        cmocka_unit_test(device_refuses_a_foreign_or_damaged_state),
        cmocka_unit_test(data_gap_holds_a_window_for_len),
        cmocka_unit_test(maintenance_due_crosses_at_start_and_resets_at_len),
        cmocka_unit_test(offline_device_store_holds_len),
    };
    /* The disk queue logs every overflow drop; the tests count them. */
    nw_log_init("test_agent_fleet", NW_LOG_ERROR, NW_LOG_TO_STDERR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}

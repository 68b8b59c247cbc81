/*
 * test_dq.c - the disk queue: basics, acks, crash at every byte, bit flips,
 * a real kill -9, overflow, hostile directories, bounded memory.
 *
 * Every test works in its own mkdtemp() directory under $TMPDIR (or /tmp),
 * removed at the end. Payload bytes are always < 0x80, so they never contain
 * the record magic's first byte and a test knows exactly which records a
 * damaged byte can take with it.
 */
#include <needlewatch/clock.h>
#include <needlewatch/dq.h>
#include <needlewatch/log.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define HDR NW_DQ_SEGMENT_HEADER
#define REC NW_DQ_RECORD_OVERHEAD
#define W NW_DQ_TYPE_WINDOW
#define E NW_DQ_TYPE_EVENT

/* ---- helpers ----------------------------------------------------------- */

struct fx {
    char dir[256];  /* the test's temp dir */
    char qdir[300]; /* the queue inside it */
};

static void rm_tree(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
                continue;
            }
            char child[1024];
            snprintf(child, sizeof(child), "%s/%s", path, e->d_name);
            struct stat st;
            if (lstat(child, &st) == 0 && S_ISDIR(st.st_mode)) {
                chmod(child, 0700);
                rm_tree(child);
            } else {
                unlink(child);
            }
        }
        closedir(d);
    }
    rmdir(path);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    const char *tmp = getenv("TMPDIR");
    snprintf(f->dir, sizeof(f->dir), "%s/test_dq.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->qdir, sizeof(f->qdir), "%s/q", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    rm_tree(f->dir);
    free(f);
    nw_clock_fake_clear();
    nw_log_set_level(NW_LOG_INFO);
    return 0;
}

static struct nw_dq_options opts(const char *dir, uint64_t seg, uint64_t max, enum nw_dq_sync sync)
{
    struct nw_dq_options o;
    nw_dq_options_init(&o, dir);
    if (seg) {
        o.segment_bytes = seg;
    }
    if (max) {
        o.max_bytes = max;
    }
    o.sync = sync;
    o.state_interval_ms = NW_DQ_STATE_EVERY_ACK;
    return o;
}

static struct nw_dq *open_q(const char *dir, uint64_t seg, uint64_t max)
{
    struct nw_dq_options o = opts(dir, seg, max, NW_DQ_SYNC_NEVER);
    struct nw_dq *dq = NULL;
    struct nw_error err = {0};
    enum nw_err rc = nw_dq_open(&o, &dq, &err);
    if (rc != NW_OK) {
        fail_msg("nw_dq_open(%s): %s", dir, err.msg);
    }
    return dq;
}

/* Deterministic payload of a record; every byte < 0x80. */
static void fill(uint8_t *buf, uint8_t type, uint64_t seq, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        buf[i] = (uint8_t)((seq * 31 + i * 7 + type * 13) & 0x7F);
    }
}

static size_t len_of(uint64_t seq)
{
    return (size_t)((seq * 37) % 61); /* 0..60, varied, some empty */
}

static void append(struct nw_dq *dq, uint8_t type, uint64_t seq, size_t len)
{
    uint8_t buf[NW_DQ_MAX_PAYLOAD];
    fill(buf, type, seq, len);
    struct nw_error err = {0};
    enum nw_err rc = nw_dq_append(dq, type, seq, buf, len, &err);
    if (rc != NW_OK) {
        fail_msg("append type %u seq %" PRIu64 ": %s", type, seq, err.msg);
    }
}

static void expect_next(struct nw_dq *dq, uint8_t type, uint64_t seq, size_t len)
{
    struct nw_dq_record r;
    struct nw_error err = {0};
    enum nw_err rc = nw_dq_next(dq, &r, &err);
    if (rc != NW_OK) {
        fail_msg("next: expected type %u seq %" PRIu64 ", got %s", type, seq, nw_strerror(rc));
    }
    if (r.type != type || r.seq != seq || r.len != len) {
        fail_msg("next: expected %u/%" PRIu64 "/%zu, got %u/%" PRIu64 "/%zu", type, seq, len,
                 r.type, r.seq, r.len);
    }
    uint8_t want[NW_DQ_MAX_PAYLOAD];
    fill(want, type, seq, len);
    if (len) {
        assert_memory_equal(r.payload, want, len);
    }
}

static void expect_end(struct nw_dq *dq)
{
    struct nw_dq_record r;
    enum nw_err rc = nw_dq_next(dq, &r, NULL);
    if (rc != NW_ERR_NOT_FOUND) {
        fail_msg("expected the end, got %s (type %u seq %" PRIu64 ")", nw_strerror(rc), r.type,
                 r.seq);
    }
}

static int count_files(const char *dir, const char *prefix, const char *suffix)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name), sl = strlen(suffix);
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0 && l >= sl &&
            strcmp(e->d_name + l - sl, suffix) == 0) {
            n++;
        }
    }
    if (d) {
        closedir(d);
    }
    return n;
}

static struct nw_dq_stats stats(struct nw_dq *dq)
{
    struct nw_dq_stats s;
    nw_dq_stats(dq, &s);
    return s;
}

static void write_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
}

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)n + 1);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* Sorted segment file names of dir (up to max). */
static int seg_files(const char *dir, char names[][32], int max)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL && n < max) {
        if (strncmp(e->d_name, "seg-", 4) == 0 && strlen(e->d_name) == 24) {
            memcpy(names[n++], e->d_name, 25); /* 24 chars and the NUL */
        }
    }
    if (d) {
        closedir(d);
    }
    qsort(names, (size_t)n, 32, (int (*)(const void *, const void *))strcmp);
    return n;
}

/* ---- basics ---------------------------------------------------------------- */

static void test_crc32c(void **state)
{
    (void)state;
    assert_int_equal(nw_dq_crc32c(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(nw_dq_crc32c(0, "", 0), 0);
    /* Incremental equals one shot, across the 8-byte fast path. */
    const char *s = "The quick brown fox jumps over the lazy dog";
    uint32_t one = nw_dq_crc32c(0, s, strlen(s));
    assert_int_equal(nw_dq_crc32c(nw_dq_crc32c(0, s, 13), s + 13, strlen(s) - 13), one);
}

static void test_append_read_ack(void **state)
{
    struct fx *f = *state;
    struct nw_dq *dq = open_q(f->qdir, 0, 0);
    expect_end(dq);
    for (uint64_t i = 1; i <= 10; i++) {
        append(dq, W, i, len_of(i));
    }
    for (uint64_t i = 1; i <= 10; i++) {
        expect_next(dq, W, i, len_of(i));
    }
    expect_end(dq);
    assert_int_equal(nw_dq_ack(dq, W, 5, NULL), NW_OK);
    struct nw_dq_stats s = stats(dq);
    assert_int_equal(s.records, 10);
    assert_int_equal(s.unacked[W], 5);
    assert_int_equal(s.acked_seq[W], 5);
    assert_int_equal(s.last_seq[W], 10);
    nw_dq_rewind(dq);
    for (uint64_t i = 6; i <= 10; i++) {
        expect_next(dq, W, i, len_of(i));
    }
    expect_end(dq);
    /* An append after the end is delivered next. */
    append(dq, W, 11, 3);
    expect_next(dq, W, 11, 3);
    expect_end(dq);
    nw_dq_close(&dq);
    assert_null(dq);
    nw_dq_close(&dq); /* NULL-safe */
    nw_dq_close(NULL);
}

static void test_two_types_interleaved(void **state)
{
    struct fx *f = *state;
    struct nw_dq *dq = open_q(f->qdir, 0, 0);
    for (uint64_t i = 1; i <= 20; i++) {
        append(dq, W, i, len_of(i));
        if (i % 2 == 0) {
            append(dq, E, i / 2, 5);
        }
    }
    assert_int_equal(nw_dq_ack(dq, W, 8, NULL), NW_OK);
    assert_int_equal(nw_dq_ack(dq, E, 7, NULL), NW_OK);
    for (uint64_t i = 9; i <= 20; i++) {
        expect_next(dq, W, i, len_of(i));
        if (i % 2 == 0 && i / 2 > 7) {
            expect_next(dq, E, i / 2, 5);
        }
    }
    expect_end(dq);
    struct nw_dq_stats s = stats(dq);
    assert_int_equal(s.unacked[W], 12);
    assert_int_equal(s.unacked[E], 3);
    assert_int_equal(nw_dq_max_seq(dq, W), 20);
    assert_int_equal(nw_dq_max_seq(dq, E), 10);
    assert_int_equal(nw_dq_max_seq(dq, 0), 0);
    nw_dq_close(&dq);
}

static void test_rewind_redelivers_in_order(void **state)
{
    struct fx *f = *state;
    /* Small segments, so a rewind crosses segment boundaries. */
    struct nw_dq *dq = open_q(f->qdir, 512, 0);
    for (uint64_t i = 1; i <= 30; i++) {
        append(dq, W, i, len_of(i));
    }
    for (uint64_t i = 1; i <= 12; i++) {
        expect_next(dq, W, i, len_of(i));
    }
    nw_dq_rewind(dq); /* reconnect: nothing acked yet */
    for (uint64_t i = 1; i <= 4; i++) {
        expect_next(dq, W, i, len_of(i));
    }
    assert_int_equal(nw_dq_ack(dq, W, 9, NULL), NW_OK);
    nw_dq_rewind(dq); /* ack timeout */
    for (uint64_t i = 10; i <= 30; i++) {
        expect_next(dq, W, i, len_of(i));
        if (i == 20) {
            append(dq, W, 31, 7); /* the reader works while appends continue */
        }
    }
    expect_next(dq, W, 31, 7);
    expect_end(dq);
    nw_dq_close(&dq);
}

static void test_acks_persist(void **state)
{
    struct fx *f = *state;
    struct nw_dq *dq = open_q(f->qdir, 512, 0);
    for (uint64_t i = 1; i <= 20; i++) {
        append(dq, W, i, len_of(i));
        append(dq, E, i, 2);
    }
    assert_int_equal(nw_dq_ack(dq, W, 12, NULL), NW_OK);
    assert_int_equal(nw_dq_ack(dq, E, 3, NULL), NW_OK);
    nw_dq_close(&dq);

    dq = open_q(f->qdir, 512, 0);
    struct nw_dq_stats s = stats(dq);
    assert_int_equal(s.acked_seq[W], 12);
    assert_int_equal(s.acked_seq[E], 3);
    assert_int_equal(nw_dq_max_seq(dq, W), 20);
    for (uint64_t i = 4; i <= 20; i++) {
        if (i > 12) {
            expect_next(dq, W, i, len_of(i));
        }
        expect_next(dq, E, i, 2);
    }
    expect_end(dq);
    /* Sequence continues; an old seq is refused. */
    assert_int_equal(nw_dq_append(dq, W, 20, "x", 1, NULL), NW_ERR_INVAL);
    append(dq, W, 21, 1);
    nw_dq_close(&dq);
}

static void test_segments_deleted_when_fully_acked(void **state)
{
    struct fx *f = *state;
    /* 100-byte payloads: 3 records (3 * 124 + 32 = 404 bytes) per 512. */
    struct nw_dq *dq = open_q(f->qdir, 512, 0);
    for (uint64_t i = 1; i <= 12; i++) {
        append(dq, W, i, 100);
    }
    assert_int_equal(stats(dq).segments, 4);
    assert_int_equal(count_files(f->qdir, "seg-", ".nwq"), 4);
    assert_int_equal(nw_dq_ack(dq, W, 2, NULL), NW_OK);
    assert_int_equal(count_files(f->qdir, "seg-", ".nwq"), 4);
    assert_int_equal(nw_dq_ack(dq, W, 3, NULL), NW_OK);
    assert_int_equal(count_files(f->qdir, "seg-", ".nwq"), 3);
    assert_int_equal(nw_dq_ack(dq, W, 5, NULL), NW_OK);
    assert_int_equal(count_files(f->qdir, "seg-", ".nwq"), 3);
    assert_int_equal(nw_dq_ack(dq, W, 6, NULL), NW_OK);
    assert_int_equal(count_files(f->qdir, "seg-", ".nwq"), 2);
    assert_int_equal(nw_dq_ack(dq, W, 9, NULL), NW_OK);
    assert_int_equal(count_files(f->qdir, "seg-", ".nwq"), 1);
    /* The segment being written stays, even when fully acked. */
    assert_int_equal(nw_dq_ack(dq, W, 12, NULL), NW_OK);
    assert_int_equal(count_files(f->qdir, "seg-", ".nwq"), 1);
    assert_int_equal(stats(dq).segments, 1);
    expect_end(dq);

    /* A segment holding two types waits for both. */
    for (uint64_t i = 13; i <= 24; i++) {
        append(dq, W, i, 100);
        append(dq, E, i, 100);
    }
    uint32_t before = stats(dq).segments;
    /* Only the old segment of windows 10-12 goes; the mixed ones wait. */
    assert_int_equal(nw_dq_ack(dq, W, 24, NULL), NW_OK);
    assert_int_equal(stats(dq).segments, before - 1);
    assert_int_equal(nw_dq_ack(dq, E, 24, NULL), NW_OK);
    assert_int_equal(stats(dq).segments, 1);
    assert_int_equal(count_files(f->qdir, "seg-", ".nwq"), 1);
    nw_dq_close(&dq);
}

static void test_state_writes_throttled(void **state)
{
    struct fx *f = *state;
    nw_clock_fake_set(1700000000000, 1000000000000);
    struct nw_dq_options o = opts(f->qdir, 512, 0, NW_DQ_SYNC_NEVER);
    o.state_interval_ms = 1000;
    struct nw_dq *dq = NULL;
    assert_int_equal(nw_dq_open(&o, &dq, NULL), NW_OK);
    for (uint64_t i = 1; i <= 40; i++) {
        append(dq, W, i, 100);
    }
    uint32_t segs = stats(dq).segments;
    /* 20 acks a second for one second: one state write at most. */
    for (uint64_t i = 1; i <= 20; i++) {
        nw_clock_fake_advance_ms(49);
        assert_int_equal(nw_dq_ack(dq, W, i, NULL), NW_OK);
    }
    assert_true(stats(dq).state_writes <= 1);
    /* Deletion waits for the state write that covers it. */
    assert_int_equal(stats(dq).segments, segs);
    nw_clock_fake_advance_ms(100);
    assert_int_equal(nw_dq_tick(dq, NULL), NW_OK);
    assert_int_equal(stats(dq).state_writes, 1);
    assert_int_equal(stats(dq).segments, segs - 6); /* 18 records in 6 full segments */
    nw_clock_fake_advance_ms(100);
    assert_int_equal(nw_dq_ack(dq, W, 30, NULL), NW_OK);
    assert_int_equal(stats(dq).state_writes, 1);
    assert_int_equal(nw_dq_flush(dq, NULL), NW_OK);
    assert_int_equal(stats(dq).state_writes, 2);
    nw_dq_close(&dq);
    dq = open_q(f->qdir, 512, 0);
    assert_int_equal(stats(dq).acked_seq[W], 30);
    nw_dq_close(&dq);
}

static void test_max_seq_and_bad_arguments(void **state)
{
    struct fx *f = *state;
    struct nw_dq *dq = open_q(f->qdir, 512, 0);
    struct nw_error err = {0};
    assert_int_equal(nw_dq_max_seq(dq, W), 0);
    append(dq, W, 5, 1);
    append(dq, W, 9, 1); /* gaps are the caller's business */
    assert_int_equal(nw_dq_max_seq(dq, W), 9);
    assert_int_equal(nw_dq_append(dq, W, 9, "x", 1, &err), NW_ERR_INVAL);
    assert_int_equal(nw_dq_append(dq, W, 0, "x", 1, &err), NW_ERR_INVAL);
    assert_int_equal(nw_dq_append(dq, NW_DQ_TYPES, 10, "x", 1, &err), NW_ERR_INVAL);
    assert_int_equal(nw_dq_append(dq, W, 10, NULL, 1, &err), NW_ERR_INVAL);
    assert_int_equal(nw_dq_ack(dq, NW_DQ_TYPES, 1, &err), NW_ERR_INVAL);
    assert_int_equal(nw_dq_ack(dq, W, 10, &err), NW_ERR_INVALID);
    assert_int_equal(nw_dq_ack(dq, W, 9, &err), NW_OK);
    assert_int_equal(nw_dq_ack(dq, W, 3, &err), NW_OK); /* backwards: ignored */
    assert_int_equal(stats(dq).acked_seq[W], 9);
    nw_dq_close(&dq);
    /* Everything acked and trimmed: the seq is still known. */
    dq = open_q(f->qdir, 512, 0);
    assert_int_equal(nw_dq_max_seq(dq, W), 9);
    assert_int_equal(nw_dq_append(dq, W, 9, "x", 1, &err), NW_ERR_INVAL);
    nw_dq_close(&dq);

    struct nw_dq_options o = opts(f->qdir, 100, 0, NW_DQ_SYNC_NEVER);
    assert_int_equal(nw_dq_open(&o, &dq, &err), NW_ERR_CONFIG);
    assert_null(dq);
    o = opts(f->qdir, 4096, 1024, NW_DQ_SYNC_NEVER);
    assert_int_equal(nw_dq_open(&o, &dq, &err), NW_ERR_CONFIG);
    o = opts(NULL, 0, 0, NW_DQ_SYNC_NEVER);
    assert_int_equal(nw_dq_open(&o, &dq, &err), NW_ERR_INVAL);
    o = opts(f->qdir, 0, 0, (enum nw_dq_sync)7);
    assert_int_equal(nw_dq_open(&o, &dq, &err), NW_ERR_CONFIG);
}

static void test_payload_limits(void **state)
{
    struct fx *f = *state;
    static uint8_t big[NW_DQ_MAX_PAYLOAD + 1];
    struct nw_dq *dq = open_q(f->qdir, 0, 0);
    assert_int_equal(nw_dq_append(dq, W, 1, big, sizeof(big), NULL), NW_ERR_TOO_BIG);
    append(dq, W, 1, NW_DQ_MAX_PAYLOAD);
    append(dq, W, 2, 0);
    expect_next(dq, W, 1, NW_DQ_MAX_PAYLOAD);
    expect_next(dq, W, 2, 0);
    nw_dq_close(&dq);
    /* A record that cannot fit an empty segment is too big. */
    dq = open_q(f->qdir, 512, 0);
    size_t fits = 512 - HDR - REC;
    assert_int_equal(nw_dq_append(dq, W, 3, big, fits + 1, NULL), NW_ERR_TOO_BIG);
    append(dq, W, 3, fits);
    append(dq, W, 4, fits);
    nw_dq_rewind(dq);
    expect_next(dq, W, 1, NW_DQ_MAX_PAYLOAD);
    expect_next(dq, W, 2, 0);
    expect_next(dq, W, 3, fits);
    expect_next(dq, W, 4, fits);
    nw_dq_close(&dq);
}

static void test_sync_policies(void **state)
{
    struct fx *f = *state;
    enum nw_dq_sync pol[] = {NW_DQ_SYNC_ALWAYS, NW_DQ_SYNC_INTERVAL, NW_DQ_SYNC_NEVER};
    for (int p = 0; p < 3; p++) {
        char dir[400];
        snprintf(dir, sizeof(dir), "%s/p%d", f->dir, p);
        struct nw_dq_options o = opts(dir, 0, 0, pol[p]);
        o.sync_interval_ms = 60000; /* only the first append is due */
        struct nw_dq *dq = NULL;
        assert_int_equal(nw_dq_open(&o, &dq, NULL), NW_OK);
        uint64_t before = stats(dq).syncs;
        for (uint64_t i = 1; i <= 50; i++) {
            append(dq, W, i, 10);
        }
        uint64_t n = stats(dq).syncs - before;
        if (pol[p] == NW_DQ_SYNC_ALWAYS) {
            assert_true(n >= 50);
        } else if (pol[p] == NW_DQ_SYNC_INTERVAL) {
            assert_true(n >= 1 && n <= 4); /* segment creation + at most one per interval */
        } else {
            assert_int_equal(n, 0);
        }
        nw_dq_close(&dq);
        dq = open_q(dir, 0, 0);
        for (uint64_t i = 1; i <= 50; i++) {
            expect_next(dq, W, i, 10);
        }
        nw_dq_close(&dq);
    }
}

static void test_interval_sync_by_tick(void **state)
{
    struct fx *f = *state;
    nw_clock_fake_set(1700000000000, 1000000000000);
    struct nw_dq_options o = opts(f->qdir, 0, 0, NW_DQ_SYNC_INTERVAL);
    o.sync_interval_ms = 200;
    struct nw_dq *dq = NULL;
    assert_int_equal(nw_dq_open(&o, &dq, NULL), NW_OK);
    append(dq, W, 1, 10); /* creates the segment: file and directory synced */
    uint64_t base = stats(dq).syncs;
    for (uint64_t i = 2; i <= 10; i++) {
        nw_clock_fake_advance_ms(10);
        append(dq, W, i, 10);
    }
    assert_int_equal(stats(dq).syncs, base); /* a burst within the interval */
    assert_int_equal(nw_dq_tick(dq, NULL), NW_OK);
    assert_int_equal(stats(dq).syncs, base);
    nw_clock_fake_advance_ms(150);
    assert_int_equal(nw_dq_tick(dq, NULL), NW_OK); /* the tail of the burst */
    assert_int_equal(stats(dq).syncs, base + 1);
    nw_clock_fake_advance_ms(500);
    assert_int_equal(nw_dq_tick(dq, NULL), NW_OK); /* nothing new: no sync */
    assert_int_equal(stats(dq).syncs, base + 1);
    append(dq, W, 11, 10); /* first append after a quiet interval: synced */
    assert_int_equal(stats(dq).syncs, base + 2);
    nw_dq_close(&dq);
}

/* ---- crash at every byte --------------------------------------------------- */

struct laid {
    uint64_t seq;
    size_t len;
    uint64_t end; /* offset just past the record in its segment */
    int seg;
};

/* Builds a queue of three 1 KiB segments; returns records in order. */
static int build_base(const char *dir, struct laid *out, int max)
{
    struct nw_dq *dq = open_q(dir, 1024, 0);
    int n = 0;
    uint64_t seq = 0;
    while (stats(dq).segments < 3 || n < 25 || stats(dq).bytes < 2 * 1024 + 600) {
        seq++;
        append(dq, W, seq, len_of(seq));
        assert_true(n < max);
        out[n++] = (struct laid){.seq = seq, .len = len_of(seq)};
    }
    nw_dq_close(&dq);
    /* Where each record ended up: walk the files in order. */
    char names[8][32];
    int nseg = seg_files(dir, names, 8);
    assert_int_equal(nseg, 3);
    int k = 0;
    for (int s = 0; s < nseg; s++) {
        char path[600];
        snprintf(path, sizeof(path), "%s/%s", dir, names[s]);
        size_t size;
        free(read_file(path, &size));
        uint64_t off = HDR;
        while (off < size) {
            off += REC + out[k].len;
            out[k].end = off;
            out[k++].seg = s;
        }
        assert_int_equal(off, size);
    }
    assert_int_equal(k, n);
    return n;
}

/*
 * Makes dst a copy of the segments of src, segment idx replaced by data;
 * anything else in dst goes. Files are overwritten in place, because
 * creating and deleting directories is what costs on a busy disk.
 */
static void stage(const char *src, const char *dst, int idx, const uint8_t *data, size_t len)
{
    char names[8][32];
    int n = seg_files(src, names, 8);
    DIR *d = opendir(dst);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        bool base = false;
        for (int i = 0; i < n; i++) {
            base = base || strcmp(e->d_name, names[i]) == 0;
        }
        if (!base && e->d_name[0] != '.') {
            char p[600];
            snprintf(p, sizeof(p), "%s/%s", dst, e->d_name);
            unlink(p);
        }
    }
    if (d) {
        closedir(d);
    } else {
        assert_int_equal(mkdir(dst, 0700), 0);
    }
    for (int i = 0; i < n; i++) {
        char from[600], to[600];
        snprintf(from, sizeof(from), "%s/%s", src, names[i]);
        snprintf(to, sizeof(to), "%s/%s", dst, names[i]);
        if (i == idx) {
            write_file(to, data, len);
        } else {
            size_t size;
            uint8_t *b = read_file(from, &size);
            write_file(to, b, size);
            free(b);
        }
    }
}

/* Reads the whole queue and checks it is exactly laid[i] where keep[i]. */
static void expect_exactly(struct nw_dq *dq, const struct laid *laid, const bool *keep, int n)
{
    nw_dq_rewind(dq);
    for (int i = 0; i < n; i++) {
        if (keep[i]) {
            expect_next(dq, W, laid[i].seq, laid[i].len);
        }
    }
    expect_end(dq);
}

/*
 * The queue holds exactly the kept records; then new appends work and read
 * back after them.
 */
static void expect_appendable(struct nw_dq *dq, const struct laid *laid, const bool *keep, int n)
{
    expect_exactly(dq, laid, keep, n);
    uint64_t next = nw_dq_max_seq(dq, W) + 1;
    append(dq, W, next, 9);
    append(dq, W, next + 1, 40);
    nw_dq_rewind(dq);
    struct nw_dq_record r;
    for (int i = 0; i < n; i++) {
        if (keep[i]) {
            assert_int_equal(nw_dq_next(dq, &r, NULL), NW_OK);
        }
    }
    expect_next(dq, W, next, 9);
    expect_next(dq, W, next + 1, 40);
    expect_end(dq);
}

static void test_crash_at_every_byte(void **state)
{
    struct fx *f = *state;
    nw_log_set_level(NW_LOG_ERROR);
    struct laid laid[200];
    bool keep[200];
    int n = build_base(f->qdir, laid, 200);
    char names[8][32], path[600], work[400];
    seg_files(f->qdir, names, 8);
    snprintf(path, sizeof(path), "%s/%s", f->qdir, names[2]);
    snprintf(work, sizeof(work), "%s/work", f->dir);
    size_t size;
    uint8_t *last = read_file(path, &size);
    for (size_t cut = 0; cut <= size; cut++) {
        stage(f->qdir, work, 2, last, cut);
        struct nw_dq *dq = NULL;
        struct nw_error err = {0};
        struct nw_dq_options o = opts(work, 1024, 0, NW_DQ_SYNC_NEVER);
        if (nw_dq_open(&o, &dq, &err) != NW_OK) {
            fail_msg("cut at %zu: %s", cut, err.msg);
        }
        uint64_t kept_end = HDR;
        for (int i = 0; i < n; i++) {
            keep[i] = laid[i].seg < 2 || laid[i].end <= cut;
            if (laid[i].seg == 2 && keep[i]) {
                kept_end = laid[i].end;
            }
        }
        struct nw_dq_stats s = stats(dq);
        assert_int_equal(s.corrupt_records, 0);
        assert_int_equal(s.torn_bytes_truncated, cut < HDR ? cut : cut - kept_end);
        expect_appendable(dq, laid, keep, n);
        nw_dq_close(&dq);
    }
    free(last);
}

/* ---- bit flips ------------------------------------------------------------ */

static void test_bit_flips(void **state)
{
    struct fx *f = *state;
    nw_log_set_level(NW_LOG_ERROR);
    struct laid laid[200];
    bool keep[200];
    int n = build_base(f->qdir, laid, 200);
    char names[8][32], work[400];
    int nseg = seg_files(f->qdir, names, 8);
    snprintf(work, sizeof(work), "%s/work", f->dir);
    int runs = 0;
    for (int s = 0; s < nseg; s++) {
        char path[600];
        snprintf(path, sizeof(path), "%s/%s", f->qdir, names[s]);
        size_t size;
        uint8_t *orig = read_file(path, &size);
        for (size_t off = 0; off < size; off += 3) {
            orig[off] ^= (uint8_t)(1u << (off % 8));
            stage(f->qdir, work, s, orig, size);
            orig[off] ^= (uint8_t)(1u << (off % 8));
            int hit = -1;
            for (int i = 0; i < n; i++) {
                uint64_t start = laid[i].end - REC - laid[i].len;
                keep[i] = !(laid[i].seg == s && off >= start && off < laid[i].end);
                hit = keep[i] ? hit : i;
            }
            struct nw_dq *dq = open_q(work, 1024, 0);
            struct nw_dq_stats st = stats(dq);
            if (hit == n - 1) {
                /* The newest record: damage or a torn write, either way cut. */
                assert_int_equal(st.corrupt_records + (st.torn_bytes_truncated > 0), 1);
            } else {
                if (st.corrupt_records != 1) {
                    fail_msg("flip at seg %d offset %zu: %" PRIu64 " corrupt", s, off,
                             st.corrupt_records);
                }
                assert_int_equal(st.torn_bytes_truncated, 0);
            }
            expect_appendable(dq, laid, keep, n);
            nw_dq_close(&dq);
            runs++;
        }
        free(orig);
    }
    assert_true(runs > 800);

    /* Several records damaged at once, apart: each counted. */
    stage(f->qdir, work, -1, NULL, 0);
    for (int i = 0; i < n; i++) {
        keep[i] = true;
    }
    int damaged = 0;
    for (int i = 2; i < n - 3; i += 5) {
        char p[600];
        snprintf(p, sizeof(p), "%s/%s", work, names[laid[i].seg]);
        int fd = open(p, O_RDWR);
        uint8_t byte;
        off_t at = (off_t)(laid[i].end - 1 - laid[i].len / 2);
        assert_int_equal(pread(fd, &byte, 1, at), 1);
        byte ^= 0x10;
        assert_int_equal(pwrite(fd, &byte, 1, at), 1);
        close(fd);
        keep[i] = false;
        damaged++;
    }
    struct nw_dq *dq = open_q(work, 1024, 0);
    assert_int_equal(stats(dq).corrupt_records, damaged);
    expect_appendable(dq, laid, keep, n);
    nw_dq_close(&dq);
}

/* ---- kill -9 ------------------------------------------------------------- */

#define KILL_MAX_APPENDS 100000
#define KILL_MAX_BYTES (256ull * 1024 * 1024) /* 5 rounds never overflow */

static void child_append(const char *dir, int wfd)
{
    struct nw_dq *dq = NULL;
    struct nw_dq_options o = opts(dir, 64 * 1024, KILL_MAX_BYTES, NW_DQ_SYNC_NEVER);
    if (nw_dq_open(&o, &dq, NULL) != NW_OK) {
        _exit(2);
    }
    uint64_t start = nw_dq_max_seq(dq, W) + 1;
    uint64_t ready = 0; /* recovered and appending: start the kill clock */
    if (write(wfd, &ready, sizeof(ready)) != sizeof(ready)) {
        _exit(4);
    }
    uint8_t buf[256];
    for (uint64_t seq = start; seq < start + KILL_MAX_APPENDS; seq++) {
        size_t len = (size_t)(seq % 200);
        fill(buf, W, seq, len);
        if (nw_dq_append(dq, W, seq, buf, len, NULL) != NW_OK) {
            _exit(3);
        }
        if (write(wfd, &seq, sizeof(seq)) != sizeof(seq)) {
            _exit(4);
        }
    }
    nw_dq_close(&dq);
    _exit(0);
}

#define READY (-2) /* drain(): until the child says it is ready (or 10 s) */

/* Reads what the child reported until the deadline; returns the last seq. */
static uint64_t drain(int rfd, uint64_t last, int64_t deadline_ms)
{
    uint64_t buf[1024];
    for (;;) {
        int64_t left = deadline_ms - nw_clock_mono_ms();
        struct pollfd p = {.fd = rfd, .events = POLLIN};
        if (deadline_ms >= 0 && left <= 0) {
            return last;
        }
        if (poll(&p, 1, deadline_ms < 0 ? 10000 : (int)left) <= 0) {
            return last;
        }
        ssize_t n = read(rfd, buf, sizeof(buf));
        if (n <= 0) {
            return last; /* EOF: the child is gone */
        }
        for (ssize_t i = 0; i < n / (ssize_t)sizeof(uint64_t); i++) {
            last = buf[i] ? buf[i] : last;
            if (!buf[i] && deadline_ms == READY) {
                return last;
            }
        }
    }
}

static void test_kill9(void **state)
{
    struct fx *f = *state;
    nw_log_set_level(NW_LOG_ERROR);
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    srand(seed);
    uint64_t reported = 0;
    for (int round = 0; round < 5; round++) {
        int p[2];
        assert_int_equal(pipe(p), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(p[0]);
            child_append(f->qdir, p[1]);
        }
        close(p[1]);
        int delay = 1 + rand() % 100;
        reported = drain(p[0], reported, READY);
        reported = drain(p[0], reported, nw_clock_mono_ms() + delay);
        kill(pid, SIGKILL);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        reported = drain(p[0], reported, -1); /* what was written before the kill */
        close(p[0]);
        assert_true(WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) == 0));

        struct nw_dq *dq = open_q(f->qdir, 64 * 1024, KILL_MAX_BYTES);
        uint64_t max = nw_dq_max_seq(dq, W);
        print_message("kill -9 round %d (seed %u, %d ms): %" PRIu64 " appends reported, %" PRIu64
                      " on disk, %" PRIu64 " torn bytes\n",
                      round, seed, delay, reported, max, stats(dq).torn_bytes_truncated);
        assert_true(max >= reported);
        assert_true(max <= reported + 1); /* at most the one in flight */
        assert_int_equal(stats(dq).corrupt_records, 0);
        for (uint64_t seq = 1; seq <= max; seq++) {
            expect_next(dq, W, seq, (size_t)(seq % 200));
        }
        expect_end(dq);
        reported = max;
        nw_dq_close(&dq);
    }
}

/* ---- overflow ------------------------------------------------------------- */

static void test_overflow_drops_oldest(void **state)
{
    struct fx *f = *state;
    nw_log_set_level(NW_LOG_ERROR);
    /* 8 records of 124 bytes fill a 1024-byte segment; 4 segments fit. */
    struct nw_dq *dq = open_q(f->qdir, 1024, 4096);
    uint64_t w = 0, e = 0;
    for (int i = 0; i < 12; i++) {
        append(dq, W, ++w, 100);
        append(dq, E, ++e, 100);
    }
    assert_int_equal(stats(dq).dropped[W] + stats(dq).dropped[E], 0);
    /* Windows 1-3 acked: the oldest segment is partly acked. */
    assert_int_equal(nw_dq_ack(dq, W, 3, NULL), NW_OK);
    for (int i = 0; i < 80; i++) {
        append(dq, W, ++w, 100);
        append(dq, E, ++e, 100);
        struct nw_dq_stats s = stats(dq);
        assert_true(s.bytes <= 4096);
        assert_true(s.segments <= s.max_segments);
    }
    struct nw_dq_stats s = stats(dq);
    assert_true(s.segments >= 3);
    /* The newest records are intact and contiguous, per type. */
    nw_dq_rewind(dq);
    struct nw_dq_record r;
    uint64_t first[NW_DQ_TYPES] = {0}, next[NW_DQ_TYPES] = {0};
    while (nw_dq_next(dq, &r, NULL) == NW_OK) {
        if (!first[r.type]) {
            first[r.type] = next[r.type] = r.seq;
        }
        assert_int_equal(r.seq, next[r.type]);
        next[r.type]++;
        uint8_t buf[100];
        fill(buf, r.type, r.seq, 100);
        assert_memory_equal(r.payload, buf, 100);
    }
    assert_int_equal(next[W], w + 1);
    assert_int_equal(next[E], e + 1);
    assert_true(first[W] > 4 && first[E] > 1);
    /* dropped counts exactly the unacked records lost (windows 1-3 were
     * acked: lost, but not dropped). */
    assert_int_equal(s.dropped[W], first[W] - 1 - 3);
    assert_int_equal(s.dropped[E], first[E] - 1);
    assert_int_equal(s.records, (w - first[W] + 1) + (e - first[E] + 1));
    assert_int_equal(s.unacked[W] + s.unacked[E], s.records);
    nw_dq_close(&dq);

    /* Counters and seqs survive a restart, even of a type now gone. */
    dq = open_q(f->qdir, 1024, 4096);
    for (int i = 0; i < 40; i++) {
        append(dq, W, ++w, 100); /* pushes every event out */
    }
    struct nw_dq_stats s2 = stats(dq);
    assert_int_equal(s2.unacked[E], 0);
    assert_int_equal(s2.dropped[E], e);
    assert_int_equal(s2.records, s2.unacked[W]);
    assert_int_equal(s2.dropped[W], w - s2.unacked[W] - 3);
    nw_dq_close(&dq);
    dq = open_q(f->qdir, 1024, 4096);
    assert_int_equal(nw_dq_max_seq(dq, E), e);
    assert_int_equal(stats(dq).dropped[E], e);
    assert_int_equal(nw_dq_append(dq, E, e, "x", 1, NULL), NW_ERR_INVAL);
    nw_dq_close(&dq);

    /* A smaller max_bytes at open trims at once. */
    dq = open_q(f->qdir, 1024, 2048);
    assert_true(stats(dq).bytes <= 2048);
    nw_dq_close(&dq);
}

static void test_overflow_under_reader(void **state)
{
    struct fx *f = *state;
    nw_log_set_level(NW_LOG_ERROR);
    struct nw_dq *dq = open_q(f->qdir, 1024, 4096);
    for (uint64_t i = 1; i <= 20; i++) {
        append(dq, W, i, 100);
    }
    for (uint64_t i = 1; i <= 3; i++) {
        expect_next(dq, W, i, 100);
    }
    /* The segment under the cursor goes; the cursor moves to the oldest
     * record left, and reading goes on in order to the newest. */
    for (uint64_t i = 21; i <= 120; i++) {
        append(dq, W, i, 100);
    }
    struct nw_dq_stats s = stats(dq);
    uint64_t first = 120 - s.records + 1;
    assert_int_equal(s.dropped[W], first - 1);
    for (uint64_t i = first; i <= 120; i++) {
        expect_next(dq, W, i, 100);
    }
    expect_end(dq);
    nw_dq_close(&dq);
}

/* ---- hostile directories and files ------------------------------------------ */

static void test_dir_missing_or_bad(void **state)
{
    struct fx *f = *state;
    struct nw_dq_options o = opts(f->qdir, 0, 0, NW_DQ_SYNC_NEVER);
    struct nw_dq *dq = NULL;
    struct nw_error err = {0};
    /* Missing: created (one level). */
    assert_int_equal(nw_dq_open(&o, &dq, &err), NW_OK);
    struct stat st;
    assert_int_equal(stat(f->qdir, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    /* A second opener is refused while the first holds it. */
    struct nw_dq *second = NULL;
    assert_int_equal(nw_dq_open(&o, &second, &err), NW_ERR_IO);
    assert_non_null(strstr(err.msg, "in use"));
    assert_null(second);
    nw_dq_close(&dq);

    char path[400];
    snprintf(path, sizeof(path), "%s/no/such/q", f->dir);
    o.dir = path;
    assert_int_equal(nw_dq_open(&o, &dq, &err), NW_ERR_NOT_FOUND);
    /* A file where the directory should be. */
    snprintf(path, sizeof(path), "%s/file", f->dir);
    write_file(path, "x", 1);
    assert_int_equal(nw_dq_open(&o, &dq, &err), NW_ERR_IO);
    assert_null(dq);
    /* Not writable (root writes anyway: then this part cannot be tested). */
    snprintf(path, sizeof(path), "%s/ro", f->dir);
    assert_int_equal(mkdir(path, 0500), 0);
    if (geteuid() != 0) {
        assert_int_equal(nw_dq_open(&o, &dq, &err), NW_ERR_IO);
        assert_non_null(strstr(err.msg, "not writable"));
    }
}

static void test_foreign_and_odd_files(void **state)
{
    struct fx *f = *state;
    nw_log_set_level(NW_LOG_ERROR);
    struct nw_dq *dq = open_q(f->qdir, 1024, 0);
    for (uint64_t i = 1; i <= 30; i++) {
        append(dq, W, i, 50);
    }
    nw_dq_close(&dq);
    char p[600];
    snprintf(p, sizeof(p), "%s/notes.txt", f->qdir);
    write_file(p, "hello", 5);
    snprintf(p, sizeof(p), "%s/seg-xyz.nwq", f->qdir);
    write_file(p, "x", 1);
    snprintf(p, sizeof(p), "%s/seg-00000000000000ff.nwq", f->qdir);
    assert_int_equal(mkdir(p, 0700), 0); /* a directory with a segment's name */
    /* Zero-length segments, one in the middle and one newest. */
    snprintf(p, sizeof(p), "%s/seg-0000000000000001.nwq", f->qdir);
    write_file(p, "", 0);
    snprintf(p, sizeof(p), "%s/seg-0000000000001000.nwq", f->qdir);
    write_file(p, "", 0);
    dq = open_q(f->qdir, 1024, 0);
    struct nw_dq_stats s = stats(dq);
    assert_int_equal(s.foreign_files, 3);
    assert_int_equal(s.corrupt_records, 0);
    assert_int_equal(s.records, 30);
    assert_int_equal(count_files(f->qdir, "notes", ".txt"), 1); /* left alone */
    assert_int_equal(count_files(f->qdir, "seg-000000000000100", ".nwq"), 0);
    for (uint64_t i = 1; i <= 30; i++) {
        expect_next(dq, W, i, 50);
    }
    append(dq, W, 31, 50);
    expect_next(dq, W, 31, 50);
    nw_dq_close(&dq);
}

/* Writes a segment file: header (as given) then raw bytes. */
static void write_segment(const char *dir, uint64_t recno, const uint8_t *hdr, const uint8_t *body,
                          size_t len)
{
    char p[600];
    snprintf(p, sizeof(p), "%s/seg-%016" PRIx64 ".nwq", dir, recno);
    uint8_t *buf = malloc(HDR + len);
    memcpy(buf, hdr, HDR);
    if (len) {
        memcpy(buf + HDR, body, len);
    }
    write_file(p, buf, HDR + len);
    free(buf);
}

static void test_segment_headers(void **state)
{
    struct fx *f = *state;
    nw_log_set_level(NW_LOG_ERROR);
    struct nw_dq *dq = open_q(f->qdir, 1024, 0);
    for (uint64_t i = 1; i <= 20; i++) {
        append(dq, W, i, 50);
    }
    nw_dq_close(&dq);
    char names[8][32], p[600];
    int n = seg_files(f->qdir, names, 8);
    assert_true(n >= 2);
    snprintf(p, sizeof(p), "%s/%s", f->qdir, names[0]);
    size_t size;
    uint8_t *seg0 = read_file(p, &size);

    /* A valid header of another version: moved aside, never read. */
    uint8_t hdr[HDR];
    memcpy(hdr, seg0, HDR);
    hdr[8] = 2;
    uint32_t crc = nw_dq_crc32c(0, hdr, 28);
    for (int i = 0; i < 4; i++) {
        hdr[28 + i] = (uint8_t)(crc >> (8 * i));
    }
    write_segment(f->qdir, 0x500, hdr, seg0 + HDR, size - HDR);
    /* A damaged header (bad CRC): its records are still read. */
    memcpy(hdr, seg0, HDR);
    hdr[0] ^= 0xFF;
    write_segment(f->qdir, 0x600, hdr, seg0 + HDR, 3 * (REC + 50));

    dq = open_q(f->qdir, 1024, 0);
    struct nw_dq_stats s = stats(dq);
    assert_int_equal(s.bad_segments, 1);
    assert_int_equal(s.corrupt_records, 1);
    assert_int_equal(count_files(f->qdir, "seg-", ".bad"), 1);
    assert_int_equal(s.records, 23);
    for (uint64_t i = 1; i <= 20; i++) {
        expect_next(dq, W, i, 50);
    }
    /* The copies in the damaged segment come back too: the queue keeps
     * every record that verifies, and they are not acked. */
    for (uint64_t i = 1; i <= 3; i++) {
        expect_next(dq, W, i, 50);
    }
    expect_end(dq);
    /* New appends go to a fresh segment after the damaged one. */
    append(dq, W, 21, 5);
    expect_next(dq, W, 21, 5);
    nw_dq_close(&dq);
    assert_int_equal(count_files(f->qdir, "seg-", ".bad"), 1); /* still there */
    free(seg0);
}

static void test_hostile_record_headers(void **state)
{
    struct fx *f = *state;
    nw_log_set_level(NW_LOG_ERROR);
    struct nw_dq *dq = open_q(f->qdir, 0, 0);
    append(dq, W, 1, 10);
    nw_dq_close(&dq);
    char names[8][32], p[600];
    seg_files(f->qdir, names, 8);
    snprintf(p, sizeof(p), "%s/%s", f->qdir, names[0]);
    size_t size;
    uint8_t *seg = read_file(p, &size);
    uint8_t rec1[REC + 10];
    memcpy(rec1, seg + HDR, sizeof(rec1));

    /* A record header claiming 4 GiB, then a valid record: the claim is
     * never allocated or read, the valid record is found. */
    uint8_t body[2 * (REC + 10)];
    memcpy(body, rec1, REC);
    body[4] = body[5] = body[6] = body[7] = 0xFF;
    memcpy(body + REC, rec1, sizeof(rec1));
    write_segment(f->qdir, 0x10, seg, body, REC + sizeof(rec1));
    /* A header claiming just over the maximum payload, at the very end. */
    uint8_t tail[REC];
    memcpy(tail, rec1, REC);
    tail[4] = 0x01;
    tail[5] = 0x00;
    tail[6] = 0x01;
    tail[7] = 0x00;
    write_segment(f->qdir, 0x20, seg, tail, REC);
    dq = open_q(f->qdir, 0, 0);
    struct nw_dq_stats s = stats(dq);
    assert_int_equal(s.records, 2);
    /* The 4 GiB claim mid-segment, and the over-long claim at the end of
     * the newest segment (not a torn write: no record is that long). */
    assert_int_equal(s.corrupt_records, 2);
    assert_int_equal(s.torn_bytes_truncated, 0);
    assert_int_equal(nw_dq_max_seq(dq, W), 1);
    expect_next(dq, W, 1, 10);
    expect_next(dq, W, 1, 10);
    expect_end(dq);
    nw_dq_close(&dq);
    free(seg);
}

static void test_state_file_damaged(void **state)
{
    struct fx *f = *state;
    nw_log_set_level(NW_LOG_ERROR);
    struct nw_dq *dq = open_q(f->qdir, 0, 0);
    for (uint64_t i = 1; i <= 5; i++) {
        append(dq, W, i, 5);
    }
    assert_int_equal(nw_dq_ack(dq, W, 3, NULL), NW_OK);
    nw_dq_close(&dq);
    char p[600];
    snprintf(p, sizeof(p), "%s/dq.state", f->qdir);
    size_t len;
    uint8_t *b = read_file(p, &len);
    b[20] ^= 1;
    write_file(p, b, len);
    free(b);
    snprintf(p, sizeof(p), "%s/dq.state.tmp", f->qdir);
    write_file(p, "junk", 4); /* a write that never got renamed */
    dq = open_q(f->qdir, 0, 0);
    /* Damaged acks: everything is sent again (safe), nothing lost. */
    for (uint64_t i = 1; i <= 5; i++) {
        expect_next(dq, W, i, 5);
    }
    assert_int_equal(count_files(f->qdir, "dq.state.tmp", ""), 0);
    nw_dq_close(&dq);
}

/* ---- memory ---------------------------------------------------------------- */

static void test_memory_independent_of_length(void **state)
{
    struct fx *f = *state;
    nw_log_set_level(NW_LOG_ERROR);
    struct nw_dq *dq = open_q(f->qdir, 0, 0);
    struct nw_dq_stats s0 = stats(dq);
    uint8_t buf[100];
    memset(buf, 0x11, sizeof(buf));
    for (uint64_t i = 1; i <= 100000; i++) {
        assert_int_equal(nw_dq_append(dq, W, i, buf, sizeof(buf), NULL), NW_OK);
    }
    struct nw_dq_stats s = stats(dq);
    assert_int_equal(s.records, 100000);
    assert_int_equal(s.mem_bytes, s0.mem_bytes);
    assert_true(s.segments <= s.max_segments);
    assert_true(s.segments <= NW_DQ_DEFAULT_MAX_BYTES / NW_DQ_DEFAULT_SEGMENT_BYTES + 1);
    assert_true(s.mem_bytes < 256 * 1024);
    /* Read and ack it all (in batches, as the agent does). */
    struct nw_dq_record r;
    uint64_t got = 0;
    while (nw_dq_next(dq, &r, NULL) == NW_OK) {
        assert_int_equal(r.seq, ++got);
        if (got % 10000 == 0) {
            assert_int_equal(nw_dq_ack(dq, W, got, NULL), NW_OK);
        }
    }
    assert_int_equal(got, 100000);
    assert_int_equal(stats(dq).segments, 1);
    nw_dq_close(&dq);

    /* Bounded queue, far more data than fits: segments stay within bound. */
    char dir[400];
    snprintf(dir, sizeof(dir), "%s/small", f->dir);
    dq = open_q(dir, 64 * 1024, 1024 * 1024);
    for (uint64_t i = 1; i <= 100000; i++) {
        assert_int_equal(nw_dq_append(dq, W, i, buf, sizeof(buf), NULL), NW_OK);
        if (i % 5000 == 0) {
            s = stats(dq);
            assert_true(s.segments <= s.max_segments);
            assert_true(s.segments <= 1024 / 64 + 1);
            assert_true(s.bytes <= 1024 * 1024);
        }
    }
    s = stats(dq);
    assert_int_equal(s.dropped[W] + s.records, 100000);
    nw_dq_close(&dq);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c),
        cmocka_unit_test_setup_teardown(test_append_read_ack, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_types_interleaved, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rewind_redelivers_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_acks_persist, setup, teardown),
        cmocka_unit_test_setup_teardown(test_segments_deleted_when_fully_acked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_state_writes_throttled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_seq_and_bad_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_payload_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync_policies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_interval_sync_by_tick, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_at_every_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bit_flips, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill9, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overflow_drops_oldest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overflow_under_reader, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dir_missing_or_bad, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreign_and_odd_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_segment_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_record_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_state_file_damaged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memory_independent_of_length, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

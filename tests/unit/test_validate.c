/*
 * test_validate.c - what a message may contain (validate.h).
 *
 * Each check starts from a valid message, breaks one thing, and expects the
 * exact reason code and a message that names the field. Float fields are
 * walked through NaN, +Inf, -Inf and a negative value one by one; timestamps
 * are tried one millisecond inside and outside each bound; strings cover the
 * UTF-8 corner cases (overlong forms, surrogates, truncation, controls).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <needlewatch/validate.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#define NOW INT64_C(1732000000000) /* 2024-11-19T07:06:40Z */
#define DAY_MS INT64_C(86400000)
#define MAX_PAST (30 * DAY_MS)
#define MAX_FUTURE INT64_C(300000)

#define assert_contains(haystack, needle)                                                          \
    do {                                                                                           \
        const char *h_ = (haystack), *n_ = (needle);                                               \
        if (!strstr(h_, n_)) {                                                                     \
            print_error("\"%s\" does not contain \"%s\"\n", h_, n_);                               \
            fail();                                                                                \
        }                                                                                          \
    } while (0)

/* Asserts a refusal: NW_ERR_INVALID, the reason, the code in err, and a
 * message containing needle. */
static void expect_refusal(enum nw_err rc, enum nw_reason got_reason, const struct nw_error *err,
                           enum nw_reason want_reason, const char *needle)
{
    if (rc != NW_ERR_INVALID || got_reason != want_reason || err->code != NW_ERR_INVALID ||
        !strstr(err->msg, needle)) {
        print_error("got %s/%s \"%s\", want message failed validation/%s containing \"%s\"\n",
                    nw_strerror(rc), nw_reason_name(got_reason), err->msg,
                    nw_reason_name(want_reason), needle);
        fail();
    }
}

static struct nw_limits lim;

static int setup_limits(void **state)
{
    (void)state;
    nw_limits_default(&lim);
    return 0;
}

/* ---- fixtures -------------------------------------------------------- */

static void good_window(struct nw_window *w, uint64_t seq)
{
    memset(w, 0, sizeof(*w));
    w->seq = seq;
    w->start_ms = NOW - 60000 + (int64_t)seq * 1000;
    w->duration_ms = 1000;
    w->running_ms = 800;
    w->cycles = 96;
    w->rate_mean_hz = 120.0;
    w->rate_min_hz = 118.5;
    w->rate_max_hz = 121.75;
    w->depth_mean_mm = 0.35;
    w->depth_min_mm = 0.33;
    w->depth_max_mm = 0.37;
    w->pigment_ul = 0.0125;
    strcpy(w->session_id, "s-7f3a9c2e41d8");
    strcpy(w->cartridge_id, "C3RL-20241101-004217");
    strcpy(w->pigment_lot, "PGM.L2409:117");
}

static enum nw_err check_window(const struct nw_window *w, enum nw_reason *reason,
                                struct nw_error *err)
{
    *reason = NW_REASON_NONE;
    nw_error_clear(err);
    return nw_validate_window(w, &lim, NOW, reason, err);
}

static void expect_window_ok(const struct nw_window *w)
{
    enum nw_reason reason;
    struct nw_error err;
    enum nw_err rc = check_window(w, &reason, &err);
    if (rc != NW_OK) {
        print_error("refused: %s (%s)\n", err.msg, nw_reason_name(reason));
    }
    assert_int_equal(rc, NW_OK);
    assert_int_equal(reason, NW_REASON_NONE);
}

static void expect_window_refused(const struct nw_window *w, enum nw_reason want,
                                  const char *needle)
{
    enum nw_reason reason;
    struct nw_error err;
    enum nw_err rc = check_window(w, &reason, &err);
    expect_refusal(rc, reason, &err, want, needle);
    /* NULL out-parameters are allowed. */
    assert_int_equal(nw_validate_window(w, &lim, NOW, NULL, NULL), NW_ERR_INVALID);
}

/* ---- limits, names --------------------------------------------------- */

static void test_limits_default(void **state)
{
    (void)state;
    struct nw_limits l;
    memset(&l, 0xff, sizeof(l));
    nw_limits_default(&l);
    assert_int_equal(l.max_payload, 256 * 1024);
    assert_int_equal(l.max_windows, 4096);
    assert_int_equal(l.max_events, 1024);
    assert_int_equal(l.max_past_ms, MAX_PAST);
    assert_int_equal(l.max_future_ms, MAX_FUTURE);
    assert_true(l.max_rate_hz == 1000.0);
    assert_true(l.max_depth_mm == 5.0);
    assert_true(l.max_pigment_ul == 10000.0);
}

static void test_reason_names(void **state)
{
    (void)state;
    static const char *const want[NW_REASON__COUNT] = {
        "none",          "too_big",    "malformed",    "too_complex", "missing_field",
        "bad_device_id", "bad_string", "bad_count",    "not_finite",  "out_of_range",
        "impossible",    "bad_time",   "bad_sequence", "id_mismatch", "bad_topic",
    };
    for (int r = 0; r < NW_REASON__COUNT; r++) {
        assert_string_equal(nw_reason_name((enum nw_reason)r), want[r]);
    }
    assert_string_equal(nw_reason_name(NW_REASON__COUNT), "unknown");
    assert_string_equal(nw_reason_name((enum nw_reason) - 1), "unknown");
}

static void test_reject_helper(void **state)
{
    (void)state;
    enum nw_reason reason = NW_REASON_NONE;
    struct nw_error err;
    assert_int_equal(
        nw_reject(NW_REASON_ID_MISMATCH, &reason, &err, "topic %s != payload %s", "a", "b"),
        NW_ERR_INVALID);
    assert_int_equal(reason, NW_REASON_ID_MISMATCH);
    assert_int_equal(err.code, NW_ERR_INVALID);
    assert_string_equal(err.msg, "topic a != payload b");
    assert_int_equal(nw_reject(NW_REASON_BAD_TOPIC, NULL, NULL, "x"), NW_ERR_INVALID);
}

/* ---- windows --------------------------------------------------------- */

static void test_window_valid(void **state)
{
    (void)state;
    struct nw_window w;
    good_window(&w, 1);
    expect_window_ok(&w);
    /* Idle window without session: all zero, empty strings. */
    memset(&w, 0, sizeof(w));
    w.seq = 1;
    w.start_ms = NOW;
    w.duration_ms = 1000;
    expect_window_ok(&w);
    /* Out of spec but physically possible: 160 Hz, 0.9 mm. */
    good_window(&w, 1);
    w.rate_max_hz = 160;
    w.depth_max_mm = 0.9;
    expect_window_ok(&w);
}

struct float_field {
    size_t offset;
    const char *name;
    double max;
    const char *unit;
};

static const struct float_field window_floats[] = {
    {offsetof(struct nw_window, rate_mean_hz), "rate_mean_hz", 1000, "Hz"},
    {offsetof(struct nw_window, rate_min_hz), "rate_min_hz", 1000, "Hz"},
    {offsetof(struct nw_window, rate_max_hz), "rate_max_hz", 1000, "Hz"},
    {offsetof(struct nw_window, depth_mean_mm), "depth_mean_mm", 5, "mm"},
    {offsetof(struct nw_window, depth_min_mm), "depth_min_mm", 5, "mm"},
    {offsetof(struct nw_window, depth_max_mm), "depth_max_mm", 5, "mm"},
    {offsetof(struct nw_window, pigment_ul), "pigment_ul", 10000, "uL"},
};

static void test_window_floats_not_finite_or_negative(void **state)
{
    (void)state;
    const struct {
        double v;
        enum nw_reason reason;
        const char *text;
    } bad[] = {
        {NAN, NW_REASON_NOT_FINITE, " = nan: not finite"},
        {INFINITY, NW_REASON_NOT_FINITE, " = inf: not finite"},
        {-INFINITY, NW_REASON_NOT_FINITE, " = -inf: not finite"},
        {-0.001, NW_REASON_OUT_OF_RANGE, " = -0.001: negative"},
        {-1e30, NW_REASON_OUT_OF_RANGE, " = -1e+30: negative"},
    };
    int checked = 0;
    for (size_t f = 0; f < sizeof(window_floats) / sizeof(window_floats[0]); f++) {
        for (size_t b = 0; b < sizeof(bad) / sizeof(bad[0]); b++) {
            struct nw_window w;
            good_window(&w, 1);
            *(double *)((char *)&w + window_floats[f].offset) = bad[b].v;
            char needle[96];
            snprintf(needle, sizeof(needle), "windows[0].%s%s", window_floats[f].name, bad[b].text);
            expect_window_refused(&w, bad[b].reason, needle);
            checked++;
        }
    }
    assert_int_equal(checked, 35);
}

static void test_window_floats_above_physical_limit(void **state)
{
    (void)state;
    for (size_t f = 0; f < sizeof(window_floats) / sizeof(window_floats[0]); f++) {
        struct nw_window w;
        good_window(&w, 1);
        /* Keep min <= mean <= max so only the limit is wrong. */
        double *v = (double *)((char *)&w + window_floats[f].offset);
        double over = window_floats[f].max * 1.0001;
        if (strstr(window_floats[f].name, "rate")) {
            w.rate_min_hz = w.rate_mean_hz = w.rate_max_hz = 1.0;
        } else if (strstr(window_floats[f].name, "depth")) {
            w.depth_min_mm = w.depth_mean_mm = w.depth_max_mm = 0.1;
        }
        *v = over;
        char needle[128];
        snprintf(needle, sizeof(needle), "windows[0].%s = %g: above the physical limit %g %s",
                 window_floats[f].name, over, window_floats[f].max, window_floats[f].unit);
        expect_window_refused(&w, NW_REASON_IMPOSSIBLE, needle);
        /* Exactly at the limit is possible. */
        *v = window_floats[f].max;
        if (strstr(window_floats[f].name, "min") || strstr(window_floats[f].name, "mean")) {
            continue; /* would break min <= mean <= max */
        }
        expect_window_ok(&w);
    }
}

static void test_window_rate_and_depth_examples(void **state)
{
    (void)state;
    struct nw_window w;
    struct nw_error err;
    enum nw_reason reason;
    good_window(&w, 1);
    w.rate_max_hz = 1000.1;
    assert_int_equal(check_window(&w, &reason, &err), NW_ERR_INVALID);
    assert_int_equal(reason, NW_REASON_IMPOSSIBLE);
    assert_string_equal(err.msg,
                        "windows[0].rate_max_hz = 1000.1: above the physical limit 1000 Hz");
    good_window(&w, 1);
    w.depth_max_mm = 5.1;
    assert_int_equal(check_window(&w, &reason, &err), NW_ERR_INVALID);
    assert_int_equal(reason, NW_REASON_IMPOSSIBLE);
    assert_string_equal(err.msg, "windows[0].depth_max_mm = 5.1: above the physical limit 5 mm");
    /* The limits come from struct nw_limits, not constants. */
    struct nw_limits strict = lim;
    strict.max_rate_hz = 150;
    good_window(&w, 1);
    w.rate_max_hz = 150.5;
    assert_int_equal(nw_validate_window(&w, &strict, NOW, &reason, &err), NW_ERR_INVALID);
    assert_string_equal(err.msg, "windows[0].rate_max_hz = 150.5: above the physical limit 150 Hz");
}

static void test_window_order(void **state)
{
    (void)state;
    struct nw_window w;
    good_window(&w, 1);
    w.rate_min_hz = 121; /* > mean 120 */
    expect_window_refused(&w, NW_REASON_IMPOSSIBLE,
                          "windows[0].rate: min 121 <= mean 120 <= max 121.75 does not hold");
    good_window(&w, 1);
    w.rate_mean_hz = 122; /* > max 121.75 */
    expect_window_refused(&w, NW_REASON_IMPOSSIBLE, "windows[0].rate: min 118.5 <= mean 122");
    good_window(&w, 1);
    w.depth_min_mm = 0.36; /* > mean 0.35 */
    expect_window_refused(&w, NW_REASON_IMPOSSIBLE, "windows[0].depth: min 0.36 <= mean 0.35");
    good_window(&w, 1);
    w.depth_mean_mm = 0.38; /* > max 0.37 */
    expect_window_refused(&w, NW_REASON_IMPOSSIBLE, "windows[0].depth");
    /* min > max with mean between is caught too (via one of the two). */
    good_window(&w, 1);
    w.depth_min_mm = 0.4;
    w.depth_max_mm = 0.3;
    expect_window_refused(&w, NW_REASON_IMPOSSIBLE, "windows[0].depth");
    /* Within the float slack of 0.001 is accepted; all equal is accepted. */
    good_window(&w, 1);
    w.rate_min_hz = 120.0009;
    expect_window_ok(&w);
    w.rate_min_hz = w.rate_mean_hz = w.rate_max_hz = 120;
    expect_window_ok(&w);
}

static void test_window_cycles_running_duration(void **state)
{
    (void)state;
    struct nw_window w;
    good_window(&w, 1);
    /* 1000 Hz over 1000 ms running, plus one straddling cycle: 1001. */
    w.running_ms = 1000;
    w.cycles = 1001;
    expect_window_ok(&w);
    w.cycles = 1002;
    expect_window_refused(&w, NW_REASON_IMPOSSIBLE,
                          "windows[0].cycles = 1002: more than 1000 Hz over 1000 ms running");
    /* Cycles without any running time: one straddling cycle at most. */
    w.running_ms = 0;
    w.cycles = 1;
    expect_window_ok(&w);
    w.cycles = 2;
    expect_window_refused(&w, NW_REASON_IMPOSSIBLE, "windows[0].cycles = 2");
    w.cycles = UINT64_MAX;
    expect_window_refused(&w, NW_REASON_IMPOSSIBLE, "windows[0].cycles");

    good_window(&w, 1);
    w.running_ms = 1001;
    expect_window_refused(&w, NW_REASON_IMPOSSIBLE,
                          "windows[0].running_ms = 1001: longer than the window (1000 ms)");
    w.running_ms = 1000;
    expect_window_ok(&w);

    good_window(&w, 1);
    w.running_ms = 0;
    w.cycles = 0;
    const struct {
        uint32_t duration;
        bool ok;
    } d[] = {{99, false},    {100, true}, {1000, true},       {60000, true},
             {60001, false}, {0, false},  {UINT32_MAX, false}};
    for (size_t i = 0; i < sizeof(d) / sizeof(d[0]); i++) {
        w.duration_ms = d[i].duration;
        if (d[i].ok) {
            expect_window_ok(&w);
        } else {
            char needle[80];
            snprintf(needle, sizeof(needle), "windows[0].duration_ms = %u: outside 100..60000",
                     d[i].duration);
            expect_window_refused(&w, NW_REASON_OUT_OF_RANGE, needle);
        }
    }
}

static void test_window_time_bounds_exact(void **state)
{
    (void)state;
    struct nw_window w;
    good_window(&w, 1);
    char needle[128];
    w.start_ms = NOW - MAX_PAST;
    expect_window_ok(&w);
    w.start_ms = NOW - MAX_PAST - 1;
    snprintf(needle, sizeof(needle), "windows[0].start_ms = %lld: more than 2592000 s in the past",
             (long long)w.start_ms);
    expect_window_refused(&w, NW_REASON_BAD_TIME, needle);
    w.start_ms = NOW + MAX_FUTURE;
    expect_window_ok(&w);
    w.start_ms = NOW + MAX_FUTURE + 1;
    snprintf(needle, sizeof(needle), "windows[0].start_ms = %lld: more than 300 s in the future",
             (long long)w.start_ms);
    expect_window_refused(&w, NW_REASON_BAD_TIME, needle);
    /* Far outside in both directions, and 1970. */
    w.start_ms = INT64_MIN;
    expect_window_refused(&w, NW_REASON_BAD_TIME, "in the past");
    w.start_ms = INT64_MAX;
    expect_window_refused(&w, NW_REASON_BAD_TIME, "in the future");
    w.start_ms = 0;
    expect_window_refused(&w, NW_REASON_BAD_TIME, "in the past");
}

static void test_window_strings(void **state)
{
    (void)state;
    struct nw_window w;
    good_window(&w, 1);
    strcpy(w.session_id, "s 1");
    expect_window_refused(&w, NW_REASON_BAD_STRING,
                          "windows[0].session_id: empty or 1-64 characters of [A-Za-z0-9._:-]");
    good_window(&w, 1);
    strcpy(w.cartridge_id, "C/1");
    expect_window_refused(&w, NW_REASON_BAD_STRING, "windows[0].cartridge_id");
    good_window(&w, 1);
    strcpy(w.pigment_lot, "L\xc3\xa9");
    expect_window_refused(&w, NW_REASON_BAD_STRING, "windows[0].pigment_lot");
    good_window(&w, 1);
    memset(w.session_id, 'x', NW_ID_MAX);
    w.session_id[NW_ID_MAX] = '\0';
    expect_window_ok(&w);
}

static void test_window_seq_zero(void **state)
{
    (void)state;
    struct nw_window w;
    good_window(&w, 0);
    expect_window_refused(&w, NW_REASON_BAD_SEQUENCE,
                          "windows[0].seq = 0: sequence numbers start at 1");
}

static void expect_batch(const struct nw_window_batch *b, enum nw_reason want, const char *needle)
{
    enum nw_reason reason = NW_REASON_NONE;
    struct nw_error err;
    nw_error_clear(&err);
    enum nw_err rc = nw_validate_window_batch(b, &lim, NOW, &reason, &err);
    if (want == NW_REASON_NONE) {
        if (rc != NW_OK) {
            print_error("refused: %s\n", err.msg);
        }
        assert_int_equal(rc, NW_OK);
        return;
    }
    expect_refusal(rc, reason, &err, want, needle);
}

static void test_window_batch(void **state)
{
    (void)state;
    struct nw_window w[4];
    for (size_t i = 0; i < 4; i++) {
        good_window(&w[i], 5 + i);
    }
    struct nw_window_batch b = {
        .device_id = "smp-0042", .epoch = 1, .count = 4, .capacity = 4, .windows = w};
    expect_batch(&b, NW_REASON_NONE, NULL);

    /* Gaps inside a batch are allowed (windows dropped by overflow). */
    w[3].seq = 100;
    expect_batch(&b, NW_REASON_NONE, NULL);
    w[3].seq = 8;

    w[2].seq = 6; /* equal to the previous */
    expect_batch(&b, NW_REASON_BAD_SEQUENCE, "windows[2].seq = 6: not above the previous 6");
    w[2].seq = 5; /* descending */
    expect_batch(&b, NW_REASON_BAD_SEQUENCE, "windows[2].seq = 5: not above the previous 6");
    w[2].seq = 7;
    w[0].seq = 0;
    expect_batch(&b, NW_REASON_BAD_SEQUENCE, "windows[0].seq = 0");
    w[0].seq = 5;

    /* The index of a bad window is named. */
    w[3].rate_max_hz = NAN;
    expect_batch(&b, NW_REASON_NOT_FINITE, "windows[3].rate_max_hz = nan");
    w[3].rate_max_hz = 121.75;

    b.count = 0;
    expect_batch(&b, NW_REASON_BAD_COUNT, "windows: 0 in one batch, allowed 1..4096");
    b.count = 4;
    struct nw_limits saved = lim;
    lim.max_windows = 3;
    expect_batch(&b, NW_REASON_BAD_COUNT, "windows: 4 in one batch, allowed 1..3");
    lim = saved;

    const char *bad_ids[] = {"", "smp/1", "smp+1", "#", "smp 1", "d\xc3\xa9v", "a\tb"};
    for (size_t i = 0; i < sizeof(bad_ids) / sizeof(bad_ids[0]); i++) {
        strcpy(b.device_id, bad_ids[i]);
        expect_batch(&b, NW_REASON_BAD_DEVICE_ID,
                     "device_id: needs 1-64 characters of [A-Za-z0-9_-]");
    }
    memset(b.device_id, 'a', NW_DEVICE_ID_MAX);
    b.device_id[NW_DEVICE_ID_MAX] = '\0';
    expect_batch(&b, NW_REASON_NONE, NULL);
}

/* ---- strings --------------------------------------------------------- */

static void test_valid_device_id_and_id(void **state)
{
    (void)state;
    char s[80];
    assert_true(nw_valid_device_id("smp-0042_A"));
    assert_false(nw_valid_device_id(""));
    assert_false(nw_valid_device_id(NULL));
    assert_false(nw_valid_device_id("a.b"));
    assert_false(nw_valid_device_id("a:b"));
    memset(s, 'a', 64);
    s[64] = '\0';
    assert_true(nw_valid_device_id(s));
    s[64] = 'a';
    s[65] = '\0';
    assert_false(nw_valid_device_id(s));

    assert_true(nw_valid_id("s-1.2:3x", NW_ID_MAX, false));
    assert_true(nw_valid_id("s_1", NW_ID_MAX, false));
    assert_true(nw_valid_id("", NW_ID_MAX, true));
    assert_false(nw_valid_id("", NW_ID_MAX, false));
    assert_false(nw_valid_id(NULL, NW_ID_MAX, true));
    assert_false(nw_valid_id("a b", NW_ID_MAX, true));
    assert_false(nw_valid_id("a/b", NW_ID_MAX, true));
    assert_true(nw_valid_id("abcd", 4, false));
    assert_false(nw_valid_id("abcde", 4, false));
}

struct text_case {
    const char *name;
    const char *s;
    bool ok;
};

static const struct text_case texts[] = {
    {"ascii", "motor stall: current 1.8 A", true},
    {"empty", "", true},
    {"2-byte", "Caf\xc3\xa9", true},
    {"3-byte with en dash", "Caf\xc3\xa9 Noir \xe2\x80\x93 3", true},
    {"4-byte", "needle \xf0\x9f\x92\x89", true},
    {"highest code point U+10FFFF", "\xf4\x8f\xbf\xbf", true},
    {"U+FFFD", "\xef\xbf\xbd", true},
    {"newline", "line1\nline2", false},
    {"carriage return", "a\rb", false},
    {"tab", "a\tb", false},
    {"escape", "\x1b[31mred", false},
    {"DEL", "a\x7f", false},
    {"C1 control NEL U+0085",
     "a\xc2\x85"
     "b",
     false},
    {"C1 control CSI U+009B",
     "\xc2\x9b"
     "31m",
     false},
    {"U+00A0 after the C1 range",
     "a\xc2\xa0"
     "b",
     true},
    {"lone continuation byte", "a\x80", false},
    {"0xff", "\xff", false},
    {"0xfe", "\xfe", false},
    {"5-byte lead", "\xf8\x88\x80\x80\x80", false},
    {"truncated 2-byte", "a\xc3", false},
    {"truncated 3-byte", "a\xe2\x80", false},
    {"truncated 4-byte", "\xf0\x9f\x92", false},
    {"bad continuation", "\xc3(", false},
    {"overlong '/' in 2 bytes", "\xc0\xaf", false},
    {"overlong NUL in 2 bytes", "\xc0\x80", false},
    {"overlong U+007F in 2 bytes", "\xc1\xbf", false},
    {"overlong '/' in 3 bytes", "\xe0\x80\xaf", false},
    {"overlong U+07FF in 3 bytes", "\xe0\x9f\xbf", false},
    {"overlong '/' in 4 bytes", "\xf0\x80\x80\xaf", false},
    {"overlong U+FFFF in 4 bytes", "\xf0\x8f\xbf\xbf", false},
    {"surrogate U+D800", "\xed\xa0\x80", false},
    {"surrogate U+DFFF", "\xed\xbf\xbf", false},
    {"surrogate pair (CESU-8)", "\xed\xa0\xbd\xed\xb2\x89", false},
    {"above U+10FFFF", "\xf4\x90\x80\x80", false},
    {"0xf5 lead", "\xf5\x80\x80\x80", false},
};

static void test_valid_text(void **state)
{
    (void)state;
    int failures = 0;
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        bool got = nw_valid_text(texts[i].s, NW_TEXT_MAX);
        if (got != texts[i].ok) {
            print_error("text \"%s\": got %s\n", texts[i].name, got ? "valid" : "invalid");
            failures++;
        }
    }
    assert_int_equal(failures, 0);
    assert_false(nw_valid_text(NULL, 10));
    /* The limit counts bytes, and a sequence may not straddle it. */
    assert_true(nw_valid_text("\xc3\xa9\xc3\xa9", 4));
    assert_false(nw_valid_text("\xc3\xa9\xc3\xa9", 3));
    assert_true(nw_valid_text("abc", 3));
    assert_false(nw_valid_text("abcd", 3));
}

/* Every text case through the validator of a fault event: same verdicts,
 * and the refusal names the field. */
static void test_fault_text(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        struct nw_event e;
        memset(&e, 0, sizeof(e));
        e.seq = 1;
        e.time_ms = NOW;
        e.kind = NW_EVENT_FAULT;
        e.fault_code = 3;
        snprintf(e.text, sizeof(e.text), "%s", texts[i].s);
        enum nw_reason reason = NW_REASON_NONE;
        struct nw_error err;
        nw_error_clear(&err);
        enum nw_err rc = nw_validate_event(&e, &lim, NOW, &reason, &err);
        if (texts[i].ok) {
            if (rc != NW_OK) {
                print_error("text \"%s\" refused: %s\n", texts[i].name, err.msg);
            }
            assert_int_equal(rc, NW_OK);
        } else {
            expect_refusal(rc, reason, &err, NW_REASON_BAD_STRING,
                           "events[0].text: not valid UTF-8 text of at most 200 bytes without "
                           "control characters");
        }
    }
}

/* ---- events ---------------------------------------------------------- */

static void good_event(struct nw_event *e, uint64_t seq, enum nw_event_kind kind)
{
    memset(e, 0, sizeof(*e));
    e->seq = seq;
    e->time_ms = NOW - 1000;
    e->kind = kind;
    switch (kind) {
    case NW_EVENT_POWER_ON:
        strcpy(e->firmware, "2.4.1");
        strcpy(e->boot_reason, "watchdog");
        break;
    case NW_EVENT_SESSION_START:
        strcpy(e->session_id, "s-1");
        strcpy(e->operator_code, "OP-17");
        break;
    case NW_EVENT_SESSION_END:
        strcpy(e->session_id, "s-1");
        e->end_reason = NW_SESSION_END_NORMAL;
        break;
    case NW_EVENT_CARTRIDGE_INSERTED:
        strcpy(e->cartridge_id, "C3RL-1");
        strcpy(e->needle_config, "3RL");
        strcpy(e->lot, "L-9");
        break;
    case NW_EVENT_CARTRIDGE_REMOVED:
        strcpy(e->cartridge_id, "C3RL-1");
        break;
    case NW_EVENT_PIGMENT_LOADED:
        strcpy(e->lot, "PGM-1");
        strcpy(e->shade, "Caf\xc3\xa9 Noir \xe2\x80\x93 3");
        e->volume_ul = 250;
        break;
    case NW_EVENT_FAULT:
        e->fault_code = 7;
        strcpy(e->text, "overcurrent");
        break;
    case NW_EVENT_MAINTENANCE:
        strcpy(e->action, "service");
        e->resets_service = true;
        break;
    case NW_EVENT_CALIBRATION:
        e->depth_offset_mm = -0.02;
        e->rate_scale = 1.01;
        break;
    default:
        break;
    }
}

static void expect_event(const struct nw_event *e, enum nw_reason want, const char *needle)
{
    enum nw_reason reason = NW_REASON_NONE;
    struct nw_error err;
    nw_error_clear(&err);
    enum nw_err rc = nw_validate_event(e, &lim, NOW, &reason, &err);
    if (want == NW_REASON_NONE) {
        if (rc != NW_OK) {
            print_error("refused: %s\n", err.msg);
        }
        assert_int_equal(rc, NW_OK);
        return;
    }
    expect_refusal(rc, reason, &err, want, needle);
}

static void test_event_every_kind_valid(void **state)
{
    (void)state;
    for (int k = 0; k < NW_EVENT__COUNT; k++) {
        struct nw_event e;
        good_event(&e, 1, (enum nw_event_kind)k);
        expect_event(&e, NW_REASON_NONE, NULL);
    }
    /* Optional parts: no operator code, no firmware on power on, no lot. */
    struct nw_event e;
    good_event(&e, 1, NW_EVENT_SESSION_START);
    e.operator_code[0] = '\0';
    expect_event(&e, NW_REASON_NONE, NULL);
    good_event(&e, 1, NW_EVENT_CARTRIDGE_INSERTED);
    e.lot[0] = e.needle_config[0] = '\0';
    expect_event(&e, NW_REASON_NONE, NULL);
    /* An unknown kind (decoded as unspecified) is stored, not refused. */
    good_event(&e, 1, (enum nw_event_kind)42);
    expect_event(&e, NW_REASON_NONE, NULL);
}

static void test_event_detail_refusals(void **state)
{
    (void)state;
    struct nw_event e;

    good_event(&e, 1, NW_EVENT_SESSION_START);
    strcpy(e.operator_code, "Jane Doe");
    expect_event(&e, NW_REASON_BAD_STRING,
                 "events[0].operator_code: at most 16 characters of [A-Za-z0-9_-] "
                 "(a pseudonymous code, never a name)");
    strcpy(e.operator_code, "J.Doe");
    expect_event(&e, NW_REASON_BAD_STRING, "events[0].operator_code");
    strcpy(e.operator_code, "ABCDEFGHIJKLMNOP"); /* 16: the limit */
    expect_event(&e, NW_REASON_NONE, NULL);
    good_event(&e, 1, NW_EVENT_SESSION_START);
    e.session_id[0] = '\0';
    expect_event(&e, NW_REASON_BAD_STRING, "events[0].session_id: needs 1-64 characters");

    good_event(&e, 1, NW_EVENT_SESSION_END);
    strcpy(e.session_id, "s 1");
    expect_event(&e, NW_REASON_BAD_STRING, "events[0].session_id");

    good_event(&e, 1, NW_EVENT_POWER_ON);
    strcpy(e.firmware, "2.4 beta");
    expect_event(&e, NW_REASON_BAD_STRING, "events[0].firmware");
    good_event(&e, 1, NW_EVENT_POWER_ON);
    strcpy(e.boot_reason, "cold\n");
    expect_event(&e, NW_REASON_BAD_STRING, "events[0].boot_reason");

    good_event(&e, 1, NW_EVENT_CARTRIDGE_INSERTED);
    e.cartridge_id[0] = '\0';
    expect_event(&e, NW_REASON_BAD_STRING, "events[0].cartridge_id: needs");
    good_event(&e, 1, NW_EVENT_CARTRIDGE_INSERTED);
    strcpy(e.needle_config, "3 RL");
    expect_event(&e, NW_REASON_BAD_STRING, "events[0].needle_config");
    strcpy(e.needle_config, "3RL+1M1.v2");
    expect_event(&e, NW_REASON_NONE, NULL);
    good_event(&e, 1, NW_EVENT_POWER_ON);
    strcpy(e.firmware, "2.4.1+build.7");
    expect_event(&e, NW_REASON_NONE, NULL);
    good_event(&e, 1, NW_EVENT_CARTRIDGE_INSERTED);
    strcpy(e.lot, "L#1");
    expect_event(&e, NW_REASON_BAD_STRING, "events[0].lot");
    good_event(&e, 1, NW_EVENT_CARTRIDGE_REMOVED);
    e.cartridge_id[0] = '\0';
    expect_event(&e, NW_REASON_BAD_STRING, "events[0].cartridge_id");

    good_event(&e, 1, NW_EVENT_PIGMENT_LOADED);
    e.lot[0] = '\0';
    expect_event(&e, NW_REASON_BAD_STRING, "events[0].lot: needs");
    good_event(&e, 1, NW_EVENT_PIGMENT_LOADED);
    strcpy(e.shade, "Noir\x01");
    expect_event(&e, NW_REASON_BAD_STRING, "events[0].shade");

    good_event(&e, 1, NW_EVENT_MAINTENANCE);
    strcpy(e.action, "service\r\n");
    expect_event(&e, NW_REASON_BAD_STRING, "events[0].action");
}

static void test_event_floats(void **state)
{
    (void)state;
    const struct {
        enum nw_event_kind kind;
        size_t offset;
        double v;
        enum nw_reason reason;
        const char *needle;
    } rows[] = {
        {NW_EVENT_PIGMENT_LOADED, offsetof(struct nw_event, volume_ul), NAN, NW_REASON_NOT_FINITE,
         "events[0].volume_ul = nan: not finite"},
        {NW_EVENT_PIGMENT_LOADED, offsetof(struct nw_event, volume_ul), INFINITY,
         NW_REASON_NOT_FINITE, "events[0].volume_ul = inf: not finite"},
        {NW_EVENT_PIGMENT_LOADED, offsetof(struct nw_event, volume_ul), -INFINITY,
         NW_REASON_NOT_FINITE, "events[0].volume_ul = -inf: not finite"},
        {NW_EVENT_PIGMENT_LOADED, offsetof(struct nw_event, volume_ul), -0.5,
         NW_REASON_OUT_OF_RANGE, "events[0].volume_ul = -0.5: negative"},
        {NW_EVENT_PIGMENT_LOADED, offsetof(struct nw_event, volume_ul), 10000.5,
         NW_REASON_IMPOSSIBLE, "events[0].volume_ul = 10000.5: above the physical limit 10000"},
        {NW_EVENT_PIGMENT_LOADED, offsetof(struct nw_event, volume_ul), 10000, NW_REASON_NONE,
         NULL},
        {NW_EVENT_PIGMENT_LOADED, offsetof(struct nw_event, volume_ul), 0, NW_REASON_NONE, NULL},
        {NW_EVENT_CALIBRATION, offsetof(struct nw_event, depth_offset_mm), NAN,
         NW_REASON_NOT_FINITE, "events[0].depth_offset_mm = nan: outside +-5 mm"},
        {NW_EVENT_CALIBRATION, offsetof(struct nw_event, depth_offset_mm), INFINITY,
         NW_REASON_NOT_FINITE, "events[0].depth_offset_mm = inf"},
        {NW_EVENT_CALIBRATION, offsetof(struct nw_event, depth_offset_mm), -INFINITY,
         NW_REASON_NOT_FINITE, "events[0].depth_offset_mm = -inf"},
        {NW_EVENT_CALIBRATION, offsetof(struct nw_event, depth_offset_mm), 5.1,
         NW_REASON_IMPOSSIBLE, "events[0].depth_offset_mm = 5.1: outside +-5 mm"},
        {NW_EVENT_CALIBRATION, offsetof(struct nw_event, depth_offset_mm), -5.1,
         NW_REASON_IMPOSSIBLE, "events[0].depth_offset_mm = -5.1"},
        {NW_EVENT_CALIBRATION, offsetof(struct nw_event, depth_offset_mm), -5, NW_REASON_NONE,
         NULL},
        {NW_EVENT_CALIBRATION, offsetof(struct nw_event, rate_scale), NAN, NW_REASON_NOT_FINITE,
         "events[0].rate_scale = nan: outside 0..10"},
        {NW_EVENT_CALIBRATION, offsetof(struct nw_event, rate_scale), INFINITY,
         NW_REASON_NOT_FINITE, "events[0].rate_scale = inf"},
        {NW_EVENT_CALIBRATION, offsetof(struct nw_event, rate_scale), -INFINITY,
         NW_REASON_NOT_FINITE, "events[0].rate_scale = -inf"},
        {NW_EVENT_CALIBRATION, offsetof(struct nw_event, rate_scale), -0.1, NW_REASON_OUT_OF_RANGE,
         "events[0].rate_scale = -0.1: outside 0..10"},
        {NW_EVENT_CALIBRATION, offsetof(struct nw_event, rate_scale), 10.5, NW_REASON_OUT_OF_RANGE,
         "events[0].rate_scale = 10.5"},
        {NW_EVENT_CALIBRATION, offsetof(struct nw_event, rate_scale), 10, NW_REASON_NONE, NULL},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct nw_event e;
        good_event(&e, 1, rows[i].kind);
        *(double *)((char *)&e + rows[i].offset) = rows[i].v;
        expect_event(&e, rows[i].reason, rows[i].needle);
    }
}

static void test_event_time_and_seq(void **state)
{
    (void)state;
    struct nw_event e;
    char needle[96];
    good_event(&e, 1, NW_EVENT_POWER_ON);
    e.time_ms = NOW - MAX_PAST;
    expect_event(&e, NW_REASON_NONE, NULL);
    e.time_ms = NOW - MAX_PAST - 1;
    snprintf(needle, sizeof(needle), "events[0].time_ms = %lld: more than 2592000 s in the past",
             (long long)e.time_ms);
    expect_event(&e, NW_REASON_BAD_TIME, needle);
    e.time_ms = NOW + MAX_FUTURE;
    expect_event(&e, NW_REASON_NONE, NULL);
    e.time_ms = NOW + MAX_FUTURE + 1;
    expect_event(&e, NW_REASON_BAD_TIME, "events[0].time_ms");
    e.time_ms = NOW;
    e.seq = 0;
    expect_event(&e, NW_REASON_BAD_SEQUENCE, "events[0].seq = 0: sequence numbers start at 1");
}

static void test_event_batch(void **state)
{
    (void)state;
    struct nw_event e[3];
    good_event(&e[0], 10, NW_EVENT_POWER_ON);
    good_event(&e[1], 11, NW_EVENT_SESSION_START);
    good_event(&e[2], 12, NW_EVENT_SESSION_END);
    struct nw_event_batch b = {
        .device_id = "smp-0042", .epoch = 1, .count = 3, .capacity = 3, .events = e};
    enum nw_reason reason;
    struct nw_error err;
    assert_int_equal(nw_validate_event_batch(&b, &lim, NOW, &reason, &err), NW_OK);
    e[2].seq = 11;
    assert_int_equal(nw_validate_event_batch(&b, &lim, NOW, &reason, &err), NW_ERR_INVALID);
    expect_refusal(NW_ERR_INVALID, reason, &err, NW_REASON_BAD_SEQUENCE,
                   "events[2].seq = 11: not above the previous 11");
    e[2].seq = 12;
    strcpy(e[1].operator_code, "Dr Who");
    assert_int_equal(nw_validate_event_batch(&b, &lim, NOW, &reason, &err), NW_ERR_INVALID);
    expect_refusal(NW_ERR_INVALID, reason, &err, NW_REASON_BAD_STRING, "events[1].operator_code");
    strcpy(e[1].operator_code, "OP-1");
    b.count = 0;
    assert_int_equal(nw_validate_event_batch(&b, &lim, NOW, &reason, &err), NW_ERR_INVALID);
    expect_refusal(NW_ERR_INVALID, reason, &err, NW_REASON_BAD_COUNT,
                   "events: 0 in one batch, allowed 1..1024");
    b.count = 3;
    strcpy(b.device_id, "a/b");
    assert_int_equal(nw_validate_event_batch(&b, &lim, NOW, &reason, &err), NW_ERR_INVALID);
    expect_refusal(NW_ERR_INVALID, reason, &err, NW_REASON_BAD_DEVICE_ID, "device_id");
}

/* ---- status, ack, alert ---------------------------------------------- */

static void good_status(struct nw_status *s)
{
    memset(s, 0, sizeof(*s));
    strcpy(s->device_id, "smp-0042");
    s->epoch = 1;
    s->state = NW_DEVICE_ONLINE;
    s->time_ms = NOW;
    strcpy(s->firmware, "2.4.1+build.7");
    strcpy(s->model, "DG-3000");
    strcpy(s->session_id, "s-1");
    s->heartbeat_s = 30;
}

static void expect_status(const struct nw_status *s, enum nw_reason want, const char *needle)
{
    enum nw_reason reason = NW_REASON_NONE;
    struct nw_error err;
    nw_error_clear(&err);
    enum nw_err rc = nw_validate_status(s, &lim, NOW, &reason, &err);
    if (want == NW_REASON_NONE) {
        if (rc != NW_OK) {
            print_error("refused: %s\n", err.msg);
        }
        assert_int_equal(rc, NW_OK);
        return;
    }
    expect_refusal(rc, reason, &err, want, needle);
}

static void test_status(void **state)
{
    (void)state;
    struct nw_status s;
    good_status(&s);
    expect_status(&s, NW_REASON_NONE, NULL);
    s.state = NW_DEVICE_OFFLINE;
    s.session_id[0] = '\0';
    expect_status(&s, NW_REASON_NONE, NULL);

    good_status(&s);
    s.state = NW_DEVICE_UNSPECIFIED;
    expect_status(&s, NW_REASON_MISSING_FIELD,
                  "status.state = 0: must be online (1) or offline (2)");
    s.state = (enum nw_device_state)3;
    expect_status(&s, NW_REASON_MISSING_FIELD, "status.state = 3");

    good_status(&s);
    s.time_ms = NOW - MAX_PAST;
    expect_status(&s, NW_REASON_NONE, NULL);
    s.time_ms = NOW - MAX_PAST - 1;
    expect_status(&s, NW_REASON_BAD_TIME, "time_ms");
    s.time_ms = NOW + MAX_FUTURE;
    expect_status(&s, NW_REASON_NONE, NULL);
    s.time_ms = NOW + MAX_FUTURE + 1;
    expect_status(&s, NW_REASON_BAD_TIME, "time_ms");

    good_status(&s);
    strcpy(s.firmware, "2.4 beta");
    expect_status(&s, NW_REASON_BAD_STRING,
                  "status[0].firmware: empty or 1-32 characters of [A-Za-z0-9._+-]");
    strcpy(s.firmware, "2.4:1"); /* ':' is for ids, not versions (msg.h) */
    expect_status(&s, NW_REASON_BAD_STRING, "firmware");
    memset(s.firmware, '9', NW_VERSION_MAX);
    s.firmware[NW_VERSION_MAX] = '\0';
    expect_status(&s, NW_REASON_NONE, NULL);
    s.firmware[0] = '\0';
    s.model[0] = '\0';
    expect_status(&s, NW_REASON_NONE, NULL);
    good_status(&s);
    strcpy(s.model, "DG/3000");
    expect_status(&s, NW_REASON_BAD_STRING, "model");
    good_status(&s);
    strcpy(s.session_id, "s\n1");
    expect_status(&s, NW_REASON_BAD_STRING, "session_id");
    good_status(&s);
    s.heartbeat_s = 3600;
    expect_status(&s, NW_REASON_NONE, NULL);
    s.heartbeat_s = 3601;
    expect_status(&s, NW_REASON_OUT_OF_RANGE, "status.heartbeat_s = 3601: above 3600");
    good_status(&s);
    strcpy(s.device_id, "smp 42");
    expect_status(&s, NW_REASON_BAD_DEVICE_ID, "device_id");
}

static void test_ack(void **state)
{
    (void)state;
    struct nw_ack a = {.device_id = "smp-0042", .epoch = 1, .window_seq = 0, .event_seq = 0};
    enum nw_reason reason = NW_REASON_NONE;
    struct nw_error err;
    assert_int_equal(nw_validate_ack(&a, &reason, &err), NW_OK);
    strcpy(a.device_id, "smp+1");
    assert_int_equal(nw_validate_ack(&a, &reason, &err), NW_ERR_INVALID);
    expect_refusal(NW_ERR_INVALID, reason, &err, NW_REASON_BAD_DEVICE_ID, "device_id");
    a.device_id[0] = '\0';
    assert_int_equal(nw_validate_ack(&a, NULL, NULL), NW_ERR_INVALID);
}

static void good_alert(struct nw_alert *a)
{
    memset(a, 0, sizeof(*a));
    strcpy(a->device_id, "smp-0042");
    a->alert_id = 9;
    strcpy(a->rule, "needle_rate_out_of_spec");
    a->severity = NW_SEVERITY_CRITICAL;
    a->state = NW_ALERT_FIRING;
    a->time_ms = NOW;
    a->since_ms = NOW - 2000;
    a->value = 163.25;
    a->threshold = 140;
    strcpy(a->message, "rate 163.25 Hz above 140 Hz for 2 s");
    strcpy(a->clinic, "Cl\xc3\xadnica S\xc3\xa3o Paulo, Unit 2");
    strcpy(a->model, "DG-3000");
}

static void expect_alert(const struct nw_alert *a, enum nw_reason want, const char *needle)
{
    enum nw_reason reason = NW_REASON_NONE;
    struct nw_error err;
    nw_error_clear(&err);
    enum nw_err rc = nw_validate_alert(a, &lim, NOW, &reason, &err);
    if (want == NW_REASON_NONE) {
        if (rc != NW_OK) {
            print_error("refused: %s\n", err.msg);
        }
        assert_int_equal(rc, NW_OK);
        return;
    }
    expect_refusal(rc, reason, &err, want, needle);
}

static void test_alert(void **state)
{
    (void)state;
    struct nw_alert a;
    good_alert(&a);
    expect_alert(&a, NW_REASON_NONE, NULL);
    a.value = -1e300; /* values may be negative (rule's unit) */
    a.threshold = 0;
    a.model[0] = '\0';
    expect_alert(&a, NW_REASON_NONE, NULL);

    const double nonfinite[] = {NAN, INFINITY, -INFINITY};
    for (size_t i = 0; i < 3; i++) {
        good_alert(&a);
        a.value = nonfinite[i];
        expect_alert(&a, NW_REASON_NOT_FINITE, "alert value");
        good_alert(&a);
        a.threshold = nonfinite[i];
        expect_alert(&a, NW_REASON_NOT_FINITE, "threshold");
    }
    good_alert(&a);
    a.value = NAN;
    expect_alert(&a, NW_REASON_NOT_FINITE, "alert value nan / threshold 140: not finite");

    good_alert(&a);
    strcpy(a.rule, "needle-rate");
    expect_alert(&a, NW_REASON_BAD_STRING, "alert.rule: needs 1-64 characters of [A-Za-z0-9_]");
    a.rule[0] = '\0';
    expect_alert(&a, NW_REASON_BAD_STRING, "alert.rule");

    const int bad_sev[] = {0, 4, -1};
    for (size_t i = 0; i < 3; i++) {
        good_alert(&a);
        a.severity = (enum nw_severity)bad_sev[i];
        char needle[64];
        snprintf(needle, sizeof(needle), "alert.severity = %d: outside 1..3", bad_sev[i]);
        expect_alert(&a, NW_REASON_OUT_OF_RANGE, needle);
    }
    const int bad_state[] = {0, 5};
    for (size_t i = 0; i < 2; i++) {
        good_alert(&a);
        a.state = (enum nw_alert_state)bad_state[i];
        char needle[64];
        snprintf(needle, sizeof(needle), "alert.state = %d: outside 1..4", bad_state[i]);
        expect_alert(&a, NW_REASON_OUT_OF_RANGE, needle);
    }
    good_alert(&a);
    a.state = NW_ALERT_RENOTIFY;
    a.severity = NW_SEVERITY_INFO;
    expect_alert(&a, NW_REASON_NONE, NULL);

    good_alert(&a);
    a.time_ms = NOW - MAX_PAST;
    expect_alert(&a, NW_REASON_NONE, NULL);
    a.time_ms = NOW - MAX_PAST - 1;
    expect_alert(&a, NW_REASON_BAD_TIME, "time_ms");
    a.time_ms = NOW + MAX_FUTURE + 1;
    expect_alert(&a, NW_REASON_BAD_TIME, "time_ms");

    good_alert(&a);
    strcpy(a.message, "line1\nline2");
    expect_alert(&a, NW_REASON_BAD_STRING, "alert[0].message");
    good_alert(&a);
    strcpy(a.clinic, "Clinic\xc0\xaf");
    expect_alert(&a, NW_REASON_BAD_STRING, "alert[0].clinic");
    good_alert(&a);
    strcpy(a.model, "DG 3000");
    expect_alert(&a, NW_REASON_BAD_STRING, "alert[0].model");
    good_alert(&a);
    strcpy(a.device_id, "");
    expect_alert(&a, NW_REASON_BAD_DEVICE_ID, "device_id");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limits_default),
        cmocka_unit_test(test_reason_names),
        cmocka_unit_test(test_reject_helper),
        cmocka_unit_test(test_window_valid),
        cmocka_unit_test(test_window_floats_not_finite_or_negative),
        cmocka_unit_test(test_window_floats_above_physical_limit),
        cmocka_unit_test(test_window_rate_and_depth_examples),
        cmocka_unit_test(test_window_order),
        cmocka_unit_test(test_window_cycles_running_duration),
        cmocka_unit_test(test_window_time_bounds_exact),
        cmocka_unit_test(test_window_strings),
        cmocka_unit_test(test_window_seq_zero),
        cmocka_unit_test(test_window_batch),
        cmocka_unit_test(test_valid_device_id_and_id),
        cmocka_unit_test(test_valid_text),
        cmocka_unit_test(test_fault_text),
        cmocka_unit_test(test_event_every_kind_valid),
        cmocka_unit_test(test_event_detail_refusals),
        cmocka_unit_test(test_event_floats),
        cmocka_unit_test(test_event_time_and_seq),
        cmocka_unit_test(test_event_batch),
        cmocka_unit_test(test_status),
        cmocka_unit_test(test_ack),
        cmocka_unit_test(test_alert),
    };
    return cmocka_run_group_tests(tests, setup_limits, NULL);
}

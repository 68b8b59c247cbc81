/* test_clock.c - calendar arithmetic, RFC 3339, durations, relative times. */
#include <needlewatch/clock.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void test_days_from_civil_fixed_points(void **state)
{
    (void)state;
    assert_int_equal(nw_clock_days_from_civil(1970, 1, 1), 0);
    assert_int_equal(nw_clock_days_from_civil(1969, 12, 31), -1);
    assert_int_equal(nw_clock_days_from_civil(2000, 3, 1), 11017);
    assert_int_equal(nw_clock_days_from_civil(9999, 12, 31), 2932896);
    assert_int_equal(nw_clock_days_from_civil(0, 1, 1), -719528);
    assert_int_equal(nw_clock_days_from_civil(1, 1, 1), -719162);
}

/* Every day from year -1 to 10001 converts there and back. */
static void test_civil_round_trip(void **state)
{
    (void)state;
    int64_t first = nw_clock_days_from_civil(-1, 1, 1);
    int64_t last = nw_clock_days_from_civil(10001, 12, 31);
    int64_t y, prev_y = -2;
    unsigned m, d;
    for (int64_t z = first; z <= last; z++) {
        nw_clock_civil_from_days(z, &y, &m, &d);
        if (nw_clock_days_from_civil(y, m, d) != z) {
            fail_msg("day %lld -> %lld-%u-%u does not round-trip", (long long)z, (long long)y, m,
                     d);
        }
        assert_true(m >= 1 && m <= 12 && d >= 1 && d <= 31);
        assert_true(y == prev_y || y == prev_y + 1 || prev_y == -2);
        prev_y = y;
    }
}

struct fmt_case {
    int64_t ms;
    const char *text;
};

static void test_format_rfc3339(void **state)
{
    (void)state;
    static const struct fmt_case cases[] = {
        {0, "1970-01-01T00:00:00.000Z"},
        {1795314780123, "2026-11-22T02:33:00.123Z"},
        {-1, "1969-12-31T23:59:59.999Z"},
        {1709208000000, "2024-02-29T12:00:00.000Z"},
        {951868799999, "2000-02-29T23:59:59.999Z"},
        {253402300799999, "9999-12-31T23:59:59.999Z"},
        {-62167219200000, "0000-01-01T00:00:00.000Z"},
    };
    char out[NW_CLOCK_RFC3339_SIZE];
    for (size_t i = 0; i < N(cases); i++) {
        assert_int_equal(nw_clock_format_rfc3339(cases[i].ms, out), NW_OK);
        assert_string_equal(out, cases[i].text);
    }
    assert_int_equal(nw_clock_format_rfc3339(253402300800000, out), NW_ERR_INVAL);
    assert_string_equal(out, "");
    assert_int_equal(nw_clock_format_rfc3339(-62167219200001, out), NW_ERR_INVAL);
    assert_int_equal(nw_clock_format_rfc3339(INT64_MIN, out), NW_ERR_INVAL);
    assert_int_equal(nw_clock_format_rfc3339(INT64_MAX, out), NW_ERR_INVAL);
}

static void test_parse_rfc3339_good(void **state)
{
    (void)state;
    static const struct fmt_case cases[] = {
        {1795314780123, "2026-11-22T02:33:00.123Z"},
        {1795314780123, "2026-11-22t02:33:00.123z"},
        {1795314780123, "2026-11-22 02:33:00.123Z"},
        {1795314780000, "2026-11-22T02:33:00Z"},
        {1795314780100, "2026-11-22T02:33:00.1Z"},
        {1795314780120, "2026-11-22T02:33:00.12Z"},
        {1795314780123, "2026-11-22T02:33:00.1234Z"},
        {1795314780123, "2026-11-22T02:33:00.12399Z"},
        {1795314780123, "2026-11-22T02:33:00.123999Z"},
        {1795314780123, "2026-11-22T02:33:00.1239999Z"},
        {1795314780123, "2026-11-22T02:33:00.12399999Z"},
        {1795314780999, "2026-11-22T02:33:00.999999999Z"},
        {1795314780123, "2026-11-22T03:33:00.123+01:00"},
        {1795314780000, "2026-11-21T21:03:00-05:30"},
        {1795314780000, "2026-11-22T02:33:00+00:00"},
        {1795314780000, "2026-11-22T02:33:00-00:00"},
        {1795314780000, "2026-11-23T02:32:00+23:59"},
        {0, "1970-01-01T00:00:00Z"},
        {-1, "1969-12-31T23:59:59.999Z"},
        {1709208000000, "2024-02-29T12:00:00Z"},
        {951868799999, "2000-02-29T23:59:59.999Z"},
        {253402300799999, "9999-12-31T23:59:59.999Z"},
        {-62167219200000, "0000-01-01T00:00:00Z"},
        /* Leap second: clamped to the last millisecond of the day (UTC). */
        {1483228799999, "2016-12-31T23:59:60Z"},
        {1483228799999, "2016-12-31T23:59:60.5Z"},
        {1483228799999, "2017-01-01T00:59:60+01:00"},
    };
    for (size_t i = 0; i < N(cases); i++) {
        int64_t ms = 42;
        struct nw_error err;
        nw_error_clear(&err);
        if (nw_clock_parse_rfc3339(cases[i].text, &ms, &err) != NW_OK) {
            fail_msg("%s: %s", cases[i].text, err.msg);
        }
        if (ms != cases[i].ms) {
            fail_msg("%s: got %lld want %lld", cases[i].text, (long long)ms,
                     (long long)cases[i].ms);
        }
    }
}

struct bad_case {
    const char *text;
    const char *reason;
};

static void test_parse_rfc3339_bad(void **state)
{
    (void)state;
    static const struct bad_case cases[] = {
        {"", "expected a date as YYYY-MM-DD"},
        {"garbage", "expected a date as YYYY-MM-DD"},
        {"26-11-22T02:33:00Z", "expected a date as YYYY-MM-DD"},
        {"2026-1-22T02:33:00Z", "expected a date as YYYY-MM-DD"},
        {"2026-11-22", "expected 'T' between date and time"},
        {"2026-11-22X02:33:00Z", "expected 'T' between date and time"},
        {"2026-13-01T00:00:00Z", "month 13 out of range"},
        {"2026-00-01T00:00:00Z", "month 0 out of range"},
        {"2026-11-31T00:00:00Z", "day 31 out of range for 2026-11"},
        {"2026-11-00T00:00:00Z", "day 0 out of range for 2026-11"},
        {"2023-02-29T00:00:00Z", "day 29 out of range for 2023-02"},
        {"1900-02-29T00:00:00Z", "day 29 out of range for 1900-02"},
        {"2026-11-22T24:00:00Z", "hour 24 out of range"},
        {"2026-11-22T02:60:00Z", "minute 60 out of range"},
        {"2026-11-22T02:33:61Z", "second 61 out of range"},
        {"2026-11-22T02:33:60Z", "second 60 is only valid at 23:59:60 UTC"},
        {"2016-12-31T23:59:60+01:00", "second 60 is only valid at 23:59:60 UTC"},
        {"2026-11-22T2:33:00Z", "expected a time as HH:MM:SS"},
        {"2026-11-22T02:33Z", "expected a time as HH:MM:SS"},
        {"2026-11-22T02:33:00", "expected time zone 'Z' or +hh:mm/-hh:mm"},
        {"2026-11-22T02:33:00.Z", "expected digits after '.'"},
        {"2026-11-22T02:33:00.1234567890Z", "more than 9 fraction digits"},
        {"2026-11-22T02:33:00+0100", "expected time zone offset as +hh:mm/-hh:mm"},
        {"2026-11-22T02:33:00+1", "expected time zone offset as +hh:mm/-hh:mm"},
        {"2026-11-22T02:33:00+24:00", "time zone offset out of range"},
        {"2026-11-22T02:33:00+01:60", "time zone offset out of range"},
        {"2026-11-22T02:33:00ZZ", "unexpected characters after the time zone"},
        {"2026-11-22T02:33:00Z ", "unexpected characters after the time zone"},
        {" 2026-11-22T02:33:00Z", "expected a date as YYYY-MM-DD"},
        {"-2026-11-22T02:33:00Z", "expected a date as YYYY-MM-DD"},
        {"2026-11-22T02:33:00UTC", "expected time zone 'Z' or +hh:mm/-hh:mm"},
    };
    for (size_t i = 0; i < N(cases); i++) {
        int64_t ms = 42;
        struct nw_error err;
        nw_error_clear(&err);
        enum nw_err rc = nw_clock_parse_rfc3339(cases[i].text, &ms, &err);
        if (rc != NW_ERR_INVALID || strcmp(err.msg, cases[i].reason) != 0) {
            fail_msg("\"%s\": rc %d, reason \"%s\", want \"%s\"", cases[i].text, rc, err.msg,
                     cases[i].reason);
        }
        assert_int_equal(ms, 42);
    }
    int64_t ms;
    assert_int_equal(nw_clock_parse_rfc3339("x", &ms, NULL), NW_ERR_INVALID);
}

/* Format then parse gives the same ms, across the whole supported range. */
static void test_rfc3339_round_trip(void **state)
{
    (void)state;
    const int64_t lo = -62167219200000, hi = 253402300799999;
    const int64_t step = 86400000 * 3 + 3723456; /* walks through all hours and ms */
    char out[NW_CLOCK_RFC3339_SIZE];
    for (int64_t ms = lo; ms <= hi; ms += step) {
        int64_t back;
        assert_int_equal(nw_clock_format_rfc3339(ms, out), NW_OK);
        assert_int_equal(nw_clock_parse_rfc3339(out, &back, NULL), NW_OK);
        assert_int_equal(back, ms);
    }
}

struct dur_case {
    const char *text;
    int64_t ms;
};

static void test_parse_duration_good(void **state)
{
    (void)state;
    static const struct dur_case cases[] = {
        {"0", 0},
        {"0s", 0},
        {"0ms", 0},
        {"500ms", 500},
        {"90s", 90000},
        {"2s", 2000},
        {"1.5m", 90000},
        {"2h", 7200000},
        {"7d", 604800000},
        {"1h30m", 5400000},
        {"1d2h3m4s5ms", 93784005},
        {"0.5s", 500},
        {"0.001s", 1},
        {"1.25h", 4500000},
        {"0.000000001d", 0 /* placeholder, see below */},
        {"106751991167d", 9223372036828800000},
    };
    for (size_t i = 0; i < N(cases); i++) {
        if (strcmp(cases[i].text, "0.000000001d") == 0) {
            continue; /* 86.4 us: rejected, tested in the bad table */
        }
        int64_t ms = -1;
        struct nw_error err;
        nw_error_clear(&err);
        if (nw_clock_parse_duration_ms(cases[i].text, &ms, &err) != NW_OK) {
            fail_msg("%s: %s", cases[i].text, err.msg);
        }
        if (ms != cases[i].ms) {
            fail_msg("%s: got %lld want %lld", cases[i].text, (long long)ms,
                     (long long)cases[i].ms);
        }
    }
}

static void test_parse_duration_bad(void **state)
{
    (void)state;
    static const struct bad_case cases[] = {
        {"", "empty duration"},
        {"2x", "unknown unit \"x\" (use ms, s, m, h, d)"},
        {"5", "missing unit (use ms, s, m, h, d)"},
        {"10 s", "missing unit (use ms, s, m, h, d)"},
        {"-5s", "expected a number"},
        {"+5s", "expected a number"},
        {"s", "expected a number"},
        {"1h1h", "units must be in order d, h, m, s, ms"},
        {"30m1h", "units must be in order d, h, m, s, ms"},
        {"1s500", "missing unit (use ms, s, m, h, d)"},
        {"1.s", "expected digits after '.'"},
        {".5s", "expected a number"},
        {"0.0001s", "not a whole number of milliseconds"},
        {"0.000000001d", "not a whole number of milliseconds"},
        {"1.0000000001s", "more than 9 fraction digits"},
        {"106751991168d", "duration too large"},
        {"99999999999999999999s", "number too large"},
        {"106751991167d8h", "duration too large"},
        {"2S", "unknown unit \"S\" (use ms, s, m, h, d)"},
        {"1us", "unknown unit \"us\" (use ms, s, m, h, d)"},
        {"1w", "unknown unit \"w\" (use ms, s, m, h, d)"},
        {"1sec", "unknown unit \"sec\" (use ms, s, m, h, d)"},
    };
    for (size_t i = 0; i < N(cases); i++) {
        int64_t ms = 42;
        struct nw_error err;
        nw_error_clear(&err);
        enum nw_err rc = nw_clock_parse_duration_ms(cases[i].text, &ms, &err);
        if (rc != NW_ERR_INVALID || strcmp(err.msg, cases[i].reason) != 0) {
            fail_msg("\"%s\": rc %d, reason \"%s\", want \"%s\"", cases[i].text, rc, err.msg,
                     cases[i].reason);
        }
        assert_int_equal(ms, 42);
    }
}

static void test_format_duration(void **state)
{
    (void)state;
    static const struct dur_case cases[] = {
        {"0s", 0},
        {"1ms", 1},
        {"500ms", 500},
        {"1s", 1000},
        {"1m30s", 90000},
        {"1h30m", 5400000},
        {"7d", 604800000},
        {"1d2h3m4s5ms", 93784005},
        {"1m500ms", 60500},
        {"-2s", -2000},
        {"106751991167d4h", 9223372036843200000},
        {"-106751991167d7h12m55s808ms", INT64_MIN},
        {"106751991167d7h12m55s807ms", INT64_MAX},
    };
    char out[NW_CLOCK_DURATION_SIZE];
    for (size_t i = 0; i < N(cases); i++) {
        assert_string_equal(nw_clock_format_duration(cases[i].ms, out), cases[i].text);
        int64_t back;
        if (cases[i].ms >= 0) {
            assert_int_equal(nw_clock_parse_duration_ms(out, &back, NULL), NW_OK);
            assert_int_equal(back, cases[i].ms);
        }
    }
}

static void test_parse_time_relative(void **state)
{
    (void)state;
    const int64_t now = 1795314780123; /* 2026-11-22T02:33:00.123Z */
    static const struct dur_case cases[] = {
        {"now", 1795314780123},
        {"-7d", 1795314780123 - 7 * 86400000LL},
        {"-12h", 1795314780123 - 12 * 3600000LL},
        {"-30m", 1795314780123 - 30 * 60000LL},
        {"-1h30m", 1795314780123 - 5400000LL},
        {"+2h", 1795314780123 + 7200000LL},
        {"-0s", 1795314780123},
        {"2026-11-22", 1795305600000},
        {"2026-11-22T02:33:00Z", 1795314780000},
        {"2026-11-22T03:33:00.123+01:00", 1795314780123},
    };
    for (size_t i = 0; i < N(cases); i++) {
        int64_t ms = 0;
        struct nw_error err;
        nw_error_clear(&err);
        if (nw_clock_parse_time(cases[i].text, now, &ms, &err) != NW_OK) {
            fail_msg("%s: %s", cases[i].text, err.msg);
        }
        assert_int_equal(ms, cases[i].ms);
    }
}

static void test_parse_time_bad(void **state)
{
    (void)state;
    static const struct bad_case cases[] = {
        {"", "expected RFC 3339 (2026-11-22T02:33:00Z), a date, \"now\" or a relative time "
             "like -7d"},
        {"yesterday", "expected RFC 3339 (2026-11-22T02:33:00Z), a date, \"now\" or a "
                      "relative time like -7d"},
        {"NOW", "expected RFC 3339 (2026-11-22T02:33:00Z), a date, \"now\" or a relative "
                "time like -7d"},
        {"-7", "missing unit (use ms, s, m, h, d)"},
        {"-7x", "unknown unit \"x\" (use ms, s, m, h, d)"},
        {"-", "empty duration"},
        {"--7d", "expected a number"},
        {"2026-02-30", "day 30 out of range for 2026-02"},
        {"2026-11-22T25:00:00Z", "hour 25 out of range"},
        {"+106751991167d", "relative time out of range"},
    };
    for (size_t i = 0; i < N(cases); i++) {
        int64_t ms = 42;
        struct nw_error err;
        nw_error_clear(&err);
        enum nw_err rc = nw_clock_parse_time(cases[i].text, 1795314780123, &ms, &err);
        if (rc != NW_ERR_INVALID || strcmp(err.msg, cases[i].reason) != 0) {
            fail_msg("\"%s\": rc %d, reason \"%s\", want \"%s\"", cases[i].text, rc, err.msg,
                     cases[i].reason);
        }
        assert_int_equal(ms, 42);
    }
}

static void test_fake_clock(void **state)
{
    (void)state;
    nw_clock_fake_set(1795314780123, 5000000000);
    assert_int_equal(nw_clock_realtime_ms(), 1795314780123);
    assert_int_equal(nw_clock_mono_ns(), 5000000000);
    assert_int_equal(nw_clock_mono_ms(), 5000);
    nw_clock_fake_advance_ms(1500);
    assert_int_equal(nw_clock_realtime_ms(), 1795314781623);
    assert_int_equal(nw_clock_mono_ms(), 6500);
    nw_clock_fake_clear();
    /* The real clocks: after 2020, and monotonic never goes back. */
    assert_true(nw_clock_realtime_ms() > 1577836800000);
    int64_t a = nw_clock_mono_ns(), b = nw_clock_mono_ns();
    assert_true(b >= a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_days_from_civil_fixed_points),
        cmocka_unit_test(test_civil_round_trip),
        cmocka_unit_test(test_format_rfc3339),
        cmocka_unit_test(test_parse_rfc3339_good),
        cmocka_unit_test(test_parse_rfc3339_bad),
        cmocka_unit_test(test_rfc3339_round_trip),
        cmocka_unit_test(test_parse_duration_good),
        cmocka_unit_test(test_parse_duration_bad),
        cmocka_unit_test(test_format_duration),
        cmocka_unit_test(test_parse_time_relative),
        cmocka_unit_test(test_parse_time_bad),
        cmocka_unit_test(test_fake_clock),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

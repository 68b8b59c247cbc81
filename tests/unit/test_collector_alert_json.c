/*
 * test_collector_alert_json.c - the webhook's JSON (collector/alert_json.c),
 * byte for byte: the whole object, string escaping of hostile bytes
 * (controls, quotes, C1, U+2028, every kind of invalid UTF-8), numbers JSON
 * cannot carry, times, the worst-case size bound, and cut-off buffers.
 */
#include "alert_json.h"

#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>

#include <cmocka.h>

static struct nw_alert sample(void)
{
    struct nw_alert a;
    memset(&a, 0, sizeof(a));
    snprintf(a.device_id, sizeof(a.device_id), "SIM-0007");
    a.alert_id = 1234567890123456789ull;
    snprintf(a.rule, sizeof(a.rule), "needle_rate_out_of_spec");
    a.severity = NW_SEVERITY_CRITICAL;
    a.state = NW_ALERT_FIRING;
    a.time_ms = 1795341602000; /* 2026-11-22T10:00:02.000Z */
    a.since_ms = 1795341600000;
    a.value = 151.2;
    a.threshold = 140;
    snprintf(a.message, sizeof(a.message), "rate 151.2 Hz > 140 Hz for 2 s");
    snprintf(a.clinic, sizeof(a.clinic), "Cl\xc3\xadnica S\xc3\xa3o Paulo, Unit 2");
    snprintf(a.model, sizeof(a.model), "DG-3");
    a.late = false;
    return a;
}

static const char *format_ok(const struct nw_alert *a, char *buf, size_t cap)
{
    size_t len = 0;
    assert_int_equal(alert_json_format(a, buf, cap, &len), NW_OK);
    assert_int_equal(len, strlen(buf));
    return buf;
}

static void whole_object(void **state)
{
    (void)state;
    char buf[ALERT_JSON_MAX];
    struct nw_alert a = sample();
    assert_string_equal(
        format_ok(&a, buf, sizeof(buf)),
        "{\"device\":\"SIM-0007\",\"clinic\":\"Cl\xc3\xadnica S\xc3\xa3o Paulo, Unit 2\","
        "\"model\":\"DG-3\",\"rule\":\"needle_rate_out_of_spec\",\"severity\":\"critical\","
        "\"state\":\"firing\",\"alert_id\":\"1234567890123456789\",\"value\":151.2,"
        "\"threshold\":140,\"message\":\"rate 151.2 Hz > 140 Hz for 2 s\","
        "\"time\":\"2026-11-22T10:00:02.000Z\",\"since\":\"2026-11-22T10:00:00.000Z\","
        "\"late\":false}");

    a.state = NW_ALERT_RESOLVED;
    a.severity = NW_SEVERITY_WARNING;
    a.late = true;
    a.alert_id = UINT64_MAX;
    a.clinic[0] = a.model[0] = a.message[0] = '\0';
    a.since_ms = 0;
    a.value = -0.0;
    a.threshold = 0.1;
    assert_string_equal(format_ok(&a, buf, sizeof(buf)),
                        "{\"device\":\"SIM-0007\",\"clinic\":\"\",\"model\":\"\","
                        "\"rule\":\"needle_rate_out_of_spec\",\"severity\":\"warning\","
                        "\"state\":\"resolved\",\"alert_id\":\"18446744073709551615\","
                        "\"value\":-0,\"threshold\":0.1,\"message\":\"\","
                        "\"time\":\"2026-11-22T10:00:02.000Z\",\"since\":null,\"late\":true}");
}

static void names_of_every_state_and_unknown_values(void **state)
{
    (void)state;
    static const struct {
        enum nw_alert_state st;
        const char *name;
    } states[] = {{NW_ALERT_FIRING, "\"state\":\"firing\""},
                  {NW_ALERT_RESOLVED, "\"state\":\"resolved\""},
                  {NW_ALERT_ACKNOWLEDGED, "\"state\":\"acknowledged\""},
                  {NW_ALERT_RENOTIFY, "\"state\":\"renotify\""},
                  {(enum nw_alert_state)77, "\"state\":\"unspecified\""}};
    char buf[ALERT_JSON_MAX];
    for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++) {
        struct nw_alert a = sample();
        a.state = states[i].st;
        a.severity = (enum nw_severity)(i == 4 ? 99 : (int)NW_SEVERITY_INFO);
        format_ok(&a, buf, sizeof(buf));
        assert_non_null(strstr(buf, states[i].name));
        assert_non_null(
            strstr(buf, i == 4 ? "\"severity\":\"unspecified\"" : "\"severity\":\"info\""));
    }
}

/* The inside of the JSON string made of s[0..len). */
static const char *escaped(const char *s, size_t len)
{
    static char buf[ALERT_JSON_MAX];
    size_t n = alert_json_escape(buf, 0, sizeof(buf), s, len);
    assert_int_not_equal(n, (size_t)-1);
    assert_int_equal(n, strlen(buf));
    return buf;
}

#define ESC(lit) escaped(lit, sizeof(lit) - 1)

static void escapes_quotes_backslashes_and_controls(void **state)
{
    (void)state;
    assert_string_equal(ESC("plain text 123"), "plain text 123");
    assert_string_equal(ESC("say \"hi\""), "say \\\"hi\\\"");
    assert_string_equal(ESC("C:\\dir\\"), "C:\\\\dir\\\\");
    assert_string_equal(ESC("a\nb\rc\td\be\ff"), "a\\nb\\rc\\td\\be\\ff");
    assert_string_equal(ESC("\x01\x1f\x7f"), "\\u0001\\u001f\\u007f");
    assert_string_equal(ESC("\x1b[31mred"), "\\u001b[31mred");
    /* a NUL inside the given length is data, escaped like any control */
    assert_string_equal(escaped("a\0b", 3), "a\\u0000b");
    /* '/' and '<' need no escape in JSON and are left alone */
    assert_string_equal(ESC("</script><!--"), "</script><!--");
    /* a receiver that builds JSON by hand must not be tricked by a key */
    assert_string_equal(ESC("\",\"severity\":\"info"), "\\\",\\\"severity\\\":\\\"info");
}

static void passes_utf8_and_escapes_c1_and_line_separators(void **state)
{
    (void)state;
    /* é, ✓, 😀 (two, three, four bytes), U+FFFF and U+10FFFF: copied */
    assert_string_equal(ESC("\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x98\x80"),
                        "\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x98\x80");
    assert_string_equal(ESC("\xef\xbf\xbf\xf4\x8f\xbf\xbf"), "\xef\xbf\xbf\xf4\x8f\xbf\xbf");
    assert_string_equal(ESC("\xc2\xa0"), "\xc2\xa0"); /* U+00A0, just above C1 */
    /* C1 controls U+0080, U+0085, U+009F */
    assert_string_equal(ESC("\xc2\x80\xc2\x85\xc2\x9f"), "\\u0080\\u0085\\u009f");
    /* U+2028, U+2029: legal JSON, but not in a JavaScript string literal */
    assert_string_equal(ESC("a\xe2\x80\xa8z\xe2\x80\xa9"), "a\\u2028z\\u2029");
    assert_string_equal(ESC("\xe2\x80\xa7"), "\xe2\x80\xa7"); /* U+2027: copied */
}

static void replaces_every_invalid_byte(void **state)
{
    (void)state;
    assert_string_equal(ESC("\xff"), "\\ufffd");
    assert_string_equal(ESC("a\xfe\xff"
                            "b"),
                        "a\\ufffd\\ufffdb");
    assert_string_equal(ESC("\x80"), "\\ufffd");                       /* lone continuation */
    assert_string_equal(ESC("\xc0\xaf"), "\\ufffd\\ufffd");            /* overlong '/' */
    assert_string_equal(ESC("\xc1\xbf"), "\\ufffd\\ufffd");            /* overlong */
    assert_string_equal(ESC("\xe0\x80\xaf"), "\\ufffd\\ufffd\\ufffd"); /* overlong 3 */
    assert_string_equal(ESC("\xf0\x80\x80\xaf"), "\\ufffd\\ufffd\\ufffd\\ufffd");
    assert_string_equal(ESC("\xed\xa0\x80"), "\\ufffd\\ufffd\\ufffd"); /* surrogate D800 */
    assert_string_equal(ESC("\xf4\x90\x80\x80"), "\\ufffd\\ufffd\\ufffd\\ufffd"); /* > 10FFFF */
    assert_string_equal(ESC("\xf5\x80\x80\x80"), "\\ufffd\\ufffd\\ufffd\\ufffd");
    /* truncated sequences, at the end and before ASCII */
    assert_string_equal(ESC("ok\xe2\x82"), "ok\\ufffd\\ufffd");
    assert_string_equal(ESC("\xe2\x82"
                            "A"),
                        "\\ufffd\\ufffdA");
    assert_string_equal(ESC("\xf0\x9f\x98"
                            "\""),
                        "\\ufffd\\ufffd\\ufffd\\\"");
    /* a truncated sequence does not swallow a following valid one */
    assert_string_equal(ESC("\xc3\xc3\xa9"), "\\ufffd\xc3\xa9");
    /* the end of the given length cuts a sequence like any other end */
    assert_string_equal(escaped("\xc3\xa9", 1), "\\ufffd");
}

static void hostile_alert_fields(void **state)
{
    (void)state;
    char buf[ALERT_JSON_MAX];
    struct nw_alert a = sample();
    snprintf(a.device_id, sizeof(a.device_id), "dev\"ice");
    snprintf(a.rule, sizeof(a.rule), "r\\u0022");
    snprintf(a.message, sizeof(a.message), "line1\nline2\t\"q\" \xe2\x80\xa8 \xff end");
    snprintf(a.clinic, sizeof(a.clinic), "}\x01{");
    snprintf(a.model, sizeof(a.model), "\x7f");
    format_ok(&a, buf, sizeof(buf));
    assert_string_equal(buf,
                        "{\"device\":\"dev\\\"ice\",\"clinic\":\"}\\u0001{\",\"model\":\"\\u007f\","
                        "\"rule\":\"r\\\\u0022\",\"severity\":\"critical\",\"state\":\"firing\","
                        "\"alert_id\":\"1234567890123456789\",\"value\":151.2,\"threshold\":140,"
                        "\"message\":\"line1\\nline2\\t\\\"q\\\" \\u2028 \\ufffd end\","
                        "\"time\":\"2026-11-22T10:00:02.000Z\","
                        "\"since\":\"2026-11-22T10:00:00.000Z\",\"late\":false}");
}

static void numbers_json_cannot_carry_and_shortest_forms(void **state)
{
    (void)state;
    static const struct {
        double v;
        const char *want;
    } cases[] = {
        {NAN, "null"},
        {INFINITY, "null"},
        {-INFINITY, "null"},
        {0, "0"},
        {120.13, "120.13"},
        {0.25, "0.25"},
        {1e300, "1e+300"},
        {-5e-324, "-5e-324"},
        {1.0 / 3, "0.3333333333333333"},
        {0.1 + 0.2, "0.30000000000000004"},
        {123456789012345678.0, "1.2345678901234568e+17"},
        {1500000, "1500000"},
        {-2e16, "-20000000000000000"},
        {1e-5, "1e-05"},
        {0.0001, "0.0001"},
    };
    char buf[ALERT_JSON_MAX], want[128];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct nw_alert a = sample();
        a.value = cases[i].v;
        a.threshold = cases[i].v;
        format_ok(&a, buf, sizeof(buf));
        snprintf(want, sizeof(want), "\"value\":%s,\"threshold\":%s,", cases[i].want,
                 cases[i].want);
        if (!strstr(buf, want)) {
            fail_msg("%g: %s lacks %s", cases[i].v, buf, want);
        }
        if (isfinite(cases[i].v)) {
            const char *p = strstr(buf, "\"value\":") + 8;
            assert_true(strtod(p, NULL) == cases[i].v); /* reads back exactly */
        }
    }
}

static void times_out_of_range_are_null(void **state)
{
    (void)state;
    char buf[ALERT_JSON_MAX];
    struct nw_alert a = sample();
    a.time_ms = INT64_MIN;
    a.since_ms = INT64_MAX;
    format_ok(&a, buf, sizeof(buf));
    assert_non_null(strstr(buf, ",\"time\":null,\"since\":null,\"late\":false}"));
    a.time_ms = 0;
    a.since_ms = -1;
    format_ok(&a, buf, sizeof(buf));
    assert_non_null(strstr(buf, ",\"time\":\"1970-01-01T00:00:00.000Z\",\"since\":null,"));
}

/* Every string field full, without its NUL, of bytes that escape to six. */
static void worst_case_fits_the_bound(void **state)
{
    (void)state;
    static const unsigned char fills[] = {0x01, 0xff, 0x80, '"'};
    char buf[ALERT_JSON_MAX];
    for (size_t f = 0; f < sizeof(fills); f++) {
        struct nw_alert a;
        memset(&a, fills[f], sizeof(a)); /* no NUL anywhere in the strings */
        a.alert_id = UINT64_MAX;
        a.severity = (enum nw_severity) - 1;
        a.state = (enum nw_alert_state) - 1;
        a.time_ms = 253402300799999; /* 9999-12-31T23:59:59.999Z */
        a.since_ms = 253402300799999;
        a.value = -4.9406564584124654e-324;
        a.threshold = -1.7976931348623157e308;
        a.late = true;
        size_t len = 0;
        assert_int_equal(alert_json_format(&a, buf, sizeof(buf), &len), NW_OK);
        assert_true(len < ALERT_JSON_MAX);
        /* each field was read up to the end of its array, no further */
        size_t per = fills[f] == '"' ? 2 : 6;
        size_t strings = NW_DEVICE_ID_MAX + 1 + NW_NAME_MAX + 1 + NW_TEXT_MAX + 1 + NW_CLINIC_MAX +
                         1 + NW_VERSION_MAX + 1;
        assert_true(len > strings * per);
        for (size_t i = 0; i < len; i++) {
            assert_true((unsigned char)buf[i] >= 0x20 && (unsigned char)buf[i] < 0x7f);
        }
    }
}

static void cut_buffers_refuse_and_leave_an_empty_string(void **state)
{
    (void)state;
    char full[ALERT_JSON_MAX], buf[ALERT_JSON_MAX];
    struct nw_alert a = sample();
    snprintf(a.message, sizeof(a.message), "\xe2\x9c\x93 \"x\" \x01");
    size_t len = 0;
    assert_int_equal(alert_json_format(&a, full, sizeof(full), &len), NW_OK);
    for (size_t cap = 0; cap <= len; cap++) {
        size_t got = 99;
        memset(buf, 'Z', sizeof(buf));
        assert_int_equal(alert_json_format(&a, buf, cap, &got), NW_ERR_TOO_BIG);
        assert_int_equal(got, 99);
        if (cap > 0) {
            assert_int_equal(buf[0], '\0');
        }
        assert_int_equal(buf[cap], 'Z'); /* nothing written at or past cap */
    }
    assert_int_equal(alert_json_format(&a, buf, len + 1, &len), NW_OK);
    assert_string_equal(buf, full);
    assert_int_equal(alert_json_format(NULL, buf, sizeof(buf), &len), NW_ERR_INVAL);
    assert_int_equal(alert_json_format(&a, NULL, sizeof(buf), &len), NW_ERR_INVAL);
    /* the escaper alone: no room for the NUL is no room */
    assert_int_equal(alert_json_escape(buf, 0, 3, "abc", 3), (size_t)-1);
    assert_int_equal(alert_json_escape(buf, 0, 4, "abc", 3), 3);
    assert_int_equal(alert_json_escape(buf, 0, 6, "\x01", 1), (size_t)-1);
    assert_int_equal(alert_json_escape(buf, 2, 9, "\x01", 1), 8);
    assert_int_equal(alert_json_escape(buf, 9, 9, "", 0), (size_t)-1);
}

/* Random bytes in every field: always printable ASCII or UTF-8 the escaper
 * copied from valid input, never a raw control byte, always within bounds. */
static void random_bytes_never_break_out(void **state)
{
    (void)state;
    char buf[ALERT_JSON_MAX];
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (int round = 0; round < 20000; round++) {
        struct nw_alert a;
        unsigned char *p = (unsigned char *)&a;
        for (size_t i = 0; i < sizeof(a); i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            p[i] = (unsigned char)(x >> 24);
        }
        a.late = (x & 1) != 0;
        size_t len = 0;
        assert_int_equal(alert_json_format(&a, buf, sizeof(buf), &len), NW_OK);
        assert_int_equal(buf[0], '{');
        assert_int_equal(buf[len - 1], '}');
        size_t quotes = 0;
        for (size_t i = 0; i < len; i++) {
            unsigned char c = (unsigned char)buf[i];
            assert_true(c >= 0x20 && c != 0x7f);
            if (c == '\\') {
                i++; /* the escaped character */
            } else if (c == '"') {
                quotes++;
            }
        }
        /* 13 keys, 8 string values, up to 2 quoted times */
        assert_true(quotes >= 2 * 21 && quotes <= 2 * 23);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(whole_object),
        cmocka_unit_test(names_of_every_state_and_unknown_values),
        cmocka_unit_test(escapes_quotes_backslashes_and_controls),
        cmocka_unit_test(passes_utf8_and_escapes_c1_and_line_separators),
        cmocka_unit_test(replaces_every_invalid_byte),
        cmocka_unit_test(hostile_alert_fields),
        cmocka_unit_test(numbers_json_cannot_carry_and_shortest_forms),
        cmocka_unit_test(times_out_of_range_are_null),
        cmocka_unit_test(worst_case_fits_the_bound),
        cmocka_unit_test(cut_buffers_refuse_and_leave_an_empty_string),
        cmocka_unit_test(random_bytes_never_break_out),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_lp.c - the line-protocol encoder, byte for byte.
 *
 * Expected lines are written out literally (never produced by the code under
 * test), hostile inputs are tables: each row names the input, the code it must
 * get and words its reason must contain. The rows marked for several parts are
 * run in every part; where a part accepts the input, the point must succeed.
 */
#include <needlewatch/lp.h>

#include <float.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define BIG (1u << 20)

static void assert_bytes(const struct nw_lp *lp, const char *expected)
{
    size_t len = strlen(expected);
    if (nw_lp_len(lp) != len || memcmp(nw_lp_data(lp), expected, len) != 0) {
        print_error("expected %zu bytes: %s\n     got %zu bytes: %.*s\n", len, expected,
                    nw_lp_len(lp), (int)nw_lp_len(lp), nw_lp_data(lp));
        fail();
    }
}

static void assert_reason(const struct nw_error *err, enum nw_err code, const char *words)
{
    if (err->code != code || strstr(err->msg, words) == NULL) {
        print_error("expected %s with \"%s\", got %s: \"%s\"\n", nw_strerror(code), words,
                    nw_strerror(err->code), err->msg);
        fail();
    }
}

/* --- normal points -------------------------------------------------------- */

static void test_window_point(void **state)
{
    struct nw_lp *lp = nw_lp_new(BIG);
    struct nw_error err;
    assert_int_equal(nw_lp_begin(lp, "needle_window", &err), NW_OK);
    assert_int_equal(nw_lp_tag(lp, "clinic", "Clínica São Paulo, Unit 2", &err), NW_OK);
    assert_int_equal(nw_lp_tag(lp, "device", "smp-0001", &err), NW_OK);
    assert_int_equal(nw_lp_tag(lp, "model", "DG Pro=2", &err), NW_OK);
    assert_int_equal(nw_lp_field_i64(lp, "cycles", 120, &err), NW_OK);
    assert_int_equal(nw_lp_field_f64(lp, "depth_mean", 0.35, &err), NW_OK);
    assert_int_equal(nw_lp_field_f64(lp, "rate_mean", 120.0, &err), NW_OK);
    assert_int_equal(nw_lp_field_bool(lp, "in_spec", true, &err), NW_OK);
    assert_int_equal(nw_lp_field_str(lp, "session", "s-1 \"a\\b\"", &err), NW_OK);
    assert_int_equal(nw_lp_count(lp), 0);
    assert_int_equal(nw_lp_len(lp), 0);
    assert_int_equal(nw_lp_end(lp, 1700000000123, NW_LP_MS, &err), NW_OK);
    assert_bytes(lp, "needle_window,clinic=Clínica\\ São\\ Paulo\\,\\ Unit\\ 2,device=smp-0001,"
                     "model=DG\\ Pro\\=2 cycles=120i,depth_mean=0.35,rate_mean=120.0,"
                     "in_spec=true,session=\"s-1 \\\"a\\\\b\\\"\" 1700000000123\n");
    assert_int_equal(nw_lp_count(lp), 1);
    assert_int_equal(nw_lp_precision(lp), NW_LP_MS);
    assert_string_equal(nw_lp_precision_name(nw_lp_precision(lp)), "ms");
    nw_lp_destroy(&lp);
    assert_null(lp);
}

static void test_lines_append_and_reset(void **state)
{
    struct nw_lp *lp = nw_lp_new(BIG);
    assert_int_equal(nw_lp_capacity(lp), BIG);
    assert_int_equal(nw_lp_begin(lp, "a", NULL), NW_OK);
    assert_int_equal(nw_lp_field_bool(lp, "on", false, NULL), NW_OK);
    assert_int_equal(nw_lp_end(lp, -5, NW_LP_NS, NULL), NW_OK);
    assert_int_equal(nw_lp_begin(lp, "b", NULL), NW_OK);
    assert_int_equal(nw_lp_field_i64(lp, "n", -1, NULL), NW_OK);
    assert_int_equal(nw_lp_end(lp, 0, NW_LP_NS, NULL), NW_OK);
    assert_bytes(lp, "a on=false -5\nb n=-1i 0\n");
    assert_int_equal(nw_lp_count(lp), 2);
    assert_string_equal(nw_lp_precision_name(nw_lp_precision(lp)), "ns");
    nw_lp_reset(lp);
    assert_int_equal(nw_lp_len(lp), 0);
    assert_int_equal(nw_lp_count(lp), 0);
    /* After a reset the buffer takes the other precision. */
    assert_int_equal(nw_lp_begin(lp, "c", NULL), NW_OK);
    assert_int_equal(nw_lp_field_i64(lp, "n", 1, NULL), NW_OK);
    assert_int_equal(nw_lp_end(lp, 7, NW_LP_MS, NULL), NW_OK);
    assert_bytes(lp, "c n=1i 7\n");
    nw_lp_destroy(&lp);
}

static void test_abort_keeps_earlier_lines(void **state)
{
    struct nw_lp *lp = nw_lp_new(BIG);
    assert_int_equal(nw_lp_begin(lp, "a", NULL), NW_OK);
    assert_int_equal(nw_lp_field_i64(lp, "n", 1, NULL), NW_OK);
    assert_int_equal(nw_lp_end(lp, 1, NW_LP_MS, NULL), NW_OK);
    assert_int_equal(nw_lp_begin(lp, "b", NULL), NW_OK);
    assert_int_equal(nw_lp_tag(lp, "t", "x", NULL), NW_OK);
    assert_int_equal(nw_lp_field_i64(lp, "n", 2, NULL), NW_OK);
    nw_lp_abort(lp);
    assert_bytes(lp, "a n=1i 1\n");
    assert_int_equal(nw_lp_count(lp), 1);
    assert_int_equal(nw_lp_field_i64(lp, "n", 3, NULL), NW_ERR_INVAL);
    assert_int_equal(nw_lp_begin(lp, "c", NULL), NW_OK);
    assert_int_equal(nw_lp_field_i64(lp, "n", 3, NULL), NW_OK);
    assert_int_equal(nw_lp_end(lp, 3, NW_LP_MS, NULL), NW_OK);
    assert_bytes(lp, "a n=1i 1\nc n=3i 3\n");
    nw_lp_abort(NULL);
    nw_lp_destroy(&lp);
}

static void test_empty_tag_value_is_left_out(void **state)
{
    struct nw_lp *lp = nw_lp_new(BIG);
    struct nw_error err;
    assert_int_equal(nw_lp_begin(lp, "m", &err), NW_OK);
    assert_int_equal(nw_lp_tag(lp, "clinic", "", &err), NW_OK);
    assert_int_equal(nw_lp_tag(lp, "device", "d1", &err), NW_OK);
    assert_int_equal(nw_lp_tag(lp, "model", "", &err), NW_OK);
    assert_int_equal(nw_lp_field_i64(lp, "n", 1, &err), NW_OK);
    assert_int_equal(nw_lp_end(lp, 1, NW_LP_MS, &err), NW_OK);
    assert_bytes(lp, "m,device=d1 n=1i 1\n");
    /* The key of a left-out tag is still checked. */
    assert_int_equal(nw_lp_begin(lp, "m", &err), NW_OK);
    assert_int_equal(nw_lp_tag(lp, "bad\nkey", "", &err), NW_ERR_INVALID);
    assert_reason(&err, NW_ERR_INVALID, "tag key contains a newline");
    assert_int_equal(nw_lp_begin(lp, "m", &err), NW_OK);
    assert_int_equal(nw_lp_tag(lp, "time", "", &err), NW_ERR_INVALID);
    assert_bytes(lp, "m,device=d1 n=1i 1\n");
    nw_lp_destroy(&lp);
}

/* --- escaping, one part at a time ---------------------------------------- */

struct escaped {
    enum nw_lp_part part;
    const char *in;
    const char *out;
};

static const struct escaped escapes[] = {
    {NW_LP_MEASUREMENT, "needle_window", "needle_window"},
    {NW_LP_MEASUREMENT, "needle window,v1", "needle\\ window\\,v1"},
    {NW_LP_MEASUREMENT, "a=b", "a=b"},
    {NW_LP_MEASUREMENT, "say \"hi\"", "say\\ \"hi\""},
    {NW_LP_MEASUREMENT, "x#y", "x#y"},
    {NW_LP_MEASUREMENT, "time", "time"},
    {NW_LP_MEASUREMENT, " lead", "\\ lead"},
    {NW_LP_TAG_KEY, "a b,c=d", "a\\ b\\,c\\=d"},
    {NW_LP_TAG_VALUE, "Clínica São Paulo, Unit 2", "Clínica\\ São\\ Paulo\\,\\ Unit\\ 2"},
    {NW_LP_TAG_VALUE, "a=b", "a\\=b"},
    {NW_LP_TAG_VALUE, " lead", "\\ lead"},
    {NW_LP_TAG_VALUE, "trail ", "trail\\ "},
    {NW_LP_TAG_VALUE, ",", "\\,"},
    {NW_LP_TAG_VALUE, "q\"x\"", "q\"x\""},
    {NW_LP_TAG_VALUE, "back\\slash", "back\\slash"},
    {NW_LP_TAG_VALUE, "#hash", "#hash"},
    {NW_LP_TAG_VALUE, "\xf0\x9f\x92\x89 needle", "\xf0\x9f\x92\x89\\ needle"},
    {NW_LP_FIELD_KEY, "rate hz,mean=x", "rate\\ hz\\,mean\\=x"},
    {NW_LP_FIELD_KEY, "back\\slash", "back\\slash"},
    {NW_LP_STRING, "say \"hi\"", "say \\\"hi\\\""},
    {NW_LP_STRING, "C:\\path\\", "C:\\\\path\\\\"},
    {NW_LP_STRING, "\\\"", "\\\\\\\""},
    {NW_LP_STRING, "a,b c=d", "a,b c=d"},
    {NW_LP_STRING, "tab\there", "tab\there"},
    {NW_LP_STRING, "", ""},
    {NW_LP_STRING, "Clínica São Paulo, Unit 2 \xf0\x9f\xaa\xa1",
     "Clínica São Paulo, Unit 2 \xf0\x9f\xaa\xa1"},
};

static void test_escape_table(void **state)
{
    for (size_t i = 0; i < sizeof(escapes) / sizeof(escapes[0]); i++) {
        const struct escaped *e = &escapes[i];
        char dst[128];
        size_t len = 0;
        struct nw_error err = {0};
        enum nw_err rc = nw_lp_escape(e->part, e->in, dst, sizeof(dst), &len, &err);
        if (rc != NW_OK || strcmp(dst, e->out) != 0 || len != strlen(e->out)) {
            print_error("row %zu: [%s] -> %s [%s] (%s)\n", i, e->in, nw_strerror(rc),
                        rc == NW_OK ? dst : "", err.msg);
            fail();
        }
    }
}

static void test_escape_sizes(void **state)
{
    char dst[8];
    size_t len = 0;
    struct nw_error err;
    /* "a b" escapes to 4 bytes and needs a fifth for the NUL. */
    assert_int_equal(nw_lp_escape(NW_LP_TAG_VALUE, "a b", dst, 4, &len, &err), NW_ERR_TOO_BIG);
    assert_int_equal(len, 4);
    assert_int_equal(nw_lp_escape(NW_LP_TAG_VALUE, "a b", NULL, 0, &len, NULL), NW_ERR_TOO_BIG);
    assert_int_equal(len, 4);
    assert_int_equal(nw_lp_escape(NW_LP_TAG_VALUE, "a b", dst, 5, &len, &err), NW_OK);
    assert_string_equal(dst, "a\\ b");
    assert_int_equal(nw_lp_escape(NW_LP_TAG_VALUE, "", dst, 8, &len, &err), NW_ERR_INVALID);
    assert_reason(&err, NW_ERR_INVALID, "tag value is empty");
    assert_int_equal(nw_lp_escape(NW_LP_STRING, NULL, dst, 8, &len, &err), NW_ERR_INVAL);
    assert_int_equal(nw_lp_escape((enum nw_lp_part)99, "x", dst, 8, &len, &err), NW_ERR_INVAL);
}

/* --- numbers --------------------------------------------------------------- */

struct float_row {
    double v;
    const char *text;
};

/* The text is what strtod must read back to the very same double. */
static const struct float_row floats[] = {
    {120.0, "120.0"},
    {0.0, "0.0"},
    {-0.0, "-0.0"},
    {1.0, "1.0"},
    {-3.5, "-3.5"},
    {0.35, "0.35"},
    {0.1, "0.1"},
    {1.0 / 3.0, "0.3333333333333333"},
    {0.1 + 0.2, "0.30000000000000004"},
    {123456789.0, "123456789.0"},
    {9007199254740992.0, "9007199254740992.0"},
    {1e16, "1e+16"},
    {1e21, "1e+21"},
    {1e-7, "1e-07"},
    {DBL_MAX, "1.7976931348623157e+308"},
    {-DBL_MAX, "-1.7976931348623157e+308"},
    {DBL_MIN, "2.2250738585072014e-308"},
    {4.9406564584124654e-324, "4.94065645841247e-324"},
    {2.2250738585072009e-308, "2.225073858507201e-308"},
};

static void test_float_format(void **state)
{
    struct nw_lp *lp = nw_lp_new(BIG);
    for (size_t i = 0; i < sizeof(floats) / sizeof(floats[0]); i++) {
        char expected[96];
        snprintf(expected, sizeof(expected), "m v=%s 1\n", floats[i].text);
        double back = strtod(floats[i].text, NULL);
        assert_memory_equal(&back, &floats[i].v, sizeof(double));
        nw_lp_reset(lp);
        assert_int_equal(nw_lp_begin(lp, "m", NULL), NW_OK);
        assert_int_equal(nw_lp_field_f64(lp, "v", floats[i].v, NULL), NW_OK);
        assert_int_equal(nw_lp_end(lp, 1, NW_LP_NS, NULL), NW_OK);
        assert_bytes(lp, expected);
    }
    nw_lp_destroy(&lp);
}

/* Any finite double comes back bit-exact and reads as a float, not an int. */
static void test_float_round_trip_random(void **state)
{
    struct nw_lp *lp = nw_lp_new(256);
    uint64_t x = 0x9e3779b97f4a7c15u;
    for (int i = 0; i < 200000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        double v;
        memcpy(&v, &x, sizeof(v));
        if (!isfinite(v)) {
            continue;
        }
        nw_lp_reset(lp);
        assert_int_equal(nw_lp_begin(lp, "m", NULL), NW_OK);
        assert_int_equal(nw_lp_field_f64(lp, "v", v, NULL), NW_OK);
        assert_int_equal(nw_lp_end(lp, 1, NW_LP_NS, NULL), NW_OK);
        char text[64];
        size_t n = nw_lp_len(lp) - strlen("m v=") - strlen(" 1\n");
        assert_true(n < sizeof(text));
        memcpy(text, nw_lp_data(lp) + 4, n);
        text[n] = '\0';
        double back = strtod(text, NULL);
        assert_memory_equal(&back, &v, sizeof(v));
        assert_true(strpbrk(text, ".e") != NULL);
    }
    nw_lp_destroy(&lp);
}

static const char *decimal_comma_locale(void)
{
    const char *names[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "pt_BR.UTF-8"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (setlocale(LC_NUMERIC, names[i])) {
            return names[i];
        }
    }
    return NULL;
}

/*
 * Debian ships the locale sources (package locales) but generates none, so
 * build one into a scratch directory: glibc reads LOCPATH on every
 * setlocale(). Returns the directory to remove, or NULL.
 */
static char *build_decimal_comma_locale(void)
{
    static char dir[] = "/tmp/test_lp_locale.XXXXXX";
    char cmd[256];
    if (!mkdtemp(dir)) {
        return NULL;
    }
    snprintf(cmd, sizeof(cmd), "localedef -i de_DE -f UTF-8 %s/de_DE.UTF-8 >/dev/null 2>&1", dir);
    if (system(cmd) != 0) {
        print_message("localedef failed; the decimal-comma test will skip\n");
    }
    setenv("LOCPATH", dir, 1);
    return dir;
}

/* A locale with a decimal comma must not leak a ',' into the line. */
static void test_float_ignores_locale(void **state)
{
    char *dir = NULL;
    if (!decimal_comma_locale()) {
        dir = build_decimal_comma_locale();
    }
    const char *found = decimal_comma_locale();
    struct nw_lp *lp = nw_lp_new(256);
    if (found) {
        assert_int_equal(nw_lp_begin(lp, "m", NULL), NW_OK);
        assert_int_equal(nw_lp_field_f64(lp, "v", 0.35, NULL), NW_OK);
        assert_int_equal(nw_lp_field_f64(lp, "w", 120.0, NULL), NW_OK);
        assert_int_equal(nw_lp_field_f64(lp, "x", -1.5e-300, NULL), NW_OK);
        assert_int_equal(nw_lp_end(lp, 1, NW_LP_NS, NULL), NW_OK);
        char radix[8];
        snprintf(radix, sizeof(radix), "%.1f", 0.5);
        setlocale(LC_NUMERIC, "C");
        assert_string_equal(radix, "0,5"); /* the locale really has a comma */
    }
    if (dir) {
        char cmd[256];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        assert_int_equal(system(cmd), 0);
        unsetenv("LOCPATH");
    }
    if (!found) {
        nw_lp_destroy(&lp);
        skip(); /* no decimal-comma locale here and none could be built */
    }
    assert_bytes(lp, "m v=0.35,w=120.0,x=-1.5e-300 1\n");
    nw_lp_destroy(&lp);
}

static void test_integers_and_bools(void **state)
{
    struct nw_lp *lp = nw_lp_new(BIG);
    assert_int_equal(nw_lp_begin(lp, "m", NULL), NW_OK);
    assert_int_equal(nw_lp_field_i64(lp, "min", INT64_MIN, NULL), NW_OK);
    assert_int_equal(nw_lp_field_i64(lp, "max", INT64_MAX, NULL), NW_OK);
    assert_int_equal(nw_lp_field_i64(lp, "zero", 0, NULL), NW_OK);
    assert_int_equal(nw_lp_field_bool(lp, "t", true, NULL), NW_OK);
    assert_int_equal(nw_lp_field_bool(lp, "f", false, NULL), NW_OK);
    assert_int_equal(nw_lp_end(lp, 9223372036854775806, NW_LP_NS, NULL), NW_OK);
    assert_bytes(lp, "m min=-9223372036854775808i,max=9223372036854775807i,zero=0i,t=true,"
                     "f=false 9223372036854775806\n");
    nw_lp_destroy(&lp);
}

static void test_timestamp_range(void **state)
{
    struct {
        int64_t ts;
        enum nw_lp_precision prec;
        enum nw_err code;
    } rows[] = {
        {INT64_MAX - 1, NW_LP_NS, NW_OK},
        {INT64_MAX, NW_LP_NS, NW_ERR_INVALID},
        {INT64_MIN + 2, NW_LP_NS, NW_OK},
        {INT64_MIN + 1, NW_LP_NS, NW_ERR_INVALID},
        {INT64_MIN, NW_LP_NS, NW_ERR_INVALID},
        {9223372036854, NW_LP_MS, NW_OK},
        {9223372036855, NW_LP_MS, NW_ERR_INVALID},
        {-9223372036854, NW_LP_MS, NW_OK},
        {-9223372036855, NW_LP_MS, NW_ERR_INVALID},
        {INT64_MIN, NW_LP_MS, NW_ERR_INVALID},
        {0, NW_LP_MS, NW_OK},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct nw_lp *lp = nw_lp_new(256);
        struct nw_error err = {0};
        assert_int_equal(nw_lp_begin(lp, "m", &err), NW_OK);
        assert_int_equal(nw_lp_field_i64(lp, "v", 1, &err), NW_OK);
        enum nw_err rc = nw_lp_end(lp, rows[i].ts, rows[i].prec, &err);
        if (rc != rows[i].code) {
            print_error("row %zu: %s (%s)\n", i, nw_strerror(rc), err.msg);
            fail();
        }
        if (rc != NW_OK) {
            assert_reason(&err, rc, "outside InfluxDB's range");
            assert_int_equal(nw_lp_len(lp), 0);
        }
        nw_lp_destroy(&lp);
    }
}

static void test_precision_is_per_buffer(void **state)
{
    struct nw_lp *lp = nw_lp_new(256);
    struct nw_error err;
    assert_int_equal(nw_lp_begin(lp, "m", &err), NW_OK);
    assert_int_equal(nw_lp_field_i64(lp, "v", 1, &err), NW_OK);
    assert_int_equal(nw_lp_end(lp, 1, NW_LP_MS, &err), NW_OK);
    assert_int_equal(nw_lp_begin(lp, "m", &err), NW_OK);
    assert_int_equal(nw_lp_field_i64(lp, "v", 2, &err), NW_OK);
    assert_int_equal(nw_lp_end(lp, 2000000, NW_LP_NS, &err), NW_ERR_INVAL);
    assert_reason(&err, NW_ERR_INVAL, "precision ns differs from the buffer's ms");
    assert_int_equal(nw_lp_begin(lp, "m", &err), NW_OK);
    assert_int_equal(nw_lp_field_i64(lp, "v", 2, &err), NW_OK);
    assert_int_equal(nw_lp_end(lp, 2, (enum nw_lp_precision)7, &err), NW_ERR_INVAL);
    assert_bytes(lp, "m v=1i 1\n");
    nw_lp_destroy(&lp);
}

/* --- hostile input --------------------------------------------------------- */

enum slot { S_MEASUREMENT, S_TAG_KEY, S_TAG_VALUE, S_FIELD_KEY, S_STRING, S__COUNT };

#define IN(s) (1u << (s))
#define NAMES (IN(S_MEASUREMENT) | IN(S_TAG_KEY) | IN(S_TAG_VALUE) | IN(S_FIELD_KEY))
#define ALL (NAMES | IN(S_STRING))

struct hostile {
    const char *text;
    unsigned refused_in; /* slots that must refuse it; the others accept it */
    const char *reason;  /* words the reason must contain */
};

static const struct hostile hostiles[] = {
    {"a\nb", ALL, "contains a newline at byte 1"},
    {"\nm2,t=pwned v=666i 1", ALL, "newline"},
    {"a\rb", ALL, "carriage return"},
    {"a\tb", NAMES, "control character 0x09"},
    {"\tlead", NAMES, "control character 0x09 at byte 0"},
    {"a\x01", ALL, "control character 0x01"},
    {"\x1b[31mred", ALL, "control character 0x1b"},
    {"a\x7f", ALL, "control character 0x7f"},
    {"a\xff", ALL, "not valid UTF-8 at byte 1"},
    {"a\xc3", ALL, "not valid UTF-8"},
    {"\xc3\x28", ALL, "not valid UTF-8"},
    {"\x80", ALL, "not valid UTF-8"},
    {"\xc0\xaf", ALL, "not valid UTF-8"},
    {"\xc1\xbf", ALL, "not valid UTF-8"},
    {"\xe0\x80\xaf", ALL, "not valid UTF-8"},
    {"\xe0\x9f\xbf", ALL, "not valid UTF-8"},
    {"\xf0\x80\x80\xaf", ALL, "not valid UTF-8"},
    {"\xed\xa0\x80", ALL, "not valid UTF-8"},
    {"\xed\xbf\xbf", ALL, "not valid UTF-8"},
    {"\xf4\x90\x80\x80", ALL, "not valid UTF-8"},
    {"\xf5\x80\x80\x80", ALL, "not valid UTF-8"},
    {"\xe2\x82", ALL, "not valid UTF-8"},
    {"\xf0\x9f\x92", ALL, "not valid UTF-8"},
    {"abc\\", NAMES, "ends with a backslash"},
    {"\\", NAMES, "ends with a backslash"},
    {"a\\,b", NAMES, "backslash before ','"},
    {"a\\ b", NAMES, "backslash before ' '"},
    {"a\\=b", NAMES, "backslash before '='"},
    {"a\\\"b", NAMES, "backslash before '\"'"},
    {"a\\\\,b", NAMES, "backslash before '\\' at byte 1"},
    {"", IN(S_MEASUREMENT) | IN(S_TAG_KEY) | IN(S_FIELD_KEY), "is empty"},
    {"#m", IN(S_MEASUREMENT), "comment"},
    {"time", IN(S_TAG_KEY) | IN(S_FIELD_KEY), "\"time\" is reserved"},
    {"_field", IN(S_TAG_KEY) | IN(S_FIELD_KEY), "reserved"},
    {"_measurement", IN(S_TAG_KEY) | IN(S_FIELD_KEY), "reserved"},
    {"a\"b", IN(S_FIELD_KEY), "VictoriaMetrics"},
    /* Accepted everywhere: the escapes carry them. */
    {"Clínica São Paulo, Unit 2", 0, NULL},
    {"a,b=c d\"e", IN(S_FIELD_KEY), "VictoriaMetrics"},
    {"back\\slash \\x \\\xc3\xa9", 0, NULL},
    {"two\\\\x", NAMES, "backslash before '\\'"},
    {"\xf0\x9f\x92\x89\xef\xbf\xbf\xf4\x8f\xbf\xbf", 0, NULL},
};

static const char *slot_names[] = {"measurement", "tag key", "tag value", "field key",
                                   "string field value"};

/*
 * Builds one point with `text` in `slot` behind a good line; returns the
 * code of each call (begin, tag, field, end) in rc[].
 */
static void build_with(struct nw_lp *lp, enum slot slot, const char *text, enum nw_err rc[4],
                       struct nw_error *err)
{
    rc[0] = nw_lp_begin(lp, slot == S_MEASUREMENT ? text : "m", err);
    rc[1] = nw_lp_tag(lp, slot == S_TAG_KEY ? text : "k", slot == S_TAG_VALUE ? text : "v", err);
    rc[2] =
        nw_lp_field_str(lp, slot == S_FIELD_KEY ? text : "f", slot == S_STRING ? text : "s", err);
    rc[3] = nw_lp_end(lp, 2, NW_LP_MS, err);
}

static struct nw_lp *with_good_line(size_t cap)
{
    struct nw_lp *lp = nw_lp_new(cap);
    assert_non_null(lp);
    assert_int_equal(nw_lp_begin(lp, "good", NULL), NW_OK);
    assert_int_equal(nw_lp_field_i64(lp, "v", 1, NULL), NW_OK);
    assert_int_equal(nw_lp_end(lp, 1, NW_LP_MS, NULL), NW_OK);
    return lp;
}

static void check_refused(const struct hostile *h, enum slot slot)
{
    struct nw_lp *lp = with_good_line(BIG);
    struct nw_error err = {0};
    enum nw_err rc[4];
    build_with(lp, slot, h->text, rc, &err);
    int call = slot == S_MEASUREMENT ? 0 : slot <= S_TAG_VALUE ? 1 : 2;
    for (int i = 0; i < 4; i++) {
        enum nw_err want = i < call ? NW_OK : NW_ERR_INVALID;
        if (rc[i] != want) {
            print_error("%s \"%s\": call %d gave %s (%s)\n", slot_names[slot], h->text, i,
                        nw_strerror(rc[i]), err.msg);
            fail();
        }
    }
    assert_reason(&err, NW_ERR_INVALID, h->reason);
    assert_non_null(strstr(err.msg, slot_names[slot]) ? err.msg : NULL);
    assert_bytes(lp, "good v=1i 1\n");
    assert_int_equal(nw_lp_count(lp), 1);
    /* The escaper says no to the same text. */
    char dst[64];
    assert_int_equal(nw_lp_escape((enum nw_lp_part)slot, h->text, dst, sizeof(dst), NULL, NULL),
                     NW_ERR_INVALID);
    nw_lp_destroy(&lp);
}

static void check_accepted(const struct hostile *h, enum slot slot)
{
    struct nw_lp *lp = with_good_line(BIG);
    struct nw_error err = {0};
    enum nw_err rc[4];
    build_with(lp, slot, h->text, rc, &err);
    if (rc[0] || rc[1] || rc[2] || rc[3]) {
        print_error("%s \"%s\" refused: %s\n", slot_names[slot], h->text, err.msg);
        fail();
    }
    assert_int_equal(nw_lp_count(lp), 2);
    nw_lp_destroy(&lp);
}

static void test_hostile_table(void **state)
{
    for (size_t i = 0; i < sizeof(hostiles) / sizeof(hostiles[0]); i++) {
        for (enum slot s = 0; s < S__COUNT; s++) {
            if (hostiles[i].refused_in & IN(s)) {
                check_refused(&hostiles[i], s);
            } else {
                check_accepted(&hostiles[i], s);
            }
        }
    }
}

/* Names made only of escapable characters come out exactly escaped. */
static void test_hostile_line_exact(void **state)
{
    struct nw_lp *lp = nw_lp_new(BIG);
    struct nw_error err;
    assert_int_equal(nw_lp_begin(lp, ", =\"\\x", &err), NW_OK);
    assert_int_equal(nw_lp_tag(lp, ", =\"\\x", ", =\"\\x", &err), NW_OK);
    assert_int_equal(nw_lp_field_str(lp, ", =\\x", ", =\"\\x\\", &err), NW_OK);
    assert_int_equal(nw_lp_end(lp, 1, NW_LP_MS, &err), NW_OK);
    assert_bytes(
        lp, "\\,\\ =\"\\x,\\,\\ \\=\"\\x=\\,\\ \\=\"\\x \\,\\ \\=\\x=\", =\\\"\\\\x\\\\\" 1\n");
    nw_lp_destroy(&lp);
}

struct bad_float {
    double v;
    const char *reason;
};

static void test_nan_and_inf(void **state)
{
    const struct bad_float rows[] = {
        {NAN, "is NaN"},
        {-NAN, "is NaN"},
        {INFINITY, "positive infinity"},
        {-INFINITY, "negative infinity"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct nw_lp *lp = with_good_line(256);
        struct nw_error err;
        assert_int_equal(nw_lp_begin(lp, "m", &err), NW_OK);
        assert_int_equal(nw_lp_field_f64(lp, "ok", 1.5, &err), NW_OK);
        assert_int_equal(nw_lp_field_f64(lp, "rate", rows[i].v, &err), NW_ERR_INVALID);
        assert_reason(&err, NW_ERR_INVALID, rows[i].reason);
        assert_reason(&err, NW_ERR_INVALID, "\"rate\"");
        assert_int_equal(nw_lp_end(lp, 2, NW_LP_MS, &err), NW_ERR_INVALID);
        assert_bytes(lp, "good v=1i 1\n");
        nw_lp_destroy(&lp);
    }
}

static void test_duplicates(void **state)
{
    struct nw_lp *lp = with_good_line(BIG);
    struct nw_error err;
    assert_int_equal(nw_lp_begin(lp, "m", &err), NW_OK);
    assert_int_equal(nw_lp_tag(lp, "a b", "1", &err), NW_OK);
    assert_int_equal(nw_lp_tag(lp, "a", "b,a b=1", &err), NW_OK);
    assert_int_equal(nw_lp_tag(lp, "a b", "2", &err), NW_ERR_INVALID);
    assert_reason(&err, NW_ERR_INVALID, "tag key \"a b\" given twice");

    assert_int_equal(nw_lp_begin(lp, "m", &err), NW_OK);
    assert_int_equal(nw_lp_tag(lp, "k", "", &err), NW_OK);
    assert_int_equal(nw_lp_tag(lp, "k", "x", &err), NW_OK); /* the first was left out */
    assert_int_equal(nw_lp_field_str(lp, "s", "x\",y=\\\"", &err), NW_OK);
    assert_int_equal(nw_lp_field_i64(lp, "y", 1, &err), NW_OK);
    assert_int_equal(nw_lp_field_i64(lp, "x\"", 1, &err), NW_ERR_INVALID); /* quote */
    assert_int_equal(nw_lp_begin(lp, "m", &err), NW_OK);
    assert_int_equal(nw_lp_field_str(lp, "s", "x,y=1", &err), NW_OK);
    assert_int_equal(nw_lp_field_i64(lp, "y", 1, &err), NW_OK);
    assert_int_equal(nw_lp_field_f64(lp, "s", 1, &err), NW_ERR_INVALID);
    assert_reason(&err, NW_ERR_INVALID, "field key \"s\" given twice");
    assert_int_equal(nw_lp_begin(lp, "m", &err), NW_OK);
    assert_int_equal(nw_lp_field_i64(lp, "y", 1, &err), NW_OK);
    assert_int_equal(nw_lp_field_i64(lp, "y=", 1, &err), NW_OK);
    assert_int_equal(nw_lp_field_i64(lp, "y", 2, &err), NW_ERR_INVALID);
    assert_bytes(lp, "good v=1i 1\n");
    nw_lp_destroy(&lp);
}

static void test_no_fields(void **state)
{
    struct nw_lp *lp = with_good_line(256);
    struct nw_error err;
    assert_int_equal(nw_lp_begin(lp, "m", &err), NW_OK);
    assert_int_equal(nw_lp_tag(lp, "k", "v", &err), NW_OK);
    assert_int_equal(nw_lp_end(lp, 2, NW_LP_MS, &err), NW_ERR_INVALID);
    assert_reason(&err, NW_ERR_INVALID, "point has no fields");
    assert_bytes(lp, "good v=1i 1\n");
    nw_lp_destroy(&lp);
}

static void test_misuse(void **state)
{
    struct nw_lp *lp = with_good_line(256);
    struct nw_error err;
    assert_int_equal(nw_lp_tag(lp, "k", "v", &err), NW_ERR_INVAL);
    assert_reason(&err, NW_ERR_INVAL, "no point begun");
    assert_int_equal(nw_lp_end(lp, 1, NW_LP_MS, &err), NW_ERR_INVAL);
    assert_int_equal(nw_lp_begin(lp, "m", &err), NW_OK);
    assert_int_equal(nw_lp_begin(lp, "m", &err), NW_ERR_INVAL);
    assert_reason(&err, NW_ERR_INVAL, "neither ended nor aborted");
    assert_int_equal(nw_lp_begin(lp, "m", &err), NW_OK);
    assert_int_equal(nw_lp_field_i64(lp, "v", 1, &err), NW_OK);
    assert_int_equal(nw_lp_tag(lp, "k", "v", &err), NW_ERR_INVAL);
    assert_reason(&err, NW_ERR_INVAL, "tags come first");
    assert_int_equal(nw_lp_begin(lp, NULL, &err), NW_ERR_INVAL);
    assert_int_equal(nw_lp_begin(lp, "m", &err), NW_OK);
    assert_int_equal(nw_lp_tag(lp, NULL, "v", &err), NW_ERR_INVAL);
    assert_int_equal(nw_lp_begin(lp, "m", &err), NW_OK);
    assert_int_equal(nw_lp_field_str(lp, "s", NULL, &err), NW_ERR_INVAL);
    assert_int_equal(nw_lp_begin(lp, "m", &err), NW_OK);
    assert_int_equal(nw_lp_field_i64(lp, NULL, 1, &err), NW_ERR_INVAL);
    assert_bytes(lp, "good v=1i 1\n");
    assert_int_equal(nw_lp_begin(NULL, "m", &err), NW_ERR_INVAL);
    assert_int_equal(nw_lp_field_i64(NULL, "v", 1, &err), NW_ERR_INVAL);
    assert_int_equal(nw_lp_end(NULL, 1, NW_LP_MS, &err), NW_ERR_INVAL);
    assert_null(nw_lp_new(0));
    nw_lp_destroy(&lp);
    nw_lp_destroy(&lp);
    nw_lp_destroy(NULL);
}

/* After the first failure the point answers with it until nw_lp_end. */
static void test_errors_are_sticky(void **state)
{
    struct nw_lp *lp = with_good_line(256);
    struct nw_error err;
    assert_int_equal(nw_lp_begin(lp, "m", NULL), NW_OK);
    assert_int_equal(nw_lp_tag(lp, "k", "a\nb", NULL), NW_ERR_INVALID);
    assert_int_equal(nw_lp_tag(lp, "k2", "fine", NULL), NW_ERR_INVALID);
    assert_int_equal(nw_lp_field_i64(lp, "v", 1, NULL), NW_ERR_INVALID);
    assert_int_equal(nw_lp_end(lp, 2, NW_LP_MS, &err), NW_ERR_INVALID);
    assert_reason(&err, NW_ERR_INVALID, "tag value contains a newline");
    /* Reported once; the next point starts clean. */
    assert_int_equal(nw_lp_end(lp, 2, NW_LP_MS, &err), NW_ERR_INVAL);
    assert_int_equal(nw_lp_begin(lp, "m", NULL), NW_OK);
    assert_int_equal(nw_lp_field_i64(lp, "v", 2, NULL), NW_OK);
    assert_int_equal(nw_lp_end(lp, 2, NW_LP_MS, NULL), NW_OK);
    assert_bytes(lp, "good v=1i 1\nm v=2i 2\n");
    nw_lp_destroy(&lp);
}

/* --- sizes ----------------------------------------------------------------- */

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    assert_non_null(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

static void test_64k_strings(void **state)
{
    struct nw_lp *lp = nw_lp_new(BIG);
    struct nw_error err;
    char *plain = repeat('x', 65536), *quotes = repeat('"', 65536);
    assert_int_equal(nw_lp_begin(lp, "m", &err), NW_OK);
    assert_int_equal(nw_lp_field_str(lp, "a", plain, &err), NW_OK);
    assert_int_equal(nw_lp_field_str(lp, "b", quotes, &err), NW_OK);
    assert_int_equal(nw_lp_end(lp, 1, NW_LP_MS, &err), NW_OK);
    assert_int_equal(nw_lp_len(lp), strlen("m a=\"\",b=\"\" 1\n") + 65536 * 3);
    assert_memory_equal(nw_lp_data(lp) + 5 + 65536, "\",b=\"\\\"\\\"", 9);
    /* InfluxDB refuses a series key over 65535 bytes: never send one. */
    assert_int_equal(nw_lp_begin(lp, "m", &err), NW_OK);
    assert_int_equal(nw_lp_tag(lp, "k", plain, &err), NW_ERR_TOO_BIG);
    assert_reason(&err, NW_ERR_TOO_BIG, "series key 65545 bytes");
    assert_int_equal(nw_lp_begin(lp, "m", &err), NW_OK);
    assert_int_equal(nw_lp_field_i64(lp, plain, 1, &err), NW_ERR_TOO_BIG);
    /* Exactly at the limit: "m,k=" + v + 4 + "f" = 65535. */
    plain[65535 - 4 - 4 - 1] = '\0';
    assert_int_equal(nw_lp_begin(lp, "m", &err), NW_OK);
    assert_int_equal(nw_lp_tag(lp, "k", plain, &err), NW_OK);
    assert_int_equal(nw_lp_field_i64(lp, "f", 1, &err), NW_OK);
    assert_int_equal(nw_lp_end(lp, 2, NW_LP_MS, &err), NW_OK);
    assert_int_equal(nw_lp_begin(lp, "m", &err), NW_OK);
    assert_int_equal(nw_lp_tag(lp, "k", plain, &err), NW_OK);
    assert_int_equal(nw_lp_field_i64(lp, "ff", 1, &err), NW_ERR_TOO_BIG);
    assert_int_equal(nw_lp_count(lp), 2);
    free(plain);
    free(quotes);
    nw_lp_destroy(&lp);
}

/* The second point of the batch, with every kind of part in it. */
static enum nw_err second_point(struct nw_lp *lp, struct nw_error *err)
{
    nw_lp_begin(lp, "needle window", err);
    nw_lp_tag(lp, "clinic", "Clínica São Paulo, Unit 2", err);
    nw_lp_tag(lp, "device", "d=1", err);
    nw_lp_field_i64(lp, "seq", INT64_MIN, err);
    nw_lp_field_f64(lp, "rate", 120.0, err);
    nw_lp_field_bool(lp, "ok", false, err);
    nw_lp_field_str(lp, "note", "say \"hi\" \\o/", err);
    return nw_lp_end(lp, 1700000000000, NW_LP_MS, err);
}

static const char first_line[] = "good v=1i 1\n";
static const char second_line[] =
    "needle\\ window,clinic=Clínica\\ São\\ Paulo\\,\\ Unit\\ 2,device=d\\=1 "
    "seq=-9223372036854775808i,rate=120.0,ok=false,note=\"say \\\"hi\\\" \\\\o/\" "
    "1700000000000\n";

/* Every capacity that cuts the second line somewhere: FULL, first intact. */
static void test_full_at_every_byte(void **state)
{
    size_t l1 = strlen(first_line), l2 = strlen(second_line);
    for (size_t cap = l1; cap < l1 + l2; cap++) {
        struct nw_lp *lp = with_good_line(cap);
        struct nw_error err = {0};
        enum nw_err rc = second_point(lp, &err);
        if (rc != NW_ERR_FULL) {
            print_error("capacity %zu: %s (%s)\n", cap, nw_strerror(rc), err.msg);
            fail();
        }
        assert_reason(&err, NW_ERR_FULL, "buffer full");
        assert_bytes(lp, first_line);
        assert_int_equal(nw_lp_count(lp), 1);
        /* What a writer does: send, reset, build the point again. */
        nw_lp_reset(lp);
        if (cap >= l2) {
            assert_int_equal(second_point(lp, &err), NW_OK);
            assert_bytes(lp, second_line);
        } else {
            assert_int_equal(second_point(lp, &err), NW_ERR_TOO_BIG);
            assert_int_equal(nw_lp_len(lp), 0);
        }
        nw_lp_destroy(&lp);
    }
    struct nw_lp *lp = with_good_line(l1 + l2);
    struct nw_error err;
    assert_int_equal(second_point(lp, &err), NW_OK);
    char both[sizeof(first_line) + sizeof(second_line)];
    snprintf(both, sizeof(both), "%s%s", first_line, second_line);
    assert_bytes(lp, both);
    assert_int_equal(nw_lp_len(lp), nw_lp_capacity(lp));
    nw_lp_destroy(&lp);
}

static void test_point_bigger_than_buffer(void **state)
{
    struct nw_lp *lp = nw_lp_new(8);
    struct nw_error err;
    assert_int_equal(nw_lp_begin(lp, "m", &err), NW_OK);
    assert_int_equal(nw_lp_field_str(lp, "s", "far too long", &err), NW_ERR_TOO_BIG);
    assert_reason(&err, NW_ERR_TOO_BIG, "empty 8-byte buffer");
    assert_int_equal(nw_lp_end(lp, 1, NW_LP_MS, &err), NW_ERR_TOO_BIG);
    assert_int_equal(nw_lp_len(lp), 0);
    /* A hostile value is reported as such even when it would not fit. */
    assert_int_equal(nw_lp_begin(lp, "m", &err), NW_OK);
    assert_int_equal(nw_lp_field_str(lp, "s", "far too long\n", &err), NW_ERR_INVALID);
    nw_lp_destroy(&lp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_window_point),
        cmocka_unit_test(test_lines_append_and_reset),
        cmocka_unit_test(test_abort_keeps_earlier_lines),
        cmocka_unit_test(test_empty_tag_value_is_left_out),
        cmocka_unit_test(test_escape_table),
        cmocka_unit_test(test_escape_sizes),
        cmocka_unit_test(test_float_format),
        cmocka_unit_test(test_float_round_trip_random),
        cmocka_unit_test(test_float_ignores_locale),
        cmocka_unit_test(test_integers_and_bools),
        cmocka_unit_test(test_timestamp_range),
        cmocka_unit_test(test_precision_is_per_buffer),
        cmocka_unit_test(test_hostile_table),
        cmocka_unit_test(test_hostile_line_exact),
        cmocka_unit_test(test_nan_and_inf),
        cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_no_fields),
        cmocka_unit_test(test_misuse),
        cmocka_unit_test(test_errors_are_sticky),
        cmocka_unit_test(test_64k_strings),
        cmocka_unit_test(test_full_at_every_byte),
        cmocka_unit_test(test_point_bigger_than_buffer),
    };
    return cmocka_run_group_tests_name("lp", tests, NULL, NULL);
}

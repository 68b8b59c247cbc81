/*
 * test_collector_store_url.c - the pure parts of the store: URLs (and that
 * no secret leaks into a name or an error), Retry-After, the JSON helpers,
 * which lines an InfluxDB 400 names, the schema's refusals, backoff, and
 * what a write does when nothing listens (no server needed: a closed
 * loopback port refuses at once).
 */
#include "store.h"
#include "store_impl.h"

#include <needlewatch/clock.h>

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#define SECRET "s3cr3t-pa55"

static struct nw_store_url parse_ok(const char *url)
{
    struct nw_store_url u;
    struct nw_error err = {0};
    if (nw_store_url_parse(url, &u, &err) != NW_OK) {
        fail_msg("%s: %s", url, err.msg);
    }
    return u;
}

static void parse_fails(const char *url, const char *needle)
{
    struct nw_store_url u;
    struct nw_error err = {0};
    assert_int_equal(nw_store_url_parse(url, &u, &err), NW_ERR_CONFIG);
    if (!strstr(err.msg, needle)) {
        fail_msg("%s: \"%s\" lacks \"%s\"", url, err.msg, needle);
    }
    assert_null(strstr(err.msg, SECRET));
    assert_null(strstr(err.msg, "alice"));
}

static void sqlite_urls(void **state)
{
    struct nw_store_url u = parse_ok("sqlite:");
    assert_int_equal(u.scheme, NW_STORE_SQLITE);
    assert_string_equal(u.path, "needlewatch.db");
    u = parse_ok("sqlite:/var/lib/needlewatch/nw.db");
    assert_string_equal(u.path, "/var/lib/needlewatch/nw.db");
    assert_string_equal(u.name, "sqlite:/var/lib/needlewatch/nw.db");
}

static void influx_v1_urls(void **state)
{
    struct nw_store_url u = parse_ok("influx://db.example:8087/needle%20watch");
    assert_int_equal(u.scheme, NW_STORE_INFLUX1);
    assert_false(u.tls);
    assert_string_equal(u.host, "db.example");
    assert_int_equal(u.port, 8087);
    assert_string_equal(u.db, "needle watch");
    assert_string_equal(u.name, "influx://db.example:8087/needle watch");

    u = parse_ok("influx://127.0.0.1/nw?rp=week");
    assert_int_equal(u.port, 8086);
    assert_string_equal(u.rp, "week");
    assert_string_equal(u.name, "influx://127.0.0.1:8086/nw?rp=week");

    u = parse_ok("influxs://alice:" SECRET "%40x@[::1]:443/nw");
    assert_true(u.tls);
    assert_string_equal(u.host, "::1");
    assert_string_equal(u.user, "alice");
    assert_string_equal(u.password, SECRET "@x");
    assert_string_equal(u.name, "influxs://[::1]:443/nw");
    nw_store_url_wipe(&u);
    assert_string_equal(u.password, "");
}

static void influx_v2_urls(void **state)
{
    struct nw_store_url u = parse_ok("influx2://h:9999/?org=my%20org&bucket=b1");
    assert_int_equal(u.scheme, NW_STORE_INFLUX2);
    assert_string_equal(u.org, "my org");
    assert_string_equal(u.bucket, "b1");
    assert_string_equal(u.name, "influx2://h:9999/?org=my org&bucket=b1");
    u = parse_ok("influx2s://h?bucket=b&org=o");
    assert_true(u.tls);
    assert_int_equal(u.port, 8086);
}

static void bad_urls(void **state)
{
    parse_fails("postgres://x/y", "unknown scheme");
    parse_fails("influx://alice:" SECRET "@h:99999/db", "port must be 1-65535");
    parse_fails("influx://alice:" SECRET "@h:80x/db", "port must be a number");
    parse_fails("influx://alice:" SECRET "@h:8086", "needs the database");
    parse_fails("influx://alice:" SECRET "@h:8086/", "needs the database");
    parse_fails("influx://alice:" SECRET "@h:8086/a/b", "malformed");
    parse_fails("influx://alice:" SECRET "%zz@h/db", "malformed user:password");
    parse_fails("influx://h/db?bucket=x", "unknown parameter \"bucket\"");
    parse_fails("influx://h/db?rp=", "needs a value");
    parse_fails("influx://h_x/db", "invalid character in the host");
    parse_fails("influx://[::1/db", "without ']'");
    parse_fails("influx:h/db", "expected influx://");
    parse_fails("influx2://alice:" SECRET "@h/?org=o&bucket=b", "takes no user:password");
    parse_fails("influx2://h/?org=o", "needs ?org=O&bucket=B");
    parse_fails("influx2://h/path?org=o&bucket=b", "has no path");
    parse_fails("influx2://h/?org=o&bucket=b&db=x", "unknown parameter \"db\"");
    parse_fails("influx://h/db%00x", "malformed");
}

static void retry_after(void **state)
{
    int64_t now = 1700000000000LL; /* 2023-11-14T22:13:20Z */
    assert_int_equal(nw_store_parse_retry_after("2", now), 2000);
    assert_int_equal(nw_store_parse_retry_after(" 120\r\n", now), 120000);
    assert_int_equal(nw_store_parse_retry_after("0", now), 0);
    assert_int_equal(nw_store_parse_retry_after("Tue, 14 Nov 2023 22:13:30 GMT\r\n", now), 10000);
    assert_int_equal(nw_store_parse_retry_after("Tuesday, 14-Nov-23 22:13:25 GMT", now), 5000);
    assert_int_equal(nw_store_parse_retry_after("Tue Nov 14 22:13:21 2023", now), 1000);
    assert_int_equal(nw_store_parse_retry_after("Mon, 13 Nov 2023 00:00:00 GMT", now), 0);
    assert_int_equal(nw_store_parse_retry_after("-1", now), -1);
    assert_int_equal(nw_store_parse_retry_after("soon", now), -1);
    assert_int_equal(nw_store_parse_retry_after("", now), -1);
    assert_int_equal(nw_store_parse_retry_after("12abc", now), -1);
}

static void json_helpers(void **state)
{
    static const char *const keys[] = {"error", "message", NULL};
    char out[256];
    const char body[] = "{\"code\":\"invalid\",\"message\":\"bad \\\"x\\\" \\u003c\\u00e9\\ud83d"
                        "\\udc89\\n\"}";
    assert_true(nw_store_json_get(body, strlen(body), keys, out, sizeof(out)));
    assert_string_equal(out, "bad \"x\" <\xc3\xa9\xf0\x9f\x92\x89\n");
    assert_false(nw_store_json_get("{}", 2, keys, out, sizeof(out)));

    char buf[64];
    size_t n = nw_store_json_escape(buf, 0, sizeof(buf), "a\"b\\c\nd\x01", 8);
    assert_string_equal(buf, "a\\\"b\\\\c\\u000ad\\u0001");
    assert_int_equal(n, strlen(buf));
    assert_int_equal(nw_store_json_escape(buf, 0, 4, "abcdef", 6), (size_t)-1);
}

/* --- which lines a 400 names --------------------------------------------- */

struct hits {
    int n;
    size_t idx[16];
    char reason[16][256];
};

static void on_refuse(void *ctx, size_t i, const char *reason)
{
    struct hits *h = ctx;
    if (h->n < 16) {
        h->idx[h->n] = i;
        snprintf(h->reason[h->n], sizeof(h->reason[0]), "%s", reason);
        h->n++;
    }
}

static struct hits identify(const char *body, const char *const *text, size_t n)
{
    struct nw_lp_line lines[16];
    for (size_t i = 0; i < n; i++) {
        lines[i] = (struct nw_lp_line){text[i], strlen(text[i])};
    }
    struct hits h = {0};
    nw_influx_identify(body, strlen(body), lines, n, on_refuse, &h);
    return h;
}

/* The exact bodies InfluxDB 1.6.7 sent in tests/integration (probed). */
static void identify_parse_failures(void **state)
{
    const char *lines[] = {"m,d=a f=5 1700000000005", "m,d=b f= 1700000000006",
                           "m,d=c f=7 1700000000007", "m,d=x ff 1"};
    struct hits h = identify("{\"error\":\"partial write: unable to parse 'm,d=b f= "
                             "1700000000006': missing field value\\nunable to parse 'm,d=x ff "
                             "1': invalid field format dropped=0\"}",
                             lines, 4);
    assert_int_equal(h.n, 2);
    assert_int_equal(h.idx[0], 1);
    assert_string_equal(h.reason[0], "unable to parse: missing field value");
    assert_int_equal(h.idx[1], 3);
    assert_string_equal(h.reason[1], "unable to parse: invalid field format");

    /* Escaped characters in a line come back JSON-escaped. */
    const char *esc[] = {"m,c=S\\ Paulo\\,\\ 2 s=\"q\\\"<\" 1", "ok f=1 2"};
    h = identify(
        "{\"error\":\"unable to parse 'm,c=S\\\\ Paulo\\\\,\\\\ 2 s=\\\"q\\\\\\\"\\u003c\\\" "
        "1': bad timestamp\"}",
        esc, 2);
    assert_int_equal(h.n, 1);
    assert_int_equal(h.idx[0], 0);
}

static void identify_type_conflict(void **state)
{
    const char *lines[] = {
        "needle_window,device=a seq=1i,in_spec=true 1",
        "device_event,device=a seq=1i 2",
        "needle\\ window,device=b seq=2i 3",
        "needle_window,device=c seq=3i,note=\"seq=1.5,x\" 4",
        "needle_window,device=d cycles=1i 5",
    };
    struct hits h = identify("{\"error\":\"partial write: field type conflict: input field "
                             "\\\"seq\\\" on measurement \\\"needle_window\\\" is type integer, "
                             "already exists as type float dropped=2\"}",
                             lines, 5);
    assert_int_equal(h.n, 2);
    assert_int_equal(h.idx[0], 0);
    assert_int_equal(h.idx[1], 3);
    assert_string_equal(h.reason[0], "field type conflict: input field \"seq\" on measurement "
                                     "\"needle_window\" is type integer, already exists as type "
                                     "float");
    h = identify("{\"error\":\"partial write: field type conflict: input field \\\"in_spec\\\" on "
                 "measurement \\\"needle_window\\\" is type boolean, already exists as type "
                 "string dropped=1\"}",
                 lines, 5);
    assert_int_equal(h.n, 1);
    assert_int_equal(h.idx[0], 0);
}

static void identify_line_numbers_and_nothing(void **state)
{
    const char *lines[] = {"a f=1 1", "b f=1 2", "c f=1 3"};
    struct hits h = identify("{\"error\":\"partial write of line protocol occurred\",\"data\":["
                             "{\"original_line\":\"b f=1 2\",\"line_number\":2,"
                             "\"error_message\":\"x\"},{\"line_number\": 3},"
                             "{\"line_number\":9}]}",
                             lines, 3);
    assert_int_equal(h.n, 2);
    assert_int_equal(h.idx[0], 1);
    assert_int_equal(h.idx[1], 2);
    h = identify("{\"error\":\"bad request\"}", lines, 3);
    assert_int_equal(h.n, 0);
    h = identify("<html>proxy error</html>", lines, 3);
    assert_int_equal(h.n, 0);
}

/* --- schema -------------------------------------------------------------- */

static void schema_refusals(void **state)
{
    struct nw_point p;
    memset(&p, 0, sizeof(p));
    p.kind = NW_POINT_SESSION;
    snprintf(p.device, sizeof(p.device), "d");
    struct nw_col_value v[NW_SCHEMA_MAX_COLS];
    struct nw_error err = {0};
    assert_int_equal(nw_schema_values(&p, v, &err), NW_OK);
    p.u.session.pigment_ul = INFINITY;
    assert_int_equal(nw_schema_values(&p, v, &err), NW_ERR_INVALID);
    assert_string_equal(err.msg, "session.pigment_ul is infinite");
    p.kind = (enum nw_point_kind)42;
    assert_int_equal(nw_schema_values(&p, v, &err), NW_ERR_INVALID);
    /* Tags first and sorted, as InfluxDB wants them. */
    for (int k = 0; k < NW_POINT__COUNT; k++) {
        const struct nw_schema *sc = nw_schema_of((enum nw_point_kind)k);
        const char *prev = "";
        for (size_t i = 0; i < sc->ncols && sc->cols[i].type == NW_COL_TAG; i++) {
            assert_true(strcmp(prev, sc->cols[i].name) < 0);
            prev = sc->cols[i].name;
        }
        assert_true(sc->ncols <= NW_SCHEMA_MAX_COLS);
    }
}

/* --- backoff ------------------------------------------------------------- */

static void backoff_grows_with_jitter(void **state)
{
    struct nw_store s;
    memset(&s, 0, sizeof(s));
    s.opt.backoff_min_ms = 500;
    s.opt.backoff_max_ms = 8000;
    s.rng = 12345;
    int64_t expect = 500;
    for (int i = 0; i < 8; i++) {
        int64_t d = nw_store_backoff_next(&s);
        assert_true(d >= expect / 2 && d <= expect);
        expect = expect * 2 > 8000 ? 8000 : expect * 2;
    }
    nw_store_backoff_reset(&s);
    int64_t d = nw_store_backoff_next(&s);
    assert_true(d >= 250 && d <= 500);
}

/* --- a write with nothing listening --------------------------------------- */

static unsigned closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    bind(fd, (struct sockaddr *)&a, sizeof(a));
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd); /* nothing listens there now: connect() is refused */
    return ntohs(a.sin_port);
}

static void write_to_closed_port(void **state)
{
    char url[128];
    snprintf(url, sizeof(url), "influx://alice:" SECRET "@127.0.0.1:%u/nw", closed_port());
    struct nw_store_options opt = {.backoff_min_ms = 200, .backoff_max_ms = 1000};
    struct nw_store *s = NULL;
    struct nw_error err = {0};
    assert_int_equal(nw_store_open(url, &opt, &s, &err), NW_OK);
    assert_null(strstr(nw_store_name(s), SECRET));
    assert_null(strstr(nw_store_name(s), "alice"));
    struct nw_point p;
    memset(&p, 0, sizeof(p));
    p.kind = NW_POINT_STATUS;
    snprintf(p.device, sizeof(p.device), "d");
    struct nw_store_outcome out;
    assert_int_equal(nw_store_write(s, &p, 1, &out), NW_ERR_RETRY);
    assert_int_equal(out.done, 0);
    assert_int_equal(out.requests, 1);
    assert_true(out.retry_after_ms >= 100 && out.retry_after_ms <= 200);
    assert_null(strstr(out.msg, SECRET));
    /* Called again at once: no request before the pause is over. */
    assert_int_equal(nw_store_write(s, &p, 1, &out), NW_ERR_RETRY);
    assert_int_equal(out.requests, 0);
    assert_true(out.retry_after_ms > 0);
    struct nw_store_stats st;
    nw_store_stats(s, &st);
    assert_int_equal(st.requests, 1);
    assert_int_equal(st.transport_errors, 1);
    nw_store_close(&s);
}

static void open_errors(void **state)
{
    struct nw_store *s = NULL;
    struct nw_error err = {0};
    struct nw_store_options opt = {.credentials_file = "/nonexistent/creds"};
    assert_int_equal(nw_store_open("influx://h/db", &opt, &s, &err), NW_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "/nonexistent/creds"));
    char path[] = "/tmp/nw-creds.XXXXXX";
    int fd = mkstemp(path);
    assert_true(write(fd, SECRET "\n", strlen(SECRET) + 1) > 0);
    close(fd);
    opt.credentials_file = path;
    assert_int_equal(nw_store_open("influx://h/db", &opt, &s, &err), NW_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "expected user:password"));
    assert_null(strstr(err.msg, SECRET));
    unlink(path);
    opt = (struct nw_store_options){.max_batch_bytes = 100};
    assert_int_equal(nw_store_open("influx://h/db", &opt, &s, &err), NW_ERR_CONFIG);
    assert_int_equal(nw_store_open("influx2://h/?org=o&bucket=b", NULL, &s, &err), NW_OK);
    nw_store_close(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sqlite_urls),
        cmocka_unit_test(influx_v1_urls),
        cmocka_unit_test(influx_v2_urls),
        cmocka_unit_test(bad_urls),
        cmocka_unit_test(retry_after),
        cmocka_unit_test(json_helpers),
        cmocka_unit_test(identify_parse_failures),
        cmocka_unit_test(identify_type_conflict),
        cmocka_unit_test(identify_line_numbers_and_nothing),
        cmocka_unit_test(schema_refusals),
        cmocka_unit_test(backoff_grows_with_jitter),
        cmocka_unit_test(write_to_closed_port),
        cmocka_unit_test(open_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_cli_units.c - the CLI's pure modules: the bounded JSON reader
 * (cli/json.c), the output escapers (cli/fmt.c), interned strings
 * (cli/strmap.c) and the spec config reader (cli/spec.c).
 */
#include "fmt.h"
#include "json.h"
#include "spec.h"
#include "strmap.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

static int failures;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

static void test_json(void)
{
    struct nw_json *j = nw_json_new(64);
    struct nw_error err;
    const char *doc = "{\"results\":[{\"statement_id\":0,\"series\":[{\"name\":\"m\","
                      "\"tags\":{\"device\":\"d\\u00e9v\"},\"columns\":[\"time\",\"x\"],"
                      "\"values\":[[1700000000000,1.5],[1700000001000,null]]}]}]}";
    CHECK(nw_json_parse(j, doc, strlen(doc), &err) == NW_OK);
    uint32_t res = nw_json_member(j, 0, "results");
    CHECK(res && nw_json_at(j, res)->type == NW_JSON_ARR && nw_json_at(j, res)->size == 1);
    uint32_t r0 = nw_json_first(j, res);
    uint32_t ser = nw_json_first(j, nw_json_member(j, r0, "series"));
    char dev[16];
    CHECK(nw_json_str(j, nw_json_member(j, nw_json_member(j, ser, "tags"), "device"), dev,
                      sizeof(dev)) == 4);
    CHECK(strcmp(dev, "d\xc3\xa9v") == 0);
    uint32_t vals = nw_json_member(j, ser, "values");
    uint32_t row = nw_json_first(j, vals);
    int64_t t = 0;
    double x = 0;
    CHECK(nw_json_int(j, nw_json_first(j, row), &t) && t == 1700000000000);
    CHECK(nw_json_num(j, nw_json_next(j, nw_json_first(j, row)), &x) && x == 1.5);
    uint32_t row2 = nw_json_next(j, row);
    CHECK(nw_json_at(j, nw_json_next(j, nw_json_first(j, row2)))->type == NW_JSON_NULL);
    CHECK(nw_json_member(j, 0, "nope") == 0);
    /* surrogate pair */
    const char *sp = "\"\\ud83d\\ude00\"";
    CHECK(nw_json_parse(j, sp, strlen(sp), &err) == NW_OK);
    char s[8];
    CHECK(nw_json_str(j, 0, s, sizeof(s)) == 4 && strcmp(s, "\xf0\x9f\x98\x80") == 0);
    /* malformed input is refused with an offset */
    static const char *bad[] = {"{",  "[1,]",        "{\"a\" 1}", "\"\x01\"", "01",
                                "1.", "tru",         "[1] x",     "\"\\x\"",  "{\"a\":}",
                                "-",  "[\"\\u12\"]", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK(nw_json_parse(j, bad[i], strlen(bad[i]), &err) == NW_ERR_PROTOCOL);
        CHECK(strstr(err.msg, "at byte") != NULL);
    }
    /* bounds */
    char deep[100];
    memset(deep, '[', 40);
    memset(deep + 40, ']', 40);
    CHECK(nw_json_parse(j, deep, 80, &err) == NW_ERR_TOO_BIG);
    char many[400] = "[";
    for (int i = 0; i < 100; i++) {
        strcat(many, i ? ",1" : "1");
    }
    strcat(many, "]");
    CHECK(nw_json_parse(j, many, strlen(many), &err) == NW_ERR_TOO_BIG);
    nw_json_destroy(&j);
    CHECK(j == NULL);
}

static void test_fmt(void)
{
    char buf[256];
    FILE *f = fmemopen(buf, sizeof(buf), "w");
    nw_fmt_csv_field(f, "a,b");
    fputc('|', f);
    nw_fmt_csv_field(f, "say \"hi\"");
    fputc('|', f);
    nw_fmt_csv_field(f, "plain");
    fputc('|', f);
    nw_fmt_json_str(f, "q\"\\\n");
    fputc('|', f);
    nw_fmt_html(f, "<a&b>");
    fclose(f);
    CHECK(strcmp(buf, "\"a,b\"|\"say \"\"hi\"\"\"|plain|\"q\\\"\\\\\\u000a\"|&lt;a&amp;b&gt;") ==
          0);
    CHECK(nw_fmt_width("Clínica") == 7);
    f = fmemopen(buf, sizeof(buf), "w");
    nw_fmt_cell(f, "Clínica São Paulo", 8, false);
    fclose(f);
    CHECK(strcmp(buf, "Clínica\xe2\x80\xa6") == 0);
    CHECK(strcmp(nw_fmt_num(buf, sizeof(buf), -0.001, 2), "0.00") == 0);
    CHECK(strcmp(nw_fmt_num(buf, sizeof(buf), NAN, 2), "") == 0);
    CHECK(strcmp(nw_fmt_num(buf, sizeof(buf), 2.0 / 3.0, 3), "0.667") == 0);
    enum nw_format fm;
    CHECK(nw_fmt_parse("json", &fm) && fm == NW_FMT_JSON);
    CHECK(!nw_fmt_parse("xml", &fm));
}

static void test_strmap(void)
{
    struct nw_strmap *m = nw_strmap_new(1000);
    uint32_t id;
    char key[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        CHECK(nw_strmap_put(m, key, &id) == NW_OK && id == (uint32_t)i);
    }
    CHECK(nw_strmap_put(m, "k500", &id) == NW_OK && id == 500);
    CHECK(nw_strmap_put(m, "new", &id) == NW_ERR_FULL);
    CHECK(nw_strmap_get(m, "k999") == 999 && nw_strmap_get(m, "zz") == -1);
    CHECK(strcmp(nw_strmap_str(m, 7), "k7") == 0 && nw_strmap_count(m) == 1000);
    nw_strmap_destroy(&m);
}

static void test_spec(void)
{
    char path[] = "/tmp/nw-cli-spec-XXXXXX";
    int fd = mkstemp(path);
    const char *ini = "[collector]\n"
                      "store = sqlite:/var/lib/x.db\n"
                      "inventory = inv.csv\n"
                      "[spec]\n"
                      "rate_hz = 100..140\n"
                      "some_future_key = 3\n"
                      "[model \"DG-3X\"]\n"
                      "rate_hz = 95..145\n"
                      "depth_mm = 0.25..0.55\n"
                      "cartridge_max_cycles = 1000\n"
                      "[model \"DG-4\"]\n"
                      "service_hours = 250\n"
                      "[needlewatch]\n"
                      "collector = http://127.0.0.1:9999\n";
    CHECK(write(fd, ini, strlen(ini)) == (ssize_t)strlen(ini));
    close(fd);
    struct nw_specs *s = nw_specs_new();
    char store[64] = "", coll[64] = "";
    struct nw_error err;
    CHECK(nw_specs_load(s, path, store, sizeof(store), coll, sizeof(coll), &err) == NW_OK);
    CHECK(nw_specs_count(s) == 3);
    const struct nw_spec *x = nw_specs_for(s, "DG-3X");
    CHECK(x->rate_lo == 95 && x->rate_hi == 145 && x->depth_hi == 0.55 && x->service_hours == 500);
    const struct nw_spec *y = nw_specs_for(s, "DG-4");
    CHECK(y->rate_lo == 100 && y->depth_hi == 0.5 && y->service_hours == 250);
    CHECK(nw_specs_for(s, "other") == nw_specs_at(s, 0));
    CHECK(store[0] == '\0' && strcmp(coll, "http://127.0.0.1:9999") == 0);
    /* a bad value names file, line and key */
    fd = open(path, O_WRONLY | O_TRUNC);
    const char *bad = "[collector]\nx = 1\n[model \"A\"]\nrate_hz = 140..100\n";
    CHECK(write(fd, bad, strlen(bad)) == (ssize_t)strlen(bad));
    close(fd);
    CHECK(nw_specs_load(s, path, NULL, 0, NULL, 0, &err) == NW_ERR_CONFIG);
    CHECK(strstr(err.msg, ":4:") && strstr(err.msg, "rate_hz"));
    unlink(path);
    nw_specs_destroy(&s);
}

int main(void)
{
    test_json();
    test_fmt();
    test_strmap();
    test_spec();
    if (failures) {
        fprintf(stderr, "%d checks failed\n", failures);
        return 1;
    }
    printf("cli units: all checks passed\n");
    return 0;
}

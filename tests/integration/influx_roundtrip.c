/*
 * influx_roundtrip.c - points built by nw_lp come back from a real InfluxDB
 * 1.6.7 byte for byte, and from VictoriaMetrics as far as it stores them.
 *
 * Usage: influx_roundtrip INFLUX_URL [VICTORIA_URL]
 * (influx_roundtrip.sh starts both servers with servers.sh and runs this.)
 *
 * InfluxDB is checked against one exact expected /query document, built
 * here from the same table the points come from: measurement, tag values,
 * field keys, strings as InfluxDB's Go JSON encoder writes them (HTML-safe
 * \u003c for '<', \u2028, ...) and numbers written out by hand. An exact
 * document needs no JSON parser and catches everything at once: a wrong
 * escape, a float read as an integer, a missing tag, an extra point. The
 * hand-written numbers are themselves checked to read back to the exact
 * doubles written, so the comparison is bit-exact.
 *
 * VictoriaMetrics is checked per series through /api/v1/export, decoding
 * its JSON strings (its escaping differs from Go's: '<' becomes \u003c but
 * '>' and '&' stay raw, and labels are not sorted). What we found it does
 * differently from InfluxDB with the same /write body (v1.x from Debian 12):
 *  - each numeric field becomes a series "<measurement>_<field key>" with
 *    the tags and a "db" label from ?db=; booleans are stored as 1/0 and
 *    integers as float64 (INT64_MAX reads back as 9223372036854776000);
 *  - string fields are not kept as strings: the series exists with value 0;
 *  - floats keep about 15-16 significant digits (DBL_MAX comes back as
 *    1.797693134862315e308), the smallest subnormal becomes 0, and -0.0
 *    becomes 0: round trips are close, not bit-exact;
 *  - a newline inside a quoted string field ends the line there, so the
 *    rest is stored as a point of its own (InfluxDB keeps the newline in
 *    the string): the encoder therefore refuses newlines in strings too;
 *  - a duplicate tag key keeps the last value (InfluxDB: 400) and a
 *    duplicate field key stores both values (InfluxDB keeps the last);
 *  - a '"' in a field key loses the line's timestamp (stored at "now"), and
 *    "\"" there keeps the backslash: the encoder refuses '"' in field keys;
 *  - a backslash before an escaped delimiter ("a\\,b") drops the line
 *    silently (InfluxDB reads it as "a\,b"), and "\\" in a tag value is read
 *    as one backslash (InfluxDB keeps both): the encoder refuses a
 *    backslash before a backslash or a delimiter in names;
 *  - "time" as a field or tag key is stored (InfluxDB drops the field
 *    silently and refuses the tag); lines starting with '#' are comments in
 *    both.
 */
#include <needlewatch/lp.h>

#include <curl/curl.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DB "nwtest"
#define RAW_DB "nwraw" /* bytes the encoder would never send */
#define MEASUREMENT "needle window, v=1 é"
#define T0 1700000000000LL

static int checks, failures;

static void check(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void check(bool ok, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    checks++;
    if (!ok) {
        failures++;
        fputs("FAIL: ", stdout);
        vprintf(fmt, ap);
        fputc('\n', stdout);
    }
    va_end(ap);
}

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void note(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("note: ", stdout);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
}

/* --- the points ---------------------------------------------------------- */

/*
 * Tag keys "clinic name" and "device,id"; field keys "back\slash" (int),
 * "in spec" (bool), "note=text" (string), "rate hz,mean=x" (float). InfluxDB
 * lists columns sorted: time, back\slash, clinic name, device,id, in spec,
 * note=text, rate hz,mean=x.
 */
struct row {
    const char *clinic; /* "" leaves the tag out: JSON null */
    const char *device;
    int64_t seq;
    bool ok;
    const char *note;
    double rate;
    const char *rate_json; /* how InfluxDB prints it */
};

static const struct row rows[] = {
    {"Clínica São Paulo, Unit 2", "smp-0001", 1, true, "Clínica São Paulo, Unit 2", 120.0, "120"},
    {"a,b=c d\"e\\f", "\xf0\x9f\x92\x89 needle \xf0\x9f\xaa\xa1", INT64_MIN, false,
     "say \"hi\" \\o/ C:\\path\\", -0.0, "-0"},
    {" lead and trail ", "=", INT64_MAX, true, "", DBL_MAX, "1.7976931348623157e+308"},
    {"#not a comment", "x", 0, false, "tab\there <b>&amp;</b>", 4.9406564584124654e-324, "5e-324"},
    {"back\\slash C:\\dir", "time", -1, true,
     "emoji \xf0\x9f\x92\x89\xf0\x9f\xaa\xa1 and \xe2\x80\xa8 \xef\xbf\xbf", 0.1, "0.1"},
    {"", "d6 (no clinic)", 42, false, "x", 1e21, "1e+21"},
    {"c7", "d7", 7, true, "'single' `back`", 1e-7, "1e-7"},
    {"c8", "d8", 8, true, "y", 0.30000000000000004, "0.30000000000000004"},
    {"c9", "d9", 9, false, "z", -DBL_MIN, "-2.2250738585072014e-308"},
    {"c10", "d10", 10, true, "w", 9007199254740992.0, "9007199254740992"},
};

#define N_ROWS (sizeof(rows) / sizeof(rows[0]))

static const char *const numeric_fields[] = {"back\\slash", "in spec", "rate hz,mean=x"};

static enum nw_err add_row(struct nw_lp *lp, const struct row *r, int64_t ts, struct nw_error *err)
{
    nw_lp_begin(lp, MEASUREMENT, err);
    nw_lp_tag(lp, "clinic name", r->clinic, err);
    nw_lp_tag(lp, "device,id", r->device, err);
    nw_lp_field_i64(lp, "back\\slash", r->seq, err);
    nw_lp_field_bool(lp, "in spec", r->ok, err);
    nw_lp_field_str(lp, "note=text", r->note, err);
    nw_lp_field_f64(lp, "rate hz,mean=x", r->rate, err);
    return nw_lp_end(lp, ts, NW_LP_MS, err);
}

static struct nw_lp *build_batch(void)
{
    struct nw_lp *lp = nw_lp_new(1 << 16);
    struct nw_error err = {0};
    for (size_t i = 0; i < N_ROWS; i++) {
        check(add_row(lp, &rows[i], T0 + (int64_t)i, &err) == NW_OK, "row %zu refused: %s", i,
              err.msg);
    }
    return lp;
}

/* --- HTTP ---------------------------------------------------------------- */

struct resp {
    long status;
    char *body;
    size_t len;
};

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
    struct resp *r = ud;
    char *bigger = realloc(r->body, r->len + size * n + 1);
    if (!bigger) {
        return 0;
    }
    r->body = bigger;
    memcpy(r->body + r->len, data, size * n);
    r->len += size * n;
    r->body[r->len] = '\0';
    return size * n;
}

/* POSTs body (or GETs when body is NULL); the caller frees r->body. */
static struct resp http(const char *url, const char *body, size_t len)
{
    struct resp r = {0, calloc(1, 1), 0};
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)len);
    }
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK) {
        printf("FAIL: %s: %s\n", url, curl_easy_strerror(rc));
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_easy_cleanup(c);
    return r;
}

/* InfluxDB takes statements that change something only by POST. */
static struct resp influx_query(const char *base, const char *db, const char *q, bool post)
{
    CURL *c = curl_easy_init();
    char *eq = curl_easy_escape(c, q, 0);
    char url[4096];
    snprintf(url, sizeof(url), "%s/query?db=%s&epoch=ms&q=%s", base, db, eq);
    curl_free(eq);
    curl_easy_cleanup(c);
    return http(url, post ? "" : NULL, 0);
}

static struct resp write_lines(const char *base, const char *db, const char *body, size_t len)
{
    char url[512];
    snprintf(url, sizeof(url), "%s/write?db=%s&precision=ms", base, db);
    return http(url, body, len);
}

/* --- the expected InfluxDB document -------------------------------------- */

struct text {
    char s[1 << 16];
    size_t n;
};

static void put(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct text *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->s + t->n, sizeof(t->s) - t->n, fmt, ap);
    va_end(ap);
    if (n > 0) {
        t->n += (size_t)n;
    }
}

/* A JSON string the way Go's encoding/json (HTML-safe) writes it. */
static void put_json(struct text *t, const char *s)
{
    put(t, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            put(t, "\\%c", *p);
        } else if (*p == '\n') {
            put(t, "\\n");
        } else if (*p == '\r') {
            put(t, "\\r");
        } else if (*p == '\t') {
            put(t, "\\t");
        } else if (*p < 0x20 || *p == '<' || *p == '>' || *p == '&') {
            put(t, "\\u%04x", *p);
        } else if (p[0] == 0xe2 && p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9)) {
            put(t, "\\u202%c", p[2] == 0xa8 ? '8' : '9');
            p += 2;
        } else {
            put(t, "%c", *p);
        }
    }
    put(t, "\"");
}

static void put_row(struct text *t, const struct row *r, int64_t ts)
{
    put(t, "[%" PRId64 ",%" PRId64 ",", ts, r->seq);
    if (r->clinic[0]) {
        put_json(t, r->clinic);
    } else {
        put(t, "null");
    }
    put(t, ",");
    put_json(t, r->device);
    put(t, ",%s,", r->ok ? "true" : "false");
    put_json(t, r->note);
    put(t, ",%s]", r->rate_json);
}

static void expected_document(struct text *t)
{
    put(t, "{\"results\":[{\"statement_id\":0,\"series\":[{\"name\":");
    put_json(t, MEASUREMENT);
    put(t, ",\"columns\":[\"time\",\"back\\\\slash\",\"clinic name\",\"device,id\",\"in "
           "spec\",\"note=text\",\"rate hz,mean=x\"],\"values\":[");
    for (size_t i = 0; i < N_ROWS; i++) {
        put(t, i ? "," : "");
        put_row(t, &rows[i], T0 + (int64_t)i);
    }
    put(t, "]}]}]}\n");
}

static void compare_text(const char *what, const char *got, const char *want)
{
    bool same = strcmp(got, want) == 0;
    check(same, "%s differs", what);
    if (!same) {
        size_t i = 0;
        while (got[i] && got[i] == want[i]) {
            i++;
        }
        printf("  first difference at byte %zu\n  want: %s\n  got:  %s\n", i, want, got);
    }
}

/* The hand-written numbers must be the very doubles we wrote. */
static void check_expected_numbers(void)
{
    for (size_t i = 0; i < N_ROWS; i++) {
        double back = strtod(rows[i].rate_json, NULL);
        check(memcmp(&back, &rows[i].rate, sizeof(back)) == 0, "row %zu: %s is not the double", i,
              rows[i].rate_json);
    }
}

/* --- InfluxDB ------------------------------------------------------------ */

static void influx_round_trip(const char *base, const struct nw_lp *lp)
{
    struct resp r = influx_query(base, "", "CREATE DATABASE " DB, true);
    check(r.status == 200, "CREATE DATABASE: HTTP %ld %s", r.status, r.body);
    free(r.body);
    r = influx_query(base, "", "CREATE DATABASE " RAW_DB, true);
    check(r.status == 200, "CREATE DATABASE: HTTP %ld %s", r.status, r.body);
    free(r.body);
    r = write_lines(base, DB, nw_lp_data(lp), nw_lp_len(lp));
    check(r.status == 204, "write: HTTP %ld %s", r.status, r.body);
    free(r.body);
    r = influx_query(base, DB, "SELECT * FROM \"" MEASUREMENT "\"", false);
    check(r.status == 200, "query: HTTP %ld", r.status);
    static struct text want;
    expected_document(&want);
    compare_text("InfluxDB /query document", r.body, want.s);
    free(r.body);
}

static bool vm_find(const char *vm, const char *selector, const char *needle);

/* What the encoder refuses, and what the server does with the raw bytes. */
static void injection(const char *base, const char *vm)
{
    const char *evil = "Evil seq=1i 1700000000998\n"
                       "inject,clinic=pwned seq=666i 1700000000999\n"
                       "inject,clinic=Evil2";
    struct nw_lp *lp = nw_lp_new(4096);
    struct nw_error err = {0};
    nw_lp_begin(lp, "inject", &err);
    check(nw_lp_tag(lp, "clinic", evil, &err) == NW_ERR_INVALID &&
              strstr(err.msg, "newline") != NULL,
          "encoder accepted a newline in a tag value (%s)", err.msg);
    nw_lp_destroy(&lp);

    /* A writer that pastes the value in unescaped sends these bytes. */
    char raw[512];
    int n = snprintf(raw, sizeof(raw), "inject,clinic=%s seq=1i 1700000000998\n", evil);
    struct resp r = write_lines(base, RAW_DB, raw, (size_t)n);
    check(r.status == 204, "raw injection: InfluxDB answered %ld, expected 204", r.status);
    free(r.body);
    r = influx_query(base, RAW_DB, "SELECT seq FROM inject WHERE clinic = 'pwned'", false);
    check(strstr(r.body, "666") != NULL, "raw injection did not store the forged point: %s",
          r.body);
    note("InfluxDB answered 204 to a tag value with a newline and stored the forged point "
         "clinic=pwned seq=666: %s",
         r.body);
    free(r.body);
    if (vm) {
        r = write_lines(vm, RAW_DB, raw, (size_t)n);
        check(r.status == 204, "raw injection: VictoriaMetrics answered %ld", r.status);
        free(r.body);
        check(vm_find(vm, "{__name__=\"inject_seq\",clinic=\"pwned\"}", "666"),
              "VictoriaMetrics did not store the forged point");
        note("VictoriaMetrics also answered 204 and stored inject_seq{clinic=\"pwned\"} 666");
    }
}

/*
 * InfluxDB 1.6.7 keeps a newline inside a quoted string, VictoriaMetrics
 * ends the line there: the encoder refuses it.
 */
static void string_newline(const char *base, const char *vm)
{
    struct nw_lp *lp = nw_lp_new(4096);
    struct nw_error err = {0};
    nw_lp_begin(lp, "strnl", &err);
    check(nw_lp_field_str(lp, "note", "a\nb", &err) == NW_ERR_INVALID,
          "encoder accepted a newline in a string (%s)", err.msg);
    nw_lp_destroy(&lp);
    const char raw[] = "strnl note=\"line1\nline2\" 1700000000000\n";
    struct resp r = write_lines(base, RAW_DB, raw, sizeof(raw) - 1);
    check(r.status == 204, "raw string newline: HTTP %ld %s", r.status, r.body);
    free(r.body);
    r = influx_query(base, RAW_DB, "SELECT note FROM strnl", false);
    check(strstr(r.body, "\"line1\\nline2\"") != NULL, "InfluxDB lost the newline: %s", r.body);
    note("InfluxDB 1.6.7 keeps a raw newline inside a quoted string field: %s", r.body);
    free(r.body);
    if (!vm) {
        return;
    }
    const char smuggle[] = "strnl,t=x note=\"a\nsmuggled,t=y v=666 1700000000000\n\",v=1 "
                           "1700000000000\n";
    r = write_lines(vm, RAW_DB, smuggle, sizeof(smuggle) - 1);
    check(r.status == 204, "raw string newline: VictoriaMetrics answered %ld", r.status);
    free(r.body);
    check(vm_find(vm, "{__name__=\"smuggled_v\"}", "666"),
          "VictoriaMetrics did not split the string at its newline");
    note("VictoriaMetrics split a quoted string at its newline and stored smuggled_v 666");
}

/* --- VictoriaMetrics ----------------------------------------------------- */

/* Decodes the JSON string at p (at its opening quote) into out. */
static const char *json_string(const char *p, char *out, size_t cap)
{
    size_t n = 0;
    if (*p++ != '"') {
        return NULL;
    }
    while (*p && *p != '"' && n + 4 < cap) {
        if (*p != '\\') {
            out[n++] = *p++;
            continue;
        }
        p++;
        const char *simple = strchr("\"\\/bfnrt", *p);
        if (simple && *p) {
            out[n++] = "\"\\/\b\f\n\r\t"[simple - "\"\\/bfnrt"];
            p++;
            continue;
        }
        unsigned long cp = strtoul((char[5]){p[1], p[2], p[3], p[4], 0}, NULL, 16);
        p += 5;
        if (cp >= 0xd800 && cp < 0xdc00 && p[0] == '\\' && p[1] == 'u') {
            unsigned long lo = strtoul((char[5]){p[2], p[3], p[4], p[5], 0}, NULL, 16);
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            p += 6;
        }
        if (cp < 0x80) {
            out[n++] = (char)cp;
        } else if (cp < 0x800) {
            out[n++] = (char)(0xc0 | cp >> 6);
            out[n++] = (char)(0x80 | (cp & 0x3f));
        } else if (cp < 0x10000) {
            out[n++] = (char)(0xe0 | cp >> 12);
            out[n++] = (char)(0x80 | ((cp >> 6) & 0x3f));
            out[n++] = (char)(0x80 | (cp & 0x3f));
        } else {
            out[n++] = (char)(0xf0 | cp >> 18);
            out[n++] = (char)(0x80 | ((cp >> 12) & 0x3f));
            out[n++] = (char)(0x80 | ((cp >> 6) & 0x3f));
            out[n++] = (char)(0x80 | (cp & 0x3f));
        }
    }
    out[n] = '\0';
    return *p == '"' ? p + 1 : NULL;
}

/* One /api/v1/export line with one sample. */
struct series {
    char labels[8][2][256]; /* name, value */
    int n_labels;
    double value;
    long long ts;
};

static bool parse_series(const char *line, struct series *s)
{
    const char *p = strstr(line, "{\"metric\":{");
    if (!p) {
        return false;
    }
    p += strlen("{\"metric\":{");
    for (s->n_labels = 0; *p == '"' && s->n_labels < 8; s->n_labels++) {
        p = json_string(p, s->labels[s->n_labels][0], 256);
        if (!p || *p++ != ':') {
            return false;
        }
        p = json_string(p, s->labels[s->n_labels][1], 256);
        if (!p) {
            return false;
        }
        p += *p == ',';
    }
    p = strstr(p, "\"values\":[");
    const char *t = p ? strstr(p, "\"timestamps\":[") : NULL;
    if (!p || !t) {
        return false;
    }
    s->value = strtod(p + strlen("\"values\":["), NULL);
    s->ts = strtoll(t + strlen("\"timestamps\":["), NULL, 10);
    return true;
}

static const char *label(const struct series *s, const char *name)
{
    for (int i = 0; i < s->n_labels; i++) {
        if (strcmp(s->labels[i][0], name) == 0) {
            return s->labels[i][1];
        }
    }
    return "";
}

static double row_value(const struct row *r, int field)
{
    return field == 0 ? (double)r->seq : field == 1 ? (r->ok ? 1.0 : 0.0) : r->rate;
}

static bool series_is(const struct series *s, const struct row *r, int field)
{
    char name[256];
    snprintf(name, sizeof(name), "%s_%s", MEASUREMENT, numeric_fields[field]);
    int want_labels = r->clinic[0] ? 4 : 3; /* __name__, db, tags */
    return s->n_labels == want_labels && strcmp(label(s, "__name__"), name) == 0 &&
           strcmp(label(s, "db"), DB) == 0 && strcmp(label(s, "clinic name"), r->clinic) == 0 &&
           strcmp(label(s, "device,id"), r->device) == 0;
}

/* VictoriaMetrics keeps ~15 digits: exact, close enough, or wrong. */
static void compare_value(const struct series *s, const struct row *r, size_t i, int field)
{
    double want = row_value(r, field);
    bool exact = memcmp(&s->value, &want, sizeof(want)) == 0;
    bool close = fabs(s->value - want) <= 1e-15 * fabs(want) ||
                 (fabs(want) < 1e-300 && fabs(s->value) < 1e-300);
    check(close, "VictoriaMetrics row %zu %s: %.17g, wrote %.17g", i, numeric_fields[field],
          s->value, want);
    check(s->ts == T0 + (long long)i, "VictoriaMetrics row %zu: timestamp %lld", i, s->ts);
    if (close && !exact) {
        note("VictoriaMetrics row %zu %s: wrote %.17g, reads %.17g", i, numeric_fields[field], want,
             s->value);
    }
}

static size_t find_series(char *body, struct series *all, size_t max)
{
    size_t n = 0;
    for (char *line = strtok(body, "\n"); line && n < max; line = strtok(NULL, "\n")) {
        if (parse_series(line, &all[n])) {
            n++;
        }
    }
    return n;
}

static struct resp vm_export(const char *vm)
{
    char url[512];
    snprintf(url, sizeof(url), "%s/internal/force_flush", vm);
    free(http(url, NULL, 0).body);
    snprintf(url, sizeof(url), "%s/api/v1/export", vm);
    return http(url, "match[]={db=\"" DB "\"}", strlen("match[]={db=\"" DB "\"}"));
}

/* Polls the export of one selector until needle shows up (5 s at most). */
static bool vm_find(const char *vm, const char *selector, const char *needle)
{
    char url[512], form[512];
    snprintf(url, sizeof(url), "%s/internal/force_flush", vm);
    free(http(url, NULL, 0).body);
    snprintf(url, sizeof(url), "%s/api/v1/export", vm);
    snprintf(form, sizeof(form), "match[]=%s", selector);
    for (int attempt = 0; attempt < 50; attempt++) {
        struct resp r = http(url, form, strlen(form));
        bool found = strstr(r.body, needle) != NULL;
        free(r.body);
        if (found) {
            return true;
        }
        nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL);
    }
    return false;
}

static void check_vm_rows(const struct series *all, size_t n)
{
    for (size_t i = 0; i < N_ROWS; i++) {
        for (int f = 0; f < 3; f++) {
            const struct series *hit = NULL;
            for (size_t k = 0; k < n && !hit; k++) {
                hit = series_is(&all[k], &rows[i], f) ? &all[k] : NULL;
            }
            check(hit != NULL, "VictoriaMetrics has no series for row %zu %s", i,
                  numeric_fields[f]);
            if (hit) {
                compare_value(hit, &rows[i], i, f);
            }
        }
    }
}

static void victoria_round_trip(const char *vm, const struct nw_lp *lp)
{
    struct resp r = write_lines(vm, DB, nw_lp_data(lp), nw_lp_len(lp));
    check(r.status == 204, "VictoriaMetrics write: HTTP %ld %s", r.status, r.body);
    free(r.body);
    /* Samples become searchable about a second after the write. */
    static struct series all[256];
    size_t n = 0;
    for (int attempt = 0; attempt < 100 && n < 4 * N_ROWS; attempt++) {
        r = vm_export(vm);
        n = find_series(r.body, all, 256);
        free(r.body);
        if (n < 4 * N_ROWS) {
            nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL);
        }
    }
    check_vm_rows(all, n);
    note("VictoriaMetrics returned %zu series for %zu points with 4 fields (string fields "
         "are stored as value 0)",
         n, N_ROWS);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s INFLUX_URL [VICTORIA_URL]\n", argv[0]);
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    check_expected_numbers();
    struct nw_lp *lp = build_batch();
    influx_round_trip(argv[1], lp);
    string_newline(argv[1], argc > 2 ? argv[2] : NULL);
    if (argc > 2) {
        victoria_round_trip(argv[2], lp);
    }
    injection(argv[1], argc > 2 ? argv[2] : NULL);
    nw_lp_destroy(&lp);
    curl_global_cleanup();
    printf("%d passed, %d failed\n", checks - failures, failures);
    return failures ? 1 : 0;
}

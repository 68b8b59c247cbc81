/*
 * config.c - INI files through libinih, checked against a typed key table.
 *
 * libinih does the tokenising (comments, "key = value", sections); we do
 * everything it does not, and guard against what it does silently:
 *
 *  - It cuts a long line into pieces, hands the first piece to the handler
 *    as a (truncated) value and reports the error on the wrong line. So we
 *    feed it through our own reader (ini_parse_stream), one physical line
 *    per call, and refuse a line that does not fit before it ever sees it.
 *  - The Debian build has no line numbers in the handler (INI_HANDLER_LINENO
 *    is 0), but since our reader hands out exactly one line per call, the
 *    reader's count is the line of the key being handled.
 *  - It reads an indented line as the continuation of the previous value
 *    (calling the handler again with the same key). The reader strips
 *    leading whitespace, so that can never happen.
 *  - It returns only the line of the first syntax error, keeps parsing after
 *    it, truncates section names to 49 bytes and ignores text after "]".
 *    The reader checks each line's shape with libinih's own rules first and
 *    stops the parse (returns NULL) at the first problem, with a message
 *    that says what is wrong; libinih's return value is only a backstop.
 *
 * We never touch libinih's process-wide runtime switches (ini_max_line and
 * friends in Debian's build): other code in the process may rely on them,
 * and writing them would not be thread-safe.
 *
 * Values are parsed into a temporary and stored only when valid, so a bad
 * command-line flag leaves the config as it was.
 */
#include <needlewatch/config.h>

#include <needlewatch/clock.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* libinih's MAX_SECTION (50) minus its NUL: longer section names get cut. */
#define INIH_MAX_SECTION 49
/* How much of a bad value an error message quotes. */
#define QUOTE_MAX 40

union cfg_value {
    int64_t i;
    uint64_t u;
    double d;
    bool b;
    struct nw_cfg_range r;
    int e;
};

/* ---- small helpers ---- */

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_word_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '_' ||
           c == '-' || c == '.';
}

static bool is_word(const char *s)
{
    if (*s == '\0') {
        return false;
    }
    for (; *s; s++) {
        if (!is_word_char(*s)) {
            return false;
        }
    }
    return true;
}

/* Writes s as a double-quoted, escaped, possibly shortened string. */
static void quote(const char *s, char *out, size_t size)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0, shown = 0;
    out[o++] = '"';
    for (; *s && o + 8 < size; s++, shown++) {
        unsigned char c = (unsigned char)*s;
        if (shown == QUOTE_MAX) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        } else {
            out[o++] = (char)c;
        }
    }
    out[o++] = '"';
    out[o] = '\0';
}

/* Changes the code of an error whose message is already set. */
static enum nw_err set_code(struct nw_error *err, enum nw_err code)
{
    if (err) {
        err->code = code;
    }
    return code;
}

/* Appends to err->msg (a hint after the reason). */
static void error_append(struct nw_error *err, const char *text)
{
    if (err) {
        size_t len = strlen(err->msg);
        snprintf(err->msg + len, sizeof(err->msg) - len, "%s", text);
    }
}

/* Edit distance, for "did you mean". Names longer than 63 are not compared. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63) {
        return SIZE_MAX;
    }
    size_t row[64];
    for (size_t j = 0; j <= lb; j++) {
        row[j] = j;
    }
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            best = up + 1 < best ? up + 1 : best;
            best = row[j - 1] + 1 < best ? row[j - 1] + 1 : best;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* ---- number parsing and formatting, locale-free ---- */

static enum nw_err parse_i64(const char *s, int64_t *out, struct nw_error *err)
{
    const char *p = s;
    bool neg = *p == '-';
    if (*p == '-' || *p == '+') {
        p++;
    }
    if (!is_digit(*p)) {
        return nw_error_set(err, NW_ERR_CONFIG, "not an integer");
    }
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    uint64_t v = 0;
    for (; is_digit(*p); p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (limit - d) / 10) {
            return nw_error_set(err, NW_ERR_CONFIG, "integer too large");
        }
        v = v * 10 + d;
    }
    if (*p != '\0') {
        return nw_error_set(err, NW_ERR_CONFIG, "not an integer");
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return NW_OK;
}

/* Digits only: strtoull would accept "-1" and wrap it. */
static enum nw_err parse_u64(const char *s, uint64_t *out, const char **end, struct nw_error *err)
{
    const char *p = s;
    if (*p == '+') {
        p++;
    }
    if (!is_digit(*p)) {
        return nw_error_set(err, NW_ERR_CONFIG,
                            *p == '-' ? "must not be negative" : "not an integer");
    }
    uint64_t v = 0;
    for (; is_digit(*p); p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return nw_error_set(err, NW_ERR_CONFIG, "integer too large");
        }
        v = v * 10 + d;
    }
    if (!end && *p != '\0') {
        return nw_error_set(err, NW_ERR_CONFIG, "not an integer");
    }
    if (end) {
        *end = p;
    }
    *out = v;
    return NW_OK;
}

static const double exact_pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/*
 * Decimal text to double without strtod (whose decimal point follows
 * LC_NUMERIC). Mantissas up to 2^53 with |exponent| <= 22 are converted
 * exactly rounded (Clinger's fast path: both operands are exact doubles);
 * longer ones go through long double and may, rarely, be off by one unit in
 * the last place, which no configuration value can notice.
 */
static enum nw_err parse_f64(const char *s, double *out, struct nw_error *err)
{
    const char *p = s;
    bool neg = *p == '-';
    if (*p == '-' || *p == '+') {
        p++;
    }
    uint64_t mant = 0;
    int exp10 = 0, digits = 0;
    for (; is_digit(*p); p++, digits++) {
        if (mant < UINT64_C(100000000000000000)) {
            mant = mant * 10 + (uint64_t)(*p - '0');
        } else {
            exp10++; /* digits beyond 17 only scale */
        }
    }
    if (*p == '.') {
        for (p++; is_digit(*p); p++, digits++) {
            if (mant < UINT64_C(100000000000000000)) {
                mant = mant * 10 + (uint64_t)(*p - '0');
                exp10--;
            }
        }
    }
    if (digits == 0) {
        return nw_error_set(err, NW_ERR_CONFIG, "not a number");
    }
    if (*p == 'e' || *p == 'E') {
        int64_t e;
        char buf[16];
        size_t len = strlen(p + 1);
        if (len == 0 || len >= sizeof(buf)) {
            return nw_error_set(err, NW_ERR_CONFIG, "not a number");
        }
        memcpy(buf, p + 1, len + 1);
        if (parse_i64(buf, &e, NULL) != NW_OK || e > 400 || e < -400) {
            return nw_error_set(err, NW_ERR_CONFIG, "not a number");
        }
        exp10 += (int)e;
        p += len + 1;
    }
    if (*p != '\0') {
        return nw_error_set(err, NW_ERR_CONFIG, "not a number");
    }
    double v;
    if (mant <= (UINT64_C(1) << 53) && exp10 >= -22 && exp10 <= 22) {
        v = exp10 < 0 ? (double)mant / exact_pow10[-exp10] : (double)mant * exact_pow10[exp10];
    } else {
        /* Divide rather than multiply by a reciprocal: 10^k is exact in long double
         * for k <= 27, so only the final rounding to double is inexact. */
        long double scale = powl(10.0L, exp10 < 0 ? -exp10 : exp10);
        v = (double)(exp10 < 0 ? (long double)mant / scale : (long double)mant * scale);
    }
    if (!isfinite(v)) {
        return nw_error_set(err, NW_ERR_CONFIG, "number out of range");
    }
    *out = neg ? -v : v;
    return NW_OK;
}

/* Shortest of %.15g..%.17g that reads back exactly, with '.' whatever the locale. */
static void format_f64(double v, char *out, size_t size)
{
    for (int precision = 15; precision <= 17; precision++) {
        double back;
        snprintf(out, size, "%.*g", precision, v);
        for (char *c = out; *c; c++) {
            if (*c == ',') {
                *c = '.';
            }
        }
        if (parse_f64(out, &back, NULL) == NW_OK && back == v) {
            return;
        }
    }
}

struct size_unit {
    const char *name;
    unsigned shift;
};

static const struct size_unit size_units[] = {
    {"", 0},     {"b", 0},  {"k", 10},   {"kib", 10}, {"m", 20},
    {"mib", 20}, {"g", 30}, {"gib", 30}, {"t", 40},   {"tib", 40},
};

static enum nw_err parse_size(const char *s, uint64_t *out, struct nw_error *err)
{
    const char *unit = "";
    uint64_t v = 0;
    if (*s == '-') {
        return nw_error_set(err, NW_ERR_CONFIG, "not a size: must not be negative");
    }
    if (parse_u64(s, &v, &unit, NULL) != NW_OK) {
        return nw_error_set(err, NW_ERR_CONFIG, "not a size (e.g. 512, 64K, 256MiB, 1G)");
    }
    for (size_t i = 0; i < sizeof(size_units) / sizeof(size_units[0]); i++) {
        if (strcasecmp(unit, size_units[i].name) == 0) {
            if (v > (UINT64_MAX >> size_units[i].shift)) {
                return nw_error_set(err, NW_ERR_CONFIG, "size too large");
            }
            *out = v << size_units[i].shift;
            return NW_OK;
        }
    }
    if (strlen(unit) == 2 && strchr("kKmMgGtT", unit[0]) && (unit[1] == 'b' || unit[1] == 'B')) {
        return nw_error_set(err, NW_ERR_CONFIG,
                            "ambiguous unit \"%s\": use %c or %ciB (both 1024-based)", unit,
                            toupper((unsigned char)unit[0]), toupper((unsigned char)unit[0]));
    }
    return nw_error_set(err, NW_ERR_CONFIG, "not a size: unknown unit (use K, M, G, T or KiB...)");
}

static void format_size(uint64_t v, char *out, size_t size)
{
    static const char suffix[] = "KMGT";
    int i = -1;
    while (i < 3 && v != 0 && (v & 1023) == 0) {
        v >>= 10;
        i++;
    }
    if (i < 0) {
        snprintf(out, size, "%llu", (unsigned long long)v);
    } else {
        snprintf(out, size, "%llu%c", (unsigned long long)v, suffix[i]);
    }
}

static void trim_copy(const char *start, size_t len, char *out, size_t size)
{
    while (len > 0 && is_space(*start)) {
        start++;
        len--;
    }
    while (len > 0 && is_space(start[len - 1])) {
        len--;
    }
    if (len >= size) {
        len = size - 1;
    }
    memcpy(out, start, len);
    out[len] = '\0';
}

static enum nw_err parse_range(const char *s, struct nw_cfg_range *out, struct nw_error *err)
{
    const char *dots = strstr(s, "..");
    char lo[64], hi[64];
    if (!dots || strlen(s) >= sizeof(lo)) {
        return nw_error_set(err, NW_ERR_CONFIG, "not a range (e.g. 100..140)");
    }
    trim_copy(s, (size_t)(dots - s), lo, sizeof(lo));
    trim_copy(dots + 2, strlen(dots + 2), hi, sizeof(hi));
    if (parse_f64(lo, &out->lo, NULL) != NW_OK || parse_f64(hi, &out->hi, NULL) != NW_OK) {
        return nw_error_set(err, NW_ERR_CONFIG, "not a range (e.g. 100..140)");
    }
    if (out->lo > out->hi) {
        return nw_error_set(err, NW_ERR_CONFIG, "range minimum is greater than its maximum");
    }
    return NW_OK;
}

static enum nw_err parse_bool(const char *s, bool *out, struct nw_error *err)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0 || strcasecmp(s, no[i]) == 0) {
            *out = strcasecmp(s, yes[i]) == 0;
            return NW_OK;
        }
    }
    return nw_error_set(err, NW_ERR_CONFIG, "not a boolean (true/false, yes/no, on/off, 1/0)");
}

static enum nw_err parse_enum(const struct nw_cfg_key *k, const char *s, int *out,
                              struct nw_error *err)
{
    char list[160] = "";
    for (int i = 0; k->choices[i]; i++) {
        if (strcasecmp(s, k->choices[i]) == 0) {
            *out = i;
            return NW_OK;
        }
        size_t len = strlen(list);
        snprintf(list + len, sizeof(list) - len, "%s%s", i ? ", " : "", k->choices[i]);
    }
    return nw_error_set(err, NW_ERR_CONFIG, "not one of: %s", list);
}

static enum nw_err parse_text(const struct nw_cfg_key *k, const char *s, struct nw_error *err)
{
    size_t len = strlen(s);
    if (len >= k->size) {
        return nw_error_set(err, NW_ERR_CONFIG, "longer than %zu bytes", k->size - 1);
    }
    for (const char *c = s; *c; c++) {
        unsigned char u = (unsigned char)*c;
        bool tab_ok = k->type == NW_CFG_STR && u == '\t';
        if ((u < 0x20 && !tab_ok) || u == 0x7f) {
            return nw_error_set(err, NW_ERR_CONFIG, "contains a control character");
        }
    }
    return NW_OK;
}

/* ---- one value: parse, check bounds, store ---- */

static bool has_bounds(const struct nw_cfg_key *k)
{
    return !(k->min == 0 && k->max == 0);
}

static void format_bound(const struct nw_cfg_key *k, double v, char *out, size_t size)
{
    char tmp[NW_CLOCK_DURATION_SIZE];
    if (k->type == NW_CFG_DURATION_MS) {
        snprintf(out, size, "%s", nw_clock_format_duration((int64_t)v, tmp));
    } else if (k->type == NW_CFG_SIZE) {
        format_size((uint64_t)v, out, size);
    } else {
        format_f64(v, out, size);
    }
}

static enum nw_err out_of_range(const struct nw_cfg_key *k, struct nw_error *err)
{
    char lo[48], hi[48];
    format_bound(k, k->min, lo, sizeof(lo));
    format_bound(k, k->max, hi, sizeof(hi));
    return nw_error_set(err, NW_ERR_CONFIG, "out of range (%s..%s)", lo, hi);
}

static enum nw_err check_bounds(const struct nw_cfg_key *k, const union cfg_value *v,
                                struct nw_error *err)
{
    if (!has_bounds(k)) {
        return NW_OK;
    }
    bool ok = true;
    switch (k->type) {
    case NW_CFG_INT:
    case NW_CFG_DURATION_MS:
        ok = (double)v->i >= k->min && (double)v->i <= k->max;
        break;
    case NW_CFG_UINT:
    case NW_CFG_SIZE:
        ok = (double)v->u >= k->min && (double)v->u <= k->max;
        break;
    case NW_CFG_DOUBLE:
        ok = v->d >= k->min && v->d <= k->max;
        break;
    case NW_CFG_RANGE:
        ok = v->r.lo >= k->min && v->r.hi <= k->max;
        break;
    default:
        break;
    }
    return ok ? NW_OK : out_of_range(k, err);
}

static enum nw_err parse_typed(const struct nw_cfg_key *k, const char *s, union cfg_value *v,
                               struct nw_error *err)
{
    if (*s == '\0' && k->type != NW_CFG_STR && k->type != NW_CFG_PATH) {
        return nw_error_set(err, NW_ERR_CONFIG, "empty value");
    }
    switch (k->type) {
    case NW_CFG_STR:
    case NW_CFG_PATH:
        return parse_text(k, s, err);
    case NW_CFG_INT:
        return parse_i64(s, &v->i, err);
    case NW_CFG_UINT:
        return parse_u64(s, &v->u, NULL, err);
    case NW_CFG_DOUBLE:
        return parse_f64(s, &v->d, err);
    case NW_CFG_BOOL:
        return parse_bool(s, &v->b, err);
    case NW_CFG_DURATION_MS: {
        enum nw_err rc = nw_clock_parse_duration_ms(s, &v->i, err);
        if (rc != NW_OK) {
            nw_error_prefix(err, "not a duration");
            return set_code(err, NW_ERR_CONFIG);
        }
        return NW_OK;
    }
    case NW_CFG_SIZE:
        return parse_size(s, &v->u, err);
    case NW_CFG_RANGE:
        return parse_range(s, &v->r, err);
    case NW_CFG_ENUM:
        return parse_enum(k, s, &v->e, err);
    }
    return nw_error_set(err, NW_ERR_INVAL, "bad key type");
}

static void store(const struct nw_cfg_key *k, void *target, const union cfg_value *v,
                  const char *text)
{
    char *field = (char *)target + k->offset;
    switch (k->type) {
    case NW_CFG_STR:
    case NW_CFG_PATH:
        memcpy(field, text, strlen(text) + 1);
        break;
    case NW_CFG_INT:
    case NW_CFG_DURATION_MS:
        memcpy(field, &v->i, sizeof(v->i));
        break;
    case NW_CFG_UINT:
    case NW_CFG_SIZE:
        memcpy(field, &v->u, sizeof(v->u));
        break;
    case NW_CFG_DOUBLE:
        memcpy(field, &v->d, sizeof(v->d));
        break;
    case NW_CFG_BOOL:
        memcpy(field, &v->b, sizeof(v->b));
        break;
    case NW_CFG_RANGE:
        memcpy(field, &v->r, sizeof(v->r));
        break;
    case NW_CFG_ENUM:
        memcpy(field, &v->e, sizeof(v->e));
        break;
    }
}

/* Parse, check and store one value; *err gets the bare reason. */
static enum nw_err apply(const struct nw_cfg_key *k, void *target, const char *value,
                         struct nw_error *err)
{
    union cfg_value v;
    memset(&v, 0, sizeof(v));
    enum nw_err rc = parse_typed(k, value, &v, err);
    if (rc == NW_OK) {
        rc = check_bounds(k, &v, err);
    }
    if (rc == NW_OK) {
        store(k, target, &v, value);
    }
    return rc;
}

const struct nw_cfg_key *nw_config_find(const struct nw_cfg_key *table, size_t n,
                                        const char *section, const char *key)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(table[i].section, section) == 0 && strcmp(table[i].name, key) == 0) {
            return &table[i];
        }
    }
    return NULL;
}

/* " (did you mean NAME?)" for the closest key of the section, or "". */
static void suggest_key(const struct nw_cfg_key *table, size_t n, const char *section,
                        const char *key, char *out, size_t size)
{
    size_t best = 3;
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (strcmp(table[i].section, section) != 0) {
            continue;
        }
        size_t d = edit_distance(key, table[i].name);
        if (d < best) {
            best = d;
            snprintf(out, size, " (did you mean %s?)", table[i].name);
        }
    }
}

static bool section_known(const struct nw_cfg_key *table, size_t n, const char *section)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(table[i].section, section) == 0) {
            return true;
        }
    }
    return false;
}

static void suggest_section(const struct nw_cfg_key *table, size_t n, const char *section,
                            char *out, size_t size)
{
    size_t best = 3;
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        size_t d = edit_distance(section, table[i].section);
        if (d < best) {
            best = d;
            snprintf(out, size, " (did you mean [%s]?)", table[i].section);
        }
    }
}

static enum nw_err unknown_key(const struct nw_cfg_key *table, size_t n, const char *section,
                               const char *key, struct nw_error *err)
{
    char hint[96];
    suggest_key(table, n, section, key, hint, sizeof(hint));
    return nw_error_set(err, NW_ERR_CONFIG, "unknown key%s", hint);
}

enum nw_err nw_config_apply_key(const struct nw_cfg_key *table, size_t n, void *target,
                                const char *section, const char *key, const char *value,
                                struct nw_error *err)
{
    const struct nw_cfg_key *k = nw_config_find(table, n, section, key);
    if (!k) {
        return unknown_key(table, n, section, key, err);
    }
    return apply(k, target, value, err);
}

enum nw_err nw_config_apply_flag(const struct nw_cfg_key *table, size_t n, void *target,
                                 const char *dotted, const char *value, struct nw_error *err)
{
    const char *dot = strchr(dotted, '.');
    char section[64];
    if (!dot || (size_t)(dot - dotted) >= sizeof(section)) {
        return nw_error_set(err, NW_ERR_CONFIG, "%s: expected section.key", dotted);
    }
    memcpy(section, dotted, (size_t)(dot - dotted));
    section[dot - dotted] = '\0';
    const struct nw_cfg_key *k = nw_config_find(table, n, section, dot + 1);
    if (!k) {
        unknown_key(table, n, section, dot + 1, err);
        nw_error_prefix(err, "%s", dotted);
        return NW_ERR_CONFIG;
    }
    if (k->flags & NW_CFG_SECRET) {
        return nw_error_set(err, NW_ERR_CONFIG,
                            "%s: secrets cannot be set on the command line (use the config "
                            "file)",
                            dotted);
    }
    enum nw_err rc = apply(k, target, value, err);
    if (rc != NW_OK) {
        char q[QUOTE_MAX * 4 + 8];
        quote(value, q, sizeof(q));
        nw_error_prefix(err, "%s = %s", dotted, q);
    }
    return rc;
}

/* ---- the table itself ---- */

static size_t field_size(enum nw_cfg_type t)
{
    switch (t) {
    case NW_CFG_INT:
    case NW_CFG_DURATION_MS:
        return sizeof(int64_t);
    case NW_CFG_UINT:
    case NW_CFG_SIZE:
        return sizeof(uint64_t);
    case NW_CFG_DOUBLE:
        return sizeof(double);
    case NW_CFG_BOOL:
        return sizeof(bool);
    case NW_CFG_RANGE:
        return sizeof(struct nw_cfg_range);
    case NW_CFG_ENUM:
        return sizeof(int);
    default:
        return 0;
    }
}

static const char *check_entry(const struct nw_cfg_key *k)
{
    if (!k->section || !is_word(k->section) || !k->name || !is_word(k->name)) {
        return "section and name must be words of [A-Za-z0-9_.-]";
    }
    if ((unsigned)k->type > NW_CFG_PATH) {
        return "bad type";
    }
    bool text = k->type == NW_CFG_STR || k->type == NW_CFG_PATH;
    if (text ? k->size == 0 : (k->size != 0 && k->size != field_size(k->type))) {
        return "size does not match the type";
    }
    if (k->type == NW_CFG_ENUM && (!k->choices || !k->choices[0])) {
        return "enum without choices";
    }
    if (k->min > k->max) {
        return "min > max";
    }
    if ((k->flags & NW_CFG_SECRET) && k->type != NW_CFG_STR) {
        return "only strings can be secret";
    }
    return NULL;
}

enum nw_err nw_config_defaults(const struct nw_cfg_key *table, size_t n, void *target,
                               struct nw_error *err)
{
    for (size_t i = 0; i < n; i++) {
        const struct nw_cfg_key *k = &table[i];
        const char *bad = check_entry(k);
        if (!bad && nw_config_find(table, i, k->section, k->name)) {
            bad = "listed twice";
        }
        if (bad) {
            return nw_error_set(err, NW_ERR_INVAL, "config table entry %zu (%s.%s): %s", i,
                                k->section ? k->section : "?", k->name ? k->name : "?", bad);
        }
        if (!k->def && k->type != NW_CFG_STR && k->type != NW_CFG_PATH) {
            memset((char *)target + k->offset, 0, field_size(k->type));
            continue;
        }
        if (apply(k, target, k->def ? k->def : "", err) != NW_OK) {
            char q[QUOTE_MAX * 4 + 8];
            quote(k->def ? k->def : "", q, sizeof(q));
            nw_error_prefix(err, "config table: [%s] %s: default %s", k->section, k->name, q);
            return set_code(err, NW_ERR_INVAL);
        }
    }
    return NW_OK;
}

/* ---- keys seen so far in a file, for duplicate detection ---- */

struct seen_entry {
    char *key;
    int line;
};

struct seen_set {
    struct seen_entry *slots;
    size_t cap, count;
};

static uint64_t fnv1a(const char *s)
{
    uint64_t h = UINT64_C(1469598103934665603);
    for (; *s; s++) {
        h = (h ^ (unsigned char)*s) * UINT64_C(1099511628211);
    }
    return h;
}

static struct seen_entry *seen_slot(struct seen_entry *slots, size_t cap, const char *key)
{
    size_t i = (size_t)fnv1a(key) & (cap - 1);
    while (slots[i].key && strcmp(slots[i].key, key) != 0) {
        i = (i + 1) & (cap - 1);
    }
    return &slots[i];
}

static bool seen_grow(struct seen_set *s)
{
    size_t cap = s->cap ? s->cap * 2 : 64;
    struct seen_entry *slots = calloc(cap, sizeof(*slots));
    if (!slots) {
        return false;
    }
    for (size_t i = 0; i < s->cap; i++) {
        if (s->slots[i].key) {
            *seen_slot(slots, cap, s->slots[i].key) = s->slots[i];
        }
    }
    free(s->slots);
    s->slots = slots;
    s->cap = cap;
    return true;
}

/* Returns the line the key was first seen on, 0 if new (then added), -1 on NOMEM. */
static int seen_add(struct seen_set *s, const char *key, int line)
{
    if ((s->count + 1) * 2 > s->cap && !seen_grow(s)) {
        return -1;
    }
    struct seen_entry *e = seen_slot(s->slots, s->cap, key);
    if (e->key) {
        return e->line;
    }
    e->key = strdup(key);
    if (!e->key) {
        return -1;
    }
    e->line = line;
    s->count++;
    return 0;
}

static void seen_free(struct seen_set *s)
{
    for (size_t i = 0; i < s->cap; i++) {
        free(s->slots[i].key);
    }
    free(s->slots);
}

/* ---- the loader ---- */

enum section_kind { SEC_NONE, SEC_PLAIN, SEC_NAMED };

struct loader {
    const char *file;
    const char *text;
    size_t len, pos;
    int line; /* lines handed to libinih so far = the line being parsed */
    const struct nw_cfg_key *table;
    size_t n;
    void *target;
    nw_cfg_section_fn handler;
    void *user;
    enum section_kind sec;
    char raw_section[INIH_MAX_SECTION + 1]; /* exactly what libinih stores */
    char word[INIH_MAX_SECTION + 1];        /* "store", or the kind of a named section */
    char name[INIH_MAX_SECTION + 1];        /* the name of a named section */
    struct seen_set seen;
    bool failed;
    struct nw_error *err;
};

/* Records the first error as "file:line: <formatted>" and stops the parse. */
__attribute__((format(printf, 3, 4))) static void fail(struct loader *ld, enum nw_err code,
                                                       const char *fmt, ...)
{
    char msg[sizeof(ld->err->msg)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    nw_error_set(ld->err, code, "%s:%d: %s", ld->file, ld->line, msg);
    ld->failed = true;
}

/* Wraps the reason already in ld->err with file, line and context. */
__attribute__((format(printf, 2, 3))) static void fail_wrap(struct loader *ld, const char *fmt, ...)
{
    char ctx[sizeof(ld->err->msg)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx, sizeof(ctx), fmt, ap);
    va_end(ap);
    nw_error_prefix(ld->err, "%s:%d: %s", ld->file, ld->line, ctx);
    ld->failed = true;
}

/* "[store]" or "[model "DG-3"]" for messages. */
static void section_label(const struct loader *ld, char *out, size_t size)
{
    if (ld->sec == SEC_NAMED) {
        snprintf(out, size, "[%s \"%s\"]", ld->word, ld->name);
    } else {
        snprintf(out, size, "[%s]", ld->word);
    }
}

/*
 * Splits `kind "name"` into ld->word and ld->name. The name may hold
 * anything printable except '"'.
 */
static bool split_named(struct loader *ld, const char *s)
{
    const char *sp = s;
    while (is_word_char(*sp)) {
        sp++;
    }
    const char *q = sp;
    while (is_space(*q)) {
        q++;
    }
    if (sp == s || q == sp || *q != '"') {
        return false;
    }
    const char *name = q + 1;
    const char *end = strchr(name, '"');
    if (!end || end == name || end[1] != '\0') {
        return false;
    }
    for (const char *c = name; c < end; c++) {
        if ((unsigned char)*c < 0x20 || *c == 0x7f) {
            return false;
        }
    }
    memcpy(ld->word, s, (size_t)(sp - s));
    ld->word[sp - s] = '\0';
    memcpy(ld->name, name, (size_t)(end - name));
    ld->name[end - name] = '\0';
    return true;
}

/* Calls the section handler; a failure always leaves a code and a reason in ld->err. */
static enum nw_err call_handler(struct loader *ld, const char *key, const char *value)
{
    nw_error_clear(ld->err);
    enum nw_err rc = ld->handler(ld->user, ld->word, ld->name, key, value, ld->line, ld->err);
    if (rc != NW_OK) {
        if (ld->err->msg[0] == '\0') {
            snprintf(ld->err->msg, sizeof(ld->err->msg), "%s", nw_strerror(rc));
        }
        ld->err->code = rc;
    }
    return rc;
}

/* Tells the handler about a named section the first time it appears. */
static void begin_named(struct loader *ld)
{
    char key[3 * (INIH_MAX_SECTION + 1)];
    snprintf(key, sizeof(key), "%s\x1f%s", ld->word, ld->name);
    int first = seen_add(&ld->seen, key, ld->line);
    if (first < 0) {
        fail(ld, NW_ERR_NOMEM, "out of memory");
    } else if (first == 0 && call_handler(ld, NULL, NULL) != NW_OK) {
        char label[128];
        section_label(ld, label, sizeof(label));
        fail_wrap(ld, "%s", label);
    }
}

static void classify_section(struct loader *ld)
{
    char trimmed[INIH_MAX_SECTION + 1], hint[96];
    trim_copy(ld->raw_section, strlen(ld->raw_section), trimmed, sizeof(trimmed));
    if (is_word(trimmed)) {
        ld->sec = SEC_PLAIN;
        snprintf(ld->word, sizeof(ld->word), "%s", trimmed);
        if (!section_known(ld->table, ld->n, trimmed)) {
            suggest_section(ld->table, ld->n, trimmed, hint, sizeof(hint));
            fail(ld, NW_ERR_CONFIG, "[%s]: unknown section%s", trimmed, hint);
        }
        return;
    }
    if (split_named(ld, trimmed)) {
        ld->sec = SEC_NAMED;
        if (!ld->handler) {
            fail(ld, NW_ERR_CONFIG, "[%s]: unknown section", trimmed);
        } else {
            begin_named(ld);
        }
        return;
    }
    fail(ld, NW_ERR_CONFIG, "bad section header: expected [name] or [kind \"name\"]");
}

/*
 * Where libinih's scan for `stop` characters ends on this line: at one of
 * them, or at an inline comment (';' after whitespace), or at the end.
 * Same rule as ini_find_chars_or_comment(), so we agree on every line.
 */
static const char *inih_scan(const char *s, const char *stop)
{
    bool was_space = false;
    while (*s && !strchr(stop, *s) && !(was_space && *s == ';')) {
        was_space = is_space(*s) || *s == '\n';
        s++;
    }
    return s;
}

static void check_header(struct loader *ld, const char *line)
{
    const char *end = inih_scan(line + 1, "]");
    if (*end != ']') {
        fail(ld, NW_ERR_CONFIG, "section header without closing ']'");
        return;
    }
    const char *rest = end + 1;
    while (is_space(*rest) || *rest == '\n') {
        rest++;
    }
    if (*rest != '\0' && *rest != ';' && *rest != '#') {
        fail(ld, NW_ERR_CONFIG, "unexpected text after ']'");
        return;
    }
    size_t len = (size_t)(end - line - 1);
    if (len > INIH_MAX_SECTION) {
        fail(ld, NW_ERR_CONFIG, "section name longer than %d characters", INIH_MAX_SECTION);
        return;
    }
    memcpy(ld->raw_section, line + 1, len);
    ld->raw_section[len] = '\0';
    classify_section(ld);
}

/* Checks the shape of one line (already without leading whitespace). */
static void check_line(struct loader *ld, const char *line)
{
    if (*line == '\n' || *line == ';' || *line == '#') {
        return;
    }
    if (*line == '[') {
        check_header(ld, line);
        return;
    }
    const char *sep = inih_scan(line, "=:");
    if (*sep != '=' && *sep != ':') {
        fail(ld, NW_ERR_CONFIG, "expected \"key = value\" or a [section] header");
    }
}

/* libinih's fgets-like reader: one physical line per call, checked. */
static char *read_line(char *str, int num, void *stream)
{
    struct loader *ld = stream;
    if (ld->failed || ld->pos >= ld->len) {
        return NULL;
    }
    const char *start = ld->text + ld->pos;
    const char *nl = memchr(start, '\n', ld->len - ld->pos);
    size_t len = nl ? (size_t)(nl - start) : ld->len - ld->pos;
    ld->pos += len + (nl ? 1 : 0);
    ld->line++;
    if (len > 0 && start[len - 1] == '\r') {
        len--;
    }
    if (memchr(start, '\0', len)) {
        fail(ld, NW_ERR_CONFIG, "NUL byte in line");
        return NULL;
    }
    if (len > NW_CONFIG_MAX_LINE || len + 2 > (size_t)num) {
        fail(ld, NW_ERR_CONFIG, "line longer than %d characters", NW_CONFIG_MAX_LINE);
        return NULL;
    }
    while (len > 0 && is_space(*start)) {
        start++;
        len--;
    }
    memcpy(str, start, len);
    str[len] = '\n';
    str[len + 1] = '\0';
    check_line(ld, str);
    return ld->failed ? NULL : str;
}

static bool has_hash_comment(const char *value)
{
    for (const char *p = strchr(value, '#'); p; p = strchr(p + 1, '#')) {
        if (p > value && is_space(p[-1])) {
            return true;
        }
    }
    return false;
}

/* Rejects a key given twice in the same section (or named section). */
static bool check_duplicate(struct loader *ld, const char *key, const char *label)
{
    char id[3 * (INIH_MAX_SECTION + 1) + NW_CONFIG_MAX_LINE];
    snprintf(id, sizeof(id), "%s\x1f%s\x1f%s", ld->word, ld->sec == SEC_NAMED ? ld->name : "", key);
    /* Named-section markers (begin_named) have one separator less: no clash. */
    int first = seen_add(&ld->seen, id, ld->line);
    if (first < 0) {
        fail(ld, NW_ERR_NOMEM, "out of memory");
    } else if (first > 0) {
        fail(ld, NW_ERR_CONFIG, "%s %s: duplicate key (first set on line %d)", label, key, first);
    }
    return first == 0;
}

static void apply_plain(struct loader *ld, const char *key, const char *value, const char *label)
{
    const struct nw_cfg_key *k = nw_config_find(ld->table, ld->n, ld->word, key);
    if (!k) {
        unknown_key(ld->table, ld->n, ld->word, key, ld->err);
        fail_wrap(ld, "%s %s", label, key);
        return;
    }
    if (apply(k, ld->target, value, ld->err) == NW_OK) {
        return;
    }
    if (has_hash_comment(value)) {
        error_append(ld->err, " (only ';' starts an inline comment)");
    }
    if (k->flags & NW_CFG_SECRET) {
        fail_wrap(ld, "%s %s", label, key);
    } else {
        char q[QUOTE_MAX * 4 + 8];
        quote(value, q, sizeof(q));
        fail_wrap(ld, "%s %s = %s", label, key, q);
    }
}

static void apply_named(struct loader *ld, const char *key, const char *value, const char *label)
{
    if (call_handler(ld, key, value) != NW_OK) {
        char q[QUOTE_MAX * 4 + 8];
        quote(value, q, sizeof(q));
        fail_wrap(ld, "%s %s = %s", label, key, q);
    }
}

static bool has_control(const char *s)
{
    for (; *s; s++) {
        if ((unsigned char)*s < 0x20 || *s == 0x7f) {
            return true;
        }
    }
    return false;
}

/* libinih's handler: one "key = value" of the line the reader just returned. */
static int on_key(void *user, const char *section, const char *key, const char *value)
{
    struct loader *ld = user;
    char label[128];
    if (ld->failed) {
        return 0;
    }
    section_label(ld, label, sizeof(label));
    if (has_control(key)) {
        /* Not echoed: messages go to terminals and logs verbatim. */
        fail(ld, NW_ERR_CONFIG, "%s: control character in key name",
             ld->sec == SEC_NONE ? "(no section)" : label);
    } else if (ld->sec == SEC_NONE) {
        fail(ld, NW_ERR_CONFIG, "%s: key outside any [section]", key);
    } else if (strcmp(section, ld->raw_section) != 0) {
        /* Cannot happen while check_header() mirrors libinih; fail loudly if it does. */
        fail(ld, NW_ERR_CONFIG, "internal error: section mismatch with libinih");
    } else if (*key == '\0') {
        fail(ld, NW_ERR_CONFIG, "%s: missing key name before '='", label);
    } else if (check_duplicate(ld, key, label)) {
        if (ld->sec == SEC_PLAIN) {
            apply_plain(ld, key, value, label);
        } else {
            apply_named(ld, key, value, label);
        }
    }
    return ld->failed ? 0 : 1;
}

enum nw_err nw_config_load_string(const char *name, const char *text, size_t len,
                                  const struct nw_cfg_key *table, size_t n, void *target,
                                  nw_cfg_section_fn handler, void *user, struct nw_error *out_err)
{
    struct nw_error local;
    struct loader ld = {
        .file = name,
        .text = text,
        .len = len,
        .table = table,
        .n = n,
        .target = target,
        .handler = handler,
        .user = user,
        .err = out_err ? out_err : &local,
    };
    nw_error_clear(ld.err);
    if (len > NW_CONFIG_MAX_FILE) {
        return nw_error_set(ld.err, NW_ERR_CONFIG, "%s: larger than %d bytes", name,
                            NW_CONFIG_MAX_FILE);
    }
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) {
        ld.pos = 3; /* UTF-8 byte order mark, written by some Windows editors */
    }
    int rc = ini_parse_stream(read_line, &ld, on_key, &ld);
    seen_free(&ld.seen);
    if (ld.failed) {
        return ld.err->code;
    }
    if (rc == -2) {
        return nw_error_set(ld.err, NW_ERR_NOMEM, "%s: out of memory", name);
    }
    if (rc != 0) {
        return nw_error_set(ld.err, NW_ERR_CONFIG, "%s:%d: syntax error", name, rc);
    }
    return NW_OK;
}

/* Reads at most NW_CONFIG_MAX_FILE + 1 bytes, so an oversized file is noticed. */
static enum nw_err read_file(const char *path, char **out, size_t *out_len, struct nw_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return nw_error_set(err, errno == ENOENT ? NW_ERR_NOT_FOUND : NW_ERR_IO,
                            "cannot read %s: %s", path, strerror(errno));
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    enum nw_err rc = buf ? NW_OK : nw_error_set(err, NW_ERR_NOMEM, "out of memory");
    while (rc == NW_OK && len <= NW_CONFIG_MAX_FILE) {
        if (len == cap) {
            char *bigger = realloc(buf, cap * 2);
            if (!bigger) {
                rc = nw_error_set(err, NW_ERR_NOMEM, "out of memory");
                break;
            }
            buf = bigger;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            rc = nw_error_set(err, NW_ERR_IO, "cannot read %s: %s", path, strerror(errno));
        } else if (r == 0) {
            break;
        }
        len += r > 0 ? (size_t)r : 0;
    }
    close(fd);
    if (rc != NW_OK) {
        free(buf);
        return rc;
    }
    *out = buf;
    *out_len = len;
    return NW_OK;
}

enum nw_err nw_config_load_file(const char *path, const struct nw_cfg_key *table, size_t n,
                                void *target, nw_cfg_section_fn handler, void *user,
                                struct nw_error *out_err)
{
    char *text = NULL;
    size_t len = 0;
    nw_error_clear(out_err);
    enum nw_err rc = read_file(path, &text, &len, out_err);
    if (rc != NW_OK) {
        return rc;
    }
    rc = nw_config_load_string(path, text, len, table, n, target, handler, user, out_err);
    free(text);
    return rc;
}

/* ---- help and dump ---- */

static const char *type_name(enum nw_cfg_type t)
{
    static const char *const names[] = {
        [NW_CFG_STR] = "string",    [NW_CFG_INT] = "int",     [NW_CFG_UINT] = "uint",
        [NW_CFG_DOUBLE] = "number", [NW_CFG_BOOL] = "bool",   [NW_CFG_DURATION_MS] = "duration",
        [NW_CFG_SIZE] = "size",     [NW_CFG_RANGE] = "range", [NW_CFG_ENUM] = "enum",
        [NW_CFG_PATH] = "path",
    };
    return (unsigned)t <= NW_CFG_PATH ? names[t] : "?";
}

void nw_config_format_value(const struct nw_cfg_key *k, const void *target, char *out, size_t size)
{
    const char *field = (const char *)target + k->offset;
    union cfg_value v;
    char a[48], b[48];
    memcpy(&v, field, field_size(k->type));
    switch (k->type) {
    case NW_CFG_STR:
    case NW_CFG_PATH:
        snprintf(out, size, "%.*s", (int)(k->size - 1), field);
        break;
    case NW_CFG_INT:
        snprintf(out, size, "%lld", (long long)v.i);
        break;
    case NW_CFG_UINT:
        snprintf(out, size, "%llu", (unsigned long long)v.u);
        break;
    case NW_CFG_DOUBLE:
        format_f64(v.d, out, size);
        break;
    case NW_CFG_BOOL:
        snprintf(out, size, "%s", v.b ? "true" : "false");
        break;
    case NW_CFG_DURATION_MS: {
        char d[NW_CLOCK_DURATION_SIZE];
        snprintf(out, size, "%s", nw_clock_format_duration(v.i, d));
        break;
    }
    case NW_CFG_SIZE:
        format_size(v.u, out, size);
        break;
    case NW_CFG_RANGE:
        format_f64(v.r.lo, a, sizeof(a));
        format_f64(v.r.hi, b, sizeof(b));
        snprintf(out, size, "%s..%s", a, b);
        break;
    case NW_CFG_ENUM: {
        int count = 0;
        while (k->choices[count]) {
            count++;
        }
        snprintf(out, size, "%s", v.e >= 0 && v.e < count ? k->choices[v.e] : "?");
        break;
    }
    }
}

/* Bounds or choices as text: "1..100000", "sim|replay|pipe", or "". */
static void format_limits(const struct nw_cfg_key *k, char *out, size_t size)
{
    out[0] = '\0';
    if (k->type == NW_CFG_ENUM) {
        for (int i = 0; k->choices[i]; i++) {
            size_t len = strlen(out);
            snprintf(out + len, size - len, "%s%s", i ? "|" : "", k->choices[i]);
        }
    } else if (k->type == NW_CFG_BOOL) {
        snprintf(out, size, "true|false");
    } else if (has_bounds(k)) {
        char lo[48], hi[48];
        format_bound(k, k->min, lo, sizeof(lo));
        format_bound(k, k->max, hi, sizeof(hi));
        snprintf(out, size, "%s..%s", lo, hi);
    }
}

static void print_markdown_cell(FILE *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '|') {
            fputc('\\', out);
        }
        fputc(*s, out);
    }
}

static void help_entry(FILE *out, const struct nw_cfg_key *k, enum nw_cfg_help_style style)
{
    char limits[256];
    const char *def = (k->flags & NW_CFG_SECRET) ? "(secret)" : k->def ? k->def : "";
    format_limits(k, limits, sizeof(limits));
    if (style == NW_CFG_HELP_MARKDOWN) {
        fprintf(out, "| `%s.%s` | %s | `", k->section, k->name, type_name(k->type));
        print_markdown_cell(out, def);
        fputs("` | ", out);
        print_markdown_cell(out, limits);
        fputs(" | ", out);
        print_markdown_cell(out, k->help ? k->help : "");
        fputs(" |\n", out);
        return;
    }
    fprintf(out, "  %s.%s = %s%s%s  (%s%s%s)\n", k->section, k->name, *def ? "" : "\"", def,
            *def ? "" : "\"", type_name(k->type), *limits ? ", " : "", limits);
    if (k->help && *k->help) {
        fprintf(out, "      %s\n", k->help);
    }
}

void nw_config_print_help(FILE *out, const struct nw_cfg_key *table, size_t n,
                          enum nw_cfg_help_style style)
{
    if (style == NW_CFG_HELP_MARKDOWN) {
        fputs("| key | type | default | range | description |\n|---|---|---|---|---|\n", out);
    }
    for (size_t i = 0; i < n; i++) {
        bool new_section = i == 0 || strcmp(table[i].section, table[i - 1].section) != 0;
        if (style == NW_CFG_HELP_TEXT && new_section) {
            fprintf(out, "%s[%s]\n", i ? "\n" : "", table[i].section);
        }
        help_entry(out, &table[i], style);
    }
}

void nw_config_dump(FILE *out, const struct nw_cfg_key *table, size_t n, const void *target,
                    const char *named)
{
    char value[1024];
    for (size_t i = 0; i < n; i++) {
        const struct nw_cfg_key *k = &table[i];
        if (i == 0 || strcmp(k->section, table[i - 1].section) != 0) {
            if (named) {
                fprintf(out, "%s[%s \"%s\"]\n", i ? "\n" : "", k->section, named);
            } else {
                fprintf(out, "%s[%s]\n", i ? "\n" : "", k->section);
            }
        }
        nw_config_format_value(k, target, value, sizeof(value));
        if (k->flags & NW_CFG_SECRET) {
            fprintf(out, "; %s = (secret, %s)\n", k->name, value[0] ? "set" : "empty");
        } else if (value[0] == ';') {
            /* "key = ;x" would read as a comment; "key =;x" reads back as ";x". */
            fprintf(out, "%s =%s\n", k->name, value);
        } else {
            fprintf(out, "%s = %s\n", k->name, value);
        }
    }
}

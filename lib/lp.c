/*
 * lp.c - the line-protocol encoder (see lp.h for the rules and why).
 *
 * A point is written straight into the batch buffer behind the last
 * complete line. Nothing of it is visible (nw_lp_len, nw_lp_count) until
 * nw_lp_end() appends the newline, and any failure moves the write position
 * back to that line, so the buffer only ever holds whole, valid lines.
 *
 * Every piece of text goes through put_text(), which checks and escapes in
 * one pass driven by the table `parts`. It keeps counting after the buffer
 * runs out, so a hostile value is reported as what it is (NW_ERR_INVALID)
 * rather than as "full", which would make a writer flush and retry it.
 *
 * Duplicate keys are found by reading back the point's own bytes instead
 * of keeping a table of keys: no bound on tags or fields to choose, and
 * the escaped form is unambiguous because put_text() never lets a literal
 * backslash stand before a delimiter.
 */
#include <needlewatch/lp.h>

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* InfluxDB reserves the two lowest int64 nanoseconds and the highest. */
#define NS_MIN (INT64_MIN + 2)
#define NS_MAX (INT64_MAX - 1)
#define MS_MIN (-9223372036854LL)
#define MS_MAX 9223372036854LL

/* Length of InfluxDB's separator between series key and field key. */
#define FIELD_KEY_SEP 4

enum state {
    IDLE,   /* no point in progress */
    KEY,    /* measurement written, tags may follow */
    FIELDS, /* at least one field written */
    FAILED, /* the point failed and was rolled back; `failure` says why */
};

struct nw_lp {
    char *buf;
    size_t cap;
    size_t len;       /* end of the last complete line */
    size_t count;     /* complete lines */
    size_t cur;       /* end of the point in progress (== len when none) */
    size_t tags_at;   /* where the point's ",k=v" tag list starts */
    size_t fields_at; /* where its "k=v" field list starts */
    enum state state;
    enum nw_lp_precision prec;
    struct nw_error failure;
};

/* What each part of a line escapes, and the rules for names. */
struct part {
    const char *what;   /* for reasons: "tag value" */
    const char *escape; /* bytes that get a backslash */
    bool name;          /* measurement, keys, tag values: stricter rules */
};

static const struct part parts[] = {
    [NW_LP_MEASUREMENT] = {"measurement", ", ", true},
    [NW_LP_TAG_KEY] = {"tag key", ",= ", true},
    [NW_LP_TAG_VALUE] = {"tag value", ",= ", true},
    [NW_LP_FIELD_KEY] = {"field key", ",= ", true},
    [NW_LP_STRING] = {"string field value", "\"\\", false},
};

/* A window onto the buffer that counts what did not fit. */
struct out {
    char *dst;
    size_t cap;
    size_t n;
};

static void out_mem(struct out *o, const char *s, size_t len)
{
    if (o->n < o->cap) {
        size_t room = o->cap - o->n;
        memcpy(o->dst + o->n, s, len < room ? len : room);
    }
    o->n += len;
}

static void out_byte(struct out *o, char c)
{
    out_mem(o, &c, 1);
}

static bool out_overflowed(const struct out *o)
{
    return o->n > o->cap;
}

/*
 * Length of the well-formed UTF-8 sequence at s (RFC 3629: no overlong
 * forms, no surrogates, nothing above U+10FFFF), or 0. Stops at the NUL.
 */
static size_t utf8_len(const unsigned char *s)
{
    unsigned c = s[0];
    if (c < 0x80) {
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf) {
        return (s[1] & 0xc0) == 0x80 ? 2 : 0;
    }
    if (c >= 0xe0 && c <= 0xef) {
        unsigned lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
        return s[1] >= lo && s[1] <= hi && (s[2] & 0xc0) == 0x80 ? 3 : 0;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        unsigned lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
        return s[1] >= lo && s[1] <= hi && (s[2] & 0xc0) == 0x80 && (s[3] & 0xc0) == 0x80 ? 4 : 0;
    }
    return 0;
}

static enum nw_err control_char(const struct part *p, unsigned char c, size_t at,
                                struct nw_error *err)
{
    if (c == '\n') {
        return nw_error_set(err, NW_ERR_INVALID,
                            "%s contains a newline at byte %zu: it would end the line and "
                            "start a forged point",
                            p->what, at);
    }
    if (c == '\r') {
        return nw_error_set(err, NW_ERR_INVALID,
                            "%s contains a carriage return at byte %zu: line protocol cannot "
                            "carry it",
                            p->what, at);
    }
    return nw_error_set(err, NW_ERR_INVALID,
                        "%s contains control character 0x%02x at byte %zu: line protocol "
                        "cannot carry it",
                        p->what, c, at);
}

/*
 * A backslash in a name escapes whatever follows it for some parsers and
 * not for others (VictoriaMetrics reads "\\" as one backslash, InfluxDB
 * as two), so it may only stand before a byte nobody escapes.
 */
static enum nw_err check_backslash(const struct part *p, const char *s, size_t at,
                                   struct nw_error *err)
{
    char next = s[at + 1];
    if (next == '\0') {
        return nw_error_set(err, NW_ERR_INVALID,
                            "%s ends with a backslash, which would escape the delimiter "
                            "after it",
                            p->what);
    }
    if (strchr(",= \"\\", next) != NULL) {
        return nw_error_set(err, NW_ERR_INVALID,
                            "%s has a backslash before '%c' at byte %zu: line protocol has "
                            "no escape for that backslash",
                            p->what, next, at);
    }
    return NW_OK;
}

/* The rules that look at one byte; UTF-8 is checked by the caller. */
static enum nw_err check_byte(enum nw_lp_part part, const char *s, size_t at, struct nw_error *err)
{
    const struct part *p = &parts[part];
    unsigned char c = (unsigned char)s[at];
    bool control = c < 0x20 || c == 0x7f;
    if (control && (p->name || c != '\t')) {
        return control_char(p, c, at, err);
    }
    if (p->name && c == '\\') {
        return check_backslash(p, s, at, err);
    }
    if (part == NW_LP_FIELD_KEY && c == '"') {
        return nw_error_set(err, NW_ERR_INVALID,
                            "field key contains '\"' at byte %zu: VictoriaMetrics then "
                            "misreads the line's timestamp",
                            at);
    }
    return NW_OK;
}

static bool reserved_key(const char *s)
{
    return strcmp(s, "time") == 0 || strcmp(s, "_field") == 0 || strcmp(s, "_measurement") == 0;
}

/* The rules about a part as a whole. */
static enum nw_err check_whole(enum nw_lp_part part, const char *s, struct nw_error *err)
{
    const struct part *p = &parts[part];
    if (p->name && s[0] == '\0') {
        return nw_error_set(err, NW_ERR_INVALID, "%s is empty", p->what);
    }
    if (part == NW_LP_MEASUREMENT && s[0] == '#') {
        return nw_error_set(err, NW_ERR_INVALID,
                            "measurement starts with '#': the servers would skip the line "
                            "as a comment");
    }
    if ((part == NW_LP_TAG_KEY || part == NW_LP_FIELD_KEY) && reserved_key(s)) {
        return nw_error_set(err, NW_ERR_INVALID,
                            "%s \"%s\" is reserved by InfluxDB (refused or silently dropped)",
                            p->what, s);
    }
    return NW_OK;
}

/* Checks s as the given part and appends it escaped. */
static enum nw_err put_text(struct out *o, enum nw_lp_part part, const char *s,
                            struct nw_error *err)
{
    enum nw_err rc = check_whole(part, s, err);
    const char *escape = parts[part].escape;
    for (size_t i = 0; rc == NW_OK && s[i] != '\0';) {
        size_t n = utf8_len((const unsigned char *)s + i);
        if (n == 0) {
            return nw_error_set(err, NW_ERR_INVALID, "%s is not valid UTF-8 at byte %zu",
                                parts[part].what, i);
        }
        rc = check_byte(part, s, i, err);
        if (n == 1 && strchr(escape, s[i]) != NULL) {
            out_byte(o, '\\');
        }
        out_mem(o, s + i, n);
        i += n;
    }
    return rc;
}

/*
 * Floats: the shortest of %.15g/%.16g/%.17g that reads back to the same
 * double (%.17g always does). The radix is forced to '.' whatever
 * LC_NUMERIC says (a ',' would split the field), and a value that prints
 * like an integer gets ".0" so no reader can take it for one.
 */
static size_t format_f64(char *dst, double v)
{
    char tmp[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
        if (strtod(tmp, NULL) == v) {
            break;
        }
    }
    size_t n = 0;
    bool radix = false, exponent = false;
    for (const char *c = tmp; *c != '\0'; c++) {
        if ((*c >= '0' && *c <= '9') || *c == '-' || *c == '+' || *c == 'e') {
            exponent = exponent || *c == 'e';
            dst[n++] = *c;
        } else if (!radix) {
            radix = true;
            dst[n++] = '.';
        }
    }
    if (!radix && !exponent) {
        dst[n++] = '.';
        dst[n++] = '0';
    }
    dst[n] = '\0';
    return n;
}

/* Where the name starting at i ends: the first delim not escaped. */
static size_t name_end(const char *buf, size_t i, size_t end, char delim)
{
    while (i < end && !(buf[i] == delim && buf[i - 1] != '\\')) {
        i++;
    }
    return i;
}

static size_t field_value_end(const char *buf, size_t i, size_t end)
{
    if (i < end && buf[i] == '"') {
        for (i++; i < end && buf[i] != '"'; i++) {
            if (buf[i] == '\\') {
                i++;
            }
        }
        return i + 1;
    }
    while (i < end && buf[i] != ',') {
        i++;
    }
    return i;
}

/*
 * Whether the escaped key occurs among the keys in buf[from, end), a list
 * of k=v items separated by ',' (tags: the list also starts with one).
 */
static bool key_seen(const char *buf, size_t from, size_t end, bool fields, const char *key,
                     size_t klen)
{
    size_t i = fields ? from : from + 1;
    while (i < end) {
        size_t eq = name_end(buf, i, end, '=');
        if (eq - i == klen && memcmp(buf + i, key, klen) == 0) {
            return true;
        }
        i = fields ? field_value_end(buf, eq + 1, end) : name_end(buf, eq + 1, end, ',');
        i++;
    }
    return false;
}

/* --- point state ------------------------------------------------------- */

static void rollback(struct nw_lp *lp)
{
    lp->cur = lp->len;
}

/* Records why the point failed, drops it, and tells the caller. */
static enum nw_err fail(struct nw_lp *lp, const struct nw_error *why, struct nw_error *out_err)
{
    rollback(lp);
    lp->state = FAILED;
    lp->failure = *why;
    if (out_err) {
        *out_err = *why;
    }
    return why->code;
}

static enum nw_err settle(struct nw_lp *lp, enum nw_err rc, const struct nw_error *why,
                          struct nw_error *out_err)
{
    if (rc != NW_OK) {
        return fail(lp, why, out_err);
    }
    return NW_OK;
}

static enum nw_err no_room(const struct nw_lp *lp, struct nw_error *why)
{
    if (lp->len == 0) {
        return nw_error_set(why, NW_ERR_TOO_BIG,
                            "point does not fit even into the empty %zu-byte buffer", lp->cap);
    }
    return nw_error_set(why, NW_ERR_FULL,
                        "buffer full (%zu lines, %zu of %zu bytes): send them and retry the "
                        "point",
                        lp->count, lp->len, lp->cap);
}

/* The calls allowed in each state; anything else is the caller's bug. */
static enum nw_err enter(struct nw_lp *lp, bool in_key, bool in_fields, const char *call,
                         struct nw_error *out_err)
{
    if (!lp) {
        return nw_error_set(out_err, NW_ERR_INVAL, "%s: no buffer", call);
    }
    if (lp->state == FAILED) {
        if (out_err) {
            *out_err = lp->failure;
        }
        return lp->failure.code;
    }
    if ((lp->state == KEY && in_key) || (lp->state == FIELDS && in_fields)) {
        return NW_OK;
    }
    if (lp->state == IDLE) {
        return nw_error_set(out_err, NW_ERR_INVAL, "%s: no point begun", call);
    }
    struct nw_error why;
    nw_error_set(&why, NW_ERR_INVAL, "%s: not allowed after a field (tags come first)", call);
    return fail(lp, &why, out_err);
}

static struct out out_at_cur(struct nw_lp *lp)
{
    return (struct out){lp->buf + lp->cur, lp->cap - lp->cur, 0};
}

/* Length of the escaped measurement and tags of the point in progress. */
static size_t series_key_len(const struct nw_lp *lp)
{
    return (lp->state == FIELDS ? lp->fields_at - 1 : lp->cur) - lp->len;
}

/* --- public API -------------------------------------------------------- */

struct nw_lp *nw_lp_new(size_t capacity)
{
    if (capacity == 0) {
        return NULL;
    }
    struct nw_lp *lp = calloc(1, sizeof(*lp));
    if (!lp) {
        return NULL;
    }
    lp->buf = malloc(capacity);
    if (!lp->buf) {
        free(lp);
        return NULL;
    }
    lp->cap = capacity;
    return lp;
}

void nw_lp_destroy(struct nw_lp **p)
{
    if (!p || !*p) {
        return;
    }
    free((*p)->buf);
    free(*p);
    *p = NULL;
}

static enum nw_err put_measurement(struct nw_lp *lp, const char *m, struct nw_error *why)
{
    if (!m) {
        return nw_error_set(why, NW_ERR_INVAL, "nw_lp_begin: measurement is NULL");
    }
    struct out o = out_at_cur(lp);
    enum nw_err rc = put_text(&o, NW_LP_MEASUREMENT, m, why);
    if (rc == NW_OK && out_overflowed(&o)) {
        rc = no_room(lp, why);
    }
    if (rc == NW_OK) {
        lp->cur += o.n;
        lp->tags_at = lp->cur;
        lp->state = KEY;
    }
    return rc;
}

enum nw_err nw_lp_begin(struct nw_lp *lp, const char *measurement, struct nw_error *out_err)
{
    if (!lp) {
        return nw_error_set(out_err, NW_ERR_INVAL, "nw_lp_begin: no buffer");
    }
    struct nw_error why;
    if (lp->state == KEY || lp->state == FIELDS) {
        nw_error_set(&why, NW_ERR_INVAL,
                     "nw_lp_begin: the previous point was neither ended nor aborted");
        return fail(lp, &why, out_err);
    }
    rollback(lp);
    lp->state = IDLE;
    return settle(lp, put_measurement(lp, measurement, &why), &why, out_err);
}

static enum nw_err check_series_key(size_t len, const char *what, struct nw_error *why)
{
    if (len > NW_LP_MAX_SERIES_KEY) {
        return nw_error_set(why, NW_ERR_TOO_BIG,
                            "%s makes the escaped series key %zu bytes, over InfluxDB's %d", what,
                            len, NW_LP_MAX_SERIES_KEY);
    }
    return NW_OK;
}

/* Writes ",key=value" at cur and keeps it unless something is wrong. */
static enum nw_err put_tag(struct nw_lp *lp, const char *key, const char *value,
                           struct nw_error *why)
{
    struct out o = out_at_cur(lp);
    out_byte(&o, ',');
    enum nw_err rc = put_text(&o, NW_LP_TAG_KEY, key, why);
    size_t klen = o.n - 1;
    out_byte(&o, '=');
    if (rc == NW_OK) {
        rc = put_text(&o, NW_LP_TAG_VALUE, value, why);
    }
    if (rc == NW_OK) {
        /* Any field key adds at least one byte and the separator. */
        rc = check_series_key(series_key_len(lp) + o.n + FIELD_KEY_SEP + 1, "tag", why);
    }
    if (rc == NW_OK && out_overflowed(&o)) {
        rc = no_room(lp, why);
    }
    if (rc == NW_OK &&
        key_seen(lp->buf, lp->tags_at, lp->cur, false, lp->buf + lp->cur + 1, klen)) {
        rc = nw_error_set(why, NW_ERR_INVALID, "tag key \"%s\" given twice", key);
    }
    if (rc == NW_OK) {
        lp->cur += o.n;
    }
    return rc;
}

enum nw_err nw_lp_tag(struct nw_lp *lp, const char *key, const char *value,
                      struct nw_error *out_err)
{
    enum nw_err rc = enter(lp, true, false, "nw_lp_tag", out_err);
    if (rc != NW_OK) {
        return rc;
    }
    struct nw_error why;
    if (!key || !value) {
        nw_error_set(&why, NW_ERR_INVAL, "nw_lp_tag: key or value is NULL");
        return fail(lp, &why, out_err);
    }
    if (value[0] == '\0') {
        /* Left out, but a bad key is still the caller's to hear about. */
        struct out none = {NULL, 0, 0};
        return settle(lp, put_text(&none, NW_LP_TAG_KEY, key, &why), &why, out_err);
    }
    return settle(lp, put_tag(lp, key, value, &why), &why, out_err);
}

/* A field value of any type, so one function can place every field. */
struct value {
    enum { V_I64, V_F64, V_BOOL, V_STR } type;
    int64_t i;
    double f;
    bool b;
    const char *s;
};

static enum nw_err put_value(struct out *o, const struct value *v, struct nw_error *why)
{
    char num[48];
    switch (v->type) {
    case V_I64:
        out_mem(o, num, (size_t)snprintf(num, sizeof(num), "%" PRId64 "i", v->i));
        return NW_OK;
    case V_F64:
        out_mem(o, num, format_f64(num, v->f));
        return NW_OK;
    case V_BOOL:
        out_mem(o, v->b ? "true" : "false", v->b ? 4 : 5);
        return NW_OK;
    case V_STR: {
        out_byte(o, '"');
        enum nw_err rc = put_text(o, NW_LP_STRING, v->s, why);
        out_byte(o, '"');
        return rc;
    }
    }
    return nw_error_set(why, NW_ERR_INVAL, "unknown field type");
}

static enum nw_err check_value(const char *key, const struct value *v, struct nw_error *why)
{
    if (v->type == V_STR && !v->s) {
        return nw_error_set(why, NW_ERR_INVAL, "string value of \"%s\" is NULL", key);
    }
    if (v->type == V_F64 && isnan(v->f)) {
        return nw_error_set(why, NW_ERR_INVALID, "field \"%s\" is NaN", key);
    }
    if (v->type == V_F64 && isinf(v->f)) {
        return nw_error_set(why, NW_ERR_INVALID, "field \"%s\" is %s infinity", key,
                            v->f > 0 ? "positive" : "negative");
    }
    return NW_OK;
}

/* Writes " key=value" (first field) or ",key=value" at cur. */
static enum nw_err put_field(struct nw_lp *lp, const char *key, const struct value *v,
                             struct nw_error *why)
{
    bool first = lp->state == KEY;
    struct out o = out_at_cur(lp);
    out_byte(&o, first ? ' ' : ',');
    enum nw_err rc = put_text(&o, NW_LP_FIELD_KEY, key, why);
    size_t klen = o.n - 1;
    if (rc == NW_OK) {
        rc = check_value(key, v, why);
    }
    if (rc == NW_OK) {
        rc = check_series_key(series_key_len(lp) + FIELD_KEY_SEP + klen, "field key", why);
    }
    out_byte(&o, '=');
    if (rc == NW_OK) {
        rc = put_value(&o, v, why);
    }
    if (rc == NW_OK && out_overflowed(&o)) {
        rc = no_room(lp, why);
    }
    if (rc == NW_OK && !first &&
        key_seen(lp->buf, lp->fields_at, lp->cur, true, lp->buf + lp->cur + 1, klen)) {
        rc = nw_error_set(why, NW_ERR_INVALID, "field key \"%s\" given twice", key);
    }
    if (rc == NW_OK) {
        if (first) {
            lp->fields_at = lp->cur + 1;
            lp->state = FIELDS;
        }
        lp->cur += o.n;
    }
    return rc;
}

static enum nw_err add_field(struct nw_lp *lp, const char *key, const struct value *v,
                             struct nw_error *out_err)
{
    enum nw_err rc = enter(lp, true, true, "nw_lp_field", out_err);
    if (rc != NW_OK) {
        return rc;
    }
    struct nw_error why;
    if (!key) {
        nw_error_set(&why, NW_ERR_INVAL, "nw_lp_field: key is NULL");
        return fail(lp, &why, out_err);
    }
    return settle(lp, put_field(lp, key, v, &why), &why, out_err);
}

enum nw_err nw_lp_field_i64(struct nw_lp *lp, const char *key, int64_t value,
                            struct nw_error *out_err)
{
    struct value v = {.type = V_I64, .i = value};
    return add_field(lp, key, &v, out_err);
}

enum nw_err nw_lp_field_f64(struct nw_lp *lp, const char *key, double value,
                            struct nw_error *out_err)
{
    struct value v = {.type = V_F64, .f = value};
    return add_field(lp, key, &v, out_err);
}

enum nw_err nw_lp_field_bool(struct nw_lp *lp, const char *key, bool value,
                             struct nw_error *out_err)
{
    struct value v = {.type = V_BOOL, .b = value};
    return add_field(lp, key, &v, out_err);
}

enum nw_err nw_lp_field_str(struct nw_lp *lp, const char *key, const char *value,
                            struct nw_error *out_err)
{
    struct value v = {.type = V_STR, .s = value};
    return add_field(lp, key, &v, out_err);
}

static enum nw_err check_time(const struct nw_lp *lp, int64_t ts, enum nw_lp_precision prec,
                              struct nw_error *why)
{
    if (prec != NW_LP_NS && prec != NW_LP_MS) {
        return nw_error_set(why, NW_ERR_INVAL, "nw_lp_end: unknown precision %d", (int)prec);
    }
    if (lp->count > 0 && prec != lp->prec) {
        return nw_error_set(why, NW_ERR_INVAL,
                            "nw_lp_end: precision %s differs from the buffer's %s (one "
                            "request carries one precision)",
                            nw_lp_precision_name(prec), nw_lp_precision_name(lp->prec));
    }
    bool ms = prec == NW_LP_MS;
    if (ts < (ms ? MS_MIN : NS_MIN) || ts > (ms ? MS_MAX : NS_MAX)) {
        return nw_error_set(why, NW_ERR_INVALID,
                            "timestamp %" PRId64 " %s is outside InfluxDB's range "
                            "(1677-09-21 to 2262-04-11)",
                            ts, nw_lp_precision_name(prec));
    }
    return NW_OK;
}

static enum nw_err put_end(struct nw_lp *lp, int64_t ts, enum nw_lp_precision prec,
                           struct nw_error *why)
{
    enum nw_err rc = check_time(lp, ts, prec, why);
    if (rc != NW_OK) {
        return rc;
    }
    char num[32];
    struct out o = out_at_cur(lp);
    out_mem(&o, num, (size_t)snprintf(num, sizeof(num), " %" PRId64 "\n", ts));
    if (out_overflowed(&o)) {
        return no_room(lp, why);
    }
    lp->len = lp->cur + o.n;
    lp->cur = lp->len;
    lp->count++;
    lp->prec = prec;
    lp->state = IDLE;
    return NW_OK;
}

enum nw_err nw_lp_end(struct nw_lp *lp, int64_t ts, enum nw_lp_precision prec,
                      struct nw_error *out_err)
{
    if (!lp || lp->state == IDLE) {
        return nw_error_set(out_err, NW_ERR_INVAL, "nw_lp_end: no point begun");
    }
    struct nw_error why = lp->failure;
    enum nw_err rc = why.code;
    if (lp->state == KEY) {
        rc = nw_error_set(&why, NW_ERR_INVALID, "point has no fields");
    } else if (lp->state == FIELDS) {
        rc = put_end(lp, ts, prec, &why);
    }
    if (rc != NW_OK) {
        fail(lp, &why, out_err);
        lp->state = IDLE; /* reported: the next point starts clean */
    }
    return rc;
}

void nw_lp_abort(struct nw_lp *lp)
{
    if (lp) {
        rollback(lp);
        lp->state = IDLE;
    }
}

const char *nw_lp_data(const struct nw_lp *lp)
{
    return lp ? lp->buf : NULL;
}

size_t nw_lp_len(const struct nw_lp *lp)
{
    return lp ? lp->len : 0;
}

size_t nw_lp_count(const struct nw_lp *lp)
{
    return lp ? lp->count : 0;
}

size_t nw_lp_capacity(const struct nw_lp *lp)
{
    return lp ? lp->cap : 0;
}

enum nw_lp_precision nw_lp_precision(const struct nw_lp *lp)
{
    return lp ? lp->prec : NW_LP_NS;
}

const char *nw_lp_precision_name(enum nw_lp_precision prec)
{
    return prec == NW_LP_MS ? "ms" : "ns";
}

void nw_lp_reset(struct nw_lp *lp)
{
    if (!lp) {
        return;
    }
    lp->len = 0;
    lp->cur = 0;
    lp->count = 0;
    lp->prec = NW_LP_NS;
    lp->state = IDLE;
}

enum nw_err nw_lp_escape(enum nw_lp_part part, const char *src, char *dst, size_t cap,
                         size_t *out_len, struct nw_error *out_err)
{
    if ((unsigned)part > NW_LP_STRING || !src || (!dst && cap > 0)) {
        return nw_error_set(out_err, NW_ERR_INVAL, "nw_lp_escape: bad argument");
    }
    if (part == NW_LP_TAG_VALUE && src[0] == '\0') {
        return nw_error_set(out_err, NW_ERR_INVALID, "tag value is empty");
    }
    struct out o = {dst, cap, 0};
    enum nw_err rc = put_text(&o, part, src, out_err);
    if (out_len) {
        *out_len = o.n;
    }
    if (rc != NW_OK) {
        return rc;
    }
    if (o.n >= cap) {
        return nw_error_set(out_err, NW_ERR_TOO_BIG,
                            "escaped %s needs %zu bytes and a NUL, %zu given", parts[part].what,
                            o.n, cap);
    }
    dst[o.n] = '\0';
    return NW_OK;
}

/*
 * fuzz_lp.c - drives the line-protocol builder with arbitrary calls.
 *
 * Input: byte 0 picks the buffer capacity (small, so NW_ERR_FULL and
 * NW_ERR_TOO_BIG happen often); the rest is split at NUL bytes into C
 * strings. The first string is the measurement; each later string is an
 * operation, its first byte the opcode and the rest the key, and some
 * operations take the next string as their value (numbers as text, so
 * "nan", "-0", "1e308" and "-9223372036854775808" are reachable).
 *
 * Invariants, checked after every call:
 *  - the complete lines never change except by nw_lp_end() appending one,
 *    and never exceed the capacity;
 *  - every appended line is measurement[,tags] fields timestamp\n with no
 *    other newline or control byte (TAB only inside strings), valid UTF-8,
 *    and read back with InfluxDB's own scanning and unescaping rules it
 *    gives exactly the measurement, tags (empty values left out), field
 *    keys and values (floats bit for bit) and timestamp that were given;
 *  - every name ends at the same byte whether a backslash escapes only
 *    the byte after it (InfluxDB's key scanner) or swallows it (its line
 *    splitter, VictoriaMetrics), and no backslash in a name stands before
 *    another or a '"' (VictoriaMetrics would unescape those);
 *  - nw_lp_escape() output reads back to its input the same way.
 * A failed check prints what it saw and aborts.
 */
#include <needlewatch/lp.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ITEMS 64

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_lp: check failed at line %d: %s\n", __LINE__, #cond);            \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What a successful call added to the point, to compare with the line. */
struct item {
    char kind; /* 't' tag, 'i' 'f' 'b' 's' field */
    const char *key;
    const char *text; /* tag or string value */
    int64_t i;
    double f;
    bool b;
};

struct run {
    struct nw_lp *lp;
    char *committed; /* copy of the complete lines */
    size_t committed_len;
    char *scratch; /* unescaped names and strings, capacity + 1 bytes */
    const char *measurement;
    struct item items[MAX_ITEMS];
    size_t n_items;
    bool too_many; /* more items than we track: skip the line check */
    int64_t ts;
};

/* --- reading a line back, the way InfluxDB 1.x does ----------------------- */

struct line {
    const char *s;
    size_t n, i;
};

static bool is_stop(const struct line *l, size_t j, size_t start, const char *stops)
{
    return l->s[j] != '\0' && strchr(stops, l->s[j]) != NULL && (j == start || l->s[j - 1] != '\\');
}

/*
 * InfluxDB's key scanner calls a byte escaped when a backslash precedes it;
 * its line splitter, its field scanner and VictoriaMetrics let a backslash
 * swallow the next byte. Both readings must end the name at the same byte.
 */
static void check_pairs_agree(const struct line *l, size_t start, size_t end, const char *stops)
{
    size_t k = start;
    while (k < end) {
        if (l->s[k] == '\\') {
            /* Ours escape a delimiter; a literal one precedes none of these. */
            CHECK(k + 1 < end && l->s[k + 1] != '\\' && l->s[k + 1] != '"');
            k += 2;
            continue;
        }
        CHECK(strchr(stops, l->s[k]) == NULL);
        k++;
    }
    CHECK(k == end);
}

/* A name up to an unescaped stop byte; `escapes` are the \X unescaped. */
static const char *read_name(struct line *l, const char *stops, const char *escapes, char *out)
{
    size_t start = l->i, j = l->i, o = 0;
    while (j < l->n && !is_stop(l, j, start, stops)) {
        j++;
    }
    check_pairs_agree(l, start, j, stops);
    for (size_t k = start; k < j; k++) {
        if (l->s[k] == '\\' && k + 1 < j && strchr(escapes, l->s[k + 1]) != NULL) {
            k++;
        }
        out[o++] = l->s[k];
    }
    out[o] = '\0';
    l->i = j;
    return out;
}

static void expect(struct line *l, char c)
{
    CHECK(l->i < l->n && l->s[l->i] == c);
    l->i++;
}

/* The inside of a string value, up to its closing quote or the end. */
static const char *read_string_body(struct line *l, char *out)
{
    size_t o = 0;
    while (l->i < l->n && l->s[l->i] != '"') {
        char c = l->s[l->i];
        if (c == '\\' && l->i + 1 < l->n) {
            char next = l->s[l->i + 1];
            if (next != '\\' && next != '"') {
                out[o++] = c;
            }
            out[o++] = next;
            l->i += 2;
            continue;
        }
        out[o++] = c;
        l->i++;
    }
    out[o] = '\0';
    return out;
}

static const char *read_string(struct line *l, char *out)
{
    expect(l, '"');
    read_string_body(l, out);
    expect(l, '"');
    return out;
}

static void check_number(struct line *l, const struct item *it)
{
    size_t start = l->i;
    while (l->i < l->n && l->s[l->i] != ',' && l->s[l->i] != ' ') {
        l->i++;
    }
    char tok[64];
    size_t len = l->i - start;
    CHECK(len > 0 && len < sizeof(tok));
    memcpy(tok, l->s + start, len);
    tok[len] = '\0';
    if (it->kind == 'i') {
        CHECK(tok[len - 1] == 'i');
        CHECK(strtoll(tok, NULL, 10) == it->i);
    } else if (it->kind == 'b') {
        CHECK(strcmp(tok, it->b ? "true" : "false") == 0);
    } else {
        /* A float must not read as an integer or a bool. */
        CHECK(strpbrk(tok, ".e") != NULL && tok[len - 1] != 'i');
        double back = strtod(tok, NULL);
        CHECK(memcmp(&back, &it->f, sizeof(back)) == 0);
    }
}

static bool is_control(unsigned char c)
{
    return c < 0x20 || c == 0x7f;
}

/* Names never carry control bytes; strings only TAB. */
static void check_no_control(const char *s, bool tab_ok)
{
    for (; *s; s++) {
        CHECK(!is_control((unsigned char)*s) || (tab_ok && *s == '\t'));
    }
}

static void check_value(struct line *l, const struct item *it, char *scratch)
{
    if (it->kind == 's') {
        CHECK(strcmp(read_string(l, scratch), it->text) == 0);
        check_no_control(scratch, true);
    } else {
        check_number(l, it);
    }
}

/* An independent UTF-8 check: decode, then reject what RFC 3629 forbids. */
static void check_utf8(const unsigned char *s, size_t n)
{
    static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
    for (size_t i = 0; i < n;) {
        size_t len = s[i] < 0x80 ? 1 : (s[i] >> 5) == 6 ? 2 : (s[i] >> 4) == 14 ? 3 : 4;
        CHECK((s[i] >> 3) != 31 && (s[i] & 0xc0) != 0x80 && i + len <= n);
        uint32_t cp = len == 1 ? s[i] : s[i] & (0x7f >> len);
        for (size_t k = 1; k < len; k++) {
            CHECK((s[i + k] & 0xc0) == 0x80);
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        CHECK(cp >= min[len] && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff));
        i += len;
    }
}

static void check_fields(struct run *r, struct line *l)
{
    bool first = true;
    for (size_t k = 0; k < r->n_items; k++) {
        const struct item *it = &r->items[k];
        if (it->kind == 't') {
            continue;
        }
        if (!first) {
            expect(l, ',');
        }
        first = false;
        CHECK(strcmp(read_name(l, "=", ",\" =", r->scratch), it->key) == 0);
        check_no_control(r->scratch, false);
        expect(l, '=');
        check_value(l, it, r->scratch);
    }
    CHECK(!first);
}

static void check_line(struct run *r, const char *s, size_t n)
{
    struct line l = {s, n, 0};
    CHECK(n > 0 && s[n - 1] == '\n' && memchr(s, '\n', n) == s + n - 1);
    check_utf8((const unsigned char *)s, n);
    const char *m = read_name(&l, ", ", ",\" =", r->scratch);
    CHECK(strcmp(m, r->measurement) == 0 && m[0] != '#');
    check_no_control(m, false);
    for (size_t k = 0; k < r->n_items; k++) {
        const struct item *it = &r->items[k];
        if (it->kind != 't' || it->text[0] == '\0') {
            continue;
        }
        expect(&l, ',');
        CHECK(strcmp(read_name(&l, "=", ", =", r->scratch), it->key) == 0);
        check_no_control(r->scratch, false);
        expect(&l, '=');
        CHECK(strcmp(read_name(&l, ", ", ", =", r->scratch), it->text) == 0);
        check_no_control(r->scratch, false);
    }
    expect(&l, ' ');
    check_fields(r, &l);
    expect(&l, ' ');
    /* The buffer is not NUL-terminated: parse a copy of the timestamp. */
    char ts[32], *end;
    size_t tlen = n - 1 - l.i;
    CHECK(l.s[l.i] == '-' || (l.s[l.i] >= '0' && l.s[l.i] <= '9'));
    CHECK(tlen > 0 && tlen < sizeof(ts) && s[n - 1] == '\n');
    memcpy(ts, l.s + l.i, tlen);
    ts[tlen] = '\0';
    errno = 0;
    CHECK(strtoll(ts, &end, 10) == r->ts && errno == 0 && *end == '\0');
}

/* --- driving the builder ------------------------------------------------- */

/* Complete lines change only when nw_lp_end() appends exactly one. */
static void check_buffer(struct run *r, bool appended)
{
    size_t len = nw_lp_len(r->lp);
    const char *d = nw_lp_data(r->lp);
    CHECK(len <= nw_lp_capacity(r->lp));
    CHECK(len >= r->committed_len);
    CHECK(memcmp(d, r->committed, r->committed_len) == 0);
    if (!appended) {
        CHECK(len == r->committed_len);
        return;
    }
    CHECK(len > r->committed_len);
    if (!r->too_many) {
        check_line(r, d + r->committed_len, len - r->committed_len);
    }
    memcpy(r->committed + r->committed_len, d + r->committed_len, len - r->committed_len);
    r->committed_len = len;
}

static void record(struct run *r, enum nw_err rc, struct item it)
{
    if (rc != NW_OK) {
        return;
    }
    if (r->n_items == MAX_ITEMS) {
        r->too_many = true;
        return;
    }
    r->items[r->n_items++] = it;
}

static int64_t to_i64(const char *s)
{
    return strtoll(s, NULL, 0); /* saturates at INT64_MIN/MAX */
}

/* Runs one operation: `arg` is its key, `value` the next string. */
static void run_op(struct run *r, unsigned op, const char *arg, const char *value)
{
    struct nw_error err = {0};
    enum nw_err rc = NW_OK;
    bool ended = false;
    struct item it = {.key = arg, .text = value};
    switch (op % 8) {
    case 0:
        rc = nw_lp_begin(r->lp, arg, &err);
        if (rc == NW_OK) {
            r->measurement = arg;
            r->n_items = 0;
            r->too_many = false;
        }
        break;
    case 1:
        it.kind = 't';
        rc = nw_lp_tag(r->lp, arg, value, &err);
        record(r, rc, it);
        break;
    case 2:
        it.kind = 'i';
        it.i = to_i64(value);
        rc = nw_lp_field_i64(r->lp, arg, it.i, &err);
        record(r, rc, it);
        break;
    case 3:
        it.kind = 'f';
        it.f = strtod(value, NULL);
        rc = nw_lp_field_f64(r->lp, arg, it.f, &err);
        record(r, rc, it);
        break;
    case 4:
        it.kind = 'b';
        it.b = (op & 8) != 0;
        rc = nw_lp_field_bool(r->lp, arg, it.b, &err);
        record(r, rc, it);
        break;
    case 5:
        it.kind = 's';
        rc = nw_lp_field_str(r->lp, arg, value, &err);
        record(r, rc, it);
        break;
    case 6:
        r->ts = to_i64(value);
        rc = nw_lp_end(r->lp, r->ts, (op & 8) ? NW_LP_MS : NW_LP_NS, &err);
        ended = rc == NW_OK;
        break;
    default:
        if (op & 8) {
            nw_lp_reset(r->lp);
            r->committed_len = 0;
        } else {
            nw_lp_abort(r->lp);
        }
        break;
    }
    /* Every refusal explains itself. */
    CHECK(rc == NW_OK || (err.code == rc && err.msg[0] != '\0'));
    check_buffer(r, ended);
}

/* nw_lp_escape() must read back to its input, or refuse it. */
static void check_escape(const char *s, char *escaped, size_t cap, char *scratch)
{
    static const char *const escapes[] = {",\" =", ", =", ", =", ",\" =", ""};
    for (int part = NW_LP_MEASUREMENT; part <= NW_LP_STRING; part++) {
        size_t len = 0;
        if (nw_lp_escape((enum nw_lp_part)part, s, escaped, cap, &len, NULL) != NW_OK) {
            continue;
        }
        CHECK(strlen(escaped) == len);
        check_utf8((const unsigned char *)escaped, len);
        struct line l = {escaped, len, 0};
        if (part == NW_LP_STRING) {
            read_string_body(&l, scratch);
        } else {
            read_name(&l, part == NW_LP_MEASUREMENT ? ", " : ",= ", escapes[part], scratch);
        }
        CHECK(strcmp(scratch, s) == 0 && l.i == len);
    }
}

static bool takes_value(unsigned op)
{
    return op % 8 != 0 && op % 8 != 4 && op % 8 != 7;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) {
        return 0;
    }
    size_t cap = 1 + (size_t)data[0] * 16;
    struct run r = {.lp = nw_lp_new(cap)};
    char *text = malloc(size); /* data[1..] plus a final NUL */
    /* Escaping at most doubles a text; unescaping never lengthens one. */
    size_t escaped_cap = 2 * size + 1;
    char *escaped = malloc(escaped_cap);
    r.committed = malloc(cap);
    r.scratch = malloc(escaped_cap + cap + 1);
    CHECK(r.lp && text && escaped && r.committed && r.scratch);
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    const char *end = text + size - 1;
    const char *p = text;
    r.measurement = "";
    run_op(&r, 0, p, "");
    check_escape(p, escaped, escaped_cap, r.scratch);
    for (p += strlen(p) + 1; p < end; p += strlen(p) + 1) {
        const char *value = p + strlen(p) + 1;
        unsigned op = (unsigned char)p[0];
        const char *arg = p[0] ? p + 1 : p;
        run_op(&r, op, arg, value < end ? value : "");
        check_escape(arg, escaped, escaped_cap, r.scratch);
        if (takes_value(op) && value < end) {
            check_escape(value, escaped, escaped_cap, r.scratch);
            p = value; /* that string was the value */
        }
    }
    nw_lp_destroy(&r.lp);
    free(text);
    free(escaped);
    free(r.committed);
    free(r.scratch);
    return 0;
}

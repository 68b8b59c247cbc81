/*
 * json.c - the bounded JSON tokenizer of json.h.
 *
 * Recursive descent over the text, depth-limited, writing one token per
 * value into a fixed array. Numbers are checked against the JSON grammar
 * here (strtod would accept "inf", hex and a leading '+'), so a value that
 * tokenizes is one that any JSON reader would accept.
 */
#include "json.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct nw_json {
    struct nw_json_tok *toks;
    size_t cap, n;
    const char *text;
    size_t len;
};

struct parser {
    struct nw_json *j;
    const char *s;
    size_t len, at;
    struct nw_error *err;
};

struct nw_json *nw_json_new(size_t max_tokens)
{
    if (max_tokens < 16 || max_tokens > UINT32_MAX / 2) {
        return NULL;
    }
    struct nw_json *j = calloc(1, sizeof(*j));
    if (!j) {
        return NULL;
    }
    j->toks = calloc(max_tokens, sizeof(*j->toks));
    if (!j->toks) {
        free(j);
        return NULL;
    }
    j->cap = max_tokens;
    return j;
}

void nw_json_destroy(struct nw_json **p)
{
    if (p && *p) {
        free((*p)->toks);
        free(*p);
        *p = NULL;
    }
}

static enum nw_err bad(struct parser *p, const char *what)
{
    return nw_error_set(p->err, NW_ERR_PROTOCOL, "malformed JSON at byte %zu: %s", p->at, what);
}

static void skip_ws(struct parser *p)
{
    while (p->at < p->len) {
        char c = p->s[p->at];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
            break;
        }
        p->at++;
    }
}

static enum nw_err new_tok(struct parser *p, enum nw_json_type type, uint32_t *out)
{
    if (p->j->n >= p->j->cap) {
        return nw_error_set(p->err, NW_ERR_TOO_BIG, "JSON document has more than %zu values",
                            p->j->cap);
    }
    *out = (uint32_t)p->j->n++;
    struct nw_json_tok *t = &p->j->toks[*out];
    memset(t, 0, sizeof(*t));
    t->type = type;
    t->start = (uint32_t)p->at;
    return NW_OK;
}

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static enum nw_err parse_string(struct parser *p, uint32_t *out)
{
    p->at++; /* opening quote */
    enum nw_err rc = new_tok(p, NW_JSON_STR, out);
    if (rc != NW_OK) {
        return rc;
    }
    bool escaped = false;
    while (p->at < p->len) {
        unsigned char c = (unsigned char)p->s[p->at];
        if (c == '"') {
            struct nw_json_tok *t = &p->j->toks[*out];
            t->end = (uint32_t)p->at;
            t->escaped = escaped;
            t->next = *out + 1;
            p->at++;
            return NW_OK;
        }
        if (c < 0x20) {
            return bad(p, "control character in a string");
        }
        if (c == '\\') {
            escaped = true;
            if (p->at + 1 >= p->len) {
                break;
            }
            char e = p->s[p->at + 1];
            if (e == 'u') {
                if (p->at + 5 >= p->len || !is_hex(p->s[p->at + 2]) || !is_hex(p->s[p->at + 3]) ||
                    !is_hex(p->s[p->at + 4]) || !is_hex(p->s[p->at + 5])) {
                    return bad(p, "bad \\u escape");
                }
                p->at += 6;
                continue;
            }
            if (!strchr("\"\\/bfnrt", e) || e == '\0') {
                return bad(p, "bad escape");
            }
            p->at += 2;
            continue;
        }
        p->at++;
    }
    return bad(p, "unterminated string");
}

static enum nw_err parse_number(struct parser *p, uint32_t *out)
{
    enum nw_err rc = new_tok(p, NW_JSON_NUM, out);
    if (rc != NW_OK) {
        return rc;
    }
    size_t i = p->at;
    const char *s = p->s;
    if (i < p->len && s[i] == '-') {
        i++;
    }
    if (i >= p->len || s[i] < '0' || s[i] > '9') {
        return bad(p, "bad number");
    }
    if (s[i] == '0') {
        i++;
    } else {
        while (i < p->len && s[i] >= '0' && s[i] <= '9') {
            i++;
        }
    }
    if (i < p->len && s[i] == '.') {
        i++;
        size_t d = i;
        while (i < p->len && s[i] >= '0' && s[i] <= '9') {
            i++;
        }
        if (i == d) {
            return bad(p, "bad number");
        }
    }
    if (i < p->len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < p->len && (s[i] == '+' || s[i] == '-')) {
            i++;
        }
        size_t d = i;
        while (i < p->len && s[i] >= '0' && s[i] <= '9') {
            i++;
        }
        if (i == d) {
            return bad(p, "bad number");
        }
    }
    struct nw_json_tok *t = &p->j->toks[*out];
    t->end = (uint32_t)i;
    t->next = *out + 1;
    p->at = i;
    return NW_OK;
}

static enum nw_err parse_word(struct parser *p, const char *w, enum nw_json_type type,
                              uint32_t *out)
{
    size_t n = strlen(w);
    if (p->len - p->at < n || memcmp(p->s + p->at, w, n) != 0) {
        return bad(p, "unexpected character");
    }
    enum nw_err rc = new_tok(p, type, out);
    if (rc != NW_OK) {
        return rc;
    }
    p->at += n;
    p->j->toks[*out].end = (uint32_t)p->at;
    p->j->toks[*out].next = *out + 1;
    return NW_OK;
}

static enum nw_err parse_value(struct parser *p, unsigned depth, uint32_t *out);

static enum nw_err parse_container(struct parser *p, unsigned depth, bool obj, uint32_t *out)
{
    if (depth >= NW_JSON_MAX_DEPTH) {
        return nw_error_set(p->err, NW_ERR_TOO_BIG, "JSON nested deeper than %d",
                            NW_JSON_MAX_DEPTH);
    }
    enum nw_err rc = new_tok(p, obj ? NW_JSON_OBJ : NW_JSON_ARR, out);
    if (rc != NW_OK) {
        return rc;
    }
    uint32_t me = *out, count = 0;
    char close = obj ? '}' : ']';
    p->at++;
    skip_ws(p);
    if (p->at < p->len && p->s[p->at] == close) {
        p->at++;
    } else {
        for (;;) {
            uint32_t child;
            skip_ws(p);
            if (obj) {
                if (p->at >= p->len || p->s[p->at] != '"') {
                    return bad(p, "expected a member name");
                }
                if ((rc = parse_string(p, &child)) != NW_OK) {
                    return rc;
                }
                skip_ws(p);
                if (p->at >= p->len || p->s[p->at] != ':') {
                    return bad(p, "expected ':'");
                }
                p->at++;
                skip_ws(p);
            }
            if ((rc = parse_value(p, depth + 1, &child)) != NW_OK) {
                return rc;
            }
            count++;
            skip_ws(p);
            if (p->at >= p->len) {
                return bad(p, "unterminated array or object");
            }
            if (p->s[p->at] == ',') {
                p->at++;
                continue;
            }
            if (p->s[p->at] == close) {
                p->at++;
                break;
            }
            return bad(p, "expected ',' or the end of the array/object");
        }
    }
    struct nw_json_tok *t = &p->j->toks[me];
    t->size = count;
    t->end = (uint32_t)p->at;
    t->next = (uint32_t)p->j->n;
    return NW_OK;
}

static enum nw_err parse_value(struct parser *p, unsigned depth, uint32_t *out)
{
    skip_ws(p);
    if (p->at >= p->len) {
        return bad(p, "unexpected end");
    }
    char c = p->s[p->at];
    switch (c) {
    case '{':
        return parse_container(p, depth, true, out);
    case '[':
        return parse_container(p, depth, false, out);
    case '"':
        return parse_string(p, out);
    case 't':
        return parse_word(p, "true", NW_JSON_BOOL, out);
    case 'f':
        return parse_word(p, "false", NW_JSON_BOOL, out);
    case 'n':
        return parse_word(p, "null", NW_JSON_NULL, out);
    default:
        if (c == '-' || (c >= '0' && c <= '9')) {
            return parse_number(p, out);
        }
        return bad(p, "unexpected character");
    }
}

enum nw_err nw_json_parse(struct nw_json *j, const char *text, size_t len, struct nw_error *err)
{
    if (len >= UINT32_MAX) {
        return nw_error_set(err, NW_ERR_TOO_BIG, "JSON document of %zu bytes", len);
    }
    j->n = 0;
    j->text = text;
    j->len = len;
    struct parser p = {j, text, len, 0, err};
    uint32_t root;
    enum nw_err rc = parse_value(&p, 0, &root);
    if (rc != NW_OK) {
        j->n = 0;
        return rc;
    }
    skip_ws(&p);
    if (p.at != len) {
        j->n = 0;
        return bad(&p, "text after the document");
    }
    return NW_OK;
}

const struct nw_json_tok *nw_json_at(const struct nw_json *j, uint32_t i)
{
    return i < j->n ? &j->toks[i] : NULL;
}

uint32_t nw_json_first(const struct nw_json *j, uint32_t i)
{
    (void)j;
    return i + 1;
}

uint32_t nw_json_next(const struct nw_json *j, uint32_t e)
{
    return e < j->n ? j->toks[e].next : e;
}

static void put_utf8(char *out, size_t *n, unsigned long cp)
{
    if (cp < 0x80) {
        out[(*n)++] = (char)cp;
    } else if (cp < 0x800) {
        out[(*n)++] = (char)(0xc0 | cp >> 6);
        out[(*n)++] = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        out[(*n)++] = (char)(0xe0 | cp >> 12);
        out[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[(*n)++] = (char)(0x80 | (cp & 0x3f));
    } else {
        out[(*n)++] = (char)(0xf0 | cp >> 18);
        out[(*n)++] = (char)(0x80 | ((cp >> 12) & 0x3f));
        out[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[(*n)++] = (char)(0x80 | (cp & 0x3f));
    }
}

static unsigned long hex4(const char *s)
{
    unsigned long v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v = v * 16 + (unsigned long)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
    }
    return v;
}

long nw_json_str(const struct nw_json *j, uint32_t i, char *out, size_t cap)
{
    if (cap == 0) {
        return -1;
    }
    out[0] = '\0';
    if (i >= j->n || j->toks[i].type != NW_JSON_STR) {
        return -1;
    }
    const struct nw_json_tok *t = &j->toks[i];
    const char *s = j->text + t->start;
    size_t len = t->end - t->start;
    if (!t->escaped) {
        if (len >= cap) {
            return -1;
        }
        memcpy(out, s, len);
        out[len] = '\0';
        return (long)len;
    }
    size_t n = 0;
    for (size_t k = 0; k < len;) {
        if (n + 5 > cap) {
            out[0] = '\0';
            return -1;
        }
        if (s[k] != '\\') {
            out[n++] = s[k++];
            continue;
        }
        char e = s[k + 1];
        k += 2;
        switch (e) {
        case 'b':
            out[n++] = '\b';
            break;
        case 'f':
            out[n++] = '\f';
            break;
        case 'n':
            out[n++] = '\n';
            break;
        case 'r':
            out[n++] = '\r';
            break;
        case 't':
            out[n++] = '\t';
            break;
        case 'u': {
            unsigned long cp = hex4(s + k);
            k += 4;
            if (cp >= 0xd800 && cp < 0xdc00 && k + 6 <= len && s[k] == '\\' && s[k + 1] == 'u') {
                unsigned long lo = hex4(s + k + 2);
                if (lo >= 0xdc00 && lo < 0xe000) {
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                    k += 6;
                }
            }
            if (cp >= 0xd800 && cp < 0xe000) {
                cp = 0xfffd; /* a lone surrogate */
            }
            put_utf8(out, &n, cp);
            break;
        }
        default: /* '"', '\\', '/' */
            out[n++] = e;
            break;
        }
    }
    if (n >= cap) {
        out[0] = '\0';
        return -1;
    }
    out[n] = '\0';
    return (long)n;
}

bool nw_json_str_eq(const struct nw_json *j, uint32_t i, const char *s)
{
    if (i >= j->n || j->toks[i].type != NW_JSON_STR) {
        return false;
    }
    const struct nw_json_tok *t = &j->toks[i];
    size_t len = t->end - t->start, sl = strlen(s);
    if (!t->escaped) {
        return len == sl && memcmp(j->text + t->start, s, len) == 0;
    }
    char buf[512];
    long n = nw_json_str(j, i, buf, sizeof(buf));
    return n >= 0 && (size_t)n == sl && memcmp(buf, s, sl) == 0;
}

uint32_t nw_json_member(const struct nw_json *j, uint32_t obj, const char *key)
{
    if (obj >= j->n || j->toks[obj].type != NW_JSON_OBJ) {
        return 0;
    }
    uint32_t k = obj + 1;
    for (uint32_t m = 0; m < j->toks[obj].size; m++) {
        uint32_t v = j->toks[k].next; /* the key is a string: next is its value */
        if (nw_json_str_eq(j, k, key)) {
            return v;
        }
        k = j->toks[v].next;
    }
    return 0;
}

/* The text of number token i, NUL-terminated, into buf; false when i is
 * not a number or its text does not fit. */
static bool num_text(const struct nw_json *j, uint32_t i, char *buf, size_t cap)
{
    if (i >= j->n || j->toks[i].type != NW_JSON_NUM) {
        return false;
    }
    const struct nw_json_tok *t = &j->toks[i];
    size_t len = t->end - t->start;
    if (len >= cap) {
        return false;
    }
    memcpy(buf, j->text + t->start, len);
    buf[len] = '\0';
    return true;
}

bool nw_json_int(const struct nw_json *j, uint32_t i, int64_t *out)
{
    char buf[32];
    if (!num_text(j, i, buf, sizeof(buf)) || strpbrk(buf, ".eE")) {
        return false;
    }
    errno = 0;
    char *end;
    long long v = strtoll(buf, &end, 10);
    if (errno || *end) {
        return false;
    }
    *out = v;
    return true;
}

bool nw_json_num(const struct nw_json *j, uint32_t i, double *out)
{
    char buf[64];
    if (!num_text(j, i, buf, sizeof(buf))) {
        return false;
    }
    char *end;
    errno = 0;
    double v = strtod(buf, &end);
    if (*end || errno == ERANGE) {
        return false;
    }
    *out = v;
    return true;
}

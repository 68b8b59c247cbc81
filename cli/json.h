/*
 * json.h - a small, bounded JSON reader for the answers the CLI gets over
 * HTTP (InfluxDB /query, the collector's operator API).
 *
 * The parser tokenizes one complete document into a caller-bounded token
 * array, jsmn style: no allocation per value, no copy of the text. Strings
 * stay escaped in the text until a caller asks for one (nw_json_str), so
 * reading a 10 000-row InfluxDB chunk costs one pass plus what is used.
 *
 * Bounds: at most max_tokens tokens per document and NW_JSON_MAX_DEPTH
 * nesting; anything over is NW_ERR_TOO_BIG. Malformed text (trailing
 * commas, bare words, unterminated strings, control characters in strings,
 * bad escapes, bytes after the document) is NW_ERR_PROTOCOL with the byte
 * offset in the reason.
 */
#ifndef CLI_JSON_H
#define CLI_JSON_H

#include <needlewatch/err.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NW_JSON_MAX_DEPTH 32

enum nw_json_type {
    NW_JSON_NULL,
    NW_JSON_BOOL,
    NW_JSON_NUM,
    NW_JSON_STR,
    NW_JSON_ARR,
    NW_JSON_OBJ
};

struct nw_json_tok {
    enum nw_json_type type;
    uint32_t start, end; /* text[start, end): a string without its quotes */
    uint32_t size;       /* array: elements; object: members (key+value pairs) */
    uint32_t next;       /* index of the token after this one's whole subtree */
    bool escaped;        /* string holds a backslash */
};

struct nw_json;

/* A parser with room for max_tokens tokens (>= 16). NULL when out of memory.
 * Caller-owned; free with nw_json_destroy(). */
struct nw_json *nw_json_new(size_t max_tokens);
void nw_json_destroy(struct nw_json **p);

/*
 * Parses text[0, len) (borrowed: it must outlive every use of the tokens)
 * as exactly one JSON value, surrounded by optional whitespace. Token 0 is
 * the root. Replaces the previous document.
 */
enum nw_err nw_json_parse(struct nw_json *j, const char *text, size_t len, struct nw_error *err);

/* Token i of the current document (borrowed), or NULL past the end. */
const struct nw_json_tok *nw_json_at(const struct nw_json *j, uint32_t i);

/* Index of the value of member key in object token obj, or 0 (never a
 * member: the root) when absent or obj is not an object. */
uint32_t nw_json_member(const struct nw_json *j, uint32_t obj, const char *key);

/* Index of the first element of array/object token i (i + 1; for an
 * object, its first key), and of the token after e's whole subtree: the
 * next element of an array; in an object, key -> its value -> next key. */
uint32_t nw_json_first(const struct nw_json *j, uint32_t i);
uint32_t nw_json_next(const struct nw_json *j, uint32_t e);

/*
 * The string token i unescaped (\uXXXX and surrogate pairs to UTF-8) into
 * out (caller-owned, cap bytes, always NUL-terminated). Returns the length,
 * or -1 when i is not a string or it does not fit.
 */
long nw_json_str(const struct nw_json *j, uint32_t i, char *out, size_t cap);

/* True when string token i equals s exactly (after unescaping). */
bool nw_json_str_eq(const struct nw_json *j, uint32_t i, const char *s);

/* Number token i as int64 (only when written as an integer that fits) or
 * as double. false for other types. */
bool nw_json_int(const struct nw_json *j, uint32_t i, int64_t *out);
bool nw_json_num(const struct nw_json *j, uint32_t i, double *out);

#endif

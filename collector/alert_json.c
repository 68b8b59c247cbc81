/*
 * alert_json.c - struct nw_alert -> JSON (see alert_json.h for the format).
 *
 * One pass over each string with a small UTF-8 validator: the strings of an
 * alert come from rules, the inventory and devices, are validated upstream,
 * and still must never be able to break the JSON a webhook receiver parses.
 */
#include "alert_json.h"

#include <needlewatch/clock.h>

#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at s[0..len), 0 if there is none. */
static size_t utf8_seq(const unsigned char *s, size_t len, unsigned long *out_cp)
{
    unsigned char c = s[0];
    size_t n;
    unsigned char lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
    unsigned long cp;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2, cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3, cp = c & 0x0f;
        lo = c == 0xe0 ? 0xa0 : 0x80; /* no overlong forms */
        hi = c == 0xed ? 0x9f : 0xbf; /* no surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4, cp = c & 0x07;
        lo = c == 0xf0 ? 0x90 : 0x80; /* no overlong forms */
        hi = c == 0xf4 ? 0x8f : 0xbf; /* nothing above U+10FFFF */
    } else {
        return 0;
    }
    if (len < n || s[1] < lo || s[1] > hi) {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if (i > 1 && (s[i] < 0x80 || s[i] > 0xbf)) {
            return 0;
        }
        cp = cp << 6 | (s[i] & 0x3f);
    }
    *out_cp = cp;
    return n;
}

static size_t put(char *buf, size_t at, size_t cap, const char *s, size_t n)
{
    if (at == (size_t)-1 || n >= cap - at) {
        return (size_t)-1;
    }
    memcpy(buf + at, s, n);
    return at + n;
}

size_t alert_json_escape(char *buf, size_t at, size_t cap, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;
    if (at >= cap) {
        return (size_t)-1;
    }
    for (size_t i = 0; i < len && at != (size_t)-1;) {
        unsigned char c = u[i];
        char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
        unsigned long cp = c;
        size_t n = 1;
        if (c == '"' || c == '\\') {
            esc[1] = (char)c;
            at = put(buf, at, cap, esc, 2);
        } else if (c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t') {
            esc[1] = c == '\b' ? 'b' : c == '\f' ? 'f' : c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
            at = put(buf, at, cap, esc, 2);
        } else if (c < 0x20 || c == 0x7f) {
            at = put(buf, at, cap, esc, 6);
        } else if (c < 0x80) {
            at = put(buf, at, cap, (const char *)u + i, 1);
        } else if ((n = utf8_seq(u + i, len - i, &cp)) == 0) {
            n = 1; /* not UTF-8: one replacement character per byte */
            at = put(buf, at, cap, "\\ufffd", 6);
        } else if (cp <= 0x9f || cp == 0x2028 || cp == 0x2029) {
            char e[6] = {'\\',        'u', hex[cp >> 12], hex[(cp >> 8) & 15], hex[(cp >> 4) & 15],
                         hex[cp & 15]};
            at = put(buf, at, cap, e, 6);
        } else {
            at = put(buf, at, cap, (const char *)u + i, n);
        }
        i += n;
    }
    if (at != (size_t)-1) {
        buf[at] = '\0';
    }
    return at;
}

static size_t put_str(char *buf, size_t at, size_t cap, const char *key, const char *s, size_t max)
{
    at = put(buf, at, cap, key, strlen(key));
    at = put(buf, at, cap, "\"", 1);
    if (at != (size_t)-1) {
        at = alert_json_escape(buf, at, cap, s, strnlen(s, max));
    }
    return put(buf, at, cap, "\"", 1);
}

/* The shortest %g form that reads back as v; "null" when JSON cannot say v. */
static void format_number(double v, char out[32])
{
    if (!isfinite(v)) {
        memcpy(out, "null", 5);
        return;
    }
    int prec = 1;
    for (; prec <= 17; prec++) {
        snprintf(out, 32, "%.*g", prec, v);
        if (strtod(out, NULL) == v) {
            break;
        }
    }
    /* %g writes 140 as "1.4e+02" at precision 2: below 1e17, whole digits
     * read better (more digits than needed still read back the same). */
    const char *e = strchr(out, 'e');
    if (e) {
        long x = strtol(e + 1, NULL, 10);
        if (x >= prec && x < 17) {
            snprintf(out, 32, "%.*g", (int)x + 1, v);
        }
    }
    for (char *p = out; *p; p++) {
        if (*p == ',') {
            *p = '.'; /* a caller's LC_NUMERIC must not change the JSON */
        }
    }
}

static void format_time(int64_t ms, bool known, char out[NW_CLOCK_RFC3339_SIZE + 2])
{
    char t[NW_CLOCK_RFC3339_SIZE];
    if (!known || nw_clock_format_rfc3339(ms, t) != NW_OK) {
        memcpy(out, "null", 5);
    } else {
        snprintf(out, NW_CLOCK_RFC3339_SIZE + 2, "\"%s\"", t);
    }
}

enum nw_err alert_json_format(const struct nw_alert *a, char *buf, size_t cap, size_t *out_len)
{
    if (!a || !buf || !out_len) {
        return NW_ERR_INVAL;
    }
    if (cap == 0) {
        return NW_ERR_TOO_BIG;
    }
    char value[32], threshold[32], id[24];
    char time[NW_CLOCK_RFC3339_SIZE + 2], since[NW_CLOCK_RFC3339_SIZE + 2];
    format_number(a->value, value);
    format_number(a->threshold, threshold);
    format_time(a->time_ms, true, time);
    format_time(a->since_ms, a->since_ms > 0, since);
    snprintf(id, sizeof(id), "%" PRIu64, a->alert_id);

    size_t at = 0;
    at = put_str(buf, at, cap, "{\"device\":", a->device_id, sizeof(a->device_id));
    at = put_str(buf, at, cap, ",\"clinic\":", a->clinic, sizeof(a->clinic));
    at = put_str(buf, at, cap, ",\"model\":", a->model, sizeof(a->model));
    at = put_str(buf, at, cap, ",\"rule\":", a->rule, sizeof(a->rule));
    at = put_str(buf, at, cap, ",\"severity\":", nw_severity_name(a->severity), NW_NAME_MAX);
    at = put_str(buf, at, cap, ",\"state\":", nw_alert_state_name(a->state), NW_NAME_MAX);
    at = put_str(buf, at, cap, ",\"alert_id\":", id, sizeof(id));
    char tail[256];
    int n = snprintf(tail, sizeof(tail), ",\"value\":%s,\"threshold\":%s", value, threshold);
    at = put(buf, at, cap, tail, (size_t)n);
    at = put_str(buf, at, cap, ",\"message\":", a->message, sizeof(a->message));
    n = snprintf(tail, sizeof(tail), ",\"time\":%s,\"since\":%s,\"late\":%s}", time, since,
                 a->late ? "true" : "false");
    at = put(buf, at, cap, tail, (size_t)n);
    if (at == (size_t)-1) {
        buf[0] = '\0';
        return NW_ERR_TOO_BIG;
    }
    buf[at] = '\0';
    *out_len = at;
    return NW_OK;
}

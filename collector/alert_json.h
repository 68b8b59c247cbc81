/*
 * alert_json.h - one alert state change as a JSON object: the webhook body
 * (notify.c), reusable by the CLI. Pure: no I/O, no allocation, no locale.
 *
 * The object, keys always present and always in this order:
 *
 *   {"device":"SIM-0007","clinic":"Clínica São Paulo","model":"DG-3",
 *    "rule":"needle_rate_out_of_spec","severity":"critical","state":"firing",
 *    "alert_id":"1234567890123456789","value":151.2,"threshold":140,
 *    "message":"rate 151.2 Hz > 140 Hz for 2 s",
 *    "time":"2026-11-22T10:00:02.000Z","since":"2026-11-22T10:00:00.000Z",
 *    "late":false}
 *
 *  - severity and state are the lower-case names of msg.h
 *    (nw_severity_name, nw_alert_state_name).
 *  - alert_id is a decimal *string*: it is a 64-bit id, and JavaScript
 *    receivers (JSON.parse) would silently round a number above 2^53.
 *  - value and threshold are numbers in the shortest %g form that reads
 *    back as the same double ("140", "151.2", "0.30000000000000004"), with
 *    '.' whatever the locale; NaN and infinities, which JSON cannot carry,
 *    are null.
 *  - time and since are RFC 3339 UTC with milliseconds; since is null when
 *    since_ms <= 0 (not known), either is null outside the years 0000-9999.
 *  - Strings: '"' and '\\' are escaped, \b \f \n \r \t in their short form,
 *    other C0 controls, DEL and the C1 controls (U+0080-U+009F) as \u00XX,
 *    U+2028 and U+2029 as \u2028 \u2029 (so the body is also a valid
 *    JavaScript literal); all other valid UTF-8 is copied byte for byte.
 *    Every byte that is not part of a valid UTF-8 sequence (overlong forms,
 *    surrogates, > U+10FFFF, truncated sequences) becomes \ufffd, so the
 *    output is always valid JSON in valid UTF-8 whatever the struct holds.
 *    A string field is read up to its NUL or the end of its array.
 */
#ifndef COLLECTOR_ALERT_JSON_H
#define COLLECTOR_ALERT_JSON_H

#include <needlewatch/err.h>
#include <needlewatch/msg.h>

#include <stddef.h>

/*
 * Bytes that always hold the JSON of any struct nw_alert, NUL included:
 * the string fields escaped at worst 6 bytes per input byte (\u00XX), plus
 * keys, numbers and times. unit.collector_alert_json checks the bound with
 * the worst input.
 */
#define ALERT_JSON_MAX 4096

/*
 * Writes the JSON object of *a (borrowed) into buf[0..cap) (caller-owned),
 * NUL-terminated, without a trailing newline, and sets *out_len to its
 * length (without the NUL). NW_ERR_TOO_BIG when it does not fit cap (buf
 * then holds "" when cap > 0); NW_ERR_INVAL when a pointer is NULL.
 */
enum nw_err alert_json_format(const struct nw_alert *a, char *buf, size_t cap, size_t *out_len);

/*
 * Appends the inside of a JSON string for s[0..len) (borrowed) at buf[at..),
 * escaped as above, and NUL-terminates. Returns the new length, or
 * (size_t)-1 when it does not fit cap (buf[at..] is then unspecified).
 */
size_t alert_json_escape(char *buf, size_t at, size_t cap, const char *s, size_t len);

#endif

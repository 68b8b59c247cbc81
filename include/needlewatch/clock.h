/*
 * clock.h - time sources, RFC 3339 timestamps and durations.
 *
 * Every time in needlewatch is an int64_t count of milliseconds (or
 * nanoseconds where named _ns) since 1970-01-01T00:00:00Z, UTC, no leap
 * seconds (POSIX time). Nothing here reads the TZ environment, the locale or
 * calls mktime()/localtime(): calendar conversion is plain arithmetic
 * (days-from-civil), so results are the same on every host and in tests.
 *
 * Time sources can be replaced by a fake clock (nw_clock_fake_set) so tests
 * of code that asks "what time is it" are deterministic. The parsers take
 * "now" as an argument instead, so they never need the fake.
 *
 * All functions are thread-safe. None allocates.
 */
#ifndef NW_CLOCK_H
#define NW_CLOCK_H

#include <needlewatch/err.h>

#include <stddef.h>
#include <stdint.h>

/* "2026-11-22T02:33:00.123Z" plus NUL. */
#define NW_CLOCK_RFC3339_SIZE 25
/* Enough for any nw_clock_format_duration() output ("-106751991167d7h12m55s807ms"). */
#define NW_CLOCK_DURATION_SIZE 32

/* Wall-clock time in ms since the epoch (CLOCK_REALTIME, or the fake). */
int64_t nw_clock_realtime_ms(void);
/* Monotonic time (CLOCK_MONOTONIC, or the fake): for timeouts and intervals. */
int64_t nw_clock_mono_ms(void);
int64_t nw_clock_mono_ns(void);

/*
 * Test hooks. nw_clock_fake_set() freezes both clocks at the given values
 * until nw_clock_fake_advance_ms() moves them (both by the same amount) or
 * nw_clock_fake_clear() returns to the system clocks. Process-wide: meant
 * for tests, never for production code.
 */
void nw_clock_fake_set(int64_t realtime_ms, int64_t mono_ns);
void nw_clock_fake_advance_ms(int64_t ms);
void nw_clock_fake_clear(void);

/*
 * Days since 1970-01-01 of a proleptic Gregorian date, and back. Valid for
 * any year that fits an int; month 1-12, day 1-31 (not checked here).
 */
int64_t nw_clock_days_from_civil(int64_t year, unsigned month, unsigned day);
void nw_clock_civil_from_days(int64_t days, int64_t *out_year, unsigned *out_month,
                              unsigned *out_day);

/*
 * Formats ms as "YYYY-MM-DDTHH:MM:SS.mmmZ" (UTC, always 3 fraction digits)
 * into out (caller-owned, NW_CLOCK_RFC3339_SIZE bytes). Years 0000-9999
 * only: outside that range out becomes "" and NW_ERR_INVAL is returned.
 */
enum nw_err nw_clock_format_rfc3339(int64_t ms, char out[NW_CLOCK_RFC3339_SIZE]);

/*
 * Parses an RFC 3339 date-time into ms since the epoch:
 *   YYYY-MM-DD('T'|'t'|' ')HH:MM:SS[.F{1,9}]('Z'|'z'|('+'|'-')HH:MM)
 * Exactly these digit counts; no surrounding whitespace. The fraction is
 * truncated to milliseconds (never rounded up, so order is kept). "-00:00"
 * is accepted as UTC. A leap second (SS = 60) is accepted only when the UTC
 * time is 23:59:60 and is clamped to 23:59:59.999 of that day, because POSIX
 * time has no slot for it; whether that day really had a leap second is not
 * checked. Everything else out of range (month 13, Feb 29 of a common
 * year, hour 24, offset +24:00) is rejected with the reason in *err
 * (may be NULL), which does not repeat the input.
 */
enum nw_err nw_clock_parse_rfc3339(const char *s, int64_t *out_ms, struct nw_error *err);

/*
 * The CLI's --from/--to syntax, relative to now_ms:
 *   "now"                         now_ms
 *   "-7d", "-12h", "-1h30m", "+2h" now_ms minus/plus a duration (see below)
 *   "2026-11-22"                  that day at 00:00:00Z
 *   RFC 3339                      as nw_clock_parse_rfc3339()
 */
enum nw_err nw_clock_parse_time(const char *s, int64_t now_ms, int64_t *out_ms,
                                struct nw_error *err);

/*
 * Parses a duration: one or more <number><unit> with units d, h, m, s, ms
 * in decreasing order, each at most once ("90s", "2h", "1h30m", "500ms",
 * "1.5m"). A number may have up to 9 fraction digits as long as the total
 * is a whole number of milliseconds. "0" alone is accepted; any other
 * number needs a unit. No sign, no spaces. Result in *out_ms (>= 0).
 */
enum nw_err nw_clock_parse_duration_ms(const char *s, int64_t *out_ms, struct nw_error *err);

/*
 * Formats ms as the shortest duration text that parses back to the same
 * value: "0s", "500ms", "1h30m", "7d", "-2s". Writes into out (caller-owned,
 * NW_CLOCK_DURATION_SIZE bytes) and returns out.
 */
char *nw_clock_format_duration(int64_t ms, char out[NW_CLOCK_DURATION_SIZE]);

#endif

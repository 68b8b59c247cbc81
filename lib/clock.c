/*
 * clock.c - time sources, RFC 3339 and durations without libc's calendar.
 *
 * Why not timegm()/strftime()/strptime(): timegm is not POSIX, strftime and
 * strptime depend on the locale, and mktime reads TZ. The conversions below
 * are Howard Hinnant's days_from_civil/civil_from_days, exact for the whole
 * proleptic Gregorian calendar, so the same input gives the same output on
 * any host and under any environment.
 *
 * The fake clock is a pair of atomics, not a function pointer, so reading
 * the time stays a couple of loads plus clock_gettime() in production.
 */
#include <needlewatch/clock.h>

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define MS_PER_SEC INT64_C(1000)
#define MS_PER_MIN (60 * MS_PER_SEC)
#define MS_PER_HOUR (60 * MS_PER_MIN)
#define MS_PER_DAY (24 * MS_PER_HOUR)

static atomic_bool fake_on;
static _Atomic int64_t fake_realtime_ms;
static _Atomic int64_t fake_mono_ns;

/* ---- time sources ---- */

static int64_t read_clock_ns(clockid_t id)
{
    struct timespec ts;
    /* clock_gettime cannot fail for these clock ids on Linux. */
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * INT64_C(1000000000) + ts.tv_nsec;
}

/* Floor division, so times before 1970 round towards the past. */
static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

int64_t nw_clock_realtime_ms(void)
{
    if (atomic_load_explicit(&fake_on, memory_order_acquire)) {
        return atomic_load(&fake_realtime_ms);
    }
    return floor_div(read_clock_ns(CLOCK_REALTIME), 1000000);
}

int64_t nw_clock_mono_ns(void)
{
    if (atomic_load_explicit(&fake_on, memory_order_acquire)) {
        return atomic_load(&fake_mono_ns);
    }
    return read_clock_ns(CLOCK_MONOTONIC);
}

int64_t nw_clock_mono_ms(void)
{
    return nw_clock_mono_ns() / 1000000;
}

void nw_clock_fake_set(int64_t realtime_ms, int64_t mono_ns)
{
    atomic_store(&fake_realtime_ms, realtime_ms);
    atomic_store(&fake_mono_ns, mono_ns);
    atomic_store_explicit(&fake_on, true, memory_order_release);
}

void nw_clock_fake_advance_ms(int64_t ms)
{
    atomic_fetch_add(&fake_realtime_ms, ms);
    atomic_fetch_add(&fake_mono_ns, ms * 1000000);
}

void nw_clock_fake_clear(void)
{
    atomic_store_explicit(&fake_on, false, memory_order_release);
}

/* ---- calendar ---- */

int64_t nw_clock_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;                                   /* [0, 399] */
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1; /* [0, 365] */
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;           /* [0, 146096] */
    return era * 146097 + doe - 719468;
}

void nw_clock_civil_from_days(int64_t z, int64_t *out_year, unsigned *out_month, unsigned *out_day)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    unsigned d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
    unsigned m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
    *out_year = yoe + era * 400 + (m <= 2);
    *out_month = m;
    *out_day = d;
}

static bool is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned days_in_month(int64_t y, unsigned m)
{
    static const unsigned char dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

/* ---- RFC 3339 ---- */

static char *put_digits(char *p, unsigned v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
    return p + width;
}

enum nw_err nw_clock_format_rfc3339(int64_t ms, char out[NW_CLOCK_RFC3339_SIZE])
{
    const int64_t lo = nw_clock_days_from_civil(0, 1, 1) * MS_PER_DAY;
    const int64_t hi = nw_clock_days_from_civil(10000, 1, 1) * MS_PER_DAY;
    if (ms < lo || ms >= hi) {
        out[0] = '\0';
        return NW_ERR_INVAL;
    }
    int64_t days = floor_div(ms, MS_PER_DAY);
    int64_t in_day = ms - days * MS_PER_DAY;
    int64_t y;
    unsigned mo, d;
    nw_clock_civil_from_days(days, &y, &mo, &d);
    /* Fixed-width digits by hand: every field is known to be in range here. */
    char *p = out;
    p = put_digits(p, (unsigned)y, 4);
    *p++ = '-';
    p = put_digits(p, mo, 2);
    *p++ = '-';
    p = put_digits(p, d, 2);
    *p++ = 'T';
    p = put_digits(p, (unsigned)(in_day / MS_PER_HOUR), 2);
    *p++ = ':';
    p = put_digits(p, (unsigned)(in_day / MS_PER_MIN % 60), 2);
    *p++ = ':';
    p = put_digits(p, (unsigned)(in_day / MS_PER_SEC % 60), 2);
    *p++ = '.';
    p = put_digits(p, (unsigned)(in_day % 1000), 3);
    *p++ = 'Z';
    *p = '\0';
    return NW_OK;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Reads exactly n digits at *p. */
static bool take_digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!is_digit((*p)[i])) {
            return false;
        }
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return true;
}

static bool take_char(const char **p, char c)
{
    if (**p != c) {
        return false;
    }
    (*p)++;
    return true;
}

struct civil_time {
    int year, month, day, hour, min, sec, ms;
    int offset_min; /* local time = UTC + offset */
};

static enum nw_err parse_date(const char **p, struct civil_time *t, struct nw_error *err)
{
    if (!take_digits(p, 4, &t->year) || !take_char(p, '-') || !take_digits(p, 2, &t->month) ||
        !take_char(p, '-') || !take_digits(p, 2, &t->day)) {
        return nw_error_set(err, NW_ERR_INVALID, "expected a date as YYYY-MM-DD");
    }
    if (t->month < 1 || t->month > 12) {
        return nw_error_set(err, NW_ERR_INVALID, "month %d out of range", t->month);
    }
    if (t->day < 1 || (unsigned)t->day > days_in_month(t->year, (unsigned)t->month)) {
        return nw_error_set(err, NW_ERR_INVALID, "day %d out of range for %04d-%02d", t->day,
                            t->year, t->month);
    }
    return NW_OK;
}

/* ".F{1,9}" truncated to milliseconds; absent means 0. */
static enum nw_err parse_fraction(const char **p, struct civil_time *t, struct nw_error *err)
{
    t->ms = 0;
    if (!take_char(p, '.')) {
        return NW_OK;
    }
    int n = 0;
    for (; is_digit(**p); (*p)++, n++) {
        if (n < 3) {
            t->ms = t->ms * 10 + (**p - '0');
        }
    }
    if (n == 0) {
        return nw_error_set(err, NW_ERR_INVALID, "expected digits after '.'");
    }
    if (n > 9) {
        return nw_error_set(err, NW_ERR_INVALID, "more than 9 fraction digits");
    }
    for (; n < 3; n++) {
        t->ms *= 10;
    }
    return NW_OK;
}

static enum nw_err parse_offset(const char **p, struct civil_time *t, struct nw_error *err)
{
    if (take_char(p, 'Z') || take_char(p, 'z')) {
        t->offset_min = 0;
        return NW_OK;
    }
    int sign = **p == '+' ? 1 : **p == '-' ? -1 : 0;
    if (sign == 0) {
        return nw_error_set(err, NW_ERR_INVALID, "expected time zone 'Z' or +hh:mm/-hh:mm");
    }
    (*p)++;
    int oh, om;
    if (!take_digits(p, 2, &oh) || !take_char(p, ':') || !take_digits(p, 2, &om)) {
        return nw_error_set(err, NW_ERR_INVALID, "expected time zone offset as +hh:mm/-hh:mm");
    }
    if (oh > 23 || om > 59) {
        return nw_error_set(err, NW_ERR_INVALID, "time zone offset out of range");
    }
    t->offset_min = sign * (oh * 60 + om);
    return NW_OK;
}

static enum nw_err parse_time_of_day(const char **p, struct civil_time *t, struct nw_error *err)
{
    if (!take_digits(p, 2, &t->hour) || !take_char(p, ':') || !take_digits(p, 2, &t->min) ||
        !take_char(p, ':') || !take_digits(p, 2, &t->sec)) {
        return nw_error_set(err, NW_ERR_INVALID, "expected a time as HH:MM:SS");
    }
    if (t->hour > 23) {
        return nw_error_set(err, NW_ERR_INVALID, "hour %d out of range", t->hour);
    }
    if (t->min > 59) {
        return nw_error_set(err, NW_ERR_INVALID, "minute %d out of range", t->min);
    }
    if (t->sec > 60) {
        return nw_error_set(err, NW_ERR_INVALID, "second %d out of range", t->sec);
    }
    enum nw_err rc = parse_fraction(p, t, err);
    if (rc == NW_OK) {
        rc = parse_offset(p, t, err);
    }
    return rc;
}

static int64_t civil_to_ms(const struct civil_time *t)
{
    int64_t days = nw_clock_days_from_civil(t->year, (unsigned)t->month, (unsigned)t->day);
    int64_t local = days * MS_PER_DAY + t->hour * MS_PER_HOUR + t->min * MS_PER_MIN +
                    t->sec * MS_PER_SEC + t->ms;
    return local - t->offset_min * MS_PER_MIN;
}

/* POSIX time has no 23:59:60: map it onto the last millisecond before midnight UTC. */
static enum nw_err clamp_leap_second(struct civil_time *t, struct nw_error *err)
{
    if (t->sec != 60) {
        return NW_OK;
    }
    int utc_min = ((t->hour * 60 + t->min - t->offset_min) % 1440 + 1440) % 1440;
    if (utc_min != 23 * 60 + 59) {
        return nw_error_set(err, NW_ERR_INVALID, "second 60 is only valid at 23:59:60 UTC");
    }
    t->sec = 59;
    t->ms = 999;
    return NW_OK;
}

enum nw_err nw_clock_parse_rfc3339(const char *s, int64_t *out_ms, struct nw_error *err)
{
    struct civil_time t = {0};
    const char *p = s;
    enum nw_err rc = parse_date(&p, &t, err);
    if (rc != NW_OK) {
        return rc;
    }
    if (!take_char(&p, 'T') && !take_char(&p, 't') && !take_char(&p, ' ')) {
        return nw_error_set(err, NW_ERR_INVALID, "expected 'T' between date and time");
    }
    rc = parse_time_of_day(&p, &t, err);
    if (rc == NW_OK) {
        rc = clamp_leap_second(&t, err);
    }
    if (rc != NW_OK) {
        return rc;
    }
    if (*p != '\0') {
        return nw_error_set(err, NW_ERR_INVALID, "unexpected characters after the time zone");
    }
    *out_ms = civil_to_ms(&t);
    return NW_OK;
}

/* ---- durations ---- */

struct unit {
    const char *name;
    int64_t ms;
};

/* In the only order they may appear. */
static const struct unit units[] = {
    {"d", MS_PER_DAY}, {"h", MS_PER_HOUR}, {"m", MS_PER_MIN}, {"s", MS_PER_SEC}, {"ms", 1},
};
#define N_UNITS (sizeof(units) / sizeof(units[0]))

static const int64_t pow10_table[10] = {
    1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000,
};

/* One "<int>[.<frac>]<unit>" component; *rank is the index of its unit. */
struct component {
    uint64_t whole;
    int64_t frac;
    int frac_digits;
    size_t rank;
};

static enum nw_err parse_number(const char **p, struct component *c, struct nw_error *err)
{
    if (!is_digit(**p)) {
        return nw_error_set(err, NW_ERR_INVALID, "expected a number");
    }
    c->whole = 0;
    for (; is_digit(**p); (*p)++) {
        if (c->whole > (UINT64_MAX - 9) / 10) {
            return nw_error_set(err, NW_ERR_INVALID, "number too large");
        }
        c->whole = c->whole * 10 + (uint64_t)(**p - '0');
    }
    c->frac = 0;
    c->frac_digits = 0;
    if (!take_char(p, '.')) {
        return NW_OK;
    }
    for (; is_digit(**p); (*p)++, c->frac_digits++) {
        if (c->frac_digits == 9) {
            return nw_error_set(err, NW_ERR_INVALID, "more than 9 fraction digits");
        }
        c->frac = c->frac * 10 + (**p - '0');
    }
    if (c->frac_digits == 0) {
        return nw_error_set(err, NW_ERR_INVALID, "expected digits after '.'");
    }
    return NW_OK;
}

static enum nw_err parse_unit(const char **p, struct component *c, struct nw_error *err)
{
    const char *start = *p;
    while ((**p >= 'a' && **p <= 'z') || (**p >= 'A' && **p <= 'Z')) {
        (*p)++;
    }
    size_t len = (size_t)(*p - start);
    if (len == 0) {
        return nw_error_set(err, NW_ERR_INVALID, "missing unit (use ms, s, m, h, d)");
    }
    for (size_t i = 0; i < N_UNITS; i++) {
        if (strlen(units[i].name) == len && memcmp(units[i].name, start, len) == 0) {
            c->rank = i;
            return NW_OK;
        }
    }
    return nw_error_set(err, NW_ERR_INVALID, "unknown unit \"%.*s\" (use ms, s, m, h, d)",
                        len > 16 ? 16 : (int)len, start);
}

static enum nw_err component_ms(const struct component *c, int64_t *out, struct nw_error *err)
{
    int64_t unit = units[c->rank].ms;
    if (c->whole > (uint64_t)(INT64_MAX / unit)) {
        return nw_error_set(err, NW_ERR_INVALID, "duration too large");
    }
    /* frac < 10^9 and unit <= 8.64e7, so the product fits in int64. */
    int64_t scaled = c->frac * unit;
    if (scaled % pow10_table[c->frac_digits] != 0) {
        return nw_error_set(err, NW_ERR_INVALID, "not a whole number of milliseconds");
    }
    int64_t v = (int64_t)c->whole * unit;
    int64_t f = scaled / pow10_table[c->frac_digits];
    if (v > INT64_MAX - f) {
        return nw_error_set(err, NW_ERR_INVALID, "duration too large");
    }
    *out = v + f;
    return NW_OK;
}

enum nw_err nw_clock_parse_duration_ms(const char *s, int64_t *out_ms, struct nw_error *err)
{
    if (strcmp(s, "0") == 0) {
        *out_ms = 0;
        return NW_OK;
    }
    if (*s == '\0') {
        return nw_error_set(err, NW_ERR_INVALID, "empty duration");
    }
    const char *p = s;
    int64_t total = 0;
    size_t next_rank = 0;
    while (*p != '\0') {
        struct component c = {0};
        int64_t ms = 0;
        enum nw_err rc = parse_number(&p, &c, err);
        if (rc == NW_OK) {
            rc = parse_unit(&p, &c, err);
        }
        if (rc == NW_OK && c.rank < next_rank) {
            rc = nw_error_set(err, NW_ERR_INVALID, "units must be in order d, h, m, s, ms");
        }
        if (rc == NW_OK) {
            rc = component_ms(&c, &ms, err);
        }
        if (rc != NW_OK) {
            return rc;
        }
        if (total > INT64_MAX - ms) {
            return nw_error_set(err, NW_ERR_INVALID, "duration too large");
        }
        total += ms;
        next_rank = c.rank + 1;
    }
    *out_ms = total;
    return NW_OK;
}

char *nw_clock_format_duration(int64_t ms, char out[NW_CLOCK_DURATION_SIZE])
{
    /* Work on the magnitude as unsigned so INT64_MIN has one too. */
    uint64_t rest = ms < 0 ? 0 - (uint64_t)ms : (uint64_t)ms;
    size_t len = 0;
    if (ms < 0) {
        out[len++] = '-';
    }
    if (rest == 0) {
        snprintf(out + len, NW_CLOCK_DURATION_SIZE - len, "0s");
        return out;
    }
    out[len] = '\0';
    for (size_t i = 0; i < N_UNITS && rest > 0; i++) {
        uint64_t n = rest / (uint64_t)units[i].ms;
        rest %= (uint64_t)units[i].ms;
        if (n > 0) {
            int w = snprintf(out + len, NW_CLOCK_DURATION_SIZE - len, "%llu%s",
                             (unsigned long long)n, units[i].name);
            len += (size_t)w;
        }
    }
    return out;
}

/* ---- the CLI's --from/--to ---- */

static enum nw_err parse_relative(const char *s, int64_t now_ms, int64_t *out_ms,
                                  struct nw_error *err)
{
    int64_t d;
    enum nw_err rc = nw_clock_parse_duration_ms(s + 1, &d, err);
    if (rc != NW_OK) {
        return rc;
    }
    if (s[0] == '-' ? now_ms < INT64_MIN + d : now_ms > INT64_MAX - d) {
        return nw_error_set(err, NW_ERR_INVALID, "relative time out of range");
    }
    *out_ms = s[0] == '-' ? now_ms - d : now_ms + d;
    return NW_OK;
}

enum nw_err nw_clock_parse_time(const char *s, int64_t now_ms, int64_t *out_ms,
                                struct nw_error *err)
{
    if (strcmp(s, "now") == 0) {
        *out_ms = now_ms;
        return NW_OK;
    }
    if (s[0] == '-' || s[0] == '+') {
        return parse_relative(s, now_ms, out_ms, err);
    }
    if (strlen(s) == 10) {
        struct civil_time t = {0};
        const char *p = s;
        enum nw_err rc = parse_date(&p, &t, err);
        if (rc == NW_OK) {
            *out_ms = civil_to_ms(&t);
        }
        return rc;
    }
    if (!is_digit(s[0])) {
        return nw_error_set(err, NW_ERR_INVALID,
                            "expected RFC 3339 (2026-11-22T02:33:00Z), a date, \"now\" or a "
                            "relative time like -7d");
    }
    return nw_clock_parse_rfc3339(s, out_ms, err);
}

/*
 * store.c - store URLs, options, dispatch to the backends, and what every
 * backend does the same way: the dead-letter file, backoff with jitter,
 * the "no request before the server's Retry-After" gate, and counters.
 *
 * Secrets: the password parsed from an influx:// URL lives only in the
 * parsed struct until the backend has handed it to libcurl; it is wiped
 * then. Error messages built here quote the scheme, host, port and query
 * keys, never the userinfo part of a URL.
 */
#include "store_impl.h"

#include <needlewatch/clock.h>
#include <needlewatch/log.h>

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_SQLITE_PATH "needlewatch.db"
#define DEFAULT_PORT 8086u
#define DEAD_LETTER_RECORD_MAX (64 * 1024)

/* --- URL parsing ------------------------------------------------------ */

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Decodes %XX escapes of src[0..len) into out; false on a bad escape, %00,
 * or when it does not fit. */
static bool pct_decode(const char *src, size_t len, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        if (c == '%') {
            if (i + 2 >= len) {
                return false;
            }
            int hi = hexval(src[i + 1]), lo = hexval(src[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                return false;
            }
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (n + 1 >= cap) {
            return false;
        }
        out[n++] = c;
    }
    out[n] = '\0';
    return true;
}

static bool host_char(char c, bool bracketed)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
        return true;
    }
    return c == '.' || c == '-' || (bracketed && (c == ':' || c == '%'));
}

static enum nw_err parse_port(const char *p, size_t len, unsigned *out, struct nw_error *err)
{
    unsigned v = 0;
    if (len == 0 || len > 5) {
        return nw_error_set(err, NW_ERR_CONFIG, "store URL: port must be 1-65535");
    }
    for (size_t i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return nw_error_set(err, NW_ERR_CONFIG, "store URL: port must be a number");
        }
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    if (v == 0 || v > 65535) {
        return nw_error_set(err, NW_ERR_CONFIG, "store URL: port must be 1-65535");
    }
    *out = v;
    return NW_OK;
}

/* host[:port] or [v6]:port, a..b exclusive. */
static enum nw_err parse_hostport(const char *a, const char *b, struct nw_store_url *u,
                                  struct nw_error *err)
{
    const char *h = a, *he, *colon;
    bool br = a < b && *a == '[';
    if (br) {
        he = memchr(a, ']', (size_t)(b - a));
        if (!he) {
            return nw_error_set(err, NW_ERR_CONFIG, "store URL: '[' without ']' in the host");
        }
        h = a + 1;
        colon = he + 1 < b && he[1] == ':' ? he + 1 : NULL;
        if (he + 1 < b && !colon) {
            return nw_error_set(err, NW_ERR_CONFIG, "store URL: text after ']' in the host");
        }
    } else {
        colon = memchr(a, ':', (size_t)(b - a));
        he = colon ? colon : b;
    }
    size_t hl = (size_t)(he - h);
    if (hl == 0 || hl >= sizeof(u->host)) {
        return nw_error_set(err, NW_ERR_CONFIG, "store URL: missing or too long host");
    }
    for (size_t i = 0; i < hl; i++) {
        if (!host_char(h[i], br)) {
            return nw_error_set(err, NW_ERR_CONFIG, "store URL: invalid character in the host");
        }
    }
    memcpy(u->host, h, hl);
    u->host[hl] = '\0';
    u->port = DEFAULT_PORT;
    return colon ? parse_port(colon + 1, (size_t)(b - colon - 1), &u->port, err) : NW_OK;
}

static enum nw_err parse_userinfo(const char *a, const char *at, struct nw_store_url *u,
                                  struct nw_error *err)
{
    if (u->scheme == NW_STORE_INFLUX2) {
        return nw_error_set(err, NW_ERR_CONFIG,
                            "store URL: influx2:// takes no user:password; set the token in "
                            "NEEDLEWATCH_INFLUX_TOKEN or token_file");
    }
    const char *colon = memchr(a, ':', (size_t)(at - a));
    const char *ue = colon ? colon : at;
    if (!pct_decode(a, (size_t)(ue - a), u->user, sizeof(u->user)) || !u->user[0] ||
        (colon &&
         !pct_decode(colon + 1, (size_t)(at - colon - 1), u->password, sizeof(u->password)))) {
        return nw_error_set(err, NW_ERR_CONFIG,
                            "store URL: malformed user:password part (not shown; escape "
                            "special characters as %%XX)");
    }
    return NW_OK;
}

/* One query parameter key=value of a..b. */
static enum nw_err parse_param(const char *a, const char *b, struct nw_store_url *u,
                               struct nw_error *err)
{
    const char *eq = memchr(a, '=', (size_t)(b - a));
    size_t kl = eq ? (size_t)(eq - a) : (size_t)(b - a);
    char *dst = NULL;
    size_t cap = 0;
    if (u->scheme == NW_STORE_INFLUX1 && kl == 2 && memcmp(a, "rp", 2) == 0) {
        dst = u->rp, cap = sizeof(u->rp);
    } else if (u->scheme == NW_STORE_INFLUX2 && kl == 3 && memcmp(a, "org", 3) == 0) {
        dst = u->org, cap = sizeof(u->org);
    } else if (u->scheme == NW_STORE_INFLUX2 && kl == 6 && memcmp(a, "bucket", 6) == 0) {
        dst = u->bucket, cap = sizeof(u->bucket);
    }
    if (!dst) {
        return nw_error_set(err, NW_ERR_CONFIG, "store URL: unknown parameter \"%.*s\" (%s)",
                            (int)(kl > 32 ? 32 : kl), a,
                            u->scheme == NW_STORE_INFLUX1 ? "influx:// knows rp"
                                                          : "influx2:// knows org and bucket");
    }
    if (!eq || !pct_decode(eq + 1, (size_t)(b - eq - 1), dst, cap) || !dst[0]) {
        return nw_error_set(err, NW_ERR_CONFIG, "store URL: parameter %.*s needs a value", (int)kl,
                            a);
    }
    return NW_OK;
}

static enum nw_err parse_query(const char *q, struct nw_store_url *u, struct nw_error *err)
{
    while (*q) {
        const char *amp = strchr(q, '&');
        const char *e = amp ? amp : q + strlen(q);
        if (e > q) {
            enum nw_err rc = parse_param(q, e, u, err);
            if (rc != NW_OK) {
                return rc;
            }
        }
        q = amp ? amp + 1 : e;
    }
    return NW_OK;
}

static void make_name(struct nw_store_url *u, const char *scheme)
{
    const char *lb = strchr(u->host, ':') ? "[" : "", *rb = lb[0] ? "]" : "";
    if (u->scheme == NW_STORE_INFLUX1) {
        snprintf(u->name, sizeof(u->name), "%s://%s%s%s:%u/%s%s%s", scheme, lb, u->host, rb,
                 u->port, u->db, u->rp[0] ? "?rp=" : "", u->rp);
    } else {
        snprintf(u->name, sizeof(u->name), "%s://%s%s%s:%u/?org=%s&bucket=%s", scheme, lb, u->host,
                 rb, u->port, u->org, u->bucket);
    }
}

static enum nw_err parse_path_v1(const char *p, const char *pe, struct nw_store_url *u,
                                 struct nw_error *err)
{
    if (p >= pe || *p != '/' || p + 1 == pe) {
        return nw_error_set(err, NW_ERR_CONFIG,
                            "store URL: influx:// needs the database: influx://host:port/DB");
    }
    if (memchr(p + 1, '/', (size_t)(pe - p - 1)) ||
        !pct_decode(p + 1, (size_t)(pe - p - 1), u->db, sizeof(u->db))) {
        return nw_error_set(err, NW_ERR_CONFIG, "store URL: malformed or too long database name");
    }
    return NW_OK;
}

static enum nw_err parse_influx(const char *rest, const char *scheme, struct nw_store_url *u,
                                struct nw_error *err)
{
    if (strncmp(rest, "//", 2) != 0) {
        return nw_error_set(err, NW_ERR_CONFIG, "store URL: expected %s://host:port/...", scheme);
    }
    const char *a = rest + 2;
    const char *ae = a + strcspn(a, "/?");
    const char *at = NULL;
    for (const char *c = a; c < ae; c++) {
        at = *c == '@' ? c : at; /* the last '@': a password may hold an escaped one */
    }
    enum nw_err rc = at ? parse_userinfo(a, at, u, err) : NW_OK;
    if (rc == NW_OK) {
        rc = parse_hostport(at ? at + 1 : a, ae, u, err);
    }
    const char *q = strchr(ae, '?');
    const char *pe = q ? q : ae + strlen(ae);
    if (rc == NW_OK && u->scheme == NW_STORE_INFLUX1) {
        rc = parse_path_v1(ae, pe, u, err);
    } else if (rc == NW_OK && pe > ae && !(pe == ae + 1 && *ae == '/')) {
        rc = nw_error_set(err, NW_ERR_CONFIG,
                          "store URL: influx2:// has no path: influx2://host:port/?org=O&bucket=B");
    }
    if (rc == NW_OK && q) {
        rc = parse_query(q + 1, u, err);
    }
    if (rc == NW_OK && u->scheme == NW_STORE_INFLUX2 && (!u->org[0] || !u->bucket[0])) {
        rc = nw_error_set(err, NW_ERR_CONFIG, "store URL: influx2:// needs ?org=O&bucket=B");
    }
    if (rc == NW_OK) {
        make_name(u, scheme);
    }
    return rc;
}

enum nw_err nw_store_url_parse(const char *url, struct nw_store_url *out, struct nw_error *err)
{
    static const struct {
        const char *prefix;
        enum nw_store_scheme scheme;
        bool tls;
    } schemes[] = {
        {"influx2s", NW_STORE_INFLUX2, true},
        {"influx2", NW_STORE_INFLUX2, false},
        {"influxs", NW_STORE_INFLUX1, true},
        {"influx", NW_STORE_INFLUX1, false},
    };
    if (!url || !out) {
        return nw_error_set(err, NW_ERR_INVAL, "store URL: NULL argument");
    }
    memset(out, 0, sizeof(*out));
    if (strlen(url) >= NW_STORE_URL_MAX) {
        return nw_error_set(err, NW_ERR_CONFIG, "store URL: longer than %d bytes",
                            NW_STORE_URL_MAX - 1);
    }
    if (strncmp(url, "sqlite:", 7) == 0) {
        out->scheme = NW_STORE_SQLITE;
        snprintf(out->path, sizeof(out->path), "%s", url[7] ? url + 7 : DEFAULT_SQLITE_PATH);
        snprintf(out->name, sizeof(out->name), "sqlite:%.*s", (int)sizeof(out->name) - 8,
                 out->path);
        return NW_OK;
    }
    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
        size_t pl = strlen(schemes[i].prefix);
        if (strncmp(url, schemes[i].prefix, pl) == 0 && url[pl] == ':') {
            out->scheme = schemes[i].scheme;
            out->tls = schemes[i].tls;
            enum nw_err rc = parse_influx(url + pl + 1, schemes[i].prefix, out, err);
            if (rc != NW_OK) {
                nw_store_url_wipe(out);
            }
            return rc;
        }
    }
    return nw_error_set(err, NW_ERR_CONFIG,
                        "store URL: unknown scheme (use sqlite:PATH, influx://host:port/DB, "
                        "influx2://host:port/?org=O&bucket=B, influxs://, influx2s://)");
}

void nw_store_url_wipe(struct nw_store_url *u)
{
    if (u) {
        explicit_bzero(u->user, sizeof(u->user));
        explicit_bzero(u->password, sizeof(u->password));
    }
}

/* --- options ---------------------------------------------------------- */

#define DEF(field, value)                                                                          \
    do {                                                                                           \
        if (!o->field) {                                                                           \
            o->field = (value);                                                                    \
        }                                                                                          \
    } while (0)

static enum nw_err resolve_options(const struct nw_store_options *in, struct nw_store_options *o,
                                   struct nw_error *err)
{
    *o = in ? *in : (struct nw_store_options){0};
    DEF(connect_timeout_ms, 5000);
    DEF(timeout_ms, 30000);
    DEF(write_budget_ms, 60000);
    DEF(max_requests, 64);
    DEF(max_batch_bytes, (size_t)1 << 20);
    DEF(max_batch_points, 5000);
    DEF(dead_letter_max_bytes, (uint64_t)64 << 20);
    DEF(backoff_min_ms, 500);
    DEF(backoff_max_ms, 60000);
    DEF(retry_after_max_ms, 600000);
    DEF(blind_dead_letter_max, 8);
    DEF(sqlite_busy_timeout_ms, 5000);
    DEF(sqlite_cache_kib, 2048);
    if (o->sqlite_cache_kib < 256 || o->sqlite_cache_kib > ((uint64_t)1 << 20)) {
        return nw_error_set(err, NW_ERR_CONFIG,
                            "store options: sqlite_cache_kib must be 256..1048576");
    }
    if (o->connect_timeout_ms < 0 || o->timeout_ms < 0 || o->write_budget_ms < 0 ||
        o->backoff_min_ms < 0 || o->backoff_max_ms < o->backoff_min_ms ||
        o->retry_after_max_ms < 0 || o->sqlite_busy_timeout_ms < 0) {
        return nw_error_set(err, NW_ERR_CONFIG, "store options: negative or inverted durations");
    }
    if (o->max_batch_bytes < 16384 || o->max_batch_bytes > ((size_t)64 << 20)) {
        return nw_error_set(err, NW_ERR_CONFIG,
                            "store options: max_batch_bytes must be 16 KiB..64 MiB");
    }
    if (o->max_batch_points > 1000000 || o->max_requests < 8) {
        return nw_error_set(
            err, NW_ERR_CONFIG,
            "store options: max_batch_points must be 1..1000000, max_requests >= 8");
    }
    return NW_OK;
}

/* --- open / write / close --------------------------------------------- */

static enum nw_err open_dead_letter(struct nw_store *s, const char *path, struct nw_error *err)
{
    s->dl_fd = -1;
    if (!path || !path[0]) {
        return NW_OK;
    }
    s->dl_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    struct stat st;
    if (s->dl_fd < 0 || fstat(s->dl_fd, &st) != 0) {
        return nw_error_set(err, NW_ERR_IO, "dead-letter file %s: %s", path, strerror(errno));
    }
    s->dl_bytes = (uint64_t)st.st_size;
    s->dl_cap = DEAD_LETTER_RECORD_MAX;
    s->dl_buf = malloc(s->dl_cap);
    return s->dl_buf ? NW_OK : nw_error_set(err, NW_ERR_NOMEM, "dead-letter buffer");
}

static void seed_rng(struct nw_store *s)
{
    s->rng = s->opt.jitter_seed;
    if (!s->rng) {
        s->rng = (uint64_t)nw_clock_mono_ns() ^ ((uint64_t)(uintptr_t)s << 17) ^
                 (uint64_t)getpid() << 32;
    }
    s->rng |= 1; /* xorshift needs a non-zero state */
}

enum nw_err nw_store_open(const char *url, const struct nw_store_options *opt,
                          struct nw_store **out, struct nw_error *err)
{
    if (!out) {
        return nw_error_set(err, NW_ERR_INVAL, "nw_store_open: NULL out");
    }
    *out = NULL;
    struct nw_store *s = calloc(1, sizeof(*s));
    if (!s) {
        return nw_error_set(err, NW_ERR_NOMEM, "store: out of memory");
    }
    s->dl_fd = -1;
    pthread_mutex_init(&s->stats_mu, NULL);
    enum nw_err rc = nw_store_url_parse(url, &s->url, err);
    if (rc == NW_OK) {
        rc = resolve_options(opt, &s->opt, err);
    }
    if (rc == NW_OK) {
        rc = open_dead_letter(s, s->opt.dead_letter_path, err);
    }
    if (rc == NW_OK) {
        seed_rng(s);
        rc = s->url.scheme == NW_STORE_SQLITE ? nw_store_sqlite_open(s, err)
                                              : nw_store_influx_open(s, err);
    }
    nw_store_url_wipe(&s->url); /* the backend has what it needs */
    /* Options' strings are only borrowed for open: never keep them. */
    s->opt.dead_letter_path = s->opt.user_agent = s->opt.credentials_file = NULL;
    s->opt.token_file = s->opt.ca_file = NULL;
    if (rc != NW_OK) {
        nw_store_close(&s);
        return rc;
    }
    *out = s;
    return NW_OK;
}

static void finish_outcome(struct nw_store *s, size_t n, struct nw_store_outcome *out)
{
    if (out->code == NW_OK && out->done == n) {
        nw_store_backoff_reset(s);
        out->retry_after_ms = 0;
        out->msg[0] = '\0';
        return;
    }
    if (out->code == NW_OK) { /* a backend must never report OK with points left */
        out->code = NW_ERR_RETRY;
    }
    int64_t delay = nw_store_backoff_next(s);
    if (out->code == NW_ERR_AUTH || out->code == NW_ERR_NOT_FOUND || out->code == NW_ERR_PROTOCOL ||
        out->code == NW_ERR_CORRUPT || out->code == NW_ERR_CONFIG) {
        delay = s->opt.backoff_max_ms; /* configuration: retry slowly */
    }
    if (out->retry_after_ms <= 0) {
        out->retry_after_ms = delay;
    }
    s->not_before_mono_ms = nw_clock_mono_ms() + out->retry_after_ms;
}

/* An array of points: one pointer per point, allocated per call (tools and
 * tests; the collector's writer calls nw_store_write_ptrs). */
enum nw_err nw_store_write(struct nw_store *s, const struct nw_point *pts, size_t n,
                           struct nw_store_outcome *out)
{
    const struct nw_point **ptrs = n ? malloc(n * sizeof(*ptrs)) : NULL;
    if (n && !ptrs && out) {
        memset(out, 0, sizeof(*out));
        out->code = NW_ERR_NOMEM;
        snprintf(out->msg, sizeof(out->msg), "nw_store_write: out of memory");
        return out->code;
    }
    for (size_t i = 0; pts && i < n; i++) {
        ptrs[i] = &pts[i];
    }
    enum nw_err rc = nw_store_write_ptrs(s, pts ? ptrs : NULL, n, out);
    free(ptrs);
    return rc;
}

enum nw_err nw_store_write_ptrs(struct nw_store *s, const struct nw_point *const *pts, size_t n,
                                struct nw_store_outcome *out)
{
    if (!out) {
        return NW_ERR_INVAL;
    }
    memset(out, 0, sizeof(*out));
    if (!s || (!pts && n)) {
        out->code = NW_ERR_INVAL;
        snprintf(out->msg, sizeof(out->msg), "nw_store_write: NULL argument");
        return out->code;
    }
    int64_t wait = s->not_before_mono_ms - nw_clock_mono_ms();
    if (n > 0 && wait > 0) {
        out->code = NW_ERR_RETRY;
        out->retry_after_ms = wait;
        snprintf(out->msg, sizeof(out->msg),
                 "%.160s: no request for another %" PRId64 " ms (backoff)", s->url.name, wait);
        return out->code;
    }
    if (n > 0) {
        s->ops->write(s, pts, n, out);
    }
    finish_outcome(s, n, out);
    pthread_mutex_lock(&s->stats_mu);
    s->stats.writes++;
    s->stats.writes_failed += out->code != NW_OK;
    s->stats.points_stored += out->stored;
    s->stats.points_dead_lettered += out->dead_lettered;
    pthread_mutex_unlock(&s->stats_mu);
    return out->code;
}

const char *nw_store_name(const struct nw_store *s)
{
    return s ? s->url.name : "(none)";
}

enum nw_store_scheme nw_store_scheme(const struct nw_store *s)
{
    return s->url.scheme;
}

void nw_store_stats(struct nw_store *s, struct nw_store_stats *out)
{
    pthread_mutex_lock(&s->stats_mu);
    *out = s->stats;
    pthread_mutex_unlock(&s->stats_mu);
}

const char *nw_store_status_class_name(unsigned i)
{
    static const char *const names[NW_STORE_STATUS_CLASSES] = {"2xx", "400", "401", "403", "404",
                                                               "413", "429", "503", "5xx", "other"};
    return i < NW_STORE_STATUS_CLASSES ? names[i] : "?";
}

void nw_store_close(struct nw_store **sp)
{
    if (!sp || !*sp) {
        return;
    }
    struct nw_store *s = *sp;
    if (s->ops) {
        s->ops->close(s);
    }
    if (s->dl_fd >= 0) {
        fsync(s->dl_fd);
        close(s->dl_fd);
    }
    free(s->dl_buf);
    nw_store_url_wipe(&s->url);
    pthread_mutex_destroy(&s->stats_mu);
    free(s);
    *sp = NULL;
}

/* --- counters --------------------------------------------------------- */

static unsigned status_class(int status)
{
    static const int exact[] = {400, 401, 403, 404, 413, 429, 503};
    if (status >= 200 && status < 300) {
        return 0;
    }
    for (unsigned i = 0; i < sizeof(exact) / sizeof(exact[0]); i++) {
        if (status == exact[i]) {
            return i + 1;
        }
    }
    return status >= 500 && status < 600 ? 8 : 9;
}

static void count_latency(struct nw_store *s, uint64_t bytes, uint64_t latency_us)
{
    s->stats.requests++;
    s->stats.bytes_sent += bytes;
    s->stats.latency_sum_us += latency_us;
    if (latency_us > s->stats.latency_max_us) {
        s->stats.latency_max_us = latency_us;
    }
}

void nw_store_count_request(struct nw_store *s, int http_status, uint64_t bytes,
                            uint64_t latency_us)
{
    pthread_mutex_lock(&s->stats_mu);
    count_latency(s, bytes, latency_us);
    if (http_status > 0) {
        s->stats.http[status_class(http_status)]++;
    }
    pthread_mutex_unlock(&s->stats_mu);
}

void nw_store_count_transport(struct nw_store *s, bool timeout, uint64_t bytes, uint64_t latency_us)
{
    pthread_mutex_lock(&s->stats_mu);
    count_latency(s, bytes, latency_us);
    if (timeout) {
        s->stats.timeouts++;
    } else {
        s->stats.transport_errors++;
    }
    pthread_mutex_unlock(&s->stats_mu);
}

/* --- backoff ---------------------------------------------------------- */

static uint64_t next_random(struct nw_store *s)
{
    /* xorshift64*: jitter only needs to de-synchronise collectors. */
    s->rng ^= s->rng >> 12;
    s->rng ^= s->rng << 25;
    s->rng ^= s->rng >> 27;
    return s->rng * 0x2545F4914F6CDD1DULL;
}

int64_t nw_store_backoff_next(struct nw_store *s)
{
    int64_t d = s->opt.backoff_min_ms;
    for (unsigned i = 0; i < s->failures && d < s->opt.backoff_max_ms; i++) {
        d *= 2;
    }
    if (d > s->opt.backoff_max_ms) {
        d = s->opt.backoff_max_ms;
    }
    if (s->failures < 64) {
        s->failures++;
    }
    /* Equal jitter: never less than half, so a pause is still a pause. */
    int64_t half = d / 2;
    return d - half + (int64_t)(next_random(s) % (uint64_t)(half + 1));
}

void nw_store_backoff_reset(struct nw_store *s)
{
    s->failures = 0;
    s->not_before_mono_ms = 0;
}

int64_t nw_store_parse_retry_after(const char *v, int64_t now_ms)
{
    while (v && (*v == ' ' || *v == '\t')) {
        v++;
    }
    if (!v || !*v) {
        return -1;
    }
    if (*v >= '0' && *v <= '9') {
        char *end;
        errno = 0;
        unsigned long long secs = strtoull(v, &end, 10);
        while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n') {
            end++;
        }
        if (*end || errno) {
            return -1;
        }
        return secs > (unsigned long long)(INT64_MAX / 1000) ? INT64_MAX : (int64_t)secs * 1000;
    }
    /* An HTTP-date in any of the three forms RFC 9110 allows. */
    time_t t = curl_getdate(v, NULL);
    if (t == (time_t)-1) {
        return -1;
    }
    int64_t ms = (int64_t)t * 1000 - now_ms;
    return ms > 0 ? ms : 0;
}

/* --- JSON ------------------------------------------------------------- */

size_t nw_store_json_escape(char *dst, size_t at, size_t cap, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        size_t el = 1;
        esc[0] = (char)c;
        if (c == '"' || c == '\\') {
            esc[0] = '\\', esc[1] = (char)c, el = 2;
        } else if (c < 0x20 || c == 0x7f) {
            el = (size_t)snprintf(esc, sizeof(esc), "\\u%04x", c);
        }
        if (at + el >= cap) {
            return (size_t)-1;
        }
        memcpy(dst + at, esc, el);
        at += el;
    }
    dst[at] = '\0';
    return at;
}

static size_t put_utf8(char *out, unsigned long cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | cp >> 12);
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | cp >> 18);
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

static bool hex4(const char *p, const char *end, unsigned long *out)
{
    unsigned long v = 0;
    for (int i = 0; i < 4; i++) {
        int h = p + i < end ? hexval(p[i]) : -1;
        if (h < 0) {
            return false;
        }
        v = v * 16 + (unsigned long)h;
    }
    *out = v;
    return true;
}

/* Decodes the JSON string at p (just after its opening quote). */
static bool json_decode(const char *p, const char *end, char *out, size_t cap)
{
    static const char simple_in[] = "\"\\/bfnrt", simple_out[] = "\"\\/\b\f\n\r\t";
    size_t n = 0;
    while (p < end && *p != '"' && n + 5 < cap) {
        if (*p != '\\') {
            out[n++] = *p++;
            continue;
        }
        if (++p >= end) {
            return false;
        }
        const char *k = memchr(simple_in, *p, sizeof(simple_in) - 1);
        unsigned long cp;
        if (k) {
            out[n++] = simple_out[k - simple_in];
            p++;
            continue;
        }
        if (*p != 'u' || !hex4(p + 1, end, &cp)) {
            return false;
        }
        p += 5;
        unsigned long lo;
        if (cp >= 0xd800 && cp < 0xdc00 && p + 1 < end && p[0] == '\\' && p[1] == 'u' &&
            hex4(p + 2, end, &lo) && lo >= 0xdc00 && lo < 0xe000) {
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            p += 6;
        }
        n += put_utf8(out + n, cp);
    }
    out[n] = '\0';
    return true; /* a value cut at cap is still useful for messages */
}

bool nw_store_json_get(const char *body, size_t len, const char *const *keys, char *out, size_t cap)
{
    const char *end = body + len;
    for (; *keys; keys++) {
        char pat[64];
        int pl = snprintf(pat, sizeof(pat), "\"%s\"", *keys);
        for (const char *p = body; pl > 0 && p + pl < end; p++) {
            if (memcmp(p, pat, (size_t)pl) != 0) {
                continue;
            }
            const char *v = p + pl;
            while (v < end && (*v == ' ' || *v == ':' || *v == '\t' || *v == '\n')) {
                v++;
            }
            if (v < end && *v == '"' && json_decode(v + 1, end, out, cap)) {
                return true;
            }
        }
    }
    return false;
}

/* --- dead letters ----------------------------------------------------- */

static size_t dead_letter_head(struct nw_store *s, const struct nw_point *p, char *b, size_t cap)
{
    char now[NW_CLOCK_RFC3339_SIZE];
    if (nw_clock_format_rfc3339(nw_clock_realtime_ms(), now) != NW_OK) {
        snprintf(now, sizeof(now), "?");
    }
    uint64_t seq = p->kind == NW_POINT_WINDOW  ? p->u.window.w.seq
                   : p->kind == NW_POINT_EVENT ? p->u.event.seq
                                               : 0;
    int n = snprintf(b, cap, "{\"at\":\"%s\",\"measurement\":\"%s\",\"device\":\"", now,
                     nw_point_measurement(p->kind));
    size_t at = nw_store_json_escape(b, (size_t)n, cap, p->device, strlen(p->device));
    at = at == (size_t)-1 ? 0 : at;
    n = snprintf(b + at, cap - at,
                 "\",\"epoch\":%" PRIu64 ",\"seq\":%" PRIu64 ",\"time_ms\":%" PRId64
                 ",\"store\":\"",
                 p->epoch, seq, nw_point_time_ms(p));
    at += (size_t)n;
    return nw_store_json_escape(b, at, cap, s->url.name, strlen(s->url.name));
}

static size_t dead_letter_record(struct nw_store *s, const struct nw_point *p, const char *reason,
                                 const char *line, size_t line_len)
{
    char *b = s->dl_buf;
    size_t cap = s->dl_cap - 8, at = dead_letter_head(s, p, b, cap);
    if (at != (size_t)-1 && at + 12 < cap) {
        memcpy(b + at, "\",\"reason\":\"", 12);
        at = nw_store_json_escape(b, at + 12, cap, reason, strlen(reason));
    }
    if (line && at != (size_t)-1 && at + 10 < cap) {
        memcpy(b + at, "\",\"line\":\"", 10);
        at = nw_store_json_escape(b, at + 10, cap, line, line_len);
    }
    if (at == (size_t)-1) {
        return 0;
    }
    memcpy(b + at, "\"}\n", 3);
    return at + 3;
}

enum nw_err nw_store_dead_letter(struct nw_store *s, const struct nw_point *p, const char *reason,
                                 const char *line, size_t line_len, struct nw_error *err)
{
    nw_log(NW_LOG_WARN, "store", "dead-lettered %s device=%s time_ms=%" PRId64 ": %s",
           nw_point_measurement(p->kind), p->device, nw_point_time_ms(p), reason);
    if (s->dl_fd < 0) {
        return NW_OK; /* no file configured: the log line and the counter are the record */
    }
    size_t len = dead_letter_record(s, p, reason, line, line_len);
    if (len == 0) {
        return nw_error_set(err, NW_ERR_IO, "dead-letter record too large");
    }
    if (s->dl_bytes + len > s->opt.dead_letter_max_bytes) {
        return nw_error_set(err, NW_ERR_FULL,
                            "dead-letter file is full (%" PRIu64 " bytes): refused points kept",
                            s->dl_bytes);
    }
    ssize_t w = write(s->dl_fd, s->dl_buf, len);
    if (w != (ssize_t)len) {
        if (w > 0) { /* a torn record: end it so the next one starts on its own line */
            (void)!write(s->dl_fd, "\n", 1);
        }
        return nw_error_set(err, NW_ERR_IO, "dead-letter file: %s",
                            w < 0 ? strerror(errno) : "short write");
    }
    s->dl_bytes += len;
    s->dl_dirty = true;
    return NW_OK;
}

enum nw_err nw_store_dead_letter_sync(struct nw_store *s, struct nw_error *err)
{
    if (s->dl_fd < 0 || !s->dl_dirty) {
        return NW_OK;
    }
    if (fsync(s->dl_fd) != 0) {
        return nw_error_set(err, NW_ERR_IO, "dead-letter file fsync: %s", strerror(errno));
    }
    s->dl_dirty = false;
    return NW_OK;
}

/*
 * notify.c - the alert fan-out thread (see notify.h for the contract).
 *
 * One loop, one zmq_poll: the PULL socket from the workers and the sockets
 * libcurl asks us to watch (CURLMOPT_SOCKETFUNCTION) are polled together,
 * with a timeout that is the smallest of the poll tick, libcurl's timer
 * (CURLMOPT_TIMERFUNCTION) and the next retry. libcurl only ever runs from
 * curl_multi_socket_action(), which does not block (the resolver is
 * threaded, connects and TLS are non-blocking), so an alert pushed by a
 * worker is taken off the socket within one tick whatever the webhook does.
 *
 * The webhook queue is a ring of struct nw_alert with room for the bound
 * plus the one on the wire, allocated once. Only its head is ever sent, one
 * request at a time: that is what keeps the order when a request has to be
 * retried. The JSON is made from the head when its request starts, into a
 * buffer that lives as long as the notifier (libcurl reads the body from
 * there, CURLOPT_POSTFIELDS does not copy).
 *
 * Backoff belongs to the endpoint, not to a notification: after a failure
 * nothing is sent before retry_at, even when the failed notification is
 * evicted by an overflow in the meantime.
 */
#include "notify.h"

#include "store_impl.h"

#include "alert_json.h"
#include "metrics.h"
#include "pipeline.h"

#include <needlewatch/clock.h>
#include <needlewatch/codec.h>
#include <needlewatch/log.h>
#include <needlewatch/msg.h>

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <zmq.h>

#define DEFAULT_QUEUE_MAX 10000
#define QUEUE_MAX_LIMIT 1000000
#define DEFAULT_TIMEOUT_MS 5000
#define DEFAULT_BACKOFF_MIN_MS 500
#define DEFAULT_BACKOFF_MAX_MS 60000
#define RETRY_AFTER_MAX_MS (10 * 60 * 1000)
#define TICK_MS 100
#define FLUSH_MS 2000
#define DRAIN_BATCH 256 /* messages taken per loop turn before libcurl runs again */
#define MAX_CURL_SOCKS 8
#define ANSWER_KEEP 160 /* bytes of an answer body kept for a log line */
#define LOG_INTERVAL_MS 60000
#define PB_MAX 4096 /* an encoded Alert is < 700 bytes */

/* Reasons a notification is dropped for good (logged once per reason). */
enum drop_reason {
    DROP_400,
    DROP_401,
    DROP_403,
    DROP_404,
    DROP_413,
    DROP_422,
    DROP_4XX,
    DROP_3XX,
    DROP_OTHER,
    DROP_FORMAT,
    DROP__COUNT
};
static const char *const drop_words[DROP__COUNT] = {
    "HTTP 400", "HTTP 401", "HTTP 403", "HTTP 404",   "HTTP 413",
    "HTTP 422", "HTTP 4xx", "HTTP 3xx", "HTTP other", "unformattable",
};
static const char *const overflow_words[] = {"queue full"};
static const char *const input_words[] = {"bad size", "multipart", "not encodable"};

struct curl_sock {
    curl_socket_t fd;
    int what; /* CURL_POLL_IN, _OUT or _INOUT */
};

struct notify {
    char *endpoint, *pub_endpoint, *url;
    char name[160]; /* scheme://host:port of the webhook, for logs */
    size_t queue_max;
    int timeout_ms, backoff_min_ms, backoff_max_ms;

    struct nw_codec *codec;
    void *pull, *pub;
    uint8_t pb[PB_MAX];

    /* webhook */
    CURLM *multi;
    CURL *easy;
    struct curl_slist *headers;
    struct nw_alert *ring; /* queue_max + 1 slots */
    size_t head, len;
    bool inflight; /* the head is on the wire */
    char body[ALERT_JSON_MAX];
    char answer[ANSWER_KEEP + 1];
    size_t answer_len;
    int64_t retry_after_ms; /* of the answer in progress; -1 none */
    char errbuf[CURL_ERROR_SIZE];
    struct curl_sock socks[MAX_CURL_SOCKS];
    int nsocks;
    int64_t curl_due; /* mono ms libcurl wants to be called at; -1 none */
    int64_t retry_at; /* mono ms: no request before */
    unsigned failures;
    uint64_t rng;
    bool down;
    int64_t down_since;

    struct nw_logonce *lo_drop, *lo_overflow, *lo_input;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

/* curl_global_init is not thread-safe before libcurl 7.84: once per process. */
static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static char *dup_nonempty(const char *s)
{
    return s && s[0] ? strdup(s) : NULL;
}

/* ---- queue ------------------------------------------------------------- */

static size_t slot(const struct notify *n, size_t i)
{
    return (n->head + i) % (n->queue_max + 1);
}

static void pop_head(struct notify *n)
{
    n->head = slot(n, 1);
    n->len--;
    CM_SET(webhook_queue_depth, n->len);
}

/* Drops the oldest waiting notification: the head, unless it is on the
 * wire (then the one after it). */
static void drop_oldest(struct notify *n)
{
    const struct nw_alert *old = &n->ring[slot(n, n->inflight ? 1 : 0)];
    nw_logonce_hit(n->lo_overflow, 0,
                   "%zu notifications waiting; dropped the oldest (alert %" PRIu64
                   " %s %s %s): is the webhook %s slow or down?",
                   n->queue_max, old->alert_id, old->rule, old->device_id,
                   nw_alert_state_name(old->state), n->name);
    CM_ADD(webhook_dropped_overflow, 1);
    if (n->inflight) {
        /* The head stays on the wire: it moves into the slot of the
         * dropped second one, and the ring starts one later. */
        n->ring[slot(n, 1)] = n->ring[n->head];
    }
    pop_head(n);
}

/* Queues a copy of *a; at the bound the oldest waiting one goes. */
static void enqueue(struct notify *n, const struct nw_alert *a)
{
    while (n->len - (n->inflight ? 1 : 0) >= n->queue_max) {
        drop_oldest(n);
    }
    n->ring[slot(n, n->len)] = *a;
    n->len++;
    CM_SET(webhook_queue_depth, n->len);
}

/* ---- libcurl callbacks -------------------------------------------------- */

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *ud, void *sockp)
{
    (void)easy, (void)sockp;
    struct notify *n = ud;
    int i = 0;
    while (i < n->nsocks && n->socks[i].fd != fd) {
        i++;
    }
    if (what == CURL_POLL_REMOVE) {
        if (i < n->nsocks) {
            n->socks[i] = n->socks[--n->nsocks];
        }
        return 0;
    }
    if (i == n->nsocks) {
        if (n->nsocks == MAX_CURL_SOCKS) {
            return -1; /* fails the transfer: retried like a connection error */
        }
        n->nsocks++;
    }
    n->socks[i].fd = fd;
    n->socks[i].what = what;
    return 0;
}

static int on_timer(CURLM *multi, long timeout_ms, void *ud)
{
    (void)multi;
    struct notify *n = ud;
    n->curl_due = timeout_ms < 0 ? -1 : nw_clock_mono_ms() + timeout_ms;
    return 0;
}

/* Keeps the start of the answer for a log line; reads and drops the rest so
 * the connection stays usable. */
static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    struct notify *n = ud;
    size_t len = size * nmemb, room = ANSWER_KEEP - n->answer_len;
    size_t take = len < room ? len : room;
    memcpy(n->answer + n->answer_len, data, take);
    n->answer_len += take;
    n->answer[n->answer_len] = '\0';
    return len;
}

/* Retry-After (delta-seconds or an HTTP-date, parsed as the store writers
 * do) in ms from now, capped; -1 if neither. */
static int64_t parse_retry_after(const char *v)
{
    int64_t ms = nw_store_parse_retry_after(v, nw_clock_realtime_ms());
    return ms > RETRY_AFTER_MAX_MS ? RETRY_AFTER_MAX_MS : ms;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
    struct notify *n = ud;
    size_t len = size * nmemb;
    static const char name[] = "retry-after:";
    size_t nl = sizeof(name) - 1;
    if (len > nl && len < 128 && strncasecmp(data, name, nl) == 0) {
        char v[128];
        memcpy(v, data + nl, len - nl);
        v[len - nl] = '\0';
        n->retry_after_ms = parse_retry_after(v);
    } else if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        n->retry_after_ms = -1; /* a new status line: forget an earlier answer's */
    }
    return len;
}

/* ---- construction ------------------------------------------------------- */

/* "scheme://host:port" of url into n->name; the path and query may hold a
 * secret and are never logged. */
static enum nw_err check_url(struct notify *n, struct nw_error *err)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL;
    enum nw_err rc = NW_OK;
    if (!u) {
        return nw_error_set(err, NW_ERR_NOMEM, "notify: out of memory");
    }
    if (curl_url_set(u, CURLUPART_URL, n->url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK) {
        rc = nw_error_set(err, NW_ERR_CONFIG,
                          "webhook: not a URL (want http(s)://host[:port]/path)");
    } else if (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0) {
        rc = nw_error_set(err, NW_ERR_CONFIG, "webhook: scheme \"%.16s\" is not http or https",
                          scheme);
    } else {
        snprintf(n->name, sizeof(n->name), "%s://%s:%s", scheme, host, port);
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return rc;
}

static enum nw_err webhook_new(struct notify *n, struct nw_error *err)
{
    enum nw_err rc = check_url(n, err);
    if (rc != NW_OK) {
        return rc;
    }
    pthread_once(&curl_once, curl_init_once);
    n->ring = calloc(n->queue_max + 1, sizeof(*n->ring));
    n->multi = curl_multi_init();
    n->easy = curl_easy_init();
    n->headers = curl_slist_append(NULL, "Content-Type: application/json");
    n->headers = n->headers ? curl_slist_append(n->headers, "Expect:") : NULL;
    if (!n->ring || !n->multi || !n->easy || !n->headers) {
        return nw_error_set(err, NW_ERR_NOMEM, "webhook: out of memory");
    }
    CURLMcode mc = curl_multi_setopt(n->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    mc |= curl_multi_setopt(n->multi, CURLMOPT_SOCKETDATA, n);
    mc |= curl_multi_setopt(n->multi, CURLMOPT_TIMERFUNCTION, on_timer);
    mc |= curl_multi_setopt(n->multi, CURLMOPT_TIMERDATA, n);
    mc |= curl_multi_setopt(n->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 1L);
    CURL *c = n->easy;
    CURLcode ec = curl_easy_setopt(c, CURLOPT_URL, n->url);
    ec |= curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    ec |= curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    ec |= curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    ec |= curl_easy_setopt(c, CURLOPT_HTTPHEADER, n->headers);
    ec |= curl_easy_setopt(c, CURLOPT_USERAGENT, "needlewatch/" NW_VERSION);
    ec |= curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)n->timeout_ms);
    ec |= curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)n->timeout_ms);
    ec |= curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    ec |= curl_easy_setopt(c, CURLOPT_ERRORBUFFER, n->errbuf);
    ec |= curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    ec |= curl_easy_setopt(c, CURLOPT_WRITEDATA, n);
    ec |= curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    ec |= curl_easy_setopt(c, CURLOPT_HEADERDATA, n);
    ec |= curl_easy_setopt(c, CURLOPT_POSTFIELDS, n->body);
    if (mc != CURLM_OK || ec != CURLE_OK) {
        return nw_error_set(err, NW_ERR_CONFIG, "webhook: libcurl refused an option (>= 7.85?)");
    }
    n->curl_due = -1;
    n->rng = (uint64_t)nw_clock_mono_ns() ^ ((uint64_t)getpid() << 32) ^ (uintptr_t)n;
    n->rng |= 1;
    CM_SET(webhook_up, 1);
    return NW_OK;
}

enum nw_err notify_new(const struct notify_options *opt, void *zctx, struct notify **out,
                       struct nw_error *out_err)
{
    if (!opt || !zctx || !out || !opt->endpoint || !opt->endpoint[0]) {
        return nw_error_set(out_err, NW_ERR_INVAL, "notify: no endpoint");
    }
    size_t qmax = opt->webhook_queue_max ? opt->webhook_queue_max : DEFAULT_QUEUE_MAX;
    int timeout = opt->webhook_timeout_ms ? opt->webhook_timeout_ms : DEFAULT_TIMEOUT_MS;
    int bmax = opt->backoff_max_ms ? opt->backoff_max_ms : DEFAULT_BACKOFF_MAX_MS;
    int bmin = opt->backoff_min_ms ? opt->backoff_min_ms : DEFAULT_BACKOFF_MIN_MS;
    if (bmin > bmax && !opt->backoff_min_ms) {
        bmin = bmax;
    }
    if (qmax > QUEUE_MAX_LIMIT || timeout < 0 || bmin < 0 || bmax < 0 || bmin > bmax) {
        return nw_error_set(out_err, NW_ERR_CONFIG,
                            "notify: webhook queue 1..%d, timeout >= 0, 0 <= backoff min <= max",
                            QUEUE_MAX_LIMIT);
    }
    struct notify *n = calloc(1, sizeof(*n));
    if (!n) {
        return nw_error_set(out_err, NW_ERR_NOMEM, "notify: out of memory");
    }
    n->queue_max = qmax;
    n->timeout_ms = timeout;
    n->backoff_min_ms = bmin;
    n->backoff_max_ms = bmax;
    n->endpoint = strdup(opt->endpoint);
    n->pub_endpoint = dup_nonempty(opt->pub_endpoint);
    n->url = dup_nonempty(opt->webhook_url);
    struct nw_limits lim = opt->limits;
    if (lim.max_payload == 0) {
        nw_limits_default(&lim);
    }
    n->codec = nw_codec_new(&lim);
    n->lo_drop = nw_logonce_new(NW_LOG_WARN, "notify", "webhook refused", "notifications",
                                drop_words, DROP__COUNT, LOG_INTERVAL_MS);
    n->lo_overflow = nw_logonce_new(NW_LOG_WARN, "notify", "webhook queue full", "notifications",
                                    overflow_words, 1, LOG_INTERVAL_MS);
    n->lo_input = nw_logonce_new(NW_LOG_WARN, "notify", "bad alert message", "messages",
                                 input_words, 3, LOG_INTERVAL_MS);
    enum nw_err rc = NW_OK;
    if (!n->endpoint || (opt->pub_endpoint && opt->pub_endpoint[0] && !n->pub_endpoint) ||
        (opt->webhook_url && opt->webhook_url[0] && !n->url) || !n->codec || !n->lo_drop ||
        !n->lo_overflow || !n->lo_input) {
        rc = nw_error_set(out_err, NW_ERR_NOMEM, "notify: out of memory");
    }
    if (rc == NW_OK && n->url) {
        rc = webhook_new(n, out_err);
    }
    if (rc == NW_OK && !(n->pull = cp_open(zctx, ZMQ_PULL, n->endpoint, true, out_err))) {
        rc = NW_ERR_CONFIG;
    }
    if (rc == NW_OK && n->pub_endpoint &&
        !(n->pub = cp_open(zctx, ZMQ_PUB, n->pub_endpoint, true, out_err))) {
        rc = NW_ERR_CONFIG;
    }
    if (rc != NW_OK) {
        notify_destroy(&n);
        return rc;
    }
    *out = n;
    return NW_OK;
}

void notify_destroy(struct notify **p)
{
    if (!p || !*p) {
        return;
    }
    struct notify *n = *p;
    if (n->multi && n->easy && n->inflight) {
        curl_multi_remove_handle(n->multi, n->easy);
    }
    if (n->easy) {
        curl_easy_cleanup(n->easy);
    }
    if (n->multi) {
        curl_multi_cleanup(n->multi);
    }
    curl_slist_free_all(n->headers);
    if (n->pull) {
        zmq_close(n->pull);
    }
    if (n->pub) {
        zmq_close(n->pub);
    }
    nw_codec_destroy(&n->codec);
    nw_logonce_destroy(&n->lo_drop);
    nw_logonce_destroy(&n->lo_overflow);
    nw_logonce_destroy(&n->lo_input);
    free(n->ring);
    free(n->endpoint);
    free(n->pub_endpoint);
    free(n->url);
    free(n);
    *p = NULL;
}

/* ---- PUB ----------------------------------------------------------------- */

static void publish(struct notify *n, const struct nw_alert *a)
{
    char topic[8 + 16 + NW_NAME_MAX + NW_DEVICE_ID_MAX + 4];
    size_t len = 0;
    struct nw_error err = {0};
    if (nw_codec_encode_alert(n->codec, a, n->pb, sizeof(n->pb), &len, &err) != NW_OK) {
        nw_logonce_hit(n->lo_input, 2, "alert %" PRIu64 " not published: %s", a->alert_id, err.msg);
        return;
    }
    int tl = snprintf(topic, sizeof(topic), "alert.%s.%s.%s", nw_severity_name(a->severity),
                      a->rule, a->device_id);
    tl = tl < 0 ? 0 : tl >= (int)sizeof(topic) ? (int)sizeof(topic) - 1 : tl;
    /* A PUB socket never blocks; DONTWAIT only guards against surprises. */
    if (zmq_send(n->pub, topic, (size_t)tl, ZMQ_SNDMORE | ZMQ_DONTWAIT) == tl &&
        zmq_send(n->pub, n->pb, len, ZMQ_DONTWAIT) == (int)len) {
        CM_ADD(alerts_published, 1);
    }
}

/* ---- webhook --------------------------------------------------------------- */

static uint64_t next_random(struct notify *n)
{
    /* xorshift64*: jitter only needs to de-synchronise collectors. */
    n->rng ^= n->rng >> 12;
    n->rng ^= n->rng << 25;
    n->rng ^= n->rng >> 27;
    return n->rng * 0x2545F4914F6CDD1DULL;
}

/* The next delay: exponential from backoff_min, capped, equal jitter (never
 * less than half, so a pause is still a pause). */
static int64_t backoff_next(struct notify *n)
{
    int64_t d = n->backoff_min_ms;
    for (unsigned i = 0; i < n->failures && d < n->backoff_max_ms; i++) {
        d *= 2;
    }
    if (d > n->backoff_max_ms) {
        d = n->backoff_max_ms;
    }
    if (n->failures < 64) {
        n->failures++;
    }
    int64_t half = d / 2;
    return d - half + (int64_t)(next_random(n) % (uint64_t)(half + 1));
}

static void mark_up(struct notify *n)
{
    n->failures = 0;
    n->retry_at = 0;
    if (n->down) {
        char d[NW_CLOCK_DURATION_SIZE];
        nw_log(NW_LOG_NOTICE, "notify", "webhook %s up again after %s; %zu notifications waiting",
               n->name, nw_clock_format_duration(nw_clock_mono_ms() - n->down_since, d), n->len);
        n->down = false;
        CM_SET(webhook_up, 1);
    }
}

static void retry_later(struct notify *n, const char *reason, bool honour_retry_after)
{
    /* Back off the wire, the head counts as waiting again: keep the bound
     * (it is the oldest, so it is the one that goes). */
    while (n->len > n->queue_max) {
        drop_oldest(n);
    }
    /* Retry-After says "not before": never sooner than backoff_min either,
     * so "Retry-After: 0" cannot make a tight loop. */
    int64_t delay = backoff_next(n);
    if (honour_retry_after && n->retry_after_ms >= 0) {
        delay = n->retry_after_ms > n->backoff_min_ms ? n->retry_after_ms : n->backoff_min_ms;
    }
    n->retry_at = nw_clock_mono_ms() + delay;
    CM_ADD(webhook_retries, 1);
    if (!n->down) {
        n->down = true;
        n->down_since = nw_clock_mono_ms();
        nw_log(NW_LOG_WARN, "notify",
               "webhook %s down: %s; retrying in order with backoff, %zu notifications waiting",
               n->name, reason, n->len);
        CM_SET(webhook_up, 0);
    }
}

static enum drop_reason drop_reason_of(long status)
{
    switch (status) {
    case 400:
        return DROP_400;
    case 401:
        return DROP_401;
    case 403:
        return DROP_403;
    case 404:
        return DROP_404;
    case 413:
        return DROP_413;
    case 422:
        return DROP_422;
    default:
        return status >= 400 && status < 500   ? DROP_4XX
               : status >= 300 && status < 400 ? DROP_3XX
                                               : DROP_OTHER;
    }
}

static void drop_head(struct notify *n, enum drop_reason why, const char *detail)
{
    const struct nw_alert *a = &n->ring[n->head];
    nw_logonce_hit(n->lo_drop, why, "alert %" PRIu64 " (%s %s %s) dropped: %s answered %s",
                   a->alert_id, a->rule, a->device_id, nw_alert_state_name(a->state), n->name,
                   detail);
    CM_ADD(webhook_failed_permanent, 1);
    pop_head(n);
}

/* The request of the head is over: delivered, dropped, or to be retried. */
static void finish(struct notify *n, CURLcode result)
{
    long status = 0;
    curl_multi_remove_handle(n->multi, n->easy);
    n->inflight = false;
    if (result != CURLE_OK) {
        char reason[CURL_ERROR_SIZE + 32];
        snprintf(reason, sizeof(reason), "%s",
                 n->errbuf[0] ? n->errbuf : curl_easy_strerror(result));
        retry_later(n, reason, false);
        return;
    }
    curl_easy_getinfo(n->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 200 && status < 300) {
        CM_ADD(webhook_delivered, 1);
        pop_head(n);
        mark_up(n);
    } else if (status == 408 || status == 429 || (status >= 500 && status < 600)) {
        char reason[64];
        snprintf(reason, sizeof(reason), "HTTP %ld", status);
        retry_later(n, reason, status == 429 || status == 503);
    } else {
        char detail[ANSWER_KEEP + 32];
        snprintf(detail, sizeof(detail), "HTTP %ld %s", status, n->answer);
        mark_up(n); /* it answers; the answer is about this notification */
        drop_head(n, drop_reason_of(status), detail);
    }
}

/* Starts the head's request when nothing is on the wire and the backoff allows. */
static void start_next(struct notify *n)
{
    while (n->multi && !n->inflight && n->len > 0 && nw_clock_mono_ms() >= n->retry_at) {
        size_t len = 0;
        if (alert_json_format(&n->ring[n->head], n->body, sizeof(n->body), &len) != NW_OK) {
            drop_head(n, DROP_FORMAT,
                      "nothing: its JSON does not fit"); /* cannot happen: ALERT_JSON_MAX */
            continue;
        }
        n->answer_len = 0;
        n->answer[0] = '\0';
        n->errbuf[0] = '\0';
        n->retry_after_ms = -1;
        curl_easy_setopt(n->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        if (curl_multi_add_handle(n->multi, n->easy) != CURLM_OK) {
            retry_later(n, "libcurl refused the request", false);
            return;
        }
        n->inflight = true;
    }
}

static void collect_done(struct notify *n)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(n->multi, &left))) {
        if (m->msg == CURLMSG_DONE && m->easy_handle == n->easy) {
            finish(n, m->data.result);
        }
    }
}

/* ---- the loop --------------------------------------------------------------- */

/* Takes up to max alerts off the PULL socket; how many were there. */
static int drain(struct notify *n, int max)
{
    int got = 0;
    for (; got < max; got++) {
        zmq_msg_t msg;
        zmq_msg_init(&msg);
        if (zmq_msg_recv(&msg, n->pull, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&msg);
            break;
        }
        bool more = zmq_msg_more(&msg);
        size_t size = zmq_msg_size(&msg);
        struct nw_alert a;
        if (size == sizeof(a) && !more) {
            memcpy(&a, zmq_msg_data(&msg), sizeof(a));
        }
        zmq_msg_close(&msg);
        if (more) {
            /* Not ours: skip the rest of the message. */
            int64_t rcvmore = 1;
            size_t sz = sizeof(rcvmore);
            while (rcvmore) {
                zmq_msg_init(&msg);
                int rc = zmq_msg_recv(&msg, n->pull, ZMQ_DONTWAIT);
                zmq_msg_close(&msg);
                if (rc < 0 || zmq_getsockopt(n->pull, ZMQ_RCVMORE, &rcvmore, &sz) != 0) {
                    break;
                }
            }
            nw_logonce_hit(n->lo_input, 1, "alert message in several frames: dropped");
            continue;
        }
        if (size != sizeof(a)) {
            nw_logonce_hit(n->lo_input, 0, "alert message of %zu bytes, want %zu: dropped", size,
                           sizeof(a));
            continue;
        }
        /* Bytes from another thread: make every string end and the bool be one. */
        a.device_id[sizeof(a.device_id) - 1] = a.rule[sizeof(a.rule) - 1] = '\0';
        a.message[sizeof(a.message) - 1] = a.clinic[sizeof(a.clinic) - 1] = '\0';
        a.model[sizeof(a.model) - 1] = '\0';
        unsigned char late;
        memcpy(&late, &a.late, 1);
        a.late = late != 0;
        if (n->pub) {
            publish(n, &a);
        }
        if (n->multi) {
            enqueue(n, &a);
        }
    }
    return got;
}

/* One turn: wait for the PULL socket, libcurl's sockets, its timer or the
 * next retry (at most until `until`, mono ms), then act on what happened. */
static void turn(struct notify *n, int64_t until)
{
    zmq_pollitem_t items[1 + MAX_CURL_SOCKS];
    struct curl_sock watched[MAX_CURL_SOCKS];
    int ns = n->nsocks;
    int64_t now = nw_clock_mono_ms();
    int64_t wake = until;
    if (n->curl_due >= 0 && n->curl_due < wake) {
        wake = n->curl_due;
    }
    if (n->multi && !n->inflight && n->len > 0 && n->retry_at < wake) {
        wake = n->retry_at;
    }
    long timeout = wake <= now ? 0 : (long)(wake - now);
    items[0] = (zmq_pollitem_t){.socket = n->pull, .events = ZMQ_POLLIN};
    memcpy(watched, n->socks, (size_t)ns * sizeof(*watched));
    for (int i = 0; i < ns; i++) {
        short ev = (short)((watched[i].what & CURL_POLL_IN ? ZMQ_POLLIN : 0) |
                           (watched[i].what & CURL_POLL_OUT ? ZMQ_POLLOUT : 0));
        items[1 + i] = (zmq_pollitem_t){.socket = NULL, .fd = watched[i].fd, .events = ev};
    }
    int rc = zmq_poll(items, 1 + ns, timeout);
    int running = 0;
    for (int i = 0; rc > 0 && i < ns; i++) {
        short re = items[1 + i].revents;
        int ev = (re & ZMQ_POLLIN ? CURL_CSELECT_IN : 0) |
                 (re & ZMQ_POLLOUT ? CURL_CSELECT_OUT : 0) |
                 (re & ZMQ_POLLERR ? CURL_CSELECT_ERR : 0);
        if (ev) {
            curl_multi_socket_action(n->multi, watched[i].fd, ev, &running);
        }
    }
    if (n->multi && n->curl_due >= 0 && nw_clock_mono_ms() >= n->curl_due) {
        n->curl_due = -1; /* libcurl sets a new one from inside the call */
        curl_multi_socket_action(n->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    }
    if (n->multi) {
        collect_done(n);
    }
    drain(n, DRAIN_BATCH);
    if (n->multi) {
        start_next(n);
    }
    nw_logonce_flush(n->lo_drop, false);
    nw_logonce_flush(n->lo_overflow, false);
    nw_logonce_flush(n->lo_input, false);
}

void notify_run(struct notify *n, volatile sig_atomic_t *stop)
{
    if (n->multi) {
        nw_log(NW_LOG_NOTICE, "notify",
               "alerts from %s; PUB %s; webhook %s (queue %zu, timeout %d ms, backoff %d-%d ms)",
               n->endpoint, n->pub ? n->pub_endpoint : "off", n->name, n->queue_max, n->timeout_ms,
               n->backoff_min_ms, n->backoff_max_ms);
    } else {
        nw_log(NW_LOG_NOTICE, "notify", "alerts from %s; PUB %s; webhook off", n->endpoint,
               n->pub ? n->pub_endpoint : "off");
    }
    while (!*stop) {
        turn(n, nw_clock_mono_ms() + TICK_MS);
    }
    /* Stopping: what the workers already pushed, then the webhook queue
     * while it moves, for at most FLUSH_MS. */
    int64_t until = nw_clock_mono_ms() + FLUSH_MS;
    for (int i = 0; i < 1000 && drain(n, DRAIN_BATCH) == DRAIN_BATCH; i++) {
    }
    while (n->multi && n->len > 0 && nw_clock_mono_ms() < until &&
           (n->inflight || n->retry_at < until)) {
        int64_t t = nw_clock_mono_ms() + TICK_MS;
        turn(n, t < until ? t : until);
    }
    if (n->multi && n->len > 0) {
        nw_log(NW_LOG_WARN, "notify", "stopping: %zu webhook notifications not delivered to %s",
               n->len, n->name);
    }
    nw_logonce_flush(n->lo_drop, true);
    nw_logonce_flush(n->lo_overflow, true);
    nw_logonce_flush(n->lo_input, true);
}

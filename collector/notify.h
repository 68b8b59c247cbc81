/*
 * notify.h - the alert fan-out thread: ZeroMQ PUB and an HTTP webhook.
 *
 * The alert engine in the aggregation workers sends each alert state change
 * as one single-frame ZeroMQ message holding the raw bytes of a struct
 * nw_alert (sizeof(struct nw_alert), same build, same architecture), with
 * ZMQ_DONTWAIT, on a PUSH socket connected to opt.endpoint. This thread
 * drains that PULL socket continuously, so workers never see backpressure
 * from a slow subscriber or a dead webhook. Messages of another size are
 * dropped and logged (once per minute). MQTT delivery is elsewhere.
 *
 * PUB (opt.pub_endpoint, bound): two frames per alert,
 *
 *   frame 1  topic   "alert.<severity>.<rule>.<device>"
 *                    e.g. "alert.critical.needle_rate_out_of_spec.SIM-0007"
 *   frame 2  body    protobuf needlewatch.v1.Alert (nw_codec_encode_alert;
 *                    decode with nw_codec_decode_alert)
 *
 * Subscribers filter by topic prefix: "alert." (everything),
 * "alert.critical." (every critical alert), "alert.warning.cartridge_worn."
 * (one rule). severity is nw_severity_name(); rule names and device ids
 * contain no '.', so the prefixes are unambiguous. A PUB socket never
 * blocks: a subscriber that falls CP_HWM messages behind loses messages
 * (ZeroMQ's rule), and one that connects late misses what was sent before.
 * Counted in alerts_published (messages handed to ZeroMQ).
 *
 * Webhook (opt.webhook_url, http or https): one POST per alert state
 * change, body the JSON object of alert_json.h, Content-Type
 * application/json. Delivery, through the libcurl multi interface driven
 * from this thread's zmq_poll loop (nothing here ever waits on the network
 * longer than one poll tick, 100 ms):
 *   - strictly in order, one request at a time, on a kept-alive connection;
 *   - 2xx: delivered (webhook_delivered);
 *   - 408, 429, 5xx, connection errors, timeouts (webhook_timeout_ms per
 *     request): the same notification is retried, after Retry-After on 429
 *     and 503 (capped at 10 min), else after an exponential backoff with
 *     equal jitter from backoff_min_ms to backoff_max_ms (webhook_retries
 *     counts failed attempts). The first failure logs "webhook ... down",
 *     the next answer "webhook ... up again"; nothing is logged per attempt.
 *     webhook_up is 0 in between;
 *   - any other answer (4xx, and 3xx: redirects are not followed): that
 *     notification is dropped for good (webhook_failed_permanent), logged
 *     once per status, then summarised at most once per minute;
 *   - at most webhook_queue_max notifications wait (plus the one on the
 *     wire); when a new one arrives at the bound, the oldest waiting one is
 *     dropped (webhook_dropped_overflow), logged at most once per minute.
 *     webhook_queue_depth is the number waiting plus the one on the wire.
 * Delivery is at least once: an answer lost after the receiver took the
 * request (a timeout) makes it come again; receivers may dedupe on
 * (alert_id, state, time). Nothing is kept across a restart.
 *
 * Logs never show the webhook URL's path or query (they often carry a
 * secret token): only scheme, host and port.
 *
 * Threads: notify_new() and notify_destroy() on the starting thread,
 * notify_run() on the notifier's own thread; the sockets move with it
 * (ZeroMQ allows that across the full barrier of pthread_create/join).
 */
#ifndef COLLECTOR_NOTIFY_H
#define COLLECTOR_NOTIFY_H

#include <needlewatch/err.h>
#include <needlewatch/validate.h>

#include <signal.h>
#include <stddef.h>

struct notify_options {
    const char *endpoint;     /* bound PULL, e.g. "inproc://alerts"; required */
    const char *pub_endpoint; /* bound PUB, e.g. "tcp://127.0.0.1:5610"; NULL or "" = off */
    const char *webhook_url;  /* "http(s)://..."; NULL or "" = off */
    size_t webhook_queue_max; /* notifications waiting; 0 = 10000; at most 1000000 */
    int webhook_timeout_ms;   /* per request, connect included; 0 = 5000 */
    int backoff_max_ms;       /* 0 = 60000 */
    int backoff_min_ms;       /* first retry delay; 0 = 500 (<= backoff_max_ms) */
    struct nw_limits limits;  /* for the codec (all zero = nw_limits_default) */
};

struct notify;

/*
 * Binds the PULL (and the PUB) socket on zctx (borrowed, must outlive the
 * notifier) and prepares the webhook client. All option strings are copied.
 * NW_ERR_CONFIG with the reason for a bad endpoint, URL or bound;
 * NW_ERR_NOMEM. On success the caller owns *out (notify_destroy()).
 */
enum nw_err notify_new(const struct notify_options *opt, void *zctx, struct notify **out,
                       struct nw_error *out_err);

/*
 * The thread body. Returns at most one poll tick after *stop becomes
 * non-zero, plus a best-effort flush of at most 2 s: it takes the alerts
 * already queued on the PULL socket, publishes them, and goes on delivering
 * webhook notifications until none is left or 2 s have passed (what is left
 * is logged as not delivered). Stop it after the workers that push to it.
 */
void notify_run(struct notify *n, volatile sig_atomic_t *stop);

/* Closes the sockets and frees *p (NULL-safe), then sets *p = NULL. */
void notify_destroy(struct notify **p);

#endif

/*
 * notify_driver.c - runs collector/notify.c in-process, as the collector
 * does (its own thread, fed through an inproc PUSH socket the way the
 * workers feed it), for tests/integration/notify_webhook.sh.
 *
 *   notify_driver [options] STEP...
 *
 * Alerts are made from their number k (alert_id = k, 1, 2, 3, ... across
 * the whole run), so the test's verifier can rebuild every field:
 *   device   "DEV-%04d" of k % 7        rule   RULES[k % 3]
 *   severity 1 + k % 3 (info, warning, critical)
 *   state    1 + k % 4 (firing, resolved, acknowledged, renotify)
 *   time_ms  T0 + k * 1000              since_ms T0 - 5000
 *   value    100 + k * 0.25             threshold 140
 *   message  MESSAGE(k), hostile on purpose, + " poison" when k is marked
 *   clinic   "Clínica São Paulo, Unit 2"   model "DG-3"   late  k odd
 *
 * Steps:
 *   push:N[:poison=K,K...]   push the next N alerts (ZMQ_DONTWAIT, as the
 *                            workers do); fails if any send would block;
 *                            prints how long the N sends took
 *   push-took-less:MS        the last push took less than MS ms
 *   wait:NAME>=V[:S]         wait until the counter reaches V (default 30 s)
 *   wait:NAME==V[:S]         ... equals V
 *   wait:NAME<=V[:S]
 *   check:NAME==V / NAME>=V / NAME<=V   at once
 *       NAME: published delivered failed dropped retries depth up
 *   sleep:MS
 *   sh:CMD                   runs CMD with /bin/sh (start or stop the receiver)
 *   sub-ready                (--pub) connects two SUB sockets, "alert." and
 *                            "alert.critical.", and pushes probe alerts
 *                            (rule "probe", severity info) until the first
 *                            one sees one: ZeroMQ's slow-joiner gap is closed
 *   sub-check:N              the next N alerts pushed after sub-ready came to
 *                            the "alert." SUB in order, two frames each, with
 *                            topic alert.<severity>.<rule>.<device> and a body
 *                            that decodes to exactly the alert pushed; the
 *                            "alert.critical." SUB got exactly the critical ones
 *   metrics                  the /metrics text has every notify line with the
 *                            counter's value
 * Options: --endpoint EP --pub EP --webhook URL --queue-max N --timeout-ms N
 *          --backoff-min-ms N --backoff-max-ms N
 * Exit status 0 when every step passed, 1 otherwise (each failure printed).
 */
#include "metrics.h"
#include "notify.h"

#include <needlewatch/clock.h>
#include <needlewatch/codec.h>
#include <needlewatch/log.h>

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#define T0 1795341600000LL
#define MAX_POISON 64
#define MAX_EXPECT 100000

static const char *const RULES[] = {"needle_rate_out_of_spec", "cartridge_reuse", "data_gap"};
static int failures;
static uint64_t next_id = 1;
static int64_t last_push_ms;
static void *zctx, *push_sock, *sub_all, *sub_crit;
static uint64_t sub_from; /* first alert id after sub-ready */

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("FAIL: ", stdout);
    vprintf(fmt, ap);
    fputs("\n", stdout);
    va_end(ap);
    fflush(stdout);
    failures++;
}

static void make_alert(uint64_t k, bool poison, struct nw_alert *a)
{
    memset(a, 0, sizeof(*a));
    snprintf(a->device_id, sizeof(a->device_id), "DEV-%04d", (int)(k % 7));
    a->alert_id = k;
    snprintf(a->rule, sizeof(a->rule), "%s", RULES[k % 3]);
    a->severity = (enum nw_severity)(1 + k % 3);
    a->state = (enum nw_alert_state)(1 + k % 4);
    a->time_ms = T0 + (int64_t)k * 1000;
    a->since_ms = T0 - 5000;
    a->value = 100 + (double)k * 0.25;
    a->threshold = 140;
    /* quotes, backslashes, a tab, a newline, 2-, 3- and 4-byte UTF-8, a control */
    snprintf(a->message, sizeof(a->message),
             "alert %" PRIu64 ": \"quoted\" \\back\\slash\\ tab\t nl\n "
             "\xc3\xa9\xe2\x9c\x93\xf0\x9f\x98\x80 ctl\x01%s",
             k, poison ? " poison" : "");
    snprintf(a->clinic, sizeof(a->clinic), "Cl\xc3\xadnica S\xc3\xa3o Paulo, Unit 2");
    snprintf(a->model, sizeof(a->model), "DG-3");
    a->late = k % 2 == 1;
}

static bool counter(const char *name, int64_t *out)
{
    static const struct {
        const char *name;
        int kind; /* 0 u64 counter, 1 int */
        atomic_uint_fast64_t *u;
        atomic_int *i;
    } names[] = {
        {"published", 0, &cm.alerts_published, NULL},
        {"delivered", 0, &cm.webhook_delivered, NULL},
        {"failed", 0, &cm.webhook_failed_permanent, NULL},
        {"dropped", 0, &cm.webhook_dropped_overflow, NULL},
        {"retries", 0, &cm.webhook_retries, NULL},
        {"depth", 0, &cm.webhook_queue_depth, NULL},
        {"up", 1, NULL, &cm.webhook_up},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (!strcmp(name, names[i].name)) {
            *out = names[i].kind ? atomic_load(names[i].i) : (int64_t)atomic_load(names[i].u);
            return true;
        }
    }
    return false;
}

/* "NAME>=V", "NAME==V", "NAME<=V": true when it holds; *ok false if malformed. */
static bool holds(const char *cond, bool *ok, char *desc, size_t cap)
{
    char name[32];
    const char *op = strpbrk(cond, "<>=");
    *ok = false;
    if (!op || (size_t)(op - cond) >= sizeof(name) || op[1] != '=') {
        return false;
    }
    memcpy(name, cond, (size_t)(op - cond));
    name[op - cond] = '\0';
    char *end;
    long long want = strtoll(op + 2, &end, 10);
    int64_t got;
    if ((*end && *end != ':') || !counter(name, &got)) {
        return false;
    }
    *ok = true;
    snprintf(desc, cap, "%s is %" PRId64 ", want %c= %lld", name, got, op[0] == '=' ? '=' : op[0],
             want);
    return op[0] == '>' ? got >= want : op[0] == '<' ? got <= want : got == want;
}

static void step_wait(const char *arg)
{
    const char *colon = strchr(arg, ':');
    double secs = colon ? strtod(colon + 1, NULL) : 30;
    int64_t until = nw_clock_mono_ms() + (int64_t)(secs * 1000);
    char desc[128];
    bool ok;
    while (!holds(arg, &ok, desc, sizeof(desc)) && ok && nw_clock_mono_ms() < until) {
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (!ok) {
        fail("bad condition %s", arg);
    } else if (!holds(arg, &ok, desc, sizeof(desc))) {
        fail("after %.0f s: %s", secs, desc);
    } else {
        printf("ok: %s\n", desc);
    }
}

static void step_check(const char *arg)
{
    char desc[128];
    bool ok;
    if (!holds(arg, &ok, desc, sizeof(desc))) {
        fail("%s", ok ? desc : arg);
    } else {
        printf("ok: %s\n", desc);
    }
}

static bool is_poison(uint64_t k, const uint64_t *poison, int np)
{
    for (int i = 0; i < np; i++) {
        if (poison[i] == k) {
            return true;
        }
    }
    return false;
}

static void push_one(const struct nw_alert *a, int *blocked)
{
    if (zmq_send(push_sock, a, sizeof(*a), ZMQ_DONTWAIT) != (int)sizeof(*a)) {
        (*blocked)++;
    }
}

static void step_push(const char *arg)
{
    char *end;
    long n = strtol(arg, &end, 10);
    uint64_t poison[MAX_POISON];
    int np = 0;
    if (!strncmp(end, ":poison=", 8)) {
        for (const char *p = end + 8; *p && np < MAX_POISON;) {
            poison[np++] = strtoull(p, &end, 10);
            p = *end == ',' ? end + 1 : end;
            if (end == p && *p) {
                break;
            }
        }
    }
    int blocked = 0;
    int64_t t0 = nw_clock_mono_ns();
    for (long i = 0; i < n; i++) {
        struct nw_alert a;
        uint64_t k = next_id++;
        make_alert(k, is_poison(k, poison, np), &a);
        push_one(&a, &blocked);
    }
    last_push_ms = (nw_clock_mono_ns() - t0) / 1000000;
    printf("pushed %ld alerts (ids %" PRIu64 "..%" PRIu64 ") in %" PRId64 " ms, %d would block\n",
           n, next_id - (uint64_t)n, next_id - 1, last_push_ms, blocked);
    if (blocked) {
        fail("%d of %ld pushes would have blocked a worker", blocked, n);
    }
}

/* ---- PUB ---------------------------------------------------------------- */

/* Receives one two-frame PUB message within ms; false on timeout. */
static bool sub_recv(void *s, char *topic, size_t tcap, uint8_t *body, size_t bcap, size_t *blen,
                     int ms)
{
    zmq_pollitem_t it = {.socket = s, .events = ZMQ_POLLIN};
    if (zmq_poll(&it, 1, ms) <= 0) {
        return false;
    }
    int tl = zmq_recv(s, topic, tcap - 1, 0);
    if (tl < 0) {
        return false;
    }
    topic[(size_t)tl < tcap - 1 ? (size_t)tl : tcap - 1] = '\0';
    int more = 0;
    size_t sz = sizeof(more);
    zmq_getsockopt(s, ZMQ_RCVMORE, &more, &sz);
    if (!more) {
        fail("PUB message with one frame (topic %s)", topic);
        *blen = 0;
        return true;
    }
    int bl = zmq_recv(s, body, bcap, 0);
    *blen = bl < 0 ? 0 : (size_t)bl;
    zmq_getsockopt(s, ZMQ_RCVMORE, &more, &sz);
    if (more) {
        fail("PUB message with more than two frames (topic %s)", topic);
    }
    return true;
}

static void *sub_open(void *ctx, const char *ep, const char *prefix)
{
    void *s = zmq_socket(ctx, ZMQ_SUB);
    int hwm = 0; /* the test counts every message: no receive bound */
    zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(s, ZMQ_SUBSCRIBE, prefix, strlen(prefix));
    if (zmq_connect(s, ep) != 0) {
        fail("SUB connect %s: %s", ep, zmq_strerror(zmq_errno()));
    }
    return s;
}

static void step_sub_ready(const char *pub)
{
    if (!pub) {
        fail("sub-ready without --pub");
        return;
    }
    sub_all = sub_open(zctx, pub, "alert.");
    sub_crit = sub_open(zctx, pub, "alert.critical.");
    /* Probes are info: the critical SUB never sees them, so it is made
     * ready with a critical probe of its own (rule "probe" too). */
    void *subs[2] = {sub_all, sub_crit};
    for (int s = 0; s < 2; s++) {
        bool seen = false;
        int blocked = 0;
        for (int i = 0; i < 200 && !seen; i++) {
            struct nw_alert a;
            make_alert(0, false, &a);
            snprintf(a.rule, sizeof(a.rule), "probe");
            a.severity = s == 0 ? NW_SEVERITY_INFO : NW_SEVERITY_CRITICAL;
            push_one(&a, &blocked);
            char topic[256];
            uint8_t body[4096];
            size_t bl;
            seen = sub_recv(subs[s], topic, sizeof(topic), body, sizeof(body), &bl, 50);
        }
        if (!seen) {
            fail("SUB %d saw no probe in 10 s", s);
        }
    }
    sub_from = next_id;
    printf("ok: subscribers ready\n");
}

static bool same_alert(const struct nw_alert *x, const struct nw_alert *y)
{
    return !strcmp(x->device_id, y->device_id) && x->alert_id == y->alert_id &&
           !strcmp(x->rule, y->rule) && x->severity == y->severity && x->state == y->state &&
           x->time_ms == y->time_ms && x->since_ms == y->since_ms && x->value == y->value &&
           x->threshold == y->threshold && !strcmp(x->message, y->message) &&
           !strcmp(x->clinic, y->clinic) && !strcmp(x->model, y->model) && x->late == y->late;
}

/* The next alert on s that is not a probe; false on timeout. */
static bool next_real(void *s, struct nw_codec *codec, char *topic, size_t tcap,
                      struct nw_alert *out, bool *decoded, int ms)
{
    uint8_t body[4096];
    size_t bl;
    for (;;) {
        if (!sub_recv(s, topic, tcap, body, sizeof(body), &bl, ms)) {
            return false;
        }
        if (strstr(topic, ".probe.")) {
            continue;
        }
        struct nw_error err = {0};
        *decoded = nw_codec_decode_alert(codec, body, bl, out, NULL, &err) == NW_OK;
        if (!*decoded) {
            fail("topic %s: body does not decode: %s", topic, err.msg);
        }
        return true;
    }
}

static void step_sub_check(const char *arg)
{
    long n = strtol(arg, NULL, 10);
    struct nw_limits lim;
    nw_limits_default(&lim);
    struct nw_codec *codec = nw_codec_new(&lim);
    long good = 0, crit_good = 0, crit_want = 0;
    char topic[256], want_topic[256];
    for (long i = 0; i < n && sub_all; i++) {
        uint64_t k = sub_from + (uint64_t)i;
        struct nw_alert want, got;
        bool decoded = false;
        make_alert(k, false, &want);
        snprintf(want_topic, sizeof(want_topic), "alert.%s.%s.%s", nw_severity_name(want.severity),
                 want.rule, want.device_id);
        if (!next_real(sub_all, codec, topic, sizeof(topic), &got, &decoded, 10000)) {
            fail("SUB alert.: alert %" PRIu64 " never came (10 s)", k);
            break;
        }
        if (strcmp(topic, want_topic) != 0) {
            fail("SUB alert.: topic %s, want %s", topic, want_topic);
        } else if (decoded && !same_alert(&got, &want)) {
            fail("SUB alert.: alert %" PRIu64 " decoded to something else (id %" PRIu64 ")", k,
                 got.alert_id);
        } else if (decoded) {
            good++;
        }
        if (want.severity == NW_SEVERITY_CRITICAL) {
            crit_want++;
            if (!next_real(sub_crit, codec, topic, sizeof(topic), &got, &decoded, 10000)) {
                fail("SUB alert.critical.: alert %" PRIu64 " never came", k);
            } else if (strcmp(topic, want_topic) != 0 || !decoded || !same_alert(&got, &want)) {
                fail("SUB alert.critical.: got %s, want %s", topic, want_topic);
            } else {
                crit_good++;
            }
        }
    }
    /* Nothing else may be waiting on either socket. */
    struct nw_alert extra;
    bool decoded;
    if (sub_all && next_real(sub_all, codec, topic, sizeof(topic), &extra, &decoded, 300)) {
        fail("SUB alert.: an extra message %s", topic);
    }
    if (sub_crit && next_real(sub_crit, codec, topic, sizeof(topic), &extra, &decoded, 300)) {
        fail("SUB alert.critical.: an extra message %s", topic);
    }
    nw_codec_destroy(&codec);
    printf("%s: SUB alert. got %ld of %ld exactly; SUB alert.critical. got %ld of %ld\n",
           good == n && crit_good == crit_want ? "ok" : "FAIL", good, n, crit_good, crit_want);
    if (good != n || crit_good != crit_want) {
        failures++;
    }
}

static void step_metrics(void)
{
    static char text[65536];
    size_t len = collector_metrics_render(text, sizeof(text));
    static const char *const lines[][2] = {
        {"nw_alerts_published_total ", "published"},
        {"nw_webhook_delivered_total ", "delivered"},
        {"nw_webhook_failed_permanent_total ", "failed"},
        {"nw_webhook_dropped_overflow_total ", "dropped"},
        {"nw_webhook_retries_total ", "retries"},
        {"nw_webhook_queue_depth ", "depth"},
        {"nw_webhook_up ", "up"},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        char want[128], help[128];
        int64_t v = 0;
        counter(lines[i][1], &v);
        snprintf(want, sizeof(want), "\n%s%" PRId64 "\n", lines[i][0], v);
        snprintf(help, sizeof(help), "# HELP %.*s", (int)strlen(lines[i][0]) - 1, lines[i][0]);
        if (!strstr(text, want) || !strstr(text, help)) {
            fail("/metrics lacks %s with HELP", want + 1);
            bad++;
        }
    }
    printf("%s: /metrics has the notify lines (%zu bytes in all)\n", bad ? "FAIL" : "ok", len);
}

/* ---- main ---------------------------------------------------------------- */

static volatile sig_atomic_t stop_notify;

static void *run_notify(void *arg)
{
    notify_run(arg, &stop_notify);
    return NULL;
}

int main(int argc, char **argv)
{
    struct notify_options opt = {.endpoint = "inproc://nw-alerts"};
    int i = 1;
    for (; i + 1 < argc && !strncmp(argv[i], "--", 2); i += 2) {
        const char *k = argv[i] + 2, *v = argv[i + 1];
        if (!strcmp(k, "endpoint")) {
            opt.endpoint = v;
        } else if (!strcmp(k, "pub")) {
            opt.pub_endpoint = v;
        } else if (!strcmp(k, "webhook")) {
            opt.webhook_url = v;
        } else if (!strcmp(k, "queue-max")) {
            opt.webhook_queue_max = strtoul(v, NULL, 10);
        } else if (!strcmp(k, "timeout-ms")) {
            opt.webhook_timeout_ms = (int)strtol(v, NULL, 10);
        } else if (!strcmp(k, "backoff-min-ms")) {
            opt.backoff_min_ms = (int)strtol(v, NULL, 10);
        } else if (!strcmp(k, "backoff-max-ms")) {
            opt.backoff_max_ms = (int)strtol(v, NULL, 10);
        } else {
            fprintf(stderr, "notify_driver: unknown option --%s\n", k);
            return 2;
        }
    }
    nw_log_init("notify_driver", NW_LOG_INFO, NW_LOG_TO_STDERR);
    nw_limits_default(&opt.limits);
    zctx = zmq_ctx_new();
    struct notify *n = NULL;
    struct nw_error err = {0};
    if (!zctx || notify_new(&opt, zctx, &n, &err) != NW_OK) {
        fprintf(stderr, "notify_driver: %s\n", err.msg);
        return 1;
    }
    /* The workers' side: a PUSH with the pipeline's defaults. */
    push_sock = cp_open(zctx, ZMQ_PUSH, opt.endpoint, false, &err);
    if (!push_sock) {
        fprintf(stderr, "notify_driver: %s\n", err.msg);
        return 1;
    }
    pthread_t t;
    pthread_create(&t, NULL, run_notify, n);
    for (; i < argc; i++) {
        const char *s = argv[i];
        printf("== %s\n", s);
        fflush(stdout);
        if (!strncmp(s, "push:", 5)) {
            step_push(s + 5);
        } else if (!strncmp(s, "push-took-less:", 15)) {
            long ms = strtol(s + 15, NULL, 10);
            if (last_push_ms >= ms) {
                fail("the pushes took %" PRId64 " ms, bound %ld", last_push_ms, ms);
            }
        } else if (!strncmp(s, "wait:", 5)) {
            step_wait(s + 5);
        } else if (!strncmp(s, "check:", 6)) {
            step_check(s + 6);
        } else if (!strncmp(s, "sleep:", 6)) {
            struct timespec ts = {0, 0};
            long ms = strtol(s + 6, NULL, 10);
            ts.tv_sec = ms / 1000;
            ts.tv_nsec = (ms % 1000) * 1000000;
            nanosleep(&ts, NULL);
        } else if (!strncmp(s, "sh:", 3)) {
            int rc = system(s + 3);
            if (rc != 0) {
                fail("%s: exit status %d", s + 3, rc);
            }
        } else if (!strcmp(s, "sub-ready")) {
            step_sub_ready(opt.pub_endpoint);
        } else if (!strncmp(s, "sub-check:", 10)) {
            step_sub_check(s + 10);
        } else if (!strcmp(s, "metrics")) {
            step_metrics();
        } else {
            fail("unknown step %s", s);
        }
        fflush(stdout);
    }
    int64_t t0 = nw_clock_mono_ms();
    stop_notify = 1;
    pthread_join(t, NULL);
    int64_t took = nw_clock_mono_ms() - t0;
    printf("notify stopped in %" PRId64 " ms\n", took);
    if (took > 2000 + 1000) {
        fail("notify_run took %" PRId64 " ms to stop (bound: a tick + 2 s flush)", took);
    }
    zmq_close(push_sock);
    if (sub_all) {
        zmq_close(sub_all);
    }
    if (sub_crit) {
        zmq_close(sub_crit);
    }
    notify_destroy(&n);
    zmq_ctx_term(zctx);
    printf("counters: published=%" PRIu64 " delivered=%" PRIu64 " failed=%" PRIu64
           " dropped=%" PRIu64 " retries=%" PRIu64 " depth=%" PRIu64 " up=%d\n",
           (uint64_t)CM_GET(alerts_published), (uint64_t)CM_GET(webhook_delivered),
           (uint64_t)CM_GET(webhook_failed_permanent), (uint64_t)CM_GET(webhook_dropped_overflow),
           (uint64_t)CM_GET(webhook_retries), (uint64_t)CM_GET(webhook_queue_depth),
           (int)CM_GET(webhook_up));
    printf("%s: %d failures\n", failures ? "FAIL" : "PASS", failures);
    return failures ? 1 : 0;
}

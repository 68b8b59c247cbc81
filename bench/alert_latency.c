/*
 * alert_latency.c - alert latency (DESIGN §9: out-of-spec window published
 * -> alert received by a subscriber, p99 <= 5 ms at 10 000 windows/s of
 * background load) next to the broker's own two-hop latency, measured by
 * one process that timestamps both ends on CLOCK_MONOTONIC.
 *
 *   alert_latency probe --port P [--devices K] [--id-prefix PROBE-]
 *                       [--cycles N] [--in I] [--out O] [--period-ms T]
 *                       [--hop-rate R] [--grace-ms G] [--max-s S]
 *   alert_latency relay --port P
 *   alert_latency fake-collector --port P [--id-prefix PROBE-] [--hold O]
 *
 * probe: K probe devices (PROBE-0001.., which must be in the collector's
 * inventory) publish 1-window WindowBatches at QoS 1 over one connection,
 * each device one window every T ms of wall time (staggered), seq 1, 2,
 * 3..., window start_ms 1000 ms apart from now - 1 h (so every timestamp
 * is valid and in the past), in a cycle of I in-spec windows (120 Hz) and
 * O out-of-spec ones (160 Hz), N cycles per device. With the collector's
 * default hold (2 s of event time) the 3rd out-of-spec window is the
 * trigger (collector/rules.c: the hold is met at the end of the 2nd). A
 * second connection subscribes to needlewatch/v1/+/alert; for every Alert
 * (nw_codec_decode_alert) of a probe device with rule
 * needle_rate_out_of_spec and state FIRING, the latency is its arrival
 * time minus the publish time (just before the publish call) of the latest
 * out-of-spec window of its run published before it arrived; the run is
 * the one holding the alert's time_ms - 1 (the end of the window that
 * completed the hold), so a slow alert is never charged to a later run.
 * Which window of the run that was is counted (trig1..). Each
 * probe device also publishes a retained online status at the start and
 * every 20 s, so device_offline never inhibits its rate alert.
 *   At the same time, the same publishing connection sends R msg/s of
 * 120-byte stamped messages to albench/hop1/<n>; `relay` (its own process)
 * republishes each to albench/hop2/<n>; the subscribing connection
 * receives them: the broker's two-hop latency (publisher -> broker ->
 * relay -> broker -> subscriber), the same two hops as the collector path.
 * Bounded: N*(I+O) <= 3000 windows per device, --max-s (default 120 s),
 * then --grace-ms (default 3000) for the last alerts. Prints one line
 * "RESULT key=value ...": alerts, expected, resolved, unexpected, p50_us,
 * p90_us, p99_us, max_us, trig1..trig4, hop_n, hop_p50_us, hop_p99_us,
 * hop_max_us, probe_windows, seconds.
 *
 * relay: the baseline's middle hop, on lib/mqtt.c (the collector's own
 * connection code): albench/hop1/# in, albench/hop2/<n> out, QoS 1.
 *
 * fake-collector: stands in for needlewatch-collector until its alert
 * engine publishes (validates the measuring code): subscribes to every
 * device's telemetry and events, acknowledges the highest seqs seen per
 * device (every 200 ms at most, so a needlewatch-sim background keeps
 * running as against a collector), and for probe devices answers the
 * --hold'th (default 3) consecutive out-of-spec window (rate outside
 * 100-140 Hz) with an Alert FIRING on needlewatch/v1/<device>/alert, and
 * the next in-spec window with RESOLVED.
 *
 * --nodelay sets TCP_NODELAY on this program's connections (probe, relay,
 * fake collector; default off, like the agent and the collector): a
 * diagnostic for Nagle's share of the latency.
 *
 * Only 127.0.0.1; every loop is bounded in count and time.
 */
#include <needlewatch/clock.h>
#include <needlewatch/codec.h>
#include <needlewatch/hash.h>
#include <needlewatch/mqtt.h>
#include <needlewatch/topic.h>

#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_PROBES 64
#define MAX_SAMPLES 200000
#define MAX_WINDOWS_PER_PROBE 3000
#define HOP_MAGIC "ALB1"
#define HOP_SIZE 120
#define FAKE_DEVICES 8192 /* open addressing, power of two */
#define FAKE_ACK_MS 200
#define FAKE_INFLIGHT 1000
#define FAKE_ACK_INFLIGHT 800 /* acks stop here: alerts always find room */
#define RULE "needle_rate_out_of_spec"

struct opts {
    int port;
    int devices;
    const char *id_prefix;
    int cycles, in, out, period_ms, hop_rate, grace_ms, hold;
    double max_s;
    bool nodelay;
};

static struct opts O = {.devices = 8,
                        .id_prefix = "PROBE-",
                        .cycles = 60,
                        .in = 3,
                        .out = 3,
                        .period_ms = 50,
                        .hop_rate = 200,
                        .grace_ms = 3000,
                        .hold = 3,
                        .max_s = 120};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    stop = sig;
}

static struct nw_codec *codec;
static char url[64];

static void die(const char *what)
{
    fprintf(stderr, "alert_latency: %s\n", what);
    exit(1);
}

static struct nw_mqtt *connect_client(const char *id, struct nw_mqtt_callbacks *cb, int inflight)
{
    struct nw_mqtt_options mo = {.url = url,
                                 .client_id = id,
                                 .max_inflight = inflight,
                                 .tcp_nodelay = O.nodelay,
                                 .receive_maximum = 65535,
                                 .backoff_min_ms = 200,
                                 .backoff_max_ms = 2000};
    struct nw_mqtt *m = NULL;
    struct nw_error err = {0};
    if (nw_mqtt_new(&mo, cb, &m, &err) != NW_OK) {
        fprintf(stderr, "alert_latency: %s: %s\n", id, err.msg);
        exit(1);
    }
    nw_mqtt_start(m);
    return m;
}

/* Steps every client until timeout_ms passed or a socket was served. */
static void pump(struct nw_mqtt **ms, int n, int timeout_ms)
{
    struct pollfd pfd[4];
    int map[4], np = 0;
    for (int i = 0; i < n; i++) {
        int fd = nw_mqtt_fd(ms[i]);
        if (fd >= 0) {
            pfd[np] = (struct pollfd){.fd = fd,
                                      .events = POLLIN | (nw_mqtt_want_write(ms[i]) ? POLLOUT : 0)};
            map[np++] = i;
        }
        int t = nw_mqtt_timeout_ms(ms[i]);
        timeout_ms = t >= 0 && t < timeout_ms ? t : timeout_ms;
    }
    int r = poll(pfd, (nfds_t)np, timeout_ms < 0 ? 0 : timeout_ms);
    bool served[4] = {false};
    for (int k = 0; r > 0 && k < np; k++) {
        if (pfd[k].revents) {
            nw_mqtt_step(ms[map[k]], pfd[k].revents & (POLLIN | POLLERR | POLLHUP),
                         pfd[k].revents & POLLOUT);
            served[map[k]] = true;
        }
    }
    for (int i = 0; i < n; i++) {
        if (!served[i]) {
            nw_mqtt_step(ms[i], false, false); /* keepalive, reconnect */
        }
    }
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int64_t pct_ns(int64_t *v, size_t n, double p)
{
    if (n == 0) {
        return -1;
    }
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

static void print_us(const char *key, int64_t ns)
{
    if (ns < 0) {
        printf(" %s=n/a", key);
    } else {
        printf(" %s=%.0f", key, (double)ns / 1000.0);
    }
}

/* ---- probe ---------------------------------------------------------------- */

struct probe {
    char id[NW_DEVICE_ID_MAX + 1];
    char topic[NW_TOPIC_MAX + 1];
    uint64_t epoch, seq;
    int64_t next_ns;
    int64_t pub_ns[MAX_WINDOWS_PER_PROBE + 1]; /* publish time of window seq; 0 = not yet */
    bool fired[MAX_WINDOWS_PER_PROBE];         /* a FIRING counted for cycle c */
    int cycle;
};

static struct probe probes[MAX_PROBES];
static int64_t *lat, *hop;
static size_t nlat, nhop;
static uint64_t n_resolved, n_unexpected, n_other, trig[5];
static int64_t wbase_ms;
static bool sub_ready, pub_ready;

static int probe_index(const char *dev)
{
    size_t plen = strlen(O.id_prefix);
    if (strncmp(dev, O.id_prefix, plen) != 0) {
        return -1;
    }
    int n = atoi(dev + plen);
    return n >= 1 && n <= O.devices && strcmp(probes[n - 1].id, dev) == 0 ? n - 1 : -1;
}

static void sub_on_connect(void *user)
{
    struct nw_mqtt *m = *(struct nw_mqtt **)user;
    char filter[NW_TOPIC_MAX + 1];
    snprintf(filter, sizeof(filter), NW_TOPIC_PREFIX_DEFAULT "/+/alert");
    if (nw_mqtt_subscribe(m, filter, 1, NULL) != NW_OK ||
        nw_mqtt_subscribe(m, "albench/hop2/#", 1, NULL) != NW_OK) {
        die("subscribe");
    }
    sub_ready = true;
}

static void pub_on_connect(void *user)
{
    (void)user;
    pub_ready = true;
}

static void sub_on_message(void *user, const char *topic, const void *payload, size_t len)
{
    (void)user;
    int64_t now = nw_clock_mono_ns();
    if (strncmp(topic, "albench/hop2/", 13) == 0) {
        int64_t sent;
        if (len >= 12 && memcmp(payload, HOP_MAGIC, 4) == 0 && nhop < MAX_SAMPLES) {
            memcpy(&sent, (const uint8_t *)payload + 4, 8);
            hop[nhop++] = now - sent;
        }
        return;
    }
    struct nw_alert a;
    if (nw_codec_decode_alert(codec, payload, len, &a, NULL, NULL) != NW_OK) {
        n_other++;
        return;
    }
    int i = probe_index(a.device_id);
    if (i < 0 || strcmp(a.rule, RULE) != 0) {
        n_other++; /* background devices' alerts, other rules */
        return;
    }
    struct probe *p = &probes[i];
    if (a.state == NW_ALERT_RESOLVED) {
        n_resolved++;
        return;
    }
    if (a.state != NW_ALERT_FIRING) {
        n_other++;
        return;
    }
    /* The run it belongs to: the window holding time_ms - 1 (the engine
     * stamps a FIRING with the end of the window that completed the hold),
     * so a late alert is never charged to a later run. */
    int per_cycle = O.in + O.out;
    int64_t t = a.time_ms - 1 - wbase_ms;
    if (t < 0 || (uint64_t)(t / 1000) >= p->seq) {
        n_unexpected++; /* not one of this run's windows */
        return;
    }
    int cycle = (int)(t / 1000) / per_cycle;
    if (p->fired[cycle]) {
        n_unexpected++; /* a second FIRING for one run */
        return;
    }
    /* the latest out-of-spec window of that run published before now */
    for (int k = per_cycle - 1; k >= O.in; k--) {
        uint64_t seq = (uint64_t)cycle * (uint64_t)per_cycle + (uint64_t)k + 1;
        if (seq <= p->seq && p->pub_ns[seq] > 0 && p->pub_ns[seq] <= now) {
            p->fired[cycle] = true;
            if (nlat < MAX_SAMPLES) {
                lat[nlat++] = now - p->pub_ns[seq];
            }
            int idx = k - O.in + 1;
            trig[idx < 4 ? idx : 4]++;
            return;
        }
    }
    n_unexpected++; /* FIRING before any out-of-spec window of its run */
}

static void publish_status(struct nw_mqtt *m, struct probe *p)
{
    struct nw_status st = {.epoch = p->epoch,
                           .state = NW_DEVICE_ONLINE,
                           .time_ms = nw_clock_realtime_ms(),
                           .heartbeat_s = 30,
                           .last_window_seq = p->seq};
    snprintf(st.device_id, sizeof(st.device_id), "%s", p->id);
    snprintf(st.firmware, sizeof(st.firmware), "alert-latency");
    snprintf(st.model, sizeof(st.model), "DG-3");
    uint8_t buf[512];
    size_t len = 0;
    char topic[NW_TOPIC_MAX + 1];
    nw_topic_build(NW_TOPIC_PREFIX_DEFAULT, p->id, NW_TOPIC_STATUS, topic, sizeof(topic), NULL);
    if (nw_codec_encode_status(codec, &st, buf, sizeof(buf), &len, NULL) == NW_OK) {
        nw_mqtt_publish(m, topic, buf, len, 1, true, NULL, NULL);
    }
}

/* Publishes the probe's next window; false when its cycles are done. */
static bool publish_window(struct nw_mqtt *m, struct probe *p)
{
    int per_cycle = O.in + O.out;
    if (p->cycle >= O.cycles) {
        return false;
    }
    int k = (int)(p->seq % (uint64_t)per_cycle); /* position in the cycle, 0-based */
    double rate = k >= O.in ? 160.0 : 120.0;
    struct nw_window w = {.seq = ++p->seq,
                          .start_ms = wbase_ms + (int64_t)(p->seq - 1) * 1000,
                          .duration_ms = 1000,
                          .running_ms = 1000,
                          .cycles = (uint64_t)rate,
                          .rate_mean_hz = rate,
                          .rate_min_hz = rate - 1.0,
                          .rate_max_hz = rate + 1.0,
                          .depth_mean_mm = 0.38,
                          .depth_min_mm = 0.36,
                          .depth_max_mm = 0.40,
                          .pigment_ul = rate * 0.0012};
    snprintf(w.session_id, sizeof(w.session_id), "s-%s", p->id);
    snprintf(w.cartridge_id, sizeof(w.cartridge_id), "CRT-%s", p->id);
    snprintf(w.pigment_lot, sizeof(w.pigment_lot), "PL-1");
    struct nw_window_batch b = {.epoch = p->epoch,
                                .queue_floor = 1,
                                /* ignores acks: holds everything */ .count = 1,
                                .capacity = 1,
                                .windows = &w};
    snprintf(b.device_id, sizeof(b.device_id), "%s", p->id);
    uint8_t buf[1024];
    size_t len = 0;
    if (nw_codec_encode_windows(codec, &b, buf, sizeof(buf), &len, NULL) != NW_OK) {
        die("encode window");
    }
    int64_t t = nw_clock_mono_ns();
    if (nw_mqtt_publish(m, p->topic, buf, len, 1, false, NULL, NULL) != NW_OK) {
        p->seq--; /* not sent: again at the next turn */
        return true;
    }
    p->pub_ns[w.seq] = t;
    if (k == per_cycle - 1) {
        p->cycle++;
    }
    return true;
}

static int run_probe(void)
{
    if (O.devices < 1 || O.devices > MAX_PROBES || O.in < 1 || O.out < 1 || O.cycles < 1 ||
        (int64_t)O.cycles * (O.in + O.out) > MAX_WINDOWS_PER_PROBE || O.period_ms < 1) {
        die("--devices 1-64, --in/--out/--cycles >= 1, cycles x (in + out) <= 3000");
    }
    lat = calloc(MAX_SAMPLES, sizeof(*lat));
    hop = calloc(MAX_SAMPLES, sizeof(*hop));
    if (!lat || !hop) {
        die("out of memory");
    }
    int64_t now_ms = nw_clock_realtime_ms();
    wbase_ms = (now_ms - 3600 * 1000) / 1000 * 1000;
    uint64_t epoch = ((uint64_t)nw_clock_mono_ns() * 2654435761u ^ (uint64_t)getpid()) & INT64_MAX;
    for (int i = 0; i < O.devices; i++) {
        struct probe *p = &probes[i];
        snprintf(p->id, sizeof(p->id), "%s%04d", O.id_prefix, i + 1);
        nw_topic_build(NW_TOPIC_PREFIX_DEFAULT, p->id, NW_TOPIC_TELEMETRY, p->topic,
                       sizeof(p->topic), NULL);
        p->epoch = (epoch + (uint64_t)i * 0x9e3779b97f4a7c15ULL) & INT64_MAX;
        p->epoch |= p->epoch == 0;
    }
    struct nw_mqtt *ms[2] = {NULL, NULL};
    char id[64];
    struct nw_mqtt_callbacks scb = {
        .user = &ms[1], .on_connect = sub_on_connect, .on_message = sub_on_message};
    struct nw_mqtt_callbacks pcb = {.user = NULL, .on_connect = pub_on_connect};
    snprintf(id, sizeof(id), "alert-latency-pub-%d", (int)getpid());
    ms[0] = connect_client(id, &pcb, 1000);
    snprintf(id, sizeof(id), "alert-latency-sub-%d", (int)getpid());
    ms[1] = connect_client(id, &scb, 100);
    int64_t t_end = nw_clock_mono_ns() + (int64_t)(O.max_s * 1e9);
    while (!(sub_ready && pub_ready) && nw_clock_mono_ns() < t_end && !stop) {
        pump(ms, 2, 20);
    }
    if (!(sub_ready && pub_ready)) {
        die("not connected");
    }
    for (int i = 0; i < 20; i++) {
        pump(ms, 2, 10); /* the SUBACKs */
    }
    int64_t start = nw_clock_mono_ns();
    int64_t period = (int64_t)O.period_ms * 1000000;
    for (int i = 0; i < O.devices; i++) {
        probes[i].next_ns = start + 200000000LL + period * i / O.devices;
        publish_status(ms[0], &probes[i]);
    }
    int64_t hop_period = O.hop_rate > 0 ? 1000000000LL / O.hop_rate : 0;
    int64_t next_hop = start, next_status = start + 20000000000LL;
    uint64_t hop_seq = 0, windows = 0;
    uint8_t hopbuf[HOP_SIZE];
    memset(hopbuf, 'h', sizeof(hopbuf));
    memcpy(hopbuf, HOP_MAGIC, 4);
    int64_t done_at = 0;
    for (;;) {
        int64_t now = nw_clock_mono_ns();
        if (stop || now >= t_end || (done_at && now >= done_at)) {
            break;
        }
        int active = 0;
        int64_t next = now + 50000000;
        for (int i = 0; i < O.devices; i++) {
            struct probe *p = &probes[i];
            if (p->cycle >= O.cycles) {
                continue;
            }
            active++;
            if (now >= p->next_ns && nw_mqtt_can_publish(ms[0])) {
                windows += publish_window(ms[0], p);
                p->next_ns += period;
            }
            next = p->next_ns < next ? p->next_ns : next;
        }
        if (hop_period && !done_at && now >= next_hop && nw_mqtt_can_publish(ms[0])) {
            char topic[48];
            snprintf(topic, sizeof(topic), "albench/hop1/%" PRIu64, hop_seq % 16);
            int64_t t = nw_clock_mono_ns();
            memcpy(hopbuf + 4, &t, 8);
            memcpy(hopbuf + 12, &hop_seq, 8);
            hop_seq++;
            nw_mqtt_publish(ms[0], topic, hopbuf, sizeof(hopbuf), 1, false, NULL, NULL);
            next_hop += hop_period;
        }
        if (hop_period) {
            next = next_hop < next ? next_hop : next;
        }
        if (now >= next_status) {
            for (int i = 0; i < O.devices; i++) {
                publish_status(ms[0], &probes[i]);
            }
            next_status += 20000000000LL;
        }
        if (active == 0 && !done_at) {
            done_at = now + (int64_t)O.grace_ms * 1000000;
        }
        int64_t wait = (next - nw_clock_mono_ns()) / 1000000;
        pump(ms, 2, wait < 0 ? 0 : (wait > 10 ? 10 : (int)wait));
    }
    double secs = (double)(nw_clock_mono_ns() - start) / 1e9;
    qsort(lat, nlat, sizeof(*lat), cmp_i64);
    qsort(hop, nhop, sizeof(*hop), cmp_i64);
    printf("RESULT alerts=%zu expected=%d resolved=%" PRIu64 " unexpected=%" PRIu64
           " other_alerts=%" PRIu64,
           nlat, O.cycles * O.devices, n_resolved, n_unexpected, n_other);
    print_us("p50_us", pct_ns(lat, nlat, 0.50));
    print_us("p90_us", pct_ns(lat, nlat, 0.90));
    print_us("p99_us", pct_ns(lat, nlat, 0.99));
    print_us("max_us", nlat ? lat[nlat - 1] : -1);
    printf(" trig1=%" PRIu64 " trig2=%" PRIu64 " trig3=%" PRIu64 " trig4=%" PRIu64, trig[1],
           trig[2], trig[3], trig[4]);
    printf(" hop_n=%zu", nhop);
    print_us("hop_p50_us", pct_ns(hop, nhop, 0.50));
    print_us("hop_p90_us", pct_ns(hop, nhop, 0.90));
    print_us("hop_p99_us", pct_ns(hop, nhop, 0.99));
    print_us("hop_max_us", nhop ? hop[nhop - 1] : -1);
    printf(" probe_windows=%" PRIu64 " seconds=%.1f\n", windows, secs);
    fflush(stdout);
    nw_mqtt_destroy(&ms[0]);
    nw_mqtt_destroy(&ms[1]);
    free(lat);
    free(hop);
    return nlat > 0 ? 0 : 1;
}

/* ---- relay ---------------------------------------------------------------- */

static struct nw_mqtt *relay_m;
static uint64_t relayed, relay_failed;

static void relay_on_connect(void *user)
{
    (void)user;
    if (nw_mqtt_subscribe(relay_m, "albench/hop1/#", 1, NULL) != NW_OK) {
        die("subscribe");
    }
    printf("READY\n");
    fflush(stdout);
}

static void relay_on_message(void *user, const char *topic, const void *payload, size_t len)
{
    (void)user;
    char out[64];
    snprintf(out, sizeof(out), "albench/hop2/%s", topic + 13);
    if (nw_mqtt_publish(relay_m, out, payload, len, 1, false, NULL, NULL) == NW_OK) {
        relayed++;
    } else {
        relay_failed++;
    }
}

static int run_relay(void)
{
    struct nw_mqtt_callbacks cb = {.on_connect = relay_on_connect, .on_message = relay_on_message};
    char id[64];
    snprintf(id, sizeof(id), "alert-latency-relay-%d", (int)getpid());
    relay_m = connect_client(id, &cb, 1000);
    int64_t t_end = nw_clock_mono_ns() + (int64_t)(O.max_s * 1e9);
    while (!stop && nw_clock_mono_ns() < t_end) {
        pump(&relay_m, 1, 50);
    }
    printf("RESULT relayed=%" PRIu64 " failed=%" PRIu64 "\n", relayed, relay_failed);
    nw_mqtt_destroy(&relay_m);
    return 0;
}

/* ---- fake collector --------------------------------------------------------- */

struct fdev {
    char id[NW_DEVICE_ID_MAX + 1];
    uint64_t epoch, wseq, eseq;
    bool dirty;
    int64_t last_ack_ms;
    int out_run;
    bool firing;
    uint64_t alert_id;
};

static struct fdev *fdevs;
static struct nw_mqtt *fake_m;
static struct nw_window *fwins;
static struct nw_event *fevents;
static uint64_t fake_alerts, fake_alert_failed, fake_full;

static struct fdev *fdev_of(const char *id)
{
    size_t mask = FAKE_DEVICES - 1, h = (size_t)nw_hash_str(id) & mask;
    for (size_t k = 0; k < FAKE_DEVICES; k++, h = (h + 1) & mask) {
        if (fdevs[h].id[0] == '\0') {
            snprintf(fdevs[h].id, sizeof(fdevs[h].id), "%s", id);
            return &fdevs[h];
        }
        if (strcmp(fdevs[h].id, id) == 0) {
            return &fdevs[h];
        }
    }
    fake_full++;
    return NULL;
}

static void fake_alert(struct fdev *d, const struct nw_window *w, enum nw_alert_state state)
{
    struct nw_alert a = {.state = state,
                         .severity = NW_SEVERITY_CRITICAL,
                         .alert_id = d->alert_id,
                         .time_ms = w->start_ms + w->duration_ms, /* as the engine */
                         .value = w->rate_mean_hz,
                         .threshold = 140};
    snprintf(a.device_id, sizeof(a.device_id), "%s", d->id);
    snprintf(a.rule, sizeof(a.rule), RULE);
    snprintf(a.message, sizeof(a.message), "fake: rate %.1f Hz", w->rate_mean_hz);
    uint8_t buf[1024];
    size_t len = 0;
    char topic[NW_TOPIC_MAX + 1];
    nw_topic_build(NW_TOPIC_PREFIX_DEFAULT, d->id, NW_TOPIC_ALERT, topic, sizeof(topic), NULL);
    if (nw_codec_encode_alert(codec, &a, buf, sizeof(buf), &len, NULL) == NW_OK &&
        nw_mqtt_publish(fake_m, topic, buf, len, 1, false, NULL, NULL) == NW_OK) {
        fake_alerts++;
    } else {
        fake_alert_failed++;
    }
}

static void fake_on_connect(void *user)
{
    (void)user;
    if (nw_mqtt_subscribe(fake_m, NW_TOPIC_PREFIX_DEFAULT "/+/telemetry", 1, NULL) != NW_OK ||
        nw_mqtt_subscribe(fake_m, NW_TOPIC_PREFIX_DEFAULT "/+/event", 1, NULL) != NW_OK) {
        die("subscribe");
    }
    printf("READY\n");
    fflush(stdout);
}

static void fake_on_message(void *user, const char *topic, const void *payload, size_t len)
{
    (void)user;
    char dev[NW_DEVICE_ID_MAX + 1];
    enum nw_topic_kind kind;
    if (nw_topic_parse(NW_TOPIC_PREFIX_DEFAULT, topic, dev, &kind, NULL, NULL) != NW_OK) {
        return;
    }
    if (kind == NW_TOPIC_EVENT) {
        struct nw_event_batch eb = {.events = fevents, .capacity = 1024};
        struct fdev *d;
        if (nw_codec_decode_events(codec, payload, len, &eb, NULL, NULL) == NW_OK && eb.count > 0 &&
            (d = fdev_of(eb.device_id)) != NULL) {
            d->epoch = eb.epoch;
            uint64_t s = eb.events[eb.count - 1].seq;
            d->eseq = s > d->eseq ? s : d->eseq;
            d->dirty = true;
        }
        return;
    }
    if (kind != NW_TOPIC_TELEMETRY) {
        return;
    }
    struct nw_window_batch wb = {.windows = fwins, .capacity = 4096};
    struct fdev *d;
    if (nw_codec_decode_windows(codec, payload, len, &wb, NULL, NULL) != NW_OK || wb.count == 0 ||
        (d = fdev_of(wb.device_id)) == NULL) {
        return;
    }
    d->epoch = wb.epoch;
    uint64_t s = wb.windows[wb.count - 1].seq;
    d->wseq = s > d->wseq ? s : d->wseq;
    d->dirty = true;
    if (strncmp(dev, O.id_prefix, strlen(O.id_prefix)) != 0) {
        return;
    }
    for (size_t i = 0; i < wb.count; i++) {
        const struct nw_window *w = &wb.windows[i];
        bool out = w->running_ms > 0 && (w->rate_mean_hz < 100 || w->rate_mean_hz > 140);
        d->out_run = out ? d->out_run + 1 : 0;
        if (out && d->out_run == O.hold && !d->firing) {
            d->firing = true;
            d->alert_id++;
            fake_alert(d, w, NW_ALERT_FIRING);
        } else if (!out && d->firing) {
            d->firing = false;
            fake_alert(d, w, NW_ALERT_RESOLVED);
        }
    }
}

static void fake_acks(void)
{
    int64_t now = nw_clock_mono_ms();
    for (size_t h = 0; h < FAKE_DEVICES; h++) {
        struct fdev *d = &fdevs[h];
        if (nw_mqtt_inflight(fake_m) >= FAKE_ACK_INFLIGHT) {
            return; /* the rest of the window is for alerts */
        }
        if (!d->dirty || now - d->last_ack_ms < FAKE_ACK_MS) {
            continue;
        }
        struct nw_ack ack = {.epoch = d->epoch,
                             .window_seq = d->wseq,
                             .event_seq = d->eseq,
                             .time_ms = nw_clock_realtime_ms()};
        snprintf(ack.device_id, sizeof(ack.device_id), "%s", d->id);
        uint8_t buf[256];
        size_t len = 0;
        char topic[NW_TOPIC_MAX + 1];
        nw_topic_build(NW_TOPIC_PREFIX_DEFAULT, d->id, NW_TOPIC_ACK, topic, sizeof(topic), NULL);
        if (nw_codec_encode_ack(codec, &ack, buf, sizeof(buf), &len, NULL) == NW_OK &&
            nw_mqtt_publish(fake_m, topic, buf, len, 1, false, NULL, NULL) == NW_OK) {
            d->dirty = false;
            d->last_ack_ms = now;
        }
    }
}

static int run_fake(void)
{
    fdevs = calloc(FAKE_DEVICES, sizeof(*fdevs));
    fwins = calloc(4096, sizeof(*fwins));
    fevents = calloc(1024, sizeof(*fevents));
    if (!fdevs || !fwins || !fevents) {
        die("out of memory");
    }
    struct nw_mqtt_callbacks cb = {.on_connect = fake_on_connect, .on_message = fake_on_message};
    char id[64];
    snprintf(id, sizeof(id), "alert-latency-fake-collector-%d", (int)getpid());
    fake_m = connect_client(id, &cb, FAKE_INFLIGHT);
    int64_t t_end = nw_clock_mono_ns() + (int64_t)(O.max_s * 1e9), next_ack = 0;
    while (!stop && nw_clock_mono_ns() < t_end) {
        pump(&fake_m, 1, 20);
        if (nw_clock_mono_ms() >= next_ack) {
            fake_acks();
            next_ack = nw_clock_mono_ms() + 50;
        }
    }
    printf("RESULT fake_alerts=%" PRIu64 " alert_publish_failed=%" PRIu64 " table_full=%" PRIu64
           "\n",
           fake_alerts, fake_alert_failed, fake_full);
    nw_mqtt_destroy(&fake_m);
    free(fdevs);
    free(fwins);
    free(fevents);
    return 0;
}

/* ---- main ------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f, "usage: alert_latency probe|relay|fake-collector --port P [--devices K]\n"
               "         [--id-prefix S] [--cycles N] [--in I] [--out O] [--period-ms T]\n"
               "         [--hop-rate R] [--grace-ms G] [--hold O] [--max-s S] [--nodelay]\n"
               "(see the comment at the top of bench/alert_latency.c)\n");
}

static int num(const char *s, int lo, int hi)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || end == s || v < lo || v > hi) {
        fprintf(stderr, "alert_latency: \"%s\" is not in %d..%d\n", s, lo, hi);
        exit(2);
    }
    return (int)v;
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *mode = argv[1];
    static const struct option lo[] = {{"port", required_argument, NULL, 'p'},
                                       {"devices", required_argument, NULL, 'n'},
                                       {"id-prefix", required_argument, NULL, 'x'},
                                       {"cycles", required_argument, NULL, 'c'},
                                       {"in", required_argument, NULL, 'i'},
                                       {"out", required_argument, NULL, 'o'},
                                       {"period-ms", required_argument, NULL, 't'},
                                       {"hop-rate", required_argument, NULL, 'r'},
                                       {"grace-ms", required_argument, NULL, 'g'},
                                       {"hold", required_argument, NULL, 'H'},
                                       {"max-s", required_argument, NULL, 'm'},
                                       {"nodelay", no_argument, NULL, 'N'},
                                       {NULL, 0, NULL, 0}};
    int c;
    optind = 2;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'p':
            O.port = num(optarg, 1, 65535);
            break;
        case 'n':
            O.devices = num(optarg, 1, MAX_PROBES);
            break;
        case 'x':
            O.id_prefix = optarg;
            break;
        case 'c':
            O.cycles = num(optarg, 1, MAX_WINDOWS_PER_PROBE);
            break;
        case 'i':
            O.in = num(optarg, 1, 100);
            break;
        case 'o':
            O.out = num(optarg, 1, 100);
            break;
        case 't':
            O.period_ms = num(optarg, 1, 10000);
            break;
        case 'r':
            O.hop_rate = num(optarg, 0, 10000);
            break;
        case 'g':
            O.grace_ms = num(optarg, 0, 60000);
            break;
        case 'H':
            O.hold = num(optarg, 1, 100);
            break;
        case 'm':
            O.max_s = num(optarg, 1, 3600);
            break;
        case 'N':
            O.nodelay = true;
            break;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!O.port) {
        usage(stderr);
        return 2;
    }
    snprintf(url, sizeof(url), "mqtt://127.0.0.1:%d", O.port);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    struct nw_limits lim;
    nw_limits_default(&lim);
    codec = nw_codec_new(&lim);
    if (!codec) {
        die("out of memory");
    }
    int rc;
    if (strcmp(mode, "probe") == 0) {
        rc = run_probe();
    } else if (strcmp(mode, "relay") == 0) {
        rc = run_relay();
    } else if (strcmp(mode, "fake-collector") == 0) {
        rc = run_fake();
    } else {
        usage(stderr);
        rc = 2;
    }
    nw_codec_destroy(&codec);
    return rc;
}

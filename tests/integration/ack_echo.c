/*
 * ack_echo.c - a stand-in for the collector's ack path, for agent tests.
 *
 *   ack_echo BROKER_URL OUT_FILE [IGNORE_FIRST]
 *
 * Subscribes to needlewatch/v1/+/telemetry and .../event, writes one line
 * per window and event it receives to OUT_FILE:
 *   W DEVICE EPOCH SEQ START_MS CYCLES
 *   E DEVICE EPOCH SEQ TIME_MS KIND
 *   S DEVICE EPOCH STATE WINDOWS_DROPPED EVENTS_DROPPED QUEUE_DEPTH   (status)
 * and acknowledges, at most every 100 ms per device, the highest contiguous
 * seq it has seen from 1 — what a collector that stores everything would
 * ack. The first IGNORE_FIRST telemetry messages are dropped unrecorded
 * and unacknowledged, as a collector that died after the broker's PUBACK
 * would (DESIGN §4), so the agent must re-send them after its ack timeout.
 * Runs until SIGTERM or SIGINT.
 */
#include <needlewatch/clock.h>
#include <needlewatch/codec.h>
#include <needlewatch/mqtt.h>
#include <needlewatch/topic.h>

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEVICES 64
#define PENDING_MAX 8192

struct seqs {
    uint64_t contig;               /* 1..contig all seen */
    uint64_t pending[PENDING_MAX]; /* seen above contig, unordered */
    size_t npending;
};

struct device {
    char id[NW_DEVICE_ID_MAX + 1];
    uint64_t epoch;
    struct seqs w, e;
    bool dirty;
    int64_t last_ack;
};

static struct {
    struct nw_mqtt *mqtt;
    struct nw_codec *codec;
    FILE *out;
    long ignore;
    struct device dev[MAX_DEVICES];
    size_t ndev;
    struct nw_window windows[4096];
    struct nw_event events[1024];
} g;

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    stop = sig;
}

static void see(struct seqs *s, uint64_t seq)
{
    if (seq <= s->contig) {
        return;
    }
    if (seq == s->contig + 1) {
        s->contig = seq;
        for (bool moved = true; moved;) { /* absorb what is now contiguous */
            moved = false;
            for (size_t i = 0; i < s->npending; i++) {
                if (s->pending[i] == s->contig + 1) {
                    s->contig++;
                    s->pending[i--] = s->pending[--s->npending];
                    moved = true;
                }
            }
        }
        return;
    }
    for (size_t i = 0; i < s->npending; i++) {
        if (s->pending[i] == seq) {
            return;
        }
    }
    if (s->npending < PENDING_MAX) {
        s->pending[s->npending++] = seq;
    }
}

static struct device *device(const char *id, uint64_t epoch)
{
    for (size_t i = 0; i < g.ndev; i++) {
        if (!strcmp(g.dev[i].id, id) && g.dev[i].epoch == epoch) {
            return &g.dev[i];
        }
    }
    if (g.ndev == MAX_DEVICES) {
        return NULL;
    }
    struct device *d = &g.dev[g.ndev++];
    memset(d, 0, sizeof(*d));
    snprintf(d->id, sizeof(d->id), "%s", id);
    d->epoch = epoch;
    return d;
}

static void on_message(void *user, const char *topic, const void *payload, size_t len)
{
    (void)user;
    char dev[NW_DEVICE_ID_MAX + 1];
    enum nw_topic_kind kind;
    struct nw_error err = {0};
    if (nw_topic_parse(NW_TOPIC_PREFIX_DEFAULT, topic, dev, &kind, NULL, &err) != NW_OK) {
        return;
    }
    if (kind == NW_TOPIC_TELEMETRY) {
        if (g.ignore > 0) {
            g.ignore--;
            return;
        }
        struct nw_window_batch b = {.windows = g.windows, .capacity = 4096};
        if (nw_codec_decode_windows(g.codec, payload, len, &b, NULL, &err) != NW_OK) {
            fprintf(stderr, "ack_echo: %s\n", err.msg);
            return;
        }
        struct device *d = device(b.device_id, b.epoch);
        for (size_t i = 0; d && i < b.count; i++) {
            fprintf(g.out, "W %s %" PRIu64 " %" PRIu64 " %" PRId64 " %" PRIu64 "\n", b.device_id,
                    b.epoch, g.windows[i].seq, g.windows[i].start_ms, g.windows[i].cycles);
            see(&d->w, g.windows[i].seq);
            d->dirty = true;
        }
    } else if (kind == NW_TOPIC_STATUS && len > 0) {
        struct nw_status st;
        if (nw_codec_decode_status(g.codec, payload, len, &st, NULL, &err) == NW_OK) {
            fprintf(g.out, "S %s %" PRIu64 " %s %" PRIu64 " %" PRIu64 " %" PRIu64 "\n",
                    st.device_id, st.epoch, nw_device_state_name(st.state), st.windows_dropped,
                    st.events_dropped, st.queue_depth);
        }
    } else if (kind == NW_TOPIC_EVENT) {
        struct nw_event_batch b = {.events = g.events, .capacity = 1024};
        if (nw_codec_decode_events(g.codec, payload, len, &b, NULL, &err) != NW_OK) {
            fprintf(stderr, "ack_echo: %s\n", err.msg);
            return;
        }
        struct device *d = device(b.device_id, b.epoch);
        for (size_t i = 0; d && i < b.count; i++) {
            fprintf(g.out, "E %s %" PRIu64 " %" PRIu64 " %" PRId64 " %s\n", b.device_id, b.epoch,
                    g.events[i].seq, g.events[i].time_ms, nw_event_kind_name(g.events[i].kind));
            see(&d->e, g.events[i].seq);
            d->dirty = true;
        }
    }
    fflush(g.out);
}

static void on_connect(void *user)
{
    (void)user;
    nw_mqtt_subscribe(g.mqtt, NW_TOPIC_PREFIX_DEFAULT "/+/telemetry", 1, NULL);
    nw_mqtt_subscribe(g.mqtt, NW_TOPIC_PREFIX_DEFAULT "/+/event", 1, NULL);
    nw_mqtt_subscribe(g.mqtt, NW_TOPIC_PREFIX_DEFAULT "/+/status", 1, NULL);
}

static void send_acks(void)
{
    int64_t now = nw_clock_mono_ms();
    for (size_t i = 0; i < g.ndev; i++) {
        struct device *d = &g.dev[i];
        if (!d->dirty || now - d->last_ack < 100 || !nw_mqtt_can_publish(g.mqtt)) {
            continue;
        }
        struct nw_ack a = {.epoch = d->epoch,
                           .window_seq = d->w.contig,
                           .event_seq = d->e.contig,
                           .time_ms = nw_clock_realtime_ms()};
        snprintf(a.device_id, sizeof(a.device_id), "%s", d->id);
        uint8_t buf[256];
        size_t len;
        char topic[NW_TOPIC_MAX + 1];
        if (nw_codec_encode_ack(g.codec, &a, buf, sizeof(buf), &len, NULL) == NW_OK &&
            nw_topic_build(NW_TOPIC_PREFIX_DEFAULT, d->id, NW_TOPIC_ACK, topic, sizeof(topic),
                           NULL) == NW_OK &&
            nw_mqtt_publish(g.mqtt, topic, buf, len, 1, false, NULL, NULL) == NW_OK) {
            d->dirty = false;
            d->last_ack = now;
        }
    }
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: ack_echo BROKER_URL OUT_FILE [IGNORE_FIRST]\n");
        return 2;
    }
    g.ignore = argc > 3 ? strtol(argv[3], NULL, 10) : 0;
    g.out = fopen(argv[2], "w");
    struct nw_limits lim;
    nw_limits_default(&lim);
    g.codec = nw_codec_new(&lim);
    struct nw_mqtt_options mo = {.url = argv[1], .client_id = "ack-echo", .backoff_max_ms = 1000};
    struct nw_mqtt_callbacks cb = {.on_connect = on_connect, .on_message = on_message};
    struct nw_error err = {0};
    if (!g.out || !g.codec || nw_mqtt_new(&mo, &cb, &g.mqtt, &err) != NW_OK) {
        fprintf(stderr, "ack_echo: %s\n", err.msg[0] ? err.msg : "cannot start");
        return 1;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    nw_mqtt_start(g.mqtt);
    while (!stop) {
        nw_mqtt_poll(g.mqtt, 20);
        send_acks();
    }
    nw_mqtt_destroy(&g.mqtt);
    nw_codec_destroy(&g.codec);
    fclose(g.out);
    return 0;
}

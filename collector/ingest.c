/*
 * ingest.c - MQTT in, validated messages out to the workers, acks back.
 *
 * The ingest -> worker queue is bounded in bytes as well as in messages
 * (CP_HWM): the messages of one read burst go to each worker zero-copy as
 * one batch (pipeline.h: struct cp_in_batch) whose free function runs when
 * the worker has handled it, so the bytes and messages in flight to the
 * workers are known exactly (nw_queue_depth{stage="worker"}). A message
 * that would take the queue beyond worker_queue_bytes is dropped like one
 * at the high-water mark: counted in nw_hwm_drops_total{stage="worker"},
 * never acked, re-sent by its agent.
 */
#include "ingest.h"

#include "metrics.h"
#include "pipeline.h"

#include <needlewatch/hash.h>
#include <needlewatch/clock.h>
#include <needlewatch/codec.h>
#include <needlewatch/log.h>
#include <needlewatch/topic.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <zmq.h>

#define DEFAULT_ACK_INTERVAL_MS 200
#define DEFAULT_MAX_DEVICES 100000
#define ACK_FLUSH_EVERY_MS 50
#define ITEM_REASONS 2
#define ACK_TABLE_MIN_SLOTS 1024
#define QUEUED_MSG_OVERHEAD 128 /* record header, padding, a share of the batch's */

struct pending_ack {
    struct cp_ack ack;
    int64_t last_sent;
    bool dirty;  /* holds a watermark not yet published */
    bool listed; /* its index is in the dirty list */
    bool used;
};

/* The batch being filled for one worker (pipeline.h: struct cp_in_batch). */
struct stage {
    uint8_t *buf; /* NULL when empty; handed to ZeroMQ when sent */
    size_t len, cap;
    struct cp_in_batch head;          /* written at the start of buf when sent */
    uint64_t per_type[CP_STATUS + 1]; /* messages by cp_type, for nw_messages_in_total */
};

struct ingest {
    struct ingest_options opt;
    struct nw_mqtt *mqtt;
    struct nw_codec *codec;
    void *push[CP_MAX_WORKERS];
    struct stage stage[CP_MAX_WORKERS];
    void *acks;
    FILE *dead;
    uint64_t dead_bytes, dead_dropped;
    struct nw_window *windows;
    struct nw_event *events;
    uint32_t *rejected;
    struct pending_ack *table; /* grows by doubling up to max_slots */
    size_t nslots, nused, max_slots;
    uint32_t *dirty; /* indexes of listed slots, so flushing skips idle ones */
    size_t ndirty;
    int64_t next_flush;
    char topic_buf[NW_TOPIC_MAX + 1];
    struct nw_logonce *bad_msg, *bad_item;
};

/* ---- dead letters ------------------------------------------------------ */

static void json_escape(FILE *f, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            fprintf(f, "\\%c", c);
        } else if (c < 0x20) {
            fprintf(f, "\\u%04x", c);
        } else {
            fputc(c, f);
        }
    }
}

static void dead_letter(struct ingest *in, const char *device, uint64_t epoch, const char *kind,
                        uint64_t seq, enum nw_reason reason, const char *detail)
{
    if (!in->dead) {
        return;
    }
    if (in->dead_bytes >= in->opt.dead_letter_max) {
        if (in->dead_dropped++ == 0) {
            nw_log(NW_LOG_ERROR, "ingest",
                   "dead-letter file %s reached %" PRIu64
                   " bytes: further refused items are only counted",
                   in->opt.dead_letter, in->opt.dead_letter_max);
        }
        return;
    }
    char ts[32];
    nw_clock_format_rfc3339(nw_clock_realtime_ms(), ts);
    long before = ftell(in->dead);
    fprintf(in->dead,
            "{\"time\":\"%s\",\"device\":\"%s\",\"epoch\":%" PRIu64
            ",\"kind\":\"%s\",\"seq\":%" PRIu64 ",\"reason\":\"%s\",\"detail\":\"",
            ts, device, epoch, kind, seq, nw_reason_name(reason));
    json_escape(in->dead, detail);
    fputs("\"}\n", in->dead);
    fflush(in->dead);
    long after = ftell(in->dead);
    in->dead_bytes += after > before ? (uint64_t)(after - before) : 0;
}

/* ---- routing ----------------------------------------------------------- */

/* ZeroMQ calls this when a batch is gone: handled by the worker, or
 * discarded. Any thread. */
static void batch_free(void *data, void *hint)
{
    (void)hint;
    struct cp_in_batch b;
    memcpy(&b, data, sizeof(b));
    atomic_fetch_sub_explicit(&cm.worker_queue_bytes, b.cost, memory_order_relaxed);
    atomic_fetch_sub_explicit(&cm.worker_queue_msgs, b.nmsgs, memory_order_relaxed);
    free(data);
}

/* Sends worker i's batch (if any). At the high-water mark the whole batch
 * is dropped and counted per MQTT message: none of them was acked. */
static void flush_stage(struct ingest *in, int i)
{
    struct stage *st = &in->stage[i];
    if (!st->buf) {
        return;
    }
    memcpy(st->buf, &st->head, sizeof(st->head));
    /* Give back the unused end of the 64 KiB buffer: the bytes charged to
     * the bound (per message: payload + QUEUED_MSG_OVERHEAD) then cover
     * what the queued batch really holds, however small the burst. */
    uint8_t *fit = realloc(st->buf, st->len);
    if (fit) {
        st->buf = fit;
    }
    zmq_msg_t m;
    zmq_msg_init_data(&m, st->buf, st->len, batch_free, NULL);
    if (zmq_msg_send(&m, in->push[i], ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&m);                        /* runs batch_free */
        CM_ADD(hwm_drops_worker, st->head.nmsgs); /* not acked: the agents re-send them */
    } else {
        for (int t = 0; t <= CP_STATUS; t++) {
            CM_ADD(messages_in[t], st->per_type[t]);
        }
    }
    memset(st, 0, sizeof(*st));
}

static void flush_stages(struct ingest *in)
{
    for (int i = 0; i < in->opt.workers; i++) {
        flush_stage(in, i);
    }
}

/* Room for need more bytes in worker i's batch: sends a full one first. */
static bool stage_room(struct ingest *in, int i, size_t need)
{
    struct stage *st = &in->stage[i];
    if (st->buf && (st->len + need > st->cap || st->head.nmsgs >= CP_IN_BATCH_MSGS)) {
        flush_stage(in, i);
    }
    if (!st->buf) {
        size_t head = sizeof(st->head);
        size_t cap = head + need > CP_IN_BATCH_BYTES ? head + need : CP_IN_BATCH_BYTES;
        st->buf = malloc(cap);
        if (!st->buf) {
            return false;
        }
        st->len = head, st->cap = cap;
    }
    return true;
}

/* Queues a record of len payload bytes for device's worker, with the
 * first nrejected of in->rejected. Copies payload, or, when it is NULL,
 * returns where the caller writes it. NULL: dropped at the bound (counted;
 * not acked: the agent re-sends it). now: the time the message was
 * validated against, which the worker validates against again. */
static uint8_t *forward(struct ingest *in, const char *device, uint8_t type, int64_t now,
                        const void *payload, size_t len, uint32_t nrejected)
{
    int i = cp_worker_of(device, in->opt.workers);
    size_t need = cp_in_record_size(len, nrejected);
    uint64_t cost = len + nrejected * sizeof(uint32_t) + QUEUED_MSG_OVERHEAD;
    if (CM_GET(worker_queue_bytes) + cost > in->opt.worker_queue_bytes ||
        !stage_room(in, i, need)) {
        CM_ADD(hwm_drops_worker, 1);
        return NULL;
    }
    struct stage *st = &in->stage[i];
    struct cp_in hdr = {
        .type = type, .nrejected = nrejected, .arrival_ms = now, .len = (uint32_t)len};
    uint8_t *at = cp_in_put(st->buf, &st->len, &hdr, payload, in->rejected);
    st->per_type[type]++;
    st->head.nmsgs++, st->head.cost += cost;
    CM_ADD(worker_queue_msgs, 1);
    CM_ADD(worker_queue_bytes, cost);
    return at;
}

static void refuse(struct ingest *in, const char *topic, enum nw_reason reason,
                   const struct nw_error *err)
{
    CM_ADD(rejected[reason], 1);
    nw_logonce_hit(in->bad_msg, (size_t)reason, "%s: %s", topic, err->msg);
}

static bool ids_match(struct ingest *in, const char *topic, const char *topic_dev,
                      const char *payload_dev)
{
    if (strcmp(topic_dev, payload_dev) == 0) {
        return true;
    }
    struct nw_error err;
    nw_error_set(&err, NW_ERR_INVALID, "payload device \"%s\" differs from the topic's",
                 payload_dev);
    refuse(in, topic, NW_REASON_ID_MISMATCH, &err);
    return false;
}

static void on_windows(struct ingest *in, const char *topic, const char *dev, const void *payload,
                       size_t len)
{
    struct nw_window_batch b = {.windows = in->windows, .capacity = in->opt.limits.max_windows};
    enum nw_reason reason = NW_REASON_NONE;
    struct nw_error err = {0};
    if (nw_codec_decode_windows(in->codec, payload, len, &b, &reason, &err) != NW_OK) {
        refuse(in, topic, reason, &err);
        return;
    }
    if (!ids_match(in, topic, dev, b.device_id)) {
        return;
    }
    uint32_t nrej = 0;
    int64_t now = nw_clock_realtime_ms();
    for (size_t i = 0; i < b.count; i++) {
        if (i > 0 && b.windows[i].seq <= b.windows[i - 1].seq) {
            nw_reject(NW_REASON_BAD_SEQUENCE, &reason, &err,
                      "windows[%zu].seq %" PRIu64 " not ascending", i, b.windows[i].seq);
            refuse(in, topic, reason, &err);
            return;
        }
        if (nw_validate_window(&b.windows[i], &in->opt.limits, now, &reason, &err) != NW_OK) {
            in->rejected[nrej++] = (uint32_t)i;
            CM_ADD(items_rejected, 1);
            nw_logonce_hit(in->bad_item, (size_t)reason, "%s window %" PRIu64 ": %s", dev,
                           b.windows[i].seq, err.msg);
            dead_letter(in, dev, b.epoch, "window", b.windows[i].seq, reason, err.msg);
        }
    }
    CM_ADD(windows_in, b.count - nrej);
    uint8_t *at = forward(in, dev, CP_WINDOWS, now, NULL, cp_windows_size(b.count), nrej);
    if (at) {
        cp_windows_put(at, &b);
    }
}

static void on_events(struct ingest *in, const char *topic, const char *dev, const void *payload,
                      size_t len)
{
    struct nw_event_batch b = {.events = in->events, .capacity = in->opt.limits.max_events};
    enum nw_reason reason = NW_REASON_NONE;
    struct nw_error err = {0};
    if (nw_codec_decode_events(in->codec, payload, len, &b, &reason, &err) != NW_OK) {
        refuse(in, topic, reason, &err);
        return;
    }
    if (!ids_match(in, topic, dev, b.device_id)) {
        return;
    }
    uint32_t nrej = 0;
    int64_t now = nw_clock_realtime_ms();
    for (size_t i = 0; i < b.count; i++) {
        if (i > 0 && b.events[i].seq <= b.events[i - 1].seq) {
            nw_reject(NW_REASON_BAD_SEQUENCE, &reason, &err, "events[%zu].seq not ascending", i);
            refuse(in, topic, reason, &err);
            return;
        }
        if (nw_validate_event(&b.events[i], &in->opt.limits, now, &reason, &err) != NW_OK) {
            in->rejected[nrej++] = (uint32_t)i;
            CM_ADD(items_rejected, 1);
            nw_logonce_hit(in->bad_item, (size_t)reason, "%s event %" PRIu64 ": %s", dev,
                           b.events[i].seq, err.msg);
            dead_letter(in, dev, b.epoch, "event", b.events[i].seq, reason, err.msg);
        }
    }
    CM_ADD(events_in, b.count - nrej);
    forward(in, dev, CP_EVENTS, now, payload, len, nrej);
}

static void on_status(struct ingest *in, const char *topic, const char *dev, const void *payload,
                      size_t len)
{
    struct nw_status s;
    enum nw_reason reason = NW_REASON_NONE;
    struct nw_error err = {0};
    if (len == 0) {
        return; /* a retained status being cleared */
    }
    if (nw_codec_decode_status(in->codec, payload, len, &s, &reason, &err) != NW_OK) {
        refuse(in, topic, reason, &err);
        return;
    }
    if (!ids_match(in, topic, dev, s.device_id)) {
        return;
    }
    /* A last will is made when the agent connected, possibly long ago: its
     * time is not judged against now. */
    int64_t now = nw_clock_realtime_ms();
    if (s.state == NW_DEVICE_OFFLINE) {
        s.time_ms = now;
    }
    if (nw_validate_status(&s, &in->opt.limits, now, &reason, &err) != NW_OK) {
        refuse(in, topic, reason, &err);
        return;
    }
    forward(in, dev, CP_STATUS, now, payload, len, 0);
}

static void on_message(void *user, const char *topic, const void *payload, size_t len)
{
    struct ingest *in = user;
    char dev[NW_DEVICE_ID_MAX + 1];
    enum nw_topic_kind kind;
    enum nw_reason reason = NW_REASON_NONE;
    struct nw_error err = {0};
    if (nw_topic_parse(in->opt.prefix, topic, dev, &kind, &reason, &err) != NW_OK) {
        refuse(in, topic, reason, &err);
        return;
    }
    switch (kind) {
    case NW_TOPIC_TELEMETRY:
        on_windows(in, topic, dev, payload, len);
        break;
    case NW_TOPIC_EVENT:
        on_events(in, topic, dev, payload, len);
        break;
    case NW_TOPIC_STATUS:
        on_status(in, topic, dev, payload, len);
        break;
    default:
        break; /* our own acks and alerts */
    }
}

/* ---- MQTT connection --------------------------------------------------- */

static void on_connect(void *user)
{
    struct ingest *in = user;
    static const enum nw_topic_kind kinds[] = {NW_TOPIC_TELEMETRY, NW_TOPIC_EVENT, NW_TOPIC_STATUS};
    for (size_t i = 0; i < 3; i++) {
        char filter[NW_TOPIC_MAX + 80];
        struct nw_error err = {0};
        if (nw_topic_filter(in->opt.prefix, in->opt.share_group, kinds[i], filter, sizeof(filter),
                            &err) != NW_OK ||
            nw_mqtt_subscribe(in->mqtt, filter, 1, &err) != NW_OK) {
            nw_log(NW_LOG_ERROR, "ingest", "subscribe: %s", err.msg);
        }
    }
    CM_SET(broker_up, 1);
    nw_log(NW_LOG_NOTICE, "ingest", "broker %s up; subscribed under %s/+/", in->opt.mqtt.url,
           in->opt.prefix);
}

static void on_disconnect(void *user, const char *reason)
{
    struct ingest *in = user;
    CM_SET(broker_up, 0);
    nw_log(NW_LOG_WARN, "ingest", "broker %s down: %s; agents keep their data until it returns",
           in->opt.mqtt.url, reason);
}

/* ---- acks -------------------------------------------------------------- */

static struct pending_ack *probe(struct pending_ack *table, size_t nslots, const char *device)
{
    size_t mask = nslots - 1;
    for (size_t i = nw_hash_str(device) & mask, n = 0; n < nslots; i = (i + 1) & mask, n++) {
        struct pending_ack *p = &table[i];
        if (!p->used || strcmp(p->ack.device, device) == 0) {
            return p;
        }
    }
    return NULL;
}

/* Doubles the table (at a load factor of 3/4), keeping every slot and the
 * dirty list. false if at max_slots or out of memory: the table stays
 * usable. */
static bool grow(struct ingest *in)
{
    size_t n = in->nslots * 2;
    if (n > in->max_slots) {
        return false;
    }
    struct pending_ack *t = calloc(n, sizeof(*t));
    uint32_t *dirty = calloc(n, sizeof(*dirty));
    if (!t || !dirty) {
        free(t);
        free(dirty);
        return false;
    }
    size_t nd = 0;
    for (size_t i = 0; i < in->nslots; i++) {
        const struct pending_ack *p = &in->table[i];
        if (p->used) {
            struct pending_ack *q = probe(t, n, p->ack.device);
            *q = *p;
            if (q->listed) {
                dirty[nd++] = (uint32_t)(q - t);
            }
        }
    }
    free(in->table);
    free(in->dirty);
    in->table = t;
    in->dirty = dirty;
    in->ndirty = nd;
    in->nslots = n;
    return true;
}

static struct pending_ack *slot_of(struct ingest *in, const char *device)
{
    struct pending_ack *p = probe(in->table, in->nslots, device);
    if (p && !p->used && 4 * (in->nused + 1) > 3 * in->nslots && grow(in)) {
        p = probe(in->table, in->nslots, device);
    }
    if (p && !p->used) {
        in->nused++;
    }
    return p;
}

static bool publish_ack(struct ingest *in, struct pending_ack *p)
{
    struct nw_ack a = {.epoch = p->ack.epoch,
                       .window_seq = p->ack.window_seq,
                       .event_seq = p->ack.event_seq,
                       .time_ms = nw_clock_realtime_ms()};
    memcpy(a.device_id, p->ack.device, sizeof(a.device_id));
    uint8_t buf[256];
    size_t len = 0;
    if (!nw_mqtt_can_publish(in->mqtt) ||
        nw_codec_encode_ack(in->codec, &a, buf, sizeof(buf), &len, NULL) != NW_OK ||
        nw_topic_build(in->opt.prefix, a.device_id, NW_TOPIC_ACK, in->topic_buf,
                       sizeof(in->topic_buf), NULL) != NW_OK ||
        nw_mqtt_publish(in->mqtt, in->topic_buf, buf, len, 1, false, NULL, NULL) != NW_OK) {
        return false;
    }
    CM_ADD(acks_sent, 1);
    p->dirty = false;
    p->last_sent = nw_clock_mono_ms();
    return true;
}

static void take_ack(struct ingest *in, const struct cp_ack *a)
{
    struct pending_ack *p = slot_of(in, a->device);
    if (!p) { /* table full: send without coalescing */
        struct pending_ack tmp = {.ack = *a, .used = true};
        publish_ack(in, &tmp);
        return;
    }
    if (p->used && p->dirty) {
        CM_ADD(acks_coalesced, 1);
    }
    p->used = true;
    p->ack = *a;
    p->dirty = true;
    if (nw_clock_mono_ms() - p->last_sent >= in->opt.ack_interval_ms && publish_ack(in, p)) {
        return;
    }
    if (!p->listed) {
        p->listed = true;
        in->dirty[in->ndirty++] = (uint32_t)(p - in->table);
    }
}

/* An alert transition from a worker: published at once, QoS 1, never
 * coalesced (alerts are rare and latency matters). */
static void publish_alert(struct ingest *in, const struct nw_alert *a)
{
    uint8_t buf[1024];
    size_t len = 0;
    if (nw_codec_encode_alert(in->codec, a, buf, sizeof(buf), &len, NULL) != NW_OK ||
        nw_topic_build(in->opt.prefix, a->device_id, NW_TOPIC_ALERT, in->topic_buf,
                       sizeof(in->topic_buf), NULL) != NW_OK ||
        !nw_mqtt_can_publish(in->mqtt) ||
        nw_mqtt_publish(in->mqtt, in->topic_buf, buf, len, 1, false, NULL, NULL) != NW_OK) {
        CM_ADD(alerts_mqtt_failed, 1); /* the store and the other outputs still have it */
        return;
    }
    CM_ADD(alerts_mqtt, 1);
}

static void drain_acks(struct ingest *in)
{
    union {
        struct cp_ack ack;
        struct nw_alert alert;
    } m;
    for (int i = 0; i < 10000; i++) {
        int n = zmq_recv(in->acks, &m, sizeof(m), ZMQ_DONTWAIT);
        if (n < 0) {
            break;
        }
        if (n == (int)sizeof(m.ack)) {
            take_ack(in, &m.ack);
        } else if (n == (int)sizeof(m.alert)) {
            publish_alert(in, &m.alert);
        }
    }
}

static void flush_acks(struct ingest *in, int64_t now)
{
    if (now < in->next_flush) {
        return;
    }
    in->next_flush = now + ACK_FLUSH_EVERY_MS;
    size_t keep = 0;
    for (size_t i = 0; i < in->ndirty; i++) {
        struct pending_ack *p = &in->table[in->dirty[i]];
        bool due = now - p->last_sent >= in->opt.ack_interval_ms;
        if (p->dirty && (!due || !publish_ack(in, p))) {
            in->dirty[keep++] = in->dirty[i]; /* not yet due, or window full */
        } else {
            p->listed = false;
        }
    }
    in->ndirty = keep;
}

/* ---- lifecycle --------------------------------------------------------- */

static enum nw_err open_sockets(struct ingest *in, void *zctx, struct nw_error *out_err)
{
    for (int i = 0; i < in->opt.workers; i++) {
        in->push[i] = cp_open(zctx, ZMQ_PUSH, in->opt.worker_endpoints[i], false, out_err);
        if (!in->push[i]) {
            return NW_ERR_CONFIG;
        }
    }
    in->acks = cp_open(zctx, ZMQ_PULL, in->opt.ack_endpoint, true, out_err);
    return in->acks ? NW_OK : NW_ERR_CONFIG;
}

static enum nw_err alloc_buffers(struct ingest *in, struct nw_error *out_err)
{
    size_t cap = in->opt.limits.max_windows > in->opt.limits.max_events ? in->opt.limits.max_windows
                                                                        : in->opt.limits.max_events;
    /* The ack table starts small and doubles with the devices seen (at a
     * load factor of 3/4), up to max_devices at 1/2: 10 000 devices cost
     * 1.8 MiB, not the 56 MiB of a table sized for the bound up front. */
    in->max_slots = 16;
    while (in->max_slots < 2 * in->opt.max_devices) {
        in->max_slots *= 2;
    }
    in->nslots = in->max_slots < ACK_TABLE_MIN_SLOTS ? in->max_slots : ACK_TABLE_MIN_SLOTS;
    static const char *const reasons[NW_REASON__COUNT] = {
        "none",          "too_big",    "malformed",    "too_complex", "missing_field",
        "bad_device_id", "bad_string", "bad_count",    "not_finite",  "out_of_range",
        "impossible",    "bad_time",   "bad_sequence", "id_mismatch", "bad_topic"};
    in->codec = nw_codec_new(&in->opt.limits);
    in->windows = calloc(in->opt.limits.max_windows, sizeof(*in->windows));
    in->events = calloc(in->opt.limits.max_events, sizeof(*in->events));
    in->rejected = calloc(cap, sizeof(*in->rejected));
    in->table = calloc(in->nslots, sizeof(*in->table));
    in->dirty = calloc(in->nslots, sizeof(*in->dirty));
    in->bad_msg = nw_logonce_new(NW_LOG_WARN, "ingest", "rejected", "messages", reasons,
                                 NW_REASON__COUNT, 60000);
    in->bad_item = nw_logonce_new(NW_LOG_WARN, "ingest", "dead-lettered", "items", reasons,
                                  NW_REASON__COUNT, 60000);
    if (!in->codec || !in->windows || !in->events || !in->rejected || !in->table || !in->dirty ||
        !in->bad_msg || !in->bad_item) {
        return nw_error_set(out_err, NW_ERR_NOMEM, "ingest: out of memory");
    }
    return NW_OK;
}

enum nw_err ingest_new(const struct ingest_options *opt, void *zctx, struct ingest **out,
                       struct nw_error *out_err)
{
    struct ingest *in = calloc(1, sizeof(*in));
    if (!in) {
        return nw_error_set(out_err, NW_ERR_NOMEM, "ingest: out of memory");
    }
    in->opt = *opt;
    if (in->opt.ack_interval_ms <= 0) {
        in->opt.ack_interval_ms = DEFAULT_ACK_INTERVAL_MS;
    }
    if (in->opt.max_devices == 0) {
        in->opt.max_devices = DEFAULT_MAX_DEVICES;
    }
    if (in->opt.worker_queue_bytes == 0) {
        in->opt.worker_queue_bytes = CP_WORKER_QUEUE_BYTES;
    }
    CM_SET(worker_queue_bound_bytes, in->opt.worker_queue_bytes);
    struct nw_mqtt_callbacks cb = {.user = in,
                                   .on_connect = on_connect,
                                   .on_disconnect = on_disconnect,
                                   .on_message = on_message};
    enum nw_err rc = alloc_buffers(in, out_err);
    if (rc == NW_OK && opt->dead_letter) {
        in->dead = fopen(opt->dead_letter, "a");
        if (!in->dead) {
            rc = nw_error_set(out_err, NW_ERR_CONFIG, "dead-letter file %s: %s", opt->dead_letter,
                              strerror(errno));
        }
    }
    if (rc == NW_OK) {
        rc = open_sockets(in, zctx, out_err);
    }
    if (rc == NW_OK) {
        rc = nw_mqtt_new(&opt->mqtt, &cb, &in->mqtt, out_err);
    }
    if (rc != NW_OK) {
        ingest_destroy(&in);
        return rc;
    }
    *out = in;
    return NW_OK;
}

void ingest_destroy(struct ingest **p)
{
    if (!p || !*p) {
        return;
    }
    struct ingest *in = *p;
    nw_mqtt_destroy(&in->mqtt);
    for (int i = 0; i < CP_MAX_WORKERS; i++) {
        free(in->stage[i].buf); /* never sent: no worker holds it */
        if (in->push[i]) {
            zmq_close(in->push[i]);
        }
    }
    if (in->acks) {
        zmq_close(in->acks);
    }
    if (in->dead) {
        fclose(in->dead);
    }
    nw_codec_destroy(&in->codec);
    nw_logonce_destroy(&in->bad_msg);
    nw_logonce_destroy(&in->bad_item);
    free(in->windows);
    free(in->events);
    free(in->rejected);
    free(in->table);
    free(in->dirty);
    free(in);
    *p = NULL;
}

static void poll_once(struct ingest *in, int timeout_ms)
{
    zmq_pollitem_t items[2] = {{.socket = in->acks, .events = ZMQ_POLLIN}};
    int n = 1, fd = nw_mqtt_fd(in->mqtt);
    if (fd >= 0) {
        items[n++] = (zmq_pollitem_t){
            .fd = fd, .events = ZMQ_POLLIN | (nw_mqtt_want_write(in->mqtt) ? ZMQ_POLLOUT : 0)};
    }
    int t = nw_mqtt_timeout_ms(in->mqtt);
    zmq_poll(items, n, t < timeout_ms ? t : timeout_ms);
    bool rd = n > 1 && (items[1].revents & (ZMQ_POLLIN | ZMQ_POLLERR));
    bool wr = n > 1 && (items[1].revents & ZMQ_POLLOUT);
    nw_mqtt_step(in->mqtt, rd, wr);
    flush_stages(in); /* what this read burst brought, one message per worker */
    drain_acks(in);
    flush_acks(in, nw_clock_mono_ms());
    nw_logonce_flush(in->bad_msg, false);
    nw_logonce_flush(in->bad_item, false);
}

void ingest_run(struct ingest *in, volatile sig_atomic_t *stop)
{
    prctl(PR_SET_NAME, "nw-ingest", 0, 0, 0); /* top -H, perf */
    nw_mqtt_start(in->mqtt);
    struct timespec pause = {.tv_sec = in->opt.coalesce_ms / 1000,
                             .tv_nsec = (in->opt.coalesce_ms % 1000) * 1000000};
    while (!*stop) {
        struct nw_mqtt_stats a, b;
        nw_mqtt_get_stats(in->mqtt, &a);
        poll_once(in, ACK_FLUSH_EVERY_MS);
        nw_mqtt_get_stats(in->mqtt, &b);
        /* A wake-up that drained the socket after a few messages: wait for
         * more before polling again, so that at moderate rates a wake-up
         * takes a batch, not one message. Each wake-up costs a poll(), two
         * context switches and a worker's wake-up: at 10 000 windows/s
         * that was most of the collector's CPU. A full burst means load:
         * no pause. */
        uint64_t got = b.received - a.received;
        if (in->opt.coalesce_ms > 0 && got > 0 && got < NW_MQTT_READ_BURST) {
            nanosleep(&pause, NULL);
        }
    }
    /* Last acks for what the writer stored during shutdown, then go. */
    int64_t until = nw_clock_mono_ms() + 2000;
    while (nw_clock_mono_ms() < until) {
        poll_once(in, 20);
        if (in->ndirty == 0 && nw_mqtt_inflight(in->mqtt) == 0) {
            break;
        }
    }
    nw_logonce_flush(in->bad_msg, true);
    nw_logonce_flush(in->bad_item, true);
    nw_mqtt_stop(in->mqtt);
}

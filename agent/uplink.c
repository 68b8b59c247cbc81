/*
 * uplink.c - queue records out as batched MQTT messages, acks back in.
 *
 * Queue records hold one window or event each, encoded as a one-entry
 * batch, so a record is self-describing and survives format changes of the
 * in-memory structs. Building a message decodes consecutive records of one
 * type and re-encodes them as one batch; a record of the other type ends
 * the batch and waits in a one-record look-ahead.
 */
#include "uplink.h"

#include <needlewatch/log.h>
#include <needlewatch/topic.h>

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_BATCH_MAX 256
#define DEFAULT_ACK_TIMEOUT_MS 30000

struct item {
    uint8_t type; /* 0: none */
    struct nw_window w;
    struct nw_event e;
};

struct agent_uplink {
    struct agent_uplink_options opt;
    struct nw_dq *dq;
    struct nw_mqtt *mqtt;
    struct nw_codec *codec;
    char topic_telemetry[NW_TOPIC_MAX + 1];
    char topic_event[NW_TOPIC_MAX + 1];
    char topic_ack[NW_TOPIC_MAX + 1];
    struct nw_window *windows;
    struct nw_event *events;
    size_t events_max;
    uint8_t *out;
    size_t out_cap;
    struct item look;
    uint64_t floor[NW_DQ_TYPES]; /* first seq read per type since the rewind */
    int64_t last_progress_ms;
    bool waiting_logged;
    struct agent_uplink_stats stats;
};

struct agent_uplink *agent_uplink_new(const struct agent_uplink_options *opt, struct nw_dq *dq,
                                      struct nw_mqtt *mqtt, struct nw_codec *codec)
{
    struct agent_uplink *u = calloc(1, sizeof(*u));
    if (!u) {
        return NULL;
    }
    u->opt = *opt;
    u->opt.batch_max = opt->batch_max ? opt->batch_max : DEFAULT_BATCH_MAX;
    u->opt.ack_timeout_ms = opt->ack_timeout_ms ? opt->ack_timeout_ms : DEFAULT_ACK_TIMEOUT_MS;
    const struct nw_limits *lim = nw_codec_limits(codec);
    if (u->opt.batch_max > lim->max_windows) {
        u->opt.batch_max = lim->max_windows;
    }
    u->events_max = u->opt.batch_max < lim->max_events ? u->opt.batch_max : lim->max_events;
    u->dq = dq, u->mqtt = mqtt, u->codec = codec;
    u->out_cap = lim->max_payload;
    u->windows = calloc(u->opt.batch_max, sizeof(*u->windows));
    u->events = calloc(u->events_max, sizeof(*u->events));
    u->out = malloc(u->out_cap);
    bool topics = nw_topic_build(opt->prefix, opt->device_id, NW_TOPIC_TELEMETRY,
                                 u->topic_telemetry, sizeof(u->topic_telemetry), NULL) == NW_OK &&
                  nw_topic_build(opt->prefix, opt->device_id, NW_TOPIC_EVENT, u->topic_event,
                                 sizeof(u->topic_event), NULL) == NW_OK &&
                  nw_topic_build(opt->prefix, opt->device_id, NW_TOPIC_ACK, u->topic_ack,
                                 sizeof(u->topic_ack), NULL) == NW_OK;
    if (!u->windows || !u->events || !u->out || !topics) {
        agent_uplink_destroy(&u);
    }
    return u;
}

void agent_uplink_destroy(struct agent_uplink **p)
{
    if (!p || !*p) {
        return;
    }
    free((*p)->windows);
    free((*p)->events);
    free((*p)->out);
    free(*p);
    *p = NULL;
}

void agent_uplink_get_stats(const struct agent_uplink *u, struct agent_uplink_stats *out)
{
    *out = u->stats;
}

static void rewind_all(struct agent_uplink *u)
{
    nw_dq_rewind(u->dq);
    u->look.type = 0;
    memset(u->floor, 0, sizeof(u->floor));
}

/* The lowest seq of type still in the queue: the first one read since the
 * rewind (records before it were dropped or acked), or past the ack. */
static uint64_t queue_floor(struct agent_uplink *u, uint8_t type)
{
    struct nw_dq_stats st;
    nw_dq_stats(u->dq, &st);
    uint64_t past_ack = st.acked_seq[type] + 1;
    return u->floor[type] > past_ack ? u->floor[type] : past_ack;
}

void agent_uplink_on_connect(struct agent_uplink *u, int64_t now_ms)
{
    struct nw_error err = {0};
    if (nw_mqtt_subscribe(u->mqtt, u->topic_ack, 1, &err) != NW_OK) {
        nw_log(NW_LOG_WARN, "uplink", "%s", err.msg);
    }
    rewind_all(u); /* whatever was in flight on the old connection goes again */
    u->last_progress_ms = now_ms;
}

/* ---- acks -------------------------------------------------------------- */

static bool apply_ack(struct agent_uplink *u, uint8_t type, uint64_t seq)
{
    struct nw_error err = {0};
    struct nw_dq_stats before, after;
    nw_dq_stats(u->dq, &before);
    enum nw_err rc = nw_dq_ack(u->dq, type, seq, &err);
    if (rc == NW_ERR_INVALID) {
        u->stats.acks_ignored++;
        nw_log(NW_LOG_WARN, "uplink", "ack ignored: %s", err.msg);
        return false;
    }
    if (rc != NW_OK) {
        nw_log(NW_LOG_WARN, "uplink", "ack: %s", err.msg);
    }
    nw_dq_stats(u->dq, &after);
    return after.acked_seq[type] > before.acked_seq[type];
}

void agent_uplink_on_message(struct agent_uplink *u, const char *topic, const void *payload,
                             size_t len, int64_t now_ms)
{
    if (strcmp(topic, u->topic_ack) != 0) {
        return;
    }
    struct nw_ack ack;
    struct nw_error err = {0};
    if (nw_codec_decode_ack(u->codec, payload, len, &ack, NULL, &err) != NW_OK ||
        strcmp(ack.device_id, u->opt.device_id) != 0 || ack.epoch != u->opt.epoch) {
        u->stats.acks_ignored++;
        nw_log(NW_LOG_DEBUG, "uplink", "ack ignored: %s",
               err.msg[0] ? err.msg : "another device or epoch");
        return;
    }
    u->stats.acks++;
    bool moved = apply_ack(u, NW_DQ_TYPE_WINDOW, ack.window_seq);
    moved = apply_ack(u, NW_DQ_TYPE_EVENT, ack.event_seq) || moved;
    if (moved) {
        u->last_progress_ms = now_ms;
        if (u->waiting_logged) {
            nw_log(NW_LOG_INFO, "uplink",
                   "acks flowing again (windows to %" PRIu64 ", events to %" PRIu64 ")",
                   ack.window_seq, ack.event_seq);
            u->waiting_logged = false;
        }
    }
}

void agent_uplink_on_publish(struct agent_uplink *u, int reason_code, int64_t now_ms)
{
    (void)now_ms;
    if (reason_code >= 0x80) {
        /* Refused (e.g. 0x87 not authorised): the records stay queued and
         * go again after the ack timeout; never counted as sent. */
        if (u->stats.refused++ == 0) {
            nw_log(NW_LOG_ERROR, "uplink", "broker refused a publish: reason 0x%02x", reason_code);
        }
    }
}

/* ---- batching ---------------------------------------------------------- */

/* The next queued item, from the look-ahead or the queue; false if none. */
static bool next_item(struct agent_uplink *u, struct item *it)
{
    if (u->look.type) {
        *it = u->look;
        u->look.type = 0;
        return true;
    }
    for (int guard = 0; guard < 64; guard++) {
        struct nw_dq_record rec;
        struct nw_error err = {0};
        if (nw_dq_next(u->dq, &rec, &err) != NW_OK) {
            return false;
        }
        enum nw_err rc;
        if (rec.type == NW_DQ_TYPE_WINDOW) {
            struct nw_window_batch b = {.windows = &it->w, .capacity = 1};
            rc = nw_codec_decode_windows(u->codec, rec.payload, rec.len, &b, NULL, &err);
        } else if (rec.type == NW_DQ_TYPE_EVENT) {
            struct nw_event_batch b = {.events = &it->e, .capacity = 1};
            rc = nw_codec_decode_events(u->codec, rec.payload, rec.len, &b, NULL, &err);
        } else {
            rc = nw_error_set(&err, NW_ERR_DECODE, "unknown record type %u", rec.type);
        }
        if (rc == NW_OK) {
            it->type = rec.type;
            if (u->floor[rec.type] == 0) {
                u->floor[rec.type] = rec.seq;
            }
            return true;
        }
        if (u->stats.bad_records++ == 0) {
            nw_log(NW_LOG_ERROR, "uplink", "queue record seq %" PRIu64 " skipped: %s", rec.seq,
                   err.msg);
        }
    }
    return false;
}

/* Fills u->windows or u->events with consecutive items of one type. */
static uint8_t gather(struct agent_uplink *u, size_t *out_n)
{
    uint8_t type = 0;
    size_t n = 0;
    struct item it;
    while (next_item(u, &it)) {
        if (type && it.type != type) {
            u->look = it;
            break;
        }
        type = it.type;
        if (type == NW_DQ_TYPE_WINDOW) {
            u->windows[n++] = it.w;
        } else {
            u->events[n++] = it.e;
        }
        if (n == (type == NW_DQ_TYPE_WINDOW ? u->opt.batch_max : u->events_max)) {
            break;
        }
    }
    *out_n = n;
    return type;
}

static enum nw_err publish_batch(struct agent_uplink *u, uint8_t type, size_t n,
                                 struct nw_error *err)
{
    size_t len = 0;
    enum nw_err rc;
    const char *topic;
    if (type == NW_DQ_TYPE_WINDOW) {
        struct nw_window_batch b = {.epoch = u->opt.epoch,
                                    .count = n,
                                    .capacity = n,
                                    .windows = u->windows,
                                    .queue_floor = queue_floor(u, NW_DQ_TYPE_WINDOW)};
        memcpy(b.device_id, u->opt.device_id, strlen(u->opt.device_id) + 1);
        rc = nw_codec_encode_windows(u->codec, &b, u->out, u->out_cap, &len, err);
        topic = u->topic_telemetry;
    } else {
        struct nw_event_batch b = {.epoch = u->opt.epoch,
                                   .count = n,
                                   .capacity = n,
                                   .events = u->events,
                                   .queue_floor = queue_floor(u, NW_DQ_TYPE_EVENT)};
        memcpy(b.device_id, u->opt.device_id, strlen(u->opt.device_id) + 1);
        rc = nw_codec_encode_events(u->codec, &b, u->out, u->out_cap, &len, err);
        topic = u->topic_event;
    }
    if (rc == NW_OK) {
        rc = nw_mqtt_publish(u->mqtt, topic, u->out, len, 1, false, NULL, err);
    }
    return rc;
}

static void check_timeout(struct agent_uplink *u, int64_t now_ms)
{
    struct nw_dq_stats st;
    nw_dq_stats(u->dq, &st);
    uint64_t outstanding = st.unacked[NW_DQ_TYPE_WINDOW] + st.unacked[NW_DQ_TYPE_EVENT];
    if (outstanding == 0) {
        u->last_progress_ms = now_ms;
        return;
    }
    if (now_ms - u->last_progress_ms < u->opt.ack_timeout_ms || !nw_mqtt_connected(u->mqtt)) {
        return;
    }
    if (!u->waiting_logged) {
        nw_log(NW_LOG_WARN, "uplink",
               "no ack for %" PRId64 " s with %" PRIu64 " records outstanding: re-sending from "
               "window %" PRIu64 ", event %" PRIu64,
               u->opt.ack_timeout_ms / 1000, outstanding, st.acked_seq[NW_DQ_TYPE_WINDOW] + 1,
               st.acked_seq[NW_DQ_TYPE_EVENT] + 1);
        u->waiting_logged = true;
    }
    u->stats.resends++;
    rewind_all(u);
    u->last_progress_ms = now_ms;
}

size_t agent_uplink_pump(struct agent_uplink *u, int64_t now_ms)
{
    check_timeout(u, now_ms);
    size_t published = 0;
    while (nw_mqtt_can_publish(u->mqtt)) {
        size_t n = 0;
        uint8_t type = gather(u, &n);
        if (n == 0) {
            break;
        }
        struct nw_error err = {0};
        if (publish_batch(u, type, n, &err) != NW_OK) {
            nw_log(NW_LOG_WARN, "uplink", "%s; will re-send", err.msg);
            rewind_all(u);
            break;
        }
        u->stats.messages++;
        if (type == NW_DQ_TYPE_WINDOW) {
            u->stats.windows_sent += n;
        } else {
            u->stats.events_sent += n;
        }
        published++;
    }
    return published;
}

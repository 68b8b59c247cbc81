/*
 * uplink.h - from the disk queue to the broker and back: batching, the
 * in-flight window, end-to-end acks and re-sends.
 *
 * Records leave the queue in append order. Consecutive records of one type
 * become one MQTT message (a WindowBatch of up to batch_max windows, or an
 * EventBatch), so an agent catching up after an outage sends a few large
 * messages instead of thousands of small ones. A message is published only
 * while connected and below the in-flight bound (nw_mqtt_can_publish), so
 * nothing piles up in libmosquitto's memory.
 *
 * A record counts as delivered only when the collector's ack covers it
 * (DESIGN §4). On every connect the queue cursor is rewound, and when acks
 * stop advancing for ack_timeout_ms while records are outstanding, it is
 * rewound again: unacknowledged records are re-sent, in order. Duplicates
 * are harmless (the store is idempotent); loss is not.
 */
#ifndef AGENT_UPLINK_H
#define AGENT_UPLINK_H

#include <needlewatch/codec.h>
#include <needlewatch/dq.h>
#include <needlewatch/mqtt.h>

#include <stdint.h>

struct agent_uplink_options {
    const char *device_id; /* borrowed for the uplink's life */
    const char *prefix;    /* topic prefix */
    uint64_t epoch;
    size_t batch_max;       /* windows per message, default 256 */
    int64_t ack_timeout_ms; /* default 30000 */
};

struct agent_uplink_stats {
    uint64_t messages;     /* MQTT messages published */
    uint64_t windows_sent; /* windows in them, re-sends included */
    uint64_t events_sent;
    uint64_t resends;      /* rewinds after a timeout */
    uint64_t acks;         /* acks applied */
    uint64_t acks_ignored; /* other epoch, ahead of the queue, malformed */
    uint64_t refused;      /* PUBACK with a failure reason code */
    uint64_t bad_records;  /* queue records that did not decode */
};

struct agent_uplink;

/* dq, mqtt and codec are borrowed and must outlive the uplink. NULL when
 * out of memory. The caller owns the result. */
struct agent_uplink *agent_uplink_new(const struct agent_uplink_options *opt, struct nw_dq *dq,
                                      struct nw_mqtt *mqtt, struct nw_codec *codec);
void agent_uplink_destroy(struct agent_uplink **p);

/* From the MQTT callbacks: */
void agent_uplink_on_connect(struct agent_uplink *u, int64_t now_ms);
void agent_uplink_on_message(struct agent_uplink *u, const char *topic, const void *payload,
                             size_t len, int64_t now_ms);
void agent_uplink_on_publish(struct agent_uplink *u, int reason_code, int64_t now_ms);

/* Publishes what the in-flight window allows and re-sends on ack timeout.
 * Returns the number of messages published. */
size_t agent_uplink_pump(struct agent_uplink *u, int64_t now_ms);

void agent_uplink_get_stats(const struct agent_uplink *u, struct agent_uplink_stats *out);

#endif

/*
 * ingest.h - the collector's MQTT side: subscribe, decode, validate, route;
 * and publish the acks the workers ask for.
 *
 * Every message is decoded and checked with the core codec before it goes
 * anywhere. A message that fails as a whole (malformed, too big, wrong
 * device id, topic and payload ids differ) is dropped and counted by
 * reason, logged once per reason per minute. A single window or event that
 * fails (NaN, absurd time...) is written to the dead-letter file with the
 * device, seq and reason, and counted as settled, so one bad reading never
 * blocks a device's acks; the rest of its batch goes on.
 *
 * Acks are coalesced per device: at most one per ack_interval_ms, carrying
 * the newest watermark.
 */
#ifndef COLLECTOR_INGEST_H
#define COLLECTOR_INGEST_H

#include <needlewatch/err.h>
#include <needlewatch/mqtt.h>
#include <needlewatch/validate.h>

#include <signal.h>
#include <stdint.h>

struct ingest_options {
    struct nw_mqtt_options mqtt; /* strings borrowed for the ingest's life */
    const char *prefix;
    const char *share_group; /* NULL: plain subscriptions */
    int workers;
    const char *const *worker_endpoints; /* [workers], connected */
    const char *ack_endpoint;            /* bound here */
    const char *dead_letter;             /* file path; NULL: log only */
    uint64_t dead_letter_max;            /* bytes; then lines are only counted */
    int64_t ack_interval_ms;             /* default 200 */
    int64_t coalesce_ms;         /* pause after a wake-up that found few messages; 0: none */
    size_t max_devices;          /* ack coalescing table; default 100000 */
    uint64_t worker_queue_bytes; /* bound of the queue to the workers (all of them);
                                    default CP_WORKER_QUEUE_BYTES */
    struct nw_limits limits;
};

struct ingest;

/* zctx is borrowed. The caller owns *out. NW_ERR_CONFIG for bad options. */
enum nw_err ingest_new(const struct ingest_options *opt, void *zctx, struct ingest **out,
                       struct nw_error *out_err);
void ingest_destroy(struct ingest **p);

/* Runs until *stop becomes non-zero; then flushes pending acks (bounded)
 * and disconnects. */
void ingest_run(struct ingest *in, volatile sig_atomic_t *stop);

#endif

/*
 * metrics.h - the collector's counters and the /metrics text.
 *
 * The one piece of shared mutable state between the collector's threads:
 * each counter is written by one stage with relaxed atomic adds and read
 * by the HTTP thread, which needs no consistency between counters.
 */
#ifndef COLLECTOR_METRICS_H
#define COLLECTOR_METRICS_H

#include "pipeline.h"

#include <needlewatch/validate.h>

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct collector_metrics {
    atomic_uint_fast64_t messages_in[4];             /* by enum cp_type */
    atomic_uint_fast64_t windows_in, events_in;      /* items in accepted messages */
    atomic_uint_fast64_t rejected[NW_REASON__COUNT]; /* whole messages */
    atomic_uint_fast64_t items_rejected;             /* single windows/events, dead-lettered */
    atomic_uint_fast64_t hwm_drops_worker, hwm_drops_writer, hwm_drops_settle;
    atomic_uint_fast64_t points_stored, store_writes, store_failures;
    atomic_uint_fast64_t store_latency_us_sum, store_latency_us_max;
    atomic_uint_fast64_t points_pending; /* in the writer, not yet stored */
    atomic_uint_fast64_t spool_records;
    atomic_uint_fast64_t seqs_lost; /* skipped over by a queue floor */
    atomic_uint_fast64_t acks_sent, acks_coalesced;
    atomic_uint_fast64_t devices;
    /* alert engine (rules.h): transitions by state, outputs, sessions */
    atomic_uint_fast64_t alerts_fired, alerts_resolved, alerts_acked, alerts_renotified;
    atomic_uint_fast64_t alerts_silenced, alerts_overflow, alerts_mqtt, alerts_mqtt_failed;
    atomic_uint_fast64_t alerts_notify_drops, alerts_open, sessions_written, alert_state_errors;
    atomic_int store_up, broker_up;
    /* alert outputs (notify.c) */
    atomic_uint_fast64_t alerts_published; /* PUB messages sent */
    atomic_uint_fast64_t webhook_delivered, webhook_failed_permanent;
    atomic_uint_fast64_t webhook_dropped_overflow, webhook_retries;
    atomic_uint_fast64_t webhook_queue_depth; /* waiting + on the wire */
    atomic_int webhook_up;                    /* 0 while retrying, or no webhook */
    /* stage queues (pipeline.h): what waits between the stages, and the bounds */
    atomic_uint_fast64_t worker_queue_msgs, worker_queue_bytes; /* ingest -> workers */
    atomic_uint_fast64_t worker_queue_bound_bytes;
    atomic_uint_fast64_t writer_bound_points;   /* points_pending's bound */
    atomic_uint_fast64_t writer_dropped_points; /* in messages dropped at it */
    atomic_uint_fast64_t spool_bytes;
};

extern struct collector_metrics cm;

#define CM_ADD(field, n) atomic_fetch_add_explicit(&cm.field, (n), memory_order_relaxed)
#define CM_SET(field, v) atomic_store_explicit(&cm.field, (v), memory_order_relaxed)
#define CM_GET(field) atomic_load_explicit(&cm.field, memory_order_relaxed)

/* Writes the Prometheus text exposition into buf; returns its length
 * (truncated to cap - 1 bytes, always NUL-terminated). */
size_t collector_metrics_render(char *buf, size_t cap);

#endif

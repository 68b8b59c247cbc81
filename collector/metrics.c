/* metrics.c - counters and their Prometheus text form. */
#include "metrics.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

struct collector_metrics cm;

struct out {
    char *buf;
    size_t cap, len;
};

__attribute__((format(printf, 2, 3))) static void put(struct out *o, const char *fmt, ...)
{
    if (o->len + 1 >= o->cap) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
    va_end(ap);
    if (n > 0) {
        o->len += (size_t)n < o->cap - o->len ? (size_t)n : o->cap - o->len - 1;
    }
}

static void counter(struct out *o, const char *name, const char *help, uint64_t v)
{
    put(o, "# HELP %s %s\n# TYPE %s counter\n%s %" PRIu64 "\n", name, help, name, name, v);
}

static void gauge(struct out *o, const char *name, const char *help, uint64_t v)
{
    put(o, "# HELP %s %s\n# TYPE %s gauge\n%s %" PRIu64 "\n", name, help, name, name, v);
}

size_t collector_metrics_render(char *buf, size_t cap)
{
    struct out o = {buf, cap, 0};
    buf[0] = '\0';
    static const char *const types[] = {"", "telemetry", "event", "status"};
    put(&o, "# HELP nw_messages_in_total MQTT messages accepted, by topic kind\n"
            "# TYPE nw_messages_in_total counter\n");
    for (int t = 1; t <= 3; t++) {
        put(&o, "nw_messages_in_total{kind=\"%s\"} %" PRIu64 "\n", types[t],
            (uint64_t)CM_GET(messages_in[t]));
    }
    counter(&o, "nw_windows_in_total", "windows in accepted messages", CM_GET(windows_in));
    counter(&o, "nw_events_in_total", "events in accepted messages", CM_GET(events_in));
    put(&o, "# HELP nw_rejected_total messages refused, by reason\n"
            "# TYPE nw_rejected_total counter\n");
    for (int r = 1; r < NW_REASON__COUNT; r++) {
        put(&o, "nw_rejected_total{reason=\"%s\"} %" PRIu64 "\n", nw_reason_name((enum nw_reason)r),
            (uint64_t)CM_GET(rejected[r]));
    }
    counter(&o, "nw_items_rejected_total", "single windows or events refused and dead-lettered",
            CM_GET(items_rejected));
    put(&o,
        "# HELP nw_hwm_drops_total messages dropped at a full stage queue (re-sent by agents)\n"
        "# TYPE nw_hwm_drops_total counter\n"
        "nw_hwm_drops_total{stage=\"worker\"} %" PRIu64 "\n"
        "nw_hwm_drops_total{stage=\"writer\"} %" PRIu64 "\n"
        "nw_hwm_drops_total{stage=\"settle\"} %" PRIu64 "\n",
        (uint64_t)CM_GET(hwm_drops_worker), (uint64_t)CM_GET(hwm_drops_writer),
        (uint64_t)CM_GET(hwm_drops_settle));
    counter(&o, "nw_points_stored_total", "points confirmed by the store", CM_GET(points_stored));
    counter(&o, "nw_store_writes_total", "store write calls", CM_GET(store_writes));
    counter(&o, "nw_store_failures_total", "store writes that failed", CM_GET(store_failures));
    counter(&o, "nw_store_latency_us_sum", "total store write latency, microseconds",
            CM_GET(store_latency_us_sum));
    gauge(&o, "nw_store_latency_us_max", "slowest store write, microseconds",
          CM_GET(store_latency_us_max));
    gauge(&o, "nw_writer_pending_points", "points waiting in the writer", CM_GET(points_pending));
    gauge(&o, "nw_spool_records", "batches spooled on disk while the store is down",
          CM_GET(spool_records));
    counter(&o, "nw_seqs_lost_total", "sequence numbers skipped: lost on the device",
            CM_GET(seqs_lost));
    counter(&o, "nw_acks_sent_total", "acks published", CM_GET(acks_sent));
    counter(&o, "nw_acks_coalesced_total", "ack requests merged into a later ack",
            CM_GET(acks_coalesced));
    gauge(&o, "nw_devices", "devices seen since start", CM_GET(devices));
    put(&o,
        "# HELP nw_alert_transitions_total alert state changes, by state\n"
        "# TYPE nw_alert_transitions_total counter\n"
        "nw_alert_transitions_total{state=\"firing\"} %" PRIu64 "\n"
        "nw_alert_transitions_total{state=\"resolved\"} %" PRIu64 "\n"
        "nw_alert_transitions_total{state=\"acknowledged\"} %" PRIu64 "\n"
        "nw_alert_transitions_total{state=\"renotify\"} %" PRIu64 "\n",
        (uint64_t)CM_GET(alerts_fired), (uint64_t)CM_GET(alerts_resolved),
        (uint64_t)CM_GET(alerts_acked), (uint64_t)CM_GET(alerts_renotified));
    gauge(&o, "nw_alerts_open", "alerts firing now (all workers)", CM_GET(alerts_open));
    counter(&o, "nw_alerts_silenced_total", "notifications withheld by a silence",
            CM_GET(alerts_silenced));
    counter(&o, "nw_alerts_overflow_total", "transitions beyond one message's output bound",
            CM_GET(alerts_overflow));
    counter(&o, "nw_alerts_mqtt_total", "alerts published on MQTT", CM_GET(alerts_mqtt));
    counter(&o, "nw_alerts_mqtt_failed_total", "alerts not published on MQTT (broker down)",
            CM_GET(alerts_mqtt_failed));
    counter(&o, "nw_alerts_notify_drops_total",
            "alerts not handed to MQTT or the notifier (queue full)", CM_GET(alerts_notify_drops));
    counter(&o, "nw_sessions_written_total", "session summary points made",
            CM_GET(sessions_written));
    counter(&o, "nw_alert_state_errors_total", "failed writes of the alert state",
            CM_GET(alert_state_errors));
    gauge(&o, "nw_store_up", "1 when the last store write succeeded", (uint64_t)CM_GET(store_up));
    gauge(&o, "nw_broker_up", "1 while connected to the broker", (uint64_t)CM_GET(broker_up));
    counter(&o, "nw_alerts_published_total", "alerts sent on the ZeroMQ PUB socket",
            CM_GET(alerts_published));
    counter(&o, "nw_webhook_delivered_total", "webhook notifications answered 2xx",
            CM_GET(webhook_delivered));
    counter(&o, "nw_webhook_failed_permanent_total",
            "webhook notifications dropped on a 4xx (not 408/429) or 3xx answer",
            CM_GET(webhook_failed_permanent));
    counter(&o, "nw_webhook_dropped_overflow_total",
            "webhook notifications dropped, oldest first, at the queue bound",
            CM_GET(webhook_dropped_overflow));
    counter(&o, "nw_webhook_retries_total", "webhook attempts failed and retried",
            CM_GET(webhook_retries));
    gauge(&o, "nw_webhook_queue_depth", "webhook notifications waiting or being sent",
          CM_GET(webhook_queue_depth));
    gauge(&o, "nw_webhook_up", "1 when a webhook is configured and its last attempt succeeded",
          (uint64_t)CM_GET(webhook_up));
    put(&o,
        "# HELP nw_queue_depth messages, bytes or points waiting between two stages\n"
        "# TYPE nw_queue_depth gauge\n"
        "nw_queue_depth{stage=\"worker\",unit=\"messages\"} %" PRIu64 "\n"
        "nw_queue_depth{stage=\"worker\",unit=\"bytes\"} %" PRIu64 "\n"
        "nw_queue_depth{stage=\"writer\",unit=\"points\"} %" PRIu64 "\n"
        "nw_queue_depth{stage=\"spool\",unit=\"records\"} %" PRIu64 "\n"
        "nw_queue_depth{stage=\"spool\",unit=\"bytes\"} %" PRIu64 "\n",
        (uint64_t)CM_GET(worker_queue_msgs), (uint64_t)CM_GET(worker_queue_bytes),
        (uint64_t)CM_GET(points_pending), (uint64_t)CM_GET(spool_records),
        (uint64_t)CM_GET(spool_bytes));
    put(&o,
        "# HELP nw_queue_bound the bound of a stage queue; beyond it data is dropped and "
        "counted (never acked: agents re-send)\n"
        "# TYPE nw_queue_bound gauge\n"
        "nw_queue_bound{stage=\"worker\",unit=\"bytes\"} %" PRIu64 "\n"
        "nw_queue_bound{stage=\"writer\",unit=\"points\"} %" PRIu64 "\n",
        (uint64_t)CM_GET(worker_queue_bound_bytes), (uint64_t)CM_GET(writer_bound_points));
    counter(&o, "nw_writer_dropped_points_total",
            "points in messages dropped at the writer's bound (never acked: agents re-send)",
            CM_GET(writer_dropped_points));
    return o.len;
}

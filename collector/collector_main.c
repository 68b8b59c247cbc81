/*
 * collector_main.c - needlewatch-collector: flags and config, the threads of
 * the pipeline (pipeline.h), /healthz and /metrics, signals.
 *
 * Shutdown order matters for "flush, ack, exit 0 within 10 s": workers stop
 * taking input, the writer writes what it holds (bounded), workers turn the
 * confirmations into ack requests, and ingest publishes them last.
 */
#include "ingest.h"
#include "inventory.h"
#include "alertreg.h"
#include "alertstate.h"
#include "metrics.h"
#include "notify.h"
#include "rules.h"
#include "pipeline.h"
#include "worker.h"
#include "writer.h"
#include "zsec.h"

#include <needlewatch/clock.h>
#include <needlewatch/config.h>
#include <needlewatch/log.h>
#include <needlewatch/topic.h>

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

struct collector_cfg {
    char broker[256];
    char store[512];
    char inventory[512];
    char http[64];
    int role;
    uint64_t workers;
    int log_level;
    char client_id[NW_DEVICE_ID_MAX + 1];
    char share_group[NW_DEVICE_ID_MAX + 1];
    char prefix[NW_TOPIC_PREFIX_MAX + 1];
    char dead_letter[512];
    char state[512];
    char spool[512];
    uint64_t spool_max;
    uint64_t max_devices;
    int64_t ack_interval_ms;
    int64_t coalesce_ms;
    char ca_file[512], cert_file[512], key_file[512], credentials_file[512];
    uint64_t max_inflight;
    uint64_t receive_maximum;
    bool buffered_io;
    char aggregate[1024], listen[1024], ack_listen[256], ack_to[1024];
    uint64_t first_worker, total_workers;
    uint64_t batch_points;
    uint64_t max_pending_points;
    int64_t flush_ms;
    int64_t store_timeout_ms;
    char store_token_file[512], store_credentials_file[512];
    struct nw_cfg_range rate_hz, depth_mm;
    double service_hours;
    uint64_t service_cycles, cartridge_max_cycles;
    /* alerts */
    bool alerts_on;
    char alert_state[512], cartridge_index[512], alerts_pub[256], webhook[1024];
    uint64_t webhook_queue;
    int64_t webhook_timeout_ms, webhook_backoff_max_ms, renotify_ms, offline_after_ms,
        late_after_ms, session_grace_ms;
    int64_t session_cutoff_ms;
    double rate_clear_margin_hz, depth_clear_margin_mm, unstable_spread_hz, unstable_clear_hz;
    double pigment_factor, pigment_clear_factor;
    uint64_t pigment_min_samples;
    /* CURVE between collector processes (zsec.h) */
    int curve;
    char curve_secret_file[512], curve_public_file[512], curve_server_key_file[512];
    char curve_peers[512];
};

static const char *const roles[] = {"all", "ingest", "aggregate", NULL};
enum { ROLE_ALL, ROLE_INGEST, ROLE_AGGREGATE };
static const char *const log_levels[] = {"debug", "info", "notice", "warn", "error", NULL};
static const char *const curve_modes[] = {"off", "on", NULL};

#define F(m) NW_CFG_FIELD(struct collector_cfg, m)
static const struct nw_cfg_key keys[] = {
    {"collector", "broker", NW_CFG_STR, F(broker), .def = "mqtt://127.0.0.1:1883",
     .help = "mqtt://HOST[:PORT] or mqtts://HOST[:PORT]"},
    {"collector", "store", NW_CFG_STR, F(store), .def = "sqlite:needlewatch.db",
     .help = "sqlite:PATH, influx://HOST:PORT/DB or influx2://HOST:PORT/?org=O&bucket=B"},
    {"collector", "inventory", NW_CFG_PATH, F(inventory),
     .help = "CSV device,clinic,model; unlisted devices go under \"unassigned\""},
    {"collector", "http", NW_CFG_STR, F(http),
     .help = "127.0.0.1:PORT for /healthz and /metrics; empty: off"},
    {"collector", "role", NW_CFG_ENUM, F(role), .def = "all", .choices = roles,
     .help = "all (one process), ingest (MQTT side) or aggregate (workers and writer)"},
    {"collector", "aggregate", NW_CFG_STR, F(aggregate),
     .help = "ingest: every aggregate worker's endpoint, comma-separated, in global order"},
    {"collector", "ack_listen", NW_CFG_STR, F(ack_listen),
     .help = "ingest: endpoint to bind for acks from aggregate processes"},
    {"collector", "listen", NW_CFG_STR, F(listen),
     .help = "aggregate: endpoints to bind, one per worker thread"},
    {"collector", "ack_to", NW_CFG_STR, F(ack_to),
     .help = "aggregate: the ingest processes' ack endpoints, comma-separated"},
    {"collector", "first_worker", NW_CFG_UINT, F(first_worker), .def = "0", .max = 63,
     .help = "aggregate: global index of this process's first worker"},
    {"collector", "total_workers", NW_CFG_UINT, F(total_workers), .def = "0", .max = 64,
     .help = "aggregate: workers across all aggregate processes (0: this process's)"},
    {"collector", "workers", NW_CFG_UINT, F(workers), .def = "2", .min = 1, .max = CP_MAX_WORKERS,
     .help = "aggregation worker threads"},
    /* CURVE encryption and ZAP authentication of tcp:// pipeline sockets (zsec.h) */
    {"collector", "curve", NW_CFG_ENUM, F(curve), .def = "off", .choices = curve_modes,
     .help = "on: tcp:// links between ingest and aggregate processes use CURVE; refuses to "
             "start without keys"},
    {"collector", "curve_secret_file", NW_CFG_PATH, F(curve_secret_file),
     .help = "this process's CURVE secret key (Z85, mode 0600; --curve-keygen makes one)"},
    {"collector", "curve_public_file", NW_CFG_PATH, F(curve_public_file),
     .help = "this process's CURVE public key (Z85)"},
    {"collector", "curve_server_key_file", NW_CFG_PATH, F(curve_server_key_file),
     .help = "public keys of the processes this one connects to: lines KEY or ENDPOINT KEY"},
    {"collector", "curve_peers", NW_CFG_PATH, F(curve_peers),
     .help = "allow-list of public keys that may connect: a directory of NAME.pub or a file"},
    {"collector", "log_level", NW_CFG_ENUM, F(log_level), .def = "info", .choices = log_levels,
     .help = "debug, info, notice, warn or error"},
    {"collector", "client_id", NW_CFG_STR, F(client_id), .def = "needlewatch-collector",
     .help = "MQTT client id (unique per collector)"},
    {"collector", "share_group", NW_CFG_STR, F(share_group),
     .help = "MQTT 5 shared subscription group; empty: plain subscriptions"},
    {"collector", "topic_prefix", NW_CFG_STR, F(prefix), .def = NW_TOPIC_PREFIX_DEFAULT,
     .help = "topic prefix"},
    {"collector", "dead_letter", NW_CFG_PATH, F(dead_letter),
     .def = "needlewatch-dead-letter.jsonl",
     .help = "refused windows/events and store-refused points, one JSON line each"},
    {"collector", "state", NW_CFG_PATH, F(state), .def = "needlewatch-collector-state.db",
     .help = "per-device acknowledged watermarks (SQLite), written before each ack"},
    {"collector", "spool", NW_CFG_PATH, F(spool), .def = "needlewatch-spool",
     .help = "directory of the on-disk spool used while the store is down"},
    {"collector", "spool_max", NW_CFG_SIZE, F(spool_max), .def = "1G", .min = 1048576,
     .max = 1099511627776.0,
     .help = "spool bound; beyond it the oldest chunk is dropped (re-sent by agents)"},
    {"collector", "max_devices", NW_CFG_UINT, F(max_devices), .def = "100000", .min = 1,
     .max = 10000000, .help = "devices per worker; beyond, new devices' data waits (not acked)"},
    {"collector", "ingest_coalesce", NW_CFG_DURATION_MS, F(coalesce_ms), .def = "1ms", .min = 0,
     .max = 100,
     .help = "pause after a wake-up that found few messages, so the next takes a batch (0: off)"},
    {"collector", "ack_interval", NW_CFG_DURATION_MS, F(ack_interval_ms), .def = "200ms", .min = 10,
     .max = 60000, .help = "at most one ack per device per interval"},
    {"mqtt", "ca_file", NW_CFG_PATH, F(ca_file), .help = "CA certificate for mqtts://"},
    {"mqtt", "cert_file", NW_CFG_PATH, F(cert_file), .help = "client certificate"},
    {"mqtt", "key_file", NW_CFG_PATH, F(key_file), .help = "client key"},
    {"mqtt", "credentials_file", NW_CFG_PATH, F(credentials_file),
     .help = "file: username line, password line"},
    {"mqtt", "max_inflight", NW_CFG_UINT, F(max_inflight), .def = "1000", .min = 1, .max = 65535,
     .help = "acks awaiting PUBACK"},
    {"mqtt", "receive_maximum", NW_CFG_UINT, F(receive_maximum), .def = "65535", .min = 1,
     .max = 65535, .help = "messages the broker may have in flight to the collector (MQTT 5)"},
    {"mqtt", "buffered_io", NW_CFG_BOOL, F(buffered_io), .def = "true",
     .help = "read the broker's socket 64 KiB at a time and send a read's PUBACKs at once "
             "(mqtt://)"},
    {"store", "batch_points", NW_CFG_UINT, F(batch_points), .def = "5000", .min = 1, .max = 1000000,
     .help = "points per store write"},
    {"store", "max_pending_points", NW_CFG_UINT, F(max_pending_points), .def = "40000", .min = 2,
     .max = 10000000,
     .help = "points held while the store is busy (the next write takes them at once); beyond: "
             "dropped, counted, never acked"},
    {"store", "flush", NW_CFG_DURATION_MS, F(flush_ms), .def = "200ms", .min = 1, .max = 60000,
     .help = "longest wait before a partial batch is written"},
    {"store", "timeout", NW_CFG_DURATION_MS, F(store_timeout_ms), .def = "30s", .min = 100,
     .max = 600000, .help = "one HTTP request to the store"},
    {"store", "token_file", NW_CFG_PATH, F(store_token_file),
     .help = "influx2: file with the token (or NEEDLEWATCH_INFLUX_TOKEN)"},
    {"store", "credentials_file", NW_CFG_PATH, F(store_credentials_file),
     .help = "influx: file with user:password"},
    {"spec", "rate_hz", NW_CFG_RANGE, F(rate_hz), .def = "100..140", .min = 0, .max = 1000,
     .help = "default in-spec needle rate"},
    {"spec", "depth_mm", NW_CFG_RANGE, F(depth_mm), .def = "0.25..0.50", .min = 0, .max = 5,
     .help = "default in-spec needle depth"},
    {"spec", "service_hours", NW_CFG_DOUBLE, F(service_hours), .def = "500", .min = 0, .max = 1e6,
     .help = "running hours between services (maintenance_due); 0: off"},
    {"spec", "service_cycles", NW_CFG_UINT, F(service_cycles), .def = "0",
     .help = "needle cycles between services (maintenance_due); 0: off"},
    {"spec", "cartridge_max_cycles", NW_CFG_UINT, F(cartridge_max_cycles), .def = "3000000",
     .help = "cycles on one cartridge before cartridge_worn (3 M: ~7 h at 120 Hz); 0: off"},
    {"alerts", "enabled", NW_CFG_BOOL, F(alerts_on), .def = "true",
     .help = "evaluate the alert rules and write session summaries"},
    {"alerts", "state", NW_CFG_PATH, F(alert_state), .def = "needlewatch-alerts.db",
     .help = "open alerts, rule state and silences (SQLite); survives restarts"},
    {"alerts", "cartridge_index", NW_CFG_PATH, F(cartridge_index),
     .help = "cartridge ids seen (SQLite), shared by every aggregate process on the host; "
             "empty: alerts.state"},
    {"alerts", "pub", NW_CFG_STR, F(alerts_pub),
     .help = "ZeroMQ PUB endpoint to bind for alerts, e.g. tcp://127.0.0.1:5610; empty: off"},
    {"alerts", "webhook", NW_CFG_STR, F(webhook), .flags = NW_CFG_SECRET,
     .help = "URL to POST each alert change to as JSON (config file only: URLs carry tokens)"},
    {"alerts", "webhook_queue", NW_CFG_UINT, F(webhook_queue), .def = "10000", .min = 1,
     .max = 1000000, .help = "webhook notifications waiting; beyond, the oldest is dropped"},
    {"alerts", "webhook_backoff_max", NW_CFG_DURATION_MS, F(webhook_backoff_max_ms), .def = "60s",
     .min = 500, .max = 3600000,
     .help = "longest wait between two tries of a failed webhook (doubling from 0.5 s, jitter)"},
    {"alerts", "webhook_timeout", NW_CFG_DURATION_MS, F(webhook_timeout_ms), .def = "5s",
     .min = 100, .max = 600000, .help = "one webhook request"},
    {"alerts", "renotify", NW_CFG_DURATION_MS, F(renotify_ms), .def = "30m",
     .help = "an unacknowledged critical alert notifies again this often; 0: never"},
    {"alerts", "offline_after", NW_CFG_DURATION_MS, F(offline_after_ms), .def = "90s", .min = 1000,
     .max = 86400000, .help = "no message from a device this long: device_offline"},
    {"alerts", "late_after", NW_CFG_DURATION_MS, F(late_after_ms), .def = "60s",
     .help = "an alert whose event time is this much older than now is marked late"},
    {"alerts", "session_grace", NW_CFG_DURATION_MS, F(session_grace_ms), .def = "2s",
     .help = "wall time a session end waits for the session's last windows"},
    {"alerts", "session_cutoff", NW_CFG_DURATION_MS, F(session_cutoff_ms), .def = "10m",
     .max = 86400000, .help = "a device offline this long in a session: its summary is cut off"},
    {"alerts", "rate_clear_margin_hz", NW_CFG_DOUBLE, F(rate_clear_margin_hz), .def = "2", .min = 0,
     .max = 100, .help = "hysteresis: the rate alert clears inside lo+m..hi-m"},
    {"alerts", "depth_clear_margin_mm", NW_CFG_DOUBLE, F(depth_clear_margin_mm), .def = "0.01",
     .min = 0, .max = 1, .help = "hysteresis: the depth alert clears inside lo+m..hi-m"},
    {"alerts", "unstable_spread_hz", NW_CFG_DOUBLE, F(unstable_spread_hz), .def = "15", .min = 0,
     .max = 1000, .help = "needle_rate_unstable: rate max-min within a window above this"},
    {"alerts", "unstable_clear_hz", NW_CFG_DOUBLE, F(unstable_clear_hz), .def = "12", .min = 0,
     .max = 1000, .help = "needle_rate_unstable clears at or below this spread"},
    {"alerts", "pigment_factor", NW_CFG_DOUBLE, F(pigment_factor), .def = "3", .min = 1,
     .max = 1000, .help = "pigment_overuse: per running minute above this x the model median"},
    {"alerts", "pigment_clear_factor", NW_CFG_DOUBLE, F(pigment_clear_factor), .def = "2.5",
     .min = 1, .max = 1000, .help = "pigment_overuse clears at or below this x the median"},
    {"alerts", "pigment_min_samples", NW_CFG_UINT, F(pigment_min_samples), .def = "300",
     .help = "running windows of a model before its median is trusted"},
};
#undef F
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

/* [model "NAME"] sections: the spec window of one model. */
struct model_cfg {
    struct nw_cfg_range rate_hz, depth_mm;
    double service_hours;
    uint64_t service_cycles, cartridge_max_cycles;
};
#define M(m) NW_CFG_FIELD(struct model_cfg, m)
static const struct nw_cfg_key model_keys[] = {
    {"model", "rate_hz", NW_CFG_RANGE, M(rate_hz), .def = "100..140", .min = 0, .max = 1000,
     .help = "in-spec needle rate of the model"},
    {"model", "depth_mm", NW_CFG_RANGE, M(depth_mm), .def = "0.25..0.50", .min = 0, .max = 5,
     .help = "in-spec needle depth of the model"},
    {"model", "service_hours", NW_CFG_DOUBLE, M(service_hours), .def = "500", .min = 0, .max = 1e6,
     .help = "running hours between services"},
    {"model", "service_cycles", NW_CFG_UINT, M(service_cycles), .def = "0",
     .help = "needle cycles between services; 0: off"},
    {"model", "cartridge_max_cycles", NW_CFG_UINT, M(cartridge_max_cycles), .def = "3000000",
     .help = "cycles on one cartridge before cartridge_worn; 0: off"},
};
#undef M
#define NMODEL_KEYS (sizeof(model_keys) / sizeof(model_keys[0]))

/* [rule "NAME"] sections: lifecycle parameters of one alert rule. */
static const char *const severities[] = {"unspecified", "info", "warning", "critical", NULL};
struct rule_cfg {
    bool enabled;
    int severity;
    int64_t hold_ms, clear_ms;
};
#define RK(m) NW_CFG_FIELD(struct rule_cfg, m)
static const struct nw_cfg_key rule_keys[] = {
    {"rule", "enabled", NW_CFG_BOOL, RK(enabled), .def = "true", .help = "evaluate this rule"},
    {"rule", "severity", NW_CFG_ENUM, RK(severity), .def = "warning", .choices = severities,
     .help = "info, warning or critical"},
    {"rule", "hold", NW_CFG_DURATION_MS, RK(hold_ms), .def = "0", .max = 86400000,
     .help = "event time the condition must hold before firing"},
    {"rule", "clear", NW_CFG_DURATION_MS, RK(clear_ms), .def = "0", .max = 86400000,
     .help = "event time the clear condition must hold before resolving"},
};
#undef RK

struct collector {
    struct collector_cfg cfg;
    struct rules_config rules;
    struct alertreg *registry;
    struct notify *notify;
    void *ops; /* PUB of struct worker_op to every worker */
    pthread_mutex_t ops_lock;
    struct alertstate *ops_state; /* silences written by the HTTP thread */
    struct nw_model_spec specs[NW_MAX_MODELS];
    size_t nspecs;
    struct nw_inventory *inventory;
    void *zctx;
    struct worker *workers[CP_MAX_WORKERS];
    struct writer *writer;
    struct ingest *ingest;
    char worker_ep[CP_MAX_WORKERS][64], settle_ep[CP_MAX_WORKERS][64];
    char control_ep[CP_MAX_WORKERS][64];
    void *control[CP_MAX_WORKERS], *control_ack;
    const char *worker_eps[CP_MAX_WORKERS], *settle_eps[CP_MAX_WORKERS];
    struct MHD_Daemon *http;
    struct zsec *zsec; /* collector.curve = on, tcp:// endpoints */
    int nworkers;      /* worker threads in this process, or endpoints for ingest */
    volatile sig_atomic_t stop_input, stop_writer, drained, stop_ingest, stop_notify;
};

static struct collector C;

/* ---- configuration ----------------------------------------------------- */

static enum nw_err on_rule(const char *name, const char *key, const char *value,
                           struct nw_error *err)
{
    enum rule_id r = rules_from_name(name);
    if (r == RULE__COUNT) {
        return nw_error_set(err, NW_ERR_CONFIG, "unknown rule \"%s\"", name);
    }
    if (!key) {
        return NW_OK;
    }
    struct rule_params *p = &C.rules.rule[r];
    struct rule_cfg rc = {p->enabled, (int)p->severity, p->hold_ms, p->clear_ms};
    enum nw_err e = nw_config_apply_key(rule_keys, 4, &rc, "rule", key, value, err);
    if (e == NW_OK && rc.severity == 0) {
        e = nw_error_set(err, NW_ERR_CONFIG, "severity must be info, warning or critical");
    }
    if (e == NW_OK) {
        *p = (struct rule_params){rc.enabled, (enum nw_severity)rc.severity, rc.hold_ms,
                                  rc.clear_ms};
    }
    return e;
}

static void model_get(const struct nw_model_spec *s, struct model_cfg *m)
{
    *m = (struct model_cfg){s->rate_hz, s->depth_mm, s->service_hours, s->service_cycles,
                            s->cartridge_max_cycles};
}

static void model_set(struct nw_model_spec *s, const struct model_cfg *m)
{
    s->rate_hz = m->rate_hz, s->depth_mm = m->depth_mm, s->service_hours = m->service_hours;
    s->service_cycles = m->service_cycles, s->cartridge_max_cycles = m->cartridge_max_cycles;
}

static enum nw_err on_model(void *user, const char *kind, const char *name, const char *key,
                            const char *value, int line, struct nw_error *err)
{
    (void)user, (void)line;
    if (strcmp(kind, "rule") == 0) {
        return on_rule(name, key, value, err);
    }
    if (strcmp(kind, "model") != 0) {
        return nw_error_set(err, NW_ERR_CONFIG, "unknown section kind \"%s\"", kind);
    }
    struct nw_model_spec *s = NULL;
    for (size_t i = 1; i < C.nspecs; i++) {
        if (!strcmp(C.specs[i].model, name)) {
            s = &C.specs[i];
        }
    }
    if (!key) { /* first header of this model */
        if (s) {
            return NW_OK;
        }
        if (C.nspecs == NW_MAX_MODELS || strlen(name) > NW_VERSION_MAX) {
            return nw_error_set(err, NW_ERR_CONFIG, "too many models or name too long");
        }
        s = &C.specs[C.nspecs++];
        snprintf(s->model, sizeof(s->model), "%s", name);
        struct model_cfg m;
        nw_config_defaults(model_keys, NMODEL_KEYS, &m, err);
        model_set(s, &m);
        return NW_OK;
    }
    struct model_cfg m;
    model_get(s, &m);
    enum nw_err rc = nw_config_apply_key(model_keys, NMODEL_KEYS, &m, "model", key, value, err);
    model_set(s, &m);
    return rc;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: needlewatch-collector [--config FILE] [--broker URL] [--store URL]\n"
                 "                             [--inventory FILE] [--http 127.0.0.1:PORT]\n"
                 "                             [--role all] [--set SECTION.KEY=VALUE]...\n"
                 "\n"
                 "The needlewatch service: subscribes to the fleet's telemetry, events and\n"
                 "status over MQTT 5, routes each device to one aggregation worker, writes the\n"
                 "time-series store, and acknowledges to each agent what is durably stored.\n"
                 "\n"
                 "  -c, --config FILE      INI file (keys below; [model \"NAME\"] sections set\n"
                 "                         rate_hz and depth_mm per device model)\n"
                 "  -b, --broker URL       = --set collector.broker=URL\n"
                 "  -s, --store URL        = --set collector.store=URL\n"
                 "  -i, --inventory FILE   = --set collector.inventory=FILE\n"
                 "      --http ADDR:PORT   = --set collector.http=ADDR:PORT\n"
                 "      --role ROLE        = --set collector.role=ROLE\n"
                 "      --alerts-pub EP    = --set alerts.pub=EP (ZeroMQ PUB of alerts)\n"
                 "  -S, --set S.K=V        any key below\n"
                 "      --curve-keygen DIR/NAME  write a CURVE key pair NAME.key (0600) and\n"
                 "                         NAME.pub for collector.curve, then exit\n"
                 "  -h, --help, -V, --version\n"
                 "\nKeys (section.key, type, default):\n");
    nw_config_print_help(out, keys, NKEYS, NW_CFG_HELP_TEXT);
    fprintf(out, "\nSignals: SIGTERM/SIGINT flush, ack and exit 0 within 10 s.\n"
                 "Exit status: 0 on a clean stop, 1 on a runtime failure, 2 on bad usage or "
                 "configuration.\n");
}

static int apply(const char *dotted, const char *value)
{
    struct nw_error err = {0};
    if (nw_config_apply_flag(keys, NKEYS, &C.cfg, dotted, value, &err) != NW_OK) {
        fprintf(stderr, "needlewatch-collector: %s\n", err.msg);
        return 2;
    }
    return 0;
}

static int load_config(int argc, char **argv)
{
    struct nw_error err = {0};
    if (nw_config_defaults(keys, NKEYS, &C.cfg, &err) != NW_OK) { /* a table bug */
        fprintf(stderr, "needlewatch-collector: %s\n", err.msg);
        return 2;
    }
    rules_config_defaults(&C.rules);
    C.nspecs = 1;
    snprintf(C.specs[0].model, sizeof(C.specs[0].model), "*");
    for (int i = 1; i + 1 < argc; i++) {
        if ((!strcmp(argv[i], "-c") || !strcmp(argv[i], "--config")) &&
            nw_config_load_file(argv[i + 1], keys, NKEYS, &C.cfg, on_model, NULL, &err) != NW_OK) {
            fprintf(stderr, "needlewatch-collector: %s\n", err.msg);
            return 2;
        }
    }
    return 0;
}

static int curve_keygen(const char *base)
{
    char pub[ZSEC_KEY_Z85 + 1];
    struct nw_error err = {0};
    if (zsec_keygen(base, pub, &err) != NW_OK) {
        fprintf(stderr, "needlewatch-collector: %s\n", err.msg);
        return 2;
    }
    printf("%s.key  secret key (mode 0600): collector.curve_secret_file on this host only\n"
           "%s.pub  public key %s: collector.curve_public_file here, and into the peers'\n"
           "        collector.curve_peers and collector.curve_server_key_file\n",
           base, base, pub);
    return 0;
}

/* Returns -1 to go on, else the exit status. */
static int parse_args(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},       {"broker", required_argument, NULL, 'b'},
        {"store", required_argument, NULL, 's'},        {"inventory", required_argument, NULL, 'i'},
        {"http", required_argument, NULL, 'H'},         {"role", required_argument, NULL, 'R'},
        {"set", required_argument, NULL, 'S'},          {"help", no_argument, NULL, 'h'},
        {"alerts-pub", required_argument, NULL, 'P'},   {"version", no_argument, NULL, 'V'},
        {"curve-keygen", required_argument, NULL, 'K'}, {NULL, 0, NULL, 0}};
    int rc = load_config(argc, argv), c;
    while (rc == 0 && (c = getopt_long(argc, argv, "c:b:s:i:S:hV", longopts, NULL)) != -1) {
        char *eq;
        switch (c) {
        case 'c':
            break;
        case 'b':
            rc = apply("collector.broker", optarg);
            break;
        case 's':
            rc = apply("collector.store", optarg);
            break;
        case 'i':
            rc = apply("collector.inventory", optarg);
            break;
        case 'H':
            rc = apply("collector.http", optarg);
            break;
        case 'R':
            rc = apply("collector.role", optarg);
            break;
        case 'P':
            rc = apply("alerts.pub", optarg);
            break;
        case 'S':
            if (!(eq = strchr(optarg, '='))) {
                fprintf(stderr, "needlewatch-collector: --set %s: expected SECTION.KEY=VALUE\n",
                        optarg);
                return 2;
            }
            *eq = '\0';
            rc = apply(optarg, eq + 1);
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("needlewatch-collector %s\n", NW_VERSION);
            return 0;
        case 'K':
            return curve_keygen(optarg);
        default:
            usage(stderr);
            return 2;
        }
    }
    if (rc == 0 && optind < argc) {
        fprintf(stderr, "needlewatch-collector: unexpected argument \"%s\"\n", argv[optind]);
        rc = 2;
    }
    C.specs[0].rate_hz = C.cfg.rate_hz;
    C.specs[0].depth_mm = C.cfg.depth_mm;
    C.specs[0].service_hours = C.cfg.service_hours;
    C.specs[0].service_cycles = C.cfg.service_cycles;
    C.specs[0].cartridge_max_cycles = C.cfg.cartridge_max_cycles;
    struct rules_config *r = &C.rules;
    r->rate_clear_margin_hz = C.cfg.rate_clear_margin_hz;
    r->depth_clear_margin_mm = C.cfg.depth_clear_margin_mm;
    r->unstable_spread_hz = C.cfg.unstable_spread_hz;
    r->unstable_clear_hz = C.cfg.unstable_clear_hz;
    r->pigment_factor = C.cfg.pigment_factor;
    r->pigment_clear_factor = C.cfg.pigment_clear_factor;
    r->pigment_min_samples = C.cfg.pigment_min_samples;
    r->offline_after_ms = C.cfg.offline_after_ms;
    r->renotify_ms = C.cfg.renotify_ms;
    r->late_after_ms = C.cfg.late_after_ms;
    r->session_grace_ms = C.cfg.session_grace_ms;
    r->session_cutoff_ms = C.cfg.session_cutoff_ms;
    return rc ? rc : -1;
}

/* ---- HTTP -------------------------------------------------------------- */

/* Publishes an operator command to every worker (the HTTP thread is the
 * only user of the PUB socket; the lock keeps it so if MHD ever runs a
 * thread per connection). */
static void publish_op(const struct worker_op *op)
{
    pthread_mutex_lock(&C.ops_lock);
    zmq_send(C.ops, op, sizeof(*op), 0);
    pthread_mutex_unlock(&C.ops_lock);
}

static unsigned ack_alert(struct MHD_Connection *conn, char *body, size_t cap)
{
    const char *id = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "id");
    char *end = NULL;
    unsigned long long v = id ? strtoull(id, &end, 10) : 0;
    if (!id || !*id || *end || v == 0) {
        snprintf(body, cap, "{\"ok\":false,\"error\":\"id: expected a positive integer\"}\n");
        return MHD_HTTP_BAD_REQUEST;
    }
    if (!alertreg_has(C.registry, v)) {
        snprintf(body, cap, "{\"ok\":false,\"error\":\"no open alert %llu\"}\n", v);
        return MHD_HTTP_NOT_FOUND;
    }
    struct worker_op op = {.kind = WORKER_OP_ACK, .alert_id = v};
    publish_op(&op);
    nw_log(NW_LOG_NOTICE, "http", "alert %llu acknowledged by an operator", v);
    snprintf(body, cap, "{\"ok\":true,\"alert_id\":%llu}\n", v);
    return MHD_HTTP_OK;
}

static unsigned add_silence(struct MHD_Connection *conn, char *body, size_t cap)
{
    const char *dev = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "device");
    const char *rule = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "rule");
    const char *dur = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "for");
    int64_t ms = 0;
    struct nw_error err = {0};
    const char *bad = NULL;
    if (dev && *dev && !nw_valid_device_id(dev)) {
        bad = "device: not a device id";
    } else if (rule && *rule && rules_from_name(rule) == RULE__COUNT) {
        bad = "rule: unknown rule";
    } else if (!dur ||
               (dur[strspn(dur, "0123456789")] == '\0' && *dur
                    ? (ms = strtoll(dur, NULL, 10) * 1000, false) /* plain seconds */
                    : nw_clock_parse_duration_ms(dur, &ms, &err) != NW_OK) ||
               ms < 1000 || ms > 30LL * 86400000) {
        bad = "for: expected a duration from 1s to 30d (e.g. 2h, or seconds)";
    }
    if (bad) {
        snprintf(body, cap, "{\"ok\":false,\"error\":\"%s\"}\n", bad);
        return MHD_HTTP_BAD_REQUEST;
    }
    struct worker_op op = {.kind = WORKER_OP_SILENCE};
    snprintf(op.silence.device, sizeof(op.silence.device), "%s", dev ? dev : "");
    snprintf(op.silence.rule, sizeof(op.silence.rule), "%s", rule ? rule : "");
    op.silence.created_ms = nw_clock_realtime_ms();
    op.silence.until_ms = op.silence.created_ms + ms;
    if (C.ops_state && alertstate_add_silence(C.ops_state, &op.silence, &err) != NW_OK) {
        snprintf(body, cap, "{\"ok\":false,\"error\":\"cannot store the silence\"}\n");
        nw_log(NW_LOG_ERROR, "http", "%s", err.msg);
        return MHD_HTTP_INTERNAL_SERVER_ERROR;
    }
    publish_op(&op);
    nw_log(NW_LOG_NOTICE, "http", "silence: device %s, rule %s, %lld s",
           op.silence.device[0] ? op.silence.device : "*",
           op.silence.rule[0] ? op.silence.rule : "*", (long long)(ms / 1000));
    char until[NW_CLOCK_RFC3339_SIZE];
    nw_clock_format_rfc3339(op.silence.until_ms, until);
    snprintf(body, cap, "{\"ok\":true,\"device\":\"%s\",\"rule\":\"%s\",\"until\":\"%s\"}\n",
             op.silence.device, op.silence.rule, until);
    return MHD_HTTP_OK;
}

static unsigned list_silences(char *body, size_t cap)
{
    struct alert_silence sil[256];
    struct nw_error err = {0};
    size_t n =
        C.ops_state ? alertstate_silences(C.ops_state, nw_clock_realtime_ms(), sil, 256, &err) : 0;
    if (n == (size_t)-1) {
        snprintf(body, cap, "{\"ok\":false,\"error\":\"cannot read silences\"}\n");
        return MHD_HTTP_INTERNAL_SERVER_ERROR;
    }
    size_t len = (size_t)snprintf(body, cap, "[");
    for (size_t i = 0; i < n && len < cap; i++) {
        char until[NW_CLOCK_RFC3339_SIZE];
        nw_clock_format_rfc3339(sil[i].until_ms, until);
        len += (size_t)snprintf(body + len, cap - len,
                                "%s{\"device\":\"%s\",\"rule\":\"%s\",\"until\":\"%s\"}",
                                i ? "," : "", sil[i].device, sil[i].rule, until);
    }
    if (len < cap) {
        snprintf(body + len, cap - len, "]\n");
    }
    return MHD_HTTP_OK;
}

#define BIG_BODY (8u << 20) /* /alerts: the registry's bound x ~400 bytes */

/* The body of one request into body (cap bytes); returns the status. */
static unsigned route(struct MHD_Connection *conn, const char *url, const char *method, char *body,
                      size_t cap, const char **type)
{
    bool get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
    bool alerts_api = C.registry != NULL;
    *type = "application/json";
    if (get && !strcmp(url, "/alerts") && alerts_api) {
        return alertreg_json(C.registry, body, cap) ? MHD_HTTP_OK : MHD_HTTP_INTERNAL_SERVER_ERROR;
    }
    if (post && !strcmp(url, "/alerts/ack") && alerts_api) {
        return ack_alert(conn, body, cap);
    }
    if (post && !strcmp(url, "/silences") && alerts_api) {
        return add_silence(conn, body, cap);
    }
    if (get && !strcmp(url, "/silences") && alerts_api) {
        return list_silences(body, cap);
    }
    *type = "text/plain; version=0.0.4";
    if (get && !strcmp(url, "/metrics")) {
        size_t len = collector_metrics_render(body, cap);
        zsec_metrics_render(C.zsec, body + len, cap - len);
        return MHD_HTTP_OK;
    }
    if (get && !strcmp(url, "/healthz")) {
        bool broker = CM_GET(broker_up), store = CM_GET(store_up);
        unsigned status = broker && store ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE;
        snprintf(body, cap, "%s broker=%s store=%s\n", status == MHD_HTTP_OK ? "ok" : "degraded",
                 broker ? "up" : "down", store ? "up" : "down");
        return status;
    }
    snprintf(body, cap,
             "GET /healthz, /metrics, /alerts, /silences; POST /alerts/ack?id=ID, "
             "/silences?device=D&rule=R&for=2h\n");
    return get || post ? MHD_HTTP_NOT_FOUND : MHD_HTTP_METHOD_NOT_ALLOWED;
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *data,
                              size_t *size, void **state)
{
    (void)cls, (void)version, (void)data;
    if (*state == NULL) { /* headers only: MHD calls again with the body */
        *state = conn;
        return MHD_YES;
    }
    if (*size) {
        *size = 0; /* a body is ignored: every argument is in the query */
        return MHD_YES;
    }
    size_t cap = !strcmp(url, "/alerts") ? BIG_BODY : 65536;
    char *body = malloc(cap);
    if (!body) {
        return MHD_NO;
    }
    const char *type = NULL;
    unsigned status = route(conn, url, method, body, cap, &type);
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", type);
    enum MHD_Result rc = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return rc;
}

static int start_http(void)
{
    if (!C.cfg.http[0]) {
        return 0;
    }
    char host[64];
    snprintf(host, sizeof(host), "%s", C.cfg.http);
    char *colon = strrchr(host, ':');
    struct sockaddr_in addr = {.sin_family = AF_INET};
    long port = colon ? strtol(colon + 1, NULL, 10) : 0;
    if (colon) {
        *colon = '\0';
    }
    if (!colon || port < 1 || port > 65535 || inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        fprintf(stderr, "needlewatch-collector: collector.http \"%s\": expected IPv4:PORT\n",
                C.cfg.http);
        return 2;
    }
    addr.sin_port = htons((uint16_t)port);
    C.http =
        MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, (uint16_t)port, NULL, NULL, answer, NULL,
                         MHD_OPTION_SOCK_ADDR, &addr, MHD_OPTION_CONNECTION_LIMIT, (unsigned)16,
                         MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
    if (!C.http) {
        nw_log(NW_LOG_ERROR, "http", "cannot listen on %s", C.cfg.http);
        return 1;
    }
    nw_log(NW_LOG_NOTICE, "http", "serving /healthz, /metrics%s on %s",
           C.registry ? ", /alerts, /silences" : "", C.cfg.http);
    return 0;
}

/* ---- threads ----------------------------------------------------------- */

static void *run_worker(void *arg)
{
    worker_run(arg, &C.stop_input, &C.drained);
    return NULL;
}

static void *run_writer(void *arg)
{
    writer_run(arg, &C.stop_writer);
    return NULL;
}

static void *run_notify(void *arg)
{
    notify_run(arg, &C.stop_notify);
    return NULL;
}

static void *run_ingest(void *arg)
{
    ingest_run(arg, &C.stop_ingest);
    return NULL;
}

/* Splits a comma-separated list into out[] (pointers into buf); count. */
static int split_list(char *buf, const char **out, int max)
{
    int n = 0;
    for (char *p = buf; p && *p && n < max;) {
        out[n++] = p;
        p = strchr(p, ',');
        if (p) {
            *p++ = '\0';
        }
    }
    return n;
}

/* Endpoints of this process's workers: inproc for role all, the
 * collector.listen list for role aggregate. Returns the count, 0 if none. */
static int worker_endpoints(void)
{
    static char listen[sizeof(C.cfg.listen)];
    if (C.cfg.role == ROLE_AGGREGATE) {
        memcpy(listen, C.cfg.listen, sizeof(listen));
        return split_list(listen, C.worker_eps, CP_MAX_WORKERS);
    }
    for (int i = 0; i < (int)C.cfg.workers; i++) {
        snprintf(C.worker_ep[i], sizeof(C.worker_ep[i]), "inproc://nw-worker-%d", i);
        C.worker_eps[i] = C.worker_ep[i];
    }
    return (int)C.cfg.workers;
}

static enum nw_err build_workers(int n, const struct nw_limits *lim, struct nw_error *err)
{
    const char *acks = C.cfg.role == ROLE_AGGREGATE ? C.cfg.ack_to : CP_EP_ACKS;
    int total = C.cfg.role == ROLE_AGGREGATE && C.cfg.total_workers ? (int)C.cfg.total_workers
                                                                    : (int)C.cfg.first_worker + n;
    for (int i = 0; i < n; i++) {
        snprintf(C.settle_ep[i], sizeof(C.settle_ep[i]), "inproc://nw-settle-%d", i);
        snprintf(C.control_ep[i], sizeof(C.control_ep[i]), "inproc://nw-control-%d", i);
        C.settle_eps[i] = C.settle_ep[i];
        struct worker_options wo = {.id = i,
                                    .global_id = (int)C.cfg.first_worker + i,
                                    .endpoint = C.worker_eps[i],
                                    .writer_endpoint = CP_EP_WRITER,
                                    .settle_endpoint = C.settle_ep[i],
                                    .ack_endpoint = acks,
                                    .control_endpoint = C.control_ep[i],
                                    .control_ack_endpoint = CP_EP_CONTROL,
                                    .inventory = C.inventory,
                                    .specs = C.specs,
                                    .nspecs = C.nspecs,
                                    .max_devices = C.cfg.max_devices,
                                    .workers = total,
                                    .ack_state_path = C.cfg.state,
                                    .limits = *lim,
                                    .coalesce_ms = C.cfg.coalesce_ms};
        if (C.cfg.alerts_on) {
            wo.rules = &C.rules;
            wo.alert_state_path = C.cfg.alert_state;
            wo.cartridge_index_path =
                C.cfg.cartridge_index[0] ? C.cfg.cartridge_index : C.cfg.alert_state;
            wo.notify_endpoint = C.notify ? CP_EP_ALERTS : NULL;
            wo.ops_endpoint = CP_EP_OPS;
            wo.registry = C.registry;
        }
        if (worker_new(&wo, C.zctx, &C.workers[i], err) != NW_OK ||
            !(C.control[i] = cp_open(C.zctx, ZMQ_PUSH, C.control_ep[i], false, err))) {
            return NW_ERR_CONFIG;
        }
    }
    return NW_OK;
}

/* The alert side of an aggregating process: registry, operator command
 * socket, silences store, and the notifier (PUB and webhook) if asked. */
static enum nw_err build_alerts(const struct nw_limits *lim, struct nw_error *err)
{
    if (!C.cfg.alerts_on) {
        return NW_OK;
    }
    pthread_mutex_init(&C.ops_lock, NULL);
    if (!(C.registry = alertreg_new(ALERTREG_DEFAULT_CAP))) {
        return nw_error_set(err, NW_ERR_NOMEM, "out of memory");
    }
    if (!(C.ops = cp_open(C.zctx, ZMQ_PUB, CP_EP_OPS, true, err)) ||
        alertstate_open(C.cfg.alert_state, &C.ops_state, err) != NW_OK) {
        return err->code ? err->code : NW_ERR_CONFIG;
    }
    if (!C.cfg.alerts_pub[0] && !C.cfg.webhook[0]) {
        return NW_OK;
    }
    struct notify_options no = {.endpoint = CP_EP_ALERTS,
                                .pub_endpoint = C.cfg.alerts_pub,
                                .webhook_url = C.cfg.webhook,
                                .webhook_queue_max = C.cfg.webhook_queue,
                                .webhook_timeout_ms = (int)C.cfg.webhook_timeout_ms,
                                .backoff_max_ms = (int)C.cfg.webhook_backoff_max_ms,
                                .limits = *lim};
    return notify_new(&no, C.zctx, &C.notify, err);
}

static enum nw_err build_writer(int n, struct nw_error *err)
{
    struct writer_options wr = {.endpoint = CP_EP_WRITER,
                                .settle_endpoints = C.settle_eps,
                                .workers = n,
                                .store_url = C.cfg.store,
                                .batch_points = C.cfg.batch_points,
                                .max_pending_points = C.cfg.max_pending_points,
                                .flush_ms = C.cfg.flush_ms,
                                .spool_dir = C.cfg.spool[0] ? C.cfg.spool : NULL,
                                .spool_max_bytes = C.cfg.spool_max};
    wr.store.timeout_ms = C.cfg.store_timeout_ms;
    wr.store.backoff_max_ms = 10000; /* a returning store is used within 10 s */
    wr.store.dead_letter_path = C.cfg.dead_letter[0] ? C.cfg.dead_letter : NULL;
    wr.store.token_file = C.cfg.store_token_file[0] ? C.cfg.store_token_file : NULL;
    wr.store.credentials_file =
        C.cfg.store_credentials_file[0] ? C.cfg.store_credentials_file : NULL;
    return writer_new(&wr, C.zctx, &C.writer, err);
}

static enum nw_err build_ingest(int n, const struct nw_limits *lim, struct nw_error *err)
{
    struct ingest_options io = {
        .mqtt = {.url = C.cfg.broker,
                 .client_id = C.cfg.client_id,
                 .ca_file = C.cfg.ca_file[0] ? C.cfg.ca_file : NULL,
                 .cert_file = C.cfg.cert_file[0] ? C.cfg.cert_file : NULL,
                 .key_file = C.cfg.key_file[0] ? C.cfg.key_file : NULL,
                 .credentials_file = C.cfg.credentials_file[0] ? C.cfg.credentials_file : NULL,
                 .max_inflight = (int)C.cfg.max_inflight,
                 .receive_maximum = (int)C.cfg.receive_maximum,
                 .buffered_io = C.cfg.buffered_io},
        .prefix = C.cfg.prefix,
        .share_group = C.cfg.share_group[0] ? C.cfg.share_group : NULL,
        .workers = n,
        .worker_endpoints = C.worker_eps,
        .ack_endpoint = C.cfg.role == ROLE_INGEST ? C.cfg.ack_listen : CP_EP_ACKS,
        .dead_letter = C.cfg.dead_letter[0] ? C.cfg.dead_letter : NULL,
        .dead_letter_max = 64ull << 20,
        .ack_interval_ms = C.cfg.ack_interval_ms,
        .coalesce_ms = C.cfg.coalesce_ms,
        .max_devices = C.cfg.max_devices * (size_t)n,
        .limits = *lim};
    return ingest_new(&io, C.zctx, &C.ingest, err);
}

/* Role ingest: one endpoint per worker of the whole fleet, in global order. */
static int ingest_endpoints(void)
{
    static char list[sizeof(C.cfg.aggregate)];
    memcpy(list, C.cfg.aggregate, sizeof(list));
    return split_list(list, C.worker_eps, CP_MAX_WORKERS);
}

static int check_role(int n)
{
    const char *missing = NULL;
    if (C.cfg.role == ROLE_INGEST && (n == 0 || !C.cfg.ack_listen[0])) {
        missing = "role ingest needs collector.aggregate (worker endpoints) and "
                  "collector.ack_listen";
    } else if (C.cfg.role == ROLE_AGGREGATE && (n == 0 || !C.cfg.ack_to[0])) {
        missing = "role aggregate needs collector.listen (one endpoint per worker) and "
                  "collector.ack_to (the ingest processes' ack endpoints)";
    }
    if (missing) {
        fprintf(stderr, "needlewatch-collector: %s\n", missing);
        return 2;
    }
    return 0;
}

/* collector.curve = on: CURVE and ZAP on this process's tcp:// links (zsec.h). */
static int start_curve(void)
{
    bool ingest = C.cfg.role == ROLE_INGEST, aggregate = C.cfg.role == ROLE_AGGREGATE;
    bool tcp =
        (ingest && (strstr(C.cfg.aggregate, "tcp://") || strstr(C.cfg.ack_listen, "tcp://"))) ||
        (aggregate && (strstr(C.cfg.listen, "tcp://") || strstr(C.cfg.ack_to, "tcp://")));
    if (!tcp) {
        return 0;
    }
    if (C.cfg.curve == 0) {
        nw_log(NW_LOG_WARN, "collector",
               "tcp:// links between collector processes are not encrypted (collector.curve = "
               "off): use it on one host or a trusted network only");
        return 0;
    }
    const char *missing = !C.cfg.curve_secret_file[0]       ? "curve_secret_file"
                          : !C.cfg.curve_public_file[0]     ? "curve_public_file"
                          : !C.cfg.curve_peers[0]           ? "curve_peers"
                          : !C.cfg.curve_server_key_file[0] ? "curve_server_key_file"
                                                            : NULL;
    if (missing) {
        fprintf(stderr,
                "needlewatch-collector: collector.curve = on needs collector.%s "
                "(README: \"Encrypting the pipeline between hosts\")\n",
                missing);
        return 2;
    }
    struct zsec_options o = {.secret_file = C.cfg.curve_secret_file,
                             .public_file = C.cfg.curve_public_file,
                             .server_key_file = C.cfg.curve_server_key_file,
                             .peers = C.cfg.curve_peers};
    struct nw_error err = {0};
    const char *zap_off = getenv("NW_TEST_ZAP_OFF"); /* tests only: prove it fails closed */
    if (zsec_new(&o, &C.zsec, &err) != NW_OK ||
        zsec_start(C.zsec, C.zctx, !(zap_off && !strcmp(zap_off, "1")), &err) != NW_OK) {
        fprintf(stderr, "needlewatch-collector: %s\n", err.msg);
        return 2;
    }
    cp_set_security(C.zsec);
    return 0;
}

static int build(void)
{
    struct nw_error err = {0};
    struct nw_limits lim;
    nw_limits_default(&lim);
    int n = C.cfg.role == ROLE_INGEST ? ingest_endpoints() : worker_endpoints();
    int rc = check_role(n);
    if (rc == 0) {
        rc = start_curve();
    }
    if (rc != 0) {
        return rc;
    }
    C.nworkers = n;
    enum nw_err e = (C.control_ack = cp_open(C.zctx, ZMQ_PULL, CP_EP_CONTROL, true, &err))
                        ? NW_OK
                        : NW_ERR_CONFIG;
    if (e == NW_OK && C.cfg.role != ROLE_INGEST) {
        e = build_alerts(&lim, &err);
    }
    if (e == NW_OK && C.cfg.role != ROLE_INGEST) {
        e = build_workers(n, &lim, &err);
    }
    if (e == NW_OK && C.cfg.role != ROLE_INGEST) {
        e = build_writer(n, &err);
    }
    if (e == NW_OK && C.cfg.role != ROLE_AGGREGATE) {
        e = build_ingest(n, &lim, &err);
    }
    if (e != NW_OK) {
        nw_log(NW_LOG_ERROR, "collector", "%s", err.msg);
        return err.code == NW_ERR_CONFIG ? 2 : 1;
    }
    return 0;
}

static void teardown(void)
{
    if (C.http) {
        MHD_stop_daemon(C.http);
    }
    ingest_destroy(&C.ingest);
    writer_destroy(&C.writer);
    notify_destroy(&C.notify);
    if (C.ops) {
        zmq_close(C.ops);
    }
    alertstate_close(&C.ops_state);
    for (int i = 0; i < CP_MAX_WORKERS; i++) {
        if (C.control[i]) {
            zmq_close(C.control[i]);
        }
    }
    if (C.control_ack) {
        zmq_close(C.control_ack);
    }
    for (int i = 0; i < CP_MAX_WORKERS; i++) {
        worker_destroy(&C.workers[i]);
    }
    cp_set_security(NULL);
    zsec_destroy(&C.zsec); /* before zmq_ctx_term: it owns sockets of C.zctx */
    if (C.zctx) {
        zmq_ctx_term(C.zctx);
    }
    nw_inventory_destroy(&C.inventory);
    alertreg_destroy(&C.registry);
}

static int load_inventory(void)
{
    struct nw_error err = {0};
    if (!C.cfg.inventory[0]) {
        C.inventory = nw_inventory_empty();
        nw_log(NW_LOG_WARN, "collector", "no inventory: every device is stored as \"%s\"",
               NW_UNASSIGNED_CLINIC);
        return C.inventory ? 0 : 1;
    }
    if (nw_inventory_load(C.cfg.inventory, &C.inventory, &err) != NW_OK) {
        fprintf(stderr, "needlewatch-collector: %s\n", err.msg);
        return 2;
    }
    nw_log(NW_LOG_NOTICE, "collector", "inventory %s: %zu devices", C.cfg.inventory,
           nw_inventory_count(C.inventory));
    return 0;
}

/* SIGHUP: a new inventory for every worker; the old one is freed once all
 * of them have switched, and kept (logged) if one does not answer. */
static void reload_inventory(void)
{
    struct nw_error err = {0};
    struct nw_inventory *inv = NULL;
    if (!C.cfg.inventory[0]) {
        nw_log(NW_LOG_WARN, "collector", "SIGHUP: no inventory file configured");
        return;
    }
    if (nw_inventory_load(C.cfg.inventory, &inv, &err) != NW_OK) {
        nw_log(NW_LOG_ERROR, "collector", "SIGHUP: %s; the current inventory stays", err.msg);
        return;
    }
    int n = C.nworkers, answered = 0;
    for (int i = 0; i < n; i++) {
        struct worker_control c = {.inventory = inv};
        zmq_send(C.control[i], &c, sizeof(c), 0);
    }
    int64_t until = nw_clock_mono_ms() + 5000;
    while (answered < n && nw_clock_mono_ms() < until) {
        zmq_pollitem_t item = {.socket = C.control_ack, .events = ZMQ_POLLIN};
        int id;
        if (zmq_poll(&item, 1, 100) > 0 && zmq_recv(C.control_ack, &id, sizeof(id), 0) > 0) {
            answered++;
        }
    }
    if (answered < n) {
        nw_log(NW_LOG_ERROR, "collector",
               "SIGHUP: %d of %d workers switched in 5 s; keeping "
               "the old inventory in memory",
               answered, n);
        C.inventory = inv; /* the old one leaks rather than be freed under a reader */
        return;
    }
    nw_inventory_destroy(&C.inventory);
    C.inventory = inv;
    nw_log(NW_LOG_NOTICE, "collector", "SIGHUP: inventory %s reloaded: %zu devices",
           C.cfg.inventory, nw_inventory_count(inv));
}

static void run(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_t tw[CP_MAX_WORKERS], twr, tin, tno;
    int n = C.cfg.role == ROLE_INGEST ? 0 : C.nworkers;
    for (int i = 0; i < n; i++) {
        pthread_create(&tw[i], NULL, run_worker, C.workers[i]);
    }
    if (C.writer) {
        pthread_create(&twr, NULL, run_writer, C.writer);
    }
    if (C.ingest) {
        pthread_create(&tin, NULL, run_ingest, C.ingest);
    }
    if (C.notify) {
        pthread_create(&tno, NULL, run_notify, C.notify);
    }
    for (;;) {
        int sig = 0;
        sigwait(&set, &sig);
        if (sig == SIGHUP && n > 0) {
            reload_inventory();
            continue;
        }
        if (sig == SIGHUP) {
            continue; /* an ingest process has no inventory */
        }
        nw_log(NW_LOG_NOTICE, "collector", "%s: flushing the store and the acks", strsignal(sig));
        break;
    }
    C.stop_input = 1;
    /* The writer stops after the workers have sent it their last points
     * (bounded: a worker busy with a long turn is not waited for forever). */
    int quiet = 0;
    for (int k = 0; k < 2000 && quiet < n; k++) {
        quiet = 0;
        for (int i = 0; i < n; i++) {
            quiet += worker_quiesced(C.workers[i]);
        }
        if (quiet < n) {
            usleep(1000);
        }
    }
    if (quiet < n) {
        nw_log(NW_LOG_WARN, "collector",
               "%d of %d workers still busy after 2 s: their last points may not be stored "
               "(never acked: agents re-send)",
               n - quiet, n);
    }
    C.stop_writer = 1;
    if (C.writer) {
        pthread_join(twr, NULL);
    }
    usleep(200 * 1000); /* let workers turn the last settles into ack requests */
    C.drained = 1;
    for (int i = 0; i < n; i++) {
        pthread_join(tw[i], NULL);
    }
    C.stop_ingest = 1;
    C.stop_notify = 1;
    if (C.ingest) {
        pthread_join(tin, NULL);
    }
    if (C.notify) {
        pthread_join(tno, NULL);
    }
}

int main(int argc, char **argv)
{
    int rc = parse_args(argc, argv);
    if (rc >= 0) {
        return rc;
    }
    nw_log_init("needlewatch-collector", (enum nw_log_level)C.cfg.log_level, NW_LOG_TO_STDERR);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* every thread inherits it; main sigwaits */
    signal(SIGPIPE, SIG_IGN);
    nw_store_sqlite_process_init();
    rc = load_inventory();
    if (rc == 0) {
        C.zctx = zmq_ctx_new();
        rc = C.zctx ? build() : 1;
    }
    if (rc == 0) {
        rc = start_http();
    }
    if (rc == 0) {
        nw_log(NW_LOG_NOTICE, "collector", "role %s: broker %s, store %s, %d workers",
               roles[C.cfg.role], C.cfg.role == ROLE_AGGREGATE ? "-" : C.cfg.broker,
               C.cfg.role == ROLE_INGEST ? "-" : C.cfg.store, C.nworkers);
        run();
        nw_log(NW_LOG_NOTICE, "collector", "stopped: %llu points stored, %llu acks sent",
               (unsigned long long)CM_GET(points_stored), (unsigned long long)CM_GET(acks_sent));
    }
    teardown();
    return rc;
}

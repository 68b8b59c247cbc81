/*
 * agent_main.c - needlewatch-agent: the on-device daemon.
 *
 * One thread, one poll loop: the source's descriptor (or a short timer for
 * the sim), the MQTT socket, and the timers of windowing, heartbeats, ack
 * timeouts and queue syncs. Every window and event is numbered, validated
 * and appended to the disk queue before anything is published; the uplink
 * sends from the queue and trims it on the collector's acks.
 */
#include "source.h"
#include "state.h"
#include "uplink.h"
#include "windower.h"

#include <needlewatch/clock.h>
#include <needlewatch/codec.h>
#include <needlewatch/config.h>
#include <needlewatch/dq.h>
#include <needlewatch/log.h>
#include <needlewatch/mqtt.h>
#include <needlewatch/topic.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define INPUTS_PER_TURN 2000
#define STATUS_MAX 512

struct agent_cfg {
    char device[NW_DEVICE_ID_MAX + 1];
    char model[NW_VERSION_MAX + 1];
    char firmware[NW_VERSION_MAX + 1];
    char source[512];
    int64_t window_ms;
    int64_t heartbeat_ms;
    char queue_dir[512];
    int log_level;
    char broker[256];
    char ca_file[512], cert_file[512], key_file[512], credentials_file[512];
    char prefix[NW_TOPIC_PREFIX_MAX + 1];
    uint64_t max_inflight;
    uint64_t batch_max;
    int64_t ack_timeout_ms;
    uint64_t queue_max_bytes;
    uint64_t segment_bytes;
    int sync;
    int64_t sync_interval_ms;
    uint64_t sim_seed;
};

static const char *const log_levels[] = {"debug", "info", "notice", "warn", "error", NULL};
static const char *const sync_modes[] = {"interval", "always", "never", NULL};

#define F(m) NW_CFG_FIELD(struct agent_cfg, m)
static const struct nw_cfg_key keys[] = {
    {"agent", "device", NW_CFG_STR, F(device),
     .help = "device id, 1-64 of [A-Za-z0-9_-] (required)"},
    {"agent", "model", NW_CFG_STR, F(model), "DG-3", .help = "device model reported in status"},
    {"agent", "firmware", NW_CFG_STR, F(firmware), "unknown",
     .help = "firmware version reported in status"},
    {"agent", "source", NW_CFG_STR, F(source), "sim", .help = "sim, replay:FILE or pipe:PATH"},
    {"agent", "window", NW_CFG_DURATION_MS, F(window_ms), "1s", 100, 60000,
     .help = "telemetry window length (0.1-60 s)"},
    {"agent", "heartbeat", NW_CFG_DURATION_MS, F(heartbeat_ms), "30s", 1000, 3600000,
     .help = "status heartbeat interval"},
    {"agent", "queue_dir", NW_CFG_PATH, F(queue_dir), "/var/lib/needlewatch-agent",
     .help = "disk queue and state directory"},
    {"agent", "log_level", NW_CFG_ENUM, F(log_level), "info", .choices = log_levels,
     .help = "debug, info, notice, warn or error"},
    {"agent", "sim_seed", NW_CFG_UINT, F(sim_seed), "1", .help = "seed of the sim source"},
    {"mqtt", "broker", NW_CFG_STR, F(broker), "mqtt://127.0.0.1:1883",
     .help = "mqtt://HOST[:PORT] or mqtts://HOST[:PORT]"},
    {"mqtt", "ca_file", NW_CFG_PATH, F(ca_file), .help = "CA certificate for mqtts://"},
    {"mqtt", "cert_file", NW_CFG_PATH, F(cert_file), .help = "client certificate (CN = device id)"},
    {"mqtt", "key_file", NW_CFG_PATH, F(key_file), .help = "client private key"},
    {"mqtt", "credentials_file", NW_CFG_PATH, F(credentials_file),
     .help = "file: username line, password line"},
    {"mqtt", "topic_prefix", NW_CFG_STR, F(prefix), NW_TOPIC_PREFIX_DEFAULT,
     .help = "topic prefix"},
    {"mqtt", "max_inflight", NW_CFG_UINT, F(max_inflight), "16", 1, 1000,
     .help = "QoS 1 messages awaiting PUBACK"},
    {"mqtt", "batch_max", NW_CFG_UINT, F(batch_max), "256", 1, 4096,
     .help = "windows per message when catching up"},
    {"mqtt", "ack_timeout", NW_CFG_DURATION_MS, F(ack_timeout_ms), "30s", 1000, 3600000,
     .help = "re-send unacknowledged records after this"},
    {"queue", "max_bytes", NW_CFG_SIZE, F(queue_max_bytes), "64M", 4096, 1099511627776.0,
     .help = "disk queue bound; oldest dropped beyond (counted)"},
    {"queue", "segment_bytes", NW_CFG_SIZE, F(segment_bytes), "1M", 4096, 1073741824.0,
     .help = "queue segment file size"},
    {"queue", "sync", NW_CFG_ENUM, F(sync), "interval", .choices = sync_modes,
     .help = "fsync: interval, always or never (see README)"},
    {"queue", "sync_interval", NW_CFG_DURATION_MS, F(sync_interval_ms), "200ms", 1, 60000,
     .help = "fsync period for sync = interval"},
};
#undef F
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

struct agent {
    struct agent_cfg cfg;
    struct nw_limits lim;
    struct agent_state *state;
    struct nw_dq *dq;
    struct agent_source *src;
    struct agent_windower *win;
    struct nw_codec *codec;    /* records and status */
    struct nw_codec *up_codec; /* the uplink's own: one per user */
    struct nw_mqtt *mqtt;
    struct agent_uplink *up;
    uint64_t next_seq[2];
    char session[NW_ID_MAX + 1], cartridge[NW_ID_MAX + 1], lot[NW_ID_MAX + 1];
    char topic_status[NW_TOPIC_MAX + 1];
    uint8_t rec[NW_DQ_MAX_PAYLOAD];
    int64_t started_mono, next_heartbeat;
    bool status_due, source_ended;
    uint64_t windows, events, rejected, lost_io;
    struct nw_logonce *bad_input;
};

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
    stop_signal = sig;
}

/* ---- usage ------------------------------------------------------------- */

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: needlewatch-agent [--config FILE] [--device ID] [--source SPEC]\n"
        "                         [--broker URL] [--queue-dir DIR] [--set SECTION.KEY=VALUE]...\n"
        "\n"
        "The on-device daemon of needlewatch: reads needle samples and events from a\n"
        "source, cuts them into telemetry windows, keeps every window and event in a\n"
        "crash-safe disk queue, and publishes them over MQTT 5 until the collector\n"
        "acknowledges that they are stored.\n"
        "\n"
        "  -c, --config FILE     INI file (keys below); flags override it\n"
        "  -d, --device ID       = --set agent.device=ID\n"
        "  -s, --source SPEC     = --set agent.source=SPEC (sim, replay:FILE, pipe:PATH)\n"
        "  -b, --broker URL      = --set mqtt.broker=URL\n"
        "  -q, --queue-dir DIR   = --set agent.queue_dir=DIR\n"
        "  -S, --set S.K=V       any key below\n"
        "  -h, --help            this text\n"
        "  -V, --version         version\n"
        "\n"
        "Keys (section.key, type, default):\n");
    nw_config_print_help(out, keys, NKEYS, NW_CFG_HELP_TEXT);
    fprintf(out, "\nExit status: 0 after SIGTERM/SIGINT or the end of a replay, 1 on a runtime\n"
                 "failure, 2 on bad usage or configuration.\n");
}

static int apply(struct agent_cfg *cfg, const char *dotted, const char *value)
{
    struct nw_error err = {0};
    if (nw_config_apply_flag(keys, NKEYS, cfg, dotted, value, &err) != NW_OK) {
        fprintf(stderr, "needlewatch-agent: %s\n", err.msg);
        return 2;
    }
    return 0;
}

/* Returns -1 to go on, else the exit status. */
static int parse_args(int argc, char **argv, struct agent_cfg *cfg)
{
    static const struct option longopts[] = {{"config", required_argument, NULL, 'c'},
                                             {"device", required_argument, NULL, 'd'},
                                             {"source", required_argument, NULL, 's'},
                                             {"broker", required_argument, NULL, 'b'},
                                             {"queue-dir", required_argument, NULL, 'q'},
                                             {"set", required_argument, NULL, 'S'},
                                             {"help", no_argument, NULL, 'h'},
                                             {"version", no_argument, NULL, 'V'},
                                             {NULL, 0, NULL, 0}};
    struct nw_error err = {0};
    if (nw_config_defaults(keys, NKEYS, cfg, &err) != NW_OK) {
        fprintf(stderr, "needlewatch-agent: %s\n", err.msg);
        return 2;
    }
    /* The config file first, so that flags override it whatever their order. */
    for (int i = 1; i + 1 < argc; i++) {
        if (!strcmp(argv[i], "-c") || !strcmp(argv[i], "--config")) {
            if (nw_config_load_file(argv[i + 1], keys, NKEYS, cfg, NULL, NULL, &err) != NW_OK) {
                fprintf(stderr, "needlewatch-agent: %s\n", err.msg);
                return 2;
            }
        }
    }
    int c, rc = 0;
    while (rc == 0 && (c = getopt_long(argc, argv, "c:d:s:b:q:S:hV", longopts, NULL)) != -1) {
        char *eq;
        switch (c) {
        case 'c':
            break;
        case 'd':
            rc = apply(cfg, "agent.device", optarg);
            break;
        case 's':
            rc = apply(cfg, "agent.source", optarg);
            break;
        case 'b':
            rc = apply(cfg, "mqtt.broker", optarg);
            break;
        case 'q':
            rc = apply(cfg, "agent.queue_dir", optarg);
            break;
        case 'S':
            eq = strchr(optarg, '=');
            if (!eq) {
                fprintf(stderr, "needlewatch-agent: --set %s: expected SECTION.KEY=VALUE\n",
                        optarg);
                return 2;
            }
            *eq = '\0';
            rc = apply(cfg, optarg, eq + 1);
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("needlewatch-agent %s\n", NW_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (rc != 0) {
        return rc;
    }
    if (optind < argc) {
        fprintf(stderr, "needlewatch-agent: unexpected argument \"%s\" (try --help)\n",
                argv[optind]);
        return 2;
    }
    if (!nw_valid_device_id(cfg->device)) {
        fprintf(stderr,
                "needlewatch-agent: agent.device \"%s\": needs 1-64 of [A-Za-z0-9_-] "
                "(--device ID)\n",
                cfg->device);
        return 2;
    }
    return -1;
}

/* ---- status ------------------------------------------------------------ */

static void make_status(struct agent *a, enum nw_device_state state, struct nw_status *s)
{
    struct nw_dq_stats st;
    nw_dq_stats(a->dq, &st);
    memset(s, 0, sizeof(*s));
    snprintf(s->device_id, sizeof(s->device_id), "%s", a->cfg.device);
    s->epoch = agent_state_epoch(a->state);
    s->state = state;
    s->time_ms = nw_clock_realtime_ms();
    snprintf(s->firmware, sizeof(s->firmware), "%s", a->cfg.firmware);
    snprintf(s->model, sizeof(s->model), "%s", a->cfg.model);
    snprintf(s->session_id, sizeof(s->session_id), "%s", a->session);
    s->uptime_s = (uint64_t)(nw_clock_mono_ms() - a->started_mono) / 1000;
    s->odometer_cycles = agent_state_odometer_cycles(a->state);
    s->running_s = agent_state_running_s(a->state);
    s->queue_depth = st.unacked[NW_DQ_TYPE_WINDOW] + st.unacked[NW_DQ_TYPE_EVENT];
    s->queue_bytes = st.bytes;
    s->windows_dropped = st.dropped[NW_DQ_TYPE_WINDOW];
    s->events_dropped = st.dropped[NW_DQ_TYPE_EVENT];
    s->corrupt_records = st.corrupt_records;
    s->last_window_seq = a->next_seq[AGENT_SEQ_WINDOW] - 1;
    s->last_event_seq = a->next_seq[AGENT_SEQ_EVENT] - 1;
    s->heartbeat_s = (uint32_t)(a->cfg.heartbeat_ms / 1000);
}

static void publish_status(struct agent *a, enum nw_device_state state)
{
    struct nw_status s;
    uint8_t buf[STATUS_MAX];
    size_t len = 0;
    struct nw_error err = {0};
    make_status(a, state, &s);
    if (nw_codec_encode_status(a->codec, &s, buf, sizeof(buf), &len, &err) == NW_OK &&
        nw_mqtt_publish(a->mqtt, a->topic_status, buf, len, 1, true, NULL, &err) == NW_OK) {
        a->status_due = false;
        a->next_heartbeat = nw_clock_mono_ms() + a->cfg.heartbeat_ms;
    }
}

/* The will: an offline status, refreshed before every connect attempt. */
static void set_will(struct agent *a)
{
    struct nw_status s;
    uint8_t buf[STATUS_MAX];
    size_t len = 0;
    make_status(a, NW_DEVICE_OFFLINE, &s);
    if (nw_codec_encode_status(a->codec, &s, buf, sizeof(buf), &len, NULL) == NW_OK) {
        nw_mqtt_set_will(a->mqtt, a->topic_status, buf, len, true, NULL);
    }
}

/* ---- MQTT callbacks ---------------------------------------------------- */

static void cb_connect(void *user)
{
    struct agent *a = user;
    nw_log(NW_LOG_NOTICE, "mqtt", "connected to %s", a->cfg.broker);
    agent_uplink_on_connect(a->up, nw_clock_mono_ms());
    a->status_due = true;
}

static void cb_disconnect(void *user, const char *reason)
{
    struct agent *a = user;
    nw_log(NW_LOG_WARN, "mqtt", "%s: %s; queueing on disk", a->cfg.broker, reason);
    set_will(a);
}

static void cb_message(void *user, const char *topic, const void *payload, size_t len)
{
    struct agent *a = user;
    agent_uplink_on_message(a->up, topic, payload, len, nw_clock_mono_ms());
}

static void cb_publish(void *user, int mid, int reason_code)
{
    (void)mid;
    struct agent *a = user;
    agent_uplink_on_publish(a->up, reason_code, nw_clock_mono_ms());
}

/* ---- inputs to the queue ----------------------------------------------- */

static void reject(struct agent *a, size_t reason, const char *what, const struct nw_error *err)
{
    a->rejected++;
    nw_logonce_hit(a->bad_input, reason, "%s refused: %s", what, err->msg);
}

static void enqueue_window(struct agent *a, struct nw_window *w)
{
    struct nw_error err = {0};
    w->seq = a->next_seq[AGENT_SEQ_WINDOW];
    if (nw_validate_window(w, &a->lim, nw_clock_realtime_ms(), NULL, &err) != NW_OK) {
        reject(a, 1, "window", &err);
        return;
    }
    struct nw_window_batch b = {
        .epoch = agent_state_epoch(a->state), .count = 1, .capacity = 1, .windows = w};
    snprintf(b.device_id, sizeof(b.device_id), "%s", a->cfg.device);
    size_t len = 0;
    if (agent_state_use_seq(a->state, AGENT_SEQ_WINDOW, w->seq, &err) != NW_OK ||
        nw_codec_encode_windows(a->codec, &b, a->rec, sizeof(a->rec), &len, &err) != NW_OK ||
        nw_dq_append(a->dq, NW_DQ_TYPE_WINDOW, w->seq, a->rec, len, &err) != NW_OK) {
        a->lost_io++;
        nw_logonce_hit(a->bad_input, 3, "window %" PRIu64 " lost: %s", w->seq, err.msg);
    }
    a->next_seq[AGENT_SEQ_WINDOW]++; /* never reused, even when lost */
    a->windows++;
    agent_state_add_running(a->state, w->cycles, w->running_ms);
}

static void track_context(struct agent *a, const struct nw_event *e)
{
    switch (e->kind) {
    case NW_EVENT_SESSION_START:
        snprintf(a->session, sizeof(a->session), "%s", e->session_id);
        agent_windower_set_idle_windows(a->win, true);
        break;
    case NW_EVENT_SESSION_END:
        a->session[0] = '\0';
        agent_windower_set_idle_windows(a->win, false);
        break;
    case NW_EVENT_CARTRIDGE_INSERTED:
        snprintf(a->cartridge, sizeof(a->cartridge), "%s", e->cartridge_id);
        break;
    case NW_EVENT_CARTRIDGE_REMOVED:
        a->cartridge[0] = '\0';
        break;
    case NW_EVENT_PIGMENT_LOADED:
        snprintf(a->lot, sizeof(a->lot), "%s", e->lot);
        break;
    default:
        return;
    }
    agent_windower_set_context(a->win, a->session, a->cartridge, a->lot);
    a->status_due = true;
}

static void enqueue_event(struct agent *a, struct nw_event *e)
{
    struct nw_error err = {0};
    e->seq = a->next_seq[AGENT_SEQ_EVENT];
    if (nw_validate_event(e, &a->lim, nw_clock_realtime_ms(), NULL, &err) != NW_OK) {
        reject(a, 2, "event", &err);
        return;
    }
    track_context(a, e);
    struct nw_event_batch b = {
        .epoch = agent_state_epoch(a->state), .count = 1, .capacity = 1, .events = e};
    snprintf(b.device_id, sizeof(b.device_id), "%s", a->cfg.device);
    size_t len = 0;
    if (agent_state_use_seq(a->state, AGENT_SEQ_EVENT, e->seq, &err) != NW_OK ||
        nw_codec_encode_events(a->codec, &b, a->rec, sizeof(a->rec), &len, &err) != NW_OK ||
        nw_dq_append(a->dq, NW_DQ_TYPE_EVENT, e->seq, a->rec, len, &err) != NW_OK) {
        a->lost_io++;
        nw_logonce_hit(a->bad_input, 3, "event %" PRIu64 " lost: %s", e->seq, err.msg);
    }
    a->next_seq[AGENT_SEQ_EVENT]++;
    a->events++;
}

static void take_windows(struct agent *a, struct nw_window *w, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        enqueue_window(a, &w[i]);
    }
}

static void read_source(struct agent *a)
{
    struct nw_window out[AGENT_WINDOWER_MAX_OUT];
    for (int i = 0; i < INPUTS_PER_TURN && !a->source_ended; i++) {
        struct agent_input in;
        struct nw_error err = {0};
        enum nw_err rc = agent_source_next(a->src, nw_clock_realtime_ms(), &in, &err);
        if (rc != NW_OK) {
            reject(a, 0, "source line", &err);
            continue;
        }
        if (in.kind == AGENT_INPUT_NONE) {
            break;
        }
        if (in.kind == AGENT_INPUT_END) {
            a->source_ended = true;
            take_windows(a, out, agent_windower_flush(a->win, out));
            nw_log(NW_LOG_NOTICE, "source", "%s: end of input", a->cfg.source);
            break;
        }
        if (in.kind == AGENT_INPUT_EVENT) {
            enqueue_event(a, &in.event);
            continue;
        }
        size_t n = agent_windower_feed(a->win, &in.sample, out, AGENT_WINDOWER_MAX_OUT, &err);
        if (err.code != NW_OK) {
            reject(a, 0, "sample", &err);
        }
        take_windows(a, out, n);
    }
}

/* ---- setup ------------------------------------------------------------- */

static int open_queue(struct agent *a, struct nw_error *err)
{
    if (mkdir(a->cfg.queue_dir, 0700) != 0 && errno != EEXIST) {
        nw_error_set(err, NW_ERR_IO, "queue dir %s: %s", a->cfg.queue_dir, strerror(errno));
        return 1;
    }
    if (agent_state_open(a->cfg.queue_dir, a->cfg.device, &a->state, err) != NW_OK) {
        return err->code == NW_ERR_CONFIG ? 2 : 1;
    }
    char qdir[600];
    snprintf(qdir, sizeof(qdir), "%s/queue", a->cfg.queue_dir);
    struct nw_dq_options o;
    nw_dq_options_init(&o, qdir);
    o.max_bytes = a->cfg.queue_max_bytes;
    o.segment_bytes = a->cfg.segment_bytes;
    o.sync = (enum nw_dq_sync)a->cfg.sync;
    o.sync_interval_ms = (uint32_t)a->cfg.sync_interval_ms;
    if (nw_dq_open(&o, &a->dq, err) != NW_OK) {
        return err->code == NW_ERR_CONFIG || err->code == NW_ERR_INVAL ? 2 : 1;
    }
    bool exact = o.sync == NW_DQ_SYNC_ALWAYS;
    if (agent_state_resume_seq(a->state, AGENT_SEQ_WINDOW, nw_dq_max_seq(a->dq, NW_DQ_TYPE_WINDOW),
                               exact, &a->next_seq[AGENT_SEQ_WINDOW], err) != NW_OK ||
        agent_state_resume_seq(a->state, AGENT_SEQ_EVENT, nw_dq_max_seq(a->dq, NW_DQ_TYPE_EVENT),
                               exact, &a->next_seq[AGENT_SEQ_EVENT], err) != NW_OK) {
        return 1;
    }
    struct nw_dq_stats st;
    nw_dq_stats(a->dq, &st);
    nw_log(NW_LOG_NOTICE, "queue",
           "%s: epoch %016" PRIx64 "%s, %" PRIu64 " records waiting, next window %" PRIu64
           ", next event %" PRIu64 "%s",
           qdir, agent_state_epoch(a->state), agent_state_is_new(a->state) ? " (new)" : "",
           st.unacked[NW_DQ_TYPE_WINDOW] + st.unacked[NW_DQ_TYPE_EVENT],
           a->next_seq[AGENT_SEQ_WINDOW], a->next_seq[AGENT_SEQ_EVENT],
           agent_state_rebooted(a->state) ? " (after reboot)" : "");
    return 0;
}

static const char *opt_path(const char *s)
{
    return s[0] ? s : NULL;
}

static int open_uplink(struct agent *a, struct nw_error *err)
{
    nw_topic_build(a->cfg.prefix, a->cfg.device, NW_TOPIC_STATUS, a->topic_status,
                   sizeof(a->topic_status), NULL);
    struct nw_mqtt_options mo = {.url = a->cfg.broker,
                                 .client_id = a->cfg.device,
                                 .ca_file = opt_path(a->cfg.ca_file),
                                 .cert_file = opt_path(a->cfg.cert_file),
                                 .key_file = opt_path(a->cfg.key_file),
                                 .credentials_file = opt_path(a->cfg.credentials_file),
                                 .max_inflight = (int)a->cfg.max_inflight};
    struct nw_mqtt_callbacks cb = {.user = a,
                                   .on_connect = cb_connect,
                                   .on_disconnect = cb_disconnect,
                                   .on_message = cb_message,
                                   .on_publish = cb_publish};
    if (nw_mqtt_new(&mo, &cb, &a->mqtt, err) != NW_OK) {
        return 2;
    }
    struct agent_uplink_options uo = {.device_id = a->cfg.device,
                                      .prefix = a->cfg.prefix,
                                      .epoch = agent_state_epoch(a->state),
                                      .batch_max = a->cfg.batch_max,
                                      .ack_timeout_ms = a->cfg.ack_timeout_ms};
    a->up = agent_uplink_new(&uo, a->dq, a->mqtt, a->up_codec);
    if (!a->up) {
        nw_error_set(err, NW_ERR_NOMEM, "uplink: out of memory");
        return 1;
    }
    set_will(a);
    nw_mqtt_start(a->mqtt);
    return 0;
}

static int setup(struct agent *a)
{
    struct nw_error err = {0};
    nw_limits_default(&a->lim);
    a->started_mono = nw_clock_mono_ms();
    a->codec = nw_codec_new(&a->lim);
    a->up_codec = nw_codec_new(&a->lim);
    a->win = agent_windower_new((uint32_t)a->cfg.window_ms);
    static const char *const reasons[] = {"bad_line", "bad_window", "bad_event", "queue_io"};
    a->bad_input = nw_logonce_new(NW_LOG_WARN, "input", "refused", "inputs", reasons, 4, 60000);
    if (!a->codec || !a->up_codec || !a->win || !a->bad_input) {
        fprintf(stderr, "needlewatch-agent: out of memory\n");
        return 1;
    }
    struct agent_sim_options so = {.seed = a->cfg.sim_seed,
                                   .device_id = a->cfg.device,
                                   .start_ms = nw_clock_realtime_ms(),
                                   .sample_ms = 100,
                                   .start_in_session = true};
    int rc = open_queue(a, &err);
    if (rc == 0 && agent_source_open(a->cfg.source, &so, &a->src, &err) != NW_OK) {
        rc = err.code == NW_ERR_CONFIG ? 2 : 1;
    }
    if (rc == 0) {
        rc = open_uplink(a, &err);
    }
    if (rc != 0) {
        nw_log(NW_LOG_ERROR, "agent", "%s", err.msg);
    }
    return rc;
}

static void teardown(struct agent *a)
{
    agent_uplink_destroy(&a->up);
    nw_mqtt_destroy(&a->mqtt);
    agent_source_destroy(&a->src);
    nw_dq_close(&a->dq);
    agent_state_close(&a->state);
    agent_windower_destroy(&a->win);
    nw_codec_destroy(&a->codec);
    nw_codec_destroy(&a->up_codec);
    nw_logonce_destroy(&a->bad_input);
}

/* ---- the loop ---------------------------------------------------------- */

static void wait_io(struct agent *a, int timeout_ms)
{
    struct pollfd p[2];
    int n = 0, mq = -1;
    int sfd = a->source_ended ? -1 : agent_source_fd(a->src);
    if (sfd >= 0) {
        p[n++] = (struct pollfd){.fd = sfd, .events = POLLIN};
    }
    int mfd = nw_mqtt_fd(a->mqtt);
    if (mfd >= 0) {
        mq = n;
        p[n++] = (struct pollfd){.fd = mfd,
                                 .events = POLLIN | (nw_mqtt_want_write(a->mqtt) ? POLLOUT : 0)};
    }
    int t = nw_mqtt_timeout_ms(a->mqtt);
    if (timeout_ms < t) {
        t = timeout_ms;
    }
    int r = poll(p, (nfds_t)n, t);
    bool rd = r > 0 && mq >= 0 && (p[mq].revents & (POLLIN | POLLERR | POLLHUP));
    bool wr = r > 0 && mq >= 0 && (p[mq].revents & POLLOUT);
    nw_mqtt_step(a->mqtt, rd, wr);
}

static void housekeeping(struct agent *a)
{
    struct nw_error err = {0};
    int64_t now = nw_clock_mono_ms();
    struct nw_window w;
    /* A replay's samples are in the past: only its own next sample (or its
     * end) may close a window, or a replay would split windows at random. */
    if (agent_source_is_live(a->src) &&
        agent_windower_tick(a->win, nw_clock_realtime_ms(), 500, &w)) {
        enqueue_window(a, &w);
    }
    if (nw_dq_tick(a->dq, &err) != NW_OK) {
        nw_logonce_hit(a->bad_input, 3, "queue: %s", err.msg);
    }
    agent_state_tick(a->state, now, 60000, NULL);
    nw_logonce_flush(a->bad_input, false);
    if (nw_mqtt_connected(a->mqtt) && (a->status_due || now >= a->next_heartbeat)) {
        publish_status(a, NW_DEVICE_ONLINE);
    }
    agent_uplink_pump(a->up, now);
}

/* A finished replay ends the agent once the collector has stored it all. */
static bool replay_done(struct agent *a)
{
    struct nw_dq_stats st;
    if (!a->source_ended) {
        return false;
    }
    nw_dq_stats(a->dq, &st);
    return st.unacked[NW_DQ_TYPE_WINDOW] + st.unacked[NW_DQ_TYPE_EVENT] == 0;
}

static void shut_down(struct agent *a)
{
    struct nw_window out[AGENT_WINDOWER_MAX_OUT];
    take_windows(a, out, agent_windower_flush(a->win, out));
    if (nw_mqtt_connected(a->mqtt)) {
        publish_status(a, NW_DEVICE_OFFLINE);
        int64_t until = nw_clock_mono_ms() + 2000;
        while (nw_mqtt_inflight(a->mqtt) > 0 && nw_clock_mono_ms() < until) {
            nw_mqtt_poll(a->mqtt, 50);
        }
    }
    nw_mqtt_stop(a->mqtt);
    struct nw_dq_stats st;
    nw_dq_stats(a->dq, &st);
    nw_log(NW_LOG_NOTICE, "agent",
           "stopping: %" PRIu64 " windows and %" PRIu64 " events made, %" PRIu64
           " refused, %" PRIu64 " records still queued",
           a->windows, a->events, a->rejected,
           st.unacked[NW_DQ_TYPE_WINDOW] + st.unacked[NW_DQ_TYPE_EVENT]);
}

int main(int argc, char **argv)
{
    static struct agent a;
    int rc = parse_args(argc, argv, &a.cfg);
    if (rc >= 0) {
        return rc;
    }
    nw_log_init("needlewatch-agent", (enum nw_log_level)a.cfg.log_level, NW_LOG_TO_STDERR);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    rc = setup(&a);
    if (rc == 0) {
        nw_log(NW_LOG_NOTICE, "agent", "device %s, source %s, broker %s, window %" PRId64 " ms",
               a.cfg.device, a.cfg.source, a.cfg.broker, a.cfg.window_ms);
        while (!stop_signal && !replay_done(&a)) {
            wait_io(&a, a.source_ended || agent_source_fd(a.src) >= 0 ? 100 : 20);
            if (!a.source_ended) {
                read_source(&a);
            }
            housekeeping(&a);
        }
        shut_down(&a);
    }
    teardown(&a);
    return rc;
}

/*
 * sim_main.c - needlewatch-sim: many simulated needle machines in one
 * process, each with its own MQTT 5 connection, for demos, load and tests.
 *
 * The device logic (models, windows, seqs, faults, record stores, virtual
 * clock) is fleet.c; this file is the shell: flags, the connections and one
 * poll loop over all their sockets. With --queue-dir each device keeps its
 * records in the agent's disk queue (fleet.h, "Restarts"), so a fleet
 * killed with SIGKILL and started again with the same flags goes on where
 * it was: same epochs, the next seqs, unacknowledged records first.
 *
 * The loop has two beats. Every tick (a quarter of a window's wall time,
 * 10-100 ms) each device runs its model up to the virtual now, applies its
 * offline fault, heartbeats, re-sends on ack timeout and publishes what its
 * in-flight window allows; connections are stepped for keepalive and
 * reconnects. Between ticks, poll() waits on every socket and steps only
 * the ready ones (acks come in, which frees in-flight slots, which are
 * refilled at once). New connections are started at most --connect-rate per
 * second, so 10 000 devices do not SYN-flood the broker; reconnects after a
 * loss follow nw_mqtt's jittered backoff.
 *
 * Phases: RUN for --duration (wall), then DRAIN: models stop, open windows
 * are flushed, offline devices come back, and the loop waits up to
 * --drain-timeout until every record is acknowledged (or, when what is left
 * waits behind a seq hole that only a collector honouring queue_floor
 * passes, until acks have been quiet for 3 s), then FINISH: each device
 * publishes its offline status, disconnects cleanly, and a summary is
 * printed. The exit status is 0 only when nothing is left unacknowledged.
 */
#include "fleet.h"
#include "windower.h"

#include <needlewatch/clock.h>
#include <needlewatch/codec.h>
#include <needlewatch/log.h>
#include <needlewatch/mqtt.h>
#include <needlewatch/topic.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define PROG "needlewatch-sim"
#define STATUS_MAX 512
#define ITEMS_PER_TICK 4096 /* model items per device per tick */
#define PUBLISH_PER_STEP 64 /* messages per device per pump */
#define FINISH_WAIT_MS 3000 /* for the offline statuses' PUBACKs */
#define STALL_GRACE_MS 3000 /* acks quiet this long: a hole is not being passed */
#define FD_RESERVE 64       /* descriptors besides the devices' own */
#define FDS_PER_DEVICE 3    /* the MQTT socket + libmosquitto's socketpair */
#define EXIT_UNACKED 3      /* records left unacknowledged after the drain */

enum dev_state { DEV_IDLE, DEV_ON, DEV_OFFLINE };
enum phase { PH_RUN, PH_DRAIN, PH_FINISH };

struct simdev {
    struct fleet_device *dev;
    struct nw_mqtt *mq;
    enum dev_state state;
    bool status_due;
    bool up; /* between on_connect and on_disconnect */
    bool connected_once;
    int64_t next_heartbeat;
    int64_t next_step;
};

struct opts {
    struct fleet_config fleet;
    char broker[256];
    char prefix[NW_TOPIC_PREFIX_MAX + 1];
    int64_t duration_ms, drain_ms, ack_timeout_ms, heartbeat_ms, progress_ms;
    double rate;
    bool rate_set;
    bool quiet;
    uint64_t max_inflight, batch_max, connect_rate;
    unsigned shard, nshards; /* this process runs devices n with (n - 1) % nshards == shard */
    const char *inventory_out;
    const char *status_file;
    const char *faults[FLEET_FAULTS_MAX];
    size_t nfaults;
    enum nw_log_level log_level;
};

struct totals {
    uint64_t windows_made, events_made, windows_sent, events_sent, messages;
    uint64_t windows_acked, events_acked, windows_dropped, events_dropped, skipped;
    uint64_t queued, resends, acks_ignored, rejected;
    unsigned connected;
};

static struct sim {
    struct opts o;
    struct fleet_clock clock;
    struct nw_codec *codec;
    struct fleet_batcher *batcher;
    struct simdev *devs;
    unsigned ndev; /* devices of this process (its shard) */
    struct pollfd *pfd;
    unsigned *pmap;
    unsigned started;
    double tokens;
    int64_t last_token_ms;
    enum phase phase;
    int64_t tick_ms, next_tick, next_progress, drain_until, next_drain_check;
    int64_t run_started_mono;
    uint64_t connects, losses, connect_failures, refused, publish_errors;
    uint64_t losses_since;
    char last_loss[160];
    struct totals prev;
    int64_t prev_ms;
    uint64_t final_unacked, final_stalled;
    uint64_t final_class[FLEET_MODELS]; /* unacked per device model */
    uint64_t run_messages;              /* sent by the end of the run phase */
    int64_t last_ack_mono;              /* when an ack last arrived */
    double run_seconds;
} g;

static volatile sig_atomic_t stop_requests;

static void on_signal(int sig)
{
    (void)sig;
    stop_requests++;
}

/* ---- usage --------------------------------------------------------------- */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: " PROG " [--broker URL] [--devices N] [--clinics M] [--window-ms MS]\n"
            "                       [--duration S] [--seed K] [--rate R] [--fault SPEC]...\n"
            "\n"
            "Runs N simulated SMP needle machines in one process. Each has its own machine\n"
            "model, windows, gap-free seqs and MQTT 5 connection (client id = device id),\n"
            "publishes telemetry, events and a retained status (last will: offline), keeps\n"
            "every record in a bounded resend buffer (memory, or with --queue-dir the\n"
            "agent's disk queue) until the collector's ack covers it, and re-sends on\n"
            "reconnect and ack timeout.\n"
            "\n"
            "  -b, --broker URL        mqtt://HOST[:PORT] (default mqtt://127.0.0.1:1883)\n"
            "  -n, --devices N         devices, 1-100000 (default 10)\n"
            "  -m, --clinics M         clinics, 1-10000 (default 3)\n"
            "  -w, --window-ms MS      window length, 100-60000 (default 1000)\n"
            "  -d, --duration S        wall run time: seconds or 90s, 5m, 1h (default 60)\n"
            "  -s, --seed K            seed of everything (default 1)\n"
            "  -r, --rate R            windows per wall second per device (default: real\n"
            "                          time, 1000/window-ms). Virtual time runs\n"
            "                          R*window-ms/1000 times faster than the wall clock\n"
            "                          and starts in the past so that it reaches now at the\n"
            "                          end of --duration: nothing is stamped in the future.\n"
            "  -f, --fault RULE@DEVICE[:START[:LEN]]\n"
            "                          repeatable; START and LEN are virtual time from the\n"
            "                          start of the run (default 60s and 30s). Each fault's\n"
            "                          condition holds for [START, START+LEN), then clears:\n"
            "                            needle_rate_out_of_spec  152 Hz, needle on\n"
            "                            needle_rate_unstable     108/132 Hz sample to sample:\n"
            "                                   max-min 24 Hz per window (>= 200 ms), needle on\n"
            "                            needle_depth_out_of_spec 0.62 mm, needle on\n"
            "                            pigment_overuse  5x pigment per needle cycle\n"
            "                            cartridge_worn   needle on without pauses: +120\n"
            "                                   cycles per second of LEN (10m: 72 000) on the\n"
            "                                   cartridge in use, removed at START+LEN. A normal\n"
            "                                   cartridge makes ~90 cycles per second of its\n"
            "                                   session (needle running ~75 %%: bursts 20-120 s,\n"
            "                                   pauses 5-40 s), at most ~116/s over minutes;\n"
            "                                   sessions last 30 min-4 h (160 k-1.3 M cycles)\n"
            "                            cartridge_reuse  at START a new session re-inserts\n"
            "                                   the previous cartridge; it ends at START+LEN\n"
            "                          (these keep a session open over [START, START+LEN),\n"
            "                          opening one at START between sessions)\n"
            "                            device_offline  drop the connection (the broker\n"
            "                                   sends the will), queue, reconnect at START+LEN\n"
            "                            data_gap        hold back the window at START: kept\n"
            "                                   in the resend buffer (queue_floor stays at or\n"
            "                                   below it: never declared lost) but sent only\n"
            "                                   at START+LEN (or the end of the run), with its\n"
            "                                   own seq and time: a late-filled gap. Without\n"
            "                                   LEN: skip one seq for good (a hole the floor\n"
            "                                   declares lost at once)\n"
            "                            unknown_device  leave it out of the inventory\n"
            "                            maintenance_due service hours cross the 500 h\n"
            "                                   interval at START; a maintenance event\n"
            "                                   (service, resets_service) at START+LEN.\n"
            "                                   Status running_s stays a lifetime count: hours\n"
            "                                   since service = the windows' running_ms after\n"
            "                                   the last resets_service maintenance\n"
            "                          device_offline and data_gap devices get --buffer plus\n"
            "                          256 bytes per window of LEN (at most 64 MiB)\n"
            "      --prefix P          topic prefix (default " NW_TOPIC_PREFIX_DEFAULT ")\n"
            "      --id-prefix P       device ids P0001, P0002... (default SIM-)\n"
            "      --inventory-out F   write the inventory CSV (device,clinic,model)\n"
            "      --buffer BYTES      resend buffer per device: 16K, 1M... (default 16K);\n"
            "                          when full the oldest records are dropped, counted\n"
            "      --queue-dir DIR     keep each device's records in the agent's disk queue\n"
            "                          in DIR/<device id>/queue/ instead of memory (DIR is\n"
            "                          created if missing), bounded by --buffer (segments\n"
            "                          of max(4K, buffer/4)); overflow drops the oldest\n"
            "                          segment, counted. A run killed (even with SIGKILL)\n"
            "                          and started again with the same DIR and --seed\n"
            "                          resumes: same epochs (DIR/<id>/sim.state), seqs\n"
            "                          after what the queue holds, unacked records first,\n"
            "                          time after the last window. Costs %d more file\n"
            "                          descriptors per device (directory lock, segment\n"
            "                          writer and reader) and about 130 KiB of memory\n"
            "                          per device (the queue's read buffer)\n"
            "      --queue-sync P      fsync of the disk queue: never (default: a SIGKILL\n"
            "                          loses nothing, a power loss may), interval, always\n"
            "      --ack-timeout D     re-send when acks stall this long (default 30s)\n"
            "      --max-inflight N    QoS 1 messages awaiting PUBACK per device (default 16)\n"
            "      --batch-max N       windows per message when catching up (default 256)\n"
            "      --heartbeat D       status heartbeat, wall time (default 30s)\n"
            "      --drain-timeout D   wait for acks after the run, at most (default 10s);\n"
            "                          --drain D is the same\n"
            "      --connect-rate N    new connections per second, at most (default 1000)\n"
            "      --progress D        progress line period on stderr, 0 = off (default 1s)\n"
            "      --quiet             no progress lines (same as --progress 0)\n"
            "      --status FILE       also keep key=value totals in FILE (replaced)\n"
            "      --log-level L       debug, info, notice, warn, error (default info)\n"
            "      --shard I/K         run only devices n with (n-1) mod K = I (0 <= I < K):\n"
            "                          K processes with the same flags but --shard share\n"
            "                          one fleet (ids, clinics, inventory, faults), each\n"
            "                          with its own descriptors and CPU\n"
            "  -h, --help              this text\n"
            "  -V, --version           version\n"
            "\n"
            "Exit status:\n"
            "  0  every record was acknowledged by the end of the drain\n"
            "  1  runtime failure: out of memory, a --queue-dir that cannot be opened or\n"
            "     is in use by another process\n"
            "  2  bad usage, or more devices than the file descriptor limit allows (%d\n"
            "     per device, %d with --queue-dir; raise ulimit -n or use --shard)\n"
            "  3  records stayed unacknowledged after the drain: the summary line counts\n"
            "     them per device model (class) in unacked_by_class=, and how many of\n"
            "     them wait behind a seq hole (behind_gap=; a collector that honours\n"
            "     queue_floor acknowledges past it, one that does not never will)\n",
            FLEET_DISK_FDS_PER_DEVICE, FDS_PER_DEVICE, FDS_PER_DEVICE + FLEET_DISK_FDS_PER_DEVICE);
}

static int bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bad(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, PROG ": ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    return 2;
}

static int parse_u64(const char *flag, const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno != 0 || v < min || v > max) {
        return bad("%s \"%s\": expected an integer in %" PRIu64 "-%" PRIu64, flag, s, min, max);
    }
    *out = v;
    return 0;
}

/* Seconds ("90", "1.5") or a duration ("90s", "2m", "500ms"). */
static int parse_dur(const char *flag, const char *s, int64_t min_ms, int64_t *out_ms)
{
    struct nw_error err = {0};
    int64_t ms;
    char *end;
    double v = strtod(s, &end);
    if (s[0] >= '0' && s[0] <= '9' && *end == '\0' && isfinite(v) && v <= 1e9) {
        ms = llround(v * 1000.0);
    } else if (nw_clock_parse_duration_ms(s, &ms, &err) != NW_OK) {
        return bad("%s \"%s\": expected seconds or a duration like 90s, 5m, 1h", flag, s);
    }
    if (ms < min_ms) {
        return bad("%s \"%s\": must be at least %" PRId64 " ms", flag, s, min_ms);
    }
    *out_ms = ms;
    return 0;
}

static int parse_size(const char *flag, const char *s, size_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    unsigned long long mult = 1;
    if (strcmp(end, "") == 0 || strcmp(end, "B") == 0) {
        mult = 1;
    } else if (strcmp(end, "K") == 0 || strcmp(end, "KiB") == 0) {
        mult = 1ULL << 10;
    } else if (strcmp(end, "M") == 0 || strcmp(end, "MiB") == 0) {
        mult = 1ULL << 20;
    } else {
        mult = 0;
    }
    if (s[0] < '0' || s[0] > '9' || errno != 0 || mult == 0 || v > (1ULL << 40) / mult) {
        return bad("%s \"%s\": expected bytes, e.g. 16384, 16K, 1M", flag, s);
    }
    *out = (size_t)(v * mult);
    return 0;
}

enum {
    OPT_PREFIX = 256,
    OPT_ID_PREFIX,
    OPT_INVENTORY,
    OPT_BUFFER,
    OPT_ACK_TIMEOUT,
    OPT_MAX_INFLIGHT,
    OPT_BATCH_MAX,
    OPT_HEARTBEAT,
    OPT_DRAIN,
    OPT_QUEUE_DIR,
    OPT_QUEUE_SYNC,
    OPT_QUIET,
    OPT_CONNECT_RATE,
    OPT_PROGRESS,
    OPT_STATUS,
    OPT_LOG_LEVEL,
    OPT_SHARD,
};

static int parse_one(struct opts *o, int c, const char *arg)
{
    uint64_t v = 0;
    struct nw_error err = {0};
    int rc = 0;
    switch (c) {
    case 'b':
        if (snprintf(o->broker, sizeof(o->broker), "%s", arg) >= (int)sizeof(o->broker)) {
            return bad("--broker: longer than %zu bytes", sizeof(o->broker) - 1);
        }
        return 0;
    case 'n':
        rc = parse_u64("--devices", arg, 1, FLEET_DEVICES_MAX, &v);
        o->fleet.ndevices = (unsigned)v;
        return rc;
    case 'm':
        rc = parse_u64("--clinics", arg, 1, FLEET_CLINICS_MAX, &v);
        o->fleet.nclinics = (unsigned)v;
        return rc;
    case 'w':
        rc = parse_u64("--window-ms", arg, AGENT_WINDOW_MS_MIN, AGENT_WINDOW_MS_MAX, &v);
        o->fleet.window_ms = (uint32_t)v;
        return rc;
    case 'd':
        return parse_dur("--duration", arg, 1000, &o->duration_ms);
    case 's':
        return parse_u64("--seed", arg, 0, UINT64_MAX, &o->fleet.seed);
    case 'r': {
        char *end;
        o->rate = strtod(arg, &end);
        if (*end != '\0' || !isfinite(o->rate) || o->rate <= 0) {
            return bad("--rate \"%s\": expected a positive number of windows per second", arg);
        }
        o->rate_set = true;
        return 0;
    }
    case 'f':
        if (o->nfaults == FLEET_FAULTS_MAX) {
            return bad("--fault %s: more than %d faults", arg, FLEET_FAULTS_MAX);
        }
        o->faults[o->nfaults++] = arg;
        return 0;
    case OPT_PREFIX:
        if (nw_topic_check_prefix(arg, &err) != NW_OK) {
            return bad("--prefix: %s", err.msg);
        }
        snprintf(o->prefix, sizeof(o->prefix), "%s", arg);
        return 0;
    case OPT_ID_PREFIX:
        if (snprintf(o->fleet.id_prefix, sizeof(o->fleet.id_prefix), "%s", arg) >=
            (int)sizeof(o->fleet.id_prefix)) {
            return bad("--id-prefix \"%s\": longer than %d characters", arg, FLEET_ID_PREFIX_MAX);
        }
        return 0;
    case OPT_INVENTORY:
        o->inventory_out = arg;
        return 0;
    case OPT_BUFFER:
        return parse_size("--buffer", arg, &o->fleet.buffer_bytes);
    case OPT_ACK_TIMEOUT:
        return parse_dur("--ack-timeout", arg, 100, &o->ack_timeout_ms);
    case OPT_MAX_INFLIGHT:
        return parse_u64("--max-inflight", arg, 1, 1000, &o->max_inflight);
    case OPT_BATCH_MAX:
        return parse_u64("--batch-max", arg, 1, 4096, &o->batch_max);
    case OPT_HEARTBEAT:
        return parse_dur("--heartbeat", arg, 1000, &o->heartbeat_ms);
    case OPT_DRAIN:
        return parse_dur("--drain-timeout", arg, 0, &o->drain_ms);
    case OPT_QUEUE_DIR: {
        size_t len = strlen(arg);
        if (len == 0 || len >= FLEET_QUEUE_DIR_MAX) {
            return bad("--queue-dir: empty or longer than %d bytes", FLEET_QUEUE_DIR_MAX - 1);
        }
        memcpy(o->fleet.queue_dir, arg, len + 1);
        return 0;
    }
    case OPT_QUEUE_SYNC:
        if (strcmp(arg, "never") == 0) {
            o->fleet.queue_sync = NW_DQ_SYNC_NEVER;
        } else if (strcmp(arg, "interval") == 0) {
            o->fleet.queue_sync = NW_DQ_SYNC_INTERVAL;
        } else if (strcmp(arg, "always") == 0) {
            o->fleet.queue_sync = NW_DQ_SYNC_ALWAYS;
        } else {
            return bad("--queue-sync \"%s\": expected never, interval or always", arg);
        }
        return 0;
    case OPT_QUIET:
        o->quiet = true;
        return 0;
    case OPT_CONNECT_RATE:
        return parse_u64("--connect-rate", arg, 1, 1000000, &o->connect_rate);
    case OPT_PROGRESS:
        return parse_dur("--progress", arg, 0, &o->progress_ms);
    case OPT_STATUS:
        o->status_file = arg;
        return 0;
    case OPT_SHARD: {
        char *end;
        unsigned long i = strtoul(arg, &end, 10), k = 0;
        if (end != arg && *end == '/') {
            char *end2;
            k = strtoul(end + 1, &end2, 10);
            end = end2 > end + 1 ? end2 : end;
        }
        if (arg[0] < '0' || arg[0] > '9' || *end != '\0' || k < 1 || k > 64 || i >= k) {
            return bad("--shard \"%s\": expected I/K with 0 <= I < K <= 64", arg);
        }
        o->shard = (unsigned)i;
        o->nshards = (unsigned)k;
        return 0;
    }
    case OPT_LOG_LEVEL:
        if (nw_log_level_parse(arg, &o->log_level, &err) != NW_OK) {
            return bad("--log-level: %s", err.msg);
        }
        return 0;
    default:
        return bad("internal: option %d", c);
    }
}

/* Returns -1 to go on, else the exit status. */
static int parse_args(int argc, char **argv, struct opts *o)
{
    static const struct option longopts[] = {
        {"broker", required_argument, NULL, 'b'},
        {"devices", required_argument, NULL, 'n'},
        {"clinics", required_argument, NULL, 'm'},
        {"window-ms", required_argument, NULL, 'w'},
        {"duration", required_argument, NULL, 'd'},
        {"seed", required_argument, NULL, 's'},
        {"rate", required_argument, NULL, 'r'},
        {"fault", required_argument, NULL, 'f'},
        {"prefix", required_argument, NULL, OPT_PREFIX},
        {"id-prefix", required_argument, NULL, OPT_ID_PREFIX},
        {"inventory-out", required_argument, NULL, OPT_INVENTORY},
        {"buffer", required_argument, NULL, OPT_BUFFER},
        {"ack-timeout", required_argument, NULL, OPT_ACK_TIMEOUT},
        {"max-inflight", required_argument, NULL, OPT_MAX_INFLIGHT},
        {"batch-max", required_argument, NULL, OPT_BATCH_MAX},
        {"heartbeat", required_argument, NULL, OPT_HEARTBEAT},
        {"drain-timeout", required_argument, NULL, OPT_DRAIN},
        {"drain", required_argument, NULL, OPT_DRAIN},
        {"queue-dir", required_argument, NULL, OPT_QUEUE_DIR},
        {"queue-sync", required_argument, NULL, OPT_QUEUE_SYNC},
        {"quiet", no_argument, NULL, OPT_QUIET},
        {"connect-rate", required_argument, NULL, OPT_CONNECT_RATE},
        {"progress", required_argument, NULL, OPT_PROGRESS},
        {"status", required_argument, NULL, OPT_STATUS},
        {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
        {"shard", required_argument, NULL, OPT_SHARD},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0}};
    fleet_config_init(&o->fleet);
    snprintf(o->broker, sizeof(o->broker), "mqtt://127.0.0.1:1883");
    snprintf(o->prefix, sizeof(o->prefix), "%s", NW_TOPIC_PREFIX_DEFAULT);
    o->duration_ms = 60000;
    o->drain_ms = 10000;
    o->ack_timeout_ms = 30000;
    o->heartbeat_ms = 30000;
    o->progress_ms = 1000;
    o->max_inflight = 16;
    o->batch_max = 256;
    o->connect_rate = 1000;
    o->log_level = NW_LOG_INFO;
    o->nshards = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":b:n:m:w:d:s:r:f:hV", longopts, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return 0;
        }
        if (c == 'V') {
            printf(PROG " %s\n", NW_VERSION);
            return 0;
        }
        if (c == '?' || c == ':') {
            const char *what = argv[optind - 1];
            return bad("%s %s (try --help)", c == ':' ? "missing value for" : "unknown option",
                       what);
        }
        int rc = parse_one(o, c, optarg);
        if (rc != 0) {
            return rc;
        }
    }
    if (optind < argc) {
        return bad("unexpected argument \"%s\" (try --help)", argv[optind]);
    }
    struct nw_error err = {0};
    char host[256];
    int port;
    bool tls;
    if (nw_mqtt_parse_url(o->broker, host, sizeof(host), &port, &tls, &err) != NW_OK) {
        return bad("--broker: %s", err.msg);
    }
    if (tls) {
        return bad("--broker %s: the simulator speaks mqtt:// only", o->broker);
    }
    if (fleet_config_check(&o->fleet, &err) != NW_OK) {
        return bad("%s", err.msg);
    }
    for (size_t i = 0; i < o->nfaults; i++) {
        if (fleet_config_add_fault(&o->fleet, o->faults[i], &err) != NW_OK) {
            return bad("%s", err.msg);
        }
    }
    if (!o->rate_set) {
        o->rate = 1000.0 / o->fleet.window_ms;
    }
    /* The clock is set up for real later; this checks --rate and --duration. */
    struct fleet_clock probe;
    if (fleet_clock_init(&probe, nw_clock_realtime_ms(), 0, o->duration_ms, o->rate,
                         o->fleet.window_ms, &err) != NW_OK) {
        return bad("%s", err.msg);
    }
    return -1;
}

/* ---- status and topics --------------------------------------------------- */

static void topic_of(const struct simdev *sd, enum nw_topic_kind kind, char buf[NW_TOPIC_MAX + 1])
{
    nw_topic_build(g.o.prefix, fleet_device_name(sd->dev), kind, buf, NW_TOPIC_MAX + 1, NULL);
}

static int64_t virtual_now(void)
{
    return fleet_clock_virtual(&g.clock, nw_clock_mono_ms());
}

static size_t encode_status(const struct simdev *sd, enum nw_device_state state, uint8_t *buf,
                            size_t cap)
{
    struct nw_status st;
    size_t len = 0;
    fleet_device_status(sd->dev, state, virtual_now(), (uint32_t)(g.o.heartbeat_ms / 1000), &st);
    if (nw_codec_encode_status(g.codec, &st, buf, cap, &len, NULL) != NW_OK) {
        return 0;
    }
    return len;
}

static void set_will(struct simdev *sd)
{
    uint8_t buf[STATUS_MAX];
    char topic[NW_TOPIC_MAX + 1];
    size_t len = encode_status(sd, NW_DEVICE_OFFLINE, buf, sizeof(buf));
    topic_of(sd, NW_TOPIC_STATUS, topic);
    if (len) {
        nw_mqtt_set_will(sd->mq, topic, buf, len, true, NULL);
    }
}

static bool publish_status(struct simdev *sd, enum nw_device_state state)
{
    uint8_t buf[STATUS_MAX];
    char topic[NW_TOPIC_MAX + 1];
    size_t len = encode_status(sd, state, buf, sizeof(buf));
    topic_of(sd, NW_TOPIC_STATUS, topic);
    return len && nw_mqtt_publish(sd->mq, topic, buf, len, 1, true, NULL, NULL) == NW_OK;
}

/* ---- MQTT callbacks ------------------------------------------------------ */

static void cb_connect(void *user)
{
    struct simdev *sd = user;
    char topic[NW_TOPIC_MAX + 1];
    struct nw_error err = {0};
    g.connects++;
    fleet_device_on_connect(sd->dev, nw_clock_mono_ms());
    topic_of(sd, NW_TOPIC_ACK, topic);
    if (nw_mqtt_subscribe(sd->mq, topic, 1, &err) != NW_OK) {
        nw_log(NW_LOG_WARN, "mqtt", "%s: %s", fleet_device_name(sd->dev), err.msg);
    }
    sd->status_due = true;
    sd->up = true;
    nw_log(NW_LOG_DEBUG, "mqtt", "%s: connected%s", fleet_device_name(sd->dev),
           sd->connected_once ? " again" : "");
    sd->connected_once = true;
}

static void cb_disconnect(void *user, const char *reason)
{
    struct simdev *sd = user;
    if (!sd->up) {
        g.connect_failures++; /* an attempt that failed: not a loss */
        nw_log(NW_LOG_DEBUG, "mqtt", "%s: %s", fleet_device_name(sd->dev), reason);
        set_will(sd);
        return;
    }
    sd->up = false;
    g.losses++;
    if (g.losses_since++ == 0) {
        snprintf(g.last_loss, sizeof(g.last_loss), "%s: %s", fleet_device_name(sd->dev), reason);
    }
    nw_log(NW_LOG_DEBUG, "mqtt", "%s: %s", fleet_device_name(sd->dev), reason);
    set_will(sd); /* the next connect carries fresh counters in its will */
}

static void cb_message(void *user, const char *topic, const void *payload, size_t len)
{
    struct simdev *sd = user;
    char dev[NW_DEVICE_ID_MAX + 1];
    enum nw_topic_kind kind;
    struct nw_ack ack;
    struct nw_error err = {0};
    if (nw_topic_parse(g.o.prefix, topic, dev, &kind, NULL, NULL) != NW_OK ||
        kind != NW_TOPIC_ACK || strcmp(dev, fleet_device_name(sd->dev)) != 0) {
        return;
    }
    if (nw_codec_decode_ack(g.codec, payload, len, &ack, NULL, &err) != NW_OK ||
        fleet_device_on_ack(sd->dev, &ack, nw_clock_mono_ms(), &err) != NW_OK) {
        nw_log(NW_LOG_DEBUG, "ack", "%s: %s", dev, err.msg);
        return;
    }
    g.last_ack_mono = nw_clock_mono_ms();
}

static void cb_publish(void *user, int mid, int reason_code)
{
    struct simdev *sd = user;
    (void)mid;
    if (reason_code >= 0x80 && g.refused++ == 0) {
        /* The records stay in the ring and go again after the ack timeout. */
        nw_log(NW_LOG_ERROR, "mqtt", "%s: broker refused a publish: reason 0x%02x",
               fleet_device_name(sd->dev), reason_code);
    }
}

/* ---- connections --------------------------------------------------------- */

static bool connect_device(struct simdev *sd, int64_t now)
{
    struct nw_mqtt_options mo = {.url = g.o.broker,
                                 .client_id = fleet_device_name(sd->dev),
                                 .max_inflight = (int)g.o.max_inflight,
                                 .backoff_min_ms = 500,
                                 .backoff_max_ms = 10000};
    struct nw_mqtt_callbacks cb = {.user = sd,
                                   .on_connect = cb_connect,
                                   .on_disconnect = cb_disconnect,
                                   .on_message = cb_message,
                                   .on_publish = cb_publish};
    struct nw_error err = {0};
    if (nw_mqtt_new(&mo, &cb, &sd->mq, &err) != NW_OK) {
        nw_log(NW_LOG_ERROR, "mqtt", "%s: %s", fleet_device_name(sd->dev), err.msg);
        return false;
    }
    set_will(sd);
    nw_mqtt_start(sd->mq);
    sd->state = DEV_ON;
    sd->next_step = now;
    sd->next_heartbeat = now + g.o.heartbeat_ms;
    return true;
}

/*
 * device_offline: the connection drops without a DISCONNECT packet, so the
 * broker publishes the will (the offline status). nw_mqtt offers only a
 * clean disconnect (no will), so the socket is shut down under it first.
 */
static void go_offline(struct simdev *sd, int64_t virt)
{
    if (sd->mq) {
        int fd = nw_mqtt_fd(sd->mq);
        if (fd >= 0) {
            shutdown(fd, SHUT_RDWR);
        }
        nw_mqtt_destroy(&sd->mq);
    }
    sd->up = false;
    sd->state = DEV_OFFLINE;
    nw_log(NW_LOG_NOTICE, "fault",
           "%s: device_offline at virtual +%" PRId64 " s: connection "
           "dropped (the broker sends its will); queueing",
           fleet_device_name(sd->dev), (virt - g.clock.virt0_ms) / 1000);
}

static void step(struct simdev *sd, bool rd, bool wr, int64_t now)
{
    nw_mqtt_step(sd->mq, rd, wr);
    sd->next_step = now + nw_mqtt_timeout_ms(sd->mq);
}

static void pump(struct simdev *sd)
{
    if (!sd->mq || !nw_mqtt_connected(sd->mq)) {
        return;
    }
    if (sd->status_due && nw_mqtt_can_publish(sd->mq)) {
        if (publish_status(sd, NW_DEVICE_ONLINE)) {
            sd->status_due = false;
            sd->next_heartbeat = nw_clock_mono_ms() + g.o.heartbeat_ms;
        }
    }
    for (int i = 0; i < PUBLISH_PER_STEP && nw_mqtt_can_publish(sd->mq); i++) {
        struct fleet_message m;
        struct nw_error err = {0};
        enum nw_err rc = fleet_device_next_message(sd->dev, g.batcher, &m, &err);
        if (rc == NW_ERR_NOT_FOUND) {
            return;
        }
        char topic[NW_TOPIC_MAX + 1];
        topic_of(sd, m.kind, topic);
        if (rc != NW_OK ||
            nw_mqtt_publish(sd->mq, topic, m.payload, m.len, 1, false, NULL, &err) != NW_OK) {
            if (g.publish_errors++ < 10) {
                nw_log(NW_LOG_WARN, "mqtt", "%s: %s; will re-send", fleet_device_name(sd->dev),
                       err.msg);
            }
            fleet_device_rewind(sd->dev);
            return;
        }
        fleet_device_sent(sd->dev, &m);
    }
}

/* ---- the tick ------------------------------------------------------------ */

static void start_connections(int64_t now, int64_t virt)
{
    double burst = (double)g.o.connect_rate / 10.0 + 1.0;
    g.tokens += (double)(now - g.last_token_ms) * (double)g.o.connect_rate / 1000.0;
    g.tokens = g.tokens > burst ? burst : g.tokens;
    g.last_token_ms = now;
    while (g.started < g.ndev && g.tokens >= 1.0) {
        struct simdev *sd = &g.devs[g.started++];
        if (g.phase == PH_RUN && fleet_device_offline_at(sd->dev, virt)) {
            sd->state = DEV_OFFLINE;
            continue;
        }
        g.tokens -= 1.0;
        connect_device(sd, now);
    }
}

static void tick(int64_t now)
{
    int64_t virt = fleet_clock_virtual(&g.clock, now);
    int64_t wall = nw_clock_realtime_ms();
    start_connections(now, virt);
    for (unsigned i = 0; i < g.ndev; i++) {
        struct simdev *sd = &g.devs[i];
        if (g.phase == PH_RUN) {
            fleet_device_advance(sd->dev, virt, wall, g.codec, ITEMS_PER_TICK);
        }
        fleet_device_tick(sd->dev);
        bool off = g.phase == PH_RUN && fleet_device_offline_at(sd->dev, virt);
        if (off && sd->state == DEV_ON) {
            go_offline(sd, virt);
        } else if (!off && sd->state == DEV_OFFLINE) {
            nw_log(NW_LOG_NOTICE, "fault", "%s: back online at virtual +%" PRId64 " s",
                   fleet_device_name(sd->dev), (virt - g.clock.virt0_ms) / 1000);
            connect_device(sd, now);
        }
        if (!sd->mq) {
            continue;
        }
        if (now >= sd->next_step) {
            step(sd, false, false, now);
        }
        bool up = nw_mqtt_connected(sd->mq);
        fleet_device_check_timeout(sd->dev, now, up, g.o.ack_timeout_ms);
        if (up && now >= sd->next_heartbeat) {
            sd->status_due = true;
        }
        pump(sd);
    }
}

/* ---- totals, progress, status file --------------------------------------- */

static void sum(struct totals *t)
{
    memset(t, 0, sizeof(*t));
    for (unsigned i = 0; i < g.ndev; i++) {
        struct fleet_device_stats s;
        fleet_device_get_stats(g.devs[i].dev, &s);
        t->windows_made += s.windows_made;
        t->events_made += s.events_made;
        t->windows_sent += s.windows_sent;
        t->events_sent += s.events_sent;
        t->messages += s.messages;
        t->windows_acked += s.windows_acked;
        t->events_acked += s.events_acked;
        t->windows_dropped += s.windows_dropped;
        t->events_dropped += s.events_dropped;
        t->skipped += s.windows_skipped;
        t->queued += s.queued_records;
        t->resends += s.resends;
        t->acks_ignored += s.acks_ignored;
        t->rejected += s.rejected;
        t->connected += g.devs[i].mq && nw_mqtt_connected(g.devs[i].mq);
    }
}

static const char *phase_name(void)
{
    static const char *const names[] = {"run", "drain", "finish"};
    return names[g.phase];
}

/* "DG-3:0,DG-3X:12": what stayed unacked per device model. */
static void format_classes(char *buf, size_t cap)
{
    size_t at = 0;
    buf[0] = '\0';
    for (unsigned c = 0; c < FLEET_MODELS && at < cap; c++) {
        int n = snprintf(buf + at, cap - at, "%s%s:%" PRIu64, c ? "," : "", fleet_model_name(c),
                         g.final_class[c]);
        at += n > 0 ? (size_t)n : 0;
    }
}

/* Up to five devices with records left, "SIM-0007:23 SIM-0011:2 ...". */
static void format_devices(char *buf, size_t cap)
{
    size_t at = 0;
    unsigned shown = 0;
    buf[0] = '\0';
    for (unsigned i = 0; i < g.ndev && at < cap; i++) {
        uint64_t u = 0;
        fleet_device_unacked(g.devs[i].dev, &u, NULL);
        if (u && shown == 5) {
            snprintf(buf + at, cap - at, " ...");
            break;
        }
        if (u) {
            int n = snprintf(buf + at, cap - at, "%s%s:%" PRIu64, shown++ ? " " : "",
                             fleet_device_name(g.devs[i].dev), u);
            at += n > 0 ? (size_t)n : 0;
        }
    }
}

static void write_status_file(const struct totals *t, bool final)
{
    if (!g.o.status_file) {
        return;
    }
    char tmp[4096];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", g.o.status_file) >= (int)sizeof(tmp)) {
        return;
    }
    FILE *f = fopen(tmp, "w");
    if (!f) {
        nw_log(NW_LOG_WARN, "sim", "--status %s: %s", tmp, strerror(errno));
        return;
    }
    fprintf(f,
            "phase=%s\nfinal=%d\ndevices=%u\nconnected=%u\nvirtual_ms=%" PRId64
            "\nwindows_made=%" PRIu64 "\nevents_made=%" PRIu64 "\nwindows_sent=%" PRIu64
            "\nevents_sent=%" PRIu64 "\nmessages=%" PRIu64 "\nwindows_acked=%" PRIu64
            "\nevents_acked=%" PRIu64 "\nwindows_dropped=%" PRIu64 "\nevents_dropped=%" PRIu64
            "\nwindows_skipped=%" PRIu64 "\nqueued=%" PRIu64 "\nresends=%" PRIu64
            "\nconnects=%" PRIu64 "\nconnection_losses=%" PRIu64 "\nconnect_failures=%" PRIu64
            "\nrejected=%" PRIu64 "\n",
            phase_name(), final ? 1 : 0, g.ndev, t->connected, virtual_now(), t->windows_made,
            t->events_made, t->windows_sent, t->events_sent, t->messages, t->windows_acked,
            t->events_acked, t->windows_dropped, t->events_dropped, t->skipped, t->queued,
            t->resends, g.connects, g.losses, g.connect_failures, t->rejected);
    if (final) {
        char classes[128];
        format_classes(classes, sizeof(classes));
        fprintf(f, "unacked=%" PRIu64 "\nunacked_by_class=%s\nbehind_gap=%" PRIu64 "\n",
                g.final_unacked, classes, g.final_stalled);
    }
    bool ok = fclose(f) == 0;
    if (!ok || rename(tmp, g.o.status_file) != 0) {
        nw_log(NW_LOG_WARN, "sim", "--status %s: cannot write", g.o.status_file);
    }
}

static double per_s(uint64_t now, uint64_t before, int64_t ms)
{
    return ms > 0 ? (double)(now - before) * 1000.0 / (double)ms : 0.0;
}

/* The progress line (unless --quiet), the loss warning and the status file. */
static void progress(int64_t now)
{
    struct totals t;
    sum(&t);
    int64_t ms = now - g.prev_ms;
    char vt[NW_CLOCK_RFC3339_SIZE];
    nw_clock_format_rfc3339(virtual_now(), vt);
    nw_log(g.o.progress_ms ? NW_LOG_INFO : NW_LOG_DEBUG, "progress",
           "%s: %u/%u connected, windows made %.0f/s sent %.0f/s acked %.0f/s, %.0f msgs/s, "
           "queued %" PRIu64 ", dropped %" PRIu64 ", virtual %s",
           phase_name(), t.connected, g.ndev, per_s(t.windows_made, g.prev.windows_made, ms),
           per_s(t.windows_sent, g.prev.windows_sent, ms),
           per_s(t.windows_acked, g.prev.windows_acked, ms), per_s(t.messages, g.prev.messages, ms),
           t.queued, t.windows_dropped + t.events_dropped, vt);
    if (g.losses_since) {
        nw_log(NW_LOG_WARN, "mqtt", "%" PRIu64 " connection losses in the last %" PRId64 " s (%s)",
               g.losses_since, ms / 1000, g.last_loss);
        g.losses_since = 0;
    }
    write_status_file(&t, false);
    g.prev = t;
    g.prev_ms = now;
}

/* Everything acknowledged that a collector can acknowledge; also counts
 * what is left per device model into g.final_class. */
static bool drained(uint64_t *out_unacked, uint64_t *out_stalled)
{
    uint64_t unacked = 0, stalled = 0;
    bool all = g.started == g.ndev;
    memset(g.final_class, 0, sizeof(g.final_class));
    for (unsigned i = 0; i < g.ndev; i++) {
        uint64_t u, s;
        fleet_device_unacked(g.devs[i].dev, &u, &s);
        unacked += u;
        stalled += s;
        g.final_class[fleet_model_index(&g.o.fleet, fleet_device_index(g.devs[i].dev))] += u;
    }
    *out_unacked = unacked;
    *out_stalled = stalled;
    return all && unacked == stalled;
}

/* ---- setup --------------------------------------------------------------- */

/*
 * libmosquitto 2.0 opens a socketpair per client (to wake its own loop)
 * besides the connection: three descriptors per device; a disk store holds
 * FLEET_DISK_FDS_PER_DEVICE more. Raises the soft limit to what is needed;
 * when that is not allowed the flags ask for too much here: usage, exit 2,
 * before anything is created or connected.
 */
static int raise_fd_limit(unsigned ndevices)
{
    struct rlimit rl;
    bool disk = g.o.fleet.queue_dir[0] != '\0';
    unsigned per = FDS_PER_DEVICE + (disk ? FLEET_DISK_FDS_PER_DEVICE : 0);
    rlim_t need = (rlim_t)ndevices * per + FD_RESERVE;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        return 0;
    }
    if (rl.rlim_cur >= need) {
        return 0;
    }
    struct rlimit want = {.rlim_cur = need, .rlim_max = rl.rlim_max >= need ? rl.rlim_max : need};
    if (setrlimit(RLIMIT_NOFILE, &want) != 0) {
        return bad("--devices %u%s: needs %llu file descriptors (%u per device%s), but the "
                   "limit is %llu and cannot be raised (%s): raise ulimit -n, or run fewer "
                   "devices per process (--shard)",
                   ndevices, disk ? " with --queue-dir" : "", (unsigned long long)need, per,
                   disk ? ": MQTT socket and socketpair, queue directory lock, segment writer "
                          "and reader"
                        : ": MQTT socket and socketpair",
                   (unsigned long long)rl.rlim_cur, strerror(errno));
    }
    nw_log(NW_LOG_INFO, "sim", "file descriptor limit raised from %llu to %llu",
           (unsigned long long)rl.rlim_cur, (unsigned long long)need);
    return 0;
}

static int write_inventory(void)
{
    if (!g.o.inventory_out) {
        return 0;
    }
    /* Written aside and renamed: a collector (or another shard writing the
     * same file) never sees half an inventory. */
    struct nw_error err = {0};
    char tmp[4096];
    if (snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", g.o.inventory_out, (long)getpid()) >=
        (int)sizeof(tmp)) {
        return bad("--inventory-out: path too long");
    }
    FILE *f = fopen(tmp, "w");
    if (!f) {
        return bad("--inventory-out %s: %s", tmp, strerror(errno));
    }
    enum nw_err rc = fleet_inventory_write(&g.o.fleet, f, &err);
    if (fclose(f) != 0 || rc != NW_OK || rename(tmp, g.o.inventory_out) != 0) {
        remove(tmp);
        return bad("--inventory-out %s: %s", g.o.inventory_out,
                   err.msg[0] ? err.msg : "write failed");
    }
    return 0;
}

static int setup(void)
{
    struct nw_limits lim;
    nw_limits_default(&lim);
    for (unsigned k = 1; k <= g.o.fleet.ndevices; k++) {
        g.ndev += (k - 1) % g.o.nshards == g.o.shard;
    }
    int rc = raise_fd_limit(g.ndev);
    if (rc == 0) {
        rc = write_inventory();
    }
    if (rc != 0) {
        return rc;
    }
    if (g.o.fleet.queue_dir[0] && mkdir(g.o.fleet.queue_dir, 0700) != 0 && errno != EEXIST) {
        nw_log(NW_LOG_ERROR, "sim", "--queue-dir %s: %s", g.o.fleet.queue_dir, strerror(errno));
        return 1;
    }
    struct nw_error err = {0};
    int64_t mono = nw_clock_mono_ms(), wall = nw_clock_realtime_ms();
    if (fleet_clock_init(&g.clock, wall, mono, g.o.duration_ms, g.o.rate, g.o.fleet.window_ms,
                         &err) != NW_OK) {
        return bad("%s", err.msg);
    }
    g.codec = nw_codec_new(&lim);
    g.batcher = g.codec ? fleet_batcher_new(g.codec, g.o.batch_max) : NULL;
    unsigned n = g.ndev;
    g.devs = calloc(n ? n : 1, sizeof(*g.devs));
    g.pfd = calloc(n, sizeof(*g.pfd));
    g.pmap = calloc(n, sizeof(*g.pmap));
    if (!g.batcher || !g.devs || !g.pfd || !g.pmap) {
        nw_log(NW_LOG_ERROR, "sim", "out of memory");
        return 1;
    }
    unsigned resumed = 0;
    uint64_t resumed_unacked = 0;
    for (unsigned i = 0; i < n; i++) {
        unsigned num = g.o.shard + 1 + i * g.o.nshards;
        if (fleet_device_open(&g.o.fleet, num, g.clock.virt0_ms, (uint64_t)wall, &g.devs[i].dev,
                              &err) != NW_OK) {
            nw_log(NW_LOG_ERROR, "sim", "device %u of %u: %s", i + 1, n, err.msg);
            return 1;
        }
        if (fleet_device_resumed(g.devs[i].dev)) {
            uint64_t u = 0;
            fleet_device_unacked(g.devs[i].dev, &u, NULL);
            resumed++;
            resumed_unacked += u;
        }
    }
    if (g.o.fleet.queue_dir[0]) {
        nw_log(NW_LOG_NOTICE, "sim",
               "--queue-dir %s: %u devices resumed (epochs kept, %" PRIu64
               " unacknowledged records to send first), %u new",
               g.o.fleet.queue_dir, resumed, resumed_unacked, n - resumed);
    }
    double period = 1000.0 / g.o.rate; /* wall ms per window */
    g.tick_ms = (int64_t)(period / 4);
    g.tick_ms = g.tick_ms < 10 ? 10 : (g.tick_ms > 100 ? 100 : g.tick_ms);
    g.run_started_mono = g.prev_ms = g.last_token_ms = g.next_tick = mono;
    if (g.o.quiet) {
        g.o.progress_ms = 0;
    }
    g.next_progress = mono + (g.o.progress_ms ? g.o.progress_ms : 1000);
    char v0[NW_CLOCK_RFC3339_SIZE];
    nw_clock_format_rfc3339(g.clock.virt0_ms, v0);
    char shard[64] = "";
    if (g.o.nshards > 1) {
        snprintf(shard, sizeof(shard), " (shard %u/%u of %u)", g.o.shard, g.o.nshards,
                 g.o.fleet.ndevices);
    }
    nw_log(NW_LOG_NOTICE, "sim",
           "%u devices%s in %u clinics on %s, window %u ms, %.3g windows/s per device: "
           "virtual time x%.4g from %s, %" PRId64 " s; %zu faults; seed %" PRIu64,
           n, shard, g.o.fleet.nclinics, g.o.broker, g.o.fleet.window_ms, g.o.rate, g.clock.factor,
           v0, g.o.duration_ms / 1000, g.o.fleet.nfaults, g.o.fleet.seed);
    return 0;
}

static void teardown(void)
{
    for (unsigned i = 0; g.devs && i < g.ndev; i++) {
        nw_mqtt_destroy(&g.devs[i].mq);
        fleet_device_destroy(&g.devs[i].dev);
    }
    free(g.devs);
    free(g.pfd);
    free(g.pmap);
    fleet_batcher_destroy(&g.batcher);
    nw_codec_destroy(&g.codec);
}

/* ---- the loop ------------------------------------------------------------ */

static void wait_io(int64_t now, int64_t until)
{
    nfds_t np = 0;
    for (unsigned i = 0; i < g.ndev; i++) {
        struct simdev *sd = &g.devs[i];
        int fd = sd->mq ? nw_mqtt_fd(sd->mq) : -1;
        if (fd < 0) {
            continue;
        }
        g.pfd[np] = (struct pollfd){.fd = fd,
                                    .events = POLLIN | (nw_mqtt_want_write(sd->mq) ? POLLOUT : 0)};
        g.pmap[np++] = i;
    }
    int64_t t = until - now;
    t = t < 0 ? 0 : (t > 50 ? 50 : t);
    int n = poll(g.pfd, np, (int)t);
    if (n <= 0) {
        return;
    }
    now = nw_clock_mono_ms();
    for (nfds_t k = 0; k < np; k++) {
        short re = g.pfd[k].revents;
        if (!re) {
            continue;
        }
        struct simdev *sd = &g.devs[g.pmap[k]];
        if (!sd->mq) {
            continue;
        }
        step(sd, re & (POLLIN | POLLERR | POLLHUP), re & POLLOUT, now);
        pump(sd); /* acks free in-flight slots: fill them now */
    }
}

static void enter_drain(int64_t now)
{
    g.phase = PH_DRAIN;
    g.drain_until = now + g.o.drain_ms;
    g.next_drain_check = now;
    int64_t wall = nw_clock_realtime_ms();
    for (unsigned i = 0; i < g.ndev; i++) {
        fleet_device_flush(g.devs[i].dev, wall, g.codec);
    }
    struct totals t;
    sum(&t);
    g.run_messages = t.messages;
    g.run_seconds = (double)(now - g.run_started_mono) / 1000.0;
    nw_log(NW_LOG_INFO, "sim", "run over after %.1f s; waiting up to %.1f s for acks",
           g.run_seconds, (double)g.o.drain_ms / 1000.0);
}

static void finish(void)
{
    g.phase = PH_FINISH;
    for (unsigned i = 0; i < g.ndev; i++) {
        struct simdev *sd = &g.devs[i];
        if (sd->mq && nw_mqtt_connected(sd->mq)) {
            publish_status(sd, NW_DEVICE_OFFLINE);
        }
    }
    int64_t until = nw_clock_mono_ms() + FINISH_WAIT_MS;
    for (int64_t now = nw_clock_mono_ms(); now < until; now = nw_clock_mono_ms()) {
        bool busy = false;
        for (unsigned i = 0; i < g.ndev && !busy; i++) {
            struct simdev *sd = &g.devs[i];
            busy = sd->mq && nw_mqtt_connected(sd->mq) && nw_mqtt_inflight(sd->mq) > 0;
        }
        if (!busy) {
            break;
        }
        wait_io(now, now + 20);
    }
    for (unsigned i = 0; i < g.ndev; i++) {
        nw_mqtt_destroy(&g.devs[i].mq); /* clean DISCONNECT: no will */
    }
}

static void summary(void)
{
    struct totals t;
    sum(&t);
    char classes[128], devices[256];
    format_classes(classes, sizeof(classes));
    double secs = (double)(nw_clock_mono_ms() - g.run_started_mono) / 1000.0;
    nw_log(NW_LOG_NOTICE, "summary",
           "devices=%u windows=%" PRIu64 " events=%" PRIu64 " windows_sent=%" PRIu64
           " events_sent=%" PRIu64 " messages=%" PRIu64 " windows_acked=%" PRIu64
           " events_acked=%" PRIu64 " unacked=%" PRIu64 " unacked_by_class=%s behind_gap=%" PRIu64
           " windows_dropped=%" PRIu64 " events_dropped=%" PRIu64 " skipped=%" PRIu64
           " resends=%" PRIu64 " connects=%" PRIu64 " losses=%" PRIu64 " connect_failures=%" PRIu64
           " refused=%" PRIu64 " rejected=%" PRIu64 " seconds=%.1f run_msgs_per_s=%.0f",
           g.ndev, t.windows_made, t.events_made, t.windows_sent, t.events_sent, t.messages,
           t.windows_acked, t.events_acked, g.final_unacked, classes, g.final_stalled,
           t.windows_dropped, t.events_dropped, t.skipped, t.resends, g.connects, g.losses,
           g.connect_failures, g.refused, t.rejected, secs,
           g.run_seconds > 0 ? (double)g.run_messages / g.run_seconds : 0.0);
    if (g.final_unacked > 0) {
        format_devices(devices, sizeof(devices));
        nw_log(NW_LOG_WARN, "summary",
               "%" PRIu64 " records stayed unacknowledged after the %.1f s drain (by device "
               "model %s; devices %s), %" PRIu64
               " of them behind a seq hole (data_gap or overflow) that the collector did not "
               "acknowledge past (queue_floor): exit status %d",
               g.final_unacked, (double)g.o.drain_ms / 1000.0, classes, devices, g.final_stalled,
               EXIT_UNACKED);
    }
    write_status_file(&t, true);
}

static void run(void)
{
    int64_t end = g.run_started_mono + g.o.duration_ms;
    for (;;) {
        int64_t now = nw_clock_mono_ms();
        if (g.phase == PH_RUN && (now >= end || stop_requests > 0)) {
            enter_drain(now);
        }
        if (g.phase == PH_DRAIN && now >= g.next_drain_check) {
            g.next_drain_check = now + 200;
            /* Records behind a seq hole are excused only once acks went
             * quiet: a collector honouring queue_floor acks past the hole. */
            bool done = drained(&g.final_unacked, &g.final_stalled) &&
                        (g.final_unacked == 0 || now - g.last_ack_mono >= STALL_GRACE_MS);
            if (done || now >= g.drain_until || stop_requests > 1) {
                return;
            }
        }
        if (now >= g.next_tick) {
            tick(now);
            g.next_tick = now + g.tick_ms;
        }
        if (now >= g.next_progress) {
            progress(now);
            g.next_progress = now + (g.o.progress_ms ? g.o.progress_ms : 1000);
        }
        wait_io(nw_clock_mono_ms(), g.next_tick);
    }
}

int main(int argc, char **argv)
{
    int rc = parse_args(argc, argv, &g.o);
    if (rc >= 0) {
        return rc;
    }
    nw_log_init(PROG, g.o.log_level, NW_LOG_TO_STDERR);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    rc = setup();
    if (rc == 0) {
        run();
        drained(&g.final_unacked, &g.final_stalled);
        finish();
        summary();
        rc = g.final_unacked > 0 ? EXIT_UNACKED : 0;
    }
    teardown();
    return rc;
}

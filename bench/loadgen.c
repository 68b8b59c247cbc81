/*
 * loadgen.c - MQTT load for the broker and collector benchmarks (DESIGN §9).
 *
 *   loadgen pub --port P --clients N [--qos 0|1] [--window W] [--rate R]
 *               [--payload stamp|windows] [--size B] [--batch K]
 *               [--duration S] [--count M] [--warmup S]
 *   loadgen sub --port P [--qos 0|1] [--client raw|nwmqtt] [--filter F]
 *               [--warmup S] [--duration S] [--expect M] [--idle-ms T]
 *               [--max-s S] [--watch-pid PID]...
 *
 * pub: ONE process drives N MQTT 5 connections from one epoll loop. Each
 * connection is a device "BENCH-<i>" publishing to
 * needlewatch/v1/BENCH-<i>/telemetry, at QoS 1 with at most W PUBACKs
 * outstanding (the agent's max_inflight), or at QoS 0 bounded by TCP
 * back-pressure. --rate 0 publishes as fast as the broker takes it; --rate R
 * paces R msg/s over all connections (round robin).
 *   --payload stamp     --size bytes: "NWLG", the CLOCK_MONOTONIC send time
 *                       in ns, a global counter, filler (the latency probe)
 *   --payload windows   a valid needlewatch WindowBatch (lib/codec.c) of
 *                       --batch windows per message, per-device seq
 *                       1, 2, 3..., 1 s windows starting 20 days ago, so a
 *                       collector validates and stores every one of them
 *
 * sub: one subscriber on --filter (default needlewatch/v1/+/telemetry):
 *   --client raw      a minimal MQTT 5 client reading 256 KiB per recv() and
 *                     answering PUBACKs in one write per read: as close to
 *                     "what the broker can deliver" as a client gets
 *   --client nwmqtt   lib/mqtt.c (libmosquitto), exactly the connection
 *                     code of the collector's ingest thread (buffered I/O on,
 *                     --receive-max as Receive Maximum), counting only
 *   --client mosq     libmosquitto directly with MOSQ_OPT_RECEIVE_MAXIMUM set
 *                     to --receive-max: lib/mqtt.c plus that one option
 * It prints "READY" once subscribed, so a script starts the publishers
 * after it. Its measurement window opens --warmup s after the first
 * message and lasts --duration s; it keeps counting after the window until
 * --expect messages or --idle-ms without a message (for the accounting of
 * every message sent), or, without --expect, at most --linger s (default 3).
 * --receive-max R (raw client; default 20, what libmosquitto 2.0 announces)
 * is the MQTT 5 Receive Maximum: how many QoS 1 messages the broker may
 * have in flight to this subscriber before it queues. Stamped payloads give one-hop latency
 * (publisher's send call to the subscriber's parse; both on CLOCK_MONOTONIC).
 *
 * pub --print-size prints the payload size of one message and exits.
 *
 * Both print one line "RESULT key=value ..." that the bench scripts parse:
 * rates over the window, totals, p50/p99 latency, and the CPU use (% of one
 * core) of the process itself and of every --watch-pid over the window.
 *
 * Everything is bounded: connection count (<= 20000), run time (--max-s,
 * default 120 s), buffers (fixed per connection), latency samples (2 M).
 * Only 127.0.0.1. RLIMIT_NOFILE is raised to its hard limit for N=1000+.
 */
#include <needlewatch/clock.h>
#include <needlewatch/codec.h>
#include <needlewatch/mqtt.h>
#include <needlewatch/topic.h>

#include <arpa/inet.h>
#include <mosquitto.h>
#include <poll.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CLIENTS 20000
#define MAX_WATCH 8
#define OUT_CAP (512 * 1024)
#define IN_CAP (256 * 1024)
#define SUB_IN_CAP (1024 * 1024)
#define LAT_MAX 2000000
#define CONNECT_PARALLEL 64
#define MAGIC "NWLG"

/* ---- options ------------------------------------------------------------ */

struct opts {
    bool pub;
    int port;
    int clients;
    int qos;
    int window;
    double rate;
    bool windows_payload;
    size_t size;
    int batch;
    double warmup, duration;
    uint64_t count;
    bool raw_sub;
    bool mosq_sub;
    const char *filter;
    uint64_t expect;
    int idle_ms;
    double max_s;
    int watch[MAX_WATCH];
    int nwatch;
    bool nodelay;
    const char *device_prefix;
    unsigned receive_max;
    double linger;
    bool print_size;
};

static struct opts O = {
    .port = 0,
    .clients = 100,
    .qos = 1,
    .window = 16,
    .size = 120,
    .batch = 1,
    .warmup = 2,
    .duration = 10,
    .raw_sub = true,
    .filter = "needlewatch/v1/+/telemetry",
    .idle_ms = 2000,
    .max_s = 120,
    .device_prefix = "BENCH",
    .receive_max = 20,
    .linger = 3,
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    stop = sig;
}

static double now_s(void)
{
    return (double)nw_clock_mono_ns() / 1e9;
}

static void die(const char *what)
{
    fprintf(stderr, "loadgen: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* ---- CPU accounting --------------------------------------------------- */

static double proc_cpu_s(int pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) {
        return -1;
    }
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* comm may contain spaces */
    if (!p) {
        return -1;
    }
    unsigned long ut = 0, st = 0;
    /* after ") ": state(3) ppid pgrp session tty tpgid flags minflt cminflt
     * majflt cmajflt utime(14) stime(15) */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2) {
        return -1;
    }
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

struct cpu_mark {
    double t, self, watch[MAX_WATCH];
};

static void cpu_mark(struct cpu_mark *m)
{
    m->t = now_s();
    m->self = self_cpu_s();
    for (int i = 0; i < O.nwatch; i++) {
        m->watch[i] = proc_cpu_s(O.watch[i]);
    }
}

static void cpu_print(const struct cpu_mark *a, const struct cpu_mark *b)
{
    double dt = b->t - a->t;
    if (dt <= 0) {
        return;
    }
    printf(" cpu_self=%.1f", 100.0 * (b->self - a->self) / dt);
    for (int i = 0; i < O.nwatch; i++) {
        printf(" cpu_pid%d=%.1f", O.watch[i],
               a->watch[i] < 0 || b->watch[i] < 0 ? -1.0
                                                  : 100.0 * (b->watch[i] - a->watch[i]) / dt);
    }
}

/* ---- MQTT 5 wire, the little we need ---------------------------------- */

static size_t put_varint(uint8_t *p, size_t v)
{
    size_t n = 0;
    do {
        uint8_t b = v % 128;
        v /= 128;
        p[n++] = (uint8_t)(b | (v ? 0x80 : 0));
    } while (v);
    return n;
}

/* Returns bytes consumed by the fixed header, 0 if incomplete, or -1. */
static int get_header(const uint8_t *p, size_t len, size_t *out_rem)
{
    size_t v = 0, mul = 1;
    for (size_t i = 1; i < 5; i++) {
        if (i >= len) {
            return 0;
        }
        v += (p[i] & 127u) * mul;
        mul *= 128;
        if (!(p[i] & 128u)) {
            *out_rem = v;
            return (int)(i + 1);
        }
    }
    return -1;
}

static size_t put_str(uint8_t *p, const char *s)
{
    size_t n = strlen(s);
    p[0] = (uint8_t)(n >> 8);
    p[1] = (uint8_t)n;
    memcpy(p + 2, s, n);
    return n + 2;
}

/* receive_max 0: no property (the broker applies max_inflight_messages). */
static size_t build_connect(uint8_t *buf, const char *client_id, unsigned receive_max)
{
    uint8_t body[256];
    size_t n = 0;
    n += put_str(body + n, "MQTT");
    body[n++] = 5;    /* MQTT 5 */
    body[n++] = 0x02; /* clean start */
    body[n++] = 0;    /* keepalive 0: off (bounded runs) */
    body[n++] = 0;
    if (receive_max) {
        body[n++] = 3;    /* properties: 3 bytes */
        body[n++] = 0x21; /* Receive Maximum */
        body[n++] = (uint8_t)(receive_max >> 8);
        body[n++] = (uint8_t)receive_max;
    } else {
        body[n++] = 0; /* no properties */
    }
    n += put_str(body + n, client_id);
    size_t h = 0;
    buf[h++] = 0x10;
    h += put_varint(buf + h, n);
    memcpy(buf + h, body, n);
    return h + n;
}

/* ---- connections -------------------------------------------------------- */

enum cstate { C_CONNECTING, C_UP, C_DEAD };

struct conn {
    int fd;
    enum cstate st;
    int inflight;
    uint16_t next_mid;
    bool want_out; /* EPOLLOUT registered */
    uint8_t *out;
    size_t olen;
    uint8_t *in;
    size_t ilen, icap;
    uint64_t seq; /* windows: last seq published */
    char topic[NW_TOPIC_MAX + 1];
    char device[NW_DEVICE_ID_MAX + 1];
    uint64_t sent, acked;
};

static int ep = -1;

static void ep_update(struct conn *c, bool out)
{
    if (out == c->want_out || c->st == C_DEAD) {
        return;
    }
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = out;
}

static int dial(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        die("socket");
    }
    int one = 1;
    if (O.nodelay) {
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)O.port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0 && errno != EINPROGRESS) {
        die("connect");
    }
    return fd;
}

static void conn_open(struct conn *c, const char *client_id, size_t icap)
{
    c->fd = dial();
    c->st = C_CONNECTING;
    c->out = malloc(OUT_CAP);
    c->in = malloc(icap);
    c->icap = icap;
    if (!c->out || !c->in) {
        die("malloc");
    }
    c->olen = build_connect(c->out, client_id, O.pub ? 0 : O.receive_max);
    c->next_mid = 1;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    c->want_out = true;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
        die("epoll_ctl");
    }
}

static void conn_flush(struct conn *c)
{
    size_t off = 0;
    while (off < c->olen) {
        ssize_t n = send(c->fd, c->out + off, c->olen - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOTCONN)) {
            break;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        fprintf(stderr, "loadgen: send: %s\n", strerror(errno));
        c->st = C_DEAD;
        return;
    }
    if (off > 0) {
        memmove(c->out, c->out + off, c->olen - off);
        c->olen -= off;
    }
    ep_update(c, c->olen > 0 || (O.pub && O.qos == 0 && O.rate <= 0 && c->st == C_UP));
}

/* ---- payloads ----------------------------------------------------------- */

static struct nw_codec *codec;
static struct nw_window *wins;
static int64_t wbase_ms;
static uint64_t wepoch;
static uint8_t *payload_buf;
static size_t payload_cap;
static uint64_t stamp_counter;

static size_t make_payload(struct conn *c)
{
    if (!O.windows_payload) {
        size_t n = O.size < 20 ? 20 : O.size;
        memcpy(payload_buf, MAGIC, 4);
        int64_t t = nw_clock_mono_ns();
        memcpy(payload_buf + 4, &t, 8);
        uint64_t k = ++stamp_counter;
        memcpy(payload_buf + 12, &k, 8);
        return n;
    }
    struct nw_window_batch b = {
        .epoch = wepoch, .count = (size_t)O.batch, .capacity = (size_t)O.batch, .windows = wins};
    snprintf(b.device_id, sizeof(b.device_id), "%s", c->device);
    for (int i = 0; i < O.batch; i++) {
        struct nw_window *w = &wins[i];
        w->seq = ++c->seq;
        w->start_ms = wbase_ms + (int64_t)w->seq * 1000;
    }
    b.queue_floor = wins[0].seq; /* like the agent: lowest seq still held */
    size_t len = 0;
    struct nw_error err = {0};
    if (nw_codec_encode_windows(codec, &b, payload_buf, payload_cap, &len, &err) != NW_OK) {
        fprintf(stderr, "loadgen: encode: %s\n", err.msg);
        exit(1);
    }
    return len;
}

static void init_payloads(void)
{
    payload_cap = 300 * 1024;
    payload_buf = malloc(payload_cap);
    if (!payload_buf) {
        die("malloc");
    }
    memset(payload_buf, 'x', payload_cap);
    if (!O.windows_payload) {
        return;
    }
    struct nw_limits lim;
    nw_limits_default(&lim);
    codec = nw_codec_new(&lim);
    wins = calloc((size_t)O.batch, sizeof(*wins));
    if (!codec || !wins) {
        die("codec");
    }
    int64_t now = nw_clock_realtime_ms();
    wbase_ms = (now - 20LL * 86400 * 1000) / 1000 * 1000; /* 20 days ago, whole seconds */
    wepoch = ((uint64_t)nw_clock_mono_ns() * 2654435761u ^ (uint64_t)getpid()) & INT64_MAX;
    if (wepoch == 0) {
        wepoch = 1;
    }
    for (int i = 0; i < O.batch; i++) {
        struct nw_window *w = &wins[i];
        w->duration_ms = 1000;
        w->running_ms = 1000;
        w->cycles = 120;
        w->rate_mean_hz = 120.0, w->rate_min_hz = 118.5, w->rate_max_hz = 121.5;
        w->depth_mean_mm = 0.38, w->depth_min_mm = 0.36, w->depth_max_mm = 0.40;
        w->pigment_ul = 0.0144;
        snprintf(w->session_id, sizeof(w->session_id), "s-bench");
        snprintf(w->cartridge_id, sizeof(w->cartridge_id), "CRT-BENCH");
        snprintf(w->pigment_lot, sizeof(w->pigment_lot), "PL-1");
    }
}

/* Appends one PUBLISH to c->out; false when there is no room. */
static bool publish(struct conn *c)
{
    size_t plen = make_payload(c);
    size_t tlen = strlen(c->topic);
    size_t rem = 2 + tlen + (O.qos ? 2 : 0) + 1 + plen;
    if (c->olen + rem + 5 > OUT_CAP) {
        if (O.windows_payload) {
            c->seq -= (uint64_t)O.batch; /* not sent: reuse the seqs */
        }
        return false;
    }
    uint8_t *p = c->out + c->olen;
    size_t n = 0;
    p[n++] = (uint8_t)(0x30 | (O.qos << 1));
    n += put_varint(p + n, rem);
    n += put_str(p + n, c->topic);
    if (O.qos) {
        if (c->next_mid == 0) {
            c->next_mid = 1;
        }
        p[n++] = (uint8_t)(c->next_mid >> 8);
        p[n++] = (uint8_t)c->next_mid;
        c->next_mid++;
        c->inflight++;
    }
    p[n++] = 0; /* no properties */
    memcpy(p + n, payload_buf, plen);
    c->olen += n + plen;
    c->sent++;
    return true;
}

/* ---- publisher ---------------------------------------------------------- */

static struct conn *conns;
static uint64_t total_sent, total_acked, sent_at_open, sent_at_close;
static double t_first = -1, win_open = -1, win_close = -1;

static bool can_publish(const struct conn *c)
{
    if (c->st != C_UP) {
        return false;
    }
    if (O.qos) {
        return c->inflight < O.window;
    }
    return c->olen < 16 * 1024;
}

static bool budget_left(void)
{
    return !O.count || total_sent < O.count;
}

/* Publishes on c while it has room (and, paced, while *budget lasts). */
static int fill(struct conn *c, uint64_t *budget)
{
    int n = 0;
    int cap = O.qos ? O.window : O.window * 4;
    while (can_publish(c) && budget_left() && (!budget || *budget > 0) && n < cap) {
        if (!publish(c)) {
            break;
        }
        n++;
        total_sent++;
        if (budget) {
            (*budget)--;
        }
        if (t_first < 0) {
            t_first = now_s();
        }
    }
    return n;
}

static void on_packet_pub(struct conn *c, uint8_t type, const uint8_t *body, size_t len)
{
    (void)body, (void)len;
    switch (type >> 4) {
    case 2: /* CONNACK */
        if (len >= 2 && body[1] != 0) {
            fprintf(stderr, "loadgen: %s refused: reason 0x%02x\n", c->device, body[1]);
            c->st = C_DEAD;
            return;
        }
        c->st = C_UP;
        break;
    case 4: /* PUBACK */
        if (c->inflight > 0) {
            c->inflight--;
        }
        if (len >= 3 && body[2] >= 0x80) {
            fprintf(stderr, "loadgen: PUBACK reason 0x%02x\n", body[2]);
        }
        c->acked++;
        total_acked++;
        break;
    case 14: /* DISCONNECT */
        fprintf(stderr, "loadgen: %s: broker disconnected us (reason 0x%02x)\n", c->device,
                len ? body[0] : 0);
        c->st = C_DEAD;
        break;
    default:
        break;
    }
}

/* Reads what is there and hands each complete packet to fn. */
static void conn_read(struct conn *c, void (*fn)(struct conn *, uint8_t, const uint8_t *, size_t))
{
    for (;;) {
        if (c->ilen == c->icap) {
            fprintf(stderr, "loadgen: input buffer overflow\n");
            c->st = C_DEAD;
            return;
        }
        ssize_t n = recv(c->fd, c->in + c->ilen, c->icap - c->ilen, 0);
        if (n == 0) {
            fprintf(stderr, "loadgen: %s: connection closed by broker\n", c->device);
            c->st = C_DEAD;
            return;
        }
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                fprintf(stderr, "loadgen: recv: %s\n", strerror(errno));
                c->st = C_DEAD;
            }
            break;
        }
        c->ilen += (size_t)n;
        size_t off = 0;
        while (off < c->ilen) {
            size_t rem = 0;
            int h = get_header(c->in + off, c->ilen - off, &rem);
            if (h < 0) {
                c->st = C_DEAD;
                return;
            }
            if (h == 0 || off + (size_t)h + rem > c->ilen) {
                break;
            }
            fn(c, c->in[off], c->in + off + h, rem);
            off += (size_t)h + rem;
        }
        memmove(c->in, c->in + off, c->ilen - off);
        c->ilen -= off;
        if ((size_t)n < c->icap / 2) {
            break; /* drained the socket, most likely */
        }
    }
}

static void raise_nofile(int need)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)need) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
        if (rl.rlim_cur < (rlim_t)need) {
            fprintf(stderr, "loadgen: RLIMIT_NOFILE %lu < %d needed\n", (unsigned long)rl.rlim_cur,
                    need);
            exit(1);
        }
    }
}

static int run_pub(void)
{
    raise_nofile(O.clients + 64);
    init_payloads();
    if (O.print_size) { /* the payload size of one message, then exit */
        struct conn c = {.seq = 0};
        snprintf(c.device, sizeof(c.device), "%s-%05d", O.device_prefix, 0);
        printf("%zu\n", make_payload(&c));
        return 0;
    }
    conns = calloc((size_t)O.clients, sizeof(*conns));
    struct epoll_event *evs = calloc((size_t)O.clients + 16, sizeof(*evs));
    if (!conns || !evs) {
        die("calloc");
    }
    for (int i = 0; i < O.clients; i++) {
        struct conn *c = &conns[i];
        snprintf(c->device, sizeof(c->device), "%s-%05d", O.device_prefix, i);
        nw_topic_build(NW_TOPIC_PREFIX_DEFAULT, c->device, NW_TOPIC_TELEMETRY, c->topic,
                       sizeof(c->topic), NULL);
    }
    /* Connect at most CONNECT_PARALLEL at a time: the broker's listen
     * backlog is 100, and a dropped SYN costs a 1 s retransmit. */
    double t0 = now_s();
    int opened = 0, up = 0;
    while (up < O.clients && !stop && now_s() - t0 < 60) {
        while (opened < O.clients && opened - up < CONNECT_PARALLEL) {
            conn_open(&conns[opened], conns[opened].device, IN_CAP / 16);
            opened++;
        }
        int n = epoll_wait(ep, evs, O.clients + 16, 100);
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                bool was_up = c->st == C_UP;
                conn_read(c, on_packet_pub);
                if (!was_up && c->st == C_UP) {
                    up++;
                }
            }
            if (evs[i].events & EPOLLOUT) {
                conn_flush(c);
            }
            if (c->st == C_DEAD) {
                fprintf(stderr, "loadgen: connection %s failed\n", c->device);
                return 1;
            }
        }
    }
    if (up < O.clients) {
        fprintf(stderr, "loadgen: only %d of %d connections up\n", up, O.clients);
        return 1;
    }
    fprintf(stderr, "loadgen: %d connections up in %.2f s\n", up, now_s() - t0);

    struct cpu_mark m0 = {0}, m1 = {0};
    double start = now_s(), last_pass = 0;
    int rr = 0;
    bool paced = O.rate > 0;
    while (!stop && budget_left() && now_s() - start < O.max_s) {
        double now = now_s();
        if (t_first >= 0 && win_open < 0 && now - t_first >= O.warmup) {
            win_open = now, sent_at_open = total_sent;
            cpu_mark(&m0);
        }
        if (win_open >= 0 && win_close < 0 && now - win_open >= O.duration) {
            win_close = now, sent_at_close = total_sent;
            cpu_mark(&m1);
        }
        if (t_first >= 0 && now - t_first >= O.warmup + O.duration + 0.5 && !O.count) {
            break; /* window done plus a tail for the subscriber */
        }
        if (paced) {
            double due = (now - start) * O.rate;
            uint64_t budget = due > (double)total_sent ? (uint64_t)(due - (double)total_sent) : 0;
            for (int k = 0; k < O.clients && budget > 0; k++) {
                struct conn *c = &conns[rr];
                rr = (rr + 1) % O.clients;
                uint64_t one = 1;
                if (fill(c, &one) > 0) {
                    budget--;
                    conn_flush(c);
                }
            }
        } else if (now - last_pass > 0.01) {
            for (int i = 0; i < O.clients; i++) { /* anything the events missed */
                if (fill(&conns[i], NULL) > 0) {
                    conn_flush(&conns[i]);
                }
            }
            last_pass = now;
        }
        int n = epoll_wait(ep, evs, O.clients + 16, paced ? 1 : 10);
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                conn_read(c, on_packet_pub);
            }
            if (c->st == C_DEAD) {
                fprintf(stderr, "loadgen: connection %s lost\n", c->device);
                return 1;
            }
            if (!paced) {
                fill(c, NULL);
            }
            if (c->olen > 0 || (evs[i].events & EPOLLOUT)) {
                conn_flush(c);
            }
        }
    }
    /* Flush and wait for the last PUBACKs (bounded). */
    double drain_until = now_s() + 10;
    while (now_s() < drain_until) {
        bool pending = false;
        for (int i = 0; i < O.clients; i++) {
            if (conns[i].olen) {
                conn_flush(&conns[i]);
            }
            pending = pending || conns[i].olen > 0 || (O.qos && conns[i].inflight > 0);
        }
        if (!pending) {
            break;
        }
        int n = epoll_wait(ep, evs, O.clients + 16, 10);
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                conn_read(c, on_packet_pub);
            }
        }
    }
    if (win_close < 0) {
        win_close = now_s(), sent_at_close = total_sent;
        cpu_mark(&m1);
        if (win_open < 0) {
            win_open = t_first, sent_at_open = 0;
            m0 = m1;
        }
    }
    double w = win_close - win_open;
    uint64_t outstanding = 0;
    for (int i = 0; i < O.clients; i++) {
        outstanding += (uint64_t)conns[i].inflight;
    }
    printf("RESULT role=pub clients=%d qos=%d sent=%" PRIu64 " acked=%" PRIu64 " unacked=%" PRIu64
           " windows_per_msg=%d windows_sent=%" PRIu64 " window_s=%.3f rate=%.1f payload=%s",
           O.clients, O.qos, total_sent, total_acked, outstanding, O.windows_payload ? O.batch : 0,
           O.windows_payload ? total_sent * (uint64_t)O.batch : 0, w,
           w > 0 ? (double)(sent_at_close - sent_at_open) / w : 0.0,
           O.windows_payload ? "windows" : "stamp");
    cpu_print(&m0, &m1);
    printf("\n");
    /* Close politely: DISCONNECT, so no will and no session linger. */
    for (int i = 0; i < O.clients; i++) {
        static const uint8_t disc[] = {0xE0, 0x00};
        if (conns[i].st == C_UP) {
            (void)!send(conns[i].fd, disc, sizeof(disc), MSG_NOSIGNAL);
        }
        close(conns[i].fd);
    }
    return 0;
}

/* ---- subscriber --------------------------------------------------------- */

static uint64_t rcv_total, rcv_at_open, rcv_at_close, bytes_total;
static double t_first_rx = -1, t_last_rx = -1;
static int64_t *lat;
static size_t nlat;
static bool subscribed;

static void on_message_common(const uint8_t *payload, size_t len)
{
    double t = now_s();
    rcv_total++;
    bytes_total += len;
    t_last_rx = t;
    if (t_first_rx < 0) {
        t_first_rx = t;
    }
    if (win_open >= 0 && win_close < 0 && len >= 20 && memcmp(payload, MAGIC, 4) == 0 &&
        nlat < LAT_MAX) {
        int64_t sent;
        memcpy(&sent, payload + 4, 8);
        lat[nlat++] = nw_clock_mono_ns() - sent;
    }
}

static void on_packet_sub(struct conn *c, uint8_t type, const uint8_t *body, size_t len)
{
    switch (type >> 4) {
    case 2: /* CONNACK */
        if (len >= 2 && body[1] != 0) {
            fprintf(stderr, "loadgen: subscriber refused: 0x%02x\n", body[1]);
            c->st = C_DEAD;
            return;
        }
        c->st = C_UP;
        {
            /* SUBSCRIBE mid 1, no properties, the filter with its QoS */
            uint8_t b[512];
            size_t n = 0;
            b[n++] = 0;
            b[n++] = 1;
            b[n++] = 0;
            n += put_str(b + n, O.filter);
            b[n++] = (uint8_t)O.qos;
            uint8_t *p = c->out + c->olen;
            size_t h = 0;
            p[h++] = 0x82;
            h += put_varint(p + h, n);
            memcpy(p + h, b, n);
            c->olen += h + n;
        }
        break;
    case 9: /* SUBACK */
        if (len >= 4 && body[3] >= 0x80) {
            fprintf(stderr, "loadgen: subscription refused: 0x%02x\n", body[3]);
            c->st = C_DEAD;
            return;
        }
        subscribed = true;
        printf("READY\n");
        fflush(stdout);
        break;
    case 3: { /* PUBLISH */
        int qos = (type >> 1) & 3;
        if (len < 2) {
            return;
        }
        size_t tl = ((size_t)body[0] << 8) | body[1];
        size_t off = 2 + tl;
        uint16_t mid = 0;
        if (qos) {
            mid = (uint16_t)((body[off] << 8) | body[off + 1]);
            off += 2;
        }
        size_t plen = 0; /* properties */
        int h = get_header(body + off - 1, len - off + 1, &plen);
        if (h <= 0) {
            return;
        }
        off += (size_t)h - 1 + plen;
        if (off > len) {
            return;
        }
        on_message_common(body + off, len - off);
        if (qos == 1 && c->olen + 4 <= OUT_CAP) {
            uint8_t *p = c->out + c->olen;
            p[0] = 0x40, p[1] = 2, p[2] = (uint8_t)(mid >> 8), p[3] = (uint8_t)mid;
            c->olen += 4;
        }
        break;
    }
    case 14:
        fprintf(stderr, "loadgen: broker disconnected the subscriber\n");
        c->st = C_DEAD;
        break;
    default:
        break;
    }
}

static void nw_on_message(void *user, const char *topic, const void *payload, size_t len)
{
    (void)user, (void)topic;
    on_message_common(payload, len);
}

static struct nw_mqtt *nwm;

static void nw_on_connect(void *user)
{
    (void)user;
    struct nw_error err = {0};
    if (nw_mqtt_subscribe(nwm, O.filter, O.qos, &err) != NW_OK) {
        fprintf(stderr, "loadgen: %s\n", err.msg);
        stop = 1;
    }
}

/* --client mosq: libmosquitto directly, MQTT 5, with MOSQ_OPT_RECEIVE_MAXIMUM
 * set to --receive-max: what lib/mqtt.c would do with that one option. */
static struct mosquitto *mosq;

static void mq_on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg,
                          const mosquitto_property *props)
{
    (void)m, (void)obj, (void)props;
    on_message_common(msg->payload, (size_t)msg->payloadlen);
}

static void mq_on_subscribe(struct mosquitto *m, void *obj, int mid, int n, const int *granted,
                            const mosquitto_property *props)
{
    (void)m, (void)obj, (void)mid, (void)props;
    if (n < 1 || granted[0] >= 0x80) {
        fprintf(stderr, "loadgen: subscription refused\n");
        stop = 1;
        return;
    }
    subscribed = true;
    printf("READY\n");
    fflush(stdout);
}

static void mq_on_connect(struct mosquitto *m, void *obj, int rc, int flags,
                          const mosquitto_property *props)
{
    (void)obj, (void)flags, (void)props;
    if (rc != 0 || mosquitto_subscribe_v5(m, NULL, O.filter, O.qos, 0, NULL) != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "loadgen: connect/subscribe failed (%d)\n", rc);
        stop = 1;
    }
}

static int mq_start(const char *id)
{
    mosquitto_lib_init();
    mosq = mosquitto_new(id, true, NULL);
    if (!mosq) {
        return -1;
    }
    mosquitto_int_option(mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    mosquitto_int_option(mosq, MOSQ_OPT_RECEIVE_MAXIMUM, (int)(O.receive_max ? O.receive_max : 20));
    mosquitto_int_option(mosq, MOSQ_OPT_TCP_NODELAY, O.nodelay);
    mosquitto_connect_v5_callback_set(mosq, mq_on_connect);
    mosquitto_message_v5_callback_set(mosq, mq_on_message);
    mosquitto_subscribe_v5_callback_set(mosq, mq_on_subscribe);
    return mosquitto_connect(mosq, "127.0.0.1", O.port, 60) == MOSQ_ERR_SUCCESS ? 0 : -1;
}

static void mq_step(void)
{
    struct pollfd p = {.fd = mosquitto_socket(mosq),
                       .events = POLLIN | (mosquitto_want_write(mosq) ? POLLOUT : 0)};
    int n = poll(&p, 1, 20);
    if (n > 0 && (p.revents & (POLLIN | POLLERR | POLLHUP))) {
        mosquitto_loop_read(mosq, 1);
    }
    if (mosquitto_want_write(mosq)) {
        mosquitto_loop_write(mosq, 1);
    }
    mosquitto_loop_misc(mosq);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(double p)
{
    if (nlat == 0) {
        return -1;
    }
    size_t i = (size_t)(p / 100.0 * (double)(nlat - 1) + 0.5);
    return (double)lat[i] / 1000.0;
}

static int run_sub(void)
{
    lat = malloc(LAT_MAX * sizeof(*lat));
    if (!lat) {
        die("malloc");
    }
    struct conn sc = {0};
    snprintf(sc.device, sizeof(sc.device), "bench-sub-%d", (int)getpid());
    struct epoll_event evs[4];
    if (O.raw_sub) {
        conn_open(&sc, sc.device, SUB_IN_CAP);
    } else if (O.mosq_sub) {
        if (mq_start(sc.device) != 0) {
            fprintf(stderr, "loadgen: libmosquitto connect failed\n");
            return 1;
        }
    } else {
        char url[64];
        snprintf(url, sizeof(url), "mqtt://127.0.0.1:%d", O.port);
        struct nw_mqtt_options mo = {.url = url,
                                     .client_id = sc.device,
                                     .max_inflight = 1000,
                                     .tcp_nodelay = O.nodelay,
                                     .receive_maximum = (int)O.receive_max,
                                     .buffered_io = true};
        struct nw_mqtt_callbacks cb = {.on_connect = nw_on_connect, .on_message = nw_on_message};
        struct nw_error err = {0};
        if (nw_mqtt_new(&mo, &cb, &nwm, &err) != NW_OK) {
            fprintf(stderr, "loadgen: %s\n", err.msg);
            return 1;
        }
        nw_mqtt_start(nwm);
    }
    struct cpu_mark m0 = {0}, m1 = {0};
    double start = now_s(), connected_at = -1;
    while (!stop && now_s() - start < O.max_s) {
        double now = now_s();
        if (t_first_rx >= 0 && win_open < 0 && now - t_first_rx >= O.warmup) {
            win_open = now, rcv_at_open = rcv_total;
            cpu_mark(&m0);
        }
        if (win_open >= 0 && win_close < 0 && now - win_open >= O.duration) {
            win_close = now, rcv_at_close = rcv_total;
            cpu_mark(&m1);
        }
        if (win_close >= 0 && O.expect && rcv_total >= O.expect) {
            break;
        }
        if (win_close >= 0 && now - t_last_rx > O.idle_ms / 1000.0) {
            break;
        }
        if (win_close >= 0 && !O.expect && now - win_close > O.linger) {
            break; /* a backlog behind a slow subscriber is not waited out */
        }
        if (O.raw_sub) {
            if (sc.st == C_DEAD) {
                return 1;
            }
            int n = epoll_wait(ep, evs, 4, 20);
            for (int i = 0; i < n; i++) {
                if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                    conn_read(&sc, on_packet_sub);
                }
            }
            if (sc.olen > 0 || n > 0) {
                conn_flush(&sc);
            }
        } else if (O.mosq_sub) {
            mq_step();
        } else {
            nw_mqtt_poll(nwm, 20);
            if (!subscribed && nw_mqtt_connected(nwm)) {
                if (connected_at < 0) {
                    connected_at = now_s();
                } else if (now_s() - connected_at > 0.3) { /* SUBACK is not reported */
                    subscribed = true;
                    printf("READY\n");
                    fflush(stdout);
                }
            }
        }
    }
    if (win_close < 0) { /* ended early (signal, expect reached): window up to now */
        win_close = now_s(), rcv_at_close = rcv_total;
        cpu_mark(&m1);
        if (win_open < 0) {
            win_open = t_first_rx, rcv_at_open = 0;
            m0 = m1;
        }
    }
    qsort(lat, nlat, sizeof(*lat), cmp_i64);
    double w = win_close - win_open;
    printf("RESULT role=sub client=%s qos=%d received=%" PRIu64 " bytes=%" PRIu64
           " window_s=%.3f rate=%.1f lat_n=%zu p50_us=%.1f p90_us=%.1f p99_us=%.1f "
           "max_us=%.1f",
           O.raw_sub    ? "raw"
           : O.mosq_sub ? "mosq"
                        : "nwmqtt",
           O.qos, rcv_total, bytes_total, w, w > 0 ? (double)(rcv_at_close - rcv_at_open) / w : 0.0,
           nlat, pct(50), pct(90), pct(99), pct(100));
    cpu_print(&m0, &m1);
    printf("\n");
    if (mosq) {
        mosquitto_disconnect(mosq);
        mosquitto_loop_write(mosq, 1);
        mosquitto_destroy(mosq);
    } else if (nwm) {
        nw_mqtt_destroy(&nwm);
    } else if (sc.st == C_UP) {
        static const uint8_t disc[] = {0xE0, 0x00};
        (void)!send(sc.fd, disc, sizeof(disc), MSG_NOSIGNAL);
    }
    return 0;
}

/* ---- main --------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f, "usage: loadgen pub|sub --port P [options]  (see the comment in bench/loadgen.c)\n"
               "  pub: --clients N --qos 0|1 --window W --rate R --payload stamp|windows\n"
               "       --size B --batch K --warmup S --duration S --count M --nodelay\n"
               "       --print-size (payload bytes of one message, then exit)\n"
               "  sub: --qos 0|1 --client raw|nwmqtt|mosq --filter F --warmup S --duration S\n"
               "       --expect M --idle-ms T --linger S --max-s S --watch-pid PID\n"
               "       --receive-max R --nodelay\n");
}

int main(int argc, char **argv)
{
    if (argc < 2 || (strcmp(argv[1], "pub") && strcmp(argv[1], "sub"))) {
        usage(stderr);
        return 2;
    }
    O.pub = !strcmp(argv[1], "pub");
    static const struct option lo[] = {
        {"port", required_argument, NULL, 'p'},          {"clients", required_argument, NULL, 'n'},
        {"qos", required_argument, NULL, 'q'},           {"window", required_argument, NULL, 'w'},
        {"rate", required_argument, NULL, 'r'},          {"payload", required_argument, NULL, 'P'},
        {"size", required_argument, NULL, 's'},          {"batch", required_argument, NULL, 'b'},
        {"warmup", required_argument, NULL, 'W'},        {"duration", required_argument, NULL, 'd'},
        {"count", required_argument, NULL, 'c'},         {"client", required_argument, NULL, 'C'},
        {"filter", required_argument, NULL, 'f'},        {"expect", required_argument, NULL, 'e'},
        {"idle-ms", required_argument, NULL, 'i'},       {"max-s", required_argument, NULL, 'm'},
        {"watch-pid", required_argument, NULL, 'x'},     {"nodelay", no_argument, NULL, 'N'},
        {"device-prefix", required_argument, NULL, 'D'}, {"help", no_argument, NULL, 'h'},
        {"receive-max", required_argument, NULL, 'R'},   {"linger", required_argument, NULL, 'L'},
        {"print-size", no_argument, NULL, 'S'},          {NULL, 0, NULL, 0}};
    int ch;
    optind = 2;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'p':
            O.port = atoi(optarg);
            break;
        case 'n':
            O.clients = atoi(optarg);
            break;
        case 'q':
            O.qos = atoi(optarg);
            break;
        case 'w':
            O.window = atoi(optarg);
            break;
        case 'r':
            O.rate = strtod(optarg, NULL);
            break;
        case 'P':
            O.windows_payload = !strcmp(optarg, "windows");
            break;
        case 's':
            O.size = strtoul(optarg, NULL, 10);
            break;
        case 'b':
            O.batch = atoi(optarg);
            break;
        case 'W':
            O.warmup = strtod(optarg, NULL);
            break;
        case 'd':
            O.duration = strtod(optarg, NULL);
            break;
        case 'c':
            O.count = strtoull(optarg, NULL, 10);
            break;
        case 'C':
            O.raw_sub = !strcmp(optarg, "raw");
            O.mosq_sub = !strcmp(optarg, "mosq");
            if (!O.raw_sub && !O.mosq_sub && strcmp(optarg, "nwmqtt")) {
                fprintf(stderr, "loadgen: --client raw|nwmqtt|mosq\n");
                return 2;
            }
            break;
        case 'f':
            O.filter = optarg;
            break;
        case 'e':
            O.expect = strtoull(optarg, NULL, 10);
            break;
        case 'i':
            O.idle_ms = atoi(optarg);
            break;
        case 'm':
            O.max_s = strtod(optarg, NULL);
            break;
        case 'x':
            if (O.nwatch < MAX_WATCH) {
                O.watch[O.nwatch++] = atoi(optarg);
            }
            break;
        case 'N':
            O.nodelay = true;
            break;
        case 'D':
            O.device_prefix = optarg;
            break;
        case 'S':
            O.print_size = true;
            break;
        case 'L':
            O.linger = strtod(optarg, NULL);
            break;
        case 'R':
            O.receive_max = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (O.port < 1 || O.port > 65535 || O.clients < 1 || O.clients > MAX_CLIENTS || O.qos < 0 ||
        O.qos > 1 || O.window < 1 || O.batch < 1 || O.batch > 4096 || O.size > 200 * 1024 ||
        O.receive_max > 65535 || O.duration <= 0 || O.max_s <= 0 || O.max_s > 600) {
        fprintf(stderr, "loadgen: bad option value\n");
        return 2;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);
    ep = epoll_create1(0);
    if (ep < 0) {
        die("epoll_create1");
    }
    return O.pub ? run_pub() : run_sub();
}

/*
 * zap_probe.c - knocks on an aggregate process's worker endpoint the way an
 * ingest process would, with the security the test asks for, and reports
 * whether the handshake was accepted. The message it pushes is a real
 * one-window batch for DEVICE, so if it got through it would be stored:
 * the test then checks the store for DEVICE.
 *
 *   zap_probe ENDPOINT DEVICE MODE [SECRET_FILE PUBLIC_FILE SERVER_KEY_FILE]
 *
 * MODE: curve (the key files given, through collector/zsec.c as ingest
 * uses it), curve-unknown (a fresh key pair no one has allowed; the server
 * key from SERVER_KEY_FILE), null, plain. Prints "accepted" or "refused
 * (...)" and exits 0; 1 on a usage or local error. Waits at most 5 s.
 */
#include "pipeline.h"
#include "zsec.h"

#include <needlewatch/clock.h>

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

static int fail(const char *what)
{
    fprintf(stderr, "zap_probe: %s\n", what);
    return 1;
}

/* The server key for endpoint from a curve_server_key_file: its
 * "ENDPOINT KEY" line, else a bare "KEY" line; Z85 into out (41 bytes). */
static int read_key(const char *path, const char *endpoint, char *out)
{
    FILE *f = fopen(path, "r");
    char line[512];
    int found = 0; /* 1: the default, 2: the endpoint's own */
    while (f && found < 2 && fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (!line[0] || line[0] == '#') {
            continue;
        }
        size_t n = strcspn(line, " \t");
        const char *k = line[n] ? line + n + strspn(line + n, " \t") : line;
        bool mine = line[n] && n == strlen(endpoint) && !strncmp(line, endpoint, n);
        if (strlen(k) == 40 && (mine || (!line[n] && !found))) {
            snprintf(out, 41, "%s", k);
            found = mine ? 2 : 1;
        }
    }
    if (f) {
        fclose(f);
    }
    return found ? 0 : -1;
}

/* A CP_WINDOWS record's payload as ingest makes it (pipeline.h: struct
 * cp_windows): one window of DEVICE; rate NaN when bad, which ingest would
 * have refused and the worker must refuse too. */
static size_t payload(const char *device, uint64_t seq, bool bad, uint8_t *buf)
{
    struct nw_window w = {.seq = seq,
                          .start_ms = (nw_clock_realtime_ms() / 1000 - 60 + (int64_t)seq) * 1000,
                          .duration_ms = 1000,
                          .running_ms = 1000,
                          .cycles = 120,
                          .rate_mean_hz = bad ? NAN : 120,
                          .rate_min_hz = 119,
                          .rate_max_hz = 121,
                          .depth_mean_mm = 0.37,
                          .depth_min_mm = 0.36,
                          .depth_max_mm = 0.38};
    struct nw_window_batch b = {.epoch = 7, .count = 1, .capacity = 1, .windows = &w};
    snprintf(b.device_id, sizeof(b.device_id), "%s", device);
    cp_windows_put(buf, &b);
    return cp_windows_size(1);
}

static void teardown_timeout(int sig)
{
    (void)sig;
    static const char msg[] = "zap_probe: teardown took over 10 s; verdict already given\n";
    (void)!write(2, msg, sizeof(msg) - 1);
    _exit(0);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        return fail("usage: zap_probe ENDPOINT DEVICE curve|curve-unknown|null|plain "
                    "[SECRET PUBLIC SERVER_KEYS]");
    }
    const char *ep = argv[1], *device = argv[2], *mode = argv[3];
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_PUSH);
    struct zsec *z = NULL;
    struct nw_error err = {0};
    int linger = 2000;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof(linger));
    if (!strcmp(mode, "curve")) {
        if (argc < 7) {
            return fail("curve needs SECRET PUBLIC SERVER_KEYS");
        }
        struct zsec_options o = {
            .secret_file = argv[4], .public_file = argv[5], .server_key_file = argv[6]};
        if (zsec_new(&o, &z, &err) != NW_OK || zsec_apply(z, s, ep, false, &err) != NW_OK) {
            return fail(err.msg);
        }
    } else if (!strcmp(mode, "curve-unknown")) {
        char pub[41], sec[41], srv[41];
        if (argc < 7 || read_key(argv[6], ep, srv) != 0 || zmq_curve_keypair(pub, sec) != 0) {
            return fail("curve-unknown needs SERVER_KEYS (the 6th argument)");
        }
        zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, srv, 40);
        zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, pub, 40);
        zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, sec, 40);
    } else if (!strcmp(mode, "plain")) {
        zmq_setsockopt(s, ZMQ_PLAIN_USERNAME, "needlewatch-collector", 21);
        zmq_setsockopt(s, ZMQ_PLAIN_PASSWORD, "guess", 5);
    } else if (strcmp(mode, "null") != 0) {
        return fail("MODE: curve, curve-unknown, null or plain");
    }
    if (zmq_socket_monitor(s, "inproc://probe-mon", ZMQ_EVENT_ALL) != 0) {
        return fail("zmq_socket_monitor");
    }
    void *mon = zmq_socket(ctx, ZMQ_PAIR);
    zmq_connect(mon, "inproc://probe-mon");
    if (zmq_connect(s, ep) != 0) {
        return fail(zmq_strerror(zmq_errno()));
    }
    /* One batch of one message, as ingest sends it (pipeline.h); with
     * NW_PROBE_LYING_BATCH set a second record holds a window that does not
     * validate (NaN), and the header claims a third message that is not
     * there (a peer of another build): the worker must store the first,
     * reject the other two as malformed, and go on. */
    bool lie = getenv("NW_PROBE_LYING_BATCH") != NULL;
    struct cp_in_batch b = {.nmsgs = lie ? 3 : 1};
    uint8_t body[sizeof(struct cp_windows) + sizeof(struct nw_window)];
    uint8_t msg[sizeof(b) + 2 * (sizeof(struct cp_in) + sizeof(body))];
    size_t used = sizeof(b);
    memcpy(msg, &b, sizeof(b));
    for (uint64_t seq = 1; seq <= (lie ? 2u : 1u); seq++) {
        struct cp_in hdr = {.type = CP_WINDOWS, .arrival_ms = nw_clock_realtime_ms()};
        hdr.len = (uint32_t)payload(device, seq, seq == 2, body);
        cp_in_put(msg, &used, &hdr, body, NULL); /* no rejected windows */
    }
    zmq_send(s, msg, used, 0);
    const char *outcome = NULL;
    char why[96] = "no handshake completed in 5 s";
    int64_t until = nw_clock_mono_ms() + 5000;
    while (!outcome && nw_clock_mono_ms() < until) {
        zmq_pollitem_t it = {.socket = mon, .events = ZMQ_POLLIN};
        if (zmq_poll(&it, 1, 100) <= 0) {
            continue;
        }
        zmq_msg_t ev, addr;
        zmq_msg_init(&ev);
        zmq_msg_init(&addr);
        zmq_msg_recv(&ev, mon, 0);
        zmq_msg_recv(&addr, mon, 0);
        uint16_t event = 0;
        uint32_t value = 0;
        memcpy(&event, zmq_msg_data(&ev), 2);
        memcpy(&value, (char *)zmq_msg_data(&ev) + 2, 4);
        if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
            outcome = "accepted";
        } else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
            snprintf(why, sizeof(why), "authentication failed, ZAP status %u", value);
        } else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) {
            snprintf(why, sizeof(why), "protocol error 0x%x", value);
        } else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) {
            snprintf(why, sizeof(why), "handshake failed (errno %u)", value);
        }
        if (!outcome &&
            (event & (ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                      ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL))) {
            int64_t soon = nw_clock_mono_ms() + 1500; /* a retry fares no better */
            until = soon < until ? soon : until;
        }
        zmq_msg_close(&ev);
        zmq_msg_close(&addr);
    }
    if (outcome) {
        printf("accepted\n");
    } else {
        printf("refused (%s)\n", why);
        linger = 0; /* nothing may go out any more */
        zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof(linger));
    }
    /* The verdict is out; the teardown below is not what is tested. A fresh
     * CI run under ASan saw it hang past the test's 30 s bound after a
     * refused handshake, losing the unflushed verdict with it: flush, and
     * give the teardown 10 s. */
    fflush(stdout);
    signal(SIGALRM, teardown_timeout);
    alarm(10);
    zmq_socket_monitor(s, NULL, 0);
    zmq_close(mon);
    zmq_close(s);
    zsec_destroy(&z);
    zmq_ctx_term(ctx); /* accepted: waits up to the linger for the window to leave */
    return 0;
}

/*
 * mqtt.c - libmosquitto behind a poll-driven, bounded, MQTT 5 connection.
 *
 * States: WAIT (next attempt at retry_at), CONNECTING (socket open, CONNACK
 * pending), CONNECTED. Every failure goes to WAIT with a delay that doubles
 * from backoff_min to backoff_max and is jittered over its upper half, so a
 * fleet that lost its broker does not reconnect in lock-step.
 *
 * libmosquitto keeps the QoS 1 messages it has sent until their PUBACK; we
 * only publish while connected and below max_inflight, so that store holds
 * at most max_inflight messages per connection. A list of the outstanding
 * message ids (max_inflight ints, not a 64 Ki-bit map: a simulator runs
 * thousands of connections) tells QoS 1 PUBACKs from QoS 0 "sent"
 * callbacks; it is emptied on every loss, so a PUBACK that never comes
 * cannot wedge the window shut.
 */
#include <needlewatch/mqtt.h>

#include <needlewatch/clock.h>
#include <needlewatch/sockbuf.h>

#include <mosquitto.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_KEEPALIVE_S 30
#define DEFAULT_BACKOFF_MIN_MS 500
#define DEFAULT_BACKOFF_MAX_MS 30000
#define DEFAULT_MAX_INFLIGHT 16
#define CRED_MAX 256
#define HOST_MAX 256

enum state { ST_WAIT, ST_CONNECTING, ST_CONNECTED, ST_STOPPED };

struct nw_mqtt {
    struct mosquitto *mosq;
    struct nw_mqtt_callbacks cb;
    char host[HOST_MAX];
    int port;
    int keepalive_s;
    uint32_t backoff_min_ms, backoff_max_ms, backoff_ms;
    int max_inflight;
    int inflight;
    enum state state;
    bool down_reported; /* one log line per outage, not one per retry */
    int64_t retry_at;
    uint64_t rng;
    int *mids;             /* QoS 1 publishes awaiting PUBACK: inflight of max_inflight */
    struct nw_sockbuf *sb; /* options.buffered_io (sockbuf.h) */
    struct nw_mqtt_stats stats;
};

static void nw_mqtt_lib_init(void)
{
    static bool done;
    if (!done) {
        mosquitto_lib_init(); /* idempotent in 2.0; called once per process */
        done = true;
    }
}

enum nw_err nw_mqtt_parse_url(const char *url, char *host, size_t cap, int *out_port, bool *out_tls,
                              struct nw_error *out_err)
{
    const char *rest;
    if (url && strncmp(url, "mqtt://", 7) == 0) {
        *out_tls = false, *out_port = 1883, rest = url + 7;
    } else if (url && strncmp(url, "mqtts://", 8) == 0) {
        *out_tls = true, *out_port = 8883, rest = url + 8;
    } else {
        return nw_error_set(out_err, NW_ERR_CONFIG,
                            "broker URL \"%s\": expected mqtt://HOST[:PORT] or mqtts://HOST[:PORT]",
                            url ? url : "");
    }
    const char *colon = strrchr(rest, ':');
    size_t hlen = colon ? (size_t)(colon - rest) : strlen(rest);
    if (hlen == 0 || hlen >= cap || strchr(rest, '/') || strchr(rest, '@')) {
        return nw_error_set(out_err, NW_ERR_CONFIG,
                            "broker URL \"%s\": bad host (no paths or user@ here: credentials "
                            "come from a file)",
                            url);
    }
    memcpy(host, rest, hlen);
    host[hlen] = '\0';
    if (colon) {
        char *end;
        long p = strtol(colon + 1, &end, 10);
        if (*end != '\0' || p < 1 || p > 65535) {
            return nw_error_set(out_err, NW_ERR_CONFIG, "broker URL \"%s\": bad port", url);
        }
        *out_port = (int)p;
    }
    return NW_OK;
}

/* Reads "username\npassword" without ever logging either. */
static enum nw_err read_credentials(const char *path, char user[CRED_MAX], char pass[CRED_MAX],
                                    struct nw_error *out_err)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        return nw_error_set(out_err, NW_ERR_CONFIG, "credentials file %s: cannot open", path);
    }
    bool ok = fgets(user, CRED_MAX, f) != NULL;
    if (ok && !fgets(pass, CRED_MAX, f)) {
        pass[0] = '\0';
    }
    fclose(f);
    user[strcspn(user, "\r\n")] = '\0';
    pass[strcspn(pass, "\r\n")] = '\0';
    if (!ok || user[0] == '\0') {
        return nw_error_set(out_err, NW_ERR_CONFIG,
                            "credentials file %s: first line must be the username", path);
    }
    return NW_OK;
}

/* ---- libmosquitto callbacks ------------------------------------------ */

static void schedule_retry(struct nw_mqtt *m)
{
    if (m->state == ST_STOPPED) {
        return;
    }
    m->state = ST_WAIT;
    uint32_t half = m->backoff_ms / 2;
    m->rng = m->rng * 6364136223846793005ULL + 1442695040888963407ULL;
    uint32_t jitter = half ? (uint32_t)((m->rng >> 33) % (half + 1)) : 0;
    m->retry_at = nw_clock_mono_ms() + half + jitter;
    m->backoff_ms = m->backoff_ms * 2 > m->backoff_max_ms ? m->backoff_max_ms : m->backoff_ms * 2;
}

static void lost(struct nw_mqtt *m, const char *reason)
{
    if (m->state == ST_WAIT || m->state == ST_STOPPED) {
        return; /* already handled: libmosquitto may report a loss twice */
    }
    /* Our window restarts empty: what libmosquitto re-sends after the
     * reconnect is answered under mids we no longer count, and the caller
     * replays unacknowledged data from its own queue anyway. */
    m->inflight = 0;
    /* (inflight = 0 above empties the list of outstanding mids) */
    if (m->sb) {
        nw_sockbuf_reset(m->sb); /* bytes of the lost connection */
    }
    bool was_up = m->state == ST_CONNECTED || (m->state == ST_CONNECTING && !m->down_reported);
    if (m->state == ST_CONNECTED) {
        m->stats.disconnects++;
    }
    schedule_retry(m);
    if (was_up && m->cb.on_disconnect) {
        m->down_reported = true;
        m->cb.on_disconnect(m->cb.user, reason);
    }
}

static void on_connect(struct mosquitto *mosq, void *obj, int rc, int flags,
                       const mosquitto_property *props)
{
    (void)mosq, (void)flags, (void)props;
    struct nw_mqtt *m = obj;
    if (rc != 0) {
        char why[128];
        snprintf(why, sizeof(why), "connection refused: %s (0x%02x)", mosquitto_reason_string(rc),
                 rc);
        mosquitto_disconnect(m->mosq);
        lost(m, why);
        return;
    }
    m->state = ST_CONNECTED;
    m->down_reported = false;
    m->backoff_ms = m->backoff_min_ms;
    m->stats.connects++;
    if (m->cb.on_connect) {
        m->cb.on_connect(m->cb.user);
    }
}

static void on_disconnect(struct mosquitto *mosq, void *obj, int rc,
                          const mosquitto_property *props)
{
    (void)mosq, (void)props;
    struct nw_mqtt *m = obj;
    char why[128];
    snprintf(why, sizeof(why), "disconnected: %s", rc ? mosquitto_strerror(rc) : "by request");
    lost(m, why);
}

/* Removes mid from the outstanding QoS 1 publishes; false if it was not
 * one (a QoS 0 "sent" callback, or a PUBACK from before a reconnect). */
static bool take_mid(struct nw_mqtt *m, int mid)
{
    for (int i = 0; i < m->inflight; i++) {
        if (m->mids[i] == mid) {
            m->mids[i] = m->mids[--m->inflight];
            return true;
        }
    }
    return false;
}

static void on_publish(struct mosquitto *mosq, void *obj, int mid, int reason_code,
                       const mosquitto_property *props)
{
    (void)mosq, (void)props;
    struct nw_mqtt *m = obj;
    if (!take_mid(m, mid)) {
        return;
    }
    if (reason_code >= 0x80) {
        m->stats.puback_refused++;
    } else {
        m->stats.puback_ok++;
    }
    if (m->cb.on_publish) {
        m->cb.on_publish(m->cb.user, mid, reason_code);
    }
}

static void on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *msg,
                       const mosquitto_property *props)
{
    (void)mosq, (void)props;
    struct nw_mqtt *m = obj;
    m->stats.received++;
    if (m->cb.on_message) {
        m->cb.on_message(m->cb.user, msg->topic, msg->payload, (size_t)msg->payloadlen);
    }
}

/* ---- lifecycle -------------------------------------------------------- */

static enum nw_err configure(struct nw_mqtt *m, const struct nw_mqtt_options *opt, bool tls,
                             struct nw_error *out_err)
{
    mosquitto_int_option(m->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    mosquitto_int_option(m->mosq, MOSQ_OPT_TCP_NODELAY, opt->tcp_nodelay ? 1 : 0);
    if (opt->receive_maximum > 0) {
        mosquitto_int_option(m->mosq, MOSQ_OPT_RECEIVE_MAXIMUM,
                             opt->receive_maximum > 65535 ? 65535 : opt->receive_maximum);
    }
    mosquitto_max_inflight_messages_set(m->mosq, (unsigned)m->max_inflight);
    if (tls) {
        if (!opt->ca_file) {
            return nw_error_set(out_err, NW_ERR_CONFIG, "%s: mqtts:// needs a CA file", opt->url);
        }
        int rc =
            mosquitto_tls_set(m->mosq, opt->ca_file, NULL, opt->cert_file, opt->key_file, NULL);
        if (rc == MOSQ_ERR_SUCCESS) {
            rc = mosquitto_tls_opts_set(m->mosq, 1, "tlsv1.2", NULL);
        }
        if (rc != MOSQ_ERR_SUCCESS) {
            return nw_error_set(out_err, NW_ERR_CONFIG, "TLS files (CA %s, cert %s, key %s): %s",
                                opt->ca_file, opt->cert_file ? opt->cert_file : "-",
                                opt->key_file ? opt->key_file : "-", mosquitto_strerror(rc));
        }
    }
    if (opt->credentials_file) {
        char user[CRED_MAX], pass[CRED_MAX];
        enum nw_err rc = read_credentials(opt->credentials_file, user, pass, out_err);
        if (rc == NW_OK) {
            mosquitto_username_pw_set(m->mosq, user, pass[0] ? pass : NULL);
        }
        memset(pass, 0, sizeof(pass));
        if (rc != NW_OK) {
            return rc;
        }
    }
    mosquitto_connect_v5_callback_set(m->mosq, on_connect);
    mosquitto_disconnect_v5_callback_set(m->mosq, on_disconnect);
    mosquitto_publish_v5_callback_set(m->mosq, on_publish);
    mosquitto_message_v5_callback_set(m->mosq, on_message);
    return NW_OK;
}

enum nw_err nw_mqtt_new(const struct nw_mqtt_options *opt, const struct nw_mqtt_callbacks *cb,
                        struct nw_mqtt **out, struct nw_error *out_err)
{
    nw_mqtt_lib_init();
    struct nw_mqtt *m = calloc(1, sizeof(*m));
    if (!m) {
        return nw_error_set(out_err, NW_ERR_NOMEM, "mqtt: out of memory");
    }
    bool tls = false;
    enum nw_err rc = nw_mqtt_parse_url(opt->url, m->host, sizeof(m->host), &m->port, &tls, out_err);
    if (rc != NW_OK) {
        free(m);
        return rc;
    }
    if (cb) {
        m->cb = *cb;
    }
    m->keepalive_s = opt->keepalive_s > 0 ? opt->keepalive_s : DEFAULT_KEEPALIVE_S;
    m->backoff_min_ms = opt->backoff_min_ms ? opt->backoff_min_ms : DEFAULT_BACKOFF_MIN_MS;
    m->backoff_max_ms = opt->backoff_max_ms ? opt->backoff_max_ms : DEFAULT_BACKOFF_MAX_MS;
    m->backoff_ms = m->backoff_min_ms;
    m->max_inflight = opt->max_inflight > 0 ? opt->max_inflight : DEFAULT_MAX_INFLIGHT;
    m->mids = calloc((size_t)m->max_inflight, sizeof(*m->mids));
    if (!m->mids) {
        free(m);
        return nw_error_set(out_err, NW_ERR_NOMEM, "mqtt: out of memory");
    }
    /* Not under TLS: OpenSSL reads whole records, and its buffering is its
     * own business. */
    bool sb = opt->buffered_io && !tls;
    m->sb = sb ? nw_sockbuf_new() : NULL;
    if (sb && !m->sb) {
        free(m->mids);
        free(m);
        return nw_error_set(out_err, NW_ERR_NOMEM, "mqtt: out of memory");
    }
    m->rng = (uint64_t)nw_clock_mono_ns() ^ (uint64_t)(uintptr_t)m;
    m->state = ST_STOPPED;
    /* Clean start: the agent replays from its own queue, and DESIGN §4 shows
     * persistent sessions losing messages on 2.0.x. */
    m->mosq = mosquitto_new(opt->client_id, true, m);
    if (!m->mosq) {
        free(m->mids);
        nw_sockbuf_destroy(&m->sb);
        free(m);
        return nw_error_set(out_err, NW_ERR_CONFIG, "mqtt: cannot create client \"%s\"",
                            opt->client_id ? opt->client_id : "");
    }
    rc = configure(m, opt, tls, out_err);
    if (rc != NW_OK) {
        nw_mqtt_destroy(&m);
        return rc;
    }
    *out = m;
    return NW_OK;
}

void nw_mqtt_destroy(struct nw_mqtt **p)
{
    if (!p || !*p) {
        return;
    }
    struct nw_mqtt *m = *p;
    nw_mqtt_stop(m);
    mosquitto_destroy(m->mosq);
    free(m->mids);
    nw_sockbuf_destroy(&m->sb);
    free(m);
    *p = NULL;
}

enum nw_err nw_mqtt_set_will(struct nw_mqtt *m, const char *topic, const void *payload, size_t len,
                             bool retain, struct nw_error *out_err)
{
    int rc = mosquitto_will_set_v5(m->mosq, topic, (int)len, payload, 1, retain, NULL);
    if (rc != MOSQ_ERR_SUCCESS) {
        return nw_error_set(out_err, NW_ERR_INVAL, "mqtt will on %s: %s", topic,
                            mosquitto_strerror(rc));
    }
    return NW_OK;
}

static void attempt(struct nw_mqtt *m)
{
    if (m->sb) {
        nw_sockbuf_reset(m->sb); /* a new socket, maybe under the old fd */
    }
    int rc = mosquitto_connect_async(m->mosq, m->host, m->port, m->keepalive_s);
    if (rc != MOSQ_ERR_SUCCESS) {
        m->state = ST_CONNECTING; /* so lost() reports it */
        char why[HOST_MAX + 96];
        snprintf(why, sizeof(why), "connect to %s:%d failed: %s", m->host, m->port,
                 rc == MOSQ_ERR_ERRNO ? "network error" : mosquitto_strerror(rc));
        lost(m, why);
        return;
    }
    m->state = ST_CONNECTING;
}

void nw_mqtt_start(struct nw_mqtt *m)
{
    m->backoff_ms = m->backoff_min_ms;
    attempt(m);
}

void nw_mqtt_stop(struct nw_mqtt *m)
{
    bool open = m->state == ST_CONNECTED || m->state == ST_CONNECTING;
    m->state = ST_STOPPED; /* first: a stop is not a loss to report */
    if (open) {
        mosquitto_disconnect_v5(m->mosq, 0, NULL);
        /* Flush the DISCONNECT so the broker does not publish the will. */
        mosquitto_loop_write(m->mosq, 1);
    }
    if (m->sb) {
        nw_sockbuf_flush(m->sb); /* PUBACKs held behind a full socket, if any */
        nw_sockbuf_reset(m->sb);
    }
}

/* ---- the loop ---------------------------------------------------------- */

int nw_mqtt_fd(const struct nw_mqtt *m)
{
    if (m->state != ST_CONNECTING && m->state != ST_CONNECTED) {
        return -1;
    }
    return mosquitto_socket(m->mosq);
}

bool nw_mqtt_want_write(struct nw_mqtt *m)
{
    return nw_mqtt_fd(m) >= 0 &&
           (mosquitto_want_write(m->mosq) || (m->sb && nw_sockbuf_pending_out(m->sb) > 0));
}

int nw_mqtt_timeout_ms(const struct nw_mqtt *m)
{
    if (m->state == ST_WAIT) {
        int64_t d = m->retry_at - nw_clock_mono_ms();
        return d < 0 ? 0 : (d > 1000 ? 1000 : (int)d);
    }
    if (m->sb && nw_sockbuf_pending_in(m->sb) > 0) {
        return 0; /* read ahead, invisible to poll() */
    }
    return 1000; /* keepalive bookkeeping in loop_misc */
}

void nw_mqtt_step(struct nw_mqtt *m, bool readable, bool writable)
{
    if (m->state == ST_WAIT && nw_clock_mono_ms() >= m->retry_at) {
        attempt(m);
    }
    if (nw_mqtt_fd(m) < 0) {
        return;
    }
    int rc = MOSQ_ERR_SUCCESS;
    /* mosquitto_loop_read() reads about one packet per call when little of
     * ours is in flight (2.0.x sizes its loop by its own queues, not by
     * max_packets). Reading on while packets keep arriving saves a poll()
     * per packet at a fleet's rate; the call that finds nothing costs one
     * read() that returns EAGAIN. */
    readable = readable || (m->sb && nw_sockbuf_pending_in(m->sb) > 0);
    if (readable && m->sb) {
        nw_sockbuf_begin(m->sb, nw_mqtt_fd(m)); /* the burst's PUBACKs go out in one send() */
    }
    for (int i = 0; readable && i < NW_MQTT_READ_BURST; i++) {
        uint64_t seen = m->stats.received + m->stats.puback_ok + m->stats.puback_refused;
        rc = mosquitto_loop_read(m->mosq, 1);
        if (rc != MOSQ_ERR_SUCCESS || nw_mqtt_fd(m) < 0 ||
            seen == m->stats.received + m->stats.puback_ok + m->stats.puback_refused) {
            break;
        }
    }
    if (readable && m->sb) {
        nw_sockbuf_end(m->sb);
    }
    if (writable && m->sb) {
        nw_sockbuf_flush(m->sb);
    }
    if (rc == MOSQ_ERR_SUCCESS && nw_mqtt_fd(m) >= 0 &&
        (writable || mosquitto_want_write(m->mosq))) {
        rc = mosquitto_loop_write(m->mosq, 1);
    }
    if (rc == MOSQ_ERR_SUCCESS && nw_mqtt_fd(m) >= 0) {
        rc = mosquitto_loop_misc(m->mosq);
    }
    if (rc != MOSQ_ERR_SUCCESS && m->state != ST_WAIT && m->state != ST_STOPPED) {
        char why[128];
        snprintf(why, sizeof(why), "connection lost: %s", mosquitto_strerror(rc));
        lost(m, why);
    }
}

void nw_mqtt_poll(struct nw_mqtt *m, int timeout_ms)
{
    int fd = nw_mqtt_fd(m);
    int t = nw_mqtt_timeout_ms(m);
    if (timeout_ms < t) {
        t = timeout_ms;
    }
    if (fd < 0) {
        if (t > 0) {
            poll(NULL, 0, t);
        }
        nw_mqtt_step(m, false, false);
        return;
    }
    struct pollfd p = {.fd = fd, .events = POLLIN | (nw_mqtt_want_write(m) ? POLLOUT : 0)};
    int n = poll(&p, 1, t);
    bool err = n > 0 && (p.revents & (POLLERR | POLLHUP));
    nw_mqtt_step(m, n > 0 && (p.revents & POLLIN || err), n > 0 && (p.revents & POLLOUT));
}

bool nw_mqtt_connected(const struct nw_mqtt *m)
{
    return m->state == ST_CONNECTED;
}

int nw_mqtt_inflight(const struct nw_mqtt *m)
{
    return m->inflight;
}

bool nw_mqtt_can_publish(const struct nw_mqtt *m)
{
    return m->state == ST_CONNECTED && m->inflight < m->max_inflight;
}

enum nw_err nw_mqtt_publish(struct nw_mqtt *m, const char *topic, const void *payload, size_t len,
                            int qos, bool retain, int *out_mid, struct nw_error *out_err)
{
    if (m->state != ST_CONNECTED || (qos > 0 && m->inflight >= m->max_inflight)) {
        return nw_error_set(out_err, NW_ERR_RETRY, "mqtt: %s",
                            m->state != ST_CONNECTED ? "not connected" : "in-flight window full");
    }
    int mid = 0;
    int rc = mosquitto_publish_v5(m->mosq, &mid, topic, (int)len, payload, qos, retain, NULL);
    if (rc != MOSQ_ERR_SUCCESS) {
        enum nw_err code = rc == MOSQ_ERR_PAYLOAD_SIZE || rc == MOSQ_ERR_OVERSIZE_PACKET
                               ? NW_ERR_TOO_BIG
                               : NW_ERR_RETRY;
        return nw_error_set(out_err, code, "mqtt publish to %s: %s", topic, mosquitto_strerror(rc));
    }
    if (qos > 0) {
        m->mids[m->inflight++] = mid; /* room: checked against max_inflight above */
    }
    m->stats.published++;
    if (out_mid) {
        *out_mid = mid;
    }
    return NW_OK;
}

enum nw_err nw_mqtt_subscribe(struct nw_mqtt *m, const char *filter, int qos,
                              struct nw_error *out_err)
{
    int rc = mosquitto_subscribe_v5(m->mosq, NULL, filter, qos, 0, NULL);
    if (rc != MOSQ_ERR_SUCCESS) {
        return nw_error_set(out_err, NW_ERR_RETRY, "mqtt subscribe %s: %s", filter,
                            mosquitto_strerror(rc));
    }
    return NW_OK;
}

void nw_mqtt_get_stats(const struct nw_mqtt *m, struct nw_mqtt_stats *out)
{
    *out = m->stats;
}

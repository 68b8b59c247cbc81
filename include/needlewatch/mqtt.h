/*
 * mqtt.h - an MQTT 5 client connection for agents, simulators and the
 * collector, on libmosquitto, driven from the caller's own poll loop.
 *
 * Why a wrapper: libmosquitto 2.0.11 needs the same care in every program
 * that uses it (DESIGN §4): speak MQTT 5 so a refused publish comes back as
 * a reason code; never publish while disconnected (the library would queue
 * without limit); re-subscribe on every connect (LESSONS.md); reconnect with
 * exponential backoff and jitter; keep credentials out of argv. This module
 * does that once.
 *
 * Threading: none inside. The caller polls nw_mqtt_fd() for reading (and
 * for writing when nw_mqtt_want_write()), then calls nw_mqtt_step(), at the
 * latest after nw_mqtt_timeout_ms(). Callbacks run inside nw_mqtt_step().
 *
 * Broker URLs: mqtt://HOST[:PORT] (default 1883), mqtts://HOST[:PORT]
 * (default 8883; needs a CA file). Credentials file: first line the
 * username, second line the password (trailing newline optional); the file
 * should be mode 0600 and is read once at creation.
 */
#ifndef NW_MQTT_H
#define NW_MQTT_H

#include <needlewatch/err.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct nw_mqtt;

struct nw_mqtt_callbacks {
    void *user;
    /* Connected (CONNACK success). Subscribe here: every time. */
    void (*on_connect)(void *user);
    /* Connection lost or refused; reason is a one-line description. */
    void (*on_disconnect)(void *user, const char *reason);
    /* A message arrived; topic and payload are borrowed for the call only. */
    void (*on_message)(void *user, const char *topic, const void *payload, size_t len);
    /* PUBACK for a QoS 1 publish: reason_code < 0x80 is success. */
    void (*on_publish)(void *user, int mid, int reason_code);
};

struct nw_mqtt_options {
    const char *url;              /* mqtt://host:port or mqtts://host:port */
    const char *client_id;        /* required: the device id for agents */
    const char *ca_file;          /* mqtts: CA certificate (PEM) */
    const char *cert_file;        /* mqtts: client certificate (PEM), optional */
    const char *key_file;         /* mqtts: client key (PEM), optional */
    const char *credentials_file; /* username and password, optional */
    int keepalive_s;              /* default 30 */
    bool tcp_nodelay;             /* latency over QoS 0 throughput (DESIGN §9) */
    uint32_t backoff_min_ms;      /* default 500 */
    uint32_t backoff_max_ms;      /* default 30000 */
    int max_inflight;             /* QoS 1 publishes awaiting PUBACK; default 16 */
    /* QoS 1 messages the broker may have in flight to us (MQTT 5 Receive
     * Maximum); 0: libmosquitto's 20, which caps a busy subscriber at a
     * few thousand msg/s on mosquitto 2.0.11 (bench/README.md). */
    int receive_maximum;
    /* Read the socket 64 KiB at a time instead of libmosquitto's three or
     * four read()s per packet, and send the PUBACKs of a read burst in one
     * write (sockbuf.h): for a busy subscriber. Plain mqtt:// only;
     * ignored for mqtts://. */
    bool buffered_io;
};

/*
 * Creates a client (not yet connecting). All option strings are copied; the
 * credentials file is read now. NW_ERR_CONFIG for a bad URL, missing CA
 * file or unreadable credentials, naming which. The caller owns *out and
 * frees it with nw_mqtt_destroy().
 */
enum nw_err nw_mqtt_new(const struct nw_mqtt_options *opt, const struct nw_mqtt_callbacks *cb,
                        struct nw_mqtt **out, struct nw_error *out_err);

/* Disconnects cleanly if connected (the will is not sent), frees *p,
 * sets *p = NULL. NULL-safe. */
void nw_mqtt_destroy(struct nw_mqtt **p);

/* Sets the last will (payload copied); used from the next connect on. */
enum nw_err nw_mqtt_set_will(struct nw_mqtt *m, const char *topic, const void *payload, size_t len,
                             bool retain, struct nw_error *out_err);

/* Starts connecting (non-blocking); later attempts follow by themselves. */
void nw_mqtt_start(struct nw_mqtt *m);

/* The socket to poll, or -1 while not connected. */
int nw_mqtt_fd(const struct nw_mqtt *m);
bool nw_mqtt_want_write(struct nw_mqtt *m);

/* Milliseconds until nw_mqtt_step() must run again (keepalive, retry). */
int nw_mqtt_timeout_ms(const struct nw_mqtt *m);

/* Does the I/O the poll reported, keepalive and reconnects. */
void nw_mqtt_step(struct nw_mqtt *m, bool readable, bool writable);

/* Convenience: polls the socket up to timeout_ms, then steps. */
void nw_mqtt_poll(struct nw_mqtt *m, int timeout_ms);

bool nw_mqtt_connected(const struct nw_mqtt *m);

/* QoS 1 publishes sent and not yet answered by PUBACK. */
int nw_mqtt_inflight(const struct nw_mqtt *m);

/* Whether a QoS 1 publish may go now: connected and below max_inflight. */
bool nw_mqtt_can_publish(const struct nw_mqtt *m);

/*
 * Publishes payload (copied by libmosquitto) to topic. QoS 1 needs
 * nw_mqtt_can_publish(); otherwise NW_ERR_RETRY and nothing is queued.
 * *out_mid (may be NULL) identifies the publish in on_publish.
 */
enum nw_err nw_mqtt_publish(struct nw_mqtt *m, const char *topic, const void *payload, size_t len,
                            int qos, bool retain, int *out_mid, struct nw_error *out_err);

/* Subscribes (call from on_connect); NW_ERR_RETRY when not connected. */
enum nw_err nw_mqtt_subscribe(struct nw_mqtt *m, const char *filter, int qos,
                              struct nw_error *out_err);

/* Disconnects with reason 0 (no will), stops reconnecting. */
void nw_mqtt_stop(struct nw_mqtt *m);

/* Counters since creation. */
/* nw_mqtt_step() reads at most this many packets per readable wake-up,
 * fewer when the socket runs dry first. */
#define NW_MQTT_READ_BURST 64

struct nw_mqtt_stats {
    uint64_t connects;
    uint64_t disconnects;
    uint64_t published;
    uint64_t puback_ok;
    uint64_t puback_refused; /* reason code >= 0x80 */
    uint64_t received;
};
void nw_mqtt_get_stats(const struct nw_mqtt *m, struct nw_mqtt_stats *out);

/* Parses a broker URL into host (cap bytes), port and TLS flag. */
enum nw_err nw_mqtt_parse_url(const char *url, char *host, size_t cap, int *out_port, bool *out_tls,
                              struct nw_error *out_err);

#endif

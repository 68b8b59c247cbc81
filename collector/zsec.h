/*
 * zsec.h - CURVE encryption and ZAP authentication (RFC 26, RFC 27) for the
 * tcp:// pipeline sockets between collector processes (DESIGN §7, §8).
 *
 * Each collector process has its own CURVE key pair (Z85 text files; the
 * secret one mode 0600). The side of a tcp:// PUSH/PULL link that binds is
 * the CURVE server (aggregate workers' collector.listen, ingest's
 * collector.ack_listen); the side that connects is the client and must know
 * the server's public key (collector.curve_server_key_file). A server admits
 * only peers whose public key is in its allow-list (collector.curve_peers).
 *
 * Who decides: a ZAP handler thread on inproc://zeromq.zap.01 of the
 * process's ZeroMQ context answers 200 only for the CURVE mechanism, the
 * domain ZSEC_DOMAIN and a key in the allow-list, and 400 for anything else
 * (NULL, PLAIN, unknown keys). A NULL or PLAIN client never even reaches it:
 * a CURVE server socket refuses the mechanism in the ZMTP greeting. Server
 * sockets also set ZMQ_ZAP_DOMAIN and ZMQ_ZAP_ENFORCE_DOMAIN=1, so if the
 * handler is not there, libzmq (4.3.4, checked) refuses every peer instead
 * of accepting it unauthenticated: the link fails closed.
 *
 * Counting: a socket monitor on every server socket counts completed
 * handshakes and refusals the handler cannot see (mechanism, broken
 * handshakes, no handler); the handler counts the keys it refuses and logs
 * each refused key once per minute. Secret keys are never logged.
 *
 * Threads: zsec_new/zsec_start/zsec_destroy from one thread; zsec_apply and
 * zsec_metrics_render from any thread after zsec_start (the keys are
 * immutable then; counters are atomics).
 */
#ifndef COLLECTOR_ZSEC_H
#define COLLECTOR_ZSEC_H

#include <needlewatch/err.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ZSEC_DOMAIN "needlewatch"
#define ZSEC_KEY_Z85 40          /* characters of a Z85 CURVE key */
#define ZSEC_MAX_PEERS 256       /* keys in the allow-list */
#define ZSEC_MAX_SERVER_KEYS 128 /* lines of curve_server_key_file */
#define ZSEC_MAX_MONITORS 128    /* server sockets watched */

struct zsec;

struct zsec_options {
    const char *secret_file;     /* this process's secret key; must be mode 0600 (or stricter) */
    const char *public_file;     /* its public key; must belong to the secret key */
    const char *server_key_file; /* lines "KEY" (every server) or "ENDPOINT KEY"; NULL: none */
    const char *peers;           /* allow-list: a directory of NAME.pub files, or a file
                                    with one "KEY [NAME]" per line; NULL: none */
};

/*
 * Loads and checks every key file of *o (borrowed): Z85 syntax and length,
 * the secret file's mode, that the public key belongs to the secret key.
 * On success *out is a new caller-owned struct zsec (free it with
 * zsec_destroy); on failure NW_ERR_CONFIG (or NW_ERR_NOT_FOUND, NW_ERR_IO)
 * with the file and the config key named in out_err, and *out untouched.
 */
enum nw_err zsec_new(const struct zsec_options *o, struct zsec **out, struct nw_error *out_err);

/*
 * Starts the ZAP handler and monitor thread in zctx (borrowed; it must
 * outlive the zsec, and zsec_destroy must run before zmq_ctx_term).
 * zap_handler false is for tests only (NW_TEST_ZAP_OFF): nothing answers
 * ZAP, so every CURVE peer is refused. NW_ERR_CONFIG if another handler is
 * bound in zctx.
 */
enum nw_err zsec_start(struct zsec *z, void *zctx, bool zap_handler, struct nw_error *out_err);

/* Stops the thread, wipes the secret key, frees *p (NULL-safe), sets *p = NULL. */
void zsec_destroy(struct zsec **p);

/*
 * Makes socket (borrowed, of zsec_start's context, before its bind or
 * connect to endpoint) a CURVE server with ZAP (server true) or a CURVE
 * client of endpoint's server key. NW_ERR_CONFIG naming the endpoint if the
 * server key of endpoint is unknown, the allow-list is empty, or libzmq
 * refuses an option (then the socket must not be used).
 */
enum nw_err zsec_apply(struct zsec *z, void *socket, const char *endpoint, bool server,
                       struct nw_error *out_err);

/* Peers in the allow-list. */
size_t zsec_peer_count(const struct zsec *z);

/* Counters, for tests and /metrics. */
enum zsec_refusal {
    ZSEC_REFUSED_UNKNOWN_KEY, /* CURVE key not in the allow-list (ZAP 400) */
    ZSEC_REFUSED_MECHANISM,   /* NULL or PLAIN offered to a CURVE server */
    ZSEC_REFUSED_NO_HANDLER,  /* no ZAP handler running: refused by ZAP_ENFORCE_DOMAIN */
    ZSEC_REFUSED_HANDSHAKE,   /* another failed handshake (e.g. a wrong server key) */
    ZSEC_REFUSED__COUNT
};
uint64_t zsec_accepted(const struct zsec *z);
uint64_t zsec_refused(const struct zsec *z, enum zsec_refusal why);

/*
 * Appends the Prometheus text of z's counters to buf[0..cap) (always
 * NUL-terminated); z NULL writes nw_curve_enabled 0. Returns the length.
 */
size_t zsec_metrics_render(const struct zsec *z, char *buf, size_t cap);

/*
 * Writes a new key pair: BASE.key (secret, mode 0600) and BASE.pub, and
 * the public key into out_public (41 bytes). Refuses to overwrite either
 * file (NW_ERR_CONFIG).
 */
enum nw_err zsec_keygen(const char *base, char out_public[ZSEC_KEY_Z85 + 1],
                        struct nw_error *out_err);

#endif

/*
 * zsec.c - CURVE keys, the ZAP handler and the handshake counters (zsec.h).
 *
 * The thread owns three kinds of sockets: the ZAP REP socket (bound by
 * zsec_start in the caller's thread, so a bind error is reported there,
 * then handed over), a PAIR on which zsec_destroy says stop, and one PAIR
 * per monitored server socket. zsec_apply creates those monitor PAIRs in
 * whatever thread opens the socket and hands them over through a
 * mutex-protected list that the thread picks up at least every 250 ms.
 */
#define _GNU_SOURCE
#include "zsec.h"

#include <needlewatch/clock.h>
#include <needlewatch/log.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#ifndef ZMQ_ZAP_ENFORCE_DOMAIN
#define ZMQ_ZAP_ENFORCE_DOMAIN 93 /* in libzmq 4.3's draft section, built into Debian's */
#endif

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define KEY_FILE_MAX 4096
#define LOG_EVERY_MS 60000
#define LOG_SLOTS 64
#define MON_EVENTS                                                                                 \
    (ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |                        \
     ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)

static const char z85_chars[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                ".-:+=^!/*?&<>()[]{}@%$#";
static const char *const refusal_names[ZSEC_REFUSED__COUNT] = {"unknown_key", "mechanism",
                                                               "no_zap_handler", "handshake"};

struct peer {
    uint8_t key[32];
    char name[64];
};

struct server_key {
    char endpoint[256]; /* "" for the default */
    uint8_t key[32];
};

struct log_slot { /* what was last logged, for once per minute */
    char what[96];
    int64_t at_ms;
};

struct zsec {
    uint8_t secret[32], public[32];
    struct peer peers[ZSEC_MAX_PEERS];
    size_t npeers;
    struct server_key servers[ZSEC_MAX_SERVER_KEYS];
    size_t nservers;
    void *zctx;
    void *zap;     /* REP on ZAP_ENDPOINT, or NULL (tests) */
    void *stop_tx; /* PAIR: zsec_destroy's end */
    void *stop_rx; /* PAIR: the thread's end */
    pthread_t thread;
    bool running, zap_on;
    pthread_mutex_t lock; /* guards the two fields below */
    void *pending[ZSEC_MAX_MONITORS];
    size_t npending;
    atomic_uint nmonitors; /* monitor endpoints made so far */
    atomic_uint_fast64_t accepted, refused[ZSEC_REFUSED__COUNT];
    struct log_slot logged[LOG_SLOTS]; /* the thread's only */
};

/* ---- key files --------------------------------------------------------- */

/* Checks that s[0..40) is a Z85 key and decodes it into out. */
static enum nw_err parse_key(const char *s, size_t len, uint8_t out[32], const char *path, int line,
                             struct nw_error *err)
{
    if (len != ZSEC_KEY_Z85) {
        return nw_error_set(err, NW_ERR_CONFIG,
                            "%s:%d: a CURVE key is %d Z85 characters, this one has %zu", path, line,
                            ZSEC_KEY_Z85, len);
    }
    for (size_t i = 0; i < len; i++) {
        if (!s[i] || !strchr(z85_chars, s[i])) {
            return nw_error_set(err, NW_ERR_CONFIG,
                                "%s:%d: not a Z85 key (character %zu is not in the Z85 alphabet)",
                                path, line, i + 1);
        }
    }
    char z[ZSEC_KEY_Z85 + 1];
    memcpy(z, s, ZSEC_KEY_Z85);
    z[ZSEC_KEY_Z85] = '\0';
    if (!zmq_z85_decode(out, z)) {
        return nw_error_set(err, NW_ERR_CONFIG, "%s:%d: not a Z85 key", path, line);
    }
    return NW_OK;
}

/* Reads a whole small key file into buf (NUL-terminated). secret: the file
 * must be a regular file nobody but its owner can read or write. */
static enum nw_err read_small(const char *path, const char *what, bool secret, char *buf,
                              size_t cap, struct nw_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return nw_error_set(err, errno == ENOENT ? NW_ERR_NOT_FOUND : NW_ERR_IO, "%s %s: %s", what,
                            path, strerror(errno));
    }
    struct stat st;
    enum nw_err e = NW_OK;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        e = nw_error_set(err, NW_ERR_CONFIG, "%s %s: not a regular file", what, path);
    } else if (secret && (st.st_mode & 077)) {
        e = nw_error_set(err, NW_ERR_CONFIG,
                         "%s %s is mode %04o: a secret key must be readable by its owner only "
                         "(chmod 600 %s); refusing to start",
                         what, path, (unsigned)(st.st_mode & 07777), path);
    }
    ssize_t n = 0;
    if (e == NW_OK) {
        n = read(fd, buf, cap - 1);
        if (n < 0) {
            e = nw_error_set(err, NW_ERR_IO, "%s %s: %s", what, path, strerror(errno));
        } else if ((size_t)n == cap - 1) {
            e = nw_error_set(err, NW_ERR_CONFIG, "%s %s: larger than %zu bytes", what, path,
                             cap - 1);
        }
    }
    close(fd);
    buf[e == NW_OK ? n : 0] = '\0';
    return e;
}

typedef enum nw_err (*line_fn)(void *user, char *line, int lineno, const char *path,
                               struct nw_error *err);

/* Calls fn for every line that is neither blank nor a # comment, trimmed. */
static enum nw_err each_line(char *text, const char *path, line_fn fn, void *user,
                             struct nw_error *err)
{
    int lineno = 0;
    for (char *p = text; p && *p;) {
        char *nl = strchr(p, '\n');
        if (nl) {
            *nl = '\0';
        }
        lineno++;
        p += strspn(p, " \t\r");
        size_t n = strlen(p);
        while (n && strchr(" \t\r", p[n - 1])) {
            p[--n] = '\0';
        }
        if (n && *p != '#') {
            enum nw_err e = fn(user, p, lineno, path, err);
            if (e != NW_OK) {
                return e;
            }
        }
        p = nl ? nl + 1 : NULL;
    }
    return NW_OK;
}

struct one_key {
    uint8_t *key;
    bool found;
};

static enum nw_err on_one_key(void *user, char *line, int lineno, const char *path,
                              struct nw_error *err)
{
    struct one_key *k = user;
    if (k->found) {
        return nw_error_set(err, NW_ERR_CONFIG, "%s:%d: more than one key in a key file", path,
                            lineno);
    }
    k->found = true;
    return parse_key(line, strlen(line), k->key, path, lineno, err);
}

/* The one key of a key file (comments allowed). */
static enum nw_err load_key(const char *path, const char *what, bool secret, uint8_t out[32],
                            struct nw_error *err)
{
    char buf[KEY_FILE_MAX];
    struct one_key k = {out, false};
    enum nw_err e = read_small(path, what, secret, buf, sizeof(buf), err);
    if (e == NW_OK) {
        e = each_line(buf, path, on_one_key, &k, err);
    }
    if (e == NW_OK && !k.found) {
        e = nw_error_set(err, NW_ERR_CONFIG, "%s %s: no key in the file", what, path);
    }
    explicit_bzero(buf, sizeof(buf));
    return e;
}

static enum nw_err add_peer(struct zsec *z, const uint8_t key[32], const char *name,
                            const char *path, struct nw_error *err)
{
    if (z->npeers == ZSEC_MAX_PEERS) {
        return nw_error_set(err, NW_ERR_CONFIG, "collector.curve_peers %s: more than %d keys", path,
                            ZSEC_MAX_PEERS);
    }
    struct peer *p = &z->peers[z->npeers++];
    memcpy(p->key, key, 32);
    snprintf(p->name, sizeof(p->name), "%s", name);
    return NW_OK;
}

static enum nw_err on_peer_line(void *user, char *line, int lineno, const char *path,
                                struct nw_error *err)
{
    struct zsec *z = user;
    size_t klen = strcspn(line, " \t");
    const char *name = line + klen + strspn(line + klen, " \t");
    char def[32];
    snprintf(def, sizeof(def), "peer-%d", lineno);
    uint8_t key[32];
    enum nw_err e = parse_key(line, klen, key, path, lineno, err);
    return e == NW_OK ? add_peer(z, key, *name ? name : def, path, err) : e;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static int pub_file(const struct dirent *d)
{
    size_t n = strlen(d->d_name);
    return d->d_name[0] != '.' && n > 4 && strcmp(d->d_name + n - 4, ".pub") == 0;
}

/* The allow-list: every NAME.pub of a directory, or the lines of a file. */
static enum nw_err load_peers(struct zsec *z, const char *path, struct nw_error *err)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        return nw_error_set(err, errno == ENOENT ? NW_ERR_NOT_FOUND : NW_ERR_IO,
                            "collector.curve_peers %s: %s", path, strerror(errno));
    }
    enum nw_err e = NW_OK;
    if (!S_ISDIR(st.st_mode)) {
        char buf[ZSEC_MAX_PEERS * 128];
        e = read_small(path, "collector.curve_peers", false, buf, sizeof(buf), err);
        if (e == NW_OK) {
            e = each_line(buf, path, on_peer_line, z, err);
        }
    } else {
        struct dirent **list = NULL;
        int n = scandir(path, &list, pub_file, by_name);
        if (n < 0) {
            return nw_error_set(err, NW_ERR_IO, "collector.curve_peers %s: %s", path,
                                strerror(errno));
        }
        for (int i = 0; i < n; i++) {
            char file[1024], name[64];
            snprintf(file, sizeof(file), "%s/%s", path, list[i]->d_name);
            snprintf(name, sizeof(name), "%.*s", (int)strlen(list[i]->d_name) - 4, list[i]->d_name);
            uint8_t key[32];
            if (e == NW_OK) {
                e = load_key(file, "collector.curve_peers", false, key, err);
            }
            if (e == NW_OK) {
                e = add_peer(z, key, name, path, err);
            }
            free(list[i]);
        }
        free(list);
    }
    if (e == NW_OK && z->npeers == 0) {
        e = nw_error_set(err, NW_ERR_CONFIG,
                         "collector.curve_peers %s: no peer keys (a directory of NAME.pub "
                         "files, or a file of keys)",
                         path);
    }
    return e;
}

static enum nw_err on_server_line(void *user, char *line, int lineno, const char *path,
                                  struct nw_error *err)
{
    struct zsec *z = user;
    if (z->nservers == ZSEC_MAX_SERVER_KEYS) {
        return nw_error_set(err, NW_ERR_CONFIG, "%s:%d: more than %d server keys", path, lineno,
                            ZSEC_MAX_SERVER_KEYS);
    }
    struct server_key *s = &z->servers[z->nservers];
    size_t first = strcspn(line, " \t");
    const char *key = line;
    size_t klen = first;
    if (line[first]) { /* "ENDPOINT KEY" */
        if (first >= sizeof(s->endpoint)) {
            return nw_error_set(err, NW_ERR_CONFIG, "%s:%d: endpoint too long", path, lineno);
        }
        snprintf(s->endpoint, sizeof(s->endpoint), "%.*s", (int)first, line);
        key = line + first + strspn(line + first, " \t");
        klen = strlen(key);
    }
    for (size_t i = 0; i < z->nservers; i++) {
        if (!strcmp(z->servers[i].endpoint, s->endpoint)) {
            return nw_error_set(err, NW_ERR_CONFIG, "%s:%d: a second key for %s", path, lineno,
                                s->endpoint[0] ? s->endpoint : "every server");
        }
    }
    enum nw_err e = parse_key(key, klen, s->key, path, lineno, err);
    if (e == NW_OK) {
        z->nservers++;
    }
    return e;
}

enum nw_err zsec_new(const struct zsec_options *o, struct zsec **out, struct nw_error *err)
{
    if (!o->secret_file || !*o->secret_file || !o->public_file || !*o->public_file) {
        return nw_error_set(err, NW_ERR_CONFIG,
                            "collector.curve = on needs collector.%s (make a key pair with "
                            "needlewatch-collector --curve-keygen DIR/NAME)",
                            !o->secret_file || !*o->secret_file ? "curve_secret_file"
                                                                : "curve_public_file");
    }
    struct zsec *z = calloc(1, sizeof(*z));
    if (!z) {
        return nw_error_set(err, NW_ERR_NOMEM, "out of memory");
    }
    pthread_mutex_init(&z->lock, NULL);
    enum nw_err e = load_key(o->secret_file, "collector.curve_secret_file", true, z->secret, err);
    if (e == NW_OK) {
        e = load_key(o->public_file, "collector.curve_public_file", false, z->public, err);
    }
    if (e == NW_OK) {
        char sz[ZSEC_KEY_Z85 + 1], pz[ZSEC_KEY_Z85 + 1], derived[ZSEC_KEY_Z85 + 1];
        zmq_z85_encode(sz, z->secret, 32);
        zmq_z85_encode(pz, z->public, 32);
        if (zmq_curve_public(derived, sz) != 0 || strcmp(derived, pz) != 0) {
            e = nw_error_set(err, NW_ERR_CONFIG,
                             "collector.curve_public_file %s is not the public key of "
                             "collector.curve_secret_file %s",
                             o->public_file, o->secret_file);
        }
        explicit_bzero(sz, sizeof(sz));
    }
    if (e == NW_OK && o->peers && *o->peers) {
        e = load_peers(z, o->peers, err);
    }
    if (e == NW_OK && o->server_key_file && *o->server_key_file) {
        char buf[ZSEC_MAX_SERVER_KEYS * 320];
        e = read_small(o->server_key_file, "collector.curve_server_key_file", false, buf,
                       sizeof(buf), err);
        if (e == NW_OK) {
            e = each_line(buf, o->server_key_file, on_server_line, z, err);
        }
        if (e == NW_OK && z->nservers == 0) {
            e = nw_error_set(err, NW_ERR_CONFIG, "collector.curve_server_key_file %s: no key",
                             o->server_key_file);
        }
    }
    if (e != NW_OK) {
        zsec_destroy(&z);
        return e;
    }
    *out = z;
    return NW_OK;
}

size_t zsec_peer_count(const struct zsec *z)
{
    return z ? z->npeers : 0;
}

uint64_t zsec_accepted(const struct zsec *z)
{
    return atomic_load(&((struct zsec *)z)->accepted);
}

uint64_t zsec_refused(const struct zsec *z, enum zsec_refusal why)
{
    return atomic_load(&((struct zsec *)z)->refused[why]);
}

/* ---- the thread: ZAP answers and monitor events ------------------------- */

/* True once per minute per what (a key, a reason and endpoint). */
static bool log_due(struct zsec *z, const char *what)
{
    int64_t now = nw_clock_mono_ms();
    struct log_slot *oldest = &z->logged[0];
    for (int i = 0; i < LOG_SLOTS; i++) {
        struct log_slot *s = &z->logged[i];
        if (s->at_ms && !strcmp(s->what, what)) {
            if (now - s->at_ms < LOG_EVERY_MS) {
                return false;
            }
            s->at_ms = now;
            return true;
        }
        if (s->at_ms < oldest->at_ms) {
            oldest = s;
        }
    }
    snprintf(oldest->what, sizeof(oldest->what), "%s", what);
    oldest->at_ms = now;
    return true;
}

static const struct peer *find_peer(const struct zsec *z, const uint8_t *key)
{
    for (size_t i = 0; i < z->npeers; i++) {
        if (!memcmp(z->peers[i].key, key, 32)) {
            return &z->peers[i];
        }
    }
    return NULL;
}

#define ZAP_FRAMES 10

/* One ZAP request (RFC 27): version, request id, domain, address, identity,
 * mechanism, credentials...; answered 200 or 400. */
static void answer_zap(struct zsec *z)
{
    zmq_msg_t f[ZAP_FRAMES];
    int n = 0;
    bool more = true;
    while (more && n < ZAP_FRAMES) {
        zmq_msg_init(&f[n]);
        if (zmq_msg_recv(&f[n], z->zap, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&f[n]);
            more = false;
            break;
        }
        more = zmq_msg_more(&f[n]);
        n++;
    }
    while (more) { /* more frames than any mechanism sends: drain, refuse */
        zmq_msg_t extra;
        zmq_msg_init(&extra);
        more = zmq_msg_recv(&extra, z->zap, 0) >= 0 && zmq_msg_more(&extra);
        zmq_msg_close(&extra);
        n = ZAP_FRAMES + 1;
    }
    if (n < 2) { /* not even a request id to answer to */
        for (int i = 0; i < n; i++) {
            zmq_msg_close(&f[i]);
        }
        return;
    }
    int nf = n > ZAP_FRAMES ? ZAP_FRAMES : n;
#define FRAME_IS(i, s)                                                                             \
    ((i) < nf && zmq_msg_size(&f[i]) == strlen(s) && !memcmp(zmq_msg_data(&f[i]), s, strlen(s)))
    char mech[16] = "?", addr[64] = "?";
    if (nf > 5) {
        snprintf(mech, sizeof(mech), "%.*s", (int)zmq_msg_size(&f[5]), (char *)zmq_msg_data(&f[5]));
    }
    if (nf > 3) {
        snprintf(addr, sizeof(addr), "%.*s", (int)zmq_msg_size(&f[3]), (char *)zmq_msg_data(&f[3]));
    }
    const char *status = "400", *text = "refused", *user = "";
    const struct peer *p = NULL;
    if (n > ZAP_FRAMES || !FRAME_IS(0, "1.0") || !FRAME_IS(2, ZSEC_DOMAIN)) {
        text = "malformed request or foreign domain";
        atomic_fetch_add(&z->refused[ZSEC_REFUSED_HANDSHAKE], 1);
    } else if (!FRAME_IS(5, "CURVE") || nf != 7 || zmq_msg_size(&f[6]) != 32) {
        text = "only CURVE is accepted";
        atomic_fetch_add(&z->refused[ZSEC_REFUSED_MECHANISM], 1);
        char what[96];
        snprintf(what, sizeof(what), "mechanism %s", mech);
        if (log_due(z, what)) {
            nw_log(NW_LOG_WARN, "zsec", "refused a peer from %s: mechanism %s (only CURVE)", addr,
                   mech);
        }
    } else if (!(p = find_peer(z, zmq_msg_data(&f[6])))) {
        text = "unknown key";
        atomic_fetch_add(&z->refused[ZSEC_REFUSED_UNKNOWN_KEY], 1);
        char key[ZSEC_KEY_Z85 + 1];
        zmq_z85_encode(key, zmq_msg_data(&f[6]), 32);
        if (log_due(z, key)) {
            nw_log(NW_LOG_WARN, "zsec",
                   "refused CURVE public key %s from %s: not in collector.curve_peers (logged "
                   "once a minute per key)",
                   key, addr);
        }
    } else {
        status = "200", text = "OK", user = p->name;
    }
#undef FRAME_IS
    /* version, request id (echoed), status code, status text, user id, metadata */
    zmq_send(z->zap, "1.0", 3, ZMQ_SNDMORE);
    zmq_send(z->zap, zmq_msg_data(&f[1]), zmq_msg_size(&f[1]), ZMQ_SNDMORE);
    zmq_send(z->zap, status, 3, ZMQ_SNDMORE);
    zmq_send(z->zap, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(z->zap, user, strlen(user), ZMQ_SNDMORE);
    zmq_send(z->zap, "", 0, 0);
    for (int i = 0; i < nf; i++) {
        zmq_msg_close(&f[i]);
    }
}

/* One monitor event: [uint16 event, uint32 value][endpoint]. */
static void on_monitor(struct zsec *z, void *mon)
{
    zmq_msg_t ev, ep;
    zmq_msg_init(&ev);
    zmq_msg_init(&ep);
    if (zmq_msg_recv(&ev, mon, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&ev);
        zmq_msg_close(&ep);
        return;
    }
    if (zmq_msg_more(&ev)) {
        zmq_msg_recv(&ep, mon, 0);
    }
    uint16_t event = 0;
    uint32_t value = 0;
    if (zmq_msg_size(&ev) >= 6) {
        memcpy(&event, zmq_msg_data(&ev), 2);
        memcpy(&value, (char *)zmq_msg_data(&ev) + 2, 4);
    }
    char endpoint[128];
    snprintf(endpoint, sizeof(endpoint), "%.*s", (int)zmq_msg_size(&ep), (char *)zmq_msg_data(&ep));
    int why = -1;
    if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
        atomic_fetch_add(&z->accepted, 1);
    } else if (!z->zap_on && (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH ||
                              event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL)) {
        why = ZSEC_REFUSED_NO_HANDLER;
    } else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL &&
               value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH) {
        why = ZSEC_REFUSED_MECHANISM;
    } else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ||
               event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) {
        why = ZSEC_REFUSED_HANDSHAKE;
    } /* FAILED_AUTH with a handler: answer_zap counted and logged it */
    if (why >= 0) {
        atomic_fetch_add(&z->refused[why], 1);
        char what[96];
        snprintf(what, sizeof(what), "%s %.80s", refusal_names[why], endpoint);
        if (log_due(z, what)) {
            nw_log(NW_LOG_WARN, "zsec", "refused a peer on %s: %s", endpoint,
                   why == ZSEC_REFUSED_MECHANISM ? "it did not offer CURVE (NULL or PLAIN)"
                   : why == ZSEC_REFUSED_NO_HANDLER
                       ? "no ZAP handler is running (fail closed)"
                       : "the CURVE handshake failed (a wrong server key, or the peer hung up)");
        }
    }
    zmq_msg_close(&ev);
    zmq_msg_close(&ep);
}

static void *run(void *arg)
{
    struct zsec *z = arg;
    void *mons[ZSEC_MAX_MONITORS];
    size_t nmons = 0;
    for (;;) {
        pthread_mutex_lock(&z->lock);
        for (size_t i = 0; i < z->npending && nmons < ZSEC_MAX_MONITORS; i++) {
            mons[nmons++] = z->pending[i];
        }
        z->npending = 0;
        pthread_mutex_unlock(&z->lock);
        zmq_pollitem_t items[2 + ZSEC_MAX_MONITORS];
        int n = 0;
        items[n++] = (zmq_pollitem_t){.socket = z->stop_rx, .events = ZMQ_POLLIN};
        if (z->zap) {
            items[n++] = (zmq_pollitem_t){.socket = z->zap, .events = ZMQ_POLLIN};
        }
        for (size_t i = 0; i < nmons; i++) {
            items[n++] = (zmq_pollitem_t){.socket = mons[i], .events = ZMQ_POLLIN};
        }
        if (zmq_poll(items, n, 250) < 0 && errno == ETERM) {
            break;
        }
        if (items[0].revents & ZMQ_POLLIN) {
            break;
        }
        int k = 1;
        if (z->zap && (items[k++].revents & ZMQ_POLLIN)) {
            answer_zap(z);
        }
        for (size_t i = 0; i < nmons; i++, k++) {
            if (items[k].revents & ZMQ_POLLIN) {
                on_monitor(z, mons[i]);
            }
        }
    }
    for (size_t i = 0; i < nmons; i++) {
        zmq_close(mons[i]);
    }
    return NULL;
}

enum nw_err zsec_start(struct zsec *z, void *zctx, bool zap_handler, struct nw_error *err)
{
    char ep[64];
    snprintf(ep, sizeof(ep), "inproc://nw-zsec-stop-%p", (void *)z);
    int zero = 0;
    z->zctx = zctx;
    z->zap_on = zap_handler;
    z->stop_rx = zmq_socket(zctx, ZMQ_PAIR);
    z->stop_tx = zmq_socket(zctx, ZMQ_PAIR);
    if (!z->stop_rx || !z->stop_tx || zmq_bind(z->stop_rx, ep) != 0 ||
        zmq_connect(z->stop_tx, ep) != 0) {
        return nw_error_set(err, NW_ERR_IO, "zsec: %s", zmq_strerror(errno));
    }
    zmq_setsockopt(z->stop_tx, ZMQ_LINGER, &zero, sizeof(zero));
    if (zap_handler) {
        z->zap = zmq_socket(zctx, ZMQ_REP);
        if (!z->zap) {
            return nw_error_set(err, NW_ERR_IO, "zsec: %s", zmq_strerror(errno));
        }
        zmq_setsockopt(z->zap, ZMQ_LINGER, &zero, sizeof(zero));
        if (zmq_bind(z->zap, ZAP_ENDPOINT) != 0) {
            return nw_error_set(err, NW_ERR_CONFIG, "zsec: cannot bind the ZAP handler %s: %s",
                                ZAP_ENDPOINT, zmq_strerror(errno));
        }
    } else {
        nw_log(NW_LOG_WARN, "zsec",
               "NW_TEST_ZAP_OFF: no ZAP handler (tests only): every CURVE peer is refused");
    }
    if (pthread_create(&z->thread, NULL, run, z) != 0) {
        return nw_error_set(err, NW_ERR_NOMEM, "zsec: cannot start the ZAP thread");
    }
    z->running = true;
    nw_log(NW_LOG_NOTICE, "zsec",
           "CURVE on tcp:// pipeline sockets: %zu allowed peer keys, %zu "
           "server keys, ZAP domain \"" ZSEC_DOMAIN "\"",
           z->npeers, z->nservers);
    return NW_OK;
}

void zsec_destroy(struct zsec **p)
{
    struct zsec *z = p ? *p : NULL;
    if (!z) {
        return;
    }
    if (z->running) {
        zmq_send(z->stop_tx, "", 0, 0);
        pthread_join(z->thread, NULL);
    }
    for (size_t i = 0; i < z->npending; i++) {
        zmq_close(z->pending[i]);
    }
    void *socks[] = {z->zap, z->stop_tx, z->stop_rx};
    for (size_t i = 0; i < sizeof(socks) / sizeof(socks[0]); i++) {
        if (socks[i]) {
            zmq_close(socks[i]);
        }
    }
    pthread_mutex_destroy(&z->lock);
    explicit_bzero(z->secret, sizeof(z->secret));
    free(z);
    *p = NULL;
}

/* ---- sockets ----------------------------------------------------------- */

static enum nw_err set(void *s, int opt, const void *v, size_t len, const char *name,
                       const char *endpoint, struct nw_error *err)
{
    if (zmq_setsockopt(s, opt, v, len) != 0) {
        return nw_error_set(err, NW_ERR_CONFIG, "%s: libzmq refused %s: %s; not opening it",
                            endpoint, name, zmq_strerror(errno));
    }
    return NW_OK;
}

static enum nw_err watch(struct zsec *z, void *socket, const char *endpoint, struct nw_error *err)
{
    if (!z->zctx) {
        return NW_OK; /* not started: nothing would read the events */
    }
    char ep[64];
    snprintf(ep, sizeof(ep), "inproc://nw-zsec-mon-%p-%u", (void *)z,
             atomic_fetch_add(&z->nmonitors, 1));
    void *mon = NULL;
    if (zmq_socket_monitor(socket, ep, MON_EVENTS) != 0 || !(mon = zmq_socket(z->zctx, ZMQ_PAIR)) ||
        zmq_connect(mon, ep) != 0) {
        if (mon) {
            zmq_close(mon);
        }
        return nw_error_set(err, NW_ERR_CONFIG, "%s: cannot monitor the socket: %s", endpoint,
                            zmq_strerror(errno));
    }
    int zero = 0;
    zmq_setsockopt(mon, ZMQ_LINGER, &zero, sizeof(zero));
    pthread_mutex_lock(&z->lock);
    bool room = z->npending < ZSEC_MAX_MONITORS;
    if (room) {
        z->pending[z->npending++] = mon;
    }
    pthread_mutex_unlock(&z->lock);
    if (!room) {
        zmq_close(mon); /* the counters miss this socket; CURVE and ZAP still hold */
        nw_log(NW_LOG_WARN, "zsec", "%s: more than %d server sockets: not counted", endpoint,
               ZSEC_MAX_MONITORS);
    }
    return NW_OK;
}

enum nw_err zsec_apply(struct zsec *z, void *s, const char *endpoint, bool server,
                       struct nw_error *err)
{
    int one = 1;
    enum nw_err e;
    if (server) {
        if (z->npeers == 0) {
            return nw_error_set(err, NW_ERR_CONFIG,
                                "%s: collector.curve = on and this process binds it, so it "
                                "needs collector.curve_peers (the public keys it admits)",
                                endpoint);
        }
        if ((e = set(s, ZMQ_CURVE_SERVER, &one, sizeof(one), "ZMQ_CURVE_SERVER", endpoint, err)) ||
            (e = set(s, ZMQ_CURVE_SECRETKEY, z->secret, 32, "ZMQ_CURVE_SECRETKEY", endpoint,
                     err)) ||
            (e = set(s, ZMQ_ZAP_DOMAIN, ZSEC_DOMAIN, strlen(ZSEC_DOMAIN), "ZMQ_ZAP_DOMAIN",
                     endpoint, err)) ||
            (e = set(s, ZMQ_ZAP_ENFORCE_DOMAIN, &one, sizeof(one), "ZMQ_ZAP_ENFORCE_DOMAIN",
                     endpoint, err))) {
            return e;
        }
        return watch(z, s, endpoint, err);
    }
    const struct server_key *k = NULL;
    for (size_t i = 0; i < z->nservers; i++) {
        if (!strcmp(z->servers[i].endpoint, endpoint) || (!k && !z->servers[i].endpoint[0])) {
            k = &z->servers[i];
        }
    }
    for (size_t i = 0; i < z->nservers; i++) { /* an exact line beats the default */
        if (!strcmp(z->servers[i].endpoint, endpoint)) {
            k = &z->servers[i];
        }
    }
    if (!k) {
        return nw_error_set(err, NW_ERR_CONFIG,
                            "%s: no CURVE server key for it: add a line \"%s KEY\" (or a bare "
                            "KEY for every server) to collector.curve_server_key_file",
                            endpoint, endpoint);
    }
    if ((e = set(s, ZMQ_CURVE_SERVERKEY, k->key, 32, "ZMQ_CURVE_SERVERKEY", endpoint, err)) ||
        (e = set(s, ZMQ_CURVE_PUBLICKEY, z->public, 32, "ZMQ_CURVE_PUBLICKEY", endpoint, err)) ||
        (e = set(s, ZMQ_CURVE_SECRETKEY, z->secret, 32, "ZMQ_CURVE_SECRETKEY", endpoint, err))) {
        return e;
    }
    return NW_OK;
}

/* ---- metrics and keygen ------------------------------------------------ */

__attribute__((format(printf, 4, 5))) static void put(char *buf, size_t cap, size_t *len,
                                                      const char *fmt, ...)
{
    if (*len + 1 >= cap) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *len, cap - *len, fmt, ap);
    va_end(ap);
    if (n > 0) {
        *len += (size_t)n < cap - *len ? (size_t)n : cap - *len - 1;
    }
}

size_t zsec_metrics_render(const struct zsec *z, char *buf, size_t cap)
{
    size_t len = 0;
    if (cap == 0) {
        return 0;
    }
    buf[0] = '\0';
    put(buf, cap, &len,
        "# HELP nw_curve_enabled 1 when tcp:// pipeline sockets use CURVE with ZAP\n"
        "# TYPE nw_curve_enabled gauge\nnw_curve_enabled %d\n",
        z ? 1 : 0);
    if (!z) {
        return len;
    }
    put(buf, cap, &len,
        "# HELP nw_curve_allowed_peers public keys in collector.curve_peers\n"
        "# TYPE nw_curve_allowed_peers gauge\nnw_curve_allowed_peers %zu\n"
        "# HELP nw_curve_zap_handler 1 while the ZAP handler runs (0: every peer is refused)\n"
        "# TYPE nw_curve_zap_handler gauge\nnw_curve_zap_handler %d\n"
        "# HELP nw_curve_peers_accepted_total CURVE handshakes completed on bound tcp sockets\n"
        "# TYPE nw_curve_peers_accepted_total counter\nnw_curve_peers_accepted_total %" PRIu64
        "\n# HELP nw_curve_peers_refused_total peers refused on bound tcp sockets, by reason\n"
        "# TYPE nw_curve_peers_refused_total counter\n",
        z->npeers, z->zap_on && z->running ? 1 : 0, zsec_accepted(z));
    for (int i = 0; i < ZSEC_REFUSED__COUNT; i++) {
        put(buf, cap, &len, "nw_curve_peers_refused_total{reason=\"%s\"} %" PRIu64 "\n",
            refusal_names[i], zsec_refused(z, (enum zsec_refusal)i));
    }
    return len;
}

static enum nw_err write_new(const char *path, mode_t mode, const char *text, struct nw_error *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
        return nw_error_set(err, errno == EEXIST ? NW_ERR_CONFIG : NW_ERR_IO, "%s: %s%s", path,
                            strerror(errno), errno == EEXIST ? " (not overwritten)" : "");
    }
    size_t len = strlen(text);
    bool ok = fchmod(fd, mode) == 0 && write(fd, text, len) == (ssize_t)len && fsync(fd) == 0;
    int saved = errno;
    if (close(fd) != 0 || !ok) {
        unlink(path);
        return nw_error_set(err, NW_ERR_IO, "%s: %s", path, strerror(ok ? errno : saved));
    }
    return NW_OK;
}

enum nw_err zsec_keygen(const char *base, char out_public[ZSEC_KEY_Z85 + 1], struct nw_error *err)
{
    char pub[ZSEC_KEY_Z85 + 1], sec[ZSEC_KEY_Z85 + 1], path[1024], text[256];
    if (!base || !*base || strlen(base) > sizeof(path) - 5) {
        return nw_error_set(err, NW_ERR_CONFIG, "--curve-keygen: expected DIR/NAME");
    }
    if (zmq_curve_keypair(pub, sec) != 0) {
        return nw_error_set(err, NW_ERR_CONFIG, "zmq_curve_keypair: %s (libzmq without CURVE?)",
                            zmq_strerror(errno));
    }
    const char *name = strrchr(base, '/') ? strrchr(base, '/') + 1 : base;
    snprintf(path, sizeof(path), "%s.key", base);
    snprintf(text, sizeof(text),
             "# needlewatch CURVE secret key of %s: keep it mode 0600, never copy it off "
             "this host\n%s\n",
             name, sec);
    enum nw_err e = write_new(path, 0600, text, err);
    explicit_bzero(sec, sizeof(sec));
    explicit_bzero(text, sizeof(text));
    if (e != NW_OK) {
        return e;
    }
    char pubpath[1024];
    snprintf(pubpath, sizeof(pubpath), "%s.pub", base);
    snprintf(text, sizeof(text), "# needlewatch CURVE public key of %s\n%s\n", name, pub);
    if ((e = write_new(pubpath, 0644, text, err)) != NW_OK) {
        unlink(path);
        return e;
    }
    memcpy(out_public, pub, sizeof(pub));
    return NW_OK;
}

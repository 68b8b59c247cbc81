/* pipeline.c - routing and socket settings shared by the stages. */
#include "pipeline.h"
#include "zsec.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>

int cp_worker_of(const char *device, int workers)
{
    /* FNV-1a: stable across processes and builds, unlike pointer hashes. */
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)device; *p; p++) {
        h = (h ^ *p) * 16777619u;
    }
    return workers > 0 ? (int)(h % (uint32_t)workers) : 0;
}

size_t cp_in_record_size(size_t len, uint32_t nrejected)
{
    return sizeof(struct cp_in) + CP_PAD(len) + CP_PAD((size_t)nrejected * sizeof(uint32_t));
}

uint8_t *cp_in_put(uint8_t *buf, size_t *used, const struct cp_in *hdr, const void *payload,
                   const uint32_t *rej)
{
    uint8_t *at = buf + *used;
    size_t body = CP_PAD(hdr->len), nrej = (size_t)hdr->nrejected * sizeof(uint32_t);
    memcpy(at, hdr, sizeof(*hdr));
    if (hdr->len > 0 && payload) {
        memcpy(at + sizeof(*hdr), payload, hdr->len);
    }
    memset(at + sizeof(*hdr) + hdr->len, 0, body - hdr->len);
    if (nrej > 0) {
        memcpy(at + sizeof(*hdr) + body, rej, nrej);
    }
    memset(at + sizeof(*hdr) + body + nrej, 0, CP_PAD(nrej) - nrej);
    *used += cp_in_record_size(hdr->len, hdr->nrejected);
    return at + sizeof(*hdr);
}

size_t cp_windows_size(size_t count)
{
    return sizeof(struct cp_windows) + count * sizeof(struct nw_window);
}

void cp_windows_put(uint8_t *dst, const struct nw_window_batch *b)
{
    struct cp_windows h = {.epoch = b->epoch, .queue_floor = b->queue_floor, .count = b->count};
    memcpy(h.device_id, b->device_id, sizeof(h.device_id));
    memcpy(dst, &h, sizeof(h));
    if (b->count > 0) {
        memcpy(dst + sizeof(h), b->windows, b->count * sizeof(*b->windows));
    }
}

#define TERMINATE(a) ((a)[sizeof(a) - 1] = '\0')

bool cp_windows_get(const uint8_t *src, size_t len, struct nw_window_batch *out)
{
    struct cp_windows h;
    if (len < sizeof(h)) {
        return false;
    }
    memcpy(&h, src, sizeof(h));
    if (h.count > out->capacity || h.count > (SIZE_MAX - sizeof(h)) / sizeof(struct nw_window) ||
        len != cp_windows_size((size_t)h.count)) {
        return false;
    }
    memcpy(out->device_id, h.device_id, sizeof(out->device_id));
    TERMINATE(out->device_id);
    out->epoch = h.epoch;
    out->queue_floor = h.queue_floor;
    out->count = (size_t)h.count;
    if (out->count > 0) {
        memcpy(out->windows, src + sizeof(h), out->count * sizeof(*out->windows));
    }
    for (size_t i = 0; i < out->count; i++) {
        TERMINATE(out->windows[i].session_id);
        TERMINATE(out->windows[i].cartridge_id);
        TERMINATE(out->windows[i].pigment_lot);
    }
    return true;
}

bool cp_in_next(const uint8_t *batch, size_t size, size_t *at, struct cp_in *hdr,
                const uint8_t **payload, const uint8_t **rej)
{
    if (*at > size || size - *at < sizeof(*hdr)) {
        return false;
    }
    memcpy(hdr, batch + *at, sizeof(*hdr));
    /* 64-bit sums: a lying nrejected cannot wrap them */
    uint64_t body = CP_PAD((uint64_t)hdr->len), nrej = CP_PAD((uint64_t)hdr->nrejected * 4u);
    if (body + nrej > size - *at - sizeof(*hdr)) {
        return false;
    }
    *payload = batch + *at + sizeof(*hdr);
    *rej = *payload + body;
    *at += sizeof(*hdr) + (size_t)(body + nrej);
    return true;
}

void cp_socket_defaults(void *sock)
{
    int hwm = CP_HWM, linger = CP_LINGER_MS;
    int64_t max = CP_MAX_MSG_BYTES;
    zmq_setsockopt(sock, ZMQ_SNDHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(sock, ZMQ_RCVHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &max, sizeof(max));
}

/* Set once before the first cp_open (collector.curve = on), read-only after. */
static struct zsec *security;

void cp_set_security(struct zsec *z)
{
    security = z;
}

void *cp_open(void *zctx, int type, const char *endpoints, bool bind, struct nw_error *out_err)
{
    void *s = zmq_socket(zctx, type);
    if (!s) {
        nw_error_set(out_err, NW_ERR_NOMEM, "zmq socket: %s", zmq_strerror(errno));
        return NULL;
    }
    cp_socket_defaults(s);
    if (!bind) {
        /* Queue only to peers that are connected now: a dead ingest or
         * aggregate process must not swallow its share of round robin. */
        int immediate = 1;
        zmq_setsockopt(s, ZMQ_IMMEDIATE, &immediate, sizeof(immediate));
    }
    for (const char *ep = endpoints; ep && *ep;) {
        size_t n = strcspn(ep, ",");
        char one[256];
        snprintf(one, sizeof(one), "%.*s", (int)n, ep);
        /* tcp:// between collector processes: CURVE, the binding side serves. */
        bool curve =
            security && !strncmp(one, "tcp://", 6) && (type == ZMQ_PUSH || type == ZMQ_PULL);
        if (curve && zsec_apply(security, s, one, bind, out_err) != NW_OK) {
            zmq_close(s);
            return NULL;
        }
        if ((bind ? zmq_bind(s, one) : zmq_connect(s, one)) != 0) {
            nw_error_set(out_err, NW_ERR_CONFIG, "%s %s: %s", bind ? "bind" : "connect", one,
                         zmq_strerror(errno));
            zmq_close(s);
            return NULL;
        }
        ep += n + (ep[n] == ',');
    }
    return s;
}

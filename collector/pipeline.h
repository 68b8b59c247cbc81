/*
 * pipeline.h - the collector's stages and the messages between them.
 *
 *   ingest (1 thread: MQTT in, acks out)
 *     --PUSH/PULL by hash(device) % workers-->  worker i (aggregation, rules)
 *     --PUSH/PULL-->  writer (batches, the store, the spool)
 *     --PUSH settle refs back to worker i-->  worker i (watermarks)
 *     --PUSH ack requests-->  ingest (coalesced, published on .../ack)
 *
 * Threads share no mutable state but the metrics counters (atomics, read
 * by the HTTP thread). Everything else moves as ZeroMQ messages: inproc://
 * inside one process, tcp:// between an ingest and an aggregate process.
 *
 * High-water marks are set on every socket (CP_HWM messages). A send that
 * would block at the mark is not retried: the message is dropped and
 * counted (nw_hwm_drops_total{stage=...}); nothing was acked for it, so
 * the agent re-sends it after its ack timeout. Loss is impossible, only
 * delay; and the MQTT loop never blocks on a slow store.
 *
 * A count of messages bounds no memory when a message can be one window or
 * 4096, so the two queues that carry data have bounds of their own, and
 * /metrics shows their depth (nw_queue_depth, nw_queue_bound):
 *   ingest -> workers  CP_WORKER_QUEUE_BYTES of payloads in flight (ingest.c
 *                      counts them exactly: zero-copy buffers freed by
 *                      ZeroMQ when the worker is done with them)
 *   workers -> writer  2 x store.batch_points points held by the writer
 *                      (writer.c), which keeps reading its socket and
 *                      drops beyond that, so the ZeroMQ queue stays short
 * A drop at either bound is counted like one at the high-water mark.
 *
 * Messages (multipart; structs are sent as raw bytes, so ingest and
 * aggregate processes must run the same build on the same architecture):
 *   ingest -> worker  one frame: [struct cp_in_batch] then nmsgs records of
 *                     [struct cp_in][payload][uint32 rejected indexes],
 *                     each part padded to 8 bytes (CP_PAD): the MQTT
 *                     messages of one read burst for that worker. The
 *                     payload of events and status is the protobuf as
 *                     received; that of windows is the batch as ingest
 *                     decoded it (struct cp_windows), so the worker does
 *                     not decode it a second time
 *   worker -> writer  [struct cp_batch][struct nw_point x n]
 *   writer -> worker  [struct cp_ref x n]      points now durably stored
 *   worker -> ingest  [struct cp_ack]          new watermark of a device
 *                     [struct nw_alert]        an alert change, for the MQTT alert topic
 */
#ifndef COLLECTOR_PIPELINE_H
#define COLLECTOR_PIPELINE_H

#include "point.h"

#include <needlewatch/msg.h>
#include <needlewatch/topic.h>

#include <needlewatch/err.h>

#include <stdbool.h>
#include <stdint.h>

#define CP_HWM 10000
#define CP_WORKER_QUEUE_BYTES (4u * 1024 * 1024)
#define CP_MAX_WORKERS 64
#define CP_LINGER_MS 1000
#define CP_MAX_MSG_BYTES (64 * 1024 * 1024)

#define CP_EP_WORKER "inproc://nw-worker-%d"
#define CP_EP_WRITER "inproc://nw-writer"
#define CP_EP_SETTLE "inproc://nw-settle-%d"
#define CP_EP_ACKS "inproc://nw-acks"
#define CP_EP_ALERTS "inproc://nw-alerts" /* workers -> notify.h */
#define CP_EP_OPS "inproc://nw-ops"       /* HTTP thread -> workers: struct worker_op */
#define CP_EP_CONTROL "inproc://nw-control"

enum cp_type { CP_WINDOWS = 1, CP_EVENTS = 2, CP_STATUS = 3 };

struct cp_in {
    uint8_t type; /* enum cp_type */
    uint8_t pad[3];
    uint32_t nrejected; /* indexes after the payload: settled, not stored */
    int64_t arrival_ms; /* wall clock at ingest */
    uint32_t len;       /* payload bytes */
    uint32_t pad2;
};

/* One ingest -> worker message: several MQTT messages (at most
 * CP_IN_BATCH_MSGS, CP_IN_BATCH_BYTES unless one message is larger), so a
 * busy fleet costs one ZeroMQ message and one wake-up per read burst, not
 * per MQTT message. cost: the bytes this batch adds to the ingest ->
 * workers bound (ingest.c). */
struct cp_in_batch {
    uint32_t nmsgs;
    uint32_t pad;
    uint64_t cost;
};

#define CP_IN_BATCH_MSGS 256
#define CP_IN_BATCH_BYTES (64 * 1024)
#define CP_PAD(n) (((n) + 7u) & ~(size_t)7u)

/* Bytes one record takes in a batch. */
size_t cp_in_record_size(size_t len, uint32_t nrejected);

/* Writes one record at buf + *used (the caller made room for
 * cp_in_record_size(hdr->len, hdr->nrejected) bytes) and advances *used.
 * Copies payload (hdr->len bytes; NULL: the caller fills them in through
 * the pointer returned) and rej (hdr->nrejected indexes). Returns where
 * the payload goes, inside buf. */
uint8_t *cp_in_put(uint8_t *buf, size_t *used, const struct cp_in *hdr, const void *payload,
                   const uint32_t *rej);

/* A CP_WINDOWS record's payload: this header, then count struct nw_window,
 * every window of the message as decoded, rejected ones included (the
 * record's rejected indexes name them). */
struct cp_windows {
    char device_id[NW_DEVICE_ID_MAX + 1];
    uint8_t pad[7];
    uint64_t epoch;
    uint64_t queue_floor;
    uint64_t count;
};

/* Payload bytes of a CP_WINDOWS record of count windows. */
size_t cp_windows_size(size_t count);

/* Writes b (b->count windows) at dst, which has cp_windows_size(b->count)
 * bytes. */
void cp_windows_put(uint8_t *dst, const struct nw_window_batch *b);

/* Reads the len bytes at src (any alignment) into *out: its header fields
 * and out->count windows copied into out->windows (out->capacity of them),
 * every string NUL-terminated whatever the bytes said. false when len does
 * not match the count the header gives or the count exceeds the capacity.
 * The values are not checked: the caller validates them. */
bool cp_windows_get(const uint8_t *src, size_t len, struct nw_window_batch *out);

/* The record at *at of a batch of size bytes (start: *at =
 * sizeof(struct cp_in_batch)): its header, payload and rejected indexes
 * (hdr->nrejected little-endian uint32s, any alignment: read them with
 * memcpy), pointing into batch. false at the end or when a record would
 * run past size; *at then stays. */
bool cp_in_next(const uint8_t *batch, size_t size, size_t *at, struct cp_in *hdr,
                const uint8_t **payload, const uint8_t **rej);

#define CP_MAX_POINTS_IN 4096 /* points in one worker -> writer message */

struct cp_batch {
    int32_t worker;
    uint32_t npoints;
};

struct cp_ref {
    char device[NW_DEVICE_ID_MAX + 1];
    uint8_t type; /* CP_WINDOWS or CP_EVENTS */
    uint64_t epoch;
    uint64_t seq;
};

struct cp_ack {
    char device[NW_DEVICE_ID_MAX + 1];
    uint64_t epoch;
    uint64_t window_seq;
    uint64_t event_seq;
};

/* The worker a device belongs to: stable across restarts and processes. */
int cp_worker_of(const char *device, int workers);

/* Sets high-water marks, linger and max message size on a ZeroMQ socket. */
void cp_socket_defaults(void *sock);

/*
 * A socket of type with cp_socket_defaults, bound to or connected to every
 * endpoint of a comma-separated list ("tcp://10.0.0.5:5601,tcp://..."):
 * a PUSH connected to several peers deals messages round robin. NULL with
 * NW_ERR_CONFIG naming the endpoint on failure. Caller closes it.
 */
void *cp_open(void *zctx, int type, const char *endpoints, bool bind, struct nw_error *out_err);

/*
 * From now on cp_open makes every tcp:// PUSH/PULL endpoint CURVE (zsec.h):
 * a bound one a CURVE server behind the ZAP handler, a connected one a
 * client. z is borrowed and must outlive those sockets; NULL: plain. Call
 * before the first cp_open, from one thread.
 */
struct zsec;
void cp_set_security(struct zsec *z);

#endif

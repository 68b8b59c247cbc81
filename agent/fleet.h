/*
 * fleet.h - the device logic of needlewatch-sim: many simulated machines,
 * one virtual clock, a bounded resend buffer per device. No sockets here:
 * sim_main.c is the shell that owns the MQTT connections and the poll loop,
 * so everything below is testable without a broker.
 *
 * Virtual time. A fleet run lasts duration_ms of wall time and makes
 * `rate` windows per wall second per device, so its virtual clock runs
 * factor = rate * window_ms / 1000 times faster than the wall clock. It
 * STARTS in the past, at now - factor * duration (never before now when
 * factor < 1), and reaches the wall clock's "now" exactly at the end of the
 * run: no window is ever stamped in the future (collectors refuse
 * timestamps more than 5 min ahead). Fault START and LEN are virtual times
 * from the start of the run.
 *
 * Devices. Device n (1-based) is PREFIX + n zero-padded to at least four
 * digits ("SIM-0001"). Its clinic, model, epoch, odometer and signal model
 * are derived from the seed and its id, so a fleet is reproducible device
 * by device; the epoch also mixes in the run's start time, because a rerun
 * stamps different times and must not reuse (epoch, seq) pairs (DESIGN §4.8).
 * Each device runs its own agent_sim model and agent_windower, numbers its
 * windows and events gap-free from 1 (a power_on event is event 1), and
 * keeps every record in its record store until the collector's ack covers
 * it.
 *
 * Record store. What the device logic needs of a resend buffer (append,
 * peek/take at a cursor, rewind, ack, queue floor, unacked and drop
 * counts), with two implementations behind one table of operations:
 *   memory (default)  the resend ring below;
 *   disk (queue_dir)  the agent's crash-safe disk queue (dq.h), one per
 *                     device in QUEUE_DIR/<device id>/queue/ (the agent's
 *                     layout), bounded by the same buffer_bytes, overflow =
 *                     the queue's drop-oldest.
 * Both drop the oldest records when full and count them per type.
 *
 * Resend ring. A byte ring of fixed capacity holding records (type, seq,
 * encoded one-entry WindowBatch or EventBatch) in the order they were made.
 * A record is never split across the end of the buffer. Acks (highest
 * contiguous seq per type) trim from the oldest end; a cursor says what has
 * been sent since the last rewind; rewind re-delivers every unacknowledged
 * record in order. When an append does not fit, the oldest records are
 * dropped and counted per type: memory never grows with the run's length.
 *
 * Restarts (disk store). A device whose directory holds a queue resumes it
 * as the agent does (agent/state.c): seqs continue after the highest the
 * queue knows, unacknowledged records go out first, and the epoch, which a
 * new device derives from the seed and the run's start, is kept in
 * QUEUE_DIR/<id>/sim.state and reused. That file also keeps the odometer and a
 * time lease: before a record stamped at or after the lease is stored, the
 * lease moves FLEET_TIME_LEASE_WINDOWS windows ahead, durably enough for a
 * kill -9 (the page cache), and a restarted device's model starts at the
 * lease (or where the last run ended cleanly), so no two windows of one
 * epoch share a timestamp even though every run's virtual time starts in
 * the past. Under sync "never" a power loss (not a kill -9) can take the
 * newest records and the lease with them, and then seqs may be reused, as
 * dq.h explains for the agent.
 *
 * Faults (agent_fault_parse syntax, RULE@DEVICE[:START[:LEN]]); each holds
 * for [START, START+LEN) of virtual time from the run's start, then clears:
 *   signal faults (sim.h)  passed to the device's model
 *   device_offline         fleet_device_offline_at() is true from START for
 *                          LEN; the shell drops the connection (the broker
 *                          publishes the will) and reconnects after it
 *   data_gap with LEN      the first window made at or after START is held
 *                          back: stored (so every batch's queue_floor stays
 *                          at or below it and a collector never declares it
 *                          lost) but not sent until virtual START+LEN (or
 *                          the end of the run, if sooner), then sent with
 *                          its own seq and start time (a rewind: everything
 *                          unacked after it goes again, since a collector
 *                          acks only contiguous seqs): a late-filled gap
 *   data_gap without LEN   the first window made at or after START skips
 *                          one window seq: a hole that never fills, which
 *                          the queue floor declares lost at once
 *   unknown_device         the device is left out of the inventory
 *   maintenance_due        the service hours of a new device start just
 *                          below the 500 h service interval, by exactly the
 *                          needle time its model runs in the windows that
 *                          start before START (computed by running a copy
 *                          of the model ahead), so they exceed the interval
 *                          from the first running window at or after START;
 *                          at START+LEN the model emits a maintenance event
 *                          (action "service", resets_service). The status
 *                          odometer (odometer_cycles, running_s) is a
 *                          lifetime count and is not reset: hours since
 *                          service = running_s - running_s at the last
 *                          resets_service maintenance, i.e. the running_ms
 *                          of the windows stamped at or after the event,
 *                          summed (before any such event: running_s)
 * A device with a device_offline or a data_gap-with-LEN fault keeps LEN of
 * windows unacknowledged, so its store gets --buffer plus
 * FLEET_HOLD_BYTES_PER_WINDOW per window of LEN (at most
 * FLEET_HOLD_BUFFER_MAX): the fault causes no overflow drops.
 */
#ifndef AGENT_FLEET_H
#define AGENT_FLEET_H

#include "sim.h"

#include <needlewatch/codec.h>
#include <needlewatch/dq.h>
#include <needlewatch/err.h>
#include <needlewatch/msg.h>
#include <needlewatch/topic.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define FLEET_DEVICES_MAX 100000
#define FLEET_CLINICS_MAX 10000
#define FLEET_FAULTS_MAX 64
#define FLEET_ID_PREFIX_MAX 32
#define FLEET_RECORD_MAX 1024 /* encoded one-entry batch */
#define FLEET_SERVICE_INTERVAL_S (500 * 3600)
#define FLEET_MAX_PAST_MS (30LL * 24 * 3600 * 1000) /* collectors' default horizon */
#define FLEET_QUEUE_DIR_MAX 3000
#define FLEET_TIME_LEASE_WINDOWS 32
/* Store room a device_offline or held data_gap fault adds per window of
 * its LEN (a stored window record is ~170 bytes), up to a bound. */
#define FLEET_HOLD_BYTES_PER_WINDOW 256
#define FLEET_HOLD_BUFFER_MAX ((size_t)64 << 20)
/* Descriptors a disk store holds while the device runs: the queue
 * directory (its flock), the segment being written and the segment being
 * read. Opening, rolling a segment and writing dq.state or sim.state
 * briefly take one more, one device at a time. */
#define FLEET_DISK_FDS_PER_DEVICE 3

/* ---- virtual clock ----------------------------------------------------- */

struct fleet_clock {
    int64_t wall0_ms;    /* wall clock at the start */
    int64_t mono0_ms;    /* monotonic clock at the start */
    int64_t duration_ms; /* wall length of the run */
    double factor;       /* virtual ms per wall ms */
    int64_t virt0_ms;    /* virtual time at the start */
    int64_t virt_end_ms; /* virtual time at the end (= wall0 + duration when factor >= 1) */
};

/*
 * Sets up the clock of a run starting now (wall_now_ms, mono_now_ms) for
 * duration_ms, at rate windows per wall second of window_ms each.
 * NW_ERR_CONFIG naming --rate when rate is not positive and finite or when
 * virtual time would start more than FLEET_MAX_PAST_MS ago.
 */
enum nw_err fleet_clock_init(struct fleet_clock *c, int64_t wall_now_ms, int64_t mono_now_ms,
                             int64_t duration_ms, double rate, uint32_t window_ms,
                             struct nw_error *out_err);

/* Virtual time at monotonic time mono_ms, clamped to [virt0, virt_end]. */
int64_t fleet_clock_virtual(const struct fleet_clock *c, int64_t mono_ms);

/* The wall length of a virtual span (at least 0). */
int64_t fleet_clock_to_wall_ms(const struct fleet_clock *c, int64_t virt_span_ms);

/* ---- resend ring ------------------------------------------------------- */

enum fleet_rec_type { FLEET_REC_WINDOW = 0, FLEET_REC_EVENT = 1, FLEET_REC_TYPES = 2 };

/* Bytes a record of len payload bytes takes in the ring (header, padding). */
#define FLEET_RING_HEADER 16
#define FLEET_RING_RECORD_SIZE(len) (FLEET_RING_HEADER + (((size_t)(len) + 7) & ~(size_t)7))
#define FLEET_RING_MIN 4096

struct fleet_rec {
    enum fleet_rec_type type;
    uint64_t seq;
    const uint8_t *data; /* borrowed: valid until the ring next changes */
    size_t len;
};

/* Statistics of a record store (ring or disk). */
struct fleet_store_stats {
    size_t cap;   /* bytes */
    size_t bytes; /* in use, headers included (disk: segment files) */
    /* ring: held (unacked, and acked ones behind them); disk: unacked
     * (acked records waiting for their segment's deletion do not count) */
    size_t records;
    uint64_t last_seq[FLEET_REC_TYPES];      /* newest appended (disk: ever, across runs) */
    uint64_t acked_seq[FLEET_REC_TYPES];     /* highest acknowledged */
    uint64_t acked[FLEET_REC_TYPES];         /* records removed by acks, since open */
    uint64_t dropped[FLEET_REC_TYPES];       /* unacked records lost to overflow, since open */
    uint64_t dropped_total[FLEET_REC_TYPES]; /* the same over the queue's life (disk) */
};

struct fleet_ring;

/* cap_bytes >= FLEET_RING_MIN, else NULL (as for no memory). Caller owns it. */
struct fleet_ring *fleet_ring_new(size_t cap_bytes);
void fleet_ring_destroy(struct fleet_ring **p);

/*
 * Copies a record in, dropping the oldest records (counted) until it fits.
 * seq must be above the type's last_seq. NW_ERR_TOO_BIG when the record
 * could never fit, NW_ERR_INVAL for a bad type or seq; nothing changes then.
 */
enum nw_err fleet_ring_append(struct fleet_ring *r, enum fleet_rec_type type, uint64_t seq,
                              const void *data, size_t len, struct nw_error *out_err);

/* The next unsent, unacknowledged record at the cursor, without taking it. */
bool fleet_ring_peek(struct fleet_ring *r, struct fleet_rec *out);

/* Takes the record fleet_ring_peek() returned (moves the cursor past it). */
void fleet_ring_take(struct fleet_ring *r);

/* Moves the cursor back to the oldest record: everything unacked goes again. */
void fleet_ring_rewind(struct fleet_ring *r);

/*
 * The collector has everything of type up to seq: trims acknowledged
 * records from the oldest end. Returns NW_OK (also for an old ack, which
 * changes nothing) or NW_ERR_INVALID for a seq above the newest appended.
 */
enum nw_err fleet_ring_ack(struct fleet_ring *r, enum fleet_rec_type type, uint64_t seq,
                           struct nw_error *out_err);

/*
 * The lowest unacknowledged seq of type still held, or 0 when none: the
 * queue_floor to send (collectors ack past unfillable holes below it).
 */
uint64_t fleet_ring_floor(const struct fleet_ring *r, enum fleet_rec_type type);

/*
 * Counts unacknowledged records by scanning (for the drain and summary).
 * out_stalled[type] (may be NULL) counts those that a collector acking
 * "highest contiguous" cannot reach without queue_floor, because the seq
 * right after the ack is not in the ring (a data_gap hole, an overflow drop).
 */
void fleet_ring_unacked(const struct fleet_ring *r, uint64_t out_unacked[FLEET_REC_TYPES],
                        uint64_t out_stalled[FLEET_REC_TYPES]);

void fleet_ring_get_stats(const struct fleet_ring *r, struct fleet_store_stats *out);

/* ---- record store ------------------------------------------------------ */

struct fleet_store;

/* A memory store: a ring of cap_bytes (>= FLEET_RING_MIN), else NULL (as
 * for no memory). Caller owns it. */
struct fleet_store *fleet_store_memory_new(size_t cap_bytes);

/*
 * A disk store: the disk queue in dir (created if missing; its parent must
 * exist), at most max_bytes (>= FLEET_RING_MIN) on disk in segments of
 * max(4 KiB, max_bytes / 4), with the given fsync policy. Recovers what the
 * queue holds (a torn tail after a crash is cut, dq.h) and counts its
 * unacknowledged records; the cursor starts at the oldest. Errors as
 * nw_dq_open() (NW_ERR_IO when another process holds the directory). Holds
 * FLEET_DISK_FDS_PER_DEVICE descriptors. Caller owns *out.
 */
enum nw_err fleet_store_disk_open(const char *dir, size_t max_bytes, enum nw_dq_sync sync,
                                  struct fleet_store **out, struct nw_error *out_err);

/* Closes (a disk store syncs segments and acks, whatever the policy) and
 * frees *p. NULL-safe; sets *p = NULL. */
void fleet_store_destroy(struct fleet_store **p);

/* Whether the store is a disk queue. */
bool fleet_store_is_disk(const struct fleet_store *s);

/*
 * As the fleet_ring_* functions above, for either kind. Records handed out
 * by fleet_store_peek() (data borrowed) stay valid until the next call on
 * the store. A disk store's seqs must also be above what the queue held
 * before a restart (last_seq); NW_ERR_TOO_BIG above FLEET_RECORD_MAX bytes;
 * NW_ERR_IO when the disk fails (the record is not stored).
 */
enum nw_err fleet_store_append(struct fleet_store *s, enum fleet_rec_type type, uint64_t seq,
                               const void *data, size_t len, struct nw_error *out_err);
bool fleet_store_peek(struct fleet_store *s, struct fleet_rec *out);
void fleet_store_take(struct fleet_store *s);
void fleet_store_rewind(struct fleet_store *s);
enum nw_err fleet_store_ack(struct fleet_store *s, enum fleet_rec_type type, uint64_t seq,
                            struct nw_error *out_err);
uint64_t fleet_store_floor(const struct fleet_store *s, enum fleet_rec_type type);
void fleet_store_unacked(const struct fleet_store *s, uint64_t out_unacked[FLEET_REC_TYPES],
                         uint64_t out_stalled[FLEET_REC_TYPES]);
void fleet_store_get_stats(const struct fleet_store *s, struct fleet_store_stats *out);

/* Time-driven upkeep (a disk queue's throttled ack writes): call every
 * 100 ms or so. Errors are logged (once), not returned. */
void fleet_store_tick(struct fleet_store *s);

/* ---- fleet configuration, names, faults, inventory ----------------------- */

struct fleet_fault {
    struct agent_fault fault; /* start/len: virtual, from the start of the run */
    unsigned device;          /* 1-based device number */
};

struct fleet_config {
    uint64_t seed;
    unsigned ndevices, nclinics;
    char id_prefix[FLEET_ID_PREFIX_MAX + 1];
    uint32_t window_ms;
    size_t buffer_bytes; /* per-device record store */
    /* Disk stores in queue_dir/<device id>/queue/ when not empty (the
     * directory must exist); memory rings otherwise. */
    char queue_dir[FLEET_QUEUE_DIR_MAX + 1];
    enum nw_dq_sync queue_sync; /* default NW_DQ_SYNC_NEVER */
    char firmware[NW_VERSION_MAX + 1];
    size_t nfaults;
    struct fleet_fault faults[FLEET_FAULTS_MAX];
};

/* Defaults: seed 1, 10 devices, 3 clinics, "SIM-", 1000 ms, 16 KiB, in
 * memory (queue sync "never" when a queue_dir is set). */
void fleet_config_init(struct fleet_config *cfg);

/*
 * Checks the fleet's shape: device and clinic counts, the id prefix (ids
 * must be valid device ids), window length, buffer size and queue dir
 * length. NW_ERR_CONFIG naming the flag (--devices, --clinics, --id-prefix,
 * --window-ms, --buffer, --queue-dir).
 */
enum nw_err fleet_config_check(const struct fleet_config *cfg, struct nw_error *out_err);

/*
 * Parses a --fault spec and adds it. The device must exist in the fleet as
 * configured now (set ndevices and id_prefix first). NW_ERR_CONFIG naming
 * the spec for a bad spec, a device not in the fleet, more than
 * AGENT_SIM_MAX_FAULTS faults on one device or FLEET_FAULTS_MAX in all.
 */
enum nw_err fleet_config_add_fault(struct fleet_config *cfg, const char *spec,
                                   struct nw_error *out_err);

/* Whether device n (1-based) has a fault of kind. */
bool fleet_config_has_fault(const struct fleet_config *cfg, unsigned device,
                            enum agent_fault_kind kind);

/* Writes the id of device n (1-based) into out. NW_ERR_INVAL if invalid. */
enum nw_err fleet_device_id(const struct fleet_config *cfg, unsigned n,
                            char out[NW_DEVICE_ID_MAX + 1]);

/* The 1-based number of a device id of this fleet, or 0 when not one. */
unsigned fleet_device_number(const struct fleet_config *cfg, const char *id);

/* The clinic of device n: its 0-based index, and the clinic's name
 * (UTF-8, unique within the fleet, some with commas and accents). */
unsigned fleet_clinic_of(const struct fleet_config *cfg, unsigned n);
void fleet_clinic_name(const struct fleet_config *cfg, unsigned clinic,
                       char out[NW_CLINIC_MAX + 1]);

/* "DG-3" for most devices, "DG-3X" for about one in five. Static string. */
const char *fleet_model_of(const struct fleet_config *cfg, unsigned n);

/* The models, as classes of device: index 0 .. FLEET_MODELS-1 and name. */
#define FLEET_MODELS 2
unsigned fleet_model_index(const struct fleet_config *cfg, unsigned n);
const char *fleet_model_name(unsigned index);

/*
 * Writes s as one CSV field (RFC 4180: quoted when it holds a comma, a
 * quote, a line break or leading/trailing space; quotes doubled) into out.
 * Returns the length, or 0 with out = "" when it does not fit.
 */
size_t fleet_csv_field(const char *s, char *out, size_t cap);

/* Writes the inventory "device,clinic,model" (header first) of every device
 * except those with an unknown_device fault. NW_ERR_IO on a write error. */
enum nw_err fleet_inventory_write(const struct fleet_config *cfg, FILE *f,
                                  struct nw_error *out_err);

/* ---- one device --------------------------------------------------------- */

struct fleet_device;

/*
 * Creates device n (1-based) of cfg (borrowed for the device's life), its
 * model starting at virtual time virt0_ms. run_salt (e.g. the wall start)
 * is mixed into a new epoch. With cfg->queue_dir set, opens the device's
 * disk store and resumes it (see "Restarts" at the top): epoch, seqs,
 * odometer and the model's start (never before the time lease) come from
 * what the directory holds. NW_ERR_INVAL for n out of range, NW_ERR_NOMEM,
 * the disk store's errors, NW_ERR_CORRUPT for a damaged sim.state or a
 * queue with records but no sim.state, NW_ERR_CONFIG when sim.state names
 * another device. Caller owns *out.
 */
enum nw_err fleet_device_open(const struct fleet_config *cfg, unsigned n, int64_t virt0_ms,
                              uint64_t run_salt, struct fleet_device **out,
                              struct nw_error *out_err);

/* fleet_device_open() without the error: NULL on any failure. */
struct fleet_device *fleet_device_new(const struct fleet_config *cfg, unsigned n, int64_t virt0_ms,
                                      uint64_t run_salt);

/* Closes the store (a disk device first records where its time ended, so a
 * restart continues without a gap) and frees *p. NULL-safe, sets *p = NULL. */
void fleet_device_destroy(struct fleet_device **p);

/* Whether the device resumed an earlier run's state (disk store only). */
bool fleet_device_resumed(const struct fleet_device *d);

/* Virtual time at which the device's model starts (virt0_ms, or later when
 * it resumed past it). */
int64_t fleet_device_start_ms(const struct fleet_device *d);

/* Time-driven upkeep of the device's store: fleet_store_tick(). */
void fleet_device_tick(struct fleet_device *d);

const char *fleet_device_name(const struct fleet_device *d);
unsigned fleet_device_index(const struct fleet_device *d); /* 1-based */
uint64_t fleet_device_epoch(const struct fleet_device *d);

/*
 * Runs the device's model up to virtual time virt_now_ms, taking at most
 * max_items samples and events (a bound per call; the rest waits for the
 * next call). Windows and events are numbered, validated against
 * wall_now_ms with the codec's limits, encoded and appended to the store.
 * Returns the number of records made.
 */
size_t fleet_device_advance(struct fleet_device *d, int64_t virt_now_ms, int64_t wall_now_ms,
                            struct nw_codec *codec, size_t max_items);

/* Closes the open window (the end of the run). Returns 0 or 1. */
size_t fleet_device_flush(struct fleet_device *d, int64_t wall_now_ms, struct nw_codec *codec);

/* Whether a device_offline fault holds at virtual time virt_ms. */
bool fleet_device_offline_at(const struct fleet_device *d, int64_t virt_ms);

/* A new connection: everything unacknowledged goes again. */
void fleet_device_on_connect(struct fleet_device *d, int64_t mono_ms);

/*
 * Applies an ack (already decoded). NW_ERR_INVALID, counted in
 * acks_ignored, for another device or epoch or a seq never sent.
 */
enum nw_err fleet_device_on_ack(struct fleet_device *d, const struct nw_ack *ack, int64_t mono_ms,
                                struct nw_error *out_err);

/*
 * When records are held and no ack advanced for ack_timeout_ms while
 * connected: rewinds (counted in resends) and returns true.
 */
bool fleet_device_check_timeout(struct fleet_device *d, int64_t mono_ms, bool connected,
                                int64_t ack_timeout_ms);

/* Rewinds the cursor (after a failed publish). */
void fleet_device_rewind(struct fleet_device *d);

/* Shared scratch for building messages: one per thread. */
struct fleet_batcher;

/* codec is borrowed; batch_max windows (or events) per message at most,
 * capped by the codec's limits. NULL when out of memory. */
struct fleet_batcher *fleet_batcher_new(struct nw_codec *codec, size_t batch_max);
void fleet_batcher_destroy(struct fleet_batcher **p);

struct fleet_message {
    enum nw_topic_kind kind; /* NW_TOPIC_TELEMETRY or NW_TOPIC_EVENT */
    const uint8_t *payload;  /* borrowed from the batcher until its next use */
    size_t len;
    size_t records;
};

/*
 * The next message: consecutive unsent records of one type from the
 * cursor, at most batch_max, as one batch carrying the current
 * queue_floor. The records count as taken; the caller reports the publish
 * with fleet_device_sent() or fleet_device_rewind(). NW_ERR_NOT_FOUND when
 * nothing waits.
 */
enum nw_err fleet_device_next_message(struct fleet_device *d, struct fleet_batcher *b,
                                      struct fleet_message *out, struct nw_error *out_err);
void fleet_device_sent(struct fleet_device *d, const struct fleet_message *m);

/* A status message of the device at virtual time virt_now_ms. */
void fleet_device_status(const struct fleet_device *d, enum nw_device_state state,
                         int64_t virt_now_ms, uint32_t heartbeat_s, struct nw_status *out);

struct fleet_device_stats {
    uint64_t windows_made, events_made;
    uint64_t windows_skipped; /* seqs skipped by data_gap without LEN */
    uint64_t windows_held;    /* windows held back by data_gap with LEN */
    uint64_t rejected;        /* made but refused by validation or encoding */
    uint64_t messages, windows_sent, events_sent;
    uint64_t windows_acked, events_acked;
    uint64_t windows_dropped, events_dropped;
    uint64_t acks, acks_ignored, resends;
    uint64_t queued_records, queued_bytes;
    uint64_t last_window_seq, last_event_seq;
    uint64_t odometer_cycles, running_s;
};
void fleet_device_get_stats(const struct fleet_device *d, struct fleet_device_stats *out);

/* fleet_store_unacked() of the device's store, summed over types. */
void fleet_device_unacked(const struct fleet_device *d, uint64_t *out_unacked,
                          uint64_t *out_stalled);

#endif

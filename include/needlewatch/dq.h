/*
 * dq.h - the disk queue: crash-safe, bounded, append-only store-and-forward.
 *
 * The agent appends every window and event here before publishing it, and a
 * record leaves the queue only when the collector's end-to-end ack covers
 * it (DESIGN.md section 4). The collector uses the same queue as its bounded
 * spool while the store is down.
 *
 * Records are (type, seq, payload): type < NW_DQ_TYPES (the agent uses
 * NW_DQ_TYPE_WINDOW and NW_DQ_TYPE_EVENT), seq >= 1 and strictly ascending
 * per type, payload at most NW_DQ_MAX_PAYLOAD bytes.
 *
 * On disk, DIR holds:
 *   seg-<16 hex first record number>.nwq   segments, append-only, read in
 *                                          name order; a 32-byte header then
 *                                          records of 24 header bytes (sync
 *                                          magic, length, seq, type, CRC32C
 *                                          over header and payload) + payload
 *   dq.state                               acked seqs, highest removed seqs and
 *                                          drop counters, replaced atomically
 *   seg-*.nwq.bad                          a segment of an unknown format
 *                                          version, moved aside (never read,
 *                                          never deleted)
 * Any other file is left alone and counted in foreign_files.
 *
 * Recovery (nw_dq_open) scans every segment: every complete record with a
 * valid checksum is kept; a run of bad bytes in the middle (bit rot, a
 * half-written sector) is skipped by searching forward for the next record
 * that verifies, and counted once in corrupt_records; bad bytes at the end
 * of the newest segment (a crash in the middle of a write, at any byte) are
 * truncated away and counted in torn_bytes_truncated. Opening never fails
 * because of what is inside a segment, so a damaged queue never becomes an
 * agent that looks healthy and forwards nothing.
 *
 * Durability (enum nw_dq_sync): kill -9 of the process never loses an
 * append that returned NW_OK under any policy, because the record is in the
 * kernel's page cache once write(2) returns. What the policies trade is
 * power loss / kernel crash against appends per second:
 *   NW_DQ_SYNC_ALWAYS    fdatasync before nw_dq_append returns: nothing that
 *                        returned NW_OK is lost; one disk flush per append
 *                        (hundreds per second on a typical disk, see bench).
 *   NW_DQ_SYNC_INTERVAL  fdatasync at most every sync_interval_ms (default
 *                        200): power loss may lose the appends of the last
 *                        interval. Call nw_dq_tick() periodically so the tail
 *                        of a burst is synced even when no append follows.
 *   NW_DQ_SYNC_NEVER     the OS writes back when it wants (typically within
 *                        30 s); no fsync of segments at all.
 * Segment creation and deletion fsync the directory (except under NEVER),
 * and dq.state is always written durably (temp file, fsync, rename, fsync
 * directory), because it guards deletions.
 *
 * Bounds: segment files of at most segment_bytes (default 1 MiB), total
 * bytes on disk at most max_bytes (default 64 MiB), at most
 * nw_dq_max_segments() segments. Memory is a fixed amount per segment plus
 * one read buffer (about 128 KiB), whatever the number of records: there is
 * no per-record index in memory. When an append would exceed max_bytes, the
 * oldest segments are deleted even though they hold unacknowledged records
 * (the newest data is the most valuable to the agent), and every
 * unacknowledged record lost that way is counted in dropped[type]; the
 * segment being written is never dropped.
 *
 * Acks: nw_dq_ack(type, seq) acknowledges every record of that type with a
 * seq <= seq. A segment whose records are all acknowledged is deleted after
 * the ack position that covers it is on disk. dq.state is rewritten at most
 * every state_interval_ms (default 1000), so 20 acks a second cost one
 * fsync'd rename a second; a kill -9 may forget the acks of the last
 * interval, which only means re-sending those records (the store's writes
 * are idempotent). An ack position that allowed a deletion is never lost.
 *
 * Threads: a struct nw_dq is used by one thread at a time; the queue starts
 * no threads. Two processes cannot open the same DIR (flock on the
 * directory): the second open fails with NW_ERR_IO.
 */
#ifndef NW_DQ_H
#define NW_DQ_H

#include <needlewatch/err.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Record types 0 .. NW_DQ_TYPES-1; each has its own ascending seq. */
#define NW_DQ_TYPES 4
#define NW_DQ_TYPE_WINDOW 1
#define NW_DQ_TYPE_EVENT 2

/* Largest payload of one record. */
#define NW_DQ_MAX_PAYLOAD (64 * 1024)
/* Bytes a record takes on disk besides its payload. */
#define NW_DQ_RECORD_OVERHEAD 24
/* Bytes of a segment's file header. */
#define NW_DQ_SEGMENT_HEADER 32

#define NW_DQ_DEFAULT_SEGMENT_BYTES (1024 * 1024)
#define NW_DQ_DEFAULT_MAX_BYTES (64 * 1024 * 1024)
#define NW_DQ_DEFAULT_SYNC_INTERVAL_MS 200
#define NW_DQ_DEFAULT_STATE_INTERVAL_MS 1000
/* Smallest segment_bytes accepted: a header and one small record. */
#define NW_DQ_MIN_SEGMENT_BYTES 256

enum nw_dq_sync { NW_DQ_SYNC_INTERVAL = 0, NW_DQ_SYNC_ALWAYS, NW_DQ_SYNC_NEVER };

struct nw_dq_options {
    /* Queue directory (borrowed during nw_dq_open only). If it does not
     * exist it is created with mode 0700; its parent must exist (a typo in
     * a path should fail, not build a tree somewhere). */
    const char *dir;
    /* 0 means the default for each of these. */
    uint64_t segment_bytes;    /* NW_DQ_MIN_SEGMENT_BYTES .. 1 GiB */
    uint64_t max_bytes;        /* >= segment_bytes */
    enum nw_dq_sync sync;      /* default NW_DQ_SYNC_INTERVAL */
    uint32_t sync_interval_ms; /* NW_DQ_SYNC_INTERVAL only */
    /* Minimum time between two writes of dq.state. Use
     * NW_DQ_STATE_EVERY_ACK to write it on every ack that moves (tests). */
    uint32_t state_interval_ms;
};
#define NW_DQ_STATE_EVERY_ACK UINT32_MAX

/* Fills *opt with the defaults and dir. */
void nw_dq_options_init(struct nw_dq_options *opt, const char *dir);

/*
 * One record returned by nw_dq_next(). payload points into a buffer owned
 * by the queue: it is valid until the next call of any nw_dq_* function on
 * the same queue; copy it (or finish publishing it) before.
 */
struct nw_dq_record {
    uint8_t type;
    uint64_t seq;
    const uint8_t *payload;
    size_t len;
};

struct nw_dq_stats {
    uint64_t records;               /* valid records on disk, acked or not */
    uint64_t bytes;                 /* bytes of all segments on disk */
    uint32_t segments;              /* segment files in the queue */
    uint32_t max_segments;          /* the bound on segments */
    uint64_t unacked[NW_DQ_TYPES];  /* see nw_dq_stats() */
    uint64_t dropped[NW_DQ_TYPES];  /* lost to overflow; kept across restarts */
    uint64_t last_seq[NW_DQ_TYPES]; /* nw_dq_max_seq() */
    uint64_t acked_seq[NW_DQ_TYPES];
    uint64_t corrupt_records;      /* damaged regions skipped, at open; adjacent
                                      damaged records are one region */
    uint64_t torn_bytes_truncated; /* torn tail bytes cut, since open */
    uint32_t bad_segments;         /* segments moved aside as .bad, since open */
    uint32_t foreign_files;        /* unknown files in DIR, at open */
    uint64_t syncs;                /* fdatasync/fsync calls, since open */
    uint64_t sync_errors;          /* failed background syncs, since open */
    uint64_t state_writes;         /* dq.state rewrites, since open */
    size_t mem_bytes;              /* heap owned by the queue; fixed at open */
};

struct nw_dq;

/*
 * Opens (creating if needed) the queue in opt->dir and recovers it (see the
 * top of this file). *out receives a queue the caller owns and releases with
 * nw_dq_close(). Errors: NW_ERR_INVAL/NW_ERR_CONFIG for bad options,
 * NW_ERR_NOT_FOUND when the parent of dir is missing, NW_ERR_IO when dir is
 * not a writable directory, is locked by another process, or a read fails;
 * the reason is in *out_err (may be NULL). Damage inside segments is never
 * an error: it is repaired, logged once and counted in the stats.
 */
enum nw_err nw_dq_open(const struct nw_dq_options *opt, struct nw_dq **out,
                       struct nw_error *out_err);

/*
 * Syncs everything (segments and dq.state, whatever the policy), closes
 * the files and frees *p. NULL-safe; sets *p = NULL.
 */
void nw_dq_close(struct nw_dq **p);

/*
 * Appends one record; payload (borrowed) is written with one pwritev(2).
 * NW_OK means it is in the queue and as durable as the sync policy says;
 * any error means it is not in the queue (a partial write is cut away).
 * Errors: NW_ERR_INVAL (type out of range, seq == 0, or seq not above
 * nw_dq_max_seq(type): the queue never holds two records of a type with the
 * same seq), NW_ERR_TOO_BIG (len > NW_DQ_MAX_PAYLOAD or the record does not
 * fit in an empty segment), NW_ERR_IO (disk full, I/O error: retryable).
 * May delete the oldest segments to stay within max_bytes (counted in
 * dropped[]).
 */
enum nw_err nw_dq_append(struct nw_dq *dq, uint8_t type, uint64_t seq, const void *payload,
                         size_t len, struct nw_error *out_err);

/*
 * The send cursor: returns the next record after the cursor, in append
 * order, skipping acknowledged ones, and moves the cursor past it.
 * NW_ERR_NOT_FOUND when every record has been returned (appends made later
 * are returned by later calls), NW_ERR_IO on a read error. *out is filled
 * only on NW_OK; its payload is owned by the queue (see struct
 * nw_dq_record). Damage is skipped exactly as recovery skipped it, and not
 * counted again.
 */
enum nw_err nw_dq_next(struct nw_dq *dq, struct nw_dq_record *out, struct nw_error *out_err);

/*
 * Moves the cursor back to the oldest unacknowledged record, so the next
 * nw_dq_next() calls re-deliver every unacknowledged record in order (on
 * reconnect, on ack timeout). A newly opened queue starts rewound.
 */
void nw_dq_rewind(struct nw_dq *dq);

/*
 * Acknowledges every record of type with seq <= seq. Acks that do not move
 * forward are ignored (NW_OK). NW_ERR_INVAL for a type out of range;
 * NW_ERR_INVALID when seq is above nw_dq_max_seq(type) (an ack for records
 * this queue never held, e.g. from an earlier epoch): it is ignored, the
 * caller logs it. May write dq.state and delete fully acked segments;
 * NW_ERR_IO if that fails (the ack is kept in memory and retried).
 */
enum nw_err nw_dq_ack(struct nw_dq *dq, uint8_t type, uint64_t seq, struct nw_error *out_err);

/*
 * The highest seq of type ever appended and still known: the maximum of
 * the records on disk, the acked position and the highest seq deleted by
 * overflow, all of which survive restarts. 0 when none. The agent resumes
 * its sequence counter from it. Under NW_DQ_SYNC_INTERVAL and
 * NW_DQ_SYNC_NEVER a power loss (not a kill -9) can lose the newest records,
 * and then this value goes back by as many; if those records had already
 * been published, their seqs would be reused. It never goes below an ack
 * that was written to dq.state. Use NW_DQ_SYNC_ALWAYS where reuse after
 * power loss is not acceptable.
 */
uint64_t nw_dq_max_seq(const struct nw_dq *dq, uint8_t type);

/*
 * Does the work that is due by time: the interval fdatasync and a throttled
 * dq.state write with the deletions it allows. Call it every 100 ms or so.
 * NW_ERR_IO if a write of dq.state failed (retried on the next call).
 */
enum nw_err nw_dq_tick(struct nw_dq *dq, struct nw_error *out_err);

/* Syncs segments and writes dq.state now, whatever the policy or interval. */
enum nw_err nw_dq_flush(struct nw_dq *dq, struct nw_error *out_err);

/*
 * Fills *out. unacked[t] counts the records of type t above the acked seq:
 * exact when each type's seqs are consecutive inside a segment (the agent's
 * gap-free numbering), otherwise an upper bound, because the queue keeps
 * only per-segment first/last seqs, not a per-record index.
 */
void nw_dq_stats(const struct nw_dq *dq, struct nw_dq_stats *out);

/*
 * The bound on segments for these sizes: 2 * (max_bytes / segment_bytes) + 2.
 * Enforced on its own (oldest dropped, as for max_bytes), because a segment
 * is sealed early when the next record does not fit, so with records large
 * against segment_bytes, many small segments could otherwise add up.
 */
uint32_t nw_dq_max_segments(uint64_t segment_bytes, uint64_t max_bytes);

/* CRC32C (Castagnoli), software, table-driven; crc is 0 for a new sum.
 * Exposed for the tests and the fuzz oracle. */
uint32_t nw_dq_crc32c(uint32_t crc, const void *data, size_t len);

#endif

/*
 * seqtrack.h - the highest contiguous stored sequence number of a device.
 *
 * A device's acks name the highest seq below which everything is stored
 * (DESIGN §4). Windows arrive out of order and twice (re-sends); the
 * tracker keeps the contiguous watermark plus a bitmap of the next
 * NW_SEQTRACK_SPAN seqs above it that are already stored. A seq further
 * ahead is not remembered (the agent re-sends it, the store overwrites it
 * idempotently, and it is counted then).
 *
 * The sender's queue floor (proto: queue_floor) says which seqs can never
 * come again; the watermark jumps over them and the number of seqs lost
 * that way is reported, so a hole the agent dropped never blocks acks.
 *
 * The bitmap (NW_SEQTRACK_SPAN / 8 = 512 bytes) exists only while some seq
 * above the watermark is settled: windows are settled in order almost
 * always, and two bitmaps per device were 10 MiB of a collector with
 * 10 000 devices. When it cannot be allocated, the seq is not remembered
 * either (as one too far ahead: re-sent and counted then).
 */
#ifndef COLLECTOR_SEQTRACK_H
#define COLLECTOR_SEQTRACK_H

#include <stdbool.h>
#include <stdint.h>

#define NW_SEQTRACK_SPAN 4096

struct nw_seqtrack {
    uint64_t contig; /* 1..contig are settled */
    uint64_t *bits;  /* NW_SEQTRACK_SPAN bits, owned; NULL while none is set */
    uint32_t nset;   /* bits set */
};

/* Starts with 1..contig settled (0: nothing); t's old contents are
 * ignored (use nw_seqtrack_reset on a tracker in use). */
void nw_seqtrack_init(struct nw_seqtrack *t, uint64_t contig);

/* Releases what t holds and starts it again with 1..contig settled. */
void nw_seqtrack_reset(struct nw_seqtrack *t, uint64_t contig);

/* Releases what t holds; t is then as after nw_seqtrack_init(t, contig). */
void nw_seqtrack_release(struct nw_seqtrack *t);

/* Marks seq settled. Returns true when the watermark moved. */
bool nw_seqtrack_settle(struct nw_seqtrack *t, uint64_t seq);

/* The sender holds nothing below floor: seqs under it that are not settled
 * are lost. Moves the watermark to at least floor - 1 and returns how many
 * unsettled seqs it skipped (0 when none). */
uint64_t nw_seqtrack_floor(struct nw_seqtrack *t, uint64_t floor);

/* Whether seq is settled. */
bool nw_seqtrack_has(const struct nw_seqtrack *t, uint64_t seq);

#endif

/*
 * writer.h - the store writer: batches points from all workers, writes
 * them, and tells each worker which of its windows and events are stored.
 *
 * Batches close at batch_points points or flush_ms after their first point.
 * A failed write keeps the batch and tries again when the store allows
 * (its retry_after). Meanwhile ingest goes on: what does not fit in memory
 * (one batch plus one message) goes to the spool, a disk queue (dq.h) of
 * at most spool_max_bytes; once the spool holds anything, new points queue
 * behind it, so it drains in order when the store returns. A full spool
 * drops its oldest chunk (counted; those points were never acknowledged, so
 * agents send them again). Nothing is acknowledged before the store
 * confirmed it, and a restart drains what the spool still holds.
 */
#ifndef COLLECTOR_WRITER_H
#define COLLECTOR_WRITER_H

#include "store.h"

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

struct writer_options {
    const char *endpoint;                /* bound: workers push points here */
    const char *const *settle_endpoints; /* [workers], connected */
    int workers;
    const char *store_url;
    struct nw_store_options store;
    size_t batch_points;       /* default 5000 */
    size_t max_pending_points; /* both jobs, default 40000; at least 2 x batch_points */
    int64_t flush_ms;          /* default 200 */
    int64_t drain_ms;          /* on stop, keep trying this long; default 8000 */
    const char *spool_dir;     /* NULL: no spool (the high-water mark pushes back) */
    uint64_t spool_max_bytes;  /* default 1 GiB; full: the oldest chunk is dropped */
};

struct writer;

/* Opens the store (a store that is down is not an error: writes retry).
 * zctx borrowed; the caller owns *out. */
enum nw_err writer_new(const struct writer_options *opt, void *zctx, struct writer **out,
                       struct nw_error *out_err);
void writer_destroy(struct writer **p);

/* Runs until *stop, then writes what it holds for at most drain_ms. */
void writer_run(struct writer *w, volatile sig_atomic_t *stop);

#endif

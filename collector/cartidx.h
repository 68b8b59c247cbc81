/*
 * cartidx.h - the global index of cartridge ids, for cartridge_reuse.
 *
 * A cartridge id is global: a sterile single-use cartridge moved to another
 * machine, or put back in the same machine for a second session, is the
 * same violation wherever the two uses land. Device state is sharded by
 * device, so the index cannot live in a worker: it is one SQLite table
 * (WAL) that every worker of every aggregate process on a host opens
 * (collector key alerts.cartridge_index), and it survives restarts. SQLite
 * needs a local file: aggregate processes spread over several hosts each
 * see their own host's index, so a cartridge moved between devices of two
 * hosts' shards is missed. That limit is documented in README ("When one
 * machine is not enough").
 *
 * The check happens once per cartridge_inserted event (a few per session),
 * so a transaction per check costs nothing at fleet rates.
 */
#ifndef COLLECTOR_CARTIDX_H
#define COLLECTOR_CARTIDX_H

#include <needlewatch/err.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cartidx;

/* Opens or creates path. The caller owns *out. */
enum nw_err cartidx_open(const char *path, struct cartidx **out, struct nw_error *out_err);
void cartidx_close(struct cartidx **p);

/*
 * Records the use of cartridge on device in session at time_ms. Returns
 * true when it was used before on another device, or on this device in
 * another session (out_where: "device D, session S"); a re-seat within the
 * same session is not a reuse. On a database error it logs once per error
 * streak and answers false (an unchecked insert is not a violation).
 */
bool cartidx_check(struct cartidx *ix, const char *cartridge, const char *device,
                   const char *session, int64_t time_ms, char *out_where, size_t where_cap);

/* Database errors so far (for /metrics). */
uint64_t cartidx_errors(const struct cartidx *ix);

#endif

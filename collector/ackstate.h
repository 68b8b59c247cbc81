/*
 * ackstate.h - the acknowledged watermarks of every device, on disk.
 *
 * A restarted collector must neither lose nor wrongly repeat acks
 * (DESIGN §4). Workers write a device's new watermark here *before* they
 * ask for the ack to be published, so whatever an agent was ever told is
 * stored is known after any crash; gaps below an agent's queue floor can
 * then be told apart from windows acknowledged by an earlier run.
 *
 * One SQLite file (WAL) shared by all workers of a process; each worker
 * loads the devices that hash to it.
 */
#ifndef COLLECTOR_ACKSTATE_H
#define COLLECTOR_ACKSTATE_H

#include <needlewatch/err.h>

#include <stdint.h>

struct ackstate;

/* Opens or creates path. The caller owns *out. */
enum nw_err ackstate_open(const char *path, struct ackstate **out, struct nw_error *out_err);
void ackstate_close(struct ackstate **p);

/* Calls fn for every stored device (strings borrowed for the call). */
typedef void (*ackstate_row_fn)(void *user, const char *device, uint64_t epoch, uint64_t window_seq,
                                uint64_t event_seq);
enum nw_err ackstate_load(struct ackstate *st, ackstate_row_fn fn, void *user,
                          struct nw_error *out_err);

/* A transaction of puts; commit makes them durable (synchronous=FULL). */
enum nw_err ackstate_begin(struct ackstate *st, struct nw_error *out_err);
enum nw_err ackstate_put(struct ackstate *st, const char *device, uint64_t epoch,
                         uint64_t window_seq, uint64_t event_seq, struct nw_error *out_err);
enum nw_err ackstate_commit(struct ackstate *st, struct nw_error *out_err);
void ackstate_rollback(struct ackstate *st);

#endif

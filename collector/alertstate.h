/*
 * alertstate.h - what the alert engine must remember across restarts:
 * each device's rule state (rules.h, a blob) and the operators' silences.
 *
 * One SQLite file (WAL, synchronous=NORMAL) per collector process, one
 * connection per worker. NORMAL makes a commit survive a killed process
 * (kill -9), not a power loss: after a power loss an alert may be notified
 * a second time, never lost (the rules re-judge the windows the agents
 * re-send). Workers commit a device's state before they notify any of its
 * transitions, and together with its ack watermark, so the state always
 * covers every window the agent was told is stored.
 */
#ifndef COLLECTOR_ALERTSTATE_H
#define COLLECTOR_ALERTSTATE_H

#include <needlewatch/err.h>

#include <stddef.h>
#include <stdint.h>

struct alertstate;

/* Opens or creates path. The caller owns *out. */
enum nw_err alertstate_open(const char *path, struct alertstate **out, struct nw_error *out_err);
void alertstate_close(struct alertstate **p);

/* Calls fn for every stored device (device and blob borrowed for the call). */
typedef void (*alertstate_row_fn)(void *user, const char *device, const void *blob, size_t len);
enum nw_err alertstate_load(struct alertstate *st, alertstate_row_fn fn, void *user,
                            struct nw_error *out_err);

/* A transaction of puts. */
enum nw_err alertstate_begin(struct alertstate *st, struct nw_error *out_err);
enum nw_err alertstate_put(struct alertstate *st, const char *device, const void *blob, size_t len,
                           struct nw_error *out_err);
enum nw_err alertstate_commit(struct alertstate *st, struct nw_error *out_err);
void alertstate_rollback(struct alertstate *st);

/* Silences: device or rule "" means all. Expired ones are deleted on
 * load. */
struct alert_silence {
    char device[65];
    char rule[65];
    int64_t until_ms; /* wall clock */
    int64_t created_ms;
};
enum nw_err alertstate_add_silence(struct alertstate *st, const struct alert_silence *s,
                                   struct nw_error *out_err);
/* Fills up to cap silences still in force at now_ms; returns how many, or
 * (size_t)-1 on error. */
size_t alertstate_silences(struct alertstate *st, int64_t now_ms, struct alert_silence *out,
                           size_t cap, struct nw_error *out_err);

#endif

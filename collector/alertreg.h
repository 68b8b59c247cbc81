/*
 * alertreg.h - the open alerts of this process, for the operator API.
 *
 * Workers own the alert state machines (rules.h); the HTTP thread must
 * answer "which alerts are open" and "does alert ID exist" without asking
 * every worker. Workers report each transition here; the registry keeps a
 * compact copy of every open alert under one mutex (transitions are rare,
 * reads are operator requests). Bounded: beyond capacity an alert is not
 * listed (counted in nw_alerts_unlisted_total); it still fires, resolves
 * and can be acknowledged through the store's alert list.
 */
#ifndef COLLECTOR_ALERTREG_H
#define COLLECTOR_ALERTREG_H

#include <needlewatch/msg.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ALERTREG_DEFAULT_CAP 16384

struct alertreg;

/* NULL when out of memory. The caller owns the result. */
struct alertreg *alertreg_new(size_t capacity);
void alertreg_destroy(struct alertreg **p);

/* Firing and renotify add or refresh, acknowledged marks, resolved removes. */
void alertreg_apply(struct alertreg *r, const struct nw_alert *a);

/* Whether alert_id is open. */
bool alertreg_has(struct alertreg *r, uint64_t alert_id);

/* Writes the open alerts as a JSON array into buf (caller-owned), at most
 * cap - 1 bytes, NUL-terminated; returns the length, or 0 when it did not
 * fit. */
size_t alertreg_json(struct alertreg *r, char *buf, size_t cap);

/* Alerts not listed because the registry was full. */
uint64_t alertreg_unlisted(struct alertreg *r);

#endif

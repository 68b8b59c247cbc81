/*
 * rows.h - the small measurements (session, alert, device_event, latest
 * device_status) fetched into plain arrays through query.h.
 *
 * Windows are never fetched into memory (report.c streams them); these
 * measurements are small (a session is hours of windows, an alert a state
 * change), so commands sort and join them in memory. Every array is sorted
 * here (device, then time, then a tie-breaker column), so the order never
 * depends on the backend. Bounded by NW_ROWS_MAX rows (NW_ERR_TOO_BIG, with
 * a hint to narrow the range).
 *
 * Strings longer than their field are cut (fields are sized by the wire
 * limits of msg.h, so only foreign data is cut). Absent numbers are NaN,
 * absent strings "".
 */
#ifndef CLI_ROWS_H
#define CLI_ROWS_H

#include "query.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NW_ROWS_MAX 20000000

/* Which rows: time in [from, to) and equality filters (NULL = any). */
struct nw_rows_filter {
    int64_t from_ms, to_ms;
    const char *clinic, *device, *model; /* model only where it is a tag */
    struct nw_qfilter extra[3];          /* more equalities, col NULL = unused */
};

struct nw_session_row {
    char device[65], clinic[129], model[33];
    char session[65], op[17], cartridge[65], cartridge_lot[65], pigment_lot[65], firmware[33];
    int64_t start_ms, end_ms; /* end = the row's time */
    double duration_s, running_s, pigment_ul, rate_pct, depth_pct;
    int64_t cycles, cartridges, alerts, windows, windows_expected;
    bool cut_off;
};

struct nw_alert_row {
    char device[65], clinic[129], rule[65], severity[16], state[16], message[201];
    int64_t time_ms, alert_id, since_ms;
    double value, threshold;
    bool late;
};

struct nw_event_row {
    char device[65], clinic[129], kind[24];
    char session[65], op[17], cartridge[65], lot[65], firmware[33], shade[65];
    int64_t time_ms, seq;
    double volume_ul;
    int resets_service; /* -1 absent, 0, 1 */
};

struct nw_status_row {
    char device[65], clinic[129], firmware[33];
    int64_t time_ms, odometer, heartbeat_s;
    double hours;
    int online; /* -1 absent */
};

/* Each fills *out (caller-owned, free()) with *out_n rows, sorted by device,
 * time (and kind / rule). */
enum nw_err nw_rows_sessions(struct nw_query *q, const struct nw_rows_filter *f,
                             struct nw_session_row **out, size_t *out_n, struct nw_error *err);
enum nw_err nw_rows_alerts(struct nw_query *q, const struct nw_rows_filter *f,
                           struct nw_alert_row **out, size_t *out_n, struct nw_error *err);
enum nw_err nw_rows_events(struct nw_query *q, const struct nw_rows_filter *f,
                           struct nw_event_row **out, size_t *out_n, struct nw_error *err);
/* Only the newest status row of each device in the range. */
enum nw_err nw_rows_latest_status(struct nw_query *q, const struct nw_rows_filter *f,
                                  struct nw_status_row **out, size_t *out_n, struct nw_error *err);

#endif

/*
 * point.h - one row of the store contract (DESIGN §5), before it becomes
 * SQL or line protocol.
 *
 * Aggregation workers make points; store writers turn them into their
 * backend's form. Tags (clinic, device, model and, per measurement, kind,
 * rule, severity) come from the collector's inventory and the message, never
 * from a device's claim about its clinic. High-cardinality ids (session,
 * cartridge, lots, operator) are fields, never tags (LESSONS.md).
 *
 * Identity (what makes a re-sent point overwrite itself, DESIGN §4.3):
 *   needle_window   (device, window start_ms)
 *   device_event    (device, kind, event time_ms)
 *   device_status   (device, status time_ms)
 *   session         (device, session end_ms)
 *   alert           (device, rule, time_ms)
 */
#ifndef COLLECTOR_POINT_H
#define COLLECTOR_POINT_H

#include <needlewatch/msg.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum nw_point_kind {
    NW_POINT_WINDOW, /* measurement needle_window */
    NW_POINT_EVENT,  /* device_event */
    NW_POINT_STATUS, /* device_status */
    NW_POINT_SESSION,
    NW_POINT_ALERT,
    NW_POINT__COUNT
};

/* The store's measurement name of a kind ("needle_window", ...). */
const char *nw_point_measurement(enum nw_point_kind kind);

/* A session's summary, written when it ends or is cut off (issue: reports). */
struct nw_session_summary {
    char session_id[NW_ID_MAX + 1];
    char operator_code[NW_OPERATOR_MAX + 1];
    char cartridge_id[NW_ID_MAX + 1]; /* first cartridge of the session */
    char cartridge_lot[NW_ID_MAX + 1];
    char pigment_lot[NW_ID_MAX + 1];
    char firmware[NW_VERSION_MAX + 1];
    int64_t start_ms, end_ms;
    double duration_s;
    double running_s;
    uint64_t cycles;
    double pigment_ul;
    double rate_in_spec_pct;  /* of running time */
    double depth_in_spec_pct; /* of running time */
    uint32_t cartridges;
    uint32_t alerts;
    uint64_t windows;          /* windows received */
    uint64_t windows_expected; /* from the session's first and last seq */
    bool cut_off;              /* ended by the device going offline */
};

struct nw_point {
    enum nw_point_kind kind;
    char device[NW_DEVICE_ID_MAX + 1];
    char clinic[NW_CLINIC_MAX + 1];
    char model[NW_VERSION_MAX + 1];
    uint64_t epoch;
    union {
        struct {
            struct nw_window w;
            bool in_spec;
        } window;
        struct nw_event event;
        struct nw_status status;
        struct nw_session_summary session;
        struct nw_alert alert;
    } u;
};

/* The point's timestamp (ms since the Unix epoch), per the table above. */
int64_t nw_point_time_ms(const struct nw_point *p);

/* The bytes of a point of this kind that hold data: the header and its
 * member of the union, rounded up to 8. A copy of that many bytes is a
 * compact point: read it through struct nw_point, but only its own kind's
 * member, and never copy it as a whole struct. An unknown kind: the
 * whole struct. */
size_t nw_point_size(enum nw_point_kind kind);

#endif

/* point.c - measurement names and timestamps of store points. */
#include "point.h"

const char *nw_point_measurement(enum nw_point_kind kind)
{
    static const char *const names[NW_POINT__COUNT] = {
        [NW_POINT_WINDOW] = "needle_window", [NW_POINT_EVENT] = "device_event",
        [NW_POINT_STATUS] = "device_status", [NW_POINT_SESSION] = "session",
        [NW_POINT_ALERT] = "alert",
    };
    return (unsigned)kind < NW_POINT__COUNT ? names[kind] : "unknown";
}

int64_t nw_point_time_ms(const struct nw_point *p)
{
    switch (p->kind) {
    case NW_POINT_WINDOW:
        return p->u.window.w.start_ms;
    case NW_POINT_EVENT:
        return p->u.event.time_ms;
    case NW_POINT_STATUS:
        return p->u.status.time_ms;
    case NW_POINT_SESSION:
        return p->u.session.end_ms;
    case NW_POINT_ALERT:
        return p->u.alert.time_ms;
    default:
        return 0;
    }
}

/* point.c - measurement names and timestamps of store points. */
#include "point.h"

#include <stddef.h>

const char *nw_point_measurement(enum nw_point_kind kind)
{
    static const char *const names[NW_POINT__COUNT] = {
        [NW_POINT_WINDOW] = "needle_window", [NW_POINT_EVENT] = "device_event",
        [NW_POINT_STATUS] = "device_status", [NW_POINT_SESSION] = "session",
        [NW_POINT_ALERT] = "alert",
    };
    return (unsigned)kind < NW_POINT__COUNT ? names[kind] : "unknown";
}

#define PSIZE(m)                                                                                   \
    ((offsetof(struct nw_point, u) + sizeof(((struct nw_point *)0)->u.m) + 7) & ~(size_t)7)

size_t nw_point_size(enum nw_point_kind kind)
{
    static const size_t sizes[NW_POINT__COUNT] = {
        [NW_POINT_WINDOW] = PSIZE(window), [NW_POINT_EVENT] = PSIZE(event),
        [NW_POINT_STATUS] = PSIZE(status), [NW_POINT_SESSION] = PSIZE(session),
        [NW_POINT_ALERT] = PSIZE(alert),
    };
    size_t s = (unsigned)kind < NW_POINT__COUNT ? sizes[kind] : 0;
    return s && s < sizeof(struct nw_point) ? s : sizeof(struct nw_point);
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

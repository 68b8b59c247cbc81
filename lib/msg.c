/* msg.c - stable names of the message enums (stored, logged, in JSON). */
#include <needlewatch/msg.h>

#define NAME_OR_UNSPECIFIED(table, v)                                                              \
    (((unsigned)(v) < sizeof(table) / sizeof((table)[0]) && (table)[v]) ? (table)[v]               \
                                                                        : "unspecified")

const char *nw_event_kind_name(enum nw_event_kind kind)
{
    static const char *const names[] = {
        [NW_EVENT_UNSPECIFIED] = "unspecified",
        [NW_EVENT_POWER_ON] = "power_on",
        [NW_EVENT_SESSION_START] = "session_start",
        [NW_EVENT_SESSION_END] = "session_end",
        [NW_EVENT_CARTRIDGE_INSERTED] = "cartridge_inserted",
        [NW_EVENT_CARTRIDGE_REMOVED] = "cartridge_removed",
        [NW_EVENT_PIGMENT_LOADED] = "pigment_loaded",
        [NW_EVENT_FAULT] = "fault",
        [NW_EVENT_MAINTENANCE] = "maintenance",
        [NW_EVENT_CALIBRATION] = "calibration",
    };
    return NAME_OR_UNSPECIFIED(names, kind);
}

const char *nw_severity_name(enum nw_severity sev)
{
    static const char *const names[] = {
        [NW_SEVERITY_INFO] = "info",
        [NW_SEVERITY_WARNING] = "warning",
        [NW_SEVERITY_CRITICAL] = "critical",
    };
    return NAME_OR_UNSPECIFIED(names, sev);
}

const char *nw_alert_state_name(enum nw_alert_state state)
{
    static const char *const names[] = {
        [NW_ALERT_FIRING] = "firing",
        [NW_ALERT_RESOLVED] = "resolved",
        [NW_ALERT_ACKNOWLEDGED] = "acknowledged",
        [NW_ALERT_RENOTIFY] = "renotify",
    };
    return NAME_OR_UNSPECIFIED(names, state);
}

const char *nw_device_state_name(enum nw_device_state state)
{
    static const char *const names[] = {
        [NW_DEVICE_ONLINE] = "online",
        [NW_DEVICE_OFFLINE] = "offline",
    };
    return NAME_OR_UNSPECIFIED(names, state);
}

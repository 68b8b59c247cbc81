/*
 * msg.h - the messages of DESIGN.md §3 as plain C structs.
 *
 * protobuf-c types stop at the codec; everything else (agent, collector,
 * CLI, rules) sees these. Strings are fixed arrays sized by the wire limits,
 * so a decoded message owns no heap memory and copies with `=`. Batches
 * point at caller-owned arrays of fixed capacity: decoding never grows them.
 *
 * Units follow the wire schema: Hz, mm, µL, ms, ms since the Unix epoch
 * (UTC).
 */
#ifndef NW_MSG_H
#define NW_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* String limits in bytes, without the NUL. */
#define NW_DEVICE_ID_MAX 64 /* [A-Za-z0-9_-]{1,64} */
#define NW_ID_MAX 64        /* session, cartridge, lot ids: [A-Za-z0-9._:-] */
#define NW_OPERATOR_MAX 16  /* pseudonymous operator code: [A-Za-z0-9_-] */
#define NW_VERSION_MAX 32   /* firmware, model, needle config: [A-Za-z0-9._+-] */
#define NW_NAME_MAX 64      /* shade, action, rule, boot reason: UTF-8, no controls */
#define NW_TEXT_MAX 200     /* fault text, alert message: UTF-8, no controls */
#define NW_CLINIC_MAX 128   /* clinic names from the inventory: UTF-8, no controls */

enum nw_event_kind {
    NW_EVENT_UNSPECIFIED = 0, /* also: a kind this build does not know */
    NW_EVENT_POWER_ON = 1,
    NW_EVENT_SESSION_START = 2,
    NW_EVENT_SESSION_END = 3,
    NW_EVENT_CARTRIDGE_INSERTED = 4,
    NW_EVENT_CARTRIDGE_REMOVED = 5,
    NW_EVENT_PIGMENT_LOADED = 6,
    NW_EVENT_FAULT = 7,
    NW_EVENT_MAINTENANCE = 8,
    NW_EVENT_CALIBRATION = 9,
    NW_EVENT__COUNT
};

enum nw_session_end_reason {
    NW_SESSION_END_UNSPECIFIED = 0,
    NW_SESSION_END_NORMAL = 1,
    NW_SESSION_END_POWER_LOSS = 2,
    NW_SESSION_END_TIMEOUT = 3,
};

enum nw_device_state {
    NW_DEVICE_UNSPECIFIED = 0,
    NW_DEVICE_ONLINE = 1,
    NW_DEVICE_OFFLINE = 2,
};

enum nw_severity {
    NW_SEVERITY_UNSPECIFIED = 0,
    NW_SEVERITY_INFO = 1,
    NW_SEVERITY_WARNING = 2,
    NW_SEVERITY_CRITICAL = 3,
};

enum nw_alert_state {
    NW_ALERT_UNSPECIFIED = 0,
    NW_ALERT_FIRING = 1,
    NW_ALERT_RESOLVED = 2,
    NW_ALERT_ACKNOWLEDGED = 3,
    NW_ALERT_RENOTIFY = 4,
};

struct nw_window {
    uint64_t seq;
    int64_t start_ms;
    uint32_t duration_ms;
    uint32_t running_ms;
    uint64_t cycles;
    double rate_mean_hz, rate_min_hz, rate_max_hz;
    double depth_mean_mm, depth_min_mm, depth_max_mm;
    double pigment_ul;
    char session_id[NW_ID_MAX + 1]; /* "" when no session runs */
    char cartridge_id[NW_ID_MAX + 1];
    char pigment_lot[NW_ID_MAX + 1];
};

struct nw_window_batch {
    char device_id[NW_DEVICE_ID_MAX + 1];
    uint64_t epoch;
    uint64_t queue_floor;      /* lowest seq the sender still holds; 0 = unknown */
    size_t count;              /* windows in use */
    size_t capacity;           /* size of the windows array */
    struct nw_window *windows; /* borrowed: owned by whoever set it */
};

struct nw_event {
    uint64_t seq;
    int64_t time_ms;
    enum nw_event_kind kind;
    /* Detail fields; only those of `kind` are meaningful, the rest are zero. */
    char firmware[NW_VERSION_MAX + 1];       /* power on */
    char boot_reason[NW_NAME_MAX + 1];       /* power on */
    char session_id[NW_ID_MAX + 1];          /* session start / end */
    char operator_code[NW_OPERATOR_MAX + 1]; /* session start, optional */
    enum nw_session_end_reason end_reason;   /* session end */
    char cartridge_id[NW_ID_MAX + 1];        /* cartridge inserted / removed */
    char needle_config[NW_VERSION_MAX + 1];  /* cartridge inserted */
    char lot[NW_ID_MAX + 1];                 /* cartridge or pigment lot */
    char shade[NW_NAME_MAX + 1];             /* pigment loaded */
    double volume_ul;                        /* pigment loaded */
    uint32_t fault_code;                     /* fault */
    char text[NW_TEXT_MAX + 1];              /* fault text */
    char action[NW_NAME_MAX + 1];            /* maintenance */
    bool resets_service;                     /* maintenance */
    double depth_offset_mm;                  /* calibration */
    double rate_scale;                       /* calibration */
};

struct nw_event_batch {
    char device_id[NW_DEVICE_ID_MAX + 1];
    uint64_t epoch;
    uint64_t queue_floor; /* lowest seq the sender still holds; 0 = unknown */
    size_t count;
    size_t capacity;
    struct nw_event *events; /* borrowed */
};

struct nw_status {
    char device_id[NW_DEVICE_ID_MAX + 1];
    uint64_t epoch;
    enum nw_device_state state;
    int64_t time_ms;
    char firmware[NW_VERSION_MAX + 1];
    char model[NW_VERSION_MAX + 1];
    uint64_t uptime_s;
    uint64_t odometer_cycles;
    uint64_t running_s;
    uint64_t queue_depth;
    uint64_t queue_bytes;
    uint64_t windows_dropped;
    uint64_t events_dropped;
    uint64_t corrupt_records;
    uint64_t last_window_seq;
    uint64_t last_event_seq;
    char session_id[NW_ID_MAX + 1];
    uint32_t heartbeat_s;
};

struct nw_ack {
    char device_id[NW_DEVICE_ID_MAX + 1];
    uint64_t epoch;
    uint64_t window_seq;
    uint64_t event_seq;
    int64_t time_ms;
};

struct nw_alert {
    char device_id[NW_DEVICE_ID_MAX + 1];
    uint64_t alert_id;
    char rule[NW_NAME_MAX + 1];
    enum nw_severity severity;
    enum nw_alert_state state;
    int64_t time_ms;
    int64_t since_ms;
    double value;
    double threshold;
    char message[NW_TEXT_MAX + 1];
    char clinic[NW_CLINIC_MAX + 1];
    char model[NW_VERSION_MAX + 1];
    bool late;
};

/* Stable lower-case names ("session_start", "critical", "firing"), used in
 * the store, logs and JSON. Never NULL; "unspecified" for unknown values. */
const char *nw_event_kind_name(enum nw_event_kind kind);
const char *nw_severity_name(enum nw_severity sev);
const char *nw_alert_state_name(enum nw_alert_state state);
const char *nw_device_state_name(enum nw_device_state state);

#endif

/*
 * rules.h - the alert rules of DESIGN §6 and the session summaries of one
 * device, as a pure state machine: messages in, alert transitions and
 * session points out, no I/O.
 *
 * The aggregation worker owns one struct rules_dev per device and feeds it
 * the device's windows and events in sequence order (anything at or below
 * the last evaluated seq is a re-send or a late fill and is not judged
 * again), its statuses, operator acks and a periodic tick. Every rule runs
 * on event time: a condition "holds for 2 s" when the windows' own
 * timestamps span 2 s, so a backlog uploaded after an outage is judged as
 * it happened, and the alert carries its real time and late = true.
 *
 * Lifecycle of one (device, rule): idle -> firing once the condition has
 * held for hold_ms -> resolved once the clear condition (a separate,
 * tighter threshold: hysteresis) has held for clear_ms. Missing data never
 * resolves: only windows, events or statuses that show the condition gone.
 * An open alert can be acknowledged (once); an unacknowledged critical one
 * re-notifies every renotify_ms of wall time. While device_offline is open,
 * rate, unstable, depth and gap alerts are held back (their conditions keep
 * being tracked and fire once the device is back, if they still hold).
 *
 * struct rules_dev is plain data with no pointers, so the worker persists
 * it as a blob (alertstate.h) and a restarted collector goes on where it
 * stopped: open alerts stay open and never fire twice.
 */
#ifndef COLLECTOR_RULES_H
#define COLLECTOR_RULES_H

#include "point.h"

#include <needlewatch/config.h>
#include <needlewatch/msg.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum rule_id {
    RULE_RATE,       /* needle_rate_out_of_spec */
    RULE_UNSTABLE,   /* needle_rate_unstable */
    RULE_DEPTH,      /* needle_depth_out_of_spec */
    RULE_CART_REUSE, /* cartridge_reuse */
    RULE_CART_WORN,  /* cartridge_worn */
    RULE_MAINT,      /* maintenance_due */
    RULE_OFFLINE,    /* device_offline */
    RULE_PIGMENT,    /* pigment_overuse */
    RULE_GAP,        /* data_gap */
    RULE_UNKNOWN,    /* unknown_device */
    RULE__COUNT
};

/* "needle_rate_out_of_spec", ...; NULL for an unknown id. */
const char *rules_name(enum rule_id r);
/* The id of a rule name, or RULE__COUNT. */
enum rule_id rules_from_name(const char *name);

/* A device model's spec window and service limits (DESIGN §1 defaults). */
struct nw_model_spec {
    char model[NW_VERSION_MAX + 1];
    struct nw_cfg_range rate_hz;   /* 100..140 */
    struct nw_cfg_range depth_mm;  /* 0.25..0.50 */
    double service_hours;          /* running hours between services, 500; 0 = off */
    uint64_t service_cycles;       /* needle cycles between services; 0 = off */
    uint64_t cartridge_max_cycles; /* cycles on one cartridge; 0 = off */
};

struct rule_params {
    bool enabled;
    enum nw_severity severity;
    int64_t hold_ms;  /* event time the condition must hold */
    int64_t clear_ms; /* event time the clear condition must hold */
};

/* Immutable after start; rules_config_defaults fills DESIGN §6. */
struct rules_config {
    struct rule_params rule[RULE__COUNT];
    double rate_clear_margin_hz;  /* clear inside lo+m..hi-m (2: 102..138 Hz) */
    double depth_clear_margin_mm; /* 0.01 */
    double unstable_spread_hz;    /* max-min within a window, 15 */
    double unstable_clear_hz;     /* 12 */
    double pigment_factor;        /* x the model's fleet median, 3 */
    double pigment_clear_factor;  /* 2.5 */
    uint64_t pigment_min_samples; /* running windows before the median counts, 300 */
    int64_t offline_after_ms;     /* no message for this long: offline, 90 s */
    int64_t renotify_ms;          /* unacked critical re-notifies, 30 min; 0 = off */
    int64_t late_after_ms;        /* an alert this much older than now is late, 60 s */
    int64_t session_grace_ms;     /* wall time a session end waits for windows, 2 s */
    int64_t session_cutoff_ms;    /* offline this long in a session: summary cut_off, 10 min */
};

void rules_config_defaults(struct rules_config *cfg);

/* One rule's persisted state. Times are event time (ms since the epoch)
 * except notified_ms (wall). */
struct rule_track {
    int64_t cond_since;  /* first window the condition held in; 0 = not holding */
    int64_t clear_since; /* first window the clear condition held in; 0 = not */
    uint64_t alert_id;   /* open alert; 0 = none */
    int64_t fired_ms;    /* time of the firing */
    int64_t notified_ms; /* wall time of the last notification */
    double value;        /* the value that fired */
    uint8_t severity;
    bool acked;
};

struct session_acc {
    bool open;
    bool end_seen;
    bool cut_off;
    char id[NW_ID_MAX + 1];
    char operator_code[NW_OPERATOR_MAX + 1];
    char cartridge[NW_ID_MAX + 1];
    char cartridge_lot[NW_ID_MAX + 1];
    char pigment_lot[NW_ID_MAX + 1];
    int64_t start_ms, end_ms, last_ms;
    int64_t end_wall_ms; /* when the end event was seen (wall) */
    uint64_t cycles;
    double pigment_ul;
    int64_t running_ms, rate_ok_ms, depth_ok_ms;
    uint32_t cartridges, alerts;
    uint64_t windows, first_seq, last_seq;
};

#define RULES_DEV_VERSION 3

struct rules_dev {
    uint32_t version;              /* RULES_DEV_VERSION: a blob of another layout is refused */
    uint32_t size;                 /* sizeof(struct rules_dev) */
    uint64_t last_wseq, last_eseq; /* evaluated (this epoch) */
    struct rule_track r[RULE__COUNT];
    char firmware[NW_VERSION_MAX + 1];
    char cartridge[NW_ID_MAX + 1]; /* the one in the device now */
    uint64_t cart_cycles;
    /* service */
    uint64_t running_s, odometer;         /* lifetime, last status + windows since */
    int64_t running_at_ms;                /* event time running_s and odometer are as of */
    uint64_t base_running_s, base_cycles; /* at the last service */
    /* offline */
    bool offline;
    int64_t last_seen_wall;
    int64_t last_data_ms; /* end of the newest window evaluated */
    /* data gap: highest missing seq and when (event time) the oldest open gap began */
    uint64_t gap_hi;
    int64_t gap_since;
    struct session_acc sess;
};

/* The outputs of one call, appended; the caller empties it. */
#define RULES_OUT_MAX 16
struct rules_out {
    struct nw_alert alerts[RULES_OUT_MAX];
    size_t nalerts;
    struct nw_session_summary sessions[2];
    size_t nsessions;
    uint64_t overflow; /* transitions that did not fit: counted, never silent */
};

/* Online estimate of a model's median pigment per running minute: a log
 * histogram, so memory is fixed and the median of millions of windows
 * costs one pass over 256 bins. */
#define RULES_PIG_BINS 256
struct rules_pigstat {
    uint64_t bins[RULES_PIG_BINS];
    uint64_t n;
};
void rules_pig_add(struct rules_pigstat *s, double ul_per_min);
/* The median, or NAN when fewer than min samples. */
double rules_pig_median(const struct rules_pigstat *s, uint64_t min);

/*
 * The cartridge index (global across devices, shards and restarts; see
 * cartidx.h). Called on each cartridge_inserted event: returns true when the
 * cartridge was used before on another device or in another session, with
 * that use in out_where ("device D, session S"); records this use
 * otherwise.
 */
typedef bool (*rules_cart_fn)(void *user, const char *cartridge, const char *device,
                              const char *session, int64_t time_ms, char *out_where,
                              size_t where_cap);

/* What a call needs to know besides the device's state; all borrowed. */
struct rules_ctx {
    const struct rules_config *cfg;
    const struct nw_model_spec *spec;
    const char *device, *clinic, *model;
    struct rules_pigstat *pig; /* this model's; NULL: pigment rule off */
    rules_cart_fn cart;        /* NULL: cartridge reuse off */
    void *cart_user;
    int64_t now_ms;         /* wall clock */
    uint64_t stored_contig; /* the device's contiguous stored window seq (gap closing) */
};

/* A fresh state. */
void rules_dev_init(struct rules_dev *d);

/* Whether a persisted blob has this build's layout. */
bool rules_dev_valid(const void *blob, size_t len);

/* A new epoch: sequence numbers restart; open alerts stay. */
void rules_new_epoch(struct rules_dev *d);

void rules_on_window(struct rules_dev *d, const struct rules_ctx *c, const struct nw_window *w,
                     struct rules_out *out);
void rules_on_event(struct rules_dev *d, const struct rules_ctx *c, const struct nw_event *e,
                    struct rules_out *out);
void rules_on_status(struct rules_dev *d, const struct rules_ctx *c, const struct nw_status *s,
                     struct rules_out *out);
/* known: whether the device is in the inventory (first sight, reload). */
void rules_on_inventory(struct rules_dev *d, const struct rules_ctx *c, bool known,
                        struct rules_out *out);
/* Wall-clock work: offline timeout, gap closing, session grace, re-notify. */
void rules_tick(struct rules_dev *d, const struct rules_ctx *c, struct rules_out *out);
/* An operator acknowledged alert_id: true when it is one of this device's
 * open alerts (an ACKNOWLEDGED transition is emitted once). */
bool rules_ack(struct rules_dev *d, const struct rules_ctx *c, uint64_t alert_id,
               struct rules_out *out);

/* The id of the alert of (device, rule) that fired at fired_ms: stable, so
 * a re-evaluation after a crash names the same alert; below 2^53 (exact in
 * JSON) and never 0. */
uint64_t rules_alert_id(const char *device, enum rule_id r, int64_t fired_ms);

#endif

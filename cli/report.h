/*
 * report.h - the QA report: every figure computed in C from plain rows
 * (query.h), so SQLite and InfluxDB give the same answer on the same data.
 *
 * Definitions (README "needlewatch report" repeats them for users):
 *
 *  running window    a window with cycles > 0 (as the collector's in_spec)
 *  running hours     sum of running_ms of the windows
 *  rate-in-spec %    running time of windows whose rate_mean lies in the
 *                    model's window, over all running time (depth alike;
 *                    in_spec_pct: both in spec)
 *  out-of-spec min   duration of running windows with rate or depth out of spec
 *  Cpk               min(USL - mean, mean - LSL) / 3 sigma over the rate_mean
 *                    (depth_mean) of running windows, sample sigma; for a group
 *                    mixing models each value is first scaled to its model's
 *                    window (z = (x - mid) / half-width), which is the plain Cpk
 *                    when there is one model; null below 2 windows or sigma 0
 *  machines          devices with any row of that clinic in the range; idle =
 *                    machines without a session
 *  sessions          session summaries whose end lies in the range
 *  utilisation       sessions per machine-day = sessions / (machines x days)
 *  pigment           sum of the windows' pigment_ul, in mL; per running hour
 *  cartridge viol.   cartridge_reuse and cartridge_worn alerts firing in range
 *  alerts            alert ids with a "firing" row in the range, by severity
 *  offline in sess.  overlap of each session [start, end) with the device's
 *                    offline spans (a status offline until the next online;
 *                    the newest status before --from opens the range)
 *  completeness      windows received / expected, expected = max seq - min
 *                    seq + 1 per device and epoch within the range
 *  firmware          each window counts for the firmware the device ran then:
 *                    the newest power_on event or status firmware before it
 *  operator          each window counts for the operator of its session (the
 *                    session summary's operator, else its session_start event)
 *
 * Exactness: sums are integers (ms; rate in mHz; depth in 0.1 um; pigment in
 * 0.1 nL, the sensor resolutions of the wire format), so the order rows
 * arrive in never changes a digit.
 */
#ifndef CLI_REPORT_H
#define CLI_REPORT_H

#include "query.h"
#include "spec.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NW_REPORT_HIST_MAX 160

/* NaN = no value (printed as null / empty / "-"). */
struct nw_figures {
    int64_t machines, idle_machines, sessions;
    double running_hours, sessions_per_machine_day;
    double rate_in_spec_pct, depth_in_spec_pct, in_spec_pct, out_of_spec_minutes;
    int64_t cartridge_violations;
    double pigment_ml, pigment_ml_per_running_hour;
    int64_t alerts_critical, alerts_warning, alerts_info;
    double offline_minutes_in_sessions;
    int64_t windows_received, windows_expected;
    double completeness_pct;
    double rate_cpk, depth_cpk;
    int64_t running_windows;
};

struct nw_report_group {
    char name[129];    /* clinic, device, firmware or operator code */
    char clinic[129];  /* device rows: the device's clinic */
    char model[33];    /* device rows */
    char firmware[33]; /* device rows: the newest firmware seen */
    int rank;          /* clinics and devices: 1 = worst */
    struct nw_figures f;
};

struct nw_report_hist {
    char model[33];
    double spec_lo, spec_hi; /* the model's rate window */
    double lo, width;        /* bin i covers [lo + i*width, lo + (i+1)*width) */
    size_t nbins;            /* the first and last bins also take what lies beyond */
    uint64_t counts[NW_REPORT_HIST_MAX];
};

struct nw_report_day {
    int64_t day_ms; /* 00:00Z of the day */
    int64_t critical, warning, info;
};

struct nw_report {
    int64_t from_ms, to_ms;
    struct nw_figures fleet;
    struct nw_report_group *clinics, *devices, *firmware, *operators;
    size_t nclinics, ndevices, nfirmware, noperators;
    struct nw_report_hist *models;
    size_t nmodels;
    struct nw_report_day *days;
    size_t ndays;
};

struct nw_report_opts {
    int64_t from_ms, to_ms;
    const char *clinic, *device, *model; /* NULL = all */
    const struct nw_specs *specs;        /* borrowed */
    /* Called at each stage and every ~1 s of a long one (may be NULL). */
    void (*progress)(void *user, const char *stage, uint64_t rows, bool done);
    void *user;
};

/* Reads the rows and computes the report. *out is caller-owned
 * (nw_report_destroy). Errors are the query's, or NW_ERR_NOMEM / TOO_BIG. */
enum nw_err nw_report_build(struct nw_query *q, const struct nw_report_opts *o,
                            struct nw_report **out, struct nw_error *err);

void nw_report_destroy(struct nw_report **r);

#endif

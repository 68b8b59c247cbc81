/*
 * fixture.c - writes the CLI tests' known dataset into a store through the
 * collector's own writer (nw_store_open / nw_store_write), so SQLite and
 * InfluxDB get exactly the points the collector would write.
 *
 *   cli_fixture STORE_URL
 *
 * The dataset (week of 2026-11-02, 1-minute windows, 45 s of needle-on
 * each; the expectations in report_expect.py are computed by hand from it):
 *
 *   clinic                       device  model  firmware  session
 *   Clínica São Paulo, Unit 2    SP-1    DG-3   2.1.0     S1 11-02 09:00, 60 windows, OP-A,
 *                                                         rate 120 Hz but 150 Hz in the last 10
 *                                SP-2    DG-3   2.2.0     S2 11-03 10:00, 31 seqs, seq 16 lost,
 *                                                         OP-B, depth 0.60 mm from window 21
 *   North Clinic                 NO-1    DG-3X  2.1.0     S3 11-04 09:00, 40 windows, OP-A,
 *                                                         98 Hz / 0.52 mm (in spec only with the
 *                                                         DG-3X override 95..145 / 0.25..0.55);
 *                                                         cartridge C-1 again: reuse
 *                                NO-2    DG-3X  2.2.0     no session; a 2-window test run
 *   East Clinic                  EA-1    DG-3   2.2.0     S4 11-05 14:00, 20 windows (2 idle),
 *                                                         operator only on session_start (OP-C),
 *                                                         offline 14:05-14:08
 */
#include "point.h"
#include "store.h"

#include <needlewatch/clock.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXP 4096
static struct nw_point pts[MAXP];
static size_t np;

static int64_t at(const char *rfc3339)
{
    int64_t ms = 0;
    if (nw_clock_parse_rfc3339(rfc3339, &ms, NULL) != NW_OK) {
        fprintf(stderr, "fixture: bad time %s\n", rfc3339);
        exit(1);
    }
    return ms;
}

static struct nw_point *add(enum nw_point_kind kind, const char *device, const char *clinic,
                            const char *model)
{
    if (np >= MAXP) {
        fprintf(stderr, "fixture: too many points\n");
        exit(1);
    }
    struct nw_point *p = &pts[np++];
    memset(p, 0, sizeof(*p));
    p->kind = kind;
    p->epoch = 7;
    snprintf(p->device, sizeof(p->device), "%s", device);
    snprintf(p->clinic, sizeof(p->clinic), "%s", clinic);
    snprintf(p->model, sizeof(p->model), "%s", model);
    return p;
}

struct sess {
    const char *device, *clinic, *model, *firmware, *id, *op, *op_event, *cartridge, *clot, *plot,
        *start;
    int windows;
    int lost; /* seq index never stored (-1 none) */
    int idle; /* the last `idle` windows are idle */
    double rate, depth, pigment;
    int bad_from; /* windows >= this get bad_rate / bad_depth */
    double bad_rate, bad_depth;
    const char *status_fw;
};

static const char *SP = "Clínica São Paulo, Unit 2";

static void window(const struct sess *s, int i, uint64_t seq, int64_t t)
{
    struct nw_point *p = add(NW_POINT_WINDOW, s->device, s->clinic, s->model);
    struct nw_window *w = &p->u.window.w;
    bool idle = s->idle > 0 && i >= s->windows + (s->lost >= 0) - s->idle;
    double rate = i >= s->bad_from && s->bad_rate > 0 ? s->bad_rate : s->rate;
    double depth = i >= s->bad_from && s->bad_depth > 0 ? s->bad_depth : s->depth;
    w->seq = seq;
    w->start_ms = t;
    w->duration_ms = 60000;
    if (!idle) {
        w->running_ms = 45000;
        w->cycles = (uint64_t)llround(rate * 45);
        w->rate_mean_hz = rate;
        w->rate_min_hz = rate - 1;
        w->rate_max_hz = rate + 1;
        w->depth_mean_mm = depth;
        w->depth_min_mm = depth - 0.01;
        w->depth_max_mm = depth + 0.01;
        w->pigment_ul = s->pigment;
    }
    if (s->id) {
        snprintf(w->session_id, sizeof(w->session_id), "%s", s->id);
        snprintf(w->cartridge_id, sizeof(w->cartridge_id), "%s", s->cartridge);
        snprintf(w->pigment_lot, sizeof(w->pigment_lot), "%s", s->plot);
    }
    p->u.window.in_spec = idle || (rate >= 100 && rate <= 140 && depth >= 0.25 && depth <= 0.5);
}

static struct nw_event *event(const struct sess *s, enum nw_event_kind kind, uint64_t seq,
                              int64_t t)
{
    struct nw_point *p = add(NW_POINT_EVENT, s->device, s->clinic, "");
    struct nw_event *e = &p->u.event;
    e->kind = kind;
    e->seq = seq;
    e->time_ms = t;
    return e;
}

static void status(const char *device, const char *clinic, const char *fw, const char *when,
                   bool online, double hours, uint64_t odometer)
{
    struct nw_point *p = add(NW_POINT_STATUS, device, clinic, "");
    struct nw_status *st = &p->u.status;
    snprintf(st->device_id, sizeof(st->device_id), "%s", device);
    st->state = online ? NW_DEVICE_ONLINE : NW_DEVICE_OFFLINE;
    st->time_ms = at(when);
    snprintf(st->firmware, sizeof(st->firmware), "%s", fw);
    st->running_s = (uint64_t)llround(hours * 3600);
    st->odometer_cycles = odometer;
    st->heartbeat_s = 30;
    st->uptime_s = 1000;
}

static void alert(const char *device, const char *clinic, const char *rule, enum nw_severity sev,
                  uint64_t id, enum nw_alert_state state, const char *when, const char *since,
                  double value, double threshold, const char *msg)
{
    struct nw_point *p = add(NW_POINT_ALERT, device, clinic, "");
    struct nw_alert *a = &p->u.alert;
    snprintf(a->device_id, sizeof(a->device_id), "%s", device);
    snprintf(a->rule, sizeof(a->rule), "%s", rule);
    a->severity = sev;
    a->alert_id = id;
    a->state = state;
    a->time_ms = at(when);
    a->since_ms = at(since);
    a->value = value;
    a->threshold = threshold;
    snprintf(a->message, sizeof(a->message), "%s", msg);
}

static void session(const struct sess *s, uint64_t *wseq, uint64_t *eseq)
{
    int64_t t0 = at(s->start);
    /* events: power on (the day's first), cartridge, pigment, start */
    struct nw_event *e = event(s, NW_EVENT_POWER_ON, (*eseq)++, t0 - 3600000);
    snprintf(e->firmware, sizeof(e->firmware), "%s", s->firmware);
    snprintf(e->boot_reason, sizeof(e->boot_reason), "power_button");
    e = event(s, NW_EVENT_CARTRIDGE_INSERTED, (*eseq)++, t0 - 60000);
    snprintf(e->cartridge_id, sizeof(e->cartridge_id), "%s", s->cartridge);
    snprintf(e->needle_config, sizeof(e->needle_config), "3RL");
    snprintf(e->lot, sizeof(e->lot), "%s", s->clot);
    e = event(s, NW_EVENT_PIGMENT_LOADED, (*eseq)++, t0 - 30000);
    snprintf(e->lot, sizeof(e->lot), "%s", s->plot);
    snprintf(e->shade, sizeof(e->shade), "Charcoal 2");
    e->volume_ul = 1500;
    e = event(s, NW_EVENT_SESSION_START, (*eseq)++, t0);
    snprintf(e->session_id, sizeof(e->session_id), "%s", s->id);
    snprintf(e->operator_code, sizeof(e->operator_code), "%s", s->op_event);
    /* windows */
    int received = 0, running = 0, rate_ok = 0, depth_ok = 0;
    double pigment = 0;
    uint64_t cycles = 0, first = *wseq;
    for (int i = 0; i < s->windows + (s->lost >= 0); i++) {
        uint64_t seq = (*wseq)++;
        if (i == s->lost) {
            continue;
        }
        window(s, i, seq, t0 + (int64_t)i * 60000);
        const struct nw_window *w = &pts[np - 1].u.window.w;
        received++;
        if (w->cycles) {
            running++;
            rate_ok += w->rate_mean_hz >= 100 && w->rate_mean_hz <= 140;
            depth_ok += w->depth_mean_mm >= 0.25 && w->depth_mean_mm <= 0.5;
        }
        pigment += w->pigment_ul;
        cycles += w->cycles;
    }
    int64_t t_end = t0 + (int64_t)(s->windows + (s->lost >= 0)) * 60000;
    e = event(s, NW_EVENT_SESSION_END, (*eseq)++, t_end);
    snprintf(e->session_id, sizeof(e->session_id), "%s", s->id);
    e->end_reason = NW_SESSION_END_NORMAL;
    /* the summary */
    struct nw_point *p = add(NW_POINT_SESSION, s->device, s->clinic, s->model);
    struct nw_session_summary *ss = &p->u.session;
    snprintf(ss->session_id, sizeof(ss->session_id), "%s", s->id);
    snprintf(ss->operator_code, sizeof(ss->operator_code), "%s", s->op);
    snprintf(ss->cartridge_id, sizeof(ss->cartridge_id), "%s", s->cartridge);
    snprintf(ss->cartridge_lot, sizeof(ss->cartridge_lot), "%s", s->clot);
    snprintf(ss->pigment_lot, sizeof(ss->pigment_lot), "%s", s->plot);
    snprintf(ss->firmware, sizeof(ss->firmware), "%s", s->firmware);
    ss->start_ms = t0;
    ss->end_ms = t_end;
    ss->duration_s = (double)(t_end - t0) / 1000.0;
    ss->running_s = running * 45.0;
    ss->cycles = cycles;
    ss->pigment_ul = pigment;
    ss->rate_in_spec_pct = running ? 100.0 * rate_ok / running : 0;
    ss->depth_in_spec_pct = running ? 100.0 * depth_ok / running : 0;
    ss->cartridges = 1;
    ss->alerts = 0;
    ss->windows = (uint64_t)received;
    ss->windows_expected = *wseq - first;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: cli_fixture STORE_URL\n");
        return 2;
    }
    static const struct sess s1 = {"SP-1",
                                   NULL,
                                   "DG-3",
                                   "2.1.0",
                                   "S1",
                                   "OP-A",
                                   "OP-A",
                                   "C-1",
                                   "CL-1",
                                   "PL-1",
                                   "2026-11-02T09:00:00Z",
                                   60,
                                   -1,
                                   0,
                                   120,
                                   0.40,
                                   10,
                                   50,
                                   150,
                                   0,
                                   "2.1.0"};
    static const struct sess s2 = {"SP-2",
                                   NULL,
                                   "DG-3",
                                   "2.2.0",
                                   "S2",
                                   "OP-B",
                                   "OP-B",
                                   "C-2",
                                   "CL-1",
                                   "PL-1",
                                   "2026-11-03T10:00:00Z",
                                   30,
                                   15,
                                   0,
                                   110,
                                   0.30,
                                   20,
                                   21,
                                   0,
                                   0.60,
                                   "2.2.0"};
    static const struct sess s3 = {"NO-1",
                                   "North Clinic",
                                   "DG-3X",
                                   "2.1.0",
                                   "S3",
                                   "OP-A",
                                   "OP-A",
                                   "C-1",
                                   "CL-1",
                                   "PL-2",
                                   "2026-11-04T09:00:00Z",
                                   40,
                                   -1,
                                   0,
                                   98,
                                   0.52,
                                   5,
                                   1000,
                                   0,
                                   0,
                                   "2.1.0"};
    static const struct sess s4 = {"EA-1",
                                   "East Clinic",
                                   "DG-3",
                                   "2.2.0",
                                   "S4",
                                   "",
                                   "OP-C",
                                   "C-3",
                                   "CL-2",
                                   "PL-2",
                                   "2026-11-05T14:00:00Z",
                                   20,
                                   -1,
                                   2,
                                   125,
                                   0.35,
                                   15,
                                   1000,
                                   0,
                                   0,
                                   "2.2.0"};
    struct sess a = s1, b = s2;
    a.clinic = SP;
    b.clinic = SP;
    uint64_t ws[4] = {1, 1, 1, 1}, es[4] = {1, 1, 1, 1};
    /* status before the range: firmware and online */
    status("SP-1", SP, "2.1.0", "2026-11-01T12:00:00Z", true, 90.0, 40000000);
    status("SP-2", SP, "2.2.0", "2026-11-01T12:00:00Z", true, 50.0, 20000000);
    status("NO-1", "North Clinic", "2.1.0", "2026-11-01T12:00:00Z", true, 10.0, 4000000);
    status("NO-2", "North Clinic", "2.2.0", "2026-11-01T12:00:00Z", true, 499.0, 200000000);
    status("EA-1", "East Clinic", "2.2.0", "2026-11-01T12:00:00Z", true, 30.0, 12000000);
    session(&a, &ws[0], &es[0]);
    session(&b, &ws[1], &es[1]);
    session(&s3, &ws[2], &es[2]);
    session(&s4, &ws[3], &es[3]);
    /* NO-2: a 2-window test run outside any session */
    static const struct sess t = {"NO-2",
                                  "North Clinic",
                                  "DG-3X",
                                  "2.2.0",
                                  NULL,
                                  "",
                                  "",
                                  "",
                                  "",
                                  "",
                                  "2026-11-06T12:00:00Z",
                                  2,
                                  -1,
                                  0,
                                  120,
                                  0.40,
                                  0,
                                  1000,
                                  0,
                                  0,
                                  "2.2.0"};
    window(&t, 0, 1, at("2026-11-06T12:00:00Z"));
    window(&t, 1, 2, at("2026-11-06T12:01:00Z"));
    /* EA-1 offline 14:05-14:08 during S4, offline again at the end of the week */
    status("EA-1", "East Clinic", "2.2.0", "2026-11-05T14:05:00Z", false, 30.1, 12100000);
    status("EA-1", "East Clinic", "2.2.0", "2026-11-05T14:08:00Z", true, 30.1, 12100000);
    status("EA-1", "East Clinic", "2.2.0", "2026-11-08T20:00:00Z", false, 30.3, 12150000);
    /* SP-1: maintenance on 11-07 08:00 at 100.0 running hours; online at the end */
    status("SP-1", SP, "2.1.0", "2026-11-07T07:00:00Z", true, 100.0, 50000000);
    struct sess m = a;
    struct nw_event *e = event(&m, NW_EVENT_MAINTENANCE, es[0]++, at("2026-11-07T08:00:00Z"));
    snprintf(e->action, sizeof(e->action), "needle drive service");
    e->resets_service = true;
    status("SP-1", SP, "2.1.0", "2026-11-08T23:59:30Z", true, 120.75, 60000000);
    status("SP-2", SP, "2.2.0", "2026-11-08T18:00:00Z", true, 51.0, 20500000);
    status("NO-1", "North Clinic", "2.1.0", "2026-11-08T18:00:00Z", true, 11.0, 4100000);
    status("NO-2", "North Clinic", "2.2.0", "2026-11-08T18:00:00Z", true, 499.5, 200100000);
    /* alerts */
    alert("SP-1", SP, "needle_rate_out_of_spec", NW_SEVERITY_CRITICAL, 101, NW_ALERT_FIRING,
          "2026-11-02T09:52:00Z", "2026-11-02T09:50:00Z", 150, 140, "rate 150 Hz > 140 Hz");
    alert("SP-1", SP, "needle_rate_out_of_spec", NW_SEVERITY_CRITICAL, 101, NW_ALERT_RESOLVED,
          "2026-11-02T10:00:00Z", "2026-11-02T09:50:00Z", 120, 138, "rate back in spec");
    alert("SP-1", SP, "cartridge_worn", NW_SEVERITY_WARNING, 102, NW_ALERT_FIRING,
          "2026-11-02T09:59:00Z", "2026-11-02T09:59:00Z", 300000, 250000, "cartridge C-1 worn");
    alert("SP-1", SP, "cartridge_worn", NW_SEVERITY_WARNING, 102, NW_ALERT_RESOLVED,
          "2026-11-02T10:05:00Z", "2026-11-02T09:59:00Z", 0, 250000, "cartridge removed");
    alert("SP-2", SP, "needle_depth_out_of_spec", NW_SEVERITY_CRITICAL, 201, NW_ALERT_FIRING,
          "2026-11-03T10:22:00Z", "2026-11-03T10:21:00Z", 0.6, 0.5, "depth 0.60 mm > 0.50 mm");
    alert("NO-1", "North Clinic", "cartridge_reuse", NW_SEVERITY_CRITICAL, 301, NW_ALERT_FIRING,
          "2026-11-04T08:59:00Z", "2026-11-04T08:59:00Z", 2, 1,
          "cartridge C-1 already used in session S1 on SP-1");
    alert("EA-1", "East Clinic", "device_offline", NW_SEVERITY_CRITICAL, 401, NW_ALERT_FIRING,
          "2026-11-05T14:06:30Z", "2026-11-05T14:05:00Z", 90, 90, "no heartbeat, in a session");
    alert("EA-1", "East Clinic", "device_offline", NW_SEVERITY_CRITICAL, 401, NW_ALERT_RESOLVED,
          "2026-11-05T14:08:00Z", "2026-11-05T14:05:00Z", 0, 90, "back online");
    alert("NO-2", "North Clinic", "maintenance_due", NW_SEVERITY_WARNING, 501, NW_ALERT_FIRING,
          "2026-11-06T12:00:00Z", "2026-11-06T12:00:00Z", 499.5, 490, "service due in 0.5 h");
    (void)ws;
    struct nw_store *st = NULL;
    struct nw_error err;
    struct nw_store_options opt = {.jitter_seed = 1};
    if (nw_store_open(argv[1], &opt, &st, &err) != NW_OK) {
        fprintf(stderr, "fixture: %s\n", err.msg);
        return 1;
    }
    struct nw_store_outcome out;
    size_t done = 0;
    while (done < np) {
        nw_store_write(st, pts + done, np - done, &out);
        done += out.done;
        if (out.code != NW_OK) {
            fprintf(stderr, "fixture: write: %s (%s)\n", nw_strerror(out.code), out.msg);
            nw_store_close(&st);
            return 1;
        }
    }
    nw_store_close(&st);
    printf("fixture: %zu points written to %s\n", np, argv[1]);
    return 0;
}

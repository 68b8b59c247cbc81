/*
 * report_gen.c - a fleet's history for bench/report_time.sh, written through
 * the collector's own store writer (collector/store.h) into SQLite or
 * InfluxDB.
 *
 *   report_gen STORE_URL DAYS DEVICES [WINDOW_S [SESSION_MIN [SEED]]]
 *
 * Every device works one session per day (SESSION_MIN minutes, default 180,
 * starting between 08:00 and 12:00 UTC) that ends DAYS days before now at
 * the latest, producing one window per WINDOW_S seconds (default 60: the
 * agent's largest window; 1 s windows are 60x the rows) with needle rate
 * ~N(120, 6) Hz and depth ~N(0.38, 0.04) mm, 1 in 50 devices drifting out
 * of spec; 6 events and a session summary per session, a status every
 * hour, an alert pair for each drifting session. Devices are spread over
 * 25 clinics and 2 models. Deterministic for a seed.
 *
 * Prints the number of points of each kind and the write rate.
 */
#include "point.h"
#include "store.h"

#include <needlewatch/clock.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCH 5000

static struct nw_point batch[BATCH];
static size_t nb;
static struct nw_store *store;
static uint64_t counts[NW_POINT__COUNT];
static uint64_t rng = 88172645463325252ULL;

static double uniform(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

static double normal(double mean, double sd)
{
    double u = uniform(), v = uniform();
    return mean + sd * sqrt(-2 * log(u + 1e-300)) * cos(2 * M_PI * v);
}

static double round_to(double x, double step)
{
    return round(x / step) * step;
}

static void flush(void)
{
    size_t done = 0;
    while (done < nb) {
        struct nw_store_outcome out;
        nw_store_write(store, batch + done, nb - done, &out);
        done += out.done;
        if (out.code != NW_OK) {
            fprintf(stderr, "report_gen: write: %s (%s)\n", nw_strerror(out.code), out.msg);
            exit(1);
        }
    }
    nb = 0;
}

static struct nw_point *point(enum nw_point_kind kind, const char *dev, const char *clinic,
                              const char *model)
{
    if (nb == BATCH) {
        flush();
    }
    struct nw_point *p = &batch[nb++];
    memset(p, 0, sizeof(*p));
    p->kind = kind;
    p->epoch = 1;
    snprintf(p->device, sizeof(p->device), "%s", dev);
    snprintf(p->clinic, sizeof(p->clinic), "%s", clinic);
    snprintf(p->model, sizeof(p->model), "%s", model);
    counts[kind]++;
    return p;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr,
                "usage: report_gen STORE_URL DAYS DEVICES [WINDOW_S [SESSION_MIN [SEED]]]\n");
        return 2;
    }
    int days = atoi(argv[2]), ndev = atoi(argv[3]);
    int win_s = argc > 4 ? atoi(argv[4]) : 60, sess_min = argc > 5 ? atoi(argv[5]) : 180;
    if (argc > 6) {
        rng = strtoull(argv[6], NULL, 10) | 1;
    }
    if (days < 1 || ndev < 1 || win_s < 1 || win_s > 60 || sess_min < 1 || sess_min > 600) {
        fprintf(stderr, "report_gen: bad arguments\n");
        return 2;
    }
    struct nw_error err;
    struct nw_store_options opt = {.jitter_seed = 1, .max_requests = 1000};
    if (nw_store_open(argv[1], &opt, &store, &err) != NW_OK) {
        fprintf(stderr, "report_gen: %s\n", err.msg);
        return 1;
    }
    int64_t day_ms = 86400000, now = nw_clock_realtime_ms();
    int64_t day0 = (now / day_ms - days) * day_ms;
    int64_t t_start = nw_clock_mono_ms();
    uint64_t cart = 1;
    for (int d = 0; d < ndev; d++) {
        char dev[32], clinic[64], model[16];
        snprintf(dev, sizeof(dev), "BENCH-%04d", d);
        snprintf(clinic, sizeof(clinic), "Clinic %02d", d % 25);
        snprintf(model, sizeof(model), "%s", d % 3 ? "DG-3" : "DG-3X");
        bool drifts = d % 50 == 7;
        uint64_t wseq = 1, eseq = 1;
        char fw[16];
        snprintf(fw, sizeof(fw), "%s", d % 2 ? "2.1.0" : "2.2.0");
        for (int day = 0; day < days; day++) {
            int64_t base = day0 + (int64_t)day * day_ms;
            for (int h = 0; h < 24; h++) { /* hourly status */
                struct nw_point *p = point(NW_POINT_STATUS, dev, clinic, "");
                p->u.status.state = NW_DEVICE_ONLINE;
                p->u.status.time_ms = base + (int64_t)h * 3600000 + d;
                snprintf(p->u.status.firmware, sizeof(p->u.status.firmware), "%s", fw);
                p->u.status.running_s = (uint64_t)(day * sess_min * 45);
                p->u.status.odometer_cycles = (uint64_t)day * 1000000;
                p->u.status.heartbeat_s = 30;
            }
            int64_t t0 = base + 8 * 3600000 + (int64_t)(uniform() * 4 * 3600) * 1000;
            char sid[32], cid[32], op[16];
            snprintf(sid, sizeof(sid), "s-%d-%d", d, day);
            snprintf(cid, sizeof(cid), "C-%llu", (unsigned long long)cart++);
            snprintf(op, sizeof(op), "OP-%d", (d * 7 + day) % 40);
            static const enum nw_event_kind kinds[] = {
                NW_EVENT_POWER_ON, NW_EVENT_CARTRIDGE_INSERTED, NW_EVENT_PIGMENT_LOADED,
                NW_EVENT_SESSION_START};
            for (int k = 0; k < 4; k++) {
                struct nw_point *p = point(NW_POINT_EVENT, dev, clinic, "");
                struct nw_event *e = &p->u.event;
                e->kind = kinds[k];
                e->seq = eseq++;
                e->time_ms = t0 - (4 - k) * 1000;
                snprintf(e->firmware, sizeof(e->firmware), "%s", k == 0 ? fw : "");
                snprintf(e->cartridge_id, sizeof(e->cartridge_id), "%s", k == 1 ? cid : "");
                snprintf(e->lot, sizeof(e->lot), "%s", k == 1 ? "CL-1" : k == 2 ? "PL-1" : "");
                snprintf(e->session_id, sizeof(e->session_id), "%s", k == 3 ? sid : "");
                snprintf(e->operator_code, sizeof(e->operator_code), "%s", k == 3 ? op : "");
                e->volume_ul = k == 2 ? 1500 : 0;
            }
            int nwin = sess_min * 60 / win_s;
            double pigment = 0, running = 0;
            uint64_t cycles = 0;
            bool out = drifts && day % 3 == 0;
            for (int i = 0; i < nwin; i++) {
                struct nw_point *p = point(NW_POINT_WINDOW, dev, clinic, model);
                struct nw_window *w = &p->u.window.w;
                w->seq = wseq++;
                w->start_ms = t0 + (int64_t)i * win_s * 1000;
                w->duration_ms = (uint32_t)win_s * 1000;
                bool idle = uniform() < 0.1;
                if (!idle) {
                    double rate = round_to(normal(out && i > nwin / 2 ? 146 : 120, 6), 0.001);
                    double depth = round_to(normal(0.38, 0.04), 0.0001);
                    rate = rate < 1 ? 1 : rate;
                    depth = depth < 0.01 ? 0.01 : depth;
                    w->running_ms = (uint32_t)(win_s * 750);
                    w->rate_mean_hz = rate;
                    w->rate_min_hz = round_to(rate - 2, 0.001);
                    w->rate_max_hz = round_to(rate + 2, 0.001);
                    w->depth_mean_mm = depth;
                    w->depth_min_mm = round_to(depth * 0.95, 0.0001);
                    w->depth_max_mm = round_to(depth * 1.05, 0.0001);
                    w->cycles = (uint64_t)(rate * win_s * 0.75);
                    w->pigment_ul = round_to(normal(0.15 * win_s, 0.02 * win_s), 0.0001);
                    w->pigment_ul = w->pigment_ul < 0 ? 0 : w->pigment_ul;
                    p->u.window.in_spec =
                        rate >= 100 && rate <= 140 && depth >= 0.25 && depth <= 0.5;
                    pigment += w->pigment_ul;
                    running += win_s * 0.75;
                    cycles += w->cycles;
                } else {
                    p->u.window.in_spec = true;
                }
                snprintf(w->session_id, sizeof(w->session_id), "%s", sid);
                snprintf(w->cartridge_id, sizeof(w->cartridge_id), "%s", cid);
                snprintf(w->pigment_lot, sizeof(w->pigment_lot), "PL-1");
            }
            int64_t t_end = t0 + (int64_t)nwin * win_s * 1000;
            struct nw_point *p = point(NW_POINT_EVENT, dev, clinic, "");
            p->u.event.kind = NW_EVENT_SESSION_END;
            p->u.event.seq = eseq++;
            p->u.event.time_ms = t_end;
            snprintf(p->u.event.session_id, sizeof(p->u.event.session_id), "%s", sid);
            p->u.event.end_reason = NW_SESSION_END_NORMAL;
            p = point(NW_POINT_SESSION, dev, clinic, model);
            struct nw_session_summary *s = &p->u.session;
            snprintf(s->session_id, sizeof(s->session_id), "%s", sid);
            snprintf(s->operator_code, sizeof(s->operator_code), "%s", op);
            snprintf(s->cartridge_id, sizeof(s->cartridge_id), "%s", cid);
            snprintf(s->cartridge_lot, sizeof(s->cartridge_lot), "CL-1");
            snprintf(s->pigment_lot, sizeof(s->pigment_lot), "PL-1");
            snprintf(s->firmware, sizeof(s->firmware), "%s", fw);
            s->start_ms = t0;
            s->end_ms = t_end;
            s->duration_s = (double)(t_end - t0) / 1000;
            s->running_s = running;
            s->cycles = cycles;
            s->pigment_ul = round_to(pigment, 0.0001);
            s->rate_in_spec_pct = out ? 50 : 99;
            s->depth_in_spec_pct = 99;
            s->cartridges = 1;
            s->windows = s->windows_expected = (uint64_t)nwin;
            if (out) { /* the drift raises and clears an alert */
                for (int k = 0; k < 2; k++) {
                    p = point(NW_POINT_ALERT, dev, clinic, "");
                    struct nw_alert *a = &p->u.alert;
                    snprintf(a->rule, sizeof(a->rule), "needle_rate_out_of_spec");
                    a->severity = NW_SEVERITY_CRITICAL;
                    a->alert_id = (uint64_t)d * 100000 + (uint64_t)day + 1;
                    a->state = k ? NW_ALERT_RESOLVED : NW_ALERT_FIRING;
                    a->time_ms = k ? t_end : t0 + (int64_t)nwin / 2 * win_s * 1000;
                    a->since_ms = t0 + (int64_t)nwin / 2 * win_s * 1000;
                    a->value = 146;
                    a->threshold = 140;
                    snprintf(a->message, sizeof(a->message), "rate out of spec");
                }
            }
        }
        if (d % 50 == 49) {
            fprintf(stderr, "report_gen: %d/%d devices\n", d + 1, ndev);
        }
    }
    flush();
    nw_store_close(&store);
    double secs = (double)(nw_clock_mono_ms() - t_start) / 1000.0;
    uint64_t total = 0;
    for (int k = 0; k < NW_POINT__COUNT; k++) {
        total += counts[k];
    }
    printf("report_gen: %llu windows, %llu events, %llu status, %llu sessions, %llu alerts "
           "(%llu points) in %.1f s (%.0f points/s); range %d days from ",
           (unsigned long long)counts[NW_POINT_WINDOW], (unsigned long long)counts[NW_POINT_EVENT],
           (unsigned long long)counts[NW_POINT_STATUS],
           (unsigned long long)counts[NW_POINT_SESSION], (unsigned long long)counts[NW_POINT_ALERT],
           (unsigned long long)total, secs, (double)total / (secs > 0 ? secs : 1), days);
    char t[32];
    nw_clock_format_rfc3339(day0, t);
    printf("%s\n", t);
    return 0;
}

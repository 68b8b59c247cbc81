/* Unit tests of collector/rules.c: every rule's firing and resolving, the
 * lifecycle (hysteresis, missing data, late, ack, re-notify, inhibition) and
 * session summaries. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "rules.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define NOW 1800000000000LL /* wall clock of the tests */
#define T0 (NOW - 600000)   /* event time of the first window: 10 min ago */

struct fixture {
    struct rules_config cfg;
    struct nw_model_spec spec;
    struct rules_pigstat pig;
    struct rules_ctx ctx;
    struct rules_dev d;
    struct rules_out out;
    uint64_t seq, eseq;
    int64_t t;              /* start of the next window */
    int fired[RULE__COUNT]; /* transitions seen, by rule */
    int resolved[RULE__COUNT];
    struct nw_alert last;
    char cart_seen[4][2][80]; /* fake cartridge index: id, device/session */
    int ncart;
    uint64_t stored_max; /* non-zero: the store holds nothing above it */
};

static struct fixture F;

static bool fake_cart(void *user, const char *cart, const char *device, const char *session,
                      int64_t t, char *where, size_t cap)
{
    (void)user, (void)t;
    char key[80];
    snprintf(key, sizeof(key), "%s/%s", device, session);
    for (int i = 0; i < F.ncart; i++) {
        if (!strcmp(F.cart_seen[i][0], cart)) {
            snprintf(where, cap, "%s", F.cart_seen[i][1]);
            return strcmp(F.cart_seen[i][1], key) != 0;
        }
    }
    snprintf(F.cart_seen[F.ncart][0], 80, "%s", cart);
    snprintf(F.cart_seen[F.ncart++][1], 80, "%s", key);
    return false;
}

static int setup(void **state)
{
    (void)state;
    memset(&F, 0, sizeof(F));
    rules_config_defaults(&F.cfg);
    F.spec = (struct nw_model_spec){"DG-3", {100, 140}, {0.25, 0.50}, 500, 0, 100000};
    F.ctx = (struct rules_ctx){.cfg = &F.cfg,
                               .spec = &F.spec,
                               .device = "DG3-0001",
                               .clinic = "Clinic A",
                               .model = "DG-3",
                               .pig = &F.pig,
                               .cart = fake_cart,
                               .now_ms = NOW};
    rules_dev_init(&F.d);
    F.t = T0;
    return 0;
}

/* Counts the outputs and empties them. */
static void collect(void)
{
    for (size_t i = 0; i < F.out.nalerts; i++) {
        const struct nw_alert *a = &F.out.alerts[i];
        enum rule_id r = rules_from_name(a->rule);
        assert_true(r < RULE__COUNT);
        F.fired[r] += a->state == NW_ALERT_FIRING;
        F.resolved[r] += a->state == NW_ALERT_RESOLVED;
        F.last = *a;
    }
    F.out.nalerts = 0;
}

static void window(double rate, double depth, double spread, uint64_t cycles)
{
    struct nw_window w = {.seq = ++F.seq,
                          .start_ms = F.t,
                          .duration_ms = 1000,
                          .running_ms = cycles ? 1000 : 0,
                          .cycles = cycles,
                          .rate_mean_hz = rate,
                          .rate_min_hz = rate - spread / 2,
                          .rate_max_hz = rate + spread / 2,
                          .depth_mean_mm = depth,
                          .depth_min_mm = depth,
                          .depth_max_mm = depth,
                          .pigment_ul = cycles * 0.02};
    snprintf(w.session_id, sizeof(w.session_id), "%s", F.d.sess.open ? F.d.sess.id : "");
    snprintf(w.cartridge_id, sizeof(w.cartridge_id), "%s", F.d.cartridge);
    F.t += 1000;
    F.ctx.stored_contig = F.stored_max ? F.stored_max : F.seq; /* stored as they come */
    rules_on_window(&F.d, &F.ctx, &w, &F.out);
    collect();
}

static void run_windows(int n, double rate, double depth)
{
    for (int i = 0; i < n; i++) {
        window(rate, depth, 2, rate > 0 ? (uint64_t)rate : 0);
    }
}

static void event(enum nw_event_kind kind, const char *id, bool flag)
{
    struct nw_event e = {.seq = ++F.eseq, .time_ms = F.t, .kind = kind};
    if (kind == NW_EVENT_SESSION_START || kind == NW_EVENT_SESSION_END) {
        snprintf(e.session_id, sizeof(e.session_id), "%s", id);
        snprintf(e.operator_code, sizeof(e.operator_code), "OP-07");
    } else if (kind == NW_EVENT_CARTRIDGE_INSERTED || kind == NW_EVENT_CARTRIDGE_REMOVED) {
        snprintf(e.cartridge_id, sizeof(e.cartridge_id), "%s", id);
        snprintf(e.lot, sizeof(e.lot), "CL-1");
    }
    e.resets_service = flag;
    rules_on_event(&F.d, &F.ctx, &e, &F.out);
    collect();
}

static void rate_fires_after_hold_and_resolves_with_hysteresis(void **state)
{
    (void)state;
    run_windows(5, 120, 0.35);
    window(150, 0.35, 2, 150);
    assert_int_equal(F.fired[RULE_RATE], 0); /* 1 s < 2 s hold */
    window(150, 0.35, 2, 150);
    assert_int_equal(F.fired[RULE_RATE], 1);
    assert_int_equal(F.last.state, NW_ALERT_FIRING);
    assert_int_equal(F.last.severity, NW_SEVERITY_CRITICAL);
    assert_int_equal(F.last.time_ms, T0 + 7000);
    assert_true(F.last.threshold == 140);
    assert_true(F.last.late); /* 10 min in the past */
    uint64_t id = F.last.alert_id;
    assert_int_equal(id, rules_alert_id("DG3-0001", RULE_RATE, T0 + 7000));
    run_windows(5, 150, 0.35);
    assert_int_equal(F.fired[RULE_RATE], 1); /* once */
    run_windows(5, 139, 0.35);               /* in spec, not inside the clear band */
    assert_int_equal(F.resolved[RULE_RATE], 0);
    run_windows(5, 0, 0); /* idle: no evidence either way */
    assert_int_equal(F.resolved[RULE_RATE], 0);
    window(120, 0.35, 2, 120);
    assert_int_equal(F.resolved[RULE_RATE], 0); /* clear hold 2 s */
    window(120, 0.35, 2, 120);
    assert_int_equal(F.resolved[RULE_RATE], 1);
    assert_int_equal(F.last.alert_id, id);
    assert_true(F.last.time_ms > F.last.since_ms);
    run_windows(10, 120, 0.35);
    assert_int_equal(F.fired[RULE_RATE], 1);
    assert_int_equal(F.resolved[RULE_RATE], 1);
    assert_int_equal(F.fired[RULE_DEPTH] + F.fired[RULE_UNSTABLE] + F.fired[RULE_GAP], 0);
}

static void resends_are_not_judged_twice(void **state)
{
    (void)state;
    run_windows(3, 150, 0.35);
    assert_int_equal(F.fired[RULE_RATE], 1);
    uint64_t seq = F.seq;
    struct nw_window w = {.seq = seq - 1,
                          .start_ms = T0,
                          .duration_ms = 1000,
                          .running_ms = 1000,
                          .cycles = 120,
                          .rate_mean_hz = 120,
                          .depth_mean_mm = 0.35};
    for (int i = 0; i < 5; i++) { /* in-spec re-sends of old seqs */
        rules_on_window(&F.d, &F.ctx, &w, &F.out);
    }
    collect();
    assert_int_equal(F.resolved[RULE_RATE], 0);
    assert_int_equal(F.d.last_wseq, seq);
}

static void live_alert_is_not_late(void **state)
{
    (void)state;
    F.t = NOW - 3000;
    run_windows(3, 90, 0.35);
    assert_int_equal(F.fired[RULE_RATE], 1);
    assert_false(F.last.late);
    assert_true(F.last.threshold == 100);
}

static void depth_and_unstable(void **state)
{
    (void)state;
    window(120, 0.60, 2, 120);
    assert_int_equal(F.fired[RULE_DEPTH], 1); /* hold 1 s: one window */
    window(120, 0.495, 2, 120);               /* in spec, not inside the clear band */
    window(120, 0.35, 2, 120);
    assert_int_equal(F.resolved[RULE_DEPTH], 1);
    for (int i = 0; i < 4; i++) {
        window(120, 0.35, 30, 120);
    }
    assert_int_equal(F.fired[RULE_UNSTABLE], 0); /* 4 s < 5 s */
    window(120, 0.35, 30, 120);
    assert_int_equal(F.fired[RULE_UNSTABLE], 1);
    for (int i = 0; i < 5; i++) {
        window(120, 0.35, 14, 120); /* between 12 and 15: neither */
    }
    assert_int_equal(F.resolved[RULE_UNSTABLE], 0);
    for (int i = 0; i < 5; i++) {
        window(120, 0.35, 4, 120);
    }
    assert_int_equal(F.resolved[RULE_UNSTABLE], 1);
}

static void offline_inhibits_and_missing_data_never_resolves(void **state)
{
    (void)state;
    run_windows(2, 120, 0.35);
    struct nw_status s = {.state = NW_DEVICE_OFFLINE, .time_ms = NOW};
    rules_on_status(&F.d, &F.ctx, &s, &F.out);
    collect();
    assert_int_equal(F.fired[RULE_OFFLINE], 1);
    assert_int_equal(F.last.severity, NW_SEVERITY_WARNING); /* not in a session */
    run_windows(5, 150, 0.35);                              /* a backlog while offline */
    assert_int_equal(F.fired[RULE_RATE], 0);                /* inhibited */
    F.ctx.now_ms = NOW + 3600000;
    rules_tick(&F.d, &F.ctx, &F.out); /* an hour of nothing */
    collect();
    assert_int_equal(F.resolved[RULE_OFFLINE], 0);
    assert_int_equal(F.fired[RULE_OFFLINE], 1);
    s.state = NW_DEVICE_ONLINE;
    s.time_ms = F.ctx.now_ms;
    rules_on_status(&F.d, &F.ctx, &s, &F.out);
    collect();
    assert_int_equal(F.resolved[RULE_OFFLINE], 1);
    window(150, 0.35, 2, 150); /* still out of spec: fires now */
    assert_int_equal(F.fired[RULE_RATE], 1);
}

static void offline_by_silence_is_critical_in_a_session(void **state)
{
    (void)state;
    event(NW_EVENT_SESSION_START, "s-1", false);
    run_windows(2, 120, 0.35);
    F.ctx.now_ms = NOW + 89000;
    rules_tick(&F.d, &F.ctx, &F.out);
    collect();
    assert_int_equal(F.fired[RULE_OFFLINE], 0);
    F.ctx.now_ms = NOW + 90000;
    rules_tick(&F.d, &F.ctx, &F.out);
    collect();
    assert_int_equal(F.fired[RULE_OFFLINE], 1);
    assert_int_equal(F.last.severity, NW_SEVERITY_CRITICAL);
    run_windows(1, 120, 0.35); /* data again resolves only via an online status */
    assert_int_equal(F.resolved[RULE_OFFLINE], 0);
}

static void cartridge_reuse_fires_on_insert_before_any_cycle(void **state)
{
    (void)state;
    event(NW_EVENT_SESSION_START, "s-1", false);
    event(NW_EVENT_CARTRIDGE_INSERTED, "CRT-1", false);
    run_windows(3, 120, 0.35);
    event(NW_EVENT_CARTRIDGE_REMOVED, "CRT-1", false);
    event(NW_EVENT_SESSION_END, "s-1", false);
    assert_int_equal(F.fired[RULE_CART_REUSE], 0);
    event(NW_EVENT_SESSION_START, "s-2", false);
    event(NW_EVENT_CARTRIDGE_INSERTED, "CRT-1", false);
    assert_int_equal(F.fired[RULE_CART_REUSE], 1);
    assert_non_null(strstr(F.last.message, "DG3-0001/s-1"));
    event(NW_EVENT_CARTRIDGE_INSERTED, "CRT-1", false); /* re-seat in the same session */
    assert_int_equal(F.fired[RULE_CART_REUSE], 1);
    event(NW_EVENT_CARTRIDGE_REMOVED, "CRT-1", false);
    assert_int_equal(F.resolved[RULE_CART_REUSE], 1);
    /* the same cartridge on another device */
    F.ctx.device = "DG3-0002";
    struct rules_dev other;
    rules_dev_init(&other);
    struct nw_event e = {.seq = 1, .time_ms = F.t, .kind = NW_EVENT_CARTRIDGE_INSERTED};
    snprintf(e.cartridge_id, sizeof(e.cartridge_id), "CRT-1");
    rules_on_event(&other, &F.ctx, &e, &F.out);
    collect();
    assert_int_equal(F.fired[RULE_CART_REUSE], 2);
    assert_string_equal(F.last.device_id, "DG3-0002");
}

static void cartridge_worn_and_replaced(void **state)
{
    (void)state;
    F.spec.cartridge_max_cycles = 1000;
    event(NW_EVENT_CARTRIDGE_INSERTED, "CRT-9", false);
    run_windows(8, 120, 0.35); /* 960 cycles */
    assert_int_equal(F.fired[RULE_CART_WORN], 0);
    run_windows(1, 120, 0.35);
    assert_int_equal(F.fired[RULE_CART_WORN], 1);
    assert_true(F.last.value == 1080);
    run_windows(5, 120, 0.35);
    assert_int_equal(F.fired[RULE_CART_WORN], 1);
    event(NW_EVENT_CARTRIDGE_REMOVED, "CRT-9", false);
    assert_int_equal(F.resolved[RULE_CART_WORN], 1);
}

static void maintenance_due_until_serviced(void **state)
{
    (void)state;
    struct nw_status s = {
        .state = NW_DEVICE_ONLINE, .time_ms = T0, .running_s = 499 * 3600, .odometer_cycles = 1000};
    rules_on_status(&F.d, &F.ctx, &s, &F.out);
    collect();
    assert_int_equal(F.fired[RULE_MAINT], 0);
    s.running_s = 500 * 3600 + 1;
    rules_on_status(&F.d, &F.ctx, &s, &F.out);
    collect();
    assert_int_equal(F.fired[RULE_MAINT], 1);
    rules_on_status(&F.d, &F.ctx, &s, &F.out);
    collect();
    assert_int_equal(F.fired[RULE_MAINT], 1);
    event(NW_EVENT_MAINTENANCE, NULL, true);
    assert_int_equal(F.resolved[RULE_MAINT], 1);
    s.running_s += 3600; /* an hour after the service */
    rules_on_status(&F.d, &F.ctx, &s, &F.out);
    collect();
    assert_int_equal(F.fired[RULE_MAINT], 1);
}

static void a_stale_status_does_not_move_service_hours_back(void **state)
{
    (void)state;
    struct nw_status s = {.state = NW_DEVICE_ONLINE,
                          .time_ms = T0,
                          .running_s = 500 * 3600 - 60,
                          .odometer_cycles = 1000};
    rules_on_status(&F.d, &F.ctx, &s, &F.out);
    F.t = T0 + 1000;
    run_windows(50, 120, 0.35); /* 50 s of needling after the status */
    assert_int_equal(F.fired[RULE_MAINT], 0);
    rules_on_status(&F.d, &F.ctx, &s, &F.out); /* the retained one again (a restart) */
    run_windows(15, 120, 0.35);
    assert_int_equal(F.fired[RULE_MAINT], 1); /* 65 s > 60 s: crossed */
}

static void data_gap_fires_after_ten_minutes_and_resolves_when_filled(void **state)
{
    (void)state;
    run_windows(3, 120, 0.35);
    F.seq++; /* seq 4 is missing */
    F.t += 1000;
    F.stored_max = 3;
    for (int i = 0; i < 599; i++) {
        window(120, 0.35, 2, 120);
    }
    assert_int_equal(F.fired[RULE_GAP], 0); /* 599 s */
    window(120, 0.35, 2, 120);
    assert_int_equal(F.fired[RULE_GAP], 1);
    window(120, 0.35, 2, 120);
    assert_int_equal(F.fired[RULE_GAP], 1);
    rules_tick(&F.d, &F.ctx, &F.out);
    collect();
    assert_int_equal(F.resolved[RULE_GAP], 0);
    F.ctx.stored_contig = F.seq; /* the late window arrived and was stored */
    F.stored_max = 0;
    rules_tick(&F.d, &F.ctx, &F.out);
    collect();
    assert_int_equal(F.resolved[RULE_GAP], 1);
}

static void pigment_overuse_against_the_median(void **state)
{
    (void)state;
    F.cfg.pigment_min_samples = 50;
    assert_true(isnan(rules_pig_median(&F.pig, 50)));
    for (int i = 0; i < 100; i++) {
        rules_pig_add(&F.pig, 140.0 + (i % 10)); /* the fleet: ~144 uL/min */
    }
    double m = rules_pig_median(&F.pig, 50);
    assert_true(m > 130 && m < 160);
    run_windows(20, 120, 0.35); /* 2.4 uL/s = 144 uL/min */
    assert_int_equal(F.fired[RULE_PIGMENT], 0);
    for (int i = 0; i < 11; i++) {
        struct nw_window w = {.seq = ++F.seq,
                              .start_ms = F.t,
                              .duration_ms = 1000,
                              .running_ms = 1000,
                              .cycles = 120,
                              .rate_mean_hz = 120,
                              .depth_mean_mm = 0.35,
                              .pigment_ul = 10.0}; /* 600 uL/min */
        F.t += 1000;
        rules_on_window(&F.d, &F.ctx, &w, &F.out);
        collect();
    }
    assert_int_equal(F.fired[RULE_PIGMENT], 1);
    run_windows(11, 120, 0.35);
    assert_int_equal(F.resolved[RULE_PIGMENT], 1);
}

static void unknown_device_and_inventory(void **state)
{
    (void)state;
    rules_on_inventory(&F.d, &F.ctx, false, &F.out);
    rules_on_inventory(&F.d, &F.ctx, false, &F.out);
    collect();
    assert_int_equal(F.fired[RULE_UNKNOWN], 1);
    rules_on_inventory(&F.d, &F.ctx, true, &F.out);
    collect();
    assert_int_equal(F.resolved[RULE_UNKNOWN], 1);
}

static void ack_once_and_renotify_unacked_critical(void **state)
{
    (void)state;
    F.cfg.offline_after_ms = 100 * F.cfg.renotify_ms;
    F.t = NOW - 3000;
    run_windows(3, 150, 0.35);
    uint64_t id = F.last.alert_id;
    F.ctx.now_ms = NOW + F.cfg.renotify_ms;
    rules_tick(&F.d, &F.ctx, &F.out);
    assert_int_equal(F.out.nalerts, 1);
    assert_int_equal(F.out.alerts[0].state, NW_ALERT_RENOTIFY);
    collect();
    rules_tick(&F.d, &F.ctx, &F.out);
    assert_int_equal(F.out.nalerts, 0); /* not again until another interval */
    assert_false(rules_ack(&F.d, &F.ctx, id + 1, &F.out));
    assert_true(rules_ack(&F.d, &F.ctx, id, &F.out));
    assert_int_equal(F.out.nalerts, 1);
    assert_int_equal(F.out.alerts[0].state, NW_ALERT_ACKNOWLEDGED);
    collect();
    assert_true(rules_ack(&F.d, &F.ctx, id, &F.out));
    assert_int_equal(F.out.nalerts, 0); /* once */
    F.ctx.now_ms += 10 * F.cfg.renotify_ms;
    rules_tick(&F.d, &F.ctx, &F.out);
    assert_int_equal(F.out.nalerts, 0); /* acknowledged: quiet */
}

static void session_summary(void **state)
{
    (void)state;
    event(NW_EVENT_SESSION_START, "s-42", false);
    event(NW_EVENT_CARTRIDGE_INSERTED, "CRT-42", false);
    run_windows(6, 120, 0.35);
    run_windows(2, 150, 0.35); /* 2 s of rate out of spec */
    run_windows(2, 0, 0);      /* a pause */
    run_windows(2, 120, 0.60); /* 2 s of depth out of spec */
    event(NW_EVENT_SESSION_END, "s-42", false);
    rules_tick(&F.d, &F.ctx, &F.out);
    assert_int_equal(F.out.nsessions, 0); /* grace: the last windows may still come */
    F.ctx.now_ms += F.cfg.session_grace_ms;
    rules_tick(&F.d, &F.ctx, &F.out);
    assert_int_equal(F.out.nsessions, 1);
    const struct nw_session_summary *s = &F.out.sessions[0];
    assert_string_equal(s->session_id, "s-42");
    assert_string_equal(s->operator_code, "OP-07");
    assert_string_equal(s->cartridge_id, "CRT-42");
    assert_string_equal(s->cartridge_lot, "CL-1");
    assert_int_equal(s->start_ms, T0);
    assert_int_equal(s->end_ms, T0 + 12000);
    assert_true(s->running_s == 10.0);
    assert_int_equal(s->cycles, 6 * 120 + 2 * 150 + 2 * 120);
    assert_true(fabs(s->rate_in_spec_pct - 80.0) < 1e-9);
    assert_true(fabs(s->depth_in_spec_pct - 80.0) < 1e-9);
    assert_int_equal(s->cartridges, 1);
    assert_int_equal(s->alerts, 2); /* rate and depth */
    assert_int_equal(s->windows, 12);
    assert_int_equal(s->windows_expected, 12);
    assert_false(s->cut_off);
    F.out.nsessions = 0;
    rules_tick(&F.d, &F.ctx, &F.out);
    assert_int_equal(F.out.nsessions, 0); /* once */
}

static void session_cut_off_by_a_new_one(void **state)
{
    (void)state;
    event(NW_EVENT_SESSION_START, "s-1", false);
    run_windows(3, 120, 0.35);
    event(NW_EVENT_SESSION_START, "s-2", false); /* power loss: no end */
    assert_int_equal(F.out.nsessions, 1);
    assert_true(F.out.sessions[0].cut_off);
    assert_int_equal(F.out.sessions[0].windows, 3);
}

static void session_cut_off_by_an_offline_device(void **state)
{
    (void)state;
    event(NW_EVENT_SESSION_START, "s-7", false);
    run_windows(4, 120, 0.35);
    struct nw_status s = {.state = NW_DEVICE_OFFLINE, .time_ms = NOW};
    rules_on_status(&F.d, &F.ctx, &s, &F.out);
    collect();
    F.ctx.now_ms = NOW + F.cfg.session_cutoff_ms - 1000;
    rules_tick(&F.d, &F.ctx, &F.out);
    assert_int_equal(F.out.nsessions, 0);
    F.ctx.now_ms = NOW + F.cfg.session_cutoff_ms;
    rules_tick(&F.d, &F.ctx, &F.out);
    assert_int_equal(F.out.nsessions, 1);
    assert_true(F.out.sessions[0].cut_off);
    assert_int_equal(F.out.sessions[0].windows, 4);
}

static void state_blob_and_ids(void **state)
{
    (void)state;
    assert_true(rules_dev_valid(&F.d, sizeof(F.d)));
    assert_false(rules_dev_valid(&F.d, sizeof(F.d) - 1));
    struct rules_dev bad = F.d;
    bad.version = 99;
    assert_false(rules_dev_valid(&bad, sizeof(bad)));
    uint64_t a = rules_alert_id("D", RULE_RATE, 1), b = rules_alert_id("D", RULE_RATE, 2);
    assert_true(a != b && a != 0 && a < (1ULL << 53));
    assert_int_equal(a, rules_alert_id("D", RULE_RATE, 1));
    assert_int_equal(rules_from_name("data_gap"), RULE_GAP);
    assert_int_equal(rules_from_name("nope"), RULE__COUNT);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup(f, setup)
    const struct CMUnitTest tests[] = {
        T(rate_fires_after_hold_and_resolves_with_hysteresis),
        T(resends_are_not_judged_twice),
        T(live_alert_is_not_late),
        T(depth_and_unstable),
        T(offline_inhibits_and_missing_data_never_resolves),
        T(offline_by_silence_is_critical_in_a_session),
        T(cartridge_reuse_fires_on_insert_before_any_cycle),
        T(cartridge_worn_and_replaced),
        T(maintenance_due_until_serviced),
        T(a_stale_status_does_not_move_service_hours_back),
        T(data_gap_fires_after_ten_minutes_and_resolves_when_filled),
        T(pigment_overuse_against_the_median),
        T(unknown_device_and_inventory),
        T(ack_once_and_renotify_unacked_critical),
        T(session_summary),
        T(session_cut_off_by_a_new_one),
        T(session_cut_off_by_an_offline_device),
        T(state_blob_and_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests of agent/windower.c: samples in, windows out. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "windower.h"

#include <math.h>
#include <string.h>

#define T0 1795000000000LL /* a multiple of 1000 */

struct run {
    struct nw_window out[256];
    size_t n;
};

static void feed(struct agent_windower *w, struct run *r, int64_t t, double rate, double depth,
                 double pigment)
{
    struct agent_sample s = {.t_ms = t, .rate_hz = rate, .depth_mm = depth, .pigment_ul = pigment};
    struct nw_error err = {0};
    struct nw_window tmp[AGENT_WINDOWER_MAX_OUT];
    size_t k = agent_windower_feed(w, &s, tmp, AGENT_WINDOWER_MAX_OUT, &err);
    assert_int_equal(err.code, NW_OK);
    assert_true(r->n + k <= 256);
    memcpy(&r->out[r->n], tmp, k * sizeof(tmp[0]));
    r->n += k;
}

static void steady_rate_gives_exact_windows(void **state)
{
    (void)state;
    struct agent_windower *w = agent_windower_new(1000);
    struct run r = {0};
    agent_windower_set_context(w, "s-1", "CRT-1", "PL-1");
    for (int64_t t = T0; t <= T0 + 3000; t += 100) {
        feed(w, &r, t, 120.0, 0.4, 0.01);
    }
    assert_int_equal(r.n, 2); /* third window still open: its end is not passed */
    r.n += agent_windower_flush(w, &r.out[r.n]);
    assert_int_equal(r.n, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(r.out[i].start_ms, T0 + 1000 * (int64_t)i);
        assert_int_equal(r.out[i].duration_ms, 1000);
        assert_int_equal(r.out[i].running_ms, 1000);
        assert_int_equal(r.out[i].cycles, 120);
        assert_true(fabs(r.out[i].rate_mean_hz - 120.0) < 1e-9);
        assert_true(fabs(r.out[i].depth_mean_mm - 0.4) < 1e-9);
        assert_string_equal(r.out[i].session_id, "s-1");
        assert_string_equal(r.out[i].cartridge_id, "CRT-1");
        assert_string_equal(r.out[i].pigment_lot, "PL-1");
    }
    /* A sample's pigment goes where its interval (prev, t] ends: window 0
     * gets the samples t0 .. t0+1000, the others ten each. */
    assert_true(fabs(r.out[0].pigment_ul - 0.11) < 1e-9);
    assert_true(fabs(r.out[1].pigment_ul - 0.10) < 1e-9);
    assert_true(fabs(r.out[2].pigment_ul - 0.10) < 1e-9);
    assert_int_equal(agent_windower_total_cycles(w), 360);
    agent_windower_destroy(&w);
    assert_null(w);
}

static void min_max_mean_follow_the_samples(void **state)
{
    (void)state;
    struct agent_windower *w = agent_windower_new(1000);
    struct run r = {0};
    feed(w, &r, T0, 100, 0.3, 0);
    feed(w, &r, T0 + 500, 100, 0.3, 0);  /* 500 ms at 100 Hz, 0.3 mm */
    feed(w, &r, T0 + 1000, 140, 0.5, 0); /* 500 ms at 140 Hz, 0.5 mm */
    r.n += agent_windower_flush(w, &r.out[r.n]);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.out[0].cycles, 120);
    assert_true(fabs(r.out[0].rate_mean_hz - 120.0) < 1e-9);
    assert_true(fabs(r.out[0].rate_min_hz - 100.0) < 1e-9);
    assert_true(fabs(r.out[0].rate_max_hz - 140.0) < 1e-9);
    assert_true(fabs(r.out[0].depth_mean_mm - 0.4) < 1e-9);
    assert_true(fabs(r.out[0].depth_min_mm - 0.3) < 1e-9);
    assert_true(fabs(r.out[0].depth_max_mm - 0.5) < 1e-9);
    agent_windower_destroy(&w);
}

static void idle_windows_only_when_asked(void **state)
{
    (void)state;
    struct agent_windower *w = agent_windower_new(1000);
    struct run r = {0};
    for (int64_t t = T0; t <= T0 + 2500; t += 100) {
        feed(w, &r, t, 0, 0, 0);
    }
    r.n += agent_windower_flush(w, &r.out[r.n]);
    assert_int_equal(r.n, 0);
    agent_windower_set_idle_windows(w, true);
    for (int64_t t = T0 + 3000; t <= T0 + 5000; t += 100) {
        feed(w, &r, t, 0, 0, 0);
    }
    /* Idle windows apply to windows closed from now on: [T0+2000, T0+3000)
     * was still open when they were turned on. */
    assert_int_equal(r.n, 2);
    assert_int_equal(r.out[0].start_ms, T0 + 2000);
    assert_int_equal(r.out[1].start_ms, T0 + 3000);
    assert_int_equal(r.out[0].cycles, 0);
    assert_int_equal(r.out[0].running_ms, 0);
    assert_true(r.out[0].rate_mean_hz == 0);
    agent_windower_destroy(&w);
}

static void clock_step_back_never_repeats_a_timestamp(void **state)
{
    (void)state;
    struct agent_windower *w = agent_windower_new(1000);
    struct run r = {0};
    for (int64_t t = T0; t <= T0 + 2500; t += 100) {
        feed(w, &r, t, 120, 0.4, 0);
    }
    for (int64_t t = T0 + 200; t <= T0 + 3500; t += 100) { /* NTP stepped back 2.3 s */
        feed(w, &r, t, 120, 0.4, 0);
    }
    r.n += agent_windower_flush(w, &r.out[r.n]);
    assert_true(r.n >= 5);
    for (size_t i = 1; i < r.n; i++) {
        assert_true(r.out[i].start_ms > r.out[i - 1].start_ms);
    }
    agent_windower_destroy(&w);
}

static void long_gap_is_capped(void **state)
{
    (void)state;
    struct agent_windower *w = agent_windower_new(1000);
    struct run r = {0};
    feed(w, &r, T0, 120, 0.4, 0);
    feed(w, &r, T0 + 60000, 120, 0.4, 0); /* a minute of silence */
    r.n += agent_windower_flush(w, &r.out[r.n]);
    assert_int_equal(agent_windower_total_cycles(w), 120); /* 1 s credited, not 60 */
    assert_int_equal(r.n, 1);
    assert_int_equal(r.out[0].start_ms, T0 + 59000);
    agent_windower_destroy(&w);
}

static void straddling_samples_split_exactly(void **state)
{
    (void)state;
    struct agent_windower *w = agent_windower_new(250);
    struct run r = {0};
    for (int64_t t = T0; t <= T0 + 9000; t += 300) {
        feed(w, &r, t, 131.0, 0.35, 0);
    }
    r.n += agent_windower_flush(w, &r.out[r.n]);
    uint64_t sum = 0;
    for (size_t i = 0; i < r.n; i++) {
        sum += r.out[i].cycles;
        assert_true(r.out[i].running_ms <= 250);
        assert_int_equal(r.out[i].duration_ms, 250);
    }
    assert_int_equal(sum, agent_windower_total_cycles(w));
    assert_int_equal(sum, (uint64_t)llround(131.0 * 9.0));
    agent_windower_destroy(&w);
}

static void bad_samples_are_refused(void **state)
{
    (void)state;
    struct agent_windower *w = agent_windower_new(1000);
    struct nw_window out[AGENT_WINDOWER_MAX_OUT];
    const struct agent_sample bad[] = {
        {T0, NAN, 0.4, 0}, {T0, 120, INFINITY, 0}, {T0, 120, 0.4, -1}, {T0, -5, 0.4, 0}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct nw_error err = {0};
        assert_int_equal(agent_windower_feed(w, &bad[i], out, AGENT_WINDOWER_MAX_OUT, &err), 0);
        assert_int_equal(err.code, NW_ERR_INVALID);
        assert_non_null(strstr(err.msg, "finite and not negative"));
    }
    assert_int_equal(agent_windower_flush(w, out), 0); /* nothing was opened */
    assert_null(agent_windower_new(99));
    assert_null(agent_windower_new(60001));
    agent_windower_destroy(&w);
}

static void tick_closes_a_quiet_window(void **state)
{
    (void)state;
    struct agent_windower *w = agent_windower_new(1000);
    struct run r = {0};
    feed(w, &r, T0 + 100, 120, 0.4, 0);
    feed(w, &r, T0 + 200, 120, 0.4, 0);
    struct nw_window out;
    assert_int_equal(agent_windower_tick(w, T0 + 1100, 200, &out), 0);
    assert_int_equal(agent_windower_tick(w, T0 + 1200, 200, &out), 1);
    assert_int_equal(out.start_ms, T0);
    assert_int_equal(out.cycles, 12);
    assert_int_equal(agent_windower_tick(w, T0 + 5000, 200, &out), 0);
    agent_windower_destroy(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(steady_rate_gives_exact_windows),
        cmocka_unit_test(min_max_mean_follow_the_samples),
        cmocka_unit_test(idle_windows_only_when_asked),
        cmocka_unit_test(clock_step_back_never_repeats_a_timestamp),
        cmocka_unit_test(long_gap_is_capped),
        cmocka_unit_test(straddling_samples_split_exactly),
        cmocka_unit_test(bad_samples_are_refused),
        cmocka_unit_test(tick_closes_a_quiet_window),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

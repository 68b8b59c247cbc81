/* Unit tests of agent/sim.c: the needle machine model and fault specs. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "sim.h"

#include <string.h>

#define T0 1795000000000LL
#define HOUR (3600 * 1000LL)

static struct agent_sim *make(const char *dev, uint64_t seed)
{
    struct agent_sim_options o = {.seed = seed, .device_id = dev, .start_ms = T0};
    struct agent_sim *s = agent_sim_new(&o);
    assert_non_null(s);
    return s;
}

static void same_seed_same_stream(void **state)
{
    (void)state;
    struct agent_sim *a = make("DG-1", 7), *b = make("DG-1", 7), *c = make("DG-2", 7);
    struct agent_input ia, ib, ic;
    size_t differ = 0;
    for (int i = 0; i < 20000; i++) {
        assert_int_not_equal(agent_sim_next(a, T0 + 24 * HOUR, &ia), AGENT_INPUT_NONE);
        assert_int_equal(agent_sim_next(b, T0 + 24 * HOUR, &ib), ia.kind);
        if (ia.kind == AGENT_INPUT_SAMPLE) {
            assert_memory_equal(&ia.sample, &ib.sample, sizeof(ia.sample));
        } else {
            assert_memory_equal(&ia.event, &ib.event, sizeof(ia.event));
        }
        agent_sim_next(c, T0 + 24 * HOUR, &ic);
        differ += ic.kind != ia.kind ||
                  (ic.kind == AGENT_INPUT_SAMPLE && ic.sample.t_ms != ia.sample.t_ms);
    }
    assert_true(differ > 0);
    agent_sim_destroy(&a);
    agent_sim_destroy(&b);
    agent_sim_destroy(&c);
    assert_null(a);
}

/* Walks 24 h of one machine and checks the session grammar. */
static void sessions_are_well_formed(void **state)
{
    (void)state;
    struct agent_sim *s = make("DG-3", 1);
    struct agent_input in;
    int64_t last_t = 0, start = 0;
    int sessions = 0;
    bool open = false;
    char cartridge[NW_ID_MAX + 1] = "";
    size_t samples = 0, running = 0;
    while (agent_sim_next(s, T0 + 24 * HOUR, &in) != AGENT_INPUT_NONE) {
        int64_t t = in.kind == AGENT_INPUT_SAMPLE ? in.sample.t_ms : in.event.time_ms;
        assert_true(t >= last_t);
        last_t = t;
        if (in.kind == AGENT_INPUT_SAMPLE) {
            assert_true(open);
            samples++;
            if (in.sample.rate_hz > 0) {
                running++;
                assert_true(in.sample.rate_hz > 100 && in.sample.rate_hz < 140);
                assert_true(in.sample.depth_mm > 0.25 && in.sample.depth_mm < 0.5);
            }
            continue;
        }
        switch (in.event.kind) {
        case NW_EVENT_SESSION_START:
            assert_false(open);
            open = true;
            start = t;
            sessions++;
            assert_true(strlen(in.event.session_id) > 0);
            break;
        case NW_EVENT_CARTRIDGE_INSERTED:
            assert_true(open);
            assert_string_not_equal(in.event.cartridge_id, cartridge); /* fresh each time */
            memcpy(cartridge, in.event.cartridge_id, sizeof(cartridge));
            break;
        case NW_EVENT_SESSION_END:
            assert_true(open);
            open = false;
            assert_true(t - start >= 30 * 60 * 1000LL && t - start <= 4 * HOUR + 1000);
            break;
        default:
            break;
        }
    }
    assert_true(sessions >= 3);
    assert_true(samples > 0 && running > samples / 3 && running < samples);
    agent_sim_destroy(&s);
}

static void rate_fault_only_inside_its_window(void **state)
{
    (void)state;
    struct agent_sim_options o = {
        .seed = 3, .device_id = "DG-4", .start_ms = T0, .start_in_session = true, .nfaults = 1};
    o.faults[0] = (struct agent_fault){AGENT_FAULT_RATE_OUT_OF_SPEC, 60000, 30000};
    struct agent_sim *s = agent_sim_new(&o);
    struct agent_input in;
    size_t high = 0;
    while (agent_sim_next(s, T0 + 5 * 60000, &in) != AGENT_INPUT_NONE) {
        if (in.kind != AGENT_INPUT_SAMPLE) {
            continue;
        }
        int64_t rel = in.sample.t_ms - T0;
        bool inside = rel >= 60000 && rel < 90000;
        if (inside) {
            assert_true(in.sample.rate_hz > 145); /* forced on, out of spec */
            high++;
        } else {
            assert_true(in.sample.rate_hz < 140);
        }
    }
    assert_int_equal(high, 300); /* 30 s of 100 ms samples */
    agent_sim_destroy(&s);
}

static void cartridge_reuse_reinserts_the_previous_id(void **state)
{
    (void)state;
    struct agent_sim_options o = {
        .seed = 5, .device_id = "DG-5", .start_ms = T0, .start_in_session = true, .nfaults = 1};
    o.faults[0] = (struct agent_fault){AGENT_FAULT_CARTRIDGE_REUSE, 120000, 1000};
    struct agent_sim *s = agent_sim_new(&o);
    struct agent_input in;
    char ids[8][NW_ID_MAX + 1];
    size_t n = 0;
    while (agent_sim_next(s, T0 + 10 * 60000, &in) != AGENT_INPUT_NONE && n < 8) {
        if (in.kind == AGENT_INPUT_EVENT && in.event.kind == NW_EVENT_CARTRIDGE_INSERTED) {
            memcpy(ids[n++], in.event.cartridge_id, sizeof(ids[0]));
        }
    }
    assert_int_equal(n, 2); /* first session, then the reuse at 2 min */
    assert_string_equal(ids[0], ids[1]);
    agent_sim_destroy(&s);
}

static void fault_specs_parse(void **state)
{
    (void)state;
    struct agent_fault f;
    char dev[NW_DEVICE_ID_MAX + 1];
    struct nw_error err = {0};
    assert_int_equal(agent_fault_parse("needle_depth_out_of_spec@DG-7:2m:45s", &f, dev, &err),
                     NW_OK);
    assert_int_equal(f.kind, AGENT_FAULT_DEPTH_OUT_OF_SPEC);
    assert_string_equal(dev, "DG-7");
    assert_int_equal(f.start_ms, 120000);
    assert_int_equal(f.len_ms, 45000);
    assert_int_equal(agent_fault_parse("pigment_overuse@X", &f, dev, &err), NW_OK);
    assert_int_equal(f.start_ms, 60000);
    assert_int_equal(f.len_ms, 30000);
    /* data_gap: without LEN a seq skipped for good, with LEN a held window */
    assert_int_equal(agent_fault_parse("data_gap@X", &f, dev, &err), NW_OK);
    assert_int_equal(f.start_ms, 60000);
    assert_int_equal(f.len_ms, AGENT_FAULT_LEN_NONE);
    assert_int_equal(agent_fault_parse("data_gap@X:1m:11m", &f, dev, &err), NW_OK);
    assert_int_equal(f.len_ms, 660000);
    static const struct {
        const char *spec, *msg;
    } bad[] = {
        {"needle_rate_out_of_spec", "expected RULE@DEVICE"},
        {"no_such_rule@DG-1", "unknown rule"},
        {"cartridge_reuse@DG/1", "is not 1-64"},
        {"cartridge_reuse@", "is not 1-64"},
        {"cartridge_reuse@DG-1:soon", "START"},
        {"cartridge_reuse@DG-1:1m:x", "LEN"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        nw_error_clear(&err);
        assert_int_equal(agent_fault_parse(bad[i].spec, &f, dev, &err), NW_ERR_CONFIG);
        if (!strstr(err.msg, bad[i].msg)) {
            fail_msg("%s: message \"%s\" lacks \"%s\"", bad[i].spec, err.msg, bad[i].msg);
        }
    }
    assert_string_equal(agent_fault_name(AGENT_FAULT_PIGMENT_OVERUSE), "pigment_overuse");
    assert_int_equal(agent_fault_from_name("device_offline"), AGENT_FAULT_DEVICE_OFFLINE);
}

/* ---- every signal fault holds for LEN, then clears ----------------------- */

#define S_MS 300000LL /* fault START */
#define L_MS 200000LL /* fault LEN: longer than a session of the model below */

/* Whether the sample shows fault kind's signal. */
static bool shows(enum agent_fault_kind kind, const struct agent_sample *x, double prev_rate)
{
    double per_cycle = x->rate_hz > 0 ? x->pigment_ul / (x->rate_hz * 0.1) : 0;
    switch (kind) {
    case AGENT_FAULT_RATE_OUT_OF_SPEC:
        return x->rate_hz > 145;
    case AGENT_FAULT_RATE_UNSTABLE:
        return x->rate_hz > 100 && x->rate_hz < 140 && prev_rate > 0 &&
               (x->rate_hz - prev_rate > 15 || prev_rate - x->rate_hz > 15);
    case AGENT_FAULT_DEPTH_OUT_OF_SPEC:
        return x->depth_mm > 0.55;
    case AGENT_FAULT_PIGMENT_OVERUSE:
        return per_cycle > 3 * 0.0012; /* x5 the model's 0.0012 uL per cycle */
    case AGENT_FAULT_CARTRIDGE_WORN:
        return x->rate_hz > 0;
    default:
        return false;
    }
}

/*
 * One machine with 2-minute sessions 10 minutes apart, the fault at START
 * for LEN (longer than a session): with start_in_session the fault starts
 * while idle (a session is opened for it), without it the random first gap
 * decides. Every sample step of [START, START+LEN) is there and shows the
 * fault (running samples for pigment_overuse, which does not force the
 * needle); none after it does. A worn cartridge leaves at START+LEN.
 */
static void check_signal_fault(enum agent_fault_kind kind, bool start_in_session, uint64_t seed)
{
    struct agent_sim_options o = {.seed = seed,
                                  .device_id = "DG-8",
                                  .start_ms = T0,
                                  .start_in_session = start_in_session,
                                  .session_min_s = 120,
                                  .session_max_s = 120,
                                  .gap_min_s = 600,
                                  .gap_max_s = 600,
                                  .nfaults = 1};
    o.faults[0] = (struct agent_fault){kind, S_MS, L_MS};
    struct agent_sim *s = agent_sim_new(&o);
    struct agent_input in;
    size_t inside = 0, showing = 0, running_inside = 0, after_showing = 0;
    double prev_rate = 0;
    bool removed_at_end = false, open = false;
    while (agent_sim_next(s, T0 + S_MS + L_MS + 20 * 60000, &in) != AGENT_INPUT_NONE) {
        if (in.kind == AGENT_INPUT_EVENT) {
            int64_t rel = in.event.time_ms - T0;
            open = in.event.kind == NW_EVENT_SESSION_START ||
                   (open && in.event.kind != NW_EVENT_SESSION_END);
            if (in.event.kind == NW_EVENT_CARTRIDGE_REMOVED && rel >= S_MS + L_MS &&
                rel < S_MS + L_MS + 100) {
                removed_at_end = true;
            }
            if (in.event.kind == NW_EVENT_SESSION_END) {
                prev_rate = 0;
            }
            continue;
        }
        assert_true(open);
        int64_t rel = in.sample.t_ms - T0;
        bool sig = shows(kind, &in.sample, prev_rate);
        prev_rate = in.sample.rate_hz;
        if (rel >= S_MS && rel < S_MS + L_MS) {
            inside++;
            showing += sig;
            running_inside += in.sample.rate_hz > 0;
        } else if (rel >= S_MS + L_MS) {
            after_showing += sig;
        } else if (kind != AGENT_FAULT_CARTRIDGE_WORN) {
            assert_false(sig); /* before START: nothing */
        }
    }
    if (inside < L_MS / 100 - 1) {
        fail_msg("%s (start_in_session %d): %zu samples in [START, START+LEN), expected %lld",
                 agent_fault_name(kind), start_in_session, inside, L_MS / 100);
    }
    if (kind == AGENT_FAULT_PIGMENT_OVERUSE) {
        assert_true(running_inside > inside / 3);
        assert_int_equal(showing, running_inside);
    } else if (kind == AGENT_FAULT_RATE_UNSTABLE) {
        assert_true(showing >= inside - 1); /* the first has no neighbour inside */
    } else {
        assert_int_equal(showing, inside);
    }
    assert_int_equal(after_showing, kind == AGENT_FAULT_CARTRIDGE_WORN ? after_showing : 0);
    if (kind == AGENT_FAULT_CARTRIDGE_WORN) {
        assert_true(removed_at_end); /* the worn cartridge goes at START+LEN */
    }
    agent_sim_destroy(&s);
}

static void signal_faults_hold_for_len_then_clear(void **state)
{
    (void)state;
    static const enum agent_fault_kind kinds[] = {
        AGENT_FAULT_RATE_OUT_OF_SPEC, AGENT_FAULT_RATE_UNSTABLE, AGENT_FAULT_DEPTH_OUT_OF_SPEC,
        AGENT_FAULT_PIGMENT_OVERUSE, AGENT_FAULT_CARTRIDGE_WORN};
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        for (uint64_t seed = 1; seed <= 4; seed++) {
            check_signal_fault(kinds[k], true, seed);  /* idle at START */
            check_signal_fault(kinds[k], false, seed); /* wherever the first gap ends */
        }
    }
}

/* The worn cartridge's session goes on past START+LEN: it is replaced. */
static void worn_cartridge_is_replaced_at_the_end(void **state)
{
    (void)state;
    struct agent_sim_options o = {.seed = 2,
                                  .device_id = "DG-8",
                                  .start_ms = T0,
                                  .start_in_session = true,
                                  .session_min_s = 3600,
                                  .session_max_s = 3600,
                                  .nfaults = 1};
    o.faults[0] = (struct agent_fault){AGENT_FAULT_CARTRIDGE_WORN, 60000, 120000};
    struct agent_sim *s = agent_sim_new(&o);
    struct agent_input in;
    char ids[4][NW_ID_MAX + 1];
    int64_t at[4];
    size_t n = 0, removed = 0;
    while (agent_sim_next(s, T0 + 30 * 60000, &in) != AGENT_INPUT_NONE) {
        if (in.kind == AGENT_INPUT_EVENT && in.event.kind == NW_EVENT_CARTRIDGE_INSERTED && n < 4) {
            at[n] = in.event.time_ms - T0;
            memcpy(ids[n++], in.event.cartridge_id, sizeof(ids[0]));
        }
        if (in.kind == AGENT_INPUT_EVENT && in.event.kind == NW_EVENT_CARTRIDGE_REMOVED) {
            assert_int_equal(in.event.time_ms - T0, 180000);
            assert_string_equal(in.event.cartridge_id, ids[0]);
            removed++;
        }
    }
    assert_int_equal(n, 2);
    assert_int_equal(removed, 1);
    assert_int_equal(at[1], 180000);
    assert_string_not_equal(ids[0], ids[1]);
    agent_sim_destroy(&s);
}

/* cartridge_reuse: at START a session re-inserts the previous cartridge
 * and ends at START+LEN, also when START falls between sessions. */
static void cartridge_reuse_session_ends_at_len(void **state)
{
    (void)state;
    for (int idle = 0; idle <= 1; idle++) {
        struct agent_sim_options o = {.seed = 11,
                                      .device_id = "DG-6",
                                      .start_ms = T0,
                                      .start_in_session = true,
                                      .session_min_s = idle ? 60 : 3600,
                                      .session_max_s = idle ? 60 : 3600,
                                      .gap_min_s = 1800,
                                      .gap_max_s = 1800,
                                      .nfaults = 1};
        o.faults[0] = (struct agent_fault){AGENT_FAULT_CARTRIDGE_REUSE, 200000, 90000};
        struct agent_sim *s = agent_sim_new(&o);
        struct agent_input in;
        char first[NW_ID_MAX + 1] = "";
        size_t inserted = 0, ends = 0;
        int64_t reuse_start = -1, reuse_end = -1;
        while (agent_sim_next(s, T0 + 20 * 60000, &in) != AGENT_INPUT_NONE) {
            if (in.kind != AGENT_INPUT_EVENT) {
                continue;
            }
            int64_t rel = in.event.time_ms - T0;
            if (in.event.kind == NW_EVENT_CARTRIDGE_INSERTED) {
                if (inserted++ == 0) {
                    memcpy(first, in.event.cartridge_id, sizeof(first));
                } else {
                    assert_string_equal(in.event.cartridge_id, first);
                    reuse_start = rel;
                }
            }
            if (in.event.kind == NW_EVENT_SESSION_END && ends++ == (idle ? 1 : 1)) {
                reuse_end = rel;
            }
        }
        assert_int_equal(inserted, 2);
        assert_int_equal(reuse_start, 200000);
        assert_int_equal(reuse_end, 290000);
        agent_sim_destroy(&s);
    }
}

/* maintenance_due: one maintenance event (service, resets the counter) at
 * START+LEN exactly, in a session or between sessions. */
static void maintenance_event_at_start_plus_len(void **state)
{
    (void)state;
    for (int idle = 0; idle <= 1; idle++) {
        struct agent_sim_options o = {.seed = 4,
                                      .device_id = "DG-2",
                                      .start_ms = T0,
                                      .start_in_session = true,
                                      .session_min_s = idle ? 60 : 3600,
                                      .session_max_s = idle ? 60 : 3600,
                                      .nfaults = 1};
        o.faults[0] = (struct agent_fault){AGENT_FAULT_MAINTENANCE_DUE, 90050, 60000};
        struct agent_sim *s = agent_sim_new(&o);
        struct agent_input in;
        size_t n = 0;
        int64_t last = 0;
        while (agent_sim_next(s, T0 + 10 * 60000, &in) != AGENT_INPUT_NONE) {
            int64_t t = in.kind == AGENT_INPUT_SAMPLE ? in.sample.t_ms : in.event.time_ms;
            assert_true(t >= last);
            last = t;
            if (in.kind == AGENT_INPUT_EVENT && in.event.kind == NW_EVENT_MAINTENANCE) {
                n++;
                assert_int_equal(in.event.time_ms - T0, 150050);
                assert_string_equal(in.event.action, "service");
                assert_true(in.event.resets_service);
            }
        }
        assert_int_equal(n, 1);
        agent_sim_destroy(&s);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(same_seed_same_stream),
        cmocka_unit_test(sessions_are_well_formed),
        cmocka_unit_test(rate_fault_only_inside_its_window),
        cmocka_unit_test(cartridge_reuse_reinserts_the_previous_id),
        cmocka_unit_test(fault_specs_parse),
        cmocka_unit_test(signal_faults_hold_for_len_then_clear),
        cmocka_unit_test(worn_cartridge_is_replaced_at_the_end),
        cmocka_unit_test(cartridge_reuse_session_ends_at_len),
        cmocka_unit_test(maintenance_event_at_start_plus_len),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

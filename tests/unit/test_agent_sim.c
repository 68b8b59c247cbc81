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
    assert_int_equal(agent_fault_parse("data_gap@X", &f, dev, &err), NW_OK);
    assert_int_equal(f.start_ms, 60000);
    assert_int_equal(f.len_ms, 30000);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(same_seed_same_stream),
        cmocka_unit_test(sessions_are_well_formed),
        cmocka_unit_test(rate_fault_only_inside_its_window),
        cmocka_unit_test(cartridge_reuse_reinserts_the_previous_id),
        cmocka_unit_test(fault_specs_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_collector_pipeline.c - the ingest -> worker batch format
 * (collector/pipeline.c): records written by cp_in_put() come back from
 * cp_in_next() unchanged and in order; a batch cut short, or a record that
 * claims more bytes than there are, ends the reading without reading past
 * the end. A windows record (struct cp_windows) comes back as it was
 * decoded, through any alignment, and one of the wrong size is refused.
 */
#include "pipeline.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

struct rec {
    uint8_t type;
    const char *payload;
    uint32_t nrej;
    uint32_t rej[4];
};

static const struct rec recs[] = {
    {CP_WINDOWS, "window batch bytes", 0, {0}},
    {CP_EVENTS, "e", 3, {0, 5, 9}},
    {CP_STATUS, "", 0, {0}},
    {CP_WINDOWS, "1234567", 1, {42}},
};
#define NRECS (sizeof(recs) / sizeof(recs[0]))

static size_t build(uint8_t *buf, size_t cap)
{
    size_t used = sizeof(struct cp_in_batch);
    struct cp_in_batch b = {.nmsgs = NRECS};
    memcpy(buf, &b, sizeof(b));
    for (size_t i = 0; i < NRECS; i++) {
        size_t len = strlen(recs[i].payload);
        struct cp_in h = {.type = recs[i].type,
                          .nrejected = recs[i].nrej,
                          .arrival_ms = 1000 + (int64_t)i,
                          .len = (uint32_t)len};
        assert_true(used + cp_in_record_size(len, recs[i].nrej) <= cap);
        size_t before = used;
        cp_in_put(buf, &used, &h, recs[i].payload, recs[i].nrej ? recs[i].rej : NULL);
        assert_int_equal(used - before, cp_in_record_size(len, recs[i].nrej));
        assert_int_equal(used % 8, 0);
    }
    return used;
}

static void test_records_round_trip_in_order(void **state)
{
    (void)state;
    uint8_t buf[1024];
    size_t size = build(buf, sizeof(buf));
    size_t at = sizeof(struct cp_in_batch);
    struct cp_in h;
    const uint8_t *payload, *rej;
    for (size_t i = 0; i < NRECS; i++) {
        assert_true(cp_in_next(buf, size, &at, &h, &payload, &rej));
        assert_int_equal(h.type, recs[i].type);
        assert_int_equal(h.arrival_ms, 1000 + (int64_t)i);
        assert_int_equal(h.len, strlen(recs[i].payload));
        assert_memory_equal(payload, recs[i].payload, h.len);
        assert_int_equal(h.nrejected, recs[i].nrej);
        for (uint32_t k = 0; k < h.nrejected; k++) {
            uint32_t v;
            memcpy(&v, rej + 4 * k, sizeof(v));
            assert_int_equal(v, recs[i].rej[k]);
        }
    }
    assert_int_equal(at, size);
    assert_false(cp_in_next(buf, size, &at, &h, &payload, &rej));
    assert_int_equal(at, size);
}

/* Every cut of the batch reads the whole records before the cut and stops
 * at the first that does not fit, leaving *at at its start. */
static void test_a_cut_batch_stops_at_the_cut(void **state)
{
    (void)state;
    uint8_t buf[1024];
    size_t size = build(buf, sizeof(buf));
    for (size_t cut = 0; cut < size; cut++) {
        uint8_t *copy = malloc(cut ? cut : 1); /* ASan: nothing past cut is read */
        assert_non_null(copy);
        memcpy(copy, buf, cut);
        size_t at = sizeof(struct cp_in_batch), n = 0;
        struct cp_in h;
        const uint8_t *payload, *rej;
        while (cp_in_next(copy, cut, &at, &h, &payload, &rej)) {
            n++;
        }
        assert_true(at <= cut || cut < sizeof(struct cp_in_batch));
        assert_true(n < NRECS);
        free(copy);
    }
}

static void test_a_record_claiming_too_much_is_refused(void **state)
{
    (void)state;
    uint8_t buf[256] = {0};
    size_t at = sizeof(struct cp_in_batch);
    struct cp_in h = {.type = CP_WINDOWS, .len = 8, .nrejected = UINT32_MAX};
    memcpy(buf + at, &h, sizeof(h));
    const uint8_t *payload, *rej;
    struct cp_in got;
    assert_false(cp_in_next(buf, sizeof(buf), &at, &got, &payload, &rej));
    assert_int_equal(at, sizeof(struct cp_in_batch));
    h.nrejected = 0, h.len = UINT32_MAX;
    memcpy(buf + at, &h, sizeof(h));
    assert_false(cp_in_next(buf, sizeof(buf), &at, &got, &payload, &rej));
    at = sizeof(buf) + 8; /* beyond the end */
    assert_false(cp_in_next(buf, sizeof(buf), &at, &got, &payload, &rej));
}

static struct nw_window win(uint64_t seq)
{
    struct nw_window w = {.seq = seq,
                          .start_ms = 1700000000000 + (int64_t)seq * 1000,
                          .duration_ms = 1000,
                          .running_ms = 900,
                          .cycles = 118,
                          .rate_mean_hz = 120.5,
                          .rate_min_hz = 110.25,
                          .rate_max_hz = 130,
                          .depth_mean_mm = 0.4,
                          .depth_min_mm = 0.3,
                          .depth_max_mm = 0.45,
                          .pigment_ul = 0.125};
    snprintf(w.session_id, sizeof(w.session_id), "sess-%llu", (unsigned long long)seq);
    snprintf(w.cartridge_id, sizeof(w.cartridge_id), "cart-1");
    return w;
}

static void test_windows_round_trip_at_any_alignment(void **state)
{
    (void)state;
    struct nw_window in[3] = {win(7), win(8), win(9)};
    struct nw_window_batch b = {.epoch = 42, .queue_floor = 5, .count = 3, .windows = in};
    snprintf(b.device_id, sizeof(b.device_id), "DG-0001");
    size_t len = cp_windows_size(3);
    uint8_t *buf = malloc(len + 8);
    assert_non_null(buf);
    for (size_t off = 0; off < 8; off++) { /* tcp:// frames need not be aligned */
        cp_windows_put(buf + off, &b);
        struct nw_window out[4];
        struct nw_window_batch got = {.windows = out, .capacity = 4};
        assert_true(cp_windows_get(buf + off, len, &got));
        assert_string_equal(got.device_id, "DG-0001");
        assert_int_equal(got.epoch, 42);
        assert_int_equal(got.queue_floor, 5);
        assert_int_equal(got.count, 3);
        assert_memory_equal(out, in, sizeof(in));
    }
    free(buf);
}

static void test_a_windows_record_of_the_wrong_size_is_refused(void **state)
{
    (void)state;
    struct nw_window in[2] = {win(1), win(2)};
    struct nw_window_batch b = {.epoch = 1, .count = 2, .windows = in};
    snprintf(b.device_id, sizeof(b.device_id), "DG-0001");
    size_t len = cp_windows_size(2);
    uint8_t buf[sizeof(struct cp_windows) + 3 * sizeof(struct nw_window)];
    cp_windows_put(buf, &b);
    struct nw_window out[2];
    struct nw_window_batch got = {.windows = out, .capacity = 2};
    assert_false(cp_windows_get(buf, len - 1, &got));
    assert_false(cp_windows_get(buf, len + sizeof(struct nw_window), &got));
    assert_false(cp_windows_get(buf, sizeof(struct cp_windows) - 1, &got));
    got.capacity = 1; /* more windows than the reader holds */
    assert_false(cp_windows_get(buf, len, &got));
    struct cp_windows h;
    memcpy(&h, buf, sizeof(h));
    /* A count whose size wraps to exactly len: 2 + 2^59 windows of 288
     * bytes are 576 + 9 * 2^64 bytes. */
    assert_int_equal(sizeof(struct nw_window), 288);
    h.count = 2 + (UINT64_C(1) << 59);
    memcpy(buf, &h, sizeof(h));
    got.capacity = SIZE_MAX;
    assert_false(cp_windows_get(buf, len, &got));
}

/* Strings without their terminator come back cut, never unterminated. */
static void test_windows_strings_are_always_terminated(void **state)
{
    (void)state;
    struct nw_window in = win(1);
    memset(in.session_id, 'S', sizeof(in.session_id));
    memset(in.pigment_lot, 'L', sizeof(in.pigment_lot));
    struct nw_window_batch b = {.count = 1, .windows = &in};
    memset(b.device_id, 'D', sizeof(b.device_id));
    uint8_t buf[sizeof(struct cp_windows) + sizeof(struct nw_window)];
    cp_windows_put(buf, &b);
    struct nw_window out;
    struct nw_window_batch got = {.windows = &out, .capacity = 1};
    assert_true(cp_windows_get(buf, sizeof(buf), &got));
    assert_int_equal(strlen(got.device_id), NW_DEVICE_ID_MAX);
    assert_int_equal(strlen(out.session_id), NW_ID_MAX);
    assert_int_equal(strlen(out.pigment_lot), NW_ID_MAX);
    assert_string_equal(out.cartridge_id, "cart-1");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_records_round_trip_in_order),
        cmocka_unit_test(test_a_cut_batch_stops_at_the_cut),
        cmocka_unit_test(test_a_record_claiming_too_much_is_refused),
        cmocka_unit_test(test_windows_round_trip_at_any_alignment),
        cmocka_unit_test(test_a_windows_record_of_the_wrong_size_is_refused),
        cmocka_unit_test(test_windows_strings_are_always_terminated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

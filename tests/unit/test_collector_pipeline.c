/*
 * test_collector_pipeline.c - the ingest -> worker batch format
 * (collector/pipeline.c): records written by cp_in_put() come back from
 * cp_in_next() unchanged and in order; a batch cut short, or a record that
 * claims more bytes than there are, ends the reading without reading past
 * the end.
 */
#include "pipeline.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_records_round_trip_in_order),
        cmocka_unit_test(test_a_cut_batch_stops_at_the_cut),
        cmocka_unit_test(test_a_record_claiming_too_much_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

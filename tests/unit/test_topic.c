/*
 * test_topic.c - MQTT topics PREFIX/<device>/<kind> (topic.h): prefix rules,
 * building, subscription filters (plain and MQTT 5 shared), parsing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <needlewatch/topic.h>

#include <stdio.h>
#include <string.h>

#define PFX NW_TOPIC_PREFIX_DEFAULT

#define assert_contains(haystack, needle)                                                          \
    do {                                                                                           \
        const char *h_ = (haystack), *n_ = (needle);                                               \
        if (!strstr(h_, n_)) {                                                                     \
            print_error("\"%s\" does not contain \"%s\"\n", h_, n_);                               \
            fail();                                                                                \
        }                                                                                          \
    } while (0)

static char id64[NW_DEVICE_ID_MAX + 1];
static char id65[NW_DEVICE_ID_MAX + 2];
static char prefix128[NW_TOPIC_PREFIX_MAX + 1];
static char prefix129[NW_TOPIC_PREFIX_MAX + 2];

static int setup(void **state)
{
    (void)state;
    memset(id64, 'd', NW_DEVICE_ID_MAX);
    memset(id65, 'e', NW_DEVICE_ID_MAX + 1);
    /* "p/p/p/...": 128 bytes of levels. */
    for (size_t i = 0; i < NW_TOPIC_PREFIX_MAX; i++) {
        prefix128[i] = i % 2 ? '/' : 'p';
    }
    prefix128[NW_TOPIC_PREFIX_MAX - 1] = 'q'; /* no trailing slash */
    memcpy(prefix129, prefix128, NW_TOPIC_PREFIX_MAX);
    prefix129[NW_TOPIC_PREFIX_MAX] = 'r';
    return 0;
}

static void test_kind_names(void **state)
{
    (void)state;
    assert_string_equal(nw_topic_kind_name(NW_TOPIC_TELEMETRY), "telemetry");
    assert_string_equal(nw_topic_kind_name(NW_TOPIC_EVENT), "event");
    assert_string_equal(nw_topic_kind_name(NW_TOPIC_STATUS), "status");
    assert_string_equal(nw_topic_kind_name(NW_TOPIC_ACK), "ack");
    assert_string_equal(nw_topic_kind_name(NW_TOPIC_ALERT), "alert");
    assert_null(nw_topic_kind_name(NW_TOPIC__COUNT));
    assert_null(nw_topic_kind_name((enum nw_topic_kind) - 1));
}

static void test_check_prefix(void **state)
{
    (void)state;
    const struct {
        const char *prefix;
        enum nw_err rc;
        const char *needle;
    } rows[] = {
        {PFX, NW_OK, NULL},
        {"a", NW_OK, NULL},
        {"fleet/eu-west/needlewatch/v1", NW_OK, NULL},
        {"with space/v1", NW_OK, NULL}, /* legal MQTT */
        {"cl\xc3\xadnica/v1", NW_OK, NULL},
        {"a$b/v1", NW_OK, NULL}, /* '$' only reserved at the start */
        {prefix128, NW_OK, NULL},
        {prefix129, NW_ERR_CONFIG, "topic prefix: needs 1-128 bytes"},
        {"", NW_ERR_CONFIG, "topic prefix: needs 1-128 bytes"},
        {NULL, NW_ERR_CONFIG, "topic prefix: needs 1-128 bytes"},
        {"/needlewatch/v1", NW_ERR_CONFIG,
         "topic prefix \"/needlewatch/v1\": no leading, trailing or empty levels"},
        {"needlewatch/v1/", NW_ERR_CONFIG, "no leading, trailing or empty levels"},
        {"needlewatch//v1", NW_ERR_CONFIG, "no leading, trailing or empty levels"},
        {"/", NW_ERR_CONFIG, "no leading, trailing or empty levels"},
        {"$SYS/needlewatch", NW_ERR_CONFIG,
         "topic prefix \"$SYS/needlewatch\": '$' topics are reserved by the broker"},
        {"$share/g/needlewatch", NW_ERR_CONFIG, "reserved by the broker"},
        {"needlewatch/+/v1", NW_ERR_CONFIG,
         "topic prefix \"needlewatch/+/v1\": no wildcards (+, #) or control characters"},
        {"needlewatch/#", NW_ERR_CONFIG, "no wildcards"},
        {"needle+watch", NW_ERR_CONFIG, "no wildcards"},
        {"needlewatch\t/v1", NW_ERR_CONFIG, "control characters"},
        {"needlewatch\n", NW_ERR_CONFIG, "control characters"},
        {"needlewatch\xff", NW_ERR_CONFIG, "control characters"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct nw_error err = {.code = NW_ERR__COUNT, .msg = "untouched"};
        enum nw_err rc = nw_topic_check_prefix(rows[i].prefix, &err);
        if (rc != rows[i].rc) {
            print_error("prefix row %zu: got %s (%s)\n", i, nw_strerror(rc), err.msg);
        }
        assert_int_equal(rc, rows[i].rc);
        if (rows[i].rc == NW_OK) {
            assert_string_equal(err.msg, "untouched");
        } else {
            assert_int_equal(err.code, NW_ERR_CONFIG);
            assert_contains(err.msg, rows[i].needle);
        }
        assert_int_equal(nw_topic_check_prefix(rows[i].prefix, NULL), rows[i].rc);
    }
}

static void test_build_and_parse_round_trip(void **state)
{
    (void)state;
    const char *prefixes[] = {PFX, "a", "fleet/eu-west/needlewatch/v1", prefix128};
    const char *devices[] = {"smp-0042", "A", "x_Y-9", id64};
    for (size_t p = 0; p < 4; p++) {
        for (size_t d = 0; d < 4; d++) {
            for (int k = 0; k < NW_TOPIC__COUNT; k++) {
                char topic[NW_TOPIC_MAX + 1];
                struct nw_error err = {0};
                assert_int_equal(nw_topic_build(prefixes[p], devices[d], (enum nw_topic_kind)k,
                                                topic, sizeof(topic), &err),
                                 NW_OK);
                char want[NW_TOPIC_MAX + 1];
                snprintf(want, sizeof(want), "%s/%s/%s", prefixes[p], devices[d],
                         nw_topic_kind_name((enum nw_topic_kind)k));
                assert_string_equal(topic, want);
                char dev[NW_DEVICE_ID_MAX + 1];
                enum nw_topic_kind kind = NW_TOPIC__COUNT;
                enum nw_reason reason = NW_REASON_NONE;
                assert_int_equal(nw_topic_parse(prefixes[p], topic, dev, &kind, &reason, &err),
                                 NW_OK);
                assert_string_equal(dev, devices[d]);
                assert_int_equal(kind, k);
            }
        }
    }
    /* The longest topic is exactly NW_TOPIC_MAX bytes. */
    char topic[NW_TOPIC_MAX + 1];
    assert_int_equal(
        nw_topic_build(prefix128, id64, NW_TOPIC_TELEMETRY, topic, sizeof(topic), NULL), NW_OK);
    assert_int_equal(strlen(topic), NW_TOPIC_MAX);
}

static void test_build_refusals(void **state)
{
    (void)state;
    char topic[NW_TOPIC_MAX + 1];
    struct nw_error err;
    const char *bad_devices[] = {"",    "a/b",        "a+b", "+",    "#", "a#",
                                 "a b", "d\xc3\xa9v", "a.b", "$SYS", id65};
    for (size_t i = 0; i < sizeof(bad_devices) / sizeof(bad_devices[0]); i++) {
        assert_int_equal(
            nw_topic_build(PFX, bad_devices[i], NW_TOPIC_STATUS, topic, sizeof(topic), &err),
            NW_ERR_INVAL);
        assert_int_equal(err.code, NW_ERR_INVAL);
        assert_string_equal(err.msg, "device id: needs 1-64 characters of [A-Za-z0-9_-]");
    }
    assert_int_equal(nw_topic_build(PFX, NULL, NW_TOPIC_STATUS, topic, sizeof(topic), &err),
                     NW_ERR_INVAL);
    assert_int_equal(nw_topic_build("a/+", "dev", NW_TOPIC_STATUS, topic, sizeof(topic), &err),
                     NW_ERR_INVAL);
    assert_string_equal(err.msg, "bad topic prefix");
    assert_int_equal(nw_topic_build("/a", "dev", NW_TOPIC_STATUS, topic, sizeof(topic), &err),
                     NW_ERR_INVAL);
    assert_int_equal(nw_topic_build(PFX, "dev", NW_TOPIC__COUNT, topic, sizeof(topic), &err),
                     NW_ERR_INVAL);
    assert_string_equal(err.msg, "topic kind 5 unknown");
    assert_int_equal(
        nw_topic_build(PFX, "dev", (enum nw_topic_kind) - 1, topic, sizeof(topic), NULL),
        NW_ERR_INVAL);
}

static void test_build_buffer_too_small(void **state)
{
    (void)state;
    const char *want = "needlewatch/v1/smp-0042/telemetry"; /* 33 bytes */
    char topic[64];
    struct nw_error err;
    size_t need = strlen(want) + 1;
    assert_int_equal(nw_topic_build(PFX, "smp-0042", NW_TOPIC_TELEMETRY, topic, need, &err), NW_OK);
    assert_string_equal(topic, want);
    assert_int_equal(nw_topic_build(PFX, "smp-0042", NW_TOPIC_TELEMETRY, topic, need - 1, &err),
                     NW_ERR_TOO_BIG);
    assert_int_equal(err.code, NW_ERR_TOO_BIG);
    assert_contains(err.msg, "buffer has 33");
    assert_int_equal(nw_topic_build(PFX, "smp-0042", NW_TOPIC_TELEMETRY, topic, 1, &err),
                     NW_ERR_TOO_BIG);
    assert_int_equal(nw_topic_build(PFX, "smp-0042", NW_TOPIC_TELEMETRY, topic, 0, NULL),
                     NW_ERR_TOO_BIG);
}

static void test_filter(void **state)
{
    (void)state;
    char buf[NW_TOPIC_MAX + 80];
    struct nw_error err;
    assert_int_equal(nw_topic_filter(PFX, NULL, NW_TOPIC_TELEMETRY, buf, sizeof(buf), &err), NW_OK);
    assert_string_equal(buf, "needlewatch/v1/+/telemetry");
    assert_int_equal(nw_topic_filter(PFX, "G", NW_TOPIC_TELEMETRY, buf, sizeof(buf), &err), NW_OK);
    assert_string_equal(buf, "$share/G/needlewatch/v1/+/telemetry");
    assert_int_equal(
        nw_topic_filter("fleet/eu", "collectors_1", NW_TOPIC_EVENT, buf, sizeof(buf), &err), NW_OK);
    assert_string_equal(buf, "$share/collectors_1/fleet/eu/+/event");
    assert_int_equal(nw_topic_filter(PFX, id64, NW_TOPIC_STATUS, buf, sizeof(buf), &err), NW_OK);
    assert_int_equal(strlen(buf), 7 + 64 + 1 + strlen(PFX) + 3 + 6);

    const char *bad_groups[] = {"", "a/b", "+", "#", "g h", id65};
    for (size_t i = 0; i < sizeof(bad_groups) / sizeof(bad_groups[0]); i++) {
        assert_int_equal(
            nw_topic_filter(PFX, bad_groups[i], NW_TOPIC_TELEMETRY, buf, sizeof(buf), &err),
            NW_ERR_INVAL);
        assert_string_equal(err.msg, "share group: needs 1-64 characters of [A-Za-z0-9_-]");
    }
    assert_int_equal(nw_topic_filter("$SYS", NULL, NW_TOPIC_ACK, buf, sizeof(buf), &err),
                     NW_ERR_INVAL);
    assert_int_equal(nw_topic_filter(PFX, NULL, NW_TOPIC__COUNT, buf, sizeof(buf), &err),
                     NW_ERR_INVAL);

    /* "$share/G/needlewatch/v1/+/telemetry" is 35 bytes. */
    assert_int_equal(nw_topic_filter(PFX, "G", NW_TOPIC_TELEMETRY, buf, 36, &err), NW_OK);
    assert_int_equal(nw_topic_filter(PFX, "G", NW_TOPIC_TELEMETRY, buf, 35, &err), NW_ERR_TOO_BIG);
    assert_int_equal(err.code, NW_ERR_TOO_BIG);
    assert_int_equal(nw_topic_filter(PFX, NULL, NW_TOPIC_TELEMETRY, buf, 26, &err), NW_ERR_TOO_BIG);
    assert_int_equal(nw_topic_filter(PFX, NULL, NW_TOPIC_TELEMETRY, buf, 27, &err), NW_OK);
}

static void test_parse_table(void **state)
{
    (void)state;
    static char long_topic[256];
    snprintf(long_topic, sizeof(long_topic), "needlewatch/v1/%s/telemetry", id65);
    const struct {
        const char *topic;
        enum nw_reason reason; /* NW_REASON_NONE: accepted */
        const char *needle_or_device;
        enum nw_topic_kind kind;
    } rows[] = {
        {"needlewatch/v1/smp-0042/telemetry", NW_REASON_NONE, "smp-0042", NW_TOPIC_TELEMETRY},
        {"needlewatch/v1/smp-0042/event", NW_REASON_NONE, "smp-0042", NW_TOPIC_EVENT},
        {"needlewatch/v1/A/status", NW_REASON_NONE, "A", NW_TOPIC_STATUS},
        {"needlewatch/v1/a_b-c/ack", NW_REASON_NONE, "a_b-c", NW_TOPIC_ACK},
        {"needlewatch/v1/x/alert", NW_REASON_NONE, "x", NW_TOPIC_ALERT},
        /* wrong prefix */
        {"needlewatch/v2/smp/telemetry", NW_REASON_BAD_TOPIC,
         "topic: not under \"needlewatch/v1/\"", 0},
        {"needlewatch/v1x/smp/telemetry", NW_REASON_BAD_TOPIC, "not under", 0},
        {"Needlewatch/v1/smp/telemetry", NW_REASON_BAD_TOPIC, "not under", 0},
        {"/needlewatch/v1/smp/telemetry", NW_REASON_BAD_TOPIC, "not under", 0},
        {"$share/G/needlewatch/v1/smp/telemetry", NW_REASON_BAD_TOPIC, "not under", 0},
        {"needlewatch/v1", NW_REASON_BAD_TOPIC, "not under", 0},
        {"needlewatch", NW_REASON_BAD_TOPIC, "not under", 0},
        {"", NW_REASON_BAD_TOPIC, "not under", 0},
        /* missing levels */
        {"needlewatch/v1/", NW_REASON_BAD_TOPIC, "topic: expected needlewatch/v1/<device>/<kind>",
         0},
        {"needlewatch/v1/smp-0042", NW_REASON_BAD_TOPIC, "expected needlewatch/v1/<device>/<kind>",
         0},
        {"needlewatch/v1/smp-0042/", NW_REASON_BAD_TOPIC, "topic: unknown kind \"\"", 0},
        /* extra level, unknown kind, case */
        {"needlewatch/v1/smp-0042/telemetry/x", NW_REASON_BAD_TOPIC,
         "topic: unknown kind \"telemetry/x\"", 0},
        {"needlewatch/v1/smp-0042/telemetry/", NW_REASON_BAD_TOPIC, "unknown kind", 0},
        {"needlewatch/v1/smp-0042/metrics", NW_REASON_BAD_TOPIC, "unknown kind \"metrics\"", 0},
        {"needlewatch/v1/smp-0042/Telemetry", NW_REASON_BAD_TOPIC, "unknown kind", 0},
        {"needlewatch/v1/smp-0042/telemetr", NW_REASON_BAD_TOPIC, "unknown kind", 0},
        {"needlewatch/v1/smp-0042/#", NW_REASON_BAD_TOPIC, "unknown kind \"#\"", 0},
        /* device ids */
        {"needlewatch/v1/+/telemetry", NW_REASON_BAD_DEVICE_ID,
         "topic: device id needs 1-64 characters of [A-Za-z0-9_-]", 0},
        {"needlewatch/v1/#/telemetry", NW_REASON_BAD_DEVICE_ID, "device id", 0},
        {"needlewatch/v1/a b/telemetry", NW_REASON_BAD_DEVICE_ID, "device id", 0},
        {"needlewatch/v1/d\xc3\xa9v/telemetry", NW_REASON_BAD_DEVICE_ID, "device id", 0},
        {"needlewatch/v1/a.b/telemetry", NW_REASON_BAD_DEVICE_ID, "device id", 0},
        /* empty and too long ids are bad device ids (validate.h) */
        {"needlewatch/v1//telemetry", NW_REASON_BAD_DEVICE_ID, "device id", 0},
        {long_topic, NW_REASON_BAD_DEVICE_ID, "device id", 0},
    };
    int failures = 0;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        char dev[NW_DEVICE_ID_MAX + 1] = "";
        enum nw_topic_kind kind = NW_TOPIC__COUNT;
        enum nw_reason reason = (enum nw_reason) - 1;
        struct nw_error err = {.code = NW_ERR__COUNT, .msg = "untouched"};
        enum nw_err rc = nw_topic_parse(PFX, rows[i].topic, dev, &kind, &reason, &err);
        bool ok;
        if (rows[i].reason == NW_REASON_NONE) {
            ok = rc == NW_OK && strcmp(dev, rows[i].needle_or_device) == 0 &&
                 kind == rows[i].kind && strcmp(err.msg, "untouched") == 0;
        } else {
            ok = rc == NW_ERR_INVALID && reason == rows[i].reason && err.code == NW_ERR_INVALID &&
                 strstr(err.msg, rows[i].needle_or_device) != NULL;
        }
        if (!ok) {
            print_error("parse \"%.80s\": got %s/%s \"%s\" dev \"%s\"\n", rows[i].topic,
                        nw_strerror(rc), rc == NW_OK ? "-" : nw_reason_name(reason), err.msg, dev);
            failures++;
        }
        /* NULL reason and error are allowed. */
        assert_int_equal(nw_topic_parse(PFX, rows[i].topic, dev, &kind, NULL, NULL),
                         rows[i].reason == NW_REASON_NONE ? NW_OK : NW_ERR_INVALID);
    }
    assert_int_equal(failures, 0);
}

static void test_parse_other_prefix(void **state)
{
    (void)state;
    char dev[NW_DEVICE_ID_MAX + 1];
    enum nw_topic_kind kind;
    enum nw_reason reason;
    struct nw_error err;
    assert_int_equal(nw_topic_parse("fleet/eu", "fleet/eu/smp-1/status", dev, &kind, &reason, &err),
                     NW_OK);
    assert_string_equal(dev, "smp-1");
    assert_int_equal(kind, NW_TOPIC_STATUS);
    /* A topic of the default prefix is not under a custom one. */
    assert_int_equal(
        nw_topic_parse("fleet/eu", "needlewatch/v1/smp-1/status", dev, &kind, &reason, &err),
        NW_ERR_INVALID);
    assert_int_equal(reason, NW_REASON_BAD_TOPIC);
    assert_string_equal(err.msg, "topic: not under \"fleet/eu/\"");
    /* A prefix that is a level-prefix of another is told apart. */
    assert_int_equal(nw_topic_parse("fleet", "fleet/eu/smp-1/status", dev, &kind, &reason, &err),
                     NW_ERR_INVALID);
    assert_int_equal(reason, NW_REASON_BAD_TOPIC);
    assert_string_equal(err.msg, "topic: unknown kind \"smp-1/status\"");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kind_names),
        cmocka_unit_test(test_check_prefix),
        cmocka_unit_test(test_build_and_parse_round_trip),
        cmocka_unit_test(test_build_refusals),
        cmocka_unit_test(test_build_buffer_too_small),
        cmocka_unit_test(test_filter),
        cmocka_unit_test(test_parse_table),
        cmocka_unit_test(test_parse_other_prefix),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}

/*
 * interop_tool.c - the C side of the protobuf interop test.
 *
 *   interop_tool decode KIND FILE   decode FILE with our codec, print JSON
 *   interop_tool encode KIND FILE   encode a fixed fixture to FILE, print
 *                                   the JSON of what was encoded
 *
 * KIND is windows, events, status, ack or alert. tests/interop/interop.py,
 * using Google's protobuf runtime and protoc on the same .proto, builds the
 * other side and compares field by field. The JSON here is a plain dump of
 * msg.h structs, so the comparison is against our own view of the data.
 */
#include <needlewatch/codec.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FILE (1 << 20)

static void json_str(const char *key, const char *v, const char *sep)
{
    printf("\"%s\": \"", key);
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (*p == '"' || *p == '\\') {
            printf("\\%c", *p);
        } else if (*p < 0x20) {
            printf("\\u%04x", *p);
        } else {
            putchar(*p);
        }
    }
    printf("\"%s", sep);
}

static void print_windows(const struct nw_window_batch *b)
{
    printf("{\"device_id\": \"%s\", \"epoch\": %" PRIu64 ", \"queue_floor\": %" PRIu64
           ", \"windows\": [",
           b->device_id, b->epoch, b->queue_floor);
    for (size_t i = 0; i < b->count; i++) {
        const struct nw_window *w = &b->windows[i];
        printf("%s{\"seq\": %" PRIu64 ", \"start_ms\": %" PRId64 ", \"duration_ms\": %" PRIu32
               ", \"running_ms\": %" PRIu32 ", \"cycles\": %" PRIu64 ", ",
               i ? ", " : "", w->seq, w->start_ms, w->duration_ms, w->running_ms, w->cycles);
        printf("\"rate_mean_hz\": %.17g, \"rate_min_hz\": %.17g, \"rate_max_hz\": %.17g, ",
               w->rate_mean_hz, w->rate_min_hz, w->rate_max_hz);
        printf("\"depth_mean_mm\": %.17g, \"depth_min_mm\": %.17g, \"depth_max_mm\": %.17g, ",
               w->depth_mean_mm, w->depth_min_mm, w->depth_max_mm);
        printf("\"pigment_ul\": %.17g, ", w->pigment_ul);
        json_str("session_id", w->session_id, ", ");
        json_str("cartridge_id", w->cartridge_id, ", ");
        json_str("pigment_lot", w->pigment_lot, "}");
    }
    printf("]}\n");
}

static void print_events(const struct nw_event_batch *b)
{
    printf("{\"device_id\": \"%s\", \"epoch\": %" PRIu64 ", \"queue_floor\": %" PRIu64
           ", \"events\": [",
           b->device_id, b->epoch, b->queue_floor);
    for (size_t i = 0; i < b->count; i++) {
        const struct nw_event *e = &b->events[i];
        printf("%s{\"seq\": %" PRIu64 ", \"time_ms\": %" PRId64 ", \"kind\": %d, ", i ? ", " : "",
               e->seq, e->time_ms, (int)e->kind);
        json_str("firmware", e->firmware, ", ");
        json_str("boot_reason", e->boot_reason, ", ");
        json_str("session_id", e->session_id, ", ");
        json_str("operator_code", e->operator_code, ", ");
        printf("\"end_reason\": %d, ", (int)e->end_reason);
        json_str("cartridge_id", e->cartridge_id, ", ");
        json_str("needle_config", e->needle_config, ", ");
        json_str("lot", e->lot, ", ");
        json_str("shade", e->shade, ", ");
        printf("\"volume_ul\": %.17g, \"fault_code\": %" PRIu32 ", ", e->volume_ul, e->fault_code);
        json_str("text", e->text, ", ");
        json_str("action", e->action, ", ");
        printf("\"resets_service\": %s, \"depth_offset_mm\": %.17g, \"rate_scale\": %.17g}",
               e->resets_service ? "true" : "false", e->depth_offset_mm, e->rate_scale);
    }
    printf("]}\n");
}

static void print_status(const struct nw_status *s)
{
    printf("{\"device_id\": \"%s\", \"epoch\": %" PRIu64 ", \"state\": %d, \"time_ms\": %" PRId64
           ", ",
           s->device_id, s->epoch, (int)s->state, s->time_ms);
    json_str("firmware", s->firmware, ", ");
    json_str("model", s->model, ", ");
    json_str("session_id", s->session_id, ", ");
    printf("\"uptime_s\": %" PRIu64 ", \"odometer_cycles\": %" PRIu64 ", \"running_s\": %" PRIu64
           ", \"queue_depth\": %" PRIu64 ", \"queue_bytes\": %" PRIu64
           ", \"windows_dropped\": %" PRIu64 ", \"events_dropped\": %" PRIu64
           ", \"corrupt_records\": %" PRIu64 ", \"last_window_seq\": %" PRIu64
           ", \"last_event_seq\": %" PRIu64 ", \"heartbeat_s\": %" PRIu32 "}\n",
           s->uptime_s, s->odometer_cycles, s->running_s, s->queue_depth, s->queue_bytes,
           s->windows_dropped, s->events_dropped, s->corrupt_records, s->last_window_seq,
           s->last_event_seq, s->heartbeat_s);
}

static void print_ack(const struct nw_ack *a)
{
    printf("{\"device_id\": \"%s\", \"epoch\": %" PRIu64 ", \"window_seq\": %" PRIu64
           ", \"event_seq\": %" PRIu64 ", \"time_ms\": %" PRId64 "}\n",
           a->device_id, a->epoch, a->window_seq, a->event_seq, a->time_ms);
}

static void print_alert(const struct nw_alert *a)
{
    printf("{\"device_id\": \"%s\", \"alert_id\": %" PRIu64 ", ", a->device_id, a->alert_id);
    json_str("rule", a->rule, ", ");
    printf("\"severity\": %d, \"state\": %d, \"time_ms\": %" PRId64 ", \"since_ms\": %" PRId64
           ", \"value\": %.17g, \"threshold\": %.17g, \"late\": %s, ",
           (int)a->severity, (int)a->state, a->time_ms, a->since_ms, a->value, a->threshold,
           a->late ? "true" : "false");
    json_str("message", a->message, ", ");
    json_str("clinic", a->clinic, ", ");
    json_str("model", a->model, "}\n");
}

/* ---- fixtures: what the C side encodes -------------------------------- */

#define T0 1795000000000LL /* 2026-11-18T...Z, fixed so the bytes are stable */

static struct nw_window fixture_windows[3];
static struct nw_event fixture_events[4];

static void fill_windows(struct nw_window_batch *b)
{
    memset(b, 0, sizeof(*b));
    snprintf(b->device_id, sizeof(b->device_id), "DG3-0042_clinic-b");
    b->epoch = 0xfeedfacecafebeefULL;
    b->queue_floor = 998;
    b->windows = fixture_windows;
    b->capacity = b->count = 3;
    for (size_t i = 0; i < 3; i++) {
        struct nw_window *w = &fixture_windows[i];
        memset(w, 0, sizeof(*w));
        w->seq = 1000 + i;
        w->start_ms = T0 + 1000 * (int64_t)i;
        w->duration_ms = 1000;
        w->running_ms = i == 2 ? 0 : 1000;
        w->cycles = i == 2 ? 0 : 120 + i;
        if (w->cycles) {
            w->rate_mean_hz = 120.125 + (double)i;
            w->rate_min_hz = 118.5;
            w->rate_max_hz = 124.75;
            w->depth_mean_mm = 0.3625;
            w->depth_min_mm = 0.34;
            w->depth_max_mm = 0.395;
            w->pigment_ul = 0.0125;
        }
        snprintf(w->session_id, sizeof(w->session_id), "%s", i < 2 ? "s-7f3a9c" : "");
        snprintf(w->cartridge_id, sizeof(w->cartridge_id), "CRT-2026-000917");
        snprintf(w->pigment_lot, sizeof(w->pigment_lot), "PL:24.11-B");
    }
}

static void fill_events(struct nw_event_batch *b)
{
    memset(b, 0, sizeof(*b));
    memset(fixture_events, 0, sizeof(fixture_events));
    snprintf(b->device_id, sizeof(b->device_id), "DG3-0042_clinic-b");
    b->epoch = 77;
    b->queue_floor = 5;
    b->events = fixture_events;
    b->capacity = b->count = 4;
    struct nw_event *e = fixture_events;
    e[0] = (struct nw_event){.seq = 5, .time_ms = T0, .kind = NW_EVENT_SESSION_START};
    snprintf(e[0].session_id, sizeof(e[0].session_id), "s-7f3a9c");
    snprintf(e[0].operator_code, sizeof(e[0].operator_code), "OP-17");
    e[1] = (struct nw_event){
        .seq = 6, .time_ms = T0 + 10, .kind = NW_EVENT_PIGMENT_LOADED, .volume_ul = 250.5};
    snprintf(e[1].lot, sizeof(e[1].lot), "PL:24.11-B");
    snprintf(e[1].shade, sizeof(e[1].shade), "Café Noir – 3");
    e[2] =
        (struct nw_event){.seq = 7, .time_ms = T0 + 20, .kind = NW_EVENT_FAULT, .fault_code = 4101};
    snprintf(e[2].text, sizeof(e[2].text), "motor stall \"B\" at 0.4 mm");
    e[3] = (struct nw_event){.seq = 8,
                             .time_ms = T0 + 30,
                             .kind = NW_EVENT_SESSION_END,
                             .end_reason = NW_SESSION_END_NORMAL};
    snprintf(e[3].session_id, sizeof(e[3].session_id), "s-7f3a9c");
}

static void fill_status(struct nw_status *s)
{
    *s = (struct nw_status){.epoch = 77,
                            .state = NW_DEVICE_ONLINE,
                            .time_ms = T0,
                            .uptime_s = 86400,
                            .odometer_cycles = 123456789012ULL,
                            .running_s = 3600 * 420,
                            .queue_depth = 3,
                            .queue_bytes = 4096,
                            .windows_dropped = 1,
                            .events_dropped = 0,
                            .corrupt_records = 2,
                            .last_window_seq = 1002,
                            .last_event_seq = 8,
                            .heartbeat_s = 30};
    snprintf(s->device_id, sizeof(s->device_id), "DG3-0042_clinic-b");
    snprintf(s->firmware, sizeof(s->firmware), "2.4.1+rc3");
    snprintf(s->model, sizeof(s->model), "DG-3");
    snprintf(s->session_id, sizeof(s->session_id), "s-7f3a9c");
}

static void fill_ack(struct nw_ack *a)
{
    *a = (struct nw_ack){.epoch = UINT64_MAX, .window_seq = 1002, .event_seq = 8, .time_ms = T0};
    snprintf(a->device_id, sizeof(a->device_id), "DG3-0042_clinic-b");
}

static void fill_alert(struct nw_alert *a)
{
    *a = (struct nw_alert){.alert_id = 991,
                           .severity = NW_SEVERITY_CRITICAL,
                           .state = NW_ALERT_FIRING,
                           .time_ms = T0,
                           .since_ms = T0 - 2000,
                           .value = 151.25,
                           .threshold = 140,
                           .late = true};
    snprintf(a->device_id, sizeof(a->device_id), "DG3-0042_clinic-b");
    snprintf(a->rule, sizeof(a->rule), "needle_rate_out_of_spec");
    snprintf(a->message, sizeof(a->message), "rate 151.25 Hz above 140 Hz for 2 s");
    snprintf(a->clinic, sizeof(a->clinic), "Clínica São Paulo, Unit 2");
    snprintf(a->model, sizeof(a->model), "DG-3");
}

/* ---- main -------------------------------------------------------------- */

static int fail(const char *what, const struct nw_error *err)
{
    fprintf(stderr, "interop_tool: %s: %s\n", what, err->msg);
    return 1;
}

static int do_decode(struct nw_codec *c, const char *kind, const uint8_t *buf, size_t len)
{
    struct nw_error err = {0};
    static struct nw_window ws[64];
    static struct nw_event es[64];
    if (!strcmp(kind, "windows")) {
        struct nw_window_batch b = {.windows = ws, .capacity = 64};
        if (nw_codec_decode_windows(c, buf, len, &b, NULL, &err) != NW_OK) {
            return fail("decode windows", &err);
        }
        print_windows(&b);
    } else if (!strcmp(kind, "events")) {
        struct nw_event_batch b = {.events = es, .capacity = 64};
        if (nw_codec_decode_events(c, buf, len, &b, NULL, &err) != NW_OK) {
            return fail("decode events", &err);
        }
        print_events(&b);
    } else if (!strcmp(kind, "status")) {
        struct nw_status s;
        if (nw_codec_decode_status(c, buf, len, &s, NULL, &err) != NW_OK) {
            return fail("decode status", &err);
        }
        print_status(&s);
    } else if (!strcmp(kind, "ack")) {
        struct nw_ack a;
        if (nw_codec_decode_ack(c, buf, len, &a, NULL, &err) != NW_OK) {
            return fail("decode ack", &err);
        }
        print_ack(&a);
    } else if (!strcmp(kind, "alert")) {
        struct nw_alert a;
        if (nw_codec_decode_alert(c, buf, len, &a, NULL, &err) != NW_OK) {
            return fail("decode alert", &err);
        }
        print_alert(&a);
    } else {
        fprintf(stderr, "interop_tool: unknown kind %s\n", kind);
        return 2;
    }
    return 0;
}

static int do_encode(struct nw_codec *c, const char *kind, uint8_t *buf, size_t *len)
{
    struct nw_error err = {0};
    enum nw_err rc;
    if (!strcmp(kind, "windows")) {
        struct nw_window_batch b;
        fill_windows(&b);
        rc = nw_codec_encode_windows(c, &b, buf, MAX_FILE, len, &err);
        print_windows(&b);
    } else if (!strcmp(kind, "events")) {
        struct nw_event_batch b;
        fill_events(&b);
        rc = nw_codec_encode_events(c, &b, buf, MAX_FILE, len, &err);
        print_events(&b);
    } else if (!strcmp(kind, "status")) {
        struct nw_status s;
        fill_status(&s);
        rc = nw_codec_encode_status(c, &s, buf, MAX_FILE, len, &err);
        print_status(&s);
    } else if (!strcmp(kind, "ack")) {
        struct nw_ack a;
        fill_ack(&a);
        rc = nw_codec_encode_ack(c, &a, buf, MAX_FILE, len, &err);
        print_ack(&a);
    } else if (!strcmp(kind, "alert")) {
        struct nw_alert a;
        fill_alert(&a);
        rc = nw_codec_encode_alert(c, &a, buf, MAX_FILE, len, &err);
        print_alert(&a);
    } else {
        fprintf(stderr, "interop_tool: unknown kind %s\n", kind);
        return 2;
    }
    return rc == NW_OK ? 0 : fail("encode", &err);
}

int main(int argc, char **argv)
{
    if (argc != 4 || (strcmp(argv[1], "decode") && strcmp(argv[1], "encode"))) {
        fprintf(stderr, "usage: interop_tool decode|encode KIND FILE\n");
        return 2;
    }
    struct nw_limits lim;
    nw_limits_default(&lim);
    struct nw_codec *c = nw_codec_new(&lim);
    uint8_t *buf = malloc(MAX_FILE);
    if (!c || !buf) {
        fprintf(stderr, "interop_tool: out of memory\n");
        return 1;
    }
    int rc;
    if (!strcmp(argv[1], "decode")) {
        FILE *f = fopen(argv[3], "rb");
        if (!f) {
            perror(argv[3]);
            return 1;
        }
        size_t len = fread(buf, 1, MAX_FILE, f);
        fclose(f);
        rc = do_decode(c, argv[2], buf, len);
    } else {
        size_t len = 0;
        rc = do_encode(c, argv[2], buf, &len);
        FILE *f = fopen(argv[3], "wb");
        if (rc == 0 && (!f || fwrite(buf, 1, len, f) != len)) {
            perror(argv[3]);
            rc = 1;
        }
        if (f) {
            fclose(f);
        }
    }
    free(buf);
    nw_codec_destroy(&c);
    return rc;
}

/*
 * codec.c - msg.h structs <-> protobuf bytes, through protobuf-c.
 *
 * All protobuf-c memory comes from one bump arena per codec, reset at the
 * start of every call: packing builds the protobuf-c structs in it, and
 * unpacking allocates from it through a ProtobufCAllocator whose free is a
 * no-op. When the arena runs out, protobuf-c sees a failed allocation and
 * gives up; we report that as too_complex rather than malformed.
 *
 * protobuf-c 1.4.1 has a signed shift in its tag parser (upstream PR #794):
 * undefined behaviour on some 5-byte tags. Debian's library is not built
 * with UBSan and the shift yields a wrong tag number, which the parser then
 * treats as an unknown field or a malformed message; the fuzzer replays that
 * input (tests/fuzz/corpus/decode) so a change in behaviour shows up. The
 * size cap below bounds the work per payload, not that shift.
 */
#include <needlewatch/codec.h>
#include <needlewatch/pbwindows.h>

#include "needlewatch.pb-c.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct arena {
    uint8_t *base;
    size_t cap;
    size_t used;
    bool exhausted;
};

struct nw_codec {
    struct nw_limits lim;
    struct arena arena;
    ProtobufCAllocator alloc;
};

#define ARENA_ALIGN 16
#define ARENA_BASE_BYTES (64 * 1024)

static void *arena_alloc(void *data, size_t size)
{
    struct arena *a = data;
    size_t start = (a->used + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (start > a->cap || size > a->cap - start) {
        a->exhausted = true;
        return NULL;
    }
    a->used = start + size;
    return a->base + start;
}

static void arena_free(void *data, void *ptr)
{
    (void)data;
    (void)ptr; /* released all at once by arena_reset */
}

static void arena_reset(struct arena *a)
{
    a->used = 0;
    a->exhausted = false;
}

struct nw_codec *nw_codec_new(const struct nw_limits *lim)
{
    struct nw_codec *c = calloc(1, sizeof(*c));
    if (!c) {
        return NULL;
    }
    c->lim = *lim;
    c->arena.cap = ARENA_BASE_BYTES + NW_CODEC_ARENA_PER_PAYLOAD_BYTE * lim->max_payload;
    c->arena.base = malloc(c->arena.cap);
    if (!c->arena.base) {
        free(c);
        return NULL;
    }
    c->alloc.alloc = arena_alloc;
    c->alloc.free = arena_free;
    c->alloc.allocator_data = &c->arena;
    return c;
}

void nw_codec_destroy(struct nw_codec **p)
{
    if (!p || !*p) {
        return;
    }
    free((*p)->arena.base);
    free(*p);
    *p = NULL;
}

const struct nw_limits *nw_codec_limits(const struct nw_codec *c)
{
    return &c->lim;
}

/* ---- shared helpers -------------------------------------------------- */

static void *scratch(struct nw_codec *c, size_t size)
{
    void *p = arena_alloc(&c->arena, size);
    if (p) {
        memset(p, 0, size);
    }
    return p;
}

/* Quantise to the sensor's resolution; NaN/Inf pass through to validation. */
static double quant(float v, double per_unit)
{
    double d = (double)v;
    if (!isfinite(d)) {
        return d;
    }
    return round(d * per_unit) / per_unit;
}

#define RATE_RES 1e3    /* 0.001 Hz */
#define DEPTH_RES 1e4   /* 0.0001 mm */
#define PIGMENT_RES 1e4 /* 0.0001 µL */

static enum nw_err copy_str(char *dst, size_t cap, const char *src, const char *field,
                            enum nw_reason *out_reason, struct nw_error *out_err)
{
    if (!src) {
        dst[0] = '\0';
        return NW_OK;
    }
    size_t n = strnlen(src, cap);
    if (n >= cap) {
        return nw_reject(NW_REASON_BAD_STRING, out_reason, out_err, "%s: longer than %zu bytes",
                         field, cap - 1);
    }
    memcpy(dst, src, n + 1);
    return NW_OK;
}

static enum nw_err copy_device(char *dst, const char *src, enum nw_reason *out_reason,
                               struct nw_error *out_err)
{
    if (!src) {
        return nw_reject(NW_REASON_MISSING_FIELD, out_reason, out_err, "device_id: missing");
    }
    if (!nw_valid_device_id(src)) {
        return nw_reject(NW_REASON_BAD_DEVICE_ID, out_reason, out_err,
                         "device_id: needs 1-%d characters of [A-Za-z0-9_-]", NW_DEVICE_ID_MAX);
    }
    memcpy(dst, src, strlen(src) + 1);
    return NW_OK;
}

#define TRY(expr)                                                                                  \
    do {                                                                                           \
        enum nw_err rc_ = (expr);                                                                  \
        if (rc_ != NW_OK) {                                                                        \
            return rc_;                                                                            \
        }                                                                                          \
    } while (0)

#define REQUIRE(msg, field, name)                                                                  \
    do {                                                                                           \
        if (!(msg)->has_##field) {                                                                 \
            return nw_reject(NW_REASON_MISSING_FIELD, out_reason, out_err, "%s: missing", name);   \
        }                                                                                          \
    } while (0)

/* Like nw_reject, but with an error code other than NW_ERR_INVALID. */
__attribute__((format(printf, 5, 6))) static enum nw_err
refuse(enum nw_err code, enum nw_reason reason, enum nw_reason *out_reason,
       struct nw_error *out_err, const char *fmt, ...)
{
    if (out_reason) {
        *out_reason = reason;
    }
    va_list ap;
    va_start(ap, fmt);
    nw_error_vset(out_err, code, fmt, ap);
    va_end(ap);
    return code;
}

/* Unpacks buf with the arena into *out_msg, or says why it could not. */
static enum nw_err unpack(struct nw_codec *c, const ProtobufCMessageDescriptor *desc,
                          const uint8_t *buf, size_t len, void *out_msg, enum nw_reason *out_reason,
                          struct nw_error *out_err)
{
    arena_reset(&c->arena);
    if (len > c->lim.max_payload) {
        return refuse(NW_ERR_TOO_BIG, NW_REASON_TOO_BIG, out_reason, out_err,
                      "payload of %zu bytes exceeds the limit of %zu", len, c->lim.max_payload);
    }
    ProtobufCMessage *m = NULL;
    if (desc == &needlewatch__v1__window_batch__descriptor) { /* the hot one: pbwindows.h */
        Needlewatch__V1__WindowBatch *b = nw_pbwindows_unpack(&c->alloc, buf, len);
        m = b ? &b->base : NULL;
    }
    if (!m) {
        arena_reset(&c->arena); /* what the direct decoder took */
        m = protobuf_c_message_unpack(desc, &c->alloc, len, buf);
    }
    *(ProtobufCMessage **)out_msg = m;
    if (m) {
        return NW_OK;
    }
    if (c->arena.exhausted) {
        return refuse(NW_ERR_TOO_BIG, NW_REASON_TOO_COMPLEX, out_reason, out_err,
                      "decoded form exceeds the %zu-byte decoder bound", c->arena.cap);
    }
    return refuse(NW_ERR_DECODE, NW_REASON_MALFORMED, out_reason, out_err,
                  "not a valid protobuf message of the expected type (%zu bytes)", len);
}

/* Packs m into buf if it fits both cap and the payload limit. */
static enum nw_err pack(struct nw_codec *c, const ProtobufCMessage *m, uint8_t *buf, size_t cap,
                        size_t *out_len, struct nw_error *out_err)
{
    size_t need = protobuf_c_message_get_packed_size(m);
    if (need > cap || need > c->lim.max_payload) {
        return nw_error_set(out_err, NW_ERR_TOO_BIG,
                            "%s needs %zu bytes; buffer %zu, payload limit %zu",
                            m->descriptor->short_name, need, cap, c->lim.max_payload);
    }
    *out_len = protobuf_c_message_pack(m, buf);
    return NW_OK;
}

static enum nw_err out_of_arena(struct nw_codec *c, const char *what, struct nw_error *out_err)
{
    return nw_error_set(out_err, NW_ERR_TOO_BIG, "%s: encoding needs more than the %zu-byte arena",
                        what, c->arena.cap);
}

/* ---- windows --------------------------------------------------------- */

static void window_to_pb(const struct nw_window *w, const struct nw_window *prev,
                         Needlewatch__V1__Window *pb)
{
    needlewatch__v1__window__init(pb);
    pb->has_seq = pb->has_start_ms = pb->has_duration_ms = true;
    pb->seq = w->seq;
    pb->start_ms = w->start_ms;
    pb->duration_ms = w->duration_ms;
    pb->has_cycles = w->cycles != 0;
    pb->cycles = w->cycles;
    pb->has_running_ms = w->running_ms != 0;
    pb->running_ms = w->running_ms;
    /* Each float is sent when non-zero (absent reads as 0), so nothing the
     * window says is lost, whatever its cycle count. */
    pb->has_rate_mean_hz = w->rate_mean_hz != 0.0;
    pb->has_rate_min_hz = w->rate_min_hz != 0.0;
    pb->has_rate_max_hz = w->rate_max_hz != 0.0;
    pb->rate_mean_hz = (float)w->rate_mean_hz;
    pb->rate_min_hz = (float)w->rate_min_hz;
    pb->rate_max_hz = (float)w->rate_max_hz;
    pb->has_depth_mean_mm = w->depth_mean_mm != 0.0;
    pb->has_depth_min_mm = w->depth_min_mm != 0.0;
    pb->has_depth_max_mm = w->depth_max_mm != 0.0;
    pb->depth_mean_mm = (float)w->depth_mean_mm;
    pb->depth_min_mm = (float)w->depth_min_mm;
    pb->depth_max_mm = (float)w->depth_max_mm;
    pb->has_pigment_ul = w->pigment_ul != 0.0;
    pb->pigment_ul = (float)w->pigment_ul;
    /* Omitted strings repeat the previous window's (see the .proto). */
    bool same = prev != NULL;
    pb->session_id =
        same && !strcmp(prev->session_id, w->session_id) ? NULL : (char *)w->session_id;
    pb->cartridge_id =
        same && !strcmp(prev->cartridge_id, w->cartridge_id) ? NULL : (char *)w->cartridge_id;
    pb->pigment_lot =
        same && !strcmp(prev->pigment_lot, w->pigment_lot) ? NULL : (char *)w->pigment_lot;
}

enum nw_err nw_codec_encode_windows(struct nw_codec *c, const struct nw_window_batch *in,
                                    uint8_t *buf, size_t cap, size_t *out_len,
                                    struct nw_error *out_err)
{
    if (in->count > in->capacity) {
        return nw_error_set(out_err, NW_ERR_INVAL, "window batch count %zu > capacity %zu",
                            in->count, in->capacity);
    }
    arena_reset(&c->arena);
    Needlewatch__V1__Window *pbs = scratch(c, in->count * sizeof(*pbs));
    Needlewatch__V1__Window **ptrs = scratch(c, in->count * sizeof(*ptrs));
    if (in->count && (!pbs || !ptrs)) {
        return out_of_arena(c, "WindowBatch", out_err);
    }
    for (size_t i = 0; i < in->count; i++) {
        window_to_pb(&in->windows[i], i ? &in->windows[i - 1] : NULL, &pbs[i]);
        ptrs[i] = &pbs[i];
    }
    Needlewatch__V1__WindowBatch pb = NEEDLEWATCH__V1__WINDOW_BATCH__INIT;
    pb.device_id = (char *)in->device_id;
    pb.has_epoch = true;
    pb.epoch = in->epoch;
    pb.n_windows = in->count;
    pb.windows = ptrs;
    pb.has_queue_floor = in->queue_floor != 0;
    pb.queue_floor = in->queue_floor;
    return pack(c, &pb.base, buf, cap, out_len, out_err);
}

static enum nw_err window_from_pb(const Needlewatch__V1__Window *pb, const struct nw_window *prev,
                                  struct nw_window *w, enum nw_reason *out_reason,
                                  struct nw_error *out_err)
{
    REQUIRE(pb, seq, "seq");
    REQUIRE(pb, start_ms, "start_ms");
    REQUIRE(pb, duration_ms, "duration_ms");
    w->seq = pb->seq;
    w->start_ms = pb->start_ms;
    w->duration_ms = pb->duration_ms;
    w->running_ms = pb->running_ms;
    w->cycles = pb->cycles;
    w->rate_mean_hz = quant(pb->rate_mean_hz, RATE_RES);
    w->rate_min_hz = quant(pb->rate_min_hz, RATE_RES);
    w->rate_max_hz = quant(pb->rate_max_hz, RATE_RES);
    w->depth_mean_mm = quant(pb->depth_mean_mm, DEPTH_RES);
    w->depth_min_mm = quant(pb->depth_min_mm, DEPTH_RES);
    w->depth_max_mm = quant(pb->depth_max_mm, DEPTH_RES);
    w->pigment_ul = quant(pb->pigment_ul, PIGMENT_RES);
    if (!prev && (!pb->session_id || !pb->cartridge_id || !pb->pigment_lot)) {
        return nw_reject(NW_REASON_MISSING_FIELD, out_reason, out_err,
                         "the first window of a batch must carry session_id, "
                         "cartridge_id and pigment_lot (empty for none)");
    }
    TRY(copy_str(w->session_id, sizeof(w->session_id),
                 pb->session_id ? pb->session_id : prev->session_id, "session_id", out_reason,
                 out_err));
    TRY(copy_str(w->cartridge_id, sizeof(w->cartridge_id),
                 pb->cartridge_id ? pb->cartridge_id : prev->cartridge_id, "cartridge_id",
                 out_reason, out_err));
    return copy_str(w->pigment_lot, sizeof(w->pigment_lot),
                    pb->pigment_lot ? pb->pigment_lot : prev->pigment_lot, "pigment_lot",
                    out_reason, out_err);
}

static enum nw_err batch_count(const char *what, size_t n, size_t capacity, size_t max,
                               enum nw_reason *out_reason, struct nw_error *out_err)
{
    size_t allowed = capacity < max ? capacity : max;
    if (n == 0 || n > allowed) {
        return nw_reject(NW_REASON_BAD_COUNT, out_reason, out_err,
                         "%s: %zu in one batch, allowed 1..%zu", what, n, allowed);
    }
    return NW_OK;
}

enum nw_err nw_codec_decode_windows(struct nw_codec *c, const uint8_t *buf, size_t len,
                                    struct nw_window_batch *out, enum nw_reason *out_reason,
                                    struct nw_error *out_err)
{
    Needlewatch__V1__WindowBatch *pb;
    TRY(unpack(c, &needlewatch__v1__window_batch__descriptor, buf, len, &pb, out_reason, out_err));
    TRY(copy_device(out->device_id, pb->device_id, out_reason, out_err));
    REQUIRE(pb, epoch, "epoch");
    out->epoch = pb->epoch;
    out->queue_floor = pb->queue_floor;
    TRY(batch_count("windows", pb->n_windows, out->capacity, c->lim.max_windows, out_reason,
                    out_err));
    for (size_t i = 0; i < pb->n_windows; i++) {
        enum nw_err rc = window_from_pb(pb->windows[i], i ? &out->windows[i - 1] : NULL,
                                        &out->windows[i], out_reason, out_err);
        if (rc != NW_OK) {
            nw_error_prefix(out_err, "windows[%zu]", i);
            return rc;
        }
    }
    out->count = pb->n_windows;
    return NW_OK;
}

/* ---- events ---------------------------------------------------------- */

/* Builds the oneof detail of e in the arena; false when the arena is out. */
static bool event_detail_to_pb(struct nw_codec *c, const struct nw_event *e,
                               Needlewatch__V1__Event *pb)
{
    switch (e->kind) {
    case NW_EVENT_POWER_ON: {
        Needlewatch__V1__PowerOn *d = scratch(c, sizeof(*d));
        if (!d) {
            return false;
        }
        needlewatch__v1__power_on__init(d);
        d->firmware = (char *)e->firmware;
        d->reason = (char *)e->boot_reason;
        pb->detail_case = NEEDLEWATCH__V1__EVENT__DETAIL_POWER_ON;
        pb->power_on = d;
        return true;
    }
    case NW_EVENT_SESSION_START: {
        Needlewatch__V1__SessionStart *d = scratch(c, sizeof(*d));
        if (!d) {
            return false;
        }
        needlewatch__v1__session_start__init(d);
        d->session_id = (char *)e->session_id;
        d->operator_code = e->operator_code[0] ? (char *)e->operator_code : NULL;
        pb->detail_case = NEEDLEWATCH__V1__EVENT__DETAIL_SESSION_START;
        pb->session_start = d;
        return true;
    }
    case NW_EVENT_SESSION_END: {
        Needlewatch__V1__SessionEnd *d = scratch(c, sizeof(*d));
        if (!d) {
            return false;
        }
        needlewatch__v1__session_end__init(d);
        d->session_id = (char *)e->session_id;
        d->has_reason = e->end_reason != NW_SESSION_END_UNSPECIFIED;
        d->reason = (Needlewatch__V1__SessionEndReason)e->end_reason;
        pb->detail_case = NEEDLEWATCH__V1__EVENT__DETAIL_SESSION_END;
        pb->session_end = d;
        return true;
    }
    case NW_EVENT_CARTRIDGE_INSERTED: {
        Needlewatch__V1__CartridgeInserted *d = scratch(c, sizeof(*d));
        if (!d) {
            return false;
        }
        needlewatch__v1__cartridge_inserted__init(d);
        d->cartridge_id = (char *)e->cartridge_id;
        d->needle_config = (char *)e->needle_config;
        d->lot = (char *)e->lot;
        pb->detail_case = NEEDLEWATCH__V1__EVENT__DETAIL_CARTRIDGE_INSERTED;
        pb->cartridge_inserted = d;
        return true;
    }
    case NW_EVENT_CARTRIDGE_REMOVED: {
        Needlewatch__V1__CartridgeRemoved *d = scratch(c, sizeof(*d));
        if (!d) {
            return false;
        }
        needlewatch__v1__cartridge_removed__init(d);
        d->cartridge_id = (char *)e->cartridge_id;
        pb->detail_case = NEEDLEWATCH__V1__EVENT__DETAIL_CARTRIDGE_REMOVED;
        pb->cartridge_removed = d;
        return true;
    }
    case NW_EVENT_PIGMENT_LOADED: {
        Needlewatch__V1__PigmentLoaded *d = scratch(c, sizeof(*d));
        if (!d) {
            return false;
        }
        needlewatch__v1__pigment_loaded__init(d);
        d->lot = (char *)e->lot;
        d->shade = (char *)e->shade;
        d->has_volume_ul = true;
        d->volume_ul = (float)e->volume_ul;
        pb->detail_case = NEEDLEWATCH__V1__EVENT__DETAIL_PIGMENT_LOADED;
        pb->pigment_loaded = d;
        return true;
    }
    case NW_EVENT_FAULT: {
        Needlewatch__V1__Fault *d = scratch(c, sizeof(*d));
        if (!d) {
            return false;
        }
        needlewatch__v1__fault__init(d);
        d->has_code = true;
        d->code = e->fault_code;
        d->text = (char *)e->text;
        pb->detail_case = NEEDLEWATCH__V1__EVENT__DETAIL_FAULT;
        pb->fault = d;
        return true;
    }
    case NW_EVENT_MAINTENANCE: {
        Needlewatch__V1__Maintenance *d = scratch(c, sizeof(*d));
        if (!d) {
            return false;
        }
        needlewatch__v1__maintenance__init(d);
        d->action = (char *)e->action;
        d->has_resets_service = true;
        d->resets_service = e->resets_service;
        pb->detail_case = NEEDLEWATCH__V1__EVENT__DETAIL_MAINTENANCE;
        pb->maintenance = d;
        return true;
    }
    case NW_EVENT_CALIBRATION: {
        Needlewatch__V1__Calibration *d = scratch(c, sizeof(*d));
        if (!d) {
            return false;
        }
        needlewatch__v1__calibration__init(d);
        d->has_depth_offset_mm = d->has_rate_scale = true;
        d->depth_offset_mm = (float)e->depth_offset_mm;
        d->rate_scale = (float)e->rate_scale;
        pb->detail_case = NEEDLEWATCH__V1__EVENT__DETAIL_CALIBRATION;
        pb->calibration = d;
        return true;
    }
    default:
        return true;
    }
}

enum nw_err nw_codec_encode_events(struct nw_codec *c, const struct nw_event_batch *in,
                                   uint8_t *buf, size_t cap, size_t *out_len,
                                   struct nw_error *out_err)
{
    if (in->count > in->capacity) {
        return nw_error_set(out_err, NW_ERR_INVAL, "event batch count %zu > capacity %zu",
                            in->count, in->capacity);
    }
    arena_reset(&c->arena);
    Needlewatch__V1__Event *pbs = scratch(c, in->count * sizeof(*pbs));
    Needlewatch__V1__Event **ptrs = scratch(c, in->count * sizeof(*ptrs));
    if (in->count && (!pbs || !ptrs)) {
        return out_of_arena(c, "EventBatch", out_err);
    }
    for (size_t i = 0; i < in->count; i++) {
        const struct nw_event *e = &in->events[i];
        needlewatch__v1__event__init(&pbs[i]);
        pbs[i].has_seq = pbs[i].has_time_ms = pbs[i].has_kind = true;
        pbs[i].seq = e->seq;
        pbs[i].time_ms = e->time_ms;
        pbs[i].kind = (Needlewatch__V1__EventKind)e->kind;
        if (!event_detail_to_pb(c, e, &pbs[i])) {
            return out_of_arena(c, "EventBatch", out_err);
        }
        ptrs[i] = &pbs[i];
    }
    Needlewatch__V1__EventBatch pb = NEEDLEWATCH__V1__EVENT_BATCH__INIT;
    pb.device_id = (char *)in->device_id;
    pb.has_epoch = true;
    pb.epoch = in->epoch;
    pb.n_events = in->count;
    pb.events = ptrs;
    pb.has_queue_floor = in->queue_floor != 0;
    pb.queue_floor = in->queue_floor;
    return pack(c, &pb.base, buf, cap, out_len, out_err);
}

#define COPY(dst, src, name) TRY(copy_str(dst, sizeof(dst), src, name, out_reason, out_err))

static enum nw_err event_detail_from_pb(const Needlewatch__V1__Event *pb, struct nw_event *e,
                                        enum nw_reason *out_reason, struct nw_error *out_err)
{
    switch (pb->detail_case) {
    case NEEDLEWATCH__V1__EVENT__DETAIL_POWER_ON:
        COPY(e->firmware, pb->power_on->firmware, "firmware");
        COPY(e->boot_reason, pb->power_on->reason, "reason");
        break;
    case NEEDLEWATCH__V1__EVENT__DETAIL_SESSION_START:
        COPY(e->session_id, pb->session_start->session_id, "session_id");
        COPY(e->operator_code, pb->session_start->operator_code, "operator_code");
        break;
    case NEEDLEWATCH__V1__EVENT__DETAIL_SESSION_END:
        COPY(e->session_id, pb->session_end->session_id, "session_id");
        e->end_reason = pb->session_end->reason <=
                                NEEDLEWATCH__V1__SESSION_END_REASON__SESSION_END_REASON_TIMEOUT
                            ? (enum nw_session_end_reason)pb->session_end->reason
                            : NW_SESSION_END_UNSPECIFIED;
        break;
    case NEEDLEWATCH__V1__EVENT__DETAIL_CARTRIDGE_INSERTED:
        COPY(e->cartridge_id, pb->cartridge_inserted->cartridge_id, "cartridge_id");
        COPY(e->needle_config, pb->cartridge_inserted->needle_config, "needle_config");
        COPY(e->lot, pb->cartridge_inserted->lot, "lot");
        break;
    case NEEDLEWATCH__V1__EVENT__DETAIL_CARTRIDGE_REMOVED:
        COPY(e->cartridge_id, pb->cartridge_removed->cartridge_id, "cartridge_id");
        break;
    case NEEDLEWATCH__V1__EVENT__DETAIL_PIGMENT_LOADED:
        COPY(e->lot, pb->pigment_loaded->lot, "lot");
        COPY(e->shade, pb->pigment_loaded->shade, "shade");
        e->volume_ul = quant(pb->pigment_loaded->volume_ul, PIGMENT_RES);
        break;
    case NEEDLEWATCH__V1__EVENT__DETAIL_FAULT:
        e->fault_code = pb->fault->code;
        COPY(e->text, pb->fault->text, "text");
        break;
    case NEEDLEWATCH__V1__EVENT__DETAIL_MAINTENANCE:
        COPY(e->action, pb->maintenance->action, "action");
        e->resets_service = pb->maintenance->resets_service;
        break;
    case NEEDLEWATCH__V1__EVENT__DETAIL_CALIBRATION:
        e->depth_offset_mm = quant(pb->calibration->depth_offset_mm, DEPTH_RES);
        e->rate_scale = quant(pb->calibration->rate_scale, 1e6);
        break;
    default:
        break;
    }
    return NW_OK;
}

static enum nw_err event_from_pb(const Needlewatch__V1__Event *pb, struct nw_event *e,
                                 enum nw_reason *out_reason, struct nw_error *out_err)
{
    REQUIRE(pb, seq, "seq");
    REQUIRE(pb, time_ms, "time_ms");
    REQUIRE(pb, kind, "kind");
    memset(e, 0, sizeof(*e));
    e->seq = pb->seq;
    e->time_ms = pb->time_ms;
    bool known = (int)pb->kind > 0 && (int)pb->kind < (int)NW_EVENT__COUNT;
    e->kind = known ? (enum nw_event_kind)pb->kind : NW_EVENT_UNSPECIFIED;
    /* Detail numbers are kind + 3 by construction of the .proto. */
    if (known && pb->detail_case != NEEDLEWATCH__V1__EVENT__DETAIL__NOT_SET &&
        (int)pb->detail_case != (int)pb->kind + 3) {
        return nw_reject(NW_REASON_MALFORMED, out_reason, out_err,
                         "kind %s carries the detail of another kind (field %d)",
                         nw_event_kind_name(e->kind), (int)pb->detail_case);
    }
    if (!known) {
        return NW_OK; /* stored with kind and seq; a detail we cannot judge stays out */
    }
    return event_detail_from_pb(pb, e, out_reason, out_err);
}

enum nw_err nw_codec_decode_events(struct nw_codec *c, const uint8_t *buf, size_t len,
                                   struct nw_event_batch *out, enum nw_reason *out_reason,
                                   struct nw_error *out_err)
{
    Needlewatch__V1__EventBatch *pb;
    TRY(unpack(c, &needlewatch__v1__event_batch__descriptor, buf, len, &pb, out_reason, out_err));
    TRY(copy_device(out->device_id, pb->device_id, out_reason, out_err));
    REQUIRE(pb, epoch, "epoch");
    out->epoch = pb->epoch;
    out->queue_floor = pb->queue_floor;
    TRY(batch_count("events", pb->n_events, out->capacity, c->lim.max_events, out_reason, out_err));
    for (size_t i = 0; i < pb->n_events; i++) {
        enum nw_err rc = event_from_pb(pb->events[i], &out->events[i], out_reason, out_err);
        if (rc != NW_OK) {
            nw_error_prefix(out_err, "events[%zu]", i);
            return rc;
        }
    }
    out->count = pb->n_events;
    return NW_OK;
}

/* ---- status ---------------------------------------------------------- */

enum nw_err nw_codec_encode_status(struct nw_codec *c, const struct nw_status *in, uint8_t *buf,
                                   size_t cap, size_t *out_len, struct nw_error *out_err)
{
    arena_reset(&c->arena);
    Needlewatch__V1__Status pb = NEEDLEWATCH__V1__STATUS__INIT;
    pb.device_id = (char *)in->device_id;
    pb.has_epoch = pb.has_state = pb.has_time_ms = true;
    pb.epoch = in->epoch;
    pb.state = (Needlewatch__V1__DeviceState)in->state;
    pb.time_ms = in->time_ms;
    pb.firmware = (char *)in->firmware;
    pb.model = (char *)in->model;
    pb.session_id = (char *)in->session_id;
#define SET_U(f)                                                                                   \
    pb.has_##f = true;                                                                             \
    pb.f = in->f
    SET_U(uptime_s);
    SET_U(odometer_cycles);
    SET_U(running_s);
    SET_U(queue_depth);
    SET_U(queue_bytes);
    SET_U(windows_dropped);
    SET_U(events_dropped);
    SET_U(corrupt_records);
    SET_U(last_window_seq);
    SET_U(last_event_seq);
    SET_U(heartbeat_s);
#undef SET_U
    return pack(c, &pb.base, buf, cap, out_len, out_err);
}

enum nw_err nw_codec_decode_status(struct nw_codec *c, const uint8_t *buf, size_t len,
                                   struct nw_status *out, enum nw_reason *out_reason,
                                   struct nw_error *out_err)
{
    Needlewatch__V1__Status *pb;
    TRY(unpack(c, &needlewatch__v1__status__descriptor, buf, len, &pb, out_reason, out_err));
    memset(out, 0, sizeof(*out));
    TRY(copy_device(out->device_id, pb->device_id, out_reason, out_err));
    REQUIRE(pb, state, "state");
    REQUIRE(pb, time_ms, "time_ms");
    out->epoch = pb->epoch;
    out->state = pb->state <= NEEDLEWATCH__V1__DEVICE_STATE__DEVICE_STATE_OFFLINE
                     ? (enum nw_device_state)pb->state
                     : NW_DEVICE_UNSPECIFIED;
    out->time_ms = pb->time_ms;
    COPY(out->firmware, pb->firmware, "firmware");
    COPY(out->model, pb->model, "model");
    COPY(out->session_id, pb->session_id, "session_id");
    out->uptime_s = pb->uptime_s;
    out->odometer_cycles = pb->odometer_cycles;
    out->running_s = pb->running_s;
    out->queue_depth = pb->queue_depth;
    out->queue_bytes = pb->queue_bytes;
    out->windows_dropped = pb->windows_dropped;
    out->events_dropped = pb->events_dropped;
    out->corrupt_records = pb->corrupt_records;
    out->last_window_seq = pb->last_window_seq;
    out->last_event_seq = pb->last_event_seq;
    out->heartbeat_s = pb->heartbeat_s;
    return NW_OK;
}

/* ---- ack ------------------------------------------------------------- */

enum nw_err nw_codec_encode_ack(struct nw_codec *c, const struct nw_ack *in, uint8_t *buf,
                                size_t cap, size_t *out_len, struct nw_error *out_err)
{
    arena_reset(&c->arena);
    Needlewatch__V1__Ack pb = NEEDLEWATCH__V1__ACK__INIT;
    pb.device_id = (char *)in->device_id;
    pb.has_epoch = pb.has_window_seq = pb.has_event_seq = pb.has_time_ms = true;
    pb.epoch = in->epoch;
    pb.window_seq = in->window_seq;
    pb.event_seq = in->event_seq;
    pb.time_ms = in->time_ms;
    return pack(c, &pb.base, buf, cap, out_len, out_err);
}

enum nw_err nw_codec_decode_ack(struct nw_codec *c, const uint8_t *buf, size_t len,
                                struct nw_ack *out, enum nw_reason *out_reason,
                                struct nw_error *out_err)
{
    Needlewatch__V1__Ack *pb;
    TRY(unpack(c, &needlewatch__v1__ack__descriptor, buf, len, &pb, out_reason, out_err));
    memset(out, 0, sizeof(*out));
    TRY(copy_device(out->device_id, pb->device_id, out_reason, out_err));
    REQUIRE(pb, epoch, "epoch");
    out->epoch = pb->epoch;
    out->window_seq = pb->window_seq;
    out->event_seq = pb->event_seq;
    out->time_ms = pb->time_ms;
    return NW_OK;
}

/* ---- alert ----------------------------------------------------------- */

enum nw_err nw_codec_encode_alert(struct nw_codec *c, const struct nw_alert *in, uint8_t *buf,
                                  size_t cap, size_t *out_len, struct nw_error *out_err)
{
    arena_reset(&c->arena);
    Needlewatch__V1__Alert pb = NEEDLEWATCH__V1__ALERT__INIT;
    pb.device_id = (char *)in->device_id;
    pb.rule = (char *)in->rule;
    pb.message = (char *)in->message;
    pb.clinic = (char *)in->clinic;
    pb.model = (char *)in->model;
    pb.has_alert_id = pb.has_severity = pb.has_state = pb.has_time_ms = true;
    pb.has_value = pb.has_threshold = pb.has_late = pb.has_since_ms = true;
    pb.alert_id = in->alert_id;
    pb.severity = (Needlewatch__V1__Severity)in->severity;
    pb.state = (Needlewatch__V1__AlertState)in->state;
    pb.time_ms = in->time_ms;
    pb.since_ms = in->since_ms;
    pb.value = in->value;
    pb.threshold = in->threshold;
    pb.late = in->late;
    return pack(c, &pb.base, buf, cap, out_len, out_err);
}

enum nw_err nw_codec_decode_alert(struct nw_codec *c, const uint8_t *buf, size_t len,
                                  struct nw_alert *out, enum nw_reason *out_reason,
                                  struct nw_error *out_err)
{
    Needlewatch__V1__Alert *pb;
    TRY(unpack(c, &needlewatch__v1__alert__descriptor, buf, len, &pb, out_reason, out_err));
    memset(out, 0, sizeof(*out));
    TRY(copy_device(out->device_id, pb->device_id, out_reason, out_err));
    REQUIRE(pb, severity, "severity");
    REQUIRE(pb, state, "state");
    REQUIRE(pb, time_ms, "time_ms");
    if (!pb->rule) {
        return nw_reject(NW_REASON_MISSING_FIELD, out_reason, out_err, "rule: missing");
    }
    COPY(out->rule, pb->rule, "rule");
    COPY(out->message, pb->message, "message");
    COPY(out->clinic, pb->clinic, "clinic");
    COPY(out->model, pb->model, "model");
    out->alert_id = pb->alert_id;
    /* Values this build does not know read as unspecified (see the .proto). */
    out->severity = (unsigned)pb->severity <= NEEDLEWATCH__V1__SEVERITY__SEVERITY_CRITICAL
                        ? (enum nw_severity)pb->severity
                        : NW_SEVERITY_UNSPECIFIED;
    out->state = (unsigned)pb->state <= NEEDLEWATCH__V1__ALERT_STATE__ALERT_STATE_RENOTIFY
                     ? (enum nw_alert_state)pb->state
                     : NW_ALERT_UNSPECIFIED;
    out->time_ms = pb->time_ms;
    out->since_ms = pb->since_ms;
    out->value = pb->value;
    out->threshold = pb->threshold;
    out->late = pb->late;
    return NW_OK;
}

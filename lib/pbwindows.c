/*
 * pbwindows.c - WindowBatch straight from the wire (pbwindows.h).
 *
 * Every read is bounds-checked against the end of the buffer; any doubt
 * returns NULL (the caller falls back to protobuf-c), so this file never
 * has to reproduce protobuf-c's error handling, only its results.
 */
#include <needlewatch/pbwindows.h>

#include <stdbool.h>
#include <string.h>

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

struct rd {
    const uint8_t *p, *end;
};

/* A varint of at most max bytes whose value fits 64 bits. */
static bool varint(struct rd *r, unsigned max, uint64_t *out)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < max && r->p < r->end; i++) {
        uint8_t b = *r->p++;
        if (i == 9 && b > 1) {
            return false; /* beyond 64 bits: protobuf-c truncates, we do not guess */
        }
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *out = v;
            return true;
        }
    }
    return false;
}

static bool key(struct rd *r, uint32_t *field, uint32_t *wire)
{
    uint64_t k;
    if (!varint(r, 5, &k) || k > UINT32_MAX) {
        return false;
    }
    *field = (uint32_t)(k >> 3), *wire = (uint32_t)(k & 7);
    return *field != 0;
}

static bool fixed(struct rd *r, size_t n, uint64_t *out)
{
    if ((size_t)(r->end - r->p) < n) {
        return false;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        v |= (uint64_t)r->p[i] << (8 * i);
    }
    r->p += n;
    *out = v;
    return true;
}

/* A length-delimited field's body: [*body, *body + *n). */
static bool delimited(struct rd *r, const uint8_t **body, size_t *n)
{
    uint64_t len;
    if (!varint(r, 5, &len) || len > (uint64_t)(r->end - r->p)) {
        return false;
    }
    *body = r->p, *n = (size_t)len;
    r->p += len;
    return true;
}

static void *alloc(ProtobufCAllocator *a, size_t n)
{
    return a->alloc(a->allocator_data, n);
}

/* The string as protobuf-c makes it: the bytes, NUL-terminated. ASCII
 * only: ids are ASCII, and other bytes are left to protobuf-c. */
static bool string(struct rd *r, ProtobufCAllocator *a, char **out)
{
    const uint8_t *s;
    size_t n;
    if (!delimited(r, &s, &n)) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] & 0x80) {
            return false;
        }
    }
    char *c = alloc(a, n + 1);
    if (!c) {
        return false;
    }
    memcpy(c, s, n);
    c[n] = '\0';
    *out = c;
    return true;
}

static bool u32(struct rd *r, protobuf_c_boolean *has, uint32_t *out)
{
    uint64_t v;
    if (!varint(r, 5, &v) || v > UINT32_MAX) {
        return false;
    }
    *has = 1, *out = (uint32_t)v;
    return true;
}

static bool u64(struct rd *r, protobuf_c_boolean *has, uint64_t *out)
{
    if (!varint(r, 10, out)) {
        return false;
    }
    *has = 1;
    return true;
}

static bool f32(struct rd *r, protobuf_c_boolean *has, float *out)
{
    uint64_t v;
    if (!fixed(r, 4, &v)) {
        return false;
    }
    uint32_t bits = (uint32_t)v;
    memcpy(out, &bits, sizeof(*out));
    *has = 1;
    return true;
}

/* One Window field; false: not the plain shape. */
static bool window_field(struct rd *r, ProtobufCAllocator *a, uint32_t f, uint32_t wt,
                         Needlewatch__V1__Window *w)
{
    static const uint32_t wire_of[16] = {
        0,      WT_VARINT, WT_VARINT, WT_VARINT, WT_VARINT, WT_VARINT, WT_I32, WT_I32,
        WT_I32, WT_I32,    WT_I32,    WT_I32,    WT_I32,    WT_LEN,    WT_LEN, WT_LEN};
    if (f == 0 || f > 15 || wt != wire_of[f]) {
        return false;
    }
    uint64_t v;
    switch (f) {
    case 1:
        return u64(r, &w->has_seq, &w->seq);
    case 2:
        if (!u64(r, &w->has_start_ms, &v)) {
            return false;
        }
        w->start_ms = (int64_t)v;
        return true;
    case 3:
        return u32(r, &w->has_duration_ms, &w->duration_ms);
    case 4:
        return u64(r, &w->has_cycles, &w->cycles);
    case 5:
        return u32(r, &w->has_running_ms, &w->running_ms);
    case 6:
        return f32(r, &w->has_rate_mean_hz, &w->rate_mean_hz);
    case 7:
        return f32(r, &w->has_rate_min_hz, &w->rate_min_hz);
    case 8:
        return f32(r, &w->has_rate_max_hz, &w->rate_max_hz);
    case 9:
        return f32(r, &w->has_depth_mean_mm, &w->depth_mean_mm);
    case 10:
        return f32(r, &w->has_depth_min_mm, &w->depth_min_mm);
    case 11:
        return f32(r, &w->has_depth_max_mm, &w->depth_max_mm);
    case 12:
        return f32(r, &w->has_pigment_ul, &w->pigment_ul);
    case 13:
        return string(r, a, &w->session_id);
    case 14:
        return string(r, a, &w->cartridge_id);
    default:
        return string(r, a, &w->pigment_lot);
    }
}

static Needlewatch__V1__Window *window(ProtobufCAllocator *a, const uint8_t *p, size_t n)
{
    Needlewatch__V1__Window *w = alloc(a, sizeof(*w));
    if (!w) {
        return NULL;
    }
    needlewatch__v1__window__init(w);
    struct rd r = {p, p + n};
    uint32_t f, wt;
    while (r.p < r.end) {
        if (!key(&r, &f, &wt) || !window_field(&r, a, f, wt, w)) {
            return NULL;
        }
    }
    return w;
}

/* Skips one top-level field, counting windows; false: not the plain shape. */
static bool scan_field(struct rd *r, size_t *nwindows)
{
    uint32_t f, wt;
    const uint8_t *body;
    size_t n;
    uint64_t v;
    if (!key(r, &f, &wt)) {
        return false;
    }
    switch (f) {
    case 1:
        return wt == WT_LEN && delimited(r, &body, &n);
    case 2:
        return wt == WT_I64 && fixed(r, 8, &v);
    case 3:
        ++*nwindows;
        return wt == WT_LEN && delimited(r, &body, &n);
    case 4:
        return wt == WT_VARINT && varint(r, 10, &v);
    default:
        return false;
    }
}

/* One top-level field, the shape already checked by scan_field. */
static bool batch_field(struct rd *r, ProtobufCAllocator *a, Needlewatch__V1__WindowBatch *b)
{
    uint32_t f = 0, wt;
    const uint8_t *body;
    size_t n;
    if (!key(r, &f, &wt)) {
        return false;
    }
    switch (f) {
    case 1:
        return string(r, a, &b->device_id);
    case 2:
        b->has_epoch = 1;
        return fixed(r, 8, &b->epoch);
    case 3:
        if (!delimited(r, &body, &n)) {
            return false;
        }
        b->windows[b->n_windows] = window(a, body, n);
        return b->windows[b->n_windows++] != NULL;
    default:
        return u64(r, &b->has_queue_floor, &b->queue_floor);
    }
}

Needlewatch__V1__WindowBatch *nw_pbwindows_unpack(ProtobufCAllocator *a, const uint8_t *buf,
                                                  size_t len)
{
    size_t nwindows = 0;
    struct rd r = {buf, buf + len};
    while (r.p < r.end) {
        if (!scan_field(&r, &nwindows)) {
            return NULL;
        }
    }
    Needlewatch__V1__WindowBatch *b = alloc(a, sizeof(*b));
    Needlewatch__V1__Window **ws = nwindows ? alloc(a, nwindows * sizeof(*ws)) : NULL;
    if (!b || (nwindows && !ws)) {
        return NULL;
    }
    needlewatch__v1__window_batch__init(b);
    b->windows = ws;
    r = (struct rd){buf, buf + len};
    while (r.p < r.end) {
        if (!batch_field(&r, a, b)) {
            return NULL;
        }
    }
    return b;
}

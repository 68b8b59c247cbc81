/*
 * fuzz_pbwindows.c - the direct WindowBatch decoder (lib/pbwindows.c)
 * against protobuf-c on arbitrary bytes: whenever the direct decoder
 * returns a batch, protobuf_c_message_unpack() must accept the same bytes
 * and produce the same values, field by field (floats bit for bit). When
 * it returns NULL, protobuf-c decides, so nothing is compared.
 */
#include <needlewatch/pbwindows.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ARENA_BYTES (8u << 20)

struct arena {
    uint8_t *base;
    size_t used;
};

static void *bump(void *data, size_t n)
{
    struct arena *a = data;
    size_t at = (a->used + 15) & ~(size_t)15;
    if (at > ARENA_BYTES || n > ARENA_BYTES - at) {
        return NULL;
    }
    a->used = at + n;
    return a->base + at;
}

static void no_free(void *data, void *p)
{
    (void)data;
    (void)p;
}

static bool same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

#define SAME(x, y, f) ((x)->has_##f == (y)->has_##f && (!(x)->has_##f || (x)->f == (y)->f))
#define SAME_BITS(x, y, f)                                                                         \
    ((x)->has_##f == (y)->has_##f && (!(x)->has_##f || !memcmp(&(x)->f, &(y)->f, sizeof((x)->f))))

static bool same_window(const Needlewatch__V1__Window *x, const Needlewatch__V1__Window *y)
{
    return SAME(x, y, seq) && SAME(x, y, start_ms) && SAME(x, y, duration_ms) &&
           SAME(x, y, cycles) && SAME(x, y, running_ms) && SAME_BITS(x, y, rate_mean_hz) &&
           SAME_BITS(x, y, rate_min_hz) && SAME_BITS(x, y, rate_max_hz) &&
           SAME_BITS(x, y, depth_mean_mm) && SAME_BITS(x, y, depth_min_mm) &&
           SAME_BITS(x, y, depth_max_mm) && SAME_BITS(x, y, pigment_ul) &&
           same_str(x->session_id, y->session_id) && same_str(x->cartridge_id, y->cartridge_id) &&
           same_str(x->pigment_lot, y->pigment_lot);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct arena a;
    if (!a.base && !(a.base = malloc(ARENA_BYTES))) {
        return 0;
    }
    a.used = 0;
    ProtobufCAllocator alloc = {.alloc = bump, .free = no_free, .allocator_data = &a};
    Needlewatch__V1__WindowBatch *fast = nw_pbwindows_unpack(&alloc, data, size);
    if (!fast) {
        return 0;
    }
    Needlewatch__V1__WindowBatch *ref = needlewatch__v1__window_batch__unpack(NULL, size, data);
    if (!ref) {
        abort(); /* accepted what protobuf-c refuses */
    }
    bool same = same_str(fast->device_id, ref->device_id) && SAME(fast, ref, epoch) &&
                SAME(fast, ref, queue_floor) && fast->n_windows == ref->n_windows;
    for (size_t i = 0; same && i < fast->n_windows; i++) {
        same = same_window(fast->windows[i], ref->windows[i]);
    }
    needlewatch__v1__window_batch__free_unpacked(ref, NULL);
    if (!same) {
        abort(); /* decoded differently */
    }
    return 0;
}

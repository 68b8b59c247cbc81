/*
 * fuzz_collector_batch.c - the ingest -> worker batch reader
 * (collector/pipeline.c: cp_in_next) on arbitrary bytes, as a worker gets
 * them over tcp:// from another process: it must stop at the end or at the
 * first record that would run past it, never read outside the input, and
 * always advance. A windows record's payload then goes through
 * cp_windows_get() and the validation the worker applies to it, which must
 * hold whatever the bytes are (terminated strings, any doubles).
 */
#include "pipeline.h"

#include <needlewatch/validate.h>

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint32_t sink; /* keeps the reads of every byte */

#define FUZZ_WINDOWS 64

static uint32_t windows_of(const uint8_t *payload, size_t len)
{
    static struct nw_window w[FUZZ_WINDOWS];
    struct nw_window_batch b = {.windows = w, .capacity = FUZZ_WINDOWS};
    if (!cp_windows_get(payload, len, &b)) {
        return 0;
    }
    struct nw_limits lim;
    nw_limits_default(&lim);
    uint32_t ok = nw_valid_device_id(b.device_id);
    for (size_t i = 0; i < b.count; i++) {
        ok += nw_validate_window(&w[i], &lim, 1700000000000, NULL, NULL) == NW_OK;
    }
    return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly size bytes: reading past it is caught by ASan. */
    uint8_t *batch = malloc(size ? size : 1);
    if (!batch) {
        return 0;
    }
    memcpy(batch, data, size);
    size_t at = sizeof(struct cp_in_batch), prev = at;
    struct cp_in hdr;
    const uint8_t *payload, *rej;
    uint32_t sum = 0; /* every byte handed out is read: ASan checks it */
    while (cp_in_next(batch, size, &at, &hdr, &payload, &rej)) {
        if (at <= prev || at > size) {
            abort();
        }
        prev = at;
        for (uint32_t i = 0; i < hdr.len; i++) {
            sum += payload[i];
        }
        if (hdr.type == CP_WINDOWS) {
            sum += windows_of(payload, hdr.len);
        }
        for (uint32_t i = 0; i < hdr.nrejected; i++) {
            uint32_t k;
            memcpy(&k, rej + 4u * i, sizeof(k));
            sum += k;
        }
    }
    free(batch);
    sink = sum;
    return 0;
}

/* pointbuf.c - see pointbuf.h. */
#include "pointbuf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct nw_pointbuf {
    uint8_t *arena;
    size_t cap_bytes, used, touched;
    const struct nw_point **pts;
    size_t n, cap;
};

struct nw_pointbuf *nw_pointbuf_new(size_t max_points, size_t max_bytes)
{
    struct nw_pointbuf *b = calloc(1, sizeof(*b));
    if (!b || max_points == 0 || max_bytes == 0) {
        free(b);
        return NULL;
    }
    b->cap = max_points;
    b->cap_bytes = max_bytes;
    void *a = mmap(NULL, max_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    b->arena = a == MAP_FAILED ? NULL : a;
    b->pts = malloc(max_points * sizeof(*b->pts));
    if (!b->arena || !b->pts) {
        nw_pointbuf_destroy(&b);
    }
    return b;
}

void nw_pointbuf_destroy(struct nw_pointbuf **p)
{
    if (!p || !*p) {
        return;
    }
    struct nw_pointbuf *b = *p;
    if (b->arena) {
        munmap(b->arena, b->cap_bytes);
    }
    free(b->pts);
    free(b);
    *p = NULL;
}

size_t nw_pointbuf_bytes_of(const struct nw_point *pts, size_t n)
{
    size_t bytes = 0;
    for (size_t k = 0; k < n; k++) {
        bytes += nw_point_size(pts[k].kind);
    }
    return bytes;
}

bool nw_pointbuf_fits(const struct nw_pointbuf *b, size_t n, size_t bytes, size_t limit)
{
    return n <= b->cap - b->n && b->n + n <= limit && bytes <= b->cap_bytes - b->used;
}

bool nw_pointbuf_add(struct nw_pointbuf *b, const struct nw_point *pts, size_t n)
{
    if (!nw_pointbuf_fits(b, n, nw_pointbuf_bytes_of(pts, n), b->cap)) {
        return false;
    }
    for (size_t k = 0; k < n; k++) {
        size_t sz = nw_point_size(pts[k].kind);
        memcpy(b->arena + b->used, &pts[k], sz);
        b->pts[b->n++] = (const struct nw_point *)(b->arena + b->used);
        b->used += sz;
    }
    b->touched = b->used > b->touched ? b->used : b->touched;
    return true;
}

void nw_pointbuf_drop_front(struct nw_pointbuf *b, size_t n)
{
    n = n < b->n ? n : b->n;
    size_t at = 0;
    for (size_t i = n; i < b->n; i++) {
        /* Points lie in order, so each one's new place is at or before it. */
        size_t sz = nw_point_size(b->pts[i]->kind);
        memmove(b->arena + at, b->pts[i], sz);
        b->pts[i - n] = (const struct nw_point *)(b->arena + at);
        at += sz;
    }
    b->n -= n;
    b->used = at;
}

void nw_pointbuf_release(struct nw_pointbuf *b, size_t keep_bytes)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t from = (keep_bytes + page - 1) / page * page;
    if (b->n == 0 && b->touched > from && from < b->cap_bytes) {
        madvise(b->arena + from, b->cap_bytes - from, MADV_DONTNEED);
        b->touched = from;
    }
}

size_t nw_pointbuf_count(const struct nw_pointbuf *b)
{
    return b->n;
}

size_t nw_pointbuf_bytes(const struct nw_pointbuf *b)
{
    return b->used;
}

size_t nw_pointbuf_touched(const struct nw_pointbuf *b)
{
    return b->touched;
}

const struct nw_point *const *nw_pointbuf_points(const struct nw_pointbuf *b)
{
    return b->pts;
}

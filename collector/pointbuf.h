/*
 * pointbuf.h - a batch of compact store points in one arena.
 *
 * struct nw_point is as large as its largest kind (an event: 968 bytes); a
 * window needs 536 of them. The writer's batches hold up to tens of
 * thousands of points, so they keep each point as its nw_point_size()
 * bytes, one after the other, and hand the store an array of pointers
 * (nw_store_write_ptrs). The arena is mapped once; its pages are touched
 * as points arrive, and nw_pointbuf_release() gives back what a burst
 * touched beyond what the caller wants to keep.
 */
#ifndef COLLECTOR_POINTBUF_H
#define COLLECTOR_POINTBUF_H

#include "point.h"

#include <stdbool.h>
#include <stddef.h>

struct nw_pointbuf;

/* Room for max_points points and max_bytes of compact points. Returns NULL
 * when out of memory; the caller owns the result (nw_pointbuf_destroy). */
struct nw_pointbuf *nw_pointbuf_new(size_t max_points, size_t max_bytes);
void nw_pointbuf_destroy(struct nw_pointbuf **p);

/* The arena bytes the n points of the array pts take. */
size_t nw_pointbuf_bytes_of(const struct nw_point *pts, size_t n);

/* Whether n more points of `bytes` fit, keeping the count <= limit. */
bool nw_pointbuf_fits(const struct nw_pointbuf *b, size_t n, size_t bytes, size_t limit);

/* Copies the n whole points of pts (borrowed) in, compacted; false (and
 * nothing copied) if they do not fit. */
bool nw_pointbuf_add(struct nw_pointbuf *b, const struct nw_point *pts, size_t n);

/* Forgets the first n points; the rest moves to the front, in order. */
void nw_pointbuf_drop_front(struct nw_pointbuf *b, size_t n);

/* When empty: gives the pages beyond the first keep_bytes back. */
void nw_pointbuf_release(struct nw_pointbuf *b, size_t keep_bytes);

size_t nw_pointbuf_count(const struct nw_pointbuf *b);
size_t nw_pointbuf_bytes(const struct nw_pointbuf *b);   /* in use */
size_t nw_pointbuf_touched(const struct nw_pointbuf *b); /* resident at most */

/* The points, in order; borrowed, valid until the next add or drop. Read a
 * point's own kind only (see nw_point_size). */
const struct nw_point *const *nw_pointbuf_points(const struct nw_pointbuf *b);

#endif

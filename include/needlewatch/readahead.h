/*
 * readahead.h - buffered reads of one socket for libmosquitto.
 *
 * libmosquitto 2.0 reads each packet with three or four read() calls on
 * its socket (command byte, each length byte, the rest) and has no option
 * to buffer. At a fleet's message rate those calls were a third of the
 * collector's ingest thread (bench/README.md). This module defines read()
 * for the process: while a read-ahead is active on the calling thread and
 * the fd is its socket, a read is served from a 64 KiB buffer filled by
 * one read() of the kernel socket; every other read() - other fds, other
 * threads, or no active read-ahead - goes straight to the system call.
 *
 * Only lib/mqtt.c uses it, and only around mosquitto_loop_read(), for a
 * connection created with nw_mqtt_options.read_ahead. Bytes read ahead
 * belong to that connection: the caller resets the buffer whenever the
 * connection is lost or replaced, and must treat "pending" bytes as
 * readable (poll() does not see them).
 */
#ifndef NEEDLEWATCH_READAHEAD_H
#define NEEDLEWATCH_READAHEAD_H

#include <stdbool.h>
#include <stddef.h>

#define NW_READAHEAD_CAP (64 * 1024)

struct nw_readahead;

/* A read-ahead buffer of NW_READAHEAD_CAP bytes; NULL when out of memory.
 * The caller owns it and frees it with nw_readahead_destroy(). */
struct nw_readahead *nw_readahead_new(void);

/* Frees *p and sets it to NULL. NULL-safe. Must not be active. */
void nw_readahead_destroy(struct nw_readahead **p);

/* Makes r serve this thread's read()s of fd until nw_readahead_end(). A
 * different fd than last time drops what was buffered. */
void nw_readahead_begin(struct nw_readahead *r, int fd);
void nw_readahead_end(struct nw_readahead *r);

/* Drops buffered bytes (the connection they came from is gone). */
void nw_readahead_reset(struct nw_readahead *r);

/* Bytes buffered and not yet consumed. */
size_t nw_readahead_pending(const struct nw_readahead *r);

#endif

/*
 * sockbuf.h - buffered reads and coalesced writes of one socket, under
 * libmosquitto.
 *
 * libmosquitto 2.0 reads each packet with three or four read() calls
 * (command byte, each length byte, the rest) and writes each packet with
 * its own write(): for a subscriber, one PUBACK per message. It has no
 * option to buffer either. At a fleet's message rate those calls were
 * about half of the collector's ingest thread (bench/README.md).
 *
 * This module defines read() and write() for the process. A buffer is
 * bound to one socket of one thread by nw_sockbuf_begin(); from then on,
 * on that thread and that fd only:
 *  - read() is served from a 64 KiB buffer that one kernel read fills;
 *  - between begin() and end() (a "burst": the caller's read loop, where
 *    libmosquitto answers each message with a PUBACK), write() appends to
 *    a 16 KiB buffer; end() sends it with one send(). Outside a burst a
 *    write goes straight out, after whatever an earlier end() could not
 *    send (order is kept).
 * Every other read() and write() - other fds, other threads - is the
 * system call, as libc makes it.
 *
 * The caller must: treat nw_sockbuf_pending_in() bytes as readable and
 * nw_sockbuf_pending_out() as a reason to poll for POLLOUT (poll() sees
 * neither), call nw_sockbuf_flush() when the socket is writable, and
 * nw_sockbuf_reset() when the connection is lost or replaced (the bytes
 * belong to it, and the fd number may be reused).
 */
#ifndef NEEDLEWATCH_SOCKBUF_H
#define NEEDLEWATCH_SOCKBUF_H

#include <stdbool.h>
#include <stddef.h>

#define NW_SOCKBUF_IN_CAP (64 * 1024)
#define NW_SOCKBUF_OUT_CAP (16 * 1024)

struct nw_sockbuf;

/* Buffers of NW_SOCKBUF_IN_CAP + NW_SOCKBUF_OUT_CAP bytes, bound to no
 * socket; NULL when out of memory. The caller owns it and frees it with
 * nw_sockbuf_destroy(). */
struct nw_sockbuf *nw_sockbuf_new(void);

/* Unbinds and frees *p, sets it to NULL. NULL-safe. */
void nw_sockbuf_destroy(struct nw_sockbuf **p);

/* Binds b to fd on the calling thread and opens a burst (writes are held
 * until end()). A different fd than last time drops what was buffered. */
void nw_sockbuf_begin(struct nw_sockbuf *b, int fd);

/* Closes the burst and sends what it wrote (as much as the socket takes). */
void nw_sockbuf_end(struct nw_sockbuf *b);

/* Sends held output; the socket is non-blocking, so it may stay pending. */
void nw_sockbuf_flush(struct nw_sockbuf *b);

/* Drops buffered input and output and unbinds the fd (and the calling
 * thread, if bound to b). */
void nw_sockbuf_reset(struct nw_sockbuf *b);

/* Bytes read ahead and not yet consumed; bytes written and not yet sent. */
size_t nw_sockbuf_pending_in(const struct nw_sockbuf *b);
size_t nw_sockbuf_pending_out(const struct nw_sockbuf *b);

#endif

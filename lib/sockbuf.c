/*
 * sockbuf.c - read() and write() for the process, buffered for the one
 * socket bound on the calling thread (see sockbuf.h for why).
 *
 * The definitions here take precedence over libc's for every shared
 * library of the process (the executable comes first in symbol lookup),
 * which is how libmosquitto's calls reach them. A call for any other fd or
 * thread pays one thread-local load and a compare, then the system call
 * libc would make. The system calls go through syscall() and send(), not
 * libc's read()/write(), which would resolve back here. <unistd.h> is not
 * included: with _FORTIFY_SOURCE it defines read() inline.
 *
 * errno: a call that succeeds leaves errno as it found it (libmosquitto
 * looks at errno after successful reads), one that fails sets it as the
 * kernel did.
 */
#include <needlewatch/sockbuf.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>

long syscall(long number, ...);
ssize_t read(int fd, void *buf, size_t count);
ssize_t write(int fd, const void *buf, size_t count);

struct nw_sockbuf {
    int fd;
    bool burst;
    int out_err; /* a failed send's errno, for the next write() */
    size_t off, len, olen;
    unsigned char in[NW_SOCKBUF_IN_CAP];
    unsigned char out[NW_SOCKBUF_OUT_CAP];
};

static _Thread_local struct nw_sockbuf *bound;

static ssize_t sys_read(int fd, void *buf, size_t count)
{
    return (ssize_t)syscall(SYS_read, fd, buf, count);
}

static ssize_t sys_write(int fd, const void *buf, size_t count)
{
    return (ssize_t)syscall(SYS_write, fd, buf, count);
}

static struct nw_sockbuf *owner_of(int fd)
{
    struct nw_sockbuf *b = bound;
    return b && b->fd == fd && fd >= 0 ? b : NULL;
}

ssize_t read(int fd, void *buf, size_t count)
{
    struct nw_sockbuf *b = owner_of(fd);
    if (!b || count == 0) {
        return sys_read(fd, buf, count);
    }
    if (b->off == b->len) {
        if (count >= sizeof(b->in)) { /* a large payload: no extra copy */
            return sys_read(fd, buf, count);
        }
        ssize_t n = sys_read(fd, b->in, sizeof(b->in));
        if (n <= 0) {
            return n; /* EOF, EAGAIN or an error, errno as the kernel set it */
        }
        b->off = 0, b->len = (size_t)n;
    }
    size_t n = b->len - b->off < count ? b->len - b->off : count;
    memcpy(buf, b->in + b->off, n);
    b->off += n;
    return (ssize_t)n;
}

void nw_sockbuf_flush(struct nw_sockbuf *b)
{
    int saved = errno;
    size_t sent = 0;
    while (sent < b->olen) {
        ssize_t n = send(b->fd, b->out + sent, b->olen - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            sent += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break; /* the rest when the socket is writable again */
        } else {
            b->out_err = n < 0 ? errno : EPIPE; /* the connection is gone */
            sent = b->olen;
        }
    }
    memmove(b->out, b->out + sent, b->olen - sent);
    b->olen -= sent;
    errno = saved;
}

ssize_t write(int fd, const void *buf, size_t count)
{
    struct nw_sockbuf *b = owner_of(fd);
    if (!b) {
        return sys_write(fd, buf, count);
    }
    if (b->out_err) {
        errno = b->out_err;
        b->out_err = 0;
        return -1;
    }
    if (!b->burst && b->olen == 0) {
        return sys_write(fd, buf, count); /* nothing held: nothing to keep order with */
    }
    if (count > sizeof(b->out) - b->olen) {
        nw_sockbuf_flush(b);
        if (b->olen == 0 && !b->out_err) {
            return sys_write(fd, buf, count);
        }
        if (count > sizeof(b->out) - b->olen) {
            errno = EAGAIN; /* libmosquitto keeps the packet and tries again */
            return -1;
        }
    }
    memcpy(b->out + b->olen, buf, count);
    b->olen += count;
    if (!b->burst) {
        nw_sockbuf_flush(b);
    }
    return (ssize_t)count;
}

struct nw_sockbuf *nw_sockbuf_new(void)
{
    struct nw_sockbuf *b = malloc(sizeof(*b));
    if (b) {
        b->fd = -1, b->burst = false, b->out_err = 0;
        b->off = b->len = b->olen = 0;
    }
    return b;
}

void nw_sockbuf_destroy(struct nw_sockbuf **p)
{
    if (p && *p) {
        if (bound == *p) {
            bound = NULL;
        }
        free(*p);
        *p = NULL;
    }
}

void nw_sockbuf_begin(struct nw_sockbuf *b, int fd)
{
    if (b->fd != fd) {
        nw_sockbuf_reset(b);
        b->fd = fd;
    }
    b->burst = true;
    bound = b;
}

void nw_sockbuf_end(struct nw_sockbuf *b)
{
    b->burst = false;
    nw_sockbuf_flush(b);
}

void nw_sockbuf_reset(struct nw_sockbuf *b)
{
    if (bound == b) {
        bound = NULL; /* (another thread's binding goes with that thread) */
    }
    b->fd = -1, b->burst = false, b->out_err = 0;
    b->off = b->len = b->olen = 0;
}

size_t nw_sockbuf_pending_in(const struct nw_sockbuf *b)
{
    return b->len - b->off;
}

size_t nw_sockbuf_pending_out(const struct nw_sockbuf *b)
{
    return b->olen;
}

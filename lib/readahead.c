/*
 * readahead.c - read() for the process, buffered for one socket per thread
 * while a read-ahead is active (see readahead.h for why).
 *
 * The definition of read() here takes precedence over libc's for every
 * shared library of the process (the executable comes first in symbol
 * lookup), which is how libmosquitto's reads reach it. Everything that is
 * not the active socket of the calling thread pays one thread-local load
 * and a compare, then the system call - the same call libc makes. The
 * system call is made with syscall(), not through libc's read(), which
 * would resolve back to this function. <unistd.h> is not included: with
 * _FORTIFY_SOURCE it defines read() inline.
 */
#include <needlewatch/readahead.h>

#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>

long syscall(long number, ...);
ssize_t read(int fd, void *buf, size_t count);

struct nw_readahead {
    int fd;
    size_t off, len;
    unsigned char buf[NW_READAHEAD_CAP];
};

static _Thread_local struct nw_readahead *active;

static ssize_t sys_read(int fd, void *buf, size_t count)
{
    return (ssize_t)syscall(SYS_read, fd, buf, count);
}

ssize_t read(int fd, void *buf, size_t count)
{
    struct nw_readahead *r = active;
    if (!r || fd != r->fd || count == 0) {
        return sys_read(fd, buf, count);
    }
    if (r->off == r->len) {
        if (count >= sizeof(r->buf)) { /* a large payload: no extra copy */
            return sys_read(fd, buf, count);
        }
        ssize_t n = sys_read(fd, r->buf, sizeof(r->buf));
        if (n <= 0) {
            return n; /* EOF, EAGAIN or an error, errno as the kernel set it */
        }
        r->off = 0, r->len = (size_t)n;
    }
    size_t n = r->len - r->off < count ? r->len - r->off : count;
    memcpy(buf, r->buf + r->off, n);
    r->off += n;
    return (ssize_t)n;
}

struct nw_readahead *nw_readahead_new(void)
{
    struct nw_readahead *r = malloc(sizeof(*r));
    if (r) {
        r->fd = -1, r->off = 0, r->len = 0;
    }
    return r;
}

void nw_readahead_destroy(struct nw_readahead **p)
{
    if (p && *p) {
        free(*p);
        *p = NULL;
    }
}

void nw_readahead_begin(struct nw_readahead *r, int fd)
{
    if (r->fd != fd) {
        nw_readahead_reset(r);
        r->fd = fd;
    }
    active = r;
}

void nw_readahead_end(struct nw_readahead *r)
{
    if (active == r) {
        active = NULL;
    }
}

void nw_readahead_reset(struct nw_readahead *r)
{
    r->off = r->len = 0;
}

size_t nw_readahead_pending(const struct nw_readahead *r)
{
    return r->len - r->off;
}

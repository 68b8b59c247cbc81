/*
 * test_sockbuf.c - the buffered read() and coalesced write() that
 * lib/mqtt.c puts under libmosquitto: the same bytes in the same order as
 * the kernel would give and take, only for the bound fd on the bound
 * thread, EAGAIN, EOF and errors unchanged. This program's own read() and
 * write() calls go through the module, as libmosquitto's do in the
 * collector.
 */
#include <needlewatch/sockbuf.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

struct pair {
    int rd, wr;
};

static struct pair make_pair(void)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
    return (struct pair){sv[0], sv[1]};
}

static void close_pair(struct pair p)
{
    close(p.rd);
    if (p.wr >= 0) {
        close(p.wr);
    }
}

static void put(struct pair p, const void *b, size_t n)
{
    assert_int_equal(send(p.wr, b, n, 0), (ssize_t)n);
}

/* Bytes the kernel still holds for fd (0 when the buffer took them). */
static ssize_t kernel_holds(int fd)
{
    char tmp[256 * 1024];
    ssize_t n = recv(fd, tmp, sizeof(tmp), MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && errno == EAGAIN ? 0 : n;
}

static void test_one_kernel_read_serves_small_reads_in_order(void **state)
{
    (void)state;
    struct pair p = make_pair();
    unsigned char data[5000];
    for (size_t i = 0; i < sizeof(data); i++) {
        data[i] = (unsigned char)(i * 7 + 3);
    }
    put(p, data, sizeof(data));
    struct nw_sockbuf *r = nw_sockbuf_new();
    assert_non_null(r);
    nw_sockbuf_begin(r, p.rd);
    unsigned char got[sizeof(data)];
    size_t at = 0;
    /* libmosquitto's pattern: 1 byte, 1 byte, the rest of a packet. */
    assert_int_equal(read(p.rd, got + at, 1), 1);
    at += 1;
    assert_int_equal(kernel_holds(p.rd), 0);
    assert_int_equal(nw_sockbuf_pending_in(r), sizeof(data) - 1);
    assert_int_equal(read(p.rd, got + at, 1), 1);
    at += 1;
    assert_int_equal(read(p.rd, got + at, 998), 998);
    at += 998;
    while (at < sizeof(data)) {
        ssize_t n = read(p.rd, got + at, sizeof(data) - at);
        assert_true(n > 0);
        at += (size_t)n;
    }
    assert_memory_equal(got, data, sizeof(data));
    assert_int_equal(nw_sockbuf_pending_in(r), 0);
    errno = 0;
    assert_int_equal(read(p.rd, got, 1), -1);
    assert_int_equal(errno, EAGAIN);
    nw_sockbuf_end(r);
    nw_sockbuf_destroy(&r);
    assert_null(r);
    close_pair(p);
}

static void test_inactive_or_other_fd_reads_the_kernel(void **state)
{
    (void)state;
    struct pair a = make_pair(), b = make_pair();
    struct nw_sockbuf *r = nw_sockbuf_new();
    put(a, "hello", 5);
    put(b, "world!", 6);
    char got[16] = {0};
    assert_int_equal(read(a.rd, got, 2), 2); /* not bound yet */
    assert_int_equal(kernel_holds(a.rd), 3);
    nw_sockbuf_begin(r, a.rd);
    assert_int_equal(read(b.rd, got, 3), 3); /* another fd */
    assert_memory_equal(got, "wor", 3);
    assert_int_equal(kernel_holds(b.rd), 3);
    assert_int_equal(nw_sockbuf_pending_in(r), 0);
    nw_sockbuf_end(r);
    nw_sockbuf_destroy(&r);
    close_pair(a);
    close_pair(b);
}

struct thread_arg {
    int fd;
    ssize_t n;
    char buf[8];
};

static void *read_in_thread(void *p)
{
    struct thread_arg *t = p;
    t->n = read(t->fd, t->buf, sizeof(t->buf));
    return NULL;
}

/* The binding is the calling thread's: another thread reading the same
 * fd meanwhile gets the kernel's bytes, and the buffer stays empty. */
static void test_other_threads_are_not_served(void **state)
{
    (void)state;
    struct pair p = make_pair();
    struct nw_sockbuf *r = nw_sockbuf_new();
    put(p, "abc", 3);
    nw_sockbuf_begin(r, p.rd);
    struct thread_arg t = {.fd = p.rd};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, read_in_thread, &t), 0);
    pthread_join(th, NULL);
    assert_int_equal(t.n, 3);
    assert_memory_equal(t.buf, "abc", 3);
    assert_int_equal(nw_sockbuf_pending_in(r), 0);
    nw_sockbuf_end(r);
    nw_sockbuf_destroy(&r);
    close_pair(p);
}

/* Bytes read ahead stay after end() (the fd stays bound); reset() and a
 * begin() on another fd drop them and unbind (they belonged to a lost
 * connection whose fd number may come back for something else). */
static void test_pending_survives_end_and_drops_on_reset(void **state)
{
    (void)state;
    struct pair p = make_pair(), q = make_pair();
    struct nw_sockbuf *r = nw_sockbuf_new();
    put(p, "0123456789", 10);
    nw_sockbuf_begin(r, p.rd);
    char got[16] = {0};
    assert_int_equal(read(p.rd, got, 1), 1);
    nw_sockbuf_end(r);
    assert_int_equal(nw_sockbuf_pending_in(r), 9);
    assert_int_equal(read(p.rd, got, 4), 4);
    assert_memory_equal(got, "1234", 4);
    nw_sockbuf_reset(r);
    assert_int_equal(nw_sockbuf_pending_in(r), 0);
    put(p, "xyz", 3);
    assert_int_equal(read(p.rd, got, 1), 1); /* unbound: the kernel's bytes */
    assert_int_equal(got[0], 'x');
    assert_int_equal(kernel_holds(p.rd), 2);
    nw_sockbuf_begin(r, p.rd);
    assert_int_equal(read(p.rd, got, 1), 1);
    assert_int_equal(nw_sockbuf_pending_in(r), 1);
    nw_sockbuf_begin(r, q.rd);
    assert_int_equal(nw_sockbuf_pending_in(r), 0);
    nw_sockbuf_end(r);
    nw_sockbuf_destroy(&r);
    close_pair(p);
    close_pair(q);
}

/* Bytes the peer of p can read right now (without waiting). */
static ssize_t peer_reads(struct pair p, void *buf, size_t cap)
{
    ssize_t n = recv(p.wr, buf, cap, MSG_DONTWAIT);
    return n < 0 && errno == EAGAIN ? 0 : n;
}

/* A burst's writes reach the socket in one go at end(); outside a burst,
 * with nothing held, a write goes straight out. errno is left alone. */
static void test_burst_writes_go_out_at_end(void **state)
{
    (void)state;
    struct pair p = make_pair();
    struct nw_sockbuf *b = nw_sockbuf_new();
    char got[64] = {0};
    nw_sockbuf_begin(b, p.rd);
    errno = 1234;
    assert_int_equal(write(p.rd, "@\2\0\1", 4), 4);
    assert_int_equal(write(p.rd, "@\2\0\2", 4), 4);
    assert_int_equal(write(p.rd, "@\2\0\3", 4), 4);
    assert_int_equal(errno, 1234);
    assert_int_equal(nw_sockbuf_pending_out(b), 12);
    assert_int_equal(peer_reads(p, got, sizeof(got)), 0);
    errno = 1234; /* (recv just set it) */
    nw_sockbuf_end(b);
    assert_int_equal(errno, 1234);
    assert_int_equal(nw_sockbuf_pending_out(b), 0);
    assert_int_equal(peer_reads(p, got, sizeof(got)), 12);
    assert_memory_equal(got, "@\2\0\1@\2\0\2@\2\0\3", 12);
    assert_int_equal(write(p.rd, "now", 3), 3);
    assert_int_equal(peer_reads(p, got, sizeof(got)), 3);
    assert_memory_equal(got, "now", 3);
    nw_sockbuf_destroy(&b);
    close_pair(p);
}

static void fill_until_full(int fd, size_t *written)
{
    char junk[4096];
    memset(junk, 'j', sizeof(junk));
    for (;;) {
        ssize_t n = send(fd, junk, sizeof(junk), MSG_DONTWAIT);
        if (n <= 0) {
            assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
            return;
        }
        *written += (size_t)n;
    }
}

/* When the socket is full at end(), the rest stays held; a later write
 * outside a burst queues behind it (never overtakes it), a burst write
 * that does not fit gets EAGAIN, and flush() sends it all once the peer
 * has read. */
static void test_held_output_keeps_its_order(void **state)
{
    (void)state;
    struct pair p = make_pair();
    size_t junk = 0;
    fill_until_full(p.rd, &junk);
    struct nw_sockbuf *b = nw_sockbuf_new();
    nw_sockbuf_begin(b, p.rd);
    assert_int_equal(write(p.rd, "first", 5), 5);
    char big[NW_SOCKBUF_OUT_CAP];
    memset(big, 'b', sizeof(big));
    errno = 0;
    assert_int_equal(write(p.rd, big, sizeof(big) - 2), -1);
    assert_int_equal(errno, EAGAIN);
    nw_sockbuf_end(b);
    assert_int_equal(nw_sockbuf_pending_out(b), 5);
    assert_int_equal(write(p.rd, "second", 6), 6);
    assert_int_equal(nw_sockbuf_pending_out(b), 11);
    char *got = malloc(junk + 64);
    assert_non_null(got);
    size_t at = 0;
    for (int i = 0; i < 1000 && at < junk + 11; i++) {
        ssize_t n = peer_reads(p, got + at, junk + 64 - at);
        at += n > 0 ? (size_t)n : 0;
        nw_sockbuf_flush(b);
    }
    assert_int_equal(at, junk + 11);
    assert_memory_equal(got + junk, "firstsecond", 11);
    assert_int_equal(nw_sockbuf_pending_out(b), 0);
    free(got);
    nw_sockbuf_destroy(&b);
    close_pair(p);
}

/* A send that fails for good (the peer is gone) is reported by the next
 * write(), as libmosquitto would have seen it. */
static void test_a_failed_send_is_reported_by_the_next_write(void **state)
{
    (void)state;
    struct pair p = make_pair();
    struct nw_sockbuf *b = nw_sockbuf_new();
    nw_sockbuf_begin(b, p.rd);
    assert_int_equal(write(p.rd, "ack", 3), 3);
    close(p.wr);
    p.wr = -1;
    nw_sockbuf_end(b);
    assert_int_equal(nw_sockbuf_pending_out(b), 0);
    errno = 0;
    assert_int_equal(write(p.rd, "more", 4), -1);
    assert_int_equal(errno, EPIPE);
    nw_sockbuf_destroy(&b);
    close_pair(p);
}

static void test_eof_after_the_buffered_bytes(void **state)
{
    (void)state;
    struct pair p = make_pair();
    struct nw_sockbuf *r = nw_sockbuf_new();
    put(p, "last", 4);
    close(p.wr);
    p.wr = -1;
    nw_sockbuf_begin(r, p.rd);
    char got[8];
    assert_int_equal(read(p.rd, got, 2), 2);
    assert_int_equal(read(p.rd, got + 2, 6), 2);
    assert_memory_equal(got, "last", 4);
    assert_int_equal(read(p.rd, got, 1), 0);
    nw_sockbuf_end(r);
    nw_sockbuf_destroy(&r);
    close_pair(p);
}

/* A read as large as the buffer goes to the kernel directly (a big
 * payload is not copied twice) and still sees every byte in order. */
static void test_large_reads_bypass_the_buffer(void **state)
{
    (void)state;
    struct pair p = make_pair();
    int big = 4 * NW_SOCKBUF_IN_CAP;
    assert_int_equal(setsockopt(p.wr, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big)), 0);
    size_t n = NW_SOCKBUF_IN_CAP + 100;
    unsigned char *data = malloc(n), *got = malloc(n);
    assert_non_null(data);
    assert_non_null(got);
    for (size_t i = 0; i < n; i++) {
        data[i] = (unsigned char)(i % 251);
    }
    struct nw_sockbuf *r = nw_sockbuf_new();
    nw_sockbuf_begin(r, p.rd);
    size_t sent = 0, at = 0;
    while (at < n) {
        if (sent < n) {
            ssize_t k = send(p.wr, data + sent, n - sent, MSG_DONTWAIT);
            sent += k > 0 ? (size_t)k : 0;
        }
        ssize_t k = read(p.rd, got + at, n - at);
        if (k > 0) {
            at += (size_t)k;
        } else {
            assert_int_equal(errno, EAGAIN);
        }
    }
    assert_memory_equal(got, data, n);
    assert_int_equal(nw_sockbuf_pending_in(r), 0);
    nw_sockbuf_end(r);
    nw_sockbuf_destroy(&r);
    nw_sockbuf_destroy(&r); /* NULL-safe */
    free(data);
    free(got);
    close_pair(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_kernel_read_serves_small_reads_in_order),
        cmocka_unit_test(test_inactive_or_other_fd_reads_the_kernel),
        cmocka_unit_test(test_other_threads_are_not_served),
        cmocka_unit_test(test_pending_survives_end_and_drops_on_reset),
        cmocka_unit_test(test_eof_after_the_buffered_bytes),
        cmocka_unit_test(test_large_reads_bypass_the_buffer),
        cmocka_unit_test(test_burst_writes_go_out_at_end),
        cmocka_unit_test(test_held_output_keeps_its_order),
        cmocka_unit_test(test_a_failed_send_is_reported_by_the_next_write),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

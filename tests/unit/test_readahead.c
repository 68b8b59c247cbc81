/*
 * test_readahead.c - the buffered read() that lib/mqtt.c puts under
 * libmosquitto: same bytes in the same order as the kernel would give,
 * only for the active fd on the active thread, EAGAIN and EOF unchanged.
 * This program's own read() calls go through the module, as
 * libmosquitto's do in the collector.
 */
#include <needlewatch/readahead.h>

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

/* Bytes the kernel still holds for fd (0 when a read-ahead took them). */
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
    struct nw_readahead *r = nw_readahead_new();
    assert_non_null(r);
    nw_readahead_begin(r, p.rd);
    unsigned char got[sizeof(data)];
    size_t at = 0;
    /* libmosquitto's pattern: 1 byte, 1 byte, the rest of a packet. */
    assert_int_equal(read(p.rd, got + at, 1), 1);
    at += 1;
    assert_int_equal(kernel_holds(p.rd), 0);
    assert_int_equal(nw_readahead_pending(r), sizeof(data) - 1);
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
    assert_int_equal(nw_readahead_pending(r), 0);
    errno = 0;
    assert_int_equal(read(p.rd, got, 1), -1);
    assert_int_equal(errno, EAGAIN);
    nw_readahead_end(r);
    nw_readahead_destroy(&r);
    assert_null(r);
    close_pair(p);
}

static void test_inactive_or_other_fd_reads_the_kernel(void **state)
{
    (void)state;
    struct pair a = make_pair(), b = make_pair();
    struct nw_readahead *r = nw_readahead_new();
    put(a, "hello", 5);
    put(b, "world!", 6);
    char got[16] = {0};
    assert_int_equal(read(a.rd, got, 2), 2); /* no read-ahead active yet */
    assert_int_equal(kernel_holds(a.rd), 3);
    nw_readahead_begin(r, a.rd);
    assert_int_equal(read(b.rd, got, 3), 3); /* another fd */
    assert_memory_equal(got, "wor", 3);
    assert_int_equal(kernel_holds(b.rd), 3);
    assert_int_equal(nw_readahead_pending(r), 0);
    nw_readahead_end(r);
    nw_readahead_destroy(&r);
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

/* The read-ahead is the calling thread's: another thread reading the same
 * fd meanwhile gets the kernel's bytes, and the buffer stays empty. */
static void test_other_threads_are_not_served(void **state)
{
    (void)state;
    struct pair p = make_pair();
    struct nw_readahead *r = nw_readahead_new();
    put(p, "abc", 3);
    nw_readahead_begin(r, p.rd);
    struct thread_arg t = {.fd = p.rd};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, read_in_thread, &t), 0);
    pthread_join(th, NULL);
    assert_int_equal(t.n, 3);
    assert_memory_equal(t.buf, "abc", 3);
    assert_int_equal(nw_readahead_pending(r), 0);
    nw_readahead_end(r);
    nw_readahead_destroy(&r);
    close_pair(p);
}

/* Bytes read ahead stay for the next begin() on the same fd; reset() and a
 * begin() on another fd drop them (they belonged to a lost connection). */
static void test_pending_survives_end_and_drops_on_reset(void **state)
{
    (void)state;
    struct pair p = make_pair(), q = make_pair();
    struct nw_readahead *r = nw_readahead_new();
    put(p, "0123456789", 10);
    nw_readahead_begin(r, p.rd);
    char got[16] = {0};
    assert_int_equal(read(p.rd, got, 1), 1);
    nw_readahead_end(r);
    assert_int_equal(nw_readahead_pending(r), 9);
    errno = 0;
    assert_int_equal(read(p.rd, got, 9), -1); /* inactive: the kernel is empty */
    assert_int_equal(errno, EAGAIN);
    nw_readahead_begin(r, p.rd);
    assert_int_equal(read(p.rd, got, 9), 9);
    assert_memory_equal(got, "123456789", 9);
    put(p, "abcdef", 6);
    assert_int_equal(read(p.rd, got, 2), 2);
    nw_readahead_reset(r);
    assert_int_equal(nw_readahead_pending(r), 0);
    put(p, "xyz", 3);
    assert_int_equal(read(p.rd, got, 3), 3);
    assert_memory_equal(got, "xyz", 3);
    assert_int_equal(nw_readahead_pending(r), 0);
    put(p, "12", 2);
    assert_int_equal(read(p.rd, got, 1), 1);
    nw_readahead_end(r);
    assert_int_equal(nw_readahead_pending(r), 1);
    nw_readahead_begin(r, q.rd);
    assert_int_equal(nw_readahead_pending(r), 0);
    nw_readahead_end(r);
    nw_readahead_destroy(&r);
    close_pair(p);
    close_pair(q);
}

static void test_eof_after_the_buffered_bytes(void **state)
{
    (void)state;
    struct pair p = make_pair();
    struct nw_readahead *r = nw_readahead_new();
    put(p, "last", 4);
    close(p.wr);
    p.wr = -1;
    nw_readahead_begin(r, p.rd);
    char got[8];
    assert_int_equal(read(p.rd, got, 2), 2);
    assert_int_equal(read(p.rd, got + 2, 6), 2);
    assert_memory_equal(got, "last", 4);
    assert_int_equal(read(p.rd, got, 1), 0);
    nw_readahead_end(r);
    nw_readahead_destroy(&r);
    close_pair(p);
}

/* A read as large as the buffer goes to the kernel directly (a big
 * payload is not copied twice) and still sees every byte in order. */
static void test_large_reads_bypass_the_buffer(void **state)
{
    (void)state;
    struct pair p = make_pair();
    int big = 4 * NW_READAHEAD_CAP;
    assert_int_equal(setsockopt(p.wr, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big)), 0);
    size_t n = NW_READAHEAD_CAP + 100;
    unsigned char *data = malloc(n), *got = malloc(n);
    assert_non_null(data);
    assert_non_null(got);
    for (size_t i = 0; i < n; i++) {
        data[i] = (unsigned char)(i % 251);
    }
    struct nw_readahead *r = nw_readahead_new();
    nw_readahead_begin(r, p.rd);
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
    assert_int_equal(nw_readahead_pending(r), 0);
    nw_readahead_end(r);
    nw_readahead_destroy(&r);
    nw_readahead_destroy(&r); /* NULL-safe */
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

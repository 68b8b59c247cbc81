/* test_log.c - exact line format, levels, escaping, syslog datagrams, log-once. */
#include <needlewatch/clock.h>
#include <needlewatch/log.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define T0 1795314780123 /* 2026-11-22T02:33:00.123Z */

static int pipe_fds[2];

/* Each test gets a fresh logger writing into a non-blocking pipe at a frozen time. */
static int setup(void **state)
{
    (void)state;
    if (pipe(pipe_fds) != 0) {
        return -1;
    }
    fcntl(pipe_fds[0], F_SETFL, O_NONBLOCK);
    nw_clock_fake_set(T0, 1000000000);
    nw_log_init("needlewatch-collector", NW_LOG_INFO, NW_LOG_TO_STDERR);
    nw_log_set_output_fd(pipe_fds[1]);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    nw_log_set_output_fd(-1);
    nw_log_shutdown();
    nw_log_set_syslog_path(NULL);
    nw_clock_fake_clear();
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    return 0;
}

/* Everything logged since the last call. */
static const char *drain(void)
{
    static char buf[65536];
    size_t len = 0;
    ssize_t n;
    while ((n = read(pipe_fds[0], buf + len, sizeof(buf) - 1 - len)) > 0) {
        len += (size_t)n;
    }
    buf[len] = '\0';
    return buf;
}

/* The expected line at the (fake) time now, with this process's pid in it. */
static const char *expect(const char *level_module_msg)
{
    static char buf[2048];
    char ts[NW_CLOCK_RFC3339_SIZE];
    nw_clock_format_rfc3339(nw_clock_realtime_ms(), ts);
    snprintf(buf, sizeof(buf), "%s needlewatch-collector[%ld] %s\n", ts, (long)getpid(),
             level_module_msg);
    return buf;
}

static size_t format(char *buf, size_t size, int64_t ms, const char *ident, long pid,
                     enum nw_log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 8, 9)));
static size_t format(char *buf, size_t size, int64_t ms, const char *ident, long pid,
                     enum nw_log_level level, const char *module, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t n = nw_log_format_line(buf, size, ms, ident, pid, level, module, fmt, ap);
    va_end(ap);
    return n;
}

static void test_format_line_exact(void **state)
{
    (void)state;
    char buf[NW_LOG_LINE_MAX];
    size_t n = format(buf, sizeof(buf), T0, "needlewatch-collector", 1234, NW_LOG_WARN, "store",
                      "InfluxDB down: HTTP %d (%s)", 503, "spooling");
    const char *want = "2026-11-22T02:33:00.123Z needlewatch-collector[1234] warn store: "
                       "InfluxDB down: HTTP 503 (spooling)\n";
    assert_string_equal(buf, want);
    assert_int_equal(n, strlen(want));

    format(buf, sizeof(buf), 0, "nw", 1, NW_LOG_DEBUG, NULL, "no module");
    assert_string_equal(buf, "1970-01-01T00:00:00.000Z nw[1] debug no module\n");
    format(buf, sizeof(buf), 0, "nw", 1, NW_LOG_NOTICE, "", "empty module");
    assert_string_equal(buf, "1970-01-01T00:00:00.000Z nw[1] notice empty module\n");
    format(buf, sizeof(buf), INT64_MAX, "nw", 1, NW_LOG_ERROR, "m", "time out of range");
    assert_string_equal(buf, "- nw[1] error m: time out of range\n");
}

static void test_format_line_escapes_control_characters(void **state)
{
    (void)state;
    char buf[NW_LOG_LINE_MAX];
    format(buf, sizeof(buf), 0, "nw", 1, NW_LOG_INFO, "in\ngest", "device %s sent \x1b[31m",
           "a\nb\r\tc\x7f");
    assert_string_equal(buf, "1970-01-01T00:00:00.000Z nw[1] info in\\ngest: device "
                             "a\\nb\\r\tc\\x7f sent \\x1b[31m\n");
}

static void test_format_line_truncates(void **state)
{
    (void)state;
    char big[3000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    char buf[NW_LOG_LINE_MAX];
    size_t n = format(buf, sizeof(buf), 0, "nw", 1, NW_LOG_INFO, "m", "%s", big);
    assert_true(n < NW_LOG_LINE_MAX);
    assert_int_equal(strlen(buf), n);
    assert_memory_equal(buf + n - 4, "...\n", 4);
    assert_memory_equal(buf, "1970-01-01T00:00:00.000Z nw[1] info m: xxx", 41);

    /* Escapes are never cut in half. */
    char ctl[600];
    memset(ctl, '\x01', sizeof(ctl) - 1);
    ctl[sizeof(ctl) - 1] = '\0';
    n = format(buf, sizeof(buf), 0, "nw", 1, NW_LOG_INFO, "m", "%s", ctl);
    assert_memory_equal(buf + n - 8, "\\x01...\n", 8);

    /* A tiny buffer still gets a terminated line. */
    char tiny[16];
    n = format(tiny, sizeof(tiny), 0, "nw", 1, NW_LOG_INFO, "m", "hello");
    assert_int_equal(strlen(tiny), n);
    assert_true(n < sizeof(tiny));
    assert_memory_equal(tiny + n - 4, "...\n", 4);
}

static void test_log_writes_one_exact_line(void **state)
{
    (void)state;
    nw_log(NW_LOG_WARN, "store", "InfluxDB down: HTTP %d (spooling)", 503);
    char want[256];
    snprintf(want, sizeof(want),
             "2026-11-22T02:33:00.123Z needlewatch-collector[%ld] warn store: InfluxDB down: "
             "HTTP 503 (spooling)\n",
             (long)getpid());
    assert_string_equal(drain(), want);
}

static void test_levels_filter(void **state)
{
    (void)state;
    nw_log(NW_LOG_DEBUG, "m", "hidden");
    assert_string_equal(drain(), "");
    nw_log_set_level(NW_LOG_DEBUG);
    assert_true(nw_log_enabled(NW_LOG_DEBUG));
    nw_log(NW_LOG_DEBUG, "m", "shown");
    assert_string_equal(drain(), expect("debug m: shown"));
    nw_log_set_level(NW_LOG_ERROR);
    assert_int_equal(nw_log_get_level(), NW_LOG_ERROR);
    nw_log(NW_LOG_WARN, "m", "hidden");
    nw_log(NW_LOG_ERROR, "m", "shown");
    assert_string_equal(drain(), expect("error m: shown"));
    nw_log_set_level((enum nw_log_level)99); /* ignored */
    assert_int_equal(nw_log_get_level(), NW_LOG_ERROR);
    assert_false(nw_log_enabled((enum nw_log_level) - 1));
}

struct level_case {
    const char *text;
    int level; /* -1: rejected */
};

static void test_level_parse(void **state)
{
    (void)state;
    static const struct level_case cases[] = {
        {"debug", NW_LOG_DEBUG},
        {"info", NW_LOG_INFO},
        {"notice", NW_LOG_NOTICE},
        {"warn", NW_LOG_WARN},
        {"warning", NW_LOG_WARN},
        {"WARN", NW_LOG_WARN},
        {"error", NW_LOG_ERROR},
        {"err", NW_LOG_ERROR},
        {"Error", NW_LOG_ERROR},
        {"", -1},
        {"trace", -1},
        {"warn ", -1},
        {"crit", -1},
        {"3", -1},
    };
    for (size_t i = 0; i < N(cases); i++) {
        enum nw_log_level l = (enum nw_log_level)42;
        struct nw_error err;
        nw_error_clear(&err);
        enum nw_err rc = nw_log_level_parse(cases[i].text, &l, &err);
        if (cases[i].level < 0) {
            assert_int_equal(rc, NW_ERR_CONFIG);
            assert_int_equal(l, 42);
            assert_string_equal(err.msg, "not a log level (debug, info, notice, warn, error)");
        } else {
            assert_int_equal(rc, NW_OK);
            assert_int_equal(l, cases[i].level);
        }
    }
    for (int l = NW_LOG_DEBUG; l <= NW_LOG_ERROR; l++) {
        enum nw_log_level back;
        assert_int_equal(nw_log_level_parse(nw_log_level_name((enum nw_log_level)l), &back, NULL),
                         NW_OK);
        assert_int_equal(back, l);
    }
    assert_string_equal(nw_log_level_name((enum nw_log_level)7), "?");
    assert_string_equal(nw_log_level_words[NW_LOG_NOTICE], "notice");
    assert_null(nw_log_level_words[NW_LOG_ERROR + 1]);
    assert_string_equal(nw_log_dest_words[NW_LOG_TO_SYSLOG], "syslog");
    assert_null(nw_log_dest_words[2]);

    enum nw_log_dest d;
    assert_int_equal(nw_log_dest_parse("syslog", &d, NULL), NW_OK);
    assert_int_equal(d, NW_LOG_TO_SYSLOG);
    assert_int_equal(nw_log_dest_parse("stderr", &d, NULL), NW_OK);
    assert_int_equal(d, NW_LOG_TO_STDERR);
    assert_int_equal(nw_log_dest_parse("file", &d, NULL), NW_ERR_CONFIG);
}

/* A syslog "daemon": a datagram socket bound in $TMPDIR. */
static int bind_dgram(char *path, size_t size)
{
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(path, size, "%s/nwlog-%ld.sock", tmp, (long)getpid());
    unlink(path);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

/* msg is the datagram after "<PRI>ident[pid]: ", pri/ident given separately. */
static void recv_expect(int fd, int pri, const char *msg)
{
    char want[512], got[2048];
    snprintf(want, sizeof(want), "<%d>needlewatch-agent[%ld]: %s", pri, (long)getpid(), msg);
    ssize_t n = recv(fd, got, sizeof(got) - 1, 0);
    assert_true(n > 0);
    got[n] = '\0';
    assert_string_equal(got, want);
}

static void test_syslog_datagrams_and_reconnect(void **state)
{
    (void)state;
    char path[108];
    int daemon = bind_dgram(path, sizeof(path));
    nw_log_set_output_fd(-1);
    assert_int_equal(nw_log_set_syslog_path(path), NW_OK);
    assert_int_equal(nw_log_init("needlewatch-agent", NW_LOG_DEBUG, NW_LOG_TO_SYSLOG), NW_OK);

    nw_log(NW_LOG_WARN, "store", "InfluxDB down: HTTP %d", 503);
    recv_expect(daemon, 28, "warn store: InfluxDB down: HTTP 503");
    nw_log(NW_LOG_DEBUG, NULL, "multi\nline");
    recv_expect(daemon, 31, "debug multi\\nline");
    nw_log(NW_LOG_ERROR, "m", "e");
    recv_expect(daemon, 27, "error m: e");
    nw_log(NW_LOG_INFO, "m", "i");
    recv_expect(daemon, 30, "info m: i");
    nw_log(NW_LOG_NOTICE, "m", "n");
    recv_expect(daemon, 29, "notice m: n");

    /* The syslog daemon restarts: the logger reconnects on the next line. */
    close(daemon);
    unlink(path);
    daemon = bind_dgram(path, sizeof(path));
    nw_log(NW_LOG_WARN, "log", "after restart");
    recv_expect(daemon, 28, "warn log: after restart");

    close(daemon);
    unlink(path);
}

static void test_syslog_unavailable_falls_back_to_stderr(void **state)
{
    (void)state;
    assert_int_equal(nw_log_set_syslog_path("/nonexistent/nw-log.sock"), NW_OK);
    assert_int_equal(nw_log_init("needlewatch-collector", NW_LOG_INFO, NW_LOG_TO_SYSLOG),
                     NW_ERR_IO);
    assert_string_equal(drain(), expect("warn log: syslog socket /nonexistent/nw-log.sock "
                                        "unavailable (No such file or directory); logging to "
                                        "stderr"));
    nw_log(NW_LOG_INFO, "m", "still here");
    assert_string_equal(drain(), expect("info m: still here"));
    char longpath[200];
    memset(longpath, 'a', sizeof(longpath) - 1);
    longpath[sizeof(longpath) - 1] = '\0';
    assert_int_equal(nw_log_set_syslog_path(longpath), NW_ERR_INVAL);
    assert_int_equal(nw_log_init(NULL, NW_LOG_INFO, NW_LOG_TO_STDERR), NW_ERR_INVAL);
}

#define THREADS 8
#define LINES 500

static int shared_fd;

static void *log_thread(void *arg)
{
    long id = (long)(intptr_t)arg;
    for (int i = 0; i < LINES; i++) {
        nw_log(NW_LOG_INFO, "thread", "t%ld line %d %s", id, i,
               "padding-padding-padding-padding-padding-padding-padding-padding-padding");
    }
    return NULL;
}

/* Lines from many threads into one O_APPEND file never interleave. */
static void test_threads_never_interleave(void **state)
{
    (void)state;
    char path[256];
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(path, sizeof(path), "%s/nwlog-XXXXXX", tmp);
    shared_fd = mkstemp(path);
    assert_true(shared_fd >= 0);
    fcntl(shared_fd, F_SETFL, O_APPEND);
    nw_log_set_output_fd(shared_fd);
    pthread_t th[THREADS];
    for (long i = 0; i < THREADS; i++) {
        pthread_create(&th[i], NULL, log_thread, (void *)(intptr_t)i);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
    }
    nw_log_set_output_fd(pipe_fds[1]);

    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[NW_LOG_LINE_MAX + 2];
    int count = 0;
    int seen[THREADS] = {0};
    while (fgets(line, sizeof(line), f)) {
        long id;
        int n;
        char pad[100];
        const char *body = strstr(line, " info thread: ");
        assert_non_null(body);
        assert_int_equal(sscanf(body, " info thread: t%ld line %d %99s", &id, &n, pad), 3);
        assert_true(id >= 0 && id < THREADS);
        assert_int_equal(n, seen[id]++); /* each thread's lines in its own order */
        count++;
    }
    fclose(f);
    close(shared_fd);
    unlink(path);
    assert_int_equal(count, THREADS * LINES);
}

static void test_logonce_first_full_then_summaries(void **state)
{
    (void)state;
    static const char *const reasons[] = {"bad_device_id", "too_big"};
    struct nw_logonce *lo =
        nw_logonce_new(NW_LOG_WARN, "ingest", "rejected", "messages", reasons, 2, 10000);
    assert_non_null(lo);

    nw_logonce_hit(lo, 0, "device id \"%s\" has invalid characters", "a b");
    assert_string_equal(drain(), expect("warn ingest: rejected (bad_device_id): device id "
                                        "\"a b\" has invalid characters"));
    for (int i = 0; i < 1233; i++) {
        nw_clock_fake_advance_ms(5);
        nw_logonce_hit(lo, 0, "detail %d", i);
    }
    assert_string_equal(drain(), ""); /* 6.2 s: still inside the interval */
    nw_clock_fake_advance_ms(3835);   /* 10.000 s after the first line */
    nw_logonce_hit(lo, 0, "the 1234th");
    assert_string_equal(drain(), expect("warn ingest: rejected 1234 more messages: "
                                        "bad_device_id (last 10 s)"));
    assert_int_equal(nw_logonce_total(lo, 0), 1235);

    /* Reasons are independent. */
    nw_logonce_hit(lo, 1, "%d bytes", 70000);
    assert_string_equal(drain(), expect("warn ingest: rejected (too_big): 70000 bytes"));

    /* Quiet: flush reports nothing until something is pending. */
    nw_logonce_flush(lo, false);
    assert_string_equal(drain(), "");
    nw_clock_fake_advance_ms(1000);
    nw_logonce_hit(lo, 0, "x");
    nw_logonce_hit(lo, 0, "y");
    nw_logonce_flush(lo, false);
    assert_string_equal(drain(), "");
    nw_clock_fake_advance_ms(9000);
    nw_logonce_flush(lo, false);
    assert_string_equal(drain(), expect("warn ingest: rejected 2 more messages: bad_device_id "
                                        "(last 10 s)"));

    /* After a whole quiet interval the detail is logged again. */
    nw_clock_fake_advance_ms(10000);
    nw_logonce_hit(lo, 0, "device id \"%s\" too long", "zzz");
    assert_string_equal(drain(), expect("warn ingest: rejected (bad_device_id): device id "
                                        "\"zzz\" too long"));

    /* force flushes the tail at shutdown. */
    nw_logonce_hit(lo, 1, "a");
    assert_string_equal(drain(), expect("warn ingest: rejected (too_big): a"));
    nw_logonce_hit(lo, 1, "b");
    nw_logonce_hit(lo, 1, "c");
    nw_clock_fake_advance_ms(2500);
    nw_logonce_flush(lo, true);
    assert_string_equal(drain(), expect("warn ingest: rejected 2 more messages: too_big "
                                        "(last 3 s)"));

    /* Out-of-range reasons and NULL are ignored. */
    nw_logonce_hit(lo, 2, "ignored");
    nw_logonce_hit(NULL, 0, "ignored");
    nw_logonce_flush(NULL, true);
    assert_int_equal(nw_logonce_total(lo, 2), 0);
    assert_string_equal(drain(), "");
    nw_logonce_destroy(&lo);
    assert_null(lo);
    nw_logonce_destroy(&lo);
}

static void test_logonce_counts_below_level(void **state)
{
    (void)state;
    static const char *const reasons[] = {"r"};
    struct nw_logonce *lo = nw_logonce_new(NW_LOG_DEBUG, "m", "dropped", "lines", reasons, 1, 1);
    nw_logonce_hit(lo, 0, "x");
    nw_logonce_hit(lo, 0, "x");
    assert_string_equal(drain(), "");
    assert_int_equal(nw_logonce_total(lo, 0), 2);
    nw_logonce_destroy(&lo);

    assert_null(nw_logonce_new(NW_LOG_WARN, "m", "w", "n", reasons, 0, 1000));
    assert_null(nw_logonce_new(NW_LOG_WARN, "m", "w", "n", reasons, 1, 0));
    assert_null(nw_logonce_new(NW_LOG_WARN, "m", NULL, "n", reasons, 1, 1000));
    assert_null(nw_logonce_new(NW_LOG_WARN, "m", "w", "n", reasons, 65, 1000));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_line_exact),
        cmocka_unit_test(test_format_line_escapes_control_characters),
        cmocka_unit_test(test_format_line_truncates),
        cmocka_unit_test_setup_teardown(test_log_writes_one_exact_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_levels_filter, setup, teardown),
        cmocka_unit_test(test_level_parse),
        cmocka_unit_test_setup_teardown(test_syslog_datagrams_and_reconnect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_syslog_unavailable_falls_back_to_stderr, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_threads_never_interleave, setup, teardown),
        cmocka_unit_test_setup_teardown(test_logonce_first_full_then_summaries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_logonce_counts_below_level, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

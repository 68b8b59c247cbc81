/* Unit tests of agent/source.c: the line format and the three sources. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "source.h"

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static void samples_and_events_parse(void **state)
{
    (void)state;
    struct agent_input in;
    struct nw_error err = {0};
    assert_int_equal(agent_line_parse("2026-11-22T10:00:00.120Z,121.5,0.38,0.0012\n", &in, &err),
                     NW_OK);
    assert_int_equal(in.kind, AGENT_INPUT_SAMPLE);
    assert_int_equal(in.sample.t_ms, 1795341600120LL);
    assert_true(in.sample.rate_hz == 121.5 && in.sample.depth_mm == 0.38);
    assert_int_equal(agent_line_parse("1795341600120,0,0,0\r\n", &in, &err), NW_OK);
    assert_int_equal(in.sample.t_ms, 1795341600120LL);

    assert_int_equal(
        agent_line_parse("1795341600120,event,session_start,session_id=s-9,operator=OP-2", &in,
                         &err),
        NW_OK);
    assert_int_equal(in.kind, AGENT_INPUT_EVENT);
    assert_int_equal(in.event.kind, NW_EVENT_SESSION_START);
    assert_string_equal(in.event.session_id, "s-9");
    assert_string_equal(in.event.operator_code, "OP-2");

    assert_int_equal(
        agent_line_parse("1795341600120,event,fault,code=4101,text=stall, at 0.4 mm = bad", &in,
                         &err),
        NW_OK);
    assert_int_equal(in.event.fault_code, 4101);
    assert_string_equal(in.event.text, "stall, at 0.4 mm = bad");

    assert_int_equal(
        agent_line_parse("1,event,session_end,session_id=s-9,reason=power_loss", &in, &err), NW_OK);
    assert_int_equal(in.event.end_reason, NW_SESSION_END_POWER_LOSS);
    assert_int_equal(
        agent_line_parse("1,event,maintenance,action=service,resets_service=true", &in, &err),
        NW_OK);
    assert_true(in.event.resets_service);
    assert_int_equal(
        agent_line_parse("1,event,pigment_loaded,lot=L1,shade=Noir 2,volume_ul=250", &in, &err),
        NW_OK);
    assert_true(in.event.volume_ul == 250.0);

    static const char *const skipped[] = {"", "# a comment", "time,rate_hz,depth_mm,pigment_ul"};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(agent_line_parse(skipped[i], &in, &err), NW_OK);
        assert_int_equal(in.kind, AGENT_INPUT_NONE);
    }
}

static void bad_lines_are_refused_with_a_reason(void **state)
{
    (void)state;
    static const struct {
        const char *line, *msg;
    } bad[] = {
        {"yesterday,120,0.4,0", "neither RFC 3339"},
        {"1,120,0.4", "expected TIME,RATE_HZ"},
        {"1,120,0.4,0,9", "expected TIME,RATE_HZ"},
        {"1,fast,0.4,0", "rate_hz \"fast\": not a number"},
        {"1,120,0.4,1e999", "pigment_ul"},
        {"12345", "expected TIME"},
        {"1,event,explode", "event kind \"explode\" unknown"},
        {"1,event,session_start,session_id", "expected key=value"},
        {"1,event,session_start,cartridge_id=C1", "not valid for session_start"},
        {"1,event,session_end,session_id=s,reason=bored", "expected normal"},
        {"1,event,fault,code=-1", "not a 32-bit code"},
        {"1,event,fault,code=1.5", "not a 32-bit code"},
        {"1,event,maintenance,resets_service=maybe", "true or false"},
        {"1,event,session_start,session_id=0123456789012345678901234567890123456789012345678901"
         "234567890123456789",
         "longer than 64 bytes"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct agent_input in;
        struct nw_error err = {0};
        assert_int_equal(agent_line_parse(bad[i].line, &in, &err), NW_ERR_INVALID);
        assert_int_equal(in.kind, AGENT_INPUT_NONE);
        if (!strstr(err.msg, bad[i].msg)) {
            fail_msg("\"%s\": message \"%s\" lacks \"%s\"", bad[i].line, err.msg, bad[i].msg);
        }
    }
    char longline[AGENT_LINE_MAX + 50];
    memset(longline, '1', sizeof(longline) - 1);
    longline[sizeof(longline) - 1] = '\0';
    struct agent_input in;
    struct nw_error err = {0};
    assert_int_equal(agent_line_parse(longline, &in, &err), NW_ERR_INVALID);
    assert_non_null(strstr(err.msg, "longer than"));
}

static char tmpdir[256];

static int mk_tmp(void **state)
{
    (void)state;
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof(tmpdir), "%s/nw-src-XXXXXX", t ? t : "/tmp");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int rm_tmp(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd);
}

static char errors[4][256];

/* Collects items until NONE/END, at most max; keeps the first 4 errors. */
static size_t drain(struct agent_source *s, struct agent_input *items, size_t max, size_t *bad,
                    bool *ended)
{
    size_t n = 0;
    for (int guard = 0; guard < 10000 && n < max; guard++) {
        struct nw_error err = {0};
        struct agent_input in;
        enum nw_err rc = agent_source_next(s, 0, &in, &err);
        if (rc == NW_ERR_INVALID) {
            if (*bad < 4) {
                memcpy(errors[*bad], err.msg, sizeof(errors[0]));
            }
            (*bad)++;
            continue;
        }
        assert_int_equal(rc, NW_OK);
        if (in.kind == AGENT_INPUT_END) {
            *ended = true;
            break;
        }
        if (in.kind == AGENT_INPUT_NONE) {
            break;
        }
        items[n++] = in;
    }
    return n;
}

static void replay_reads_to_the_end_skipping_bad_lines(void **state)
{
    (void)state;
    char path[320], spec[340];
    snprintf(path, sizeof(path), "%s/rec.csv", tmpdir);
    FILE *f = fopen(path, "w");
    fputs("time,rate_hz,depth_mm,pigment_ul\n1000,120,0.4,0\n", f);
    fputs("1100,event,cartridge_inserted,cartridge_id=C-1,needle_config=3RL,lot=L\n", f);
    fputs("garbage\n", f);
    for (int i = 0; i < AGENT_LINE_MAX + 10; i++) {
        fputc('9', f); /* one overlong line */
    }
    fputs("\n1200,121,0.41,0.001\n", f);
    fclose(f);
    snprintf(spec, sizeof(spec), "replay:%s", path);
    struct agent_source *s = NULL;
    struct nw_error err = {0};
    assert_int_equal(agent_source_open(spec, NULL, &s, &err), NW_OK);
    assert_int_equal(agent_source_fd(s), -1);
    struct agent_input items[8];
    size_t bad = 0;
    bool ended = false;
    size_t n = drain(s, items, 8, &bad, &ended);
    assert_true(ended);
    assert_int_equal(n, 3);
    assert_int_equal(bad, 2);
    assert_int_equal(agent_source_rejected(s), 2);
    assert_non_null(strstr(errors[0], "replay line 4: expected TIME"));
    assert_non_null(strstr(errors[1], "replay line 5: longer than"));
    assert_int_equal(items[1].event.kind, NW_EVENT_CARTRIDGE_INSERTED);
    assert_int_equal(items[2].sample.t_ms, 1200);
    agent_source_destroy(&s);
    assert_null(s);
    assert_int_equal(agent_source_open("replay:/nonexistent/x", NULL, &s, &err), NW_ERR_CONFIG);
    assert_int_equal(agent_source_open("telepathy", NULL, &s, &err), NW_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "expected sim, replay:FILE or pipe:PATH"));
}

static void fifo_survives_writers_coming_and_going(void **state)
{
    (void)state;
    char path[320], spec[340];
    snprintf(path, sizeof(path), "%s/fifo", tmpdir);
    assert_int_equal(mkfifo(path, 0600), 0);
    snprintf(spec, sizeof(spec), "pipe:%s", path);
    struct agent_source *s = NULL;
    struct nw_error err = {0};
    assert_int_equal(agent_source_open(spec, NULL, &s, &err), NW_OK);
    assert_true(agent_source_fd(s) >= 0);
    struct agent_input items[8];
    for (int writer = 0; writer < 3; writer++) {
        int w = open(path, O_WRONLY);
        assert_true(w >= 0);
        const char *text = "5000,120,0.4,0\n5100,1";
        assert_int_equal(write(w, text, strlen(text)), (ssize_t)strlen(text));
        assert_int_equal(write(w, "21,0.4,0\n", 9), 9); /* a line split over two writes */
        close(w);                                       /* the writer goes away */
        size_t bad = 0;
        bool ended = false;
        size_t n = drain(s, items, 8, &bad, &ended);
        assert_int_equal(n, 2);
        assert_false(ended);
        assert_true(items[1].sample.rate_hz == 121.0);
    }
    agent_source_destroy(&s);
}

static void socket_accepts_one_writer_after_another(void **state)
{
    (void)state;
    char path[320], spec[340];
    snprintf(path, sizeof(path), "%s/sock", tmpdir);
    snprintf(spec, sizeof(spec), "pipe:%s", path);
    struct agent_source *s = NULL;
    struct nw_error err = {0};
    assert_int_equal(agent_source_open(spec, NULL, &s, &err), NW_OK);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    assert_true(strlen(path) < sizeof(addr.sun_path));
    memcpy(addr.sun_path, path, strlen(path) + 1);
    struct agent_input items[8];
    for (int writer = 0; writer < 2; writer++) {
        int c = socket(AF_UNIX, SOCK_STREAM, 0);
        assert_int_equal(connect(c, (struct sockaddr *)&addr, sizeof(addr)), 0);
        const char *text = "# firmware 2.4\n7000,130,0.45,0.002\n";
        assert_int_equal(write(c, text, strlen(text)), (ssize_t)strlen(text));
        size_t bad = 0, n = 0;
        bool ended = false;
        for (int i = 0; i < 100 && n == 0; i++) { /* accept, then read */
            n = drain(s, items, 8, &bad, &ended);
            usleep(1000);
        }
        assert_int_equal(n, 1);
        assert_true(items[0].sample.rate_hz == 130.0);
        close(c);
        for (int i = 0; i < 5; i++) {
            drain(s, items, 8, &bad, &ended); /* sees EOF, listens again */
        }
    }
    agent_source_destroy(&s);
    struct stat st;
    assert_int_not_equal(stat(path, &st), 0); /* socket file removed */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(samples_and_events_parse),
        cmocka_unit_test(bad_lines_are_refused_with_a_reason),
        cmocka_unit_test_setup_teardown(replay_reads_to_the_end_skipping_bad_lines, mk_tmp, rm_tmp),
        cmocka_unit_test_setup_teardown(fifo_survives_writers_coming_and_going, mk_tmp, rm_tmp),
        cmocka_unit_test_setup_teardown(socket_accepts_one_writer_after_another, mk_tmp, rm_tmp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

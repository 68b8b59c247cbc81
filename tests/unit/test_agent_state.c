/* Unit tests of agent/state.c: epoch, seq leases across restarts and reboots. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "state.h"

#include <needlewatch/dq.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[256];

static int setup(void **state)
{
    (void)state;
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/nw-state-XXXXXX", tmp ? tmp : "/tmp");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, AGENT_STATE_FILE);
    unlink(path);
    return rmdir(dir);
}

/* Writes a state file as if an earlier boot (boot id "earlier-boot") had. */
static void write_state(const char *device, uint64_t epoch, uint64_t wlease, uint64_t elease)
{
    char body[512], path[512];
    int n = snprintf(body, sizeof(body),
                     "needlewatch-agent-state 1\ndevice=%s\nepoch=%016" PRIx64
                     "\nwindow_lease=%" PRIu64 "\nevent_lease=%" PRIu64
                     "\nboot_id=earlier-boot\nodometer_cycles=77\nrunning_ms=9000\n",
                     device, epoch, wlease, elease);
    n += snprintf(body + n, sizeof(body) - (size_t)n, "crc=%08" PRIx32 "\n",
                  nw_dq_crc32c(0, body, (size_t)n));
    snprintf(path, sizeof(path), "%s/%s", dir, AGENT_STATE_FILE);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(body, 1, (size_t)n, f), (size_t)n);
    fclose(f);
}

static void new_state_then_plain_restart(void **state)
{
    (void)state;
    struct agent_state *s = NULL;
    struct nw_error err = {0};
    assert_int_equal(agent_state_open(dir, "DG-1", &s, &err), NW_OK);
    assert_true(agent_state_is_new(s));
    assert_false(agent_state_rebooted(s));
    uint64_t epoch = agent_state_epoch(s), next = 0;
    assert_int_not_equal(epoch, 0);
    assert_int_equal(agent_state_resume_seq(s, AGENT_SEQ_WINDOW, 0, false, &next, &err), NW_OK);
    assert_int_equal(next, 1);
    agent_state_add_running(s, 1200, 10000);
    agent_state_close(&s);
    assert_null(s);

    /* kill -9 style restart on the same boot: resume right after the queue */
    assert_int_equal(agent_state_open(dir, "DG-1", &s, &err), NW_OK);
    assert_false(agent_state_is_new(s));
    assert_false(agent_state_rebooted(s));
    assert_int_equal(agent_state_epoch(s), epoch);
    assert_int_equal(agent_state_odometer_cycles(s), 1200);
    assert_int_equal(agent_state_running_s(s), 10);
    assert_int_equal(agent_state_resume_seq(s, AGENT_SEQ_WINDOW, 500, false, &next, &err), NW_OK);
    assert_int_equal(next, 501);
    agent_state_close(&s);
}

static void reboot_resumes_at_the_lease(void **state)
{
    (void)state;
    write_state("DG-2", 0xabcdef, 2048, 1500);
    struct agent_state *s = NULL;
    struct nw_error err = {0};
    uint64_t next = 0;
    assert_int_equal(agent_state_open(dir, "DG-2", &s, &err), NW_OK);
    assert_true(agent_state_rebooted(s));
    assert_int_equal(agent_state_epoch(s), 0xabcdef);
    /* the queue lost its tail in the power cut: skip to the lease */
    assert_int_equal(agent_state_resume_seq(s, AGENT_SEQ_WINDOW, 1900, false, &next, &err), NW_OK);
    assert_int_equal(next, 2048);
    /* the event resume after that save still knows it was a reboot */
    assert_int_equal(agent_state_resume_seq(s, AGENT_SEQ_EVENT, 10, false, &next, &err), NW_OK);
    assert_int_equal(next, 1500);
    agent_state_close(&s);

    write_state("DG-2", 0xabcdef, 2048, 1500);
    assert_int_equal(agent_state_open(dir, "DG-2", &s, &err), NW_OK);
    /* a queue that fsyncs every append is exact: no gap */
    assert_int_equal(agent_state_resume_seq(s, AGENT_SEQ_WINDOW, 1900, true, &next, &err), NW_OK);
    assert_int_equal(next, 1901);
    agent_state_close(&s);
}

static void lease_is_extended_durably(void **state)
{
    (void)state;
    write_state("DG-3", 1, 10, 10);
    struct agent_state *s = NULL;
    struct nw_error err = {0};
    uint64_t next = 0;
    assert_int_equal(agent_state_open(dir, "DG-3", &s, &err), NW_OK);
    assert_int_equal(agent_state_use_seq(s, AGENT_SEQ_WINDOW, 9, &err), NW_OK);
    assert_int_equal(agent_state_use_seq(s, AGENT_SEQ_WINDOW, 10, &err), NW_OK);
    agent_state_close(&s);
    /* pretend a power cut right after: the new lease must be on disk */
    char path[512], body[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, AGENT_STATE_FILE);
    FILE *f = fopen(path, "r");
    size_t n = fread(body, 1, sizeof(body) - 1, f);
    fclose(f);
    body[n] = '\0';
    char want[64];
    snprintf(want, sizeof(want), "window_lease=%d\n", 10 + AGENT_SEQ_LEASE_BLOCK);
    assert_non_null(strstr(body, want));
    write_state("DG-3", 1, 10 + AGENT_SEQ_LEASE_BLOCK, 10);
    assert_int_equal(agent_state_open(dir, "DG-3", &s, &err), NW_OK);
    assert_int_equal(agent_state_resume_seq(s, AGENT_SEQ_WINDOW, 3, false, &next, &err), NW_OK);
    assert_true(next > 10);
    agent_state_close(&s);
}

static void damaged_or_foreign_files_are_errors(void **state)
{
    (void)state;
    struct agent_state *s = NULL;
    struct nw_error err = {0};
    write_state("DG-4", 1, 10, 10);
    assert_int_equal(agent_state_open(dir, "DG-5", &s, &err), NW_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "belongs to device \"DG-4\""));
    assert_null(s);

    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, AGENT_STATE_FILE);
    FILE *f = fopen(path, "r+");
    fseek(f, 40, SEEK_SET);
    fputc('9', f); /* flip a digit of the epoch */
    fclose(f);
    assert_int_equal(agent_state_open(dir, "DG-4", &s, &err), NW_ERR_CORRUPT);
    assert_non_null(strstr(err.msg, "checksum mismatch"));

    f = fopen(path, "w");
    fputs("hello\n", f);
    fclose(f);
    assert_int_equal(agent_state_open(dir, "DG-4", &s, &err), NW_ERR_CORRUPT);
    assert_non_null(strstr(err.msg, "not an agent state file"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(new_state_then_plain_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(reboot_resumes_at_the_lease, setup, teardown),
        cmocka_unit_test_setup_teardown(lease_is_extended_durably, setup, teardown),
        cmocka_unit_test_setup_teardown(damaged_or_foreign_files_are_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests of collector/cartidx.c: a cartridge id is global across
 * devices, shards (two handles on one file) and restarts (reopen). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "cartidx.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char path[256];

static int setup(void **state)
{
    (void)state;
    snprintf(path, sizeof(path), "/tmp/nw-cartidx-test-%d.db", (int)getpid());
    unlink(path);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char p[300];
    unlink(path);
    snprintf(p, sizeof(p), "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof(p), "%s-shm", path);
    unlink(p);
    return 0;
}

static void reuse_across_sessions_devices_shards_and_restarts(void **state)
{
    (void)state;
    struct cartidx *a = NULL, *b = NULL;
    struct nw_error err = {0};
    assert_int_equal(cartidx_open(path, &a, &err), NW_OK);
    assert_int_equal(cartidx_open(path, &b, &err), NW_OK); /* another shard */
    char where[160];
    assert_false(cartidx_check(a, "CRT-1", "DEV-1", "s-1", 1000, where, sizeof(where)));
    assert_false(cartidx_check(a, "CRT-1", "DEV-1", "s-1", 2000, where, sizeof(where)));
    /* a second session on the same device */
    assert_true(cartidx_check(a, "CRT-1", "DEV-1", "s-2", 3000, where, sizeof(where)));
    assert_string_equal(where, "device DEV-1, session s-1");
    /* another device, through the other shard's handle */
    assert_true(cartidx_check(b, "CRT-1", "DEV-2", "s-9", 4000, where, sizeof(where)));
    /* inserted outside a session, then the session starts: one use */
    assert_false(cartidx_check(b, "CRT-2", "DEV-2", "", 5000, where, sizeof(where)));
    assert_false(cartidx_check(b, "CRT-2", "DEV-2", "s-10", 5001, where, sizeof(where)));
    assert_true(cartidx_check(b, "CRT-2", "DEV-2", "s-11", 9000, where, sizeof(where)));
    cartidx_close(&a);
    cartidx_close(&b);
    assert_null(a);
    /* a restart remembers */
    assert_int_equal(cartidx_open(path, &a, &err), NW_OK);
    assert_true(cartidx_check(a, "CRT-1", "DEV-3", "s-20", 10000, where, sizeof(where)));
    assert_false(cartidx_check(a, "CRT-3", "DEV-3", "s-20", 10000, where, sizeof(where)));
    assert_int_equal(cartidx_errors(a), 0);
    cartidx_close(&a);
}

static void unopenable_path_is_an_error(void **state)
{
    (void)state;
    struct cartidx *a = NULL;
    struct nw_error err = {0};
    assert_int_equal(cartidx_open("/nonexistent-dir/x/cart.db", &a, &err), NW_ERR_IO);
    assert_null(a);
    assert_non_null(strstr(err.msg, "cartridge index"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(reuse_across_sessions_devices_shards_and_restarts, setup,
                                        teardown),
        cmocka_unit_test(unopenable_path_is_an_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

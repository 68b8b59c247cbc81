/* Unit tests of collector/inventory.c. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "inventory.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char path[256];

static enum nw_err load_text(const char *text, struct nw_inventory **inv, struct nw_error *err)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(path, sizeof(path), "%s/nw-inv-XXXXXX", tmp ? tmp : "/tmp");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    enum nw_err rc = nw_inventory_load(path, inv, err);
    unlink(path);
    return rc;
}

static void loads_quoted_csv(void **state)
{
    (void)state;
    struct nw_inventory *inv = NULL;
    struct nw_error err = {0};
    assert_int_equal(load_text("device,clinic,model\r\n"
                               "# fleet of the south\n"
                               "DG3-0042,\"Clínica São Paulo, Unit 2\",DG-3\n"
                               "\n"
                               "DG3-0043,\"The \"\"Ink\"\" Room\",DG-3X\n"
                               "DG3-0044,Plain Clinic,DG-3",
                               &inv, &err),
                     NW_OK);
    assert_int_equal(nw_inventory_count(inv), 3);
    const struct nw_inventory_entry *e = nw_inventory_find(inv, "DG3-0042");
    assert_non_null(e);
    assert_string_equal(e->clinic, "Clínica São Paulo, Unit 2");
    assert_string_equal(e->model, "DG-3");
    assert_string_equal(nw_inventory_find(inv, "DG3-0043")->clinic, "The \"Ink\" Room");
    assert_string_equal(nw_inventory_find(inv, "DG3-0044")->clinic, "Plain Clinic");
    assert_null(nw_inventory_find(inv, "DG3-9999"));
    nw_inventory_destroy(&inv);
    assert_null(inv);
    struct nw_inventory *empty = nw_inventory_empty();
    assert_null(nw_inventory_find(empty, "DG3-0042"));
    nw_inventory_destroy(&empty);
}

static void refuses_bad_files_with_line_and_reason(void **state)
{
    (void)state;
    static const struct {
        const char *text, *msg;
    } bad[] = {
        {"", "empty"},
        {"id,clinic,model\n", ":1: expected the header"},
        {"device,clinic,model\nbad id,C,DG-3\n", ":2: device id needs"},
        {"device,clinic,model\nD1,C,DG-3\nD1,C,DG-3\n", ":3: device listed twice \"D1\""},
        {"device,clinic,model\nD1,\"C,DG-3\n", ":2: unterminated quote"},
        {"device,clinic,model\nD1,C,DG-3,extra\n", ":2: expected 3 fields"},
        {"device,clinic,model\nD1,C\n", ":2: expected 3 fields"},
        {"device,clinic,model\nD1,\"C\"x,DG-3\n", ":2: text after a closing quote"},
        {"device,clinic,model\nD1,Tab\there,DG-3\n", ":2: clinic must be"},
        {"device,clinic,model\nD1,,DG-3\n", ":2: clinic must be"},
        {"device,clinic,model\nD1,C,DG 3\n", ":2: model needs"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct nw_inventory *inv = NULL;
        struct nw_error err = {0};
        assert_int_equal(load_text(bad[i].text, &inv, &err), NW_ERR_CONFIG);
        assert_null(inv);
        if (!strstr(err.msg, bad[i].msg)) {
            fail_msg("row %zu: \"%s\" lacks \"%s\"", i, err.msg, bad[i].msg);
        }
    }
    struct nw_inventory *inv = NULL;
    struct nw_error err = {0};
    assert_int_equal(nw_inventory_load("/nonexistent/inventory.csv", &inv, &err), NW_ERR_NOT_FOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(loads_quoted_csv),
        cmocka_unit_test(refuses_bad_files_with_line_and_reason),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests of collector/pointbuf.c: compact points in, the same points
 * out, in order, through adds, partial drops and releases. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "pointbuf.h"

#include <stdio.h>
#include <string.h>

/* A point of kind k whose fields say which one it is (i). */
static void make(struct nw_point *p, enum nw_point_kind k, int i)
{
    memset(p, 0, sizeof(*p));
    p->kind = k;
    snprintf(p->device, sizeof(p->device), "DEV-%d", i);
    p->epoch = (uint64_t)i;
    if (k == NW_POINT_WINDOW) {
        p->u.window.w.seq = (uint64_t)i;
        p->u.window.w.start_ms = 1000 * i;
        snprintf(p->u.window.w.pigment_lot, sizeof(p->u.window.w.pigment_lot), "LOT-%d", i);
    } else if (k == NW_POINT_EVENT) {
        p->u.event.seq = (uint64_t)i;
        snprintf(p->u.event.text, sizeof(p->u.event.text), "text %d", i);
    } else if (k == NW_POINT_ALERT) {
        p->u.alert.time_ms = i;
    }
}

static void check(const struct nw_point *p, int i)
{
    char dev[32];
    snprintf(dev, sizeof(dev), "DEV-%d", i);
    assert_string_equal(p->device, dev);
    assert_int_equal(p->epoch, i);
    if (p->kind == NW_POINT_WINDOW) {
        char lot[32];
        snprintf(lot, sizeof(lot), "LOT-%d", i);
        assert_int_equal(p->u.window.w.seq, i);
        assert_int_equal(p->u.window.w.start_ms, 1000 * i);
        assert_string_equal(p->u.window.w.pigment_lot, lot);
    } else if (p->kind == NW_POINT_EVENT) {
        char text[32];
        snprintf(text, sizeof(text), "text %d", i);
        assert_int_equal(p->u.event.seq, i);
        assert_string_equal(p->u.event.text, text);
    }
}

static void sizes_are_compact(void **state)
{
    (void)state;
    assert_true(nw_point_size(NW_POINT_WINDOW) * 10 < sizeof(struct nw_point) * 6);
    assert_true(nw_point_size(NW_POINT_EVENT) <= sizeof(struct nw_point));
    assert_int_equal(nw_point_size(NW_POINT_WINDOW) % 8, 0);
    assert_true(nw_point_size(NW_POINT_WINDOW) >=
                offsetof(struct nw_point, u) + sizeof(((struct nw_point *)0)->u.window));
    assert_int_equal(nw_point_size((enum nw_point_kind)99), sizeof(struct nw_point));
}

/* Mixed kinds in, a partial drop (as after a store write that settled only
 * the first points), more in: every point reads back whole, in order. */
static void add_drop_add_keeps_order(void **state)
{
    (void)state;
    struct nw_pointbuf *b = nw_pointbuf_new(100, 100 * sizeof(struct nw_point));
    assert_non_null(b);
    struct nw_point in[30];
    for (int i = 0; i < 30; i++) {
        make(&in[i], i % 7 == 3 ? NW_POINT_EVENT : (i % 11 == 5 ? NW_POINT_ALERT : NW_POINT_WINDOW),
             i);
    }
    assert_true(nw_pointbuf_add(b, in, 20));
    assert_int_equal(nw_pointbuf_count(b), 20);
    assert_int_equal(nw_pointbuf_bytes(b), nw_pointbuf_bytes_of(in, 20));
    assert_true(nw_pointbuf_bytes(b) < 20 * sizeof(struct nw_point));
    nw_pointbuf_drop_front(b, 7);
    assert_int_equal(nw_pointbuf_count(b), 13);
    assert_int_equal(nw_pointbuf_bytes(b), nw_pointbuf_bytes_of(in + 7, 13));
    assert_true(nw_pointbuf_add(b, in + 20, 10));
    const struct nw_point *const *p = nw_pointbuf_points(b);
    for (int i = 0; i < 23; i++) {
        assert_int_equal(p[i]->kind, in[i + 7].kind);
        check(p[i], i + 7);
    }
    nw_pointbuf_drop_front(b, 100); /* more than held: all */
    assert_int_equal(nw_pointbuf_count(b), 0);
    assert_int_equal(nw_pointbuf_bytes(b), 0);
    nw_pointbuf_destroy(&b);
    assert_null(b);
}

/* The bounds: points, caller's limit, bytes; a refused add changes nothing. */
static void bounds(void **state)
{
    (void)state;
    size_t wsz = nw_point_size(NW_POINT_WINDOW);
    struct nw_pointbuf *b = nw_pointbuf_new(10, 6 * wsz);
    assert_non_null(b);
    struct nw_point in[12];
    for (int i = 0; i < 12; i++) {
        make(&in[i], NW_POINT_WINDOW, i);
    }
    assert_true(nw_pointbuf_fits(b, 6, 6 * wsz, 10));
    assert_false(nw_pointbuf_fits(b, 6, 6 * wsz, 5));  /* the caller's limit */
    assert_false(nw_pointbuf_fits(b, 7, 7 * wsz, 10)); /* bytes */
    assert_false(nw_pointbuf_add(b, in, 7));
    assert_int_equal(nw_pointbuf_count(b), 0);
    assert_true(nw_pointbuf_add(b, in, 6));
    assert_false(nw_pointbuf_add(b, in + 6, 1));
    assert_int_equal(nw_pointbuf_count(b), 6);
    struct nw_point ev;
    make(&ev, NW_POINT_EVENT, 40);
    nw_pointbuf_drop_front(b, 1);
    assert_false(nw_pointbuf_add(b, &ev, 1)); /* an event needs more than one window's room */
    assert_true(nw_pointbuf_add(b, in + 6, 1));
    check(nw_pointbuf_points(b)[5], 6);
    nw_pointbuf_destroy(&b);
    assert_null(nw_pointbuf_new(0, 100));
    assert_null(nw_pointbuf_new(10, 0));
}

/* Release gives pages back only when empty; the buffer works after it. */
static void release_when_empty(void **state)
{
    (void)state;
    size_t n = 4000;
    struct nw_pointbuf *b = nw_pointbuf_new(n, n * nw_point_size(NW_POINT_WINDOW));
    static struct nw_point in[4000];
    for (size_t i = 0; i < n; i++) {
        make(&in[i], NW_POINT_WINDOW, (int)i);
    }
    assert_true(nw_pointbuf_add(b, in, n));
    size_t touched = nw_pointbuf_touched(b);
    assert_int_equal(touched, n * nw_point_size(NW_POINT_WINDOW));
    nw_pointbuf_release(b, 4096); /* not empty: nothing */
    assert_int_equal(nw_pointbuf_touched(b), touched);
    nw_pointbuf_drop_front(b, n);
    nw_pointbuf_release(b, 4096);
    assert_int_equal(nw_pointbuf_touched(b), 4096);
    assert_true(nw_pointbuf_add(b, in, n)); /* released pages come back zeroed, then written */
    for (size_t i = 0; i < n; i += 397) {
        check(nw_pointbuf_points(b)[i], (int)i);
    }
    nw_pointbuf_destroy(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sizes_are_compact),
        cmocka_unit_test(add_drop_add_keeps_order),
        cmocka_unit_test(bounds),
        cmocka_unit_test(release_when_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

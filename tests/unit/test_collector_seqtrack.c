/* Unit tests of collector/seqtrack.c. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "seqtrack.h"

static void in_order_and_out_of_order(void **state)
{
    (void)state;
    struct nw_seqtrack t;
    nw_seqtrack_init(&t, 0);
    assert_true(nw_seqtrack_settle(&t, 1));
    assert_false(nw_seqtrack_settle(&t, 3)); /* 2 missing */
    assert_int_equal(t.contig, 1);
    assert_true(nw_seqtrack_has(&t, 3));
    assert_false(nw_seqtrack_has(&t, 2));
    assert_false(nw_seqtrack_settle(&t, 1)); /* duplicate */
    assert_true(nw_seqtrack_settle(&t, 2));
    assert_int_equal(t.contig, 3);
    for (uint64_t s = 10; s > 3; s--) { /* reverse order */
        nw_seqtrack_settle(&t, s);
    }
    assert_int_equal(t.contig, 10);
    assert_null(t.bits); /* nothing above the watermark: no bitmap */
}

static void far_ahead_is_not_remembered(void **state)
{
    (void)state;
    struct nw_seqtrack t;
    nw_seqtrack_init(&t, 100);
    assert_false(nw_seqtrack_settle(&t, 100 + NW_SEQTRACK_SPAN + 1));
    assert_false(nw_seqtrack_has(&t, 100 + NW_SEQTRACK_SPAN + 1));
    assert_false(nw_seqtrack_settle(&t, 100 + NW_SEQTRACK_SPAN)); /* at the edge: kept */
    assert_true(nw_seqtrack_has(&t, 100 + NW_SEQTRACK_SPAN));
    for (uint64_t s = 101; s < 100 + NW_SEQTRACK_SPAN; s++) {
        nw_seqtrack_settle(&t, s);
    }
    assert_int_equal(t.contig, 100 + NW_SEQTRACK_SPAN);
    assert_null(t.bits);
}

static void floor_skips_lost_seqs_and_counts_them(void **state)
{
    (void)state;
    struct nw_seqtrack t;
    nw_seqtrack_init(&t, 0);
    nw_seqtrack_settle(&t, 1);
    nw_seqtrack_settle(&t, 4);
    nw_seqtrack_settle(&t, 7);
    assert_int_equal(nw_seqtrack_floor(&t, 1), 0); /* nothing below */
    assert_int_equal(nw_seqtrack_floor(&t, 6), 3); /* 2, 3, 5 lost; 4 was stored */
    assert_int_equal(t.contig, 5);
    assert_true(nw_seqtrack_settle(&t, 6));
    assert_int_equal(t.contig, 7); /* 7 absorbed */
    /* a floor far beyond the bitmap */
    nw_seqtrack_settle(&t, 9);
    assert_int_equal(nw_seqtrack_floor(&t, 7 + 3 * NW_SEQTRACK_SPAN), 3 * NW_SEQTRACK_SPAN - 2);
    assert_int_equal(t.contig, 6 + 3 * NW_SEQTRACK_SPAN);
    assert_null(t.bits);
    nw_seqtrack_settle(&t, t.contig + 5);
    assert_int_equal(nw_seqtrack_floor(&t, t.contig + 3), 2); /* below the held seq */
    assert_non_null(t.bits);
    nw_seqtrack_release(&t); /* ASan: nothing leaks */
    assert_null(t.bits);
}

/* In order, as almost always, the bitmap is never made; a gap makes it,
 * and filling the gap frees it; reset frees it too. */
static void the_bitmap_exists_only_while_needed(void **state)
{
    (void)state;
    struct nw_seqtrack t;
    nw_seqtrack_init(&t, 0);
    for (uint64_t s = 1; s <= 10000; s++) {
        assert_true(nw_seqtrack_settle(&t, s));
        assert_null(t.bits);
    }
    assert_false(nw_seqtrack_settle(&t, 10002));
    assert_non_null(t.bits);
    assert_int_equal(t.nset, 1);
    assert_false(nw_seqtrack_settle(&t, 10002)); /* twice: still one */
    assert_int_equal(t.nset, 1);
    assert_true(nw_seqtrack_settle(&t, 10001));
    assert_int_equal(t.contig, 10002);
    assert_null(t.bits);
    assert_false(nw_seqtrack_settle(&t, 10010));
    nw_seqtrack_reset(&t, 7); /* a new epoch */
    assert_null(t.bits);
    assert_int_equal(t.contig, 7);
    assert_false(nw_seqtrack_has(&t, 10010));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(in_order_and_out_of_order),
        cmocka_unit_test(far_ahead_is_not_remembered),
        cmocka_unit_test(floor_skips_lost_seqs_and_counts_them),
        cmocka_unit_test(the_bitmap_exists_only_while_needed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

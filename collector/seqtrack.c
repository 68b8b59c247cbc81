/*
 * seqtrack.c - watermark and a ring bitmap: bit (seq % SPAN) stands for seq
 * while contig < seq <= contig + SPAN.
 */
#include "seqtrack.h"

#include <string.h>

static bool bit(const struct nw_seqtrack *t, uint64_t seq)
{
    uint64_t i = seq % NW_SEQTRACK_SPAN;
    return (t->bits[i / 64] >> (i % 64)) & 1u;
}

static void set_bit(struct nw_seqtrack *t, uint64_t seq, bool on)
{
    uint64_t i = seq % NW_SEQTRACK_SPAN, m = (uint64_t)1 << (i % 64);
    t->bits[i / 64] = on ? t->bits[i / 64] | m : t->bits[i / 64] & ~m;
}

void nw_seqtrack_init(struct nw_seqtrack *t, uint64_t contig)
{
    memset(t, 0, sizeof(*t));
    t->contig = contig;
}

/* Absorbs settled seqs right above the watermark. */
static void absorb(struct nw_seqtrack *t)
{
    while (bit(t, t->contig + 1)) {
        set_bit(t, t->contig + 1, false);
        t->contig++;
    }
}

bool nw_seqtrack_settle(struct nw_seqtrack *t, uint64_t seq)
{
    if (seq <= t->contig || seq > t->contig + NW_SEQTRACK_SPAN) {
        return false;
    }
    uint64_t before = t->contig;
    set_bit(t, seq, true);
    absorb(t);
    return t->contig != before;
}

bool nw_seqtrack_has(const struct nw_seqtrack *t, uint64_t seq)
{
    if (seq <= t->contig) {
        return true;
    }
    return seq <= t->contig + NW_SEQTRACK_SPAN && bit(t, seq);
}

uint64_t nw_seqtrack_floor(struct nw_seqtrack *t, uint64_t floor)
{
    if (floor <= t->contig + 1) {
        return 0;
    }
    uint64_t lost = 0;
    uint64_t top = floor - 1;
    if (top - t->contig > NW_SEQTRACK_SPAN) {
        /* Nothing in the bitmap is below the floor's reach: count it all. */
        for (uint64_t s = t->contig + 1; s <= t->contig + NW_SEQTRACK_SPAN; s++) {
            lost -= bit(t, s); /* settled ones were not lost */
        }
        lost += top - t->contig;
        memset(t->bits, 0, sizeof(t->bits));
    } else {
        for (uint64_t s = t->contig + 1; s <= top; s++) {
            lost += !bit(t, s);
            set_bit(t, s, false);
        }
    }
    t->contig = top;
    absorb(t);
    return lost;
}

/*
 * seqtrack.c - watermark and a ring bitmap: bit (seq % SPAN) stands for seq
 * while contig < seq <= contig + SPAN. The bitmap is allocated when a seq
 * above the watermark is settled and freed when the watermark absorbs the
 * last one (seqtrack.h).
 */
#include "seqtrack.h"

#include <stdlib.h>
#include <string.h>

#define WORDS (NW_SEQTRACK_SPAN / 64)

static bool bit(const struct nw_seqtrack *t, uint64_t seq)
{
    uint64_t i = seq % NW_SEQTRACK_SPAN;
    return t->bits && ((t->bits[i / 64] >> (i % 64)) & 1u);
}

void nw_seqtrack_release(struct nw_seqtrack *t)
{
    free(t->bits);
    t->bits = NULL;
    t->nset = 0;
}

/* Sets or clears seq's bit. The bitmap is made for the first bit set (if
 * it cannot be, the seq is simply not remembered: seqtrack.h) and freed
 * with the last bit cleared. */
static void set_bit(struct nw_seqtrack *t, uint64_t seq, bool on)
{
    if (!t->bits) {
        if (!on || !(t->bits = calloc(WORDS, sizeof(*t->bits)))) {
            return;
        }
    }
    uint64_t i = seq % NW_SEQTRACK_SPAN, m = (uint64_t)1 << (i % 64);
    bool was = t->bits[i / 64] & m;
    if (on && !was) {
        t->bits[i / 64] |= m;
        t->nset++;
    } else if (!on && was) {
        t->bits[i / 64] &= ~m;
        t->nset--;
    }
    if (t->nset == 0) {
        nw_seqtrack_release(t);
    }
}

void nw_seqtrack_init(struct nw_seqtrack *t, uint64_t contig)
{
    memset(t, 0, sizeof(*t));
    t->contig = contig;
}

void nw_seqtrack_reset(struct nw_seqtrack *t, uint64_t contig)
{
    nw_seqtrack_release(t);
    nw_seqtrack_init(t, contig);
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
    if (seq == t->contig + 1) { /* in order: the bitmap is not needed */
        t->contig++;
        absorb(t);
        return true;
    }
    set_bit(t, seq, true);
    return false;
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
        lost = top - t->contig - t->nset; /* settled ones were not lost */
        nw_seqtrack_release(t);
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

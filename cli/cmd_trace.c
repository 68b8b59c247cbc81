/*
 * cmd_trace.c - `needlewatch trace`: every session that used a cartridge, a
 * cartridge lot or a pigment lot (the recall query).
 *
 * Two sources, joined:
 *  - session summaries name the session's first cartridge, its lot and the
 *    pigment lot (session.cartridge, cartridge_lot, pigment_lot);
 *  - events name every cartridge inserted (cartridge_inserted: cartridge,
 *    lot) and pigment loaded (pigment_loaded: lot), including a second
 *    cartridge within one session. An event belongs to the session of its
 *    device running at that time, or else to the next session that starts
 *    on that device before another event of the same kind (a cartridge is
 *    inserted before the session starts).
 * A session still running has no summary yet: it is found through its
 * session_start event and listed without an end.
 *
 * Default range: everything stored (--from/--to narrow it).
 */
#include "cli.h"
#include "rows.h"
#include "table.h"

#include <stdlib.h>
#include <string.h>

static const char help[] =
    "Usage: needlewatch trace (--cartridge ID | --cartridge-lot LOT | --pigment-lot LOT)\n"
    "                         [options]\n"
    "\n"
    "Every session (clinic, device, start, end, operator code) that used the cartridge,\n"
    "cartridge lot or pigment lot, from the session summaries and from the\n"
    "cartridge_inserted / pigment_loaded events. Default range: everything stored.\n"
    "\n"
    "  --cartridge ID       one cartridge id\n"
    "  --cartridge-lot LOT  every cartridge of a lot\n"
    "  --pigment-lot LOT    a pigment lot\n";

enum { OPT_CART = NW_OPT_CMD_BASE, OPT_CLOT, OPT_PLOT };

struct args {
    int what; /* OPT_* */
    const char *value;
    int given;
};

struct hit {
    char device[65], clinic[129], session[65], op[17], item[65];
    int64_t start, end; /* end 0: running */
    bool summary, event;
};

struct hits {
    struct hit *a;
    size_t n, cap;
};

static const struct nw_tcol cols[] = {
    {"session", NW_TC_TEXT, 12, true, NULL}, {"clinic", NW_TC_TEXT, 16, true, NULL},
    {"device", NW_TC_TEXT, 10, true, NULL},  {"start", NW_TC_TEXT, 16, true, NULL},
    {"end", NW_TC_TEXT, 16, false, NULL},    {"operator", NW_TC_TEXT, 8, true, "oper"},
    {"item", NW_TC_TEXT, 10, true, NULL},    {"source", NW_TC_TEXT, 0, false, NULL},
};
#define NCOLS (sizeof(cols) / sizeof(cols[0]))

static int own(struct nw_cli *c, int opt, const char *arg, void *user)
{
    struct args *a = user;
    if (opt == OPT_CART || opt == OPT_CLOT || opt == OPT_PLOT) {
        a->what = opt;
        a->value = arg;
        a->given++;
        if (!arg[0]) {
            return nw_cli_usage(c, "%s needs a non-empty value",
                                opt == OPT_CART   ? "--cartridge"
                                : opt == OPT_CLOT ? "--cartridge-lot"
                                                  : "--pigment-lot");
        }
        return NW_EXIT_OK;
    }
    return nw_cli_usage(c, "unknown option");
}

static struct hit *hit_for(struct hits *h, const char *device, const char *session)
{
    for (size_t i = 0; i < h->n; i++) {
        if (!strcmp(h->a[i].device, device) && !strcmp(h->a[i].session, session)) {
            return &h->a[i];
        }
    }
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 32;
        struct hit *a = realloc(h->a, cap * sizeof(*a));
        if (!a) {
            return NULL;
        }
        h->a = a;
        h->cap = cap;
    }
    struct hit *x = &h->a[h->n++];
    memset(x, 0, sizeof(*x));
    snprintf(x->device, sizeof(x->device), "%s", device);
    snprintf(x->session, sizeof(x->session), "%s", session);
    return x;
}

static int cmp_hit(const void *pa, const void *pb)
{
    const struct hit *a = pa, *b = pb;
    if (a->start != b->start) {
        return a->start < b->start ? -1 : 1;
    }
    int c = strcmp(a->device, b->device);
    return c ? c : strcmp(a->session, b->session);
}

/* One device's sessions: summaries, and starts without a summary. */
struct dsess {
    char session[65], op[17], clinic[129];
    int64_t start, end;
};

static int cmp_dsess(const void *pa, const void *pb)
{
    const struct dsess *a = pa, *b = pb;
    return (a->start > b->start) - (a->start < b->start);
}

static enum nw_err device_sessions(struct nw_query *q, const struct nw_cli *c, const char *device,
                                   struct dsess **out, size_t *out_n, struct nw_error *err)
{
    struct nw_rows_filter f = {c->from_ms, c->to_ms, NULL, device, NULL, {{0}}};
    struct nw_session_row *s = NULL;
    struct nw_event_row *e = NULL;
    size_t ns = 0, ne = 0;
    enum nw_err rc = nw_rows_sessions(q, &f, &s, &ns, err);
    f.extra[0] = (struct nw_qfilter){"kind", "session_start"};
    if (rc == NW_OK) {
        rc = nw_rows_events(q, &f, &e, &ne, err);
    }
    struct dsess *d = rc == NW_OK ? calloc(ns + ne + 1, sizeof(*d)) : NULL;
    if (rc == NW_OK && !d) {
        rc = nw_error_set(err, NW_ERR_NOMEM, "out of memory");
    }
    size_t n = 0;
    for (size_t i = 0; rc == NW_OK && i < ns; i++) {
        struct dsess *x = &d[n++];
        snprintf(x->session, sizeof(x->session), "%s", s[i].session);
        snprintf(x->op, sizeof(x->op), "%s", s[i].op);
        snprintf(x->clinic, sizeof(x->clinic), "%s", s[i].clinic);
        x->start = s[i].start_ms;
        x->end = s[i].end_ms;
    }
    for (size_t i = 0; rc == NW_OK && i < ne; i++) {
        bool known = false;
        for (size_t k = 0; k < ns && !known; k++) {
            if (!strcmp(d[k].session, e[i].session)) {
                known = true;
                if (!d[k].op[0]) { /* the summary had no operator code */
                    snprintf(d[k].op, sizeof(d[k].op), "%s", e[i].op);
                }
            }
        }
        if (!known && e[i].session[0]) {
            struct dsess *x = &d[n++];
            snprintf(x->session, sizeof(x->session), "%s", e[i].session);
            snprintf(x->op, sizeof(x->op), "%s", e[i].op);
            snprintf(x->clinic, sizeof(x->clinic), "%s", e[i].clinic);
            x->start = e[i].time_ms;
            x->end = 0;
        }
    }
    free(s);
    free(e);
    if (rc != NW_OK) {
        free(d);
        return rc;
    }
    if (n) {
        qsort(d, n, sizeof(*d), cmp_dsess);
    }
    *out = d;
    *out_n = n;
    return NW_OK;
}

int nw_cmd_trace(int argc, char **argv)
{
    static const struct option opts[] = {NW_CLI_COMMON_OPTIONS,
                                         {"cartridge", required_argument, NULL, OPT_CART},
                                         {"cartridge-lot", required_argument, NULL, OPT_CLOT},
                                         {"pigment-lot", required_argument, NULL, OPT_PLOT},
                                         {NULL, 0, NULL, 0}};
    struct nw_cli c;
    nw_cli_init(&c, "trace");
    struct args a = {0};
    int rc = nw_cli_parse(&c, argc, argv, opts, NW_CLI_COMMON_SHORT, own, &a, help);
    if (rc != NW_EXIT_OK || c.help) {
        return rc;
    }
    if (a.given != 1) {
        return nw_cli_usage(&c, "give exactly one of --cartridge, --cartridge-lot, --pigment-lot");
    }
    if ((rc = nw_cli_finish(&c, INT64_MIN, c.now_ms + 1)) != NW_EXIT_OK) {
        nw_cli_close(&c);
        return rc;
    }
    const char *scol = a.what == OPT_CART   ? "cartridge"
                       : a.what == OPT_CLOT ? "cartridge_lot"
                                            : "pigment_lot";
    const char *ekind = a.what == OPT_PLOT ? "pigment_loaded" : "cartridge_inserted";
    const char *ecol = a.what == OPT_CART ? "cartridge" : "lot";
    struct nw_query *q = NULL;
    struct nw_session_row *s = NULL;
    struct nw_event_row *e = NULL, *all = NULL;
    struct dsess *ds = NULL;
    struct hits h = {0};
    struct nw_table *t = NULL;
    size_t ns = 0, ne = 0;
    struct nw_error err;
    if ((rc = nw_cli_open_store(&c, &q)) != NW_EXIT_OK) {
        goto done;
    }
    struct nw_rows_filter f = {c.from_ms, c.to_ms, c.clinic, c.device, c.model, {{0}}};
    f.extra[0] = (struct nw_qfilter){scol, a.value};
    nw_cli_stage(&c, "sessions");
    if (nw_rows_sessions(q, &f, &s, &ns, &err) != NW_OK) {
        rc = nw_cli_fail(&c, "%s", err.msg);
        goto done;
    }
    for (size_t i = 0; i < ns; i++) {
        struct hit *x = hit_for(&h, s[i].device, s[i].session);
        if (!x) {
            rc = nw_cli_fail(&c, "out of memory");
            goto done;
        }
        snprintf(x->clinic, sizeof(x->clinic), "%s", s[i].clinic);
        snprintf(x->op, sizeof(x->op), "%s", s[i].op);
        snprintf(x->item, sizeof(x->item), "%s",
                 a.what == OPT_PLOT ? s[i].pigment_lot : s[i].cartridge);
        x->start = s[i].start_ms;
        x->end = s[i].end_ms;
        x->summary = true;
    }
    nw_cli_stage_done(&c, ns);
    struct nw_rows_filter ef = {c.from_ms, c.to_ms, c.clinic, c.device, NULL, {{0}}};
    ef.extra[0] = (struct nw_qfilter){"kind", ekind};
    ef.extra[1] = (struct nw_qfilter){ecol, a.value};
    nw_cli_stage(&c, "events");
    if (nw_rows_events(q, &ef, &e, &ne, &err) != NW_OK) {
        rc = nw_cli_fail(&c, "%s", err.msg);
        goto done;
    }
    nw_cli_stage_done(&c, ne);
    for (size_t i = 0; i < ne;) {
        /* this device's sessions and all its events of the kind */
        size_t j = i;
        while (j < ne && !strcmp(e[j].device, e[i].device)) {
            j++;
        }
        size_t nd = 0, na = 0;
        struct nw_rows_filter af = {c.from_ms, c.to_ms, NULL, e[i].device, NULL, {{0}}};
        af.extra[0] = (struct nw_qfilter){"kind", ekind};
        if (device_sessions(q, &c, e[i].device, &ds, &nd, &err) != NW_OK ||
            nw_rows_events(q, &af, &all, &na, &err) != NW_OK) {
            rc = nw_cli_fail(&c, "%s", err.msg);
            goto done;
        }
        for (size_t k = i; k < j; k++) {
            int64_t t0 = e[k].time_ms, next = INT64_MAX;
            for (size_t m = 0; m < na; m++) { /* the next event of this kind on the device */
                if (all[m].time_ms > t0 && all[m].time_ms < next) {
                    next = all[m].time_ms;
                }
            }
            const struct dsess *hit = NULL;
            for (size_t m = 0; m < nd && !hit; m++) {
                bool during = ds[m].start <= t0 && (ds[m].end == 0 || t0 < ds[m].end);
                bool before = ds[m].start >= t0 && ds[m].start <= next;
                if (during || before) {
                    hit = &ds[m];
                }
            }
            if (!hit) {
                continue; /* loaded, never used in a session (yet) */
            }
            struct hit *x = hit_for(&h, e[k].device, hit->session);
            if (!x) {
                rc = nw_cli_fail(&c, "out of memory");
                goto done;
            }
            if (!x->summary) {
                snprintf(x->clinic, sizeof(x->clinic), "%s", hit->clinic);
                x->start = hit->start;
                x->end = hit->end;
            }
            if (!x->op[0]) {
                snprintf(x->op, sizeof(x->op), "%s", hit->op);
            }
            snprintf(x->item, sizeof(x->item), "%s",
                     a.what == OPT_PLOT ? e[k].lot : e[k].cartridge);
            x->event = true;
        }
        free(ds);
        free(all);
        ds = NULL;
        all = NULL;
        i = j;
    }
    if (h.n) {
        qsort(h.a, h.n, sizeof(*h.a), cmp_hit);
    }
    t = nw_table_new("sessions", cols, NCOLS, NW_ROWS_MAX);
    if (!t || (rc = nw_cli_open_output(&c)) != NW_EXIT_OK) {
        rc = rc ? rc : nw_cli_fail(&c, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < h.n; i++) {
        const struct hit *x = &h.a[i];
        char start[32], end[32];
        const char *cells[NCOLS] = {
            x->session,
            x->clinic,
            x->device,
            nw_cli_time_cell(&c, x->start, start),
            nw_cli_time_cell(&c, x->end, end),
            x->op,
            x->item,
            x->summary && x->event ? "summary+event"
            : x->summary           ? "summary"
                                   : "event",
        };
        if (nw_table_add(t, cells) != NW_OK) {
            rc = nw_cli_fail(&c, "out of memory");
            goto done;
        }
    }
    nw_table_render(t, c.format, "needlewatch trace", c.out);
done:
    free(s);
    free(e);
    free(all);
    free(ds);
    free(h.a);
    nw_table_destroy(&t);
    nw_query_destroy(&q);
    int crc = nw_cli_close(&c);
    return rc ? rc : crc;
}

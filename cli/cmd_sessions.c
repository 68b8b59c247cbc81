/*
 * cmd_sessions.c - `needlewatch sessions`: the session summaries the
 * collector wrote (measurement `session`) whose end lies in the range,
 * oldest first.
 */
#include "cli.h"
#include "rows.h"
#include "table.h"

#include <needlewatch/clock.h>

#include <stdlib.h>
#include <string.h>

static const char help[] =
    "Usage: needlewatch sessions [options]\n"
    "\n"
    "Sessions that ended in the range (default: the last 7 days), oldest first, with\n"
    "the collector's summary: duration, running time, cycles, pigment, rate and depth\n"
    "in spec (% of running time), cartridges, alerts, windows received/expected.\n"
    "\n"
    "  --operator CODE    only this pseudonymous operator code\n";

enum { OPT_OPERATOR = NW_OPT_CMD_BASE };

static const struct nw_tcol cols[] = {
    {"start", NW_TC_TEXT, 16, true, NULL},
    {"end", NW_TC_TEXT, 0, false, NULL},
    {"clinic", NW_TC_TEXT, 10, true, NULL},
    {"device", NW_TC_TEXT, 10, true, NULL},
    {"model", NW_TC_TEXT, 0, false, NULL},
    {"session", NW_TC_TEXT, 0, false, NULL},
    {"operator", NW_TC_TEXT, 6, true, "oper"},
    {"duration_min", NW_TC_NUM, 0, true, "min"},
    {"running_min", NW_TC_NUM, 0, false, NULL},
    {"cycles", NW_TC_NUM, 0, false, NULL},
    {"pigment_ul", NW_TC_NUM, 0, true, "pigm uL"},
    {"rate_in_spec_pct", NW_TC_NUM, 0, true, "rate%"},
    {"depth_in_spec_pct", NW_TC_NUM, 0, true, "depth%"},
    {"cartridges", NW_TC_NUM, 0, false, NULL},
    {"alerts", NW_TC_NUM, 0, false, NULL},
    {"windows", NW_TC_NUM, 0, false, NULL},
    {"windows_expected", NW_TC_NUM, 0, false, NULL},
    {"cut_off", NW_TC_BOOL, 0, false, NULL},
    {"cartridge", NW_TC_TEXT, 0, false, NULL},
    {"cartridge_lot", NW_TC_TEXT, 0, false, NULL},
    {"pigment_lot", NW_TC_TEXT, 0, false, NULL},
    {"firmware", NW_TC_TEXT, 0, false, NULL},
};
#define NCOLS (sizeof(cols) / sizeof(cols[0]))

static int own(struct nw_cli *c, int opt, const char *arg, void *user)
{
    if (opt == OPT_OPERATOR) {
        *(const char **)user = arg;
        return NW_EXIT_OK;
    }
    return nw_cli_usage(c, "unknown option");
}

static int cmp_start(const void *a, const void *b)
{
    const struct nw_session_row *x = a, *y = b;
    if (x->start_ms != y->start_ms) {
        return x->start_ms < y->start_ms ? -1 : 1;
    }
    int d = strcmp(x->device, y->device);
    return d ? d : (x->end_ms > y->end_ms) - (x->end_ms < y->end_ms);
}

int nw_cmd_sessions(int argc, char **argv)
{
    static const struct option opts[] = {NW_CLI_COMMON_OPTIONS,
                                         {"operator", required_argument, NULL, OPT_OPERATOR},
                                         {NULL, 0, NULL, 0}};
    struct nw_cli c;
    nw_cli_init(&c, "sessions");
    const char *op = NULL;
    int rc = nw_cli_parse(&c, argc, argv, opts, NW_CLI_COMMON_SHORT, own, &op, help);
    if (rc != NW_EXIT_OK || c.help) {
        return rc;
    }
    if ((rc = nw_cli_finish(&c, c.now_ms - 7 * 86400000LL, c.now_ms)) != NW_EXIT_OK) {
        nw_cli_close(&c);
        return rc;
    }
    struct nw_query *q = NULL;
    struct nw_session_row *s = NULL;
    struct nw_table *t = NULL;
    size_t n = 0;
    if ((rc = nw_cli_open_store(&c, &q)) != NW_EXIT_OK) {
        goto done;
    }
    struct nw_rows_filter f = {c.from_ms, c.to_ms, c.clinic, c.device, c.model, {{0}}};
    if (op) {
        f.extra[0] = (struct nw_qfilter){"operator", op};
    }
    struct nw_error err;
    nw_cli_stage(&c, "sessions");
    if (nw_rows_sessions(q, &f, &s, &n, &err) != NW_OK) {
        rc = nw_cli_fail(&c, "%s", err.msg);
        goto done;
    }
    nw_cli_stage_done(&c, n);
    if (n) {
        qsort(s, n, sizeof(*s), cmp_start);
    }
    t = nw_table_new("sessions", cols, NCOLS, NW_ROWS_MAX);
    if (!t || (rc = nw_cli_open_output(&c)) != NW_EXIT_OK) {
        rc = rc ? rc : nw_cli_fail(&c, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        const struct nw_session_row *r = &s[i];
        char start[32], end[32], dur[32], run[32], cyc[32], pig[32], rp[32], dp[32], cart[32],
            al[32], win[32], wexp[32];
        snprintf(cyc, sizeof(cyc), "%lld", (long long)r->cycles);
        snprintf(cart, sizeof(cart), "%lld", (long long)r->cartridges);
        snprintf(al, sizeof(al), "%lld", (long long)r->alerts);
        snprintf(win, sizeof(win), "%lld", (long long)r->windows);
        snprintf(wexp, sizeof(wexp), "%lld", (long long)r->windows_expected);
        const char *cells[NCOLS] = {
            nw_cli_time_cell(&c, r->start_ms, start),
            nw_cli_time_cell(&c, r->end_ms, end),
            r->clinic,
            r->device,
            r->model,
            r->session,
            r->op,
            nw_fmt_num(dur, sizeof(dur), r->duration_s / 60.0, 1),
            nw_fmt_num(run, sizeof(run), r->running_s / 60.0, 1),
            cyc,
            nw_fmt_num(pig, sizeof(pig), r->pigment_ul, 1),
            nw_fmt_num(rp, sizeof(rp), r->rate_pct, 1),
            nw_fmt_num(dp, sizeof(dp), r->depth_pct, 1),
            cart,
            al,
            win,
            wexp,
            r->cut_off ? "true" : "false",
            r->cartridge,
            r->cartridge_lot,
            r->pigment_lot,
            r->firmware,
        };
        if (nw_table_add(t, cells) != NW_OK) {
            rc = nw_cli_fail(&c, "out of memory");
            goto done;
        }
    }
    nw_table_render(t, c.format, "needlewatch sessions", c.out);
done:
    free(s);
    nw_table_destroy(&t);
    nw_query_destroy(&q);
    int crc = nw_cli_close(&c);
    return rc ? rc : crc;
}

/*
 * cmd_alerts.c - `needlewatch alerts`: open alerts (or every alert of a
 * range) from the store's `alert` measurement, and the collector's alert
 * actions over its operator API (api.h): ack, silence, silences.
 *
 * An alert is one alert_id of one device; each state change is a row. It
 * is open when its newest row's state is not "resolved" (acknowledged and
 * re-notified alerts are still open).
 */
#include "api.h"
#include "cli.h"
#include "rows.h"
#include "table.h"

#include <needlewatch/clock.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char help[] =
    "Usage: needlewatch alerts [options]              open alerts\n"
    "       needlewatch alerts --all [options]        every alert with a state change in\n"
    "                                                 the range (default: last 7 days)\n"
    "       needlewatch alerts ack ID [--collector URL]\n"
    "       needlewatch alerts silence [--device D] [--rule R] --for DURATION [--collector URL]\n"
    "       needlewatch alerts silences [--collector URL]\n"
    "\n"
    "Lists read the store's alert measurement; an alert is open while its newest\n"
    "state is not \"resolved\". ack, silence and silences talk to the collector's\n"
    "operator API (--collector, env NEEDLEWATCH_COLLECTOR, default\n"
    "http://127.0.0.1:9464). A silence without --device or --rule covers all\n"
    "devices or rules; DURATION is like 90s, 30m, 2h, 1d.\n"
    "\n"
    "  --all              every alert of the range, with its newest state\n"
    "  --rule R           only this rule (e.g. needle_rate_out_of_spec)\n"
    "  --severity S       only critical, warning or info\n"
    "  --for DURATION     silence: how long\n"
    "  --collector URL    the collector's operator API\n";

enum { OPT_ALL = NW_OPT_CMD_BASE, OPT_RULE, OPT_SEVERITY, OPT_FOR };

struct args {
    bool all;
    const char *rule, *severity, *for_s;
};

static const struct nw_tcol cols[] = {
    {"id", NW_TC_NUM, 0, true, NULL},         {"device", NW_TC_TEXT, 12, true, NULL},
    {"clinic", NW_TC_TEXT, 0, false, NULL},   {"rule", NW_TC_TEXT, 24, true, NULL},
    {"severity", NW_TC_TEXT, 0, true, "sev"}, {"state", NW_TC_TEXT, 0, true, NULL},
    {"since", NW_TC_TEXT, 16, true, NULL},    {"updated", NW_TC_TEXT, 0, false, NULL},
    {"value", NW_TC_NUM, 0, false, NULL},     {"threshold", NW_TC_NUM, 0, false, NULL},
    {"late", NW_TC_BOOL, 0, false, NULL},     {"message", NW_TC_TEXT, 0, false, NULL},
};
#define NCOLS (sizeof(cols) / sizeof(cols[0]))

static int own(struct nw_cli *c, int opt, const char *arg, void *user)
{
    struct args *a = user;
    switch (opt) {
    case OPT_ALL:
        a->all = true;
        return NW_EXIT_OK;
    case OPT_RULE:
        a->rule = arg;
        return NW_EXIT_OK;
    case OPT_SEVERITY:
        if (strcmp(arg, "critical") && strcmp(arg, "warning") && strcmp(arg, "info")) {
            return nw_cli_usage(c, "--severity \"%s\": expected critical, warning or info", arg);
        }
        a->severity = arg;
        return NW_EXIT_OK;
    case OPT_FOR:
        a->for_s = arg;
        return NW_EXIT_OK;
    default:
        return nw_cli_usage(c, "unknown option");
    }
}

static const struct option opts[] = {NW_CLI_COMMON_OPTIONS,
                                     {"all", no_argument, NULL, OPT_ALL},
                                     {"rule", required_argument, NULL, OPT_RULE},
                                     {"severity", required_argument, NULL, OPT_SEVERITY},
                                     {"for", required_argument, NULL, OPT_FOR},
                                     {"collector", required_argument, NULL, NW_OPT_COLLECTOR},
                                     {NULL, 0, NULL, 0}};

static int sev_rank(const char *s)
{
    return !strcmp(s, "critical") ? 0 : !strcmp(s, "warning") ? 1 : !strcmp(s, "info") ? 2 : 3;
}

static int cmp_id(const void *pa, const void *pb)
{
    const struct nw_alert_row *a = pa, *b = pb;
    int c = strcmp(a->device, b->device);
    if (c) {
        return c;
    }
    if (a->alert_id != b->alert_id) {
        return a->alert_id < b->alert_id ? -1 : 1;
    }
    return (a->time_ms > b->time_ms) - (a->time_ms < b->time_ms);
}

struct item {
    const struct nw_alert_row *newest;
    int64_t since;
};

static int cmp_item(const void *pa, const void *pb)
{
    const struct item *a = pa, *b = pb;
    int c = sev_rank(a->newest->severity) - sev_rank(b->newest->severity);
    if (c) {
        return c;
    }
    if (a->since != b->since) {
        return a->since < b->since ? -1 : 1;
    }
    c = strcmp(a->newest->device, b->newest->device);
    if (c) {
        return c;
    }
    return (a->newest->alert_id > b->newest->alert_id) -
           (a->newest->alert_id < b->newest->alert_id);
}

static int list(struct nw_cli *c, const struct args *a)
{
    struct nw_query *q = NULL;
    struct nw_alert_row *al = NULL;
    struct item *items = NULL;
    struct nw_table *t = NULL;
    size_t n = 0, ni = 0;
    int rc;
    if ((rc = nw_cli_open_store(c, &q)) != NW_EXIT_OK) {
        goto done;
    }
    struct nw_rows_filter f = {c->from_ms, c->to_ms, c->clinic, c->device, NULL, {{0}}};
    int k = 0;
    if (a->rule) {
        f.extra[k++] = (struct nw_qfilter){"rule", a->rule};
    }
    if (a->severity) {
        f.extra[k++] = (struct nw_qfilter){"severity", a->severity};
    }
    struct nw_error err;
    nw_cli_stage(c, "alerts");
    if (nw_rows_alerts(q, &f, &al, &n, &err) != NW_OK) {
        rc = nw_cli_fail(c, "%s", err.msg);
        goto done;
    }
    nw_cli_stage_done(c, n);
    if (n) {
        qsort(al, n, sizeof(*al), cmp_id);
    }
    items = calloc(n ? n : 1, sizeof(*items));
    t = nw_table_new("alerts", cols, NCOLS, NW_ROWS_MAX);
    if (!items || !t) {
        rc = nw_cli_fail(c, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n;) {
        size_t j = i;
        int64_t since = al[i].since_ms ? al[i].since_ms : al[i].time_ms;
        while (j + 1 < n && !strcmp(al[j + 1].device, al[i].device) &&
               al[j + 1].alert_id == al[i].alert_id) {
            j++;
        }
        if (a->all || strcmp(al[j].state, "resolved") != 0) {
            items[ni++] = (struct item){&al[j], since};
        }
        i = j + 1;
    }
    if (ni) {
        qsort(items, ni, sizeof(*items), cmp_item);
    }
    if ((rc = nw_cli_open_output(c)) != NW_EXIT_OK) {
        goto done;
    }
    for (size_t i = 0; i < ni; i++) {
        const struct nw_alert_row *r = items[i].newest;
        char id[32], since[32], upd[32], val[32], thr[32];
        snprintf(id, sizeof(id), "%lld", (long long)r->alert_id);
        const char *cells[NCOLS] = {
            id,
            r->device,
            r->clinic,
            r->rule,
            r->severity,
            r->state,
            nw_cli_time_cell(c, items[i].since, since),
            nw_cli_time_cell(c, r->time_ms, upd),
            nw_fmt_num(val, sizeof(val), r->value, 3),
            nw_fmt_num(thr, sizeof(thr), r->threshold, 3),
            r->late ? "true" : "false",
            r->message,
        };
        if (nw_table_add(t, cells) != NW_OK) {
            rc = nw_cli_fail(c, "out of memory");
            goto done;
        }
    }
    nw_table_render(t, c->format, a->all ? "needlewatch alerts" : "needlewatch open alerts",
                    c->out);
done:
    free(items);
    free(al);
    nw_table_destroy(&t);
    nw_query_destroy(&q);
    return rc;
}

/* Prints the answer of an API call; exit code by status. */
static int answer(struct nw_cli *c, const struct nw_api_answer *ans, const char *ok_line)
{
    if (ans->status >= 200 && ans->status < 300) {
        if (ok_line) {
            fprintf(c->out, "%s\n", ok_line);
        } else {
            fputs(ans->body, c->out);
            if (ans->len && ans->body[ans->len - 1] != '\n') {
                fputc('\n', c->out);
            }
        }
        return NW_EXIT_OK;
    }
    char body[200];
    snprintf(body, sizeof(body), "%s", ans->body ? ans->body : "");
    for (char *p = body; *p; p++) {
        if ((unsigned char)*p < 0x20) {
            *p = ' ';
        }
    }
    return nw_cli_fail(c, "collector %s answered HTTP %ld%s%s", c->collector, ans->status,
                       body[0] ? ": " : "", body);
}

static int ack(struct nw_cli *c)
{
    if (c->npos != 1) {
        return nw_cli_usage(c, "ack needs exactly one alert ID");
    }
    const char *id = c->pos[0];
    char *end;
    errno = 0;
    unsigned long long v = strtoull(id, &end, 10);
    if (!id[0] || *end || errno || v == 0 || id[0] == '-') {
        return nw_cli_usage(c, "ack: \"%s\" is not an alert ID (a positive integer)", id);
    }
    const char *params[] = {"id", id};
    struct nw_api_answer ans;
    struct nw_error err;
    if (nw_api_call(c->collector, "POST", "/alerts/ack", params, 1, &ans, &err) != NW_OK) {
        return nw_cli_fail(c, "%s", err.msg);
    }
    int rc;
    if (ans.status == 404) {
        rc = nw_cli_fail(c, "no alert with id %s (collector %s)", id, c->collector);
    } else {
        char line[96];
        snprintf(line, sizeof(line), "alert %s acknowledged", id);
        rc = answer(c, &ans, line);
    }
    free(ans.body);
    return rc;
}

static int silence(struct nw_cli *c, const struct args *a)
{
    if (c->npos) {
        return nw_cli_usage(c, "unexpected argument \"%s\"", c->pos[0]);
    }
    if (!a->for_s) {
        return nw_cli_usage(c, "silence needs --for DURATION (e.g. --for 2h)");
    }
    int64_t ms = 0;
    struct nw_error err;
    enum nw_err prc = nw_clock_parse_duration_ms(a->for_s, &ms, &err);
    if (prc != NW_OK || ms <= 0) {
        return nw_cli_usage(c, "--for \"%s\": %s", a->for_s,
                            prc != NW_OK ? err.msg : "must be positive");
    }
    char secs[32];
    snprintf(secs, sizeof(secs), "%lld", (long long)((ms + 999) / 1000));
    const char *params[] = {"device", c->device, "rule", a->rule, "for", secs};
    struct nw_api_answer ans;
    if (nw_api_call(c->collector, "POST", "/silences", params, 3, &ans, &err) != NW_OK) {
        return nw_cli_fail(c, "%s", err.msg);
    }
    char line[256];
    snprintf(line, sizeof(line), "silenced %s of %s for %s", a->rule ? a->rule : "every rule",
             c->device ? c->device : "every device", a->for_s);
    int rc = answer(c, &ans, line);
    free(ans.body);
    return rc;
}

static int silences(struct nw_cli *c)
{
    if (c->npos) {
        return nw_cli_usage(c, "unexpected argument \"%s\"", c->pos[0]);
    }
    struct nw_api_answer ans;
    struct nw_error err;
    if (nw_api_call(c->collector, "GET", "/silences", NULL, 0, &ans, &err) != NW_OK) {
        return nw_cli_fail(c, "%s", err.msg);
    }
    int rc = answer(c, &ans, NULL);
    free(ans.body);
    return rc;
}

int nw_cmd_alerts(int argc, char **argv)
{
    struct nw_cli c;
    const char *action = NULL;
    if (argc >= 2 &&
        (!strcmp(argv[1], "ack") || !strcmp(argv[1], "silence") || !strcmp(argv[1], "silences"))) {
        action = argv[1];
        argc--;
        argv++;
    }
    char name[32];
    snprintf(name, sizeof(name), "alerts%s%s", action ? " " : "", action ? action : "");
    nw_cli_init(&c, action ? name : "alerts");
    c.max_pos = action && !strcmp(action, "ack") ? 1 : 0;
    struct args a = {0};
    int rc = nw_cli_parse(&c, argc, argv, opts, NW_CLI_COMMON_SHORT, own, &a, help);
    if (rc != NW_EXIT_OK || c.help) {
        return rc;
    }
    if (c.model && !action) { /* alert rows carry no model tag */
        return nw_cli_usage(&c,
                            "--model: alerts are not stored by model; use --device or --clinic");
    }
    int64_t def_from = action || a.all ? c.now_ms - 7 * 86400000LL : INT64_MIN;
    if ((rc = nw_cli_finish(&c, def_from, c.now_ms + 1)) != NW_EXIT_OK) {
        nw_cli_close(&c);
        return rc;
    }
    if (action && (rc = nw_cli_open_output(&c)) != NW_EXIT_OK) {
        nw_cli_close(&c);
        return rc;
    }
    if (!action) {
        rc = list(&c, &a);
    } else if (!strcmp(action, "ack")) {
        rc = ack(&c);
    } else if (!strcmp(action, "silence")) {
        rc = silence(&c, &a);
    } else {
        rc = silences(&c);
    }
    int crc = nw_cli_close(&c);
    return rc ? rc : crc;
}

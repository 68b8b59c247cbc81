/*
 * cmd_report.c - `needlewatch report`: options, then report.c computes and
 * report_out.c / report_html.c write.
 */
#include "cli.h"
#include "report.h"
#include "report_out.h"

#include <string.h>

static const char help[] =
    "Usage: needlewatch report [options]\n"
    "\n"
    "The QA report over a time range (default: the last 7 days), fleet-wide or for\n"
    "one --clinic, --device or --model: per clinic, worst first, machines, sessions,\n"
    "running hours, utilisation (sessions per machine-day, idle machines), rate- and\n"
    "depth-in-spec %, out-of-spec minutes, Cpk of rate and depth, cartridge\n"
    "violations, pigment (mL, per running hour), alerts by severity, offline time\n"
    "during sessions and data completeness; then by firmware and by operator code.\n"
    "Spec windows: 100-140 Hz and 0.25-0.50 mm unless --config sets [spec] or\n"
    "[model \"NAME\"] rate_hz / depth_mm. JSON follows cli/report.schema.json.\n"
    "\n"
    "  --by clinic|device one row per clinic (default) or per device\n";

enum { OPT_BY = NW_OPT_CMD_BASE };

static int own(struct nw_cli *c, int opt, const char *arg, void *user)
{
    if (opt == OPT_BY) {
        if (strcmp(arg, "clinic") && strcmp(arg, "device")) {
            return nw_cli_usage(c, "--by \"%s\": expected clinic or device", arg);
        }
        *(bool *)user = !strcmp(arg, "device");
        return NW_EXIT_OK;
    }
    return nw_cli_usage(c, "unknown option");
}

static void progress(void *user, const char *stage, uint64_t rows, bool done)
{
    struct nw_cli *c = user;
    if (!done && rows == 0) {
        nw_cli_stage(c, stage);
    } else if (done) {
        nw_cli_stage_done(c, rows);
    } else if (c->progress) {
        fprintf(stderr, "needlewatch report: %s: %llu rows...\n", stage, (unsigned long long)rows);
    }
}

int nw_cmd_report(int argc, char **argv)
{
    static const struct option opts[] = {
        NW_CLI_COMMON_OPTIONS, {"by", required_argument, NULL, OPT_BY}, {NULL, 0, NULL, 0}};
    struct nw_cli c;
    nw_cli_init(&c, "report");
    bool by_device = false;
    int rc = nw_cli_parse(&c, argc, argv, opts, NW_CLI_COMMON_SHORT, own, &by_device, help);
    if (rc != NW_EXIT_OK || c.help) {
        return rc;
    }
    if ((rc = nw_cli_finish(&c, c.now_ms - 7 * 86400000LL, c.now_ms)) != NW_EXIT_OK) {
        nw_cli_close(&c);
        return rc;
    }
    struct nw_query *q = NULL;
    struct nw_report *r = NULL;
    if ((rc = nw_cli_open_store(&c, &q)) != NW_EXIT_OK) {
        goto done;
    }
    struct nw_report_opts o = {c.from_ms, c.to_ms, c.clinic, c.device,
                               c.model,   c.specs, progress, &c};
    struct nw_error err;
    if (nw_report_build(q, &o, &r, &err) != NW_OK) {
        rc = nw_cli_fail(&c, "%s", err.msg);
        goto done;
    }
    if ((rc = nw_cli_open_output(&c)) != NW_EXIT_OK) {
        goto done;
    }
    struct nw_report_meta m = {c.clinic, c.device, c.model, by_device, c.specs};
    nw_report_write(r, &m, c.format, c.out);
done:
    nw_report_destroy(&r);
    nw_query_destroy(&q);
    int crc = nw_cli_close(&c);
    return rc ? rc : crc;
}

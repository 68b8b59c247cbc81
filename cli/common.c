/*
 * common.c - the common options and plumbing of cli.h.
 */
#include "cli.h"

#include <needlewatch/clock.h>

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FAR_FUTURE_MS 4102444800000LL /* 2100-01-01 */

void nw_cli_init(struct nw_cli *c, const char *cmd)
{
    memset(c, 0, sizeof(*c));
    c->cmd = cmd;
    c->now_ms = nw_clock_realtime_ms();
    c->format = NW_FMT_TABLE;
    c->out = stdout;
}

int nw_cli_usage(const struct nw_cli *c, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "needlewatch %s: %s (see needlewatch %s --help)\n", c->cmd, msg, c->cmd);
    return NW_EXIT_USAGE;
}

int nw_cli_fail(const struct nw_cli *c, const char *fmt, ...)
{
    (void)c;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    for (char *p = msg; *p; p++) { /* one line */
        if (*p == '\n' || *p == '\r') {
            *p = ' ';
        }
    }
    fprintf(stderr, "needlewatch: %s\n", msg);
    return NW_EXIT_RUNTIME;
}

int nw_cli_option(struct nw_cli *c, int opt, const char *arg, char **argv)
{
    switch (opt) {
    case NW_OPT_STORE:
        if (strlen(arg) >= sizeof(c->store)) {
            return nw_cli_usage(c, "--store: URL too long");
        }
        snprintf(c->store, sizeof(c->store), "%s", arg);
        return NW_EXIT_OK;
    case NW_OPT_COLLECTOR:
        if (strlen(arg) >= sizeof(c->collector)) {
            return nw_cli_usage(c, "--collector: URL too long");
        }
        snprintf(c->collector, sizeof(c->collector), "%s", arg);
        return NW_EXIT_OK;
    case NW_OPT_FROM:
        c->from_s = arg;
        return NW_EXIT_OK;
    case NW_OPT_TO:
        c->to_s = arg;
        return NW_EXIT_OK;
    case NW_OPT_CLINIC:
        c->clinic = arg;
        return NW_EXIT_OK;
    case NW_OPT_DEVICE:
        c->device = arg;
        return NW_EXIT_OK;
    case NW_OPT_MODEL:
        c->model = arg;
        return NW_EXIT_OK;
    case NW_OPT_FORMAT:
        if (!nw_fmt_parse(arg, &c->format)) {
            return nw_cli_usage(c, "--format \"%s\": expected table, csv, json or html", arg);
        }
        c->format_set = true;
        return NW_EXIT_OK;
    case 'o':
        c->output = arg;
        return NW_EXIT_OK;
    case 'c':
        c->config = arg;
        return NW_EXIT_OK;
    case 'q':
        c->quiet = true;
        return NW_EXIT_OK;
    case 'h':
        c->help = true;
        return NW_EXIT_OK;
    case NW_OPT_VERSION:
        c->version = true;
        return NW_EXIT_OK;
    case ':':
        return nw_cli_usage(c, "%s needs a value", argv[optind - 1]);
    case '?':
        if (optopt && optopt < 256) {
            return nw_cli_usage(c, "unknown option -%c", optopt);
        }
        return nw_cli_usage(c, "unknown option %s", argv[optind - 1]);
    default:
        return -1;
    }
}

int nw_cli_parse(struct nw_cli *c, int argc, char **argv, const struct option *longopts,
                 const char *shortopts, nw_cli_own_fn own, void *user, const char *help)
{
    char shorts[64];
    snprintf(shorts, sizeof(shorts), ":%s", shortopts);
    optind = 1;
    opterr = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, shorts, longopts, NULL)) != -1) {
        int rc = nw_cli_option(c, opt, optarg, argv);
        if (rc < 0) {
            rc = own ? own(c, opt, optarg, user) : nw_cli_usage(c, "unknown option");
        }
        if (rc != NW_EXIT_OK) {
            return rc;
        }
    }
    if (c->help) {
        fputs(help, stdout);
        fputs(NW_CLI_COMMON_HELP, stdout);
        return NW_EXIT_OK;
    }
    if (c->version) {
        printf("needlewatch %s\n", NW_VERSION);
        c->help = true; /* done: nothing else to run */
        return NW_EXIT_OK;
    }
    c->pos = argv + optind;
    c->npos = argc - optind;
    if (c->npos > c->max_pos) {
        return nw_cli_usage(c, "unexpected argument \"%s\"", argv[optind + c->max_pos]);
    }
    return NW_EXIT_OK;
}

static int parse_time(struct nw_cli *c, const char *flag, const char *s, int64_t *out)
{
    struct nw_error err;
    if (nw_clock_parse_time(s, c->now_ms, out, &err) != NW_OK) {
        return nw_cli_usage(c, "%s \"%s\": %s", flag, s, err.msg);
    }
    return NW_EXIT_OK;
}

int nw_cli_finish(struct nw_cli *c, int64_t def_from_ms, int64_t def_to_ms)
{
    char cfg_store[1024] = "", cfg_collector[512] = "";
    c->specs = nw_specs_new();
    if (!c->specs) {
        return nw_cli_fail(c, "out of memory");
    }
    if (c->config) {
        struct nw_error err;
        enum nw_err rc = nw_specs_load(c->specs, c->config, cfg_store, sizeof(cfg_store),
                                       cfg_collector, sizeof(cfg_collector), &err);
        if (rc == NW_ERR_CONFIG) {
            return nw_cli_usage(c, "--config: %s", err.msg);
        }
        if (rc != NW_OK) {
            return nw_cli_usage(c, "--config: %s", err.msg);
        }
    }
    const char *env_store = getenv("NEEDLEWATCH_STORE");
    const char *env_coll = getenv("NEEDLEWATCH_COLLECTOR");
    if (!c->store[0]) {
        snprintf(c->store, sizeof(c->store), "%s",
                 env_store && env_store[0] ? env_store
                 : cfg_store[0]            ? cfg_store
                                           : NW_CLI_DEFAULT_STORE);
    }
    if (!c->collector[0]) {
        snprintf(c->collector, sizeof(c->collector), "%s",
                 env_coll && env_coll[0] ? env_coll
                 : cfg_collector[0]      ? cfg_collector
                                         : NW_CLI_DEFAULT_COLLECTOR);
    }
    c->from_ms = def_from_ms == INT64_MIN ? 0 : def_from_ms;
    c->to_ms = def_to_ms == INT64_MIN ? FAR_FUTURE_MS : def_to_ms;
    int rc = NW_EXIT_OK;
    if (c->from_s && (rc = parse_time(c, "--from", c->from_s, &c->from_ms)) != NW_EXIT_OK) {
        return rc;
    }
    if (c->to_s && (rc = parse_time(c, "--to", c->to_s, &c->to_ms)) != NW_EXIT_OK) {
        return rc;
    }
    if (c->from_ms < 0 || c->to_ms > FAR_FUTURE_MS) {
        return nw_cli_usage(c, "--from/--to: outside 1970..2100");
    }
    if (c->from_ms >= c->to_ms) {
        return nw_cli_usage(c, "--from must be before --to");
    }
    c->progress = !c->quiet && !isatty(STDOUT_FILENO);
    return NW_EXIT_OK;
}

int nw_cli_open_store(struct nw_cli *c, struct nw_query **out)
{
    struct nw_error err;
    enum nw_err rc = nw_query_open(c->store, NULL, out, &err);
    if (rc == NW_ERR_CONFIG) {
        return nw_cli_usage(c, "--store: %s", err.msg);
    }
    if (rc != NW_OK) {
        return nw_cli_fail(c, "%s", err.msg);
    }
    return NW_EXIT_OK;
}

int nw_cli_open_output(struct nw_cli *c)
{
    if (c->output && strcmp(c->output, "-") != 0) {
        c->out = fopen(c->output, "w");
        if (!c->out) {
            c->out = stdout;
            return nw_cli_fail(c, "cannot write %s: %s", c->output, strerror(errno));
        }
    }
    return NW_EXIT_OK;
}

int nw_cli_close(struct nw_cli *c)
{
    int rc = NW_EXIT_OK;
    if (c->out) {
        bool bad = ferror(c->out) || fflush(c->out) != 0;
        if (c->out != stdout) {
            bad |= fclose(c->out) != 0;
        }
        if (bad) {
            rc = nw_cli_fail(c, "writing %s failed: %s", c->output ? c->output : "stdout",
                             strerror(errno));
        }
        c->out = NULL;
    }
    nw_specs_destroy(&c->specs);
    return rc;
}

void nw_cli_stage(struct nw_cli *c, const char *stage)
{
    c->stage = stage;
    c->stage_ms = nw_clock_mono_ms();
}

void nw_cli_stage_done(struct nw_cli *c, uint64_t rows)
{
    int64_t took = nw_clock_mono_ms() - c->stage_ms;
    if (c->progress && took > 1000) {
        fprintf(stderr, "needlewatch %s: %s: %llu rows in %.1f s\n", c->cmd, c->stage,
                (unsigned long long)rows, (double)took / 1000.0);
    }
}

char *nw_cli_time(int64_t ms, char *out)
{
    out[0] = '\0';
    if (ms > 0 && nw_clock_format_rfc3339(ms, out) != NW_OK) {
        out[0] = '\0';
    }
    return out;
}

char *nw_cli_time_cell(const struct nw_cli *c, int64_t ms, char *out)
{
    nw_cli_time(ms, out);
    if (c->format == NW_FMT_TABLE && out[0]) {
        out[10] = ' ';
        out[16] = '\0';
    }
    return out;
}

/*
 * cli.h - what every `needlewatch` subcommand shares: the common options,
 * their precedence, opening the store and the output, progress lines, and
 * the exit codes.
 *
 * Precedence of each setting: flag > environment (NEEDLEWATCH_STORE,
 * NEEDLEWATCH_COLLECTOR) > [needlewatch] section of --config > default.
 *
 * Exit codes (DESIGN.md §10): NW_EXIT_OK 0; NW_EXIT_RUNTIME 1 with one line
 * "needlewatch: reason" on stderr; NW_EXIT_USAGE 2 with one line naming the
 * flag. Only main() calls exit(); commands return one of these.
 */
#ifndef CLI_CLI_H
#define CLI_CLI_H

#include "fmt.h"
#include "query.h"
#include "spec.h"

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

enum { NW_EXIT_OK = 0, NW_EXIT_RUNTIME = 1, NW_EXIT_USAGE = 2 };

#define NW_CLI_DEFAULT_STORE "sqlite:needlewatch.db"
#define NW_CLI_DEFAULT_COLLECTOR "http://127.0.0.1:9464"

/* Long-only option ids of the common options. */
enum {
    NW_OPT_STORE = 256,
    NW_OPT_FROM,
    NW_OPT_TO,
    NW_OPT_CLINIC,
    NW_OPT_DEVICE,
    NW_OPT_MODEL,
    NW_OPT_FORMAT,
    NW_OPT_VERSION,
    NW_OPT_COLLECTOR,
    NW_OPT_CMD_BASE = 512 /* a command's own long options start here */
};

/* The common long options; a command's table starts with these. */
#define NW_CLI_COMMON_OPTIONS                                                                      \
    {"store", required_argument, NULL, NW_OPT_STORE},                                              \
        {"from", required_argument, NULL, NW_OPT_FROM},                                            \
        {"to", required_argument, NULL, NW_OPT_TO},                                                \
        {"clinic", required_argument, NULL, NW_OPT_CLINIC},                                        \
        {"device", required_argument, NULL, NW_OPT_DEVICE},                                        \
        {"model", required_argument, NULL, NW_OPT_MODEL},                                          \
        {"format", required_argument, NULL, NW_OPT_FORMAT},                                        \
        {"output", required_argument, NULL, 'o'}, {"config", required_argument, NULL, 'c'},        \
        {"quiet", no_argument, NULL, 'q'}, {"help", no_argument, NULL, 'h'},                       \
    {                                                                                              \
        "version", no_argument, NULL, NW_OPT_VERSION                                               \
    }
#define NW_CLI_COMMON_SHORT "o:c:qh"

/* Text for --help of every command. */
#define NW_CLI_COMMON_HELP                                                                         \
    "Common options:\n"                                                                            \
    "  --store URL        sqlite:PATH or influx://[user:pass@]HOST:PORT/DB\n"                      \
    "                     (env NEEDLEWATCH_STORE; default sqlite:needlewatch.db)\n"                \
    "  --from T, --to T   time range: RFC 3339, YYYY-MM-DD, now, -7d, -12h\n"                      \
    "  --clinic NAME      only this clinic       --device ID   only this device\n"                 \
    "  --model NAME       only this device model\n"                                                \
    "  --format F         table (default), csv, json or html\n"                                    \
    "  -o, --output FILE  write there instead of stdout\n"                                         \
    "  -c, --config FILE  the collector's INI file: [spec], [model \"X\"], [needlewatch]\n"        \
    "  -q, --quiet        no progress lines on stderr\n"                                           \
    "  -h, --help         this text\n"                                                             \
    "Exit status: 0 ok, 1 runtime error, 2 bad usage.\n"

struct nw_cli {
    const char *cmd; /* "report", for messages */
    char store[1024];
    char collector[512];
    const char *from_s, *to_s;
    int64_t now_ms, from_ms, to_ms;
    const char *clinic, *device, *model;
    enum nw_format format;
    bool format_set;
    const char *output;
    const char *config;
    bool quiet, help, version;
    struct nw_specs *specs;
    FILE *out;
    bool progress; /* stderr progress allowed: not quiet, stdout not a terminal */
    int64_t stage_ms;
    const char *stage;
    int max_pos; /* positional arguments the command takes (set before parsing) */
    int npos;    /* how many were given */
    char **pos;  /* borrowed from argv */
};

/* Zeroes *c and sets the defaults; now_ms from the clock. */
void nw_cli_init(struct nw_cli *c, const char *cmd);

/*
 * Handles one getopt_long() result if it is a common option: returns
 * NW_EXIT_OK when handled, NW_EXIT_USAGE after printing the reason, -1 when
 * opt is not a common option. argv/optind for naming an unknown flag.
 */
int nw_cli_option(struct nw_cli *c, int opt, const char *arg, char **argv);

/* A command's own option: NW_EXIT_OK, or NW_EXIT_USAGE after printing why. */
typedef int (*nw_cli_own_fn)(struct nw_cli *c, int opt, const char *arg, void *user);

/*
 * getopt_long() over argv (argv[0] is the command name) with the command's
 * table longopts (NW_CLI_COMMON_OPTIONS first) and short options; common
 * options go to nw_cli_option(), the others to own(). Positional arguments
 * beyond c->max_pos are refused. --help prints help (to stdout) and sets c->help: the caller
 * then returns NW_EXIT_OK. Returns an exit code.
 */
int nw_cli_parse(struct nw_cli *c, int argc, char **argv, const struct option *longopts,
                 const char *shortopts, nw_cli_own_fn own, void *user, const char *help);

/* Prints "needlewatch CMD: reason (see needlewatch CMD --help)" and
 * returns NW_EXIT_USAGE. */
int nw_cli_usage(const struct nw_cli *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prints "needlewatch: reason" and returns NW_EXIT_RUNTIME. */
int nw_cli_fail(const struct nw_cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * After option parsing: loads --config, applies environment and defaults,
 * parses --from/--to (defaults def_from_ms / def_to_ms when not given;
 * INT64_MIN for "no default": then 0 and far future). Returns an exit code.
 */
int nw_cli_finish(struct nw_cli *c, int64_t def_from_ms, int64_t def_to_ms);

/* Opens the store (runtime error printed on failure). */
int nw_cli_open_store(struct nw_cli *c, struct nw_query **out);

/* Opens --output (or stdout) into c->out. */
int nw_cli_open_output(struct nw_cli *c);

/* Flushes and closes the output; NW_EXIT_RUNTIME when a write failed. */
int nw_cli_close(struct nw_cli *c);

/* Progress on stderr: a line when a stage took more than 1 s. */
void nw_cli_stage(struct nw_cli *c, const char *stage);
void nw_cli_stage_done(struct nw_cli *c, uint64_t rows);

/* RFC 3339 of ms into out (NW_CLOCK_RFC3339_SIZE bytes); "" for 0/INT64_MIN. */
char *nw_cli_time(int64_t ms, char *out);

/* A time cell: "YYYY-MM-DD HH:MM" in the table format (narrow), RFC 3339
 * otherwise; "" for 0. out: NW_CLOCK_RFC3339_SIZE bytes. */
char *nw_cli_time_cell(const struct nw_cli *c, int64_t ms, char *out);

/* The subcommands: each returns an exit code. */
int nw_cmd_report(int argc, char **argv);
int nw_cmd_devices(int argc, char **argv);
int nw_cmd_sessions(int argc, char **argv);
int nw_cmd_alerts(int argc, char **argv);
int nw_cmd_trace(int argc, char **argv);

#endif

/*
 * main.c - `needlewatch`, the operator's CLI: picks the subcommand.
 *
 *   needlewatch report | devices | sessions | alerts | trace [options]
 *
 * Each subcommand lives in its own cmd_*.c and returns an exit code
 * (cli.h); this is the only place that exits.
 */
#include "cli.h"

#include <string.h>

static void usage(FILE *f)
{
    fputs("Usage: needlewatch COMMAND [options]\n"
          "\n"
          "The operator's CLI of needlewatch: QA reports and fleet views read from the\n"
          "collector's store (SQLite or InfluxDB), and the collector's alert actions.\n"
          "\n"
          "Commands:\n"
          "  report     per clinic (or --by device): running hours, spec compliance, Cpk,\n"
          "             pigment, cartridge violations, alerts, completeness; worst first\n"
          "  devices    fleet state: online, last seen, firmware, odometer, service due\n"
          "  sessions   sessions in a time range with their summaries\n"
          "  alerts     open alerts (--all: every alert in the range); ack, silence\n"
          "  trace      every session that used a cartridge, cartridge lot or pigment lot\n"
          "\n"
          "needlewatch COMMAND --help lists the command's options.\n"
          "  -h, --help     this text\n"
          "  --version      the version\n"
          "Exit status: 0 ok, 1 runtime error, 2 bad usage.\n",
          f);
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*run)(int, char **);
    } cmds[] = {
        {"report", nw_cmd_report}, {"devices", nw_cmd_devices}, {"sessions", nw_cmd_sessions},
        {"alerts", nw_cmd_alerts}, {"trace", nw_cmd_trace},
    };
    if (argc < 2) {
        usage(stderr);
        return NW_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        usage(stdout);
        return NW_EXIT_OK;
    }
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
        printf("needlewatch %s\n", NW_VERSION);
        return NW_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        if (!strcmp(cmd, cmds[i].name)) {
            return cmds[i].run(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "needlewatch: unknown command \"%s\"%s (see needlewatch --help)\n", cmd,
            cmd[0] == '-' ? " (options go after the command)" : "");
    return NW_EXIT_USAGE;
}

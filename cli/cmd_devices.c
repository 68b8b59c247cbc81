/*
 * cmd_devices.c - `needlewatch devices`: the fleet's state as of --to
 * (default now), one line per device.
 *
 *   state            online: the newest status says online and is at most
 *                    90 s old (the device_offline rule's threshold); stale:
 *                    it says online but is older; offline: it says offline
 *                    (a last will); unknown: no status stored
 *   last_seen        newest status or window
 *   model            from the newest window (the collector's inventory)
 *   hours_to_service service_hours of the model (config, default 500) minus
 *                    running hours since the newest maintenance event with
 *                    resets_service (running hours at that time = the newest
 *                    status before it); negative = overdue
 *   open_alerts      alert ids whose newest row is not "resolved"
 */
#include "cli.h"
#include "rows.h"
#include "strmap.h"
#include "table.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define ONLINE_MAX_AGE_MS 90000

static const char help[] =
    "Usage: needlewatch devices [options]\n"
    "\n"
    "Fleet state as of --to (default now): device, clinic, model, online/offline and\n"
    "last seen, firmware, odometer, running hours, hours to the next service, open\n"
    "alerts. --from limits how far back rows are read (default: everything).\n"
    "\n"
    "  --sort KEY         device (default), clinic, model, state, last_seen, firmware,\n"
    "                     odometer, hours, service (hours to service), alerts\n"
    "  --state S          only online, offline, stale or unknown devices\n"
    "  --service-due H    only devices with at most H hours to service (0: overdue)\n";

enum { OPT_SORT = NW_OPT_CMD_BASE, OPT_STATE, OPT_DUE };

struct dev {
    char device[65], clinic[129], model[33], firmware[33];
    const char *state;
    int64_t last_seen, odometer;
    double hours, since_service, service_hours, to_service;
    int64_t open_alerts;
};

struct args {
    const char *sort, *state;
    double due;
    bool due_set;
};

static const struct nw_tcol cols[] = {
    {"device", NW_TC_TEXT, 14, true, NULL},
    {"clinic", NW_TC_TEXT, 16, true, NULL},
    {"model", NW_TC_TEXT, 8, true, NULL},
    {"state", NW_TC_TEXT, 0, true, NULL},
    {"last_seen", NW_TC_TEXT, 16, true, "last seen"},
    {"firmware", NW_TC_TEXT, 8, false, NULL},
    {"odometer_cycles", NW_TC_NUM, 0, false, NULL},
    {"running_hours", NW_TC_NUM, 0, false, NULL},
    {"hours_since_service", NW_TC_NUM, 0, false, NULL},
    {"service_hours", NW_TC_NUM, 0, false, NULL},
    {"hours_to_service", NW_TC_NUM, 0, true, "svc h"},
    {"open_alerts", NW_TC_NUM, 0, true, "alerts"},
};
#define NCOLS (sizeof(cols) / sizeof(cols[0]))

static const char *sort_keys[] = {"device",    "clinic",   "model",    "state",
                                  "last_seen", "firmware", "odometer", "hours",
                                  "service",   "alerts",   NULL};
static int sort_key;

static int own(struct nw_cli *c, int opt, const char *arg, void *user)
{
    struct args *a = user;
    switch (opt) {
    case OPT_SORT:
        for (int i = 0; sort_keys[i]; i++) {
            if (!strcmp(arg, sort_keys[i])) {
                a->sort = arg;
                sort_key = i;
                return NW_EXIT_OK;
            }
        }
        return nw_cli_usage(c,
                            "--sort \"%s\": expected one of device, clinic, model, state, "
                            "last_seen, firmware, odometer, hours, service, alerts",
                            arg);
    case OPT_STATE:
        if (strcmp(arg, "online") && strcmp(arg, "offline") && strcmp(arg, "stale") &&
            strcmp(arg, "unknown")) {
            return nw_cli_usage(c, "--state \"%s\": expected online, offline, stale or unknown",
                                arg);
        }
        a->state = arg;
        return NW_EXIT_OK;
    case OPT_DUE: {
        char *end;
        a->due = strtod(arg, &end);
        if (end == arg || *end || !isfinite(a->due)) {
            return nw_cli_usage(c, "--service-due \"%s\": expected a number of hours", arg);
        }
        a->due_set = true;
        return NW_EXIT_OK;
    }
    default:
        return nw_cli_usage(c, "unknown option");
    }
}

static int cmp_num(double a, double b)
{
    if (isnan(a) || isnan(b)) {
        return isnan(a) - isnan(b); /* no value last */
    }
    return (a > b) - (a < b);
}

static int cmp_dev(const void *pa, const void *pb)
{
    const struct dev *a = pa, *b = pb;
    int c = 0;
    switch (sort_key) {
    case 1:
        c = strcmp(a->clinic, b->clinic);
        break;
    case 2:
        c = strcmp(a->model, b->model);
        break;
    case 3:
        c = strcmp(a->state, b->state);
        break;
    case 4:
        c = -cmp_num((double)a->last_seen, (double)b->last_seen); /* newest first */
        break;
    case 5:
        c = strcmp(a->firmware, b->firmware);
        break;
    case 6:
        c = -cmp_num((double)a->odometer, (double)b->odometer);
        break;
    case 7:
        c = -cmp_num(a->hours, b->hours);
        break;
    case 8:
        c = cmp_num(a->to_service, b->to_service); /* most due first */
        break;
    case 9:
        c = -cmp_num((double)a->open_alerts, (double)b->open_alerts);
        break;
    default:
        break;
    }
    return c ? c : strcmp(a->device, b->device);
}

/* Per alert id, the newest row decides whether it is open. */
static int cmp_alert_id(const void *pa, const void *pb)
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

struct win_latest {
    struct nw_strmap *ids;
    struct dev **devs;
    size_t *n;
    size_t cap;
};

static struct dev *dev_of(struct nw_strmap *ids, struct dev **devs, size_t *n, const char *device,
                          struct nw_error *err)
{
    uint32_t id;
    if (nw_strmap_put(ids, device, &id) != NW_OK) {
        nw_error_set(err, NW_ERR_NOMEM, "out of memory (devices)");
        return NULL;
    }
    if (id == *n) {
        if ((*n & (*n - 1)) == 0) {
            struct dev *d = realloc(*devs, (*n ? *n * 2 : 1) * sizeof(**devs));
            if (!d) {
                nw_error_set(err, NW_ERR_NOMEM, "out of memory");
                return NULL;
            }
            *devs = d;
        }
        struct dev *d = &(*devs)[(*n)++];
        memset(d, 0, sizeof(*d));
        snprintf(d->device, sizeof(d->device), "%s", device);
        d->state = "unknown";
        d->hours = d->since_service = d->to_service = NAN;
        d->odometer = -1;
    }
    return &(*devs)[id];
}

static enum nw_err on_window(void *user, const struct nw_qrow *r, struct nw_error *err)
{
    struct win_latest *w = user;
    struct dev *d = dev_of(w->ids, w->devs, w->n, r->device, err);
    if (!d) {
        return err->code;
    }
    snprintf(d->model, sizeof(d->model), "%s", r->v[1].s);
    if (!d->clinic[0]) {
        snprintf(d->clinic, sizeof(d->clinic), "%s", r->v[0].s);
    }
    if (r->time_ms > d->last_seen) {
        d->last_seen = r->time_ms;
    }
    return NW_OK;
}

int nw_cmd_devices(int argc, char **argv)
{
    static const struct option opts[] = {NW_CLI_COMMON_OPTIONS,
                                         {"sort", required_argument, NULL, OPT_SORT},
                                         {"state", required_argument, NULL, OPT_STATE},
                                         {"service-due", required_argument, NULL, OPT_DUE},
                                         {NULL, 0, NULL, 0}};
    struct nw_cli c;
    nw_cli_init(&c, "devices");
    struct args a = {0};
    sort_key = 0;
    int rc = nw_cli_parse(&c, argc, argv, opts, NW_CLI_COMMON_SHORT, own, &a, help);
    if (rc != NW_EXIT_OK || c.help) {
        return rc;
    }
    if ((rc = nw_cli_finish(&c, INT64_MIN, c.now_ms + 1)) != NW_EXIT_OK) {
        nw_cli_close(&c);
        return rc;
    }
    struct nw_query *q = NULL;
    struct nw_status_row *st = NULL;
    struct nw_event_row *mt = NULL;
    struct nw_alert_row *al = NULL;
    struct dev *devs = NULL;
    struct nw_table *t = NULL;
    size_t nst = 0, nmt = 0, nal = 0, n = 0;
    struct nw_strmap *ids = nw_strmap_new(10000000);
    struct nw_error err;
    if (!ids) {
        rc = nw_cli_fail(&c, "out of memory");
        goto done;
    }
    if ((rc = nw_cli_open_store(&c, &q)) != NW_EXIT_OK) {
        goto done;
    }
    struct nw_rows_filter f = {c.from_ms, c.to_ms, c.clinic, c.device, NULL, {{0}}};
    /* newest window of each device: model, clinic, last seen */
    struct nw_query_spec ws = {.measurement = "needle_window",
                               .cols = {"clinic", "model", "seq"},
                               .ncols = 3,
                               .from_ms = c.from_ms,
                               .to_ms = c.to_ms,
                               .latest_per_device = true};
    if (c.clinic) {
        ws.filters[ws.nfilters++] = (struct nw_qfilter){"clinic", c.clinic};
    }
    if (c.device) {
        ws.filters[ws.nfilters++] = (struct nw_qfilter){"device", c.device};
    }
    if (c.model) {
        ws.filters[ws.nfilters++] = (struct nw_qfilter){"model", c.model};
    }
    struct win_latest wl = {ids, &devs, &n, 0};
    nw_cli_stage(&c, "windows");
    if (nw_query_run(q, &ws, on_window, &wl, &err) != NW_OK) {
        rc = nw_cli_fail(&c, "%s", err.msg);
        goto done;
    }
    nw_cli_stage_done(&c, n);
    nw_cli_stage(&c, "status");
    if (nw_rows_latest_status(q, &f, &st, &nst, &err) != NW_OK) {
        rc = nw_cli_fail(&c, "%s", err.msg);
        goto done;
    }
    nw_cli_stage_done(&c, nst);
    int64_t as_of = c.to_ms < c.now_ms ? c.to_ms : c.now_ms;
    for (size_t i = 0; i < nst; i++) {
        if (c.model && nw_strmap_get(ids, st[i].device) < 0) {
            continue; /* no window of that model */
        }
        struct dev *d = dev_of(ids, &devs, &n, st[i].device, &err);
        if (!d) {
            rc = nw_cli_fail(&c, "%s", err.msg);
            goto done;
        }
        snprintf(d->clinic, sizeof(d->clinic), "%s", st[i].clinic);
        snprintf(d->firmware, sizeof(d->firmware), "%s", st[i].firmware);
        d->odometer = st[i].odometer;
        d->hours = st[i].hours;
        d->last_seen = st[i].time_ms > d->last_seen ? st[i].time_ms : d->last_seen;
        d->state = st[i].online == 1
                       ? (as_of - st[i].time_ms <= ONLINE_MAX_AGE_MS ? "online" : "stale")
                   : st[i].online == 0 ? "offline"
                                       : "unknown";
    }
    /* newest maintenance that resets the service counter */
    struct nw_rows_filter mf = f;
    mf.extra[0] = (struct nw_qfilter){"kind", "maintenance"};
    nw_cli_stage(&c, "maintenance");
    if (nw_rows_events(q, &mf, &mt, &nmt, &err) != NW_OK) {
        rc = nw_cli_fail(&c, "%s", err.msg);
        goto done;
    }
    nw_cli_stage_done(&c, nmt);
    for (size_t i = 0; i < n; i++) {
        struct dev *d = &devs[i];
        d->service_hours = nw_specs_for(c.specs, d->model)->service_hours;
        if (isnan(d->hours)) {
            continue;
        }
        int64_t serviced = -1;
        for (size_t k = 0; k < nmt; k++) { /* sorted by device, time: take the last */
            if (!strcmp(mt[k].device, d->device) && mt[k].resets_service == 1) {
                serviced = mt[k].time_ms;
            }
        }
        double at_service = 0;
        if (serviced >= 0) {
            struct nw_rows_filter sf = {0, serviced + 1, NULL, d->device, NULL, {{0}}};
            struct nw_status_row *prev = NULL;
            size_t np = 0;
            if (nw_rows_latest_status(q, &sf, &prev, &np, &err) != NW_OK) {
                rc = nw_cli_fail(&c, "%s", err.msg);
                goto done;
            }
            at_service = np && !isnan(prev[0].hours) ? prev[0].hours : 0;
            free(prev);
        }
        d->since_service = d->hours - at_service;
        d->to_service = d->service_hours - d->since_service;
    }
    /* open alerts */
    struct nw_rows_filter af = {c.from_ms, c.to_ms, c.clinic, c.device, NULL, {{0}}};
    nw_cli_stage(&c, "alerts");
    if (nw_rows_alerts(q, &af, &al, &nal, &err) != NW_OK) {
        rc = nw_cli_fail(&c, "%s", err.msg);
        goto done;
    }
    nw_cli_stage_done(&c, nal);
    if (nal) {
        qsort(al, nal, sizeof(*al), cmp_alert_id);
    }
    for (size_t i = 0; i < nal; i++) {
        bool newest = i + 1 == nal || strcmp(al[i + 1].device, al[i].device) ||
                      al[i + 1].alert_id != al[i].alert_id;
        long id = nw_strmap_get(ids, al[i].device);
        if (newest && id >= 0 && strcmp(al[i].state, "resolved") != 0) {
            devs[id].open_alerts++;
        }
    }
    if (n) {
        qsort(devs, n, sizeof(*devs), cmp_dev);
    }
    t = nw_table_new("devices", cols, NCOLS, 10000000);
    if (!t || (rc = nw_cli_open_output(&c)) != NW_EXIT_OK) {
        rc = rc ? rc : nw_cli_fail(&c, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        struct dev *d = &devs[i];
        if ((a.state && strcmp(a.state, d->state)) || (a.due_set && !(d->to_service <= a.due))) {
            continue;
        }
        char seen[32], odo[32] = "", hours[32], since[32], svc[32], to[32], open[32];
        if (d->odometer >= 0) {
            snprintf(odo, sizeof(odo), "%lld", (long long)d->odometer);
        }
        snprintf(open, sizeof(open), "%lld", (long long)d->open_alerts);
        const char *cells[NCOLS] = {
            d->device,
            d->clinic,
            d->model,
            d->state,
            nw_cli_time_cell(&c, d->last_seen, seen),
            d->firmware,
            odo,
            nw_fmt_num(hours, sizeof(hours), d->hours, 1),
            nw_fmt_num(since, sizeof(since), d->since_service, 1),
            nw_fmt_num(svc, sizeof(svc), d->service_hours, 0),
            nw_fmt_num(to, sizeof(to), d->to_service, 1),
            open,
        };
        if (nw_table_add(t, cells) != NW_OK) {
            rc = nw_cli_fail(&c, "out of memory");
            goto done;
        }
    }
    nw_table_render(t, c.format, "needlewatch devices", c.out);
done:
    free(st);
    free(mt);
    free(al);
    free(devs);
    nw_strmap_destroy(&ids);
    nw_table_destroy(&t);
    nw_query_destroy(&q);
    int crc = nw_cli_close(&c);
    return rc ? rc : crc;
}

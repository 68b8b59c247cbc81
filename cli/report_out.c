/*
 * report_out.c - the report as table, CSV and JSON (report_out.h).
 *
 * One table of figures (key, decimals) drives CSV and JSON, so a figure
 * added to struct nw_figures appears in both with the same name; the
 * terminal tables pick the columns that fit 80 characters.
 */
#include "report_out.h"

#include "table.h"

#include <needlewatch/clock.h>

#include <math.h>
#include <stddef.h>
#include <string.h>

struct fig {
    const char *key;
    int decimals; /* -1: integer */
    size_t off;
    bool per_group; /* also for firmware and operator groups */
};

#define FD(k, d, g)                                                                                \
    {                                                                                              \
#k, d, offsetof(struct nw_figures, k), g                                                   \
    }
#define FI(k, g)                                                                                   \
    {                                                                                              \
#k, -1, offsetof(struct nw_figures, k), g                                                  \
    }
static const struct fig figs[] = {
    FI(machines, true),
    FI(idle_machines, false),
    FI(sessions, true),
    FD(running_hours, 3, true),
    FD(sessions_per_machine_day, 3, false),
    FD(rate_in_spec_pct, 2, true),
    FD(depth_in_spec_pct, 2, true),
    FD(in_spec_pct, 2, true),
    FD(out_of_spec_minutes, 2, true),
    FI(cartridge_violations, false),
    FD(pigment_ml, 3, true),
    FD(pigment_ml_per_running_hour, 3, true),
    FI(alerts_critical, false),
    FI(alerts_warning, false),
    FI(alerts_info, false),
    FD(offline_minutes_in_sessions, 2, false),
    FI(windows_received, false),
    FI(windows_expected, false),
    FD(completeness_pct, 2, false),
    FD(rate_cpk, 3, true),
    FD(depth_cpk, 3, true),
};
#define NFIGS (sizeof(figs) / sizeof(figs[0]))

/* The text of figure i of f ("" = no value). */
static const char *fig_text(const struct nw_figures *f, size_t i, char *buf, size_t size)
{
    const char *p = (const char *)f + figs[i].off;
    if (figs[i].decimals < 0) {
        int64_t v;
        memcpy(&v, p, sizeof(v));
        snprintf(buf, size, "%lld", (long long)v);
        return buf;
    }
    double d;
    memcpy(&d, p, sizeof(d));
    return nw_fmt_num(buf, size, d, figs[i].decimals);
}

static size_t fig_index(const char *key)
{
    for (size_t i = 0; i < NFIGS; i++) {
        if (!strcmp(figs[i].key, key)) {
            return i;
        }
    }
    return 0;
}

/* --- CSV ---------------------------------------------------------------- */

static void csv_row(FILE *f, const char *scope, const struct nw_report_group *g,
                    const struct nw_figures *fg, bool per_group_only)
{
    char rank[16] = "";
    if (g && g->rank) {
        snprintf(rank, sizeof(rank), "%d", g->rank);
    }
    nw_fmt_csv_field(f, scope);
    const char *head[] = {g ? g->name : "", rank, g ? g->clinic : "", g ? g->model : "",
                          g ? g->firmware : ""};
    for (size_t i = 0; i < 5; i++) {
        fputc(',', f);
        nw_fmt_csv_field(f, head[i]);
    }
    for (size_t i = 0; i < NFIGS; i++) {
        char buf[64];
        fputc(',', f);
        if (!per_group_only || figs[i].per_group) {
            nw_fmt_csv_field(f, fig_text(fg, i, buf, sizeof(buf)));
        }
    }
    fputs("\r\n", f);
}

static void write_csv(const struct nw_report *r, FILE *f)
{
    fputs("scope,name,rank,clinic,model,firmware", f);
    for (size_t i = 0; i < NFIGS; i++) {
        fprintf(f, ",%s", figs[i].key);
    }
    fputs("\r\n", f);
    csv_row(f, "fleet", NULL, &r->fleet, false);
    for (size_t i = 0; i < r->nclinics; i++) {
        csv_row(f, "clinic", &r->clinics[i], &r->clinics[i].f, false);
    }
    for (size_t i = 0; i < r->ndevices; i++) {
        csv_row(f, "device", &r->devices[i], &r->devices[i].f, false);
    }
    for (size_t i = 0; i < r->nfirmware; i++) {
        csv_row(f, "firmware", &r->firmware[i], &r->firmware[i].f, true);
    }
    for (size_t i = 0; i < r->noperators; i++) {
        csv_row(f, "operator", &r->operators[i], &r->operators[i].f, true);
    }
}

/* --- JSON --------------------------------------------------------------- */

static void json_null_or_str(FILE *f, const char *s)
{
    if (s) {
        nw_fmt_json_str(f, s);
    } else {
        fputs("null", f);
    }
}

static void json_time(FILE *f, int64_t ms)
{
    char t[32] = "";
    if (nw_clock_format_rfc3339(ms, t) == NW_OK) {
        nw_fmt_json_str(f, t);
    } else {
        fputs("null", f);
    }
}

static void json_figures(FILE *f, const struct nw_figures *fg, bool per_group_only)
{
    bool first = true;
    for (size_t i = 0; i < NFIGS; i++) {
        if (per_group_only && !figs[i].per_group) {
            continue;
        }
        char buf[64];
        const char *t = fig_text(fg, i, buf, sizeof(buf));
        fprintf(f, "%s\"%s\": %s", first ? "" : ", ", figs[i].key, t[0] ? t : "null");
        first = false;
    }
}

static void json_groups(FILE *f, const char *key, const char *name_key,
                        const struct nw_report_group *g, size_t n, bool ranked, bool device,
                        bool per_group_only)
{
    fprintf(f, ",\n  \"%s\": [", key);
    for (size_t i = 0; i < n; i++) {
        fputs(i ? ",\n    {" : "\n    {", f);
        if (ranked) {
            fprintf(f, "\"rank\": %d, ", g[i].rank);
        }
        fprintf(f, "\"%s\": ", name_key);
        nw_fmt_json_str(f, g[i].name);
        if (device) {
            fputs(", \"clinic\": ", f);
            nw_fmt_json_str(f, g[i].clinic);
            fputs(", \"model\": ", f);
            nw_fmt_json_str(f, g[i].model);
            fputs(", \"firmware\": ", f);
            nw_fmt_json_str(f, g[i].firmware);
        }
        fputs(", ", f);
        json_figures(f, &g[i].f, per_group_only);
        fputs("}", f);
    }
    fputs(n ? "\n  ]" : "]", f);
}

static void json_range(FILE *f, double lo, double hi, int decimals)
{
    char a[32], b[32];
    fprintf(f, "[%s, %s]", nw_fmt_num(a, sizeof(a), lo, decimals),
            nw_fmt_num(b, sizeof(b), hi, decimals));
}

static void write_json(const struct nw_report *r, const struct nw_report_meta *m, FILE *f)
{
    char buf[64];
    fputs("{\n  \"schema\": \"needlewatch.report/1\",\n  \"from\": ", f);
    json_time(f, r->from_ms);
    fputs(", \"to\": ", f);
    json_time(f, r->to_ms);
    fprintf(f, ", \"days\": %s,\n  \"filters\": {\"clinic\": ",
            nw_fmt_num(buf, sizeof(buf), (double)(r->to_ms - r->from_ms) / 86400000.0, 3));
    json_null_or_str(f, m->clinic);
    fputs(", \"device\": ", f);
    json_null_or_str(f, m->device);
    fputs(", \"model\": ", f);
    json_null_or_str(f, m->model);
    fprintf(f, "},\n  \"by\": \"%s\",\n  \"specs\": [", m->by_device ? "device" : "clinic");
    for (size_t i = 0; i < nw_specs_count(m->specs); i++) {
        const struct nw_spec *s = nw_specs_at(m->specs, i);
        fputs(i ? ",\n    {\"model\": " : "\n    {\"model\": ", f);
        if (i == 0) {
            fputs("null", f);
        } else {
            nw_fmt_json_str(f, s->model);
        }
        fputs(", \"rate_hz\": ", f);
        json_range(f, s->rate_lo, s->rate_hi, 3);
        fputs(", \"depth_mm\": ", f);
        json_range(f, s->depth_lo, s->depth_hi, 4);
        fprintf(f, ", \"service_hours\": %s}", nw_fmt_num(buf, sizeof(buf), s->service_hours, 1));
    }
    fputs("\n  ],\n  \"fleet\": {", f);
    json_figures(f, &r->fleet, false);
    fputs("}", f);
    json_groups(f, "clinics", "clinic", r->clinics, r->nclinics, true, false, false);
    json_groups(f, "devices", "device", r->devices, r->ndevices, true, true, false);
    json_groups(f, "firmware", "firmware", r->firmware, r->nfirmware, false, false, true);
    json_groups(f, "operators", "operator", r->operators, r->noperators, false, false, true);
    fputs(",\n  \"rate_distribution\": [", f);
    for (size_t i = 0; i < r->nmodels; i++) {
        const struct nw_report_hist *h = &r->models[i];
        char lo[32], w[32];
        fputs(i ? ",\n    {\"model\": " : "\n    {\"model\": ", f);
        nw_fmt_json_str(f, h->model);
        fputs(", \"spec_hz\": ", f);
        json_range(f, h->spec_lo, h->spec_hi, 3);
        fprintf(f, ", \"lo_hz\": %s, \"bin_hz\": %s, \"counts\": [",
                nw_fmt_num(lo, sizeof(lo), h->lo, 3), nw_fmt_num(w, sizeof(w), h->width, 3));
        for (size_t b = 0; b < h->nbins; b++) {
            fprintf(f, "%s%llu", b ? ", " : "", (unsigned long long)h->counts[b]);
        }
        fputs("]}", f);
    }
    fputs(r->nmodels ? "\n  ],\n  \"alerts_by_day\": [" : "],\n  \"alerts_by_day\": [", f);
    for (size_t i = 0; i < r->ndays; i++) {
        const struct nw_report_day *d = &r->days[i];
        char day[32] = "";
        nw_clock_format_rfc3339(d->day_ms, day);
        day[10] = '\0';
        fprintf(f, "%s{\"day\": \"%s\", \"critical\": %lld, \"warning\": %lld, \"info\": %lld}",
                i ? ",\n    " : "\n    ", day, (long long)d->critical, (long long)d->warning,
                (long long)d->info);
    }
    fputs(r->ndays ? "\n  ]\n}\n" : "]\n}\n", f);
}

/* --- terminal tables ------------------------------------------------------ */

static void section(FILE *f, const char *title, const struct nw_report_group *g, size_t n,
                    const struct nw_tcol *cols, const char *const *keys, size_t ncols, bool device)
{
    struct nw_tcol lc[16];
    for (size_t k = 0; k < ncols && k < 16; k++) {
        lc[k] = cols[k];
        if (!strcmp(keys[k], "name") || !strcmp(keys[k], "clinic")) {
            lc[k].title = device ? "device" : !strcmp(keys[k], "clinic") ? "clinic" : NULL;
        }
    }
    struct nw_table *t = nw_table_new("rows", lc, ncols < 16 ? ncols : 16, n + 1);
    if (!t) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        char bufs[16][64];
        const char *cells[16];
        for (size_t k = 0; k < ncols && k < 16; k++) {
            const char *key = keys[k];
            if (!strcmp(key, "#")) {
                snprintf(bufs[k], sizeof(bufs[k]), "%d", g[i].rank);
                cells[k] = bufs[k];
            } else if (!strcmp(key, "name")) {
                cells[k] = g[i].name;
            } else if (!strcmp(key, "clinic")) {
                cells[k] = device ? g[i].clinic : g[i].name;
            } else if (!strcmp(key, "alerts")) {
                snprintf(bufs[k], sizeof(bufs[k]), "%lld/%lld/%lld",
                         (long long)g[i].f.alerts_critical, (long long)g[i].f.alerts_warning,
                         (long long)g[i].f.alerts_info);
                cells[k] = bufs[k];
            } else {
                cells[k] = fig_text(&g[i].f, fig_index(key), bufs[k], sizeof(bufs[k]));
            }
        }
        nw_table_add(t, cells);
    }
    fprintf(f, "\n%s\n", title);
    nw_table_render(t, NW_FMT_TABLE, NULL, f);
    nw_table_destroy(&t);
}

static void write_table(const struct nw_report *r, const struct nw_report_meta *m, FILE *f)
{
    char from[32] = "", to[32] = "", b1[32], b2[32], b3[32], b4[32];
    nw_clock_format_rfc3339(r->from_ms, from);
    nw_clock_format_rfc3339(r->to_ms, to);
    fprintf(f, "needlewatch report  %.16s .. %.16s  (%s days)\n", from, to,
            nw_fmt_num(b1, sizeof(b1), (double)(r->to_ms - r->from_ms) / 86400000.0, 1));
    if (m->clinic || m->device || m->model) {
        fprintf(f, "filters:%s%s%s%s%s%s\n", m->clinic ? " clinic=" : "",
                m->clinic ? m->clinic : "", m->device ? " device=" : "", m->device ? m->device : "",
                m->model ? " model=" : "", m->model ? m->model : "");
    }
    const struct nw_figures *x = &r->fleet;
    fprintf(f, "machines   %lld (%lld idle); %lld sessions, %s per machine-day\n",
            (long long)x->machines, (long long)x->idle_machines, (long long)x->sessions,
            nw_fmt_num(b1, sizeof(b1), x->sessions_per_machine_day, 3));
    fprintf(f, "running    %s h; pigment %s mL, %s mL per running hour\n",
            nw_fmt_num(b1, sizeof(b1), x->running_hours, 2),
            nw_fmt_num(b2, sizeof(b2), x->pigment_ml, 3),
            nw_fmt_num(b3, sizeof(b3), x->pigment_ml_per_running_hour, 3));
    fprintf(f, "in spec    %s %% (rate %s %%, depth %s %%); %s min out of spec\n",
            x->running_windows ? nw_fmt_num(b1, sizeof(b1), x->in_spec_pct, 2) : "-",
            x->running_windows ? nw_fmt_num(b2, sizeof(b2), x->rate_in_spec_pct, 2) : "-",
            x->running_windows ? nw_fmt_num(b3, sizeof(b3), x->depth_in_spec_pct, 2) : "-",
            nw_fmt_num(b4, sizeof(b4), x->out_of_spec_minutes, 1));
    fprintf(f,
            "incidents  %lld cartridge violations; alerts %lld critical, %lld warning, %lld "
            "info\n",
            (long long)x->cartridge_violations, (long long)x->alerts_critical,
            (long long)x->alerts_warning, (long long)x->alerts_info);
    fprintf(f, "data       %s %% complete (%lld of %lld windows); %s min offline in sessions\n",
            x->windows_expected ? nw_fmt_num(b1, sizeof(b1), x->completeness_pct, 2) : "-",
            (long long)x->windows_received, (long long)x->windows_expected,
            nw_fmt_num(b2, sizeof(b2), x->offline_minutes_in_sessions, 1));

    const struct nw_report_group *g = m->by_device ? r->devices : r->clinics;
    size_t n = m->by_device ? r->ndevices : r->nclinics;
    const char *what = m->by_device ? "Devices" : "Clinics";
    const char *nk = m->by_device ? "name" : "clinic";
    static const struct nw_tcol q_cols[] = {
        {"#", NW_TC_NUM, 0, true, NULL},       {"name", NW_TC_TEXT, 20, true, NULL},
        {"run h", NW_TC_NUM, 0, true, NULL},   {"in%", NW_TC_NUM, 0, true, NULL},
        {"rate%", NW_TC_NUM, 0, true, NULL},   {"depth%", NW_TC_NUM, 0, true, NULL},
        {"oos min", NW_TC_NUM, 0, true, NULL}, {"Cpk r", NW_TC_NUM, 0, true, NULL},
        {"Cpk d", NW_TC_NUM, 0, true, NULL},
    };
    const char *q_keys[] = {"#",
                            "name",
                            "running_hours",
                            "in_spec_pct",
                            "rate_in_spec_pct",
                            "depth_in_spec_pct",
                            "out_of_spec_minutes",
                            "rate_cpk",
                            "depth_cpk"};
    q_keys[1] = nk;
    char title[128];
    snprintf(title, sizeof(title), "%s, worst first: spec compliance", what);
    section(f, title, g, n, q_cols, q_keys, 9, m->by_device);

    static const struct nw_tcol u_cols[] = {
        {"#", NW_TC_NUM, 0, true, NULL},       {"name", NW_TC_TEXT, 20, true, NULL},
        {"mach", NW_TC_NUM, 0, true, NULL},    {"idle", NW_TC_NUM, 0, true, NULL},
        {"sess", NW_TC_NUM, 0, true, NULL},    {"s/m-day", NW_TC_NUM, 0, true, NULL},
        {"pigm mL", NW_TC_NUM, 0, true, NULL}, {"mL/run h", NW_TC_NUM, 0, true, NULL},
    };
    const char *u_keys[] = {"#",          "name",
                            "machines",   "idle_machines",
                            "sessions",   "sessions_per_machine_day",
                            "pigment_ml", "pigment_ml_per_running_hour"};
    u_keys[1] = nk;
    snprintf(title, sizeof(title), "%s: use", what);
    section(f, title, g, n, u_cols, u_keys, 8, m->by_device);

    static const struct nw_tcol i_cols[] = {
        {"#", NW_TC_NUM, 0, true, NULL},         {"name", NW_TC_TEXT, 20, true, NULL},
        {"cart viol", NW_TC_NUM, 0, true, NULL}, {"alerts c/w/i", NW_TC_NUM, 0, true, NULL},
        {"offl min", NW_TC_NUM, 0, true, NULL},  {"windows", NW_TC_NUM, 0, true, NULL},
        {"complete%", NW_TC_NUM, 0, true, NULL},
    };
    const char *i_keys[] = {"#",
                            "name",
                            "cartridge_violations",
                            "alerts",
                            "offline_minutes_in_sessions",
                            "windows_received",
                            "completeness_pct"};
    i_keys[1] = nk;
    snprintf(title, sizeof(title), "%s: incidents and data", what);
    section(f, title, g, n, i_cols, i_keys, 7, m->by_device);

    static const struct nw_tcol f_cols[] = {
        {"firmware", NW_TC_TEXT, 16, true, NULL}, {"mach", NW_TC_NUM, 0, true, NULL},
        {"sess", NW_TC_NUM, 0, true, NULL},       {"run h", NW_TC_NUM, 0, true, NULL},
        {"in%", NW_TC_NUM, 0, true, NULL},        {"rate%", NW_TC_NUM, 0, true, NULL},
        {"depth%", NW_TC_NUM, 0, true, NULL},     {"Cpk r", NW_TC_NUM, 0, true, NULL},
        {"Cpk d", NW_TC_NUM, 0, true, NULL},
    };
    const char *f_keys[] = {"name",        "machines",         "sessions",          "running_hours",
                            "in_spec_pct", "rate_in_spec_pct", "depth_in_spec_pct", "rate_cpk",
                            "depth_cpk"};
    section(f, "By firmware", r->firmware, r->nfirmware, f_cols, f_keys, 9, false);

    static const struct nw_tcol o_cols[] = {
        {"operator", NW_TC_TEXT, 16, true, NULL}, {"sess", NW_TC_NUM, 0, true, NULL},
        {"run h", NW_TC_NUM, 0, true, NULL},      {"in%", NW_TC_NUM, 0, true, NULL},
        {"rate%", NW_TC_NUM, 0, true, NULL},      {"depth%", NW_TC_NUM, 0, true, NULL},
        {"oos min", NW_TC_NUM, 0, true, NULL},    {"pigm mL", NW_TC_NUM, 0, true, NULL},
        {"Cpk r", NW_TC_NUM, 0, true, NULL},      {"Cpk d", NW_TC_NUM, 0, true, NULL},
    };
    const char *o_keys[] = {"name",
                            "sessions",
                            "running_hours",
                            "in_spec_pct",
                            "rate_in_spec_pct",
                            "depth_in_spec_pct",
                            "out_of_spec_minutes",
                            "pigment_ml",
                            "rate_cpk",
                            "depth_cpk"};
    section(f, "By operator (pseudonymous code)", r->operators, r->noperators, o_cols, o_keys, 10,
            false);
}

void nw_report_write(const struct nw_report *r, const struct nw_report_meta *m, enum nw_format fmt,
                     FILE *f)
{
    switch (fmt) {
    case NW_FMT_CSV:
        write_csv(r, f);
        break;
    case NW_FMT_JSON:
        write_json(r, m, f);
        break;
    case NW_FMT_HTML:
        nw_report_write_html(r, m, f);
        break;
    default:
        write_table(r, m, f);
        break;
    }
}

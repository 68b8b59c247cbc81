/*
 * report_html.c - the report as one self-contained HTML page.
 *
 * No script, no external font, image or style sheet: charts are inline SVG
 * drawn here, so the file opens offline, in a mail client, or years later.
 * Four charts (in-spec % per clinic, pigment per running hour per clinic,
 * needle-rate distribution per model with its spec window, alerts per day
 * by severity), then the tables of the text report.
 */
#include "report_out.h"

#include <needlewatch/clock.h>

#include <math.h>
#include <string.h>

#define W 720 /* chart width in px */

static const char *style =
    "body{font-family:sans-serif;margin:24px;color:#222;max-width:1100px}"
    "h1{font-size:22px}h2{font-size:17px;margin-top:28px}"
    "table{border-collapse:collapse;font-size:13px}"
    "td,th{border:1px solid #ccc;padding:3px 7px}th{background:#f0f0f0}"
    "td.n{text-align:right;font-variant-numeric:tabular-nums}"
    ".note{color:#666;font-size:12px}svg{background:#fafafa;border:1px solid #ddd}"
    "svg text{font-family:sans-serif;font-size:11px}";

static void text(FILE *f, const char *s)
{
    nw_fmt_html(f, s);
}

static double nice_max(double m)
{
    if (!(m > 0)) {
        return 1;
    }
    double p = pow(10, floor(log10(m)));
    return m <= p ? p : m <= 2 * p ? 2 * p : m <= 5 * p ? 5 * p : 10 * p;
}

/* Horizontal bars: one per label; NaN values are drawn as "no data". */
static void hbars(FILE *f, const char *title, const char *const *labels, const double *v, size_t n,
                  double max, const char *unit, const char *color, int decimals)
{
    double top = max > 0 ? max : 0;
    for (size_t i = 0; max <= 0 && i < n; i++) {
        top = !isnan(v[i]) && v[i] > top ? v[i] : top;
    }
    top = max > 0 ? max : nice_max(top);
    int rowh = 22, lw = 200, h = (int)n * rowh + 40;
    fprintf(f, "<h2>");
    text(f, title);
    fprintf(f,
            "</h2>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "viewBox=\"0 0 %d %d\" role=\"img\">\n",
            W, h, W, h);
    double pw = W - lw - 80;
    for (int k = 0; k <= 4; k++) { /* grid */
        double x = lw + pw * k / 4;
        char b[32];
        fprintf(f, "<line x1=\"%.1f\" y1=\"10\" x2=\"%.1f\" y2=\"%d\" stroke=\"#ddd\"/>", x, x,
                h - 22);
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>\n", x, h - 8,
                nw_fmt_num(b, sizeof(b), top * k / 4, top < 10 ? 1 : 0));
    }
    for (size_t i = 0; i < n; i++) {
        int y = 12 + (int)i * rowh;
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">", lw - 6, y + 13);
        char lab[64];
        snprintf(lab, sizeof(lab), "%.40s", labels[i]);
        text(f, lab);
        fputs("</text>", f);
        if (isnan(v[i])) {
            fprintf(f, "<text x=\"%d\" y=\"%d\" fill=\"#888\">no data</text>\n", lw + 4, y + 13);
            continue;
        }
        double bw = v[i] <= 0 ? 0 : pw * (v[i] > top ? 1 : v[i] / top);
        char b[32];
        fprintf(f,
                "<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\"/>"
                "<text x=\"%.1f\" y=\"%d\">%s %s</text>\n",
                lw, y + 2, bw, rowh - 6, color, lw + bw + 4, y + 13,
                nw_fmt_num(b, sizeof(b), v[i], decimals), unit);
    }
    fputs("</svg>\n", f);
}

static void histogram(FILE *f, const struct nw_report_hist *hs, size_t n)
{
    fputs("<h2>Needle rate distribution per model (running windows)</h2>\n", f);
    if (!n) {
        fputs("<p class=\"note\">No running windows in the range.</p>\n", f);
    }
    for (size_t m = 0; m < n; m++) {
        const struct nw_report_hist *h = &hs[m];
        uint64_t top = 1;
        for (size_t b = 0; b < h->nbins; b++) {
            top = h->counts[b] > top ? h->counts[b] : top;
        }
        int ht = 200, pad = 40;
        double pw = W - 2 * pad, bw = pw / (double)h->nbins;
        double span = h->width * (double)h->nbins;
        fprintf(f,
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
                "viewBox=\"0 0 %d %d\" role=\"img\">\n<text x=\"%d\" y=\"16\">model ",
                W, ht + 50, W, ht + 50, pad);
        text(f, h->model);
        fprintf(f, " (spec %.0f-%.0f Hz, shaded)</text>\n", h->spec_lo, h->spec_hi);
        double sx = pad + pw * (h->spec_lo - h->lo) / span;
        double ex = pad + pw * (h->spec_hi - h->lo) / span;
        fprintf(f, "<rect x=\"%.1f\" y=\"24\" width=\"%.1f\" height=\"%d\" fill=\"#e3f2e3\"/>\n",
                sx, ex - sx, ht);
        for (size_t b = 0; b < h->nbins; b++) {
            double bh = (double)ht * (double)h->counts[b] / (double)top;
            double lo = h->lo + h->width * (double)b;
            bool in = lo >= h->spec_lo && lo + h->width <= h->spec_hi;
            fprintf(f,
                    "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\">"
                    "<title>%.0f-%.0f Hz: %llu</title></rect>\n",
                    pad + bw * (double)b, 24 + ht - bh, bw > 1.5 ? bw - 1 : bw, bh,
                    in ? "#3a7d44" : "#c0392b", lo, lo + h->width,
                    (unsigned long long)h->counts[b]);
        }
        for (int k = 0; k <= 4; k++) {
            double hz = h->lo + span * k / 4;
            fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%.0f Hz</text>\n",
                    pad + pw * k / 4, ht + 42, hz);
        }
        fputs("</svg>\n", f);
    }
}

static void alerts_chart(FILE *f, const struct nw_report_day *d, size_t n)
{
    fputs("<h2>Alerts per day (firing, by severity)</h2>\n", f);
    if (!n) {
        fputs("<p class=\"note\">Range too long for a daily chart.</p>\n", f);
        return;
    }
    int64_t top = 1;
    for (size_t i = 0; i < n; i++) {
        int64_t t = d[i].critical + d[i].warning + d[i].info;
        top = t > top ? t : top;
    }
    int ht = 160, pad = 40;
    double pw = W - 2 * pad, bw = pw / (double)n;
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "viewBox=\"0 0 %d %d\" role=\"img\">\n",
            W, ht + 60, W, ht + 60);
    fprintf(f,
            "<text x=\"%d\" y=\"14\"><tspan fill=\"#c0392b\">&#9632; critical</tspan> "
            "<tspan fill=\"#e67e22\">&#9632; warning</tspan> <tspan fill=\"#2e86c1\">"
            "&#9632; info</tspan> (max %lld per day)</text>\n",
            pad, (long long)top);
    for (size_t i = 0; i < n; i++) {
        double x = pad + bw * (double)i, y = 24 + ht;
        const int64_t vals[3] = {d[i].critical, d[i].warning, d[i].info};
        static const char *const colors[3] = {"#c0392b", "#e67e22", "#2e86c1"};
        for (int k = 0; k < 3; k++) {
            double bh = (double)ht * (double)vals[k] / (double)top;
            if (bh > 0) {
                y -= bh;
                fprintf(f,
                        "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                        "fill=\"%s\"/>\n",
                        x, y, bw > 2 ? bw - 1 : bw, bh, colors[k]);
            }
        }
        size_t every = n / 8 + 1;
        if (i % every == 0) {
            char day[32] = "";
            nw_clock_format_rfc3339(d[i].day_ms, day);
            fprintf(f, "<text x=\"%.1f\" y=\"%d\">%.10s</text>\n", x, ht + 44, day);
        }
    }
    fputs("</svg>\n", f);
}

static void cell(FILE *f, const char *s, bool num)
{
    fputs(num ? "<td class=\"n\">" : "<td>", f);
    text(f, s[0] ? s : "\xe2\x80\x93");
    fputs("</td>", f);
}

static void num_cell(FILE *f, double v, int decimals)
{
    char b[64];
    cell(f, nw_fmt_num(b, sizeof(b), v, decimals), true);
}

static void int_cell(FILE *f, int64_t v)
{
    char b[32];
    snprintf(b, sizeof(b), "%lld", (long long)v);
    cell(f, b, true);
}

static void group_table(FILE *f, const char *title, const char *name,
                        const struct nw_report_group *g, size_t n, bool full, bool device)
{
    fprintf(f, "<h2>");
    text(f, title);
    fputs("</h2>\n<table>\n<tr>", f);
    if (full) {
        fputs("<th>#</th>", f);
    }
    fprintf(f, "<th>%s</th>", name);
    if (device) {
        fputs("<th>clinic</th><th>model</th><th>firmware</th>", f);
    }
    fputs(full ? "<th>machines</th><th>idle</th>" : "<th>machines</th>", f);
    fputs("<th>sessions</th><th>running h</th>", f);
    if (full) {
        fputs("<th>sessions / machine-day</th>", f);
    }
    fputs("<th>in spec %</th><th>rate in spec %</th><th>depth in spec %</th>"
          "<th>out of spec min</th><th>pigment mL</th><th>mL / running h</th>",
          f);
    if (full) {
        fputs("<th>cartridge violations</th><th>alerts crit/warn/info</th>"
              "<th>offline min in sessions</th><th>completeness %</th>",
              f);
    }
    fputs("<th>Cpk rate</th><th>Cpk depth</th></tr>\n", f);
    for (size_t i = 0; i < n; i++) {
        const struct nw_figures *x = &g[i].f;
        fputs("<tr>", f);
        if (full) {
            int_cell(f, g[i].rank);
        }
        cell(f, g[i].name, false);
        if (device) {
            cell(f, g[i].clinic, false);
            cell(f, g[i].model, false);
            cell(f, g[i].firmware, false);
        }
        int_cell(f, x->machines);
        if (full) {
            int_cell(f, x->idle_machines);
        }
        int_cell(f, x->sessions);
        num_cell(f, x->running_hours, 3);
        if (full) {
            num_cell(f, x->sessions_per_machine_day, 3);
        }
        num_cell(f, x->in_spec_pct, 2);
        num_cell(f, x->rate_in_spec_pct, 2);
        num_cell(f, x->depth_in_spec_pct, 2);
        num_cell(f, x->out_of_spec_minutes, 2);
        num_cell(f, x->pigment_ml, 3);
        num_cell(f, x->pigment_ml_per_running_hour, 3);
        if (full) {
            char a[64];
            int_cell(f, x->cartridge_violations);
            snprintf(a, sizeof(a), "%lld/%lld/%lld", (long long)x->alerts_critical,
                     (long long)x->alerts_warning, (long long)x->alerts_info);
            cell(f, a, true);
            num_cell(f, x->offline_minutes_in_sessions, 2);
            num_cell(f, x->completeness_pct, 2);
        }
        num_cell(f, x->rate_cpk, 3);
        num_cell(f, x->depth_cpk, 3);
        fputs("</tr>\n", f);
    }
    fputs("</table>\n", f);
}

void nw_report_write_html(const struct nw_report *r, const struct nw_report_meta *m, FILE *f)
{
    char from[32] = "", to[32] = "";
    nw_clock_format_rfc3339(r->from_ms, from);
    nw_clock_format_rfc3339(r->to_ms, to);
    fprintf(f,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width\">\n"
            "<title>needlewatch report %.10s to %.10s</title>\n<style>%s</style>\n"
            "</head>\n<body>\n<h1>needlewatch QA report</h1>\n<p>%.16s to %.16s UTC",
            from, to, style, from, to);
    if (m->clinic || m->device || m->model) {
        fputs(" &middot; filters:", f);
        if (m->clinic) {
            fputs(" clinic ", f);
            text(f, m->clinic);
        }
        if (m->device) {
            fputs(" device ", f);
            text(f, m->device);
        }
        if (m->model) {
            fputs(" model ", f);
            text(f, m->model);
        }
    }
    const struct nw_figures *x = &r->fleet;
    char b1[32], b2[32], b3[32], b4[32], b5[32];
    fprintf(f,
            "</p>\n<p>Fleet: %lld machines (%lld idle), %lld sessions, %s running hours, "
            "in spec %s %%, %s min out of spec, %s mL pigment, %lld cartridge violations, "
            "data completeness %s %%.</p>\n",
            (long long)x->machines, (long long)x->idle_machines, (long long)x->sessions,
            nw_fmt_num(b1, sizeof(b1), x->running_hours, 2),
            x->running_windows ? nw_fmt_num(b2, sizeof(b2), x->in_spec_pct, 2) : "&ndash;",
            nw_fmt_num(b3, sizeof(b3), x->out_of_spec_minutes, 1),
            nw_fmt_num(b4, sizeof(b4), x->pigment_ml, 3), (long long)x->cartridge_violations,
            x->windows_expected ? nw_fmt_num(b5, sizeof(b5), x->completeness_pct, 2) : "&ndash;");
    size_t n = r->nclinics;
    const char *labels[512];
    double v1[512], v2[512];
    n = n > 512 ? 512 : n;
    for (size_t i = 0; i < n; i++) {
        labels[i] = r->clinics[i].name;
        v1[i] = r->clinics[i].f.in_spec_pct;
        v2[i] = r->clinics[i].f.pigment_ml_per_running_hour;
    }
    hbars(f, "In spec % per clinic (rate and depth, of running time), worst first", labels, v1, n,
          100, "%", "#3a7d44", 1);
    hbars(f, "Pigment per running hour per clinic", labels, v2, n, 0, "mL/h", "#7d3c98", 2);
    histogram(f, r->models, r->nmodels);
    alerts_chart(f, r->days, r->ndays);
    group_table(f, "Clinics, worst first", "clinic", r->clinics, r->nclinics, true, false);
    if (m->by_device) {
        group_table(f, "Devices, worst first", "device", r->devices, r->ndevices, true, true);
    }
    group_table(f, "By firmware", "firmware", r->firmware, r->nfirmware, false, false);
    group_table(f, "By operator (pseudonymous code)", "operator", r->operators, r->noperators,
                false, false);
    fputs("<p class=\"note\">Generated by needlewatch " NW_VERSION
          ". Definitions of every figure: README, &ldquo;needlewatch report&rdquo;.</p>\n"
          "</body>\n</html>\n",
          f);
}

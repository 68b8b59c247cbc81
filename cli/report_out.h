/*
 * report_out.h - a computed report (report.h) in the four output formats.
 *
 *   table  sections of aligned tables that fit 80 columns: fleet summary,
 *          clinics (or devices with --by device) worst first as quality,
 *          use and incidents tables, firmware comparison, operators
 *   csv    one RFC 4180 table, a row per group: scope (fleet, clinic,
 *          device, firmware, operator), name, rank, clinic, model,
 *          firmware, then every figure
 *   json   schema "needlewatch.report/1" (cli/report.schema.json)
 *   html   report_html.c: one self-contained page with inline SVG charts
 *
 * Every number goes through nw_fmt_num() with a fixed number of decimals
 * per figure, so equal reports print byte-identical files.
 */
#ifndef CLI_REPORT_OUT_H
#define CLI_REPORT_OUT_H

#include "fmt.h"
#include "report.h"

#include <stdbool.h>
#include <stdio.h>

struct nw_report_meta {
    const char *clinic, *device, *model; /* the filters, NULL = all */
    bool by_device;
    const struct nw_specs *specs;
};

/* Writes r (borrowed) to f in fmt. */
void nw_report_write(const struct nw_report *r, const struct nw_report_meta *m, enum nw_format fmt,
                     FILE *f);

/* The HTML page (report_html.c). */
void nw_report_write_html(const struct nw_report *r, const struct nw_report_meta *m, FILE *f);

#endif

/*
 * table.h - a list result (devices, sessions, alerts, trace) rendered in
 * every output format from one description.
 *
 * A command declares its columns (name, kind, width limit in table format,
 * whether the table format shows it), adds rows of already formatted cells,
 * and renders:
 *
 *   table  header + aligned rows, text columns cut to max_width, numbers
 *          right-aligned; columns with table=false are left out (CSV and
 *          JSON always carry every column)
 *   csv    header line + one line per row (RFC 4180, fmt.h)
 *   json   {"<name>": [ {col: value, ...}, ... ]}; NUM and BOOL cells are
 *          written unquoted, an empty cell is null
 *   html   a self-contained page with one <table>
 *
 * Cells are copied into the table. Bounded by max_rows (NW_ERR_FULL).
 */
#ifndef CLI_TABLE_H
#define CLI_TABLE_H

#include "fmt.h"

#include <needlewatch/err.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

enum nw_tcol_kind { NW_TC_TEXT, NW_TC_NUM, NW_TC_BOOL };

struct nw_tcol {
    const char *name; /* also the JSON key and CSV header; static */
    enum nw_tcol_kind kind;
    unsigned max_width; /* table format: cut longer text (0: no limit) */
    bool table;         /* shown in the table format */
    const char *title;  /* table/html header; NULL: name */
};

struct nw_table;

/* cols (static, borrowed for the table's life), name = the JSON key of
 * the row array ("devices"). NULL when out of memory. Caller-owned. */
struct nw_table *nw_table_new(const char *name, const struct nw_tcol *cols, size_t ncols,
                              size_t max_rows);
void nw_table_destroy(struct nw_table **p);

/* Appends a row of ncols cells (each copied; NULL or "" = no value). */
enum nw_err nw_table_add(struct nw_table *t, const char *const *cells);

size_t nw_table_rows(const struct nw_table *t);

/* Writes the table to f in format fmt. title: page title for html. */
void nw_table_render(const struct nw_table *t, enum nw_format fmt, const char *title, FILE *f);

#endif

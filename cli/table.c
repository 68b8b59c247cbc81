/*
 * table.c - list results in four formats (table.h).
 */
#include "table.h"

#include <stdlib.h>
#include <string.h>

struct nw_table {
    const char *name;
    const struct nw_tcol *cols;
    size_t ncols, nrows, cap, max_rows;
    char **cells; /* nrows * ncols, NULL = no value */
};

struct nw_table *nw_table_new(const char *name, const struct nw_tcol *cols, size_t ncols,
                              size_t max_rows)
{
    struct nw_table *t = calloc(1, sizeof(*t));
    if (t) {
        t->name = name;
        t->cols = cols;
        t->ncols = ncols;
        t->max_rows = max_rows;
    }
    return t;
}

void nw_table_destroy(struct nw_table **p)
{
    if (p && *p) {
        struct nw_table *t = *p;
        for (size_t i = 0; i < t->nrows * t->ncols; i++) {
            free(t->cells[i]);
        }
        free(t->cells);
        free(t);
        *p = NULL;
    }
}

enum nw_err nw_table_add(struct nw_table *t, const char *const *cells)
{
    if (t->nrows >= t->max_rows) {
        return NW_ERR_FULL;
    }
    if (t->nrows == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        char **c = realloc(t->cells, cap * t->ncols * sizeof(*c));
        if (!c) {
            return NW_ERR_NOMEM;
        }
        t->cells = c;
        t->cap = cap;
    }
    char **row = t->cells + t->nrows * t->ncols;
    for (size_t k = 0; k < t->ncols; k++) {
        row[k] = NULL;
        if (cells[k] && cells[k][0]) {
            row[k] = strdup(cells[k]);
            if (!row[k]) {
                for (size_t j = 0; j < k; j++) {
                    free(row[j]);
                }
                return NW_ERR_NOMEM;
            }
        }
    }
    t->nrows++;
    return NW_OK;
}

size_t nw_table_rows(const struct nw_table *t)
{
    return t->nrows;
}

static const char *title_of(const struct nw_tcol *c)
{
    return c->title ? c->title : c->name;
}

static void render_table(const struct nw_table *t, FILE *f)
{
    size_t w[64] = {0};
    size_t nc = t->ncols < 64 ? t->ncols : 64;
    for (size_t k = 0; k < nc; k++) {
        w[k] = nw_fmt_width(title_of(&t->cols[k]));
        for (size_t r = 0; r < t->nrows; r++) {
            const char *c = t->cells[r * t->ncols + k];
            size_t cw = nw_fmt_width(c ? c : "-");
            w[k] = cw > w[k] ? cw : w[k];
        }
        if (t->cols[k].max_width && w[k] > t->cols[k].max_width) {
            w[k] = t->cols[k].max_width;
        }
    }
    for (long r = -1; r < (long)t->nrows; r++) {
        bool first = true;
        for (size_t k = 0; k < nc; k++) {
            if (!t->cols[k].table) {
                continue;
            }
            if (!first) {
                fputs("  ", f);
            }
            bool last = true;
            for (size_t j = k + 1; j < nc; j++) {
                last &= !t->cols[j].table;
            }
            const char *c = r < 0 ? title_of(&t->cols[k]) : t->cells[(size_t)r * t->ncols + k];
            bool right = t->cols[k].kind == NW_TC_NUM;
            const char *s = c ? c : "-";
            size_t cw = w[k];
            if (last && !right) { /* no trailing blanks */
                size_t sw = nw_fmt_width(s);
                cw = sw < w[k] ? sw : w[k];
            }
            nw_fmt_cell(f, s, cw, right);
            first = false;
        }
        fputc('\n', f);
    }
    if (t->nrows == 0) {
        fprintf(f, "(no %s)\n", t->name);
    }
}

static void render_csv(const struct nw_table *t, FILE *f)
{
    for (size_t k = 0; k < t->ncols; k++) {
        if (k) {
            fputc(',', f);
        }
        nw_fmt_csv_field(f, t->cols[k].name);
    }
    fputs("\r\n", f);
    for (size_t r = 0; r < t->nrows; r++) {
        for (size_t k = 0; k < t->ncols; k++) {
            const char *c = t->cells[r * t->ncols + k];
            if (k) {
                fputc(',', f);
            }
            nw_fmt_csv_field(f, c ? c : "");
        }
        fputs("\r\n", f);
    }
}

static void render_json(const struct nw_table *t, FILE *f)
{
    fputs("{", f);
    nw_fmt_json_str(f, t->name);
    fputs(": [", f);
    for (size_t r = 0; r < t->nrows; r++) {
        fputs(r ? ",\n  {" : "\n  {", f);
        for (size_t k = 0; k < t->ncols; k++) {
            const char *c = t->cells[r * t->ncols + k];
            if (k) {
                fputs(", ", f);
            }
            nw_fmt_json_str(f, t->cols[k].name);
            fputs(": ", f);
            if (!c) {
                fputs("null", f);
            } else if (t->cols[k].kind == NW_TC_TEXT) {
                nw_fmt_json_str(f, c);
            } else {
                fputs(c, f);
            }
        }
        fputs("}", f);
    }
    fputs(t->nrows ? "\n]}\n" : "]}\n", f);
}

static void render_html(const struct nw_table *t, const char *title, FILE *f)
{
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>", f);
    nw_fmt_html(f, title);
    fputs("</title>\n<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:"
          "collapse}td,th{border:1px solid #ccc;padding:2px 6px}td.n{text-align:right}"
          "th{background:#eee}</style></head><body>\n<h1>",
          f);
    nw_fmt_html(f, title);
    fputs("</h1>\n<table>\n<tr>", f);
    for (size_t k = 0; k < t->ncols; k++) {
        fputs("<th>", f);
        nw_fmt_html(f, title_of(&t->cols[k]));
        fputs("</th>", f);
    }
    fputs("</tr>\n", f);
    for (size_t r = 0; r < t->nrows; r++) {
        fputs("<tr>", f);
        for (size_t k = 0; k < t->ncols; k++) {
            const char *c = t->cells[r * t->ncols + k];
            fputs(t->cols[k].kind == NW_TC_NUM ? "<td class=\"n\">" : "<td>", f);
            nw_fmt_html(f, c ? c : "");
            fputs("</td>", f);
        }
        fputs("</tr>\n", f);
    }
    fputs("</table>\n</body></html>\n", f);
}

void nw_table_render(const struct nw_table *t, enum nw_format fmt, const char *title, FILE *f)
{
    switch (fmt) {
    case NW_FMT_CSV:
        render_csv(t, f);
        break;
    case NW_FMT_JSON:
        render_json(t, f);
        break;
    case NW_FMT_HTML:
        render_html(t, title, f);
        break;
    default:
        render_table(t, f);
        break;
    }
}

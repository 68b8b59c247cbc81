/*
 * fmt.h - the output formats and the escaping rules they need.
 *
 *   table  aligned columns for a terminal; text is cut to a column's width
 *          counting UTF-8 characters, never bytes ("Clínica São Paulo…")
 *   csv    RFC 4180: CRLF line ends, a field quoted when it holds a comma,
 *          quote, CR, LF or leading/trailing space; quotes doubled
 *   json   RFC 8259 strings (control characters as \u00XX), UTF-8 kept
 *   html   text with & < > " ' escaped
 *
 * Numbers are formatted once, by nw_fmt_num(), so every format prints the
 * same digits for the same value: the store equality test depends on it.
 */
#ifndef CLI_FMT_H
#define CLI_FMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

enum nw_format { NW_FMT_TABLE, NW_FMT_CSV, NW_FMT_JSON, NW_FMT_HTML };

/* "table" -> NW_FMT_TABLE...; false for an unknown word. */
bool nw_fmt_parse(const char *s, enum nw_format *out);

void nw_fmt_json_str(FILE *f, const char *s); /* with the quotes */
void nw_fmt_csv_field(FILE *f, const char *s);
void nw_fmt_html(FILE *f, const char *s);

/* Characters (code points) of a UTF-8 string. */
size_t nw_fmt_width(const char *s);

/* Prints s padded to width characters (right-aligned when right), cut with
 * "…" when longer. */
void nw_fmt_cell(FILE *f, const char *s, size_t width, bool right);

/* "%.*f" of x into out (caller-owned, size bytes), with "-0.00" printed as
 * "0.00"; "" when x is NaN (no value). Returns out. */
char *nw_fmt_num(char *out, size_t size, double x, int decimals);

#endif

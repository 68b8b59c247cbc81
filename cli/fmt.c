/*
 * fmt.c - escaping and alignment for the output formats (fmt.h).
 */
#include "fmt.h"

#include <math.h>
#include <string.h>

bool nw_fmt_parse(const char *s, enum nw_format *out)
{
    static const char *const words[] = {"table", "csv", "json", "html"};
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, words[i]) == 0) {
            *out = (enum nw_format)i;
            return true;
        }
    }
    return false;
}

void nw_fmt_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            fputc('\\', f);
            fputc(*p, f);
        } else if (*p < 0x20 || *p == 0x7f) {
            fprintf(f, "\\u%04x", *p);
        } else {
            fputc(*p, f);
        }
    }
    fputc('"', f);
}

void nw_fmt_csv_field(FILE *f, const char *s)
{
    size_t n = strlen(s);
    bool quote = strpbrk(s, ",\"\r\n") != NULL || (n && (s[0] == ' ' || s[n - 1] == ' '));
    if (!quote) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') {
            fputc('"', f);
        }
        fputc(*s, f);
    }
    fputc('"', f);
}

void nw_fmt_html(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&':
            fputs("&amp;", f);
            break;
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        case '\'':
            fputs("&#39;", f);
            break;
        default:
            fputc(*s, f);
        }
    }
}

size_t nw_fmt_width(const char *s)
{
    size_t w = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        w += (*p & 0xc0) != 0x80;
    }
    return w;
}

void nw_fmt_cell(FILE *f, const char *s, size_t width, bool right)
{
    size_t w = nw_fmt_width(s);
    if (w > width) { /* cut after width-1 characters, then "…" */
        size_t chars = 0;
        const unsigned char *p = (const unsigned char *)s;
        while (*p) {
            if ((*p & 0xc0) != 0x80 && chars++ == width - 1) {
                break;
            }
            p++;
        }
        fwrite(s, 1, (size_t)(p - (const unsigned char *)s), f);
        fputs(width ? "\xe2\x80\xa6" : "", f);
        return;
    }
    if (right) {
        for (size_t i = w; i < width; i++) {
            fputc(' ', f);
        }
    }
    fputs(s, f);
    if (!right) {
        for (size_t i = w; i < width; i++) {
            fputc(' ', f);
        }
    }
}

char *nw_fmt_num(char *out, size_t size, double x, int decimals)
{
    if (isnan(x)) {
        out[0] = '\0';
        return out;
    }
    snprintf(out, size, "%.*f", decimals, x);
    if (out[0] == '-') { /* "-0.00" -> "0.00" */
        bool zero = true;
        for (const char *p = out + 1; *p; p++) {
            if (*p != '0' && *p != '.') {
                zero = false;
            }
        }
        if (zero) {
            memmove(out, out + 1, strlen(out));
        }
    }
    return out;
}

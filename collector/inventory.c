/*
 * inventory.c - the device -> clinic, model table, from CSV.
 *
 * Entries live in one array; an open-addressing table of indexes (load
 * factor <= 1/2, FNV-1a) finds them. Both are sized once from the line
 * count, so lookups never allocate.
 */
#include "inventory.h"

#include <needlewatch/hash.h>
#include <needlewatch/validate.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LINE_MAX_BYTES 1024
#define FIELDS 3

struct nw_inventory {
    struct nw_inventory_entry *entries;
    size_t count;
    uint32_t *slots; /* index + 1; 0 = empty */
    size_t nslots;
};

struct nw_inventory *nw_inventory_empty(void)
{
    return calloc(1, sizeof(struct nw_inventory));
}

void nw_inventory_destroy(struct nw_inventory **p)
{
    if (!p || !*p) {
        return;
    }
    free((*p)->entries);
    free((*p)->slots);
    free(*p);
    *p = NULL;
}

const struct nw_inventory_entry *nw_inventory_find(const struct nw_inventory *inv,
                                                   const char *device)
{
    if (!inv || inv->nslots == 0) {
        return NULL;
    }
    for (size_t i = nw_hash_str(device) & (inv->nslots - 1), n = 0; n < inv->nslots;
         i = (i + 1) & (inv->nslots - 1), n++) {
        uint32_t s = inv->slots[i];
        if (s == 0) {
            return NULL;
        }
        if (strcmp(inv->entries[s - 1].device, device) == 0) {
            return &inv->entries[s - 1];
        }
    }
    return NULL;
}

size_t nw_inventory_count(const struct nw_inventory *inv)
{
    return inv ? inv->count : 0;
}

/* Splits one CSV line (RFC 4180 quotes) into FIELDS fields; false if it
 * is not exactly that. Fields are written into out[i] (cap bytes each). */
static bool split_csv(const char *line, char out[FIELDS][NW_CLINIC_MAX + 1], const char **why)
{
    size_t f = 0, n = 0;
    bool quoted = false, was_quoted = false;
    for (const char *p = line;; p++) {
        char c = *p;
        if (quoted) {
            if (c == '\0') {
                *why = "unterminated quote";
                return false;
            }
            if (c == '"' && p[1] == '"') {
                c = '"', p++;
            } else if (c == '"') {
                quoted = false;
                continue;
            }
        } else if (c == '"' && n == 0 && !was_quoted) {
            quoted = was_quoted = true;
            continue;
        } else if (c == ',' || c == '\0') {
            out[f][n] = '\0';
            if (++f == FIELDS || c == '\0') {
                if (c != '\0' || f != FIELDS) {
                    *why = "expected 3 fields: device,clinic,model";
                    return false;
                }
                return true;
            }
            n = 0, was_quoted = false;
            continue;
        } else if (was_quoted) {
            *why = "text after a closing quote";
            return false;
        }
        if (n >= NW_CLINIC_MAX) {
            *why = "field longer than 128 bytes";
            return false;
        }
        out[f][n++] = c;
    }
}

static const char *check_entry(char fields[FIELDS][NW_CLINIC_MAX + 1])
{
    if (!nw_valid_device_id(fields[0])) {
        return "device id needs 1-64 of [A-Za-z0-9_-]";
    }
    if (!fields[1][0] || !nw_valid_text(fields[1], NW_CLINIC_MAX)) {
        return "clinic must be 1-128 bytes of UTF-8 without control characters";
    }
    if (!nw_valid_id(fields[2], NW_VERSION_MAX, false)) {
        return "model needs 1-32 of [A-Za-z0-9._:-]";
    }
    return NULL;
}

static enum nw_err add(struct nw_inventory *inv, char fields[FIELDS][NW_CLINIC_MAX + 1],
                       const char **why)
{
    if (nw_inventory_find(inv, fields[0])) {
        *why = "device listed twice";
        return NW_ERR_CONFIG;
    }
    struct nw_inventory_entry *e = &inv->entries[inv->count];
    snprintf(e->device, sizeof(e->device), "%s", fields[0]);
    snprintf(e->clinic, sizeof(e->clinic), "%s", fields[1]);
    snprintf(e->model, sizeof(e->model), "%s", fields[2]);
    size_t i = nw_hash_str(e->device) & (inv->nslots - 1);
    while (inv->slots[i]) {
        i = (i + 1) & (inv->nslots - 1);
    }
    inv->slots[i] = (uint32_t)++inv->count;
    return NW_OK;
}

static size_t count_lines(FILE *f)
{
    size_t n = 0;
    int c;
    while ((c = fgetc(f)) != EOF) {
        n += c == '\n';
    }
    rewind(f);
    return n + 1;
}

static enum nw_err parse_file(FILE *f, const char *path, struct nw_inventory *inv,
                              struct nw_error *out_err)
{
    char line[LINE_MAX_BYTES + 2];
    char fields[FIELDS][NW_CLINIC_MAX + 1];
    const char *why = NULL;
    bool header = false;
    for (int lineno = 1; fgets(line, sizeof(line), f); lineno++) {
        size_t len = strcspn(line, "\r\n");
        if (len > LINE_MAX_BYTES) {
            return nw_error_set(out_err, NW_ERR_CONFIG, "%s:%d: line longer than %d bytes", path,
                                lineno, LINE_MAX_BYTES);
        }
        line[len] = '\0';
        if (len == 0 || line[0] == '#') {
            continue;
        }
        if (!split_csv(line, fields, &why) || (header && (why = check_entry(fields)))) {
            return nw_error_set(out_err, NW_ERR_CONFIG, "%s:%d: %s", path, lineno, why);
        }
        if (!header) {
            if (strcmp(fields[0], "device") || strcmp(fields[1], "clinic") ||
                strcmp(fields[2], "model")) {
                return nw_error_set(out_err, NW_ERR_CONFIG,
                                    "%s:%d: expected the header device,clinic,model", path, lineno);
            }
            header = true;
            continue;
        }
        if (add(inv, fields, &why) != NW_OK) {
            return nw_error_set(out_err, NW_ERR_CONFIG, "%s:%d: %s \"%s\"", path, lineno, why,
                                fields[0]);
        }
    }
    if (!header) {
        return nw_error_set(out_err, NW_ERR_CONFIG,
                            "%s: empty (needs the header "
                            "device,clinic,model)",
                            path);
    }
    return NW_OK;
}

enum nw_err nw_inventory_load(const char *path, struct nw_inventory **out, struct nw_error *out_err)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        return nw_error_set(out_err, errno == ENOENT ? NW_ERR_NOT_FOUND : NW_ERR_IO,
                            "inventory %s: %s", path, strerror(errno));
    }
    size_t lines = count_lines(f);
    if (lines > NW_INVENTORY_MAX_DEVICES + 1) {
        fclose(f);
        return nw_error_set(out_err, NW_ERR_CONFIG, "inventory %s: more than %d devices", path,
                            NW_INVENTORY_MAX_DEVICES);
    }
    struct nw_inventory *inv = nw_inventory_empty();
    size_t nslots = 16;
    while (nslots < 2 * lines) {
        nslots *= 2;
    }
    if (inv) {
        inv->entries = calloc(lines, sizeof(*inv->entries));
        inv->slots = calloc(nslots, sizeof(*inv->slots));
        inv->nslots = nslots;
    }
    enum nw_err rc = !inv || !inv->entries || !inv->slots
                         ? nw_error_set(out_err, NW_ERR_NOMEM, "inventory: out of memory")
                         : parse_file(f, path, inv, out_err);
    fclose(f);
    if (rc != NW_OK) {
        nw_inventory_destroy(&inv);
        return rc;
    }
    *out = inv;
    return NW_OK;
}

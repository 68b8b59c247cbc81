/*
 * spec.c - spec windows from the collector's INI file (spec.h).
 *
 * lib/config refuses unknown sections and keys, which is right for the
 * program that owns a file and wrong for a second reader. So the file is
 * read here first and every line the CLI does not use is blanked (not
 * removed: line numbers in error messages stay those of the file), then the
 * rest goes through nw_config_load_string() with the CLI's typed tables.
 */
#include "spec.h"

#include <needlewatch/config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct nw_specs {
    struct nw_spec spec[NW_SPEC_MAX_MODELS + 1]; /* [0] = default */
    size_t n;
};

struct file_cfg {
    struct nw_cfg_range rate_hz, depth_mm;
    double service_hours;
    char store[1024];
    char collector[512];
};

#define F(m) NW_CFG_FIELD(struct file_cfg, m)
static const struct nw_cfg_key keys[] = {
    {"spec", "rate_hz", NW_CFG_RANGE, F(rate_hz), .def = "100..140", .min = 0, .max = 1000,
     .help = "default in-spec needle rate"},
    {"spec", "depth_mm", NW_CFG_RANGE, F(depth_mm), .def = "0.25..0.50", .min = 0, .max = 5,
     .help = "default in-spec needle depth"},
    {"spec", "service_hours", NW_CFG_DOUBLE, F(service_hours), .def = "500", .min = 1,
     .max = 1000000, .help = "running hours between services"},
    {"needlewatch", "store", NW_CFG_STR, F(store), .help = "the CLI's default --store"},
    {"needlewatch", "collector", NW_CFG_STR, F(collector), .help = "the CLI's default --collector"},
};
#undef F
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

struct model_cfg {
    struct nw_cfg_range rate_hz, depth_mm;
    double service_hours;
};

#define M(m) NW_CFG_FIELD(struct model_cfg, m)
static const struct nw_cfg_key model_keys[] = {
    {"model", "rate_hz", NW_CFG_RANGE, M(rate_hz), .def = "100..140", .min = 0, .max = 1000},
    {"model", "depth_mm", NW_CFG_RANGE, M(depth_mm), .def = "0.25..0.50", .min = 0, .max = 5},
    {"model", "service_hours", NW_CFG_DOUBLE, M(service_hours), .def = "500", .min = 1,
     .max = 1000000},
};
#undef M

struct nw_specs *nw_specs_new(void)
{
    struct nw_specs *s = calloc(1, sizeof(*s));
    if (s) {
        s->spec[0] = (struct nw_spec){"", 100, 140, 0.25, 0.50, 500};
        s->n = 1;
    }
    return s;
}

void nw_specs_destroy(struct nw_specs **p)
{
    if (p && *p) {
        free(*p);
        *p = NULL;
    }
}

struct load {
    struct nw_specs *s;
    struct model_cfg m[NW_SPEC_MAX_MODELS + 1];
    bool set[NW_SPEC_MAX_MODELS + 1][3]; /* which model keys the file set */
};

static enum nw_err on_model(void *user, const char *kind, const char *name, const char *key,
                            const char *value, int line, struct nw_error *err)
{
    (void)line;
    struct load *ld = user;
    struct nw_specs *s = ld->s;
    if (strcmp(kind, "model") != 0) {
        return nw_error_set(err, NW_ERR_CONFIG, "unknown section kind");
    }
    size_t i = 1;
    while (i < s->n && strcmp(s->spec[i].model, name) != 0) {
        i++;
    }
    if (!key) {
        if (i < s->n) {
            return NW_OK;
        }
        if (s->n > NW_SPEC_MAX_MODELS || strlen(name) >= sizeof(s->spec[0].model)) {
            return nw_error_set(err, NW_ERR_CONFIG, "too many models or name too long");
        }
        snprintf(s->spec[s->n].model, sizeof(s->spec[0].model), "%s", name);
        s->n++;
        return nw_config_defaults(model_keys, 3, &ld->m[i], err);
    }
    for (size_t k = 0; k < 3; k++) {
        if (strcmp(key, model_keys[k].name) == 0) {
            ld->set[i][k] = true;
            return nw_config_apply_key(model_keys, 3, &ld->m[i], "model", key, value, err);
        }
    }
    return NW_OK; /* a collector key (cartridge_max_cycles, ...) */
}

static bool used_key(const char *section, const char *key)
{
    if (strcmp(section, "spec") == 0) {
        return !key[0] || !strcmp(key, "rate_hz") || !strcmp(key, "depth_mm") ||
               !strcmp(key, "service_hours");
    }
    return strcmp(section, "needlewatch") == 0 || strncmp(section, "model ", 6) == 0;
}

/* Blanks the lines the CLI does not use, in place. */
static void filter(char *text)
{
    char section[128] = "";
    for (char *line = text; *line;) {
        char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        char *p = line;
        while (p < line + len && (*p == ' ' || *p == '\t' || *p == '\r')) {
            p++;
        }
        bool keep = true;
        if (p < line + len && *p == '[') {
            char *close = memchr(p, ']', (size_t)(line + len - p));
            size_t n = close ? (size_t)(close - p - 1) : 0;
            snprintf(section, sizeof(section), "%.*s", (int)(n < 127 ? n : 127), p + 1);
            keep = used_key(section, "");
        } else if (p < line + len && *p != ';' && *p != '#') {
            char key[64];
            size_t k = 0;
            while (p + k < line + len && p[k] != '=' && p[k] != ':' && p[k] != ' ' &&
                   p[k] != '\t' && k < sizeof(key) - 1) {
                key[k] = p[k];
                k++;
            }
            key[k] = '\0';
            keep = section[0] && used_key(section, key);
        }
        if (!keep) {
            memset(line, ' ', len);
        }
        line += len + (end ? 1 : 0);
    }
}

enum nw_err nw_specs_load(struct nw_specs *s, const char *path, char *store, size_t store_size,
                          char *collector, size_t collector_size, struct nw_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        return nw_error_set(err, errno == ENOENT ? NW_ERR_NOT_FOUND : NW_ERR_IO,
                            "cannot read %s: %s", path, strerror(errno));
    }
    char *text = malloc(NW_CONFIG_MAX_FILE + 1);
    size_t len = text ? fread(text, 1, NW_CONFIG_MAX_FILE + 1, f) : 0;
    fclose(f);
    if (!text) {
        return nw_error_set(err, NW_ERR_NOMEM, "out of memory");
    }
    if (len > NW_CONFIG_MAX_FILE) {
        free(text);
        return nw_error_set(err, NW_ERR_CONFIG, "%s: larger than %d bytes", path,
                            NW_CONFIG_MAX_FILE);
    }
    text[len] = '\0';
    if (strlen(text) != len) {
        free(text);
        return nw_error_set(err, NW_ERR_CONFIG, "%s: contains a NUL byte", path);
    }
    filter(text);
    struct file_cfg cfg;
    struct load *ld = calloc(1, sizeof(*ld));
    enum nw_err rc = ld ? nw_config_defaults(keys, NKEYS, &cfg, err) : NW_ERR_NOMEM;
    if (rc == NW_OK) {
        ld->s = s;
        rc = nw_config_load_string(path, text, len, keys, NKEYS, &cfg, on_model, ld, err);
    }
    if (rc == NW_OK) {
        struct nw_spec *d = &s->spec[0];
        d->rate_lo = cfg.rate_hz.lo, d->rate_hi = cfg.rate_hz.hi;
        d->depth_lo = cfg.depth_mm.lo, d->depth_hi = cfg.depth_mm.hi;
        d->service_hours = cfg.service_hours;
        for (size_t i = 1; i < s->n; i++) { /* unset model keys inherit [spec] */
            struct nw_spec *m = &s->spec[i];
            m->rate_lo = ld->set[i][0] ? ld->m[i].rate_hz.lo : d->rate_lo;
            m->rate_hi = ld->set[i][0] ? ld->m[i].rate_hz.hi : d->rate_hi;
            m->depth_lo = ld->set[i][1] ? ld->m[i].depth_mm.lo : d->depth_lo;
            m->depth_hi = ld->set[i][1] ? ld->m[i].depth_mm.hi : d->depth_hi;
            m->service_hours = ld->set[i][2] ? ld->m[i].service_hours : d->service_hours;
        }
        if (cfg.store[0] && store) {
            snprintf(store, store_size, "%s", cfg.store);
        }
        if (cfg.collector[0] && collector) {
            snprintf(collector, collector_size, "%s", cfg.collector);
        }
    }
    free(ld);
    free(text);
    return rc;
}

const struct nw_spec *nw_specs_for(const struct nw_specs *s, const char *model)
{
    return &s->spec[nw_specs_index(s, model)];
}

size_t nw_specs_index(const struct nw_specs *s, const char *model)
{
    for (size_t i = 1; i < s->n; i++) {
        if (strcmp(s->spec[i].model, model) == 0) {
            return i;
        }
    }
    return 0;
}

size_t nw_specs_count(const struct nw_specs *s)
{
    return s->n;
}

const struct nw_spec *nw_specs_at(const struct nw_specs *s, size_t i)
{
    return &s->spec[i < s->n ? i : 0];
}

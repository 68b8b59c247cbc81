/*
 * fuzz_config.c - feeds arbitrary bytes to the INI loader and the time parsers.
 *
 * Input: the whole buffer is an INI file for a table with every key type
 * and a [model "NAME"] section handler; its first line (up to 64 bytes) is
 * also given to the RFC 3339, relative-time and duration parsers.
 *
 * Invariants (a failed check prints what it saw and aborts):
 *  - a failed load is NW_ERR_CONFIG or NW_ERR_NOMEM with a message that
 *    starts with the file name;
 *  - a successful load dumped with nw_config_dump() (models too) loads back
 *    to exactly the same values, secret aside;
 *  - a parsed time formats and parses back to the same millisecond, and a
 *    parsed duration formats and parses back to the same value.
 */
#include <needlewatch/clock.h>
#include <needlewatch/config.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_config: check failed at line %d: %s: ", __LINE__, #cond);        \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct cfg {
    char name[40];
    char secret[24];
    char path[48];
    int64_t i;
    uint64_t u;
    double d;
    bool b;
    int64_t dur;
    uint64_t sz;
    struct nw_cfg_range r;
    int e;
};

static const char *const words[] = {"sim", "replay", "pipe", NULL};

static const struct nw_cfg_key keys[] = {
    {"a", "name", NW_CFG_STR, NW_CFG_FIELD(struct cfg, name), .def = "x"},
    {"a", "secret", NW_CFG_STR, NW_CFG_FIELD(struct cfg, secret), .flags = NW_CFG_SECRET},
    {"a", "path", NW_CFG_PATH, NW_CFG_FIELD(struct cfg, path), .def = "/tmp"},
    {"a", "i", NW_CFG_INT, NW_CFG_FIELD(struct cfg, i), .def = "-5", .min = -1000, .max = 1e6},
    {"b", "u", NW_CFG_UINT, NW_CFG_FIELD(struct cfg, u), .def = "5"},
    {"b", "d", NW_CFG_DOUBLE, NW_CFG_FIELD(struct cfg, d), .def = "0.5", .min = -1e300,
     .max = 1e300},
    {"b", "b", NW_CFG_BOOL, NW_CFG_FIELD(struct cfg, b), .def = "no"},
    {"c", "dur", NW_CFG_DURATION_MS, NW_CFG_FIELD(struct cfg, dur), .def = "1s"},
    {"c", "sz", NW_CFG_SIZE, NW_CFG_FIELD(struct cfg, sz), .def = "64K", .min = 0, .max = 1e15},
    {"c", "r", NW_CFG_RANGE, NW_CFG_FIELD(struct cfg, r), .def = "1..2"},
    {"c", "e", NW_CFG_ENUM, NW_CFG_FIELD(struct cfg, e), .def = "pipe", .choices = words},
};
#define N_KEYS (sizeof(keys) / sizeof(keys[0]))

struct model {
    char name[56];
    struct nw_cfg_range rate;
    uint64_t hours;
};

static const struct nw_cfg_key model_keys[] = {
    {"model", "rate_hz", NW_CFG_RANGE, NW_CFG_FIELD(struct model, rate), .def = "100..140",
     .min = 0, .max = 10000},
    {"model", "service_hours", NW_CFG_UINT, NW_CFG_FIELD(struct model, hours), .def = "500"},
};
#define N_MODEL_KEYS (sizeof(model_keys) / sizeof(model_keys[0]))

struct models {
    struct model m[8];
    size_t n;
};

static enum nw_err on_model(void *user, const char *kind, const char *name, const char *key,
                            const char *value, int line, struct nw_error *err)
{
    struct models *ms = user;
    (void)line;
    if (strcmp(kind, "model") != 0) {
        return nw_error_set(err, NW_ERR_CONFIG, "unknown section kind");
    }
    if (!key) {
        if (ms->n == 8) {
            return nw_error_set(err, NW_ERR_CONFIG, "too many models");
        }
        struct model *m = &ms->m[ms->n++];
        snprintf(m->name, sizeof(m->name), "%s", name);
        return nw_config_defaults(model_keys, N_MODEL_KEYS, m, err);
    }
    for (size_t i = 0; i < ms->n; i++) {
        if (strcmp(ms->m[i].name, name) == 0) {
            return nw_config_apply_key(model_keys, N_MODEL_KEYS, &ms->m[i], kind, key, value, err);
        }
    }
    CHECK(0, "key for a model that was never announced: %s", name);
    return NW_ERR_INVAL;
}

static char *dump_all(const struct cfg *c, const struct models *ms, size_t *len)
{
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    CHECK(f != NULL, "open_memstream");
    nw_config_dump(f, keys, N_KEYS, c, NULL);
    for (size_t i = 0; i < ms->n; i++) {
        fputc('\n', f);
        nw_config_dump(f, model_keys, N_MODEL_KEYS, &ms->m[i], ms->m[i].name);
    }
    fclose(f);
    return buf;
}

static void check_round_trip(const struct cfg *c, const struct models *ms)
{
    size_t len;
    char *text = dump_all(c, ms, &len);
    struct cfg back;
    struct models back_ms;
    struct nw_error err;
    memset(&back, 0, sizeof(back));
    memset(&back_ms, 0, sizeof(back_ms));
    CHECK(nw_config_defaults(keys, N_KEYS, &back, &err) == NW_OK, "%s", err.msg);
    enum nw_err rc =
        nw_config_load_string("dump", text, len, keys, N_KEYS, &back, on_model, &back_ms, &err);
    CHECK(rc == NW_OK, "%s\n%s", err.msg, text);
    memcpy(back.secret, c->secret, sizeof(back.secret));
    CHECK(memcmp(&back, c, sizeof(back)) == 0, "values differ after dump:\n%s", text);
    CHECK(back_ms.n == ms->n, "model count");
    for (size_t i = 0; i < ms->n; i++) {
        CHECK(memcmp(&back_ms.m[i], &ms->m[i], sizeof(ms->m[i])) == 0, "model %zu", i);
    }
    free(text);
}

static void fuzz_times(const uint8_t *data, size_t size)
{
    char s[65];
    size_t n = 0;
    while (n < size && n < sizeof(s) - 1 && data[n] != '\n' && data[n] != '\0') {
        s[n] = (char)data[n];
        n++;
    }
    s[n] = '\0';
    int64_t ms, back;
    char text[NW_CLOCK_RFC3339_SIZE], dur[NW_CLOCK_DURATION_SIZE];
    if (nw_clock_parse_time(s, 1795314780123, &ms, NULL) == NW_OK &&
        nw_clock_format_rfc3339(ms, text) == NW_OK) {
        CHECK(nw_clock_parse_rfc3339(text, &back, NULL) == NW_OK && back == ms, "%s -> %s", s,
              text);
    }
    if (nw_clock_parse_duration_ms(s, &ms, NULL) == NW_OK) {
        nw_clock_format_duration(ms, dur);
        CHECK(nw_clock_parse_duration_ms(dur, &back, NULL) == NW_OK && back == ms, "%s -> %s", s,
              dur);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cfg c;
    struct models ms;
    struct nw_error err;
    memset(&c, 0, sizeof(c));
    memset(&ms, 0, sizeof(ms));
    CHECK(nw_config_defaults(keys, N_KEYS, &c, &err) == NW_OK, "%s", err.msg);
    enum nw_err rc = nw_config_load_string("fuzz.ini", (const char *)data, size, keys, N_KEYS, &c,
                                           on_model, &ms, &err);
    if (rc == NW_OK) {
        check_round_trip(&c, &ms);
    } else {
        CHECK(rc == NW_ERR_CONFIG || rc == NW_ERR_NOMEM, "rc %d", rc);
        CHECK(strncmp(err.msg, "fuzz.ini:", 9) == 0, "%s", err.msg);
    }
    fuzz_times(data, size);
    return 0;
}

/* test_config.c - typed INI loading: good files, hostile files, flags, help, dump. */
#include <needlewatch/config.h>
#include <needlewatch/log.h>

#include <locale.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ---- a program's config, as the agent or collector would declare it ---- */

enum source { SRC_SIM, SRC_REPLAY, SRC_PIPE };

struct cfg {
    char broker[64];
    char token[32];
    bool tls;
    uint64_t batch;
    int64_t flush_ms;
    char spool_dir[64];
    uint64_t spool_max;
    int source;
    int64_t clock_offset;
    double ratio;
    struct nw_cfg_range rate_hz;
};

static const char *const sources[] = {"sim", "replay", "pipe", NULL};

static const struct nw_cfg_key keys[] = {
    {"mqtt", "broker", NW_CFG_STR, NW_CFG_FIELD(struct cfg, broker), .def = "mqtt://localhost:1883",
     .help = "Broker URL"},
    {"mqtt", "token", NW_CFG_STR, NW_CFG_FIELD(struct cfg, token), .help = "Broker password",
     .flags = NW_CFG_SECRET},
    {"mqtt", "tls", NW_CFG_BOOL, NW_CFG_FIELD(struct cfg, tls), .def = "false", .help = "Use TLS"},
    {"store", "batch_size", NW_CFG_UINT, NW_CFG_FIELD(struct cfg, batch), .def = "500", .min = 1,
     .max = 100000, .help = "Windows per store write"},
    {"store", "flush", NW_CFG_DURATION_MS, NW_CFG_FIELD(struct cfg, flush_ms), .def = "1s",
     .min = 100, .max = 3600000, .help = "Longest wait before a partial batch is written"},
    {"store", "spool_dir", NW_CFG_PATH, NW_CFG_FIELD(struct cfg, spool_dir),
     .def = "/var/lib/needlewatch/spool", .help = "Where batches wait while the store is down"},
    {"store", "spool_max", NW_CFG_SIZE, NW_CFG_FIELD(struct cfg, spool_max), .def = "256MiB",
     .min = 1024, .max = 1073741824, .help = "Spool bound | then drop oldest"},
    {"agent", "source", NW_CFG_ENUM, NW_CFG_FIELD(struct cfg, source), .def = "sim",
     .choices = sources, .help = "Sensor source"},
    {"agent", "clock_offset", NW_CFG_INT, NW_CFG_FIELD(struct cfg, clock_offset), .def = "0",
     .min = -100, .max = 100, .help = "Test skew"},
    {"agent", "ratio", NW_CFG_DOUBLE, NW_CFG_FIELD(struct cfg, ratio), .def = "0.5", .min = 0,
     .max = 1, .help = "Sampling ratio"},
    {"alerts", "rate_hz", NW_CFG_RANGE, NW_CFG_FIELD(struct cfg, rate_hz), .def = "100..140",
     .min = 0, .max = 1000, .help = "Default needle rate window"},
};

/* ---- per-model sections: [model "DG-3"] with a second table ---- */

struct model {
    char name[32];
    struct nw_cfg_range rate_hz, depth_mm;
    uint64_t service_hours;
};

static const struct nw_cfg_key model_keys[] = {
    {"model", "rate_hz", NW_CFG_RANGE, NW_CFG_FIELD(struct model, rate_hz), .def = "100..140",
     .min = 0, .max = 10000, .help = "In-spec needle rate"},
    {"model", "depth_mm", NW_CFG_RANGE, NW_CFG_FIELD(struct model, depth_mm), .def = "0.25..0.50",
     .min = 0, .max = 10, .help = "In-spec needle depth"},
    {"model", "service_hours", NW_CFG_UINT, NW_CFG_FIELD(struct model, service_hours), .def = "500",
     .min = 1, .max = 100000, .help = "Running hours between services"},
};

struct models {
    struct model m[4];
    size_t n;
    int calls_begin;
};

static struct model *find_model(struct models *ms, const char *name)
{
    for (size_t i = 0; i < ms->n; i++) {
        if (strcmp(ms->m[i].name, name) == 0) {
            return &ms->m[i];
        }
    }
    return NULL;
}

static enum nw_err on_model(void *user, const char *kind, const char *name, const char *key,
                            const char *value, int line, struct nw_error *err)
{
    struct models *ms = user;
    (void)line;
    if (strcmp(kind, "model") != 0) {
        return nw_error_set(err, NW_ERR_CONFIG, "unknown section kind (expected model)");
    }
    if (!key) {
        ms->calls_begin++;
        if (ms->n == N(ms->m)) {
            return nw_error_set(err, NW_ERR_CONFIG, "too many [model] sections (max %zu)",
                                N(ms->m));
        }
        struct model *m = &ms->m[ms->n++];
        snprintf(m->name, sizeof(m->name), "%s", name);
        return nw_config_defaults(model_keys, N(model_keys), m, err);
    }
    return nw_config_apply_key(model_keys, N(model_keys), find_model(ms, name), kind, key, value,
                               err);
}

/* ---- helpers ---- */

static struct cfg defaults(void)
{
    struct cfg c;
    memset(&c, 0xA5, sizeof(c)); /* garbage, so defaults must set every field */
    struct nw_error err;
    assert_int_equal(nw_config_defaults(keys, N(keys), &c, &err), NW_OK);
    return c;
}

/* Writes text to a fresh temp file in $TMPDIR; the caller unlinks path. */
static void write_temp(const char *text, size_t len, char *path, size_t size)
{
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(path, size, "%s/nwcfg-XXXXXX", tmp);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
}

/* Loads text through a real file; returns the code, message in *err with the
 * temp path replaced by "collector.ini" so tables can hold exact messages. */
static enum nw_err load_via_file(const char *text, size_t len, struct cfg *c, struct models *ms,
                                 struct nw_error *err)
{
    char path[256];
    write_temp(text, len, path, sizeof(path));
    enum nw_err rc = nw_config_load_file(path, keys, N(keys), c, ms ? on_model : NULL, ms, err);
    unlink(path);
    size_t plen = strlen(path);
    static const char name[] = "collector.ini";
    if (strncmp(err->msg, path, plen) == 0 && plen >= sizeof(name) - 1) {
        memmove(err->msg + sizeof(name) - 1, err->msg + plen, strlen(err->msg + plen) + 1);
        memcpy(err->msg, name, sizeof(name) - 1);
    }
    return rc;
}

/* ---- good files ---- */

static void test_defaults(void **state)
{
    (void)state;
    struct cfg c = defaults();
    assert_string_equal(c.broker, "mqtt://localhost:1883");
    assert_string_equal(c.token, "");
    assert_false(c.tls);
    assert_int_equal(c.batch, 500);
    assert_int_equal(c.flush_ms, 1000);
    assert_string_equal(c.spool_dir, "/var/lib/needlewatch/spool");
    assert_int_equal(c.spool_max, 256u << 20);
    assert_int_equal(c.source, SRC_SIM);
    assert_int_equal(c.clock_offset, 0);
    assert_true(c.ratio == 0.5);
    assert_true(c.rate_hz.lo == 100 && c.rate_hz.hi == 140);
}

static void assert_full_example(const struct cfg *c)
{
    assert_string_equal(c->broker, "mqtts://broker.example:8883/x?a=b");
    assert_string_equal(c->token, "s3cr#t;x");
    assert_true(c->tls);
    assert_int_equal(c->batch, 2000);
    assert_int_equal(c->flush_ms, 90000);
    assert_string_equal(c->spool_dir, "/srv/spool dir");
    assert_int_equal(c->spool_max, 64u << 10);
    assert_int_equal(c->source, SRC_REPLAY);
    assert_int_equal(c->clock_offset, -100);
    assert_true(c->ratio == 0.25);
    assert_true(c->rate_hz.lo == 95.5 && c->rate_hz.hi == 150);
}

static const char full_example[] = "; needlewatch collector\n"
                                   "# comments of both kinds\n"
                                   "\n"
                                   "[mqtt]\n"
                                   "broker = mqtts://broker.example:8883/x?a=b ; inline comment\n"
                                   "token = s3cr#t;x\n"
                                   "tls: yes\n"
                                   "   [ store ]   ; spaces inside brackets are trimmed\n"
                                   "\tbatch_size   =   2000\n"
                                   "  flush = 1.5m\n"
                                   "spool_dir = /srv/spool dir\n"
                                   "spool_max = 64K\n"
                                   "[agent]\n"
                                   "source = REPLAY\n"
                                   "clock_offset = -100\n"
                                   "ratio = 2.5e-1\n"
                                   "[alerts]\n"
                                   "rate_hz = 95.5 .. 150\n";

static void test_full_example(void **state)
{
    (void)state;
    struct cfg c = defaults();
    struct nw_error err;
    assert_int_equal(nw_config_load_string("collector.ini", full_example, strlen(full_example),
                                           keys, N(keys), &c, NULL, NULL, &err),
                     NW_OK);
    assert_full_example(&c);
    c = defaults();
    assert_int_equal(load_via_file(full_example, strlen(full_example), &c, NULL, &err), NW_OK);
    assert_string_equal(err.msg, "");
    assert_full_example(&c);
}

/* The same file with CRLF line endings and a UTF-8 byte order mark. */
static void test_crlf_and_bom(void **state)
{
    (void)state;
    char text[4096] = "\xEF\xBB\xBF";
    size_t len = 3;
    for (const char *p = full_example; *p; p++) {
        if (*p == '\n') {
            text[len++] = '\r';
        }
        text[len++] = *p;
    }
    struct cfg c = defaults();
    struct nw_error err;
    nw_error_clear(&err);
    if (load_via_file(text, len, &c, NULL, &err) != NW_OK) {
        fail_msg("%s", err.msg);
    }
    assert_full_example(&c);
    /* No final newline, BOM straight before a section. */
    static const char t2[] = "\xEF\xBB\xBF[store]\r\nbatch_size = 7";
    c = defaults();
    assert_int_equal(load_via_file(t2, strlen(t2), &c, NULL, &err), NW_OK);
    assert_int_equal(c.batch, 7);
}

static void test_empty_and_comment_only_files_keep_defaults(void **state)
{
    (void)state;
    static const char *const texts[] = {"", "\n\n", "; only\n# comments\n", "\xEF\xBB\xBF",
                                        "   \t  \r\n"};
    for (size_t i = 0; i < N(texts); i++) {
        struct cfg c = defaults(), want = defaults();
        struct nw_error err;
        assert_int_equal(load_via_file(texts[i], strlen(texts[i]), &c, NULL, &err), NW_OK);
        assert_memory_equal(&c, &want, sizeof(c));
    }
}

static void test_line_length_limit(void **state)
{
    (void)state;
    char text[512];
    struct nw_error err;
    struct cfg c = defaults();
    /* 197 characters fit (plus CRLF), 198 do not. */
    snprintf(text, sizeof(text), "[mqtt]\r\nbroker = %0*d\r\n", NW_CONFIG_MAX_LINE - 9, 0);
    assert_int_equal(nw_config_load_string("collector.ini", text, strlen(text), keys, N(keys), &c,
                                           NULL, NULL, &err),
                     NW_ERR_CONFIG);
    assert_string_equal(err.msg, "collector.ini:2: [mqtt] broker = "
                                 "\"0000000000000000000000000000000000000000...\": longer than 63 "
                                 "bytes");
    snprintf(text, sizeof(text), "[mqtt]\n;%0*d\n", NW_CONFIG_MAX_LINE - 1, 0);
    assert_int_equal(nw_config_load_string("collector.ini", text, strlen(text), keys, N(keys), &c,
                                           NULL, NULL, &err),
                     NW_OK);
    snprintf(text, sizeof(text), "[mqtt]\n;%0*d\n", NW_CONFIG_MAX_LINE, 0);
    assert_int_equal(nw_config_load_string("collector.ini", text, strlen(text), keys, N(keys), &c,
                                           NULL, NULL, &err),
                     NW_ERR_CONFIG);
    assert_string_equal(err.msg, "collector.ini:2: line longer than 197 characters");
}

/* ---- hostile files: every one fails with an exact message ---- */

struct bad_case {
    const char *text;
    const char *msg;
};

static const struct bad_case bad_cases[] = {
    {"[store\nbatch_size = 5\n", "collector.ini:1: section header without closing ']'"},
    {"[store ;]\n", "collector.ini:1: section header without closing ']'"},
    {"batch_size = 5\n[store]\n", "collector.ini:1: batch_size: key outside any [section]"},
    {"[store]\nbatch_sise = 5\n",
     "collector.ini:2: [store] batch_sise: unknown key (did you mean batch_size?)"},
    {"[store]\nfoo = 1\n", "collector.ini:2: [store] foo: unknown key"},
    {"[stroe]\nbatch_size = 5\n",
     "collector.ini:1: [stroe]: unknown section (did you mean [store]?)"},
    {"[store]\n[bogus]\n", "collector.ini:2: [bogus]: unknown section"},
    {"[store]\nbatch_size = 0\n",
     "collector.ini:2: [store] batch_size = \"0\": out of range (1..100000)"},
    {"[store]\nbatch_size = 100001\n",
     "collector.ini:2: [store] batch_size = \"100001\": out of range (1..100000)"},
    {"; 1\n; 2\n; 3\n; 4\n; 5\n; 6\n; 7\n; 8\n; 9\n; 10\n[store]\nbatch_size = abc\n",
     "collector.ini:12: [store] batch_size = \"abc\": not an integer"},
    {"[store]\nbatch_size = -1\n",
     "collector.ini:2: [store] batch_size = \"-1\": must not be negative"},
    {"[store]\nbatch_size = 99999999999999999999999\n",
     "collector.ini:2: [store] batch_size = \"99999999999999999999999\": integer too large"},
    {"[store]\nbatch_size =\n", "collector.ini:2: [store] batch_size = \"\": empty value"},
    {"[store]\nbatch_size = 5 # five\n",
     "collector.ini:2: [store] batch_size = \"5 # five\": not an integer (only ';' starts an "
     "inline comment)"},
    {"[store]\nflush = 2x\n",
     "collector.ini:2: [store] flush = \"2x\": not a duration: unknown unit \"x\" (use ms, s, m, "
     "h, d)"},
    {"[store]\nflush = 5\n",
     "collector.ini:2: [store] flush = \"5\": not a duration: missing unit (use ms, s, m, h, d)"},
    {"[store]\nflush = 50ms\n",
     "collector.ini:2: [store] flush = \"50ms\": out of range (100ms..1h)"},
    {"[store]\nspool_max = -5K\n",
     "collector.ini:2: [store] spool_max = \"-5K\": not a size: must not be negative"},
    {"[store]\nspool_max = 64KB\n",
     "collector.ini:2: [store] spool_max = \"64KB\": ambiguous unit \"KB\": use K or KiB (both "
     "1024-based)"},
    {"[store]\nspool_max = 1.5G\n",
     "collector.ini:2: [store] spool_max = \"1.5G\": not a size: unknown unit (use K, M, G, T or "
     "KiB...)"},
    {"[store]\nspool_max = 2G\n",
     "collector.ini:2: [store] spool_max = \"2G\": out of range (1K..1G)"},
    {"[store]\nspool_max = 99999999999T\n",
     "collector.ini:2: [store] spool_max = \"99999999999T\": size too large"},
    {"[store]\nspool_dir = a\x01z\n",
     "collector.ini:2: [store] spool_dir = \"a\\x01z\": contains a control character"},
    {"[alerts]\nrate_hz = 140..100\n",
     "collector.ini:2: [alerts] rate_hz = \"140..100\": range minimum is greater than its "
     "maximum"},
    {"[alerts]\nrate_hz = 100-140\n",
     "collector.ini:2: [alerts] rate_hz = \"100-140\": not a range (e.g. 100..140)"},
    {"[alerts]\nrate_hz = 100..1001\n",
     "collector.ini:2: [alerts] rate_hz = \"100..1001\": out of range (0..1000)"},
    {"[alerts]\nrate_hz = -1..5\n",
     "collector.ini:2: [alerts] rate_hz = \"-1..5\": out of range (0..1000)"},
    {"[agent]\nsource = usb\n",
     "collector.ini:2: [agent] source = \"usb\": not one of: sim, replay, pipe"},
    {"[agent]\nratio = 1,5\n", "collector.ini:2: [agent] ratio = \"1,5\": not a number"},
    {"[agent]\nratio = nan\n", "collector.ini:2: [agent] ratio = \"nan\": not a number"},
    {"[agent]\nratio = 1e999\n", "collector.ini:2: [agent] ratio = \"1e999\": not a number"},
    {"[agent]\nratio = 1.5\n", "collector.ini:2: [agent] ratio = \"1.5\": out of range (0..1)"},
    {"[agent]\nclock_offset = -101\n",
     "collector.ini:2: [agent] clock_offset = \"-101\": out of range (-100..100)"},
    {"[mqtt]\ntls = maybe\n",
     "collector.ini:2: [mqtt] tls = \"maybe\": not a boolean (true/false, yes/no, on/off, 1/0)"},
    /* A secret's value never appears in a message. */
    {"[mqtt]\ntoken = hunter2hunter2hunter2hunter2hunter2\n",
     "collector.ini:2: [mqtt] token: longer than 31 bytes"},
    {"[store]\nbatch_size = 5\n\nbatch_size = 6\n",
     "collector.ini:4: [store] batch_size: duplicate key (first set on line 2)"},
    {"[store]\nbatch_size = 5\n[mqtt]\ntls = on\n[store]\nbatch_size = 6\n",
     "collector.ini:6: [store] batch_size: duplicate key (first set on line 2)"},
    {"[store]\nbatch_size\n", "collector.ini:2: expected \"key = value\" or a [section] header"},
    /* libinih would make this a continuation of batch_size; we refuse it. */
    {"[store]\nbatch_size = 5\n    more\n",
     "collector.ini:3: expected \"key = value\" or a [section] header"},
    {"[store]\n= 5\n", "collector.ini:2: [store]: missing key name before '='"},
    {"[store]\nbatch\x1b[2J = 5\n", "collector.ini:2: [store]: control character in key name"},
    {"[store] x\n", "collector.ini:1: unexpected text after ']'"},
    {"[a b]\n", "collector.ini:1: bad section header: expected [name] or [kind \"name\"]"},
    {"[]\n", "collector.ini:1: bad section header: expected [name] or [kind \"name\"]"},
    {"[model \"DG-3\"]\nrate_hz = 1..2\n", "collector.ini:1: [model \"DG-3\"]: unknown section"},
    {"[store]\n[abcdefghijabcdefghijabcdefghijabcdefghijabcdefghij]\n",
     "collector.ini:2: section name longer than 49 characters"},
    {"[store]\nbatch_size = 1\n\xEF\xBB\xBF[mqtt]\n",
     "collector.ini:3: expected \"key = value\" or a [section] header"},
};

static void check_bad(const struct bad_case *bc, size_t len, bool via_file)
{
    struct cfg c = defaults();
    struct nw_error err;
    enum nw_err rc = via_file ? load_via_file(bc->text, len, &c, NULL, &err)
                              : nw_config_load_string("collector.ini", bc->text, len, keys, N(keys),
                                                      &c, NULL, NULL, &err);
    if (rc != NW_ERR_CONFIG || err.code != NW_ERR_CONFIG || strcmp(err.msg, bc->msg) != 0) {
        fail_msg("%s input %s\n  rc %d, got  \"%s\"\n        want \"%s\"",
                 via_file ? "file" : "string", bc->text, rc, err.msg, bc->msg);
    }
}

static void test_bad_files(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(bad_cases); i++) {
        check_bad(&bad_cases[i], strlen(bad_cases[i].text), false);
        check_bad(&bad_cases[i], strlen(bad_cases[i].text), true);
    }
    /* Not expressible as C strings in the table: a NUL byte and a 300-char line. */
    static const char nul[] = "[store]\nbatch_size = 5\0 6\n";
    struct bad_case bc = {nul, "collector.ini:2: NUL byte in line"};
    check_bad(&bc, sizeof(nul) - 1, false);
    check_bad(&bc, sizeof(nul) - 1, true);

    char longline[400];
    snprintf(longline, sizeof(longline), "[store]\nspool_dir = /%0298d\nbatch_size = x\n", 0);
    bc = (struct bad_case){longline, "collector.ini:2: line longer than 197 characters"};
    check_bad(&bc, strlen(longline), false);
    check_bad(&bc, strlen(longline), true);
}

static void test_file_errors(void **state)
{
    (void)state;
    struct cfg c = defaults();
    struct nw_error err;
    assert_int_equal(
        nw_config_load_file("/nonexistent/collector.ini", keys, N(keys), &c, NULL, NULL, &err),
        NW_ERR_NOT_FOUND);
    assert_string_equal(err.msg,
                        "cannot read /nonexistent/collector.ini: No such file or directory");
    assert_int_equal(err.code, NW_ERR_NOT_FOUND);
    assert_int_equal(nw_config_load_file("/", keys, N(keys), &c, NULL, NULL, &err), NW_ERR_IO);
    assert_string_equal(err.msg, "cannot read /: Is a directory");

    /* Larger than NW_CONFIG_MAX_FILE: refused before parsing. */
    size_t len = NW_CONFIG_MAX_FILE + 1;
    char *big = malloc(len);
    assert_non_null(big);
    memset(big, '\n', len);
    assert_int_equal(load_via_file(big, len, &c, NULL, &err), NW_ERR_CONFIG);
    assert_string_equal(err.msg, "collector.ini: larger than 1048576 bytes");
    free(big);
    /* No error pointer: still the right code. */
    assert_int_equal(nw_config_load_string("x", "[x]\n", 4, keys, N(keys), &c, NULL, NULL, NULL),
                     NW_ERR_CONFIG);
}

/* ---- named sections ---- */

static const char models_text[] = "[model \"DG-3\"]\n"
                                  "rate_hz = 110..130\n"
                                  "[store]\n"
                                  "batch_size = 10\n"
                                  "[model  \"Charm Pro 2\"]\n"
                                  "service_hours = 250\n"
                                  "[model \"DG-3\"]\n"
                                  "depth_mm = 0.30..0.45\n"
                                  "[model \"empty\"]\n";

static void test_named_sections(void **state)
{
    (void)state;
    struct cfg c = defaults();
    struct models ms = {0};
    struct nw_error err;
    nw_error_clear(&err);
    if (load_via_file(models_text, strlen(models_text), &c, &ms, &err) != NW_OK) {
        fail_msg("%s", err.msg);
    }
    assert_int_equal(c.batch, 10);
    assert_int_equal(ms.n, 3);
    assert_int_equal(ms.calls_begin, 3); /* once per name, even when repeated */
    struct model *dg3 = find_model(&ms, "DG-3");
    assert_non_null(dg3);
    assert_true(dg3->rate_hz.lo == 110 && dg3->rate_hz.hi == 130);
    assert_true(dg3->depth_mm.lo == 0.30 && dg3->depth_mm.hi == 0.45);
    assert_int_equal(dg3->service_hours, 500);
    struct model *charm = find_model(&ms, "Charm Pro 2");
    assert_non_null(charm);
    assert_int_equal(charm->service_hours, 250);
    assert_true(charm->rate_hz.lo == 100 && charm->rate_hz.hi == 140);
    assert_true(charm->depth_mm.lo == 0.25 && charm->depth_mm.hi == 0.50);
    struct model *empty = find_model(&ms, "empty");
    assert_non_null(empty);
    assert_int_equal(empty->service_hours, 500);
}

static const struct bad_case bad_named[] = {
    {"[model \"DG-3\"]\nrate_hz = abc\n",
     "collector.ini:2: [model \"DG-3\"] rate_hz = \"abc\": not a range (e.g. 100..140)"},
    {"[model \"DG-3\"]\ndepth_mm = 0.1..20\n",
     "collector.ini:2: [model \"DG-3\"] depth_mm = \"0.1..20\": out of range (0..10)"},
    {"[model \"DG-3\"]\ncolour = red\n",
     "collector.ini:2: [model \"DG-3\"] colour = \"red\": unknown key"},
    {"[model \"DG-3\"]\nrate_hx = 1..2\n",
     "collector.ini:2: [model \"DG-3\"] rate_hx = \"1..2\": unknown key (did you mean rate_hz?)"},
    {"[model \"DG-3\"]\nrate_hz = 1..2\nrate_hz = 1..3\n",
     "collector.ini:3: [model \"DG-3\"] rate_hz: duplicate key (first set on line 2)"},
    {"[model \"DG-3\"]\nrate_hz = 1..2\n[model \"X\"]\n[model \"DG-3\"]\nrate_hz = 1..3\n",
     "collector.ini:5: [model \"DG-3\"] rate_hz: duplicate key (first set on line 2)"},
    {"[model \"a\"]\n[model \"b\"]\n[model \"c\"]\n[model \"d\"]\n[model \"e\"]\n",
     "collector.ini:5: [model \"e\"]: too many [model] sections (max 4)"},
    {"[device \"x\"]\n", "collector.ini:1: [device \"x\"]: unknown section kind (expected model)"},
    {"[model \"\"]\n", "collector.ini:1: bad section header: expected [name] or [kind \"name\"]"},
    {"[model \"a\" x]\n",
     "collector.ini:1: bad section header: expected [name] or [kind \"name\"]"},
    {"[model\"a\"]\n", "collector.ini:1: bad section header: expected [name] or [kind \"name\"]"},
    {"[model \"a\tb\"]\n",
     "collector.ini:1: bad section header: expected [name] or [kind \"name\"]"},
};

static void test_named_sections_bad(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(bad_named); i++) {
        struct cfg c = defaults();
        struct models ms = {0};
        struct nw_error err;
        enum nw_err rc = load_via_file(bad_named[i].text, strlen(bad_named[i].text), &c, &ms, &err);
        if (rc != NW_ERR_CONFIG || strcmp(err.msg, bad_named[i].msg) != 0) {
            fail_msg("input %s\n  rc %d, got  \"%s\"\n        want \"%s\"", bad_named[i].text, rc,
                     err.msg, bad_named[i].msg);
        }
    }
}

/* ---- flags and single keys ---- */

static void test_apply_flag(void **state)
{
    (void)state;
    struct cfg c = defaults();
    struct nw_error err;
    assert_int_equal(nw_config_apply_flag(keys, N(keys), &c, "store.batch_size", "42", &err),
                     NW_OK);
    assert_int_equal(c.batch, 42);
    assert_int_equal(nw_config_apply_flag(keys, N(keys), &c, "store.flush", "1h30m", &err),
                     NW_ERR_CONFIG);
    assert_string_equal(err.msg, "store.flush = \"1h30m\": out of range (100ms..1h)");
    assert_int_equal(nw_config_apply_flag(keys, N(keys), &c, "store.batch_size", "abc", &err),
                     NW_ERR_CONFIG);
    assert_string_equal(err.msg, "store.batch_size = \"abc\": not an integer");
    assert_int_equal(c.batch, 42); /* unchanged on error */
    assert_int_equal(nw_config_apply_flag(keys, N(keys), &c, "store.batch_sise", "1", &err),
                     NW_ERR_CONFIG);
    assert_string_equal(err.msg, "store.batch_sise: unknown key (did you mean batch_size?)");
    assert_int_equal(nw_config_apply_flag(keys, N(keys), &c, "batch_size", "1", &err),
                     NW_ERR_CONFIG);
    assert_string_equal(err.msg, "batch_size: expected section.key");
    assert_int_equal(nw_config_apply_flag(keys, N(keys), &c, "mqtt.token", "hunter2", &err),
                     NW_ERR_CONFIG);
    assert_string_equal(err.msg,
                        "mqtt.token: secrets cannot be set on the command line (use the config "
                        "file)");
    assert_null(strstr(err.msg, "hunter2"));
    assert_string_equal(c.token, "");
}

static void test_apply_key_reason_only(void **state)
{
    (void)state;
    struct model m;
    struct nw_error err;
    assert_int_equal(nw_config_defaults(model_keys, N(model_keys), &m, &err), NW_OK);
    assert_int_equal(
        nw_config_apply_key(model_keys, N(model_keys), &m, "model", "rate_hz", "90..150", &err),
        NW_OK);
    assert_true(m.rate_hz.lo == 90 && m.rate_hz.hi == 150);
    assert_int_equal(
        nw_config_apply_key(model_keys, N(model_keys), &m, "model", "rate_hz", "150..90", &err),
        NW_ERR_CONFIG);
    assert_string_equal(err.msg, "range minimum is greater than its maximum");
    assert_true(m.rate_hz.lo == 90 && m.rate_hz.hi == 150);
    assert_int_equal(nw_config_apply_key(model_keys, N(model_keys), &m, "model", "nope", "1", &err),
                     NW_ERR_CONFIG);
    assert_string_equal(err.msg, "unknown key");
    /* The logger's words plug straight into an enum key holding enum nw_log_level. */
    struct {
        int level;
    } lc;
    static const struct nw_cfg_key log_keys[] = {
        {"log", "level", NW_CFG_ENUM, 0, sizeof(int), .def = "info", .choices = nw_log_level_words},
    };
    assert_int_equal(nw_config_defaults(log_keys, 1, &lc, &err), NW_OK);
    assert_int_equal(lc.level, NW_LOG_INFO);
    assert_int_equal(nw_config_apply_flag(log_keys, 1, &lc, "log.level", "WARN", &err), NW_OK);
    assert_int_equal(lc.level, NW_LOG_WARN);
    assert_int_equal(nw_config_apply_flag(log_keys, 1, &lc, "log.level", "loud", &err),
                     NW_ERR_CONFIG);
    assert_string_equal(err.msg,
                        "log.level = \"loud\": not one of: debug, info, notice, warn, error");

    assert_non_null(nw_config_find(keys, N(keys), "store", "flush"));
    assert_null(nw_config_find(keys, N(keys), "store", "flushh"));
}

struct value_case {
    const char *section, *key, *value, *formatted;
};

/* Each accepted spelling and how it is written back. */
static void test_value_spellings(void **state)
{
    (void)state;
    static const struct value_case cases[] = {
        {"mqtt", "tls", "TRUE", "true"},
        {"mqtt", "tls", "off", "false"},
        {"mqtt", "tls", "1", "true"},
        {"mqtt", "tls", "No", "false"},
        {"store", "flush", "500ms", "500ms"},
        {"store", "flush", "1h", "1h"},
        {"store", "flush", "0.5s", "500ms"},
        {"store", "flush", "59m60s", "1h"},
        {"store", "spool_max", "1024", "1K"},
        {"store", "spool_max", "1025", "1025"},
        {"store", "spool_max", "256MiB", "256M"},
        {"store", "spool_max", "1g", "1G"},
        {"store", "spool_max", "3kib", "3K"},
        {"store", "spool_max", "2048B", "2K"},
        {"store", "batch_size", "+7", "7"},
        {"store", "batch_size", "007", "7"},
        {"agent", "ratio", "0.1", "0.1"},
        {"agent", "ratio", ".25", "0.25"},
        {"agent", "ratio", "1.", "1"},
        {"agent", "ratio", "1e-3", "0.001"},
        {"agent", "ratio", "-0", "-0"},
        {"agent", "ratio", "0.3333333333333333", "0.3333333333333333"},
        {"agent", "source", "Pipe", "pipe"},
        {"agent", "clock_offset", "-0", "0"},
        {"alerts", "rate_hz", "0.25..0.50", "0.25..0.5"},
        {"alerts", "rate_hz", "5..5", "5..5"},
        {"mqtt", "broker", "", ""},
        {"mqtt", "broker", "tab\there", "tab\there"},
    };
    for (size_t i = 0; i < N(cases); i++) {
        struct cfg c = defaults();
        struct nw_error err;
        nw_error_clear(&err);
        if (nw_config_apply_key(keys, N(keys), &c, cases[i].section, cases[i].key, cases[i].value,
                                &err) != NW_OK) {
            fail_msg("%s.%s = %s: %s", cases[i].section, cases[i].key, cases[i].value, err.msg);
        }
        char out[128];
        nw_config_format_value(nw_config_find(keys, N(keys), cases[i].section, cases[i].key), &c,
                               out, sizeof(out));
        if (strcmp(out, cases[i].formatted) != 0) {
            fail_msg("%s.%s = %s: formatted \"%s\", want \"%s\"", cases[i].section, cases[i].key,
                     cases[i].value, out, cases[i].formatted);
        }
    }
}

/* Decimal conversion is exact where it matters and independent of the locale. */
static void test_numbers_without_locale(void **state)
{
    (void)state;
    const char *locales[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "C.UTF-8"};
    for (size_t i = 0; i < N(locales) && !setlocale(LC_NUMERIC, locales[i]); i++) {
    }
    struct cfg c = defaults();
    static const char *const values[] = {
        "0.1", "0.25", "0.5", "0.3", "0.7", "1e-5", "0.123456789012345678", "5e-324"};
    static const double want[] = {0.1, 0.25, 0.5, 0.3, 0.7, 1e-5, 0.123456789012345678, 5e-324};
    for (size_t i = 0; i < N(values); i++) {
        assert_int_equal(nw_config_apply_key(keys, N(keys), &c, "agent", "ratio", values[i], NULL),
                         NW_OK);
        assert_true(c.ratio == want[i]);
    }
    /* Formatting then parsing gives back the same double, over many magnitudes. */
    const struct nw_cfg_key *k = nw_config_find(keys, N(keys), "alerts", "rate_hz");
    struct nw_cfg_key wide = *k;
    wide.min = wide.max = 0;
    uint64_t x = 88172645463325252u;
    int mismatches = 0;
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64 */
        double d;
        uint64_t bits = (x & 0x800FFFFFFFFFFFFFu) | ((uint64_t)(900 + i % 250) << 52);
        memcpy(&d, &bits, sizeof(d));
        c.rate_hz.lo = c.rate_hz.hi = d;
        char text[128];
        nw_config_format_value(&wide, &c, text, sizeof(text));
        struct cfg back = c;
        assert_int_equal(nw_config_apply_key(&wide, 1, &back, "alerts", "rate_hz", text, NULL),
                         NW_OK);
        mismatches += back.rate_hz.lo != d;
    }
    assert_int_equal(mismatches, 0);

    char out[64];
    c.ratio = 0.25;
    nw_config_format_value(nw_config_find(keys, N(keys), "agent", "ratio"), &c, out, sizeof(out));
    assert_string_equal(out, "0.25");
    setlocale(LC_NUMERIC, "C");
}

/* ---- the table itself ---- */

struct one {
    int64_t i;
    int narrow;
    char s[8];
};

static void test_bad_tables(void **state)
{
    (void)state;
    struct one o;
    struct nw_error err;
    static const char *const none[] = {NULL};
    const struct nw_cfg_key t_default[] = {
        {"s", "i", NW_CFG_INT, NW_CFG_FIELD(struct one, i), .def = "200", .min = 0, .max = 100},
    };
    assert_int_equal(nw_config_defaults(t_default, 1, &o, &err), NW_ERR_INVAL);
    assert_string_equal(err.msg, "config table: [s] i: default \"200\": out of range (0..100)");
    assert_int_equal(err.code, NW_ERR_INVAL);
    const struct nw_cfg_key t_size[] = {
        {"s", "n", NW_CFG_INT, NW_CFG_FIELD(struct one, narrow), .def = NULL},
    };
    assert_int_equal(nw_config_defaults(t_size, 1, &o, &err), NW_ERR_INVAL);
    assert_string_equal(err.msg, "config table entry 0 (s.n): size does not match the type");
    const struct nw_cfg_key t_enum[] = {
        {"s", "e", NW_CFG_ENUM, offsetof(struct one, narrow), .choices = none},
    };
    assert_int_equal(nw_config_defaults(t_enum, 1, &o, &err), NW_ERR_INVAL);
    assert_string_equal(err.msg, "config table entry 0 (s.e): enum without choices");
    const struct nw_cfg_key t_twice[] = {
        {"s", "i", NW_CFG_INT, NW_CFG_FIELD(struct one, i), .def = NULL},
        {"s", "i", NW_CFG_INT, NW_CFG_FIELD(struct one, i), .def = NULL},
    };
    assert_int_equal(nw_config_defaults(t_twice, 2, &o, &err), NW_ERR_INVAL);
    assert_string_equal(err.msg, "config table entry 1 (s.i): listed twice");
    const struct nw_cfg_key t_secret[] = {
        {"s", "i", NW_CFG_INT, NW_CFG_FIELD(struct one, i), .flags = NW_CFG_SECRET},
    };
    assert_int_equal(nw_config_defaults(t_secret, 1, &o, &err), NW_ERR_INVAL);
    assert_string_equal(err.msg, "config table entry 0 (s.i): only strings can be secret");
    const struct nw_cfg_key t_minmax[] = {
        {"s", "i", NW_CFG_INT, NW_CFG_FIELD(struct one, i), .min = 5, .max = 1},
    };
    assert_int_equal(nw_config_defaults(t_minmax, 1, &o, &err), NW_ERR_INVAL);
    assert_string_equal(err.msg, "config table entry 0 (s.i): min > max");
    const struct nw_cfg_key t_name[] = {
        {"s s", "i", NW_CFG_INT, NW_CFG_FIELD(struct one, i), .def = NULL},
    };
    assert_int_equal(nw_config_defaults(t_name, 1, &o, &err), NW_ERR_INVAL);
    assert_string_equal(err.msg, "config table entry 0 (s s.i): section and name must be words "
                                 "of [A-Za-z0-9_.-]");
    const struct nw_cfg_key t_str[] = {
        {"s", "s", NW_CFG_STR, NW_CFG_FIELD(struct one, s), .def = "too long"},
    };
    assert_int_equal(nw_config_defaults(t_str, 1, &o, &err), NW_ERR_INVAL);
    assert_string_equal(err.msg, "config table: [s] s: default \"too long\": longer than 7 bytes");
    const struct nw_cfg_key t_ok[] = {
        {"s", "i", NW_CFG_INT, offsetof(struct one, i), 0, .def = NULL},
        {"s", "s", NW_CFG_STR, NW_CFG_FIELD(struct one, s), .def = NULL},
    };
    memset(&o, 0x5A, sizeof(o));
    assert_int_equal(nw_config_defaults(t_ok, 2, &o, &err), NW_OK);
    assert_int_equal(o.i, 0);
    assert_string_equal(o.s, "");
}

/* ---- help and dump ---- */

static char *capture_help(enum nw_cfg_help_style style)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    nw_config_print_help(f, keys, N(keys), style);
    fclose(f);
    return buf;
}

static void test_help_text(void **state)
{
    (void)state;
    char *text = capture_help(NW_CFG_HELP_TEXT);
    assert_string_equal(text, "[mqtt]\n"
                              "  mqtt.broker = mqtt://localhost:1883  (string)\n"
                              "      Broker URL\n"
                              "  mqtt.token = (secret)  (string)\n"
                              "      Broker password\n"
                              "  mqtt.tls = false  (bool, true|false)\n"
                              "      Use TLS\n"
                              "\n"
                              "[store]\n"
                              "  store.batch_size = 500  (uint, 1..100000)\n"
                              "      Windows per store write\n"
                              "  store.flush = 1s  (duration, 100ms..1h)\n"
                              "      Longest wait before a partial batch is written\n"
                              "  store.spool_dir = /var/lib/needlewatch/spool  (path)\n"
                              "      Where batches wait while the store is down\n"
                              "  store.spool_max = 256MiB  (size, 1K..1G)\n"
                              "      Spool bound | then drop oldest\n"
                              "\n"
                              "[agent]\n"
                              "  agent.source = sim  (enum, sim|replay|pipe)\n"
                              "      Sensor source\n"
                              "  agent.clock_offset = 0  (int, -100..100)\n"
                              "      Test skew\n"
                              "  agent.ratio = 0.5  (number, 0..1)\n"
                              "      Sampling ratio\n"
                              "\n"
                              "[alerts]\n"
                              "  alerts.rate_hz = 100..140  (range, 0..1000)\n"
                              "      Default needle rate window\n");
    free(text);
}

static void test_help_markdown(void **state)
{
    (void)state;
    char *text = capture_help(NW_CFG_HELP_MARKDOWN);
    const char *head = "| key | type | default | range | description |\n|---|---|---|---|---|\n"
                       "| `mqtt.broker` | string | `mqtt://localhost:1883` |  | Broker URL |\n"
                       "| `mqtt.token` | string | `(secret)` |  | Broker password |\n";
    assert_memory_equal(text, head, strlen(head));
    assert_non_null(strstr(text, "| `store.spool_max` | size | `256MiB` | 1K..1G | Spool bound "
                                 "\\| then drop oldest |\n"));
    assert_non_null(strstr(text, "| `agent.source` | enum | `sim` | sim\\|replay\\|pipe | "
                                 "Sensor source |\n"));
    free(text);
}

static void test_dump_round_trips_and_hides_secrets(void **state)
{
    (void)state;
    struct cfg c = defaults();
    struct nw_error err;
    assert_int_equal(nw_config_load_string("collector.ini", full_example, strlen(full_example),
                                           keys, N(keys), &c, NULL, NULL, &err),
                     NW_OK);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    nw_config_dump(f, keys, N(keys), &c, NULL);
    fclose(f);
    assert_string_equal(buf, "[mqtt]\n"
                             "broker = mqtts://broker.example:8883/x?a=b\n"
                             "; token = (secret, set)\n"
                             "tls = true\n"
                             "\n"
                             "[store]\n"
                             "batch_size = 2000\n"
                             "flush = 1m30s\n"
                             "spool_dir = /srv/spool dir\n"
                             "spool_max = 64K\n"
                             "\n"
                             "[agent]\n"
                             "source = replay\n"
                             "clock_offset = -100\n"
                             "ratio = 0.25\n"
                             "\n"
                             "[alerts]\n"
                             "rate_hz = 95.5..150\n");
    assert_null(strstr(buf, "s3cr"));
    struct cfg back = defaults();
    assert_int_equal(
        nw_config_load_string("dump", buf, len, keys, N(keys), &back, NULL, NULL, &err), NW_OK);
    strcpy(back.token, c.token); /* the one thing a dump leaves out */
    assert_memory_equal(&back, &c, sizeof(c));
    free(buf);

    struct model m;
    assert_int_equal(nw_config_defaults(model_keys, N(model_keys), &m, &err), NW_OK);
    buf = NULL;
    f = open_memstream(&buf, &len);
    nw_config_dump(f, model_keys, N(model_keys), &m, "DG-3");
    fclose(f);
    assert_string_equal(buf, "[model \"DG-3\"]\n"
                             "rate_hz = 100..140\n"
                             "depth_mm = 0.25..0.5\n"
                             "service_hours = 500\n");
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_full_example),
        cmocka_unit_test(test_crlf_and_bom),
        cmocka_unit_test(test_empty_and_comment_only_files_keep_defaults),
        cmocka_unit_test(test_line_length_limit),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_named_sections),
        cmocka_unit_test(test_named_sections_bad),
        cmocka_unit_test(test_apply_flag),
        cmocka_unit_test(test_apply_key_reason_only),
        cmocka_unit_test(test_value_spellings),
        cmocka_unit_test(test_numbers_without_locale),
        cmocka_unit_test(test_bad_tables),
        cmocka_unit_test(test_help_text),
        cmocka_unit_test(test_help_markdown),
        cmocka_unit_test(test_dump_round_trips_and_hides_secrets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

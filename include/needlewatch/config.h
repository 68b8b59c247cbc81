/*
 * config.h - INI configuration behind a typed table.
 *
 * A program describes its settings once, as a static table of keys that
 * point (by offset) into its own config struct:
 *
 *   struct collector_cfg { char broker[256]; uint64_t batch; int64_t flush_ms; ... };
 *   static const struct nw_cfg_key keys[] = {
 *       {"mqtt", "broker", NW_CFG_STR, NW_CFG_FIELD(struct collector_cfg, broker),
 *        .def = "mqtt://localhost:1883", .help = "Broker URL"},
 *       {"store", "batch_size", NW_CFG_UINT, NW_CFG_FIELD(struct collector_cfg, batch),
 *        .def = "500", .min = 1, .max = 100000, .help = "Windows per store write"},
 *   };
 *
 * and loads it in three layers, each overriding the one before:
 *
 *   nw_config_defaults(keys, n, &cfg, &err);                       built-in defaults
 *   nw_config_load_file(path, keys, n, &cfg, NULL, NULL, &err);    the INI file
 *   nw_config_apply_flag(keys, n, &cfg, "store.batch_size", v, &err);  command line
 *
 * Every layer goes through the same parser and range checks, and every
 * failure is NW_ERR_CONFIG with one line naming the place and the key:
 *
 *   collector.ini:12: [store] batch_size = "abc": not an integer
 *
 * The config is immutable after load: a program fills its struct on the
 * main thread before starting any other thread, then hands out only
 * `const` pointers. Reloading means loading a new struct and swapping it
 * in by message, never editing the live one.
 *
 * Storage per type (the field at .offset must have exactly this type; the
 * NW_CFG_FIELD macro also records its size so a mismatch is caught):
 *
 *   NW_CFG_STR, NW_CFG_PATH  char[size], NUL-terminated; too long is an error
 *   NW_CFG_INT               int64_t      decimal, optional sign
 *   NW_CFG_UINT              uint64_t     decimal, no sign
 *   NW_CFG_DOUBLE            double       decimal, optional exponent; no NaN/Inf
 *   NW_CFG_BOOL              bool         true/false, yes/no, on/off, 1/0
 *   NW_CFG_DURATION_MS       int64_t      ms: "500ms", "2s", "1.5m", "1h30m", "7d", "0"
 *   NW_CFG_SIZE              uint64_t     bytes: "512", "64K", "256MiB", "1G", "1TiB";
 *                                         all suffixes are binary (1K = 1024);
 *                                         "KB"/"MB" are rejected as ambiguous
 *   NW_CFG_RANGE             struct nw_cfg_range  "100..140", "0.25..0.50"; lo <= hi
 *   NW_CFG_ENUM              int          index into .choices (case-insensitive)
 *
 * min/max (inclusive) bound INT, UINT, DOUBLE, DURATION (in ms), SIZE (in
 * bytes) and both ends of a RANGE; min == max == 0 means unbounded. Numbers
 * are parsed without the locale.
 *
 * INI dialect (libinih 55 as built by Debian, plus our checks):
 *  - "[section]" then "key = value" lines; "key: value" works too. Leading
 *    whitespace is ignored (libinih would otherwise read an indented line
 *    as the continuation of the previous value: multi-line values are not
 *    supported).
 *  - Comments: a line starting with ';' or '#', and an inline comment that
 *    starts with ';' after whitespace ("a = 1 ; note"). '#' after a value is
 *    NOT a comment; quotes are not special (a value is taken literally).
 *  - CRLF line endings and a UTF-8 byte order mark are accepted. A NUL byte
 *    is an error. Lines are at most NW_CONFIG_MAX_LINE characters (libinih
 *    would silently cut them), the file at most NW_CONFIG_MAX_FILE bytes.
 *  - Unknown sections, unknown keys, keys before any section, a key set
 *    twice and text after "]" are errors. The first error stops the load.
 *  - "[kind "name"]" is a named section, e.g. [model "DG-3"]: each of its
 *    keys goes to the section handler (below), which typically keeps one
 *    struct per name and fills it with nw_config_apply_key() against a
 *    second table. Named sections must not hold secrets: their values are
 *    quoted in error messages.
 *
 * Secrets: keys with NW_CFG_SECRET never appear in error messages, help
 * output or dumps, and cannot be set with nw_config_apply_flag() (credentials
 * never go on the command line, DESIGN.md section 8).
 *
 * No function here keeps global state; all are thread-safe on distinct
 * targets.
 */
#ifndef NW_CONFIG_H
#define NW_CONFIG_H

#include <needlewatch/err.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Longest line accepted, without its line ending (libinih's 200-byte buffer
 * minus '\r', '\n' and NUL). */
#define NW_CONFIG_MAX_LINE 197
/* Largest file accepted. */
#define NW_CONFIG_MAX_FILE (1024 * 1024)

enum nw_cfg_type {
    NW_CFG_STR,
    NW_CFG_INT,
    NW_CFG_UINT,
    NW_CFG_DOUBLE,
    NW_CFG_BOOL,
    NW_CFG_DURATION_MS, /* "500ms", "2s", "1.5m", "2h", "7d" */
    NW_CFG_SIZE,        /* "64K", "256MiB" */
    NW_CFG_RANGE,       /* "100..140" -> two doubles */
    NW_CFG_ENUM,        /* one of the listed words */
    NW_CFG_PATH,
};

/* The value of an NW_CFG_RANGE key. */
struct nw_cfg_range {
    double lo, hi;
};

/* Flags for nw_cfg_key.flags. */
#define NW_CFG_SECRET 0x1u /* STR only: never printed, never from a flag */

struct nw_cfg_key {
    const char *section; /* "store"; plain word of [A-Za-z0-9_.-] */
    const char *name;    /* "batch_size" */
    enum nw_cfg_type type;
    size_t offset;              /* of the field in the caller's struct */
    size_t size;                /* STR/PATH: buffer size with NUL; others: sizeof field or 0 */
    const char *def;            /* default as text, parsed like a file value; NULL = zero/"" */
    double min, max;            /* inclusive bounds, see above; both 0 = unbounded */
    const char *const *choices; /* ENUM: NULL-terminated words */
    const char *help;           /* one line for --help and README */
    unsigned flags;             /* NW_CFG_SECRET */
};

/* offset and size of a member, for the .offset/.size pair of a table entry. */
#define NW_CFG_FIELD(type, member) offsetof(type, member), sizeof(((type *)0)->member)

/*
 * Called for each key of a named section "[kind "name"]". Also called once
 * per distinct (kind, name), with key == NULL and value == NULL, at the
 * first header of that section: the place to set up a fresh struct with
 * nw_config_defaults(). All strings are borrowed for the call only. line is
 * the 1-based line in the file. Return NW_OK, or an error with a bare
 * reason in *err (e.g. from nw_config_apply_key); the loader adds file,
 * line, section, key and value in front of it.
 */
typedef enum nw_err (*nw_cfg_section_fn)(void *user, const char *kind, const char *name,
                                         const char *key, const char *value, int line,
                                         struct nw_error *err);

/*
 * Checks the table itself (types, sizes, ENUM choices, min <= max) and
 * parses every default into *target. A failure is a programming error:
 * NW_ERR_INVAL with "[section] key: ..." in *err. target is borrowed.
 */
enum nw_err nw_config_defaults(const struct nw_cfg_key *table, size_t n, void *target,
                               struct nw_error *err);

/*
 * Reads an INI file and applies its values on top of *target (call
 * nw_config_defaults first; several files can be layered). handler may be
 * NULL, then named sections are unknown sections. path, table, target and
 * user are borrowed. Returns NW_OK; NW_ERR_NOT_FOUND or NW_ERR_IO
 * ("cannot read PATH: reason") when the file cannot be read; NW_ERR_CONFIG
 * ("PATH:LINE: ...") for its content. On error *target may be partly
 * updated and must be discarded.
 */
enum nw_err nw_config_load_file(const char *path, const struct nw_cfg_key *table, size_t n,
                                void *target, nw_cfg_section_fn handler, void *user,
                                struct nw_error *out_err);

/* The same for INI text in memory (len bytes, need not be NUL-terminated);
 * name stands for the file name in messages. text is borrowed. */
enum nw_err nw_config_load_string(const char *name, const char *text, size_t len,
                                  const struct nw_cfg_key *table, size_t n, void *target,
                                  nw_cfg_section_fn handler, void *user, struct nw_error *out_err);

/*
 * Parses value for table key [section] key and stores it in *target.
 * On error *target is unchanged and *err holds only the reason ("not an
 * integer", "unknown key", "out of range (1..100000)"), so each caller can
 * say where the value came from. Strings are borrowed.
 */
enum nw_err nw_config_apply_key(const struct nw_cfg_key *table, size_t n, void *target,
                                const char *section, const char *key, const char *value,
                                struct nw_error *err);

/*
 * A command-line override: dotted "section.key" (e.g. "store.batch_size").
 * Errors read `store.batch_size = "abc": not an integer`. Secret keys are
 * refused. *target is unchanged on error.
 */
enum nw_err nw_config_apply_flag(const struct nw_cfg_key *table, size_t n, void *target,
                                 const char *dotted, const char *value, struct nw_error *err);

/* The table entry for [section] key, or NULL. Borrowed from the table. */
const struct nw_cfg_key *nw_config_find(const struct nw_cfg_key *table, size_t n,
                                        const char *section, const char *key);

enum nw_cfg_help_style {
    NW_CFG_HELP_TEXT,     /* for --help */
    NW_CFG_HELP_MARKDOWN, /* a README table */
};

/*
 * Prints every key: section.key, type, default, range or choices, help.
 * Secret defaults are shown as "(secret)". out is borrowed.
 */
void nw_config_print_help(FILE *out, const struct nw_cfg_key *table, size_t n,
                          enum nw_cfg_help_style style);

/*
 * Prints the values in *target as INI that loads back to the same values
 * (for anything that came from a file; a flag value with leading or
 * trailing whitespace or " ;" inside has no INI spelling). A secret is
 * written as a comment "; token = (secret, set)" or "(secret, empty)".
 * named != NULL prints the headers as [section "named"] (for structs of a
 * named section). out and target are borrowed.
 */
void nw_config_dump(FILE *out, const struct nw_cfg_key *table, size_t n, const void *target,
                    const char *named);

/*
 * Formats the value of one key of *target as it would be written in a file
 * ("1h30m", "64K", "100..140"), into out (caller-owned, size bytes).
 * Secrets are formatted too: the caller decides whether to show them.
 */
void nw_config_format_value(const struct nw_cfg_key *key, const void *target, char *out,
                            size_t size);

#endif

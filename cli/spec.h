/*
 * spec.h - spec windows per device model and service intervals, from the
 * collector's INI file.
 *
 * Defaults (DESIGN.md §1): rate 100..140 Hz, depth 0.25..0.50 mm, service
 * every 500 running hours. `needlewatch --config FILE` reads the same file
 * as the collector and takes from it only what the CLI uses:
 *
 *   [spec]            rate_hz, depth_mm, service_hours   fleet defaults
 *   [model "DG-3X"]   rate_hz, depth_mm, service_hours   per model
 *   [needlewatch]     store, collector                   the CLI's own defaults
 *
 * Every other section (and every other key of a [model] section, e.g. the
 * alert engine's cartridge_max_cycles) belongs to the collector and is
 * skipped here, so one file serves both programs; what is read goes through
 * lib/config with its range checks, and errors name the file, line and key.
 */
#ifndef CLI_SPEC_H
#define CLI_SPEC_H

#include <needlewatch/err.h>

#include <stddef.h>

#define NW_SPEC_MAX_MODELS 64

struct nw_spec {
    char model[33];            /* "" for the fleet default */
    double rate_lo, rate_hi;   /* Hz */
    double depth_lo, depth_hi; /* mm */
    double service_hours;
};

struct nw_specs;

/* The built-in defaults. Caller-owned; NULL when out of memory. */
struct nw_specs *nw_specs_new(void);
void nw_specs_destroy(struct nw_specs **p);

/* Reads path (borrowed). NW_ERR_CONFIG "PATH:LINE: ..." or NW_ERR_NOT_FOUND /
 * NW_ERR_IO. The [needlewatch] store and collector values are copied into
 * store / collector (caller-owned, size bytes each) when set. */
enum nw_err nw_specs_load(struct nw_specs *s, const char *path, char *store, size_t store_size,
                          char *collector, size_t collector_size, struct nw_error *err);

/* The spec of model (the default when it has none). Borrowed. */
const struct nw_spec *nw_specs_for(const struct nw_specs *s, const char *model);

/* Index of the spec used for model: 0 = default, 1.. = a [model] section.
 * Dense, < nw_specs_count(). */
size_t nw_specs_index(const struct nw_specs *s, const char *model);
size_t nw_specs_count(const struct nw_specs *s);
const struct nw_spec *nw_specs_at(const struct nw_specs *s, size_t i);

#endif

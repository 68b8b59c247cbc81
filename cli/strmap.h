/*
 * strmap.h - interned strings with dense ids: "clinic name" -> 0, 1, 2...
 *
 * Reports group millions of rows by a handful of names (clinics, devices,
 * firmwares, operators). A strmap keeps each distinct string once and gives
 * it the next small integer, so groups live in plain arrays indexed by id.
 * Open addressing on the project's one string hash (nw_hash_str); the table
 * doubles when 3/4 full, bounded by max_keys (set at creation).
 */
#ifndef CLI_STRMAP_H
#define CLI_STRMAP_H

#include <needlewatch/err.h>

#include <stddef.h>
#include <stdint.h>

struct nw_strmap;

/* At most max_keys distinct strings. Caller-owned; NULL when out of memory. */
struct nw_strmap *nw_strmap_new(size_t max_keys);
void nw_strmap_destroy(struct nw_strmap **p);

/* The id of s (borrowed; copied when new) in *out_id, adding it if absent.
 * NW_ERR_FULL beyond max_keys, NW_ERR_NOMEM. */
enum nw_err nw_strmap_put(struct nw_strmap *m, const char *s, uint32_t *out_id);

/* The id of s, or -1 when absent. */
long nw_strmap_get(const struct nw_strmap *m, const char *s);

/* The string of id (borrowed from the map, valid until destroy). */
const char *nw_strmap_str(const struct nw_strmap *m, uint32_t id);

size_t nw_strmap_count(const struct nw_strmap *m);

#endif

/*
 * strmap.c - interned strings with dense ids (strmap.h).
 */
#include "strmap.h"

#include <needlewatch/hash.h>

#include <stdlib.h>
#include <string.h>

struct nw_strmap {
    char **strs;     /* id -> string */
    size_t n, max;   /* ids in use; bound */
    uint32_t *slots; /* id + 1, 0 = empty */
    size_t nslots;   /* power of two */
};

struct nw_strmap *nw_strmap_new(size_t max_keys)
{
    struct nw_strmap *m = calloc(1, sizeof(*m));
    if (!m) {
        return NULL;
    }
    m->max = max_keys;
    m->nslots = 64;
    m->slots = calloc(m->nslots, sizeof(*m->slots));
    if (!m->slots) {
        free(m);
        return NULL;
    }
    return m;
}

void nw_strmap_destroy(struct nw_strmap **p)
{
    if (p && *p) {
        for (size_t i = 0; i < (*p)->n; i++) {
            free((*p)->strs[i]);
        }
        free((*p)->strs);
        free((*p)->slots);
        free(*p);
        *p = NULL;
    }
}

static size_t find(const struct nw_strmap *m, const char *s)
{
    size_t mask = m->nslots - 1, i = (size_t)nw_hash_str(s) & mask;
    while (m->slots[i] && strcmp(m->strs[m->slots[i] - 1], s) != 0) {
        i = (i + 1) & mask;
    }
    return i;
}

long nw_strmap_get(const struct nw_strmap *m, const char *s)
{
    size_t i = find(m, s);
    return m->slots[i] ? (long)m->slots[i] - 1 : -1;
}

static enum nw_err grow(struct nw_strmap *m)
{
    size_t ns = m->nslots * 2;
    uint32_t *slots = calloc(ns, sizeof(*slots));
    if (!slots) {
        return NW_ERR_NOMEM;
    }
    for (size_t id = 0; id < m->n; id++) {
        size_t i = (size_t)nw_hash_str(m->strs[id]) & (ns - 1);
        while (slots[i]) {
            i = (i + 1) & (ns - 1);
        }
        slots[i] = (uint32_t)id + 1;
    }
    free(m->slots);
    m->slots = slots;
    m->nslots = ns;
    return NW_OK;
}

enum nw_err nw_strmap_put(struct nw_strmap *m, const char *s, uint32_t *out_id)
{
    size_t i = find(m, s);
    if (m->slots[i]) {
        *out_id = m->slots[i] - 1;
        return NW_OK;
    }
    if (m->n >= m->max) {
        return NW_ERR_FULL;
    }
    if ((m->n + 1) * 4 > m->nslots * 3) {
        if (grow(m) != NW_OK) {
            return NW_ERR_NOMEM;
        }
        i = find(m, s);
    }
    if ((m->n & (m->n - 1)) == 0) { /* 0, 1, 2, 4, 8...: double the id array */
        char **strs = realloc(m->strs, (m->n ? m->n * 2 : 1) * sizeof(*strs));
        if (!strs) {
            return NW_ERR_NOMEM;
        }
        m->strs = strs;
    }
    char *copy = strdup(s);
    if (!copy) {
        return NW_ERR_NOMEM;
    }
    m->strs[m->n] = copy;
    m->slots[i] = (uint32_t)++m->n;
    *out_id = (uint32_t)m->n - 1;
    return NW_OK;
}

const char *nw_strmap_str(const struct nw_strmap *m, uint32_t id)
{
    return id < m->n ? m->strs[id] : "";
}

size_t nw_strmap_count(const struct nw_strmap *m)
{
    return m->n;
}

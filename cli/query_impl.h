/*
 * query_impl.h - what query.c shares with its two backends. Private to cli/.
 *
 * query.c checks a spec against the store schema and resolves each column's
 * type (enum nw_col_type from collector/store_impl.h); a backend only runs
 * an already valid spec and normalises values by those types.
 */
#ifndef CLI_QUERY_IMPL_H
#define CLI_QUERY_IMPL_H

#include "query.h"

#include <store.h>

struct nw_query_backend {
    /* types[k]: enum nw_col_type of spec->cols[k]. */
    enum nw_err (*run)(void *impl, const struct nw_query_spec *spec, const int *types,
                       nw_query_row_fn fn, void *user, struct nw_error *err);
    void (*close)(void *impl);
};

/* url is parsed; name is the credential-free URL for messages. *out_impl is
 * owned by the backend and freed by its close(). */
enum nw_err nw_query_sqlite_open(const struct nw_store_url *url, const char *name,
                                 const struct nw_query_options *opt,
                                 const struct nw_query_backend **out_ops, void **out_impl,
                                 struct nw_error *err);
enum nw_err nw_query_influx_open(const struct nw_store_url *url, const char *name,
                                 const struct nw_query_options *opt,
                                 const struct nw_query_backend **out_ops, void **out_impl,
                                 struct nw_error *err);

#endif

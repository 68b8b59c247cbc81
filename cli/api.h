/*
 * api.h - a client of the collector's operator API (the --http listener):
 *
 *   POST /alerts/ack?id=ID                        200 {"ok":true}; 404 unknown id
 *   POST /silences?device=D&rule=R&for=SECONDS    device or rule omitted = all
 *   GET  /silences                                the active silences (JSON)
 *
 * One request per call, libcurl, bounded: connect 5 s, whole request 30 s,
 * answer bodies kept up to 1 MiB, no redirects. Query values are
 * percent-encoded.
 */
#ifndef CLI_API_H
#define CLI_API_H

#include <needlewatch/err.h>

#include <stddef.h>

struct nw_api_answer {
    long status; /* HTTP status, 0 when there was no answer */
    char *body;  /* NUL-terminated; caller-owned, free() */
    size_t len;
};

/*
 * method "GET" or "POST" to base (borrowed, "http://127.0.0.1:9464") + path,
 * with query parameters params[0..n) as name/value pairs (a NULL value is
 * left out). NW_OK when an answer arrived (any status: see out->status);
 * NW_ERR_RETRY / NW_ERR_TIMEOUT when the collector could not be reached,
 * NW_ERR_CONFIG for a bad base URL.
 */
enum nw_err nw_api_call(const char *base, const char *method, const char *path,
                        const char *const *params, size_t nparams, struct nw_api_answer *out,
                        struct nw_error *err);

#endif

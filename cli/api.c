/*
 * api.c - the collector operator API client (api.h).
 */
#include "api.h"

#include <curl/curl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BODY_MAX (1u << 20)

static size_t on_body(char *data, size_t size, size_t nmemb, void *user)
{
    struct nw_api_answer *a = user;
    size_t n = size * nmemb;
    if (a->len + n > BODY_MAX) {
        return 0;
    }
    char *b = realloc(a->body, a->len + n + 1);
    if (!b) {
        return 0;
    }
    memcpy(b + a->len, data, n);
    a->body = b;
    a->len += n;
    b[a->len] = '\0';
    return n;
}

enum nw_err nw_api_call(const char *base, const char *method, const char *path,
                        const char *const *params, size_t nparams, struct nw_api_answer *out,
                        struct nw_error *err)
{
    memset(out, 0, sizeof(*out));
    if (strncmp(base, "http://", 7) != 0 && strncmp(base, "https://", 8) != 0) {
        return nw_error_set(err, NW_ERR_CONFIG, "collector URL \"%s\": expected http://HOST:PORT",
                            base);
    }
    static bool ready;
    if (!ready) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        ready = true;
    }
    CURL *c = curl_easy_init();
    if (!c) {
        return nw_error_set(err, NW_ERR_NOMEM, "out of memory");
    }
    char url[2048];
    size_t blen = strlen(base);
    while (blen && base[blen - 1] == '/') {
        blen--;
    }
    int at = snprintf(url, sizeof(url), "%.*s%s", (int)blen, base, path);
    enum nw_err rc = NW_OK;
    for (size_t i = 0; i + 1 < nparams * 2 && at > 0 && (size_t)at < sizeof(url); i += 2) {
        if (!params[i + 1]) {
            continue;
        }
        char *v = curl_easy_escape(c, params[i + 1], 0);
        at += snprintf(url + at, sizeof(url) - (size_t)at, "%c%s=%s", strchr(url, '?') ? '&' : '?',
                       params[i], v ? v : "");
        curl_free(v);
    }
    if (at < 0 || (size_t)at >= sizeof(url)) {
        curl_easy_cleanup(c);
        return nw_error_set(err, NW_ERR_CONFIG, "collector URL too long");
    }
    char cerr[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_USERAGENT, "needlewatch/" NW_VERSION);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
    if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
    }
    CURLcode cc = curl_easy_perform(c);
    if (cc != CURLE_OK) {
        rc = nw_error_set(err, cc == CURLE_OPERATION_TIMEDOUT ? NW_ERR_TIMEOUT : NW_ERR_RETRY,
                          "collector %.*s: %s", (int)blen, base,
                          cerr[0] ? cerr : curl_easy_strerror(cc));
        free(out->body);
        out->body = NULL;
        out->len = 0;
    } else {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
        if (!out->body) {
            out->body = calloc(1, 1);
        }
    }
    curl_easy_cleanup(c);
    return rc;
}

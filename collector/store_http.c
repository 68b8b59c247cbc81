/*
 * store_http.c - one reusable libcurl easy handle that POSTs line protocol.
 *
 * Why each setting:
 *  - the easy handle lives as long as the store, so libcurl keeps the
 *    connection alive between batches (no TCP/TLS handshake per write);
 *  - CURLOPT_NOSIGNAL: the collector is multi-threaded; without it libcurl
 *    uses SIGALRM for DNS timeouts, which is not thread-safe;
 *  - connect and total timeouts: a server that accepts and never answers
 *    costs at most timeout_ms per request;
 *  - "Expect:" is removed: for bodies over 1 KiB libcurl would otherwise
 *    send "Expect: 100-continue" and wait for the server's interim answer
 *    before sending the body, one extra round trip per batch;
 *  - redirects are not followed (a 3xx is a configuration problem, and
 *    following one would re-send credentials somewhere else), and only
 *    http/https are allowed;
 *  - the answer body is kept up to NW_HTTP_BODY_MAX bytes in a fixed
 *    buffer: a misbehaving server cannot make us allocate.
 */
#include "store_impl.h"

#include <needlewatch/clock.h>

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct nw_http {
    CURL *curl;
    struct curl_slist *headers;
    char *auth_header; /* secret: wiped at destroy */
    char *user, *password;
    char errbuf[CURL_ERROR_SIZE];
    struct nw_http_answer *ans; /* of the request in progress */
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;

/* curl_global_init is not thread-safe on older libcurl: once per process. */
static void global_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    struct nw_http_answer *a = ud;
    size_t n = size * nmemb, room = NW_HTTP_BODY_MAX - a->body_len;
    size_t take = n < room ? n : room;
    memcpy(a->body + a->body_len, data, take);
    a->body_len += take;
    a->body[a->body_len] = '\0';
    a->body_truncated |= take < n;
    return n; /* read the rest and drop it, so the connection stays usable */
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
    struct nw_http_answer *a = ud;
    size_t n = size * nmemb;
    static const char name[] = "retry-after:";
    if (n > sizeof(name) - 1 && n < 256 && strncasecmp(data, name, sizeof(name) - 1) == 0) {
        char v[256];
        memcpy(v, data + sizeof(name) - 1, n - (sizeof(name) - 1));
        v[n - (sizeof(name) - 1)] = '\0';
        a->retry_after_ms = nw_store_parse_retry_after(v, nw_clock_realtime_ms());
    } else if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        a->retry_after_ms = -1; /* a new status line (after a 100): forget earlier headers */
    }
    return n;
}

static char *dup_or_null(const char *s)
{
    return s && s[0] ? strdup(s) : NULL;
}

static enum nw_err set_options(struct nw_http *h, const struct nw_store_options *opt)
{
    CURL *c = h->curl;
    char ua[128];
    snprintf(ua, sizeof(ua), "%s", opt->user_agent ? opt->user_agent : "needlewatch/" NW_VERSION);
    h->headers = curl_slist_append(NULL, "Expect:");
    h->headers = curl_slist_append(h->headers, "Content-Type: text/plain; charset=utf-8");
    if (h->auth_header) {
        h->headers = curl_slist_append(h->headers, h->auth_header);
    }
    if (!h->headers) {
        return NW_ERR_NOMEM;
    }
    CURLcode rc = curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    rc |= curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)opt->connect_timeout_ms);
    rc |= curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)opt->timeout_ms);
    rc |= curl_easy_setopt(c, CURLOPT_HTTPHEADER, h->headers);
    rc |= curl_easy_setopt(c, CURLOPT_USERAGENT, ua);
    rc |= curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    rc |= curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    rc |= curl_easy_setopt(c, CURLOPT_POST, 1L);
    rc |= curl_easy_setopt(c, CURLOPT_ERRORBUFFER, h->errbuf);
    rc |= curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    rc |= curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    rc |= curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    if (opt->ca_file) {
        rc |= curl_easy_setopt(c, CURLOPT_CAINFO, opt->ca_file);
    }
    if (h->user) {
        rc |= curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        rc |= curl_easy_setopt(c, CURLOPT_USERNAME, h->user);
        rc |= curl_easy_setopt(c, CURLOPT_PASSWORD, h->password ? h->password : "");
    }
    return rc == CURLE_OK ? NW_OK : NW_ERR_CONFIG;
}

struct nw_http *nw_http_new(const struct nw_store_options *opt, const char *auth_header,
                            const char *user, const char *password, struct nw_error *err)
{
    pthread_once(&global_once, global_init);
    struct nw_http *h = calloc(1, sizeof(*h));
    if (!h || !(h->curl = curl_easy_init())) {
        free(h);
        nw_error_set(err, NW_ERR_NOMEM, "libcurl: cannot create a handle");
        return NULL;
    }
    h->auth_header = dup_or_null(auth_header);
    h->user = dup_or_null(user);
    h->password = dup_or_null(password);
    enum nw_err rc = set_options(h, opt);
    if (rc != NW_OK) {
        nw_error_set(err, rc, "libcurl: cannot set options (is libcurl >= 7.85?)");
        nw_http_destroy(&h);
    }
    return h;
}

static void wipe_free(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

void nw_http_destroy(struct nw_http **hp)
{
    if (!hp || !*hp) {
        return;
    }
    struct nw_http *h = *hp;
    curl_easy_cleanup(h->curl);
    curl_slist_free_all(h->headers); /* holds a copy of the auth header */
    wipe_free(h->auth_header);
    wipe_free(h->user);
    wipe_free(h->password);
    free(h);
    *hp = NULL;
}

struct reader {
    nw_http_read_fn fn;
    void *ctx;
    uint64_t offset;
    uint64_t len;
};

static size_t on_read(char *dst, size_t size, size_t nmemb, void *ud)
{
    struct reader *r = ud;
    size_t n = r->fn(r->ctx, r->offset, dst, size * nmemb);
    r->offset += n;
    return n;
}

/* Rewinding, for libcurl's re-send on a fresh connection. */
static int on_seek(void *ud, curl_off_t offset, int origin)
{
    struct reader *r = ud;
    if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > r->len) {
        return CURL_SEEKFUNC_CANTSEEK;
    }
    r->offset = (uint64_t)offset;
    return CURL_SEEKFUNC_OK;
}

static void classify_error(CURLcode rc, struct nw_http_answer *a, const char *errbuf)
{
    a->timeout = rc == CURLE_OPERATION_TIMEDOUT;
    a->tls_trust = rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE;
    a->transport_error = !a->timeout;
    snprintf(a->error, sizeof(a->error), "%s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
}

void nw_http_post(struct nw_http *h, const char *url, nw_http_read_fn read, void *ctx, size_t len,
                  struct nw_http_answer *a)
{
    a->status = 0;
    a->transport_error = a->timeout = a->tls_trust = a->body_truncated = false;
    a->retry_after_ms = -1;
    a->body_len = 0;
    a->body[0] = a->error[0] = '\0';
    h->errbuf[0] = '\0';
    struct reader r = {read, ctx, 0, len};
    CURL *c = h->curl;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(c, CURLOPT_READDATA, &r);
    curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, on_seek);
    curl_easy_setopt(c, CURLOPT_SEEKDATA, &r);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, a);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, a);
    int64_t t0 = nw_clock_mono_ns();
    CURLcode rc = curl_easy_perform(c);
    a->latency_us = (uint64_t)(nw_clock_mono_ns() - t0) / 1000;
    if (rc != CURLE_OK) {
        classify_error(rc, a, h->errbuf);
        return;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &a->status);
}

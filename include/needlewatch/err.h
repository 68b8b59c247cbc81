/*
 * err.h - the one error vocabulary of needlewatch.
 *
 * Every fallible function returns an enum nw_err. Where the caller needs to
 * know *why* (a validation failure, a config key, an HTTP answer), it passes
 * a struct nw_error that the callee fills with the code and a one-line
 * human-readable reason. The reason is written once, where the decision is
 * taken; callers log it or wrap it, they do not re-derive it.
 *
 * nw_err_is_retryable() separates "try again later" (broker or store down,
 * HTTP 429/5xx, timeouts, a full queue) from permanent failures (malformed
 * input, bad config, auth), which must never be retried in a loop.
 */
#ifndef NW_ERR_H
#define NW_ERR_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

enum nw_err {
    NW_OK = 0,
    NW_ERR_NOMEM,     /* allocation failed */
    NW_ERR_INVAL,     /* bad argument from the caller (a programming error) */
    NW_ERR_TOO_BIG,   /* input or output exceeds a documented bound */
    NW_ERR_DECODE,    /* bytes are not a valid message */
    NW_ERR_INVALID,   /* a well-formed message failed validation */
    NW_ERR_CONFIG,    /* configuration file or flag is wrong */
    NW_ERR_IO,        /* file or socket error (errno in the message) */
    NW_ERR_FULL,      /* a bounded queue/buffer is full (retryable) */
    NW_ERR_RETRY,     /* transient remote failure: retry with backoff */
    NW_ERR_TIMEOUT,   /* no answer in time (retryable) */
    NW_ERR_AUTH,      /* refused credentials or permission (permanent) */
    NW_ERR_NOT_FOUND, /* missing file, key, device, database */
    NW_ERR_PROTOCOL,  /* peer spoke something we do not understand */
    NW_ERR_CORRUPT,   /* stored data failed its checksum */
    NW_ERR__COUNT
};

/* A code with its reason. msg is always NUL-terminated. */
struct nw_error {
    enum nw_err code;
    char msg[256];
};

/* Static, never NULL, never freed: "out of memory", "invalid message", ... */
const char *nw_strerror(enum nw_err code);

/* True for the codes that mean "the same request may succeed later". */
bool nw_err_is_retryable(enum nw_err code);

/*
 * Fills *err (which may be NULL: then only the code is returned) with code
 * and a printf-formatted reason, truncated to fit. Returns code, so a caller
 * can write `return nw_error_set(err, NW_ERR_CONFIG, "...", ...)`.
 */
enum nw_err nw_error_set(struct nw_error *err, enum nw_err code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
enum nw_err nw_error_vset(struct nw_error *err, enum nw_err code, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/* Prepends "prefix: " to err->msg (for adding a file name or context). */
void nw_error_prefix(struct nw_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Resets *err to NW_OK with an empty message. NULL-safe. */
void nw_error_clear(struct nw_error *err);

#endif

/* err.c - error codes, their names, and the reason buffer. */
#include <needlewatch/err.h>

#include <stdio.h>
#include <string.h>

static const char *const names[NW_ERR__COUNT] = {
    [NW_OK] = "success",
    [NW_ERR_NOMEM] = "out of memory",
    [NW_ERR_INVAL] = "invalid argument",
    [NW_ERR_TOO_BIG] = "too big",
    [NW_ERR_DECODE] = "malformed message",
    [NW_ERR_INVALID] = "message failed validation",
    [NW_ERR_CONFIG] = "configuration error",
    [NW_ERR_IO] = "I/O error",
    [NW_ERR_FULL] = "queue full",
    [NW_ERR_RETRY] = "temporary failure, retry later",
    [NW_ERR_TIMEOUT] = "timed out",
    [NW_ERR_AUTH] = "not authorised",
    [NW_ERR_NOT_FOUND] = "not found",
    [NW_ERR_PROTOCOL] = "protocol error",
    [NW_ERR_CORRUPT] = "corrupt data",
};

const char *nw_strerror(enum nw_err code)
{
    if ((unsigned)code >= NW_ERR__COUNT) {
        return "unknown error";
    }
    return names[code];
}

bool nw_err_is_retryable(enum nw_err code)
{
    return code == NW_ERR_FULL || code == NW_ERR_RETRY || code == NW_ERR_TIMEOUT ||
           code == NW_ERR_IO;
}

enum nw_err nw_error_vset(struct nw_error *err, enum nw_err code, const char *fmt, va_list ap)
{
    if (err) {
        err->code = code;
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    }
    return code;
}

enum nw_err nw_error_set(struct nw_error *err, enum nw_err code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    nw_error_vset(err, code, fmt, ap);
    va_end(ap);
    return code;
}

void nw_error_prefix(struct nw_error *err, const char *fmt, ...)
{
    if (!err) {
        return;
    }
    char prefix[sizeof(err->msg)];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    /* Room for both halves, then cut to fit: the prefix matters most. */
    char joined[2 * sizeof(err->msg) + 2];
    snprintf(joined, sizeof(joined), "%s: %s", prefix, err->msg);
    size_t len = strnlen(joined, sizeof(err->msg) - 1);
    memcpy(err->msg, joined, len);
    err->msg[len] = '\0';
}

void nw_error_clear(struct nw_error *err)
{
    if (err) {
        err->code = NW_OK;
        err->msg[0] = '\0';
    }
}

/* topic.c - building and parsing needlewatch MQTT topics. */
#include <needlewatch/topic.h>
#include <needlewatch/validate.h>

#include <stdio.h>
#include <string.h>

static const char *const kind_names[NW_TOPIC__COUNT] = {
    [NW_TOPIC_TELEMETRY] = "telemetry", [NW_TOPIC_EVENT] = "event",
    [NW_TOPIC_STATUS] = "status",       [NW_TOPIC_ACK] = "ack",
    [NW_TOPIC_ALERT] = "alert",
};

const char *nw_topic_kind_name(enum nw_topic_kind kind)
{
    if ((unsigned)kind >= NW_TOPIC__COUNT) {
        return NULL;
    }
    return kind_names[kind];
}

enum nw_err nw_topic_check_prefix(const char *prefix, struct nw_error *out_err)
{
    size_t n = prefix ? strlen(prefix) : 0;
    if (n == 0 || n > NW_TOPIC_PREFIX_MAX) {
        return nw_error_set(out_err, NW_ERR_CONFIG, "topic prefix: needs 1-%d bytes",
                            NW_TOPIC_PREFIX_MAX);
    }
    if (prefix[0] == '/' || prefix[n - 1] == '/' || strstr(prefix, "//")) {
        return nw_error_set(out_err, NW_ERR_CONFIG,
                            "topic prefix \"%s\": no leading, trailing or empty levels", prefix);
    }
    if (prefix[0] == '$') {
        return nw_error_set(out_err, NW_ERR_CONFIG,
                            "topic prefix \"%s\": '$' topics are reserved by the broker", prefix);
    }
    if (strpbrk(prefix, "+#") || !nw_valid_text(prefix, NW_TOPIC_PREFIX_MAX)) {
        return nw_error_set(out_err, NW_ERR_CONFIG,
                            "topic prefix \"%s\": no wildcards (+, #) or control characters",
                            prefix);
    }
    return NW_OK;
}

static enum nw_err put(char *buf, size_t cap, struct nw_error *out_err, const char *a,
                       const char *b, const char *c, const char *d)
{
    int n = snprintf(buf, cap, "%s%s/%s/%s", a, b, c, d);
    if (n < 0 || (size_t)n >= cap) {
        return nw_error_set(out_err, NW_ERR_TOO_BIG, "topic needs %d bytes, buffer has %zu", n,
                            cap);
    }
    return NW_OK;
}

enum nw_err nw_topic_build(const char *prefix, const char *device, enum nw_topic_kind kind,
                           char *buf, size_t cap, struct nw_error *out_err)
{
    if (nw_topic_check_prefix(prefix, out_err) != NW_OK) {
        return nw_error_set(out_err, NW_ERR_INVAL, "bad topic prefix");
    }
    if (!nw_valid_device_id(device)) {
        return nw_error_set(out_err, NW_ERR_INVAL,
                            "device id: needs 1-%d characters of [A-Za-z0-9_-]", NW_DEVICE_ID_MAX);
    }
    const char *k = nw_topic_kind_name(kind);
    if (!k) {
        return nw_error_set(out_err, NW_ERR_INVAL, "topic kind %d unknown", (int)kind);
    }
    return put(buf, cap, out_err, "", prefix, device, k);
}

enum nw_err nw_topic_filter(const char *prefix, const char *share_group, enum nw_topic_kind kind,
                            char *buf, size_t cap, struct nw_error *out_err)
{
    if (nw_topic_check_prefix(prefix, out_err) != NW_OK) {
        return nw_error_set(out_err, NW_ERR_INVAL, "bad topic prefix");
    }
    const char *k = nw_topic_kind_name(kind);
    if (!k) {
        return nw_error_set(out_err, NW_ERR_INVAL, "topic kind %d unknown", (int)kind);
    }
    if (!share_group) {
        return put(buf, cap, out_err, "", prefix, "+", k);
    }
    if (!nw_valid_device_id(share_group)) {
        return nw_error_set(out_err, NW_ERR_INVAL,
                            "share group: needs 1-%d characters of [A-Za-z0-9_-]",
                            NW_DEVICE_ID_MAX);
    }
    char share[NW_DEVICE_ID_MAX + 16];
    snprintf(share, sizeof(share), "$share/%s/", share_group);
    return put(buf, cap, out_err, share, prefix, "+", k);
}

enum nw_err nw_topic_parse(const char *prefix, const char *topic,
                           char out_device[NW_DEVICE_ID_MAX + 1], enum nw_topic_kind *out_kind,
                           enum nw_reason *out_reason, struct nw_error *out_err)
{
    size_t plen = strlen(prefix);
    if (strncmp(topic, prefix, plen) != 0 || topic[plen] != '/') {
        return nw_reject(NW_REASON_BAD_TOPIC, out_reason, out_err, "topic: not under \"%s/\"",
                         prefix);
    }
    const char *dev = topic + plen + 1;
    const char *slash = strchr(dev, '/');
    if (!slash) {
        return nw_reject(NW_REASON_BAD_TOPIC, out_reason, out_err,
                         "topic: expected %s/<device>/<kind>", prefix);
    }
    /* Empty or too long is a bad device id (validate.h), like a bad character. */
    size_t dlen = (size_t)(slash - dev);
    if (dlen > NW_DEVICE_ID_MAX) {
        return nw_reject(NW_REASON_BAD_DEVICE_ID, out_reason, out_err,
                         "topic: device id needs 1-%d characters of [A-Za-z0-9_-]",
                         NW_DEVICE_ID_MAX);
    }
    memcpy(out_device, dev, dlen);
    out_device[dlen] = '\0';
    if (!nw_valid_device_id(out_device)) {
        return nw_reject(NW_REASON_BAD_DEVICE_ID, out_reason, out_err,
                         "topic: device id needs 1-%d characters of [A-Za-z0-9_-]",
                         NW_DEVICE_ID_MAX);
    }
    for (int k = 0; k < NW_TOPIC__COUNT; k++) {
        if (strcmp(slash + 1, kind_names[k]) == 0) {
            *out_kind = (enum nw_topic_kind)k;
            return NW_OK;
        }
    }
    return nw_reject(NW_REASON_BAD_TOPIC, out_reason, out_err, "topic: unknown kind \"%.32s\"",
                     slash + 1);
}

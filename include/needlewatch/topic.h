/*
 * topic.h - the MQTT topics of DESIGN.md §3: PREFIX/<device>/<kind>.
 *
 * The prefix is configurable (default "needlewatch/v1") so several fleets
 * can share a broker. Device ids are checked here as everywhere else:
 * 1-64 of [A-Za-z0-9_-], which keeps the MQTT wildcards `+` and `#` and the
 * level separator `/` out of any topic we build.
 */
#ifndef NW_TOPIC_H
#define NW_TOPIC_H

#include <needlewatch/err.h>
#include <needlewatch/msg.h>
#include <needlewatch/validate.h>

#include <stddef.h>

#define NW_TOPIC_PREFIX_DEFAULT "needlewatch/v1"
#define NW_TOPIC_PREFIX_MAX 128
/* Longest topic we build: prefix + "/" + device + "/" + "telemetry". */
#define NW_TOPIC_MAX (NW_TOPIC_PREFIX_MAX + 1 + NW_DEVICE_ID_MAX + 1 + 9)

enum nw_topic_kind {
    NW_TOPIC_TELEMETRY,
    NW_TOPIC_EVENT,
    NW_TOPIC_STATUS,
    NW_TOPIC_ACK,
    NW_TOPIC_ALERT,
    NW_TOPIC__COUNT
};

/* "telemetry", "event", ...; NULL for an out-of-range kind. */
const char *nw_topic_kind_name(enum nw_topic_kind kind);

/*
 * A prefix is 1-128 bytes of MQTT topic levels without wildcards, without
 * a leading or trailing '/', without empty levels and not starting with '$'
 * (reserved by brokers). Returns NW_OK or NW_ERR_CONFIG naming the problem.
 */
enum nw_err nw_topic_check_prefix(const char *prefix, struct nw_error *out_err);

/*
 * Writes PREFIX/DEVICE/KIND into buf[0..cap). All arguments borrowed.
 * NW_ERR_INVAL for a bad prefix, device id or kind; NW_ERR_TOO_BIG when it
 * does not fit (NW_TOPIC_MAX + 1 always fits).
 */
enum nw_err nw_topic_build(const char *prefix, const char *device, enum nw_topic_kind kind,
                           char *buf, size_t cap, struct nw_error *out_err);

/*
 * Writes a subscription filter PREFIX/+/KIND, or with a non-NULL share
 * group $share/GROUP/PREFIX/+/KIND (MQTT 5 shared subscription; the group
 * obeys the device id charset).
 */
enum nw_err nw_topic_filter(const char *prefix, const char *share_group, enum nw_topic_kind kind,
                            char *buf, size_t cap, struct nw_error *out_err);

/*
 * Splits a received topic into its device id (copied to out_device, which
 * holds NW_DEVICE_ID_MAX + 1 bytes) and kind. NW_ERR_INVALID, with
 * *out_reason (bad_topic or bad_device_id; may be NULL) and a message, for
 * any topic that is not PREFIX/<valid device>/<known kind>.
 */
enum nw_err nw_topic_parse(const char *prefix, const char *topic,
                           char out_device[NW_DEVICE_ID_MAX + 1], enum nw_topic_kind *out_kind,
                           enum nw_reason *out_reason, struct nw_error *out_err);

#endif

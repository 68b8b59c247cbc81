/*
 * codec.h - the wire form (proto/needlewatch.proto) of every message.
 *
 * A struct nw_codec turns msg.h structs into protobuf bytes and back. It
 * owns one arena, fixed at creation, that protobuf-c allocates from while
 * packing and unpacking; nothing is malloc'd per message, and a payload
 * whose decoded form would not fit the arena is refused (too_complex), so a
 * hostile 256 KiB payload of empty sub-messages cannot make the collector
 * allocate hundreds of MiB. One codec per thread: it is not thread-safe.
 *
 * Decoding checks structure: payload size, protobuf well-formedness,
 * presence of required fields, the device id, counts and string lengths.
 * The values (NaN, ranges, timestamps) are judged by nw_validate_* from
 * validate.h, so a caller can store the good windows of a batch and
 * dead-letter the bad ones. Floats arrive quantised to the sensor's
 * resolution (rate 0.001 Hz, depth 0.0001 mm, pigment 0.0001 µL), so the
 * stored values read as the device meant them (120.13, not 120.12999725).
 *
 * Windows of a batch omit session, cartridge and pigment lot when they equal
 * the previous window's (see the .proto); encode and decode handle that.
 */
#ifndef NW_CODEC_H
#define NW_CODEC_H

#include <needlewatch/err.h>
#include <needlewatch/msg.h>
#include <needlewatch/validate.h>

#include <stddef.h>
#include <stdint.h>

struct nw_codec;

/*
 * Creates a codec bound by *lim (copied). Its arena is
 * NW_CODEC_ARENA_PER_PAYLOAD_BYTE * lim->max_payload + 64 KiB bytes,
 * touched only as far as the largest message needs. Returns NULL when out
 * of memory. The caller owns the codec and frees it with nw_codec_destroy().
 */
#define NW_CODEC_ARENA_PER_PAYLOAD_BYTE 24
struct nw_codec *nw_codec_new(const struct nw_limits *lim);

/* Frees *p (NULL-safe) and sets *p to NULL. */
void nw_codec_destroy(struct nw_codec **p);

/* The limits the codec was made with; borrowed, valid while the codec is. */
const struct nw_limits *nw_codec_limits(const struct nw_codec *c);

/*
 * Encoders write the wire form of *in (borrowed) into buf[0..cap) and set
 * *out_len. They refuse with NW_ERR_TOO_BIG when the result exceeds cap or
 * limits.max_payload, and NW_ERR_INVAL for a batch with count > capacity.
 * They do not validate values: producers call nw_validate_* first.
 */
enum nw_err nw_codec_encode_windows(struct nw_codec *c, const struct nw_window_batch *in,
                                    uint8_t *buf, size_t cap, size_t *out_len,
                                    struct nw_error *out_err);
enum nw_err nw_codec_encode_events(struct nw_codec *c, const struct nw_event_batch *in,
                                   uint8_t *buf, size_t cap, size_t *out_len,
                                   struct nw_error *out_err);
enum nw_err nw_codec_encode_status(struct nw_codec *c, const struct nw_status *in, uint8_t *buf,
                                   size_t cap, size_t *out_len, struct nw_error *out_err);
enum nw_err nw_codec_encode_ack(struct nw_codec *c, const struct nw_ack *in, uint8_t *buf,
                                size_t cap, size_t *out_len, struct nw_error *out_err);
enum nw_err nw_codec_encode_alert(struct nw_codec *c, const struct nw_alert *in, uint8_t *buf,
                                  size_t cap, size_t *out_len, struct nw_error *out_err);

/*
 * Decoders parse buf[0..len) (borrowed) into *out. For batches the caller
 * sets out->windows/out->events and out->capacity to an array it owns; the
 * decoder fills out->count and never writes past capacity (more entries
 * than capacity or limits allow is bad_count). On failure they return
 * NW_ERR_TOO_BIG, NW_ERR_DECODE or NW_ERR_INVALID with *out_reason (may be
 * NULL) and out_err (may be NULL) naming the problem; *out is then
 * unspecified.
 */
enum nw_err nw_codec_decode_windows(struct nw_codec *c, const uint8_t *buf, size_t len,
                                    struct nw_window_batch *out, enum nw_reason *out_reason,
                                    struct nw_error *out_err);
enum nw_err nw_codec_decode_events(struct nw_codec *c, const uint8_t *buf, size_t len,
                                   struct nw_event_batch *out, enum nw_reason *out_reason,
                                   struct nw_error *out_err);
enum nw_err nw_codec_decode_status(struct nw_codec *c, const uint8_t *buf, size_t len,
                                   struct nw_status *out, enum nw_reason *out_reason,
                                   struct nw_error *out_err);
enum nw_err nw_codec_decode_ack(struct nw_codec *c, const uint8_t *buf, size_t len,
                                struct nw_ack *out, enum nw_reason *out_reason,
                                struct nw_error *out_err);
enum nw_err nw_codec_decode_alert(struct nw_codec *c, const uint8_t *buf, size_t len,
                                  struct nw_alert *out, enum nw_reason *out_reason,
                                  struct nw_error *out_err);

#endif

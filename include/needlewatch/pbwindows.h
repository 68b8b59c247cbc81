/*
 * pbwindows.h - a direct decoder for the one message every window travels
 * in, WindowBatch.
 *
 * protobuf_c_message_unpack() walks descriptors field by field for every
 * message; at a live fleet's rate that was 14 % of the collector's ingest
 * thread. This decoder knows WindowBatch and Window and reads them in one
 * pass into the same protobuf-c structs, so codec.c treats both results
 * alike. It handles only the plain shape its own encoder makes: known
 * fields with their wire types, ASCII strings, varints that fit their
 * field. For anything else (unknown or reserved fields, other wire types,
 * truncation, 8-bit strings) it returns NULL without judging the input,
 * and the caller hands the same bytes to protobuf-c, which decides. So
 * every input decodes exactly as protobuf-c decodes it;
 * tests/fuzz/fuzz_pbwindows.c checks that on arbitrary bytes.
 */
#ifndef NEEDLEWATCH_PBWINDOWS_H
#define NEEDLEWATCH_PBWINDOWS_H

#include "needlewatch.pb-c.h"

#include <stddef.h>
#include <stdint.h>

/*
 * Decodes buf (len bytes) into structs allocated from alloc (never
 * freed one by one: meant for an arena). Returns the batch, or NULL when
 * the input is outside the plain shape or alloc failed: then nothing
 * is said about the input, and protobuf_c_message_unpack() must decide.
 */
Needlewatch__V1__WindowBatch *nw_pbwindows_unpack(ProtobufCAllocator *alloc, const uint8_t *buf,
                                                  size_t len);

#endif

/* protobuf-c unpack with protobuf's merge rule for repeated occurrences of a singular message
 * field, which protobuf-c 1.4.1 breaks for messages with oneofs. */
#ifndef ES_PB_UNPACK_H
#define ES_PB_UNPACK_H

#include <stddef.h>
#include <stdint.h>
#include <protobuf-c/protobuf-c.h>

/* protobuf_c_message_unpack, except that a singular message field (a oneof member included)
 * occurring more than once in one message is merged, as protobuf requires: the occurrences'
 * payloads are concatenated (a concatenation is a merge) before protobuf-c sees them.
 *
 * protobuf-c 1.4.1 gets two cases wrong: it merges two occurrences with its merge_messages,
 * which for a message type with a oneof that neither occurrence sets looks up field number 0
 * and reads the field descriptor before the array (the parse then fails or worse); and it
 * replaces a oneof message member read twice instead of merging it. Both need a oneof, so a
 * message type from which no oneof is reachable goes straight to protobuf-c (its answer is
 * cached per descriptor, so that costs one table look-up); the others are scanned, and rebuilt
 * only when some message holds a singular message field twice.
 *
 * Returns NULL when protobuf-c refuses the bytes, or when messages nest deeper than
 * ES_PB_MAX_DEPTH inside a type with a oneof. Free as protobuf-c's own result. */
ProtobufCMessage *es_pb_unpack(const ProtobufCMessageDescriptor *desc, ProtobufCAllocator *allocator, size_t len,
                               const uint8_t *data);

#define ES_PB_MAX_DEPTH 100

/* 1 when some message type reachable from desc (desc included) has a oneof: the types whose
 * payloads es_pb_unpack scans. */
int es_pb_reaches_oneof(const ProtobufCMessageDescriptor *desc);

#endif

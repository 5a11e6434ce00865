/* The gRPC transport's check of request bytes before they are unpacked (private to runtime/net). */
#ifndef ES_NET_GRPC_WIRE_H
#define ES_NET_GRPC_WIRE_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

#include "es/status.h"

#define ES_GRPC_PATH_MAX 128   /* es_error.field's size */

/* Walks the protobuf bytes p[0..n) of a message of type d and refuses (INVALID_ARGUMENT naming
 * the field's dotted path, built in path[0..plen)) a string field that is not valid UTF-8 or
 * holds a NUL. depth counts nested messages. */
int es__grpc_check_wire(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t n, char *path, size_t plen,
                      unsigned depth, es_error *err);

#endif

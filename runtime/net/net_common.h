/* Internal to runtime/net: what the HTTP and gRPC transports share when they turn a request into
 * an es_call, so both accept and refuse the same metadata in the same words. */
#ifndef ES_NET_COMMON_H
#define ES_NET_COMMON_H

#include <stddef.h>
#include <protobuf-c/protobuf-c.h>
#include "es/service.h"

/* Longest Idempotency-Key / correlation id accepted; longer ones get INVALID_ARGUMENT. */
#define ES__NET_MAX_KEY 256

/* Which request metadata a value is. */
enum es__meta { ES__META_IDEMPOTENCY_KEY, ES__META_AUTHORIZATION, ES__META_CORRELATION_ID };

/* Stores one request metadata value (value[0..len), not NUL-terminated) into call, copied into
 * call->arena. name is the header as the client knows it, for the error message. Authorization
 * must use the Bearer scheme (the token alone is stored); keys and ids must be 1..256 printable
 * ASCII characters. Returns ES_OK, ES_UNAUTHENTICATED or ES_INVALID_ARGUMENT with err filled. */
int es__call_set_meta(es_call *call, enum es__meta which, const char *name, const char *value,
                      size_t len, es_error *err);

/* Allocates an empty message of type d from arena (initialised, never NULL). */
ProtobufCMessage *es__message_new(const ProtobufCMessageDescriptor *d, es_arena *arena);

/* The client-facing text of an error: err->message, prefixed by "field: " when the message does
 * not already name the field. Written to out (NUL-terminated, truncated to cap). */
void es__error_text(const es_error *err, char *out, size_t cap);

#endif

/* Client idempotency keys, scoped to the caller (private to runtime/service). */
#ifndef ES_SERVICE_IDEMPOTENCY_H
#define ES_SERVICE_IDEMPOTENCY_H

#include <stddef.h>
#include <stdint.h>
#include <protobuf-c/protobuf-c.h>

#include "es/arena.h"
#include "es/uuid.h"

/* Longest idempotency key a client may send (header or request_id field). */
#define ES_IDEMPOTENCY_KEY_MAX 256

/* The command id a client's key stands for: a UUID derived from the principal, the method and
 * the key, so that one principal's key can never find another's command, nor one method's key
 * another method's. Deterministic: the same three give the same id on every instance. */
void es__idem_scope(const char *actor, const char *method, const char *key, char out[ES_UUID_STRLEN + 1]);

/* SHA-256 of the request as protobuf bytes with the string field holding the key (request_id,
 * which may be NULL or "") read as empty: the same request carried by the header or by the field
 * has one fingerprint. Scratch memory comes from arena. */
void es__idem_fingerprint(const ProtobufCMessage *req, const char *request_id, es_arena *arena, uint8_t out[32]);

#endif

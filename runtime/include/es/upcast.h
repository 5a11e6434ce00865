/* Schema evolution: decoding a stored event written with an older schema version of its type.
 *
 * Protobuf keeps old payloads readable when a field is added (it decodes as its default). When
 * the default is not the right value for old events, an upcaster fills it in: a hand-written
 * function registered for an event type, run on every stored event whose schema_version is older
 * than the event definition's, right after decoding and before apply. Upcasters only add meaning
 * to old events; they never rewrite the stored bytes (events are forever). */
#ifndef ES_UPCAST_H
#define ES_UPCAST_H

#include <stddef.h>
#include <stdint.h>
#include <protobuf-c/protobuf-c.h>
#include "es/arena.h"
#include "es/schema.h"
#include "es/status.h"

/* Brings event (a message of the current definition's descriptor, decoded from a payload of
 * schema version stored_version < def->schema_version) up to the current version, in place.
 * New strings and messages go in arena (the event's own). Returns ES_OK, or an error that stops
 * the read (the stream then does not load). */
typedef int (*es_upcast_fn)(uint32_t stored_version, ProtobufCMessage *event, es_arena *arena, es_error *err);

typedef struct es_upcaster {
    const es_event_def *event;     /* the current definition it upgrades to */
    es_upcast_fn upcast;
} es_upcaster;

/* Decodes payload as def's message into arena and, when stored_version is older than
 * def->schema_version and ups (n entries, may be NULL/0) has an upcaster for def, runs it.
 * Returns ES_OK with *out set; ES_DATA_LOSS when the payload does not decode; the upcaster's
 * error. A stored_version newer than the definition is decoded as is (unknown fields are kept
 * by protobuf-c and ignored by apply): an older binary reading newer events still works. */
int es_event_decode(const es_event_def *def, uint32_t stored_version, const uint8_t *payload, size_t len,
                    const es_upcaster *ups, size_t n_ups, es_arena *arena, ProtobufCMessage **out,
                    es_error *err);

/* The definition of a stored event: type in the aggregate named stream_type, or in any
 * aggregate of schema when stream_type is NULL or names none of them. NULL when unknown. */
const es_event_def *es_schema_event_by_type(const es_schema *schema, const char *stream_type, const char *type);

/* For the readers that show stored events rather than fold them (the audit-trail query,
 * `history`, `tail`): a stored payload in the current schema of its event. When def is not NULL,
 * stored_version is older than def->schema_version and ups has an upcaster for def, the payload
 * is decoded, upcast (es_event_decode) and packed again into arena: *out and *out_len are the bytes
 * of the current message, and *upcast (may be NULL) is 1. Otherwise *out is payload itself (no
 * copy, no decode) and *upcast is 0. Readers keep the stored schema_version in what they show
 * (it says how the event was written). Returns ES_OK; ES_DATA_LOSS when an old payload does not
 * decode; the upcaster's error. */
int es_event_upcast_payload(const es_event_def *def, uint32_t stored_version, const uint8_t *payload, size_t len,
                            const es_upcaster *ups, size_t n_ups, es_arena *arena, const uint8_t **out,
                            size_t *out_len, int *upcast, es_error *err);

#endif

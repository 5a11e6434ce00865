/* proto3 JSON for protobuf-c messages: one generic walker over protobuf-c descriptors, with the
 * json_name tables and type registry that protoc-gen-es emits (es/schema.h).
 *
 * Decoding allocates the message and everything in it from an arena; nothing needs freeing
 * beyond the arena. Encoding appends to a heap buffer. The input is parsed by the codec's own
 * tokenizer (runtime/core/json_lex.c says why); every function is safe on any input bytes and
 * reentrant (a registry is read-only once built and may be shared between threads).
 *
 * Errors: ES_INVALID_ARGUMENT with err->field the proto path of the offending value
 * ("items[1].unit_price.amount_minor", map entries as labels["key"]; "" for JSON syntax errors,
 * whose message gives the byte offset) and err->message saying what is wrong. */
#ifndef ES_JSON_H
#define ES_JSON_H

#include <stddef.h>
#include <protobuf-c/protobuf-c.h>
#include "es/arena.h"
#include "es/buf.h"
#include "es/schema.h"
#include "es/status.h"

/* Known message types (for Any) and json_name overrides. Build once, share read-only. */
typedef struct es_json_registry es_json_registry;

/* Returns a new empty registry (well-known types are always known). Free with _free. */
es_json_registry *es_json_registry_new(void);
void es_json_registry_free(es_json_registry *r);
/* Adds every message and json_name table of a generated schema. */
void es_json_registry_add_schema(es_json_registry *r, const es_schema *s);
/* Adds d and every message type reachable through its fields. */
void es_json_registry_add_message(es_json_registry *r, const ProtobufCMessageDescriptor *d);
/* The table is kept by pointer and must outlive the registry; a NULL entry means "derive". */
void es_json_registry_add_names(es_json_registry *r, const es_json_names *names);
/* Finds a message descriptor by full name ("orders.v1.OrderPlaced"), or NULL. With r == NULL only
 * the well-known types are found. */
const ProtobufCMessageDescriptor *es_json_registry_find(const es_json_registry *r, const char *full_name);

/* All-zero options are the defaults. A NULL registry is allowed everywhere: names are then
 * derived by protoc's lowerCamelCase rule and Any knows only the well-known types. */
typedef struct es_json_options {
    int ignore_unknown;       /* decode: skip unknown fields / enum names (default: reject) */
    int lower_camel_output;   /* encode: json_name keys instead of proto names (default: proto names) */
    int emit_defaults;        /* encode: also write fields at their default value (proto3 scalars,
                                 repeated as [], maps as {}; messages and oneofs keep presence) */
    size_t max_depth;         /* decode: JSON nesting limit; encode: message nesting limit
                                 (0: 64; capped at 1000) */
} es_json_options;

/* Decodes json[0..len) into a new message of type d. On error returns ES_INVALID_ARGUMENT and
 * err->field names the offending field path ("items[1].unit_price.amount_minor"); *out is NULL. */
int es_json_decode(const es_json_registry *r, const ProtobufCMessageDescriptor *d, const char *json,
                   size_t len, const es_json_options *opt, es_arena *arena, ProtobufCMessage **out,
                   es_error *err);

/* Decodes json into an existing message, merging (used for HTTP body + path parameters): scalars
 * are replaced, repeated fields appended to, messages merged. On error msg may be half-merged. */
int es_json_merge(const es_json_registry *r, ProtobufCMessage *msg, const char *json, size_t len,
                  const es_json_options *opt, es_arena *arena, es_error *err);

/* Decodes json as the value of the one top-level field named field (proto or json name) of msg,
 * merging as es_json_merge does: the HTTP body of a route with `body: "<field>"`. Unlike wrapping
 * the body in {"<field>": ...} by hand, the body cannot reach any other field. */
int es_json_merge_field(const es_json_registry *r, ProtobufCMessage *msg, const char *field, const char *json,
                        size_t len, const es_json_options *opt, es_arena *arena, es_error *err);

/* Appends the JSON of m to out. Returns ES_INVALID_ARGUMENT when a value has no JSON form
 * (e.g. a Timestamp out of range, a string that is not UTF-8, an Any of an unknown type), with
 * err naming the field; out is then left as it was. */
int es_json_encode(const es_json_registry *r, const ProtobufCMessage *m, const es_json_options *opt,
                   es_buf *out, es_error *err);

/* Sets one field, found by proto name or json name along a dotted path ("shipping_address.city"),
 * from a string as it appears in a URL (path variable or query parameter). Scalars are parsed
 * from their text form, enums by name or number, repeated fields are appended to; intermediate
 * messages are created; Timestamp, Duration, FieldMask and wrapper fields take their JSON text
 * form. Map fields and other message fields are refused. */
/* Appends s as a JSON string literal (quoted, escaped). Returns ES_OK, or ES_INVALID_ARGUMENT
 * (nothing appended) when s is not valid UTF-8. */
int es_json_put_string(es_buf *out, const char *s);

int es_json_set_from_string(const es_json_registry *r, ProtobufCMessage *msg, const char *path,
                            const char *value, es_arena *arena, es_error *err);

#endif

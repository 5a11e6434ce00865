/* Private interface shared by the json_*.c files (the proto3 JSON codec). Nothing here is
 * public: symbols are es__json_*, the public API is es/json.h.
 *
 * The decoder runs in two steps: json_lex.c turns the input into a small tree (es__json_value)
 * in a scratch arena, then json_decode.c walks the tree together with the protobuf-c
 * descriptors. The tree costs one extra pass but lets the walker see an array's length before
 * it allocates, look for "@type" anywhere in an Any, and report errors with a field path. */
#ifndef ES_JSON_INTERNAL_H
#define ES_JSON_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <protobuf-c/protobuf-c.h>
#include "es/json.h"

#define ES__JSON_DEFAULT_DEPTH 64
#define ES__JSON_MAX_DEPTH 1000   /* hard cap on max_depth: the walkers recurse per level */
#define ES__JSON_PATH_MAX 256

/* ---- the parsed tree (json_lex.c) ---- */
typedef enum es__json_kind {
    ES__JSON_NULL,
    ES__JSON_FALSE,
    ES__JSON_TRUE,
    ES__JSON_NUMBER,   /* str/len: the lexeme exactly as written, validated against RFC 8259 */
    ES__JSON_STRING,   /* str/len: unescaped UTF-8 (validated), NUL-terminated; may hold NULs */
    ES__JSON_ARRAY,    /* items[n] */
    ES__JSON_OBJECT,   /* keys[n] / key_lens[n] / items[n]; keys are unique */
} es__json_kind;

typedef struct es__json_value es__json_value;
struct es__json_value {
    es__json_kind kind;
    const char *str;
    size_t len;
    es__json_value **items;
    const char **keys;
    size_t *key_lens;
    size_t n;
    size_t offset;     /* byte offset in the input, for messages */
};

/* Parses json[0..len) into a tree allocated from a (a scratch arena). Rejects anything that is
 * not exactly one RFC 8259 value (trailing garbage, duplicate keys, invalid UTF-8, lone
 * surrogates, nesting deeper than max_depth). On error fills err (field "") and returns
 * ES_INVALID_ARGUMENT. */
int es__json_parse(const char *json, size_t len, size_t max_depth, es_arena *a, es__json_value **out,
                   es_error *err);

/* ---- scalar text helpers (json_text.c) ---- */
enum { ES__NUM_OK = 0, ES__NUM_SYNTAX = -1, ES__NUM_FRACTION = -2, ES__NUM_RANGE = -3 };
/* 1 when s[0..n) is a JSON number lexeme (RFC 8259 grammar, nothing around it). */
int es__json_is_number(const char *s, size_t n);
/* Reads a number lexeme as an exact integer (no double round trip): 1e5 and 7.0 are integers,
 * 0.5 is not. Returns ES__NUM_OK with *neg and *mag, or an ES__NUM_ error. */
int es__json_parse_integer(const char *s, size_t n, int *neg, uint64_t *mag);
/* Reads a number lexeme as double / float; ES__NUM_RANGE when it overflows the type. */
int es__json_parse_double(const char *s, size_t n, double *out);
int es__json_parse_float(const char *s, size_t n, float *out);
/* Appends the shortest text that reads back to the same value; the caller handles NaN/inf. */
void es__json_put_double(es_buf *b, double v);
void es__json_put_float(es_buf *b, float v);
/* Appends s[0..n) as a quoted JSON string (es_json_quote). Returns -1, with b as it was, when s
 * is not valid UTF-8. */
int es__json_put_string(es_buf *b, const char *s, size_t n);
/* Standard base64 with padding. */
void es__json_put_base64(es_buf *b, const uint8_t *p, size_t n);
/* Standard or URL-safe alphabet, padding optional. Returns -1 on bad input. *out is arena-owned. */
int es__json_base64_decode(const char *s, size_t n, es_arena *a, uint8_t **out, size_t *out_len);

/* ---- registry and names (json_registry.c) ---- */
/* The json_name of field i of d: the registry's override when present, else NULL. */
const char *es__json_name_override(const es_json_registry *r, const ProtobufCMessageDescriptor *d,
                                   unsigned i);
/* Appends protoc's lowerCamelCase form of a proto field name. */
void es__json_put_camel(es_buf *b, const char *proto_name);
/* Finds the field named key (proto name or json name), or NULL. */
const ProtobufCFieldDescriptor *es__json_find_field(const es_json_registry *r,
                                                    const ProtobufCMessageDescriptor *d,
                                                    const char *key, size_t klen);
/* 1 when f is a map field (a repeated field of a protoc-made MapEntry message). */
int es__json_is_map(const ProtobufCMessageDescriptor *owner, const ProtobufCFieldDescriptor *f);
/* Field by number in d, or NULL. */
const ProtobufCFieldDescriptor *es__json_field_by_id(const ProtobufCMessageDescriptor *d, unsigned id);

/* ---- well-known types (json_wkt.c) ---- */
typedef enum es__json_wkt {
    ES__WKT_NONE = 0,
    ES__WKT_ANY,
    ES__WKT_TIMESTAMP,
    ES__WKT_DURATION,
    ES__WKT_FIELD_MASK,
    ES__WKT_STRUCT,
    ES__WKT_VALUE,
    ES__WKT_LIST_VALUE,
    ES__WKT_WRAPPER,   /* the nine google.protobuf.*Value wrappers */
} es__json_wkt;
es__json_wkt es__json_wkt_of(const ProtobufCMessageDescriptor *d);

/* ---- decoder (json_decode.c) ---- */
typedef struct es__json_dec {
    const es_json_registry *r;
    int ignore_unknown;
    es_arena *arena;     /* the caller's: everything the message keeps */
    es_arena *scratch;   /* freed at the end of the call */
    es_error *err;
    char path[ES__JSON_PATH_MAX];
    size_t plen;
    ProtobufCMessage *any_payload;   /* json_wkt.c: an Any's decoded payload, before packing */
} es__json_dec;

/* Copies a field path into err->field; an overlong path keeps its last cap-1 bytes. */
void es__json_copy_path(char *dst, size_t cap, const char *path);
/* Fails with ES_INVALID_ARGUMENT, err->field = the current path. */
int es__json_dec_fail(es__json_dec *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Path maintenance: push returns the old length to pop back to. */
size_t es__json_path_push_field(es__json_dec *d, const char *name);
size_t es__json_path_push_index(es__json_dec *d, size_t i);
void es__json_path_pop(es__json_dec *d, size_t old);
/* Allocates and initialises a message of type desc from the caller's arena. */
ProtobufCMessage *es__json_new_message(es__json_dec *d, const ProtobufCMessageDescriptor *desc);
/* Decodes v into the message m (merging), by the generic rules or the WKT's special form. */
int es__json_dec_message(es__json_dec *d, const es__json_value *v, ProtobufCMessage *m);
/* Decodes v into field f of m (singular, repeated or map), handling null and presence. */
int es__json_dec_field(es__json_dec *d, ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
                       const es__json_value *v);
/* Decodes the members of object v as fields of m (the generic message rule); skip_key, when
 * not NULL, names one member to leave out (Any's "@type"). */
int es__json_dec_fields(es__json_dec *d, const es__json_value *v, ProtobufCMessage *m,
                        const char *skip_key);
/* Special-form decode of a well-known type (json_wkt.c). */
int es__json_wkt_decode(es__json_dec *d, es__json_wkt w, const es__json_value *v, ProtobufCMessage *m);

/* ---- encoder (json_encode.c) ---- */
typedef struct es__json_enc {
    const es_json_registry *r;
    const es_json_options *opt;
    es_buf *out;
    es_error *err;
    size_t depth, max_depth;
    char path[ES__JSON_PATH_MAX];
    size_t plen;
} es__json_enc;

int es__json_enc_fail(es__json_enc *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int es__json_enc_message(es__json_enc *e, const ProtobufCMessage *m);
/* Encodes the fields of m as object members without braces; *first tracks the comma. */
int es__json_enc_fields(es__json_enc *e, const ProtobufCMessage *m, int *first);
/* Encodes one value of field f stored at p (an element, not the repeated array). */
int es__json_enc_single(es__json_enc *e, const ProtobufCFieldDescriptor *f, const void *p);
int es__json_wkt_encode(es__json_enc *e, es__json_wkt w, const ProtobufCMessage *m);

/* ---- storage helpers (json_decode.c) ---- */
size_t es__json_elem_size(ProtobufCType t);
/* Marks f as set in m (oneof case or has_ flag). */
void es__json_mark_set(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f);
/* 1 when the encoder should write f (presence / proto3 default rule, emit_defaults aside). */
int es__json_field_present(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f);

#endif

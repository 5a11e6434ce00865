/* Support routines for code emitted by protoc-gen-es (apply, validation, guards). Not for
 * hand-written code. State messages are heap-owned: strings, sub-messages and arrays are
 * malloc'd so that protobuf_c_message_free_unpacked(state, NULL) frees them. */
#ifndef ES_GEN_H
#define ES_GEN_H

#include <pthread.h>
#include <regex.h>
#include <stddef.h>
#include <protobuf-c/protobuf-c.h>
#include "es/status.h"

/* apply: replace a state member by a deep copy of an event member. */
void es_gen_set_string(char **dst, const char *src);
void es_gen_set_bytes(ProtobufCBinaryData *dst, ProtobufCBinaryData src);
void es_gen_set_message(ProtobufCMessage **dst, const ProtobufCMessage *src);
void es_gen_set_repeated_message(size_t *n_dst, void *dst_array, size_t n_src, const void *src_array);
void es_gen_set_repeated_string(size_t *n_dst, char ***dst, size_t n_src, char *const *src);
void es_gen_set_repeated_scalar(size_t *n_dst, void *dst_array, size_t n_src, const void *src, size_t elem_size);

/* Validation: the dotted path of the field being checked, for error messages. */
typedef struct es_gen_path {
    char buf[256];
    size_t len;
} es_gen_path;

size_t es_gen_path_push(es_gen_path *p, const char *field);
size_t es_gen_path_index(es_gen_path *p, size_t index);
void es_gen_path_pop(es_gen_path *p, size_t mark);
/* Sets err to INVALID_ARGUMENT for the current path and returns ES_INVALID_ARGUMENT. */
int es_gen_invalid(es_error *err, const es_gen_path *p, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Number of code points of a UTF-8 string. */
size_t es_gen_utf8_len(const char *s);

/* A lazily compiled POSIX extended regex; define with ES_GEN_REGEX("..."). */
typedef struct es_gen_regex {
    const char *pattern;
    pthread_mutex_t lock;
    int state;     /* 0 not compiled, 1 ok, -1 failed */
    regex_t re;
} es_gen_regex;
#define ES_GEN_REGEX(p) { (p), PTHREAD_MUTEX_INITIALIZER, 0, {0} }
int es_gen_regex_match(es_gen_regex *r, const char *s);

/* The name of enum value v, or "UNKNOWN(<v>)" in a static thread-local buffer. */
const char *es_gen_enum_name(const ProtobufCEnumDescriptor *d, int v);
/* The same without the first `prefix` characters of a known value's name ("PLACED"). */
const char *es_gen_enum_short(const ProtobufCEnumDescriptor *d, int v, size_t prefix);

#endif

/* Internal to runtime/net: gRPC server reflection (grpc.reflection.v1alpha and v1
 * ServerReflection/ServerReflectionInfo), served by grpc_server.c from the descriptor sets and
 * service names it was given before start.
 *
 * Two parts: an index (built before start, read-only afterwards, so streams share it without a
 * lock) and a stream, the state machine of one bidirectional call. The stream keeps exactly one
 * batch outstanding, with the caller's tag, so grpc_server.c drives it like its unary calls. */
#ifndef ES_GRPC_REFLECTION_H
#define ES_GRPC_REFLECTION_H

#include <stddef.h>
#include <stdint.h>
#include <grpc/grpc.h>
#include "es/status.h"

#define ES__REFL_PATH_V1ALPHA "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
#define ES__REFL_PATH_V1 "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"

typedef struct es__refl_index es__refl_index;
typedef struct es__refl_stream es__refl_stream;

/* An empty index; free with es__refl_index_free (NULL is ok). */
es__refl_index *es__refl_index_new(void);
void es__refl_index_free(es__refl_index *ix);

/* Adds a service name to list_services (copied; duplicates are ignored). */
void es__refl_index_add_service(es__refl_index *ix, const char *name);

/* Adds every file of a serialized google.protobuf.FileDescriptorSet (bytes are copied). A file
 * whose name is indexed already is skipped (the first set wins: sets of one build share their
 * imports). Returns ES_OK or ES_INVALID_ARGUMENT when the bytes are not a FileDescriptorSet. */
int es__refl_index_add_set(es__refl_index *ix, const uint8_t *bytes, size_t len, es_error *err);

/* 1 when path (not NUL-terminated) is one of the two reflection method paths. */
int es__refl_is_path(const char *path, size_t len);

/* Takes over a freshly accepted call gc (borrowed: the caller unrefs it after the stream is
 * over) and answers its requests from ix (borrowed, must outlive the stream). Every batch is
 * started with tag. Call es__refl_stream_step(st, 1) once to start. */
es__refl_stream *es__refl_stream_new(const es__refl_index *ix, grpc_call *gc, void *tag);

/* Advances the stream after its outstanding batch completed with ok (or once at start, ok = 1).
 * Returns 0 while a batch is outstanding, 1 when the stream is over (the caller frees it and the
 * call). */
int es__refl_stream_step(es__refl_stream *st, int ok);

/* Frees the stream's buffers. NULL is ok. */
void es__refl_stream_free(es__refl_stream *st);

#endif

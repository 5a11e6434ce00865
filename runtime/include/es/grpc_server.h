/* The gRPC transport: grpc C core 1.51 serving the methods of es_service_def tables. Each call's
 * request is unpacked with protobuf-c into the call's arena, handed to an es_dispatcher as an
 * es_call, and answered from call->done (which may run on any thread).
 *
 * Calls are accepted through generic request slots, so a method no table knows is answered
 * UNIMPLEMENTED at once instead of hanging until the client's deadline.
 *
 * The server also answers gRPC server reflection (grpc.reflection.v1alpha and v1
 * ServerReflection/ServerReflectionInfo): list_services names every added service and the
 * reflection service; the file requests are answered from the added descriptor sets. */
#ifndef ES_GRPC_SERVER_H
#define ES_GRPC_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include "es/schema.h"
#include "es/service.h"
#include "es/status.h"

typedef struct es_grpc_server es_grpc_server;

typedef struct es_grpc_config {
    const char *address;        /* "host:port"; NULL: "0.0.0.0:8081"; port 0: any free port */
    unsigned threads;           /* completion-queue threads; 0: 2 */
    unsigned request_slots;     /* outstanding generic accept slots; 0: 32 */
    size_t max_message;         /* largest request message in bytes; 0: 4 MiB */
    unsigned shutdown_grace_ms; /* stop() waits this long before cancelling calls; 0: 5000 */
    /* TLS: when both are set, the port serves TLS with this PEM certificate chain and key
     * (insecure otherwise). client_ca_file additionally requires client certificates. */
    const char *tls_cert_file;
    const char *tls_key_file;
    const char *tls_client_ca_file;
    unsigned max_concurrent_streams; /* streams per HTTP/2 connection (grpc.max_concurrent_streams); 0: 100 */
} es_grpc_config;

/* Creates a stopped server (cfg may be NULL: all defaults). The dispatcher is borrowed and must
 * outlive the server. Returns NULL with err filled on a bad configuration. Free with
 * es_grpc_server_free. */
es_grpc_server *es_grpc_server_new(const es_grpc_config *cfg, es_dispatcher *d, es_error *err);

/* Serves every method of svc (borrowed; generated tables are static). Call before start.
 * Returns ES_OK, ES_ALREADY_EXISTS when a grpc_path is served already, or ES_FAILED_PRECONDITION
 * after start. */
int es_grpc_server_add_service(es_grpc_server *s, const es_service_def *svc, es_error *err);

/* Makes the files of a serialized google.protobuf.FileDescriptorSet (e.g. es_schema's
 * descriptor_set) available to server reflection; bytes are copied. A file already added by an
 * earlier set is kept as it was. Call before start. Returns ES_OK, ES_INVALID_ARGUMENT when the
 * bytes are not a FileDescriptorSet, or ES_FAILED_PRECONDITION after start. */
int es_grpc_server_add_descriptor_set(es_grpc_server *s, const uint8_t *bytes, size_t len, es_error *err);

/* Binds the address and starts the threads. Returns ES_OK, or ES_UNAVAILABLE when the address
 * cannot be bound, ES_INVALID_ARGUMENT when the TLS files cannot be read. */
int es_grpc_server_start(es_grpc_server *s, es_error *err);

/* The bound port after a successful start (useful with port 0), else 0. */
int es_grpc_server_port(const es_grpc_server *s);

/* Number of calls accepted and not yet finished (tests, metrics). */
size_t es_grpc_server_inflight(const es_grpc_server *s);

/* Graceful stop: refuses new calls, lets calls in progress finish (after shutdown_grace_ms they
 * are cancelled on the wire), waits until the dispatcher has called done for every submitted
 * call, and joins the threads. Idempotent; safe on a server never started. */
void es_grpc_server_stop(es_grpc_server *s);

/* Stops (if needed) and frees the server. NULL is ok. */
void es_grpc_server_free(es_grpc_server *s);

#endif

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
#include "es/buf.h"
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

    /* Connection limits, with and without TLS. A connection is refused (closed at once, before
     * any HTTP/2 or TLS byte) beyond max_connections open ones, or beyond
     * max_connections_per_client open ones from the same IP address; one whose client resets
     * streams faster than max_resets_per_second (counted over whole seconds), or on which grpc
     * holds more than twice max_concurrent_streams calls at once (its client reset the others),
     * is closed. */
    unsigned max_connections;            /* open connections of the whole server; 0: 1024 */
    unsigned max_connections_per_client; /* open connections from one IP address; 0: 64 */
    unsigned max_resets_per_second;      /* calls one connection may cancel a second; 0: 100 */
    /* grpc reads and queues every stream a client sent before the cut, so a client reconnecting
     * at once would queue the next burst: its address is refused for reset_ban_ms after a cut. */
    unsigned reset_ban_ms;               /* 0: 10000 */

    /* Connection lifetime (grpc channel arguments, 0: the default in brackets). A connection
     * without calls for idle_timeout_ms gets GOAWAY and is closed (grpc.max_connection_idle_ms,
     * [120000]); any connection is told to go away after max_age_ms (grpc.max_connection_age_ms,
     * [3600000]) and closed max_age_grace_ms later ([30000]). The server pings a quiet connection
     * every keepalive_time_ms ([60000]) and closes it when the answer takes longer than
     * keepalive_timeout_ms ([20000]). A client's pings without data closer together than
     * min_ping_interval_ms ([10000]) are strikes; after max_ping_strikes ([2]) the connection is
     * closed with GOAWAY ENHANCE_YOUR_CALM. */
    unsigned idle_timeout_ms;
    unsigned max_age_ms;
    unsigned max_age_grace_ms;
    unsigned keepalive_time_ms;
    unsigned keepalive_timeout_ms;
    unsigned min_ping_interval_ms;
    unsigned max_ping_strikes;

    /* Server reflection: ES_GRPC_REFLECTION_AUTH (the default) serves it to callers whose bearer
     * token authenticate accepts (everyone when authenticate is NULL, i.e. authentication is
     * off); ON serves it to everyone; OFF answers UNIMPLEMENTED. */
    enum { ES_GRPC_REFLECTION_AUTH = 0, ES_GRPC_REFLECTION_ON, ES_GRPC_REFLECTION_OFF } reflection;
    /* Checks a bearer token (the token alone, NUL-terminated; NULL when the call carries none).
     * Returns ES_OK, or ES_UNAUTHENTICATED with err filled. Called from the completion-queue
     * threads, concurrently. */
    int (*authenticate)(void *data, const char *token, es_error *err);
    void *authenticate_data;
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

/* Open connections right now (those the server accepted itself; 0 with TLS). */
size_t es_grpc_server_connections(const es_grpc_server *s);

/* Writes the transport's own metric families in Prometheus text format to out:
 * es_grpc_connections (gauge): open connections;
 * es_grpc_connections_refused_total{reason} (counter): connections refused at accept
 * (connection_limit, client_connection_limit, reset_ban: the address had a connection cut for
 * resets within reset_ban_ms);
 * es_grpc_connections_closed_total{reason} (counter): connections a limit closed (rapid_reset);
 * es_grpc_reflection_refused_total (counter): reflection calls refused for want of a valid token.
 * Safe from any thread. */
void es_grpc_server_metrics(const es_grpc_server *s, es_buf *out);

/* Graceful stop: refuses new calls, lets calls in progress finish (after shutdown_grace_ms they
 * are cancelled on the wire), waits until the dispatcher has called done for every submitted
 * call, and joins the threads. Idempotent; safe on a server never started. */
void es_grpc_server_stop(es_grpc_server *s);

/* Stops (if needed) and frees the server. NULL is ok. */
void es_grpc_server_free(es_grpc_server *s);

#endif

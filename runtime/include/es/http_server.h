/* The HTTP JSON transport on libh2o-evloop 2.2.5: N event-loop threads, each with its own
 * SO_REUSEPORT listener, serving the routes of es_service_def tables (google.api.http
 * templates, see es/router.h) and plain handlers the application registers (health, metrics,
 * documents, static files).
 *
 * For a route: the JSON body ("*" = the whole request message, "field" = that field, none = no
 * body allowed) is decoded into the call arena with es/json.h, then path variables and query
 * parameters are set with es_json_set_from_string; Idempotency-Key, Authorization (Bearer),
 * X-Correlation-Id / X-Request-Id go into the es_call, which is submitted to the dispatcher.
 * call->done may run on any thread: the completion is handed back to the owning loop before any
 * h2o object is touched. The answer is the response message as JSON (application/json), or
 * {"code": <gRPC code>, "message": "...", "details": [{"field": "...", "description": "..."}]}
 * with the HTTP status of es_http_status. */
#ifndef ES_HTTP_SERVER_H
#define ES_HTTP_SERVER_H

#include <stddef.h>
#include "es/buf.h"
#include "es/schema.h"
#include "es/service.h"
#include "es/status.h"

typedef struct es_http_server es_http_server;

typedef struct es_http_config {
    const char *server_name;    /* the Server header (NULL: "es"); the application names itself */
    const char *address;        /* "host:port" (IPv4, or [IPv6]:port); NULL: "0.0.0.0:8080";
                                 * port 0: a free port, shared by all threads (es_http_server_port) */
    unsigned threads;           /* event-loop threads; 0: 2 */
    size_t max_body;            /* largest request body in bytes; 0: 1 MiB (larger: 413) */
    unsigned shutdown_grace_ms; /* stop() waits this long for open connections; 0: 5000 */
    unsigned request_timeout_ms;/* reading one request (h2o http1 req_timeout); 0: 10000 */
    int json_lower_camel;       /* answer with lowerCamelCase keys instead of proto names */
    int json_emit_defaults;     /* answer fields at their default value too */
    /* TLS: when both are set, every listener serves HTTPS (HTTP/1.1 and HTTP/2 over ALPN) with
     * this PEM certificate chain and private key; plain HTTP otherwise. */
    const char *tls_cert_file;
    const char *tls_key_file;
    /* Limits. A connection accepted while max_connections are open is answered 503 (plain HTTP,
     * best effort: a canned HTTP/1.1 response) and closed at once; it is counted in
     * es_http_refused_total{route="connection_limit"}. request_timeout_ms above also bounds how
     * long an HTTP/1 connection may sit idle or take to send its headers. */
    unsigned max_connections;   /* open connections of the whole server; 0: 1024 */
    unsigned idle_timeout_ms;   /* an HTTP/2 connection with no stream (h2o http2 idle_timeout); 0: 10000 */
    /* Limits against one client holding resources. A connection from an address that already
     * holds max_connections_per_client is refused like one above max_connections (503 and
     * closed, es_http_refused_total{route="client_connection_limit"}). The others are checked
     * every check period (a quarter of the smallest timeout, 50..1000 ms) and close the
     * connection (counted in es_http_connections_closed_total{reason}); h2o frees its streams
     * and the responses they hold. */
    unsigned max_connections_per_client; /* open connections from one IP address; 0: 64 */
    unsigned body_timeout_ms;   /* an HTTP/2 request body must be complete this long after its
                                 * HEADERS; 0: 10000 (HTTP/1 bodies: request_timeout_ms) */
    unsigned stall_timeout_ms;  /* responses pending and not a byte of them sent (HTTP/2 peer
                                 * window at zero, or the peer not reading its socket, HTTP/1
                                 * too) this long; 0: 10000 */
    size_t max_pending_bytes;   /* response bytes of one HTTP/2 connection waiting for the peer's
                                 * flow-control window or socket; 0: 1 MiB */
    unsigned max_resets_per_second; /* RST_STREAM frames one HTTP/2 connection may send in a
                                 * second; more: GOAWAY(ENHANCE_YOUR_CALM) and close; 0: 100 */
} es_http_config;

/* ---- plain handlers ---- */

/* What a plain handler sees. Strings are valid during the call only. */
typedef struct es_http_request {
    const char *method;         /* "GET" */
    const char *path;           /* the raw path, without the query ("/healthz") */
    const char *query;          /* the raw query after '?', "" when none */
    const char *body;           /* the request body (not NUL-terminated), NULL when none */
    size_t body_len;
    const void *impl;           /* transport private */
} es_http_request;

/* Returns the first value of header name (case-insensitive) as a new string from arena, or NULL
 * when the request does not carry it. */
const char *es_http_request_header(const es_http_request *req, const char *name, es_arena *arena);

#define ES_HTTP_MAX_EXTRA_HEADERS 8
/* What a plain handler answers. The transport initialises it to 200, "text/plain; charset=utf-8",
 * an empty body and no extra headers; the handler fills it. */
typedef struct es_http_response {
    int status;
    const char *content_type;   /* static or from arena */
    es_buf body;                /* the transport frees it */
    struct {
        const char *name, *value;   /* static or from arena */
    } headers[ES_HTTP_MAX_EXTRA_HEADERS];
    size_t n_headers;
    es_arena *arena;            /* per-request scratch memory, freed after the answer */
} es_http_response;

/* A plain handler: runs on the event-loop thread, so it must answer quickly and never block
 * (read state prepared by other threads, format it, return). */
typedef void (*es_http_handler_fn)(void *data, const es_http_request *req, es_http_response *res);

/* Adds a header to a plain response (name and value copied into res->arena). Extra headers
 * beyond ES_HTTP_MAX_EXTRA_HEADERS are dropped. */
void es_http_response_add_header(es_http_response *res, const char *name, const char *value);

/* Match kinds for es_http_server_add_handler. */
#define ES_HTTP_EXACT 0         /* the path equals the pattern */
#define ES_HTTP_PREFIX 1        /* the path starts with the pattern ("/static/"); longest wins */

/* Creates a stopped server (cfg may be NULL: defaults). The dispatcher is borrowed and must
 * outlive the server; its json registry is used for bodies and answers (a NULL registry means
 * only well-known types). Returns NULL with err filled on a bad configuration. Free with
 * es_http_server_free. */
es_http_server *es_http_server_new(const es_http_config *cfg, es_dispatcher *d, es_error *err);

/* Serves svc's routes (borrowed; generated tables are static). Call before start. Returns
 * ES_OK, ES_INVALID_ARGUMENT (a template does not compile, err names it) or
 * ES_FAILED_PRECONDITION after start. */
int es_http_server_add_service(es_http_server *s, const es_service_def *svc, es_error *err);

/* Registers a plain handler for method (NULL: any method) and path (match: ES_HTTP_EXACT or
 * ES_HTTP_PREFIX). Exact handlers are tried before the routes, prefix handlers after them (a
 * route that exists for another method still answers 405). data is passed back unchanged.
 * Call before start. Returns ES_OK or ES_FAILED_PRECONDITION after start. */
int es_http_server_add_handler(es_http_server *s, const char *method, const char *path, int match,
                               es_http_handler_fn fn, void *data);

/* Binds the listeners and starts the threads. Returns ES_OK or ES_UNAVAILABLE (cannot bind;
 * err says why) or ES_INVALID_ARGUMENT (bad address, unreadable or mismatched TLS files). */
int es_http_server_start(es_http_server *s, es_error *err);

/* The bound port after a successful start, else 0. */
int es_http_server_port(const es_http_server *s);

/* Requests submitted to the dispatcher and not yet answered (tests, metrics). */
size_t es_http_server_inflight(const es_http_server *s);

/* Open connections right now (tests, metrics). */
size_t es_http_server_connections(const es_http_server *s);

/* Writes the transport's own metric families in Prometheus text format to out:
 * es_http_inflight (gauge): calls in the dispatcher (es_http_server_inflight);
 * es_http_connections (gauge), es_http_connections_max (gauge) and
 * es_http_refused_total{route,status} (counter): requests answered by the transport itself,
 * before the dispatcher, by the route template they matched ("unmatched" when none: 404, a
 * malformed target, a request h2o refused before routing; "connection_limit" for connections
 * refused at accept, "client_connection_limit" for those refused by max_connections_per_client)
 * and the HTTP status (400 bad JSON, path or query; 404; 405; 413; 415; 503), and
 * es_http_connections_closed_total{reason} (counter): connections a limit closed
 * (client_connection_limit, body_timeout, stalled, pending_bytes, rapid_reset). Safe from any
 * thread while the server runs; NULL writes nothing. */
void es_http_server_metrics(const es_http_server *s, es_buf *out);

/* Graceful stop: closes the listeners, asks h2o to close idle keep-alive connections, waits for
 * every submitted call's done() (always: the dispatcher holds pointers into the calls), then up
 * to shutdown_grace_ms for responses to drain, and joins the threads. Idempotent; safe on a
 * server never started. */
void es_http_server_stop(es_http_server *s);

/* Stops (if needed) and frees the server. NULL is ok. */
void es_http_server_free(es_http_server *s);

#endif

/* Internal to the HTTP transport (es/http_server.h), shared by its three files:
 * http_response.c (answers, JSON error bodies, the refusal counter, the filter that rewrites
 * h2o's own errors), http_routes.c (routing a request to a plain handler or a service route,
 * building the es_call, answering its completion) and http_server.c (loop threads,
 * connections, limits, lifecycle). */
#ifndef ES_HTTP_INTERNAL_H
#define ES_HTTP_INTERNAL_H

#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include <h2o.h>
#include <h2o/http2.h>
#include <h2o/http2_internal.h>
#include <openssl/ssl.h>

#include "es/http_server.h"
#include "es/router.h"

typedef struct loop_thread loop_thread;

typedef struct plain_handler {
    char *method;               /* NULL: any */
    char *path;
    size_t path_len;
    int match;                  /* ES_HTTP_EXACT / ES_HTTP_PREFIX */
    es_http_handler_fn fn;
    void *data;
} plain_handler;

/* h2o's handler object, extended with the server it belongs to. */
typedef struct server_handler {
    h2o_handler_t super;
    es_http_server *srv;
} server_handler;

/* Why a limit closed a connection (es_http_connections_closed_total{reason}). */
enum {
    ES__HTTP_CLOSE_CLIENT_LIMIT,    /* refused at accept: too many from that address */
    ES__HTTP_CLOSE_BODY_TIMEOUT,    /* an HTTP/2 request body did not arrive in time */
    ES__HTTP_CLOSE_STALLED,         /* responses pending, nothing sent for stall_timeout_ms */
    ES__HTTP_CLOSE_PENDING_BYTES,   /* more unsent response bytes than max_pending_bytes */
    ES__HTTP_CLOSE_RAPID_RESET,     /* more stream resets a second than max_resets_per_second */
    ES__HTTP_CLOSE_REASONS
};

struct loop_thread {
    es_http_server *srv;
    pthread_t tid;
    int started;
    h2o_evloop_t *loop;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    int listen_fd;
    h2o_socket_t *listener;
    h2o_multithread_receiver_t done_rx;   /* finished calls */
    h2o_multithread_receiver_t stop_rx;   /* the stop request */
    h2o_multithread_message_t stop_msg;
    size_t inflight;                      /* calls submitted from this loop, not yet answered */
    h2o_linklist_t conns;                 /* conn_track of every open connection */
    int draining, exit, reads_closed, forced;
    h2o_linklist_t refusals;              /* refused connections lingering after their 503 */
    size_t n_refusals;
    h2o_timeout_t refusal_timeout;
    h2o_timeout_t watch_timeout;          /* the periodic limit check (http_limits.c) */
    h2o_timeout_entry_t watch_entry;
    int64_t drain_deadline_us;   /* es_mono_us() */
};

/* Follows one accepted connection (h2o calls sock->on_close when it closes it), so that stop
 * can end idle keep-alive connections, which h2o 2.2's HTTP/1 leaves open on shutdown. */
typedef struct conn_track {
    h2o_linklist_t link;
    h2o_socket_t *sock;
    loop_thread *t;
    /* the peer address, counted against max_connections_per_client (http_limits.c) */
    unsigned char client[16];
    uint8_t client_len;
    /* HTTP/2 watch (http_limits.c); zero on HTTP/1 */
    ssize_t (*h2_expect)(struct st_h2o_http2_conn_t *, const uint8_t *, size_t, const char **);
    uint64_t reset_window_ms;             /* start of the current one-second reset window */
    unsigned resets;                      /* RST_STREAM frames received in it */
    int closing;                          /* a limit closed it: refuse further requests */
    uint64_t stall_since_ms;              /* responses pending and none sent since, or 0 */
    size_t stall_bytes_written;
    int stall_outq;                       /* the kernel's unsent bytes at the last check */
    struct {
        uint32_t stream_id;
        uint64_t since_ms;
    } bodies[8];                          /* streams seen waiting for their request body */
} conn_track;

/* One es_http_refused_total sample. route points to a static string (a generated template or a
 * literal), so the label set is bounded by the route table. */
typedef struct refused_count {
    const char *route;
    int status;
    uint64_t n;
} refused_count;

#define MAX_REFUSED_SAMPLES 256

struct es_http_server {
    es_http_config cfg;
    char *address;
    char *server_name;              /* the Server header, owned */
    char *tls_cert_file, *tls_key_file;
    SSL_CTX *ssl_ctx;
    es_dispatcher *d;
    es_router *router;
    plain_handler *handlers;
    size_t n_handlers;
    h2o_globalconf_t gconf;
    sem_t loops_ready;          /* posted by each loop thread once it is set up */
    loop_thread *threads;
    unsigned n_threads;
    int port;
    int started, stopped;
    atomic_size_t inflight;
    atomic_size_t connections;  /* open connections, all loops */
    pthread_mutex_t refused_mu; /* guards refused[]: refusals are rare, a lock is cheap enough */
    refused_count refused[MAX_REFUSED_SAMPLES];
    size_t n_refused;
    /* connections per client address (http_limits.c) */
    pthread_mutex_t clients_mu;
    struct client_count **clients;        /* CLIENT_BUCKETS chains */
    atomic_uint_fast64_t closed[ES__HTTP_CLOSE_REASONS];  /* connections a limit closed */
};

/* A call in flight. */
typedef struct hcall {
    es_call call;               /* first: done() gets &call */
    h2o_multithread_message_t msg;
    loop_thread *t;
    h2o_req_t *req;             /* NULL once h2o disposed the request (client gone) */
    struct req_ref *ref;
} hcall;

/* Linked to the request's pool: its dispose runs when h2o clears the pool. */
struct req_ref {
    hcall *hc;
};

/* ---- http_response.c ---- */

/* Adds a response header (name and value copied into the request pool). */
void es__http_add_header(h2o_req_t *req, const char *name, const char *value);

/* Sends a complete response; body is copied into the request pool (h2o sends it later). */
void es__http_send_response(h2o_req_t *req, int status, const char *content_type, const char *body, size_t len);

/* Sends the error body {"code", "message", "details"} for status (an es_status), with the HTTP
 * status es_http_status maps it to unless http is non-zero; allow (405) adds an Allow header. */
void es__http_send_error_as(h2o_req_t *req, int status, const es_error *err, int http, const char *allow);
void es__http_send_error(h2o_req_t *req, int status, const es_error *err);

/* Counts one request answered by the transport itself (see es_http_server_metrics). route must
 * be a static string or a route template (it is kept). */
void es__http_count_refused(es_http_server *s, const char *route, int status);

/* Installs the output filter that turns h2o's own plain-text errors into JSON ones. */
void es__http_install_filters(es_http_server *s, h2o_pathconf_t *path, h2o_hostconf_t *host);

/* ---- http_limits.c ---- */

/* Sets up the per-client table (es_http_server_new) and frees it (es_http_server_free). */
void es__http_limits_init(es_http_server *s);
void es__http_limits_free(es_http_server *s);

/* Counts sock's peer address for tr; returns 0 when that address already holds
 * max_connections_per_client connections (nothing is counted then). */
int es__http_client_acquire(es_http_server *s, conn_track *tr, h2o_socket_t *sock);
/* Releases what es__http_client_acquire counted (on close). */
void es__http_client_release(es_http_server *s, conn_track *tr);

/* Starts and stops the loop's periodic check of body, stall and pending-byte limits. */
void es__http_watch_start(loop_thread *t);
void es__http_watch_stop(loop_thread *t);

/* Called for each request before it is served: watches an HTTP/2 connection's frames (reset
 * rate) from now on. Returns 0 when a limit is closing the connection and the request must
 * not be served. */
int es__http_conn_admit(es_http_server *s, h2o_req_t *req);

/* Writes es_http_connections_closed_total and the limits' gauges. */
void es__http_limits_metrics(es_http_server *s, es_buf *out);

/* ---- http_server.c ---- */

/* sock->on_close of every tracked connection (http_limits.c recognises its sockets by it). */
void es__http_on_sock_close(void *data);

/* ---- http_routes.c ---- */

/* The template of the route req's path matches with any method, or "unmatched". */
const char *es__http_route_label(es_http_server *s, h2o_req_t *req);

/* h2o's on_req for "/": plain handlers, then service routes. */
int es__http_on_req(h2o_handler_t *self, h2o_req_t *req);

/* The loop's receiver of finished calls: writes each answer. */
void es__http_on_done_messages(h2o_multithread_receiver_t *rx, h2o_linklist_t *messages);

#endif

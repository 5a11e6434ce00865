/* The HTTP JSON transport on libh2o-evloop 2.2.5 (es/http_server.h).
 *
 * Threads: each event-loop thread owns an h2o context, an evloop and its own SO_REUSEPORT
 * listener, so the kernel spreads connections and no h2o object is ever shared between threads.
 * A request is served entirely on the thread that accepted it; when the dispatcher finishes a
 * call (on any thread), done() only posts a message to that thread's h2o_multithread queue and
 * the loop writes the answer.
 *
 * A client may vanish while its call is in the dispatcher: the request's memory pool is then
 * cleared by h2o. A small ref-counted chunk linked to the pool tells us (its dispose clears the
 * call's request pointer), so the completion only frees the call. */
#define H2O_USE_LIBUV 0
#define _GNU_SOURCE /* pthread_setname_np */
#include "es/http_server.h"
#include "es/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <h2o.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "es/json.h"
#include "es/metrics.h"
#include "es/router.h"
#include "net_common.h"

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
    struct timespec drain_deadline;
};

/* Follows one accepted connection (h2o calls sock->on_close when it closes it), so that stop
 * can end idle keep-alive connections, which h2o 2.2's HTTP/1 leaves open on shutdown. */
typedef struct conn_track {
    h2o_linklist_t link;
    h2o_socket_t *sock;
    loop_thread *t;
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

/* ---- small helpers ---- */

static const char *reason_of(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 412: return "Precondition Failed";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 429: return "Too Many Requests";
    case 499: return "Client Closed Request";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return status < 300 ? "OK" : status < 500 ? "Client Error" : "Server Error";
    }
}

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0 when invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    unsigned cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4, cp = c & 0x07;
    else
        return 0;
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return len;
}

/* Appends s as a JSON string literal. Error texts can quote client input (a field name, a
 * header): invalid UTF-8 becomes U+FFFD so the error body is always valid JSON. */
static void put_json_string(es_buf *b, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    es_buf_putc(b, '"');
    for (size_t i = 0; i < n;) {
        unsigned char c = p[i];
        if (c == '"' || c == '\\') {
            es_buf_putc(b, '\\');
            es_buf_putc(b, (char)c);
            i++;
        } else if (c < 0x20) {
            es_buf_printf(b, "\\u%04x", c);
            i++;
        } else {
            size_t l = utf8_seq(p + i, n - i);
            if (l == 0) {
                es_buf_puts(b, "\\ufffd");
                i++;
            } else {
                es_buf_append(b, p + i, l);
                i += l;
            }
        }
    }
    es_buf_putc(b, '"');
}

static void add_header(h2o_req_t *req, const char *name, const char *value)
{
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 1, NULL,
                          h2o_strdup(&req->pool, value, SIZE_MAX).base, strlen(value));
}

/* Sends a complete response; body is copied into the request pool (h2o sends it later). */
static void send_response(h2o_req_t *req, int status, const char *content_type, const char *body, size_t len)
{
    req->res.status = status;
    req->res.reason = reason_of(status);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   h2o_strdup(&req->pool, content_type, SIZE_MAX).base, strlen(content_type));
    char *copy = h2o_mem_alloc_pool(&req->pool, len ? len : 1);
    if (len)
        memcpy(copy, body, len);
    h2o_send_inline(req, copy, len);
}

/* Sends the error body {"code", "message", "details"} for status (an es_status), with the HTTP
 * status es_http_status maps it to unless http is non-zero; allow (405) adds an Allow header. */
static void send_error_as(h2o_req_t *req, int status, const es_error *err, int http, const char *allow)
{
    es_buf b;
    char text[600];
    es_error e = *err;
    if (!e.code)
        e.code = status;
    es__error_text(&e, text, sizeof text);
    es_buf_init(&b);
    es_buf_printf(&b, "{\"code\":%d,\"message\":", es_grpc_code(status));
    put_json_string(&b, text);
    es_buf_puts(&b, ",\"details\":[");
    if (err->field[0]) {
        es_buf_puts(&b, "{\"field\":");
        put_json_string(&b, err->field);
        es_buf_puts(&b, ",\"description\":");
        put_json_string(&b, err->message[0] ? err->message : es_strerror(status));
        es_buf_putc(&b, '}');
    }
    es_buf_puts(&b, "]}");
    if (!http)
        http = es_http_status(status);
    if (allow)
        add_header(req, "allow", allow);
    send_response(req, http, "application/json", b.data, b.len);
    es_buf_free(&b);
}

static void send_error(h2o_req_t *req, int status, const es_error *err)
{
    send_error_as(req, status, err, 0, NULL);
}

/* Counts one request answered by the transport itself (see es_http_server_metrics). */
static void count_refused(es_http_server *s, const char *route, int status)
{
    pthread_mutex_lock(&s->refused_mu);
    size_t i = 0;
    while (i < s->n_refused && !(s->refused[i].status == status && strcmp(s->refused[i].route, route) == 0))
        i++;
    if (i == s->n_refused && i < MAX_REFUSED_SAMPLES) {
        s->refused[i].route = route;
        s->refused[i].status = status;
        s->refused[i].n = 0;
        s->n_refused++;
    }
    if (i < s->n_refused)
        s->refused[i].n++;
    pthread_mutex_unlock(&s->refused_mu);
}

/* The template of the route req's path matches with any method (405 and 413 are about a known
 * path), or "unmatched". */
static const char *route_label(es_http_server *s, h2o_req_t *req)
{
    static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE"};
    const char *label = "unmatched";
    es_arena a;
    es_arena_init(&a);
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        es_route_match m;
        if (es_router_match(s->router, methods[i], req->path.base, req->path.len, &a, &m) == ES_OK) {
            label = m.route->path;
            break;
        }
    }
    es_arena_free(&a);
    return label;
}

static es_json_options decode_options(void)
{
    es_json_options o;
    memset(&o, 0, sizeof o);
    return o;   /* unknown fields are refused: a misspelt field must not be silently dropped */
}

static int elapsed(const struct timespec *deadline)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > deadline->tv_sec || (now.tv_sec == deadline->tv_sec && now.tv_nsec >= deadline->tv_nsec);
}

/* ---- completion ---- */

static void on_req_dispose(void *p)
{
    struct req_ref *ref = p;
    if (ref->hc)
        ref->hc->req = NULL;
}

/* Runs on any thread: hand the call back to its loop. */
static void on_call_done(es_call *call)
{
    hcall *hc = (hcall *)call;
    h2o_multithread_send_message(&hc->t->done_rx, &hc->msg);
}

static void respond(hcall *hc)
{
    es_http_server *s = hc->t->srv;
    h2o_req_t *req = hc->req;
    es_call *call = &hc->call;
    if (call->status != ES_OK) {
        send_error(req, call->status, &call->err);
        return;
    }
    es_error err = {0};
    if (!call->response || call->response->descriptor != call->method->output) {
        es_error_set(&err, ES_INTERNAL, "", "the service returned %s",
                     call->response ? "a response of the wrong type" : "no response");
        send_error(req, ES_INTERNAL, &err);
        return;
    }
    es_json_options o;
    memset(&o, 0, sizeof o);
    o.lower_camel_output = s->cfg.json_lower_camel;
    o.emit_defaults = s->cfg.json_emit_defaults;
    es_buf b;
    es_buf_init(&b);
    int rc = es_json_encode(s->d->json, call->response, &o, &b, &err);
    if (rc != ES_OK) {
        /* The command may have succeeded: say so rather than pretend it failed as a whole. */
        es_error e;
        es_error_set(&e, ES_INTERNAL, err.field, "the result cannot be written as JSON: %s", err.message);
        send_error(req, ES_INTERNAL, &e);
    } else {
        send_response(req, 200, "application/json", b.data, b.len);
    }
    es_buf_free(&b);
}

static void hcall_free(hcall *hc)
{
    es_arena_free(&hc->call.arena);
    free(hc);
}

static void on_done_messages(h2o_multithread_receiver_t *rx, h2o_linklist_t *messages)
{
    loop_thread *t = H2O_STRUCT_FROM_MEMBER(loop_thread, done_rx, rx);
    while (!h2o_linklist_is_empty(messages)) {
        hcall *hc = H2O_STRUCT_FROM_MEMBER(hcall, msg.link, messages->next);
        h2o_linklist_unlink(&hc->msg.link);
        if (hc->req) {
            hc->ref->hc = NULL;
            respond(hc);
        }
        t->inflight--;
        atomic_fetch_sub(&t->srv->inflight, 1);
        hcall_free(hc);
    }
}

/* ---- routes ---- */

/* Is the Content-Type JSON ("application/json", any parameters, or absent)? */
static int is_json_content_type(h2o_req_t *req)
{
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_CONTENT_TYPE, -1);
    if (i < 0)
        return 1;
    h2o_iovec_t v = req->headers.entries[i].value;
    size_t n = v.len;
    const char *semi = memchr(v.base, ';', v.len);
    if (semi)
        n = (size_t)(semi - v.base);
    while (n && (v.base[n - 1] == ' ' || v.base[n - 1] == '\t'))
        n--;
    return n == 16 && strncasecmp(v.base, "application/json", 16) == 0;
}

static int copy_header(hcall *hc, h2o_req_t *req, const char *name, enum es__meta which, es_error *err)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, name, strlen(name), -1);
    if (i < 0)
        return ES_OK;
    if (which == ES__META_CORRELATION_ID && hc->call.correlation_id)
        return ES_OK;   /* x-request-id only when x-correlation-id is absent */
    h2o_iovec_t v = req->headers.entries[i].value;
    return es__call_set_meta(&hc->call, which, name, v.base, v.len, err);
}

/* Builds the request message from body, path variables and query parameters. */
static int build_request(es_http_server *s, hcall *hc, h2o_req_t *req, const es_route_match *m, es_error *err)
{
    const es_route_def *route = m->route;
    const es_method_def *method = route->method;
    es_arena *arena = &hc->call.arena;
    const es_json_registry *reg = s->d->json;
    es_json_options o = decode_options();
    size_t blen = req->entity.base ? req->entity.len : 0;
    int rc;

    if (!route->body) {
        if (blen)
            return es_error_set(err, ES_INVALID_ARGUMENT, "", "%s %s takes no request body",
                                route->http_method, route->path);
        hc->call.request = es__message_new(method->input, arena);
    } else {
        if (blen && !is_json_content_type(req))
            return es_error_set(err, ES_INVALID_ARGUMENT, "", "the request body must be application/json");
        if (strcmp(route->body, "*") == 0) {
            if (blen) {
                rc = es_json_decode(reg, method->input, req->entity.base, blen, &o, arena, &hc->call.request, err);
                if (rc != ES_OK)
                    return rc;
            } else {
                hc->call.request = es__message_new(method->input, arena);
            }
        } else {
            hc->call.request = es__message_new(method->input, arena);
            if (blen) {
                /* Only that one field: wrapping the body in {"<field>": ...} by hand would let a
                 * body such as `{}, "other": 1` reach other fields. */
                rc = es_json_merge_field(reg, hc->call.request, route->body, req->entity.base, blen, &o, arena, err);
                if (rc != ES_OK)
                    return rc;
            }
        }
    }
    for (size_t i = 0; i < m->n_vars; i++) {
        rc = es_json_set_from_string(reg, hc->call.request, m->vars[i].name, m->vars[i].value, arena, err);
        if (rc != ES_OK) {
            if (!err->field[0])
                snprintf(err->field, sizeof err->field, "%s", m->vars[i].name);
            return rc;
        }
    }
    for (size_t i = 0; i < m->n_params; i++) {
        es_error e = {0};
        rc = es_json_set_from_string(reg, hc->call.request, m->params[i].name, m->params[i].value, arena, &e);
        if (rc != ES_OK)
            return es_error_set(err, rc, e.field[0] ? e.field : m->params[i].name, "query parameter \"%.100s\": %s",
                                m->params[i].name, e.message);
    }
    rc = copy_header(hc, req, "authorization", ES__META_AUTHORIZATION, err);
    if (rc == ES_OK)
        rc = copy_header(hc, req, "idempotency-key", ES__META_IDEMPOTENCY_KEY, err);
    if (rc == ES_OK)
        rc = copy_header(hc, req, "x-correlation-id", ES__META_CORRELATION_ID, err);
    if (rc == ES_OK)
        rc = copy_header(hc, req, "x-request-id", ES__META_CORRELATION_ID, err);
    return rc;
}

static void serve_route(es_http_server *s, loop_thread *t, h2o_req_t *req, const es_route_match *m)
{
    hcall *hc = es_xcalloc(1, sizeof *hc);
    es_arena_init(&hc->call.arena);
    hc->t = t;
    hc->call.method = m->route->method;
    hc->call.transport = "http";
    es_error err = {0};
    int rc = build_request(s, hc, req, m, &err);
    if (rc != ES_OK) {
        count_refused(s, m->route->path, es_http_status(rc));
        send_error(req, rc, &err);
        hcall_free(hc);
        return;
    }
    hc->req = req;
    hc->ref = h2o_mem_alloc_shared(&req->pool, sizeof *hc->ref, on_req_dispose);
    hc->ref->hc = hc;
    hc->call.done = on_call_done;
    hc->call.transport_data = s;
    t->inflight++;
    atomic_fetch_add(&s->inflight, 1);
    s->d->submit(s->d, &hc->call);
}

/* ---- plain handlers ---- */

const char *es_http_request_header(const es_http_request *r, const char *name, es_arena *arena)
{
    h2o_req_t *req = (h2o_req_t *)r->impl;
    size_t n = strlen(name);
    char lower[128];
    if (n >= sizeof lower)
        return NULL;
    for (size_t i = 0; i <= n; i++)
        lower[i] = (char)((name[i] >= 'A' && name[i] <= 'Z') ? name[i] - 'A' + 'a' : name[i]);
    ssize_t i = h2o_find_header_by_str(&req->headers, lower, n, -1);
    if (i < 0)
        return NULL;
    return es_arena_strndup(arena, req->headers.entries[i].value.base, req->headers.entries[i].value.len);
}

void es_http_response_add_header(es_http_response *res, const char *name, const char *value)
{
    if (res->n_headers == ES_HTTP_MAX_EXTRA_HEADERS)
        return;
    res->headers[res->n_headers].name = es_arena_strdup(res->arena, name);
    res->headers[res->n_headers].value = es_arena_strdup(res->arena, value);
    res->n_headers++;
}

static void serve_plain(const plain_handler *h, h2o_req_t *req, const char *method, const char *path,
                        const char *query, es_arena *scratch)
{
    es_http_request r = {
        .method = method, .path = path, .query = query,
        .body = req->entity.base, .body_len = req->entity.base ? req->entity.len : 0, .impl = req,
    };
    es_http_response res;
    memset(&res, 0, sizeof res);
    res.status = 200;
    res.content_type = "text/plain; charset=utf-8";
    res.arena = scratch;
    es_buf_init(&res.body);
    h->fn(h->data, &r, &res);
    for (size_t i = 0; i < res.n_headers; i++)
        add_header(req, res.headers[i].name, res.headers[i].value);
    send_response(req, res.status > 99 && res.status < 600 ? res.status : 500, res.content_type, res.body.data,
                  res.body.len);
    es_buf_free(&res.body);
}

static const plain_handler *find_plain(const es_http_server *s, const char *method, const char *path, int match)
{
    const plain_handler *best = NULL;
    size_t plen = strlen(path);
    for (size_t i = 0; i < s->n_handlers; i++) {
        const plain_handler *h = &s->handlers[i];
        if (h->match != match || (h->method && strcmp(h->method, method) != 0))
            continue;
        if (match == ES_HTTP_EXACT ? strcmp(h->path, path) == 0
                                   : (plen >= h->path_len && memcmp(h->path, path, h->path_len) == 0)) {
            if (!best || h->path_len > best->path_len)
                best = h;
        }
    }
    return best;
}

/* ---- the h2o handler ---- */

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    es_http_server *s = ((server_handler *)self)->srv;
    loop_thread *t = NULL;
    for (unsigned i = 0; i < s->n_threads; i++)
        if (&s->threads[i].ctx == req->conn->ctx)
            t = &s->threads[i];
    es_arena scratch;
    es_arena_init(&scratch);
    char *method = es_arena_strndup(&scratch, req->method.base, req->method.len);
    size_t plen = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    char *path = es_arena_strndup(&scratch, req->path.base, plen);
    const char *query = req->query_at != SIZE_MAX
                            ? es_arena_strndup(&scratch, req->path.base + plen + 1, req->path.len - plen - 1)
                            : "";
    const plain_handler *h = find_plain(s, method, path, ES_HTTP_EXACT);
    if (h) {
        serve_plain(h, req, method, path, query, &scratch);
        goto out;
    }
    es_route_match m;
    int rc = es_router_match(s->router, method, req->path.base, req->path.len, &scratch, &m);
    if (rc == ES_OK) {
        if (req->entity.base && req->entity.len > s->cfg.max_body) {
            es_error err;
            es_error_set(&err, ES_RESOURCE_EXHAUSTED, "", "the request body is larger than %zu bytes", s->cfg.max_body);
            count_refused(s, m.route->path, 413);
            send_error_as(req, ES_RESOURCE_EXHAUSTED, &err, 413, NULL);
        } else {
            serve_route(s, t, req, &m);
        }
        goto out;
    }
    if (m.http_status == 400) {
        count_refused(s, "unmatched", 400);
        send_error(req, ES_INVALID_ARGUMENT, &m.err);
        goto out;
    }
    if (m.http_status == 404 && (h = find_plain(s, method, path, ES_HTTP_PREFIX)) != NULL) {
        serve_plain(h, req, method, path, query, &scratch);
        goto out;
    }
    es_error err;
    if (m.http_status == 405) {
        es_error_set(&err, ES_UNIMPLEMENTED, "", "method %.32s is not allowed on %.200s (allowed: %s)", method, path,
                     m.allow);
        count_refused(s, route_label(s, req), 405);
        send_error_as(req, ES_UNIMPLEMENTED, &err, 405, m.allow);
    } else {
        es_error_set(&err, ES_NOT_FOUND, "", "no route for %.32s %.200s", method, path);
        count_refused(s, "unmatched", 404);
        send_error(req, ES_NOT_FOUND, &err);
    }
out:
    es_arena_free(&scratch);
    return 0;
}

/* ---- h2o's own error answers ----
 * h2o refuses a body above max_request_entity_size before any handler runs (from the
 * Content-Length, or while reading a chunked or HTTP/2 body), and a request whose framing it
 * refuses (a broken Content-Length) before routing; both get a plain-text body. This output
 * filter rewrites those answers into the JSON error, so every refusal has the documented
 * shape, and counts them in es_http_refused_total. (A request line or header block h2o 2.2
 * cannot parse at all is answered with a fixed "400 Bad Request" written straight to the
 * socket, past every filter: that one stays plain text and uncounted.) Our own answers are
 * application/json and pass untouched. On "/" (where our handler runs) only a 413 is
 * rewritten: a plain handler's own 4xx (a static file not found) is left as it is; on the
 * host's fallback path, where only h2o answers, every 4xx and 5xx is. */

typedef struct too_large_filter {
    h2o_filter_t super;
    es_http_server *srv;
    int any_error;   /* 1 on the fallback path: every status >= 400, else 413 only */
} too_large_filter;

/* The status a JSON body reports for an HTTP status h2o chose. */
static int status_of_http(int http)
{
    switch (http) {
    case 404: return ES_NOT_FOUND;
    case 405: return ES_UNIMPLEMENTED;
    case 408: return ES_DEADLINE_EXCEEDED;
    case 413: return ES_RESOURCE_EXHAUSTED;
    case 429: return ES_RESOURCE_EXHAUSTED;
    case 501: return ES_UNIMPLEMENTED;
    case 502: case 503: case 504: return ES_UNAVAILABLE;
    default: return http >= 500 ? ES_INTERNAL : ES_INVALID_ARGUMENT;
    }
}

typedef struct too_large_ostream {
    h2o_ostream_t super;
    h2o_iovec_t json;
    int sent;
} too_large_ostream;

static void too_large_do_send(h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *bufs, size_t bufcnt,
                              h2o_send_state_t state)
{
    too_large_ostream *o = (too_large_ostream *)self;
    (void)bufs;
    (void)bufcnt;
    if (!o->sent) {
        o->sent = 1;
        h2o_ostream_send_next(self, req, &o->json, 1, state);
    } else {
        h2o_ostream_send_next(self, req, NULL, 0, state);
    }
}

static void too_large_setup(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    too_large_filter *f = (too_large_filter *)self;
    es_http_server *s = f->srv;
    ssize_t ct = h2o_find_header(&req->res.headers, H2O_TOKEN_CONTENT_TYPE, -1);
    int st = req->res.status;
    if ((st == 413 || (f->any_error && st >= 400)) &&
        (ct < 0 || !h2o_memis(req->res.headers.entries[ct].value.base, req->res.headers.entries[ct].value.len,
                              H2O_STRLIT("application/json")))) {
        es_buf b;
        es_buf_init(&b);
        if (st == 413) {
            es_buf_printf(&b,
                          "{\"code\":%d,\"message\":\"the request body is larger than %zu bytes\",\"details\":[]}",
                          es_grpc_code(ES_RESOURCE_EXHAUSTED), s->cfg.max_body);
            count_refused(s, req->path.base ? route_label(s, req) : "unmatched", 413);
        } else {
            char text[160];
            snprintf(text, sizeof text, "the HTTP request was refused: %.100s", req->res.reason ? req->res.reason : "");
            es_buf_printf(&b, "{\"code\":%d,\"message\":", es_grpc_code(status_of_http(st)));
            put_json_string(&b, text);
            es_buf_puts(&b, ",\"details\":[]}");
            count_refused(s, "unmatched", st);
        }
        too_large_ostream *o = (too_large_ostream *)h2o_add_ostream(req, sizeof *o, slot);
        o->super.do_send = too_large_do_send;
        o->json = h2o_strdup(&req->pool, b.data, b.len);
        o->sent = 0;
        es_buf_free(&b);
        req->res.content_length = o->json.len;
        if (ct >= 0)
            req->res.headers.entries[ct].value = h2o_iovec_init(H2O_STRLIT("application/json"));
        else
            h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
        slot = &o->super.next;
    }
    h2o_setup_next_ostream(req, slot);
}

/* ---- loop threads ---- */

static void on_sock_close(void *data)
{
    conn_track *tr = data;
    atomic_fetch_sub(&tr->t->srv->connections, 1);
    h2o_linklist_unlink(&tr->link);
    free(tr);
}

/* A connection above max_connections: a canned 503 on plain HTTP (TLS would need a handshake
 * first), then closed at once. Whatever the client already sent is read and dropped first, so
 * the close is a FIN rather than a reset that could destroy the answer in flight. */
static void refuse_connection(loop_thread *t, h2o_socket_t *sock)
{
    es_http_server *s = t->srv;
    int fd = h2o_socket_get_fd(sock);
    if (!s->ssl_ctx) {
        static const char body[] = "{\"code\":14,\"message\":\"too many connections\",\"details\":[]}";
        char head[256];
        int n = snprintf(head, sizeof head,
                         "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                         "Content-Length: %zu\r\nConnection: close\r\n\r\n%s", sizeof body - 1, body);
        char junk[4096];
        for (int i = 0; i < 16 && recv(fd, junk, sizeof junk, MSG_DONTWAIT) > 0; i++)
            ;
        if (n > 0 && send(fd, head, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
            /* best effort: the client is told by the close */
        }
        shutdown(fd, SHUT_WR);
    }
    count_refused(s, "connection_limit", 503);
    h2o_socket_close(sock);
}

/* Shuts down one direction (SHUT_RD: the next read sees EOF and h2o closes the connection
 * itself, after any answer it is writing; SHUT_RDWR: it fails now) of every open connection. */
static void shutdown_conns(loop_thread *t, int how)
{
    for (h2o_linklist_t *l = t->conns.next; l != &t->conns; l = l->next) {
        conn_track *tr = H2O_STRUCT_FROM_MEMBER(conn_track, link, l);
        shutdown(h2o_socket_get_fd(tr->sock), how);
    }
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    loop_thread *t = listener->data;
    if (err)
        return;
    /* Accept a bounded batch per wake-up so one busy listener cannot starve the loop. */
    for (int i = 0; i < 64; i++) {
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        if (!sock)
            break;
        if (atomic_fetch_add(&t->srv->connections, 1) >= t->srv->cfg.max_connections) {
            atomic_fetch_sub(&t->srv->connections, 1);
            refuse_connection(t, sock);
            continue;
        }
        conn_track *tr = es_xcalloc(1, sizeof *tr);
        tr->sock = sock;
        tr->t = t;
        h2o_linklist_insert(&t->conns, &tr->link);
        sock->on_close.cb = on_sock_close;
        sock->on_close.data = tr;
        h2o_accept(&t->accept_ctx, sock);
    }
}

static int connections_open(loop_thread *t) { return !h2o_linklist_is_empty(&t->conns); }

static void on_stop_message(h2o_multithread_receiver_t *rx, h2o_linklist_t *messages)
{
    loop_thread *t = H2O_STRUCT_FROM_MEMBER(loop_thread, stop_rx, rx);
    while (!h2o_linklist_is_empty(messages))
        h2o_linklist_unlink(messages->next);
    if (t->draining)
        return;
    t->draining = 1;
    if (t->listener) {
        h2o_socket_read_stop(t->listener);
        h2o_socket_close(t->listener);  /* closes listen_fd too */
        t->listener = NULL;
        t->listen_fd = -1;
    }
    /* HTTP/2: GOAWAY; HTTP/1: idle keep-alive connections close, busy ones after the answer. */
    h2o_context_request_shutdown(&t->ctx);
    unsigned ms = t->srv->cfg.shutdown_grace_ms;
    clock_gettime(CLOCK_MONOTONIC, &t->drain_deadline);
    t->drain_deadline.tv_sec += ms / 1000;
    t->drain_deadline.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t->drain_deadline.tv_nsec >= 1000000000L) {
        t->drain_deadline.tv_sec++;
        t->drain_deadline.tv_nsec -= 1000000000L;
    }
}

/* Creates the loop's h2o objects. It must run on the loop's own thread: libh2o 2.2 keeps its
 * allocators per thread (the __thread socket-buffer prototype and memory-pool recyclers), and
 * objects made on the starting thread would have two loops share that thread's free lists
 * without a lock, which corrupted them under load. */
static void loop_setup(loop_thread *t)
{
    es_http_server *s = t->srv;
    t->loop = h2o_evloop_create();
    h2o_context_init(&t->ctx, t->loop, &s->gconf);
    t->accept_ctx.ctx = &t->ctx;
    t->accept_ctx.hosts = s->gconf.hosts;
    t->accept_ctx.ssl_ctx = s->ssl_ctx;
    h2o_multithread_register_receiver(t->ctx.queue, &t->done_rx, on_done_messages);
    h2o_multithread_register_receiver(t->ctx.queue, &t->stop_rx, on_stop_message);
    t->listener = h2o_evloop_socket_create(t->loop, t->listen_fd, H2O_SOCKET_FLAG_DONT_READ);
    t->listener->data = t;
    h2o_socket_read_start(t->listener, on_accept);
}

static void *loop_main(void *arg)
{
    loop_thread *t = arg;
    pthread_setname_np(pthread_self(), "es-http");
    loop_setup(t);
    sem_post(&t->srv->loops_ready);
    while (!t->exit) {
        h2o_evloop_run(t->loop, t->draining ? 20 : INT32_MAX);
        if (!t->draining)
            continue;
        /* Calls in the dispatcher point into this loop's queue: wait for every one of them. */
        if (t->inflight > 0)
            continue;
        if (!connections_open(t)) {
            t->exit = 1;
        } else if (!t->reads_closed) {
            /* Every answer is written or being written: no further request is read. */
            shutdown_conns(t, SHUT_RD);
            t->reads_closed = 1;
        } else if (elapsed(&t->drain_deadline)) {
            if (t->forced) {
                t->exit = 1;    /* h2o did not close them even so: leave them (see stop) */
            } else {
                shutdown_conns(t, SHUT_RDWR);
                t->forced = 1;
                clock_gettime(CLOCK_MONOTONIC, &t->drain_deadline);
                t->drain_deadline.tv_sec += 1;
            }
        }
    }
    return NULL;
}

/* ---- lifecycle ---- */

es_http_server *es_http_server_new(const es_http_config *cfg, es_dispatcher *d, es_error *err)
{
    static const es_http_config defaults = {0};
    if (!cfg)
        cfg = &defaults;
    if (!d || !d->submit) {
        es_error_set(err, ES_INVALID_ARGUMENT, "dispatcher", "a dispatcher with submit is required");
        return NULL;
    }
    if (!!cfg->tls_cert_file != !!cfg->tls_key_file) {
        es_error_set(err, ES_INVALID_ARGUMENT, "tls_key_file", "TLS needs both a certificate and a key file");
        return NULL;
    }
    es_http_server *s = es_xcalloc(1, sizeof *s);
    s->cfg = *cfg;
    s->address = es_xstrdup(cfg->address ? cfg->address : "0.0.0.0:8080");
    s->tls_cert_file = cfg->tls_cert_file ? es_xstrdup(cfg->tls_cert_file) : NULL;
    s->tls_key_file = cfg->tls_key_file ? es_xstrdup(cfg->tls_key_file) : NULL;
    if (!s->cfg.threads)
        s->cfg.threads = 2;
    if (!s->cfg.max_body)
        s->cfg.max_body = 1u << 20;
    if (!s->cfg.shutdown_grace_ms)
        s->cfg.shutdown_grace_ms = 5000;
    if (!s->cfg.request_timeout_ms)
        s->cfg.request_timeout_ms = 10000;
    if (!s->cfg.max_connections)
        s->cfg.max_connections = 1024;
    if (!s->cfg.idle_timeout_ms)
        s->cfg.idle_timeout_ms = 10000;
    s->d = d;
    s->router = es_router_new();
    atomic_init(&s->inflight, 0);
    atomic_init(&s->connections, 0);
    pthread_mutex_init(&s->refused_mu, NULL);
    return s;
}

int es_http_server_add_service(es_http_server *s, const es_service_def *svc, es_error *err)
{
    if (s->started)
        return es_error_set(err, ES_FAILED_PRECONDITION, "", "services must be added before start");
    return es_router_add(s->router, svc->routes, svc->n_routes, err);
}

int es_http_server_add_handler(es_http_server *s, const char *method, const char *path, int match,
                               es_http_handler_fn fn, void *data)
{
    if (s->started)
        return ES_FAILED_PRECONDITION;
    s->handlers = es_xrealloc(s->handlers, (s->n_handlers + 1) * sizeof *s->handlers);
    plain_handler *h = &s->handlers[s->n_handlers++];
    h->method = method ? es_xstrdup(method) : NULL;
    h->path = es_xstrdup(path);
    h->path_len = strlen(path);
    h->match = match;
    h->fn = fn;
    h->data = data;
    return ES_OK;
}

/* Splits "host:port" / "[v6]:port" and resolves it (numeric only: no DNS at startup). */
static int resolve(const char *address, struct sockaddr_storage *ss, socklen_t *len, es_error *err)
{
    char host[256];
    const char *colon = strrchr(address, ':');
    if (!colon || colon == address || strlen(address) >= sizeof host)
        return es_error_set(err, ES_INVALID_ARGUMENT, "address", "address \"%s\" is not host:port", address);
    size_t hl = (size_t)(colon - address);
    const char *h = address;
    if (address[0] == '[' && colon[-1] == ']')
        h++, hl -= 2;
    memcpy(host, h, hl);
    host[hl] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || end == colon + 1 || port < 0 || port > 65535)
        return es_error_set(err, ES_INVALID_ARGUMENT, "address", "address \"%s\" has a bad port", address);
    struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    if (getaddrinfo(host[0] && strcmp(host, "*") != 0 ? host : NULL, colon + 1, &hints, &res) != 0 || !res)
        return es_error_set(err, ES_INVALID_ARGUMENT, "address", "address \"%s\": host must be a numeric IP", address);
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return ES_OK;
}

static void set_port(struct sockaddr_storage *ss, int port)
{
    if (ss->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
}

static int listen_on(struct sockaddr_storage *ss, socklen_t len, int reuseport, es_error *err, const char *address)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), one = 1;
    if (fd < 0)
        return es_error_set(err, ES_UNAVAILABLE, "address", "socket: %s", strerror(errno)), -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuseport)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)ss, len) != 0 || listen(fd, SOMAXCONN) != 0) {
        es_error_set(err, ES_UNAVAILABLE, "address", "cannot listen on %s: %s", address, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* An OpenSSL context for the listeners, or NULL with err filled. */
static SSL_CTX *make_ssl_ctx(const es_http_server *s, es_error *err)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        es_error_set(err, ES_INTERNAL, "", "cannot create a TLS context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    if (SSL_CTX_use_certificate_chain_file(ctx, s->tls_cert_file) != 1) {
        es_error_set(err, ES_INVALID_ARGUMENT, s->tls_cert_file, "cannot load the certificate chain %s",
                     s->tls_cert_file);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, s->tls_key_file, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        es_error_set(err, ES_INVALID_ARGUMENT, s->tls_key_file, "cannot load the private key %s or it does not match",
                     s->tls_key_file);
        goto fail;
    }
    h2o_ssl_register_alpn_protocols(ctx, h2o_http2_alpn_protocols);
    return ctx;
fail:
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return NULL;
}

int es_http_server_start(es_http_server *s, es_error *err)
{
    if (s->started)
        return es_error_set(err, ES_FAILED_PRECONDITION, "", "the server was started already");
    if (s->tls_cert_file && !s->ssl_ctx && !(s->ssl_ctx = make_ssl_ctx(s, err)))
        return err ? err->code : ES_INVALID_ARGUMENT;
    struct sockaddr_storage ss;
    socklen_t len = 0;
    int rc = resolve(s->address, &ss, &len, err);
    if (rc != ES_OK)
        return rc;
    int port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                               : ((struct sockaddr_in *)&ss)->sin_port);
    if (port != 0) {
        /* SO_REUSEPORT would let us bind a port another server already serves, and share its
         * traffic. A plain bind first makes a busy port an error. */
        int probe = listen_on(&ss, len, 0, err, s->address);
        if (probe < 0)
            return ES_UNAVAILABLE;
        close(probe);
    }

    s->threads = es_xcalloc(s->cfg.threads, sizeof *s->threads);
    for (unsigned i = 0; i < s->cfg.threads; i++) {
        int fd = listen_on(&ss, len, 1, err, s->address);
        if (fd < 0) {
            for (unsigned j = 0; j < i; j++)
                close(s->threads[j].listen_fd);
            free(s->threads);
            s->threads = NULL;
            return ES_UNAVAILABLE;
        }
        if (port == 0) {
            /* The first listener picked a free port: the others join it. */
            struct sockaddr_storage bound;
            socklen_t bl = sizeof bound;
            getsockname(fd, (struct sockaddr *)&bound, &bl);
            port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                      : ((struct sockaddr_in *)&bound)->sin_port);
            set_port(&ss, port);
        }
        s->threads[i].listen_fd = fd;
    }
    s->port = port;

    /* h2o 2.2 writes with writev(2), not send(MSG_NOSIGNAL): a client closing early would kill
     * the process with SIGPIPE. Ignore it unless the application installed its own handler. */
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
        signal(SIGPIPE, SIG_IGN);

    h2o_config_init(&s->gconf);
    s->gconf.server_name = h2o_iovec_init(H2O_STRLIT("orderd"));
    /* Bodies above max_body are answered 413 by on_req. h2o itself refuses bodies above its own
     * limit before buffering them; it is set higher (2 x max_body, at least max_body + 64 KiB)
     * because h2o 2.2.5 answers an oversize HTTP/2 body with RST_STREAM(REFUSED_STREAM) rather
     * than a 413: between the two limits every protocol gets the JSON 413, above h2o's HTTP/1
     * gets it through too_large_filter and HTTP/2 a refused stream. */
    size_t slack = s->cfg.max_body < (64u << 10) ? (64u << 10) : s->cfg.max_body;
    s->gconf.max_request_entity_size = s->cfg.max_body + slack;
    s->gconf.http1.req_timeout = s->cfg.request_timeout_ms;
    s->gconf.http2.idle_timeout = s->cfg.idle_timeout_ms;
    s->gconf.http2.graceful_shutdown_timeout = s->cfg.shutdown_grace_ms;
    h2o_hostconf_t *host = h2o_config_register_host(&s->gconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    server_handler *h = (server_handler *)h2o_create_handler(path, sizeof *h);
    h->super.on_req = on_req;
    h->srv = s;
    /* h2o binds its early 413 to the host's fallback path, our answers to "/": filter both. */
    too_large_filter *f = (too_large_filter *)h2o_create_filter(path, sizeof *f);
    f->super.on_setup_ostream = too_large_setup;
    f->srv = s;
    f->any_error = 0;
    f = (too_large_filter *)h2o_create_filter(&host->fallback_path, sizeof *f);
    f->super.on_setup_ostream = too_large_setup;
    f->srv = s;
    f->any_error = 1;

    sem_init(&s->loops_ready, 0, 0);
    for (unsigned i = 0; i < s->cfg.threads; i++) {
        loop_thread *t = &s->threads[i];
        t->srv = s;
        h2o_linklist_init_anchor(&t->conns);
    }
    s->n_threads = s->cfg.threads;
    s->started = 1;
    for (unsigned i = 0; i < s->n_threads; i++) {
        if (pthread_create(&s->threads[i].tid, NULL, loop_main, &s->threads[i]) != 0)
            es_oom(); /* only when the process is out of resources */
        s->threads[i].started = 1;
    }
    /* Each loop sets itself up on its own thread (see loop_setup); stop() needs them ready. */
    for (unsigned i = 0; i < s->n_threads; i++)
        while (sem_wait(&s->loops_ready) != 0)
            ;
    sem_destroy(&s->loops_ready);
    return ES_OK;
}

int es_http_server_port(const es_http_server *s) { return s ? s->port : 0; }

size_t es_http_server_inflight(const es_http_server *s) { return atomic_load(&((es_http_server *)s)->inflight); }

size_t es_http_server_connections(const es_http_server *s)
{
    return s ? atomic_load(&((es_http_server *)s)->connections) : 0;
}

void es_http_server_metrics(const es_http_server *cs, es_buf *out)
{
    es_http_server *s = (es_http_server *)cs;   /* the lock is not part of the value */
    if (!s)
        return;
    es_metrics_family(out, "es_http_connections", "gauge", "Open HTTP connections.");
    es_metrics_sample(out, "es_http_connections", "", (double)atomic_load(&s->connections));
    es_metrics_family(out, "es_http_connections_max", "gauge",
                      "Open HTTP connections allowed; more are answered 503 and closed.");
    es_metrics_sample(out, "es_http_connections_max", "", (double)s->cfg.max_connections);
    es_metrics_family(out, "es_http_refused_total", "counter",
                      "HTTP requests answered by the transport before the dispatcher, by route template and status.");
    pthread_mutex_lock(&s->refused_mu);
    for (size_t i = 0; i < s->n_refused; i++) {
        char route[256], labels[320];
        es_metrics_label_value(route, sizeof route, s->refused[i].route);
        snprintf(labels, sizeof labels, "route=\"%s\",status=\"%d\"", route, s->refused[i].status);
        es_metrics_sample(out, "es_http_refused_total", labels, (double)s->refused[i].n);
    }
    pthread_mutex_unlock(&s->refused_mu);
}

void es_http_server_stop(es_http_server *s)
{
    if (!s || !s->started || s->stopped)
        return;
    s->stopped = 1;
    for (unsigned i = 0; i < s->n_threads; i++)
        h2o_multithread_send_message(&s->threads[i].stop_rx, &s->threads[i].stop_msg);
    for (unsigned i = 0; i < s->n_threads; i++) {
        loop_thread *t = &s->threads[i];
        pthread_join(t->tid, NULL);
        h2o_multithread_unregister_receiver(t->ctx.queue, &t->done_rx);
        h2o_multithread_unregister_receiver(t->ctx.queue, &t->stop_rx);
        if (connections_open(t)) {
            /* Never seen in tests: a connection h2o would not close. Its objects still refer to
             * the context, so the context and loop are left allocated rather than freed under
             * it. */
            es_log(ES_LOG_WARN, "http", NULL, "connections left open at stop");
            continue;
        }
        /* request_shutdown arms the HTTP/2 graceful-shutdown timer even when no HTTP/2
         * connection exists; h2o_context_dispose asserts every timer is idle. */
        if (h2o_timeout_is_linked(&t->ctx.http2._graceful_shutdown_timeout))
            h2o_timeout_unlink(&t->ctx.http2._graceful_shutdown_timeout);
        h2o_context_dispose(&t->ctx);
        h2o_evloop_destroy(t->loop);
    }
    h2o_config_dispose(&s->gconf);
}

void es_http_server_free(es_http_server *s)
{
    if (!s)
        return;
    es_http_server_stop(s);
    for (size_t i = 0; i < s->n_handlers; i++) {
        free(s->handlers[i].method);
        free(s->handlers[i].path);
    }
    free(s->handlers);
    free(s->threads);
    es_router_free(s->router);
    if (s->ssl_ctx)
        SSL_CTX_free(s->ssl_ctx);
    free(s->tls_cert_file);
    free(s->tls_key_file);
    free(s->address);
    pthread_mutex_destroy(&s->refused_mu);
    free(s);
}

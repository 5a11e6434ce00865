/* The HTTP JSON transport on libh2o-evloop 2.2.5 (es/http_server.h): loop threads,
 * connections and lifecycle. Answers are in http_response.c, routing in http_routes.c.
 *
 * Threads: each event-loop thread owns an h2o context, an evloop and its own SO_REUSEPORT
 * listener, so the kernel spreads connections and no h2o object is ever shared between threads.
 * A request is served entirely on the thread that accepted it; when the dispatcher finishes a
 * call (on any thread), done() only posts a message to that thread's h2o_multithread queue and
 * the loop writes the answer. */
#define _GNU_SOURCE /* pthread_setname_np */
#include "http_internal.h"
#include "es/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "es/clock.h"
#include "es/metrics.h"

/* ---- loop threads ---- */

void es__http_on_sock_close(void *data)
{
    conn_track *tr = data;
    /* A connection a limit closed may have held megabytes of responses: glibc keeps freed
     * memory in the loop thread's arena unless asked to return it. */
    if (tr->closing)
        malloc_trim(0);
    es__http_client_release(tr->t->srv, tr);
    atomic_fetch_sub(&tr->t->srv->connections, 1);
    h2o_linklist_unlink(&tr->link);
    free(tr);
}

/* A connection above max_connections: a canned 503 on plain HTTP (TLS would need a handshake
 * first), then closed at once. Whatever the client already sent is read and dropped first, so
 * the close is a FIN rather than a reset that could destroy the answer in flight. */
/* A refused connection after its 503: kept open, its input read and dropped, until the client
 * closes or the linger time passes. Closing at once would reset a connection whose request
 * arrives after the close, and the client would lose the answer. */
typedef struct refusal {
    h2o_linklist_t link;
    h2o_socket_t *sock;
    h2o_timeout_entry_t timer;
    loop_thread *t;
} refusal;

static void refusal_close(refusal *r)
{
    h2o_linklist_unlink(&r->link);
    if (h2o_timeout_is_linked(&r->timer))
        h2o_timeout_unlink(&r->timer);
    r->t->n_refusals--;
    h2o_socket_close(r->sock);
    free(r);
}

static void on_refusal_read(h2o_socket_t *sock, const char *err)
{
    refusal *r = sock->data;
    if (err) {
        refusal_close(r);   /* the client closed: done */
        return;
    }
    h2o_buffer_consume(&sock->input, sock->input->size);
}

static void on_refusal_timeout(h2o_timeout_entry_t *entry)
{
    refusal_close(H2O_STRUCT_FROM_MEMBER(refusal, timer, entry));
}

static void close_refusals(loop_thread *t)
{
    while (!h2o_linklist_is_empty(&t->refusals))
        refusal_close(H2O_STRUCT_FROM_MEMBER(refusal, link, t->refusals.next));
}

static void refuse_connection(loop_thread *t, h2o_socket_t *sock, const char *why, const char *label)
{
    es_http_server *s = t->srv;
    int fd = h2o_socket_get_fd(sock);
    if (!s->ssl_ctx) {
        char body[128], head[384];
        int bl = snprintf(body, sizeof body, "{\"code\":14,\"message\":\"%s\",\"details\":[]}", why);
        int n = snprintf(head, sizeof head,
                         "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                         "Content-Length: %d\r\nConnection: close\r\n\r\n%s", bl, body);
        char junk[4096];
        for (int i = 0; i < 16 && recv(fd, junk, sizeof junk, MSG_DONTWAIT) > 0; i++)
            ;
        if (n > 0 && send(fd, head, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
            /* best effort: the client is told by the close */
        }
        shutdown(fd, SHUT_WR);
    }
    es__http_count_refused(s, label, 503);
    /* Lingering refusals are bounded like connections (max_connections per loop) and in time
     * (request_timeout_ms, at most 1 s); beyond either the close is immediate. */
    if (!s->ssl_ctx && !t->draining && t->n_refusals < s->cfg.max_connections) {
        refusal *r = es_xcalloc(1, sizeof *r);
        r->sock = sock;
        r->t = t;
        r->timer.cb = on_refusal_timeout;
        h2o_linklist_insert(&t->refusals, &r->link);
        t->n_refusals++;
        sock->data = r;
        h2o_timeout_link(t->loop, &t->refusal_timeout, &r->timer);
        h2o_socket_read_start(sock, on_refusal_read);
        return;
    }
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
            refuse_connection(t, sock, "too many connections", "connection_limit");
            continue;
        }
        conn_track *tr = es_xcalloc(1, sizeof *tr);
        if (!es__http_client_acquire(t->srv, tr, sock)) {
            /* One address may not take every slot: the others still get in. */
            free(tr);
            atomic_fetch_sub(&t->srv->connections, 1);
            atomic_fetch_add(&t->srv->closed[ES__HTTP_CLOSE_CLIENT_LIMIT], 1);
            refuse_connection(t, sock, "too many connections from this address", "client_connection_limit");
            continue;
        }
        tr->sock = sock;
        tr->t = t;
        h2o_linklist_insert(&t->conns, &tr->link);
        sock->on_close.cb = es__http_on_sock_close;
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
    close_refusals(t);
    if (t->listener) {
        h2o_socket_read_stop(t->listener);
        h2o_socket_close(t->listener);  /* closes listen_fd too */
        t->listener = NULL;
        t->listen_fd = -1;
    }
    /* HTTP/2: GOAWAY; HTTP/1: idle keep-alive connections close, busy ones after the answer. */
    h2o_context_request_shutdown(&t->ctx);
    unsigned ms = t->srv->cfg.shutdown_grace_ms;
    t->drain_deadline_us = es_mono_us() + (int64_t)ms * 1000;
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
    h2o_multithread_register_receiver(t->ctx.queue, &t->done_rx, es__http_on_done_messages);
    h2o_multithread_register_receiver(t->ctx.queue, &t->stop_rx, on_stop_message);
    t->listener = h2o_evloop_socket_create(t->loop, t->listen_fd, H2O_SOCKET_FLAG_DONT_READ);
    t->listener->data = t;
    h2o_socket_read_start(t->listener, on_accept);
    h2o_linklist_init_anchor(&t->refusals);
    h2o_timeout_init(t->loop, &t->refusal_timeout, s->cfg.request_timeout_ms < 1000 ? s->cfg.request_timeout_ms : 1000);
    es__http_watch_start(t);
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
        } else if (es_mono_us() >= t->drain_deadline_us) {
            if (t->forced) {
                t->exit = 1;    /* h2o did not close them even so: leave them (see stop) */
            } else {
                shutdown_conns(t, SHUT_RDWR);
                t->forced = 1;
                t->drain_deadline_us = es_mono_us() + 1000000;
            }
        }
    }
    es__http_watch_stop(t);
    close_refusals(t);
    h2o_timeout_dispose(t->loop, &t->refusal_timeout);
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
    if (!s->cfg.max_connections_per_client)
        s->cfg.max_connections_per_client = 64;
    if (!s->cfg.body_timeout_ms)
        s->cfg.body_timeout_ms = 10000;
    if (!s->cfg.stall_timeout_ms)
        s->cfg.stall_timeout_ms = 10000;
    if (!s->cfg.max_pending_bytes)
        s->cfg.max_pending_bytes = 1u << 20;
    if (!s->cfg.max_resets_per_second)
        s->cfg.max_resets_per_second = 100;
    s->d = d;
    s->router = es_router_new();
    atomic_init(&s->inflight, 0);
    atomic_init(&s->connections, 0);
    pthread_mutex_init(&s->refused_mu, NULL);
    es__http_limits_init(s);
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
    s->server_name = es_xstrdup(s->cfg.server_name && s->cfg.server_name[0] ? s->cfg.server_name : "es");
    s->gconf.server_name = h2o_iovec_init(s->server_name, strlen(s->server_name));
    /* Bodies above max_body are answered 413 by the route handler. h2o itself refuses bodies above
     * its own limit before buffering them; it is set higher (2 x max_body, at least max_body + 64 KiB)
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
    h->super.on_req = es__http_on_req;
    h->srv = s;
    es__http_install_filters(s, path, host);

    sem_init(&s->loops_ready, 0, 0);
    for (unsigned i = 0; i < s->cfg.threads; i++) {
        loop_thread *t = &s->threads[i];
        t->srv = s;
        h2o_linklist_init_anchor(&t->conns);
    }
    s->n_threads = s->cfg.threads;
    s->started = 1;
    for (unsigned i = 0; i < s->n_threads; i++) {
        int e = pthread_create(&s->threads[i].tid, NULL, loop_main, &s->threads[i]);
        if (e != 0)
            es_no_thread("HTTP event-loop", e);
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
    const es_metric_row rows[] = {
        {"es_http_inflight", "gauge", "HTTP calls in the dispatcher.", (double)atomic_load(&s->inflight)},
        {"es_http_connections", "gauge", "Open HTTP connections.", (double)atomic_load(&s->connections)},
        {"es_http_connections_max", "gauge", "Open HTTP connections allowed; more are answered 503 and closed.",
         (double)s->cfg.max_connections},
    };
    ES_METRICS_ROWS(out, rows);
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
    es__http_limits_metrics(s, out);
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
    free(s->server_name);
    pthread_mutex_destroy(&s->refused_mu);
    es__http_limits_free(s);
    free(s);
}


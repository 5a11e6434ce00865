/* The gRPC transport on grpc C core 1.51 (es/grpc_server.h).
 *
 * One completion queue, served by N threads. Every accepted call walks three steps, each one
 * batch on the queue with the call record itself as the tag:
 *   SLOT    a generic grpc_server_request_call is outstanding; when it fires, a fresh slot
 *           replaces it and the method is looked up (unknown: straight to FINISH/UNIMPLEMENTED);
 *   RECV    the request message is read, unpacked into the call arena, and submitted;
 *   FINISH  started by done() from whatever thread the dispatcher finishes on (grpc calls accept
 *           batches from any thread), sends metadata, the response and the status; its
 *           completion frees everything.
 * Only one batch per call is ever outstanding, so a call needs no reference count.
 * The one streaming method, server reflection, takes a fourth state, STREAM: its record is
 * driven by grpc_reflection.c (one batch outstanding, same tag) until the stream is over. */
#define _GNU_SOURCE /* pthread_setname_np */
#include "es/grpc_server.h"
#include "es/clock.h"
#include "es/log.h"
#include "es/metrics.h"
#include "es/pb_unpack.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>

#include "grpc_gate.h"
#include "grpc_wire.h"
#include "grpc_reflection.h"
#include "net_common.h"

enum gstate { ST_SLOT, ST_RECV, ST_FINISH, ST_STREAM };

#define ES_GRPC_READ_CHUNK (64u << 10) /* the most grpc reads from one connection at a time */
/* Calls one connection may hold at once before the gate cuts it: twice the streams it may have
 * open, so a client whose calls outlive their streams (cancelled while the server works) has
 * room, and a rapid-reset burst is cut after a few hundred calls, not tens of thousands. */
#define ES_GRPC_MAX_CALLS(streams) ((streams) > UINT_MAX / 2 ? UINT_MAX : 2 * (streams))

typedef struct gcall {
    es_call call;               /* first: done() gets &call and casts back */
    es_grpc_server *srv;
    enum gstate state;
    grpc_call *gc;
    grpc_call_details details;
    grpc_metadata_array md;
    grpc_byte_buffer *recv;
    grpc_byte_buffer *send;
    grpc_slice status_details;
    int have_status_details;
    int cancelled;
    int reset_counted;          /* count_reset done (at a failed read): not again at FINISH */
    int submitted;
    es__refl_stream *stream;    /* ST_STREAM only */
    es__grpc_peer peer;         /* the call's connection as grpc names it (with a gate) */
    char text[512];
} gcall;

struct es_grpc_server {
    es_grpc_config cfg;
    char *address;
    char *tls_cert_file, *tls_key_file, *tls_client_ca_file;
    es_dispatcher *d;
    const es_method_def **methods;
    size_t n_methods, cap_methods;
    es__refl_index *reflection; /* service names and descriptor sets; read-only after start */
    es__grpc_gate *gate;        /* the connection limits (plaintext and TLS) */
    grpc_server_credentials *gate_creds; /* plaintext: handed sockets get these */
    atomic_uint_fast64_t reflection_refused;

    grpc_server *server;
    grpc_completion_queue *cq;
    pthread_t *threads;
    unsigned n_threads;
    int port;
    int started, stopped;
    atomic_int stopping;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t live;                /* slots + calls: every record not yet freed */
    size_t calls;               /* accepted calls not yet finished */
    int shutdown_done;
    char shutdown_tag;          /* its address is the tag of shutdown_and_notify */
};

/* ---- bookkeeping ---- */

static void live_add(es_grpc_server *s, long d_live, long d_calls)
{
    pthread_mutex_lock(&s->mu);
    s->live = (size_t)((long)s->live + d_live);
    s->calls = (size_t)((long)s->calls + d_calls);
    if (s->live == 0)
        pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void gcall_free(gcall *g)
{
    int was_call = g->state != ST_SLOT;
    es_grpc_server *s = g->srv;
    if (s->gate)
        es__grpc_gate_call_end(s->gate, &g->peer);
    if (g->recv)
        grpc_byte_buffer_destroy(g->recv);
    if (g->send)
        grpc_byte_buffer_destroy(g->send);
    if (g->have_status_details)
        grpc_slice_unref(g->status_details);
    es__refl_stream_free(g->stream);
    if (g->gc)
        grpc_call_unref(g->gc);
    grpc_metadata_array_destroy(&g->md);
    grpc_call_details_destroy(&g->details);
    es_arena_free(&g->call.arena);
    free(g);
    live_add(s, -1, was_call ? -1 : 0);
}

/* Posts one generic accept slot. */
static void post_slot(es_grpc_server *s)
{
    gcall *g = es_xcalloc(1, sizeof *g);
    g->srv = s;
    g->state = ST_SLOT;
    es_arena_init(&g->call.arena);
    g->call.transport = "grpc";
    grpc_metadata_array_init(&g->md);
    grpc_call_details_init(&g->details);
    live_add(s, 1, 0);
    grpc_call_error e = grpc_server_request_call(s->server, &g->gc, &g->details, &g->md, s->cq, s->cq, g);
    if (e != GRPC_CALL_OK) {
        es_log(ES_LOG_ERROR, "grpc", NULL, "request_call: %s", grpc_call_error_to_string(e));
        gcall_free(g);
    }
}

/* ---- answering ---- */

/* Sends the final batch: initial metadata, the packed response when status is ES_OK, the status
 * and its message. Runs on any thread. */
static void finish(gcall *g, int status, const es_error *err, const ProtobufCMessage *response)
{
    grpc_op ops[4];
    size_t n = 0;
    memset(ops, 0, sizeof ops);
    ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;

    es_error fallback;
    if (status == ES_OK) {
        const es_method_def *m = g->call.method;
        if (!response || (m && response->descriptor != m->output)) {
            status = es_error_set(&fallback, ES_INTERNAL, "", "the service returned %s",
                                  response ? "a response of the wrong type" : "no response");
            err = &fallback;
        } else {
            size_t len = protobuf_c_message_get_packed_size(response);
            grpc_slice slice = grpc_slice_malloc(len);
            protobuf_c_message_pack(response, GRPC_SLICE_START_PTR(slice));
            g->send = grpc_raw_byte_buffer_create(&slice, 1);
            grpc_slice_unref(slice);
            ops[n].op = GRPC_OP_SEND_MESSAGE;
            ops[n++].data.send_message.send_message = g->send;
        }
    }
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = (grpc_status_code)es_grpc_code(status);
    if (status != ES_OK) {
        es_error e = *err;
        if (!e.code)
            e.code = status;
        es__error_text(&e, g->text, sizeof g->text);
        g->status_details = grpc_slice_from_copied_string(g->text);
        g->have_status_details = 1;
        ops[n].data.send_status_from_server.status_details = &g->status_details;
    }
    n++;
    ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[n++].data.recv_close_on_server.cancelled = &g->cancelled;

    g->state = ST_FINISH;
    grpc_call_error e = grpc_call_start_batch(g->gc, ops, n, g, NULL);
    if (e != GRPC_CALL_OK) {
        /* Only a programming error gets here; the record must still be freed exactly once. */
        es_log(ES_LOG_ERROR, "grpc", NULL, "finish batch: %s", grpc_call_error_to_string(e));
        gcall_free(g);
    }
}

/* A call its client cancelled (RST_STREAM, or a deadline) counts towards the connection's
 * reset rate; the gate cuts a connection that goes over it. grpc 1.51 has no limit of its own on
 * streams opened and reset at once, and each one costs a call here. */
static void count_reset(gcall *g)
{
    if (g->srv->gate && !g->reset_counted)
        es__grpc_gate_call_reset(g->srv->gate, &g->peer);
    g->reset_counted = 1;
}

/* The connection a call came on, read when it is accepted: once grpc has cancelled a call its
 * peer reads "unknown". */
static void call_peer(grpc_call *gc, es__grpc_peer *out)
{
    char *peer = grpc_call_get_peer(gc);
    es__grpc_peer_parse(peer, out);
    gpr_free(peer);
}

static void on_done(es_call *call)
{
    gcall *g = (gcall *)call;
    finish(g, call->status, &call->err, call->status == ES_OK ? call->response : NULL);
}

static int slice_eq(grpc_slice s, const char *str)
{
    size_t n = strlen(str);
    return GRPC_SLICE_LENGTH(s) == n && memcmp(GRPC_SLICE_START_PTR(s), str, n) == 0;
}

static const es_method_def *find_method(const es_grpc_server *s, grpc_slice path)
{
    for (size_t i = 0; i < s->n_methods; i++)
        if (slice_eq(path, s->methods[i]->grpc_path))
            return s->methods[i];
    return NULL;
}

/* Copies the metadata the service cares about into the call. */
static int read_metadata(gcall *g, es_error *err)
{
    static const struct {
        const char *key;
        enum es__meta which;
    } keys[] = {
        {"authorization", ES__META_AUTHORIZATION},
        {"idempotency-key", ES__META_IDEMPOTENCY_KEY},
        {"x-correlation-id", ES__META_CORRELATION_ID},
        {"x-request-id", ES__META_CORRELATION_ID},
    };
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        for (size_t i = 0; i < g->md.count; i++) {
            const grpc_metadata *md = &g->md.metadata[i];
            if (!slice_eq(md->key, keys[k].key))
                continue;
            /* x-request-id only counts when x-correlation-id is absent. */
            if (keys[k].which == ES__META_CORRELATION_ID && g->call.correlation_id)
                break;
            int rc = es__call_set_meta(&g->call, keys[k].which, keys[k].key,
                                       (const char *)GRPC_SLICE_START_PTR(md->value),
                                       GRPC_SLICE_LENGTH(md->value), err);
            if (rc != ES_OK)
                return rc;
            break;
        }
    }
    return ES_OK;
}

/* Whether this call may use server reflection (es_grpc_config.reflection): ES_OK, else
 * UNIMPLEMENTED (off) or UNAUTHENTICATED. The token is read with the same rules as every other
 * call's; whether it is valid is the application's authenticate hook's to say. */
static int reflection_allowed(gcall *g, es_error *err)
{
    es_grpc_server *s = g->srv;
    if (s->cfg.reflection == ES_GRPC_REFLECTION_OFF)
        return es_error_set(err, ES_UNIMPLEMENTED, "", "server reflection is turned off");
    if (s->cfg.reflection == ES_GRPC_REFLECTION_ON || !s->cfg.authenticate)
        return ES_OK;
    int rc = read_metadata(g, err);
    if (rc == ES_OK)
        rc = s->cfg.authenticate(s->cfg.authenticate_data, g->call.authorization, err);
    if (rc != ES_OK) {
        atomic_fetch_add(&s->reflection_refused, 1);
        if (rc != ES_UNAUTHENTICATED && rc != ES_INVALID_ARGUMENT) {
            es_error_set(err, ES_UNAUTHENTICATED, "authorization", "a valid bearer token is required");
            rc = ES_UNAUTHENTICATED;
        }
    }
    return rc;
}

static void on_slot(gcall *g, int ok)
{
    es_grpc_server *s = g->srv;
    if (!ok) {
        gcall_free(g); /* the server is shutting down */
        return;
    }
    if (!atomic_load(&s->stopping))
        post_slot(s);
    if (s->gate) {
        call_peer(g->gc, &g->peer);
        /* A call grpc parsed from a connection the gate has cut (or that is over, or that holds
         * more calls than it may have streams open) has nobody to answer: dropped here, it
         * costs one event instead of three, and the calls of other clients queued behind a
         * rapid-reset burst wait that much less. Unref cancels it. */
        if (!es__grpc_gate_call_start(s->gate, &g->peer)) {
            gcall_free(g);
            return;
        }
    }
    g->state = ST_RECV;
    live_add(s, 0, 1);

    es_error err = {0};
    if (es__refl_is_path((const char *)GRPC_SLICE_START_PTR(g->details.method), GRPC_SLICE_LENGTH(g->details.method))) {
        int rc = reflection_allowed(g, &err);
        if (rc != ES_OK) {
            finish(g, rc, &err, NULL);
            return;
        }
        g->state = ST_STREAM;
        g->stream = es__refl_stream_new(s->reflection, g->gc, g);
        if (es__refl_stream_step(g->stream, 1))
            gcall_free(g);
        return;
    }
    const es_method_def *m = find_method(s, g->details.method);
    if (!m) {
        int len = (int)GRPC_SLICE_LENGTH(g->details.method);
        es_error_set(&err, ES_UNIMPLEMENTED, "", "method %.*s is not implemented", len > 200 ? 200 : len,
                     (const char *)GRPC_SLICE_START_PTR(g->details.method));
        finish(g, ES_UNIMPLEMENTED, &err, NULL);
        return;
    }
    g->call.method = m;
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &g->recv;
    grpc_call_error e = grpc_call_start_batch(g->gc, &op, 1, g, NULL);
    if (e != GRPC_CALL_OK) {
        es_error_set(&err, ES_INTERNAL, "", "cannot read the request");
        finish(g, ES_INTERNAL, &err, NULL);
    }
}

static void on_recv(gcall *g, int ok)
{
    es_grpc_server *s = g->srv;
    es_call *call = &g->call;
    es_error err = {0};
    int rc;
    if (!ok) {
        /* Cancelled before its message came (RST_STREAM): counted now rather than at FINISH,
         * one round on the queue later, so a rapid-reset burst is cut that much earlier. */
        count_reset(g);
        rc = es_error_set(&err, ES_CANCELLED, "", "the call was cancelled");
        goto fail;
    }
    if (!g->recv) {
        rc = es_error_set(&err, ES_INVALID_ARGUMENT, "", "the request message is missing");
        goto fail;
    }
    grpc_byte_buffer_reader reader;
    if (!grpc_byte_buffer_reader_init(&reader, g->recv)) {
        rc = es_error_set(&err, ES_INVALID_ARGUMENT, "", "the request message cannot be decompressed");
        goto fail;
    }
    grpc_slice all = grpc_byte_buffer_reader_readall(&reader);
    grpc_byte_buffer_reader_destroy(&reader);
    char path[ES_GRPC_PATH_MAX] = "";
    rc = es__grpc_check_wire(call->method->input, GRPC_SLICE_START_PTR(all), GRPC_SLICE_LENGTH(all), path, 0, 0, &err);
    if (rc != ES_OK) {
        grpc_slice_unref(all);
        goto fail;
    }
    /* protobuf-c copies strings and bytes out of the input, so the slice can go right after.
     * es_pb_unpack merges a singular message field sent twice, as protobuf says, where protobuf-c
     * 1.4.1 alone fails on types that reach a oneof (a cached look-up for the others). */
    call->request = es_pb_unpack(call->method->input, &call->arena.pb, GRPC_SLICE_LENGTH(all),
                                 GRPC_SLICE_START_PTR(all));
    grpc_slice_unref(all);
    if (!call->request) {
        rc = es_error_set(&err, ES_INVALID_ARGUMENT, "", "the request is not a valid %s message",
                          call->method->input->name);
        goto fail;
    }
    rc = read_metadata(g, &err);
    if (rc != ES_OK)
        goto fail;
    call->done = on_done;
    call->transport_data = s;
    g->submitted = 1;
    s->d->submit(s->d, call);
    return;
fail:
    finish(g, rc, &err, NULL);
}

static void *cq_thread(void *arg)
{
    es_grpc_server *s = arg;
    pthread_setname_np(pthread_self(), "es-grpc");
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
        if (ev.type != GRPC_OP_COMPLETE)
            continue;
        if (ev.tag == &s->shutdown_tag) {
            pthread_mutex_lock(&s->mu);
            s->shutdown_done = 1;
            pthread_cond_broadcast(&s->cv);
            pthread_mutex_unlock(&s->mu);
            continue;
        }
        gcall *g = ev.tag;
        switch (g->state) {
        case ST_SLOT:
            on_slot(g, ev.success);
            break;
        case ST_RECV:
            on_recv(g, ev.success);
            break;
        case ST_FINISH:
            if (g->cancelled) /* by the client, or by its deadline */
                count_reset(g);
            gcall_free(g);
            break;
        case ST_STREAM:
            if (es__refl_stream_step(g->stream, ev.success))
                gcall_free(g);
            break;
        }
    }
    return NULL;
}

/* ---- lifecycle ---- */

es_grpc_server *es_grpc_server_new(const es_grpc_config *cfg, es_dispatcher *d, es_error *err)
{
    static const es_grpc_config defaults = {0};
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
    es_grpc_server *s = es_xcalloc(1, sizeof *s);
    s->cfg = *cfg;
    s->address = es_xstrdup(cfg->address ? cfg->address : "0.0.0.0:8081");
    s->tls_cert_file = cfg->tls_cert_file ? es_xstrdup(cfg->tls_cert_file) : NULL;
    s->tls_key_file = cfg->tls_key_file ? es_xstrdup(cfg->tls_key_file) : NULL;
    s->tls_client_ca_file = cfg->tls_client_ca_file ? es_xstrdup(cfg->tls_client_ca_file) : NULL;
    if (!s->cfg.threads)
        s->cfg.threads = 2;
    if (!s->cfg.request_slots)
        s->cfg.request_slots = 32;
    if (!s->cfg.max_message)
        s->cfg.max_message = 4u << 20;
    if (!s->cfg.shutdown_grace_ms)
        s->cfg.shutdown_grace_ms = 5000;
    if (!s->cfg.max_concurrent_streams)
        s->cfg.max_concurrent_streams = 100;
    static const struct {
        size_t off;
        unsigned def;
    } defs[] = {
        {offsetof(es_grpc_config, max_connections), 1024},
        {offsetof(es_grpc_config, max_connections_per_client), 64},
        {offsetof(es_grpc_config, max_resets_per_second), 100},
        {offsetof(es_grpc_config, reset_ban_ms), 10000},
        {offsetof(es_grpc_config, idle_timeout_ms), 120000},
        {offsetof(es_grpc_config, max_age_ms), 3600000},
        {offsetof(es_grpc_config, max_age_grace_ms), 30000},
        {offsetof(es_grpc_config, keepalive_time_ms), 60000},
        {offsetof(es_grpc_config, keepalive_timeout_ms), 20000},
        {offsetof(es_grpc_config, min_ping_interval_ms), 10000},
        {offsetof(es_grpc_config, max_ping_strikes), 2},
    };
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) {
        unsigned *v = (unsigned *)((char *)&s->cfg + defs[i].off);
        if (!*v)
            *v = defs[i].def;
    }
    atomic_init(&s->reflection_refused, 0);
    s->d = d;
    pthread_mutex_init(&s->mu, NULL);
    es_mono_cond_init(&s->cv); /* the shutdown grace is an es_mono_deadline */
    atomic_init(&s->stopping, 0);
    s->reflection = es__refl_index_new();
    es__refl_index_add_service(s->reflection, "grpc.reflection.v1alpha.ServerReflection");
    es__refl_index_add_service(s->reflection, "grpc.reflection.v1.ServerReflection");
    grpc_init();
    return s;
}

int es_grpc_server_add_service(es_grpc_server *s, const es_service_def *svc, es_error *err)
{
    if (s->started)
        return es_error_set(err, ES_FAILED_PRECONDITION, "", "services must be added before start");
    for (size_t i = 0; i < svc->n_methods; i++) {
        const es_method_def *m = svc->methods[i];
        if (!m->grpc_path || m->grpc_path[0] != '/' || !m->input || !m->output)
            return es_error_set(err, ES_INVALID_ARGUMENT, m->name ? m->name : "",
                                "method %s has no gRPC path or message types", m->name ? m->name : "?");
        for (size_t j = 0; j < s->n_methods; j++)
            if (strcmp(s->methods[j]->grpc_path, m->grpc_path) == 0)
                return es_error_set(err, ES_ALREADY_EXISTS, m->grpc_path, "%s is served twice", m->grpc_path);
    }
    for (size_t i = 0; i < svc->n_methods; i++) {
        if (s->n_methods == s->cap_methods) {
            s->cap_methods = s->cap_methods ? s->cap_methods * 2 : 16;
            s->methods = es_xrealloc(s->methods, s->cap_methods * sizeof *s->methods);
        }
        s->methods[s->n_methods++] = svc->methods[i];
    }
    if (svc->name)
        es__refl_index_add_service(s->reflection, svc->name);
    return ES_OK;
}

int es_grpc_server_add_descriptor_set(es_grpc_server *s, const uint8_t *bytes, size_t len, es_error *err)
{
    if (s->started)
        return es_error_set(err, ES_FAILED_PRECONDITION, "", "descriptor sets must be added before start");
    return es__refl_index_add_set(s->reflection, bytes, len, err);
}

/* Reads a whole (PEM) file into a NUL-terminated heap string, or NULL. */
static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0, cap = 0, got;
    if (!f)
        return NULL;
    do {
        if (cap - len < 4096) {
            cap = cap ? cap * 2 : 8192;
            buf = es_xrealloc(buf, cap + 1);
        }
        got = fread(buf + len, 1, cap - len, f);
        len += got;
    } while (got > 0 && len < (16u << 20));
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return NULL;
    }
    buf[len] = '\0';
    return buf;
}

static grpc_server_credentials *make_credentials(es_grpc_server *s, es_error *err)
{
    if (!s->tls_cert_file)
        return grpc_insecure_server_credentials_create();
    grpc_server_credentials *creds = NULL;
    char *cert = read_file(s->tls_cert_file), *key = read_file(s->tls_key_file);
    char *ca = s->tls_client_ca_file ? read_file(s->tls_client_ca_file) : NULL;
    if (!cert || !key || (s->tls_client_ca_file && !ca)) {
        const char *which = !cert ? s->tls_cert_file : !key ? s->tls_key_file : s->tls_client_ca_file;
        es_error_set(err, ES_INVALID_ARGUMENT, which, "cannot read %s: %s", which, strerror(errno));
        goto out;
    }
    grpc_ssl_pem_key_cert_pair pair = {.private_key = key, .cert_chain = cert};
    creds = grpc_ssl_server_credentials_create_ex(
        ca, &pair, 1, ca ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                         : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
        NULL);
    if (!creds)
        es_error_set(err, ES_INVALID_ARGUMENT, s->tls_cert_file, "invalid TLS certificate or key");
out:
    free(cert);
    if (key) {
        memset(key, 0, strlen(key)); /* do not leave the private key lying in freed memory */
        free(key);
    }
    free(ca);
    return creds;
}

int es_grpc_server_start(es_grpc_server *s, es_error *err)
{
    if (s->started)
        return es_error_set(err, ES_FAILED_PRECONDITION, "", "the server was started already");
    grpc_arg args[17];
    size_t n = 0;
#define ARG_INT(k, v)                                                                         \
    do {                                                                                      \
        args[n].type = GRPC_ARG_INTEGER;                                                      \
        args[n].key = (char *)(k);                                                            \
        args[n++].value.integer = (v) > (unsigned)INT_MAX ? INT_MAX : (int)(v);               \
    } while (0)
    ARG_INT(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, s->cfg.max_message > INT_MAX ? (unsigned)INT_MAX : (unsigned)s->cfg.max_message);
    /* grpc turns SO_REUSEPORT on by default: a second server on a busy port would bind silently
     * and steal half the connections. A busy port must be an error. */
    ARG_INT(GRPC_ARG_ALLOW_REUSEPORT, 0u);
    /* Streams one HTTP/2 connection may have open (SETTINGS_MAX_CONCURRENT_STREAMS): one client
     * cannot take every request slot and worker. */
    ARG_INT(GRPC_ARG_MAX_CONCURRENT_STREAMS, s->cfg.max_concurrent_streams);
    /* Connection lifetime: an idle connection costs a descriptor and buffers for nothing, and
     * one held open forever pins a client to this instance. */
    ARG_INT(GRPC_ARG_MAX_CONNECTION_IDLE_MS, s->cfg.idle_timeout_ms);
    ARG_INT(GRPC_ARG_MAX_CONNECTION_AGE_MS, s->cfg.max_age_ms);
    ARG_INT(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS, s->cfg.max_age_grace_ms);
    /* The server's own pings find peers that vanished without a FIN, calls or not. */
    ARG_INT(GRPC_ARG_KEEPALIVE_TIME_MS, s->cfg.keepalive_time_ms);
    ARG_INT(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, s->cfg.keepalive_timeout_ms);
    ARG_INT(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1u);
    ARG_INT(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0u);
    /* A client's ping flood: each ping costs a PING ACK write. */
    ARG_INT(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, s->cfg.min_ping_interval_ms);
    ARG_INT(GRPC_ARG_HTTP2_MAX_PING_STRIKES, s->cfg.max_ping_strikes);
    /* grpc parses everything one read returned before anyone can cut the connection, and by
     * default a read grows to 4 MB: some 35,000 streams of a rapid-reset burst, each queued as a
     * call ahead of other clients' calls. 64 KB reads bound that to a few hundred, and the memory
     * a connection's read buffer holds with it; requests are small, and a large one just takes
     * more reads. */
    ARG_INT(GRPC_ARG_TCP_MAX_READ_CHUNK_SIZE, ES_GRPC_READ_CHUNK);
#undef ARG_INT

    grpc_server_credentials *creds = make_credentials(s, err);
    if (!creds)
        return err ? err->code : ES_INVALID_ARGUMENT;
    /* The gate (grpc_gate.h) admits every connection: on a plaintext port it listens and hands
     * grpc the connections it admits; grpc 1.51 takes a ready socket only without TLS, so on a
     * TLS port grpc's listener accepts and asks the gate through its socket mutator. */
    s->gate = es__grpc_gate_new(s->tls_cert_file ? NULL : s->address, s->cfg.max_connections,
                                s->cfg.max_connections_per_client, s->cfg.max_resets_per_second,
                                s->cfg.reset_ban_ms, ES_GRPC_MAX_CALLS(s->cfg.max_concurrent_streams), err);
    if (!s->gate) {
        grpc_server_credentials_release(creds);
        return ES_UNAVAILABLE;
    }
    if (s->tls_cert_file)
        args[n++] = es__grpc_gate_server_arg(s->gate);
    grpc_channel_args cargs = {n, args};
    s->server = grpc_server_create(&cargs, NULL);
    s->cq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(s->server, s->cq, NULL);
    if (!s->tls_cert_file) {
        s->port = es__grpc_gate_port(s->gate);
        s->gate_creds = creds;
    } else {
        s->port = grpc_server_add_http2_port(s->server, s->address, creds);
        grpc_server_credentials_release(creds);
        if (s->port <= 0)
            es_error_set(err, ES_UNAVAILABLE, "address", "cannot listen on %s", s->address);
    }
    if (s->port <= 0) {
        s->port = 0;
        grpc_server_destroy(s->server);
        s->server = NULL;
        grpc_completion_queue_shutdown(s->cq);
        while (grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
               GRPC_QUEUE_SHUTDOWN)
            ;
        grpc_completion_queue_destroy(s->cq);
        s->cq = NULL;
        es__grpc_gate_free(s->gate);
        s->gate = NULL;
        return ES_UNAVAILABLE;
    }
    grpc_server_start(s->server);
    es__grpc_gate_start(s->gate, s->server, s->gate_creds);
    s->started = 1;
    for (unsigned i = 0; i < s->cfg.request_slots; i++)
        post_slot(s);
    s->threads = es_xcalloc(s->cfg.threads, sizeof *s->threads);
    for (; s->n_threads < s->cfg.threads; s->n_threads++) {
        int e = pthread_create(&s->threads[s->n_threads], NULL, cq_thread, s);
        if (e != 0)
            es_no_thread("gRPC completion-queue", e);
    }
    return ES_OK;
}

int es_grpc_server_port(const es_grpc_server *s) { return s ? s->port : 0; }

size_t es_grpc_server_inflight(const es_grpc_server *s)
{
    es_grpc_server *m = (es_grpc_server *)s;
    pthread_mutex_lock(&m->mu);
    size_t n = m->calls;
    pthread_mutex_unlock(&m->mu);
    return n;
}

size_t es_grpc_server_connections(const es_grpc_server *s)
{
    es__grpc_gate_stats st = {0};
    if (s && s->gate)
        es__grpc_gate_stats_get(s->gate, &st);
    return st.open;
}

void es_grpc_server_metrics(const es_grpc_server *s, es_buf *out)
{
    es__grpc_gate_stats st = {0};
    if (s && s->gate)
        es__grpc_gate_stats_get(s->gate, &st);
    es_metrics_family(out, "es_grpc_inflight", "gauge", "gRPC calls in progress.");
    es_metrics_sample(out, "es_grpc_inflight", "", s ? (double)es_grpc_server_inflight(s) : 0);
    es_metrics_family(out, "es_grpc_connections", "gauge", "Open gRPC connections.");
    es_metrics_sample(out, "es_grpc_connections", "", (double)st.open);
    es_metrics_family(out, "es_grpc_connections_refused_total", "counter",
                      "gRPC connections refused at accept, by the limit that refused them.");
    es_metrics_sample(out, "es_grpc_connections_refused_total", "reason=\"connection_limit\"", (double)st.refused_total);
    es_metrics_sample(out, "es_grpc_connections_refused_total", "reason=\"client_connection_limit\"",
                      (double)st.refused_client);
    es_metrics_sample(out, "es_grpc_connections_refused_total", "reason=\"reset_ban\"", (double)st.refused_banned);
    es_metrics_family(out, "es_grpc_connections_closed_total", "counter",
                      "gRPC connections a limit closed, by the limit.");
    es_metrics_sample(out, "es_grpc_connections_closed_total", "reason=\"rapid_reset\"", (double)st.closed_rapid_reset);
    es_metrics_family(out, "es_grpc_reflection_refused_total", "counter",
                      "Server reflection calls refused for want of a valid bearer token.");
    es_metrics_sample(out, "es_grpc_reflection_refused_total", "",
                      s ? (double)atomic_load(&((es_grpc_server *)s)->reflection_refused) : 0);
}

void es_grpc_server_stop(es_grpc_server *s)
{
    if (!s || !s->started || s->stopped)
        return;
    s->stopped = 1;
    atomic_store(&s->stopping, 1);
    es__grpc_gate_stop(s->gate); /* no new connections while grpc winds the others down */
    grpc_server_shutdown_and_notify(s->server, s->cq, &s->shutdown_tag);

    struct timespec until = es_mono_deadline((int64_t)s->cfg.shutdown_grace_ms * 1000);
    pthread_mutex_lock(&s->mu);
    while (!s->shutdown_done) {
        if (pthread_cond_timedwait(&s->cv, &s->mu, &until) == ETIMEDOUT) {
            pthread_mutex_unlock(&s->mu);
            grpc_server_cancel_all_calls(s->server);
            pthread_mutex_lock(&s->mu);
            while (!s->shutdown_done)
                pthread_cond_wait(&s->cv, &s->mu);
        }
    }
    /* Calls the dispatcher still holds will call done() and start a batch on the queue: the
     * queue must outlive them (the dispatcher's contract is to call done exactly once). */
    while (s->live > 0)
        pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);

    grpc_server_destroy(s->server);
    s->server = NULL;
    grpc_completion_queue_shutdown(s->cq);
    for (unsigned i = 0; i < s->n_threads; i++)
        pthread_join(s->threads[i], NULL);
    grpc_completion_queue_destroy(s->cq);
    s->cq = NULL;
}

void es_grpc_server_free(es_grpc_server *s)
{
    if (!s)
        return;
    es_grpc_server_stop(s);
    free(s->threads);
    free(s->methods);
    es__refl_index_free(s->reflection);
    es__grpc_gate_free(s->gate);
    if (s->gate_creds)
        grpc_server_credentials_release(s->gate_creds);
    free(s->address);
    free(s->tls_cert_file);
    free(s->tls_key_file);
    free(s->tls_client_ca_file);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
    grpc_shutdown();
}

/* Routing of the HTTP transport: a request goes to a plain handler or to a service route; a
 * route's body, path variables, query parameters and metadata become an es_call submitted to the
 * dispatcher, and its completion (posted back to the owning loop) becomes the JSON answer.
 *
 * A client may vanish while its call is in the dispatcher: the request's memory pool is then
 * cleared by h2o. A small ref-counted chunk linked to the pool tells us (its dispose clears the
 * call's request pointer), so the completion only frees the call. */
#include "http_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "es/json.h"
#include "net_common.h"

const char *es__http_route_label(es_http_server *s, h2o_req_t *req)
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
        es__http_send_error(req, call->status, &call->err);
        return;
    }
    es_error err = {0};
    if (!call->response || call->response->descriptor != call->method->output) {
        es_error_set(&err, ES_INTERNAL, "", "the service returned %s",
                     call->response ? "a response of the wrong type" : "no response");
        es__http_send_error(req, ES_INTERNAL, &err);
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
        es__http_send_error(req, ES_INTERNAL, &e);
    } else {
        es__http_send_response(req, 200, "application/json", b.data, b.len);
    }
    es_buf_free(&b);
}

static void hcall_free(hcall *hc)
{
    es_arena_free(&hc->call.arena);
    free(hc);
}

void es__http_on_done_messages(h2o_multithread_receiver_t *rx, h2o_linklist_t *messages)
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

/* Is the Content-Type "application/json" (parameters such as "; charset=utf-8" allowed)? A
 * body without one is refused too: a form or text body must not be read as JSON by accident
 * (a browser sends those cross-origin without a preflight). */
static int is_json_content_type(h2o_req_t *req)
{
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_CONTENT_TYPE, -1);
    if (i < 0)
        return 0;
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
            return es_error_set(err, ES_INVALID_ARGUMENT, "Content-Type",
                                "a request body must be sent with Content-Type: application/json");
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
        /* The wrong media type has its own HTTP status; the body keeps INVALID_ARGUMENT. */
        int http = strcmp(err.field, "Content-Type") == 0 ? 415 : es_http_status(rc);
        es__http_count_refused(s, m->route->path, http);
        es__http_send_error_as(req, rc, &err, http, NULL);
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
        es__http_add_header(req, res.headers[i].name, res.headers[i].value);
    es__http_send_response(req, res.status > 99 && res.status < 600 ? res.status : 500, res.content_type, res.body.data,
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

int es__http_on_req(h2o_handler_t *self, h2o_req_t *req)
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
    if (!es__http_conn_admit(s, req)) {
        es_error err;
        es_error_set(&err, ES_UNAVAILABLE, "", "the connection is being closed by a limit");
        es__http_send_error(req, ES_UNAVAILABLE, &err);
        goto out;
    }
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
            es__http_count_refused(s, m.route->path, 413);
            es__http_send_error_as(req, ES_RESOURCE_EXHAUSTED, &err, 413, NULL);
        } else {
            serve_route(s, t, req, &m);
        }
        goto out;
    }
    if (m.http_status == 400) {
        es__http_count_refused(s, "unmatched", 400);
        es__http_send_error(req, ES_INVALID_ARGUMENT, &m.err);
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
        es__http_count_refused(s, es__http_route_label(s, req), 405);
        es__http_send_error_as(req, ES_UNIMPLEMENTED, &err, 405, m.allow);
    } else {
        es_error_set(&err, ES_NOT_FOUND, "", "no route for %.32s %.200s", method, path);
        es__http_count_refused(s, "unmatched", 404);
        es__http_send_error(req, ES_NOT_FOUND, &err);
    }
out:
    es_arena_free(&scratch);
    return 0;
}

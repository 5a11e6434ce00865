/* Answers of the HTTP transport: status lines, the JSON error body every refusal shares, the
 * count of requests the transport answered itself, and the output filter that rewrites h2o's
 * own plain-text errors into that JSON shape. */
#include "http_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "es/buf.h"
#include "es/json_string.h"
#include "net_common.h"

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

void es__http_add_header(h2o_req_t *req, const char *name, const char *value)
{
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 1, NULL,
                          h2o_strdup(&req->pool, value, SIZE_MAX).base, strlen(value));
}

/* Sends a complete response; body is copied into the request pool (h2o sends it later). */
void es__http_send_response(h2o_req_t *req, int status, const char *content_type, const char *body, size_t len)
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
void es__http_send_error_as(h2o_req_t *req, int status, const es_error *err, int http, const char *allow)
{
    es_buf b;
    char text[600];
    es_error e = *err;
    if (!e.code)
        e.code = status;
    es__error_text(&e, text, sizeof text);
    es_buf_init(&b);
    es_buf_printf(&b, "{\"code\":%d,\"message\":", es_grpc_code(status));
    es_json_quote_str(&b, text);
    es_buf_puts(&b, ",\"details\":[");
    if (err->field[0]) {
        es_buf_puts(&b, "{\"field\":");
        es_json_quote_str(&b, err->field);
        es_buf_puts(&b, ",\"description\":");
        es_json_quote_str(&b, err->message[0] ? err->message : es_strerror(status));
        es_buf_putc(&b, '}');
    }
    es_buf_puts(&b, "]}");
    if (!http)
        http = es_http_status(status);
    if (allow)
        es__http_add_header(req, "allow", allow);
    es__http_send_response(req, http, "application/json", b.data, b.len);
    es_buf_free(&b);
}

void es__http_send_error(h2o_req_t *req, int status, const es_error *err)
{
    es__http_send_error_as(req, status, err, 0, NULL);
}

/* Counts one request answered by the transport itself (see es_http_server_metrics). */
void es__http_count_refused(es_http_server *s, const char *route, int status)
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
            es__http_count_refused(s, req->path.base ? es__http_route_label(s, req) : "unmatched", 413);
        } else {
            char text[160];
            snprintf(text, sizeof text, "the HTTP request was refused: %.100s", req->res.reason ? req->res.reason : "");
            es_buf_printf(&b, "{\"code\":%d,\"message\":", es_grpc_code(status_of_http(st)));
            es_json_quote_str(&b, text);
            es_buf_puts(&b, ",\"details\":[]}");
            es__http_count_refused(s, "unmatched", st);
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

void es__http_install_filters(es_http_server *s, h2o_pathconf_t *path, h2o_hostconf_t *host)
{
    /* h2o binds its early 413 to the host's fallback path, our answers to "/": filter both. */
    too_large_filter *f = (too_large_filter *)h2o_create_filter(path, sizeof *f);
    f->super.on_setup_ostream = too_large_setup;
    f->srv = s;
    f->any_error = 0;
    f = (too_large_filter *)h2o_create_filter(&host->fallback_path, sizeof *f);
    f->super.on_setup_ostream = too_large_setup;
    f->srv = s;
    f->any_error = 1;
}

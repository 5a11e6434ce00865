/* Integration tests for runtime/net/http_server.c: curl against the server on loopback, the echo
 * dispatcher completing calls from its worker thread, JSON answers checked with json-c. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <json-c/json.h>

#include "echo_service.h"
#include "es/clock.h"
#include "es/http_server.h"
#include "es/json.h"

#define MAX_BODY (64 * 1024)

typedef struct fixture {
    echo_dispatcher d;
    es_json_registry *reg;
    es_http_server *srv;
    char dir[64];
} fixture;

static fixture *g;

/* ---- plain handlers for the tests ---- */

static void healthz(void *data, const es_http_request *req, es_http_response *res)
{
    es_buf_printf(&res->body, "ok %s", (const char *)data);
    const char *probe = es_http_request_header(req, "X-Probe", res->arena);
    if (probe)
        es_http_response_add_header(res, "x-probe-echo", probe);
}

static void metrics(void *data, const es_http_request *req, es_http_response *res)
{
    (void)data;
    res->content_type = "text/plain; version=0.0.4";
    es_buf_printf(&res->body, "requests_total %zu\nquery \"%s\"\n", es_http_server_inflight(g->srv), req->query);
}

static void assets(void *data, const es_http_request *req, es_http_response *res)
{
    (void)data;
    if (strcmp(req->path, "/static/app.css") != 0) {
        res->status = 404;
        es_buf_puts(&res->body, "no such asset");
        return;
    }
    res->content_type = "text/css";
    es_http_response_add_header(res, "cache-control", "max-age=60");
    es_buf_puts(&res->body, "body{}");
}

static void echo_body(void *data, const es_http_request *req, es_http_response *res)
{
    (void)data;
    res->status = 201;
    es_buf_printf(&res->body, "%s %zu:", req->method, req->body_len);
    es_buf_append(&res->body, req->body ? req->body : "", req->body_len);
}

static fixture *start_server_per_client(unsigned threads, unsigned per_client)
{
    fixture *f = calloc(1, sizeof *f);
    f->reg = es_json_registry_new();
    echo_dispatcher_init(&f->d, f->reg);
    es_http_config cfg = {.address = "127.0.0.1:0", .threads = threads, .max_body = MAX_BODY,
                          .shutdown_grace_ms = 2000, .max_connections_per_client = per_client};
    es_error err = {0};
    f->srv = es_http_server_new(&cfg, &f->d.base, &err);
    if (!f->srv || es_http_server_add_service(f->srv, &echo_service, &err) != ES_OK) {
        fprintf(stderr, "http server: %s\n", err.message);
        return NULL;
    }
    es_http_server_add_handler(f->srv, "GET", "/healthz", ES_HTTP_EXACT, healthz, "ready");
    es_http_server_add_handler(f->srv, "GET", "/metrics", ES_HTTP_EXACT, metrics, NULL);
    es_http_server_add_handler(f->srv, "GET", "/static/", ES_HTTP_PREFIX, assets, NULL);
    es_http_server_add_handler(f->srv, NULL, "/plain/echo", ES_HTTP_EXACT, echo_body, NULL);
    if (es_http_server_start(f->srv, &err) != ES_OK) {
        fprintf(stderr, "http server start: %s\n", err.message);
        return NULL;
    }
    snprintf(f->dir, sizeof f->dir, "/tmp/es-http-test-XXXXXX");
    if (!mkdtemp(f->dir))
        return NULL;
    return f;
}

static fixture *start_server(unsigned threads) { return start_server_per_client(threads, 0); }

static void stop_server(fixture *f)
{
    es_http_server_free(f->srv);
    echo_dispatcher_destroy(&f->d);
    es_json_registry_free(f->reg);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", f->dir);
    free(f);
}

static int group_setup(void **state)
{
    g = start_server(2);
    *state = g;
    return g ? 0 : -1;
}

static int group_teardown(void **state)
{
    stop_server(*state);
    return 0;
}

/* ---- a curl wrapper ---- */

typedef struct reply {
    int status;
    char *body;
    size_t len;
    char *headers;
    json_object *json;    /* parsed body when it is JSON, else NULL */
} reply;

static char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return calloc(1, 1);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    size_t got = fread(buf, 1, (size_t)n, fp);
    buf[got] = '\0';
    fclose(fp);
    if (len)
        *len = got;
    return buf;
}

static void reply_free(reply *r)
{
    free(r->body);
    free(r->headers);
    if (r->json)
        json_object_put(r->json);
    memset(r, 0, sizeof *r);
}

/* Runs curl: extra is inserted as is (headers, --http2-prior-knowledge ...); body (may be NULL)
 * is sent from a file with Content-Type application/json unless extra sets another one. */
static reply http(const char *method, const char *path, const char *body, size_t body_len, const char *extra)
{
    reply r = {0};
    char bodyfile[128], outfile[128], hdrfile[128], cmd[4096];
    snprintf(bodyfile, sizeof bodyfile, "%s/req", g->dir);
    snprintf(outfile, sizeof outfile, "%s/out", g->dir);
    snprintf(hdrfile, sizeof hdrfile, "%s/hdr", g->dir);
    unlink(outfile);
    unlink(hdrfile);
    char data[300] = "";
    if (body && !body_len)
        body_len = strlen(body);
    if (body) {
        FILE *fp = fopen(bodyfile, "wb");
        fwrite(body, 1, body_len, fp);
        fclose(fp);
        snprintf(data, sizeof data, "--data-binary @%s %s", bodyfile,
                 extra && strstr(extra, "Content-Type") ? "" : "-H 'Content-Type: application/json'");
    }
    snprintf(cmd, sizeof cmd,
             "curl -s -g --max-time 20 %s -X %s %s %s -o %s -D %s -w '%%{http_code}' "
             "'http://127.0.0.1:%d%s'",
             extra && strstr(extra, "Expect:") ? "" : "-H 'Expect:'", method, data, extra ? extra : "", outfile,
             hdrfile, es_http_server_port(g->srv), path);
    FILE *p = popen(cmd, "r");
    char code[16] = "";
    if (p) {
        if (!fgets(code, sizeof code, p))
            code[0] = '\0';
        pclose(p);
    }
    r.status = atoi(code);
    r.body = slurp(outfile, &r.len);
    r.headers = slurp(hdrfile, NULL);
    r.json = json_tokener_parse(r.body);
    return r;
}

static const char *jstr(json_object *o, const char *key)
{
    json_object *v;
    if (!o || !json_object_object_get_ex(o, key, &v))
        return NULL;
    return json_object_get_string(v);
}

static int jint(json_object *o, const char *key)
{
    json_object *v;
    if (!o || !json_object_object_get_ex(o, key, &v))
        return -1;
    return json_object_get_int(v);
}

/* The error body's first details[].field, or NULL. */
static const char *jdetail_field(json_object *o)
{
    json_object *d;
    if (!o || !json_object_object_get_ex(o, "details", &d) || json_object_array_length(d) == 0)
        return NULL;
    return jstr(json_object_array_get_idx(d, 0), "field");
}

#define EXPECT_STATUS(r, want)                                                                     \
    do {                                                                                           \
        if ((r).status != (want))                                                                  \
            fail_msg("want HTTP %d, got %d: %s", (want), (r).status, (r).body);                     \
    } while (0)

/* An error answer: HTTP status, gRPC code, the field named in details (NULL: do not check). */
#define expect_error(r, http_status, code, field) expect_error_at((r), (http_status), (code), (field), __LINE__)
static void expect_error_at(reply *r, int http_status, int code, const char *field, int line)
{
    if (r->status != http_status)
        fail_msg("line %d: want HTTP %d, got %d: %s", line, http_status, r->status, r->body);
    if (!r->json)
        fail_msg("error body is not JSON: %s", r->body);
    assert_int_equal(jint(r->json, "code"), code);
    assert_non_null(jstr(r->json, "message"));
    json_object *d;
    assert_true(json_object_object_get_ex(r->json, "details", &d));
    assert_true(json_object_is_type(d, json_type_array));
    if (field) {
        const char *f = jdetail_field(r->json);
        if (!f || strcmp(f, field) != 0)
            fail_msg("want details[0].field %s: %s", field, r->body);
    }
    assert_non_null(strstr(r->headers, "content-type: application/json"));
}

/* ---- tests ---- */

static void test_routes_and_vars(void **state)
{
    (void)state;
    reply r = http("POST", "/v1/rules", "{\"selector\":\"a\",\"body\":\"b\",\"get\":\"/x\"}", 0, NULL);
    EXPECT_STATUS(r, 200);
    assert_string_equal(jstr(r.json, "selector"), "a");
    assert_string_equal(jstr(r.json, "body"), "b");
    assert_string_equal(jstr(r.json, "get"), "/x");
    assert_non_null(strstr(r.headers, "content-type: application/json"));
    reply_free(&r);

    r = http("GET", "/v1/rules/abc", NULL, 0, NULL);
    EXPECT_STATUS(r, 200);
    assert_string_equal(jstr(r.json, "selector"), "abc");
    reply_free(&r);

    /* Path variables win over the body. */
    r = http("PUT", "/v1/rules/xyz", "{\"selector\":\"ignored\",\"post\":\"/p\"}", 0, NULL);
    EXPECT_STATUS(r, 200);
    assert_string_equal(jstr(r.json, "selector"), "xyz");
    assert_string_equal(jstr(r.json, "post"), "/p");
    reply_free(&r);

    /* body: "custom": the body is that field. Custom verb route. */
    r = http("POST", "/v1/rules/s1:custom", "{\"kind\":\"K\",\"path\":\"/q\"}", 0, NULL);
    EXPECT_STATUS(r, 200);
    assert_string_equal(jstr(r.json, "selector"), "s1");
    json_object *custom;
    assert_true(json_object_object_get_ex(r.json, "custom", &custom));
    assert_string_equal(jstr(custom, "kind"), "K");
    assert_string_equal(jstr(custom, "path"), "/q");
    reply_free(&r);

    /* Two path variables, percent-decoded. */
    r = http("DELETE", "/v1/rules/s%2F1/bindings/b%20c%E2%82%AC", NULL, 0, NULL);
    EXPECT_STATUS(r, 200);
    assert_string_equal(jstr(r.json, "selector"), "s/1");
    assert_string_equal(jstr(r.json, "body"), "b c\xe2\x82\xac");
    reply_free(&r);

    /* A well-known type as the whole body: StringValue is a bare JSON string. */
    r = http("POST", "/v1/say", "\"hello\"", 0, NULL);
    EXPECT_STATUS(r, 200);
    assert_string_equal(r.body, "\"hello\"");
    reply_free(&r);

    /* Empty body on a body route: the empty message. */
    r = http("POST", "/v1/rules", "", 0, NULL);
    EXPECT_STATUS(r, 200);
    reply_free(&r);

    /* HTTP/2 (h2c, prior knowledge) takes the same path. */
    r = http("GET", "/v1/rules/h2", NULL, 0, "--http2-prior-knowledge");
    EXPECT_STATUS(r, 200);
    assert_string_equal(jstr(r.json, "selector"), "h2");
    assert_non_null(strstr(r.headers, "HTTP/2 200"));
    reply_free(&r);
}

static void test_query_params(void **state)
{
    (void)state;
    reply r = http("GET", "/v1/rules/q1?body=x+y%26z&responseBody=rb", NULL, 0, NULL);
    EXPECT_STATUS(r, 200);
    assert_string_equal(jstr(r.json, "body"), "x y&z");
    assert_string_equal(jstr(r.json, "response_body"), "rb");
    reply_free(&r);

    r = http("GET", "/v1/rules/q1?nope=1", NULL, 0, NULL);
    expect_error(&r, 400, 3, "nope");
    assert_non_null(strstr(jstr(r.json, "message"), "nope"));
    reply_free(&r);

    r = http("GET", "/v1/rules/q1?body=%zz", NULL, 0, NULL);
    expect_error(&r, 400, 3, "body");
    reply_free(&r);
}

static void test_bad_bodies(void **state)
{
    (void)state;
    static const struct {
        const char *body, *field;
    } cases[] = {
        {"{\"selector\": ", NULL},
        {"{\"selector\": 5}", "selector"},
        {"{\"unknown_x\": 1}", "unknown_x"},
        {"[1,2]", NULL},
        {"{\"selector\":\"a\"} trailing", NULL},
        {"{\"custom\": {\"kind\": true}}", "custom.kind"},
        {"{\"selector\":\"\xff\xfe\"}", NULL},
        {"nul\0byte", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len = i == 7 ? 8 : strlen(cases[i].body);
        reply r = http("POST", "/v1/rules", cases[i].body, len, NULL);
        if (r.status != 400)
            fail_msg("case %zu %s: HTTP %d %s", i, cases[i].body, r.status, r.body);
        expect_error(&r, 400, 3, cases[i].field);
        reply_free(&r);
    }
    /* Wrong or missing content type: 415 with INVALID_ARGUMENT naming Content-Type. */
    reply r = http("POST", "/v1/rules", "{}", 0, "-H 'Content-Type: text/plain'");
    expect_error(&r, 415, 3, "Content-Type");
    assert_non_null(strstr(jstr(r.json, "message"), "application/json"));
    reply_free(&r);
    r = http("POST", "/v1/rules", "{}", 0, "-H 'Content-Type: application/x-www-form-urlencoded'");
    expect_error(&r, 415, 3, "Content-Type");
    reply_free(&r);
    r = http("POST", "/v1/rules", "{}", 0, "-H 'Content-Type:'");   /* curl: drop the header */
    expect_error(&r, 415, 3, "Content-Type");
    reply_free(&r);
    r = http("POST", "/v1/rules", "{}", 0, "-H 'Content-Type: application/jsonx'");
    expect_error(&r, 415, 3, "Content-Type");
    reply_free(&r);
    r = http("POST", "/v1/rules", "{}", 0, "-H 'Content-Type: application/json; charset=utf-8'");
    EXPECT_STATUS(r, 200);
    reply_free(&r);
    r = http("POST", "/v1/rules", "{}", 0, "-H 'Content-Type: Application/JSON;charset=UTF-8'");
    EXPECT_STATUS(r, 200);
    reply_free(&r);
    /* No body, no Content-Type needed. */
    r = http("POST", "/v1/rules", NULL, 0, "-H 'Content-Type:'");
    EXPECT_STATUS(r, 200);
    reply_free(&r);
    /* A body where the route takes none. */
    r = http("GET", "/v1/rules/x", "{}", 0, NULL);
    expect_error(&r, 400, 3, NULL);
    reply_free(&r);
    /* Errors in the body field of a body:"custom" route name the field path. */
    r = http("POST", "/v1/rules/s:custom", "{\"kind\": 1}", 0, NULL);
    expect_error(&r, 400, 3, "custom.kind");
    reply_free(&r);
    /* The body of a body:"custom" route cannot reach other fields (regression: a hand-made
     * {"custom": <body>} wrapper let `{}, "body": "evil"` set body). */
    r = http("POST", "/v1/rules/s:custom", "{\"kind\":\"K\"}, \"body\": \"evil\"", 0, NULL);
    expect_error(&r, 400, 3, NULL);
    assert_null(strstr(r.body, "\"evil\""));
    reply_free(&r);
    /* Bad request metadata. */
    r = http("GET", "/v1/say/meta", NULL, 0, "-H 'Authorization: Basic dXNlcjpwdw=='");
    expect_error(&r, 401, 16, "authorization");
    reply_free(&r);
}

static void test_oversize(void **state)
{
    fixture *f = *state;
    size_t n = MAX_BODY + 10;
    char *big = malloc(4 * 1024 * 1024);
    memset(big, ' ', 4 * 1024 * 1024);
    big[0] = '{';
    big[n - 1] = '}';
    /* Just above max_body: buffered by h2o, refused by the server, whatever the framing. */
    static const char *framings[] = {NULL, "-H 'Transfer-Encoding: chunked'", "--http2-prior-knowledge"};
    for (size_t i = 0; i < 3; i++) {
        reply r = http("POST", "/v1/rules", big, n, framings[i]);
        expect_error(&r, 413, 8, NULL);
        assert_non_null(strstr(jstr(r.json, "message"), "65536"));
        reply_free(&r);
    }
    /* Far above: h2o refuses it from the Content-Length before reading it (the client waits for
     * 100-continue, so it never sends the 4 MiB); too_large_filter gives it the same shape. */
    reply r = http("POST", "/v1/rules", big, 4 * 1024 * 1024, "-H 'Expect: 100-continue'");
    expect_error(&r, 413, 8, NULL);
    reply_free(&r);
    /* Far above over HTTP/2: h2o 2.2.5 refuses the stream (no 413); the server must survive it,
     * and a client that vanishes mid-upload must not kill it with SIGPIPE either. */
    r = http("POST", "/v1/rules", big, 4 * 1024 * 1024, "--http2-prior-knowledge");
    assert_int_not_equal(r.status, 200);
    reply_free(&r);
    r = http("POST", "/v1/rules", big, 4 * 1024 * 1024, "-H 'Transfer-Encoding: chunked'");
    assert_int_not_equal(r.status, 200);
    reply_free(&r);
    r = http("GET", "/healthz", NULL, 0, NULL);
    EXPECT_STATUS(r, 200);
    reply_free(&r);
    /* Exactly at the limit is fine. */
    big[n - 1] = ' ';
    big[MAX_BODY - 1] = '}';
    r = http("POST", "/v1/rules", big, MAX_BODY, NULL);
    EXPECT_STATUS(r, 200);
    reply_free(&r);
    free(big);
    assert_int_equal(es_http_server_inflight(f->srv), 0);
}

static void test_404_405(void **state)
{
    (void)state;
    reply r = http("GET", "/nope", NULL, 0, NULL);
    expect_error(&r, 404, 5, NULL);
    reply_free(&r);
    r = http("GET", "/v1/rules/a/b", NULL, 0, NULL);
    expect_error(&r, 404, 5, NULL);
    reply_free(&r);
    r = http("DELETE", "/v1/rules", NULL, 0, NULL);
    expect_error(&r, 405, 12, NULL);
    assert_non_null(strstr(r.headers, "allow: POST"));
    reply_free(&r);
    r = http("PATCH", "/v1/rules/x", NULL, 0, NULL);
    expect_error(&r, 405, 12, NULL);
    assert_non_null(strstr(r.headers, "allow: GET, PUT"));
    reply_free(&r);
    r = http("GET", "/v1/rules/%zz", NULL, 0, NULL);
    expect_error(&r, 400, 3, NULL);
    reply_free(&r);
}

static void test_service_errors(void **state)
{
    (void)state;
    static const struct {
        const char *cmd;
        int http, code;
        const char *field, *message;
    } cases[] = {
        {"err:5:order_id:order%20gone", 404, 5, "order_id", "order_id: order gone"},
        {"err:3:items%5B1%5D.quantity:must%20be%20positive", 400, 3, "items[1].quantity",
         "items[1].quantity: must be positive"},
        {"err:10::version%20conflict", 409, 10, NULL, "version conflict"},
        {"err:9:status:order%20is%20cancelled", 400, 9, "status", "status: order is cancelled"},
        {"err:14::database%20down", 503, 14, NULL, "database down"},
        {"err:16::who%20are%20you", 401, 16, NULL, NULL},
        {"err:7::not%20yours", 403, 7, NULL, NULL},
        {"badtype", 500, 13, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[256];
        snprintf(path, sizeof path, "/v1/say/%s", cases[i].cmd);
        reply r = http("GET", path, NULL, 0, NULL);
        expect_error(&r, cases[i].http, cases[i].code, cases[i].field);
        if (cases[i].message)
            assert_string_equal(jstr(r.json, "message"), cases[i].message);
        if (!cases[i].field) {
            json_object *d;
            json_object_object_get_ex(r.json, "details", &d);
            assert_int_equal(json_object_array_length(d), 0);
        }
        reply_free(&r);
    }
}

static void test_metadata(void **state)
{
    (void)state;
    reply r = http("GET", "/v1/say/meta", NULL, 0,
                   "-H 'Authorization: Bearer tok-1' -H 'Idempotency-Key: k-1' -H 'X-Correlation-Id: c-1'");
    EXPECT_STATUS(r, 200);
    assert_string_equal(r.body, "\"auth=tok-1;idem=k-1;corr=c-1\"");
    reply_free(&r);
    r = http("GET", "/v1/say/meta", NULL, 0, "-H 'X-Request-Id: r-1'");
    EXPECT_STATUS(r, 200);
    assert_string_equal(r.body, "\"auth=-;idem=-;corr=r-1\"");
    reply_free(&r);
    r = http("POST", "/v1/rules", "{\"selector\":\"meta\"}", 0, "-H 'Idempotency-Key: k-2'");
    EXPECT_STATUS(r, 200);
    assert_string_equal(jstr(r.json, "body"), "auth=-;idem=k-2;corr=-");
    reply_free(&r);
}

static void test_completion_threads(void **state)
{
    fixture *f = *state;
    size_t before, after;
    echo_dispatcher_counts(&f->d, &before, NULL, NULL);
    /* inline: done() runs inside submit(), on the loop thread itself. */
    reply r = http("GET", "/v1/say/inline", NULL, 0, NULL);
    EXPECT_STATUS(r, 200);
    assert_string_equal(r.body, "\"inline\"");
    reply_free(&r);
    /* default: done() runs on the dispatcher's worker thread. */
    r = http("GET", "/v1/say/sleep:50", NULL, 0, NULL);
    EXPECT_STATUS(r, 200);
    assert_string_equal(r.body, "\"sleep:50\"");
    reply_free(&r);
    echo_dispatcher_counts(&f->d, &after, NULL, NULL);
    assert_int_equal(after - before, 2);
    assert_int_equal(es_http_server_inflight(f->srv), 0);
}

static void test_concurrent(void **state)
{
    fixture *f = *state;
    char cmd[8192];
    int port = es_http_server_port(f->srv);
    int n = snprintf(cmd, sizeof cmd, "curl -s --max-time 20 --parallel --parallel-max 32 -w '%%{http_code}\\n' -o /dev/null");
    for (int i = 0; i < 32; i++)
        n += snprintf(cmd + n, sizeof cmd - (size_t)n, " -o /dev/null 'http://127.0.0.1:%d/v1/say/sleep:400'", port);
    int64_t t0 = es_mono_us();
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char line[64];
    int ok = 0, total = 0;
    while (fgets(line, sizeof line, p)) {
        total++;
        ok += atoi(line) == 200;
    }
    pclose(p);
    double took = (double)(es_mono_us() - t0) / 1e6;
    assert_int_equal(total, 32);
    assert_int_equal(ok, 32);
    /* 32 calls of 400 ms each, one after the other, would take 12.8 s. The outstanding count
     * below shows the parallelism under sanitizers too, where time is not a measure. */
    fprintf(stderr, "32 parallel 400 ms requests took %.2f s\n", took);
    if (TIMING_ENFORCED && took > 4.0)
        fail_msg("32 parallel 400 ms requests took %.2f s", took);
    size_t max_outstanding;
    echo_dispatcher_counts(&f->d, NULL, NULL, &max_outstanding);
    assert_true(max_outstanding >= 16);
}

static void test_plain_handlers(void **state)
{
    (void)state;
    reply r = http("GET", "/healthz", NULL, 0, "-H 'X-Probe: p1'");
    EXPECT_STATUS(r, 200);
    assert_string_equal(r.body, "ok ready");
    assert_non_null(strstr(r.headers, "x-probe-echo: p1"));
    assert_non_null(strstr(r.headers, "content-type: text/plain; charset=utf-8"));
    reply_free(&r);
    r = http("GET", "/metrics?x=1", NULL, 0, NULL);
    EXPECT_STATUS(r, 200);
    assert_non_null(strstr(r.body, "query \"x=1\""));
    assert_non_null(strstr(r.headers, "content-type: text/plain; version=0.0.4"));
    reply_free(&r);
    r = http("GET", "/static/app.css", NULL, 0, NULL);
    EXPECT_STATUS(r, 200);
    assert_string_equal(r.body, "body{}");
    assert_non_null(strstr(r.headers, "cache-control: max-age=60"));
    reply_free(&r);
    r = http("GET", "/static/missing.js", NULL, 0, NULL);
    EXPECT_STATUS(r, 404);
    assert_string_equal(r.body, "no such asset");
    reply_free(&r);
    /* Method-bound: POST /healthz is no handler and no route. */
    r = http("POST", "/healthz", "{}", 0, NULL);
    expect_error(&r, 404, 5, NULL);
    reply_free(&r);
    /* Any-method handler with a body. */
    r = http("PUT", "/plain/echo", "abc", 0, "-H 'Content-Type: text/plain'");
    EXPECT_STATUS(r, 201);
    assert_string_equal(r.body, "PUT 3:abc");
    reply_free(&r);
}

/* The client gives up while its call sleeps in the dispatcher: the late done() must not touch
 * the dead request, and the server keeps serving. */
static void test_client_gone(void **state)
{
    fixture *f = *state;
    reply r = http("GET", "/v1/say/sleep:800", NULL, 0, "--max-time 0.2");
    assert_int_equal(r.status, 0);
    reply_free(&r);
    for (int i = 0; i < 300 && es_http_server_inflight(f->srv) > 0; i++)
        usleep(10 * 1000);
    assert_int_equal(es_http_server_inflight(f->srv), 0);
    r = http("GET", "/v1/say/after", NULL, 0, NULL);
    EXPECT_STATUS(r, 200);
    reply_free(&r);
}

static void test_bad_config(void **state)
{
    fixture *f = *state;
    es_error err = {0};
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", es_http_server_port(f->srv));
    es_http_config cfg = {.address = addr};
    es_http_server *s = es_http_server_new(&cfg, &f->d.base, &err);
    assert_non_null(s);
    assert_int_equal(es_http_server_start(s, &err), ES_UNAVAILABLE);
    assert_int_equal(es_http_server_port(s), 0);
    es_http_server_free(s);

    static const char *bad[] = {"localhost:80", "127.0.0.1", "127.0.0.1:99999", "127.0.0.1:x", ":80x", NULL};
    for (size_t i = 0; bad[i]; i++) {
        es_http_config c = {.address = bad[i]};
        s = es_http_server_new(&c, &f->d.base, &err);
        if (es_http_server_start(s, &err) != ES_INVALID_ARGUMENT)
            fail_msg("address %s accepted", bad[i]);
        es_http_server_free(s);
    }
    es_route_def broken = {"GET", "/v1/{", NULL, &echo_say_method};
    es_service_def svc = {.name = "x", .routes = &broken, .n_routes = 1};
    s = es_http_server_new(NULL, &f->d.base, &err);
    assert_int_equal(es_http_server_add_service(s, &svc, &err), ES_INVALID_ARGUMENT);
    es_http_server_free(s);
    es_dispatcher none = {0};
    assert_null(es_http_server_new(NULL, &none, &err));
    es_http_server_free(NULL);
}

/* Makes a self-signed localhost certificate (and a second, unrelated key) in dir. */
static void make_cert(const char *dir)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey rsa:2048 -nodes -keyout %s/key.pem -out %s/cert.pem -days 1 "
             "-subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 >/dev/null 2>&1 && "
             "openssl genrsa -out %s/other.pem 2048 >/dev/null 2>&1",
             dir, dir, dir);
    assert_int_equal(system(cmd), 0);
}

/* HTTPS from certificate files: HTTP/1.1 and HTTP/2 (ALPN), a bad key refused at start. */
static void test_tls(void **state)
{
    fixture *f = *state;
    char cert[128], key[128], other[128], cmd[1024];
    make_cert(f->dir);
    snprintf(cert, sizeof cert, "%s/cert.pem", f->dir);
    snprintf(key, sizeof key, "%s/key.pem", f->dir);
    snprintf(other, sizeof other, "%s/other.pem", f->dir);
    es_error err = {0};
    es_http_config cfg = {.address = "127.0.0.1:0", .threads = 1, .tls_cert_file = cert, .tls_key_file = key};
    es_http_server *s = es_http_server_new(&cfg, &f->d.base, &err);
    assert_int_equal(es_http_server_add_service(s, &echo_service, &err), ES_OK);
    assert_int_equal(es_http_server_start(s, &err), ES_OK);
    int port = es_http_server_port(s);
    static const char *versions[] = {"--http1.1", "--http2"};
    for (int i = 0; i < 2; i++) {
        snprintf(cmd, sizeof cmd,
                 "curl -s --max-time 10 %s --cacert %s --resolve localhost:%d:127.0.0.1 -w ' %%{http_version} %%{http_code}' "
                 "'https://localhost:%d/v1/say/tls'",
                 versions[i], cert, port, port);
        FILE *p = popen(cmd, "r");
        char out[128] = "";
        size_t n = fread(out, 1, sizeof out - 1, p);
        out[n] = '\0';
        pclose(p);
        assert_string_equal(out, i == 0 ? "\"tls\" 1.1 200" : "\"tls\" 2 200");
    }
    /* Plain HTTP to the TLS port is not served. */
    snprintf(cmd, sizeof cmd, "curl -s --max-time 5 -o /dev/null -w '%%{http_code}' 'http://127.0.0.1:%d/v1/say/x' | grep -q 200",
             port);
    assert_int_not_equal(system(cmd), 0);
    es_http_server_free(s);

    es_http_config bad = {.address = "127.0.0.1:0", .tls_cert_file = cert, .tls_key_file = other};
    s = es_http_server_new(&bad, &f->d.base, &err);
    assert_int_equal(es_http_server_start(s, &err), ES_INVALID_ARGUMENT);
    assert_string_equal(err.field, other);
    es_http_server_free(s);
    es_http_config missing = {.address = "127.0.0.1:0", .tls_cert_file = "/nonexistent.pem", .tls_key_file = key};
    s = es_http_server_new(&missing, &f->d.base, &err);
    assert_int_equal(es_http_server_start(s, &err), ES_INVALID_ARGUMENT);
    es_http_server_free(s);
    es_http_config half = {.tls_cert_file = cert};
    assert_null(es_http_server_new(&half, &f->d.base, &err));
}

/* stop() while a request sleeps in the dispatcher: the client still gets its answer. */
/* A raw TCP connection from 127.0.0.1 to the test server; -1 on failure. */
static int tcp_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

static int wait_connections(es_http_server *s, size_t want)
{
    for (int i = 0; i < 500; i++) {
        if (es_http_server_connections(s) == want)
            return 1;
        usleep(10 * 1000);
    }
    return 0;
}

/* One address may hold max_connections_per_client connections: the next is refused at accept
 * and counted, another address still gets in, and the address gets in again once it closes. */
static void test_per_client_limit(void **state)
{
    (void)state;
    fixture *saved = g;
    g = start_server_per_client(2, 3);
    assert_non_null(g);
    int port = es_http_server_port(g->srv), held[3];
    for (int i = 0; i < 3; i++)
        assert_true((held[i] = tcp_connect(port)) >= 0);
    assert_true(wait_connections(g->srv, 3));
    int extra = tcp_connect(port);
    assert_true(extra >= 0);
    /* Refused: answered 503 and closed without counting as open, even when the request arrives
     * after the answer was written. */
    usleep(100 * 1000);
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(send(extra, req, sizeof req - 1, MSG_NOSIGNAL), (ssize_t)(sizeof req - 1));
    struct timeval tv = {.tv_sec = 5};
    setsockopt(extra, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[512];
    ssize_t n, total = 0;
    while ((n = recv(extra, buf + total, sizeof buf - 1 - (size_t)total, 0)) > 0)
        total += n;
    assert_int_equal(n, 0);
    buf[total] = '\0';
    assert_non_null(strstr(buf, "503 Service Unavailable"));
    assert_non_null(strstr(buf, "too many connections from this address"));
    close(extra);
    assert_int_equal(es_http_server_connections(g->srv), 3);
    /* Another loopback address is another client. */
    char cmd[256];
    snprintf(cmd, sizeof cmd, "curl -s --max-time 10 --interface 127.0.0.2 -o /dev/null -w '%%{http_code}' "
             "'http://127.0.0.1:%d/healthz'", port);
    FILE *p = popen(cmd, "r");
    char code[16] = "";
    assert_non_null(fgets(code, sizeof code, p));
    pclose(p);
    assert_string_equal(code, "200");
    es_buf m;
    es_buf_init(&m);
    es_http_server_metrics(g->srv, &m);
    es_buf_putc(&m, '\0');
    assert_non_null(strstr(m.data, "es_http_connections_closed_total{reason=\"client_connection_limit\"} 1\n"));
    assert_non_null(strstr(m.data, "es_http_connections_per_client_max 3\n"));
    assert_non_null(strstr(m.data, "es_http_refused_total{route=\"client_connection_limit\",status=\"503\"} 1\n"));
    es_buf_free(&m);
    for (int i = 0; i < 3; i++)
        close(held[i]);
    assert_true(wait_connections(g->srv, 0));
    reply r = http("GET", "/healthz", NULL, 0, NULL);
    EXPECT_STATUS(r, 200);
    reply_free(&r);
    stop_server(g);
    g = saved;
}

static void test_graceful_stop(void **state)
{
    (void)state;
    fixture *saved = g;
    g = start_server(1);
    assert_non_null(g);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "curl -s --max-time 10 -w ' %%{http_code}' 'http://127.0.0.1:%d/v1/say/sleep:600'",
             es_http_server_port(g->srv));
    FILE *p = popen(cmd, "r");
    /* And an idle keep-alive connection, which stop must close rather than wait out. */
    char idle[512];
    snprintf(idle, sizeof idle,
             "/usr/bin/python3 -c \"import http.client,time; c=http.client.HTTPConnection('127.0.0.1',%d); "
             "c.request('GET','/healthz'); r=c.getresponse(); r.read(); time.sleep(8)\" &",
             es_http_server_port(g->srv));
    assert_int_equal(system(idle), 0);
    usleep(300 * 1000);
    for (int i = 0; i < 1000 && es_http_server_inflight(g->srv) == 0; i++)
        usleep(10 * 1000);
    assert_int_equal(es_http_server_inflight(g->srv), 1);
    int64_t t0 = es_mono_us();
    es_http_server_stop(g->srv);
    double took = (double)(es_mono_us() - t0) / 1e6;
    assert_int_equal(es_http_server_inflight(g->srv), 0);
    char out[256] = "";
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    pclose(p);
    assert_string_equal(out, "\"sleep:600\" 200");
    /* Answer sent, connection closed: stop does not wait for the 2 s grace. */
    fprintf(stderr, "stop took %.2f s\n", took);
    if (TIMING_ENFORCED && took > 1.5)
        fail_msg("stop took %.2f s", took);
    /* New connections are refused after stop. */
    snprintf(cmd, sizeof cmd, "curl -s --max-time 2 -o /dev/null 'http://127.0.0.1:%d/healthz'",
             es_http_server_port(g->srv));
    assert_int_not_equal(system(cmd), 0);
    es_http_server_stop(g->srv);
    stop_server(g);
    g = saved;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routes_and_vars),   cmocka_unit_test(test_query_params),
        cmocka_unit_test(test_bad_bodies),        cmocka_unit_test(test_oversize),
        cmocka_unit_test(test_404_405),           cmocka_unit_test(test_service_errors),
        cmocka_unit_test(test_metadata),          cmocka_unit_test(test_completion_threads),
        cmocka_unit_test(test_concurrent),        cmocka_unit_test(test_plain_handlers),
        cmocka_unit_test(test_client_gone),       cmocka_unit_test(test_bad_config),
        cmocka_unit_test(test_tls),               cmocka_unit_test(test_graceful_stop),
        cmocka_unit_test(test_per_client_limit),
    };
    return cmocka_run_group_tests_name("http_server", tests, group_setup, group_teardown);
}

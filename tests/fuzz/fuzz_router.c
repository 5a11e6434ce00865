/* libFuzzer target: the HTTP route matcher and path/query parsing (es/router.h), and the
 * request message the HTTP server builds from a match (path variables and query parameters set
 * with es_json_set_from_string, runtime/net/http_server.c build_request).
 *
 * Input: one selector byte, then the request target (origin form, "/v1/orders/x?limit=3").
 *   bits 0-2  HTTP method: GET POST PUT PATCH DELETE HEAD OPTIONS, or 7: the target's bytes up
 *             to the first space are the method (fuzzed method names)
 *   bit 3     match against a second table of templates using the rest of the grammar
 *             ("**", multi-segment variables, dotted field paths, verbs) instead of the orders
 *             routes; no request message is built then
 *   bit 4,5   es_router_unescape of the whole target with plus_is_space / keep_slash
 * Checked: the match's status agrees with the return code, every returned string is readable,
 * the matched route accepts the method, 405 lists allowed methods, limits hold. */
#include "fuzz_common.h"
#include "es/router.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Templates beyond the orders routes. Their method is never called; it only has to exist. */
static const es_method_def extra_method = {.name = "Extra", .grpc_path = "/fuzz/Extra"};
static const es_route_def extra_routes[] = {
    {"GET", "/v1/{name=shelves/*/books/*}", NULL, &extra_method},
    {"GET", "/files/{path=**}", NULL, &extra_method},
    {"GET", "/v1/cities/{address.city}/orders", NULL, &extra_method},
    {"POST", "/v1/{parent=projects/*}/things:batchGet", "*", &extra_method},
    {"DELETE", "/v1/things/{id}:purge", NULL, &extra_method},
    {"PATCH", "/v1/*/x/{a.b.c}/**", "*", &extra_method},
    {"GET", "/v1/orders/search", NULL, &extra_method},
};

static es_router *orders_router, *extra_router;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    es_error err = {0};
    const es_service_def *svc = &orders_v1_service_OrderService;
    orders_router = es_router_new();
    FUZZ_CHECK(es_router_add(orders_router, svc->routes, svc->n_routes, &err) == ES_OK);
    extra_router = es_router_new();
    FUZZ_CHECK(es_router_add(extra_router, extra_routes, sizeof extra_routes / sizeof *extra_routes, &err) ==
               ES_OK);
    (void)fuzz_registry();
    return 0;
}

/* What build_request does for a matched route without a body. */
static void build_request(const es_route_match *m, es_arena *arena)
{
    const es_method_def *method = m->route->method;
    ProtobufCMessage *msg = fuzz_message_new(method->input, arena);
    es_error err = {0};
    int rc;
    for (size_t i = 0; i < m->n_vars; i++) {
        rc = es_json_set_from_string(fuzz_registry(), msg, m->vars[i].name, m->vars[i].value, arena, &err);
        FUZZ_CHECK(rc == ES_OK || rc == ES_INVALID_ARGUMENT);
        if (rc != ES_OK) {
            fuzz_check_error(&err, rc);
            return;
        }
    }
    for (size_t i = 0; i < m->n_params; i++) {
        rc = es_json_set_from_string(fuzz_registry(), msg, m->params[i].name, m->params[i].value, arena, &err);
        FUZZ_CHECK(rc == ES_OK || rc == ES_INVALID_ARGUMENT);
        if (rc != ES_OK) {
            fuzz_check_error(&err, rc);
            return;
        }
    }
    fuzz_validate(method, msg);
    /* es_json_set_from_string checks what the JSON decoder checks (UTF-8, ranges), so whatever
     * it accepted has a JSON form. */
    fuzz_json_roundtrip(msg, &(es_json_options){0}, 1);
}

static void check_kvs(const es_route_kv *kv, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        FUZZ_CHECK(kv[i].name != NULL && kv[i].value != NULL);
        (void)strlen(kv[i].name);   /* ASan: must be NUL-terminated inside their blocks */
        (void)strlen(kv[i].value);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"};
    if (size < 1)
        return 0;
    uint8_t sel = data[0];
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    char method[64];
    if ((sel & 7) == 7) {
        const uint8_t *sp = memchr(p, ' ', n);
        size_t ml = sp ? (size_t)(sp - p) : 0;
        if (ml >= sizeof method)
            ml = sizeof method - 1;
        memcpy(method, p, ml);
        method[ml] = '\0';
        if (sp) {
            n -= (size_t)(sp + 1 - p);
            p = sp + 1;
        }
    } else {
        snprintf(method, sizeof method, "%s", methods[sel & 7]);
    }
    const es_router *r = (sel & 8) ? extra_router : orders_router;
    /* Exactly the target's bytes, not NUL-terminated: the matcher must stay inside them. */
    char *target = malloc(n ? n : 1);
    memcpy(target, p, n);

    es_arena arena;
    es_arena_init(&arena);
    es_route_match m;
    int rc = es_router_match(r, method, target, n, &arena, &m);
    switch (rc) {
    case ES_OK:
        FUZZ_CHECK(m.http_status == 200 && m.route != NULL);
        FUZZ_CHECK(strcmp(m.route->http_method, method) == 0);
        FUZZ_CHECK(m.n_params <= ES_ROUTER_MAX_PARAMS);
        check_kvs(m.vars, m.n_vars);
        check_kvs(m.params, m.n_params);
        if (r == orders_router)
            build_request(&m, &arena);
        break;
    case ES_NOT_FOUND:
        FUZZ_CHECK(m.route == NULL);
        FUZZ_CHECK(m.http_status == 404 || m.http_status == 405);
        FUZZ_CHECK(memchr(m.allow, '\0', sizeof m.allow) != NULL);
        FUZZ_CHECK((m.http_status == 405) == (m.allow[0] != '\0'));
        break;
    case ES_INVALID_ARGUMENT:
        FUZZ_CHECK(m.http_status == 400 && m.route == NULL);
        fuzz_check_error(&m.err, rc);
        break;
    default:
        FUZZ_CHECK(!"unexpected return code");
    }

    /* The query parser and the unescaper on their own, over the whole target. */
    es_route_kv *params = NULL;
    size_t n_params = 0;
    es_error err = {0};
    rc = es_router_parse_query(target, n, &arena, &params, &n_params, &err);
    FUZZ_CHECK(rc == ES_OK || rc == ES_INVALID_ARGUMENT);
    if (rc == ES_OK) {
        FUZZ_CHECK(n_params <= ES_ROUTER_MAX_PARAMS);
        check_kvs(params, n_params);
    } else {
        fuzz_check_error(&err, rc);
    }
    char *u = es_router_unescape(target, n, (sel & 0x10) != 0, (sel & 0x20) != 0, &arena);
    if (u)
        FUZZ_CHECK(strlen(u) <= n);

    es_arena_free(&arena);
    free(target);
    return 0;
}

/* Serves the embedded web assets (the order timeline and the fleet dashboard) and the OpenAPI
 * document. The timeline page talks to the same JSON API
 * as every other client (GET /v1/orders..., with the caller's bearer token when auth is on), so
 * these handlers only hand out static bytes; they are public, like /healthz. */
#include "web.h"

#include <string.h>

#include "es/arena.h"
#include "es/json.h"
#include "google/protobuf/struct.pb-c.h"

/* Generated at build time from app/web/ by scripts/embed.cmake (NUL-terminated text). */
extern const char orders_web_index_html[];
extern const char orders_web_app_js[];
extern const char orders_web_style_css[];
extern const char orders_web_fleet_html[];
extern const char orders_web_fleet_js[];

typedef struct asset {
    const char *path;
    const char *content_type;
    const char *data;
    int page;                  /* an HTML page: gets the Content-Security-Policy */
} asset;

/* The page loads nothing from elsewhere (no CDN, no fonts); the policy makes the browser hold
 * it to that. */
static const char csp[] = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                          "img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

static const asset assets[] = {
    {"/", "text/html; charset=utf-8", orders_web_index_html, 1},
    {"/index.html", "text/html; charset=utf-8", orders_web_index_html, 1},
    {"/static/app.js", "text/javascript; charset=utf-8", orders_web_app_js, 0},
    {"/static/style.css", "text/css; charset=utf-8", orders_web_style_css, 0},
    /* The fleet dashboard: charts drawn from GET /fleet/metrics (es/fleet.h; an admin token). */
    {"/fleet", "text/html; charset=utf-8", orders_web_fleet_html, 1},
    {"/static/fleet.js", "text/javascript; charset=utf-8", orders_web_fleet_js, 0},
};

static void serve_asset(void *data, const es_http_request *req, es_http_response *res)
{
    (void)req;
    const asset *a = data;
    res->content_type = a->content_type;
    es_buf_append(&res->body, a->data, strlen(a->data));
    /* Revalidate on every load: a new orderd build must not run against an old page. */
    es_http_response_add_header(res, "Cache-Control", "no-cache");
    es_http_response_add_header(res, "X-Content-Type-Options", "nosniff");
    if (a->page) {
        es_http_response_add_header(res, "Content-Security-Policy", csp);
        es_http_response_add_header(res, "Referrer-Policy", "no-referrer");
    }
}

/* ---- /openapi.json: one document for every served package ---- */

static Google__Protobuf__Value *member(const Google__Protobuf__Struct *s, const char *key)
{
    for (size_t i = 0; s && i < s->n_fields; i++)
        if (strcmp(s->fields[i]->key, key) == 0)
            return s->fields[i]->value;
    return NULL;
}

static Google__Protobuf__Struct *struct_member(const Google__Protobuf__Struct *s, const char *key)
{
    Google__Protobuf__Value *v = member(s, key);
    return v && v->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE ? v->struct_value : NULL;
}

/* Adds from's members that into lacks (a path or schema both documents name stays into's). */
static void add_missing(es_arena *a, Google__Protobuf__Struct *into, const Google__Protobuf__Struct *from)
{
    if (!into || !from)
        return;
    Google__Protobuf__Struct__FieldsEntry **f = es_arena_alloc(a, (into->n_fields + from->n_fields) * sizeof *f);
    memcpy(f, into->fields, into->n_fields * sizeof *f);
    size_t n = into->n_fields;
    for (size_t i = 0; i < from->n_fields; i++)
        if (!member(into, from->fields[i]->key))
            f[n++] = from->fields[i];
    into->fields = f;
    into->n_fields = n;
}

static void append_list(es_arena *a, Google__Protobuf__Value *into, const Google__Protobuf__Value *from)
{
    if (!into || !from || into->kind_case != GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE ||
        from->kind_case != GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE)
        return;
    Google__Protobuf__ListValue *l = into->list_value, *m = from->list_value;
    Google__Protobuf__Value **v = es_arena_alloc(a, (l->n_values + m->n_values) * sizeof *v);
    memcpy(v, l->values, l->n_values * sizeof *v);
    memcpy(v + l->n_values, m->values, m->n_values * sizeof *v);
    l->values = v;
    l->n_values += m->n_values;
}

/* The packages' documents as one: the first's info, servers and security; every package's paths,
 * tags and components. NULL (err set) when a generated document does not parse. */
static char *merge_openapi(const es_package_list *l, es_error *err)
{
    es_arena a;
    es_arena_init(&a);
    Google__Protobuf__Struct *doc = NULL;
    char *out = NULL;
    for (size_t i = 0; i < l->n; i++) {
        const char *json = l->schemas[i]->openapi_json;
        ProtobufCMessage *m = NULL;
        if (!json)
            continue;
        if (es_json_decode(NULL, &google__protobuf__struct__descriptor, json, strlen(json), NULL, &a, &m, err) != ES_OK)
            goto done;
        Google__Protobuf__Struct *d = (Google__Protobuf__Struct *)m;
        if (!doc) {
            doc = d;
            continue;
        }
        add_missing(&a, struct_member(doc, "paths"), struct_member(d, "paths"));
        append_list(&a, member(doc, "tags"), member(d, "tags"));
        Google__Protobuf__Struct *into = struct_member(doc, "components"), *from = struct_member(d, "components");
        for (size_t k = 0; from && k < from->n_fields; k++) {
            if (!member(into, from->fields[k]->key))
                add_missing(&a, into, &(Google__Protobuf__Struct){.n_fields = 1, .fields = &from->fields[k]});
            else
                add_missing(&a, struct_member(into, from->fields[k]->key), struct_member(from, from->fields[k]->key));
        }
    }
    if (doc) {
        Google__Protobuf__Value *title = member(struct_member(doc, "info"), "title");
        if (title && title->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE)
            title->string_value = "orderd";
        es_buf b;
        es_buf_init(&b);
        if (es_json_encode(NULL, &doc->base, NULL, &b, err) == ES_OK) {
            es_buf_puts(&b, "\n");
            out = strndup(b.data, b.len);
        }
        es_buf_free(&b);
    }
done:
    es_arena_free(&a);
    return out;
}

/* The document served: a package's own, byte for byte, when one package has routes; else their
 * merge, made once at registration (lives as long as the process). */
static const char *openapi_doc;

static void serve_openapi(void *data, const es_http_request *req, es_http_response *res)
{
    (void)data;
    (void)req;
    res->content_type = "application/json";
    es_buf_append(&res->body, openapi_doc, strlen(openapi_doc));
    es_http_response_add_header(res, "Cache-Control", "no-cache");
    es_http_response_add_header(res, "Access-Control-Allow-Origin", "*");
}

int orders_web_register(es_http_server *s, const es_package_list *packages)
{
    int rc;
    size_t documented = 0;
    for (size_t i = 0; i < packages->n; i++)
        if (packages->schemas[i]->openapi_json) {
            openapi_doc = packages->schemas[i]->openapi_json;
            documented++;
        }
    if (documented > 1) {
        es_error err = {0};
        if (!(openapi_doc = merge_openapi(packages, &err)))
            return err.code ? err.code : ES_INTERNAL;
    }
    if (!openapi_doc)
        openapi_doc = "{}\n";
    for (size_t i = 0; i < sizeof assets / sizeof assets[0]; i++)
        if ((rc = es_http_server_add_handler(s, "GET", assets[i].path, ES_HTTP_EXACT, serve_asset,
                                             (void *)&assets[i])) != 0)
            return rc;
    return es_http_server_add_handler(s, "GET", "/openapi.json", ES_HTTP_EXACT, serve_openapi, NULL);
}

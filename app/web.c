/* Serves the embedded web assets (the order timeline and the fleet dashboard) and the OpenAPI
 * document. The timeline page talks to the same JSON API
 * as every other client (GET /v1/orders..., with the caller's bearer token when auth is on), so
 * these handlers only hand out static bytes; they are public, like /healthz. */
#include "web.h"

#include <string.h>

#include "orders/v1/orders_v1.openapi.h"

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

static void serve_openapi(void *data, const es_http_request *req, es_http_response *res)
{
    (void)data;
    (void)req;
    res->content_type = "application/json";
    es_buf_append(&res->body, orders_v1_openapi_json, orders_v1_openapi_json_len);
    es_http_response_add_header(res, "Cache-Control", "no-cache");
    es_http_response_add_header(res, "Access-Control-Allow-Origin", "*");
}

int orders_web_register(es_http_server *s)
{
    int rc;
    for (size_t i = 0; i < sizeof assets / sizeof assets[0]; i++)
        if ((rc = es_http_server_add_handler(s, "GET", assets[i].path, ES_HTTP_EXACT, serve_asset,
                                             (void *)&assets[i])) != 0)
            return rc;
    return es_http_server_add_handler(s, "GET", "/openapi.json", ES_HTTP_EXACT, serve_openapi, NULL);
}

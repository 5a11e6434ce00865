/* The HTTP route matcher: google.api.http path templates (es_route_def) compiled into a table
 * that maps (HTTP method, request target) to a route, its path variables and the query
 * parameters, all percent-decoded. Pure functions: no I/O, no h2o, no globals, so the same code
 * serves the HTTP server and a fuzzer.
 *
 * Template grammar (google/api/http.proto):
 *   Template = "/" Segments [ ":" Verb ] ;   Segments = Segment { "/" Segment } ;
 *   Segment  = "*" | "**" | LITERAL | Variable ;
 *   Variable = "{" FieldPath [ "=" Segments ] "}" ;   FieldPath = IDENT { "." IDENT } ;
 * "{x}" is "{x=*}" (one segment); "{name=shelves/ *}" (no space) captures several segments joined by "/";
 * "**" (only last) matches any number of segments. A literal beats a variable when two
 * templates match the same path. */
#ifndef ES_ROUTER_H
#define ES_ROUTER_H

#include <stddef.h>
#include "es/arena.h"
#include "es/schema.h"
#include "es/status.h"

typedef struct es_router es_router;

/* A decoded name/value pair (path variable or query parameter); strings are NUL-terminated and
 * owned by the arena passed to es_router_match. */
typedef struct es_route_kv {
    const char *name;
    const char *value;
} es_route_kv;

/* The outcome of one match. */
typedef struct es_route_match {
    int http_status;             /* 200 matched, 400 malformed target, 404 no path, 405 wrong method */
    const es_route_def *route;   /* the route when http_status == 200, else NULL */
    es_route_kv *vars;           /* path variables in template order (name = field path) */
    size_t n_vars;
    es_route_kv *params;         /* query parameters in request order, repeats kept */
    size_t n_params;
    char allow[96];              /* 405: the methods the path accepts, "GET, POST" */
    es_error err;                /* 400: what is malformed (err.field names the parameter) */
} es_route_match;

/* Limits a request target may not exceed (answered 400; they bound the work per request). */
#define ES_ROUTER_MAX_SEGMENTS 64
#define ES_ROUTER_MAX_PARAMS 64

/* Returns a new empty router. Free with es_router_free. */
es_router *es_router_new(void);
/* Frees the router and its compiled templates (not the es_route_def it points to). NULL is ok. */
void es_router_free(es_router *r);

/* Compiles routes[0..n) and adds them to the table. The route definitions are borrowed: they
 * must outlive the router (generated tables are static). Returns ES_OK, or ES_INVALID_ARGUMENT
 * with err naming the offending template (nothing is added then). */
int es_router_add(es_router *r, const es_route_def *routes, size_t n, es_error *err);

/* Number of routes in the table. */
size_t es_router_count(const es_router *r);

/* Matches method (e.g. "GET", case-sensitive) and target[0..len) (an origin-form request target,
 * "/v1/orders/42?limit=10"; it need not be NUL-terminated) against the table. Fills *out (always,
 * every string allocated from arena) and returns ES_OK for a match, ES_NOT_FOUND for 404 and 405
 * (out->http_status tells which, out->allow lists the methods for 405) and ES_INVALID_ARGUMENT
 * for 400 (bad percent-encoding, an encoded NUL, too many segments or parameters). Path
 * variables are fully percent-decoded, except that "%2F" stays encoded inside a variable that
 * spans several segments; query keys and values decode "%XX" and "+" (a space). */
int es_router_match(const es_router *r, const char *method, const char *target, size_t len,
                    es_arena *arena, es_route_match *out);

/* Parses a query string q[0..len) ("a=1&b=x+y&c"; no leading '?') into name/value pairs from
 * arena, appending to *params / *n_params (which may start NULL / 0). Empty pieces are skipped,
 * a piece without '=' has the value "". Returns ES_OK, or ES_INVALID_ARGUMENT with err naming
 * the parameter (malformed escape, encoded NUL, more than ES_ROUTER_MAX_PARAMS pairs). */
int es_router_parse_query(const char *q, size_t len, es_arena *arena, es_route_kv **params,
                          size_t *n_params, es_error *err);

/* Percent-decodes s[0..len) into a new arena string (plus_is_space: '+' becomes ' ', for query
 * strings). keep_slash leaves "%2F" encoded. Returns NULL on a malformed escape or an encoded
 * NUL. */
char *es_router_unescape(const char *s, size_t len, int plus_is_space, int keep_slash,
                         es_arena *arena);

#endif

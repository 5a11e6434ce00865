/* The generated packages a binary serves, and the start-up steps each of them takes, so that an
 * application walks a list instead of naming a package's tables (see docs/ARCHITECTURE.md, "The
 * start-up walk"). The build writes the list: cmake's es_packages_library(<target> <base>...)
 * compiles a packages.c defining es_linked_packages for the binaries that link <target> (orderd
 * links orders.v1; a test binary links orders.v1 and a fixture package). */
#ifndef ES_PACKAGES_H
#define ES_PACKAGES_H

#include <stddef.h>

#include "es/grpc_server.h"
#include "es/http_server.h"
#include "es/json.h"
#include "es/migrate.h"
#include "es/pg_pool.h"
#include "es/pipeline.h"
#include "es/schema.h"
#include "es/store.h"

/* What a package's query context may be made from, at start. */
typedef struct es_package_host {
    es_pipeline *pipeline;           /* commands, stream loads and reads (borrowed) */
    es_pg_pool *pool;                /* the primary (borrowed) */
    es_pg_pool *read_pool;           /* a replica serving queries, or NULL (borrowed) */
} es_package_host;

/* Makes a package's query context (es_query_ctx.app of its services' queries), called once at
 * start; it lives as long as the process. The package's hand-written rules define it and the
 * build names it (es_packages_library(... QUERY_APP <base>=<function>)). */
typedef void *(*es_query_app_fn)(const es_package_host *host);

typedef struct es_package_list {
    const es_schema *const *schemas;
    const es_query_app_fn *query_apps;   /* parallel to schemas; NULL entries: the application's default */
    size_t n;
} es_package_list;

/* Defined by the packages.c of the binary's es_packages_library (cmake/generated.cmake). */
extern const es_package_list es_linked_packages;

/* The migration of a package's projection DDL: recorded in es_migrations as "0100_<base>"
 * ("0100_orders_v1" for orders.v1, the name it always had). name (at least 64 bytes) backs
 * out->name and must outlive it. */
void es_package_migration(const es_schema *s, char *name, size_t cap, es_migration *out);

/* Applies a package's projection migration, then its generated forward steps (es_migrate_steps
 * with the package's baseline and descriptor_set_hash). */
int es_package_migrate(es_pg_pool *pool, const es_schema *s, es_error *err);

/* The event store's own migration, then, per package, its projections' shape check
 * (es_projection_shape_prepare): a package whose table has another shape is held back
 * (held[i] = 1, held has l->n entries) until its shape is ensured, every other package is
 * migrated (es_package_migrate). */
int es_packages_migrate(es_pg_pool *pool, const es_package_list *l, int *held, es_error *err);

/* Adds every package's schema to the JSON registry (type names for Any, json names). */
void es_packages_add_json(es_json_registry *json, const es_package_list *l);

/* Records every package's descriptor set in es_schemas (one row per package and hash). */
int es_packages_register_schemas(es_store *store, const es_package_list *l, es_error *err);

/* Every package's services, in list order, into out (at most cap); returns how many exist. */
size_t es_packages_services(const es_package_list *l, const es_service_def **out, size_t cap);

/* The query context of each service es_packages_services lists, in the same order, into out (at
 * most cap): its package's (query_apps entry, called once per package) or fallback. Returns how
 * many services exist. */
size_t es_packages_query_apps(const es_package_list *l, const es_package_host *host, void *fallback, void **out,
                              size_t cap);

/* Every package's projections, in list order, into out (at most cap); returns how many exist.
 * owner (may be NULL) receives each projection's package. */
size_t es_packages_projections(const es_package_list *l, const es_projection_def **out, const es_schema **owner,
                               size_t cap);

/* The projection named table in any package, or NULL. */
const es_projection_def *es_packages_find_projection(const es_package_list *l, const char *table);

/* Serves every package's services on the transports given (either may be NULL): their methods
 * and routes, and on gRPC each package's descriptor set for reflection. */
int es_packages_serve(const es_package_list *l, es_grpc_server *grpc, es_http_server *http, es_error *err);

#endif

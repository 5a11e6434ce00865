/* The start-up walk over a binary's generated packages (es/packages.h). */
#include "es/packages.h"

#include <stdio.h>
#include <string.h>

#include "es/projection_shape.h"

void es_package_migration(const es_schema *s, char *name, size_t cap, es_migration *out)
{
    int n = snprintf(name, cap, "0100_%s", s->package);
    for (int i = 5; i < n && (size_t)i < cap; i++)
        if (name[i] == '.')
            name[i] = '_';
    out->name = name;
    out->sql = s->migrations_sql;
}

int es_package_migrate(es_pg_pool *pool, const es_schema *s, es_error *err)
{
    char name[128];
    es_migration m;
    es_package_migration(s, name, sizeof name, &m);
    int rc = es_migrate(pool, &m, 1, NULL, err);
    if (rc == ES_OK)
        rc = es_migrate_steps(pool, s->package, s->migrations_baseline, s->descriptor_set_hash, s->migration_steps,
                              s->n_migration_steps, NULL, err);
    return rc;
}

int es_packages_migrate(es_pg_pool *pool, const es_package_list *l, int *held, es_error *err)
{
    static const es_migration event_store = {ES_EVENT_STORE_MIGRATION, es_event_store_sql};
    int rc = es_migrate(pool, &event_store, 1, NULL, err);
    for (size_t i = 0; i < l->n && rc == ES_OK; i++) {
        const es_schema *s = l->schemas[i];
        held[i] = 0;
        for (size_t k = 0; k < s->n_projections && rc == ES_OK && !held[i]; k++)
            rc = es_projection_shape_prepare(pool, s->projections[k], &held[i], err);
        if (rc == ES_OK && !held[i])
            rc = es_package_migrate(pool, s, err);
    }
    return rc;
}

void es_packages_add_json(es_json_registry *json, const es_package_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        es_json_registry_add_schema(json, l->schemas[i]);
}

int es_packages_register_schemas(es_store *store, const es_package_list *l, es_error *err)
{
    for (size_t i = 0; i < l->n; i++) {
        int rc = es_store_register_schema(store, l->schemas[i], err);
        if (rc != ES_OK)
            return rc;
    }
    return ES_OK;
}

size_t es_packages_services(const es_package_list *l, const es_service_def **out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < l->n; i++)
        for (size_t k = 0; k < l->schemas[i]->n_services; k++, n++)
            if (n < cap)
                out[n] = l->schemas[i]->services[k];
    return n;
}

size_t es_packages_query_apps(const es_package_list *l, const es_package_host *host, void *fallback, void **out,
                              size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < l->n; i++) {
        const es_schema *s = l->schemas[i];
        void *app = fallback;
        if (s->n_services && l->query_apps && l->query_apps[i])
            app = l->query_apps[i](host);
        for (size_t k = 0; k < s->n_services; k++, n++)
            if (n < cap)
                out[n] = app;
    }
    return n;
}

size_t es_packages_projections(const es_package_list *l, const es_projection_def **out, const es_schema **owner,
                               size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < l->n; i++)
        for (size_t k = 0; k < l->schemas[i]->n_projections; k++, n++)
            if (n < cap) {
                out[n] = l->schemas[i]->projections[k];
                if (owner)
                    owner[n] = l->schemas[i];
            }
    return n;
}

const es_projection_def *es_packages_find_projection(const es_package_list *l, const char *table)
{
    for (size_t i = 0; i < l->n; i++)
        for (size_t k = 0; k < l->schemas[i]->n_projections; k++)
            if (strcmp(l->schemas[i]->projections[k]->name, table) == 0)
                return l->schemas[i]->projections[k];
    return NULL;
}

int es_packages_serve(const es_package_list *l, es_grpc_server *grpc, es_http_server *http, es_error *err)
{
    for (size_t i = 0; i < l->n; i++) {
        const es_schema *s = l->schemas[i];
        for (size_t k = 0; k < s->n_services; k++) {
            if (grpc && es_grpc_server_add_service(grpc, s->services[k], err) != ES_OK)
                return err->code;
            if (http && es_http_server_add_service(http, s->services[k], err) != ES_OK)
                return err->code;
        }
        if (grpc && s->n_services &&
            es_grpc_server_add_descriptor_set(grpc, s->descriptor_set, s->descriptor_set_len, err) != ES_OK)
            return err->code;
    }
    return ES_OK;
}

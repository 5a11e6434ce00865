/* orderctl migrate and schema check: the database schema this binary needs and the schema
 * registry it writes with. */
#include <string.h>

#include "es/migrate.h"
#include "es/projection_shape.h"
#include "es/json_string.h"
#include "es/timefmt.h"
#include "orderctl.h"

int ctl_migrate(ctl *c, int argc, char **argv)
{
    (void)argv;
    if (argc != 1) {
        fprintf(stderr, "usage: orderctl migrate\n");
        return CTL_ERROR;
    }
    /* The same list, names and order as orderd applies at start-up: the event store's, then each
     * linked package's projection DDL and its generated forward steps (es/packages.h). */
    es_migration store = {ES_EVENT_STORE_MIGRATION, es_event_store_sql};
    size_t applied = 0, total = 1 + c->packages->n, held_back = 0, steps = 0, n_steps = 0;
    es_error err = {0};
    if (es_migrate(c->pool, &store, 1, &applied, &err) != ES_OK)
        return ctl_fail("migrate", &err);
    for (size_t p = 0; p < c->packages->n; p++) {
        const es_schema *s = c->packages->schemas[p];
        char name[128];
        es_migration m;
        es_package_migration(s, name, sizeof name, &m);
        n_steps += s->n_migration_steps;
        /* A projection serving rows of another shape keeps it: orderd builds the new version
         * beside it at its next start and applies the package's migration after the switch
         * (es/projection_shape.h); applied here, the new columns would read NULL until then. */
        int held = 0;
        for (size_t i = 0; i < s->n_projections && !held; i++)
            if (es_projection_shape_prepare(c->pool, s->projections[i], &held, &err) != ES_OK)
                return ctl_fail("migrate", &err);
        if (held) {
            printf("migrate: %s and %zu generated steps held back: a projection serves rows of another shape, "
                   "orderd builds its new version beside it at its next start and applies them then\n",
                   m.name, s->n_migration_steps);
            held_back++;
            continue;
        }
        size_t more = 0, ran = 0;
        if (es_migrate(c->pool, &m, 1, &more, &err) != ES_OK)
            return ctl_fail("migrate", &err);
        applied += more;
        if (es_migrate_steps(c->pool, s->package, s->migrations_baseline, s->descriptor_set_hash, s->migration_steps,
                             s->n_migration_steps, &ran, &err) != ES_OK)
            return ctl_fail("migrate", &err);
        steps += ran;
    }
    printf("migrate: %zu of %zu migrations applied, %zu already up to date, %zu held back; "
           "%zu of %zu generated steps applied\n",
           applied, total, total - applied - held_back, held_back, steps, n_steps);
    return CTL_OK;
}

/* How a stored event type relates to this binary. */
static const char *event_type_status(const ctl *c, const es_admin_event_type *t, int *unknown)
{
    for (size_t p = 0; p < c->packages->n; p++) {
        const es_schema *s = c->packages->schemas[p];
        for (size_t i = 0; i < s->n_aggregates; i++) {
            const es_aggregate_def *agg = s->aggregates[i];
            if (strcmp(agg->name, t->stream_type) != 0)
                continue;
            const es_event_def *def = es_schema_find_event(agg, t->event_type);
            if (!def)
                break;
            if (strcmp(def->schema, t->schema_name) != 0)
                return "known type, stored under another message name";
            return strcmp(es_store_schema_hash(def->descriptor), t->schema_hash) == 0
                       ? "same shape"
                       : "other shape (decoded by field number)";
        }
    }
    *unknown = 1;
    return "UNKNOWN to this binary";
}

/* The linked package whose descriptor set is registered under hash, or NULL. */
static const es_schema *package_with_hash(const ctl *c, const char *hash)
{
    for (size_t p = 0; p < c->packages->n; p++)
        if (strcmp(c->packages->schemas[p]->descriptor_set_hash, hash) == 0)
            return c->packages->schemas[p];
    return NULL;
}

int ctl_schema(ctl *c, int argc, char **argv)
{
    if (argc != 2 || strcmp(argv[1], "check") != 0) {
        fprintf(stderr, "usage: orderctl schema check\n");
        return CTL_ERROR;
    }
    es_arena a;
    es_arena_init(&a);
    es_error err = {0};
    es_admin_schema *rows;
    es_admin_event_type *types;
    size_t n, nt;
    int rc = CTL_OK;
    if (es_admin_schemas(c->pool, &a, &rows, &n, &err) != ES_OK ||
        es_admin_event_types(c->pool, &a, &types, &nt, &err) != ES_OK) {
        rc = ctl_fail("schema check", &err);
        goto done;
    }
    /* Every linked package's descriptor set must be registered, with the same bytes. */
    size_t registered_n = 0;
    int damaged = 0, unknown = 0;
    const char *missing = NULL;
    for (size_t p = 0; p < c->packages->n; p++)
        printf("this binary: %s %s (%zu bytes)\n", c->packages->schemas[p]->package,
               c->packages->schemas[p]->descriptor_set_hash, c->packages->schemas[p]->descriptor_set_len);
    printf("registered descriptor sets: %zu\n", n);
    for (size_t i = 0; i < n; i++) {
        const es_schema *mine = package_with_hash(c, rows[i].hash);
        int same_bytes = mine && rows[i].descriptor_set_len == mine->descriptor_set_len &&
                         memcmp(rows[i].descriptor_set, mine->descriptor_set, rows[i].descriptor_set_len) == 0;
        char when[ES_RFC3339_LEN];
        printf("  %s %s first seen %s, %zu bytes%s\n", rows[i].hash, rows[i].package,
               es_rfc3339_us(rows[i].first_seen_us, when),
               rows[i].descriptor_set_len,
               mine ? (same_bytes ? "  <- this binary" : "  <- this binary's hash, but DIFFERENT BYTES") : "");
        registered_n += mine != NULL;
        damaged |= mine && !same_bytes;
    }
    for (size_t p = 0; p < c->packages->n && !missing; p++) {
        int found = 0;
        for (size_t i = 0; i < n && !found; i++)
            found = strcmp(rows[i].hash, c->packages->schemas[p]->descriptor_set_hash) == 0;
        if (!found)
            missing = c->packages->schemas[p]->descriptor_set_hash;
    }
    int registered = !missing && registered_n > 0;
    const char *mine = missing ? missing : "";
    printf("stored event types: %zu\n", nt);
    for (size_t i = 0; i < nt; i++)
        printf("  %s/%s %s v%u hash %.12s: %lld events, %s\n", types[i].stream_type, types[i].event_type,
               types[i].schema_name, types[i].schema_version, types[i].schema_hash, (long long)types[i].count,
               event_type_status(c, &types[i], &unknown));
    if (!registered)
        printf("schema check: FAILED: this binary's descriptor set %s is not registered (orderd registers it at start)\n",
               mine);
    else if (damaged)
        printf("schema check: FAILED: a registered descriptor set differs from this binary's\n");
    else if (unknown)
        printf("schema check: FAILED: the store holds event types this binary cannot decode\n");
    else
        printf("schema check: ok: this binary's schemas are registered and it decodes every stored event type\n");
    rc = registered && !damaged && !unknown ? CTL_OK : CTL_FOUND;
done:
    es_arena_free(&a);
    return rc;
}

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
    /* The same list, names and order as orderd applies at start-up. */
    es_migration m[] = {{"0001_event_store", es_event_store_sql}, {"0100_orders_v1", c->schema->migrations_sql}};
    size_t applied = 0, more = 0;
    es_error err = {0};
    if (es_migrate(c->pool, m, 1, &applied, &err) != ES_OK)
        return ctl_fail("migrate", &err);
    /* A projection serving rows of another shape keeps it: orderd builds the new version beside
     * it at its next start and applies the projections' migration after the switch
     * (es/projection_shape.h); applied here, the new columns would read NULL until then. */
    int held = 0;
    for (size_t i = 0; i < c->schema->n_projections && !held; i++)
        if (es_projection_shape_prepare(c->pool, c->schema->projections[i], &held, &err) != ES_OK)
            return ctl_fail("migrate", &err);
    const es_schema *s = c->schema;
    if (held) {
        printf("migrate: %zu of 1 migrations applied; %s and %zu generated steps held back: a projection serves rows "
               "of another shape, orderd builds its new version beside it at its next start and applies them then\n",
               applied, m[1].name, s->n_migration_steps);
        return CTL_OK;
    }
    if (es_migrate(c->pool, m + 1, 1, &more, &err) != ES_OK)
        return ctl_fail("migrate", &err);
    applied += more;
    /* Then the generated forward steps from the released schema, as orderd does (es/migrate.h). */
    size_t steps = 0;
    if (es_migrate_steps(c->pool, s->package, s->migrations_baseline, s->descriptor_set_hash, s->migration_steps,
                         s->n_migration_steps, &steps, &err) != ES_OK)
        return ctl_fail("migrate", &err);
    printf("migrate: %zu of %zu migrations applied, %zu already up to date; %zu of %zu generated steps applied\n",
           applied, sizeof m / sizeof m[0], sizeof m / sizeof m[0] - applied, steps, s->n_migration_steps);
    return CTL_OK;
}

/* How a stored event type relates to this binary. */
static const char *event_type_status(const ctl *c, const es_admin_event_type *t, int *unknown)
{
    for (size_t i = 0; i < c->schema->n_aggregates; i++) {
        const es_aggregate_def *agg = c->schema->aggregates[i];
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
    *unknown = 1;
    return "UNKNOWN to this binary";
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
    const char *mine = c->schema->descriptor_set_hash;
    int registered = 0, damaged = 0, unknown = 0;
    printf("this binary: %s %s (%zu bytes)\n", c->schema->package, mine, c->schema->descriptor_set_len);
    printf("registered descriptor sets: %zu\n", n);
    for (size_t i = 0; i < n; i++) {
        int is_mine = strcmp(rows[i].hash, mine) == 0;
        int same_bytes = rows[i].descriptor_set_len == c->schema->descriptor_set_len &&
                         memcmp(rows[i].descriptor_set, c->schema->descriptor_set, rows[i].descriptor_set_len) == 0;
        char when[ES_RFC3339_LEN];
        printf("  %s %s first seen %s, %zu bytes%s\n", rows[i].hash, rows[i].package,
               es_rfc3339_us(rows[i].first_seen_us, when),
               rows[i].descriptor_set_len,
               is_mine ? (same_bytes ? "  <- this binary" : "  <- this binary's hash, but DIFFERENT BYTES") : "");
        registered |= is_mine;
        damaged |= is_mine && !same_bytes;
    }
    printf("stored event types: %zu\n", nt);
    for (size_t i = 0; i < nt; i++)
        printf("  %s/%s %s v%u hash %.12s: %lld events, %s\n", types[i].stream_type, types[i].event_type,
               types[i].schema_name, types[i].schema_version, types[i].schema_hash, (long long)types[i].count,
               event_type_status(c, &types[i], &unknown));
    if (!registered)
        printf("schema check: FAILED: this binary's descriptor set %s is not registered (orderd registers it at start)\n",
               mine);
    else if (damaged)
        printf("schema check: FAILED: the registered descriptor set %s differs from this binary's\n", mine);
    else if (unknown)
        printf("schema check: FAILED: the store holds event types this binary cannot decode\n");
    else
        printf("schema check: ok: this binary's schema is registered and it decodes every stored event type\n");
    rc = registered && !damaged && !unknown ? CTL_OK : CTL_FOUND;
done:
    es_arena_free(&a);
    return rc;
}

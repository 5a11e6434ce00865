/* Applies SQL migrations (the event-store DDL, the generated projection DDL) idempotently.
 *
 * Each migration is a name and a SQL text (any number of statements, no transaction control
 * and nothing that refuses to run in a transaction, such as CREATE INDEX CONCURRENTLY).
 * Applied migrations are recorded by name and SHA-256 of the text in es_migrations; the whole
 * run holds a transaction-scoped advisory lock, so instances starting together take turns and
 * the later ones find the work done. */
#ifndef ES_MIGRATE_H
#define ES_MIGRATE_H

#include <stddef.h>
#include "es/pg_pool.h"
#include "es/schema.h"
#include "es/status.h"

typedef struct es_migration {
    const char *name;              /* "0001_event_store" */
    const char *sql;
} es_migration;

/* Applies, in order, each migration whose (name, hash) is not yet recorded, each in its own
 * transaction together with its record. A migration whose text changed under the same name is
 * applied again (generated DDL is written to be re-runnable: CREATE ... IF NOT EXISTS) and its
 * new hash recorded. *applied (may be NULL) receives how many ran. Returns ES_OK, ES_UNAVAILABLE,
 * or ES_INTERNAL with the server's message and err->field set to the migration's name. */
int es_migrate(es_pg_pool *pool, const es_migration *migrations, size_t n, size_t *applied,
               es_error *err);

/* Applies a package's generated forward steps (es_schema.migration_steps, from the difference
 * between the released schema and the current one) in order: the run holds the migrations'
 * advisory lock (instances and `orderctl migrate` starting together take turns; the later ones
 * find the work done), each step runs in its own transaction together with its record in
 * es_migration_steps (package, baseline, step; sql/event_store.sql, so es_event_store_sql must
 * have been applied), and a step already recorded with the same SQL is skipped. Steps are
 * idempotent DDL, so a database whose tables were created by the current DDL (or by a release
 * that had no step table) gets each step applied as a no-op and recorded. schema_hash is
 * recorded with each step (the binary's descriptor_set_hash). *applied (may be NULL) receives
 * how many ran. Returns ES_OK, ES_UNAVAILABLE, or ES_INTERNAL with the server's message and
 * err->field set to the step's name. */
int es_migrate_steps(es_pg_pool *pool, const char *package, const char *baseline, const char *schema_hash,
                     const es_migration_step *steps, size_t n, size_t *applied, es_error *err);

#endif

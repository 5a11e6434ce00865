/* Idempotent migrations and generated forward steps under an advisory lock (see es/migrate.h).
 * DDL is multi-statement text, so this is the one place that uses the simple query protocol. */
#include "es/migrate.h"

#include <stdio.h>
#include <string.h>

#include "es/log.h"
#include "es/sha256.h"

/* "es_migra" as a big-endian integer: the advisory lock every instance's migrations share. */
#define MIGRATE_LOCK_KEY "7310291543676908129"

static int exec_ok(PGconn *pg, const char *sql, const char *what, const char *name, es_error *err)
{
    PGresult *r = PQexec(pg, sql);
    ExecStatusType st = PQresultStatus(r);
    int rc = ES_OK;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        rc = es_pg_error(pg, r, what, err);
        if (err) snprintf(err->field, sizeof err->field, "%s", name);
    }
    PQclear(r);
    return rc;
}

/* One migration in one transaction: lock, check the record, apply, record. */
/* Ends a failed migration transaction. The failure is the caller's answer; a failed rollback is
 * only logged (the pool closes a connection left inside a transaction at checkin). */
static void roll_back(PGconn *pg, const char *what, const char *name)
{
    if (PQstatus(pg) != CONNECTION_OK) return;
    es_error rerr = {0};
    if (exec_ok(pg, "ROLLBACK", what, name, &rerr) != ES_OK)
        es_log(ES_LOG_WARN, "migrate", NULL, "%s", rerr.message);
}

static int apply_one(PGconn *pg, const es_migration *m, int *ran, es_error *err)
{
    char hash[65];
    es_sha256_hex(m->sql, strlen(m->sql), hash);
    *ran = 0;
    int rc = exec_ok(pg, "BEGIN", "begin migration", m->name, err);
    if (rc) return rc;
    rc = exec_ok(pg,
                 "SELECT pg_advisory_xact_lock(" MIGRATE_LOCK_KEY ");"
                 "CREATE TABLE IF NOT EXISTS es_migrations ("
                 " name text NOT NULL, hash text NOT NULL,"
                 " applied_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (name, hash))",
                 "migration lock", m->name, err);
    if (rc) goto rollback;

    const char *params[2] = {m->name, hash};
    PGresult *r = PQexecParams(pg, "SELECT 1 FROM es_migrations WHERE name = $1 AND hash = $2", 2,
                               NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = es_pg_error(pg, r, "migration lookup", err);
        PQclear(r);
        goto rollback;
    }
    int done = PQntuples(r) > 0;
    PQclear(r);
    if (!done) {
        char what[160];
        snprintf(what, sizeof what, "migration %s", m->name);
        rc = exec_ok(pg, m->sql, what, m->name, err);
        if (rc) goto rollback;
        r = PQexecParams(pg, "INSERT INTO es_migrations (name, hash) VALUES ($1, $2)", 2, NULL, params,
                         NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            rc = es_pg_error(pg, r, "migration record", err);
            PQclear(r);
            goto rollback;
        }
        PQclear(r);
    }
    rc = exec_ok(pg, "COMMIT", "commit migration", m->name, err);
    if (rc == ES_OK) *ran = !done;
    return rc;

rollback:
    roll_back(pg, "roll back migration", m->name);
    return rc;
}

int es_migrate(es_pg_pool *pool, const es_migration *migrations, size_t n, size_t *applied,
               es_error *err)
{
    es_pg_conn *c = NULL;
    size_t count = 0;
    int rc = es_pg_pool_checkout_unprepared(pool, &c, err);
    if (rc) goto done;
    PGconn *pg = es_pg_conn_pg(c);
    /* Keep NOTICEs ("relation already exists, skipping") out of the service's stderr. */
    rc = exec_ok(pg, "SET client_min_messages = warning", "quiet notices", "", err);
    for (size_t i = 0; rc == ES_OK && i < n; i++) {
        int ran = 0;
        rc = apply_one(pg, &migrations[i], &ran, err);
        if (rc) break;
        count += (size_t)ran;
    }
    es_error rerr = {0};
    if (exec_ok(pg, "RESET client_min_messages", "reset notices", "", &rerr) != ES_OK) {
        /* The connection keeps a setting the pool's other users do not expect: close it. */
        es_log(ES_LOG_WARN, "migrate", NULL, "%s", rerr.message);
        es_pg_conn_discard(c);
    }
done:
    es_pg_pool_checkin(pool, c);
    if (applied) *applied = count;
    return rc;
}

/* Runs one statement with text parameters; *rows (may be NULL) receives the rows returned. */
static int exec_params(PGconn *pg, const char *sql, int n, const char *const *params, const char *what,
                       const char *name, int *rows, char *first, size_t first_len, es_error *err)
{
    PGresult *r = PQexecParams(pg, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    int rc = ES_OK;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        rc = es_pg_error(pg, r, what, err);
        if (err) snprintf(err->field, sizeof err->field, "%s", name);
    } else {
        if (rows) *rows = PQntuples(r);
        if (first && PQntuples(r) > 0) snprintf(first, first_len, "%s", PQgetvalue(r, 0, 0));
    }
    PQclear(r);
    return rc;
}

/* One step in one transaction with its record; *ran = 0 when it was recorded with this SQL. */
static int apply_step(PGconn *pg, const char *package, const char *baseline, const char *schema_hash,
                      const es_migration_step *s, int *ran, es_error *err)
{
    char hash[65], recorded[65] = "", num[16];
    es_sha256_hex(s->sql, strlen(s->sql), hash);
    snprintf(num, sizeof num, "%d", s->step);
    *ran = 0;
    int rows = 0;
    const char *key[3] = {package, baseline, num};
    int rc = exec_ok(pg, "BEGIN", "begin migration step", s->name, err);
    if (rc) return rc;
    rc = exec_params(pg, "SELECT sql_hash FROM es_migration_steps WHERE package = $1 AND baseline = $2 AND step = $3",
                     3, key, "migration step lookup", s->name, &rows, recorded, sizeof recorded, err);
    if (rc) goto rollback;
    int done = rows > 0 && strcmp(recorded, hash) == 0;
    if (!done) {
        char what[200];
        snprintf(what, sizeof what, "migration step %d (%s)", s->step, s->name);
        rc = exec_ok(pg, s->sql, what, s->name, err);
        if (rc) goto rollback;
        const char *rec[6] = {package, baseline, num, s->name, hash, schema_hash};
        rc = exec_params(pg,
                         "INSERT INTO es_migration_steps (package, baseline, step, name, sql_hash, schema_hash)"
                         " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (package, baseline, step) DO UPDATE"
                         " SET name = excluded.name, sql_hash = excluded.sql_hash,"
                         " schema_hash = excluded.schema_hash, applied_at = now()",
                         6, rec, "migration step record", s->name, NULL, NULL, 0, err);
        if (rc) goto rollback;
    }
    rc = exec_ok(pg, "COMMIT", "commit migration step", s->name, err);
    if (rc == ES_OK) *ran = !done;
    return rc;

rollback:
    roll_back(pg, "roll back migration step", s->name);
    return rc;
}

int es_migrate_steps(es_pg_pool *pool, const char *package, const char *baseline, const char *schema_hash,
                     const es_migration_step *steps, size_t n, size_t *applied, es_error *err)
{
    es_pg_conn *c = NULL;
    size_t count = 0;
    int locked = 0;
    if (applied) *applied = 0;
    if (n == 0) return ES_OK;
    int rc = es_pg_pool_checkout_unprepared(pool, &c, err);
    if (rc) goto done;
    PGconn *pg = es_pg_conn_pg(c);
    rc = exec_ok(pg, "SET client_min_messages = warning", "quiet notices", "", err);
    /* A session lock for the whole run: the same key es_migrate's transactions take, so the steps
     * never run beside another instance's migrations. */
    if (rc == ES_OK) rc = exec_ok(pg, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")", "migration lock", "", err);
    locked = rc == ES_OK;
    for (size_t i = 0; rc == ES_OK && i < n; i++) {
        int ran = 0;
        rc = apply_step(pg, package, baseline ? baseline : "", schema_hash ? schema_hash : "", &steps[i], &ran, err);
        count += (size_t)ran;
    }
    es_error rerr = {0};
    if ((locked && exec_ok(pg, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY ")", "migration unlock", "", &rerr) != ES_OK) ||
        exec_ok(pg, "RESET client_min_messages", "reset notices", "", &rerr) != ES_OK) {
        /* The connection keeps a lock or a setting the pool's other users do not expect: close it. */
        es_log(ES_LOG_WARN, "migrate", NULL, "%s", rerr.message);
        es_pg_conn_discard(c);
    }
done:
    es_pg_pool_checkin(pool, c);
    if (applied) *applied = count;
    return rc;
}

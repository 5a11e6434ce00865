/* es_migrate_steps (runtime/store/migrate.c) against a real PostgreSQL: generated forward steps
 * on a database created by the release before (no es_migration_steps table, projection tables
 * from the old DDL, rows in them), applied twice (the second run applies nothing), from two
 * connections at once (each step runs once), a step whose SQL changed, and a failing step. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "support.h"

static pgt pg;
static es_pg_pool *pool;

static int setup(void **state)
{
    (void)state;
    pgt_start(&pg, "migrate_steps");
    es_pg_pool_config pc = {.conninfo = pg.conninfo, .size = 2};
    es_error err = {0};
    pool = es_pg_pool_new(&pc, &err);
    return pool ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    es_pg_pool_free(pool);
    pgt_stop(&pg);
    return 0;
}

/* What a generated step table looks like for a projection "widget_summary" released with
 * (id, name, qty integer) and one index: a column added, a type widened, an index added, a
 * new projection table. */
static const es_migration_step widget_steps[] = {
    {.step = 1, .name = "widget_summary: add column note text",
     .sql = "ALTER TABLE widget_summary ADD COLUMN IF NOT EXISTS note text;\n"},
    {.step = 2, .name = "widget_summary: widen column qty from integer to bigint",
     .sql = "ALTER TABLE widget_summary ALTER COLUMN qty TYPE bigint;\n"},
    {.step = 3, .name = "widget_summary: add index widget_summary_idx2 (note)",
     .sql = "CREATE INDEX IF NOT EXISTS widget_summary_idx2 ON widget_summary (note);\n"},
    {.step = 4, .name = "widget_by_name: new projection table",
     .sql = "CREATE TABLE IF NOT EXISTS widget_by_name (id uuid NOT NULL, name text, es_state bytea NOT NULL,"
            " PRIMARY KEY (id));\nCREATE INDEX IF NOT EXISTS widget_by_name_idx1 ON widget_by_name (name);\n"},
};
#define N_WIDGET (sizeof widget_steps / sizeof widget_steps[0])

/* The database as the release before left it: its es_migrations records, no step table, the
 * projection table from its DDL with rows. */
static void previous_release(void)
{
    pgt_exec(&pg, "SET client_min_messages = warning; DROP TABLE IF EXISTS es_migration_steps;"
                  "CREATE TABLE IF NOT EXISTS es_migrations (name text NOT NULL, hash text NOT NULL,"
                  " applied_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (name, hash));"
                  "DELETE FROM es_migrations;"
                  "INSERT INTO es_migrations (name, hash) VALUES ('0001_event_store', 'the previous text'),"
                  " ('0100_widgets', 'the previous text');"
                  "CREATE TABLE widget_summary (id uuid NOT NULL, name text, qty integer, es_state bytea NOT NULL,"
                  " PRIMARY KEY (id));"
                  "CREATE INDEX widget_summary_idx1 ON widget_summary (name);"
                  "INSERT INTO widget_summary SELECT gen_random_uuid(), 'w' || i, i, '\\x00'"
                  " FROM generate_series(1, 40) i");
}

/* What orderd and orderctl migrate do at start: the event store's migration, then the steps. */
static int start(es_pg_pool *p, const char *package, const es_migration_step *steps, size_t n, size_t *applied,
                 es_error *err)
{
    es_migration m = {"0001_event_store", test_event_store_sql};
    int rc = es_migrate(p, &m, 1, NULL, err);
    return rc ? rc : es_migrate_steps(p, package, "baseline-1", "schema-a", steps, n, applied, err);
}

static void test_previous_release_then_again(void **state)
{
    (void)state;
    previous_release();
    es_error err = {0};
    size_t applied = 99;
    assert_int_equal(start(pool, "widgets.v1", widget_steps, N_WIDGET, &applied, &err), ES_OK);
    assert_int_equal(applied, N_WIDGET);
    assert_int_equal(pgt_scalar(&pg, "SELECT count(*) FROM widget_summary WHERE note IS NULL"), 40);
    assert_int_equal(pgt_scalar(&pg, "SELECT count(*) FROM information_schema.columns WHERE table_name ="
                                     " 'widget_summary' AND column_name = 'qty' AND data_type = 'bigint'"), 1);
    assert_int_equal(pgt_scalar(&pg, "SELECT count(*) FROM pg_indexes WHERE indexname IN"
                                     " ('widget_summary_idx2', 'widget_by_name_idx1')"), 2);
    assert_int_equal(pgt_scalar(&pg, "SELECT sum(qty) FROM widget_summary"), 40 * 41 / 2);
    assert_int_equal(pgt_scalar(&pg, "SELECT count(*) FROM es_migration_steps WHERE package = 'widgets.v1'"
                                     " AND baseline = 'baseline-1' AND schema_hash = 'schema-a'"
                                     " AND length(sql_hash) = 64"), N_WIDGET);
    /* Again: everything is recorded, nothing runs. */
    assert_int_equal(start(pool, "widgets.v1", widget_steps, N_WIDGET, &applied, &err), ES_OK);
    assert_int_equal(applied, 0);
    /* A step whose SQL changed under its number runs again (idempotent) and is recorded anew. */
    es_migration_step changed[N_WIDGET];
    memcpy(changed, widget_steps, sizeof changed);
    changed[2].sql = "DROP INDEX IF EXISTS widget_summary_idx2;\n"
                     "CREATE INDEX IF NOT EXISTS widget_summary_idx2 ON widget_summary (note, name);\n";
    assert_int_equal(es_migrate_steps(pool, "widgets.v1", "baseline-1", "schema-b", changed, N_WIDGET, &applied,
                                      &err), ES_OK);
    assert_int_equal(applied, 1);
    assert_int_equal(pgt_scalar(&pg, "SELECT count(*) FROM es_migration_steps WHERE schema_hash = 'schema-b'"), 1);
    /* A step the current DDL already did (a fresh database) is applied as a no-op and recorded. */
    assert_int_equal(es_migrate_steps(pool, "widgets.v1", "baseline-2", "schema-b", widget_steps, N_WIDGET, &applied,
                                      &err), ES_OK);
    assert_int_equal(applied, N_WIDGET);
    assert_int_equal(pgt_scalar(&pg, "SELECT count(*) FROM widget_summary"), 40);
}

/* Steps with a visible effect that is NOT idempotent, so a second run of any would show. */
static const es_migration_step counted_steps[] = {
    {.step = 1, .name = "slow one", .sql = "CREATE TABLE IF NOT EXISTS ran (step int); SELECT pg_sleep(0.3);"
                                           " INSERT INTO ran VALUES (1);"},
    {.step = 2, .name = "two", .sql = "INSERT INTO ran VALUES (2);"},
    {.step = 3, .name = "three", .sql = "SELECT pg_sleep(0.1); INSERT INTO ran VALUES (3);"},
};

static void *steps_thread(void *arg)
{
    size_t *applied = arg;
    es_error err = {0};
    es_pg_pool_config pc = {.conninfo = pg.conninfo, .size = 1};
    es_pg_pool *p = es_pg_pool_new(&pc, &err);
    intptr_t rc = p ? start(p, "counted.v1", counted_steps, 3, applied, &err) : -1;
    es_pg_pool_free(p);
    return (void *)rc;
}

/* Two instances starting together: the advisory lock makes them take turns; each step runs once. */
static void test_concurrent(void **state)
{
    (void)state;
    pthread_t a, b;
    size_t na = 0, nb = 0;
    void *ra, *rb;
    pthread_create(&a, NULL, steps_thread, &na);
    pthread_create(&b, NULL, steps_thread, &nb);
    pthread_join(a, &ra);
    pthread_join(b, &rb);
    assert_int_equal((intptr_t)ra, ES_OK);
    assert_int_equal((intptr_t)rb, ES_OK);
    assert_int_equal(na + nb, 3);
    assert_int_equal(pgt_scalar(&pg, "SELECT count(*) FROM ran"), 3);
    assert_int_equal(pgt_scalar(&pg, "SELECT count(DISTINCT step) FROM ran"), 3);
}

/* A failing step rolls back alone: the steps before it stay recorded, none after it runs, and
 * the error names it. The next start, with the step fixed, goes on from there. */
static void test_failing_step(void **state)
{
    (void)state;
    es_migration_step steps[3] = {
        {.step = 1, .name = "t: new table", .sql = "CREATE TABLE IF NOT EXISTS t (id int PRIMARY KEY);"},
        {.step = 2, .name = "t: add column x", .sql = "ALTER TABLE t ADD COLUMN IF NOT EXISTS x int; SELECT 1/0;"},
        {.step = 3, .name = "t: add index", .sql = "CREATE INDEX IF NOT EXISTS t_idx1 ON t (x);"},
    };
    es_error err = {0};
    size_t applied = 0;
    assert_int_not_equal(es_migrate_steps(pool, "t.v1", "b", "s", steps, 3, &applied, &err), ES_OK);
    assert_int_equal(applied, 1);
    assert_string_equal(err.field, "t: add column x");
    assert_int_equal(pgt_scalar(&pg, "SELECT count(*) FROM es_migration_steps WHERE package = 't.v1'"), 1);
    assert_int_equal(pgt_scalar(&pg, "SELECT count(*) FROM information_schema.columns WHERE table_name = 't'"
                                     " AND column_name = 'x'"), 0);
    steps[1].sql = "ALTER TABLE t ADD COLUMN IF NOT EXISTS x int;";
    assert_int_equal(es_migrate_steps(pool, "t.v1", "b", "s", steps, 3, &applied, &err), ES_OK);
    assert_int_equal(applied, 2);
    /* The pool's connection is usable afterwards: no lock and no transaction left on it. */
    assert_int_equal(pgt_scalar(&pg, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_previous_release_then_again),
        cmocka_unit_test(test_concurrent),
        cmocka_unit_test(test_failing_step),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

/* Dedicated sessions (es/pg_session.h) and the one SQLSTATE map (es/pg_error.h), against a real
 * PostgreSQL: a session connects with its application_name, runs its settings, LISTENs and
 * prepares its statements, all checked; reconnects after its backend is killed and prepares
 * again; remembers statements given as text per connection; classifies failures as the pool
 * does (a statement_timeout is DEADLINE_EXCEEDED, a unique violation ABORTED); a rollback on a
 * cleanup path that fails marks the session for a reconnect. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "es/pg_session.h"
#include "pgt_fixture.h"


static es_pg_session *session(const char *app, const char *settings, const char *listen,
                              const es_pg_statement *st, size_t n)
{
    es_error err = {0};
    es_pg_session_config cfg = {.conninfo = pg.conninfo, .application_name = app, .settings = settings,
                                .listen = listen, .statements = st, .n_statements = n};
    es_pg_session *s = es_pg_session_new(&cfg, &err);
    assert_non_null(s);
    return s;
}

static long long scalar(es_pg_session *s, const char *sql)
{
    PGresult *r = PQexec(es_pg_session_conn(s), sql);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    long long v = PQntuples(r) ? atoll(PQgetvalue(r, 0, 0)) : -1;
    PQclear(r);
    return v;
}

static void config_is_checked(void **state)
{
    (void)state;
    es_error err = {0};
    es_pg_session_config cfg = {.conninfo = pg.conninfo};
    assert_null(es_pg_session_new(&cfg, &err));
    assert_int_equal(err.code, ES_INVALID_ARGUMENT);
    cfg = (es_pg_session_config){.application_name = "x"};
    assert_null(es_pg_session_new(&cfg, &err));
    es_pg_session_free(NULL);
}

static void connects_sets_up_and_listens(void **state)
{
    (void)state;
    es_error err = {0};
    static const es_pg_statement st[] = {{.name = "sess_add", .sql = "SELECT $1::int + 1", .n_params = 1}};
    es_pg_session *s = session("es-test-session", "SET synchronous_commit = off; SET work_mem = '7MB'", "sess_chan",
                               st, 1);
    assert_null(es_pg_session_conn(s)); /* lazy */
    assert_int_equal(es_pg_session_ensure(s, &err), ES_OK);
    assert_int_equal(es_pg_session_reconnected(s), 1);
    assert_int_equal(es_pg_session_reconnected(s), 0);
    PGconn *c = es_pg_session_conn(s);
    assert_non_null(c);
    /* The application name wins over the conninfo's (none here) and shows in pg_stat_activity. */
    assert_int_equal(pgt_scalar(&pg, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'es-test-session'"), 1);
    PGresult *r = PQexec(c, "SHOW synchronous_commit");
    assert_string_equal(PQgetvalue(r, 0, 0), "off");
    PQclear(r);
    r = PQexec(c, "SHOW work_mem");
    assert_string_equal(PQgetvalue(r, 0, 0), "7MB");
    PQclear(r);
    const char *p[1] = {"41"};
    r = PQexecPrepared(c, "sess_add", 1, p, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(r, 0, 0), "42");
    PQclear(r);
    /* LISTEN is on: a NOTIFY from elsewhere arrives (waited for, bounded). */
    pgt_exec(&pg, "NOTIFY sess_chan");
    PGnotify *note = NULL;
    for (int i = 0; i < 500 && !note; i++) {
        PQconsumeInput(c);
        if (!(note = PQnotifies(c)))
            usleep(10 * 1000);
    }
    assert_non_null(note);
    assert_string_equal(note->relname, "sess_chan");
    PQfreemem(note);
    /* Healthy: ensure is a no-op (same connection, no reconnect). */
    assert_int_equal(es_pg_session_ensure(s, &err), ES_OK);
    assert_ptr_equal(es_pg_session_conn(s), c);
    assert_int_equal(es_pg_session_reconnected(s), 0);
    es_pg_session_free(s);
}

static void reconnects_after_its_backend_dies(void **state)
{
    (void)state;
    es_error err = {0};
    static const es_pg_statement st[] = {{.name = "sess_one", .sql = "SELECT 1"}};
    es_pg_session *s = session("es-test-reconnect", "SET application_name = 'es-test-reconnect'", NULL, st, 1);
    assert_int_equal(es_pg_session_ensure(s, &err), ES_OK);
    es_pg_session_reconnected(s);
    int rc = 0;
    const char *name = es_pg_session_stmt(s, "SELECT $1::int * 2", 1, &err, &rc);
    assert_non_null(name);
    /* The same text gives the same statement, prepared once. */
    assert_string_equal(es_pg_session_stmt(s, "SELECT $1::int * 2", 1, &err, &rc), name);
    assert_int_equal(scalar(s, "SELECT count(*) FROM pg_prepared_statements"), 2);

    pgt_exec(&pg, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'es-test-reconnect'");
    /* The next statement fails as UNAVAILABLE and marks the session; ensure then reconnects. */
    PGresult *r = NULL;
    for (int i = 0; i < 100; i++) {
        r = PQexec(es_pg_session_conn(s), "SELECT 1");
        if (PQresultStatus(r) != PGRES_TUPLES_OK)
            break;
        PQclear(r);
        r = NULL;
        usleep(10 * 1000);
    }
    assert_non_null(r);
    assert_int_equal(es_pg_session_fail(s, r, "probe", &err), ES_UNAVAILABLE);
    PQclear(r);
    assert_non_null(strstr(err.message, "probe"));
    assert_int_equal(es_pg_session_ensure(s, &err), ES_OK);
    assert_int_equal(es_pg_session_reconnected(s), 1);
    /* The configured statement is prepared again, the text ones are forgotten and re-prepared on use. */
    assert_int_equal(scalar(s, "SELECT count(*) FROM pg_prepared_statements"), 1);
    name = es_pg_session_stmt(s, "SELECT $1::int * 2", 1, &err, &rc);
    assert_non_null(name);
    const char *p[1] = {"21"};
    r = PQexecPrepared(es_pg_session_conn(s), name, 1, p, NULL, NULL, 0);
    assert_string_equal(PQgetvalue(r, 0, 0), "42");
    PQclear(r);
    es_pg_session_free(s);
}

static void a_failing_setup_step_is_reported_and_nothing_half_set_up_stays(void **state)
{
    (void)state;
    es_error err = {0};
    es_pg_session *s = session("es-test-bad-setting", "SET no_such_setting_at_all = 1", NULL, NULL, 0);
    assert_int_equal(es_pg_session_ensure(s, &err), ES_INTERNAL);
    assert_non_null(strstr(err.message, "session settings"));
    assert_null(es_pg_session_conn(s));
    es_pg_session_free(s);

    static const es_pg_statement bad[] = {{.name = "sess_bad", .sql = "SELECT * FROM no_such_table"}};
    s = session("es-test-bad-stmt", NULL, NULL, bad, 1);
    assert_int_equal(es_pg_session_ensure(s, &err), ES_INTERNAL);
    assert_non_null(strstr(err.message, "prepare sess_bad"));
    assert_null(es_pg_session_conn(s));
    es_pg_session_free(s);

    /* Unreachable: UNAVAILABLE, naming the session. */
    es_pg_session_config cfg = {.conninfo = "host=/nonexistent-socket-dir port=1 dbname=x connect_timeout=1",
                                .application_name = "es-test-down"};
    s = es_pg_session_new(&cfg, &err);
    assert_int_equal(es_pg_session_ensure(s, &err), ES_UNAVAILABLE);
    assert_non_null(strstr(err.message, "es-test-down: connect"));
    assert_int_equal(es_pg_session_exec(s, "SELECT 1", "exec", &err), ES_UNAVAILABLE);
    int rc = 0;
    assert_null(es_pg_session_stmt(s, "SELECT 1", 0, &err, &rc));
    assert_int_equal(rc, ES_UNAVAILABLE);
    es_pg_session_rollback(s, "nothing to roll back"); /* no connection: nothing to do */
    es_pg_session_free(s);
}

static void one_map_for_every_failure(void **state)
{
    (void)state;
    /* The SQLSTATE map itself: every class the runtime gives a meaning. */
    const char *unavailable[] = {"08006", "08001", "57P01", "57P02", "57P03", "57P04", "57P05", "57000",
                                 "25006", "53000", "53100", "53200", "53300", "53400"};
    for (size_t i = 0; i < sizeof unavailable / sizeof unavailable[0]; i++)
        assert_int_equal(es_pg_sqlstate_status(unavailable[i], ES_INTERNAL), ES_UNAVAILABLE);
    assert_int_equal(es_pg_sqlstate_status("57014", ES_INTERNAL), ES_DEADLINE_EXCEEDED);
    assert_int_equal(es_pg_sqlstate_status("23505", ES_INTERNAL), ES_ABORTED);
    assert_int_equal(es_pg_sqlstate_status("40P01", ES_INTERNAL), ES_ABORTED);
    assert_int_equal(es_pg_sqlstate_status("22P02", ES_INTERNAL), ES_INTERNAL);
    assert_int_equal(es_pg_sqlstate_status("23502", ES_INTERNAL), ES_INTERNAL);
    assert_true(es_pg_retry_later(ES_UNAVAILABLE));
    assert_true(es_pg_retry_later(ES_DEADLINE_EXCEEDED));
    assert_false(es_pg_retry_later(ES_ABORTED));
    assert_false(es_pg_retry_later(ES_INTERNAL));

    /* Real failures through a session: statement_timeout, unique violation, syntax error. */
    es_error err = {0};
    es_pg_session *s = session("es-test-map", "SET statement_timeout = 50", NULL, NULL, 0);
    assert_int_equal(es_pg_session_ensure(s, &err), ES_OK);
    assert_int_equal(es_pg_session_exec(s, "SELECT pg_sleep(5)", "sleep", &err), ES_DEADLINE_EXCEEDED);
    assert_non_null(strstr(err.message, "sleep: canceling statement due to statement timeout"));
    assert_int_equal(es_pg_session_exec(s, "CREATE TEMP TABLE u (x int PRIMARY KEY); INSERT INTO u VALUES (1)",
                                        "setup", &err), ES_OK);
    assert_int_equal(es_pg_session_exec(s, "INSERT INTO u VALUES (1)", "insert", &err), ES_ABORTED);
    assert_int_equal(es_pg_session_exec(s, "SELEC 1", "typo", &err), ES_INTERNAL);
    /* None of these is the connection's fault: the same connection goes on. */
    PGconn *c = es_pg_session_conn(s);
    assert_int_equal(es_pg_session_ensure(s, &err), ES_OK);
    assert_ptr_equal(es_pg_session_conn(s), c);
    es_pg_session_free(s);
}

static void a_failed_rollback_is_logged_and_reconnects(void **state)
{
    (void)state;
    es_error err = {0};
    es_pg_session *s = session("es-test-rollback", NULL, NULL, NULL, 0);
    assert_int_equal(es_pg_session_ensure(s, &err), ES_OK);
    es_pg_session_reconnected(s);
    /* In pipeline mode libpq refuses PQexec: the ROLLBACK fails on a connection that looks
     * fine, and the session must not be reused as it is. */
    assert_int_equal(es_pg_session_exec(s, "BEGIN", "begin", &err), ES_OK);
    assert_int_equal(PQenterPipelineMode(es_pg_session_conn(s)), 1);
    es_pg_session_rollback(s, "test: roll back");
    assert_int_equal(es_pg_session_ensure(s, &err), ES_OK);
    assert_int_equal(es_pg_session_reconnected(s), 1);
    /* An ordinary rollback keeps the connection. */
    assert_int_equal(es_pg_session_exec(s, "BEGIN", "begin", &err), ES_OK);
    es_pg_session_rollback(s, "test: roll back");
    assert_int_equal(es_pg_session_ensure(s, &err), ES_OK);
    assert_int_equal(es_pg_session_reconnected(s), 0);
    assert_int_equal(PQtransactionStatus(es_pg_session_conn(s)), PQTRANS_IDLE);
    es_pg_session_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(config_is_checked),
        cmocka_unit_test(connects_sets_up_and_listens),
        cmocka_unit_test(reconnects_after_its_backend_dies),
        cmocka_unit_test(a_failing_setup_step_is_reported_and_nothing_half_set_up_stays),
        cmocka_unit_test(one_map_for_every_failure),
        cmocka_unit_test(a_failed_rollback_is_logged_and_reconnects),
    };
    return PGT_RUN_GROUP("session", tests);
}
